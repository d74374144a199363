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
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sera_host::corpus::{ingest, Corpus, IngestOptions, Source};
use sera_host::plugin::{Limits, PluginEngine, PluginSource, ToolsPlugin};
use sera_host::rollout::job::{find_function, function_vars, workspace_root};
use sera_host::rollout::patch::pin_mtimes;
use sera_host::rollout::{run, RolloutSpec};
use sera_host::teacher::{OpenAiTeacher, RetryPolicy, Teacher};

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

fn email_package() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, email; print(os.path.dirname(email.__file__))",
        ])
        .output()
        .expect("python3");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
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
        &Source::Dir(email_package()),
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
        let mut jobs = Vec::new();
        for i in 0..n {
            let ws = tempfile::tempdir_in(workspace_root()).unwrap();
            let base = {
                let c = corpus.lock().unwrap();
                c.export(&snap, ws.path()).unwrap();
                c.entries(&snap).unwrap()
            };
            pin_mtimes(&base, ws.path()).unwrap();
            let session = tools.open("bench", ws.path()).unwrap();
            let mut spec = RolloutSpec::new("tiny-qwen", function_vars(&f));
            spec.step_limit = 10;
            spec.sampling.tool_choice = Some("required".into());
            spec.sampling.max_tokens = Some(96);
            spec.sampling.seed = Some(i as u64);
            jobs.push((ws, base, session, spec));
        }
        let (cpu0, t) = (cpu_time(), Instant::now());
        let (steps, tokens, _kept) = rt.block_on(async {
            let mut handles = Vec::new();
            for (ws, base, mut session, spec) in jobs {
                let (teacher, corpus) = (teacher.clone(), corpus.clone());
                handles.push(tokio::spawn(async move {
                    let blob = |b: &str| corpus.lock().unwrap().blob(b);
                    let teacher: &dyn Teacher = teacher.as_ref();
                    let r = run(
                        &spec,
                        teacher,
                        &mut session,
                        "bench",
                        ws.path(),
                        &base,
                        &blob,
                    )
                    .await
                    .unwrap();
                    let tokens: u64 = r
                        .trajectory
                        .steps
                        .iter()
                        .map(|s| s.usage.completion_tokens)
                        .sum();
                    (r.steps, tokens, ws)
                }));
            }
            let (mut s, mut tk, mut kept) = (0u64, 0u64, Vec::new());
            for h in handles {
                let (a, b, ws) = h.await.unwrap();
                s += u64::from(a);
                tk += b;
                kept.push(ws);
            }
            (s, tk, kept)
        });
        let wall = t.elapsed().as_secs_f64();
        let host = (cpu_time() - cpu0).as_secs_f64();
        println!(
            "--parallel {parallel}: {n} rollouts ({steps} steps) in {wall:.2} s = {:.2} rollouts/s, {:.0} completion tokens/s; sera-host CPU {:.3} s = {:.1}% of the wall time (target <= 2%)",
            n as f64 / wall,
            tokens as f64 / wall,
            host,
            100.0 * host / wall
        );
    }
}
