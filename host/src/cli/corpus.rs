//! `sera-host corpus ...`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::corpus::{ingest, Corpus, IngestOptions, Source, MODE_SYMLINK};

#[derive(Args, Debug)]
pub struct CorpusArgs {
    /// The corpus file.
    #[arg(
        long,
        global = true,
        default_value = "corpus.sqlite",
        env = "SERA_HOST_CORPUS"
    )]
    db: PathBuf,
    #[command(subcommand)]
    command: CorpusCommand,
}

#[derive(Subcommand, Debug)]
pub enum CorpusCommand {
    /// Store a source and print its snapshot id: DIR, REPO@REV (the committed tree), an archive
    /// (.tar.gz, .tar.bz2, .zip) or pip:NAME==VERSION (its sdist, via pip download).
    Ingest {
        source: String,
        /// Name of the source (default: the directory, repository, archive or package name).
        #[arg(long)]
        name: Option<String>,
        /// Skip files larger than this many bytes.
        #[arg(long, default_value_t = 2 << 20, value_name = "BYTES")]
        max_file_size: u64,
        /// Leave out paths matching this gitignore-style glob (directory sources; repeatable).
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the ingested sources.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// List the files of a snapshot (an id, a 6+ digit id prefix, or a source name).
    Show {
        snapshot: String,
        #[arg(long)]
        json: bool,
    },
    /// Print one file of a snapshot.
    Cat { snapshot: String, path: String },
    /// Write a snapshot's files into a directory, byte for byte, modes and symlinks kept.
    Export { snapshot: String, dir: PathBuf },
    /// List the Python functions of a snapshot.
    Functions {
        snapshot: String,
        /// Only files under this path prefix (e.g. `src/pkg/`).
        #[arg(long, value_name = "PREFIX")]
        path: Option<String>,
        /// Leave out functions in tests paths (`tests/`, `test_*.py`, `conftest.py`, ...).
        #[arg(long)]
        no_tests: bool,
        /// Only functions of at least N lines.
        #[arg(long, value_name = "N", default_value_t = 0)]
        min_lines: u32,
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every blob and snapshot; exit 1 if anything is corrupt.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Blobs, raw and stored bytes, snapshots.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Python environments for snapshots (what the teacher's commands run with).
    #[command(subcommand)]
    Env(EnvCommand),
    /// Merge corpora (e.g. the workers' of `run --worker I/N`) into --db: a set union of
    /// content-addressed records, every copied blob re-hashed; idempotent and order-free, and a
    /// merge stopped midway is finished by running it again. The same key with different
    /// content is an error naming both files.
    Merge {
        /// The corpora to merge in.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum EnvCommand {
    /// Make (or find) the virtual environment of a snapshot: its requirements resolved and
    /// installed with uv (from the index once, from uv's cache after), pytest, /workspace on
    /// the path. Exit 1 when the install failed (the report says why).
    Build {
        snapshot: String,
        /// Where environments live (default: $SERA_HOST_ENVS or the cache directory's envs/).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Use only uv's local cache, never the package index.
        #[arg(long)]
        offline: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the environments built (and failed) for this corpus's snapshots.
    Ls {
        #[arg(long)]
        json: bool,
    },
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn env_cmd(db: &std::path::Path, cmd: EnvCommand) -> Result<ExitCode> {
    let corpus = Corpus::open_existing(db)?;
    match cmd {
        EnvCommand::Build {
            snapshot,
            dir,
            offline,
            json,
        } => {
            let id = corpus.resolve_snapshot(&snapshot)?;
            let mut opts = crate::exec::pyenv::BuildOptions {
                offline,
                ..Default::default()
            };
            if let Some(d) = dir {
                opts.dir = d;
            }
            let row = crate::exec::pyenv::build(&corpus, &id, &opts)?;
            if json {
                print_json(&row)?;
            } else if row.status == "ok" {
                println!("{}", row.path);
                eprintln!(
                    "environment {} for snapshot {}: {} ({} requirements)",
                    &row.id[..12],
                    &id[..12],
                    row.interpreter,
                    row.requirements.lines().count()
                );
            } else {
                eprintln!(
                    "snapshot {}: the environment could not be built; its rollouts will run commands with the bare interpreter\n{}",
                    &id[..12],
                    row.report.trim_end()
                );
            }
            Ok(if row.status == "ok" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        EnvCommand::Ls { json } => {
            let rows = corpus.envs(None)?;
            if json {
                print_json(&rows)?;
            } else {
                for r in rows {
                    println!(
                        "{}  snapshot {}  {:<6}  {}  {} requirements  {}",
                        &r.id[..12],
                        &r.snapshot[..12],
                        r.status,
                        r.interpreter,
                        r.requirements.lines().count(),
                        if r.status == "ok" {
                            r.path
                        } else {
                            r.report.lines().last().unwrap_or("").to_string()
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn run(args: CorpusArgs) -> Result<ExitCode> {
    let db = &args.db;
    match args.command {
        CorpusCommand::Env(cmd) => return env_cmd(db, cmd),
        CorpusCommand::Merge { sources, json } => {
            let report = crate::corpus::merge(db, &sources)?;
            if json {
                print_json(&report)?;
            } else {
                print!("{}", report.render());
            }
            return Ok(ExitCode::SUCCESS);
        }
        CorpusCommand::Ingest {
            source,
            name,
            max_file_size,
            exclude,
            json,
        } => {
            let source = Source::parse(&source)?;
            let corpus = Corpus::open(db)?;
            let opts = IngestOptions {
                name,
                max_file_size,
                exclude,
                ..IngestOptions::default()
            };
            let report = ingest(&corpus, &source, &opts)?;
            if json {
                print_json(&report)?;
            } else {
                println!("{}", report.snapshot);
                let s = &report.skipped;
                eprintln!(
                    "{}: {} files, {} bytes; {} new blobs ({} bytes stored); {} Python files parsed; skipped {} too large, {} binary, {} non-UTF-8 paths, {} unsafe paths, {} special, {} unreadable{}",
                    report.name,
                    report.files,
                    report.raw_bytes,
                    report.new_blobs,
                    report.new_stored_bytes,
                    report.python_files_parsed,
                    s.too_large,
                    s.binary,
                    s.non_utf8_path,
                    s.unsafe_path,
                    s.special,
                    s.unreadable,
                    if report.existing_snapshot { " (snapshot already in the corpus)" } else { "" }
                );
                for example in &s.examples {
                    eprintln!("  skipped: {example}");
                }
            }
        }
        CorpusCommand::Ls { json } => {
            let sources = Corpus::open_existing(db)?.sources()?;
            if json {
                print_json(&sources)?;
            } else {
                for s in sources {
                    println!(
                        "{}  {}  {}  {}",
                        &s.snapshot[..16],
                        s.ingested_at,
                        s.name,
                        s.origin
                    );
                }
            }
        }
        CorpusCommand::Show { snapshot, json } => {
            let corpus = Corpus::open_existing(db)?;
            let id = corpus.resolve_snapshot(&snapshot)?;
            let entries = corpus.entries(&id)?;
            if json {
                print_json(&serde_json::json!({ "snapshot": id, "entries": entries }))?;
            } else {
                println!("snapshot {id}, {} files", entries.len());
                for e in entries {
                    println!("{:06o} {} {}", e.mode, &e.blob[..16], e.path);
                }
            }
        }
        CorpusCommand::Cat { snapshot, path } => {
            let corpus = Corpus::open_existing(db)?;
            let id = corpus.resolve_snapshot(&snapshot)?;
            let (mode, bytes) = corpus.cat(&id, &path)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            if mode == MODE_SYMLINK {
                writeln!(out)?;
            }
        }
        CorpusCommand::Export { snapshot, dir } => {
            let corpus = Corpus::open_existing(db)?;
            let id = corpus.resolve_snapshot(&snapshot)?;
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
            let n = corpus.export(&id, &dir)?;
            eprintln!("wrote {n} files of {id} to {}", dir.display());
        }
        CorpusCommand::Functions {
            snapshot,
            path,
            no_tests,
            min_lines,
            json,
        } => {
            let corpus = Corpus::open_existing(db)?;
            let id = corpus.resolve_snapshot(&snapshot)?;
            let under = |p: &str| path.as_deref().is_none_or(|prefix| p.starts_with(prefix));
            let mut functions = corpus.functions(&id)?;
            functions.retain(|f| {
                under(&f.path) && !(no_tests && f.in_tests) && f.line_count >= min_lines
            });
            let mut failures = corpus.parse_failures(&id)?;
            failures.retain(|(p, _)| under(p));
            if json {
                let failures: Vec<_> = failures
                    .iter()
                    .map(|(path, error)| serde_json::json!({ "path": path, "error": error }))
                    .collect();
                print_json(
                    &serde_json::json!({ "snapshot": id, "functions": functions, "parse_failures": failures }),
                )?;
            } else {
                for f in &functions {
                    let mut flags = Vec::new();
                    if f.is_async {
                        flags.push("async")
                    }
                    if f.is_method {
                        flags.push("method")
                    }
                    if f.in_tests {
                        flags.push("tests")
                    }
                    println!(
                        "{}:{}-{}  {}  [{}]",
                        f.path,
                        f.start_line,
                        f.end_line,
                        f.qualname,
                        flags.join(",")
                    );
                }
                for (path, error) in &failures {
                    eprintln!("not parsed: {path}: {error}");
                }
            }
        }
        CorpusCommand::Verify { json } => {
            let report = Corpus::open_existing(db)?.verify()?;
            let bad = !report.corrupt_blobs.is_empty() || !report.corrupt_snapshots.is_empty();
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "checked {} blobs and {} snapshots",
                    report.blobs_checked, report.snapshots_checked
                );
                for b in &report.corrupt_blobs {
                    println!("corrupt blob {b}");
                }
                for s in &report.corrupt_snapshots {
                    println!("corrupt snapshot {s}");
                }
            }
            if bad {
                return Ok(ExitCode::from(1));
            }
        }
        CorpusCommand::Stats { json } => {
            let stats = Corpus::open_existing(db)?.stats()?;
            if json {
                print_json(&stats)?;
            } else {
                let ratio = stats.raw_bytes as f64 / stats.stored_bytes.max(1) as f64;
                println!("blobs:        {}", stats.blobs);
                println!("raw bytes:    {}", stats.raw_bytes);
                println!(
                    "stored bytes: {} (compression {ratio:.2}x)",
                    stats.stored_bytes
                );
                println!("snapshots:    {}", stats.snapshots);
                println!("sources:      {}", stats.sources);
                println!("python files: {}", stats.python_files);
                println!("functions:    {}", stats.functions);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
