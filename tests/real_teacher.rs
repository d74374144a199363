//! A real model server as the teacher: llama.cpp's `llama-server` (built from a PyPI sdist by
//! `tests/llama/setup.sh`, with a tiny GGUF model made on the spot) on 127.0.0.1. `teacher
//! check` against it, then the whole pipeline, then replay and audit with the server stopped.
//!
//! Needs `SERA_HOST_LLAMA_SERVER` and `SERA_HOST_LLAMA_MODEL` (what `eval "$(bash
//! tests/llama/setup.sh)"` exports; `.ci/run` does). Without them the tests say so and pass,
//! unless `SERA_HOST_REQUIRE_REAL_SERVER` is set, as CI sets it.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{files, ok};
use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sera-host"))
}

fn shared() -> PathBuf {
    common::repo_root().join("../shared/fixtures/tokenizers")
}

/// The server and model, or `None` (with a message) where this machine has none.
fn server_files() -> Option<(PathBuf, PathBuf)> {
    let server = std::env::var_os("SERA_HOST_LLAMA_SERVER").map(PathBuf::from);
    let model = std::env::var_os("SERA_HOST_LLAMA_MODEL").map(PathBuf::from);
    match (server, model) {
        (Some(s), Some(m)) if s.is_file() && m.is_file() => Some((s, m)),
        _ => {
            assert!(
                std::env::var_os("SERA_HOST_REQUIRE_REAL_SERVER").is_none(),
                "SERA_HOST_REQUIRE_REAL_SERVER is set but SERA_HOST_LLAMA_SERVER / SERA_HOST_LLAMA_MODEL do not name files (run: eval \"$(bash tests/llama/setup.sh)\")"
            );
            eprintln!(
                "no llama-server here (eval \"$(bash tests/llama/setup.sh)\" builds one): skipped"
            );
            None
        }
    }
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ALIAS: &str = "tiny-qwen";

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, out))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_server(dir: &Path) -> Option<Server> {
    start_server_on(dir, free_port())
}

fn start_server_on(dir: &Path, port: u16) -> Option<Server> {
    let (server, model) = server_files()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("llama-server.log"))
        .unwrap();
    let child = Command::new(server)
        .arg("-m")
        .arg(model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--jinja", "--parallel", "4", "-c", "16384", "-t", "2"])
        .args(["--no-webui", "--alias", ALIAS])
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("llama-server starts");
    let s = Server { child, port };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if get(port, "/health").is_some_and(|(code, _)| code == 200) {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "llama-server did not become healthy in 60 s: {}",
        std::fs::read_to_string(dir.join("llama-server.log")).unwrap_or_default()
    );
}

#[test]
fn teacher_check_against_llama_server() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = start_server(dir.path()) else {
        return;
    };
    let url = format!("http://127.0.0.1:{}/v1", server.port);
    let out = bin()
        .args(["teacher", "check", &url, "--json", "--concurrency", "4"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{report:#}");
    assert_eq!(report["usable"], true, "{report:#}");
    assert_eq!(report["model"], ALIAS, "{report:#}");
    assert!(
        report["context_length"].as_u64().unwrap() >= 4096,
        "{report:#}"
    );
    let required = report["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["tool_choice"] == "required")
        .unwrap();
    assert_eq!(required["calls"], "structured", "{report:#}");
    assert!(
        report["completion_tokens"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert!(report["tokens_per_s"].as_f64().unwrap() > 0.0, "{report:#}");
    // The text form says the same things.
    let text = ok(bin().args(["teacher", "check", &url]).output().unwrap());
    assert!(text.contains("verdict       usable"), "{text}");

    // A server that is not there: exit 1 with the reason.
    drop(server);
    let out = bin().args(["teacher", "check", &url]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NOT usable") && text.contains("/models"),
        "{text}"
    );
}

/// With the server stopped: `run --replay` writes the same bytes as the live run (`first`), and
/// `audit` passes.
fn replay_and_audit_offline(p: &Path, out: &Path, db: &Path, first: &[(String, Vec<u8>)]) {
    ok(bin().arg("run").arg(p).arg("--replay").output().unwrap());
    assert!(first == files(out), "replayed shards and manifest differ");
    let audit = ok(bin()
        .arg("audit")
        .arg(out.join("manifest.json"))
        .arg("--db")
        .arg(db)
        .output()
        .unwrap());
    assert!(audit.contains("audit passed"), "{audit}");
}

fn pipeline_for(dir: &Path, port: u16) -> PathBuf {
    pipeline_with(dir, port, 3)
}

fn pipeline_with(dir: &Path, port: u16, items: usize) -> PathBuf {
    pipeline_text(
        dir,
        port,
        items,
        "tool_choice = \"required\"\nmax_tokens = 96",
    )
}

/// The demo pipeline pointed at the server; `sampling` goes into `[teacher]`.
fn pipeline_text(dir: &Path, port: u16, items: usize, sampling: &str) -> PathBuf {
    let demo =
        std::fs::read_to_string(common::repo_root().join("corpora/demo/pipeline.toml")).unwrap();
    let text: String = demo
        .lines()
        .map(|l| {
            if l.starts_with("tokenizer = ") {
                format!(
                    "tokenizer = {{ kind = \"qwen-bpe\", dir = \"{}\", config = \"{}\" }}",
                    shared().join("qwen2").display(),
                    shared().join("qwen3/tokenizer_config.json").display()
                )
            } else if l.starts_with("kind = \"scripted\"") {
                format!("kind = \"openai\"\nurl = \"http://127.0.0.1:{port}/v1\"\n{sampling}\ntimeout_s = 120\nseed = 7")
            } else if l.starts_with("model = \"scripted\"") {
                format!("model = \"{ALIAS}\"")
            } else if l.starts_with("functions_per_repo") {
                format!("functions_per_repo = {items}")
            } else if l.starts_with("step_limit") {
                "step_limit = 6".into()
            } else if l.starts_with("exec = ") {
                "exec = { enabled = true, timeout_s = 10, env = \"bare\" }".into()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let p = dir.join("pipeline.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_pipeline_against_llama_server_then_replay_and_audit_with_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = start_server(dir.path()) else {
        return;
    };
    let p = pipeline_for(dir.path(), server.port);
    let summary = ok(bin().arg("run").arg(&p).output().unwrap());
    assert!(summary.contains("items 3"), "{summary}");
    let out = dir.path().join("out");
    let first = files(&out);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert!(
        manifest["exchanges"]["count"].as_u64().unwrap() >= 3,
        "{manifest:#}"
    );

    // What the server said is what the corpus holds: its model name and real usage.
    let db = dir.path().join("demo.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let outcomes: Vec<(String, String, i64)> = conn
        .prepare("SELECT outcome, model, steps FROM rollouts")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(!outcomes.is_empty());
    for (outcome, model, steps) in &outcomes {
        assert_eq!(model, ALIAS);
        assert!(
            ["submitted", "step-limit", "context-length", "token-budget"]
                .contains(&outcome.as_str()),
            "{outcome}: {outcomes:?}"
        );
        assert!(*steps >= 1);
    }
    drop(conn);
    for row in common::shard_rows(&out) {
        assert_eq!(row["metadata"]["teacher_model"], ALIAS);
    }

    // The server stopped: the replay and the audit need nothing of it.
    drop(server);
    replay_and_audit_offline(&p, &out, &db, &first);
}

#[test]
fn a_server_restarting_mid_run_is_waited_for_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(server) = start_server_on(dir.path(), port) else {
        return;
    };
    let p = pipeline_with(dir.path(), port, 10);
    let mut run = bin()
        .arg("run")
        .arg(&p)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it get going, then take the server away for a few seconds.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        run.try_wait().unwrap().is_none(),
        "the run ended before the server went away: the test needs more items"
    );
    drop(server);
    std::thread::sleep(Duration::from_secs(3));
    let _again = start_server_on(dir.path(), port).unwrap();
    let out = run.wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{summary}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every item's rollout ended in a result of the model, none in a teacher error.
    assert!(summary.contains("items 10"), "{summary}");
    let conn = rusqlite::Connection::open(dir.path().join("demo.sqlite")).unwrap();
    let failed: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM rollouts WHERE outcome = 'teacher-error'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let all: i64 = conn
        .query_row("SELECT COUNT(*) FROM rollouts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(failed, 0, "{summary}");
    assert!(all >= 10, "{summary}");
}

/// A llama.cpp grammar that makes the random model write, as text in `content` (tool_choice
/// "none" leaves the server's tool parser out, and only then does it take a grammar), a
/// Hermes tool call that creates a file and one that submits: so a rollout changes something,
/// and the pipeline goes on to PR synthesis, rollout 2 and verification, with sera-host
/// parsing the calls out of the text.
const EDIT_THEN_SUBMIT: &str = r#"root ::= create "\n" submit
create ::= "<tool_call>\n{\"name\": \"str_replace_editor\", \"arguments\": {\"command\": \"create\", \"path\": \"/workspace/NOTES.md\", \"file_text\": \"checked\\n\"}}\n</tool_call>"
submit ::= "<tool_call>\n{\"name\": \"submit\", \"arguments\": {}}\n</tool_call>""#;

#[test]
fn the_whole_pipeline_through_pr_synthesis_rollout_2_and_verification_against_llama_server() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = start_server(dir.path()) else {
        return;
    };
    let sampling = format!(
        "tool_choice = \"none\"\nmax_tokens = 200\nextra = {{ grammar = '''{EDIT_THEN_SUBMIT}''' }}"
    );
    let p = pipeline_text(dir.path(), server.port, 2, &sampling);
    let summary = ok(bin().arg("run").arg(&p).output().unwrap());
    assert!(
        summary.contains("items 2: rollout 1 submitted 2, PRs 2, rollout 2 submitted 2, scored 2"),
        "{summary}"
    );
    let out = dir.path().join("out");
    let first = files(&out);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert!(manifest["rows"].as_u64().unwrap() >= 2, "{summary}");
    let mut calls = 0;
    for row in common::shard_rows(&out) {
        assert_eq!(row["metadata"]["teacher_model"], ALIAS);
        for m in row["messages"].as_array().unwrap() {
            for c in m["tool_calls"].as_array().into_iter().flatten() {
                // Written by the model as text; a structured call in the row.
                assert!(["str_replace_editor", "submit"]
                    .contains(&c["function"]["name"].as_str().unwrap()));
                calls += 1;
            }
            // Parsed out of the assistant's text (the PR description of a T2 row, the
            // model's text too, keeps what it wrote).
            if m["role"] == "assistant" {
                assert!(!m["content"].as_str().unwrap_or("").contains("<tool_call>"));
            }
        }
    }
    assert!(calls >= 4, "{calls} tool calls in the rows");
    // The server's own accounting, recorded per exchange.
    let db = dir.path().join("demo.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (models, completion): (String, i64) = conn
        .query_row(
            "SELECT group_concat(DISTINCT model), SUM(completion_tokens) FROM exchanges",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(models, ALIAS);
    assert!(completion > 0);
    drop(conn);

    drop(server);
    replay_and_audit_offline(&p, &out, &db, &first);
}
