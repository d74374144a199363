//! The dataset card: `README.md` in the Hugging Face format (a YAML header whose `configs`
//! name the shards per split, so `datasets.load_dataset(DIR)` needs no other argument), then
//! what a reader needs to trust the rows.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::facts::RowFacts;
use super::inputs::{size_category, split_pattern, DocInputs};

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// One table row of Markdown, with `|` in cells escaped.
fn md_row(cells: &[String]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
    format!("| {} |\n", cells.join(" | "))
}

pub fn render(d: &DocInputs, merkle_root: &str) -> String {
    let rows = d.facts.len();
    let mut s = String::new();
    s.push_str("---\n");
    let _ = writeln!(
        s,
        "license: {}",
        d.license.as_deref().map_or("other".to_string(), yaml_str)
    );
    s.push_str("task_categories:\n- text-generation\n");
    s.push_str(
        "tags:\n- code\n- agents\n- software-engineering\n- tool-use\n- synthetic\n- sera-host\n",
    );
    let _ = writeln!(s, "size_categories:\n- {}", size_category(rows));
    s.push_str("configs:\n- config_name: default\n  data_files:\n");
    if d.splits.len() > 1 {
        for (name, _) in &d.splits {
            let _ = writeln!(
                s,
                "  - split: {name}\n    path: {}",
                split_pattern(Some(name))
            );
        }
    } else {
        let _ = writeln!(s, "  - split: train\n    path: {}", split_pattern(None));
    }
    s.push_str("---\n\n");

    let _ = writeln!(s, "# Agent trajectories made by sera-host\n");
    let _ = writeln!(s, "{}\n", d.description);
    let _ = writeln!(
        s,
        "Each row is one trajectory in the OpenAI chat format: `messages` (system, user, assistant turns with `tool_calls`, tool results), `tools` (the function specs the model was offered) and `metadata` (row id, repository, function, stage, r, truncation ratio). `report.html` beside this card plots every number below.\n"
    );
    s.push_str("## Rows\n\n");
    s.push_str("| split | rows | shards |\n|---|---|---|\n");
    if d.splits.len() > 1 {
        for (name, n) in &d.splits {
            let _ = writeln!(s, "| {name} | {n} | `{}` |", split_pattern(Some(name)));
        }
    } else {
        let _ = writeln!(s, "| train | {rows} | `{}` |", split_pattern(None));
    }
    let by_stage = count_by(d, |f| f.stage.clone().unwrap_or_else(|| "-".into()));
    if d.splits.len() <= 1 {
        s.push_str("\nRows per stage: ");
        let parts: Vec<String> = by_stage.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "{}.", parts.join(", "));
    }
    let repos = count_by(d, |f| f.repo.clone());
    let _ = writeln!(
        s,
        "\nFrom {} repositor{} and {} distinct functions.",
        repos.len(),
        if repos.len() == 1 { "y" } else { "ies" },
        d.facts
            .iter()
            .filter_map(|f| f.function.as_ref().map(|x| (&f.repo, &x.path, &x.qualname)))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    if let Some(m) = &d.teacher_model {
        let _ = writeln!(s, "\nTeacher model: `{m}`.");
    }
    let _ = writeln!(s, "\nTokens are counted with {}.", d.tokenizer);

    s.push_str("\n## How the rows were chosen\n\n");
    s.push_str("| stage | count |\n|---|---|\n");
    for (k, v) in &d.funnel {
        s.push_str(&md_row(&[k.clone(), v.to_string()]));
    }
    if !d.dropped.is_empty() {
        s.push_str("\nStopped or dropped, by reason:\n\n| reason | count |\n|---|---|\n");
        for (k, v) in &d.dropped {
            s.push_str(&md_row(&[k.clone(), v.to_string()]));
        }
    }
    if !d.settings.is_empty() {
        s.push_str("\nSettings:\n\n| step | settings |\n|---|---|\n");
        for (k, v) in &d.settings {
            s.push_str(&md_row(&[k.clone(), format!("`{v}`")]));
        }
    }

    s.push_str("\n## Decontamination\n\n");
    match &d.decontamination {
        None => s.push_str(
            "**Not checked.** No `[decontaminate] against = [...]` instance files were given, so nothing here was compared with an evaluation benchmark. Rows made from a benchmark's own repositories (SWE-bench Verified's are Django, SymPy, Sphinx, ...) may overlap its instances: check before evaluating on them (`sera-host decontaminate --against FILES --db CORPUS`).\n",
        ),
        Some(c) => {
            let _ = writeln!(
                s,
                "Checked against {} instance{} from {} (sha256 {}). A row is contaminated when its function is one an instance's gold or test patch touches, when it was made from the instance itself, or when it shares a {}-word n-gram (lower case, punctuation ignored) with a problem statement or with the lines a gold patch adds. Contaminated rows were **{}**{}.\n",
                c.instances,
                if c.instances == 1 { "" } else { "s" },
                c.files.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "),
                c.sha256.iter().map(|h| format!("`{}`", &h[..16.min(h.len())])).collect::<Vec<_>>().join(", "),
                c.ngram,
                match c.action {
                    super::decontam::Action::Drop => "dropped",
                    super::decontam::Action::Flag => "kept and flagged in `metadata.contamination`",
                },
                if c.rows_total == 0 { ": none was found" } else { "" },
            );
            let skipped: usize = c.skipped_functions.values().map(Vec::len).sum();
            let _ = writeln!(
                s,
                "- functions left out of the selection before any rollout: {skipped}\n- rows {}: {}\n",
                match c.action {
                    super::decontam::Action::Drop => "dropped",
                    super::decontam::Action::Flag => "flagged",
                },
                c.rows_total
            );
            let mut per: BTreeMap<&str, (usize, String)> = BTreeMap::new();
            for (i, fns) in &c.skipped_functions {
                per.entry(i).or_default().0 = fns.len();
            }
            for (i, why) in &c.rows {
                let parts: Vec<String> = why.iter().map(|(k, v)| format!("{v} by {k}")).collect();
                per.entry(i).or_default().1 = parts.join(", ");
            }
            if !per.is_empty() {
                s.push_str("| instance | functions skipped | rows |\n|---|---|---|\n");
                for (i, (f, r)) in per {
                    s.push_str(&md_row(&[
                        format!("`{i}`"),
                        f.to_string(),
                        if r.is_empty() { "0".into() } else { r },
                    ]));
                }
            }
        }
    }

    s.push_str("\n## Near-duplicates\n\n");
    match &d.dedup {
        None => s.push_str("Not removed (no `[dedup]` section).\n"),
        Some(x) => {
            let _ = writeln!(
                s,
                "MinHash ({} permutations, {}-word shingles, LSH with {} bands of {}) over each row's {}; rows of one stage whose estimated Jaccard similarity is at least {} form a cluster, and only its best row (highest r, then highest truncation ratio) is kept.\n",
                x.permutations,
                x.shingle,
                x.bands,
                x.rows_per_band,
                x.on.iter().map(|o| if o == "text" { "assistant text" } else { "patch" }).collect::<Vec<_>>().join(" and "),
                x.threshold
            );
            s.push_str("| stage | rows compared | clusters | rows removed |\n|---|---|---|---|\n");
            for (g, v) in &x.groups {
                s.push_str(&md_row(&[
                    g.clone(),
                    v.rows.to_string(),
                    v.clusters.to_string(),
                    v.removed.to_string(),
                ]));
            }
        }
    }

    s.push_str("\n## Integrity\n\n");
    let _ = writeln!(
        s,
        "`manifest.json` lists every shard's sha256 and this card's and the report's; the shards' RFC 6962 Merkle root is `{merkle_root}`. Everything here is rebuilt, byte for byte, from the corpus the rows were made from:\n\n```\nsera-host audit manifest.json --db CORPUS.sqlite\n```\n"
    );
    s.push_str("## Loading\n\n```python\nfrom datasets import load_dataset\nds = load_dataset(\"PATH/TO/THIS/DIRECTORY\")\n```\n");
    s
}

fn count_by(d: &DocInputs, key: impl Fn(&RowFacts) -> String) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for f in &d.facts {
        *m.entry(key(f)).or_default() += 1;
    }
    m
}
