//! The scripted teacher served as an OpenAI endpoint on loopback (hyper), with injected
//! faults, so tests and benchmarks drive the real HTTP client: retries, timeouts, 429s.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the server does to one request instead of answering it well.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// HTTP 500.
    ServerError,
    /// HTTP 429 with `Retry-After: N`.
    TooManyRequests { retry_after_secs: u64 },
    /// Answers only after this long (a client timeout should fire first).
    Stall(Duration),
    /// HTTP 200 with a truncated JSON body.
    MalformedJson,
    /// Closes the connection without a response.
    DropConnection,
    /// HTTP 400 with a context-length message, as vLLM sends it.
    ContextLength,
    /// HTTP 200 with an empty `choices` list.
    EmptyChoices,
    /// HTTP 200: an answer cut at `max_tokens` (`finish_reason: "length"`), mid tool call, in
    /// text.
    Length,
    /// The good answer, its tool calls written as Hermes `<tool_call>` text in `content`, as a
    /// server without a tool parser returns them.
    ToolCallsAsText,
    /// The good answer with `reasoning_content` and a `<think>` block before its content, as
    /// reasoning models send them.
    Reasoning,
}

struct State {
    faults: Vec<Fault>,
    latency: Duration,
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    last_authorization: std::sync::Mutex<Option<String>>,
}

/// Counts a request as in flight for as long as it lives.
struct InFlight<'a>(&'a State);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct LoopbackTeacher {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault injected: connection dropped")
    }
}

impl std::error::Error for Dropped {}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("static"));
    r
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let n = state.requests.fetch_add(1, Ordering::SeqCst) as usize;
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _in_flight = InFlight(&state);
    *state.last_authorization.lock().expect("lock") = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Dropped),
    };
    let fault = state.faults.get(n);
    match fault {
        Some(Fault::ServerError) => {
            return Ok(reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"injected"}"#,
            ))
        }
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let mut r = reply(StatusCode::TOO_MANY_REQUESTS, r#"{"error":"slow down"}"#);
            r.headers_mut().insert(
                "retry-after",
                retry_after_secs.to_string().parse().expect("digits"),
            );
            return Ok(r);
        }
        Some(Fault::Stall(d)) => tokio::time::sleep(*d).await,
        Some(Fault::MalformedJson) => {
            return Ok(reply(StatusCode::OK, r#"{"choices": [{"message": {"#))
        }
        Some(Fault::DropConnection) => return Err(Dropped),
        Some(Fault::ContextLength) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                r#"{"object":"error","message":"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens.","type":"BadRequestError","code":400}"#,
            ))
        }
        Some(Fault::EmptyChoices) => {
            return Ok(reply(
                StatusCode::OK,
                r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":0,"total_tokens":7}}"#,
            ))
        }
        Some(Fault::Length) => {
            return Ok(reply(
                StatusCode::OK,
                r#"{"choices":[{"message":{"role":"assistant","content":"Let me look at the file.\n<tool_call>\n{\"name\": \"str_replace_editor\", \"argu"},"finish_reason":"length"}],"usage":{"prompt_tokens":7,"completion_tokens":16,"total_tokens":23}}"#,
            ))
        }
        Some(Fault::ToolCallsAsText) | Some(Fault::Reasoning) | None => {}
    }
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    let request: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("request is not JSON: {e}")}).to_string(),
            ))
        }
    };
    let mut response = super::scripted::respond(&request);
    let message = &mut response["choices"][0]["message"];
    match fault {
        Some(Fault::ToolCallsAsText) => {
            let mut text = message["content"].as_str().unwrap_or("").to_string();
            for call in message["tool_calls"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let f = &call["function"];
                let args: serde_json::Value =
                    serde_json::from_str(f["arguments"].as_str().unwrap_or("{}"))
                        .unwrap_or_default();
                text.push_str(&format!(
                    "\n<tool_call>\n{}\n</tool_call>",
                    serde_json::json!({"name": f["name"], "arguments": args})
                ));
            }
            message["content"] = text.into();
            message["tool_calls"] = serde_json::Value::Null;
        }
        Some(Fault::Reasoning) => {
            let text = message["content"].as_str().unwrap_or("").to_string();
            message["content"] =
                format!("<think>The target is the function named in the task.</think>\n{text}")
                    .into();
            message["reasoning_content"] = "First find the function, then edit it.".into();
        }
        _ => {}
    }
    Ok(reply(StatusCode::OK, response.to_string()))
}

impl LoopbackTeacher {
    /// Serves on 127.0.0.1 (a free port). Request i (from 0) gets `faults[i]`, if any; every
    /// good answer waits `latency` first, as a model would.
    pub async fn start(faults: Vec<Fault>, latency: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            faults,
            latency,
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            last_authorization: std::sync::Mutex::new(None),
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, state.clone()));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(LoopbackTeacher { addr, state, task })
    }

    /// The endpoint to give an OpenAI client: `http://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The most requests it was answering at once.
    pub fn max_in_flight(&self) -> u64 {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// The `Authorization` header of the last request.
    pub fn last_authorization(&self) -> Option<String> {
        self.state.last_authorization.lock().expect("lock").clone()
    }

    /// Requests received so far, faulty ones included.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }
}

impl Drop for LoopbackTeacher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
