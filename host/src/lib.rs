//! sera-host: turns real code repositories into SERA-style soft-verified training data.
//!
//! This crate is both the library behind the `sera-host` binary and the host side of the
//! `sera:plugin` WIT worlds: plugins (verifiers, tools, PR synthesisers, truncation policies) are
//! WebAssembly components run sandboxed by wasmtime.

pub mod audit;
pub mod cache_dir;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod corpus;
pub mod dataset;
pub mod digest;
pub mod exec;
pub mod import;
pub mod output;
pub mod patch_file;
pub mod pipeline;
pub mod plugin;
pub mod rollout;
pub mod sandbox;
pub mod shards;
pub mod teacher;
pub mod tokenizer;
pub mod trajectory;
