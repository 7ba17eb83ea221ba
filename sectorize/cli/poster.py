"""``sectorize poster``: a printable PDF of a plan, for the team's wall and meetings.

::

    sectorize poster RUN_OR_PLAN --out FILE.pdf [--paper A4|A3] [--registry DIR] [--overwrite]

``RUN_OR_PLAN`` is a run folder written by ``sectorize run`` (or ``rerun``, ``plans import``,
``plans edit``) or a plan id of the registry (``--registry``, default ``sectorize-plans``).
The document (:mod:`sectorize.report.poster`): an overview map of the region with the
sectors, their workers and a Lyon inset, one map per group, then the communes of each sector
(name, INSEE code, postcodes), one sector per run of pages; fonts embedded, made without a
browser. The file is written whole or not at all; an existing file is kept unless
``--overwrite``.

Exit codes (:mod:`sectorize.cli.exit_codes`): 0 written; 2 bad input (a folder that is not a
run folder, an output name not ending in ``.pdf``, an existing file without ``--overwrite``,
an unreadable registry); 4 not found (an unknown plan id, no registry, no such folder).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path

from sectorize.cli.exit_codes import HANDLED, ExitCode, report

#: Registry folder used when ``--registry`` is not given (as ``sectorize plans``).
DEFAULT_REGISTRY = Path("sectorize-plans")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sectorize poster`` to the CLI's sub-parsers."""
    poster = sub.add_parser(
        "poster", help="write a printable PDF of a plan: maps with sectors and workers, communes per sector",
        description="Write a printable PDF of a plan (a run folder or a registry plan id): an overview map, "
                    "one map per group, then the communes of each sector with their INSEE codes and postcodes.",
    )
    poster.add_argument("run_or_plan", metavar="RUN_OR_PLAN",
                        help="a run folder written by `sectorize run`, or a plan id of --registry")
    poster.add_argument("--out", type=Path, required=True, help="PDF file to write, e.g. affiche-2027.pdf")
    poster.add_argument("--paper", choices=("A4", "A3"), default="A4",
                        help="paper size: maps landscape, lists portrait (default: A4)")
    poster.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY,
                        help=f"plan registry folder, for a plan id (default: {DEFAULT_REGISTRY})")
    poster.add_argument("--overwrite", action="store_true", help="replace FILE.pdf if it exists")
    poster.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Write the poster named by ``args``; return the exit code."""
    out: Path = args.out
    if out.suffix.lower() != ".pdf":
        print(f"error: --out {out}: give a file name ending in .pdf", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if out.is_dir():
        print(f"error: --out {out} is a folder; give a file name ending in .pdf", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if out.exists() and not args.overwrite:
        print(f"error: {out} exists; choose another file name or add --overwrite", file=sys.stderr)
        return ExitCode.BAD_INPUT
    target = Path(args.run_or_plan)
    if not target.is_dir() and (target.exists() or len(target.parts) > 1):
        kind = "is a file, not a run folder" if target.exists() else "does not exist"
        print(f"not found: {target} {kind}; give a run folder written by `sectorize run`, or a plan id with "
              "--registry", file=sys.stderr)
        return ExitCode.NOT_FOUND

    from sectorize.report.poster import load_poster_source, write_poster

    start = time.perf_counter()
    try:
        source = load_poster_source(args.run_or_plan, registry=args.registry)
        out.parent.mkdir(parents=True, exist_ok=True)
        result = write_poster(source, out, paper=args.paper)
    except sqlite3.Error as err:  # locked longer than the busy timeout, damaged file
        print(f"error: registry {args.registry}: {err}; retry, or check the disk and the file", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except HANDLED as err:  # unknown plan or registry: NOT_FOUND; not a run folder, bad scenario: BAD_INPUT
        return report(err)
    print(f"written: {result.path} ({result.pages} pages {result.paper}: {result.map_pages} maps, "
          f"{result.list_pages} pages of communes; plan {source.plan_id}; {time.perf_counter() - start:.0f} s)")
    return ExitCode.OK
