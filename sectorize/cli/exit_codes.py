"""The one table of exit codes of the ``sectorize`` command, shared by every sub-command.

=====  ==============  =========================================================================
code   name            meaning
=====  ==============  =========================================================================
0      ``OK``          done (a valid plan, a route answered, a table printed)
1      ``CHECK_FAILED``  a plan was written but an independent check failed; for ``sweep``,
                       some scenarios failed while others gave plans
2      ``BAD_INPUT``   the input is wrong: scenario or sweep key, data file, argument, registry
                       file; the message names the file, row or key and what to do
3      ``NO_PLAN``     no plan meets the constraints, or none was found in the time given
4      ``NOT_FOUND``   what the command was asked about does not exist: a plan id, a registry,
                       a run folder, a commune or postcode to route
=====  ==============  =========================================================================

:func:`report` prints an exception's message with the prefix of its class and
returns its code, so every command answers the same failure the same way.
"""

from __future__ import annotations

import sqlite3
import sys
from enum import IntEnum
from typing import TextIO


class ExitCode(IntEnum):
    """Exit codes of every ``sectorize`` sub-command (see the module's table)."""

    OK = 0
    CHECK_FAILED = 1
    BAD_INPUT = 2
    NO_PLAN = 3
    NOT_FOUND = 4


def _not_found_types() -> tuple[type[BaseException], ...]:
    from sectorize.store.registry import PlanNotFoundError, RegistryNotFoundError

    return (PlanNotFoundError, RegistryNotFoundError)


def classify(err: BaseException) -> ExitCode:
    """The exit code of an exception, by the table: first match wins.

    ``InfeasibleError`` and ``NoPlanFoundError`` (``NoPlanError``) -> ``NO_PLAN``; a missing
    plan or registry -> ``NOT_FOUND``; any other ``ValueError``, ``KeyError``,
    ``OSError`` (a missing input file included) or SQLite error -> ``BAD_INPUT``.
    Anything else is a bug and is not classified (re-raise it).
    """
    from solvers import NoPlanError

    if isinstance(err, NoPlanError):
        return ExitCode.NO_PLAN
    if isinstance(err, _not_found_types()):
        return ExitCode.NOT_FOUND
    if isinstance(err, (ValueError, KeyError, OSError, sqlite3.Error)):
        return ExitCode.BAD_INPUT
    raise TypeError(f"no exit code for {type(err).__name__}") from err


#: The prefix of the message for each code.
PREFIX = {ExitCode.NO_PLAN: "no plan", ExitCode.NOT_FOUND: "not found", ExitCode.BAD_INPUT: "error"}


def report(err: BaseException, stream: TextIO | None = None) -> int:
    """Print ``"<prefix>: <message>"`` on ``stream`` (standard error) and return the exit code."""
    from solvers import NoPlanFoundError

    code = classify(err)
    text = err.args[0] if isinstance(err, KeyError) and err.args else err
    prefix = "no plan found in the time given" if isinstance(err, NoPlanFoundError) else PREFIX[code]
    print(f"{prefix}: {text}", file=stream or sys.stderr)
    return int(code)


#: Errors :func:`report` knows; commands catch these and let anything else surface as a bug.
HANDLED: tuple[type[BaseException], ...] = (ValueError, KeyError, OSError, sqlite3.Error)
