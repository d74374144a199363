//! `host/src` is in layers that point one way: no top module imports one that imports it back,
//! and no file does either. Every file is parsed (`syn`), every `use` tree and every path in it
//! is resolved to the file that defines what it names (through `mod.rs` re-exports), and the
//! pairs of files, and of top modules, that reach each other are the failures. Paths inside
//! macro calls are not seen (they are not parsed as Rust), and glob re-exports (`pub use x::*`,
//! none in `host/src`) are not followed: a name through one counts as the re-exporting file's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use syn::visit::Visit;

/// A module by its path from the crate root (`[]` is `lib.rs`).
type Module = Vec<String>;

struct Crate {
    files: BTreeMap<Module, syn::File>,
}

fn module_of(rel: &Path) -> Module {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn load(src: &Path) -> Crate {
    let mut files = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(src).unwrap().to_path_buf();
            // Binaries are not layers of the library.
            if rel.starts_with("bin") || rel == Path::new("main.rs") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                let file =
                    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                files.insert(module_of(&rel), file);
            }
        }
    }
    Crate { files }
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// The paths a file uses, each with the module (inline modules included) it is written in.
#[derive(Default)]
struct Uses {
    inline: Vec<String>,
    paths: Vec<(Vec<String>, Vec<String>)>,
}

impl Uses {
    fn push_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.push_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix.clone();
                if n.ident != "self" {
                    full.push(n.ident.to_string());
                }
                self.paths.push((self.inline.clone(), full));
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                full.push(r.ident.to_string());
                self.paths.push((self.inline.clone(), full));
            }
            syn::UseTree::Glob(_) => self.paths.push((self.inline.clone(), prefix.clone())),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.push_tree(prefix, t);
                }
            }
        }
    }
}

impl<'a> Visit<'a> for Uses {
    fn visit_item_mod(&mut self, m: &'a syn::ItemMod) {
        if is_test_only(&m.attrs) {
            return;
        }
        self.inline.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.inline.pop();
    }
    fn visit_item_fn(&mut self, f: &'a syn::ItemFn) {
        if !is_test_only(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }
    fn visit_item_impl(&mut self, i: &'a syn::ItemImpl) {
        if !is_test_only(&i.attrs) {
            syn::visit::visit_item_impl(self, i);
        }
    }
    fn visit_item_use(&mut self, u: &'a syn::ItemUse) {
        if !is_test_only(&u.attrs) {
            self.push_tree(&mut Vec::new(), &u.tree);
        }
    }
    fn visit_path(&mut self, p: &'a syn::Path) {
        if p.segments.len() > 1 {
            let segs = p.segments.iter().map(|s| s.ident.to_string()).collect();
            self.paths.push((self.inline.clone(), segs));
        }
        syn::visit::visit_path(self, p);
    }
}

impl Crate {
    fn is_module(&self, m: &[String]) -> bool {
        self.files.contains_key(m)
    }

    /// Child modules (files) of `m`.
    fn has_child(&self, m: &[String], name: &str) -> bool {
        let mut c = m.to_vec();
        c.push(name.to_string());
        self.is_module(&c)
    }

    /// The absolute path `segs` means when written in module `at`; `None` for other crates.
    fn absolute(&self, at: &[String], segs: &[String]) -> Option<Vec<String>> {
        let first = segs.first()?;
        let (mut base, rest) = match first.as_str() {
            "crate" => (Vec::new(), &segs[1..]),
            "self" => (at.to_vec(), &segs[1..]),
            "super" => {
                let mut base = at.to_vec();
                let mut i = 0;
                while segs.get(i).is_some_and(|s| s == "super") {
                    base.pop();
                    i += 1;
                }
                (base, &segs[i..])
            }
            name if self.has_child(at, name) => (at.to_vec(), segs),
            _ => return None,
        };
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The file that defines what `abs` names: its longest module prefix, or, when that is a
    /// module whose file re-exports the name, the file it re-exports it from.
    fn defining_file(&self, abs: &[String], depth: u32) -> Option<Module> {
        let n = (0..=abs.len()).rev().find(|&n| self.is_module(&abs[..n]))?;
        let module = abs[..n].to_vec();
        let Some(name) = abs.get(n) else {
            return Some(module);
        };
        if depth < 4 {
            if let Some(target) = self.reexport(&module, name) {
                if let Some(f) = self.defining_file(&target, depth + 1) {
                    return Some(f);
                }
            }
        }
        Some(module)
    }

    /// Where `module`'s file takes `name` from, when it re-exports it (`pub use …::name`).
    fn reexport(&self, module: &Module, name: &str) -> Option<Vec<String>> {
        let file = &self.files[module];
        for item in &file.items {
            let syn::Item::Use(u) = item else { continue };
            if matches!(u.vis, syn::Visibility::Inherited) {
                continue;
            }
            let mut found = Uses::default();
            found.push_tree(&mut Vec::new(), &u.tree);
            for (_, path) in found.paths {
                if path.last().is_some_and(|l| l == name) {
                    if let Some(abs) = self.absolute(module, &path) {
                        return Some(abs);
                    }
                }
            }
        }
        None
    }

    /// file -> the files it uses.
    fn edges(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for (module, file) in &self.files {
            let mut uses = Uses::default();
            for item in &file.items {
                uses.visit_item(item);
            }
            for (inline, segs) in &uses.paths {
                let mut at = module.clone();
                at.extend(inline.iter().cloned());
                let Some(abs) = self.absolute(&at, segs) else {
                    continue;
                };
                let Some(target) = self.defining_file(&abs, 0) else {
                    continue;
                };
                if &target != module {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
        edges
    }
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "lib.rs".into()
    } else {
        m.join("::")
    }
}

/// Pairs of files that use each other, and of top modules that do (with the file edges behind
/// each direction).
fn mutual(c: &Crate) -> (Vec<String>, Vec<String>) {
    let edges = c.edges();
    let mut files = Vec::new();
    for (a, targets) in &edges {
        for b in targets {
            if a < b && edges.get(b).is_some_and(|t| t.contains(a)) {
                files.push(format!("{} <-> {}", name(a), name(b)));
            }
        }
    }
    let mut top: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (a, targets) in &edges {
        for b in targets {
            let (Some(ta), Some(tb)) = (a.first(), b.first()) else {
                continue;
            };
            if ta != tb {
                top.entry((ta.clone(), tb.clone()))
                    .or_default()
                    .push(format!("{} -> {}", name(a), name(b)));
            }
        }
    }
    let mut tops = Vec::new();
    for ((a, b), why) in &top {
        if a < b {
            if let Some(back) = top.get(&(b.clone(), a.clone())) {
                tops.push(format!(
                    "{a} <-> {b}: {} / {}",
                    why.join(", "),
                    back.join(", ")
                ));
            }
        }
    }
    (tops, files)
}

#[test]
fn host_src_has_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let c = load(&src);
    assert!(c.files.len() > 100, "{} files read", c.files.len());
    let edges: usize = c.edges().values().map(BTreeSet::len).sum();
    assert!(
        edges > 300,
        "only {edges} file edges found: the reader is broken"
    );
    let (tops, files) = mutual(&c);
    assert!(
        tops.is_empty(),
        "top modules that import each other:\n{}",
        tops.join("\n")
    );
    assert!(
        files.is_empty(),
        "files that import each other:\n{}",
        files.join("\n")
    );
}

/// The reader finds the cycles it is there to find: between siblings, through a re-export of
/// `mod.rs`, and between a `mod.rs` and its own file; not where none is.
#[test]
fn the_check_finds_planted_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "lib.rs",
        "pub mod a;\npub mod b;\npub mod x;\npub mod clean;\n",
    );
    write("a.rs", "use crate::b::B;\npub struct A(pub Option<B>);\n");
    write(
        "b.rs",
        "pub struct B;\npub fn f() -> crate::x::Y { crate::x::Y(super::a::A(None).0.is_some()) }\n",
    );
    write("x/mod.rs", "mod y;\npub use y::Y;\npub struct X;\n");
    write(
        "x/y.rs",
        "pub struct Y(pub bool);\nfn g() -> super::X { super::X }\n",
    );
    write("clean/mod.rs", "mod low;\nmod high;\npub use high::H;\n");
    write("clean/low.rs", "pub struct L;\n");
    write(
        "clean/high.rs",
        "use super::low::L;\npub struct H(pub L);\n",
    );
    let (tops, files) = mutual(&load(dir.path()));
    assert_eq!(
        files,
        vec!["a <-> b".to_string(), "x <-> x::y".to_string()],
        "{tops:?}"
    );
    assert_eq!(tops.len(), 1, "{tops:?}");
    assert!(tops[0].starts_with("a <-> b"), "{tops:?}");
}
