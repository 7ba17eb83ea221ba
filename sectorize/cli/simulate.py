"""``sectorize simulate``: weekly workload simulation of a plan (a thin shell over :mod:`sectorize.report.simulation`).

::

    sectorize simulate --run sectorize-output/20261201-115842 [--weeks 52] [--replications 100]
                       [--seed 0] [--threshold 8] [--seasonality flat|french_hospital|FILE.csv]
                       [--column referrals|PATTERN|#N] [--out sectorize-simulations]

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
    p.add_argument("--column", default=None,
                   help="demand column of sectors.csv with referrals per year: a header, a pattern such as "
                        "'Nb signalements *' or a position '#N' (default: the role column 'referrals')")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.set_defaults(handler=main)


#: Columns of ``sectors.csv`` that are not demand.
_NOT_DEMAND = ("insee", "name", "dep", "group", "sector", "worker_id", "worker_name", "workload", "travel_min")


def referrals_column(run: Path, given: str | None) -> str:
    """The column of the run's ``sectors.csv`` holding referrals per year.

    Demand columns are named by their role when the scenario names them in
    ``[demand.columns]`` (``referrals = "Nb signalements *"``), so the
    default ``referrals`` works whatever the year in the file's headers.
    ``given`` (``--column``) may be a header, a pattern or ``"#N"``
    (:func:`geodata.demand.find_column`); it must match one column.

    Raises
    ------
    SimulationError
        No ``referrals`` column and no ``--column``, or a pattern matching
        several columns (the demand columns are listed).
    """
    from geodata.demand import find_column
    from geodata.tables import decode
    from sectorize.report.simulation import DEFAULT_COLUMN, SimulationError

    sectors = run if run.is_file() else run / "sectors.csv"
    if not sectors.is_file():
        return given or DEFAULT_COLUMN  # the simulation says what is missing
    first = decode(sectors.read_bytes())[0].splitlines()[0] if sectors.stat().st_size else ""
    header = [c.strip().strip('"') for c in first.split(";")]
    demand = [c for c in header if c not in _NOT_DEMAND]
    if given is None:
        if DEFAULT_COLUMN in header:
            return DEFAULT_COLUMN
        raise SimulationError(
            f"{sectors}: no {DEFAULT_COLUMN!r} column; the demand columns of this run are {demand}. Name the "
            "referrals column with --column (a header, a pattern such as 'Nb signalements *', or '#N'), or "
            "give the roles in the scenario ([demand.columns] referrals = \"<header or pattern>\") and run again")
    matches = find_column(header, given)
    if len(matches) > 1:
        raise SimulationError(f"--column {given!r} matches {len(matches)} columns of {sectors}: {matches}; "
                              "make it more precise")
    return matches[0] if matches else given


def main(args: argparse.Namespace) -> int:
    """Run the simulation, write its folder, print the per-worker table."""
    from sectorize.report.simulation import SimulationError, simulate, write_simulation

    try:
        column = referrals_column(args.run, args.column)
        result = simulate(args.run, weeks=args.weeks, replications=args.replications, seed=args.seed,
                          threshold=args.threshold, seasonality=args.seasonality, column=column)
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
