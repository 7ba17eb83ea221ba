"""Command line: a thin shell over :mod:`sectorize.pipeline.run`.

``sectorize run [--config scenario.toml] [--out DIR]`` runs the scenario (the
packaged AURA default when no file is given) and writes a new run folder;
``sectorize validate --config scenario.toml`` only checks the file.

Exit codes: the table of :mod:`sectorize.cli.exit_codes`, the same for every
sub-command (0 done, 1 a check failed, 2 bad input, 3 no plan, 4 not found).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from sectorize import __version__
from sectorize.cli.exit_codes import HANDLED, ExitCode, report


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
_COMMAND_MODULES: tuple[str, ...] = ("sectorize.cli.plans", "sectorize.cli.route", "sectorize.cli.rerun", "sectorize.cli.solve", "sectorize.cli.sweep", "sectorize.cli.simulate")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sectorize`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))
    # imports after argument parsing keep `sectorize --help` instant
    from sectorize.config.scenario import dump_scenario, load_scenario
    from sectorize.pipeline.run import run_and_write

    try:
        scenario = load_scenario(args.config)
    except HANDLED as err:
        return report(err)
    if args.command == "validate":
        print(dump_scenario(scenario), end="")
        print(f"# {args.config or 'packaged default'}: valid", file=sys.stderr)
        return ExitCode.OK

    updates = {}
    if args.out is not None:
        updates["output"] = scenario.output.model_copy(update={"dir": args.out})
    if args.time_limit is not None:
        if not args.time_limit > 0:
            print("error: --time-limit must be > 0 seconds", file=sys.stderr)
            return ExitCode.BAD_INPUT
        updates["model"] = scenario.model.model_copy(update={"time_limit_s": args.time_limit})
    if updates:
        scenario = scenario.model_copy(update=updates)

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        folder, plan = run_and_write(scenario, progress)
    except HANDLED as err:  # the loaders' messages name the file, line or key
        return report(err)
    from sectorize.report.kpi import compute_kpis, kpi_text

    print(kpi_text(compute_kpis(plan)))
    print(f"written: {folder}")
    return ExitCode.OK if plan.valid else ExitCode.CHECK_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
