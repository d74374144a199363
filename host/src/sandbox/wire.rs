//! What the processes of a sandbox hand each other: what a command's process inherits from
//! the zygote, the answers on a request, and the small steps both the zygote's fork and a
//! prepared sandbox take. Below `helper`, `prepared` and `zygote`, which all use it.

use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::spec::Layer;

/// What every command's process inherits from the zygote.
pub(crate) struct Inherited {
    /// The zygote's user namespace: the parent of each command's own.
    pub userns: Result<String, String>,
    /// The zygote's network namespace: no interface but a loopback that is down, owned by the
    /// zygote's user namespace, so commands (in child user namespaces) cannot configure it.
    /// Commands share it only where Landlock scopes abstract sockets (the one channel it
    /// leaves between them); elsewhere each makes its own.
    pub netns: Result<String, String>,
    /// The commands' root, prepared once: its mount point and what it holds.
    pub template: Result<(PathBuf, String), String>,
    pub landlock_abi: i32,
    /// The zygote's uid outside (RLIMIT_NPROC holds only where it is not 0).
    pub host_uid: libc::uid_t,
    /// The seccomp filter, compiled once.
    pub seccomp: Result<seccompiler::BpfProgram, String>,
    /// Host paths every command sees read-only.
    pub read_only: Vec<PathBuf>,
}

impl Inherited {
    /// Whether commands may use the zygote's network namespace instead of making their own.
    pub fn shares_netns(&self, skip: &[Layer]) -> bool {
        self.netns.is_ok() && self.landlock_abi >= 6 && !skip.contains(&Layer::Landlock)
    }
}

/// A line the zygote writes on a request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    Pid(i32),
    Status(i32),
}

impl Answer {
    /// Writes this answer as one line; a host that has gone away is not an error here.
    pub(crate) fn send(&self, mut request: &UnixStream) {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        let _ = request.write_all(&line);
    }
}

/// The reason a layer left out by `$SERA_HOST_SANDBOX_SKIP` gives.
pub(crate) const SKIPPED: &str = "skipped ($SERA_HOST_SANDBOX_SKIP)";

/// Points the descriptors `fds` of this process at /dev/null, opened with `flags`.
pub(crate) fn to_dev_null(fds: &[RawFd], flags: libc::c_int) {
    // SAFETY: opens /dev/null and replaces this process's own descriptors with it.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), flags);
        if null >= 0 {
            for fd in fds {
                libc::dup2(null, *fd);
            }
            libc::close(null);
        }
    }
}

/// The command process's side of a request: its spec, read to the end.
pub(crate) fn read_spec(mut request: &UnixStream) -> std::io::Result<Vec<u8>> {
    let mut spec = Vec::new();
    request.read_to_end(&mut spec)?;
    Ok(spec)
}

/// Where a prepared command's root keeps the host's until its call comes (an empty directory of
/// the template).
pub(crate) const OLD_ROOT: &str = ".host";
