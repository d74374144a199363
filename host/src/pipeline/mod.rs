//! `sera-host run pipeline.toml`: the SVG pipeline. Select functions, rollout 1, PR synthesis,
//! rollout 2, verification, filters, truncation, shards; each item's outputs stored in the
//! corpus keyed by their inputs, so a stopped run resumes and a replayed run is identical.

pub mod audit;
pub mod config;
pub mod progress;
pub mod rows;
pub mod run;
pub mod shards;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::corpus::{ingest, Corpus, IngestOptions, Source};
use crate::teacher::canonical_json;
use config::{Pipeline, Resolved};
use run::{sha256_hex, ItemResult, Mode, Stages};
use shards::ShardInfo;

pub const MANIFEST_FORMAT: &str = "sera-host-shards/1";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SnapshotRef {
    pub repo: String,
    pub snapshot: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PluginRef {
    pub source: String,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub tool_versions: BTreeMap<String, String>,
    pub pipeline_sha256: String,
    pub pipeline: Resolved,
    pub plugins: BTreeMap<String, PluginRef>,
    /// `qwen-bpe`/`json` with the sha256 over its files, or `estimate`.
    pub tokenizer: BTreeMap<String, String>,
    pub snapshots: Vec<SnapshotRef>,
    /// The recorded exchanges behind the rows: how many, and sha256 over
    /// "request sample response-sha256" lines in sorted order.
    pub exchanges: BTreeMap<String, Value>,
    pub rows: usize,
    pub shards: Vec<ShardInfo>,
    pub merkle_root: String,
}

/// What a run did, for the closing summary.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub items: usize,
    pub rollout1_submitted: usize,
    pub prs: usize,
    pub rollout2_submitted: usize,
    pub scored: usize,
    pub verified: usize,
    /// r in tenths: [0, 0.1), ..., [0.9, 1.0), and exactly 1.0 last.
    pub r_histogram: [usize; 11],
    pub stopped: BTreeMap<String, usize>,
    pub dropped: BTreeMap<String, usize>,
    pub rows_t1: usize,
    pub rows_t2: usize,
    pub tokens: u64,
    pub teacher_seconds: f64,
    pub tokenizer: String,
    pub shards: usize,
    pub merkle_root: String,
    pub manifest: PathBuf,
}

fn tool_versions() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("sera-host".into(), env!("CARGO_PKG_VERSION").into()),
        ("wasmtime".into(), "48.0.8".into()),
        (
            "zstd".into(),
            format!(
                "{} (level {})",
                zstd::zstd_safe::version_string(),
                shards::ZSTD_LEVEL
            ),
        ),
    ])
}

/// `python-stdlib:NAME`: a package or module of the machine's own Python, found by asking
/// `python3` where it is.
fn python_stdlib(name: &str) -> Result<PathBuf> {
    let code = format!(
        "import {name}, os; f = {name}.__file__; print(os.path.dirname(f) if f.endswith('__init__.py') else f)"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &code])
        .output()
        .context("python-stdlib: cannot run python3")?;
    anyhow::ensure!(
        out.status.success(),
        "python-stdlib:{name}: python3 cannot import it: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// Ingests the pipeline's sources (a no-op for trees already stored).
pub fn ingest_sources(corpus: &Corpus, cfg: &Resolved) -> Result<Vec<SnapshotRef>> {
    let mut out = Vec::new();
    for spec in &cfg.sources {
        let (source, name) = match spec.strip_prefix("python-stdlib:") {
            Some(name) => (Source::Dir(python_stdlib(name)?), Some(spec.clone())),
            None => (Source::parse(spec)?, None),
        };
        let opts = IngestOptions {
            name,
            exclude: cfg.exclude.clone(),
            ..IngestOptions::default()
        };
        let report = ingest(corpus, &source, &opts).with_context(|| format!("source {spec}"))?;
        out.push(SnapshotRef {
            repo: report.name,
            snapshot: report.snapshot,
        });
    }
    Ok(out)
}

/// Runs the stages over every item, `concurrency` at a time.
async fn process_all(stages: &Arc<Stages>, items: Vec<run::Item>) -> Result<Vec<ItemResult>> {
    let limit = Arc::new(tokio::sync::Semaphore::new(stages.cfg.teacher.concurrency));
    let mut handles = Vec::new();
    for item in items {
        let (stages, limit) = (stages.clone(), limit.clone());
        handles.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore");
            let key = item.key.clone();
            stages
                .process(item)
                .await
                .with_context(|| format!("item {key}"))
        }));
    }
    let mut results = Vec::new();
    let mut first_err = None;
    for h in handles {
        match h.await.context("item task")? {
            Ok(r) => results.push(r),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(results),
    }
}

fn exchanges_digest(corpus: &Corpus, results: &[ItemResult]) -> Result<BTreeMap<String, Value>> {
    let mut all = BTreeSet::new();
    for r in results {
        for t in [&r.t1, &r.t2].into_iter().flatten() {
            for s in &t.trajectory.steps {
                all.insert((s.request_sha256.clone(), s.sample));
            }
        }
        all.extend(r.stage_exchanges.iter().cloned());
    }
    let mut lines = String::new();
    for (req, sample) in &all {
        let ex = corpus
            .exchange(req, *sample)?
            .with_context(|| format!("exchange {req}#{sample} is not recorded"))?;
        lines.push_str(&format!("{req} {sample} {}\n", sha256_hex(&ex.response)));
    }
    Ok(BTreeMap::from([
        ("count".into(), json!(all.len())),
        ("sha256".into(), json!(sha256_hex(lines.as_bytes()))),
    ]))
}

/// Everything a run produces, before it is written anywhere.
pub struct Built {
    pub manifest: Manifest,
    pub rows: Vec<Vec<u8>>,
    pub provenance: Vec<(String, Vec<u8>)>,
    pub summary: Summary,
}

/// Runs every stage for `snapshots` and builds the rows and the manifest (shard hashes are
/// filled in when the shards are written).
pub async fn build(
    cfg: Resolved,
    corpus: Arc<Mutex<Corpus>>,
    snapshots: Vec<SnapshotRef>,
    mode: Mode,
    progress: bool,
) -> Result<Built> {
    let stages = Arc::new(Stages::new(cfg.clone(), corpus.clone(), mode, progress)?);
    let pairs: Vec<(String, String)> = snapshots
        .iter()
        .map(|s| (s.repo.clone(), s.snapshot.clone()))
        .collect();
    let items = run::select(&corpus.lock().expect("corpus lock"), &pairs, &cfg)?;
    stages.progress.set_items(items.len() as u64);
    let results = process_all(&stages, items).await?;
    let mut summary = Summary {
        items: results.len(),
        tokenizer: stages.tokens.description.clone(),
        ..Summary::default()
    };
    let mut candidates = Vec::new();
    let mut owners = Vec::new();
    for (i, r) in results.iter().enumerate() {
        for t in [&r.t1, &r.t2].into_iter().flatten() {
            for s in &t.trajectory.steps {
                summary.tokens += s.usage.total_tokens;
                summary.teacher_seconds += s.latency_ms as f64 / 1000.0;
            }
        }
        if r.t1.as_ref().is_some_and(|t| t.outcome == "submitted") {
            summary.rollout1_submitted += 1;
        }
        summary.prs += usize::from(r.pr.is_some());
        if r.t2.as_ref().is_some_and(|t| t.outcome == "submitted") {
            summary.rollout2_submitted += 1;
        }
        if let Some(score) = r.r {
            summary.scored += 1;
            summary.verified += usize::from(score >= cfg.verify.threshold);
            let bucket = if score >= 1.0 {
                10
            } else {
                (score * 10.0).floor() as usize
            };
            summary.r_histogram[bucket.min(10)] += 1;
        }
        if let Some(why) = &r.stopped {
            let kind = why.split(':').next().unwrap_or(why).to_string();
            *summary.stopped.entry(kind).or_default() += 1;
        }
        for stage in ["T1", "T2"] {
            if let Some(c) = stages.candidate(r, stage) {
                if let Some(why) = &c.decision.dropped {
                    let kind = why.split(':').next().unwrap_or(why).to_string();
                    *summary
                        .dropped
                        .entry(format!("{stage} {kind}"))
                        .or_default() += 1;
                }
                candidates.push(c);
                owners.push(i);
            }
        }
        stages.progress.post.inc(1);
    }
    stages.progress.finish();
    let chosen = stages.mix(&candidates);
    let plugins: BTreeMap<String, PluginRef> = stages
        .plugin_hashes
        .iter()
        .map(|(k, (source, sha256))| {
            (
                k.clone(),
                PluginRef {
                    source: source.clone(),
                    sha256: sha256.clone(),
                },
            )
        })
        .collect();
    let plugins_json = serde_json::to_value(&plugins)?;
    let mut rows = Vec::new();
    let mut provenance = Vec::new();
    for &i in &chosen {
        let c = &candidates[i];
        rows.push(serde_json::to_vec(&c.row)?);
        let p = rows::provenance(&results[owners[i]], c, &plugins_json);
        provenance.push((
            c.row.metadata.row_id.clone(),
            serde_json::to_vec_pretty(&p)?,
        ));
        if c.row.metadata.stage == "T1" {
            summary.rows_t1 += 1;
        } else {
            summary.rows_t2 += 1;
        }
    }
    let exchanges = exchanges_digest(&corpus.lock().expect("corpus lock"), &results)?;
    let tokenizer = BTreeMap::from([
        ("kind".to_string(), cfg.truncation.tokenizer.kind.clone()),
        ("sha256".to_string(), stages.tokens.fingerprint.clone()),
    ]);
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        tool_versions: tool_versions(),
        pipeline_sha256: sha256_hex(canonical_json(&serde_json::to_value(&cfg)?).as_bytes()),
        pipeline: cfg,
        plugins,
        tokenizer,
        snapshots,
        exchanges,
        rows: rows.len(),
        shards: Vec::new(),
        merkle_root: String::new(),
    };
    Ok(Built {
        manifest,
        rows,
        provenance,
        summary,
    })
}

pub fn manifest_bytes(m: &Manifest) -> Result<Vec<u8>> {
    let mut b = serde_json::to_vec_pretty(m)?;
    b.push(b'\n');
    Ok(b)
}

/// `sera-host run`: ingest, run every stage, write the shards and the manifest.
pub async fn execute(p: &Pipeline, mode: Mode, progress: bool) -> Result<Summary> {
    let corpus = Corpus::open(&p.db)?;
    let snapshots = ingest_sources(&corpus, &p.resolved)?;
    let corpus = Arc::new(Mutex::new(corpus));
    let mut built = build(
        p.resolved.clone(),
        corpus.clone(),
        snapshots,
        mode,
        progress,
    )
    .await?;
    let shards = shards::write_shards(&p.out, &built.rows, p.resolved.rows_per_shard)?;
    built.manifest.merkle_root = shards::merkle_root_hex(&shards)?;
    built.manifest.shards = shards;
    corpus
        .lock()
        .expect("corpus lock")
        .put_row_provenance(&built.provenance)?;
    let path = p.out.join("manifest.json");
    let tmp = p.out.join(".manifest.json.tmp");
    std::fs::write(&tmp, manifest_bytes(&built.manifest)?)
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("{}: cannot write", path.display()))?;
    let mut summary = built.summary;
    summary.shards = built.manifest.shards.len();
    summary.merkle_root = built.manifest.merkle_root.clone();
    summary.manifest = path;
    Ok(summary)
}

impl Summary {
    pub fn render(&self) -> String {
        let pct = |a: usize, b: usize| {
            if b == 0 {
                0.0
            } else {
                100.0 * a as f64 / b as f64
            }
        };
        let mut s = String::new();
        s.push_str(&format!(
            "items {}: rollout 1 submitted {}, PRs {}, rollout 2 submitted {}, scored {}\n",
            self.items, self.rollout1_submitted, self.prs, self.rollout2_submitted, self.scored
        ));
        s.push_str(&format!(
            "verification: {} of {} scored pass the threshold ({:.1}%)\n",
            self.verified,
            self.scored,
            pct(self.verified, self.scored)
        ));
        s.push_str("r histogram: ");
        let labels = [
            "0.0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0",
        ];
        let parts: Vec<String> = labels
            .iter()
            .zip(self.r_histogram)
            .filter(|(_, n)| *n > 0)
            .map(|(l, n)| format!("{l}:{n}"))
            .collect();
        s.push_str(&if parts.is_empty() {
            "-".into()
        } else {
            parts.join(" ")
        });
        s.push('\n');
        for (k, n) in &self.stopped {
            s.push_str(&format!("stopped early: {k}: {n}\n"));
        }
        for (k, n) in &self.dropped {
            s.push_str(&format!("dropped: {k}: {n}\n"));
        }
        s.push_str(&format!(
            "rows: {} T2 + {} T1 in {} shards; merkle root {}\n",
            self.rows_t2, self.rows_t1, self.shards, self.merkle_root
        ));
        s.push_str(&format!(
            "teacher: {} tokens, {:.1} s of recorded latency\ntokenizer: {}\nmanifest: {}\n",
            self.tokens,
            self.teacher_seconds,
            self.tokenizer,
            self.manifest.display()
        ));
        s
    }
}

/// Reads a manifest, naming the file in errors.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("{}: cannot read the manifest", path.display()))?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a sera-host manifest", path.display()))?;
    anyhow::ensure!(
        m.format == MANIFEST_FORMAT,
        "{}: manifest format {:?}, this sera-host reads {MANIFEST_FORMAT:?}",
        path.display(),
        m.format
    );
    Ok(m)
}
