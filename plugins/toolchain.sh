#!/usr/bin/env bash
# Prints the reference toolchain that produced plugins/dist/*.wasm; the bytes depend on it.
set -euo pipefail
echo "rustc: $(/usr/bin/rustc --version)"
echo "cargo: $(/usr/bin/cargo --version)"
for pkg in rustc-web cargo-web rust-web-src lld-16 wasi-libc; do
  echo "$pkg: $(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || echo missing)"
done
echo "target: wasm32-wasip2 (-Zbuild-std=std,panic_abort, +simd128)"
