//! `sera-host run`, `audit` and `explain`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::config::Pipeline;
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
    /// Do only partition I of N of the items (e.g. 0/8), into the worker's own corpus, and stop
    /// before the shards: the partition depends on nothing but the item.
    #[arg(long, value_name = "I/N", conflicts_with_all = ["finalize", "replay"])]
    worker: Option<String>,
    /// The corpus file instead of the pipeline's `db` (a worker's default: the pipeline's db
    /// with `.worker-I-of-N` before its extension).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// After `corpus merge`: write the shards and manifest from the merged corpus, never asking
    /// the teacher; fails when an item was not finished by some worker.
    #[arg(long, conflicts_with = "replay")]
    finalize: bool,
    /// With --finalize: write the shards from the finished items only (with a warning).
    #[arg(long, requires = "finalize")]
    allow_incomplete: bool,
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
pub struct ReportArgs {
    /// The manifest.json of the output directory.
    manifest: PathBuf,
    /// The corpus the shards were built from.
    #[arg(long)]
    db: PathBuf,
    /// Add the teacher's recorded latency (a measurement of the run, so the page then differs
    /// from the one the manifest lists; written to report-timings.html by default).
    #[arg(long)]
    timings: bool,
    /// Where to write the page (default: beside the manifest).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DecontaminateArgs {
    /// SWE-bench-style instance files (JSON, a JSON array, JSONL): instance_id, repo, patch,
    /// problem_statement, optionally test_patch.
    #[arg(long, required = true, num_args = 1..)]
    against: Vec<PathBuf>,
    #[arg(long)]
    db: PathBuf,
    /// Words per n-gram.
    #[arg(long, default_value_t = 13)]
    ngram: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
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
    let mut p = Pipeline::load(&args.pipeline)?;
    let worker = args
        .worker
        .as_deref()
        .map(crate::cluster::Worker::parse)
        .transpose()?;
    if let Some(db) = &args.db {
        p.db = db.clone();
    } else if let Some(w) = worker {
        p.db = w.db_path(&p.db);
    }
    if args.finalize && !p.db.exists() {
        anyhow::bail!(
            "--finalize: {}: no such corpus (merge the workers' corpora into it first: `sera-host corpus merge ... --db {}`)",
            p.db.display(),
            p.db.display()
        );
    }
    let mode = if args.replay || args.finalize {
        Mode::Replay
    } else {
        Mode::Live
    };
    let scope = crate::pipeline::Scope {
        worker,
        finalize: args.finalize,
        allow_incomplete: args.allow_incomplete,
    };
    let progress = !args.no_progress && std::io::stderr().is_terminal();
    let summary =
        runtime()?.block_on(crate::pipeline::execute_scoped(&p, mode, progress, scope))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.render());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn audit(args: AuditArgs) -> Result<ExitCode> {
    let report = runtime()?.block_on(crate::audit::audit(&args.manifest, &args.db))?;
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

pub fn report(args: ReportArgs) -> Result<ExitCode> {
    let dir = args.manifest.parent().unwrap_or(std::path::Path::new("."));
    let out = args.out.unwrap_or_else(|| {
        dir.join(if args.timings {
            "report-timings.html"
        } else {
            crate::output::REPORT
        })
    });
    let same = runtime()?.block_on(crate::audit::report(
        &args.manifest,
        &args.db,
        args.timings,
        &out,
    ))?;
    println!("wrote {}", out.display());
    match (same, args.timings) {
        (Some(true), _) => println!("it is byte for byte the report the manifest lists"),
        (Some(false), false) => {
            println!(
                "it differs from the report the manifest lists: run `sera-host audit` to see why"
            );
            return Ok(ExitCode::from(1));
        }
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

pub fn decontaminate(args: DecontaminateArgs) -> Result<ExitCode> {
    let mut instances = Vec::new();
    for a in &args.against {
        let bytes = std::fs::read(a).with_context(|| format!("{}: cannot read", a.display()))?;
        instances.extend(crate::output::decontam::parse_instances(
            &bytes,
            &a.display().to_string(),
        )?);
    }
    if args.ngram < 2 {
        anyhow::bail!("--ngram: must be at least 2");
    }
    let index = crate::output::decontam::Index::build(instances, args.ngram);
    let corpus = crate::corpus::Corpus::open_existing(&args.db)?;
    let report = crate::output::scan::scan(&corpus, &index)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn explain(args: ExplainArgs) -> Result<ExitCode> {
    print!("{}", crate::audit::explain(&args.db, &args.row)?);
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
