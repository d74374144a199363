//! `sera-host run`, `audit` and `explain`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::pipeline::config::Pipeline;
use crate::pipeline::run::Mode;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The pipeline file (see corpora/demo/pipeline.toml).
    pipeline: PathBuf,
    /// Answer every teacher request from the corpus's recorded exchanges, never the network.
    #[arg(long)]
    replay: bool,
    /// No progress bars (they are also hidden when stderr is not a terminal).
    #[arg(long)]
    no_progress: bool,
    /// Print the closing summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// The manifest.json of the shards to check.
    manifest: PathBuf,
    /// The corpus the shards were built from.
    #[arg(long)]
    db: PathBuf,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// A row id (from a row's metadata), or a unique prefix of one.
    row: String,
    #[arg(long)]
    db: PathBuf,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?)
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let p = Pipeline::load(&args.pipeline)?;
    let mode = if args.replay {
        Mode::Replay
    } else {
        Mode::Live
    };
    let progress = !args.no_progress && std::io::stderr().is_terminal();
    let summary = runtime()?.block_on(crate::pipeline::execute(&p, mode, progress))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.render());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn audit(args: AuditArgs) -> Result<ExitCode> {
    let report = runtime()?.block_on(crate::pipeline::audit::audit(&args.manifest, &args.db))?;
    for c in &report.checked {
        println!("ok: {c}");
    }
    for p in &report.problems {
        println!("MISMATCH: {p}");
    }
    if report.problems.is_empty() {
        println!("audit passed: every shard rebuilt from the corpus byte for byte");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("audit FAILED: {} problem(s)", report.problems.len());
        Ok(ExitCode::from(1))
    }
}

pub fn explain(args: ExplainArgs) -> Result<ExitCode> {
    print!("{}", crate::pipeline::audit::explain(&args.db, &args.row)?);
    println!();
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// swe-agent (.traj, 0.x and 1.x) or openai-jsonl.
    #[arg(long)]
    format: String,
    /// Files, or directories searched for files of the format.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long)]
    db: PathBuf,
    /// Import the rest when a file is bad, and report what was skipped.
    #[arg(long)]
    keep_going: bool,
}

pub fn import(args: ImportArgs) -> Result<ExitCode> {
    let format = crate::import::Format::parse(&args.format)?;
    let corpus = crate::corpus::Corpus::open(&args.db)?;
    let r = crate::import::import_paths(&corpus, format, &args.paths, args.keep_going)?;
    println!(
        "{} files: {} trajectories imported, {} already in the corpus, {} files skipped",
        r.files,
        r.imported,
        r.existing,
        r.skipped.len()
    );
    for s in &r.skipped {
        println!("skipped: {s}");
    }
    Ok(if r.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
