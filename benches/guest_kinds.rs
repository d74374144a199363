//! Per-call cost of the same verifier (line recall) written as a Rust, a Python and a
//! JavaScript guest, on the same real pairs: every ordered pair of the seven real patches of the
//! SWE-agent fixtures (the GPT-4 submissions, pydicom's gold and test patches). Also: component
//! size, compilation (no cache), instantiation, fuel per call.
//!
//! Run: `bash plugins/foreign/build.sh` (builds target/foreign/line-recall-{py,js}.wasm), then
//! `cargo bench -p sera-host --bench guest_kinds`. Guests whose component is missing are listed
//! and skipped.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sera_host::plugin::{Limits, PatchPair, PluginEngine, PluginSource, Verifier};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn real_pairs() -> Vec<PatchPair> {
    let fixtures = root().join("../shared/fixtures/trajectories/swe-agent");
    let mut patches = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .expect("../shared/fixtures")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "traj"))
        .collect();
    names.sort();
    for p in names {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        if let Some(s) = v["info"]["submission"].as_str() {
            patches.push(s.to_string());
        }
    }
    patches.push(std::fs::read_to_string(fixtures.join("pydicom__pydicom-1458.patch")).unwrap());
    let inst: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures.join("pydicom__pydicom-1458.instance.json")).unwrap(),
    )
    .unwrap();
    patches.push(inst["patch"].as_str().unwrap().to_string());
    patches.push(inst["test_patch"].as_str().unwrap().to_string());
    let mut pairs = Vec::new();
    for a in &patches {
        for b in &patches {
            pairs.push(PatchPair {
                reference: a.clone(),
                candidate: b.clone(),
            });
        }
    }
    pairs
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let pairs = real_pairs();
    let names: Vec<String> = (0..pairs.len()).map(|i| format!("pair {i}")).collect();
    let guests = [
        (
            "Rust (builtin:line-recall)",
            "builtin:line-recall".to_string(),
        ),
        (
            "Python (componentize-py)",
            root()
                .join("target/foreign/line-recall-py.wasm")
                .display()
                .to_string(),
        ),
        (
            "JavaScript (componentize-js)",
            root()
                .join("target/foreign/line-recall-js.wasm")
                .display()
                .to_string(),
        ),
    ];
    println!(
        "{} real pairs (7 patches, every ordered pair); medians of 5 rounds, one thread",
        pairs.len()
    );
    println!("| guest | component | compile (no cache) | instantiate + init | verify, per call | verify-batch, per pair | fuel per call |");
    println!("|---|---|---|---|---|---|---|");
    let mut reference: Option<Vec<Option<f64>>> = None;
    for (label, spec) in guests {
        if !spec.starts_with("builtin:") && !Path::new(&spec).exists() {
            println!("| {label} | missing: run `bash plugins/foreign/build.sh` | | | | | |");
            continue;
        }
        let engine = PluginEngine::new(None).unwrap();
        let src = PluginSource::parse(&spec).unwrap();
        let size = src.bytes().unwrap().len();
        let t = Instant::now();
        let plugin = engine.load(&src).unwrap();
        let compile = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut v = Verifier::new(&engine, &plugin, "{}", Limits::default()).unwrap();
        let inst = t.elapsed().as_secs_f64() * 1e3;
        let mut single = Vec::new();
        let mut batch = Vec::new();
        let mut fuel = 0u64;
        let mut scores = Vec::new();
        for round in 0..5 {
            let t = Instant::now();
            for (n, p) in names.iter().zip(&pairs) {
                let r = v.verify(n, p).unwrap();
                if round == 0 {
                    fuel += v.last_fuel_used();
                    scores.push(r.score);
                }
            }
            single.push(t.elapsed().as_secs_f64() * 1e6 / pairs.len() as f64);
            let t = Instant::now();
            let out = v.verify_batch(&names, &pairs);
            assert!(out.iter().all(|r| r.is_ok()));
            batch.push(t.elapsed().as_secs_f64() * 1e6 / pairs.len() as f64);
        }
        single.sort_by(f64::total_cmp);
        batch.sort_by(f64::total_cmp);
        match &reference {
            None => reference = Some(scores),
            Some(r) => assert_eq!(r, &scores, "{label} scores differently"),
        }
        println!(
            "| {label} | {:.1} MB | {compile:.2} s | {inst:.2} ms | {:.1} µs | {:.1} µs | {} |",
            size as f64 / 1e6,
            single[2],
            batch[2],
            fuel / pairs.len() as u64
        );
    }
}
