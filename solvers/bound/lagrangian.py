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
value the ascent computes is a valid bound and the best is kept. The ascent
on the concave, piecewise-linear ``LB`` is a proximal bundle method, with one
model per centre when all sectors share the same bounds
(:mod:`solvers.bound.disaggregated`) and an aggregated model otherwise, or
deflected subgradient steps (:func:`lower_bound`, ``method=``).
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
bounds are sorted). The time limit is in seconds of the active clock
(:mod:`solvers.budget`); a work clock counts the matrix entries each evaluation
passes over, so the number of steps in a budget is the same on any machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from solvers import budget
from solvers.bound.disaggregated import disaggregated_bundle, first_finite
from solvers.problem import ProgressCallback, Problem


#: Weight of the previous direction in each subgradient step (0: plain subgradient).
DEFLECTION = 0.5

#: Each multiplier's step is scaled by its unit's objective weight over the mean weight,
#: plus this floor (units of zero weight still move a little).
SCALE_FLOOR = 1e-3


@dataclass
class Bound:
    """Result of :func:`lower_bound`.

    ``value`` is the best proven lower bound (objective units, e.g.
    patient-minutes/year); ``iterations`` the evaluations of ``LB`` made;
    ``history`` the best bound after each evaluation; ``multipliers`` the ``(n,)``
multipliers ``lam`` that gave ``value`` (objective units), for
:func:`fixable_pairs`; ``centres`` the ``(k,)`` centre units the relaxation
chose for them (good starting centres for a plan when the bound is tight).
    """

    value: float
    iterations: int
    time_s: float
    history: list[float] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    multipliers: np.ndarray | None = None
    centres: np.ndarray | None = None
    method: str = ""


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


def _fill(ratio: np.ndarray, wt: np.ndarray, cap: float) -> np.ndarray:
    """Fractional knapsack: fractions of the items (weights ``wt`` > 0) taken in increasing
    ``ratio`` order until their weight reaches ``cap``."""
    order = np.argsort(ratio, kind="stable")
    ws = wt[order]
    before = np.cumsum(ws) - ws
    frac = np.clip((cap - before) / ws, 0.0, 1.0)
    out = np.empty_like(frac)
    out[order] = frac
    return out


def _sector_row(r: np.ndarray, w: np.ndarray, j: int, lo: float, hi: float) -> tuple[float, np.ndarray]:
    """``v(j)`` and the optimal fractional sector ``x`` for centre ``j``, given the reduced
    costs ``r = c[j] - lam`` and the bounds ``[lo, hi]`` (``inf`` when no sector fits)."""
    positive = w > 0
    x = (r < 0).astype(np.float64)
    x[j] = 1.0  # the centre is in its own sector
    load = float(x @ w)
    if load > hi + 1e-9:  # drop the least useful workload
        cap = hi - w[j]
        if cap < -1e-9:  # the centre alone is too heavy
            return np.inf, x
        cand = np.flatnonzero((x > 0) & positive)
        cand = cand[cand != j]
        x[cand] = _fill(r[cand] / w[cand], w[cand], max(cap, 0.0))
    elif load < lo - 1e-9:  # add the cheapest workload
        need = lo - load
        cand = np.flatnonzero((x == 0) & positive)
        if w[cand].sum() < need - 1e-9 * max(lo, 1.0):
            return np.inf, x
        q = r[cand] / w[cand]
        m = min(len(cand), 64)
        while True:  # the cheapest m candidates usually suffice: no full sort
            part = cand if m >= len(cand) else cand[np.argpartition(q, m - 1)[:m]]
            if m >= len(cand) or w[part].sum() >= need:
                break
            m *= 4
        x[part] += _fill(r[part] / w[part], w[part], need)
    return float(x @ r), x


def _floor_values(c: np.ndarray, lam: np.ndarray, w: np.ndarray, lo: float, hi: float,
                  chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """For every centre ``j``: a value ``<= v(j)`` (its own reduced cost plus every negative
    one, in float32 minus a margin above float32's rounding error) and whether it is
    exact up to that margin (the negative units' workload already fits the bounds)."""
    n = c.shape[0]
    floor = np.empty(n)
    exact = np.empty(n, dtype=bool)
    lam32 = lam.astype(np.float32)
    w32 = w.astype(np.float32)
    eps = 2.0 ** -23  # two float32 roundings per term: lam32, then c - lam32
    spread = float(np.abs(lam).sum())
    for a in range(0, n, chunk):
        idx = np.arange(a, min(a + chunk, n))
        r = c[idx] - lam32[None, :]
        x = r < 0
        x[np.arange(len(idx)), idx] = True
        floor[idx] = np.where(x, r, np.float32(0)).sum(axis=1, dtype=np.float64)
        floor[idx] -= 1.01 * eps * (c[idx].sum(axis=1, dtype=np.float64) + 2 * spread)
        load = x.astype(np.float32) @ w32
        exact[idx] = (load >= lo - 1e-9) & (load <= hi + 1e-9)
    heavy = w > hi + 1e-9
    floor[heavy], exact[heavy] = np.inf, True
    return floor, exact


def _evaluate(c: np.ndarray, lam: np.ndarray,
              problem: Problem) -> tuple[float, np.ndarray, np.ndarray, list[np.ndarray]]:
    """``LB(lam)``, the subgradient ``1 - sum_s x[s, i]``, the ``(k,)`` centre unit
    chosen for each sector and each sector's fractional assignment ``x[s]`` (``(n,)``
    arrays in sector order; empty when no choice of centres fits the bounds).

    Lazy: every centre first gets a cheap floor on ``v_s(j)``; the choice of
    centres is made on the floors, and the chosen centres whose floor is not
    exact are evaluated exactly, until the choice holds exact values only.
    It is then optimal: every other entry is a floor, below its true value.
    With several sector classes (different bounds) the choice is an assignment
    problem, so each round also evaluates the ``k`` cheapest floors of every
    class: a few rounds instead of one assignment per exact value.
    """
    w = np.asarray(problem.workload, dtype=np.float64)
    n, k = problem.n, problem.k
    lower, upper = problem.lower, problem.upper
    keys = sorted({(float(lower[s]), float(upper[s])) for s in range(k)})
    cls = np.array([keys.index((float(lower[s]), float(upper[s]))) for s in range(k)])
    table = np.empty((len(keys), n))
    known = np.empty((len(keys), n), dtype=bool)
    budget.tick("entry", 3 * len(keys) * n * n)  # the floors: passes over the cost matrix
    budget.tick("step", 250 * len(keys))  # and their fixed cost (a few dozen numpy calls each)
    for q, (lo, hi) in enumerate(keys):
        table[q], known[q] = _floor_values(c, lam, w, lo, hi)
    rows: dict[tuple[int, int], np.ndarray] = {}
    while True:
        if len(keys) == 1:
            pick = list(zip(range(k), np.argsort(table[0], kind="stable")[:k]))
        else:
            finite = np.where(np.isfinite(table[cls]), table[cls], 1e30)
            pick = list(zip(*linear_sum_assignment(finite)))
            budget.tick("entry", 14 * k * n)  # the assignment problem (about 0.4 ms for 11 x 4,025)
        todo = {(int(cls[s]), int(j)) for s, j in pick if not known[cls[s], j]}
        if not todo:
            break
        if len(keys) > 1:  # several classes: the k cheapest floors of each at once, not one assignment each
            for q in range(len(keys)):
                near = np.argpartition(table[q], min(k, n - 1))[:k]
                todo.update((q, int(j)) for j in near if not known[q, j])
        budget.tick("entry", 20 * n * len(todo))  # a sorted row per exact value
        budget.tick("step", 30 * len(todo))
        for q, j in sorted(todo):
            lo, hi = keys[q]
            table[q, j], rows[q, j] = _sector_row(c[j].astype(np.float64) - lam, w, j, lo, hi)
            known[q, j] = True
    total = float(lam.sum())
    used = np.zeros(n)
    for s, j in pick:
        q, j = int(cls[s]), int(j)
        if not np.isfinite(table[q, j]):
            return -np.inf, np.zeros(n), np.zeros(k, dtype=np.intp), []
        total += table[q, j]
        if (q, j) not in rows:
            lo, hi = keys[q]
            rows[q, j] = _sector_row(c[j].astype(np.float64) - lam, w, j, lo, hi)[1]
        used += rows[q, j]
    centres = np.zeros(k, dtype=np.intp)
    for s, j in pick:
        centres[int(s)] = int(j)
    return total, 1.0 - used, centres, [rows[int(cls[s]), int(j)] for s, j in sorted(pick)]


def lower_bound(
    problem: Problem,
    *,
    upper_bound: float | None = None,
    time_limit_s: float = 60.0,
    max_iterations: int = 2000,
    start: np.ndarray | None = None,
    costs: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
    scaled: bool = True,
    method: Literal["auto", "disaggregated", "bundle", "subgradient"] = "auto",
) -> Bound | None:
    """Best Lagrangian lower bound found within the time limit.

    Parameters
    ----------
    problem
        A ``"pmedian"`` problem without move costs (else ``None`` is returned).
    upper_bound
        Objective of a known plan: the first step aims at it (Polyak step);
        without it, at 5 % above the current bound.
    time_limit_s
        Budget in seconds of the active clock, wall or work (the cost matrix is built within it).
    max_iterations
        Stop after this many evaluations of the bound.
    start
        ``(n,)`` starting multipliers, e.g. each unit's cost in a known plan
        (objective units); default: each unit's cost to its ``n/k``-th nearest unit.
    costs
        A precomputed :func:`cost_matrix` (saves its build when calling again).
    progress
        Called with a line when the bound improves markedly.
    scaled
        Scale each multiplier's move by its unit's objective weight (see
        :data:`SCALE_FLOOR`); ``False``: the same move on every multiplier.
    method
        ``"disaggregated"``: a proximal bundle method that models each centre's
        sector by the fractional sectors evaluated so far
        (:func:`solvers.bound.disaggregated.disaggregated_bundle`; sectors with
        the same bounds only); ``"bundle"``: a proximal bundle method
        (:func:`_bundle`) that models the bound by its last
        :data:`BUNDLE_SIZE` subgradients; ``"subgradient"``: deflected
        subgradient steps; ``"auto"`` (default): ``"disaggregated"`` when all
        sectors share the same bounds, else ``"bundle"``.

    Returns
    -------
    Bound or None
        ``value`` <= the objective of every balanced plan (contiguous or not).
        Every value evaluated is a valid bound whatever the multipliers, so
        the method only changes how fast the bound rises.

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
    # stays whole: set-up and one call of the ascent; mostly docstring
    if problem.objective != "pmedian" or problem.move_rows() is not None:
        return None
    if method not in ("auto", "disaggregated", "bundle", "subgradient"):
        raise ValueError(f"unknown bound method {method!r}; choose 'auto', 'disaggregated', 'bundle' "
                         "or 'subgradient'")
    one_class = len({(float(lo), float(hi)) for lo, hi in zip(problem.lower, problem.upper)}) == 1
    if method == "disaggregated" and not one_class:
        raise ValueError("the 'disaggregated' bound method needs sectors with the same bounds "
                         "(one FTE for every worker); use 'bundle'")
    if method == "auto":
        method = "disaggregated" if one_class else "bundle"
    began = time.monotonic()  # wall seconds, for the log
    deadline = budget.now() + time_limit_s
    say = progress or (lambda line: None)
    n, k = problem.n, problem.k
    if costs is None:
        budget.tick("entry", 4 * n * n)  # the cost matrix: travel rows, products, rounding
    c = cost_matrix(problem) if costs is None else costs
    if start is not None:
        lam = np.asarray(start, dtype=np.float64).copy()
    else:
        m = min(max(int(np.ceil(n / k)), 1), n - 1)
        lam = np.partition(c, m, axis=0)[m].astype(np.float64)
    # diagonal scaling: a unit's multiplier is in objective units, so it moves in proportion
    # to the unit's weight (unit weights may span several orders of magnitude)
    weight = np.asarray(problem.weights, dtype=np.float64)
    scale = np.ones(n)
    if scaled and weight.mean() > 0:
        scale = weight / weight.mean() + SCALE_FLOOR
    run = {"bundle": _bundle, "subgradient": _subgradient,
           "disaggregated": partial(disaggregated_bundle, _evaluate)}[method]
    track = _Best(began, say)
    it = run(c, lam, problem, scale, upper_bound, deadline, max_iterations, track)
    # float64 sums of n terms: keep a margin far above their rounding error
    best = track.value - 1e-9 * abs(track.value) if np.isfinite(track.value) else track.value
    line = f"Lagrangian bound {best:,.2f} after {it} {method} steps in {time.monotonic() - began:.1f} s"
    say(line)
    return Bound(value=float(best), iterations=it, time_s=time.monotonic() - began, history=track.history,
                 log=[line], multipliers=track.lam if track.lam is not None else lam, centres=track.centres,
                 method=method)


class _Best:
    """The best bound seen, its multipliers and centres, and the history of evaluations."""

    def __init__(self, began: float, say: ProgressCallback) -> None:
        self.value, self.lam, self.centres = -np.inf, None, None
        self.history: list[float] = []
        self.began, self.say = began, say

    def see(self, value: float, lam: np.ndarray, centres: np.ndarray) -> bool:
        """Record one evaluation; True when it is a new best."""
        better = value > self.value and (not np.isfinite(self.value)
                                         or value > self.value + 1e-9 * max(abs(self.value), 1.0))
        if better:
            if np.isfinite(self.value) and value > self.value + 0.005 * abs(self.value):
                self.say(f"bound: {value:,.2f} after {len(self.history) + 1} steps, "
                         f"{time.monotonic() - self.began:.1f} s")
            self.value, self.lam, self.centres = value, lam.copy(), centres
        self.history.append(self.value)
        return better


def _subgradient(c: np.ndarray, lam: np.ndarray, problem: Problem, scale: np.ndarray, upper_bound: float | None,
                 deadline: float, max_iterations: int, track: _Best) -> int:
    """Deflected subgradient steps (Camerini, Fratta & Maffioli 1975) with Polyak step sizes,
    halved after 20 steps without a better bound. Returns the number of steps."""
    theta, stall, it = 1.0, 0, 0
    direction = None
    clock = budget.current()
    while it < max_iterations and clock.now() < deadline:
        it += 1
        value, g, chosen, _ = _evaluate(c, lam, problem)
        if track.see(value, lam, chosen):
            stall = 0
        else:
            stall += 1
            if stall >= 20:
                theta, stall = theta / 2, 0
                lam = track.lam.copy() if track.lam is not None else lam
                if theta < 1e-4:
                    break
        if float(g @ g) < 1e-12:  # every unit covered once: the relaxation is solved
            break
        if not np.isfinite(value):
            lam = lam * 0.9  # no centre fits the bounds yet: cheaper units
            continue
        direction = g if direction is None or DEFLECTION == 0 else g + DEFLECTION * direction
        norm = float(direction @ (scale * direction))
        target = upper_bound if upper_bound is not None else value + 0.05 * abs(value) + 1.0
        step = theta * max(target - value, 1e-9 * max(abs(target), 1.0)) / norm
        lam = lam + step * scale * direction
    return it


#: Cuts kept in the bundle's model (the aggregate of the dropped ones is kept too).
BUNDLE_SIZE = 40

#: A trial point becomes the new centre when it gains at least this share of the predicted gain.
BUNDLE_SERIOUS = 0.1


def _simplex_projection(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``v`` onto the unit simplex (Held, Wolfe & Crowder 1974)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    rho = np.flatnonzero(u * np.arange(1, len(v) + 1) > css)[-1]
    return np.maximum(v - css[rho] / (rho + 1.0), 0.0)


def _bundle_weights(a: np.ndarray, q: np.ndarray, t: float, start: np.ndarray, steps: int = 300) -> np.ndarray:
    """Convex weights ``theta`` minimising ``a . theta + t/2 theta' Q theta`` (the dual of the
    bundle step), by accelerated projected gradient (FISTA). Only the step's quality depends on
    its accuracy: every bound evaluated afterwards is valid."""
    if len(a) == 1:
        return np.ones(1)
    lip = t * max(float(np.linalg.eigvalsh(q)[-1]), 1e-300)
    x = y = start
    s = 1.0
    for step in range(steps):
        nxt = _simplex_projection(y - (a + t * (q @ y)) / lip)
        s_next = (1.0 + np.sqrt(1.0 + 4.0 * s * s)) / 2.0
        y = nxt + (s - 1.0) / s_next * (nxt - x)
        moved = float(np.abs(nxt - x).max())
        x, s = nxt, s_next
        if step >= 20 and moved < 1e-7:
            break
    budget.tick("step", 20 * (step + 1) * (1 + len(a) / 40))  # a projection and a product per step
    return x


def _bundle(c: np.ndarray, lam: np.ndarray, problem: Problem, scale: np.ndarray, upper_bound: float | None,
            deadline: float, max_iterations: int, track: _Best) -> int:
    """Proximal bundle method on the Lagrangian dual (Lemaréchal 1978; Kiwiel 1990).

    Each evaluation at ``lam_q`` gives a cut ``LB(lam) <= LB(lam_q) + g_q . (lam - lam_q)``
    (``LB`` is concave). The next trial point maximises the minimum of the cuts minus
    ``|lam - centre|^2 / (2 t)`` (in the metric ``1 / scale``); its dual is a small QP over
    convex weights of the cuts (:func:`_bundle_weights`). A trial point that gains at least
    :data:`BUNDLE_SERIOUS` of the predicted gain becomes the centre and ``t`` grows (x 1.5);
    otherwise its cut refines the model and ``t`` shrinks (x 0.7). Returns the evaluations made.
    """
    # stays whole: one bundle loop (serious and null steps) whose cuts, centre and step size are its locals
    clock = budget.current()
    it, lam, (f_hat, g, chosen, _) = first_finite(_evaluate, c, lam, problem, track, max_iterations, deadline)
    if not np.isfinite(f_hat):
        return it
    cuts, heights, idle = [g], [f_hat], [0]  # heights: each cut's value at the centre
    norm = float(g @ (scale * g))
    if norm < 1e-12:  # every unit covered once: the relaxation is solved
        return it
    target = (upper_bound if upper_bound is not None and upper_bound > f_hat
              else f_hat + 0.05 * abs(f_hat) + 1.0)
    t = t_first = (target - f_hat) / norm
    theta = np.ones(1)
    restarts = 0
    while it < max_iterations and clock.now() < deadline:
        gm = np.array(cuts)
        a = np.array(heights)
        weights = _bundle_weights(a, (gm * scale) @ gm.T, t,
                                  np.r_[theta, np.zeros(len(cuts) - len(theta))])
        d = t * scale * (weights @ gm)
        predicted = float(np.min(a + gm @ d)) - f_hat
        if predicted <= 1e-9 * max(abs(f_hat), 1.0):
            # no gain within reach: a wider step, and stop when even that finds none
            restarts += 1
            if restarts > 5 or t >= 1e3 * t_first:
                break
            t = min(t * 10.0, 1e3 * t_first)
            theta = weights
            continue
        trial = lam + d
        it += 1
        value, g, chosen, _ = _evaluate(c, trial, problem)
        track.see(value, trial, chosen)
        if not np.isfinite(value):
            t *= 0.5
            theta = weights
            continue
        if value - f_hat >= BUNDLE_SERIOUS * predicted:  # serious step: move the centre
            restarts = 0
            heights = [h + float(q @ d) for h, q in zip(heights, cuts)]
            lam, f_hat = trial, value
            t = min(t * 1.5, 1e3 * t_first)
        else:  # null step: the new cut refines the model
            t = max(t * 0.7, 1e-9 * t_first)
        if float(g @ g) < 1e-12:
            break
        idle = [0 if w > 1e-9 else n + 1 for w, n in zip(weights, idle)]
        cuts.append(g)
        heights.append(value + float(g @ (lam - trial)))
        idle.append(0)
        theta = np.r_[weights, 0.0]
        if len(cuts) > BUNDLE_SIZE:  # keep the aggregate cut and the cuts used lately
            # its height at the (possibly moved) centre, from the shifted heights of the cuts it combines
            aggregate, height = weights @ gm, float(weights @ np.array(heights[:-1]))
            keep = [q for q in range(len(cuts) - 1) if idle[q] < 10][-(BUNDLE_SIZE - 2):] + [len(cuts) - 1]
            cuts = [aggregate] + [cuts[q] for q in keep]
            heights = [height] + [heights[q] for q in keep]
            idle = [0] + [idle[q] for q in keep]
            theta = np.r_[1.0, np.zeros(len(keep))]
    return it
