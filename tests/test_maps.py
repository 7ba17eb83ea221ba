"""Offline sector map: content, no internet resources, and drawing in headless Chromium."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from browser import find_chromium, open_offline, read_png
from sectorize.report.maps import GROUP_PALETTES, external_resources, save_map, sector_colours, sector_map
from sectorize.plan import Plan

#: Background colour of the map (``.leaflet-container`` in sectorize/report/maps.py).
BACKGROUND = (0xF4, 0xF3, 0xEF)

needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="no chromium, chromium-browser or google-chrome on PATH"
)


def make_plan(units: gpd.GeoDataFrame, graph, group: pd.Series, sector: pd.Series) -> Plan:
    """A plan without the solver: demand from population, one worker per sector.

    Demand is made up from population (1 referral/year per 1,000
    inhabitants, 1 home-care patient per 5,000); workload = referrals +
    2 x home-care patients; each worker is based at the most populous
    commune of the sector; travel time is straight-line distance at 50 km/h.
    """
    units = units.copy()
    units["referrals"] = (units["population"] // 1000).astype("int64")
    units["home_care"] = (units["population"] // 5000).astype("int64")
    units["workload"] = (units["referrals"] + 2 * units["home_care"]).astype(float)
    units["group"] = group.reindex(units.index).to_numpy()
    units["sector"] = sector.reindex(units.index).to_numpy()
    keys = sorted(set(zip(units["group"], units["sector"])))
    ids = {k: f"W{i + 1:02d}" for i, k in enumerate(keys)}
    units["worker_id"] = [ids[k] for k in zip(units["group"], units["sector"])]
    units["worker_name"] = "Worker " + units["worker_id"].str[1:] + " d'Été"
    rows = []
    for i, (g, s) in enumerate(keys):
        members = units[(units["group"] == g) & (units["sector"] == s)]
        base = members["population"].idxmax()
        rows.append({"worker_id": ids[(g, s)], "worker_name": members["worker_name"].iloc[0],
                     "fte": 0.8 if i % 3 == 0 else 1.0, "group": g, "sector": s, "centre": base,
                     "base_key": base, "base_lon": units.at[base, "lon"], "base_lat": units.at[base, "lat"]})
    workers = pd.DataFrame(rows)
    for g, rows_g in workers.groupby("group"):
        total = units.loc[units["group"] == g, "workload"].sum()
        workers.loc[rows_g.index, "target"] = total * rows_g["fte"] / rows_g["fte"].sum()
    points = gpd.GeoSeries.from_xy(units["lon"], units["lat"], crs=4326).to_crs(2154)
    base_of = workers.set_index("worker_id")["base_key"]
    bases = points.loc[base_of.loc[units["worker_id"]].to_numpy()].to_numpy()
    metres = points.distance(gpd.GeoSeries(bases, index=units.index, crs=2154))
    units["travel_min"] = np.round(metres / 1000 * 60 / 50, 1)
    return Plan(scenario=None, units=units, workers=workers, graph=graph.subgraph(units.index).copy())


@pytest.fixture(scope="module")
def small_plan(aura) -> Plan:
    """Ardèche (335 communes): 2 groups (north/south of the median canton), one sector per canton."""
    units = aura.units[aura.units["dep"] == "07"]
    lat = units.groupby("canton")["lat"].mean()
    group = units["canton"].map(lambda c: "North" if lat[c] >= lat.median() else "South")
    return make_plan(units, aura.graph, group, units["canton"])


@pytest.fixture(scope="module")
def aura_plan(aura) -> Plan:
    """All 4,025 communes: group A = 01, 38, 69, 73, 74; group B = the rest; one sector per department."""
    units = aura.units
    group = units["dep"].map(lambda d: "A" if d in {"01", "38", "69", "73", "74"} else "B")
    return make_plan(units, aura.graph, group, units["dep"])


@pytest.fixture(scope="module")
def small_html(small_plan, tmp_path_factory) -> Path:
    return save_map(sector_map(small_plan), tmp_path_factory.mktemp("map") / "ardeche.html")


def geojson_layers(page: str) -> list[dict]:
    """The GeoJSON data embedded in the page, one dict per ``L.geoJson`` layer."""
    return [json.loads(data) for data in re.findall(r"geo_json_\w+_add\((\{.*\})\);", page)]


# --- external resources ---------------------------------------------------------------


def test_external_resources_finds_loads_and_ignores_links():
    page = """<html><head>
    <script src="https://cdn.example.org/a.js"></script>
    <link rel="stylesheet" href="//cdn.example.org/b.css">
    <link rel="canonical" href="https://example.org/page">
    <style>@import "https://fonts.example.org/c.css"; .x { background: url('http://img.example.org/d.png') }
    .y { background: url(data:image/png;base64,AAAA) } .z { behavior: url(#default#VML) }</style>
    </head><body style="background-image: url(https://img.example.org/e.png)">
    <img src="local.png" srcset="https://img.example.org/f.png 2x, small.png 1x">
    <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> see https://example.org/text
    <script>var t = L.tileLayer("https://tile.example.org/{z}/{x}/{y}.png", {}); var s = "https://x.org";</script>
    </body></html>"""
    assert external_resources(page) == [
        "https://cdn.example.org/a.js",
        "//cdn.example.org/b.css",
        "https://fonts.example.org/c.css",
        "http://img.example.org/d.png",
        "https://img.example.org/e.png",
        "https://img.example.org/f.png",
        "https://tile.example.org/{z}/{x}/{y}.png",
    ]


def test_default_folium_map_is_not_offline():
    import folium

    assert len(external_resources(folium.Map().get_root().render())) >= 10


def test_saved_map_loads_nothing_from_internet(small_html):
    page = small_html.read_text(encoding="utf-8")
    assert external_resources(page) == []
    assert "Leaflet 1.9.4, a JS library for interactive maps" in page  # inlined, not linked


def test_online_tiles_are_opt_in(small_plan, tmp_path):
    page = save_map(sector_map(small_plan, tiles="openstreetmap"), tmp_path / "osm.html").read_text("utf-8")
    assert external_resources(page) == ["https://tile.openstreetmap.org/{z}/{x}/{y}.png"]
    assert "Background map tiles need internet" in page


# --- content --------------------------------------------------------------------------


def test_map_has_layers_legend_and_tooltips(small_plan, small_html):
    page = small_html.read_text(encoding="utf-8")
    groups = sorted(small_plan.units["group"].unique())
    for name in [*(f"Communes, group {g}" for g in groups), "Sector borders", "Group borders", "Worker bases"]:
        assert f'"{name}"' in page, name
    legend = re.search(r'<div id="[^"]+" class="sector-legend">(.*?)</div>\s', page, re.S)[1]
    for g in groups:
        assert f"Group {g}" in legend
    for w in small_plan.workers.itertuples():
        assert f"<td>{w.sector}</td><td>{w.worker_name.replace(chr(39), '&#x27;')}</td>" in legend
    assert legend.count('class="swatch"') == len(small_plan.workers)
    for alias in ("Commune", "INSEE code", "Referrals/year", "Home-care patients", "Workload", "Sector",
                  "Worker", "Travel time (min)"):
        assert f'"{alias}"' in page, alias


def test_commune_features_carry_names_codes_and_sector_colours(small_plan, small_html):
    layers = geojson_layers(small_html.read_text(encoding="utf-8"))
    n_groups = small_plan.units["group"].nunique()
    n_sectors = len(small_plan.workers)
    assert [len(layer["features"]) for layer in layers[n_groups:]] == [n_sectors, n_groups]
    features = [f for layer in layers[:n_groups] for f in layer["features"]]
    assert sorted(f["properties"]["insee"] for f in features) == sorted(small_plan.units.index)
    colours = sector_colours(small_plan)
    units = small_plan.units
    for f in features:
        key = f["properties"]["insee"]
        assert f["properties"]["name"] == units.at[key, "name"].replace("'", "&#x27;")
        sector = (units.at[key, "group"], units.at[key, "sector"])
        assert f["properties"]["style"]["fillColor"] == colours[sector]
    coordinates = re.findall(r"-?\d+\.\d+", json.dumps(features[0]["geometry"]))
    assert max(len(c.split(".")[1]) for c in coordinates) <= 5


def test_colours_differ_between_groups_and_between_touching_sectors(small_plan):
    colours = sector_colours(small_plan)
    units = small_plan.units
    by_group = {}
    for (g, _), c in colours.items():
        by_group.setdefault(g, set()).add(c)
    first, second = by_group.values()
    assert first.isdisjoint(second)
    assert first <= set(GROUP_PALETTES[0]) and second <= set(GROUP_PALETTES[1])
    sector = dict(zip(units.index, zip(units["group"], units["sector"])))
    touching = [(sector[a], sector[b]) for a, b in small_plan.graph.edges if sector[a] != sector[b]]
    assert touching
    assert all(colours[a] != colours[b] for a, b in touching)


def test_more_sectors_than_colours_reuses_colours_only_apart(aura):
    """Ain's 391 communes as 20 sectors of one group (more than the 8 colours of a palette)."""
    units = aura.units[aura.units["dep"] == "01"]
    sector = pd.Series(pd.qcut(units["lon"], 20, labels=False).astype(str).str.zfill(2), index=units.index)
    plan = make_plan(units, aura.graph, pd.Series("A", index=units.index), sector)
    colours = sector_colours(plan)
    assert len(colours) == 20 and set(colours.values()) <= set(GROUP_PALETTES[0])
    key = dict(zip(plan.units.index, zip(plan.units["group"], plan.units["sector"])))
    assert all(colours[key[a]] != colours[key[b]] for a, b in plan.graph.edges if key[a] != key[b])


def test_legend_names_the_scenario_and_warns_of_violations(aura):
    """Sectors numbered 1, 2, ... (int) work as well as text labels."""
    units = aura.units[aura.units["dep"] == "15"]
    sector = units["canton"].str[2:].astype(int)
    plan = make_plan(units, aura.graph, pd.Series("Cantal", index=units.index), sector)
    plan.scenario = SimpleNamespace(name="Cantal <test>")
    plan.violations = ["sector 3 is not connected", "caseload of sector 5 is 30 % over target"]
    page = sector_map(plan).get_root().render()
    assert '<div class="title">Sectors: Cantal &lt;test&gt;</div>' in page
    assert "2 checker violation(s)" in page
    assert page.count('class="swatch"') == units["canton"].nunique()


def test_bad_plans_are_refused_with_a_clear_message(small_plan):
    units = small_plan.units.copy()
    units.loc[units.index[:2], "sector"] = None
    with pytest.raises(ValueError, match="2 commune.*no sector"):
        sector_map(Plan(None, units, small_plan.workers, small_plan.graph))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['workload'\]"):
        units = small_plan.units.drop(columns="workload")
        sector_map(Plan(None, units, small_plan.workers, small_plan.graph))
    workers = small_plan.workers.iloc[1:]
    with pytest.raises(ValueError, match="no row in plan.workers"):
        sector_map(Plan(None, small_plan.units, workers, small_plan.graph))
    workers = small_plan.workers.copy()
    workers.loc[0, "base_lat"] = np.nan
    with pytest.raises(ValueError, match="no base_lon/base_lat"):
        sector_map(Plan(None, small_plan.units, workers, small_plan.graph))


def test_save_map_is_atomic_and_checks_the_folder(small_plan, tmp_path):
    m = sector_map(small_plan)
    path = save_map(m, tmp_path / "map.html")
    assert [p.name for p in tmp_path.iterdir()] == ["map.html"]
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert path.stat().st_mode == plain.stat().st_mode  # same permissions as any new file
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_map(m, tmp_path / "missing" / "map.html")


# --- drawing in a browser without network ---------------------------------------------


def drawn_paths(dom: str) -> tuple[int, int]:
    """(vector paths drawn by Leaflet, those of class leaflet-interactive) in a DOM dump.

    Leaflet's SVG renderer sets ``stroke-linejoin`` on every path it draws,
    which tells them from other SVG (e.g. the flag in the attribution).
    """
    paths = [p for p in re.findall(r"<path\b[^>]*>", dom) if "stroke-linejoin" in p]
    return len(paths), sum('class="leaflet-interactive"' in p for p in paths)


@needs_chromium
def test_small_map_draws_offline(small_plan, small_html, tmp_path):
    run = open_offline(small_html, screenshot=tmp_path / "map.png", window=(800, 600))
    n_units, n_workers = len(small_plan.units), len(small_plan.workers)
    n_groups = small_plan.units["group"].nunique()
    # Leaflet draws one SVG path per GeoJSON feature and per circle marker;
    # only communes and bases take the mouse.
    assert drawn_paths(run.dom) == (n_units + n_workers + n_workers + n_groups, n_units + n_workers)
    assert run.requests == [] and run.console == []
    assert "sector-legend" in run.dom and "leaflet-control-layers" in run.dom
    png = read_png(tmp_path / "map.png")
    assert png.share_unlike(BACKGROUND) > 0.3
    assert len(png.colours()) > 50


HOVER = """<script>
for (const selector of [".leaflet-overlay-pane path.leaflet-interactive",
                        ".leaflet-worker_bases-pane path.leaflet-interactive"]) {
    const path = document.querySelector(selector);
    const box = path.getBoundingClientRect();
    path.dispatchEvent(new MouseEvent("mouseover", {
        bubbles: true, clientX: box.x + box.width / 2, clientY: box.y + box.height / 2}));
}
</script>"""


@needs_chromium
def test_tooltips_show_commune_and_worker_details(small_plan, small_html, tmp_path):
    """Move the mouse over the first commune and the first worker base (script appended to the page)."""
    hovered = tmp_path / "hover.html"
    hovered.write_text(small_html.read_text(encoding="utf-8") + HOVER, encoding="utf-8")
    run = open_offline(hovered)
    assert run.console == []
    tips = re.findall(r'<div class="leaflet-tooltip.*?</div>', run.dom, re.S)
    tips = [html.unescape(re.sub(r"\s+", " ", tip)) for tip in tips]
    assert len(tips) == 2
    units = small_plan.units
    insee = re.search(r"<th>INSEE code</th> <td>(\d{5})</td>", tips[0])[1]
    for label, value in [("Commune", units.at[insee, "name"]), ("Sector", units.at[insee, "sector"]),
                         ("Worker", units.at[insee, "worker_name"]),
                         ("Referrals/year", str(units.at[insee, "referrals"]))]:
        assert f"<th>{label}</th> <td>{value}</td>" in tips[0], label
    assert re.search(r'stroke-width="2"', run.dom)  # the hovered commune's outline thickens
    worker = small_plan.workers.iloc[0]
    assert f"<b>{worker.worker_name}</b><br>FTE 0.8<br>Sector {worker.sector}" in tips[1]


@needs_chromium
def test_network_log_sees_online_tiles(small_plan, tmp_path):
    """The offline check can fail: the same page with OSM tiles tries to reach the tile server."""
    path = save_map(sector_map(small_plan, tiles="openstreetmap"), tmp_path / "osm.html")
    run = open_offline(path)
    assert any(url.startswith("https://tile.openstreetmap.org/") for url in run.requests)


@pytest.fixture(scope="module")
def aura_html(aura_plan, tmp_path_factory) -> tuple[Path, float]:
    """The full AURA map, saved, and the seconds it took to build and save."""
    start = time.perf_counter()
    path = save_map(sector_map(aura_plan), tmp_path_factory.mktemp("map") / "aura.html")
    return path, time.perf_counter() - start


def test_full_aura_map_is_small_quick_and_offline(aura_html):
    path, seconds = aura_html
    size_mb = path.stat().st_size / 1e6
    print(f"AURA map: {size_mb:.2f} MB, built and saved in {seconds:.1f} s")
    assert size_mb < 15 and seconds < 20
    assert external_resources(path.read_text(encoding="utf-8")) == []


def test_group_borders_have_no_sliver_holes(aura_html):
    """Source slivers (6 to 312 m²) are filled; the Enclave des Papes (Vaucluse, 127 km²) stays a hole."""
    groups = geojson_layers(aura_html[0].read_text(encoding="utf-8"))[-1]
    shapes = gpd.GeoDataFrame.from_features(groups["features"], crs=4326).to_crs(2154)
    holes = [shapely.Polygon(ring).area for part in shapes.geometry.explode() for ring in part.interiors]
    assert holes and min(holes) > 1e6


@needs_chromium
def test_full_aura_map_draws_offline(aura_html):
    run = open_offline(aura_html[0], budget_ms=20_000)
    assert drawn_paths(run.dom) == (4025 + 12 + 12 + 2, 4025 + 12)
    assert run.requests == [] and run.console == []


@needs_chromium
def test_diff_map_outlines_every_changed_commune_in_the_browser(small_plan, tmp_path):
    """The re-run's difference map runs without a script error and outlines each changed commune.

    The layer control must come after the changed-communes layer in the page:
    before, Chromium threw ``Cannot read properties of undefined (reading
    'setZIndex')`` and drew no outline.
    """
    from sectorize.report.maps import CHANGED_COLOUR, diff_map

    changed = small_plan.units.head(7)
    changes = pd.DataFrame({
        "insee": changed.index, "name": changed["name"].to_numpy(),
        "from_sector": "S0", "from_worker": ["W99"] * 6 + [""], "to_sector": changed["sector"].to_numpy(),
        "to_worker": changed["worker_id"].to_numpy(), "follow_up": np.arange(7, dtype=float),
        "reason": ["moved"] * 5 + ["handover", "new"],
    })
    page = save_map(diff_map(small_plan, changes), tmp_path / "diff_map.html")
    run = open_offline(page, screenshot=tmp_path / "diff_map.png", window=(800, 600))
    assert run.console == [] and run.requests == []
    outlined = [p for p in re.findall(r"<path\b[^>]*>", run.dom) if f'stroke="{CHANGED_COLOUR}"' in p]
    assert len(outlined) == len(changes)
    assert sum('stroke-dasharray="6 4"' in p for p in outlined) == 1  # the handover is dashed
    assert "Communes whose referent changes (7)" in run.dom and "leaflet-control-layers" in run.dom
