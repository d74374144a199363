//! mini-swe-agent `*.traj.json`: `messages` (role and content, the action a ```bash block in
//! the assistant's text), `info.submission`, `trajectory_format`. Each action becomes a `bash`
//! tool call `{"command": ...}` answered by the next user message.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use super::place::At;
use crate::corpus::Imported;
use crate::trajectory::{FunctionCall, Message, Role, ToolCall, Trajectory};

/// The first ```bash (or ```sh) block of an assistant message.
pub fn bash_action(text: &str) -> Option<String> {
    let start = ["```bash\n", "```sh\n"]
        .iter()
        .find_map(|f| text.find(f).map(|i| i + f.len()))?;
    let end = text[start..].find("```")?;
    Some(text[start..start + end].trim_end_matches('\n').to_string())
}

pub fn parse(path: &Path, bytes: &[u8]) -> Result<Imported> {
    let shown = path.display().to_string();
    let mut doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| anyhow!("{shown}:{}:{}: not valid JSON: {e}", e.line(), e.column()))?;
    // Taken out of the document: each message's text is moved, not copied.
    let Some(Value::Array(list)) = doc.get_mut("messages").map(Value::take) else {
        bail!("{shown}: expected a `messages` list (a mini-swe-agent .traj.json file)");
    };
    let mut messages = Vec::with_capacity(list.len());
    let mut pending: Option<String> = None;
    for (i, mut m) in list.into_iter().enumerate() {
        let at = At {
            shown: &shown,
            list: "messages",
            index: i,
        };
        let role = match m.get("role").and_then(Value::as_str) {
            Some("system") => Role::System,
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            other => bail!("{at}: `role` is {other:?}, expected system, user or assistant"),
        };
        let content = match m.get_mut("content").map(Value::take) {
            Some(Value::String(s)) => s,
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
            _ => bail!("{at}: `content` must be a string or a list of parts"),
        };
        let mut msg = Message::text(role, content);
        match role {
            Role::Assistant => {
                if let Some(action) = bash_action(&msg.content) {
                    let id = format!("call_{i}");
                    msg.tool_calls.push(ToolCall {
                        function: FunctionCall {
                            arguments: crate::digest::canonical_json(&json!({"command": action})),
                            name: "bash".into(),
                        },
                        id: id.clone(),
                        kind: "function".into(),
                    });
                    pending = Some(id);
                }
            }
            Role::User => {
                if let Some(id) = pending.take() {
                    msg.role = Role::Tool;
                    msg.tool_call_id = Some(id);
                }
            }
            _ => {}
        }
        messages.push(msg);
    }
    Ok(Imported {
        format: "mini-swe-agent",
        source: shown,
        locator: "whole file".into(),
        instance_id: path.file_name().map(|n| {
            n.to_string_lossy()
                .trim_end_matches(".traj.json")
                .to_string()
        }),
        trajectory: Trajectory {
            tools: super::tools::implicit_tools(&messages),
            messages,
            steps: Vec::new(),
            environment: None,
        },
        patch: doc
            .pointer("/info/submission")
            .and_then(Value::as_str)
            .map(String::from),
        meta: json!({"trajectory_format": doc.get("trajectory_format")}),
    })
}
