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

With ``deterministic=True`` the groups and each group's sectors share one work clock
(:mod:`solvers.budget`), so a re-run is a function of its inputs and seed; each step of
:func:`resolve_or_widen` is a solve of its own, on its own clock, and which step finds
the plan depends on what the steps find, never on the time they took.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import networkx as nx
import numpy as np

from solvers import budget
from solvers.engine import Backend, solve
from solvers.nested import NestedSolution, contract, solve_nested, stamp_nested, together_sets
from solvers.problem import InfeasibleError, NoPlanError, NoPlanFoundError, Objective, ProgressCallback, Problem, TravelTimes
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
    size: np.ndarray | None = None,
    max_size: np.ndarray | None = None,
    size_unit: str = "size units",
    keep_together: list | None = None,
    keep_start_groups: bool = False,
    deterministic: bool = False,
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
    keep_start_groups
        Skip the group step: the groups are those of ``start_sector`` as they
        are (every unit must have a start worker); used from a plan whose
        groups are known to work (see :func:`resolve_or_widen`).
    deterministic
        Count ``time_limit_s`` in work seconds (:mod:`solvers.budget`), as in
        :func:`solvers.nested.solve_nested`.
    size, max_size, size_unit
        Territory caps, as in :func:`solvers.nested.solve_nested` (``max_size``
        per worker): each group's sectors keep them.
    keep_together
        Sets of units that must share a group, as in
        :func:`solvers.nested.solve_nested`: the group step merges each set
        into one node (:func:`solvers.nested.contract`), whose previous group
        is that of its heaviest unit; the group step also caps each group's
        territory at the sum of its workers' ``max_size``.

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
    with budget.session(time_limit_s, deterministic=deterministic) as clock:
        nested = _resolve_nested(
            graph, workload, travel, fte, worker_group, previous_sector, tolerance=tolerance,
            group_tolerance=group_tolerance, move_weight=move_weight, move_cost=move_cost, max_moved=max_moved,
            move_unit_cost=move_unit_cost, locked=locked, start_sector=start_sector, objective=objective,
            base_travel=base_travel, cost_weight=cost_weight, labels=labels, worker_labels=worker_labels,
            group_labels=group_labels, backend=backend, time_limit_s=time_limit_s, seed=seed, progress=progress,
            tie_break_slack=tie_break_slack, tie_break_weight=tie_break_weight, size=size, max_size=max_size,
            size_unit=size_unit, keep_together=keep_together, keep_start_groups=keep_start_groups)
    return stamp_nested(nested, clock, progress)


def _resolve_nested(graph, workload, travel, fte, worker_group, previous_sector, *, tolerance, group_tolerance,
                    move_weight, move_cost, max_moved, move_unit_cost, locked, start_sector, objective, base_travel,
                    cost_weight, labels, worker_labels, group_labels, backend, time_limit_s, seed, progress,
                    tie_break_slack, tie_break_weight, size, max_size, size_unit, keep_together,
                    keep_start_groups) -> NestedSolution:
    """:func:`resolve_nested` on the active clock."""
    # stays whole: step 1 (groups) sets the cap and move shares that step 2's loop over the groups consumes in order
    start = time.monotonic()  # wall seconds, for NestedSolution.time_s
    clock = budget.current()
    began = clock.now()
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

    if keep_start_groups:
        if (first < 0).any():
            raise ValueError("keep_start_groups needs a start worker for every unit")
        wrong = [u for u, w in locked.items() if start_group[u] != worker_group[w]]
        if wrong:
            raise ValueError(f"keep_start_groups: {len(wrong)} locked unit(s) are in another group in the start plan")
        group = start_group.copy()
        group_moved = float(mw[(previous_group >= 0) & (group != previous_group)].sum())
        line = (f"groups: kept from the start plan, {int(((previous_group >= 0) & (group != previous_group)).sum())} "
                f"unit(s) changed group, move weight {group_moved:,.1f}")
        say(line)
        gsol = None
        log = [line]
    else:
        # 1. groups: restore balance and contiguity with the fewest moves; units kept together
        #    are merged into one node, and each group's territory is capped at its workers' caps
        together = together_sets(graph, keep_together) if n_groups > 1 else []
        merged = contract(graph, together, workload) if together else None
        node_of = np.arange(n) if merged is None else merged.of
        first_unit = np.arange(n) if merged is None else merged.representative
        node_locked: dict[int, int] = {}
        for u, w in locked.items():
            g = int(worker_group[w])
            if node_locked.setdefault(int(node_of[u]), g) != g:
                raise ValueError(f"locked units of one keep_together set are in different groups (unit {u})")
        caps = {}
        if size is not None and max_size is not None:
            gsize = np.asarray(size, dtype=float)
            caps = dict(size=gsize if merged is None else merged.total(gsize), size_unit=size_unit,
                        max_size=np.bincount(worker_group, weights=np.asarray(max_size, dtype=float),
                                             minlength=n_groups))
        node_sum = (lambda a: a) if merged is None else merged.total
        gproblem = Problem(
            graph if merged is None else merged.graph, node_sum(workload), group_targets, group_tolerance,
            travel if merged is None else merged.travel(travel), "pmedian",
            locked=node_locked, cost_weight=GROUP_TRAVEL_WEIGHT * node_sum(weights),
            labels=labels if merged is None else merged.labels(labels), sector_labels=glabels,
            previous=previous_group[first_unit], move_weight=node_sum(mw), move_cost=max(move_cost, 1.0),
            max_moved=max_moved, move_unit_cost=max(move_unit_cost, 1e-3), **caps,
        )
        say(f"groups: {n:,} units into {n_groups} groups from the previous plan"
            + (f" ({len(together)} set(s) of units kept in one group)" if together else ""))
        try:
            gsol = solve(gproblem, backend="heuristic", time_limit_s=max(0.2 * time_limit_s, 0.5), seed=seed,
                         start=start_group[first_unit], progress=lambda line: say(f"groups: {line}"))
        except NoPlanError as err:
            raise type(err)(f"groups: {err}") from err
        group = gsol.assignment if merged is None else merged.expand(gsol.assignment)
        group_moved = float(mw[(previous_group >= 0) & (group != previous_group)].sum())
        line = f"groups: {int(((previous_group >= 0) & (group != previous_group)).sum())} unit(s) changed group, move weight {group_moved:,.1f}"
        say(line)
        log = [*gsol.log, line]

    # 2. sectors, group by group, each from its previous sectors
    sector = np.full(n, -1, dtype=np.intp)
    centre = np.full(n_workers, -1, dtype=np.intp)
    solutions = [] if gsol is None else [gsol]
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
        seconds = max((time_limit_s - (clock.now() - began)) * len(units) / max(remaining_units, 1), 0.5)
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
            size=None if size is None else np.asarray(size, dtype=float)[units],
            max_size=None if size is None else np.asarray(max_size, dtype=float)[workers], size_unit=size_unit,
        )
        say(f"{glabels[g]}: {len(units):,} units into {len(workers)} sectors from the previous plan ({seconds:.0f} s)")
        try:
            sol = solve(problem, backend=backend, time_limit_s=seconds, seed=seed, start=start_local,
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
    for i, units in enumerate(together_sets(graph, keep_together)):
        if len(set(group[units].tolist())) > 1:
            line = f"groups: keep_together[{i}] ({len(units)} units) is split between groups by the group step"
            log.append(line)
            say(line)
    return NestedSolution(group, sector, worker_group, centre, total, solutions, "re-run from previous plan",
                          time.monotonic() - start, log)


# --------------------------------------------------------------------------
# A re-run that finds a plan whenever a from-scratch plan exists
# --------------------------------------------------------------------------

#: The steps of :func:`resolve_or_widen`, in the order they are tried.
WIDENING_STEPS = (
    "as asked",
    "more time",
    "cap relaxed",
    "group split revisited",
    "fresh groups kept",
    "fresh plan matched",
)


#: Time of the "more time" and "cap relaxed" steps, as a multiple of the time limit.
MORE_TIME = 2.0


@dataclass(frozen=True)
class Attempt:
    """One step of :func:`resolve_or_widen`.

    ``step`` is one of :data:`WIDENING_STEPS`; ``moved`` the move weight its
    plan moves (e.g. patients in follow-up), ``None`` when it found no plan;
    ``time_s`` its wall-clock seconds; ``note`` why it found no plan, or what
    it changed; ``proven`` whether "no plan" was proven (not only none found
    in the time given).
    """

    step: str
    found: bool
    moved: float | None
    time_s: float
    note: str = ""
    proven: bool = False  # no plan, with a proof (InfeasibleError), not only none found in the time


@dataclass
class WidenedSolution:
    """Result of :func:`resolve_or_widen`: the plan returned and every step tried.

    ``step`` is the step whose plan is returned; ``cap`` the cap on the move
    weight that was asked for (``None``: no cap); ``moved`` the move weight the
    plan moves; ``over_cap`` how much more than the cap it moves (0 when
    within it).
    """

    solution: NestedSolution
    attempts: list[Attempt]
    step: str
    cap: float | None
    moved: float

    @property
    def widened(self) -> bool:
        """Whether the plan needed more than what was asked (a relaxed cap or a new group split)."""
        return self.step != "as asked"

    @property
    def over_cap(self) -> float:
        return 0.0 if self.cap is None else max(self.moved - self.cap, 0.0)


def match_workers(sector: np.ndarray, previous: np.ndarray, move_weight: np.ndarray, fte: np.ndarray,
                  worker_group: np.ndarray | None = None, keep: set[int] | frozenset[int] = frozenset(),
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Relabel a fresh plan's sectors to workers so that the most move weight stays put.

    A sector drawn for worker ``i`` can go to worker ``j`` only when both have
    the same FTE (its caseload target) and, when ``worker_group`` is given,
    the same group. The assignment maximising the move weight kept with its
    previous worker is :func:`scipy.optimize.linear_sum_assignment`.

    Parameters
    ----------
    sector
        ``(n,)`` worker index of each unit in the fresh plan.
    previous
        ``(n,)`` worker index of each unit in the previous plan (``-1``: none).
    move_weight
        ``(n,)`` disruption of moving each unit (e.g. patients in follow-up).
    fte, worker_group
        ``(W,)`` FTE and (optional) group index of each worker.
    keep
        Workers whose sector keeps its worker (e.g. those with locked units).

    Returns
    -------
    relabel, inverse
        ``relabel[fresh sector] = worker`` and ``inverse[worker] = fresh sector``.

    Examples
    --------
    >>> relabel, _ = match_workers(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]), np.ones(4), np.ones(2))
    >>> relabel.tolist()
    [1, 0]
    """
    from scipy.optimize import linear_sum_assignment

    fte = np.asarray(fte, dtype=float)
    k = len(fte)
    overlap = np.zeros((k, k))
    has = previous >= 0
    np.add.at(overlap, (sector[has], previous[has]), np.asarray(move_weight, dtype=float)[has] + 1e-6)
    allowed = np.isclose(fte[:, None], fte[None, :])  # a sector is sized for its worker's FTE
    if worker_group is not None:
        allowed &= worker_group[:, None] == worker_group[None, :]
    for w in keep:
        allowed[w, :] = False
        allowed[:, w] = False
        allowed[w, w] = True
    overlap[~allowed] = -1e12
    rows, cols = linear_sum_assignment(-overlap)
    relabel = np.empty(k, dtype=np.intp)
    relabel[rows] = cols
    inverse = np.empty(k, dtype=np.intp)
    inverse[cols] = rows
    return relabel, inverse


def resolve_or_widen(
    graph: nx.Graph,
    workload: np.ndarray,
    travel: TravelTimes,
    fte: np.ndarray,
    worker_group: np.ndarray,
    previous_sector: np.ndarray,
    *,
    move_weight: np.ndarray | None = None,
    move_cost: float = 0.0,
    max_moved: float | None = None,
    move_unit_cost: float = 0.0,
    locked: dict[int, int] | None = None,
    fixed_groups: list[int | None] | None = None,
    time_limit_s: float = 30.0,
    progress: ProgressCallback | None = None,
    **options,
) -> WidenedSolution:
    """:func:`resolve_nested`, widening the search until a plan is found.

    The annual re-run must not fail where a plan exists: when the moves the
    cap or the move price allow cannot restore balance from the previous
    plan, the search widens, in this order (:data:`WIDENING_STEPS`), and stops
    at the first step that finds a plan:

    1. **as asked**: :func:`resolve_nested` from the previous plan, with the cap;
    2. **more time** (without a cap, when step 1 proved nothing): the same
       again with :data:`MORE_TIME` times the time limit and the next seed.
       Repairing last year's plan is a local search from an unbalanced start;
       when it fails, it has usually run out of time (each group's sectors get
       a share of the limit), and a plan found this way keeps last year's
       groups and moves few patients;
    3. **cap relaxed** (only with a cap): the same without the cap, the move
       price kept, with :data:`MORE_TIME` times the time limit. It keeps the
       previous group split, so it moves fewer patients than the later steps;
       trying a new group split under the cap first would start from a plan
       that moves a large share of the patients;
    4. **group split revisited**: a plan drawn from scratch at the same
       tolerances (:func:`solvers.nested.solve_nested`, each worker in their
       group; if there is none, workers not in ``fixed_groups`` may change
       group, the returned ``worker_group`` says so), its sectors matched to the workers so as to move the fewest
       patients (:func:`match_workers`), then :func:`resolve_nested` from it:
       the group step pulls units back to their previous group where the
       group balance allows, and each group's sectors back to their previous
       worker, with the same continuity objective (travel + move price);
    5. **fresh groups kept**: the same, keeping the fresh plan's groups as
       they are, so each group's sector search starts from a plan known to
       be balanced and contiguous;
    6. **fresh plan matched**: the matched fresh plan itself.

    Steps 4-6 are tried only when the from-scratch plan exists, so the
    re-run fails only when no plan was found from scratch either. Steps 2
    and 3 have twice the time limit, the others the time limit (the fresh
    plan too), so a widened re-run takes up to about six times the time
    limit. The plan returned is the
    first found, or the matched fresh plan when it moves less.

    Parameters
    ----------
    graph, workload, travel, fte, worker_group, previous_sector, move_weight,
    move_cost, max_moved, move_unit_cost, locked, time_limit_s, progress
        As in :func:`resolve_nested`.
    fixed_groups
        ``(W,)`` group a worker must stay in whatever happens (e.g. set in the
        scenario), ``None`` when free; the other workers keep their group in
        ``worker_group`` unless no plan from scratch exists that way.
    **options
        Passed to both :func:`resolve_nested` and
        :func:`solvers.nested.solve_nested` (tolerances, objective, labels,
        backend, seed, territory caps, ...).

    Returns
    -------
    WidenedSolution
        The plan, the step that found it, and every step tried.

    Raises
    ------
    InfeasibleError, NoPlanFoundError
        When no step found a plan; the message lists what each step said.

    Examples
    --------
    >>> from solvers.problem import DenseTravelTimes
    >>> g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(4, 4), ordering="sorted")
    >>> xy = np.array(sorted(nx.grid_2d_graph(4, 4).nodes), dtype=float)
    >>> t = DenseTravelTimes(np.abs(xy[:, None] - xy[None]).sum(-1) * 10)
    >>> before = np.array([0, 0, 1, 1] * 4)
    >>> load = np.ones(16); load[[0, 4, 8]] = 3  # the demand grew in worker 0's half
    >>> out = resolve_or_widen(g, load, t, np.ones(2), np.array([0, 1]), before, tolerance=0.1,
    ...                        group_tolerance=0.1, move_cost=100, max_moved=0, time_limit_s=2)
    >>> out.step, out.moved > 0
    ('cap relaxed', True)
    """
    say = progress or (lambda line: None)
    workload = np.asarray(workload, dtype=float)
    worker_group = np.asarray(worker_group, dtype=np.intp)
    previous_sector = np.asarray(previous_sector, dtype=np.intp)
    mw = np.asarray(workload if move_weight is None else move_weight, dtype=float)
    locked = dict(locked or {})
    attempts: list[Attempt] = []
    common = dict(move_weight=mw, move_cost=move_cost, move_unit_cost=move_unit_cost, locked=locked,
                  time_limit_s=time_limit_s, **options)

    def moved(sector: np.ndarray) -> float:
        return float(mw[(previous_sector >= 0) & (sector != previous_sector)].sum())

    def attempt(step: str, groups: np.ndarray = worker_group, **kwargs) -> NestedSolution | None:
        began = time.monotonic()
        say(f"re-run, step '{step}'")
        try:
            sol = resolve_nested(graph, workload, travel, fte, groups, previous_sector,
                                 progress=lambda line: say(f"{step}: {line}"), **{**common, **kwargs})
        except (NoPlanError, ValueError) as err:
            attempts.append(Attempt(step, False, None, time.monotonic() - began, str(err),
                                    proven=isinstance(err, InfeasibleError)))
            say(f"re-run, step '{step}': no plan ({err})")
            return None
        attempts.append(Attempt(step, True, moved(sol.sector), time.monotonic() - began))
        return sol

    def done(sol: NestedSolution, step: str) -> WidenedSolution:
        sol.log.extend(f"re-run step '{a.step}': " + (f"plan, move weight {a.moved:,.1f}" if a.found else
                                                       f"no plan ({a.note})") for a in attempts)
        if any(not a.found and "wall-time safety cap" in a.note for a in attempts):
            sol.capped = True  # an earlier step stopped on the cap: which step found the plan may differ
            sol.log.append("an earlier step was stopped by the wall-time safety cap: not reproducible")
        if step != "as asked":
            sol.strategy = f"re-run from previous plan, widened: {step}"
        return WidenedSolution(sol, attempts, step, max_moved, moved(sol.sector))

    sol = attempt("as asked", max_moved=max_moved)
    if sol is not None:
        return done(sol, "as asked")
    if max_moved is None and not attempts[-1].proven:
        sol = attempt("more time", time_limit_s=MORE_TIME * time_limit_s, seed=int(options.get("seed", 0)) + 1)
        if sol is not None:
            return done(sol, "more time")
    if max_moved is not None:
        sol = attempt("cap relaxed", max_moved=None, time_limit_s=MORE_TIME * time_limit_s)
        if sol is not None:
            return done(sol, "cap relaxed")

    # a plan from scratch, each worker in their group (else in any group the scenario allows),
    # its groups and sectors matched to the previous ones
    began = time.monotonic()
    fresh_options = {k: v for k, v in options.items() if k not in ("start_sector", "keep_start_groups")}
    n_groups = int(worker_group.max()) + 1
    free = list(fixed_groups) if fixed_groups is not None else [None] * len(worker_group)
    fresh, errors = None, []
    for kept, fixed in ((True, [int(g) for g in worker_group]), (False, free)):
        say("re-run: drawing a plan from scratch to widen the search"
            + ("" if kept else ", workers free to change group"))
        try:
            fresh = solve_nested(graph, workload, travel, fte, n_groups, fixed_groups=fixed, locked=locked,
                                 time_limit_s=time_limit_s, progress=lambda line: say(f"from scratch: {line}"),
                                 **fresh_options)
            break
        except NoPlanError as err:
            errors.append(err)
    if fresh is None:
        attempts.append(Attempt("fresh plan matched", False, None, time.monotonic() - began, str(errors[-1])))
        reasons = "; ".join(f"{a.step}: {a.note}" for a in attempts)
        raise type(errors[-1])(f"no plan from the previous plan nor from scratch ({reasons})") from errors[-1]
    groups = worker_group
    if not kept:  # name the fresh groups after the previous groups they overlap most
        fresh_group = fresh.worker_group
        if all(f is None for f in free):
            previous_group = np.where(previous_sector >= 0, worker_group[np.maximum(previous_sector, 0)], -1)
            relabel_group, _ = match_workers(fresh.group, previous_group, mw, np.ones(n_groups))
            fresh_group = relabel_group[fresh_group]
        relabel, inverse = match_workers(fresh.sector, previous_sector, mw, fte, keep=set(locked.values()))
        groups = fresh_group[inverse]
    else:
        relabel, inverse = match_workers(fresh.sector, previous_sector, mw, fte, worker_group,
                                         keep=set(locked.values()))
    matched = relabel[fresh.sector]
    fresh_time = time.monotonic() - began
    candidate = None
    for step, keep in (("group split revisited", False), ("fresh groups kept", True)):
        candidate = attempt(step, groups, max_moved=None, start_sector=matched, keep_start_groups=keep)
        if candidate is not None:
            break
    lock_ok = all(matched[u] == w for u, w in locked.items())
    if lock_ok:
        attempts.append(Attempt("fresh plan matched", True, moved(matched), fresh_time,
                                "" if candidate is None else "compared with the step above"))
    else:
        attempts.append(Attempt("fresh plan matched", False, None, fresh_time, "it does not keep the locked units"))
    if candidate is not None and (not lock_ok or moved(candidate.sector) <= moved(matched)):
        return done(candidate, attempts[-2].step)
    if not lock_ok:
        reasons = "; ".join(f"{a.step}: {a.note}" for a in attempts)
        raise NoPlanFoundError(f"no plan keeps the locked units ({reasons})")
    plan = NestedSolution(groups[matched], matched, groups, fresh.centre[inverse], fresh.objective,
                          fresh.solutions, "re-run from previous plan, widened: fresh plan matched",
                          fresh.time_s, list(fresh.log), fresh.deterministic, fresh.capped, fresh.work_s)
    return done(plan, "fresh plan matched")
