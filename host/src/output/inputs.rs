//! What the card and the report are made of, and the names and labels both use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::decontam;
use super::dedup;
use super::facts::RowFacts;

/// The documents of an output directory, in the order they are written.
pub const CARD: &str = "README.md";
pub const REPORT: &str = "report.html";

/// Everything the card and the report are made of. Nothing in it is measured (no clock, no
/// latency, no path of this machine): the same rows and configuration give the same bytes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DocInputs {
    /// `run` (the SVG pipeline) or `shards` (rows from imported trajectories).
    pub made_by: String,
    /// The pipeline in a paragraph.
    pub description: String,
    pub license: Option<String>,
    pub teacher_model: Option<String>,
    pub tokenizer: String,
    /// Filters, truncation, verification: (what, its settings).
    pub settings: Vec<(String, String)>,
    /// The funnel, stage by stage: (stage, count).
    pub funnel: Vec<(String, u64)>,
    /// Why items stopped and rows were dropped: (reason, count).
    pub dropped: BTreeMap<String, u64>,
    /// Split names and their rows, in shard order; one split means unsplit shards.
    pub splits: Vec<(String, usize)>,
    /// The emitted rows, in shard order.
    pub facts: Vec<RowFacts>,
    pub decontamination: Option<decontam::Summary>,
    pub dedup: Option<dedup::Summary>,
}

/// A written document, as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocumentInfo {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Hugging Face's `size_categories` bucket for `n` rows.
pub fn size_category(n: usize) -> &'static str {
    match n {
        0..1_000 => "n<1K",
        1_000..10_000 => "1K<n<10K",
        10_000..100_000 => "10K<n<100K",
        100_000..1_000_000 => "100K<n<1M",
        1_000_000..10_000_000 => "1M<n<10M",
        _ => "10M<n<100M",
    }
}

/// How the card names a tokenizer: its kind and the hash of its files (never their paths).
pub fn tokenizer_label(kind: &str, fingerprint: &str, estimate: bool) -> String {
    if estimate {
        "an estimate (bytes / 4), not a real tokenizer".to_string()
    } else {
        format!(
            "the `{kind}` tokenizer whose files hash to `{}`",
            &fingerprint[..16.min(fingerprint.len())]
        )
    }
}

/// The file pattern of a split's shards (`shard-*.jsonl.zst` when unsplit).
pub fn split_pattern(split: Option<&str>) -> String {
    match split {
        Some(s) => format!("shard-{s}-*.jsonl.zst"),
        None => "shard-*.jsonl.zst".to_string(),
    }
}
