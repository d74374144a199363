//! The teacher's commands, recorded: every `exec` of a rollout is keyed by the workspace's tree
//! before it, the command, the environment and the timeout. A key seen before is answered from
//! its record (and its file changes applied) instead of running again, so a command is a pure
//! function of its key; replay and audit answer only from records and never run anything.

pub mod plan;
pub mod pyenv;
pub mod workspace_state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::corpus::{Corpus, ExecRecord};
use crate::plugin::{ExecHost, ExecReply, ExecRequest};
use crate::sandbox::Sandbox;
use workspace_state::WorkspaceState;

pub type SharedCorpus = Arc<Mutex<Corpus>>;

/// Where commands come from.
#[derive(Clone)]
pub enum Source {
    /// Run in the sandbox (unless recorded already), and record.
    Live(Arc<Sandbox>),
    /// Recorded runs only: a command without a record is refused.
    Replay,
}

/// What the commands of a rollout run against.
#[derive(Clone)]
pub struct ExecContext {
    pub source: Source,
    pub corpus: SharedCorpus,
    /// The environment's identity in record keys: an env id, or `bare:INTERPRETER`.
    pub env: String,
    /// The default and largest timeout of one command.
    pub timeout_s: u32,
    /// `I/N` for a worker of a partitioned run: its records are its own. Two workers running
    /// the same command on the same tree may get different output (test timings, say) and the
    /// rollouts of each must replay with what they saw, so their records must not collide
    /// when the corpora are merged. `None` on one machine, where the first record is shared.
    pub scope: Option<String>,
}

/// The key of a command: what its result is a function of (and, in a worker of a
/// partitioned run, which worker ran it).
pub fn exec_key(
    tree_before: &str,
    command: &str,
    env: &str,
    timeout_s: u32,
    scope: Option<&str>,
) -> String {
    let mut key =
        json!({"tree": tree_before, "command": command, "env": env, "timeout_s": timeout_s});
    if let Some(s) = scope {
        key["scope"] = json!(s);
    }
    hex::encode(Sha256::digest(crate::digest::canonical_json(&key)))
}

fn reply(rec: &ExecRecord, output: &[u8]) -> ExecReply {
    ExecReply {
        exit_code: rec.exit_code,
        signal: rec.signal,
        output: clean_output(output),
        truncated: rec.truncated,
        dropped_bytes: rec.dropped_bytes,
        timed_out: rec.timed_out,
        timeout_s: rec.timeout_s,
        duration_ms: rec.duration_ms,
        changed: rec.changes.iter().map(|(p, _, _)| p.clone()).collect(),
    }
}

/// Output as the model sees it: UTF-8 (invalid bytes replaced), no NULs, `\r\n` as `\n`.
pub fn clean_output(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace('\0', "\u{FFFD}")
        .replace("\r\n", "\n")
}

/// The keys of a rollout's commands, in the order they ran (for `explain`).
pub type ExecLog = Arc<Mutex<Vec<String>>>;

/// One rollout's commands.
pub struct RolloutExec {
    ctx: ExecContext,
    workspace: PathBuf,
    state: Option<WorkspaceState>,
    log: ExecLog,
}

impl ExecContext {
    /// The commands of one rollout over `workspace`; `log` receives their keys.
    pub fn for_workspace(&self, workspace: &Path, log: ExecLog) -> Box<dyn ExecHost> {
        Box::new(RolloutExec {
            ctx: self.clone(),
            workspace: workspace.to_path_buf(),
            state: None,
            log,
        })
    }
}

impl RolloutExec {
    fn run_inner(&mut self, request: ExecRequest) -> anyhow::Result<Result<ExecReply, String>> {
        let timeout_s = request
            .timeout_s
            .unwrap_or(self.ctx.timeout_s)
            .clamp(1, self.ctx.timeout_s.max(1));
        if self.state.is_none() {
            self.state = Some(WorkspaceState::new(&self.workspace)?);
        }
        let state = self.state.as_mut().expect("set above");
        state.rescan()?;
        let tree_before = state.tree();
        let key = exec_key(
            &tree_before,
            &request.command,
            &self.ctx.env,
            timeout_s,
            self.ctx.scope.as_deref(),
        );
        let mut recorded = self.ctx.corpus.lock().expect("corpus lock").exec(&key)?;
        let mut key = key;
        if recorded.is_none() && self.ctx.scope.is_some() {
            // A rollout made on one machine before (and reused by this worker) recorded its
            // commands unscoped.
            let plain = exec_key(
                &tree_before,
                &request.command,
                &self.ctx.env,
                timeout_s,
                None,
            );
            if let Some(r) = self.ctx.corpus.lock().expect("corpus lock").exec(&plain)? {
                recorded = Some(r);
                key = plain;
            }
        }
        self.log.lock().expect("exec log").push(key.clone());
        if let Some(rec) = recorded {
            let output = self
                .ctx
                .corpus
                .lock()
                .expect("corpus lock")
                .blob(&rec.output)?;
            let corpus = self.ctx.corpus.clone();
            workspace_state::apply(&self.workspace, &rec.changes, &|id| {
                corpus.lock().expect("corpus lock").blob(id)
            })?;
            state.rescan()?;
            if state.tree() != rec.tree_after {
                anyhow::bail!(
                    "exec {key}: applying the recorded changes of {:?} gave tree {}, the record says {}",
                    rec.command,
                    state.tree(),
                    rec.tree_after
                );
            }
            return Ok(Ok(reply(&rec, &output)));
        }
        let sandbox = match &self.ctx.source {
            Source::Replay => {
                return Ok(Err(format!(
                    "not recorded: no run of {:?} on workspace tree {tree_before} is in the corpus (replay and audit never run commands)",
                    request.command
                )))
            }
            Source::Live(s) => s.clone(),
        };
        let out = match sandbox.run(
            &self.workspace,
            &request.command,
            Some(Duration::from_secs(timeout_s.into())),
        ) {
            Ok(o) => o,
            Err(e) => return Ok(Err(format!("the command could not be run: {e:#}"))),
        };
        // A command ended by SIGTERM, SIGINT, SIGHUP or SIGKILL that was not our timeout may
        // have been stopped with this whole process (scancel, Ctrl-C, a node going down):
        // that is no result of the command. The signal reaches this process within moments
        // (and ends it, recording nothing); only a command that killed itself or met its own
        // limits gets past the wait and is recorded.
        if !out.timed_out
            && out.signal.is_some_and(|s| {
                [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGKILL].contains(&s)
            })
        {
            std::thread::sleep(Duration::from_millis(500));
        }
        // Everything the command started is gone (its pid namespace died with it), so the
        // files read now are the ones the scan saw.
        let mut files = Vec::new();
        let mut changes = Vec::new();
        for (path, mode, blob) in state.rescan()? {
            match blob {
                None => changes.push((path, mode, None)),
                Some(id) => {
                    files.push((id.clone(), state.read(&path, mode)?));
                    changes.push((path, mode, Some(id)));
                }
            }
        }
        let rec = ExecRecord {
            key: key.clone(),
            tree_before,
            command: request.command.clone(),
            env: self.ctx.env.clone(),
            timeout_s,
            exit_code: out.exit_code,
            signal: out.signal,
            timed_out: out.timed_out,
            truncated: out.truncated,
            dropped_bytes: out.output_total - out.output.len() as u64,
            output: hex::encode(Sha256::digest(&out.output)),
            duration_ms: out.duration.as_millis() as u64,
            changes,
            tree_after: String::new(),
        };
        // The record's tree after is the tree its changes give; rescan saw exactly them.
        let rec = ExecRecord {
            tree_after: state.tree(),
            ..rec
        };
        self.ctx
            .corpus
            .lock()
            .expect("corpus lock")
            .put_exec(&rec, &out.output, &files)?;
        Ok(Ok(reply(&rec, &out.output)))
    }
}

impl ExecHost for RolloutExec {
    fn available(&self) -> Result<(), String> {
        Ok(())
    }

    fn run(&mut self, request: ExecRequest) -> Result<ExecReply, String> {
        match self.run_inner(request) {
            Ok(r) => r,
            Err(e) => Err(format!("the command could not be run or recorded: {e:#}")),
        }
    }
}
