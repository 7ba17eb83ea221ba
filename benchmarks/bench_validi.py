"""Yardstick: our backends on published districting instances with proven optima.

The instances (US counties n = 10..105, census tracts n = 244..1,046) and the
published results of Validi, Buchanan & Lykhovyd (Operations Research 2022)
are described in ``<data>/README.md`` and ``<data>/RESULTS.md``. Each instance
becomes a :class:`~solvers.problem.Problem` whose objective *is* the published
one:

* workload = 2010 population, ``k`` equal targets; target ``(L + U) / 2`` and
  tolerance ``(U - L) / (U + L)`` give back the published ``L`` and ``U``;
* travel = ``round(hypot(dx, dy) / 1000) ** 2 / 1e6`` (integer km, squared,
  in units of (1000 km)^2), so ``sum population x travel`` to each sector's
  centre is the published "hess" objective.

Each backend runs with ``--time-limit`` seconds per instance. Every plan is
re-checked independently of the solvers: contiguity and ``[L, U]`` with
:func:`solvers.check.check_partition` against the CSV's ``L``/``U``, and the
objective recomputed from the node coordinates with the best centre of every
district.

Usage::

    python benchmarks/bench_validi.py                        # counties, auto + exact, 60 s each
    python benchmarks/bench_validi.py --tracts --only NH_tract,ID_tract
    python benchmarks/bench_validi.py --compare --out /tmp/compare.json   # solvers and contiguity models

The table goes to stdout; the rows and the command line to
``benchmarks/results/validi.json`` (written atomically; use ``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from solvers.check import check_partition
from solvers.engine import solve
from solvers.exact.model import exact_solve
from solvers.problem import (
    DenseTravelTimes,
    InfeasibleError,
    NoPlanFoundError,
    Problem,
    Solution,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    RESULTS,
    YES_NO,
    command_line,
    finish,
    fmt,
    machine_line,
    markdown_table,
    write_rows,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared/benchmarks/validi"
DEFAULT_OUT = RESULTS / "validi.json"


@dataclass
class Instance:
    """One published instance: the problem, the data to re-check plans, the published figures."""

    name: str
    problem: Problem
    population: np.ndarray
    km: np.ndarray  # (n, n) integer kilometres
    lower: int
    upper: int
    published: float | None  # contiguous optimum; None = proven infeasible
    published_nocontig: float
    published_time_s: float | None
    note: str


def read_graph(data: Path, row: pd.Series, index: str) -> tuple[pd.DataFrame, nx.Graph]:
    """The node table (sorted by ``node``) and the contiguity graph of one instance row
    (``level``, ``state``, ``n``, ``m``) of the index file named ``index``.

    Raises
    ------
    ValueError
        When the node or edge file disagrees with the row (names the file).
    """
    folder = data / f"{row['level']}_2010"
    nodes_file, edges_file = folder / f"{row['state']}_nodes.csv", folder / f"{row['state']}_edges.csv"
    nodes = pd.read_csv(nodes_file).sort_values("node")
    edges = pd.read_csv(edges_file)
    n = int(row["n"])
    if nodes["node"].tolist() != list(range(n)):
        raise ValueError(f"{nodes_file}: nodes must be 0..{n - 1} as in {index}")
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges[["u", "v"]].itertuples(index=False, name=None))
    if graph.number_of_edges() != int(row["m"]):
        raise ValueError(f"{edges_file}: {graph.number_of_edges()} edges, {index} says {row['m']}")
    return nodes, graph


def load_instance(data: Path, row: pd.Series) -> Instance:
    """Build the :class:`Problem` of one ``instances_hess.csv`` row.

    Raises
    ------
    ValueError
        When the node or edge file disagrees with the row (names the file).
    """
    nodes, graph = read_graph(data, row, "instances_hess.csv")
    k = int(row["k"])
    xy = nodes[["x_m", "y_m"]].to_numpy(float)
    # Python round(), i.e. half to even, like numpy's rint
    km = np.rint(np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) / 1000)
    lower, upper = int(row["L"]), int(row["U"])
    problem = Problem(
        graph=graph,
        workload=nodes["population"].to_numpy(float),
        targets=np.full(k, (lower + upper) / 2),
        tolerance=(upper - lower) / (upper + lower),
        travel=DenseTravelTimes(km**2 / 1e6),
        labels=tuple(nodes["name"].astype(str)),
    )
    contig = str(row["cut_objval"])
    infeasible = row["instance"] in {"CO_county", "NH_county", "OR_county", "SC_county"}
    note = ""
    if row["state"] in {"HI", "RI"} and row["level"] == "tract":
        note = "graph disconnected here: published contiguous value not comparable"
    elif not infeasible and float(row["cut_mipgap_pct"]) > 0:
        note = f"published value not proven (gap {row['cut_mipgap_pct']} %)"
    return Instance(
        name=row["instance"],
        problem=problem,
        population=nodes["population"].to_numpy(float),
        km=km,
        lower=lower,
        upper=upper,
        published=None if infeasible else float(contig),
        published_nocontig=float(row["hess_objval"]),
        published_time_s=None if infeasible else float(row["cut_total_time_s"]),
        note=note,
    )


def recheck(inst: Instance, assignment: np.ndarray) -> tuple[bool, float, list[str]]:
    """Independent check: contiguity and [L, U] from the CSV, objective from coordinates."""
    a = np.asarray(assignment)
    k = inst.problem.k
    msgs = check_partition(inst.problem.graph, a, inst.population, np.full(k, inst.lower), np.full(k, inst.upper))
    total = 0.0
    for s in range(k):
        m = np.flatnonzero(a == s)
        if m.size:
            total += float(((inst.km[np.ix_(m, m)] / 1000) ** 2 @ inst.population[m]).min())
    return not msgs, total, msgs


def failed(row: dict, err: InfeasibleError, start: float) -> dict:
    """``row`` completed for a run that ended without a plan: ``"unknown"`` when time ran
    out (:class:`NoPlanFoundError`), ``"no plan"`` when a heuristic backend found none (its
    message says "found in": not a proof), else ``"infeasible"`` (proven, with the reason)."""
    if isinstance(err, NoPlanFoundError):
        status = "unknown"
    else:
        status = "no plan" if "found in" in str(err) else "infeasible"
    row.update(status=status, time_s=time.monotonic() - start, reason=str(err)[:300],
               objective=None, bound=None, gap=None, valid=None, ratio=None)
    return row


def solved(row: dict, sol: Solution, start: float, valid: bool, objective: float, problems: list[str]) -> dict:
    """``row`` completed for a run that returned a plan, with the independent re-check's
    verdict and recomputed ``objective`` (the solver's own value kept beside it)."""
    row.update(status=sol.status, time_s=time.monotonic() - start, objective=objective,
               solver_objective=sol.objective, bound=sol.bound, gap=sol.gap, valid=valid,
               problems=problems[:3], reason=None)
    return row


def run_one(inst: Instance, method: str, time_limit: float) -> dict:
    """Run one method on one instance; never raises for solver outcomes."""
    row: dict = {"instance": inst.name, "n": inst.problem.n, "k": inst.problem.k, "method": method,
                 "published": inst.published, "published_time_s": inst.published_time_s,
                 "published_nocontig": inst.published_nocontig, "note": inst.note}
    start = time.monotonic()
    try:
        if method in ("auto", "exact"):
            sol = solve(inst.problem, backend=method, time_limit_s=time_limit)
        else:  # "exact:<solver>:<contiguity>"
            _, solver, contiguity = method.split(":")
            sol = exact_solve(inst.problem, time_limit_s=time_limit, solver=solver, contiguity=contiguity)
    except InfeasibleError as err:
        return failed(row, err, start)
    valid, objective, msgs = recheck(inst, sol.assignment)
    solved(row, sol, start, valid, objective, msgs)
    row.update(
        ratio=objective / inst.published if inst.published else None,
        # what the exact backend's Lagrangian fixing left, e.g. "... 5,007 of 87,025 unit-centre pairs kept"
        fixing=[line for line in sol.log if line.startswith(("Lagrangian fixing", "Lagrangian bound"))],
    )
    return row


def table(rows: list[dict]) -> str:
    head = ("instance", "n", "k", "method", "published", "ours", "ratio", "bound", "gap", "status",
            "time s", "publ. s", "valid", "reason / note")
    return markdown_table(head, ([
        r["instance"], str(r["n"]), str(r["k"]), r["method"],
        "infeasible" if r["published"] is None else fmt(r["published"]), fmt(r["objective"]),
        fmt(r["ratio"], ".4f"), fmt(r["bound"]), fmt(None if r["gap"] is None else 100 * r["gap"], ".3f") +
        ("" if r["gap"] is None else " %"), r["status"], fmt(r["time_s"], ".1f"),
        fmt(r["published_time_s"], ".2f"), YES_NO[r["valid"]],
        (r["reason"] or r["note"] or "").replace("|", "/")[:140],
    ] for r in rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with instances_hess.csv")
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds per instance and method")
    ap.add_argument("--tracts", action="store_true", help="also run the tract instances (n = 244..1,046)")
    ap.add_argument("--only", default="", help="comma-separated instance names, e.g. ME_county,NH_tract")
    ap.add_argument("--methods", default="auto,exact",
                    help="comma-separated: auto, exact, or exact:<highs|scip|cpsat>:<flow|cuts|shortest_path>")
    ap.add_argument("--compare", action="store_true",
                    help="exact model: flow contiguity with HiGHS, SCIP, CP-SAT; cuts and shortest-path with HiGHS")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    index = args.data / "instances_hess.csv"
    if not index.exists():
        print(f"skipped: no published instances at {args.data}")
        return 0
    rows_in = pd.read_csv(index, dtype={"fips": str})
    if not args.tracts:
        rows_in = rows_in[rows_in["level"] == "county"]
    if args.only:
        wanted = set(args.only.split(","))
        missing = wanted - set(rows_in["instance"])
        if missing:
            raise SystemExit(f"--only: unknown instance(s) {sorted(missing)} (see {index}; tracts need --tracts)")
        rows_in = rows_in[rows_in["instance"].isin(wanted)]
    rows_in = rows_in.assign(order=rows_in["level"].map({"county": 0, "tract": 1})).sort_values(["order", "n"])
    methods = args.methods.split(",")
    if args.compare:
        methods = ["exact:highs:flow", "exact:scip:flow", "exact:cpsat:flow", "exact:highs:cuts",
                   "exact:highs:shortest_path"]
    header = {
        "command": command_line(__file__, argv),
        "time_limit_s": args.time_limit,
        "machine": machine_line(),
    }
    results = []
    for _, r in rows_in.iterrows():
        inst = load_instance(args.data, r)
        for method in methods:
            row = run_one(inst, method, args.time_limit)
            results.append(row)
            print(f"{row['instance']:>10} {method:<24} {row['status']:<10} {fmt(row['objective']):>12} "
                  f"(published {fmt(row['published'])}) {row['time_s']:.1f} s", file=sys.stderr, flush=True)
        # after every instance, so an interrupted run keeps what it measured
        write_rows(args.out, header, results, complete=False)
    write_rows(args.out, header, results, complete=True)
    return finish(args.out, table(results))


if __name__ == "__main__":
    sys.exit(main())
