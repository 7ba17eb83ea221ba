"""Silence what HiGHS prints straight to the process's standard output.

Some HiGHS MIP solves print a debugging line
(``HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();``)
with C ``printf``, which no solver option turns off; the large-neighbourhood
search runs hundreds of small MIPs, so a CLI run or a notebook would fill with
it. :func:`quiet_stdout` points file descriptor 1 at the null device for the
duration of a solve. Python's own ``sys.stdout`` is flushed first, and nothing
in the block should print.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send what native code writes to file descriptor 1 to the null device inside the block.

    Examples
    --------
    >>> with quiet_stdout():
    ...     _ = os.write(1, b"not shown\\n")
    """
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no usable descriptor 1 (e.g. some embedded interpreters)
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)
