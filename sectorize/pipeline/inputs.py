"""The one translation of a scenario into solver inputs, used by every command.

:func:`load_inputs` reads what a scenario names (region, demand, travel times,
team) and :meth:`Inputs.solver_options` turns the scenario's ``[model]``
settings into the keyword arguments shared by :func:`solvers.solve_nested`
(``run``) and :func:`solvers.resolve_nested` (``rerun``). ``run``, ``rerun``,
``sweep``, ``pareto`` and ``pathology`` all go through here, so a model
setting reaches every command once :meth:`Inputs.solver_options` forwards it.

Each loader is also a plain function a notebook can call on its own::

    from sectorize import default_scenario
    from sectorize.pipeline import inputs
    s = default_scenario()
    region = inputs.load_region(s)
    demand = inputs.load_demand(s, region)
    caseload = inputs.workload(s, demand)      # caseload weight per commune
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import networkx as nx
import numpy as np
import pandas as pd

from geodata.demand import Demand, read_demand, synthetic_demand
from geodata.regions import LYON, Region, load_aura, load_units
from geodata.travel import estimate_travel_times, read_travel_matrix
from sectorize.config.scenario import Scenario, ScenarioError
from solvers.problem import DenseTravelTimes, TravelTimes

Progress = Callable[[str], None]
"""Receives one progress line at a time (``print`` will do)."""

#: Edge attribute of the contiguity graph the boundary tie-break sums (metres of shared border).
TIE_BREAK_WEIGHT = "border_m"


def load_region(scenario: Scenario) -> Region:
    """The units of the scenario: the shipped AURA communes or the user's file."""
    cfg = scenario.region
    if cfg.units is not None:
        region = load_units(cfg.units, cfg.key, name=cfg.name, population=cfg.population, layer=cfg.layer)
        region.vintage = region.vintage or f"user units ({Path(cfg.units).name})"
        return region
    return load_aura(cfg.variant)


#: Above this many units the travel-time estimate is not densified in memory.
DENSE_LIMIT = 8000


def input_hashes(scenario: Scenario, region: Region, demand: Demand, travel: TravelTimes, team: Team) -> dict[str, str]:
    """SHA-256 (hex) of each input of a solve, so that two plans can be compared by their inputs.

    ``units``: keys and geometries (WKB); ``demand``: the demand table as CSV;
    ``travel``: the travel minutes, row by row (float32); ``team``: worker ids,
    FTE, groups and bases; ``scenario``: the effective scenario text.
    """
    from sectorize.config.scenario import dump_scenario

    def digest(*parts: bytes) -> str:
        h = hashlib.sha256()
        for part in parts:
            h.update(part)
        return h.hexdigest()

    units = region.units
    geometry = b"".join(g.wkb for g in units.geometry)
    travel_hash = hashlib.sha256()
    for start in range(0, travel.n, 512):
        rows = travel.rows(np.arange(start, min(start + 512, travel.n)))
        travel_hash.update(np.ascontiguousarray(rows, dtype=np.float32).tobytes())
    team_facts = {
        "ids": list(team.ids), "fte": [float(f) for f in team.fte], "fixed_group": list(team.fixed_group),
        "base_key": list(team.base_key), "base_lon": [round(float(x), 6) for x in team.base_lon],
        "base_lat": [round(float(x), 6) for x in team.base_lat],
    }
    return {
        "units": digest("\n".join(map(str, units.index)).encode(), geometry),
        "demand": digest(demand.table.sort_index().to_csv().encode()),
        "travel": travel_hash.hexdigest(),
        "team": digest(json.dumps(team_facts, sort_keys=True).encode()),
        "scenario": digest(dump_scenario(scenario).encode()),
    }


def load_demand(scenario: Scenario, region: Region) -> Demand:
    """Aggregated demand per unit: the user's file or the synthetic model."""
    cfg = scenario.demand
    if cfg.source == "file":
        return read_demand(cfg.file, region, key=cfg.key, columns=cfg.columns, on_unknown=cfg.on_unknown)
    return synthetic_demand(
        region, seed=cfg.seed, referrals_per_year=cfg.referrals_per_year,
        home_care_patients=cfg.home_care_patients,
    )


def workload(scenario: Scenario, demand: Demand) -> pd.Series:
    """Caseload weight of each unit: ``sum(weight[c] * demand[c])`` over ``demand.weights``.

    Raises :class:`ScenarioError` naming ``demand.weights.<column>`` when a
    weighted column is not in the demand table.
    """
    table = demand.table
    missing = [c for c in scenario.demand.weights if c not in table.columns]
    if missing:
        raise ScenarioError(
            f"demand.weights: column(s) {missing} not in the demand ({demand.source}); "
            f"available columns: {list(table.columns)}"
        )
    total = sum(float(w) * table[c].astype(float) for c, w in scenario.demand.weights.items())
    return pd.Series(np.asarray(total, dtype=float), index=table.index, name="workload")


def load_travel(scenario: Scenario, region: Region, progress: Progress | None = None) -> TravelTimes:
    """Travel minutes between units: the external matrix if configured, else the estimate.

    The estimate is densified in memory (float32) for regions up to
    :data:`DENSE_LIMIT` units, which makes the solver's many row lookups cheap,
    and kept for the next scenario of the same region (same units, polygons
    and contiguity) in this process.
    """
    cfg = scenario.travel
    if cfg.matrix is not None:
        fallback = estimate_travel_times(region) if cfg.fallback_to_estimate else None
        return read_travel_matrix(cfg.matrix, region.units.index, fallback=fallback)
    key = _region_key(region)
    if key not in _TRAVEL_CACHE:  # the estimate takes seconds; scenarios of one region share it
        estimate = estimate_travel_times(region)
        _TRAVEL_CACHE.clear()
        _TRAVEL_CACHE[key] = _Dense(estimate) if region.units.shape[0] <= DENSE_LIMIT else estimate
    return _TRAVEL_CACHE[key]


#: The last travel-time estimate built, keyed by :func:`_region_key` (one region kept in memory).
_TRAVEL_CACHE: dict[str, TravelTimes] = {}


def _region_key(region: Region) -> str:
    """A fingerprint of a region's units and contiguity: keys, geometries and edges."""
    h = hashlib.sha256()
    h.update("\n".join(map(str, region.units.index)).encode())
    h.update(b"".join(g.wkb for g in region.units.geometry))
    h.update(repr(sorted((str(a), str(b)) for a, b in region.graph.edges)).encode())
    return h.hexdigest()


class _Dense(DenseTravelTimes):
    """A densified estimate that keeps the estimate's description and point rows."""

    def __init__(self, estimate):
        super().__init__(np.asarray(estimate.dense(), dtype=np.float32))
        object.__setattr__(self, "estimate", estimate)
        object.__setattr__(self, "source", getattr(estimate, "source", "estimate"))

    def from_points(self, lon, lat):
        return self.estimate.from_points(lon, lat)


@dataclass(frozen=True)
class Team:
    """The workers as arrays, in scenario order.

    ``fte`` (W,), ``fixed_group`` (W,) required group index or ``None``,
    ``base_key`` (unit key or ``""``), ``base_lon``/``base_lat`` (degrees), ``base_travel`` (W, n)
    minutes from each base to every unit.
    """

    ids: tuple[str, ...]
    names: tuple[str, ...]
    fte: np.ndarray
    fixed_group: tuple[int | None, ...]
    base_key: tuple[str, ...]
    base_lon: np.ndarray
    base_lat: np.ndarray
    base_travel: np.ndarray


def build_team(scenario: Scenario, region: Region, travel: TravelTimes) -> Team:
    """Resolve the workers' bases and compute the minutes from each base to every unit.

    Base codes are resolved with :func:`resolve_base` (Lyon and its
    arrondissements); the plan reports the resolved unit.
    """
    units = region.units
    keys = units.index
    workers = scenario.team.workers
    names = scenario.groups.names
    fixed = tuple(None if w.group is None else names.index(w.group) for w in workers)
    base_key, lon, lat = [], [], []
    for i, w in enumerate(workers):
        if w.base_lon is not None:
            base_key.append("")
            lon.append(w.base_lon)
            lat.append(w.base_lat)
            continue
        key = w.base or scenario.team.default_base
        where = f"team.workers[{i}].base" if w.base else "team.default_base"
        resolved = resolve_base(key, units)
        if resolved is None:
            raise ScenarioError(
                f"{where}: base {key!r} is not a unit of the region ({region.name}); "
                "give an INSEE code of the region or base_lon/base_lat"
            )
        key = resolved
        base_key.append(key)
        lon.append(float(units.at[key, "lon"]))
        lat.append(float(units.at[key, "lat"]))
    index = {k: i for i, k in enumerate(keys)}
    rows = np.empty((len(workers), len(keys)))
    for i, key in enumerate(base_key):
        if key:
            rows[i] = travel.rows(np.array([index[key]]))[0]
        else:
            rows[i] = _from_points(travel, np.array([lon[i]]), np.array([lat[i]]))[0]
    return Team(
        ids=tuple(w.id for w in workers),
        names=tuple(w.name for w in workers),
        fte=np.array([w.fte for w in workers]),
        fixed_group=fixed,
        base_key=tuple(base_key),
        base_lon=np.array(lon),
        base_lat=np.array(lat),
        base_travel=rows,
    )


def resolve_base(key: str, units: pd.DataFrame) -> str | None:
    """The unit key a base code stands for in ``units``, or ``None``.

    A code of the region is itself. Lyon's arrondissement codes (69381..69389)
    are read as Lyon (69123) when the region has Lyon as one commune, and Lyon
    (69123) is read as its most populous arrondissement when the region has
    the arrondissements.
    """
    keys = units.index
    if key in keys:
        return key
    if key.startswith("6938") and LYON in keys:
        return LYON
    if key == LYON:
        parts = [k for k in keys if k.startswith("6938")]
        if parts:
            return str(units.loc[parts, "population"].idxmax())
    return None


def _from_points(travel: TravelTimes, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    fn = getattr(travel, "from_points", None)
    if fn is None:
        raise ScenarioError(
            "team.workers: a base given as coordinates needs travel times from points; "
            "the external travel matrix has none: give the base as a unit key instead"
        )
    return np.asarray(fn(lon, lat), dtype=float)


def integer_graph(graph: nx.Graph, index: dict[str, int]) -> nx.Graph:
    """The contiguity graph over ``0..n-1`` (solver numbering), keeping ``border_m``."""
    g = nx.Graph()
    g.add_nodes_from(range(len(index)))
    g.add_edges_from((index[a], index[b], {"border_m": d.get("border_m", 0.0)}) for a, b, d in graph.edges(data=True))
    return g


@dataclass(frozen=True)
class Inputs:
    """Everything a solve of one scenario needs, read once and in solver numbering.

    Units are numbered ``0..n-1`` in the order of ``region.units.index``
    (``keys``); ``graph`` is the contiguity graph over those integers.

    Attributes
    ----------
    scenario, region, demand, travel, team
        The scenario and what it names (see the loaders of this module).
    load
        Caseload weight per unit (:func:`workload`), indexed by unit key.
    workload
        ``(n,)`` the same, in solver order (caseload units per year).
    cost_weight
        ``(n,)`` the travel objective's weight per unit: caseload plus
        ``model.sparse_weight`` x the mean caseload, so that an empty commune
        still counts its distance to the sector centre.
    """

    scenario: Scenario
    region: Region
    demand: Demand
    load: pd.Series
    travel: TravelTimes
    team: Team
    graph: nx.Graph
    workload: np.ndarray
    cost_weight: np.ndarray

    @property
    def keys(self) -> pd.Index:
        """Unit keys (INSEE codes for AURA) in solver order."""
        return self.region.units.index

    @property
    def index(self) -> dict[str, int]:
        """Solver number of each unit key."""
        return {k: i for i, k in enumerate(self.keys)}

    def solver_options(self) -> dict[str, Any]:
        """The scenario's model settings as keyword arguments of the nested solvers.

        The one place where ``[model]`` reaches :mod:`solvers`: tolerances,
        objective, base travel, cost weights, labels, backend, time limit
        (seconds), seed and the tie-break. :func:`solvers.solve_nested` and
        :func:`solvers.resolve_nested` both accept every key.
        """
        model = self.scenario.model
        units, team = self.region.units, self.team
        boundary = model.tie_break_slack is not None and model.tie_break_measure == "boundary"
        return dict(
            tolerance=model.tolerance,
            group_tolerance=model.group_tolerance,
            objective=model.objective,
            base_travel=team.base_travel,
            cost_weight=self.cost_weight,
            labels=tuple(f"{k} {n}" for k, n in zip(self.keys, units["name"])),
            worker_labels=tuple(f"{i} ({n})" for i, n in zip(team.ids, team.names)),
            group_labels=tuple(self.scenario.groups.names),
            backend=model.backend,
            time_limit_s=model.time_limit_s,
            seed=model.seed,
            tie_break_slack=model.tie_break_slack,
            tie_break_weight=TIE_BREAK_WEIGHT if boundary else None,
        )


def load_inputs(scenario: Scenario, progress: Progress | None = None) -> Inputs:
    """Read the region, demand, travel times and team a scenario names.

    ``progress`` receives one line per input read. Raises
    :class:`~sectorize.config.scenario.ScenarioError` or
    :class:`geodata.demand.DemandError` naming the key, file or row at fault.
    """
    say = progress or (lambda line: None)
    region = load_region(scenario)
    say(f"region: {region.name}, {len(region.units):,} units, {region.graph.number_of_edges():,} contiguity edges")
    demand = load_demand(scenario, region)
    load = workload(scenario, demand)
    say(f"demand: {demand.source}; total caseload {load.sum():,.1f}")
    travel = load_travel(scenario, region)
    say(f"travel times: {getattr(travel, 'source', type(travel).__name__)}")
    team = build_team(scenario, region, travel)
    keys = region.units.index
    w = load.reindex(keys).to_numpy(dtype=float)
    cost_weight = w + scenario.model.sparse_weight * (w.mean() if w.size else 0.0)
    graph = integer_graph(region.graph, {k: i for i, k in enumerate(keys)})
    return Inputs(scenario, region, demand, load, travel, team, graph, w, cost_weight)
