//! Throughput against a real llama.cpp server (`tests/llama/setup.sh` builds it and the tiny
//! model; this bench starts and stops the server itself on 127.0.0.1): rollouts/s and the
//! teacher's tokens/s with the server's `--parallel` slots at 1, 2 and 4 (sera-host's
//! concurrency matched to them), and sera-host's share of the wall time: the CPU time this
//! process spent (request building and hashing, HTTP, parsing, the WASM tools) over the wall
//! time (target ≤ 2%). The server runs on the same two cores, so its share is the rest.
//!
//! Run: eval "$(bash tests/llama/setup.sh)"; cargo bench -p sera-host --bench real_teacher
//! (SERA_BENCH_ROLLOUTS rollouts per setting, default 16).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sera_host::corpus::{ingest, Corpus, IngestOptions, Source};
use sera_host::plugin::{Limits, PluginEngine, PluginSource, ToolsPlugin};
use sera_host::rollout::job::{find_function, function_vars};
use sera_host::rollout::RolloutSpec;
use sera_host::teacher::{OpenAiTeacher, RetryPolicy};

#[path = "support/in_flight.rs"]
mod flight;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cpu_time() -> Duration {
    // SAFETY: a valid out-pointer.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn start(server: &str, model: &str, parallel: usize) -> (Server, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(server)
        .args([
            "-m",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args(["--jinja", "--parallel", &parallel.to_string()])
        .args([
            "-c",
            &(8192 * parallel).to_string(),
            "-t",
            "2",
            "--no-webui",
        ])
        .args(["--alias", "tiny-qwen"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("llama-server starts");
    let s = Server(child);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = write!(
                c,
                "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut out = String::new();
            let _ = c.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 200") {
                return (s, port);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("llama-server did not become healthy");
}

fn main() {
    let (Some(server), Some(model)) = (
        std::env::var("SERA_HOST_LLAMA_SERVER").ok(),
        std::env::var("SERA_HOST_LLAMA_MODEL").ok(),
    ) else {
        println!("no llama-server: eval \"$(bash tests/llama/setup.sh)\" first");
        return;
    };
    let n: usize = std::env::var("SERA_BENCH_ROLLOUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
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
    let engine = PluginEngine::with_default_cache().unwrap();
    let loaded = engine
        .load(&PluginSource::parse("builtin:swe-tools").unwrap())
        .unwrap();
    let tools = ToolsPlugin::new(&engine, &loaded, "{}", Limits::default()).unwrap();
    for parallel in [1usize, 2, 4] {
        let (_server, port) = start(&server, &model, parallel);
        let teacher = Arc::new(
            OpenAiTeacher::new(
                &format!("http://127.0.0.1:{port}/v1"),
                None,
                parallel,
                Duration::from_secs(120),
                RetryPolicy::default(),
            )
            .unwrap(),
        );
        let jobs = flight::jobs(&corpus, &snap, &tools, n, |_| None);
        let specs = (0..n)
            .map(|i| {
                let mut spec = RolloutSpec::new("tiny-qwen", function_vars(&f));
                spec.step_limit = 10;
                spec.sampling.tool_choice = Some("required".into());
                spec.sampling.max_tokens = Some(96);
                spec.sampling.seed = Some(i as u64);
                Arc::new(spec)
            })
            .collect();
        let cpu0 = cpu_time();
        let (wall, rollouts, workspaces) =
            flight::run_all(&rt, &corpus, jobs, teacher.clone(), specs);
        let host = (cpu_time() - cpu0).as_secs_f64();
        drop(workspaces);
        let steps: u64 = rollouts.iter().map(|r| u64::from(r.steps)).sum();
        let tokens: u64 = rollouts
            .iter()
            .flat_map(|r| &r.trajectory.steps)
            .map(|s| s.usage.completion_tokens)
            .sum();
        println!(
            "--parallel {parallel}: {n} rollouts ({steps} steps) in {wall:.2} s = {:.2} rollouts/s, {:.0} completion tokens/s; sera-host CPU {:.3} s = {:.1}% of the wall time (target <= 2%)",
            n as f64 / wall,
            tokens as f64 / wall,
            host,
            100.0 * host / wall
        );
    }
}
