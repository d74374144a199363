//! `sera-host shards`: training shards from stored (imported) trajectories, without generating
//! anything: select (`--select`), score (a verifier's verdicts give `r`), filter and truncate
//! (plugins, as in `sera-host run`), render (`openai`, `hermes`, `xml`), and write shards with
//! the same manifest, hashes and determinism as a pipeline run. `sera-host audit` rebuilds
//! them from the corpus.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_json::Value;

use super::pairs::Reference;
use super::render::render;
use super::rescore::{rescore, RescoreReport, VerifierSpec};
use super::select::{Facts, Selection};
use crate::config::reshard::{d_reference, d_table, d_verifier};
pub use crate::config::reshard::{Render, ReshardSpec, VerifySpec};
use crate::config::{abs, resolve_plugin, resolve_tokenizer};
use crate::corpus::{Corpus, ImportEntry};
use crate::digest::canonical_json;
use crate::digest::sha256_hex;
use crate::output::decontam::{Action, Hit, Index};
use crate::output::facts::{assistant_text, RowFacts};
use crate::output::DocInputs;
use crate::plugin::{PluginEngine, TrajectoryFilter, Truncator};
use crate::shards::manifest::{
    tool_versions, Manifest, PluginRef, ReshardManifest, MANIFEST_FORMAT,
};
use crate::shards::plugins::{load_filters, load_truncator, token_counter};
use crate::shards::rows::{decide, ChosenRows, RowSpill};
use crate::tokenizer::{TokenCounter, TokenizerSource};
use crate::trajectory::{Message, Trajectory};

/// Command-line values that replace the file's.
#[derive(Debug, Default)]
pub struct Overrides {
    pub select: Option<String>,
    pub render: Option<String>,
    pub rows_per_shard: Option<usize>,
    pub verifier: Option<String>,
    pub verifier_config: Option<Value>,
    pub reference: Vec<String>,
}

impl ReshardSpec {
    /// Reads `file` (TOML with the keys of `ReshardSpec`), applies `o`, checks values and
    /// makes paths absolute (relative to the file, or to the working directory for flags).
    pub fn load(file: Option<&Path>, o: Overrides) -> Result<ReshardSpec> {
        let cwd = std::env::current_dir()?;
        let (mut spec, base, shown) = match file {
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("{shown}: cannot read the shards config"))?;
                let spec: ReshardSpec = toml::from_str(&text)
                    .map_err(|e| anyhow!("{shown}: {}", e.to_string().trim()))?;
                let base = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(|p| abs(&cwd, p))
                    .unwrap_or(cwd.clone());
                (spec, base, shown)
            }
            None => (ReshardSpec::default(), cwd.clone(), "command line".into()),
        };
        let bad = |key: &str, why: &str| anyhow!("{shown}: `{key}`: {why}");
        if let Some(s) = o.select {
            spec.select = Some(s);
        }
        if let Some(r) = o.render {
            spec.render = Render::parse(&r)?;
        }
        if let Some(n) = o.rows_per_shard {
            spec.rows_per_shard = n;
        }
        let flags_verify =
            o.verifier.is_some() || o.verifier_config.is_some() || !o.reference.is_empty();
        if flags_verify {
            let mut v = spec.verify.take().unwrap_or(VerifySpec {
                plugin: d_verifier(),
                config: d_table(),
                reference: d_reference(),
            });
            if let Some(p) = o.verifier {
                v.plugin = resolve_plugin(&cwd, "--verifier", "verifier", &p)?;
            }
            if let Some(c) = o.verifier_config {
                v.config = c;
            }
            if !o.reference.is_empty() {
                v.reference = o
                    .reference
                    .iter()
                    .map(|r| reference_path(&cwd, r))
                    .collect();
            }
            spec.verify = Some(v);
        } else if let Some(v) = &mut spec.verify {
            v.plugin = resolve_plugin(&base, &shown, "verify.plugin", &v.plugin)?;
            v.reference = v
                .reference
                .iter()
                .map(|r| reference_path(&base, r))
                .collect();
        }
        if spec.rows_per_shard == 0 {
            return Err(bad("rows_per_shard", "must be at least 1"));
        }
        if let Some(s) = &spec.select {
            Selection::compile(s)?;
        }
        for (i, f) in spec.filters.iter_mut().enumerate() {
            f.plugin = resolve_plugin(&base, &shown, &format!("filters[{i}].plugin"), &f.plugin)?;
        }
        if let Some(t) = &mut spec.truncation {
            t.plugin = resolve_plugin(&base, &shown, "truncation.plugin", &t.plugin)?;
            resolve_tokenizer(&base, &shown, "truncation.tokenizer", &mut t.tokenizer)?;
            if !(0.0..=1.0).contains(&t.min_ratio) {
                return Err(bad("truncation.min_ratio", "must be between 0 and 1"));
            }
            if t.budget == 0 {
                return Err(bad("truncation.budget", "must be at least 1"));
            }
        }
        if let Some(d) = &mut spec.decontaminate {
            d.resolve(&base, &shown)?;
        }
        if let Some(d) = &spec.dedup {
            d.check(&shown)?;
        }
        Ok(spec)
    }
}

fn reference_path(base: &Path, r: &str) -> String {
    if r == "p1" {
        r.to_string()
    } else {
        abs(base, Path::new(r)).display().to_string()
    }
}

/// A shard row made from a stored trajectory.
#[derive(Serialize)]
struct Row<'a> {
    messages: Vec<Message>,
    tools: &'a [Value],
    metadata: RowMetadata<'a>,
}

#[derive(Serialize)]
struct RowMetadata<'a> {
    /// The import's id (sha256 of its source file's sha256 and its place in it).
    row_id: &'a str,
    format: &'a str,
    /// The source file's name (not its path: rows do not depend on where files were).
    source: &'a str,
    locator: &'a str,
    instance_id: Option<&'a str>,
    stage: Option<&'a str>,
    r: Option<f64>,
    truncation_ratio: f64,
    render: Render,
    /// With `[decontaminate] action = "flag"`: the instances the row overlaps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    contamination: Vec<String>,
}

/// What a reshard did, for the closing summary.
#[derive(Debug, Default, Serialize)]
pub struct ReshardReport {
    pub trajectories: usize,
    pub selected: usize,
    /// Why trajectories were not selected (the expression's result or error), with counts.
    pub not_selected: BTreeMap<String, usize>,
    pub dropped: BTreeMap<String, usize>,
    pub rows: usize,
    pub raw_bytes: u64,
    pub shards: usize,
    pub merkle_root: String,
    pub tokenizer: String,
    pub rescore: Option<RescoreReport>,
    pub manifest: PathBuf,
}

/// Whether stored verdicts may be used (a run) or everything is recomputed and nothing stored
/// (an audit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdicts {
    Reuse,
    Recompute,
}

/// Rows (in import-id order) and the manifest without its shard hashes.
pub struct Built {
    pub rows: ChosenRows,
    pub manifest: Manifest,
    pub report: ReshardReport,
    pub docs: DocInputs,
}

/// SERA rows: T2 when they carry a target patch (P1), else T1.
fn stage_of(e: &ImportEntry) -> Option<&'static str> {
    if e.format != "sera" {
        return None;
    }
    Some(if e.target_patch_sha256.is_some() {
        "T2"
    } else {
        "T1"
    })
}

/// The plugins a reshard runs, shared by its worker threads.
struct Plugins {
    filters: Vec<TrajectoryFilter>,
    truncator: Option<Truncator>,
    refs: BTreeMap<String, PluginRef>,
    tokens: Arc<TokenCounter>,
    decontam: Option<Index>,
}

fn load_plugins(spec: &ReshardSpec) -> Result<Plugins> {
    let engine = PluginEngine::with_default_cache()?;
    let tokens = Arc::new(match &spec.truncation {
        Some(t) => token_counter(&t.tokenizer)?,
        None => TokenCounter::new(&TokenizerSource::Estimate)?,
    });
    let mut refs = BTreeMap::new();
    let filters = load_filters(&engine, &spec.filters, &tokens, &mut refs)?;
    let truncator = spec
        .truncation
        .as_ref()
        .map(|t| load_truncator(&engine, t, &tokens, &mut refs))
        .transpose()?;
    let decontam = spec.decontaminate.as_ref().map(|d| d.load()).transpose()?;
    Ok(Plugins {
        filters,
        truncator,
        refs,
        tokens,
        decontam,
    })
}

/// One worker's share: rows spilled in entry order, and its tallies.
/// What the card, decontamination and dedup need of a spilled row.
struct Spilled {
    facts: RowFacts,
    hits: Vec<Hit>,
    signatures: Vec<Option<Vec<u32>>>,
}

struct Share {
    spill: RowSpill,
    spilled: Vec<Spilled>,
    selected: usize,
    not_selected: BTreeMap<String, usize>,
    dropped: BTreeMap<String, usize>,
}

fn process(
    db: &Path,
    entries: &[ImportEntry],
    spec: &ReshardSpec,
    select: Option<&Selection>,
    scores: &BTreeMap<String, Option<f64>>,
    plugins: &Plugins,
) -> Result<Share> {
    let corpus = Corpus::open_existing(db)?;
    let mut share = Share {
        spill: RowSpill::new()?,
        spilled: Vec::new(),
        selected: 0,
        not_selected: BTreeMap::new(),
        dropped: BTreeMap::new(),
    };
    let mut line = Vec::new();
    for e in entries {
        let t: Trajectory =
            serde_json::from_slice(&corpus.blob(&e.trajectory)?).with_context(|| {
                format!(
                    "import {} ({} {}): stored trajectory",
                    e.id, e.source, e.locator
                )
            })?;
        let patch = match &e.patch {
            Some(p) => String::from_utf8_lossy(&corpus.blob(p)?).into_owned(),
            None => String::new(),
        };
        let r = scores.get(&e.id).copied().flatten();
        let stage = stage_of(e);
        if let Some(sel) = select {
            let facts = Facts {
                format: e.format.clone(),
                source: e.source.clone(),
                locator: e.locator.clone(),
                instance_id: e.instance_id.clone(),
                stage: stage.map(String::from),
                r,
                messages: t.messages.len(),
                tool_calls: t.messages.iter().map(|m| m.tool_calls.len()).sum(),
                patch_lines: line_recall_core::sera_change_lines(&patch).len(),
                func_name: e.func_name.clone(),
                chars: t.messages.iter().map(|m| m.content.chars().count()).sum(),
            };
            match sel.matches(&facts) {
                Ok(true) => {}
                Ok(false) => {
                    *share.not_selected.entry("false".into()).or_default() += 1;
                    continue;
                }
                Err(why) => {
                    *share
                        .not_selected
                        .entry(format!("error: {why}"))
                        .or_default() += 1;
                    continue;
                }
            }
        }
        share.selected += 1;
        let truncation = match (&plugins.truncator, &spec.truncation) {
            (Some(t), Some(cfg)) => Some((t, cfg)),
            _ => None,
        };
        let item = format!("import {}", e.id);
        let d = decide(
            &plugins.filters,
            truncation,
            &item,
            stage.unwrap_or("import"),
            &t,
            &patch,
        );
        if let Some(why) = &d.dropped {
            let kind = why.split(':').next().unwrap_or(why).to_string();
            *share.dropped.entry(kind).or_default() += 1;
            continue;
        }
        let kept = d
            .kept_messages
            .unwrap_or(t.messages.len())
            .min(t.messages.len());
        let source = Path::new(&e.source)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| e.source.clone());
        let messages = &t.messages[..kept];
        let mut facts = RowFacts::of(&t, messages, &patch, &|s| {
            u64::from(plugins.tokens.count(s))
        });
        facts.row_id = e.id.clone();
        facts.stage = stage.map(String::from);
        facts.repo = source.clone();
        facts.r = r;
        facts.truncation_ratio = d.ratio.unwrap_or(1.0);
        let hits = plugins.decontam.as_ref().map_or_else(Vec::new, |idx| {
            idx.row_hits(None, e.instance_id.as_deref(), messages, &patch)
        });
        let flagged: Vec<String> = match &spec.decontaminate {
            Some(dc) if dc.action == Action::Flag => {
                hits.iter().map(|h| h.instance.clone()).collect()
            }
            _ => Vec::new(),
        };
        let signatures = crate::output::passes::signatures(spec.dedup.as_ref(), &patch, || {
            assistant_text(messages)
        });
        let row = Row {
            messages: render(messages, spec.render),
            tools: &t.tools,
            metadata: RowMetadata {
                row_id: &e.id,
                format: &e.format,
                source: &source,
                locator: &e.locator,
                instance_id: e.instance_id.as_deref(),
                stage,
                r,
                truncation_ratio: d.ratio.unwrap_or(1.0),
                render: spec.render,
                contamination: flagged,
            },
        };
        line.clear();
        serde_json::to_writer(&mut line, &row)?;
        share.spill.push(&line)?;
        share.spilled.push(Spilled {
            facts,
            hits,
            signatures,
        });
    }
    Ok(share)
}

/// Builds the rows of `spec` from the corpus at `db` on `threads` threads.
pub fn build(db: &Path, spec: &ReshardSpec, verdicts: Verdicts, threads: usize) -> Result<Built> {
    let corpus = Corpus::open_existing(db)?;
    let entries = corpus.import_entries()?;
    if entries.is_empty() {
        bail!(
            "{}: no stored trajectories (import some with `sera-host import`)",
            db.display()
        );
    }
    let select = spec.select.as_deref().map(Selection::compile).transpose()?;
    let mut plugins_refs = BTreeMap::new();
    let mut references_sha256 = None;
    let mut scores: BTreeMap<String, Option<f64>> = BTreeMap::new();
    let mut rescore_report = None;
    if let Some(v) = &spec.verify {
        let verifier = VerifierSpec::load(&v.plugin, &v.config)?;
        let reference = Reference::parse(&v.reference)?;
        if let Reference::Instances(r) = &reference {
            references_sha256 = Some(r.digest());
        }
        let (report, by_import) = rescore(
            &corpus,
            &verifier,
            &reference,
            &entries,
            threads,
            verdicts == Verdicts::Reuse,
        )?;
        for (id, v) in by_import {
            scores.insert(id, if v.failure.is_some() { None } else { v.score });
        }
        plugins_refs.insert(
            "verify".to_string(),
            PluginRef {
                source: v.plugin.clone(),
                sha256: verifier.sha256().to_string(),
            },
        );
        rescore_report = Some(report);
    }
    let plugins = load_plugins(spec)?;
    plugins_refs.extend(plugins.refs.clone());
    let threads = threads.clamp(1, entries.len());
    let per = entries.len().div_ceil(threads);
    let shares: Vec<Share> = std::thread::scope(|s| {
        let handles: Vec<_> = entries
            .chunks(per)
            .map(|chunk| {
                let (select, scores, plugins) = (select.as_ref(), &scores, &plugins);
                s.spawn(move || process(db, chunk, spec, select, scores, plugins))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a reshard thread panicked"))
            .collect::<Result<Vec<_>>>()
    })?;
    let mut report = ReshardReport {
        trajectories: entries.len(),
        tokenizer: plugins.tokens.description.clone(),
        rescore: rescore_report,
        ..ReshardReport::default()
    };
    let mut spills = Vec::new();
    // (spill, row in it, what it is), in import-id order.
    let mut all: Vec<(usize, usize, Spilled)> = Vec::new();
    for (k, sh) in shares.into_iter().enumerate() {
        report.selected += sh.selected;
        for (key, n) in sh.not_selected {
            *report.not_selected.entry(key).or_default() += n;
        }
        for (key, n) in sh.dropped {
            *report.dropped.entry(key).or_default() += n;
        }
        all.extend(sh.spilled.into_iter().enumerate().map(|(i, x)| (k, i, x)));
        spills.push(sh.spill);
    }
    let passed = all.len() as u64;
    let groups: Vec<String> = all
        .iter()
        .map(|(_, _, x)| x.facts.stage.clone().unwrap_or_else(|| "-".into()))
        .collect();
    let outcome = crate::output::passes::run(
        &all.iter()
            .zip(&groups)
            .map(|((_, _, x), g)| crate::output::passes::Candidate {
                group: g,
                row_id: &x.facts.row_id,
                r: x.facts.r,
                ratio: x.facts.truncation_ratio,
                hits: &x.hits,
                signatures: &x.signatures,
                dropped: false,
            })
            .collect::<Vec<_>>(),
        spec.decontaminate.as_ref().zip(plugins.decontam.as_ref()),
        spec.dedup.as_ref(),
    );
    for why in outcome.removed.iter().flatten() {
        *report.dropped.entry(why.reason().into()).or_default() += 1;
    }
    let gone: Vec<bool> = outcome.removed.iter().map(Option::is_some).collect();
    let (clean, decontamination, dedup) = (outcome.clean, outcome.decontamination, outcome.dedup);
    let mut keep: Vec<usize> = (0..all.len()).filter(|&i| !gone[i]).collect();
    let stage_of_row = |i: usize| all[i].2.facts.stage.as_deref();
    let both = keep.iter().all(|&i| stage_of_row(i).is_some())
        && keep.iter().any(|&i| stage_of_row(i) == Some("T1"))
        && keep.iter().any(|&i| stage_of_row(i) == Some("T2"));
    let splits = if both {
        // Stable: import-id order within each stage.
        keep.sort_by_key(|&i| stage_of_row(i).map(String::from));
        let t1 = keep
            .iter()
            .filter(|&&i| stage_of_row(i) == Some("T1"))
            .count();
        vec![("T1".to_string(), t1), ("T2".to_string(), keep.len() - t1)]
    } else {
        vec![("train".to_string(), keep.len())]
    };
    let order: Vec<(usize, usize)> = keep.iter().map(|&i| (all[i].0, all[i].1)).collect();
    let rows = ChosenRows::from_parts(spills, order).with_splits(splits.clone());
    report.rows = rows.len();
    let mut funnel = vec![
        ("stored trajectories".to_string(), entries.len() as u64),
        ("selected".into(), report.selected as u64),
        ("after filters and truncation".into(), passed),
    ];
    if decontamination.is_some() {
        funnel.push(("after decontamination".into(), clean));
    }
    if dedup.is_some() {
        funnel.push(("after near-duplicates".into(), outcome.unique));
    }
    funnel.push(("rows in the shards".into(), rows.len() as u64));
    let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
    for (k, v) in &report.not_selected {
        *dropped.entry(format!("not selected: {k}")).or_default() += *v as u64;
    }
    for (k, v) in &report.dropped {
        *dropped.entry(format!("row dropped: {k}")).or_default() += *v as u64;
    }
    let mut settings = Vec::new();
    if let Some(sel) = &spec.select {
        settings.push(("select".to_string(), sel.clone()));
    }
    if let Some(v) = &spec.verify {
        settings.push((
            format!(
                "verify: {}",
                crate::shards::manifest::plugin_name(&v.plugin)
            ),
            format!(
                "{} against {}",
                v.config,
                if v.reference == ["p1"] {
                    "P1 (the rows' own target patches)"
                } else {
                    "reference instance files"
                }
            ),
        ));
    }
    for f in &spec.filters {
        settings.push((
            format!(
                "filter: {}",
                crate::shards::manifest::plugin_name(&f.plugin)
            ),
            f.config.to_string(),
        ));
    }
    if let Some(t) = &spec.truncation {
        settings.push((
            format!(
                "truncation: {}",
                crate::shards::manifest::plugin_name(&t.plugin)
            ),
            format!(
                "budget {} tokens, min ratio {}, tokenizer {}",
                t.budget, t.min_ratio, t.tokenizer.kind
            ),
        ));
    }
    settings.push(("render".into(), format!("{:?}", spec.render).to_lowercase()));
    let formats: std::collections::BTreeSet<&str> =
        entries.iter().map(|e| e.format.as_str()).collect();
    let tokenizer_kind = spec
        .truncation
        .as_ref()
        .map_or("estimate".to_string(), |t| t.tokenizer.kind.clone());
    let docs = DocInputs {
        made_by: "shards".into(),
        description: format!(
            "Made by `sera-host shards` from {} stored trajector{} imported from other agents' output ({}), selected, scored, filtered and truncated as listed below; nothing was generated.",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" },
            formats.into_iter().collect::<Vec<_>>().join(", ")
        ),
        license: spec.license.clone(),
        teacher_model: None,
        tokenizer: crate::output::tokenizer_label(
            &tokenizer_kind,
            &plugins.tokens.fingerprint,
            plugins.tokens.is_estimate(),
        ),
        settings,
        funnel,
        dropped,
        splits,
        facts: keep.iter().map(|&i| all[i].2.facts.clone()).collect(),
        decontamination,
        dedup,
    };
    let mut lines = String::new();
    for e in &entries {
        lines.push_str(&format!(
            "{} {} {}\n",
            e.id,
            e.trajectory,
            e.patch.as_deref().unwrap_or("-")
        ));
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        tool_versions: tool_versions(),
        pipeline_sha256: sha256_hex(canonical_json(&serde_json::to_value(spec)?).as_bytes()),
        pipeline: None,
        reshard: Some(ReshardManifest {
            spec: spec.clone(),
            imports: entries.len(),
            imports_sha256: sha256_hex(lines.as_bytes()),
            references_sha256,
        }),
        plugins: plugins_refs,
        tokenizer: BTreeMap::from([
            ("kind".to_string(), tokenizer_kind),
            ("sha256".to_string(), plugins.tokens.fingerprint.clone()),
        ]),
        snapshots: Vec::new(),
        exchanges: BTreeMap::new(),
        rows: rows.len(),
        shards: Vec::new(),
        merkle_root: String::new(),
        documents: Vec::new(),
    };
    Ok(Built {
        rows,
        manifest,
        report,
        docs,
    })
}

/// `sera-host shards`: builds and writes the shards and the manifest into `out`.
pub fn execute(db: &Path, out: &Path, spec: &ReshardSpec, threads: usize) -> Result<ReshardReport> {
    let mut built = build(db, spec, Verdicts::Reuse, threads)?;
    let path = crate::shards::manifest::write_output(
        out,
        &mut built.manifest,
        &built.rows,
        spec.rows_per_shard,
        &built.docs,
    )?;
    let mut report = built.report;
    report.raw_bytes = built.manifest.shards.iter().map(|s| s.raw_bytes).sum();
    report.shards = built.manifest.shards.len();
    report.merkle_root = built.manifest.merkle_root.clone();
    report.manifest = path;
    Ok(report)
}

impl ReshardReport {
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some(r) = &self.rescore {
            s.push_str(&r.render());
        }
        s.push_str(&format!(
            "{} stored trajectories: {} selected\n",
            self.trajectories, self.selected
        ));
        for (k, n) in &self.not_selected {
            s.push_str(&format!("not selected: {k}: {n}\n"));
        }
        for (k, n) in &self.dropped {
            s.push_str(&format!("dropped: {k}: {n}\n"));
        }
        s.push_str(&format!(
            "rows: {} ({} bytes of JSONL) in {} shards; merkle root {}\ntokenizer: {}\nmanifest: {}\n",
            self.rows,
            self.raw_bytes,
            self.shards,
            self.merkle_root,
            self.tokenizer,
            self.manifest.display()
        ));
        s
    }
}
