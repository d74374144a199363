//! Running one pipeline on many machines: workers that each do a partition of the items into
//! their own corpus, the checks before the merged corpus is finalized, the scripts for the
//! batch engines (Slurm, Kubernetes), and the progress of every worker.

pub mod engines;
pub mod finalize;
pub mod status;
mod worker;

pub use worker::Worker;
