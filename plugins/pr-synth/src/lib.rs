//! `builtin:pr-synth`: turns rollout 1 (its trajectory and patch P1) into a pull-request-like
//! description of the problem, with reproduction steps and no fix, by asking the teacher
//! through the host's `llm` import. Rollout 2 starts from this text alone.
//!
//! Config (JSON object, all optional):
//! `{"demonstrations": ["an issue text", ...], "max_tokens": 1024, "max_step_chars": 400,
//!   "max_patch_chars": 8000}`. Demonstrations are issues in the style the output should take.

use serde_json::Value;

#[derive(Debug)]
pub struct Config {
    pub demonstrations: Vec<String>,
    pub max_tokens: Option<u32>,
    pub max_step_chars: usize,
    pub max_patch_chars: usize,
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, String> {
        let text = if text.trim().is_empty() { "{}" } else { text };
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("pr-synth: config is not JSON: {e}"))?;
        let obj = v
            .as_object()
            .ok_or("pr-synth: config must be a JSON object")?;
        let mut c = Config {
            demonstrations: Vec::new(),
            max_tokens: Some(1024),
            max_step_chars: 400,
            max_patch_chars: 8000,
        };
        for (k, v) in obj {
            match k.as_str() {
                "demonstrations" => {
                    c.demonstrations = v
                        .as_array()
                        .and_then(|a| a.iter().map(|d| d.as_str().map(String::from)).collect())
                        .ok_or("pr-synth: `demonstrations` must be a list of strings")?
                }
                "max_tokens" => {
                    c.max_tokens = Some(
                        v.as_u64()
                            .and_then(|n| u32::try_from(n).ok())
                            .ok_or("pr-synth: `max_tokens` must be a positive integer")?,
                    )
                }
                "max_step_chars" | "max_patch_chars" => {
                    let n = v
                        .as_u64()
                        .ok_or(format!("pr-synth: `{k}` must be a positive integer"))?
                        as usize;
                    if k == "max_step_chars" {
                        c.max_step_chars = n
                    } else {
                        c.max_patch_chars = n
                    }
                }
                other => {
                    return Err(format!(
                        "pr-synth: unknown config key `{other}` (known: demonstrations, max_tokens, max_step_chars, max_patch_chars)"
                    ))
                }
            }
        }
        Ok(c)
    }
}

/// `text` cut to at most `max` characters, saying so.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((i, _)) => format!("{}\n[... {} more characters]", &text[..i], text.len() - i),
    }
}

/// One step of rollout 1 as the prompt shows it.
pub struct StepView {
    pub thought: String,
    pub calls: Vec<(String, String)>,
    pub results: Vec<String>,
}

pub const SYSTEM: &str = "You are an experienced software engineer who writes clear, precise bug reports and pull-request descriptions for Python projects.";

/// The user prompt: the original task, the engineer's steps, the patch for context only.
pub fn prompt(config: &Config, task: &str, steps: &[StepView], patch: &str) -> String {
    let mut p = String::new();
    p.push_str(task.trim());
    p.push_str("\n\n---\nAn engineer worked on the request above. Their steps:\n");
    for (i, s) in steps.iter().enumerate() {
        p.push_str(&format!("\nStep {}:", i + 1));
        if !s.thought.trim().is_empty() {
            p.push(' ');
            p.push_str(&clip(s.thought.trim(), config.max_step_chars));
        }
        for (name, args) in &s.calls {
            p.push_str(&format!(
                "\n  call {name} {}",
                clip(args, config.max_step_chars)
            ));
        }
        for r in &s.results {
            p.push_str(&format!("\n  result: {}", clip(r, config.max_step_chars)));
        }
    }
    p.push_str("\n\nThe change they made, for your understanding only:\n<patch>\n");
    p.push_str(&clip(patch, config.max_patch_chars));
    p.push_str("\n</patch>\n\n");
    p.push_str(
        "Write the pull-request description a user would open for the problem this change addresses: \
         what goes wrong, a short reproduction (steps or a Python snippet using the public API), \
         the expected and the actual behaviour. Do not include the fix, the patch, or which lines change. \
         Reply with the description only.",
    );
    if !config.demonstrations.is_empty() {
        p.push_str("\n\nWrite it in the style of these examples:");
        for d in &config.demonstrations {
            p.push_str("\n<example>\n");
            p.push_str(d.trim());
            p.push_str("\n</example>");
        }
    }
    p
}

#[cfg(target_family = "wasm")]
mod guest {
    use super::*;
    use std::cell::RefCell;

    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "pr-synthesizer",
    });

    use exports::sera::plugin::pr_synthesis::Guest;
    use sera::plugin::llm::{complete, CompletionRequest};
    use sera::plugin::types::{Message, Role, Trajectory};

    thread_local! {
        static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
    }

    struct PrSynth;

    fn text(role: Role, content: String) -> Message {
        Message {
            role,
            content,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    impl Guest for PrSynth {
        fn init(config: String) -> Result<(), String> {
            let c = Config::parse(&config)?;
            CONFIG.with(|s| *s.borrow_mut() = Some(c));
            Ok(())
        }

        fn synthesize(trajectory: Trajectory, patch: String) -> Result<String, String> {
            if patch.trim().is_empty() {
                return Err("rollout 1 changed nothing: there is no problem to describe".into());
            }
            let task = trajectory
                .messages
                .iter()
                .find(|m| m.role == Role::User)
                .map(|m| m.content.clone())
                .ok_or("rollout 1 has no user message")?;
            let mut steps: Vec<StepView> = Vec::new();
            for m in &trajectory.messages {
                match m.role {
                    Role::Assistant => steps.push(StepView {
                        thought: m.content.clone(),
                        calls: m
                            .tool_calls
                            .iter()
                            .map(|c| (c.name.clone(), c.arguments.clone()))
                            .collect(),
                        results: Vec::new(),
                    }),
                    Role::Tool => {
                        if let Some(s) = steps.last_mut() {
                            s.results.push(m.content.clone());
                        }
                    }
                    _ => {}
                }
            }
            let prompt = CONFIG.with(|c| {
                let c = c.borrow();
                let fallback;
                let config = match c.as_ref() {
                    Some(c) => c,
                    None => {
                        fallback = Config::parse("{}").expect("default config");
                        &fallback
                    }
                };
                (prompt(config, &task, &steps, &patch), config.max_tokens)
            });
            let request = CompletionRequest {
                messages: vec![
                    text(Role::System, SYSTEM.into()),
                    text(Role::User, prompt.0),
                ],
                tools: Vec::new(),
                max_tokens: prompt.1,
                temperature: None,
            };
            let answer = complete(&request)?;
            let out = answer.content.trim().to_string();
            if out.is_empty() {
                return Err("the teacher returned an empty description".into());
            }
            Ok(out)
        }
    }

    export!(PrSynth);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_keeps_the_task_first_and_clips_long_steps() {
        let c = Config::parse(r#"{"demonstrations": ["Example issue."], "max_step_chars": 5}"#)
            .unwrap();
        let steps = [StepView {
            thought: "Reading the file now".into(),
            calls: vec![("view".into(), "{}".into())],
            results: vec!["0123456789".into()],
        }];
        let p = prompt(&c, "Fix `f` in `a.py`.", &steps, "diff --git a/a.py b/a.py");
        assert!(p.starts_with("Fix `f` in `a.py`."));
        assert!(p.contains("result: 01234\n[... 5 more characters]"));
        assert!(p.contains("<example>\nExample issue.\n</example>"));
        assert!(Config::parse(r#"{"bogus": 1}"#)
            .unwrap_err()
            .contains("bogus"));
    }
}
