//! Snapshot trees: sorted (path, mode, blob) entries and their canonical hash.

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

pub const MODE_FILE: u32 = 0o100644;
pub const MODE_EXECUTABLE: u32 = 0o100755;
pub const MODE_SYMLINK: u32 = 0o120000;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub path: String,
    pub mode: u32,
    pub blob: String,
}

/// Sorts the entries by path and returns the snapshot id: the sha256 of one line per entry,
/// `MODE PATH\0BLOB\n` (mode in octal), so the same tree always has the same id whatever order
/// it was read in.
pub fn snapshot_id(entries: &mut [Entry]) -> String {
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut h = Sha256::new();
    for e in entries.iter() {
        h.update(format!("{:o} {}\0{}\n", e.mode, e.path, e.blob).as_bytes());
    }
    hex::encode(h.finalize())
}

/// A stored path must stay inside the tree when materialised: relative, `/`-separated, no
/// empty, `.` or `..` component.
pub fn check_path(path: &str) -> Result<()> {
    if path.is_empty() || path.starts_with('/') || path.contains('\0') || path.contains('\\') {
        bail!("unsafe path {path:?}: expected a relative '/'-separated path");
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        bail!("unsafe path {path:?}: empty, '.' or '..' component");
    }
    Ok(())
}

/// The stored mode of a regular file with Unix permission bits `perm`: executable if anyone
/// may execute it, as git records it.
pub fn file_mode(perm: u32) -> u32 {
    if perm & 0o111 != 0 {
        MODE_EXECUTABLE
    } else {
        MODE_FILE
    }
}

/// Git's heuristic: a NUL byte in the first 8000 bytes makes a file binary.
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8000)].contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_change_the_id() {
        let e = |p: &str| Entry {
            path: p.into(),
            mode: MODE_FILE,
            blob: "00".into(),
        };
        let mut a = vec![e("b"), e("a/x"), e("a")];
        let mut b = vec![e("a"), e("b"), e("a/x")];
        assert_eq!(snapshot_id(&mut a), snapshot_id(&mut b));
        assert_eq!(a[0].path, "a");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
        ] {
            assert!(check_path(p).is_err(), "{p}");
        }
        check_path("pkg/mod.py").unwrap();
    }
}
