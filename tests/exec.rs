//! The teacher's `bash` end to end through the binary: the demo pipeline runs real commands
//! (a `python -c` reproduction with the snapshot's environment, before and after the edit),
//! records them, and `--replay` and `audit` reproduce the shards byte for byte without running
//! anything; a missing sandbox layer is refused unless named; an environment that cannot be
//! built makes rollouts run bare and say so.

mod common;

use common::{files, ok};

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn bin() -> Command {
    common::sera_host()
}

/// The demo pipeline (commands on) with its corpus and output in `dir`; `edit` rewrites lines.
fn pipeline_in(dir: &Path, edit: &dyn Fn(&str) -> String) -> PathBuf {
    let demo =
        std::fs::read_to_string(common::repo_root().join("corpora/demo/pipeline.toml")).unwrap();
    assert!(
        demo.contains("exec = { enabled = true"),
        "the demo runs commands"
    );
    common::demo_pipeline(dir, &|l| {
        if l.starts_with("functions_per_repo") {
            "functions_per_repo = 4".into()
        } else {
            edit(l)
        }
    })
}

/// (the bash command, its observation) of every `bash` call in a row.
fn bash_calls(row: &Value) -> Vec<(String, String)> {
    let msgs = row["messages"].as_array().unwrap();
    let mut out = Vec::new();
    for m in msgs {
        for c in m["tool_calls"].as_array().into_iter().flatten() {
            if c["function"]["name"] == "bash" {
                let args: Value =
                    serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap();
                let answer = msgs
                    .iter()
                    .find(|r| r["role"] == "tool" && r["tool_call_id"] == c["id"])
                    .unwrap();
                out.push((
                    args["command"].as_str().unwrap().to_string(),
                    answer["content"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

fn exec_count(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT count(*) FROM execs", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn demo_runs_real_commands_and_replays_and_audits_without_running_any() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline_in(dir.path(), &|l| l.to_string());
    let summary = ok(bin().arg("run").arg(&p).output().unwrap());
    assert!(summary.contains("rollout 1 submitted 4"), "{summary}");
    let out = dir.path().join("out");
    let first = files(&out);
    let rows = common::shard_rows(&out);
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(
            r["tools"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["function"]["name"] == "bash"),
            "the bash spec is in every row's tools"
        );
        let calls = bash_calls(r);
        assert_eq!(calls.len(), 2, "a reproduction before and after the edit");
        assert!(calls[0].0.starts_with("cd /workspace && python -c"));
        // Real executions: the module imported from the workspace, before and after the edit.
        assert!(calls[0].1.contains("(not edited yet)"), "{}", calls[0].1);
        assert!(calls[1].1.contains("(edited)"), "{}", calls[1].1);
        let env = &r["metadata"]["environment"];
        assert!(env["env"].is_string(), "{env}");
        if env["python"] == "environment" {
            assert!(calls[0].1.contains("with the repository environment"));
        } else {
            // No uv on this machine: the rollouts say they ran bare.
            assert!(env["note"].as_str().unwrap().contains("bare interpreter"));
            assert!(calls[0].1.contains("bare interpreter"));
        }
    }
    let db = dir.path().join("demo.sqlite");
    let recorded = exec_count(&db);
    assert!(
        recorded >= 2 * rows.len() as i64 / 2,
        "{recorded} execs recorded"
    );

    // Nothing can run from here on: the helper does not exist.
    let nothing_runs = |c: &mut Command| {
        c.env("SERA_HOST_SANDBOX_HELPER", "/nonexistent/sera-host");
    };
    let mut replay = bin();
    nothing_runs(&mut replay);
    ok(replay.arg("run").arg(&p).arg("--replay").output().unwrap());
    assert!(first == files(&out), "replayed shards and manifest differ");
    let audit = |expect_ok: bool| {
        let mut c = bin();
        nothing_runs(&mut c);
        let o = c
            .arg("audit")
            .arg(out.join("manifest.json"))
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        assert_eq!(
            o.status.success(),
            expect_ok,
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    audit(true);
    assert_eq!(
        exec_count(&db),
        recorded,
        "replay and audit record nothing new"
    );

    // explain shows each command of a row's rollouts from its record.
    let row_id = rows[0]["metadata"]["row_id"].as_str().unwrap();
    let text = ok(bin()
        .args(["explain", row_id, "--db"])
        .arg(&db)
        .output()
        .unwrap());
    let v: Value = serde_json::from_str(&text).unwrap();
    let cmds = v["rollout1"]["commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 2, "{text}");
    assert!(cmds[0]["command"]
        .as_str()
        .unwrap()
        .starts_with("cd /workspace && python -c"));
    assert_eq!(cmds[0]["exit_code"], 0);
    assert!(cmds[1]["output_head"]
        .as_str()
        .unwrap()
        .contains("(edited)"));
    assert_ne!(
        cmds[0]["tree_before"], cmds[1]["tree_before"],
        "the edit came between"
    );
    assert!(v["rollout2"]["environment"]["env"].is_string());

    // Without the records, the audit cannot rebuild the rows (it never runs a command).
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM execs", [])
        .unwrap();
    audit(false);
}

#[test]
fn an_environment_that_cannot_be_built_runs_bare_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline_in(dir.path(), &|l| l.to_string());
    let envs = dir.path().join("envs");
    ok(bin()
        .arg("run")
        .arg(&p)
        .env("SERA_HOST_UV", "/nonexistent/uv")
        .env("SERA_HOST_ENVS", &envs)
        .output()
        .unwrap());
    for r in common::shard_rows(&dir.path().join("out")) {
        let env = &r["metadata"]["environment"];
        assert_eq!(env["python"], "bare interpreter", "{env}");
        assert!(
            env["note"].as_str().unwrap().contains("could not be built"),
            "{env}"
        );
        for (_, obs) in bash_calls(&r) {
            assert!(obs.contains("bare interpreter"), "{obs}");
        }
    }
    let ls = ok(bin()
        .args(["corpus", "env", "ls", "--db"])
        .arg(dir.path().join("demo.sqlite"))
        .output()
        .unwrap());
    assert!(ls.contains("failed"), "{ls}");
    assert!(ls.contains("cannot start \"/nonexistent/uv\""), "{ls}");
}

#[test]
fn a_missing_layer_refuses_the_run_unless_the_pipeline_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline_in(dir.path(), &|l| l.to_string());
    let o = bin()
        .arg("run")
        .arg(&p)
        .env("SERA_HOST_SANDBOX_SKIP", "landlock")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("landlock (skipped"), "{err}");
    assert!(
        err.contains("exec.allow_weaker = [\"landlock\"]"),
        "the message says how to accept it: {err}"
    );
    // Named: it runs.
    let p = pipeline_in(dir.path(), &|l| {
        l.replace(
            "exec = { enabled = true,",
            "exec = { enabled = true, allow_weaker = [\"landlock\"],",
        )
    });
    ok(bin()
        .arg("run")
        .arg(&p)
        .env("SERA_HOST_SANDBOX_SKIP", "landlock")
        .output()
        .unwrap());
    // sandbox check says what is missing and exits 1.
    let o = bin()
        .args(["sandbox", "check"])
        .env("SERA_HOST_SANDBOX_SKIP", "seccomp,pids")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("seccomp   MISSING"), "{text}");
    assert!(text.contains("pids      MISSING"), "{text}");
    assert!(text.contains("landlock  enforced"), "{text}");
    // A bad layer name is a config error naming the key.
    let p = pipeline_in(dir.path(), &|l| {
        l.replace(
            "exec = { enabled = true,",
            "exec = { enabled = true, allow_weaker = [\"docker\"],",
        )
    });
    let o = bin().arg("run").arg(&p).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rollout.exec.allow_weaker[0]"), "{err}");
}

#[test]
fn without_exec_the_tools_offer_no_bash() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline_in(dir.path(), &|l| {
        if l.starts_with("exec = ") {
            String::new()
        } else {
            l.to_string()
        }
    });
    ok(bin().arg("run").arg(&p).output().unwrap());
    for r in common::shard_rows(&dir.path().join("out")) {
        assert!(!r["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["function"]["name"] == "bash"));
        assert!(bash_calls(&r).is_empty());
        assert!(r["metadata"]["environment"].is_null());
    }
    assert_eq!(exec_count(&dir.path().join("demo.sqlite")), 0);
}

#[test]
fn single_rollouts_with_exec_record_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let src = dir.path().join("pkg");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(
        src.join("calc.py"),
        "def add(a, b):\n    \"\"\"Adds.\"\"\"\n    total = a + b\n    return total\n",
    )
    .unwrap();
    let snap = ok(bin()
        .args(["corpus", "ingest", "--db"])
        .arg(&db)
        .arg(&src)
        .output()
        .unwrap());
    let snap = snap.trim().to_string();
    let rollout = |teacher: &str| {
        let mut c = bin();
        c.args(["rollout", "--json", "--exec", "--exec-env", "bare", "--db"])
            .arg(&db)
            .args([
                "--snapshot",
                &snap,
                "--function",
                "add",
                "--teacher",
                teacher,
            ]);
        if teacher == "replay" {
            c.env("SERA_HOST_SANDBOX_HELPER", "/nonexistent/sera-host");
        }
        let v: Value = serde_json::from_str(&ok(c.output().unwrap())).unwrap();
        v
    };
    let live = rollout("scripted");
    assert_eq!(live["outcome"], "submitted");
    assert_eq!(exec_count(&db), 2);
    // The same rollout again: the commands are answered from their records.
    let again = rollout("scripted");
    assert_eq!(again["patch"], live["patch"]);
    assert_eq!(exec_count(&db), 2);
    let replayed = rollout("replay");
    assert_eq!(replayed["outcome"], "submitted");
    assert_eq!(replayed["patch"], live["patch"]);
    let c = rusqlite::Connection::open(&db).unwrap();
    let (out_blob, changes): (String, String) = c
        .query_row(
            "SELECT output, changes FROM execs ORDER BY recorded_at LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(changes, "[]", "a python -c reproduction changes no file");
    assert_eq!(out_blob.len(), 64);
}

#[test]
fn commands_that_change_files_are_replayed_with_their_changes() {
    // A command's file changes are part of its record: a replayed rollout sees the same files.
    use sera_host::corpus::Corpus;
    use sera_host::exec::{ExecContext, Source};
    use sera_host::plugin::ExecRequest;
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let corpus = Arc::new(Mutex::new(
        Corpus::open(&dir.path().join("c.sqlite")).unwrap(),
    ));
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("a.txt"), "one\n").unwrap();
    std::fs::write(ws.path().join("gone.txt"), "bye\n").unwrap();
    let helper = PathBuf::from(env!("CARGO_BIN_EXE_sera-host"));
    let sandbox = sera_host::sandbox::Sandbox::new(helper, Default::default()).unwrap();
    let live = ExecContext {
        source: Source::Live(Arc::new(sandbox)),
        corpus: corpus.clone(),
        env: "bare:test".into(),
        timeout_s: 10,
        scope: None,
    };
    let cmd = "echo two >> a.txt; rm gone.txt; mkdir -p sub && printf 'x' > sub/new.bin; chmod +x sub/new.bin; ln -s a.txt link; echo done";
    let mut host = live.for_workspace(ws.path(), Default::default());
    let r = host
        .run(ExecRequest {
            command: cmd.into(),
            timeout_s: None,
        })
        .unwrap();
    assert_eq!(r.output, "done\n");
    assert_eq!(r.changed, ["a.txt", "gone.txt", "link", "sub/new.bin"]);
    // A fresh copy of the workspace as it was, replayed: same answer, same files.
    let ws2 = tempfile::tempdir().unwrap();
    std::fs::write(ws2.path().join("a.txt"), "one\n").unwrap();
    std::fs::write(ws2.path().join("gone.txt"), "bye\n").unwrap();
    let replay = ExecContext {
        source: Source::Replay,
        ..live.clone()
    };
    let mut host2 = replay.for_workspace(ws2.path(), Default::default());
    let r2 = host2
        .run(ExecRequest {
            command: cmd.into(),
            timeout_s: None,
        })
        .unwrap();
    assert_eq!(r2, r);
    assert_eq!(
        std::fs::read_to_string(ws2.path().join("a.txt")).unwrap(),
        "one\ntwo\n"
    );
    assert!(!ws2.path().join("gone.txt").exists());
    assert_eq!(
        std::fs::read_link(ws2.path().join("link")).unwrap(),
        Path::new("a.txt")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(ws2.path().join("sub/new.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111);
    // Another command on the replayed workspace was never recorded: refused, nothing runs.
    let e = host2
        .run(ExecRequest {
            command: "echo never".into(),
            timeout_s: None,
        })
        .unwrap_err();
    assert!(e.contains("not recorded"), "{e}");
}
