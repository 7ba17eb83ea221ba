"""A plan being edited in the browser: moves, locks, undo/redo, and a review after every move.

A *draft* is a stored plan (its *parent*) plus the communes a manager moved by
hand. It lives in the server's memory while she works, is written to disk after
every change (so a restart loses nothing), and becomes a plan of the registry
only when she saves it: :meth:`Draft.save` hands the moves to
:func:`sectorize.pipeline.edit.edit_plan`, which assembles and checks the plan
exactly like ``sectorize plans edit`` does, and stores it with the draft's
parent as ``parent_id``.

What is computed once, and what after every move
------------------------------------------------
Loading a plan's inputs (the region's polygons and contiguity, the travel
times, the team) takes seconds; a move must be reviewed in well under 200 ms.
:class:`DraftContext` therefore holds, once per (units, scenario, demand
counts), the arrays a review needs, and is shared by every draft with the same
inputs (:func:`context_for` keeps the last few in a cache):

* the contiguity graph of the units as an edge list (each edge once) and a
  CSR matrix (:mod:`scipy.sparse`);
* the caseload of each unit, ``w_u`` (caseload units per year:
  ``sum(weight x demand column)`` over ``demand.weights``, as
  :func:`sectorize.pipeline.inputs.workload`), and its patients in follow-up
  (or its caseload units when the demand has no follow-up column:
  :func:`sectorize.pipeline.rerun._follow_up`), counted when a commune changes
  worker;
* each worker's target, ``T_k = W x fte_k / sum(fte)`` with ``W = sum(w_u)``,
  the definition of the solvers and of the independent checker
  (:func:`sectorize.pipeline.recheck.recheck`), the tolerance band
  ``T_k (1 -/+ tol)`` of :func:`solvers.problem.caseload_band`, and a group's
  target, the sum of its workers' targets, with the group tolerance;
* the territory of each unit and each worker's cap
  (:func:`sectorize.pipeline.inputs.territory_sizes`,
  :func:`~sectorize.pipeline.inputs.territory_caps`) and the sets of
  ``groups.keep_together``;
* the minutes from every unit to every worker's base, an ``(n_units,
  n_workers)`` array.

A review (:class:`Review`) is then a handful of vector operations on the
assignment ``a`` (worker number of each unit):

* caseload per sector ``L_k = sum_{a_u = k} w_u`` (``np.bincount``), its
  deviation ``100 (L_k - T_k) / T_k`` %, and the same per group;
* contiguity: the edges whose two ends are in the same sector are kept and
  :func:`scipy.sparse.csgraph.connected_components` labels the pieces of all
  sectors at once; a sector's number of pieces is the number of distinct labels
  among its units. One pass over the ~12,000 edges of the 4,033 AURA units
  costs under a millisecond, less than extracting the sub-matrix of one large
  sector, so every sector is recounted after every move instead of caching the
  untouched ones (the result cannot go stale). Groups are counted the same way;
* travel: ``t_u``, the minutes from the base of the worker of ``u`` to ``u``;
  the caseload-weighted mean ``sum(w t) / sum(w)``, the weighted 90th
  percentile (the smallest ``t`` such that the units at most that far hold 90 %
  of the caseload) and the maximum over the units with caseload;
* changes against the plan in force: the communes whose worker differs, and
  the patients in follow-up they hold.

The problems a review reports are those of the independent checker
(:func:`sectorize.pipeline.assemble.check`), so ``Review.valid`` says whether
the saved plan will pass it: a sector or group in several pieces
(``"contiguity"``), outside its band (``"balance"``), without commune
(``"empty"``), over its territory cap (``"territory"``), a set of
``groups.keep_together`` split between groups (``"keep_together"``). A cap
measured in km² is enforced by the solvers but not by the checker (the tables
have no areas): it is reported with ``"blocking": false`` and leaves
``valid`` unchanged.

Locks
-----
A locked commune does not move; a locked sector keeps its communes and takes
no other by hand. A re-optimisation (:mod:`sectorize.app.jobs`) keeps them too:
the draft passes its locked communes and the communes of its locked sectors to
:func:`~sectorize.pipeline.edit.edit_plan` as locked communes (the solver
keeps them where they are; it has no rule against another commune joining a
locked sector).

Only counts per commune are held here, never patient-level data.

Example
-------
>>> store = DraftStore("sectorize-plans")                          # doctest: +SKIP
>>> draft = store.open(registry.get(pid), registry.effective_on(date.today()))   # doctest: +SKIP
>>> review = draft.move(["69259"], "B2")                           # doctest: +SKIP
>>> [p["message"] for p in review.as_dict()["problems"]]           # doctest: +SKIP
>>> draft.undo(); plan_id, valid, violations = draft.save(registry, "CODIR 2027-02-10", "marie")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from sectorize.pipeline.edit import EditResult, _inputs, _scenario, edit_plan
from sectorize.pipeline.inputs import (TERRITORY_UNITS, Progress, keep_together_units, territory_caps,
                                       territory_sizes)
from sectorize.pipeline.rerun import _follow_up
from sectorize.store.atomic import atomic_write_json
from sectorize.store.registry import PlanNotFoundError, Registry, StoredPlan
from solvers.problem import caseload_band, within_band, within_cap

log = logging.getLogger(__name__)

#: Drafts kept in memory by a :class:`DraftStore` (the least recently used beyond are dropped
#: from memory; their files stay and they are reloaded when asked for).
MAX_OPEN = 50

#: Draft files kept on disk by a :class:`DraftStore` (the least recently changed beyond are deleted).
MAX_KEPT = 500

#: Steps kept on the undo stack of a draft (the oldest beyond are forgotten).
MAX_UNDO = 500

#: Contexts kept by :func:`context_for` (each holds a few arrays of the region's size).
MAX_CONTEXTS = 4

#: Version of the JSON written for each draft under ``<registry>/drafts/``.
DRAFT_FORMAT = 1

#: Share of the caseload below the weighted travel percentile of :class:`Review`.
TRAVEL_QUANTILE = 0.9


class LockedError(PermissionError):
    """A change refused because it moves a locked commune, or moves a commune into or out of a
    locked sector. ``units`` (INSEE codes) and ``sectors`` name what is locked; the web app answers
    409 with the message. A :class:`PermissionError` (not a :class:`ValueError`, which means a bad
    request)."""

    def __init__(self, message: str, *, units: Iterable[str] = (), sectors: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.units = list(units)
        self.sectors = list(sectors)


class DraftChangedError(Exception):
    """:meth:`Draft.replace` with ``base_version``: the draft changed since that version (e.g. the
    manager moved communes while a re-optimisation ran), so the replacement was not applied."""


# --------------------------------------------------------------------------- the shared context


@dataclass(frozen=True, eq=False)
class DraftContext:
    """What every review of a plan's drafts needs, computed once from the plan's inputs.

    Attributes
    ----------
    key
        ``(units hash, scenario hash, demand counts hash)`` (:func:`context_key`).
    scenario
        The plan's scenario (:func:`sectorize.pipeline.edit._scenario`).
    keys
        Unit keys (INSEE codes) in solver order; ``index`` maps a key to its number.
    names
        Name of each unit (for messages).
    edges
        ``(2, m)`` the contiguity edges, each once (unit numbers).
    adjacency
        ``(n, n)`` CSR contiguity matrix (symmetric, int8).
    workload
        ``(n,)`` caseload of each unit, caseload units per year.
    follow_up
        ``(n,)`` patients in follow-up of each unit (or caseload units: ``follow_up_unit``).
    follow_up_unit
        ``"patients"`` or ``"caseload units"``, as :mod:`sectorize.pipeline.edit` labels it.
    team_ids, team_names
        Worker ids and names, scenario order (worker numbers).
    fte
        ``(W,)`` full-time equivalents.
    targets
        ``(W,)`` caseload target of each worker, ``sum(workload) x fte / sum(fte)``.
    tolerance, group_tolerance
        Admissible relative deviation of a sector's / group's caseload from its target.
    group_names
        The scenario's group names (group numbers).
    territory_measure
        ``"communes"``, ``"area_km2"`` or ``"none"`` (``model.territory_measure``).
    territory_size
        ``(n,)`` territory of each unit in ``territory_unit``, ``None`` without a cap.
    territory_cap
        ``(W,)`` each worker's cap, ``None`` without a cap.
    territory_unit
        ``"communes"`` or ``"km²"``.
    keep_together
        Unit numbers of each set of ``groups.keep_together`` that must fall in one group.
    travel_base
        ``(n, W)`` minutes from each worker's base to each unit.
    build_s
        Seconds it took to build.
    """

    key: tuple[str, str, str]
    scenario: Any
    keys: pd.Index
    index: dict[str, int]
    names: np.ndarray
    edges: np.ndarray
    adjacency: sp.csr_matrix
    workload: np.ndarray
    follow_up: np.ndarray
    follow_up_unit: str
    team_ids: tuple[str, ...]
    team_names: tuple[str, ...]
    fte: np.ndarray
    targets: np.ndarray
    tolerance: float
    group_tolerance: float
    group_names: tuple[str, ...]
    territory_measure: str
    territory_size: np.ndarray | None
    territory_cap: np.ndarray | None
    territory_unit: str
    keep_together: tuple[np.ndarray, ...]
    travel_base: np.ndarray
    build_s: float = 0.0

    @property
    def n(self) -> int:
        """Number of units."""
        return len(self.keys)

    def label(self, unit: int) -> str:
        """``"69259 Vénissieux"``."""
        return f"{self.keys[unit]} {self.names[unit]}"

    @classmethod
    def build(cls, stored: StoredPlan, progress: Progress | None = None) -> DraftContext:
        """The context of ``stored``'s inputs: its scenario's units (checked against the plan's
        units hash), its stored demand counts, travel times and team
        (:func:`sectorize.pipeline.edit._inputs`).

        Raises
        ------
        sectorize.pipeline.edit.EditError
            The units of the plan's scenario changed since the plan was made.
        """
        began = time.monotonic()
        scenario = _scenario(stored, None)
        inputs = _inputs(stored, scenario, progress or (lambda line: None))
        keys = inputs.keys
        n = len(keys)
        pairs = np.array([(u, v) for u, v in inputs.graph.edges if u != v], dtype=np.intp).reshape(-1, 2)
        edges = np.ascontiguousarray(pairs.T)
        both = np.concatenate([edges, edges[::-1]], axis=1)
        adjacency = sp.csr_matrix((np.ones(both.shape[1], dtype=np.int8), (both[0], both[1])), shape=(n, n))
        adjacency.sum_duplicates()
        follow, note = _follow_up(scenario, inputs.demand, inputs.load)
        unit = "patients" if note.startswith("disruption counted in patients") else "caseload units"
        team = inputs.team
        w = np.asarray(inputs.workload, dtype=float)
        fte = np.asarray(team.fte, dtype=float)
        sizes = territory_sizes(scenario, inputs.region)
        model = scenario.model
        return cls(
            key=context_key(stored), scenario=scenario, keys=keys, index=inputs.index,
            names=inputs.region.units["name"].astype(str).to_numpy(), edges=edges, adjacency=adjacency,
            workload=w, follow_up=follow.reindex(keys).fillna(0.0).to_numpy(dtype=float), follow_up_unit=unit,
            team_ids=tuple(team.ids), team_names=tuple(team.names), fte=fte,
            targets=w.sum() * fte / fte.sum(), tolerance=float(model.tolerance),
            group_tolerance=float(model.group_tolerance), group_names=tuple(scenario.groups.names),
            territory_measure=model.territory_measure, territory_size=sizes,
            territory_cap=territory_caps(scenario, sizes, fte),
            territory_unit=TERRITORY_UNITS.get(model.territory_measure, "size units"),
            keep_together=tuple(np.array(s, dtype=np.intp) for s in keep_together_units(scenario, inputs.region)),
            travel_base=np.ascontiguousarray(np.asarray(team.base_travel, dtype=float).T),
            build_s=time.monotonic() - began,
        )


def context_key(stored: StoredPlan) -> tuple[str, str, str]:
    """``(units hash, scenario hash, demand counts hash)`` of a stored plan: two plans with the same
    key share one :class:`DraftContext`. The demand hash is over the stored counts per commune
    (the plan's demand columns), which are what a draft reviews."""
    columns = ["insee", *stored.demand_columns]
    counts = stored.sectors[columns].astype({"insee": str}).sort_values("insee")
    demand = hashlib.sha256(counts.to_csv(index=False).encode()).hexdigest()
    scenario = hashlib.sha256(stored.scenario_toml.encode()).hexdigest()
    return str(stored.inputs.get("units", "")), scenario, demand


_CONTEXTS: OrderedDict[tuple[str, str, str], DraftContext] = OrderedDict()
_CONTEXTS_LOCK = threading.Lock()
_BUILDING_LOCK = threading.Lock()


def context_for(stored: StoredPlan, progress: Progress | None = None) -> DraftContext:
    """The :class:`DraftContext` of ``stored``, from the cache when a plan with the same
    :func:`context_key` was opened before (the last :data:`MAX_CONTEXTS` are kept).

    Thread-safe; two threads asking for the same new context build it once.
    """
    key = context_key(stored)
    with _CONTEXTS_LOCK:
        if key in _CONTEXTS:
            _CONTEXTS.move_to_end(key)
            return _CONTEXTS[key]
    with _BUILDING_LOCK:
        with _CONTEXTS_LOCK:
            if key in _CONTEXTS:
                return _CONTEXTS[key]
        context = DraftContext.build(stored, progress)
        with _CONTEXTS_LOCK:
            _CONTEXTS[key] = context
            while len(_CONTEXTS) > MAX_CONTEXTS:
                _CONTEXTS.popitem(last=False)
        return context


# --------------------------------------------------------------------------- the review


@dataclass
class Review:
    """The review of a draft: per sector figures, problems, travel and changes.

    Attributes
    ----------
    sectors
        One dict per sector (worker order): ``sector, group, worker_id, worker_name, target,
        caseload`` (caseload units per year), ``deviation_pct`` (% from the target),
        ``communes, contiguous, pieces, locked, travel_mean_min`` (caseload-weighted, minutes
        from the worker's base; ``None`` without caseload), ``travel_max_min`` (over the
        communes with caseload).
    problems
        One dict per problem: ``kind`` (``contiguity``, ``balance``, ``empty``, ``territory``,
        ``keep_together``), ``sectors`` (the sectors concerned), ``message``, ``blocking``
        (whether the independent checker refuses it).
    travel
        ``mean_min, p90_min, max_min``: caseload-weighted travel from the worker's base, minutes.
    changes
        Against the plan in force (the parent when none): ``against`` (plan id), ``communes``
        whose worker differs, ``patients`` they hold in follow-up, ``unit`` (``"patients"`` or
        ``"caseload units"``), ``units`` (their INSEE codes).
    valid
        No blocking problem: the saved plan passes the independent checker.
    """

    sectors: list[dict[str, Any]]
    problems: list[dict[str, Any]]
    travel: dict[str, float | None]
    changes: dict[str, Any]
    valid: bool
    time_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The design's Review JSON: ``{"sectors", "problems", "travel", "changes", "valid"}``."""
        return {"sectors": self.sectors, "problems": self.problems, "travel": self.travel,
                "changes": self.changes, "valid": self.valid}


def _pieces(edges: np.ndarray, part: np.ndarray, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(pieces per part (k,), component label per unit (n,))``: the connected pieces of each part
    of ``part`` (part number per unit), from the edges inside parts (0 pieces: empty part)."""
    inside = part[edges[0]] == part[edges[1]]
    u, v = edges[0][inside], edges[1][inside]
    matrix = sp.csr_matrix((np.ones(u.size, dtype=np.int8), (u, v)), shape=(n, n))
    _, labels = connected_components(matrix, directed=False)
    pairs = np.unique(part.astype(np.int64) * n + labels)
    return np.bincount(pairs // n, minlength=k), labels


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float | None:
    """The smallest value such that the values at most it hold ``q`` of the weight."""
    if values.size == 0 or weights.sum() <= 0:
        return None
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    at = int(np.searchsorted(cumulative, q * cumulative[-1] - 1e-12 * cumulative[-1]))
    return float(values[order][min(at, values.size - 1)])


def _num(x: float | None, digits: int) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


# --------------------------------------------------------------------------- the draft


@dataclass
class _Step:
    """One undoable change: ``units`` went from ``old`` to ``new`` workers."""

    units: np.ndarray
    old: np.ndarray
    new: np.ndarray
    label: str


def _new_id() -> str:
    return secrets.token_hex(6)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


class Draft:
    """A stored plan being edited: its assignment, locks, undo/redo stacks and review.

    Thread-safe (every method holds the draft's lock). Build it with :meth:`DraftStore.open`
    (which persists it) or directly for a notebook.

    Parameters
    ----------
    context
        :func:`context_for` the parent.
    parent
        The stored plan edited.
    in_force
        The plan in force, compared against in ``Review.changes`` (``None``: the parent).
    draft_id
        Default: 12 random hex digits.
    on_change
        Called with the draft after every change (the store writes it to disk).

    Raises
    ------
    ValueError
        The parent's workers are not the team of its scenario.
    """

    def __init__(self, context: DraftContext, parent: StoredPlan, in_force: StoredPlan | None = None, *,
                 draft_id: str | None = None, on_change: Callable[[Draft], None] | None = None) -> None:
        self.context = context
        self.parent = parent
        self.id = draft_id or _new_id()
        self.parent_id = parent.id
        self.in_force_id = in_force.id if in_force is not None else None
        self.created = self.updated = _now()
        self.on_change = on_change
        self._lock = threading.RLock()
        ctx = context
        position = {wid: i for i, wid in enumerate(ctx.team_ids)}
        workers = parent.workers.assign(worker_id=parent.workers["worker_id"].astype(str),
                                        sector=parent.workers["sector"].astype(str),
                                        group=parent.workers["group"].astype(str))
        if sorted(workers["worker_id"]) != sorted(ctx.team_ids):
            raise ValueError(f"plan {parent.id}: its workers ({', '.join(workers['worker_id'])}) are not the team "
                             f"of its scenario ({', '.join(ctx.team_ids)}); the plan cannot be edited")
        by_worker = workers.set_index("worker_id")
        #: Sector id of each worker (worker order).
        self.sectors: tuple[str, ...] = tuple(str(by_worker.at[w, "sector"]) for w in ctx.team_ids)
        self._sector_index = {s: i for i, s in enumerate(self.sectors)}
        groups = [str(by_worker.at[w, "group"]) for w in ctx.team_ids]
        unknown = sorted(set(groups) - set(ctx.group_names))
        if unknown:
            raise ValueError(f"plan {parent.id}: group(s) {unknown} are not groups of its scenario "
                             f"({', '.join(ctx.group_names)})")
        #: Group number of each worker.
        self.worker_group = np.array([ctx.group_names.index(g) for g in groups], dtype=np.intp)
        self._parent_assignment = self._assignment_of(parent, position, strict=True)
        self._assignment = self._parent_assignment.copy()
        if in_force is None or in_force.id == parent.id:
            self._against, self.against_id = self._parent_assignment, parent.id
        else:
            self._against, self.against_id = self._assignment_of(in_force, position, strict=False), in_force.id
        self._locked_units: set[int] = set()
        self._locked_sectors: set[int] = set()
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []
        #: Number of changes made to the assignment since the draft was opened.
        self.version = 0
        self._review: Review | None = None
        self._review_version = -1

    def _assignment_of(self, stored: StoredPlan, position: dict[str, int], *, strict: bool) -> np.ndarray:
        """Worker number of each unit in ``stored`` (-1: no such worker or commune, when not strict)."""
        table = stored.sectors.assign(insee=stored.sectors["insee"].astype(str)).set_index("insee")
        workers = table["worker_id"].astype(str).reindex(self.context.keys)
        numbers = workers.map(position)
        if strict and numbers.isna().any():
            missing = list(self.context.keys[numbers.isna().to_numpy()][:5])
            raise ValueError(f"plan {stored.id}: {int(numbers.isna().sum())} unit(s) of its scenario have no "
                             f"sector in the plan, e.g. {missing}")
        return numbers.fillna(-1).to_numpy(dtype=np.intp)

    # -- reading

    @property
    def assignment(self) -> np.ndarray:
        """``(n,)`` worker number of each unit (a copy)."""
        with self._lock:
            return self._assignment.copy()

    @property
    def locked_units(self) -> set[str]:
        """INSEE codes of the locked communes."""
        with self._lock:
            return {str(self.context.keys[u]) for u in self._locked_units}

    @property
    def locked_sectors(self) -> set[str]:
        """Ids of the locked sectors."""
        with self._lock:
            return {self.sectors[k] for k in self._locked_sectors}

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def sector_of(self, code: str) -> str:
        """The sector a commune is in, in the draft."""
        with self._lock:
            return self.sectors[self._assignment[self._units([code])[0]]]

    def moves(self) -> dict[str, str]:
        """``{insee: sector}`` for every commune whose sector differs from the parent's (what
        :meth:`to_plan` passes to :func:`~sectorize.pipeline.edit.edit_plan`)."""
        with self._lock:
            differ = np.flatnonzero(self._assignment != self._parent_assignment)
            return {str(self.context.keys[u]): self.sectors[self._assignment[u]] for u in differ}

    def locked_communes(self) -> list[str]:
        """The locked communes and every commune of a locked sector, sorted: the ``locks`` of a
        re-optimisation (:func:`sectorize.app.jobs.reoptimise`)."""
        with self._lock:
            units = set(self._locked_units)
            if self._locked_sectors:
                units |= set(np.flatnonzero(np.isin(self._assignment, list(self._locked_sectors))).tolist())
            return sorted(str(self.context.keys[u]) for u in units)

    #: The same, under the name the web app uses.
    locked_codes = locked_communes

    def reoptimise_kwargs(self, registry_folder: str | Path, time_limit_s: float) -> dict[str, Any]:
        """The keyword arguments of :func:`sectorize.app.jobs.reoptimise` for this draft (picklable)."""
        with self._lock:
            return {"registry_folder": str(registry_folder), "parent_id": self.parent_id, "moves": self.moves(),
                    "locked_units": self.locked_communes(), "time_limit_s": float(time_limit_s)}

    # -- changes

    def _units(self, codes: Iterable[str]) -> np.ndarray:
        """Unit numbers of ``codes`` (order kept, duplicates dropped); ValueError naming the unknown ones."""
        if isinstance(codes, str):
            codes = [codes]
        codes = [str(c).strip() for c in codes]
        index = self.context.index
        unknown = [c for c in codes if c not in index]
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:10]) + (f" (and {len(unknown) - 10} more)"
                                                                 if len(unknown) > 10 else "")
            raise ValueError(f"{shown}: not a commune of plan {self.parent_id} ({self.context.n:,} communes); "
                             "give INSEE codes")
        return np.array(list(dict.fromkeys(index[c] for c in codes)), dtype=np.intp)

    def _sector(self, sector: str) -> int:
        if str(sector) not in self._sector_index:
            raise ValueError(f"sector {sector!r}: plan {self.parent_id} has no such sector "
                             f"(its sectors: {', '.join(sorted(self.sectors))})")
        return self._sector_index[str(sector)]

    def _labels(self, units: Iterable[int], limit: int = 8) -> str:
        units = list(units)
        text = ", ".join(self.context.label(u) for u in units[:limit])
        return text + (f" and {len(units) - limit} more" if len(units) > limit else "")

    def _check_locks(self, units: np.ndarray, new: np.ndarray, *, joining: bool, what: str) -> None:
        """LockedError when ``units`` going to ``new`` moves a locked commune, takes a commune out of
        a locked sector, or (``joining``) brings one into a locked sector."""
        old = self._assignment[units]
        moving = old != new
        units, old, new = units[moving], old[moving], new[moving]
        locked = [u for u in units.tolist() if u in self._locked_units]
        if locked:
            codes = [str(self.context.keys[u]) for u in locked]
            raise LockedError(f"{what}: commune(s) {self._labels(locked)} are locked; unlock them first",
                              units=codes)
        leaving = sorted({int(k) for k in old if k in self._locked_sectors})
        joined = sorted({int(k) for k in new if k in self._locked_sectors}) if joining else []
        if leaving or joined:
            sectors = [self.sectors[k] for k in sorted(set(leaving) | set(joined))]
            out = [u for u, k in zip(units.tolist(), old.tolist()) if k in self._locked_sectors]
            parts = []
            if leaving:
                parts.append(f"{self._labels(out)} would leave locked sector(s) "
                             f"{', '.join(self.sectors[k] for k in leaving)}")
            if joined:
                parts.append(f"locked sector(s) {', '.join(self.sectors[k] for k in joined)} take no commune")
            raise LockedError(f"{what}: {'; '.join(parts)}; unlock the sector first",
                              units=[str(self.context.keys[u]) for u in out], sectors=sectors)

    def _apply(self, step: _Step, *, record: bool) -> None:
        self._assignment[step.units] = step.new
        if record:
            self._undo.append(step)
            del self._undo[:-MAX_UNDO]
            self._redo.clear()
        self.version += 1
        self._changed()

    def _changed(self) -> None:
        self.updated = _now()
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:  # a failed save to disk must not lose the change in memory
                log.exception("draft %s: could not be written to disk", self.id)

    def move(self, units: Iterable[str], sector: str) -> Review:
        """Move communes to ``sector`` (one undoable step) and review the draft.

        Parameters
        ----------
        units
            INSEE codes; those already in ``sector`` are left as they are.
        sector
            A sector id of the plan (e.g. ``"A2"``).

        Raises
        ------
        ValueError
            No commune given, a code that is not a commune of the plan, an unknown sector.
        LockedError
            A locked commune, a commune of a locked sector, or ``sector`` locked.
        """
        with self._lock:
            idx = self._units(units)
            if idx.size == 0:
                raise ValueError("no commune given: select the communes to move")
            k = self._sector(sector)
            new = np.full(idx.size, k, dtype=np.intp)
            self._check_locks(idx, new, joining=True, what=f"move to {self.sectors[k]}")
            changing = idx[self._assignment[idx] != k]
            if changing.size:
                step = _Step(changing, self._assignment[changing].copy(), np.full(changing.size, k, dtype=np.intp),
                             f"{changing.size} commune(s) to {self.sectors[k]}")
                self._apply(step, record=True)
            return self.review()

    def undo(self) -> Review:
        """Undo the last change (a move or a re-optimisation) and review the draft.

        Raises
        ------
        ValueError
            Nothing to undo.
        LockedError
            The change would move a commune locked since.
        """
        return self._replay(self._undo, self._redo, forward=False)

    def redo(self) -> Review:
        """Redo the last undone change and review the draft.

        Raises
        ------
        ValueError
            Nothing to redo.
        LockedError
            The change would move a commune locked since.
        """
        return self._replay(self._redo, self._undo, forward=True)

    def _replay(self, source: list[_Step], target: list[_Step], *, forward: bool) -> Review:
        """Take the last step of ``source``, apply it (``forward``) or its inverse, push it on ``target``."""
        verb = "redo" if forward else "undo"
        with self._lock:
            if not source:
                raise ValueError(f"nothing to {verb}")
            step = source[-1]
            self._check_locks(step.units, step.new if forward else step.old, joining=True,
                              what=f"{verb} ({step.label})")
            source.pop()
            target.append(step)
            self._apply(step if forward else _Step(step.units, step.new, step.old, step.label), record=False)
            return self.review()

    def lock(self, units: Iterable[str] | None = None, sectors: Iterable[str] | None = None,
             locked: bool = True) -> Review:
        """Lock (``locked=True``) or unlock communes and sectors; not an undoable step.

        Raises
        ------
        ValueError
            A code that is not a commune, an unknown sector (nothing is changed).
        """
        with self._lock:
            idx = self._units(units or []).tolist()
            ks = [self._sector(s) for s in (sectors or [])]
            if locked:
                self._locked_units.update(idx)
                self._locked_sectors.update(ks)
            else:
                self._locked_units.difference_update(idx)
                self._locked_sectors.difference_update(ks)
            self._review = None
            if idx or ks:
                self._changed()
            return self.review()

    def replace(self, assignment: Mapping[str, str] | np.ndarray, *, label: str = "re-optimisation",
                base_version: int | None = None) -> Review:
        """Replace the whole assignment (one undoable step), e.g. by a re-optimisation's result.

        Parameters
        ----------
        assignment
            ``{insee: sector}`` for every commune, or ``(n,)`` worker numbers.
        base_version
            When given, refuse (:class:`DraftChangedError`) if :attr:`version` moved on since.

        Raises
        ------
        ValueError
            A commune missing or unknown, an unknown sector.
        LockedError
            A locked commune or a commune of a locked sector would move (communes may join a
            locked sector: the solvers keep locked communes, nothing more).
        DraftChangedError
            See ``base_version``.
        """
        with self._lock:
            if base_version is not None and base_version != self.version:
                raise DraftChangedError(
                    f"draft {self.id} changed while the re-optimisation ran (version {base_version} -> "
                    f"{self.version}); its result was not applied: re-optimise again")
            n = self.context.n
            if isinstance(assignment, Mapping):
                units = self._units(list(assignment))
                missing = n - units.size
                if missing:
                    absent = [str(k) for k in self.context.keys if k not in assignment][:5]
                    raise ValueError(f"the new assignment lacks {missing} commune(s) of plan {self.parent_id}, "
                                     f"e.g. {absent}")
                new = np.empty(n, dtype=np.intp)
                new[units] = [self._sector(s) for s in assignment.values()]
            else:
                new = np.asarray(assignment, dtype=np.intp)
                if new.shape != (n,) or (new.size and (new.min() < 0 or new.max() >= len(self.sectors))):
                    raise ValueError(f"the new assignment must give a worker number 0..{len(self.sectors) - 1} "
                                     f"to each of the {n:,} communes")
            changing = np.flatnonzero(new != self._assignment)
            self._check_locks(changing, new[changing], joining=False, what=label)
            if changing.size:
                self._apply(_Step(changing, self._assignment[changing].copy(), new[changing].copy(),
                                  f"{label}: {changing.size} commune(s)"), record=True)
            return self.review()

    # -- review and state

    def review(self) -> Review:
        """The review of the current assignment (cached until the next change); see the module."""
        with self._lock:
            if self._review is None or self._review_version != self.version:
                self._review = self._compute_review()
                self._review_version = self.version
            return self._review

    def _compute_review(self) -> Review:
        # stays whole: one pass over the figures of the design's Review, in its order
        began = time.perf_counter()
        ctx, a = self.context, self._assignment
        n, k = ctx.n, len(self.sectors)
        w = ctx.workload
        caseload = np.bincount(a, weights=w, minlength=k)
        communes = np.bincount(a, minlength=k)
        lower, upper = caseload_band(ctx.targets, ctx.tolerance)
        balanced = within_band(caseload, lower, upper)
        deviation = np.divide((caseload - ctx.targets) * 100, ctx.targets, out=np.full(k, np.nan),
                              where=ctx.targets > 0)
        pieces, labels = _pieces(ctx.edges, a, k, n)
        travel = ctx.travel_base[np.arange(n), a]
        weighted = np.bincount(a, weights=w * travel, minlength=k)
        loaded = w > 0
        longest = np.full(k, -np.inf)
        np.maximum.at(longest, a[loaded], travel[loaded])

        problems: list[dict[str, Any]] = []
        rows = []
        for s in range(k):
            group = ctx.group_names[self.worker_group[s]]
            rows.append({
                "sector": self.sectors[s], "group": group, "worker_id": ctx.team_ids[s],
                "worker_name": ctx.team_names[s], "target": _num(ctx.targets[s], 3),
                "caseload": _num(caseload[s], 3), "deviation_pct": _num(deviation[s], 2),
                "communes": int(communes[s]), "contiguous": bool(pieces[s] == 1), "pieces": int(pieces[s]),
                "locked": s in self._locked_sectors,
                "travel_mean_min": _num(weighted[s] / caseload[s], 1) if caseload[s] > 0 else None,
                "travel_max_min": _num(longest[s], 1) if np.isfinite(longest[s]) else None,
            })
            name = self.sectors[s]
            if communes[s] == 0:
                problems.append({"kind": "empty", "sectors": [name], "blocking": True,
                                 "message": f"empty: sector {name} ({ctx.team_ids[s]}) has no commune"})
                continue
            if pieces[s] > 1:
                problems.append({"kind": "contiguity", "sectors": [name], "blocking": True,
                                 "message": self._cut_message(f"sector {name}", np.flatnonzero(a == s), labels)})
            if not balanced[s]:
                problems.append({"kind": "balance", "sectors": [name], "blocking": True,
                                 "message": f"balance: sector {name} carries {caseload[s]:,.1f} caseload units, "
                                            f"{deviation[s]:+.1f} % from its target {ctx.targets[s]:,.1f} "
                                            f"(tolerance ±{ctx.tolerance * 100:g} %)"})
        problems += self._group_problems(a, labels)
        problems += self._territory_problems(a)
        problems += self._keep_together_problems(a)

        total = float(w.sum())
        summary = {
            "mean_min": _num(float(w @ travel) / total, 1) if total > 0 else None,
            "p90_min": _num(_weighted_quantile(travel[loaded], w[loaded], TRAVEL_QUANTILE), 1),
            "max_min": _num(float(travel[loaded].max()), 1) if loaded.any() else None,
        }
        differ = a != self._against
        changes = {"against": self.against_id, "communes": int(differ.sum()),
                   "patients": _num(float(ctx.follow_up[differ].sum()), 2), "unit": ctx.follow_up_unit,
                   "units": [str(c) for c in ctx.keys[differ]]}
        valid = not any(p["blocking"] for p in problems)
        return Review(rows, problems, summary, changes, valid, (time.perf_counter() - began) * 1000)

    def _cut_message(self, what: str, members: np.ndarray, labels: np.ndarray) -> str:
        ids, counts = np.unique(labels[members], return_counts=True)
        largest = ids[np.argmax(counts)]
        cut = members[labels[members] != largest]
        return (f"contiguity: {what} is in {ids.size} pieces (largest {counts.max():,} communes; cut off: "
                f"{self._labels(cut, 5)})")

    def _group_problems(self, a: np.ndarray, sector_labels: np.ndarray) -> list[dict[str, Any]]:
        """Groups in several pieces, empty, or outside the group tolerance (as the checker)."""
        ctx = self.context
        g = self.worker_group[a]
        count = len(ctx.group_names)
        out: list[dict[str, Any]] = []
        if count < 1:
            return out
        load = np.bincount(g, weights=ctx.workload, minlength=count)
        target = np.bincount(self.worker_group, weights=ctx.targets, minlength=count)
        lower, upper = caseload_band(target, ctx.group_tolerance)
        pieces, labels = _pieces(ctx.edges, g, count, ctx.n)
        for i, name in enumerate(ctx.group_names):
            sectors = [self.sectors[s] for s in np.flatnonzero(self.worker_group == i)]
            if not sectors:  # a group without worker is not one of the plan's groups
                continue
            members = np.flatnonzero(g == i)
            if members.size == 0:
                out.append({"kind": "empty", "sectors": sectors, "blocking": True,
                            "message": f"empty: group {name} has no commune"})
                continue
            if pieces[i] > 1:
                out.append({"kind": "contiguity", "sectors": sectors, "blocking": True,
                            "message": self._cut_message(f"group {name}", members, labels)})
            if not within_band(load[i], lower[i], upper[i]):
                dev = (load[i] - target[i]) / target[i] * 100 if target[i] > 0 else float("inf")
                out.append({"kind": "balance", "sectors": sectors, "blocking": True,
                            "message": f"balance: group {name} carries {load[i]:,.1f} caseload units, {dev:+.1f} % "
                                       f"from its target {target[i]:,.1f} (group tolerance "
                                       f"±{ctx.group_tolerance * 100:g} %)"})
        return out

    def _territory_problems(self, a: np.ndarray) -> list[dict[str, Any]]:
        ctx = self.context
        if ctx.territory_size is None or ctx.territory_cap is None:
            return []
        k = len(self.sectors)
        size = np.bincount(a, weights=ctx.territory_size, minlength=k)
        over = np.flatnonzero(~within_cap(size, ctx.territory_cap))
        checked = ctx.territory_measure == "communes"
        out = []
        for s in over:
            note = "" if checked else "; the solvers keep to it, the independent check does not measure areas"
            out.append({"kind": "territory", "sectors": [self.sectors[s]], "blocking": checked,
                        "message": f"territory: sector {self.sectors[s]} covers {size[s]:,.0f} {ctx.territory_unit}, "
                                   f"above its cap of {ctx.territory_cap[s]:,.1f} (model.territory_measure = "
                                   f"'{ctx.territory_measure}'){note}"})
        return out

    def _keep_together_problems(self, a: np.ndarray) -> list[dict[str, Any]]:
        ctx = self.context
        out = []
        for units in ctx.keep_together:
            groups = sorted({int(g) for g in self.worker_group[a[units]]})
            if len(groups) > 1:
                names = [ctx.group_names[g] for g in groups]
                sectors = sorted({self.sectors[s] for s in a[units]})
                out.append({"kind": "keep_together", "sectors": sectors, "blocking": True,
                            "message": f"keep together: {self._labels(units, 3)} ({units.size} units, "
                                       f"groups.keep_together) are split between groups {', '.join(names)}"})
        return out

    def state(self) -> dict[str, Any]:
        """The design's DraftState: ``{"id", "parent_id", "in_force_id", "assignment": {insee: sector},
        "locked_units", "locked_sectors", "can_undo", "can_redo", "review"}``."""
        with self._lock:
            names = np.array(self.sectors, dtype=object)[self._assignment]
            return {
                "id": self.id, "parent_id": self.parent_id, "in_force_id": self.in_force_id,
                "assignment": dict(zip(map(str, self.context.keys), names.tolist())),
                "locked_units": sorted(self.locked_units), "locked_sectors": sorted(self.locked_sectors),
                "can_undo": self.can_undo, "can_redo": self.can_redo, "review": self.review().as_dict(),
            }

    # -- saving

    def to_plan(self, progress: Progress | None = None) -> EditResult:
        """The parent with the draft's moves, assembled and independently checked:
        ``edit_plan(parent, moves=self.moves(), rebalance=False)``, as ``sectorize plans edit``.

        Raises
        ------
        sectorize.pipeline.edit.EditError
            A sector left without commune (a plan needs a centre in every sector).
        """
        with self._lock:
            moves = self.moves()
        return edit_plan(self.parent, moves=moves, rebalance=False, progress=progress)

    def save(self, registry: Registry, note: str = "", user: str | None = None) -> tuple[str, bool, list[str]]:
        """Store the draft as a plan of ``registry`` (parent: the draft's parent), unpublished.

        The plan is :meth:`to_plan`; :meth:`Registry.add <sectorize.store.registry.Registry.add>`
        checks it again from its tables, whatever the draft's review said, and stores it with
        ``allow_invalid=True``: a plan failing a check is stored *marked invalid*, with its
        violations, for the record. The registry never publishes an invalid plan
        (:meth:`~sectorize.store.registry.Registry.publish` refuses it, and a database trigger
        too), so it is never in force and never routed; fix the draft and save again. The same
        content saved twice with the same note returns the same id.

        Parameters
        ----------
        registry
            The registry holding the parent.
        note
            Free text kept with the plan; the draft id and ``user`` are appended.
        user
            Who saved it.

        Returns
        -------
        plan_id, valid, violations
            As stored (the registry's own check).

        Raises
        ------
        sectorize.pipeline.edit.EditError
            A sector left without commune.
        sectorize.store.registry.RegistryError
            The same content is already stored with another note.
        """
        result = self.to_plan()
        text = " ".join(part for part in [note.strip(), f"(draft {self.id}" + (f", saved by {user})" if user else ")")]
                        if part)
        plan_id = registry.add(result.plan, parent_id=self.parent_id, note=text, allow_invalid=True)
        stored = registry.get(plan_id)
        return plan_id, bool(stored.valid), list(stored.violations)

    # -- persistence

    def to_record(self) -> dict[str, Any]:
        """What is written to disk: ids, dates, moves from the parent and locks (no undo history)."""
        with self._lock:
            return {"format": DRAFT_FORMAT, "id": self.id, "parent_id": self.parent_id,
                    "in_force_id": self.in_force_id, "created": self.created, "updated": self.updated,
                    "moves": self.moves(), "locked_units": sorted(self.locked_units),
                    "locked_sectors": sorted(self.locked_sectors)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any], context: DraftContext, parent: StoredPlan,
                    in_force: StoredPlan | None) -> Draft:
        """The draft written by :meth:`to_record`, with its moves and locks (an empty undo stack).

        Raises
        ------
        ValueError
            A move or lock naming a commune or sector the parent does not have.
        """
        draft = cls(context, parent, in_force, draft_id=str(record["id"]))
        draft.created = str(record.get("created", draft.created))
        draft.updated = str(record.get("updated", draft.updated))
        moves = dict(record.get("moves", {}))
        if moves:
            units = draft._units(list(moves))
            draft._assignment[units] = [draft._sector(s) for s in moves.values()]
        draft._locked_units = set(draft._units(record.get("locked_units", [])).tolist())
        draft._locked_sectors = {draft._sector(s) for s in record.get("locked_sectors", [])}
        return draft


# --------------------------------------------------------------------------- the store


class DraftStore:
    """The drafts of a registry: in memory, written to ``<folder>/drafts/<id>.json`` after every
    change, and reloaded from there after a restart. Thread-safe.

    Parameters
    ----------
    folder
        The registry folder (drafts go to its ``drafts`` sub-folder); ``None``: memory only.
    registry
        The registry to reload the drafts' plans from (default: ``Registry(folder)``).
    max_open
        Drafts kept in memory; beyond, the least recently used is dropped from memory (its file
        stays, and :meth:`get` reloads it).
    max_kept
        Draft files kept; beyond, the least recently changed are deleted.

    Drafts on disk are read when the store is created (their ids and moves); each is rebuilt on
    first :meth:`get` (a few seconds for the first draft of a plan's inputs: :func:`context_for`).
    """

    def __init__(self, folder: str | Path | None = None, *, registry: Registry | None = None,
                 max_open: int = MAX_OPEN, max_kept: int = MAX_KEPT) -> None:
        self.folder = None if folder is None else Path(folder) / "drafts"
        self._registry = registry
        self._registry_folder = None if folder is None else Path(folder)
        self.max_open, self.max_kept = int(max_open), int(max_kept)
        self._lock = threading.Lock()
        self._loading = threading.Lock()
        self._open: OrderedDict[str, Draft] = OrderedDict()
        self._records: dict[str, dict[str, Any]] = {}
        self._plans: OrderedDict[str, StoredPlan] = OrderedDict()
        if self.folder is not None and self.folder.is_dir():
            for path in sorted(self.folder.glob("*.json")):
                try:
                    record = json.loads(path.read_text(encoding="utf-8"))
                    if record.get("format") != DRAFT_FORMAT or record.get("id") != path.stem:
                        raise ValueError(f"format {record.get('format')!r}, id {record.get('id')!r}")
                except (OSError, ValueError) as err:
                    log.warning("draft file %s ignored: %s", path, err)
                    continue
                self._records[path.stem] = record

    # -- plans

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            if self._registry_folder is None:
                raise RuntimeError("this draft store has no registry to reload plans from")
            self._registry = Registry(self._registry_folder, create=False)
        return self._registry

    def _plan(self, plan_id: str) -> StoredPlan:
        with self._lock:
            if plan_id in self._plans:
                self._plans.move_to_end(plan_id)
                return self._plans[plan_id]
        stored = self.registry.get(plan_id)
        self._remember(stored)
        return stored

    def _remember(self, stored: StoredPlan) -> None:
        with self._lock:
            self._plans[stored.id] = stored
            self._plans.move_to_end(stored.id)
            while len(self._plans) > 8:
                self._plans.popitem(last=False)

    # -- drafts

    def open(self, stored: StoredPlan, in_force: StoredPlan | None = None,
             progress: Progress | None = None) -> Draft:
        """A new draft of ``stored``, compared against ``in_force`` (``None``: against ``stored``).

        Raises
        ------
        sectorize.pipeline.edit.EditError, ValueError
            The plan cannot be edited (its scenario's units or team changed).
        """
        context = context_for(stored, progress)
        self._remember(stored)
        if in_force is not None:
            self._remember(in_force)
        draft = Draft(context, stored, in_force)
        with self._lock:
            while draft.id in self._open or draft.id in self._records:
                draft.id = _new_id()
        self._add(draft)
        self._write(draft)
        return draft

    def _add(self, draft: Draft) -> None:
        draft.on_change = self._write
        with self._lock:
            self._open[draft.id] = draft
            self._open.move_to_end(draft.id)
            while len(self._open) > self.max_open:  # its file (written after every change) stays
                self._open.popitem(last=False)

    def get(self, draft_id: str) -> Draft:
        """The draft ``draft_id`` (reloaded from its file when not in memory).

        Raises
        ------
        KeyError
            No such draft (the message says so), or its plan is no longer in the registry.
        """
        with self._lock:
            if draft_id in self._open:
                self._open.move_to_end(draft_id)
                return self._open[draft_id]
            if draft_id not in self._records:
                raise KeyError(f"draft {draft_id!r} not found: it was discarded, or never opened here; open a "
                               "new draft from a plan")
        with self._loading:
            with self._lock:
                if draft_id in self._open:
                    return self._open[draft_id]
                record = self._records[draft_id]
            try:
                parent = self._plan(str(record["parent_id"]))
            except PlanNotFoundError as err:
                raise KeyError(f"draft {draft_id!r}: its plan {record['parent_id']} is no longer in the "
                               f"registry ({err})") from None
            in_force = None
            if record.get("in_force_id"):
                try:
                    in_force = self._plan(str(record["in_force_id"]))
                except PlanNotFoundError:
                    log.warning("draft %s: plan in force %s not found; compared against its parent",
                                draft_id, record["in_force_id"])
            draft = Draft.from_record(record, context_for(parent), parent, in_force)
            self._add(draft)
            return draft

    # -- changes by id (each returns the new review)

    def move(self, draft_id: str, units: Iterable[str], sector: str) -> Review:
        """:meth:`Draft.move` on draft ``draft_id`` (KeyError: no such draft)."""
        return self.get(draft_id).move(units, sector)

    def undo(self, draft_id: str) -> Review | None:
        """:meth:`Draft.undo` on draft ``draft_id``; ``None`` when there is nothing to undo."""
        draft = self.get(draft_id)
        with draft._lock:
            return draft.undo() if draft.can_undo else None

    def redo(self, draft_id: str) -> Review | None:
        """:meth:`Draft.redo` on draft ``draft_id``; ``None`` when there is nothing to redo."""
        draft = self.get(draft_id)
        with draft._lock:
            return draft.redo() if draft.can_redo else None

    def lock(self, draft_id: str, units: Iterable[str] | None = None, sectors: Iterable[str] | None = None,
             locked: bool = True) -> Review:
        """:meth:`Draft.lock` on draft ``draft_id``."""
        return self.get(draft_id).lock(units=units, sectors=sectors, locked=locked)

    def replace(self, draft_id: str, assignment: Mapping[str, str] | np.ndarray, **options: Any) -> Review:
        """:meth:`Draft.replace` on draft ``draft_id`` (``options``: ``label``, ``base_version``)."""
        return self.get(draft_id).replace(assignment, **options)

    def discard(self, draft_id: str) -> None:
        """Forget a draft and delete its file (nothing happens for an unknown id)."""
        with self._lock:
            self._open.pop(draft_id, None)
            self._records.pop(draft_id, None)
        if self.folder is not None:
            (self.folder / f"{draft_id}.json").unlink(missing_ok=True)

    def ids(self) -> list[str]:
        """Every draft id, in memory or on disk."""
        with self._lock:
            return sorted(set(self._open) | set(self._records))

    def __contains__(self, draft_id: object) -> bool:
        with self._lock:
            return draft_id in self._open or draft_id in self._records

    def __len__(self) -> int:
        return len(self.ids())

    def _write(self, draft: Draft) -> None:
        # called with the draft's lock held (on_change): takes the store's lock after it, never before
        if self.folder is None:
            return
        record = draft.to_record()
        with self._lock:
            self._records[draft.id] = record
            stale = []
            if len(self._records) > self.max_kept:
                on_disk = sorted(self._records.items(), key=lambda item: str(item[1].get("updated", "")))
                for old_id, _ in on_disk[: len(self._records) - self.max_kept]:
                    if old_id != draft.id:
                        stale.append(old_id)
                for old_id in stale:
                    self._records.pop(old_id, None)
                    self._open.pop(old_id, None)
        atomic_write_json(self.folder / f"{draft.id}.json", record)
        for old_id in stale:
            (self.folder / f"{old_id}.json").unlink(missing_ok=True)


__all__ = ["Draft", "DraftChangedError", "DraftContext", "DraftStore", "LockedError", "Review", "context_for",
           "context_key"]
