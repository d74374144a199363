//! What `run` and `shards` share to write an output directory: the rows (decided by the
//! `filters` and `truncation` stages, spilled, chosen), the shard files and their Merkle root,
//! the manifest, the plugins that decide rows, and score histograms. Below both commands: it
//! imports neither.

pub mod files;
pub mod filters;
pub mod histogram;
pub mod manifest;
pub mod plugins;
pub mod rows;
pub mod truncation;
