//! Per-command cost of the sandbox over a plain spawn, side by side in one run: `bash -c true`
//! spawned plainly (stdout/stderr captured) against the same through `Sandbox::run` (helper
//! re-exec, namespaces, private root, Landlock, seccomp, rlimits, pids cgroup, output capture).
//! Run: cargo bench -p sera-host --bench sandbox [-- N]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use sera_host::sandbox::{Layer, Sandbox, SandboxConfig};

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
    let config = SandboxConfig {
        allow_weaker: skipped,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(helper, config).expect("the sandbox here");
    let ws = tempfile::tempdir().unwrap();
    let (mut plain, mut boxed) = (Vec::new(), Vec::new());
    // Interleaved, so that noise from the shared machine hits both alike.
    for _ in 0..n {
        let t = Instant::now();
        let out = Command::new("/bin/bash")
            .args(["-c", "true"])
            .current_dir(ws.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        plain.push(t.elapsed());
        let t = Instant::now();
        let out = sandbox.run(ws.path(), "true", None).unwrap();
        assert_eq!(out.exit_code, Some(0));
        boxed.push(t.elapsed());
    }
    let (p, b) = (median(plain), median(boxed));
    println!(
        "plain spawn (bash -c true):      median {:.2} ms",
        p.as_secs_f64() * 1e3
    );
    println!(
        "sandboxed (every layer):         median {:.2} ms",
        b.as_secs_f64() * 1e3
    );
    println!(
        "sandbox overhead per command:    {:.2} ms ({n} runs each, interleaved)",
        (b.as_secs_f64() - p.as_secs_f64()) * 1e3
    );
}
