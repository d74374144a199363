//! What `run` and `shards` share to write an output directory: the rows (decided, spilled,
//! chosen), the shard files and their Merkle root, the manifest, the plugins that decide rows,
//! and score histograms. Below both commands: it imports neither.

pub mod files;
pub mod histogram;
pub mod manifest;
pub mod plugins;
pub mod rows;
