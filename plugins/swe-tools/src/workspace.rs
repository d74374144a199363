//! Paths the model gives, checked against the workspace: absolute paths must lie under the
//! root, `..` may not climb out of it, and a symbolic link on the way may not point outside.
//! The WASI preopen (cap-std in the host) refuses escapes anyway; these checks exist so the
//! model gets a message it can act on instead of an I/O error.

use std::path::{Component, Path, PathBuf};

pub struct Workspace {
    /// Where the workspace is, as the model sees it (`/workspace` inside the plugin).
    pub root: PathBuf,
}

/// Symlink hops followed before giving up on a loop.
const MAX_LINKS: usize = 40;

impl Workspace {
    /// Resolves `given` to a path under the root (symbolic links inside the workspace
    /// followed), or says why it is refused.
    pub fn resolve(&self, given: &str) -> Result<PathBuf, String> {
        if given.is_empty() {
            return Err("The `path` parameter is empty; give a path under the workspace.".into());
        }
        let p = Path::new(given);
        let rel = if p.is_absolute() {
            p.strip_prefix(&self.root).map_err(|_| {
                format!(
                    "The path {given} is outside the workspace; paths must be under {}.",
                    self.root.display()
                )
            })?
        } else {
            p
        };
        let mut parts = Vec::new();
        push_normalised(&mut parts, rel).map_err(|()| {
            format!("The path {given} climbs out of the workspace through `..`; refused.")
        })?;
        // Re-walk component by component, replacing symbolic links by their targets.
        let mut resolved: Vec<String> = Vec::new();
        let mut pending: Vec<String> = parts.into_iter().rev().collect();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            resolved.push(part);
            let here = self.root.join(resolved.iter().collect::<PathBuf>());
            let Ok(meta) = std::fs::symlink_metadata(&here) else {
                continue;
            };
            if !meta.file_type().is_symlink() {
                continue;
            }
            hops += 1;
            if hops > MAX_LINKS {
                return Err(format!(
                    "The path {given} has too many levels of symbolic links."
                ));
            }
            // The WASI sandbox will not even read a link whose target is absolute and
            // outside the preopened directory.
            let target = std::fs::read_link(&here).map_err(|_| {
                format!("The path {given} goes through a symbolic link that points outside the workspace; refused.")
            })?;
            let outside = || {
                format!(
                    "The path {given} goes through a symbolic link to {}, outside the workspace; refused.",
                    target.display()
                )
            };
            resolved.pop();
            let mut base = if target.is_absolute() {
                let rel = target.strip_prefix(&self.root).map_err(|_| outside())?;
                let mut b = Vec::new();
                push_normalised(&mut b, rel).map_err(|()| outside())?;
                b
            } else {
                let mut b = resolved.clone();
                push_normalised(&mut b, &target).map_err(|()| outside())?;
                b
            };
            // The target's components go back on the stack ahead of what is left to walk.
            resolved.clear();
            base.reverse();
            pending.extend(base);
        }
        if resolved.is_empty() {
            return Ok(self.root.clone());
        }
        Ok(self.root.join(resolved.iter().collect::<PathBuf>()))
    }
}

/// Appends `path`'s components to `parts`, applying `.` and `..`; `Err` when `..` would
/// climb above the start.
fn push_normalised(parts: &mut Vec<String>, path: &Path) -> Result<(), ()> {
    for c in path.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                parts.pop().ok_or(())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::Dir;

    fn ws() -> (Dir, Workspace) {
        let dir = Dir::new();
        let root = dir.0.clone();
        (dir, Workspace { root })
    }

    #[test]
    fn relative_absolute_and_escapes() {
        let (_d, w) = ws();
        let root = w.root.clone();
        assert_eq!(w.resolve("a/b.py").unwrap(), root.join("a/b.py"));
        assert_eq!(
            w.resolve(root.join("a/./c/../b.py").to_str().unwrap())
                .unwrap(),
            root.join("a/b.py")
        );
        assert!(w
            .resolve("/etc/passwd")
            .unwrap_err()
            .contains("outside the workspace"));
        assert!(w.resolve("a/../../x").unwrap_err().contains("climbs out"));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_inside_are_followed_outside_refused() {
        let (_d, w) = ws();
        std::fs::create_dir_all(w.root.join("pkg")).unwrap();
        std::fs::write(w.root.join("pkg/mod.py"), "x = 1\n").unwrap();
        std::os::unix::fs::symlink("pkg", w.root.join("alias")).unwrap();
        std::os::unix::fs::symlink("/etc", w.root.join("etc")).unwrap();
        std::os::unix::fs::symlink("../..", w.root.join("pkg/up")).unwrap();
        std::os::unix::fs::symlink("loop", w.root.join("loop")).unwrap();
        assert_eq!(
            w.resolve("alias/mod.py").unwrap(),
            w.root.join("pkg/mod.py")
        );
        assert!(w
            .resolve("etc/passwd")
            .unwrap_err()
            .contains("symbolic link to /etc"));
        assert!(w
            .resolve("pkg/up/x")
            .unwrap_err()
            .contains("outside the workspace"));
        assert!(w.resolve("loop").unwrap_err().contains("too many levels"));
    }
}
