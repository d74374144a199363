//! Decontamination against SWE-bench-style instances: a row is contaminated when its function
//! is one an instance's gold or test patch touches, when it was made from the instance itself
//! (an imported trajectory with its `instance_id`), or when it shares an n-gram of words with
//! a problem statement or with the lines a gold patch adds.
//!
//! Only the lines a gold patch *adds* are its n-grams: its removed and context lines are the
//! repository's own code, which every row about that file quotes; the function rule covers
//! those.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::facts::FunctionRef;

fn d_true() -> bool {
    true
}
fn d_ngram() -> usize {
    13
}

/// What to do with a contaminated row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Leave it out of the shards (counted and listed in the card and the report).
    #[default]
    Drop,
    /// Keep it, with `metadata.contamination` naming the instances.
    Flag,
}

/// `[decontaminate]` in `pipeline.toml` and `shards.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecontaminateSection {
    /// Instance files (JSON, a JSON array, or JSONL), relative to the file that names them.
    pub against: Vec<String>,
    #[serde(default)]
    pub action: Action,
    /// Leave out of the selection, before any rollout, the functions the patches touch.
    #[serde(default = "d_true")]
    pub skip_functions: bool,
    /// Words per n-gram.
    #[serde(default = "d_ngram")]
    pub ngram: usize,
    /// sha256 of each file of `against`: filled in when the config is loaded, so the manifest
    /// names the exact instances a dataset was checked against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sha256: Vec<String>,
}

impl DecontaminateSection {
    /// Makes `against` absolute (relative to `base`), checks that the files parse and records
    /// their hashes.
    pub fn resolve(&mut self, base: &Path, shown: &str) -> Result<()> {
        if self.against.is_empty() {
            bail!("{shown}: `decontaminate.against`: no instance files");
        }
        if self.ngram < 2 {
            bail!("{shown}: `decontaminate.ngram`: must be at least 2");
        }
        self.sha256.clear();
        for a in self.against.iter_mut() {
            let p = Path::new(a.as_str());
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            };
            let bytes = std::fs::read(&p).with_context(|| {
                format!(
                    "{shown}: `decontaminate.against`: cannot read {}",
                    p.display()
                )
            })?;
            parse_instances(&bytes, &p.display().to_string())?;
            self.sha256.push(crate::digest::sha256_hex(&bytes));
            *a = p.display().to_string();
        }
        Ok(())
    }

    /// The instances of `against`, checked against the recorded hashes (an audit must check
    /// against the same instances the run did).
    pub fn load(&self) -> Result<Index> {
        let mut all = Vec::new();
        for (i, a) in self.against.iter().enumerate() {
            let bytes = std::fs::read(a).with_context(|| format!("{a}: cannot read"))?;
            if let Some(want) = self.sha256.get(i) {
                let got = crate::digest::sha256_hex(&bytes);
                if &got != want {
                    bail!("{a}: the instance file changed since the config was loaded (sha256 {got}, recorded {want})");
                }
            }
            all.extend(parse_instances(&bytes, a)?);
        }
        Ok(Index::build(all, self.ngram))
    }
}

/// One SWE-bench-style instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub instance_id: String,
    pub repo: String,
    pub patch: String,
    pub problem_statement: String,
    pub test_patch: String,
}

/// Instances from a JSON object, a JSON array of them, or JSON lines.
pub fn parse_instances(bytes: &[u8], shown: &str) -> Result<Vec<Instance>> {
    let text = std::str::from_utf8(bytes).with_context(|| format!("{shown}: not UTF-8"))?;
    let trimmed = text.trim_start();
    let mut out = Vec::new();
    if trimmed.starts_with('[') {
        let v: Vec<Value> = serde_json::from_str(text)
            .with_context(|| format!("{shown}: not a JSON array of instances"))?;
        for (i, x) in v.iter().enumerate() {
            out.push(instance(x, &format!("{shown}: instance #{i}"))?);
        }
    } else if !shown.ends_with(".jsonl")
        && trimmed.starts_with('{')
        && serde_json::from_str::<Value>(text).is_ok()
    {
        out.push(instance(
            &serde_json::from_str(text)?,
            &format!("{shown}: the instance"),
        )?);
    } else {
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let x: Value = serde_json::from_str(line).with_context(|| {
                format!(
                    "{shown}: line {}: not a JSON object (expected one instance per line)",
                    n + 1
                )
            })?;
            out.push(instance(&x, &format!("{shown}: line {}", n + 1))?);
        }
    }
    if out.is_empty() {
        bail!("{shown}: no instances");
    }
    Ok(out)
}

fn instance(v: &Value, at: &str) -> Result<Instance> {
    let field = |k: &str, required: bool| -> Result<String> {
        match v.get(k) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) if !required => Ok(String::new()),
            None | Some(Value::Null) => bail!("{at}: no `{k}` (expected a string)"),
            Some(other) => bail!("{at}: `{k}` is {other}, expected a string"),
        }
    };
    Ok(Instance {
        instance_id: field("instance_id", true)?,
        repo: field("repo", true)?,
        patch: field("patch", true)?,
        problem_statement: field("problem_statement", true)?,
        test_patch: field("test_patch", false)?,
    })
}

/// A repository's name for matching: its last component (after `/` or `:`), lower case,
/// without `.git`. `django/django`, a checkout named `django` and `pip:Django==5.0`'s `django`
/// all match.
pub fn repo_key(repo: &str) -> String {
    let last = repo
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(repo);
    let last = last.split("==").next().unwrap_or(last);
    last.trim_end_matches(".git").to_ascii_lowercase()
}

/// What one file's diff touches: old-side lines removed, insertion points, and the names of
/// functions whose `def` line changed or that a hunk's header names.
#[derive(Debug, Default)]
struct Touch {
    instance: u32,
    removed: Vec<u32>,
    inserted_before: Vec<u32>,
    names: BTreeSet<String>,
}

fn def_name(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let t = t.strip_prefix("async ").unwrap_or(t);
    let rest = t
        .strip_prefix("def ")
        .or_else(|| t.strip_prefix("class "))?;
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// Per file path (new side, `a/`/`b/` stripped): what `patch` touches.
fn touches(patch: &str, instance: u32) -> Vec<(String, Touch)> {
    let mut out: Vec<(String, Touch)> = Vec::new();
    let mut old_line = 0u32;
    let mut in_hunk = false;
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git ") {
            let path = rest.rsplit(" b/").next().unwrap_or(rest).trim().to_string();
            out.push((
                path,
                Touch {
                    instance,
                    ..Touch::default()
                },
            ));
            in_hunk = false;
            continue;
        }
        if !in_hunk && line.starts_with("+++ ") {
            let p = line[4..].trim();
            if p != "/dev/null" {
                let p = p.strip_prefix("b/").unwrap_or(p).to_string();
                match out.last_mut() {
                    Some(last) => last.0 = p,
                    None => out.push((
                        p,
                        Touch {
                            instance,
                            ..Touch::default()
                        },
                    )),
                }
            }
            continue;
        }
        if line.starts_with("--- ") && !in_hunk {
            continue;
        }
        let Some((_, t)) = out.last_mut() else {
            continue;
        };
        if let Some(h) = line.strip_prefix("@@ -") {
            in_hunk = true;
            old_line = h
                .split([',', ' '])
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if let Some(ctx) = h.split("@@").nth(1) {
                if let Some(n) = def_name(ctx) {
                    t.names.insert(n.to_string());
                }
            }
            continue;
        }
        if !in_hunk {
            continue;
        }
        match line.as_bytes().first() {
            Some(b'-') => {
                t.removed.push(old_line);
                if let Some(n) = def_name(&line[1..]) {
                    t.names.insert(n.to_string());
                }
                old_line += 1;
            }
            Some(b'+') => {
                t.inserted_before.push(old_line);
                if let Some(n) = def_name(&line[1..]) {
                    t.names.insert(n.to_string());
                }
            }
            Some(b'\\') => {}
            _ => old_line += 1,
        }
    }
    out
}

/// The lines a patch adds (without their `+`).
fn added_lines(patch: &str) -> String {
    let mut s = String::new();
    for l in patch.lines() {
        if l.starts_with('+') && !l.starts_with("+++ ") {
            s.push_str(&l[1..]);
            s.push('\n');
        }
    }
    s
}

/// Lower-case words of letters, digits and `_`.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
}

/// The hashes of `text`'s n-grams of words.
pub fn ngram_hashes(text: &str, n: usize) -> Vec<u64> {
    let w: Vec<String> = words(text).collect();
    if w.len() < n {
        return Vec::new();
    }
    w.windows(n)
        .map(|g| {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            for x in g {
                h.update(x.as_bytes());
                h.update(&[0x1f]);
            }
            h.digest()
        })
        .collect()
}

/// Why a row is contaminated by one instance.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Hit {
    pub instance: String,
    /// `function`, `instance`, or `ngram`.
    pub why: String,
}

/// The instances, ready to be matched against functions and text.
pub struct Index {
    ids: Vec<String>,
    /// (repository key, path) → what each instance's patches touch there.
    touched: HashMap<(String, String), Vec<Touch>>,
    grams: HashMap<u64, Vec<u32>>,
    by_id: BTreeSet<String>,
    n: usize,
}

impl Index {
    pub fn build(instances: Vec<Instance>, n: usize) -> Index {
        let mut idx = Index {
            ids: Vec::new(),
            touched: HashMap::new(),
            grams: HashMap::new(),
            by_id: BTreeSet::new(),
            n,
        };
        for (i, inst) in instances.iter().enumerate() {
            let i = i as u32;
            idx.ids.push(inst.instance_id.clone());
            idx.by_id.insert(inst.instance_id.clone());
            let key = repo_key(&inst.repo);
            for p in [&inst.patch, &inst.test_patch] {
                for (path, t) in touches(p, i) {
                    idx.touched.entry((key.clone(), path)).or_default().push(t);
                }
            }
            let text = format!("{}\n{}", inst.problem_statement, added_lines(&inst.patch));
            for h in ngram_hashes(&text, n) {
                let list = idx.grams.entry(h).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
        idx
    }

    pub fn instances(&self) -> usize {
        self.ids.len()
    }

    /// The instances whose gold or test patch touches `f` of `repo`.
    pub fn function_hits(&self, repo: &str, f: &FunctionRef) -> Vec<Hit> {
        let Some(touches) = self
            .touched
            .get(&(repo_key(repo), f.path.trim_start_matches("./").to_string()))
        else {
            return Vec::new();
        };
        let name = f.qualname.rsplit('.').next().unwrap_or(&f.qualname);
        let mut hits = BTreeSet::new();
        for t in touches {
            let by_line = t
                .removed
                .iter()
                .any(|&l| f.start_line <= l && l <= f.end_line)
                || t.inserted_before
                    .iter()
                    .any(|&l| f.start_line < l && l <= f.end_line);
            if by_line || t.names.contains(name) {
                hits.insert(Hit {
                    instance: self.ids[t.instance as usize].clone(),
                    why: "function".into(),
                });
            }
        }
        hits.into_iter().collect()
    }

    /// The instances `text` shares an n-gram with.
    pub fn text_hits(&self, text: &str) -> Vec<Hit> {
        let mut found = BTreeSet::new();
        for h in ngram_hashes(text, self.n) {
            if let Some(list) = self.grams.get(&h) {
                found.extend(list.iter().copied());
            }
        }
        found
            .into_iter()
            .map(|i| Hit {
                instance: self.ids[i as usize].clone(),
                why: "ngram".into(),
            })
            .collect()
    }

    /// Every instance a row overlaps, once each (the first reason in `Hit` order): by its
    /// function (pipeline rows), by the instance it was made from (imported rows), and by the
    /// n-grams of its messages and patch.
    pub fn row_hits(
        &self,
        function: Option<(&str, &FunctionRef)>,
        instance_id: Option<&str>,
        messages: &[crate::trajectory::Message],
        patch: &str,
    ) -> Vec<Hit> {
        let mut hits = Vec::new();
        if let Some((repo, f)) = function {
            hits.extend(self.function_hits(repo, f));
        }
        hits.extend(self.instance_hit(instance_id));
        hits.extend(self.text_hits(&format!("{}\n{patch}", super::facts::row_text(messages))));
        hits.sort();
        hits.dedup_by(|a, b| a.instance == b.instance);
        hits
    }

    /// A row made from one of the instances themselves.
    pub fn instance_hit(&self, instance_id: Option<&str>) -> Option<Hit> {
        let id = instance_id?;
        self.by_id.contains(id).then(|| Hit {
            instance: id.to_string(),
            why: "instance".into(),
        })
    }
}

/// What decontamination found, for the card, the report and the summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub files: Vec<String>,
    pub sha256: Vec<String>,
    pub instances: usize,
    pub action: Action,
    pub ngram: usize,
    /// Functions left out of the selection, per instance.
    pub skipped_functions: BTreeMap<String, Vec<String>>,
    /// Rows dropped (or flagged), per instance, with why.
    pub rows: BTreeMap<String, BTreeMap<String, u64>>,
    pub rows_total: u64,
}

impl Summary {
    pub fn new(section: &DecontaminateSection, index: &Index) -> Summary {
        Summary {
            files: section
                .against
                .iter()
                .map(|a| {
                    Path::new(a)
                        .file_name()
                        .map_or(a.clone(), |n| n.to_string_lossy().into_owned())
                })
                .collect(),
            sha256: section.sha256.clone(),
            instances: index.instances(),
            action: section.action,
            ngram: section.ngram,
            ..Summary::default()
        }
    }

    pub fn add_row(&mut self, hits: &[Hit]) {
        if hits.is_empty() {
            return;
        }
        self.rows_total += 1;
        for h in hits {
            *self
                .rows
                .entry(h.instance.clone())
                .or_default()
                .entry(h.why.clone())
                .or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "diff --git a/pkg/mod.py b/pkg/mod.py\n--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -10,4 +10,5 @@ class Thing:\n     def helper(self):\n-        return 1\n+        x = 2\n+        return x\n \n";

    fn f(path: &str, q: &str, s: u32, e: u32) -> FunctionRef {
        FunctionRef {
            path: path.into(),
            qualname: q.into(),
            start_line: s,
            end_line: e,
        }
    }

    fn index() -> Index {
        Index::build(
            vec![Instance {
                instance_id: "o__r-1".into(),
                repo: "owner/Repo".into(),
                patch: PATCH.into(),
                problem_statement: "one two three four five six seven eight nine ten eleven twelve thirteen fourteen".into(),
                test_patch: String::new(),
            }],
            13,
        )
    }

    #[test]
    fn a_function_is_touched_by_its_lines_and_not_by_its_neighbours() {
        let idx = index();
        // Line 11 (`return 1`) is removed: inside 10..=12, outside 1..=9 and 13..=20.
        assert_eq!(
            idx.function_hits("repo", &f("pkg/mod.py", "Thing.helper", 10, 12))
                .len(),
            1
        );
        assert!(idx
            .function_hits("repo", &f("pkg/mod.py", "Thing.other", 1, 9))
            .is_empty());
        assert!(idx
            .function_hits("repo", &f("pkg/mod.py", "Thing.later", 13, 20))
            .is_empty());
        assert!(idx
            .function_hits("other", &f("pkg/mod.py", "Thing.helper", 10, 12))
            .is_empty());
        // The hunk header names `Thing` (a class): its methods are not matched by name.
        assert!(idx
            .function_hits("repo", &f("pkg/other.py", "Thing.helper", 10, 12))
            .is_empty());
    }

    #[test]
    fn text_hits_need_a_whole_ngram_in_any_case_and_spacing() {
        let idx = index();
        assert_eq!(
            idx.text_hits(
                "ONE two, three-four five six seven eight nine ten eleven twelve THIRTEEN"
            )
            .len(),
            1
        );
        assert!(idx
            .text_hits("one two three four five six seven eight nine ten eleven twelve")
            .is_empty());
    }

    #[test]
    fn bad_instance_files_name_the_line_and_the_field() {
        let e = parse_instances(b"{\"instance_id\": \"a\", \"repo\": \"r\", \"patch\": \"\", \"problem_statement\": \"\"}\n{\"instance_id\": 3}\n", "x.jsonl")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.jsonl: line 2") && e.contains("instance_id"),
            "{e}"
        );
        let e = parse_instances(b"{\"a\": 1}\nnot json\n", "y.jsonl").unwrap_err();
        assert!(format!("{e:#}").contains("y.jsonl: line 1"), "{e:#}");
    }

    #[test]
    fn repo_keys_match_across_spellings() {
        assert_eq!(repo_key("django/django"), "django");
        assert_eq!(repo_key("pip:Django==5.0"), "django");
        assert_eq!(repo_key("/src/checkouts/django.git"), "django");
        assert_eq!(repo_key("python-stdlib:json"), "json");
    }
}
