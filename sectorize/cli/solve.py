"""``sectorize solve``: districting of the user's own units (a thin shell over :mod:`sectorize.pipeline.instance`).

Example::

    sectorize solve --units tracts.geojson --key GEOID --weight pop --sectors 4 \\
        --tolerance 0.005 --objective inertia --out results/

    sectorize solve --units points.csv --edges edges.csv --distances km.csv --key code \\
        --weight referrals --sectors 3 --min 600 --max 700 --objective travel --out results/

    sectorize solve --units tracts.geojson --key GEOID --weight pop --sectors 4 \\
        --tolerance 0.005 --objective cut-edges --out results/

    sectorize solve --units points.csv --edges edges.csv --edge-weight length --key code \\
        --weight referrals --sectors 3 --tolerance 0.05 --tie-break-slack 0.005 --out results/

The last one minimises inertia, then lowers the boundary length between
sectors (column ``length`` of ``edges.csv``) at a cost of at most +0.5 % of
the inertia (``--tie-break-slack 0``: ties only). Every ``summary.json``
holds the plan's ``cut_edges`` (and ``boundary_length`` with
``--edge-weight``); with a tie-break, ``tie_break`` holds both before and after.

``--deterministic`` counts ``--time-limit`` in work seconds instead of wall seconds
(:mod:`solvers.budget`): the same inputs and seed then give the same ``sectors.csv`` on
any machine and under any load. ``summary.json`` says which (``budget``: ``"work"`` or
``"wall"``), the work seconds used (``work_s``) and whether the wall-time safety cap
stopped the search (``capped``: the plan is then not reproducible).

Writes a new folder ``OUT/<YYYYmmdd-HHMMSS>`` with ``sectors.csv`` and
``summary.json``. Exit codes: 0 a valid plan; 1 a plan was written but the
independent check failed; 2 invalid input (the message names the file, line
and column); 3 no plan (infeasible, or none found in the time: the reason is
printed and written to ``summary.json``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sectorize.cli.exit_codes import ExitCode


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``solve`` sub-command."""
    p = sub.add_parser(
        "solve",
        help="split your own units (polygons or points) into k contiguous, balanced, compact sectors",
        description="Split your own units into k contiguous sectors whose workloads lie within bounds, "
        "minimising weighted (squared) distances to each sector's centre unit, or the number of "
        "adjacency edges between sectors (--objective cut-edges).",
    )
    p.add_argument("--units", type=Path, required=True,
                   help="polygon file (GeoJSON, GeoPackage, Shapefile, GeoParquet) or CSV of points "
                        "(x/y or lon/lat columns)")
    p.add_argument("--edges", type=Path, help="CSV of neighbouring units (first two columns: keys); required for points")
    p.add_argument("--distances", type=Path,
                   help="CSV a, b, distance for every pair of units (default: straight-line km between points)")
    p.add_argument("--key", required=True, help="column of unit codes (read as text)")
    p.add_argument("--weight", required=True, help="column of workloads (e.g. patients/year)")
    p.add_argument("--sectors", type=int, required=True, help="number of sectors k")
    p.add_argument("--tolerance", type=float, help="relative balance tolerance around total/k, e.g. 0.05")
    p.add_argument("--min", dest="min_load", type=float, help="smallest workload of a sector (with --max)")
    p.add_argument("--max", dest="max_load", type=float, help="largest workload of a sector (with --min)")
    p.add_argument("--objective", choices=("inertia", "travel", "cut-edges"), default="inertia",
                   help="inertia: sum weight x distance^2 (default); travel: sum weight x distance; "
                        "cut-edges: number of adjacency edges between different sectors "
                        "(backends auto, heuristic, exact)")
    p.add_argument("--edge-weight", metavar="COL",
                   help="column of the --edges file giving each edge's weight, e.g. the shared boundary length "
                        "(numbers >= 0): --objective cut-edges then minimises the summed COL of the edges between "
                        "sectors (boundary length), the tie-break lowers it, and summary.json reports it; "
                        "for a polygon file without --edges, 'border_m' is the shared border in metres computed "
                        "from the polygons")
    p.add_argument("--tie-break-slack", type=float, metavar="FRACTION",
                   help="inertia/travel only: after solving, lower the cut edges (or the --edge-weight boundary) "
                        "by local moves that keep contiguity and balance and raise the objective by at most this "
                        "fraction (0: ties only; 0.005: +0.5 %%); uses 10 %% of the time limit, at most 10 s")
    p.add_argument("--time-limit", type=float, default=60.0,
                   help="seconds (default 60): wall seconds, or work seconds with --deterministic")
    p.add_argument("--deterministic", action="store_true",
                   help="count the time limit in work (search passes, simplex iterations, MIP nodes) instead of "
                        "wall seconds: the same inputs and seed give the same plan on any machine and under any "
                        "load (a wall-time safety cap of 3 x the limit + 10 s stops an extremely slow run, and "
                        "summary.json then says capped: not reproducible)")
    p.add_argument("--seed", type=int, default=0, help="seed of the heuristic's random starts")
    p.add_argument("--backend", choices=("auto", "heuristic", "mip", "lns", "exact"), default="auto",
                   help="solver (lns: adds re-optimisation of pairs and triples of sectors and a lower bound, so a gap; "
                        "exact: proven optimum, up to about a hundred units)")
    p.add_argument("--xy-unit", choices=("m", "km"), default="m", help="unit of x/y columns of a CSV of points")
    p.add_argument("--out", type=Path, required=True, help="folder receiving a new result folder")
    p.add_argument("--quiet", action="store_true", help="print only the result folder and status")
    p.set_defaults(handler=run_solve)


def run_solve(args: argparse.Namespace) -> int:
    """Handler of ``sectorize solve``; returns the exit code."""
    from sectorize.pipeline.instance import InputError, SolveRequest, solve_units, write_result

    request = SolveRequest(
        units=args.units, key=args.key, weight=args.weight, sectors=args.sectors, tolerance=args.tolerance,
        min_load=args.min_load, max_load=args.max_load, objective=args.objective, edges=args.edges,
        distances=args.distances, time_limit_s=args.time_limit, seed=args.seed, backend=args.backend,
        xy_unit=args.xy_unit, edge_weight=args.edge_weight, tie_break_slack=args.tie_break_slack,
    )

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    from solvers import budget

    try:
        # every solve inside runs on this session's clock: work seconds with --deterministic
        with budget.session(args.time_limit, deterministic=args.deterministic) as clock:
            result = solve_units(request, progress)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    result.summary.update(budget="work" if clock.deterministic else "wall",
                          work_s=round(clock.used(), 3) if clock.deterministic else None, capped=clock.capped)
    if clock.capped:
        result.summary.setdefault("notes", []).extend(clock.notes)
    try:
        folder = write_result(result, args.out)
    except OSError as err:
        print(f"error: cannot write the result into {args.out}: {err}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    s = result.summary
    if not args.quiet or s["capped"]:
        for note in s["notes"]:
            print(f"note: {note}", file=sys.stderr)
    if result.sector is None:
        print(f"no plan ({s['status']}): {s['reason']}", file=sys.stderr)
        print(f"written: {folder}")
        return ExitCode.NO_PLAN
    gap = "" if s["gap"] is None else f", gap {100 * s['gap']:.3f} %"
    print(f"{s['status']} plan ({s['backend']}): objective {s['objective']:,.6g}{gap}, "
          f"max deviation {s['max_deviation_pct']:.2f} %, {s['n']} units in {s['k']} sectors, "
          f"{s['cut_edges']:,} cut edges, {s['time_s']:.1f} s")
    tb = s["tie_break"]
    if tb is not None:
        boundary = (f", {tb['edge_weight']} {tb['boundary_before']:,.6g} -> {tb['boundary_after']:,.6g}"
                    if "edge_weight" in tb else "")
        print(f"tie-break (slack {100 * tb['slack']:g} %): cut edges {tb['cut_edges_before']:,} -> "
              f"{tb['cut_edges_after']:,}{boundary}, objective {tb['objective_change_pct']:+.2f} %")
    if not s["contiguity_check"]["valid"]:
        print("CHECK FAILED: " + "; ".join(s["contiguity_check"]["problems"][:5]), file=sys.stderr)
    print(f"written: {folder}")
    return ExitCode.OK if result.valid else ExitCode.CHECK_FAILED
