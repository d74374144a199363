//! Which patch a stored trajectory is scored against: its P1 (a SERA T2 row's `target_patch`),
//! or a reference patch per instance (the gold `patch` of a SWE-bench instance).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::corpus::ImportEntry;
use crate::digest::sha256_hex;

/// Reference patches by instance id, each with the file it came from.
#[derive(Debug, Default)]
pub struct References {
    by_instance: HashMap<String, (Arc<str>, String, String)>,
    /// The files they were read from.
    pub files: Vec<PathBuf>,
}

impl References {
    pub fn len(&self) -> usize {
        self.by_instance.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_instance.is_empty()
    }

    fn insert(&mut self, instance: &str, patch: &str, shown: String) -> Result<()> {
        let sha = sha256_hex(patch.as_bytes());
        if let Some((_, old_sha, old_file)) = self.by_instance.get(instance) {
            if *old_sha != sha {
                bail!("{shown}: instance {instance:?} has another reference patch in {old_file}");
            }
            return Ok(());
        }
        self.by_instance
            .insert(instance.to_string(), (patch.into(), sha, shown));
        Ok(())
    }

    /// A SWE-bench instance object (`instance_id`, `patch`).
    fn insert_instance(&mut self, v: &Value, shown: String) -> Result<()> {
        let Some(obj) = v.as_object() else {
            bail!("{shown}: expected a SWE-bench instance object with `instance_id` and `patch`");
        };
        let id = obj
            .get("instance_id")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("{shown}: no `instance_id` string"))?;
        let patch = obj
            .get("patch")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("{shown}: no `patch` string (the gold patch)"))?;
        self.insert(id, patch, shown)
    }

    /// Reads `paths`: SWE-bench instance `.json` files (an object or a list of them), `.jsonl`
    /// files of instances, and `INSTANCE.patch` / `INSTANCE.diff` files; directories are
    /// searched for those.
    pub fn load(paths: &[PathBuf]) -> Result<References> {
        let mut refs = References::default();
        let wanted = |p: &Path| {
            let n = p.to_string_lossy();
            [".json", ".jsonl", ".patch", ".diff"]
                .iter()
                .any(|e| n.ends_with(e))
        };
        let files = crate::import::files_under(paths, wanted);
        for f in &files {
            let shown = f.display().to_string();
            let bytes =
                std::fs::read(f).with_context(|| format!("{shown}: cannot read the reference"))?;
            let name = f.file_name().unwrap_or_default().to_string_lossy();
            if name.ends_with(".patch") || name.ends_with(".diff") {
                let instance = name
                    .trim_end_matches(".patch")
                    .trim_end_matches(".diff")
                    .to_string();
                let text = String::from_utf8(bytes)
                    .map_err(|_| anyhow!("{shown}: the patch is not UTF-8"))?;
                refs.insert(&instance, &text, shown)?;
            } else if name.ends_with(".jsonl") {
                for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let at = format!("{shown}:{}", i + 1);
                    let v: Value = serde_json::from_slice(line)
                        .map_err(|e| anyhow!("{at}:{}: not valid JSON: {e}", e.column()))?;
                    refs.insert_instance(&v, at)?;
                }
            } else {
                let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
                    anyhow!("{shown}:{}:{}: not valid JSON: {e}", e.line(), e.column())
                })?;
                match v {
                    Value::Array(items) => {
                        for (i, it) in items.iter().enumerate() {
                            refs.insert_instance(it, format!("{shown}: [{i}]"))?;
                        }
                    }
                    v => refs.insert_instance(&v, shown)?,
                }
            }
        }
        refs.files = files;
        Ok(refs)
    }

    /// sha256 over sorted "instance patch-sha256" lines.
    pub fn digest(&self) -> String {
        let mut lines: Vec<String> = self
            .by_instance
            .iter()
            .map(|(k, (_, sha, _))| format!("{k} {sha}\n"))
            .collect();
        lines.sort();
        sha256_hex(lines.concat().as_bytes())
    }
}

/// What a stored trajectory's patch is scored against.
#[derive(Debug)]
pub enum Reference {
    /// The trajectory's own P1 (SERA T2 rows: `target_patch`).
    P1,
    /// Reference patches by instance id.
    Instances(References),
}

impl Reference {
    /// `p1`, or files and directories of reference patches.
    pub fn parse(specs: &[String]) -> Result<Reference> {
        match specs {
            [] => Ok(Reference::P1),
            [one] if one == "p1" => Ok(Reference::P1),
            files => {
                let paths: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
                let refs = References::load(&paths)?;
                if refs.is_empty() {
                    bail!("no reference patches found in {}", files.join(", "));
                }
                Ok(Reference::Instances(refs))
            }
        }
    }

    /// A short description for reports and manifests.
    pub fn describe(&self) -> String {
        match self {
            Reference::P1 => "p1".into(),
            Reference::Instances(r) => format!(
                "{} instances from {} files (sha256 {})",
                r.len(),
                r.files.len(),
                r.digest()
            ),
        }
    }
}

/// One patch to score against one reference, borrowed from its stored trajectory.
#[derive(Clone, Debug)]
pub struct Pair<'a> {
    pub import: &'a str,
    /// sha256 of (candidate sha256, reference sha256): the verdict's key.
    pub key: String,
    /// The candidate patch's blob id.
    pub candidate: &'a str,
    pub reference: ReferenceText<'a>,
}

/// Where a pair's reference text is: in memory (reference files), or the import's own
/// `target_patch`, read from the corpus only when the pair is scored.
#[derive(Clone, Debug)]
pub enum ReferenceText<'a> {
    Text(&'a str),
    /// A blob of the corpus.
    Blob(&'a str),
    /// The `target_patch` source field of an import (imports stored before the blob column).
    TargetPatchOf(&'a str),
}

/// Why a stored trajectory has no pair.
#[derive(Debug, Default, serde::Serialize)]
pub struct Unpaired {
    pub no_patch: usize,
    pub no_reference: usize,
}

pub fn pair_key(candidate_sha: &str, reference_sha: &str) -> String {
    let digest = Sha256::new()
        .chain_update(candidate_sha)
        .chain_update([0])
        .chain_update(reference_sha)
        .finalize();
    hex::encode(digest)
}

impl Reference {
    /// The pair of one stored trajectory, if it has one.
    pub fn pair_of<'a>(
        &'a self,
        e: &'a ImportEntry,
    ) -> std::result::Result<Pair<'a>, &'static str> {
        let Some(candidate) = e.patch.as_deref() else {
            return Err("no patch");
        };
        let (reference, reference_sha) = match self {
            Reference::P1 => match (&e.target_patch_blob, &e.target_patch_sha256) {
                (Some(blob), Some(sha)) => (ReferenceText::Blob(blob), sha.as_str()),
                (None, Some(sha)) => (ReferenceText::TargetPatchOf(&e.id), sha.as_str()),
                _ => return Err("no reference"),
            },
            Reference::Instances(refs) => {
                match e
                    .instance_id
                    .as_deref()
                    .and_then(|i| refs.by_instance.get(i))
                {
                    Some((p, sha, _)) => (ReferenceText::Text(p), sha.as_str()),
                    None => return Err("no reference"),
                }
            }
        };
        Ok(Pair {
            import: &e.id,
            key: pair_key(candidate, reference_sha),
            candidate,
            reference,
        })
    }

    /// The pairs of `entries`, in entry order, and how many had none.
    pub fn pairs<'a>(&'a self, entries: &'a [ImportEntry]) -> (Vec<Pair<'a>>, Unpaired) {
        let mut out = Vec::new();
        let mut un = Unpaired::default();
        for e in entries {
            match self.pair_of(e) {
                Ok(p) => out.push(p),
                Err("no patch") => un.no_patch += 1,
                Err(_) => un.no_reference += 1,
            }
        }
        (out, un)
    }
}
