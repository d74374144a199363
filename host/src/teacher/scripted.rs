//! The scripted teacher: a TEST DOUBLE, not a model. A fixed, deterministic policy that drives
//! the real tools the way an agent would, so rollouts, recording, replay and patches can be
//! exercised offline and in CI:
//!
//! 1. find the target function with `search_file` (and its class, for a method),
//! 2. read it with `str_replace_editor view`,
//! 3. where the tools include `bash`: run a reproduction (`python -c`, importing the target's
//!    module from the workspace with the repository's environment and looking the function up),
//! 4. edit it with `str_replace` (a comment line after the signature; `insert` if the
//!    replacement is refused),
//! 5. with `bash`, run the reproduction again to see the edit took effect,
//! 6. `submit`, and `submit` again when the host asks to confirm.
//!
//! A request without tools gets text: YES to a self-check question, otherwise a pull-request
//! description of the target (for PR synthesis) naming the function and file, with
//! reproduction steps and no fix.
//!
//! It finds its target in the first user message: the first backticked name ending in `.py`
//! is the file, the first other backticked name is the function (`Class.method` allowed).
//! It never invents facts about code; its one edit is a marker comment.

use serde_json::{json, Value};

use super::protocol::{parse_response, BoxFuture, ChatRequest, Completion, Teacher, TeacherError};

pub struct ScriptedTeacher;

/// The comment the scripted teacher adds inside the target function.
pub const MARKER: &str = "# NOTE(scripted-teacher): reviewed";

pub struct Target {
    file: String,
    qualname: String,
}

fn target(messages: &[Value]) -> Option<Target> {
    let first_user = messages
        .iter()
        .find(|m| m["role"] == "user")?
        .get("content")?
        .as_str()?;
    let ticked: Vec<&str> = first_user.split('`').skip(1).step_by(2).collect();
    let file = ticked.iter().find(|t| t.ends_with(".py"))?.to_string();
    let qualname = ticked
        .iter()
        .find(|t| !t.ends_with(".py") && !t.is_empty() && !t.contains(' '))?
        .to_string();
    Some(Target { file, qualname })
}

/// (tool name, arguments, the tool's answer) of each call so far.
fn history(messages: &[Value]) -> Vec<(String, Value, String)> {
    let mut calls = Vec::new();
    for m in messages {
        if let Some(tc) = m.get("tool_calls").and_then(Value::as_array) {
            for c in tc {
                let args = c["function"]["arguments"]
                    .as_str()
                    .and_then(|a| serde_json::from_str(a).ok())
                    .unwrap_or(Value::Null);
                let id = c["id"].as_str().unwrap_or_default().to_string();
                let answer = messages
                    .iter()
                    .find(|r| r["role"] == "tool" && r["tool_call_id"] == id.as_str())
                    .and_then(|r| r["content"].as_str())
                    .unwrap_or_default()
                    .to_string();
                let name = c["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                calls.push((name, args, answer));
            }
        }
    }
    calls
}

/// Line numbers from a `search_file` answer (`Line 12:...`).
fn found_lines(answer: &str) -> Vec<u64> {
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("Line ")?.split(':').next()?.parse().ok())
        .collect()
}

/// The module a workspace file is imported as (`src/` layouts included).
fn module_of(file: &str) -> String {
    let f = file.strip_prefix("src/").unwrap_or(file);
    let f = f.strip_suffix(".py").unwrap_or(f);
    let f = f.strip_suffix("/__init__").unwrap_or(f);
    f.replace('/', ".")
}

/// The reproduction: import the target's module from /workspace with the repository's
/// environment, look the function up, and say whether the loaded source carries the edit.
pub fn reproduction(t: &Target) -> String {
    let script = [
        "import importlib, inspect, sys".to_string(),
        "sys.path.insert(0, '/workspace')".into(),
        "try:".into(),
        format!("    m = importlib.import_module('{}')", module_of(&t.file)),
        "    obj = m".into(),
        format!("    for part in '{}'.split('.'):", t.qualname),
        "        if part == '<locals>':".into(),
        "            break".into(),
        "        obj = getattr(obj, part)".into(),
        "    edited = 'NOTE(scripted-' + 'teacher)' in inspect.getsource(m)".into(),
        format!(
            "    print('{q}:', type(obj).__name__, 'in', m.__file__.replace('/workspace/', ''), '(edited)' if edited else '(not edited yet)')",
            q = t.qualname
        ),
        "except Exception as e:".into(),
        "    print('reproduction failed:', type(e).__name__, e)".into(),
        "print('python', sys.version.split()[0], 'with the repository environment' if sys.prefix != sys.base_prefix else 'bare interpreter')".into(),
    ];
    format!("cd /workspace && python -c \"\n{}\n\"", script.join("\n"))
}

/// The next tool call: (name, arguments).
fn next_call(t: &Target, calls: &[(String, Value, String)], has_bash: bool) -> (String, Value) {
    let name = t
        .qualname
        .rsplit('.')
        .next()
        .unwrap_or(&t.qualname)
        .to_string();
    let class = t
        .qualname
        .rsplit_once('.')
        .map(|(outer, _)| outer.rsplit('.').next().unwrap_or(outer).to_string())
        .filter(|c| c != "<locals>");
    let search = |term: String| {
        (
            "search_file".to_string(),
            json!({"search_term": term, "file": t.file}),
        )
    };
    let submit = || ("submit".to_string(), json!({}));
    fn was<'c>(
        calls: &'c [(String, Value, String)],
        tool: &'c str,
        cmd: Option<&'c str>,
    ) -> impl Iterator<Item = &'c (String, Value, String)> {
        calls
            .iter()
            .filter(move |(n, a, _)| n == tool && cmd.is_none_or(|c| a["command"] == c))
    }
    if let Some((_, _, _)) = was(calls, "submit", None).next() {
        return submit();
    }
    let def_term = format!("def {name}(");
    let Some((_, _, def_answer)) =
        was(calls, "search_file", None).find(|(_, a, _)| a["search_term"] == def_term.as_str())
    else {
        return search(def_term);
    };
    let defs = found_lines(def_answer);
    if defs.is_empty() {
        return submit();
    }
    let class_term = class.as_ref().map(|c| format!("class {c}"));
    let mut line = defs[0];
    if let (Some(term), true) = (&class_term, defs.len() > 1) {
        match was(calls, "search_file", None).find(|(_, a, _)| a["search_term"] == term.as_str()) {
            None => return search(term.clone()),
            Some((_, _, answer)) => {
                if let Some(c) = found_lines(answer).first() {
                    line = defs.iter().copied().find(|d| d > c).unwrap_or(defs[0]);
                }
            }
        }
    }
    let Some((_, _, view)) = was(calls, "str_replace_editor", Some("view")).next() else {
        return (
            "str_replace_editor".into(),
            json!({"command": "view", "path": t.file, "view_range": [line, -1]}),
        );
    };
    let bash_runs = was(calls, "bash", None).count();
    if has_bash && bash_runs == 0 {
        return ("bash".into(), json!({"command": reproduction(t)}));
    }
    // `     12\tdef f(a,` -> the file's lines from `line` on (tabs were expanded; code that
    // indents with tabs makes the replacement fail, and the insert fallback takes over).
    let lines: Vec<&str> = view
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once('\t').map(|(_, text)| text))
        .collect();
    if was(calls, "str_replace_editor", Some("str_replace"))
        .next()
        .is_none()
        && !lines.is_empty()
    {
        // The signature runs to the first line ending with ':'; the old text is the signature
        // plus the first body line, unique in practice.
        let sig_end = lines
            .iter()
            .position(|l| l.split('#').next().unwrap_or("").trim_end().ends_with(':'))
            .unwrap_or(0);
        let indent: String = lines[0].chars().take_while(|c| c.is_whitespace()).collect();
        let body_indent = format!("{indent}    ");
        let head = lines[..=sig_end].join("\n");
        let body = lines.get(sig_end + 1).copied().unwrap_or("");
        let old = format!("{head}\n{body}");
        let new = format!("{head}\n{body_indent}{MARKER} `{}`\n{body}", t.qualname);
        return (
            "str_replace_editor".into(),
            json!({"command": "str_replace", "path": t.file, "old_str": old, "new_str": new}),
        );
    }
    let replaced = was(calls, "str_replace_editor", Some("str_replace"))
        .any(|(_, _, answer)| answer.contains("has been edited"));
    if !replaced
        && was(calls, "str_replace_editor", Some("insert"))
            .next()
            .is_none()
    {
        let indent: String = lines
            .first()
            .map(|l| l.chars().take_while(|c| c.is_whitespace()).collect())
            .unwrap_or_default();
        return (
            "str_replace_editor".into(),
            json!({"command": "insert", "path": t.file, "insert_line": line,
                   "new_str": format!("{indent}    {MARKER} `{}`", t.qualname)}),
        );
    }
    if has_bash && bash_runs == 1 {
        return ("bash".into(), json!({"command": reproduction(t)}));
    }
    submit()
}

/// The answer to a request without tools: a yes to a self-check question, otherwise a
/// pull-request description of the target (for PR synthesis) that names the function and the
/// file, in backticks, and describes no fix.
fn text_answer(messages: &[Value]) -> String {
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    if last_user.contains("Answer with YES or NO") {
        return "YES\nThe change edits the function the request is about and nothing else.".into();
    }
    match target(messages) {
        None => "I cannot tell which function this is about.".into(),
        Some(t) => format!(
            "`{q}` in `{f}` does not behave as documented\n\n\
             When I call `{q}` (defined in `{f}`) with ordinary arguments, the result is not what its \
             docstring and its callers expect.\n\n\
             Steps to reproduce:\n\
             1. Import the module that defines `{q}`.\n\
             2. Call `{q}` with typical arguments, as the existing callers do.\n\
             3. Compare the result with the documented behaviour.\n\n\
             Expected: the documented result.\n\
             Actual: the behaviour differs, and the code of `{q}` needs a closer look.",
            q = t.qualname,
            f = t.file
        ),
    }
}

/// The policy as an OpenAI endpoint sees it: a request body in, a response body out.
pub fn respond(request: &Value) -> Value {
    let empty = Vec::new();
    let messages = request["messages"].as_array().unwrap_or(&empty);
    let turn = messages.iter().filter(|m| m["role"] == "assistant").count();
    let model = request["model"].as_str().unwrap_or("scripted");
    let no_tools = request["tools"].as_array().is_none_or(|t| t.is_empty());
    let (content, tool_calls) = match target(messages) {
        _ if no_tools => (text_answer(messages), Vec::new()),
        None => (
            "I cannot find a backticked file and function in the task, so I stop here.".to_string(),
            vec![json!({"id": format!("call_{turn}"), "type": "function",
                        "function": {"name": "submit", "arguments": "{}"}})],
        ),
        Some(t) => {
            let calls = history(messages);
            let has_bash = request["tools"]
                .as_array()
                .is_some_and(|ts| ts.iter().any(|t| t["function"]["name"] == "bash"));
            let (name, args) = next_call(&t, &calls, has_bash);
            (
                format!("Step {turn}: {name}."),
                vec![json!({"id": format!("call_{turn}"), "type": "function",
                            "function": {"name": name, "arguments": crate::digest::canonical_json(&args)}})],
            )
        }
    };
    let prompt_tokens: usize = messages
        .iter()
        .map(|m| m["content"].as_str().map_or(0, str::len) / 4)
        .sum();
    json!({
        "id": format!("scripted-{turn}"),
        "object": "chat.completion",
        "model": model,
        "choices": [{
            "index": 0,
            "message": if tool_calls.is_empty() {
                json!({"role": "assistant", "content": content})
            } else {
                json!({"role": "assistant", "content": content, "tool_calls": tool_calls})
            },
            // As vLLM reports it with tool_choice "required".
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 20, "total_tokens": prompt_tokens + 20}
    })
}

impl Teacher for ScriptedTeacher {
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        sample: u32,
    ) -> BoxFuture<'a, Result<Completion, TeacherError>> {
        Box::pin(async move {
            let body = serde_json::to_value(request).expect("requests are JSON");
            let raw = crate::digest::canonical_json(&respond(&body)).into_bytes();
            let (message, finish_reason, usage) =
                parse_response(&raw).expect("the scripted policy writes valid responses");
            Ok(Completion {
                message,
                finish_reason,
                usage,
                latency_ms: 0,
                request_sha256: request.sha256().to_string(),
                sample,
                raw_body: raw,
            })
        })
    }

    fn describe(&self) -> String {
        "scripted".into()
    }
}
