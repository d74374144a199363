//! SWE-agent `.traj` files, both generations, into the one trajectory model.
//!
//! - 0.x: `history` items with string `content`, the action as text (`action`), no tool calls.
//!   Each action becomes a `bash` tool call `{"command": ACTION}` with a made-up id, and the
//!   observation after it (the next user message) the tool result answering it.
//! - 1.x: `history` items with `tool_calls` (id, function name, JSON-string arguments),
//!   observations as `tool` messages with `tool_call_ids`, content a string or a list of
//!   `{type, text}` parts, `thought` kept as `reasoning_content`; `replay_config` (a JSON
//!   string or object) may hold the tool specs.
//!
//! The patch: a sidecar `NAME.patch` (SWE-agent's `patches/` output), else `model_patch` of a
//! sidecar `NAME.pred`, else `info.submission`.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use super::place::At;
use crate::corpus::Imported;
use crate::trajectory::{FunctionCall, Message, Role, ToolCall, Trajectory};

/// Text of a `content` that is a string (moved, not copied) or a list of `{type, text}` parts.
fn content_text(v: Value, at: &At) -> Result<String> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s),
        Value::Array(parts) => {
            let mut out = String::new();
            for (i, p) in parts.iter().enumerate() {
                match p.get("text").and_then(Value::as_str) {
                    Some(t) => out.push_str(t),
                    None if p.is_string() => out.push_str(p.as_str().unwrap_or_default()),
                    None => bail!("{at}: content part {i} has no `text`"),
                }
            }
            Ok(out)
        }
        other => bail!("{at}: `content` is {other}, expected a string or a list of parts"),
    }
}

fn role(v: &Value, at: &At) -> Result<Role> {
    Ok(match v.as_str() {
        Some("system") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        other => bail!("{at}: `role` is {other:?}, expected system, user, assistant or tool"),
    })
}

/// `arguments` as a JSON text, whether the file has a string or an object.
fn arguments(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "{}".into(),
        other => crate::digest::canonical_json(other),
    }
}

/// Tool specs from a `replay_config` (a JSON string or object), where it lists them.
fn tool_specs(replay_config: Option<&Value>) -> Vec<Value> {
    let rc = match replay_config {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).unwrap_or(Value::Null),
        Some(v) => v.clone(),
        None => return Vec::new(),
    };
    for ptr in ["/agent/tools/tools", "/agent/tools/commands", "/tools"] {
        if let Some(list) = rc.pointer(ptr).and_then(Value::as_array) {
            let specs: Vec<Value> = list
                .iter()
                .filter(|t| t.get("function").is_some() || t.get("name").is_some())
                .map(|t| {
                    if t.get("function").is_some() {
                        t.clone()
                    } else {
                        json!({"type": "function", "function": t})
                    }
                })
                .collect();
            if !specs.is_empty() {
                return specs;
            }
        }
    }
    Vec::new()
}

/// The parts of a `.traj` file an import reads. Everything else (the per-step `trajectory`,
/// which repeats the history, the environment, the model statistics) is skipped while
/// parsing, never built.
#[derive(serde::Deserialize)]
struct Doc {
    history: Option<Value>,
    #[serde(default)]
    info: Option<Value>,
    #[serde(default)]
    replay_config: Option<Value>,
}

pub fn parse(path: &Path, bytes: &[u8]) -> Result<Imported> {
    let shown = path.display().to_string();
    let doc: Doc = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            anyhow!("{shown}: expected a `history` list (a SWE-agent .traj file): {e}")
        } else {
            anyhow!("{shown}:{}:{}: not valid JSON: {e}", e.line(), e.column())
        }
    })?;
    let Some(Value::Array(history)) = doc.history else {
        bail!("{shown}: expected a `history` list (a SWE-agent .traj file)");
    };
    let messages = history_messages(history, &shown)?;
    let sidecar = |ext: &str| path.with_extension(ext);
    let patch = if let Ok(p) = std::fs::read_to_string(sidecar("patch")) {
        Some(p)
    } else if let Ok(p) = std::fs::read(sidecar("pred")) {
        let v: Value = serde_json::from_slice(&p)
            .map_err(|e| anyhow!("{}: not valid JSON: {e}", sidecar("pred").display()))?;
        v.get("model_patch")
            .and_then(Value::as_str)
            .map(String::from)
    } else {
        doc.info
            .as_ref()
            .and_then(|i| i.get("submission"))
            .and_then(Value::as_str)
            .map(String::from)
    };
    let instance = path
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".traj").to_string());
    Ok(Imported {
        format: "swe-agent",
        source: shown,
        locator: "whole file".into(),
        instance_id: instance,
        trajectory: Trajectory {
            tools: {
                let specs = tool_specs(doc.replay_config.as_ref());
                if specs.is_empty() {
                    super::tools::implicit_tools(&messages)
                } else {
                    specs
                }
            },
            messages,
            steps: Vec::new(),
            environment: None,
        },
        patch,
        meta: Value::Null,
    })
}

/// SWE-agent history items (either generation) as messages, their texts moved out of the items;
/// `shown` names them in errors.
pub fn history_messages(history: Vec<Value>, shown: &str) -> Result<Vec<Message>> {
    // 0.x: the id of the action still waiting for its observation.
    let mut pending: Option<String> = None;
    let mut calls_seen = std::collections::HashSet::new();
    let mut messages = Vec::with_capacity(history.len());
    for (i, mut h) in history.into_iter().enumerate() {
        let at = At {
            shown,
            list: "history",
            index: i,
        };
        let role = role(h.get("role").unwrap_or(&Value::Null), &at)?;
        let content = content_text(h.get_mut("content").map_or(Value::Null, Value::take), &at)?;
        let mut m = Message::text(role, content);
        match role {
            Role::Assistant => {
                if let Some(Value::String(t)) = h.get_mut("thought").map(Value::take) {
                    m.reasoning_content = Some(t);
                }
                if let Some(tc) = h.get("tool_calls").and_then(Value::as_array) {
                    for (k, c) in tc.iter().enumerate() {
                        let f = c
                            .get("function")
                            .ok_or_else(|| anyhow!("{at}: tool_calls[{k}] has no `function`"))?;
                        let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
                            anyhow!("{at}: tool_calls[{k}].function has no `name`")
                        })?;
                        let id = c
                            .get("id")
                            .and_then(Value::as_str)
                            .map(String::from)
                            .unwrap_or_else(|| format!("call_{i}_{k}"));
                        calls_seen.insert(id.clone());
                        m.tool_calls.push(ToolCall {
                            function: FunctionCall {
                                arguments: arguments(f.get("arguments").unwrap_or(&Value::Null)),
                                name: name.to_string(),
                            },
                            id,
                            kind: "function".into(),
                        });
                    }
                } else if let Some(action) = h.get("action").and_then(Value::as_str) {
                    let id = format!("call_{i}");
                    calls_seen.insert(id.clone());
                    m.tool_calls.push(ToolCall {
                        function: FunctionCall {
                            arguments: crate::digest::canonical_json(
                                &json!({"command": action.trim_end_matches('\n')}),
                            ),
                            name: "bash".into(),
                        },
                        id: id.clone(),
                        kind: "function".into(),
                    });
                    pending = Some(id);
                }
            }
            Role::Tool => {
                let ids: Vec<String> = match h.get("tool_call_ids") {
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect(),
                    _ => h
                        .get("tool_call_id")
                        .and_then(Value::as_str)
                        .map(|s| vec![s.to_string()])
                        .unwrap_or_default(),
                };
                let Some(id) = ids.first() else {
                    bail!("{at}: a tool result without `tool_call_ids`");
                };
                if !calls_seen.contains(id) {
                    bail!("{at}: a tool result for call id {id:?}, which no earlier assistant message made");
                }
                m.tool_call_id = Some(id.clone());
            }
            Role::User if h.get("is_demo").and_then(Value::as_bool) != Some(true) => {
                // 0.x: the observation of the last action, as its tool result.
                if let Some(id) = pending.take() {
                    m.role = Role::Tool;
                    m.tool_call_id = Some(id);
                }
            }
            _ => {}
        }
        messages.push(m);
    }
    Ok(messages)
}
