"""Pairs of real diffs from the SWE-agent fixtures, as JSONL for `sera-host plugin check --pairs`:
every ordered pair of the patches the GPT-4 runs submitted, pydicom's gold patch and its test
patch (from the SWE-bench instance).

usage: real_pairs.py FIXTURES_DIR OUT.jsonl
"""

import json
import sys
from pathlib import Path

fixtures, out = Path(sys.argv[1]), Path(sys.argv[2])
patches = {}
for traj in sorted(fixtures.glob("*.traj")):
    sub = (json.loads(traj.read_text()).get("info") or {}).get("submission")
    if sub:
        patches[f"{traj.stem} submission"] = sub
patches["pydicom sidecar patch"] = (fixtures / "pydicom__pydicom-1458.patch").read_text()
instance = json.loads((fixtures / "pydicom__pydicom-1458.instance.json").read_text())
patches["pydicom gold patch"] = instance["patch"]
patches["pydicom test patch"] = instance["test_patch"]
with out.open("w") as f:
    for a, pa in patches.items():
        for b, pb in patches.items():
            f.write(json.dumps({"name": f"{a} vs {b}", "reference": pa, "candidate": pb}) + "\n")
print(f"{len(patches)} real patches, {len(patches) ** 2} pairs")
