//! `sera-host import`: existing trajectories from other tools into the corpus, normalised into
//! the one trajectory model, each with the file and place it came from.

pub mod mini_swe_agent;
pub mod openai_jsonl;
pub mod sera_rows;
pub mod swe_agent;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::corpus::Corpus;
use crate::rollout::trajectory::Trajectory;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    SweAgent,
    OpenAiJsonl,
    Sera,
    MiniSweAgent,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        Ok(match s {
            "swe-agent" => Format::SweAgent,
            "openai-jsonl" => Format::OpenAiJsonl,
            "sera" => Format::Sera,
            "mini-swe-agent" => Format::MiniSweAgent,
            other => bail!(
                "unknown format {other:?} (known: swe-agent, mini-swe-agent, sera, openai-jsonl)"
            ),
        })
    }
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub files: usize,
    pub imported: usize,
    /// Already in the corpus (same source bytes and place).
    pub existing: usize,
    /// Files skipped with `--keep-going`, with why.
    pub skipped: Vec<String>,
}

/// Parses one file; every item or none.
pub fn parse_file(format: Format, path: &Path) -> Result<(Vec<u8>, Vec<Imported>)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let items = match format {
        Format::SweAgent => vec![swe_agent::parse(path, &bytes)?],
        Format::OpenAiJsonl => openai_jsonl::parse(path, &bytes)?,
        Format::Sera => sera_rows::parse(path, &bytes)?,
        Format::MiniSweAgent => vec![mini_swe_agent::parse(path, &bytes)?],
    };
    Ok((bytes, items))
}

/// Imports `paths` (files, or directories searched for `*.traj` / `*.jsonl`). A bad file stops
/// the import unless `keep_going`; a file is stored in one transaction, so nothing of a bad or
/// interrupted file is left behind.
pub fn import_paths(
    corpus: &Corpus,
    format: Format,
    paths: &[PathBuf],
    keep_going: bool,
) -> Result<ImportReport> {
    let ext = match format {
        Format::SweAgent => ".traj",
        Format::OpenAiJsonl | Format::Sera => ".jsonl",
        Format::MiniSweAgent => ".traj.json",
    };
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = ignore::WalkBuilder::new(p)
                .standard_filters(false)
                .build()
                .filter_map(|e| e.ok())
                .map(|e| e.into_path())
                .filter(|f| f.is_file() && f.to_string_lossy().ends_with(ext))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let mut report = ImportReport::default();
    for f in files {
        report.files += 1;
        match parse_file(format, &f) {
            Ok((bytes, items)) => {
                let (new, old) = corpus.put_imports(&bytes, &items)?;
                report.imported += new;
                report.existing += old;
            }
            Err(e) if keep_going => report.skipped.push(format!("{e:#}")),
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}
