//! Rollouts 1 and 2: the agent over the tools plugin, reused from the corpus when these inputs
//! ran before.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};

use crate::corpus::RolloutRow;
use crate::rollout::agent_blocking as blocking;
use crate::rollout::job::{rollout_id, workspace_root};
use crate::rollout::{run, Outcome, RolloutSpec, Templates};
use crate::trajectory::Trajectory;

use super::item::{Item, RolloutRef};
use super::stages::{Mode, Stages};

impl Stages {
    pub(super) fn templates(&self, instance: &str) -> Templates {
        Templates {
            system: self.cfg.prompts.system.clone(),
            instance: instance.to_string(),
            review: self.cfg.prompts.review.clone(),
        }
    }

    pub(super) fn spec(
        &self,
        instance: &str,
        vars: BTreeMap<String, String>,
        sample: u32,
    ) -> RolloutSpec {
        let mut spec = RolloutSpec::new(&self.cfg.teacher.model, vars);
        spec.sampling = self.sampling();
        spec.templates = self.templates(instance);
        spec.step_limit = self.cfg.rollout.step_limit;
        spec.token_budget = self.cfg.rollout.token_budget;
        spec.sample = sample;
        if self.exec.is_some() {
            spec.exec = serde_json::to_value(&self.cfg.rollout.exec).ok();
        }
        spec
    }

    /// A rollout, from the corpus when these inputs ran before (unless the teacher failed it).
    pub(super) async fn rollout(&self, item: &Item, spec: &RolloutSpec) -> Result<RolloutRef> {
        let function = item.function_key();
        let teacher = self
            .live_teachers
            .get(&item.key)
            .cloned()
            .unwrap_or_else(|| self.teacher.describe());
        let id = rollout_id(&item.snapshot, &function, spec, &self.tools, &teacher);
        if self.reuse() {
            let stored = self.corpus.lock().expect("corpus lock").rollout(&id)?;
            if let Some(row) = stored.filter(|r| r.outcome != Outcome::TeacherError.as_str()) {
                let c = self.corpus.lock().expect("corpus lock");
                let trajectory: Trajectory = serde_json::from_slice(&c.blob(&row.trajectory)?)
                    .with_context(|| format!("rollout {id}: stored trajectory is not valid"))?;
                let patch = String::from_utf8(c.blob(&row.patch)?)
                    .with_context(|| format!("rollout {id}: stored patch is not UTF-8"))?;
                return Ok(RolloutRef {
                    id,
                    outcome: row.outcome,
                    reason: row.reason,
                    steps: row.steps,
                    trajectory,
                    patch,
                });
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("sera-run-")
            .tempdir_in(workspace_root())
            .context("cannot create a rollout workspace")?;
        let base = {
            let c = self.corpus.lock().expect("corpus lock");
            c.export(&item.snapshot, dir.path())?;
            c.entries(&item.snapshot)?
        };
        crate::rollout::patch::pin_mtimes(&base, dir.path())?;
        let (exec_host, environment) = match &self.exec {
            Some(plan) => {
                let scope = self.exec_scopes.get(&item.key).map(String::as_str);
                let c = blocking(|| plan.for_rollout(&item.snapshot, dir.path(), scope))?;
                (Some(c.host), Some((c.log, c.env)))
            }
            None => (None, None),
        };
        let mut session = match blocking(|| self.tools.open_with(&id, dir.path(), exec_host)) {
            Ok(s) => s,
            Err(f) => {
                return Ok(RolloutRef {
                    id,
                    outcome: Outcome::ToolsError.as_str().into(),
                    reason: Some(f.to_string()),
                    steps: 0,
                    trajectory: Trajectory {
                        messages: Vec::new(),
                        tools: Vec::new(),
                        steps: Vec::new(),
                        environment: None,
                    },
                    patch: String::new(),
                })
            }
        };
        let corpus = self.corpus.clone();
        let blob = move |b: &str| corpus.lock().expect("corpus lock").blob(b);
        let mut r = run(
            spec,
            self.teacher.as_ref(),
            &mut session,
            &id,
            dir.path(),
            &base,
            &blob,
        )
        .await?;
        r.trajectory.environment =
            environment.map(|(log, env)| crate::exec::plan::RolloutCommands::metadata(&log, &env));
        if self.mode != Mode::Rebuild {
            let row = RolloutRow {
                id: id.clone(),
                snapshot: item.snapshot.clone(),
                function,
                teacher: self.teacher.describe(),
                model: spec.model.clone(),
                sample: spec.sample,
                outcome: r.outcome.as_str().to_string(),
                reason: r.reason.clone(),
                steps: r.steps,
                trajectory: String::new(),
                patch: String::new(),
                created_at: String::new(),
            };
            let trajectory = serde_json::to_vec(&r.trajectory)?;
            self.corpus.lock().expect("corpus lock").put_rollout(
                &row,
                &trajectory,
                r.patch.as_bytes(),
            )?;
        }
        Ok(RolloutRef {
            id,
            outcome: r.outcome.as_str().into(),
            reason: r.reason,
            steps: r.steps,
            trajectory: r.trajectory,
            patch: r.patch,
        })
    }
}
