//! `sera-host import`: existing trajectories from other tools into the corpus, normalised into
//! the one trajectory model, each with the file and place it came from.

pub mod mini_swe_agent;
pub mod openai_jsonl;
pub mod sera_rows;
pub mod swe_agent;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::corpus::Corpus;
use crate::rollout::trajectory::Trajectory;

/// The tool that text-action agents (SWE-agent 0.x, mini-swe-agent) use implicitly: their
/// action lines become calls to it, and rows need its spec so chat templates can render them.
pub fn bash_tool_spec() -> serde_json::Value {
    serde_json::json!({
        "type": "function",
        "function": {
            "name": "bash",
            "description": "Run a command line in the agent's shell (the action of a text-based agent turn).",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string", "description": "The command line to run."}},
                "required": ["command"]
            }
        }
    })
}

/// The specs a trajectory's tools get when its source lists none: `bash` as above, and for
/// any other function it calls, a spec inferred from its calls (the argument names seen, each
/// typed by its JSON value), in name order.
pub(crate) fn implicit_tools(
    messages: &[crate::rollout::trajectory::Message],
) -> Vec<serde_json::Value> {
    use serde_json::{json, Map, Value};
    let mut seen: std::collections::BTreeMap<&str, Map<String, Value>> = Default::default();
    for c in messages.iter().flat_map(|m| &m.tool_calls) {
        let props = seen.entry(c.function.name.as_str()).or_default();
        if let Ok(Value::Object(args)) = serde_json::from_str::<Value>(&c.function.arguments) {
            for (k, v) in args {
                let ty = match v {
                    Value::String(_) => "string",
                    Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                    Value::Number(_) => "number",
                    Value::Bool(_) => "boolean",
                    Value::Array(_) => "array",
                    Value::Object(_) => "object",
                    Value::Null => continue,
                };
                props.entry(k).or_insert_with(|| json!({ "type": ty }));
            }
        }
    }
    seen.into_iter()
        .map(|(name, props)| {
            if name == "bash" && props.keys().all(|k| k == "command") {
                return bash_tool_spec();
            }
            json!({
                "type": "function",
                "function": {
                    "name": name,
                    "description": "(inferred from the calls in this trajectory; the source lists no tool specs)",
                    "parameters": {"type": "object", "properties": props}
                }
            })
        })
        .collect()
}

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

/// Imports one file in one transaction: every item or none. JSONL files are read line by
/// line (after a first pass that hashes them), so memory does not grow with the file.
fn import_file(corpus: &Corpus, format: Format, path: &Path) -> Result<(usize, usize)> {
    let shown = path.display().to_string();
    let cannot_read = || format!("{shown}: cannot read");
    let whole = |parse: fn(&Path, &[u8]) -> Result<Imported>| -> Result<(usize, usize)> {
        let bytes = std::fs::read(path).with_context(cannot_read)?;
        let item = parse(path, &bytes)?;
        let mut w = corpus.import_writer(&hex::encode(Sha256::digest(&bytes)))?;
        w.push(&item)?;
        w.commit()
    };
    let parse_line: fn(&str, usize, &[u8]) -> Result<Imported> = match format {
        Format::SweAgent => return whole(swe_agent::parse),
        Format::MiniSweAgent => return whole(mini_swe_agent::parse),
        Format::OpenAiJsonl => openai_jsonl::parse_line,
        Format::Sera => sera_rows::parse_line,
    };
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path).with_context(cannot_read)?;
    std::io::copy(&mut file, &mut hasher).with_context(cannot_read)?;
    let mut w = corpus.import_writer(&hex::encode(hasher.finalize()))?;
    let file = std::fs::File::open(path).with_context(cannot_read)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .with_context(cannot_read)?
            == 0
        {
            break;
        }
        n += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        w.push(&parse_line(&shown, n, &line)?)?;
    }
    w.commit()
}

/// `paths` with each directory replaced by the files under it that `wanted` accepts (sorted,
/// no ignore files honoured: a dataset directory is read whole).
pub fn files_under(paths: &[PathBuf], wanted: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = ignore::WalkBuilder::new(p)
                .standard_filters(false)
                .build()
                .filter_map(|e| e.ok())
                .map(|e| e.into_path())
                .filter(|f| f.is_file() && wanted(f))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    files
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
    let files = files_under(paths, |f| f.to_string_lossy().ends_with(ext));
    let mut report = ImportReport::default();
    for f in files {
        report.files += 1;
        match import_file(corpus, format, &f) {
            Ok((new, old)) => {
                report.imported += new;
                report.existing += old;
            }
            Err(e) if keep_going => report.skipped.push(format!("{e:#}")),
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}
