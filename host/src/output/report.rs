//! `report.html`: one self-contained page (inline CSS and SVG, nothing fetched) with the
//! funnel, the distributions a reader checks before training on the rows, and the
//! decontamination and near-duplicate results.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::inputs::DocInputs;
use super::plots::{bars, histogram, Bins};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn figure(s: &mut String, svg: &str, caption: &str) {
    let _ = writeln!(
        s,
        "<figure>{svg}<figcaption>{}</figcaption></figure>",
        esc(caption)
    );
}

fn table(s: &mut String, head: &[&str], rows: &[Vec<String>]) {
    s.push_str("<table><tr>");
    for h in head {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr>\n");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{}</td>", esc(c));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
}

fn sorted_desc(m: &BTreeMap<String, u64>, top: usize) -> (Vec<String>, Vec<u64>) {
    let mut v: Vec<(&String, &u64)> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let rest: u64 = v.iter().skip(top).map(|(_, n)| **n).sum();
    let mut labels: Vec<String> = v.iter().take(top).map(|(k, _)| (*k).clone()).collect();
    let mut values: Vec<u64> = v.iter().take(top).map(|(_, n)| **n).collect();
    if v.len() > top {
        labels.push(format!("{} others", v.len() - top));
        values.push(rest);
    }
    (labels, values)
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:1200px;color:#222}\
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}\
.grid{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;border:1px solid #ddd;padding:4px}\
figcaption{font-size:.85em;color:#555;max-width:600px}table{border-collapse:collapse;margin:.6em 0}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}code{background:#f4f4f4}";

/// The page for `d`; with `timings` (seconds of recorded teacher latency per row, from
/// `sera-host report --timings`), a latency chart too. Without them the page depends on the
/// rows and the configuration only.
pub fn render(d: &DocInputs, merkle_root: &str, timings: Option<&[f64]>) -> String {
    let f = &d.facts;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sera-host dataset report</title><style>{STYLE}</style></head><body>\n"
    );
    let _ = writeln!(
        s,
        "<h1>sera-host dataset report</h1>\n<p>{} rows made by <code>sera-host {}</code>. {}</p>\n<p>Merkle root of the shards: <code>{}</code>. Teacher: <code>{}</code>. Tokens: {}.</p>",
        f.len(),
        esc(&d.made_by),
        esc(&d.description),
        esc(merkle_root),
        esc(d.teacher_model.as_deref().unwrap_or("-")),
        esc(&d.tokenizer)
    );

    s.push_str("<h2>Funnel</h2>\n<div class=\"grid\">\n");
    let (labels, values): (Vec<String>, Vec<u64>) = d.funnel.iter().cloned().unzip();
    figure(
        &mut s,
        &bars("Stage funnel", "count", &labels, &values),
        "What reached each stage, from the selected items to the rows in the shards.",
    );
    if !d.dropped.is_empty() {
        let (l, v) = sorted_desc(&d.dropped, 20);
        figure(
            &mut s,
            &bars("Stopped or dropped, by reason", "count", &l, &v),
            "Items that stopped before verification and rows that filters, truncation, decontamination or dedup removed.",
        );
    }
    s.push_str("</div>\n");

    s.push_str("<h2>Rows</h2>\n<div class=\"grid\">\n");
    let rs: Vec<f64> = f.iter().filter_map(|x| x.r).collect();
    figure(
        &mut s,
        &histogram(
            "Verification score r",
            "r (bins of 0.1; r = 1 alone in the last)",
            &rs,
            Bins::Fixed {
                lo: 0.0,
                hi: 1.1,
                n: 11,
            },
        ),
        &format!("{} of {} rows carry a score.", rs.len(), f.len()),
    );
    let ratios: Vec<f64> = f.iter().map(|x| x.truncation_ratio).collect();
    figure(
        &mut s,
        &histogram(
            "Truncation ratio",
            "messages kept / messages (1 = whole)",
            &ratios,
            Bins::Fixed {
                lo: 0.0,
                hi: 1.1,
                n: 11,
            },
        ),
        "How much of each trajectory truncation kept.",
    );
    let tokens: Vec<f64> = f.iter().map(|x| x.tokens as f64).collect();
    figure(
        &mut s,
        &histogram("Tokens per row", "tokens", &tokens, Bins::Counts),
        &format!(
            "{} tokens in all ({}).",
            f.iter().map(|x| x.tokens).sum::<u64>(),
            d.tokenizer
        ),
    );
    let turns: Vec<f64> = f.iter().map(|x| x.turns as f64).collect();
    figure(
        &mut s,
        &histogram("Assistant turns per row", "turns", &turns, Bins::Counts),
        "Assistant messages as emitted.",
    );
    let patch: Vec<f64> = f.iter().map(|x| x.patch_lines as f64).collect();
    figure(
        &mut s,
        &histogram("Patch lines per row", "changed lines", &patch, Bins::Counts),
        "Lines the row's patch adds or removes.",
    );
    s.push_str("</div>\n");

    s.push_str("<h2>Tools</h2>\n<div class=\"grid\">\n");
    let mut calls: BTreeMap<String, u64> = BTreeMap::new();
    let mut exec: BTreeMap<String, u64> = BTreeMap::new();
    for x in f {
        for (k, v) in &x.tool_calls {
            *calls.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &x.exec {
            *exec.entry(k.clone()).or_default() += v;
        }
    }
    let (l, v) = sorted_desc(&calls, 30);
    figure(
        &mut s,
        &bars("Tool calls by tool", "calls", &l, &v),
        &format!(
            "{} tool calls in the emitted messages.",
            v.iter().sum::<u64>()
        ),
    );
    if !exec.is_empty() {
        let (l, v) = sorted_desc(&exec, 20);
        figure(
            &mut s,
            &bars("Commands by how they ended", "commands", &l, &v),
            "The rollouts' bash commands, from their recorded results.",
        );
    }
    s.push_str("</div>\n");

    s.push_str("<h2>Sources</h2>\n<div class=\"grid\">\n");
    let mut repos: BTreeMap<String, u64> = BTreeMap::new();
    for x in f {
        *repos.entry(x.repo.clone()).or_default() += 1;
    }
    let (l, v) = sorted_desc(&repos, 30);
    figure(
        &mut s,
        &bars("Rows per repository", "rows", &l, &v),
        &format!("{} repositories.", repos.len()),
    );
    s.push_str("</div>\n");

    if f.iter().any(|x| x.teacher.exchanges > 0) {
        s.push_str("<h2>Teacher</h2>\n<div class=\"grid\">\n");
        let ex: Vec<f64> = f.iter().map(|x| x.teacher.exchanges as f64).collect();
        figure(
            &mut s,
            &histogram("Teacher exchanges per row", "exchanges", &ex, Bins::Counts),
            "Requests to the teacher behind each row's rollout.",
        );
        let pt: Vec<f64> = f.iter().map(|x| x.teacher.prompt_tokens as f64).collect();
        figure(
            &mut s,
            &histogram(
                "Teacher prompt tokens per row",
                "prompt tokens",
                &pt,
                Bins::Counts,
            ),
            &format!(
                "{} prompt tokens in all, as the teacher reported them.",
                pt.iter().sum::<f64>()
            ),
        );
        let ct: Vec<f64> = f
            .iter()
            .map(|x| x.teacher.completion_tokens as f64)
            .collect();
        figure(
            &mut s,
            &histogram(
                "Teacher completion tokens per row",
                "completion tokens",
                &ct,
                Bins::Counts,
            ),
            &format!("{} completion tokens in all.", ct.iter().sum::<f64>()),
        );
        match timings {
            Some(t) => figure(
                &mut s,
                &histogram("Teacher latency per row", "seconds", t, Bins::Counts),
                "Recorded latency of each row's exchanges (a measurement of the run that made them).",
            ),
            None => s.push_str("<p>Latency is a measurement of one run, not of the data, so this page leaves it out; <code>sera-host report MANIFEST --db CORPUS --timings</code> adds it.</p>\n"),
        }
        s.push_str("</div>\n");
    }

    s.push_str("<h2>Decontamination</h2>\n");
    match &d.decontamination {
        None => s.push_str("<p><strong>Not checked</strong>: no <code>[decontaminate] against</code> instance files were given.</p>\n"),
        Some(c) => {
            let _ = writeln!(
                s,
                "<p>{} instances from {}; {} rows {}; {} functions left out of the selection.</p>",
                c.instances,
                esc(&c.files.join(", ")),
                c.rows_total,
                match c.action {
                    super::decontam::Action::Drop => "dropped",
                    super::decontam::Action::Flag => "flagged",
                },
                c.skipped_functions.values().map(Vec::len).sum::<usize>()
            );
            let mut rows = Vec::new();
            let ids: std::collections::BTreeSet<&String> =
                c.skipped_functions.keys().chain(c.rows.keys()).collect();
            for i in ids {
                let fns = c.skipped_functions.get(i).cloned().unwrap_or_default();
                let why = c
                    .rows
                    .get(i)
                    .map(|w| {
                        w.iter()
                            .map(|(k, v)| format!("{v} by {k}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                rows.push(vec![i.clone(), fns.join(", "), why]);
            }
            if !rows.is_empty() {
                table(&mut s, &["instance", "functions skipped", "rows"], &rows);
            }
        }
    }
    s.push_str("<h2>Near-duplicates</h2>\n");
    match &d.dedup {
        None => s.push_str("<p>Not removed (no <code>[dedup]</code> section).</p>\n"),
        Some(x) => {
            let _ = writeln!(
                s,
                "<p>MinHash, {} permutations, {} bands of {}, threshold {} on {}.</p>",
                x.permutations,
                x.bands,
                x.rows_per_band,
                x.threshold,
                esc(&x.on.join(" and "))
            );
            let rows: Vec<Vec<String>> = x
                .groups
                .iter()
                .map(|(g, v)| {
                    vec![
                        g.clone(),
                        v.rows.to_string(),
                        v.clusters.to_string(),
                        v.removed.to_string(),
                    ]
                })
                .collect();
            table(
                &mut s,
                &["stage", "rows compared", "clusters", "rows removed"],
                &rows,
            );
        }
    }
    if !d.settings.is_empty() {
        s.push_str("<h2>Settings</h2>\n");
        let rows: Vec<Vec<String>> = d
            .settings
            .iter()
            .map(|(k, v)| vec![k.clone(), v.clone()])
            .collect();
        table(&mut s, &["step", "settings"], &rows);
    }
    s.push_str("</body></html>\n");
    s
}
