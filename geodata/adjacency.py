"""Contiguity graphs of polygon units: queen adjacency and links to islands.

Two units are *queen* neighbours when their polygons intersect (a shared
border or a single shared point). Lengths and distances are measured in a
metric CRS: Lambert-93 (EPSG:2154) for units in metropolitan France, else the
UTM zone that :meth:`geopandas.GeoDataFrame.estimate_utm_crs` picks.
"""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pyproj
import shapely

#: lon/lat box of metropolitan France (Corsica included), degrees.
_METROPOLE_BOUNDS = (-5.5, 41.0, 10.0, 51.5)


def metric_crs(units: gpd.GeoDataFrame | gpd.GeoSeries) -> pyproj.CRS:
    """A CRS in metres suited to ``units``.

    Returns EPSG:2154 (Lambert-93) when every unit lies in metropolitan
    France, else the UTM zone estimated by geopandas.
    """
    if units.crs is None:
        raise ValueError("units have no CRS; set one (e.g. EPSG:4326) before measuring lengths")
    lonlat = units.to_crs(4326) if not units.crs.equals(pyproj.CRS.from_epsg(4326)) else units
    x0, y0, x1, y1 = lonlat.total_bounds
    bx0, by0, bx1, by1 = _METROPOLE_BOUNDS
    if bx0 <= x0 and x1 <= bx1 and by0 <= y0 and y1 <= by1:
        return pyproj.CRS.from_epsg(2154)
    return units.estimate_utm_crs()


def queen_adjacency(units: gpd.GeoDataFrame) -> nx.Graph:
    """Queen contiguity graph of polygon units.

    Parameters
    ----------
    units
        GeoDataFrame of polygons with a CRS, indexed by unit key.

    Returns
    -------
    networkx.Graph
        Nodes are exactly ``units.index`` (isolated units included); one edge
        per pair of intersecting polygons, with attribute ``border_m``: the
        length of the shared border in metres (rounded to 0.1 m; 0 when the
        units only touch at a point or overlap without sharing a border line).

    Notes
    -----
    Pairs are found with a :class:`shapely.STRtree` ``intersects`` query, and
    border lengths computed as the length of the intersection of the two
    boundaries, in the metric CRS of :func:`metric_crs`.
    """
    graph = nx.Graph()
    graph.add_nodes_from(units.index)
    if len(units) < 2:
        return graph
    geoms = units.geometry.to_crs(metric_crs(units)).values
    geoms = np.asarray(geoms, dtype=object)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    border = shapely.length(
        shapely.intersection(shapely.boundary(geoms[left]), shapely.boundary(geoms[right]))
    )
    keys = units.index.to_numpy()
    graph.add_edges_from(
        (keys[a], keys[b], {"border_m": round(float(m), 1)})
        for a, b, m in zip(left, right, border)
    )
    return graph


def _describe(units: gpd.GeoDataFrame, key: object) -> str:
    if "name" in units.columns:
        name = units.at[key, "name"]
        if isinstance(name, str) and name and name != key:
            return f"{key} ({name})"
    return str(key)


def link_islands(graph: nx.Graph, units: gpd.GeoDataFrame) -> list[str]:
    """Connect every island of ``graph`` to its nearest unit, in place.

    While the graph has several connected components, the smallest one
    (ties: the one holding the smallest key) is linked to the unit outside it
    that is nearest to any of its units, measured between geometries in
    metres. Linking the smallest component first guarantees that every
    component ends up connected to the largest one.

    Parameters
    ----------
    graph
        Contiguity graph over ``units.index``; modified in place.
    units
        GeoDataFrame of the units (a ``name`` column, if any, is used in the
        notes).

    Returns
    -------
    list of str
        One human-readable note per added edge. Added edges have
        ``link="island"``, ``border_m=0.0`` and ``distance_m`` (metres).
    """
    missing = set(units.index) ^ set(graph.nodes)
    if missing:
        raise ValueError(
            f"graph nodes and units differ on {len(missing)} keys, e.g. {sorted(map(str, missing))[:5]}"
        )
    notes: list[str] = []
    if graph.number_of_nodes() < 2 or nx.is_connected(graph):
        return notes
    geoms = units.geometry.to_crs(metric_crs(units))
    keys = units.index
    while True:
        comps = list(nx.connected_components(graph))
        if len(comps) == 1:
            return notes
        island = min(comps, key=lambda c: (len(c), min(map(str, c))))
        inside = keys.isin(list(island))
        outside_geoms = np.asarray(geoms.values[~inside], dtype=object)
        inside_geoms = np.asarray(geoms.values[inside], dtype=object)
        tree = shapely.STRtree(outside_geoms)
        (src, dst), dist = tree.query_nearest(inside_geoms, return_distance=True, all_matches=False)
        best = int(np.argmin(dist))
        a = keys[inside][src[best]]
        b = keys[~inside][dst[best]]
        d = float(dist[best])
        graph.add_edge(a, b, border_m=0.0, link="island", distance_m=round(d, 1))
        where = f"{d / 1000:.1f} km away" if d >= 100 else f"{d:.0f} m away"
        if len(island) == 1:
            notes.append(
                f"unit {_describe(units, a)} was not contiguous to the rest; linked to "
                f"{_describe(units, b)}, {where}"
            )
        else:
            notes.append(
                f"a group of {len(island)} units ({', '.join(sorted(map(str, island))[:10])}"
                f"{', ...' if len(island) > 10 else ''}) was not contiguous to the rest; linked "
                f"{_describe(units, a)} to {_describe(units, b)}, {where}"
            )
