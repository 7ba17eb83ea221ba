"""``sectorize sweep``: solve every variation x seed of a sweep file (a thin shell over :mod:`sectorize.pipeline.sweep`).

    sectorize sweep sweep.toml [--workers 2] [--scheduler tcp://host:8786] \\
                    [--registry plans] [--out sweep-output]

Solves run in local processes, or on a Dask distributed cluster when
``--scheduler`` gives its address. One line is printed per finished solve,
then the results table; ``--out`` writes it as ``sweep-<time>.csv`` (French
Excel CSV) with every solve's KPIs in ``sweep-<time>.json``; ``--registry``
stores each valid plan in the plan store.

Exit codes: 0 every solve gave a valid plan; 1 some solves failed (the others
are reported and kept); 2 invalid input (sweep file, base scenario, scheduler
address); 3 no solve gave a valid plan.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sectorize.cli.exit_codes import ExitCode


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` sub-command."""
    p = sub.add_parser("sweep", help="solve every variation x seed of a sweep file, in parallel")
    p.add_argument("sweep_file", type=Path, help="sweep TOML file (base scenario, [[variations]], seeds)")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: local processes)")
    p.add_argument("--workers", type=int, help="local worker processes (default: number of cores; 1 = one after another)")
    p.add_argument("--registry", type=Path, help="plan registry folder: store each valid plan there")
    p.add_argument("--out", type=Path, help="folder for the results table (CSV) and KPIs (JSON)")
    p.add_argument("--connect-timeout", type=float, default=15.0,
                   help="seconds to wait for the Dask scheduler (default 15)")
    p.add_argument("--quiet", action="store_true", help="print only the results table")
    p.set_defaults(handler=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from sectorize.store.registry import RegistryError
    from sectorize.config.sweep import SweepError, base_scenario, load_sweep
    from sectorize.pipeline.sweep import run_sweep, write_results

    try:
        sweep = load_sweep(args.sweep_file)
        base_scenario(sweep)
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if args.workers is not None and args.workers < 1:
        print("error: --workers must be >= 1", file=sys.stderr)
        return ExitCode.BAD_INPUT

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    client = None
    if args.scheduler:
        try:
            from distributed import Client
        except ImportError:
            print("error: --scheduler needs dask.distributed: pip install 'sectorize[cluster]' "
                  "(or 'dask[distributed]')", file=sys.stderr)
            return ExitCode.BAD_INPUT
        try:
            client = Client(args.scheduler, timeout=f"{args.connect_timeout}s")
        except (OSError, TimeoutError, ValueError) as err:
            print(f"error: cannot reach the Dask scheduler at {args.scheduler} ({err}); "
                  "check the address (tcp://host:8786) and that the scheduler runs", file=sys.stderr)
            return ExitCode.BAD_INPUT
    progress(f"sweep {sweep.name!r}: {len(sweep.variations)} variation(s) x {len(sweep.seeds)} seed(s) = "
             f"{sweep.size} solves on " + (f"Dask {args.scheduler}" if client else "local processes"))
    try:
        result = run_sweep(sweep, client=client, workers=args.workers, registry=args.registry, progress=progress)
    except (SweepError, RegistryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    finally:
        if client is not None:
            client.close()
    shown = result.table.drop(columns=["valid"]).copy()
    shown["error"] = shown["error"].str.slice(0, 80)
    print(shown.to_string(index=False, float_format=lambda x: f"{x:,.1f}"))
    print(f"{len(result.table) - len(result.failed)}/{len(result.table)} valid plans, "
          f"{result.wall_s:.1f} s ({result.executor})")
    for row in result.failed.itertuples():
        print(f"failed: {row.variation} seed {row.seed}: {row.status}: {row.error}", file=sys.stderr)
    if args.out is not None:
        csv_path, json_path = write_results(result, args.out)
        print(f"written: {csv_path}\nwritten: {json_path}")
    if result.failed.empty:
        return ExitCode.OK
    return ExitCode.NO_PLAN if len(result.failed) == len(result.table) else ExitCode.CHECK_FAILED
