//! The patch of a workspace against its snapshot, in git's unified format (`diff --git`,
//! new, deleted and mode-changed files, `\ No newline at end of file`), so `git apply` takes it.

use std::collections::{BTreeMap, BTreeSet};
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

/// What a scan found: files that are new or may have changed, as path -> (mode, sha256), and
/// which files of the base are still there unchanged (by index into the base).
struct Scan {
    touched: BTreeMap<String, (u32, String)>,
    unchanged: Vec<bool>,
}

/// One scan thread's findings: touched files, and indexes of unchanged base files.
type ScanPart = (BTreeMap<String, (u32, String)>, Vec<usize>);

/// Walks `dir` with two threads. A file of `base` (sorted by path) whose modification time is
/// still the pinned one is unchanged and is neither read nor hashed.
fn scan(dir: &Path, base: &[Entry]) -> Result<Scan> {
    let pinned = std::time::UNIX_EPOCH + PINNED_MTIME;
    // Directories to list, with their path relative to `dir` ("" or "a/b/").
    let pending = std::sync::Mutex::new(vec![(dir.to_path_buf(), String::new())]);
    let busy = std::sync::atomic::AtomicUsize::new(0);
    let worker = || -> Result<ScanPart> {
        let mut touched = BTreeMap::new();
        let mut same = Vec::new();
        loop {
            let next = {
                let mut p = pending.lock().expect("scan queue");
                let d = p.pop();
                if d.is_some() {
                    busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                d
            };
            let Some((d, prefix)) = next else {
                if busy.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    return Ok((touched, same));
                }
                std::thread::yield_now();
                continue;
            };
            let listed = (|| -> Result<()> {
                for e in std::fs::read_dir(&d)
                    .with_context(|| format!("{}: cannot list", d.display()))?
                {
                    let e = e?;
                    let name = e.file_name();
                    let mut rel = String::with_capacity(prefix.len() + name.len());
                    rel.push_str(&prefix);
                    rel.push_str(&name.to_string_lossy());
                    // The type comes from the directory listing; only files need a stat,
                    // an fstatat on the open directory (no path walk).
                    if e.file_type()?.is_dir() {
                        rel.push('/');
                        pending.lock().expect("scan queue").push((e.path(), rel));
                        continue;
                    }
                    let meta = e.metadata()?;
                    if meta.file_type().is_symlink() {
                        let path = e.path();
                        let target = std::fs::read_link(&path)?;
                        let sha =
                            hex::encode(Sha256::digest(target.as_os_str().as_encoded_bytes()));
                        touched.insert(rel, (MODE_SYMLINK, sha));
                    } else if meta.is_file() {
                        let mode = if meta.permissions().mode() & 0o111 != 0 {
                            MODE_EXECUTABLE
                        } else {
                            MODE_FILE
                        };
                        let at = base.binary_search_by(|b| b.path.as_str().cmp(rel.as_str()));
                        if let Ok(i) = at {
                            if base[i].mode == mode && meta.modified().is_ok_and(|m| m == pinned) {
                                same.push(i);
                                continue;
                            }
                        }
                        let bytes = std::fs::read(e.path())?;
                        touched.insert(rel, (mode, hex::encode(Sha256::digest(&bytes))));
                    }
                }
                Ok(())
            })();
            busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            listed?;
        }
    };
    let (a, b) = std::thread::scope(|s| {
        let other = s.spawn(worker);
        let mine = worker();
        (mine, other.join().expect("scan thread"))
    });
    let mut out = Scan {
        touched: BTreeMap::new(),
        unchanged: vec![false; base.len()],
    };
    for part in [a?, b?] {
        out.touched.extend(part.0);
        for i in part.1 {
            out.unchanged[i] = true;
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
    blob: impl FnMut(&str) -> Result<Vec<u8>>,
) -> Result<String> {
    let found = scan(dir, base)?;
    // Paths to compare: whatever may have changed or is new, and base files no longer seen.
    let mut paths: Vec<&str> = found.touched.keys().map(String::as_str).collect();
    paths.extend(
        base.iter()
            .enumerate()
            .filter(|(i, e)| !found.unchanged[*i] && !found.touched.contains_key(&e.path))
            .map(|(_, e)| e.path.as_str()),
    );
    paths.sort_unstable();
    diff_paths(base, dir, &paths, &found.touched, blob)
}

/// The same patch as [`workspace_patch`] when only `changed` paths (a directory standing for
/// everything under it) can differ from `base`: reads those, and walks nothing else.
pub fn changed_patch(
    base: &[Entry],
    dir: &Path,
    changed: &BTreeSet<String>,
    blob: impl FnMut(&str) -> Result<Vec<u8>>,
) -> Result<String> {
    if changed.contains("") {
        return workspace_patch(base, dir, blob);
    }
    let mut paths = BTreeSet::new();
    let mut now = BTreeMap::new();
    for c in changed {
        if let Ok(i) = base.binary_search_by(|e| e.path.as_str().cmp(c)) {
            paths.insert(base[i].path.clone());
        }
        // Entries under `c/` are contiguous in path order (not always right after `c`).
        let under = format!("{c}/");
        let from = base.partition_point(|e| e.path.as_str() < under.as_str());
        paths.extend(
            base[from..]
                .iter()
                .take_while(|e| e.path.starts_with(&under))
                .map(|e| e.path.clone()),
        );
        let mut pending = vec![c.clone()];
        while let Some(rel) = pending.pop() {
            let p = dir.join(&rel);
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                for e in std::fs::read_dir(&p)
                    .with_context(|| format!("{}: cannot list", p.display()))?
                {
                    pending.push(format!("{rel}/{}", e?.file_name().to_string_lossy()));
                }
                continue;
            }
            let mode = if meta.file_type().is_symlink() {
                MODE_SYMLINK
            } else if meta.permissions().mode() & 0o111 != 0 {
                MODE_EXECUTABLE
            } else {
                MODE_FILE
            };
            let bytes = read_side(dir, &rel, mode)?;
            now.insert(rel.clone(), (mode, hex::encode(Sha256::digest(&bytes))));
            paths.insert(rel);
        }
    }
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    diff_paths(base, dir, &paths, &now, blob)
}

/// The diffs of `paths` (sorted): `now` holds those present in `dir` as (mode, sha256).
fn diff_paths(
    base: &[Entry],
    dir: &Path,
    paths: &[&str],
    now: &BTreeMap<String, (u32, String)>,
    mut blob: impl FnMut(&str) -> Result<Vec<u8>>,
) -> Result<String> {
    let before = |p: &str| {
        base.binary_search_by(|e| e.path.as_str().cmp(p))
            .ok()
            .map(|i| &base[i])
    };
    let mut out = String::new();
    for &path in paths {
        let old = match before(path) {
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
