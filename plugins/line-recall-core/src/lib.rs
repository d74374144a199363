//! Change lines of unified diffs and SERA's line-level recall.
//!
//! Shared by the `line-recall` wasm verifier and the host (which validates patches before they
//! reach any plugin, and benchmarks the same algorithm natively). No dependencies, so it builds
//! for `wasm32-wasip2` with `-Zbuild-std` as well as for the host.

mod parse;
mod recall;
mod sera;

pub use parse::{change_lines, ParseError};
pub use recall::{line_recall, multiset_matches, PatchSide, Recall};
pub use sera::sera_change_lines;

/// How change lines are extracted from a patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Parse hunks by their header counts, so a removed line `--x` (text `-x`) counts as a change
    /// line and a malformed patch is an error.
    #[default]
    Hunks,
    /// Reproduce SERA's `compare_patch_recall` exactly: Python `splitlines()`, every line starting
    /// with `diff`, `---`, `+++` or `@@` skipped, no hunk parsing, no errors.
    Sera,
}
