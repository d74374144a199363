//! The corpus: one SQLite file holding every repository snapshot (and, in later issues, every
//! teacher exchange, trajectory, patch, verdict and shard manifest), content-addressed.
//!
//! Blobs are keyed by the sha256 of their raw bytes and stored zstd-compressed; snapshots are
//! hashed trees of (path, mode, blob). WAL mode lets readers work while an ingest writes; an
//! ingest commits its blobs in batches and its snapshot in one final transaction, so a crash
//! leaves at most unreferenced blobs, which `verify` accepts and a rerun reuses.

pub mod connection;
mod exchanges;
mod execs;
mod functions;
mod imports;
mod ingest;
mod merge;
mod progress;
mod schema;
mod stages;
mod store;
mod tree;
mod verdicts;

pub use exchanges::{Exchange, RolloutRow};
pub use execs::{EnvRow, ExecRecord};
pub use functions::{index_python, PyFunction};
pub use imports::{ImportEntry, ImportRow, ImportWriter, Imported, PreparedImport};
pub use ingest::{ingest, IngestOptions, IngestReport, Skipped, Source};
pub use merge::{merge, MergeReport};
pub use progress::{now_ms, ItemProgress, ItemStage};
pub use store::{
    in_tests_path, Corpus, PreparedBlob, SnapshotFunction, SourceRow, Stats, VerifyReport,
};
pub use tree::{check_path, snapshot_id, Entry, MODE_EXECUTABLE, MODE_FILE, MODE_SYMLINK};
pub use verdicts::StoredVerdict;
