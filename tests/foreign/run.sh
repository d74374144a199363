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
