"""Drive the web app's pages in headless Chromium with Playwright, nothing leaving the machine (a test helper).

:class:`Browsing` opens pages of an app started by :func:`sectorize.app.web.running_app` in a
Chromium launched by :func:`launch` (Debian's ``/usr/bin/chromium`` through ``executable_path``:
no browser is downloaded). Every page is watched (:class:`PageWatch`): its console errors,
its uncaught script errors and every request to a host other than the app's, which is aborted
and recorded; Chromium itself also resolves no host name but 127.0.0.1 (:data:`LAUNCH_ARGS`).

The app's Content-Security-Policy forbids ``eval``: ``page.wait_for_function("...")`` with a
string fails, so the helpers wait on selectors or on the pages' own promises
(``window.desk.ready``, ``window.studio.idle()``) through ``page.evaluate``.

Example
-------
>>> with sync_playwright() as p:                                       # doctest: +SKIP
...     browser = launch(p)
...     browsing = Browsing(browser, url)
...     page = browsing.new_page("/")
...     page.evaluate("() => window.desk.ready")
...     browsing.assert_clean()
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from browser import QUIET_FLAGS, find_chromium, read_png

#: Chromium flags: headless without sandbox (containers), and no host name resolved but the app's.
LAUNCH_ARGS = ("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", *QUIET_FLAGS)

#: Viewport of every page (CSS pixels).
VIEWPORT = {"width": 1280, "height": 800}

#: Background colour of the pages (``--bg`` of app.css) and of the map (``--map-bg``).
PAGE_BACKGROUND = (0xF6, 0xF6, 0xF4)
MAP_BACKGROUND = (0xEE, 0xF0, 0xF2)

REPO_ROOT = Path(__file__).resolve().parents[1]


def artefacts_dir() -> Path:
    """Where screenshots go: ``$SECTORIZE_TEST_ARTIFACTS``, else ``<repo>/test-artifacts/browser/`` (created)."""
    folder = Path(os.environ.get("SECTORIZE_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts" / "browser")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def launch(playwright: Any, executable: str | None = None) -> Any:
    """Headless Chromium from the system (``executable``, else :func:`browser.find_chromium`)."""
    executable = executable or find_chromium()
    if executable is None:
        raise RuntimeError("no Chromium on PATH")
    return playwright.chromium.launch(executable_path=executable, headless=True, args=list(LAUNCH_ARGS))


@dataclass
class PageWatch:
    """What went wrong on one page: console errors, uncaught errors, requests that tried to leave."""

    origin: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    off_machine: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(f"{page.url}: {error}"))
        page.on("websocket", lambda ws: self._foreign(ws.url))
        page.route("**/*", self._route)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            where = message.location or {}
            self.console_errors.append(f"{message.text} ({where.get('url', '')}:{where.get('lineNumber', '')})")

    def _foreign(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != urlsplit(self.origin).netloc:
            self.off_machine.append(url)
            return True
        return False

    def _route(self, route: Any) -> None:
        if self._foreign(route.request.url):
            route.abort("blockedbyclient")
        else:
            route.continue_()

    def problems(self) -> list[str]:
        return ([f"console error: {m}" for m in self.console_errors] + [f"page error: {m}" for m in self.page_errors]
                + [f"request off the machine: {u}" for u in self.off_machine])


class Browsing:
    """Pages of one app in one browser; each page in its own context (own cookies), watched."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.watches: list[PageWatch] = []
        self.contexts: list[Any] = []

    def new_page(self, path: str | None = "/", *, viewport: dict[str, int] | None = None) -> Any:
        """A new context and page, watched, opened at ``path`` (its scripts have run; ``None``: blank)."""
        context = self.browser.new_context(viewport=viewport or VIEWPORT, locale="fr-FR",
                                           timezone_id="Europe/Paris", service_workers="block")
        context.set_default_timeout(20_000)
        self.contexts.append(context)
        page = context.new_page()
        watch = PageWatch(self.origin)
        watch.attach(page)
        self.watches.append(watch)
        if path is not None:
            page.goto(self.base_url + path)
        return page

    def problems(self) -> list[str]:
        return [p for watch in self.watches for p in watch.problems()]

    def assert_clean(self) -> None:
        """No console error, no uncaught error, no request off the machine on any page opened."""
        problems = self.problems()
        assert not problems, "\n".join(problems)

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


# ---- page helpers ---------------------------------------------------------------


def idle(page: Any) -> None:
    """Wait until the studio has no request in flight and no job running."""
    page.evaluate("() => window.studio.idle()")


def next_frames(page: Any, frames: int = 2) -> None:
    """Wait for ``frames`` animation frames (a canvas redraw is scheduled on the next one)."""
    page.evaluate("(n) => new Promise((done) => { const step = (k) => k ? requestAnimationFrame(() => step(k - 1)) "
                  ": done(); step(n); })", frames)


def settle_map(page: Any) -> None:
    """Wait for the Leaflet map to end a zoom animation (its pane loses ``leaflet-zoom-anim``) and redraw."""
    next_frames(page)
    page.wait_for_selector("[data-testid=map] .leaflet-map-pane:not(.leaflet-zoom-anim)", state="attached")
    next_frames(page)


def log_in(page: Any, user: str, password: str) -> None:
    """Log in through the studio's form (the page must show it) and wait for the editor screen."""
    page.get_by_test_id("login-form").wait_for(state="visible")
    page.get_by_test_id("login-user").fill(user)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("user-name").filter(has_text=user).wait_for(state="visible")
    idle(page)


@dataclass
class Shot:
    """A screenshot of the viewport written to the artefacts folder, decoded by :func:`browser.read_png`."""

    path: Path
    png: Any

    @property
    def unlike_page(self) -> float:
        """Share of the pixels unlike the page background (a blank page: 0)."""
        return self.png.share_unlike(PAGE_BACKGROUND)

    @property
    def colours(self) -> int:
        return len(self.png.colours())

    def drawn_in(self, box: dict[str, float], background: tuple[int, int, int] = MAP_BACKGROUND,
                 tolerance: int = 8) -> float:
        """Share of the pixels of ``box`` (a bounding box in CSS pixels) unlike ``background``:
        for the map's box, the share covered by polygons (an empty map: 0)."""
        x0, y0 = max(0, int(box["x"])), max(0, int(box["y"]))
        x1, y1 = min(self.png.width, int(box["x"] + box["width"])), min(self.png.height, int(box["y"] + box["height"]))
        pixels = [px for row in self.png.rows[y0:y1] for px in row[x0:x1]]
        unlike = sum(1 for px in pixels if max(abs(a - b) for a, b in zip(px, background)) > tolerance)
        return unlike / max(1, len(pixels))

    def __repr__(self) -> str:
        return f"Shot({self.path.name}, {self.png.width}x{self.png.height})"


def screenshot(page: Any, name: str) -> Shot:
    """Write the viewport to ``<artefacts>/<name>.png`` (device scale 1: image pixels are CSS pixels)."""
    path = artefacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), animations="disabled")
    return Shot(path, read_png(path))
