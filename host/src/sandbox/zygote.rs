//! The sandbox's zygote: one small, single-threaded helper process per [`super::Sandbox`] that
//! forks every command's process. Starting a command from it costs a fork of a few-MiB process
//! instead of the host forking itself (hundreds of MiB of page tables with wasmtime's
//! mappings) and the kernel loading a program; its user namespace and network namespace (see
//! [`Inherited`]) are made once instead of per command.
//!
//! Protocol. The host holds one end of a `SOCK_SEQPACKET` pair (the zygote's stdin). For each
//! command it sends one message `run` carrying three descriptors: the output pipe's write end,
//! the report pipe's write end, and one end of a fresh stream pair (the request). The host
//! writes the command's [`HelperSpec`](super::HelperSpec) as JSON on its end of the request and
//! shuts it for writing; the forked process reads it. The zygote answers on the request with
//! one JSON line `{"pid":N}` as soon as it forked, then `{"status":S}` (the raw wait status)
//! when that process is gone. The host closing its end of the control pair ends the zygote,
//! and with it (parent-death signals) every command still running.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use sendfd::{RecvWithFd, SendWithFd};
use serde::{Deserialize, Serialize};

use super::spec::{Layer, Prepare};
use super::wire::{to_dev_null, Answer, Inherited, SKIPPED};

/// What the zygote is told when it starts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ZygoteConfig {
    /// Layers not to set up at all (`$SERA_HOST_SANDBOX_SKIP`).
    pub skip: Vec<Layer>,
    /// An empty directory, the mount point of the commands' root.
    pub root: PathBuf,
    /// Host paths every command sees read-only.
    pub read_only: Vec<PathBuf>,
    /// Whether to prepare the next command's sandbox ahead of its call (`prepared.rs`).
    pub prepare: Prepare,
}

fn landlock_abi() -> i32 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only returns
    // the ABI version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    v.max(0) as i32
}

/// The zygote's main loop (`sera-sandbox __sandbox-zygote CONFIG`). Never returns.
pub fn serve(config_json: &str) -> ! {
    let control_fd: RawFd = 0;
    // SAFETY: fd 0 is the control socket the host placed there.
    let control = unsafe { UnixDatagram::from_raw_fd(control_fd) };
    set_cloexec(control_fd);
    let config: ZygoteConfig = match serde_json::from_str(config_json) {
        Ok(c) => c,
        // SAFETY: ends this process; the host sees every command fail to start.
        Err(_) => unsafe { libc::_exit(2) },
    };
    let skip = |l: Layer| config.skip.contains(&l);
    // SAFETY: plain libc calls on this process's own state.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let userns = if skip(Layer::Userns) {
        Err(SKIPPED.into())
    } else {
        super::helper::enter_userns(uid, gid)
    };
    let netns = if skip(Layer::Netns) {
        Err(SKIPPED.into())
    } else {
        super::helper::unshare(libc::CLONE_NEWNET)
            .map(|_| "no interface but a loopback that is down".into())
    };
    let template = if skip(Layer::Mountns) {
        Err(SKIPPED.into())
    } else {
        super::helper::build_template(&config.root, &config.read_only)
            .map(|what| (config.root.clone(), what))
    };
    // Ready: the host waits for this line before it hands over any command, so that a program
    // that is not a helper is found out rather than left running.
    // SAFETY: writes to this process's own stdout.
    unsafe {
        libc::write(1, b"ready\n".as_ptr().cast(), 6);
    }
    to_dev_null(&[1], libc::O_WRONLY);
    let inherited = Inherited {
        userns,
        netns,
        template,
        landlock_abi: landlock_abi(),
        host_uid: uid,
        seccomp: super::filters::compile_seccomp(),
        read_only: config.read_only.clone(),
    };

    struct Running {
        pid: libc::pid_t,
        pidfd: OwnedFd,
        request: UnixStream,
    }
    let mut running: Vec<Running> = Vec::new();
    let mut may_prepare =
        config.prepare != Prepare::Never && super::prepared::possible(&inherited, &config.skip);
    let wait = config.prepare == Prepare::Always;
    let prepare = |running: &mut Vec<Running>| {
        super::prepared::fork(&inherited, || drop(std::mem::take(running)))
    };
    let mut prepared = None;
    loop {
        // Here, where no call's descriptors are open, so that P holds none of them.
        if prepared.is_none() && may_prepare {
            prepared = prepare(&mut running);
        }
        let mut fds = vec![libc::pollfd {
            fd: control_fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        fds.extend(running.iter().map(|r| libc::pollfd {
            fd: r.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        // SAFETY: a valid array of pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue;
        }
        // Reap first, so that a finished command's slot is free before new ones start.
        let mut i = running.len();
        while i > 0 {
            i -= 1;
            if fds[i + 1].revents == 0 {
                continue;
            }
            let r = running.swap_remove(i);
            let mut status = 0;
            // SAFETY: waits for our own child, which the pidfd says has ended.
            unsafe { libc::waitpid(r.pid, &mut status, 0) };
            Answer::Status(status).send(&r.request);
        }
        if fds[0].revents == 0 {
            continue;
        }
        let mut buf = [0u8; 16];
        let mut got: [RawFd; 3] = [-1; 3];
        let (len, nfds) = match control.recv_with_fd(&mut buf, &mut got) {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // SAFETY: ends this process; the commands' parent-death signals end theirs.
            Err(_) => unsafe { libc::_exit(0) },
        };
        if len == 0 && nfds == 0 {
            // The host is gone.
            // SAFETY: as above.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: descriptors just received, owned by nobody else in this process.
        let owned: Vec<OwnedFd> = got[..nfds]
            .iter()
            .map(|fd| {
                set_cloexec(*fd);
                unsafe { OwnedFd::from_raw_fd(*fd) }
            })
            .collect();
        if &buf[..len] != b"run" || owned.len() != 3 {
            continue;
        }
        let mut owned = owned.into_iter();
        let (out, report, request) = (
            owned.next().expect("three"),
            owned.next().expect("three"),
            UnixStream::from(owned.next().expect("three")),
        );
        // A prepared command when one is ready (waiting for it only if told to), else a fork of
        // the whole setup.
        let mut handed: Option<super::prepared::Prepared> = None;
        if let Some(mut p) = prepared.take() {
            let fds = [out.as_raw_fd(), report.as_raw_fd(), request.as_raw_fd()];
            match p.ready(wait) {
                Ok(false) => prepared = Some(p),
                Ok(true) if p.hand(&fds).is_ok() => handed = Some(p),
                // Died (before or since it said it was ready): this call, and every later one,
                // forks the whole setup.
                _ => {
                    p.discard();
                    may_prepare = false;
                }
            }
        }
        let pid = match &handed {
            Some(p) => p.pid,
            None => {
                // SAFETY: this process is single-threaded; the child continues with its own
                // copy.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    drop(running);
                    super::helper::command_main(&inherited, request, out, report);
                }
                pid
            }
        };
        if pid < 0 {
            continue;
        }
        // SAFETY: our own child, not reaped yet.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        Answer::Pid(pid).send(&request);
        if let Some(p) = handed {
            p.pid_sent();
        }
        drop(out);
        drop(report);
        if pidfd < 0 {
            // Cannot watch it: wait for it here rather than leave it unreaped.
            let mut status = 0;
            // SAFETY: our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            Answer::Status(status).send(&request);
            continue;
        }
        running.push(Running {
            pid,
            // SAFETY: a descriptor we just opened.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) },
            request,
        });
    }
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: sets a flag on a descriptor of this process.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
}

/// The host's side: the zygote process and its control socket. Restarted when it dies.
pub(crate) struct Zygote {
    helper: PathBuf,
    config: ZygoteConfig,
    live: Mutex<Option<Live>>,
}

struct Live {
    child: Child,
    control: std::sync::Arc<UnixDatagram>,
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the zygote's `ready` line.
fn wait_ready(mut stdout: std::process::ChildStdout, limit: std::time::Duration) -> Result<()> {
    let fd = stdout.as_raw_fd();
    let deadline = std::time::Instant::now() + limit;
    let mut got = Vec::new();
    while !got.ends_with(b"\n") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            bail!("it did not answer as one within {} s", limit.as_secs());
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32 + 1) } <= 0 {
            continue;
        }
        let mut b = [0u8; 64];
        let n = stdout.read(&mut b)?;
        if n == 0 {
            bail!("it exited without answering");
        }
        got.extend_from_slice(&b[..n]);
        if got.len() > 64 {
            break;
        }
    }
    if got != b"ready\n" {
        bail!("it answered {:?}", String::from_utf8_lossy(&got));
    }
    Ok(())
}

/// A command handed to the zygote: the pid it forked and the request to wait on.
pub(crate) struct Started {
    pub pid: libc::pid_t,
    pub request: Answers,
}

/// The zygote's lines on one request, read without blocking once `poll` says so.
pub(crate) struct Answers {
    pub stream: UnixStream,
    buf: Vec<u8>,
    pub eof: bool,
}

impl Answers {
    /// Reads what is there (blocking only if the stream is blocking) and returns the next whole
    /// answer, if any.
    pub fn next(&mut self) -> Result<Option<Answer>> {
        loop {
            if let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                return Ok(Some(serde_json::from_slice(&line).with_context(|| {
                    format!(
                        "the sandbox helper answered {:?}",
                        String::from_utf8_lossy(&line)
                    )
                })?));
            }
            if self.eof {
                return Ok(None);
            }
            let mut chunk = [0u8; 256];
            match (&self.stream).read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Zygote {
    pub fn new(helper: PathBuf, config: ZygoteConfig) -> Zygote {
        Zygote {
            helper,
            config,
            live: Mutex::new(None),
        }
    }

    fn start(&self) -> Result<Live> {
        let mut fds = [0; 2];
        // SAFETY: a valid out-array of two descriptors.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        } != 0
        {
            bail!("socketpair: {}", std::io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nobody else. A
        // SOCK_SEQPACKET socket is used through UnixDatagram: the same sendmsg/recvmsg calls,
        // plus an end-of-file when the peer closes, which is how the zygote learns the host
        // is gone.
        let (host, theirs) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut cmd = std::process::Command::new(&self.helper);
        cmd.arg("__sandbox-zygote")
            .arg(serde_json::to_string(&self.config)?)
            .env_clear()
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // Its own process group, so a terminal's Ctrl-C reaches the host, which then ends it.
        cmd.process_group(0);
        let mut child = cmd.spawn().with_context(|| {
            format!("cannot start the sandbox helper {}", self.helper.display())
        })?;
        let stdout = child.stdout.take().expect("piped");
        if let Err(e) = wait_ready(stdout, std::time::Duration::from_secs(10)) {
            // SAFETY: signals to our own child's process group.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            bail!(
                "{} is not a working sandbox helper: {e}",
                self.helper.display()
            );
        }
        Ok(Live {
            child,
            control: std::sync::Arc::new(UnixDatagram::from(host)),
        })
    }

    /// The zygote's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        let live = self.live.lock().expect("zygote lock");
        live.as_ref().map(|l| l.child.id())
    }

    fn control(&self, restart: bool) -> Result<std::sync::Arc<UnixDatagram>> {
        let mut live = self.live.lock().expect("zygote lock");
        let dead = match live.as_mut() {
            Some(l) => restart || l.child.try_wait().ok().flatten().is_some(),
            None => true,
        };
        if dead {
            *live = None;
            *live = Some(self.start()?);
        }
        Ok(live.as_ref().expect("just started").control.clone())
    }

    /// Hands one command to the zygote. `spec` is the command's JSON.
    pub fn start_command(&self, spec: &[u8], out: OwnedFd, report: OwnedFd) -> Result<Started> {
        let (mine, theirs) = UnixStream::pair().context("socketpair")?;
        let fds = [out.as_raw_fd(), report.as_raw_fd(), theirs.as_raw_fd()];
        let mut sent = self.control(false)?.send_with_fd(b"run", &fds);
        if sent.is_err() {
            // The zygote died since the last command: one restart.
            sent = self.control(true)?.send_with_fd(b"run", &fds);
        }
        sent.context("cannot reach the sandbox helper")?;
        drop((out, report, theirs));
        (&mine)
            .write_all(spec)
            .context("sending the command to the sandbox helper")?;
        mine.shutdown(std::net::Shutdown::Write)?;
        let mut request = Answers {
            stream: mine,
            buf: Vec::new(),
            eof: false,
        };
        match request.next()? {
            Some(Answer::Pid(pid)) => {
                request.stream.set_nonblocking(true)?;
                Ok(Started { pid, request })
            }
            other => bail!("the sandbox helper did not start the command (answer {other:?})"),
        }
    }
}
