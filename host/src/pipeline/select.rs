//! Selection: which functions of each snapshot become items, and with which change request.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use serde_json::json;

use crate::config::{Prompt, Resolved};
use crate::corpus::{in_tests_path, SnapshotFunction};
use crate::digest::sha256_hex;

use super::item::{key_of, Item};

/// Per instance, the functions decontamination left out of the selection (`repo path::qualname`).
pub type SkippedFunctions = BTreeMap<String, Vec<String>>;

/// Picks `functions_per_repo` functions of each snapshot, by a seeded hash order, and a prompt
/// for each (the same corpus and config always give the same items), leaving out the functions
/// a `decontam` instance's patches touch. Returns the items, and per instance the functions
/// left out (`repo path::qualname`).
pub fn select_clean(
    corpus: &crate::corpus::Corpus,
    snapshots: &[(String, String)],
    cfg: &Resolved,
    decontam: Option<&crate::output::decontam::Index>,
) -> Result<(Vec<Item>, SkippedFunctions)> {
    let s = &cfg.select;
    let mut items = Vec::new();
    let mut skipped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (repo, snapshot) in snapshots {
        let mut fns: Vec<(String, SnapshotFunction)> = corpus
            .functions(snapshot)?
            .into_iter()
            .filter(|f| !(s.skip_tests && (f.in_tests || in_tests_path(&f.path))))
            .filter(|f| f.line_count >= s.min_lines)
            .filter(|f| {
                let Some(idx) = decontam else { return true };
                let hits = idx.function_hits(repo, &function_ref(f));
                for h in &hits {
                    skipped
                        .entry(h.instance.clone())
                        .or_default()
                        .push(format!("{repo} {}::{}", f.path, f.qualname));
                }
                hits.is_empty()
            })
            .map(|f| {
                let rank = sha256_hex(
                    format!(
                        "{}\0{snapshot}\0{}\0{}\0{}",
                        s.seed, f.path, f.qualname, f.start_line
                    )
                    .as_bytes(),
                );
                (rank, f)
            })
            .collect();
        fns.sort_by(|a, b| a.0.cmp(&b.0));
        let n_prompts = cfg.prompts.rollout1.len();
        let shared: Vec<Arc<Prompt>> = cfg.prompts.rollout1.iter().cloned().map(Arc::new).collect();
        for (rank, f) in fns.into_iter().take(s.functions_per_repo) {
            // Distinct prompts for one function: consecutive ones from a hash-picked start.
            let first = u64::from_str_radix(&rank[..15], 16).expect("hex") as usize % n_prompts;
            for k in 0..s.prompts_per_function.min(n_prompts) {
                let prompt = shared[(first + k) % n_prompts].clone();
                let key = key_of(&json!({
                    "snapshot": snapshot,
                    "path": f.path,
                    "qualname": f.qualname,
                    "start_line": f.start_line,
                    "prompt": prompt,
                    "seed": s.seed,
                }));
                items.push(Item {
                    key,
                    repo: repo.clone(),
                    snapshot: snapshot.clone(),
                    function: f.clone(),
                    prompt,
                });
            }
        }
    }
    items.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((items, skipped))
}

pub fn function_ref(f: &SnapshotFunction) -> crate::output::facts::FunctionRef {
    crate::output::facts::FunctionRef {
        path: f.path.clone(),
        qualname: f.qualname.clone(),
        start_line: f.start_line,
        end_line: f.end_line,
    }
}
