//! A command's sandbox made before the command is known. While one command runs (and the
//! teacher thinks), the zygote forks the next command's process, which does every step that
//! does not depend on the call: its own user namespace, network, mount and pid namespaces,
//! the namespace's first process with its root (/proc, /dev/shm), seccomp, and a Landlock
//! ruleset with every rule but two. When the call comes, what is left is the call's own part:
//! its pids cgroup, the workspace and /tmp bound into the root, the old root detached, the
//! last two Landlock rules (a rule on a mount point does not cover what is mounted on it
//! later), rlimits, `execve`. The setup's work is the same as [`super::helper::command_main`]'s;
//! most of it is no longer on the call's path.
//!
//! Two processes, as on the other path: the outer one (P, in the zygote's pid namespace) and
//! the namespace's first process (C, which becomes bash). C switches roots with the old root
//! kept at [`OLD_ROOT`](super::wire::OLD_ROOT), where P (which shares C's mount namespace, holds no Landlock domain
//! and no seccomp filter, and never runs the command) finds the call's host paths. P detaches
//! the old root before C may go on: the command never sees it.
//!
//! Any step that fails ends P before a call is handed to it; the zygote then goes back to
//! forking each command whole (`Prepare::Never`, `$SERA_HOST_SANDBOX_PREPARED=0`, has it never
//! try).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use sendfd::{RecvWithFd, SendWithFd};
use serde::{Deserialize, Serialize};

use super::helper::{self, Reporter};
use super::spec::{HelperSpec, Layer};
use super::wire::{Inherited, OLD_ROOT};

/// What P tells C when the call comes (with the output and report pipes as descriptors).
#[derive(Serialize, Deserialize)]
struct Go {
    spec: HelperSpec,
    /// RLIMIT_NPROC is the process limit (no pids cgroup, not root).
    nproc: bool,
}

/// Whether this zygote can prepare commands at all: every layer it inherits is there and none
/// is skipped.
pub(crate) fn possible(inherited: &Inherited, skip: &[Layer]) -> bool {
    skip.is_empty()
        && inherited.userns.is_ok()
        && inherited.netns.is_ok()
        && inherited.template.is_ok()
        && inherited.seccomp.is_ok()
        && inherited.landlock_abi > 0
}

/// The zygote's side: a prepared command not handed a call yet.
pub(crate) struct Prepared {
    pub pid: libc::pid_t,
    sock: UnixStream,
    ready: bool,
}

/// Forks P. `drop_in_child` runs first in the child (the zygote's own descriptors go there).
pub(crate) fn fork(inherited: &Inherited, drop_in_child: impl FnOnce()) -> Option<Prepared> {
    let (mine, theirs) = UnixStream::pair().ok()?;
    // SAFETY: the zygote is single-threaded; the child continues with its own copy.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        drop_in_child();
        drop(mine);
        outer_main(inherited, theirs);
    }
    if pid < 0 {
        return None;
    }
    Some(Prepared {
        pid,
        sock: mine,
        ready: false,
    })
}

impl Prepared {
    /// Whether P said it is ready (waiting for it to say so only if `wait`); `Err` when it has
    /// died instead.
    pub fn ready(&mut self, wait: bool) -> Result<bool, ()> {
        if self.ready {
            return Ok(true);
        }
        let _ = self.sock.set_nonblocking(!wait);
        let mut b = [0u8; 1];
        let r = (&self.sock).read(&mut b);
        let _ = self.sock.set_nonblocking(false);
        match r {
            Ok(1) if b[0] == b'R' => {
                self.ready = true;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            _ => Err(()),
        }
    }

    /// Hands P a call: the output and report pipes' write ends and the request. Once the host
    /// has its pid, [`Prepared::pid_sent`].
    pub fn hand(&self, fds: &[RawFd; 3]) -> std::io::Result<()> {
        self.sock.send_with_fd(b"r", fds).map(|_| ())
    }

    /// Lets P answer the call's status (the host knows its pid now). Ends the zygote's part.
    pub fn pid_sent(self) {
        let _ = (&self.sock).write_all(b"p");
    }

    /// Ends and reaps P (it failed, or the zygote is giving up on it).
    pub fn discard(self) {
        // SAFETY: our own child, not reaped yet.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(self.pid, &mut status, 0);
        }
    }
}

fn exit_failed() -> ! {
    // SAFETY: ends this process; the zygote sees it gone and stops preparing.
    unsafe { libc::_exit(helper::SETUP_FAILED) }
}

/// One byte with `N` descriptors (close-on-exec from here on); anything else ends this process.
/// One byte only: what the sender writes next must stay for later reads.
fn recv_fds<const N: usize>(sock: &UnixStream) -> [OwnedFd; N] {
    let mut buf = [0u8; 1];
    let mut got: [RawFd; N] = [-1; N];
    match sock.recv_with_fd(&mut buf, &mut got) {
        Ok((1, n)) if n == N => {}
        _ => exit_failed(),
    }
    // SAFETY: descriptors just received, owned by nobody else in this process.
    got.map(|fd| {
        set_cloexec(fd);
        unsafe { OwnedFd::from_raw_fd(fd) }
    })
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: sets a flag on a descriptor of this process.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
}

/// P: namespaces, then C, then waits for a call. Never returns.
fn outer_main(inherited: &Inherited, zygote: UnixStream) -> ! {
    // SAFETY: plain libc calls on this process's own state.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::setpgid(0, 0);
    }
    super::wire::to_dev_null(&[0], libc::O_RDONLY);
    helper::set_rlimit(libc::RLIMIT_CORE, 0, 0);
    let mut rep = Reporter::pending();
    rep.layer(Layer::Userns, helper::nested_userns(inherited));
    rep.layer(
        Layer::Netns,
        helper::enter_netns(inherited, inherited.shares_netns(&[])),
    );
    if helper::unshare(libc::CLONE_NEWNS).is_err() {
        exit_failed();
    }
    let pidns =
        helper::unshare(libc::CLONE_NEWPID).map(|_| "the command is pid 1 of its own".into());
    rep.layer(Layer::Pidns, pidns);
    let Ok((mine, theirs)) = UnixStream::pair() else {
        exit_failed()
    };
    // SAFETY: single-threaded process; the child continues with its own copy.
    let child = unsafe { libc::fork() };
    if child < 0 {
        exit_failed();
    }
    if child == 0 {
        drop(zygote);
        drop(mine);
        inner_main(inherited, theirs);
    }
    drop(theirs);
    let mut b = [0u8; 1];
    if !matches!((&mine).read(&mut b), Ok(1)) || b[0] != b'P' {
        exit_failed();
    }
    if (&zygote).write_all(b"R").is_err() {
        exit_failed();
    }

    // The call.
    let [out, report, request] = recv_fds(&zygote);
    let request = UnixStream::from(request);
    let report_copy = report.try_clone().unwrap_or_else(|_| exit_failed());
    rep.attach(std::fs::File::from(report));
    rep.marks = true;
    let spec: HelperSpec = match super::wire::read_spec(&request)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_slice(&s).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => rep.fatal(format!("cannot read the command's spec: {e}")),
    };
    rep.best_effort = spec.best_effort.clone();
    rep.mark("handoff");
    let host = Path::new("/").join(OLD_ROOT);
    let in_cgroup = match &spec.cgroup_procs {
        Some(procs) => std::fs::write(helper::inside(&host, procs), child.to_string())
            .map(|_| format!("cgroup {}", procs.parent().unwrap_or(procs).display()))
            .map_err(|e| format!("cannot join the pids cgroup {}: {e}", procs.display())),
        None => Err(String::new()),
    };
    rep.mark("cgroup");
    if let Err(e) = helper::call_mounts(&spec, &host, Path::new("/")) {
        rep.fatal(format!("the command's mounts: {e}"));
    }
    let old = std::ffi::CString::new(host.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: a valid path; detaches the host's root from this namespace.
    if unsafe { libc::umount2(old.as_ptr(), libc::MNT_DETACH) } != 0 {
        rep.fatal(format!("detaching the old root: {}", helper::errno()));
    }
    rep.mark("mounts");
    let (pids, nproc) = helper::pids_limit(in_cgroup, inherited.host_uid, spec.max_processes);
    rep.layer(Layer::Pids, pids);
    let go = Go { spec, nproc };
    let json = serde_json::to_vec(&go).unwrap_or_default();
    let sent = mine
        .send_with_fd(b"g", &[out.as_raw_fd(), report_copy.as_raw_fd()])
        .and_then(|_| (&mine).write_all(&json))
        .and_then(|_| mine.shutdown(std::net::Shutdown::Write));
    if let Err(e) = sent {
        rep.fatal(format!("cannot start the prepared command: {e}"));
    }
    drop((out, report_copy, mine));
    // The zygote answers the host with this process's pid after handing it the call; the
    // status must not come first. It says so with one byte (or its end, if it died).
    helper::wait_and_exit(child, &mut rep, &request, || {
        let _ = (&zygote).read(&mut [0u8; 1]);
    })
}

/// C: the namespace's first process. Its root, seccomp and a Landlock ruleset, then it waits
/// for the call. Never returns.
fn inner_main(inherited: &Inherited, chan: UnixStream) -> ! {
    // SAFETY: plain libc calls; the parent is P, which waits for us.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    super::wire::to_dev_null(&[1, 2], libc::O_WRONLY);
    let mut rep = Reporter::pending();
    let Ok((root, template)) = &inherited.template else {
        exit_failed()
    };
    let mounted = helper::own_mounts(root).and_then(|proc_kind| {
        std::env::set_current_dir(root).map_err(|e| format!("chdir {}: {e}", root.display()))?;
        let dot = std::ffi::CString::new(".").expect("no NUL");
        let old = std::ffi::CString::new(OLD_ROOT).expect("no NUL");
        // SAFETY: valid paths; the old root stays at OLD_ROOT until P detaches it.
        if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), old.as_ptr()) } != 0 {
            return Err(format!("pivot_root: {}", helper::errno()));
        }
        std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
        Ok(helper::root_detail(template, proc_kind))
    });
    rep.layer(Layer::Mountns, mounted);
    // SAFETY: sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }
    let host = Path::new("/").join(OLD_ROOT);
    // Paths under the host's /tmp are exposed by the call, on top of its /tmp: their rules go
    // on the same files, found under the old root.
    let (read, write) = helper::landlock_paths(
        inherited
            .read_only
            .iter()
            .map(|p| {
                if p.starts_with("/tmp") {
                    helper::inside(&host, p)
                } else {
                    p.clone()
                }
            })
            .collect(),
    );
    let ruleset = match super::filters::landlock_ruleset(&read, &write) {
        Ok(r) => r,
        Err(_) => exit_failed(),
    };
    let sc = match &inherited.seccomp {
        Ok(program) => super::filters::apply_seccomp(program),
        Err(e) => Err(e.clone()),
    };
    rep.layer(Layer::Seccomp, sc);
    if (&chan).write_all(b"P").is_err() {
        exit_failed();
    }

    // The call: P has bound the workspace and /tmp and detached the old root.
    let [out, report] = recv_fds(&chan);
    // SAFETY: points this process's stdout and stderr at the command's output pipe.
    unsafe {
        libc::dup2(out.as_raw_fd(), 1);
        libc::dup2(out.as_raw_fd(), 2);
    }
    drop(out);
    rep.attach(std::fs::File::from(report));
    rep.marks = true;
    let mut json = Vec::new();
    if let Err(e) = (&chan).read_to_end(&mut json) {
        rep.fatal(format!("cannot read the command: {e}"));
    }
    drop(chan);
    let go: Go = match serde_json::from_slice(&json) {
        Ok(g) => g,
        Err(e) => rep.fatal(format!("the command is not valid JSON: {e}")),
    };
    let ll = super::filters::finish_landlock(ruleset, &["/workspace".into(), "/tmp".into()]);
    rep.layer(Layer::Landlock, ll);
    let spec = go.spec;
    if go.nproc {
        helper::set_rlimit(libc::RLIMIT_NPROC, spec.max_processes, spec.max_processes);
    }
    rep.layer(Layer::Rlimits, helper::apply_rlimits(&spec));
    if let Err(e) = std::env::set_current_dir("/workspace") {
        rep.fatal(format!("cannot enter /workspace: {e}"));
    }
    helper::exec_bash(&mut rep, &spec.command, &spec.env)
}
