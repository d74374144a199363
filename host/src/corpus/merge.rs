//! `sera-host corpus merge`: worker corpora into one. Everything in a corpus is keyed by what
//! it is a function of, so a merge is a set union: idempotent, the same in any order, and
//! free of conflicts unless two files hold different content under one key, which is an error
//! naming both files and the key.
//!
//! Crash safety: every source is checked for conflicts first; then the sources' new blobs are
//! copied, in committed batches, each blob's bytes re-hashed against its id; then every other
//! table of each source in one transaction per source. A merge killed midway leaves the
//! destination valid (at most blobs nothing refers to yet, which `corpus verify` accepts) and
//! a rerun copies what is left.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rusqlite::params;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{schema, snapshot_id, Corpus, Entry};

/// A table's key columns and the columns that are its content. Columns in neither are
/// measurements or clocks (latency, timestamps, where an environment was built on one
/// machine): they may differ between workers, and the destination keeps its own. A rollout's
/// trajectory is one of those: two workers that reach the same rollout (two items whose PR
/// texts came out the same) store trajectories that differ in latencies and in which worker's
/// command records they name; what it did (outcome, steps, patch) must agree.
struct Table {
    name: &'static str,
    key: &'static [&'static str],
    content: &'static [&'static str],
}

/// In the order rows can be inserted (what they refer to first). `blobs` is copied apart, by
/// the hash-checking copier, and `sources` (a log of ingests, with no natural key) by
/// [`merge_sources`].
const TABLES: &[Table] = &[
    Table {
        name: "python_files",
        key: &["blob"],
        content: &["functions", "error"],
    },
    Table {
        name: "functions",
        key: &["blob", "start_line", "qualname"],
        content: &["end_line", "body_sha256", "is_async", "is_method"],
    },
    Table {
        name: "snapshots",
        key: &["id"],
        content: &["files", "raw_bytes"],
    },
    Table {
        name: "snapshot_entries",
        key: &["snapshot", "path"],
        content: &["mode", "blob"],
    },
    Table {
        name: "exchanges",
        key: &["request", "sample"],
        content: &["response"],
    },
    Table {
        name: "rollouts",
        key: &["id"],
        content: &[
            "snapshot", "function", "teacher", "model", "sample", "outcome", "reason", "steps",
            "patch",
        ],
    },
    Table {
        name: "stage_outputs",
        key: &["key"],
        content: &["stage", "output"],
    },
    Table {
        name: "shard_rows",
        key: &["id"],
        content: &["provenance"],
    },
    Table {
        name: "imports",
        key: &["id"],
        content: &[
            "format",
            "source_sha256",
            "locator",
            "instance_id",
            "trajectory",
            "patch",
            "meta",
            "target_patch",
        ],
    },
    Table {
        name: "verdicts",
        key: &["plugin", "config", "pair"],
        content: &["score", "matched", "total", "detail", "failure"],
    },
    Table {
        name: "execs",
        key: &["key"],
        content: &[
            "tree_before",
            "command",
            "env",
            "timeout_s",
            "exit_code",
            "signal",
            "timed_out",
            "truncated",
            "dropped_bytes",
            "output",
            "changes",
            "tree_after",
        ],
    },
    Table {
        name: "envs",
        key: &["id"],
        content: &["snapshot", "interpreter", "requirements", "status"],
    },
    Table {
        name: "item_progress",
        key: &["pipeline", "item"],
        content: &[],
    },
];

/// Tables the merge copies by code of its own rather than through [`TABLES`].
const SPECIAL: &[&str] = &["blobs", "sources"];

/// The page size of a corpus created by a merge.
const MERGED_PAGE_SIZE: u32 = 65536;

/// Blobs per committed batch: big enough that commits cost little, small enough that a kill
/// loses little.
const BLOB_BATCH_BYTES: usize = 64 << 20;

#[derive(Debug, Default, Serialize)]
pub struct SourceMerged {
    pub path: PathBuf,
    pub blobs_copied: u64,
    pub blobs_present: u64,
    /// Compressed bytes of the copied blobs.
    pub bytes_copied: u64,
    /// New rows per table (blobs not counted).
    pub rows: std::collections::BTreeMap<String, u64>,
    /// Its checks and rows (its blobs are in [`MergeReport::blob_seconds`]).
    pub seconds: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct MergeReport {
    pub db: PathBuf,
    pub sources: Vec<SourceMerged>,
    /// Every source's blobs are copied in one stream (so one source's overlap the next one's).
    pub blob_seconds: f64,
}

impl MergeReport {
    pub fn render(&self) -> String {
        let mut s = String::new();
        for m in &self.sources {
            let rows: u64 = m.rows.values().sum();
            s.push_str(&format!(
                "{}: {} blobs copied ({:.1} MB, hashes checked), {} already there; {} rows new ({}); {:.2} s\n",
                m.path.display(),
                m.blobs_copied,
                m.bytes_copied as f64 / 1e6,
                m.blobs_present,
                rows,
                m.rows
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(t, n)| format!("{t} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                m.seconds
            ));
        }
        s.push_str(&format!(
            "merged {} corpora into {} (blobs of all of them: {:.2} s)\n",
            self.sources.len(),
            self.db.display(),
            self.blob_seconds
        ));
        s
    }
}

/// Merges every `sources` corpus into `db` (created when missing).
pub fn merge(db: &Path, sources: &[PathBuf]) -> Result<MergeReport> {
    // A merged corpus is mostly large blobs written once: 64 KiB pages store them with an
    // eighth of the page bookkeeping of SQLite's 4 KiB default and write them about twice as
    // fast here (benches/cluster.rs). Only a destination the merge creates gets them.
    let dst = Corpus::open_with_page_size(db, (!db.exists()).then_some(MERGED_PAGE_SIZE))?;
    check_tables_known(&dst)?;
    // WAL writes every copied page twice (the log, then the checkpoint). A rollback journal
    // writes new pages once and journals only the few it changes, and is as crash-safe; it
    // needs the file to ourselves, so while a reader has it open the merge stays in WAL.
    // `Corpus::open` puts WAL back for everyone after.
    let exclusive = dst
        .conn()
        .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0))
        .is_ok_and(|m| m.eq_ignore_ascii_case("delete"));
    // The id index takes its inserts in hash order, all over the b-tree: with SQLite's
    // default 2 MB cache (31 pages of 64 KiB) its pages would be written out and read back.
    // Much more than 16 MB costs more than it saves: a batch's pages would pile up in memory
    // (fresh pages to fault in) instead of going to the file as they fill.
    let _ = dst.conn().pragma_update(None, "cache_size", -(16 << 10));
    let result = merge_all(&dst, db, sources);
    if exclusive {
        let _ = dst
            .conn()
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0));
    }
    result
}

fn merge_all(dst: &Corpus, db: &Path, sources: &[PathBuf]) -> Result<MergeReport> {
    let dst_real = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let mut report = MergeReport {
        db: db.to_path_buf(),
        sources: Vec::new(),
        blob_seconds: 0.0,
    };
    let in_context = |src: &Path| format!("corpus merge: {} into {}", src.display(), db.display());
    // 1. Each source: a corpus (an older schema brought up to date), not the destination, no
    //    disagreement with what the destination holds; the blobs it has that it lacks.
    let (mut wanted, mut totals) = (Vec::new(), Vec::new());
    for src in sources {
        if std::fs::canonicalize(src).ok().as_deref() == Some(dst_real.as_path()) {
            bail!(
                "corpus merge: {} is the destination itself (--db {})",
                src.display(),
                db.display()
            );
        }
        drop(Corpus::open_existing(src)?);
        let started = Instant::now();
        let (total, new) = attached(dst, src, |conn| {
            for t in TABLES {
                check_conflicts(conn, t, src, db)?;
            }
            new_blobs(conn)
        })
        .with_context(|| in_context(src))?;
        report.sources.push(SourceMerged {
            path: src.to_path_buf(),
            seconds: started.elapsed().as_secs_f64(),
            ..SourceMerged::default()
        });
        wanted.push(new);
        totals.push(total);
    }
    // 2. Every source's new blobs in one stream: checked on every core, written by this thread.
    let started = Instant::now();
    copy_blobs(dst, sources, wanted, &mut report.sources)?;
    report.blob_seconds = started.elapsed().as_secs_f64();
    for (m, total) in report.sources.iter_mut().zip(totals) {
        m.blobs_present = total.saturating_sub(m.blobs_copied);
    }
    // 3. Each source's rows, in one transaction per source, checked again against what the
    //    sources before it brought.
    for (src, m) in sources.iter().zip(report.sources.iter_mut()) {
        let started = Instant::now();
        attached(dst, src, |conn| {
            for t in TABLES {
                check_conflicts(conn, t, src, db)?;
            }
            let tx = conn.unchecked_transaction()?;
            check_new_snapshots(dst, src)?;
            for t in TABLES {
                let n = copy_rows(conn, t)?;
                m.rows.insert(t.name.into(), n);
            }
            let n = merge_sources(conn)?;
            m.rows.insert("sources".into(), n);
            tx.commit()?;
            Ok(())
        })
        .with_context(|| in_context(src))?;
        m.seconds += started.elapsed().as_secs_f64();
    }
    Ok(report)
}

/// Runs `f` with `src` attached to the destination's connection as `src`.
fn attached<T>(
    dst: &Corpus,
    src: &Path,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
) -> Result<T> {
    let conn = dst.conn();
    conn.execute(
        "ATTACH DATABASE ?1 AS src",
        [src.to_str().context("a corpus path that is not UTF-8")?],
    )?;
    let result = f(conn);
    let detach = conn.execute("DETACH DATABASE src", []);
    let value = result?;
    detach?;
    Ok(value)
}

/// (blobs in `src`, rowids of those the destination lacks, ascending).
fn new_blobs(conn: &rusqlite::Connection) -> Result<(u64, Vec<i64>)> {
    let total: i64 = conn.query_row("SELECT count(*) FROM src.blobs", [], |r| r.get(0))?;
    // Without ORDER BY, SQLite walks the id index (ids and rowids only) instead of every page
    // of the table; the readers want rowids in order, sorted here.
    let mut wanted: Vec<i64> = conn
        .prepare(
            "SELECT s.rowid FROM src.blobs s
             WHERE NOT EXISTS (SELECT 1 FROM main.blobs d WHERE d.id = s.id)",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    wanted.sort_unstable();
    Ok((total as u64, wanted))
}

/// Every table of the schema is either in [`TABLES`] or copied specially: a migration that
/// adds a table must say how it merges.
fn check_tables_known(c: &Corpus) -> Result<()> {
    let mut st = c.conn().prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )?;
    let names: Vec<String> = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for n in names {
        if !TABLES.iter().any(|t| t.name == n) && !SPECIAL.contains(&n.as_str()) {
            bail!("corpus merge: table {n} (schema version {}) has no merge rule; this is a bug in sera-host", schema::VERSION);
        }
    }
    Ok(())
}

/// The first key under which `src` and the destination hold different content.
fn check_conflicts(conn: &rusqlite::Connection, t: &Table, src: &Path, db: &Path) -> Result<()> {
    if t.content.is_empty() {
        return Ok(());
    }
    let join: Vec<String> = t.key.iter().map(|k| format!("s.{k} = d.{k}")).collect();
    let differs: Vec<String> = t
        .content
        .iter()
        .map(|c| format!("s.{c} IS NOT d.{c}"))
        .collect();
    // A rollout the teacher failed is run again by the pipeline; the one that finished wins.
    let exempt = if t.name == "rollouts" {
        " AND s.outcome <> 'teacher-error' AND d.outcome <> 'teacher-error'"
    } else {
        ""
    };
    let keys: Vec<String> = t.key.iter().map(|k| format!("quote(s.{k})")).collect();
    let cols = t
        .content
        .iter()
        .map(|c| format!("quote(s.{c}), quote(d.{c})"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {}, {cols} FROM src.{name} s JOIN main.{name} d ON {} WHERE ({}){exempt} LIMIT 1",
        keys.join(" || ', ' || "),
        join.join(" AND "),
        differs.join(" OR "),
        name = t.name
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query([])?;
    if let Some(r) = rows.next()? {
        let key: String = r.get(0)?;
        let mut what = Vec::new();
        for (i, c) in t.content.iter().enumerate() {
            let a: String = r.get(1 + 2 * i)?;
            let b: String = r.get(2 + 2 * i)?;
            if a != b {
                what.push(format!(
                    "{c}: {} has {}, {} has {}",
                    src.display(),
                    short(&a),
                    db.display(),
                    short(&b)
                ));
            }
        }
        bail!(
            "conflict: {} and {} hold different content under one key of {}: ({}) = ({key}); {}",
            src.display(),
            db.display(),
            t.name,
            t.key.join(", "),
            what.join("; ")
        );
    }
    Ok(())
}

fn short(v: &str) -> String {
    if v.chars().count() > 80 {
        format!("{}...", v.chars().take(77).collect::<String>())
    } else {
        v.to_string()
    }
}

/// Blobs per reader job: a range scan of one source, small enough that the cores share the
/// work of few sources evenly.
const JOB_BLOBS: usize = 1024;

/// Copies the blobs the destination lacks (`wanted[i]`: rowids in `sources[i]`), each
/// re-hashed: its bytes must decompress to its declared size and hash to its id. Reader threads
/// (their own connections, every core) read and check them while this one writes, so hashing
/// overlaps SQLite's writes and syncs, and one source's blobs overlap the next one's.
fn copy_blobs(
    dst: &Corpus,
    sources: &[PathBuf],
    wanted: Vec<Vec<i64>>,
    merged: &mut [SourceMerged],
) -> Result<()> {
    let conn = dst.conn();
    let cores = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    // A few jobs per core at least (a few hundred large blobs are as much work as thousands of
    // small ones), at most JOB_BLOBS each.
    let all: usize = wanted.iter().map(Vec::len).sum();
    let per_job = all.div_ceil(cores * 4).clamp(16, JOB_BLOBS);
    let jobs: std::collections::VecDeque<(usize, Vec<i64>)> = wanted
        .iter()
        .enumerate()
        .flat_map(|(i, w)| w.chunks(per_job).map(move |c| (i, c.to_vec())))
        .collect();
    let threads = cores.min(jobs.len().max(1));
    let jobs = std::sync::Arc::new(std::sync::Mutex::new(jobs));
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(usize, Vec<CheckedBlob>)>>(16);
    let readers: Vec<_> = (0..threads)
        .map(|_| {
            let (jobs, tx, sources) = (jobs.clone(), tx.clone(), sources.to_vec());
            std::thread::spawn(move || loop {
                let Some((i, rowids)) = jobs.lock().expect("blob jobs").pop_front() else {
                    break;
                };
                let sent = read_and_check(&sources[i], &rowids, &mut |batch| {
                    tx.send(Ok((i, batch))).is_ok()
                });
                match sent {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let mut batch_bytes = 0usize;
    let mut result = Ok(());
    let mut tx_open = Some(conn.unchecked_transaction()?);
    'batches: for item in rx.iter() {
        let (i, batch) = match item {
            Ok(x) => x,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        let mut ins = conn.prepare_cached(
            "INSERT OR IGNORE INTO main.blobs (id, raw_size, data) VALUES (?1, ?2, ?3)",
        )?;
        for (id, size, data) in batch {
            // Two sources holding one blob: the second finds it there.
            match ins.execute(params![id, size, data]) {
                Ok(n) if n > 0 => {
                    merged[i].blobs_copied += 1;
                    merged[i].bytes_copied += data.len() as u64;
                    batch_bytes += data.len();
                }
                Ok(_) => {}
                Err(e) => {
                    result = Err(e.into());
                    break 'batches;
                }
            }
        }
        if batch_bytes >= BLOB_BATCH_BYTES {
            if let Some(t) = tx_open.take() {
                t.commit()?;
            }
            tx_open = Some(conn.unchecked_transaction()?);
            batch_bytes = 0;
        }
    }
    // Readers stop at their next send once the channel is gone.
    drop(rx);
    for r in readers {
        r.join()
            .map_err(|_| anyhow::anyhow!("a blob reader thread panicked"))?;
    }
    // What was checked before a corrupt blob is committed too: blobs alone are always valid.
    if let Some(t) = tx_open.take() {
        t.commit()?;
    }
    result
}

/// A blob read from a source and checked: id, raw size, stored bytes.
type CheckedBlob = (String, i64, Vec<u8>);

/// Compressed bytes a reader gathers before handing them to the writer: one wake-up per batch
/// rather than per blob (a worker corpus holds thousands of blobs of a few KB).
const SEND_BATCH_BYTES: usize = 128 << 10;

/// Reads the blobs at `rowids` (ascending) of `src`, checks each, and hands them to `send` in
/// batches. One scan of their rowid range, through a memory map of the file. `Ok(false)` when
/// `send` refused (the writer has stopped).
fn read_and_check(
    src: &Path,
    rowids: &[i64],
    send: &mut dyn FnMut(Vec<CheckedBlob>) -> bool,
) -> Result<bool> {
    let (Some(&first), Some(&last)) = (rowids.first(), rowids.last()) else {
        return Ok(true);
    };
    let c = super::connection::SerialConnection::open_with_flags(
        src,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("{}: cannot read", src.display()))?;
    // Pages read through a map instead of a copy into SQLite's cache each.
    let _ = c.pragma_update(None, "mmap_size", 1i64 << 32);
    let mut st = c.prepare(
        "SELECT rowid, id, raw_size, data FROM blobs WHERE rowid BETWEEN ?1 AND ?2 ORDER BY rowid",
    )?;
    let mut rows = st.query([first, last])?;
    let mut decompressor = zstd::bulk::Decompressor::new().context("zstd decompressor")?;
    // One buffer for every blob's raw bytes: no fresh pages to fault in and zero per blob.
    let mut raw: Vec<u8> = Vec::new();
    let mut want = rowids.iter().peekable();
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    while let Some(r) = rows.next()? {
        let rowid: i64 = r.get(0)?;
        while want.next_if(|w| **w < rowid).is_some() {}
        if want.next_if_eq(&&rowid).is_none() {
            continue;
        }
        let (id, size, data): (String, i64, Vec<u8>) = (r.get(1)?, r.get(2)?, r.get(3)?);
        raw.clear();
        raw.reserve(size.max(0) as usize);
        let fits = decompressor
            .decompress_to_buffer(&data, &mut raw)
            .is_ok_and(|n| n as i64 == size);
        if !fits {
            bail!(
                "{}: blob {id} is corrupt: it does not decompress to its {size} bytes (no rows were merged)",
                src.display()
            );
        }
        let got = hex::encode(Sha256::digest(&raw));
        if got != id {
            bail!(
                "{}: blob {id} is corrupt: its bytes hash to {got} (no rows were merged)",
                src.display()
            );
        }
        batch_bytes += data.len();
        batch.push((id, size, data));
        if batch_bytes >= SEND_BATCH_BYTES {
            if !send(std::mem::take(&mut batch)) {
                return Ok(false);
            }
            batch_bytes = 0;
        }
    }
    Ok(batch.is_empty() || send(batch))
}

/// A snapshot new to the destination must hash to its id from the source's entries.
fn check_new_snapshots(dst: &Corpus, src: &Path) -> Result<()> {
    let conn = dst.conn();
    let ids: Vec<String> = conn
        .prepare(
            "SELECT s.id FROM src.snapshots s WHERE NOT EXISTS (SELECT 1 FROM main.snapshots d WHERE d.id = s.id)",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut st = conn.prepare(
        "SELECT path, mode, blob FROM src.snapshot_entries WHERE snapshot = ?1 ORDER BY path",
    )?;
    for id in ids {
        let mut entries: Vec<Entry> = st
            .query_map([&id], |r| {
                Ok(Entry {
                    path: r.get(0)?,
                    mode: r.get(1)?,
                    blob: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        if snapshot_id(&mut entries) != id {
            bail!(
                "{}: snapshot {id} is corrupt: its entries do not hash to its id",
                src.display()
            );
        }
    }
    Ok(())
}

/// Ingest records the destination does not have (same name, origin, revision and snapshot),
/// in the source's order.
fn merge_sources(conn: &rusqlite::Connection) -> Result<u64> {
    let n = conn.execute(
        "INSERT INTO main.sources (name, origin, revision, snapshot, ingested_at, skipped)
         SELECT s.name, s.origin, s.revision, s.snapshot, s.ingested_at, s.skipped FROM src.sources s
         WHERE NOT EXISTS (SELECT 1 FROM main.sources d WHERE d.name = s.name AND d.origin = s.origin
                           AND d.revision IS s.revision AND d.snapshot = s.snapshot)
         ORDER BY s.id",
        [],
    )?;
    Ok(n as u64)
}

fn copy_rows(conn: &rusqlite::Connection, t: &Table) -> Result<u64> {
    let sql = if t.name == "rollouts" {
        // Like `put_rollout`: a finished rollout replaces one the teacher failed.
        "INSERT INTO main.rollouts SELECT * FROM src.rollouts WHERE true
         ON CONFLICT(id) DO UPDATE SET outcome = excluded.outcome, reason = excluded.reason,
           steps = excluded.steps, trajectory = excluded.trajectory, patch = excluded.patch,
           created_at = excluded.created_at
         WHERE rollouts.outcome = 'teacher-error' AND excluded.outcome <> 'teacher-error'"
            .to_string()
    } else {
        format!(
            "INSERT INTO main.{0} SELECT * FROM src.{0} WHERE true ON CONFLICT DO NOTHING",
            t.name
        )
    };
    Ok(conn.execute(&sql, [])? as u64)
}
