//! How sera-host names content: the sha256 of its bytes, and of JSON values in one canonical
//! form (the keys of exchanges, commands, environments and pipelines). The bottom of the crate:
//! it imports nothing of it.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Lower-case hex sha256 of `bytes`: how the corpus names content.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// JSON with object keys sorted at every level and no insignificant whitespace.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sorted(value)).expect("JSON values serialise")
}
