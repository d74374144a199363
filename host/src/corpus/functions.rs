//! The Python function index: every `def` and `async def` of a file (methods and nested
//! functions included) with its `__qualname__`, found with Ruff's Python parser (the
//! RustPython team's published fork of `ruff_python_parser`). Ruff's hand-written parser
//! was picked over tree-sitter-python because it is several times faster on the CPython
//! standard library and, being a compiler front end, accepts exactly what CPython accepts
//! where tree-sitter rejected some valid files.

use rustpython_ruff_python_ast::statement_visitor::{walk_stmt, StatementVisitor};
use rustpython_ruff_python_ast::Stmt;
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PyFunction {
    /// Python's `__qualname__`: `Class.method`, `outer.<locals>.inner`.
    pub qualname: String,
    /// The `def` (or `async`) line after any decorators, 1-based, as Python's `ast` reports it.
    pub start_line: u32,
    /// The last line of the body, as `ast`'s `end_lineno`.
    pub end_line: u32,
    /// sha256 of the definition's source text (decorators excluded).
    pub body_sha256: String,
    pub is_async: bool,
    pub is_method: bool,
}

/// Indexes one Python file; `Err` says where it does not parse.
pub fn index_python(source: &[u8]) -> Result<Vec<PyFunction>, String> {
    let text = decode(source)?;
    let lines = LineIndex::new(source);
    let parsed = rustpython_ruff_python_parser::parse_module(&text).map_err(|e| {
        let (line, col) = lines.line_col(u32::from(e.location.start()) as usize);
        format!("syntax error at line {line}, column {col}: {}", e.error)
    })?;
    let mut collector = Collector {
        source,
        lines: &lines,
        scopes: vec![Scope {
            prefix: String::new(),
            is_class: false,
        }],
        out: Vec::new(),
    };
    collector.visit_body(&parsed.syntax().body);
    let mut out = collector.out;
    out.sort_by(|a, b| (a.start_line, &a.qualname).cmp(&(b.start_line, &b.qualname)));
    Ok(out)
}

/// The text the parser sees. Its byte offsets must equal the file's, because spans and
/// body hashes are taken from the raw bytes.
fn decode(source: &[u8]) -> Result<std::borrow::Cow<'_, str>, String> {
    match std::str::from_utf8(source) {
        Ok(s) => Ok(s.into()),
        Err(e) if declares_other_encoding(source) => {
            // A PEP 263 file in, say, latin-1: keep every ASCII byte where it is and stand
            // in '?' for the others, so the structure (all ASCII in such files) parses and
            // offsets still match the raw bytes.
            let _ = e;
            Ok(source
                .iter()
                .map(|&b| if b.is_ascii() { b as char } else { '?' })
                .collect::<String>()
                .into())
        }
        Err(e) => {
            let (line, col) = LineIndex::new(source).line_col(e.valid_up_to());
            Err(format!(
                "not UTF-8 at line {line}, column {col}, and no PEP 263 coding declaration"
            ))
        }
    }
}

/// PEP 263: `coding[:=]NAME` in a comment on line 1 or 2, naming something other than UTF-8.
fn declares_other_encoding(source: &[u8]) -> bool {
    source
        .split(|&b| b == b'\n')
        .take(2)
        .filter(|line| line.trim_ascii_start().starts_with(b"#"))
        .find_map(|line| {
            let at = line.windows(6).position(|w| w == b"coding")?;
            let rest = line[at + 6..]
                .strip_prefix(b":")
                .or(line[at + 6..].strip_prefix(b"="))?;
            let name: Vec<u8> = rest
                .trim_ascii_start()
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
                .map(u8::to_ascii_lowercase)
                .collect();
            Some(!name.is_empty() && !name.starts_with(b"utf-8") && !name.starts_with(b"utf8"))
        })
        .unwrap_or(false)
}

struct Scope {
    /// What names defined in this scope are prefixed with.
    prefix: String,
    is_class: bool,
}

struct Collector<'s> {
    source: &'s [u8],
    lines: &'s LineIndex,
    scopes: Vec<Scope>,
    out: Vec<PyFunction>,
}

impl<'a> StatementVisitor<'a> for Collector<'_> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        let (name, is_function) = match stmt {
            Stmt::FunctionDef(f) => (f.name.id.as_str(), true),
            Stmt::ClassDef(c) => (c.name.id.as_str(), false),
            _ => return walk_stmt(self, stmt),
        };
        let scope = self
            .scopes
            .last()
            .expect("the module scope is never popped");
        let qualname = format!("{}{name}", scope.prefix);
        if let Stmt::FunctionDef(f) = stmt {
            let name_at = u32::from(f.name.range.start()) as usize;
            let def_at = keyword_before(self.source, name_at, b"def");
            let start = if f.is_async {
                keyword_before(self.source, def_at, b"async")
            } else {
                def_at
            };
            let end = u32::from(f.range.end()) as usize;
            self.out.push(PyFunction {
                start_line: self.lines.line_col(start).0,
                end_line: self.lines.line_col(end.saturating_sub(1).max(start)).0,
                body_sha256: hex::encode(Sha256::digest(&self.source[start..end])),
                is_async: f.is_async,
                is_method: scope.is_class,
                qualname: qualname.clone(),
            });
        }
        self.scopes.push(Scope {
            prefix: if is_function {
                format!("{qualname}.<locals>.")
            } else {
                format!("{qualname}.")
            },
            is_class: !is_function,
        });
        walk_stmt(self, stmt);
        self.scopes.pop();
    }
}

/// Where `keyword` starts, scanning back from `pos` over blanks and backslash continuations;
/// `pos` itself when the parser's spans and the bytes disagree (they should not).
fn keyword_before(source: &[u8], pos: usize, keyword: &[u8]) -> usize {
    let mut i = pos;
    loop {
        match source[..i].last() {
            Some(b' ' | b'\t' | b'\x0c') => i -= 1,
            Some(b'\n') if source[..i - 1].ends_with(b"\\") => i -= 2,
            Some(b'\n') if source[..i - 1].ends_with(b"\\\r") => i -= 3,
            Some(b'\r') if source[..i - 1].ends_with(b"\\") => i -= 2,
            _ => break,
        }
    }
    if source[..i].ends_with(keyword) {
        i - keyword.len()
    } else {
        pos
    }
}

/// Line starts of a file, with `\n`, `\r\n` and a lone `\r` all ending a line as in Python.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(source: &[u8]) -> Self {
        let mut starts = vec![0];
        for at in memchr::memchr2_iter(b'\n', b'\r', source) {
            if source[at] == b'\r' && source.get(at + 1) == Some(&b'\n') {
                continue;
            }
            starts.push(at + 1);
        }
        LineIndex { starts }
    }

    /// 1-based line and column (in bytes) of a byte offset.
    fn line_col(&self, offset: usize) -> (u32, u32) {
        let line = self.starts.partition_point(|&s| s <= offset);
        let col = offset - self.starts[line - 1] + 1;
        (line as u32, col as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(src: &[u8]) -> Vec<(String, u32, u32, bool, bool)> {
        index_python(src)
            .unwrap()
            .into_iter()
            .map(|f| {
                (
                    f.qualname,
                    f.start_line,
                    f.end_line,
                    f.is_async,
                    f.is_method,
                )
            })
            .collect()
    }

    #[test]
    fn qualnames_flags_and_lines() {
        let src = b"import x\n\n@deco\ndef f(a):\n    def g():\n        pass\n    class C:\n        async def m(self):\n            return 1\n    return g\n\nclass K:\n    def meth(self): ...\n";
        let s = |q: &str, a, b, x, m| (q.to_string(), a, b, x, m);
        assert_eq!(
            summary(src),
            vec![
                s("f", 4, 10, false, false),
                s("f.<locals>.g", 5, 6, false, false),
                s("f.<locals>.C.m", 8, 9, true, true),
                s("K.meth", 13, 13, false, true),
            ]
        );
    }

    #[test]
    fn odd_layouts_keep_python_line_numbers() {
        // Backslash continuation between `async`, `def` and the name, CR line ends,
        // functions inside if/try/with/match bodies. Expected lines are what CPython 3.11's
        // `ast` gives for this source.
        let src = b"async \\\ndef \\\n  a(): pass\r\rif x:\r\n    def b(): pass\ntry:\n    def c(): pass\nexcept E:\n    def d(): pass\nmatch v:\n    case 1:\n        def e(): pass\n";
        let got: Vec<(String, u32)> = summary(src).into_iter().map(|f| (f.0, f.1)).collect();
        let want: Vec<(String, u32)> = [("a", 1), ("b", 6), ("c", 8), ("d", 10), ("e", 13)]
            .iter()
            .map(|(q, l)| (q.to_string(), *l))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn body_hash_covers_def_to_end_without_decorators() {
        let src = b"@d\ndef f():\n    return 1\n";
        let f = &index_python(src).unwrap()[0];
        assert_eq!(
            f.body_sha256,
            hex::encode(Sha256::digest(b"def f():\n    return 1"))
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = index_python(b"def ok():\n    pass\n\ndef broken(:\n    pass\n").unwrap_err();
        assert!(err.starts_with("syntax error at line 4"), "{err}");
    }

    #[test]
    fn encodings_other_than_utf8() {
        let latin1 = b"# -*- coding: latin-1 -*-\ns = '\xe9t\xe9'\ndef f():\n    return s\n";
        assert_eq!(summary(latin1)[0].0, "f");
        let err = index_python(b"x = 1\ns = '\xe9'\n").unwrap_err();
        assert!(err.starts_with("not UTF-8 at line 2, column 6"), "{err}");
    }
}
