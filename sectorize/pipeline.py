"""The sectorization pipeline: scenario in, checked :class:`~sectorize.plan.Plan` out.

Each step is a plain function a notebook can call on its own::

    from sectorize import pipeline, scenario
    s = scenario.default_scenario()
    region = pipeline.load_region(s)
    demand = pipeline.load_demand(s, region)
    plan = pipeline.run(s)             # all steps, with the checks

Steps: load the region (units + contiguity graph), the demand (aggregated
counts per commune), the travel times; turn the team into FTE-proportional
targets and worker groups; solve groups then sectors
(:func:`solvers.hierarchy.solve_nested`); check the result independently of
the solver (:func:`solvers.check.check_partition`); return the plan.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd

from geodata.demand import Demand, read_demand, synthetic_demand
from geodata.regions import LYON, Region, load_aura, load_units
from geodata.travel import estimate_travel_times, read_travel_matrix
from sectorize.plan import Plan
from sectorize.scenario import Scenario, ScenarioError
from solvers.check import check_partition
from solvers.hierarchy import solve_nested
from solvers.problem import DenseTravelTimes, TravelTimes

Progress = Callable[[str], None]

#: Above this many units the travel-time estimate is not densified in memory.
DENSE_LIMIT = 8000


def load_region(scenario: Scenario) -> Region:
    """The units of the scenario: the shipped AURA communes or the user's file."""
    cfg = scenario.region
    if cfg.units is not None:
        region = load_units(cfg.units, cfg.key, name=cfg.name, population=cfg.population, layer=cfg.layer)
        region.vintage = region.vintage or f"user units ({Path(cfg.units).name})"
        return region
    return load_aura(cfg.variant)


def input_hashes(scenario: Scenario, region: Region, demand: Demand, travel: TravelTimes, team: Team) -> dict[str, str]:
    """SHA-256 (hex) of each input of a solve, so that two plans can be compared by their inputs.

    ``units``: keys and geometries (WKB); ``demand``: the demand table as CSV;
    ``travel``: the travel minutes, row by row (float32); ``team``: worker ids,
    FTE, groups and bases; ``scenario``: the effective scenario text.
    """
    from sectorize.scenario import dump_scenario

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


def run(scenario: Scenario, progress: Progress | None = None) -> Plan:
    """Run the whole sectorization and check the result.

    Parameters
    ----------
    scenario
        A validated scenario (see :func:`sectorize.scenario.load_scenario`).
    progress
        Receives one line per step and per solver improvement.

    Returns
    -------
    Plan
        With ``plan.violations`` empty when every independent check passed.

    Raises
    ------
    solvers.InfeasibleError
        When no plan meets the caseload tolerance; the message names the
        group or sector and the reason.
    """
    say = progress or (lambda line: None)
    clock = time.monotonic()

    def step(line: str) -> None:
        say(f"[{time.monotonic() - clock:5.1f} s] {line}")

    region = load_region(scenario)
    step(f"region: {region.name}, {len(region.units):,} units, {region.graph.number_of_edges():,} contiguity edges")
    demand = load_demand(scenario, region)
    load = workload(scenario, demand)
    step(f"demand: {demand.source}; total caseload {load.sum():,.1f}")
    travel = load_travel(scenario, region)
    step(f"travel times: {getattr(travel, 'source', type(travel).__name__)}")
    team = build_team(scenario, region, travel)
    units = region.units
    keys = units.index
    index = {k: i for i, k in enumerate(keys)}
    graph = _integer_graph(region.graph, index)
    w = load.reindex(keys).to_numpy(dtype=float)
    cost_weight = w + scenario.model.sparse_weight * (w.mean() if w.size else 0.0)
    group_names = tuple(scenario.groups.names)
    labels = tuple(f"{k} {n}" for k, n in zip(keys, units["name"]))
    worker_labels = tuple(f"{i} ({n})" for i, n in zip(team.ids, team.names))
    step(f"solving: {len(team.ids)} workers in {len(group_names)} groups, "
         f"tolerance ±{scenario.model.tolerance:.0%}, backend {scenario.model.backend}, "
         f"time limit {scenario.model.time_limit_s:g} s")
    nested = solve_nested(
        graph, w, travel, team.fte, scenario.groups.count,
        fixed_groups=list(team.fixed_group),
        tolerance=scenario.model.tolerance,
        group_tolerance=scenario.model.group_tolerance,
        objective=scenario.model.objective,
        base_travel=team.base_travel,
        cost_weight=cost_weight,
        labels=labels, worker_labels=worker_labels, group_labels=group_names,
        backend=scenario.model.backend,
        time_limit_s=scenario.model.time_limit_s,
        seed=scenario.model.seed,
        progress=lambda line: step(line),
        tie_break_slack=scenario.model.tie_break_slack,
        tie_break_weight=(TIE_BREAK_WEIGHT if scenario.model.tie_break_slack is not None
                          and scenario.model.tie_break_measure == "boundary" else None),
    )
    step(f"solved in {nested.time_s:.1f} s, objective {nested.objective:,.0f} caseload-minutes")
    plan = _assemble(scenario, region, demand, w, travel, team, nested)
    plan.inputs = input_hashes(scenario, region, demand, travel, team)
    plan.vintage = region.vintage
    plan.violations = check(plan)
    step("checks: " + ("all passed" if not plan.violations else f"{len(plan.violations)} violation(s)"))
    return plan


def run_and_write(scenario: Scenario, progress: Progress | None = None) -> tuple[Path, Plan]:
    """Run the scenario, draw its map, write a new run folder.

    Returns ``(folder, plan)``. The folder (under ``scenario.output.dir``)
    holds the sector and postcode tables, the map, the KPI reports and the
    effective scenario; it is written completely or not at all, and earlier
    runs are never overwritten (see :func:`sectorize.export.write_outputs`).
    """
    from sectorize.export import write_outputs
    from sectorize.maps import sector_map

    say = progress or (lambda line: None)
    plan = run(scenario, progress=say)
    say("drawing the map")
    page = sector_map(plan, tiles=scenario.map.tiles, simplify_m=scenario.map.simplify_m,
                      suppress_below=scenario.map.suppress_below).get_root().render()
    folder = write_outputs(plan, scenario.output.dir, map_html=page)
    return folder, plan


def _integer_graph(graph: nx.Graph, index: dict[str, int]) -> nx.Graph:
    """The contiguity graph over ``0..n-1`` (solver numbering), keeping ``border_m``."""
    g = nx.Graph()
    g.add_nodes_from(range(len(index)))
    g.add_edges_from((index[a], index[b], {"border_m": d.get("border_m", 0.0)}) for a, b, d in graph.edges(data=True))
    return g


def sector_ids(worker_group: np.ndarray, group_names: tuple[str, ...]) -> list[str]:
    """Sector id of each worker: group name + rank in the group (``"A1"``, ``"A2"``, ...)."""
    count: dict[int, int] = {}
    ids = []
    for g in worker_group:
        count[int(g)] = count.get(int(g), 0) + 1
        ids.append(f"{group_names[int(g)]}{count[int(g)]}")
    return ids


#: Edge attribute of the contiguity graph the boundary tie-break sums (metres of shared border).
TIE_BREAK_WEIGHT = "border_m"


def tie_break_summary(scenario: Scenario, nested) -> dict:
    """What the tie-break did, summed over the solves that drew sectors (one when
    sectors come first, one per group otherwise): cut edges and border between
    sectors (km) before and after, and the objective before and after it."""
    done = [sol.tie_break for sol in nested.solutions if sol.tie_break is not None]
    out: dict = {"slack": scenario.model.tie_break_slack, "measure": scenario.model.tie_break_measure,
                 "solves": len(done)}
    if not done:
        return out
    out.update(
        cut_edges_before=int(sum(t.edges_before for t in done)),
        cut_edges_after=int(sum(t.edges_after for t in done)),
        objective_before=float(sum(t.objective_before for t in done)),
        objective_after=float(sum(t.objective for t in done)),
        changed=any(t.changed for t in done),
    )
    if scenario.model.tie_break_measure == "boundary":
        out.update(boundary_km_before=round(sum(t.cut_before for t in done) / 1000.0, 3),
                   boundary_km_after=round(sum(t.cut_after for t in done) / 1000.0, 3))
    return out


def _assemble(scenario, region, demand, w, travel, team, nested, sector_names=None) -> Plan:
    units = region.units
    keys = units.index
    group_names = tuple(scenario.groups.names)
    sectors = list(sector_names) if sector_names is not None else sector_ids(nested.worker_group, group_names)
    worker = nested.sector
    centre_rows = travel.rows(nested.centre)
    if scenario.model.objective == "base":
        minutes = team.base_travel[worker, np.arange(len(keys))]
    else:
        minutes = centre_rows[worker, np.arange(len(keys))]
    cols = [c for c in ("name", "dep", "population", "postcodes") if c in units.columns]
    table = units[cols].copy()
    for c in demand.table.columns:
        table[c] = demand.table[c].reindex(keys).to_numpy()
    table["workload"] = w
    table["group"] = [group_names[g] for g in nested.group]
    table["sector"] = [sectors[s] for s in worker]
    table["worker_id"] = [team.ids[s] for s in worker]
    table["worker_name"] = [team.names[s] for s in worker]
    table["travel_min"] = np.round(minutes, 1)
    table = gpd.GeoDataFrame(table, geometry=units.geometry, crs=units.crs)
    targets = w.sum() * team.fte / team.fte.sum()
    workers = pd.DataFrame({
        "worker_id": team.ids,
        "worker_name": team.names,
        "fte": team.fte,
        "group": [group_names[g] for g in nested.worker_group],
        "sector": sectors,
        "target": targets,
        "centre": [keys[c] for c in nested.centre],
        "base_key": team.base_key,
        "base_lon": team.base_lon,
        "base_lat": team.base_lat,
    })
    # a bound holds for the whole plan only when one solve drew every sector (sectors first)
    first = nested.solutions[0] if nested.solutions else None
    bound = first.bound if first is not None and nested.strategy == "sectors first" else None
    gap = first.gap if bound is not None else None
    solve = {
        "backend": scenario.model.backend,
        "objective": nested.objective,
        "objective_unit": "caseload x minutes (demand-weighted travel time, plus the sparse-area floor)",
        "bound": bound,
        "gap": gap,
        "status": first.status if bound is not None else "feasible",
        "time_s": round(nested.time_s, 2),
        "time_limit_s": scenario.model.time_limit_s,
        "strategy": nested.strategy,
        "stages": [
            {"stage": "sectors" if nested.strategy == "sectors first"
             else ("groups" if i == 0 else f"sectors of group {group_names[i - 1]}"),
             "backend": sol.backend, "objective": sol.objective, "time_s": round(sol.time_s, 2)}
            for i, sol in enumerate(nested.solutions)
        ],
        "log": nested.log[-40:],
    }
    if scenario.model.tie_break_slack is not None:
        solve["tie_break"] = tie_break_summary(scenario, nested)
    notes = [*region.notes, *demand.notes]
    if hasattr(travel, "notes"):
        notes.extend(travel.notes)
    return Plan(scenario=scenario, units=table, workers=workers, graph=region.graph,
                solve=solve, notes=notes)


def check(plan: Plan) -> list[str]:
    """Independent checks of a plan, from its tables only (not the solver's state).

    Every unit has exactly one group and one sector; every sector belongs to
    one group; every sector and every group is connected in the contiguity
    graph; every sector's caseload is within ±tolerance of its target and
    every group's within ±group tolerance of its workers' summed targets.
    Returns the violations as sentences (empty when the plan is valid).
    """
    s = plan.scenario
    units, workers = plan.units, plan.workers
    problems: list[str] = []
    missing = units["sector"].isna() | units["group"].isna()
    if missing.any():
        problems.append(f"{int(missing.sum())} unit(s) without a sector, e.g. {list(units.index[missing][:5])}")
        return problems
    if set(units.index) != set(plan.graph.nodes):
        problems.append("the sector table and the contiguity graph do not cover the same units")
        return problems
    mixed = units.groupby("sector")["group"].nunique()
    for sector in mixed.index[mixed > 1]:
        problems.append(f"sector {sector} spans several groups")
    keys = list(units.index)
    graph = _integer_graph(plan.graph, {k: i for i, k in enumerate(keys)})
    labels = [f"{k} {n}" for k, n in zip(keys, units["name"])]
    load = units["workload"].to_numpy(dtype=float)
    tol, gtol = s.model.tolerance, s.model.group_tolerance
    sector_target = workers.set_index("sector")["target"]
    group_target = workers.groupby("group", sort=False)["target"].sum()
    for column, targets, t, kind in (
        ("sector", sector_target, tol, "sector"),
        ("group", group_target, gtol, "group"),
    ):
        names = list(targets.index)
        part_of = units[column].map({n: i for i, n in enumerate(names)})
        if part_of.isna().any():
            problems.append(f"{kind} values not in the team: {sorted(set(units[column]) - set(names))}")
            continue
        problems += check_partition(
            graph,
            part_of.to_numpy(dtype=int),
            load,
            lower=targets.to_numpy() * (1 - t),
            upper=targets.to_numpy() * (1 + t),
            unit_label=labels.__getitem__,
            part_label=lambda i, names=names, kind=kind: f"{kind} {names[i]}",
        )
    return problems
