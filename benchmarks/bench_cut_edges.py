"""Yardstick for the cut-edges objective: published minimum-cut-edges instances.

The instances are those of Validi & Buchanan, *Political districting to
minimize cut edges* (Mathematical Programming Computation 14, 2022): US
counties (n = 16..105) and census tracts (n = 295..687), 2010 population,
``k`` districts within ``[L, U]`` (±0.5 %), contiguity imposed, objective the
number of edges whose ends are in different districts. Their proven optima
(or best bounds) and GerryChain's values are in ``<data>/instances_cut_edges.csv``
(described in ``<data>/README.md`` and ``<data>/RESULTS.md`` section 3).

Each instance runs :func:`solvers.engine.solve` with ``objective="cut_edges"``
(backend ``auto`` by default: the labeling MIP warm-started by the heuristic up
to :data:`solvers.cut_edges.backend.AUTO_EXACT_MAX_UNITS` units, the heuristic alone
above). Every plan is re-checked independently: contiguity and ``[L, U]`` from
the CSV with :func:`solvers.check.check_partition`, and the cut recounted from
the edges file.

Usage::

    python benchmarks/bench_cut_edges.py                        # counties, auto, 60 s each
    python benchmarks/bench_cut_edges.py --tracts --only NH_tract,ID_tract --time-limit 120
    python benchmarks/bench_cut_edges.py --backend heuristic --out /tmp/cut_heuristic.json

The table goes to stdout; the rows and the command line to
``benchmarks/results/cut_edges.json`` (written atomically; use ``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from solvers.check import check_partition
from solvers.engine import solve
from solvers.problem import DenseTravelTimes, InfeasibleError, Problem

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_validi import failed, read_graph, solved  # noqa: E402  (instance files and failures handled the same way)
from common import RESULTS, YES_NO, command_line, finish, machine_line, markdown_table, write_rows
from common import fmt as _fmt

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared/benchmarks/validi"
DEFAULT_OUT = RESULTS / "cut_edges.json"


@dataclass
class CutInstance:
    """One published instance: the problem, the edges and bounds to re-check plans, the published figures."""

    name: str
    problem: Problem
    edges: np.ndarray  # (m, 2) node ids
    population: np.ndarray
    lower: int
    upper: int
    published_lb: int
    published_ub: int
    proven: bool
    published_time_s: float | None
    gerrychain: tuple[str, str, str]  # after 100 / 1,000 / 10,000 iterations ("-": failed)


def load_cut_instance(data: Path, row: pd.Series) -> CutInstance:
    """Build the :class:`Problem` of one ``instances_cut_edges.csv`` row.

    Workload = population, ``k`` equal targets whose tolerance gives back the
    published ``L`` and ``U``; travel = squared straight-line km between the
    nodes' state-plane points (it only shapes the compact starting plans and
    the reported centres).

    Raises
    ------
    ValueError
        When the node or edge file disagrees with the row (names the file).
    """
    nodes, graph = read_graph(data, row, "instances_cut_edges.csv")
    edges = np.array(list(graph.edges), dtype=np.intp).reshape(-1, 2)
    k = int(row["k"])
    xy = nodes[["x_m", "y_m"]].to_numpy(float) / 1000.0
    km2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    lower, upper = int(row["L"]), int(row["U"])
    population = nodes["population"].to_numpy(float)
    problem = Problem(
        graph=graph,
        workload=population,
        targets=np.full(k, (lower + upper) / 2),
        tolerance=(upper - lower) / (upper + lower),
        travel=DenseTravelTimes(km2),
        objective="cut_edges",
        labels=tuple(nodes["name"].astype(str)),
    )
    fastest = row["fastest_proof_s"]
    return CutInstance(
        name=row["instance"], problem=problem, edges=edges, population=population, lower=lower, upper=upper,
        published_lb=int(row["cut_edges_best_lb"]), published_ub=int(row["cut_edges_best_ub"]),
        proven=str(row["proven_optimal"]) == "True",
        published_time_s=None if pd.isna(fastest) else float(fastest),
        gerrychain=tuple(str(row[f"gerrychain_{it}it"]) for it in (100, 1000, 10000)),
    )


def recheck(inst: CutInstance, assignment: np.ndarray) -> tuple[bool, int, list[str]]:
    """Independent check: contiguity and [L, U] from the CSV, the cut recounted from the edges file."""
    a = np.asarray(assignment)
    k = inst.problem.k
    msgs = check_partition(inst.problem.graph, a, inst.population, np.full(k, inst.lower), np.full(k, inst.upper))
    cut = int((a[inst.edges[:, 0]] != a[inst.edges[:, 1]]).sum())
    return not msgs, cut, msgs


def run_one(inst: CutInstance, backend: str, time_limit: float, seed: int = 0) -> dict:
    """Run one backend on one instance; never raises for solver outcomes."""
    row: dict = {"instance": inst.name, "n": inst.problem.n, "m": len(inst.edges), "k": inst.problem.k,
                 "backend": backend, "published_lb": inst.published_lb, "published_ub": inst.published_ub,
                 "published_proven": inst.proven, "published_time_s": inst.published_time_s,
                 "gerrychain_100_1000_10000": list(inst.gerrychain)}
    start = time.monotonic()
    try:
        sol = solve(inst.problem, backend=backend, time_limit_s=time_limit, seed=seed)
    except InfeasibleError as err:
        return failed(row, err, start)
    valid, cut, msgs = recheck(inst, sol.assignment)
    solved(row, sol, start, valid, cut, msgs)
    row.update(solver_backend=sol.backend, ratio=cut / inst.published_ub)
    return row


def fmt(x: float | None, spec: str = ",.0f") -> str:
    """:func:`common.fmt`, whole numbers by default (cut edges are counts)."""
    return _fmt(x, spec)


def table(rows: list[dict]) -> str:
    head = ("instance", "n", "k", "published (LB–UB)", "GerryChain 100/1k/10k", "ours", "bound", "status",
            "ours / publ. UB", "time s", "publ. s", "valid")
    return markdown_table(head, ([
        r["instance"], str(r["n"]), str(r["k"]),
        f"{r['published_ub']}" if r["published_lb"] == r["published_ub"]
        else f"{r['published_lb']}–{r['published_ub']}",
        " / ".join(r["gerrychain_100_1000_10000"]),
        fmt(r["objective"]), fmt(r["bound"]), r["status"], fmt(r["ratio"], ".3f"), fmt(r["time_s"], ".1f"),
        fmt(r["published_time_s"], ".2f"), YES_NO[r["valid"]],
    ] for r in rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with instances_cut_edges.csv")
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds per instance")
    ap.add_argument("--tracts", action="store_true", help="also run the tract instances (n = 295..687)")
    ap.add_argument("--only", default="", help="comma-separated instance names, e.g. ME_county,NH_tract")
    ap.add_argument("--backend", default="auto", choices=("auto", "heuristic", "exact"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    index = args.data / "instances_cut_edges.csv"
    if not index.exists():
        print(f"skipped: no published instances at {args.data}")
        return 0
    rows_in = pd.read_csv(index)
    if not args.tracts:
        rows_in = rows_in[rows_in["level"] == "county"]
    if args.only:
        wanted = set(args.only.split(","))
        missing = wanted - set(rows_in["instance"])
        if missing:
            raise SystemExit(f"--only: unknown instance(s) {sorted(missing)} (see {index}; tracts need --tracts)")
        rows_in = rows_in[rows_in["instance"].isin(wanted)]
    rows_in = rows_in.assign(order=rows_in["level"].map({"county": 0, "tract": 1})).sort_values(["order", "n"])
    header = {
        "command": command_line(__file__, argv),
        "time_limit_s": args.time_limit,
        "backend": args.backend,
        "seed": args.seed,
        "machine": machine_line(),
    }
    results = []
    for _, r in rows_in.iterrows():
        inst = load_cut_instance(args.data, r)
        row = run_one(inst, args.backend, args.time_limit, args.seed)
        results.append(row)
        print(f"{row['instance']:>10} {row['status']:<10} {fmt(row['objective']):>5} (bound {fmt(row['bound'])}, "
              f"published {row['published_lb']}-{row['published_ub']}) {row['time_s']:.1f} s",
              file=sys.stderr, flush=True)
        # after every instance, so an interrupted run keeps what it measured
        write_rows(args.out, header, results, complete=False)
    write_rows(args.out, header, results, complete=True)
    return finish(args.out, table(results))


if __name__ == "__main__":
    sys.exit(main())
