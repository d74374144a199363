//! What the dataset card and the report say about one row, taken when the row is made (where
//! its whole trajectory, patch and function are at hand) and kept beside it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::trajectory::{Message, Role, Trajectory};

/// Where a row's function lives (pipeline rows; imported rows have none).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionRef {
    pub path: String,
    pub qualname: String,
    pub start_line: u32,
    pub end_line: u32,
}

/// What the teacher spent on a row's rollout, from its recorded steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TeacherUse {
    pub exchanges: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// A measurement of one run, not of the data: only `sera-host report --timings` shows it.
    pub latency_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RowFacts {
    pub row_id: String,
    /// `T1`/`T2`, or none (an imported trajectory of another agent).
    pub stage: Option<String>,
    /// The repository (pipeline rows) or the imported file's name.
    pub repo: String,
    pub function: Option<FunctionRef>,
    pub r: Option<f64>,
    pub truncation_ratio: f64,
    /// Tokens of the row's messages as emitted, with the run's tokenizer.
    pub tokens: u64,
    /// Assistant turns as emitted.
    pub turns: usize,
    pub tool_calls: BTreeMap<String, u64>,
    /// The rollout's commands by how they ended: `exit 0`, `exit 1`, `signal 9`, `timeout`.
    pub exec: BTreeMap<String, u64>,
    pub patch_lines: usize,
    pub teacher: TeacherUse,
}

impl RowFacts {
    /// The facts of a row made of `messages` (the kept part of `trajectory`) and `patch`.
    pub fn of(
        trajectory: &Trajectory,
        messages: &[Message],
        patch: &str,
        count_tokens: &dyn Fn(&str) -> u64,
    ) -> RowFacts {
        let mut f = RowFacts::default();
        for m in messages {
            f.tokens += count_tokens(&m.content);
            if let Some(r) = &m.reasoning_content {
                f.tokens += count_tokens(r);
            }
            for c in &m.tool_calls {
                f.tokens += count_tokens(&c.function.arguments);
                *f.tool_calls.entry(c.function.name.clone()).or_default() += 1;
            }
            if m.role == Role::Assistant {
                f.turns += 1;
            }
        }
        // The steps behind the emitted turns only: what was truncated away is not the row's.
        for s in trajectory.steps.iter().take(f.turns) {
            f.teacher.exchanges += 1;
            f.teacher.prompt_tokens += s.usage.prompt_tokens;
            f.teacher.completion_tokens += s.usage.completion_tokens;
            f.teacher.latency_ms += s.latency_ms;
        }
        f.patch_lines = line_recall_core::sera_change_lines(patch).len();
        f
    }
}

/// The text of a row that decontamination and near-duplicate detection read: every message's
/// content and tool-call arguments, in order.
pub fn row_text(messages: &[Message]) -> String {
    let mut s = String::new();
    for m in messages {
        s.push_str(&m.content);
        s.push('\n');
        for c in &m.tool_calls {
            s.push_str(&c.function.arguments);
            s.push('\n');
        }
    }
    s
}

/// The assistant's own words (and its tool-call arguments): what near-duplicate detection
/// compares besides the patch.
pub fn assistant_text(messages: &[Message]) -> String {
    let mine: Vec<Message> = messages
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .cloned()
        .collect();
    row_text(&mine)
}
