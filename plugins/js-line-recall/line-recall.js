// Line recall as a sera-host verifier written in JavaScript, built with componentize-js (jco).
//
// The same algorithm as `builtin:line-recall` (plugins/line-recall-core): a patch's change lines
// are the `+`/`-` lines of its hunks (read by the counts in each `@@` header), blank ones
// skipped, sign and whitespace kept; r = reference change lines found among the candidate's (a
// multiset: each candidate line matches once) / reference change lines. No reference change
// lines: no score. Empty candidate: 0, "no edit". `{"compat": "sera"}` reproduces SERA's
// `compare_patch_recall`.
//
// Build: jco componentize line-recall.js --wit ../../wit/v0.1.0 --world-name verifier -o line-recall-js.wasm

const HUNK = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/;
// Something other than whitespace after the sign.
const NON_BLANK = /^[+-][\s]*\S/;
let mode = "hunks";

function hunkChangeLines(patch) {
  const out = [];
  if (patch.trim() === "") return out;
  const body = patch.endsWith("\n") ? patch.slice(0, -1) : patch;
  let oldLeft = 0;
  let newLeft = 0;
  let headerLine = 0;
  let seenDiff = false;
  const lines = body.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const raw = lines[i];
    if (oldLeft > 0 || newLeft > 0) {
      // Character codes, not substrings: the interpreter inside the component pays per object.
      const first = raw.length === 0 ? 32 : raw.charCodeAt(0);
      let o = 0;
      let w = 0;
      if (first === 32) {
        o = 1;
        w = 1;
      } else if (first === 45) o = 1;
      else if (first === 43) w = 1;
      else if (first !== 92) throw `line ${n}: expected a hunk line (' ', '+' or '-') for the hunk at line ${headerLine}`;
      if (o > oldLeft || w > newLeft) throw `line ${n}: the hunk at line ${headerLine} has no room for this line`;
      oldLeft -= o;
      newLeft -= w;
      if (o !== w && NON_BLANK.test(raw)) out.push(raw);
      continue;
    }
    const text = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (text.startsWith("@@")) {
      const m = HUNK.exec(text);
      if (text.startsWith("@@@") || !m) throw `line ${n}: expected a hunk header '@@ -START[,COUNT] +START[,COUNT] @@'`;
      oldLeft = m[1] === undefined ? 1 : parseInt(m[1], 10);
      newLeft = m[2] === undefined ? 1 : parseInt(m[2], 10);
      headerLine = n;
      seenDiff = true;
    } else if (text.startsWith("diff ") || text.startsWith("--- ")) {
      seenDiff = true;
    } else if (seenDiff && text === "-- ") {
      break;
    }
  }
  if (oldLeft > 0 || newLeft > 0) throw `the hunk at line ${headerLine} ends early: ${oldLeft} old and ${newLeft} new lines missing`;
  if (!seenDiff) throw "line 1: expected a unified diff ('diff --git', '--- a/FILE' or a hunk header)";
  return out;
}

// Python's str.splitlines also breaks lines at these (besides "\n", "\r" and "\r\n").
const RARE_BREAKS = ["\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"];
const ANY_BREAK = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;

// Lines as Python's str.splitlines cuts them (an extra empty line here and there is harmless:
// empty lines are never change lines). Native string methods on the whole text first: a
// regular expression per line runs interpreted inside the component.
function pyLines(text) {
  if (RARE_BREAKS.some((b) => text.includes(b))) return text.split(ANY_BREAK);
  if (!text.includes("\r")) return text.split("\n");
  const out = [];
  for (const part of text.split("\n")) {
    if (part.includes("\r")) out.push(...part.split("\r"));
    else out.push(part);
  }
  return out;
}

function seraChangeLines(patch) {
  // "diff" and "@@" lines never start with a sign, so of SERA's skipped prefixes only "---"
  // and "+++" need a test.
  const out = [];
  const lines = pyLines(patch);
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    const c = l.charCodeAt(0);
    if ((c === 43 || c === 45) && !l.startsWith("+++") && !l.startsWith("---") && NON_BLANK.test(l)) {
      out.push(l);
    }
  }
  return out;
}

function changeLines(patch) {
  return mode === "sera" ? seraChangeLines(patch) : hunkChangeLines(patch);
}

function score(pair) {
  let p1, p2;
  try {
    p1 = changeLines(pair.reference);
  } catch (e) {
    throw `reference patch: ${e}`;
  }
  try {
    p2 = changeLines(pair.candidate);
  } catch (e) {
    throw `candidate patch: ${e}`;
  }
  const total = p1.length;
  if (total === 0) return { score: undefined, matched: 0, total: 0, detail: "reference patch has no change lines" };
  if (pair.candidate.trim() === "") return { score: 0, matched: 0, total, detail: "no edit" };
  const pool = new Map();
  for (const l of p2) pool.set(l, (pool.get(l) || 0) + 1);
  let matched = 0;
  for (const l of p1) {
    const k = pool.get(l) || 0;
    if (k > 0) {
      pool.set(l, k - 1);
      matched++;
    }
  }
  return {
    score: matched / total,
    matched,
    total,
    detail: `${matched} of ${total} reference change lines found among ${p2.length} candidate change lines`,
  };
}

export const verify = {
  init(config) {
    let cfg;
    try {
      cfg = JSON.parse(config || "{}");
    } catch (e) {
      throw `line-recall (js): config is not JSON: ${e}`;
    }
    const keys = cfg && typeof cfg === "object" && !Array.isArray(cfg) ? Object.keys(cfg) : null;
    const compat = keys ? cfg.compat ?? "none" : null;
    if (!keys || keys.some((k) => k !== "compat") || (compat !== "none" && compat !== "sera")) {
      throw `line-recall (js): unsupported config ${config}; expected {} or {"compat":"sera"}`;
    }
    mode = compat === "sera" ? "sera" : "hunks";
  },
  verify(pair) {
    return score(pair);
  },
  verifyBatch(pairs) {
    return pairs.map((p) => {
      try {
        return { tag: "ok", val: score(p) };
      } catch (e) {
        return { tag: "err", val: String(e) };
      }
    });
  },
};
