"""``sectorize route`` and ``sectorize serve``: the routing lookup from the command line and over HTTP.

::

    sectorize route --insee 69388 | --postcode 42000 | --lat 45.74 --lon 4.88
                    [--run FOLDER | --registry DIR [--plan ID] [--on YYYY-MM-DD]] [--json]
                    [--outside nearest|worker] [--outside-worker ID] [--outside-department DEP=SECTOR ...]
    sectorize serve (--run FOLDER | --registry DIR [--plan ID]) [--host 127.0.0.1] [--port 8000]

Without ``--run`` or ``--registry``, the plan is the run folder named in
``sectorize-output/LATEST``; with ``--registry``, the plan in force today
(or ``--on``) unless ``--plan`` names one. A thin shell over
:class:`sectorize.serve.routing.Router` and :mod:`sectorize.serve.service`.

Exit codes of ``route``: 0 routed, ambiguous or outside the region; 2 invalid
input; 4 not found (unknown code, no plan, no run folder); see :mod:`sectorize.cli.exit_codes`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from sectorize.cli.exit_codes import HANDLED, ExitCode, report

#: Output folder whose ``LATEST`` run is used when no plan is given.
DEFAULT_OUTPUT = Path("sectorize-output")

#: Exit code of each route status.
EXIT_CODES = {"routed": ExitCode.OK, "ambiguous": ExitCode.OK, "outside_region": ExitCode.OK,
              "invalid": ExitCode.BAD_INPUT, "not_found": ExitCode.NOT_FOUND}


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write it YYYY-MM-DD, e.g. 2027-01-01") from None


def _department_rule(text: str) -> tuple[str, str]:
    dep, sep, sector = text.partition("=")
    if not sep or not dep.strip() or not sector.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write DEPARTMENT=SECTOR, e.g. 71=B2")
    return dep.strip().upper(), sector.strip()


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("plan (default: the run named in sectorize-output/LATEST)")
    where.add_argument("--run", type=Path, help="a run folder written by `sectorize run`")
    where.add_argument("--registry", type=Path, help="a plan registry folder (`sectorize plans`)")
    where.add_argument("--plan", help="plan id in the registry (default: the plan in force today)")
    where.add_argument("--on", type=_day, help="with --registry: the plan in force on this day (YYYY-MM-DD)")
    outside = parser.add_argument_group("referrals from outside the region")
    outside.add_argument("--outside", choices=("nearest", "worker"), default="nearest",
                         help="nearest: a point outside goes to the sector nearest by travel time (default); "
                              "worker: everything outside goes to --outside-worker")
    outside.add_argument("--outside-worker", metavar="ID",
                         help="designated worker for codes, postcodes and far points outside the region")
    outside.add_argument("--outside-department", metavar="DEP=SECTOR", type=_department_rule, action="append",
                         default=[], help="sector for a neighbouring department, e.g. 71=B2 (repeat)")
    outside.add_argument("--outside-km", type=float, default=100.0,
                         help="points farther than this (km) from the region get no nearest sector (default 100)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sectorize route`` and ``sectorize serve`` to the CLI's sub-parsers."""
    route = sub.add_parser("route", help="which sector and worker take a referral (INSEE code, postcode or point)")
    key = route.add_argument_group("the patient's home (give one)")
    key.add_argument("--insee", help="INSEE commune code, e.g. 69388 (old codes and Lyon arrondissements accepted)")
    key.add_argument("--postcode", help="postcode, e.g. 42000")
    key.add_argument("--lat", help="latitude, degrees (with --lon)")
    key.add_argument("--lon", help="longitude, degrees (with --lat)")
    _plan_arguments(route)
    route.add_argument("--json", action="store_true", help="print the answer as JSON")
    route.set_defaults(handler=_route)

    serve = sub.add_parser("serve", help="read-only HTTP routing service over one plan")
    _plan_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    serve.set_defaults(handler=_serve)


def load_router(args: argparse.Namespace):
    """The :class:`~sectorize.serve.routing.Router` the arguments name; raises on a missing or bad plan."""
    from sectorize.store.atomic import latest_run
    from sectorize.serve.routing import OutsideRule, Router

    if args.outside == "worker" and not args.outside_worker:
        raise ValueError("--outside worker needs --outside-worker ID")
    if not args.outside_km > 0:
        raise ValueError(f"--outside-km must be > 0 km, got {args.outside_km}")
    outside = OutsideRule(kind=args.outside, worker_id=args.outside_worker,
                          departments=dict(args.outside_department), max_km=args.outside_km)
    if args.run is not None and args.registry is not None:
        raise ValueError("give either --run or --registry, not both")
    if (args.plan is not None or args.on is not None) and args.registry is None:
        raise ValueError("--plan and --on need --registry DIR")
    if args.registry is not None:
        return Router.from_registry(args.registry, args.plan, args.on, outside=outside)
    folder = args.run
    if folder is None:
        folder = latest_run(DEFAULT_OUTPUT)
        if folder is None:
            raise FileNotFoundError(
                f"no run found: {DEFAULT_OUTPUT / 'LATEST'} does not exist; run `sectorize run` first, "
                "or give --run FOLDER or --registry DIR"
            )
    return Router.from_run_folder(folder, outside=outside)


def _open(args: argparse.Namespace):
    """``(router, exit code)``: the router, or ``None`` and the exit code with the message printed."""
    try:
        return load_router(args), ExitCode.OK
    except (FileNotFoundError, LookupError) as err:  # no registry, no plan in force, unknown plan id
        print(f"not found: {err}", file=sys.stderr)
        return None, ExitCode.NOT_FOUND
    except HANDLED as err:
        return None, report(err)


def format_route(route) -> str:
    """Human-readable lines for a :class:`~sectorize.serve.routing.Route`."""
    lines = [f"status: {route.status}"]
    if route.sector is not None:
        lines.append(f"sector: {route.sector} (group {route.group}), worker {route.worker_id} {route.worker_name}")
    if route.insee is not None:
        lines.append(f"commune: {route.insee} {route.name}")
    lines.append(f"rule: {route.rule}")
    for c in route.candidates:
        share = "" if c.share is None else f" {c.share:.0%}"
        lines.append(f"  candidate: {c.sector} (group {c.group}) {c.worker_id} {c.worker_name}{share}")
    lines.append(f"plan: {route.plan_id} ({route.vintage or 'vintage unknown'})")
    return "\n".join(lines)


def _route(args: argparse.Namespace) -> int:
    router, code = _open(args)
    if router is None:
        return code
    route = router.route(insee=args.insee, postcode=args.postcode, lat=args.lat, lon=args.lon)
    if args.json:
        print(json.dumps(route.as_dict(), ensure_ascii=False))
    else:
        print(format_route(route))
    return EXIT_CODES[route.status]


def _serve(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        print(f"error: --port must be 1..65535, got {args.port}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    router, code = _open(args)
    if router is None:
        return code
    from sectorize.serve.service import serve

    print(f"serving plan {router.info.plan_id} ({router.communes} communes) on http://{args.host}:{args.port}",
          file=sys.stderr)
    serve(router, host=args.host, port=args.port)
    return ExitCode.OK
