#!/usr/bin/env bash
# Real consumers of sera-host shards: imports the real SWE-agent fixtures (and SERA/OpenAI
# JSONL written from them by make_inputs.py), rescores, writes shards in each rendering, and
# loads them with Hugging Face `datasets` and the real Qwen3 chat template (check_shards.py).
# Run by .ci/run. Needs the sera-host binary (SERA_HOST_BIN, default target/debug/sera-host).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${SERA_HOST_BIN:-target/debug/sera-host}"
fixtures=../shared/fixtures/trajectories/swe-agent
tokenizer_config=../shared/fixtures/tokenizers/qwen3/tokenizer_config.json
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
venv="${SERA_CONSUMERS_VENV:-${TMPDIR:-/tmp}/sera-host-consumers-venv}"
if ! "$venv/bin/python" -c "import datasets, zstandard, jinja2" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "datasets>=3" "zstandard>=0.22" "jinja2>=3.1"
fi
"$venv/bin/python" tests/consumers/make_inputs.py "$fixtures" "$work/in"
db="$work/corpus.sqlite"
"$bin" import --format swe-agent --db "$db" "$fixtures"
"$bin" import --format sera --db "$db" "$work/in/sera.jsonl"
"$bin" import --format openai-jsonl --db "$db" "$work/in/chat.jsonl"
"$bin" rescore --db "$db" --reference p1
for render in openai hermes xml; do
  "$bin" shards --db "$db" --out "$work/$render" --render "$render" --rows-per-shard 4 \
    --verifier builtin:line-recall --reference p1 >/dev/null
  "$venv/bin/python" tests/consumers/check_shards.py "$work/$render" "$render" "$tokenizer_config"
done
# The demo pipeline's output directory (T1 and T2 splits in its dataset card), loaded by
# `load_dataset(DIR)` alone.
sed -e "s#^db = .*#db = \"$work/demo.sqlite\"#" -e "s#^dir = .*#dir = \"$work/demo\"#" \
  -e "s#\"\.\./\.\./\.\./shared#\"$PWD/../shared#g" corpora/demo/pipeline.toml > "$work/demo.toml"
"$bin" run "$work/demo.toml" --no-progress >/dev/null
"$venv/bin/python" tests/consumers/check_shards.py "$work/demo" pipeline "$tokenizer_config"
