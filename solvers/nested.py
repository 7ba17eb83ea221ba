"""Two-level sectorization: one sector per worker, grouped into contiguous
territorial groups.

The default strategy is *sectors first*: the whole graph is split into one
contiguous sector per worker (targets ``total workload x fte / total FTE``),
then the sectors are grouped (:func:`group_sectors`): every way of sharing
the workers between the groups is tried, keeping the splits whose groups are
connected and within the group tolerance, and choosing the most even FTE,
then the shortest border between groups. Drawing the groups first instead (a
2-centre p-median over the region) gives snaking group borders when demand is
concentrated around one city: both group centres sit near it and distant
units are indifferent between them. *Groups first* is kept as the fallback
when no grouping of the sectors meets the group tolerance.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from solvers.check import diagnose
from solvers.engine import Backend, solve
from solvers.problem import InfeasibleError, NoPlanError, Objective, ProgressCallback, Problem, Solution, TravelTimes
from solvers.travel import SubsetTravelTimes


def split_workers(
    fte: np.ndarray,
    n_groups: int,
    fixed: list[int | None] | None = None,
) -> np.ndarray:
    """Share the workers between ``n_groups`` groups with FTE as equal as possible.

    Parameters
    ----------
    fte
        ``(W,)`` full-time equivalent of each worker (e.g. 1.0, 0.8).
    n_groups
        Number of groups (each gets at least one worker).
    fixed
        Optional ``(W,)`` list: the group index a worker must belong to, or
        ``None`` when free.

    Returns
    -------
    numpy.ndarray
        ``(W,)`` group index of each worker. Among all splits, the one with
        the smallest largest FTE deviation from the mean, then the most even
        head-counts, then the lexicographically first (so it is deterministic).

    Examples
    --------
    >>> split_workers(np.array([1.0, 1.0, 1.0, 0.5, 0.5]), 2).tolist()
    [0, 0, 1, 1, 1]
    """
    fte = np.asarray(fte, dtype=float)
    w = len(fte)
    fixed = list(fixed) if fixed is not None else [None] * w
    if len(fixed) != w:
        raise ValueError("fixed must have one entry per worker")
    if n_groups < 1 or n_groups > w:
        raise ValueError(f"cannot split {w} workers into {n_groups} groups")
    free = [i for i in range(w) if fixed[i] is None]
    if n_groups ** len(free) > 2_000_000:
        raise ValueError(f"too many free workers ({len(free)}) to split exactly; fix some groups")
    mean = fte.sum() / n_groups
    best_key, best = None, None
    base = np.array([-1 if f is None else f for f in fixed])
    for combo in itertools.product(range(n_groups), repeat=len(free)):
        groups = base.copy()
        groups[free] = combo
        sizes = np.bincount(groups, minlength=n_groups)
        if (sizes == 0).any():
            continue
        loads = np.bincount(groups, weights=fte, minlength=n_groups)
        key = (round(float(np.abs(loads - mean).max()), 9), int(sizes.max() - sizes.min()), tuple(groups))
        if best_key is None or key < best_key:
            best_key, best = key, groups
    if best is None:
        raise ValueError("no split gives every group at least one worker")
    return best


@dataclass
class NestedSolution:
    """Result of :func:`solve_nested`.

    ``group[i]`` and ``sector[i]`` are the group and the worker index of unit
    ``i``; ``worker_group[w]`` the group of worker ``w``; ``centre[w]`` the
    centre unit of worker ``w``'s sector; ``objective`` the sector objective
    (workload x minutes); ``strategy`` ``"sectors first"`` or ``"groups
    first"``.
    """

    group: np.ndarray
    sector: np.ndarray
    worker_group: np.ndarray
    centre: np.ndarray
    objective: float
    solutions: list[Solution] = field(default_factory=list)
    strategy: str = "sectors first"
    time_s: float = 0.0
    log: list[str] = field(default_factory=list)


def group_sectors(
    graph: nx.Graph,
    sector: np.ndarray,
    workload: np.ndarray,
    fte: np.ndarray,
    n_groups: int,
    group_tolerance: float,
    fixed: list[int | None] | None = None,
) -> np.ndarray | None:
    """Share the sectors (one per worker) between ``n_groups`` contiguous groups.

    Parameters
    ----------
    graph
        Contiguity graph over units ``0..n-1``; an edge attribute ``border_m``
        (metres) weighs the border between groups (1 per edge if absent).
    sector
        ``(n,)`` worker index of each unit.
    workload, fte
        ``(n,)`` unit workloads; ``(W,)`` worker FTE. A group's target is
        its workers' share of FTE times the total workload.
    n_groups, group_tolerance
        Number of groups; each group's caseload must be within
        ``±group_tolerance`` of its target.
    fixed
        ``(W,)`` required group index of each worker, or ``None`` when free.

    Returns
    -------
    numpy.ndarray or None
        ``(W,)`` group of each worker: among the splits whose groups are all
        non-empty, connected and within tolerance, the one with the most
        even FTE, then the shortest border between groups; ``None`` if no
        split qualifies.

    Examples
    --------
    >>> g = nx.path_graph(4)
    >>> group_sectors(g, np.array([0, 1, 2, 3]), np.ones(4), np.ones(4), 2, 0.0).tolist()
    [0, 0, 1, 1]
    """
    sector = np.asarray(sector, dtype=np.intp)
    fte = np.asarray(fte, dtype=float)
    w = len(fte)
    fixed = list(fixed) if fixed is not None else [None] * w
    loads = np.bincount(sector, weights=np.asarray(workload, dtype=float), minlength=w)
    total = loads.sum()
    border = np.zeros((w, w))
    for a, b, data in graph.edges(data=True):
        sa, sb = sector[a], sector[b]
        if sa != sb:
            length = data.get("border_m", 1.0) or 1.0
            border[sa, sb] += length
            border[sb, sa] += length
    touching = border > 0
    free = [i for i in range(w) if fixed[i] is None]
    if n_groups ** len(free) > 2_000_000:
        raise ValueError(f"too many free workers ({len(free)}) to group exactly; fix some groups")
    base = np.array([-1 if f is None else f for f in fixed])
    mean_fte = fte.sum() / n_groups
    best_key, best = None, None
    for combo in itertools.product(range(n_groups), repeat=len(free)):
        groups = base.copy()
        groups[free] = combo
        if fixed.count(None) == w and groups[0] != 0:
            continue  # the first worker's group is called 0 (labels are interchangeable)
        if (np.bincount(groups, minlength=n_groups) == 0).any():
            continue
        g_fte = np.bincount(groups, weights=fte, minlength=n_groups)
        g_load = np.bincount(groups, weights=loads, minlength=n_groups)
        target = total * g_fte / fte.sum()
        if (np.abs(g_load - target) > group_tolerance * target + 1e-9).any():
            continue
        if not all(_connected(touching, np.flatnonzero(groups == g)) for g in range(n_groups)):
            continue
        cut = float(border[groups[:, None] != groups[None, :]].sum() / 2)
        key = (round(float(np.abs(g_fte - mean_fte).max()), 6), cut, tuple(groups))
        if best_key is None or key < best_key:
            best_key, best = key, groups
    return best


def _connected(touching: np.ndarray, members: np.ndarray) -> bool:
    """Whether ``members`` form one piece in the sector adjacency matrix."""
    members = set(members.tolist())
    start = next(iter(members))
    seen, stack = {start}, [start]
    while stack:
        a = stack.pop()
        for b in np.flatnonzero(touching[a]):
            b = int(b)
            if b in members and b not in seen:
                seen.add(b)
                stack.append(b)
    return seen == members


def solve_nested(
    graph: nx.Graph,
    workload: np.ndarray,
    travel: TravelTimes,
    fte: np.ndarray,
    n_groups: int,
    *,
    tolerance: float,
    group_tolerance: float,
    fixed_groups: list[int | None] | None = None,
    objective: Objective = "pmedian",
    base_travel: np.ndarray | None = None,
    cost_weight: np.ndarray | None = None,
    labels: tuple[str, ...] | None = None,
    worker_labels: tuple[str, ...] | None = None,
    group_labels: tuple[str, ...] | None = None,
    backend: Backend = "auto",
    time_limit_s: float = 30.0,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    tie_break_slack: float | None = None,
    tie_break_weight: str | None = None,
) -> NestedSolution:
    """One contiguous sector per worker, grouped into ``n_groups`` contiguous groups.

    Parameters
    ----------
    graph, workload, travel, cost_weight, labels
        As in :class:`Problem` (units ``0..n-1``).
    fte
        ``(W,)`` FTE of each worker; sector targets are ``total x fte / sum(fte)``.
    n_groups, fixed_groups
        Number of groups; optional ``(W,)`` required group of each worker.
    tolerance, group_tolerance
        Relative caseload tolerance of sectors and of groups.
    objective, base_travel
        Sector objective; ``base_travel`` is ``(W, n)`` minutes from each
        worker's base (needed for ``"base"``).
    backend, time_limit_s, seed, progress, tie_break_slack, tie_break_weight
        As in :func:`solvers.engine.solve` (the tie-break shortens the
        sectors' boundaries, within each group when groups come first). The sectors-first strategy uses
        the whole time limit; if its sectors cannot be grouped, the
        groups-first fallback gets a second time limit (the log says so).

    Raises
    ------
    InfeasibleError
        When no plan can meet the tolerances (the message says why).
    NoPlanFoundError
        When a stage found no plan in its time (nothing proven).
    """
    # stays whole: sectors first, then the grouping or the groups-first fallback; mostly docstring
    start = time.monotonic()
    say = progress or (lambda line: None)
    workload = np.asarray(workload, dtype=float)
    fte = np.asarray(fte, dtype=float)
    sector_targets = workload.sum() * fte / fte.sum()
    glabels = group_labels or tuple(f"group {g}" for g in range(n_groups))
    wlabels = worker_labels or tuple(f"worker {w}" for w in range(len(fte)))
    flat = Problem(graph, workload, sector_targets, tolerance, travel, objective,
                   base_travel=base_travel, cost_weight=cost_weight, labels=labels, sector_labels=wlabels)
    reasons = diagnose(flat)
    if reasons:
        raise InfeasibleError("; ".join(reasons))
    say(f"sectors: {graph.number_of_nodes():,} units into {len(fte)} sectors")
    sol = solve(flat, backend=backend, time_limit_s=time_limit_s, seed=seed,
                progress=lambda line: say(f"sectors: {line}"),
                tie_break_slack=tie_break_slack, tie_break_weight=tie_break_weight)
    worker_group = (np.zeros(len(fte), dtype=np.intp) if n_groups == 1 else
                    group_sectors(graph, sol.assignment, workload, fte, n_groups, group_tolerance, fixed_groups))
    if worker_group is not None:
        line = "groups: " + "; ".join(
            f"{glabels[g]} = {', '.join(wlabels[w] for w in np.flatnonzero(worker_group == g))}"
            for g in range(n_groups))
        say(line)
        return NestedSolution(worker_group[sol.assignment], sol.assignment, worker_group, sol.centres,
                              sol.objective, [sol], "sectors first", time.monotonic() - start, [*sol.log, line])
    line = (f"groups: no grouping of these sectors is connected and within ±{group_tolerance:.0%}; "
            "falling back to drawing the groups first (a second time limit)")
    say(line)
    nested = _groups_first(
        graph, workload, travel, fte, split_workers(fte, n_groups, fixed_groups),
        tolerance=tolerance, group_tolerance=group_tolerance, objective=objective, base_travel=base_travel,
        cost_weight=cost_weight, labels=labels, wlabels=wlabels, glabels=glabels, backend=backend,
        time_limit_s=time_limit_s, seed=seed, say=say,
        tie_break_slack=tie_break_slack, tie_break_weight=tie_break_weight,
    )
    nested.log = [*sol.log, line, *nested.log]
    nested.time_s = time.monotonic() - start
    return nested


def _groups_first(graph, workload, travel, fte, worker_group, *, tolerance, group_tolerance, objective,
                  base_travel, cost_weight, labels, wlabels, glabels, backend, time_limit_s, seed,
                  say, tie_break_slack=None, tie_break_weight=None) -> NestedSolution:
    """Groups by a ``len(groups)``-centre p-median (30 % of the time), then
    each group's sectors (the rest, in proportion to each group's size)."""
    start = time.monotonic()
    n_groups = int(worker_group.max()) + 1
    sector_targets = workload.sum() * fte / fte.sum()
    group_targets = np.bincount(worker_group, weights=sector_targets, minlength=n_groups)
    gproblem = Problem(graph, workload, group_targets, group_tolerance, travel, "pmedian",
                       cost_weight=cost_weight, labels=labels, sector_labels=glabels)
    gsol = solve(gproblem, backend=backend, time_limit_s=0.3 * time_limit_s, seed=seed,
                 progress=lambda line: say(f"groups: {line}"))
    group = gsol.assignment
    sector = np.full(graph.number_of_nodes(), -1, dtype=np.intp)
    centre = np.full(len(fte), -1, dtype=np.intp)
    solutions = [gsol]
    total = 0.0
    remaining_units = graph.number_of_nodes()
    for g in range(n_groups):
        units = np.flatnonzero(group == g)
        workers = np.flatnonzero(worker_group == g)
        left = max(time_limit_s - (time.monotonic() - start), 1.0)
        budget = left * len(units) / max(remaining_units, 1)
        remaining_units -= len(units)
        sub = nx.convert_node_labels_to_integers(graph.subgraph(units.tolist()), ordering="sorted")
        say(f"{glabels[g]}: {len(units):,} units into {len(workers)} sectors ({budget:.0f} s)")
        problem = Problem(
            sub, workload[units], sector_targets[workers], tolerance, SubsetTravelTimes(travel, units), objective,
            base_travel=None if base_travel is None else np.asarray(base_travel)[workers][:, units],
            cost_weight=None if cost_weight is None else np.asarray(cost_weight)[units],
            labels=None if labels is None else tuple(labels[i] for i in units),
            sector_labels=tuple(wlabels[w] for w in workers),
        )
        try:
            sol = solve(problem, backend=backend, time_limit_s=budget, seed=seed,
                        progress=lambda line, g=g: say(f"{glabels[g]}: {line}"),
                        tie_break_slack=tie_break_slack, tie_break_weight=tie_break_weight)
        except NoPlanError as err:
            raise type(err)(f"{glabels[g]}: {err}") from err
        sector[units] = workers[sol.assignment]
        centre[workers] = units[sol.centres]
        total += sol.objective
        solutions.append(sol)
    log = [line for s in solutions for line in s.log]
    return NestedSolution(group, sector, worker_group, centre, total, solutions, "groups first",
                          time.monotonic() - start, log)
