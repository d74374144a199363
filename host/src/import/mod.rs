//! `sera-host import`: existing trajectories from other tools into the corpus, normalised into
//! the one trajectory model, each with the file and place it came from.

pub mod mini_swe_agent;
pub mod openai_jsonl;
mod place;
pub mod sera_rows;
pub mod swe_agent;
mod tools;

pub use tools::bash_tool_spec;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::corpus::{Corpus, ImportWriter, PreparedBlob, PreparedImport};

pub use crate::corpus::Imported;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    SweAgent,
    OpenAiJsonl,
    Sera,
    MiniSweAgent,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        Ok(match s {
            "swe-agent" => Format::SweAgent,
            "openai-jsonl" => Format::OpenAiJsonl,
            "sera" => Format::Sera,
            "mini-swe-agent" => Format::MiniSweAgent,
            other => bail!(
                "unknown format {other:?} (known: swe-agent, mini-swe-agent, sera, openai-jsonl)"
            ),
        })
    }
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub files: usize,
    pub imported: usize,
    /// Already in the corpus (same source bytes and place).
    pub existing: usize,
    /// Files skipped with `--keep-going`, with why.
    pub skipped: Vec<String>,
}

/// Runs `work` for jobs 0.. on every core (`next_job` hands them out; `None`: no more) and
/// hands each result to `write` in job order on this thread, which holds the connection.
/// Stops handing out jobs once `write` fails; returns its first error.
fn in_order<J: Send, T: Send>(
    threads: usize,
    mut next_job: impl FnMut() -> Option<J> + Send,
    work: impl Fn(J, &mut zstd::bulk::Compressor<'static>) -> Result<T> + Sync,
    mut write: impl FnMut(usize, Result<T>) -> Result<()>,
) -> Result<()> {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let jobs = std::sync::Mutex::new((0usize, &mut next_job));
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Result<T>)>(threads * 2);
        for _ in 0..threads {
            let (tx, jobs, work, stop) = (tx.clone(), &jobs, &work, &stop);
            s.spawn(move || {
                let mut compressor = match PreparedBlob::compressor() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send((usize::MAX, Err(e)));
                        return;
                    }
                };
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (seq, job) = {
                        let mut j = jobs.lock().expect("import jobs");
                        let Some(job) = (j.1)() else { break };
                        j.0 += 1;
                        (j.0 - 1, job)
                    };
                    if tx.send((seq, work(job, &mut compressor))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut waiting = std::collections::BTreeMap::new();
        let mut want = 0;
        let mut result = Ok(());
        for (seq, r) in rx.iter() {
            if seq == usize::MAX {
                result = r.map(|_| ());
                break;
            }
            waiting.insert(seq, r);
            while let Some(r) = waiting.remove(&want) {
                if let Err(e) = write(want, r) {
                    result = Err(e);
                    break;
                }
                want += 1;
            }
            if result.is_err() {
                break;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Workers blocked on a full channel are released when it is dropped.
        drop(rx);
        result
    })
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8)
}

/// Whole-file formats: each file read, parsed and prepared on every core, written in file
/// order, one transaction per file.
fn import_whole_files(
    corpus: &Corpus,
    parse: fn(&Path, &[u8]) -> Result<Imported>,
    files: &[PathBuf],
    keep_going: bool,
    report: &mut ImportReport,
) -> Result<()> {
    let mut i = 0;
    in_order(
        cores(),
        || {
            let job = (i < files.len()).then_some(i);
            i += 1;
            job
        },
        |i, compressor| {
            let path = &files[i];
            let bytes =
                std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
            let sha = hex::encode(Sha256::digest(&bytes));
            let item = parse(path, &bytes)?;
            Ok((sha, PreparedImport::new(&item, compressor)?))
        },
        |_, item| {
            report.files += 1;
            let written = item.and_then(|(sha, item)| {
                let mut w = corpus.import_writer(&sha)?;
                w.push_prepared(&item)?;
                w.commit()
            });
            match written {
                Ok((new, old)) => {
                    report.imported += new;
                    report.existing += old;
                    Ok(())
                }
                Err(e) if keep_going => {
                    report.skipped.push(format!("{e:#}"));
                    Ok(())
                }
                Err(e) => Err(e),
            }
        },
    )
}

/// Lines per parallel job of a JSONL import (or fewer, when they pass 4 MB).
const LINES_PER_JOB: usize = 256;

/// A JSONL file in one transaction: every item or none. Read line by line (after a first pass
/// that hashes it), so memory does not grow with the file; batches of lines are parsed and
/// prepared on every core and written in file order.
fn import_jsonl(
    corpus: &Corpus,
    parse_line: fn(&str, usize, &[u8]) -> Result<Imported>,
    path: &Path,
) -> Result<(usize, usize)> {
    let shown = path.display().to_string();
    let cannot_read = || format!("{shown}: cannot read");
    // Every item's id names the file's sha256: a thread hashes the file while the first
    // batches are parsed, and the first write waits for it (hashing first, alone, was a fifth
    // of an import of SERA rows on two cores).
    let hash_file = || -> Result<String> {
        let mut hasher = Sha256::new();
        let mut file = std::fs::File::open(path).with_context(cannot_read)?;
        std::io::copy(&mut file, &mut hasher).with_context(cannot_read)?;
        Ok(hex::encode(hasher.finalize()))
    };
    std::thread::scope(|s| {
        let mut hashing = Some(s.spawn(hash_file));
        let mut writer = None;
        import_jsonl_items(parse_line, path, &shown, &mut |items| {
            let w = writer_once(corpus, &mut hashing, &mut writer)?;
            for it in items {
                w.push_prepared(it)?;
            }
            Ok(())
        })?;
        writer_once(corpus, &mut hashing, &mut writer)?;
        writer.take().expect("made above").commit()
    })
}

/// The import writer, made once the file's hash is known.
fn writer_once<'c, 'w>(
    corpus: &'c Corpus,
    hashing: &mut Option<std::thread::ScopedJoinHandle<'_, Result<String>>>,
    writer: &'w mut Option<ImportWriter<'c>>,
) -> Result<&'w mut ImportWriter<'c>> {
    if let Some(h) = hashing.take() {
        let sha = h.join().expect("the file's hashing thread panicked")?;
        *writer = Some(corpus.import_writer(&sha)?);
    }
    writer
        .as_mut()
        .ok_or_else(|| anyhow::anyhow!("the import writer was not made"))
}

/// The items of the JSONL file at `path`, parsed and prepared on every core, handed to `write`
/// in file order, batch by batch.
fn import_jsonl_items(
    parse_line: fn(&str, usize, &[u8]) -> Result<Imported>,
    path: &Path,
    shown: &str,
    write: &mut dyn FnMut(&[PreparedImport]) -> Result<()>,
) -> Result<()> {
    let cannot_read = || format!("{shown}: cannot read");
    let file = std::fs::File::open(path).with_context(cannot_read)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut n = 0;
    let mut read_error: Option<anyhow::Error> = None;
    let next_batch = || {
        let mut batch: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut bytes = 0;
        while batch.len() < LINES_PER_JOB && bytes < (4 << 20) && read_error.is_none() {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(k) => {
                    n += 1;
                    bytes += k;
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        batch.push((n, line));
                    }
                }
                Err(e) => read_error = Some(anyhow::Error::new(e).context(cannot_read())),
            }
        }
        (!batch.is_empty()).then_some(batch)
    };
    in_order(
        cores(),
        next_batch,
        |batch: Vec<(usize, Vec<u8>)>, compressor| {
            batch
                .iter()
                .map(|(n, line)| PreparedImport::new(&parse_line(shown, *n, line)?, compressor))
                .collect::<Result<Vec<_>>>()
        },
        |_, items| write(&items?),
    )?;
    match read_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `paths` with each directory replaced by the files under it that `wanted` accepts (sorted,
/// no ignore files honoured: a dataset directory is read whole).
pub fn files_under(paths: &[PathBuf], wanted: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = ignore::WalkBuilder::new(p)
                .standard_filters(false)
                .build()
                .filter_map(|e| e.ok())
                .map(|e| e.into_path())
                .filter(|f| f.is_file() && wanted(f))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    files
}

/// Imports `paths` (files, or directories searched for `*.traj` / `*.jsonl`). A bad file stops
/// the import unless `keep_going`; a file is stored in one transaction, so nothing of a bad or
/// interrupted file is left behind.
pub fn import_paths(
    corpus: &Corpus,
    format: Format,
    paths: &[PathBuf],
    keep_going: bool,
) -> Result<ImportReport> {
    let ext = match format {
        Format::SweAgent => ".traj",
        Format::OpenAiJsonl | Format::Sera => ".jsonl",
        Format::MiniSweAgent => ".traj.json",
    };
    let files = files_under(paths, |f| f.to_string_lossy().ends_with(ext));
    let mut report = ImportReport::default();
    let parse_line: fn(&str, usize, &[u8]) -> Result<Imported> = match format {
        Format::SweAgent => {
            import_whole_files(corpus, swe_agent::parse, &files, keep_going, &mut report)?;
            return Ok(report);
        }
        Format::MiniSweAgent => {
            import_whole_files(
                corpus,
                mini_swe_agent::parse,
                &files,
                keep_going,
                &mut report,
            )?;
            return Ok(report);
        }
        Format::OpenAiJsonl => openai_jsonl::parse_line,
        Format::Sera => sera_rows::parse_line,
    };
    for f in files {
        report.files += 1;
        match import_jsonl(corpus, parse_line, &f) {
            Ok((new, old)) => {
                report.imported += new;
                report.existing += old;
            }
            Err(e) if keep_going => report.skipped.push(format!("{e:#}")),
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}
