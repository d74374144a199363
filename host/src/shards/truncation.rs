//! The truncation stage: the plugin keeps a prefix of a trajectory that fits the token budget;
//! a row whose kept share of messages is under `min_ratio` is dropped.

use crate::config::TruncationSection;
use crate::plugin::Truncator;
use crate::trajectory::Trajectory;

/// What truncation kept of one trajectory.
pub struct Kept {
    /// Kept messages / all messages.
    pub ratio: Option<f64>,
    pub messages: Option<usize>,
    /// Why the row is dropped, if it is.
    pub dropped: Option<String>,
}

impl Kept {
    /// Every message (no truncation configured).
    pub fn all(trajectory: &Trajectory) -> Kept {
        Kept {
            ratio: Some(1.0),
            messages: Some(trajectory.messages.len()),
            dropped: None,
        }
    }
}

/// Asks `truncator` what fits `cfg.budget` of `trajectory`.
pub fn keep(
    truncator: &Truncator,
    cfg: &TruncationSection,
    item: &str,
    trajectory: &Trajectory,
) -> Kept {
    let all = trajectory.messages.len();
    let mut kept = Kept {
        ratio: None,
        messages: None,
        dropped: None,
    };
    match crate::rollout::agent_blocking(|| truncator.keep(item, trajectory, cfg.budget)) {
        Ok(Some(n)) => {
            let ratio = if all == 0 { 0.0 } else { n as f64 / all as f64 };
            kept.ratio = Some(ratio);
            kept.messages = Some(n);
            if ratio < cfg.min_ratio {
                kept.dropped = Some(format!("truncation ratio {ratio:.3} < {}", cfg.min_ratio));
            }
        }
        Ok(None) => kept.dropped = Some("truncation: nothing fits the budget".into()),
        Err(f) => kept.dropped = Some(format!("truncation failed: {f}")),
    }
    kept
}
