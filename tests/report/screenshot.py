"""Opens an output directory's report.html in headless Chromium (Debian's `chromium`) and
checks that the page rendered its charts:

1. the DOM after load (`--dump-dom`) holds at least MIN_CHARTS inline SVG charts, each with
   drawn bars (`<rect>`), and every chart title the report promises;
2. a full-height screenshot is not blank: many distinct colours, and the bar colour
   (#3b6ea8) covers a visible share of the pixels (SVG rendered, not just text).

The PNG is decoded here with zlib (no imaging library needed). usage: screenshot.py OUT_DIR [PNG]
"""

import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

MIN_CHARTS = 10
TITLES = [
    "Stage funnel",
    "Verification score r",
    "Truncation ratio",
    "Tokens per row",
    "Assistant turns per row",
    "Patch lines per row",
    "Tool calls by tool",
    "Rows per repository",
]
BAR = (0x3B, 0x6E, 0xA8)

out = Path(sys.argv[1]).resolve()
png_path = Path(sys.argv[2]) if len(sys.argv) > 2 else out / "report.png"
page = out / "report.html"
assert page.exists(), f"{page}: missing"
browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
assert browser, "no chromium on PATH (Debian: apt-get install chromium)"

profile = tempfile.mkdtemp()
flags = [
    browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
    "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
    # Nothing leaves the machine: the page must need nothing from the network.
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
url = page.as_uri()
dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
charts = re.findall(r"<svg\b.*?</svg>", dom, re.S)
assert len(charts) >= MIN_CHARTS, f"{len(charts)} charts in the rendered DOM, expected >= {MIN_CHARTS}"
with_bars = [c for c in charts if "<rect" in c]
assert len(with_bars) >= MIN_CHARTS, f"only {len(with_bars)} charts have bars"
for t in TITLES:
    assert t in dom, f"chart {t!r} is not in the rendered page"

subprocess.run(
    flags + ["--window-size=1280,5200", f"--screenshot={png_path}", url],
    capture_output=True, timeout=120, check=True,
)
shutil.rmtree(profile, ignore_errors=True)


def decode_png(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


w, h, bpp, rows = decode_png(png_path.read_bytes())
colours, bar, total = set(), 0, 0
for r in rows[::2]:
    for x in range(0, w * bpp, bpp * 2):
        px = r[x:x + 3]
        colours.add(px)
        total += 1
        if all(abs(px[k] - BAR[k]) <= 6 for k in range(3)):
            bar += 1
share = bar / total
assert len(colours) > 20, f"the screenshot has {len(colours)} colours: blank"
assert share > 0.01, f"bars cover {share:.2%} of the screenshot: the charts did not render"
print(f"{page}: {len(charts)} charts in the DOM; screenshot {w}x{h} ({png_path}), {len(colours)} colours, bars on {share:.1%} of it")
