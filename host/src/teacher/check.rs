//! `sera-host teacher check URL`: what a user runs against a server before a long job. It lists
//! the models, reads the context length where the server says it, sends tool-calling requests
//! with `tool_choice` auto and required and says how the calls came back (structured, or as
//! text in `content` that sera-host parses), whether `seed` makes answers repeatable, and the
//! latency and tokens/s of N concurrent requests.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::protocol::parse_response;

pub struct CheckOptions {
    /// The endpoint as `[teacher] url` takes it: `http://host:port/v1`.
    pub url: String,
    pub model: Option<String>,
    pub api_key: Option<String>,
    pub concurrency: usize,
    pub timeout: Duration,
}

#[derive(Debug, Serialize)]
pub struct ToolProbe {
    pub tool_choice: String,
    /// `structured` (the server parsed them), `text-hermes` / `text-xml` (in `content`, parsed
    /// by sera-host), `none` (an answer without a call), `error`.
    pub calls: String,
    pub valid_arguments: bool,
    pub finish_reason: String,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ToolProbe {
    fn failed(tool_choice: &str, latency_ms: u64, error: String) -> ToolProbe {
        ToolProbe {
            tool_choice: tool_choice.into(),
            calls: "error".into(),
            valid_arguments: false,
            finish_reason: String::new(),
            latency_ms,
            error: Some(error),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub url: String,
    pub models: Vec<String>,
    pub model: String,
    pub context_length: Option<u64>,
    pub context_length_from: Option<String>,
    pub tool_calls: Vec<ToolProbe>,
    pub seed_repeatable: Option<bool>,
    pub concurrency: usize,
    pub latency_ms_median: u64,
    pub latency_ms_max: u64,
    pub completion_tokens: u64,
    pub tokens_per_s: f64,
    pub usable: bool,
    pub problems: Vec<String>,
    pub advice: Vec<String>,
}

fn bash_tool() -> Value {
    json!({
        "type": "function",
        "function": {
            "name": "bash",
            "description": "Run a bash command in the repository and return its output.",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string", "description": "The command line."}},
                "required": ["command"]
            }
        }
    })
}

struct Client {
    http: reqwest::Client,
    base: String,
    api_key: Option<String>,
    timeout: Duration,
}

impl Client {
    /// (body, latency in ms) of a successful exchange; the status and the body's start
    /// otherwise.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(Vec<u8>, u64), String> {
        let start = Instant::now();
        let mut req = req.timeout(self.timeout);
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        let ms = start.elapsed().as_millis() as u64;
        if !status.is_success() {
            return Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
        Ok((body.to_vec(), ms))
    }

    async fn get(&self, url: &str) -> Result<Value, String> {
        let (body, _) = self.send(self.http.get(url)).await?;
        serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
    }

    /// (raw response, latency) of one chat completion.
    async fn chat(&self, body: &Value) -> Result<(Vec<u8>, u64), String> {
        self.send(
            self.http
                .post(format!("{}/chat/completions", self.base))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(body).expect("a request is always JSON")),
        )
        .await
    }
}

fn context_length(models: &Value, props: Option<&Value>, model: &str) -> Option<(u64, String)> {
    let entry = models["data"]
        .as_array()
        .and_then(|d| d.iter().find(|m| m["id"] == model));
    if let Some(n) = entry.and_then(|m| m["max_model_len"].as_u64()) {
        return Some((n, "/v1/models max_model_len".into()));
    }
    if let Some(n) = props.and_then(|p| p["default_generation_settings"]["n_ctx"].as_u64()) {
        return Some((
            n,
            "/props default_generation_settings.n_ctx (per slot)".into(),
        ));
    }
    if let Some(n) = props.and_then(|p| p["n_ctx"].as_u64()) {
        return Some((n, "/props n_ctx".into()));
    }
    if let Some(n) = entry.and_then(|m| m["meta"]["n_ctx_train"].as_u64()) {
        return Some((
            n,
            "/v1/models meta.n_ctx_train (trained, not served)".into(),
        ));
    }
    entry
        .and_then(|m| m["context_length"].as_u64())
        .map(|n| (n, "/v1/models context_length".into()))
}

/// Runs every probe. `Err` only where the URL itself is unusable as given.
pub async fn check(opts: &CheckOptions) -> anyhow::Result<CheckReport> {
    let base = opts.url.trim_end_matches('/').to_string();
    let base = base
        .strip_suffix("/chat/completions")
        .map(str::to_string)
        .unwrap_or(base);
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        anyhow::bail!("teacher URL {:?}: expected http:// or https://", opts.url);
    }
    let client = Client {
        http: reqwest::Client::builder()
            .connect_timeout(opts.timeout.min(Duration::from_secs(30)))
            .build()?,
        base: base.clone(),
        api_key: opts.api_key.clone(),
        timeout: opts.timeout,
    };
    let mut problems = Vec::new();
    let mut advice = Vec::new();
    let models_v = match client.get(&format!("{base}/models")).await {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("GET {base}/models: {e}"));
            Value::Null
        }
    };
    let models: Vec<String> = models_v["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|m| m["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let model = match (&opts.model, models.first()) {
        (Some(m), _) => {
            if !models.is_empty() && !models.contains(m) {
                problems.push(format!(
                    "model {m:?} is not among the server's models ({})",
                    models.join(", ")
                ));
            }
            m.clone()
        }
        (None, Some(m)) => m.clone(),
        (None, None) => {
            problems.push("the server lists no model and none was given (--model)".into());
            String::new()
        }
    };
    // llama.cpp's /props sits at the server's root, beside /v1.
    let root = base.strip_suffix("/v1").unwrap_or(&base);
    let props = client.get(&format!("{root}/props")).await.ok();
    let ctx = context_length(&models_v, props.as_ref(), &model);

    let system = "You are a coding agent working in a repository. Act only through the tools.";
    let user = "Run `ls` in the repository with the bash tool.";
    let mut tool_calls = Vec::new();
    for choice in ["auto", "required"] {
        let body = json!({
            "model": model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "tools": [bash_tool()],
            "tool_choice": choice,
            "max_tokens": 256,
            "seed": 1234,
        });
        let probe = match client.chat(&body).await {
            Err(e) => ToolProbe::failed(choice, 0, e),
            Ok((raw, ms)) => {
                let v: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
                let msg = &v["choices"][0]["message"];
                let structured = msg["tool_calls"].as_array().is_some_and(|c| !c.is_empty());
                let content = msg["content"].as_str().unwrap_or("");
                match parse_response(&raw) {
                    Err(e) => ToolProbe::failed(choice, ms, e),
                    Ok((m, finish, _)) => ToolProbe {
                        tool_choice: choice.into(),
                        calls: if m.tool_calls.is_empty() {
                            "none"
                        } else if structured {
                            "structured"
                        } else if content.contains("<tool_call>{")
                            || content.contains("<tool_call>\n{")
                        {
                            "text-hermes"
                        } else {
                            "text-xml"
                        }
                        .into(),
                        valid_arguments: !m.tool_calls.is_empty()
                            && m.tool_calls.iter().all(|c| {
                                serde_json::from_str::<Value>(&c.function.arguments)
                                    .is_ok_and(|a| a.is_object())
                            }),
                        finish_reason: finish,
                        latency_ms: ms,
                        error: None,
                    },
                }
            }
        };
        tool_calls.push(probe);
    }
    let any_calls = tool_calls
        .iter()
        .any(|p| p.calls != "none" && p.calls != "error");
    if !any_calls {
        problems.push(
            "no tool call came back with tool_choice auto or required: the pipeline's rollouts would never act (start the server with tool calling on, e.g. llama-server --jinja, vLLM --enable-auto-tool-choice --tool-call-parser ...)".into(),
        );
    } else {
        let auto = &tool_calls[0];
        if auto.calls == "none" || auto.calls == "error" {
            advice.push("tool calls came back only with tool_choice \"required\": set tool_choice = \"required\" in [teacher] of pipeline.toml".into());
        }
        if tool_calls.iter().any(|p| p.calls.starts_with("text-")) {
            advice.push("the server returned tool calls as text in content; sera-host parses them (hermes <tool_call> and <function=...> xml), but a server-side tool parser is more robust".into());
        }
        if tool_calls
            .iter()
            .any(|p| p.calls != "none" && p.calls != "error" && !p.valid_arguments)
        {
            advice.push("some arguments were not a valid JSON object: the agent loop tells the model so and goes on, but expect wasted turns".into());
        }
    }

    // seed: the same request twice.
    let seeded = json!({
        "model": model,
        "messages": [{"role": "user", "content": "Write one sentence about version control."}],
        "max_tokens": 32,
        "seed": 42,
        "temperature": 0.8,
    });
    let mut answers = Vec::new();
    for _ in 0..2 {
        if let Ok((raw, _)) = client.chat(&seeded).await {
            if let Ok((m, _, _)) = parse_response(&raw) {
                answers.push(m.content);
            }
        }
    }
    let seed_repeatable = (answers.len() == 2).then(|| answers[0] == answers[1]);
    if seed_repeatable == Some(false) {
        advice.push("seed does not make answers repeatable here: reruns record new exchanges (replay and audit still reproduce the recorded run exactly)".into());
    }

    // N concurrent plain requests.
    let n = opts.concurrency.max(1);
    let plain = json!({
        "model": model,
        "messages": [{"role": "user", "content": "Count from one to twenty in words."}],
        "max_tokens": 64,
    });
    let start = Instant::now();
    let futures: Vec<_> = (0..n).map(|_| client.chat(&plain)).collect();
    let results = futures::future::join_all(futures).await;
    let wall = start.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    let mut tokens = 0u64;
    for r in &results {
        match r {
            Ok((raw, ms)) => {
                lat.push(*ms);
                if let Ok((_, _, u)) = parse_response(raw) {
                    tokens += u.completion_tokens;
                }
            }
            Err(e) => problems.push(format!("a concurrent request failed: {e}")),
        }
    }
    lat.sort_unstable();
    if tokens == 0 && !lat.is_empty() {
        advice.push(
            "the server reports no usage: token budgets and tokens/s cannot be counted".into(),
        );
    }
    Ok(CheckReport {
        url: base,
        models,
        model,
        context_length: ctx.as_ref().map(|c| c.0),
        context_length_from: ctx.map(|c| c.1),
        tool_calls,
        seed_repeatable,
        concurrency: n,
        latency_ms_median: lat.get(lat.len() / 2).copied().unwrap_or(0),
        latency_ms_max: lat.last().copied().unwrap_or(0),
        completion_tokens: tokens,
        tokens_per_s: if wall > 0.0 {
            tokens as f64 / wall
        } else {
            0.0
        },
        usable: problems.is_empty(),
        problems,
        advice,
    })
}
