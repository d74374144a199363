//! The host side of `sera:plugin/exec@0.1.1` as the plugin runtime sees it: a per-rollout
//! [`ExecHost`] that the layer above (recording, replay, the sandbox) provides. The runtime only
//! passes calls through and notes the paths a command changed, so the patch reads them.

/// One command the plugin asked for.
#[derive(Clone, Debug)]
pub struct ExecRequest {
    pub command: String,
    pub timeout_s: Option<u32>,
}

/// What a command did, as the plugin receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecReply {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub output: String,
    pub truncated: bool,
    pub dropped_bytes: u64,
    pub timed_out: bool,
    pub timeout_s: u32,
    pub duration_ms: u64,
    /// Workspace-relative paths the command created, changed or deleted.
    pub changed: Vec<String>,
}

/// Commands for one rollout's workspace.
pub trait ExecHost: Send {
    /// `Err` says why this rollout cannot run commands.
    fn available(&self) -> Result<(), String>;
    fn run(&mut self, request: ExecRequest) -> Result<ExecReply, String>;
}

/// The `exec` of a host that runs no commands: the plugin's `bash` is not listed.
pub struct NoExec(pub String);

impl ExecHost for NoExec {
    fn available(&self) -> Result<(), String> {
        Err(self.0.clone())
    }
    fn run(&mut self, _: ExecRequest) -> Result<ExecReply, String> {
        Err(self.0.clone())
    }
}
