//! OpenAI-format SFT files: one `{"messages": [...], "tools": [...]}` object per line.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use crate::corpus::Imported;
use crate::trajectory::{Message, Role, Trajectory};

/// One line (`n`, from 1) of the file `shown`.
pub fn parse_line(shown: &str, n: usize, line: &[u8]) -> Result<Imported> {
    {
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| anyhow!("{shown}:{n}:{}: not valid JSON: {e}", e.column()))?;
        // Owned: `messages` and `tools` are moved out of the row, not copied.
        let mut obj = match v {
            Value::Object(obj) => obj,
            other => bail!(
                "{shown}:{n}: expected a JSON object with `messages`, found {}",
                kind(&other)
            ),
        };
        let msgs = obj
            .remove("messages")
            .ok_or_else(|| anyhow!("{shown}:{n}: no `messages`"))?;
        let messages: Vec<Message> =
            serde_json::from_value(msgs).map_err(|e| anyhow!("{shown}:{n}: `messages`: {e}"))?;
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
        let tools = match obj.remove("tools") {
            None | Some(Value::Null) => super::tools::implicit_tools(&messages),
            Some(Value::Array(t)) => t,
            Some(other) => bail!("{shown}:{n}: `tools` is {}, expected a list", kind(&other)),
        };
        Ok(Imported {
            format: "openai-jsonl",
            source: shown.to_string(),
            locator: format!("line {n}"),
            instance_id: None,
            trajectory: Trajectory {
                messages,
                tools,
                steps: Vec::new(),
                environment: None,
            },
            patch: None,
            meta: Value::Null,
        })
    }
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
