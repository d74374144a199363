//! The `sera-host` binary: verify on real patches, plugin inspect, and bad input that must give
//! an error naming the file and line, a non-zero exit code and no panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn sera_host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sera-host"))
        .args(args)
        .env(
            "SERA_HOST_CACHE_DIR",
            std::env::temp_dir().join("sera-host-test-cache"),
        )
        .output()
        .expect("sera-host runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn example(name: &str) -> String {
    repo_root()
        .join("corpora/examples")
        .join(name)
        .display()
        .to_string()
}

fn shared_fixture(rel: &str) -> PathBuf {
    repo_root().join("../shared/fixtures").join(rel)
}

#[test]
fn verify_example_patches() {
    let out = sera_host(&[
        "verify",
        &example("textwrap-p1.patch"),
        &example("textwrap-p2.patch"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("score 0.5000 (2/4 matched)"),
        "{}",
        stdout(&out)
    );

    let out = sera_host(&[
        "verify",
        "--json",
        "--plugin",
        &dist("line-recall.wasm").display().to_string(),
        &example("textwrap-p1.patch"),
        &example("textwrap-p2.patch"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["score"], 0.5);
    assert_eq!(v["matched"], 2);
    assert_eq!(v["total"], 4);
}

/// A real SWE-bench task: GPT-4's submitted patch (SWE-agent) scored against the gold patch.
#[test]
fn verify_swe_agent_patch_against_gold_patch() {
    let instance: serde_json::Value = serde_json::from_slice(
        &std::fs::read(shared_fixture(
            "trajectories/swe-agent/pydicom__pydicom-1458.instance.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gold = dir.path().join("gold.patch");
    std::fs::write(&gold, instance["patch"].as_str().unwrap()).unwrap();
    let agent = shared_fixture("trajectories/swe-agent/pydicom__pydicom-1458.patch");
    let run = |config: &str| {
        let out = sera_host(&[
            "verify",
            "--json",
            "--config",
            config,
            gold.to_str().unwrap(),
            agent.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()
    };
    let hunks = run("{}");
    let sera = run(r#"{"compat":"sera"}"#);
    // The agent removed the same 'BitsAllocated' line as the gold patch and nothing else of it.
    assert_eq!(hunks["matched"], 1, "{hunks}");
    assert_eq!(
        hunks["total"], sera["total"],
        "no '---' change lines here, so both modes agree"
    );
    assert_eq!(hunks["matched"], sera["matched"]);
    let total = hunks["total"].as_u64().unwrap();
    assert_eq!(total, 18, "{hunks}");
    assert_eq!(hunks["score"].as_f64().unwrap(), 1.0 / total as f64);
}

#[test]
fn inspect_prints_world_and_refuses_non_components() {
    let out = sera_host(&["plugin", "inspect", "builtin:line-recall"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("world:   sera:plugin/verifier@0.1.0"),
        "{text}"
    );
    assert!(text.contains("sha256:  "), "{text}");
    assert!(text.contains("sera:plugin/verify@0.1.0#verify"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = sera_host(&["plugin", "inspect", core.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("core.wasm"), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a component"), "{}", stderr(&out));
}

fn bad_input(dir: &Path, name: &str, bytes: &[u8], expected: &[&str]) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    for args in [
        vec![
            "verify",
            path.to_str().unwrap(),
            &example("textwrap-p2.patch"),
        ],
        vec![
            "verify",
            &example("textwrap-p1.patch"),
            path.to_str().unwrap(),
        ],
    ] {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let out = sera_host(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        for e in expected {
            assert!(err.contains(e), "{name}: expected {e:?} in {err}");
        }
    }
}

#[test]
fn bad_inputs_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bad_input(
        d,
        "empty.patch",
        b"",
        &["empty.patch: empty file; expected a unified diff"],
    );
    bad_input(d, "blank.patch", b"\n  \n", &["blank.patch: empty file"]);
    bad_input(
        d,
        "binary.patch",
        b"--- a/f\n+++ b/f\n\x00\x01\x02",
        &["binary.patch:3: binary file (NUL byte at byte offset 16)"],
    );
    bad_input(
        d,
        "latin1.patch",
        b"--- a/f\n+++ b/f\n@@ -1 +1 @@\n-caf\xe9\n+cafe\n",
        &["latin1.patch:4: not UTF-8 text"],
    );
    bad_input(
        d,
        "prose.patch",
        b"This is a description of a change,\nnot the change itself.\n",
        &[
            "prose.patch:1: expected a unified diff",
            "found 'This is a description",
        ],
    );
    bad_input(
        d,
        "header.patch",
        b"diff --git a/f.py b/f.py\n--- a/f.py\n+++ b/f.py\n@@ -1,2 +1,two @@\n-a\n+b\n",
        &[
            "header.patch:4: expected a hunk header '@@ -START[,COUNT] +START[,COUNT] @@'",
            "found '@@ -1,2 +1,two @@'",
        ],
    );
    bad_input(
        d,
        "short.patch",
        b"--- a/f.py\n+++ b/f.py\n@@ -1,3 +1,3 @@\n x\n-a\n+b\n",
        &["short.patch:7: expected 1 more old and 1 more new lines for the hunk at line 3"],
    );
    let missing = d.join("missing.patch");
    let out = sera_host(&[
        "verify",
        missing.to_str().unwrap(),
        &example("textwrap-p2.patch"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("missing.patch: cannot read: No such file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn empty_candidate_is_no_edit_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.patch");
    std::fs::write(&empty, "").unwrap();
    let out = sera_host(&[
        "verify",
        "--allow-empty",
        "--json",
        &example("textwrap-p1.patch"),
        empty.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (v["score"].as_f64(), v["detail"].as_str()),
        (Some(0.0), Some("no edit"))
    );
}

#[test]
fn bad_config_and_plugin_failures_exit_non_zero() {
    let out = sera_host(&[
        "verify",
        "--config",
        "compat=sera",
        &example("textwrap-p1.patch"),
        &example("textwrap-p2.patch"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--config: expected a JSON object"),
        "{}",
        stderr(&out)
    );

    let out = sera_host(&[
        "verify",
        "--plugin",
        &dist("hostile.wasm").display().to_string(),
        "--config",
        r#"{"attack":"panic"}"#,
        "--json",
        &example("textwrap-p1.patch"),
        &example("textwrap-p1.patch"),
    ]);
    // The hostile guest only attacks pairs whose reference starts with "attack"; this one is honest.
    assert!(out.status.success(), "{}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    let attack = dir.path().join("attack.patch");
    std::fs::write(&attack, "attack\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n").unwrap();
    let out = sera_host(&[
        "verify",
        "--plugin",
        &dist("hostile.wasm").display().to_string(),
        "--config",
        r#"{"attack":"loop"}"#,
        "--fuel",
        "10000000",
        attack.to_str().unwrap(),
        &example("textwrap-p1.patch"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("fuel limit: the call consumed all of its 10000000 units of fuel"),
        "{}",
        stderr(&out)
    );
}
