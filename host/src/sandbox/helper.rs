//! The sandbox helper: `sera-host __sandbox-exec SPEC` is what the host re-executes for every
//! command. It joins the call's pids cgroup, enters new user, network, mount and pid
//! namespaces, forks the namespace's first process, and that process builds a private root
//! (system read-only, /workspace, a private /tmp), applies Landlock, rlimits and seccomp, and
//! becomes `/bin/bash -c COMMAND`. When bash (pid 1 of its namespace) exits, the kernel kills
//! everything it left behind.
//!
//! It runs in a fresh single-threaded process, so it may allocate between `fork` and `exec`.
//! Each layer's result goes to the report pipe (fd 3) as one JSON line; a layer that fails and
//! is not best-effort ends the call before any command runs.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::FromRawFd;
use std::path::{Path, PathBuf};

use super::spec::{HelperSpec, Layer, LayerReport};

/// The report pipe's descriptor in the helper (the host `dup2`s it there).
pub const REPORT_FD: i32 = 3;
/// Exit code of a helper whose setup failed (the report says why).
pub const SETUP_FAILED: i32 = 125;

/// Lines on the report pipe.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Report {
    Layer(LayerReport),
    Fatal { message: String },
}

struct Reporter {
    pipe: Option<std::fs::File>,
    best_effort: Vec<Layer>,
}

impl Reporter {
    fn send(&mut self, r: &Report) {
        let mut line = serde_json::to_vec(r).unwrap_or_default();
        line.push(b'\n');
        match &mut self.pipe {
            Some(p) => {
                let _ = p.write_all(&line);
            }
            None => {
                let _ = std::io::stderr().write_all(&line);
            }
        }
    }

    /// Reports a layer; a failed one that is not best-effort ends the helper.
    fn layer(&mut self, layer: Layer, result: Result<String, String>) -> bool {
        let ok = result.is_ok();
        let detail = result.unwrap_or_else(|e| e);
        self.send(&Report::Layer(LayerReport { layer, ok, detail }));
        if !ok && !self.best_effort.contains(&layer) {
            // SAFETY: ends this process; nothing of it needs cleaning up.
            unsafe { libc::_exit(SETUP_FAILED) };
        }
        ok
    }

    fn fatal(&mut self, message: String) -> ! {
        self.send(&Report::Fatal { message });
        // SAFETY: as above.
        unsafe { libc::_exit(SETUP_FAILED) }
    }
}

fn errno() -> String {
    std::io::Error::last_os_error().to_string()
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_else(|_| CString::new("/nonexistent").unwrap())
}

/// Becomes the helper (never returns) when this process was started as `PROGRAM __sandbox-exec
/// SPEC`; returns otherwise. Called first thing by both binaries that can be the helper.
pub fn run_if_requested() {
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == "__sandbox-exec") {
        let spec = args
            .next()
            .and_then(|s| s.into_string().ok())
            .unwrap_or_default();
        main(&spec);
    }
}

/// The entry point of `sera-host __sandbox-exec`. Never returns.
pub fn main(spec_json: &str) -> ! {
    // SAFETY: fd 3 is the report pipe the host placed there; if it is not open, fcntl fails
    // and reports go to stderr instead.
    let pipe = unsafe {
        if libc::fcntl(REPORT_FD, libc::F_SETFD, libc::FD_CLOEXEC) == 0 {
            Some(std::fs::File::from_raw_fd(REPORT_FD))
        } else {
            None
        }
    };
    let mut rep = Reporter {
        pipe,
        best_effort: Vec::new(),
    };
    let spec: HelperSpec = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => rep.fatal(format!("the sandbox spec is not valid JSON: {e}")),
    };
    rep.best_effort = spec.best_effort.clone();
    let skip = |l: Layer| spec.skip.contains(&l);
    let skipped = || Err::<String, String>("skipped ($SERA_HOST_SANDBOX_SKIP)".into());
    // SAFETY: plain libc calls on this process's own state.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    set_rlimit(libc::RLIMIT_CORE, 0, 0);

    let in_cgroup = match &spec.cgroup_procs {
        Some(procs) => std::fs::write(procs, b"0")
            .map(|_| format!("cgroup {}", procs.parent().unwrap_or(procs).display()))
            .map_err(|e| format!("cannot join the pids cgroup {}: {e}", procs.display())),
        None => Err(String::new()),
    };

    let userns = if skip(Layer::Userns) {
        skipped()
    } else {
        unshare(libc::CLONE_NEWUSER).and_then(|_| {
            std::fs::write("/proc/self/setgroups", b"deny")
                .map_err(|e| format!("setgroups: {e}"))?;
            std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))
                .map_err(|e| format!("uid_map: {e}"))?;
            std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))
                .map_err(|e| format!("gid_map: {e}"))?;
            Ok(format!("uid 0 inside is uid {uid} outside"))
        })
    };
    rep.layer(Layer::Userns, userns);
    let netns = if skip(Layer::Netns) {
        skipped()
    } else {
        unshare(libc::CLONE_NEWNET).map(|_| "no interface but its own loopback".into())
    };
    rep.layer(Layer::Netns, netns);
    let mountns_ok = if skip(Layer::Mountns) {
        Err("skipped ($SERA_HOST_SANDBOX_SKIP)".to_string())
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
        wait_and_exit(child);
    }
    // SAFETY: plain libc calls; the parent is this helper, which waits for us.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    let _ = pidns_ok;

    let mounted = mountns_ok.and_then(|_| private_root(&spec));
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
        (spec.workspace.clone(), spec.scratch.join("tmp"))
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
        check_rlimits(&spec)
    };
    rep.layer(Layer::Rlimits, rl);
    let pids = match in_cgroup {
        _ if skip(Layer::Pids) => skipped(),
        Ok(where_) => Ok(format!(
            "{} processes at most ({where_})",
            spec.max_processes
        )),
        Err(why) if uid != 0 => {
            set_rlimit(libc::RLIMIT_NPROC, spec.max_processes, spec.max_processes);
            let _ = why;
            Ok(format!(
                "RLIMIT_NPROC {} (uid {uid}, counted in this user namespace)",
                spec.max_processes
            ))
        }
        Err(why) => Err(format!(
            "running as root, RLIMIT_NPROC does not hold and no pids cgroup could be used{}",
            if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            }
        )),
    };
    rep.layer(Layer::Pids, pids);
    let sc = if skip(Layer::Seccomp) {
        skipped()
    } else {
        super::filters::apply_seccomp()
    };
    rep.layer(Layer::Seccomp, sc);

    let bash = ["/bin/bash", "/usr/bin/bash"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("/bin/sh");
    let argv = [
        CString::new("bash").unwrap(),
        CString::new("-c").unwrap(),
        CString::new(spec.command.replace('\0', "")).unwrap(),
    ];
    let envp: Vec<CString> = spec
        .env
        .iter()
        .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok())
        .collect();
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let prog = CString::new(bash).unwrap();
    // SAFETY: NUL-terminated argument and environment arrays of live CStrings.
    unsafe {
        libc::execve(prog.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
    }
    rep.fatal(format!("cannot run {bash}: {}", errno()))
}

/// The helper's part once the namespace's first process runs: wait, then end the way it did.
fn wait_and_exit(child: libc::pid_t) -> ! {
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

fn unshare(flag: libc::c_int) -> Result<(), String> {
    // SAFETY: a plain system call on this process.
    if unsafe { libc::unshare(flag) } == 0 {
        Ok(())
    } else {
        Err(format!("unshare: {}", errno()))
    }
}

fn set_rlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) {
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

fn mount(
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

fn inside(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// Makes `p` (a host path) visible at the same path under `root`: a symlink as a symlink, a
/// directory or file as a read-only bind mount. Missing paths are skipped.
fn expose(root: &Path, p: &Path, writable: bool) -> Result<(), String> {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return Ok(());
    };
    let at = inside(root, p);
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
    }
    if meta.file_type().is_symlink() {
        if at.symlink_metadata().is_ok() {
            return Ok(());
        }
        let target = std::fs::read_link(p).map_err(|e| format!("{}: {e}", p.display()))?;
        return std::os::unix::fs::symlink(&target, &at)
            .map_err(|e| format!("symlink {}: {e}", at.display()));
    }
    if meta.is_dir() {
        std::fs::create_dir_all(&at).map_err(|e| format!("mkdir {}: {e}", at.display()))?;
    } else if at.symlink_metadata().is_err() {
        std::fs::write(&at, b"").map_err(|e| format!("create {}: {e}", at.display()))?;
    }
    mount(Some(p), &at, None, libc::MS_BIND | libc::MS_REC, None)?;
    if !writable {
        mount(
            None,
            &at,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | kept_flags(p),
            None,
        )?;
    }
    Ok(())
}

/// The command's whole view of the filesystem, then `pivot_root` into it.
fn private_root(spec: &HelperSpec) -> Result<String, String> {
    let root = spec.scratch.join("root");
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    mount(
        None,
        &root,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755,size=4m"),
    )?;
    let ws = root.join("workspace");
    std::fs::create_dir_all(&ws).map_err(|e| format!("mkdir {}: {e}", ws.display()))?;
    mount(
        Some(&spec.workspace),
        &ws,
        None,
        libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )?;
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| format!("mkdir {}: {e}", tmp.display()))?;
    mount(
        Some(&spec.scratch.join("tmp")),
        &tmp,
        None,
        libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )?;
    // After /tmp: read-only paths under the host's /tmp (a test cache, say) stay visible.
    for p in &spec.read_only {
        expose(&root, p, false)?;
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
    let shm = dev.join("shm");
    let _ = std::fs::create_dir_all(&shm);
    mount(
        None,
        &shm,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=1777,size=64m"),
    )?;
    let proc_ = root.join("proc");
    let _ = std::fs::create_dir_all(&proc_);
    let proc_kind = match mount(
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
    };
    mount(
        None,
        &root,
        None,
        libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755,size=4m"),
    )?;
    std::env::set_current_dir(&root).map_err(|e| format!("chdir {}: {e}", root.display()))?;
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
    Ok(format!(
        "private root: /workspace (rw), /tmp (rw, private), {} host paths read-only, {proc_kind}",
        spec.read_only
            .iter()
            .filter(|p| p.symlink_metadata().is_ok())
            .count()
    ))
}

fn landlock(spec: &HelperSpec, ws: &Path, tmp: &Path, has_root: bool) -> Result<String, String> {
    let mut read: Vec<PathBuf> = spec.read_only.clone();
    read.push("/proc".into());
    read.push("/dev".into());
    let mut write = vec![ws.to_path_buf(), tmp.to_path_buf()];
    for d in ["null", "zero", "full", "shm"] {
        write.push(Path::new("/dev").join(d));
    }
    if !has_root {
        // The host's /dev: only these few devices are reachable anyway.
        read.retain(|p| p != Path::new("/dev"));
        read.push("/dev/urandom".into());
        read.push("/dev/random".into());
    }
    super::filters::apply_landlock(&read, &write)
}
