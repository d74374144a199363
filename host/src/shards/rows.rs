//! The rows an output holds: what filters and truncation decided about each trajectory, rows
//! spilled to a temporary file as they are made, and the chosen ones in shard order.

use serde::Serialize;

use crate::config::TruncationSection;
use crate::plugin::{TrajectoryFilter, Truncator};
use crate::trajectory::Trajectory;

/// What the filters and truncation decided about one trajectory.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub stage: String,
    /// Why it was dropped (the first filter's reason, or truncation's), if it was.
    pub dropped: Option<String>,
    pub ratio: Option<f64>,
    /// Messages kept by truncation.
    pub kept_messages: Option<usize>,
}

/// Filters in order (the first that drops decides), then truncation (none: every message
/// kept) for one trajectory.
pub fn decide(
    filters: &[TrajectoryFilter],
    truncation: Option<(&Truncator, &TruncationSection)>,
    item: &str,
    stage: &str,
    trajectory: &Trajectory,
    patch: &str,
) -> Decision {
    let mut decision = Decision {
        stage: stage.into(),
        dropped: super::filters::first_drop(filters, item, trajectory, patch),
        ratio: None,
        kept_messages: None,
    };
    if decision.dropped.is_some() {
        return decision;
    }
    let kept = match truncation {
        Some((truncator, cfg)) => super::truncation::keep(truncator, cfg, item, trajectory),
        None => super::truncation::Kept::all(trajectory),
    };
    decision.ratio = kept.ratio;
    decision.kept_messages = kept.messages;
    decision.dropped = kept.dropped;
    decision
}

/// Candidate rows, appended to an unnamed temporary file as items finish.
pub struct RowSpill {
    file: std::fs::File,
    at: Vec<(u64, usize)>,
    end: u64,
}

impl RowSpill {
    pub fn new() -> anyhow::Result<Self> {
        Ok(RowSpill {
            file: tempfile::tempfile()?,
            at: Vec::new(),
            end: 0,
        })
    }

    pub fn push(&mut self, row: &[u8]) -> anyhow::Result<()> {
        use std::io::Write;
        self.file.write_all(row)?;
        self.at.push((self.end, row.len()));
        self.end += row.len() as u64;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    pub fn get(&self, i: usize) -> anyhow::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let (off, len) = self.at[i];
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, off)?;
        Ok(buf)
    }
}

/// The rows a run emits, in shard order, read from the spills one at a time.
pub struct ChosenRows {
    spills: Vec<RowSpill>,
    /// (spill, row in it) in shard order.
    order: Vec<(usize, usize)>,
    /// Consecutive groups of rows written as their own shards (`shard-NAME-00000...`) when
    /// there are several; one group is written as `shard-00000...`.
    splits: Vec<(String, usize)>,
}

impl ChosenRows {
    pub fn new(spill: RowSpill, order: Vec<usize>) -> Self {
        Self::from_parts(vec![spill], order.into_iter().map(|i| (0, i)).collect())
    }

    /// The rows as consecutive named groups (their counts add up to [`ChosenRows::len`]).
    pub fn with_splits(mut self, splits: Vec<(String, usize)>) -> Self {
        debug_assert_eq!(splits.iter().map(|s| s.1).sum::<usize>(), self.order.len());
        self.splits = splits;
        self
    }

    /// (shard file name, rows) in order, `per` rows a shard.
    pub fn shard_plan(&self, per: usize) -> Vec<(String, std::ops::Range<usize>)> {
        let per = per.max(1);
        let mut out = Vec::new();
        let mut at = 0;
        let named = self.splits.len() > 1;
        for (name, n) in &self.splits {
            for (i, start) in (at..at + n).step_by(per).enumerate() {
                let end = (start + per).min(at + n);
                let file = if named {
                    format!("shard-{name}-{i:05}.jsonl.zst")
                } else {
                    shard_name(i)
                };
                out.push((file, start..end));
            }
            at += n;
        }
        out
    }

    /// The rows at `order` ((spill, row in it)) of `spills`, in that order.
    pub fn from_parts(spills: Vec<RowSpill>, order: Vec<(usize, usize)>) -> Self {
        let n = order.len();
        ChosenRows {
            spills,
            order,
            splits: vec![("train".into(), n)],
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The `k`th row in shard order.
    pub fn get(&self, k: usize) -> anyhow::Result<Vec<u8>> {
        let (s, i) = self.order[k];
        self.spills[s].get(i)
    }
}

/// The name of shard `i` of an output whose rows are not split.
pub fn shard_name(i: usize) -> String {
    format!("shard-{i:05}.jsonl.zst")
}
