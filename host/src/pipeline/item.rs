//! The unit of work and what the stages make of it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;

use crate::config::Prompt;
use crate::corpus::SnapshotFunction;
use crate::digest::{canonical_json, sha256_hex};
use crate::trajectory::Trajectory;

/// (request sha256, sample) of recorded exchanges.
pub type Exchanges = Vec<(String, u32)>;

pub(super) fn key_of(v: &Value) -> String {
    sha256_hex(canonical_json(v).as_bytes())
}

/// One unit of work: a function of a snapshot and the change request made about it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Item {
    /// sha256 of what decides the item: shards are ordered by it.
    pub key: String,
    pub repo: String,
    pub snapshot: String,
    pub function: SnapshotFunction,
    /// Shared by every item it was picked for.
    pub prompt: Arc<Prompt>,
}

impl Item {
    pub fn function_key(&self) -> String {
        format!("{}::{}", self.function.path, self.function.qualname)
    }

    /// What decides the worker of a partitioned run that does this item: its function (sha256
    /// of snapshot, path and qualname), not its prompt. Every item of one function goes to one
    /// worker, so what they share is done once there, as on one machine: a rollout 2 whose PR
    /// text came out the same, a command run on the same tree, the function's workspace.
    pub fn partition_key(&self) -> String {
        let mut h = sha2::Sha256::new();
        for part in [
            self.snapshot.as_str(),
            self.function.path.as_str(),
            self.function.qualname.as_str(),
        ] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        hex::encode(h.finalize())
    }
}

/// A finished rollout as the later stages use it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RolloutRef {
    pub id: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub steps: u32,
    pub trajectory: Trajectory,
    pub patch: String,
}

/// What happened to an item up to verification.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ItemResult {
    pub item: Item,
    pub t1: Option<RolloutRef>,
    /// Self-check answers, one per rollout-1 attempt that was checked.
    pub self_checks: Vec<String>,
    pub pr: Option<String>,
    /// (request sha256, sample) of the exchanges behind the PR text and the self-checks.
    pub stage_exchanges: Vec<(String, u32)>,
    pub t2: Option<RolloutRef>,
    pub r: Option<f64>,
    pub verdict: Option<String>,
    /// Why the item stopped early, if it did.
    pub stopped: Option<String>,
}
