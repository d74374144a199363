//! `sera-host status PIPELINE.toml`: items done per stage per worker, what stopped early, and
//! when the rest will be done, read from the workers' corpora (or the merged one) while they
//! run: SQLite's WAL lets this read while a worker writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::Worker;
use crate::corpus::{now_ms, Corpus, ItemProgress};

#[derive(Debug, Default, Serialize)]
pub struct StageCounts {
    pub items: u64,
    pub rollout1: u64,
    pub pr: u64,
    pub rollout2: u64,
    pub verified: u64,
    pub done: u64,
    pub stopped: u64,
}

#[derive(Debug, Serialize)]
pub struct WorkerStatus {
    /// `I/N`, `merged`, or `0/1` for a run on one machine.
    pub worker: String,
    pub db: PathBuf,
    /// False when the corpus file is not there yet (the worker has not started).
    pub started: bool,
    pub counts: StageCounts,
    /// Finished items per minute since the worker selected its items.
    pub items_per_minute: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub stopped: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub pipeline_sha256: String,
    pub workers: Vec<WorkerStatus>,
    pub total: StageCounts,
    /// When the slowest started worker will be done, at its pace so far.
    pub eta_seconds: Option<f64>,
    pub stopped: BTreeMap<String, u64>,
}

fn tally(records: &[ItemProgress], into: &mut StageCounts, stopped: &mut BTreeMap<String, u64>) {
    for p in records {
        into.items += 1;
        into.rollout1 += u64::from(p.rollout1_at.is_some());
        into.pr += u64::from(p.pr_at.is_some());
        into.rollout2 += u64::from(p.rollout2_at.is_some());
        into.verified += u64::from(p.verified_at.is_some());
        into.done += u64::from(p.done_at.is_some());
        if let (Some(why), Some(_)) = (&p.stopped, p.done_at) {
            into.stopped += 1;
            let kind = why.split(':').next().unwrap_or(why).to_string();
            *stopped.entry(kind).or_default() += 1;
        }
    }
}

/// The corpora to read: the N workers' when `workers` is given; else every
/// `DB.worker-I-of-N.EXT` beside the pipeline's db, and the db itself when it exists.
pub fn corpora(db: &Path, workers: Option<u32>) -> Result<Vec<(String, PathBuf)>> {
    if let Some(n) = workers {
        return Ok((0..n)
            .map(|i| {
                let w = Worker { index: i, count: n };
                (w.label(), w.db_path(db))
            })
            .collect());
    }
    let mut found = Vec::new();
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(w) = parse_worker_name(db, &name) {
                found.push((w, e.path()));
            }
        }
    }
    found.sort_by_key(|(w, _)| (w.count, w.index));
    let mut out: Vec<(String, PathBuf)> = found.into_iter().map(|(w, p)| (w.label(), p)).collect();
    if db.exists() {
        out.push(("merged".into(), db.to_path_buf()));
    }
    Ok(out)
}

/// `Worker` of a file name `STEM.worker-I-of-N.EXT` made from `db`'s name.
fn parse_worker_name(db: &Path, name: &str) -> Option<Worker> {
    let probe = Worker { index: 0, count: 1 }.db_path(db);
    let probe = probe.file_name()?.to_string_lossy().to_string();
    let (prefix, suffix) = probe.split_once("worker-0-of-1")?;
    let middle = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    let (i, n) = middle.strip_prefix("worker-")?.split_once("-of-")?;
    let w = Worker::parse(&format!("{i}/{n}")).ok()?;
    Some(w)
}

pub fn status(pipeline_sha256: &str, corpora: &[(String, PathBuf)]) -> Result<Status> {
    let now = now_ms();
    let mut out = Status {
        pipeline_sha256: pipeline_sha256.to_string(),
        workers: Vec::new(),
        total: StageCounts::default(),
        eta_seconds: None,
        stopped: BTreeMap::new(),
    };
    let merged_only = corpora.iter().all(|(w, _)| w == "merged");
    for (label, path) in corpora {
        let mut ws = WorkerStatus {
            worker: label.clone(),
            db: path.clone(),
            started: path.exists(),
            counts: StageCounts::default(),
            items_per_minute: None,
            eta_seconds: None,
            stopped: BTreeMap::new(),
        };
        if ws.started {
            let records = Corpus::open_existing(path)?.item_progress(pipeline_sha256)?;
            tally(&records, &mut ws.counts, &mut ws.stopped);
            let start = records.iter().map(|p| p.selected_at).min();
            let last = records.iter().filter_map(|p| p.done_at).max();
            if let (Some(start), Some(last)) = (start, last) {
                let busy = (last - start).max(1) as f64 / 60_000.0;
                let rate = ws.counts.done as f64 / busy;
                ws.items_per_minute = Some(rate);
                let left = ws.counts.items - ws.counts.done;
                ws.eta_seconds = Some(if left == 0 {
                    0.0
                } else {
                    // From the last finished item on, at the pace so far.
                    let since = (now - last).max(0) as f64 / 1000.0;
                    (left as f64 / rate * 60.0 - since).max(0.0)
                });
            }
        }
        // The merged corpus repeats the workers' records: counted alone only.
        if label != "merged" || merged_only {
            for (k, n) in &ws.stopped {
                *out.stopped.entry(k.clone()).or_default() += n;
            }
            let t = &mut out.total;
            t.items += ws.counts.items;
            t.rollout1 += ws.counts.rollout1;
            t.pr += ws.counts.pr;
            t.rollout2 += ws.counts.rollout2;
            t.verified += ws.counts.verified;
            t.done += ws.counts.done;
            t.stopped += ws.counts.stopped;
            if let Some(e) = ws.eta_seconds {
                out.eta_seconds = Some(out.eta_seconds.map_or(e, |x: f64| x.max(e)));
            }
        }
        out.workers.push(ws);
    }
    Ok(out)
}

fn duration(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        0 => "done".into(),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

impl Status {
    pub fn render(&self) -> String {
        let mut s = format!(
            "pipeline {}\n{:<8} {:>7} {:>9} {:>6} {:>9} {:>9} {:>7} {:>8} {:>10} {:>9}\n",
            &self.pipeline_sha256[..16],
            "worker",
            "items",
            "rollout1",
            "pr",
            "rollout2",
            "verified",
            "done",
            "stopped",
            "items/min",
            "eta"
        );
        let line = |name: &str, c: &StageCounts, rate: Option<f64>, eta: Option<f64>| {
            format!(
                "{:<8} {:>7} {:>9} {:>6} {:>9} {:>9} {:>7} {:>8} {:>10} {:>9}\n",
                name,
                c.items,
                c.rollout1,
                c.pr,
                c.rollout2,
                c.verified,
                c.done,
                c.stopped,
                rate.map_or("-".into(), |r| format!("{r:.1}")),
                eta.map_or("-".into(), duration)
            )
        };
        for w in &self.workers {
            if w.started {
                s.push_str(&line(
                    &w.worker,
                    &w.counts,
                    w.items_per_minute,
                    w.eta_seconds,
                ));
            } else {
                s.push_str(&format!(
                    "{:<8} not started: no {}\n",
                    w.worker,
                    w.db.display()
                ));
            }
        }
        s.push_str(&line("all", &self.total, None, self.eta_seconds));
        for (k, n) in &self.stopped {
            s.push_str(&format!("stopped early: {k}: {n}\n"));
        }
        if self.workers.iter().any(|w| !w.started) {
            s.push_str(
                "(workers not started have no items counted yet; the eta is of the started ones)\n",
            );
        }
        s
    }
}
