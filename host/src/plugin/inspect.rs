//! What a component is: which `sera:plugin` world it implements, at which version, and what it
//! imports and exports. Used by `sera-host plugin inspect` and before any plugin is run.

use std::fmt;

use anyhow::{bail, Result};
use serde::Serialize;
use wasmtime::component::types::ComponentItem;

use super::engine::{LoadedPlugin, PluginEngine};

/// The package every plugin world belongs to, and the versions this host runs.
pub const PACKAGE: &str = "sera:plugin";
pub const SUPPORTED_VERSIONS: &[&str] = &["0.1.0", "0.1.1"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorldKind {
    Verifier,
    Tools,
    PrSynthesizer,
    Truncation,
    TrajectoryFilter,
}

impl WorldKind {
    pub const ALL: [WorldKind; 5] = [
        Self::Verifier,
        Self::Tools,
        Self::PrSynthesizer,
        Self::Truncation,
        Self::TrajectoryFilter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Verifier => "verifier",
            Self::Tools => "tools",
            Self::PrSynthesizer => "pr-synthesizer",
            Self::Truncation => "truncation",
            Self::TrajectoryFilter => "trajectory-filter",
        }
    }

    /// The interface the world exports.
    pub fn export_interface(self) -> &'static str {
        match self {
            Self::Verifier => "verify",
            Self::Tools => "tool-provider",
            Self::PrSynthesizer => "pr-synthesis",
            Self::Truncation => "truncate",
            Self::TrajectoryFilter => "filter",
        }
    }

    /// The host interfaces of the package the world lets a plugin import (besides WASI).
    pub fn host_interfaces(self) -> &'static [&'static str] {
        match self {
            Self::Verifier => &["types", "log"],
            // `exec` exists from 0.1.1 on (the `tools-exec` world).
            Self::Tools => &["types", "log", "exec"],
            Self::PrSynthesizer => &["types", "log", "llm"],
            Self::Truncation | Self::TrajectoryFilter => &["types", "log", "tokenizer"],
        }
    }
}

impl fmt::Display for WorldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    pub world: WorldKind,
    /// The `sera:plugin` version the plugin was built against.
    pub version: String,
    pub imports: Vec<String>,
    /// Exported interfaces with their functions, e.g. `sera:plugin/verify@0.1.0#verify`.
    pub exports: Vec<String>,
    pub size: usize,
    pub sha256: String,
}

impl Inspection {
    /// Whether the plugin runs commands (imports `sera:plugin/exec`, the `tools-exec` world).
    pub fn imports_exec(&self) -> bool {
        self.imports
            .iter()
            .any(|i| package_interface(i).is_some_and(|(iface, _)| iface == "exec"))
    }
}

/// Splits `sera:plugin/verify@0.1.0` into (`verify`, `0.1.0`).
fn package_interface(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    rest.split_once('@')
}

/// Works out the world of a loaded plugin, or explains why it matches none.
pub fn inspect(engine: &PluginEngine, plugin: &LoadedPlugin) -> Result<Inspection> {
    let ty = plugin.component.component_type();
    let engine = engine.engine();
    let mut exports = Vec::new();
    let mut worlds = Vec::new();
    for (name, ext) in ty.exports(engine) {
        match &ext.ty {
            ComponentItem::ComponentInstance(inst) => {
                for (func, item) in inst.exports(engine) {
                    if matches!(item.ty, ComponentItem::ComponentFunc(_)) {
                        exports.push(format!("{name}#{func}"));
                    }
                }
            }
            _ => exports.push(name.to_string()),
        }
        if let Some((iface, version)) = package_interface(name) {
            if let Some(world) = WorldKind::ALL
                .into_iter()
                .find(|w| w.export_interface() == iface)
            {
                worlds.push((world, version.to_string()));
            }
        }
    }
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let (world, version) = match worlds.as_slice() {
        [one] => one.clone(),
        [] => {
            let expected: Vec<_> = WorldKind::ALL
                .iter()
                .map(|w| {
                    format!(
                        "{PACKAGE}/{}@0.1.0 ({} world)",
                        w.export_interface(),
                        w.name()
                    )
                })
                .collect();
            bail!(
                "{}: matches no {PACKAGE} world; it exports [{}] but a plugin must export one of: {}",
                plugin.source,
                exports.join(", "),
                expected.join(", ")
            )
        }
        many => {
            bail!(
            "{}: exports the interfaces of several worlds ({}); a plugin implements exactly one",
            plugin.source,
            many.iter().map(|(w, _)| w.name()).collect::<Vec<_>>().join(", ")
        )
        }
    };
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        bail!(
            "{}: built against {PACKAGE}@{version}; this sera-host runs {PACKAGE}@{}",
            plugin.source,
            SUPPORTED_VERSIONS.join(", ")
        );
    }
    for import in &imports {
        let allowed = import.starts_with("wasi:")
            || package_interface(import).is_some_and(|(iface, v)| {
                world.host_interfaces().contains(&iface) && SUPPORTED_VERSIONS.contains(&v)
            });
        if !allowed {
            bail!(
                "{}: imports {import}, which the {world} world does not provide (it offers wasi:* and {})",
                plugin.source,
                world
                    .host_interfaces()
                    .iter()
                    .map(|i| format!("{PACKAGE}/{i}@{version}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(Inspection {
        world,
        version,
        imports,
        exports,
        size: plugin.size,
        sha256: plugin.sha256.clone(),
    })
}
