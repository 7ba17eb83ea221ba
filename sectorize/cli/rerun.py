"""``sectorize rerun``: the annual re-run from a previous plan (a thin shell over :mod:`sectorize.pipeline.rerun`).

    sectorize rerun --previous sectorize-output/20261201-101500 --demand demand-2027.csv \\
                    [--team team-2027.toml] [--config scenario.toml] [--max-moved-pct 2] [--no-frontier]

The scenario is the previous run's ``scenario.toml`` (or ``--config``);
``--demand`` replaces its demand by a file of aggregated counts per commune
(read with the scenario's demand settings), ``--team`` replaces its team by the
``[team]`` table of a TOML file, whose optional ``[rerun]`` table (handover,
caps, locked communes) is applied too. ``--repair`` sets ``demand.repair = true``
(see :func:`geodata.demand.read_demand`). Without ``--demand`` (a team-only
re-run) the demand is the counts stored with the previous plan (its sector
table), so the file it was read from is not needed.

Exit codes: 0 success; 1 a plan was written but an independent check failed;
2 invalid input; 3 no plan meets the constraints within the caps.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from sectorize.cli.demand_notes import add_repair_flag, print_demand_notes
from sectorize.cli.exit_codes import HANDLED, ExitCode, report


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``rerun`` sub-command."""
    p = sub.add_parser("rerun", help="re-sectorize from a previous plan, moving as few patients as possible")
    p.add_argument("--previous", required=True,
                   help="previous plan: a run folder, or a plan id with --registry")
    p.add_argument("--registry", type=Path, help="plan registry folder, when --previous is a plan id")
    p.add_argument("--config", type=Path, help="scenario TOML (default: the previous plan's scenario.toml)")
    p.add_argument("--demand", type=Path, help="this year's demand file (aggregated counts per commune)")
    p.add_argument("--sheet", help="sheet of an .xlsx --demand file (default: the first visible sheet)")
    p.add_argument("--team", type=Path, help="TOML file with this year's [team] (and optional [rerun])")
    p.add_argument("--max-moved-pct", type=float, help="cap: at most this %% of patients in follow-up change referent")
    p.add_argument("--max-moved-patients", type=float, help="cap: at most this many patients change referent")
    p.add_argument("--max-moved-communes", type=int, help="cap: at most this many communes change sector")
    p.add_argument("--move-penalty", type=float, help="caseload-minutes per patient moved (rerun.move_penalty_min)")
    p.add_argument("--transition", choices=["grandfathering", "immediate"], help="transition rule")
    p.add_argument("--no-frontier", action="store_true", help="skip the trade-off table (faster)")
    p.add_argument("--out", type=Path, help="output folder (default: output.dir of the scenario)")
    p.add_argument("--time-limit", type=float, help="override model.time_limit_s (seconds)")
    p.add_argument("--quiet", action="store_true", help="print only the summary and the run folder")
    add_repair_flag(p)
    p.set_defaults(handler=main)


def build_scenario(args: argparse.Namespace, previous):
    """The re-run scenario: the previous plan's scenario (or ``--config``) with this
    year's demand, team and options."""
    from sectorize.config.scenario import (ScenarioError, dump_scenario, load_scenario, merge_team_file,
                                           scenario_from_dict)

    if args.config is not None:
        data = tomllib.loads(dump_scenario(load_scenario(args.config)))
        source = args.config
    elif previous.scenario_toml is not None:
        data = tomllib.loads(previous.scenario_toml)
        source = f"scenario of {previous.source}"
    else:
        raise ScenarioError(f"{previous.source}: no scenario.toml to start from; give --config")
    if args.demand is not None:
        if not args.demand.is_file():
            raise ScenarioError(f"--demand {args.demand}: no such file")
        demand = dict(data.get("demand", {}))
        demand.update(source="file", file=str(args.demand.resolve()))
        demand.pop("sheet", None)  # last year's sheet name does not carry over to this year's file
        if getattr(args, "sheet", None):
            demand["sheet"] = args.sheet
        data["demand"] = demand
    else:  # a team-only re-run reads the previous scenario's demand again
        previous_demand = data.get("demand", {})
        gone = previous_demand.get("source") == "file" and not Path(str(previous_demand.get("file", ""))).is_file()
        if gone and not _has_stored_demand(previous, data):
            raise ScenarioError(
                f"no --demand given, and the demand file of the previous scenario ({previous_demand.get('file')}) "
                "no longer exists; give this year's (or last year's) counts with --demand FILE")
    if getattr(args, "repair", False):
        data["demand"] = {**data.get("demand", {}), "repair": True}
    if args.team is not None:
        data = merge_team_file(data, args.team)
    rerun = dict(data.get("rerun", {}))
    for option, key in (("max_moved_pct", "max_moved_pct"), ("max_moved_patients", "max_moved_patients"),
                        ("max_moved_communes", "max_moved_communes"), ("move_penalty", "move_penalty_min"),
                        ("transition", "transition")):
        value = getattr(args, option)
        if value is not None:
            rerun[key] = value
    data["rerun"] = rerun
    if args.out is not None:
        data["output"] = {**data.get("output", {}), "dir": str(args.out)}
    if args.time_limit is not None:
        data["model"] = {**data.get("model", {}), "time_limit_s": args.time_limit}
    try:
        return scenario_from_dict(data, source=args.config)
    except ScenarioError as err:
        raise ScenarioError(f"{source}: {err}") from None


def _has_stored_demand(previous, data: dict) -> bool:
    """Whether the previous plan's sector table holds every demand column the scenario needs."""
    sectors = getattr(previous, "sectors", None)
    if sectors is None:
        return False
    demand = data.get("demand", {})
    columns = demand.get("columns") or list(demand.get("weights", {"referrals": 1, "home_care": 0.5}))
    return all(c in sectors.columns for c in columns)


def main(args: argparse.Namespace) -> int:
    """Run the re-run; print the summary and the new run folder."""
    from sectorize.report.kpi import compute_kpis, kpi_text
    from sectorize.pipeline.rerun import load_previous, rerun_and_write, stored_demand, summary_text

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        previous = load_previous(args.previous, args.registry)
        scenario = build_scenario(args, previous)
        # a team-only re-run keeps the counts the previous plan was drawn with
        demand = None
        if args.demand is None and scenario.demand.source == "file":
            demand = stored_demand(previous, scenario.demand.demand_columns)
        out, result = rerun_and_write(scenario, previous, progress, with_frontier=not args.no_frontier,
                                      demand=demand)
    except HANDLED as err:
        return report(err)
    kpis = compute_kpis(result.plan)
    print(kpi_text(kpis))
    # repairs on stderr; the demand left out by department on stdout, unless the summary shows it already
    print_demand_notes(result.plan.notes, repairs_only=bool(kpis.get("excluded")))
    print(summary_text(result))
    print(f"written: {out}")
    return ExitCode.OK if result.plan.valid else ExitCode.CHECK_FAILED
