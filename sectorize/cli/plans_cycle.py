"""``sectorize plans publish | import | edit``: the manager's annual cycle on the registry.

re-run -> review -> adjust (``plans edit``) -> publish (``plans publish``) -> route::

    sectorize plans publish ID --effective-from 2027-03-01 [--note TEXT]
    sectorize plans import TABLE --key insee --sector COL [--worker COL] [--group COL] [--sheet NAME]
                                 [--team team.toml] [--config scenario.toml] [--effective-from DATE] [--out DIR]
                                 [--allow-invalid]
    sectorize plans edit ID --move INSEE=SECTOR ... [--lock INSEE|SECTOR ...] [--rebalance] [--time-limit S]
                            [--out DIR] [--note TEXT] [--allow-invalid]

Registered by :func:`sectorize.cli.plans.register`; every command takes
``--registry DIR``. Exit codes (:mod:`sectorize.cli.exit_codes`): 0 done;
1 a plan was written and stored marked invalid (``--allow-invalid``); 2 bad
input (argument, table file and row, an invalid plan to publish), nothing
stored; 3 no plan found (``edit --rebalance``); 4 plan or registry not found.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tomllib
from datetime import date
from pathlib import Path

import pandas as pd

from sectorize.cli.exit_codes import HANDLED, ExitCode, report


def register(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``publish`` (and the other cycle commands) to the ``plans`` sub-parsers."""
    from sectorize.cli.plans import _day

    publish = actions.add_parser(
        "publish", parents=[common],
        help="put a stored plan in service from a day (also to roll back to an earlier plan)",
        description="Put a stored, valid plan in service from --effective-from. The plan in force on a day is the "
                    "plan of the latest publication on or before it; a later publication for the same day "
                    "supersedes the earlier one (both stay on record). To withdraw a wrong plan, publish the "
                    "right one (often the previous plan) from the day it should stop.")
    publish.add_argument("plan_id", help="id of a stored plan (see `sectorize plans list`)")
    publish.add_argument("--effective-from", type=_day, required=True, help="first day in force (YYYY-MM-DD)")
    publish.add_argument("--note", default="", help="who decided, why (kept with the publication)")
    publish.set_defaults(handler=_publish)

    imp = actions.add_parser(
        "import", parents=[common],
        help="bring an existing assignment table (today's hand-made plan) in as a checked plan",
        description="Read a table with one row per commune (INSEE code and sector, optionally worker and group), "
                    "build the plan on the scenario's region, team and demand, write its run folder (KPIs, map, "
                    "sectors.csv, ...) and store it in the registry: the baseline a re-run starts from. Every "
                    "problem of the table is reported with its line and column; nothing is written on error.")
    imp.add_argument("table", type=Path, help="CSV (';' or ',', any usual encoding), Excel workbook (.xlsx) "
                     "or Parquet")
    imp.add_argument("--sheet", help="worksheet of an Excel workbook (default: the first visible one)")
    imp.add_argument("--key", default="insee", help="column of INSEE codes (name, pattern like 'Code*', or '#1'; "
                     "default: insee)")
    imp.add_argument("--sector", required=True, help="column of sectors; without --worker each sector must be a "
                     "worker id or name of the team")
    imp.add_argument("--worker", help="column of worker ids (one worker per sector)")
    imp.add_argument("--group", help="column of territorial groups (default: the team's groups, else drawn from "
                     "the sectors as `sectorize run` does)")
    imp.add_argument("--config", type=Path, help="scenario TOML: region, demand, weights, tolerances, team "
                     "(default: the packaged one)")
    imp.add_argument("--team", type=Path, help="TOML file whose [team] (and [groups]) replace the scenario's")
    imp.add_argument("--out", type=Path, help="folder receiving the run folder (default: output.dir of the scenario)")
    imp.add_argument("--effective-from", type=_day, help="also publish the plan from this day (YYYY-MM-DD)")
    imp.add_argument("--note", default="", help="free text kept with the plan (and its publication)")
    imp.add_argument("--allow-invalid", action="store_true",
                     help="store a plan that fails the checks, marked invalid: a baseline to re-run from, never "
                          "published nor routed")
    imp.set_defaults(handler=_import)

    edit = actions.add_parser(
        "edit", parents=[common],
        help="a new plan from a stored one: move communes, lock what must not move, optionally re-balance",
        description="Make a new plan whose parent is PLAN: each --move INSEE=SECTOR puts a commune in a sector; "
                    "--lock keeps a commune (in its new sector if moved) or a whole sector as it is. Without "
                    "--rebalance nothing else changes and an edit that breaks the checks is refused (or stored "
                    "marked invalid with --allow-invalid); with --rebalance every other commune may move to "
                    "restore balance and contiguity, moving as few patients as possible. Prints the caseloads "
                    "before/after, writes a run folder and stores the plan (publish it with `plans publish`).")
    edit.add_argument("plan_id", help="the stored plan to start from")
    edit.add_argument("--move", action="append", default=[], type=_move, metavar="INSEE=SECTOR",
                      help="put commune INSEE in sector SECTOR (repeat for several)")
    edit.add_argument("--lock", action="append", default=[], metavar="INSEE|SECTOR",
                      help="keep a commune or a whole sector as it is (with --rebalance; repeat for several)")
    edit.add_argument("--rebalance", action="store_true",
                      help="let the other communes move to restore balance and contiguity (fewest patients moved)")
    edit.add_argument("--time-limit", type=_seconds, help="seconds for the re-balance (default: the plan's "
                      "model.time_limit_s)")
    edit.add_argument("--out", type=Path, default=Path("sectorize-output"),
                      help="folder receiving the run folder (default: sectorize-output)")
    edit.add_argument("--note", default="", help="free text kept with the new plan (who decided, why)")
    edit.add_argument("--allow-invalid", action="store_true",
                      help="store an edit that breaks the checks, marked invalid (never published nor routed)")
    edit.set_defaults(handler=_edit)


def _move(text: str) -> tuple[str, str]:
    from sectorize.pipeline.edit import EditError, parse_move

    try:
        return parse_move(text)
    except EditError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--move ")) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds > 0, e.g. 20")
    return value


def _edit(args: argparse.Namespace) -> int:
    from sectorize.cli.plans import _run

    def action(registry) -> int:
        from sectorize.pipeline.edit import edit_plan, write_edit

        if not args.move and not args.rebalance:
            print("error: nothing to do: give at least one --move INSEE=SECTOR, or --rebalance", file=sys.stderr)
            return ExitCode.BAD_INPUT
        stored = registry.get(args.plan_id)
        result = edit_plan(stored, args.move, args.lock, rebalance=args.rebalance, time_limit_s=args.time_limit,
                           progress=_progress)
        plan = result.plan
        if result.changes.empty:
            for note in result.notes:
                print(f"note: {note}")
            print(f"no commune changes sector: the plan would be {stored.id} itself; nothing written or stored")
            return ExitCode.OK
        print(f"edit of {stored.id}: {len(result.changes)} commune(s) change sector "
              f"({result.summary['moved_by_hand']} by hand), {result.summary['moved_patients']:,.1f} "
              f"{result.summary['moved_unit']} concerned")
        if len(result.changes):
            print(result.changes[["insee", "name", "from_sector", "to_sector", "follow_up", "reason"]]
                  .to_string(index=False))
        print("\ncaseload per sector, before -> after:")
        print(result.before_after.to_string(index=False))
        for note in result.notes:
            print(f"note: {note}")
        if plan.violations:
            print("checks: " + "; ".join(plan.violations))
            if not args.allow_invalid:
                hint = "" if args.rebalance else " add --rebalance to let the other communes restore the balance,"
                print(f"error: the edited plan fails the independent checks; nothing was written or stored:{hint} "
                      "change the moves, or pass --allow-invalid to store it marked invalid", file=sys.stderr)
                return ExitCode.BAD_INPUT
        else:
            print("checks: all passed")
        folder = write_edit(result, args.out, progress=_progress)
        print(f"written: {folder}")
        try:
            plan_id = registry.add(folder, parent_id=stored.id, note=args.note, allow_invalid=args.allow_invalid)
        except (sqlite3.Error, *HANDLED) as err:
            code = report(err)
            print(f"the run folder {folder} was written but the plan was NOT stored; store it with "
                  f"`sectorize plans add {folder} --parent {stored.id} --registry {args.registry}`", file=sys.stderr)
            return code
        print(f"stored: {plan_id} (parent {stored.id})" + ("" if plan.valid else ", marked invalid"))
        if plan.valid:
            print(f"to put it in service: sectorize plans publish {plan_id} --effective-from YYYY-MM-DD "
                  f"--registry {args.registry}")
        return ExitCode.OK if plan.valid else ExitCode.CHECK_FAILED

    return _run(action, args)


def _publish(args: argparse.Namespace) -> int:
    from sectorize.cli.plans import _run

    def action(registry) -> int:
        publication = registry.publish(args.plan_id, args.effective_from, note=args.note)
        print("\n".join(publication_lines(registry, publication.plan_id, args.effective_from,
                                          seq=publication.seq)))
        return ExitCode.OK

    return _run(action, args)


def scenario_for(args: argparse.Namespace):
    """The scenario of ``--config`` (or the packaged one), with ``--team`` and ``--out`` applied."""
    from sectorize.config.scenario import (
        ScenarioError,
        default_scenario,
        dump_scenario,
        load_scenario,
        merge_team_file,
        scenario_from_dict,
    )

    scenario = load_scenario(args.config) if args.config is not None else default_scenario()
    data = tomllib.loads(dump_scenario(scenario))
    if getattr(args, "team", None) is not None:
        data = merge_team_file(data, args.team)
    if getattr(args, "out", None) is not None:
        data["output"] = {**data.get("output", {}), "dir": str(args.out)}
    try:
        return scenario_from_dict(data, source=args.config)
    except ScenarioError as err:
        raise ScenarioError(f"{args.team or args.config or 'scenario'}: {err}") from None


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _import(args: argparse.Namespace) -> int:
    from sectorize.pipeline.import_plan import import_and_write
    from sectorize.report.kpi import compute_kpis, kpi_text
    from sectorize.store.registry import Registry

    try:
        if args.table.is_dir() or not args.table.exists():
            raise FileNotFoundError(f"{args.table}: no such table file; give the assignment table (CSV, .xlsx "
                                    "or Parquet)")
        scenario = scenario_for(args)
        folder, result = import_and_write(
            args.table, scenario, progress=_progress, allow_invalid=args.allow_invalid,
            effective_from=args.effective_from, key=args.key, sector=args.sector, worker=args.worker,
            group=args.group, sheet=args.sheet)
    except HANDLED as err:
        return report(err)
    from sectorize.cli.main import _printable

    plan = result.plan
    print(_printable(kpi_text(compute_kpis(plan))))
    for note in result.notes:
        print(f"note: {note}")
    print(f"written: {folder}")
    try:
        registry = Registry(args.registry, create=True)
        plan_id = registry.add(folder, effective_from=args.effective_from, note=args.note,
                               allow_invalid=args.allow_invalid)
    except (sqlite3.Error, *HANDLED) as err:
        code = report(err)
        print(f"the run folder {folder} was written but the plan was NOT stored; store it with "
              f"`sectorize plans add {folder} --registry {args.registry}`", file=sys.stderr)
        return code
    print(f"stored: {plan_id}" + ("" if plan.valid else " (marked invalid: never published nor routed; "
                                                         f"{len(plan.violations)} violation(s) above)"))
    if args.effective_from is not None:
        print("\n".join(publication_lines(registry, plan_id, args.effective_from)))
    return ExitCode.OK if plan.valid else ExitCode.CHECK_FAILED


def publication_lines(registry, plan_id: str, day: date, *, seq: int | None = None,
                      today: date | None = None) -> list[str]:
    """What a publication of ``plan_id`` from ``day`` did, in words: the publication, what it
    supersedes, until when the plan is in force, and a warning for a day already past."""
    today = today or date.today()
    history = registry.publications()
    mine = history[(history["plan_id"] == plan_id) & (history["effective_from"] == day)]
    if seq is not None:
        mine = mine[mine["seq"] == seq]
    if mine.empty:
        return []
    row = mine.iloc[-1]
    lines = [f"published: {plan_id} in force from {day.isoformat()} (publication #{row['seq']})"]
    if row["superseded_by"] is not None:  # (a re-publication of the plan deciding that day returns it)
        lines[0] += f", superseded by #{row['superseded_by']}"
    older = history[(history["effective_from"] == day) & (history["superseded_by"] == row["seq"])]
    for other in older.itertuples(index=False):
        lines.append(f"supersedes: publication #{other.seq} of {other.plan_id} for the same day (kept on record)")
    if row["in_force_to"] is not None:
        following = history[(history["effective_from"] == row["in_force_to"]) & history["superseded_by"].isna()]
        after = following["plan_id"].iloc[0] if len(following) else "?"
        lines.append(f"until: {row['in_force_to'].isoformat()}, when {after} takes over")
    else:
        lines.append("until: further notice (no later publication)")
    if day < today:
        lines.append(f"note: {day.isoformat()} is past: the plan in force from then on is now {plan_id} for every "
                     "lookup made from now on (the routing service, `sectorize route --on`)")
    return lines


def history_text(history: pd.DataFrame) -> str:
    """The publication history (:meth:`sectorize.store.registry.Registry.publications`) as a table."""
    if history.empty:
        return "publications: none (no plan is in service; `sectorize plans publish ID --effective-from DATE`)"
    shown = pd.DataFrame({
        "#": history["seq"], "plan": history["plan_id"], "effective_from": history["effective_from"],
        "published_at": history["published_at"], "status": history["status"],
        "note": history["note"].fillna(""),
    })
    return "publications (in order of publication):\n" + shown.to_string(index=False)
