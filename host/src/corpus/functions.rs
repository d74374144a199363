//! The Python function index: every `def` and `async def` of a file (methods and nested
//! functions included) with its `__qualname__`, found with tree-sitter's Python grammar.

use sha2::{Digest, Sha256};
use tree_sitter::{Node, Parser};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PyFunction {
    /// Python's `__qualname__`: `Class.method`, `outer.<locals>.inner`.
    pub qualname: String,
    /// The `def` line (after any decorators), 1-based, as Python's `ast` reports it.
    pub start_line: u32,
    pub end_line: u32,
    /// sha256 of the definition's source text (decorators excluded).
    pub body_sha256: String,
    pub is_async: bool,
    pub is_method: bool,
}

struct Scope {
    /// What names defined in this scope are prefixed with.
    prefix: String,
    is_class: bool,
}

/// Indexes one Python file; `Err` says where it does not parse.
pub fn index_python(source: &[u8]) -> Result<Vec<PyFunction>, String> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .map_err(|e| format!("tree-sitter Python grammar: {e}"))?;
    let tree = parser
        .parse(source, None)
        .ok_or_else(|| "the parser gave up".to_string())?;
    let root = tree.root_node();
    if root.has_error() {
        return Err(match first_error(root) {
            Some(n) => format!(
                "syntax error at line {}, column {}",
                n.start_position().row + 1,
                n.start_position().column + 1
            ),
            None => "syntax error".to_string(),
        });
    }
    let mut scopes = vec![Scope {
        prefix: String::new(),
        is_class: false,
    }];
    let mut out = Vec::new();
    // Depth-first with an explicit stack: deeply nested code must not overflow ours.
    let mut stack: Vec<(Node, usize)> = vec![(root, 0)];
    while let Some((node, scope)) = stack.pop() {
        let mut child_scope = scope;
        match node.kind() {
            "function_definition" | "class_definition" => {
                let name = node
                    .child_by_field_name("name")
                    .and_then(|n| n.utf8_text(source).ok())
                    .unwrap_or("<unnamed>");
                let qualname = format!("{}{name}", scopes[scope].prefix);
                let is_function = node.kind() == "function_definition";
                if is_function {
                    out.push(PyFunction {
                        start_line: node.start_position().row as u32 + 1,
                        end_line: node.end_position().row as u32 + 1,
                        body_sha256: hex::encode(Sha256::digest(&source[node.byte_range()])),
                        is_async: node.child(0).is_some_and(|c| c.kind() == "async"),
                        is_method: scopes[scope].is_class,
                        qualname: qualname.clone(),
                    });
                }
                scopes.push(Scope {
                    prefix: if is_function {
                        format!("{qualname}.<locals>.")
                    } else {
                        format!("{qualname}.")
                    },
                    is_class: !is_function,
                });
                child_scope = scopes.len() - 1;
            }
            _ => {}
        }
        let mut cursor = node.walk();
        for child in node.named_children(&mut cursor) {
            stack.push((child, child_scope));
        }
    }
    out.sort_by(|a, b| (a.start_line, &a.qualname).cmp(&(b.start_line, &b.qualname)));
    Ok(out)
}

fn first_error(root: Node) -> Option<Node> {
    let mut stack = vec![root];
    let mut best: Option<Node> = None;
    while let Some(n) = stack.pop() {
        if n.is_error() || n.is_missing() {
            if best.is_none_or(|b| n.start_byte() < b.start_byte()) {
                best = Some(n);
            }
            continue;
        }
        if n.has_error() {
            let mut cursor = n.walk();
            stack.extend(n.children(&mut cursor));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualnames_flags_and_lines() {
        let src = b"import x\n\n@deco\ndef f(a):\n    def g():\n        pass\n    class C:\n        async def m(self):\n            return 1\n    return g\n\nclass K:\n    def meth(self): ...\n";
        let fs = index_python(src).unwrap();
        let names: Vec<(&str, u32, u32, bool, bool)> = fs
            .iter()
            .map(|f| {
                (
                    f.qualname.as_str(),
                    f.start_line,
                    f.end_line,
                    f.is_async,
                    f.is_method,
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("f", 4, 10, false, false),
                ("f.<locals>.g", 5, 6, false, false),
                ("f.<locals>.C.m", 8, 9, true, true),
                ("K.meth", 13, 13, false, true),
            ]
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = index_python(b"def ok():\n    pass\n\ndef broken(:\n    pass\n").unwrap_err();
        assert!(err.starts_with("syntax error at line 4"), "{err}");
    }
}
