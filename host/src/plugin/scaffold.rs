//! `sera-host plugin new <world> NAME`: a buildable plugin project that needs nothing of this
//! repository. It carries a copy of the guest SDK (`sera-plugin`) and of the WIT it is built
//! against, a `src/lib.rs` that works as it is (a small real plugin of the world, to edit), a
//! `build.sh` and a README with the check and use commands.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::inspect::WorldKind;

const SDK_LIB: &str = include_str!("../../../plugins/sera-plugin/src/lib.rs");
const SDK_CARGO: &str = include_str!("../../../plugins/sera-plugin/Cargo.toml");
const WIT_TYPES: &str = include_str!("../../../wit/v0.1.0/types.wit");
const WIT_WORLDS: &str = include_str!("../../../wit/v0.1.0/worlds.wit");
// The SDK's `tools-exec` feature builds against the 0.1.1 package.
const WIT_TYPES_0_1_1: &str = include_str!("../../../wit/v0.1.1/types.wit");
const WIT_WORLDS_0_1_1: &str = include_str!("../../../wit/v0.1.1/worlds.wit");

const VERIFIER: &str = r#"//! A verifier: the share of the reference patch's added and removed lines that the candidate
//! patch also has (each candidate line counts once). Edit `verify` to score your way.

use std::collections::HashMap;

use sera_plugin::verifier::{PatchPair, Verdict, Verifier};

struct Plugin;

fn change_lines(patch: &str) -> Vec<&str> {
    patch
        .lines()
        .filter(|l| (l.starts_with('+') && !l.starts_with("+++")) || (l.starts_with('-') && !l.starts_with("---")))
        .filter(|l| !l[1..].trim().is_empty())
        .collect()
}

impl Verifier for Plugin {
    fn verify(pair: &PatchPair) -> Result<Verdict, String> {
        let reference = change_lines(&pair.reference);
        if reference.is_empty() {
            return Ok(Verdict { score: None, matched: 0, total: 0, detail: "nothing to verify".into() });
        }
        let mut pool: HashMap<&str, u32> = HashMap::new();
        for l in change_lines(&pair.candidate) {
            *pool.entry(l).or_default() += 1;
        }
        let mut matched = 0u32;
        for l in &reference {
            if let Some(n) = pool.get_mut(l).filter(|n| **n > 0) {
                *n -= 1;
                matched += 1;
            }
        }
        let total = reference.len() as u32;
        Ok(Verdict {
            score: Some(f64::from(matched) / f64::from(total)),
            matched,
            total,
            detail: format!("{matched} of {total} reference change lines found"),
        })
    }
}

sera_plugin::export_verifier!(Plugin);
"#;

const FILTER: &str = r#"//! A trajectory filter: drops trajectories with more than `max_messages` messages (config
//! `{"max_messages": N}`, default 200). Edit `check` to filter your way.

use std::cell::Cell;

use sera_plugin::filter::{Filter, Trajectory};

thread_local! {
    static MAX: Cell<usize> = const { Cell::new(200) };
}

struct Plugin;

impl Filter for Plugin {
    fn init(config: &str) -> Result<(), String> {
        let compact: String = config.chars().filter(|c| !c.is_whitespace()).collect();
        if let Some(n) = compact.strip_prefix("{\"max_messages\":").and_then(|r| r.strip_suffix('}')) {
            let max: usize = n.parse().map_err(|_| format!("max_messages: not a number: {n}"))?;
            MAX.with(|m| m.set(max));
            Ok(())
        } else {
            sera_plugin::no_config("filter", config)
        }
    }

    fn check(trajectory: &Trajectory, _patch: &str) -> Result<Option<String>, String> {
        let max = MAX.with(Cell::get);
        let n = trajectory.messages.len();
        Ok((n > max).then(|| format!("{n} messages > {max}")))
    }
}

sera_plugin::export_filter!(Plugin);
"#;

const TRUNCATION: &str = r#"//! A truncation policy: the longest prefix of messages whose token count (the host's tokenizer)
//! fits the budget, cut back to end on an assistant message. Edit `truncate` to cut your way.

use sera_plugin::truncation::{count_tokens, Role, Trajectory, Truncation};

struct Plugin;

impl Truncation for Plugin {
    fn truncate(mut trajectory: Trajectory, budget: u32) -> Result<Trajectory, String> {
        let mut total = 0u64;
        let mut keep = 0;
        for (i, m) in trajectory.messages.iter().enumerate() {
            total += u64::from(count_tokens(&m.content));
            if total > u64::from(budget) {
                break;
            }
            if m.role == Role::Assistant {
                keep = i + 1;
            }
        }
        if keep == 0 {
            return Err("no assistant message fits the budget".into());
        }
        trajectory.messages.truncate(keep);
        Ok(trajectory)
    }
}

sera_plugin::export_truncation!(Plugin);
"#;

const PR_SYNTHESIZER: &str = r#"//! A PR synthesiser: asks the pipeline's teacher for an issue-style description of what rollout 1
//! changed (the patch), without the fix. Edit the prompt to write your way.

use sera_plugin::pr_synthesizer::llm::{complete, CompletionRequest};
use sera_plugin::pr_synthesizer::{Message, PrSynthesizer, Role, Trajectory};

struct Plugin;

fn message(role: Role, content: String) -> Message {
    Message { role, content, tool_calls: Vec::new(), tool_call_id: None }
}

impl PrSynthesizer for Plugin {
    fn synthesize(_trajectory: &Trajectory, patch: &str) -> Result<String, String> {
        let prompt = format!(
            "Write a GitHub issue that a user would file about the problem this patch fixes. \
             Describe the wrong behaviour and how to reproduce it; do not describe the fix.\n\n{patch}"
        );
        let request = CompletionRequest {
            messages: vec![message(Role::User, prompt)],
            tools: Vec::new(),
            max_tokens: Some(1024),
            temperature: None,
        };
        let answer = complete(&request)?;
        Ok(answer.content)
    }
}

sera_plugin::export_pr_synthesizer!(Plugin);
"#;

const TOOLS: &str = r##"//! A tool set with one tool, `read_file`, over the workspace the host preopens at `/workspace`.
//! Add tools to `list_tools` and `call`.

use sera_plugin::tools::{ToolSpec, Tools};

struct Plugin;

impl Tools for Plugin {
    fn list_tools() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "read_file".into(),
            description: "Read a file of the repository.".into(),
            parameters: r#"{"type":"object","properties":{"path":{"type":"string","description":"Path relative to the repository root"}},"required":["path"]}"#.into(),
        }]
    }

    fn call(name: &str, arguments: &str) -> Result<String, String> {
        if name != "read_file" {
            return Err(format!("unknown tool {name}"));
        }
        let path = arguments
            .split("\"path\"")
            .nth(1)
            .and_then(|r| r.split('"').nth(1))
            .ok_or("read_file needs {\"path\": ...}")?;
        if path.split('/').any(|p| p == "..") {
            return Err("paths stay inside the repository".into());
        }
        std::fs::read_to_string(format!("/workspace/{path}")).map_err(|e| format!("{path}: {e}"))
    }
}

sera_plugin::export_tools!(Plugin);
"##;

const BUILD_SH: &str = r#"#!/usr/bin/env bash
# Builds NAME.wasm (a wasm32-wasip2 component) next to this script.
# With rustup: rustup target add wasm32-wasip2, then this script uses it.
# Without (Debian): apt-get install rustc-web cargo-web rust-web-src lld-16 wasi-libc.
set -euo pipefail
cd "$(dirname "$0")"
if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  cargo build --release --target wasm32-wasip2
else
  shim=$(mktemp -d)
  trap 'rm -rf "$shim"' EXIT
  ln -sf /usr/bin/wasm-ld-16 "$shim/wasm-ld"
  ln -sf /usr/bin/wasm-ld-16 "$shim/rust-lld"
  PATH="$shim:/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="-L /usr/lib/wasm32-wasi" \
    /usr/bin/cargo build --release -Zbuild-std=std,panic_abort --target wasm32-wasip2
fi
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/CRATE.wasm" NAME.wasm
echo "built $(pwd)/NAME.wasm"
"#;

fn template(world: WorldKind) -> &'static str {
    match world {
        WorldKind::Verifier => VERIFIER,
        WorldKind::TrajectoryFilter => FILTER,
        WorldKind::Truncation => TRUNCATION,
        WorldKind::PrSynthesizer => PR_SYNTHESIZER,
        WorldKind::Tools => TOOLS,
    }
}

/// How a plugin of `world` is used once built.
fn usage(world: WorldKind, wasm: &str) -> String {
    match world {
        WorldKind::Verifier => format!(
            "sera-host verify --plugin {wasm} P1.patch P2.patch\nsera-host rescore --db corpus.sqlite --verifier {wasm}\n# pipeline.toml: [verify] plugin = \"{wasm}\""
        ),
        WorldKind::TrajectoryFilter => format!("# pipeline.toml or shards.toml:\n[[filters]]\nplugin = \"{wasm}\""),
        WorldKind::Truncation => format!("# pipeline.toml or shards.toml:\n[truncation]\nplugin = \"{wasm}\""),
        WorldKind::PrSynthesizer => format!("# pipeline.toml:\n[pr_synth]\nplugin = \"{wasm}\""),
        WorldKind::Tools => format!("# pipeline.toml:\n[rollout]\ntools = \"{wasm}\""),
    }
}

/// Writes the project for a `world` plugin called `name` into `parent/name`; returns its path.
pub fn new_project(world: WorldKind, name: &str, parent: &Path) -> Result<PathBuf> {
    let valid = !name.is_empty()
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!("plugin name {name:?}: use lowercase letters, digits, '-' and '_', starting with a letter");
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{}: already exists; choose another name or directory",
            dir.display()
        );
    }
    let krate = name.replace('-', "_");
    let files: Vec<(PathBuf, String)> = vec![
        (
            "Cargo.toml".into(),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\ndescription = \"A sera:plugin {world} plugin\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nsera-plugin = {{ path = \"sera-plugin\" }}\n\n[profile.release]\npanic = \"abort\"\nopt-level = 3\nlto = true\ncodegen-units = 1\nstrip = true\n\n# A project of its own, not a member of an enclosing workspace.\n[workspace]\n",
                world = world.name()
            ),
        ),
        ("src/lib.rs".into(), template(world).to_string()),
        (
            "build.sh".into(),
            BUILD_SH.replace("NAME", name).replace("CRATE", &krate),
        ),
        (
            "README.md".into(),
            format!(
                "# {name}: a sera:plugin {world} plugin\n\nWritten with the `sera-plugin` guest SDK (a copy is in `sera-plugin/`, with the WIT it\nbuilds against in `sera-plugin/wit/`). The plugin is `src/lib.rs`: one trait impl and one\nexport macro.\n\n```sh\nbash build.sh                                    # -> {name}.wasm\nsera-host plugin check {name}.wasm --world {world}  # conformance report\n```\n\nThen use it:\n\n```sh\n{usage}\n```\n",
                world = world.name(),
                usage = usage(world, &format!("{name}.wasm"))
            ),
        ),
        ("sera-plugin/Cargo.toml".into(), SDK_CARGO.to_string()),
        (
            "sera-plugin/src/lib.rs".into(),
            SDK_LIB
                .replace("\"../../wit/v0.1.0\"", "\"wit\"")
                .replace("\"../../wit/v0.1.1\"", "\"wit-0.1.1\""),
        ),
        ("sera-plugin/wit/types.wit".into(), WIT_TYPES.to_string()),
        ("sera-plugin/wit/worlds.wit".into(), WIT_WORLDS.to_string()),
        (
            "sera-plugin/wit-0.1.1/types.wit".into(),
            WIT_TYPES_0_1_1.to_string(),
        ),
        (
            "sera-plugin/wit-0.1.1/worlds.wit".into(),
            WIT_WORLDS_0_1_1.to_string(),
        ),
        (".gitignore".into(), "target/\n*.wasm\n".into()),
    ];
    for (rel, text) in &files {
        let path = dir.join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)
                .with_context(|| format!("{}: cannot create", p.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("{}: cannot write", path.display()))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("build.sh"), std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(dir)
}
