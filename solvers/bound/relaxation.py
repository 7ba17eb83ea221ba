"""The strong LP relaxation of the balanced p-median problem and its optimal Lagrange multipliers
(:func:`strong_relaxation`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from solvers import budget
from solvers.problem import Problem
from solvers.bound.lagrangian import cost_matrix


@dataclass
class Relaxation:
    """Result of :func:`strong_relaxation`.

    ``value`` is the optimum of the strong LP relaxation over the pairs given
    (objective units); it is a proven lower bound on every balanced plan only
    when ``complete`` (all ``n x n`` unit-centre pairs were in the model): it
    then equals the best Lagrangian bound :func:`lower_bound` can approach.
    Over a subset of pairs it is the optimum of a *restricted* relaxation
    (neither a bound nor a plan), which shows how tight the relaxation is
    near the plans the pairs come from. ``pairs`` counts the pairs, ``time_s``
    the solve in seconds. ``multipliers`` are the LP duals of the assignment
    rows ``sum_j x_ji = 1`` (objective units): with every pair, optimal
    Lagrange multipliers for :func:`fixable_pairs`.
    """

    value: float
    complete: bool
    pairs: int
    time_s: float
    multipliers: np.ndarray | None = None


def strong_relaxation(problem: Problem, pairs: np.ndarray | None = None, *, costs: np.ndarray | None = None,
                      time_limit_s: float = 600.0) -> Relaxation:
    """Optimum of the strong LP relaxation of the capacitated p-median model (HiGHS dual simplex).

    .. math::

        \\min \\sum_{(j,i)} c_{ji} x_{ji} \\ \\text{s.t.}\\ \\sum_j x_{ji} = 1,\\
        \\sum_j x_{jj} = k,\\ x_{ji} \\le x_{jj},\\
        L\\, x_{jj} \\le \\sum_i w_i x_{ji} \\le U\\, x_{jj},\\ 0 \\le x \\le 1.

    This is the convex hull of the subproblem of :func:`lower_bound`, so
    with every pair its optimum is the Lagrangian dual's value (Geoffrion
    1974). Its size grows as ``n^2`` rows and columns: all pairs are
    practical up to about 150 units (0.3-0.4 s for 67-82 units); larger
    problems need ``pairs``.

    Parameters
    ----------
    problem
        A ``"pmedian"`` problem without move costs whose sectors all share the
        same bounds.
    pairs
        ``(m, 2)`` array of ``(centre, unit)`` pairs to keep (default: all);
        must include ``(j, j)`` for every centre used and admit a plan (e.g.
        the pairs of a known plan).
    costs
        A precomputed :func:`cost_matrix`.
    time_limit_s
        HiGHS's budget in seconds of the active clock (:mod:`solvers.budget`): a time
        limit, or with a work clock a simplex iteration limit worth that many work seconds.

    Raises
    ------
    ValueError
        For an unsupported problem, or when HiGHS ends without an optimum
        (infeasible pair set or time limit; the message says which).

    Examples
    --------
    >>> import networkx as nx, numpy as np
    >>> from solvers.problem import Problem, DenseTravelTimes
    >>> t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(4), np.arange(4))) * 10.0)
    >>> p = Problem(nx.path_graph(4), np.ones(4), np.array([2.0, 2.0]), 0.0, t)
    >>> r = strong_relaxation(p)
    >>> round(r.value, 6), r.complete
    (20.0, True)
    """
    # stays whole: one LP built and solved; mostly docstring
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, vstack

    if problem.objective != "pmedian" or problem.move_rows() is not None:
        raise ValueError("the strong relaxation needs a 'pmedian' problem without move costs")
    if len({(float(lo), float(hi)) for lo, hi in zip(problem.lower, problem.upper)}) != 1:
        raise ValueError("the strong relaxation needs sectors that all share the same bounds")
    began = time.monotonic()
    n, k = problem.n, problem.k
    lo, hi = float(problem.lower[0]), float(problem.upper[0])
    w = np.asarray(problem.workload, dtype=np.float64)
    c = cost_matrix(problem) if costs is None else costs
    if pairs is None:
        centre, unit = (a.ravel() for a in np.divmod(np.arange(n * n), n))
    else:
        centre, unit = np.unique(np.asarray(pairs, dtype=np.intp), axis=0).T
    used = np.unique(centre)
    row = np.full(n, -1)
    row[used] = np.arange(len(used))
    m, nc = len(centre), len(used)
    own = np.flatnonzero(centre == unit)
    if len(own) != nc:
        raise ValueError("pairs must include (j, j) for every centre j they use")
    y = np.empty(nc, dtype=np.intp)
    y[row[centre[own]]] = own
    cols = np.arange(m)
    other = np.flatnonzero(centre != unit)
    link = csr_matrix((np.r_[np.ones(len(other)), -np.ones(len(other))],
                       (np.r_[np.arange(len(other)), np.arange(len(other))], np.r_[other, y[row[centre[other]]]])),
                      shape=(len(other), m))
    load = csr_matrix((w[unit], (row[centre], cols)), shape=(nc, m))
    opened = csr_matrix((np.ones(nc), (np.arange(nc), y)), shape=(nc, m))
    a_ub = vstack([link, load - hi * opened, lo * opened - load]).tocsr()
    a_eq = vstack([csr_matrix((np.ones(m), (unit, cols)), shape=(n, m)),
                   csr_matrix((np.ones(nc), (np.zeros(nc, dtype=np.intp), y)), shape=(1, m))]).tocsr()
    clock = budget.current()
    size = (a_ub.shape[0] + a_eq.shape[0] + m) / 1000.0
    options = {"time_limit": float(time_limit_s)}
    if clock.deterministic:  # an iteration limit worth the work seconds; the time limit is the safety cap's
        options = {"time_limit": max(min(clock.wall_left(), 1e6), 0.05),
                   "maxiter": int(min(max(time_limit_s / (clock.costs.strong_lp_iteration * size), 1.0), 1e9))}
    res = linprog(c[centre, unit].astype(np.float64), A_ub=a_ub, b_ub=np.zeros(a_ub.shape[0]), A_eq=a_eq,
                  b_eq=np.r_[np.ones(n), k], bounds=(0, 1), method="highs-ds", options=options)
    clock.tick("strong_lp_iteration", float(getattr(res, "nit", 0) or 0) * size)
    if clock.deterministic and "time limit" in str(res.message).lower():
        clock.stop("stopped by the wall-time safety cap inside the strong LP relaxation: not reproducible")
    if res.status != 0:
        raise ValueError(f"strong relaxation over {m:,} pairs: HiGHS ended without an optimum ({res.message})")
    # the costs were rounded down to float32; keep the same relative margin as lower_bound
    value = float(res.fun) - 1e-9 * abs(float(res.fun))
    return Relaxation(value=value, complete=pairs is None, pairs=m, time_s=time.monotonic() - began,
                      multipliers=np.asarray(res.eqlin.marginals[:n], dtype=np.float64))
