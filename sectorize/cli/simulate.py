"""``sectorize simulate``: weekly workload simulation of a plan (a thin shell over :mod:`sectorize.report.simulation`).

::

    sectorize simulate --run sectorize-output/20261201-115842 [--weeks 52] [--replications 100]
                       [--seed 0] [--threshold 8] [--seasonality flat|french_hospital|FILE.csv]
                       [--column referrals] [--out sectorize-simulations]

Writes a new folder ``OUT/<YYYYmmdd-HHMMSS>/`` with ``workers.csv`` (per-worker
weekly distribution), ``weekly_counts.csv`` (worker x week, first simulated
year), ``summary.json`` and ``weekly.png``; prints the per-worker table.

Exit codes: 0 written; 2 invalid input (parameter, sector table, seasonality
file); 4 no run folder / no ``sectors.csv`` (:mod:`sectorize.cli.exit_codes`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sectorize.cli.exit_codes import ExitCode, report

#: Folder receiving simulation folders when ``--out`` is not given.
DEFAULT_OUT = Path("sectorize-simulations")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` sub-command."""
    p = sub.add_parser("simulate", help="simulate weekly new patients and travel per worker under a plan")
    p.add_argument("--run", type=Path, required=True, help="run folder written by `sectorize run` (or its sectors.csv)")
    p.add_argument("--weeks", type=int, default=52, help="weeks per simulated year (default 52)")
    p.add_argument("--replications", type=int, default=100, help="simulated years (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same results (default 0)")
    p.add_argument("--threshold", type=float, default=8,
                   help="a week with more than this many new patients is overloaded (default 8)")
    p.add_argument("--seasonality", default="flat",
                   help="flat, french_hospital (assumed profile: quieter New Year, August, last week of "
                        "December) or a CSV file of 52 weekly factors (default flat)")
    p.add_argument("--column", default="referrals", help="demand column with referrals per year (default referrals)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run the simulation, write its folder, print the per-worker table."""
    from sectorize.report.simulation import SimulationError, simulate, write_simulation

    try:
        result = simulate(args.run, weeks=args.weeks, replications=args.replications, seed=args.seed,
                          threshold=args.threshold, seasonality=args.seasonality, column=args.column)
    except FileNotFoundError as err:  # the run folder asked about
        print(f"not found: {err}", file=sys.stderr)
        return ExitCode.NOT_FOUND
    except SimulationError as err:
        return report(err)
    try:
        folder = write_simulation(result, args.out)
    except OSError as err:
        print(f"error: cannot write to {args.out}: {err}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    table = result.worker_table()
    columns = ["sector", "worker_id", "weekly_mean", "weekly_p90", "weekly_max", "weeks_above", "travel_week_mean"]
    print(f"{result.replications} simulated years x {result.weeks} weeks, seasonality {result.seasonality}, "
          f"seed {result.seed}; weeks above = more than {result.threshold:g} new patients (per year); "
          "travel = one trip per new patient (minutes/week)")
    print(table[columns].round(2).to_string(index=False))
    print(f"written: {folder}")
    return ExitCode.OK
