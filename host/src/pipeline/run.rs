//! One item through the pipeline, top to bottom: rollout 1 (with the optional self-check), PR
//! synthesis, rollout 2, verification. Each stage is a module of its own (`rollout`,
//! `self_check`, `pr_synthesis`, `verify`; `select` before, `rows` and `mix` after); every
//! teacher exchange is recorded and every rollout and stage output stored keyed by its inputs,
//! so a stopped run picks up where it was.

use anyhow::Result;

use crate::rollout::job::function_vars;
use crate::rollout::Outcome;

use super::item::{Item, ItemResult};
pub use super::stages::Mode;
use super::stages::Stages;

impl Stages {
    /// One item through rollout 1, the self-check, PR synthesis, rollout 2 and verification.
    pub async fn process(&self, item: Item) -> Result<ItemResult> {
        let mut res = ItemResult {
            item: item.clone(),
            t1: None,
            self_checks: Vec::new(),
            pr: None,
            stage_exchanges: Vec::new(),
            t2: None,
            r: None,
            verdict: None,
            stopped: None,
        };
        let vars = function_vars(&item.function);
        let mut sample = 0;
        let t1 = loop {
            let spec = self.spec(&item.prompt.text, vars.clone(), sample);
            let t1 = self.rollout(&item, &spec).await?;
            let checkable = t1.outcome == Outcome::Submitted.as_str() && !t1.patch.is_empty();
            if !self.cfg.self_check.enabled || !checkable {
                break t1;
            }
            let (ok, answer, seen) = self.self_check(&t1, sample)?;
            res.self_checks.push(answer);
            res.stage_exchanges.extend(seen);
            if ok || sample >= self.cfg.self_check.retries {
                break t1;
            }
            sample += 1;
        };
        self.progress.rollout1.inc(1);
        self.mark(&item, crate::corpus::ItemStage::Rollout1)?;
        let submitted = t1.outcome == Outcome::Submitted.as_str();
        let empty = t1.patch.trim().is_empty();
        res.t1 = Some(t1.clone());
        if !submitted || empty {
            res.stopped = Some(if empty && submitted {
                "rollout 1 submitted no change".into()
            } else {
                format!(
                    "rollout 1 ended with {}: {}",
                    t1.outcome,
                    t1.reason.clone().unwrap_or_default()
                )
            });
            return Ok(res);
        }
        let (pr, seen) = self.pr_text(&item, &t1)?;
        res.stage_exchanges.extend(seen);
        self.progress.pr.inc(1);
        self.mark(&item, crate::corpus::ItemStage::Pr)?;
        let pr = match pr {
            Ok(p) => p,
            Err(e) => {
                res.stopped = Some(format!("PR synthesis failed: {e}"));
                return Ok(res);
            }
        };
        res.pr = Some(pr.clone());
        let mut vars2 = vars;
        vars2.insert("problem_statement".into(), pr);
        let spec2 = self.spec(&self.cfg.prompts.rollout2, vars2, 0);
        let t2 = self.rollout(&item, &spec2).await?;
        self.progress.rollout2.inc(1);
        self.mark(&item, crate::corpus::ItemStage::Rollout2)?;
        res.t2 = Some(t2.clone());
        if t2.outcome != Outcome::Submitted.as_str() {
            res.stopped = Some(format!(
                "rollout 2 ended with {}: {}",
                t2.outcome,
                t2.reason.clone().unwrap_or_default()
            ));
            return Ok(res);
        }
        self.verify(&item, &t1, &t2, &mut res)?;
        Ok(res)
    }
}
