//! How a trajectory's messages are written into a shard row:
//!
//! - `openai`: the messages as they are, tool calls structured (`tool_calls` with JSON-string
//!   `arguments`, `tool` messages with `tool_call_id`): what TRL/Axolotl chat templates take.
//! - `hermes`: tool calls in the assistant text as `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`
//!   (exactly as Qwen's chat template writes them), tool results as user turns wrapped in
//!   `<tool_response>\n…\n</tool_response>` (consecutive results in one turn).
//! - `xml`: tool calls as `<function=NAME>\n<parameter=KEY>VALUE</parameter>\n</function>` (as
//!   SWE-smith and SERA's post-processing write them), tool results as user turns.
//!
//! `reasoning_content` is kept as it is in every rendering.

use serde_json::Value;

use crate::trajectory::{Message, Role};

pub use crate::config::reshard::Render;

/// A call's arguments as a JSON object text: the stored text when it is one, else wrapped.
fn arguments_object(args: &str) -> String {
    match serde_json::from_str::<Value>(args) {
        Ok(Value::Object(_)) => args.to_string(),
        Ok(other) => format!("{{\"input\": {other}}}"),
        Err(_) => format!("{{\"input\": {}}}", Value::String(args.to_string())),
    }
}

fn hermes_call(name: &str, args: &str) -> String {
    format!(
        "<tool_call>\n{{\"name\": {}, \"arguments\": {}}}\n</tool_call>",
        Value::String(name.to_string()),
        arguments_object(args)
    )
}

fn xml_call(name: &str, args: &str) -> String {
    let mut s = format!("<function={name}>\n");
    let params: Vec<(String, String)> = match serde_json::from_str::<Value>(args) {
        Ok(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(t) => t,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect(),
        Ok(other) => vec![("input".into(), other.to_string())],
        Err(_) => vec![("input".into(), args.to_string())],
    };
    for (k, v) in params {
        s.push_str(&format!("<parameter={k}>{v}</parameter>\n"));
    }
    s.push_str("</function>");
    s
}

/// Appends `text` to `content` on a new line (or as the whole content when it is empty).
fn append(content: &mut String, text: &str) {
    if !content.is_empty() && !content.ends_with('\n') {
        content.push('\n');
    }
    content.push_str(text);
}

/// The messages of a row in `render`'s convention.
pub fn render(messages: &[Message], render: Render) -> Vec<Message> {
    if render == Render::Openai {
        return messages.to_vec();
    }
    let mut out: Vec<Message> = Vec::with_capacity(messages.len());
    let mut in_results = false;
    for m in messages {
        match m.role {
            Role::Assistant => {
                let mut content = m.content.clone();
                for c in &m.tool_calls {
                    let call = match render {
                        Render::Hermes => hermes_call(&c.function.name, &c.function.arguments),
                        _ => xml_call(&c.function.name, &c.function.arguments),
                    };
                    append(&mut content, &call);
                }
                let mut a = Message::text(Role::Assistant, content);
                a.reasoning_content = m.reasoning_content.clone();
                out.push(a);
                in_results = false;
            }
            Role::Tool => {
                let block = match render {
                    Render::Hermes => format!("<tool_response>\n{}\n</tool_response>", m.content),
                    _ => m.content.clone(),
                };
                match out.last_mut() {
                    Some(prev) if in_results => {
                        prev.content.push_str(if render == Render::Hermes {
                            "\n"
                        } else {
                            "\n\n"
                        });
                        prev.content.push_str(&block);
                    }
                    _ => out.push(Message::text(Role::User, block)),
                }
                in_results = true;
            }
            _ => {
                let mut u = Message::text(m.role, m.content.clone());
                u.reasoning_content = m.reasoning_content.clone();
                out.push(u);
                in_results = false;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trajectory::{FunctionCall, ToolCall};

    fn conversation() -> Vec<Message> {
        let mut a = Message::text(Role::Assistant, "Let me look.");
        a.tool_calls = vec![
            ToolCall {
                function: FunctionCall {
                    arguments: r#"{"command":"ls -la","timeout":5}"#.into(),
                    name: "bash".into(),
                },
                id: "c1".into(),
                kind: "function".into(),
            },
            ToolCall {
                function: FunctionCall {
                    arguments: r#"{"path":"a.py"}"#.into(),
                    name: "view".into(),
                },
                id: "c2".into(),
                kind: "function".into(),
            },
        ];
        let mut t1 = Message::text(Role::Tool, "a.py\nb.py");
        t1.tool_call_id = Some("c1".into());
        let mut t2 = Message::text(Role::Tool, "1 import os");
        t2.tool_call_id = Some("c2".into());
        vec![
            Message::text(Role::System, "You are an agent."),
            Message::text(Role::User, "Fix it."),
            a,
            t1,
            t2,
        ]
    }

    #[test]
    fn hermes_writes_calls_as_qwen_does_and_groups_results() {
        let r = render(&conversation(), Render::Hermes);
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[2].content,
            "Let me look.\n<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\":\"ls -la\",\"timeout\":5}}\n</tool_call>\n<tool_call>\n{\"name\": \"view\", \"arguments\": {\"path\":\"a.py\"}}\n</tool_call>"
        );
        assert!(r[2].tool_calls.is_empty());
        assert_eq!(r[3].role, Role::User);
        assert_eq!(
            r[3].content,
            "<tool_response>\na.py\nb.py\n</tool_response>\n<tool_response>\n1 import os\n</tool_response>"
        );
    }

    #[test]
    fn xml_writes_functions_with_parameters() {
        let r = render(&conversation(), Render::Xml);
        assert_eq!(
            r[2].content,
            "Let me look.\n<function=bash>\n<parameter=command>ls -la</parameter>\n<parameter=timeout>5</parameter>\n</function>\n<function=view>\n<parameter=path>a.py</parameter>\n</function>"
        );
        assert_eq!(r[3].role, Role::User);
        assert_eq!(r[3].content, "a.py\nb.py\n\n1 import os");
    }

    #[test]
    fn openai_keeps_structure() {
        let c = conversation();
        assert_eq!(render(&c, Render::Openai), c);
    }
}
