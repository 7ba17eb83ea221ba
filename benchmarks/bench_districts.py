"""Exact districting by complete district enumeration on the published county instances.

Runs :func:`solvers.exact.districts.partition` (every feasible district listed, then set
partitioning with CP-SAT) on the county instances of Validi, Buchanan & Lykhovyd
(Operations Research 2022) described in ``<data>/README.md``: the Hess objective
``sum population x (integer km / 1000) ** 2`` to the best centre inside each district,
``[L, U]`` and ``k`` from ``instances_hess.csv``. CO, NH, OR and SC counties are
infeasible with contiguity; the others have a published optimum (``RESULTS.md``).

Every plan is re-checked independently (contiguity, ``[L, U]``, objective from the
coordinates) with :func:`bench_validi.recheck`.

Usage::

    python benchmarks/bench_districts.py                          # all counties, 300 s each
    python benchmarks/bench_districts.py --only SC_county,AL_county --time-limit 60

Instances run one at a time. The table goes to stdout; the rows and the command line
to ``benchmarks/results/districts.json`` (written atomically after every instance; use ``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from solvers.exact.districts import partition

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_validi import DEFAULT_DATA, Instance, load_instance, recheck
from common import RESULTS, YES_NO, command_line, finish, fmt, machine_line, markdown_table, write_rows

DEFAULT_OUT = RESULTS / "districts.json"


def run_one(inst: Instance, time_limit: float, max_districts: int, workers: int) -> dict:
    """Partition one instance; the row of the table and of the JSON file."""
    cost = inst.population[None, :] * (inst.km / 1000) ** 2  # cost[centre, unit]
    start = time.monotonic()
    res = partition(inst.problem.graph, inst.population, inst.lower, inst.upper, inst.problem.k, cost,
                    time_limit_s=time_limit, max_districts=max_districts, workers=workers)
    row = {
        "instance": inst.name, "n": inst.problem.n, "k": inst.problem.k, "status": res.status,
        "published": inst.published, "districts": res.n_districts, "enumeration_s": res.enumeration_s,
        "solve_s": res.solve_s, "time_s": time.monotonic() - start, "solver_objective": res.objective,
        "bound": res.bound, "objective": None, "valid": None, "problems": [],
        "delta_pct": None, "reason": res.reason, "log": res.log,
    }
    if res.assignment is not None:
        valid, objective, msgs = recheck(inst, res.assignment)
        row.update(objective=objective, valid=valid, problems=msgs[:3],
                   delta_pct=None if inst.published is None else 100 * (objective / inst.published - 1))
    return row


def table(rows: list[dict]) -> str:
    head = ("instance", "n", "k", "published", "status", "ours", "Δ %", "districts", "enum. s", "solve s",
            "valid", "reason")
    return markdown_table(head, ([
        r["instance"], str(r["n"]), str(r["k"]),
        "infeasible" if r["published"] is None else fmt(r["published"]), r["status"], fmt(r["objective"]),
        fmt(r["delta_pct"], ".4f"), f"{r['districts']:,}", fmt(r["enumeration_s"], ".1f"),
        fmt(r["solve_s"], ".1f"), YES_NO[r["valid"]], r["reason"].replace("|", "/")[:110],
    ] for r in rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with instances_hess.csv")
    ap.add_argument("--time-limit", type=float, default=300.0, help="seconds per instance (listing + solving)")
    ap.add_argument("--only", default="", help="comma-separated instance names, e.g. SC_county,AL_county")
    ap.add_argument("--max-districts", type=int, default=2_000_000, help="give up beyond this many districts")
    ap.add_argument("--workers", type=int, default=1, help="CP-SAT threads")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    index = args.data / "instances_hess.csv"
    if not index.exists():
        print(f"skipped: no published instances at {args.data}")
        return 0
    rows_in = pd.read_csv(index, dtype={"fips": str})
    rows_in = rows_in[rows_in["level"] == "county"].sort_values("n")
    if args.only:
        wanted = set(args.only.split(","))
        missing = wanted - set(rows_in["instance"])
        if missing:
            raise SystemExit(f"--only: unknown county instance(s) {sorted(missing)} (see {index})")
        rows_in = rows_in[rows_in["instance"].isin(wanted)]
    header = {
        "command": command_line(__file__, argv),
        "time_limit_s": args.time_limit,
        "max_districts": args.max_districts,
        "workers": args.workers,
        "machine": machine_line(),
    }
    results = []
    for _, r in rows_in.iterrows():
        row = run_one(load_instance(args.data, r), args.time_limit, args.max_districts, args.workers)
        results.append(row)
        print(f"{row['instance']:>10} {row['status']:<10} {fmt(row['objective']):>12} "
              f"(published {fmt(row['published'])}) {row['districts']:,} districts, "
              f"{row['enumeration_s']:.1f} + {row['solve_s']:.1f} s {row['reason']}", file=sys.stderr, flush=True)
        write_rows(args.out, header, results, complete=False)
    write_rows(args.out, header, results, complete=True)
    return finish(args.out, table(results))


if __name__ == "__main__":
    sys.exit(main())
