"""How often does a kick of a converged plan pass the LP screen, and does the kicks' order find one early?

The ``"lns"`` backend kicks its best plan (:func:`solvers.lns.kicks.lns_rounds`): one sector's
centre moves into another sector, which is cut in two; location-allocation on the
allocation LP from those centres (the engine's screen) gives an LP value, and the kick
goes on to LNS only when that value is at least :data:`solvers.lns.kicks.KICK_SCREEN` below the
LP value of the plan's own centres. This script builds the plan a 60 s run kicks first
(heuristic for ``--heuristic-s`` seconds, location-allocation, LNS until it converges),
then screens *every* kick of it in the order :func:`solvers.lns.kicks.kicks` gives, and prints
one row per kick: LP value, change against the plan's own, passed or not, seconds.

Usage::

    python benchmarks/bench_kicks.py                      # AURA k = 11, ±5 %, seed 0
    python benchmarks/bench_kicks.py --case aura-k11-2pc --seed 1

The table goes to stdout, the rows, a summary and the command line to ``--out``
(written atomically).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from sectorize.store.atomic import atomic_write_json
from solvers.allocation.loop import location_allocation as _location_allocation, lp_screen as _lp_screen
from solvers.construct.heuristic import heuristic_solve
from solvers.lns.kicks import KICK_SCREEN, kick_centres, kicks
from solvers.lns.search import improve_lns

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peers import AURA_CASES, aura_case  # noqa: E402
from common import RESULTS, command_line, finish, machine_line, markdown_table

DEFAULT_OUT = RESULTS / "kicks.json"


def screen_all(case: str, seed: int, heuristic_s: float) -> tuple[dict, list[dict]]:
    """The converged plan of ``case`` and every kick of it screened: ``(plan summary, rows)``."""
    p = aura_case(case).problem
    began = time.monotonic()
    assign, centres, objective, _ = heuristic_solve(p, time_limit_s=heuristic_s, seed=seed)
    assign, centres, objective, _ = _location_allocation(p, assign, centres, objective, True,
                                                         time.monotonic() + 120, [], lambda line: None)
    assign, centres, objective, log = improve_lns(p, assign, centres, time_limit_s=600, seed=seed)
    plan_s = time.monotonic() - began
    reference = _lp_screen(p, centres, assign, time.monotonic() + 60)[2]
    own = p.cost_rows(centres)[assign, np.arange(p.n)]
    cost = np.bincount(assign, weights=own, minlength=p.k)
    rows = []
    for rank, (close, split) in enumerate(kicks(p, assign, centres, np.random.default_rng(seed)), start=1):
        t0 = time.monotonic()
        value = _lp_screen(p, kick_centres(p, assign, centres, close, split), assign, time.monotonic() + 60)[2]
        rows.append({"rank": rank, "close": close, "split": split, "close_cost": float(cost[close]),
                     "split_cost": float(cost[split]), "lp_value": float(value),
                     "change_pct": 100 * (value / reference - 1) if np.isfinite(value) else None,
                     "passed": bool(value < (1 - KICK_SCREEN) * reference), "seconds": time.monotonic() - t0})
    plan = {"case": case, "seed": seed, "objective": float(objective), "plan_s": plan_s, "lns": log[-1],
            "reference_lp": float(reference), "kick_screen": KICK_SCREEN}
    return plan, rows


def summary(rows: list[dict]) -> dict:
    passed = [r["rank"] for r in rows if r["passed"]]
    return {"kicks": len(rows), "passed": len(passed), "passed_in_first_25": sum(1 for r in passed if r <= 25),
            "first_passing_rank": passed[0] if passed else None,
            "no_lp": sum(1 for r in rows if r["change_pct"] is None),
            "median_screen_s": float(np.median([r["seconds"] for r in rows])) if rows else None}


def table(plan: dict, rows: list[dict], stats: dict) -> str:
    head = ("rank", "close", "split", "close cost", "split cost", "LP value", "change %", "passed", "s")
    lines = [f"{plan['case']}, seed {plan['seed']}: plan {plan['objective']:,.2f} after {plan['plan_s']:.1f} s "
             f"({plan['lns']}); LP value of its centres {plan['reference_lp']:,.2f}; a kick passes "
             f"{100 * plan['kick_screen']:g} % below it",
             "", markdown_table(head, ([
                 str(r["rank"]), str(r["close"]), str(r["split"]), f"{r['close_cost']:,.0f}", f"{r['split_cost']:,.0f}",
                 f"{r['lp_value']:,.2f}", "no LP" if r["change_pct"] is None else f"{r['change_pct']:+.2f}",
                 "yes" if r["passed"] else "no", f"{r['seconds']:.1f}",
             ] for r in rows)),
             "", f"{stats['passed']} of {stats['kicks']} kicks passed, {stats['passed_in_first_25']} of the first 25; "
              f"first passing rank {stats['first_passing_rank']}; {stats['no_lp']} without an LP solution; "
              f"median screen {stats['median_screen_s']:.1f} s"]
    return "\n".join(lines)


def plan_arguments(ap: argparse.ArgumentParser) -> None:
    """``--case``, ``--seed`` and ``--heuristic-s``: the plan of a 60 s run these benchmarks start from
    (also used by ``bench_lns.py``)."""
    ap.add_argument("--case", default="aura-k11-5pc", choices=sorted(AURA_CASES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heuristic-s", type=float, default=10.0,
                    help="seconds of the constructive heuristic (the engine's share in a 60 s run)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    plan_arguments(ap)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    began = time.monotonic()
    plan, rows = screen_all(args.case, args.seed, args.heuristic_s)
    stats = summary(rows)
    atomic_write_json(args.out, {
        "command": command_line(__file__, argv), "machine": machine_line(),
        "time_s": time.monotonic() - began, "plan": plan, "summary": stats, "rows": rows})
    return finish(args.out, table(plan, rows, stats))


if __name__ == "__main__":
    sys.exit(main())
