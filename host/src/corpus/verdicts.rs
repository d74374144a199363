//! Stored verifier verdicts, keyed by (pair, plugin sha256, config sha256).

use std::collections::HashMap;

use anyhow::Result;
use rusqlite::params;

use super::store::Corpus;

/// A verdict as stored: the verifier's answer, or how it failed on the pair.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StoredVerdict {
    pub score: Option<f64>,
    pub matched: u32,
    pub total: u32,
    pub detail: String,
    pub failure: Option<String>,
}

impl Corpus {
    /// The stored verdicts of `plugin` with `config` for `pairs` (those that have one). Many
    /// pairs are read in one range scan of the plugin's and config's verdicts.
    pub fn verdicts(
        &self,
        plugin: &str,
        config: &str,
        pairs: &[&str],
    ) -> Result<HashMap<String, StoredVerdict>> {
        let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<StoredVerdict> {
            Ok(StoredVerdict {
                score: r.get(0)?,
                matched: r.get(1)?,
                total: r.get(2)?,
                detail: r.get(3)?,
                failure: r.get(4)?,
            })
        };
        let mut out = HashMap::new();
        if pairs.len() > 256 {
            let wanted: std::collections::HashSet<&str> = pairs.iter().copied().collect();
            let mut st = self.conn().prepare_cached(
                "SELECT score, matched, total, detail, failure, pair FROM verdicts WHERE plugin = ?1 AND config = ?2",
            )?;
            let mut rows = st.query(params![plugin, config])?;
            while let Some(r) = rows.next()? {
                let pair: String = r.get(5)?;
                if wanted.contains(pair.as_str()) {
                    out.insert(pair, row(r)?);
                }
            }
            return Ok(out);
        }
        let mut st = self.conn().prepare_cached(
            "SELECT score, matched, total, detail, failure FROM verdicts WHERE plugin = ?1 AND config = ?2 AND pair = ?3",
        )?;
        for pair in pairs {
            if out.contains_key(*pair) {
                continue;
            }
            let mut rows = st.query(params![plugin, config, pair])?;
            if let Some(r) = rows.next()? {
                out.insert(pair.to_string(), row(r)?);
            }
        }
        Ok(out)
    }

    /// Stores verdicts in one transaction; a pair already scored keeps its first verdict.
    pub fn put_verdicts(
        &self,
        plugin: &str,
        config: &str,
        verdicts: &[(&str, &StoredVerdict)],
    ) -> Result<()> {
        let tx = self.conn().unchecked_transaction()?;
        {
            let mut st = self.conn().prepare_cached(
                "INSERT OR IGNORE INTO verdicts (pair, plugin, config, score, matched, total, detail, failure)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            // In key order: each insert lands beside the last one instead of anywhere in the
            // b-tree (random pair hashes split pages all over it and spill the cache).
            let mut sorted: Vec<&(&str, &StoredVerdict)> = verdicts.iter().collect();
            sorted.sort_unstable_by_key(|(pair, _)| *pair);
            for (pair, v) in sorted {
                st.execute(params![
                    pair, plugin, config, v.score, v.matched, v.total, v.detail, v.failure
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn verdict_count(&self) -> Result<u64> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM verdicts", [], |r| r.get::<_, i64>(0))?
            as u64)
    }
}
