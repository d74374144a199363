//! The patch of a workspace against its snapshot, in git's unified format (`diff --git`,
//! new, deleted and mode-changed files, `\ No newline at end of file`), so `git apply` takes it.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use similar::TextDiff;

use crate::corpus::{Entry, MODE_EXECUTABLE, MODE_FILE, MODE_SYMLINK};

/// One side of a file: its mode and bytes.
struct Side {
    mode: u32,
    bytes: Vec<u8>,
}

/// The modification time every materialised file gets: a write by any tool moves it to now,
/// so an unchanged file is known by its metadata alone and is not read again for the patch.
const PINNED_MTIME: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Sets every regular file of `base` under `dir` to the pinned modification time.
pub fn pin_mtimes(base: &[Entry], dir: &Path) -> Result<()> {
    let when = std::time::UNIX_EPOCH + PINNED_MTIME;
    for e in base.iter().filter(|e| e.mode != MODE_SYMLINK) {
        let p = dir.join(&e.path);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_modified(when))
            .with_context(|| format!("{}: cannot set its modification time", p.display()))?;
    }
    Ok(())
}

/// Every file and symlink under `dir`, as (path, mode, sha256) with `/`-separated paths. A
/// file of `base` whose modification time is still the pinned one keeps its blob id unread.
fn scan(dir: &Path, base: &BTreeMap<&str, &Entry>) -> Result<BTreeMap<String, (u32, String)>> {
    let pinned = std::time::UNIX_EPOCH + PINNED_MTIME;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("{}: cannot list", d.display()))? {
            let e = e?;
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let rel = path
                .strip_prefix(dir)
                .expect("under dir")
                .to_string_lossy()
                .into_owned();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path)?;
                let sha = hex::encode(Sha256::digest(target.as_os_str().as_encoded_bytes()));
                out.insert(rel, (MODE_SYMLINK, sha));
            } else if meta.is_file() {
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    MODE_EXECUTABLE
                } else {
                    MODE_FILE
                };
                if let Some(e) = base.get(rel.as_str()) {
                    if meta.modified().is_ok_and(|m| m == pinned) {
                        out.insert(rel, (mode, e.blob.clone()));
                        continue;
                    }
                }
                let bytes = std::fs::read(&path)?;
                out.insert(rel, (mode, hex::encode(Sha256::digest(&bytes))));
            }
        }
    }
    Ok(out)
}

fn read_side(dir: &Path, rel: &str, mode: u32) -> Result<Vec<u8>> {
    let p = dir.join(rel);
    Ok(if mode == MODE_SYMLINK {
        std::fs::read_link(&p)?
            .as_os_str()
            .as_encoded_bytes()
            .to_vec()
    } else {
        std::fs::read(&p)?
    })
}

/// The patch that turns `base` (a snapshot's entries; `blob` fetches their bytes) into the
/// contents of `dir`. Empty when nothing changed. Paths in sorted order, as git writes them.
pub fn workspace_patch(
    base: &[Entry],
    dir: &Path,
    mut blob: impl FnMut(&str) -> Result<Vec<u8>>,
) -> Result<String> {
    let before: BTreeMap<&str, &Entry> = base.iter().map(|e| (e.path.as_str(), e)).collect();
    let now = scan(dir, &before)?;
    let mut paths: Vec<&str> = before.keys().copied().collect();
    paths.extend(
        now.keys()
            .map(String::as_str)
            .filter(|p| !before.contains_key(p)),
    );
    paths.sort_unstable();
    let mut out = String::new();
    for path in paths {
        let old = match before.get(path) {
            Some(e) => {
                if now
                    .get(path)
                    .is_some_and(|(m, sha)| *m == e.mode && *sha == e.blob)
                {
                    continue;
                }
                Some(Side {
                    mode: e.mode,
                    bytes: blob(&e.blob)?,
                })
            }
            None => None,
        };
        let new = match now.get(path) {
            Some((mode, _)) => Some(Side {
                mode: *mode,
                bytes: read_side(dir, path, *mode)?,
            }),
            None => None,
        };
        file_diff(&mut out, path, old.as_ref(), new.as_ref());
    }
    Ok(out)
}

fn file_diff(out: &mut String, path: &str, old: Option<&Side>, new: Option<&Side>) {
    out.push_str(&format!("diff --git a/{path} b/{path}\n"));
    match (old, new) {
        (None, Some(n)) => out.push_str(&format!("new file mode {:o}\n", n.mode)),
        (Some(o), None) => out.push_str(&format!("deleted file mode {:o}\n", o.mode)),
        (Some(o), Some(n)) if o.mode != n.mode => {
            out.push_str(&format!("old mode {:o}\nnew mode {:o}\n", o.mode, n.mode))
        }
        _ => {}
    }
    let old_bytes = old.map_or(&[][..], |s| &s.bytes[..]);
    let new_bytes = new.map_or(&[][..], |s| &s.bytes[..]);
    if old_bytes == new_bytes {
        return;
    }
    let (Ok(old_text), Ok(new_text)) = (
        std::str::from_utf8(old_bytes),
        std::str::from_utf8(new_bytes),
    ) else {
        out.push_str(&format!(
            "Binary files {} and {} differ\n",
            old.map_or("/dev/null".into(), |_| format!("a/{path}")),
            new.map_or("/dev/null".into(), |_| format!("b/{path}"))
        ));
        return;
    };
    let a = old.map_or("/dev/null".into(), |_| format!("a/{path}"));
    let b = new.map_or("/dev/null".into(), |_| format!("b/{path}"));
    out.push_str(&format!("--- {a}\n+++ {b}\n"));
    let diff = TextDiff::from_lines(old_text, new_text);
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        out.push_str(&hunk.to_string());
    }
}
