//! Working with stored trajectories without generating anything: pairs of patches to score
//! (`sera-host rescore`), selections and renderings of trajectories into shards
//! (`sera-host shards`).

pub mod pairs;
pub mod render;
pub mod rescore;
pub mod reshard;
pub mod select;
