//! Rollout machinery costs, teacher latency excluded.
//!
//! 1. Host overhead per step on a ~2,000-file snapshot (the machine's CPython stdlib): the
//!    scripted teacher in-process (no HTTP, no latency), so everything measured is the host:
//!    requests built and hashed, tool calls through the WASM plugin, observations, the patch
//!    of the paths the tools wrote, at submit. Materialising the workspace is a per-rollout cost, reported apart.
//! 2. Throughput against a loopback OpenAI endpoint answering after 100 ms, 256 rollouts in
//!    flight over the real HTTP client: steps/s against the ideal 256 / 0.1 s.
//!
//! Run: `cargo bench -p sera-host --bench rollout`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sera_host::corpus::{ingest, Corpus, IngestOptions, Source};
use sera_host::plugin::{Limits, PluginEngine, PluginSource, ToolsPlugin};
use sera_host::rollout::job::{find_function, function_vars, workspace_root};
use sera_host::rollout::patch::{pin_mtimes, workspace_patch};
use sera_host::rollout::{run, Outcome, RolloutSpec};
use sera_host::teacher::ScriptedTeacher;

#[path = "support/in_flight.rs"]
mod flight;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let corpus = Corpus::open(&dir.path().join("bench.sqlite")).unwrap();
    let opts = IngestOptions {
        exclude: vec!["site-packages".into(), "__pycache__".into()],
        ..IngestOptions::default()
    };
    let big = ingest(
        &corpus,
        &Source::Dir(flight::stdlib_package("textwrap")),
        &opts,
    )
    .unwrap();
    let small = ingest(
        &corpus,
        &Source::Dir(flight::stdlib_package("textwrap").join("email")),
        &IngestOptions::default(),
    )
    .unwrap();
    let corpus = Arc::new(Mutex::new(corpus));
    let engine = PluginEngine::with_default_cache().unwrap();
    let loaded = engine
        .load(&PluginSource::parse("builtin:swe-tools").unwrap())
        .unwrap();
    let tools = ToolsPlugin::new(&engine, &loaded, "{}", Limits::default()).unwrap();

    // 1. Host overhead per step (SERA_BENCH_SKIP_STEPS=1 skips it, to profile part 2 alone).
    let skip_steps = std::env::var_os("SERA_BENCH_SKIP_STEPS").is_some();
    let f = find_function(
        &corpus.lock().unwrap(),
        &big.snapshot,
        "TextWrapper._wrap_chunks",
        None,
    )
    .unwrap();
    let spec = RolloutSpec::new("scripted", function_vars(&f));
    let rounds = if skip_steps { 0 } else { 20 };
    let (mut materialise, mut host, mut steps) = (Duration::ZERO, Duration::ZERO, 0u32);
    let mut scan = Duration::ZERO;
    for _ in 0..rounds {
        let ws = tempfile::tempdir_in(workspace_root()).unwrap();
        let t = Instant::now();
        let base = {
            let c = corpus.lock().unwrap();
            c.export(&big.snapshot, ws.path()).unwrap();
            c.entries(&big.snapshot).unwrap()
        };
        pin_mtimes(&base, ws.path()).unwrap();
        let mut session = tools.open("bench", ws.path()).unwrap();
        materialise += t.elapsed();
        let blob = |b: &str| corpus.lock().unwrap().blob(b);
        let t = Instant::now();
        assert_eq!(workspace_patch(&base, ws.path(), blob).unwrap(), "");
        scan += t.elapsed();
        let r = rt
            .block_on(run(
                &spec,
                &ScriptedTeacher,
                &mut session,
                "bench",
                ws.path(),
                &base,
                &blob,
            ))
            .unwrap();
        assert_eq!(r.outcome, Outcome::Submitted);
        host += r.host_time;
        steps += r.steps;
    }
    println!(
        "snapshot: {} files, {:.1} MB; {rounds} scripted rollouts, {steps} steps",
        big.files,
        big.raw_bytes as f64 / 1e6
    );
    println!(
        "host overhead per step:        {:.3} ms (target <= 0.5 ms)",
        host.as_secs_f64() * 1e3 / f64::from(steps)
    );
    println!(
        "full scan of the workspace:    {:.2} ms (the patch's fallback when the write log is lost)",
        scan.as_secs_f64() * 1e3 / f64::from(rounds)
    );
    println!(
        "workspaces in {}; materialise per rollout:       {:.1} ms (export, pin times, tools instance)",
        workspace_root().display(),
        materialise.as_secs_f64() * 1e3 / f64::from(rounds)
    );

    // 2. 256 rollouts in flight against a 100 ms loopback teacher.
    let in_flight = 256;
    let latency = Duration::from_millis(100);
    let f = find_function(&corpus.lock().unwrap(), &small.snapshot, "formataddr", None).unwrap();
    let spec = Arc::new(RolloutSpec::new("scripted", function_vars(&f)));
    let (server, teacher) = flight::loopback_teacher(&rt, latency, in_flight);
    // The first round opens 256 connections and grows Tokio's blocking pool; the rounds after
    // it are the steady state a long pipeline runs in. SERA_BENCH_INFLIGHT_ROUNDS sets how many
    // (default 3, after the first).
    let repeats: usize = std::env::var("SERA_BENCH_INFLIGHT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut warm = Vec::new();
    for round in 0..=repeats {
        let jobs = flight::jobs(&corpus, &small.snapshot, &tools, in_flight, |_| None);
        let (wall, rollouts, workspaces) = flight::run_all(
            &rt,
            &corpus,
            jobs,
            teacher.clone(),
            vec![spec.clone(); in_flight],
        );
        drop(workspaces);
        let mut total_steps = 0;
        for r in &rollouts {
            assert_eq!(r.outcome, Outcome::Submitted, "{:?}", r.reason);
            total_steps += r.steps;
        }
        let per_rollout = total_steps as f64 / in_flight as f64;
        let ideal = in_flight as f64 / latency.as_secs_f64();
        let got = total_steps as f64 / wall;
        let share = 100.0 * got / ideal;
        let label = if round == 0 {
            "first round (cold)"
        } else {
            "steady round"
        };
        println!(
            "{in_flight} rollouts in flight, 100 ms teacher, {label}: {total_steps} steps ({per_rollout:.0} each) in {wall:.2} s = {got:.0} steps/s; ideal {ideal:.0} steps/s; {share:.0}% of ideal",
        );
        if round > 0 {
            warm.push(share);
        }
    }
    warm.sort_by(f64::total_cmp);
    if let Some(median) = warm.get(warm.len() / 2) {
        println!(
            "steady state, median of {} rounds: {median:.0}% of ideal (target >= 80%); {} requests served in all",
            warm.len(),
            server.requests()
        );
    }
}
