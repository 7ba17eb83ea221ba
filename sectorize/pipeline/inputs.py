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
    """Aggregated demand per unit: the user's file or the synthetic model.

    For ``demand.source = "file"`` the file is read with the scenario's
    ``key``, ``columns`` (by role, pattern or position), ``on_unknown`` and
    ``repair`` (:func:`geodata.demand.read_demand`): ``Demand.repairs`` and
    ``Demand.excluded`` list what was fixed and what was left out, and the
    notes say it too (they reach the run's ``run.json``).

    Raises
    ------
    geodata.demand.DemandError
        Every problem of the file at once (file, line, column, what to do).
    """
    cfg = scenario.demand
    if cfg.source == "file":
        return read_demand(cfg.file, region, key=cfg.key, columns=cfg.columns, on_unknown=cfg.on_unknown,
                           repair=cfg.repair, sheet=cfg.sheet)
    return synthetic_demand(
        region, seed=cfg.seed, referrals_per_year=cfg.referrals_per_year,
        home_care_patients=cfg.home_care_patients,
    )


def workload(scenario: Scenario, demand: Demand) -> pd.Series:
    """Caseload weight of each unit: ``sum(weight[c] * demand[c])`` over ``demand.weights``.

    In the units of the demand (e.g. referrals/year + 0.5 x home-care
    patients with the default weights).

    Raises :class:`ScenarioError` naming ``demand.weights.<column>`` when a
    weighted column is not in the demand table.
    """
    table = demand.table
    missing = [c for c in scenario.demand.weights if c not in table.columns]
    if missing:
        hint = ("; name the file's column of each role in [demand.columns], e.g. "
                f"{missing[0]} = \"<header or pattern>\"" if scenario.demand.source == "file" else "")
        raise ScenarioError(
            f"demand.weights.{missing[0]}: column(s) {missing} not in the demand ({demand.source}); "
            f"available columns: {list(table.columns)}{hint}"
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


#: Lyon's 9 municipal arrondissements (the ``"lyon_arrondissements"`` variant's units for 69123).
LYON_ARRONDISSEMENTS = tuple(f"6938{i}" for i in range(1, 10))

#: What :func:`territory_sizes` measures, and the unit it names in messages.
TERRITORY_UNITS = {"communes": "communes", "area_km2": "km²"}


def territory_sizes(scenario: Scenario, region: Region) -> np.ndarray | None:
    """``(n,)`` the territory of each unit for the cap of ``model.territory_measure`` (in the
    order of ``region.units``), or ``None`` for ``"none"``.

    ``"communes"``: 1 per unit (each of Lyon's arrondissements counts as one);
    ``"area_km2"``: the ``area_km2`` column when the region has one (the shipped AURA
    data), else the polygons' area on an equal-area projection (EPSG:6933), km².
    """
    measure = scenario.model.territory_measure
    units = region.units
    if measure == "none":
        return None
    if measure == "communes":
        return np.ones(len(units))
    if "area_km2" in units.columns and units["area_km2"].notna().all():
        return units["area_km2"].to_numpy(dtype=float)
    return units.geometry.to_crs(6933).area.to_numpy(dtype=float) / 1e6


def territory_caps(scenario: Scenario, sizes: np.ndarray | None, fte: np.ndarray) -> np.ndarray | None:
    """``(W,)`` the territory cap of each worker, ``per FTE x fte``, in the unit of ``sizes``;
    ``None`` without a cap. The cap per FTE is ``model.territory_per_fte``, or
    ``model.territory_multiple`` x the region's mean per FTE (``sizes.sum() / fte.sum()``).

    >>> from sectorize.config.scenario import default_scenario
    >>> territory_caps(default_scenario(), np.ones(4033), np.array([1.0] * 8 + [0.8] * 2 + [0.5]))[-3:].round(1)
    array([798.6, 798.6, 499.1])
    """
    if sizes is None:
        return None
    model = scenario.model
    fte = np.asarray(fte, dtype=float)
    per_fte = model.territory_per_fte
    if per_fte is None:
        per_fte = model.territory_multiple * float(np.sum(sizes)) / float(fte.sum())
    return per_fte * fte


def keep_together_keys(scenario: Scenario, keys: pd.Index, region_name: str = "the region") -> list[list[str]]:
    """The sets of ``groups.keep_together`` as unit keys of the region, each sorted; sets of one
    unit are dropped (nothing to keep together).

    Not set: Lyon, i.e. its arrondissements when the region has them (no set when Lyon is one
    commune or absent). A key is a unit of the region; ``"69123"`` stands for the arrondissements
    when the region has them, an arrondissement code for ``"69123"`` when it has Lyon whole.

    Raises
    ------
    ScenarioError
        Naming ``groups.keep_together[i]`` when a key is not a unit of the region.

    >>> import pandas as pd
    >>> from sectorize.config.scenario import default_scenario
    >>> keep_together_keys(default_scenario(), pd.Index(["69381", "69382", "01001"]))
    [['69381', '69382']]
    """
    present = set(keys)
    sets = scenario.groups.keep_together
    arrondissements = [k for k in LYON_ARRONDISSEMENTS if k in present]
    if sets is None:
        return [arrondissements] if len(arrondissements) > 1 else []
    out: list[list[str]] = []
    for i, codes in enumerate(sets):
        found: set[str] = set()
        for code in codes:
            if code in present:
                found.add(code)
            elif code == LYON and arrondissements:
                found.update(arrondissements)
            elif code in LYON_ARRONDISSEMENTS and LYON in present:
                found.add(LYON)
            else:
                raise ScenarioError(f"groups.keep_together[{i}]: {code!r} is not a unit of the region "
                                    f"({region_name}); give unit keys (INSEE codes) of the region")
        if len(found) > 1:
            out.append(sorted(found))
    return out


def keep_together_units(scenario: Scenario, region: Region) -> list[list[int]]:
    """The sets of :func:`keep_together_keys` as unit numbers (solver order), each sorted.

    Raises
    ------
    ScenarioError
        Naming ``groups.keep_together[i]`` when a key is not a unit of the region or a set
        is not one connected piece.
    """
    index = {k: i for i, k in enumerate(region.units.index)}
    out: list[list[int]] = []
    sets = keep_together_keys(scenario, region.units.index, region.name)
    for found in sets:
        if not nx.is_connected(region.graph.subgraph(found)):
            raise ScenarioError(f"groups.keep_together: the units {found} are not one connected piece of "
                                "the region; add the units between them, or split the set")
        out.append(sorted(index[k] for k in found))
    return out


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

    def locked(self) -> dict[int, int]:
        """The scenario's ``[[locks]]`` as ``{unit number: worker number}`` for the solvers.

        Raises :class:`ScenarioError` naming ``locks[i].insee`` for a code that
        is not a unit of the region.
        """
        index, workers = self.index, {wid: i for i, wid in enumerate(self.team.ids)}
        out = {}
        for i, lock in enumerate(self.scenario.locks):
            if lock.insee not in index:
                hint = (" (with the Lyon arrondissements variant, lock 69381..69389 instead)"
                        if lock.insee == LYON else "")
                raise ScenarioError(f"locks[{i}].insee: {lock.insee!r} is not a unit of the region "
                                    f"({self.region.name}){hint}")
            out[index[lock.insee]] = workers[lock.worker]
        return out

    def solver_options(self) -> dict[str, Any]:
        """The scenario's model settings as keyword arguments of the nested solvers.

        The one place where ``[model]`` reaches :mod:`solvers`: tolerances,
        objective (``"auto"`` resolved: :meth:`ModelConfig.resolve_objective`), base travel, cost
        weights, labels, backend, time limit (seconds), seed, whether the budget is counted in work
        (``deterministic``, :mod:`solvers.budget`), the tie-break, the territory caps
        (``size`` per unit and ``max_size`` per worker: :func:`territory_sizes`,
        :func:`territory_caps`) and, from ``[groups]``, the units kept in one group
        (``keep_together``: :func:`keep_together_units`). :func:`solvers.solve_nested` and
        :func:`solvers.resolve_nested` both accept every key.
        """
        model = self.scenario.model
        units, team = self.region.units, self.team
        boundary = model.tie_break_slack is not None and model.tie_break_measure == "boundary"
        sizes = territory_sizes(self.scenario, self.region)
        return dict(
            tolerance=model.tolerance,
            group_tolerance=model.group_tolerance,
            objective=self.objective,
            base_travel=team.base_travel,
            cost_weight=self.cost_weight,
            labels=tuple(f"{k} {n}" for k, n in zip(self.keys, units["name"])),
            worker_labels=tuple(f"{i} ({n})" for i, n in zip(team.ids, team.names)),
            group_labels=tuple(self.scenario.groups.names),
            backend=model.backend,
            time_limit_s=model.time_limit_s,
            seed=model.seed,
            deterministic=model.deterministic,
            tie_break_slack=model.tie_break_slack,
            tie_break_weight=TIE_BREAK_WEIGHT if boundary else None,
            size=sizes,
            max_size=territory_caps(self.scenario, sizes, team.fte),
            size_unit=TERRITORY_UNITS.get(model.territory_measure, "size units"),
            keep_together=keep_together_units(self.scenario, self.region),
        )

    @property
    def objective(self) -> str:
        """The solver's objective, ``"pmedian"`` or ``"base"``: ``model.objective`` with ``"auto"``
        resolved against the team (:meth:`sectorize.config.scenario.ModelConfig.resolve_objective`)."""
        return self.scenario.model.resolve_objective(self.scenario.team)


def load_inputs(scenario: Scenario, progress: Progress | None = None, demand: Demand | None = None) -> Inputs:
    """Read the region, demand, travel times and team a scenario names.

    ``progress`` receives one line per input read. ``demand`` replaces the
    scenario's demand (e.g. the counts a previous plan was drawn with, for a
    team-only re-run); its table must be indexed by the region's unit codes. Raises
    :class:`~sectorize.config.scenario.ScenarioError` or
    :class:`geodata.demand.DemandError` naming the key, file or row at fault.
    """
    say = progress or (lambda line: None)
    region = load_region(scenario)
    say(f"region: {region.name}, {len(region.units):,} units, {region.graph.number_of_edges():,} contiguity edges")
    if demand is None:
        demand = load_demand(scenario, region)
    else:
        demand = Demand(demand.table.reindex(region.units.index).fillna(0.0), demand.source, list(demand.notes))
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
