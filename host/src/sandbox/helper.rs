//! One command's sandbox, set up in the process the zygote (`zygote.rs`) forked for it: it
//! joins the call's pids cgroup, enters its own user namespace (a child of the zygote's), a
//! network namespace (the zygote's, or its own), new mount and pid namespaces, forks the
//! namespace's first process, and that process builds a private root (system read-only,
//! /workspace, a private /tmp), applies Landlock, rlimits and seccomp, and becomes `/bin/bash
//! -c COMMAND`. When bash (pid 1 of its namespace) exits, the kernel kills everything it left
//! behind.
//!
//! It runs in a single-threaded process, so it may allocate between `fork` and `exec`. Each
//! layer's result goes to the report pipe as one JSON line; a layer that fails and is not
//! best-effort ends the call before any command runs.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::spec::{HelperSpec, Layer, LayerReport};
use super::wire::{Inherited, SKIPPED};
/// Exit code of a helper whose setup failed (the report says why).
pub const SETUP_FAILED: i32 = 125;

/// Lines on the report pipe.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Report {
    Layer(LayerReport),
    /// A point of the setup, at CLOCK_MONOTONIC microseconds (the bench's per-phase costs).
    Mark {
        name: String,
        at_us: u64,
    },
    Fatal {
        message: String,
    },
}

/// CLOCK_MONOTONIC in microseconds: the host and the helper read the same clock.
pub fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

pub(crate) struct Reporter {
    /// `None` while a prepared command has no call yet: lines wait in `pending`.
    pipe: Option<std::fs::File>,
    pending: Vec<u8>,
    pub best_effort: Vec<Layer>,
    /// Whether layers are followed by a time mark (not while preparing: that time is not the
    /// call's).
    pub marks: bool,
}

impl Reporter {
    pub fn new(pipe: std::fs::File) -> Reporter {
        Reporter {
            pipe: Some(pipe),
            pending: Vec::new(),
            best_effort: Vec::new(),
            marks: true,
        }
    }

    /// A reporter that keeps its lines until [`Reporter::attach`].
    pub fn pending() -> Reporter {
        Reporter {
            pipe: None,
            pending: Vec::new(),
            best_effort: Vec::new(),
            marks: false,
        }
    }

    /// From now on, lines go to `pipe`, the kept ones first.
    pub fn attach(&mut self, mut pipe: std::fs::File) {
        let _ = pipe.write_all(&std::mem::take(&mut self.pending));
        self.pipe = Some(pipe);
    }

    fn send(&mut self, r: &Report) {
        let mut line = serde_json::to_vec(r).unwrap_or_default();
        line.push(b'\n');
        match &mut self.pipe {
            Some(p) => {
                let _ = p.write_all(&line);
            }
            None => self.pending.extend_from_slice(&line),
        }
    }

    /// Reports a layer; a failed one that is not best-effort ends the helper.
    pub fn layer(&mut self, layer: Layer, result: Result<String, String>) -> bool {
        let ok = result.is_ok();
        let detail = result.unwrap_or_else(|e| e);
        self.send(&Report::Layer(LayerReport { layer, ok, detail }));
        if self.marks {
            self.mark(layer.name());
        }
        if !ok && !self.best_effort.contains(&layer) {
            // SAFETY: ends this process; nothing of it needs cleaning up.
            unsafe { libc::_exit(SETUP_FAILED) };
        }
        ok
    }

    pub fn mark(&mut self, name: &str) {
        self.send(&Report::Mark {
            name: name.to_string(),
            at_us: monotonic_us(),
        });
    }

    pub fn fatal(&mut self, message: String) -> ! {
        self.send(&Report::Fatal { message });
        // SAFETY: as above.
        unsafe { libc::_exit(SETUP_FAILED) }
    }
}

pub(crate) fn errno() -> String {
    std::io::Error::last_os_error().to_string()
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_else(|_| CString::new("/nonexistent").unwrap())
}

/// A command's own user namespace, a child of the zygote's (which therefore keeps owning the
/// shared network namespace).
pub(crate) fn nested_userns(inherited: &Inherited) -> Result<String, String> {
    match &inherited.userns {
        Err(e) => Err(e.clone()),
        Ok(outer) => enter_userns(0, 0)
            .map(|_| format!("{outer}; each command in its own (nested) namespace")),
    }
}

/// The zygote's network namespace where `share`, else one of the command's own.
pub(crate) fn enter_netns(inherited: &Inherited, share: bool) -> Result<String, String> {
    if share {
        Ok(inherited
            .netns
            .clone()
            .map(|d| {
                format!("{d}, shared by this sandbox's commands, which cannot configure it; abstract sockets scoped by Landlock")
            })
            .unwrap_or_default())
    } else {
        unshare(libc::CLONE_NEWNET)
            .map(|_| "its own: no interface but a loopback that is down".into())
    }
}

/// The process limit: the call's pids cgroup where it could be joined (`in_cgroup`), else
/// RLIMIT_NPROC where that holds (not root: the second value says to set it), else missing.
pub(crate) fn pids_limit(
    in_cgroup: Result<String, String>,
    host_uid: libc::uid_t,
    max_processes: u64,
) -> (Result<String, String>, bool) {
    match in_cgroup {
        Ok(where_) => (
            Ok(format!("{max_processes} processes at most ({where_})")),
            false,
        ),
        Err(_) if host_uid != 0 => (
            Ok(format!(
                "RLIMIT_NPROC {max_processes} (uid {host_uid}, counted in this command's user namespace)"
            )),
            true,
        ),
        Err(why) => (
            Err(format!(
                "running as root, RLIMIT_NPROC does not hold and no pids cgroup could be used{}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            )),
            false,
        ),
    }
}

/// Enters a new user namespace where uid and gid 0 are `uid` and `gid` outside.
pub(crate) fn enter_userns(uid: libc::uid_t, gid: libc::gid_t) -> Result<String, String> {
    unshare(libc::CLONE_NEWUSER)?;
    std::fs::write("/proc/self/setgroups", b"deny").map_err(|e| format!("setgroups: {e}"))?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))
        .map_err(|e| format!("uid_map: {e}"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))
        .map_err(|e| format!("gid_map: {e}"))?;
    Ok(format!("uid 0 inside is uid {uid} outside"))
}

/// One command, in the process the zygote forked for it. Never returns.
pub(crate) fn command_main(
    inherited: &Inherited,
    request: UnixStream,
    out: OwnedFd,
    report: OwnedFd,
) -> ! {
    // SAFETY: plain libc calls on this process's own state; the zygote is our parent and
    // single-threaded, so nothing else runs between its fork and these.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::setpgid(0, 0);
        libc::dup2(out.as_raw_fd(), 1);
        libc::dup2(out.as_raw_fd(), 2);
    }
    super::wire::to_dev_null(&[0], libc::O_RDONLY);
    drop(out);
    let mut rep = Reporter::new(std::fs::File::from(report));
    let spec_json = match super::wire::read_spec(&request) {
        Ok(s) => s,
        Err(e) => rep.fatal(format!("cannot read the command's spec: {e}")),
    };
    let spec: HelperSpec = match serde_json::from_slice(&spec_json) {
        Ok(s) => s,
        Err(e) => rep.fatal(format!("the sandbox spec is not valid JSON: {e}")),
    };
    rep.mark("start");
    rep.best_effort = spec.best_effort.clone();
    let skip = |l: Layer| spec.skip.contains(&l);
    let skipped = || Err::<String, String>(SKIPPED.into());
    set_rlimit(libc::RLIMIT_CORE, 0, 0);

    // Before this command's own user namespace: joining needs the zygote's credentials.
    let in_cgroup = match &spec.cgroup_procs {
        Some(procs) => std::fs::write(procs, b"0")
            .map(|_| format!("cgroup {}", procs.parent().unwrap_or(procs).display()))
            .map_err(|e| format!("cannot join the pids cgroup {}: {e}", procs.display())),
        None => Err(String::new()),
    };
    rep.mark("cgroup");

    // Its own user namespace (the process count of RLIMIT_NPROC is per user namespace), a child
    // of the zygote's, which therefore keeps owning the shared network namespace.
    let userns = if skip(Layer::Userns) {
        skipped()
    } else {
        nested_userns(inherited)
    };
    let own_userns = userns.is_ok();
    rep.layer(Layer::Userns, userns);
    let netns = if skip(Layer::Netns) {
        skipped()
    } else {
        enter_netns(inherited, inherited.shares_netns(&spec.skip) && own_userns)
    };
    rep.layer(Layer::Netns, netns);
    let mountns_ok = if skip(Layer::Mountns) {
        Err(SKIPPED.to_string())
    } else {
        unshare(libc::CLONE_NEWNS)
    };
    let pidns = if skip(Layer::Pidns) {
        skipped()
    } else {
        unshare(libc::CLONE_NEWPID).map(|_| "the command is pid 1 of its own".into())
    };
    let pidns_ok = rep.layer(Layer::Pidns, pidns);

    // SAFETY: single-threaded process; the child continues with its own copy.
    let child = unsafe { libc::fork() };
    if child < 0 {
        rep.fatal(format!("fork: {}", errno()));
    }
    if child > 0 {
        wait_and_exit(child, &mut rep, &request, || {});
    }
    // SAFETY: plain libc calls; the parent is this helper, which waits for us.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    rep.mark("fork");
    let _ = pidns_ok;

    let mounted = mountns_ok.and_then(|_| match &inherited.template {
        Ok((root, what)) => enter_root(&spec, root, what),
        Err(e) => Err(e.clone()),
    });
    let has_root = mounted.is_ok();
    rep.layer(Layer::Mountns, mounted);
    if !has_root {
        // Without a private root the command still runs in the workspace, by its host path.
        if let Err(e) = std::env::set_current_dir(&spec.workspace) {
            rep.fatal(format!("cannot enter {}: {e}", spec.workspace.display()));
        }
    }
    let (ws, tmp) = if has_root {
        (PathBuf::from("/workspace"), PathBuf::from("/tmp"))
    } else {
        (spec.workspace.clone(), spec.tmp.clone())
    };
    // SAFETY: sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }
    let ll = if skip(Layer::Landlock) {
        skipped()
    } else {
        landlock(&spec, &ws, &tmp, has_root)
    };
    rep.layer(Layer::Landlock, ll);

    let rl = if skip(Layer::Rlimits) {
        skipped()
    } else {
        apply_rlimits(&spec)
    };
    rep.layer(Layer::Rlimits, rl);
    let pids = if skip(Layer::Pids) {
        skipped()
    } else {
        let (pids, nproc) = pids_limit(in_cgroup, inherited.host_uid, spec.max_processes);
        if nproc {
            set_rlimit(libc::RLIMIT_NPROC, spec.max_processes, spec.max_processes);
        }
        pids
    };
    rep.layer(Layer::Pids, pids);
    let sc = if skip(Layer::Seccomp) {
        skipped()
    } else {
        match &inherited.seccomp {
            Ok(program) => super::filters::apply_seccomp(program),
            Err(e) => Err(e.clone()),
        }
    };
    rep.layer(Layer::Seccomp, sc);

    exec_bash(&mut rep, &spec.command, &spec.env)
}

/// Becomes `bash -c COMMAND` with exactly `env`. Never returns.
pub(crate) fn exec_bash(rep: &mut Reporter, command: &str, env: &[(String, String)]) -> ! {
    let bash = ["/bin/bash", "/usr/bin/bash"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("/bin/sh");
    let argv = [
        CString::new("bash").unwrap(),
        CString::new("-c").unwrap(),
        CString::new(command.replace('\0', "")).unwrap(),
    ];
    let envp: Vec<CString> = env
        .iter()
        .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok())
        .collect();
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let prog = CString::new(bash).unwrap();
    reset_signals();
    rep.mark("exec");
    // SAFETY: NUL-terminated argument and environment arrays of live CStrings.
    unsafe {
        libc::execve(prog.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
    }
    rep.fatal(format!("cannot run {bash}: {}", errno()))
}

/// The command starts with every signal at its default and none blocked, whatever the helper
/// inherited (a Rust program ignores SIGPIPE, and ignored signals survive `execve`).
pub(crate) fn reset_signals() {
    // SAFETY: plain libc calls on this process's own signal state, just before execve.
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// The helper's part once the namespace's first process runs: wait, then end the way it did.
pub(crate) fn wait_and_exit(
    child: libc::pid_t,
    rep: &mut Reporter,
    request: &UnixStream,
    before_status: impl FnOnce(),
) -> ! {
    // The output pipe is the command's alone: its end of file must not wait for this process.
    super::wire::to_dev_null(&[1, 2], libc::O_WRONLY);
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(child, &mut status, 0) };
        if r == child
            || (r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
        {
            break;
        }
    }
    rep.mark("reaped");
    before_status();
    // The command and everything it started are gone (the pid namespace ended with its pid 1):
    // the host may go on now, without waiting for this process's namespaces to be torn down.
    super::wire::Answer::Status(status).send(request);
    // SAFETY: plain libc calls that end this process.
    unsafe {
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(sig);
            libc::_exit(128 + sig);
        }
        libc::_exit(SETUP_FAILED)
    }
}

pub(crate) fn unshare(flag: libc::c_int) -> Result<(), String> {
    // SAFETY: a plain system call on this process.
    if unsafe { libc::unshare(flag) } == 0 {
        Ok(())
    } else {
        Err(format!("unshare: {}", errno()))
    }
}

pub(crate) fn set_rlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard.max(soft),
    };
    // SAFETY: a plain system call with a valid pointer.
    unsafe {
        libc::setrlimit(resource, &lim);
    }
}

fn get_rlimit(resource: libc::__rlimit_resource_t) -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a plain system call with a valid pointer.
    unsafe {
        libc::getrlimit(resource, &mut lim);
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// Sets the command's rlimits (address space, CPU with soft below hard, file size, descriptors)
/// and says whether they hold.
pub(crate) fn apply_rlimits(spec: &HelperSpec) -> Result<String, String> {
    set_rlimit(
        libc::RLIMIT_AS,
        spec.address_space_bytes,
        spec.address_space_bytes,
    );
    set_rlimit(libc::RLIMIT_CPU, spec.cpu_seconds, spec.cpu_seconds + 1);
    set_rlimit(
        libc::RLIMIT_FSIZE,
        spec.file_size_bytes,
        spec.file_size_bytes,
    );
    set_rlimit(libc::RLIMIT_NOFILE, 4096, 4096);
    check_rlimits(spec)
}

fn check_rlimits(spec: &HelperSpec) -> Result<String, String> {
    let want = [
        ("AS", libc::RLIMIT_AS, spec.address_space_bytes),
        ("CPU", libc::RLIMIT_CPU, spec.cpu_seconds),
        ("FSIZE", libc::RLIMIT_FSIZE, spec.file_size_bytes),
        ("CORE", libc::RLIMIT_CORE, 0),
    ];
    for (name, res, v) in want {
        let (soft, _) = get_rlimit(res);
        if soft != v {
            return Err(format!("RLIMIT_{name} is {soft}, wanted {v}"));
        }
    }
    Ok(format!(
        "AS {} MiB, CPU {} s (hard {} s), FSIZE {} MiB, CORE 0",
        spec.address_space_bytes >> 20,
        spec.cpu_seconds,
        spec.cpu_seconds + 1,
        spec.file_size_bytes >> 20
    ))
}

pub(crate) fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let src_c = src.map(cstr);
    let target_c = cstr(target);
    let fs_c = fstype.map(|f| CString::new(f).unwrap());
    let data_c = data.map(|d| CString::new(d).unwrap());
    // SAFETY: valid NUL-terminated strings or null pointers, as mount(2) allows.
    let r = unsafe {
        libc::mount(
            src_c.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            target_c.as_ptr(),
            fs_c.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data_c
                .as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr().cast()),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(format!(
            "mount {} on {}: {}",
            src.map(|s| s.display().to_string())
                .or(fstype.map(String::from))
                .unwrap_or_default(),
            target.display(),
            errno()
        ))
    }
}

/// The mount flags a read-only remount of a bind mount of `p` must keep (the kernel refuses to
/// clear locked flags inside a user namespace).
fn kept_flags(p: &Path) -> libc::c_ulong {
    let c = cstr(p);
    // SAFETY: valid path and out-pointer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let f = st.f_flag;
    let mut out = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if f & st_flag != 0 {
            out |= ms_flag;
        }
    }
    out
}

pub(crate) fn inside(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// Makes `p` (a host path) visible at the same path under `root`: a symlink as a symlink, a
/// directory or file as a read-only bind mount. Missing paths are skipped (`false`).
fn expose(root: &Path, p: &Path) -> Result<bool, String> {
    expose_at(p, &inside(root, p))
}

/// Makes the host path `p` visible at `at`, as [`expose`] does.
pub(crate) fn expose_at(p: &Path, at: &Path) -> Result<bool, String> {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return Ok(false);
    };
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
    }
    if meta.file_type().is_symlink() {
        if at.symlink_metadata().is_ok() {
            return Ok(true);
        }
        let target = std::fs::read_link(p).map_err(|e| format!("{}: {e}", p.display()))?;
        return std::os::unix::fs::symlink(&target, at)
            .map(|_| true)
            .map_err(|e| format!("symlink {}: {e}", at.display()));
    }
    if meta.is_dir() {
        std::fs::create_dir_all(at).map_err(|e| format!("mkdir {}: {e}", at.display()))?;
    } else if at.symlink_metadata().is_err() {
        std::fs::write(at, b"").map_err(|e| format!("create {}: {e}", at.display()))?;
    }
    mount(Some(p), at, None, libc::MS_BIND | libc::MS_REC, None)?;
    mount(
        None,
        at,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | kept_flags(p),
        None,
    )?;
    Ok(true)
}

/// The part of every command's root that is the same for all of them, built once by the zygote
/// in its own mount namespace at `root`: a read-only tmpfs with the system and environment
/// paths bound read-only, a few /dev nodes, and empty mount points for /workspace, /tmp,
/// /dev/shm and /proc. Each command's mount namespace starts as a copy of it, where these
/// mounts are locked: a command cannot unmount them or make them writable.
pub(crate) fn build_template(root: &Path, read_only: &[PathBuf]) -> Result<String, String> {
    unshare(libc::CLONE_NEWNS)?;
    // Mounts on the host still reach us; ours never reach the host.
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_SLAVE,
        None,
    )?;
    mount(
        None,
        root,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755,size=4m"),
    )?;
    for d in ["workspace", "tmp", "proc", super::wire::OLD_ROOT] {
        let at = root.join(d);
        std::fs::create_dir_all(&at).map_err(|e| format!("mkdir {}: {e}", at.display()))?;
    }
    // Paths under /tmp are exposed per command, on top of its own /tmp.
    let mut exposed = 0;
    for p in read_only.iter().filter(|p| !p.starts_with("/tmp")) {
        if expose(root, p)? {
            exposed += 1;
        }
    }
    let dev = root.join("dev");
    std::fs::create_dir_all(&dev).map_err(|e| format!("mkdir {}: {e}", dev.display()))?;
    mount(
        None,
        &dev,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=0755,size=64k"),
    )?;
    for d in ["null", "zero", "full", "random", "urandom"] {
        let host = Path::new("/dev").join(d);
        let at = dev.join(d);
        std::fs::write(&at, b"").map_err(|e| format!("create {}: {e}", at.display()))?;
        mount(Some(&host), &at, None, libc::MS_BIND, None)?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, dev.join(name));
    }
    let _ = std::fs::create_dir_all(dev.join("shm"));
    mount(
        None,
        &dev,
        None,
        libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=0755,size=64k"),
    )?;
    mount(
        None,
        root,
        None,
        libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755,size=4m"),
    )?;
    Ok(format!("{exposed} host paths read-only"))
}

/// The command's own part of its root (in its own mount namespace, a copy of the zygote's),
/// then `pivot_root` into it.
fn enter_root(spec: &HelperSpec, root: &Path, template: &str) -> Result<String, String> {
    let proc_kind = own_mounts(root)?;
    call_mounts(spec, Path::new("/"), root)?;
    std::env::set_current_dir(root).map_err(|e| format!("chdir {}: {e}", root.display()))?;
    let dot = CString::new(".").unwrap();
    // SAFETY: pivot_root(".", ".") then detaching the old root is the documented way to switch
    // roots without a spare directory.
    unsafe {
        if libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) != 0 {
            return Err(format!("pivot_root: {}", errno()));
        }
        if libc::umount2(dot.as_ptr(), libc::MNT_DETACH) != 0 {
            return Err(format!("detaching the old root: {}", errno()));
        }
    }
    std::env::set_current_dir("/workspace").map_err(|e| format!("chdir /workspace: {e}"))?;
    Ok(root_detail(template, proc_kind))
}

pub(crate) fn root_detail(template: &str, proc_kind: &str) -> String {
    format!("private root: /workspace (rw), /tmp (rw, private), {template}, {proc_kind}")
}

/// The mounts of a command's root that do not depend on the call: the root itself, /dev/shm
/// and /proc (mounted by the pid namespace's first process). Returns what /proc is.
pub(crate) fn own_mounts(root: &Path) -> Result<&'static str, String> {
    // The template's mounts came from a more privileged user namespace, so they are locked
    // here, and pivot_root refuses a locked new root: a recursive bind of it is this
    // namespace's own (its submounts stay locked, read-only).
    mount(Some(root), root, None, libc::MS_BIND | libc::MS_REC, None)?;
    mount(
        None,
        &root.join("dev/shm"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=1777,size=64m"),
    )?;
    let proc_ = root.join("proc");
    Ok(
        match mount(
            None,
            &proc_,
            Some("proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        ) {
            Ok(()) => "its own /proc",
            Err(_) => {
                mount(
                    Some(Path::new("/proc")),
                    &proc_,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )?;
                "the host's /proc (a new one could not be mounted)"
            }
        },
    )
}

/// The call's own mounts under `root`: its workspace and /tmp, and the read-only paths under
/// the host's /tmp on top of that /tmp. Host paths are read beneath `host` (`/` before the
/// switch of roots; where a prepared command keeps the old root afterwards).
pub(crate) fn call_mounts(spec: &HelperSpec, host: &Path, root: &Path) -> Result<(), String> {
    mount(
        Some(&inside(host, &spec.workspace)),
        &root.join("workspace"),
        None,
        libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )?;
    mount(
        Some(&inside(host, &spec.tmp)),
        &root.join("tmp"),
        None,
        libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )?;
    // After /tmp: read-only paths under the host's /tmp (a test cache, say) stay visible.
    for p in spec.read_only.iter().filter(|p| p.starts_with("/tmp")) {
        expose_at(&inside(host, p), &inside(root, p))?;
    }
    Ok(())
}

fn landlock(spec: &HelperSpec, ws: &Path, tmp: &Path, has_root: bool) -> Result<String, String> {
    let (mut read, mut write) = landlock_paths(spec.read_only.clone());
    write.extend([ws.to_path_buf(), tmp.to_path_buf()]);
    if !has_root {
        // The host's /dev: only these few devices are reachable anyway.
        read.retain(|p| p != Path::new("/dev"));
        read.push("/dev/urandom".into());
        read.push("/dev/random".into());
    }
    super::filters::apply_landlock(&read, &write)
}

/// The Landlock rules every command's root gets besides its workspace and /tmp: `read_only`,
/// /proc and /dev to read; /dev/{null,zero,full,shm} to write.
pub(crate) fn landlock_paths(mut read_only: Vec<PathBuf>) -> (Vec<PathBuf>, Vec<PathBuf>) {
    read_only.push("/proc".into());
    read_only.push("/dev".into());
    let write = ["null", "zero", "full", "shm"]
        .iter()
        .map(|d| Path::new("/dev").join(d))
        .collect();
    (read_only, write)
}
