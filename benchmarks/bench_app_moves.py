"""Latency of a move in the web app's editor: move -> review on the 4,033 AURA units.

Solves the packaged default scenario (AURA with Lyon's arrondissements, 11 workers; heuristic
backend, ``--time-limit`` seconds, as the ``aura_run`` test fixture), stores the plan in a
registry in a temporary folder, and opens a draft on it through a
:class:`sectorize.app.draft.DraftStore` (so every move is also written to disk, as in the app).
Reports the time to open the first draft of the plan in a new process (its inputs are loaded:
region, travel times, team, as after a server start), in this process (the region and travel
times already in memory from the solve) and a second draft (from the context cache), then, for each size ``s`` of
``--sizes``, ``--moves`` random moves (seeded): a commune on a sector border and up to ``s - 1``
more communes of its sector reached from it through the contiguity graph (breadth first), all
moved to the neighbouring sector across that border. Each move is timed from the call of
:meth:`~sectorize.app.draft.Draft.move` to its :class:`~sectorize.app.draft.Review` (caseloads,
pieces of every sector and group, travel, changes, problems; the draft file written), then
``state + JSON``: the DraftState the HTTP answer carries (assignment of every commune and the
review), serialised; each move is then undone (not timed) so that every move starts from the
solved plan.

Usage::

    python benchmarks/bench_app_moves.py                          # 200 moves of 1, 10, 100, 300 communes
    python benchmarks/bench_app_moves.py --moves 50 --sizes 1,300 --out /tmp/moves.json

The table goes to stdout; the figures and the command line to
``benchmarks/results/app_moves.json`` (written atomically; use ``--out``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np

import sectorize
from sectorize.app.draft import DraftStore, context_for
from sectorize.config.scenario import default_scenario
from sectorize.store.registry import Registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, command_line, finish, machine_line, markdown_table, timestamp, write_rows  # noqa: E402

DEFAULT_OUT = RESULTS / "app_moves.json"


def chunk(draft, start: int, size: int) -> list[int]:
    """Up to ``size`` communes of ``start``'s sector, breadth first from ``start`` in the contiguity graph."""
    ctx, a = draft.context, draft.assignment
    indptr, indices = ctx.adjacency.indptr, ctx.adjacency.indices
    sector = a[start]
    out, seen, queue = [], {start}, deque([start])
    while queue and len(out) < size:
        u = queue.popleft()
        out.append(u)
        for v in indices[indptr[u]:indptr[u + 1]]:
            if v not in seen and a[v] == sector:
                seen.add(v)
                queue.append(int(v))
    return out


#: Opens a draft of a stored plan in a new process and prints the seconds the open took.
COLD_OPEN = """
import sys, time
from sectorize.app.draft import DraftStore
from sectorize.store.registry import Registry
stored = Registry(sys.argv[1]).get(sys.argv[2])
began = time.perf_counter()
DraftStore(None).open(stored)
print(time.perf_counter() - began)
"""


def cold_open_s(folder: str, plan_id: str) -> float:
    """Seconds to open the first draft of ``plan_id`` in a new Python process."""
    out = subprocess.run([sys.executable, "-c", COLD_OPEN, folder, plan_id], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(draft, size: int, moves: int, rng: np.random.Generator) -> dict:
    """``moves`` random moves of ``size`` neighbouring communes across a border; latencies in ms."""
    ctx = draft.context
    move_ms, state_ms, moved, problems = [], [], [], []
    for _ in range(moves):
        a = draft.assignment
        border = np.flatnonzero(a[ctx.edges[0]] != a[ctx.edges[1]])
        i = int(rng.choice(border))
        u, v = (ctx.edges[0, i], ctx.edges[1, i]) if rng.random() < 0.5 else (ctx.edges[1, i], ctx.edges[0, i])
        units = [str(ctx.keys[x]) for x in chunk(draft, int(u), size)]
        began = time.perf_counter()
        review = draft.move(units, draft.sectors[a[v]])
        move_ms.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        json.dumps(draft.state(), allow_nan=False)
        state_ms.append((time.perf_counter() - began) * 1000)
        moved.append(len(units))
        problems.append(len(review.problems))
        draft.undo()
    return {
        "size": size, "moves": moves, "communes_moved_mean": float(np.mean(moved)),
        "move_p50_ms": percentile(move_ms, 50), "move_p95_ms": percentile(move_ms, 95), "move_max_ms": max(move_ms),
        "state_json_p50_ms": percentile(state_ms, 50), "state_json_p95_ms": percentile(state_ms, 95),
        "problems_mean": float(np.mean(problems)),
    }


def table(header: dict, rows: list[dict]) -> str:
    head = ("communes per move", "moves", "move -> review p50 ms", "p95 ms", "max ms", "state + JSON p50 ms",
            "p95 ms", "problems per review")
    lines = markdown_table(head, ([
        f"{r['size']:,} (mean {r['communes_moved_mean']:.0f})", f"{r['moves']}", f"{r['move_p50_ms']:.1f}",
        f"{r['move_p95_ms']:.1f}", f"{r['move_max_ms']:.1f}", f"{r['state_json_p50_ms']:.1f}",
        f"{r['state_json_p95_ms']:.1f}", f"{r['problems_mean']:.1f}",
    ] for r in rows))
    return (f"{lines}\n\ndraft open: first in a new process {header['open_cold_s']:.2f} s (inputs loaded), "
            f"first after the solve {header['open_first_s']:.2f} s, second {header['open_second_s'] * 1000:.1f} ms "
            f"(context cached); {header['units']:,} units, "
            f"{header['edges']:,} contiguity edges; plan solved in {header['solve_s']:.0f} s "
            f"({'valid' if header['plan_valid'] else 'INVALID'})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time-limit", type=float, default=8.0, help="seconds of the plan's heuristic solve")
    ap.add_argument("--moves", type=int, default=200, help="moves per size")
    ap.add_argument("--sizes", default="1,10,100,300", help="communes per move, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    scenario = default_scenario().with_(**{"model.backend": "heuristic", "model.time_limit_s": args.time_limit})
    began = time.monotonic()
    plan = sectorize.run(scenario)
    solve_s = time.monotonic() - began
    with tempfile.TemporaryDirectory(prefix="bench_app_moves-") as folder:
        registry = Registry(folder)
        stored = registry.get(registry.add(plan, allow_invalid=True))
        open_cold = cold_open_s(folder, stored.id)
        store = DraftStore(folder)
        began = time.perf_counter()
        draft = store.open(stored)
        open_first = time.perf_counter() - began
        began = time.perf_counter()
        store.open(stored)
        open_second = time.perf_counter() - began
        ctx = context_for(stored)
        header = {"command": command_line(__file__, argv), "timestamp": timestamp(), "machine": machine_line(),
                  "scenario": "packaged default (AURA, Lyon by arrondissement, 11 workers)",
                  "backend": "heuristic", "time_limit_s": args.time_limit, "seed": args.seed,
                  "solve_s": solve_s, "plan_valid": plan.valid, "units": ctx.n, "edges": int(ctx.edges.shape[1]),
                  "open_cold_s": open_cold, "open_first_s": open_first, "open_second_s": open_second}
        rng = np.random.default_rng(args.seed)
        rows = []
        for size in sizes:
            rows.append(measure(draft, size, args.moves, rng))
            print(f"{size} communes per move: p50 {rows[-1]['move_p50_ms']:.1f} ms", file=sys.stderr, flush=True)
            write_rows(args.out, header, rows, complete=False)
    write_rows(args.out, header, rows, complete=True)
    return finish(args.out, table(header, rows))


if __name__ == "__main__":
    sys.exit(main())
