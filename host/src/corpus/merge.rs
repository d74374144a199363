//! `sera-host corpus merge`: worker corpora into one. Everything in a corpus is keyed by what
//! it is a function of, so a merge is a set union: idempotent, the same in any order, and
//! free of conflicts unless two files hold different content under one key, which is an error
//! naming both files and the key.
//!
//! Crash safety: a source's new blobs are copied first, in committed batches, each blob's
//! bytes re-hashed against its id; then every other table of that source in one transaction.
//! A merge killed midway leaves the destination valid (at most blobs nothing refers to yet,
//! which `corpus verify` accepts) and a rerun copies what is left.

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
    pub seconds: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct MergeReport {
    pub db: PathBuf,
    pub sources: Vec<SourceMerged>,
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
            "merged {} corpora into {}\n",
            self.sources.len(),
            self.db.display()
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
    };
    for src in sources {
        if std::fs::canonicalize(src).ok().as_deref() == Some(dst_real.as_path()) {
            bail!(
                "corpus merge: {} is the destination itself (--db {})",
                src.display(),
                db.display()
            );
        }
        // Opening checks that it is a corpus and brings an older schema up to date.
        drop(Corpus::open_existing(src)?);
        let started = Instant::now();
        let mut m = merge_one(dst, src, db)
            .with_context(|| format!("corpus merge: {} into {}", src.display(), db.display()))?;
        m.seconds = started.elapsed().as_secs_f64();
        report.sources.push(m);
    }
    Ok(report)
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

fn merge_one(dst: &Corpus, src: &Path, db: &Path) -> Result<SourceMerged> {
    let conn = dst.conn();
    conn.execute(
        "ATTACH DATABASE ?1 AS src",
        [src.to_str().context("a corpus path that is not UTF-8")?],
    )?;
    let result = (|| -> Result<SourceMerged> {
        let mut m = SourceMerged {
            path: src.to_path_buf(),
            ..SourceMerged::default()
        };
        // Before copying anything: disagreements fail the source as a whole.
        for t in TABLES {
            check_conflicts(conn, t, src, db)?;
        }
        copy_blobs(dst, src, &mut m)?;
        let tx = conn.unchecked_transaction()?;
        check_new_snapshots(dst, src)?;
        for t in TABLES {
            let n = copy_rows(conn, t)?;
            m.rows.insert(t.name.into(), n);
        }
        let n = merge_sources(conn)?;
        m.rows.insert("sources".into(), n);
        tx.commit()?;
        Ok(m)
    })();
    let detach = conn.execute("DETACH DATABASE src", []);
    let m = result?;
    detach?;
    Ok(m)
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

/// Copies the blobs the destination lacks, each re-hashed: its bytes must decompress to its
/// declared size and hash to its id. A thread reads and checks them (its own connection to
/// the source) while this one writes, so the hashing overlaps SQLite's writes and syncs.
fn copy_blobs(dst: &Corpus, src: &Path, m: &mut SourceMerged) -> Result<()> {
    let conn = dst.conn();
    let total: i64 = conn.query_row("SELECT count(*) FROM src.blobs", [], |r| r.get(0))?;
    let wanted: Vec<i64> = conn
        .prepare(
            "SELECT s.rowid FROM src.blobs s
             WHERE NOT EXISTS (SELECT 1 FROM main.blobs d WHERE d.id = s.id) ORDER BY s.rowid",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(String, i64, Vec<u8>)>>(256);
    // Decompressing and hashing is most of a merge's CPU: every core takes a share.
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let chunk = wanted.len().div_ceil(threads).max(1);
    let readers: Vec<_> = wanted
        .chunks(chunk)
        .map(|part| {
            let part = part.to_vec();
            let tx = tx.clone();
            let src_path = src.to_path_buf();
            std::thread::spawn(move || read_and_check(&src_path, &part, &tx))
        })
        .collect();
    drop(tx);
    let mut batch_bytes = 0usize;
    let mut result = Ok(());
    let mut tx_open = Some(conn.unchecked_transaction()?);
    for item in rx.iter() {
        let (id, size, data) = match item {
            Ok(x) => x,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        let mut ins = conn.prepare_cached(
            "INSERT OR IGNORE INTO main.blobs (id, raw_size, data) VALUES (?1, ?2, ?3)",
        )?;
        ins.execute(params![id, size, data])?;
        m.blobs_copied += 1;
        m.bytes_copied += data.len() as u64;
        batch_bytes += data.len();
        if batch_bytes >= BLOB_BATCH_BYTES {
            if let Some(t) = tx_open.take() {
                t.commit()?;
            }
            tx_open = Some(conn.unchecked_transaction()?);
            batch_bytes = 0;
        }
    }
    drop(rx);
    for r in readers {
        r.join()
            .map_err(|_| anyhow::anyhow!("a blob reader thread panicked"))?;
    }
    // What was checked before a corrupt blob is committed too: blobs alone are always valid.
    if let Some(t) = tx_open.take() {
        t.commit()?;
    }
    result?;
    m.blobs_present = (total as u64).saturating_sub(m.blobs_copied);
    Ok(())
}

/// Reads the blobs at `rowids` of `src`, checks each, and sends it on (or the first error).
fn read_and_check(
    src: &Path,
    rowids: &[i64],
    tx: &std::sync::mpsc::SyncSender<Result<(String, i64, Vec<u8>)>>,
) {
    let run = || -> Result<()> {
        let c = rusqlite::Connection::open_with_flags(
            src,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("{}: cannot read", src.display()))?;
        let mut st = c.prepare("SELECT id, raw_size, data FROM blobs WHERE rowid = ?1")?;
        let mut decompressor = zstd::bulk::Decompressor::new().context("zstd decompressor")?;
        for &rowid in rowids {
            let (id, size, data): (String, i64, Vec<u8>) =
                st.query_row([rowid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            let raw = decompressor
                .decompress(&data, size.max(0) as usize)
                .ok()
                .filter(|raw| raw.len() as i64 == size);
            let Some(raw) = raw else {
                bail!(
                    "{}: blob {id} is corrupt: it does not decompress to its {size} bytes (nothing of this file's rows was merged)",
                    src.display()
                );
            };
            let got = hex::encode(Sha256::digest(&raw));
            if got != id {
                bail!(
                    "{}: blob {id} is corrupt: its bytes hash to {got} (nothing of this file's rows was merged)",
                    src.display()
                );
            }
            if tx.send(Ok((id, size, data))).is_err() {
                break;
            }
        }
        Ok(())
    };
    if let Err(e) = run() {
        let _ = tx.send(Err(e));
    }
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
