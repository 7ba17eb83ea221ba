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

Two options shape the plan on the ground. ``keep_together`` lists sets of units
that must fall in one group (e.g. Lyon's 9 arrondissements, so that one group
holds the city and the cancer centre in it): the grouping keeps the sectors
holding a set's units in one group, and the groups-first fallback merges each
set into one node of its group-level graph (:func:`contract`). ``size`` and
``max_size`` cap each worker's territory (:attr:`solvers.problem.Problem.max_size`:
e.g. at most so many communes or km² per sector, in proportion to FTE); the
groups-first fallback also caps each group at the sum of its workers' caps (a
necessary condition).

With ``deterministic=True`` every stage counts its budget in work seconds on one
shared clock (:mod:`solvers.budget`): the sectors, the grouping and the fallback's
shares are all work seconds, so the plan is a function of the inputs and seed only.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from solvers import budget
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
    first"``; ``time_s`` wall seconds. ``deterministic``, ``capped`` and ``work_s``
    as in :class:`solvers.problem.Solution`: counted in work, stopped by the
    wall-time safety cap (not reproducible), work seconds used.
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
    deterministic: bool = False
    capped: bool = False
    work_s: float | None = None


def stamp_nested(nested: NestedSolution, clock: budget.Clock,
                 progress: ProgressCallback | None = None) -> NestedSolution:
    """``nested`` with the facts of its clock (:func:`solvers.engine.stamped`): counted in work,
    work seconds used, stopped by the wall-time safety cap. With a work clock a line says how
    many work seconds were counted, and the cap's note (when it bound) follows; both end the
    log and go to ``progress``."""
    nested.deterministic, nested.capped = clock.deterministic, clock.capped
    nested.work_s = clock.used() if clock.deterministic else None
    lines = []
    if clock.deterministic:
        lines.append(f"budget: {nested.work_s:.2f} work seconds counted (deterministic), "
                     f"{nested.time_s:.1f} wall seconds")
    lines.extend(note for note in clock.notes if note not in nested.log)
    nested.log = [*nested.log, *lines]
    for line in lines:
        if progress is not None:
            progress(line)
    return nested


def group_sectors(
    graph: nx.Graph,
    sector: np.ndarray,
    workload: np.ndarray,
    fte: np.ndarray,
    n_groups: int,
    group_tolerance: float,
    fixed: list[int | None] | None = None,
    together: list[np.ndarray] | None = None,
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
    together
        Sets of units (arrays of unit indices) that must fall in one group:
        every sector holding a unit of a set gets the same group.

    Returns
    -------
    numpy.ndarray or None
        ``(W,)`` group of each worker: among the splits whose groups are all
        non-empty, connected and within tolerance, and keep each set of
        ``together`` in one group, the one with the most
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
    # the sectors holding each set of units kept together (sets within one sector constrain nothing)
    joined = [np.unique(sector[np.asarray(units, dtype=np.intp)]) for units in (together or [])]
    joined = [sectors for sectors in joined if len(sectors) > 1]
    best_key, best = None, None
    for combo in itertools.product(range(n_groups), repeat=len(free)):
        groups = base.copy()
        groups[free] = combo
        if fixed.count(None) == w and groups[0] != 0:
            continue  # the first worker's group is called 0 (labels are interchangeable)
        if (np.bincount(groups, minlength=n_groups) == 0).any():
            continue
        if any((groups[sectors] != groups[sectors[0]]).any() for sectors in joined):
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


def together_sets(graph: nx.Graph, keep_together) -> list[np.ndarray]:
    """Validate ``keep_together`` (sets of unit indices that must share a group) and return
    each set as a sorted integer array.

    Raises
    ------
    ValueError
        When a set is empty, names a unit outside ``0..n-1``, shares a unit with
        another set, or is not connected in ``graph`` (its units could then not
        share a group without the units between them).

    Examples
    --------
    >>> [s.tolist() for s in together_sets(nx.path_graph(4), [[2, 1]])]
    [[1, 2]]
    """
    n = graph.number_of_nodes()
    out: list[np.ndarray] = []
    seen: dict[int, int] = {}
    for i, units in enumerate(keep_together or []):
        units = np.unique(np.asarray(list(units), dtype=np.intp))
        if units.size == 0:
            raise ValueError(f"keep_together[{i}] is empty")
        if units.min() < 0 or units.max() >= n:
            raise ValueError(f"keep_together[{i}] names units outside 0..{n - 1}")
        for u in units.tolist():
            if u in seen:
                raise ValueError(f"unit {u} is in keep_together[{seen[u]}] and keep_together[{i}]; merge the two sets")
            seen[u] = i
        if units.size > 1 and not nx.is_connected(graph.subgraph(units.tolist())):
            raise ValueError(f"keep_together[{i}]: its {units.size} units are not connected to each other; "
                             "a set kept in one group must be one piece (add the units between them)")
        out.append(units)
    return out


@dataclass(frozen=True)
class Contraction:
    """A graph with sets of units merged into one node each (:func:`contract`).

    Attributes
    ----------
    of
        ``(n,)`` node of each unit.
    members
        The units of each node (arrays, in node order).
    graph
        Contiguity graph over the nodes ``0..m-1``: two nodes touch when some of
        their units do.
    representative
        ``(m,)`` the unit standing for each node in travel times: the heaviest
        member (by the ``workload`` given to :func:`contract`).
    """

    of: np.ndarray
    members: list[np.ndarray]
    graph: nx.Graph
    representative: np.ndarray

    @property
    def m(self) -> int:
        """Number of nodes."""
        return len(self.members)

    def total(self, values: np.ndarray | None) -> np.ndarray | None:
        """``(m,)`` the sum of a per-unit array over each node's units (``None`` stays ``None``)."""
        if values is None:
            return None
        return np.bincount(self.of, weights=np.asarray(values, dtype=float), minlength=self.m)

    def travel(self, travel: TravelTimes) -> TravelTimes:
        """Travel minutes between nodes: those between their representatives."""
        return SubsetTravelTimes(travel, self.representative)

    def labels(self, labels: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """A label per node: the representative's, with how many units were merged into it."""
        if labels is None:
            return None
        return tuple(labels[r] if len(u) == 1 else f"{labels[r]} (with {len(u) - 1} unit(s) kept in its group)"
                     for r, u in zip(self.representative.tolist(), self.members))

    def expand(self, assignment: np.ndarray) -> np.ndarray:
        """``(n,)`` the part of each unit, from ``(m,)`` the part of each node."""
        return np.asarray(assignment)[self.of]


def contract(graph: nx.Graph, together: list[np.ndarray], workload: np.ndarray) -> Contraction:
    """Merge each set of ``together`` (from :func:`together_sets`) into one node.

    A plan of the contracted graph puts each set whole in one part; expanded
    (:meth:`Contraction.expand`), its parts stay connected because each set is
    connected. Nodes are numbered in the order of their smallest unit.

    Examples
    --------
    >>> c = contract(nx.path_graph(4), [np.array([1, 2])], np.array([1.0, 1.0, 3.0, 1.0]))
    >>> c.of.tolist(), c.representative.tolist(), sorted(c.graph.edges)
    ([0, 1, 1, 2], [0, 2, 3], [(0, 1), (1, 2)])
    """
    n = graph.number_of_nodes()
    w = np.asarray(workload, dtype=float)
    head = np.arange(n)  # the smallest unit of each unit's set
    for units in together:
        head[units] = units.min()
    firsts = np.unique(head)
    of = np.searchsorted(firsts, head)
    members = [np.flatnonzero(of == j) for j in range(len(firsts))]
    representative = np.array([u[np.argmax(w[u])] for u in members], dtype=np.intp)
    g = nx.Graph()
    g.add_nodes_from(range(len(firsts)))
    g.add_edges_from((int(of[a]), int(of[b])) for a, b in graph.edges if of[a] != of[b])
    return Contraction(of, members, g, representative)


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
    size: np.ndarray | None = None,
    max_size: np.ndarray | None = None,
    size_unit: str = "size units",
    keep_together: list | None = None,
    locked: dict[int, int] | None = None,
    deterministic: bool = False,
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
    size, max_size, size_unit
        Territory caps: ``(n,)`` size of each unit in an additive measure
        (``1`` per commune, or km²), ``(W,)`` the cap of each worker's sector in
        that unit (e.g. ``territory per FTE x fte``), the measure's name for
        messages; see :attr:`solvers.problem.Problem.max_size`. ``None``: no cap.
    keep_together
        Sets of unit indices that must fall in one group (e.g. the 9 units of
        Lyon's arrondissements); each set must be connected. With one group it
        constrains nothing.
    locked
        ``{unit: worker}`` assignments every plan keeps (e.g. a commune whose
        referent must not change); the unit's group is its worker's.
    deterministic
        Count ``time_limit_s`` in work seconds (:mod:`solvers.budget`): the same
        inputs and seed give the same plan on any machine and under any load
        (unless the wall-time safety cap binds: :attr:`NestedSolution.capped`).

    Raises
    ------
    InfeasibleError
        When no plan can meet the tolerances (the message says why).
    NoPlanFoundError
        When a stage found no plan in its time (nothing proven).
    """
    # stays whole: sectors first, then the grouping or the groups-first fallback; mostly docstring
    with budget.session(2 * time_limit_s, deterministic=deterministic) as clock:  # the fallback: a second limit
        nested = _solve_nested(
            graph, workload, travel, fte, n_groups, tolerance=tolerance, group_tolerance=group_tolerance,
            fixed_groups=fixed_groups, objective=objective, base_travel=base_travel, cost_weight=cost_weight,
            labels=labels, worker_labels=worker_labels, group_labels=group_labels, backend=backend,
            time_limit_s=time_limit_s, seed=seed, progress=progress, tie_break_slack=tie_break_slack,
            tie_break_weight=tie_break_weight, size=size, max_size=max_size, size_unit=size_unit,
            keep_together=keep_together, locked=locked)
    return stamp_nested(nested, clock, progress)


def _solve_nested(graph, workload, travel, fte, n_groups, *, tolerance, group_tolerance, fixed_groups, objective,
                  base_travel, cost_weight, labels, worker_labels, group_labels, backend, time_limit_s, seed, progress,
                  tie_break_slack, tie_break_weight, size, max_size, size_unit, keep_together,
                  locked) -> NestedSolution:
    """:func:`solve_nested` on the active clock."""
    start = time.monotonic()
    say = progress or (lambda line: None)
    workload = np.asarray(workload, dtype=float)
    fte = np.asarray(fte, dtype=float)
    sector_targets = workload.sum() * fte / fte.sum()
    glabels = group_labels or tuple(f"group {g}" for g in range(n_groups))
    wlabels = worker_labels or tuple(f"worker {w}" for w in range(len(fte)))
    together = together_sets(graph, keep_together) if n_groups > 1 else []
    caps = dict(size=size, max_size=max_size, size_unit=size_unit)
    locked = {int(u): int(w) for u, w in (locked or {}).items()}
    flat = Problem(graph, workload, sector_targets, tolerance, travel, objective, locked=locked,
                   base_travel=base_travel, cost_weight=cost_weight, labels=labels, sector_labels=wlabels, **caps)
    reasons = diagnose(flat)
    if reasons:
        raise InfeasibleError("; ".join(reasons))
    say(f"sectors: {graph.number_of_nodes():,} units into {len(fte)} sectors")
    sol = solve(flat, backend=backend, time_limit_s=time_limit_s, seed=seed,
                progress=lambda line: say(f"sectors: {line}"),
                tie_break_slack=tie_break_slack, tie_break_weight=tie_break_weight)
    worker_group = (np.zeros(len(fte), dtype=np.intp) if n_groups == 1 else
                    group_sectors(graph, sol.assignment, workload, fte, n_groups, group_tolerance, fixed_groups,
                                  together=together))
    if worker_group is not None:
        line = "groups: " + "; ".join(
            f"{glabels[g]} = {', '.join(wlabels[w] for w in np.flatnonzero(worker_group == g))}"
            for g in range(n_groups))
        say(line)
        return NestedSolution(worker_group[sol.assignment], sol.assignment, worker_group, sol.centres,
                              sol.objective, [sol], "sectors first", time.monotonic() - start, [*sol.log, line])
    kept = f" and keeps {len(together)} set(s) of units together" if together else ""
    line = (f"groups: no grouping of these sectors is connected, within ±{group_tolerance:.0%}{kept}; "
            "falling back to drawing the groups first (a second time limit)")
    say(line)
    nested = _groups_first(
        graph, workload, travel, fte, split_workers(fte, n_groups, fixed_groups),
        tolerance=tolerance, group_tolerance=group_tolerance, objective=objective, base_travel=base_travel,
        cost_weight=cost_weight, labels=labels, wlabels=wlabels, glabels=glabels, backend=backend,
        time_limit_s=time_limit_s, seed=seed, say=say,
        tie_break_slack=tie_break_slack, tie_break_weight=tie_break_weight, caps=caps, together=together,
        locked=locked,
    )
    nested.log = [*sol.log, line, *nested.log]
    nested.time_s = time.monotonic() - start
    return nested


def _groups_first(graph, workload, travel, fte, worker_group, *, tolerance, group_tolerance, objective,
                  base_travel, cost_weight, labels, wlabels, glabels, backend, time_limit_s, seed,
                  say, tie_break_slack=None, tie_break_weight=None, caps=None, together=None,
                  locked=None) -> NestedSolution:
    """Groups by a ``len(groups)``-centre p-median (30 % of the time), then
    each group's sectors (the rest, in proportion to each group's size), on the active clock.

    Each set of ``together`` is one node of the group-level graph (:func:`contract`);
    with territory caps (``caps``: the ``size``, ``max_size``, ``size_unit`` of
    :func:`solve_nested`), each group's territory is capped at the sum of its
    workers' caps, and each sector at its worker's."""
    start = time.monotonic()  # wall seconds, for NestedSolution.time_s
    clock = budget.current()
    began = clock.now()
    caps = caps or {}
    size, max_size = caps.get("size"), caps.get("max_size")
    n_groups = int(worker_group.max()) + 1
    sector_targets = workload.sum() * fte / fte.sum()
    group_targets = np.bincount(worker_group, weights=sector_targets, minlength=n_groups)
    group_caps = {}
    if size is not None:
        group_caps = dict(size=size, size_unit=caps.get("size_unit", "size units"),
                          max_size=np.bincount(worker_group, weights=np.asarray(max_size, dtype=float),
                                               minlength=n_groups))
    locked = locked or {}
    if together:
        merged = contract(graph, together, workload)
        gproblem = Problem(merged.graph, merged.total(workload), group_targets, group_tolerance,
                           merged.travel(travel), "pmedian", cost_weight=merged.total(cost_weight),
                           labels=merged.labels(labels), sector_labels=glabels,
                           locked={int(merged.of[u]): int(worker_group[w]) for u, w in locked.items()},
                           **{**group_caps, "size": merged.total(group_caps.get("size"))} if group_caps else {})
    else:
        merged = None
        gproblem = Problem(graph, workload, group_targets, group_tolerance, travel, "pmedian",
                           cost_weight=cost_weight, labels=labels, sector_labels=glabels,
                           locked={u: int(worker_group[w]) for u, w in locked.items()}, **group_caps)
    gsol = solve(gproblem, backend=backend, time_limit_s=0.3 * time_limit_s, seed=seed,
                 progress=lambda line: say(f"groups: {line}"))
    group = gsol.assignment if merged is None else merged.expand(gsol.assignment)
    sector = np.full(graph.number_of_nodes(), -1, dtype=np.intp)
    centre = np.full(len(fte), -1, dtype=np.intp)
    solutions = [gsol]
    total = 0.0
    remaining_units = graph.number_of_nodes()
    for g in range(n_groups):
        units = np.flatnonzero(group == g)
        workers = np.flatnonzero(worker_group == g)
        left = max(time_limit_s - (clock.now() - began), 1.0)
        seconds = left * len(units) / max(remaining_units, 1)
        remaining_units -= len(units)
        sub = nx.convert_node_labels_to_integers(graph.subgraph(units.tolist()), ordering="sorted")
        say(f"{glabels[g]}: {len(units):,} units into {len(workers)} sectors ({seconds:.0f} s)")
        position = {int(u): i for i, u in enumerate(units)}
        local = {int(w): i for i, w in enumerate(workers)}
        problem = Problem(
            sub, workload[units], sector_targets[workers], tolerance, SubsetTravelTimes(travel, units), objective,
            base_travel=None if base_travel is None else np.asarray(base_travel)[workers][:, units],
            cost_weight=None if cost_weight is None else np.asarray(cost_weight)[units],
            labels=None if labels is None else tuple(labels[i] for i in units),
            sector_labels=tuple(wlabels[w] for w in workers),
            size=None if size is None else np.asarray(size, dtype=float)[units],
            max_size=None if size is None else np.asarray(max_size, dtype=float)[workers],
            size_unit=caps.get("size_unit", "size units"),
            locked={position[u]: local[w] for u, w in locked.items() if u in position},
        )
        try:
            sol = solve(problem, backend=backend, time_limit_s=seconds, seed=seed,
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
