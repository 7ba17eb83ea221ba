"""The result of a sectorization: which worker covers which commune, and how well."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import networkx as nx
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from sectorize.config.scenario import Scenario


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
        ``geometry``; plans built by the pipeline also have
        ``centre_travel_min`` and ``base_travel_min`` (minutes from the
        sector's centre commune and from its worker's base, whatever the
        objective; a plan re-opened from a registry or run folder may lack them).
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
    notes
        Human-readable reports of the inputs (data repairs, postcode splits, ...).
    demand_source
        Where the demand came from (:attr:`geodata.demand.Demand.source`: the
        file path, or ``"synthetic ..."`` for the synthetic model: expected
        values, not counts); ``""`` when unknown (the scenario's
        ``demand.source`` then tells synthetic from file).
    excluded
        Demand rows left out of the plan (e.g. referrals from outside the
        region), aggregated counts: ``code`` (str), ``department`` (str),
        ``reason`` (str) and one float column per demand column; ``None``
        when unknown (e.g. a re-opened plan) or nothing was left out.
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
    demand_source: str = ""
    excluded: pd.DataFrame | None = None

    @property
    def valid(self) -> bool:
        return not self.violations

    # ------------------------------------------------------------------ conveniences for notebooks

    @property
    def kpis(self) -> pd.DataFrame:
        """Per-sector KPIs (then one subtotal row per group), see :func:`sectorize.report.kpi.kpi_table`.

        New referrals in patients/year (``referrals_per_year``) and patients/week
        (``referrals_per_week`` = per year / 52.18), home-care and follow-up patients,
        caseload as a share of the target (``target_share_pct``, %); caseloads and targets
        in the scenario's weighted units; travel in minutes (``travel_base_*``: from the
        worker's base, ``travel_centre_*``: from the sector's centre); deviation in percent.

        Example
        -------
        >>> plan.kpis[["sector", "referrals_per_week", "target_share_pct", "travel_base_mean_min"]]  # doctest: +SKIP
        """
        from sectorize.report.kpi import compute_kpis, kpi_table

        return kpi_table(compute_kpis(self))

    @property
    def assignment(self) -> gpd.GeoDataFrame:
        """Who covers which commune: ``insee, group, sector, worker, workload, travel_min, geometry``.

        ``worker`` is the worker id, ``workload`` the commune's caseload,
        ``travel_min`` the minutes from the sector's reference point. A copy:
        editing it does not change the plan.

        Example
        -------
        >>> plan.assignment.query("sector == 'A1'").workload.sum()  # doctest: +SKIP
        """
        units = self.units
        table = pd.DataFrame({
            "insee": units.index.astype(str),
            "group": units["group"].to_numpy(), "sector": units["sector"].to_numpy(),
            "worker": units["worker_id"].to_numpy(), "workload": units["workload"].to_numpy(dtype=float),
            "travel_min": units["travel_min"].to_numpy(dtype=float),
        }, index=units.index)
        return gpd.GeoDataFrame(table, geometry=units.geometry.to_numpy(), crs=units.crs)

    def map(self, **kw: Any):
        """The offline Folium map of the plan (:func:`sectorize.report.maps.sector_map`).

        Keywords default to the scenario's ``[map]`` section (``tiles``,
        ``simplify_m``, ``suppress_below``). Save it with
        :func:`sectorize.report.maps.save_map`.

        Example
        -------
        >>> save_map(plan.map(simplify_m=200), "out/plan.html")  # doctest: +SKIP
        """
        from sectorize.report.maps import sector_map

        if self.scenario is not None:
            cfg = self.scenario.map
            kw = {"tiles": cfg.tiles, "simplify_m": cfg.simplify_m, "suppress_below": cfg.suppress_below, **kw}
        return sector_map(self, **kw)

    def export(self, out_dir: str | Path) -> Path:
        """Write a new run folder under ``out_dir`` (tables, KPIs, map) and return it.

        Same files as ``sectorize run`` (:func:`sectorize.store.export.write_outputs`),
        written atomically; earlier runs are never overwritten.

        Example
        -------
        >>> folder = plan.export("sectorize-output")  # doctest: +SKIP
        >>> (folder / "sectors.csv").is_file()        # doctest: +SKIP
        True
        """
        from sectorize.store.export import write_outputs

        return write_outputs(self, out_dir, map_html=self.map().get_root().render())
