//! The manifest of an output directory (`run`, `run --finalize`, `shards`): what made its rows,
//! every shard's hashes and their Merkle root, and the documents beside them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::files::ShardInfo;
use crate::config::reshard::ReshardSpec;

pub const MANIFEST_FORMAT: &str = "sera-host-shards/1";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SnapshotRef {
    pub repo: String,
    pub snapshot: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PluginRef {
    pub source: String,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub tool_versions: BTreeMap<String, String>,
    /// sha256 of the canonical JSON of what made the rows: the pipeline, or the reshard spec.
    pub pipeline_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<crate::config::Resolved>,
    /// Shards made by `sera-host shards` from stored trajectories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reshard: Option<ReshardManifest>,
    pub plugins: BTreeMap<String, PluginRef>,
    /// `qwen-bpe`/`json` with the sha256 over its files, or `estimate`.
    pub tokenizer: BTreeMap<String, String>,
    pub snapshots: Vec<SnapshotRef>,
    /// The recorded exchanges behind the rows: how many, and sha256 over
    /// "request sample response-sha256" lines in sorted order.
    pub exchanges: BTreeMap<String, Value>,
    pub rows: usize,
    pub shards: Vec<ShardInfo>,
    pub merkle_root: String,
    /// The dataset card and the report: what they hash to (they are rebuilt by `audit`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<crate::output::DocumentInfo>,
}

/// What a reshard manifest records besides the common fields.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct ReshardManifest {
    pub spec: ReshardSpec,
    /// Stored trajectories considered, and sha256 over "import-id trajectory-sha256
    /// patch-sha256" lines in id order.
    pub imports: usize,
    pub imports_sha256: String,
    /// sha256 over the reference patches by instance, when they come from files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references_sha256: Option<String>,
}

pub fn tool_versions() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("sera-host".into(), env!("CARGO_PKG_VERSION").into()),
        ("wasmtime".into(), "48.0.8".into()),
        (
            "zstd".into(),
            format!(
                "{} (level {})",
                zstd::zstd_safe::version_string(),
                super::files::ZSTD_LEVEL
            ),
        ),
    ])
}

/// A plugin as the card names it: `builtin:NAME`, or a component's file name (not a path of
/// this machine).
pub fn plugin_name(spec: &str) -> String {
    if spec.starts_with("builtin:") {
        spec.to_string()
    } else {
        Path::new(spec)
            .file_name()
            .map_or(spec.to_string(), |n| n.to_string_lossy().into_owned())
    }
}

pub fn manifest_bytes(m: &Manifest) -> Result<Vec<u8>> {
    let mut b = serde_json::to_vec_pretty(m)?;
    b.push(b'\n');
    Ok(b)
}

/// Writes the shards, then the manifest (with their hashes and Merkle root) through a
/// temporary file: a manifest on disk always describes finished shards.
pub fn write_output(
    out: &Path,
    manifest: &mut Manifest,
    rows: &super::rows::ChosenRows,
    per_shard: usize,
    docs: &crate::output::DocInputs,
) -> Result<PathBuf> {
    let shards = super::files::write_shards(out, rows, per_shard)?;
    manifest.merkle_root = super::files::merkle_root_hex(&shards)?;
    manifest.shards = shards;
    manifest.documents = crate::output::write_documents(out, docs, &manifest.merkle_root)?;
    let path = out.join("manifest.json");
    let tmp = out.join(".manifest.json.tmp");
    std::fs::write(&tmp, manifest_bytes(manifest)?)
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(path)
}

/// Reads a manifest, naming the file in errors.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("{}: cannot read the manifest", path.display()))?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a sera-host manifest", path.display()))?;
    anyhow::ensure!(
        m.format == MANIFEST_FORMAT,
        "{}: manifest format {:?}, this sera-host reads {MANIFEST_FORMAT:?}",
        path.display(),
        m.format
    );
    Ok(m)
}
