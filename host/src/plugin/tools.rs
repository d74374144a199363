//! The host side of the `tools` world: one instance per rollout, made from a shared
//! `InstancePre`, with the rollout's workspace preopened at `/workspace` and nothing else.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::Store;

use super::engine::{LoadedPlugin, PluginEngine};
use super::failure::{classify, FailureKind, PluginFailure};
use super::inspect::{inspect, WorldKind};
use super::limits::Limits;
use super::output::LogEntry;
use super::state::StoreState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "tools",
        // The shared interfaces are the verifier world's: one `log` host implementation.
        with: {
            "sera:plugin/types": super::super::verifier::bindings::sera::plugin::types,
            "sera:plugin/log": super::super::verifier::bindings::sera::plugin::log,
        },
    });
}

pub use bindings::sera::plugin::types::ToolSpec;

/// A tools plugin, linked once; `open` gives each rollout its own sandboxed instance.
/// `Send + Sync`: share it between rollouts.
#[derive(Clone)]
pub struct ToolsPlugin {
    name: Arc<str>,
    sha256: Arc<str>,
    pre: bindings::ToolsPre<StoreState>,
    limits: Limits,
    config: Arc<str>,
}

/// One rollout's tools: an instance whose only view of the host is the workspace.
pub struct ToolSession {
    plugin: ToolsPlugin,
    store: Store<StoreState>,
    bindings: bindings::Tools,
    specs: Vec<ToolSpec>,
    log: Vec<LogEntry>,
    dead: bool,
}

impl ToolsPlugin {
    pub fn new(
        engine: &PluginEngine,
        plugin: &LoadedPlugin,
        config: &str,
        limits: Limits,
    ) -> Result<Self> {
        let info = inspect(engine, plugin)?;
        if info.world != WorldKind::Tools {
            bail!(
                "{}: implements the {} world, not the tools world",
                plugin.source,
                info.world
            );
        }
        let mut linker = Linker::<StoreState>::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from)?;
        super::writes::track_writes(&mut linker).map_err(anyhow::Error::from)?;
        bindings::Tools::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        let pre = linker
            .instantiate_pre(&plugin.component)
            .and_then(bindings::ToolsPre::new)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{}: cannot link the tools plugin", plugin.source))?;
        Ok(Self {
            name: plugin.name.as_str().into(),
            sha256: plugin.sha256.as_str().into(),
            pre,
            limits,
            config: config.into(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    fn failure(&self, item: &str, kind: FailureKind, message: String) -> PluginFailure {
        PluginFailure {
            plugin: self.name.clone(),
            sha256: self.sha256.clone(),
            item: item.to_string(),
            kind,
            message,
            backtrace: None,
        }
    }

    /// A fresh instance over `workspace`, initialised and with its tool list read.
    pub fn open(&self, item: &str, workspace: &Path) -> Result<ToolSession, PluginFailure> {
        let fuel = self.limits.fuel_per_call;
        let state = StoreState::new(&self.limits, Some(workspace)).map_err(|e| {
            self.failure(
                item,
                FailureKind::Instantiate,
                format!("cannot preopen {}: {e:#}", workspace.display()),
            )
        })?;
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        let _ = store.set_fuel(fuel);
        let bindings = match self.pre.instantiate(&mut store) {
            Ok(b) => b,
            Err(e) => {
                let (_, message, backtrace) = classify(&e, store.data_mut(), fuel);
                return Err(PluginFailure {
                    backtrace,
                    ..self.failure(item, FailureKind::Instantiate, message)
                });
            }
        };
        let mut session = ToolSession {
            plugin: self.clone(),
            store,
            bindings,
            specs: Vec::new(),
            log: Vec::new(),
            dead: false,
        };
        let config = self.config.clone();
        match session.guarded(item, |b, s| {
            b.sera_plugin_tool_provider().call_init(s, &config)
        })? {
            Ok(()) => {}
            Err(msg) => return Err(self.failure(item, FailureKind::Init, msg)),
        }
        let specs = session.guarded(item, |b, s| {
            b.sera_plugin_tool_provider().call_list_tools(s)
        })?;
        for spec in &specs {
            if !serde_json::from_str::<serde_json::Value>(&spec.parameters)
                .is_ok_and(|v| v.is_object())
            {
                return Err(self.failure(
                    item,
                    FailureKind::MalformedReturn,
                    format!(
                        "tool `{}`: parameters are not a JSON Schema object",
                        spec.name
                    ),
                ));
            }
        }
        session.specs = specs;
        Ok(session)
    }
}

impl ToolSession {
    pub fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    /// Workspace paths the plugin may have changed since the session opened (a directory
    /// stands for everything under it), or why that is not known (then scan everything).
    pub fn changed_paths(&self) -> Result<&std::collections::BTreeSet<String>, &str> {
        self.store.data().writes.changed()
    }

    /// Plugin output since the last call, oldest first.
    pub fn take_log(&mut self) -> Vec<LogEntry> {
        std::mem::take(&mut self.log)
    }

    /// Runs `f` with a full tank of fuel; a trap kills the session (its state, such as undo
    /// history, cannot be trusted after one).
    fn guarded<T>(
        &mut self,
        item: &str,
        f: impl FnOnce(&bindings::Tools, &mut Store<StoreState>) -> wasmtime::Result<T>,
    ) -> Result<T, PluginFailure> {
        if self.dead {
            return Err(self.plugin.failure(
                item,
                FailureKind::Trap,
                "the tools instance trapped earlier in this rollout".into(),
            ));
        }
        let fuel = self.plugin.limits.fuel_per_call;
        let _ = self.store.set_fuel(fuel);
        let result = f(&self.bindings, &mut self.store);
        let out = match result {
            Ok(v) => Ok(v),
            Err(e) => {
                self.dead = true;
                let (kind, message, backtrace) = classify(&e, self.store.data_mut(), fuel);
                Err(PluginFailure {
                    backtrace,
                    ..self.plugin.failure(item, kind, message)
                })
            }
        };
        self.log.extend(self.store.data().log.take());
        out
    }

    /// Runs one tool call. `Ok(Ok(text))` and `Ok(Err(text))` are observations for the model;
    /// `Err` means the plugin itself failed.
    pub fn call(
        &mut self,
        item: &str,
        name: &str,
        arguments: &str,
    ) -> Result<Result<String, String>, PluginFailure> {
        self.guarded(item, |b, s| {
            b.sera_plugin_tool_provider().call_call(s, name, arguments)
        })
    }
}
