//! Ingest of the CPython standard library of the machine's python3 (site-packages and
//! `__pycache__` left out), end to end: hash, zstd level 3, insert, function index. Then the
//! same ingest again (nothing changed), in the same run.
//!
//! Run: `cargo bench -p sera-host --bench corpus_ingest`. Prints MB/s of source bytes read,
//! the re-ingest speed-up, the compression ratio and the process's peak RSS.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use sera_host::corpus::{ingest, Corpus, IngestOptions, Source};

mod support;
use support::peak_rss_kib;

// The allocator of the sera-host binary, so the numbers are the CLI's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, textwrap; print(os.path.dirname(textwrap.__file__))",
        ])
        .output()
        .expect("python3");
    let stdlib = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let dir = tempfile::tempdir().unwrap();
    let corpus = Corpus::open(&dir.path().join("bench.sqlite")).unwrap();
    let opts = IngestOptions {
        exclude: vec!["site-packages".into(), "__pycache__".into()],
        ..IngestOptions::default()
    };
    let source = Source::Dir(stdlib.clone());
    let t = Instant::now();
    let first = ingest(&corpus, &source, &opts).unwrap();
    let first_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let again = ingest(&corpus, &source, &opts).unwrap();
    let again_s = t.elapsed().as_secs_f64();
    assert_eq!(first.snapshot, again.snapshot);
    let stats = corpus.stats().unwrap();
    let mb = first.raw_bytes as f64 / 1e6;
    println!(
        "source: {} ({} files, {:.1} MB, {} Python files)",
        stdlib.display(),
        first.files,
        mb,
        first.python_files_parsed
    );
    println!("first ingest:     {first_s:.2} s, {:.1} MB/s", mb / first_s);
    println!(
        "unchanged again:  {again_s:.2} s, {:.1} MB/s, {:.1}x faster",
        mb / again_s,
        first_s / again_s
    );
    println!(
        "compression:      {:.2}x ({} raw bytes in {} stored)",
        stats.raw_bytes as f64 / stats.stored_bytes as f64,
        stats.raw_bytes,
        stats.stored_bytes
    );
    println!("functions:        {}", stats.functions);
    println!(
        "peak RSS:         {:.1} MiB",
        peak_rss_kib() as f64 / 1024.0
    );
}
