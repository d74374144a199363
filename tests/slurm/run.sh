#!/usr/bin/env bash
# The demo pipeline as a 3-task Slurm array on a real one-node Slurm cluster
# (../shared/slurm/slurm-ci.sh): one task is cancelled mid-run and resubmitted alone, the
# corpora are merged and finalized by the dependent job, and the manifest must equal a
# single-process run's byte for byte (same Merkle root, same shards). Run by .ci/run, as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
bin="$repo/${SERA_HOST_BIN:-target/debug/sera-host}"
slurm_ci="$repo/../shared/slurm/slurm-ci.sh"
shared=$(cd ../shared && pwd)
work=$(mktemp -d /tmp/sera-slurm-XXXXXX)
started=0
cleanup() {
  [ "$started" = 1 ] && { scancel --quiet -u "$(id -un)" 2>/dev/null || true; bash "$slurm_ci" stop >/dev/null 2>&1 || true; }
  rm -rf "$work"
}
trap cleanup EXIT

# Two copies of the demo with its tokenizer paths made absolute, so that both resolve to the
# same pipeline; 29 functions x 3 prompts = 87 items, long enough to cancel a task mid-run.
for d in one cluster; do
  mkdir -p "$work/$d"
  sed -e "s#\.\./\.\./\.\./shared#$shared#g" \
      -e 's/^functions_per_repo = .*/functions_per_repo = 29\nprompts_per_function = 3/' \
      corpora/demo/pipeline.toml > "$work/$d/pipeline.toml"
done
cmp "$work/one/pipeline.toml" "$work/cluster/pipeline.toml"

echo "--- single-process run"
t=$(date +%s)
"$bin" run "$work/one/pipeline.toml" --no-progress | tail -3
echo "single-process run: $(( $(date +%s) - t )) s"

echo "--- Slurm"
bash "$slurm_ci" start
started=1
bash "$slurm_ci" test

p="$work/cluster/pipeline.toml"
"$bin" slurm "$p" --workers 3 --cpus 1 >"$work/scripts.txt"
grep -q -- '--array=0-2' "$work/scripts.txt"
out=$("$bin" slurm "$p" --workers 3 --cpus 1 --submit)
echo "$out"
array=$(echo "$out" | sed -n 's/^array job \([0-9]*\).*/\1/p')
finalize=$(echo "$out" | sed -n 's/^finalize job \([0-9]*\).*/\1/p')
[ -n "$array" ] && [ -n "$finalize" ]
squeue -j "$finalize" -h -o '%i %t %E' | grep -q "afterok:${array}"

# Catch a task mid-run: some of its items done, not all.
victim=""
for _ in $(seq 600); do
  for k in 0 1 2; do
    json=$("$bin" status "$p" --workers 3 --json 2>/dev/null) || continue
    read -r ndone items < <(python3 -c "import json,sys; w=json.loads(sys.argv[1])['workers'][$k]; print(w['counts']['done'], w['counts']['items'])" "$json")
    state=$(squeue -h -j "${array}_$k" -o %t 2>/dev/null || true)
    if [ "$state" = R ] && [ "$ndone" -gt 0 ] && [ "$ndone" -lt "$items" ]; then
      victim=$k; break 2
    fi
  done
  sleep 0.1
done
[ -n "$victim" ] || { echo "no array task was caught mid-run" >&2; squeue; exit 1; }
echo "cancelling task $victim mid-run ($ndone of $items items done)"
scancel "${array}_${victim}"
for _ in $(seq 300); do
  [ -z "$(squeue -h -j "${array}_${victim}" -o %t 2>/dev/null)" ] && break
  sleep 0.2
done
# The other tasks finish; the finalize job then waits for a dependency that can never be met.
for _ in $(seq 1200); do
  [ -z "$(squeue -h -j "$array" -o %i 2>/dev/null)" ] && break
  sleep 0.25
done
reason=$(squeue -h -j "$finalize" -o %r 2>/dev/null || true)
echo "finalize job $finalize after the cancel: ${reason:-gone}"
"$bin" status "$p" --workers 3
[ ! -e "$work/cluster/out/manifest.json" ] || { echo "finalized without the cancelled task" >&2; exit 1; }
scancel "$finalize" 2>/dev/null || true

echo "--- resubmit task $victim alone"
out=$("$bin" slurm "$p" --workers 3 --cpus 1 --submit --tasks "$victim")
echo "$out"
finalize=$(echo "$out" | sed -n 's/^finalize job \([0-9]*\).*/\1/p')
for _ in $(seq 2400); do
  [ -z "$(squeue -h -j "$finalize" -o %i 2>/dev/null)" ] && break
  sleep 0.25
done
cat "$work/cluster/slurm/logs/finalize-$finalize.out"
"$bin" status "$p"

echo "--- compare with the single-process run"
grep merkle_root "$work/one/out/manifest.json" "$work/cluster/out/manifest.json"
cmp "$work/one/out/manifest.json" "$work/cluster/out/manifest.json"
for f in "$work"/one/out/shard-*.jsonl.zst; do
  cmp "$f" "$work/cluster/out/$(basename "$f")"
done
"$bin" audit "$work/cluster/out/manifest.json" --db "$work/cluster/demo.sqlite" | tail -1
echo "slurm: 3-task array with task $victim cancelled and rerun: manifest and shards byte-identical to one process"
