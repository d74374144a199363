//! Running the pipeline over selected items: rollout 1 (with the optional self-check), PR
//! synthesis, rollout 2, verification. Every teacher exchange is recorded, every rollout and
//! stage output is stored keyed by its inputs, so a stopped run picks up where it was.

use crate::shards::plugins::{load_filters, load_truncator, plugin_config, token_counter};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Digest;

use crate::config::{Prompt, Resolved};
use crate::corpus::{in_tests_path, RolloutRow, SnapshotFunction};
use crate::plugin::{
    Limits, LlmFn, LlmRequest, PatchPair, PluginEngine, PluginSource, PrSynthesizer, ToolsPlugin,
    TrajectoryFilter, Truncator, Verifier,
};
use crate::rollout::agent_blocking as blocking;
use crate::rollout::job::{function_vars, rollout_id, workspace_root, SharedCorpus};
use crate::rollout::{run, Outcome, RolloutSpec, Sampling, Templates};
use crate::teacher::{
    canonical_json, ChatRequest, OpenAiTeacher, RecordingTeacher, ReplayTeacher, RetryPolicy,
    ScriptedTeacher, Teacher,
};
use crate::tokenizer::TokenCounter;
use crate::trajectory::{Message, Role, Trajectory};

/// (request sha256, sample) of recorded exchanges.
pub type Exchanges = Vec<(String, u32)>;

pub use crate::corpus::sha256_hex;

fn key_of(v: &Value) -> String {
    sha256_hex(canonical_json(v).as_bytes())
}

/// One unit of work: a function of a snapshot and the change request made about it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Item {
    /// sha256 of what decides the item: shards are ordered by it.
    pub key: String,
    pub repo: String,
    pub snapshot: String,
    pub function: SnapshotFunction,
    /// Shared by every item it was picked for.
    pub prompt: Arc<Prompt>,
}

impl Item {
    pub fn function_key(&self) -> String {
        format!("{}::{}", self.function.path, self.function.qualname)
    }

    /// What decides the worker of a partitioned run that does this item: its function (sha256
    /// of snapshot, path and qualname), not its prompt. Every item of one function goes to one
    /// worker, so what they share is done once there, as on one machine: a rollout 2 whose PR
    /// text came out the same, a command run on the same tree, the function's workspace.
    pub fn partition_key(&self) -> String {
        let mut h = sha2::Sha256::new();
        for part in [
            self.snapshot.as_str(),
            self.function.path.as_str(),
            self.function.qualname.as_str(),
        ] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        hex::encode(h.finalize())
    }
}

/// Picks `functions_per_repo` functions of each snapshot, by a seeded hash order, and a
/// prompt for each: the same corpus and config always give the same items.
pub fn select(
    corpus: &crate::corpus::Corpus,
    snapshots: &[(String, String)],
    cfg: &Resolved,
) -> Result<Vec<Item>> {
    Ok(select_clean(corpus, snapshots, cfg, None)?.0)
}

/// Per instance, the functions decontamination left out of the selection (`repo path::qualname`).
pub type SkippedFunctions = BTreeMap<String, Vec<String>>;

/// [`select`], leaving out the functions a `decontam` instance's patches touch: the items, and
/// per instance the functions left out (`repo path::qualname`).
pub fn select_clean(
    corpus: &crate::corpus::Corpus,
    snapshots: &[(String, String)],
    cfg: &Resolved,
    decontam: Option<&crate::output::decontam::Index>,
) -> Result<(Vec<Item>, SkippedFunctions)> {
    let s = &cfg.select;
    let mut items = Vec::new();
    let mut skipped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (repo, snapshot) in snapshots {
        let mut fns: Vec<(String, SnapshotFunction)> = corpus
            .functions(snapshot)?
            .into_iter()
            .filter(|f| !(s.skip_tests && (f.in_tests || in_tests_path(&f.path))))
            .filter(|f| f.line_count >= s.min_lines)
            .filter(|f| {
                let Some(idx) = decontam else { return true };
                let hits = idx.function_hits(repo, &function_ref(f));
                for h in &hits {
                    skipped
                        .entry(h.instance.clone())
                        .or_default()
                        .push(format!("{repo} {}::{}", f.path, f.qualname));
                }
                hits.is_empty()
            })
            .map(|f| {
                let rank = sha256_hex(
                    format!(
                        "{}\0{snapshot}\0{}\0{}\0{}",
                        s.seed, f.path, f.qualname, f.start_line
                    )
                    .as_bytes(),
                );
                (rank, f)
            })
            .collect();
        fns.sort_by(|a, b| a.0.cmp(&b.0));
        let n_prompts = cfg.prompts.rollout1.len();
        let shared: Vec<Arc<Prompt>> = cfg.prompts.rollout1.iter().cloned().map(Arc::new).collect();
        for (rank, f) in fns.into_iter().take(s.functions_per_repo) {
            // Distinct prompts for one function: consecutive ones from a hash-picked start.
            let first = u64::from_str_radix(&rank[..15], 16).expect("hex") as usize % n_prompts;
            for k in 0..s.prompts_per_function.min(n_prompts) {
                let prompt = shared[(first + k) % n_prompts].clone();
                let key = key_of(&json!({
                    "snapshot": snapshot,
                    "path": f.path,
                    "qualname": f.qualname,
                    "start_line": f.start_line,
                    "prompt": prompt,
                    "seed": s.seed,
                }));
                items.push(Item {
                    key,
                    repo: repo.clone(),
                    snapshot: snapshot.clone(),
                    function: f.clone(),
                    prompt,
                });
            }
        }
    }
    items.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((items, skipped))
}

pub fn function_ref(f: &SnapshotFunction) -> crate::output::facts::FunctionRef {
    crate::output::facts::FunctionRef {
        path: f.path.clone(),
        qualname: f.qualname.clone(),
        start_line: f.start_line,
        end_line: f.end_line,
    }
}

/// A finished rollout as the later stages use it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RolloutRef {
    pub id: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub steps: u32,
    pub trajectory: Trajectory,
    pub patch: String,
}

/// What happened to an item up to verification.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ItemResult {
    pub item: Item,
    pub t1: Option<RolloutRef>,
    /// Self-check answers, one per rollout-1 attempt that was checked.
    pub self_checks: Vec<String>,
    pub pr: Option<String>,
    /// (request sha256, sample) of the exchanges behind the PR text and the self-checks.
    pub stage_exchanges: Vec<(String, u32)>,
    pub t2: Option<RolloutRef>,
    pub r: Option<f64>,
    pub verdict: Option<String>,
    /// Why the item stopped early, if it did.
    pub stopped: Option<String>,
}

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
    pub plugin_hashes: BTreeMap<String, super::PluginRef>,
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
            super::PluginRef {
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
            super::PluginRef {
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
            super::PluginRef {
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
    fn mark(&self, item: &Item, stage: crate::corpus::ItemStage) -> Result<()> {
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

    fn sampling(&self) -> Sampling {
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

    fn reuse(&self) -> bool {
        self.mode != Mode::Rebuild
    }

    fn templates(&self, instance: &str) -> Templates {
        Templates {
            system: self.cfg.prompts.system.clone(),
            instance: instance.to_string(),
            review: self.cfg.prompts.review.clone(),
        }
    }

    fn spec(&self, instance: &str, vars: BTreeMap<String, String>, sample: u32) -> RolloutSpec {
        let mut spec = RolloutSpec::new(&self.cfg.teacher.model, vars);
        spec.sampling = self.sampling();
        spec.templates = self.templates(instance);
        spec.step_limit = self.cfg.rollout.step_limit;
        spec.token_budget = self.cfg.rollout.token_budget;
        spec.sample = sample;
        if self.exec.is_some() {
            spec.exec = serde_json::to_value(&self.cfg.rollout.exec).ok();
        }
        spec
    }

    /// A rollout, from the corpus when these inputs ran before (unless the teacher failed it).
    async fn rollout(&self, item: &Item, spec: &RolloutSpec) -> Result<RolloutRef> {
        let function = item.function_key();
        let teacher = self
            .live_teachers
            .get(&item.key)
            .cloned()
            .unwrap_or_else(|| self.teacher.describe());
        let id = rollout_id(&item.snapshot, &function, spec, &self.tools, &teacher);
        if self.reuse() {
            let stored = self.corpus.lock().expect("corpus lock").rollout(&id)?;
            if let Some(row) = stored.filter(|r| r.outcome != Outcome::TeacherError.as_str()) {
                let c = self.corpus.lock().expect("corpus lock");
                let trajectory: Trajectory = serde_json::from_slice(&c.blob(&row.trajectory)?)
                    .with_context(|| format!("rollout {id}: stored trajectory is not valid"))?;
                let patch = String::from_utf8(c.blob(&row.patch)?)
                    .with_context(|| format!("rollout {id}: stored patch is not UTF-8"))?;
                return Ok(RolloutRef {
                    id,
                    outcome: row.outcome,
                    reason: row.reason,
                    steps: row.steps,
                    trajectory,
                    patch,
                });
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("sera-run-")
            .tempdir_in(workspace_root())
            .context("cannot create a rollout workspace")?;
        let base = {
            let c = self.corpus.lock().expect("corpus lock");
            c.export(&item.snapshot, dir.path())?;
            c.entries(&item.snapshot)?
        };
        crate::rollout::patch::pin_mtimes(&base, dir.path())?;
        let (exec_host, environment) = match &self.exec {
            Some(plan) => {
                let scope = self.exec_scopes.get(&item.key).map(String::as_str);
                let c = blocking(|| plan.for_rollout(&item.snapshot, dir.path(), scope))?;
                (Some(c.host), Some((c.log, c.env)))
            }
            None => (None, None),
        };
        let mut session = match blocking(|| self.tools.open_with(&id, dir.path(), exec_host)) {
            Ok(s) => s,
            Err(f) => {
                return Ok(RolloutRef {
                    id,
                    outcome: Outcome::ToolsError.as_str().into(),
                    reason: Some(f.to_string()),
                    steps: 0,
                    trajectory: Trajectory {
                        messages: Vec::new(),
                        tools: Vec::new(),
                        steps: Vec::new(),
                        environment: None,
                    },
                    patch: String::new(),
                })
            }
        };
        let corpus = self.corpus.clone();
        let blob = move |b: &str| corpus.lock().expect("corpus lock").blob(b);
        let mut r = run(
            spec,
            self.teacher.as_ref(),
            &mut session,
            &id,
            dir.path(),
            &base,
            &blob,
        )
        .await?;
        r.trajectory.environment =
            environment.map(|(log, env)| crate::exec::plan::RolloutCommands::metadata(&log, &env));
        if self.mode != Mode::Rebuild {
            let row = RolloutRow {
                id: id.clone(),
                snapshot: item.snapshot.clone(),
                function,
                teacher: self.teacher.describe(),
                model: spec.model.clone(),
                sample: spec.sample,
                outcome: r.outcome.as_str().to_string(),
                reason: r.reason.clone(),
                steps: r.steps,
                trajectory: String::new(),
                patch: String::new(),
                created_at: String::new(),
            };
            let trajectory = serde_json::to_vec(&r.trajectory)?;
            self.corpus.lock().expect("corpus lock").put_rollout(
                &row,
                &trajectory,
                r.patch.as_bytes(),
            )?;
        }
        Ok(RolloutRef {
            id,
            outcome: r.outcome.as_str().into(),
            reason: r.reason,
            steps: r.steps,
            trajectory: r.trajectory,
            patch: r.patch,
        })
    }

    /// An `llm` for a plugin: the teacher, asked from blocking code, every exchange noted.
    fn llm(&self, sample: u32, seen: Arc<Mutex<Vec<(String, u32)>>>) -> LlmFn {
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
    fn cached<T: Serialize + for<'de> Deserialize<'de>>(
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

    fn teacher_key(&self) -> Value {
        json!({"model": self.cfg.teacher.model, "sampling": self.sampling()})
    }

    /// Asks the teacher whether rollout 1's patch is a fix for its request.
    fn self_check(&self, t1: &RolloutRef, sample: u32) -> Result<(bool, String, Exchanges)> {
        let task = t1
            .trajectory
            .messages
            .iter()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let key = key_of(&json!({
            "stage": "self-check",
            "request": task,
            "patch": t1.patch,
            "template": self.cfg.prompts.self_check,
            "teacher": self.teacher_key(),
            "sample": sample,
        }));
        self.cached(&key, "self-check", || {
            let vars = BTreeMap::from([
                ("problem_statement".to_string(), task.clone()),
                ("diff".to_string(), t1.patch.clone()),
            ]);
            let text =
                crate::rollout::render_template("self_check", &self.cfg.prompts.self_check, &vars)?;
            let seen = Arc::new(Mutex::new(Vec::new()));
            let mut llm = self.llm(sample, seen.clone());
            let answer = blocking(|| {
                llm(LlmRequest {
                    messages: vec![Message::text(Role::User, text)],
                    tools: Vec::new(),
                    max_tokens: None,
                    temperature: None,
                })
            });
            let answer = answer.map_err(|e| anyhow::anyhow!("self-check: {e}"))?;
            let ok = answer
                .content
                .trim_start()
                .to_ascii_uppercase()
                .starts_with("YES");
            let seen = seen.lock().expect("exchange list").clone();
            Ok((ok, answer.content, seen))
        })
    }

    fn pr_text(&self, item: &Item, t1: &RolloutRef) -> Result<(Result<String, String>, Exchanges)> {
        let key = key_of(&json!({
            "stage": "pr-synth",
            "trajectory": sha256_hex(&serde_json::to_vec(&t1.trajectory.messages)?),
            "patch": t1.patch,
            "plugin": self.pr_synth.sha256(),
            "config": self.cfg.pr_synth.config,
            "teacher": self.teacher_key(),
        }));
        self.cached(&key, "pr-synth", || {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let llm = self.llm(0, seen.clone());
            let out = blocking(|| {
                self.pr_synth
                    .synthesize(&item.key, &t1.trajectory, &t1.patch, llm)
            })
            .map_err(|f| f.to_string());
            let seen = seen.lock().expect("exchange list").clone();
            Ok((out, seen))
        })
    }

    /// One item through rollout 1, the self-check, PR synthesis, rollout 2 and verification.
    pub async fn process(&self, item: Item) -> Result<ItemResult> {
        let mut res = ItemResult {
            item: item.clone(),
            t1: None,
            self_checks: Vec::new(),
            pr: None,
            stage_exchanges: Vec::new(),
            t2: None,
            r: None,
            verdict: None,
            stopped: None,
        };
        let vars = function_vars(&item.function);
        let mut sample = 0;
        let t1 = loop {
            let spec = self.spec(&item.prompt.text, vars.clone(), sample);
            let t1 = self.rollout(&item, &spec).await?;
            let checkable = t1.outcome == Outcome::Submitted.as_str() && !t1.patch.is_empty();
            if !self.cfg.self_check.enabled || !checkable {
                break t1;
            }
            let (ok, answer, seen) = self.self_check(&t1, sample)?;
            res.self_checks.push(answer);
            res.stage_exchanges.extend(seen);
            if ok || sample >= self.cfg.self_check.retries {
                break t1;
            }
            sample += 1;
        };
        self.progress.rollout1.inc(1);
        self.mark(&item, crate::corpus::ItemStage::Rollout1)?;
        let submitted = t1.outcome == Outcome::Submitted.as_str();
        let empty = t1.patch.trim().is_empty();
        res.t1 = Some(t1.clone());
        if !submitted || empty {
            res.stopped = Some(if empty && submitted {
                "rollout 1 submitted no change".into()
            } else {
                format!(
                    "rollout 1 ended with {}: {}",
                    t1.outcome,
                    t1.reason.clone().unwrap_or_default()
                )
            });
            return Ok(res);
        }
        let (pr, seen) = self.pr_text(&item, &t1)?;
        res.stage_exchanges.extend(seen);
        self.progress.pr.inc(1);
        self.mark(&item, crate::corpus::ItemStage::Pr)?;
        let pr = match pr {
            Ok(p) => p,
            Err(e) => {
                res.stopped = Some(format!("PR synthesis failed: {e}"));
                return Ok(res);
            }
        };
        res.pr = Some(pr.clone());
        let mut vars2 = vars;
        vars2.insert("problem_statement".into(), pr);
        let spec2 = self.spec(&self.cfg.prompts.rollout2, vars2, 0);
        let t2 = self.rollout(&item, &spec2).await?;
        self.progress.rollout2.inc(1);
        self.mark(&item, crate::corpus::ItemStage::Rollout2)?;
        res.t2 = Some(t2.clone());
        if t2.outcome != Outcome::Submitted.as_str() {
            res.stopped = Some(format!(
                "rollout 2 ended with {}: {}",
                t2.outcome,
                t2.reason.clone().unwrap_or_default()
            ));
            return Ok(res);
        }
        let pair = PatchPair {
            reference: t1.patch.clone(),
            candidate: t2.patch.clone(),
        };
        let verdict = blocking(|| {
            self.verifier
                .lock()
                .expect("verifier lock")
                .verify(&item.key, &pair)
        });
        self.mark(&item, crate::corpus::ItemStage::Verified)?;
        match verdict {
            Ok(v) => {
                res.r = v.score;
                res.verdict = Some(format!("{}/{} {}", v.matched, v.total, v.detail));
            }
            Err(f) => res.stopped = Some(format!("verification failed: {f}")),
        }
        Ok(res)
    }
}
