"""Fast constructive heuristic and local search that keep every sector contiguous.

The pieces, each a plain function over a :class:`~solvers.problem.Problem`:

1. :func:`initial_centres` — weighted k-medoids++ seeding on travel times;
2. :func:`grow_sectors` — simultaneous region growing from the centres, the
   least-loaded sector (relative to its target) growing first, each taking
   the unassigned neighbour nearest to its centre: contiguous by construction;
3. :func:`rebalance` — boundary moves that reduce the squared relative
   deviation from the targets until every caseload is within tolerance;
4. :func:`improve` — boundary moves that lower the objective while keeping
   balance and contiguity, alternated with :func:`recentre` (weighted medoid);
   :func:`grow_from` chains 2-4 from given centres.

Every move keeps the losing sector connected (checked by a bounded search
around the moved unit), so the plan stays contiguous throughout. With
territory caps (:attr:`~solvers.problem.Problem.max_size`), growth takes a
unit only into a sector it fits (unless no sector can grow otherwise), the
rebalancing treats the caps as a growing penalty until every territory fits,
and no move of the local search puts a sector over its cap (:meth:`Moves.fits`).

Budgets: every deadline is a time of the active clock (:mod:`solvers.budget`), wall or
work seconds. In work mode each step counts its work: the units grown, the travel-time
entries read (seeding, cost rows, medoids), and per pass of :func:`rebalance` and
:func:`improve` the units scanned for the boundary, the boundary units examined and the
units visited by the connectivity tests (:meth:`Moves.can_leave`). Those counts depend
on the inputs and the seed only, so the point where a work budget stops a search does too.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from typing import NamedTuple

import networkx as nx
import numpy as np

from solvers import budget
from solvers.problem import NoPlanError, NoPlanFoundError, ProgressCallback, Problem, within_cap


def neighbour_lists(problem: Problem) -> list[list[int]]:
    """Adjacency as plain lists (fast to iterate in the inner loops)."""
    g = problem.graph
    return [list(g.adj[u]) for u in range(problem.n)]


def initial_centres(problem: Problem, rng: np.random.Generator) -> np.ndarray:
    """Choose ``k`` distinct centre units by weighted k-medoids++ seeding.

    The first centre is drawn with probability proportional to the unit's
    weight; each next one proportionally to ``weight x (minutes to the nearest
    chosen centre)^2``, which spreads centres over the demand. A sector with
    locked units starts from its first locked unit. With the ``"base"``
    objective, half of the calls (at random) start each sector near its
    worker's base instead (:func:`_centres_near_bases`).
    """
    w = problem.weights + 1e-9
    n, k = problem.n, problem.k
    # a sector with locked units starts from one of them
    fixed: dict[int, int] = {}
    for u, s in sorted(problem.locked.items()):
        fixed.setdefault(s, u)
    if problem.objective == "base" and rng.random() < 0.5:
        # half of the starts grow each sector around its worker's base (the other half spread
        # the centres over the demand: workers sharing a base cannot all start there)
        return _centres_near_bases(problem, fixed, rng)
    chosen = list(fixed.values())
    if chosen:
        nearest = problem.travel.rows(np.array(chosen)).min(axis=0)
    else:
        first = int(rng.choice(n, p=w / w.sum()))
        chosen = [first]
        nearest = problem.travel.rows(np.array([first]))[0]
    while len(chosen) < k:
        score = w * nearest**2
        score[chosen] = 0.0
        if score.sum() <= 0:
            free = np.setdiff1d(np.arange(n), chosen)
            nxt = int(rng.choice(free))
        else:
            nxt = int(rng.choice(n, p=score / score.sum()))
        chosen.append(nxt)
        nearest = np.minimum(nearest, problem.travel.rows(np.array([nxt]))[0])
    budget.tick("entry", k * n)  # one travel row per chosen centre
    free_sectors = iter(s for s in range(k) if s not in fixed)
    centres = [0] * k
    for s, u in fixed.items():
        centres[s] = u
    for u in chosen[len(fixed):]:
        centres[next(free_sectors)] = u
    return np.array(centres, dtype=np.intp)


def _centres_near_bases(problem: Problem, fixed: dict[int, int], rng: np.random.Generator) -> np.ndarray:
    """Objective ``"base"``: each sector starts at a unit near its worker's base.

    Sectors take, in a random order, one of the 3 free units nearest to their
    base (minutes of ``base_travel``), so that a worker's sector grows around
    where the worker starts from; workers sharing a base start side by side.
    """
    minutes = np.asarray(problem.base_travel, dtype=float)
    budget.tick("entry", problem.k * problem.n)  # one sort of each worker's base row
    centres = np.full(problem.k, -1, dtype=np.intp)
    taken: set[int] = set()
    for s, u in fixed.items():
        centres[s] = u
        taken.add(u)
    for s in rng.permutation(problem.k):
        if centres[s] >= 0:
            continue
        order = [int(u) for u in np.argsort(minutes[s], kind="stable")[: len(taken) + 3] if int(u) not in taken]
        u = order[int(rng.integers(min(3, len(order))))]
        centres[s] = u
        taken.add(u)
    return centres


def grow_sectors(
    problem: Problem, centres: np.ndarray, nbrs: list[list[int]], prefer: np.ndarray | None = None
) -> np.ndarray | None:
    """Grow one connected sector from each centre until every unit is taken.

    At each step the sector whose caseload is lowest relative to its target
    (among those that can still grow) takes its unassigned neighbour unit
    nearest to its centre. Units locked to a sector are only taken by it;
    returns ``None`` when a locked unit cannot be reached by its sector.
    With ``prefer`` (``(n,)`` sector of each unit in a previous plan, ``-1``
    for none), a sector takes its previous units before any other, so the
    regrown plan follows the previous one where balance allows.

    With territory caps, the sector to grow is the one lowest in the larger of
    its caseload and its territory relative to target and cap, and it takes
    only a unit that fits its cap; when no sector can grow that way, the
    adjacent (sector, unit) that overshoots a cap the least is taken, so the
    plan is always complete (:func:`rebalance` then removes the excess).
    """
    n, k = problem.n, problem.k
    w = np.asarray(problem.workload, dtype=float)
    targets = np.asarray(problem.targets, dtype=float)
    size, cap = problem.sizes, problem.size_caps
    minutes = (
        np.asarray(problem.base_travel, dtype=float)
        if problem.objective == "base"
        else problem.travel.rows(centres)
    )
    locked = problem.locked
    assign = np.full(n, -1, dtype=np.intp)
    loads = np.zeros(k)
    territory = np.zeros(k)
    heaps: list[list[tuple[float, int]]] = [[] for _ in range(k)]
    blocked: list[set[int]] = [set() for _ in range(k)]  # adjacent units that did not fit the sector's cap

    def take(s: int, u: int) -> None:
        assign[u] = s
        loads[s] += w[u]
        if size is not None:
            territory[s] += size[u]
        for v in nbrs[u]:
            if assign[v] < 0 and locked.get(v, s) == s:
                key = minutes[s, v] - (1e12 if prefer is not None and prefer[v] == s else 0.0)
                heapq.heappush(heaps[s], (key, v))

    def fits(s: int, u: int) -> bool:
        return size is None or bool(within_cap(territory[s] + size[u], cap[s]))

    clock = budget.current()
    clock.tick("entry", k * n)  # the centres' travel rows
    clock.tick("grow", n)  # each unit taken once: its neighbours pushed, a sector chosen
    for s, c in enumerate(centres):
        take(s, int(c))
    remaining = n - k
    safe_cap = None if cap is None else np.where(cap > 0, cap, 1e-12)
    while remaining > 0:
        ratio = loads / targets if size is None else np.maximum(loads / targets, territory / safe_cap)
        order = np.argsort(ratio, kind="stable")
        grew = False
        for s in order:
            h = heaps[s]
            while h and (assign[h[0][1]] >= 0 or not fits(int(s), h[0][1])):
                _, v = heapq.heappop(h)
                if assign[v] < 0:  # territory only grows: it will not fit later either
                    blocked[s].add(v)
            if h:
                _, u = heapq.heappop(h)
                take(int(s), u)
                remaining -= 1
                grew = True
                break
        if not grew and size is not None:
            # every sector is at its cap where it could grow: the least overshoot, then rebalance
            options = [((territory[s] + size[u]) / safe_cap[s], s, u)
                       for s in range(k) for u in blocked[s] if assign[u] < 0]
            if options:
                _, s, u = min(options)
                blocked[s].discard(u)
                take(int(s), int(u))
                remaining -= 1
                grew = True
        if not grew:  # locked units cut off from their sector by other sectors
            return None
    return assign


#: Largest ``members x n`` block of travel rows :func:`recentre` reads to find an exact medoid.
MEDOID_ENTRIES = 50_000_000


def recentre(problem: Problem, assign: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Move each sector's centre to its weighted medoid (the unit minimising
    the sector's summed weighted travel minutes). ``"base"`` plans keep theirs.

    The medoid is exact while a sector's rows fit in :data:`MEDOID_ENTRIES`
    (e.g. any sector of the 4,033 AURA units); beyond, it is the best of the
    300 heaviest members and the current centre. Travel times computed on demand
    (a ``block(sources, targets)`` method, e.g. :class:`solvers.travel.PlanarDistances`)
    give only the sector's columns: ``n / members`` times fewer entries (11 x with 11
    sectors), which keeps the first plan of 16,000 units in a few seconds."""
    if problem.objective == "base":
        return centres
    w = problem.weights
    new = centres.copy()
    clock = budget.current()
    for s in range(problem.k):
        members = np.flatnonzero(assign == s)
        if members.size == 0:
            continue
        # candidate centres: every member while the rows stay small (about 50 M entries),
        # else the heaviest members and the current centre
        cand = members
        if members.size * problem.n > MEDOID_ENTRIES:
            top = members[np.argsort(-w[members], kind="stable")[:300]]
            cand = np.union1d(top, [centres[s]])
        block = getattr(problem.travel, "block", None)  # travel computed on demand: the sector's columns only
        if block is not None:
            rows = block(cand, members)
            clock.tick("entry", cand.size * members.size)
        else:
            rows = problem.travel.rows(cand)[:, members]
            clock.tick("entry", cand.size * problem.n)
        cost = rows @ w[members]
        new[s] = cand[int(np.argmin(cost))]
    return new


class Moves:
    """Shared state of the local search: assignment, loads, and the
    contiguity test for removing one unit from its sector."""

    def __init__(self, problem: Problem, assign: np.ndarray, nbrs: list[list[int]]):
        self.p = problem
        self.a = assign
        self.nbrs = nbrs
        self.w = np.asarray(problem.workload, dtype=float)
        self.loads = np.bincount(assign, weights=self.w, minlength=problem.k)
        self.size = np.bincount(assign, minlength=problem.k)  # units per sector
        # territory caps: each unit's measure (communes, km²...), each sector's total and cap
        self.sz = problem.sizes
        self.cap_size = problem.size_caps
        self.territory = None if self.sz is None else np.bincount(assign, weights=self.sz, minlength=problem.k)
        # disruption budget (annual re-run): summed move weight of units away from their previous sector
        self.prev = None if problem.previous is None else np.asarray(problem.previous)
        self.mw = problem.disruption
        self.cap = problem.max_moved
        self.moved = problem.moved(assign)
        self.clock = budget.current()  # charged for scans and connectivity tests

    def move_delta(self, u: int, t: int) -> float:
        """Change of the moved weight if ``u`` goes to sector ``t``."""
        if self.prev is None or self.prev[u] < 0:
            return 0.0
        p = self.prev[u]
        return self.mw[u] * (float(t != p) - float(self.a[u] != p))

    def within_cap(self, u: int, t: int) -> bool:
        """True when moving ``u`` to ``t`` keeps the moved weight within the cap (or lowers it)."""
        if self.cap is None:
            return True
        d = self.move_delta(u, t)
        return d <= 0 or self.moved + d <= self.cap + 1e-9

    def fits(self, u: int, t: int) -> bool:
        """True when sector ``t`` stays within its territory cap with ``u`` added (always without caps)."""
        if self.sz is None:
            return True
        return bool(within_cap(self.territory[t] + self.sz[u], self.cap_size[t]))

    def swap_fits(self, u: int, v: int) -> bool:
        """True when swapping ``u`` (sector s) and ``v`` (sector t) keeps both within their territory caps."""
        if self.sz is None:
            return True
        s, t, d = self.a[u], self.a[v], self.sz[v] - self.sz[u]
        return bool(within_cap(self.territory[s] + d, self.cap_size[s]) and
                    within_cap(self.territory[t] - d, self.cap_size[t]))

    def excess(self) -> np.ndarray:
        """``(k,)`` how far each sector's territory is above its cap (0 within it, or without caps)."""
        if self.sz is None:
            return np.zeros(self.p.k)
        return np.where(within_cap(self.territory, self.cap_size), 0.0, self.territory - self.cap_size)

    def can_leave(self, u: int, centres: np.ndarray) -> bool:
        """True when ``u`` may leave its sector without disconnecting it."""
        s = self.a[u]
        if u in self.p.locked or centres[s] == u or self.size[s] <= 1:
            return False
        same = [v for v in self.nbrs[u] if self.a[v] == s]
        if len(same) <= 1:
            self.clock.tick("visit")
            return True
        # bounded BFS inside the sector without u, from one same-sector
        # neighbour until all others are reached
        targets = set(same[1:])
        seen = {u, same[0]}
        queue = deque([same[0]])
        a, nbrs = self.a, self.nbrs
        while queue:
            x = queue.popleft()
            for y in nbrs[x]:
                if y not in seen and a[y] == s:
                    if y in targets:
                        targets.discard(y)
                        if not targets:
                            self.clock.tick("visit", len(seen))
                            return True
                    seen.add(y)
                    queue.append(y)
        self.clock.tick("visit", len(seen))
        return False

    def move(self, u: int, t: int) -> None:
        self.moved += self.move_delta(u, t)
        s = self.a[u]
        self.loads[s] -= self.w[u]
        self.loads[t] += self.w[u]
        self.size[s] -= 1
        self.size[t] += 1
        if self.sz is not None:
            self.territory[s] -= self.sz[u]
            self.territory[t] += self.sz[u]
        self.a[u] = t

    def boundary(self) -> np.ndarray:
        """Units with at least one neighbour in another sector."""
        a = self.a
        self.clock.tick("scan", self.p.n)
        return np.array(
            [u for u in range(self.p.n) if any(a[v] != a[u] for v in self.nbrs[u])], dtype=np.intp
        )


#: First weight of a squared relative excess over a territory cap in :func:`rebalance`, against
#: the squared relative caseload deviations, and the most it grows to.
TERRITORY_WEIGHT = 1.0
TERRITORY_WEIGHT_MAX = 1e8

#: Territory pressure in :func:`rebalance`: sectors above this share of their cap pay
#: ``TERRITORY_PRESSURE x (share - TERRITORY_PRESSURE_FROM)^2``, so land flows towards sectors with room.
TERRITORY_PRESSURE_FROM = 0.8
TERRITORY_PRESSURE = 0.1


def rebalance(
    problem: Problem,
    assign: np.ndarray,
    centres: np.ndarray,
    nbrs: list[list[int]],
    rng: np.random.Generator,
    deadline: float,
) -> bool:
    """Move boundary units until every caseload is within tolerance (and every
    territory within its cap).

    Each accepted move lowers ``sum_s ((load_s - target_s) / target_s)^2``
    (ties broken by the objective), which lets surplus flow through
    intermediate sectors. With territory caps, the sum also counts
    ``weight x (excess_s / cap_s)^2`` for each sector over its cap: a soft
    cap, so that a sector short of caseload at its cap may take a dense unit
    and then shed sparse ones (even units without caseload) to neighbours with
    room. ``weight`` starts at :data:`TERRITORY_WEIGHT` and grows fourfold
    each time no move helps while a territory is over its cap. A gentle
    *pressure*, :data:`TERRITORY_PRESSURE` x ``(territory_s / cap_s - ``
    :data:`TERRITORY_PRESSURE_FROM` ``)^2`` for sectors above that share of
    their cap, makes territory flow from sectors near their cap towards
    sectors with room, through chains of neighbours (when sparse land must be
    shared by sectors whose caseload lies elsewhere). Returns True when all
    sectors end within bounds and caps.
    """
    m = Moves(problem, assign, nbrs)
    targets = np.asarray(problem.targets, dtype=float)
    lower, upper = problem.lower, problem.upper
    cost = problem.cost_rows(centres)
    scale = max(cost.sum(), 1e-9)
    capped = m.sz is not None
    cap = m.cap_size if capped else None
    weight = TERRITORY_WEIGHT

    def dev(load: float, s: int) -> float:
        return ((load - targets[s]) / targets[s]) ** 2

    def over(territory: float, s: int) -> float:
        ratio = territory / max(cap[s], 1e-12)
        if ratio <= TERRITORY_PRESSURE_FROM:
            return 0.0
        pressure = TERRITORY_PRESSURE * (ratio - TERRITORY_PRESSURE_FROM) ** 2
        return pressure + (weight * (ratio - 1.0) ** 2 if ratio > 1.0 else 0.0)

    def done() -> bool:
        return bool(np.all((m.loads >= lower - 1e-9) & (m.loads <= upper + 1e-9)) and not m.excess().any())

    clock = m.clock
    while clock.now() < deadline:
        if done():
            return True
        improved = False
        units = m.boundary()
        rng.shuffle(units)
        clock.tick("step", len(units))
        for u in units:
            s = assign[u]
            wu = m.w[u]
            if u in problem.locked or (wu == 0 and not (capped and m.territory[s] > TERRITORY_PRESSURE_FROM * cap[s])):
                continue
            best, best_t = -1e-12, -1
            for t in {assign[v] for v in nbrs[u]} - {s}:
                if not m.within_cap(u, t):
                    continue
                d = dev(m.loads[s] - wu, s) + dev(m.loads[t] + wu, t) - dev(m.loads[s], s) - dev(m.loads[t], t)
                if capped:
                    su = m.sz[u]
                    d += (over(m.territory[s] - su, s) + over(m.territory[t] + su, t)
                          - over(m.territory[s], s) - over(m.territory[t], t))
                d += 1e-6 * (cost[t, u] - cost[s, u]) / scale
                if d < best:
                    best, best_t = d, t
            if best_t >= 0 and m.can_leave(u, centres):
                m.move(u, best_t)
                improved = True
        if not improved:
            if capped and m.excess().any() and weight < TERRITORY_WEIGHT_MAX:
                weight *= 4.0  # stuck over a cap: make the excess dearer than the caseload gaps
                continue
            break
    return done()


def improve(
    problem: Problem,
    assign: np.ndarray,
    centres: np.ndarray,
    nbrs: list[list[int]],
    rng: np.random.Generator,
    deadline: float,
) -> tuple[np.ndarray, float]:
    """Local search: boundary moves that lower the objective, keeping every
    sector within its bounds (and territory cap) and connected, alternated with :func:`recentre`.

    ``assign`` is modified in place. Returns the final centres and objective.
    """
    m = Moves(problem, assign, nbrs)
    lower, upper = problem.lower, problem.upper
    objective = problem.objective_value(assign, centres)
    clock = m.clock
    while clock.now() < deadline:
        cost = problem.cost_rows(centres)
        moved = 0
        units = m.boundary()
        rng.shuffle(units)
        clock.tick("entry", 3 * problem.k * problem.n)  # the cost rows here and in the objectives below
        examined = 0
        for u in units:
            if clock.now() >= deadline:
                break
            examined += 1
            s = assign[u]
            wu = m.w[u]
            if m.loads[s] - wu < lower[s] - 1e-9:
                continue
            best, best_t = -1e-9, -1
            for t in {assign[v] for v in nbrs[u]} - {s}:
                if m.loads[t] + wu > upper[t] + 1e-9 or not m.within_cap(u, t) or not m.fits(u, t):
                    continue
                d = cost[t, u] - cost[s, u]
                if d < best:
                    best, best_t = d, t
            if best_t >= 0 and m.can_leave(u, centres):
                m.move(u, best_t)
                moved += 1
        clock.tick("step", examined)
        new_centres = recentre(problem, assign, centres)
        new_obj = problem.objective_value(assign, new_centres)
        if moved == 0 and new_obj >= objective - 1e-9:
            break
        centres, objective = new_centres, min(new_obj, objective) if moved == 0 else new_obj
    return centres, problem.objective_value(assign, centres)


def grow_from(problem: Problem, centres: np.ndarray, nbrs: list[list[int]], rng: np.random.Generator,
              deadline: float) -> tuple[np.ndarray, np.ndarray, float] | None:
    """A plan grown from given centres: :func:`grow_sectors`, :func:`rebalance`, :func:`improve`
    until ``deadline`` (a time of the active clock). Returns ``(assignment, centres,
    objective)``, or ``None`` when the growth or the rebalancing fails."""
    assign = grow_sectors(problem, np.asarray(centres, dtype=np.intp), nbrs)
    if assign is None:
        return None
    centres = np.asarray(centres, dtype=np.intp).copy()
    if not rebalance(problem, assign, centres, nbrs, rng, deadline):
        return None
    centres, objective = improve(problem, assign, centres, nbrs, rng, deadline)
    return assign, centres, objective


def repair_start(problem: Problem, start: np.ndarray, nbrs: list[list[int]]) -> tuple[np.ndarray, list[str]]:
    """Turn a given assignment (e.g. last year's plan) into a contiguous starting plan.

    Changes as little as possible: each sector keeps its largest connected
    piece (by move weight, then workload, then size); units without a sector
    (``-1``) or in a cut-off piece join an adjacent sector, preferring their
    previous one; a sector left empty (a new worker) is seeded with one unit
    of the most loaded sector (relative to its target) that can leave it
    without disconnecting it, the one farthest from that sector's medoid. The
    caller's rebalancing then grows it. Returns ``(assignment, notes)``.

    Examples
    --------
    >>> import networkx as nx
    >>> from solvers.problem import DenseTravelTimes
    >>> g = nx.path_graph(5)
    >>> t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(5), np.arange(5))) * 1.0)
    >>> p = Problem(g, np.ones(5), np.array([2.5, 2.5]), 0.2, t)
    >>> repair_start(p, np.array([0, 0, -1, 1, 1]), neighbour_lists(p))[0].tolist()
    [0, 0, 0, 1, 1]
    """
    n, k = problem.n, problem.k
    a = np.asarray(start, dtype=np.intp).copy()
    budget.tick("grow", n)  # pieces of each sector, attachment of the units left out
    if a.shape != (n,):
        raise ValueError(f"start must be an (n,) array of sectors, got shape {a.shape}")
    a[(a < 0) | (a >= k)] = -1
    notes: list[str] = []
    mw, w = problem.disruption, np.asarray(problem.workload, dtype=float)
    prev = np.asarray(problem.previous) if problem.previous is not None else a.copy()
    for u, s in problem.locked.items():
        a[u] = s
    for s in range(k):
        members = np.flatnonzero(a == s)
        if members.size == 0:
            continue
        pieces = [np.fromiter(c, dtype=np.intp) for c in nx.connected_components(problem.graph.subgraph(members.tolist()))]
        if len(pieces) > 1:
            pieces.sort(key=lambda c: (-mw[c].sum(), -w[c].sum(), -c.size, int(c.min())))
            for piece in pieces[1:]:
                a[piece] = -1
            notes.append(f"{problem.sector_label(s)}: kept its largest piece, {sum(c.size for c in pieces[1:])} "
                         "cut-off unit(s) re-attached to a neighbour")
    # attach unassigned units to an adjacent sector, breadth first from the assigned ones
    frontier = deque(u for u in range(n) if a[u] < 0 and any(a[v] >= 0 for v in nbrs[u]))
    while frontier:
        u = frontier.popleft()
        if a[u] >= 0:
            continue
        near = sorted({int(a[v]) for v in nbrs[u] if a[v] >= 0})
        if not near:
            continue
        a[u] = prev[u] if prev[u] in near else near[0]
        frontier.extend(v for v in nbrs[u] if a[v] < 0)
    if (a < 0).any():  # a component with no sector at all: leave it to the multi-start
        raise NoPlanFoundError(f"{int((a < 0).sum())} unit(s) cannot be attached to any sector of the start plan")
    loads = np.bincount(a, weights=w, minlength=k)
    targets = np.asarray(problem.targets, dtype=float)
    for s in np.flatnonzero(np.bincount(a, minlength=k) == 0):
        m = Moves(problem, a, nbrs)
        donors = np.argsort(-(loads / targets), kind="stable")
        for d in donors:
            members = np.flatnonzero(a == d)
            if members.size <= 1:
                continue
            medoid = members[int(np.argmin(problem.travel.rows(members)[:, members] @ (w[members] + 1e-9)))]
            far = members[np.argsort(-problem.travel.rows(np.array([medoid]))[0][members], kind="stable")]
            centres = np.full(k, -1)
            centres[d] = medoid
            seed_unit = next((int(u) for u in far if u not in problem.locked and m.can_leave(int(u), centres)), None)
            if seed_unit is not None:
                a[seed_unit] = s
                loads = np.bincount(a, weights=w, minlength=k)
                notes.append(f"{problem.sector_label(int(s))}: new sector seeded at {problem.label(seed_unit)}, "
                             f"taken from {problem.sector_label(int(d))}")
                break
        else:
            raise NoPlanFoundError(f"{problem.sector_label(int(s))}: no unit can seed this new sector")
    return a, notes


class HeuristicPlan(NamedTuple):
    """What :func:`heuristic_solve` returns (a named tuple: ``assign, centres, objective, log =
    heuristic_solve(...)`` still reads it): the plan, its objective and the log lines."""

    assignment: np.ndarray
    centres: np.ndarray
    objective: float
    log: list[str]


def heuristic_solve(
    problem: Problem,
    *,
    time_limit_s: float = 10.0,
    seed: int = 0,
    restarts: int | None = None,
    progress: ProgressCallback | None = None,
    start: np.ndarray | None = None,
) -> HeuristicPlan:
    """Multi-start construct + rebalance + improve within ``time_limit_s`` seconds of the
    active clock (:mod:`solvers.budget`; wall seconds outside a work session).

    Returns ``(assignment, centres, objective, log)`` of the best balanced
    plan found; if none is balanced, the least unbalanced one (the caller's
    checker reports it). Deterministic for a given ``seed`` with a work clock, or with
    enough wall time. The first start gets at most half the time, each later one what is
    left.

    With ``start`` (an ``(n,)`` assignment, e.g. last year's plan), the first
    attempt repairs it (:func:`repair_start`), rebalances and improves it
    rather than growing sectors from scratch; random starts follow only when
    no cap on moves is set (:attr:`Problem.max_moved`), as they could not
    respect one.
    """
    # stays whole: the multi-start loop (construct, rebalance, improve each start) under one clock
    clock = budget.current()
    wall = time.monotonic()  # for the log lines only
    begin = clock.now()
    deadline = begin + time_limit_s
    rng = np.random.default_rng(seed)
    nbrs = neighbour_lists(problem)
    log: list[str] = []
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    best_unbalanced: tuple[float, np.ndarray, np.ndarray] | None = None
    attempt = 0
    while clock.now() < deadline and (restarts is None or attempt < restarts):
        attempt += 1
        if start is not None and attempt == 1:
            try:
                assign, notes = repair_start(problem, start, nbrs)
            except NoPlanError as err:
                assign, notes = None, [f"start plan unusable: {err}"]
            log.extend(notes)
            if assign is not None:
                first = np.array([int(np.flatnonzero(assign == s)[0]) for s in range(problem.k)])
                centres = recentre(problem, assign, first)
        elif start is not None and problem.max_moved is not None:
            break
        else:
            centres = initial_centres(problem, rng)
            assign = grow_sectors(problem, centres, nbrs)
            for _ in range(3):  # a few growth/recentre rounds settle the centres
                if assign is None:
                    break
                moved = recentre(problem, assign, centres)
                regrown = grow_sectors(problem, moved, nbrs)
                if regrown is None:
                    break
                centres, assign = moved, regrown
        if assign is None:
            if len(log) < 50:
                log.append(f"start {attempt}: locked units unreachable from their sector's start")
            continue
        # each start gets at most a fair share of the remaining time
        left = deadline - clock.now()
        share = left if restarts is None and attempt > 1 and best is not None else left / 2
        local_deadline = clock.now() + max(share, 0.0)
        ok = rebalance(problem, assign, centres, nbrs, rng, local_deadline)
        if not ok and start is not None and attempt == 1:
            # local moves could not absorb the change (e.g. a departed worker's communes):
            # regrow every sector from its centre, each taking its previous units first
            # (then, if that is still unbalanced, plainly: the improvement steps and the
            # allocation MIP bring units back to their previous sector where balance allows)
            prefer = np.asarray(problem.previous) if problem.previous is not None else np.asarray(start)
            for how, favour in (("previous units first", prefer), ("nearest units first", None)):
                regrown = grow_sectors(problem, centres, nbrs, prefer=favour)
                if regrown is None:
                    continue
                assign = regrown
                ok = rebalance(problem, assign, centres, nbrs, rng, local_deadline)
                log.append(f"start {attempt}: start plan regrown from its centres, {how} "
                           f"({'balanced' if ok else 'still unbalanced'})")
                if ok:
                    break
        if not ok:
            spread = np.bincount(assign, weights=problem.workload, minlength=problem.k) / problem.targets - 1
            dev = float(np.abs(spread).max())
            territory = problem.territory(assign)
            oversized = 0 if territory is None else int((~within_cap(territory, problem.size_caps)).sum())
            if oversized:  # a territory over its cap ranks behind any plan within the caps
                dev += 1.0 + float(np.max(territory / np.maximum(problem.size_caps, 1e-12)))
            if len(log) < 50:
                log.append(f"start {attempt}: could not rebalance (max deviation {float(np.abs(spread).max()):+.1%}"
                           + (f", {oversized} sector(s) over their territory cap)" if oversized else ")"))
            if best_unbalanced is None or dev < best_unbalanced[0]:
                best_unbalanced = (dev, assign.copy(), centres.copy())
            continue
        centres, obj = improve(problem, assign, centres, nbrs, rng, local_deadline)
        line = f"start {attempt}: balanced plan, objective {obj:,.0f} ({time.monotonic() - wall:.1f} s)"
        if best is None or obj < best[0]:
            log.append(line)
            if progress:
                progress(line)
            best = (obj, assign.copy(), centres.copy())
    if best is not None:
        return HeuristicPlan(best[1], best[2], best[0], log)
    if attempt == 0 or (best_unbalanced is None and not problem.locked):
        raise NoPlanFoundError(f"no start completed in {time_limit_s:g} s; give more time")
    if best_unbalanced is None:
        raise NoPlanFoundError(
            "no start could grow every sector to its locked units in the time limit; "
            "check that each sector's locked units can be joined, or give more time"
        )
    _, a, c = best_unbalanced
    return HeuristicPlan(a, c, problem.objective_value(a, c), log)
