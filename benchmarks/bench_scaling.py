"""Scaling: how long to a first valid plan, and how good after a fixed budget, from 1k to 64k units.

Synthetic planar instances, one per (graph, size):

* ``grid``: a ``side x side`` grid graph (rook contiguity), points 1 km apart;
* ``delaunay``: the Delaunay triangulation (:class:`scipy.spatial.Delaunay`) of
  ``n`` uniform random points in a square of ``sqrt(n)`` km (one unit per km²).

Workloads are random (gamma, shape 2, mean 20 "patients/year"), ``k = 11``
sectors of equal target, ±5 %, and the inertia objective:
``sum_i workload_i x km(centre, i)^2`` with
:class:`solvers.travel.PlanarDistances` (``squared=True``, rows on demand, no
``n x n`` matrix).

Each instance runs in its own child process, one after the other (the peak
resident memory of that child, ``ru_maxrss`` from :func:`os.wait4`, is the
figure reported). In the child:

1. ``first``: :func:`solvers.construct.heuristic.heuristic_solve` with
   ``--heuristic-limit`` seconds; its progress callback reports every new best
   balanced plan, and the time of the first report is "time to a first valid
   plan" (the engine's ``solve`` does not forward these reports). The plan it
   returns is re-checked with :func:`solvers.check.check_plan` (contiguity and
   bounds).
2. ``budget``: :func:`solvers.engine.solve` with ``backend="auto"`` and
   ``--budget`` seconds; objective, wall time (which may exceed the budget:
   the engine's set-up is not timed against it) and the same check.

Usage::

    python benchmarks/bench_scaling.py                          # 1k..64k, grid + delaunay
    python benchmarks/bench_scaling.py --sizes 1000,4000 --graphs grid --budget 20 --out /tmp/s.json
    python benchmarks/bench_scaling.py --sizes 64000 --append     # add rows to the existing results

The table goes to stdout; the rows to ``benchmarks/results/scaling.json``
(rewritten atomically after every instance, so an interrupted run keeps what
it measured).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    RESULTS,
    YES_NO,
    command_line,
    finish,
    machine_line,
    markdown_table,
    write_rows,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = RESULTS / "scaling.json"
K = 11
TOLERANCE = 0.05


def build_instance(graph_kind: str, n: int, seed: int):
    """The :class:`~solvers.problem.Problem` of one synthetic instance (``n`` is rounded to a square for grids)."""
    from solvers.problem import Problem
    from solvers.travel import PlanarDistances

    rng = np.random.default_rng(seed)
    if graph_kind == "grid":
        side = int(round(math.sqrt(n)))
        n = side * side
        graph = nx.convert_node_labels_to_integers(nx.grid_2d_graph(side, side), ordering="sorted")
        xy = np.array([(i // side, i % side) for i in range(n)], dtype=float)
    elif graph_kind == "delaunay":
        from scipy.spatial import Delaunay

        xy = rng.random((n, 2)) * math.sqrt(n)
        tri = Delaunay(xy)
        simplices = tri.simplices
        edges = np.concatenate([simplices[:, [0, 1]], simplices[:, [1, 2]], simplices[:, [0, 2]]])
        edges = np.unique(np.sort(edges, axis=1), axis=0)
        graph = nx.Graph()
        graph.add_nodes_from(range(n))
        graph.add_edges_from(map(tuple, edges.tolist()))
    else:
        raise ValueError(f"unknown graph kind {graph_kind!r}")
    workload = rng.gamma(2.0, 10.0, size=n)
    target = workload.sum() / K
    problem = Problem(
        graph=graph,
        workload=workload,
        targets=np.full(K, target),
        tolerance=TOLERANCE,
        travel=PlanarDistances(xy, squared=True),
    )
    return problem


def child(graph_kind: str, n: int, seed: int, heuristic_limit: float, budget: float) -> dict:
    """Measure one instance in this process; returns the row (printed as JSON by ``--child``)."""
    from solvers.check import check_plan
    from solvers.construct.heuristic import heuristic_solve
    from solvers.engine import solve
    from solvers.problem import InfeasibleError

    began = time.monotonic()
    problem = build_instance(graph_kind, n, seed)
    row: dict = {"graph": graph_kind, "n": problem.n, "edges": problem.graph.number_of_edges(), "k": problem.k,
                 "tolerance": problem.tolerance, "seed": seed, "build_s": time.monotonic() - began}
    reports: list[tuple[float, str]] = []
    start = time.monotonic()

    def progress(line: str) -> None:
        reports.append((time.monotonic() - start, line))

    try:
        assign, centres, objective, _ = heuristic_solve(problem, time_limit_s=heuristic_limit, seed=seed,
                                                        progress=progress)
        problems = check_plan(problem, assign)
        row.update(first_valid_s=reports[0][0] if reports else None, first_reports=len(reports),
                   heuristic_s=time.monotonic() - start, heuristic_objective=objective,
                   heuristic_valid=not problems, heuristic_problems=problems[:3])
    except InfeasibleError as err:
        row.update(first_valid_s=None, heuristic_s=time.monotonic() - start, heuristic_objective=None,
                   heuristic_valid=False, heuristic_problems=[str(err)[:300]])
    start = time.monotonic()
    try:
        sol = solve(problem, backend="auto", time_limit_s=budget, seed=seed)
        problems = check_plan(problem, sol.assignment)
        loads = np.bincount(sol.assignment, weights=problem.workload, minlength=problem.k)
        row.update(budget_s=budget, auto_s=time.monotonic() - start, auto_objective=sol.objective,
                   auto_backend=sol.backend, auto_valid=not problems, auto_problems=problems[:3],
                   auto_max_dev_pct=float(np.abs(loads / problem.targets - 1).max() * 100))
    except InfeasibleError as err:
        row.update(budget_s=budget, auto_s=time.monotonic() - start, auto_objective=None, auto_backend=None,
                   auto_valid=False, auto_problems=[str(err)[:300]], auto_max_dev_pct=None)
    row["total_s"] = time.monotonic() - began
    return row


def run_child(graph_kind: str, n: int, seed: int, heuristic_limit: float, budget: float, timeout: float) -> dict:
    """Run :func:`child` in a fresh process; adds its peak resident memory (MiB) and exit status."""
    cmd = [sys.executable, __file__, "--child", graph_kind, str(n), "--seed", str(seed),
           "--heuristic-limit", str(heuristic_limit), "--budget", str(budget)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True, env=env)
        began = time.monotonic()
        status, usage = None, None
        while status is None:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, usage = st, ru
                break
            if time.monotonic() - began > timeout:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read()
        out.seek(0)
        text = out.read()
    row = {"graph": graph_kind, "n": n}
    if proc.returncode == 0 and text.strip():
        row = json.loads(text.strip().splitlines()[-1])
    else:
        row["error"] = (f"child exited with {proc.returncode}"
                        + (f" after the {timeout:.0f} s timeout" if time.monotonic() - began > timeout else "")
                        + f": {err.strip()[-400:]}")
    row["peak_rss_mib"] = usage.ru_maxrss / 1024 if usage is not None else None  # Linux: KiB
    row["wall_s"] = time.monotonic() - began
    return row


def fmt(x, spec: str = ",.1f") -> str:
    return "—" if x is None else format(x, spec)


def table(rows: list[dict]) -> str:
    head = ("graph", "n", "first valid s", "heuristic obj", "valid", "auto obj (budget)", "auto s", "valid",
            "max dev %", "peak MiB", "note")
    return markdown_table(head, ([
        r["graph"], f"{r['n']:,}", fmt(r.get("first_valid_s"), ".2f"), fmt(r.get("heuristic_objective"), ",.0f"),
        YES_NO[r.get("heuristic_valid")], fmt(r.get("auto_objective"), ",.0f"), fmt(r.get("auto_s")),
        YES_NO[r.get("auto_valid")], fmt(r.get("auto_max_dev_pct"), ".2f"), fmt(r.get("peak_rss_mib"), ",.0f"),
        (r.get("error") or "; ".join(r.get("heuristic_problems", []) + r.get("auto_problems", [])))[:120]
        .replace("|", "/"),
    ] for r in rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,4000,16000,64000", help="comma-separated unit counts")
    ap.add_argument("--graphs", default="grid,delaunay", help="comma-separated: grid, delaunay")
    ap.add_argument("--heuristic-limit", type=float, default=60.0, help="seconds for the first-plan heuristic run")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds for the backend 'auto' run")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds before a child is killed")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--append", action="store_true",
                    help="keep the rows already in --out (e.g. add 64k to a 1k..16k run)")
    ap.add_argument("--child", nargs=2, metavar=("GRAPH", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        row = child(args.child[0], int(args.child[1]), args.seed, args.heuristic_limit, args.budget)
        print(json.dumps(row, default=float))
        return 0
    header = {
        "command": command_line(__file__, argv),
        "k": K, "tolerance": TOLERANCE, "heuristic_limit_s": args.heuristic_limit, "budget_s": args.budget,
        "objective": "sum_i workload_i * km(centre, i)^2 (PlanarDistances squared=True)",
        "machine": machine_line(),
    }
    rows = []
    if args.append and args.out.exists():
        previous = json.loads(args.out.read_text())
        rows = previous["rows"]
        header["command"] = f"{previous['command']} && {header['command']}"
    for n in (int(s) for s in args.sizes.split(",")):
        for kind in args.graphs.split(","):
            row = run_child(kind, n, args.seed, args.heuristic_limit, args.budget, args.timeout)
            rows.append(row)
            print(f"{kind:>9} n={row['n']:>6,}: first valid {fmt(row.get('first_valid_s'))} s, "
                  f"auto {fmt(row.get('auto_objective'), ',.0f')} in {fmt(row.get('auto_s'))} s, "
                  f"peak {fmt(row.get('peak_rss_mib'), ',.0f')} MiB {row.get('error', '')}", file=sys.stderr, flush=True)
            write_rows(args.out, header, rows, complete=False)
    write_rows(args.out, header, rows, complete=True)
    return finish(args.out, table(rows))


if __name__ == "__main__":
    sys.exit(main())
