//! OpenAI-format SFT files: one `{"messages": [...], "tools": [...]}` object per line.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::Imported;
use crate::rollout::trajectory::{Message, Role, Trajectory};

pub fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<Imported>> {
    let shown = path.display().to_string();
    let mut out = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let n = i + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| anyhow!("{shown}:{n}:{}: not valid JSON: {e}", e.column()))?;
        let Some(obj) = v.as_object() else {
            bail!(
                "{shown}:{n}: expected a JSON object with `messages`, found {}",
                kind(&v)
            );
        };
        let msgs = obj
            .get("messages")
            .ok_or_else(|| anyhow!("{shown}:{n}: no `messages`"))?;
        let messages: Vec<Message> = serde_json::from_value(msgs.clone())
            .map_err(|e| anyhow!("{shown}:{n}: `messages`: {e}"))?;
        let mut calls = std::collections::HashSet::new();
        for (k, m) in messages.iter().enumerate() {
            calls.extend(m.tool_calls.iter().map(|c| c.id.clone()));
            if m.role == Role::Tool {
                match &m.tool_call_id {
                    Some(id) if calls.contains(id) => {}
                    Some(id) => bail!(
                        "{shown}:{n}: messages[{k}]: a tool result for call id {id:?}, which no earlier assistant message made"
                    ),
                    None => bail!("{shown}:{n}: messages[{k}]: a tool message without `tool_call_id`"),
                }
            }
        }
        let tools = match obj.get("tools") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(t)) => t.clone(),
            Some(other) => bail!("{shown}:{n}: `tools` is {}, expected a list", kind(other)),
        };
        out.push(Imported {
            format: "openai-jsonl",
            source: shown.clone(),
            locator: format!("line {n}"),
            instance_id: None,
            trajectory: Trajectory {
                messages,
                tools,
                steps: Vec::new(),
            },
            patch: None,
            meta: Value::Null,
        });
    }
    Ok(out)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
