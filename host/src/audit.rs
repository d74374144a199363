//! `sera-host audit`: rebuild every shard offline from the corpus (recorded exchanges only,
//! nothing reused) and check every hash the manifest names; `explain`: a row's provenance.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};

use crate::corpus::Corpus;
use crate::dataset::reshard::Verdicts;
use crate::digest::sha256_hex;
use crate::pipeline::build;
use crate::pipeline::run::Mode;
use crate::shards::files::{compress, merkle_root_hex, ShardInfo};
use crate::shards::manifest::{read_manifest, Manifest};
use crate::shards::rows::ChosenRows;

/// What an audit found: `problems` empty means every hash matched.
#[derive(Debug, Default)]
pub struct AuditReport {
    pub checked: Vec<String>,
    pub problems: Vec<String>,
}

fn lines(raw: &[u8]) -> Vec<&[u8]> {
    raw.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

fn row_id(line: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["metadata"]["row_id"].as_str().map(String::from))
        .unwrap_or_else(|| "(unreadable row)".into())
}

/// Where two shards' rows first differ: index and row id, with the row's provenance.
fn first_difference(corpus: &Corpus, want: &[u8], got: &[u8]) -> String {
    let (a, b) = (lines(want), lines(got));
    let i = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let id = a
        .get(i)
        .map(|l| row_id(l))
        .unwrap_or_else(|| "(no row)".into());
    let chain = match corpus.row_provenance(&id) {
        Ok(Some((_, p))) => {
            let v: serde_json::Value = serde_json::from_slice(&p).unwrap_or_default();
            format!(
                "; provenance: {} {} of {} in snapshot {} (rollout 1 {}, rollout 2 {})",
                v["stage"].as_str().unwrap_or("?"),
                v["item"]["prompt_template"].as_str().unwrap_or("?"),
                v["item"]["function"].as_str().unwrap_or("?"),
                v["item"]["snapshot"].as_str().unwrap_or("?"),
                v["rollout1"]["id"].as_str().unwrap_or("-"),
                v["rollout2"]["id"].as_str().unwrap_or("-"),
            )
        }
        _ => String::new(),
    };
    format!("first differing row: #{i} (row id {id}){chain}")
}

/// The rows, manifest, rows per shard and document inputs a manifest's config gives from the
/// corpus now (recorded exchanges only, nothing stored).
async fn rebuild(
    m: &Manifest,
    db: &Path,
    corpus: Arc<Mutex<Corpus>>,
) -> Result<(ChosenRows, Manifest, usize, crate::output::DocInputs)> {
    match (&m.pipeline, &m.reshard) {
        (Some(p), _) => build(p.clone(), corpus, m.snapshots.clone(), Mode::Rebuild, false)
            .await
            .map(|b| (b.rows, b.manifest, p.rows_per_shard, b.docs)),
        (_, Some(r)) => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            crate::dataset::reshard::build(db, &r.spec, Verdicts::Recompute, threads)
                .map(|b| (b.rows, b.manifest, r.spec.rows_per_shard, b.docs))
        }
        (None, None) => anyhow::bail!("the manifest has neither a pipeline nor a reshard spec"),
    }
}

/// `sera-host report`: the report of a manifest's rows, rebuilt from the corpus, written to
/// `out`; with `timings`, with the recorded teacher latency too (a page that then differs from
/// the one the manifest lists). Returns whether the page equals the manifest's.
pub async fn report(
    manifest_path: &Path,
    db: &Path,
    timings: bool,
    out: &Path,
) -> Result<Option<bool>> {
    let m: Manifest = read_manifest(manifest_path)?;
    let corpus = Arc::new(Mutex::new(Corpus::open_existing(db)?));
    let (_, _, _, docs) = rebuild(&m, db, corpus).await.with_context(|| {
        format!(
            "{}: rebuilding its rows from {}",
            manifest_path.display(),
            db.display()
        )
    })?;
    let latency: Vec<f64> = docs
        .facts
        .iter()
        .map(|f| f.teacher.latency_ms as f64 / 1000.0)
        .collect();
    let page =
        crate::output::report::render(&docs, &m.merkle_root, timings.then_some(latency.as_slice()));
    std::fs::write(out, &page).with_context(|| format!("{}: cannot write", out.display()))?;
    let listed = m
        .documents
        .iter()
        .find(|d| d.file == crate::output::REPORT)
        .map(|d| d.sha256 == sha256_hex(page.as_bytes()));
    Ok(listed)
}

/// Audits the shards of `manifest_path` against a rebuild from `db`.
pub async fn audit(manifest_path: &Path, db: &Path) -> Result<AuditReport> {
    let m: Manifest = read_manifest(manifest_path)?;
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let corpus = Corpus::open_existing(db)?;
    let mut report = AuditReport::default();
    let integrity = corpus.verify()?;
    for b in &integrity.corrupt_blobs {
        report.problems.push(format!(
            "corpus blob {b}: its bytes no longer hash to its id"
        ));
    }
    for s in &integrity.corrupt_snapshots {
        report.problems.push(format!(
            "corpus snapshot {s}: its entries no longer hash to its id"
        ));
    }
    report.checked.push(format!(
        "corpus: {} blobs, {} snapshots",
        integrity.blobs_checked, integrity.snapshots_checked
    ));
    let spec = match (&m.pipeline, &m.reshard) {
        (Some(p), _) => serde_json::to_value(p)?,
        (None, Some(r)) => serde_json::to_value(&r.spec)?,
        (None, None) => anyhow::bail!(
            "{}: the manifest has neither a pipeline nor a reshard spec",
            manifest_path.display()
        ),
    };
    let pipeline_sha = sha256_hex(crate::digest::canonical_json(&spec).as_bytes());
    if pipeline_sha != m.pipeline_sha256 {
        report.problems.push(format!(
            "pipeline: the embedded config hashes to {pipeline_sha}, the manifest says {}",
            m.pipeline_sha256
        ));
    }
    let corpus = Arc::new(Mutex::new(corpus));
    let rebuilt = rebuild(&m, db, corpus.clone()).await;
    let (rows, rebuilt_manifest, per, docs) = match rebuilt {
        Ok(b) => b,
        Err(e) => {
            report
                .problems
                .push(format!("rebuild from the corpus failed: {e:#}"));
            return Ok(report);
        }
    };
    if let (Some(want), Some(got)) = (&m.reshard, &rebuilt_manifest.reshard) {
        if want.imports_sha256 != got.imports_sha256
            || want.references_sha256 != got.references_sha256
        {
            report.problems.push(format!(
                "stored trajectories: {} imports (sha256 {}) now, {} (sha256 {}) in the manifest",
                got.imports, got.imports_sha256, want.imports, want.imports_sha256
            ));
        }
    }
    for (k, p) in &m.plugins {
        match rebuilt_manifest.plugins.get(k) {
            Some(q) if q.sha256 == p.sha256 => {}
            Some(q) => report.problems.push(format!(
                "plugin {k} ({}): sha256 {} now, {} in the manifest",
                p.source, q.sha256, p.sha256
            )),
            None => report
                .problems
                .push(format!("plugin {k}: not in the rebuild")),
        }
    }
    if rebuilt_manifest.tokenizer != m.tokenizer {
        report.problems.push(format!(
            "tokenizer: {:?} now, {:?} in the manifest",
            rebuilt_manifest.tokenizer, m.tokenizer
        ));
    }
    if rebuilt_manifest.exchanges != m.exchanges {
        report.problems.push(format!(
            "recorded exchanges: {:?} now, {:?} in the manifest",
            rebuilt_manifest.exchanges, m.exchanges
        ));
    }
    let c = corpus.lock().expect("corpus lock");
    let n = rows.len();
    let plan = rows.shard_plan(per);
    if plan.len() != m.shards.len() || n != m.rows {
        report.problems.push(format!(
            "rebuild has {} rows in {} shards, the manifest {} rows in {} shards",
            n,
            plan.len(),
            m.rows,
            m.shards.len()
        ));
    }
    let mut infos: Vec<ShardInfo> = Vec::new();
    for (i, want) in m.shards.iter().enumerate() {
        let range = match plan.get(i) {
            Some((name, range)) if *name == want.file => range.clone(),
            Some((name, _)) => {
                report.problems.push(format!(
                    "{}: the rebuild names this shard {name}",
                    want.file
                ));
                0..0
            }
            None => 0..0,
        };
        let raw = crate::shards::files::shard_raw(&rows, range.clone())?;
        let packed = compress(&raw)?;
        let info = ShardInfo {
            file: want.file.clone(),
            rows: range.len(),
            raw_sha256: sha256_hex(&raw),
            raw_bytes: raw.len() as u64,
            sha256: sha256_hex(&packed),
        };
        let path = dir.join(&want.file);
        let on_disk =
            std::fs::read(&path).with_context(|| format!("{}: cannot read", path.display()));
        match on_disk {
            Err(e) => report.problems.push(format!("{e:#}")),
            Ok(bytes) if sha256_hex(&bytes) != want.sha256 => {
                let detail = match zstd::decode_all(&bytes[..]) {
                    Ok(disk_raw) => first_difference(&c, &raw, &disk_raw),
                    Err(e) => format!("it does not decompress ({e})"),
                };
                report.problems.push(format!(
                    "{}: sha256 {} on disk, {} in the manifest; {detail}",
                    want.file,
                    sha256_hex(&bytes),
                    want.sha256
                ));
            }
            Ok(_) => report
                .checked
                .push(format!("{}: file matches the manifest", want.file)),
        }
        if info.raw_sha256 != want.raw_sha256
            || info.sha256 != want.sha256
            || info.rows != want.rows
        {
            let disk_raw = std::fs::read(&path)
                .ok()
                .and_then(|b| zstd::decode_all(&b[..]).ok())
                .unwrap_or_default();
            report.problems.push(format!(
                "{}: the rebuild differs from the manifest (raw sha256 {} vs {}); {}",
                want.file,
                info.raw_sha256,
                want.raw_sha256,
                first_difference(&c, &disk_raw, &raw)
            ));
        } else {
            report.checked.push(format!(
                "{}: rebuilt byte for byte ({} rows)",
                want.file, info.rows
            ));
        }
        infos.push(info);
    }
    let root = merkle_root_hex(&m.shards)?;
    if root != m.merkle_root {
        report.problems.push(format!(
            "merkle root: {root} from the listed shards, {} in the manifest",
            m.merkle_root
        ));
    }
    // The card and the report, from the rebuilt rows' facts and the rebuilt shards' root.
    let rebuilt_root = merkle_root_hex(&infos)?;
    let documents = crate::output::render_documents(&docs, &rebuilt_root);
    for want in &m.documents {
        let Some((_, bytes)) = documents.iter().find(|(name, _)| *name == want.file) else {
            report
                .problems
                .push(format!("{}: the rebuild makes no such document", want.file));
            continue;
        };
        let got = sha256_hex(bytes);
        if got != want.sha256 {
            report.problems.push(format!(
                "{}: the rebuild hashes to {got}, the manifest says {}",
                want.file, want.sha256
            ));
        } else {
            report
                .checked
                .push(format!("{}: rebuilt byte for byte", want.file));
        }
        let path = dir.join(&want.file);
        match std::fs::read(&path) {
            Err(e) => report
                .problems
                .push(format!("{}: cannot read ({e})", path.display())),
            Ok(b) if sha256_hex(&b) != want.sha256 => report.problems.push(format!(
                "{}: sha256 {} on disk, {} in the manifest",
                want.file,
                sha256_hex(&b),
                want.sha256
            )),
            Ok(_) => report
                .checked
                .push(format!("{}: file matches the manifest", want.file)),
        }
    }
    Ok(report)
}

/// `sera-host explain ROW_ID`: the stored provenance chain of a row (id or unique prefix).
/// The provenance with, for each rollout that ran commands, its environment and every command
/// as recorded: `None` when no rollout of it ran any.
fn with_execs(corpus: &Corpus, provenance: &str) -> Result<Option<serde_json::Value>> {
    let mut v: serde_json::Value = match serde_json::from_str(provenance) {
        Ok(v) => v,
        Err(_) => return Ok(None),
    };
    let mut any = false;
    for stage in ["rollout1", "rollout2"] {
        let Some(id) = v[stage]["id"].as_str().map(String::from) else {
            continue;
        };
        let Some(row) = corpus.rollout(&id)? else {
            continue;
        };
        let t: serde_json::Value = serde_json::from_slice(&corpus.blob(&row.trajectory)?)?;
        let env = &t["environment"];
        let Some(keys) = env["execs"].as_array() else {
            continue;
        };
        any = true;
        let mut commands = Vec::new();
        for key in keys.iter().filter_map(|k| k.as_str()) {
            let Some(rec) = corpus.exec(key)? else {
                commands.push(serde_json::json!({"key": key, "recorded": false}));
                continue;
            };
            let output = crate::exec::clean_output(&corpus.blob(&rec.output)?);
            let head: Vec<&str> = output.lines().take(20).collect();
            commands.push(serde_json::json!({
                "key": key,
                "command": rec.command,
                "exit_code": rec.exit_code,
                "signal": rec.signal,
                "timed_out": rec.timed_out,
                "truncated": rec.truncated,
                "duration_ms": rec.duration_ms,
                "tree_before": rec.tree_before,
                "tree_after": rec.tree_after,
                "changes": rec.changes.iter().map(|(p, m, b)| serde_json::json!({"path": p, "mode": format!("{m:o}"), "blob": b})).collect::<Vec<_>>(),
                "output_head": head.join("\n"),
            }));
        }
        let mut environment = env.clone();
        if let Some(o) = environment.as_object_mut() {
            o.remove("execs");
        }
        v[stage]["environment"] = environment;
        v[stage]["commands"] = serde_json::Value::Array(commands);
    }
    Ok(any.then_some(v))
}

pub fn explain(db: &Path, row: &str) -> Result<String> {
    let corpus = Corpus::open_existing(db)?;
    if let Some((_, p)) = corpus.row_provenance(row)? {
        let text = String::from_utf8(p)?;
        return Ok(match with_execs(&corpus, &text)? {
            Some(v) => serde_json::to_string_pretty(&v)?,
            None => text,
        });
    }
    // Rows of `sera-host shards` are named by the import they came from.
    match corpus.import_by_prefix(row)? {
        Some(v) => Ok(serde_json::to_string_pretty(&v)?),
        None => anyhow::bail!("no shard row or import {row} in {}", db.display()),
    }
}
