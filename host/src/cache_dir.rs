//! Where sera-host keeps what it can rebuild: compiled plugins, Python environments, fetched
//! sources.

use std::path::PathBuf;

/// sera-host's cache directory: `$SERA_HOST_CACHE_DIR`, else `$XDG_CACHE_HOME/sera-host`, else
/// `~/.cache/sera-host`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SERA_HOST_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("sera-host"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("sera-host"))
}
