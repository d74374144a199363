//! `sera-host rollout`: one agent run on a function of a stored snapshot.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

use super::cache_args::CacheArgs;
use crate::corpus::Corpus;
use crate::plugin::{Limits, PluginSource, ToolsPlugin};
use crate::rollout::job::{execute, find_function, function_vars};
use crate::rollout::{Outcome, RolloutSpec, Templates};
use crate::teacher::{
    OpenAiTeacher, RecordingTeacher, ReplayTeacher, RetryPolicy, ScriptedTeacher, Teacher,
};

#[derive(Args, Debug)]
pub struct RolloutArgs {
    /// The corpus file.
    #[arg(long, env = "SERA_HOST_CORPUS", default_value = "corpus.sqlite")]
    db: PathBuf,
    /// Snapshot id, unique prefix, or source name.
    #[arg(long)]
    snapshot: String,
    /// The function's qualified name, as `corpus functions` lists it.
    #[arg(long)]
    function: String,
    /// The function's file, when its name is defined in several.
    #[arg(long)]
    file: Option<String>,
    /// `scripted` (the deterministic test double), `replay` (recorded exchanges only), or an
    /// OpenAI-compatible endpoint URL such as http://localhost:8000/v1 (exchanges recorded).
    #[arg(long)]
    teacher: String,
    /// The model name sent to the endpoint.
    #[arg(long, default_value = "scripted")]
    model: String,
    /// The task prompt template (minijinja; variables working_dir, start_fn, start_fn_file,
    /// problem_statement). Default: a SERA-style vague bug report about the function.
    #[arg(long, value_name = "FILE")]
    prompt: Option<PathBuf>,
    /// The system prompt template.
    #[arg(long, value_name = "FILE")]
    system: Option<PathBuf>,
    /// The review-on-submit template (gets `diff` too).
    #[arg(long, value_name = "FILE")]
    review: Option<PathBuf>,
    /// Submit once, without SWE-agent's review-on-submit confirmation.
    #[arg(long)]
    no_review: bool,
    /// The tools plugin.
    #[arg(long, default_value = "builtin:swe-tools")]
    tools: String,
    #[arg(long, default_value_t = 115)]
    step_limit: u32,
    #[arg(long)]
    token_budget: Option<u64>,
    #[arg(long)]
    temperature: Option<f64>,
    #[arg(long)]
    top_p: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    max_tokens: Option<u64>,
    /// `auto`, `required`, `none`, or a JSON object.
    #[arg(long)]
    tool_choice: Option<String>,
    /// Extra request fields as a JSON object, e.g. '{"top_k": 20}'.
    #[arg(long, value_name = "JSON")]
    extra: Option<String>,
    /// Keep tool calls the model wrote as text in `content` as text (by default they are parsed).
    #[arg(long)]
    no_text_tool_calls: bool,
    /// Which sample of identical requests this is (recordings are keyed by it).
    #[arg(long, default_value_t = 0)]
    sample: u32,
    /// Environment variable holding the API key (sent as a Bearer token).
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// Seconds before a teacher request times out (it is then retried).
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Attempts per teacher request, the first included.
    #[arg(long, default_value_t = 8)]
    max_attempts: u32,
    /// Give the teacher `bash`: commands run in the sandbox (recorded; with `--teacher replay`
    /// only recorded commands are served).
    #[arg(long)]
    exec: bool,
    /// Wall clock per command.
    #[arg(long, default_value_t = 60)]
    exec_timeout_s: u32,
    /// `build` (the snapshot's environment, built if missing) or `bare` (the host's python3).
    #[arg(long, default_value = "build")]
    exec_env: String,
    /// A sandbox layer that may be missing here (repeatable; see `sera-host sandbox check`).
    #[arg(long, value_name = "LAYER")]
    allow_weaker: Vec<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

fn read_template(path: &Option<PathBuf>, default: String) -> Result<String> {
    match path {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("{}: cannot read the template", p.display())),
        None => Ok(default),
    }
}

pub fn run(args: RolloutArgs) -> Result<ExitCode> {
    let corpus = Corpus::open_existing(&args.db)?;
    let snapshot = corpus.resolve_snapshot(&args.snapshot)?;
    let function = find_function(&corpus, &snapshot, &args.function, args.file.as_deref())?;
    let defaults = Templates::default();
    let mut spec = RolloutSpec::new(&args.model, function_vars(&function));
    spec.templates = Templates {
        system: read_template(&args.system, defaults.system)?,
        instance: read_template(&args.prompt, defaults.instance)?,
        review: read_template(&args.review, defaults.review)?,
    };
    spec.review_on_submit = !args.no_review;
    spec.step_limit = args.step_limit;
    spec.token_budget = args.token_budget;
    spec.sample = args.sample;
    spec.sampling.temperature = args.temperature;
    spec.sampling.top_p = args.top_p;
    spec.sampling.seed = args.seed;
    spec.sampling.max_tokens = args.max_tokens;
    spec.sampling.tool_choice = args
        .tool_choice
        .as_deref()
        .map(|c| serde_json::from_str::<Value>(c).unwrap_or_else(|_| Value::String(c.to_string())));
    if let Some(extra) = &args.extra {
        match serde_json::from_str::<Value>(extra) {
            Ok(Value::Object(m)) => spec.sampling.extra = m,
            _ => bail!("--extra: expected a JSON object, got {extra}"),
        }
    }
    let engine = args.cache.engine()?;
    let loaded = engine.load(&PluginSource::parse(&args.tools)?)?;
    let tools = ToolsPlugin::new(&engine, &loaded, "{}", Limits::default())?;
    let shared = Arc::new(Mutex::new(corpus));
    let exec = if args.exec {
        if !tools.runs_commands() {
            bail!(
                "--exec: the tools plugin {} does not import sera:plugin/exec",
                args.tools
            );
        }
        let env_mode = match args.exec_env.as_str() {
            "build" => crate::exec::plan::EnvMode::Build,
            "bare" => crate::exec::plan::EnvMode::Bare,
            other => bail!("--exec-env {other}: expected build or bare"),
        };
        let config = crate::sandbox::SandboxConfig {
            timeout: Duration::from_secs(args.exec_timeout_s.max(1).into()),
            allow_weaker: super::sandbox::parse_layers(&args.allow_weaker, "--allow-weaker")?,
            ..Default::default()
        };
        spec.exec = Some(json!({
            "timeout_s": args.exec_timeout_s.max(1),
            "env": args.exec_env,
            "allow_weaker": args.allow_weaker,
        }));
        Some(crate::exec::plan::ExecPlan::new(
            config,
            env_mode,
            args.teacher != "replay",
            shared.clone(),
        )?)
    } else {
        None
    };
    let parse = crate::teacher::ParseOptions {
        text_tool_calls: !args.no_text_tool_calls,
    };
    let teacher: Box<dyn Teacher> = match args.teacher.as_str() {
        "scripted" => Box::new(RecordingTeacher::new(
            Box::new(ScriptedTeacher),
            shared.clone(),
        )),
        "replay" => Box::new(ReplayTeacher::new(shared.clone()).with_parse(parse)),
        url => {
            let key = match &args.api_key_env {
                Some(var) => Some(std::env::var(var).with_context(|| {
                    format!("--api-key-env {var}: the environment variable is not set")
                })?),
                None => None,
            };
            let retry = RetryPolicy {
                max_attempts: args.max_attempts.max(1),
                ..RetryPolicy::default()
            };
            let live =
                OpenAiTeacher::new(url, key, 1, Duration::from_secs(args.timeout_secs), retry)?
                    .with_parse(parse);
            Box::new(RecordingTeacher::new(Box::new(live), shared.clone()).with_parse(parse))
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let name = format!("{}::{}", function.path, function.qualname);
    let done = runtime.block_on(execute(
        &shared,
        &snapshot,
        &name,
        &spec,
        &tools,
        teacher.as_ref(),
        exec.as_ref(),
    ))?;
    let r = &done.rollout;
    let usage: u64 = r
        .trajectory
        .steps
        .iter()
        .map(|s| s.usage.total_tokens)
        .sum();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "rollout": done.id,
                "snapshot": snapshot,
                "function": name,
                "teacher": teacher.describe(),
                "outcome": r.outcome,
                "reason": r.reason,
                "steps": r.steps,
                "messages": r.trajectory.messages.len(),
                "total_tokens": usage,
                "host_ms": r.host_time.as_secs_f64() * 1e3,
                "patch": r.patch,
            }))?
        );
    } else {
        eprintln!(
            "rollout {} of {name} on {}: {} after {} steps ({} messages, {usage} tokens){}",
            &done.id[..12],
            &snapshot[..12],
            r.outcome.as_str(),
            r.steps,
            r.trajectory.messages.len(),
            r.reason
                .as_ref()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        );
        print!("{}", r.patch);
    }
    Ok(ExitCode::from(if r.outcome == Outcome::Submitted {
        0
    } else {
        1
    }))
}
