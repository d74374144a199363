//! The paths a tools plugin may have changed in its workspace: what the shadowed WASI calls
//! (`writes.rs`) and commands record, kept in the plugin's store.

use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
pub(crate) struct WriteLog {
    /// Descriptor (by resource rep) -> its path relative to the workspace ("" is the root).
    pub(super) opened: HashMap<u32, String>,
    pub(super) changed: BTreeSet<String>,
    /// Why the log cannot be trusted, once it cannot.
    pub(super) lost: Option<String>,
}

impl WriteLog {
    /// Paths that may differ from the snapshot (a directory stands for everything under it),
    /// or why they are not known.
    pub(crate) fn changed(&self) -> Result<&BTreeSet<String>, &str> {
        match &self.lost {
            Some(why) => Err(why),
            None => Ok(&self.changed),
        }
    }

    /// A path something other than the plugin's WASI calls changed (a command).
    pub(crate) fn mark(&mut self, path: String) {
        self.changed.insert(path);
    }

    pub(super) fn lose(&mut self, why: String) {
        self.lost.get_or_insert(why);
    }

    /// `path` under descriptor `dir`, normalised, or `None` (and the log is lost) where it
    /// cannot be followed lexically.
    pub(super) fn resolve(&mut self, dir: u32, path: &str) -> Option<String> {
        let Some(base) = self.opened.get(&dir) else {
            self.lose(format!(
                "a descriptor of unknown origin was used for {path:?}"
            ));
            return None;
        };
        match join(base, path) {
            Some(p) => Some(p),
            None => {
                self.lose(format!("{path:?} leaves the workspace"));
                None
            }
        }
    }

    pub(super) fn touch(&mut self, dir: u32, path: &str) {
        if let Some(p) = self.resolve(dir, path) {
            self.changed.insert(p);
        }
    }
}

/// `base` joined with `path`, with `.` and `..` applied; `None` for absolute paths and for
/// paths that climb out of the root.
pub(super) fn join(base: &str, path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}
