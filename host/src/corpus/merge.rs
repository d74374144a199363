//! `sera-host corpus merge`: worker corpora into one. Everything in a corpus is keyed by what
//! it is a function of, so a merge is a set union: idempotent, the same in any order, and
//! free of conflicts unless two files hold different content under one key, which is an error
//! naming both files and the key.
//!
//! Crash safety: every source is checked for conflicts first; then each group of sources
//! (attached together) is merged in one transaction: each source's new blobs, then its other
//! tables. Reader threads re-hash every new blob against its id meanwhile, and nothing is
//! committed before the blobs in it passed; a group with more than a batch of blobs commits
//! them on the way. A merge killed midway leaves the destination valid (at most blobs nothing
//! refers to yet, which `corpus verify` accepts) and a rerun copies what is left.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::schema;
use super::store::Corpus;
use super::tree::{snapshot_id, Entry};

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
const BLOB_BATCH_BYTES: u64 = 64 << 20;

#[derive(Debug, Default, Serialize)]
pub struct SourceMerged {
    pub path: PathBuf,
    pub blobs_copied: u64,
    pub blobs_present: u64,
    /// Compressed bytes of the copied blobs.
    pub bytes_copied: u64,
    /// New rows per table (blobs not counted).
    pub rows: std::collections::BTreeMap<String, u64>,
    /// Its conflict checks, blobs and rows (waiting for its blobs' checks included).
    pub seconds: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct MergeReport {
    pub db: PathBuf,
    pub sources: Vec<SourceMerged>,
    /// The whole merge (sources' times overlap: blobs are checked on every core meanwhile).
    pub seconds: f64,
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
            "merged {} corpora into {} in {:.2} s\n",
            self.sources.len(),
            self.db.display(),
            self.seconds
        ));
        s
    }
}

/// Merges every `sources` corpus into `db` (created when missing).
pub fn merge(db: &Path, sources: &[PathBuf]) -> Result<MergeReport> {
    let started = Instant::now();
    // Each source: a corpus (an older schema brought up to date), not the destination.
    let dst_real = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    for src in sources {
        if std::fs::canonicalize(src).ok().as_deref() == Some(dst_real.as_path()) {
            bail!(
                "corpus merge: {} is the destination itself (--db {})",
                src.display(),
                db.display()
            );
        }
        drop(Corpus::open_existing(src)?);
    }
    let fresh = !db.exists();
    // Blob checks (decompress, hash) are most of a merge's work: they run on every core as
    // soon as a source's new blobs are known, beside everything this thread does. A
    // destination this merge creates holds nothing, so the first source's blobs are all new
    // and their checks start before the destination is even made.
    let mut checks = BlobChecks::start(sources);
    let first = match sources.first() {
        Some(src) if fresh => Some(FirstSource::submit(src, &mut checks)?),
        _ => None,
    };
    // A merged corpus is mostly large blobs written once: 64 KiB pages store them with an
    // eighth of the page bookkeeping of SQLite's 4 KiB default and write them about twice as
    // fast here (benches/cluster.rs). Only a destination the merge creates gets them.
    let dst = Corpus::open_with_page_size(db, fresh.then_some(MERGED_PAGE_SIZE))?;
    check_tables_known(&dst)?;
    // WAL writes every copied page twice (the log, then the checkpoint). A rollback journal
    // writes new pages once and journals only the few it changes, and is as crash-safe; it
    // needs the file to ourselves, so while a reader has it open the merge stays in WAL.
    // `Corpus::open` puts WAL back for everyone after.
    let exclusive = dst
        .conn()
        .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0))
        .is_ok_and(|m| m.eq_ignore_ascii_case("delete"));
    let mut attached = Attached::new(dst.conn());
    let result = merge_all(&dst, &mut attached, db, sources, &mut checks, first);
    let detached = attached.detach();
    if exclusive {
        let _ = dst
            .conn()
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0));
    }
    let mut report = result?;
    detached?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Sources attached to the destination's connection at once (SQLite allows 10 by default):
/// the sources of a group are merged in one transaction.
const GROUP: usize = 8;

fn merge_all(
    dst: &Corpus,
    attached: &mut Attached,
    db: &Path,
    sources: &[PathBuf],
    checks: &mut BlobChecks,
    first: Option<FirstSource>,
) -> Result<MergeReport> {
    let mut report = MergeReport {
        db: db.to_path_buf(),
        sources: Vec::new(),
        seconds: 0.0,
    };
    let in_context = |src: &Path| format!("corpus merge: {} into {}", src.display(), db.display());
    let conn = dst.conn();
    // 1. Each source: no disagreement with what the destination holds; the blobs it has that
    //    the destination lacks.
    let mut plans = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let started = Instant::now();
        let a = attached.source(i, sources)?;
        let (total, plan) = (|| {
            for t in TABLES {
                check_conflicts(conn, &a, t, src, db)?;
            }
            match (i, &first) {
                (0, Some(first)) => Ok((first.blobs, first.jobs.clone())),
                _ => new_blobs(conn, &a).map(|(total, new)| (total, checks.submit(i, &new))),
            }
        })()
        .with_context(|| in_context(src))?;
        plans.push(plan);
        report.sources.push(SourceMerged {
            path: src.to_path_buf(),
            // Less those it copies, below.
            blobs_present: total,
            seconds: started.elapsed().as_secs_f64(),
            ..SourceMerged::default()
        });
    }
    cache_for_index(conn, checks.queued)?;
    // 2. The sources of a group in one transaction: each one's new blobs, then its rows,
    //    checked again against what the sources before it brought; committed once every blob
    //    in it has passed its check. A group that brings more blobs than a batch also commits
    //    them on the way (blobs alone are always valid, and a kill keeps what was checked).
    let mut rows_added = false;
    let writeback = Writeback::start(db)?;
    for group in (0..sources.len()).collect::<Vec<_>>().chunks(GROUP) {
        let mut tx = None;
        let mut batch_bytes = 0u64;
        let mut unconfirmed = Vec::new();
        for &i in group {
            let src = &sources[i];
            let started = Instant::now();
            let a = attached.source(i, sources)?;
            let tx_now = match tx.take() {
                Some(t) => t,
                None => conn.unchecked_transaction()?,
            };
            let m = &mut report.sources[i];
            let merged = (|| -> Result<rusqlite::Transaction<'_>> {
                let mut tx_now = tx_now;
                if rows_added {
                    for t in TABLES {
                        check_conflicts(conn, &a, t, src, db)?;
                    }
                }
                for k in plans[i].clone() {
                    let (first, last) = checks.range(k);
                    let (n, bytes) = copy_blob_range(conn, &a, first, last)?;
                    writeback.nudge(conn)?;
                    m.blobs_copied += n;
                    m.bytes_copied += bytes;
                    batch_bytes += bytes;
                    unconfirmed.push(k);
                    if batch_bytes >= BLOB_BATCH_BYTES {
                        writeback.sync(conn)?;
                        checks.wait(unconfirmed.drain(..))?;
                        tx_now.commit()?;
                        tx_now = conn.unchecked_transaction()?;
                        batch_bytes = 0;
                    }
                }
                check_new_snapshots(conn, &a, src)?;
                for t in TABLES {
                    let n = copy_rows(conn, &a, t)?;
                    rows_added |= n > 0;
                    m.rows.insert(t.name.into(), n);
                }
                let n = merge_sources(conn, &a)?;
                rows_added |= n > 0;
                m.rows.insert("sources".into(), n);
                Ok(tx_now)
            })()
            .with_context(|| in_context(src))?;
            tx = Some(merged);
            m.blobs_present = m.blobs_present.saturating_sub(m.blobs_copied);
            m.seconds += started.elapsed().as_secs_f64();
        }
        writeback.sync(conn)?;
        checks.wait(unconfirmed.drain(..))?;
        if let Some(t) = tx {
            t.commit()?;
        }
    }
    Ok(report)
}

/// Which sources the destination's connection has attached, under which names (`s0`, `s1`, …):
/// a group of [`GROUP`] at a time. ATTACH and DETACH cannot run inside a transaction, so a
/// group stays attached while it is merged.
struct Attached<'c> {
    conn: &'c rusqlite::Connection,
    group: Option<usize>,
    /// Sources attached: `s0` to `s{count-1}`.
    count: usize,
}

impl<'c> Attached<'c> {
    fn new(conn: &'c rusqlite::Connection) -> Self {
        Attached {
            conn,
            group: None,
            count: 0,
        }
    }

    /// The schema name of source `i`, attaching its group (and detaching the one before).
    fn source(&mut self, i: usize, sources: &[PathBuf]) -> Result<String> {
        let group = i / GROUP;
        if self.group != Some(group) {
            self.detach()?;
            for (j, src) in sources.iter().enumerate().skip(group * GROUP).take(GROUP) {
                let name = format!("s{}", j % GROUP);
                let path = src.to_str().context("a corpus path that is not UTF-8")?;
                super::connection::serially(|| -> rusqlite::Result<()> {
                    self.conn
                        .execute(&format!("ATTACH DATABASE ?1 AS {name}"), [path])?;
                    // The source's pages read through a map rather than copied into the cache.
                    let _ = self
                        .conn
                        .pragma_update(Some(&*name), "mmap_size", 1i64 << 32);
                    self.conn.query_row(
                        &format!("SELECT count(*) FROM {name}.sqlite_schema"),
                        [],
                        |_| Ok(()),
                    )
                })?;
                self.count += 1;
            }
            self.group = Some(group);
        }
        Ok(format!("s{}", i % GROUP))
    }

    fn detach(&mut self) -> Result<()> {
        let mut result = Ok(());
        for j in 0..std::mem::take(&mut self.count) {
            let detached = super::connection::serially(|| {
                self.conn.execute(&format!("DETACH DATABASE s{j}"), [])
            });
            if let (Ok(()), Err(e)) = (&result, detached) {
                result = Err(e.into());
            }
        }
        self.group = None;
        result
    }
}

/// The first source's blobs, every one of them checked, for a destination that starts empty.
struct FirstSource {
    blobs: u64,
    jobs: std::ops::Range<usize>,
}

impl FirstSource {
    fn submit(src: &Path, checks: &mut BlobChecks) -> Result<Self> {
        let c = super::connection::SerialConnection::open_with_flags(
            src,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("{}: cannot read", src.display()))?;
        // Without ORDER BY SQLite walks the id index (ids and rowids) rather than the table.
        let mut rowids: Vec<i64> = c
            .prepare("SELECT rowid FROM blobs")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()
            .with_context(|| format!("{}: cannot list its blobs", src.display()))?;
        rowids.sort_unstable();
        Ok(FirstSource {
            blobs: rowids.len() as u64,
            jobs: checks.submit(0, &rowids),
        })
    }
}

/// Sizes the destination's page cache for the blobs' id index: it takes its inserts in hash
/// order, all over the b-tree, so its pages must stay in the cache or be written out and read
/// back for every few blobs (SQLite's default 2 MB cache is 31 pages of 64 KiB). The blobs'
/// own pages only pass through: more cache than the index needs is memory to fault in
/// (4,000 faults for 16 MB), a tenth of a small merge's time on its main thread.
/// Measured (2 cores): 5,800 blobs merged 5% faster with 4 MB than with 16 MB; 80,000
/// blobs (an 8 MB index) 38% slower with 4 MB, no faster with 32 or 64 MB.
fn cache_for_index(conn: &rusqlite::Connection, new_blobs: u64) -> Result<()> {
    let present: i64 =
        conn.query_row("SELECT coalesce(max(rowid), 0) FROM main.blobs", [], |r| {
            r.get(0)
        })?;
    // ~100 bytes an index entry (a 64-character id, its rowid, cell overhead, pages not full),
    // twice that for the blobs' pages passing through.
    let index_kib = (present.max(0) as u64 + new_blobs) * 100 / 1024;
    let kib = (2 * index_kib).clamp(4 << 10, 64 << 10);
    conn.pragma_update(None, "cache_size", -(kib as i64))?;
    Ok(())
}

/// Gets the destination's new pages onto the disk while the merge goes on: SQLite writes
/// them to the file as each job's blobs are copied, and a thread syncs the file meanwhile, so
/// that the sync before each commit ([`Writeback::sync`]) finds little left to write.
struct Writeback {
    db: PathBuf,
    file: std::sync::Arc<std::fs::File>,
    wake: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writeback {
    fn start(db: &Path) -> Result<Self> {
        let file = std::sync::Arc::new(
            std::fs::File::open(db).with_context(|| format!("{}: cannot open", db.display()))?,
        );
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let synced = file.clone();
        let thread = std::thread::spawn(move || {
            while woken.recv().is_ok() {
                // The sync before each commit reports errors; this one only gets ahead.
                let _ = synced.sync_data();
            }
        });
        Ok(Writeback {
            db: db.to_path_buf(),
            file,
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Writes the open transaction's pages to the destination and syncs them while the blob
    /// checks still run, so that the commit after them has only its journal left to sync (on
    /// the demo's worker corpora it took 17–19 ms of a 110 ms merge, on one core, after the
    /// checks).
    fn sync(&self, conn: &rusqlite::Connection) -> Result<()> {
        (|| -> Result<()> {
            conn.cache_flush()?;
            Ok(self.file.sync_data()?)
        })()
        .with_context(|| format!("corpus merge into {}", self.db.display()))
    }

    fn nudge(&self, conn: &rusqlite::Connection) -> Result<()> {
        conn.cache_flush()?;
        if let Some(w) = &self.wake {
            // A sync already asked for covers these pages too.
            let _ = w.try_send(());
        }
        Ok(())
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        self.wake = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// (blobs in source `a`, rowids of those the destination lacks, ascending).
fn new_blobs(conn: &rusqlite::Connection, a: &str) -> Result<(u64, Vec<i64>)> {
    let total: i64 =
        conn.query_row(&format!("SELECT count(*) FROM {a}.blobs"), [], |r| r.get(0))?;
    // Without ORDER BY, SQLite walks the id index (ids and rowids only) instead of every page
    // of the table; the readers want rowids in order, sorted here.
    let mut wanted: Vec<i64> = conn
        .prepare(&format!(
            "SELECT s.rowid FROM {a}.blobs s
             WHERE NOT EXISTS (SELECT 1 FROM main.blobs d WHERE d.id = s.id)"
        ))?
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
fn check_conflicts(
    conn: &rusqlite::Connection,
    a: &str,
    t: &Table,
    src: &Path,
    db: &Path,
) -> Result<()> {
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
        "SELECT {}, {cols} FROM {a}.{name} s JOIN main.{name} d ON {} WHERE ({}){exempt} LIMIT 1",
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

/// Copies the blobs of the attached source in the rowid range `first..=last` that the
/// destination lacks, inside SQLite (no bytes pass through Rust, a fraction of the cost of
/// binding each blob). Returns (blobs, compressed bytes) copied.
///
/// Every such blob is one the range's check job covers: `new_blobs` listed exactly the source's
/// blobs the destination lacked, and only this merge adds to it.
fn copy_blob_range(
    conn: &rusqlite::Connection,
    a: &str,
    first: i64,
    last: i64,
) -> Result<(u64, u64)> {
    let before: i64 =
        conn.query_row("SELECT coalesce(max(rowid), 0) FROM main.blobs", [], |r| {
            r.get(0)
        })?;
    // `OR IGNORE` rather than `NOT EXISTS`: a statement that reads the table it inserts into
    // first copies every selected row into a temporary table; with `OR IGNORE` it streams.
    conn.prepare_cached(&format!(
        "INSERT OR IGNORE INTO main.blobs (id, raw_size, data)
         SELECT id, raw_size, data FROM {a}.blobs WHERE rowid BETWEEN ?1 AND ?2"
    ))?
    .execute([first, last])?;
    // `length` of a blob reads its record header, not its bytes.
    let (n, bytes): (i64, f64) = conn
        .prepare_cached("SELECT count(*), total(length(data)) FROM main.blobs WHERE rowid > ?1")?
        .query_row([before], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((n as u64, bytes as u64))
}

/// (job number, source number, rowids of its new blobs).
type CheckJob = (usize, usize, Vec<i64>);

/// Reader threads that check the sources' new blobs (every blob's bytes must decompress to its
/// declared size and hash to its id), one job (a rowid range of one source) at a time, on
/// their own read-only connections. The merge commits blobs only after their jobs passed.
struct BlobChecks {
    sources: Vec<PathBuf>,
    cores: usize,
    /// (first, last) rowid of each job.
    ranges: Vec<(i64, i64)>,
    /// Blobs in every job queued so far.
    queued: u64,
    passed: Vec<bool>,
    jobs: Option<std::sync::mpsc::Sender<CheckJob>>,
    results: std::sync::mpsc::Receiver<(usize, Result<()>)>,
    results_tx: Option<std::sync::mpsc::Sender<(usize, Result<()>)>>,
    queue: std::sync::Arc<std::sync::Mutex<std::sync::mpsc::Receiver<CheckJob>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BlobChecks {
    fn start(sources: &[PathBuf]) -> Self {
        let cores = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8);
        let (jobs, queue) = std::sync::mpsc::channel();
        let (results_tx, results) = std::sync::mpsc::channel();
        BlobChecks {
            sources: sources.to_vec(),
            cores,
            ranges: Vec::new(),
            queued: 0,
            passed: Vec::new(),
            jobs: Some(jobs),
            results,
            results_tx: Some(results_tx),
            queue: std::sync::Arc::new(std::sync::Mutex::new(queue)),
            stop: Default::default(),
            threads: Vec::new(),
        }
    }

    /// Queues the check of `rowids` (ascending) of source `i`; returns its jobs' numbers.
    fn submit(&mut self, i: usize, rowids: &[i64]) -> std::ops::Range<usize> {
        // A few jobs per core at least (a few hundred large blobs are as much work as
        // thousands of small ones), at most JOB_BLOBS each.
        let per_job = rowids.len().div_ceil(self.cores * 4).clamp(16, JOB_BLOBS);
        let start = self.ranges.len();
        self.queued += rowids.len() as u64;
        for chunk in rowids.chunks(per_job) {
            let k = self.ranges.len();
            self.ranges.push((chunk[0], chunk[chunk.len() - 1]));
            self.passed.push(false);
            if let Some(jobs) = &self.jobs {
                // The readers hold the other end until this is dropped.
                let _ = jobs.send((k, i, chunk.to_vec()));
            }
        }
        while self.threads.len() < self.cores.min(self.ranges.len()) {
            self.spawn();
        }
        start..self.ranges.len()
    }

    fn spawn(&mut self) {
        let (queue, stop) = (self.queue.clone(), self.stop.clone());
        let results = self.results_tx.clone().expect("checks running");
        let sources = self.sources.clone();
        self.threads.push(std::thread::spawn(move || {
            let mut checker = Checker::new();
            loop {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let next = queue.lock().map(|q| q.recv());
                let Ok(Ok((k, i, rowids))) = next else { break };
                // A panic must still answer its job, or the merge would wait for it forever.
                let r =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &mut checker {
                        Ok(c) => c.check(i, &sources[i], &rowids),
                        Err(e) => Err(anyhow::anyhow!("{e:#}")),
                    }))
                    .unwrap_or_else(|_| {
                        Err(anyhow::anyhow!(
                            "{}: checking its blobs panicked",
                            sources[i].display()
                        ))
                    });
                if results.send((k, r)).is_err() {
                    break;
                }
            }
        }));
    }

    fn range(&self, k: usize) -> (i64, i64) {
        self.ranges[k]
    }

    /// Waits until every job in `jobs` has passed; the first failure is the error.
    fn wait(&mut self, jobs: impl IntoIterator<Item = usize>) -> Result<()> {
        for k in jobs {
            while !self.passed[k] {
                let (done, checked) = self
                    .results
                    .recv()
                    .map_err(|_| anyhow::anyhow!("the blob checks stopped early"))?;
                checked?;
                self.passed[done] = true;
            }
        }
        Ok(())
    }
}

impl Drop for BlobChecks {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.jobs = None;
        self.results_tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One reader thread's state: the source it has open (kept while its jobs are of that source),
/// a decompression context and one buffer for every blob's raw bytes.
struct Checker {
    open: Option<(usize, super::connection::SerialConnection)>,
    decompressor: zstd::bulk::Decompressor<'static>,
    raw: Vec<u8>,
}

impl Checker {
    fn new() -> Result<Self> {
        Ok(Checker {
            open: None,
            decompressor: zstd::bulk::Decompressor::new().context("zstd decompressor")?,
            raw: Vec::new(),
        })
    }

    /// Checks the blobs at `rowids` (ascending) of source `i` at `src`: one scan of their rowid
    /// range, through a memory map of the file, borrowing each row's bytes.
    fn check(&mut self, i: usize, src: &Path, rowids: &[i64]) -> Result<()> {
        let (Some(&first), Some(&last)) = (rowids.first(), rowids.last()) else {
            return Ok(());
        };
        if self.open.as_ref().is_none_or(|(j, _)| *j != i) {
            self.open = None;
            let c = super::connection::SerialConnection::open_with_flags(
                src,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .with_context(|| format!("{}: cannot read", src.display()))?;
            // Pages read through a map instead of a copy into SQLite's cache each.
            let _ = c.pragma_update(None, "mmap_size", 1i64 << 32);
            self.open = Some((i, c));
        }
        let c = &self.open.as_ref().expect("opened above").1;
        let mut st = c.prepare_cached(
            "SELECT rowid, id, raw_size, data FROM blobs WHERE rowid BETWEEN ?1 AND ?2 ORDER BY rowid",
        )?;
        let mut rows = st.query([first, last])?;
        let mut want = rowids.iter().peekable();
        while let Some(r) = rows.next()? {
            let rowid: i64 = r.get(0)?;
            while want.next_if(|w| **w < rowid).is_some() {}
            if want.next_if_eq(&&rowid).is_none() {
                continue;
            }
            let id = r.get_ref(1)?.as_str()?;
            let size: i64 = r.get(2)?;
            let data = r.get_ref(3)?.as_blob()?;
            self.raw.clear();
            self.raw.reserve(size.max(0) as usize);
            let fits = self
                .decompressor
                .decompress_to_buffer(data, &mut self.raw)
                .is_ok_and(|n| n as i64 == size);
            if !fits {
                bail!(
                    "{}: blob {id} is corrupt: it does not decompress to its {size} bytes (no rows were merged)",
                    src.display()
                );
            }
            let got = hex::encode(Sha256::digest(&self.raw));
            if got != id {
                bail!(
                    "{}: blob {id} is corrupt: its bytes hash to {got} (no rows were merged)",
                    src.display()
                );
            }
        }
        Ok(())
    }
}

/// A snapshot new to the destination must hash to its id from the source's entries.
fn check_new_snapshots(conn: &rusqlite::Connection, a: &str, src: &Path) -> Result<()> {
    let ids: Vec<String> = conn
        .prepare(&format!(
            "SELECT s.id FROM {a}.snapshots s WHERE NOT EXISTS (SELECT 1 FROM main.snapshots d WHERE d.id = s.id)"
        ))?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut st = conn.prepare(&format!(
        "SELECT path, mode, blob FROM {a}.snapshot_entries WHERE snapshot = ?1 ORDER BY path"
    ))?;
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
fn merge_sources(conn: &rusqlite::Connection, a: &str) -> Result<u64> {
    let n = conn.execute(
        &format!("INSERT INTO main.sources (name, origin, revision, snapshot, ingested_at, skipped)
         SELECT s.name, s.origin, s.revision, s.snapshot, s.ingested_at, s.skipped FROM {a}.sources s
         WHERE NOT EXISTS (SELECT 1 FROM main.sources d WHERE d.name = s.name AND d.origin = s.origin
                           AND d.revision IS s.revision AND d.snapshot = s.snapshot)
         ORDER BY s.id"),
        [],
    )?;
    Ok(n as u64)
}

fn copy_rows(conn: &rusqlite::Connection, a: &str, t: &Table) -> Result<u64> {
    let sql = if t.name == "rollouts" {
        // Like `put_rollout`: a finished rollout replaces one the teacher failed.
        format!(
            "INSERT INTO main.rollouts SELECT * FROM {a}.rollouts WHERE true
         ON CONFLICT(id) DO UPDATE SET outcome = excluded.outcome, reason = excluded.reason,
           steps = excluded.steps, trajectory = excluded.trajectory, patch = excluded.patch,
           created_at = excluded.created_at
         WHERE rollouts.outcome = 'teacher-error' AND excluded.outcome <> 'teacher-error'"
        )
    } else {
        format!(
            "INSERT INTO main.{0} SELECT * FROM {a}.{0} WHERE true ON CONFLICT DO NOTHING",
            t.name
        )
    };
    Ok(conn.execute(&sql, [])? as u64)
}
