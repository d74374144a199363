"""Loads sera-host shards the way trainers do and checks them.

1. Hugging Face `datasets`: `load_dataset("json", data_files=<the .jsonl.zst shards>)` (zstd
   through `zstandard`); the row count equals the manifest's, the columns are messages, tools and
   metadata, and every message survives Arrow's schema unification with its text.
2. The real Qwen3 chat template (../shared/fixtures/tokenizers/qwen3/tokenizer_config.json),
   rendered with jinja2 set up as `transformers`' `apply_chat_template` sets it up, with the
   row's `tools`: every tool call and tool response of the row appears in the rendered text.

0. `load_dataset(SHARD_DIR)` with no other argument: the splits the dataset card declares,
   every row, each T1/T2 split holding only its stage's rows.

usage: check_shards.py SHARD_DIR RENDER|pipeline TOKENIZER_CONFIG
"""

import json
import re
import sys
from pathlib import Path

import zstandard
from datasets import load_dataset
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

out, render, config = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
manifest = json.loads((out / "manifest.json").read_text())
files = [str(out / s["file"]) for s in manifest["shards"]]
# `pipeline`: a `sera-host run` output (OpenAI rendering, metadata without `render`).
pipeline = render == "pipeline"
if pipeline:
    render = "openai"

# 0. The directory alone: its dataset card (README.md) declares the configs and splits.
by_card = load_dataset(str(out))
card = (out / "README.md").read_text()
declared = re.findall(r"^  - split: (\S+)$", card, re.M)
assert sorted(by_card.keys()) == sorted(declared), (list(by_card.keys()), declared)
assert sum(len(by_card[k]) for k in by_card) == manifest["rows"], (by_card, manifest["rows"])
for split in by_card:
    if split in ("T1", "T2"):
        assert all(r["stage"] == split for r in by_card[split]["metadata"]), split
print(f"{out.name}: load_dataset(DIR) gives splits {dict((k, len(v)) for k, v in by_card.items())} as the card declares")

ds = load_dataset("json", data_files=files, split="train")
assert len(ds) == manifest["rows"], (len(ds), manifest["rows"])
assert sorted(ds.column_names) == ["messages", "metadata", "tools"], ds.column_names
# Arrow's schema: a list of messages (datasets 5 keeps heterogeneous structs as `Json`), the
# metadata a struct with the row id and rendering as strings.
assert "messages" in ds.features and "tools" in ds.features, ds.features
assert ds.features["metadata"]["row_id"].dtype == "string", ds.features
if not pipeline:
    assert ds.features["metadata"]["render"].dtype == "string", ds.features

raw = []
for f in files:
    text = zstandard.ZstdDecompressor().stream_reader(open(f, "rb")).read().decode()
    raw += [json.loads(l) for l in text.splitlines() if l]
assert len(raw) == len(ds)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # As transformers' chat template environment defines it.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise RuntimeError(message)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
template = env.from_string(json.loads(config.read_text())["chat_template"])


def strip_none(v):
    """Arrow gives every struct the union of all rows' keys, missing ones as None."""
    if isinstance(v, dict):
        return {k: strip_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [strip_none(x) for x in v]
    return v


calls = responses = 0
for i, (row, want) in enumerate(zip(ds, raw)):
    assert row["metadata"]["row_id"] == want["metadata"]["row_id"]
    if not pipeline:
        assert row["metadata"]["render"] == render, row["metadata"]
    assert [m["content"] for m in row["messages"]] == [m["content"] for m in want["messages"]]
    assert [m["role"] for m in row["messages"]] == [m["role"] for m in want["messages"]]
    messages = strip_none(row["messages"])
    tools = strip_none(row["tools"])
    text = template.render(messages=messages, tools=tools, add_generation_prompt=False)
    where = f"{out.name} row {i} ({want['metadata'].get('source', want['metadata'].get('function'))})"
    for m in want["messages"]:
        if render == "openai":
            for c in m.get("tool_calls") or []:
                f = c["function"]
                block = '<tool_call>\n{"name": "' + f["name"] + '", "arguments": ' + f["arguments"] + "}\n</tool_call>"
                assert block in text, f"{where}: tool call {c['id']} is not in the rendered text"
                calls += 1
            if m["role"] == "tool":
                block = "<tool_response>\n" + m["content"] + "\n</tool_response>"
                assert block in text, f"{where}: the response to {m['tool_call_id']} is not in the rendered text"
                responses += 1
        elif render == "hermes":
            for block in re.findall(r"<tool_call>\n.*?\n</tool_call>", m["content"], re.S):
                assert block in text, f"{where}: {block[:80]!r} is not in the rendered text"
                calls += 1
            for block in re.findall(r"<tool_response>\n.*?\n</tool_response>", m["content"], re.S):
                assert block in text, f"{where}: {block[:80]!r} is not in the rendered text"
                responses += 1
        else:
            for block in re.findall(r"<function=[^>\n]+>\n.*?</function>", m["content"], re.S):
                assert block in text, f"{where}: {block[:80]!r} is not in the rendered text"
                calls += 1
            if m["role"] == "user":
                assert m["content"] in text, f"{where}: a tool result turn is not in the rendered text"
                responses += 1
    assert text.count("<|im_start|>") >= len(want["messages"]) - 1, where

assert calls > 0 and responses > 0, (calls, responses)
print(f"{out.name}: {len(ds)} rows load with datasets {__import__('datasets').__version__}; "
      f"{calls} tool calls and {responses} tool responses/results found in the Qwen3 chat template's rendering")
