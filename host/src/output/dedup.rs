//! Near-duplicate rows: MinHash signatures of each row's patch and of its assistant text
//! (word shingles), LSH bands to find candidate pairs, a Jaccard threshold on the signatures,
//! and one row kept per cluster (the best r, then the best truncation ratio, then the smallest
//! row id): deterministic for the same rows and settings.
//!
//! Shingles are hashed with xxh3 (the `xxhash-rust` crate); the k permutations are
//! multiply-shift hashes of that value, k multiplications per shingle instead of k hashes.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::decontam::words;

fn d_threshold() -> f64 {
    0.8
}
fn d_permutations() -> usize {
    128
}
fn d_shingle() -> usize {
    5
}
fn d_on() -> Vec<String> {
    vec!["patch".into(), "text".into()]
}

/// `[dedup]` in `pipeline.toml` and `shards.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupSection {
    /// Two rows are near-duplicates when the estimated Jaccard similarity of their patches or
    /// of their assistant texts is at least this.
    #[serde(default = "d_threshold")]
    pub threshold: f64,
    #[serde(default = "d_permutations")]
    pub permutations: usize,
    /// Words per shingle.
    #[serde(default = "d_shingle")]
    pub shingle: usize,
    /// What is compared: `patch`, `text` (the assistant's), or both.
    #[serde(default = "d_on")]
    pub on: Vec<String>,
}

impl DedupSection {
    pub fn check(&self, shown: &str) -> anyhow::Result<()> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            anyhow::bail!("{shown}: `dedup.threshold`: must be in (0, 1]");
        }
        if !(8..=1024).contains(&self.permutations) {
            anyhow::bail!("{shown}: `dedup.permutations`: must be between 8 and 1024");
        }
        if self.shingle == 0 {
            anyhow::bail!("{shown}: `dedup.shingle`: must be at least 1");
        }
        if self.on.is_empty() {
            anyhow::bail!("{shown}: `dedup.on`: compare `patch`, `text` or both");
        }
        for o in &self.on {
            if o != "patch" && o != "text" {
                anyhow::bail!("{shown}: `dedup.on`: {o:?} is not `patch` or `text`");
            }
        }
        Ok(())
    }

    /// (bands, rows per band) for the threshold: the split that minimises the false positive
    /// and false negative probability mass (equal weights), as datasketch's MinHashLSH does.
    pub fn bands(&self) -> (usize, usize) {
        let t = self.threshold;
        let integrate = |f: &dyn Fn(f64) -> f64, a: f64, b: f64| {
            let n = 200;
            let h = (b - a) / n as f64;
            (0..n).map(|i| f(a + (i as f64 + 0.5) * h) * h).sum::<f64>()
        };
        let mut best = (1, self.permutations, f64::MAX);
        for b in 1..=self.permutations {
            let r = self.permutations / b;
            if r == 0 {
                break;
            }
            let p = |s: f64| 1.0 - (1.0 - s.powi(r as i32)).powi(b as i32);
            let fp = integrate(&p, 0.0, t);
            let fneg = integrate(&|s| 1.0 - p(s), t, 1.0);
            let err = fp + fneg;
            if err < best.2 - 1e-12 {
                best = (b, r, err);
            }
        }
        (best.0, best.1)
    }
}

/// A MinHash signature; `None` for text with no words (such rows are never near-duplicates).
pub fn signature(text: &str, shingle: usize, permutations: usize) -> Option<Vec<u32>> {
    let w: Vec<String> = words(text).collect();
    if w.is_empty() {
        return None;
    }
    let k = shingle.min(w.len());
    let (a, b) = coefficients(permutations);
    let mut sig = vec![u32::MAX; permutations];
    for g in w.windows(k) {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for x in g {
            h.update(x.as_bytes());
            h.update(&[0x1f]);
        }
        let x = h.digest();
        for i in 0..permutations {
            let v = (a[i].wrapping_mul(x).wrapping_add(b[i]) >> 32) as u32;
            if v < sig[i] {
                sig[i] = v;
            }
        }
    }
    Some(sig)
}

/// The multiply-shift coefficients (odd multipliers), fixed by the permutation index.
fn coefficients(n: usize) -> (Vec<u64>, Vec<u64>) {
    (0..n)
        .map(|i| {
            let a = xxhash_rust::xxh3::xxh3_64_with_seed(b"sera-host minhash a", i as u64) | 1;
            let b = xxhash_rust::xxh3::xxh3_64_with_seed(b"sera-host minhash b", i as u64);
            (a, b)
        })
        .unzip()
}

pub fn similarity(a: &[u32], b: &[u32]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

/// One row as dedup sees it.
pub struct Entry<'a> {
    pub group: &'a str,
    pub row_id: &'a str,
    pub r: Option<f64>,
    pub ratio: f64,
    /// One signature per compared kind (`on`'s order); `None` where the row has no words.
    pub signatures: &'a [Option<Vec<u32>>],
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// What dedup did to one group (a stage).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub rows: u64,
    /// Clusters of two or more rows.
    pub clusters: u64,
    pub removed: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub threshold: f64,
    pub permutations: usize,
    pub bands: usize,
    pub rows_per_band: usize,
    pub shingle: usize,
    pub on: Vec<String>,
    pub groups: BTreeMap<String, GroupSummary>,
}

/// Which entries are removed as near-duplicates of a better one in their group (only rows of
/// the same group are compared: a T1 row and the T2 row of one item are alike by design).
pub fn near_duplicates(entries: &[Entry], cfg: &DedupSection) -> (Vec<bool>, Summary) {
    let (bands, rows) = cfg.bands();
    let n = entries.len();
    let mut parent: Vec<usize> = (0..n).collect();
    // Candidate pairs: rows sharing a band of one kind's signature.
    for kind in 0..cfg.on.len() {
        let mut buckets: HashMap<(&str, usize, u64), Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            let Some(sig) = e.signatures.get(kind).and_then(|s| s.as_ref()) else {
                continue;
            };
            for band in 0..bands {
                let part = &sig[band * rows..(band + 1) * rows];
                let bytes: Vec<u8> = part.iter().flat_map(|v| v.to_le_bytes()).collect();
                let h = xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, band as u64);
                buckets.entry((e.group, band, h)).or_default().push(i);
            }
        }
        let mut keys: Vec<_> = buckets.keys().copied().collect();
        keys.sort();
        for k in keys {
            let members = &buckets[&k];
            // Large buckets (many alike rows) are compared against their first 64 members:
            // a cluster still forms through them without a quadratic number of comparisons.
            for (x, &i) in members.iter().enumerate() {
                for &j in members.iter().take(64).take(x) {
                    let (Some(a), Some(b)) = (
                        entries[i].signatures[kind].as_ref(),
                        entries[j].signatures[kind].as_ref(),
                    ) else {
                        continue;
                    };
                    if similarity(a, b) >= cfg.threshold {
                        let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                        if ri != rj {
                            parent[ri.max(rj)] = ri.min(rj);
                        }
                    }
                }
            }
        }
    }
    let mut clusters: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let root = find(&mut parent, i);
        clusters.entry(root).or_default().push(i);
    }
    let better = |a: &Entry, b: &Entry| {
        let r = |e: &Entry| e.r.unwrap_or(-1.0);
        r(b).total_cmp(&r(a))
            .then_with(|| b.ratio.total_cmp(&a.ratio))
            .then_with(|| a.row_id.cmp(b.row_id))
    };
    let mut removed = vec![false; n];
    let mut summary = Summary {
        threshold: cfg.threshold,
        permutations: cfg.permutations,
        bands,
        rows_per_band: rows,
        shingle: cfg.shingle,
        on: cfg.on.clone(),
        groups: BTreeMap::new(),
    };
    for e in entries {
        summary.groups.entry(e.group.to_string()).or_default().rows += 1;
    }
    for members in clusters.values() {
        if members.len() < 2 {
            continue;
        }
        let keep = *members
            .iter()
            .min_by(|&&a, &&b| better(&entries[a], &entries[b]))
            .expect("a cluster has members");
        let g = summary
            .groups
            .entry(entries[keep].group.to_string())
            .or_default();
        g.clusters += 1;
        for &m in members {
            if m != keep {
                removed[m] = true;
                g.removed += 1;
            }
        }
    }
    (removed, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DedupSection {
        DedupSection {
            threshold: 0.8,
            permutations: 128,
            shingle: 5,
            on: vec!["text".into()],
        }
    }

    #[test]
    fn signatures_estimate_jaccard() {
        let base: Vec<String> = (0..400).map(|i| format!("w{i}")).collect();
        let a = base.join(" ");
        let mut b = base.clone();
        b[200] = "changed".into();
        let b = b.join(" ");
        let c: String = (0..400).map(|i| format!("z{i} ")).collect();
        let (sa, sb, sc) = (
            signature(&a, 5, 128).unwrap(),
            signature(&b, 5, 128).unwrap(),
            signature(&c, 5, 128).unwrap(),
        );
        // One changed word removes 5 of 396 shingles: Jaccard ~0.975.
        assert!(similarity(&sa, &sb) > 0.9, "{}", similarity(&sa, &sb));
        assert!(similarity(&sa, &sc) < 0.1, "{}", similarity(&sa, &sc));
        assert_eq!(signature(" ,; ", 5, 128), None);
    }

    #[test]
    fn bands_follow_the_threshold() {
        let (b, r) = cfg().bands();
        assert!(b * r <= 128);
        let knee = (1.0 / b as f64).powf(1.0 / r as f64);
        assert!((0.6..0.9).contains(&knee), "{b} bands of {r}: knee {knee}");
    }

    #[test]
    fn the_best_row_of_a_cluster_stays_and_groups_never_mix() {
        let text: Vec<String> = (0..300).map(|i| format!("t{i}")).collect();
        let t = text.join(" ");
        let mut near = text.clone();
        near[10] = "x".into();
        let near = near.join(" ");
        let other: String = (0..300).map(|i| format!("o{i} ")).collect();
        let sigs: Vec<Vec<Option<Vec<u32>>>> = [&t, &near, &other, &t]
            .iter()
            .map(|s| vec![signature(s, 5, 128)])
            .collect();
        let entries = vec![
            Entry {
                group: "T2",
                row_id: "a",
                r: Some(0.5),
                ratio: 1.0,
                signatures: &sigs[0],
            },
            Entry {
                group: "T2",
                row_id: "b",
                r: Some(1.0),
                ratio: 0.9,
                signatures: &sigs[1],
            },
            Entry {
                group: "T2",
                row_id: "c",
                r: Some(1.0),
                ratio: 1.0,
                signatures: &sigs[2],
            },
            Entry {
                group: "T1",
                row_id: "d",
                r: None,
                ratio: 1.0,
                signatures: &sigs[3],
            },
        ];
        let (removed, s) = near_duplicates(&entries, &cfg());
        assert_eq!(removed, vec![true, false, false, false]);
        assert_eq!(s.groups["T2"].clusters, 1);
        assert_eq!(s.groups["T2"].removed, 1);
        assert_eq!(s.groups["T1"].removed, 0);
    }
}
