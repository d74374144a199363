//! Per-repository Python environments: paths a sandboxed command needs to run an interpreter.
//! (Building them is in `env_build`.)

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The system paths the sandbox always shows; an interpreter under one needs nothing more.
fn under_system(p: &Path) -> bool {
    crate::sandbox::SYSTEM_PATHS
        .iter()
        .any(|s| p.starts_with(s))
}

/// The `python3` on PATH: (its executable, `sys.base_prefix`), asked once per process.
pub fn host_python() -> Option<&'static (PathBuf, PathBuf)> {
    static FOUND: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let out = std::process::Command::new("python3")
                .args([
                    "-c",
                    "import sys, os; print(os.path.realpath(sys.executable)); print(sys.base_prefix)",
                ])
                .output()
                .ok()?;
            if !out.status.success() {
                return None;
            }
            let text = String::from_utf8(out.stdout).ok()?;
            let mut lines = text.lines();
            Some((lines.next()?.into(), lines.next()?.into()))
        })
        .as_ref()
}

/// Read-only paths for the bare interpreter: its prefix when it lives outside the system paths
/// (pyenv under $HOME, say), so that only it, not the rest of $HOME, is visible.
pub fn interpreter_paths() -> Vec<PathBuf> {
    match host_python() {
        Some((_, prefix)) if !under_system(prefix) => vec![prefix.clone()],
        _ => Vec::new(),
    }
}

/// Read-only paths for an environment: itself and the interpreter it was made from.
pub fn read_only_paths(env: &Path) -> Result<Vec<PathBuf>> {
    let cfg = env.join("pyvenv.cfg");
    let text = std::fs::read_to_string(&cfg).with_context(|| {
        format!(
            "{}: not a Python environment (no pyvenv.cfg)",
            env.display()
        )
    })?;
    let mut paths = vec![env.to_path_buf()];
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == "home" {
                let bin = PathBuf::from(v.trim());
                let prefix = bin.parent().map(Path::to_path_buf).unwrap_or(bin);
                if !under_system(&prefix) {
                    paths.push(prefix);
                }
            }
        }
    }
    Ok(paths)
}

/// Where environments live: `$SERA_HOST_ENVS`, else `envs/` in the cache directory.
pub fn envs_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SERA_HOST_ENVS") {
        return d.into();
    }
    crate::cache_dir::cache_dir()
        .unwrap_or_else(|| std::env::temp_dir().join("sera-host"))
        .join("envs")
}

/// `uv`: `$SERA_HOST_UV`, else the first on PATH.
pub fn find_uv() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SERA_HOST_UV") {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("uv"))
        .find(|p| p.is_file())
}

/// The interpreter's identity in environment ids and exec keys (asked once per process).
pub fn interpreter_id() -> String {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(ask_interpreter_id).clone()
}

fn ask_interpreter_id() -> String {
    match host_python() {
        Some((exe, prefix)) => {
            let version = prefix
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let out = std::process::Command::new(exe)
                .args(["-c", "import platform; print(platform.python_version())"])
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_string())
                .unwrap_or(version);
            format!("cpython-{out} {}", exe.display())
        }
        None => "no python3".into(),
    }
}

/// The `env` part of an exec key for the bare interpreter.
pub fn bare_env_id() -> String {
    format!("bare:{}", interpreter_id())
}

/// What a rollout runs its commands with.
#[derive(Clone, Debug)]
pub struct Chosen {
    /// The exec-key identity: an environment id, or `bare:INTERPRETER`.
    pub id: String,
    /// The environment directory, when there is one.
    pub dir: Option<PathBuf>,
    /// Said in the rollout's metadata when it runs with the bare interpreter.
    pub note: Option<String>,
}

impl Chosen {
    pub fn bare(note: Option<String>) -> Chosen {
        Chosen {
            id: bare_env_id(),
            dir: None,
            note,
        }
    }

    /// The sandbox paths and variables for it.
    pub fn apply(&self, config: &mut crate::sandbox::SandboxConfig) -> Result<()> {
        match &self.dir {
            Some(dir) => {
                config.extra_read_only = read_only_paths(dir)?;
                config.path_prefix = vec![dir.join("bin")];
                config.env = vec![("VIRTUAL_ENV".into(), dir.display().to_string())];
            }
            None => {
                config.extra_read_only = interpreter_paths();
                config.path_prefix = Vec::new();
                if let Some(bin) = bare_bin() {
                    config.extra_read_only.push(bin.clone());
                    config.path_prefix.push(bin);
                }
                config.env = Vec::new();
            }
        }
        Ok(())
    }

    pub fn metadata(&self) -> serde_json::Value {
        serde_json::json!({
            "env": self.id,
            "python": if self.dir.is_some() { "environment" } else { "bare interpreter" },
            "note": self.note,
        })
    }
}

/// The stored environment of a snapshot that is usable here, or why there is none.
pub fn stored(
    corpus: &crate::corpus::Corpus,
    snapshot: &str,
) -> Result<Option<crate::corpus::EnvRow>> {
    Ok(corpus
        .envs(Some(snapshot))?
        .into_iter()
        .find(|e| e.status != "ok" || Path::new(&e.path).join(COMPLETE).is_file()))
}

/// What `stored` means for a rollout.
pub fn choose(row: Option<crate::corpus::EnvRow>) -> Chosen {
    match row {
        Some(e) if e.status == "ok" => Chosen {
            id: e.id,
            dir: Some(PathBuf::from(e.path)),
            note: None,
        },
        Some(e) => Chosen::bare(Some(format!(
            "the repository's environment could not be built ({}); commands ran with the bare interpreter",
            e.report.lines().last().unwrap_or("no report")
        ))),
        None => Chosen::bare(Some(
            "no environment was built for this snapshot; commands ran with the bare interpreter"
                .into(),
        )),
    }
}

/// An exclusive `flock` on `path`, held until the file is dropped.
fn lock(path: &Path) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("{}: cannot open the build lock", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        anyhow::bail!(
            "{}: flock: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(f)
}

/// A directory with `python` and `python3` for the bare interpreter (Debian's has no `python`,
/// pyenv's is not on the sandbox's PATH).
fn bare_bin() -> Option<PathBuf> {
    let (exe, _) = host_python()?;
    let dir = envs_dir().join(format!(
        "bare-{}",
        &hex::encode(Sha256::digest(exe.as_os_str().as_encoded_bytes()))[..16]
    ));
    let bin = dir.join("bin");
    if !bin.join("python").exists() {
        std::fs::create_dir_all(&bin).ok()?;
        for name in ["python", "python3"] {
            let tmp = bin.join(format!(".{name}.{}", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(exe, &tmp).ok()?;
            std::fs::rename(&tmp, bin.join(name)).ok()?;
        }
    }
    Some(bin)
}

/// Marks a finished environment directory.
const COMPLETE: &str = ".sera-env-complete";

/// Options of `corpus env build`.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub dir: PathBuf,
    /// Only the local uv cache, no package index.
    pub offline: bool,
    /// Installed besides the repository's requirements.
    pub extra: Vec<String>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            dir: envs_dir(),
            offline: false,
            extra: vec!["pytest".into()],
        }
    }
}

fn run_step(report: &mut String, what: &str, cmd: &mut std::process::Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: cannot start {:?}", cmd.get_program()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    report.push_str(&format!("$ {what}\n{}", stderr));
    if !out.status.success() {
        anyhow::bail!(
            "{what} failed ({}): {}",
            out.status,
            stderr
                .trim()
                .lines()
                .rev()
                .take(6)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The files `uv pip compile` reads the repository's requirements from, best first.
fn requirement_inputs(src: &Path) -> Vec<PathBuf> {
    for name in [
        "requirements.txt",
        "pyproject.toml",
        "setup.cfg",
        "setup.py",
    ] {
        let p = src.join(name);
        if p.is_file() {
            // pyproject.toml without a [project] table (a tool config only) declares nothing.
            if name == "pyproject.toml" {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                if !text.contains("[project]") && !text.contains("[tool.poetry") {
                    continue;
                }
            }
            return vec![p];
        }
    }
    Vec::new()
}

/// Builds (or finds) the environment of `snapshot`: resolves its requirements with uv, makes a
/// virtual environment keyed by (snapshot, interpreter, resolved requirements), installs into
/// it from the index once and from uv's cache after, and puts /workspace on its path so the
/// teacher's edits are what gets imported. A failure is stored too (the rollouts then say they
/// ran bare).
pub fn build(
    corpus: &crate::corpus::Corpus,
    snapshot: &str,
    opts: &BuildOptions,
) -> Result<crate::corpus::EnvRow> {
    let interpreter = interpreter_id();
    let mut report = String::new();
    let attempt = (|| -> Result<(String, String, PathBuf)> {
        let uv = find_uv().context(
            "uv not found: install it (`python3 -m pip install uv`) or set SERA_HOST_UV",
        )?;
        let (python, _) = host_python().context("no python3 on PATH")?;
        let src = tempfile::Builder::new().prefix("sera-env-src-").tempdir()?;
        corpus.export(snapshot, src.path())?;
        let extra = src.path().join(".sera-extra.in");
        std::fs::write(&extra, opts.extra.join("\n") + "\n")?;
        let mut inputs = requirement_inputs(src.path());
        inputs.push(extra);
        let cache = opts.dir.join("uv-cache");
        let mut compile = std::process::Command::new(&uv);
        compile
            .args(["pip", "compile", "--quiet", "--no-header", "--no-annotate"])
            .arg("--python")
            .arg(python)
            .arg("--cache-dir")
            .arg(&cache)
            .args(inputs.iter())
            .current_dir(src.path());
        if opts.offline {
            compile.arg("--offline");
        }
        let resolved = run_step(&mut report, "uv pip compile", &mut compile)?;
        let requirements: String = resolved
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let id = hex::encode(Sha256::digest(
            crate::digest::canonical_json(&serde_json::json!({
                "snapshot": snapshot,
                "interpreter": interpreter,
                "requirements": requirements,
            }))
            .as_bytes(),
        ));
        let dir = opts.dir.join(&id);
        std::fs::create_dir_all(&opts.dir)?;
        // Other runs (other processes) may build the same environment now: one at a time.
        let _lock = lock(&opts.dir.join(format!("{id}.lock")))?;
        if dir.join(COMPLETE).is_file() {
            report.push_str("reused: the environment was built before\n");
            return Ok((id, requirements, dir));
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        run_step(
            &mut report,
            "uv venv",
            std::process::Command::new(&uv)
                .args(["venv", "--quiet", "--python"])
                .arg(python)
                .arg("--cache-dir")
                .arg(&cache)
                .arg(&dir),
        )?;
        let reqs = src.path().join(".sera-resolved.txt");
        std::fs::write(&reqs, &requirements)?;
        let mut install = std::process::Command::new(&uv);
        install
            .args(["pip", "install", "--quiet", "--python"])
            .arg(dir.join("bin/python"))
            .arg("--cache-dir")
            .arg(&cache)
            .arg("-r")
            .arg(&reqs);
        if opts.offline {
            install.arg("--offline");
        }
        run_step(&mut report, "uv pip install", &mut install)?;
        let purelib = run_step(
            &mut report,
            "locate site-packages",
            std::process::Command::new(dir.join("bin/python")).args([
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ]),
        )?;
        let mut pth = String::from("/workspace\n");
        if src.path().join("src").is_dir() {
            pth.push_str("/workspace/src\n");
        }
        std::fs::write(Path::new(purelib.trim()).join("sera-workspace.pth"), pth)?;
        std::fs::write(dir.join(COMPLETE), &requirements)?;
        Ok((id, requirements, dir))
    })();
    let row = match attempt {
        Ok((id, requirements, dir)) => crate::corpus::EnvRow {
            id,
            snapshot: snapshot.to_string(),
            interpreter,
            requirements,
            path: dir.display().to_string(),
            status: "ok".into(),
            report,
            built_at: String::new(),
        },
        Err(e) => {
            report.push_str(&format!("error: {e:#}\n"));
            crate::corpus::EnvRow {
                id: hex::encode(Sha256::digest(format!("failed {snapshot} {interpreter}"))),
                snapshot: snapshot.to_string(),
                interpreter,
                requirements: String::new(),
                path: String::new(),
                status: "failed".into(),
                report,
                built_at: String::new(),
            }
        }
    };
    corpus.put_env(&row)?;
    Ok(row)
}
