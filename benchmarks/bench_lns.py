"""What do reduced-cost fixing and three-sector moves add to the large-neighbourhood search?

:func:`solvers.lns.search.improve_lns` runs from the same starting plans in three ways, each until
it converges (or ``--lns-time`` seconds):

* ``pairs, whole MIPs``: pairs of sectors only, each pair MIP with every unit of the pair
  (``fixing=False``, the search before reduced-cost fixing);
* ``pairs``: pairs only, the pair MIPs keeping the units fixing leaves free;
* ``pairs + triples``: the default: pairs, then a pass over triples of sectors
  (:func:`solvers.lns.reassign.reassign`) whenever no pair improves.

The starting plans are those of a 60 s ``"lns"`` run: ``location-allocation`` (heuristic
for ``--heuristic-s`` seconds, then location-allocation) and ``first kick`` (the first kick
of it, in :func:`solvers.lns.kicks.kicks` order, that passes the LP screen, made contiguous and
balanced as :func:`solvers.lns.kicks.lns_rounds` does). Each row gives the objective, seconds,
pair and triple visits, and for ``pairs + triples`` the seconds it took to get below the
objective where ``pairs`` stopped.

Usage::

    python benchmarks/bench_lns.py                      # AURA k = 11, ±5 %, seed 0
    python benchmarks/bench_lns.py --case aura-k11-2pc --seed 1

The table goes to stdout, the rows and the command line to ``--out`` (written atomically).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

from sectorize.store.atomic import atomic_write_json
from solvers.check import check_plan
from solvers.allocation.loop import location_allocation as _location_allocation, lp_screen as _lp_screen
from solvers.construct.heuristic import heuristic_solve
from solvers.lns.kicks import KICK_REPAIR_S, KICK_SCREEN, kick_centres, kicks
from solvers.lns.search import improve_lns

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kicks import plan_arguments  # noqa: E402
from bench_peers import aura_case  # noqa: E402
from common import RESULTS, command_line, finish, machine_line, markdown_table

DEFAULT_OUT = RESULTS / "lns.json"

#: ``(name, improve_lns keyword arguments)`` of the variants compared.
VARIANTS = (
    ("pairs, whole MIPs", {"triples": False, "fixing": False}),
    ("pairs", {"triples": False}),
    ("pairs + triples", {}),
)


def starts(case: str, seed: int, heuristic_s: float) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """``[(name, assignment, centres, how it was made), ...]``: the location-allocation plan
    and, when a kick of it passes the screen, the first such kick made valid."""
    p = aura_case(case).problem
    assign, centres, objective, _ = heuristic_solve(p, time_limit_s=heuristic_s, seed=seed)
    assign, centres, objective, _ = _location_allocation(p, assign, centres, objective, True,
                                                         time.monotonic() + 120, [], lambda line: None)
    out = [("location-allocation", assign, centres, f"heuristic {heuristic_s:g} s, location-allocation")]
    reference = _lp_screen(p, centres, assign, time.monotonic() + 60)[2]
    for rank, (close, split) in enumerate(kicks(p, assign, centres, np.random.default_rng(seed)), start=1):
        _, rounded, value = _lp_screen(p, kick_centres(p, assign, centres, close, split), assign,
                                       time.monotonic() + 60)
        if rounded is None or value >= (1 - KICK_SCREEN) * reference:
            continue
        kicked, kicked_centres, _, _ = heuristic_solve(p, time_limit_s=KICK_REPAIR_S, seed=seed, start=rounded,
                                                       restarts=1)
        if not check_plan(p, kicked):
            out.append(("first kick", kicked, kicked_centres,
                        f"kick {rank}: sector {close} into sector {split}, LP value {value:,.2f}"))
        break
    return out


def run_variants(case: str, seed: int, heuristic_s: float, lns_s: float) -> list[dict]:
    """One row per starting plan and variant."""
    p = aura_case(case).problem
    rows = []
    for start, assign, centres, how in starts(case, seed, heuristic_s):
        pairs_end = None
        for name, options in VARIANTS:
            trace: list[tuple[float, float]] = []
            began = time.monotonic()

            def keep(line: str, began=began, trace=trace) -> None:
                found = re.search(r"re-optimised, objective ([\d,.]+)", line)
                if found:
                    trace.append((time.monotonic() - began, float(found.group(1).replace(",", ""))))

            _, _, objective, log = improve_lns(p, assign, centres, time_limit_s=lns_s, seed=seed, progress=keep,
                                               **options)
            seconds = time.monotonic() - began
            visits = re.search(r"(\d+) pair visits, (\d+) triple visits, (\d+) accepted", log[-1])
            row = {"start": start, "how": how, "start_objective": p.objective_value(assign, centres),
                   "variant": name, "objective": float(objective), "seconds": seconds,
                   "pair_visits": int(visits.group(1)), "triple_visits": int(visits.group(2)),
                   "accepted": int(visits.group(3)), "converged": "converged" in log[-1],
                   "below_pairs_s": None}
            if name == "pairs":
                pairs_end = float(objective)
            elif pairs_end is not None:
                row["below_pairs_s"] = next((t for t, value in trace if value < pairs_end - 1e-9), None)
            rows.append(row)
    return rows


def table(case: str, seed: int, rows: list[dict]) -> str:
    head = ("start", "variant", "objective", "s", "pair visits", "triple visits", "accepted", "converged",
            "below `pairs` after s")
    return "\n".join([f"{case}, seed {seed}", "", markdown_table(head, ([
        f"{r['start']} ({r['start_objective']:,.2f})", r["variant"], f"{r['objective']:,.2f}", f"{r['seconds']:.1f}",
        str(r["pair_visits"]), str(r["triple_visits"]), str(r["accepted"]), "yes" if r["converged"] else "no",
        "" if r["below_pairs_s"] is None else f"{r['below_pairs_s']:.1f}",
    ] for r in rows))])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    plan_arguments(ap)
    ap.add_argument("--lns-time", type=float, default=300.0, help="seconds at most per LNS run")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    began = time.monotonic()
    rows = run_variants(args.case, args.seed, args.heuristic_s, args.lns_time)
    atomic_write_json(args.out, {
        "command": command_line(__file__, argv), "machine": machine_line(),
        "time_s": time.monotonic() - began, "case": args.case, "seed": args.seed, "rows": rows})
    return finish(args.out, table(args.case, args.seed, rows))


if __name__ == "__main__":
    sys.exit(main())
