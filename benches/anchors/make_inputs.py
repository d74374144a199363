"""Inputs for benches/anchors.sh, made from the real SWE-agent fixtures and real stdlib lines.

usage: make_inputs.py FIXTURES OUT TRAJ_MB SERA_MB PAIRS

- OUT/traj/NNNNN/NAME.traj: copies of every fixture .traj until TRAJ_MB MB; each copy's history
  messages carry the copy's number, so no two copies store the same trajectory.
- OUT/sera.jsonl: SERA-format T2 rows (history as a JSON *string*, a 50-line rollout patch and a
  50-line target patch of real stdlib lines, as ../shared/anchors/bench_recall.py builds them)
  until SERA_MB MB.
- OUT/pairs.jsonl: PAIRS such rows with a one-message history: the pairs re-scoring reads, and
  OUT/pairs-anchor.jsonl the same pairs as {"p1", "p2"} for the Python anchor.
"""

import copy
import json
import random
import sys
from pathlib import Path

fixtures, out = Path(sys.argv[1]), Path(sys.argv[2])
traj_mb, sera_mb, npairs = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
out.mkdir(parents=True, exist_ok=True)
random.seed(1)
lines = [l for l in open(json.decoder.__file__).read().split("\n") if l.strip()]


def patch(n, k):
    hdr = f"diff --git a/pkg{k}/x.py b/pkg{k}/x.py\n--- a/pkg{k}/x.py\n+++ b/pkg{k}/x.py\n@@ -1,{n // 2} +1,{n // 2} @@\n"
    body = []
    for _ in range(n // 2):
        l = random.choice(lines)
        body.append("-" + l)
        body.append("+" + l + "  # x")
    return hdr + "\n".join(body) + "\n"


def varied(history, i):
    h = copy.deepcopy(history)
    for m in h:
        c = m.get("content")
        if isinstance(c, str):
            m["content"] = f"{c} [copy {i}]"
        elif isinstance(c, list) and c and isinstance(c[0], dict) and "text" in c[0]:
            c[0]["text"] = f"{c[0]['text']} [copy {i}]"
    return h


docs = [(p.name, json.loads(p.read_text())) for p in sorted(fixtures.glob("*.traj"))]
written, i = 0, 0
while written < traj_mb * 1e6:
    d = out / "traj" / f"{i:05d}"
    d.mkdir(parents=True, exist_ok=True)
    for name, doc in docs:
        v = dict(doc)
        v["history"] = varied(doc["history"], i)
        text = json.dumps(v)
        (d / name).write_text(text)
        written += len(text)
    i += 1
print(f"traj: {i} copies of {len(docs)} fixtures, {written / 1e6:.0f} MB")

histories = [doc["history"] for _, doc in docs]
written, n = 0, 0
with open(out / "sera.jsonl", "w") as f:
    while written < sera_mb * 1e6:
        row = {
            "messages": json.dumps(varied(histories[n % len(histories)], n)),
            "instance_id": f"bench__sera-{n}",
            "rollout_patch": patch(50, n),
            "target_patch": patch(50, n),
            "func_name": "f",
            "func_path": "x.py",
            "problem_statement": "bench",
            "source": "anchors",
            "docker_image": "none",
        }
        line = json.dumps(row) + "\n"
        f.write(line)
        written += len(line)
        n += 1
print(f"sera: {n} rows, {written / 1e6:.0f} MB")

with open(out / "pairs.jsonl", "w") as f, open(out / "pairs-anchor.jsonl", "w") as g:
    for n in range(npairs):
        p1, p2 = patch(50, n), patch(50, n)
        row = {
            "messages": json.dumps([{"role": "user", "content": f"pair {n}"}]),
            "instance_id": f"bench__pair-{n}",
            "rollout_patch": p2,
            "target_patch": p1,
            "func_name": "f",
            "func_path": "x.py",
            "problem_statement": "bench",
            "source": "anchors",
            "docker_image": "none",
        }
        f.write(json.dumps(row) + "\n")
        g.write(json.dumps({"p1": p1, "p2": p2}) + "\n")
print(f"pairs: {npairs}")
