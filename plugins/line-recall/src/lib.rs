//! The default verifier, `builtin:line-recall`.
//!
//! Config (the `[verify]` table as JSON): `{}` for hunk-aware parsing, `{"compat":"sera"}` to
//! reproduce SERA's script exactly.

use std::cell::Cell;

use line_recall_core::{line_recall, Mode, PatchSide};

wit_bindgen::generate!({
    path: "../../wit/v0.1.0",
    world: "verifier",
});

use exports::sera::plugin::verify::{Guest, PatchPair, Verdict};

#[cfg(all(not(target_feature = "atomics"), target_family = "wasm"))]
#[global_allocator]
static TALC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

struct LineRecall;

thread_local! {
    static MODE: Cell<Mode> = const { Cell::new(Mode::Hunks) };
}

/// The config is tiny and fixed, so it is read by hand rather than pulling a JSON crate into
/// every verifier instance.
fn parse_config(config: &str) -> Result<Mode, String> {
    let compact: String = config.chars().filter(|c| !c.is_whitespace()).collect();
    match compact.as_str() {
        "" | "{}" | "{\"compat\":\"none\"}" => Ok(Mode::Hunks),
        "{\"compat\":\"sera\"}" => Ok(Mode::Sera),
        _ => Err(format!(
            "line-recall: unsupported config {config}; expected {{}} or {{\"compat\":\"sera\"}}"
        )),
    }
}

fn score(pair: &PatchPair) -> Result<Verdict, String> {
    let mode = MODE.with(Cell::get);
    match line_recall(&pair.reference, &pair.candidate, mode) {
        Ok(r) => Ok(Verdict {
            score: r.score,
            matched: r.matched,
            total: r.total,
            detail: r.detail,
        }),
        Err((side, e)) => Err(format!(
            "{} patch: {e}",
            match side {
                PatchSide::Reference => "reference",
                PatchSide::Candidate => "candidate",
            }
        )),
    }
}

impl Guest for LineRecall {
    fn init(config: String) -> Result<(), String> {
        let mode = parse_config(&config)?;
        MODE.with(|m| m.set(mode));
        Ok(())
    }

    fn verify(pair: PatchPair) -> Result<Verdict, String> {
        score(&pair)
    }

    fn verify_batch(pairs: Vec<PatchPair>) -> Vec<Result<Verdict, String>> {
        pairs.iter().map(score).collect()
    }
}

export!(LineRecall);
