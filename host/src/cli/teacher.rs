//! `sera-host teacher check URL`: is this server usable as the pipeline's teacher?

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;

use crate::teacher::check::{check, CheckOptions, CheckReport};

#[derive(Subcommand, Debug)]
pub enum TeacherCommand {
    /// Probe an OpenAI-compatible server before a long job: models, context length, tool calls
    /// with tool_choice auto and required, seed repeatability, latency and tokens/s with N
    /// concurrent requests. Exits 1, saying why, on a server the pipeline cannot use.
    Check {
        /// The endpoint, as `[teacher] url` takes it (e.g. http://127.0.0.1:8000/v1).
        url: String,
        /// The model to ask (default: the first the server lists).
        #[arg(long)]
        model: Option<String>,
        /// An environment variable holding the API key, if the server wants one.
        #[arg(long)]
        api_key_env: Option<String>,
        /// Requests sent at once for the latency and tokens/s measurement.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Per-request timeout in seconds.
        #[arg(long, default_value_t = 120)]
        timeout_s: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: TeacherCommand) -> Result<ExitCode> {
    let TeacherCommand::Check {
        url,
        model,
        api_key_env,
        concurrency,
        timeout_s,
        json,
    } = cmd;
    let api_key = match &api_key_env {
        Some(var) => Some(
            std::env::var(var)
                .map_err(|_| anyhow::anyhow!("--api-key-env {var}: the variable is not set"))?,
        ),
        None => None,
    };
    let opts = CheckOptions {
        url,
        model,
        api_key,
        concurrency,
        timeout: Duration::from_secs(timeout_s),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(check(&opts))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.usable {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_report(r: &CheckReport) {
    println!("server        {}", r.url);
    println!(
        "models        {}",
        if r.models.is_empty() {
            "(none listed)".to_string()
        } else {
            r.models.join(", ")
        }
    );
    println!("model         {}", r.model);
    match (&r.context_length, &r.context_length_from) {
        (Some(n), Some(from)) => println!("context       {n} tokens ({from})"),
        _ => println!("context       not reported"),
    }
    for p in &r.tool_calls {
        let detail = match &p.error {
            Some(e) => e.clone(),
            None => format!(
                "{}arguments, finish_reason {:?}, {} ms",
                if p.valid_arguments {
                    "valid JSON object "
                } else {
                    "invalid "
                },
                p.finish_reason,
                p.latency_ms
            ),
        };
        println!(
            "tool calls    tool_choice {:<9} {:<11} {detail}",
            p.tool_choice, p.calls
        );
    }
    println!(
        "seed          {}",
        match r.seed_repeatable {
            Some(true) => "repeatable (the same request twice gave the same answer)",
            Some(false) => "not repeatable",
            None => "could not be tested",
        }
    );
    println!(
        "throughput    {} requests at once: median {} ms, max {} ms, {} completion tokens, {:.1} tokens/s",
        r.concurrency, r.latency_ms_median, r.latency_ms_max, r.completion_tokens, r.tokens_per_s
    );
    for a in &r.advice {
        println!("note          {a}");
    }
    if r.usable {
        println!("verdict       usable as the pipeline's teacher");
    } else {
        for p in &r.problems {
            println!("problem       {p}");
        }
        println!("verdict       NOT usable as the pipeline's teacher");
    }
}
