"""A proven lower bound on the balanced p-median objective, for thousands of units.

The bound is the Lagrangian relaxation of the assignment constraints of the
capacitated p-median model (contiguity dropped, assignments fractional within
a sector):

.. math::

    \\min \\sum_{s} \\sum_{i} c_{j_s i} x_{si}
    \\quad\\text{s.t.}\\quad \\sum_s x_{si} = 1,\\quad
    L_s \\le \\sum_i w_i x_{si} \\le U_s,\\quad
    x_{s j_s} = 1,\\quad j_s \\text{ distinct},\\quad 0 \\le x \\le 1,

where sector ``s`` picks a centre unit ``j_s`` and ``c[j, i] = weights[i] x
minutes(j, i)``. With multipliers ``lam`` on ``sum_s x[s, i] = 1``,

.. math::

    LB(\\lambda) = \\sum_i \\lambda_i + \\min_{\\text{distinct } j_s}
    \\sum_s v_{s}(j_s), \\qquad
    v_s(j) = \\min \\{\\textstyle\\sum_i (c_{ji} - \\lambda_i) x_i :
    L_s \\le \\sum_i w_i x_i \\le U_s,\\ x_j = 1,\\ 0 \\le x \\le 1\\}.

**Validity.** Take any feasible plan (contiguous or not) with centres ``j_s``
and 0/1 assignment ``x*``. It meets every constraint kept in ``v_s(j_s)``, so
``sum_i (c - lam) x*[s]`` >= ``v_s(j_s)`` for each sector; its centres are
distinct, so the sum of these is >= the minimum over distinct centres. Since
``sum_s x*[s, i] = 1``, its objective equals ``sum_i lam_i + sum_s sum_i
(c - lam) x*[s, i]`` >= ``LB(lam)``. This holds for *every* ``lam``, so every
value the subgradient loop computes is a valid bound and the best is kept.
``v_s(j)`` is a bounded fractional knapsack solved exactly by the greedy on
``(c - lam) / w`` (units of zero workload join when their reduced cost is
negative); the choice of distinct centres is an assignment problem
(:func:`scipy.optimize.linear_sum_assignment`), or the ``k`` smallest values
when all sectors share the same bounds.

Not covered (``lower_bound`` returns ``None``): the ``"base"`` objective and
problems with move costs from a previous plan. Locked units are ignored, which
only drops constraints (the bound stays valid).

Cost: one ``(n, n)`` float32 cost matrix (4,033 units: 65 MB) and ``O(n^2 log
n)`` per iteration at worst (rows whose negative reduced costs miss the
bounds are sorted).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from solvers.problem import ProgressCallback, Problem


@dataclass
class Bound:
    """Result of :func:`lower_bound`.

    ``value`` is the best proven lower bound (objective units, e.g.
    patient-minutes/year); ``iterations`` the subgradient steps made;
    ``history`` the bound after each step.
    """

    value: float
    iterations: int
    time_s: float
    history: list[float] = field(default_factory=list)
    log: list[str] = field(default_factory=list)


def cost_matrix(problem: Problem, *, chunk: int = 512) -> np.ndarray:
    """``(n, n)`` float32 matrix ``C[j, i] = weights[i] x minutes(j, i)`` (cost of unit
    ``i`` in a sector centred on ``j``), read from the travel times row chunk by row chunk."""
    n = problem.n
    w = problem.weights
    c = np.empty((n, n), dtype=np.float32)
    for a in range(0, n, chunk):
        rows = np.arange(a, min(a + chunk, n))
        exact = problem.travel.rows(rows) * w[None, :]
        low = exact.astype(np.float32)
        # round down, never up: a bound on the rounded costs then bounds the true ones
        c[rows] = np.where(low > exact, np.nextafter(low, np.float32(-np.inf)), low)
    return c


def _greedy(q: np.ndarray, wt: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Fractional knapsack per row: fill ``cap[r]`` with weights ``wt`` in increasing
    ``q[r]`` order (``inf`` = not eligible). Returns the taken fractions, shape of ``q``."""
    order = np.argsort(q, axis=1, kind="stable")
    qs = np.take_along_axis(q, order, axis=1)
    ws = np.where(np.isfinite(qs), wt[order], 0.0)
    cum = np.cumsum(ws, axis=1)
    before = cum - ws
    room = cap[:, None] - before
    frac = np.where(ws > 0, np.clip(room / np.where(ws > 0, ws, 1.0), 0.0, 1.0), 0.0)
    out = np.zeros_like(q)
    np.put_along_axis(out, order, frac, axis=1)
    return out


def _sector_values(c: np.ndarray, lam: np.ndarray, w: np.ndarray, lo: float, hi: float,
                   chunk: int = 512) -> tuple[np.ndarray, list[np.ndarray]]:
    """``v(j)`` for every centre ``j`` and the optimal fractional rows ``x`` (one array per
    chunk of centres), for one pair of bounds ``[lo, hi]``. ``inf`` where no sector fits."""
    n = c.shape[0]
    values = np.empty(n)
    xs: list[np.ndarray] = []
    positive = w > 0
    for a in range(0, n, chunk):
        idx = np.arange(a, min(a + chunk, n))
        r = c[idx].astype(np.float64) - lam[None, :]
        rows = np.arange(len(idx))
        x = (r < 0).astype(np.float64)
        x[rows, idx] = 1.0  # the centre is in its own sector
        load = x @ w
        over, under = load > hi + 1e-9, load < lo - 1e-9
        if over.any():
            o = np.flatnonzero(over)
            keep = x[o] > 0
            q = np.where(keep & positive[None, :], r[o] / np.where(positive, w, 1.0)[None, :], np.inf)
            q[np.arange(len(o)), idx[o]] = np.inf  # the centre stays whatever
            base = x[o] * (~positive)[None, :]  # free units stay
            base[np.arange(len(o)), idx[o]] = 1.0
            cap = hi - w[idx[o]]
            x[o] = base + _greedy(q, w, np.maximum(cap, 0.0))
            x[o[cap < -1e-9]] = np.nan  # centre alone too heavy
        if under.any():
            u = np.flatnonzero(under)
            q = np.where((x[u] == 0) & positive[None, :], r[u] / np.where(positive, w, 1.0)[None, :], np.inf)
            need = lo - load[u]
            add = _greedy(q, w, need)
            x[u] = x[u] + add
            short = (add @ w) < need - 1e-6 * max(lo, 1.0)
            x[u[short]] = np.nan  # not enough workload anywhere
        v = np.einsum("ij,ij->i", np.nan_to_num(x, nan=0.0), r)
        v[np.isnan(x).any(axis=1)] = np.inf
        values[idx] = v
        xs.append(x)
    return values, xs


def _evaluate(c: np.ndarray, lam: np.ndarray, problem: Problem) -> tuple[float, np.ndarray]:
    """``LB(lam)`` and the subgradient ``1 - sum_s x[s, i]``."""
    w = np.asarray(problem.workload, dtype=np.float64)
    n, k = problem.n, problem.k
    lower, upper = problem.lower, problem.upper
    classes: dict[tuple[float, float], list[int]] = {}
    for s in range(k):
        classes.setdefault((float(lower[s]), float(upper[s])), []).append(s)
    table = np.empty((k, n))
    rows: dict[tuple[float, float], list[np.ndarray]] = {}
    for (lo, hi), members in classes.items():
        v, xs = _sector_values(c, lam, w, lo, hi)
        table[members] = v
        rows[(lo, hi)] = xs
    if len(classes) == 1:
        chosen = np.argpartition(table[0], k - 1)[:k] if k < n else np.arange(n)
        pick = list(zip(range(k), chosen))
    else:
        finite = np.where(np.isfinite(table), table, 1e30)
        sec, cen = linear_sum_assignment(finite)
        pick = list(zip(sec, cen))
    total = float(lam.sum())
    used = np.zeros(n)
    key_of = {s: key for key, members in classes.items() for s in members}
    for s, j in pick:
        val = table[s, j]
        if not np.isfinite(val):
            return -np.inf, np.zeros(n)
        total += val
        xs = rows[key_of[s]]
        used += xs[j // 512][j % 512]
    return total, 1.0 - used


def lower_bound(
    problem: Problem,
    *,
    upper_bound: float | None = None,
    time_limit_s: float = 60.0,
    max_iterations: int = 2000,
    start: np.ndarray | None = None,
    costs: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
) -> Bound | None:
    """Best Lagrangian lower bound found by subgradient steps within the time limit.

    Parameters
    ----------
    problem
        A ``"pmedian"`` problem without move costs (else ``None`` is returned).
    upper_bound
        Objective of a known plan (Polyak step target); without it the step
        aims at 5 % above the current bound.
    time_limit_s
        Wall-clock budget in seconds (the cost matrix is built within it).
    max_iterations
        Stop after this many subgradient steps.
    start
        ``(n,)`` starting multipliers, e.g. each unit's cost in a known plan
        (objective units); default: each unit's cost to its ``n/k``-th nearest unit.
    costs
        A precomputed :func:`cost_matrix` (saves its build when calling again).
    progress
        Called with a line when the bound improves markedly.

    Returns
    -------
    Bound or None
        ``value`` <= the objective of every balanced plan (contiguous or not).

    Examples
    --------
    >>> import networkx as nx, numpy as np
    >>> from solvers.problem import Problem, DenseTravelTimes
    >>> g = nx.path_graph(4)
    >>> t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(4), np.arange(4))) * 10.0)
    >>> p = Problem(g, np.ones(4), np.array([2.0, 2.0]), 0.0, t)
    >>> b = lower_bound(p, upper_bound=20.0, time_limit_s=5)
    >>> b.value <= 20.0 + 1e-9, round(b.value, 3)
    (True, 20.0)
    """
    if problem.objective != "pmedian" or problem.move_rows() is not None:
        return None
    began = time.monotonic()
    say = progress or (lambda line: None)
    n, k = problem.n, problem.k
    c = cost_matrix(problem) if costs is None else costs
    if start is not None:
        lam = np.asarray(start, dtype=np.float64).copy()
    else:
        m = min(max(int(np.ceil(n / k)), 1), n - 1)
        lam = np.partition(c, m, axis=0)[m].astype(np.float64)
    best, history, log = -np.inf, [], []
    theta, stall = 1.0, 0
    it = 0
    best_lam = lam.copy()
    while it < max_iterations and time.monotonic() - began < time_limit_s:
        it += 1
        value, g = _evaluate(c, lam, problem)
        if value > best and (not np.isfinite(best) or value > best + 1e-9 * max(abs(best), 1.0)):
            if np.isfinite(best) and value > best + 0.005 * abs(best):
                say(f"bound: {value:,.2f} after {it} steps, {time.monotonic() - began:.1f} s")
            best, best_lam, stall = value, lam.copy(), 0
        else:
            stall += 1
            if stall >= 20:
                theta, stall = theta / 2, 0
                lam = best_lam.copy()
                if theta < 1e-4:
                    break
        history.append(best)
        norm = float(g @ g)
        if norm < 1e-12:  # every unit covered once: the relaxation is solved
            break
        target = upper_bound if upper_bound is not None else (value if np.isfinite(value) else 0.0) * 1.05 + 1.0
        if not np.isfinite(value):
            lam = lam * 0.9  # no centre fits the bounds yet: cheaper units
            continue
        step = theta * max(target - value, 1e-9 * max(abs(target), 1.0)) / norm
        lam = lam + step * g
    # float64 sums of n terms: keep a margin far above their rounding error
    best = best - 1e-9 * abs(best) if np.isfinite(best) else best
    line = f"Lagrangian bound {best:,.2f} after {it} steps in {time.monotonic() - began:.1f} s"
    log.append(line)
    say(line)
    return Bound(value=float(best), iterations=it, time_s=time.monotonic() - began, history=history, log=log)
