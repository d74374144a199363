"""The Python anchors a user would write instead of sera-host, timed in-process.

usage: transform.py traj DIR OUT.jsonl   SWE-smith's transform: json-load each .traj, take its
                                         history, write one chat JSONL row per trajectory.
       transform.py sera FILE OUT.jsonl  load each SERA row and its `messages` string, write
                                         chat JSONL.
       transform.py rescore PAIRS.jsonl  SERA recall (../shared/anchors/sera_recall.py) of
                                         every {"p1", "p2"} line.
Prints one JSON line: {"seconds", "bytes" | "pairs"}.
"""

import json
import os
import sys
import time
from pathlib import Path

mode = sys.argv[1]
t = time.perf_counter()
if mode == "traj":
    files = sorted(Path(sys.argv[2]).rglob("*.traj"))
    total = 0
    with open(sys.argv[3], "w") as out:
        for p in files:
            text = p.read_bytes()
            total += len(text)
            doc = json.loads(text)
            history = doc["history"]
            msgs = [{"role": m["role"], "content": m["content"]} for m in history]
            out.write(json.dumps({"messages": msgs, "instance_id": p.stem}) + "\n")
    print(json.dumps({"seconds": time.perf_counter() - t, "bytes": total, "items": len(files)}))
elif mode == "sera":
    total = n = 0
    with open(sys.argv[2], "rb") as f, open(sys.argv[3], "w") as out:
        for line in f:
            total += len(line)
            row = json.loads(line)
            msgs = json.loads(row["messages"])
            row["messages"] = msgs
            out.write(json.dumps(row) + "\n")
            n += 1
    print(json.dumps({"seconds": time.perf_counter() - t, "bytes": total, "items": n}))
elif mode == "rescore":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "shared" / "anchors"))
    sys.path.insert(0, os.environ.get("SERA_ANCHORS", ""))
    from sera_recall import recall

    n = 0
    with open(sys.argv[2]) as f:
        for line in f:
            p = json.loads(line)
            recall(p["p1"], p["p2"], "sera")
            n += 1
    print(json.dumps({"seconds": time.perf_counter() - t, "pairs": n}))
else:
    sys.exit(f"unknown mode {mode}")
