//! `sera-host slurm`, `k8s` and `status`: a pipeline spread over a cluster's batch engine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::cluster::engines::{self, ClusterRun, K8sOptions, SlurmOptions};
use crate::cluster::status;
use crate::config::Pipeline;

#[derive(Args, Debug)]
pub struct SlurmArgs {
    /// The pipeline file; it, its sources and its corpus must be on a filesystem every node sees.
    pipeline: PathBuf,
    /// Array tasks: worker I/N is task I.
    #[arg(long)]
    workers: u32,
    #[arg(long)]
    partition: Option<String>,
    /// Wall time per task, in sbatch's format (e.g. 12:00:00).
    #[arg(long)]
    time: Option<String>,
    /// CPUs per task (--cpus-per-task): commands and plugins run on them.
    #[arg(long)]
    cpus: Option<u32>,
    /// Memory per task (--mem, e.g. 16G).
    #[arg(long)]
    mem: Option<String>,
    /// Where the scripts and logs go (default: slurm/ beside the pipeline file).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The sera-host the jobs run (default: this one).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Submit the array and the finalize job that waits for it (`afterok`); print the job ids.
    #[arg(long)]
    submit: bool,
    /// With --submit: only these array tasks (e.g. `1` or `0,2`): reruns failed or cancelled ones.
    #[arg(long, requires = "submit")]
    tasks: Option<String>,
}

#[derive(Args, Debug)]
pub struct K8sArgs {
    pipeline: PathBuf,
    #[arg(long)]
    workers: u32,
    /// A container image with sera-host (and python3, uv for commands) in it.
    #[arg(long, default_value = "sera-host:latest")]
    image: String,
    /// The PersistentVolumeClaim holding the pipeline, its sources and the corpora.
    #[arg(long, default_value = "sera-data")]
    claim: String,
    /// Where the claim is mounted in the pods (default: the pipeline file's directory).
    #[arg(long)]
    mount: Option<PathBuf>,
    /// sera-host's path in the image.
    #[arg(long, default_value = "/usr/local/bin/sera-host")]
    bin: PathBuf,
    #[arg(long)]
    cpus: Option<u32>,
    #[arg(long)]
    mem: Option<String>,
    #[arg(long)]
    namespace: Option<String>,
    /// Failed pods per index before it counts as failed (backoffLimitPerIndex).
    #[arg(long, default_value_t = 3)]
    retries: u32,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    pipeline: PathBuf,
    /// Read the N workers' corpora (default: every DB.worker-I-of-N.EXT found, and the merged db).
    #[arg(long)]
    workers: Option<u32>,
    #[arg(long)]
    json: bool,
}

fn load(pipeline: &Path) -> Result<Pipeline> {
    let abs = std::fs::canonicalize(pipeline)
        .with_context(|| format!("{}: cannot read the pipeline file", pipeline.display()))?;
    Pipeline::load(&abs)
}

pub fn slurm(args: SlurmArgs) -> Result<ExitCode> {
    let p = load(&args.pipeline)?;
    let run = ClusterRun::new(&p.path, &p.db, args.workers, args.bin)?;
    let dir = match args.dir {
        Some(d) => std::path::absolute(&d)?,
        None => p.path.parent().unwrap_or(Path::new("/")).join("slurm"),
    };
    let scripts = engines::slurm_scripts(
        &run,
        &SlurmOptions {
            partition: args.partition,
            time: args.time,
            cpus: args.cpus,
            mem: args.mem,
            dir: dir.clone(),
        },
    );
    scripts.write(&dir)?;
    if args.submit {
        let (array, finalize) = scripts.submit(args.tasks.as_deref())?;
        println!(
            "array job {array} ({} tasks: {})",
            run.name,
            args.tasks
                .as_deref()
                .unwrap_or(&format!("0-{}", args.workers - 1))
        );
        println!("finalize job {finalize} (after {array} succeeds)");
        eprintln!(
            "logs in {}; progress: sera-host status {} --workers {}",
            dir.join("logs").display(),
            p.path.display(),
            args.workers
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("# ==> {}", scripts.worker_path.display());
    print!("{}", scripts.worker);
    println!("# ==> {}", scripts.finalize_path.display());
    print!("{}", scripts.finalize);
    println!(
        "# submit both: sera-host slurm {} --workers {} --submit, or by hand:\n#   jid=$(sbatch --parsable {}) && sbatch --dependency=afterok:$jid {}",
        p.path.display(),
        args.workers,
        scripts.worker_path.display(),
        scripts.finalize_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn k8s(args: K8sArgs) -> Result<ExitCode> {
    let p = load(&args.pipeline)?;
    let run = ClusterRun::new(&p.path, &p.db, args.workers, Some(args.bin))?;
    let mount = args
        .mount
        .unwrap_or_else(|| p.path.parent().unwrap_or(Path::new("/")).to_path_buf());
    print!(
        "{}",
        engines::k8s_manifests(
            &run,
            &K8sOptions {
                image: args.image,
                claim: args.claim,
                mount,
                cpus: args.cpus,
                mem: args.mem,
                namespace: args.namespace,
                retries: args.retries,
            },
        )?
    );
    Ok(ExitCode::SUCCESS)
}

pub fn status(args: StatusArgs) -> Result<ExitCode> {
    let p = load(&args.pipeline)?;
    let sha = crate::pipeline::pipeline_sha256(&p.resolved)?;
    let corpora = status::corpora(&p.db, args.workers)?;
    if corpora.is_empty() {
        anyhow::bail!(
            "{}: no corpus yet (neither {} nor any worker's {})",
            p.path.display(),
            p.db.display(),
            crate::cluster::Worker { index: 0, count: 1 }
                .db_path(&p.db)
                .display()
                .to_string()
                .replace("worker-0-of-1", "worker-I-of-N")
        );
    }
    let s = status::status(&sha, &corpora)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", s.render());
    }
    Ok(ExitCode::SUCCESS)
}
