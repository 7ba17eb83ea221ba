"""The web app on this machine: page interactive time, move -> KPI latency, re-optimise, desk throughput.

Solves the packaged default scenario (AURA with Lyon's arrondissements, 11 workers; heuristic
backend, ``--time-limit`` seconds), stores the plan in a registry in a temporary folder, in force
since 2026-01-01, adds an editor, and runs ``sectorize app`` on it in this process
(:func:`sectorize.app.web.running_app`, loopback). Then:

* **page interactive** (Chromium driven by Playwright through Debian's ``chromium``; a fresh
  browser context each time, so nothing is cached): milliseconds from the start of the navigation
  to ``window.desk.ready`` (the desk's map drawn and the search box usable) and to
  ``window.studio.ready`` (the studio logged in, its map drawn), ``--pages`` loads each;
* **move -> KPI**: in the studio, with a draft open, a commune on a sector border selected and
  moved to the neighbouring sector by a click on the move button; milliseconds from the click to
  the page idle again (request answered, bars, problems and map redrawn), ``--moves`` moves, each
  undone (not timed); the same moves through the HTTP API alone (``POST /api/drafts/{id}/moves``);
* **re-optimise**: a draft with one sector locked and one commune moved by hand, re-optimised
  with ``--solve-limit`` seconds; seconds from the POST to the job ``done`` and the draft's
  review valid, ``--solves`` times;
* **desk throughput**: ``--clients`` threads each sending ``GET /api/route?q=<commune name>``
  (names of the region's communes, seeded order) for ``--seconds``; requests per second and
  latency percentiles. The clients run on the same 2 cores as the server: a throughput measured
  this way is a lower bound.

Usage::

    python benchmarks/bench_app.py                  # defaults below
    python benchmarks/bench_app.py --moves 20 --solves 1 --out /tmp/app.json

The table goes to stdout; the figures and the command line to ``benchmarks/results/app.json``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

import sectorize
from sectorize.app.accounts import CSRF_COOKIE, UserStore
from sectorize.app.web import running_app
from sectorize.config.scenario import default_scenario
from sectorize.store.registry import Registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, command_line, finish, machine_line, markdown_table, timestamp, write_rows  # noqa: E402

DEFAULT_OUT = RESULTS / "app.json"
PASSWORD = "benchmark password"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


def border_moves(plan, count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` (commune, neighbouring sector) pairs on sector borders, seeded."""
    of = plan.units["sector"].astype(str)
    pairs = sorted({(a, of[b]) for a, b in plan.graph.edges if of[a] != of[b]}
                   | {(b, of[a]) for a, b in plan.graph.edges if of[a] != of[b]})
    rng = np.random.default_rng(seed)
    return [pairs[i] for i in rng.choice(len(pairs), size=min(count, len(pairs)), replace=False)]


def login(client: httpx.Client, url: str) -> dict[str, str]:
    answer = client.post(f"{url}/api/login", json={"user": "bench", "password": PASSWORD})
    answer.raise_for_status()
    return {"X-CSRF-Token": client.cookies[CSRF_COOKIE]}


def pages(url: str, loads: int, browser) -> dict:
    """Milliseconds from navigation start to the desk's and the studio's ``ready``."""
    desk, studio = [], []
    for _ in range(loads):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(url + "/")
        desk.append(page.evaluate("() => window.desk.ready.then(() => performance.now())"))
        answer = context.request.post(f"{url}/api/login", data={"user": "bench", "password": PASSWORD})
        assert answer.ok, answer.text()
        page.goto(url + "/studio")
        studio.append(page.evaluate("() => window.studio.ready.then(() => performance.now())"))
        context.close()
    return {"desk_ms": desk, "studio_ms": studio}


def browser_moves(url: str, plan_id: str, moves: list[tuple[str, str]], browser) -> list[float]:
    """Click -> idle milliseconds of each move in the studio page."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    answer = context.request.post(f"{url}/api/login", data={"user": "bench", "password": PASSWORD})
    assert answer.ok, answer.text()
    page = context.new_page()
    page.goto(url + "/studio")
    page.evaluate("() => window.studio.ready")
    page.select_option('[data-testid="plan-select"]', plan_id)
    page.click('[data-testid="new-draft-button"]')
    page.wait_for_selector('[data-testid="bars"] [data-caseload]')
    page.evaluate("() => window.studio.idle()")
    times = []
    for commune, sector in moves:
        elapsed = page.evaluate("""async ([code, sector]) => {
            window.studio.selectUnits([code]);
            const select = document.querySelector('[data-testid="move-sector"]');
            select.value = sector;
            select.dispatchEvent(new Event('change'));
            const t0 = performance.now();
            document.querySelector('[data-testid="move-button"]').click();
            await window.studio.idle();
            return performance.now() - t0;
        }""", [commune, sector])
        moved = page.evaluate("() => window.studio.state().assignment")
        assert moved[commune] == sector, f"{commune} was not moved to {sector} in the page"
        times.append(elapsed)
        page.evaluate("""async () => { document.querySelector('[data-testid="undo-button"]').click();
                                        await window.studio.idle(); }""")
    context.close()
    return times


def http_moves(url: str, plan_id: str, moves: list[tuple[str, str]]) -> list[float]:
    """Milliseconds of ``POST /api/drafts/{id}/moves`` (answer read and parsed)."""
    with httpx.Client(timeout=60) as client:
        headers = login(client, url)
        draft = client.post(f"{url}/api/plans/{plan_id}/drafts", headers=headers).json()["id"]
        times = []
        for commune, sector in moves:
            began = time.perf_counter()
            answer = client.post(f"{url}/api/drafts/{draft}/moves", json={"units": [commune], "sector": sector},
                                 headers=headers)
            answer.raise_for_status()
            answer.json()
            times.append(1000 * (time.perf_counter() - began))
            client.post(f"{url}/api/drafts/{draft}/undo", headers=headers).raise_for_status()
        return times


def reoptimise(url: str, plan_id: str, plan, solves: int, limit_s: float, seed: int) -> list[dict]:
    """Seconds from ``POST .../reoptimise`` to the job done, and whether the draft is then valid."""
    out = []
    with httpx.Client(timeout=60) as client:
        headers = login(client, url)
        for i, (commune, sector) in enumerate(border_moves(plan, solves, seed + 1)):
            draft = client.post(f"{url}/api/plans/{plan_id}/drafts", headers=headers).json()["id"]
            locked = sorted(set(plan.units["sector"].astype(str)) - {sector, str(plan.units.loc[commune, "sector"])})[0]
            client.post(f"{url}/api/drafts/{draft}/locks", json={"sectors": [locked]}, headers=headers).raise_for_status()
            client.post(f"{url}/api/drafts/{draft}/moves", json={"units": [commune], "sector": sector},
                        headers=headers).raise_for_status()
            began = time.perf_counter()
            job = client.post(f"{url}/api/drafts/{draft}/reoptimise", json={"time_limit_s": limit_s},
                              headers=headers).json()["job"]
            while True:
                state = client.get(f"{url}/api/jobs/{job}").json()
                if state["state"] in ("done", "failed", "cancelled"):
                    break
                time.sleep(0.1)
            elapsed = time.perf_counter() - began
            review = client.get(f"{url}/api/drafts/{draft}").json()["review"]
            out.append({"seconds": elapsed, "state": state["state"], "valid": bool(review["valid"]),
                        "error": state.get("error"), "locked": locked, "moved": f"{commune}->{sector}"})
            print(f"re-optimise {i + 1}/{solves}: {elapsed:.1f} s, {state['state']}, "
                  f"{'valid' if review['valid'] else 'INVALID'}", file=sys.stderr, flush=True)
    return out


def desk_throughput(url: str, names: list[str], clients: int, seconds: float) -> dict:
    """Requests/s and latency percentiles (ms) of ``GET /api/route?q=`` with ``clients`` threads."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.perf_counter() + seconds

    def client_loop(k: int) -> None:
        with httpx.Client(timeout=10) as client:
            i = k
            while time.perf_counter() < stop:
                began = time.perf_counter()
                answer = client.get(f"{url}/api/route", params={"q": names[i % len(names)]})
                latencies[k].append(1000 * (time.perf_counter() - began))
                if answer.status_code != 200:
                    errors[k] += 1
                i += clients

    threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    every = [x for row in latencies for x in row]
    return {"clients": clients, "requests": len(every), "errors": sum(errors), "seconds": wall,
            "per_s": len(every) / wall, "p50_ms": percentile(every, 50), "p95_ms": percentile(every, 95),
            "p99_ms": percentile(every, 99)}


def table(header: dict, rows: list[dict]) -> str:
    lines = [f"# web app on {header['machine']} ({header['units']:,} units, plan {header['plan_valid'] and 'valid'})",
             f"# {header['command']}", ""]
    lines.append(markdown_table(["measure", "n", "p50", "p95", "max", "unit"], [
        [r["measure"], str(r["n"]), f"{r['p50']:.1f}", f"{r['p95']:.1f}", f"{r['max']:.1f}", r["unit"]]
        for r in rows if "p50" in r]))
    desk = [r for r in rows if r.get("measure") == "desk throughput"]
    if desk:
        lines += ["", markdown_table(["desk clients", "requests", "errors", "requests/s", "p50 ms", "p95 ms",
                                      "p99 ms", "p99 < 50 ms"], [
            [str(r["clients"]), str(r["requests"]), str(r["errors"]), f"{r['per_s']:.0f}", f"{r['p50_ms']:.1f}",
             f"{r['p95_ms']:.1f}", f"{r['p99_ms']:.1f}", "yes" if r["p99_ms"] < 50 else "NO"] for r in desk])]
    solves = [r for r in rows if r.get("measure") == "re-optimise run"]
    if solves:
        lines += ["", "re-optimise runs: " + "; ".join(
            f"{r['seconds']:.1f} s {r['state']} {'valid' if r['valid'] else 'INVALID'}" for r in solves)]
    return "\n".join(lines)


def row(measure: str, values: list[float], unit: str) -> dict:
    return {"measure": measure, "n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "max": max(values) if values else float("nan"), "median": statistics.median(values) if values else None,
            "unit": unit, "values": values}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time-limit", type=float, default=8.0, help="seconds of the plan's heuristic solve")
    ap.add_argument("--pages", type=int, default=5, help="page loads of each page")
    ap.add_argument("--moves", type=int, default=50, help="moves timed in the page and over HTTP")
    ap.add_argument("--solves", type=int, default=3, help="re-optimisations")
    ap.add_argument("--solve-limit", type=float, default=20.0, help="time limit of each re-optimisation (s)")
    ap.add_argument("--clients", default="1,2,4,8", help="desk client threads, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each desk throughput run (s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("error: no chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 2
    scenario = default_scenario().with_(**{"model.backend": "heuristic", "model.time_limit_s": args.time_limit})
    plan = sectorize.run(scenario)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_app-") as folder:
        registry = Registry(folder)
        plan_id = registry.add(plan, effective_from="2026-01-01", allow_invalid=False)
        UserStore(folder).add("bench", "publisher", PASSWORD)
        header = {"command": command_line(__file__, argv), "timestamp": timestamp(), "machine": machine_line(),
                  "scenario": "packaged default (AURA, Lyon by arrondissement, 11 workers)", "backend": "heuristic",
                  "time_limit_s": args.time_limit, "seed": args.seed, "units": len(plan.units),
                  "plan_valid": plan.valid, "plan_id": plan_id}
        moves = border_moves(plan, args.moves, args.seed)
        names = list(plan.units["name"].astype(str))
        np.random.default_rng(args.seed).shuffle(names)
        with running_app(folder) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=[
                "--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"])
            loads = pages(url, args.pages, browser)
            rows.append(row("desk page interactive", loads["desk_ms"], "ms"))
            rows.append(row("studio page interactive", loads["studio_ms"], "ms"))
            print(f"pages: desk {rows[-2]['p50']:.0f} ms, studio {rows[-1]['p50']:.0f} ms", file=sys.stderr)
            write_rows(args.out, header, rows, complete=False)
            rows.append(row("move -> KPI in the page (click to redrawn)", browser_moves(url, plan_id, moves, browser),
                            "ms"))
            browser.close()
            rows.append(row("move -> KPI over HTTP (POST /moves)", http_moves(url, plan_id, moves), "ms"))
            print(f"moves: page p50 {rows[-2]['p50']:.0f} ms, HTTP p50 {rows[-1]['p50']:.0f} ms", file=sys.stderr)
            write_rows(args.out, header, rows, complete=False)
            runs = reoptimise(url, plan_id, plan, args.solves, args.solve_limit, args.seed)
            rows.append(row(f"re-optimise to a valid draft ({args.solve_limit:g} s limit)",
                            [r["seconds"] for r in runs], "s"))
            rows += [{"measure": "re-optimise run", **r} for r in runs]
            write_rows(args.out, header, rows, complete=False)
            for clients in [int(c) for c in args.clients.split(",")]:
                rows.append({"measure": "desk throughput", **desk_throughput(url, names, clients, args.seconds)})
                print(f"desk, {clients} clients: {rows[-1]['per_s']:.0f} req/s, p99 {rows[-1]['p99_ms']:.1f} ms",
                      file=sys.stderr, flush=True)
                write_rows(args.out, header, rows, complete=False)
    write_rows(args.out, header, rows, complete=True)
    return finish(args.out, table(header, rows))


if __name__ == "__main__":
    sys.exit(main())
