//! Test-only tools plugin. One tool, `fs`, runs one raw filesystem operation under
//! `/workspace`, so tests can make every kind of change a third-party tools plugin could
//! (rename a directory, remove files, create links) and check the host sees all of them.
//!
//! Arguments: `{"op": "write"|"append"|"remove"|"rmdir"|"mkdir"|"rename"|"symlink"|"hardlink",
//! "path": P, "to": Q, "text": T}`; paths are relative to `/workspace`.

// `symlink_path` is still unstable; the guest toolchain builds with RUSTC_BOOTSTRAP=1 anyway.
#![cfg_attr(target_family = "wasm", feature(wasi_ext, wasip2))]

#[cfg(target_family = "wasm")]
mod guest {
    use std::io::Write;

    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "tools",
    });

    use exports::sera::plugin::tool_provider::{Guest, ToolSpec};

    fn at(p: &str) -> String {
        format!("/workspace/{p}")
    }

    fn run(arguments: &str) -> std::io::Result<String> {
        let v: serde_json::Value = serde_json::from_str(arguments)?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        let (op, path, to, text) = (s("op"), at(&s("path")), at(&s("to")), s("text"));
        match op.as_str() {
            "write" => std::fs::write(&path, text)?,
            "append" => std::fs::OpenOptions::new()
                .append(true)
                .open(&path)?
                .write_all(text.as_bytes())?,
            "remove" => std::fs::remove_file(&path)?,
            "rmdir" => std::fs::remove_dir(&path)?,
            "mkdir" => std::fs::create_dir_all(&path)?,
            "rename" => std::fs::rename(&path, &to)?,
            "symlink" => std::os::wasi::fs::symlink_path(s("to"), &path)?,
            "hardlink" => std::fs::hard_link(&path, &to)?,
            other => return Ok(format!("unknown op {other}")),
        }
        Ok(format!("{op} done"))
    }

    struct FsOps;

    impl Guest for FsOps {
        fn init(_config: String) -> Result<(), String> {
            Ok(())
        }

        fn list_tools() -> Vec<ToolSpec> {
            vec![ToolSpec {
                name: "fs".into(),
                description: "Runs one filesystem operation under /workspace (test plugin)".into(),
                parameters: r#"{"type":"object","properties":{"op":{"type":"string"},"path":{"type":"string"},"to":{"type":"string"},"text":{"type":"string"}},"required":["op","path"]}"#.into(),
            }]
        }

        fn call(name: String, arguments: String) -> Result<String, String> {
            if name != "fs" {
                return Err(format!("unknown tool {name}"));
            }
            run(&arguments).map_err(|e| e.to_string())
        }
    }

    export!(FsOps);
}
