//! `builtin:truncate-ratio`, SERA's truncation policy. Each message is rendered as ChatML
//! (Qwen's format, tool calls as `<tool_call>` blocks, tool results as `<tool_response>` in a
//! user turn) and counted with the host's tokenizer. The first message at which the running
//! total reaches the budget is found; the messages up to the last assistant message before it
//! are kept. A trajectory that fits is returned whole; one where no assistant message comes
//! before the budget is reached is dropped (`err`). The host computes the ratio (kept / all)
//! and applies the threshold.
//!
//! Config (JSON object, optional): `{}` — nothing to configure yet; unknown keys are errors.

/// How one message looks in ChatML, as the Qwen chat templates render it.
pub fn chatml(role: &str, content: &str, calls: &[(String, String)]) -> String {
    let mut out = String::new();
    if role == "tool" {
        out.push_str("<|im_start|>user\n<tool_response>\n");
        out.push_str(content);
        out.push_str("\n</tool_response><|im_end|>\n");
        return out;
    }
    out.push_str("<|im_start|>");
    out.push_str(role);
    out.push('\n');
    out.push_str(content);
    for (name, arguments) in calls {
        out.push_str("\n<tool_call>\n{\"name\": \"");
        out.push_str(name);
        out.push_str("\", \"arguments\": ");
        out.push_str(arguments);
        out.push_str("}\n</tool_call>");
    }
    out.push_str("<|im_end|>\n");
    out
}

/// How many messages to keep, given each message's role and token count: `None` to drop.
pub fn keep(roles: &[&str], tokens: &[u32], budget: u32) -> Option<usize> {
    let mut total: u64 = 0;
    for (i, n) in tokens.iter().enumerate() {
        total += u64::from(*n);
        if total >= u64::from(budget) {
            return roles[..i]
                .iter()
                .rposition(|r| *r == "assistant")
                .map(|j| j + 1);
        }
    }
    Some(roles.len())
}

#[cfg(target_family = "wasm")]
mod guest {
    use super::*;

    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "truncation",
    });

    use exports::sera::plugin::truncate::Guest;
    use sera::plugin::tokenizer::count_tokens;
    use sera::plugin::types::{Role, Trajectory};

    struct TruncateRatio;

    fn role(r: Role) -> &'static str {
        match r {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    impl Guest for TruncateRatio {
        fn init(config: String) -> Result<(), String> {
            let c = config.trim();
            if c.is_empty() || c == "{}" {
                Ok(())
            } else {
                Err(format!("truncate-ratio takes no configuration, got {c}"))
            }
        }

        fn truncate(trajectory: Trajectory, budget: u32) -> Result<Trajectory, String> {
            let roles: Vec<&str> = trajectory.messages.iter().map(|m| role(m.role)).collect();
            let tokens: Vec<u32> = trajectory
                .messages
                .iter()
                .map(|m| {
                    let calls: Vec<(String, String)> = m
                        .tool_calls
                        .iter()
                        .map(|c| (c.name.clone(), c.arguments.clone()))
                        .collect();
                    count_tokens(&chatml(role(m.role), &m.content, &calls))
                })
                .collect();
            match keep(&roles, &tokens, budget) {
                Some(n) => {
                    let mut t = trajectory;
                    t.messages.truncate(n);
                    Ok(t)
                }
                None => Err(format!(
                    "no assistant message before the budget of {budget} tokens is reached"
                )),
            }
        }
    }

    export!(TruncateRatio);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_last_assistant_before_the_budget() {
        let roles = ["system", "user", "assistant", "tool", "assistant", "tool"];
        assert_eq!(keep(&roles, &[10, 10, 10, 10, 10, 10], 100), Some(6));
        // Reached at index 4 (total 50): keep up to the assistant at 2.
        assert_eq!(keep(&roles, &[10, 10, 10, 10, 10, 10], 50), Some(3));
        // Reached exactly at index 5 (60): the assistant at 4 is kept.
        assert_eq!(keep(&roles, &[10, 10, 10, 10, 10, 10], 60), Some(5));
        // Reached before any assistant message.
        assert_eq!(keep(&roles, &[10, 100, 10, 10, 10, 10], 50), None);
    }

    #[test]
    fn chatml_renders_tool_calls_and_results() {
        let a = chatml(
            "assistant",
            "Look.",
            &[("view".into(), "{\"path\":\"a.py\"}".into())],
        );
        assert_eq!(
            a,
            "<|im_start|>assistant\nLook.\n<tool_call>\n{\"name\": \"view\", \"arguments\": {\"path\":\"a.py\"}}\n</tool_call><|im_end|>\n"
        );
        assert_eq!(
            chatml("tool", "ok", &[]),
            "<|im_start|>user\n<tool_response>\nok\n</tool_response><|im_end|>\n"
        );
    }
}
