//! The plugin runtime around the guests: the compile cache, world detection, refusal of files
//! that are not usable plugins.

mod common;

use common::*;
use sera_host::plugin::{inspect, PluginEngine, PluginSource, WorldKind};

#[test]
fn compiled_components_are_cached_and_a_corrupt_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let engine = PluginEngine::new(Some(dir.path().to_path_buf())).unwrap();
    let source = PluginSource::parse("builtin:line-recall").unwrap();
    let first = engine.load(&source).unwrap();
    assert!(!first.from_cache);
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1);
    let name = entries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with(&first.sha256), "{name}");
    assert!(name.contains("-wasmtime48."), "{name}");

    let second = engine.load(&source).unwrap();
    assert!(second.from_cache);

    // Flip a byte in the artifact: the checksum refuses it and the component is rebuilt.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&entries[0], &bytes).unwrap();
    let third = engine.load(&source).unwrap();
    assert!(!third.from_cache);
    let mut v =
        sera_host::plugin::Verifier::new(&engine, &third, "{}", Default::default()).unwrap();
    let p = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n".to_string();
    let verdict = v
        .verify(
            "x",
            &sera_host::plugin::PatchPair {
                reference: p.clone(),
                candidate: p,
            },
        )
        .unwrap();
    assert_eq!(verdict.score, Some(1.0));
    assert!(engine.load(&source).unwrap().from_cache);
}

#[test]
fn inspect_reports_the_world_and_interfaces() {
    let engine = engine();
    let plugin = load(&engine, "builtin:line-recall");
    let info = inspect(&engine, &plugin).unwrap();
    assert_eq!(info.world, WorldKind::Verifier);
    assert_eq!(info.version, "0.1.0");
    assert!(info
        .exports
        .contains(&"sera:plugin/verify@0.1.0#verify-batch".to_string()));
    assert!(info
        .imports
        .iter()
        .all(|i| i.starts_with("wasi:") || i.starts_with("sera:plugin/")));
    assert_eq!(
        info.size,
        std::fs::read(dist("line-recall.wasm")).unwrap().len()
    );
}

#[test]
fn files_that_are_not_components_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let cases: [(&str, &[u8], &str); 4] = [
        ("text.wasm", b"hello, world\n", "not a WebAssembly file"),
        (
            "core.wasm",
            b"\0asm\x01\0\0\0",
            "core WebAssembly module, not a component",
        ),
        (
            "empty.wasm",
            b"\0asm\x0d\0\x01\0",
            "matches no sera:plugin world",
        ),
        ("odd.wasm", b"\0asm\x02\0\0\0", "unknown version"),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = engine
            .load(&PluginSource::File(path.clone()))
            .and_then(|p| inspect(&engine, &p).map(|_| ()))
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains(expected), "{name}: {text}");
        assert!(
            text.contains(name),
            "{name}: error must name the file: {text}"
        );
    }
}

#[test]
fn unknown_builtin_lists_the_available_ones() {
    let err = PluginSource::parse("builtin:nope").unwrap_err();
    assert!(err.to_string().contains("builtin:line-recall"), "{err}");
}
