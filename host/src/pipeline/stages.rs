//! What every stage shares: the loaded plugins, the teacher, the corpus and how the run uses
//! them (`Mode`), and the helpers the stages call (progress marks, cached stage outputs, the
//! teacher as a plugin's `llm`).

use crate::shards::plugins::{load_filters, load_truncator, plugin_config, token_counter};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Resolved;
use crate::plugin::{
    Limits, LlmFn, LlmRequest, PluginEngine, PluginSource, PrSynthesizer, ToolsPlugin,
    TrajectoryFilter, Truncator, Verifier,
};
use crate::rollout::job::SharedCorpus;
use crate::rollout::Sampling;
use crate::teacher::{
    ChatRequest, OpenAiTeacher, RecordingTeacher, ReplayTeacher, RetryPolicy, ScriptedTeacher,
    Teacher,
};
use crate::tokenizer::TokenCounter;

use super::item::Item;

/// How a run gets its teacher and uses the corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Ask the configured teacher (recording every exchange); reuse stored outputs.
    Live,
    /// Serve only recorded exchanges; reuse stored outputs.
    Replay,
    /// Serve only recorded exchanges, recompute everything, store nothing (audits).
    Rebuild,
}

/// Everything the stages share.
pub struct Stages {
    pub cfg: Resolved,
    pub corpus: SharedCorpus,
    pub mode: Mode,
    pub teacher: Arc<dyn Teacher>,
    pub tools: ToolsPlugin,
    pub pr_synth: PrSynthesizer,
    pub verifier: Mutex<Verifier>,
    pub truncator: Truncator,
    pub filters: Vec<TrajectoryFilter>,
    pub tokens: Arc<TokenCounter>,
    pub plugin_hashes: BTreeMap<String, crate::shards::manifest::PluginRef>,
    pub progress: super::progress::Progress,
    /// Commands (`[rollout.exec]`), when enabled.
    pub exec: Option<crate::exec::plan::ExecPlan>,
    /// The pipeline's sha256 under which live runs record how far each item got.
    pub progress_key: Option<String>,
    /// Items done by a worker of a partitioned run, and which (`I/N`): their commands'
    /// records are that worker's own (see `ExecContext::scope`).
    pub exec_scopes: std::collections::HashMap<String, String>,
    /// `--finalize`: the teacher each item's live run asked, as rollout ids name it, so that
    /// the workers' stored rollouts are found instead of replayed.
    pub live_teachers: std::collections::HashMap<String, String>,
    /// `[decontaminate]`'s instances, loaded once.
    pub decontam: Option<Arc<crate::output::decontam::Index>>,
}

/// The sandbox limits a pipeline's `[rollout.exec]` names.
pub fn sandbox_config(e: &crate::config::ExecSection) -> crate::sandbox::SandboxConfig {
    crate::sandbox::SandboxConfig {
        timeout: Duration::from_secs(e.timeout_s.into()),
        memory_mib: e.memory_mib,
        cpu_s: None,
        file_size_mib: e.file_size_mib,
        max_processes: e.max_processes,
        output_bytes: e.output_bytes,
        allow_weaker: e
            .allow_weaker
            .iter()
            .filter_map(|l| crate::sandbox::Layer::parse(l))
            .collect(),
        ..Default::default()
    }
}

impl Stages {
    pub fn new(
        cfg: Resolved,
        corpus: SharedCorpus,
        mode: Mode,
        progress: bool,
        worker: Option<crate::cluster::Worker>,
    ) -> Result<Stages> {
        let engine = PluginEngine::with_default_cache()?;
        let load = |spec: &str| engine.load(&PluginSource::parse(spec)?);
        let mut plugin_hashes = BTreeMap::new();
        let tools_p = load(&cfg.rollout.tools)?;
        let tools = ToolsPlugin::new(
            &engine,
            &tools_p,
            &plugin_config(&cfg.rollout.tools_config),
            Limits::default(),
        )?;
        let exec = if cfg.rollout.exec.enabled {
            if !tools.runs_commands() {
                anyhow::bail!(
                    "rollout.exec.enabled: the tools plugin {} does not import sera:plugin/exec, so it offers no command tool",
                    cfg.rollout.tools
                );
            }
            let env_mode = if cfg.rollout.exec.env == "bare" {
                crate::exec::plan::EnvMode::Bare
            } else {
                crate::exec::plan::EnvMode::Build
            };
            Some(
                crate::exec::plan::ExecPlan::new(
                    sandbox_config(&cfg.rollout.exec),
                    env_mode,
                    mode == Mode::Live,
                    corpus.clone(),
                )
                .context("rollout.exec")?,
            )
        } else {
            None
        };
        plugin_hashes.insert(
            "tools".into(),
            crate::shards::manifest::PluginRef {
                source: cfg.rollout.tools.clone(),
                sha256: tools_p.sha256.clone(),
            },
        );
        let pr_p = load(&cfg.pr_synth.plugin)?;
        let pr_synth = PrSynthesizer::new(
            &engine,
            &pr_p,
            &plugin_config(&cfg.pr_synth.config),
            Limits::default(),
        )?;
        plugin_hashes.insert(
            "pr_synth".into(),
            crate::shards::manifest::PluginRef {
                source: cfg.pr_synth.plugin.clone(),
                sha256: pr_p.sha256.clone(),
            },
        );
        let v_p = load(&cfg.verify.plugin)?;
        let verifier = Verifier::new(
            &engine,
            &v_p,
            &plugin_config(&cfg.verify.config),
            Limits::default(),
        )?;
        plugin_hashes.insert(
            "verify".into(),
            crate::shards::manifest::PluginRef {
                source: cfg.verify.plugin.clone(),
                sha256: v_p.sha256.clone(),
            },
        );
        let tokens = token_counter(&cfg.truncation.tokenizer)?;
        let tokens = Arc::new(tokens);
        let decontam = cfg
            .decontaminate
            .as_ref()
            .map(|d| d.load().map(Arc::new))
            .transpose()?;
        let truncator = load_truncator(&engine, &cfg.truncation, &tokens, &mut plugin_hashes)?;
        let filters = load_filters(&engine, &cfg.filters, &tokens, &mut plugin_hashes)?;
        let parse = crate::teacher::ParseOptions {
            text_tool_calls: cfg.teacher.text_tool_calls,
        };
        let teacher: Arc<dyn Teacher> = match mode {
            Mode::Replay | Mode::Rebuild => {
                Arc::new(ReplayTeacher::new(corpus.clone()).with_parse(parse))
            }
            Mode::Live => {
                let inner: Box<dyn Teacher> = match cfg.teacher.kind.as_str() {
                    "scripted" => Box::new(ScriptedTeacher),
                    _ => {
                        let key = match &cfg.teacher.api_key_env {
                            Some(var) => Some(std::env::var(var).with_context(|| {
                                format!("teacher.api_key_env: the environment variable {var} is not set")
                            })?),
                            None => None,
                        };
                        Box::new(
                            OpenAiTeacher::new(
                                &cfg.teacher.url_for(worker.map_or(0, |w| w.index)),
                                key,
                                cfg.teacher.concurrency,
                                Duration::from_secs(cfg.teacher.timeout_s),
                                RetryPolicy::default(),
                            )?
                            .with_parse(parse),
                        )
                    }
                };
                Arc::new(RecordingTeacher::new(inner, corpus.clone()).with_parse(parse))
            }
        };
        Ok(Stages {
            cfg,
            corpus,
            mode,
            teacher,
            tools,
            pr_synth,
            verifier: Mutex::new(verifier),
            truncator,
            filters,
            tokens,
            plugin_hashes,
            progress: super::progress::Progress::new(progress),
            exec,
            progress_key: None,
            exec_scopes: Default::default(),
            live_teachers: Default::default(),
            decontam,
        })
    }

    /// Notes that an item passed a stage (live runs only: what `sera-host status` shows).
    pub(super) fn mark(&self, item: &Item, stage: crate::corpus::ItemStage) -> Result<()> {
        if let Some(p) = &self.progress_key {
            self.corpus
                .lock()
                .expect("corpus lock")
                .mark_item(p, &item.key, stage)?;
        }
        Ok(())
    }

    pub fn item_finished(&self, key: &str, stopped: Option<&str>) -> Result<()> {
        if let Some(p) = &self.progress_key {
            self.corpus
                .lock()
                .expect("corpus lock")
                .finish_item(p, key, stopped)?;
        }
        Ok(())
    }

    pub(super) fn sampling(&self) -> Sampling {
        let t = &self.cfg.teacher;
        Sampling {
            temperature: t.temperature,
            top_p: t.top_p,
            seed: t.seed,
            max_tokens: t.max_tokens,
            tool_choice: t.tool_choice.clone().map(serde_json::Value::String),
            extra: t.extra.clone().into_iter().collect(),
        }
    }

    pub(super) fn reuse(&self) -> bool {
        self.mode != Mode::Rebuild
    }

    /// An `llm` for a plugin: the teacher, asked from blocking code, every exchange noted.
    pub(super) fn llm(&self, sample: u32, seen: Arc<Mutex<Vec<(String, u32)>>>) -> LlmFn {
        let teacher = self.teacher.clone();
        let handle = tokio::runtime::Handle::current();
        let model = self.cfg.teacher.model.clone();
        let sampling = self.sampling();
        Box::new(move |req: LlmRequest| {
            let request = ChatRequest {
                model: model.clone(),
                messages: req.messages,
                tools: req.tools.into(),
                tool_choice: None,
                temperature: req.temperature.map(f64::from).or(sampling.temperature),
                top_p: sampling.top_p,
                seed: sampling.seed,
                max_tokens: req.max_tokens.map(u64::from).or(sampling.max_tokens),
                extra: sampling.extra.clone(),
                prepared: Default::default(),
            };
            let answer = handle.block_on(teacher.complete(&request, sample));
            seen.lock()
                .expect("exchange list")
                .push((request.sha256().to_string(), sample));
            answer.map(|c| c.message).map_err(|e| e.to_string())
        })
    }

    /// A stage output by its key, or computed by `make` and stored.
    pub(super) fn cached<T: Serialize + for<'de> Deserialize<'de>>(
        &self,
        key: &str,
        stage: &str,
        make: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if self.reuse() {
            if let Some(bytes) = self.corpus.lock().expect("corpus lock").stage_output(key)? {
                if let Ok(v) = serde_json::from_slice(&bytes) {
                    return Ok(v);
                }
            }
        }
        let v = make()?;
        if self.mode != Mode::Rebuild {
            self.corpus.lock().expect("corpus lock").put_stage_output(
                key,
                stage,
                &serde_json::to_vec(&v)?,
            )?;
        }
        Ok(v)
    }

    pub(super) fn teacher_key(&self) -> Value {
        json!({"model": self.cfg.teacher.model, "sampling": self.sampling()})
    }
}
