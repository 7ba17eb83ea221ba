"""Scaffolding shared by the benchmark scripts of this folder.

What every script records next to its measurements (the command line, the
machine, a timestamp), how it writes its JSON result (atomically, with
:func:`sectorize.store.atomic.atomic_write_json`) and how it prints its
Markdown table. The scripts run as ``python benchmarks/<script>.py``, so this
folder is on ``sys.path`` and they ``from common import ...``; a script that
may be loaded from elsewhere (the tests load some by file) first puts its own
folder on ``sys.path``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from sectorize.store.atomic import atomic_write_json

#: Where the scripts write their results by default.
RESULTS = Path(__file__).resolve().parent / "results"

#: How a table shows a check that passed, failed, or was not made.
YES_NO = {True: "yes", False: "NO", None: "—"}


def machine() -> dict:
    """``{"cpus", "python", "platform"}``: CPU count, Python version, :func:`platform.platform`."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def machine_line() -> str:
    """The short machine description of the results files, e.g. ``"x86_64, 2 CPU"``."""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU"


def command_line(script: str | Path, argv: Sequence[str] | None = None) -> str:
    """How the script was called: ``python benchmarks/<script name> <arguments>``.

    ``argv`` are the arguments given to the script's ``main`` (``None``: those of
    the command line, ``sys.argv[1:]``); ``script`` is usually ``__file__``.
    """
    return " ".join([f"python benchmarks/{Path(script).name}", *(sys.argv[1:] if argv is None else argv)])


def timestamp() -> str:
    """Now, in UTC, ISO 8601 to the second (``2026-12-01T11:59:20+00:00``)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def summary(values: Iterable[float]) -> dict:
    """``{"median", "min", "max"}`` of ``values`` (at least one).

    Raises
    ------
    statistics.StatisticsError
        When ``values`` is empty.
    """
    values = list(values)
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def write_result(path: str | Path, payload: dict, *, benchmark: str, script: str | Path,
                 argv: Sequence[str] | None = None) -> dict:
    """Write ``payload`` to ``path`` atomically after ``benchmark``, ``command``, ``timestamp``
    and ``machine`` (:func:`machine`); returns what was written."""
    result = {"benchmark": benchmark, "command": command_line(script, argv), "timestamp": timestamp(),
              "machine": machine(), **payload}
    atomic_write_json(path, result)
    return result


def write_rows(path: str | Path, header: dict, rows: list, *, complete: bool) -> None:
    """Write ``{**header, "complete": complete, "rows": rows}`` to ``path`` atomically.

    The scripts call it after every instance with ``complete=False`` (an interrupted
    run keeps what it measured) and once at the end with ``complete=True``.
    """
    atomic_write_json(path, {**header, "complete": complete, "rows": rows})


def finish(path: str | Path, table: str) -> int:
    """Print ``table`` to stdout and ``wrote <path>`` to stderr; returns 0 (the exit status)."""
    print(table)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def markdown_row(cells: Iterable[str]) -> str:
    """``| a | b | c |``."""
    return "| " + " | ".join(cells) + " |"


def markdown_table(head: Sequence[str], rows: Iterable[Iterable[str]]) -> str:
    """A Markdown table: the ``head`` row, the ``|---|...|`` rule, one line per row of cells (strings)."""
    return "\n".join([markdown_row(head), "|" + "---|" * len(head), *(markdown_row(cells) for cells in rows)])


def fmt(x: float | None, spec: str = ",.2f") -> str:
    """``x`` formatted with ``spec``; ``—`` for ``None`` and NaN."""
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)
