//! `run --finalize`: before shards are written from a merged corpus, every selected item must
//! have been finished by some worker, or the shards would silently lack its rows.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Result;

use crate::corpus::Corpus;

/// The keys of the items some worker finished for this pipeline.
pub fn done_items(corpus: &Corpus, pipeline_sha256: &str) -> Result<HashSet<String>> {
    Ok(corpus
        .item_progress(pipeline_sha256)?
        .into_iter()
        .filter(|p| p.done_at.is_some())
        .map(|p| p.item)
        .collect())
}

/// What is missing, naming the workers to run again, when an item of `items` (each its key and
/// its partition key) has no finished record for this pipeline in the corpus; `None` when every
/// one is done.
pub fn unfinished(
    corpus: &Corpus,
    pipeline_sha256: &str,
    items: &[(&str, String)],
) -> Result<Option<String>> {
    let records: HashMap<String, (String, bool)> = corpus
        .item_progress(pipeline_sha256)?
        .into_iter()
        .map(|p| (p.item, (p.worker, p.done_at.is_some())))
        .collect();
    let mut unfinished: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut never = Vec::new();
    for (key, partition_key) in items {
        match records.get(*key) {
            Some((_, true)) => {}
            Some((worker, false)) => {
                let e = unfinished
                    .entry(worker.clone())
                    .or_insert((0, key.to_string()));
                e.0 += 1;
            }
            None => never.push(partition_key),
        }
    }
    if unfinished.is_empty() && never.is_empty() {
        return Ok(None);
    }
    let mut why = Vec::new();
    for (worker, (n, first)) in &unfinished {
        why.push(format!(
            "worker {worker} started {n} item(s) it did not finish (e.g. {})",
            &first[..16.min(first.len())]
        ));
    }
    if !never.is_empty() {
        let hint = records
            .values()
            .next()
            .and_then(|(w, _)| w.split_once('/').map(|(_, n)| n.to_string()));
        let partitions = hint.and_then(|n| n.parse::<u32>().ok()).map(|n| {
            let mut parts: Vec<u32> = never
                .iter()
                .map(|k| super::Worker::partition_of(k, n))
                .collect();
            parts.sort_unstable();
            parts.dedup();
            format!(
                " (partitions {} of {n})",
                parts
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        });
        why.push(format!(
            "{} item(s) no worker of this pipeline recorded{}",
            never.len(),
            partitions.unwrap_or_default()
        ));
    }
    Ok(Some(format!(
        "--finalize: {} of {} items are not done in {}: {}. Run those workers again (`sera-host run PIPELINE --worker I/N`, or `sbatch --array=I` the worker script), merge their corpora again, then finalize; or pass --allow-incomplete to write shards without them",
        unfinished.values().map(|(n, _)| n).sum::<usize>() + never.len(),
        items.len(),
        corpus.path().display(),
        why.join("; ")
    )))
}
