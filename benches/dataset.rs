//! Import, rescore and reshard at scale, on inputs made by replicating the real SWE-agent
//! fixtures (../shared/fixtures/trajectories/swe-agent): SERA-format JSONL rows (the history as
//! a JSON string, as SERA releases them) and `.traj` files. Each copy differs (its task text and
//! the file paths of its patches carry the copy's number), so nothing is deduplicated away and
//! every pair is scored.
//!
//! Run: `cargo bench -p sera-host --bench dataset`. Environment:
//! - `SERA_BENCH_TRAJECTORIES` (default 20000): SERA rows; `.traj` copies are a quarter of it.
//! - `SERA_BENCH_TMP`: where inputs and the corpus go (default: the system temp dir; about
//!   2.5 GB at the default size).
//!
//! Targets (issue 6): import >= 100 MB/s of trajectory JSON on one core, rescore >= 50,000
//! pairs/s through the WASM verifier, reshard >= 150 MB/s of raw shard JSONL; peak RSS bounded.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sera_host::corpus::Corpus;
use sera_host::dataset::pairs::Reference;
use sera_host::dataset::rescore::{rescore, VerifierSpec};
use sera_host::dataset::reshard::{self, Overrides, ReshardSpec};
use sera_host::import::{import_paths, Format};
use serde_json::{json, Value};

mod support;
use support::peak_rss_mb;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/trajectories/swe-agent")
}

/// `patch` with every file path moved under `copyN/`: another patch with the same change lines.
fn moved(patch: &str, n: usize) -> String {
    let mut out = String::with_capacity(patch.len() + 64);
    for l in patch.split_inclusive('\n') {
        if l.starts_with("diff --git ") {
            out.push_str(&l.replacen(" a/", &format!(" a/copy{n}/"), 1).replacen(
                " b/",
                &format!(" b/copy{n}/"),
                1,
            ));
        } else if let Some(rest) = l.strip_prefix("--- a/") {
            out.push_str(&format!("--- a/copy{n}/{rest}"));
        } else if let Some(rest) = l.strip_prefix("+++ b/") {
            out.push_str(&format!("+++ b/copy{n}/{rest}"));
        } else {
            out.push_str(l);
        }
    }
    out
}

struct Source {
    name: String,
    doc: Value,
    /// The trajectory's patch (P2 of a SERA T2 row) and what it is scored against (P1).
    patch: String,
    target: String,
}

fn sources() -> Vec<Source> {
    let gold: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("pydicom__pydicom-1458.instance.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "traj"))
        .collect();
    names.sort();
    for p in names {
        let doc: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let submission = doc["info"]["submission"].as_str().unwrap_or("").to_string();
        let (patch, target) = if name.starts_with("pydicom") {
            (
                std::fs::read_to_string(p.with_extension("patch")).unwrap(),
                gold["patch"].as_str().unwrap().to_string(),
            )
        } else {
            (submission.clone(), submission)
        };
        out.push(Source {
            name,
            doc,
            patch,
            target,
        });
    }
    out
}

/// The history with the first user message marked as copy `n`.
fn history(doc: &Value, n: usize) -> Value {
    let mut h = doc["history"].clone();
    if let Some(m) = h
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["role"] == "user")
    {
        let c = m["content"].as_str().map(String::from);
        if let Some(c) = c {
            m["content"] = Value::String(format!("{c}\n(copy {n})"));
        }
    }
    h
}

fn write_inputs(dir: &Path, rows: usize) -> (Vec<PathBuf>, u64, Vec<PathBuf>, u64) {
    let src = sources();
    let sera_dir = dir.join("sera");
    let traj_dir = dir.join("traj");
    std::fs::create_dir_all(&sera_dir).unwrap();
    std::fs::create_dir_all(&traj_dir).unwrap();
    let per_file = 1000;
    let mut sera_files = Vec::new();
    let mut sera_bytes = 0;
    for f in 0..rows.div_ceil(per_file) {
        let path = sera_dir.join(format!("rows-{f:03}.jsonl"));
        let mut text = String::new();
        for i in f * per_file..((f + 1) * per_file).min(rows) {
            let s = &src[i % src.len()];
            let row = json!({
                "messages": history(&s.doc, i).to_string(),
                "instance_id": format!("{}-{i}", s.name),
                "rollout_patch": moved(&s.patch, i),
                "target_patch": moved(&s.target, i),
                "func_name": "f",
                "func_path": "x.py",
                "problem_statement": "replicated fixture",
                "source": "bench",
                "docker_image": "none",
            });
            text.push_str(&row.to_string());
            text.push('\n');
        }
        sera_bytes += text.len() as u64;
        std::fs::write(&path, text).unwrap();
        sera_files.push(path);
    }
    let mut traj_files = Vec::new();
    let mut traj_bytes = 0;
    for i in 0..rows / 4 {
        let s = &src[i % src.len()];
        let mut doc = s.doc.clone();
        doc["history"] = history(&s.doc, i);
        doc["info"]["submission"] = Value::String(moved(&s.patch, i));
        let text = doc.to_string();
        traj_bytes += text.len() as u64;
        let path = traj_dir.join(format!("{}-{i:06}.traj", s.name));
        std::fs::write(&path, text).unwrap();
        traj_files.push(path);
    }
    (sera_files, sera_bytes, traj_files, traj_bytes)
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test` of benches passes nothing to run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rows: usize = std::env::var("SERA_BENCH_TRAJECTORIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let tmp = std::env::var("SERA_BENCH_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dir = tempfile::tempdir_in(tmp).unwrap();
    let t = Instant::now();
    let (sera_files, sera_bytes, traj_files, traj_bytes) = write_inputs(dir.path(), rows);
    println!(
        "inputs: {rows} SERA rows in {} files ({:.0} MB), {} .traj files ({:.0} MB), written in {:.1} s",
        sera_files.len(),
        sera_bytes as f64 / 1e6,
        traj_files.len(),
        traj_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let rss0 = peak_rss_mb();
    let db = dir.path().join("corpus.sqlite");
    let corpus = Corpus::open(&db).unwrap();

    // Import, on this thread only.
    let t = Instant::now();
    let r = import_paths(&corpus, Format::Sera, &[dir.path().join("sera")], false).unwrap();
    let s = t.elapsed().as_secs_f64();
    assert_eq!(r.imported, rows);
    println!(
        "import sera: {rows} rows, {:.2} s = {:.0} MB/s of JSONL, {:.0} rows/s (one thread); peak RSS {} MB",
        s,
        sera_bytes as f64 / 1e6 / s,
        rows as f64 / s,
        peak_rss_mb()
    );
    let t = Instant::now();
    let r = import_paths(&corpus, Format::SweAgent, &[dir.path().join("traj")], false).unwrap();
    let s = t.elapsed().as_secs_f64();
    assert_eq!(r.imported, traj_files.len());
    println!(
        "import swe-agent .traj: {} files, {:.2} s = {:.0} MB/s (one thread); peak RSS {} MB",
        traj_files.len(),
        s,
        traj_bytes as f64 / 1e6 / s,
        peak_rss_mb()
    );
    let t = Instant::now();
    let r = import_paths(&corpus, Format::Sera, &[dir.path().join("sera")], false).unwrap();
    println!(
        "re-import sera (all already stored): {:.2} s, {} already there",
        t.elapsed().as_secs_f64(),
        r.existing
    );

    // Rescore: every SERA row is a T2 pair (its target patch is its P1).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let verifier = VerifierSpec::load("builtin:line-recall", &json!({})).unwrap();
    let entries = corpus.import_entries().unwrap();
    for round in [
        "first (every pair scored, verdicts stored)",
        "second (lookups)",
    ] {
        let t = Instant::now();
        let (report, _) =
            rescore(&corpus, &verifier, &Reference::P1, &entries, threads, true).unwrap();
        let s = t.elapsed().as_secs_f64();
        println!(
            "rescore {round}: {} pairs ({} scored, {} looked up) in {:.3} s = {:.0} pairs/s on {threads} threads; mean r {:.3}",
            report.pairs,
            report.scored,
            report.looked_up,
            s,
            report.pairs as f64 / s,
            report.mean.unwrap_or(0.0)
        );
    }
    let t = Instant::now();
    let (report, _) =
        rescore(&corpus, &verifier, &Reference::P1, &entries, threads, false).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "rescore without the store (as an audit): {} pairs in {:.3} s = {:.0} pairs/s",
        report.pairs,
        s,
        report.pairs as f64 / s
    );
    drop(corpus);

    // Reshard.
    for (label, render, filter) in [
        ("openai, no filters", "openai", false),
        ("hermes, no filters", "hermes", false),
        ("openai, max-patch-lines filter", "openai", true),
    ] {
        let mut spec = ReshardSpec::load(
            None,
            Overrides {
                render: Some(render.into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        if filter {
            spec.filters.push(sera_host::pipeline::config::FilterSpec {
                plugin: "builtin:max-patch-lines".into(),
                config: json!({"max": 40}),
            });
        }
        let out = dir.path().join(format!("shards-{render}-{filter}"));
        let t = Instant::now();
        let report = reshard::execute(&db, &out, &spec, threads).unwrap();
        let s = t.elapsed().as_secs_f64();
        println!(
            "reshard {label}: {} rows, {:.0} MB raw in {} shards, {:.2} s = {:.0} MB/s raw on {threads} threads; peak RSS {} MB",
            report.rows,
            report.raw_bytes as f64 / 1e6,
            report.shards,
            s,
            report.raw_bytes as f64 / 1e6 / s,
            peak_rss_mb()
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
    println!("peak RSS before the benchmark's own inputs were counted: {rss0} MB");
}
