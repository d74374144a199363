//! A plugin's failure on one item, as a value: which plugin, which item, what went wrong.
//!
//! The text is the same on every run for the same inputs (no addresses, no timings), because it
//! is stored with the item and audits compare it.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use wasmtime::{Trap, WasmBacktrace};

use super::limits::LimitHit;
use super::state::StoreState;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The call used up its fuel (an endless or too long computation).
    Fuel,
    /// Linear memory would have grown past the limit.
    Memory,
    /// A table would have grown past the limit.
    Table,
    /// The guest panicked (Rust) or otherwise aborted with a message on stderr.
    Panic,
    /// Any other trap (out-of-bounds access, stack overflow, ...).
    Trap,
    /// The guest returned a value that breaks the world's contract.
    MalformedReturn,
    /// The guest returned `err` for this item.
    GuestError,
    /// `init` refused the configuration.
    Init,
    /// The component could not be instantiated.
    Instantiate,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fuel => "fuel limit",
            Self::Memory => "memory limit",
            Self::Table => "table limit",
            Self::Panic => "panic",
            Self::Trap => "trap",
            Self::MalformedReturn => "malformed return",
            Self::GuestError => "plugin error",
            Self::Init => "init refused the config",
            Self::Instantiate => "instantiation failed",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PluginFailure {
    /// Shared with the plugin's other failures: a re-score may fail many items.
    pub plugin: Arc<str>,
    pub sha256: Arc<str>,
    pub item: String,
    pub kind: FailureKind,
    pub message: String,
    /// The guest's wasm backtrace, when the failure was a trap.
    pub backtrace: Option<String>,
}

impl fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plugin {} (sha256 {}) failed on item {}: {}: {}",
            self.plugin,
            &self.sha256[..self.sha256.len().min(16)],
            self.item,
            self.kind,
            self.message
        )
    }
}

impl std::error::Error for PluginFailure {}

/// Turns the error of a guest call into a kind and a message. Must run before the store is
/// dropped: the limiter and the stderr tail live in it.
pub(crate) fn classify(
    err: &wasmtime::Error,
    state: &mut StoreState,
    fuel: u64,
) -> (FailureKind, String, Option<String>) {
    let backtrace = err.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
    if let Some(hit) = state.limiter.hit.take() {
        let (kind, message) = match hit {
            LimitHit::Memory { requested, limit } => (
                FailureKind::Memory,
                format!(
                    "linear memory would grow to {requested} bytes; the limit is {limit} bytes"
                ),
            ),
            LimitHit::TableElements { requested, limit } => (
                FailureKind::Table,
                format!("a table would grow to {requested} elements; the limit is {limit}"),
            ),
        };
        return (kind, message, backtrace);
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (
            FailureKind::Fuel,
            format!("the call consumed all of its {fuel} units of fuel"),
            backtrace,
        ),
        Some(Trap::UnreachableCodeReached) => {
            let stderr = state.log.stderr_tail(4096);
            match stderr.rfind("panicked at") {
                Some(at) => {
                    // Rust's hint about RUST_BACKTRACE means nothing inside a plugin.
                    let text: Vec<&str> = stderr[at..]
                        .lines()
                        .filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
                        .collect();
                    (
                        FailureKind::Panic,
                        format!("guest {}", text.join("\n").trim()),
                        backtrace,
                    )
                }
                None if !stderr.is_empty() => (
                    FailureKind::Panic,
                    format!("guest aborted; its stderr ends with: {stderr}"),
                    backtrace,
                ),
                None => (
                    FailureKind::Trap,
                    "wasm `unreachable` executed (the guest aborted)".to_string(),
                    backtrace,
                ),
            }
        }
        Some(trap) => (FailureKind::Trap, trap.to_string(), backtrace),
        None => (FailureKind::MalformedReturn, format!("{err:#}"), backtrace),
    }
}
