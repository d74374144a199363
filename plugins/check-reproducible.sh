#!/usr/bin/env bash
# Rebuilds every plugin with the reference toolchain and compares the bytes with the committed
# plugins/dist. Same toolchain as recorded in plugins/dist/TOOLCHAIN: any differing byte fails.
# Different toolchain (Debian replaced rustc-web): say so plainly, then prove the rebuilt plugins
# work by running the plugin tests against them, instead of failing on bytes alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$here/build.sh" "$tmp/dist" > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
status=0
while read -r want name; do
  got=$(sha256sum "$tmp/dist/$name" | cut -d' ' -f1)
  if [ "$got" = "$want" ]; then
    echo "reproducible: $name $got"
  else
    echo "DIFFERENT: $name committed $want rebuilt $got"
    status=1
  fi
done < "$here/dist/SHA256SUMS"
if diff -u "$here/dist/TOOLCHAIN" "$tmp/dist/TOOLCHAIN" > "$tmp/toolchain.diff"; then
  [ "$status" = 0 ] && echo "all plugins rebuilt byte for byte with the recorded toolchain" && exit 0
  echo "plugin bytes differ although the toolchain is the recorded one: the build is not reproducible" >&2
  exit 1
fi
echo "the installed toolchain is not the one recorded in plugins/dist/TOOLCHAIN:"
cat "$tmp/toolchain.diff"
if [ "$status" = 0 ]; then
  echo "yet the bytes are identical"
  exit 0
fi
echo "bytes cannot match across toolchains; testing the rebuilt plugins instead"
cp "$tmp"/dist/*.wasm "$here/dist/"
cd "$root"
cargo test --test line_recall --test hostile --test runtime --test cli --test rollout
git -C "$root" checkout -- plugins/dist
echo "rebuilt plugins pass the plugin tests; commit them with plugins/build.sh to update the record"
