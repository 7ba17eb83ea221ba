"""Large-neighbourhood search: re-optimise two adjacent sectors at a time.

A plan from location-allocation is optimal for its centres, and each centre
is (nearly) its sector's weighted medoid; it can still be improved by moving
two centres *together*. :func:`improve_lns` repeatedly takes a pair of
adjacent sectors, frees their union (everything else fixed) and searches the
two-sector sub-problem: the best few medoid candidates of each sector give
candidate centre pairs, ranked by a fractional split that drops contiguity
(:func:`split_floors`, a lower bound for each pair); the best-ranked pairs are
allocated exactly (:func:`solvers.allocation.mip.allocate`, shortest-path contiguity, or
:func:`split_pair`, exact contiguity by separator cuts) while their floor can
still beat the best plan, and each result is re-centred on its exact medoids.
Exact contiguity is the default: it searches a larger neighbourhood than the
shortest-path restriction.
The best result replaces the pair when it lowers the objective and the whole
plan passes :func:`solvers.check.check_plan` (contiguity, balance, locks), so
every accepted plan is valid.

Each pair MIP keeps only the units whose side is still open: a plan at least
as good as the current one is known, so a Lagrangian relaxation of the balance
fixes the others (:func:`pair_fixings`, reduced-cost fixing); the result is the
same, found faster.

Pairs are visited in a seeded random order; a pair is visited again only after
one of its sectors changed. When no pair improves, one pass over the triples of
pairwise adjacent sectors re-assigns their units exactly with the centres fixed
(:func:`solvers.lns.reassign.reassign`): units can then move around a cycle of
three sectors, which balance forbids to pair moves when the sectors are at
their bounds. The search stops when neither pairs nor triples improve (a local
optimum for this neighbourhood) or on time. Without a time stop (and while no
MIP reaches its cap of a few seconds), the result depends on the seed only.

Territory caps (:attr:`Problem.max_size`) are constraints of every pair and
triple MIP (:func:`split_pair`, :func:`solvers.lns.reassign.reassign`, the
allocation MIP); the floors of :func:`split_floors` and the fixings of
:func:`pair_fixings` ignore them, which keeps them valid (a relaxation).

Only the ``"pmedian"`` objective without a previous plan is searched (with
worker bases the centres are fixed, and location-allocation already gives the
optimal allocation); other problems are returned unchanged, with a log line.

Budgets are times of the active clock (:mod:`solvers.budget`). With a work clock the
search counts the travel-time entries its floors and medoids read, the units of each
sub-problem and pair model it builds, and each HiGHS solve's reported work; the MIPs
get deterministic limits, so the search stops after the same visits on any machine.
"""

from __future__ import annotations

import time

import networkx as nx
import numpy as np

from ortools.math_opt.python import mathopt

from solvers import budget
from solvers.check import check_plan
from solvers.allocation.mip import allocate, edge_minutes
from solvers.problem import ProgressCallback, Problem
from solvers.lns.reassign import adjacency, cut_off, highs_optimum, reassign
from solvers.travel import SubsetTravelTimes


def edge_array(problem: Problem) -> np.ndarray:
    """``(m, 2)`` the graph's edges as unit pairs."""
    return np.array(list(problem.graph.edges), dtype=np.intp).reshape(-1, 2)


def adjacent_pairs(problem: Problem, assignment: np.ndarray, edges: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Sorted pairs ``(a, b)``, ``a < b``, of sectors that share a graph edge (``edges``:
    :func:`edge_array`, computed when ``None``)."""
    edges = edge_array(problem) if edges is None else edges
    sa, sb = assignment[edges[:, 0]], assignment[edges[:, 1]]
    cross = sa != sb
    pairs = {(int(min(a, b)), int(max(a, b))) for a, b in zip(sa[cross], sb[cross])}
    return sorted(pairs)


#: Seconds at most for one three-sector re-assignment (:func:`solvers.lns.reassign.reassign`).
TRIPLE_S = 3.0


def adjacent_triples(problem: Problem, assignment: np.ndarray,
                     edges: np.ndarray | None = None) -> list[tuple[int, int, int]]:
    """Sorted triples ``(a, b, c)``, ``a < b < c``, of sectors that pairwise share a graph edge."""
    pairs = set(adjacent_pairs(problem, assignment, edges))
    near: dict[int, set[int]] = {}
    for a, b in pairs:
        near.setdefault(a, set()).add(b)
    return sorted((a, b, c) for a, b in pairs for c in near.get(b, ()) if (a, c) in pairs)


def sub_problem(problem: Problem, units: np.ndarray, sectors: tuple[int, ...],
                edges: np.ndarray | None = None) -> Problem:
    """The problem restricted to ``units`` (renumbered ``0..len(units)-1`` in the given
    order) with the targets of ``sectors`` (renumbered ``0..len(sectors)-1``); locks and
    territory caps kept.
    ``edges``: the problem's ``(m, 2)`` edge array (:func:`edge_array`), read from the graph
    when ``None``."""
    units = np.asarray(units, dtype=np.intp)
    budget.tick("scan", problem.n + 2 * len(units))  # the edge filter and the sub-graph
    index = np.full(problem.n, -1, dtype=np.intp)
    index[units] = np.arange(len(units))
    inner = index[edge_array(problem) if edges is None else edges]
    graph = nx.Graph()
    graph.add_nodes_from(range(len(units)))
    graph.add_edges_from(inner[(inner >= 0).all(axis=1)].tolist())
    local = {s: i for i, s in enumerate(sectors)}
    locked = {int(index[u]): local[s] for u, s in problem.locked.items() if index[u] >= 0 and s in local}
    return Problem(
        graph=graph,
        workload=np.asarray(problem.workload, dtype=float)[units],
        targets=np.asarray(problem.targets, dtype=float)[list(sectors)],
        tolerance=problem.tolerance,
        travel=SubsetTravelTimes(problem.travel, units),
        cost_weight=problem.weights[units],
        locked=locked,
        size=None if problem.size is None else problem.sizes[units],
        max_size=None if problem.size is None else problem.size_caps[list(sectors)],
        size_unit=problem.size_unit,
    )


def medoid_candidates(problem: Problem, members: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` units of ``members`` with the smallest summed weighted minutes to the
    members (the exact weighted medoid first)."""
    w = problem.weights
    cost = problem.travel.rows(members)[:, members] @ w[members]
    budget.tick("entry", len(members) * problem.n)
    return members[np.argsort(cost, kind="stable")[:count]]


def exact_medoids(problem: Problem, assign: np.ndarray) -> np.ndarray:
    """``(k,)`` the member of each sector with the smallest summed weighted minutes to its sector."""
    return np.array([medoid_candidates(problem, np.flatnonzero(assign == s), 1)[0] for s in range(problem.k)])


def split_floors(sub: Problem, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Lower bounds on the best two-sector plan for each centre pair ``(first[p], second[p])``.

    Contiguity dropped and units divisible: sector 0's workload must lie in
    ``[max(L0, W - U1), min(U0, W - L1)]``; units join sector 0 in increasing
    order of ``(cost0 - cost1) / workload`` (a fractional knapsack), each centre
    in its own sector. ``inf`` when the bounds leave no room. Objective units.
    """
    w = np.asarray(sub.workload, dtype=float)
    cw = sub.weights
    total = w.sum()
    lo = max(sub.lower[0], total - sub.upper[1])
    hi = min(sub.upper[0], total - sub.lower[1])
    if lo > hi + 1e-9:
        return np.full(len(first), np.inf)
    t0 = sub.travel.rows(first) * cw[None, :]
    t1 = sub.travel.rows(second) * cw[None, :]
    budget.tick("entry", 30 * len(first) * sub.n)  # a dozen passes and a sort over (pairs, n) arrays
    rows = np.arange(len(first))
    fixed = t0[rows, first] + t1[rows, second]  # each centre in its own sector
    d = t0 - t1  # extra cost of a unit in sector 0 rather than 1
    pool = np.ones_like(d, dtype=bool)
    pool[rows, first] = pool[rows, second] = False
    positive = (w > 0)[None, :] & pool
    free = pool & ~positive  # no workload: joins the cheaper sector
    base = fixed + np.where(pool, t1, 0.0).sum(axis=1) + np.where(free, np.minimum(d, 0.0), 0.0).sum(axis=1)
    lo_p, hi_p = lo - w[first], hi - w[first]  # (pairs,) room for sector 0 besides its centre
    wide = np.broadcast_to(w, d.shape)
    ratio = np.where(positive, d / np.where(wide > 0, wide, 1.0), np.inf)
    order = np.argsort(ratio, axis=1, kind="stable")
    ws = np.take_along_axis(np.where(positive, wide, 0.0), order, axis=1)
    ds = np.take_along_axis(np.where(positive, d, 0.0), order, axis=1)
    before = np.cumsum(ws, axis=1) - ws
    safe = np.where(ws > 0, ws, 1.0)
    # take each unit while under lo (forced) or while it lowers the cost, never above hi
    must = np.clip((lo_p[:, None] - before) / safe, 0.0, 1.0)
    may = np.clip((hi_p[:, None] - before) / safe, 0.0, 1.0)
    frac = np.where(ds < 0, may, must) * (ws > 0)
    value = base + (frac * ds).sum(axis=1)
    reach = ws.sum(axis=1)
    bad = (hi_p < -1e-9) | (reach < lo_p - 1e-9) | (first == second)
    value[bad] = np.inf
    return value


def pair_fixings(workload: np.ndarray, gain: np.ndarray, fixed: dict[int, int], lower: float, upper: float,
                 ceiling: float) -> dict[int, int]:
    """Units whose side every two-sector plan costing at most ``ceiling`` shares: ``{unit: y}``
    with ``y = 1`` for sector 0 (Lagrangian reduced-cost fixing), ``fixed`` included.

    The plan sets ``y[i]`` in {0, 1}, costs ``sum(gain[i] * y[i])`` and keeps
    ``lower <= sum(workload[i] * y[i]) <= upper``; ``fixed`` units are set. Relaxing
    the balance with a multiplier ``lam`` (on the lower bound when positive, the upper
    when negative) gives the bound ``L(lam) = sum(min(0, r[i])) + lam * b`` over free
    units, ``r[i] = gain[i] - lam * workload[i]``; the best ``lam`` is a breakpoint
    ``gain[i] / workload[i]`` or 0. A free unit on the other side than ``r[i] < 0``
    says costs at least ``L + |r[i]|``: above ``ceiling``, its side is fixed. Contiguity
    only removes plans, so the fixings hold for contiguous plans too.
    """
    w = np.asarray(workload, dtype=float)
    gain = np.asarray(gain, dtype=float)
    n = len(w)
    free = np.ones(n, dtype=bool)
    y_fixed = np.zeros(n)
    for u, y in fixed.items():
        free[u], y_fixed[u] = False, float(y)
    const_gain, const_load = float(gain @ y_fixed), float(w @ y_fixed)
    zero = free & (w <= 0)  # no workload: the cheaper side, whatever lam
    const_gain += float(np.minimum(gain[zero], 0.0).sum())
    pos = np.flatnonzero(free & (w > 0))
    ratio = gain[pos] / w[pos]
    order = np.argsort(ratio, kind="stable")
    rs, gs, ws = ratio[order], gain[pos][order], w[pos][order]
    # at lam = rs[j], the units before j in that order join sector 0 (r < 0); j itself is at r = 0
    lams = np.concatenate([[0.0], rs])
    taken = np.searchsorted(rs, lams, side="left")
    cum_g = np.concatenate([[0.0], np.cumsum(gs)])[taken]
    cum_w = np.concatenate([[0.0], np.cumsum(ws)])[taken]
    bound_side = np.where(lams >= 0, lower, upper)
    values = const_gain + cum_g - lams * (const_load + cum_w) + lams * bound_side
    best = int(np.argmax(values))
    lam, floor = float(lams[best]), float(values[best])
    r = gain - lam * w
    settled = free & (floor + np.abs(r) > ceiling + 1e-9 * max(abs(ceiling), 1.0))
    out = dict(fixed)
    out.update({int(u): int(r[u] < 0) for u in np.flatnonzero(settled)})
    return out


def split_pair(sub: Problem, centres: np.ndarray, *, deadline: float, hint: np.ndarray | None = None,
               ceiling: float | None = None, fixing: bool = True, max_rounds: int = 60) -> np.ndarray | None:
    """Best contiguous, balanced two-sector plan of ``sub`` for fixed ``centres`` (exact).

    A 0/1 model ``y[i] = 1`` when unit ``i`` joins sector 0, with the balance
    bounds of both sectors and each centre in its own sector, solved by HiGHS
    without contiguity; then, while a sector has a piece cut off from its
    centre, separator cuts are added and the model solved again: for a piece
    ``C`` of sector 0 and its outside neighbours ``N(C)`` (all in sector 1),
    ``y[i] <= sum_{j in N(C)} y[j]`` for every ``i`` in ``C`` (any path from
    ``i`` to the centre crosses ``N(C)``), and the same with ``1 - y`` for
    sector 1. Every plan meeting the constraints is contiguous, so the first
    contiguous optimum is the optimum. With territory caps, sector 0's
    territory ``sum size[i] y[i]`` lies within ``[total - cap1, cap0]``.
    Returns ``None`` when none exists, or
    none was found by ``deadline`` (a time of the active clock) or in ``max_rounds``.

    With ``hint`` (a valid plan of ``sub`` with these centres, ``0``/``1`` per unit),
    units whose side no plan at most as costly as the hint can change are fixed first
    (:func:`pair_fixings`): the model keeps the others only, and the result is the same,
    found faster. With ``ceiling`` (objective units), only plans costing at most that
    are sought, which fixes more units; when none does, the result is ``None`` or a
    plan above the ceiling. ``fixing=False`` keeps every unit in the model (for
    measurements).
    """
    # stays whole: one cut loop over one incremental HiGHS model
    n = sub.n
    w = np.asarray(sub.workload, dtype=float)
    cost = sub.cost_rows(centres)
    gain = cost[0] - cost[1]  # extra minutes when a unit joins sector 0 rather than 1
    total = float(w.sum())
    lower = max(float(sub.lower[0]), total - float(sub.upper[1]))
    upper = min(float(sub.upper[0]), total - float(sub.lower[1]))
    fixed = {int(centres[1]): 0, **{u: int(s == 0) for u, s in sub.locked.items()}}
    if fixed.get(int(centres[0]), 1) != 1:
        return None
    fixed[int(centres[0])] = 1
    limit = np.inf if ceiling is None else float(ceiling) - float(cost[1].sum())  # in gain units
    hint_gain = np.inf if hint is None else float(gain @ (np.asarray(hint) == 0))
    if hint_gain > limit:
        hint = None  # too costly: not a plan the model may keep
    if fixing and np.isfinite(min(limit, hint_gain)):
        fixed = pair_fixings(w, gain, fixed, lower, upper, min(limit, hint_gain))
    side_fixed = np.full(n, -1, dtype=np.intp)  # 1 (sector 0), 0 (sector 1) or -1 (free)
    for u, y_u in fixed.items():
        side_fixed[u] = y_u
    # the territory caps: sector 0's territory within [total - cap1, cap0] (the fixings above
    # ignore them, which only keeps more units free: they hold for the capped plans too)
    size = sub.sizes
    if size is not None:
        caps = sub.size_caps
        size_lo, size_hi = float(size.sum()) - float(caps[1]), float(caps[0])
    if (side_fixed >= 0).all():  # every unit settled: the plan is the hint, or there is none
        side = np.where(side_fixed == 1, 0, 1)
        load = float(w @ (side == 0))
        ok = lower - 1e-9 <= load <= upper + 1e-9 and all(
            nx.is_connected(sub.graph.subgraph(np.flatnonzero(side == s).tolist())) for s in (0, 1))
        if size is not None:
            ok = ok and not check_plan(sub, side)
        return side if ok else None
    model = mathopt.Model(name="pair")
    y = {int(i): model.add_binary_variable(name=f"y{i}") for i in np.flatnonzero(side_fixed < 0)}
    budget.tick("step", 3 * len(y))  # each free unit's variable and terms
    load = float(w @ (side_fixed == 1)) + mathopt.fast_sum(float(w[i]) * y[i] for i in y)
    model.add_linear_constraint(load >= lower)
    model.add_linear_constraint(load <= upper)
    if size is not None:
        territory = float(size @ (side_fixed == 1)) + mathopt.fast_sum(float(size[i]) * y[i] for i in y if size[i] > 0)
        model.add_linear_constraint(territory >= size_lo)
        model.add_linear_constraint(territory <= size_hi)
    model.minimize(mathopt.fast_sum(float(gain[i]) * y[i] for i in y))
    solver = mathopt.IncrementalSolver(model, mathopt.SolverType.HIGHS)
    graph = adjacency(sub.graph)
    params_hint = None
    if hint is not None:
        params_hint = mathopt.ModelSolveParameters(solution_hints=[mathopt.SolutionHint(
            variable_values={y[i]: float(hint[i] == 0) for i in y})])

    def joins(j: int, s: int):
        """The 0/1 expression "free unit ``j`` is in sector ``s``"."""
        return y[j] if s == 0 else 1 - y[j]

    for _ in range(max_rounds):
        result = highs_optimum(model, deadline, params_hint, solver=solver)
        budget.tick("visit", 2 * n)  # the pieces of both sectors
        if result is None:
            return None
        values = result.variable_values()
        side = np.where(side_fixed == 1, 0, 1)
        for i, var in y.items():
            side[i] = 0 if values[var] > 0.5 else 1
        cuts = 0
        for s in (0, 1):
            for piece, around in cut_off(graph, np.flatnonzero(side == s), int(centres[s])):
                # the piece's border is in the other sector; its fixed units stay there
                border = [int(j) for j in around if side_fixed[j] < 0]
                if (side_fixed[piece] == 1 - s).any():  # a unit fixed in sector s: it needs a way out
                    if not border:
                        return None
                    model.add_linear_constraint(mathopt.fast_sum(joins(j, s) for j in border) >= 1)
                for i in piece:
                    if side_fixed[i] < 0:
                        model.add_linear_constraint(joins(int(i), s) <= mathopt.fast_sum(joins(j, s) for j in border))
                cuts += 1
        if cuts == 0:
            return side
    return None


def _pair_search(sub: Problem, assign: np.ndarray, centres: np.ndarray, lengths, candidates: int,
                 deadline: float, max_mips: int, contiguity: str,
                 fixing: bool = True) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Best plan of a two-sector sub-problem, or ``None`` when none beats the current one
    (``assign``, ``centres`` in sub-problem numbering).

    Centre pairs among the ``candidates`` best medoid candidates of each sector
    are ranked by :func:`split_floors`; the allocation MIP then runs on them in
    that order (at most ``max_mips``) until the next floor cannot beat the best plan.
    """
    current = sub.objective_value(assign, centres)
    best: tuple[np.ndarray, np.ndarray, float] | None = None
    best_obj = current
    cand = [medoid_candidates(sub, np.flatnonzero(assign == s), candidates) for s in range(2)]
    first, second = (g.ravel() for g in np.meshgrid(cand[0], cand[1], indexing="ij"))
    floors = split_floors(sub, first, second)
    tol = 1e-9 * max(abs(current), 1.0)
    clock = budget.current()
    for p in np.argsort(floors, kind="stable")[:max_mips]:
        if floors[p] >= best_obj - tol or clock.now() >= deadline:
            break
        pair = np.array([first[p], second[p]])
        if contiguity == "cuts":
            plan = split_pair(sub, pair, deadline=min(deadline, clock.now() + 2.0), hint=assign,
                              ceiling=best_obj, fixing=fixing)
        else:
            plan = allocate(sub, pair, lengths=lengths, time_limit_s=max(deadline - clock.now(), 0.1),
                            hint=assign).assignment
        if plan is None:
            continue
        moved = np.array([medoid_candidates(sub, np.flatnonzero(plan == s), 1)[0] for s in range(2)])
        obj = sub.objective_value(plan, moved)
        if obj < best_obj - tol:
            best, best_obj = (plan, moved, obj), obj
    return best


def improve_lns(
    problem: Problem,
    assignment: np.ndarray,
    centres: np.ndarray,
    *,
    time_limit_s: float,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    candidates: int = 12,
    max_mips: int = 4,
    contiguity: str = "cuts",
    triples: bool = True,
    fixing: bool = True,
) -> tuple[np.ndarray, np.ndarray, float, list[str]]:
    """Improve a valid plan by re-optimising pairs, then triples, of adjacent sectors.

    Pairs come first, in a seeded random order, until none improves; then one pass
    over the triples of pairwise adjacent sectors changed since their last visit
    (:func:`solvers.lns.reassign.reassign` with the centres fixed, then each sector
    re-centred on its medoid, at most :data:`TRIPLE_S` seconds each); the pairs a
    triple changed are visited again after the pass. The search has converged when
    neither pairs nor triples improve.

    Parameters
    ----------
    problem
        The problem (``"pmedian"`` without a previous plan; others are returned unchanged).
    assignment, centres
        A valid plan: ``(n,)`` sector of each unit, ``(k,)`` centre unit of each sector.
    time_limit_s
        Budget in seconds of the active clock (wall or work, :mod:`solvers.budget`).
    seed
        Seed of the order in which pairs are visited.
    progress
        Called with one line per accepted improvement.
    candidates
        Centre candidates per sector (the best medoid candidates): ``candidates**2``
        centre pairs are ranked per sector pair by a relaxation (:func:`split_floors`).
    max_mips
        At most this many allocation MIPs per sector pair (best-ranked centre pairs first).
    contiguity
        ``"cuts"`` (default): :func:`split_pair`, exact for the centres, at
        most 2 s per centre pair; ``"shortest_path"``: the allocation MIP of
        :mod:`solvers.allocation.mip` (a restriction of contiguity).
    triples
        Whether to visit triples once no pair improves (``False``: pairs only).
    fixing
        Whether the pair MIPs keep only the units that reduced-cost fixing leaves
        free (:func:`pair_fixings`); ``False`` for measurements.

    Returns
    -------
    (assignment, centres, objective, log)
        The improved plan (still contiguous and balanced), its objective
        (workload x minutes) and the log lines.

    Examples
    --------
    >>> import networkx as nx, numpy as np
    >>> from solvers.problem import Problem, DenseTravelTimes
    >>> g = nx.path_graph(6)
    >>> t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(6), np.arange(6))) * 10.0)
    >>> p = Problem(g, np.ones(6), np.array([3.0, 3.0]), 0.0, t)
    >>> a, c, obj, log = improve_lns(p, np.array([0, 0, 0, 1, 1, 1]), np.array([0, 5]), time_limit_s=5)
    >>> a.tolist(), c.tolist(), obj
    ([0, 0, 0, 1, 1, 1], [1, 4], 40.0)
    """
    # stays whole: the visit loop only (pair and triple steps are helpers); the rest is its docstring
    clock = budget.current()
    began = time.monotonic()  # wall seconds, for the log
    deadline = clock.now() + time_limit_s
    say = progress or (lambda line: None)
    assign = np.asarray(assignment, dtype=np.intp).copy()
    centres = np.asarray(centres, dtype=np.intp).copy()
    objective = problem.objective_value(assign, centres)
    log: list[str] = []
    if problem.objective != "pmedian" or problem.previous is not None:
        log.append("large-neighbourhood search: skipped (worker bases or a previous plan)")
        return assign, centres, objective, log
    if check_plan(problem, assign):
        log.append("large-neighbourhood search: skipped (the starting plan is not valid)")
        return assign, centres, objective, log
    # first, the best centre of each sector for the plan as it is
    moved = exact_medoids(problem, assign)
    if problem.objective_value(assign, moved) < objective:
        centres, objective = moved, problem.objective_value(assign, moved)
    lengths = edge_minutes(problem)
    edges = edge_array(problem)
    rng = np.random.default_rng(seed)
    dirty = set(adjacent_pairs(problem, assign, edges))
    stale = set(adjacent_triples(problem, assign, edges)) if triples else set()  # triples not tried since they changed
    queue: list[tuple[int, ...]] = []  # the triples of the current pass
    visits = triple_visits = accepted = 0
    start_obj = objective
    while (dirty or stale or queue) and clock.now() < deadline:
        if dirty and not queue:  # pairs until none improves: cheaper, and they move centres
            order = sorted(dirty)
            sectors = order[int(rng.integers(len(order)))]
            dirty.discard(sectors)
            visits += 1
            move = _pair_move(problem, assign, centres, sectors, edges, lengths, deadline,
                              candidates=candidates, max_mips=max_mips, contiguity=contiguity, fixing=fixing)
        else:  # then a pass over the triples changed since their last visit (centres fixed, then re-centred)
            if not queue:
                queue = sorted(stale)
                queue = [queue[i] for i in rng.permutation(len(queue))]
                stale.clear()
            sectors = queue.pop()
            triple_visits += 1
            move = _triple_move(problem, assign, centres, sectors, edges, deadline)
        if move is None:
            continue
        new_assign, new_centres = move
        clock.tick("entry", problem.k * problem.n)  # the objective (and the check) of the new plan
        new_obj = problem.objective_value(new_assign, new_centres)
        if new_obj >= objective - 1e-9 * max(abs(objective), 1.0) or check_plan(problem, new_assign):
            continue
        assign, centres, objective = new_assign, new_centres, new_obj
        accepted += 1
        line = (f"LNS: sectors {' + '.join(map(str, sectors))} re-optimised, objective {objective:,.2f} "
                f"after {time.monotonic() - began:.1f} s")
        log.append(line)
        say(line)
        changed = set(sectors)
        dirty |= {p for p in adjacent_pairs(problem, assign, edges) if changed & set(p)}
        if triples:
            now = set(adjacent_triples(problem, assign, edges))
            stale = (stale & now) | {t for t in now if changed & set(t)}
    stop = "converged" if not (dirty or stale or queue) else "time limit"
    line = (f"LNS: {visits} pair visits, {triple_visits} triple visits, {accepted} accepted, "
            f"objective {start_obj:,.2f} -> {objective:,.2f} ({stop}, {time.monotonic() - began:.1f} s)")
    log.append(line)
    say(line)
    return assign, centres, objective, log


def _pair_move(problem: Problem, assign: np.ndarray, centres: np.ndarray, sectors: tuple[int, int],
               edges: np.ndarray, lengths, deadline: float, *, candidates: int, max_mips: int, contiguity: str,
               fixing: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """One pair step of :func:`improve_lns`: the plan (assignment, centres) with the two
    ``sectors`` re-optimised together (:func:`_pair_search`), or ``None`` when nothing beats
    the current plan of the pair."""
    a, b = sectors
    units = np.flatnonzero((assign == a) | (assign == b))
    sub = sub_problem(problem, units, sectors, edges)
    local = (assign[units] == b).astype(np.intp)
    pos = {int(u): i for i, u in enumerate(units)}
    sub_centres = np.array([pos[int(centres[a])], pos[int(centres[b])]])
    sub_lengths = lengths[units][:, units]
    found = _pair_search(sub, local, sub_centres, sub_lengths, candidates, deadline, max_mips, contiguity, fixing)
    if found is None:
        return None
    new_assign = assign.copy()
    new_assign[units] = np.where(found[0] == 0, a, b)
    new_centres = centres.copy()
    new_centres[a], new_centres[b] = units[found[1][0]], units[found[1][1]]
    return new_assign, new_centres


def _triple_move(problem: Problem, assign: np.ndarray, centres: np.ndarray, sectors: tuple[int, ...],
                 edges: np.ndarray, deadline: float) -> tuple[np.ndarray, np.ndarray] | None:
    """One triple step of :func:`improve_lns`: the units of the three ``sectors`` re-assigned
    exactly with their centres fixed (:func:`solvers.lns.reassign.reassign`, at most
    :data:`TRIPLE_S` seconds), then each sector re-centred on its medoid; ``None`` when the
    assignment does not change."""
    units = np.flatnonzero(np.isin(assign, sectors))
    sub = sub_problem(problem, units, sectors, edges)
    local = np.searchsorted(np.array(sectors), assign[units])
    sub_centres = np.searchsorted(units, centres[list(sectors)])
    plan = reassign(sub, sub_centres, local, deadline=min(deadline, budget.now() + TRIPLE_S))
    if plan is None or np.array_equal(plan, local):
        return None
    new_assign = assign.copy()
    new_assign[units] = np.array(sectors)[plan]
    new_centres = centres.copy()
    for s in sectors:
        new_centres[s] = medoid_candidates(problem, np.flatnonzero(new_assign == s), 1)[0]
    return new_assign, new_centres
