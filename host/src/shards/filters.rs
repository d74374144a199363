//! The filters stage: trajectory-filter plugins in order, the first that drops decides.

use crate::plugin::TrajectoryFilter;
use crate::trajectory::Trajectory;

/// Why the first filter that drops `trajectory` dropped it (a failing filter drops it too).
pub fn first_drop(
    filters: &[TrajectoryFilter],
    item: &str,
    trajectory: &Trajectory,
    patch: &str,
) -> Option<String> {
    for f in filters {
        match crate::rollout::agent_blocking(|| f.check(item, trajectory, patch)) {
            Ok(None) => {}
            Ok(Some(why)) => return Some(why),
            Err(e) => return Some(format!("filter {} failed: {e}", f.name())),
        }
    }
    None
}
