//! Helpers shared by the integration tests: real git repositories in temp dirs, the committed
//! plugin components, and a plugin engine.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sera_host::plugin::{Limits, LoadedPlugin, PluginEngine, PluginSource, Verifier};

/// Where tests keep downloads shared with .ci/run (it fetches the pip sdists there first).
pub fn test_cache_dir() -> PathBuf {
    std::env::var_os("SERA_HOST_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("sera-host-test-cache"))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn dist(name: &str) -> PathBuf {
    repo_root().join("plugins/dist").join(name)
}

pub fn engine() -> PluginEngine {
    PluginEngine::new(None).expect("engine")
}

pub fn load(engine: &PluginEngine, spec: &str) -> LoadedPlugin {
    engine
        .load(&PluginSource::parse(spec).unwrap())
        .expect("load plugin")
}

pub fn line_recall(engine: &PluginEngine, config: &str) -> Verifier {
    let plugin = load(engine, "builtin:line-recall");
    Verifier::new(engine, &plugin, config, Limits::default()).expect("verifier")
}

pub fn hostile(engine: &PluginEngine, attack: &str, limits: Limits) -> Verifier {
    let plugin = engine
        .load(&PluginSource::File(dist("hostile.wasm")))
        .unwrap();
    Verifier::new(
        engine,
        &plugin,
        &format!("{{\"attack\":\"{attack}\"}}"),
        limits,
    )
    .expect("hostile verifier")
}

/// Real Python source: a module of the interpreter's standard library.
pub fn python_stdlib_file(module: &str) -> (String, String) {
    let out = Command::new("python3")
        .args(["-c", &format!("import {module}; print({module}.__file__)")])
        .output()
        .expect("python3 runs");
    let path = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (format!("{module}.py"), text)
}

/// A git repository in a temp dir with one commit of `files`.
pub struct GitRepo {
    pub dir: tempfile::TempDir,
}

impl GitRepo {
    pub fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = Self { dir };
        repo.git(&["init", "-q"]);
        for (name, text) in files {
            repo.write(name, text);
        }
        repo.git(&["add", "-A"]);
        repo.commit("base");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .current_dir(self.path())
            .args(args)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Commits everything staged, with a fixed author.
    pub fn commit(&self, message: &str) {
        self.git(&[
            "-c",
            "user.email=t@t",
            "-c",
            "user.name=t",
            "commit",
            "-qm",
            message,
        ]);
    }

    pub fn write(&self, name: &str, text: &str) {
        let path = self.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap()
    }

    /// Applies `edits` (file, old text, new text; each old text must occur once) to the committed
    /// tree, returns `git diff`, and resets the tree.
    pub fn diff_after(&self, edits: &[(&str, &str, &str)]) -> String {
        for (file, old, new) in edits {
            let text = self.read(file);
            assert_eq!(
                text.matches(old).count(),
                1,
                "{old:?} must occur once in {file}"
            );
            self.write(file, &text.replacen(old, new, 1));
        }
        let diff = self.git(&["diff"]);
        self.git(&["checkout", "-q", "--", "."]);
        diff
    }
}

/// The plain files of a directory, sorted by name, with their bytes (to compare outputs).
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The stdout of a command that must have succeeded (else its whole output in the panic).
pub fn ok(out: std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{text}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Every row of the shards that `OUT/manifest.json` lists, in shard order.
pub fn shard_rows(out: &Path) -> Vec<serde_json::Value> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let mut rows = Vec::new();
    for s in manifest["shards"].as_array().unwrap() {
        let bytes = std::fs::read(out.join(s["file"].as_str().unwrap())).unwrap();
        let raw = zstd::decode_all(&bytes[..]).unwrap();
        for l in std::str::from_utf8(&raw).unwrap().lines() {
            rows.push(serde_json::from_str(l).unwrap());
        }
    }
    rows
}

/// The `sera-host` binary, with the test cache's compiled plugins.
pub fn sera_host() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sera-host"));
    c.env("SERA_HOST_CACHE_DIR", test_cache_dir().join("plugins"));
    c
}

/// The demo pipeline written into `dir` (its corpus and output land there), with the Qwen
/// tokenizer of ../shared given by absolute paths and each other line passed through `edit`.
pub fn demo_pipeline(dir: &Path, edit: &dyn Fn(&str) -> String) -> PathBuf {
    let demo = std::fs::read_to_string(repo_root().join("corpora/demo/pipeline.toml")).unwrap();
    let shared = repo_root().join("../shared/fixtures/tokenizers");
    let tokenizer = format!(
        "tokenizer = {{ kind = \"qwen-bpe\", dir = \"{}\", config = \"{}\" }}",
        shared.join("qwen2").display(),
        shared.join("qwen3/tokenizer_config.json").display()
    );
    let text: String = demo
        .lines()
        .map(|l| {
            if l.starts_with("tokenizer = ") {
                tokenizer.clone()
            } else {
                edit(l)
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let p = dir.join("pipeline.toml");
    std::fs::write(&p, text + "\n").unwrap();
    p
}
