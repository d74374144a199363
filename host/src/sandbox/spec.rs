//! What the host tells the sandbox helper (one JSON argument), and the layers it enforces.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One wall of the sandbox. `sandbox check` reports each; a pipeline may accept a missing one
/// only by naming it in `exec.allow_weaker`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// Its own user namespace: no capability over the host, uid 0 inside only.
    Userns,
    /// Its own network namespace: no interface but a loopback of its own.
    Netns,
    /// Its own mount namespace and root: the workspace at /workspace, a private /tmp, the system
    /// read-only, nothing else of the host.
    Mountns,
    /// Its own pid namespace: nothing a command leaves behind outlives the call.
    Pidns,
    /// Landlock: file access only beneath the allowed paths (and no TCP where the ABI has it).
    Landlock,
    /// seccomp: no new IP sockets, no ptrace, mount, namespaces, kernel keyrings or io_uring.
    Seccomp,
    /// rlimits: address space, CPU (soft below hard), file size, no core files.
    Rlimits,
    /// A process limit that holds for root too: a cgroup pids controller or RLIMIT_NPROC.
    Pids,
}

pub const ALL_LAYERS: [Layer; 8] = [
    Layer::Userns,
    Layer::Netns,
    Layer::Mountns,
    Layer::Pidns,
    Layer::Landlock,
    Layer::Seccomp,
    Layer::Rlimits,
    Layer::Pids,
];

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Userns => "userns",
            Layer::Netns => "netns",
            Layer::Mountns => "mountns",
            Layer::Pidns => "pidns",
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::Rlimits => "rlimits",
            Layer::Pids => "pids",
        }
    }

    pub fn parse(s: &str) -> Option<Layer> {
        ALL_LAYERS.into_iter().find(|l| l.name() == s)
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The helper's instructions. Paths are the host's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HelperSpec {
    /// Run with `/bin/bash -c`.
    pub command: String,
    /// Seen at /workspace, read-write.
    pub workspace: PathBuf,
    /// This call's own empty directory, seen at /tmp.
    pub tmp: PathBuf,
    /// Host directories visible read-only at their own paths (system, interpreter, environment).
    pub read_only: Vec<PathBuf>,
    /// The whole environment of the command.
    pub env: Vec<(String, String)>,
    pub address_space_bytes: u64,
    pub cpu_seconds: u64,
    pub file_size_bytes: u64,
    pub max_processes: u64,
    /// `cgroup.procs` of this call's pids cgroup, which the helper joins first; `None` where
    /// the process limit is RLIMIT_NPROC.
    pub cgroup_procs: Option<PathBuf>,
    /// Layers that may be missing: their setup failing is reported, not fatal.
    pub best_effort: Vec<Layer>,
    /// Layers not to set up at all ($SERA_HOST_SANDBOX_SKIP: to see how a machine without
    /// them behaves); reported as missing.
    #[serde(default)]
    pub skip: Vec<Layer>,
}

/// What the helper reports on its report pipe, one JSON object per line.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerReport {
    pub layer: Layer,
    pub ok: bool,
    pub detail: String,
}

/// `$SERA_HOST_SANDBOX_PREPARED`: `0` never, `wait` always (a call waits for the prepared one
/// to be ready: the tests use it to know which path ran), else when one is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prepare {
    Never,
    /// A call takes the prepared sandbox if it is ready, else forks the whole setup (never
    /// waits behind one still being made).
    WhenReady,
    Always,
}

impl Prepare {
    pub fn from_env() -> Prepare {
        match std::env::var("SERA_HOST_SANDBOX_PREPARED").as_deref() {
            Ok("0") => Prepare::Never,
            Ok("wait") => Prepare::Always,
            _ => Prepare::WhenReady,
        }
    }
}
