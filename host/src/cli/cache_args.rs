//! Where compiled plugins are cached, as every command that loads plugins takes it.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::plugin::PluginEngine;

#[derive(Args, Debug)]
pub(crate) struct CacheArgs {
    /// Directory of compiled components (default: $SERA_HOST_CACHE_DIR, $XDG_CACHE_HOME/sera-host or ~/.cache/sera-host).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile plugins every time instead of using the cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

impl CacheArgs {
    pub(crate) fn engine(&self) -> Result<PluginEngine> {
        if self.no_cache {
            PluginEngine::new(None)
        } else if let Some(dir) = &self.cache_dir {
            PluginEngine::new(Some(dir.clone()))
        } else {
            PluginEngine::with_default_cache()
        }
    }
}
