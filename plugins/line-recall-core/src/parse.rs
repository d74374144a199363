//! A unified-diff reader that follows hunk header counts.
//!
//! Counting is what tells a removed line whose text starts with `--` (`---x`) from the `--- a/file`
//! header of the next file, and what catches a truncated or hand-edited patch.

use std::fmt;

/// Why a text is not a well-formed unified diff. `line` is 1-based.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub expected: String,
    pub found: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: expected {}, found {}",
            self.line, self.expected, self.found
        )
    }
}

impl std::error::Error for ParseError {}

const MAX_SHOWN: usize = 60;

fn shown(line: &str) -> String {
    if line.is_empty() {
        return "an empty line".to_string();
    }
    let mut out = String::from("'");
    for (i, c) in line.chars().enumerate() {
        if i == MAX_SHOWN {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('\'');
    out
}

fn error(line: usize, expected: impl Into<String>, found: &str) -> ParseError {
    ParseError {
        line,
        expected: expected.into(),
        found: shown(found),
    }
}

const HUNK_SYNTAX: &str = "a hunk header '@@ -START[,COUNT] +START[,COUNT] @@'";

/// Header lines git and diff(1) write between files; everything else outside a hunk after the
/// first file header is suspicious.
const FILE_HEADER_PREFIXES: &[&str] = &[
    "diff ",
    "index ",
    "--- ",
    "+++ ",
    "old mode ",
    "new mode ",
    "deleted file mode ",
    "new file mode ",
    "similarity index ",
    "dissimilarity index ",
    "rename from ",
    "rename to ",
    "copy from ",
    "copy to ",
    "Binary files ",
    "Only in ",
    "\\ ",
];

/// The lines of a text split at `\n`, like `str::split('\n')`, found with `memchr` (SIMD natively
/// and with wasm simd128). A hand-written 8-bytes-at-a-time scan was measured slower in both.
struct Lines<'a> {
    text: &'a str,
    pos: usize,
    done: bool,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.done {
            return None;
        }
        let rest = &self.text[self.pos..];
        match memchr::memchr(b'\n', rest.as_bytes()) {
            Some(i) => {
                self.pos += i + 1;
                Some(&rest[..i])
            }
            None => {
                self.done = true;
                Some(rest)
            }
        }
    }
}

fn lines(text: &str) -> Lines<'_> {
    Lines {
        text,
        pos: 0,
        done: false,
    }
}

/// Whether `text` is only whitespace, as `str::trim` sees it. Code lines start with indentation
/// but end with code, so the last byte usually decides at once.
fn is_blank(text: &str) -> bool {
    match text.as_bytes().last() {
        None => return true,
        Some(b) if b.is_ascii() && !b.is_ascii_whitespace() && *b != b'\x0b' => return false,
        _ => {}
    }
    for &b in text.as_bytes() {
        match b {
            b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r' => {}
            0x80.. => return text.trim_start().is_empty(),
            _ => return false,
        }
    }
    true
}

struct Hunk {
    header_line: usize,
    old_left: u64,
    new_left: u64,
}

/// Parses `@@ -a[,b] +c[,d] @@[ section]` into the old and new line counts. Byte by byte: this
/// runs for every hunk, and setting up substring searches costs more than the parse itself.
fn parse_hunk_header(line: &str) -> Option<(u64, u64)> {
    let rest = line.as_bytes().strip_prefix(b"@@ -")?;
    let (old, rest) = parse_range(rest)?;
    let (new, rest) = parse_range(rest.strip_prefix(b" +")?)?;
    rest.starts_with(b" @@").then_some((old, new))
}

/// `START[,COUNT]` at the start of `bytes`: the count (1 when omitted) and what follows.
fn parse_range(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (_start, rest) = number(bytes)?;
    match rest.strip_prefix(b",") {
        Some(rest) => number(rest),
        None => Some((1, rest)),
    }
}

fn number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    // Nine digits always fit a u32, so no overflow checks: a checked u64 multiply is a 128-bit
    // multiply call in wasm. No real hunk has a billion lines.
    if len == 0 || len > 9 {
        return None;
    }
    let n = bytes[..len]
        .iter()
        .fold(0u32, |n, &b| n * 10 + u32::from(b - b'0'));
    Some((u64::from(n), &bytes[len..]))
}

/// The non-blank `+`/`-` lines of every hunk, with their sign and exact whitespace, in order.
///
/// An empty (or all-whitespace) patch has no change lines. A text with no file header and no
/// hunk at all, a malformed hunk header, or a hunk whose body disagrees with its counts is an
/// error naming the line.
pub fn change_lines(patch: &str) -> Result<Vec<&str>, ParseError> {
    let mut out = Vec::with_capacity(64);
    let mut hunk: Option<Hunk> = None;
    let mut seen_diff = false;
    let mut first_text: Option<(usize, &str)> = None;
    let body = patch.strip_suffix('\n').unwrap_or(patch);
    if patch.trim().is_empty() {
        return Ok(out);
    }
    for (idx, raw) in lines(body).enumerate() {
        let n = idx + 1;
        if let Some(h) = hunk.as_mut() {
            let (old, new) = match raw.as_bytes().first() {
                // Some tools strip the single space of an empty context line.
                None | Some(b' ') => (1, 1),
                Some(b'-') => (1, 0),
                Some(b'+') => (0, 1),
                Some(b'\\') => (0, 0),
                Some(_) => {
                    return Err(error(
                        n,
                        format!(
                            "a hunk line (' ', '+' or '-'): the hunk at line {} still expects {} old and {} new lines",
                            h.header_line, h.old_left, h.new_left
                        ),
                        raw,
                    ))
                }
            };
            if old > h.old_left || new > h.new_left {
                let what = if old == 1 && new == 1 {
                    "a context line"
                } else if old == 1 {
                    "a removed line"
                } else {
                    "an added line"
                };
                return Err(error(
                    n,
                    format!(
                        "no {what} here: the hunk at line {} expects only {} more old and {} more new lines",
                        h.header_line, h.old_left, h.new_left
                    ),
                    raw,
                ));
            }
            h.old_left -= old;
            h.new_left -= new;
            if old != new && !is_blank(&raw[1..]) {
                out.push(raw);
            }
            if h.old_left == 0 && h.new_left == 0 {
                hunk = None;
            }
            continue;
        }
        let text = raw.strip_suffix('\r').unwrap_or(raw);
        if text.starts_with("@@") {
            if text.starts_with("@@@") {
                return Err(error(
                    n,
                    "a two-way unified diff (combined '@@@' diffs of merges are not supported)",
                    raw,
                ));
            }
            let (old_left, new_left) =
                parse_hunk_header(text).ok_or_else(|| error(n, HUNK_SYNTAX, raw))?;
            seen_diff = true;
            if old_left > 0 || new_left > 0 {
                hunk = Some(Hunk {
                    header_line: n,
                    old_left,
                    new_left,
                });
            }
            continue;
        }
        if text.starts_with("diff ") || text.starts_with("--- ") {
            seen_diff = true;
            continue;
        }
        if !seen_diff {
            // Free text before the first file (a commit message, an email) is allowed.
            if first_text.is_none() && !text.trim().is_empty() {
                first_text = Some((n, raw));
            }
            continue;
        }
        if text == "-- " {
            // `git format-patch` signature: the rest is the git version.
            break;
        }
        if text.trim().is_empty() || FILE_HEADER_PREFIXES.iter().any(|p| text.starts_with(p)) {
            continue;
        }
        if text.starts_with(['+', '-', ' ']) {
            return Err(error(
                n,
                format!("a file header or {HUNK_SYNTAX}; this line is outside every hunk (are the counts of the hunk above it right?)"),
                raw,
            ));
        }
    }
    if let Some(h) = hunk {
        return Err(ParseError {
            line: lines(body).count() + 1,
            expected: format!(
                "{} more old and {} more new lines for the hunk at line {}",
                h.old_left, h.new_left, h.header_line
            ),
            found: "the end of the patch".to_string(),
        });
    }
    if !seen_diff {
        let (line, found) = first_text.unwrap_or((1, ""));
        return Err(error(
            line,
            format!("a unified diff ('diff --git', '--- a/FILE' or {HUNK_SYNTAX})"),
            found,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_like_str_split() {
        for text in [
            "",
            "a",
            "\n",
            "a\nb",
            "a\n\nb\n",
            "0123456789abcdef\n0123456\n\x0a",
            "é\nü\u{2028}x\n",
        ] {
            let ours: Vec<&str> = lines(text).collect();
            let std: Vec<&str> = text.split('\n').collect();
            assert_eq!(ours, std, "{text:?}");
        }
        // Every newline position and length around the 8-byte blocks.
        let mut seed = 7u64;
        for len in 0..80 {
            let text: String = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ['a', '\n', ' ', '\u{e9}', '\u{a0a}'][(seed >> 60) as usize % 5]
                })
                .collect();
            assert_eq!(
                lines(&text).collect::<Vec<_>>(),
                text.split('\n').collect::<Vec<_>>(),
                "{text:?}"
            );
        }
        let long = "x".repeat(1000) + "\n" + &"y".repeat(13);
        assert_eq!(
            lines(&long).map(str::len).collect::<Vec<_>>(),
            vec![1000, 13]
        );
    }

    #[test]
    fn removed_line_starting_with_dashes_is_a_change_line() {
        let patch = "--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n---x\n+++y\n ctx\n";
        // header says 2 old lines: '---x' (removed) and ' ctx'; 2 new: '+++y' and ' ctx'
        assert_eq!(change_lines(patch).unwrap(), vec!["---x", "+++y"]);
    }

    #[test]
    fn blank_change_lines_are_skipped_and_whitespace_kept() {
        let patch = "@@ -1,2 +1,2 @@\n-  a \n-\t\n+  a\n+ \n";
        assert_eq!(change_lines(patch).unwrap(), vec!["-  a ", "+  a"]);
    }

    #[test]
    fn blank_means_what_trim_means() {
        for text in [
            "",
            " ",
            "\t\x0b\x0c\r",
            "\u{a0}",
            " \u{2028} ",
            "x",
            " x",
            "x ",
            "\u{a0}x",
            "x\u{a0}",
            "\x1f",
        ] {
            assert_eq!(is_blank(text), text.trim().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn hunk_without_count_means_one_line() {
        let patch = "--- a/f\n+++ b/f\n@@ -3 +3 @@\n-old\n+new\n";
        assert_eq!(change_lines(patch).unwrap(), vec!["-old", "+new"]);
    }

    #[test]
    fn broken_header_names_line() {
        let err = change_lines("--- a/f\n+++ b/f\n@@ -1,x +1 @@\n-a\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.expected.contains("hunk header"), "{err}");
    }

    #[test]
    fn absurd_hunk_counts_are_malformed() {
        let err = change_lines("@@ -1,1234567890 +1 @@\n-a\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert_eq!(
            parse_hunk_header("@@ -7,999999999 +1 @@"),
            Some((999_999_999, 1))
        );
    }

    #[test]
    fn short_hunk_is_an_error() {
        let err = change_lines("--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n-a\n+b\n").unwrap_err();
        assert_eq!(err.line, 6);
        assert!(err.found.contains("end of the patch"), "{err}");
    }

    #[test]
    fn extra_change_line_outside_hunk_is_an_error() {
        let err = change_lines("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n+c\n").unwrap_err();
        assert_eq!(err.line, 6);
    }

    #[test]
    fn prose_is_not_a_diff() {
        let err = change_lines("hello\nworld\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.expected.contains("unified diff"));
    }

    #[test]
    fn commit_message_preamble_and_signature_are_allowed() {
        let patch = "From abc\nSubject: fix\n\n- bullet in message\n---\n f | 2 +-\n\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n-- \n2.39.0\n";
        assert_eq!(change_lines(patch).unwrap(), vec!["-a", "+b"]);
    }
}
