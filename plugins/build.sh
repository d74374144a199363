#!/usr/bin/env bash
# Builds every plugin into plugins/dist/*.wasm with the reference toolchain of TOOLCHAIN.md
# (Debian rustc-web + rust-web-src + lld-16 + wasi-libc, -Zbuild-std for wasm32-wasip2).
# Usage: plugins/build.sh [OUT_DIR]   (default: plugins/dist)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/dist}
for tool in /usr/bin/rustc /usr/bin/cargo /usr/bin/wasm-ld-16 /usr/lib/wasm32-wasi; do
  [ -e "$tool" ] || { echo "build.sh: $tool is missing; install: apt-get install -y rustc-web cargo-web rust-web-src lld-16 wasi-libc" >&2; exit 1; }
done
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
ln -sf /usr/bin/wasm-ld-16 "$shim/wasm-ld"
ln -sf /usr/bin/wasm-ld-16 "$shim/rust-lld"
export PATH="$shim:/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
# simd128: wasmtime runs it, and memchr uses it to split lines.
export RUSTFLAGS="-L /usr/lib/wasm32-wasi -C target-feature=+simd128" CARGO_TARGET_DIR="$here/target"
# Paths of the build directory must not leak into the bytes.
export RUSTFLAGS="$RUSTFLAGS --remap-path-prefix=$here=/plugins --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
cd "$here"
/usr/bin/cargo build --release -Zbuild-std=std,panic_abort --target wasm32-wasip2 \
  -p line-recall -p hostile -p swe-tools -p fs-ops -p pr-synth -p truncate-ratio -p max-patch-lines -p max-avg-tool-tokens
mkdir -p "$out"
for name in line-recall hostile swe-tools fs-ops pr-synth truncate-ratio max-patch-lines max-avg-tool-tokens; do
  cp "target/wasm32-wasip2/release/${name//-/_}.wasm" "$out/$name.wasm"
done
(cd "$out" && sha256sum line-recall.wasm hostile.wasm swe-tools.wasm fs-ops.wasm pr-synth.wasm truncate-ratio.wasm max-patch-lines.wasm max-avg-tool-tokens.wasm > SHA256SUMS && cat SHA256SUMS)
"$here/toolchain.sh" > "$out/TOOLCHAIN"
