#!/usr/bin/env bash
# Builds the verifiers written in other languages into OUT_DIR (default target/foreign):
#   line-recall-py.wasm  plugins/python-line-recall/app.py  with componentize-py (PyPI)
#   line-recall-js.wasm  plugins/js-line-recall/line-recall.js  with componentize-js (npm)
# Their toolchains are installed once into $SERA_FOREIGN_CACHE (default $TMPDIR/sera-host-foreign).
# Neither tool builds byte-for-byte reproducibly (both snapshot an initialised interpreter), so
# the components are built here rather than committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$(mkdir -p "${1:-target/foreign}" && cd "${1:-target/foreign}" && pwd)"
cache="${SERA_FOREIGN_CACHE:-${TMPDIR:-/tmp}/sera-host-foreign}"
mkdir -p "$cache"

componentize_py_version=0.25.1
if ! "$cache/py/bin/componentize-py" --version 2>/dev/null | grep -q "$componentize_py_version"; then
  python3 -m venv "$cache/py"
  "$cache/py/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$componentize_py_version"
fi
start=$(date +%s)
"$cache/py/bin/componentize-py" -d wit/v0.1.0 -w verifier componentize \
  -p plugins/python-line-recall app -o "$out/line-recall-py.wasm" >/dev/null
echo "line-recall-py.wasm: componentize-py $componentize_py_version, $(( $(date +%s) - start )) s"

mkdir -p "$cache/js"
cp plugins/js-line-recall/package.json "$cache/js/package.json"
if ! [ -d "$cache/js/node_modules/@bytecodealliance/componentize-js" ]; then
  (cd "$cache/js" && npm install --silent --no-audit --no-fund)
fi
cp plugins/js-line-recall/build.mjs "$cache/js/build.mjs"
start=$(date +%s)
node "$cache/js/build.mjs" plugins/js-line-recall/line-recall.js wit/v0.1.0 "$out/line-recall-js.wasm" >/dev/null
echo "line-recall-js.wasm: componentize-js $(node -p "require('$cache/js/node_modules/@bytecodealliance/componentize-js/package.json').version"), $(( $(date +%s) - start )) s"
