//! How far each item of a pipeline got: written by live runs, read by `sera-host status` and by
//! `run --finalize` (which refuses to write shards while items are unfinished).

use anyhow::Result;
use rusqlite::params;

use super::store::Corpus;

/// The stages an item passes, in order; each has its own timestamp column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemStage {
    Rollout1,
    Pr,
    Rollout2,
    Verified,
}

impl ItemStage {
    fn column(self) -> &'static str {
        match self {
            ItemStage::Rollout1 => "rollout1_at",
            ItemStage::Pr => "pr_at",
            ItemStage::Rollout2 => "rollout2_at",
            ItemStage::Verified => "verified_at",
        }
    }
}

/// One item's record.
#[derive(Clone, Debug, Default)]
pub struct ItemProgress {
    pub item: String,
    pub worker: String,
    pub selected_at: i64,
    pub rollout1_at: Option<i64>,
    pub pr_at: Option<i64>,
    pub rollout2_at: Option<i64>,
    pub verified_at: Option<i64>,
    pub done_at: Option<i64>,
    pub stopped: Option<String>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Corpus {
    /// Marks items selected by `worker` (a rerun keeps what they had done, and takes them over).
    pub fn select_items(&self, pipeline: &str, worker: &str, items: &[String]) -> Result<()> {
        let tx = self.conn().unchecked_transaction()?;
        let now = now_ms();
        {
            let mut st = self.conn().prepare_cached(
                "INSERT INTO item_progress (pipeline, item, worker, selected_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(pipeline, item) DO UPDATE SET worker = excluded.worker",
            )?;
            for item in items {
                st.execute(params![pipeline, item, worker, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn mark_item(&self, pipeline: &str, item: &str, stage: ItemStage) -> Result<()> {
        let sql = format!(
            "UPDATE item_progress SET {} = ?3 WHERE pipeline = ?1 AND item = ?2",
            stage.column()
        );
        self.conn()
            .prepare_cached(&sql)?
            .execute(params![pipeline, item, now_ms()])?;
        Ok(())
    }

    pub fn finish_item(&self, pipeline: &str, item: &str, stopped: Option<&str>) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE item_progress SET done_at = ?3, stopped = ?4 WHERE pipeline = ?1 AND item = ?2",
            )?
            .execute(params![pipeline, item, now_ms(), stopped])?;
        Ok(())
    }

    /// Every item record of a pipeline, by item key.
    pub fn item_progress(&self, pipeline: &str) -> Result<Vec<ItemProgress>> {
        let mut st = self.conn().prepare_cached(
            "SELECT item, worker, selected_at, rollout1_at, pr_at, rollout2_at, verified_at, done_at, stopped
             FROM item_progress WHERE pipeline = ?1 ORDER BY item",
        )?;
        let rows = st.query_map([pipeline], |r| {
            Ok(ItemProgress {
                item: r.get(0)?,
                worker: r.get(1)?,
                selected_at: r.get(2)?,
                rollout1_at: r.get(3)?,
                pr_at: r.get(4)?,
                rollout2_at: r.get(5)?,
                verified_at: r.get(6)?,
                done_at: r.get(7)?,
                stopped: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The pipelines (sha256) that have item records, with how many.
    pub fn progress_pipelines(&self) -> Result<Vec<(String, u64)>> {
        let mut st = self.conn().prepare_cached(
            "SELECT pipeline, count(*) FROM item_progress GROUP BY pipeline ORDER BY pipeline",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
