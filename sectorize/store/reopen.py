"""Re-open a stored plan: rebuild a :class:`~sectorize.plan.Plan` from the registry
so that its tables, KPIs and map are reproduced without re-solving.

Example
-------
>>> from sectorize.store.registry import Registry                      # doctest: +SKIP
>>> plan = plan_from_stored(Registry("sectorize-plans").get("P20261201-135c8eb9"))  # doctest: +SKIP
>>> sector_map(plan).save("plan-2026.html")                     # doctest: +SKIP
"""

from __future__ import annotations

import tomllib

import geopandas as gpd
import pandas as pd

from geodata.adjacency import queen_adjacency
from geodata.regions import link_islands
from sectorize.plan import Plan
from sectorize.store.registry import StoredPlan
from sectorize.config.scenario import scenario_from_dict


def plan_from_stored(stored: StoredPlan) -> Plan:
    """The plan as it was computed: its scenario, sector table, workers and polygons.

    The contiguity graph is recomputed from the stored polygons (queen
    contiguity, islands linked as when the plan was made), which is what the
    map needs for its colours and borders. ``plan.solve`` and
    ``plan.violations`` are those recorded when the plan was computed.

    Raises
    ------
    sectorize.config.scenario.ScenarioError
        If the stored scenario no longer validates with this version of sectorize.
    """
    scenario = scenario_from_dict(tomllib.loads(stored.scenario_toml))
    sectors = stored.sectors.set_index("insee")
    sectors.index = sectors.index.astype(str)
    units = sectors.copy()
    if len(stored.population):
        units["population"] = stored.population.reindex(units.index).to_numpy()
    if len(stored.communes_postcodes):
        codes = stored.communes_postcodes.reindex(units.index)
        units["postcodes"] = [[] if pd.isna(v) or v == "" else str(v).split("|") for v in codes]
    geometry = stored.geometry.reindex(units.index)
    missing = units.index[geometry.isna().to_numpy()]
    if len(missing):
        raise ValueError(f"plan {stored.id}: no polygon stored for {len(missing)} commune(s), e.g. {list(missing[:5])}")
    units = gpd.GeoDataFrame(units, geometry=geometry.to_numpy(), crs=4326)
    representative = units.geometry.representative_point()
    units["lon"], units["lat"] = representative.x, representative.y
    graph = queen_adjacency(units)
    link_islands(graph, units)
    return Plan(
        scenario=scenario, units=units, workers=stored.workers.copy(), graph=graph,
        solve=dict(stored.solve), violations=list(stored.violations), notes=list(stored.run_notes),
        inputs=dict(stored.inputs), vintage=stored.vintage,
    )
