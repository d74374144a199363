//! Which items a worker of a partitioned run does, and where its corpus goes.
//!
//! An item belongs to partition `h mod N`, where `h` is the first 64 bits of its partition key
//! (a sha256 of its function: the pipeline's `Item::partition_key`). It depends on
//! nothing but the item and N: not on timing, not on which other workers run, not on the order
//! items were selected in. All the prompts of one function go to one worker, so what their
//! items share (a rollout 2 with the same PR text, a command on the same tree) is done once,
//! as on one machine: partitioned by item, two workers did up to twice the work of one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Worker {
    pub index: u32,
    pub count: u32,
}

impl Worker {
    /// `I/N` with 0 <= I < N.
    pub fn parse(s: &str) -> Result<Worker> {
        let Some((i, n)) = s.split_once('/') else {
            bail!("--worker {s:?}: expected I/N, e.g. 0/8 (worker I of N, counting from 0)");
        };
        let (Ok(index), Ok(count)) = (i.trim().parse::<u32>(), n.trim().parse::<u32>()) else {
            bail!("--worker {s:?}: I and N must be whole numbers, e.g. 0/8");
        };
        if count == 0 || index >= count {
            bail!(
                "--worker {s:?}: needs 0 <= I < N (workers count from 0: 0/{count} .. {}/{count})",
                count.max(1) - 1
            );
        }
        Ok(Worker { index, count })
    }

    /// The partition an item key falls in.
    pub fn partition_of(key: &str, count: u32) -> u32 {
        let head = key.get(..16).unwrap_or(key);
        let h = u64::from_str_radix(head, 16).unwrap_or_else(|_| {
            // Keys are sha256 hex; anything else still gets a stable partition.
            key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            })
        });
        (h % u64::from(count)) as u32
    }

    pub fn owns(&self, key: &str) -> bool {
        Self::partition_of(key, self.count) == self.index
    }

    pub fn label(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }

    /// The pipeline's corpus name with `.worker-I-of-N` before the extension:
    /// `demo.sqlite` -> `demo.worker-0-of-3.sqlite`.
    pub fn db_path(&self, db: &Path) -> PathBuf {
        let tag = format!("worker-{}-of-{}", self.index, self.count);
        let name = match (db.file_stem(), db.extension()) {
            (Some(stem), Some(ext)) => {
                format!("{}.{tag}.{}", stem.to_string_lossy(), ext.to_string_lossy())
            }
            _ => format!(
                "{}.{tag}",
                db.file_name()
                    .map_or("corpus".into(), |n| n.to_string_lossy())
            ),
        };
        db.with_file_name(name)
    }

    /// Every worker's corpus of an N-way run, in worker order.
    pub fn all_db_paths(db: &Path, count: u32) -> Vec<PathBuf> {
        (0..count)
            .map(|index| Worker { index, count }.db_path(db))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(Worker::parse("2/3").unwrap(), Worker { index: 2, count: 3 });
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
            assert!(Worker::parse(bad).is_err(), "{bad}");
        }
        assert!(Worker::parse("3/3")
            .unwrap_err()
            .to_string()
            .contains("0/3 .. 2/3"));
    }

    #[test]
    fn partitions_cover_every_key_once() {
        let keys: Vec<String> = (0..3000)
            .map(|i| crate::digest::sha256_hex(format!("item {i}").as_bytes()))
            .collect();
        for n in [1u32, 2, 3, 7] {
            let mut counts = vec![0usize; n as usize];
            for k in &keys {
                let owners: Vec<u32> = (0..n)
                    .filter(|&i| Worker { index: i, count: n }.owns(k))
                    .collect();
                assert_eq!(owners.len(), 1);
                counts[owners[0] as usize] += 1;
            }
            // sha256 keys spread evenly: every partition within 15% of its share.
            let share = keys.len() as f64 / f64::from(n);
            assert!(
                counts
                    .iter()
                    .all(|&c| (c as f64 - share).abs() < 0.15 * share),
                "{counts:?}"
            );
        }
    }

    #[test]
    fn worker_db_names() {
        let w = Worker { index: 0, count: 3 };
        assert_eq!(
            w.db_path(Path::new("/x/demo.sqlite")),
            Path::new("/x/demo.worker-0-of-3.sqlite")
        );
        assert_eq!(
            w.db_path(Path::new("/x/corpus")),
            Path::new("/x/corpus.worker-0-of-3")
        );
    }
}
