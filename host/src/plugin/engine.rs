//! The one wasmtime `Engine` of a process, and loading components through the compile cache.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, WasmBacktraceDetails};

use super::cache::{CompileCache, Compiled};
use super::source::PluginSource;

/// Shared by every plugin of a run: compiling is the expensive part, instances are cheap.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    cache: Option<std::sync::Arc<CompileCache>>,
}

/// A compiled component and what identifies it.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub name: String,
    pub source: PluginSource,
    pub sha256: String,
    pub size: usize,
    pub component: Component,
    pub from_cache: bool,
}

impl PluginEngine {
    /// `cache_dir`: `Some(dir)` caches compiled components there; `None` compiles every time.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            // Backtraces are stored with failed items; they must not depend on the environment.
            .wasm_backtrace_details(WasmBacktraceDetails::Disable);
        #[cfg(feature = "profiling")]
        if std::env::var("SERA_HOST_PROFILE").as_deref() == Ok("perfmap") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("cannot create the wasmtime engine")?;
        Ok(Self {
            engine,
            cache: cache_dir.map(|d| std::sync::Arc::new(CompileCache::new(d))),
        })
    }

    /// An engine caching in the default directory (see [`crate::cache_dir::cache_dir`]).
    pub fn with_default_cache() -> Result<Self> {
        Self::new(crate::cache_dir::cache_dir().map(|d| d.join("modules")))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads and compiles (or loads from the cache) a plugin. A file that is not a component
    /// gets an error saying what it is instead.
    pub fn load(&self, source: &PluginSource) -> Result<LoadedPlugin> {
        let bytes = source.bytes()?;
        check_is_component(&bytes).with_context(|| format!("{source}: not a usable plugin"))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let (component, compiled) = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, &sha256, &bytes),
            None => Component::new(&self.engine, &bytes).map(|c| (c, Compiled::Fresh)),
        }
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{source}: cannot compile the component"))?;
        Ok(LoadedPlugin {
            name: source.name(),
            source: source.clone(),
            sha256,
            size: bytes.len(),
            component,
            from_cache: compiled == Compiled::FromCache,
        })
    }
}

/// Refuses bytes that are not a WebAssembly component, saying what they are instead.
pub fn check_is_component(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        bail!("not a WebAssembly file (it does not start with the bytes \\0asm)");
    }
    match &bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => bail!(
            "a core WebAssembly module, not a component; build the plugin for wasm32-wasip2 \
             or wrap the module with `wasm-tools component new`"
        ),
        other => bail!("a WebAssembly binary of unknown version/layer {other:02x?}"),
    }
}
