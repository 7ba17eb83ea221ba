"""The Lagrangian bound computed in a second process during the search (:class:`BackgroundBound`)."""

from __future__ import annotations

import multiprocessing
import os
import sys


from solvers import budget
from solvers.problem import Problem
from solvers.bound import lagrangian
from solvers.bound.lagrangian import Bound


def fork_available() -> bool:
    """Whether this process may fork a child for :class:`BackgroundBound`: Linux (``fork``)
    and not inside a daemonic worker (e.g. of a :class:`multiprocessing.Pool` or a Dask
    cluster), which may not have children."""
    return sys.platform.startswith("linux") and not multiprocessing.current_process().daemon


def background_available() -> bool:
    """Whether a wall-clock :class:`BackgroundBound` is worth running here:
    :func:`fork_available` and at least two CPUs available to this process (on one CPU
    the child would slow the search down as much as it helps)."""
    return fork_available() and len(os.sched_getaffinity(0)) >= 2


def _bound_child(conn, problem: Problem, kwargs: dict, work: object | None) -> None:
    from threadpoolctl import threadpool_limits

    try:
        # one BLAS thread: the other CPU is the search's
        with threadpool_limits(limits=1):
            if work is None:
                conn.send(("ok", lagrangian.lower_bound(problem, **kwargs)))
            else:  # its own work clock (not the parent's, copied by fork): the same steps on any machine
                with budget.separate(kwargs["time_limit_s"], work):
                    conn.send(("ok", lagrangian.lower_bound(problem, **kwargs)))
    except BaseException as err:  # reported to the parent, which carries on without a bound
        conn.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        conn.close()


class BackgroundBound:
    """:func:`lower_bound` in a second process, so a search can use the whole time limit.

    The child is forked (Linux only, see :func:`fork_available`): it
    shares the problem without copying or pickling it, runs numpy/SciPy only,
    and sends back the :class:`Bound` (a few arrays of ``n`` numbers). Use
    :meth:`result` once, or :meth:`close` to stop it early; both always end
    the child.

    With ``work`` (a :class:`solvers.options.EngineSettings`), ``time_limit_s`` is in
    work seconds of a clock of the child's own (:mod:`solvers.budget`): the bound then
    takes the same steps, and has the same value, on any machine and under any load;
    only the wall time it needs varies.

    Examples
    --------
    >>> import networkx as nx, numpy as np
    >>> from solvers.problem import Problem, DenseTravelTimes
    >>> t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(4), np.arange(4))) * 10.0)
    >>> p = Problem(nx.path_graph(4), np.ones(4), np.array([2.0, 2.0]), 0.0, t)
    >>> if background_available():
    ...     b = BackgroundBound(p, time_limit_s=5).result(timeout=30)
    ... else:
    ...     b = lower_bound(p, time_limit_s=5)
    >>> round(b.value, 3)
    20.0
    """

    def __init__(self, problem: Problem, *, time_limit_s: float, work: object | None = None, **kwargs) -> None:
        ctx = multiprocessing.get_context("fork")
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_bound_child,
                                 args=(send, problem, {"time_limit_s": time_limit_s, **kwargs}, work),
                                 daemon=True, name="sectorize-bound")
        self._proc.start()
        send.close()
        self.error: str | None = None

    def result(self, timeout: float) -> Bound | None:
        """The child's :class:`Bound`, waiting at most ``timeout`` seconds; ``None`` (and
        :attr:`error` says why) when it failed or did not answer in time."""
        try:
            if self._recv.poll(max(timeout, 0.0)):
                status, value = self._recv.recv()
                if status == "ok":
                    return value
                self.error = value
            else:
                self.error = f"no answer within {timeout:.1f} s"
        except (EOFError, OSError) as err:
            self.error = f"the bound process ended without an answer ({type(err).__name__})"
        finally:
            self.close()
        return None

    def close(self) -> None:
        """Stop the child (if still running) and release the pipe."""
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join(timeout=5)
        self._recv.close()
