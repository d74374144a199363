//! On-disk cache of compiled components.
//!
//! An entry is keyed by the component's sha256 and the engine's compatibility hash (wasmtime
//! version and every setting that changes machine code). Its bytes start with their own sha256,
//! so a truncated or tampered file is recompiled rather than trusted: deserialising is `unsafe`.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Compiled components, one file each, under `<cache dir>/modules`.
pub(crate) struct CompileCache {
    dir: PathBuf,
}

/// How a component was obtained, for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compiled {
    FromCache,
    Fresh,
}

impl CompileCache {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, engine: &Engine, component_sha256: &str) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let name = format!(
            "{component_sha256}-wasmtime{}-{:016x}.cwasm",
            env!("WASMTIME_VERSION"),
            h.finish()
        );
        self.dir.join(name)
    }

    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        component_sha256: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, Compiled)> {
        let path = self.path(engine, component_sha256);
        if let Some(component) = Self::load(engine, &path) {
            return Ok((component, Compiled::FromCache));
        }
        let component = Component::new(engine, wasm)?;
        // A cache that cannot be written only costs time; the plugin still runs.
        let _ = Self::store(&path, &component.serialize()?);
        Ok((component, Compiled::Fresh))
    }

    fn load(engine: &Engine, path: &Path) -> Option<Component> {
        let bytes = std::fs::read(path).ok()?;
        let (digest, artifact) = bytes.split_at_checked(32)?;
        if Sha256::digest(artifact).as_slice() != digest {
            return None;
        }
        // SAFETY: the artifact was written by `store` below from `Component::serialize` of this
        // engine configuration (the file name carries the compatibility hash) and its sha256
        // matches; wasmtime additionally checks version and settings and refuses a mismatch.
        unsafe { Component::deserialize(engine, artifact) }.ok()
    }

    fn store(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(path.parent().expect("cache files live in a directory"))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut bytes = Sha256::digest(artifact).to_vec();
        bytes.extend_from_slice(artifact);
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }
}
