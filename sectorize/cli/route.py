"""``sectorize route`` and ``sectorize serve``: the routing lookup from the command line and over HTTP.

::

    sectorize route --insee 69388 | --postcode 42000 | --lat 45.74 --lon 4.88
                    [--run FOLDER | --registry DIR [--plan ID]] [--on YYYY-MM-DD] [--json]
                    [--outside nearest|worker] [--outside-worker ID] [--outside-department DEP=SECTOR ...]
    sectorize serve (--run FOLDER | --registry DIR [--plan ID]) [--host 127.0.0.1] [--port 8000]

Without ``--run`` or ``--registry``, the plan is the run folder named in
``sectorize-output/LATEST``; with ``--registry``, the plan in force on
``--on`` (default: today in Europe/Paris) unless ``--plan`` names one. The
date rules are the HTTP service's (:mod:`sectorize.serve.dated`): over one
plan (``--run``, ``--plan``), an ``--on`` outside its effective dates is not
found (exit 4), and a plan without dates answers for every day with a note;
``serve --registry`` answers each request with the plan in force on its own
``on`` and sees plans added while it runs. A thin shell over
:class:`sectorize.serve.routing.Router`, :mod:`sectorize.serve.dated` and
:mod:`sectorize.serve.service`; ``route --json`` prints the service's answer.

Exit codes of ``route``: 0 routed, ambiguous or outside the region; 2 invalid
input; 4 not found (unknown code, no plan in force that day, no run folder);
see :mod:`sectorize.cli.exit_codes`.
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
    from sectorize.serve.dated import parse_day

    try:
        return parse_day(text, "the date")
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{err}; e.g. 2027-01-01") from None


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
    where.add_argument("--on", type=_day, help="the day of the referral (YYYY-MM-DD): with --registry, the plan in "
                       "force that day (default: today in Europe/Paris); with --run or --plan, checked against "
                       "that plan's dates")
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


def load_plans(args: argparse.Namespace):
    """The plan source the arguments name (:mod:`sectorize.serve.dated`); raises on a missing or bad plan.

    ``--registry``: a :class:`~sectorize.serve.dated.RegistryPlans` (fixed on
    ``--plan`` when given); otherwise a :class:`~sectorize.serve.dated.FixedPlan`
    over the run folder (``--run``, or ``sectorize-output/LATEST``).
    """
    from sectorize.serve.dated import FixedPlan, RegistryPlans
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
    if args.plan is not None and args.registry is None:
        raise ValueError("--plan needs --registry DIR")
    if args.registry is not None:
        return RegistryPlans(args.registry, plan_id=args.plan, outside=outside)
    folder = args.run
    if folder is None:
        folder = latest_run(DEFAULT_OUTPUT)
        if folder is None:
            raise FileNotFoundError(
                f"no run found: {DEFAULT_OUTPUT / 'LATEST'} does not exist; run `sectorize run` first, "
                "or give --run FOLDER or --registry DIR"
            )
    return FixedPlan(Router.from_run_folder(folder, outside=outside))


def load_router(args: argparse.Namespace):
    """The :class:`~sectorize.serve.routing.Router` answering on ``--on`` (default today); raises
    :class:`~sectorize.serve.dated.NoPlanInForce` (a ``LookupError``) when none does."""
    return load_plans(args).resolve(args.on).router


def _open(args: argparse.Namespace, on_day: bool = True):
    """``(plans or served, exit code)``: the plan source (``on_day=False``) or the plan answering on
    ``--on`` (:class:`~sectorize.serve.dated.Served`), or ``None`` and the exit code with the message printed."""
    try:
        plans = load_plans(args)
        return (plans.resolve(args.on) if on_day else plans), ExitCode.OK
    except (FileNotFoundError, LookupError) as err:  # no registry, no plan in force, unknown plan id
        print(f"not found: {err}", file=sys.stderr)
        return None, ExitCode.NOT_FOUND
    except HANDLED as err:
        return None, report(err)


def _period(answer: dict) -> str:
    if not answer.get("effective_from"):
        return "no effective dates"
    end = f"until {answer['effective_to']} (exclusive)" if answer.get("effective_to") else "no end date yet"
    return f"in force from {answer['effective_from']}, {end}"


def format_route(route, served=None) -> str:
    """Human-readable lines for a :class:`~sectorize.serve.routing.Route` (and the plan's dates, given
    the :class:`~sectorize.serve.dated.Served` it came from)."""
    lines = [f"status: {route.status}"]
    if route.sector is not None:
        lines.append(f"sector: {route.sector} (group {route.group}), worker {route.worker_id} {route.worker_name}")
    if route.insee is not None:
        lines.append(f"commune: {route.insee} {route.name}")
    lines.append(f"rule: {route.rule}")
    for c in route.candidates:
        share = "" if c.share is None else f" {c.share:.0%}"
        lines.append(f"  candidate: {c.sector} (group {c.group}) {c.worker_id} {c.worker_name}{share}")
    plan = f"plan: {route.plan_id} ({route.vintage or 'vintage unknown'})"
    if served is not None:
        dates = served.dates()
        plan += f", {_period(dates)}" + (f"; chosen for {dates['on']}" if dates["on"] else "")
        lines.append(plan)
        if dates["note"]:
            lines.append(f"note: {dates['note']}")
    else:
        lines.append(plan)
    return "\n".join(lines)


def _route(args: argparse.Namespace) -> int:
    served, code = _open(args)
    if served is None:
        return code
    route = served.router.route(insee=args.insee, postcode=args.postcode, lat=args.lat, lon=args.lon)
    if args.json:
        print(json.dumps(served.answer(route), ensure_ascii=False))
    else:
        print(format_route(route, served))
    return EXIT_CODES[route.status]


def _serve(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        print(f"error: --port must be 1..65535, got {args.port}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if args.on is not None:
        print("error: serve takes no --on: each request gives its own day (GET /route?...&on=YYYY-MM-DD, "
              "default today in Europe/Paris)", file=sys.stderr)
        return ExitCode.BAD_INPUT
    plans, code = _open(args, on_day=False)
    if plans is None:
        return code
    from sectorize.serve.dated import NoPlanInForce
    from sectorize.serve.service import serve

    what = f"registry {args.registry} by date" if args.registry is not None and args.plan is None else "one plan"
    try:
        today = plans.resolve(None)  # builds today's router before the first request
        now = f"today: plan {today.plan_id} ({today.router.communes} communes)"
    except NoPlanInForce as err:
        now = f"today: {err}"
    print(f"serving {what} on http://{args.host}:{args.port} ({now}); API: /openapi.json", file=sys.stderr)
    serve(plans, host=args.host, port=args.port)
    return ExitCode.OK
