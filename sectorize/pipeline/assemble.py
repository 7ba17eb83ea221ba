"""From a solver's nested solution to a checked :class:`~sectorize.plan.Plan`.

:func:`assemble` builds the plan's tables in the scenario's words (sector ids,
worker names, travel minutes); :func:`check` re-checks a plan from its tables
alone, independently of the solver: coverage, nesting, contiguity and the
caseload bands.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from sectorize.config.scenario import Scenario
from sectorize.pipeline.inputs import Inputs, input_hashes, integer_graph, keep_together_keys, territory_caps
from sectorize.plan import Plan
from solvers import NestedSolution, check_partition
from solvers.problem import caseload_band


def sector_ids(worker_group: np.ndarray, group_names: tuple[str, ...]) -> list[str]:
    """Sector id of each worker: group name + rank in the group (``"A1"``, ``"A2"``, ...)."""
    count: dict[int, int] = {}
    ids = []
    for g in worker_group:
        count[int(g)] = count.get(int(g), 0) + 1
        ids.append(f"{group_names[int(g)]}{count[int(g)]}")
    return ids


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


def assemble(inputs: Inputs, nested: NestedSolution, sector_names: list[str] | None = None) -> Plan:
    """The plan's tables from a nested solution: one row per unit and one per worker.

    ``sector_names`` (one per worker) default to :func:`sector_ids`. Travel
    minutes per unit are from the sector's centre (``pmedian``) or the
    worker's base (``base``), rounded to 0.1 min; ``centre_travel_min`` and
    ``base_travel_min`` give both, whatever the objective. The solver facts (objective,
    bound and gap when one solve drew every sector, stages, log) go to
    ``plan.solve``; the input hashes to ``plan.inputs``; the independent
    checks of :func:`check` to ``plan.violations``.
    """
    scenario, region, demand, travel, team = inputs.scenario, inputs.region, inputs.demand, inputs.travel, inputs.team
    w = inputs.workload
    units = region.units
    keys = units.index
    group_names = tuple(scenario.groups.names)
    sectors = list(sector_names) if sector_names is not None else sector_ids(nested.worker_group, group_names)
    worker = nested.sector
    centre_rows = travel.rows(nested.centre)
    from_centre = centre_rows[worker, np.arange(len(keys))]
    from_base = team.base_travel[worker, np.arange(len(keys))]
    minutes = from_base if inputs.objective == "base" else from_centre  # "auto" resolved
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
    table["centre_travel_min"] = np.round(from_centre, 1)
    table["base_travel_min"] = np.round(from_base, 1)
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
    solve = solve_facts(scenario, nested)
    notes = [*region.notes, *demand.notes]
    if hasattr(travel, "notes"):
        notes.extend(travel.notes)
    plan = Plan(scenario=scenario, units=table, workers=workers, graph=region.graph,
                solve=solve, notes=notes, demand_source=str(demand.source),
                excluded=getattr(demand, "excluded", None))
    plan.inputs = input_hashes(scenario, region, demand, travel, team)
    plan.vintage = region.vintage
    plan.violations = check(plan)
    return plan


def solve_facts(scenario: Scenario, nested: NestedSolution) -> dict:
    """The solver's facts for ``plan.solve``: objective (caseload-minutes), bound and gap, status,
    time (seconds) against the limit, the work budget's facts (deterministic, work seconds,
    safety cap), one entry per stage, the last 40 log lines, the tie-break."""
    group_names = tuple(scenario.groups.names)
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
        # work budgets (model.deterministic): the work seconds counted, and whether the wall-time
        # safety cap stopped the search (then the plan is not reproducible)
        "deterministic": nested.deterministic,
        "work_s": None if nested.work_s is None else round(nested.work_s, 2),
        "capped": nested.capped,
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
    return solve


def check(plan: Plan) -> list[str]:
    """Independent checks of a plan, from its tables only (not the solver's state).

    Every unit has exactly one group and one sector; every sector belongs to
    one group; every sector and every group is connected in the contiguity
    graph; every sector's caseload is within ±tolerance of its target and
    every group's within ±group tolerance of its workers' summed targets;
    with ``model.territory_measure = "communes"``, every sector's number of
    communes within its cap (:func:`sectorize.pipeline.inputs.territory_caps`;
    an area cap is checked by the solver, the table has no areas); every set
    of ``groups.keep_together`` in one group.
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
    graph = integer_graph(plan.graph, {k: i for i, k in enumerate(keys)})
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
            lower=caseload_band(targets.to_numpy(), t)[0],
            upper=caseload_band(targets.to_numpy(), t)[1],
            unit_label=labels.__getitem__,
            part_label=lambda i, names=names, kind=kind: f"{kind} {names[i]}",
        )
    problems += _ground_rules(plan)
    return problems


def _ground_rules(plan: Plan) -> list[str]:
    """The checks of :func:`check` for the territory cap in communes and the units kept in one group."""
    s, units, workers = plan.scenario, plan.units, plan.workers
    problems: list[str] = []
    if s.model.territory_measure == "communes":
        caps = territory_caps(s, np.ones(len(units)), workers["fte"].to_numpy(dtype=float))
        count = units.groupby("sector").size()
        for sector, cap in zip(workers["sector"], caps):
            if count.get(sector, 0) > cap + 1e-9 * max(cap, 1.0):
                problems.append(f"sector {sector} covers {count.get(sector, 0):,} communes, above its territory "
                                f"cap of {cap:,.1f} (model.territory_measure = 'communes')")
    try:
        sets = keep_together_keys(s, units.index)
    except ValueError as err:  # the scenario names units this plan does not have
        return [*problems, str(err)]
    for keys in sets:
        groups = sorted(set(units.loc[keys, "group"]))
        if len(groups) > 1:
            problems.append(f"groups.keep_together: {', '.join(keys[:3])}{'...' if len(keys) > 3 else ''} "
                            f"({len(keys)} units) are split between groups {', '.join(groups)}")
    return problems
