//! A verifier written with the sera-plugin SDK: the whole plugin is the trait impl and one
//! macro. Scores like `builtin:line-recall` with its default config.

use line_recall_core::{line_recall, Mode};
use sera_plugin::verifier::{PatchPair, Verdict, Verifier};

struct SdkLineRecall;

impl Verifier for SdkLineRecall {
    fn verify(pair: &PatchPair) -> Result<Verdict, String> {
        let r = line_recall(&pair.reference, &pair.candidate, Mode::Hunks)
            .map_err(|(side, e)| format!("{side:?} patch: {e}"))?;
        Ok(Verdict {
            score: r.score,
            matched: r.matched,
            total: r.total,
            detail: r.detail,
        })
    }
}

sera_plugin::export_verifier!(SdkLineRecall);
