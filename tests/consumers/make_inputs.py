"""Builds a SERA-format JSONL and an OpenAI JSONL from the real SWE-agent fixtures, written
here in Python independently of sera-host's importers (SERA rows carry the SWE-agent history as
a JSON *string*)."""

import json
import sys
from pathlib import Path

fixtures = Path(sys.argv[1])
out = Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)

gold = json.loads((fixtures / "pydicom__pydicom-1458.instance.json").read_text())["patch"]
model = (fixtures / "pydicom__pydicom-1458.patch").read_text()

rows = []
for name in sorted(fixtures.glob("*.traj")):
    doc = json.loads(name.read_text())
    instance = name.name[: -len(".traj")]
    submission = (doc.get("info") or {}).get("submission") or ""
    for target in ("", gold if instance.startswith("pydicom") else submission):
        rows.append(
            {
                "messages": json.dumps(doc["history"]),
                "instance_id": instance,
                "rollout_patch": model if instance.startswith("pydicom") else submission,
                "target_patch": target,
                "func_name": "f",
                "func_path": "x.py",
                "problem_statement": "fixture",
                "source": "fixtures",
                "docker_image": "none",
            }
        )
(out / "sera.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

chat = {
    "messages": [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "Why does TimeDelta round 345 ms down?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "view", "arguments": json.dumps({"path": "src/marshmallow/fields.py"})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "return int(value.total_seconds() / base_unit.total_seconds())"},
        {"role": "assistant", "content": "int() truncates; it should round."},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "view",
                "description": "View a file",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
            },
        }
    ],
}
(out / "chat.jsonl").write_text(json.dumps(chat) + "\n")
print(f"{len(rows)} SERA rows, 1 OpenAI conversation")
