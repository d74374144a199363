//! SWE-agent's search tools: `find_file`, `search_dir`, `search_file`, with its messages and
//! its cap of 100 files or lines.

use std::path::{Path, PathBuf};

use crate::args::Args;
use crate::editor::{clip, Editor};
use crate::workspace::Workspace;

pub const MAX_RESULTS: usize = 100;

/// Every file under `dir`, sorted, hidden entries and symbolic links left out.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut items: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| !n.starts_with('.'))
        .collect();
    items.sort();
    for (_, path) in items {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, out),
            Ok(m) if m.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// `*` and `?` as in the shell's `find -name`.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_match(&pattern[1..], name) || (!name.is_empty() && glob_match(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => glob_match(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob_match(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// A file's text, or `None` for binary and non-UTF-8 files (as `grep -I` skips them).
fn text_of(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    if bytes[..bytes.len().min(8000)].contains(&0) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

fn dir_arg(ws: &Workspace, args: &Args) -> Result<(PathBuf, String), String> {
    let dir = match args.opt_str("dir")? {
        Some(d) => ws.resolve(d)?,
        None => ws.root.clone(),
    };
    let shown = dir.display().to_string();
    if !std::fs::metadata(&dir).is_ok_and(|m| m.is_dir()) {
        return Err(format!("Directory {shown} not found"));
    }
    Ok((dir, shown))
}

pub fn find_file(ws: &Workspace, args: &Args) -> Result<String, String> {
    let name = args.str("file_name")?;
    let (dir, shown) = dir_arg(ws, args)?;
    let mut files = Vec::new();
    walk(&dir, &mut files);
    let hits: Vec<String> = files
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| glob_match(name.as_bytes(), n.as_encoded_bytes()))
        })
        .map(|p| p.display().to_string())
        .collect();
    Ok(match hits.len() {
        0 => format!("No matches found for \"{name}\" in {shown}"),
        n if n > MAX_RESULTS => format!(
            "More than {MAX_RESULTS} files matched for \"{name}\" in {shown}. Please narrow your search."
        ),
        n => clip(format!(
            "Found {n} matches for \"{name}\" in {shown}:\n{}",
            hits.join("\n")
        )),
    })
}

pub fn search_dir(ws: &Workspace, args: &Args) -> Result<String, String> {
    let term = args.str("search_term")?;
    if term.is_empty() {
        return Err("`search_term` must not be empty".into());
    }
    let (dir, shown) = dir_arg(ws, args)?;
    let mut files = Vec::new();
    walk(&dir, &mut files);
    let mut hits = Vec::new();
    let mut total = 0;
    for path in files {
        let Some(text) = text_of(&path) else { continue };
        let n = text.lines().filter(|l| l.contains(term)).count();
        if n > 0 {
            total += n;
            hits.push(format!("{} ({n} matches)", path.display()));
        }
    }
    Ok(match hits.len() {
        0 => format!("No matches found for \"{term}\" in {shown}"),
        n if n > MAX_RESULTS => format!(
            "More than {n} files matched for \"{term}\" in {shown}. Please narrow your search."
        ),
        _ => clip(format!(
            "Found {total} matches for \"{term}\" in {shown}:\n{}\nEnd of matches for \"{term}\" in {shown}",
            hits.join("\n")
        )),
    })
}

pub fn search_file(ws: &Workspace, editor: &Editor, args: &Args) -> Result<String, String> {
    let term = args.str("search_term")?;
    if term.is_empty() {
        return Err("`search_term` must not be empty".into());
    }
    let path = match args.opt_str("file")? {
        Some(f) => ws.resolve(f)?,
        None => editor
            .current_file
            .clone()
            .ok_or("No file open. Give `file`, or view a file with str_replace_editor first.")?,
    };
    let shown = path.display().to_string();
    if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
        return Err(format!("File {shown} not found"));
    }
    let text = text_of(&path).ok_or_else(|| format!("{shown} is not a text file"))?;
    let hits: Vec<String> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(term))
        .map(|(i, l)| format!("Line {}:{l}", i + 1))
        .collect();
    Ok(match hits.len() {
        0 => format!("No matches found for \"{term}\" in {shown}"),
        n if n > MAX_RESULTS => format!(
            "More than {MAX_RESULTS} lines matched for \"{term}\" in {shown}. Please narrow your search."
        ),
        n => clip(format!(
            "Found {n} matches for \"{term}\" in {shown}:\n{}\nEnd of matches for \"{term}\" in {shown}",
            hits.join("\n")
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match(b"*.py", b"textwrap.py"));
        assert!(glob_match(b"text?rap.py", b"textwrap.py"));
        assert!(!glob_match(b"*.py", b"textwrap.pyc"));
        assert!(glob_match(b"textwrap.py", b"textwrap.py"));
    }
}
