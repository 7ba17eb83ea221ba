"""Location-allocation on AURA: one-stage against LP-guided allocation MIPs, and the LNS
with exact against shortest-path pair contiguity.

For each seed, a start plan that does not depend on the clock (:func:`heuristic_solve`
with a fixed number of restarts), then:

* the engine's location-allocation loop (allocate for the centres, move each centre to
  its sector's medoid, until the centres repeat or the objective stops falling) twice:
  with :func:`solvers.allocation.mip.allocate` in one stage (``staged=False``) and LP-guided
  (``staged=True``); seconds per allocation (median), allocations, seconds in all, and
  the final objective;
* :func:`solvers.lns.search.improve_lns` from the LP-guided loop's plan with ``contiguity="cuts"``
  and ``"shortest_path"`` (at most ``--lns-time`` s): objective, seconds, pair visits.

Usage::

    python benchmarks/bench_allocation.py                      # aura-k11-5pc, seeds 0,1,2
    python benchmarks/bench_allocation.py --seeds 0 --lns-time 30 --out /tmp/alloc.json

The table goes to stdout, rows and command line to ``--out`` (default
``benchmarks/results/allocation.json``, written atomically).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path


from sectorize.store.atomic import atomic_write_json
import solvers.allocation.loop as engine
from solvers.construct.heuristic import heuristic_solve
from solvers.lns.search import improve_lns
from solvers.allocation.mip import allocate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peers import AURA_CASES, aura_case  # noqa: E402
from common import RESULTS, command_line, machine

DEFAULT_OUT = RESULTS / "allocation.json"


def location_allocation(problem, assign, centres, objective, staged: bool) -> dict:
    """The engine's loop (:func:`solvers.allocation.loop.location_allocation`) with one allocation
    mode; returns its plan and the seconds of each allocation call."""
    seconds: list[float] = []

    def timed(*args, **kwargs):
        began = time.monotonic()
        try:
            return allocate(*args, **kwargs)
        finally:
            seconds.append(time.monotonic() - began)

    engine.allocate = timed
    try:
        began = time.monotonic()
        assign, centres, objective, _ = engine.location_allocation(
            problem, assign, centres, objective, True, time.monotonic() + 600, [], lambda line: None, staged=staged)
    finally:
        engine.allocate = allocate
    return {"objective": objective, "assign": assign, "centres": centres, "allocations": len(seconds),
            "median_s": statistics.median(seconds), "total_s": time.monotonic() - began}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="aura-k11-5pc", choices=sorted(AURA_CASES))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--restarts", type=int, default=4, help="restarts of the start heuristic (default 4)")
    ap.add_argument("--lns-time", type=float, default=60.0, help="seconds per LNS run (default 60)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    problem = aura_case(args.case).problem
    rows = []
    print(f"{'seed':>4} {'start':>10} | {'one-stage':>10} {'s/alloc':>7} {'n':>3} {'s':>5} | {'LP-guided':>10} "
          f"{'s/alloc':>7} {'n':>3} {'s':>5} | {'LNS cuts':>10} {'s':>5} {'visits':>6} | {'LNS sp':>10} {'s':>5} "
          f"{'visits':>6}")
    for seed in (int(s) for s in args.seeds.split(",")):
        assign, centres, start, _ = heuristic_solve(problem, time_limit_s=3600, seed=seed, restarts=args.restarts)
        row = {"seed": seed, "start": start}
        for name, staged in (("one_stage", False), ("staged", True)):
            found = location_allocation(problem, assign, centres, start, staged)
            row[name] = {k: v for k, v in found.items() if k not in ("assign", "centres")}
        for mode in ("cuts", "shortest_path"):
            began = time.monotonic()
            *_, objective, log = improve_lns(problem, found["assign"], found["centres"], time_limit_s=args.lns_time,
                                             seed=0, contiguity=mode)
            visits = int(re.search(r"(\d+) pair visits", log[-1]).group(1))
            row[f"lns_{mode}"] = {"objective": objective, "seconds": time.monotonic() - began, "visits": visits}
        rows.append(row)
        one, two, cuts, sp = row["one_stage"], row["staged"], row["lns_cuts"], row["lns_shortest_path"]
        print(f"{seed:>4} {start:>10,.2f} | {one['objective']:>10,.2f} {one['median_s']:>7.1f} {one['allocations']:>3} "
              f"{one['total_s']:>5.1f} | {two['objective']:>10,.2f} {two['median_s']:>7.1f} {two['allocations']:>3} "
              f"{two['total_s']:>5.1f} | {cuts['objective']:>10,.2f} "
              f"{cuts['seconds']:>5.1f} {cuts['visits']:>6} | {sp['objective']:>10,.2f} {sp['seconds']:>5.1f} "
              f"{sp['visits']:>6}", flush=True)
    atomic_write_json(args.out, {"command": command_line(__file__, argv),
                                 "date": time.strftime("%Y-%m-%d"), "machine": machine()["platform"],
                                 "case": args.case, "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
