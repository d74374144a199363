//! The plugin runtime: one shared wasmtime `Engine`, components compiled once and cached on
//! disk, one fresh sandboxed `Store` per instance with fuel and memory limits, deterministic
//! clocks and randomness, captured output, and failures turned into per-item errors.

mod cache;
mod engine;
mod exec_host;
mod failure;
mod inspect;
mod limits;
mod output;
mod source;
mod stage_plugin;
mod state;
mod tools;
mod verifier;
mod write_log;
mod writes;

pub mod check;
pub mod scaffold;

pub use engine::{LoadedPlugin, PluginEngine};
pub use exec_host::{ExecHost, ExecReply, ExecRequest, NoExec};
pub use failure::{FailureKind, PluginFailure};
pub use inspect::{inspect, Inspection, WorldKind};
pub use limits::Limits;
pub use output::LogEntry;
pub use source::{PluginSource, BUILTINS};
pub use stage_plugin::{PrSynthesizer, TrajectoryFilter, Truncator};
pub use state::{LlmFn, LlmRequest};
pub use tools::{ToolSession, ToolSpec, ToolsPlugin};
pub use verifier::{PatchPair, Verdict, Verifier};
