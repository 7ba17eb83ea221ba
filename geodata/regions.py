"""Regions: the units to sectorize (a GeoDataFrame keyed by code) and their contiguity graph."""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import networkx as nx


@dataclass
class Region:
    """A set of territorial units and who touches whom.

    Attributes
    ----------
    units
        GeoDataFrame in EPSG:4326 indexed by the unit key (``str``, e.g. INSEE
        code ``"01001"``, leading zeros kept). Columns always present: ``name``,
        ``population`` (inhabitants), ``lon``, ``lat`` (a point inside the unit,
        degrees), ``geometry``. The AURA data adds ``dep``, ``postcodes``
        (list of str), ``epci``, ``canton``, ``area_km2``.
    graph
        Undirected contiguity graph whose nodes are exactly ``units.index``;
        edge attribute ``border_m`` (shared border length in metres, 0 for a
        point contact, or for a link added to reach an island).
    name
        Short description, e.g. ``"AURA communes (COG 2026)"``.
    notes
        Human-readable reports of anything repaired while loading (islands
        linked, multi-part units), so nothing is silently changed.
    """

    units: gpd.GeoDataFrame
    graph: nx.Graph
    name: str
    notes: list[str] = field(default_factory=list)
