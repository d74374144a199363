//! `sera-host sandbox check | run`: what this machine enforces, and one command run exactly as
//! a rollout's `bash` tool would run it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::sandbox::{default_helper, Layer, Sandbox, SandboxConfig};

#[path = "../../../plugins/swe-tools/src/bash.rs"]
#[allow(dead_code)]
mod bash_observation;

#[derive(Subcommand, Debug)]
pub enum SandboxCommand {
    /// Probe every sandbox layer on this machine and say which hold (exit 1 if one is missing).
    Check {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run one command in the sandbox as a rollout would; prints the observation, exits with
    /// the command's status.
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The directory seen at /workspace (read-write).
    #[arg(long)]
    workspace: PathBuf,
    /// Wall-clock limit.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
    /// Address-space limit.
    #[arg(long, default_value_t = 4096)]
    memory_mib: u64,
    /// Largest file the command may write.
    #[arg(long, default_value_t = 512)]
    file_size_mib: u64,
    /// Processes at once.
    #[arg(long, default_value_t = 256)]
    max_processes: u64,
    /// A Python environment (`corpus env build`) to put first on PATH, read-only.
    #[arg(long)]
    env: Option<PathBuf>,
    /// Accept a missing layer (repeatable): userns, netns, mountns, pidns, landlock, seccomp, rlimits, pids.
    #[arg(long = "allow-weaker", value_name = "LAYER")]
    allow_weaker: Vec<String>,
    /// Print the raw result as JSON instead of the observation.
    #[arg(long)]
    json: bool,
    /// The command line (run with bash -c; several words are joined with spaces).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub fn parse_layers(names: &[String], what: &str) -> Result<Vec<Layer>> {
    names
        .iter()
        .map(|n| {
            Layer::parse(n).ok_or_else(|| {
                anyhow::anyhow!(
                    "{what}: `{n}` is not a sandbox layer (known: {})",
                    crate::sandbox::ALL_LAYERS.map(|l| l.name()).join(", ")
                )
            })
        })
        .collect()
}

pub fn run(cmd: SandboxCommand) -> Result<ExitCode> {
    match cmd {
        SandboxCommand::Check { json } => {
            let layers = Sandbox::check(default_helper()?, SandboxConfig::default())?;
            let all = layers.iter().all(|l| l.ok);
            if json {
                println!("{}", serde_json::to_string_pretty(&layers)?);
            } else {
                // SAFETY: a plain getter.
                let uid = unsafe { libc::getuid() };
                println!("sandbox layers on this machine (uid {uid}):");
                for l in &layers {
                    println!(
                        "  {:<9} {}  {}",
                        l.layer.name(),
                        if l.ok { "enforced" } else { "MISSING " },
                        l.detail
                    );
                }
                if all {
                    println!("every layer holds: rollouts may run commands");
                } else {
                    let missing: Vec<&str> = layers
                        .iter()
                        .filter(|l| !l.ok)
                        .map(|l| l.layer.name())
                        .collect();
                    println!(
                        "exec is refused here unless the pipeline accepts a weaker sandbox: exec.allow_weaker = {:?}",
                        missing
                    );
                }
            }
            Ok(if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        SandboxCommand::Run(args) => run_one(args),
    }
}

fn run_one(args: RunArgs) -> Result<ExitCode> {
    if !args.workspace.is_dir() {
        bail!("--workspace {}: not a directory", args.workspace.display());
    }
    let mut config = SandboxConfig {
        timeout: Duration::from_secs(args.timeout_s.max(1)),
        memory_mib: args.memory_mib,
        file_size_mib: args.file_size_mib,
        max_processes: args.max_processes,
        allow_weaker: parse_layers(&args.allow_weaker, "--allow-weaker")?,
        ..SandboxConfig::default()
    };
    let chosen = match &args.env {
        Some(env) => crate::exec::pyenv::Chosen {
            id: String::new(),
            dir: Some(
                env.canonicalize()
                    .with_context(|| format!("--env {}", env.display()))?,
            ),
            note: None,
        },
        None => crate::exec::pyenv::Chosen::bare(None),
    };
    chosen.apply(&mut config)?;
    let sandbox = Sandbox::new(default_helper()?, config)?;
    let command = args.command.join(" ");
    let out = sandbox.run(&args.workspace, &command, None)?;
    let text = String::from_utf8_lossy(&out.output);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "exit_code": out.exit_code,
                "signal": out.signal,
                "timed_out": out.timed_out,
                "truncated": out.truncated,
                "output_bytes": out.output_total,
                "duration_ms": out.duration.as_millis() as u64,
                "output": text,
            })
        );
    } else {
        let text = bash_observation::observation(&bash_observation::Ran {
            command: &command,
            output: &text,
            exit_code: out.exit_code,
            timed_out: out.timed_out,
            timeout_s: args.timeout_s as u32,
            dropped_bytes: out.output_total - out.output.len() as u64,
        });
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
    }
    Ok(ExitCode::from(out.status().clamp(0, 255) as u8))
}
