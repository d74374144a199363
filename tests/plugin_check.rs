//! `sera-host plugin check` on real components: the builtin plugins pass; the hostile test
//! plugin (an endless loop, a contract-breaking verdict, a panic) fails with the reason named.

mod common;

use std::process::Command;

fn check(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sera-host"))
        .env(
            "SERA_HOST_CACHE_DIR",
            common::test_cache_dir().join("plugins"),
        )
        .args(["plugin", "check"])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn hostile() -> String {
    common::dist("hostile.wasm").display().to_string()
}

#[test]
fn the_builtin_plugins_pass() {
    let (code, text) = check(&["builtin:line-recall", "--world", "verifier", "--json"]);
    assert_eq!(code, 0, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let checks = v["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for want in [
        "world",
        "init",
        "contract",
        "deterministic across calls",
        "deterministic across instances",
        "verify-batch agrees with verify",
        "empty candidate",
        "empty reference",
    ] {
        assert!(names.contains(&want), "{want} missing: {names:?}");
    }
    assert!(
        names.iter().any(|n| n.starts_with("huge pair")),
        "{names:?}"
    );
    assert!(checks.iter().all(|c| c["passed"] == true), "{text}");
    let (code, text) = check(&["builtin:line-recall", "--config", r#"{"compat":"sera"}"#]);
    assert_eq!(code, 0, "{text}");
    for p in [
        "builtin:max-patch-lines",
        "builtin:truncate-ratio",
        "builtin:max-avg-tool-tokens",
    ] {
        let (code, text) = check(&[p]);
        assert_eq!(code, 0, "{p}: {text}");
        assert!(
            text.contains("pass deterministic across instances"),
            "{text}"
        );
    }
}

#[test]
fn broken_plugins_fail_with_the_reason() {
    let h = hostile();
    // The hostile plugin attacks only on pairs whose reference starts with "attack".
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("attack.jsonl");
    std::fs::write(
        &pairs,
        "{\"name\": \"trigger\", \"reference\": \"attack\\n\", \"candidate\": \"\"}\n",
    )
    .unwrap();
    let pairs = pairs.to_str().unwrap();
    let (code, text) = check(&[&h, "--config", r#"{"attack":"loop"}"#, "--pairs", pairs]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAIL contract"), "{text}");
    assert!(text.contains("fuel"), "{text}");
    let (code, text) = check(&[&h, "--config", r#"{"attack":"alloc"}"#, "--pairs", pairs]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("FAIL contract: trigger: memory limit"),
        "{text}"
    );
    let (code, text) = check(&[&h, "--config", r#"{"attack":"alloc"}"#, "--pairs", pairs]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("FAIL contract: trigger: memory limit"),
        "{text}"
    );
    let (code, text) = check(&[
        &h,
        "--config",
        r#"{"attack":"bad-verdict"}"#,
        "--pairs",
        pairs,
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("FAIL contract") && text.contains("breaks the contract"),
        "{text}"
    );
    let (code, text) = check(&[&h, "--config", r#"{"attack":"panic"}"#, "--pairs", pairs]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("panicked on purpose"), "{text}");
    // The wrong world, and a verifier that scores differently from the builtin.
    let (code, text) = check(&["builtin:line-recall", "--world", "tools"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("FAIL world: implements verifier, not tools"),
        "{text}"
    );
    let (code, text) = check(&[
        &h,
        "--config",
        r#"{"attack":"clock-random"}"#,
        "--same-as",
        "builtin:line-recall",
        "--same-as-config",
        "{}",
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("FAIL same scores as builtin:line-recall"),
        "{text}"
    );
}

#[test]
fn bad_pairs_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.jsonl");
    std::fs::write(
        &pairs,
        "{\"reference\": \"\", \"candidate\": \"\"}\n{\"reference\": 1}\n",
    )
    .unwrap();
    let (code, text) = check(&["builtin:line-recall", "--pairs", pairs.to_str().unwrap()]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("pairs.jsonl:2: expected a string `reference`"),
        "{text}"
    );
    let (code, text) = check(&["builtin:line-recall", "--world", "verfier"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--world verfier: not a world"), "{text}");
}
