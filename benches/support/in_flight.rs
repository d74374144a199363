//! Rollouts in flight against an OpenAI endpoint, as `rollout`, `sandbox` and `real_teacher`
//! measure them: workspaces (exported, times pinned, a tools session each) made before the
//! clock starts and removed after it stops, every rollout a task of one runtime.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sera_host::corpus::Entry;
use sera_host::plugin::{ExecHost, ToolSession, ToolsPlugin};
use sera_host::rollout::job::{workspace_root, SharedCorpus};
use sera_host::rollout::patch::pin_mtimes;
use sera_host::rollout::{run, Rollout, RolloutSpec};
use sera_host::teacher::serve::LoopbackTeacher;
use sera_host::teacher::{OpenAiTeacher, RetryPolicy, Teacher};

/// The directory of a package of this machine's CPython standard library.
pub fn stdlib_package(module: &str) -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            &format!("import os, {module}; print(os.path.dirname({module}.__file__))"),
        ])
        .output()
        .expect("python3");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The loopback endpoint serving the scripted policy after `latency`, and a client of it with
/// `in_flight` connections and no retries.
#[allow(dead_code)] // real_teacher asks a real server
pub fn loopback_teacher(
    rt: &tokio::runtime::Runtime,
    latency: Duration,
    in_flight: usize,
) -> (LoopbackTeacher, Arc<OpenAiTeacher>) {
    rt.block_on(async {
        let server = LoopbackTeacher::start(Vec::new(), latency).await.unwrap();
        let retry = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        let t = OpenAiTeacher::new(
            &server.url(),
            None,
            in_flight,
            Duration::from_secs(60),
            retry,
        )
        .unwrap();
        (server, Arc::new(t))
    })
}

/// One rollout's workspace, ready to run.
pub struct Job {
    ws: tempfile::TempDir,
    base: Vec<Entry>,
    session: ToolSession,
}

/// `n` workspaces of `snapshot`, each with a tools session (`host(workspace)` answering its
/// commands, where it gives one).
pub fn jobs(
    corpus: &SharedCorpus,
    snapshot: &str,
    tools: &ToolsPlugin,
    n: usize,
    mut host: impl FnMut(&Path) -> Option<Box<dyn ExecHost>>,
) -> Vec<Job> {
    (0..n)
        .map(|_| {
            let ws = tempfile::tempdir_in(workspace_root()).unwrap();
            let base = {
                let c = corpus.lock().unwrap();
                c.export(snapshot, ws.path()).unwrap();
                c.entries(snapshot).unwrap()
            };
            pin_mtimes(&base, ws.path()).unwrap();
            let session = tools
                .open_with("bench", ws.path(), host(ws.path()))
                .unwrap();
            Job { ws, base, session }
        })
        .collect()
}

/// Runs every job at once, job i with `specs[i]`; returns the wall time in seconds, the
/// rollouts in job order, and their workspaces (for the caller to remove once it has read its
/// clocks).
pub fn run_all(
    rt: &tokio::runtime::Runtime,
    corpus: &SharedCorpus,
    jobs: Vec<Job>,
    teacher: Arc<dyn Teacher>,
    specs: Vec<Arc<RolloutSpec>>,
) -> (f64, Vec<Rollout>, Vec<tempfile::TempDir>) {
    let t = Instant::now();
    let (rollouts, workspaces) = rt.block_on(async {
        let mut handles = Vec::new();
        for (job, spec) in jobs.into_iter().zip(specs) {
            let (teacher, corpus) = (teacher.clone(), corpus.clone());
            handles.push(tokio::spawn(async move {
                let Job {
                    ws,
                    base,
                    mut session,
                } = job;
                let blob = |b: &str| corpus.lock().unwrap().blob(b);
                let r = run(
                    &spec,
                    teacher.as_ref(),
                    &mut session,
                    "bench",
                    ws.path(),
                    &base,
                    &blob,
                )
                .await
                .unwrap();
                (r, ws)
            }));
        }
        let (mut rollouts, mut kept) = (Vec::new(), Vec::new());
        for h in handles {
            let (r, ws) = h.await.unwrap();
            rollouts.push(r);
            kept.push(ws);
        }
        (rollouts, kept)
    });
    (t.elapsed().as_secs_f64(), rollouts, workspaces)
}
