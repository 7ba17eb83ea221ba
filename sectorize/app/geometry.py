"""The commune polygons the browser draws: simplified once, as one GeoJSON document.

The stored polygons of the 4,033 AURA units weigh tens of megabytes of
coordinates; a browser drawing them on a canvas would take seconds per
redraw. :func:`browser_geojson` simplifies them as a *coverage* (shapely's
:func:`shapely.coverage_simplify`, which simplifies the edge shared by two
communes once, so neighbours keep touching: no gaps or slivers appear
between sectors) in Lambert-93 metres, then writes lon/lat rounded to
:data:`DECIMALS` decimals (about 11 m at 45°N, below the tolerance).

The tolerance (:data:`TOLERANCE_M`, metres) is the largest distance by which
a simplified border may move; at the zoom levels of a regional map
(1 px ≈ 150–600 m) it is below one pixel. The routing service answers map
clicks from the full polygons, so a click near a simplified border is still
routed to the commune it falls in.

Example
-------
>>> blob = browser_geojson(stored.geometry, stored.sectors)   # doctest: +SKIP
>>> len(blob) / 1e6                                            # doctest: +SKIP
1.9
"""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import shapely

#: Largest shift of a simplified border (metres).
TOLERANCE_M = 120.0

#: Decimals of the coordinates written (degrees): 4 decimals ≈ 11 m.
DECIMALS = 4

#: Metric CRS used to simplify (Lambert-93, metres).
METRIC_CRS = "EPSG:2154"


def browser_geojson(geometry: gpd.GeoSeries, communes: pd.DataFrame, *, tolerance_m: float = TOLERANCE_M) -> bytes:
    """One GeoJSON ``FeatureCollection`` (UTF-8 bytes) of the units, simplified for drawing.

    Parameters
    ----------
    geometry
        Polygons indexed by INSEE code (any CRS with one set).
    communes
        Indexed by INSEE code or with an ``insee`` column: ``name`` and ``dep``
        (the feature properties, with ``insee``).
    tolerance_m
        Largest shift of a simplified border, metres.

    Raises
    ------
    ValueError
        A polygon without a row in ``communes`` (codes are named).
    """
    table = communes.set_index("insee") if "insee" in communes.columns else communes
    table.index = table.index.astype(str)
    shapes = gpd.GeoSeries(geometry).copy()
    shapes.index = shapes.index.astype(str)
    missing = shapes.index.difference(table.index)
    if len(missing):
        raise ValueError(f"polygons without a commune row: {list(missing[:5])}")
    metric = shapes.to_crs(METRIC_CRS)
    simple = shapely.coverage_simplify(metric.values.to_numpy() if hasattr(metric.values, "to_numpy")
                                       else metric.array, tolerance_m)
    simple = gpd.GeoSeries(simple, index=metric.index, crs=METRIC_CRS).to_crs("EPSG:4326")
    simple = shapely.set_precision(simple.values, 10 ** -DECIMALS)
    features = []
    for code, shape in zip(metric.index, simple):
        row = table.loc[code]
        features.append({"type": "Feature", "id": code,
                         "properties": {"insee": code, "name": str(row["name"]), "dep": str(row["dep"])},
                         "geometry": shapely.geometry.mapping(shape)})
    document = {"type": "FeatureCollection", "features": features}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
