//! Rollouts: one agent run of a teacher over tools in a copy of a snapshot, until it submits.

mod agent;
pub mod job;
pub mod patch;
pub mod trajectory;

pub use agent::{run, Outcome, Rollout, RolloutSpec, Sampling, Templates};
