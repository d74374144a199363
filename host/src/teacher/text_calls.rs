//! Tool calls that a model wrote as text in `content` because the server did not parse them
//! (llama.cpp without `--jinja`, vLLM without a tool parser, a template the server does not
//! know): Hermes/Qwen `<tool_call>{"name": ..., "arguments": ...}</tool_call>` and the XML form
//! of Qwen3-Coder and others, `<function=NAME><parameter=KEY>VALUE</parameter></function>`
//! (bare or inside `<tool_call>`). Parsing is a pure function of the response body, so a
//! replay parses a recording exactly as the live run did.

use serde_json::{Map, Value};

use crate::digest::canonical_json;
use crate::trajectory::{FunctionCall, ToolCall};

/// Whether text in `content` may hold tool calls at all (cheap test before parsing).
pub fn may_hold_calls(content: &str) -> bool {
    content.contains("<tool_call>") || content.contains("<function=")
}

/// The calls found in `content`, and the content without them. A call whose closing tag is
/// missing (an answer cut at `max_tokens`) runs to the end of the text.
pub fn extract(content: &str) -> (String, Vec<ToolCall>) {
    let mut calls = Vec::new();
    let mut rest = String::new();
    let mut s = content;
    loop {
        let hermes = s.find("<tool_call>");
        let xml = s.find("<function=");
        let (at, kind) = match (hermes, xml) {
            (Some(h), Some(x)) if x < h => (x, Kind::Xml),
            (Some(h), _) => (h, Kind::Hermes),
            (None, Some(x)) => (x, Kind::Xml),
            (None, None) => break,
        };
        rest.push_str(&s[..at]);
        let (body, after) = match kind {
            Kind::Hermes => split_at_close(&s[at + "<tool_call>".len()..], "</tool_call>"),
            Kind::Xml => {
                let from = &s[at..];
                match from.find("</function>") {
                    Some(end) => {
                        let end = end + "</function>".len();
                        (&from[..end], &from[end..])
                    }
                    None => (from, ""),
                }
            }
        };
        match parse_one(body.trim()) {
            Some(call) => calls.push(call),
            // Not a call after all: kept as text.
            None => rest.push_str(&s[at..s.len() - after.len()]),
        }
        s = after;
    }
    rest.push_str(s);
    (rest.trim().to_string(), calls)
}

enum Kind {
    Hermes,
    Xml,
}

fn split_at_close<'a>(s: &'a str, close: &str) -> (&'a str, &'a str) {
    match s.find(close) {
        Some(end) => (&s[..end], &s[end + close.len()..]),
        None => (s, ""),
    }
}

fn call(name: &str, arguments: String) -> ToolCall {
    ToolCall {
        id: String::new(),
        kind: "function".into(),
        function: FunctionCall {
            name: name.to_string(),
            arguments,
        },
    }
}

/// One call, or `None` when the text is not a whole call: broken JSON (an answer cut at
/// `max_tokens`, say) or arguments that are not a JSON object stay text. A call with such
/// arguments would go back to the server in the next request's history, and servers that
/// render history with the model's chat template (llama.cpp) refuse it there.
fn parse_one(body: &str) -> Option<ToolCall> {
    if body.starts_with("<function=") {
        return parse_xml(body);
    }
    let v: Value = serde_json::from_str(body).ok()?;
    let name = v.get("name").and_then(Value::as_str)?;
    let arguments = match v.get("arguments").or_else(|| v.get("parameters")) {
        Some(Value::String(s)) => {
            let parsed: Value = serde_json::from_str(s).ok()?;
            if !parsed.is_object() {
                return None;
            }
            s.clone()
        }
        Some(Value::Null) | None => "{}".to_string(),
        Some(obj @ Value::Object(_)) => canonical_json(obj),
        Some(_) => return None,
    };
    Some(call(name, arguments))
}

fn parse_xml(body: &str) -> Option<ToolCall> {
    let head = body.strip_prefix("<function=")?;
    let end = head.find('>')?;
    let name = head[..end].trim();
    if name.is_empty() {
        return None;
    }
    let mut args = Map::new();
    let mut s = &head[end + 1..];
    while let Some(at) = s.find("<parameter=") {
        let p = &s[at + "<parameter=".len()..];
        let Some(close) = p.find('>') else { break };
        let key = p[..close].trim().to_string();
        let (value, after) = split_at_close(&p[close + 1..], "</parameter>");
        // One newline on each side belongs to the format, not to the value.
        let value = value.strip_prefix('\n').unwrap_or(value);
        let value = value.strip_suffix('\n').unwrap_or(value);
        args.insert(key, Value::String(value.to_string()));
        s = after;
    }
    Some(call(name, canonical_json(&Value::Object(args))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hermes_calls_with_object_and_string_arguments_and_a_cut_one_left_as_text() {
        let text = concat!(
            "I will look.\n<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"ls -la\"}}\n</tool_call>\n",
            "<tool_call>{\"name\":\"view\",\"arguments\":\"{\\\"path\\\": \\\"a.py\\\"}\"}</tool_call>\n",
            "<tool_call>\n{\"name\": \"submit\", \"argu"
        );
        let (rest, calls) = extract(text);
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].function.name, "bash");
        assert_eq!(calls[0].function.arguments, r#"{"command":"ls -la"}"#);
        assert_eq!(calls[1].function.name, "view");
        assert_eq!(calls[1].function.arguments, r#"{"path": "a.py"}"#);
        // Cut at max_tokens: not a call, kept as the text it is.
        assert!(rest.starts_with("I will look."), "{rest}");
        assert!(
            rest.ends_with("<tool_call>\n{\"name\": \"submit\", \"argu"),
            "{rest}"
        );
        let (rest, calls) =
            extract("<tool_call>{\"name\": \"bash\", \"arguments\": \"ls\"}</tool_call>");
        assert!(
            calls.is_empty(),
            "string arguments that are not a JSON object"
        );
        assert!(rest.starts_with("<tool_call>"));
    }

    #[test]
    fn xml_calls_bare_and_wrapped_and_a_cut_one() {
        let text = "<think>plan</think>\n<function=bash>\n<parameter=command>\npython -c 'print(1)'\n</parameter>\n</function>\n<tool_call>\n<function=edit>\n<parameter=path>\na.py\n</parameter>\n<parameter=text>\nx = 1\ny = 2\n</parameter>\n</function>\n</tool_call>\n<function=submit>";
        let (rest, calls) = extract(text);
        assert_eq!(rest, "<think>plan</think>");
        let names: Vec<&str> = calls.iter().map(|c| c.function.name.as_str()).collect();
        assert_eq!(names, ["bash", "edit", "submit"]);
        assert_eq!(
            calls[0].function.arguments,
            r#"{"command":"python -c 'print(1)'"}"#
        );
        assert_eq!(
            calls[1].function.arguments,
            r#"{"path":"a.py","text":"x = 1\ny = 2"}"#
        );
        assert_eq!(calls[2].function.arguments, "{}");
    }

    #[test]
    fn text_that_only_looks_like_a_call_stays_text() {
        let text = "Use <tool_call> tags like this: <tool_call>not json at all</tool_call> ok";
        let (rest, calls) = extract(text);
        assert!(calls.is_empty());
        assert_eq!(rest, text);
        assert!(!may_hold_calls("plain answer"));
    }
}
