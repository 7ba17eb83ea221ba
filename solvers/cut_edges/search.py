"""The cut-edges heuristic: a compact balanced start, boundary moves and swaps, then a tabu search
(:func:`improve_cut`); new starts while time is left (:func:`heuristic_cut_edges`).

Deadlines are times of the active clock (:mod:`solvers.budget`); with a work clock each
descent pass, swap pass and tabu iteration counts the boundary units it examines and the
units its connectivity tests visit, so the search stops at the same point on any machine.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import replace

import numpy as np

from solvers import budget
from solvers.check import check_plan
from solvers.construct.heuristic import Moves, heuristic_solve, neighbour_lists
from solvers.allocation.mip import allocate
from solvers.exact.model import best_centres
from solvers.problem import NoPlanFoundError, ProgressCallback, Problem, Solution, cut_edges
from solvers.cut_edges.common import EPS, canonical


def start_plan(problem: Problem, *, time_limit_s: float, seed: int = 0, start: np.ndarray | None = None,
               restarts: int = 2) -> np.ndarray:
    """A compact, balanced, contiguous plan to start the cut search from.

    The p-median heuristic (:func:`solvers.construct.heuristic.heuristic_solve`,
    ``restarts`` starts, at most ``time_limit_s`` seconds) on the problem's
    travel costs: compact sectors have short boundaries. When its local moves
    cannot meet tight bounds, the allocation MIP (:func:`solvers.allocation.mip.allocate`)
    rebalances it around the same centres. ``start`` (a plan, e.g. last
    year's) is repaired and used instead of random starts.

    Raises
    ------
    NoPlanFoundError
        When no balanced plan was found in the time (infeasibility not proven).
    """
    began = budget.now()
    compact = replace(problem, objective="pmedian")
    assign, centres, _, _ = heuristic_solve(compact, time_limit_s=time_limit_s, seed=seed,
                                            restarts=1 if start is not None else restarts, start=start)
    if not check_plan(problem, assign):
        return assign
    left = time_limit_s - (budget.now() - began)
    alloc = allocate(compact, centres, time_limit_s=max(left, 1.0), hint=assign)
    if alloc.assignment is not None and not check_plan(problem, alloc.assignment):
        return alloc.assignment
    raise NoPlanFoundError(
        f"no balanced contiguous plan found in {time_limit_s:.1f} s (bounds {problem.lower.min():,.1f} to "
        f"{problem.upper.max():,.1f} per sector); widen the tolerance or give more time"
    )


class CutSearch:
    """Assignment, loads and cut of the local search, with move and swap evaluation.

    Every move and swap keeps each sector within its territory cap
    (:attr:`Problem.max_size`; :meth:`solvers.construct.heuristic.Moves.fits`),
    the tabu search included. With ``centres`` and ``limit`` (the tie-break,
    :func:`tie_break`), every move and swap must also keep the problem's own objective, measured from
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
        self.m = Moves(problem, assign, self.nbrs)
        self.a = self.m.a
        self.no_centres = np.full(problem.k, -1, dtype=np.intp)
        slack = EPS * np.maximum(1.0, np.abs(problem.upper))
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
                and self.m.within_cap(u, t) and self.m.fits(u, t)
                and self.primary + self.primary_delta(u, t) <= self.limit
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
        self.m.clock.tick("visit", len(seen))
        return len(seen) == self.m.size[s]

    def try_swap(self, u: int, v: int, threshold: float) -> float | None:
        """Swap ``u`` (sector s) and ``v`` (sector t) when it keeps both sectors connected and
        within bounds and changes the cut by less than ``threshold``; returns the change or None."""
        a, w, loads, m = self.a, self.m.w, self.m.loads, self.m
        s, t = int(a[u]), int(a[v])
        dw = w[v] - w[u]
        if not (self.lo[s] <= loads[s] + dw <= self.hi[s] and self.lo[t] <= loads[t] - dw <= self.hi[t]):
            return None
        if self.centres[s] == u or self.centres[t] == v or not m.swap_fits(u, v):
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
        a, nbrs, clock = self.a, self.nbrs, self.m.clock
        while clock.now() < deadline:
            units = self.free_boundary()
            rng.shuffle(units)
            clock.tick("step", len(units))
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
        a, nbrs, clock = self.a, self.nbrs, self.m.clock
        facing: dict[tuple[int, int], list[int]] = {}
        for v in units:
            for t in {int(a[x]) for x in nbrs[v]} - {int(a[v])}:
                facing.setdefault((int(a[v]), t), []).append(v)
        for u in units:
            clock.tick("step")
            if clock.now() >= deadline:
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
        clock = m.clock
        while idle < patience and clock.now() < deadline:
            it += 1
            moves = []
            boundary = self.free_boundary()
            clock.tick("step", 2 * len(boundary))  # every move's gain and penalty, then the sort
            for u in boundary:
                s, wu = int(a[u]), m.w[u]
                for t in {int(a[v]) for v in nbrs[u]} - {s}:
                    dc = self.delta(u, t)
                    dp = (pen(m.loads[s] - wu, s) + pen(m.loads[t] + wu, t)
                          - pen(m.loads[s], s) - pen(m.loads[t], t))
                    aspires = total + dp <= 1e-12 and self.cut + dc < best[1] - 1e-9
                    if tabu_until[u, t] > it and not aspires:
                        continue
                    if not m.fits(u, t):  # territory caps stay hard (balance is the penalty)
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
        self.m.territory = self.p.territory(self.a)
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
    an adaptive penalty (:meth:`CutSearch.tabu`), until ``patience``
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
        Seconds of the active clock (:mod:`solvers.budget`), wall or work.
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
    deadline = budget.now() + time_limit_s
    rng = np.random.default_rng(seed)
    search = CutSearch(problem, a, weight)
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
    :class:`~solvers.problem.NoPlanFoundError` when no start was balanced.
    """
    began = time.monotonic()  # wall seconds, for the log
    clock = budget.current()
    deadline = clock.now() + time_limit_s
    say = progress or (lambda line: None)
    log: list[str] = []
    best: tuple[np.ndarray, float] | None = None
    failure: NoPlanFoundError | None = None
    tried = idle = 0
    while (clock.now() < deadline and (starts is None or tried < starts)
           and (stall is None or idle < stall)):
        left = deadline - clock.now()
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
        left = deadline - clock.now()
        # each start keeps searching while it improves, with at most half the time left (all for the last)
        seconds = left if starts is not None and tried == starts - 1 else max(0.5 * left, 0.1)
        plan, cut = improve_cut(problem, plan, weight=weight, seed=seed + tried, time_limit_s=seconds)
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
    assign = canonical(problem, best[0])
    return Solution(assignment=assign, centres=best_centres(problem, assign), objective=best[1],
                    status="feasible", backend="heuristic", time_s=time.monotonic() - began, log=log)
