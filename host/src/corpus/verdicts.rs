//! Stored verifier verdicts, keyed by (pair, plugin sha256, config sha256).

use std::collections::HashMap;

use anyhow::Result;
use rusqlite::params;

use super::Corpus;

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
    /// The stored verdicts of `plugin` with `config` for `pairs` (those that have one).
    pub fn verdicts(
        &self,
        plugin: &str,
        config: &str,
        pairs: &[String],
    ) -> Result<HashMap<String, StoredVerdict>> {
        let mut st = self.conn().prepare_cached(
            "SELECT score, matched, total, detail, failure FROM verdicts WHERE pair = ?1 AND plugin = ?2 AND config = ?3",
        )?;
        let mut out = HashMap::new();
        for pair in pairs {
            if out.contains_key(pair) {
                continue;
            }
            let mut rows = st.query(params![pair, plugin, config])?;
            if let Some(r) = rows.next()? {
                out.insert(
                    pair.clone(),
                    StoredVerdict {
                        score: r.get(0)?,
                        matched: r.get(1)?,
                        total: r.get(2)?,
                        detail: r.get(3)?,
                        failure: r.get(4)?,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Stores verdicts in one transaction; a pair already scored keeps its first verdict.
    pub fn put_verdicts(
        &self,
        plugin: &str,
        config: &str,
        verdicts: &[(String, StoredVerdict)],
    ) -> Result<()> {
        let tx = self.conn().unchecked_transaction()?;
        {
            let mut st = self.conn().prepare_cached(
                "INSERT OR IGNORE INTO verdicts (pair, plugin, config, score, matched, total, detail, failure)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (pair, v) in verdicts {
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
