//! The line-recall verifier through WASM (single calls and batches) against the same algorithm
//! compiled natively, on realistic pairs: `git`-style unified diffs over real Python source (the
//! interpreter's `textwrap.py`) with 10, 50 and 200 change lines in P1 and a P2 that repeats 70%
//! of P1's edits and makes others. Also: instantiation from the pre-instance.
//!
//! Run: `cargo bench -p sera-host --bench verifier`. After criterion's groups it prints a summary
//! measured in one interleaved run (pairs/s and the WASM/native ratio), the numbers in README.md.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use line_recall_core::{line_recall, Mode};
use sera_host::plugin::{Limits, PatchPair, PluginEngine, PluginSource, Verifier};

const SIZES: [usize; 3] = [10, 50, 200];
const BATCH: usize = 100;

fn python_source() -> String {
    let out = Command::new("python3")
        .args(["-c", "import textwrap; print(textwrap.__file__)"])
        .output()
        .expect("python3 is needed for the benchmark's real source file");
    let path = String::from_utf8(out.stdout).unwrap();
    std::fs::read_to_string(path.trim()).expect("read textwrap.py")
}

/// Rewrites the given lines the way a model might (a changed expression, kept indentation).
fn edit(source: &str, lines: &[usize], variant: &str) -> String {
    source
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if lines.contains(&i) {
                format!("{l}  # {variant} {}", i % 7)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn unified(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header("a/textwrap.py", "b/textwrap.py")
        .to_string()
}

/// P1 with `changes` change lines: blocks of 5 consecutive rewritten lines (10 change lines
/// each, one hunk), spread over the file, the way an agent rewrites a few places. P2 rewrites 70%
/// of the same lines identically and as many other lines next to the blocks. `shift` moves every
/// block down that many code lines: pairs of other lines, of the same shape.
fn pair(source: &str, changes: usize, shift: usize) -> PatchPair {
    let code: Vec<usize> = source
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, _)| i)
        .collect();
    let modified = changes / 2;
    let blocks = modified.div_ceil(5);
    let stride = code.len() / blocks;
    assert!(
        stride >= 10,
        "the source is too short for {changes} change lines"
    );
    let shift = shift % (stride - 9);
    let p1_lines: Vec<usize> = (0..modified)
        .map(|k| code[(k / 5) * stride + shift + k % 5])
        .collect();
    let shared = modified * 7 / 10;
    let mut p2_lines: Vec<usize> = p1_lines[..shared].to_vec();
    p2_lines.extend(
        (0..modified - shared).map(|k| code[(k % blocks) * stride + shift + 5 + k / blocks]),
    );
    let p1 = unified(source, &edit(source, &p1_lines, "fix"));
    let p2 = unified(source, &edit(source, &p2_lines, "fix"));
    let r = line_recall(&p1, &p2, Mode::Hunks).unwrap();
    assert_eq!(
        r.total as usize, changes,
        "P1 must have {changes} change lines"
    );
    PatchPair {
        reference: p1,
        candidate: p2,
    }
}

fn verifier(engine: &PluginEngine) -> Verifier {
    let plugin = engine
        .load(&PluginSource::parse("builtin:line-recall").unwrap())
        .unwrap();
    Verifier::new(engine, &plugin, "{}", Limits::default()).unwrap()
}

fn benches(c: &mut Criterion) {
    let source = python_source();
    let engine = PluginEngine::new(None).unwrap();
    let mut v = verifier(&engine);
    for changes in SIZES {
        let p = pair(&source, changes, 0);
        let mut g = c.benchmark_group(format!("line_recall/{changes}_lines"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("native", |b| {
            b.iter(|| {
                line_recall(
                    black_box(&p.reference),
                    black_box(&p.candidate),
                    Mode::Hunks,
                )
                .unwrap()
            })
        });
        g.bench_function("wasm_single", |b| {
            b.iter(|| v.verify("bench", black_box(&p)).unwrap())
        });
        let pairs = vec![p.clone(); BATCH];
        let items: Vec<String> = (0..BATCH).map(|i| i.to_string()).collect();
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function(format!("wasm_batch_{BATCH}"), |b| {
            b.iter(|| v.verify_batch(&items, black_box(&pairs)))
        });
        g.finish();
    }
    c.bench_function("instantiate_from_pre", |b| {
        b.iter(|| v.instantiate_once().unwrap())
    });
}

/// Median time per pair of `f` over `rounds` rounds of `n` calls.
fn per_pair(rounds: usize, n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed() / n as u32
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Native and WASM timed alternately in the same run, so machine noise hits both alike.
fn summary() {
    let source = python_source();
    let engine = PluginEngine::new(None).unwrap();
    let mut v = verifier(&engine);
    println!("\nsummary (median of interleaved rounds, one thread):");
    println!(
        "{:>8} {:>14} {:>14} {:>14} {:>12} {:>12} {:>16}",
        "changes",
        "native/pair",
        "wasm single",
        "wasm batch",
        "batch pairs/s",
        "batch/native",
        "varied batch"
    );
    for changes in SIZES {
        let p = pair(&source, changes, 0);
        let pairs = vec![p.clone(); BATCH];
        // The same pair a hundred times trains the branch predictor on its bytes; a batch of
        // pairs that each differ is what a rescore scores.
        let varied: Vec<PatchPair> = (0..BATCH).map(|k| pair(&source, changes, k)).collect();
        let items: Vec<String> = (0..BATCH).map(|i| i.to_string()).collect();
        let (mut nat, mut single, mut batch, mut mixed) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..15 {
            nat.extend(per_pair(1, 2000, || {
                black_box(line_recall(&p.reference, &p.candidate, Mode::Hunks).unwrap());
            }));
            single.extend(per_pair(1, 2000, || {
                black_box(v.verify("s", &p).unwrap());
            }));
            batch.extend(
                per_pair(1, 20, || {
                    black_box(v.verify_batch(&items, &pairs));
                })
                .into_iter()
                .map(|d| d / BATCH as u32),
            );
            mixed.extend(
                per_pair(1, 20, || {
                    black_box(v.verify_batch(&items, &varied));
                })
                .into_iter()
                .map(|d| d / BATCH as u32),
            );
        }
        let (nat, single, batch, mixed) =
            (median(nat), median(single), median(batch), median(mixed));
        println!(
            "{changes:>8} {:>12.2}µs {:>12.2}µs {:>12.2}µs {:>12.0} {:>11.2}x {:>14.2}µs",
            nat.as_secs_f64() * 1e6,
            single.as_secs_f64() * 1e6,
            batch.as_secs_f64() * 1e6,
            1.0 / batch.as_secs_f64(),
            batch.as_secs_f64() / nat.as_secs_f64(),
            mixed.as_secs_f64() * 1e6,
        );
    }
    let inst = median(per_pair(15, 200, || v.instantiate_once().unwrap()));
    println!(
        "instantiate from pre-instance: {:.1}µs",
        inst.as_secs_f64() * 1e6
    );
}

criterion_group! {
    name = group;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = benches
}

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
