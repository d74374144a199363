//! `sera-host plugin new`: the project it writes is self-contained (SDK and WIT copied in) and
//! names what to run next; bad names and worlds are refused. `.ci/run` also builds a generated
//! verifier with the wasm toolchain and checks it (tests/foreign/run.sh).

mod common;

use std::process::Command;

fn new(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sera-host"))
        .args(["plugin", "new"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn writes_a_self_contained_project_for_every_world() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (world, export) in [
        ("verifier", "export_verifier!"),
        ("trajectory-filter", "export_filter!"),
        ("truncation", "export_truncation!"),
        ("pr-synthesizer", "export_pr_synthesizer!"),
        ("tools", "export_tools!"),
    ] {
        let name = format!("my-{world}");
        let (code, text) = new(&[world, &name, "--dir", d]);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("sera-host plugin check"), "{text}");
        let p = dir.path().join(&name);
        let cargo: toml::Value =
            toml::from_str(&std::fs::read_to_string(p.join("Cargo.toml")).unwrap()).unwrap();
        assert_eq!(cargo["package"]["name"].as_str(), Some(name.as_str()));
        assert_eq!(cargo["lib"]["crate-type"][0].as_str(), Some("cdylib"));
        let lib = std::fs::read_to_string(p.join("src/lib.rs")).unwrap();
        assert!(lib.contains(export), "{world}: {lib}");
        let sdk = std::fs::read_to_string(p.join("sera-plugin/src/lib.rs")).unwrap();
        assert!(
            sdk.contains("path: \"wit\""),
            "the SDK copy builds against its own WIT"
        );
        assert!(!sdk.contains("../../wit"));
        for f in ["types.wit", "worlds.wit"] {
            assert_eq!(
                std::fs::read(p.join("sera-plugin/wit").join(f)).unwrap(),
                std::fs::read(common::repo_root().join("wit/v0.1.0").join(f)).unwrap()
            );
        }
        let build = std::fs::read_to_string(p.join("build.sh")).unwrap();
        assert!(build.contains(&format!("{}.wasm", name.replace('-', "_"))));
        assert!(std::fs::read_to_string(p.join("README.md"))
            .unwrap()
            .contains(&format!("--world {world}")));
    }
}

#[test]
fn refuses_existing_directories_bad_names_and_unknown_worlds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert_eq!(new(&["verifier", "v", "--dir", d]).0, 0);
    let (code, text) = new(&["verifier", "v", "--dir", d]);
    assert_eq!(code, 2);
    assert!(text.contains("already exists"), "{text}");
    let (code, text) = new(&["verifier", "My Plugin", "--dir", d]);
    assert_eq!(code, 2);
    assert!(text.contains("use lowercase letters"), "{text}");
    let (code, text) = new(&["scorer", "s", "--dir", d]);
    assert_eq!(code, 2);
    assert!(
        text.contains("not a world (known: verifier, tools"),
        "{text}"
    );
}
