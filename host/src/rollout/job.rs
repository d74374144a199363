//! One rollout from the corpus to the corpus: materialise the snapshot, open the tools over
//! it, run the agent, store the trajectory and patch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::agent::{run, Rollout, RolloutSpec};
use crate::corpus::{Corpus, RolloutRow, SnapshotFunction};
use crate::digest::canonical_json;
use crate::plugin::ToolsPlugin;
use crate::teacher::Teacher;

pub type SharedCorpus = Arc<Mutex<Corpus>>;

/// Where the tools plugin sees the workspace.
pub const WORKING_DIR: &str = "/workspace";

/// Finds `qualname` in a snapshot (`file` narrows it when the name is in several files).
pub fn find_function(
    corpus: &Corpus,
    snapshot: &str,
    qualname: &str,
    file: Option<&str>,
) -> Result<SnapshotFunction> {
    let all = corpus.functions(snapshot)?;
    let hits: Vec<&SnapshotFunction> = all
        .iter()
        .filter(|f| f.qualname == qualname && file.is_none_or(|p| f.path == p))
        .collect();
    match hits.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!(
            "no function {qualname} in snapshot {snapshot}{}",
            file.map(|f| format!(" file {f}")).unwrap_or_default()
        ),
        many => bail!(
            "{qualname} is defined in {} places ({}); pick one with --file",
            many.len(),
            many.iter()
                .map(|f| format!("{}:{}", f.path, f.start_line))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The rollout variables for a function: `working_dir`, `start_fn`, `start_fn_file`.
pub fn function_vars(f: &SnapshotFunction) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("working_dir".to_string(), WORKING_DIR.to_string()),
        ("start_fn".to_string(), f.qualname.clone()),
        ("start_fn_file".to_string(), f.path.clone()),
        ("problem_statement".to_string(), String::new()),
    ])
}

/// Where workspaces are made: `$SERA_HOST_WORKSPACES`, else the temp directory. A tmpfs
/// (e.g. /dev/shm) makes materialising large snapshots several times faster than ext4.
pub fn workspace_root() -> std::path::PathBuf {
    std::env::var_os("SERA_HOST_WORKSPACES")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir)
}

/// The id of a rollout: sha256 over everything that decides it.
pub fn rollout_id(
    snapshot: &str,
    function: &str,
    spec: &RolloutSpec,
    tools: &ToolsPlugin,
    teacher: &str,
) -> String {
    let mut key = json!({
        "snapshot": snapshot,
        "function": function,
        "model": spec.model,
        "sampling": spec.sampling,
        "templates": [spec.templates.system, spec.templates.instance, spec.templates.review],
        "vars": spec.vars,
        "step_limit": spec.step_limit,
        "token_budget": spec.token_budget,
        "review_on_submit": spec.review_on_submit,
        "sample": spec.sample,
        "tools": tools.sha256(),
        "teacher": teacher,
    });
    // Only rollouts that run commands name them, so older ids stay as they were.
    if let Some(exec) = &spec.exec {
        key["exec"] = exec.clone();
    }
    hex::encode(Sha256::digest(canonical_json(&key)))
}

pub struct Finished {
    pub id: String,
    pub rollout: Rollout,
}

/// Runs a rollout of `function` (`PATH::QUALNAME` for the record) on `snapshot` and stores it;
/// `exec` gives it commands.
pub async fn execute(
    corpus: &SharedCorpus,
    snapshot: &str,
    function: &str,
    spec: &RolloutSpec,
    tools: &ToolsPlugin,
    teacher: &dyn Teacher,
    exec: Option<&crate::exec::plan::ExecPlan>,
) -> Result<Finished> {
    let dir = tempfile::Builder::new()
        .prefix("sera-rollout-")
        .tempdir_in(workspace_root())
        .context("cannot create the rollout's workspace")?;
    let base = {
        let c = corpus.lock().expect("corpus lock");
        c.export(snapshot, dir.path())?;
        c.entries(snapshot)?
    };
    super::patch::pin_mtimes(&base, dir.path())?;
    let id = rollout_id(snapshot, function, spec, tools, &teacher.describe());
    let (host, environment) = match exec {
        Some(plan) => {
            let c = super::agent::blocking(|| plan.for_rollout(snapshot, dir.path(), None))?;
            (Some(c.host), Some((c.log, c.env)))
        }
        None => (None, None),
    };
    let mut session = super::agent::blocking(|| tools.open_with(&id, dir.path(), host))
        .map_err(|f| anyhow::anyhow!("{f}"))?;
    let blob = |b: &str| corpus.lock().expect("corpus lock").blob(b);
    let mut rollout = run(spec, teacher, &mut session, &id, dir.path(), &base, &blob).await?;
    rollout.trajectory.environment =
        environment.map(|(log, env)| crate::exec::plan::RolloutCommands::metadata(&log, &env));
    let trajectory = serde_json::to_vec(&rollout.trajectory)?;
    let row = RolloutRow {
        id: id.clone(),
        snapshot: snapshot.to_string(),
        function: function.to_string(),
        teacher: teacher.describe(),
        model: spec.model.clone(),
        sample: spec.sample,
        outcome: rollout.outcome.as_str().to_string(),
        reason: rollout.reason.clone(),
        steps: rollout.steps,
        trajectory: String::new(),
        patch: String::new(),
        created_at: String::new(),
    };
    corpus
        .lock()
        .expect("corpus lock")
        .put_rollout(&row, &trajectory, rollout.patch.as_bytes())?;
    Ok(Finished { id, rollout })
}
