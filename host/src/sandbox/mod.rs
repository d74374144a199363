//! Running the teacher's commands without Docker. Every command is a process that the sandbox's
//! zygote (`zygote.rs`) forks and [`helper`] sets up: its own user, mount and pid namespaces, a network
//! namespace without a usable interface, a private root with the workspace at /workspace,
//! Landlock, seccomp, rlimits and a pids cgroup (or RLIMIT_NPROC). The host enforces the wall
//! clock by killing the command's process group; the pid namespace takes everything the command
//! left behind with it.

mod cgroup;
mod filters;
pub mod helper;
mod prepared;
mod spec;
mod wire;
mod zygote;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub use spec::{HelperSpec, Layer, LayerReport, Prepare, ALL_LAYERS};

/// What a sandboxed command may use.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    pub timeout: Duration,
    pub memory_mib: u64,
    /// CPU seconds (soft; the hard limit is one more). Defaults to the timeout.
    pub cpu_s: Option<u64>,
    pub file_size_mib: u64,
    pub max_processes: u64,
    /// Output kept per command (stdout and stderr together); the rest is counted and dropped.
    pub output_bytes: usize,
    /// Layers that may be missing here, named by the pipeline; never weaker silently.
    pub allow_weaker: Vec<Layer>,
    /// Host paths visible read-only besides the system's (an interpreter, an environment).
    pub extra_read_only: Vec<PathBuf>,
    /// Variables added to the command's environment (after the fixed ones).
    pub env: Vec<(String, String)>,
    /// Prepended to PATH.
    pub path_prefix: Vec<PathBuf>,
    /// Whether the next command's sandbox is made ahead of its call.
    pub prepare: Prepare,
}

/// Whether the zygote makes the next command's sandbox before its call (`prepared.rs`): the
/// call then waits only for its own part (workspace, /tmp, cgroup, two Landlock rules).
impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            timeout: Duration::from_secs(60),
            memory_mib: 4096,
            cpu_s: None,
            file_size_mib: 512,
            max_processes: 256,
            output_bytes: 1 << 20,
            allow_weaker: Vec::new(),
            extra_read_only: Vec::new(),
            env: Vec::new(),
            path_prefix: Vec::new(),
            prepare: Prepare::from_env(),
        }
    }
}

/// The system paths every command sees read-only.
pub const SYSTEM_PATHS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
];

/// What one command did.
#[derive(Clone, Debug)]
pub struct ExecOutcome {
    /// The exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// stdout and stderr as they interleaved, up to the cap.
    pub output: Vec<u8>,
    /// Bytes written in all (kept and dropped).
    pub output_total: u64,
    pub truncated: bool,
    pub timed_out: bool,
    pub duration: Duration,
    /// Points of the call, as time since it began: `spawn` (scratch and cgroup made), the
    /// helper's `start`, each layer, `exec`, then `exited` (the helper) and `done` (output
    /// collected, cgroup gone). Where the time goes, for the bench and `sandbox check`.
    pub phases: Vec<(String, Duration)>,
}

impl ExecOutcome {
    /// The shell's view of the status: the exit code, or 128 + the signal.
    pub fn status(&self) -> i32 {
        self.exit_code
            .unwrap_or_else(|| 128 + self.signal.unwrap_or(0))
    }
}

/// The sandbox of a host: the helper to re-execute, the layers this machine enforces, and the
/// limits of each command.
pub struct Sandbox {
    helper: PathBuf,
    zygote: zygote::Zygote,
    config: SandboxConfig,
    pids: Option<cgroup::PidsParent>,
    layers: Vec<LayerReport>,
    read_only: Vec<PathBuf>,
    skip: Vec<Layer>,
    /// This sandbox's own directory: `root` (the commands' root mount point) and one `tmp-N`
    /// per command in flight.
    scratch: tempfile::TempDir,
}

static NEXT_TMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Drop for Sandbox {
    fn drop(&mut self) {
        cgroup::PidsCgroup::sweep_all();
    }
}

/// Removes the scratch directories of hosts that died without cleaning up (`sera-sandbox-PID-*`
/// whose PID is gone): their commands' /tmp went with them.
fn sweep_dead_scratch() {
    let tmp = std::env::temp_dir();
    let Ok(entries) = std::fs::read_dir(&tmp) else {
        return;
    };
    for e in entries.flatten() {
        if cgroup::dead_owner(&e.file_name().to_string_lossy(), "sera-sandbox-").is_some() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A command's /tmp, removed when the call ends.
struct CommandTmp(PathBuf);

impl Drop for CommandTmp {
    fn drop(&mut self) {
        // Most commands leave their /tmp empty: rmdir first, the recursive walk only if not.
        if std::fs::remove_dir(&self.0).is_err() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: a valid out-array of two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The helper the zygote runs as: `$SERA_HOST_SANDBOX_HELPER` when set; else `sera-sandbox`
/// next to this program (or one directory up, for Cargo's test and bench programs); else this
/// very program if it is `sera-host` (`sera-host __sandbox-zygote`).
pub fn default_helper() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SERA_HOST_SANDBOX_HELPER") {
        return Ok(p.into());
    }
    let me = std::env::current_exe()
        .context("cannot find this program to re-execute as the sandbox helper")?;
    let small = me.with_file_name("sera-sandbox");
    if small.is_file() {
        return Ok(small);
    }
    // Cargo puts test and bench programs in deps/, one below the binaries.
    if let Some(up) = me
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("sera-sandbox"))
    {
        if up.is_file() {
            return Ok(up);
        }
    }
    // Only sera-host itself knows `__sandbox-zygote`; any other program would just run again.
    if me.file_stem().is_some_and(|n| n == "sera-host") {
        return Ok(me);
    }
    bail!(
        "no sandbox helper: there is no sera-sandbox next to {} (set SERA_HOST_SANDBOX_HELPER to its path)",
        me.display()
    )
}

impl Sandbox {
    /// Probes this machine's layers with a real command, and refuses when one that the config
    /// does not allow to be weaker is missing.
    pub fn new(helper: PathBuf, config: SandboxConfig) -> Result<Sandbox> {
        let mut sandbox = Sandbox::unchecked(helper, config)?;
        sandbox.layers = sandbox.probe()?;
        let missing: Vec<&LayerReport> = sandbox
            .layers
            .iter()
            .filter(|l| !l.ok && !sandbox.config.allow_weaker.contains(&l.layer))
            .collect();
        if !missing.is_empty() {
            bail!(
                "the command sandbox cannot be enforced on this machine, so commands are refused: {}. Fix the machine, or accept a weaker sandbox explicitly with exec.allow_weaker = [{}] in the pipeline (`sera-host sandbox check` shows every layer)",
                missing
                    .iter()
                    .map(|l| format!("{} ({})", l.layer, l.detail))
                    .collect::<Vec<_>>()
                    .join("; "),
                missing
                    .iter()
                    .map(|l| format!("\"{}\"", l.layer))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(sandbox)
    }

    fn unchecked(helper: PathBuf, config: SandboxConfig) -> Result<Sandbox> {
        let mut read_only: Vec<PathBuf> = SYSTEM_PATHS.iter().map(PathBuf::from).collect();
        read_only.extend(config.extra_read_only.iter().cloned());
        let skip: Vec<Layer> = std::env::var("SERA_HOST_SANDBOX_SKIP")
            .unwrap_or_default()
            .split(',')
            .filter_map(|l| Layer::parse(l.trim()))
            .collect();
        sweep_dead_scratch();
        let scratch = tempfile::Builder::new()
            .prefix(&format!("sera-sandbox-{}-", std::process::id()))
            .tempdir()
            .context("cannot create the sandbox's scratch directory")?;
        std::fs::create_dir(scratch.path().join("root"))
            .context("cannot create the sandbox's scratch directory")?;
        Ok(Sandbox {
            zygote: zygote::Zygote::new(
                helper.clone(),
                zygote::ZygoteConfig {
                    skip: skip.clone(),
                    root: scratch.path().join("root"),
                    read_only: read_only.clone(),
                    prepare: config.prepare,
                },
            ),
            scratch,
            helper,
            pids: if skip.contains(&Layer::Pids) {
                None
            } else {
                cgroup::find()
            },
            config,
            layers: Vec::new(),
            read_only,
            skip,
        })
    }

    /// Each layer as the probe found it.
    pub fn layers(&self) -> &[LayerReport] {
        &self.layers
    }

    /// The pid of this sandbox's zygote, once it has started (diagnostics, tests).
    pub fn zygote_pid(&self) -> Option<u32> {
        self.zygote.pid()
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Runs `true` with every layer best-effort and reports what held.
    fn probe(&self) -> Result<Vec<LayerReport>> {
        let ws = tempfile::Builder::new()
            .prefix("sera-sandbox-probe-")
            .tempdir()
            .context("cannot create the sandbox probe's workspace")?;
        let (_, reports) = self.spawn(ws.path(), "true", self.config.timeout, &ALL_LAYERS)?;
        let mut out = Vec::new();
        for layer in ALL_LAYERS {
            match reports.iter().find(|r| r.layer == layer) {
                Some(r) => out.push(r.clone()),
                None => out.push(LayerReport {
                    layer,
                    ok: false,
                    detail: "the helper never got to this layer".into(),
                }),
            }
        }
        Ok(out)
    }

    /// Every layer of this machine, best-effort, without refusing anything (for `sandbox check`).
    pub fn check(helper: PathBuf, config: SandboxConfig) -> Result<Vec<LayerReport>> {
        Sandbox::unchecked(helper, config)?.probe()
    }

    /// Runs one command in `workspace` (seen at /workspace). `Err` means the sandbox itself
    /// failed (the command did not run); everything the command does is in the outcome.
    pub fn run(
        &self,
        workspace: &Path,
        command: &str,
        timeout: Option<Duration>,
    ) -> Result<ExecOutcome> {
        let timeout = timeout.unwrap_or(self.config.timeout);
        let (outcome, _) = self.spawn(workspace, command, timeout, &self.config.allow_weaker)?;
        Ok(outcome)
    }

    /// The whole environment a command gets.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut path: Vec<String> = self
            .config
            .path_prefix
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        path.extend(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .map(String::from),
        );
        let mut env = vec![
            ("PATH".to_string(), path.join(":")),
            ("HOME".into(), "/tmp".into()),
            ("TMPDIR".into(), "/tmp".into()),
            ("PWD".into(), "/workspace".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("LC_ALL".into(), "C.UTF-8".into()),
            ("TERM".into(), "dumb".into()),
            ("PAGER".into(), "cat".into()),
            ("GIT_PAGER".into(), "cat".into()),
            ("PIP_NO_INPUT".into(), "1".into()),
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            ("PYTHONUNBUFFERED".into(), "1".into()),
            ("PYTHONHASHSEED".into(), "0".into()),
        ];
        env.extend(self.config.env.iter().cloned());
        env
    }

    fn spawn(
        &self,
        workspace: &Path,
        command: &str,
        timeout: Duration,
        best_effort: &[Layer],
    ) -> Result<(ExecOutcome, Vec<LayerReport>)> {
        let begin = Instant::now();
        let begin_us = helper::monotonic_us();
        let workspace = workspace
            .canonicalize()
            .with_context(|| format!("workspace {}", workspace.display()))?;
        let tmp = CommandTmp(self.scratch.path().join(format!(
            "tmp-{}",
            NEXT_TMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )));
        std::fs::create_dir(&tmp.0)
            .with_context(|| format!("cannot create the command's /tmp {}", tmp.0.display()))?;
        let cg = match &self.pids {
            Some(parent) => parent.create(self.config.max_processes).ok(),
            None => None,
        };
        let spec = HelperSpec {
            command: command.to_string(),
            workspace: workspace.clone(),
            tmp: tmp.0.clone(),
            read_only: self.read_only.clone(),
            env: self.env(),
            address_space_bytes: self.config.memory_mib << 20,
            cpu_seconds: self
                .config
                .cpu_s
                .unwrap_or_else(|| timeout.as_secs().max(1)),
            file_size_bytes: self.config.file_size_mib << 20,
            max_processes: self.config.max_processes,
            cgroup_procs: cg.as_ref().map(|c| c.procs()),
            best_effort: best_effort.to_vec(),
            skip: self.skip.clone(),
        };
        let (out_r, out_w) = pipe()?;
        let (rep_r, rep_w) = pipe()?;
        let spec_json = serde_json::to_vec(&spec)?;
        let start = Instant::now();
        let started = self
            .zygote
            .start_command(&spec_json, out_w, rep_w)
            .with_context(|| format!("sandbox helper {}", self.helper.display()))?;
        let pid = started.pid;
        let collected = collect(started, out_r, timeout, self.config.output_bytes, start);
        // Whatever is left goes, even if the command escaped its pid 1: the command's process,
        // its process group, its cgroup.
        // SAFETY: signals to the command's own process and group; the zygote has not reaped
        // it before answering its status, so the pid is still its own.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        if let Some(cg) = &cg {
            cg.kill_all();
        }
        let (status, output, total, timed_out, exited_at) = collected?;
        let duration = start.elapsed();
        let mut report = Vec::new();
        let _ = std::fs::File::from(rep_r).read_to_end(&mut report);
        drop(cg);
        let mut layers = Vec::new();
        let mut phases = Vec::new();
        let mut fatal = None;
        for line in report.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<helper::Report>(line) {
                Ok(helper::Report::Layer(l)) => layers.push(l),
                Ok(helper::Report::Mark { name, at_us }) => {
                    phases.push((name, Duration::from_micros(at_us.saturating_sub(begin_us))))
                }
                Ok(helper::Report::Fatal { message }) => fatal = Some(message),
                Err(_) => fatal = Some(String::from_utf8_lossy(line).into_owned()),
            }
        }
        if let Some(message) = fatal {
            bail!("sandbox: {message}");
        }
        if let Some(l) = layers
            .iter()
            .find(|l| !l.ok && !best_effort.contains(&l.layer))
        {
            bail!("sandbox layer {} failed: {}", l.layer, l.detail);
        }
        if !timed_out
            && status.code() == Some(helper::SETUP_FAILED)
            && layers.len() < ALL_LAYERS.len()
        {
            bail!(
                "the sandbox helper stopped before running the command (exit {}): {}",
                helper::SETUP_FAILED,
                String::from_utf8_lossy(&output)
            );
        }
        let truncated = total > output.len() as u64;
        Ok((
            ExecOutcome {
                exit_code: if timed_out { None } else { status.code() },
                signal: if timed_out {
                    Some(libc::SIGKILL)
                } else {
                    status.signal()
                },
                output,
                output_total: total,
                truncated,
                timed_out,
                duration,
                phases: {
                    phases.insert(0, ("spawn".into(), start - begin));
                    phases.push(("exited".into(), exited_at - begin));
                    phases.push(("done".into(), begin.elapsed()));
                    phases
                },
            },
            layers,
        ))
    }
}

/// Reads the output until the command's process is gone (or the deadline passes, then kills
/// it) and the pipe is closed. Returns (status, kept output, total bytes, timed out, when it
/// ended).
fn collect(
    started: zygote::Started,
    out: OwnedFd,
    timeout: Duration,
    cap: usize,
    start: Instant,
) -> Result<(std::process::ExitStatus, Vec<u8>, u64, bool, Instant)> {
    let (pid, mut answers) = (started.pid, started.request);
    // SAFETY: sets a flag on our own descriptor.
    unsafe {
        let fl = libc::fcntl(out.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(out.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    let deadline = start + timeout;
    let mut kept = Vec::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    let mut status: Option<i32> = None;
    let mut eof = false;
    let mut timed_out = false;
    // Once the process is gone, the pipe's last writers die with its namespace; wait that long.
    let mut grace_until: Option<Instant> = None;
    let mut exited_at = start;
    while !(status.is_some() && eof) {
        let now = Instant::now();
        let exited = status.is_some();
        if !exited && !timed_out && now >= deadline {
            timed_out = true;
            // SAFETY: signals to the command's process and its group (not reaped yet).
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
        }
        if exited && grace_until.is_some_and(|g| now >= g) {
            break;
        }
        let wait_ms = if exited {
            grace_until.map_or(0, |g| {
                g.saturating_duration_since(now).as_millis() as i32 + 1
            })
        } else if timed_out {
            100
        } else {
            deadline.saturating_duration_since(now).as_millis() as i32 + 1
        };
        let mut fds = [
            libc::pollfd {
                fd: out.as_raw_fd(),
                events: if eof { 0 } else { libc::POLLIN },
                revents: 0,
            },
            libc::pollfd {
                fd: answers.stream.as_raw_fd(),
                events: if exited { 0 } else { libc::POLLIN },
                revents: 0,
            },
        ];
        // SAFETY: a valid array of two pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, wait_ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            bail!("poll: {e}");
        }
        if !eof && fds[0].revents != 0 {
            loop {
                // SAFETY: reads into our own buffer.
                let r = unsafe { libc::read(out.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if r > 0 {
                    let r = r as usize;
                    total += r as u64;
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..r.min(room)]);
                    continue;
                }
                if r == 0 {
                    eof = true;
                }
                break;
            }
        }
        if !exited && fds[1].revents != 0 {
            match answers.next()? {
                Some(wire::Answer::Status(s)) => {
                    status = Some(s);
                    exited_at = Instant::now();
                    grace_until = Some(exited_at + Duration::from_secs(2));
                }
                Some(other) => bail!("the sandbox helper answered {other:?} out of turn"),
                None if answers.eof => {
                    bail!("the sandbox helper ended before the command did")
                }
                None => {}
            }
        }
    }
    let status = status.unwrap_or(libc::SIGKILL);
    Ok((
        std::process::ExitStatus::from_raw(status),
        kept,
        total,
        timed_out,
        exited_at,
    ))
}

/// Becomes the sandbox's zygote (never returns) when this process was started as `PROGRAM
/// __sandbox-zygote CONFIG`; returns otherwise. Called first thing by both binaries that can be
/// the helper.
pub fn run_if_requested() {
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == "__sandbox-zygote") {
        let config = args
            .next()
            .and_then(|s| s.into_string().ok())
            .unwrap_or_default();
        zygote::serve(&config);
    }
}
