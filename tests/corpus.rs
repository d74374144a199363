//! The corpus on real sources: the CPython standard library of the machine's python3, git
//! repositories at revisions, PyPI sdists downloaded with pip, and damaged inputs.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

fn sera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sera-host"))
        .args(args)
        .env("SERA_HOST_CACHE_DIR", test_cache_dir())
        .output()
        .expect("sera-host runs")
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Exit status 2 (bad input) and `expected` in the error message.
fn assert_fails(o: Output, expected: &str) {
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(expected), "{}", stderr(&o));
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdlib() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new("python3")
            .args([
                "-c",
                "import os, textwrap; print(os.path.dirname(textwrap.__file__))",
            ])
            .output()
            .unwrap();
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

fn ingest_stdlib(db: &Path) -> Output {
    sera(&[
        "corpus",
        "ingest",
        stdlib().to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--name",
        "stdlib",
        "--exclude",
        "site-packages",
        "--exclude",
        "__pycache__",
    ])
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).unwrap()
}

#[test]
fn stdlib_round_trips_and_reingest_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let db_s = db.to_str().unwrap();
    let snapshot = ok(&ingest_stdlib(&db)).trim().to_string();
    assert_eq!(snapshot.len(), 64);
    let stats = json(&sera(&["corpus", "stats", "--db", db_s, "--json"]));
    assert!(stats["raw_bytes"].as_u64().unwrap() > 20 << 20, "{stats}");

    // Same source again: same snapshot, no new blob, nothing parsed again.
    let again = json(&sera(&[
        "corpus",
        "ingest",
        stdlib().to_str().unwrap(),
        "--db",
        db_s,
        "--exclude",
        "site-packages",
        "--exclude",
        "__pycache__",
        "--json",
    ]));
    assert_eq!(again["snapshot"], snapshot.as_str());
    assert_eq!(again["new_blobs"], 0);
    assert_eq!(again["python_files_parsed"], 0);
    assert_eq!(
        json(&sera(&["corpus", "stats", "--db", db_s, "--json"]))["blobs"],
        stats["blobs"]
    );

    // Export: every stored file byte-identical to the original, modes kept; re-ingesting the
    // export gives the same snapshot.
    let out = dir.path().join("export");
    ok(&sera(&[
        "corpus",
        "export",
        &snapshot[..12],
        out.to_str().unwrap(),
        "--db",
        db_s,
    ]));
    let show = json(&sera(&["corpus", "show", "stdlib", "--db", db_s, "--json"]));
    let entries = show["entries"].as_array().unwrap();
    assert!(entries.len() > 1500, "{}", entries.len());
    for e in entries {
        let path = e["path"].as_str().unwrap();
        let original = std::fs::read(stdlib().join(path)).unwrap();
        assert_eq!(std::fs::read(out.join(path)).unwrap(), original, "{path}");
        use std::os::unix::fs::PermissionsExt;
        let exec = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o111 != 0;
        assert_eq!(exec(&out.join(path)), exec(&stdlib().join(path)), "{path}");
    }
    let db2 = dir.path().join("c2.sqlite");
    let re = ok(&sera(&[
        "corpus",
        "ingest",
        out.to_str().unwrap(),
        "--db",
        db2.to_str().unwrap(),
    ]));
    assert_eq!(re.trim(), snapshot);

    // cat gives the bytes of one file.
    let cat = sera(&["corpus", "cat", "stdlib", "textwrap.py", "--db", db_s]);
    assert_eq!(
        cat.stdout,
        std::fs::read(stdlib().join("textwrap.py")).unwrap()
    );

    assert_eq!(
        ok(&sera(&["corpus", "verify", "--db", db_s]))
            .lines()
            .count(),
        1
    );
}

/// Every file's functions (qualified name, first and last line) equal what Python's own
/// `ast` module finds, and a file fails to parse exactly when `ast.parse` rejects it.
#[test]
fn function_index_agrees_with_python_ast() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    ok(&ingest_stdlib(&db));
    let index = json(&sera(&[
        "corpus",
        "functions",
        "stdlib",
        "--db",
        db.to_str().unwrap(),
        "--json",
    ]));
    let mut ours: BTreeMap<String, Vec<(String, u64, u64)>> = BTreeMap::new();
    for f in index["functions"].as_array().unwrap() {
        ours.entry(f["path"].as_str().unwrap().to_string())
            .or_default()
            .push((
                f["qualname"].as_str().unwrap().to_string(),
                f["start_line"].as_u64().unwrap(),
                f["end_line"].as_u64().unwrap(),
            ));
    }
    let failures: Vec<String> = index["parse_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    let counted = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import ast, json, os, sys
root = sys.argv[1]
out = {}
for dirpath, dirs, files in os.walk(root):
    dirs[:] = [d for d in dirs if d not in ("site-packages", "__pycache__")]
    for f in files:
        if not f.endswith(".py"):
            continue
        full = os.path.join(dirpath, f)
        src = open(full, "rb").read()
        if len(src) > 2 << 20 or b"\0" in src[:8000]:
            continue
        rel = os.path.relpath(full, root)
        try:
            tree = ast.parse(src)
        except (SyntaxError, ValueError) as e:
            out[rel] = str(e)
            continue
        found = []
        def visit(node, prefix):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    q = prefix + child.name
                    found.append((q, child.lineno, child.end_lineno))
                    visit(child, q + ".<locals>.")
                elif isinstance(child, ast.ClassDef):
                    visit(child, prefix + child.name + ".")
                else:
                    visit(child, prefix)
        visit(tree, "")
        out[rel] = sorted(found, key=lambda f: (f[1], f[0]))
print(json.dumps(out))
"#,
        )
        .arg(stdlib())
        .output()
        .unwrap();
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Found {
        Functions(Vec<(String, u64, u64)>),
        Rejected(String),
    }
    type PerFile = BTreeMap<String, Found>;
    let theirs: PerFile = serde_json::from_slice(&counted.stdout).unwrap();
    assert!(theirs.len() > 1500, "{}", theirs.len());
    let mut compared = 0;
    for (path, want) in &theirs {
        match want {
            // CPython also refuses a file for its coding declaration alone (an unknown
            // codec, a BOM beside a declaration); the index does not judge encodings.
            Found::Rejected(why) if !failures.contains(path) => {
                assert!(
                    why.contains("encoding"),
                    "{path}: ast rejects it ({why}), we indexed it"
                )
            }
            Found::Rejected(_) => {}
            Found::Functions(want) => {
                assert!(
                    !failures.contains(path),
                    "{path}: ast parses it, we did not"
                );
                let got = ours.get(path).cloned().unwrap_or_default();
                assert_eq!(&got, want, "{path}");
                compared += 1;
            }
        }
    }
    assert!(compared > 1500);
    assert!(index["functions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["qualname"] == "TextWrapper._wrap_chunks" && f["is_method"] == true));

    // Filters: a path prefix, no tests, a minimum length.
    let all = index["functions"].as_array().unwrap();
    let expected = all
        .iter()
        .filter(|f| {
            f["path"].as_str().unwrap().starts_with("json/")
                && f["in_tests"] == false
                && f["line_count"].as_u64().unwrap() >= 5
        })
        .count();
    let filtered = json(&sera(&[
        "corpus",
        "functions",
        "stdlib",
        "--db",
        db.to_str().unwrap(),
        "--json",
        "--path",
        "json/",
        "--no-tests",
        "--min-lines",
        "5",
    ]));
    let filtered = filtered["functions"].as_array().unwrap();
    assert!(
        expected > 10 && filtered.len() == expected,
        "{expected} {}",
        filtered.len()
    );
}

#[test]
fn git_revisions_read_the_committed_tree() {
    let (_, textwrap) = python_stdlib_file("textwrap");
    let repo = GitRepo::new(&[("pkg/textwrap.py", &textwrap), ("README", "hello\n")]);
    let first = repo.git(&["rev-parse", "HEAD"]).trim().to_string();
    repo.write("pkg/new.py", "def added():\n    return 1\n");
    repo.git(&["add", "-A"]);
    repo.commit("second");
    // Uncommitted work must not leak into a revision's snapshot.
    repo.write("README", "dirty work tree\n");
    repo.write("untracked.py", "x = 1\n");

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let db_s = db.to_str().unwrap();
    let spec = |rev: &str| format!("{}@{rev}", repo.path().display());
    let a = json(&sera(&[
        "corpus",
        "ingest",
        &spec(&first),
        "--db",
        db_s,
        "--json",
    ]));
    let b = json(&sera(&[
        "corpus",
        "ingest",
        &spec("HEAD"),
        "--db",
        db_s,
        "--json",
    ]));
    assert_eq!(a["revision"], first.as_str());
    assert_eq!(a["files"], 2);
    assert_eq!(b["files"], 3);
    // The newer revision stores only the file that changed.
    assert_eq!(b["new_blobs"], 1);
    let readme = sera(&[
        "corpus",
        "cat",
        b["snapshot"].as_str().unwrap(),
        "README",
        "--db",
        db_s,
    ]);
    assert_eq!(readme.stdout, b"hello\n");

    // The same tree from a directory (a clean checkout) has the same snapshot id.
    repo.git(&["checkout", "-q", "--", "."]);
    std::fs::remove_file(repo.path().join("untracked.py")).unwrap();
    let exported = dir.path().join("x");
    ok(&sera(&[
        "corpus",
        "export",
        b["snapshot"].as_str().unwrap(),
        exported.to_str().unwrap(),
        "--db",
        db_s,
    ]));
    let d = ok(&sera(&[
        "corpus",
        "ingest",
        exported.to_str().unwrap(),
        "--db",
        db_s,
    ]));
    assert_eq!(d.trim(), b["snapshot"].as_str().unwrap());

    let bad = sera(&["corpus", "ingest", &spec("no-such-branch"), "--db", db_s]);
    assert_fails(bad, "unknown revision \"no-such-branch\"");
}

#[test]
fn symlinks_gitignore_binary_and_large_files() {
    let src = tempfile::tempdir().unwrap();
    let root = src.path();
    std::fs::write(root.join(".gitignore"), "build/\n*.log\n").unwrap();
    std::fs::create_dir_all(root.join("build")).unwrap();
    std::fs::write(root.join("build/out.py"), "x = 1\n").unwrap();
    std::fs::write(root.join("debug.log"), "log\n").unwrap();
    std::fs::write(root.join("mod.py"), "def f():\n    pass\n").unwrap();
    std::fs::write(root.join("blob.bin"), b"\x00\x01\x02").unwrap();
    std::fs::write(root.join("big.txt"), "x".repeat(3 << 20)).unwrap();
    std::os::unix::fs::symlink("mod.py", root.join("link.py")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("outside")).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config"), "[core]\n").unwrap();

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let db_s = db.to_str().unwrap();
    let r = json(&sera(&[
        "corpus",
        "ingest",
        root.to_str().unwrap(),
        "--db",
        db_s,
        "--json",
        "--name",
        "t",
    ]));
    assert_eq!(r["skipped"]["binary"], 1, "{r}");
    assert_eq!(r["skipped"]["too_large"], 1, "{r}");
    let show = json(&sera(&["corpus", "show", "t", "--db", db_s, "--json"]));
    let paths: Vec<(&str, u64)> = show["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["mode"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        paths,
        vec![
            (".gitignore", 0o100644),
            ("link.py", 0o120000),
            ("mod.py", 0o100644),
            ("outside", 0o120000)
        ]
    );
    // The symlink is stored as a link (its target), never followed.
    let cat = sera(&["corpus", "cat", "t", "outside", "--db", db_s]);
    assert_eq!(cat.stdout, b"/etc/passwd\n");
    let out = dir.path().join("out");
    ok(&sera(&[
        "corpus",
        "export",
        "t",
        out.to_str().unwrap(),
        "--db",
        db_s,
    ]));
    assert_eq!(
        std::fs::read_link(out.join("link.py")).unwrap(),
        Path::new("mod.py")
    );
    // A bigger limit keeps the large file.
    let r = json(&sera(&[
        "corpus",
        "ingest",
        root.to_str().unwrap(),
        "--db",
        db_s,
        "--json",
        "--max-file-size",
        "4000000",
    ]));
    assert_eq!(r["skipped"]["too_large"], 0, "{r}");
}

/// Extracts an sdist, then drops what sera-host leaves out by design (binary, over 2 MiB).
const EXTRACT_WITHOUT_SKIPPED: &str = r#"
import os, sys, tarfile
tarfile.open(sys.argv[1]).extractall(sys.argv[2])
for d, _, fs in os.walk(sys.argv[2]):
    for f in fs:
        p = os.path.join(d, f)
        b = b"" if os.path.islink(p) else open(p, "rb").read()
        if len(b) > 2 << 20 or b"\0" in b[:8000]:
            os.remove(p)
"#;

/// Sdists from PyPI (downloaded once into the cache by pip, as .ci/run does first).
#[test]
fn pypi_sdists_ingest_and_match_their_extracted_archive() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let db_s = db.to_str().unwrap();
    for (pkg, version) in [
        ("attrs", "23.2.0"),
        ("requests", "2.31.0"),
        ("marshmallow", "3.20.1"),
    ] {
        let spec = format!("pip:{pkg}=={version}");
        let r = json(&sera(&["corpus", "ingest", &spec, "--db", db_s, "--json"]));
        assert_eq!(r["name"], pkg);
        assert_eq!(r["revision"], version);
        // Extract the archive with Python's tarfile and compare with our export: diff -r.
        let archive = std::fs::read_dir(
            test_cache_dir()
                .join("pip")
                .join(format!("{pkg}-{version}")),
        )
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .expect("sdist in the pip cache");
        let extracted = dir.path().join(format!("{pkg}-extracted"));
        let status = Command::new("python3")
            .args(["-c", EXTRACT_WITHOUT_SKIPPED])
            .arg(&archive)
            .arg(&extracted)
            .status()
            .unwrap();
        assert!(status.success());
        let exported = dir.path().join(format!("{pkg}-export"));
        ok(&sera(&[
            "corpus",
            "export",
            r["snapshot"].as_str().unwrap(),
            exported.to_str().unwrap(),
            "--db",
            db_s,
        ]));
        let top = extracted.join(format!("{pkg}-{version}"));
        let diff = Command::new("diff")
            .arg("-r")
            .arg(&top)
            .arg(&exported)
            .output()
            .unwrap();
        assert!(
            diff.status.success(),
            "{pkg}: {}",
            String::from_utf8_lossy(&diff.stdout)
        );
        let functions = json(&sera(&["corpus", "functions", pkg, "--db", db_s, "--json"]));
        assert!(
            functions["functions"].as_array().unwrap().len() > 50,
            "{pkg}"
        );
    }
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let db_s = db.to_str().unwrap();
    let missing = sera(&["corpus", "ingest", "/no/such/dir", "--db", db_s]);
    assert_fails(missing, "/no/such/dir: no such file or directory");

    let corrupt = dir.path().join("broken.tar.gz");
    std::fs::write(&corrupt, b"\x1f\x8b\x08\x00garbage that is not gzip").unwrap();
    let out = sera(&["corpus", "ingest", corrupt.to_str().unwrap(), "--db", db_s]);
    assert_fails(out, "broken.tar.gz: corrupt archive");

    let text = dir.path().join("notes.sqlite");
    std::fs::write(
        &text,
        "just some text, long enough to not be an empty database file\n".repeat(20),
    )
    .unwrap();
    let out = sera(&["corpus", "stats", "--db", text.to_str().unwrap()]);
    assert_fails(out, "notes.sqlite: not a sera corpus");

    let other = dir.path().join("other.sqlite");
    rusqlite_free_sqlite(&other);
    let out = sera(&["corpus", "stats", "--db", other.to_str().unwrap()]);
    assert_fails(
        out,
        "other.sqlite: not a sera corpus (an SQLite database of something else",
    );

    let out = sera(&[
        "corpus",
        "stats",
        "--db",
        dir.path().join("absent.sqlite").to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains("absent.sqlite: no such corpus file"),
        "{}",
        stderr(&out)
    );
}

/// An SQLite database of another application, made by Python's sqlite3.
fn rusqlite_free_sqlite(path: &Path) {
    let status = Command::new("python3")
        .args(["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('create table t (x)'); c.commit()"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// `kill -9` in the middle of an ingest leaves a corpus that verifies, and the rerun gives the
/// snapshot a clean ingest gives. Readers work while the ingest writes.
#[test]
fn killed_ingest_leaves_a_valid_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.sqlite");
    let expected = ok(&ingest_stdlib(&clean)).trim().to_string();
    let db = dir.path().join("c.sqlite");
    let db_s = db.to_str().unwrap();
    for delay_ms in [150, 600, 1200] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sera-host"))
            .args([
                "corpus",
                "ingest",
                stdlib().to_str().unwrap(),
                "--db",
                db_s,
                "--name",
                "stdlib",
            ])
            .args(["--exclude", "site-packages", "--exclude", "__pycache__"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if db.exists() {
            // A reader while the writer works.
            let stats = sera(&["corpus", "stats", "--db", db_s]);
            assert!(stats.status.success(), "reader blocked: {}", stderr(&stats));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if !db.exists() {
            // Killed before it even created the file: nothing to check.
            continue;
        }
        let verify = sera(&["corpus", "verify", "--db", db_s]);
        assert!(
            verify.status.success(),
            "after kill at {delay_ms} ms: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }
    assert_eq!(ok(&ingest_stdlib(&db)).trim(), expected);
    assert!(sera(&["corpus", "verify", "--db", db_s]).status.success());
}

#[test]
fn verify_finds_a_corrupted_blob() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a.py"), "def a():\n    return 1\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let db_s = db.to_str().unwrap();
    ok(&sera(&[
        "corpus",
        "ingest",
        src.path().to_str().unwrap(),
        "--db",
        db_s,
    ]));
    let status = Command::new("python3")
        .args(["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"update blobs set data = x'28b52ffd2000290000626164'\"); c.commit()"])
        .arg(&db)
        .status()
        .unwrap();
    assert!(status.success());
    let out = sera(&["corpus", "verify", "--db", db_s]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("corrupt blob "), "{text}");
}

/// The attrs sdist repacked by Python's tarfile and zipfile as .tar.bz2 and .zip: the same
/// tree, so the same snapshot hash as the original .tar.gz; a damaged zip is a clear error.
#[test]
fn bz2_and_zip_archives_give_the_same_snapshot_as_the_sdist() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let db_s = db.to_str().unwrap();
    let original = json(&sera(&[
        "corpus",
        "ingest",
        "pip:attrs==23.2.0",
        "--db",
        db_s,
        "--json",
    ]));
    let sdist = std::fs::read_dir(test_cache_dir().join("pip").join("attrs-23.2.0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .expect("sdist in the pip cache");
    let status = Command::new("python3")
        .args([
            "-c",
            r#"
import os, sys, tarfile, zipfile
sdist, out = sys.argv[1], sys.argv[2]
tarfile.open(sdist).extractall(os.path.join(out, "x"))
top = os.path.join(out, "x", "attrs-23.2.0")
with tarfile.open(os.path.join(out, "attrs.tar.bz2"), "w:bz2") as t:
    t.add(top, arcname="attrs-23.2.0")
with zipfile.ZipFile(os.path.join(out, "attrs.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for d, _, fs in os.walk(top):
        for f in sorted(fs):
            p = os.path.join(d, f)
            z.write(p, os.path.join("attrs-23.2.0", os.path.relpath(p, top)))
"#,
        ])
        .arg(&sdist)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    for archive in ["attrs.tar.bz2", "attrs.zip"] {
        let path = dir.path().join(archive);
        let r = json(&sera(&[
            "corpus",
            "ingest",
            path.to_str().unwrap(),
            "--db",
            db_s,
            "--json",
        ]));
        assert_eq!(r["snapshot"], original["snapshot"], "{archive}");
        assert_eq!(r["new_blobs"], 0, "{archive}: {r}");
    }

    let mut damaged = std::fs::read(dir.path().join("attrs.zip")).unwrap();
    let half = damaged.len() / 2;
    damaged.truncate(half);
    let cut = dir.path().join("cut.zip");
    std::fs::write(&cut, damaged).unwrap();
    assert_fails(
        sera(&["corpus", "ingest", cut.to_str().unwrap(), "--db", db_s]),
        "cut.zip: corrupt zip archive",
    );
}

/// A file name that is not UTF-8 is counted and named in the report, never a panic; the
/// rest of the directory is stored.
#[test]
fn non_utf8_file_names_are_reported() {
    use std::os::unix::ffi::OsStrExt;
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("ok.py"), "def f():\n    pass\n").unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9.py");
    std::fs::write(src.path().join(odd), "x = 1\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let r = json(&sera(&[
        "corpus",
        "ingest",
        src.path().to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(r["files"], 1, "{r}");
    assert_eq!(r["skipped"]["non_utf8_path"], 1, "{r}");
    assert!(r["skipped"]["examples"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.as_str().unwrap().contains("non-UTF-8 path: caf")));
}

/// Threads opening and closing read-only connections to one WAL corpus (what `corpus merge`'s
/// blob readers do) must not deadlock: with plain connections SQLite 3.51's unix VFS locks its
/// global and per-file mutexes in opposite orders on open and on close, and this loop hung
/// every time (`SerialConnection` opens and closes them one at a time).
#[test]
fn concurrent_opens_and_closes_of_one_corpus_do_not_deadlock() {
    use sera_host::corpus::connection::SerialConnection;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    drop(sera_host::corpus::Corpus::open(&db).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let path = db.clone();
    std::thread::spawn(move || {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let c = SerialConnection::open_with_flags(
                            &path,
                            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                        )
                        .unwrap();
                        let n: i64 = c
                            .query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))
                            .unwrap();
                        assert_eq!(n, 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let _ = tx.send(());
    });
    rx.recv_timeout(std::time::Duration::from_secs(120))
        .expect("4 threads x 2000 opens and closes did not finish in 120 s: deadlocked");
}
