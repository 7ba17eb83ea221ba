"""Command line: a thin shell over :mod:`sectorize.pipeline.run`.

``sectorize run [--config scenario.toml] [--out DIR]`` runs the scenario (the
packaged AURA default when no file is given) and writes a new run folder;
``sectorize validate --config scenario.toml [--repair]`` checks the file and the data it names
(demand, travel matrix, bases) as ``run`` would, solving nothing.

Exit codes: the table of :mod:`sectorize.cli.exit_codes`, the same for every
sub-command (0 done, 1 a check failed, 2 bad input, 3 no plan, 4 not found).
"""

from __future__ import annotations

import argparse
import importlib
import io
import sys
from pathlib import Path

from sectorize import __version__
from sectorize.cli.demand_notes import add_repair_flag, print_demand_notes
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
    add_repair_flag(run)
    validate = sub.add_parser("validate", help="check a scenario file and the data it names (nothing solved); "
                              "print the effective scenario and the demand totals")
    validate.add_argument("--config", type=Path, help="scenario TOML file (default: the packaged one)")
    add_repair_flag(validate)
    # other commands live in their own modules: each ``register(sub)`` adds its
    # sub-parser and sets ``handler`` (a function of the parsed arguments that
    # returns the exit code)
    for module in _COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


#: Modules that add sub-commands (``register(subparsers)``); imported when the parser is built.
_COMMAND_MODULES: tuple[str, ...] = ("sectorize.cli.app", "sectorize.cli.users", "sectorize.cli.plans", "sectorize.cli.route", "sectorize.cli.rerun", "sectorize.cli.solve", "sectorize.cli.sweep", "sectorize.cli.simulate", "sectorize.cli.poster")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sectorize`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))
    # imports after argument parsing keep `sectorize --help` instant
    from sectorize.config.scenario import load_scenario
    from sectorize.pipeline.run import run_and_write

    try:
        scenario = load_scenario(args.config)
        if args.repair:
            scenario = scenario.with_(**{"demand.repair": True})
    except HANDLED as err:
        return report(err)
    if args.command == "validate":
        return _validate(scenario, args.config)

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

    kpis = compute_kpis(plan)
    print(_printable(kpi_text(kpis)))
    # repairs on stderr; the demand left out is on stdout already, by department, in the summary above
    print_demand_notes(plan.notes, out=io.StringIO() if kpis["excluded"] else None)
    print(f"written: {folder} (per worker: workers.csv, kpi.html)")
    return ExitCode.OK if plan.valid else ExitCode.CHECK_FAILED


def _validate(scenario, config: Path | None) -> int:
    """``sectorize validate``: the effective scenario, then every file it names opened and checked
    as ``run`` would (nothing solved); the data report as TOML comments, so the output stays a
    valid scenario file."""
    from sectorize.config.scenario import dump_scenario
    from sectorize.pipeline.validate import check_inputs

    print(dump_scenario(scenario), end="")
    check = check_inputs(scenario)
    print("\n# data check (sectorize validate)")
    for line in check.report_lines():
        print(_printable(f"# {line}"))
    label = config or "packaged default"
    if not check.ok:
        codes = [report(err) for err in check.errors]
        print(f"# {label}: {len(check.errors)} input(s) cannot be used", file=sys.stderr)
        return max(codes)
    print(f"# {label}: valid (scenario and data)", file=sys.stderr)
    return ExitCode.OK


#: Plain stand-ins for the report's symbols, for a standard output that cannot encode them.
_PLAIN = {"≈": "~", "×": "x", "±": "+/-", "Σ": "sum"}


def _printable(text: str) -> str:
    """``text`` as the standard output can encode it (a Windows console redirected to a file may use
    cp1252, which has no ``≈``): symbols replaced by plain stand-ins, then anything else by ``?``."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
        return text
    except LookupError:
        encoding = "ascii"
    except UnicodeEncodeError:
        pass
    for symbol, plain in _PLAIN.items():
        try:
            symbol.encode(encoding)
        except UnicodeEncodeError:
            text = text.replace(symbol, plain)
    return text.encode(encoding, errors="replace").decode(encoding)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
