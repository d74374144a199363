//! What a teacher is to the rest of sera-host: the chat request (and the sha256 that keys its
//! recording), the completion, the errors a caller may retry, the `Teacher` trait, and reading
//! an OpenAI-compatible response as leniently as real servers need.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::digest::canonical_json;
use crate::trajectory::{FunctionCall, Message, Role, ToolCall, Usage};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An OpenAI chat-completions request. Its canonical JSON (keys sorted, no spaces) is both
/// what is sent and what its recording is keyed by.
#[derive(Clone, Debug, Serialize)]
pub struct ChatRequest {
    // Fields in key order, as in `Message` and `ToolCall`: without extra fields the plain
    // serialisation is already canonical, with no intermediate `Value` tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    pub messages: Vec<Message>,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Shared: the same specs go with every step of a rollout.
    #[serde(skip_serializing_if = "no_tools")]
    pub tools: std::sync::Arc<[Value]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Server-specific fields (`chat_template_kwargs`, `top_k`, ...), sent as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The canonical body and its sha256, computed once: teachers, recordings and replays
    /// all need them, and a long conversation is large.
    #[serde(skip)]
    pub prepared: std::sync::OnceLock<(Vec<u8>, String)>,
}

fn no_tools(tools: &std::sync::Arc<[Value]>) -> bool {
    tools.is_empty()
}

impl ChatRequest {
    fn prepare(&self) -> &(Vec<u8>, String) {
        self.prepared.get_or_init(|| {
            // serde_json's maps are sorted (no `preserve_order`; a test guards this), so a
            // value's plain serialisation is canonical; so is the request's own when it has
            // no extra fields, its fields being declared in key order.
            let body = if self.extra.is_empty() {
                serde_json::to_vec(self).expect("a request is always JSON")
            } else {
                let value = serde_json::to_value(self).expect("a request is always JSON");
                serde_json::to_vec(&value).expect("JSON values serialise")
            };
            let sha = hex::encode(Sha256::digest(&body));
            (body, sha)
        })
    }

    /// The request body: canonical JSON.
    pub fn canonical(&self) -> &[u8] {
        &self.prepare().0
    }

    pub fn sha256(&self) -> &str {
        &self.prepare().1
    }
}

/// One answer of a teacher.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub message: Message,
    pub finish_reason: String,
    pub usage: Usage,
    /// Wall time of the exchange that produced it (the recorded one, on replay).
    pub latency_ms: u64,
    pub request_sha256: String,
    pub sample: u32,
    /// The response body as received: what a recording stores.
    pub raw_body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TeacherError {
    /// The server refused the request and would refuse it again (a 4xx such as a context
    /// length error): the rollout ends with this reason; the run goes on.
    Rejected { status: u16, message: String },
    /// Retries ran out on transient failures (5xx, 429, timeouts, dropped connections,
    /// malformed bodies).
    Unavailable { attempts: u32, last: String },
    /// Replay: nothing is recorded for this request.
    NotRecorded { request_sha256: String, sample: u32 },
    /// The corpus could not store or read an exchange.
    Storage(String),
}

impl std::fmt::Display for TeacherError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TeacherError::Rejected { status, message } => {
                write!(f, "teacher rejected the request (HTTP {status}): {message}")
            }
            TeacherError::Unavailable { attempts, last } => {
                write!(f, "teacher unavailable after {attempts} attempts: {last}")
            }
            TeacherError::NotRecorded {
                request_sha256,
                sample,
            } => write!(
                f,
                "not recorded: request {request_sha256} sample {sample} is not in the corpus (replay never calls a live teacher)"
            ),
            TeacherError::Storage(m) => write!(f, "corpus: {m}"),
        }
    }
}

impl std::error::Error for TeacherError {}

impl TeacherError {
    /// A refusal because the conversation no longer fits the model's context, in the words
    /// of vLLM, SGLang, llama.cpp and the hosted APIs.
    pub fn is_context_length(&self) -> bool {
        let TeacherError::Rejected { message, .. } = self else {
            return false;
        };
        let m = message.to_ascii_lowercase();
        [
            "context length",
            "context_length",
            "maximum context",
            "context window",
            "available context size",
            "exceeds the context",
            "too many tokens",
            "prompt is too long",
            "input is too long",
        ]
        .iter()
        .any(|p| m.contains(p))
    }
}

/// Where completions come from. `sample` tells apart repeated identical requests (several
/// rollouts of the same item): each is recorded and replayed separately.
pub trait Teacher: Send + Sync {
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        sample: u32,
    ) -> BoxFuture<'a, Result<Completion, TeacherError>>;

    /// For summaries and rollout records: `scripted`, `replay`, the endpoint URL.
    fn describe(&self) -> String;
}

/// Reads an OpenAI chat-completions response body. Tolerates what servers really send:
/// `null` content, arguments as an object instead of a string, a missing `usage`, vLLM's
/// `finish_reason: "stop"` next to tool calls (the tool calls are what counts), an empty
/// `choices` list, and tool calls written as text in `content` ([`text_calls`]).
pub fn parse_response(body: &[u8]) -> Result<(Message, String, Usage), String> {
    parse_response_with(body, &ParseOptions::default())
}

/// How responses are read; part of a run's configuration, so that a replay reads its
/// recordings the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseOptions {
    /// Tool calls written as text in `content` become tool calls (`[teacher] text_tool_calls`).
    pub text_tool_calls: bool,
}

impl ParseOptions {
    /// The options for the answer to `request`: text is searched for tool calls only where the
    /// request offered tools (a PR description that quotes a `<tool_call>` stays text).
    pub fn for_request(&self, request: &ChatRequest) -> ParseOptions {
        ParseOptions {
            text_tool_calls: self.text_tool_calls && !request.tools.is_empty(),
        }
    }
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            text_tool_calls: true,
        }
    }
}

/// [`parse_response`] with explicit options.
pub fn parse_response_with(
    body: &[u8],
    opts: &ParseOptions,
) -> Result<(Message, String, Usage), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "response is not JSON ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })?;
    // An empty list (a content filter, a server that gave up) is an answer with nothing in it:
    // the agent loop says so to the model and goes on.
    if v.get("choices")
        .and_then(Value::as_array)
        .is_some_and(|c| c.is_empty())
    {
        let usage = v
            .get("usage")
            .and_then(|u| serde_json::from_value::<Usage>(u.clone()).ok())
            .unwrap_or_default();
        return Ok((
            Message::text(Role::Assistant, ""),
            "no-choices".into(),
            usage,
        ));
    }
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or("response has no choices[0]")?;
    let msg = choice
        .get("message")
        .ok_or("response choices[0] has no message")?;
    let text = |key: &str| msg.get(key).and_then(Value::as_str).map(str::to_string);
    let mut tool_calls = Vec::new();
    if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
        for (i, call) in calls.iter().enumerate() {
            let function = call
                .get("function")
                .ok_or_else(|| format!("tool_calls[{i}] has no function"))?;
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("tool_calls[{i}].function has no name"))?;
            let arguments = match function.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => "{}".to_string(),
                Some(other) => canonical_json(other),
            };
            tool_calls.push(ToolCall {
                id: call
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                kind: "function".into(),
                function: FunctionCall {
                    name: name.to_string(),
                    arguments,
                },
            });
        }
    }
    let mut content = text("content").unwrap_or_default();
    if opts.text_tool_calls && tool_calls.is_empty() && super::text_calls::may_hold_calls(&content)
    {
        let (rest, calls) = super::text_calls::extract(&content);
        if !calls.is_empty() {
            content = rest;
            tool_calls = calls;
        }
    }
    let message = Message {
        role: Role::Assistant,
        content,
        reasoning_content: text("reasoning_content").or_else(|| text("reasoning")),
        tool_calls,
        tool_call_id: None,
    };
    let finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let usage = v
        .get("usage")
        .and_then(|u| serde_json::from_value::<Usage>(u.clone()).ok())
        .unwrap_or_default();
    Ok((message, finish_reason, usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vllm_stop_with_tool_calls_and_object_arguments() {
        let body = br#"{"choices":[{"message":{"role":"assistant","content":null,"reasoning_content":"think","tool_calls":[{"id":"c1","type":"function","function":{"name":"submit","arguments":{"b":1,"a":2}}}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
        let (m, finish, usage) = parse_response(body).unwrap();
        assert_eq!(m.content, "");
        assert_eq!(m.reasoning_content.as_deref(), Some("think"));
        assert_eq!(m.tool_calls[0].function.arguments, r#"{"a":2,"b":1}"#);
        assert_eq!(finish, "stop");
        assert_eq!(usage.total_tokens, 7);
        assert!(parse_response(b"{\"choices\": [")
            .unwrap_err()
            .starts_with("response is not JSON"));
    }

    #[test]
    fn text_tool_calls_empty_choices_and_context_length_refusals() {
        let body = br#"{"choices":[{"message":{"role":"assistant","content":"Let me look.\n<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"ls\"}}\n</tool_call>"},"finish_reason":"stop"}]}"#;
        let (m, finish, _) = parse_response(body).unwrap();
        assert_eq!(m.content, "Let me look.");
        assert_eq!(m.tool_calls.len(), 1);
        assert_eq!(m.tool_calls[0].function.name, "bash");
        assert_eq!(m.tool_calls[0].function.arguments, r#"{"command":"ls"}"#);
        assert_eq!(finish, "stop");
        let (m, finish, usage) = parse_response(
            br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":0,"total_tokens":3}}"#,
        )
        .unwrap();
        assert!(m.content.is_empty() && m.tool_calls.is_empty());
        assert_eq!(finish, "no-choices");
        assert_eq!(usage.total_tokens, 3);
        for message in [
            "the request exceeds the available context size, try increasing it",
            "This model's maximum context length is 32768 tokens. However, you requested 40000 tokens",
            "Input is too long for requested model",
        ] {
            let e = TeacherError::Rejected {
                status: 400,
                message: message.into(),
            };
            assert!(e.is_context_length(), "{message}");
        }
        assert!(!TeacherError::Rejected {
            status: 400,
            message: "invalid tool_choice".into()
        }
        .is_context_length());
    }

    #[test]
    fn canonical_requests_hash_alike_whatever_the_key_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[{"k":1,"j":0}]}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":[{"j":0,"k":1}],"y":2},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":[{"j":0,"k":1}],"y":2},"b":1}"#
        );
        // Requests rely on serde_json's sorted maps: their plain serialisation is canonical.
        assert_eq!(serde_json::to_string(&a).unwrap(), canonical_json(&a));
        let req = ChatRequest {
            model: "m".into(),
            messages: vec![Message::text(Role::User, "hi")],
            tools: vec![b].into(),
            tool_choice: Some(Value::String("required".into())),
            temperature: Some(0.5),
            top_p: None,
            seed: Some(1),
            max_tokens: None,
            extra: Map::from_iter([("top_k".to_string(), Value::from(20))]),
            prepared: Default::default(),
        };
        let value = serde_json::to_value(&req).unwrap();
        assert_eq!(req.canonical(), canonical_json(&value).as_bytes());
        // Without extra fields, with every kind of message field set.
        let mut call = Message::text(Role::Assistant, "x");
        call.reasoning_content = Some("why".into());
        call.tool_calls = vec![crate::trajectory::ToolCall {
            id: "c".into(),
            kind: "function".into(),
            function: crate::trajectory::FunctionCall {
                name: "f".into(),
                arguments: "{}".into(),
            },
        }];
        let plain = ChatRequest {
            extra: Map::new(),
            messages: vec![call, Message::tool_result("c", "out")],
            max_tokens: Some(5),
            top_p: Some(0.9),
            prepared: Default::default(),
            ..req
        };
        let value = serde_json::to_value(&plain).unwrap();
        assert_eq!(
            std::str::from_utf8(plain.canonical()).unwrap(),
            canonical_json(&value)
        );
    }
}
