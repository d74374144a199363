//! Pipeline costs. 1. Items per second through every stage with the scripted teacher (no
//! teacher latency: all of it is host work — workspaces, tools, plugins, tokenizer). 2. Shard
//! writing (zstd level 3 + sha256 of raw and compressed bytes) on one core, on rows made by
//! replicating the real rows of part 1.
//!
//! Run: `cargo bench -p sera-host --bench pipeline`. SERA_BENCH_ITEMS sets part 1's items
//! per source (default 60), SERA_BENCH_SOURCES its sources (comma-separated, default
//! python-stdlib:email), SERA_BENCH_PROMPTS prompts per function (1), SERA_BENCH_SKIP_RESUME
//! skips the second, resumed build; SERA_BENCH_SHARD_MB part 2's volume (default 256). Peak
//! memory: run it under `/usr/bin/time -v`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use sera_host::corpus::Corpus;
use sera_host::pipeline::config::Pipeline;
use sera_host::pipeline::rows::{ChosenRows, RowSpill};
use sera_host::pipeline::run::Mode;
use sera_host::pipeline::shards::write_shards;
use sera_host::pipeline::{build, ingest_sources};

mod support;
use support::peak_rss_mb;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let items = env("SERA_BENCH_ITEMS", 60);
    // A bigger source for many items, e.g. the whole stdlib directory.
    let sources =
        std::env::var("SERA_BENCH_SOURCES").unwrap_or_else(|_| "python-stdlib:email".into());
    let prompts = env("SERA_BENCH_PROMPTS", 1);
    let skip_resume = std::env::var_os("SERA_BENCH_SKIP_RESUME").is_some();
    let list: Vec<String> = sources.split(',').map(|s| format!("\"{s}\"")).collect();
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let demo = std::fs::read_to_string(root.join("corpora/demo/pipeline.toml")).unwrap();
    let shared = root.join("../shared/fixtures/tokenizers");
    let text: String = demo
        .lines()
        .map(|l| {
            if l.starts_with("tokenizer = ") {
                format!(
                    "tokenizer = {{ kind = \"qwen-bpe\", dir = \"{}\", config = \"{}\", fallback_to_estimate = true }}",
                    shared.join("qwen2").display(),
                    shared.join("qwen3/tokenizer_config.json").display()
                )
            } else if l.starts_with("functions_per_repo") {
                format!("functions_per_repo = {items}\nprompts_per_function = {prompts}")
            } else if l.starts_with("sources") {
                format!("sources = [{}]", list.join(", "))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.path().join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    let p = Pipeline::load(&path).unwrap();
    let corpus = Corpus::open(&p.db).unwrap();
    let snapshots = ingest_sources(&corpus, &p.resolved).unwrap();
    let corpus = Arc::new(Mutex::new(corpus));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    let built = rt
        .block_on(build(
            p.resolved.clone(),
            corpus.clone(),
            snapshots.clone(),
            Mode::Live,
            false,
        ))
        .unwrap();
    let cold = t.elapsed().as_secs_f64();
    let n = built.summary.items;
    println!(
        "{n} items ({sources}, 2 rollouts each + self-check + PR + verify + truncate, scripted teacher, 2 workers): {cold:.2} s = {:.1} items/s, {:.1} ms wall per item; {} rows; peak RSS {} MB",
        n as f64 / cold,
        cold * 1e3 / n as f64,
        built.rows.len(),
        peak_rss_mb()
    );
    if !skip_resume {
        let t = Instant::now();
        let again = rt
            .block_on(build(
                p.resolved.clone(),
                corpus,
                snapshots,
                Mode::Live,
                false,
            ))
            .unwrap();
        let warm = t.elapsed().as_secs_f64();
        assert_eq!(built.rows.len(), again.rows.len());
        for k in 0..built.rows.len() {
            assert!(built.rows.get(k).unwrap() == again.rows.get(k).unwrap());
        }
        println!("a resumed run over the same items (all stored): {warm:.2} s");
    }
    // A sample of real rows for part 2 (all of them would make this process's memory the
    // rows', not the pipeline's).
    let real: Vec<Vec<u8>> = (0..built.rows.len().min(2000))
        .map(|k| built.rows.get(k).unwrap())
        .collect();

    // 2. Shard writing on one core.
    let target = env("SERA_BENCH_SHARD_MB", 256) << 20;
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    'fill: loop {
        for (i, r) in real.iter().enumerate() {
            // Each copy's letters shifted (escapes left alone), so that a shard holds ~3,000
            // distinct rows rather than the same 120 again and again, which zstd would
            // compress absurdly well.
            let copy = rows.len() / real.len();
            let shift = (copy % 25 + 1) as u8;
            let mut row = format!("{{\"copy\":{copy},\"i\":{i},").into_bytes();
            let mut escaped = false;
            for &b in &r[1..] {
                let out = match b {
                    _ if escaped => b,
                    b'a'..=b'z' => b'a' + (b - b'a' + shift) % 26,
                    b'A'..=b'Z' => b'A' + (b - b'A' + shift) % 26,
                    _ => b,
                };
                escaped = b == b'\\' && !escaped;
                row.push(out);
            }
            bytes += row.len() + 1;
            rows.push(row);
            if bytes >= target {
                break 'fill;
            }
        }
    }
    let out = dir.path().join("shards");
    let mut spill = RowSpill::new().unwrap();
    for r in &rows {
        spill.push(r).unwrap();
    }
    let chosen = ChosenRows::new(spill, (0..rows.len()).collect());
    let t = Instant::now();
    let shards = write_shards(&out, &chosen, 1000).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let packed: u64 = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "shard writing: {} rows, {:.0} MB raw in {} shards, {secs:.2} s = {:.0} MB/s raw on one core (target >= 150), ratio {:.1}x",
        rows.len(),
        bytes as f64 / 1e6,
        shards.len(),
        bytes as f64 / 1e6 / secs,
        bytes as f64 / packed as f64
    );
}
