//! `shards.toml`: what `sera-host shards` reads, resolved (paths absolute) as its manifest
//! embeds it. Reading and checking it is `dataset::reshard`'s (`ReshardSpec::load`).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{FilterSpec, TruncationSection};
use crate::output::decontam::DecontaminateSection;
use crate::output::dedup::DedupSection;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Render {
    Openai,
    Hermes,
    Xml,
}

impl Render {
    pub fn parse(s: &str) -> Result<Render> {
        Ok(match s {
            "openai" => Render::Openai,
            "hermes" => Render::Hermes,
            "xml" => Render::Xml,
            other => bail!("unknown rendering {other:?} (known: openai, hermes, xml)"),
        })
    }
}

/// Which verifier gives `r`, and against what.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    #[serde(default = "d_verifier")]
    pub plugin: String,
    #[serde(default = "d_table")]
    pub config: Value,
    /// `["p1"]`, or files and directories of reference patches (SWE-bench instance JSON,
    /// JSONL, `INSTANCE.patch`).
    #[serde(default = "d_reference")]
    pub reference: Vec<String>,
}

pub(crate) fn d_verifier() -> String {
    "builtin:line-recall".into()
}
pub(crate) fn d_table() -> Value {
    json!({})
}
pub(crate) fn d_reference() -> Vec<String> {
    vec!["p1".into()]
}
pub(crate) fn d_rows_per_shard() -> usize {
    1000
}

/// Everything that decides the rows, resolved (paths absolute): what the manifest embeds.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReshardSpec {
    #[serde(default)]
    pub select: Option<String>,
    #[serde(default = "d_render")]
    pub render: Render,
    #[serde(default = "d_rows_per_shard")]
    pub rows_per_shard: usize,
    #[serde(default)]
    pub verify: Option<VerifySpec>,
    #[serde(default)]
    pub filters: Vec<FilterSpec>,
    /// None: every message kept.
    #[serde(default)]
    pub truncation: Option<TruncationSection>,
    /// The dataset card's `license`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decontaminate: Option<DecontaminateSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<DedupSection>,
}

fn d_render() -> Render {
    Render::Openai
}

impl Default for ReshardSpec {
    fn default() -> Self {
        ReshardSpec {
            select: None,
            render: Render::Openai,
            rows_per_shard: d_rows_per_shard(),
            verify: None,
            filters: Vec::new(),
            truncation: None,
            license: None,
            decontaminate: None,
            dedup: None,
        }
    }
}
