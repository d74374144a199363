//! Working with stored trajectories without generating anything: pairs of patches to score
//! (`sera-host rescore`), selections and renderings of trajectories into shards
//! (`sera-host shards`).

pub mod pairs;
pub mod render;
pub mod rescore;
pub mod reshard;
pub mod select;

use sha2::{Digest, Sha256};

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
