//! What an output directory holds besides its shards: the dataset card (`README.md`, the
//! Hugging Face format) and `report.html`, made from the rows' facts and the configuration
//! only, so an audit rebuilds them byte for byte; and the two passes that decide rows before
//! they are written, decontamination and near-duplicate removal.

pub mod card;
pub mod decontam;
pub mod dedup;
pub mod facts;
mod inputs;
pub mod passes;
pub mod plots;
pub mod report;
pub mod scan;

use std::path::Path;

use anyhow::{Context, Result};

pub use facts::RowFacts;
pub use inputs::{
    size_category, split_pattern, tokenizer_label, DocInputs, DocumentInfo, CARD, REPORT,
};

/// The card and the report of `inputs` for shards whose Merkle root is `merkle_root`.
pub fn render_documents(inputs: &DocInputs, merkle_root: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (CARD, card::render(inputs, merkle_root).into_bytes()),
        (
            REPORT,
            report::render(inputs, merkle_root, None).into_bytes(),
        ),
    ]
}

/// Writes the card and the report into `dir` (each through a temporary file) and returns
/// what the manifest lists of them.
pub fn write_documents(
    dir: &Path,
    inputs: &DocInputs,
    merkle_root: &str,
) -> Result<Vec<DocumentInfo>> {
    let mut out = Vec::new();
    for (name, bytes) in render_documents(inputs, merkle_root) {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, &bytes).with_context(|| format!("{}: cannot write", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("{}: cannot write", path.display()))?;
        out.push(DocumentInfo {
            file: name.to_string(),
            bytes: bytes.len() as u64,
            sha256: crate::digest::sha256_hex(&bytes),
        });
    }
    Ok(out)
}
