"""The districting problem as data, and the solution a backend returns.

``solvers`` knows graphs and numbers only: units are the integers ``0..n-1``,
the contiguity graph is a :class:`networkx.Graph` over those integers, workloads
are NumPy arrays and travel times are rows of minutes. Nothing here knows
about communes, files or maps; :mod:`sectorize` translates a territory into a
:class:`Problem` and a :class:`Solution` back into a sector table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Protocol

import networkx as nx
import numpy as np

Objective = Literal["pmedian", "base"]
"""``"pmedian"``: sum over units of workload x travel minutes to the sector's
centre unit (the centre is chosen by the solver, one unit of the sector).
``"base"``: the same, but measured from each sector's worker base."""

Status = Literal["optimal", "feasible", "infeasible", "unknown"]


class TravelTimes(Protocol):
    """Travel minutes between units, delivered row by row.

    ``rows(sources)`` returns a ``(len(sources), n)`` float array: the minutes
    from each source unit to every unit. Implementations may hold a dense
    matrix or compute rows on demand.
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
        ``"pmedian"`` or ``"base"`` (see :data:`Objective`).
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
        if self.objective not in ("pmedian", "base"):
            raise ValueError(f"unknown objective {self.objective!r}")
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
        return np.asarray(self.targets, dtype=float) * (1 - self.tolerance)

    @property
    def upper(self) -> np.ndarray:
        """``(k,)`` largest admissible workload of each sector."""
        return np.asarray(self.targets, dtype=float) * (1 + self.tolerance)

    @property
    def weights(self) -> np.ndarray:
        """``(n,)`` objective weight of each unit (``cost_weight`` or ``workload``)."""
        w = self.workload if self.cost_weight is None else self.cost_weight
        return np.asarray(w, dtype=np.float64)

    def cost_rows(self, centres: np.ndarray) -> np.ndarray:
        """``(k, n)`` objective cost of putting each unit in each sector.

        ``cost[s, i] = weights[i] * minutes`` from sector ``s``'s reference
        point to unit ``i``: its centre unit ``centres[s]`` (``"pmedian"``)
        or its worker's base (``"base"``).
        """
        if self.objective == "base":
            minutes = np.asarray(self.base_travel, dtype=np.float64)
        else:
            minutes = self.travel.rows(np.asarray(centres))
        return minutes * self.weights[None, :]

    def objective_value(self, assignment: np.ndarray, centres: np.ndarray) -> float:
        """Objective of a plan: sum of ``cost_rows(centres)[assignment[i], i]``."""
        a = np.asarray(assignment)
        return float(self.cost_rows(centres)[a, np.arange(self.n)].sum())

    def label(self, unit: int) -> str:
        return self.labels[unit] if self.labels else f"unit {unit}"

    def sector_label(self, sector: int) -> str:
        return self.sector_labels[sector] if self.sector_labels else f"sector {sector}"


@dataclass
class Solution:
    """What a backend returns.

    ``assignment[i]`` is the sector (``0..k-1``) of unit ``i``; ``centres[s]``
    the unit the objective of sector ``s`` is measured from. ``objective`` is in
    workload x minutes (e.g. patient-minutes/year); ``bound`` a proven lower
    bound on the objective when the backend has one (else ``None``), and
    ``gap = (objective - bound) / objective``. ``log`` holds the backend's
    progress lines, for display.
    """

    assignment: np.ndarray
    centres: np.ndarray
    objective: float
    status: Status
    backend: str
    time_s: float
    bound: float | None = None
    log: list[str] = field(default_factory=list)

    @property
    def gap(self) -> float | None:
        if self.bound is None or self.objective <= 0:
            return None
        return max(0.0, (self.objective - self.bound) / self.objective)


ProgressCallback = Callable[[str], None]
"""Receives one human-readable progress line (incumbent, bound, phase)."""


class InfeasibleError(ValueError):
    """No plan satisfies the constraints; the message says which and why."""
