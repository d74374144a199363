//! The agent loop: prompt, ask the teacher, run its tool calls, repeat until it submits (and,
//! with review-on-submit, confirms), the step limit or the token budget is reached, or the
//! teacher refuses.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::patch::{changed_patch, workspace_patch};
use crate::corpus::{Entry, MODE_SYMLINK};
use crate::plugin::ToolSession;
use crate::teacher::{ChatRequest, Teacher};
use crate::trajectory::{Message, Role, Step, Trajectory};

/// Prompt templates (minijinja). Variables: `working_dir`, `start_fn`, `start_fn_file`,
/// `problem_statement` and any the caller adds; `review` also gets `diff`.
#[derive(Clone, Debug)]
pub struct Templates {
    pub system: String,
    pub instance: String,
    pub review: String,
}

impl Default for Templates {
    fn default() -> Self {
        Templates {
            system: include_str!("templates/system.j2").into(),
            instance: include_str!("templates/instance.j2").into(),
            review: include_str!("templates/review.j2").into(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub max_tokens: Option<u64>,
    /// `"auto"`, `"required"`, or a named function; `None` leaves it to the server.
    pub tool_choice: Option<Value>,
    /// Sent as extra top-level fields.
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug)]
pub struct RolloutSpec {
    pub model: String,
    pub sampling: Sampling,
    pub templates: Templates,
    pub vars: BTreeMap<String, String>,
    /// Teacher turns at most (SWE-agent's default for SERA: 115).
    pub step_limit: u32,
    /// Stop once this many tokens (the teacher's `usage.total_tokens`, summed) are spent.
    pub token_budget: Option<u64>,
    /// SWE-agent's review-on-submit: the first `submit` answers with the diff and asks again.
    pub review_on_submit: bool,
    /// Which of several rollouts of the same inputs this is (recorded exchanges are keyed by it).
    pub sample: u32,
    /// The command settings when the rollout runs commands (part of its id).
    pub exec: Option<Value>,
}

impl RolloutSpec {
    pub fn new(model: &str, vars: BTreeMap<String, String>) -> Self {
        RolloutSpec {
            model: model.to_string(),
            sampling: Sampling::default(),
            templates: Templates::default(),
            vars,
            step_limit: 115,
            token_budget: None,
            review_on_submit: true,
            sample: 0,
            exec: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Submitted,
    StepLimit,
    TokenBudget,
    TeacherError,
    /// The teacher refused the conversation as longer than its context.
    ContextLength,
    ToolsError,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Submitted => "submitted",
            Outcome::StepLimit => "step-limit",
            Outcome::TokenBudget => "token-budget",
            Outcome::TeacherError => "teacher-error",
            Outcome::ContextLength => "context-length",
            Outcome::ToolsError => "tools-error",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Rollout {
    pub trajectory: Trajectory,
    pub patch: String,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub steps: u32,
    /// Time spent in the host and the tools, the teacher's waits excluded.
    pub host_time: Duration,
}

/// SWE-agent's answer to a turn without a tool call.
const NO_TOOL_CALL: &str = "Your last output did not use any tool calls!\nPlease make sure your output includes exactly _ONE_ function call!\nYou must invoke the function directly using the function call format.\nYou cannot invoke commands with ```, you have to use the function call format.\nIf you think you have already resolved the issue, please submit your changes by running the `submit` command.\nElse, please continue with a new tool call!";

pub(crate) fn render(
    name: &str,
    template: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_template(name, template)
        .with_context(|| format!("prompt template {name}"))?;
    env.get_template(name)?
        .render(vars)
        .with_context(|| format!("prompt template {name}"))
}

/// Runs synchronous plugin code from async code. WASI's synchronous host calls enter the
/// Tokio runtime themselves, which is only allowed off the async worker: hence
/// `block_in_place`, and rollouts need a multi-threaded runtime.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        Ok(_) => panic!("rollouts run on a multi-threaded Tokio runtime (WASI calls block)"),
        Err(_) => f(),
    }
}

/// The workspace's patch against `base`. Only the paths the tools touched are read when the
/// session knows them; a snapshot with symlinks could redirect writes, so it is walked whole.
fn patch_of(
    tools: &ToolSession,
    base: &[Entry],
    workspace: &Path,
    blob: &(dyn Fn(&str) -> Result<Vec<u8>> + Sync),
) -> Result<String> {
    match tools.changed_paths() {
        Ok(changed) if !base.iter().any(|e| e.mode == MODE_SYMLINK) => {
            changed_patch(base, workspace, changed, blob)
        }
        _ => workspace_patch(base, workspace, blob),
    }
}

/// Runs one rollout. `base` is the snapshot the workspace was materialised from, and the
/// workspace must still hold exactly it when `tools` was opened; `blob` reads a blob of it
/// (for the patch).
pub async fn run(
    spec: &RolloutSpec,
    teacher: &dyn Teacher,
    tools: &mut ToolSession,
    item: &str,
    workspace: &Path,
    base: &[Entry],
    blob: &(dyn Fn(&str) -> Result<Vec<u8>> + Sync),
) -> Result<Rollout> {
    let start = Instant::now();
    let mut teacher_time = Duration::ZERO;
    let tool_specs: std::sync::Arc<[Value]> = tools
        .specs()
        .iter()
        .map(|s| {
            json!({"type": "function", "function": {
                "name": s.name,
                "description": s.description,
                "parameters": serde_json::from_str::<Value>(&s.parameters).unwrap_or(Value::Null),
            }})
        })
        .collect();
    let names: Vec<String> = tools.specs().iter().map(|s| s.name.clone()).collect();
    let mut messages = vec![
        Message::text(
            Role::System,
            render("system", &spec.templates.system, &spec.vars)?,
        ),
        Message::text(
            Role::User,
            render("instance", &spec.templates.instance, &spec.vars)?,
        ),
    ];
    let mut steps: Vec<Step> = Vec::new();
    let mut spent = 0u64;
    let mut reviewed = !spec.review_on_submit;
    let mut outcome = None;
    let mut reason = None;
    let mut patch = None;
    // The last patch computed and whether a tool ran since: a confirming submit right after
    // the review needs no second scan of the workspace.
    let mut last_diff: Option<String> = None;
    while outcome.is_none() {
        if steps.len() as u32 >= spec.step_limit {
            outcome = Some(Outcome::StepLimit);
            reason = Some(format!("step limit of {} reached", spec.step_limit));
            break;
        }
        if let Some(budget) = spec.token_budget.filter(|b| spent >= *b) {
            outcome = Some(Outcome::TokenBudget);
            reason = Some(format!("token budget of {budget} spent ({spent} tokens)"));
            break;
        }
        let request = ChatRequest {
            model: spec.model.clone(),
            // Lent to the request and taken back: a long conversation is not copied per step.
            messages: std::mem::take(&mut messages),
            tools: tool_specs.clone(),
            tool_choice: spec.sampling.tool_choice.clone(),
            temperature: spec.sampling.temperature,
            top_p: spec.sampling.top_p,
            seed: spec.sampling.seed,
            max_tokens: spec.sampling.max_tokens,
            extra: spec.sampling.extra.clone(),
            prepared: Default::default(),
        };
        let asked = Instant::now();
        let answer = teacher.complete(&request, spec.sample).await;
        teacher_time += asked.elapsed();
        messages = request.messages;
        let completion = match answer {
            Ok(c) => c,
            Err(e) => {
                outcome = Some(if e.is_context_length() {
                    Outcome::ContextLength
                } else {
                    Outcome::TeacherError
                });
                reason = Some(e.to_string());
                break;
            }
        };
        spent += completion.usage.total_tokens;
        let turn = steps.len();
        steps.push(Step {
            latency_ms: completion.latency_ms,
            usage: completion.usage,
            finish_reason: completion.finish_reason.clone(),
            request_sha256: completion.request_sha256.clone(),
            sample: completion.sample,
        });
        let mut message = completion.message;
        for (i, call) in message.tool_calls.iter_mut().enumerate() {
            if call.id.is_empty() {
                call.id = format!("call_{turn}_{i}");
            }
        }
        let calls = message.tool_calls.clone();
        messages.push(message);
        if calls.is_empty() {
            messages.push(Message::text(Role::User, NO_TOOL_CALL));
            continue;
        }
        for call in &calls {
            if outcome.is_some() {
                messages.push(Message::tool_result(
                    &call.id,
                    "Not run: the rollout ended before this call.",
                ));
                continue;
            }
            let name = call.function.name.as_str();
            let bad_args = match serde_json::from_str::<Value>(&call.function.arguments) {
                Ok(v) if v.is_object() => None,
                Ok(v) => Some(format!("not an object: {v}")),
                Err(e) => Some(e.to_string()),
            };
            let observation = if !names.iter().any(|n| n == name) {
                format!(
                    "Unknown tool `{name}`. Available tools: {}",
                    names.join(", ")
                )
            } else if let Some(e) = bad_args {
                format!(
                    "The arguments of `{name}` are not a valid JSON object ({e}). Call the tool again with a JSON object as arguments."
                )
            } else if name == "submit" {
                let diff = match last_diff.take() {
                    Some(d) => d,
                    None => patch_of(tools, base, workspace, blob)?,
                };
                last_diff = Some(diff.clone());
                if !reviewed {
                    reviewed = true;
                    let mut vars = spec.vars.clone();
                    vars.insert("diff".into(), diff);
                    render("review", &spec.templates.review, &vars)?
                } else {
                    outcome = Some(Outcome::Submitted);
                    let shown = if diff.is_empty() {
                        "Submitted with no changes.".to_string()
                    } else {
                        diff.clone()
                    };
                    patch = Some(diff);
                    shown
                }
            } else {
                last_diff = None;
                match blocking(|| tools.call(item, name, &call.function.arguments)) {
                    Ok(Ok(text)) | Ok(Err(text)) => text,
                    Err(failure) => {
                        outcome = Some(Outcome::ToolsError);
                        reason = Some(failure.to_string());
                        "The tool failed; the rollout ends here.".to_string()
                    }
                }
            };
            messages.push(Message::tool_result(&call.id, observation));
        }
    }
    let patch = match patch {
        Some(p) => p,
        None => patch_of(tools, base, workspace, blob)?,
    };
    let steps_n = steps.len() as u32;
    Ok(Rollout {
        trajectory: Trajectory {
            messages,
            tools: tool_specs.to_vec(),
            steps,
            environment: None,
        },
        patch,
        outcome: outcome.expect("the loop ends with an outcome"),
        reason,
        steps: steps_n,
        host_time: start.elapsed().saturating_sub(teacher_time),
    })
}
