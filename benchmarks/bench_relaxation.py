"""How strong is the relaxation behind our lower bound, and how close does our ascent (disaggregated or aggregated bundle, or subgradient) get to it?

Two parts (HiGHS via :func:`solvers.bound.relaxation.strong_relaxation`):

* ``counties``: every published county instance (``../shared/benchmarks/validi``): the
  Lagrangian bound :func:`solvers.bound.lagrangian.lower_bound` (``--method``, default auto: disaggregated bundle) (``--bound-time`` seconds, aiming at the
  objective of a 5 s ``auto`` plan, as in the engine; no target when none is found) against the
  complete strong LP relaxation (a proven bound, the Lagrangian dual's value) and the
  published "Lagrangian LB".
* ``aura``: an AURA instance of :mod:`bench_peers`: a plan (``auto``, ``--time-limit`` s),
  the Lagrangian bound, and the strong LP *restricted* to the plan's pairs plus the
  ``--near`` nearest units of the plan's centres and of the ``--centres`` centres the
  bound ranks best. The restricted optimum is no bound (4,025² pairs do not fit a
  HiGHS model here) but shows how far below the plan the relaxation can go near it.

Usage::

    python benchmarks/bench_relaxation.py --part counties
    python benchmarks/bench_relaxation.py --only NV_tract --steps 6000 --bound-time 1200 --out benchmarks/results/relaxation_nv.json
    python benchmarks/bench_relaxation.py --part aura --case aura-k11-5pc --time-limit 30 --bound-time 60

The table goes to stdout, the rows and the command line to ``--out`` (written atomically).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sectorize.store.atomic import atomic_write_json
from solvers.bound.lagrangian import _floor_values, cost_matrix, lower_bound
from solvers.bound.relaxation import strong_relaxation
from solvers.engine import solve
from solvers.problem import InfeasibleError, NoPlanFoundError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peers import AURA_CASES, aura_case  # noqa: E402
from bench_validi import DEFAULT_DATA, load_instance  # noqa: E402
from common import RESULTS, command_line, finish, fmt, machine_line, markdown_table

DEFAULT_OUT = RESULTS / "relaxation.json"


#: Above this many units the complete strong LP is not solved (``n^2`` rows and columns; see
#: :func:`solvers.bound.relaxation.strong_relaxation`): the published Lagrangian LB stands for it.
LP_MAX_UNITS = 150


def counties(data: Path, bound_time: float, method: str = "auto", only: str = "",
             steps: int = 2000) -> list[dict]:
    """The published instances (every county, or those named in ``only``, tracts too): the
    Lagrangian bound with at most ``steps`` evaluations against the complete strong LP (up to
    :data:`LP_MAX_UNITS` units) and the published Lagrangian LB."""
    rows = []
    index = pd.read_csv(data / "instances_hess.csv")
    published = index.set_index("instance")["cut_lagrangian_lb"]
    chosen = index["instance"].isin(only.split(",")) if only else index["level"] == "county"
    for _, row in index[chosen].sort_values("n").iterrows():
        p = load_instance(data, row).problem
        costs = cost_matrix(p)
        try:  # the engine always gives the bound a plan's objective as its target
            plan = solve(p, backend="auto", time_limit_s=5.0).objective
        except (InfeasibleError, NoPlanFoundError):  # no plan in 5 s: no target
            plan = None
        sub = lower_bound(p, upper_bound=plan, time_limit_s=bound_time, costs=costs, method=method,
                          max_iterations=steps)
        lp = strong_relaxation(p, costs=costs) if p.n <= LP_MAX_UNITS else None
        reference = lp.value if lp is not None else float(published[row["instance"]])
        rows.append({"instance": row["instance"], "n": p.n, "k": p.k, "plan": plan, "published_lagrangian": float(published[row["instance"]]),
                     "strong_lp": None if lp is None else lp.value, "strong_lp_s": None if lp is None else lp.time_s,
                     "lagrangian": sub.value, "method": sub.method, "max_steps": steps,
                     "lagrangian_steps": sub.iterations, "lagrangian_s": sub.time_s,
                     "lagrangian_share": sub.value / reference,
                     "lagrangian_at": {str(q): sub.history[q - 1] for q in (500, 1000, 2000, 4000, 8000, 16000)
                                       if q <= len(sub.history)}})
        print(f"{row['instance']}: LP {fmt(None if lp is None else lp.value)}, {method} {sub.value:,.2f}",
              file=sys.stderr, flush=True)
    return rows


def aura(name: str, time_limit: float, bound_time: float, centres: int, near: int, seed: int,
         method: str = "auto") -> list[dict]:
    p = aura_case(name).problem
    costs = cost_matrix(p)
    sol = solve(p, backend="auto", time_limit_s=time_limit, seed=seed)
    sub = lower_bound(p, upper_bound=sol.objective, time_limit_s=bound_time, costs=costs, method=method)
    floor, _ = _floor_values(costs, sub.multipliers, np.asarray(p.workload, float), float(p.lower[0]), float(p.upper[0]))
    chosen = np.unique(np.r_[np.argsort(floor)[:centres], sol.centres])
    near_units = np.argsort(p.travel.rows(chosen), axis=1)[:, :near]
    pairs = np.r_[np.column_stack([np.repeat(chosen, near), near_units.ravel()]),
                  np.column_stack([chosen, chosen]),
                  np.column_stack([sol.centres[sol.assignment], np.arange(p.n)])]
    lp = strong_relaxation(p, pairs, costs=costs)
    return [{"instance": name, "n": p.n, "k": p.k, "plan": sol.objective, "plan_backend": sol.backend,
             "lagrangian": sub.value, "method": sub.method, "lagrangian_steps": sub.iterations,
             "lagrangian_s": sub.time_s,
             "restricted_lp": lp.value, "restricted_pairs": lp.pairs, "restricted_centres": int(len(chosen)),
             "restricted_lp_s": lp.time_s, "plan_over_restricted_lp": sol.objective / lp.value,
             "gap_to_lagrangian_pct": 100 * (sol.objective - sub.value) / sol.objective}]


def table(rows: list[dict]) -> str:
    if rows and "strong_lp" in rows[0]:
        head = ("instance", "n", "k", "published Lagrangian LB", "strong LP (ours)", "LP s", "Lagrangian bound",
                "steps", "÷ LP (or published)")
        return markdown_table(head, ([
            r["instance"], str(r["n"]), str(r["k"]), f"{r['published_lagrangian']:,.2f}", fmt(r["strong_lp"]),
            fmt(r["strong_lp_s"]), f"{r['lagrangian']:,.2f} ({r['method']})", str(r["lagrangian_steps"]),
            f"{r['lagrangian_share']:.4f}",
        ] for r in rows))
    head = ("instance", "plan", "Lagrangian bound", "gap %", "restricted strong LP (pairs, centres, s)",
            "plan ÷ restricted LP")
    return markdown_table(head, ([
        r["instance"], f"{r['plan']:,.2f}", f"{r['lagrangian']:,.2f} ({r['method']})", f"{r['gap_to_lagrangian_pct']:.2f}",
        f"{r['restricted_lp']:,.2f} ({r['restricted_pairs']:,}, {r['restricted_centres']}, {r['restricted_lp_s']:.1f})",
        f"{r['plan_over_restricted_lp']:.4f}",
    ] for r in rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("counties", "aura"), default="counties")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--case", default="aura-k11-5pc", choices=sorted(AURA_CASES))
    ap.add_argument("--time-limit", type=float, default=30.0, help="seconds of the AURA plan (auto)")
    ap.add_argument("--bound-time", type=float, default=10.0, help="seconds of the Lagrangian bound")
    ap.add_argument("--centres", type=int, default=60, help="AURA: best-ranked centres kept besides the plan's")
    ap.add_argument("--near", type=int, default=400, help="AURA: nearest units kept per kept centre")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", choices=("auto", "disaggregated", "bundle", "subgradient"), default="auto",
                    help="ascent of the Lagrangian bound (solvers.bound.lagrangian.lower_bound)")
    ap.add_argument("--only", default="", help="counties: comma-separated instances instead (tracts too), e.g. NV_tract")
    ap.add_argument("--steps", type=int, default=2000, help="counties: most evaluations of the Lagrangian bound")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    out = args.out or DEFAULT_OUT.with_name(f"relaxation_{args.part}.json")
    began = time.monotonic()
    if args.part == "counties":
        rows = counties(args.data, args.bound_time, args.method, args.only, args.steps)
    else:
        rows = aura(args.case, args.time_limit, args.bound_time, args.centres, args.near, args.seed, args.method)
    atomic_write_json(out, {"command": command_line(__file__, argv), "machine": machine_line(),
                            "time_s": time.monotonic() - began, "rows": rows})
    return finish(out, table(rows))


if __name__ == "__main__":
    sys.exit(main())
