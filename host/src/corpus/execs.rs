//! Recorded commands and built environments.

use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::ingest::now_utc;
use super::store::Corpus;

/// One command as it ran: everything a replay needs to give the same answer and leave the
/// workspace the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecRecord {
    pub key: String,
    pub tree_before: String,
    pub command: String,
    pub env: String,
    pub timeout_s: u32,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub truncated: bool,
    pub dropped_bytes: u64,
    /// The blob of the kept output bytes.
    pub output: String,
    pub duration_ms: u64,
    /// (path, mode, blob; `None`: deleted), sorted by path.
    pub changes: Vec<(String, u32, Option<String>)>,
    pub tree_after: String,
}

/// A Python environment built for a snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct EnvRow {
    pub id: String,
    pub snapshot: String,
    pub interpreter: String,
    pub requirements: String,
    pub path: String,
    pub status: String,
    pub report: String,
    pub built_at: String,
}

fn env_row(r: &rusqlite::Row) -> rusqlite::Result<EnvRow> {
    Ok(EnvRow {
        id: r.get(0)?,
        snapshot: r.get(1)?,
        interpreter: r.get(2)?,
        requirements: r.get(3)?,
        path: r.get(4)?,
        status: r.get(5)?,
        report: r.get(6)?,
        built_at: r.get(7)?,
    })
}

impl Corpus {
    /// Stores a command's record with its output and changed files (blobs); the first wins.
    pub fn put_exec(
        &self,
        rec: &ExecRecord,
        output: &[u8],
        files: &[(String, Vec<u8>)],
    ) -> Result<()> {
        let tx = self.conn().unchecked_transaction()?;
        let (out_id, _) = self.put_blob(output)?;
        anyhow::ensure!(
            out_id == rec.output,
            "exec {}: output blob mismatch",
            rec.key
        );
        for (id, bytes) in files {
            let (got, _) = self.put_blob(bytes)?;
            anyhow::ensure!(&got == id, "exec {}: file blob mismatch", rec.key);
        }
        self.conn()
            .prepare_cached(
                "INSERT OR IGNORE INTO execs (key, tree_before, command, env, timeout_s, exit_code, signal, timed_out, truncated, dropped_bytes, output, duration_ms, changes, tree_after, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?
            .execute(params![
                rec.key,
                rec.tree_before,
                rec.command,
                rec.env,
                rec.timeout_s,
                rec.exit_code,
                rec.signal,
                rec.timed_out,
                rec.truncated,
                rec.dropped_bytes as i64,
                rec.output,
                rec.duration_ms as i64,
                serde_json::to_string(&rec.changes)?,
                rec.tree_after,
                now_utc()
            ])?;
        tx.commit()?;
        Ok(())
    }

    pub fn exec(&self, key: &str) -> Result<Option<ExecRecord>> {
        let row = self
            .conn()
            .prepare_cached(
                "SELECT key, tree_before, command, env, timeout_s, exit_code, signal, timed_out, truncated, dropped_bytes, output, duration_ms, changes, tree_after FROM execs WHERE key = ?1",
            )?
            .query_row([key], |r| {
                Ok((
                    ExecRecord {
                        key: r.get(0)?,
                        tree_before: r.get(1)?,
                        command: r.get(2)?,
                        env: r.get(3)?,
                        timeout_s: r.get(4)?,
                        exit_code: r.get(5)?,
                        signal: r.get(6)?,
                        timed_out: r.get(7)?,
                        truncated: r.get(8)?,
                        dropped_bytes: r.get::<_, i64>(9)? as u64,
                        output: r.get(10)?,
                        duration_ms: r.get::<_, i64>(11)? as u64,
                        changes: Vec::new(),
                        tree_after: r.get(13)?,
                    },
                    r.get::<_, String>(12)?,
                ))
            })
            .optional()?;
        row.map(|(mut rec, changes)| {
            rec.changes = serde_json::from_str(&changes)
                .with_context(|| format!("exec {key}: stored changes are not valid JSON"))?;
            Ok(rec)
        })
        .transpose()
    }

    pub fn exec_count(&self) -> Result<u64> {
        let n: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM execs", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    pub fn put_env(&self, env: &EnvRow) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT OR REPLACE INTO envs (id, snapshot, interpreter, requirements, path, status, report, built_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                env.id,
                env.snapshot,
                env.interpreter,
                env.requirements,
                env.path,
                env.status,
                env.report,
                now_utc()
            ])?;
        Ok(())
    }

    /// Environments, newest first; of one snapshot when given.
    pub fn envs(&self, snapshot: Option<&str>) -> Result<Vec<EnvRow>> {
        let sql = "SELECT id, snapshot, interpreter, requirements, path, status, report, built_at FROM envs WHERE ?1 IS NULL OR snapshot = ?1 ORDER BY built_at DESC, id";
        let mut stmt = self.conn().prepare_cached(sql)?;
        let rows = stmt
            .query_map([snapshot], env_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
