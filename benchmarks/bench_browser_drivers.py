"""Which browser driver is more reliable here: Playwright or Selenium, both on Debian's Chromium (issue 20).

Both drive the same system browser (``/usr/bin/chromium``, no browser downloaded):

* **playwright** — the pip package's Node driver talks to Chromium over the DevTools protocol;
  Chromium is given by ``executable_path``;
* **selenium** — Selenium 4 through Debian's ``chromedriver`` (package ``chromium-driver``,
  the same version as ``chromium``), given by path so that Selenium Manager never looks for a
  driver on the internet.

The drivers take turns, ``--runs`` runs each, after one warm-up request of every answer the
runs ask for (the server builds its map and search index once). A run: launch the driver and
the browser (timed: *launch*), open the referral desk of an app started with
:func:`sectorize.app.web.running_app`, wait for ``window.desk.ready`` (the 4,033 communes
drawn), type "Villeurbanne" in the search box and press Enter, read the referent worker shown
and check it against the plan, make a page script crash (an uncaught error thrown from a
timer, plus a ``console.error``) and see whether the driver reports it (Playwright: its
``pageerror`` and ``console`` events; Selenium: the browser log, ``goog:loggingPrefs``), then
close everything (the whole run timed: *total*). A run fails when
any step raises or the worker read is not the plan's; the error is kept. Both browsers get the
tests' flags (``tests/app_browser.py``): no host name but 127.0.0.1 resolves.

The registry: ``--registry DIR`` (the plan in force today is served), else the packaged default
scenario solved with the heuristic backend for ``--time-limit`` seconds and stored in a
temporary registry, in force from 2027-01-01, the app's day being 2027-03-01.

Usage::

    python benchmarks/bench_browser_drivers.py                 # 20 runs per driver
    python benchmarks/bench_browser_drivers.py --runs 5 --drivers playwright --registry sectorize-plans

Selenium is not a dependency of the project: ``pip install selenium`` and ``apt-get install
chromium-driver`` for this measurement; a driver that cannot start is reported unavailable with
the reason. The table goes to stdout; the figures to ``benchmarks/results/browser_drivers.json``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (RESULTS, YES_NO, command_line, finish, machine_line, markdown_table,  # noqa: E402
                    timestamp, write_rows)

DEFAULT_OUT = RESULTS / "browser_drivers.json"

#: Chromium flags of both drivers (those of tests/app_browser.py): only 127.0.0.1 resolves.
CHROMIUM_FLAGS = ("--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-breakpad", "--disable-domain-reliability", "--no-first-run")

APP_DAY = date(2027, 3, 1)
IN_FORCE_FROM = "2027-01-01"
QUERY = "Villeurbanne"
CRASH = "bench crash"
STEP_TIMEOUT_S = 30.0

#: Makes a page script crash: an uncaught error thrown from a timer, and a console error.
CRASH_SCRIPT = f"setTimeout(() => {{ throw new Error('{CRASH}'); }}, 0); console.error('{CRASH} (console)');"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


# ---- one run per driver ----------------------------------------------------------------


def run_playwright(url: str, chromium: str) -> dict[str, Any]:
    """One run with Playwright; returns the timings and what it saw."""
    from playwright.sync_api import sync_playwright

    began = time.perf_counter()
    playwright = sync_playwright().start()
    browser = None
    try:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=list(CHROMIUM_FLAGS))
        launch_s = time.perf_counter() - began
        page = browser.new_page()
        page.set_default_timeout(STEP_TIMEOUT_S * 1000)
        errors: list[str] = []
        console: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
        page.goto(url + "/")
        page.evaluate("() => window.desk.ready")
        box = page.get_by_test_id("search-input")
        box.fill(QUERY)
        box.press("Enter")
        worker = page.get_by_test_id("result-worker")
        worker.wait_for(state="visible")
        name = worker.inner_text()
        page.evaluate(f"() => {{ {CRASH_SCRIPT} }}")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (any(CRASH in e for e in errors)
                                                   and any(CRASH in c for c in console)):
            page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done(true)))")
        return {"launch_s": launch_s, "worker": name,
                "crash_caught": any(CRASH in e for e in errors), "console_caught": any(CRASH in c for c in console),
                "other_errors": [e for e in errors if CRASH not in e] + [c for c in console if CRASH not in c],
                "browser_version": browser.version, "_began": began}
    finally:
        if browser is not None:
            browser.close()
        playwright.stop()


def run_selenium(url: str, chromium: str, chromedriver: str) -> dict[str, Any]:
    """One run with Selenium and Debian's chromedriver; returns the timings and what it saw."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", *CHROMIUM_FLAGS):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    began = time.perf_counter()
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        launch_s = time.perf_counter() - began
        driver.set_script_timeout(STEP_TIMEOUT_S)
        driver.set_page_load_timeout(STEP_TIMEOUT_S)
        driver.get(url + "/")
        driver.execute_async_script("const done = arguments[arguments.length - 1]; "
                                    "window.desk.ready.then(() => done(true), (e) => done(String(e)));")
        box = driver.find_element(By.CSS_SELECTOR, "[data-testid=search-input]")
        box.send_keys(QUERY, Keys.ENTER)
        wait = WebDriverWait(driver, STEP_TIMEOUT_S)
        worker = wait.until(expected_conditions.visibility_of_element_located(
            (By.CSS_SELECTOR, "[data-testid=result-worker]")))
        name = worker.text
        driver.execute_script(CRASH_SCRIPT)
        log: list[dict] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            log += driver.get_log("browser")
            if any(CRASH in e["message"] and e.get("source") == "javascript" for e in log) and \
                    any(CRASH in e["message"] and e.get("source") == "console-api" for e in log):
                break
            driver.execute_async_script("const done = arguments[arguments.length - 1]; "
                                        "requestAnimationFrame(() => done(true));")
        return {"launch_s": launch_s, "worker": name,
                "crash_caught": any(CRASH in e["message"] and e.get("source") == "javascript" for e in log),
                "console_caught": any(CRASH in e["message"] and e.get("source") == "console-api" for e in log),
                "other_errors": [e["message"] for e in log if e.get("level") == "SEVERE" and CRASH not in e["message"]],
                "browser_version": driver.capabilities.get("browserVersion"), "_began": began}
    finally:
        driver.quit()


# ---- the measurement -----------------------------------------------------------------


def availability(driver: str) -> tuple[bool, str]:
    """Whether ``driver`` can be tried here, and what it runs on (or why not)."""
    chromium = find_chromium()
    if chromium is None:
        return False, "no chromium on PATH"
    from importlib.metadata import PackageNotFoundError, version

    try:
        if driver == "playwright":
            return True, f"playwright {version('playwright')}, {chromium}"
        chromedriver = shutil.which("chromedriver")
        if chromedriver is None:
            return False, "no chromedriver on PATH (apt-get install chromium-driver)"
        return True, f"selenium {version('selenium')}, {chromedriver}, {chromium}"
    except PackageNotFoundError as err:
        return False, f"not installed: {err} (pip install {driver})"


def new_row(driver: str) -> dict[str, Any]:
    ok, what = availability(driver)
    return {"driver": driver, "available": ok, "setup": what, "runs": 0, "failures": 0, "errors": [],
            "launch_s": [], "total_s": [], "crash_caught": None, "console_caught": None, "browser_version": None,
            "_crash": [], "_console": []}


def run_once(row: dict[str, Any], url: str, expected_worker: str) -> str:
    """One run of ``row``'s driver, recorded in ``row``; returns a line for the progress log."""
    chromium = find_chromium()
    i = row["runs"]
    began = time.perf_counter()
    try:
        if row["driver"] == "playwright":
            seen = run_playwright(url, chromium)
        else:
            seen = run_selenium(url, chromium, shutil.which("chromedriver"))
        total = time.perf_counter() - seen.pop("_began")
        if seen["worker"] != expected_worker:
            raise AssertionError(f"worker shown {seen['worker']!r}, the plan says {expected_worker!r}")
        row["launch_s"].append(seen["launch_s"])
        row["total_s"].append(total)
        row["_crash"].append(seen["crash_caught"])
        row["_console"].append(seen["console_caught"])
        row["browser_version"] = seen["browser_version"]
        if seen["other_errors"]:
            row["errors"].append({"run": i, "kind": "page errors", "errors": seen["other_errors"][:5]})
        outcome = f"ok, launch {seen['launch_s']:.2f} s, total {total:.2f} s"
    except Exception as err:  # a failed run is the measurement
        row["failures"] += 1
        row["errors"].append({"run": i, "kind": type(err).__name__, "error": str(err)[:500],
                              "trace": traceback.format_exc(limit=3)[-1500:], "after_s": time.perf_counter() - began})
        outcome = f"FAILED: {type(err).__name__}: {str(err)[:200]}"
    row["runs"] += 1
    row["crash_caught"] = all(row["_crash"]) if row["_crash"] else None
    row["console_caught"] = all(row["_console"]) if row["_console"] else None
    return f"{row['driver']} run {row['runs']}: {outcome}"


def warm_up(url: str) -> None:
    """Ask the app once what every run asks, so that no driver pays for the server's first answers."""
    from urllib.parse import quote
    from urllib.request import urlopen

    for path in ("/", "/api/plan", "/api/geometry", f"/api/suggest?q={quote(QUERY)}", f"/api/route?q={quote(QUERY)}"):
        with urlopen(url + path, timeout=120) as answer:
            answer.read()


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "—"


def table(header: dict, rows: list[dict]) -> str:
    head = ("driver", "runs", "failures", "median launch s", "median total s", "max total s",
            "catches a crashing page script", "console errors", "setup")
    lines = markdown_table(head, ([
        r["driver"], str(r["runs"]), str(r["failures"]) if r["available"] else "unavailable",
        median(r["launch_s"]), median(r["total_s"]), f"{max(r['total_s']):.2f}" if r["total_s"] else "—",
        YES_NO[r["crash_caught"]], YES_NO[r["console_caught"]], r["setup"],
    ] for r in rows))
    return (f"{lines}\n\nrun = launch the driver and Chromium, open the desk ({header['units']:,} communes drawn), "
            f"search {QUERY!r}, read the worker, crash a page script, close; app on {header['url_host']}, "
            f"plan {header['plan_id']}; Chromium {header['browser_version'] or '?'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="runs per driver")
    ap.add_argument("--drivers", default="playwright,selenium", help="comma-separated: playwright, selenium")
    ap.add_argument("--registry", type=Path, help="a plan registry (default: solve the default scenario)")
    ap.add_argument("--time-limit", type=float, default=8.0, help="seconds of the heuristic solve without --registry")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    from sectorize.app.web import running_app
    from sectorize.serve.routing import routing_today
    from sectorize.store.registry import Registry

    with tempfile.TemporaryDirectory(prefix="bench_browser_drivers-") as tmp:
        if args.registry is None:
            import sectorize
            from sectorize.config.scenario import default_scenario

            scenario = default_scenario().with_(**{"model.backend": "heuristic", "model.time_limit_s": args.time_limit})
            plan = sectorize.run(scenario)
            folder = Path(tmp) / "registry"
            Registry(folder).add(plan, effective_from=IN_FORCE_FROM, note="bench_browser_drivers", allow_invalid=True)
            today = lambda: APP_DAY  # noqa: E731
        else:
            folder, today = args.registry, routing_today
        stored = Registry(folder, create=False).effective_on(today())
        if stored is None:
            raise SystemExit(f"{folder}: no plan in force on {today()}")
        sectors = stored.sectors.astype({"insee": str}).set_index("insee")
        expected = str(sectors.loc["69266", "worker_name"])
        with running_app(folder, today=today) as url:
            header = {"command": command_line(__file__, argv), "timestamp": timestamp(), "machine": machine_line(),
                      "runs_per_driver": args.runs, "plan_id": stored.id, "units": len(sectors),
                      "url_host": url.split("//")[1], "expected_worker": expected, "browser_version": None}
            warm_up(url)
            rows = [new_row(d.strip()) for d in args.drivers.split(",") if d.strip()]
            for _ in range(args.runs):   # the drivers take turns: a drift of the machine hits both alike
                for row in rows:
                    if row["available"]:
                        print(run_once(row, url, expected), file=sys.stderr, flush=True)
                header["browser_version"] = next((r["browser_version"] for r in rows if r["browser_version"]), None)
                write_rows(args.out, header, [public(r) for r in rows], complete=False)
    write_rows(args.out, header, [public(r) for r in rows], complete=True)
    return finish(args.out, table(header, rows))


if __name__ == "__main__":
    sys.exit(main())
