"""Certificates on AURA: the plan, its proven lower bound and the gap, with the default settings.

Each run is ``solvers.engine.solve(problem, backend, time_limit_s=budget, seed)`` on an AURA
case of ``bench_peers.AURA_CASES`` (default ``aura-k11-5pc``: 4,025 communes, k = 11, ±5 %,
population x squared km), with work budgets (``EngineSettings(deterministic=True)``, as
``sectorize run``; ``--wall`` for wall-clock budgets, as ``sectorize solve``): the same plan,
bound and gap on any machine and under any load, only the wall time varies. The plan is
re-checked (contiguity, balance) by :func:`solvers.check.check_plan`; *gap* = (plan - bound) /
plan. Targets (issue 21): gap at most 1.5 % in 60 s and 1.0 % in 600 s.

Usage::

    python benchmarks/bench_certificate.py                       # auto, 60 s and 600 s
    python benchmarks/bench_certificate.py --budgets 60 --backends auto,lns

The table goes to stdout; rows to ``results/certificate.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from solvers.check import check_plan
from solvers.engine import solve
from solvers.options import EngineSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peers import AURA_CASES, aura_case  # noqa: E402
from common import RESULTS, YES_NO, command_line, finish, fmt, machine_line, markdown_table, timestamp, write_rows  # noqa: E402

DEFAULT_OUT = RESULTS / "certificate.json"


def run(case_name: str, backend: str, budget: float, seed: int, deterministic: bool) -> dict:
    """One solve with its certificate and the independent check."""
    problem = aura_case(case_name).problem
    began = time.monotonic()
    sol = solve(problem, backend=backend, time_limit_s=budget, seed=seed,  # type: ignore[arg-type]
                settings=EngineSettings(deterministic=deterministic))
    return {"case": case_name, "backend": backend, "budget_s": budget, "seed": seed, "deterministic": deterministic,
            "objective": sol.objective, "bound": sol.bound, "gap": sol.gap, "status": sol.status,
            "valid": not check_plan(problem, sol.assignment), "wall_s": time.monotonic() - began,
            "work_s": sol.work_s, "capped": sol.capped,
            "bound_log": [line for line in sol.log if line.startswith(("Lagrangian", "lower bound"))]}


def table(rows: list[dict]) -> str:
    head = ("case", "backend", "budget s", "budgets", "seed", "objective", "bound", "gap", "valid", "wall s", "work s")
    return markdown_table(head, ([
        r["case"], r["backend"], f"{r['budget_s']:g}", "work" if r["deterministic"] else "wall", str(r["seed"]),
        fmt(r["objective"]), fmt(r["bound"]), fmt(None if r["gap"] is None else 100 * r["gap"], ".2f") + " %",
        YES_NO[r["valid"]], fmt(r["wall_s"], ".1f"), fmt(r["work_s"], ".1f"),
    ] for r in rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="aura-k11-5pc", help=f"comma-separated of {', '.join(AURA_CASES)}")
    ap.add_argument("--budgets", default="60,600", help="comma-separated seconds per solve")
    ap.add_argument("--backends", default="auto", help="comma-separated: auto, lns")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--wall", action="store_true", help="wall-clock budgets instead of work budgets")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    header = {"benchmark": "certificate", "command": command_line(__file__, argv), "timestamp": timestamp(),
              "machine": machine_line()}
    rows: list[dict] = []
    for case in args.cases.split(","):
        for backend in args.backends.split(","):
            for budget in (float(b) for b in args.budgets.split(",")):
                for seed in (int(s) for s in args.seeds.split(",")):
                    rows.append(run(case, backend, budget, seed, not args.wall))
                    r = rows[-1]
                    print(f"{case} {backend} {budget:g} s seed {seed}: {fmt(r['objective'])} bound {fmt(r['bound'])} "
                          f"gap {fmt(None if r['gap'] is None else 100 * r['gap'], '.2f')} % ({r['wall_s']:.0f} s)",
                          file=sys.stderr, flush=True)
                    write_rows(args.out, header, rows, complete=False)
    write_rows(args.out, header, rows, complete=True)
    return finish(args.out, table(rows))


if __name__ == "__main__":
    sys.exit(main())
