//! `str_replace_editor`, with SWE-agent's commands and messages (its `edit_anthropic` tool):
//! view, create, str_replace, insert, undo_edit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::args::Args;
use crate::workspace::Workspace;

/// SWE-agent's limit on one observation, and its notice.
pub const MAX_RESPONSE_LEN: usize = 16_000;
const TRUNCATED_MESSAGE: &str = "<response clipped><NOTE>To save on context only part of this file has been shown to you. You should retry this tool after you have searched inside the file with `search_file` in order to find the line numbers of what you are looking for.</NOTE>";
/// Lines of context around an edit in the snippet shown back.
const SNIPPET_LINES: usize = 4;

#[derive(Default)]
pub struct Editor {
    /// Contents before each edit, newest last; `None`: the file did not exist (a create).
    history: HashMap<PathBuf, Vec<Option<String>>>,
    /// The last file viewed or edited: `search_file`'s default, as SWE-agent's open file.
    pub current_file: Option<PathBuf>,
}

pub fn clip(mut s: String) -> String {
    if s.chars().count() > MAX_RESPONSE_LEN {
        let cut = s
            .char_indices()
            .nth(MAX_RESPONSE_LEN)
            .map_or(s.len(), |(i, _)| i);
        s.truncate(cut);
        s.push_str(TRUNCATED_MESSAGE);
    }
    s
}

/// `cat -n` of `content` starting at line `first` (1-based), tabs expanded as SWE-agent does.
fn numbered(content: &str, first: usize) -> String {
    let mut out = String::new();
    for (i, line) in content.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{:6}\t{}", i + first, expand_tabs(line)));
    }
    out.push('\n');
    out
}

/// Python's `str.expandtabs()` (tab stops every 8 columns).
fn expand_tabs(line: &str) -> String {
    if !line.contains('\t') {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len() + 8);
    let mut col = 0;
    for c in line.chars() {
        if c == '\t' {
            let n = 8 - col % 8;
            out.extend(std::iter::repeat_n(' ', n));
            col += n;
        } else {
            out.push(c);
            col += 1;
        }
    }
    out
}

fn read_text(path: &Path, shown: &str) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("Cannot read {shown}: {e}"))?;
    String::from_utf8(bytes)
        .map_err(|_| format!("{shown} is not a UTF-8 text file; it cannot be shown or edited."))
}

fn write_text(path: &Path, shown: &str, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("Cannot write {shown}: {e}"))
}

impl Editor {
    pub fn run(&mut self, ws: &Workspace, args: &Args) -> Result<String, String> {
        let command = args.str("command")?;
        let given = args.str("path")?;
        let path = ws.resolve(given)?;
        let shown = path.display().to_string();
        let meta = std::fs::metadata(&path);
        match command {
            "create" => {}
            _ if meta.is_err() => {
                return Err(format!(
                    "The path {shown} does not exist. Please provide a valid path."
                ))
            }
            "view" => {}
            _ if meta.as_ref().is_ok_and(|m| m.is_dir()) => {
                return Err(format!("The path {shown} is a directory and only the `view` command can be used on directories"))
            }
            _ => {}
        }
        match command {
            "view" => self.view(&path, &shown, args),
            "create" => self.create(&path, &shown, args),
            "str_replace" => self.str_replace(&path, &shown, args),
            "insert" => self.insert(&path, &shown, args),
            "undo_edit" => self.undo(&path, &shown),
            other => Err(format!(
                "Unrecognized command {other}. The allowed commands for the str_replace_editor tool are: view, create, str_replace, insert, undo_edit"
            )),
        }
    }

    fn view(&mut self, path: &Path, shown: &str, args: &Args) -> Result<String, String> {
        let range = args.get("view_range");
        if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            if range.is_some() {
                return Err(
                    "The `view_range` parameter is not allowed when `path` points to a directory."
                        .into(),
                );
            }
            let mut listing = vec![shown.to_string()];
            list_dir(path, 2, &mut listing);
            return Ok(clip(format!(
                "Here's the files and directories up to 2 levels deep in {shown}, excluding hidden items:\n{}\n",
                listing.join("\n")
            )));
        }
        let content = read_text(path, shown)?;
        self.current_file = Some(path.to_path_buf());
        let Some(range) = range else {
            return Ok(clip(format!(
                "Here's the result of running `cat -n` on {shown}:\n{}",
                numbered(&content, 1)
            )));
        };
        let bad = || "Invalid `view_range`. It should be a list of two integers.".to_string();
        let pair: Vec<i64> = match range {
            Value::Array(v) if v.len() == 2 => v
                .iter()
                .map(|x| x.as_i64().ok_or_else(bad))
                .collect::<Result<_, _>>()?,
            _ => return Err(bad()),
        };
        let (first, last) = (pair[0], pair[1]);
        let lines: Vec<&str> = content.split('\n').collect();
        let n = lines.len() as i64;
        if first < 1 || first > n {
            return Err(format!("Invalid `view_range`: [{first}, {last}]. Its first element `{first}` should be within the range of lines of the file: [1, {n}]"));
        }
        if last != -1 && last > n {
            return Err(format!("Invalid `view_range`: [{first}, {last}]. Its second element `{last}` should be smaller than the number of lines in the file: `{n}`"));
        }
        if last != -1 && last < first {
            return Err(format!("Invalid `view_range`: [{first}, {last}]. Its second element `{last}` should be larger or equal than its first `{first}`"));
        }
        let end = if last == -1 { n } else { last };
        let part = lines[(first - 1) as usize..end as usize].join("\n");
        Ok(clip(format!(
            "Here's the result of running `cat -n` on {shown}:\n{}",
            numbered(&part, first as usize)
        )))
    }

    fn create(&mut self, path: &Path, shown: &str, args: &Args) -> Result<String, String> {
        let text = args
            .opt_str("file_text")?
            .ok_or("Parameter `file_text` is required for command: create")?;
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(format!(
                "File already exists at: {shown}. Cannot overwrite files using command `create`."
            ));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("Cannot create the directory of {shown}: {e}"))?;
        }
        write_text(path, shown, text)?;
        self.history
            .entry(path.to_path_buf())
            .or_default()
            .push(None);
        self.current_file = Some(path.to_path_buf());
        Ok(format!("File created successfully at: {shown}"))
    }

    fn str_replace(&mut self, path: &Path, shown: &str, args: &Args) -> Result<String, String> {
        let old = args
            .opt_str("old_str")?
            .ok_or("Parameter `old_str` is required for command: str_replace")?;
        let new = args.opt_str("new_str")?.unwrap_or("");
        let content = read_text(path, shown)?;
        if old == new {
            return Err(
                "No replacement was performed, `new_str` and `old_str` must be different.".into(),
            );
        }
        let found: Vec<usize> = content.match_indices(old).map(|(i, _)| i).collect();
        match found.len() {
            0 => {
                return Err(format!(
                "No replacement was performed, old_str `{old}` did not appear verbatim in {shown}."
            ))
            }
            1 => {}
            n => {
                let lines: Vec<usize> = found
                    .iter()
                    .map(|&i| content[..i].matches('\n').count() + 1)
                    .collect();
                return Err(format!(
                    "No replacement was performed. Multiple occurrences ({n}) of old_str `{old}` in lines {lines:?}. Please ensure it is unique"
                ));
            }
        }
        let at = found[0];
        let edited = format!("{}{new}{}", &content[..at], &content[at + old.len()..]);
        write_text(path, shown, &edited)?;
        self.history
            .entry(path.to_path_buf())
            .or_default()
            .push(Some(content.clone()));
        self.current_file = Some(path.to_path_buf());
        let line = content[..at].matches('\n').count();
        let start = line.saturating_sub(SNIPPET_LINES);
        let end = line + SNIPPET_LINES + new.matches('\n').count();
        let snippet = snippet(&edited, start, end);
        Ok(clip(format!(
            "The file {shown} has been edited. Here's the result of running `cat -n` on a snippet of {shown}:\n{}Review the changes and make sure they are as expected. Edit the file again if necessary.",
            numbered(&snippet, start + 1)
        )))
    }

    fn insert(&mut self, path: &Path, shown: &str, args: &Args) -> Result<String, String> {
        let line = args
            .opt_i64("insert_line")?
            .ok_or("Parameter `insert_line` is required for command: insert")?;
        let new = args
            .opt_str("new_str")?
            .ok_or("Parameter `new_str` is required for command: insert")?;
        let content = read_text(path, shown)?;
        let lines: Vec<&str> = content.split('\n').collect();
        let n = lines.len() as i64;
        if line < 0 || line > n {
            return Err(format!("Invalid `insert_line` parameter: {line}. It should be within the range of lines of the file: [0, {n}]"));
        }
        let line = line as usize;
        let mut out: Vec<&str> = Vec::with_capacity(lines.len() + 4);
        out.extend(&lines[..line]);
        out.extend(new.split('\n'));
        out.extend(&lines[line..]);
        let edited = out.join("\n");
        write_text(path, shown, &edited)?;
        self.history
            .entry(path.to_path_buf())
            .or_default()
            .push(Some(content));
        self.current_file = Some(path.to_path_buf());
        let start = line.saturating_sub(SNIPPET_LINES);
        let end = line + SNIPPET_LINES + new.matches('\n').count();
        Ok(clip(format!(
            "The file {shown} has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n{}Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.",
            numbered(&snippet(&edited, start, end), start + 1)
        )))
    }

    fn undo(&mut self, path: &Path, shown: &str) -> Result<String, String> {
        let Some(before) = self.history.get_mut(path).and_then(Vec::pop) else {
            return Err(format!("No edit history found for {shown}."));
        };
        match before {
            Some(text) => {
                write_text(path, shown, &text)?;
                Ok(clip(format!(
                    "Last edit to {shown} undone successfully. Here's the result of running `cat -n` on {shown}:\n{}",
                    numbered(&text, 1)
                )))
            }
            None => {
                std::fs::remove_file(path).map_err(|e| format!("Cannot remove {shown}: {e}"))?;
                Ok(format!(
                    "Last edit to {shown} undone successfully: the file it created is removed."
                ))
            }
        }
    }
}

/// Lines `start..=end` (0-based, clamped) of `text`.
fn snippet(text: &str, start: usize, end: usize) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let end = end.min(lines.len().saturating_sub(1));
    lines[start.min(end)..=end].join("\n")
}

/// `find DIR -maxdepth N -not -path '*/.*'`, sorted.
fn list_dir(dir: &Path, depth: usize, out: &mut Vec<String>) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| !n.starts_with('.'))
        .collect();
    names.sort();
    for (_, path) in names {
        out.push(path.display().to_string());
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            list_dir(&path, depth - 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testdir::Dir;
    use crate::Tools;

    fn call(t: &mut Tools, name: &str, args: serde_json::Value) -> Result<String, String> {
        t.call(name, &args.to_string())
    }

    fn setup() -> (Dir, Tools, String) {
        let d = Dir::new();
        std::fs::create_dir_all(d.0.join("pkg/sub")).unwrap();
        std::fs::write(
            d.0.join("pkg/m.py"),
            "def f(a):\n\treturn a\n\ndef g():\n    return 1\n\ndef h():\n    return 1\n",
        )
        .unwrap();
        std::fs::write(d.0.join("pkg/sub/deep.txt"), "x\n").unwrap();
        std::fs::write(d.0.join(".hidden"), "x\n").unwrap();
        let root = d.0.display().to_string();
        let t = Tools::new(d.0.clone());
        (d, t, root)
    }

    #[test]
    fn view_file_range_and_directory() {
        let (_d, mut t, root) = setup();
        let out = call(
            &mut t,
            "str_replace_editor",
            serde_json::json!({"command": "view", "path": "pkg/m.py"}),
        )
        .unwrap();
        assert!(out.starts_with(&format!("Here's the result of running `cat -n` on {root}/pkg/m.py:\n     1\tdef f(a):\n     2\t        return a\n")), "{out}");
        let out = call(&mut t, "str_replace_editor", serde_json::json!({"command": "view", "path": format!("{root}/pkg/m.py"), "view_range": [4, 5]})).unwrap();
        assert!(
            out.ends_with(
                "     4\tdef g():\n     5\t        return 1\n"
                    .replace("        return", "    return")
                    .as_str()
            ),
            "{out}"
        );
        let err = call(
            &mut t,
            "str_replace_editor",
            serde_json::json!({"command": "view", "path": "pkg/m.py", "view_range": [0, 5]}),
        )
        .unwrap_err();
        assert!(
            err.contains(
                "Its first element `0` should be within the range of lines of the file: [1, 9]"
            ),
            "{err}"
        );
        let out = call(
            &mut t,
            "str_replace_editor",
            serde_json::json!({"command": "view", "path": root}),
        )
        .unwrap();
        assert_eq!(out, format!("Here's the files and directories up to 2 levels deep in {root}, excluding hidden items:\n{root}\n{root}/pkg\n{root}/pkg/m.py\n{root}/pkg/sub\n"));
    }

    #[test]
    fn str_replace_needs_exactly_one_match_and_undo_restores() {
        let (d, mut t, root) = setup();
        let err = call(&mut t, "str_replace_editor", serde_json::json!({"command": "str_replace", "path": "pkg/m.py", "old_str": "    return 1\n", "new_str": "    return 2\n"})).unwrap_err();
        assert_eq!(err, "No replacement was performed. Multiple occurrences (2) of old_str `    return 1\n` in lines [5, 8]. Please ensure it is unique");
        let err = call(&mut t, "str_replace_editor", serde_json::json!({"command": "str_replace", "path": "pkg/m.py", "old_str": "nope", "new_str": "x"})).unwrap_err();
        assert_eq!(err, format!("No replacement was performed, old_str `nope` did not appear verbatim in {root}/pkg/m.py."));
        let before = std::fs::read_to_string(d.0.join("pkg/m.py")).unwrap();
        let out = call(&mut t, "str_replace_editor", serde_json::json!({"command": "str_replace", "path": "pkg/m.py", "old_str": "def g():\n    return 1", "new_str": "def g():\n    return 2"})).unwrap();
        assert!(
            out.contains("has been edited") && out.contains("     5\t    return 2\n"),
            "{out}"
        );
        assert!(std::fs::read_to_string(d.0.join("pkg/m.py"))
            .unwrap()
            .contains("return 2"));
        call(
            &mut t,
            "str_replace_editor",
            serde_json::json!({"command": "undo_edit", "path": "pkg/m.py"}),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(d.0.join("pkg/m.py")).unwrap(),
            before
        );
        let err = call(
            &mut t,
            "str_replace_editor",
            serde_json::json!({"command": "undo_edit", "path": "pkg/m.py"}),
        )
        .unwrap_err();
        assert!(err.starts_with("No edit history found"), "{err}");
    }

    #[test]
    fn create_insert_and_errors() {
        let (d, mut t, _root) = setup();
        call(
            &mut t,
            "str_replace_editor",
            serde_json::json!({"command": "create", "path": "new/n.py", "file_text": "a\nb\n"}),
        )
        .unwrap();
        let err = call(
            &mut t,
            "str_replace_editor",
            serde_json::json!({"command": "create", "path": "new/n.py", "file_text": "x"}),
        )
        .unwrap_err();
        assert!(err.contains("Cannot overwrite files"), "{err}");
        call(&mut t, "str_replace_editor", serde_json::json!({"command": "insert", "path": "new/n.py", "insert_line": 1, "new_str": "mid"})).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.0.join("new/n.py")).unwrap(),
            "a\nmid\nb\n"
        );
        let err = call(&mut t, "str_replace_editor", serde_json::json!({"command": "insert", "path": "new/n.py", "insert_line": 9, "new_str": "x"})).unwrap_err();
        assert!(err.contains("[0, 4]"), "{err}");
        let err = t.call("str_replace_editor", "{not json").unwrap_err();
        assert!(
            err.starts_with("The arguments of `str_replace_editor` are not valid JSON"),
            "{err}"
        );
        let err = call(
            &mut t,
            "str_replace_editor",
            serde_json::json!({"command": "view", "path": "/etc/passwd"}),
        )
        .unwrap_err();
        assert!(err.contains("outside the workspace"), "{err}");
        let err = call(&mut t, "nope", serde_json::json!({})).unwrap_err();
        assert!(err.starts_with("Unknown tool `nope`"), "{err}");
    }

    #[test]
    fn long_output_is_clipped_like_swe_agent() {
        let (d, mut t, _root) = setup();
        std::fs::write(d.0.join("big.py"), "x = 1\n".repeat(5000)).unwrap();
        let out = call(
            &mut t,
            "str_replace_editor",
            serde_json::json!({"command": "view", "path": "big.py"}),
        )
        .unwrap();
        assert!(out.ends_with("</NOTE>") && out.contains("<response clipped>"));
        assert_eq!(
            out.chars().count(),
            super::MAX_RESPONSE_LEN + super::TRUNCATED_MESSAGE.chars().count()
        );
    }

    #[test]
    fn search_tools() {
        let (_d, mut t, root) = setup();
        let out = call(
            &mut t,
            "find_file",
            serde_json::json!({"file_name": "*.py"}),
        )
        .unwrap();
        assert_eq!(
            out,
            format!("Found 1 matches for \"*.py\" in {root}:\n{root}/pkg/m.py")
        );
        let out = call(
            &mut t,
            "search_dir",
            serde_json::json!({"search_term": "return"}),
        )
        .unwrap();
        assert_eq!(out, format!("Found 3 matches for \"return\" in {root}:\n{root}/pkg/m.py (3 matches)\nEnd of matches for \"return\" in {root}"));
        let out = call(
            &mut t,
            "search_file",
            serde_json::json!({"search_term": "def g", "file": "pkg/m.py"}),
        )
        .unwrap();
        assert_eq!(out, format!("Found 1 matches for \"def g\" in {root}/pkg/m.py:\nLine 4:def g():\nEnd of matches for \"def g\" in {root}/pkg/m.py"));
        let out = call(
            &mut t,
            "search_dir",
            serde_json::json!({"search_term": "zzz", "dir": "pkg"}),
        )
        .unwrap();
        assert_eq!(out, format!("No matches found for \"zzz\" in {root}/pkg"));
    }
}
