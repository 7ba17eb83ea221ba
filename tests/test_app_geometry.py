"""The polygons the browser draws: simplified as a coverage, so neighbours keep touching."""

from __future__ import annotations

import json

from shapely.geometry import shape

from sectorize.app.geometry import DECIMALS, browser_geojson


def test_every_unit_is_drawn_valid_and_neighbours_still_touch(aura_lyon):
    units = aura_lyon.units
    document = json.loads(browser_geojson(units.geometry, units[["name", "dep"]]))
    shapes = {f["id"]: shape(f["geometry"]) for f in document["features"]}
    assert len(shapes) == len(units) == 4033
    assert not [c for c, s in shapes.items() if s.is_empty or not s.is_valid]
    # the coordinates are rounded to DECIMALS: two neighbours are at most a rounding step apart
    apart = [(a, b) for a, b in aura_lyon.graph.edges if shapes[a].distance(shapes[b]) > 2 * 10 ** -DECIMALS]
    assert apart == []
    feature = document["features"][0]
    assert set(feature["properties"]) == {"insee", "name", "dep"}


def test_the_document_is_light_enough_for_the_browser(aura_lyon):
    units = aura_lyon.units
    blob = browser_geojson(units.geometry, units[["name", "dep"]])
    assert len(blob) < 4_000_000                      # bytes, before gzip (the app sends it gzipped)
