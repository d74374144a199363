//! Decontamination, then near-duplicate removal, over a run's candidate rows (those filters
//! and truncation kept): the same two passes for `run` and for `shards`.

use super::decontam::{self, Action, DecontaminateSection, Hit, Index};
use super::dedup::{self, DedupSection, Entry};

/// One candidate row as the passes see it.
pub struct Candidate<'a> {
    /// Rows are compared for near-duplicates within their group (their stage).
    pub group: &'a str,
    pub row_id: &'a str,
    pub r: Option<f64>,
    pub ratio: f64,
    pub hits: &'a [Hit],
    pub signatures: &'a [Option<Vec<u32>>],
    /// Dropped before (by a filter or truncation): not looked at.
    pub dropped: bool,
}

/// Why a pass removed a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removed {
    Contaminated,
    NearDuplicate,
}

impl Removed {
    pub fn reason(self) -> &'static str {
        match self {
            Removed::Contaminated => "contaminated",
            Removed::NearDuplicate => "near-duplicate",
        }
    }
}

pub struct Outcome {
    /// Per candidate, what removed it (`None`: kept, or dropped before).
    pub removed: Vec<Option<Removed>>,
    pub decontamination: Option<decontam::Summary>,
    pub dedup: Option<dedup::Summary>,
    /// Rows left after decontamination, and after near-duplicates.
    pub clean: u64,
    pub unique: u64,
}

pub fn run(
    rows: &[Candidate],
    decontaminate: Option<(&DecontaminateSection, &Index)>,
    dedup_section: Option<&DedupSection>,
) -> Outcome {
    let mut removed: Vec<Option<Removed>> = vec![None; rows.len()];
    let live = |removed: &[Option<Removed>], i: usize| !rows[i].dropped && removed[i].is_none();
    let decontamination = decontaminate.map(|(section, index)| {
        let mut d = decontam::Summary::new(section, index);
        for (i, row) in rows.iter().enumerate().filter(|(_, r)| !r.dropped) {
            d.add_row(row.hits);
            if !row.hits.is_empty() && section.action == Action::Drop {
                removed[i] = Some(Removed::Contaminated);
            }
        }
        d
    });
    let clean = (0..rows.len()).filter(|&i| live(&removed, i)).count() as u64;
    let dedup = dedup_section.map(|section| {
        let ids: Vec<usize> = (0..rows.len()).filter(|&i| live(&removed, i)).collect();
        let entries: Vec<Entry> = ids
            .iter()
            .map(|&i| Entry {
                group: rows[i].group,
                row_id: rows[i].row_id,
                r: rows[i].r,
                ratio: rows[i].ratio,
                signatures: rows[i].signatures,
            })
            .collect();
        let (dup, summary) = dedup::near_duplicates(&entries, section);
        for (k, &i) in ids.iter().enumerate() {
            if dup[k] {
                removed[i] = Some(Removed::NearDuplicate);
            }
        }
        summary
    });
    let unique = (0..rows.len()).filter(|&i| live(&removed, i)).count() as u64;
    Outcome {
        removed,
        decontamination,
        dedup,
        clean,
        unique,
    }
}

/// Each candidate's MinHash signatures for `[dedup]` (one per `on` kind; none without it).
pub fn signatures(
    section: Option<&DedupSection>,
    patch: &str,
    assistant_text: impl Fn() -> String,
) -> Vec<Option<Vec<u32>>> {
    let Some(d) = section else {
        return Vec::new();
    };
    d.on.iter()
        .map(|kind| {
            let text = if kind == "patch" {
                patch.to_string()
            } else {
                assistant_text()
            };
            dedup::signature(&text, d.shingle, d.permutations)
        })
        .collect()
}
