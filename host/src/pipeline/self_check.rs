//! The self-check: the teacher asked whether rollout 1's patch fixes its request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use serde_json::json;

use crate::plugin::LlmRequest;
use crate::rollout::agent_blocking as blocking;
use crate::trajectory::{Message, Role};

use super::item::{key_of, Exchanges, RolloutRef};
use super::stages::Stages;

impl Stages {
    /// Asks the teacher whether rollout 1's patch is a fix for its request.
    pub(super) fn self_check(
        &self,
        t1: &RolloutRef,
        sample: u32,
    ) -> Result<(bool, String, Exchanges)> {
        let task = t1
            .trajectory
            .messages
            .iter()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let key = key_of(&json!({
            "stage": "self-check",
            "request": task,
            "patch": t1.patch,
            "template": self.cfg.prompts.self_check,
            "teacher": self.teacher_key(),
            "sample": sample,
        }));
        self.cached(&key, "self-check", || {
            let vars = BTreeMap::from([
                ("problem_statement".to_string(), task.clone()),
                ("diff".to_string(), t1.patch.clone()),
            ]);
            let text =
                crate::rollout::render_template("self_check", &self.cfg.prompts.self_check, &vars)?;
            let seen = Arc::new(Mutex::new(Vec::new()));
            let mut llm = self.llm(sample, seen.clone());
            let answer = blocking(|| {
                llm(LlmRequest {
                    messages: vec![Message::text(Role::User, text)],
                    tools: Vec::new(),
                    max_tokens: None,
                    temperature: None,
                })
            });
            let answer = answer.map_err(|e| anyhow::anyhow!("self-check: {e}"))?;
            let ok = answer
                .content
                .trim_start()
                .to_ascii_uppercase()
                .starts_with("YES");
            let seen = seen.lock().expect("exchange list").clone();
            Ok((ok, answer.content, seen))
        })
    }
}
