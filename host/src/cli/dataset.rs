//! `sera-host rescore` and `sera-host shards`: stored trajectories scored and sharded again.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::corpus::{Corpus, StoredVerdict};
use crate::dataset::pairs::Reference;
use crate::dataset::rescore::{rescore, VerifierSpec};
use crate::dataset::reshard::{execute, Overrides, ReshardSpec};

fn threads(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn json_arg(flag: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).with_context(|| format!("{flag}: not valid JSON: {text}"))
}

#[derive(Args, Debug)]
pub struct RescoreArgs {
    #[arg(long)]
    db: PathBuf,
    /// The verifier: builtin:NAME or a component file.
    #[arg(long, default_value = "builtin:line-recall")]
    verifier: String,
    /// The verifier's config as JSON (what `init` gets).
    #[arg(long, default_value = "{}")]
    config: String,
    /// `p1` (a SERA T2 row's target patch), or files and directories of reference patches:
    /// SWE-bench instance JSON (`instance_id` + gold `patch`), JSONL of instances, or
    /// INSTANCE.patch files. Matched by instance id.
    #[arg(long, num_args = 1.., default_value = "p1")]
    reference: Vec<String>,
    /// Threads scoring (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also print each pair's verdict: score, matched/total, instance, file and place.
    #[arg(long)]
    list: bool,
}

pub fn rescore_cmd(args: RescoreArgs) -> Result<ExitCode> {
    let config = json_arg("--config", &args.config)?;
    let verifier = VerifierSpec::load(&args.verifier, &config)?;
    let reference = Reference::parse(&args.reference)?;
    let corpus = Corpus::open_existing(&args.db)?;
    let entries = corpus.import_entries()?;
    let (report, verdicts) = rescore(
        &corpus,
        &verifier,
        &reference,
        &entries,
        threads(args.threads),
        true,
    )?;
    if args.list {
        let by_import: std::collections::HashMap<&str, &StoredVerdict> =
            verdicts.iter().map(|(id, v)| (id.as_str(), v)).collect();
        for e in &entries {
            let Some(v) = by_import.get(e.id.as_str()) else {
                continue;
            };
            let score = match (&v.failure, v.score) {
                (Some(f), _) => format!("failed ({f})"),
                (None, Some(s)) => format!("{s:.6}"),
                (None, None) => "none".into(),
            };
            println!(
                "{score}\t{}/{}\t{}\t{}:{}",
                v.matched,
                v.total,
                e.instance_id.as_deref().unwrap_or("-"),
                e.source,
                e.locator
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct ShardsArgs {
    #[arg(long)]
    db: PathBuf,
    /// Where the shards and manifest.json go.
    #[arg(long)]
    out: PathBuf,
    /// A TOML file: select, render, rows_per_shard, [verify], [[filters]], [truncation].
    #[arg(long)]
    config: Option<PathBuf>,
    /// A CEL expression over each trajectory (format, stage, r, tool_calls, ...).
    #[arg(long)]
    select: Option<String>,
    /// openai (structured tool calls), hermes (<tool_call> in the text) or xml (<function=...>).
    #[arg(long)]
    render: Option<String>,
    #[arg(long)]
    rows_per_shard: Option<usize>,
    /// A verifier whose verdicts give `r` (builtin:NAME or a component file).
    #[arg(long)]
    verifier: Option<String>,
    /// The verifier's config as JSON.
    #[arg(long)]
    verifier_config: Option<String>,
    /// What the verifier scores against: `p1` or reference patch files (as for rescore).
    #[arg(long, num_args = 1..)]
    reference: Vec<String>,
    #[arg(long)]
    threads: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn shards_cmd(args: ShardsArgs) -> Result<ExitCode> {
    let overrides = Overrides {
        select: args.select,
        render: args.render,
        rows_per_shard: args.rows_per_shard,
        verifier: args.verifier,
        verifier_config: args
            .verifier_config
            .as_deref()
            .map(|t| json_arg("--verifier-config", t))
            .transpose()?,
        reference: args.reference,
    };
    let spec = ReshardSpec::load(args.config.as_deref(), overrides)?;
    let report = execute(&args.db, &args.out, &spec, threads(args.threads))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(ExitCode::SUCCESS)
}
