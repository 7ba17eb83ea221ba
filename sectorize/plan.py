"""The result of a sectorization: which worker covers which commune, and how well."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import networkx as nx
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from sectorize.scenario import Scenario


@dataclass
class Plan:
    """A solved sectorization.

    Attributes
    ----------
    scenario
        The validated configuration that produced the plan.
    units
        GeoDataFrame (EPSG:4326) indexed by unit key (INSEE code, ``str``),
        one row per commune, with columns ``name``, ``dep``, ``population``,
        ``postcodes`` (list of str), one column per demand measure (e.g.
        ``referrals`` in referrals/year, ``home_care`` in active patients),
        ``workload`` (the balanced caseload, same unit as the demand
        weighted by the scenario), ``group``, ``sector``, ``worker_id``,
        ``worker_name``, ``travel_min`` (minutes from the sector's reference
        point — its centre commune or the worker's base — to the commune) and
        ``geometry``.
    workers
        One row per worker/sector: ``worker_id``, ``worker_name``, ``fte``,
        ``group``, ``sector``, ``target`` (caseload target, same unit as
        ``workload``), ``centre`` (key of the sector's centre commune),
        ``base_key``, ``base_lon``, ``base_lat`` (the worker's base; the key
        may be empty when the base is given as coordinates).
    graph
        The contiguity graph over ``units.index`` used by the solve.
    solve
        Solver facts: ``backend``, ``status``, ``objective``, ``bound``,
        ``gap``, ``time_s``, ``log`` (list of str), per stage.
    inputs
        SHA-256 (hex) of each input the plan was computed from: ``units``
        (keys and geometries), ``demand`` (the demand table), ``travel``
        (the travel-time matrix), ``team`` (workers, FTE, bases, groups) and
        ``scenario`` (the effective scenario text); equal hashes mean equal inputs.
    vintage
        Geography vintage of the unit codes (e.g. ``"COG 2026"``).
    violations
        Messages from the independent plan checker; empty when the plan is
        valid (every commune once, every sector and group connected, every
        caseload within tolerance).
    """

    scenario: "Scenario"
    units: gpd.GeoDataFrame
    workers: pd.DataFrame
    graph: nx.Graph
    solve: dict[str, Any] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    vintage: str = ""

    @property
    def valid(self) -> bool:
        return not self.violations
