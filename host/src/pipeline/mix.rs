//! The mix: which surviving candidate rows of each stage the output holds.

use super::rows::RowMeta;
use super::stages::Stages;

impl Stages {
    /// The rows to emit: for each `[[mix]]` entry, its stage's surviving candidates with
    /// r >= its minimum, best truncation ratio first, up to its count; then in row-id order.
    pub fn mix(&self, candidates: &[RowMeta]) -> Vec<usize> {
        let mut chosen = std::collections::BTreeSet::new();
        for m in &self.cfg.mix {
            let min_r = m.min_r.or(if m.stage == "T2" {
                Some(self.cfg.verify.threshold)
            } else {
                None
            });
            let mut pool: Vec<usize> = (0..candidates.len())
                .filter(|i| !chosen.contains(i))
                .filter(|&i| {
                    let c = &candidates[i];
                    !c.dropped
                        && c.stage == m.stage
                        && min_r.is_none_or(|min| c.r.is_some_and(|r| r >= min))
                })
                .collect();
            pool.sort_by(|&a, &b| {
                let (ca, cb) = (&candidates[a], &candidates[b]);
                cb.ratio
                    .total_cmp(&ca.ratio)
                    .then_with(|| ca.row_id.cmp(&cb.row_id))
            });
            chosen.extend(pool.into_iter().take(m.count));
        }
        let mut out: Vec<usize> = chosen.into_iter().collect();
        out.sort_by(|&a, &b| candidates[a].row_id.cmp(&candidates[b].row_id));
        out
    }
}
