//! From verified items to shard rows: filters, truncation, the mix of T1 and T2 rows.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::item::{ItemResult, RolloutRef};
use super::stages::Stages;
use crate::digest::sha256_hex;
use crate::output::decontam::{Action, Hit};
use crate::output::facts::{assistant_text, RowFacts};
pub use crate::shards::rows::{decide, ChosenRows, Decision, RowSpill};
use crate::trajectory::{Message, Trajectory};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Metadata {
    pub row_id: String,
    pub repo: String,
    pub snapshot: String,
    pub function: String,
    pub prompt_template: String,
    pub stage: String,
    pub r: Option<f64>,
    pub truncation_ratio: f64,
    pub teacher_model: String,
    /// What the trajectory's commands ran with (the environment, or the bare interpreter and
    /// why); absent for rollouts without commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Value>,
    /// With `[decontaminate] action = "flag"`: the instances the row overlaps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contamination: Vec<String>,
}

/// One training row, in the order trainers read the keys.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub messages: Vec<Message>,
    pub tools: Vec<Value>,
    pub metadata: Metadata,
}

/// A candidate row with what decided it.
pub struct Candidate {
    pub row: Row,
    pub decision: Decision,
    pub facts: RowFacts,
    /// The instances it overlaps (`[decontaminate]`).
    pub hits: Vec<Hit>,
    /// MinHash signatures, one per `[dedup] on` kind.
    pub signatures: Vec<Option<Vec<u32>>>,
}

impl Stages {
    /// Filters and truncation for one of an item's trajectories; `None` when the item has no
    /// such trajectory.
    pub fn candidate(&self, res: &ItemResult, stage: &str) -> Option<Candidate> {
        let t: &RolloutRef = match stage {
            "T1" => res.t1.as_ref()?,
            _ => res.t2.as_ref()?,
        };
        // T1 counts once the item reached verification (it has a PR and a T2); T2 needs a score.
        if res.t2.is_none() || res.stopped.is_some() {
            return None;
        }
        let item = format!("{}:{stage}", res.item.key);
        let truncation = Some((&self.truncator, &self.cfg.truncation));
        let decision = decide(
            &self.filters,
            truncation,
            &item,
            stage,
            &t.trajectory,
            &t.patch,
        );
        let kept = decision.kept_messages.unwrap_or(0);
        let row_id = sha256_hex(format!("{}\0{stage}", res.item.key).as_bytes());
        let messages = &t.trajectory.messages[..kept.min(t.trajectory.messages.len())];
        let mut facts = RowFacts::of(&t.trajectory, messages, &t.patch, &|s| {
            u64::from(self.tokens.count(s))
        });
        facts.row_id = row_id.clone();
        facts.stage = Some(stage.into());
        facts.repo = res.item.repo.clone();
        facts.function = Some(super::select::function_ref(&res.item.function));
        facts.r = res.r;
        facts.truncation_ratio = decision.ratio.unwrap_or(0.0);
        facts.exec = self.exec_statuses(
            &t.trajectory,
            facts.tool_calls.get("bash").copied().unwrap_or(0) as usize,
        );
        let hits = self.decontam.as_ref().map_or_else(Vec::new, |idx| {
            let function = facts.function.as_ref().map(|f| (res.item.repo.as_str(), f));
            idx.row_hits(function, None, messages, &t.patch)
        });
        let flagged = match &self.cfg.decontaminate {
            Some(d) if d.action == Action::Flag => {
                hits.iter().map(|h| h.instance.clone()).collect()
            }
            _ => Vec::new(),
        };
        let signatures =
            crate::output::passes::signatures(self.cfg.dedup.as_ref(), &t.patch, || {
                assistant_text(messages)
            });
        let row = Row {
            messages: messages.to_vec(),
            tools: t.trajectory.tools.clone(),
            metadata: Metadata {
                row_id,
                repo: res.item.repo.clone(),
                snapshot: res.item.snapshot.clone(),
                function: res.item.function_key(),
                prompt_template: res.item.prompt.id.clone(),
                stage: stage.into(),
                r: res.r,
                truncation_ratio: decision.ratio.unwrap_or(0.0),
                teacher_model: self.cfg.teacher.model.clone(),
                // The environment without the list of command keys (`explain` shows those).
                environment: t.trajectory.environment.clone().map(|mut e| {
                    if let Some(o) = e.as_object_mut() {
                        o.remove("execs");
                    }
                    e
                }),
                contamination: flagged,
            },
        };
        Some(Candidate {
            row,
            decision,
            facts,
            hits,
            signatures,
        })
    }

    /// How the first `calls` commands of a rollout (those of the emitted turns) ended, from
    /// their records.
    fn exec_statuses(
        &self,
        t: &Trajectory,
        calls: usize,
    ) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        let Some(keys) = t
            .environment
            .as_ref()
            .and_then(|e| e.get("execs"))
            .and_then(|k| k.as_array())
        else {
            return out;
        };
        let corpus = self.corpus.lock().expect("corpus lock");
        for k in keys.iter().filter_map(|k| k.as_str()).take(calls) {
            let status = match corpus.exec(k) {
                Ok(Some(r)) if r.timed_out => "timeout".to_string(),
                Ok(Some(r)) => match (r.exit_code, r.signal) {
                    (Some(c), _) => format!("exit {c}"),
                    (None, Some(s)) => format!("signal {s}"),
                    (None, None) => "unknown".to_string(),
                },
                _ => "not recorded".to_string(),
            };
            *out.entry(status).or_default() += 1;
        }
        out
    }
}

/// What the mix needs to know of a candidate row.
#[derive(Clone, Debug)]
pub struct RowMeta {
    pub row_id: String,
    pub stage: String,
    pub r: Option<f64>,
    pub ratio: f64,
    pub dropped: bool,
    pub facts: RowFacts,
    pub hits: Vec<Hit>,
    pub signatures: Vec<Option<Vec<u32>>>,
}

impl RowMeta {
    pub fn of(c: &Candidate) -> RowMeta {
        RowMeta {
            row_id: c.row.metadata.row_id.clone(),
            stage: c.row.metadata.stage.clone(),
            r: c.row.metadata.r,
            ratio: c.row.metadata.truncation_ratio,
            dropped: c.decision.dropped.is_some(),
            facts: c.facts.clone(),
            hits: c.hits.clone(),
            signatures: c.signatures.clone(),
        }
    }
}

/// What `sera-host explain` prints for a row.
pub fn provenance(res: &ItemResult, c: &Candidate, plugins: &Value) -> Value {
    let rollout = |r: &Option<RolloutRef>| {
        r.as_ref().map(|r| {
            json!({
                "id": r.id,
                "outcome": r.outcome,
                "steps": r.steps,
                "exchanges": r.trajectory.steps.iter().map(|s| format!("{}#{}", s.request_sha256, s.sample)).collect::<Vec<_>>(),
                "patch_sha256": sha256_hex(r.patch.as_bytes()),
            })
        })
    };
    json!({
        "row_id": c.row.metadata.row_id,
        "stage": c.row.metadata.stage,
        "item": {
            "key": res.item.key,
            "repo": res.item.repo,
            "snapshot": res.item.snapshot,
            "function": res.item.function_key(),
            "lines": [res.item.function.start_line, res.item.function.end_line],
            "prompt_template": res.item.prompt.id,
            "prompt_category": res.item.prompt.category,
        },
        "rollout1": rollout(&res.t1),
        "self_checks": res.self_checks,
        "pr": res.pr,
        "stage_exchanges": res.stage_exchanges.iter().map(|(h, s)| format!("{h}#{s}")).collect::<Vec<_>>(),
        "rollout2": rollout(&res.t2),
        "verification": {"r": res.r, "detail": res.verdict},
        "filters_and_truncation": c.decision,
        "plugins": plugins,
    })
}
