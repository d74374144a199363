//! `sera-host decontaminate`: what in a corpus overlaps a set of instances, before (or
//! without) a run: the indexed functions their patches touch, and the stored rollouts and
//! imported trajectories that were made from them or share an n-gram with them.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::decontam::Index;
use crate::corpus::Corpus;
use crate::trajectory::Trajectory;

#[derive(Debug, Default, Serialize)]
pub struct ScanReport {
    pub instances: usize,
    pub functions_checked: usize,
    pub rollouts_checked: usize,
    pub imports_checked: usize,
    /// Per instance: what overlaps it.
    pub by_instance: BTreeMap<String, Overlaps>,
}

#[derive(Debug, Default, Serialize)]
pub struct Overlaps {
    /// `repo path::qualname` of the functions its patches touch.
    pub functions: Vec<String>,
    /// Rollout ids, with why.
    pub rollouts: Vec<(String, String)>,
    /// Import ids (and their source and place), with why.
    pub imports: Vec<(String, String)>,
}

pub fn scan(corpus: &Corpus, index: &Index) -> Result<ScanReport> {
    let mut report = ScanReport {
        instances: index.instances(),
        ..ScanReport::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    for src in corpus.sources()? {
        if !seen.insert((src.name.clone(), src.snapshot.clone())) {
            continue;
        }
        for f in corpus.functions(&src.snapshot)? {
            report.functions_checked += 1;
            let r = super::facts::FunctionRef {
                path: f.path.clone(),
                qualname: f.qualname.clone(),
                start_line: f.start_line,
                end_line: f.end_line,
            };
            for h in index.function_hits(&src.name, &r) {
                report
                    .by_instance
                    .entry(h.instance)
                    .or_default()
                    .functions
                    .push(format!("{} {}::{}", src.name, f.path, f.qualname));
            }
        }
    }
    for [id, trajectory, patch] in corpus.rollout_blobs()? {
        report.rollouts_checked += 1;
        let t: Trajectory = match serde_json::from_slice(&corpus.blob(&trajectory)?) {
            Ok(t) => t,
            Err(_) => continue,
        };
        let patch = String::from_utf8_lossy(&corpus.blob(&patch)?).into_owned();
        for h in index.row_hits(None, None, &t.messages, &patch) {
            report
                .by_instance
                .entry(h.instance)
                .or_default()
                .rollouts
                .push((id.clone(), h.why));
        }
    }
    for e in corpus.import_entries()? {
        report.imports_checked += 1;
        let t: Trajectory = match serde_json::from_slice(&corpus.blob(&e.trajectory)?) {
            Ok(t) => t,
            Err(_) => continue,
        };
        let patch = match &e.patch {
            Some(p) => String::from_utf8_lossy(&corpus.blob(p)?).into_owned(),
            None => String::new(),
        };
        for h in index.row_hits(None, e.instance_id.as_deref(), &t.messages, &patch) {
            report
                .by_instance
                .entry(h.instance)
                .or_default()
                .imports
                .push((format!("{} ({} {})", e.id, e.source, e.locator), h.why));
        }
    }
    Ok(report)
}

impl ScanReport {
    pub fn render(&self) -> String {
        let mut s = format!(
            "checked {} functions, {} rollouts and {} imported trajectories against {} instances\n",
            self.functions_checked, self.rollouts_checked, self.imports_checked, self.instances
        );
        if self.by_instance.is_empty() {
            s.push_str("no overlap found\n");
            return s;
        }
        for (i, o) in &self.by_instance {
            s.push_str(&format!(
                "{i}: {} functions, {} rollouts, {} imports\n",
                o.functions.len(),
                o.rollouts.len(),
                o.imports.len()
            ));
            for f in &o.functions {
                s.push_str(&format!("  function {f}\n"));
            }
            for (r, why) in &o.rollouts {
                s.push_str(&format!("  rollout {r} ({why})\n"));
            }
            for (r, why) in &o.imports {
                s.push_str(&format!("  import {r} ({why})\n"));
            }
        }
        s
    }
}
