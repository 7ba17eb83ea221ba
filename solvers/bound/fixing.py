"""Lagrangian (reduced-cost) fixing: the unit-centre pairs no plan cheaper than a known one can use
(:func:`fixable_pairs`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solvers.problem import Problem
from solvers.bound.lagrangian import cost_matrix


@dataclass
class Fixing:
    """Result of :func:`fixable_pairs`.

    ``allowed[j, i]`` is False when no plan with unit ``i`` in the sector
    centred on unit ``j`` can cost less than ``upper_bound`` (``allowed[j, j]``
    False: ``j`` is never a centre of such a plan). ``centres`` counts the
    units still allowed as centres, ``pairs`` the allowed ``(j, i)`` pairs.
    """

    allowed: np.ndarray
    upper_bound: float
    centres: int
    pairs: int

    def summary(self) -> str:
        n = self.allowed.shape[0]
        return (f"Lagrangian fixing at {self.upper_bound:,.2f}: {self.centres:,} of {n:,} units may be centres, "
                f"{self.pairs:,} of {n * n:,} unit-centre pairs kept ({100 * self.pairs / max(n * n, 1):.2f} %)")


def _sector_dual(r: np.ndarray, w: np.ndarray, j: int, lo: float, hi: float) -> tuple[float, np.ndarray]:
    """Lagrangian dual of the sector knapsack ``v(j)`` (see :func:`_sector_row`) at the
    break ratio ``mu`` of the greedy: the value ``g <= v(j)`` and the reduced costs
    ``d = r - mu * w``, so that a sector centred on ``j`` holding unit ``i`` costs at
    least ``g + max(d[i], 0)`` in reduced costs. ``g`` is computed from its formula,
    so it is a valid bound whatever ``mu`` is."""
    positive = w > 0
    x = r < 0
    x[j] = True
    load = float(w[x].sum())
    mu, rhs = 0.0, 0.0
    if w[j] > hi + 1e-9:
        return np.inf, np.zeros_like(r)
    if load > hi + 1e-9:  # the cheapest ratios fill the room left beside the centre
        cand = np.flatnonzero(x & positive)
        cand = cand[cand != j]
        q = r[cand] / w[cand]
        order = np.argsort(q, kind="stable")
        full = np.cumsum(w[cand][order])
        at = int(np.searchsorted(full, hi - w[j], side="left"))
        mu, rhs = float(q[order[min(at, len(order) - 1)]]), hi
    elif load < lo - 1e-9:  # the cheapest ratios outside fill up to the floor
        cand = np.flatnonzero(~x & positive)
        q = r[cand] / w[cand]
        order = np.argsort(q, kind="stable")
        full = np.cumsum(w[cand][order])
        at = int(np.searchsorted(full, lo - load, side="left"))
        if at >= len(order):
            return np.inf, np.zeros_like(r)
        mu, rhs = float(q[order[at]]), lo
    d = r - mu * w
    g = float(np.minimum(d, 0.0).sum() - min(d[j], 0.0) + d[j] + mu * rhs)
    return g, d


def fixable_pairs(
    problem: Problem,
    multipliers: np.ndarray,
    upper_bound: float,
    *,
    costs: np.ndarray | None = None,
) -> Fixing:
    """Lagrangian reduced-cost fixing: the unit-centre pairs that no plan cheaper
    than ``upper_bound`` can use.

    With the multipliers ``lam`` of :func:`lower_bound`, a plan whose sector
    centred on ``j`` holds ``i`` costs at least ``sum(lam) + g_j + max(d_ji, 0)
    + (the k - 1 smallest g of the other centres)`` (equal bounds; with
    several sector bounds, each other sector's smallest ``g`` over the other
    centres, a weaker but valid form), where ``g_j`` and ``d_j`` come from the
    Lagrangian dual of the sector's fractional knapsack. When that exceeds
    ``upper_bound`` (the objective of a known plan), the pair can be dropped
    from an exact model without losing any plan better than the known one.
    This is the variable fixing of Validi, Buchanan & Lykhovyd (Operations
    Research 2022). Contiguity and locks are ignored, which only keeps more
    pairs.

    Parameters
    ----------
    problem
        A ``"pmedian"`` problem without move costs.
    multipliers
        ``(n,)`` multipliers, e.g. :attr:`Bound.multipliers` (objective units).
    upper_bound
        Objective of a known plan (objective units).
    costs
        A precomputed :func:`cost_matrix`.

    Returns
    -------
    Fixing
        ``allowed[j, i]`` as described there; a margin of ``1e-6 x
        upper_bound`` covers float rounding, so only pairs clearly too costly
        are dropped.

    Examples
    --------
    >>> import networkx as nx, numpy as np
    >>> from solvers.problem import Problem, DenseTravelTimes
    >>> t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(6), np.arange(6))) * 10.0)
    >>> p = Problem(nx.path_graph(6), np.ones(6), np.array([3.0, 3.0]), 0.0, t)
    >>> b = lower_bound(p, upper_bound=40.0, time_limit_s=5)
    >>> fix = fixable_pairs(p, b.multipliers, 40.0)
    >>> bool(fix.allowed[1, 0]), bool(fix.allowed[1, 5]), fix.centres
    (True, False, 2)
    """
    # stays whole: one pass over the centres; mostly docstring
    if problem.objective != "pmedian" or problem.move_rows() is not None:
        raise ValueError("Lagrangian fixing needs a 'pmedian' problem without move costs")
    n, k = problem.n, problem.k
    c = cost_matrix(problem) if costs is None else costs
    lam = np.asarray(multipliers, dtype=np.float64)
    w = np.asarray(problem.workload, dtype=np.float64)
    keys = sorted({(float(lo), float(hi)) for lo, hi in zip(problem.lower, problem.upper)})
    cls = [keys.index((float(lo), float(hi))) for lo, hi in zip(problem.lower, problem.upper)]
    g = np.full((len(keys), n), np.inf)
    for q, (lo, hi) in enumerate(keys):
        for j in range(n):
            g[q, j] = _sector_dual(c[j].astype(np.float64) - lam, w, j, lo, hi)[0]
    # others[q, j]: the least the k - 1 other sectors cost when one sector of class q sits on j
    others = np.full((len(keys), n), np.inf)
    if len(keys) == 1:
        order = np.argsort(g[0], kind="stable")
        smallest = g[0, order[:k]]
        in_top = np.zeros(n, dtype=bool)
        in_top[order[:k]] = True
        with np.errstate(invalid="ignore"):
            others[0] = np.where(in_top, smallest.sum() - g[0], smallest[: k - 1].sum())
        if k == 1:
            others[0] = 0.0
    else:
        two = np.sort(g, axis=1)[:, :2]  # each class's two smallest: the best over j' != j
        for q in set(cls):
            rest = list(cls)
            rest.remove(q)
            others[q] = sum((np.where(g[p_] == two[p_, 0], two[p_, 1], two[p_, 0]) for p_ in rest),
                            start=np.zeros(n))
    base = lam.sum() + g + others  # (classes, n): plans with a sector of class q on centre j
    margin = 1e-6 * abs(upper_bound) + 1e-9
    allowed = np.zeros((n, n), dtype=bool)
    for j in range(n):
        for q in range(len(keys)):
            if q not in cls or not np.isfinite(base[q, j]) or base[q, j] - margin > upper_bound:
                continue
            _, d = _sector_dual(c[j].astype(np.float64) - lam, w, j, *keys[q])
            allowed[j] |= base[q, j] + np.maximum(d, 0.0) - margin <= upper_bound
            allowed[j, j] = True
    return Fixing(allowed=allowed, upper_bound=float(upper_bound), centres=int(np.diag(allowed).sum()),
                  pairs=int(allowed.sum()))
