//! `sera-host import` on the real SWE-agent trajectories in ../shared/fixtures (GPT-4 runs,
//! SWE-agent 0.x and 1.x formats) and on OpenAI JSONL, with bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sera_host::corpus::Corpus;
use sera_host::rollout::trajectory::{Role, Trajectory};

fn fixtures() -> PathBuf {
    common::repo_root().join("../shared/fixtures/trajectories/swe-agent")
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sera-host"))
}

/// `sera-host import --format FORMAT --db DB SOURCE`.
fn import(format: &str, db: &Path, source: impl AsRef<std::ffi::OsStr>) -> Output {
    bin()
        .args(["import", "--format", format, "--db"])
        .arg(db)
        .arg(source)
        .output()
        .unwrap()
}

/// Counts read straight from a .traj file: messages, and tool calls (1.x `tool_calls`, or one
/// per 0.x `action`).
fn source_counts(path: &PathBuf) -> (usize, usize) {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let h = v["history"].as_array().unwrap();
    let calls = h
        .iter()
        .filter(|m| m["role"] == "assistant")
        .map(|m| match m["tool_calls"].as_array() {
            Some(tc) => tc.len(),
            None => usize::from(m["action"].is_string()),
        })
        .sum();
    (h.len(), calls)
}

#[test]
fn every_swe_agent_fixture_imports_with_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let out = import("swe-agent", &db, fixtures());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("4 files: 4 trajectories imported"),
        "{text}"
    );
    let corpus = Corpus::open(&db).unwrap();
    let rows = corpus.imports().unwrap();
    assert_eq!(rows.len(), 4);
    for row in &rows {
        let t: Trajectory = serde_json::from_slice(&row.trajectory).unwrap();
        let (messages, calls) = source_counts(&PathBuf::from(&row.source));
        assert_eq!(t.messages.len(), messages, "{}", row.source);
        let got: usize = t.messages.iter().map(|m| m.tool_calls.len()).sum();
        assert_eq!(got, calls, "{}", row.source);
        // Every tool result answers a call made before it; arguments are JSON object texts.
        let mut made = std::collections::HashSet::new();
        for m in &t.messages {
            for c in &m.tool_calls {
                made.insert(c.id.clone());
                let args: serde_json::Value = serde_json::from_str(&c.function.arguments).unwrap();
                assert!(args.is_object(), "{}", c.function.arguments);
            }
            if m.role == Role::Tool {
                assert!(
                    made.contains(m.tool_call_id.as_ref().unwrap()),
                    "{}",
                    row.source
                );
            }
        }
        assert!(
            t.messages.iter().any(|m| m.reasoning_content.is_some()),
            "thoughts kept"
        );
        assert_eq!(row.format, "swe-agent");
        assert_eq!(row.locator, "whole file");
    }
    // pydicom: the patch is the sidecar .patch, byte for byte.
    let pydicom = rows
        .iter()
        .find(|r| r.source.ends_with("pydicom__pydicom-1458.traj"))
        .unwrap();
    let sidecar = std::fs::read(fixtures().join("pydicom__pydicom-1458.patch")).unwrap();
    assert_eq!(pydicom.patch.as_deref(), Some(&sidecar[..]));
    // 0.x actions became bash calls answered by the next observation.
    let t: Trajectory = serde_json::from_slice(&pydicom.trajectory).unwrap();
    let first = t
        .messages
        .iter()
        .find(|m| !m.tool_calls.is_empty())
        .unwrap();
    assert_eq!(first.tool_calls[0].function.name, "bash");
    assert!(first.tool_calls[0]
        .function
        .arguments
        .contains("create reproduce_bug.py"));
    // A second import of the same files adds nothing.
    let again = import("swe-agent", &db, fixtures());
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 trajectories imported, 4 already"));
}

#[test]
fn bad_input_names_file_and_place_and_keep_going_imports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixtures().join("swe-agent__test-repo-i1.traj")).unwrap();
    let files = dir.path().join("in");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("a-good.traj"), &good).unwrap();
    std::fs::write(files.join("b-truncated.traj"), &good[..good.len() / 2]).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v.as_object_mut().unwrap().remove("history");
    std::fs::write(files.join("c-no-history.traj"), v.to_string()).unwrap();
    let db = dir.path().join("c.sqlite");
    let run = |keep: bool| {
        let mut c = bin();
        c.args(["import", "--format", "swe-agent", "--db"])
            .arg(&db)
            .arg(&files);
        if keep {
            c.arg("--keep-going");
        }
        c.output().unwrap()
    };
    let o = run(false);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("b-truncated.traj:") && err.contains("not valid JSON"),
        "{err}"
    );
    let o = run(true);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    // The good file came in on the first try (each file is its own transaction).
    assert!(
        text.contains("3 files: 0 trajectories imported, 1 already in the corpus, 2 files skipped"),
        "{text}"
    );
    assert!(
        text.contains("c-no-history.traj: expected a `history` list"),
        "{text}"
    );
    assert_eq!(Corpus::open(&db).unwrap().import_count().unwrap(), 1);

    // OpenAI JSONL: a line that is not an object, and a tool result without its call.
    let jsonl = dir.path().join("rows.jsonl");
    std::fs::write(
        &jsonl,
        concat!(
            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\", \"function\": {\"name\": \"view\", \"arguments\": \"{}\"}}]}, {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"ok\"}], \"tools\": []}\n",
            "[1, 2]\n",
        ),
    )
    .unwrap();
    let o = import("openai-jsonl", &db, &jsonl);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("rows.jsonl:2: expected a JSON object with `messages`, found a list"),
        "{err}"
    );
    std::fs::write(
        &jsonl,
        "{\"messages\": [{\"role\": \"tool\", \"tool_call_id\": \"nope\", \"content\": \"x\"}]}\n",
    )
    .unwrap();
    let o = import("openai-jsonl", &db, &jsonl);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("rows.jsonl:1: messages[0]: a tool result for call id \"nope\""),
        "{err}"
    );
    // Nothing of the bad files was stored.
    assert_eq!(Corpus::open(&db).unwrap().import_count().unwrap(), 1);
}

/// Writes `row` as `sera.jsonl` in `dir` and imports it into `c.sqlite` there.
fn import_sera_row(dir: &Path, row: &serde_json::Value) -> (PathBuf, PathBuf) {
    let path = dir.join("sera.jsonl");
    std::fs::write(&path, format!("{row}\n")).unwrap();
    let db = dir.join("c.sqlite");
    let o = import("sera", &db, &path);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (path, db)
}

/// SERA's released rows carry the SWE-agent history as a JSON string; one built here from the
/// real marshmallow run imports with the same counts as the .traj, and keeps its fields.
#[test]
fn sera_rows_import_with_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let traj = fixtures().join("marshmallow-code__marshmallow-1867.traj");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&traj).unwrap()).unwrap();
    let row = serde_json::json!({
        "messages": v["history"].to_string(),
        "instance_id": "marshmallow-code__marshmallow-1867",
        "rollout_patch": v["info"]["submission"],
        "target_patch": "",
        "func_name": "TimeDelta._serialize",
        "func_path": "src/marshmallow/fields.py",
        "problem_statement": "TimeDelta serialization precision",
        "source": "test",
        "docker_image": "none",
    });
    let bad = serde_json::json!({"messages": [], "instance_id": "x"});
    let (path, db) = import_sera_row(dir.path(), &row);
    let rows = Corpus::open(&db).unwrap().imports().unwrap();
    assert_eq!(rows.len(), 1);
    let t: Trajectory = serde_json::from_slice(&rows[0].trajectory).unwrap();
    let (messages, calls) = source_counts(&traj);
    assert_eq!(t.messages.len(), messages);
    assert_eq!(
        t.messages.iter().map(|m| m.tool_calls.len()).sum::<usize>(),
        calls
    );
    assert_eq!(rows[0].locator, "line 1");
    assert_eq!(
        rows[0].instance_id.as_deref(),
        Some("marshmallow-code__marshmallow-1867")
    );
    assert_eq!(rows[0].meta["func_name"], "TimeDelta._serialize");
    assert_eq!(
        rows[0].patch.as_deref(),
        v["info"]["submission"].as_str().map(str::as_bytes)
    );
    std::fs::write(&path, format!("{row}\n{bad}\n")).unwrap();
    let o = import("sera", &db, &path);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("sera.jsonl:2: `messages` must be a JSON string"),
        "{err}"
    );
}

/// A T2 row's `target_patch` (its P1) is stored once, as a blob, not also inside the row's kept
/// source fields, and every reader puts it back; a corpus written before (schema 7, the field in
/// both) is brought to the same bytes by its migration.
#[test]
fn a_target_patch_is_stored_once_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let traj = fixtures().join("marshmallow-code__marshmallow-1867.traj");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&traj).unwrap()).unwrap();
    let p1 = v["info"]["submission"].as_str().unwrap().to_string();
    let row = serde_json::json!({
        "messages": v["history"].to_string(),
        "instance_id": "marshmallow-code__marshmallow-1867",
        "rollout_patch": v["info"]["submission"],
        "target_patch": p1,
        "func_name": "TimeDelta._serialize",
        "func_path": "src/marshmallow/fields.py",
        "problem_statement": "Précision: \"µs\"\tround\u{1F600} \\ / \u{7}",
        "source": 0.1,
        "docker_image": {"b": [1, 2.5e-7, null], "a": "z"},
    });
    let (_, db) = import_sera_row(dir.path(), &row);
    let mut expected = row.as_object().unwrap().clone();
    for k in ["messages", "instance_id", "rollout_patch"] {
        expected.remove(k);
    }
    let expected = serde_json::Value::Object(expected);

    let raw = || -> (String, String, Option<String>) {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT id, meta, target_patch FROM imports", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap()
    };
    let (id, stored, blob) = raw();
    assert!(!stored.contains("target_patch"), "{stored}");
    assert!(blob.is_some());
    let corpus = Corpus::open(&db).unwrap();
    assert_eq!(corpus.imports().unwrap()[0].meta, expected);
    assert_eq!(corpus.import_meta(&id).unwrap(), expected);
    assert_eq!(
        corpus.import_target_patch(&id).unwrap().as_deref(),
        Some(&*p1)
    );
    let shown = corpus.import_by_prefix(&id[..12]).unwrap().unwrap();
    assert_eq!(shown["source_fields"], expected);
    let entry = &corpus.import_entries().unwrap()[0];
    assert_eq!(entry.target_patch_blob, blob);
    assert_eq!(entry.func_name.as_deref(), Some("TimeDelta._serialize"));
    drop(corpus);

    // As the previous schema stored it: the whole object, target patch included.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute("UPDATE imports SET meta = ?1", [expected.to_string()])
        .unwrap();
    c.pragma_update(None, "user_version", 7).unwrap();
    drop(c);
    let corpus = Corpus::open(&db).unwrap();
    assert_eq!(
        raw().1,
        stored,
        "the migration writes what an import writes"
    );
    assert_eq!(corpus.import_meta(&id).unwrap(), expected);
    drop(corpus);
    // Fields that are not JSON (a damaged row) do not stop the migration.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute("UPDATE imports SET meta = '{not json'", [])
        .unwrap();
    c.pragma_update(None, "user_version", 7).unwrap();
    drop(c);
    Corpus::open(&db).unwrap();
    assert_eq!(raw().1, "{not json");
}

#[test]
fn mini_swe_agent_actions_become_bash_calls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("django-1.traj.json");
    let doc = serde_json::json!({
        "trajectory_format": "mini-swe-agent-1",
        "info": {"exit_status": "Submitted", "submission": "diff --git a/a.py b/a.py\n"},
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Fix the bug in a.py."},
            {"role": "assistant", "content": "THOUGHT: look first.\n\n```bash\ncat a.py\n```"},
            {"role": "user", "content": [{"type": "text", "text": "<returncode>0</returncode>"}]},
            {"role": "assistant", "content": "Done.\n\n```bash\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff\n```"},
            {"role": "user", "content": "diff --git a/a.py b/a.py"}
        ]
    });
    std::fs::write(&path, doc.to_string()).unwrap();
    let db = dir.path().join("c.sqlite");
    let o = import("mini-swe-agent", &db, dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = Corpus::open(&db).unwrap().imports().unwrap();
    let t: Trajectory = serde_json::from_slice(&rows[0].trajectory).unwrap();
    assert_eq!(t.messages.len(), 6);
    assert_eq!(
        t.messages[2].tool_calls[0].function.arguments,
        r#"{"command":"cat a.py"}"#
    );
    assert_eq!(t.messages[3].role, Role::Tool);
    assert_eq!(t.messages[3].content, "<returncode>0</returncode>");
    assert_eq!(t.messages[5].tool_call_id.as_deref(), Some("call_4"));
    assert_eq!(
        rows[0].patch.as_deref(),
        Some(&b"diff --git a/a.py b/a.py\n"[..])
    );
    assert_eq!(rows[0].instance_id.as_deref(), Some("django-1"));
}
