//! The corpus file itself: opening (and migrating) it, blobs, snapshots, functions, stats and
//! verification. The other files of this module add the tables of later stages.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::functions::index_python;
use super::tree::{check_path, snapshot_id, Entry, MODE_EXECUTABLE, MODE_SYMLINK};
use crate::digest::sha256_hex;

/// zstd level for blobs: level 3 compresses source code about 4× at hundreds of MB/s.
const ZSTD_LEVEL: i32 = 3;

pub struct Corpus {
    conn: super::connection::SerialConnection,
    path: PathBuf,
    /// One zstd context for every blob: creating one per file cost 2% of an ingest.
    compressor: RefCell<Option<zstd::bulk::Compressor<'static>>>,
    /// Likewise for reading: a context per blob was 8% of materialising a workspace.
    decompressor: RefCell<Option<zstd::bulk::Decompressor<'static>>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SourceRow {
    pub name: String,
    pub origin: String,
    pub revision: Option<String>,
    pub snapshot: String,
    pub ingested_at: String,
    pub skipped: serde_json::Value,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub blobs: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub snapshots: u64,
    pub sources: u64,
    pub python_files: u64,
    pub functions: u64,
}

/// A function of a snapshot: the blob's index row with the path it has in that snapshot.
/// A blob's id and compressed bytes, computed on any thread (no connection needed), stored
/// later by the writer with [`Corpus::put_prepared_blob`].
#[derive(Clone, Debug)]
pub struct PreparedBlob {
    pub id: String,
    pub raw_size: usize,
    pub data: Vec<u8>,
}

impl PreparedBlob {
    pub fn new(raw: &[u8], compressor: &mut zstd::bulk::Compressor<'static>) -> Result<Self> {
        Ok(PreparedBlob {
            id: sha256_hex(raw),
            raw_size: raw.len(),
            data: compressor.compress(raw).context("zstd compression")?,
        })
    }

    /// A compressor at the corpus's level, for [`PreparedBlob::new`].
    pub fn compressor() -> Result<zstd::bulk::Compressor<'static>> {
        zstd::bulk::Compressor::new(ZSTD_LEVEL).context("zstd compressor")
    }
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct SnapshotFunction {
    pub path: String,
    pub qualname: String,
    pub start_line: u32,
    pub end_line: u32,
    pub line_count: u32,
    pub body_sha256: String,
    pub is_async: bool,
    pub is_method: bool,
    pub in_tests: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    pub blobs_checked: u64,
    pub snapshots_checked: u64,
    /// Blob ids whose bytes no longer hash to their id (or do not decompress).
    pub corrupt_blobs: Vec<String>,
    /// Snapshots whose entries no longer hash to their id, or that reference a missing blob.
    pub corrupt_snapshots: Vec<String>,
}

/// Whether a path is in a tests location, the way test runners find tests.
pub fn in_tests_path(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    path.split('/')
        .any(|c| matches!(c, "test" | "tests" | "testing"))
        || file.starts_with("test_")
        || file.ends_with("_test.py")
        || file == "conftest.py"
}

impl Corpus {
    /// Opens (creating if needed) a corpus file, migrating an older schema.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_page_size(path, None)
    }

    /// [`Corpus::open`], with `page_size` for a file that does not exist yet (SQLite fixes a
    /// database's page size when it is created; an existing file keeps its own).
    pub fn open_with_page_size(path: &Path, page_size: Option<u32>) -> Result<Self> {
        let shown = path.display().to_string();
        let mut conn = super::connection::SerialConnection::open(path)
            .with_context(|| format!("{shown}: cannot open the corpus"))?;
        if let Some(size) = page_size {
            conn.pragma_update(None, "page_size", size)?;
        }
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        super::schema::migrate(&mut conn, &shown)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            compressor: RefCell::new(None),
            decompressor: RefCell::new(None),
        })
    }

    /// Opens a corpus that must exist already (for commands that only read).
    pub fn open_existing(path: &Path) -> Result<Self> {
        if !path.exists() {
            bail!("{}: no such corpus file", path.display());
        }
        Self::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn has_blob(&self, id: &str) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM blobs WHERE id = ?1")?;
        Ok(st.exists([id])?)
    }

    /// Stores `raw` under its sha256 unless it is there already. Returns (id, newly stored bytes).
    pub fn put_blob(&self, raw: &[u8]) -> Result<(String, Option<u64>)> {
        let id = hex::encode(Sha256::digest(raw));
        if self.has_blob(&id)? {
            return Ok((id, None));
        }
        let data = {
            let mut slot = self.compressor.borrow_mut();
            let compressor = match &mut *slot {
                Some(c) => c,
                empty => empty
                    .insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).context("zstd compressor")?),
            };
            compressor.compress(raw).context("zstd compression")?
        };
        let mut st = self
            .conn
            .prepare_cached("INSERT INTO blobs (id, raw_size, data) VALUES (?1, ?2, ?3)")?;
        st.execute(params![id, raw.len() as i64, data])?;
        Ok((id, Some(data.len() as u64)))
    }

    /// Stores a blob hashed and compressed elsewhere (see [`PreparedBlob`]) unless it is there
    /// already. Returns whether it was new.
    pub fn put_prepared_blob(&self, b: &PreparedBlob) -> Result<bool> {
        let mut st = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO blobs (id, raw_size, data) VALUES (?1, ?2, ?3)",
        )?;
        Ok(st.execute(params![b.id, b.raw_size as i64, b.data])? == 1)
    }

    /// Indexes the Python functions of a blob unless it was indexed before (in any snapshot).
    /// Returns whether it parsed the file now.
    pub(crate) fn index_python_blob(&self, id: &str, source: &[u8]) -> Result<bool> {
        let mut seen = self
            .conn
            .prepare_cached("SELECT 1 FROM python_files WHERE blob = ?1")?;
        if seen.exists([id])? {
            return Ok(false);
        }
        let (functions, error) = match index_python(source) {
            Ok(f) => (f, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        self.conn
            .prepare_cached(
                "INSERT INTO python_files (blob, functions, error) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id, functions.len() as i64, error])?;
        let mut st = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO functions (blob, qualname, start_line, end_line, body_sha256, is_async, is_method)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for f in &functions {
            st.execute(params![
                id,
                f.qualname,
                f.start_line,
                f.end_line,
                f.body_sha256,
                f.is_async,
                f.is_method
            ])?;
        }
        Ok(true)
    }

    /// The raw bytes of a blob.
    pub fn blob(&self, id: &str) -> Result<Vec<u8>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT raw_size, data FROM blobs WHERE id = ?1")?;
        let (size, data): (i64, Vec<u8>) = st
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .with_context(|| format!("blob {id} is not in the corpus"))?;
        let mut slot = self.decompressor.borrow_mut();
        let decompressor = match &mut *slot {
            Some(d) => d,
            empty => empty.insert(zstd::bulk::Decompressor::new().context("zstd decompressor")?),
        };
        decompressor
            .decompress(&data, size as usize)
            .with_context(|| format!("blob {id}: cannot decompress"))
    }

    /// The raw bytes of each blob of `ids`, in that order (an id may repeat), in one query per
    /// 400 distinct ids rather than one per blob, decompressed on the caller's thread.
    pub fn blobs_in_order(&self, ids: &[&str]) -> Result<Vec<Vec<u8>>> {
        // (id, position) sorted by id: a row's positions are found by binary search, without
        // an owned key per blob.
        let mut at: Vec<(&str, usize)> = ids.iter().copied().zip(0..).collect();
        at.sort_unstable();
        let mut distinct: Vec<&str> = at.iter().map(|(id, _)| *id).collect();
        distinct.dedup();
        let mut out: Vec<Option<Vec<u8>>> = vec![None; ids.len()];
        let mut slot = self.decompressor.borrow_mut();
        let decompressor = match &mut *slot {
            Some(d) => d,
            empty => empty.insert(zstd::bulk::Decompressor::new().context("zstd decompressor")?),
        };
        for chunk in distinct.chunks(400) {
            let marks = vec!["?"; chunk.len()].join(",");
            let mut st = self.conn.prepare_cached(&format!(
                "SELECT id, raw_size, data FROM blobs WHERE id IN ({marks})"
            ))?;
            let mut rows = st.query(rusqlite::params_from_iter(chunk.iter()))?;
            while let Some(r) = rows.next()? {
                let id = r.get_ref(0)?.as_str()?;
                let size: i64 = r.get(1)?;
                let data = r.get_ref(2)?.as_blob()?;
                let raw = decompressor
                    .decompress(data, size as usize)
                    .with_context(|| format!("blob {id}: cannot decompress"))?;
                let first = at.partition_point(|(x, _)| *x < id);
                let mut positions = at[first..]
                    .iter()
                    .take_while(|(x, _)| *x == id)
                    .map(|&(_, i)| i);
                // The first position takes the bytes; repeats of the id get copies.
                if let Some(i) = positions.next() {
                    for j in positions {
                        out[j] = Some(raw.clone());
                    }
                    out[i] = Some(raw);
                }
            }
        }
        out.into_iter()
            .zip(ids)
            .map(|(raw, id)| raw.with_context(|| format!("blob {id} is not in the corpus")))
            .collect()
    }

    /// Resolves a snapshot given as a full id, a unique id prefix (6+ hex digits), or the name
    /// of a source (its latest ingest).
    pub fn resolve_snapshot(&self, spec: &str) -> Result<String> {
        let by_name: Option<String> = self
            .conn
            .query_row(
                "SELECT snapshot FROM sources WHERE name = ?1 ORDER BY id DESC LIMIT 1",
                [spec],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = by_name {
            return Ok(id);
        }
        if spec.len() < 6 || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("no snapshot or source named {spec:?} (give a source name or 6+ hex digits of a snapshot id)");
        }
        let mut st = self
            .conn
            .prepare("SELECT id FROM snapshots WHERE id >= ?1 AND id < ?1 || 'g' LIMIT 2")?;
        let ids: Vec<String> = st
            .query_map([spec.to_ascii_lowercase()], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        match ids.as_slice() {
            [one] => Ok(one.clone()),
            [] => bail!("no snapshot {spec} in {}", self.path.display()),
            _ => bail!("snapshot prefix {spec} is ambiguous; give more digits"),
        }
    }

    pub fn has_snapshot(&self, id: &str) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM snapshots WHERE id = ?1")?;
        Ok(st.exists([id])?)
    }

    /// The entries of a snapshot, sorted by path.
    pub fn entries(&self, snapshot: &str) -> Result<Vec<Entry>> {
        let mut st = self.conn.prepare_cached(
            "SELECT path, mode, blob FROM snapshot_entries WHERE snapshot = ?1 ORDER BY path",
        )?;
        let rows = st.query_map([snapshot], |r| {
            Ok(Entry {
                path: r.get(0)?,
                mode: r.get(1)?,
                blob: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn sources(&self) -> Result<Vec<SourceRow>> {
        let mut st = self.conn.prepare(
            "SELECT name, origin, revision, snapshot, ingested_at, skipped FROM sources ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            let skipped: String = r.get(5)?;
            Ok(SourceRow {
                name: r.get(0)?,
                origin: r.get(1)?,
                revision: r.get(2)?,
                snapshot: r.get(3)?,
                ingested_at: r.get(4)?,
                skipped: serde_json::from_str(&skipped).unwrap_or(serde_json::Value::Null),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The file at `path` in a snapshot: (mode, raw bytes).
    pub fn cat(&self, snapshot: &str, path: &str) -> Result<(u32, Vec<u8>)> {
        let mut st = self.conn.prepare_cached(
            "SELECT mode, blob FROM snapshot_entries WHERE snapshot = ?1 AND path = ?2",
        )?;
        let (mode, blob): (u32, String) = st
            .query_row([snapshot, path], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .with_context(|| format!("no file {path:?} in snapshot {snapshot}"))?;
        Ok((mode, self.blob(&blob)?))
    }

    /// Writes a snapshot's files under `dir` with their modes; symlinks become symlinks.
    pub fn export(&self, snapshot: &str, dir: &Path) -> Result<usize> {
        use std::os::unix::fs::PermissionsExt;
        let entries = self.entries(snapshot)?;
        for e in &entries {
            check_path(&e.path).with_context(|| format!("snapshot {snapshot}"))?;
            let target = dir.join(&e.path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("{}: cannot create directory", parent.display()))?;
            }
            let bytes = self.blob(&e.blob)?;
            if e.mode == MODE_SYMLINK {
                let link = String::from_utf8(bytes)
                    .with_context(|| format!("{}: symlink target is not UTF-8", e.path))?;
                std::os::unix::fs::symlink(&link, &target)
                    .with_context(|| format!("{}: cannot create symlink", target.display()))?;
            } else {
                std::fs::write(&target, &bytes)
                    .with_context(|| format!("{}: cannot write", target.display()))?;
                let mode = if e.mode == MODE_EXECUTABLE {
                    0o755
                } else {
                    0o644
                };
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
            }
        }
        Ok(entries.len())
    }

    /// The Python functions of a snapshot, by path then line.
    pub fn functions(&self, snapshot: &str) -> Result<Vec<SnapshotFunction>> {
        let mut st = self.conn.prepare_cached(
            "SELECT e.path, f.qualname, f.start_line, f.end_line, f.body_sha256, f.is_async, f.is_method
             FROM snapshot_entries e JOIN functions f ON f.blob = e.blob
             WHERE e.snapshot = ?1 ORDER BY e.path, f.start_line, f.qualname",
        )?;
        let rows = st.query_map([snapshot], |r| {
            let path: String = r.get(0)?;
            let start_line: u32 = r.get(2)?;
            let end_line: u32 = r.get(3)?;
            Ok(SnapshotFunction {
                in_tests: in_tests_path(&path),
                path,
                qualname: r.get(1)?,
                start_line,
                end_line,
                line_count: end_line - start_line + 1,
                body_sha256: r.get(4)?,
                is_async: r.get(5)?,
                is_method: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Python files of a snapshot that did not parse: (path, reason).
    pub fn parse_failures(&self, snapshot: &str) -> Result<Vec<(String, String)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT e.path, p.error FROM snapshot_entries e JOIN python_files p ON p.blob = e.blob
             WHERE e.snapshot = ?1 AND p.error IS NOT NULL ORDER BY e.path",
        )?;
        let rows = st.query_map([snapshot], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn stats(&self) -> Result<Stats> {
        let c = &self.conn;
        let one =
            |sql: &str| -> Result<u64> { Ok(c.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64) };
        Ok(Stats {
            blobs: one("SELECT count(*) FROM blobs")?,
            raw_bytes: one("SELECT coalesce(sum(raw_size), 0) FROM blobs")?,
            stored_bytes: one("SELECT coalesce(sum(length(data)), 0) FROM blobs")?,
            snapshots: one("SELECT count(*) FROM snapshots")?,
            sources: one("SELECT count(*) FROM sources")?,
            python_files: one("SELECT count(*) FROM python_files")?,
            functions: one("SELECT count(*) FROM functions")?,
        })
    }

    /// Re-hashes every blob and every snapshot tree.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let mut st = self.conn.prepare("SELECT id, raw_size, data FROM blobs")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let size: i64 = r.get(1)?;
            let data: Vec<u8> = r.get(2)?;
            report.blobs_checked += 1;
            let ok = zstd::bulk::decompress(&data, size.max(0) as usize)
                .map(|raw| raw.len() as i64 == size && hex::encode(Sha256::digest(&raw)) == id)
                .unwrap_or(false);
            if !ok {
                report.corrupt_blobs.push(id);
            }
        }
        let ids: Vec<String> = self
            .conn
            .prepare("SELECT id FROM snapshots ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for id in ids {
            report.snapshots_checked += 1;
            let mut entries = self.entries(&id)?;
            let missing = entries
                .iter()
                .map(|e| self.has_blob(&e.blob))
                .collect::<Result<Vec<bool>>>()?
                .contains(&false);
            if missing || snapshot_id(&mut entries) != id {
                report.corrupt_snapshots.push(id);
            }
        }
        Ok(report)
    }
}
