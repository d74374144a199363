//! Line-level recall of a reference patch's change lines in a candidate's.

use crate::{change_lines, sera_change_lines, Mode, ParseError};

/// The outcome of scoring one pair.
#[derive(Clone, Debug, PartialEq)]
pub struct Recall {
    /// `matched / total`; `None` when the reference has no change lines.
    pub score: Option<f64>,
    pub matched: u32,
    pub total: u32,
    pub detail: String,
}

/// Which patch of a pair failed to parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchSide {
    Reference,
    Candidate,
}

/// A fast, fixed-key hash of a line: FxHash over 8-byte words. Fixed keys keep results
/// identical on every run and platform; collisions only cost a string comparison.
fn line_hash(line: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let bytes = line.as_bytes();
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h.rotate_left(5) ^ word).wrapping_mul(K);
    }
    // Built byte by byte: a copy into a buffer becomes a `memory.copy` call in wasm.
    let tail = chunks
        .remainder()
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    (h.rotate_left(5) ^ tail).wrapping_mul(K)
}

/// String equality eight bytes at a time: in wasm `==` on strings is a byte-by-byte `memcmp`.
fn same_line(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut ca).zip(&mut cb) {
        if u64::from_le_bytes(x.try_into().expect("8 bytes"))
            != u64::from_le_bytes(y.try_into().expect("8 bytes"))
        {
            return false;
        }
    }
    // As integers: a slice comparison would be a `memcmp` call in wasm.
    let word = |r: &[u8]| {
        r.iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    };
    word(ca.remainder()) == word(cb.remainder())
}

/// How many lines of `reference` can be paired with an equal line of `candidate`, each candidate
/// line used at most once (the sum over distinct lines of the smaller count).
///
/// A small open-addressing table of the reference lines, keyed by a fixed hash: linear time, no
/// allocation per line, and no random hash seed, so the result never depends on the run.
pub fn multiset_matches(reference: &[&str], candidate: &[&str]) -> usize {
    if reference.is_empty() || candidate.is_empty() {
        return 0;
    }
    let mask = (reference.len() * 2).next_power_of_two() - 1;
    // (hash, line, unmatched count); `None` ends a probe sequence.
    let mut slots: Vec<Option<(u64, &str, u32)>> = vec![None; mask + 1];
    for line in reference {
        let h = line_hash(line);
        let mut i = (h >> 32) as usize & mask;
        loop {
            match &mut slots[i] {
                Some((sh, sl, count)) if *sh == h && same_line(sl, line) => {
                    *count += 1;
                    break;
                }
                Some(_) => i = (i + 1) & mask,
                empty @ None => {
                    *empty = Some((h, line, 1));
                    break;
                }
            }
        }
    }
    let mut matched = 0;
    for line in candidate {
        let h = line_hash(line);
        let mut i = (h >> 32) as usize & mask;
        while let Some((sh, sl, count)) = &mut slots[i] {
            if *sh == h && same_line(sl, line) {
                if *count > 0 {
                    *count -= 1;
                    matched += 1;
                }
                break;
            }
            i = (i + 1) & mask;
        }
    }
    matched
}

/// `"{matched} of {total} reference change lines found among {found} candidate change lines"`,
/// assembled by hand: `format!` costs more than the whole recall of a small pair inside wasm.
fn detail(matched: u32, total: u32, found: u32) -> String {
    fn push_number(s: &mut String, mut n: u32) {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        s.extend(digits[i..].iter().map(|&d| char::from(d)));
    }
    let mut s = String::with_capacity(96);
    push_number(&mut s, matched);
    s.push_str(" of ");
    push_number(&mut s, total);
    s.push_str(" reference change lines found among ");
    push_number(&mut s, found);
    s.push_str(" candidate change lines");
    s
}

fn extract(patch: &str, mode: Mode) -> Result<Vec<&str>, ParseError> {
    match mode {
        Mode::Hunks => change_lines(patch),
        Mode::Sera => Ok(sera_change_lines(patch)),
    }
}

/// SERA's soft verification: the fraction of the reference's change lines found among the
/// candidate's change lines.
pub fn line_recall(
    reference: &str,
    candidate: &str,
    mode: Mode,
) -> Result<Recall, (PatchSide, ParseError)> {
    let p1 = extract(reference, mode).map_err(|e| (PatchSide::Reference, e))?;
    let p2 = extract(candidate, mode).map_err(|e| (PatchSide::Candidate, e))?;
    let total = p1.len() as u32;
    if total == 0 {
        return Ok(Recall {
            score: None,
            matched: 0,
            total: 0,
            detail: "reference patch has no change lines".to_string(),
        });
    }
    if candidate.trim().is_empty() {
        return Ok(Recall {
            score: Some(0.0),
            matched: 0,
            total,
            detail: "no edit".to_string(),
        });
    }
    let matched = multiset_matches(&p1, &p2) as u32;
    Ok(Recall {
        score: Some(f64::from(matched) / f64::from(total)),
        matched,
        total,
        detail: detail(matched, total, p2.len() as u32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P1: &str = "--- a/f.py\n+++ b/f.py\n@@ -1,3 +1,3 @@\n def f(x):\n-    return x\n+    return x + 1\n \n";

    #[test]
    fn identical_patches_score_one() {
        let r = line_recall(P1, P1, Mode::Hunks).unwrap();
        assert_eq!((r.score, r.matched, r.total), (Some(1.0), 2, 2));
    }

    #[test]
    fn detail_matches_format() {
        for (m, t, f) in [(0, 1, 0), (3, 10, 4_000_000_000), (u32::MAX, u32::MAX, 7)] {
            assert_eq!(
                detail(m, t, f),
                format!("{m} of {t} reference change lines found among {f} candidate change lines")
            );
        }
    }

    #[test]
    fn each_candidate_line_matches_once() {
        assert_eq!(
            multiset_matches(&["+a", "+a", "+b"], &["+a", "+b", "+c"]),
            2
        );
        assert_eq!(multiset_matches(&["+a"], &["+a", "+a"]), 1);
    }

    #[test]
    fn empty_candidate_is_no_edit() {
        let r = line_recall(P1, "", Mode::Hunks).unwrap();
        assert_eq!((r.score, r.detail.as_str()), (Some(0.0), "no edit"));
    }

    #[test]
    fn reference_without_change_lines_has_no_score() {
        let r = line_recall("", P1, Mode::Hunks).unwrap();
        assert_eq!(r.score, None);
    }

    #[test]
    fn sign_matters() {
        let p2 = "--- a/f.py\n+++ b/f.py\n@@ -1,2 +1,2 @@\n def f(x):\n-    return x + 1\n+    return x\n";
        let r = line_recall(P1, p2, Mode::Hunks).unwrap();
        assert_eq!(r.matched, 0);
    }
}
