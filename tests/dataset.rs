//! `sera-host rescore` and `sera-host shards` on trajectories imported from the real SWE-agent
//! runs in ../shared/fixtures (GPT-4 on pydicom, marshmallow and SWE-agent's test repository),
//! SERA rows built from them, and OpenAI JSONL, through the `sera-host` binary and the real
//! WASM plugins.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sera_host::corpus::Corpus;
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    common::repo_root().join("../shared/fixtures/trajectories/swe-agent")
}

fn bin() -> Command {
    common::sera_host()
}

fn ok(o: Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn fail(o: Output) -> String {
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn gold_patch() -> String {
    let v: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("pydicom__pydicom-1458.instance.json")).unwrap(),
    )
    .unwrap();
    v["patch"].as_str().unwrap().to_string()
}

fn model_patch() -> String {
    std::fs::read_to_string(fixtures().join("pydicom__pydicom-1458.patch")).unwrap()
}

/// Line recall computed here, independently of `line-recall-core`: the `+`/`-` lines of the
/// hunks (headers excluded), blank ones skipped, matched as a multiset; (matched, total).
fn independent_recall(reference: &str, candidate: &str) -> (usize, usize) {
    fn changes(p: &str) -> Vec<String> {
        let mut in_hunk = false;
        let mut out = Vec::new();
        for l in p.lines() {
            if l.starts_with("@@") {
                in_hunk = true;
            } else if l.starts_with("diff --git") {
                in_hunk = false;
            } else if in_hunk
                && (l.starts_with('+') || l.starts_with('-'))
                && !l[1..].trim().is_empty()
            {
                out.push(l.to_string());
            }
        }
        out
    }
    let mut pool: BTreeMap<String, usize> = BTreeMap::new();
    for l in changes(candidate) {
        *pool.entry(l).or_default() += 1;
    }
    let reference = changes(reference);
    let mut matched = 0;
    for l in &reference {
        if let Some(n) = pool.get_mut(l).filter(|n| **n > 0) {
            *n -= 1;
            matched += 1;
        }
    }
    (matched, reference.len())
}

/// A SERA row built from a real .traj: its history as a JSON string, as SERA releases them.
fn sera_row(traj: &str, instance: &str, rollout_patch: &str, target_patch: &str) -> Value {
    let v: Value = serde_json::from_slice(&std::fs::read(fixtures().join(traj)).unwrap()).unwrap();
    json!({
        "messages": v["history"].to_string(),
        "instance_id": instance,
        "rollout_patch": rollout_patch,
        "target_patch": target_patch,
        "func_name": "get_pixeldata",
        "func_path": "pydicom/pixel_data_handlers/numpy_handler.py",
        "problem_statement": "Pixel Representation attribute should be optional for pixel data handler",
        "source": "fixture",
        "docker_image": "none",
    })
}

/// A corpus with the four .traj fixtures, two SERA rows (a T2 row whose P1 is the gold patch,
/// a T1 row) and one OpenAI JSONL conversation.
fn corpus(dir: &Path) -> PathBuf {
    let db = dir.join("c.sqlite");
    ok(bin()
        .args(["import", "--format", "swe-agent", "--db"])
        .arg(&db)
        .arg(fixtures())
        .output()
        .unwrap());
    let t2 = sera_row(
        "pydicom__pydicom-1458.traj",
        "pydicom__pydicom-1458",
        &model_patch(),
        &gold_patch(),
    );
    let t1 = sera_row(
        "pydicom__pydicom-1458.traj",
        "pydicom__pydicom-1458",
        &gold_patch(),
        "",
    );
    let sera = dir.join("sera.jsonl");
    std::fs::write(&sera, format!("{t2}\n{t1}\n")).unwrap();
    ok(bin()
        .args(["import", "--format", "sera", "--db"])
        .arg(&db)
        .arg(&sera)
        .output()
        .unwrap());
    let openai = json!({
        "messages": [
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": "Why does `TimeDelta` round 345 ms down?"},
            {"role": "assistant", "content": "Let me look at the field.", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "view", "arguments": "{\"path\": \"src/marshmallow/fields.py\", \"view_range\": [1470, 1480]}"}},
                {"id": "call_b", "type": "function", "function": {"name": "search", "arguments": "{\"pattern\": \"def _serialize\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "1474        return int(value.total_seconds() / base_unit.total_seconds())"},
            {"role": "tool", "tool_call_id": "call_b", "content": "src/marshmallow/fields.py:1469:    def _serialize(self, value, attr, obj, **kwargs):"},
            {"role": "assistant", "content": "`int()` truncates; it should round."}
        ],
        "tools": [
            {"type": "function", "function": {"name": "view", "description": "View a file", "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "view_range": {"type": "array", "items": {"type": "integer"}}}, "required": ["path"]}}},
            {"type": "function", "function": {"name": "search", "description": "Search the repository", "parameters": {"type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]}}}
        ]
    });
    let oa = dir.join("chat.jsonl");
    std::fs::write(&oa, format!("{openai}\n")).unwrap();
    ok(bin()
        .args(["import", "--format", "openai-jsonl", "--db"])
        .arg(&db)
        .arg(&oa)
        .output()
        .unwrap());
    db
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn rescore_pydicom_against_the_gold_patch_matches_an_independent_recall() {
    let dir = tempfile::tempdir().unwrap();
    let db = corpus(dir.path());
    let instance = fixtures().join("pydicom__pydicom-1458.instance.json");
    let out = ok(bin()
        .args(["rescore", "--list", "--db"])
        .arg(&db)
        .arg("--reference")
        .arg(&instance)
        .output()
        .unwrap());
    let (matched, total) = independent_recall(&gold_patch(), &model_patch());
    assert!(total > 10 && matched >= 1, "{matched}/{total}");
    let want = format!(
        "{:.6}\t{matched}/{total}\tpydicom__pydicom-1458\t",
        matched as f64 / total as f64
    );
    // The .traj and both SERA rows (instance pydicom__pydicom-1458) are scored against the
    // gold patch: the .traj and the T2 row have the model's patch, the T1 row the gold one.
    let traj_line = out
        .lines()
        .find(|l| l.ends_with("pydicom__pydicom-1458.traj:whole file"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(traj_line.starts_with(&want), "{traj_line} vs {want}");
    assert!(
        out.contains("1.000000\t18/18\tpydicom__pydicom-1458\t"),
        "{out}"
    );
    assert!(
        out.contains("7 trajectories: 3 pairs (2 scored now, 1 looked up)"),
        "{out}"
    );
    // A rerun is lookups only.
    let again = ok(bin()
        .args(["rescore", "--db"])
        .arg(&db)
        .arg("--reference")
        .arg(&instance)
        .output()
        .unwrap());
    assert!(
        again.contains("3 pairs (0 scored now, 3 looked up)"),
        "{again}"
    );
    // Against P1: the SERA T2 row's target patch is the gold patch: the same recall; the T1
    // row (no target patch) and the others have no reference.
    let p1 = ok(bin()
        .args(["rescore", "--list", "--reference", "p1", "--db"])
        .arg(&db)
        .output()
        .unwrap());
    assert!(p1.contains(&want), "{p1}");
    assert!(
        p1.contains(
            "1 pairs (0 scored now, 1 looked up), 1 without a patch, 5 without a reference"
        ),
        "{p1}"
    );
    // Imports stored before the target-patch blob column (schema 4) are read from their source
    // fields (where the patch then was): the same pair, so a lookup.
    {
        let corpus = Corpus::open(&db).unwrap();
        let conn = rusqlite::Connection::open(&db).unwrap();
        for e in corpus.import_entries().unwrap() {
            let fields = corpus.import_meta(&e.id).unwrap();
            conn.execute(
                "UPDATE imports SET meta = ?1, target_patch = NULL WHERE id = ?2",
                [fields.to_string(), e.id],
            )
            .unwrap();
        }
    }
    let p1_old = ok(bin()
        .args(["rescore", "--list", "--reference", "p1", "--db"])
        .arg(&db)
        .output()
        .unwrap());
    assert!(p1_old.contains(&want), "{p1_old}");
    assert!(
        p1_old.contains("1 pairs (0 scored now, 1 looked up)"),
        "{p1_old}"
    );
    // Another config is another verdict.
    let sera = ok(bin()
        .args([
            "rescore",
            "--json",
            "--config",
            r#"{"compat":"sera"}"#,
            "--db",
        ])
        .arg(&db)
        .output()
        .unwrap());
    let report: Value = serde_json::from_str(&sera).unwrap();
    assert_eq!(report["scored"], 1);
    assert_eq!(report["config"], r#"{"compat":"sera"}"#);
}

fn shards(db: &Path, out: &Path, extra: &[&str]) -> String {
    ok(bin()
        .args(["shards", "--db"])
        .arg(db)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap())
}

/// Tool calls and tool results of the stored trajectories, counted from the source files.
fn source_tool_counts() -> (usize, usize) {
    let mut calls = 0;
    let mut results = 0;
    for name in [
        "6e44b9__sweagenttestrepo-1c2844.traj",
        "marshmallow-code__marshmallow-1867.traj",
        "pydicom__pydicom-1458.traj",
        "swe-agent__test-repo-i1.traj",
    ] {
        let v: Value =
            serde_json::from_slice(&std::fs::read(fixtures().join(name)).unwrap()).unwrap();
        let h = v["history"].as_array().unwrap();
        let mut c = 0;
        for m in h {
            if m["role"] == "assistant" {
                c += m["tool_calls"]
                    .as_array()
                    .map_or(usize::from(m["action"].is_string()), Vec::len);
            }
        }
        // 1.x: tool messages; 0.x: a (non-demo) user observation right after an action (the
        // final submit has none).
        let live: Vec<&Value> = h.iter().filter(|m| m["is_demo"] != true).collect();
        let r = if h.iter().any(|m| m["role"] == "tool") {
            h.iter().filter(|m| m["role"] == "tool").count()
        } else {
            live.windows(2)
                .filter(|w| {
                    w[0]["action"].is_string()
                        && w[0]["role"] == "assistant"
                        && w[1]["role"] == "user"
                })
                .count()
        };
        let k = if name.starts_with("pydicom") { 3 } else { 1 };
        calls += c * k;
        results += r * k;
    }
    (calls + 2, results + 2)
}

#[test]
fn shards_render_three_ways_deterministically_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let db = corpus(dir.path());
    let (calls, results) = source_tool_counts();
    for render in ["openai", "hermes", "xml"] {
        let a = dir.path().join(format!("{render}-a"));
        let b = dir.path().join(format!("{render}-b"));
        let report = shards(&db, &a, &["--render", render, "--rows-per-shard", "3"]);
        assert!(
            report.contains("7 stored trajectories: 7 selected"),
            "{report}"
        );
        assert!(report.contains("rows: 7 ("), "{report}");
        shards(&db, &b, &["--render", render, "--rows-per-shard", "3"]);
        assert_eq!(files(&a), files(&b), "{render}: same inputs, same bytes");
        let rows = common::shard_rows(&a);
        assert_eq!(rows.len(), 7);
        let mut n_calls = 0;
        let mut n_results = 0;
        for r in &rows {
            assert_eq!(r["metadata"]["render"], render);
            let msgs = r["messages"].as_array().unwrap();
            let tools = r["tools"].as_array().unwrap();
            for m in msgs {
                let content = m["content"].as_str().unwrap();
                match render {
                    "openai" => {
                        n_calls += m["tool_calls"].as_array().map_or(0, Vec::len);
                        n_results += usize::from(m["role"] == "tool");
                        for c in m["tool_calls"].as_array().into_iter().flatten() {
                            let name = &c["function"]["name"];
                            assert!(
                                tools.iter().any(|t| &t["function"]["name"] == name),
                                "every called function has a spec: {name}"
                            );
                        }
                    }
                    "hermes" => {
                        assert_ne!(m["role"], "tool");
                        n_calls += content.matches("<tool_call>\n{\"name\": ").count();
                        n_results += content.matches("<tool_response>\n").count();
                    }
                    _ => {
                        assert_ne!(m["role"], "tool");
                        n_calls += content.matches("<function=").count();
                    }
                }
            }
        }
        assert_eq!(n_calls, calls, "{render}: tool calls");
        if render != "xml" {
            assert_eq!(n_results, results, "{render}: tool results");
        }
        let audit = ok(bin()
            .arg("audit")
            .arg(a.join("manifest.json"))
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap());
        assert!(audit.contains("audit passed"), "{audit}");
    }
    // `explain` names where a row came from: the import, its file and place.
    let first = common::shard_rows(&dir.path().join("openai-a"))[0].clone();
    let id = first["metadata"]["row_id"].as_str().unwrap();
    let explained = ok(bin()
        .args(["explain", &id[..12], "--db"])
        .arg(&db)
        .output()
        .unwrap());
    let v: Value = serde_json::from_str(&explained).unwrap();
    assert_eq!(v["import"], id);
    assert_eq!(v["locator"], first["metadata"]["locator"]);
    assert!(v["source"]
        .as_str()
        .unwrap()
        .ends_with(first["metadata"]["source"].as_str().unwrap()));

    // A flipped byte in a shard fails the audit, naming the shard.
    let a = dir.path().join("openai-a");
    let shard = a.join("shard-00000.jsonl.zst");
    let raw = zstd::decode_all(&std::fs::read(&shard).unwrap()[..]).unwrap();
    let mut text = String::from_utf8(raw).unwrap();
    text = text.replacen("\"role\":\"user\"", "\"role\":\"usex\"", 1);
    std::fs::write(&shard, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
    let err = bin()
        .arg("audit")
        .arg(a.join("manifest.json"))
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(!err.status.success());
    let text = String::from_utf8_lossy(&err.stdout);
    assert!(text.contains("shard-00000.jsonl.zst"), "{text}");
    assert!(text.contains("first differing row: #"), "{text}");
}

#[test]
fn select_scores_filters_and_truncates_with_the_real_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let db = corpus(dir.path());
    // Only the scored SERA T2 row passes; rows without r make `r >= 0.05` an error, reported.
    let out = dir.path().join("sel");
    let report = shards(
        &db,
        &out,
        &[
            "--select",
            "r >= 0.05",
            "--verifier",
            "builtin:line-recall",
            "--reference",
            "p1",
        ],
    );
    assert!(
        report.contains("7 stored trajectories: 1 selected"),
        "{report}"
    );
    assert!(report.contains("not selected: error: "), "{report}");
    assert!(report.contains(": 6\n"), "{report}");
    let r = common::shard_rows(&out);
    assert_eq!(r.len(), 1);
    let (matched, total) = independent_recall(&gold_patch(), &model_patch());
    assert_eq!(r[0]["metadata"]["r"], json!(matched as f64 / total as f64));
    assert_eq!(r[0]["metadata"]["stage"], "T2");
    assert_eq!(r[0]["metadata"]["source"], "sera.jsonl");
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["plugins"]["verify"]["source"], "builtin:line-recall");
    assert!(m["pipeline"].is_null());
    assert_eq!(m["reshard"]["imports"], 7);

    // Filters and truncation from a config file, counting with the real Qwen tokenizer.
    let tok = common::repo_root().join("../shared/fixtures/tokenizers");
    let cfg = dir.path().join("shards.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"render = "hermes"
select = 'tool_calls > 0'

[[filters]]
plugin = "builtin:max-patch-lines"
config = {{ max = 12 }}

[truncation]
budget = 8000
min_ratio = 0.5
tokenizer = {{ kind = "qwen-bpe", dir = "{}", config = "{}" }}
"#,
            tok.join("qwen2").display(),
            tok.join("qwen3/tokenizer_config.json").display()
        ),
    )
    .unwrap();
    let out2 = dir.path().join("cfg");
    let report = ok(bin()
        .args(["shards", "--db"])
        .arg(&db)
        .arg("--out")
        .arg(&out2)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap());
    assert!(report.contains("dropped: "), "{report}");
    assert!(report.contains("tokenizer: byte-level BPE"), "{report}");
    assert!(report.contains("dropped: max-patch-lines: 1"), "{report}");
    assert!(report.contains("dropped: truncation ratio"), "{report}");
    let kept = common::shard_rows(&out2);
    assert!(!kept.is_empty(), "{report}");
    for r in &kept {
        let ratio = r["metadata"]["truncation_ratio"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&ratio), "{ratio}");
    }
    assert!(
        kept.iter()
            .any(|r| r["metadata"]["truncation_ratio"].as_f64().unwrap() < 1.0),
        "an 8,000-token budget truncates some of these trajectories: {report}"
    );
    let m: Value =
        serde_json::from_slice(&std::fs::read(out2.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["tokenizer"]["kind"], "qwen-bpe");
    let audit = ok(bin()
        .arg("audit")
        .arg(out2.join("manifest.json"))
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap());
    assert!(audit.contains("audit passed"), "{audit}");
}

#[test]
fn bad_selections_configs_and_references_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = corpus(dir.path());
    let out = dir.path().join("o");
    let err = fail(
        bin()
            .args(["shards", "--select", r#"formt == "sera""#, "--db"])
            .arg(&db)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap(),
    );
    assert!(err.contains("unknown variable `formt`"), "{err}");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "render = \"openai\"\nrows_per_shrd = 3\n").unwrap();
    let err = fail(
        bin()
            .args(["shards", "--db"])
            .arg(&db)
            .arg("--out")
            .arg(&out)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("bad.toml") && err.contains("rows_per_shrd"),
        "{err}"
    );
    let err = fail(
        bin()
            .args(["shards", "--render", "chatml", "--db"])
            .arg(&db)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap(),
    );
    assert!(err.contains("unknown rendering \"chatml\""), "{err}");
    let refs = dir.path().join("refs.jsonl");
    std::fs::write(
        &refs,
        "{\"instance_id\": \"a\", \"patch\": \"\"}\n{\"instance_id\": \"b\", \"patch\": 3}\n",
    )
    .unwrap();
    let err = fail(
        bin()
            .args(["rescore", "--db"])
            .arg(&db)
            .arg("--reference")
            .arg(&refs)
            .output()
            .unwrap(),
    );
    assert!(err.contains("refs.jsonl:2: no `patch` string"), "{err}");
    std::fs::write(&refs, "{\"instance_id\": \"a\", \"patch\": \"\"\n").unwrap();
    let err = fail(
        bin()
            .args(["rescore", "--db"])
            .arg(&db)
            .arg("--reference")
            .arg(&refs)
            .output()
            .unwrap(),
    );
    assert!(err.contains("refs.jsonl:1:"), "{err}");
    assert!(err.contains("not valid JSON"), "{err}");
    let err = fail(
        bin()
            .args(["rescore", "--verifier", "builtin:max-patch-lines", "--db"])
            .arg(&db)
            .output()
            .unwrap(),
    );
    assert!(err.contains("not the verifier world"), "{err}");
}
