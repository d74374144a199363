//! `sera-host plugin check`: a conformance run for a plugin's world, so a third-party plugin
//! can be trusted before it scores a corpus. For a verifier: it initialises with the config;
//! every verdict keeps the contract (score in [0, 1] or none, matched <= total); the same pair
//! gives the same verdict across calls and across instances; `verify-batch` agrees with
//! `verify`; an empty candidate, an empty reference and a multi-megabyte pair are handled within
//! the default fuel and memory; optionally, every verdict equals another verifier's (`--same-as`).
//! Other worlds get the checks that apply to them without a teacher.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use super::engine::{LoadedPlugin, PluginEngine};
use super::inspect::{inspect, WorldKind};
use super::limits::Limits;
use super::verifier::{PatchPair, Verdict, Verifier};
use crate::tokenizer::{TokenCounter, TokenizerSource};
use crate::trajectory::{FunctionCall, Message, Role, ToolCall, Trajectory};

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub plugin: String,
    pub sha256: String,
    pub world: String,
    pub checks: Vec<Check>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// A check that passes when `problems` is empty; its detail is `ok`, else the problems.
    fn push_all(&mut self, name: &str, problems: Vec<String>, ok: impl Into<String>) {
        let passed = problems.is_empty();
        let detail = if passed {
            ok.into()
        } else {
            problems.join("; ")
        };
        self.push(name, passed, detail);
    }

    fn push(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            passed,
            detail: detail.into(),
        });
    }

    pub fn render(&self) -> String {
        let mut s = format!(
            "plugin {} (sha256 {}), world {}\n",
            self.plugin,
            &self.sha256[..16.min(self.sha256.len())],
            self.world
        );
        for c in &self.checks {
            s.push_str(&format!(
                "{} {}: {}\n",
                if c.passed { "pass" } else { "FAIL" },
                c.name,
                c.detail
            ));
        }
        let failed = self.checks.iter().filter(|c| !c.passed).count();
        s.push_str(&if failed == 0 {
            format!("all {} checks passed\n", self.checks.len())
        } else {
            format!("{failed} of {} checks failed\n", self.checks.len())
        });
        s
    }
}

/// A small Python module and edits of it: the built-in pairs a verifier is checked on.
const BASE: &str = r##"import os
import sys


def read_config(path, default=None):
    """Read a key=value file into a dict."""
    if not os.path.exists(path):
        return default
    result = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition("=")
            result[key.strip()] = value.strip()
    return result


def scale(values, factor):
    return [v * factor for v in values]


def main(argv):
    cfg = read_config(argv[1])
    print(scale([1, 2, 3], int(cfg.get("factor", 1))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
"##;

fn diff(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header("a/tool/config.py", "b/tool/config.py")
        .to_string()
}

fn edit(pairs: &[(&str, &str)]) -> String {
    let mut s = BASE.to_string();
    for (from, to) in pairs {
        s = s.replacen(from, to, 1);
    }
    s
}

/// Real-looking pairs: a fix (P1) and candidates that repeat all, part or none of it.
pub fn sample_pairs() -> Vec<(String, PatchPair)> {
    let p1_edits = [
        ("        return default", "        return {} if default is None else default"),
        ("    return [v * factor for v in values]", "    if factor == 0:\n        return [0 for _ in values]\n    return [v * factor for v in values]"),
    ];
    let p1 = diff(BASE, &edit(&p1_edits));
    let same = p1.clone();
    let part = diff(BASE, &edit(&p1_edits[..1]));
    let other = diff(
        BASE,
        &edit(&[("    return 0\n", "    return 1 if cfg is None else 0\n")]),
    );
    let mixed = diff(
        BASE,
        &edit(&[
            p1_edits[1],
            (
                "            line = line.strip()",
                "            line = line.rstrip(\"\\n\").strip()",
            ),
        ]),
    );
    let crlf = p1.replace('\n', "\r\n");
    vec![
        (
            "identical".into(),
            PatchPair {
                reference: p1.clone(),
                candidate: same,
            },
        ),
        (
            "part of the fix".into(),
            PatchPair {
                reference: p1.clone(),
                candidate: part,
            },
        ),
        (
            "another edit".into(),
            PatchPair {
                reference: p1.clone(),
                candidate: other,
            },
        ),
        (
            "part of the fix and another edit".into(),
            PatchPair {
                reference: p1.clone(),
                candidate: mixed,
            },
        ),
        (
            "CRLF line ends".into(),
            PatchPair {
                reference: crlf.clone(),
                candidate: crlf,
            },
        ),
    ]
}

/// A pair of ~140 KB patches with 2,000 change lines each (real patches have tens).
fn huge_pair() -> PatchPair {
    let mut old = String::new();
    let mut new = String::new();
    for i in 0..2_000 {
        old.push_str(&format!(
            "value_{i} = compute({i}, scale=1.0)  # original line\n"
        ));
        if i % 2 == 0 {
            new.push_str(&format!(
                "value_{i} = compute({i}, scale=2.0)  # changed line\n"
            ));
        } else {
            new.push_str(&format!(
                "value_{i} = compute({i}, scale=1.0)  # original line\n"
            ));
        }
    }
    let p = diff(&old, &new);
    PatchPair {
        reference: p.clone(),
        candidate: p,
    }
}

/// Score, matched and total equal (what `--same-as` asks of another implementation).
fn same_score(a: &Verdict, b: &Verdict) -> bool {
    a.matched == b.matched
        && a.total == b.total
        && a.score.map(f64::to_bits) == b.score.map(f64::to_bits)
}

/// Everything equal, detail included (what determinism asks of one plugin).
fn same_verdict(a: &Verdict, b: &Verdict) -> bool {
    same_score(a, b) && a.detail == b.detail
}

fn show(v: &Result<Verdict, String>) -> String {
    match v {
        Ok(v) => format!(
            "score {} ({}/{})",
            v.score.map_or("none".into(), |s| format!("{s:.4}")),
            v.matched,
            v.total
        ),
        Err(e) => format!("error: {e}"),
    }
}

/// What to check a plugin with.
pub struct CheckOptions<'a> {
    pub world: Option<WorldKind>,
    pub config: &'a str,
    /// Another verifier, with its config, every verdict must equal.
    pub same_as: Option<(&'a LoadedPlugin, &'a str)>,
    /// Extra pairs (name, pair), e.g. real diffs.
    pub pairs: Vec<(String, PatchPair)>,
}

pub fn check(
    engine: &PluginEngine,
    plugin: &LoadedPlugin,
    opts: &CheckOptions<'_>,
) -> Result<CheckReport> {
    let info = inspect(engine, plugin)?;
    let mut report = CheckReport {
        plugin: plugin.source.to_string(),
        sha256: plugin.sha256.clone(),
        world: format!("{}@{}", info.world, info.version),
        checks: Vec::new(),
    };
    if let Some(want) = opts.world {
        let ok = want == info.world;
        report.push(
            "world",
            ok,
            if ok {
                format!("implements {want}")
            } else {
                format!("implements {}, not {want}", info.world)
            },
        );
        if !ok {
            return Ok(report);
        }
    }
    match info.world {
        WorldKind::Verifier => check_verifier(engine, plugin, opts, &mut report),
        WorldKind::TrajectoryFilter | WorldKind::Truncation => {
            check_trajectory_world(engine, plugin, info.world, opts.config, &mut report)
        }
        WorldKind::Tools => check_tools(engine, plugin, opts.config, &mut report),
        WorldKind::PrSynthesizer => {
            match super::PrSynthesizer::new(engine, plugin, opts.config, Limits::default()) {
                Ok(_) => report.push(
                    "link",
                    true,
                    "links with the host's log and llm imports (synthesize needs a teacher: run it in a pipeline with the scripted teacher)",
                ),
                Err(e) => report.push("link", false, format!("{e:#}")),
            }
        }
    }
    Ok(report)
}

fn check_verifier(
    engine: &PluginEngine,
    plugin: &LoadedPlugin,
    opts: &CheckOptions<'_>,
    report: &mut CheckReport,
) {
    let limits = Limits::default();
    let mut v = match Verifier::new(engine, plugin, opts.config, limits.clone()) {
        Ok(v) => {
            report.push("init", true, format!("init({}) succeeded", opts.config));
            v
        }
        Err(e) => {
            report.push("init", false, format!("{e:#}"));
            return;
        }
    };
    let mut pairs = sample_pairs();
    pairs.extend(opts.pairs.iter().cloned());
    // Contract, and the first verdicts.
    let started = Instant::now();
    let first = score_all(&mut v, pairs.iter());
    let per_call = started.elapsed().as_secs_f64() * 1e6 / pairs.len().max(1) as f64;
    let broken: Vec<String> = pairs
        .iter()
        .zip(&first)
        .filter_map(|((name, _), r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    report.push_all(
        "contract",
        broken,
        format!(
            "{} well-formed pairs scored, every verdict with a score in [0, 1] or none and matched <= total ({per_call:.0} µs per call)",
            pairs.len()
        ),
    );
    // Same input, same output: again in this instance, then in a fresh one.
    let again = score_all(&mut v, pairs.iter());
    report.push_all(
        "deterministic across calls",
        differences(&pairs, &first, &again, same_verdict, (" then ", "")),
        "every pair scored twice in one instance: the same verdicts",
    );
    match Verifier::new(engine, plugin, opts.config, limits.clone()) {
        Ok(mut fresh) => {
            let mut other = score_all(&mut fresh, pairs.iter().rev());
            other.reverse();
            report.push_all(
                "deterministic across instances",
                differences(&pairs, &first, &other, same_verdict, (" then ", "")),
                "a fresh instance, pairs in reverse order: the same verdicts",
            );
        }
        Err(e) => report.push("deterministic across instances", false, format!("{e:#}")),
    }
    // Batches agree with single calls.
    let names: Vec<String> = pairs.iter().map(|(n, _)| n.clone()).collect();
    let batch_pairs: Vec<PatchPair> = pairs.iter().map(|(_, p)| p.clone()).collect();
    let batch: Vec<Result<Verdict, String>> = v
        .verify_batch(&names, &batch_pairs)
        .into_iter()
        .map(|r| r.map_err(|f| f.message))
        .collect();
    report.push_all(
        "verify-batch agrees with verify",
        differences(&pairs, &first, &batch, same_verdict, (" then ", "")),
        format!("{} pairs in one batch: the same verdicts", pairs.len()),
    );
    // Edge inputs: answered (a verdict or an error), never a trap or a limit.
    let reference = pairs[0].1.reference.clone();
    for (name, pair) in [
        (
            "empty candidate",
            PatchPair {
                reference: reference.clone(),
                candidate: String::new(),
            },
        ),
        (
            "empty reference",
            PatchPair {
                reference: String::new(),
                candidate: reference.clone(),
            },
        ),
        ("huge pair (2,000 change lines, 140 KB each)", huge_pair()),
    ] {
        let t = Instant::now();
        let r = v.verify(name, &pair);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        match r {
            Ok(verdict) => report.push(
                name,
                true,
                format!(
                    "{} in {ms:.1} ms, {} fuel of {}, linear memory {:.1} MiB of {}",
                    show(&Ok(verdict)),
                    v.last_fuel_used(),
                    limits.fuel_per_call,
                    v.memory_bytes() as f64 / (1 << 20) as f64,
                    limits.memory_bytes >> 20
                ),
            ),
            Err(f) => {
                use super::failure::FailureKind;
                // A clean `err` is an answer; a trap, a limit or a broken contract is not.
                let ok = f.kind == FailureKind::GuestError;
                report.push(
                    name,
                    ok,
                    if ok {
                        format!("refused with an error: {}", f.message)
                    } else {
                        format!("{}: {}", f.kind, f.message)
                    },
                );
            }
        }
    }
    if let Some((other, other_config)) = opts.same_as {
        match Verifier::new(engine, other, other_config, limits) {
            Ok(mut o) => {
                let theirs = score_all(&mut o, pairs.iter());
                report.push_all(
                    &format!("same scores as {}", other.source),
                    differences(&pairs, &first, &theirs, same_score, (" here, ", " there")),
                    format!("{} pairs: score, matched and total equal", pairs.len()),
                );
            }
            Err(e) => report.push("same-as", false, format!("{}: {e:#}", other.source)),
        }
    }
}

/// Every pair's verdict, or the failure as "kind: message".
fn score_all<'p>(
    v: &mut Verifier,
    pairs: impl Iterator<Item = &'p (String, PatchPair)>,
) -> Vec<Result<Verdict, String>> {
    pairs
        .map(|(name, p)| {
            v.verify(name, p)
                .map_err(|f| format!("{}: {}", f.kind, f.message))
        })
        .collect()
}

/// The pairs whose verdicts in `a` and `b` disagree by `same` (two errors agree), each as
/// "NAME: A{mid}B{end}", e.g. (" then ", "") or (" here, ", " there").
fn differences(
    pairs: &[(String, PatchPair)],
    a: &[Result<Verdict, String>],
    b: &[Result<Verdict, String>],
    same: fn(&Verdict, &Verdict) -> bool,
    (mid, end): (&str, &str),
) -> Vec<String> {
    pairs
        .iter()
        .zip(a.iter().zip(b))
        .filter(|(_, (x, y))| match (x, y) {
            (Ok(x), Ok(y)) => !same(x, y),
            (Err(_), Err(_)) => false,
            _ => true,
        })
        .map(|((name, _), (x, y))| format!("{name}: {}{mid}{}{end}", show(x), show(y)))
        .collect()
}

/// Tools: init over a workspace, a well-formed tool list (names unique, parameters a JSON
/// object schema), the same list from a second instance.
fn check_tools(
    engine: &PluginEngine,
    plugin: &LoadedPlugin,
    config: &str,
    report: &mut CheckReport,
) {
    let tools = match super::ToolsPlugin::new(engine, plugin, config, Limits::default()) {
        Ok(t) => t,
        Err(e) => {
            report.push("link", false, format!("{e:#}"));
            return;
        }
    };
    let ws = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            report.push("init", false, format!("a workspace: {e}"));
            return;
        }
    };
    let _ = std::fs::write(ws.path().join("config.py"), BASE);
    let list = |item: &str| -> Result<Vec<(String, String, String)>, String> {
        let s = tools.open(item, ws.path()).map_err(|f| f.to_string())?;
        Ok(s.specs()
            .iter()
            .map(|t| (t.name.clone(), t.description.clone(), t.parameters.clone()))
            .collect())
    };
    let first = match list("check 1") {
        Ok(l) => {
            report.push(
                "init",
                true,
                format!(
                    "{} tools: {}",
                    l.len(),
                    l.iter()
                        .map(|t| t.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            l
        }
        Err(e) => {
            report.push("init", false, e);
            return;
        }
    };
    let mut problems = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (name, _, params) in &first {
        if !names.insert(name) {
            problems.push(format!("{name}: listed twice"));
        }
        match serde_json::from_str::<serde_json::Value>(params) {
            Ok(v) if v.is_object() => {}
            _ => problems.push(format!("{name}: parameters are not a JSON object schema")),
        }
    }
    if first.is_empty() {
        problems.push("no tools".into());
    }
    report.push(
        "tool specs",
        problems.is_empty(),
        if problems.is_empty() {
            "names unique, parameters JSON object schemas".into()
        } else {
            problems.join("; ")
        },
    );
    match list("check 2") {
        Ok(second) => report.push(
            "stable across instances",
            second == first,
            if second == first {
                "a second instance lists the same tools".to_string()
            } else {
                "a second instance lists different tools".to_string()
            },
        ),
        Err(e) => report.push("stable across instances", false, e),
    }
}

/// A short trajectory with a tool call and its result.
fn sample_trajectory() -> Trajectory {
    let mut a = Message::text(Role::Assistant, "Let me look at the config reader.");
    a.tool_calls.push(ToolCall {
        function: FunctionCall {
            arguments: r#"{"path": "tool/config.py"}"#.into(),
            name: "view".into(),
        },
        id: "call_1".into(),
        kind: "function".into(),
    });
    let mut t = Message::text(Role::Tool, BASE);
    t.tool_call_id = Some("call_1".into());
    Trajectory {
        messages: vec![
            Message::text(Role::System, "You are a coding agent."),
            Message::text(
                Role::User,
                "read_config returns None for a missing file; callers expect a dict.",
            ),
            a,
            t,
            Message::text(
                Role::Assistant,
                "Fixed: a missing file now gives {} unless a default is given.",
            ),
        ],
        tools: Vec::new(),
        steps: Vec::new(),
        environment: None,
    }
}

fn check_trajectory_world(
    engine: &PluginEngine,
    plugin: &LoadedPlugin,
    world: WorldKind,
    config: &str,
    report: &mut CheckReport,
) {
    let tokens = match TokenCounter::new(&TokenizerSource::Estimate) {
        Ok(t) => std::sync::Arc::new(t),
        Err(e) => {
            report.push("init", false, format!("{e:#}"));
            return;
        }
    };
    let t = sample_trajectory();
    let patch = pairs_patch();
    let run = || -> Result<String, String> {
        if world == WorldKind::TrajectoryFilter {
            let f = super::TrajectoryFilter::new(
                engine,
                plugin,
                config,
                Limits::default(),
                tokens.clone(),
            )
            .map_err(|e| format!("{e:#}"))?;
            f.check("check", &t, &patch)
                .map(|r| format!("{r:?}"))
                .map_err(|e| e.to_string())
        } else {
            let tr =
                super::Truncator::new(engine, plugin, config, Limits::default(), tokens.clone())
                    .map_err(|e| format!("{e:#}"))?;
            let mut out = Vec::new();
            for budget in [1, 50, 200, 100_000] {
                out.push(format!(
                    "budget {budget}: {:?}",
                    tr.keep("check", &t, budget).map_err(|e| e.to_string())?
                ));
            }
            Ok(out.join(", "))
        }
    };
    match run() {
        Ok(first) => {
            report.push("init and call", true, first.clone());
            match run() {
                Ok(second) if second == first => report.push(
                    "deterministic across instances",
                    true,
                    "a second instance answered the same",
                ),
                Ok(second) => report.push(
                    "deterministic across instances",
                    false,
                    format!("{first} then {second}"),
                ),
                Err(e) => report.push("deterministic across instances", false, e),
            }
        }
        Err(e) => report.push("init and call", false, e),
    }
}

fn pairs_patch() -> String {
    sample_pairs().remove(0).1.reference
}
