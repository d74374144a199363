//! A pipeline spread over workers, through the binary: `run --worker I/N` (one worker killed
//! with SIGKILL and resumed), `corpus merge` (any order, twice, conflicts, corrupt blobs, a merge
//! killed midway), `run --finalize` (byte-identical to one machine; refuses unfinished items),
//! `status`, and the Slurm and Kubernetes scripts (the Slurm worker script run by bash as a task
//! would run it; the real Slurm run is tests/slurm/run.sh).

mod common;

use common::{files, ok};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> Command {
    common::sera_host()
}

/// The demo pipeline in `dir` with more items than the demo's 12 (so that a worker can be
/// caught mid-run).
fn pipeline(dir: &Path, functions: u32) -> PathBuf {
    pipeline_prompts(dir, functions, 1)
}

/// `prompts` change requests per function: items that share their function.
fn pipeline_prompts(dir: &Path, functions: u32, prompts: u32) -> PathBuf {
    common::demo_pipeline(dir, &|l| {
        if l.starts_with("functions_per_repo") {
            format!("functions_per_repo = {functions}\nprompts_per_function = {prompts}")
        } else {
            l.to_string()
        }
    })
}

fn sera(args: &[&str]) -> String {
    ok(bin().args(args).output().unwrap())
}

fn fails(out: Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn worker_db(dir: &Path, i: u32, n: u32) -> PathBuf {
    dir.join(format!("demo.worker-{i}-of-{n}.sqlite"))
}

fn status_json(p: &Path, workers: u32) -> Value {
    let out = sera(&["status", s(p), "--workers", &workers.to_string(), "--json"]);
    serde_json::from_str(&out).unwrap()
}

/// A digest of every table's content-bearing rows, to compare two corpora (clocks and
/// ingest-log order left out).
fn content_digest(db: &Path) -> Vec<(String, i64, String)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let queries = [
        ("blobs", "SELECT id FROM blobs ORDER BY id"),
        ("snapshots", "SELECT id FROM snapshots ORDER BY id"),
        (
            "functions",
            "SELECT blob || qualname || start_line FROM functions ORDER BY 1",
        ),
        (
            "exchanges",
            "SELECT request || ' ' || sample || ' ' || response FROM exchanges ORDER BY 1",
        ),
        (
            "rollouts",
            "SELECT id || outcome || trajectory || patch FROM rollouts ORDER BY 1",
        ),
        (
            "stage_outputs",
            "SELECT key || output FROM stage_outputs ORDER BY 1",
        ),
        (
            "shard_rows",
            "SELECT id || provenance FROM shard_rows ORDER BY 1",
        ),
        (
            "execs",
            "SELECT key || output || tree_after FROM execs ORDER BY 1",
        ),
        (
            "item_progress",
            "SELECT pipeline || item FROM item_progress ORDER BY 1",
        ),
        (
            "sources",
            "SELECT DISTINCT name || origin || snapshot FROM sources ORDER BY 1",
        ),
    ];
    queries
        .iter()
        .map(|(t, q)| {
            let rows: Vec<String> = c
                .prepare(q)
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let joined = rows.join("\n");
            (
                t.to_string(),
                rows.len() as i64,
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(joined.as_bytes())),
            )
        })
        .collect()
}

/// Three workers (one SIGKILLed mid-run and resumed), merged in two orders and twice,
/// finalized: the manifest and every shard equal a one-machine run's; audit passes.
#[test]
fn three_workers_merged_and_finalized_equal_one_machine() {
    let one = tempfile::tempdir().unwrap();
    let p1 = pipeline_prompts(one.path(), 12, 2);
    sera(&["run", s(&p1), "--no-progress"]);
    let want = files(&one.path().join("out"));

    let many = tempfile::tempdir().unwrap();
    let p = pipeline_prompts(many.path(), 12, 2);
    // Worker 1, killed once some of its items are done.
    let mut child = bin()
        .args(["run", s(&p), "--worker", "1/3", "--no-progress"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let mut killed_at = None;
    while t.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if worker_db(many.path(), 1, 3).exists() {
            let st = status_json(&p, 3);
            let done = st["workers"][1]["counts"]["done"].as_u64().unwrap();
            if done > 0 {
                child.kill().unwrap();
                child.wait().unwrap();
                killed_at = Some(done);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().unwrap();
    let st = status_json(&p, 3);
    if let Some(done) = killed_at {
        let w = &st["workers"][1]["counts"];
        assert!(
            w["done"].as_u64().unwrap() < w["items"].as_u64().unwrap(),
            "worker 1 was killed after {done} items but shows all done: {st}"
        );
        assert!(!st["workers"][0]["started"].as_bool().unwrap());
    } else {
        eprintln!(
            "worker 1 finished before it could be killed; resuming a finished worker instead"
        );
    }
    for i in 0..3 {
        let out = sera(&["run", s(&p), "--worker", &format!("{i}/3"), "--no-progress"]);
        assert!(out.contains(&format!("worker {i}/3: no shards")), "{out}");
    }
    assert!(!many.path().join("out").exists(), "workers write no shards");
    let st = status_json(&p, 3);
    let items: u64 = (0..3)
        .map(|i| st["workers"][i]["counts"]["items"].as_u64().unwrap())
        .sum();
    assert_eq!(st["total"]["done"].as_u64().unwrap(), items);
    assert_eq!(items, 24, "the partitions cover the 24 items once: {st}");
    assert!((0..3).all(|i| st["workers"][i]["counts"]["items"].as_u64().unwrap() > 0));
    // Both prompts of a function went to one worker: no function was rolled out by two.
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    for i in 0..3 {
        let c = rusqlite::Connection::open(worker_db(many.path(), i, 3)).unwrap();
        let functions: Vec<String> = c
            .prepare("SELECT DISTINCT function FROM rollouts")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert!(!functions.is_empty());
        for f in functions {
            if let Some(other) = seen.insert(f.clone(), i as usize) {
                panic!("function {f} was rolled out by workers {other} and {i}");
            }
        }
    }
    assert_eq!(seen.len(), 12, "{seen:?}");

    // Finalizing before the merge names what is missing.
    let merged = many.path().join("demo.sqlite");
    let dbs: Vec<PathBuf> = (0..3).map(|i| worker_db(many.path(), i, 3)).collect();
    sera(&["corpus", "merge", s(&dbs[0]), "--db", s(&merged)]);
    let err = fails(
        bin()
            .args(["run", s(&p), "--finalize", "--no-progress"])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("are not done") && err.contains("of 3"),
        "{err}"
    );

    // The rest, in another order; then everything again: nothing new.
    sera(&[
        "corpus",
        "merge",
        s(&dbs[2]),
        s(&dbs[1]),
        "--db",
        s(&merged),
    ]);
    let again = sera(&[
        "corpus",
        "merge",
        s(&dbs[1]),
        s(&dbs[0]),
        s(&dbs[2]),
        "--db",
        s(&merged),
    ]);
    assert_eq!(again.matches("0 blobs copied").count(), 3, "{again}");
    assert_eq!(again.matches("0 rows new").count(), 3, "{again}");
    let other = many.path().join("other.sqlite");
    sera(&[
        "corpus",
        "merge",
        s(&dbs[1]),
        s(&dbs[2]),
        s(&dbs[0]),
        "--db",
        s(&other),
    ]);
    assert_eq!(
        content_digest(&merged),
        content_digest(&other),
        "merge order changed the content"
    );

    let out = sera(&["run", s(&p), "--finalize", "--no-progress"]);
    assert!(out.contains("rows:"), "{out}");
    assert!(
        want == files(&many.path().join("out")),
        "finalized shards differ from one machine's"
    );
    let audit = sera(&[
        "audit",
        s(&many.path().join("out/manifest.json")),
        "--db",
        s(&merged),
    ]);
    assert!(audit.contains("audit passed"), "{audit}");
    // And from the corpus merged in the other order.
    std::fs::remove_dir_all(many.path().join("out")).unwrap();
    sera(&[
        "run",
        s(&p),
        "--finalize",
        "--db",
        s(&other),
        "--no-progress",
    ]);
    assert!(want == files(&many.path().join("out")));

    // status on the merged corpus alone.
    let st: Value = serde_json::from_str(&sera(&["status", s(&p), "--json"])).unwrap();
    let labels: Vec<&str> = st["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["worker"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["0/3", "1/3", "2/3", "merged"]);
    assert_eq!(st["total"]["done"], 24);
    let text = sera(&["status", s(&p)]);
    assert!(text.contains("merged") && text.contains("done"), "{text}");
}

/// Conflicts and corruption are errors that name the files and the key; nothing of the bad
/// file's rows lands.
#[test]
fn merge_refuses_conflicts_and_corrupt_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), 4);
    sera(&["run", s(&p), "--worker", "0/1", "--no-progress"]);
    let src = worker_db(dir.path(), 0, 1);
    let dst = dir.path().join("dst.sqlite");
    sera(&["corpus", "merge", s(&src), "--db", s(&dst)]);
    let before = content_digest(&dst);

    // The same exchange key answered with different content.
    let bad = dir.path().join("bad.sqlite");
    std::fs::copy(&src, &bad).unwrap();
    let c = rusqlite::Connection::open(&bad).unwrap();
    let (request, sample): (String, i64) = c
        .query_row(
            "SELECT request, sample FROM exchanges ORDER BY request LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    c.execute(
        "UPDATE exchanges SET response = (SELECT id FROM blobs WHERE id <> exchanges.response LIMIT 1) WHERE request = ?1 AND sample = ?2",
        rusqlite::params![request, sample],
    )
    .unwrap();
    drop(c);
    let err = fails(
        bin()
            .args(["corpus", "merge", s(&bad), "--db", s(&dst)])
            .output()
            .unwrap(),
    );
    assert!(err.contains("conflict"), "{err}");
    assert!(
        err.contains(s(&bad)) && err.contains(s(&dst)),
        "both files named: {err}"
    );
    assert!(
        err.contains("exchanges") && err.contains(&request),
        "the key named: {err}"
    );
    assert_eq!(content_digest(&dst), before);

    // A blob whose bytes no longer hash to its id, new to the destination.
    let corrupt = dir.path().join("corrupt.sqlite");
    std::fs::copy(&src, &corrupt).unwrap();
    let c = rusqlite::Connection::open(&corrupt).unwrap();
    let raw = b"not what this blob was".repeat(3);
    let data = zstd::bulk::compress(&raw, 3).unwrap();
    let fake = "f".repeat(64);
    c.execute(
        "INSERT INTO blobs (id, raw_size, data) VALUES (?1, ?2, ?3)",
        rusqlite::params![fake, raw.len() as i64, data],
    )
    .unwrap();
    drop(c);
    let err = fails(
        bin()
            .args(["corpus", "merge", s(&corrupt), "--db", s(&dst)])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains(&format!("blob {fake} is corrupt")) && err.contains(s(&corrupt)),
        "{err}"
    );
    assert_eq!(content_digest(&dst), before);
    // The same, first of the sources of a merge that creates its destination (whose checks
    // start before the destination exists): nothing is committed, and without the corrupt
    // source the merge completes.
    let fresh = dir.path().join("fresh.sqlite");
    let err = fails(
        bin()
            .args(["corpus", "merge", s(&corrupt), s(&src), "--db", s(&fresh)])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains(&format!("blob {fake} is corrupt")) && err.contains(s(&corrupt)),
        "{err}"
    );
    let blobs: i64 = rusqlite::Connection::open(&fresh)
        .unwrap()
        .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(blobs, 0, "nothing of a failed group is committed");
    sera(&["corpus", "merge", s(&src), "--db", s(&fresh)]);
    assert_eq!(content_digest(&fresh), before);

    // Not a corpus; the destination itself.
    let junk = dir.path().join("junk.sqlite");
    std::fs::write(&junk, b"hello").unwrap();
    let err = fails(
        bin()
            .args(["corpus", "merge", s(&junk), "--db", s(&dst)])
            .output()
            .unwrap(),
    );
    assert!(err.contains(s(&junk)), "{err}");
    let err = fails(
        bin()
            .args(["corpus", "merge", s(&dst), "--db", s(&dst)])
            .output()
            .unwrap(),
    );
    assert!(err.contains("is the destination itself"), "{err}");
    let err = fails(
        bin()
            .args(["run", s(&p), "--worker", "3/3"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("0 <= I < N"), "{err}");
}

/// More sources than the merge attaches at once (8): every group merged, in any order to the
/// same content, blobs shared between sources stored once; a corrupt blob in a later group
/// fails the merge naming its file and leaves a destination `corpus verify` accepts.
#[test]
fn merge_of_many_sources_in_groups() {
    let dir = tempfile::tempdir().unwrap();
    let text = |seed: u64, lines: usize| -> String {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..lines)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("value_{x:016x} = {}\n", x % 1000)
            })
            .collect()
    };
    let mut srcs = Vec::new();
    for i in 0..11u64 {
        let tree = dir.path().join(format!("tree{i}"));
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join("common.py"), text(7, 400)).unwrap();
        std::fs::write(tree.join("shared_by_pairs.py"), text(100 + i / 2, 300)).unwrap();
        for f in 0..20 {
            std::fs::write(
                tree.join(format!("own{f}.py")),
                text(1000 * (i + 1) + f, 50),
            )
            .unwrap();
        }
        let db = dir.path().join(format!("src{i}.sqlite"));
        sera(&["corpus", "--db", s(&db), "ingest", s(&tree)]);
        srcs.push(db);
    }
    let merge = |dst: &Path, srcs: &[PathBuf]| -> String {
        let mut args = vec!["corpus", "merge"];
        args.extend(srcs.iter().map(|p| s(p)));
        args.extend(["--db", s(dst)]);
        sera(&args)
    };
    let forward = dir.path().join("forward.sqlite");
    let out = merge(&forward, &srcs);
    assert!(out.contains("merged 11 corpora"), "{out}");
    let mut reversed: Vec<PathBuf> = srcs.clone();
    reversed.reverse();
    let backward = dir.path().join("backward.sqlite");
    merge(&backward, &reversed);
    assert_eq!(content_digest(&forward), content_digest(&backward));
    // 1 common + 6 pair-shared + 11·20 own files, and the 11 snapshots' trees.
    let c = rusqlite::Connection::open(&forward).unwrap();
    let files: i64 = c
        .query_row(
            "SELECT count(DISTINCT blob) FROM snapshot_entries",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(files, 1 + 6 + 11 * 20);
    let snapshots: i64 = c
        .query_row("SELECT count(*) FROM snapshots", [], |r| r.get(0))
        .unwrap();
    assert_eq!(snapshots, 11);
    drop(c);
    let v = sera(&["corpus", "--db", s(&forward), "verify"]);
    assert!(!v.contains("corrupt"), "{v}");
    // Merged again: nothing new.
    let again = merge(&forward, &srcs);
    assert!(again.contains("0 blobs copied"), "{again}");
    assert_eq!(content_digest(&forward), content_digest(&backward));

    // A corrupt blob in the tenth source (the second group).
    let c = rusqlite::Connection::open(&srcs[9]).unwrap();
    let raw = b"these bytes are not what the id says".repeat(4);
    let fake = "e".repeat(64);
    c.execute(
        "INSERT INTO blobs (id, raw_size, data) VALUES (?1, ?2, ?3)",
        rusqlite::params![
            fake,
            raw.len() as i64,
            zstd::bulk::compress(&raw, 3).unwrap()
        ],
    )
    .unwrap();
    drop(c);
    let fresh = dir.path().join("fresh.sqlite");
    let mut args = vec!["corpus".to_string(), "merge".to_string()];
    args.extend(srcs.iter().map(|p| s(p).to_string()));
    args.extend(["--db".to_string(), s(&fresh).to_string()]);
    let err = fails(bin().args(&args).output().unwrap());
    assert!(
        err.contains(&format!("blob {fake} is corrupt")) && err.contains(s(&srcs[9])),
        "{err}"
    );
    let v = sera(&["corpus", "--db", s(&fresh), "verify"]);
    assert!(!v.contains("corrupt"), "{v}");
    let c = rusqlite::Connection::open(&fresh).unwrap();
    let kept: i64 = c
        .query_row("SELECT count(*) FROM blobs WHERE id = ?1", [&fake], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(kept, 0, "the corrupt blob was stored");
}

/// A merge SIGKILLed at several moments leaves a destination that `corpus verify` accepts;
/// the rerun completes it.
#[test]
fn merge_killed_midway_leaves_a_valid_corpus_and_reruns_complete_it() {
    let dir = tempfile::tempdir().unwrap();
    // ~120 MB of files that compress poorly: a merge that takes a while.
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for f in 0..600 {
        let mut text = String::with_capacity(200_000);
        while text.len() < 200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text.push_str(&format!("{x:016x} "));
        }
        std::fs::write(tree.join(format!("f{f:04}.txt")), text).unwrap();
    }
    let src = dir.path().join("src.sqlite");
    sera(&["corpus", "--db", s(&src), "ingest", s(&tree)]);
    let dst = dir.path().join("dst.sqlite");
    let t = Instant::now();
    sera(&[
        "corpus",
        "merge",
        s(&src),
        "--db",
        s(&dir.path().join("timing.sqlite")),
    ]);
    let whole = t.elapsed();
    let mut kills = 0;
    for k in 1..=6u32 {
        let mut child = bin()
            .args(["corpus", "merge", s(&src), "--db", s(&dst)])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole * k / 8);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        if dst.exists() {
            let v = sera(&["corpus", "--db", s(&dst), "verify"]);
            assert!(!v.contains("corrupt"), "{v}");
        }
    }
    assert!(
        kills > 0,
        "no merge was caught running (a whole merge took {whole:?})"
    );
    sera(&["corpus", "merge", s(&src), "--db", s(&dst)]);
    assert_eq!(content_digest(&dst), content_digest(&src));
    let stats = |db: &Path| -> Value {
        let mut v: Value =
            serde_json::from_str(&sera(&["corpus", "--db", s(db), "stats", "--json"])).unwrap();
        v.as_object_mut().unwrap().remove("sources");
        v
    };
    assert_eq!(stats(&dst), stats(&src));
}

/// `--finalize --allow-incomplete` writes the shards of the finished items, with a warning;
/// without it, the missing partitions are named.
#[test]
fn finalize_names_missing_partitions_or_writes_what_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), 12);
    for i in [0, 2] {
        sera(&["run", s(&p), "--worker", &format!("{i}/3"), "--no-progress"]);
    }
    let merged = dir.path().join("demo.sqlite");
    sera(&[
        "corpus",
        "merge",
        s(&worker_db(dir.path(), 0, 3)),
        s(&worker_db(dir.path(), 2, 3)),
        "--db",
        s(&merged),
    ]);
    let err = fails(
        bin()
            .args(["run", s(&p), "--finalize", "--no-progress"])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("no worker of this pipeline recorded (partitions 1 of 3)"),
        "{err}"
    );
    let out = bin()
        .args([
            "run",
            s(&p),
            "--finalize",
            "--allow-incomplete",
            "--no-progress",
            "--json",
        ])
        .output()
        .unwrap();
    let summary: Value = serde_json::from_str(&ok(out.clone())).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--allow-incomplete: writing the shards from the finished items only"));
    let st = status_json(&p, 3);
    let done = st["total"]["done"].as_u64().unwrap();
    assert_eq!(summary["items"].as_u64().unwrap(), done);
    assert!(done < 12 && done > 0, "{st}");
    let err = fails(
        bin()
            .args([
                "run",
                s(&p),
                "--finalize",
                "--db",
                s(&dir.path().join("none.sqlite")),
            ])
            .output()
            .unwrap(),
    );
    assert!(err.contains("no such corpus"), "{err}");
}

/// The Slurm scripts: an array of N tasks, the finalize script merging every worker's corpus;
/// the worker script run by bash as Slurm would run task 1 makes worker 1's corpus. The k8s
/// YAML parses into an Indexed Job and a finalize Job.
#[test]
fn slurm_and_k8s_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), 6);
    let printed = sera(&[
        "slurm",
        s(&p),
        "--workers",
        "3",
        "--cpus",
        "2",
        "--mem",
        "8G",
        "--time",
        "2:00:00",
        "--partition",
        "gpu",
    ]);
    let worker =
        std::fs::read_to_string(dir.path().join("slurm/sera-pipeline-workers.sbatch")).unwrap();
    let finalize =
        std::fs::read_to_string(dir.path().join("slurm/sera-pipeline-finalize.sbatch")).unwrap();
    assert!(printed.contains(&worker) && printed.contains(&finalize));
    for line in [
        "#SBATCH --array=0-2",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=8G",
        "#SBATCH --time=2:00:00",
        "#SBATCH --partition=gpu",
    ] {
        assert!(worker.contains(line), "{line} in\n{worker}");
    }
    assert!(
        worker.contains("--worker \"${SLURM_ARRAY_TASK_ID}/3\""),
        "{worker}"
    );
    for i in 0..3 {
        assert!(
            finalize.contains(s(&worker_db(dir.path(), i, 3))),
            "{finalize}"
        );
    }
    assert!(finalize.contains("--finalize"));
    let out = Command::new("bash")
        .arg(dir.path().join("slurm/sera-pipeline-workers.sbatch"))
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env(
            "SERA_HOST_CACHE_DIR",
            common::test_cache_dir().join("plugins"),
        )
        .output()
        .unwrap();
    assert!(ok(out).contains("worker 1/3: no shards"));
    assert!(worker_db(dir.path(), 1, 3).exists());
    // Without sbatch on PATH, --submit says what is wrong.
    let err = fails(
        bin()
            .args(["slurm", s(&p), "--workers", "3", "--submit"])
            .env("PATH", "/nonexistent")
            .output()
            .unwrap(),
    );
    assert!(err.contains("cannot run sbatch"), "{err}");

    let yaml = sera(&[
        "k8s",
        s(&p),
        "--workers",
        "4",
        "--image",
        "registry.example/sera:1",
        "--claim",
        "corpora",
        "--mount",
        s(dir.path()),
        "--cpus",
        "2",
        "--mem",
        "8Gi",
    ]);
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    let w = &docs[0];
    assert_eq!(w["kind"], "Job");
    assert_eq!(w["spec"]["completionMode"], "Indexed");
    assert_eq!(w["spec"]["completions"], 4);
    assert_eq!(w["spec"]["parallelism"], 4);
    let c = &w["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/sera:1");
    assert_eq!(c["resources"]["limits"]["memory"], "8Gi");
    let script = c["command"][2].as_str().unwrap();
    assert!(
        script.contains("--worker \"$JOB_COMPLETION_INDEX/4\"") && script.contains(s(&p)),
        "{script}"
    );
    assert_eq!(
        w["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "corpora"
    );
    assert_eq!(c["volumeMounts"][0]["mountPath"], s(dir.path()));
    let f = &docs[1];
    assert_eq!(f["kind"], "Job");
    let script = f["spec"]["template"]["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap();
    for i in 0..4 {
        assert!(script.contains(s(&worker_db(dir.path(), i, 4))), "{script}");
    }
    assert!(script.contains("--finalize"));
    let err = fails(
        bin()
            .args(["k8s", s(&p), "--workers", "2", "--mount", "/elsewhere"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("not under the volume's mount point"), "{err}");
}

/// Two workers run the same command on the same tree and get different output: their records
/// do not collide in the merge, and each replays with what it saw.
#[test]
fn workers_command_records_do_not_collide_when_merged() {
    use sera_host::exec::{ExecContext, Source};
    use sera_host::plugin::ExecRequest;
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let helper = PathBuf::from(env!("CARGO_BIN_EXE_sera-host"));
    let sandbox = Arc::new(sera_host::sandbox::Sandbox::new(helper, Default::default()).unwrap());
    let cmd = "cat a.txt; date +%s%N";
    let mut outputs = Vec::new();
    let mut dbs = Vec::new();
    for w in ["0/2", "1/2"] {
        let db = dir.path().join(format!("w{}.sqlite", &w[..1]));
        let corpus = Arc::new(Mutex::new(sera_host::corpus::Corpus::open(&db).unwrap()));
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("a.txt"), "same tree\n").unwrap();
        let ctx = ExecContext {
            source: Source::Live(sandbox.clone()),
            corpus,
            env: "bare:test".into(),
            timeout_s: 10,
            scope: Some(w.into()),
        };
        let r = ctx
            .for_workspace(ws.path(), Default::default())
            .run(ExecRequest {
                command: cmd.into(),
                timeout_s: None,
            })
            .unwrap();
        outputs.push(r.output);
        dbs.push(db);
    }
    assert_ne!(
        outputs[0], outputs[1],
        "the clock moved between the two runs"
    );
    let merged = dir.path().join("merged.sqlite");
    sera_host::corpus::merge(&merged, &dbs).unwrap();
    let corpus = Arc::new(Mutex::new(
        sera_host::corpus::Corpus::open(&merged).unwrap(),
    ));
    for (w, want) in ["0/2", "1/2"].iter().zip(&outputs) {
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("a.txt"), "same tree\n").unwrap();
        let ctx = ExecContext {
            source: Source::Replay,
            corpus: corpus.clone(),
            env: "bare:test".into(),
            timeout_s: 10,
            scope: Some(w.to_string()),
        };
        let r = ctx
            .for_workspace(ws.path(), Default::default())
            .run(ExecRequest {
                command: cmd.into(),
                timeout_s: None,
            })
            .unwrap();
        assert_eq!(&r.output, want, "worker {w} replays what it saw");
    }
}
