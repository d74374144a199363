//! Recorded teacher exchanges and finished rollouts.

use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::ingest::now_utc;
use super::store::Corpus;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub request_sha256: String,
    pub sample: u32,
    pub response: Vec<u8>,
    pub teacher: String,
    pub model: String,
    pub latency_ms: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RolloutRow {
    pub id: String,
    pub snapshot: String,
    pub function: String,
    pub teacher: String,
    pub model: String,
    pub sample: u32,
    pub outcome: String,
    pub reason: Option<String>,
    pub steps: u32,
    pub trajectory: String,
    pub patch: String,
    pub created_at: String,
}

impl Corpus {
    /// Stores an exchange (request text and response body as blobs) unless that
    /// (request, sample) is recorded already; the first recording wins.
    pub fn put_exchange(&self, request: &[u8], ex: &Exchange) -> Result<()> {
        let tx = self.conn().unchecked_transaction()?;
        let (req_id, _) = self.put_blob(request)?;
        anyhow::ensure!(
            req_id == ex.request_sha256,
            "exchange: request hash {} does not match its text ({req_id})",
            ex.request_sha256
        );
        let (resp_id, _) = self.put_blob(&ex.response)?;
        self.conn()
            .prepare_cached(
                "INSERT OR IGNORE INTO exchanges (request, sample, response, teacher, model, latency_ms, prompt_tokens, completion_tokens, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                req_id,
                ex.sample,
                resp_id,
                ex.teacher,
                ex.model,
                ex.latency_ms as i64,
                ex.prompt_tokens as i64,
                ex.completion_tokens as i64,
                now_utc()
            ])?;
        tx.commit()?;
        Ok(())
    }

    pub fn exchange(&self, request_sha256: &str, sample: u32) -> Result<Option<Exchange>> {
        let row = self
            .conn()
            .prepare_cached(
                "SELECT response, teacher, model, latency_ms, prompt_tokens, completion_tokens
                 FROM exchanges WHERE request = ?1 AND sample = ?2",
            )?
            .query_row(params![request_sha256, sample], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .optional()?;
        let Some((resp, teacher, model, latency, pt, ct)) = row else {
            return Ok(None);
        };
        let response = self
            .blob(&resp)
            .with_context(|| format!("exchange {request_sha256}/{sample}: response blob"))?;
        Ok(Some(Exchange {
            request_sha256: request_sha256.to_string(),
            sample,
            response,
            teacher,
            model,
            latency_ms: latency as u64,
            prompt_tokens: pt as u64,
            completion_tokens: ct as u64,
        }))
    }

    pub fn exchange_count(&self) -> Result<u64> {
        Ok(self
            .conn()
            .query_row("SELECT count(*) FROM exchanges", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Stores a finished rollout; the same inputs stored twice keep the first, unless the
    /// first ended in a teacher error.
    pub fn put_rollout(&self, row: &RolloutRow, trajectory: &[u8], patch: &[u8]) -> Result<()> {
        let tx = self.conn().unchecked_transaction()?;
        let (t, _) = self.put_blob(trajectory)?;
        let (p, _) = self.put_blob(patch)?;
        self.conn()
            .prepare_cached(
                // A rollout the teacher failed may be run again later; its new result replaces it.
                "INSERT INTO rollouts (id, snapshot, function, teacher, model, sample, outcome, reason, steps, trajectory, patch, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT(id) DO UPDATE SET outcome = excluded.outcome, reason = excluded.reason,
                   steps = excluded.steps, trajectory = excluded.trajectory, patch = excluded.patch,
                   created_at = excluded.created_at
                 WHERE rollouts.outcome = 'teacher-error'",
            )?
            .execute(params![
                row.id,
                row.snapshot,
                row.function,
                row.teacher,
                row.model,
                row.sample,
                row.outcome,
                row.reason,
                row.steps,
                t,
                p,
                now_utc()
            ])?;
        tx.commit()?;
        Ok(())
    }

    /// Every stored rollout's (id, trajectory blob, patch blob), by id.
    pub fn rollout_blobs(&self) -> Result<Vec<[String; 3]>> {
        let mut st = self
            .conn()
            .prepare("SELECT id, trajectory, patch FROM rollouts ORDER BY id")?;
        let rows = st
            .query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    pub fn rollout(&self, id: &str) -> Result<Option<RolloutRow>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT id, snapshot, function, teacher, model, sample, outcome, reason, steps, trajectory, patch, created_at
                 FROM rollouts WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok(RolloutRow {
                    id: r.get(0)?,
                    snapshot: r.get(1)?,
                    function: r.get(2)?,
                    teacher: r.get(3)?,
                    model: r.get(4)?,
                    sample: r.get(5)?,
                    outcome: r.get(6)?,
                    reason: r.get(7)?,
                    steps: r.get(8)?,
                    trajectory: r.get(9)?,
                    patch: r.get(10)?,
                    created_at: r.get(11)?,
                })
            })
            .optional()?)
    }
}
