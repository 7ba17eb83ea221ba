"""What every command that reads a demand file shares: the ``--repair`` flag and how repairs
and exclusions are printed.

Repairs (notes starting with :data:`geodata.demand.REPAIR_NOTE`) go to standard
error, at most :data:`SHOWN` rows per rule (all of them are in ``run.json``);
exclusions by department (notes starting with :data:`geodata.demand.EXCLUDED_NOTE`)
go to standard output, with the summary.
"""

from __future__ import annotations

import argparse
import sys
from typing import Iterable, TextIO

#: Repaired rows printed per rule.
SHOWN = 10

#: Help of the ``--repair`` flag, the same for every command.
REPAIR_HELP = ("accept the obvious fixes of the demand file (lost leading zeros, total rows, Lyon given twice, "
               "old commune codes, codes outside the region), each listed (sets demand.repair = true)")


def add_repair_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--repair`` to a sub-command."""
    parser.add_argument("--repair", action="store_true", help=REPAIR_HELP)


def brief(note: str, shown: int = SHOWN) -> str:
    """A repair note cut to its first ``shown`` rows: ``"... N row(s): a; b; ..."``."""
    head, sep, rest = note.partition(" row(s): ")
    items = rest.split("; ") if sep else []
    if len(items) <= shown:
        return note
    return f"{head}{sep}{'; '.join(items[:shown])}; ... ({len(items)} in all, every one in run.json notes)"


def print_demand_notes(notes: Iterable[str], out: TextIO | None = None, err: TextIO | None = None, *,
                       repairs_only: bool = False) -> None:
    """Print the repair notes on ``err`` (standard error) and the exclusion summaries on ``out``
    (not with ``repairs_only``, e.g. when the KPI summary already shows the demand left out)."""
    from geodata.demand import EXCLUDED_NOTE, REPAIR_NOTE

    for note in notes:
        if note.startswith(REPAIR_NOTE):
            print(brief(note), file=err or sys.stderr)
        elif note.startswith(EXCLUDED_NOTE) and not repairs_only:
            print(note, file=out or sys.stdout)
