//! `sera-host run pipeline.toml`: the SVG pipeline. Select functions, rollout 1, PR synthesis,
//! rollout 2, verification, filters, truncation, shards; each item's outputs stored in the
//! corpus keyed by their inputs, so a stopped run resumes and a replayed run is identical.

/// pipeline.toml: below the pipeline, which shares it with `shards`; here for older paths.
pub use crate::config;
mod item;
mod mix;
mod pr_synthesis;
pub mod progress;
mod rollout;
pub mod rows;
pub mod run;
mod select;
mod self_check;
mod stages;
mod verify;
/// The shard files, below `run` and `shards`; here for older paths.
pub use crate::shards::files as shards;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Pipeline, Resolved};
use crate::corpus::{ingest, Corpus, IngestOptions, Source};
use crate::digest::{canonical_json, sha256_hex};
use crate::shards::histogram::{render_histogram, score_bucket};
use crate::shards::manifest::{
    plugin_name, tool_versions, write_output, Manifest, SnapshotRef, MANIFEST_FORMAT,
};
use item::ItemResult;
use sha2::Digest as _;
use stages::{Mode, Stages};

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
    /// `--worker I/N`: which worker this was (no shards are written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<PathBuf>,
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

/// sha256 over "request sample response-sha256" lines of an item's exchanges, in sorted order,
/// and how many there are.
fn item_exchanges(corpus: &Corpus, r: &ItemResult) -> Result<([u8; 32], usize)> {
    let mut all = BTreeSet::new();
    for t in [&r.t1, &r.t2].into_iter().flatten() {
        for s in &t.trajectory.steps {
            all.insert((s.request_sha256.clone(), s.sample));
        }
    }
    all.extend(r.stage_exchanges.iter().cloned());
    let mut h = sha2::Sha256::new();
    for (req, sample) in &all {
        let ex = corpus
            .exchange(req, *sample)?
            .with_context(|| format!("exchange {req}#{sample} is not recorded"))?;
        h.update(format!("{req} {sample} {}\n", sha256_hex(&ex.response)));
    }
    Ok((h.finalize().into(), all.len()))
}

/// What one finished item leaves behind: small facts, and its candidate rows.
struct ItemPost {
    key: String,
    exchanges: ([u8; 32], usize),
    candidates: Vec<(rows::RowMeta, Vec<u8>, Vec<u8>)>,
    tally: Summary,
}

impl Stages {
    /// Everything after verification for one item, done in its own task so that nothing of
    /// its trajectories outlives it: filters, truncation, the rows and their provenance.
    fn post(&self, r: &ItemResult, plugins: &Value) -> Result<ItemPost> {
        let mut t = Summary::default();
        for ro in [&r.t1, &r.t2].into_iter().flatten() {
            for s in &ro.trajectory.steps {
                t.tokens += s.usage.total_tokens;
                t.teacher_seconds += s.latency_ms as f64 / 1000.0;
            }
        }
        t.rollout1_submitted = usize::from(r.t1.as_ref().is_some_and(|x| x.outcome == "submitted"));
        t.prs = usize::from(r.pr.is_some());
        t.rollout2_submitted = usize::from(r.t2.as_ref().is_some_and(|x| x.outcome == "submitted"));
        if let Some(score) = r.r {
            t.scored = 1;
            t.verified = usize::from(score >= self.cfg.verify.threshold);
            t.r_histogram[score_bucket(score)] += 1;
        }
        if let Some(why) = &r.stopped {
            let kind = why.split(':').next().unwrap_or(why).to_string();
            *t.stopped.entry(kind).or_default() += 1;
        }
        let mut candidates = Vec::new();
        for stage in ["T1", "T2"] {
            if let Some(c) = self.candidate(r, stage) {
                if let Some(why) = &c.decision.dropped {
                    let kind = why.split(':').next().unwrap_or(why).to_string();
                    *t.dropped.entry(format!("{stage} {kind}")).or_default() += 1;
                }
                let meta = rows::RowMeta::of(&c);
                let p = rows::provenance(r, &c, plugins);
                candidates.push((
                    meta,
                    serde_json::to_vec(&c.row)?,
                    serde_json::to_vec_pretty(&p)?,
                ));
            }
        }
        let exchanges = item_exchanges(&self.corpus.lock().expect("corpus lock"), r)?;
        Ok(ItemPost {
            key: r.item.key.clone(),
            exchanges,
            candidates,
            tally: t,
        })
    }
}

impl Summary {
    fn add(&mut self, o: Summary) {
        self.items += 1;
        self.rollout1_submitted += o.rollout1_submitted;
        self.prs += o.prs;
        self.rollout2_submitted += o.rollout2_submitted;
        self.scored += o.scored;
        self.verified += o.verified;
        for (a, b) in self.r_histogram.iter_mut().zip(o.r_histogram) {
            *a += b;
        }
        for (k, n) in o.stopped {
            *self.stopped.entry(k).or_default() += n;
        }
        for (k, n) in o.dropped {
            *self.dropped.entry(k).or_default() += n;
        }
        self.tokens += o.tokens;
        self.teacher_seconds += o.teacher_seconds;
    }
}

/// Everything a run produces, before it is written anywhere. Rows wait in a spill file, so
/// memory does not grow with their size.
pub struct Built {
    pub manifest: Manifest,
    pub rows: rows::ChosenRows,
    pub summary: Summary,
    /// What the dataset card and the report are made of.
    pub docs: crate::output::DocInputs,
}

/// The pipeline in a paragraph, for the card.
fn describe_pipeline(cfg: &Resolved, snapshots: &[SnapshotRef]) -> String {
    let repos: Vec<String> = snapshots.iter().map(|s| format!("`{}`", s.repo)).collect();
    format!(
        "Made with Soft Verified Generation (SVG, as in AI2's SERA) from {} ({}): for each of up to {} selected functions per repository ({} prompt{} each), the teacher `{}` got a change request about the function and worked in a sandboxed copy of the repository through the `{}` tools{} (trajectory T1, patch P1); `{}` turned T1 and P1 into a pull-request description; a fresh rollout given only that text produced T2 and P2; `{}` scored P2 against P1 (line-level recall r, verified at r >= {}). T1 rows are the first rollouts of verified items, T2 rows the second.",
        if repos.len() == 1 { "one repository".to_string() } else { format!("{} repositories", repos.len()) },
        repos.join(", "),
        cfg.select.functions_per_repo,
        cfg.select.prompts_per_function,
        if cfg.select.prompts_per_function == 1 { "" } else { "s" },
        cfg.teacher.model,
        plugin_name(&cfg.rollout.tools),
        if cfg.rollout.exec.enabled { ", running commands in a sandbox" } else { "" },
        plugin_name(&cfg.pr_synth.plugin),
        plugin_name(&cfg.verify.plugin),
        cfg.verify.threshold,
    )
}

/// Verification, filters, truncation and the mix with their settings, for the card.
fn pipeline_settings(cfg: &Resolved) -> Vec<(String, String)> {
    let mut v = vec![(
        format!("verify: {}", plugin_name(&cfg.verify.plugin)),
        format!("threshold {} {}", cfg.verify.threshold, cfg.verify.config),
    )];
    for f in &cfg.filters {
        v.push((
            format!("filter: {}", plugin_name(&f.plugin)),
            f.config.to_string(),
        ));
    }
    v.push((
        format!("truncation: {}", plugin_name(&cfg.truncation.plugin)),
        format!(
            "budget {} tokens, min ratio {}, tokenizer {}",
            cfg.truncation.budget, cfg.truncation.min_ratio, cfg.truncation.tokenizer.kind
        ),
    ));
    for m in &cfg.mix {
        v.push((
            format!("mix: {}", m.stage),
            format!(
                "up to {} rows{}",
                m.count,
                m.min_r.map_or(String::new(), |r| format!(", r >= {r}"))
            ),
        ));
    }
    v
}

/// Runs every stage for `snapshots` and builds the rows and the manifest (shard hashes are
/// filled in when the shards are written). Items run `teacher.concurrency` at a time; each
/// one's trajectories are dropped as soon as its rows are spilled.
pub async fn build(
    cfg: Resolved,
    corpus: Arc<Mutex<Corpus>>,
    snapshots: Vec<SnapshotRef>,
    mode: Mode,
    progress: bool,
) -> Result<Built> {
    build_scoped(cfg, corpus, snapshots, mode, progress, Scope::default()).await
}

/// sha256 of a resolved pipeline's canonical JSON: the manifest's `pipeline_sha256`.
pub fn pipeline_sha256(cfg: &Resolved) -> Result<String> {
    Ok(sha256_hex(
        canonical_json(&serde_json::to_value(cfg)?).as_bytes(),
    ))
}

/// Which part of a pipeline a run does.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scope {
    /// Only the items of this worker's partition.
    pub worker: Option<crate::cluster::Worker>,
    /// `--finalize`: every item must have been finished by some worker.
    pub finalize: bool,
    /// With `finalize`: write the shards from the finished items only, with a warning.
    pub allow_incomplete: bool,
}

/// [`build`] for a part of the items: a worker's partition, or all of them with the check
/// that every one was finished before (`--finalize`).
pub async fn build_scoped(
    cfg: Resolved,
    corpus: Arc<Mutex<Corpus>>,
    snapshots: Vec<SnapshotRef>,
    mode: Mode,
    progress: bool,
    scope: Scope,
) -> Result<Built> {
    let pipeline_sha256 = pipeline_sha256(&cfg)?;
    let mut stages = Stages::new(cfg.clone(), corpus.clone(), mode, progress, scope.worker)?;
    let pairs: Vec<(String, String)> = snapshots
        .iter()
        .map(|s| (s.repo.clone(), s.snapshot.clone()))
        .collect();
    let (mut items, skipped_functions) = select::select_clean(
        &corpus.lock().expect("corpus lock"),
        &pairs,
        &cfg,
        stages
            .decontam
            .as_deref()
            .filter(|_| cfg.decontaminate.as_ref().is_some_and(|d| d.skip_functions)),
    )?;
    if let Some(w) = scope.worker {
        items.retain(|i| w.owns(&i.partition_key()));
    }
    if scope.finalize {
        let c = corpus.lock().expect("corpus lock");
        let keys: Vec<(&str, String)> = items
            .iter()
            .map(|i| (i.key.as_str(), i.partition_key()))
            .collect();
        if let Some(missing) = crate::cluster::finalize::unfinished(&c, &pipeline_sha256, &keys)? {
            if !scope.allow_incomplete {
                anyhow::bail!(missing);
            }
            eprintln!("warning: {missing}\nwarning: --allow-incomplete: writing the shards from the finished items only");
            let done = crate::cluster::finalize::done_items(&c, &pipeline_sha256)?;
            items.retain(|i| done.contains(&i.key));
        }
    }
    // Which worker's command records each item uses: this worker's when it is one; when
    // replaying, the worker that recorded the item.
    if let Some(w) = scope.worker.filter(|w| w.count > 1) {
        stages.exec_scopes = items.iter().map(|i| (i.key.clone(), w.label())).collect();
    } else if mode != Mode::Live {
        stages.exec_scopes = corpus
            .lock()
            .expect("corpus lock")
            .item_progress(&pipeline_sha256)?
            .into_iter()
            .filter(|p| !p.worker.ends_with("/1"))
            .map(|p| (p.item, p.worker))
            .collect();
    }
    if scope.finalize {
        let workers: std::collections::HashMap<String, u32> = corpus
            .lock()
            .expect("corpus lock")
            .item_progress(&pipeline_sha256)?
            .into_iter()
            .map(|p| {
                let index = p.worker.split('/').next().and_then(|i| i.parse().ok());
                (p.item, index.unwrap_or(0))
            })
            .collect();
        for item in &items {
            let index = workers.get(&item.key).copied().unwrap_or(0);
            let teacher = match cfg.teacher.kind.as_str() {
                "scripted" => "scripted".to_string(),
                _ => crate::teacher::endpoint_url(&cfg.teacher.url_for(index))?,
            };
            stages.live_teachers.insert(item.key.clone(), teacher);
        }
    }
    if mode == Mode::Live {
        let worker = scope
            .worker
            .map_or_else(|| "0/1".to_string(), |w| w.label());
        let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
        corpus
            .lock()
            .expect("corpus lock")
            .select_items(&pipeline_sha256, &worker, &keys)?;
        stages.progress_key = Some(pipeline_sha256.clone());
    }
    let stages = Arc::new(stages);
    stages.progress.set_items(items.len() as u64);
    let plugins = stages.plugin_hashes.clone();
    let plugins_json = Arc::new(serde_json::to_value(&plugins)?);
    let mut summary = Summary {
        tokenizer: stages.tokens.description.clone(),
        ..Summary::default()
    };
    let mut spill = rows::RowSpill::new()?;
    let mut metas = Vec::new();
    let mut digests: Vec<(String, [u8; 32])> = Vec::new();
    let mut exchange_count = 0usize;
    let mut joins = tokio::task::JoinSet::new();
    let mut pending = items.into_iter();
    let limit = cfg.teacher.concurrency.max(1);
    let mut first_err: Option<anyhow::Error> = None;
    loop {
        while first_err.is_none() && joins.len() < limit {
            let Some(item) = pending.next() else { break };
            let (stages, plugins_json) = (stages.clone(), plugins_json.clone());
            joins.spawn(async move {
                let key = item.key.clone();
                let res = stages
                    .process(item)
                    .await
                    .with_context(|| format!("item {key}"))?;
                let post = stages
                    .post(&res, &plugins_json)
                    .with_context(|| format!("item {key}"));
                stages.progress.post.inc(1);
                if post.is_ok() {
                    stages.item_finished(&key, res.stopped.as_deref())?;
                }
                post
            });
        }
        let Some(done) = joins.join_next().await else {
            break;
        };
        match done.context("item task")? {
            Err(e) => {
                first_err.get_or_insert(e);
            }
            Ok(post) => {
                summary.add(post.tally);
                digests.push((post.key, post.exchanges.0));
                exchange_count += post.exchanges.1;
                let mut provenance = Vec::new();
                for (meta, row, prov) in post.candidates {
                    provenance.push((meta.row_id.clone(), prov));
                    spill.push(&row)?;
                    metas.push(meta);
                }
                if mode != Mode::Rebuild {
                    corpus
                        .lock()
                        .expect("corpus lock")
                        .put_row_provenance(&provenance)?;
                }
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    stages.progress.finish();
    let candidates = metas.len() as u64;
    let passed = metas.iter().filter(|m| !m.dropped).count() as u64;
    let outcome = crate::output::passes::run(
        &metas
            .iter()
            .map(|m| crate::output::passes::Candidate {
                group: &m.stage,
                row_id: &m.row_id,
                r: m.r,
                ratio: m.ratio,
                hits: &m.hits,
                signatures: &m.signatures,
                dropped: m.dropped,
            })
            .collect::<Vec<_>>(),
        cfg.decontaminate.as_ref().zip(stages.decontam.as_deref()),
        cfg.dedup.as_ref(),
    );
    for (m, why) in metas.iter_mut().zip(&outcome.removed) {
        if let Some(why) = why {
            m.dropped = true;
            *summary
                .dropped
                .entry(format!("{} {}", m.stage, why.reason()))
                .or_default() += 1;
        }
    }
    let (clean, unique, dedup) = (outcome.clean, outcome.unique, outcome.dedup);
    let decontamination = outcome.decontamination.map(|mut d| {
        d.skipped_functions = skipped_functions;
        d
    });
    let mut chosen = stages.mix(&metas);
    for &i in &chosen {
        if metas[i].stage == "T1" {
            summary.rows_t1 += 1;
        } else {
            summary.rows_t2 += 1;
        }
    }
    // Both stages: T1's shards, then T2's, each split its own files.
    let both = summary.rows_t1 > 0 && summary.rows_t2 > 0;
    let splits = if both {
        chosen.sort_by(|&a, &b| {
            (&metas[a].stage, &metas[a].row_id).cmp(&(&metas[b].stage, &metas[b].row_id))
        });
        vec![
            ("T1".to_string(), summary.rows_t1),
            ("T2".to_string(), summary.rows_t2),
        ]
    } else {
        vec![("train".to_string(), chosen.len())]
    };
    let mut funnel = vec![
        ("items selected".to_string(), summary.items as u64),
        (
            "rollout 1 submitted".into(),
            summary.rollout1_submitted as u64,
        ),
        ("PR texts".into(), summary.prs as u64),
        (
            "rollout 2 submitted".into(),
            summary.rollout2_submitted as u64,
        ),
        ("scored".into(), summary.scored as u64),
        (
            format!("verified (r >= {})", cfg.verify.threshold),
            summary.verified as u64,
        ),
        ("candidate rows (T1 + T2)".into(), candidates),
        ("after filters and truncation".into(), passed),
    ];
    if decontamination.is_some() {
        funnel.push(("after decontamination".into(), clean));
    }
    if dedup.is_some() {
        funnel.push(("after near-duplicates".into(), unique));
    }
    funnel.push(("rows in the shards".into(), chosen.len() as u64));
    let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
    for (k, v) in &summary.stopped {
        *dropped.entry(format!("item stopped: {k}")).or_default() += *v as u64;
    }
    for (k, v) in &summary.dropped {
        *dropped.entry(format!("row dropped: {k}")).or_default() += *v as u64;
    }
    let docs = crate::output::DocInputs {
        made_by: "run".into(),
        description: describe_pipeline(&cfg, &snapshots),
        license: cfg.license.clone(),
        teacher_model: Some(cfg.teacher.model.clone()),
        tokenizer: crate::output::tokenizer_label(
            &cfg.truncation.tokenizer.kind,
            &stages.tokens.fingerprint,
            stages.tokens.is_estimate(),
        ),
        settings: pipeline_settings(&cfg),
        funnel,
        dropped,
        splits: splits.clone(),
        facts: chosen.iter().map(|&i| metas[i].facts.clone()).collect(),
        decontamination,
        dedup,
    };
    digests.sort();
    let mut h = sha2::Sha256::new();
    for (key, d) in &digests {
        h.update(format!("{key} {}\n", hex::encode(d)));
    }
    let exchanges = BTreeMap::from([
        ("count".into(), json!(exchange_count)),
        ("sha256".into(), json!(hex::encode(h.finalize()))),
    ]);
    let tokenizer = BTreeMap::from([
        ("kind".to_string(), cfg.truncation.tokenizer.kind.clone()),
        ("sha256".to_string(), stages.tokens.fingerprint.clone()),
    ]);
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        tool_versions: tool_versions(),
        pipeline_sha256,
        pipeline: Some(cfg),
        reshard: None,
        plugins,
        tokenizer,
        snapshots,
        exchanges,
        rows: chosen.len(),
        shards: Vec::new(),
        merkle_root: String::new(),
        documents: Vec::new(),
    };
    Ok(Built {
        manifest,
        rows: rows::ChosenRows::new(spill, chosen).with_splits(splits),
        summary,
        docs,
    })
}

/// `sera-host run`: ingest, run every stage, write the shards and the manifest.
pub async fn execute(p: &Pipeline, mode: Mode, progress: bool) -> Result<Summary> {
    execute_scoped(p, mode, progress, Scope::default()).await
}

/// [`execute`] for a part of a pipeline: a worker stops before the shards (its corpus is
/// merged later); `--finalize` checks that every item was done.
pub async fn execute_scoped(
    p: &Pipeline,
    mode: Mode,
    progress: bool,
    scope: Scope,
) -> Result<Summary> {
    let corpus = Corpus::open(&p.db)?;
    let snapshots = ingest_sources(&corpus, &p.resolved)?;
    let corpus = Arc::new(Mutex::new(corpus));
    let mut built = build_scoped(
        p.resolved.clone(),
        corpus.clone(),
        snapshots,
        mode,
        progress,
        scope,
    )
    .await?;
    if let Some(w) = scope.worker {
        let mut summary = built.summary;
        summary.worker = Some(w.label());
        summary.db = Some(p.db.clone());
        return Ok(summary);
    }
    let path = write_output(
        &p.out,
        &mut built.manifest,
        &built.rows,
        p.resolved.rows_per_shard,
        &built.docs,
    )?;
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
        s.push_str(&render_histogram(&self.r_histogram));
        s.push('\n');
        for (k, n) in &self.stopped {
            s.push_str(&format!("stopped early: {k}: {n}\n"));
        }
        for (k, n) in &self.dropped {
            s.push_str(&format!("dropped: {k}: {n}\n"));
        }
        if let (Some(w), Some(db)) = (&self.worker, &self.db) {
            s.push_str(&format!(
                "worker {w}: no shards (merge the worker corpora, then `run --finalize`); corpus {}\n",
                db.display()
            ));
            s.push_str(&format!(
                "teacher: {} tokens, {:.1} s of recorded latency\n",
                self.tokens, self.teacher_seconds
            ));
            return s;
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
