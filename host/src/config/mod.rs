//! `pipeline.toml`: what a run reads, checked strictly (unknown keys and bad values are errors
//! naming the key), and resolved into a `Resolved` pipeline with every file it names read in,
//! so that a manifest can carry the whole of it and an audit can run it again.

pub mod reshard;

use crate::output::decontam::DecontaminateSection;
use crate::output::dedup::DedupSection;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    corpus: CorpusSection,
    #[serde(default)]
    select: SelectSection,
    #[serde(default)]
    prompts: PromptsSection,
    teacher: TeacherSection,
    #[serde(default)]
    rollout: RolloutSection,
    #[serde(default)]
    self_check: SelfCheckSection,
    #[serde(default)]
    pr_synth: PluginSection,
    #[serde(default)]
    verify: VerifySection,
    #[serde(default = "d_filters")]
    filters: Vec<FilterSpec>,
    #[serde(default)]
    truncation: TruncationSection,
    output: OutputSection,
    #[serde(default)]
    mix: Vec<Mix>,
    #[serde(default)]
    decontaminate: Option<DecontaminateSection>,
    #[serde(default)]
    dedup: Option<DedupSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusSection {
    db: PathBuf,
    sources: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SelectSection {
    #[serde(default = "d_functions_per_repo")]
    pub functions_per_repo: usize,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "d_true")]
    pub skip_tests: bool,
    #[serde(default = "d_min_lines")]
    pub min_lines: u32,
    /// Change requests per function, each a different prompt of the set (SERA samples
    /// several per function).
    #[serde(default = "d_one")]
    pub prompts_per_function: usize,
}

impl Default for SelectSection {
    fn default() -> Self {
        SelectSection {
            functions_per_repo: d_functions_per_repo(),
            seed: 0,
            skip_tests: true,
            min_lines: d_min_lines(),
            prompts_per_function: 1,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptsSection {
    /// A prompts TOML file; the built-in set when absent.
    file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TeacherSection {
    /// `scripted` (the test double), or `openai` (any OpenAI-compatible endpoint at `url`).
    pub kind: String,
    #[serde(default)]
    pub url: Option<String>,
    /// Several servers of one model instead of `url`: worker I of a partitioned run
    /// (`run --worker I/N`) asks `urls[I mod len]`; a run on one machine asks the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    pub model: String,
    /// Name of the environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Rollout requests' `tool_choice` (`auto`, `required`, `none`); the server's default when
    /// absent. Small or weak models often call tools only with `required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<String>,
    /// Tool calls a model wrote as text in `content` (Hermes `<tool_call>` JSON, `<function=...>`
    /// XML) become tool calls; `false` keeps them as text.
    #[serde(default = "d_true", skip_serializing_if = "is_true")]
    pub text_tool_calls: bool,
    #[serde(default = "d_concurrency")]
    pub concurrency: usize,
    #[serde(default = "d_timeout")]
    pub timeout_s: u64,
    /// Extra body fields sent with every request (e.g. `chat_template_kwargs`).
    #[serde(default)]
    pub extra: BTreeMap<String, Value>,
}

impl TeacherSection {
    /// The server worker `index` asks: `url`, or `urls[index mod len]`.
    pub fn url_for(&self, index: u32) -> String {
        match &self.url {
            Some(u) => u.clone(),
            None => self.urls[index as usize % self.urls.len()].clone(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RolloutSection {
    #[serde(default = "d_tools")]
    pub tools: String,
    #[serde(default = "d_empty_table")]
    pub tools_config: Value,
    #[serde(default = "d_step_limit")]
    pub step_limit: u32,
    #[serde(default)]
    pub token_budget: Option<u64>,
    /// Commands (`bash`): off unless enabled. Left out of the manifest while off, so pipelines
    /// without it keep their bytes.
    #[serde(default, skip_serializing_if = "ExecSection::is_off")]
    pub exec: ExecSection,
}

impl Default for RolloutSection {
    fn default() -> Self {
        RolloutSection {
            tools: d_tools(),
            tools_config: d_empty_table(),
            step_limit: d_step_limit(),
            token_budget: None,
            exec: ExecSection::default(),
        }
    }
}

/// `[rollout.exec]` (or `exec = { ... }` in `[rollout]`): the teacher's `bash` tool.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExecSection {
    #[serde(default)]
    pub enabled: bool,
    /// Wall clock per command (also the largest a call may ask for).
    #[serde(default = "d_exec_timeout")]
    pub timeout_s: u32,
    /// Address space per command.
    #[serde(default = "d_exec_memory")]
    pub memory_mib: u64,
    /// Largest file a command may write.
    #[serde(default = "d_exec_file_size")]
    pub file_size_mib: u64,
    /// Processes per command at once.
    #[serde(default = "d_exec_processes")]
    pub max_processes: u64,
    /// Output kept per command (stdout and stderr together).
    #[serde(default = "d_exec_output")]
    pub output_bytes: usize,
    /// Sandbox layers that may be missing on this machine (`sera-host sandbox check`).
    #[serde(default)]
    pub allow_weaker: Vec<String>,
    /// `build`: the snapshot's Python environment (`corpus env build`, made on demand);
    /// `bare`: the host's python3 without the repository's dependencies.
    #[serde(default = "d_exec_env")]
    pub env: String,
}

impl ExecSection {
    fn is_off(&self) -> bool {
        *self == ExecSection::default()
    }
}

impl Default for ExecSection {
    fn default() -> Self {
        ExecSection {
            enabled: false,
            timeout_s: d_exec_timeout(),
            memory_mib: d_exec_memory(),
            file_size_mib: d_exec_file_size(),
            max_processes: d_exec_processes(),
            output_bytes: d_exec_output(),
            allow_weaker: Vec::new(),
            env: d_exec_env(),
        }
    }
}

fn d_exec_timeout() -> u32 {
    60
}
fn d_exec_memory() -> u64 {
    4096
}
fn d_exec_file_size() -> u64 {
    64
}
fn d_exec_processes() -> u64 {
    256
}
fn d_exec_output() -> usize {
    1 << 20
}
fn d_exec_env() -> String {
    "build".into()
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SelfCheckSection {
    #[serde(default)]
    pub enabled: bool,
    /// New rollouts tried after a "no", each with the next sample index.
    #[serde(default = "d_retries")]
    pub retries: u32,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    #[serde(default = "d_pr_synth")]
    pub plugin: String,
    #[serde(default = "d_empty_table")]
    pub config: Value,
    /// Files of demonstration issues, added to the config as `demonstrations`.
    #[serde(default)]
    pub demonstrations: Vec<PathBuf>,
}

impl Default for PluginSection {
    fn default() -> Self {
        PluginSection {
            plugin: d_pr_synth(),
            config: d_empty_table(),
            demonstrations: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VerifySection {
    #[serde(default = "d_verifier")]
    pub plugin: String,
    #[serde(default = "d_empty_table")]
    pub config: Value,
    /// T2 is verified when r >= threshold (1.0: hard verification).
    #[serde(default = "d_threshold")]
    pub threshold: f64,
}

impl Default for VerifySection {
    fn default() -> Self {
        VerifySection {
            plugin: d_verifier(),
            config: d_empty_table(),
            threshold: d_threshold(),
        }
    }
}

/// One filter: a `trajectory-filter` plugin and its config, applied to T1 and T2 alike.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    pub plugin: String,
    #[serde(default = "d_empty_table")]
    pub config: Value,
}

fn d_filters() -> Vec<FilterSpec> {
    ["builtin:max-patch-lines", "builtin:max-avg-tool-tokens"]
        .into_iter()
        .map(|p| FilterSpec {
            plugin: p.into(),
            config: d_empty_table(),
        })
        .collect()
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenizerSection {
    /// `qwen-bpe` (vocab.json + merges.txt in `dir`, added tokens from `config`), `json` (a
    /// tokenizer.json at `path`), or `estimate`.
    pub kind: String,
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default)]
    pub config: Option<PathBuf>,
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// With `qwen-bpe`/`json`: use the estimate (and say so) when the files are missing.
    #[serde(default)]
    pub fallback_to_estimate: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TruncationSection {
    #[serde(default = "d_truncation")]
    pub plugin: String,
    #[serde(default = "d_empty_table")]
    pub config: Value,
    #[serde(default = "d_budget")]
    pub budget: u32,
    /// Keep items whose kept/all message ratio is at least this.
    #[serde(default = "d_min_ratio")]
    pub min_ratio: f64,
    #[serde(default = "d_tokenizer")]
    pub tokenizer: TokenizerSection,
}

impl Default for TruncationSection {
    fn default() -> Self {
        TruncationSection {
            plugin: d_truncation(),
            config: d_empty_table(),
            budget: d_budget(),
            min_ratio: d_min_ratio(),
            tokenizer: d_tokenizer(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputSection {
    dir: PathBuf,
    #[serde(default = "d_rows_per_shard")]
    rows_per_shard: usize,
    /// The dataset card's `license` (a Hugging Face license id such as `apache-2.0`).
    #[serde(default)]
    license: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// `T1` or `T2`.
    pub stage: String,
    /// Rows of this kind at most.
    pub count: usize,
    /// Only items whose verification score r is at least this (T2 rows default to the
    /// verify threshold).
    #[serde(default)]
    pub min_r: Option<f64>,
}

fn d_true() -> bool {
    true
}
fn d_functions_per_repo() -> usize {
    8
}
fn d_one() -> usize {
    1
}
fn d_min_lines() -> u32 {
    5
}
fn d_concurrency() -> usize {
    8
}
fn d_timeout() -> u64 {
    600
}
fn d_tools() -> String {
    "builtin:swe-tools".into()
}
fn d_pr_synth() -> String {
    "builtin:pr-synth".into()
}
fn d_verifier() -> String {
    "builtin:line-recall".into()
}
fn d_truncation() -> String {
    "builtin:truncate-ratio".into()
}
fn d_empty_table() -> Value {
    Value::Object(Default::default())
}
fn d_step_limit() -> u32 {
    115
}
fn d_retries() -> u32 {
    2
}
fn d_threshold() -> f64 {
    1.0
}
fn d_budget() -> u32 {
    32_768
}
fn d_min_ratio() -> f64 {
    0.88
}
fn d_tokenizer() -> TokenizerSection {
    TokenizerSection {
        kind: "estimate".into(),
        dir: None,
        config: None,
        path: None,
        fallback_to_estimate: false,
    }
}
fn d_rows_per_shard() -> usize {
    1000
}

/// One rollout-1 prompt: a change request in the SERA style.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Prompt {
    pub id: String,
    pub category: String,
    pub text: String,
}

/// The prompts file: rollout-1 change requests, the rollout-2 task, and the shared system
/// and review prompts (minijinja templates).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Prompts {
    pub system: String,
    pub review: String,
    /// Rollout 2's task; `problem_statement` is the synthesised PR text.
    pub rollout2: String,
    /// The self-check question; `problem_statement` is rollout 1's task, `diff` its patch.
    pub self_check: String,
    #[serde(rename = "rollout1")]
    pub rollout1: Vec<Prompt>,
}

/// The built-in prompts (`host/src/config/prompts.toml`).
pub const DEFAULT_PROMPTS: &str = include_str!("prompts.toml");

pub fn parse_prompts(text: &str, shown: &str) -> Result<Prompts> {
    let p: Prompts =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{shown}: {}", e.to_string().trim()))?;
    if p.rollout1.is_empty() {
        bail!("{shown}: `rollout1` has no prompts");
    }
    let mut ids = std::collections::BTreeSet::new();
    for (i, t) in p.rollout1.iter().enumerate() {
        if !ids.insert(t.id.as_str()) {
            bail!("{shown}: rollout1[{i}]: the id `{}` is used twice", t.id);
        }
        for var in ["start_fn", "start_fn_file"] {
            if !t.text.contains(var) {
                bail!(
                    "{shown}: rollout1[{i}] (`{}`): the text never uses `{{{{ {var} }}}}`",
                    t.id
                );
            }
        }
    }
    if !p.rollout2.contains("problem_statement") {
        bail!("{shown}: `rollout2` never uses `{{{{ problem_statement }}}}`");
    }
    Ok(p)
}

/// A pipeline with every file it names read in and every default filled: what a manifest
/// carries and an audit runs again.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Resolved {
    pub sources: Vec<String>,
    pub exclude: Vec<String>,
    pub select: SelectSection,
    pub prompts: Prompts,
    pub teacher: TeacherSection,
    pub rollout: RolloutSection,
    pub self_check: SelfCheckSection,
    pub pr_synth: PluginSection,
    pub verify: VerifySection,
    pub filters: Vec<FilterSpec>,
    pub truncation: TruncationSection,
    pub rows_per_shard: usize,
    pub mix: Vec<Mix>,
    /// Left out of the manifest when absent, so pipelines without them keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decontaminate: Option<DecontaminateSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<DedupSection>,
}

/// A loaded pipeline file: the resolved pipeline and where its corpus and output go.
#[derive(Debug)]
pub struct Pipeline {
    pub path: PathBuf,
    pub db: PathBuf,
    pub out: PathBuf,
    pub resolved: Resolved,
}

/// A plugin spec with a relative component path made absolute (relative to `base`, the
/// directory of the file that names it); `builtin:NAME` checked.
pub(crate) fn resolve_plugin(base: &Path, shown: &str, key: &str, spec: &str) -> Result<String> {
    if spec.starts_with("builtin:") {
        crate::plugin::PluginSource::parse(spec)
            .map_err(|e| anyhow::anyhow!("{shown}: `{key}`: {e}"))?;
        Ok(spec.to_string())
    } else {
        Ok(abs(base, Path::new(spec)).display().to_string())
    }
}

/// Checks a tokenizer section and makes its paths absolute.
pub(crate) fn resolve_tokenizer(
    base: &Path,
    shown: &str,
    key: &str,
    tk: &mut TokenizerSection,
) -> Result<()> {
    let bad = |key: &str, why: &str| anyhow::anyhow!("{shown}: `{key}`: {why}");
    match tk.kind.as_str() {
        "estimate" => {}
        "qwen-bpe" => {
            let (Some(d), Some(c)) = (&tk.dir, &tk.config) else {
                return Err(bad(
                    key,
                    "kind = \"qwen-bpe\" needs `dir` (vocab.json, merges.txt) and `config` (tokenizer_config.json)",
                ));
            };
            tk.dir = Some(abs(base, d));
            tk.config = Some(abs(base, c));
        }
        "json" => {
            let Some(p) = &tk.path else {
                return Err(bad(key, "kind = \"json\" needs `path`"));
            };
            tk.path = Some(abs(base, p));
        }
        other => {
            return Err(bad(
                &format!("{key}.kind"),
                &format!("{other:?} (expected \"qwen-bpe\", \"json\" or \"estimate\")"),
            ))
        }
    }
    Ok(())
}

pub(crate) fn abs(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl Pipeline {
    pub fn load(path: &Path) -> Result<Pipeline> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{shown}: cannot read the pipeline file"))?;
        let file: File = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{shown}: {}", e.to_string().trim()))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let bad = |key: &str, why: &str| anyhow::anyhow!("{shown}: `{key}`: {why}");
        if file.corpus.sources.is_empty() {
            return Err(bad("corpus.sources", "no sources"));
        }
        let sources = file
            .corpus
            .sources
            .iter()
            .map(|s| {
                // Relative directories and archives are relative to the pipeline file.
                if s.contains(':') || Path::new(s).is_absolute() {
                    s.clone()
                } else {
                    abs(&base, Path::new(s)).display().to_string()
                }
            })
            .collect();
        if file.select.functions_per_repo == 0 {
            return Err(bad("select.functions_per_repo", "must be at least 1"));
        }
        if file.select.prompts_per_function == 0 {
            return Err(bad("select.prompts_per_function", "must be at least 1"));
        }
        match file.teacher.kind.as_str() {
            "scripted" => {}
            "openai" => match (&file.teacher.url, file.teacher.urls.is_empty()) {
                (None, true) => {
                    return Err(bad(
                        "teacher.url",
                        "required with kind = \"openai\" (or `urls = [...]`, one per worker)",
                    ))
                }
                (Some(_), false) => {
                    return Err(bad("teacher.urls", "give `url` or `urls`, not both"))
                }
                _ => {}
            },
            other => {
                return Err(bad(
                    "teacher.kind",
                    &format!(
                        "{other:?} is not a teacher kind (expected \"scripted\" or \"openai\")"
                    ),
                ))
            }
        }
        if file.teacher.concurrency == 0 {
            return Err(bad("teacher.concurrency", "must be at least 1"));
        }
        for (key, v) in [
            ("teacher.temperature", file.teacher.temperature),
            ("teacher.top_p", file.teacher.top_p),
        ] {
            if v.is_some_and(|v| !(0.0..=2.0).contains(&v)) {
                return Err(bad(key, "must be between 0 and 2"));
            }
        }
        if file.rollout.step_limit == 0 {
            return Err(bad("rollout.step_limit", "must be at least 1"));
        }
        let exec = &file.rollout.exec;
        if exec.timeout_s == 0 {
            return Err(bad("rollout.exec.timeout_s", "must be at least 1"));
        }
        if exec.memory_mib < 64 {
            return Err(bad("rollout.exec.memory_mib", "must be at least 64"));
        }
        if exec.max_processes == 0 {
            return Err(bad("rollout.exec.max_processes", "must be at least 1"));
        }
        if exec.env != "build" && exec.env != "bare" {
            return Err(bad(
                "rollout.exec.env",
                &format!("{:?}: expected \"build\" or \"bare\"", exec.env),
            ));
        }
        for (i, layer) in exec.allow_weaker.iter().enumerate() {
            if crate::sandbox::Layer::parse(layer).is_none() {
                return Err(bad(
                    &format!("rollout.exec.allow_weaker[{i}]"),
                    &format!(
                        "{layer:?} is not a sandbox layer (known: {})",
                        crate::sandbox::ALL_LAYERS.map(|l| l.name()).join(", ")
                    ),
                ));
            }
        }
        if !(0.0..=1.0).contains(&file.verify.threshold) {
            return Err(bad("verify.threshold", "must be between 0 and 1"));
        }
        if !(0.0..=1.0).contains(&file.truncation.min_ratio) {
            return Err(bad("truncation.min_ratio", "must be between 0 and 1"));
        }
        if file.truncation.budget == 0 {
            return Err(bad("truncation.budget", "must be at least 1"));
        }
        if file.output.rows_per_shard == 0 {
            return Err(bad("output.rows_per_shard", "must be at least 1"));
        }
        for (i, m) in file.mix.iter().enumerate() {
            if m.stage != "T1" && m.stage != "T2" {
                return Err(bad(
                    &format!("mix[{i}].stage"),
                    &format!("{:?} is not a stage (expected \"T1\" or \"T2\")", m.stage),
                ));
            }
            if m.min_r.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
                return Err(bad(&format!("mix[{i}].min_r"), "must be between 0 and 1"));
            }
        }
        let mix = if file.mix.is_empty() {
            vec![
                Mix {
                    stage: "T2".into(),
                    count: 3000,
                    min_r: None,
                },
                Mix {
                    stage: "T1".into(),
                    count: 5000,
                    min_r: None,
                },
            ]
        } else {
            file.mix
        };
        let prompts = match &file.prompts.file {
            None => parse_prompts(DEFAULT_PROMPTS, "built-in prompts")?,
            Some(p) => {
                let p = abs(&base, p);
                let text = std::fs::read_to_string(&p).with_context(|| {
                    format!("{shown}: `prompts.file`: cannot read {}", p.display())
                })?;
                parse_prompts(&text, &p.display().to_string())?
            }
        };
        let plugin = |key: &str, spec: &str| resolve_plugin(&base, &shown, key, spec);
        let mut pr_synth = file.pr_synth;
        pr_synth.plugin = plugin("pr_synth.plugin", &pr_synth.plugin)?;
        if !pr_synth.demonstrations.is_empty() {
            let mut demos = Vec::new();
            for d in &pr_synth.demonstrations {
                let p = abs(&base, d);
                demos.push(Value::String(std::fs::read_to_string(&p).with_context(
                    || {
                        format!(
                            "{shown}: `pr_synth.demonstrations`: cannot read {}",
                            p.display()
                        )
                    },
                )?));
            }
            let Some(obj) = pr_synth.config.as_object_mut() else {
                return Err(bad("pr_synth.config", "must be a table"));
            };
            obj.insert("demonstrations".into(), Value::Array(demos));
            pr_synth.demonstrations.clear();
        }
        let mut rollout = file.rollout;
        rollout.tools = plugin("rollout.tools", &rollout.tools)?;
        let mut verify = file.verify;
        verify.plugin = plugin("verify.plugin", &verify.plugin)?;
        let mut filters = file.filters;
        for (i, f) in filters.iter_mut().enumerate() {
            f.plugin = plugin(&format!("filters[{i}].plugin"), &f.plugin)?;
        }
        let mut truncation = file.truncation;
        truncation.plugin = plugin("truncation.plugin", &truncation.plugin)?;
        resolve_tokenizer(
            &base,
            &shown,
            "truncation.tokenizer",
            &mut truncation.tokenizer,
        )?;
        let mut decontaminate = file.decontaminate;
        if let Some(d) = &mut decontaminate {
            d.resolve(&base, &shown)?;
        }
        if let Some(d) = &file.dedup {
            d.check(&shown)?;
        }
        Ok(Pipeline {
            path: path.to_path_buf(),
            db: abs(&base, &file.corpus.db),
            out: abs(&base, &file.output.dir),
            resolved: Resolved {
                sources,
                exclude: file.corpus.exclude,
                select: file.select,
                prompts,
                teacher: file.teacher,
                rollout,
                self_check: file.self_check,
                pr_synth,
                verify,
                filters,
                truncation,
                rows_per_shard: file.output.rows_per_shard,
                mix,
                license: file.output.license,
                decontaminate,
                dedup: file.dedup,
            },
        })
    }
}

fn is_true(b: &bool) -> bool {
    *b
}
