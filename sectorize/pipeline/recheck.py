"""Check a plan from its written tables alone, ignoring what the run said about itself.

A plan stored in the registry is what the routing service will answer from, so
its validity must not rest on a flag in ``run.json`` or on tables edited by
hand: :func:`recheck` rebuilds the plan from ``sectors.csv`` and
``workers.csv`` on the region's own units and contiguity graph, recomputes
every caseload from the demand columns and the scenario's weights and every
target from the FTE, and runs the independent checker
(:func:`sectorize.pipeline.assemble.check`): every commune of the region in
exactly one sector, one sector per worker, sectors and groups contiguous,
each sector inside one group, caseloads within tolerance, the territory cap
and the units kept in one group.

Example
-------
>>> from sectorize.pipeline.recheck import recheck                      # doctest: +SKIP
>>> plan, violations = recheck(scenario, region.units, region.graph, sectors, workers)      # doctest: +SKIP
"""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import pandas as pd

from sectorize.config.scenario import Scenario
from sectorize.pipeline.assemble import check
from sectorize.plan import Plan

#: Columns of the sector table the check needs.
SECTOR_COLUMNS = ("insee", "group", "sector", "worker_id")
#: Columns of the worker table the check needs.
WORKER_COLUMNS = ("worker_id", "fte", "group", "sector")


def _as_float(values: pd.Series) -> pd.Series:
    text = values.astype(str).str.replace(",", ".", regex=False).str.replace("\u202f", "", regex=False)
    return pd.to_numeric(text.str.replace(" ", "", regex=False), errors="coerce")


def recheck(scenario: Scenario, units: gpd.GeoDataFrame, graph: nx.Graph, sectors: pd.DataFrame,
            workers: pd.DataFrame) -> tuple[Plan | None, list[str]]:
    """The plan of ``sectors`` and ``workers`` on the region's ``units``, and every rule it breaks.

    Parameters
    ----------
    scenario
        The scenario the plan says it was made with (tolerances, weights,
        territory cap, units kept together).
    units, graph
        The region's units (indexed by INSEE code) and contiguity graph,
        loaded afresh (:attr:`geodata.regions.Region.units`, ``.graph``).
    sectors
        The sector table (``sectors.csv``): ``insee, group, sector,
        worker_id`` and, when known, ``name``, ``worker_name``, the demand
        columns (e.g. ``referrals`` per year) and ``workload``.
    workers
        The worker table (``workers.csv``): ``worker_id, fte, group, sector``.

    Returns
    -------
    plan, violations
        The rebuilt plan (``None`` when the tables cannot even be laid on the
        region) and the violations as sentences (empty: the plan is valid).
        Caseloads are ``sum(weight x demand column)`` over the scenario's
        weights when the table has those columns (else its ``workload``
        column, said in the violations if it is missing); targets are
        ``total caseload x fte / total FTE``.
    """
    problems: list[str] = []
    lacking = [c for c in SECTOR_COLUMNS if c not in sectors.columns]
    lacking += [f"workers.csv: {c}" for c in WORKER_COLUMNS if c not in workers.columns]
    if lacking:
        return None, [f"the tables lack the column(s) {lacking}"]
    table = sectors.copy()
    table["insee"] = table["insee"].astype(str)
    duplicated = table["insee"][table["insee"].duplicated()].unique().tolist()
    if duplicated:
        problems.append(f"{len(duplicated)} commune(s) appear more than once in the sector table, e.g. {duplicated[:5]}")
        table = table.drop_duplicates("insee")
    table = table.set_index("insee")
    keys = units.index
    unknown = sorted(set(table.index) - set(keys))
    missing = [k for k in keys if k not in table.index]
    if unknown:
        problems.append(f"{len(unknown)} code(s) of the sector table are not communes of the region, e.g. {unknown[:5]}")
    if missing:
        problems.append(f"{len(missing)} commune(s) of the region have no sector, e.g. {missing[:5]}")
    if unknown or missing:
        return None, problems

    team = workers.copy()
    team["worker_id"] = team["worker_id"].astype(str)
    team["fte"] = _as_float(team["fte"])
    if team["fte"].isna().any() or not (team["fte"] > 0).all():
        return None, [*problems, "workers.csv: every worker needs an FTE > 0"]
    for column, what in (("worker_id", "worker"), ("sector", "sector")):
        twice = team[column][team[column].duplicated()].tolist()
        if twice:
            problems.append(f"workers.csv: {what}(s) {twice[:5]} appear twice (one sector per worker)")
    owner = team.drop_duplicates("sector").set_index("sector")
    assigned = table["sector"].astype(str)
    strangers = sorted(set(assigned) - set(owner.index.astype(str)))
    if strangers:
        problems.append(f"sector(s) {strangers[:5]} of the sector table have no worker in workers.csv")
        return None, problems
    wrong_worker = table.index[table["worker_id"].astype(str).to_numpy()
                               != owner.loc[assigned, "worker_id"].astype(str).to_numpy()]
    if len(wrong_worker):
        problems.append(f"{len(wrong_worker)} commune(s) name another worker than their sector's, "
                        f"e.g. {list(wrong_worker[:5])}")
    wrong_group = table.index[table["group"].astype(str).to_numpy()
                              != owner.loc[assigned, "group"].astype(str).to_numpy()]
    if len(wrong_group):
        problems.append(f"{len(wrong_group)} commune(s) name another group than their sector's, "
                        f"e.g. {list(wrong_group[:5])}")

    weights = scenario.demand.weights
    if all(c in table.columns for c in weights):
        load = sum(float(w) * _as_float(table[c]).fillna(0.0) for c, w in weights.items())
    elif "workload" in table.columns:
        load = _as_float(table["workload"]).fillna(0.0)
    else:
        return None, [*problems, f"the sector table has neither the demand columns {list(weights)} nor 'workload'"]
    units = units.copy()
    for column in table.columns:
        if column not in ("name", "dep"):
            units[column] = table[column].reindex(keys).to_numpy()
    units["workload"] = load.reindex(keys).to_numpy(dtype=float)
    units["sector"] = units["sector"].astype(str)
    units["group"] = units["group"].astype(str)
    total = float(units["workload"].sum())
    team = team.drop_duplicates("sector")
    team["target"] = total * team["fte"] / team["fte"].sum()
    for column in ("group", "sector"):
        team[column] = team[column].astype(str)
    plan = Plan(scenario=scenario, units=units, workers=team.reset_index(drop=True), graph=graph)
    problems += check(plan)
    plan.violations = list(problems)
    return plan, problems

