//! Per-command cost of the sandbox over a plain spawn, side by side in one run: `bash -c true`
//! spawned plainly (stdout/stderr captured, the same environment as a sandboxed command: its
//! C.UTF-8 locale alone costs bash ~1 ms to load) against the same through `Sandbox::run`
//! (zygote fork, namespaces, private root, Landlock, seccomp, rlimits, pids cgroup, output
//! capture), with the median time of each setup step.
//!
//! 2. Rollouts with commands against rollouts without: 64 in flight over the real HTTP client
//!    against a loopback OpenAI endpoint answering after 100 ms (the scripted policy, which with
//!    `bash` runs a `python3 -c` reproduction before and after its edit: two more teacher turns
//!    per rollout), on the CPython `email` package. Reported: rollouts/s and steps/s of each and
//!    their ratios. Steps/s is the like-for-like one (each step waits one teacher turn either
//!    way); rollouts/s also pays for the two extra turns the policy spends on its commands.
//!
//! Run: cargo bench -p sera-host --bench sandbox [-- N] (N runs of part 1, default 300;
//! SERA_BENCH_EXEC_ROUNDS rounds of part 2, default 3; 0 skips it)

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sera_host::corpus::{ingest, Corpus, IngestOptions, Source};
use sera_host::exec::plan::{EnvMode, ExecPlan};
use sera_host::plugin::{Limits, PluginEngine, PluginSource, ToolsPlugin};
use sera_host::rollout::job::{find_function, function_vars};
use sera_host::rollout::{Outcome, RolloutSpec};
use sera_host::sandbox::{Layer, Prepare, Sandbox, SandboxConfig};

#[path = "support/in_flight.rs"]
mod flight;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(300);
    let helper = PathBuf::from(env!("CARGO_BIN_EXE_sera-sandbox"));
    // With SERA_HOST_SANDBOX_SKIP=layer,... the bench shows what each layer costs.
    let skipped: Vec<Layer> = std::env::var("SERA_HOST_SANDBOX_SKIP")
        .unwrap_or_default()
        .split(',')
        .filter_map(Layer::parse)
        .collect();
    // The default (the next command's sandbox made ahead of its call, taken when ready) and
    // the whole setup on each call's path, as two sandboxes side by side.
    let modes = [("prepared", Prepare::WhenReady), ("whole", Prepare::Never)];
    let sandboxes: Vec<Sandbox> = modes
        .iter()
        .map(|(_, prepare)| {
            let config = SandboxConfig {
                allow_weaker: skipped.clone(),
                prepare: *prepare,
                ..SandboxConfig::default()
            };
            Sandbox::new(helper.clone(), config).expect("the sandbox here")
        })
        .collect();
    let ws = tempfile::tempdir().unwrap();
    let env = sandboxes[0].env();
    let mut plain = Vec::new();
    let mut boxed: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
    let mut phases: Vec<Vec<(String, Vec<Duration>)>> = vec![Vec::new(); modes.len()];
    let mut took_prepared = 0;
    // Interleaved, so that noise from the shared machine hits all alike.
    for i in 0..n {
        let t = Instant::now();
        let out = Command::new("/bin/bash")
            .args(["-c", "true"])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(ws.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        plain.push(t.elapsed());
        // Each goes first as often as the other.
        for k in 0..sandboxes.len() {
            let m = (i + k) % sandboxes.len();
            let sandbox = &sandboxes[m];
            let t = Instant::now();
            let out = sandbox.run(ws.path(), "true", None).unwrap();
            assert_eq!(out.exit_code, Some(0));
            boxed[m].push(t.elapsed());
            if m == 0 && out.phases.iter().any(|(name, _)| name == "handoff") {
                took_prepared += 1;
            }
            for (name, at) in out.phases {
                match phases[m].iter_mut().find(|(n, _)| *n == name) {
                    Some((_, v)) => v.push(at),
                    None => phases[m].push((name, vec![at])),
                }
            }
        }
    }
    drop(sandboxes);
    let p = median(plain);
    for (m, (mode, _)) in modes.iter().enumerate() {
        println!("sandbox setup ({mode}), median time after the call began:");
        let mut prev = Duration::ZERO;
        for (name, at) in std::mem::take(&mut phases[m]) {
            let m = median(at);
            println!(
                "  {name:<10} {:>6.2} ms  (+{:.2})",
                m.as_secs_f64() * 1e3,
                m.saturating_sub(prev).as_secs_f64() * 1e3
            );
            prev = m;
        }
    }
    println!(
        "plain spawn (bash -c true, same env):   median {:.2} ms",
        p.as_secs_f64() * 1e3
    );
    for (m, (mode, _)) in modes.iter().enumerate() {
        let b = median(std::mem::take(&mut boxed[m]));
        println!(
            "sandboxed, every layer ({mode:<8}):   median {:.2} ms, overhead {:.2} ms",
            b.as_secs_f64() * 1e3,
            (b.as_secs_f64() - p.as_secs_f64()) * 1e3
        );
    }
    println!(
        "({n} runs each, interleaved; {took_prepared} of the {n} default calls found their sandbox prepared)"
    );
    part2();
}

/// Part 2: (rollouts/s, steps/s, commands run) of `rounds` rounds of 64 rollouts in flight.
fn in_flight(rounds: usize, with_exec: bool) -> (f64, f64, u64) {
    let in_flight = 64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let corpus = Corpus::open(&dir.path().join("bench.sqlite")).unwrap();
    let snap = ingest(
        &corpus,
        &Source::Dir(flight::stdlib_package("email")),
        &IngestOptions::default(),
    )
    .unwrap()
    .snapshot;
    let f = find_function(&corpus, &snap, "formataddr", None).unwrap();
    let corpus = Arc::new(Mutex::new(corpus));
    let plan = with_exec.then(|| {
        ExecPlan::new(
            SandboxConfig {
                timeout: Duration::from_secs(60),
                ..SandboxConfig::default()
            },
            EnvMode::Bare,
            true,
            corpus.clone(),
        )
        .expect("the sandbox here")
    });
    let engine = PluginEngine::with_default_cache().unwrap();
    let loaded = engine
        .load(&PluginSource::parse("builtin:swe-tools").unwrap())
        .unwrap();
    let tools = ToolsPlugin::new(&engine, &loaded, "{}", Limits::default()).unwrap();
    let spec = Arc::new(RolloutSpec::new("scripted", function_vars(&f)));
    let latency = Duration::from_millis(100);
    let (_server, teacher) = flight::loopback_teacher(&rt, latency, in_flight);
    let (mut rollouts, mut steps, mut wall, mut commands) = (0usize, 0u64, 0.0f64, 0u64);
    // The first round warms connections and Tokio's blocking pool; it is not counted.
    for round in 0..=rounds {
        let jobs = flight::jobs(&corpus, &snap, &tools, in_flight, |ws| {
            plan.as_ref()
                .map(|p| p.for_rollout(&snap, ws, None).unwrap().host)
        });
        let (took, done, workspaces) = flight::run_all(
            &rt,
            &corpus,
            jobs,
            teacher.clone(),
            vec![spec.clone(); in_flight],
        );
        drop(workspaces);
        let (mut n, mut ran) = (0u64, 0u64);
        for r in &done {
            assert_eq!(r.outcome, Outcome::Submitted, "{:?}", r.reason);
            n += u64::from(r.steps);
            ran += r
                .trajectory
                .messages
                .iter()
                .flat_map(|m| &m.tool_calls)
                .filter(|c| c.function.name == "bash")
                .count() as u64;
        }
        if round > 0 {
            wall += took;
            rollouts += in_flight;
            steps += n;
            commands += ran;
        }
    }
    (rollouts as f64 / wall, steps as f64 / wall, commands)
}

fn part2() {
    let rounds: usize = std::env::var("SERA_BENCH_EXEC_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    if rounds == 0 {
        return;
    }
    let (r0, s0, _) = in_flight(rounds, false);
    let (r1, s1, c1) = in_flight(rounds, true);
    println!(
        "64 rollouts in flight, 100 ms teacher, no commands:   {r0:.1} rollouts/s, {s0:.0} steps/s"
    );
    println!(
        "64 rollouts in flight, 100 ms teacher, with commands: {r1:.1} rollouts/s, {s1:.0} steps/s ({c1} bash calls in {rounds} rounds)"
    );
    println!(
        "with/without commands: steps/s {:.0}% (target >= 80%), rollouts/s {:.0}% (two more teacher turns per rollout)",
        100.0 * s1 / s0,
        100.0 * r1 / r0
    );
}
