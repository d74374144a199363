"""Line recall as a sera-host verifier written in Python, built with componentize-py.

The same algorithm as `builtin:line-recall` (plugins/line-recall-core): a patch's change lines
are the `+`/`-` lines of its hunks (read by the counts in each `@@` header), blank ones skipped,
sign and whitespace kept; r = reference change lines found among the candidate's (a multiset:
each candidate line matches once) / reference change lines. No reference change lines: no score.
Empty candidate: 0, "no edit". `{"compat": "sera"}` reproduces SERA's `compare_patch_recall`.

Build: componentize-py -d ../../wit/v0.1.0 -w verifier componentize app -o line-recall-py.wasm
"""

import json
import re
from collections import Counter

from wit_world import exports
from componentize_py_types import Err, Ok
from wit_world.imports.types import Verdict

HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
SERA_SKIP = ("diff", "---", "+++", "@@")

mode = "hunks"


def hunk_change_lines(patch):
    """The non-blank +/- lines of every hunk, in order; ValueError for a broken hunk."""
    out = []
    if not patch.strip():
        return out
    body = patch[:-1] if patch.endswith("\n") else patch
    old_left = new_left = 0
    header_line = 0
    seen_diff = False
    for n, raw in enumerate(body.split("\n"), start=1):
        if old_left or new_left:
            first = raw[:1]
            if first in ("", " "):
                old, new = 1, 1
            elif first == "-":
                old, new = 1, 0
            elif first == "+":
                old, new = 0, 1
            elif first == "\\":
                old, new = 0, 0
            else:
                raise ValueError(f"line {n}: expected a hunk line (' ', '+' or '-') for the hunk at line {header_line}")
            if old > old_left or new > new_left:
                raise ValueError(f"line {n}: the hunk at line {header_line} has no room for this line")
            old_left -= old
            new_left -= new
            if old != new and raw[1:].strip():
                out.append(raw)
            continue
        text = raw[:-1] if raw.endswith("\r") else raw
        if text.startswith("@@"):
            m = HUNK.match(text)
            if text.startswith("@@@") or not m:
                raise ValueError(f"line {n}: expected a hunk header '@@ -START[,COUNT] +START[,COUNT] @@'")
            old_left = int(m.group(1)) if m.group(1) is not None else 1
            new_left = int(m.group(2)) if m.group(2) is not None else 1
            header_line = n
            seen_diff = True
        elif text.startswith("diff ") or text.startswith("--- "):
            seen_diff = True
        elif seen_diff and text == "-- ":
            break
    if old_left or new_left:
        raise ValueError(f"the hunk at line {header_line} ends early: {old_left} old and {new_left} new lines missing")
    if not seen_diff:
        raise ValueError("line 1: expected a unified diff ('diff --git', '--- a/FILE' or a hunk header)")
    return out


def sera_change_lines(patch):
    return [
        line
        for line in patch.splitlines()
        if not line.startswith(SERA_SKIP) and line[:1] in ("+", "-") and line[1:].strip()
    ]


def change_lines(patch):
    return sera_change_lines(patch) if mode == "sera" else hunk_change_lines(patch)


def score(pair):
    try:
        p1 = change_lines(pair.reference)
    except ValueError as e:
        raise Err(f"reference patch: {e}")
    try:
        p2 = change_lines(pair.candidate)
    except ValueError as e:
        raise Err(f"candidate patch: {e}")
    total = len(p1)
    if total == 0:
        return Verdict(None, 0, 0, "reference patch has no change lines")
    if not pair.candidate.strip():
        return Verdict(0.0, 0, total, "no edit")
    pool = Counter(p2)
    matched = 0
    for line in p1:
        if pool[line] > 0:
            pool[line] -= 1
            matched += 1
    return Verdict(
        matched / total,
        matched,
        total,
        f"{matched} of {total} reference change lines found among {len(p2)} candidate change lines",
    )


class Verify(exports.Verify):
    def init(self, config):
        global mode
        try:
            cfg = json.loads(config or "{}")
        except ValueError as e:
            raise Err(f"line-recall (python): config is not JSON: {e}")
        if not isinstance(cfg, dict) or set(cfg) - {"compat"} or cfg.get("compat", "none") not in ("none", "sera"):
            raise Err(f'line-recall (python): unsupported config {config}; expected {{}} or {{"compat":"sera"}}')
        mode = "sera" if cfg.get("compat") == "sera" else "hunks"

    def verify(self, pair):
        return score(pair)

    def verify_batch(self, pairs):
        out = []
        for p in pairs:
            try:
                out.append(Ok(score(p)))
            except Err as e:
                out.append(e)
        return out
