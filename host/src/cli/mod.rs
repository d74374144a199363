//! The `sera-host` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::patch_file::read_patch;

mod cache_args;
mod cluster;
mod corpus;
mod dataset;
mod pipeline;
mod rollout;
pub(crate) mod sandbox;
mod teacher;
use crate::plugin::{inspect, Limits, PatchPair, PluginSource, Verifier};
use cache_args::CacheArgs;
use corpus::CorpusArgs;
use rollout::RolloutArgs;

#[derive(Parser, Debug)]
#[command(
    name = "sera-host",
    version,
    about = "Soft-verified training data for coding agents, from real repositories"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Score a candidate patch (P2) against a reference patch (P1) with a verifier plugin.
    Verify(VerifyArgs),
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// The corpus: repository snapshots and their Python function index.
    Corpus(CorpusArgs),
    /// One agent rollout on a function of a stored snapshot; the trajectory goes into the corpus.
    Rollout(Box<RolloutArgs>),
    /// Run a pipeline file: every SVG stage, then shards and their manifest.
    Run(pipeline::RunArgs),
    /// Rebuild a manifest's shards offline from the corpus and check every hash.
    Audit(pipeline::AuditArgs),
    /// Print the provenance chain of a shard row.
    Explain(pipeline::ExplainArgs),
    /// Write an output directory's report.html again from the corpus (`--timings`: with the
    /// recorded teacher latency).
    Report(pipeline::ReportArgs),
    /// What in a corpus overlaps SWE-bench-style instances: functions their patches touch,
    /// rollouts and imported trajectories made from them or quoting them.
    Decontaminate(pipeline::DecontaminateArgs),
    /// Import trajectories made by other tools (SWE-agent .traj, OpenAI JSONL) into the corpus.
    Import(pipeline::ImportArgs),
    /// Score every stored pair with a verifier plugin (verdicts stored; reruns are lookups).
    Rescore(dataset::RescoreArgs),
    /// Shards from stored trajectories: select, score, filter, truncate, render.
    Shards(Box<dataset::ShardsArgs>),
    /// The command sandbox: what this machine enforces, and one command run as a rollout would.
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// An OpenAI-compatible teacher server: `teacher check URL` before a long job.
    #[command(subcommand)]
    Teacher(teacher::TeacherCommand),
    /// Print (or --submit) the Slurm scripts of a partitioned run: a job array of workers and
    /// a job that merges their corpora and finalizes once they all succeeded.
    Slurm(cluster::SlurmArgs),
    /// Print a partitioned run as Kubernetes Jobs: an Indexed Job of workers, then the merge.
    K8s(cluster::K8sArgs),
    /// Items done per stage per worker, what stopped early, and the ETA.
    Status(cluster::StatusArgs),
}

#[derive(Subcommand, Debug)]
enum PluginCommand {
    /// Show the world a component implements, its imports and exports, size and sha256.
    Inspect {
        /// A component file, or builtin:NAME.
        plugin: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// List the builtin plugins.
    List,
    /// Write a buildable plugin project (Rust, with the guest SDK and the WIT it builds against).
    New {
        /// verifier, trajectory-filter, truncation, pr-synthesizer or tools.
        world: String,
        /// The plugin's name (lowercase, digits, '-', '_'): the project directory and crate.
        name: String,
        /// Where to create the project directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// A conformance run for the plugin's world, with a pass/fail report (exit 1 on a failure).
    Check {
        /// A component file, or builtin:NAME.
        plugin: String,
        /// The world it must implement (verifier, tools, pr-synthesizer, truncation,
        /// trajectory-filter).
        #[arg(long)]
        world: Option<String>,
        /// The config `init` gets, as JSON.
        #[arg(long, default_value = "{}")]
        config: String,
        /// Verifiers: every verdict must equal this verifier's (builtin:NAME or a file).
        #[arg(long)]
        same_as: Option<String>,
        /// The config of the `--same-as` verifier (default: the same as `--config`).
        #[arg(long)]
        same_as_config: Option<String>,
        /// Verifiers: more pairs, a JSONL file of {"name"?, "reference", "candidate"}.
        #[arg(long)]
        pairs: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The verifier: builtin:NAME or a component file.
    #[arg(
        long,
        default_value = "builtin:line-recall",
        value_name = "builtin:NAME|FILE.wasm"
    )]
    plugin: String,
    /// Reference patch (P1, unified diff).
    p1: PathBuf,
    /// Candidate patch (P2, unified diff).
    p2: PathBuf,
    /// Plugin config as a JSON object, e.g. '{"compat":"sera"}'.
    #[arg(long, default_value = "{}", value_name = "JSON")]
    config: String,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
    /// Accept an empty candidate patch (scored as "no edit").
    #[arg(long)]
    allow_empty: bool,
    /// Fuel per call (about one unit per wasm instruction).
    #[arg(long, value_name = "UNITS")]
    fuel: Option<u64>,
    /// Linear memory limit of the plugin, in MiB.
    #[arg(long, value_name = "MIB")]
    memory_mib: Option<usize>,
    /// Print the plugin's output (stdout, stderr, log) on stderr.
    #[arg(short, long)]
    verbose: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

/// Pairs from a JSONL file of {"name"?, "reference", "candidate"}, named by file and line.
fn read_pairs(path: &std::path::Path) -> Result<Vec<(String, PatchPair)>> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("{shown}: cannot read"))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{shown}:{}", i + 1);
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{at}: not valid JSON"))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .map(String::from)
                .with_context(|| format!("{at}: expected a string `{k}`"))
        };
        let name = v
            .get("name")
            .and_then(serde_json::Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| at.clone());
        out.push((
            name,
            PatchPair {
                reference: field("reference")?,
                candidate: field("candidate")?,
            },
        ));
    }
    Ok(out)
}

fn parse_world(w: &str) -> Result<crate::plugin::WorldKind> {
    use crate::plugin::WorldKind;
    WorldKind::ALL
        .into_iter()
        .find(|k| k.name() == w)
        .with_context(|| {
            let known: Vec<&str> = WorldKind::ALL.iter().map(|k| k.name()).collect();
            format!("--world {w}: not a world (known: {})", known.join(", "))
        })
}

fn plugin_check(
    plugin: &str,
    world: Option<String>,
    config: &str,
    same_as: Option<(String, Option<String>)>,
    pairs: Option<PathBuf>,
    json: bool,
    cache: &CacheArgs,
) -> Result<ExitCode> {
    use crate::plugin::check::{check, CheckOptions};
    let engine = cache.engine()?;
    let loaded = engine.load(&PluginSource::parse(plugin)?)?;
    let world = world.as_deref().map(parse_world).transpose()?;
    let other = same_as
        .map(|(s, c)| -> Result<_> {
            let c = c.unwrap_or_else(|| config.to_string());
            Ok((engine.load(&PluginSource::parse(&s)?)?, c))
        })
        .transpose()?;
    let opts = CheckOptions {
        world,
        config,
        same_as: other.as_ref().map(|(p, c)| (p, c.as_str())),
        pairs: pairs
            .as_deref()
            .map(read_pairs)
            .transpose()?
            .unwrap_or_default(),
    };
    let report = check(&engine, &loaded, &opts)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Exit status: 0 success, 1 the plugin failed on the input, 2 bad input or usage.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sera-host: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Verify(args) => verify(args),
        Command::Corpus(args) => corpus::run(args),
        Command::Rollout(args) => rollout::run(*args),
        Command::Run(args) => pipeline::run(args),
        Command::Audit(args) => pipeline::audit(args),
        Command::Report(args) => pipeline::report(args),
        Command::Decontaminate(args) => pipeline::decontaminate(args),
        Command::Explain(args) => pipeline::explain(args),
        Command::Import(args) => pipeline::import(args),
        Command::Rescore(args) => dataset::rescore_cmd(args),
        Command::Shards(args) => dataset::shards_cmd(*args),
        Command::Sandbox(cmd) => sandbox::run(cmd),
        Command::Teacher(cmd) => teacher::run(cmd),
        Command::Slurm(a) => cluster::slurm(a),
        Command::K8s(a) => cluster::k8s(a),
        Command::Status(a) => cluster::status(a),
        Command::Plugin(PluginCommand::New { world, name, dir }) => {
            let world = parse_world(&world)?;
            let path = crate::plugin::scaffold::new_project(world, &name, &dir)?;
            println!("created {} ({} plugin)", path.display(), world.name());
            println!(
                "next: bash {}/build.sh && sera-host plugin check {}/{name}.wasm --world {}",
                path.display(),
                path.display(),
                world.name()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Check {
            plugin,
            world,
            config,
            same_as,
            same_as_config,
            pairs,
            json,
            cache,
        }) => plugin_check(
            &plugin,
            world,
            &config,
            same_as.map(|s| (s, same_as_config)),
            pairs,
            json,
            &cache,
        ),
        Command::Plugin(PluginCommand::Inspect {
            plugin,
            json,
            cache,
        }) => {
            let engine = cache.engine()?;
            let loaded = engine.load(&PluginSource::parse(&plugin)?)?;
            let info = inspect(&engine, &loaded)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("plugin:  {}", loaded.source);
                println!("world:   sera:plugin/{}@{}", info.world, info.version);
                println!("size:    {} bytes", info.size);
                println!("sha256:  {}", info.sha256);
                println!("imports:");
                for i in &info.imports {
                    println!("  {i}");
                }
                println!("exports:");
                for e in &info.exports {
                    println!("  {e}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::List) => {
            for (name, bytes) in crate::plugin::BUILTINS {
                use sha2::Digest;
                println!(
                    "builtin:{name}  {} bytes  sha256 {}",
                    bytes.len(),
                    hex::encode(sha2::Sha256::digest(bytes))
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let config: serde_json::Value = serde_json::from_str(&args.config)
        .with_context(|| format!("--config: expected a JSON object, got {:?}", args.config))?;
    if !config.is_object() {
        anyhow::bail!("--config: expected a JSON object, got {}", args.config);
    }
    let reference = read_patch(&args.p1, false)?;
    let candidate = read_patch(&args.p2, args.allow_empty)?;
    let mut limits = Limits::default();
    if let Some(fuel) = args.fuel {
        limits.fuel_per_call = fuel;
    }
    if let Some(mib) = args.memory_mib {
        limits.memory_bytes = mib << 20;
    }
    let engine = args.cache.engine()?;
    let source = PluginSource::parse(&args.plugin)?;
    let plugin = engine.load(&source)?;
    let mut verifier = Verifier::new(&engine, &plugin, &config.to_string(), limits)?;
    let item = format!("{} vs {}", args.p1.display(), args.p2.display());
    let result = verifier.verify(
        &item,
        &PatchPair {
            reference,
            candidate,
        },
    );
    if args.verbose {
        for entry in verifier.take_log() {
            eprintln!("[plugin {}] {}", entry.source, entry.text.trim());
        }
    }
    match result {
        Ok(v) => {
            if args.json {
                let out = json!({
                    "score": v.score,
                    "matched": v.matched,
                    "total": v.total,
                    "detail": v.detail,
                    "plugin": source.to_string(),
                    "plugin_sha256": plugin.sha256,
                });
                println!("{out}");
            } else {
                match v.score {
                    Some(s) => println!("score {s:.4} ({}/{} matched)", v.matched, v.total),
                    None => println!("score none ({}/{} matched)", v.matched, v.total),
                }
                println!("detail: {}", v.detail);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            if args.json {
                println!("{}", json!({ "error": failure }));
            }
            eprintln!("sera-host: error: {failure}");
            if let Some(bt) = &failure.backtrace {
                eprintln!("{bt}");
            }
            Ok(ExitCode::from(1))
        }
    }
}
