//! `sera-host rescore`: a verifier plugin over every stored pair. Verdicts are stored under
//! (pair, plugin sha256, config sha256), so a second run with the same plugin and config only
//! looks them up; pairs not scored yet are scored in batches on every core.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use super::pairs::{Pair, Reference, ReferenceText, Unpaired};
use crate::corpus::{Corpus, ImportEntry, StoredVerdict};
use crate::digest::canonical_json;
use crate::digest::sha256_hex;
use crate::plugin::Limits;
use crate::plugin::{LoadedPlugin, PatchPair, PluginEngine, PluginSource, Verifier};

/// A scoring thread's verdicts, and its seconds reading pairs and in the plugin.
type ThreadScores = (Vec<StoredVerdict>, f64, f64);

/// Pairs per call into the plugin.
const BATCH: usize = 64;

/// A verifier plugin with its config, ready to make per-thread instances.
pub struct VerifierSpec {
    pub spec: String,
    pub engine: PluginEngine,
    pub plugin: LoadedPlugin,
    pub config: String,
    /// sha256 of the canonical config: part of every verdict's key.
    pub config_sha256: String,
}

impl VerifierSpec {
    pub fn load(spec: &str, config: &Value) -> Result<VerifierSpec> {
        let engine = PluginEngine::with_default_cache()?;
        let plugin = engine.load(&PluginSource::parse(spec)?)?;
        let config = canonical_json(config);
        // Fails here, once, on a plugin of another world or a config it refuses.
        Verifier::new(&engine, &plugin, &config, Limits::default())
            .with_context(|| format!("verifier {spec}"))?;
        Ok(VerifierSpec {
            spec: spec.to_string(),
            config_sha256: sha256_hex(config.as_bytes()),
            engine,
            plugin,
            config,
        })
    }

    pub fn sha256(&self) -> &str {
        &self.plugin.sha256
    }

    fn instance(&self) -> Result<Verifier> {
        Verifier::new(&self.engine, &self.plugin, &self.config, Limits::default())
    }
}

#[derive(Debug, Default, Serialize)]
pub struct RescoreReport {
    pub verifier: String,
    pub plugin_sha256: String,
    pub config: String,
    pub reference: String,
    pub trajectories: usize,
    pub pairs: usize,
    /// Distinct pairs scored now.
    pub scored: usize,
    /// Pairs whose verdict was already stored.
    pub looked_up: usize,
    pub failed: usize,
    #[serde(flatten)]
    pub unpaired: Unpaired,
    /// Score in tenths: [0, 0.1), ..., [0.9, 1.0), and exactly 1.0 last.
    pub histogram: [usize; 11],
    pub no_score: usize,
    pub mean: Option<f64>,
    /// Where the time of the pairs scored now went (measurements, not part of any output):
    /// wall seconds of the scoring, and thread-seconds reading pairs and in the plugin.
    pub timing: Timing,
}

#[derive(Debug, Default, Serialize)]
pub struct Timing {
    pub threads: usize,
    pub seconds: f64,
    pub read_seconds: f64,
    pub plugin_seconds: f64,
}

/// The verdict of every pair of `entries`. With `reuse`, stored verdicts are looked up and new
/// ones stored; without (an audit), every pair is scored and nothing is stored. Returns the
/// report and each pair's verdict with its import id, in the order of `entries`.
pub fn rescore(
    corpus: &Corpus,
    verifier: &VerifierSpec,
    reference: &Reference,
    entries: &[ImportEntry],
    threads: usize,
    reuse: bool,
) -> Result<(RescoreReport, Vec<(String, StoredVerdict)>)> {
    let (pairs, unpaired) = reference.pairs(entries);
    let stored = if reuse {
        let keys: Vec<&str> = pairs.iter().map(|p| p.key.as_str()).collect();
        corpus.verdicts(verifier.sha256(), &verifier.config_sha256, &keys)?
    } else {
        HashMap::new()
    };
    // Each pair not stored yet, once: where each pair's verdict comes from.
    let mut todo: Vec<&Pair> = Vec::new();
    let mut queued: HashMap<&str, usize> = HashMap::new();
    let from: Vec<Option<usize>> = pairs
        .iter()
        .map(|p| {
            (!stored.contains_key(&p.key)).then(|| {
                *queued.entry(&p.key).or_insert_with(|| {
                    todo.push(p);
                    todo.len() - 1
                })
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let (fresh, mut timing) = score(corpus.path(), verifier, &todo, threads)?;
    timing.seconds = started.elapsed().as_secs_f64();
    if reuse {
        let new: Vec<(&str, &StoredVerdict)> = todo
            .iter()
            .zip(&fresh)
            .map(|(p, v)| (p.key.as_str(), v))
            .collect();
        corpus.put_verdicts(verifier.sha256(), &verifier.config_sha256, &new)?;
    }
    let mut report = RescoreReport {
        verifier: verifier.spec.clone(),
        plugin_sha256: verifier.sha256().to_string(),
        config: verifier.config.clone(),
        reference: reference.describe(),
        trajectories: entries.len(),
        pairs: pairs.len(),
        scored: fresh.len(),
        looked_up: pairs.len() - todo.len(),
        unpaired,
        timing,
        ..RescoreReport::default()
    };
    let mut by_import = Vec::with_capacity(pairs.len());
    let mut sum = 0.0;
    let mut n = 0usize;
    for (p, from) in pairs.into_iter().zip(from) {
        let v = match from {
            Some(i) => &fresh[i],
            None => &stored[&p.key],
        };
        if v.failure.is_some() {
            report.failed += 1;
        } else if let Some(s) = v.score {
            report.histogram[crate::shards::histogram::score_bucket(s)] += 1;
            sum += s;
            n += 1;
        } else {
            report.no_score += 1;
        }
        by_import.push((p.import.to_string(), v.clone()));
    }
    report.mean = (n > 0).then(|| sum / n as f64);
    Ok((report, by_import))
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Both patches of every pair of `batch`: the blobs in one query, decompressed here.
fn read_pairs(corpus: &Corpus, batch: &[&Pair]) -> Result<Vec<PatchPair>> {
    let mut ids: Vec<&str> = Vec::with_capacity(batch.len() * 2);
    for p in batch {
        ids.push(p.candidate);
        if let ReferenceText::Blob(id) = &p.reference {
            ids.push(id);
        }
    }
    let mut blobs = corpus.blobs_in_order(&ids)?.into_iter();
    let mut next = || text(blobs.next().expect("a blob per id"));
    batch
        .iter()
        .map(|p| {
            let candidate = next();
            let reference = match &p.reference {
                ReferenceText::Text(t) => t.to_string(),
                ReferenceText::Blob(_) => next(),
                ReferenceText::TargetPatchOf(id) => corpus
                    .import_target_patch(id)?
                    .with_context(|| format!("import {id}: its target patch is gone"))?,
            };
            Ok(PatchPair {
                reference,
                candidate,
            })
        })
        .collect()
}

/// Scores `todo` on `threads` threads, each with its own instance and its own connection to
/// the corpus at `db` (reading the patches is most of the work), in batches.
fn score(
    db: &Path,
    verifier: &VerifierSpec,
    todo: &[&Pair],
    threads: usize,
) -> Result<(Vec<StoredVerdict>, Timing)> {
    let mut timing = Timing::default();
    if todo.is_empty() {
        return Ok((Vec::new(), timing));
    }
    let threads = threads.clamp(1, todo.len().div_ceil(BATCH));
    let per = todo.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = todo
            .chunks(per)
            .map(|chunk| {
                s.spawn(move || -> Result<ThreadScores> {
                    let corpus = Corpus::open_existing(db)?;
                    // Reads by id land all over the blobs' index and table: pages through a
                    // memory map rather than a read() each into a small cache.
                    let _ = corpus.conn().pragma_update(None, "mmap_size", 1i64 << 34);
                    let mut v = verifier.instance()?;
                    let mut out = Vec::with_capacity(chunk.len());
                    let (mut read_s, mut plugin_s) = (0.0, 0.0);
                    for batch in chunk.chunks(BATCH) {
                        let items: Vec<String> =
                            batch.iter().map(|p| p.import.to_string()).collect();
                        let t = std::time::Instant::now();
                        let pp: Vec<PatchPair> = read_pairs(&corpus, batch)?;
                        read_s += t.elapsed().as_secs_f64();
                        let t = std::time::Instant::now();
                        let verdicts = v.verify_batch(&items, &pp);
                        plugin_s += t.elapsed().as_secs_f64();
                        for r in verdicts {
                            let stored = match r {
                                Ok(v) => StoredVerdict {
                                    score: v.score,
                                    matched: v.matched,
                                    total: v.total,
                                    detail: v.detail,
                                    failure: None,
                                },
                                Err(f) => StoredVerdict {
                                    score: None,
                                    matched: 0,
                                    total: 0,
                                    detail: String::new(),
                                    failure: Some(format!("{}: {}", f.kind, f.message)),
                                },
                            };
                            out.push(stored);
                        }
                    }
                    Ok((out, read_s, plugin_s))
                })
            })
            .collect();
        let mut all = Vec::with_capacity(todo.len());
        timing.threads = handles.len();
        for h in handles {
            let (v, r, p) = h.join().expect("a rescore thread panicked")?;
            all.extend(v);
            timing.read_seconds += r;
            timing.plugin_seconds += p;
        }
        Ok((all, timing))
    })
}

impl RescoreReport {
    pub fn render(&self) -> String {
        let mut s = format!(
            "{} trajectories: {} pairs ({} scored now, {} looked up), {} without a patch, {} without a reference\n",
            self.trajectories, self.pairs, self.scored, self.looked_up, self.unpaired.no_patch, self.unpaired.no_reference
        );
        s.push_str(&format!(
            "verifier {} (sha256 {}), config {}, reference {}\n",
            self.verifier,
            &self.plugin_sha256[..16],
            self.config,
            self.reference
        ));
        s.push_str(&format!(
            "scores: {}; mean {}; no score {}; plugin failures {}\n",
            crate::shards::histogram::render_histogram(&self.histogram),
            self.mean.map_or("-".into(), |m| format!("{m:.4}")),
            self.no_score,
            self.failed
        ));
        let t = &self.timing;
        if self.scored > 0 && t.seconds > 0.0 {
            let per = |secs: f64| {
                if secs > 0.0 {
                    format!("{:.0}", self.scored as f64 / secs)
                } else {
                    "-".into()
                }
            };
            s.push_str(&format!(
                "scoring: {} pairs/s end to end on {} threads ({:.3} s); per thread, reading pairs alone {} pairs/s, the plugin alone {} pairs/s\n",
                per(t.seconds),
                t.threads,
                t.seconds,
                per(t.read_seconds),
                per(t.plugin_seconds),
            ));
        }
        s
    }
}
