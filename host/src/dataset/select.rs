//! `--select EXPR`: which stored trajectories go into shards, as a CEL expression
//! (Common Expression Language, the `cel` crate) over each trajectory's facts, e.g.
//! `format == "sera" && stage == "T2" && r != null && r >= 0.5 && tool_calls <= 40`.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use cel::{Context, Program, Value};

/// The variables an expression can use, with what they hold.
pub const VARIABLES: [(&str, &str); 12] = [
    (
        "format",
        "string: swe-agent, mini-swe-agent, sera, openai-jsonl",
    ),
    ("source", "string: the imported file"),
    (
        "locator",
        "string: where in the file (`whole file`, `line 12`)",
    ),
    ("instance_id", "string or null"),
    (
        "stage",
        "string or null: T1 or T2 for SERA rows (T2 when it has a target patch)",
    ),
    (
        "r",
        "double or null: the verdict's score (null without a verifier, a pair or a score)",
    ),
    ("scored", "bool: r is not null"),
    ("messages", "int: messages in the trajectory"),
    ("tool_calls", "int: tool calls in the trajectory"),
    (
        "patch_lines",
        "int: change lines (+/-) in the trajectory's patch",
    ),
    ("func_name", "string or null: SERA rows' function"),
    ("chars", "int: characters of message content"),
];

/// What an expression sees of one trajectory.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub format: String,
    pub source: String,
    pub locator: String,
    pub instance_id: Option<String>,
    pub stage: Option<String>,
    pub r: Option<f64>,
    pub messages: usize,
    pub tool_calls: usize,
    pub patch_lines: usize,
    pub func_name: Option<String>,
    pub chars: usize,
}

fn opt_str(v: &Option<String>) -> Value {
    match v {
        Some(s) => Value::from(s.as_str()),
        None => Value::Null,
    }
}

/// A compiled selection.
pub struct Selection {
    text: String,
    program: Program,
}

impl Selection {
    /// Compiles `text`; an unknown variable is an error that lists the known ones.
    pub fn compile(text: &str) -> Result<Selection> {
        let program = Program::compile(text)
            .map_err(|e| anyhow!("--select {text:?}: not a CEL expression: {e}"))?;
        for v in program.references().variables() {
            if !VARIABLES.iter().any(|(n, _)| *n == v) {
                let known: Vec<&str> = VARIABLES.iter().map(|(n, _)| *n).collect();
                bail!(
                    "--select {text:?}: unknown variable `{v}` (known: {})",
                    known.join(", ")
                );
            }
        }
        Ok(Selection {
            text: text.to_string(),
            program,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether `facts` is selected; an evaluation error (say `r >= 0.5` where r is null) or a
    /// result that is not a bool is returned as the reason it is not.
    pub fn matches(&self, f: &Facts) -> std::result::Result<bool, String> {
        let mut ctx = Context::default();
        ctx.add_variable_from_value("format", f.format.as_str());
        ctx.add_variable_from_value("source", f.source.as_str());
        ctx.add_variable_from_value("locator", f.locator.as_str());
        ctx.add_variable_from_value("instance_id", opt_str(&f.instance_id));
        ctx.add_variable_from_value("stage", opt_str(&f.stage));
        ctx.add_variable_from_value("r", f.r.map_or(Value::Null, Value::Float));
        ctx.add_variable_from_value("scored", Value::Bool(f.r.is_some()));
        ctx.add_variable_from_value("messages", Value::Int(f.messages as i64));
        ctx.add_variable_from_value("tool_calls", Value::Int(f.tool_calls as i64));
        ctx.add_variable_from_value("patch_lines", Value::Int(f.patch_lines as i64));
        ctx.add_variable_from_value("func_name", opt_str(&f.func_name));
        ctx.add_variable_from_value("chars", Value::Int(f.chars as i64));
        match self.program.execute(&ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("the expression gave {other:?}, not a bool")),
            Err(e) => Err(format!("{e}")),
        }
    }
}

/// Reasons rows were not selected, with counts (for the report).
pub type NotSelected = BTreeMap<String, usize>;

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            format: "sera".into(),
            stage: Some("T2".into()),
            r: Some(0.75),
            tool_calls: 12,
            ..Facts::default()
        }
    }

    #[test]
    fn selects_on_strings_numbers_and_null() {
        let s = Selection::compile(
            r#"format == "sera" && stage == "T2" && r >= 0.5 && tool_calls <= 40"#,
        )
        .unwrap();
        assert_eq!(s.matches(&facts()), Ok(true));
        let s = Selection::compile("r != null && r >= 0.8").unwrap();
        assert_eq!(s.matches(&facts()), Ok(false));
        let unscored = Facts { r: None, ..facts() };
        assert_eq!(s.matches(&unscored), Ok(false));
        assert!(Selection::compile("r >= 0.5")
            .unwrap()
            .matches(&unscored)
            .is_err());
        assert_eq!(
            Selection::compile("instance_id == null")
                .unwrap()
                .matches(&facts()),
            Ok(true)
        );
    }

    #[test]
    fn unknown_variables_and_bad_syntax_are_named() {
        let e = Selection::compile("formt == 'sera'")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown variable `formt`"), "{e}");
        assert!(e.contains("format, source"), "{e}");
        let e = Selection::compile("r >= ").err().unwrap().to_string();
        assert!(e.contains("not a CEL expression"), "{e}");
        let s = Selection::compile("messages").unwrap();
        assert!(s.matches(&facts()).unwrap_err().contains("not a bool"));
    }
}
