//! The change-line extraction of SERA's `compare_patch_recall` (sera/datagen/data/eval/eval.py),
//! reproduced to the character: Python's `str.splitlines()` and `str.strip()` semantics included.

/// Line boundaries of Python's `str.splitlines()`.
fn is_py_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\x0b'
            | '\x0c'
            | '\x1c'
            | '\x1d'
            | '\x1e'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// Python's `str.isspace()`: Rust's White_Space plus the four ASCII separators \x1c-\x1f.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

fn py_splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_py_line_break(c) {
            lines.push(&text[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = chars.peek() {
                    chars.next();
                    end = j + 1;
                }
            }
            start = end;
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Every `+`/`-` line whose text is not blank, skipping lines that start with `diff`, `---`,
/// `+++` or `@@`, exactly as SERA's script does (so a removed `--x` line is skipped there).
pub fn sera_change_lines(patch: &str) -> Vec<&str> {
    py_splitlines(patch)
        .into_iter()
        .filter(|line| {
            !["diff", "---", "+++", "@@"]
                .iter()
                .any(|p| line.starts_with(p))
                && line.starts_with(['+', '-'])
                && !line[1..].chars().all(is_py_space)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitlines_matches_python() {
        assert_eq!(
            py_splitlines("a\r\nb\rc\n\nd"),
            vec!["a", "b", "c", "", "d"]
        );
        assert_eq!(py_splitlines("a\n"), vec!["a"]);
        assert_eq!(py_splitlines(""), Vec::<&str>::new());
        assert_eq!(py_splitlines("a\u{2028}b\x0cc"), vec!["a", "b", "c"]);
    }

    #[test]
    fn skips_header_like_change_lines() {
        let patch = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n---x\n+y\n-\x1f\n";
        assert_eq!(sera_change_lines(patch), vec!["+y"]);
    }
}
