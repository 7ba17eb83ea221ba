"""Cut edges as a compactness tie-break of the p-median plan, on AURA.

Solves one AURA instance of :mod:`bench_peers` (population-weighted squared
km, the moment of inertia) with :func:`solvers.engine.solve` (``auto``,
``--time-limit`` seconds), then runs :func:`solvers.cut_edges.tie_break.tie_break` from
that plan once per slack (each with ``--tie-break-time`` seconds, by default
the share the engine gives it: :func:`solvers.cut_edges.tie_break.tie_break_seconds`),
and reports the cut edges and the objective before and after. Every plan is
re-checked with :func:`solvers.check.check_plan` and its objective recomputed.

Usage::

    python benchmarks/bench_tie_break.py                                   # aura-k11-5pc, 60 s, slacks 0, 0.005, 0.01
    python benchmarks/bench_tie_break.py --case aura-k2-5pc --slacks 0,0.02 --out /tmp/tb.json

The table goes to stdout; the rows and the command line to
``benchmarks/results/tie_break.json`` (written atomically; use ``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from solvers.check import check_plan
from solvers.cut_edges.tie_break import tie_break, tie_break_seconds
from solvers.engine import solve
from solvers.problem import cut_edges

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peers import AURA_CASES, aura_case  # noqa: E402
from common import (
    RESULTS,
    command_line,
    finish,
    machine_line,
    markdown_table,
    write_rows,
)

DEFAULT_OUT = RESULTS / "tie_break.json"


def table(rows: list[dict]) -> str:
    head = ("slack", "objective before", "objective after", "change %", "cut edges before", "cut edges after",
            "fewer", "tie-break s", "valid")
    return markdown_table(head, ([
        f"{r['slack']:g}", f"{r['objective_before']:,.1f}", f"{r['objective_after']:,.1f}",
        f"{r['objective_change_pct']:+.3f}", f"{r['cut_edges_before']:,}", f"{r['cut_edges_after']:,}",
        (f"{r['cut_edges_before'] - r['cut_edges_after']:,} "
         f"({100 * (r['cut_edges_before'] - r['cut_edges_after']) / r['cut_edges_before']:.1f} %)"),
        f"{r['time_s']:.1f}", "yes" if r["valid"] else "NO",
    ] for r in rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="aura-k11-5pc", choices=sorted(AURA_CASES))
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds of the solve (backend auto)")
    ap.add_argument("--slacks", default="0,0.005,0.01", help="comma-separated slacks (fractions)")
    ap.add_argument("--tie-break-time", type=float, default=None,
                    help="seconds per tie-break (default: the engine's share of --time-limit)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    slacks = [float(s) for s in args.slacks.split(",")]
    budget = tie_break_seconds(args.time_limit) if args.tie_break_time is None else args.tie_break_time
    case = aura_case(args.case)
    p = case.problem
    began = time.monotonic()
    sol = solve(p, backend="auto", time_limit_s=args.time_limit, seed=args.seed)
    solve_s = time.monotonic() - began
    header = {
        "command": command_line(__file__, argv),
        "case": args.case, "note": case.note, "n": p.n, "k": p.k, "edges": p.graph.number_of_edges(),
        "time_limit_s": args.time_limit, "tie_break_time_s": budget, "seed": args.seed,
        "solve": {"backend": sol.backend, "status": sol.status, "objective": sol.objective,
                  "cut_edges": int(cut_edges(p.graph, sol.assignment)), "time_s": solve_s,
                  "valid": not check_plan(p, sol.assignment)},
        "machine": machine_line(),
    }
    print(f"{args.case}: {sol.backend} plan, objective {sol.objective:,.1f}, "
          f"{header['solve']['cut_edges']:,} cut edges, {solve_s:.1f} s", file=sys.stderr, flush=True)
    rows = []
    for slack in slacks:
        r = tie_break(p, sol.assignment, sol.centres, slack=slack, time_limit_s=budget, seed=args.seed)
        recomputed = p.objective_value(r.assignment, r.centres)
        rows.append({"slack": slack, "objective_before": r.objective_before, "objective_after": recomputed,
                     "objective_change_pct": 100 * (recomputed - r.objective_before) / r.objective_before,
                     "limit": r.limit, "cut_edges_before": r.edges_before,
                     "cut_edges_after": int(cut_edges(p.graph, r.assignment)), "changed": r.changed,
                     "time_s": r.time_s, "valid": not check_plan(p, r.assignment) and recomputed <= r.limit * (1 + 1e-9)})
        for line in r.log:
            print(line, file=sys.stderr, flush=True)
        write_rows(args.out, header, rows, complete=False)
    write_rows(args.out, header, rows, complete=True)
    return finish(args.out, table(rows))


if __name__ == "__main__":
    sys.exit(main())
