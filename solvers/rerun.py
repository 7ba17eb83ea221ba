"""Re-sectorize from a previous plan: restore balance and contiguity while moving
as few units as possible.

Used by the annual re-run: demand and team change, and each unit that changes
sector changes the referent of the patients who live there. The nested plan
is solved groups first, each level started from the previous plan
(:func:`solvers.construct.heuristic.repair_start`) and charged a disruption cost per
unit of move weight (e.g. per patient in active follow-up) that leaves its
previous group or sector (:attr:`solvers.problem.Problem.move_cost`):

1. **groups**: the previous groups, repaired and rebalanced to the group
   tolerance; the objective is the disruption alone (plus a negligible
   travel tie-breaker), so units change group only to restore balance or
   contiguity;
2. **sectors**, group by group: the previous sectors of the group's workers,
   repaired (units new to the group join an adjacent sector, a new worker's
   sector is seeded and grown), rebalanced, then improved on travel +
   disruption cost. A unit that changed group counts as moved once.

A cap on the moved weight (``max_moved``) is shared: the groups use what they
must, and the rest is split between groups in proportion to the moves of the
start plan in each group (to their move weight when the start is the previous
plan); what a group leaves unused passes on to the next.
"""

from __future__ import annotations

import time

import networkx as nx
import numpy as np

from solvers.engine import Backend, solve
from solvers.nested import NestedSolution
from solvers.problem import NoPlanError, Objective, ProgressCallback, Problem, TravelTimes
from solvers.travel import SubsetTravelTimes

#: Weight of travel in the group-level objective of a re-run (disruption dominates).
GROUP_TRAVEL_WEIGHT = 1e-6


def resolve_nested(
    graph: nx.Graph,
    workload: np.ndarray,
    travel: TravelTimes,
    fte: np.ndarray,
    worker_group: np.ndarray,
    previous_sector: np.ndarray,
    *,
    tolerance: float,
    group_tolerance: float,
    move_weight: np.ndarray | None = None,
    move_cost: float = 0.0,
    max_moved: float | None = None,
    move_unit_cost: float = 0.0,
    locked: dict[int, int] | None = None,
    start_sector: np.ndarray | None = None,
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
    """One contiguous sector per worker in fixed groups, starting from a previous plan.

    Parameters
    ----------
    graph, workload, travel, cost_weight, labels, objective, base_travel
        As in :func:`solvers.nested.solve_nested` (units ``0..n-1``).
    fte
        ``(W,)`` FTE of each worker of the new team.
    worker_group
        ``(W,)`` group index of each worker (``0..G-1``, every group used).
    previous_sector
        ``(n,)`` worker index (``0..W-1``) of each unit in the previous plan,
        ``-1`` for a unit with no previous worker in the new team (a
        departed worker without successor, a unit new to the geography).
    move_weight
        ``(n,)`` disruption of moving each unit, e.g. patients in active
        follow-up (defaults to ``workload``).
    move_cost
        Objective cost per unit of move weight moved, in the objective's units
        (workload x minutes): moving a commune with 3 patients in follow-up
        costs ``3 x move_cost``.
    max_moved
        Cap on the summed move weight of moved units, or ``None``.
    move_unit_cost
        Objective cost of each unit moved whatever its weight (see
        :attr:`solvers.problem.Problem.move_unit_cost`).
    locked
        ``{unit: worker}`` assignments to keep (the worker's group is kept too).
    start_sector
        ``(n,)`` worker index of each unit to start the search from, when it
        should not be the previous plan (e.g. a plan already found with a
        looser cap); moves are still counted from ``previous_sector``.
    backend, time_limit_s, seed, progress
        As in :func:`solvers.engine.solve`; 20 % of the time goes to the
        groups, the rest to the sectors in proportion to each group's size.
    tie_break_slack, tie_break_weight
        As in :func:`solvers.engine.solve`, for each group's sectors (the
        tie-break keeps the locks and the cap on moves).

    Returns
    -------
    NestedSolution
        With ``strategy = "re-run from previous plan"``; ``objective`` includes
        the disruption cost of the sector level.

    Raises
    ------
    InfeasibleError, NoPlanFoundError
        When no plan meets the tolerances (and the cap), proven or not found
        in the time given: the message names the level (groups or a group's
        sectors) and why.

    Examples
    --------
    >>> from solvers.problem import DenseTravelTimes
    >>> g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(4, 4), ordering="sorted")
    >>> xy = np.array(sorted(nx.grid_2d_graph(4, 4).nodes), dtype=float)
    >>> t = DenseTravelTimes(np.abs(xy[:, None] - xy[None]).sum(-1) * 10)
    >>> before = np.array([0, 0, 1, 1] * 4)  # two vertical halves: workers 0 and 1
    >>> sol = resolve_nested(g, np.ones(16), t, np.ones(2), np.array([0, 1]), before,
    ...                      tolerance=0.1, group_tolerance=0.1, move_cost=100, time_limit_s=2)
    >>> bool((sol.sector == before).all())
    True
    """
    # stays whole: step 1 (groups) sets the cap and move shares that step 2's loop over the groups consumes in order
    start = time.monotonic()
    say = progress or (lambda line: None)
    workload = np.asarray(workload, dtype=float)
    fte = np.asarray(fte, dtype=float)
    worker_group = np.asarray(worker_group, dtype=np.intp)
    previous_sector = np.asarray(previous_sector, dtype=np.intp)
    n, n_workers = graph.number_of_nodes(), len(fte)
    if worker_group.shape != (n_workers,):
        raise ValueError(f"worker_group must have one group per worker ({n_workers}), got {worker_group.shape}")
    n_groups = int(worker_group.max()) + 1
    if (np.bincount(worker_group, minlength=n_groups) == 0).any():
        raise ValueError("every group needs at least one worker")
    if previous_sector.shape != (n,) or (previous_sector < -1).any() or (previous_sector >= n_workers).any():
        raise ValueError(f"previous_sector must be an (n,) array of worker indices in -1..{n_workers - 1}")
    mw = np.asarray(workload if move_weight is None else move_weight, dtype=float)
    locked = dict(locked or {})
    glabels = group_labels or tuple(f"group {g}" for g in range(n_groups))
    wlabels = worker_labels or tuple(f"worker {w}" for w in range(n_workers))
    sector_targets = workload.sum() * fte / fte.sum()
    group_targets = np.bincount(worker_group, weights=sector_targets, minlength=n_groups)
    previous_group = np.where(previous_sector >= 0, worker_group[np.maximum(previous_sector, 0)], -1)
    first = previous_sector if start_sector is None else np.asarray(start_sector, dtype=np.intp)
    if first.shape != (n,):
        raise ValueError("start_sector must be an (n,) array of worker indices")
    start_group = np.where(first >= 0, worker_group[np.maximum(first, 0)], -1)
    weights = workload if cost_weight is None else np.asarray(cost_weight, dtype=float)

    # 1. groups: restore balance and contiguity with the fewest moves
    gproblem = Problem(
        graph, workload, group_targets, group_tolerance, travel, "pmedian",
        locked={u: int(worker_group[w]) for u, w in locked.items()},
        cost_weight=GROUP_TRAVEL_WEIGHT * weights, labels=labels, sector_labels=glabels,
        previous=previous_group, move_weight=mw, move_cost=max(move_cost, 1.0), max_moved=max_moved,
        move_unit_cost=max(move_unit_cost, 1e-3),
    )
    say(f"groups: {n:,} units into {n_groups} groups from the previous plan")
    try:
        gsol = solve(gproblem, backend="heuristic", time_limit_s=max(0.2 * time_limit_s, 0.5), seed=seed,
                     start=start_group, progress=lambda line: say(f"groups: {line}"))
    except NoPlanError as err:
        raise type(err)(f"groups: {err}") from err
    group = gsol.assignment
    group_moved = gproblem.moved(group)
    line = f"groups: {int(((previous_group >= 0) & (group != previous_group)).sum())} unit(s) changed group, move weight {group_moved:,.1f}"
    say(line)
    log = [*gsol.log, line]

    # 2. sectors, group by group, each from its previous sectors
    sector = np.full(n, -1, dtype=np.intp)
    centre = np.full(n_workers, -1, dtype=np.intp)
    solutions = [gsol]
    total = 0.0
    left_cap = None if max_moved is None else max(max_moved - group_moved, 0.0)
    stays = (previous_group >= 0) & (group == previous_group)
    # the cap left after the groups is shared in proportion to the moves of the start plan
    # inside each group (or to each group's move weight when the start moves nothing);
    # what a group leaves unused passes on to the next
    start_moves = stays & (first != previous_sector)
    share = np.array([mw[start_moves & (group == g)].sum() for g in range(n_groups)])
    if share.sum() <= 0:
        share = np.array([mw[stays & (group == g)].sum() for g in range(n_groups)])
    used = 0.0
    remaining_units = n
    for g in range(n_groups):
        units = np.flatnonzero(group == g)
        workers = np.flatnonzero(worker_group == g)
        local = {int(w): i for i, w in enumerate(workers)}
        prev_local = np.array([local.get(int(previous_sector[u]), -1) if stays[u] else -1 for u in units], dtype=np.intp)
        start_local = np.array([local.get(int(first[u]), -1) for u in units], dtype=np.intp)
        cap = None
        if left_cap is not None:
            rest = share[g:].sum()
            cap = (left_cap - used) * (share[g] / rest if rest > 0 else 1.0 / (n_groups - g))
        budget = max((time_limit_s - (time.monotonic() - start)) * len(units) / max(remaining_units, 1), 0.5)
        remaining_units -= len(units)
        sub = nx.convert_node_labels_to_integers(graph.subgraph(units.tolist()), ordering="sorted")
        position = {int(u): i for i, u in enumerate(units)}
        problem = Problem(
            sub, workload[units], sector_targets[workers], tolerance, SubsetTravelTimes(travel, units), objective,
            base_travel=None if base_travel is None else np.asarray(base_travel)[workers][:, units],
            cost_weight=None if cost_weight is None else np.asarray(cost_weight)[units],
            labels=None if labels is None else tuple(labels[i] for i in units),
            sector_labels=tuple(wlabels[w] for w in workers),
            locked={position[u]: local[w] for u, w in locked.items() if u in position and w in local},
            previous=prev_local, move_weight=mw[units], move_cost=move_cost, max_moved=cap,
            move_unit_cost=move_unit_cost,
        )
        say(f"{glabels[g]}: {len(units):,} units into {len(workers)} sectors from the previous plan ({budget:.0f} s)")
        try:
            sol = solve(problem, backend=backend, time_limit_s=budget, seed=seed, start=start_local,
                        progress=lambda line, g=g: say(f"{glabels[g]}: {line}"),
                        tie_break_slack=tie_break_slack, tie_break_weight=tie_break_weight)
        except NoPlanError as err:
            raise type(err)(f"{glabels[g]}: {err}") from err
        sector[units] = workers[sol.assignment]
        centre[workers] = units[sol.centres]
        used += problem.moved(sol.assignment)
        total += sol.objective
        solutions.append(sol)
        log.extend(sol.log)
    return NestedSolution(group, sector, worker_group, centre, total, solutions, "re-run from previous plan",
                          time.monotonic() - start, log)
