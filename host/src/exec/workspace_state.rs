//! What a workspace holds, kept current cheaply: every file's mode and blob id, rehashed only
//! where its stat changed. Its tree hash keys recorded commands; its differences are the files a
//! command created, changed or deleted.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::corpus::{snapshot_id, Entry, MODE_EXECUTABLE, MODE_FILE, MODE_SYMLINK};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Stat {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    mode: u32,
}

#[derive(Clone, Debug)]
struct File {
    stat: Stat,
    mode: u32,
    blob: String,
}

/// A change since the previous scan: (path, mode, blob) or deleted (`None`).
pub type Change = (String, u32, Option<String>);

pub struct WorkspaceState {
    root: PathBuf,
    files: BTreeMap<String, File>,
}

fn stat_of(m: &std::fs::Metadata) -> Stat {
    Stat {
        size: m.size(),
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        ino: m.ino(),
        mode: m.mode(),
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, std::fs::Metadata)>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // A directory the command made unreadable is skipped, like any tool would.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if meta.is_file() || meta.file_type().is_symlink() {
            let rel = path
                .strip_prefix(root)
                .expect("walked under the root")
                .to_string_lossy()
                .into_owned();
            out.push((rel, meta));
        }
    }
    Ok(())
}

impl WorkspaceState {
    pub fn new(root: &Path) -> Result<Self> {
        let mut s = WorkspaceState {
            root: root.to_path_buf(),
            files: BTreeMap::new(),
        };
        s.rescan()?;
        Ok(s)
    }

    /// Brings the state up to date and returns what changed since the last scan, sorted.
    pub fn rescan(&mut self) -> Result<Vec<Change>> {
        let mut seen = Vec::new();
        walk(&self.root, &self.root, &mut seen)?;
        let mut changes = Vec::new();
        let mut next = BTreeMap::new();
        for (rel, meta) in seen {
            let stat = stat_of(&meta);
            let file = match self.files.remove(&rel) {
                Some(old) if old.stat == stat => old,
                old => {
                    let full = self.root.join(&rel);
                    let (mode, bytes) = if meta.file_type().is_symlink() {
                        (
                            MODE_SYMLINK,
                            std::fs::read_link(&full)?
                                .to_string_lossy()
                                .into_owned()
                                .into_bytes(),
                        )
                    } else {
                        let mode = if meta.permissions().mode() & 0o111 != 0 {
                            MODE_EXECUTABLE
                        } else {
                            MODE_FILE
                        };
                        let bytes = match std::fs::read(&full) {
                            Ok(b) => b,
                            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                                Vec::new()
                            }
                            Err(e) => {
                                return Err(e)
                                    .with_context(|| format!("reading {}", full.display()))
                            }
                        };
                        (mode, bytes)
                    };
                    let blob = hex::encode(Sha256::digest(&bytes));
                    if old
                        .as_ref()
                        .is_none_or(|o| o.blob != blob || o.mode != mode)
                    {
                        changes.push((rel.clone(), mode, Some(blob.clone())));
                    }
                    File { stat, mode, blob }
                }
            };
            next.insert(rel, file);
        }
        for gone in std::mem::take(&mut self.files).into_keys() {
            changes.push((gone, 0, None));
        }
        self.files = next;
        changes.sort();
        Ok(changes)
    }

    /// The tree hash, computed like a snapshot id (so an untouched workspace's equals its
    /// snapshot's).
    pub fn tree(&self) -> String {
        let mut entries: Vec<Entry> = self
            .files
            .iter()
            .map(|(path, f)| Entry {
                path: path.clone(),
                mode: f.mode,
                blob: f.blob.clone(),
            })
            .collect();
        snapshot_id(&mut entries)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The bytes of a file as scanned (for recording a command's changes).
    pub fn read(&self, rel: &str, mode: u32) -> Result<Vec<u8>> {
        let full = self.root.join(rel);
        if mode == MODE_SYMLINK {
            return Ok(std::fs::read_link(&full)?
                .to_string_lossy()
                .into_owned()
                .into_bytes());
        }
        std::fs::read(&full).or_else(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                Ok(Vec::new())
            } else {
                Err(e).with_context(|| format!("reading {}", full.display()))
            }
        })
    }
}

/// Makes the workspace show `changes` (a recorded command's effect): files written with their
/// mode, deleted ones removed.
pub fn apply(
    root: &Path,
    changes: &[Change],
    blob: &dyn Fn(&str) -> Result<Vec<u8>>,
) -> Result<()> {
    for (rel, mode, id) in changes {
        crate::corpus::check_path(rel)?;
        let full = root.join(rel);
        match id {
            None => {
                if std::fs::symlink_metadata(&full).is_ok() {
                    std::fs::remove_file(&full)
                        .with_context(|| format!("removing {}", full.display()))?;
                }
            }
            Some(id) => {
                let bytes = blob(id)?;
                if let Some(parent) = full.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                if std::fs::symlink_metadata(&full).is_ok() {
                    std::fs::remove_file(&full)?;
                }
                if *mode == MODE_SYMLINK {
                    std::os::unix::fs::symlink(String::from_utf8_lossy(&bytes).as_ref(), &full)?;
                } else {
                    std::fs::write(&full, &bytes)
                        .with_context(|| format!("writing {}", full.display()))?;
                    let perm = if *mode == MODE_EXECUTABLE {
                        0o755
                    } else {
                        0o644
                    };
                    std::fs::set_permissions(&full, std::fs::Permissions::from_mode(perm))?;
                }
            }
        }
    }
    Ok(())
}
