//! Imported trajectories.

use anyhow::Result;
use rusqlite::params;
use sha2::{Digest, Sha256};

use super::ingest::now_utc;
use super::store::{Corpus, PreparedBlob};
use crate::trajectory::Trajectory;

/// One imported trajectory.
#[derive(Clone, Debug)]
pub struct Imported {
    pub format: &'static str,
    pub source: String,
    /// Where in the source: "whole file", "line 12".
    pub locator: String,
    pub instance_id: Option<String>,
    pub trajectory: Trajectory,
    pub patch: Option<String>,
    /// Source fields kept as they are (SERA rows: target patch, function, problem statement).
    pub meta: serde_json::Value,
}

/// The items of one source file on their way into the corpus (see `Corpus::import_writer`).
pub struct ImportWriter<'c> {
    corpus: &'c Corpus,
    tx: Option<rusqlite::Transaction<'c>>,
    source_sha256: String,
    new: usize,
    old: usize,
}

/// An imported item with its blobs hashed and compressed: what the writer stores. Made on any
/// thread, so that parsing, serialising, hashing and compressing run on every core while one
/// connection writes.
pub struct PreparedImport {
    pub format: &'static str,
    pub source: String,
    pub locator: String,
    pub instance_id: Option<String>,
    pub trajectory: PreparedBlob,
    pub patch: Option<PreparedBlob>,
    pub target_patch: Option<PreparedBlob>,
    pub meta: String,
}

impl PreparedImport {
    pub fn new(it: &Imported, compressor: &mut zstd::bulk::Compressor<'static>) -> Result<Self> {
        let blob = |raw: &[u8], c: &mut zstd::bulk::Compressor<'static>| PreparedBlob::new(raw, c);
        let target_patch = match it
            .meta
            .get("target_patch")
            .and_then(serde_json::Value::as_str)
        {
            Some(tp) if !tp.trim().is_empty() => Some(blob(tp.as_bytes(), compressor)?),
            _ => None,
        };
        Ok(PreparedImport {
            format: it.format,
            source: it.source.clone(),
            locator: it.locator.clone(),
            instance_id: it.instance_id.clone(),
            trajectory: blob(&serde_json::to_vec(&it.trajectory)?, compressor)?,
            patch: it
                .patch
                .as_ref()
                .map(|p| blob(p.as_bytes(), compressor))
                .transpose()?,
            meta: stored_meta(&it.meta, target_patch.is_some()),
            target_patch,
        })
    }
}

/// `meta` as stored: without its `target_patch` when that is stored as its own blob (see
/// schema migration 8); [`with_target_patch`] puts it back.
fn stored_meta(meta: &serde_json::Value, target_patch_blob: bool) -> String {
    struct Without<'a>(&'a serde_json::Map<String, serde_json::Value>);
    impl serde::Serialize for Without<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().filter(|(k, _)| *k != "target_patch"))
        }
    }
    match meta.as_object() {
        Some(m) if target_patch_blob => serde_json::to_string(&Without(m)).unwrap_or_default(),
        _ => meta.to_string(),
    }
}

/// `meta` as read back: its `target_patch` field from the blob when it was stored apart.
fn with_target_patch(
    corpus: &Corpus,
    meta: &str,
    target_patch: Option<&str>,
) -> Result<serde_json::Value> {
    let mut v: serde_json::Value = serde_json::from_str(meta)?;
    if let (Some(blob), Some(m)) = (target_patch, v.as_object_mut()) {
        if !m.contains_key("target_patch") {
            let text = corpus.target_patch_text(blob)?;
            m.insert("target_patch".into(), serde_json::Value::String(text));
        }
    }
    Ok(v)
}

impl ImportWriter<'_> {
    pub fn push_prepared(&mut self, it: &PreparedImport) -> Result<()> {
        let c = self.corpus;
        let id = hex::encode(Sha256::digest(format!(
            "{}\0{}",
            self.source_sha256, it.locator
        )));
        c.put_prepared_blob(&it.trajectory)?;
        let t = &it.trajectory.id;
        let p = match &it.patch {
            Some(p) => {
                c.put_prepared_blob(p)?;
                Some(&p.id)
            }
            None => None,
        };
        let target = match &it.target_patch {
            Some(tp) => {
                c.put_prepared_blob(tp)?;
                Some(&tp.id)
            }
            None => None,
        };
        let n = c
            .conn()
            .prepare_cached(
                "INSERT OR IGNORE INTO imports (id, format, source, source_sha256, locator, instance_id, trajectory, patch, meta, imported_at, target_patch)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![id, it.format, it.source, self.source_sha256, it.locator, it.instance_id, t, p, it.meta, now_utc(), target])?;
        if n == 1 {
            self.new += 1;
        } else {
            self.old += 1;
        }
        Ok(())
    }

    /// Commits the file's items; returns (new, already there).
    pub fn commit(mut self) -> Result<(usize, usize)> {
        if let Some(tx) = self.tx.take() {
            tx.commit()?;
        }
        Ok((self.new, self.old))
    }
}

/// A stored import with its blob ids (sha256 of the trajectory JSON and of the patch).
#[derive(Clone, Debug)]
pub struct ImportEntry {
    pub id: String,
    pub format: String,
    pub source: String,
    pub locator: String,
    pub instance_id: Option<String>,
    pub trajectory: String,
    pub patch: Option<String>,
    /// sha256 of a non-empty `target_patch` in the source fields (a SERA T2 row's P1); the
    /// text itself is read with `import_target_patch` when it is needed.
    pub target_patch_sha256: Option<String>,
    /// The blob holding that target patch (imports made by schema 5 and later).
    pub target_patch_blob: Option<String>,
    pub func_name: Option<String>,
}

/// The few source fields an entry keeps (the rest stays in the corpus).
#[derive(serde::Deserialize)]
struct MetaPeek<'a> {
    #[serde(borrow, default)]
    target_patch: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    func_name: Option<String>,
}

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
    /// Starts storing the items of the source file whose sha256 is `source_sha256`, in one
    /// transaction: nothing is stored unless `commit` is called.
    pub fn import_writer(&self, source_sha256: &str) -> Result<ImportWriter<'_>> {
        Ok(ImportWriter {
            corpus: self,
            tx: Some(self.conn().unchecked_transaction()?),
            source_sha256: source_sha256.to_string(),
            new: 0,
            old: 0,
        })
    }

    pub fn import_count(&self) -> Result<u64> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM imports", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Every import without its blobs, in id order: what rescoring and resharding select from.
    pub fn import_entries(&self) -> Result<Vec<ImportEntry>> {
        let mut st = self.conn().prepare(
            "SELECT id, format, source, locator, instance_id, trajectory, patch, meta, target_patch FROM imports ORDER BY id",
        )?;
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let meta = r.get_ref(7)?.as_str()?;
            let target_blob: Option<String> = r.get(8)?;
            let peek: MetaPeek = serde_json::from_str(meta).unwrap_or(MetaPeek {
                target_patch: None,
                func_name: None,
            });
            out.push(ImportEntry {
                id: r.get(0)?,
                format: r.get(1)?,
                source: r.get(2)?,
                locator: r.get(3)?,
                instance_id: r.get(4)?,
                trajectory: r.get(5)?,
                patch: r.get(6)?,
                // A blob's id is the sha256 of its bytes; imports made before the column existed
                // hash the source field.
                target_patch_sha256: target_blob.clone().or_else(|| {
                    peek.target_patch
                        .filter(|p| !p.trim().is_empty())
                        .map(|p| hex::encode(Sha256::digest(p.as_bytes())))
                }),
                target_patch_blob: target_blob,
                func_name: peek.func_name,
            });
        }
        Ok(out)
    }

    /// The import whose id is `id` or starts with it, as JSON (without its blobs' contents);
    /// an error when the prefix is ambiguous.
    pub fn import_by_prefix(&self, id: &str) -> Result<Option<serde_json::Value>> {
        let mut st = self.conn().prepare_cached(
            "SELECT id, format, source, source_sha256, locator, instance_id, trajectory, patch, meta, imported_at, target_patch
             FROM imports WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 2",
        )?;
        let hits: Vec<(serde_json::Value, String, Option<String>)> = st
            .query_map(params![id, format!("{id}\u{10ffff}")], |r| {
                Ok((
                    serde_json::json!({
                        "import": r.get::<_, String>(0)?,
                        "format": r.get::<_, String>(1)?,
                        "source": r.get::<_, String>(2)?,
                        "source_sha256": r.get::<_, String>(3)?,
                        "locator": r.get::<_, String>(4)?,
                        "instance_id": r.get::<_, Option<String>>(5)?,
                        "trajectory_sha256": r.get::<_, String>(6)?,
                        "patch_sha256": r.get::<_, Option<String>>(7)?,
                        "imported_at": r.get::<_, String>(9)?,
                    }),
                    r.get(8)?,
                    r.get(10)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        match hits.len() {
            0 => Ok(None),
            1 => {
                let (mut v, meta, target_patch) = hits.into_iter().next().expect("one");
                v["source_fields"] =
                    with_target_patch(self, &meta, target_patch.as_deref()).unwrap_or_default();
                Ok(Some(v))
            }
            _ => anyhow::bail!("import id prefix {id} is ambiguous; give more characters"),
        }
    }

    /// The source fields an import kept.
    pub fn import_meta(&self, id: &str) -> Result<serde_json::Value> {
        let (meta, target_patch): (String, Option<String>) = self
            .conn()
            .prepare_cached("SELECT meta, target_patch FROM imports WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        with_target_patch(self, &meta, target_patch.as_deref())
    }

    /// A target patch stored as its own blob (schema 5 and later).
    fn target_patch_text(&self, blob: &str) -> Result<String> {
        String::from_utf8(self.blob(blob)?)
            .map_err(|_| anyhow::anyhow!("blob {blob}: a target patch that is not UTF-8"))
    }

    /// The `target_patch` source field of an import (a SERA T2 row's P1), if it has one.
    pub fn import_target_patch(&self, id: &str) -> Result<Option<String>> {
        let mut st = self
            .conn()
            .prepare_cached("SELECT meta, target_patch FROM imports WHERE id = ?1")?;
        let mut rows = st.query([id])?;
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        if let Some(blob) = r.get_ref(1)?.as_str_or_null()? {
            return Ok(Some(self.target_patch_text(blob)?));
        }
        let peek: MetaPeek = serde_json::from_str(r.get_ref(0)?.as_str()?)?;
        Ok(peek
            .target_patch
            .filter(|p| !p.trim().is_empty())
            .map(|p| p.into_owned()))
    }

    /// Every import with its trajectory and patch read, in id order.
    pub fn imports(&self) -> Result<Vec<ImportRow>> {
        let mut out = Vec::new();
        for e in self.import_entries()? {
            let meta = self.import_meta(&e.id)?;
            out.push(ImportRow {
                trajectory: self.blob(&e.trajectory)?,
                patch: e.patch.as_deref().map(|p| self.blob(p)).transpose()?,
                id: e.id,
                format: e.format,
                source: e.source,
                locator: e.locator,
                instance_id: e.instance_id,
                meta,
            });
        }
        Ok(out)
    }
}
