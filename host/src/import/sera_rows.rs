//! SERA's released rows (JSONL): `messages` is a JSON *string* holding SWE-agent history
//! messages; with `instance_id`, `rollout_patch`, `target_patch` (P1 for a T2 row, empty for
//! T1), `func_name`, `func_path`, `problem_statement`, `source`, `docker_image`.

use anyhow::{anyhow, bail, Result};
use serde_json::{Map, Value};

use crate::corpus::Imported;
use crate::trajectory::Trajectory;

const META: [&str; 6] = [
    "target_patch",
    "func_name",
    "func_path",
    "problem_statement",
    "source",
    "docker_image",
];

/// One line (`n`, from 1) of the file `shown`. The row's values are moved into the import,
/// not copied: most of a row's bytes are its messages and patches.
pub fn parse_line(shown: &str, n: usize, line: &[u8]) -> Result<Imported> {
    let v: Value = serde_json::from_slice(line)
        .map_err(|e| anyhow!("{shown}:{n}:{}: not valid JSON: {e}", e.column()))?;
    let Value::Object(mut obj) = v else {
        bail!("{shown}:{n}: expected a JSON object (a SERA row)");
    };
    let Some(text) = obj.get("messages").and_then(Value::as_str) else {
        bail!("{shown}:{n}: `messages` must be a JSON string holding the history (a SERA row)");
    };
    let history: Value = serde_json::from_str(text).map_err(|e| {
        anyhow!(
            "{shown}:{n}: `messages` holds invalid JSON at its line {} column {}: {e}",
            e.line(),
            e.column()
        )
    })?;
    let Value::Array(history) = history else {
        bail!("{shown}:{n}: `messages` must hold a list of messages");
    };
    let messages = super::swe_agent::history_messages(history, &format!("{shown}:{n}"))?;
    let mut meta = Map::new();
    for k in META {
        if let Some(v) = obj.remove(k) {
            meta.insert(k.to_string(), v);
        }
    }
    let string = |v: Option<Value>| match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    Ok(Imported {
        format: "sera",
        source: shown.to_string(),
        locator: format!("line {n}"),
        instance_id: string(obj.remove("instance_id")),
        trajectory: Trajectory {
            tools: super::tools::implicit_tools(&messages),
            messages,
            steps: Vec::new(),
            environment: None,
        },
        patch: string(obj.remove("rollout_patch")),
        meta: Value::Object(meta),
    })
}
