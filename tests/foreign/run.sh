#!/usr/bin/env bash
# Verifiers written in Python (componentize-py) and JavaScript (componentize-js): built, checked
# for conformance, compared with builtin:line-recall on every pair of real diffs from the
# fixtures (both configs), and used by `sera-host rescore` as the README shows. Run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${SERA_HOST_BIN:-target/debug/sera-host}"
fixtures=../shared/fixtures/trajectories/swe-agent
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash plugins/foreign/build.sh target/foreign
python3 tests/foreign/real_pairs.py "$fixtures" "$work/pairs.jsonl"
for lang in py js; do
  for config in '{}' '{"compat":"sera"}'; do
    echo "--- line-recall-$lang.wasm, config $config"
    "$bin" plugin check "target/foreign/line-recall-$lang.wasm" --world verifier --config "$config" \
      --same-as builtin:line-recall --pairs "$work/pairs.jsonl"
  done
done
# The README's walk-through: a Python verifier used by `sera-host rescore`.
db="$work/corpus.sqlite"
"$bin" import --format swe-agent --db "$db" "$fixtures" >/dev/null
instance="$fixtures/pydicom__pydicom-1458.instance.json"
"$bin" rescore --db "$db" --reference "$instance" --list | grep -P '\t' > "$work/builtin.txt"
for lang in py js; do
  "$bin" rescore --db "$db" --verifier "target/foreign/line-recall-$lang.wasm" --reference "$instance" --list \
    | tee "$work/$lang.out" | grep -P '\t' > "$work/$lang.txt"
  diff "$work/builtin.txt" "$work/$lang.txt"
  grep -q "1 pairs (1 scored now" "$work/$lang.out"
done
echo "python and javascript verifiers: conformant, and the same scores as builtin:line-recall"

# A Rust verifier from `sera-host plugin new` (the guest SDK), built with the wasm toolchain.
"$bin" plugin new verifier my-verifier --dir "$work"
CARGO_TARGET_DIR="$work/sdk-target" bash "$work/my-verifier/build.sh"
"$bin" plugin check "$work/my-verifier/my-verifier.wasm" --world verifier --pairs "$work/pairs.jsonl"
"$bin" rescore --db "$db" --verifier "$work/my-verifier/my-verifier.wasm" --reference "$instance" --list | grep -q "pydicom__pydicom-1458"
echo "a verifier from sera-host plugin new: built, conformant, used by rescore"

# The SDK's sixth world (its `tools-exec` feature, `sera:plugin@0.1.1`): a tool set whose tool
# runs commands, written against the SDK's trait, built, linked and inspected.
"$bin" plugin new tools my-exec-tools --dir "$work"
sed -i 's|sera-plugin = { path = "sera-plugin" }|sera-plugin = { path = "sera-plugin", features = ["tools-exec"] }|' \
  "$work/my-exec-tools/Cargo.toml"
grep -q 'features = \["tools-exec"\]' "$work/my-exec-tools/Cargo.toml"
cat > "$work/my-exec-tools/src/lib.rs" <<'RUST'
use sera_plugin::tools_exec::{exec, ToolSpec, Tools};

struct Plugin;

impl Tools for Plugin {
    fn list_tools() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "run".into(),
            description: "Runs a command line in the workspace.".into(),
            parameters: r#"{"type":"object","properties":{"command":{"type":"string"}},"required":["command"]}"#.into(),
        }]
    }

    fn call(name: &str, arguments: &str) -> Result<String, String> {
        if name != "run" {
            return Err(format!("unknown tool {name}"));
        }
        let command = arguments
            .split("\"command\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .ok_or("run: no command")?;
        let r = exec::run(&exec::ExecRequest { command: command.into(), timeout_s: None })?;
        Ok(format!("exit {:?}\n{}", r.exit_code, r.output))
    }
}

sera_plugin::export_tools_exec!(Plugin);
RUST
CARGO_TARGET_DIR="$work/sdk-target" bash "$work/my-exec-tools/build.sh"
"$bin" plugin inspect "$work/my-exec-tools/my-exec-tools.wasm" | tee "$work/exec-inspect.txt"
grep -q "sera:plugin/exec@0.1.1" "$work/exec-inspect.txt"
"$bin" plugin check "$work/my-exec-tools/my-exec-tools.wasm" --world tools
echo "a tools-exec plugin from the SDK's sixth world: built, imports exec, conformant"
