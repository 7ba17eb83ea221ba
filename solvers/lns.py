"""Large-neighbourhood search: re-optimise two adjacent sectors at a time.

A plan from location-allocation is optimal for its centres, and each centre
is its sector's weighted medoid; it can still be improved by moving two
centres *together*. :func:`improve_lns` repeatedly takes a pair of adjacent
sectors, frees their union (everything else fixed) and solves the two-sector
sub-problem by a small location-allocation: for each candidate pair of centres
(the best few medoid candidates of each sector), the exact allocation MIP
(:func:`solvers.mip.allocate`, shortest-path contiguity, same balance bounds)
on the union, then re-centring to the medoids and allocating again while it
gains. The best result replaces the pair when it lowers the objective; the
whole plan is then checked (:func:`solvers.check.check_plan`: contiguity,
balance, locks), so every accepted plan is valid.

Pairs are visited in a seeded random order; a pair is visited again only after
one of its sectors changed. The search stops when no pair improves (a local
optimum for this neighbourhood) or on time. Without a time stop, the result
depends on the seed only.

Only the ``"pmedian"`` objective without a previous plan is searched (with
worker bases the centres are fixed, and location-allocation already gives the
optimal allocation); other problems are returned unchanged, with a log line.
"""

from __future__ import annotations

import time

import networkx as nx
import numpy as np

from solvers.check import check_plan
from solvers.heuristic import recentre
from solvers.hierarchy import SubsetTravelTimes
from solvers.mip import allocate, edge_minutes
from solvers.problem import ProgressCallback, Problem


def adjacent_pairs(problem: Problem, assignment: np.ndarray) -> list[tuple[int, int]]:
    """Sorted pairs ``(a, b)``, ``a < b``, of sectors that share a graph edge."""
    edges = np.array(list(problem.graph.edges), dtype=np.intp).reshape(-1, 2)
    sa, sb = assignment[edges[:, 0]], assignment[edges[:, 1]]
    cross = sa != sb
    pairs = {(int(min(a, b)), int(max(a, b))) for a, b in zip(sa[cross], sb[cross])}
    return sorted(pairs)


def sub_problem(problem: Problem, units: np.ndarray, sectors: tuple[int, ...]) -> Problem:
    """The problem restricted to ``units`` (renumbered ``0..len(units)-1`` in the given
    order) with the targets of ``sectors`` (renumbered ``0..len(sectors)-1``); locks kept."""
    index = {int(u): i for i, u in enumerate(units)}
    graph = nx.relabel_nodes(problem.graph.subgraph(units.tolist()), index, copy=True)
    local = {s: i for i, s in enumerate(sectors)}
    locked = {index[u]: local[s] for u, s in problem.locked.items() if u in index and s in local}
    return Problem(
        graph=graph,
        workload=np.asarray(problem.workload, dtype=float)[units],
        targets=np.asarray(problem.targets, dtype=float)[list(sectors)],
        tolerance=problem.tolerance,
        travel=SubsetTravelTimes(problem.travel, units),
        cost_weight=problem.weights[units],
        locked=locked,
    )


def medoid_candidates(problem: Problem, members: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` units of ``members`` with the smallest summed weighted minutes to the
    members (the weighted medoid first); among the heaviest 300 members of large sectors."""
    w = problem.weights
    cand = members
    if members.size > 400:
        cand = members[np.argsort(-w[members], kind="stable")[:300]]
    cost = problem.travel.rows(cand)[:, members] @ w[members]
    return cand[np.argsort(cost, kind="stable")[:count]]


def _pair_search(sub: Problem, assign: np.ndarray, centres: np.ndarray, lengths, candidates: int,
                 deadline: float) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Best plan of a two-sector sub-problem found from candidate centre pairs, or ``None``
    when none beats the current one (``assign``, ``centres`` in sub-problem numbering)."""
    current = sub.objective_value(assign, centres)
    best: tuple[np.ndarray, np.ndarray, float] | None = None
    best_obj = current
    cand = [medoid_candidates(sub, np.flatnonzero(assign == s), candidates) for s in range(2)]
    tried: set[tuple[int, int]] = set()
    for ca in cand[0]:
        for cb in cand[1]:
            if ca == cb or (int(ca), int(cb)) in tried:
                continue
            pair = np.array([ca, cb])
            while time.monotonic() < deadline:  # location-allocation from this pair
                tried.add((int(pair[0]), int(pair[1])))
                alloc = allocate(sub, pair, lengths=lengths, time_limit_s=max(deadline - time.monotonic(), 0.1),
                                 hint=assign)
                if alloc.assignment is None:
                    break
                moved = recentre(sub, alloc.assignment, pair)
                obj = sub.objective_value(alloc.assignment, moved)
                if obj < best_obj - 1e-9 * max(abs(best_obj), 1.0):
                    best, best_obj = (alloc.assignment, moved, obj), obj
                if np.array_equal(moved, pair) or (int(moved[0]), int(moved[1])) in tried:
                    break
                pair = moved
            if time.monotonic() >= deadline:
                return best
    return best


def improve_lns(
    problem: Problem,
    assignment: np.ndarray,
    centres: np.ndarray,
    *,
    time_limit_s: float,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    candidates: int = 3,
) -> tuple[np.ndarray, np.ndarray, float, list[str]]:
    """Improve a valid plan by re-optimising pairs of adjacent sectors.

    Parameters
    ----------
    problem
        The problem (``"pmedian"`` without a previous plan; others are returned unchanged).
    assignment, centres
        A valid plan: ``(n,)`` sector of each unit, ``(k,)`` centre unit of each sector.
    time_limit_s
        Wall-clock budget in seconds.
    seed
        Seed of the order in which pairs are visited.
    progress
        Called with one line per accepted improvement.
    candidates
        Centre candidates per sector (the best medoid candidates): ``candidates**2``
        centre pairs are tried per sector pair.

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
    began = time.monotonic()
    deadline = began + time_limit_s
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
    moved = recentre(problem, assign, centres)
    if problem.objective_value(assign, moved) < objective:
        centres, objective = moved, problem.objective_value(assign, moved)
    lengths = edge_minutes(problem)
    rng = np.random.default_rng(seed)
    dirty = set(adjacent_pairs(problem, assign))
    visits = accepted = 0
    start_obj = objective
    while dirty and time.monotonic() < deadline:
        order = sorted(dirty)
        pair = order[int(rng.integers(len(order)))]
        dirty.discard(pair)
        a, b = pair
        units = np.flatnonzero((assign == a) | (assign == b))
        sub = sub_problem(problem, units, (a, b))
        local = (assign[units] == b).astype(np.intp)
        pos = {int(u): i for i, u in enumerate(units)}
        sub_centres = np.array([pos[int(centres[a])], pos[int(centres[b])]])
        sub_lengths = lengths[units][:, units]
        visits += 1
        found = _pair_search(sub, local, sub_centres, sub_lengths, candidates, deadline)
        if found is None:
            continue
        new_assign = assign.copy()
        new_assign[units] = np.where(found[0] == 0, a, b)
        new_centres = centres.copy()
        new_centres[a], new_centres[b] = units[found[1][0]], units[found[1][1]]
        new_obj = problem.objective_value(new_assign, new_centres)
        if new_obj >= objective - 1e-9 * max(abs(objective), 1.0) or check_plan(problem, new_assign):
            continue
        assign, centres, objective = new_assign, new_centres, new_obj
        accepted += 1
        line = (f"LNS: sectors {a} + {b} re-optimised, objective {objective:,.2f} "
                f"after {time.monotonic() - began:.1f} s")
        log.append(line)
        say(line)
        dirty |= {p for p in adjacent_pairs(problem, assign) if a in p or b in p}
    stop = "converged" if not dirty else "time limit"
    line = (f"LNS: {visits} pair visits, {accepted} accepted, objective {start_obj:,.2f} -> {objective:,.2f} "
            f"({stop}, {time.monotonic() - began:.1f} s)")
    log.append(line)
    say(line)
    return assign, centres, objective, log
