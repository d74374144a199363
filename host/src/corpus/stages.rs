//! Pipeline stage outputs keyed by their inputs, and the provenance of shard rows.

use anyhow::Result;
use rusqlite::{params, OptionalExtension};

use super::ingest::now_utc;
use super::store::Corpus;

impl Corpus {
    /// Stores a stage's output under the hash of its inputs; the first stored wins.
    pub fn put_stage_output(&self, key: &str, stage: &str, output: &[u8]) -> Result<()> {
        let tx = self.conn().unchecked_transaction()?;
        let (blob, _) = self.put_blob(output)?;
        self.conn()
            .prepare_cached(
                "INSERT OR IGNORE INTO stage_outputs (key, stage, output, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![key, stage, blob, now_utc()])?;
        tx.commit()?;
        Ok(())
    }

    pub fn stage_output(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let blob: Option<String> = self
            .conn()
            .prepare_cached("SELECT output FROM stage_outputs WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?;
        blob.map(|b| self.blob(&b)).transpose()
    }

    /// Records where shard rows came from (replacing an older record of the same row id).
    pub fn put_row_provenance(&self, rows: &[(String, Vec<u8>)]) -> Result<()> {
        let tx = self.conn().unchecked_transaction()?;
        for (id, provenance) in rows {
            let (blob, _) = self.put_blob(provenance)?;
            self.conn()
                .prepare_cached(
                    "INSERT OR REPLACE INTO shard_rows (id, provenance, created_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, blob, now_utc()])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The provenance of the row whose id is `id` or starts with it; an error when the prefix
    /// is ambiguous.
    pub fn row_provenance(&self, id: &str) -> Result<Option<(String, Vec<u8>)>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, provenance FROM shard_rows WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 2",
        )?;
        let hits: Vec<(String, String)> = stmt
            .query_map(params![id, format!("{id}\u{10ffff}")], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        match hits.as_slice() {
            [] => Ok(None),
            [(full, blob)] => Ok(Some((full.clone(), self.blob(blob)?))),
            _ => anyhow::bail!("row id prefix {id} is ambiguous; give more characters"),
        }
    }
}
