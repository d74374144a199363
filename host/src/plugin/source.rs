//! Where a plugin's bytes come from: a builtin embedded in the binary or a `.wasm` file.

use std::fmt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// Default plugins, built reproducibly by `plugins/build.sh` and committed in `plugins/dist/`,
/// so a user needs no wasm toolchain.
pub const BUILTINS: &[(&str, &[u8])] = &[
    (
        "line-recall",
        include_bytes!("../../../plugins/dist/line-recall.wasm"),
    ),
    (
        "swe-tools",
        include_bytes!("../../../plugins/dist/swe-tools.wasm"),
    ),
    (
        "pr-synth",
        include_bytes!("../../../plugins/dist/pr-synth.wasm"),
    ),
    (
        "truncate-ratio",
        include_bytes!("../../../plugins/dist/truncate-ratio.wasm"),
    ),
    (
        "max-patch-lines",
        include_bytes!("../../../plugins/dist/max-patch-lines.wasm"),
    ),
    (
        "max-avg-tool-tokens",
        include_bytes!("../../../plugins/dist/max-avg-tool-tokens.wasm"),
    ),
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginSource {
    Builtin(String),
    File(PathBuf),
}

impl PluginSource {
    /// Parses `builtin:NAME` or a path to a component file.
    pub fn parse(spec: &str) -> Result<Self> {
        match spec.strip_prefix("builtin:") {
            Some(name) => {
                if !BUILTINS.iter().any(|(n, _)| *n == name) {
                    let known: Vec<_> = BUILTINS
                        .iter()
                        .map(|(n, _)| format!("builtin:{n}"))
                        .collect();
                    bail!(
                        "unknown builtin plugin '{spec}'; available: {}",
                        known.join(", ")
                    );
                }
                Ok(Self::Builtin(name.to_string()))
            }
            None => Ok(Self::File(PathBuf::from(spec))),
        }
    }

    /// A short name for logs and errors: the builtin's name or the file stem.
    pub fn name(&self) -> String {
        match self {
            Self::Builtin(name) => name.clone(),
            Self::File(path) => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
        }
    }

    pub fn bytes(&self) -> Result<Vec<u8>> {
        match self {
            Self::Builtin(name) => Ok(BUILTINS
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| b.to_vec())
                .expect("builtin names are checked in parse")),
            Self::File(path) => std::fs::read(path)
                .with_context(|| format!("{}: cannot read plugin", path.display())),
        }
    }
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin(name) => write!(f, "builtin:{name}"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}
