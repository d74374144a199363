//! Rollouts: one agent run of a teacher over tools in a copy of a snapshot, until it submits.

mod agent;
pub mod job;
pub mod patch;
/// The trajectory types live below every layer that uses them; here for older paths.
pub use crate::trajectory;

pub(crate) use agent::{blocking as agent_blocking, render as render_template};
pub use agent::{run, Outcome, Rollout, RolloutSpec, Sampling, Templates};
