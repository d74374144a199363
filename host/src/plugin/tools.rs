//! The host side of the `tools` world (0.1.0) and the `tools-exec` world (0.1.1, which also
//! imports `exec`): one instance per rollout, made from a shared `InstancePre`, with the
//! rollout's workspace preopened at `/workspace` and nothing else.

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

/// `sera:plugin@0.1.1`'s `tools-exec` world: its own copies of the shared interfaces.
mod exec_bindings {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.1",
        world: "tools-exec",
    });
}

pub use bindings::sera::plugin::types::ToolSpec;
use exec_bindings::sera::plugin::exec as wit_exec;

impl exec_bindings::sera::plugin::log::Host for StoreState {
    fn log(&mut self, level: exec_bindings::sera::plugin::log::Level, message: String) {
        use exec_bindings::sera::plugin::log::Level;
        let source = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log.append(source, message.as_bytes());
    }
}

impl exec_bindings::sera::plugin::types::Host for StoreState {}

impl wit_exec::Host for StoreState {
    fn available(&mut self) -> Result<(), String> {
        match &self.exec {
            Some(e) => e.available(),
            None => Err("this host runs no commands".into()),
        }
    }

    fn run(&mut self, request: wit_exec::ExecRequest) -> Result<wit_exec::ExecResult, String> {
        let Some(exec) = self.exec.as_mut() else {
            return Err("this host runs no commands".into());
        };
        let reply = exec.run(super::exec_host::ExecRequest {
            command: request.command,
            timeout_s: request.timeout_s,
        })?;
        for p in reply.changed {
            self.writes.mark(p);
        }
        Ok(wit_exec::ExecResult {
            exit_code: reply.exit_code,
            signal: reply.signal,
            output: reply.output,
            truncated: reply.truncated,
            dropped_bytes: reply.dropped_bytes,
            timed_out: reply.timed_out,
            timeout_s: reply.timeout_s,
            duration_ms: reply.duration_ms,
        })
    }
}

#[derive(Clone)]
enum Pre {
    Files(bindings::ToolsPre<StoreState>),
    Exec(exec_bindings::ToolsExecPre<StoreState>),
}

enum Bound {
    Files(bindings::Tools),
    Exec(exec_bindings::ToolsExec),
}

impl Bound {
    fn init(
        &self,
        s: &mut Store<StoreState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Bound::Files(b) => b.sera_plugin_tool_provider().call_init(s, config),
            Bound::Exec(b) => b.sera_plugin_tool_provider().call_init(s, config),
        }
    }

    fn list_tools(&self, s: &mut Store<StoreState>) -> wasmtime::Result<Vec<ToolSpec>> {
        match self {
            Bound::Files(b) => b.sera_plugin_tool_provider().call_list_tools(s),
            Bound::Exec(b) => Ok(b
                .sera_plugin_tool_provider()
                .call_list_tools(s)?
                .into_iter()
                .map(|t| ToolSpec {
                    name: t.name,
                    description: t.description,
                    parameters: t.parameters,
                })
                .collect()),
        }
    }

    fn call(
        &self,
        s: &mut Store<StoreState>,
        name: &str,
        arguments: &str,
    ) -> wasmtime::Result<Result<String, String>> {
        match self {
            Bound::Files(b) => b.sera_plugin_tool_provider().call_call(s, name, arguments),
            Bound::Exec(b) => b.sera_plugin_tool_provider().call_call(s, name, arguments),
        }
    }
}

/// A tools plugin, linked once; `open` gives each rollout its own sandboxed instance.
/// `Send + Sync`: share it between rollouts.
#[derive(Clone)]
pub struct ToolsPlugin {
    name: Arc<str>,
    sha256: Arc<str>,
    pre: Pre,
    limits: Limits,
    config: Arc<str>,
}

/// One rollout's tools: an instance whose only view of the host is the workspace.
pub struct ToolSession {
    plugin: ToolsPlugin,
    store: Store<StoreState>,
    bindings: Bound,
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
        let pre = if info.imports_exec() {
            exec_bindings::ToolsExec::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
                .map_err(anyhow::Error::from)?;
            linker
                .instantiate_pre(&plugin.component)
                .and_then(exec_bindings::ToolsExecPre::new)
                .map(Pre::Exec)
        } else {
            bindings::Tools::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
                .map_err(anyhow::Error::from)?;
            linker
                .instantiate_pre(&plugin.component)
                .and_then(bindings::ToolsPre::new)
                .map(Pre::Files)
        }
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

    /// Whether the plugin imports `exec` (the `tools-exec` world).
    pub fn runs_commands(&self) -> bool {
        matches!(self.pre, Pre::Exec(_))
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

    /// A fresh instance over `workspace`, initialised and with its tool list read; a plugin
    /// that imports `exec` is told commands are not available (and lists no `bash`).
    pub fn open(&self, item: &str, workspace: &Path) -> Result<ToolSession, PluginFailure> {
        self.open_with(item, workspace, None)
    }

    /// [`open`](Self::open), with `exec` answering the plugin's commands.
    pub fn open_with(
        &self,
        item: &str,
        workspace: &Path,
        exec: Option<Box<dyn super::exec_host::ExecHost>>,
    ) -> Result<ToolSession, PluginFailure> {
        let fuel = self.limits.fuel_per_call;
        let state = StoreState::new(&self.limits, Some(workspace)).map_err(|e| {
            self.failure(
                item,
                FailureKind::Instantiate,
                format!("cannot preopen {}: {e:#}", workspace.display()),
            )
        })?;
        let engine = match &self.pre {
            Pre::Files(p) => p.engine(),
            Pre::Exec(p) => p.engine(),
        };
        let mut store = Store::new(engine, state);
        if matches!(self.pre, Pre::Exec(_)) {
            store.data_mut().exec = Some(match exec {
                Some(e) => e,
                None => Box::new(super::exec_host::NoExec(
                    "command execution is not enabled for this rollout ([rollout] exec.enabled = false)".into(),
                )),
            });
        }
        store.limiter(|s| &mut s.limiter);
        let _ = store.set_fuel(fuel);
        let instantiated = match &self.pre {
            Pre::Files(p) => p.instantiate(&mut store).map(Bound::Files),
            Pre::Exec(p) => p.instantiate(&mut store).map(Bound::Exec),
        };
        let bindings = match instantiated {
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
        match session.guarded(item, |b, s| b.init(s, &config))? {
            Ok(()) => {}
            Err(msg) => return Err(self.failure(item, FailureKind::Init, msg)),
        }
        let specs = session.guarded(item, |b, s| b.list_tools(s))?;
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
        f: impl FnOnce(&Bound, &mut Store<StoreState>) -> wasmtime::Result<T>,
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
        self.guarded(item, |b, s| b.call(s, name, arguments))
    }
}
