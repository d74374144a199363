//! Token counting for truncation and filters: the real Qwen tokenizer (byte-level BPE) through
//! Hugging Face's `tokenizers` crate, built from `vocab.json` + `merges.txt` + the added tokens
//! of a `tokenizer_config.json`, or loaded from a `tokenizer.json`. Without tokenizer files a
//! byte-based estimate stands in, and says so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// Qwen2's pre-tokenizer split (from its `tokenizer.json`).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Bytes per token of the estimate used when no tokenizer files are given (Qwen's BPE on
/// Python source and English averages 3.5-4.5).
pub const ESTIMATE_BYTES_PER_TOKEN: usize = 4;

/// Counts kept before the cache starts over.
const CACHE_ENTRIES: usize = 1 << 18;

/// Where a tokenizer comes from, as the pipeline configures it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenizerSource {
    /// A directory with `vocab.json` and `merges.txt`, and the `tokenizer_config.json` whose
    /// `added_tokens_decoder` lists the added tokens (may be another directory).
    BpeFiles { dir: PathBuf, config: PathBuf },
    /// A Hugging Face `tokenizer.json`.
    Json(PathBuf),
    /// ceil(bytes / 4): no files needed, clearly not the real count.
    Estimate,
}

enum Counter {
    Real(Box<Tokenizer>),
    Estimate,
}

/// A tokenizer with a count cache keyed by the sha256 of the text. `Sync`: share it.
pub struct TokenCounter {
    counter: Counter,
    /// What it is, for reports and manifests.
    pub description: String,
    /// sha256 over the files it was built from ("estimate" for the estimate).
    pub fingerprint: String,
    cache: Mutex<HashMap<[u8; 32], u32>>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{}: cannot read tokenizer file", path.display()))
}

/// The Qwen BPE from its parts.
fn bpe_tokenizer(dir: &Path, config: &Path) -> Result<Tokenizer> {
    let vocab = dir.join("vocab.json");
    let merges = dir.join("merges.txt");
    let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
        .build()
        .map_err(|e| anyhow::anyhow!("{}: not a BPE vocab/merges pair: {e}", dir.display()))?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_normalizer(Some(NFC));
    let split = Split::new(
        SplitPattern::Regex(QWEN2_SPLIT.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| anyhow::anyhow!("Qwen2 split regex: {e}"))?;
    tok.with_pre_tokenizer(Some(Sequence::new(vec![
        split.into(),
        ByteLevel::new(false, false, false).into(),
    ])));
    tok.with_decoder(Some(ByteLevel::new(false, false, false)));
    let cfg: serde_json::Value = serde_json::from_slice(&read(config)?)
        .with_context(|| format!("{}: not JSON", config.display()))?;
    let Some(added) = cfg.get("added_tokens_decoder").and_then(|v| v.as_object()) else {
        bail!(
            "{}: no `added_tokens_decoder` object (expected a Hugging Face tokenizer_config.json)",
            config.display()
        );
    };
    let mut tokens: Vec<(u32, &str, bool)> = Vec::new();
    for (id, t) in added {
        let id: u32 = id.parse().with_context(|| {
            format!(
                "{}: added token id {id:?} is not a number",
                config.display()
            )
        })?;
        let Some(content) = t.get("content").and_then(|c| c.as_str()) else {
            bail!("{}: added token {id} has no `content`", config.display());
        };
        let special = t.get("special").and_then(|s| s.as_bool()).unwrap_or(false);
        tokens.push((id, content, special));
    }
    tokens.sort_unstable();
    // Added one at a time in id order, each must land on its id.
    for (id, content, special) in tokens {
        let token = AddedToken::from(content.to_string(), special).normalized(false);
        if special {
            tok.add_special_tokens(&[token]);
        } else {
            tok.add_tokens(&[token]);
        }
        let got = tok.token_to_id(content);
        if got != Some(id) {
            bail!(
                "{}: added token {content:?} should have id {id} but got {got:?} (vocab.json in {} has {} tokens)",
                config.display(),
                dir.display(),
                tok.get_vocab_size(false)
            );
        }
    }
    Ok(tok)
}

impl TokenCounter {
    pub fn new(source: &TokenizerSource) -> Result<Self> {
        let (counter, description, fingerprint) = match source {
            TokenizerSource::BpeFiles { dir, config } => {
                let tok = bpe_tokenizer(dir, config)?;
                let mut h = Sha256::new();
                for p in [
                    dir.join("vocab.json"),
                    dir.join("merges.txt"),
                    config.clone(),
                ] {
                    h.update(Sha256::digest(read(&p)?));
                }
                (
                    Counter::Real(Box::new(tok)),
                    format!(
                        "byte-level BPE from {} + added tokens of {}",
                        dir.display(),
                        config.display()
                    ),
                    hex::encode(h.finalize()),
                )
            }
            TokenizerSource::Json(path) => {
                let bytes = read(path)?;
                let tok = Tokenizer::from_bytes(&bytes).map_err(|e| {
                    anyhow::anyhow!("{}: not a Hugging Face tokenizer.json: {e}", path.display())
                })?;
                (
                    Counter::Real(Box::new(tok)),
                    format!("tokenizer.json {}", path.display()),
                    hex::encode(Sha256::digest(&bytes)),
                )
            }
            TokenizerSource::Estimate => (
                Counter::Estimate,
                format!(
                    "ESTIMATE: ceil(bytes / {ESTIMATE_BYTES_PER_TOKEN}), no tokenizer files given"
                ),
                "estimate".to_string(),
            ),
        };
        Ok(TokenCounter {
            counter,
            description,
            fingerprint,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The tokenizer as a Hugging Face `tokenizer.json`; `None` for the estimate.
    pub fn to_json(&self) -> Result<Option<String>> {
        match &self.counter {
            Counter::Real(tok) => {
                Ok(Some(tok.to_string(false).map_err(|e| {
                    anyhow::anyhow!("tokenizer: cannot serialise: {e}")
                })?))
            }
            Counter::Estimate => Ok(None),
        }
    }

    pub fn is_estimate(&self) -> bool {
        matches!(self.counter, Counter::Estimate)
    }

    /// Token ids of `text`, added tokens such as `<|im_start|>` recognised; `None` for the
    /// estimate.
    pub fn encode(&self, text: &str) -> Result<Option<Vec<u32>>> {
        match &self.counter {
            Counter::Real(tok) => {
                let enc = tok
                    .encode_fast(text, false)
                    .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
                Ok(Some(enc.get_ids().to_vec()))
            }
            Counter::Estimate => Ok(None),
        }
    }

    /// How many tokens `text` is; cached by its sha256.
    pub fn count(&self, text: &str) -> u32 {
        let key: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if let Some(n) = self.cache.lock().expect("token cache").get(&key) {
            return *n;
        }
        let n = match &self.counter {
            Counter::Real(tok) => tok
                .encode_fast(text, false)
                .map(|e| e.len() as u32)
                // Encoding a str cannot fail for BPE; were it to, bytes are an upper bound.
                .unwrap_or(text.len() as u32),
            Counter::Estimate => text.len().div_ceil(ESTIMATE_BYTES_PER_TOKEN) as u32,
        };
        let mut cache = self.cache.lock().expect("token cache");
        // Bounded (~20 MB): a long run sees millions of distinct texts.
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, n);
        n
    }
}
