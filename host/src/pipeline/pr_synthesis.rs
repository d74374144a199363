//! PR synthesis: the plugin that turns rollout 1 into a pull-request-like text.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use serde_json::json;

use crate::digest::sha256_hex;
use crate::rollout::agent_blocking as blocking;

use super::item::{key_of, Exchanges, Item, RolloutRef};
use super::stages::Stages;

impl Stages {
    pub(super) fn pr_text(
        &self,
        item: &Item,
        t1: &RolloutRef,
    ) -> Result<(Result<String, String>, Exchanges)> {
        let key = key_of(&json!({
            "stage": "pr-synth",
            "trajectory": sha256_hex(&serde_json::to_vec(&t1.trajectory.messages)?),
            "patch": t1.patch,
            "plugin": self.pr_synth.sha256(),
            "config": self.cfg.pr_synth.config,
            "teacher": self.teacher_key(),
        }));
        self.cached(&key, "pr-synth", || {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let llm = self.llm(0, seen.clone());
            let out = blocking(|| {
                self.pr_synth
                    .synthesize(&item.key, &t1.trajectory, &t1.patch, llm)
            })
            .map_err(|f| f.to_string());
            let seen = seen.lock().expect("exchange list").clone();
            Ok((out, seen))
        })
    }
}
