"""Command line: a thin shell over :mod:`sectorize.pipeline`.

``sectorize run [--config scenario.toml] [--out DIR]`` runs the scenario (the
packaged AURA default when no file is given) and writes a new run folder;
``sectorize validate --config scenario.toml`` only checks the file.

Exit codes: 0 success; 1 a plan was written but an independent check failed;
2 invalid input (scenario, demand file, travel matrix, units); 3 no plan
meets the constraints (the message says which and why).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from sectorize import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sectorize",
        description="Draw territorial groups and one sector per social worker; write a sector table, a map and KPIs.",
    )
    parser.add_argument("--version", action="version", version=f"sectorize {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario and write a new run folder")
    run.add_argument("--config", type=Path, help="scenario TOML file (default: the packaged AURA scenario)")
    run.add_argument("--out", type=Path, help="output folder (default: output.dir of the scenario)")
    run.add_argument("--time-limit", type=float, help="override model.time_limit_s (seconds)")
    run.add_argument("--quiet", action="store_true", help="print only the run folder and the summary")
    validate = sub.add_parser("validate", help="check a scenario file and print the effective scenario")
    validate.add_argument("--config", type=Path, help="scenario TOML file (default: the packaged one)")
    # other commands live in their own modules: each ``register(sub)`` adds its
    # sub-parser and sets ``handler`` (a function of the parsed arguments that
    # returns the exit code)
    for module in _COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


#: Modules that add sub-commands (``register(subparsers)``); imported when the parser is built.
_COMMAND_MODULES: tuple[str, ...] = ("sectorize.cli_plans", "sectorize.cli_route", "sectorize.cli_rerun", "sectorize.cli_solve", "sectorize.cli_sweep", "sectorize.cli_simulate")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sectorize`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))
    # imports after argument parsing keep `sectorize --help` instant
    from geodata.demand import DemandError
    from sectorize.pipeline import run_and_write
    from sectorize.scenario import ScenarioError, dump_scenario, load_scenario
    from solvers.problem import InfeasibleError

    try:
        scenario = load_scenario(args.config)
    except ScenarioError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command == "validate":
        print(dump_scenario(scenario), end="")
        print(f"# {args.config or 'packaged default'}: valid", file=sys.stderr)
        return 0

    updates = {}
    if args.out is not None:
        updates["output"] = scenario.output.model_copy(update={"dir": args.out})
    if args.time_limit is not None:
        if not args.time_limit > 0:
            print("error: --time-limit must be > 0 seconds", file=sys.stderr)
            return 2
        updates["model"] = scenario.model.model_copy(update={"time_limit_s": args.time_limit})
    if updates:
        scenario = scenario.model_copy(update=updates)

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        folder, plan = run_and_write(scenario, progress)
    except InfeasibleError as err:
        print(f"no plan: {err}", file=sys.stderr)
        return 3
    except (ScenarioError, DemandError, FileNotFoundError, ValueError) as err:
        # bad input: the loaders' messages name the file, line or key
        print(f"error: {err}", file=sys.stderr)
        return 2
    from sectorize.kpi import compute_kpis, kpi_text

    print(kpi_text(compute_kpis(plan)))
    print(f"written: {folder}")
    return 0 if plan.valid else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
