//! The one trajectory model: OpenAI chat messages with tool calls, as trainers load them.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// A JSON object as text, exactly as the model wrote it (it may not even be valid JSON).
    pub arguments: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub function: FunctionCall,
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// Fields are declared in key order: requests serialise canonically without re-sorting.
pub struct Message {
    /// OpenAI allows `null` content on an assistant message that only calls tools; it is kept
    /// as an empty string here so every renderer sees text.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub content: String,
    /// The model's thinking, where the server reports it (vLLM/SGLang `reasoning_content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

impl Message {
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
            reasoning_content: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    pub fn tool_result(call_id: &str, content: impl Into<String>) -> Self {
        Message {
            tool_call_id: Some(call_id.to_string()),
            ..Message::text(Role::Tool, content)
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

/// One teacher turn: what it cost. Latency is the recorded one, so a replay is identical.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub latency_ms: u64,
    pub usage: Usage,
    pub finish_reason: String,
    /// sha256 of the canonical request this turn answered, and its sample index.
    pub request_sha256: String,
    pub sample: u32,
}

/// A rollout as stored and as shards take it: messages, the tools offered, per-step costs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    pub messages: Vec<Message>,
    /// OpenAI `tools` entries: `{"type": "function", "function": {name, description, parameters}}`.
    pub tools: Vec<serde_json::Value>,
    pub steps: Vec<Step>,
    /// What the rollout's commands ran with (`bash`): the environment, or the bare interpreter
    /// and why. Absent when the rollout ran no commands' host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<serde_json::Value>,
}
