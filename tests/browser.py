"""Open a local HTML page in headless Chromium with the network cut off (a test helper).

Chromium is found with :func:`shutil.which` among ``chromium``,
``chromium-browser`` and ``google-chrome``; tests skip when none is found.
Every host name resolves to nothing and the proxy is a closed port, so a
page that needs the internet cannot get it; Chromium's network log tells
which internet URLs the page tried to fetch anyway.

Example
-------
The Ardèche map of ``tests/test_maps.py`` (335 communes, 19 sectors):

>>> run = open_offline(Path("ardeche.html"), screenshot=Path("ardeche.png"),
...                    window=(800, 600))  # doctest: +SKIP
>>> run.requests, run.console  # doctest: +SKIP
([], [])
>>> png = read_png(Path("ardeche.png"))  # doctest: +SKIP
>>> round(png.share_unlike((244, 243, 239)), 2)  # doctest: +SKIP
0.4
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

#: Executable names tried, in order.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

#: Flags that stop Chromium's own background traffic (updates, sync, crash reports).
QUIET_FLAGS = (
    "--no-sandbox",
    "--no-first-run",
    "--hide-scrollbars",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-breakpad",
    "--disable-domain-reliability",
)

#: Flags that cut the network off and stop Chromium's own background traffic.
OFFLINE_FLAGS = (
    "--headless",
    "--disable-gpu",
    '--host-resolver-rules=MAP * ~NOTFOUND',
    "--proxy-server=127.0.0.1:9",
    *QUIET_FLAGS,
)


def find_chromium() -> str | None:
    """Path of the first Chromium-like browser on ``PATH``, or ``None``."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageRun:
    """What headless Chromium saw when it opened a page.

    Attributes
    ----------
    dom
        The page's DOM (HTML text) after its scripts ran.
    requests
        Internet URLs (http, https, ws, wss) the page tried to fetch, in
        order, from Chromium's network log; Chromium's own background
        requests are left out.
    console
        Messages the page wrote to the JavaScript console, uncaught errors
        included (e.g. ``"Uncaught ReferenceError: L is not defined"``).
    """

    dom: str
    requests: list[str]
    console: list[str]


def open_offline(
    page: Path,
    *,
    budget_ms: int = 10_000,
    timeout_s: float = 180.0,
    screenshot: Path | None = None,
    window: tuple[int, int] = (1200, 900),
) -> PageRun:
    """Open ``page`` offline, return its DOM and attempted internet requests.

    Parameters
    ----------
    page
        A local HTML file.
    budget_ms
        Virtual time (milliseconds) the page gets to run its scripts.
    timeout_s
        Wall-clock limit (seconds) for each Chromium run.
    screenshot
        If given, a second run writes a PNG of the page here (``window``
        pixels: width, height).

    Raises
    ------
    RuntimeError
        No Chromium on ``PATH``, or Chromium failed (its stderr is quoted).
    """
    browser = find_chromium()
    if browser is None:
        raise RuntimeError(f"no Chromium found on PATH (tried {', '.join(CHROMIUM_NAMES)})")
    url = Path(page).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="chromium-") as tmp:
        net_log = Path(tmp) / "net.json"
        common = [browser, *OFFLINE_FLAGS, f"--user-data-dir={tmp}/profile",
                  f"--virtual-time-budget={budget_ms}"]
        dom, log = _run([*common, f"--log-net-log={net_log}", "--enable-logging=stderr", "--v=0",
                         "--dump-dom", url], timeout_s)
        requests = _page_requests(net_log)
        console = [m[1] for m in re.finditer(r':CONSOLE[^\]]*\] "(.*)", source: ', log)]
        if screenshot is not None:
            _run([*common, f"--window-size={window[0]},{window[1]}",
                  f"--screenshot={Path(screenshot).resolve()}", url], timeout_s)
            if not Path(screenshot).is_file():
                raise RuntimeError(f"Chromium wrote no screenshot to {screenshot}")
    return PageRun(dom=dom, requests=requests, console=console)


def _run(command: list[str], timeout_s: float) -> tuple[str, str]:
    """(stdout, stderr) of a Chromium run."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"Chromium exited with {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout, done.stderr


def _page_requests(net_log: Path) -> list[str]:
    """URLs of requests made on behalf of a ``file://`` page, from a Chromium net log."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params", {})
        if (event["type"] == start_job
                and params.get("network_isolation_key", "").startswith("file://")
                and params.get("url", "").startswith(("http:", "https:", "ws:", "wss:"))):
            urls.append(params["url"])
    return list(dict.fromkeys(urls))


@dataclass
class Png:
    """A decoded 8-bit RGB or RGBA PNG: ``rows[y][x]`` is an ``(r, g, b)`` tuple."""

    width: int
    height: int
    rows: list[list[tuple[int, int, int]]]

    def share_unlike(self, background: tuple[int, int, int], tolerance: int = 8) -> float:
        """Share of pixels (0..1) whose colour differs from ``background``.

        A pixel differs when one channel is more than ``tolerance`` (0..255)
        away from the background's.
        """
        unlike = sum(
            1 for row in self.rows for px in row
            if max(abs(a - b) for a, b in zip(px, background)) > tolerance
        )
        return unlike / (self.width * self.height)

    def colours(self) -> set[tuple[int, int, int]]:
        """The distinct colours of the image."""
        return {px for row in self.rows for px in row}


def read_png(path: Path) -> Png:
    """Decode a non-interlaced 8-bit RGB/RGBA PNG with :mod:`zlib` and :mod:`struct` only."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    pos, chunks, header = 8, [], None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or colour_type not in (2, 6) or interlace:
        raise ValueError(f"{path}: only 8-bit RGB/RGBA non-interlaced PNGs are supported")
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        _unfilter(kind, line, previous, channels)
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, channels)])
        previous = line
    return Png(width, height, rows)


def _unfilter(kind: int, line: bytearray, previous: bytearray, bpp: int) -> None:
    """Undo one PNG scanline filter in place (PNG spec, section 9)."""
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = previous[i]
        corner = previous[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            pred = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
            line[i] = (line[i] + pred) & 0xFF
        elif kind != 0:
            raise ValueError(f"unknown PNG filter type {kind}")
