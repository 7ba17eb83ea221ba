"""The disaggregated proximal bundle: the ascent of the Lagrangian bound that keeps one model per centre.

:mod:`solvers.bound.lagrangian` bounds the balanced p-median objective by
``LB(lam) = sum_i lam_i + (sum of the k smallest v(j))`` when every sector has the
same workload bounds, where ``v(j) = min_x (c_j - lam) . x`` over the fractional
sectors ``x`` centred on ``j`` (a bounded knapsack polytope ``P_j``). The aggregated
bundle (:func:`solvers.bound.lagrangian._bundle`) models ``LB`` by a few of its
subgradients. This method keeps instead the fractional sectors themselves: every
evaluation returns the ``k`` chosen sectors, which are points of their centres'
polytopes, and the model

.. math::

    \\widehat{LB}(\\lambda) = \\sum_i \\lambda_i + \\min_{\\mu \\in M}
    \\sum_{(j, x)} \\mu_{jx} (c_j - \\lambda) \\cdot x, \\qquad
    M = \\{\\mu \\ge 0,\\ \\textstyle\\sum_{x} \\mu_{jx} \\le 1\\ \\forall j,\\ \\sum \\mu = k\\}

is the sum of the ``k`` smallest per-centre minima over the sectors kept (``+inf``
for a centre with none). Each per-centre minimum is at least ``v(j)``, so the model
lies above ``LB`` everywhere (what a bundle method needs), and it is much closer to
``LB`` than a few aggregated cuts: this is the Dantzig-Wolfe master of the strong LP
relaxation, stabilised by a proximal term. The next trial point maximises
``model - |lam - centre|^2_{D^-1} / (2 t)`` (``D`` the diagonal scaling of
:func:`solvers.bound.lagrangian.lower_bound`); with ``g(mu) = 1 - sum mu_jx x``,
its dual is the convex QP

.. math::

    \\min_{\\mu \\in M}\\ \\sum \\mu_{jx} (c_j - \\hat\\lambda) \\cdot x
    + \\tfrac{t}{2}\\, g(\\mu)^\\top D\\, g(\\mu),
    \\qquad \\lambda_{trial} = \\hat\\lambda + t D g(\\mu),

solved by accelerated projected gradient (FISTA with adaptive restart) until its
Frank-Wolfe gap is below a tenth of the predicted gain; the projection onto ``M``
has a closed form up to one scalar (:func:`project_columns`). The QP's accuracy
only affects where the next trial point is: every value of ``LB`` evaluated is a
valid bound.

On the published county instances this reaches the strong LP's value in a few dozen
evaluations where the aggregated bundle stops short after thousands (figures in the
benchmarks). Only problems whose sectors all share the same bounds use it (with
several sector classes the centres' choice is an assignment problem and the
projection above no longer applies).

Work is charged on the active clock (:mod:`solvers.budget`): the QP's matrix products
and projections as ``entry`` work, like the evaluations.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from solvers import budget
from solvers.problem import Problem

#: Fractional sectors kept in the model: those used lately stay, the idle longest go first.
#: The QP costs ``m^2`` per step for ``m`` sectors kept.
COLUMNS_KEPT = 400

#: Accelerated gradient steps at most per trial point.
QP_MAX_STEPS = 5000

#: The QP stops when its Frank-Wolfe gap is below this share of the predicted gain, or below the
#: ascent's own precision (:data:`STOP_GAIN`), checked every :data:`QP_CHECK_EVERY` steps.
QP_TOLERANCE = 0.1
QP_CHECK_EVERY = 25

#: A trial point becomes the new centre when it gains at least this share of the predicted gain.
SERIOUS = 0.1

#: Fixed cost of one accelerated gradient step, in ``step`` work units (:class:`solvers.budget.WorkCosts`):
#: its two dozen numpy calls take about 110 microseconds whatever the model's size.
QP_STEP_CALLS = 55

#: The ascent stops when the model predicts a gain below this share of the bound, even with
#: a step ``10^5`` times wider (the bundle method's stopping test).
STOP_GAIN = 1e-7


def group_thresholds(v: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """For each group ``g``, the ``theta_g`` with ``sum_{i in g} max(v_i - theta_g, 0) = 1``.

    The projection of ``v``'s entries in ``g`` onto the unit simplex is ``max(v_g -
    theta_g, 0)`` (Held, Wolfe & Crowder 1974). Every group in ``range(groups)`` must
    have at least one entry.

    Examples
    --------
    >>> group_thresholds(np.array([0.5, 0.5, 3.0]), np.array([0, 0, 1]), 2)
    array([0., 2.])
    """
    order = np.lexsort((-v, group))
    vs, gs = v[order], group[order]
    first = np.r_[0, np.flatnonzero(np.diff(gs)) + 1]
    sizes = np.diff(np.r_[first, len(vs)])
    total = np.cumsum(vs)
    within = total - np.repeat(total[first] - vs[first], sizes) - 1.0
    rank = np.arange(len(vs)) - np.repeat(first, sizes) + 1
    last = np.maximum.reduceat(np.where(vs * rank > within, np.arange(len(vs)), -1), first)
    theta = np.empty(groups)
    theta[gs[first]] = within[last] / rank[last]
    return theta


def project_columns(v: np.ndarray, group: np.ndarray, groups: int, k: int) -> np.ndarray:
    """Euclidean projection of ``v`` onto ``{mu >= 0, sum_{i in g} mu_i <= 1 for every
    group g, sum_i mu_i = k}`` (``groups >= k``).

    By the KKT conditions ``mu_i = max(v_i - max(tau, theta_g), 0)``, with ``theta_g``
    the group's simplex threshold (:func:`group_thresholds`) and ``tau`` the one scalar
    that makes the total ``k``. The total is piecewise linear in ``tau``: each entry with
    ``v_i > theta_g`` adds slope -1 between ``theta_g`` and ``v_i``, so one sort of these
    breakpoints gives ``tau`` exactly.

    Examples
    --------
    >>> mu = project_columns(np.array([2.0, 1.0, 0.0]), np.array([0, 0, 1]), 2, 2)
    >>> mu.round(6).tolist()
    [1.0, 0.0, 1.0]
    """
    theta = group_thresholds(v, group, groups)[group]
    live = v > theta
    start, end = theta[live], v[live]
    points = np.r_[start, end]
    order = np.argsort(points, kind="stable")
    at = points[order]
    slope = np.cumsum(np.r_[-np.ones(len(start)), np.ones(len(end))][order])  # on [at[q], at[q + 1]]
    total = float((end - start).sum()) + np.r_[0.0, np.cumsum(slope[:-1] * np.diff(at))]  # at each point
    below = np.flatnonzero(total <= k)
    if len(below) == 0 or below[0] == 0:  # the groups alone already sum to k: no shift
        tau = -np.inf
    else:
        q = below[0] - 1  # the total crosses k on [at[q], at[q + 1]]
        tau = at[q] + (total[q] - k) / -slope[q]
    return np.maximum(v - np.maximum(tau, theta), 0.0)


def _k_smallest_minima(values: np.ndarray, group: np.ndarray, groups: int, k: int) -> float:
    """The sum of the ``k`` smallest per-group minima of ``values``: the least ``mu . values``
    over the set of :func:`project_columns` (the model's value, the QP's linear minimiser)."""
    per = np.full(groups, np.inf)
    np.minimum.at(per, group, values)
    return float(np.sort(per)[:k].sum())


class _Sectors:
    """The model's fractional sectors: rows of ``x`` with their centre, cost ``c_j . x``,
    the Gram matrix ``x D x'``, their weights ``mu`` and how long each has been unused."""

    def __init__(self, n: int, scale: np.ndarray) -> None:
        self.scale = scale
        self.x = np.zeros((0, n))
        self.centre = np.zeros(0, dtype=np.intp)
        self.cost = np.zeros(0)
        self.gram = np.zeros((0, 0))
        self.mu = np.zeros(0)
        self.idle = np.zeros(0, dtype=np.intp)
        self.power = np.zeros(0)  # the Gram matrix's leading eigenvector, warm start
        self.keys: list[bytes] = []  # each sector's centre and rounded row, to skip repeats

    def add(self, centres: np.ndarray, rows: list[np.ndarray], c: np.ndarray) -> int:
        """Keep the sectors of one evaluation (centre ``centres[s]``, row ``rows[s]``) that
        the model does not hold yet; returns how many."""
        seen = set(self.keys)
        fresh = []
        for j, x in zip(centres, rows):
            key = np.r_[float(j), x.round(9)].tobytes()
            if key not in seen:
                seen.add(key)
                fresh.append((int(j), x, key))
        if not fresh:
            return 0
        centres, rows, keys = zip(*fresh)
        self.keys.extend(keys)
        new = np.array(rows)
        m, n = self.x.shape
        budget.tick("entry", (m + 2 * len(new)) * len(new) * n)  # the Gram matrix's new rows, the costs
        cross = (self.x * self.scale) @ new.T
        self.gram = np.block([[self.gram, cross], [cross.T, (new * self.scale) @ new.T]])
        self.x = np.vstack([self.x, new])
        self.centre = np.r_[self.centre, np.asarray(centres, dtype=np.intp)]
        self.cost = np.r_[self.cost, [float(c[j].astype(np.float64) @ x) for j, x in zip(centres, rows)]]
        self.mu = np.r_[self.mu, np.zeros(len(new))]
        self.idle = np.r_[self.idle, np.zeros(len(new), dtype=np.intp)]
        self.power = np.r_[self.power, np.ones(len(new))]
        return len(new)

    def trim(self, keep: int) -> None:
        """Drop the sectors unused longest, down to ``keep`` (those in use go last)."""
        if len(self.cost) <= keep:
            return
        kept = np.sort(np.argsort(self.idle, kind="stable")[:keep])
        self.x, self.centre, self.cost = self.x[kept], self.centre[kept], self.cost[kept]
        self.gram = self.gram[np.ix_(kept, kept)]
        self.mu, self.idle, self.power = self.mu[kept], self.idle[kept], self.power[kept]
        self.keys = [self.keys[q] for q in kept]

    def model(self, lam: np.ndarray, group: np.ndarray, groups: int, k: int) -> float:
        """The model's value at ``lam``: ``sum lam`` plus the ``k`` smallest per-centre minima."""
        budget.tick("entry", self.x.size)
        return float(lam.sum()) + _k_smallest_minima(self.cost - self.x @ lam, group, groups, k)

    def lipschitz(self) -> float:
        """The Gram matrix's largest eigenvalue (power iteration, warm-started), with 5 % to spare."""
        v = self.power / max(float(np.linalg.norm(self.power)), 1e-300)
        for _ in range(30):
            u = self.gram @ v
            size = float(np.linalg.norm(u))
            if size == 0.0:
                return 1e-300
            v = u / size
        budget.tick("entry", 30 * self.gram.size)
        self.power = v
        return 1.05 * float(v @ (self.gram @ v))

    def step(self, lam: np.ndarray, f_hat: float, t: float, k: int) -> tuple[np.ndarray, float]:
        """Solve the proximal QP at the centre ``lam`` (value ``f_hat``) with step ``t``: the
        trial point and the model's predicted gain there. Updates ``mu`` and ``idle``."""
        group_of, group = np.unique(self.centre, return_inverse=True)
        groups = len(group_of)
        a = self.cost - self.x @ lam
        b = self.x @ self.scale
        budget.tick("entry", 2 * self.x.size)

        def trial(mu: np.ndarray) -> np.ndarray:
            return lam + t * self.scale * (1.0 - mu @ self.x)

        mu = project_columns(self.mu, group, groups, k)  # the last weights, and the new sectors at 0
        lip = t * self.lipschitz()
        previous = y = mu
        momentum = 1.0
        m = len(mu)
        for it in range(1, QP_MAX_STEPS + 1):
            gradient = a + t * (self.gram @ y - b)
            nxt = project_columns(y - gradient / lip, group, groups, k)
            if float(gradient @ (nxt - previous)) > 0:  # the objective went up: restart the momentum
                momentum = 1.0
            following = (1.0 + np.sqrt(1.0 + 4.0 * momentum * momentum)) / 2.0
            y = nxt + (momentum - 1.0) / following * (nxt - previous)
            previous, momentum = nxt, following
            if it % QP_CHECK_EVERY == 0:
                gradient = a + t * (self.gram @ previous - b)
                frank_wolfe = float(gradient @ previous) - _k_smallest_minima(gradient, group, groups, k)
                gain = self.model(trial(previous), group, groups, k) - f_hat
                budget.tick("entry", m * m + 2 * self.x.size)
                if frank_wolfe <= max(QP_TOLERANCE * gain, STOP_GAIN * max(abs(f_hat), 1.0)):
                    break
        # a product and a projection per step, and their fixed cost (about 110 us of numpy calls)
        budget.tick("entry", it * (m * m + 60 * m))
        budget.tick("step", QP_STEP_CALLS * it)
        self.mu = previous
        self.idle = np.where(previous > 1e-9, 0, self.idle + 1)
        point = trial(previous)
        return point, self.model(point, group, groups, k) - f_hat


def first_finite(evaluate: Callable, c: np.ndarray, lam: np.ndarray, problem: Problem, track,
                 max_iterations: int, deadline: float) -> tuple[int, np.ndarray, tuple]:
    """The ascent's first evaluation with a finite bound: at ``lam``, then at multipliers
    scaled by 0.9 (cheaper units) until some choice of centres fits the bounds or the
    budget ends. Returns the evaluations made, the multipliers and ``evaluate``'s result."""
    clock = budget.current()
    it = 1
    found = evaluate(c, lam, problem)
    track.see(found[0], lam, found[2])
    while not np.isfinite(found[0]) and it < max_iterations and clock.now() < deadline:
        lam = lam * 0.9
        it += 1
        found = evaluate(c, lam, problem)
        track.see(found[0], lam, found[2])
    return it, lam, found


def disaggregated_bundle(evaluate: Callable, c: np.ndarray, lam: np.ndarray, problem: Problem,
                         scale: np.ndarray, upper_bound: float | None, deadline: float, max_iterations: int,
                         track) -> int:
    """Proximal bundle ascent with the per-centre model above (Kiwiel 1990 for the
    proximal bundle; its disaggregated form is the quadratically stabilised column
    generation of the Dantzig-Wolfe master).

    ``evaluate(c, lam, problem)`` returns ``LB(lam)``, its subgradient, the chosen
    centres and their fractional sectors; ``track.see(value, lam, centres)`` records
    each evaluation. A serious step (the trial gains at least :data:`SERIOUS` of the
    predicted gain) moves the centre and grows ``t`` (x 1.5); a null step adds the trial's
    sectors to the model and shrinks ``t`` (x 0.7) only when the trial is below the
    centre. The ascent stops when the model predicts no gain above :data:`STOP_GAIN`
    even with wider steps, or when a null step brings no sector the model lacks (the
    trial's value then differs from the model's only by the evaluation's rounding
    margins). Returns the number of evaluations.
    """
    # stays whole: one bundle loop (serious and null steps) whose centre, step size and model are its locals
    clock = budget.current()
    it, lam, (f_hat, g, chosen, rows) = first_finite(evaluate, c, lam, problem, track, max_iterations, deadline)
    norm = float(g @ (scale * g))
    if not np.isfinite(f_hat) or norm < 1e-12:  # no bound, or every unit covered once: solved
        return it
    sectors = _Sectors(problem.n, scale)
    sectors.add(chosen, rows, c)
    target = (upper_bound if upper_bound is not None and upper_bound > f_hat
              else f_hat + 0.05 * abs(f_hat) + 1.0)
    t = t_first = (target - f_hat) / norm
    restarts = 0
    while it < max_iterations and clock.now() < deadline:
        trial, predicted = sectors.step(lam, f_hat, t, problem.k)
        if predicted <= STOP_GAIN * max(abs(f_hat), 1.0):
            # no gain within reach: a wider step, and stop when even that finds none
            restarts += 1
            if restarts > 5 or t >= 1e4 * t_first:
                break
            t = min(t * 10.0, 1e4 * t_first)
            continue
        it += 1
        value, g, chosen, rows = evaluate(c, trial, problem)
        track.see(value, trial, chosen)
        if not np.isfinite(value):
            t *= 0.5
            continue
        serious = value - f_hat >= SERIOUS * predicted
        if serious:  # serious step: move the centre
            restarts = 0
            lam, f_hat = trial, value
            t = min(t * 1.5, 1e4 * t_first)
        elif value < f_hat:  # the trial is worse than the centre: a shorter step
            t = max(t * 0.7, 1e-9 * t_first)
        if float(g @ g) < 1e-12:  # every unit covered once: the relaxation is solved
            break
        if not sectors.add(chosen, rows, c) and not serious:
            break  # the model holds the trial's sectors already: it would propose the same point again
        sectors.trim(COLUMNS_KEPT)
    return it
