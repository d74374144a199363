//! The tool specs a trajectory gets when its source lists none.

/// The tool that text-action agents (SWE-agent 0.x, mini-swe-agent) use implicitly: their
/// action lines become calls to it, and rows need its spec so chat templates can render them.
pub fn bash_tool_spec() -> serde_json::Value {
    serde_json::json!({
        "type": "function",
        "function": {
            "name": "bash",
            "description": "Run a command line in the agent's shell (the action of a text-based agent turn).",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string", "description": "The command line to run."}},
                "required": ["command"]
            }
        }
    })
}

/// The specs a trajectory's tools get when its source lists none: `bash` as above, and for
/// any other function it calls, a spec inferred from its calls (the argument names seen, each
/// typed by its JSON value), in name order.
pub(crate) fn implicit_tools(messages: &[crate::trajectory::Message]) -> Vec<serde_json::Value> {
    use serde_json::{json, Map, Value};
    let mut seen: std::collections::BTreeMap<&str, Map<String, Value>> = Default::default();
    for c in messages.iter().flat_map(|m| &m.tool_calls) {
        let props = seen.entry(c.function.name.as_str()).or_default();
        if let Ok(Value::Object(args)) = serde_json::from_str::<Value>(&c.function.arguments) {
            for (k, v) in args {
                let ty = match v {
                    Value::String(_) => "string",
                    Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                    Value::Number(_) => "number",
                    Value::Bool(_) => "boolean",
                    Value::Array(_) => "array",
                    Value::Object(_) => "object",
                    Value::Null => continue,
                };
                props.entry(k).or_insert_with(|| json!({ "type": ty }));
            }
        }
    }
    seen.into_iter()
        .map(|(name, props)| {
            if name == "bash" && props.keys().all(|k| k == "command") {
                return bash_tool_spec();
            }
            json!({
                "type": "function",
                "function": {
                    "name": name,
                    "description": "(inferred from the calls in this trajectory; the source lists no tool specs)",
                    "parameters": {"type": "object", "properties": props}
                }
            })
        })
        .collect()
}
