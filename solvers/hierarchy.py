"""Two-level sectorization: territorial groups first, then one sector per
worker inside each group.

Level 1 splits the whole graph into ``g`` contiguous groups whose caseload
targets are the summed targets of their workers; level 2 splits each group's
induced subgraph into one contiguous sector per worker of that group. Every
sector's target is the *global* FTE share (``total workload x fte / total
FTE``), so caseloads stay proportional to FTE across groups; the group
tolerance must be tighter than the sector tolerance for level 2 to have room.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from solvers.engine import Backend, solve
from solvers.problem import InfeasibleError, Objective, ProgressCallback, Problem, Solution, TravelTimes


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


class SubsetTravelTimes:
    """Travel times restricted to ``units`` (renumbered ``0..len(units)-1``)."""

    def __init__(self, travel: TravelTimes, units: np.ndarray):
        self.travel = travel
        self.units = np.asarray(units, dtype=np.intp)
        self.n = len(self.units)

    def rows(self, sources: np.ndarray) -> np.ndarray:
        return self.travel.rows(self.units[np.asarray(sources, dtype=np.intp)])[:, self.units]


@dataclass
class NestedSolution:
    """Result of :func:`solve_nested`.

    ``group[i]`` and ``sector[i]`` are the group and the worker index of unit
    ``i``; ``centre[w]`` the centre unit of worker ``w``'s sector (global
    index); ``objective`` the summed sector objectives (workload x minutes).
    """

    group: np.ndarray
    sector: np.ndarray
    centre: np.ndarray
    objective: float
    group_solution: Solution
    sector_solutions: list[Solution] = field(default_factory=list)
    time_s: float = 0.0


def solve_nested(
    graph: nx.Graph,
    workload: np.ndarray,
    travel: TravelTimes,
    fte: np.ndarray,
    worker_group: np.ndarray,
    *,
    tolerance: float,
    group_tolerance: float,
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
) -> NestedSolution:
    """Groups, then sectors inside each group.

    Parameters
    ----------
    graph, workload, travel, cost_weight, labels
        As in :class:`Problem` (units ``0..n-1``).
    fte
        ``(W,)`` FTE of each worker; sector targets are proportional to it.
    worker_group
        ``(W,)`` group index of each worker (see :func:`split_workers`).
    tolerance, group_tolerance
        Relative caseload tolerance of sectors and of groups.
    objective, base_travel
        Sector objective; ``base_travel`` is ``(W, n)`` minutes from each
        worker's base (needed for ``"base"``). Groups are always drawn with
        the ``"pmedian"`` objective.
    backend, time_limit_s, seed, progress
        As in :func:`solvers.engine.solve`; 30 % of the time goes to the
        groups, the rest to the sectors in proportion to each group's size.
    """
    start = time.monotonic()
    say = progress or (lambda line: None)
    workload = np.asarray(workload, dtype=float)
    fte = np.asarray(fte, dtype=float)
    worker_group = np.asarray(worker_group, dtype=np.intp)
    n_groups = int(worker_group.max()) + 1
    sector_targets = workload.sum() * fte / fte.sum()
    group_targets = np.bincount(worker_group, weights=sector_targets, minlength=n_groups)
    glabels = group_labels or tuple(f"group {g}" for g in range(n_groups))
    wlabels = worker_labels or tuple(f"worker {w}" for w in range(len(fte)))

    if n_groups == 1:
        group = np.zeros(graph.number_of_nodes(), dtype=np.intp)
        group_solution = Solution(group, np.array([0]), 0.0, "optimal", "trivial", 0.0, 0.0,
                                  ["one group: the whole region"])
    else:
        say(f"groups: splitting {graph.number_of_nodes():,} units into {n_groups} groups")
        gproblem = Problem(
            graph, workload, group_targets, group_tolerance, travel, "pmedian",
            cost_weight=cost_weight, labels=labels, sector_labels=glabels,
        )
        group_solution = solve(
            gproblem, backend=backend, time_limit_s=0.3 * time_limit_s, seed=seed,
            progress=lambda line: say(f"groups: {line}"),
        )
        group = group_solution.assignment

    sector = np.full(graph.number_of_nodes(), -1, dtype=np.intp)
    centre = np.full(len(fte), -1, dtype=np.intp)
    sector_solutions: list[Solution] = []
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
            sub,
            workload[units],
            sector_targets[workers],
            tolerance,
            SubsetTravelTimes(travel, units),
            objective,
            base_travel=None if base_travel is None else np.asarray(base_travel)[workers][:, units],
            cost_weight=None if cost_weight is None else np.asarray(cost_weight)[units],
            labels=None if labels is None else tuple(labels[i] for i in units),
            sector_labels=tuple(wlabels[w] for w in workers),
        )
        try:
            sol = solve(problem, backend=backend, time_limit_s=budget, seed=seed,
                        progress=lambda line, g=g: say(f"{glabels[g]}: {line}"))
        except InfeasibleError as err:
            raise InfeasibleError(f"{glabels[g]}: {err}") from err
        sector[units] = workers[sol.assignment]
        centre[workers] = units[sol.centres]
        total += sol.objective
        sector_solutions.append(sol)
    return NestedSolution(group, sector, centre, total, group_solution, sector_solutions,
                          time.monotonic() - start)
