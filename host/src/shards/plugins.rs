//! The plugins that decide rows after the rollouts, loaded alike by `run` and `shards` so both
//! name them alike in their manifests: filters, truncation, and the token counter they use.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use serde_json::Value;

use crate::digest::canonical_json;
use crate::plugin::{Limits, PluginEngine, PluginSource, TrajectoryFilter, Truncator};
use crate::tokenizer::{TokenCounter, TokenizerSource};

/// The token counter a tokenizer section names; with `fallback_to_estimate`, the estimate (and a
/// warning) when its files cannot be read.
pub fn token_counter(tk: &crate::config::TokenizerSection) -> Result<TokenCounter> {
    let source = match tk.kind.as_str() {
        "qwen-bpe" => TokenizerSource::BpeFiles {
            dir: tk.dir.clone().expect("checked at load"),
            config: tk.config.clone().expect("checked at load"),
        },
        "json" => TokenizerSource::Json(tk.path.clone().expect("checked at load")),
        _ => TokenizerSource::Estimate,
    };
    match TokenCounter::new(&source) {
        Ok(t) => Ok(t),
        Err(e) if tk.fallback_to_estimate => {
            eprintln!(
                "warning: tokenizer: {e:#}; counting tokens with the ESTIMATE (bytes / 4) instead"
            );
            TokenCounter::new(&TokenizerSource::Estimate)
        }
        Err(e) => Err(e),
    }
}

/// The `[[filters]]` plugins in order, each recorded in `hashes` (source, sha256) as
/// `filters[i]`. Shared by `run` and `shards`, so both name them alike in their manifests.
pub fn load_filters(
    engine: &PluginEngine,
    specs: &[crate::config::FilterSpec],
    tokens: &Arc<TokenCounter>,
    hashes: &mut BTreeMap<String, crate::shards::manifest::PluginRef>,
) -> Result<Vec<TrajectoryFilter>> {
    let mut filters = Vec::new();
    for (i, f) in specs.iter().enumerate() {
        let loaded = engine.load(&PluginSource::parse(&f.plugin)?)?;
        filters.push(TrajectoryFilter::new(
            engine,
            &loaded,
            &plugin_config(&f.config),
            Limits::default(),
            tokens.clone(),
        )?);
        hashes.insert(
            format!("filters[{i}]"),
            crate::shards::manifest::PluginRef {
                source: f.plugin.clone(),
                sha256: loaded.sha256.clone(),
            },
        );
    }
    Ok(filters)
}

/// The `[truncation]` plugin, recorded in `hashes` as `truncation`.
pub fn load_truncator(
    engine: &PluginEngine,
    section: &crate::config::TruncationSection,
    tokens: &Arc<TokenCounter>,
    hashes: &mut BTreeMap<String, crate::shards::manifest::PluginRef>,
) -> Result<Truncator> {
    let loaded = engine.load(&PluginSource::parse(&section.plugin)?)?;
    let truncator = Truncator::new(
        engine,
        &loaded,
        &plugin_config(&section.config),
        Limits::default(),
        tokens.clone(),
    )?;
    hashes.insert(
        "truncation".into(),
        crate::shards::manifest::PluginRef {
            source: section.plugin.clone(),
            sha256: loaded.sha256.clone(),
        },
    );
    Ok(truncator)
}

/// A plugin's `config` table as the JSON text it receives.
pub fn plugin_config(v: &Value) -> String {
    canonical_json(v)
}
