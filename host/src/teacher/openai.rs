//! An OpenAI-compatible chat-completions endpoint over HTTP (reqwest: a well-kept client with
//! HTTP/1.1 and HTTP/2, rustls, connection pooling and timeouts), with a concurrency limit and
//! retries with exponential backoff, full jitter and `Retry-After`.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;

use super::protocol::{
    parse_response_with, BoxFuture, ChatRequest, Completion, ParseOptions, Teacher, TeacherError,
};

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff before retry n is drawn uniformly from [0, min(max, base × 2ⁿ)].
    pub base: Duration,
    pub max: Duration,
    /// Longest `Retry-After` honoured; a server asking for more gets this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(600),
        }
    }
}

pub struct OpenAiTeacher {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
    limit: Arc<Semaphore>,
    retry: RetryPolicy,
    timeout: Duration,
    parse: ParseOptions,
}

/// What one attempt came to.
enum Attempt {
    Done(Completion),
    Retry {
        why: String,
        after: Option<Duration>,
    },
    Fatal(TeacherError),
}

/// The chat-completions endpoint of a base URL (`http://host:8000/v1`): what requests go to,
/// and how rollout ids name the teacher.
pub fn endpoint_url(base_url: &str) -> anyhow::Result<String> {
    let trimmed = base_url.trim_end_matches('/');
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
        anyhow::bail!("teacher URL {base_url:?}: expected http:// or https://");
    }
    Ok(if trimmed.ends_with("/chat/completions") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/chat/completions")
    })
}

impl OpenAiTeacher {
    /// `base_url` is an endpoint such as `http://localhost:8000/v1` (or the full
    /// `.../chat/completions` URL). `api_key`: the key itself, read by the caller from the
    /// environment variable the config names.
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        concurrency: usize,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> anyhow::Result<Self> {
        let url = endpoint_url(base_url)?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency.max(1))
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .build()?;
        Ok(OpenAiTeacher {
            client,
            url,
            api_key,
            limit: Arc::new(Semaphore::new(concurrency.max(1))),
            retry,
            timeout,
            parse: ParseOptions::default(),
        })
    }

    pub fn with_parse(mut self, parse: ParseOptions) -> Self {
        self.parse = parse;
        self
    }

    async fn attempt(&self, body: &[u8], sha: &str, sample: u32, parse: ParseOptions) -> Attempt {
        let _permit = self
            .limit
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let start = Instant::now();
        let mut req = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    why: describe(&e),
                    after: None,
                }
            }
        };
        let status = resp.status().as_u16();
        let after = retry_after(resp.headers());
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Retry {
                    why: describe(&e),
                    after: None,
                }
            }
        };
        let latency_ms = start.elapsed().as_millis() as u64;
        let text = || String::from_utf8_lossy(&bytes[..bytes.len().min(2000)]).into_owned();
        match status {
            200..=299 => match parse_response_with(&bytes, &parse) {
                Ok((message, finish_reason, usage)) => Attempt::Done(Completion {
                    message,
                    finish_reason,
                    usage,
                    latency_ms,
                    request_sha256: sha.to_string(),
                    sample,
                    raw_body: bytes.to_vec(),
                }),
                Err(e) => Attempt::Retry {
                    why: format!("HTTP {status} with a malformed body: {e}"),
                    after: None,
                },
            },
            408 | 409 | 425 | 429 | 500..=599 => Attempt::Retry {
                why: format!("HTTP {status}: {}", text()),
                after,
            },
            _ => Attempt::Fatal(TeacherError::Rejected {
                status,
                message: text(),
            }),
        }
    }

    fn backoff(&self, retry: u32) -> Duration {
        let cap = self
            .retry
            .base
            .saturating_mul(1u32 << retry.min(20))
            .min(self.retry.max);
        // Full jitter, so many rollouts that failed together do not retry together.
        let r = std::collections::hash_map::RandomState::new().hash_one((retry, Instant::now()));
        cap.mul_f64((r >> 11) as f64 / (1u64 << 53) as f64)
    }
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else {
        "request failed"
    };
    let mut msg = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or_default())
}

impl Teacher for OpenAiTeacher {
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        sample: u32,
    ) -> BoxFuture<'a, Result<Completion, TeacherError>> {
        Box::pin(async move {
            let body = request.canonical();
            let sha = request.sha256();
            let mut last = String::new();
            for attempt in 0..self.retry.max_attempts {
                match self
                    .attempt(body, sha, sample, self.parse.for_request(request))
                    .await
                {
                    Attempt::Done(c) => return Ok(c),
                    Attempt::Fatal(e) => return Err(e),
                    Attempt::Retry { why, after } => {
                        last = why;
                        if attempt + 1 < self.retry.max_attempts {
                            let wait = match after {
                                Some(d) => d.min(self.retry.max_retry_after),
                                None => self.backoff(attempt),
                            };
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }
            Err(TeacherError::Unavailable {
                attempts: self.retry.max_attempts,
                last,
            })
        })
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}
