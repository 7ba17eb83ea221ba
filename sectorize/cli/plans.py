"""``sectorize plans``: keep accepted plans in a registry, compare them, export the routing contract.

Sub-commands (each takes ``--registry DIR``, default ``sectorize-plans``)::

    sectorize plans add RUN_FOLDER --effective-from 2027-01-01 [--parent ID] [--note TEXT] [--allow-invalid]
    sectorize plans publish ID --effective-from 2027-03-01 [--note TEXT]       (sectorize.cli.plans_cycle)
    sectorize plans import TABLE --key insee --sector COL [--worker COL] [--team team.toml] [--config s.toml]
    sectorize plans edit ID --move INSEE=SECTOR ... [--lock INSEE|SECTOR ...] [--rebalance]
    sectorize plans list
    sectorize plans show ID
    sectorize plans diff ID1 ID2 [--out moved.csv]
    sectorize plans export ID --out DIR [--format csv,parquet,geojson,gpkg,xlsx] [--suppress-below 5]
    sectorize plans map ID --out plan.html

A thin shell over :class:`sectorize.store.registry.Registry` and
:func:`sectorize.store.contract.export_contract`. Exit codes: 0 ok, 2 invalid input
(including a plan that fails the independent checks ``plans add`` runs again),
4 plan or registry not found.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from datetime import date
from pathlib import Path

from sectorize.cli.exit_codes import HANDLED, ExitCode, report

#: Registry folder used when ``--registry`` is not given.
DEFAULT_REGISTRY = Path("sectorize-plans")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write it YYYY-MM-DD, e.g. 2027-01-01") from None


def _threshold(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= 1, e.g. 5")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sectorize plans ...`` to the CLI's sub-parsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY,
                        help=f"registry folder (default: {DEFAULT_REGISTRY})")
    plans = sub.add_parser("plans", help="plan registry: add, import, edit, publish, list, show, diff, export plans")
    actions = plans.add_subparsers(dest="plans_command", required=True)

    add = actions.add_parser("add", parents=[common], help="store a run folder as an accepted plan")
    add.add_argument("run_folder", type=Path, help="a folder written by `sectorize run`")
    add.add_argument("--effective-from", type=_day, help="first day the plan is valid (YYYY-MM-DD)")
    add.add_argument("--parent", help="id of the plan this one re-sectorizes")
    add.add_argument("--note", default="", help="free text: who accepted the plan, why")
    add.add_argument("--allow-invalid", action="store_true", help="store a plan that fails the checks, marked invalid "
                     "(for the record: never put in service nor routed)")
    add.set_defaults(handler=_add)

    from sectorize.cli import plans_cycle  # publish, import, edit: the annual cycle (own module)

    plans_cycle.register(actions, common)

    listing = actions.add_parser("list", parents=[common], help="one line per stored plan")
    listing.set_defaults(handler=_list)

    show = actions.add_parser("show", parents=[common], help="a plan's metadata and caseload per sector")
    show.add_argument("plan_id")
    show.set_defaults(handler=_show)

    diff = actions.add_parser("diff", parents=[common], help="communes whose sector or worker changed")
    diff.add_argument("plan_a", help="before")
    diff.add_argument("plan_b", help="after")
    diff.add_argument("--out", type=Path, help="write the changed communes to this CSV (; and decimal comma)")
    diff.set_defaults(handler=_diff)

    export = actions.add_parser("export", parents=[common], help="write the routing contract of a plan")
    export.add_argument("plan_id")
    export.add_argument("--out", type=Path, required=True, help="folder receiving the export folder")
    export.add_argument("--format", default="csv,parquet,geojson,gpkg",
                        help="comma-separated: csv, parquet, geojson, gpkg, xlsx (one Excel workbook, plan.xlsx, "
                             "codes as text cells) (default: csv,parquet,geojson,gpkg)")
    export.add_argument("--suppress-below", type=_threshold,
                        help="export demand columns with counts below N written '<N' (default: no demand)")
    export.set_defaults(handler=_export)

    draw = actions.add_parser("map", parents=[common], help="re-draw a stored plan's map (offline HTML)")
    draw.add_argument("plan_id")
    draw.add_argument("--out", type=Path, required=True, help="HTML file to write (never overwritten)")
    draw.add_argument("--suppress-below", type=_threshold,
                      help="show per-commune demand counts below N as '<N' (maps that leave the team)")
    draw.set_defaults(handler=_map)


def _map(args: argparse.Namespace) -> int:
    def action(registry) -> int:
        from sectorize.store.atomic import atomic_write_text
        from sectorize.report.maps import sector_map
        from sectorize.store.reopen import plan_from_stored

        if args.out.exists():
            print(f"error: {args.out} exists; choose another file name (maps are never overwritten)", file=sys.stderr)
            return ExitCode.BAD_INPUT
        stored = registry.get(args.plan_id)
        plan = plan_from_stored(stored)
        page = sector_map(plan, tiles=plan.scenario.map.tiles, simplify_m=plan.scenario.map.simplify_m,
                          suppress_below=args.suppress_below or plan.scenario.map.suppress_below)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, page.get_root().render())
        print(f"written: {args.out}")
        return ExitCode.OK

    return _run(action, args)


def _run(action, args: argparse.Namespace, *, create: bool = False) -> int:
    """Run ``action(registry)`` and turn the registry's errors into messages and exit codes."""
    from sectorize.store.registry import Registry

    try:
        registry = Registry(args.registry, create=create)
        return int(action(registry))
    except sqlite3.Error as err:  # locked longer than the busy timeout, disk full, damaged file
        print(f"error: registry {args.registry}: {err}; retry, or check the disk and the file", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except HANDLED as err:  # a missing plan or registry is NOT_FOUND, the rest BAD_INPUT
        return report(err)


def _add(args: argparse.Namespace) -> int:
    def action(registry) -> int:
        before = set(registry.list()["id"])
        plan_id = registry.add(args.run_folder, effective_from=args.effective_from, parent_id=args.parent,
                               note=args.note, allow_invalid=args.allow_invalid)
        print(f"{'already stored' if plan_id in before else 'stored'}: {plan_id}")
        if args.effective_from is not None:
            from sectorize.cli.plans_cycle import publication_lines

            print("\n".join(publication_lines(registry, plan_id, args.effective_from)))
        return ExitCode.OK

    return _run(action, args, create=True)


def _list(args: argparse.Namespace) -> int:
    def action(registry) -> int:
        table = registry.list()
        if table.empty:
            print(f"no plan in {args.registry}")
            return ExitCode.OK
        shown = table[["id", "effective_from", "effective_to", "name", "vintage", "valid", "communes",
                       "sectors", "parent_id", "note"]].fillna("")
        print(shown.to_string(index=False))
        from sectorize.cli.plans_cycle import history_text

        print("\n" + history_text(registry.publications()))
        return ExitCode.OK

    return _run(action, args)


def _show(args: argparse.Namespace) -> int:
    def action(registry) -> int:
        plan = registry.get(args.plan_id)
        solve = plan.solve
        lines = [
            f"plan           {plan.id}",
            f"name           {plan.name}",
            f"created        {plan.created}",
            "in force       " + (", ".join(f"{a} to {b or 'open'}" for a, b in plan.periods) or "on no day"),
            f"parent         {plan.parent_id or '-'}",
            f"vintage        {plan.vintage}",
            f"valid          {'yes' if plan.valid else 'NO: ' + '; '.join(plan.violations)}",
            f"solver         {solve.get('backend')} {solve.get('status')}, objective {solve.get('objective')}, "
            f"{solve.get('time_s')} s",
            f"input hash     {plan.input_hash}",
            f"communes       {len(plan.sectors)}",
            f"note           {plan.note or '-'}",
            f"source         {plan.source}",
            "",
        ]
        print("\n".join(lines))
        columns = [c for c in ("group", "sector", "worker_id", "worker_name", "fte", "target", "caseload",
                               "deviation_pct", "within_tolerance", "communes") if c in plan.workers.columns]
        print(plan.workers[columns].to_string(index=False))
        from sectorize.cli.plans_cycle import history_text

        print("\n" + history_text(registry.publications(plan.id)))
        return ExitCode.OK

    return _run(action, args)


def _diff(args: argparse.Namespace) -> int:
    def action(registry) -> int:
        changed = registry.diff(args.plan_a, args.plan_b)
        demand = [c for c in registry.get(args.plan_b).demand_columns if c in changed.columns]
        counts = changed["change"].value_counts()
        print(f"{len(changed)} commune(s) changed from {args.plan_a} to {args.plan_b}: "
              + (", ".join(f"{n} {kind}" for kind, n in counts.items()) or "none"))
        if demand:
            print("patients concerned (demand of the changed communes): " + ", ".join(f"{c} {changed[c].sum():.1f}" for c in demand))
        if args.out is not None:
            from sectorize.store.atomic import atomic_path
            from sectorize.store.export import write_csv

            args.out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(args.out) as tmp:
                write_csv(changed, tmp)
            print(f"written: {args.out}")
        return ExitCode.OK

    return _run(action, args)


def _export(args: argparse.Namespace) -> int:
    def action(registry) -> int:
        from sectorize.store.contract import export_contract

        folder = export_contract(registry.get(args.plan_id), args.out, args.format,
                                 suppress_below=args.suppress_below)
        print(f"written: {folder}")
        return ExitCode.OK

    return _run(action, args)
