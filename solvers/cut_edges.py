"""Minimum cut edges: contiguous, balanced sectors with the fewest edges between sectors.

The objective (``Problem.objective == "cut_edges"``) is the number of
contiguity edges whose two units are in different sectors: a compactness
measure that needs no distances (Validi & Buchanan, *Political districting to
minimize cut edges*, Mathematical Programming Computation 14, 2022). With
:func:`cut_edges` ``weight=`` an edge attribute (e.g. ``"length"``, the shared
boundary in km), it is the summed attribute instead: the boundary length.

Backends of :func:`solve_cut_edges`:

``"heuristic"``
    A compact balanced start (:func:`start_plan`: the p-median heuristic of
    :mod:`solvers.heuristic` on the problem's travel costs, rebalanced by the
    allocation MIP when local moves cannot), then :func:`improve_cut`: boundary
    moves and swaps that lower the cut while every sector stays connected and
    within its bounds, then a tabu search that may cross unbalanced plans
    (balance as a penalty); new starts (next seeds) while time is left. No bound.
``"exact"``
    :func:`exact_cut_edges`: the labeling MIP of Validi & Buchanan (``x[i, s]``
    assignment, ``y[e]`` cut indicators, single-commodity flow on uncut edges
    from one root per sector), HiGHS through OR-Tools MathOpt, warm-started
    with a short heuristic plan. ``status == "optimal"`` when proven; the
    bound is always reported. For up to a few hundred units (HiGHS may
    overrun the time limit on larger models).
``"auto"``
    ``"exact"`` up to :data:`AUTO_EXACT_MAX_UNITS` units, the heuristic alone
    above.

:attr:`Solution.centres` is each sector's weighted medoid under the problem's
travel costs (:func:`solvers.exact.best_centres`): a reference unit for maps
and reports, not part of the objective.

Tie-break
    For the ``"pmedian"`` and ``"base"`` objectives, cut edges (or boundary
    length) serve as a compactness tie-break: :func:`tie_break` lowers the cut
    of a valid plan with the same local search (:class:`_CutSearch`) while the
    primary objective stays at most ``(1 + slack) x`` the plan's own (``slack
    = 0``: ties only), every sector connected and within bounds, locks and the
    cap on moves kept; verified, else the input plan is returned.
    :func:`solvers.engine.solve` runs it with ``tie_break_slack=`` /
    ``tie_break_weight=`` (``sectorize solve --tie-break-slack``, ``--edge-weight``).

Examples
--------
>>> import networkx as nx, numpy as np
>>> from solvers.problem import DenseTravelTimes, Problem
>>> g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(4, 4))
>>> xy = np.array([(i // 4, i % 4) for i in range(16)], dtype=float)
>>> t = DenseTravelTimes(np.abs(xy[:, None] - xy[None]).sum(-1))
>>> p = Problem(g, np.ones(16), np.array([8.0, 8.0]), 0.0, t, objective="cut_edges")
>>> sol = solve_cut_edges(p, time_limit_s=10)
>>> sol.objective, sol.status, sorted(np.bincount(sol.assignment).tolist())
(4.0, 'optimal', [8, 8])
"""

from __future__ import annotations

import datetime
import math
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Literal

import networkx as nx
import numpy as np
from ortools.math_opt.python import mathopt

from solvers.check import check_plan, diagnose
from solvers.exact import NoPlanFoundError, best_centres, sector_classes
from solvers.heuristic import _Moves, heuristic_solve, neighbour_lists, recentre
from solvers.mip import allocate
from solvers.problem import InfeasibleError, ProgressCallback, Problem, Solution

CutBackend = Literal["auto", "heuristic", "exact"]
CUT_BACKENDS: tuple[str, ...] = ("auto", "heuristic", "exact")

#: Plain-language definition, for summaries.
DEFINITION = "number of adjacency edges between different sectors"

#: ``"auto"`` runs the exact MIP up to this many units, the heuristic alone above.
#: Measured with 60 s on the published tract graphs (``benchmarks/README.md``): the
#: warm-started MIP proved NH (n = 295), ID (298) and ME (358) optimal in some runs; on
#: the larger ones (n = 484..687) it found no better plan than the heuristic alone and
#: HiGHS overran the time limit in its root node (e.g. 98 s for a 60 s limit on NM, n = 499).
AUTO_EXACT_MAX_UNITS = 400

#: The warm start of the MIP stops after this many heuristic starts in a row without a better plan.
WARM_START_STALL = 10

#: Up to this many units the MIP's root is each sector's smallest unit (stronger: it proves the
#: WV county optimum in 60 s, the free root does not); above, any member may be the root.
#: Measured: with smallest-unit roots, HiGHS spent 134 s in the root node of MS tracts
#: (n = 664) against a 20 s time limit, ignoring the limit and MathOpt's interrupter; with free
#: roots it stopped at 20.3 s there, but still overran on NM tracts (n = 499: 98 s for 60 s).
#: No overrun was seen up to 358 units.
SMALLEST_ROOT_MAX_UNITS = 400

#: Slack on the balance bounds, relative (as in :mod:`solvers.check`).
_EPS = 1e-9


def cut_edges(graph: nx.Graph, assignment, *, weight: str | None = None) -> float:
    """Number of edges of ``graph`` whose ends are in different sectors.

    Parameters
    ----------
    graph
        Contiguity graph over ``0..n-1``.
    assignment
        ``(n,)`` sector of each unit.
    weight
        Edge attribute to sum instead of counting (e.g. ``"length"``, shared
        boundary in km: then the result is the boundary length between
        sectors); an edge without it counts 1, as in networkx.

    Returns
    -------
    int or float
        The count (``int``) without ``weight``, else the summed attribute.

    Examples
    --------
    >>> g = nx.cycle_graph(4)
    >>> cut_edges(g, [0, 0, 1, 1])
    2
    >>> nx.set_edge_attributes(g, {(1, 2): 2.5}, "length")
    >>> cut_edges(g, [0, 0, 1, 1], weight="length")
    3.5
    """
    a = np.asarray(assignment)
    if weight is None:
        return sum(1 for u, v in graph.edges if a[u] != a[v])
    return float(sum(d.get(weight, 1) for u, v, d in graph.edges(data=True) if a[u] != a[v]))


def _edge_costs(problem: Problem, weight: str | None) -> tuple[np.ndarray, np.ndarray]:
    """``(m, 2)`` edges and ``(m,)`` their costs (1, or the ``weight`` attribute)."""
    edges = np.array([(u, v) for u, v in problem.graph.edges], dtype=np.intp).reshape(-1, 2)
    if weight is None:
        return edges, np.ones(len(edges))
    costs = np.array([float(d.get(weight, 1)) for _, _, d in problem.graph.edges(data=True)])
    if not np.all(np.isfinite(costs)) or (costs < 0).any():
        raise ValueError(f"edge attribute {weight!r} must be finite and >= 0 on every edge")
    return edges, costs


def _canonical(problem: Problem, assignment: np.ndarray) -> np.ndarray:
    """Relabel interchangeable sectors (same bounds, no locks) in the order of their smallest unit.

    The plan is the same; this is the labelling the MIP's symmetry breaking keeps.
    """
    a = np.asarray(assignment, dtype=np.intp)
    out = a.copy()
    for c in sector_classes(problem):
        if len(c.sectors) < 2:
            continue
        first = {s: int(np.flatnonzero(a == s).min()) if (a == s).any() else problem.n for s in c.sectors}
        for new, old in zip(c.sectors, sorted(c.sectors, key=first.get)):
            out[a == old] = new
    return out


# --------------------------------------------------------------------------
# Heuristic
# --------------------------------------------------------------------------


def start_plan(problem: Problem, *, time_limit_s: float, seed: int = 0, start: np.ndarray | None = None,
               restarts: int = 2) -> np.ndarray:
    """A compact, balanced, contiguous plan to start the cut search from.

    The p-median heuristic (:func:`solvers.heuristic.heuristic_solve`,
    ``restarts`` starts, at most ``time_limit_s`` seconds) on the problem's
    travel costs: compact sectors have short boundaries. When its local moves
    cannot meet tight bounds, the allocation MIP (:func:`solvers.mip.allocate`)
    rebalances it around the same centres. ``start`` (a plan, e.g. last
    year's) is repaired and used instead of random starts.

    Raises
    ------
    NoPlanFoundError
        When no balanced plan was found in the time (infeasibility not proven).
    """
    began = time.monotonic()
    compact = replace(problem, objective="pmedian")
    assign, centres, _, _ = heuristic_solve(compact, time_limit_s=time_limit_s, seed=seed,
                                            restarts=1 if start is not None else restarts, start=start)
    if not check_plan(problem, assign):
        return assign
    left = time_limit_s - (time.monotonic() - began)
    alloc = allocate(compact, centres, time_limit_s=max(left, 1.0), hint=assign)
    if alloc.assignment is not None and not check_plan(problem, alloc.assignment):
        return alloc.assignment
    raise NoPlanFoundError(
        f"no balanced contiguous plan found in {time_limit_s:.1f} s (bounds {problem.lower.min():,.1f} to "
        f"{problem.upper.max():,.1f} per sector); widen the tolerance or give more time"
    )


class _CutSearch:
    """Assignment, loads and cut of the local search, with move and swap evaluation.

    With ``centres`` and ``limit`` (the tie-break, :func:`tie_break`), every
    move and swap must also keep the problem's own objective, measured from
    these fixed centres (which never leave their sector) and updated
    incrementally from :meth:`Problem.cost_rows`, at most ``limit``; and the
    cap on moves from a previous plan (:attr:`Problem.max_moved`) is kept.
    Without them (the cut-edges objective) only the cut counts.
    """

    def __init__(self, problem: Problem, assign: np.ndarray, weight: str | None,
                 centres: np.ndarray | None = None, limit: float | None = None):
        self.p = problem
        self.nbrs = neighbour_lists(problem)
        g = problem.graph
        self.cost = [[float(g.edges[u, v].get(weight, 1)) if weight else 1.0 for v in vs]
                     for u, vs in enumerate(self.nbrs)]
        self.m = _Moves(problem, assign, self.nbrs)
        self.a = self.m.a
        self.no_centres = np.full(problem.k, -1, dtype=np.intp)
        slack = _EPS * np.maximum(1.0, np.abs(problem.upper))
        self.lo, self.hi = problem.lower - slack, problem.upper + slack
        self.cut = float(cut_edges(g, assign, weight=weight))
        # the primary objective (tie-break only): (k, n) costs for fixed centres, its value, its ceiling
        self.centres = self.no_centres
        self.costs: np.ndarray | None = None
        self.primary, self.limit, self.primary_eps = 0.0, math.inf, 0.0
        if centres is not None and limit is not None:
            self.set_centres(np.asarray(centres, dtype=np.intp))
            self.limit = float(limit)
            # a cut-neutral move must lower the primary objective by more than rounding noise
            self.primary_eps = 1e-12 * max(abs(self.primary), 1.0)

    def set_centres(self, centres: np.ndarray) -> None:
        """Measure the primary objective from ``centres`` (recomputed once, then kept incrementally)."""
        self.centres = centres
        self.costs = self.p.cost_rows(centres)
        self.primary = float(self.costs[self.a, np.arange(self.p.n)].sum())

    def primary_delta(self, u: int, t: int) -> float:
        """Change of the primary objective if ``u`` moves to sector ``t`` (0 without one)."""
        if self.costs is None:
            return 0.0
        return float(self.costs[t, u] - self.costs[self.a[u], u])

    def delta(self, u: int, t: int) -> float:
        """Change of the cut if ``u`` moves to sector ``t``."""
        s, a, d = self.a[u], self.a, 0.0
        for v, c in zip(self.nbrs[u], self.cost[u]):
            if a[v] == s:
                d += c
            elif a[v] == t:
                d -= c
        return d

    def move_ok(self, u: int, t: int) -> bool:
        s, w = self.a[u], self.m.w[u]
        return (self.m.loads[s] - w >= self.lo[s] and self.m.loads[t] + w <= self.hi[t]
                and self.m.within_cap(u, t) and self.primary + self.primary_delta(u, t) <= self.limit
                and self.m.can_leave(u, self.centres))

    def move(self, u: int, t: int, d: float) -> None:
        self.primary += self.primary_delta(u, t)
        self.m.move(u, t)
        self.cut += d

    def connected(self, s: int, seed_unit: int) -> bool:
        """True when sector ``s`` (which holds ``seed_unit``) is connected."""
        a, nbrs = self.a, self.nbrs
        seen = {seed_unit}
        queue = deque([seed_unit])
        while queue:
            x = queue.popleft()
            for y in nbrs[x]:
                if a[y] == s and y not in seen:
                    seen.add(y)
                    queue.append(y)
        return len(seen) == self.m.size[s]

    def try_swap(self, u: int, v: int, threshold: float) -> float | None:
        """Swap ``u`` (sector s) and ``v`` (sector t) when it keeps both sectors connected and
        within bounds and changes the cut by less than ``threshold``; returns the change or None."""
        a, w, loads, m = self.a, self.m.w, self.m.loads, self.m
        s, t = int(a[u]), int(a[v])
        dw = w[v] - w[u]
        if not (self.lo[s] <= loads[s] + dw <= self.hi[s] and self.lo[t] <= loads[t] - dw <= self.hi[t]):
            return None
        if self.centres[s] == u or self.centres[t] == v:
            return None
        if self.primary + self.primary_delta(u, t) + self.primary_delta(v, s) > self.limit:
            return None
        if m.cap is not None:
            dm = m.move_delta(u, t) + m.move_delta(v, s)
            if dm > 0 and m.moved + dm > m.cap + 1e-9:
                return None
        d1 = self.delta(u, t)
        a[u] = t
        d = d1 + self.delta(v, s)
        a[v] = s
        if d < threshold and self.connected(s, v) and self.connected(t, u):
            a[u], a[v] = s, t
            self.move(u, t, d1)
            self.move(v, s, d - d1)
            return d
        a[u], a[v] = s, t
        return None

    def free_boundary(self) -> list[int]:
        return [int(u) for u in self.m.boundary() if int(u) not in self.p.locked]

    def descend(self, rng: np.random.Generator, deadline: float) -> None:
        """Improving single moves, then improving swaps, until neither improves (or time is up)."""
        a, nbrs = self.a, self.nbrs
        while time.monotonic() < deadline:
            units = self.free_boundary()
            rng.shuffle(units)
            improved = False
            for u in units:
                s = int(a[u])
                gains = sorted((self.delta(u, t), self.primary_delta(u, t), t)
                               for t in {int(a[v]) for v in nbrs[u]} - {s})
                for d, dp, t in gains:
                    # a lower cut, or (tie-break) the same cut and a lower primary objective
                    if (d < -1e-9 or (abs(d) <= 1e-9 and dp < -self.primary_eps)) and self.move_ok(u, t):
                        self.move(u, t, d)
                        improved = True
                        break
            if improved:
                continue
            if self._swap_pass(units, -1e-9, deadline) is None:
                return

    def _swap_pass(self, units: list[int], threshold: float, deadline: float) -> float | None:
        """First swap of two boundary units of adjacent sectors that changes the cut by less than
        ``threshold`` (in the order of ``units``)."""
        a, nbrs = self.a, self.nbrs
        facing: dict[tuple[int, int], list[int]] = {}
        for v in units:
            for t in {int(a[x]) for x in nbrs[v]} - {int(a[v])}:
                facing.setdefault((int(a[v]), t), []).append(v)
        for u in units:
            if time.monotonic() >= deadline:
                return None
            s = int(a[u])
            for t in sorted({int(a[x]) for x in nbrs[u]} - {s}):
                for v in facing.get((t, s), []):
                    if a[v] != t or a[u] != s:
                        continue
                    d = self.try_swap(u, int(v), threshold)
                    if d is not None:
                        return d
        return None

    def tabu(self, rng: np.random.Generator, deadline: float, patience: int) -> tuple[np.ndarray, float]:
        """Tabu search over single boundary moves with the balance bounds as a penalty.

        Each iteration makes the best move by ``cut change + alpha x penalty change``,
        where the penalty is each sector's excess over its bounds in mean unit
        workloads; ``alpha`` grows (x1.02 per iteration) while the plan is out of bounds and shrinks
        while it is within them, so the search crosses unbalanced plans to reach
        other balanced ones. A unit may not return to the sector it left for
        5-14 iterations, unless that gives a new best balanced plan. Sectors stay
        connected and non-empty throughout; locked units never move. Stops after
        ``patience`` iterations without a new best balanced plan, or at
        ``deadline``. Returns the best balanced plan and its cut.
        """
        p, a, nbrs, m = self.p, self.a, self.nbrs, self.m
        k = p.k
        unit = max(float(m.w.mean()), 1e-9)

        def pen(load: float, s: int) -> float:
            return max(0.0, self.lo[s] - load, load - self.hi[s]) / unit

        total = sum(pen(m.loads[s], s) for s in range(k))
        best = self.state() if total == 0 else (a.copy(), math.inf)
        tabu_until = np.zeros((p.n, k), dtype=np.int64)
        alpha, it, idle = 1.0, 0, 0
        while idle < patience and time.monotonic() < deadline:
            it += 1
            moves = []
            for u in self.free_boundary():
                s, wu = int(a[u]), m.w[u]
                for t in {int(a[v]) for v in nbrs[u]} - {s}:
                    dc = self.delta(u, t)
                    dp = (pen(m.loads[s] - wu, s) + pen(m.loads[t] + wu, t)
                          - pen(m.loads[s], s) - pen(m.loads[t], t))
                    aspires = total + dp <= 1e-12 and self.cut + dc < best[1] - 1e-9
                    if tabu_until[u, t] > it and not aspires:
                        continue
                    if self.costs is not None and (self.primary + self.primary_delta(u, t) > self.limit
                                                   or not m.within_cap(u, t)):
                        continue
                    moves.append((dc + alpha * dp, float(rng.random()), u, t, dc, dp))
            moves.sort()
            for _, _, u, t, dc, dp in moves:
                if m.can_leave(u, self.centres):
                    tabu_until[u, a[u]] = it + 5 + int(rng.integers(10))
                    self.move(u, t, dc)
                    total = sum(pen(m.loads[s], s) for s in range(k))  # exact, no drift
                    break
            else:
                break
            if total > 1e-12:
                alpha = min(alpha * 1.02, 1e4)
            else:
                alpha = max(alpha / 1.02, 0.05)
                total = 0.0
                if self.cut < best[1] - 1e-9:
                    best = self.state()
                    idle = 0
                    continue
            idle += 1
        return best

    def state(self) -> tuple[np.ndarray, float]:
        return self.a.copy(), self.cut

    def restore(self, saved: tuple[np.ndarray, float]) -> None:
        self.a[:] = saved[0]
        self.cut = saved[1]
        self.m.loads = np.bincount(self.a, weights=self.m.w, minlength=self.p.k)
        self.m.size = np.bincount(self.a, minlength=self.p.k)
        self.m.moved = self.p.moved(self.a)
        if self.costs is not None:
            self.primary = float(self.costs[self.a, np.arange(self.p.n)].sum())


def improve_cut(
    problem: Problem,
    assignment: np.ndarray,
    *,
    weight: str | None = None,
    seed: int = 0,
    time_limit_s: float = 10.0,
    patience: int = 1000,
) -> tuple[np.ndarray, float]:
    """Lower the cut of a valid plan by local search; every sector stays connected and within bounds.

    Descent: single boundary moves (a unit joins an adjacent sector; the
    sector it leaves must stay connected) and swaps of two boundary units of
    adjacent sectors (both sectors re-checked), each applied when it lowers
    the cut. Then a tabu search over single moves with the balance bounds as
    an adaptive penalty (:meth:`_CutSearch.tabu`), until ``patience``
    iterations bring no new best balanced plan or time is up; its best plan
    gets a last descent. Locked units never move.

    Parameters
    ----------
    problem
        The problem (its bounds, locks and graph are used).
    assignment
        ``(n,)`` a valid plan (:func:`solvers.check.check_plan` finds nothing).
    weight
        Edge attribute summed instead of counting edges (see :func:`cut_edges`).
    seed
        Seed of the move order and tie-breaks: same seed, same start, same plan
        (unless the time limit cuts the search short).
    time_limit_s
        Seconds.
    patience
        Tabu iterations without a new best balanced plan before stopping.

    Returns
    -------
    (assignment, cut)
        The best plan found (a new array) and its cut; never worse than the start.

    Examples
    --------
    >>> from solvers.problem import DenseTravelTimes
    >>> g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(2, 4), ordering="sorted")
    >>> p = Problem(g, np.ones(8), np.array([4.0, 4.0]), 0.0, DenseTravelTimes(np.zeros((8, 8))))
    >>> start = np.array([0, 0, 0, 1, 0, 1, 1, 1])        # unit i is row i // 4, column i % 4
    >>> cut_edges(g, start)
    4
    >>> a, cut = improve_cut(p, start)
    >>> cut, a.tolist()                                     # columns 0-1 against columns 2-3
    (2.0, [0, 0, 1, 1, 0, 0, 1, 1])
    """
    a = np.asarray(assignment, dtype=np.intp).copy()
    problems = check_plan(problem, a)
    if problems:
        raise ValueError("improve_cut needs a valid plan to start from: " + "; ".join(problems[:3]))
    deadline = time.monotonic() + time_limit_s
    rng = np.random.default_rng(seed)
    search = _CutSearch(problem, a, weight)
    search.descend(rng, deadline)
    best = search.state()
    found = search.tabu(rng, deadline, patience)
    if found[1] < best[1] - 1e-9 and not check_plan(problem, found[0]):
        search.restore(found)
        search.descend(rng, deadline)
        best = search.state()
    return best[0], best[1]


def heuristic_cut_edges(
    problem: Problem,
    *,
    weight: str | None = None,
    time_limit_s: float = 30.0,
    seed: int = 0,
    starts: int | None = None,
    stall: int | None = None,
    progress: ProgressCallback | None = None,
    start: np.ndarray | None = None,
) -> Solution:
    """Start plans (seeds ``seed``, ``seed + 1``, ...) each improved by :func:`improve_cut`; the best.

    ``starts`` caps the number of start plans (default: as many as time
    allows; with a cap and enough time the result is the same on every
    machine); ``stall`` stops after that many starts in a row without a new
    best. ``start`` (a plan) replaces the first start. Raises
    :class:`~solvers.exact.NoPlanFoundError` when no start was balanced.
    """
    began = time.monotonic()
    deadline = began + time_limit_s
    say = progress or (lambda line: None)
    log: list[str] = []
    best: tuple[np.ndarray, float] | None = None
    failure: NoPlanFoundError | None = None
    tried = idle = 0
    while (time.monotonic() < deadline and (starts is None or tried < starts)
           and (stall is None or idle < stall)):
        left = deadline - time.monotonic()
        share = max(min(0.2 * time_limit_s, 10.0, 0.5 * left), 0.2)
        try:
            plan = start_plan(problem, time_limit_s=share, seed=seed + tried,
                              start=start if tried == 0 else None)
        except NoPlanFoundError as err:
            failure = err
            tried += 1
            idle += best is not None
            continue
        first = float(cut_edges(problem.graph, plan, weight=weight))
        left = deadline - time.monotonic()
        # each start keeps searching while it improves, with at most half the time left (all for the last)
        budget = left if starts is not None and tried == starts - 1 else max(0.5 * left, 0.1)
        plan, cut = improve_cut(problem, plan, weight=weight, seed=seed + tried, time_limit_s=budget)
        tried += 1
        idle += 1
        if best is None or cut < best[1] - 1e-9:
            best, idle = (plan, cut), 0
            line = (f"cut edges: start {tried} (seed {seed + tried - 1}): {first:,.6g} -> {cut:,.6g} "
                    f"after {time.monotonic() - began:.1f} s")
            log.append(line)
            say(line)
    if best is None:
        raise failure or NoPlanFoundError(f"no start plan completed in {time_limit_s:g} s; give more time")
    log.append(f"cut edges: best {best[1]:,.6g} over {tried} start(s), {time.monotonic() - began:.1f} s")
    assign = _canonical(problem, best[0])
    return Solution(assignment=assign, centres=best_centres(problem, assign), objective=best[1],
                    status="feasible", backend="heuristic", time_s=time.monotonic() - began, log=log)


# --------------------------------------------------------------------------
# Tie-break: fewer cut edges for a plan of another objective
# --------------------------------------------------------------------------

#: Share of :func:`solvers.engine.solve`'s time limit kept for the tie-break, and its cap in seconds
#: (:func:`tie_break_seconds`).
TIE_BREAK_SHARE = 0.1
TIE_BREAK_MAX_S = 10.0

#: Relative tolerance on the slack bound, for floating-point sums only: the returned objective is at
#: most ``(1 + slack) x start + TIE_BREAK_RTOL x max(|that|, 1)``.
TIE_BREAK_RTOL = 1e-9


@dataclass
class TieBreak:
    """What :func:`tie_break` returns.

    Attributes
    ----------
    assignment, centres
        The plan returned: the improved one, or the input plan itself
        (``changed`` False) when nothing better was found or the result
        failed its verification.
    objective
        Its primary objective, :meth:`Problem.objective_value`.
    objective_before
        The input plan's.
    limit
        ``objective_before + slack x |objective_before|``: the ceiling kept.
    cut_before, cut_after
        The measure lowered: cut edges, or the summed ``weight`` attribute.
    edges_before, edges_after
        Cut edges counted (the same as the cut without ``weight``).
    slack, weight
        As given.
    changed
        Whether the returned plan differs from the input one.
    time_s, log
        Seconds spent; one summary line (and the reason when the input plan was kept).
    """

    assignment: np.ndarray
    centres: np.ndarray
    objective: float
    objective_before: float
    limit: float
    cut_before: float
    cut_after: float
    edges_before: int
    edges_after: int
    slack: float
    weight: str | None
    changed: bool
    time_s: float
    log: list[str] = field(default_factory=list)

    @property
    def objective_change(self) -> float:
        """Relative change of the primary objective (``0.002``: +0.2 %)."""
        return (self.objective - self.objective_before) / abs(self.objective_before) if self.objective_before else 0.0

    def summary(self) -> dict:
        """JSON-ready figures (for ``summary.json``)."""
        out = {"slack": self.slack, "objective_before": self.objective_before, "objective_after": self.objective,
               "objective_change_pct": 100 * self.objective_change, "cut_edges_before": self.edges_before,
               "cut_edges_after": self.edges_after, "changed": self.changed, "time_s": self.time_s}
        if self.weight is not None:
            out.update(edge_weight=self.weight, boundary_before=self.cut_before, boundary_after=self.cut_after)
        return out


def tie_break_seconds(time_limit_s: float) -> float:
    """Seconds of a ``time_limit_s`` solve kept for the tie-break: 10 %, at most 10 s."""
    return min(TIE_BREAK_SHARE * time_limit_s, TIE_BREAK_MAX_S)


def check_tie_break(problem: Problem, slack: float | None, weight: str | None) -> None:
    """Raise :class:`ValueError` when a tie-break cannot run with these arguments.

    ``slack`` must be a finite number >= 0, the objective ``"pmedian"`` or
    ``"base"``, and ``weight`` (when given) an attribute of at least one edge,
    finite and >= 0 wherever present (an edge without it counts 1, as in
    :func:`cut_edges`). ``slack=None`` with ``weight=None`` is no tie-break.
    """
    if slack is None:
        if weight is not None:
            raise ValueError("an edge weight for the tie-break needs a slack (0 for a pure tie-break)")
        return
    if problem.objective == "cut_edges":
        raise ValueError("the tie-break lowers the cut of a 'pmedian' or 'base' plan; the 'cut_edges' "
                         "objective minimises the cut already (give solve_cut_edges weight= for boundary length)")
    if not (isinstance(slack, (int, float)) and math.isfinite(slack) and slack >= 0):
        raise ValueError(f"the tie-break slack must be a finite fraction >= 0 (0.01 = 1 %), got {slack!r}")
    if weight is not None:
        if problem.graph.number_of_edges() and not any(weight in d for *_, d in problem.graph.edges(data=True)):
            raise ValueError(f"no edge of the graph has the attribute {weight!r}")
        _edge_costs(problem, weight)


def tie_break(
    problem: Problem,
    assignment: np.ndarray,
    centres: np.ndarray,
    *,
    slack: float = 0.0,
    weight: str | None = None,
    time_limit_s: float = 10.0,
    seed: int = 0,
    patience: int = 1000,
) -> TieBreak:
    """Fewer cut edges (or a shorter boundary) for a valid plan, at a bounded cost in its own objective.

    A compactness tie-break for the ``"pmedian"`` and ``"base"`` objectives:
    the local search of :func:`improve_cut` (descent over boundary moves and
    swaps, then tabu search), with two more rules on every move and swap:
    the primary objective, kept incrementally from the fixed centres'
    :meth:`Problem.cost_rows`, stays at most ``limit = (1 + slack) x`` the
    start's, and the cap on moves from a previous plan
    (:attr:`Problem.max_moved`) holds. Centres never leave their sector.
    Between rounds each centre moves to its sector's weighted medoid
    (:func:`solvers.heuristic.recentre`) when that lowers the objective,
    which leaves more room under the limit. With ``slack == 0`` no move
    worsens the objective: only ties (and improvements) are taken. The
    descent also takes cut-neutral moves that lower the objective.

    Guaranteed (verified at the end, else the input plan is returned with
    ``changed`` False and the reason in ``log``): the plan passes
    :func:`solvers.check.check_plan` (contiguity, bounds, locks, cap on
    moves); ``objective <= limit`` up to :data:`TIE_BREAK_RTOL` relative
    rounding; the cut is not above the start's. Not guaranteed: the fewest
    cut edges within the limit (a local search).

    Parameters
    ----------
    problem
        A ``"pmedian"`` or ``"base"`` problem.
    assignment, centres
        A valid plan and the centres its objective is measured from (e.g. a
        :class:`Solution`'s).
    slack
        Relative room on the objective (``0.005``: at most +0.5 %).
    weight
        Edge attribute to sum instead of counting edges (e.g. shared boundary length).
    time_limit_s
        Seconds.
    seed
        Seed of the move order: same seed, same plan (unless time cuts the search short).
    patience
        Tabu iterations without a better plan before a round stops.

    Raises
    ------
    ValueError
        Bad arguments (:func:`check_tie_break`), or an invalid starting plan.

    Examples
    --------
    >>> from solvers.problem import DenseTravelTimes
    >>> g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(2, 4), ordering="sorted")
    >>> t = DenseTravelTimes(np.zeros((8, 8)))               # every plan costs 0: all are ties
    >>> p = Problem(g, np.ones(8), np.array([4.0, 4.0]), 0.0, t)
    >>> r = tie_break(p, np.array([0, 0, 0, 1, 0, 1, 1, 1]), np.array([0, 7]))
    >>> (r.edges_before, r.edges_after), r.objective, r.assignment.tolist()
    ((4, 2), 0.0, [0, 0, 1, 1, 0, 0, 1, 1])
    """
    began = time.monotonic()
    check_tie_break(problem, slack, weight)
    a0 = np.asarray(assignment, dtype=np.intp).copy()
    c0 = np.asarray(centres, dtype=np.intp).copy()
    if c0.shape != (problem.k,) or (c0 < 0).any() or (c0 >= problem.n).any():
        raise ValueError(f"centres must be {problem.k} units of the problem, got {c0.tolist()}")
    problems = check_plan(problem, a0)
    if problems:
        raise ValueError("tie_break needs a valid plan to start from: " + "; ".join(problems[:3]))
    g = problem.graph
    obj0 = problem.objective_value(a0, c0)
    limit = obj0 + float(slack) * abs(obj0)
    tol = TIE_BREAK_RTOL * max(abs(limit), 1.0)
    cut0, edges0 = float(cut_edges(g, a0, weight=weight)), int(cut_edges(g, a0))
    deadline = began + 0.97 * time_limit_s  # a reserve for the checks below
    rng = np.random.default_rng(seed)
    # the search keeps half the rounding tolerance, the verification below allows all of it
    search = _CutSearch(problem, a0.copy(), weight, centres=c0, limit=limit + 0.5 * tol)
    while time.monotonic() < deadline:
        search.descend(rng, deadline)
        best = search.state()
        found = search.tabu(rng, deadline, patience)
        if found[1] < best[1] - 1e-9:
            search.restore(found)
            search.descend(rng, deadline)
        else:
            search.restore(best)
        # each centre to its sector's medoid: never a higher objective, more room under the limit
        moved = recentre(problem, search.a, search.centres)
        if np.array_equal(moved, search.centres):
            break
        if problem.objective_value(search.a, moved) >= search.primary - search.primary_eps:
            break
        search.set_centres(moved)
    a1, c1 = search.a.copy(), search.centres.copy()
    obj1 = problem.objective_value(a1, c1)
    cut1 = float(cut_edges(g, a1, weight=weight))
    what = "cut edges" if weight is None else f"boundary ({weight})"
    log: list[str] = []
    issues = check_plan(problem, a1)
    if issues:
        log.append(f"tie-break: its plan failed the check ({'; '.join(issues[:3])}); input plan kept")
    elif obj1 > limit + tol:
        log.append(f"tie-break: objective {obj1:,.6g} above the limit {limit:,.6g}; input plan kept")
    elif cut1 > cut0 + 1e-9:
        log.append(f"tie-break: {what} rose from {cut0:,.6g} to {cut1:,.6g}; input plan kept")
    better = not log and (cut1 < cut0 - 1e-9 or obj1 < obj0 - search.primary_eps)
    if not better:
        a1, c1, obj1, cut1 = a0, c0, obj0, cut0
    edges1 = int(cut_edges(g, a1))
    change = (obj1 - obj0) / abs(obj0) if obj0 else 0.0
    line = f"tie-break: cut edges {edges0:,} -> {edges1:,}"
    if weight is not None:
        line = f"tie-break: boundary ({weight}) {cut0:,.6g} -> {cut1:,.6g}, cut edges {edges0:,} -> {edges1:,}"
    log.append(f"{line}, objective {100 * change:+.2f} % (slack {100 * slack:g} %), "
               f"{time.monotonic() - began:.1f} s")
    return TieBreak(assignment=a1, centres=c1, objective=float(obj1), objective_before=float(obj0),
                    limit=float(limit), cut_before=cut0, cut_after=cut1, edges_before=edges0, edges_after=edges1,
                    slack=float(slack), weight=weight, changed=better, time_s=time.monotonic() - began, log=log)


def tie_break_solution(
    problem: Problem,
    solution: Solution,
    *,
    slack: float,
    weight: str | None = None,
    time_limit_s: float = 10.0,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> Solution:
    """:func:`tie_break` on a :class:`Solution` (what :func:`solvers.engine.solve` runs).

    Returns a new Solution with the tie-broken plan, its objective
    recomputed, the same ``bound`` (never above the objective), the log
    lines appended and :attr:`Solution.tie_break` set. The status stays
    honest: ``"optimal"`` only when the input was proven optimal and the
    objective did not rise (beyond rounding), or when the bound proves the
    new objective; a proven-optimal plan traded for fewer cut edges with a
    positive slack becomes ``"feasible"`` (its ``gap`` measured against the bound).
    """
    result = tie_break(problem, solution.assignment, solution.centres, slack=slack, weight=weight,
                       time_limit_s=max(time_limit_s, 0.1), seed=seed)
    say = progress or (lambda line: None)
    for line in result.log:
        say(line)
    out = replace(solution, log=[*solution.log, *result.log], time_s=solution.time_s + result.time_s,
                  tie_break=result)
    if not result.changed:
        return out
    objective = result.objective
    tol = TIE_BREAK_RTOL * max(abs(objective), 1.0)
    bound = None if solution.bound is None else min(solution.bound, objective)
    proven = ((solution.status == "optimal" and objective <= solution.objective + tol)
              or (bound is not None and objective - bound <= tol))
    status = "optimal" if proven else ("feasible" if solution.status == "optimal" else solution.status)
    return replace(out, assignment=result.assignment, centres=result.centres, objective=objective,
                   status=status, bound=bound)


# --------------------------------------------------------------------------
# Exact MIP
# --------------------------------------------------------------------------


def _max_units(problem: Problem, upper: float) -> int:
    """Most units a sector within ``upper`` can hold (lightest units first)."""
    lightest = np.cumsum(np.sort(np.asarray(problem.workload, dtype=float)))
    return int(max(np.searchsorted(lightest, upper * (1 + 1e-9), side="right"), 1))


def exact_cut_edges(
    problem: Problem,
    *,
    weight: str | None = None,
    time_limit_s: float = 60.0,
    hint: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
    seed: int = 0,
    roots: Literal["smallest", "free"] | None = None,
) -> Solution:
    """Fewest cut edges over every contiguous balanced plan, with a proven bound.

    The labeling model of Validi & Buchanan (2022), with a single-commodity
    flow for contiguity ("labeling-scf"):

    * ``x[i, s]`` binary: unit ``i`` in sector ``s``; ``sum_s x[i, s] = 1``;
      ``L_s <= sum_i w_i x[i, s] <= U_s``; locked units fixed;
    * ``y[e] >= x[u, s] - x[v, s]`` and ``>= x[v, s] - x[u, s]`` for every
      edge ``e = uv`` and sector ``s``; minimise ``sum_e c_e y[e]`` (``c_e = 1``
      or the ``weight`` attribute);
    * one root per sector: ``r[i, s] <= x[i, s]``, ``sum_i r[i, s] = 1``; with
      ``roots="smallest"`` it is the sector's smallest-index member
      (``r[i, s] >= x[i, s] - sum_{j<i} r[j, s]``, the sums as a chain of
      variables ``z``);
    * flow ``f`` on both directions of every edge, only on uncut edges
      (``f_uv + f_vu <= M (1 - y[e])``); every unit consumes one unit of flow,
      a root may send up to ``M - 1`` (``M``: most units a sector can hold):
      a sector whose units cannot all be reached from its root through uncut
      edges, i.e. a disconnected sector, is infeasible;
    * symmetry: interchangeable sectors (same bounds, no locks,
      :func:`solvers.exact.sector_classes`) are ordered by their smallest unit
      (``roots="free"``: only unit ``i < j`` kept out of a class's ``j``-th sector);
    * a non-root member has a neighbour in its sector:
      ``x[i, s] <= r[i, s] + sum_{v ~ i} x[v, s]``.

    Parameters
    ----------
    problem
        Any problem (its travel costs only place :attr:`Solution.centres`).
    weight
        Edge attribute summed instead of counting edges (see :func:`cut_edges`).
    time_limit_s
        Seconds, model building included. HiGHS may overrun it in its root
        node on large models (observed from 499 units, see
        :data:`SMALLEST_ROOT_MAX_UNITS`): meant for up to a few hundred units.
    hint
        ``(n,)`` a valid plan to start from (e.g. the heuristic's); returned if
        the solver finds nothing better.
    progress
        Receives HiGHS's log lines.
    seed
        HiGHS random seed.
    roots
        ``"smallest"`` or ``"free"`` (see above); default ``"smallest"`` up to
        :data:`SMALLEST_ROOT_MAX_UNITS` units.

    Returns
    -------
    Solution
        ``status == "optimal"`` only when HiGHS proved it; ``bound`` the proven
        lower bound (rounded up to an integer when edges are counted).

    Raises
    ------
    InfeasibleError
        When :func:`solvers.check.diagnose` or the MIP proves that no
        contiguous plan meets the bounds; :class:`~solvers.exact.NoPlanFoundError`
        (a subclass) when time ran out before any plan was found.
    """
    start = time.monotonic()
    reasons = diagnose(problem)
    if reasons:
        raise InfeasibleError("; ".join(reasons))
    say = progress or (lambda line: None)
    log: list[str] = []

    def note(line: str) -> None:
        log.append(line)
        say(line)

    n, k = problem.n, problem.k
    if roots is None:
        roots = "smallest" if n <= SMALLEST_ROOT_MAX_UNITS else "free"
    if roots not in ("smallest", "free"):
        raise ValueError(f"roots must be 'smallest' or 'free', got {roots!r}")
    edges, costs = _edge_costs(problem, weight)
    integral = weight is None or bool(np.all(costs == np.round(costs)))
    classes = sector_classes(problem)
    lower, upper = np.zeros(k), np.zeros(k)
    for c in classes:
        lower[list(c.sectors)], upper[list(c.sectors)] = c.lower, c.upper
    w = np.asarray(problem.workload, dtype=float)
    cap = float(max(_max_units(problem, float(upper.max())) - 1, 1))
    nbrs = neighbour_lists(problem)

    model = mathopt.Model(name="cut_edges")
    x = {(i, s): model.add_binary_variable(name=f"x_{i}_{s}") for i in range(n) for s in range(k)}
    r = {(i, s): model.add_binary_variable(name=f"r_{i}_{s}") for i in range(n) for s in range(k)}
    z = ({(i, s): model.add_variable(lb=0.0, ub=1.0, name=f"z_{i}_{s}") for i in range(n) for s in range(k)}
         if roots == "smallest" else {})
    y = [model.add_variable(lb=0.0, ub=1.0, name=f"y_{e}") for e in range(len(edges))]
    for u, s in problem.locked.items():
        for t in range(k):
            x[u, t].lower_bound = x[u, t].upper_bound = float(t == s)
    for i in range(n):
        model.add_linear_constraint(mathopt.fast_sum(x[i, s] for s in range(k)) == 1)
    for s in range(k):
        load = mathopt.fast_sum(float(w[i]) * x[i, s] for i in range(n) if w[i] > 0)
        model.add_linear_constraint(load >= float(lower[s]))
        model.add_linear_constraint(load <= float(upper[s]))
        if roots == "free":
            model.add_linear_constraint(mathopt.fast_sum(r[i, s] for i in range(n)) == 1)
            for i in range(n):
                model.add_linear_constraint(r[i, s] <= x[i, s])
                model.add_linear_constraint(x[i, s] <= r[i, s] + mathopt.fast_sum(x[v, s] for v in nbrs[i]))
            continue
        # z[i, s] = r[0, s] + ... + r[i, s]: the root is the sector's smallest unit
        for i in range(n):
            before = z[i - 1, s] if i else 0.0
            model.add_linear_constraint(z[i, s] == before + r[i, s])
            model.add_linear_constraint(r[i, s] <= x[i, s])
            model.add_linear_constraint(r[i, s] >= x[i, s] - before)
            model.add_linear_constraint(
                x[i, s] <= r[i, s] + mathopt.fast_sum(x[v, s] for v in nbrs[i]))
        model.add_linear_constraint(z[n - 1, s] == 1)
    for c in classes:  # interchangeable sectors in the order of their smallest unit
        for j, (prev, s) in enumerate(zip(c.sectors, c.sectors[1:])):
            if roots == "free":  # the smallest unit of the (j+1)-th sector of a class is unit j or later
                for i in range(min(j + 1, n)):
                    x[i, s].upper_bound = 0.0
                continue
            model.add_linear_constraint(r[0, s] == 0)
            for i in range(1, n):
                model.add_linear_constraint(z[i, s] <= z[i - 1, prev])
    inflow: list[list] = [[] for _ in range(n)]
    outflow: list[list] = [[] for _ in range(n)]
    for e, (u, v) in enumerate(edges):
        for s in range(k):
            model.add_linear_constraint(y[e] >= x[u, s] - x[v, s])
            model.add_linear_constraint(y[e] >= x[v, s] - x[u, s])
        f_uv = model.add_variable(lb=0.0, ub=cap, name=f"f_{u}_{v}")
        f_vu = model.add_variable(lb=0.0, ub=cap, name=f"f_{v}_{u}")
        model.add_linear_constraint(f_uv + f_vu <= cap * (1 - y[e]))
        outflow[u].append(f_uv)
        inflow[v].append(f_uv)
        outflow[v].append(f_vu)
        inflow[u].append(f_vu)
    for i in range(n):
        model.add_linear_constraint(
            mathopt.fast_sum(inflow[i]) - mathopt.fast_sum(outflow[i])
            >= 1 - (cap + 1) * mathopt.fast_sum(r[i, s] for s in range(k)))
    model.minimize(mathopt.fast_sum(float(c) * var for c, var in zip(costs, y)))
    note(f"cut-edges MIP (labeling, flow contiguity, {roots} roots, {len(classes)} sector class(es)): "
         f"{model.get_num_variables():,} variables, {model.get_num_linear_constraints():,} constraints, "
         f"built in {time.monotonic() - start:.1f} s")

    incumbent: tuple[np.ndarray, float] | None = None
    model_params = None
    if hint is not None and not check_plan(problem, np.asarray(hint, dtype=np.intp)):
        h = _canonical(problem, np.asarray(hint, dtype=np.intp))
        incumbent = (h, float(cut_edges(problem.graph, h, weight=weight)))
        values: dict[mathopt.Variable, float] = {}
        for i in range(n):
            for s in range(k):
                values[x[i, s]] = float(h[i] == s)
                values[r[i, s]] = float(h[i] == s and not (h[:i] == s).any())
        model_params = mathopt.ModelSolveParameters(solution_hints=[mathopt.SolutionHint(variable_values=values)])
    params = mathopt.SolveParameters(
        time_limit=datetime.timedelta(seconds=max(start + time_limit_s - time.monotonic(), 0.2)),
        relative_gap_tolerance=1e-9,
        # with integer edge costs, a bound within 1 of the incumbent proves it
        absolute_gap_tolerance=0.999 if integral else 1e-9,
        random_seed=seed,
    )
    result = mathopt.solve(
        model, mathopt.SolverType.HIGHS, params=params, model_params=model_params,
        msg_cb=(lambda lines: [say(line) for line in lines if line.strip()]) if progress else None,
    )
    reason = result.termination.reason
    if reason == mathopt.TerminationReason.INFEASIBLE:
        raise InfeasibleError(
            "the cut-edges MIP proves that no plan with connected sectors has every workload within its "
            f"bounds ({', '.join(f'[{c.lower:,.1f}, {c.upper:,.1f}]' for c in classes)}); widen the "
            "tolerance, change the targets or the units"
        )
    if result.has_primal_feasible_solution():
        values = result.variable_values()
        plan = np.array([max(range(k), key=lambda s: values[x[i, s]]) for i in range(n)], dtype=np.intp)
        if not check_plan(problem, plan):
            cut = float(cut_edges(problem.graph, plan, weight=weight))
            if incumbent is None or cut < incumbent[1] - 1e-9:
                incumbent = (plan, cut)
    if incumbent is None:
        raise NoPlanFoundError(
            f"the cut-edges MIP found no plan in {time_limit_s:.0f} s and did not prove that none exists; "
            "give more time or use the 'heuristic' backend"
        )
    bound = float(result.best_objective_bound())
    bound = None if not math.isfinite(bound) else bound
    if bound is not None:
        if integral:
            bound = float(math.ceil(bound - 1e-6))
        bound = min(bound, incumbent[1])
    proven = reason == mathopt.TerminationReason.OPTIMAL or (bound is not None and bound >= incumbent[1] - 1e-9)
    assign, cut = incumbent
    note(f"cut-edges MIP: {cut:,.6g} cut, bound {'none' if bound is None else f'{bound:,.6g}'} "
         f"({'proven optimal' if proven else 'time limit'}), {time.monotonic() - start:.1f} s")
    return Solution(assignment=assign, centres=best_centres(problem, assign), objective=cut,
                    status="optimal" if proven else "feasible", backend="exact",
                    time_s=time.monotonic() - start, bound=bound, log=log)


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def solve_cut_edges(
    problem: Problem,
    *,
    backend: CutBackend = "auto",
    time_limit_s: float = 30.0,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    weight: str | None = None,
    start: np.ndarray | None = None,
) -> Solution:
    """Contiguous, balanced plan with the fewest cut edges (see the module docstring).

    Parameters
    ----------
    problem
        The problem; its ``objective`` is not read (any problem can be solved
        for cut edges), its travel costs only shape the starting plans and
        place :attr:`Solution.centres` (weighted medoids).
    backend
        ``"auto"``, ``"heuristic"`` or ``"exact"``.
    time_limit_s
        Wall-clock budget in seconds.
    seed
        Seed of the starting plans, the local search and HiGHS.
    progress
        Called with progress lines.
    weight
        Edge attribute summed instead of counting edges (see :func:`cut_edges`).
    start
        ``(n,)`` a plan to start from (repaired and rebalanced if needed).

    Returns
    -------
    Solution
        ``objective``: the cut (edges, or summed ``weight``); ``bound``/``gap``
        and ``status == "optimal"`` from the exact MIP only.

    Raises
    ------
    InfeasibleError
        When the up-front diagnosis or the MIP proves that no plan exists;
        :class:`~solvers.exact.NoPlanFoundError` (a subclass) when no plan was
        found in the time without such a proof.
    """
    if backend not in CUT_BACKENDS:
        raise ValueError(f"the cut-edges objective has backends {', '.join(CUT_BACKENDS)}; got {backend!r}")
    if problem.previous is not None and start is None:
        start = np.asarray(problem.previous)
    began = time.monotonic()
    reasons = diagnose(problem)
    if reasons:
        raise InfeasibleError("; ".join(reasons))
    say = progress or (lambda line: None)
    if backend == "auto" and problem.n > AUTO_EXACT_MAX_UNITS:
        say(f"auto: {problem.n:,} units > {AUTO_EXACT_MAX_UNITS}: cut-edges heuristic only")
        backend = "heuristic"
    if backend == "heuristic":
        return heuristic_cut_edges(problem, weight=weight, time_limit_s=time_limit_s, seed=seed,
                                   progress=progress, start=start)
    # a short heuristic for the warm start (until WARM_START_STALL starts bring nothing), the MIP for the rest
    log: list[str] = []
    share = max(min(0.2 * time_limit_s, 10.0), 0.5)
    try:
        first = heuristic_cut_edges(problem, weight=weight, time_limit_s=share, seed=seed, progress=progress,
                                    start=start, stall=WARM_START_STALL)
        hint, log = first.assignment, first.log
    except NoPlanFoundError as err:
        first, hint = None, None
        log.append(f"no heuristic start ({err}); the MIP decides alone")
    try:
        sol = exact_cut_edges(problem, weight=weight, time_limit_s=max(began + time_limit_s - time.monotonic(), 0.5),
                              hint=hint, progress=progress, seed=seed)
    except NoPlanFoundError:
        if first is None:
            raise
        first.log.append("cut-edges MIP: no plan in the time left; heuristic plan kept")
        first.time_s = time.monotonic() - began
        return first
    sol.log[:0] = log
    sol.time_s = time.monotonic() - began
    return sol
