//! The dataset card, report.html, decontamination and near-duplicate removal, through the
//! binary on the demo pipeline (a real stdlib package, the scripted teacher, the real Qwen
//! tokenizer) and on imported SWE-agent trajectories.

mod common;

use common::{files, ok, shard_rows};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn run(p: &Path, args: &[&str]) -> String {
    ok(common::sera_host()
        .arg("run")
        .arg(p)
        .args(args)
        .output()
        .unwrap())
}

fn audit(out: &Path, db: &Path) -> String {
    ok(common::sera_host()
        .arg("audit")
        .arg(out.join("manifest.json"))
        .arg("--db")
        .arg(db)
        .output()
        .unwrap())
}

/// The demo pipeline in `dir` with `edit` applied to its text, its output in `out`.
fn pipeline(dir: &Path, name: &str, out: &str, edit: &dyn Fn(String) -> String) -> PathBuf {
    let p = common::demo_pipeline(dir, &|l| {
        if l.starts_with("dir = ") {
            format!("dir = \"{out}\"")
        } else {
            l.to_string()
        }
    });
    let text = edit(std::fs::read_to_string(&p).unwrap());
    let named = dir.join(name);
    std::fs::write(&named, text).unwrap();
    named
}

/// The card's YAML header, parsed.
fn card_header(out: &Path) -> serde_json::Value {
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    let rest = card
        .strip_prefix("---\n")
        .expect("the card opens with YAML");
    let yaml = &rest[..rest.find("\n---\n").expect("the YAML header ends")];
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// Does `pattern` (one `*`) match `name`?
fn glob(pattern: &str, name: &str) -> bool {
    let (a, b) = pattern.split_once('*').unwrap();
    name.len() >= a.len() + b.len() && name.starts_with(a) && name.ends_with(b)
}

#[test]
fn the_demo_output_has_a_card_and_a_report_that_audit_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), "p.toml", "out", &|t| {
        t.replace(
            "rows_per_shard = 8",
            "rows_per_shard = 8\nlicense = \"apache-2.0\"",
        )
    });
    run(&p, &[]);
    let out = dir.path().join("out");
    let db = dir.path().join("demo.sqlite");
    let m = manifest(&out);
    let header = card_header(&out);
    assert_eq!(header["license"], "apache-2.0");
    assert_eq!(header["task_categories"][0], "text-generation");
    assert_eq!(header["size_categories"][0], "n<1K");
    // Splits T1 and T2, each naming exactly its own shards, together every shard.
    let data_files = header["configs"][0]["data_files"].as_array().unwrap();
    let splits: Vec<&str> = data_files
        .iter()
        .map(|d| d["split"].as_str().unwrap())
        .collect();
    assert_eq!(splits, ["T1", "T2"]);
    let rows = shard_rows(&out);
    let mut covered = 0;
    for d in data_files {
        let pattern = d["path"].as_str().unwrap();
        let stage = d["split"].as_str().unwrap();
        for s in m["shards"].as_array().unwrap() {
            let file = s["file"].as_str().unwrap();
            if glob(pattern, file) {
                covered += 1;
                let bytes = std::fs::read(out.join(file)).unwrap();
                let raw = zstd::decode_all(&bytes[..]).unwrap();
                for l in std::str::from_utf8(&raw).unwrap().lines() {
                    let r: serde_json::Value = serde_json::from_str(l).unwrap();
                    assert_eq!(r["metadata"]["stage"], stage, "{file}");
                }
            }
        }
    }
    assert_eq!(covered, m["shards"].as_array().unwrap().len());
    // The card's counts are the shards'.
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    let t1 = rows
        .iter()
        .filter(|r| r["metadata"]["stage"] == "T1")
        .count();
    let t2 = rows.len() - t1;
    assert!(card.contains(&format!("| T1 | {t1} |")), "{card}");
    assert!(card.contains(&format!("| T2 | {t2} |")), "{card}");
    assert!(card.contains(m["merkle_root"].as_str().unwrap()));
    assert!(card.contains("sera-host audit manifest.json --db"));
    assert!(card.contains("Teacher model: `scripted`"));
    assert!(
        card.contains("builtin:max-patch-lines"),
        "filters with settings: {card}"
    );
    assert!(card.contains("**Not checked.**"), "{card}");
    // No path of this machine in either document.
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    let here = dir.path().display().to_string();
    assert!(!card.contains(&here) && !report.contains(&here));
    assert!(!report.contains("http://") || !report.contains("src=\"http"));
    assert!(!report.contains("<script"), "no script, nothing fetched");
    // Every chart is an inline SVG with its bars drawn.
    assert!(report.matches("<svg").count() >= 10, "charts");
    for title in [
        "Stage funnel",
        "Verification score r",
        "Truncation ratio",
        "Tokens per row",
        "Assistant turns per row",
        "Patch lines per row",
        "Tool calls by tool",
        "Commands by how they ended",
        "Rows per repository",
        "Teacher completion tokens per row",
    ] {
        assert!(report.contains(title), "{title}");
    }
    assert!(report.matches("<rect").count() > 40);
    // The manifest lists both; audit rebuilds them byte for byte.
    let docs: BTreeMap<String, String> = m["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["file"].as_str().unwrap().to_string(),
                d["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        docs.keys().map(String::as_str).collect::<Vec<_>>(),
        ["README.md", "report.html"]
    );
    let text = audit(&out, &db);
    assert!(
        text.contains("ok: README.md: rebuilt byte for byte"),
        "{text}"
    );
    assert!(
        text.contains("ok: report.html: rebuilt byte for byte"),
        "{text}"
    );
    // `report` writes the same page; `--timings` a different one, elsewhere.
    let again = ok(common::sera_host()
        .arg("report")
        .arg(out.join("manifest.json"))
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap());
    assert!(again.contains("byte for byte"), "{again}");
    ok(common::sera_host()
        .arg("report")
        .arg(out.join("manifest.json"))
        .arg("--db")
        .arg(&db)
        .arg("--timings")
        .output()
        .unwrap());
    let timed = std::fs::read_to_string(out.join("report-timings.html")).unwrap();
    assert!(timed.contains("Teacher latency per row"));
    // A changed card is caught.
    std::fs::write(out.join("README.md"), card.replace("apache-2.0", "mit")).unwrap();
    let bad = common::sera_host()
        .arg("audit")
        .arg(out.join("manifest.json"))
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stdout).contains("README.md: sha256"));

    // The same pipeline in another directory (a replay of the same corpus would do too) makes
    // the same bytes: nothing of the machine or the clock is in them.
    let dir2 = tempfile::tempdir().unwrap();
    let p2 = pipeline(dir2.path(), "p.toml", "out", &|t| {
        t.replace(
            "rows_per_shard = 8",
            "rows_per_shard = 8\nlicense = \"apache-2.0\"",
        )
    });
    run(&p2, &[]);
    std::fs::write(out.join("README.md"), card).unwrap();
    std::fs::remove_file(out.join("report-timings.html")).unwrap();
    assert_eq!(files(&out), files(&dir2.path().join("out")));
}

/// A function of the demo's rows, with its lines (from `explain`).
struct Picked {
    path: String,
    qualname: String,
    start: u64,
}

fn picked(db: &Path, row: &serde_json::Value) -> Picked {
    let id = row["metadata"]["row_id"].as_str().unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(common::sera_host()
        .args(["explain", id, "--db"])
        .arg(db)
        .output()
        .unwrap()))
    .unwrap();
    let (path, qualname) = v["item"]["function"]
        .as_str()
        .unwrap()
        .split_once("::")
        .unwrap();
    Picked {
        path: path.into(),
        qualname: qualname.into(),
        start: v["item"]["lines"][0].as_u64().unwrap(),
    }
}

fn function_of(r: &serde_json::Value) -> String {
    r["metadata"]["function"].as_str().unwrap().to_string()
}

#[test]
fn decontamination_skips_touched_functions_and_drops_or_flags_quoting_rows() {
    let dir = tempfile::tempdir().unwrap();
    let base = pipeline(dir.path(), "base.toml", "base", &|t| t);
    run(&base, &[]);
    let db = dir.path().join("demo.sqlite");
    let rows = shard_rows(&dir.path().join("base"));
    let functions: BTreeSet<String> = rows.iter().map(function_of).collect();
    assert!(functions.len() >= 3);
    // Instance A's gold patch edits a line inside the first row's function; instance B's
    // problem statement quotes a tool observation of another function's row (the file as the
    // teacher saw it); instance C collides with nothing: a file the repository does not have,
    // words no row has.
    let a = picked(&db, &rows[0]);
    let quoting = rows
        .iter()
        .find(|r| function_of(r) != function_of(&rows[0]))
        .unwrap();
    let quoted = quoting["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap())
        .max_by_key(|c| c.len())
        .unwrap()
        .to_string();
    let line = a.start + 1;
    let gold = format!(
        "diff --git a/{p} b/{p}\n--- a/{p}\n+++ b/{p}\n@@ -{line},1 +{line},1 @@\n-    old = 1\n+    new = 2\n",
        p = a.path
    );
    let instances = [
        serde_json::json!({"instance_id": "python__json-1", "repo": "python/json", "patch": gold, "problem_statement": "Something is wrong.", "test_patch": ""}),
        serde_json::json!({"instance_id": "python__json-2", "repo": "python/json", "patch": "", "problem_statement": quoted}),
        serde_json::json!({"instance_id": "python__json-3", "repo": "python/json", "patch": "diff --git a/nothere.py b/nothere.py\n--- a/nothere.py\n+++ b/nothere.py\n@@ -1,1 +1,1 @@\n-x\n+y\n", "problem_statement": "zebra quartz violin mountain orchard lantern pebble saffron thimble walrus yonder zephyr quill ember"}),
    ];
    let jsonl: String = instances.iter().map(|i| format!("{i}\n")).collect();
    std::fs::write(dir.path().join("verified.jsonl"), jsonl).unwrap();

    // Dropping (the default), with the selection skipping touched functions.
    let drop = pipeline(dir.path(), "drop.toml", "drop", &|t| {
        format!("{t}\n[decontaminate]\nagainst = [\"verified.jsonl\"]\n")
    });
    let summary: serde_json::Value = serde_json::from_str(&run(&drop, &["--json"])).unwrap();
    assert_eq!(
        summary["items"], 12,
        "the selection still finds 12 clean functions"
    );
    let out = dir.path().join("drop");
    let kept = shard_rows(&out);
    let a_key = format!("{}::{}", a.path, a.qualname);
    assert!(
        kept.iter().all(|r| function_of(r) != a_key),
        "A's function was never rolled out"
    );
    assert!(kept
        .iter()
        .all(|r| r["metadata"]["row_id"] != quoting["metadata"]["row_id"]));
    assert!(kept
        .iter()
        .all(|r| r["metadata"].get("contamination").is_none()));
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        card.contains("Checked against 3 instances from `verified.jsonl`"),
        "{card}"
    );
    assert!(card.contains("| `python__json-1` | "), "{card}");
    assert!(card.contains("| `python__json-2` | 0 | "), "{card}");
    assert!(
        !card.contains("python__json-3"),
        "C collides with nothing: {card}"
    );
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("python__json-1") && report.contains("python__json-2"));
    let dropped = summary["dropped"].as_object().unwrap();
    assert!(
        dropped.keys().any(|k| k.ends_with("contaminated")),
        "{summary}"
    );
    assert!(audit(&out, &db).contains("audit passed"));

    // Flagging, without skipping: A's and B's rows stay, each naming its instance.
    let flag = pipeline(dir.path(), "flag.toml", "flag", &|t| {
        format!("{t}\n[decontaminate]\nagainst = [\"verified.jsonl\"]\naction = \"flag\"\nskip_functions = false\n")
    });
    run(&flag, &[]);
    let out = dir.path().join("flag");
    let flagged = shard_rows(&out);
    let of = |pred: &dyn Fn(&serde_json::Value) -> bool| -> Vec<Vec<String>> {
        flagged
            .iter()
            .filter(|r| pred(r))
            .map(|r| {
                r["metadata"]["contamination"]
                    .as_array()
                    .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                    .unwrap_or_default()
            })
            .collect()
    };
    let a_rows = of(&|r| function_of(r) == a_key);
    assert!(!a_rows.is_empty());
    assert!(
        a_rows
            .iter()
            .all(|c| c.contains(&"python__json-1".to_string())),
        "{a_rows:?}"
    );
    let b_rows = of(&|r| r["metadata"]["row_id"] == quoting["metadata"]["row_id"]);
    assert_eq!(b_rows.len(), 1);
    assert!(
        b_rows[0].contains(&"python__json-2".to_string()),
        "{b_rows:?}"
    );
    assert!(flagged.iter().all(|r| !r["metadata"]["contamination"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == "python__json-3"))));
    assert_eq!(flagged.len(), rows.len(), "flagging keeps every row");
    assert!(audit(&out, &db).contains("audit passed"));

    // The standalone check finds the same function and rollouts.
    let text = ok(common::sera_host()
        .arg("decontaminate")
        .arg("--against")
        .arg(dir.path().join("verified.jsonl"))
        .arg("--db")
        .arg(&db)
        .arg("--json")
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let one = &v["by_instance"]["python__json-1"];
    assert!(one["functions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f.as_str().unwrap().ends_with(&a_key)));
    assert!(!v["by_instance"]["python__json-2"]["rollouts"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(v["by_instance"].get("python__json-3").is_none());

    // A broken instance file is an error naming the file and line, before any work.
    std::fs::write(
        dir.path().join("broken.jsonl"),
        "{\"instance_id\": \"x\"}\n",
    )
    .unwrap();
    let broken = pipeline(dir.path(), "broken.toml", "broken", &|t| {
        format!("{t}\n[decontaminate]\nagainst = [\"broken.jsonl\"]\n")
    });
    let e = common::sera_host()
        .arg("run")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!e.status.success());
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(err.contains("broken.jsonl: line 1: no `repo`"), "{err}");
}

#[test]
fn near_duplicates_keep_the_best_row_of_each_cluster_and_only_that() {
    let dir = tempfile::tempdir().unwrap();
    // Three prompts per function: the scripted teacher makes the same edit and says the same
    // things for each, so a function's rows of one stage are near-duplicates; rows of different
    // functions are not.
    let three = |t: String| {
        t.replacen("functions_per_repo = 12", "functions_per_repo = 5", 1)
            .replacen(
                "min_lines = 5",
                "min_lines = 5\nprompts_per_function = 3",
                1,
            )
            // The demo's own `[dedup]` stays out of the plain pipeline.
            .replacen("[dedup]\nthreshold = 0.8\n", "", 1)
    };
    let plain = pipeline(dir.path(), "plain.toml", "plain", &|t| three(t));
    run(&plain, &[]);
    let all = shard_rows(&dir.path().join("plain"));
    let dedup = pipeline(dir.path(), "dedup.toml", "dedup", &|t| {
        format!("{}\n[dedup]\nthreshold = 0.8\n", three(t))
    });
    let summary: serde_json::Value = serde_json::from_str(&run(&dedup, &["--json"])).unwrap();
    let out = dir.path().join("dedup");
    let kept = shard_rows(&out);
    let key = |r: &serde_json::Value| {
        (
            r["metadata"]["stage"].as_str().unwrap().to_string(),
            function_of(r),
        )
    };
    let groups: BTreeSet<(String, String)> = all.iter().map(key).collect();
    let kept_keys: Vec<(String, String)> = kept.iter().map(key).collect();
    // One row per (stage, function), and every (stage, function) keeps one.
    assert_eq!(kept_keys.len(), groups.len(), "{kept_keys:?}");
    assert_eq!(kept_keys.iter().cloned().collect::<BTreeSet<_>>(), groups);
    assert!(all.len() > kept.len());
    // The kept row is the best of its group: highest r, then truncation ratio, then row id.
    for k in &kept {
        let best = all
            .iter()
            .filter(|r| key(r) == key(k))
            .min_by(|a, b| {
                let f = |r: &serde_json::Value, n: &str| r["metadata"][n].as_f64().unwrap_or(-1.0);
                f(b, "r")
                    .total_cmp(&f(a, "r"))
                    .then(f(b, "truncation_ratio").total_cmp(&f(a, "truncation_ratio")))
                    .then(
                        a["metadata"]["row_id"]
                            .as_str()
                            .cmp(&b["metadata"]["row_id"].as_str()),
                    )
            })
            .unwrap();
        assert_eq!(best["metadata"]["row_id"], k["metadata"]["row_id"]);
    }
    let removed = all.len() - kept.len();
    let near: u64 = summary["dropped"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.ends_with("near-duplicate"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(near as usize, removed, "{summary}");
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        card.contains("## Near-duplicates\n\nMinHash (128 permutations"),
        "{card}"
    );
    assert!(card.contains("| after near-duplicates |"), "{card}");
    // Deterministic: the same again in a fresh directory.
    let dir2 = tempfile::tempdir().unwrap();
    let again = pipeline(dir2.path(), "dedup.toml", "dedup", &|t| {
        format!("{}\n[dedup]\nthreshold = 0.8\n", three(t))
    });
    run(&again, &[]);
    assert_eq!(files(&out), files(&dir2.path().join("dedup")));
    assert!(audit(&out, &dir.path().join("demo.sqlite")).contains("audit passed"));
    // A bad threshold names the key.
    let bad = pipeline(dir.path(), "bad.toml", "bad", &|t| {
        format!("{}\n[dedup]\nthreshold = 1.5\n", three(t))
    });
    let e = common::sera_host().arg("run").arg(&bad).output().unwrap();
    assert!(String::from_utf8_lossy(&e.stderr).contains("`dedup.threshold`"));
}

#[test]
fn imported_rows_are_decontaminated_by_instance_and_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let fixtures = common::repo_root().join("../shared/fixtures/trajectories/swe-agent");
    ok(common::sera_host()
        .args(["import", "--format", "swe-agent", "--db"])
        .arg(&db)
        .arg(&fixtures)
        .output()
        .unwrap());
    let plain = dir.path().join("plain");
    ok(common::sera_host()
        .args(["shards", "--db"])
        .arg(&db)
        .arg("--out")
        .arg(&plain)
        .output()
        .unwrap());
    let rows = shard_rows(&plain);
    let header = card_header(&plain);
    assert_eq!(header["configs"][0]["data_files"][0]["split"], "train");
    assert_eq!(
        header["configs"][0]["data_files"][0]["path"],
        "shard-*.jsonl.zst"
    );
    let ids: Vec<String> = rows
        .iter()
        .filter_map(|r| r["metadata"]["instance_id"].as_str().map(String::from))
        .collect();
    assert!(!ids.is_empty());
    let target = ids[0].clone();
    std::fs::write(
        dir.path().join("v.json"),
        serde_json::json!([{"instance_id": target, "repo": "x/y", "patch": "", "problem_statement": "nothing in common here at all"}]).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("shards.toml"),
        "[decontaminate]\nagainst = [\"v.json\"]\n\n[dedup]\n",
    )
    .unwrap();
    let out = dir.path().join("clean");
    ok(common::sera_host()
        .args(["shards", "--db"])
        .arg(&db)
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(dir.path().join("shards.toml"))
        .output()
        .unwrap());
    let clean = shard_rows(&out);
    let same_instance = ids.iter().filter(|i| **i == target).count();
    assert!(clean
        .iter()
        .all(|r| r["metadata"]["instance_id"].as_str() != Some(target.as_str())));
    assert!(clean.len() <= rows.len() - same_instance);
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        card.contains(&format!("| `{target}` | 0 | {same_instance} by instance |")),
        "{card}"
    );
    assert!(card.contains("## Near-duplicates\n\nMinHash"), "{card}");
    assert!(ok(common::sera_host()
        .arg("audit")
        .arg(out.join("manifest.json"))
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap())
    .contains("audit passed"));
}
