//! Imported trajectories.

use anyhow::Result;
use rusqlite::params;
use sha2::{Digest, Sha256};

use super::ingest::now_utc;
use super::Corpus;
use crate::import::Imported;

/// A stored import, as read back.
#[derive(Clone, Debug)]
pub struct ImportRow {
    pub id: String,
    pub format: String,
    pub source: String,
    pub locator: String,
    pub instance_id: Option<String>,
    pub trajectory: Vec<u8>,
    pub patch: Option<Vec<u8>>,
    pub meta: serde_json::Value,
}

impl Corpus {
    /// Stores the items of one source file in one transaction; returns (new, already there).
    pub fn put_imports(&self, source: &[u8], items: &[Imported]) -> Result<(usize, usize)> {
        let source_sha = hex::encode(Sha256::digest(source));
        let tx = self.conn().unchecked_transaction()?;
        let (mut new, mut old) = (0, 0);
        for it in items {
            let id = hex::encode(Sha256::digest(format!("{source_sha}\0{}", it.locator)));
            let (t, _) = self.put_blob(&serde_json::to_vec(&it.trajectory)?)?;
            let p = match &it.patch {
                Some(p) => Some(self.put_blob(p.as_bytes())?.0),
                None => None,
            };
            let n = self
                .conn()
                .prepare_cached(
                    "INSERT OR IGNORE INTO imports (id, format, source, source_sha256, locator, instance_id, trajectory, patch, meta, imported_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![id, it.format, it.source, source_sha, it.locator, it.instance_id, t, p, it.meta.to_string(), now_utc()])?;
            if n == 1 {
                new += 1;
            } else {
                old += 1;
            }
        }
        tx.commit()?;
        Ok((new, old))
    }

    pub fn import_count(&self) -> Result<u64> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM imports", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Every import, in id order.
    pub fn imports(&self) -> Result<Vec<ImportRow>> {
        // Blob ids first; the blobs are read once the statement is done.
        let mut rows: Vec<(ImportRow, String, Option<String>)> = self
            .conn()
            .prepare("SELECT id, format, source, locator, instance_id, trajectory, patch, meta FROM imports ORDER BY id")?
            .query_map([], |r| {
                Ok((
                    ImportRow {
                        id: r.get(0)?,
                        format: r.get(1)?,
                        source: r.get(2)?,
                        locator: r.get(3)?,
                        instance_id: r.get(4)?,
                        trajectory: Vec::new(),
                        patch: None,
                        meta: serde_json::from_str(&r.get::<_, String>(7)?)
                            .unwrap_or(serde_json::Value::Null),
                    },
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (row, t, p) in &mut rows {
            row.trajectory = self.blob(t)?;
            row.patch = p.as_deref().map(|p| self.blob(p)).transpose()?;
        }
        Ok(rows.into_iter().map(|(row, _, _)| row).collect())
    }
}
