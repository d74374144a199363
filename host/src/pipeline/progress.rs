//! Progress bars per stage (indicatif, on stderr; hidden when stderr is not a terminal).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    multi: MultiProgress,
    pub rollout1: ProgressBar,
    pub pr: ProgressBar,
    pub rollout2: ProgressBar,
    pub post: ProgressBar,
}

impl Progress {
    pub fn new(visible: bool) -> Self {
        let multi = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let style =
            ProgressStyle::with_template("{prefix:>18} {bar:30} {pos:>6}/{len:<6} {elapsed}")
                .expect("progress template");
        let bar = |name: &str| {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(style.clone());
            b.set_prefix(name.to_string());
            b
        };
        Progress {
            rollout1: bar("rollout 1"),
            pr: bar("PR synthesis"),
            rollout2: bar("rollout 2"),
            post: bar("filter + truncate"),
            multi,
        }
    }

    pub fn set_items(&self, n: u64) {
        for b in [&self.rollout1, &self.pr, &self.rollout2, &self.post] {
            b.set_length(n);
        }
    }

    pub fn finish(&self) {
        for b in [&self.rollout1, &self.pr, &self.rollout2, &self.post] {
            b.finish();
        }
        let _ = self.multi.clear();
    }
}
