//! Verification: rollout 2's patch scored against rollout 1's by the verifier plugin.

use anyhow::Result;

use crate::plugin::PatchPair;
use crate::rollout::agent_blocking as blocking;

use super::item::{Item, ItemResult, RolloutRef};
use super::stages::Stages;

impl Stages {
    /// Scores `t2`'s patch against `t1`'s into `res` (`r` and the verdict, or why it stopped).
    pub(super) fn verify(
        &self,
        item: &Item,
        t1: &RolloutRef,
        t2: &RolloutRef,
        res: &mut ItemResult,
    ) -> Result<()> {
        let pair = PatchPair {
            reference: t1.patch.clone(),
            candidate: t2.patch.clone(),
        };
        let verdict = blocking(|| {
            self.verifier
                .lock()
                .expect("verifier lock")
                .verify(&item.key, &pair)
        });
        self.mark(item, crate::corpus::ItemStage::Verified)?;
        match verdict {
            Ok(v) => {
                res.r = v.score;
                res.verdict = Some(format!("{}/{} {}", v.matched, v.total, v.detail));
            }
            Err(f) => res.stopped = Some(format!("verification failed: {f}")),
        }
        Ok(())
    }
}
