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

/// How many lines of `reference` can be paired with an equal line of `candidate`, each candidate
/// line used at most once. Sorting both sides avoids hashing (and so any random hash seed).
pub fn multiset_matches(reference: &[&str], candidate: &[&str]) -> usize {
    let mut a = reference.to_vec();
    let mut b = candidate.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    let (mut i, mut j, mut matched) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                matched += 1;
                i += 1;
                j += 1;
            }
        }
    }
    matched
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
        detail: format!(
            "{matched} of {total} reference change lines found among {} candidate change lines",
            p2.len()
        ),
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
