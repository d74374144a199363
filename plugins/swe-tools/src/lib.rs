//! The default tools plugin, `builtin:swe-tools`: SWE-agent's `str_replace_editor`,
//! `find_file`, `search_dir`, `search_file` and `submit` over the workspace the host preopens
//! at `/workspace`, and `bash` where the host runs commands (the `exec` import of
//! `sera:plugin@0.1.1`; the tool is listed only when the host says it is available). Files are
//! reached only through WASI; commands only through the host's sandbox.
//!
//! `submit` is listed here so the model sees it, but the host acts on it (it alone can diff
//! the workspace against the snapshot); a call that reaches the plugin says so.
//!
//! Config (JSON object, all optional): `{"root": "/workspace"}`.

pub mod args;
pub mod bash;
pub mod editor;
pub mod search;
pub mod specs;
pub mod workspace;

use std::path::PathBuf;

use args::Args;
use editor::Editor;
use workspace::Workspace;

/// One rollout's tools: the workspace and the editor's undo history.
pub struct Tools {
    pub workspace: Workspace,
    pub editor: Editor,
}

impl Tools {
    pub fn new(root: PathBuf) -> Self {
        Tools {
            workspace: Workspace { root },
            editor: Editor::default(),
        }
    }

    pub fn from_config(config: &str) -> Result<Self, String> {
        let config = if config.trim().is_empty() {
            "{}"
        } else {
            config
        };
        let value: serde_json::Value = serde_json::from_str(config)
            .map_err(|e| format!("swe-tools: config is not JSON: {e}"))?;
        let obj = value
            .as_object()
            .ok_or("swe-tools: config must be a JSON object")?;
        let mut root = PathBuf::from("/workspace");
        for (k, v) in obj {
            match (k.as_str(), v) {
                ("root", serde_json::Value::String(s)) if s.starts_with('/') => root = s.into(),
                ("root", _) => {
                    return Err("swe-tools: `root` must be an absolute path string".into())
                }
                (other, _) => {
                    return Err(format!(
                        "swe-tools: unknown config key `{other}` (known: root)"
                    ))
                }
            }
        }
        Ok(Self::new(root))
    }

    pub fn call(&mut self, name: &str, arguments: &str) -> Result<String, String> {
        let args = Args::parse(name, arguments)?;
        match name {
            "str_replace_editor" => self.editor.run(&self.workspace, &args),
            "find_file" => search::find_file(&self.workspace, &args),
            "search_dir" => search::search_dir(&self.workspace, &args),
            "search_file" => search::search_file(&self.workspace, &self.editor, &args),
            "submit" => Err("submit is handled by the host; this call should not reach the tools plugin".into()),
            other => Err(format!(
                "Unknown tool `{other}`. Available tools: str_replace_editor, find_file, search_dir, search_file, submit"
            )),
        }
    }
}

#[cfg(target_family = "wasm")]
mod guest {
    use super::*;
    use std::cell::RefCell;

    wit_bindgen::generate!({
        path: "../../wit/v0.1.1",
        world: "tools-exec",
    });

    use exports::sera::plugin::tool_provider::{Guest, ToolSpec};
    use sera::plugin::exec;

    /// The `bash` call: the command runs in the host's sandbox, the observation is SWE-agent's.
    fn bash(arguments: &str) -> Result<String, String> {
        let args: serde_json::Value = serde_json::from_str(arguments)
            .map_err(|e| format!("bash: the arguments are not JSON: {e}"))?;
        let Some(command) = args.get("command").and_then(|c| c.as_str()) else {
            return Err("bash: missing the required string argument `command`".into());
        };
        if command.trim().is_empty() {
            return Err("bash: `command` is empty; give a command line to run".into());
        }
        let r = exec::run(&exec::ExecRequest {
            command: command.to_string(),
            timeout_s: None,
        })?;
        Ok(super::bash::observation(&super::bash::Ran {
            command,
            output: &r.output,
            exit_code: r.exit_code,
            timed_out: r.timed_out,
            timeout_s: r.timeout_s,
            dropped_bytes: r.dropped_bytes,
        }))
    }

    thread_local! {
        static TOOLS: RefCell<Option<Tools>> = const { RefCell::new(None) };
    }

    struct SweTools;

    impl Guest for SweTools {
        fn init(config: String) -> Result<(), String> {
            let tools = Tools::from_config(&config)?;
            TOOLS.with(|t| *t.borrow_mut() = Some(tools));
            Ok(())
        }

        fn list_tools() -> Vec<ToolSpec> {
            let root = TOOLS.with(|t| {
                t.borrow().as_ref().map_or("/workspace".to_string(), |t| {
                    t.workspace.root.display().to_string()
                })
            });
            let mut all = specs::specs(&root);
            if exec::available().is_ok() {
                all.insert(all.len() - 1, specs::bash(&root));
            }
            all.into_iter()
                .map(|s| ToolSpec {
                    name: s.name.to_string(),
                    description: s.description,
                    parameters: s.parameters.to_string(),
                })
                .collect()
        }

        fn call(name: String, arguments: String) -> Result<String, String> {
            if name == "bash" {
                if let Err(why) = exec::available() {
                    return Err(format!("bash is not available here: {why}"));
                }
                return bash(&arguments);
            }
            TOOLS.with(|t| {
                let mut t = t.borrow_mut();
                let tools = t.get_or_insert_with(|| Tools::new("/workspace".into()));
                tools.call(&name, &arguments)
            })
        }
    }

    export!(SweTools);
}

#[cfg(test)]
pub(crate) mod testdir {
    /// A throwaway directory, without a dev-dependency in the guest workspace.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "swe-tools-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
