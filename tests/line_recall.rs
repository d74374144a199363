//! The builtin `line-recall` verifier, run as a wasm component, on patches made by real `git diff`
//! over real Python source (modules of the interpreter's standard library).

mod common;

use std::process::Command;

use common::*;
use sera_host::plugin::{PatchPair, Verdict};

fn pair(reference: &str, candidate: &str) -> PatchPair {
    PatchPair {
        reference: reference.to_string(),
        candidate: candidate.to_string(),
    }
}

fn score(config: &str, reference: &str, candidate: &str) -> Verdict {
    let engine = engine();
    let mut v = line_recall(&engine, config);
    v.verify("test", &pair(reference, candidate))
        .expect("verdict")
}

fn textwrap_repo() -> GitRepo {
    let (name, text) = python_stdlib_file("textwrap");
    assert_eq!(name, "textwrap.py");
    GitRepo::new(&[("textwrap.py", &text)])
}

const WIDTH: (&str, &str, &str) = (
    "textwrap.py",
    "        self.width = width\n",
    "        self.width = max(1, width)\n",
);
const TABSIZE: (&str, &str, &str) = (
    "textwrap.py",
    "        self.tabsize = tabsize\n",
    "        self.tabsize = int(tabsize)\n",
);
const CHECK: (&str, &str, &str) = (
    "textwrap.py",
    "        if self.width <= 0:\n",
    "        if self.width < 1:\n",
);

#[test]
fn half_of_the_reference_edits_scores_one_half() {
    let repo = textwrap_repo();
    let p1 = repo.diff_after(&[WIDTH, TABSIZE]);
    let p2 = repo.diff_after(&[WIDTH]);
    let v = score("{}", &p1, &p2);
    assert_eq!((v.score, v.matched, v.total), (Some(0.5), 2, 4));
}

#[test]
fn extra_candidate_edits_do_not_lower_recall() {
    let repo = textwrap_repo();
    let p1 = repo.diff_after(&[WIDTH, TABSIZE]);
    let p2 = repo.diff_after(&[WIDTH, TABSIZE, CHECK]);
    let v = score("{}", &p1, &p2);
    assert_eq!((v.score, v.matched, v.total), (Some(1.0), 4, 4));
}

#[test]
fn a_different_fix_scores_zero() {
    let repo = textwrap_repo();
    let p1 = repo.diff_after(&[WIDTH]);
    let p2 = repo.diff_after(&[(
        "textwrap.py",
        "        self.width = width\n",
        "        self.width = width or 70\n",
    )]);
    let v = score("{}", &p1, &p2);
    // The removed line is the same, the added one differs: 1 of 2.
    assert_eq!((v.score, v.matched, v.total), (Some(0.5), 1, 2));
    let p3 = repo.diff_after(&[CHECK]);
    assert_eq!(score("{}", &p1, &p3).score, Some(0.0));
}

#[test]
fn whitespace_is_part_of_a_line() {
    let repo = textwrap_repo();
    let p1 = repo.diff_after(&[WIDTH]);
    let p2 = repo.diff_after(&[(
        "textwrap.py",
        "        self.width = width\n",
        "        self.width = max(1,  width)\n",
    )]);
    let v = score("{}", &p1, &p2);
    assert_eq!((v.matched, v.total), (1, 2));
}

#[test]
fn matching_is_over_the_whole_patch_not_per_file() {
    let (_, text) = python_stdlib_file("textwrap");
    let repo = GitRepo::new(&[("a/textwrap.py", &text), ("b/textwrap.py", &text)]);
    let p1 = repo.diff_after(&[("a/textwrap.py", WIDTH.1, WIDTH.2)]);
    let p2 = repo.diff_after(&[("b/textwrap.py", WIDTH.1, WIDTH.2)]);
    let v = score("{}", &p1, &p2);
    assert_eq!((v.score, v.matched, v.total), (Some(1.0), 2, 2));
}

#[test]
fn each_candidate_line_matches_at_most_once() {
    let (_, shlex) = python_stdlib_file("shlex");
    let repo = GitRepo::new(&[("shlex.py", &shlex), ("copy.py", &shlex)]);
    let edit = (
        "    if not s:\n        return \"''\"\n",
        "    if not s:\n        return '\"\"'\n",
    );
    // P1 makes the same edit in two files (4 change lines, two pairs of duplicates); P2 in one.
    let p1 = repo.diff_after(&[("shlex.py", edit.0, edit.1), ("copy.py", edit.0, edit.1)]);
    let p2 = repo.diff_after(&[("shlex.py", edit.0, edit.1)]);
    let v = score("{}", &p1, &p2);
    assert_eq!((v.score, v.matched, v.total), (Some(0.5), 2, 4));
}

#[test]
fn empty_candidate_is_no_edit_and_empty_reference_has_no_score() {
    let repo = textwrap_repo();
    let p1 = repo.diff_after(&[WIDTH]);
    let v = score("{}", &p1, "");
    assert_eq!(
        (v.score, v.matched, v.total, v.detail.as_str()),
        (Some(0.0), 0, 2, "no edit")
    );

    // A mode change is a real diff with no change lines.
    std::fs::set_permissions(
        repo.path().join("textwrap.py"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mode_only = repo.git(&["diff"]);
    assert!(mode_only.contains("new mode 100755"), "{mode_only}");
    let v = score("{}", &mode_only, &p1);
    assert_eq!((v.score, v.total), (None, 0));
}

#[test]
fn removed_line_starting_with_dashes_counts_unless_sera_compat() {
    let sql = "-- schema\n-- drop the old table first\nDROP TABLE t;\nCREATE TABLE t (x int);\n";
    let repo = GitRepo::new(&[("schema.sql", sql)]);
    let p1 = repo.diff_after(&[(
        "schema.sql",
        "-- drop the old table first\n",
        "-- recreate the table\n",
    )]);
    assert!(p1.contains("\n--- drop the old table first\n"), "{p1}");
    let hunks = score("{}", &p1, &p1);
    assert_eq!((hunks.matched, hunks.total), (2, 2));
    // SERA's script skips every line starting with '---', the removed comment included.
    let sera = score(r#"{"compat":"sera"}"#, &p1, &p1);
    assert_eq!((sera.matched, sera.total), (1, 1));
}

#[test]
fn batch_gives_the_same_verdicts_as_single_calls() {
    let repo = textwrap_repo();
    let patches = [
        repo.diff_after(&[WIDTH, TABSIZE]),
        repo.diff_after(&[WIDTH]),
        repo.diff_after(&[CHECK]),
        String::new(),
    ];
    let mut pairs = Vec::new();
    for a in &patches[..3] {
        for b in &patches {
            pairs.push(pair(a, b));
        }
    }
    let engine = engine();
    let mut v = line_recall(&engine, "{}");
    let items: Vec<String> = (0..pairs.len()).map(|i| format!("pair {i}")).collect();
    let batch = v.verify_batch(&items, &pairs);
    for (i, p) in pairs.iter().enumerate() {
        assert_eq!(batch[i].as_ref().unwrap(), &v.verify(&items[i], p).unwrap());
    }
    assert_eq!(v.instantiations(), 1);
}

#[test]
fn malformed_patch_is_a_per_item_error_naming_the_side_and_line() {
    let engine = engine();
    let mut v = line_recall(&engine, "{}");
    let bad = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-a\n+b\n";
    let err = v
        .verify(
            "item-7",
            &pair("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n", bad),
        )
        .unwrap_err();
    assert_eq!(err.item, "item-7");
    assert!(err.message.contains("candidate patch: line 6"), "{err}");
}

#[test]
fn unsupported_config_is_refused_at_init() {
    let engine = engine();
    let plugin = load(&engine, "builtin:line-recall");
    let err = sera_host::plugin::Verifier::new(
        &engine,
        &plugin,
        r#"{"compat":"swe"}"#,
        Default::default(),
    )
    .err()
    .expect("config refused");
    assert!(format!("{err:#}").contains("unsupported config"), "{err:#}");
}

/// SERA's compat mode against an independent Python implementation of the rule the issue
/// describes, run by the real interpreter (so `splitlines` and `strip` are Python's own).
#[test]
fn sera_compat_agrees_with_python() {
    const ORACLE: &str = r#"
import sys
def changes(patch):
    out = []
    for line in patch.splitlines():
        if line[:4] == "diff" or line[:3] in ("---", "+++") or line[:2] == "@@":
            continue
        if line[:1] in ("+", "-") and line[1:].strip() != "":
            out.append(line)
    return out
ref = changes(open(sys.argv[1], encoding="utf-8", newline="").read())
cand = changes(open(sys.argv[2], encoding="utf-8", newline="").read())
matched = 0
for line in ref:
    if line in cand:
        matched += 1
        cand.remove(line)
print(matched, len(ref))
"#;
    let repo = textwrap_repo();
    let mut cases = vec![
        (
            repo.diff_after(&[WIDTH, TABSIZE]),
            repo.diff_after(&[WIDTH]),
        ),
        (
            repo.diff_after(&[CHECK]),
            repo.diff_after(&[CHECK, TABSIZE]),
        ),
    ];
    // Line breaks and blanks where Python and Rust differ unless handled.
    cases.push((
        "@@ -1,3 +1,3 @@\r\n-a\r\n+b\x0c+c\n-\x1f\n+\u{2028}+d\n--x\n".to_string(),
        "+b\n+c\r-a\n+d\n--x\n-\x1f\n".to_string(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let mut v = line_recall(&engine, r#"{"compat":"sera"}"#);
    for (i, (p1, p2)) in cases.iter().enumerate() {
        let (f1, f2) = (dir.path().join("p1"), dir.path().join("p2"));
        std::fs::write(&f1, p1).unwrap();
        std::fs::write(&f2, p2).unwrap();
        let out = Command::new("python3")
            .arg("-c")
            .arg(ORACLE)
            .arg(&f1)
            .arg(&f2)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected = String::from_utf8(out.stdout).unwrap();
        let got = v.verify(&format!("case {i}"), &pair(p1, p2)).unwrap();
        assert_eq!(
            format!("{} {}\n", got.matched, got.total),
            expected,
            "case {i}"
        );
    }
}
