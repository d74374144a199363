//! How a pipeline's rollouts get their commands: one sandbox per environment (probed once, and
//! refused at start when a layer is missing), each snapshot's environment found or built on
//! first use, or, on replay and audit, only the records.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Result;

use super::pyenv::{self, Chosen};
use super::{ExecContext, SharedCorpus, Source};
use crate::plugin::ExecHost;
use crate::sandbox::{default_helper, Sandbox, SandboxConfig};

/// `build`: each snapshot's environment (built on first use); `bare`: the host's python3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvMode {
    Build,
    Bare,
}

pub struct ExecPlan {
    base: SandboxConfig,
    env_mode: EnvMode,
    live: bool,
    corpus: SharedCorpus,
    helper: PathBuf,
    sandboxes: Mutex<HashMap<Option<PathBuf>, Arc<Sandbox>>>,
    envs: Mutex<HashMap<String, Chosen>>,
}

impl ExecPlan {
    /// `live`: commands run (the sandbox is probed now, and a missing layer refuses the run);
    /// otherwise only recorded commands are served.
    pub fn new(
        base: SandboxConfig,
        env_mode: EnvMode,
        live: bool,
        corpus: SharedCorpus,
    ) -> Result<Self> {
        let plan = ExecPlan {
            base,
            env_mode,
            live,
            corpus,
            helper: default_helper()?,
            sandboxes: Mutex::new(HashMap::new()),
            envs: Mutex::new(HashMap::new()),
        };
        if live {
            plan.sandbox(&Chosen::bare(None))?;
        }
        Ok(plan)
    }

    fn sandbox(&self, env: &Chosen) -> Result<Arc<Sandbox>> {
        let mut map = self.sandboxes.lock().expect("sandbox map");
        if let Some(s) = map.get(&env.dir) {
            return Ok(s.clone());
        }
        let mut config = self.base.clone();
        env.apply(&mut config)?;
        let s = Arc::new(Sandbox::new(self.helper.clone(), config)?);
        map.insert(env.dir.clone(), s.clone());
        Ok(s)
    }

    /// The environment of `snapshot`: found, built (live runs), or bare.
    pub fn env(&self, snapshot: &str) -> Result<Chosen> {
        if let Some(c) = self.envs.lock().expect("env map").get(snapshot) {
            return Ok(c.clone());
        }
        let chosen = match self.env_mode {
            EnvMode::Bare => Chosen::bare(None),
            EnvMode::Build => {
                let corpus = self.corpus.lock().expect("corpus lock");
                let mut row = pyenv::stored(&corpus, snapshot)?;
                if row.is_none() && self.live {
                    row = Some(pyenv::build(
                        &corpus,
                        snapshot,
                        &pyenv::BuildOptions::default(),
                    )?);
                }
                pyenv::choose(row)
            }
        };
        self.envs
            .lock()
            .expect("env map")
            .insert(snapshot.to_string(), chosen.clone());
        Ok(chosen)
    }

    /// The commands of one rollout of `snapshot` in `workspace`, the environment they use, and
    /// the log their keys go to.
    /// `scope`: the worker (`I/N`) whose records these commands use, in a partitioned run.
    pub fn for_rollout(
        &self,
        snapshot: &str,
        workspace: &Path,
        scope: Option<&str>,
    ) -> Result<RolloutCommands> {
        let env = self.env(snapshot)?;
        let source = if self.live {
            Source::Live(self.sandbox(&env)?)
        } else {
            Source::Replay
        };
        let ctx = ExecContext {
            source,
            corpus: self.corpus.clone(),
            env: env.id.clone(),
            timeout_s: self.base.timeout.as_secs() as u32,
            scope: scope.map(str::to_string),
        };
        let log = super::ExecLog::default();
        Ok(RolloutCommands {
            host: ctx.for_workspace(workspace, log.clone()),
            env,
            log,
        })
    }
}

/// What a rollout gets: its commands' host, their environment, and their keys once it ran.
pub struct RolloutCommands {
    pub host: Box<dyn ExecHost>,
    pub env: Chosen,
    pub log: super::ExecLog,
}

impl RolloutCommands {
    /// The trajectory's `environment`: the environment and the keys of the commands it ran.
    pub fn metadata(log: &super::ExecLog, env: &Chosen) -> serde_json::Value {
        let mut m = env.metadata();
        m["execs"] = serde_json::json!(*log.lock().expect("exec log"));
        m
    }
}
