//! `sera-host run` end to end through the binary: the demo pipeline on a real stdlib package
//! with the scripted teacher, a replayed run, audit (and what it catches), explain, resume
//! after kill -9, and config errors.

mod common;

use common::{files, ok};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

fn bin() -> Command {
    common::sera_host()
}

/// The demo pipeline with its corpus and output in `dir`, and `extra` appended.
fn pipeline_in(dir: &Path, extra: &str) -> PathBuf {
    let p = common::demo_pipeline(dir, &|l| l.to_string());
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, format!("{text}{extra}")).unwrap();
    p
}

fn run(p: &Path, args: &[&str]) -> String {
    ok(bin().arg("run").arg(p).args(args).output().unwrap())
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// RFC 6962, written out again here so the manifest is checked independently.
fn merkle(leaves: &[Vec<u8>]) -> Vec<u8> {
    let h = |parts: &[&[u8]]| {
        let mut s = Sha256::new();
        for p in parts {
            s.update(p);
        }
        s.finalize().to_vec()
    };
    match leaves.len() {
        0 => h(&[]),
        1 => h(&[&[0], &leaves[0]]),
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            h(&[&[1], &merkle(&leaves[..k]), &merkle(&leaves[k..])])
        }
    }
}

#[test]
fn demo_runs_replays_identically_audits_and_explains() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline_in(dir.path(), "");
    let summary = run(&p, &[]);
    assert!(
        summary.contains("items 12: rollout 1 submitted 12"),
        "{summary}"
    );
    assert!(summary.contains("byte-level BPE"), "{summary}");
    let out = dir.path().join("out");
    let first = files(&out);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let shards = manifest["shards"].as_array().unwrap();
    assert!(!shards.is_empty());
    let mut leaves = Vec::new();
    let mut rows = Vec::new();
    for s in shards {
        let bytes = std::fs::read(out.join(s["file"].as_str().unwrap())).unwrap();
        assert_eq!(sha(&bytes), s["sha256"].as_str().unwrap());
        let raw = zstd::decode_all(&bytes[..]).unwrap();
        assert_eq!(sha(&raw), s["raw_sha256"].as_str().unwrap());
        let lines: Vec<&str> = std::str::from_utf8(&raw).unwrap().lines().collect();
        assert_eq!(lines.len() as u64, s["rows"].as_u64().unwrap());
        assert!(lines.len() <= 8, "rows_per_shard = 8");
        for l in lines {
            rows.push(serde_json::from_str::<serde_json::Value>(l).unwrap());
        }
        leaves.push(hex::decode(s["sha256"].as_str().unwrap()).unwrap());
    }
    assert_eq!(
        hex::encode(merkle(&leaves)),
        manifest["merkle_root"].as_str().unwrap()
    );
    assert_eq!(rows.len() as u64, manifest["rows"].as_u64().unwrap());
    // Rows: OpenAI messages with tool calls (arguments as JSON strings), tools, metadata,
    // T1's then T2's (each stage its own shards, for the card's splits), each ordered by row
    // id, no duplicates.
    let ids: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["metadata"]["stage"].as_str().unwrap(),
                r["metadata"]["row_id"].as_str().unwrap(),
            )
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "rows ordered by stage and id, each once");
    for (s, (file, rows)) in shards.iter().zip(
        shards
            .iter()
            .map(|s| (s["file"].as_str().unwrap(), s["rows"].as_u64().unwrap())),
    ) {
        assert!(
            file.starts_with("shard-T1-") || file.starts_with("shard-T2-"),
            "{s}"
        );
        assert!(rows > 0);
    }
    for r in &rows {
        let m = &r["metadata"];
        assert!(["T1", "T2"].contains(&m["stage"].as_str().unwrap()));
        assert_eq!(m["teacher_model"], "scripted");
        assert!(m["truncation_ratio"].as_f64().unwrap() >= 0.88);
        let msgs = r["messages"].as_array().unwrap();
        assert_eq!(msgs[0]["role"], "system");
        let call = msgs
            .iter()
            .find_map(|m| m["tool_calls"].as_array())
            .expect("a tool call");
        assert!(call[0]["function"]["arguments"].is_string());
        assert!(r["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["function"]["name"] == "str_replace_editor"));
        if m["stage"] == "T2" {
            assert_eq!(m["r"], 1.0);
            assert!(msgs[1]["content"]
                .as_str()
                .unwrap()
                .contains("<pr_description>"));
        }
    }
    assert!(rows.iter().any(|r| r["metadata"]["stage"] == "T1"));
    for key in [
        "pipeline_sha256",
        "plugins",
        "snapshots",
        "exchanges",
        "tool_versions",
        "tokenizer",
    ] {
        assert!(!manifest[key].is_null(), "manifest has {key}");
    }
    assert!(manifest["exchanges"]["count"].as_u64().unwrap() > 12);

    // A replayed run (recorded exchanges only) writes the same bytes.
    run(&p, &["--replay"]);
    assert!(first == files(&out), "replayed shards and manifest differ");

    let db = dir.path().join("demo.sqlite");
    let audit = |expect_ok: bool| {
        let o = bin()
            .args(["audit"])
            .arg(out.join("manifest.json"))
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert_eq!(
            o.status.success(),
            expect_ok,
            "{text}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        text
    };
    assert!(audit(true).contains("audit passed"));

    // explain: the provenance of a row, by a prefix of its id.
    let id = ids[0].1;
    let explained = ok(bin()
        .args(["explain", &id[..12], "--db"])
        .arg(&db)
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_str(&explained).unwrap();
    assert_eq!(v["row_id"], id);
    assert!(v["rollout1"]["exchanges"].as_array().unwrap().len() >= 4);
    assert!(v["pr"].as_str().unwrap().contains("Steps to reproduce"));

    // One flipped byte in a shard: named, with the first differing row.
    let shard = out.join(shards[0]["file"].as_str().unwrap());
    let good = std::fs::read(&shard).unwrap();
    let raw = zstd::decode_all(&good[..]).unwrap();
    let text = String::from_utf8(raw.clone()).unwrap();
    let second_row_at = text.find('\n').unwrap() + 1;
    let flip_at = second_row_at + text[second_row_at..].find("\"role\"").unwrap() + 2;
    let mut bad_raw = raw.clone();
    bad_raw[flip_at] ^= 0x01;
    std::fs::write(&shard, zstd::bulk::compress(&bad_raw, 3).unwrap()).unwrap();
    let report = audit(false);
    assert!(
        report.contains(&format!(
            "MISMATCH: {}",
            shards[0]["file"].as_str().unwrap()
        )),
        "{report}"
    );
    assert!(report.contains("first differing row: #1"), "{report}");
    assert!(report.contains("provenance:"), "{report}");
    std::fs::write(&shard, &good).unwrap();
    assert!(audit(true).contains("audit passed"));

    // One flipped byte in a corpus blob (a file of the snapshot): named.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (blob, data): (String, Vec<u8>) = conn
        .query_row(
            "SELECT b.id, b.data FROM blobs b JOIN functions f ON f.blob = b.id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let mut flipped = data.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x20;
    conn.execute(
        "UPDATE blobs SET data = ?1 WHERE id = ?2",
        rusqlite::params![flipped, blob],
    )
    .unwrap();
    let report = audit(false);
    assert!(report.contains(&format!("corpus blob {blob}")), "{report}");
    conn.execute(
        "UPDATE blobs SET data = ?1 WHERE id = ?2",
        rusqlite::params![data, blob],
    )
    .unwrap();
}

/// Kills `sera-host run` with SIGKILL at pseudo-random moments, at least ten times, then lets
/// it finish: the shards and manifest equal those of an uninterrupted run.
#[test]
fn resume_after_kill_9_gives_the_same_bytes() {
    let clean = tempfile::tempdir().unwrap();
    let p = pipeline_in(clean.path(), "");
    let t = std::time::Instant::now();
    run(&p, &[]);
    let mut full = t.elapsed();
    let want = files(&clean.path().join("out"));

    let dir = tempfile::tempdir().unwrap();
    let p = pipeline_in(dir.path(), "");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill schedule seed {seed}");
    let mut x = seed | 1;
    let mut kills = 0;
    let mut finished_early = 0;
    while kills < 10 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Anywhere from the start to a bit past a whole uninterrupted run.
        let at = Duration::from_micros(x % (full.as_micros() as u64 * 6 / 5 + 1));
        let mut child = bin()
            .arg("run")
            .arg(&p)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        match child.try_wait().unwrap() {
            Some(_) => {
                // The first run may have been slowed by other tests; the window shrinks until
                // kills land inside runs.
                finished_early += 1;
                full = full * 3 / 4;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
            }
        }
        assert!(finished_early < 50, "runs keep finishing before the kill");
    }
    run(&p, &[]);
    assert!(
        want == files(&dir.path().join("out")),
        "resumed output differs from an uninterrupted run (seed {seed})"
    );
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline_in(dir.path(), "[bogus]\nx = 1\n");
    let o = bin().arg("run").arg(&p).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown field `bogus`") && err.contains("pipeline.toml"),
        "{err}"
    );
    let base = std::fs::read_to_string(pipeline_in(dir.path(), "")).unwrap();
    for (from, to, needle) in [
        (
            "rows_per_shard = 8",
            "rows_per_shard = 0",
            "`output.rows_per_shard`: must be at least 1",
        ),
        (
            "kind = \"scripted\"",
            "kind = \"gpt\"",
            "`teacher.kind`: \"gpt\" is not a teacher kind",
        ),
        (
            "threshold = 1.0",
            "threshold = 1.5",
            "`verify.threshold`: must be between 0 and 1",
        ),
        ("stage = \"T1\"", "stage = \"T3\"", "`mix[1].stage`"),
        ("min_lines = 5", "min_lines = \"five\"", "min_lines"),
        (
            "step_limit = 115",
            "step_limt = 115",
            "unknown field `step_limt`",
        ),
    ] {
        assert!(base.contains(from), "{from}");
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, base.replacen(from, to, 1)).unwrap();
        let o = bin().arg("run").arg(&p).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{to}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(needle) && err.contains("bad.toml"),
            "{to}: {err}"
        );
    }
}

#[test]
fn several_prompts_per_function_make_distinct_items() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(pipeline_in(dir.path(), "")).unwrap();
    let text = base
        .replacen("functions_per_repo = 12", "functions_per_repo = 3", 1)
        .replacen(
            "min_lines = 5",
            "min_lines = 5\nprompts_per_function = 3",
            1,
        );
    let p = dir.path().join("three.toml");
    std::fs::write(&p, text).unwrap();
    let summary = run(&p, &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(v["items"], 9, "{summary}");
    let db = dir.path().join("demo.sqlite");
    let conn = rusqlite::Connection::open(db).unwrap();
    // Three functions, each with three different change requests: nine first rollouts. The
    // scripted teacher's PR text depends on the function only, so the three second rollouts
    // of a function have equal inputs and are one stored rollout: three more.
    let (functions, rollouts): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(DISTINCT function), COUNT(*) FROM rollouts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((functions, rollouts), (3, 12));
}

#[test]
fn filters_are_plugins_that_drop_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(pipeline_in(dir.path(), "")).unwrap();
    let text = base
        .replacen("functions_per_repo = 12", "functions_per_repo = 4", 1)
        .replacen("config = { max = 40 }", "config = { max = 0 }", 1);
    let p = dir.path().join("strict.toml");
    std::fs::write(&p, text).unwrap();
    let summary = run(&p, &[]);
    assert!(
        summary.contains("dropped: T1 max-patch-lines: 4"),
        "{summary}"
    );
    assert!(
        summary.contains("dropped: T2 max-patch-lines: 4"),
        "{summary}"
    );
    assert!(
        summary.contains("rows: 0 T2 + 0 T1 in 0 shards"),
        "{summary}"
    );
    // A plugin of another world is refused when the pipeline starts.
    let wrong = base.replacen(
        "plugin = \"builtin:max-patch-lines\"",
        "plugin = \"builtin:line-recall\"",
        1,
    );
    std::fs::write(&p, wrong).unwrap();
    let o = bin().arg("run").arg(&p).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("implements the verifier world, not the trajectory-filter world"),
        "{err}"
    );
}
