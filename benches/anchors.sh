#!/usr/bin/env bash
# sera-host against what a user would run instead, on the same inputs, in one invocation
# (ratios hold on a noisy machine; absolute figures do not):
#  (a) `import --format swe-agent` vs SWE-smith's transform in Python (json-load each .traj,
#      take its history, write one chat JSONL row per trajectory), on >= 200 MB of .traj;
#      `import --format sera` vs a Python loop that loads each SERA row and its `messages`
#      string, on >= 100 MB of rows;
#  (b) `rescore` of 200,000 stored pairs (builtin:line-recall, every core, new verdicts) vs
#      ../shared/anchors/sera_recall.py over the same pairs read from JSONL.
# Inputs are made from the real SWE-agent fixtures and real stdlib lines
# (benches/anchors/make_inputs.py). Targets (issue 18): .traj 2x, SERA rows 1.5x, rescore 10x.
#
# usage: benches/anchors.sh [--small]   (--small: a few MB, as CI's smoke test; no targets)
# SERA_HOST_BIN: the binary to time (default: a release build made here).
# SERA_BENCH_TMP: where inputs and corpora go (default $TMPDIR or /tmp; ~2 GB at full size).
set -euo pipefail
cd "$(dirname "$0")/.."
small=0
[ "${1:-}" = "--small" ] && small=1
if [ "$small" = 1 ]; then traj_mb=4; sera_mb=3; pairs=2000; else traj_mb=200; sera_mb=100; pairs=200000; fi
if [ -n "${SERA_HOST_BIN:-}" ]; then
  bin=$(cd "$(dirname "$SERA_HOST_BIN")" && pwd)/$(basename "$SERA_HOST_BIN")
else
  cargo build --release -q -p sera-host
  bin="$PWD/target/release/sera-host"
fi
export SERA_HOST_CACHE_DIR="${SERA_HOST_CACHE_DIR:-${TMPDIR:-/tmp}/sera-host-test-cache/plugins}"
work=$(mktemp -d "${SERA_BENCH_TMP:-${TMPDIR:-/tmp}}/sera-anchors-XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 benches/anchors/make_inputs.py ../shared/fixtures/trajectories/swe-agent "$work/in" "$traj_mb" "$sera_mb" "$pairs"
# Both sides read the inputs from the page cache.
find "$work/in" -type f -exec cat {} + >/dev/null
# Each timed step starts with nothing left to write back: a commit's fsync on ext4 waits behind
# the writeback of other files' data (the ~1.2 GB of inputs just generated, the JSONL the anchor
# wrote just before), which would charge sera-host for the generator's and the anchor's writes.
settle() { sync; }

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.3f}')"; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
report() { # name, unit, ours-per-second, anchor-per-second, target
  python3 -c "
import sys
name, unit, ours, anchor, target = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
ratio = ours / anchor
print(f'{name:<28} sera-host {ours:>10,.0f} {unit:<8} anchor {anchor:>10,.0f} {unit:<8} ratio {ratio:5.2f}x (target {target}x)')
" "$@"
}

min() { python3 -c "import sys; print(min(map(float, sys.argv[1:])))" "$@"; }
# Imports take about a second a side: each side runs three times, alternating, and its fastest
# run counts (this VM's speed drifts within a minute, and its reclaim of cold pages can make
# whichever side runs second re-read inputs).
import_rounds() { # format, input, anchor mode; sets ours_s, anchor_s, bytes
  local a=() o=() out
  for round in 1 2 3; do
    settle; out=$(python3 benches/anchors/transform.py "$3" "$2" "$work/$1-anchor.jsonl")
    a+=("$(field "$out" seconds)"); bytes=$(field "$out" bytes)
    rm -f "$work/$1.sqlite"*; settle
    t0=$(now); "$bin" import --format "$1" --db "$work/$1.sqlite" "$2" >/dev/null; t1=$(now)
    o+=("$(secs "$t0" "$t1")")
  done
  anchor_s=$(min "${a[@]}"); ours_s=$(min "${o[@]}")
  echo "$1: sera-host $(printf '%.3f ' "${o[@]}")s, anchor $(printf '%.3f ' "${a[@]}")s"
}
mbps() { python3 -c "print($1 / 1e6 / $2)"; }

echo "--- (a) import"
import_rounds swe-agent "$work/in/traj" traj
traj_bytes=$bytes; ours_traj=$(mbps "$bytes" "$ours_s"); anchor_traj=$(mbps "$bytes" "$anchor_s")
import_rounds sera "$work/in/sera.jsonl" sera
sera_bytes=$bytes; ours_sera=$(mbps "$bytes" "$ours_s"); anchor_sera=$(mbps "$bytes" "$anchor_s")

echo "--- (b) rescore"
"$bin" import --format sera --db "$work/pairs.sqlite" "$work/in/pairs.jsonl" >/dev/null
settle; t0=$(now); "$bin" rescore --db "$work/pairs.sqlite" --reference p1 >"$work/rescore.txt"; t1=$(now)
settle; anchor=$(SERA_ANCHORS="$PWD/../shared/anchors" python3 benches/anchors/transform.py rescore "$work/in/pairs-anchor.jsonl")
ours_rescore=$(python3 -c "print($pairs / ($t1 - $t0))")
anchor_rescore=$(python3 -c "print($(field "$anchor" pairs) / $(field "$anchor" seconds))")
grep -q "$pairs pairs" "$work/rescore.txt" || { cat "$work/rescore.txt"; echo "rescore did not score $pairs pairs" >&2; exit 1; }

echo "--- $(nproc) cores, $(( traj_bytes / 1000000 )) MB of .traj, $(( sera_bytes / 1000000 )) MB of SERA rows, $pairs pairs"
report "import --format swe-agent" "MB/s" "$ours_traj" "$anchor_traj" 2
report "import --format sera" "MB/s" "$ours_sera" "$anchor_sera" 1.5
report "rescore" "pairs/s" "$ours_rescore" "$anchor_rescore" 10
# Where rescore's time went: scoring end to end, and per thread the reads and the plugin alone.
grep "^scoring:" "$work/rescore.txt" || true
