"""The districting problem as data, and the solution a backend returns.

``solvers`` knows graphs and numbers only: units are the integers ``0..n-1``,
the contiguity graph is a :class:`networkx.Graph` over those integers, workloads
are NumPy arrays and travel times are rows of minutes. Nothing here knows
about communes, files or maps; :mod:`sectorize` translates a territory into a
:class:`Problem` and a :class:`Solution` back into a sector table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, NamedTuple, Protocol

import networkx as nx
import numpy as np

Objective = Literal["pmedian", "base", "cut_edges"]
"""``"pmedian"``: sum over units of workload x travel minutes to the sector's
centre unit (the centre is chosen by the solver, one unit of the sector).
``"base"``: the same, but measured from each sector's worker base.
``"cut_edges"``: the number of contiguity edges between different sectors
(:func:`cut_edges`, searched by :mod:`solvers.cut_edges`); travel minutes only shape the starting plans and
place the reported centres."""

Status = Literal["optimal", "feasible", "infeasible", "unknown"]


#: Relative slack on the caseload bounds, for floating-point sums only (the one epsilon of
#: every balance check: :func:`within_band`, :mod:`solvers.check`).
BAND_RTOL = 1e-9


def caseload_band(targets: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)``: the admissible caseload of each sector, ``targets x (1 -/+ tolerance)``.

    The one definition of the balance band, used by :class:`Problem`, the
    independent checks and the composition layer.

    >>> caseload_band(np.array([100.0, 50.0]), 0.1)
    (array([90., 45.]), array([110.,  55.]))
    """
    targets = np.asarray(targets, dtype=float)
    return targets * (1 - tolerance), targets * (1 + tolerance)


def within_band(load: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Whether each load lies in ``[lower, upper]``, up to :data:`BAND_RTOL` x ``max(1, |upper|)``.

    >>> within_band(np.array([110.0 + 1e-8, 111.0]), np.array([90.0, 90.0]), np.array([110.0, 110.0]))
    array([ True, False])
    """
    load, lower, upper = (np.asarray(x, dtype=float) for x in (load, lower, upper))
    slack = BAND_RTOL * np.maximum(1.0, np.abs(upper))
    return (load >= lower - slack) & (load <= upper + slack)


def within_cap(territory: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Whether each territory is at most its cap, up to :data:`BAND_RTOL` x ``max(1, cap)``
    (the one epsilon of every territory-cap test: the checks, the heuristics' moves).

    >>> within_cap(np.array([400.0 + 1e-8, 401.0]), np.array([400.0, 400.0]))
    array([ True, False])
    """
    territory, cap = np.asarray(territory, dtype=float), np.asarray(cap, dtype=float)
    return territory <= cap + BAND_RTOL * np.maximum(1.0, np.abs(np.where(np.isfinite(cap), cap, 0.0)))


class TravelTimes(Protocol):
    """Travel minutes between units, delivered row by row.

    ``rows(sources)`` returns a ``(len(sources), n)`` float array: the minutes
    from each source unit to every unit. Implementations may hold a dense
    matrix or compute rows on demand; they may also offer ``pairs(a, b)``
    (minutes from ``a[i]`` to ``b[i]``), which the solvers use, when present,
    to read edge lengths without whole rows.
    """

    n: int

    def rows(self, sources: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class DenseTravelTimes:
    """A full ``(n, n)`` matrix of minutes (``matrix[i, j]`` = minutes from i to j)."""

    matrix: np.ndarray

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix)
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ValueError(f"travel-time matrix must be square, got shape {m.shape}")
        if not np.all(np.isfinite(m)) or (m < 0).any():
            raise ValueError("travel-time matrix must be finite and non-negative")

    @property
    def n(self) -> int:
        return int(self.matrix.shape[0])

    def rows(self, sources: np.ndarray) -> np.ndarray:
        return np.asarray(self.matrix[np.asarray(sources, dtype=np.intp)], dtype=np.float64)

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Minutes from ``a[i]`` to ``b[i]`` for each ``i``."""
        return np.asarray(self.matrix[np.asarray(a, dtype=np.intp), np.asarray(b, dtype=np.intp)], dtype=np.float64)


@dataclass(frozen=True)
class Problem:
    """A contiguous, balanced, compact partition problem.

    Parameters
    ----------
    graph
        Contiguity graph over the integers ``0..n-1`` (one node per unit).
    workload
        ``(n,)`` non-negative workload of each unit, e.g. patients/year.
    targets
        ``(k,)`` target workload of each sector (same unit as ``workload``).
        Sector ``s`` must end up with a workload in
        ``[targets[s] * (1 - tolerance), targets[s] * (1 + tolerance)]``.
    tolerance
        Relative balance tolerance, e.g. ``0.10`` for +-10 %.
    travel
        Travel minutes between units (see :class:`TravelTimes`).
    objective
        ``"pmedian"``, ``"base"`` or ``"cut_edges"`` (see :data:`Objective`).
    base_travel
        ``(k, n)`` minutes from each sector's worker base to every unit;
        required for ``"base"``. Bases need not be units of the problem (a
        base may be given as coordinates, or lie in another group).
    locked
        ``{unit: sector}`` assignments that the solver must keep.
    cost_weight
        ``(n,)`` weight of each unit in the objective (defaults to
        ``workload``). A small floor on top of the workload keeps sectors
        territorially compact where demand is sparse.
    labels
        Human names of the units (e.g. ``"69123 Lyon"``), used in messages.
    sector_labels
        Human names of the sectors (e.g. ``"S03 (A. Martin)"``), used in messages.
    previous
        ``(n,)`` sector of each unit in a previous plan (``-1``: none, e.g. a
        unit of a departed worker's sector with no successor). With it, the
        objective adds ``move_cost x move_weight[i]`` for each unit ``i`` that
        leaves its previous sector (the annual re-run's disruption cost).
    move_weight
        ``(n,)`` disruption of moving each unit, e.g. patients in active
        follow-up who would change referent (defaults to ``workload``).
    move_cost
        Objective cost of one unit of ``move_weight`` moved (objective units
        per patient, e.g. caseload-minutes); ``0`` counts moves but does not
        penalise them.
    max_moved
        Cap on ``moved(assignment)``, the summed ``move_weight`` of moved
        units (e.g. at most 27 patients); ``None``: no cap.
    move_unit_cost
        Objective cost of each unit moved, whatever its weight (a commune
        without patients still changes worker and local partners); not
        counted in ``moved``.
    size
        ``(n,)`` territory of each unit in an additive measure, e.g. ``1.0``
        per unit (a count of communes) or its area in km². Needs
        ``max_size``; ``None`` (default): no territory cap.
    max_size
        ``(k,)`` cap on each sector's territory, ``sum(size[i])`` over its
        units, in the unit of ``size`` (e.g. at most 400 communes, or
        7,000 km²): a hard constraint of every backend and of
        :func:`solvers.check.check_plan`. A measure that is not a sum over
        units (distinct EPCI or cantons) cannot be expressed this way.
        Lower bounds computed without the cap (the Lagrangian and LP bounds of
        :mod:`solvers.bound`) stay valid: the cap only removes plans, so a
        bound of the problem without it is a relaxation's.
    size_unit
        Name of the measure in messages, e.g. ``"communes"`` or ``"km²"``.

    Examples
    --------
    >>> import networkx as nx
    >>> g = nx.path_graph(4)
    >>> t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(4), np.arange(4))) * 10.0)
    >>> p = Problem(g, np.ones(4), np.array([2.0, 2.0]), 0.0, t,
    ...             previous=np.array([0, 0, 1, 1]), move_cost=100.0)
    >>> p.moved(np.array([0, 1, 1, 1])), p.objective_value(np.array([0, 1, 1, 1]), np.array([0, 3]))
    (1.0, 130.0)
    """

    graph: nx.Graph
    workload: np.ndarray
    targets: np.ndarray
    tolerance: float
    travel: TravelTimes
    objective: Objective = "pmedian"
    base_travel: np.ndarray | None = None
    locked: dict[int, int] = field(default_factory=dict)
    cost_weight: np.ndarray | None = None
    labels: tuple[str, ...] | None = None
    sector_labels: tuple[str, ...] | None = None
    previous: np.ndarray | None = None
    move_weight: np.ndarray | None = None
    move_cost: float = 0.0
    max_moved: float | None = None
    move_unit_cost: float = 0.0
    size: np.ndarray | None = None
    max_size: np.ndarray | None = None
    size_unit: str = "size units"

    def __post_init__(self) -> None:
        n = self.n
        if sorted(self.graph.nodes) != list(range(n)):
            raise ValueError("graph nodes must be exactly the integers 0..n-1")
        w = np.asarray(self.workload, dtype=np.float64)
        if w.shape != (n,) or not np.all(np.isfinite(w)) or (w < 0).any():
            raise ValueError("workload must be a finite, non-negative (n,) array")
        t = np.asarray(self.targets, dtype=np.float64)
        if t.ndim != 1 or len(t) < 1 or (t <= 0).any():
            raise ValueError("targets must be a non-empty array of positive numbers")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1), got {self.tolerance}")
        if self.travel.n != n:
            raise ValueError(f"travel times cover {self.travel.n} units, graph has {n}")
        if self.objective not in ("pmedian", "base", "cut_edges"):
            raise ValueError(f"unknown objective {self.objective!r}; choose 'pmedian', 'base' or 'cut_edges'")
        if self.objective == "cut_edges" and (self.move_cost > 0 or self.move_unit_cost > 0
                                              or self.max_moved is not None):
            raise ValueError("objective 'cut_edges' does not price or cap moves from a previous plan; "
                             "set move_cost, move_unit_cost and max_moved to their defaults")
        if self.base_travel is not None and np.shape(self.base_travel) != (len(t), n):
            raise ValueError(f"base_travel must have shape (k, n) = ({len(t)}, {n})")
        if self.objective == "base" and self.base_travel is None:
            raise ValueError("objective 'base' needs base_travel (minutes from each base)")
        if self.cost_weight is not None:
            cw = np.asarray(self.cost_weight, dtype=np.float64)
            if cw.shape != (n,) or not np.all(np.isfinite(cw)) or (cw < 0).any():
                raise ValueError("cost_weight must be a finite, non-negative (n,) array")
        for u, s in self.locked.items():
            if not (0 <= u < n and 0 <= s < len(t)):
                raise ValueError(f"locked assignment {u}->{s} is out of range")
        if self.previous is not None:
            prev = np.asarray(self.previous)
            if prev.shape != (n,) or not np.issubdtype(prev.dtype, np.integer) or (prev < -1).any() or (prev >= len(t)).any():
                raise ValueError(f"previous must be an (n,) integer array of sectors in -1..{len(t) - 1}")
        if self.move_weight is not None:
            mw = np.asarray(self.move_weight, dtype=np.float64)
            if mw.shape != (n,) or not np.all(np.isfinite(mw)) or (mw < 0).any():
                raise ValueError("move_weight must be a finite, non-negative (n,) array")
        if not (np.isfinite(self.move_cost) and self.move_cost >= 0):
            raise ValueError(f"move_cost must be finite and >= 0, got {self.move_cost}")
        if not (np.isfinite(self.move_unit_cost) and self.move_unit_cost >= 0):
            raise ValueError(f"move_unit_cost must be finite and >= 0, got {self.move_unit_cost}")
        if self.max_moved is not None and not self.max_moved >= 0:
            raise ValueError(f"max_moved must be >= 0, got {self.max_moved}")
        if (self.move_cost > 0 or self.move_unit_cost > 0 or self.max_moved is not None) and self.previous is None:
            raise ValueError("move_cost, move_unit_cost and max_moved need a previous plan (previous=...)")
        if (self.size is None) != (self.max_size is None):
            raise ValueError("give size (per unit) and max_size (per sector) together, or neither")
        if self.size is not None:
            sz = np.asarray(self.size, dtype=np.float64)
            if sz.shape != (n,) or not np.all(np.isfinite(sz)) or (sz < 0).any():
                raise ValueError("size must be a finite, non-negative (n,) array (e.g. 1 per unit, or km²)")
            cap = np.asarray(self.max_size, dtype=np.float64)
            if cap.shape != (len(t),) or np.isnan(cap).any() or (cap < 0).any():
                raise ValueError(f"max_size must be a (k,) = ({len(t)},) array of caps >= 0 (inf: no cap)")

    @property
    def n(self) -> int:
        """Number of units."""
        return self.graph.number_of_nodes()

    @property
    def k(self) -> int:
        """Number of sectors."""
        return len(self.targets)

    @property
    def lower(self) -> np.ndarray:
        """``(k,)`` smallest admissible workload of each sector."""
        return caseload_band(self.targets, self.tolerance)[0]

    @property
    def upper(self) -> np.ndarray:
        """``(k,)`` largest admissible workload of each sector."""
        return caseload_band(self.targets, self.tolerance)[1]

    @property
    def weights(self) -> np.ndarray:
        """``(n,)`` objective weight of each unit (``cost_weight`` or ``workload``)."""
        w = self.workload if self.cost_weight is None else self.cost_weight
        return np.asarray(w, dtype=np.float64)

    @property
    def sizes(self) -> np.ndarray | None:
        """``(n,)`` territory of each unit as floats, or ``None`` without a territory cap."""
        return None if self.size is None else np.asarray(self.size, dtype=np.float64)

    @property
    def size_caps(self) -> np.ndarray | None:
        """``(k,)`` territory cap of each sector as floats, or ``None`` without one."""
        return None if self.max_size is None else np.asarray(self.max_size, dtype=np.float64)

    def territory(self, assignment: np.ndarray) -> np.ndarray | None:
        """``(k,)`` territory of each sector of a plan (summed ``size``), or ``None`` without a cap."""
        if self.size is None:
            return None
        return np.bincount(np.asarray(assignment), weights=self.sizes, minlength=self.k)

    @property
    def disruption(self) -> np.ndarray:
        """``(n,)`` move weight of each unit (``move_weight`` or ``workload``); 0 without a previous sector."""
        w = self.workload if self.move_weight is None else self.move_weight
        w = np.asarray(w, dtype=np.float64).copy()
        if self.previous is not None:
            w[np.asarray(self.previous) < 0] = 0.0
        return w

    def moved(self, assignment: np.ndarray) -> float:
        """Summed ``move_weight`` of the units not in their previous sector (0 without a previous plan)."""
        if self.previous is None:
            return 0.0
        prev = np.asarray(self.previous)
        away = (prev >= 0) & (np.asarray(assignment) != prev)
        return float(self.disruption[away].sum())

    def move_rows(self) -> np.ndarray | None:
        """``(k, n)`` disruption cost of putting each unit in each sector, or ``None``.

        ``move_cost x move_weight[i] + move_unit_cost`` for every sector but
        unit ``i``'s previous one (0 for units without a previous sector).
        """
        if self.previous is None or (self.move_cost == 0 and self.move_unit_cost == 0):
            return None
        prev = np.asarray(self.previous)
        per_unit = self.move_cost * self.disruption + np.where(prev >= 0, self.move_unit_cost, 0.0)
        rows = np.tile(per_unit, (self.k, 1))
        has = prev >= 0
        rows[prev[has], np.flatnonzero(has)] = 0.0
        return rows

    def cost_rows(self, centres: np.ndarray) -> np.ndarray:
        """``(k, n)`` objective cost of putting each unit in each sector.

        ``cost[s, i] = weights[i] * minutes`` from sector ``s``'s reference
        point to unit ``i``: its centre unit ``centres[s]`` (``"pmedian"``)
        or its worker's base (``"base"``); plus :meth:`move_rows` when a
        previous plan is penalised. For ``"cut_edges"`` these are the
        ``"pmedian"`` costs, used for starting plans and centres only.
        """
        if self.objective == "base":
            minutes = np.asarray(self.base_travel, dtype=np.float64)
        else:
            minutes = self.travel.rows(np.asarray(centres))
        cost = minutes * self.weights[None, :]
        moves = self.move_rows()
        return cost if moves is None else cost + moves

    def travel_value(self, assignment: np.ndarray, centres: np.ndarray) -> float:
        """The objective without the disruption cost (weighted travel minutes only)."""
        moves = self.move_rows()
        total = self.objective_value(assignment, centres)
        if moves is None:
            return total
        return total - float(moves[np.asarray(assignment), np.arange(self.n)].sum())

    def objective_value(self, assignment: np.ndarray, centres: np.ndarray) -> float:
        """Objective of a plan: sum of ``cost_rows(centres)[assignment[i], i]``; for
        ``"cut_edges"``, the number of edges between different sectors (``centres`` unused)."""
        a = np.asarray(assignment)
        if self.objective == "cut_edges":
            return float(cut_edges(self.graph, a))
        return float(self.cost_rows(centres)[a, np.arange(self.n)].sum())

    def label(self, unit: int) -> str:
        return self.labels[unit] if self.labels else f"unit {unit}"

    def sector_label(self, sector: int) -> str:
        return self.sector_labels[sector] if self.sector_labels else f"sector {sector}"


@dataclass
class TieBreak:
    """What :func:`solvers.cut_edges.tie_break.tie_break` returns.

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



@dataclass
class Solution:
    """What a backend returns.

    ``assignment[i]`` is the sector (``0..k-1``) of unit ``i``; ``centres[s]``
    the unit the objective of sector ``s`` is measured from. ``objective`` is in
    workload x minutes (e.g. patient-minutes/year), or a count of cut edges
    for ``"cut_edges"`` (whose centres are each sector's weighted medoid, a
    reference unit outside the objective); ``bound`` a proven lower
    bound on the objective when the backend has one (else ``None``), and
    ``gap = (objective - bound) / objective``. ``log`` holds the backend's
    progress lines, for display. ``tie_break`` is the
    :class:`TieBreak` report (cut edges before and after)
    when :func:`solvers.engine.solve` ran the compactness tie-break, else ``None``.
    ``time_s`` is in wall seconds. ``deterministic`` is true when the budget was counted
    in work (:mod:`solvers.budget`; ``work_s`` work seconds were used): the plan is then
    a function of the inputs, seed and settings, unless ``capped``, when the wall-time
    safety cap stopped the search (the log says so) and the plan is not reproducible.
    """

    assignment: np.ndarray
    centres: np.ndarray
    objective: float
    status: Status
    backend: str
    time_s: float
    bound: float | None = None
    log: list[str] = field(default_factory=list)
    tie_break: TieBreak | None = None
    deterministic: bool = False
    capped: bool = False
    work_s: float | None = None

    @property
    def gap(self) -> float | None:
        if self.bound is None or self.objective <= 0:
            return None
        return max(0.0, (self.objective - self.bound) / self.objective)


ProgressCallback = Callable[[str], None]
"""Receives one human-readable progress line (incumbent, bound, phase)."""


class NoPlanError(ValueError):
    """No plan to return: :class:`InfeasibleError` (proven) or :class:`NoPlanFoundError` (not found in time).

    Catch this to handle both; catch one of the two to tell a proof from a
    search that ran out of time.
    """


class InfeasibleError(NoPlanError):
    """No plan satisfies the constraints, and that is proven; the message says which and why."""


class NoPlanFoundError(NoPlanError):
    """No plan was found in the time given; infeasibility is not proven (more time may find one)."""


class Incumbent(NamedTuple):
    """The best plan a search holds: what the engine, the location-allocation loop and
    LNS pass to each other (a named tuple, so ``assign, centres, objective, backend =
    plan`` still reads it).

    ``assignment[i]`` is the sector of unit ``i``, ``centres[s]`` the centre unit of
    sector ``s``, ``objective`` :meth:`Problem.objective_value` of the plan (or ``inf``
    when no balanced plan is known yet), ``backend`` the name of the step that found it
    (``"heuristic"``, ``"mip"``, ``"lns"``, ...).
    """

    assignment: np.ndarray
    centres: np.ndarray
    objective: float
    backend: str


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

