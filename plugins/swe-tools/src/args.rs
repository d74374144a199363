//! A tool call's arguments (a JSON object) with errors a model can act on.

use serde_json::{Map, Value};

pub struct Args {
    tool: String,
    map: Map<String, Value>,
}

impl Args {
    pub fn parse(tool: &str, text: &str) -> Result<Self, String> {
        let text = if text.trim().is_empty() { "{}" } else { text };
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(Self {
                tool: tool.to_string(),
                map,
            }),
            Ok(other) => Err(format!(
                "The arguments of `{tool}` must be a JSON object, not {other}"
            )),
            Err(e) => Err(format!("The arguments of `{tool}` are not valid JSON: {e}")),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!(
                "Parameter `{key}` of `{}` must be a string, not {other}",
                self.tool
            )),
        }
    }

    pub fn str(&self, key: &str) -> Result<&str, String> {
        self.opt_str(key)?
            .ok_or_else(|| format!("Parameter `{key}` is required for `{}`", self.tool))
    }

    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .map(Some)
                .ok_or_else(|| {
                    format!(
                        "Parameter `{key}` of `{}` must be an integer, not {v}",
                        self.tool
                    )
                }),
        }
    }
}
