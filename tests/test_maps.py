"""Offline sector map: content, no internet resources, and drawing in headless Chromium.

The Playwright tests drive the pages (Debian's Chromium, network cut: every http(s) request is
aborted and recorded) on one department, Ardèche, or on the Rhône for Lyon's arrondissements; the
full-region map is built and drawn once, in the tests marked ``slow``.
"""

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
from sectorize.report.maps import (
    GROUP_PALETTES,
    external_resources,
    save_map,
    sector_colours,
    sector_map,
    team_colours,
    worker_colours,
)
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
    """The GeoJSON data embedded in the page, one dict per ``L.geoJson`` layer: department borders
    (base map), then the communes of each group, sector borders, group borders."""
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
    for name in [*(f"Communes, group {g}" for g in groups), "Sector borders", "Group borders", "Worker bases",
                 "Base map: departments, towns (offline)", "Commune names (from zoom 10)"]:
        assert f'"{name}"' in page, name
    legend = re.search(r'<details id="[^"]+" class="sector-legend" open>(.*?)</details>', page, re.S)[1]
    assert legend.startswith('<summary class="title">Sectors</summary>')
    for g in groups:
        assert f"Group {g}" in legend
    for w in small_plan.workers.itertuples():
        assert f"<td>{w.sector}</td><td>{w.worker_name.replace(chr(39), '&#x27;')}</td>" in legend
    assert legend.count('class="swatch"') == len(small_plan.workers)
    for alias in ("Commune", "INSEE code", "Referrals/year", "Home-care patients", "Workload", "Sector",
                  "Worker", "Travel time (min)"):
        assert f'"{alias}"' in page, alias


def test_commune_features_carry_names_codes_and_sector_colours(small_plan, small_html):
    departments, *layers = geojson_layers(small_html.read_text(encoding="utf-8"))
    assert len(departments["features"]) == 1  # Ardèche
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


def test_worker_colours_follow_the_id_number_within_the_group_palette():
    colours = worker_colours(["TS01", "TS02", "TS07"], ["A", "A", "B"])
    assert colours == {"TS01": GROUP_PALETTES[0][0], "TS02": GROUP_PALETTES[0][1], "TS07": GROUP_PALETTES[1][6]}
    # the group order decides the palettes; another worker joining or leaving changes no one else's colour
    flipped = worker_colours(["TS01", "TS02", "TS07"], ["A", "A", "B"], group_order=["B", "A"])
    assert flipped["TS07"] == GROUP_PALETTES[0][6] and flipped["TS01"] == GROUP_PALETTES[1][0]
    more = worker_colours(["TS01", "TS02", "TS07", "TS13"], ["A", "A", "B", "A"])
    assert {w: more[w] for w in colours} == colours
    assert worker_colours(["TS02", "TS01"], ["A", "A"]) == {"TS02": GROUP_PALETTES[0][1], "TS01": GROUP_PALETTES[0][0]}


def test_worker_colours_settle_clashes_and_handovers():
    # TS01 and TS09 ask for the same colour (9 - 1 = 8 = 0 mod 8): the first keeps it; TS09 and the
    # id without a number then take the free colours in palette order, in natural order of ids
    colours = worker_colours(["TS09", "TS01", "marie", "TS2"], ["A"] * 4)
    assert colours == {"TS01": GROUP_PALETTES[0][0], "TS2": GROUP_PALETTES[0][1],
                       "TS09": GROUP_PALETTES[0][2], "marie": GROUP_PALETTES[0][3]}
    # a successor takes her predecessor's colour (rerun.handover = {"TS05": "TS12"})
    handed = worker_colours(["TS04", "TS12"], ["A", "A"], successors={"TS05": "TS12"})
    assert handed["TS12"] == GROUP_PALETTES[0][4]
    # four groups: the fourth reuses the first palette, and touching workers are told apart
    ids, groups = ["W1", "W2", "W3", "W4"], ["A", "B", "C", "D"]
    assert worker_colours(ids, groups)["W4"] == GROUP_PALETTES[0][3]
    apart = worker_colours(["W1", "W9", "W2", "W3"], ["A", "D", "B", "C"], group_order=["A", "B", "C", "D"],
                           touching=[("W1", "W9")])
    assert apart["W1"] == GROUP_PALETTES[0][0] == worker_colours(["W9"], ["D"])["W9"]  # both ask for colour 1
    assert apart["W9"] in GROUP_PALETTES[0][1:]
    with pytest.raises(ValueError, match="2 worker ids but 1 groups"):
        worker_colours(["a", "b"], ["A"])


def renamed(plan: Plan, swap: tuple[str, str] | None = None) -> Plan:
    """The same plan with new sector ids (``Z01``, ...), two workers' sectors swapped if ``swap``."""
    workers, units = plan.workers.copy(), plan.units.copy()
    new = {s: f"Z{i:02d}" for i, s in enumerate(sorted(workers["sector"], reverse=True), 1)}
    workers["sector"] = workers["sector"].map(new)
    if swap:
        a, b = (workers["worker_id"] == w for w in swap)
        workers.loc[a, "sector"], workers.loc[b, "sector"] = workers.loc[b, "sector"].item(), workers.loc[a, "sector"].item()
        a_group, b_group = workers.loc[a, "group"].item(), workers.loc[b, "group"].item()
        workers.loc[a, "group"], workers.loc[b, "group"] = b_group, a_group
    by_worker = workers.set_index("worker_id")
    units["sector"] = units["worker_id"].map(by_worker["sector"])
    units["group"] = units["worker_id"].map(by_worker["group"])
    return Plan(scenario=None, units=units, workers=workers, graph=plan.graph)


def worker_fill(page: str) -> dict[str, str]:
    """Fill colour of each worker's communes in a saved map (one colour per worker, checked)."""
    _, *layers = geojson_layers(page)
    seen: dict[str, set] = {}
    for layer in layers[:-2]:
        for f in layer["features"]:
            seen.setdefault(html.unescape(f["properties"]["worker_name"]), set()).add(f["properties"]["style"]["fillColor"])
    assert all(len(c) == 1 for c in seen.values())
    return {w: c.pop() for w, c in seen.items()}


def test_a_worker_keeps_her_colour_when_her_sector_id_changes(small_plan):
    other = renamed(small_plan)
    assert set(sector_colours(other)) != set(sector_colours(small_plan))  # other sector ids
    by_worker = lambda p: {p.workers.set_index(["group", "sector"]).at[k, "worker_id"]: c  # noqa: E731
                           for k, c in sector_colours(p).items()}
    assert by_worker(other) == by_worker(small_plan)
    pages = [sector_map(p).get_root().render() for p in (small_plan, other)]
    assert worker_fill(pages[0]) == worker_fill(pages[1])


def test_team_colours_give_one_colour_per_worker_across_plans(small_plan):
    """W01 moves from group North to South in the second plan: one colour for her on both maps, and
    touching sectors differ on both (the 10 workers of North share its 8 colours)."""
    other = renamed(small_plan, swap=("W01", "W11"))
    colours = team_colours([small_plan, other])
    assert colours["W01"] in GROUP_PALETTES[0]  # her group in the first plan
    for plan in (small_plan, other):
        worker = plan.units["worker_id"]
        assert all(colours[worker[a]] != colours[worker[b]] for a, b in plan.graph.edges if worker[a] != worker[b])
    fills = [worker_fill(sector_map(p, colours=colours).get_root().render()) for p in (small_plan, other)]
    assert fills[0] == fills[1]


def test_sector_colours_of_a_sector_table_without_workers():
    """The web app passes only ``units[["group", "sector"]]`` (and maybe ``worker_id``), an empty graph and
    the group names: sector ids stand for their workers, or the worker ids give the colours."""
    import networkx as nx

    units = pd.DataFrame({"group": ["A", "A", "B"], "sector": ["A1", "A3", "B2"]}, index=["1", "2", "3"])
    shaped = SimpleNamespace(units=units, graph=nx.Graph(), scenario=SimpleNamespace(groups=SimpleNamespace(names=["B", "A"])))
    assert sector_colours(shaped) == {("A", "A1"): GROUP_PALETTES[1][0], ("A", "A3"): GROUP_PALETTES[1][2],
                                      ("B", "B2"): GROUP_PALETTES[0][1]}
    shaped.units = units.assign(worker_id=["TS04", "TS01", "TS02"])
    assert sector_colours(shaped)[("A", "A1")] == GROUP_PALETTES[1][3]


def test_base_map_names_prefectures_towns_and_lyon_as_one_city(aura_lyon):
    """Rhône with Lyon's 9 arrondissements: Lyon is one town (a prefecture), the arrondissements get a zoom button."""
    from sectorize.report.maps import _towns, _zoom_targets

    units = aura_lyon.units[aura_lyon.units["dep"].isin(["69", "07"])]
    towns = {t[2]: t for t in _towns(units, shapely.point_on_surface(units.geometry.to_numpy()))}
    assert towns["Lyon"][3] and towns["Privas"][3]  # prefectures: major, although Privas has 8,538 inhabitants
    assert not towns["Rillieux-la-Pape"][3]  # 31,000 inhabitants: from zoom 9
    assert not any("Arrondissement" in name for name in towns) and "Annonay" not in towns  # 16,000
    assert 45.70 < towns["Lyon"][0] < 45.80 and 4.80 < towns["Lyon"][1] < 4.90
    targets = {name: box for name, box, _ in _zoom_targets(units, tuple(units.total_bounds))}
    assert list(targets) == ["Region", "Lyon"]
    (south, west), (north, east) = targets["Lyon"]
    assert 45.70 < south < north < 45.81 and 4.77 < west < east < 4.90


def test_local_tile_folder_is_background_without_internet(small_plan, tmp_path):
    folder = tmp_path / "tiles"
    (folder / "9" / "263").mkdir(parents=True)
    page = sector_map(small_plan, tiles=str(folder)).get_root().render()
    assert f'"{folder.as_uri()}/{{z}}/{{x}}/{{y}}.png"' in page and "Background map (local tiles)" in page
    assert external_resources(page) == [] and "need internet" not in page
    served = sector_map(small_plan, tiles="http://localhost:8080/{z}/{x}/{y}.png").get_root().render()
    assert "need internet" not in served and "Background map (local tiles)" in served
    online = sector_map(small_plan, tiles="https://tiles.example.org/{z}/{x}/{y}.png").get_root().render()
    assert "Background map tiles need internet" in online


def test_legend_names_the_scenario_and_warns_of_violations(aura):
    """Sectors numbered 1, 2, ... (int) work as well as text labels."""
    units = aura.units[aura.units["dep"] == "15"]
    sector = units["canton"].str[2:].astype(int)
    plan = make_plan(units, aura.graph, pd.Series("Cantal", index=units.index), sector)
    plan.scenario = SimpleNamespace(name="Cantal <test>")
    plan.violations = ["sector 3 is not connected", "caseload of sector 5 is 30 % over target"]
    page = sector_map(plan).get_root().render()
    assert '<summary class="title">Sectors: Cantal &lt;test&gt;</summary>' in page
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
    run = open_offline(small_html, screenshot=tmp_path / "map.png", window=(1000, 800))
    n_units, n_workers = len(small_plan.units), len(small_plan.workers)
    n_groups = small_plan.units["group"].nunique()
    # Leaflet draws one SVG path per GeoJSON feature and per circle marker (the
    # department border is one); only communes and bases take the mouse.
    assert drawn_paths(run.dom) == (1 + n_units + n_workers + n_workers + n_groups, n_units + n_workers)
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


@pytest.mark.slow
def test_full_aura_map_is_small_quick_and_offline(aura_html):
    path, seconds = aura_html
    size_mb = path.stat().st_size / 1e6
    print(f"AURA map: {size_mb:.2f} MB, built and saved in {seconds:.1f} s")
    assert size_mb < 15 and seconds < 20
    assert external_resources(path.read_text(encoding="utf-8")) == []


@pytest.mark.slow
def test_group_borders_have_no_sliver_holes(aura_html):
    """Source slivers (6 to 312 m²) are filled; the Enclave des Papes (Vaucluse, 127 km²) stays a hole."""
    groups = geojson_layers(aura_html[0].read_text(encoding="utf-8"))[-1]
    shapes = gpd.GeoDataFrame.from_features(groups["features"], crs=4326).to_crs(2154)
    holes = [shapely.Polygon(ring).area for part in shapes.geometry.explode() for ring in part.interiors]
    assert holes and min(holes) > 1e6


@pytest.mark.slow
@needs_chromium
def test_full_aura_map_draws_offline(aura_html):
    run = open_offline(aura_html[0], budget_ms=20_000)
    assert drawn_paths(run.dom) == (12 + 4025 + 12 + 12 + 2, 4025 + 12)  # 12 departments
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


# --- driving the pages (Playwright) -----------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's, through Playwright), no host name resolved."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("no chromium, chromium-browser or google-chrome on PATH")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, headless=True,
                                     args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND"])
        yield chromium
        chromium.close()


class Watched:
    """A page opened offline: every http(s)/ws request is aborted and kept, with console errors and warnings."""

    def __init__(self, browser, path: Path, viewport: tuple[int, int] = (1200, 850)):
        self.context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        self.page = self.context.new_page()
        self.messages: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.messages.append(f"uncaught: {e}"))
        self.context.route(re.compile(r"^(https?|wss?)://"), self._refuse)
        self.page.goto(path.resolve().as_uri())
        for frame in self.page.frames:
            if frame is self.page.main_frame and self.page.frames[1:]:
                continue  # a comparison page: its maps are in the frames
            frame.wait_for_function("() => window.sectorizeMap !== undefined")

    def _refuse(self, route) -> None:
        self.requests.append(route.request.url)
        route.abort()

    def clean(self) -> bool:
        return self.messages == [] and self.requests == []

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def watched(browser):
    """Open pages with :class:`Watched`; every page must end without error nor request."""
    pages: list[Watched] = []

    def open_page(path: Path, viewport: tuple[int, int] = (1200, 850)) -> Watched:
        pages.append(Watched(browser, path, viewport))
        return pages[-1]

    yield open_page
    for w in pages:
        w.close()
    assert all(w.messages == [] for w in pages), [w.messages for w in pages]
    assert all(w.requests == [] for w in pages), [w.requests for w in pages]


@needs_chromium
def test_search_box_finds_a_commune_by_name_postcode_or_code(watched, small_html):
    page = watched(small_html).page
    search = lambda q, n=10: page.evaluate("([q, n]) => sectorizeMap.search(q, n)", [q, n])  # noqa: E731
    assert search("saint etienne de fontbellon")[0]["name"] == "Saint-Étienne-de-Fontbellon"  # accents, hyphens
    assert search("ST-ÉTIENNE-DE-FONTB")[0]["insee"] == "07231"  # "St" for "Saint", case
    assert [h["name"] for h in search("07200", 2)] == ["Aubenas", "Saint-Étienne-de-Fontbellon"]  # most populous first
    assert search("07186")[0]["name"] == "Privas" and search("zzz") == []
    box = page.locator(".sector-search input")
    box.fill("privas")
    assert page.locator(".sector-search li").first.inner_text().startswith("Privas")
    box.press("Enter")
    assert page.evaluate("sectorizeMap.selected()") == "07186"
    assert page.evaluate("sectorizeMap.map.getZoom()") >= 10
    assert page.evaluate("sectorizeMap.map.getBounds().contains([44.735, 4.599])")  # Privas is in view
    assert page.locator("path.search-highlight").count() == 1  # outlined
    assert "Privas" in page.locator(".leaflet-tooltip").inner_text()
    assert "Privas" in page.locator(".commune-label").all_inner_texts()
    box.fill("nowhere at all")
    assert page.locator(".sector-search li").inner_text() == "No commune matches"


@needs_chromium
def test_commune_names_show_from_zoom_10_only(watched, small_html):
    page = watched(small_html).page
    assert page.evaluate("sectorizeMap.map.getZoom()") < 10
    assert page.locator(".commune-label").count() == 0
    assert page.locator(".town-label span", has_text="Privas").is_visible()  # the prefecture, on the base map
    page.evaluate("void sectorizeMap.map.setView([44.62, 4.39], 11, {animate: false})")
    names = page.locator(".commune-label").all_inner_texts()
    assert len(names) > 10 and "Aubenas" in names
    assert not page.locator(".town-label span", has_text="Privas").is_visible()  # commune names took over
    page.evaluate("void sectorizeMap.map.setZoom(9, {animate: false})")
    assert page.locator(".commune-label").count() == 0


@needs_chromium
def test_full_screen_and_folding_legend(watched, small_html):
    page = watched(small_html).page
    button = page.locator("a.leaflet-control-zoom-fullscreen")
    button.click()
    page.wait_for_function("() => sectorizeMap.map._isFullscreen === true")
    assert page.evaluate("document.fullscreenElement === sectorizeMap.map.getContainer()")
    assert button.get_attribute("title") == "Exit full screen"
    button.click()
    page.wait_for_function("() => !sectorizeMap.map._isFullscreen && !document.fullscreenElement")

    legend, table = page.locator("details.sector-legend"), page.locator(".sector-legend table")
    assert legend.evaluate("d => d.open") and table.is_visible()
    legend.locator("summary").click()
    assert not legend.evaluate("d => d.open") and not table.is_visible()
    legend.locator("summary").click()
    assert table.is_visible()
    assert page.locator(".leaflet-control-layers-expanded").count() == 1


@needs_chromium
def test_small_screens_start_with_legend_and_layers_folded(watched, small_html):
    page = watched(small_html, viewport=(600, 450)).page
    assert not page.locator("details.sector-legend").evaluate("d => d.open")
    assert page.locator(".leaflet-control-layers").count() == 1
    assert page.locator(".leaflet-control-layers-expanded").count() == 0


@pytest.fixture(scope="module")
def rhone_html(aura_lyon, tmp_path_factory) -> Path:
    """The Rhône with Lyon's 9 arrondissements (one sector), one sector per canton elsewhere."""
    units = aura_lyon.units[aura_lyon.units["dep"] == "69"].copy()
    units["canton"] = units["canton"].fillna("Lyon")
    group = pd.Series(np.where(units["lat"] >= units["lat"].median(), "North", "South"), index=units.index)
    plan = make_plan(units, aura_lyon.graph, group, units["canton"])
    return save_map(sector_map(plan), tmp_path_factory.mktemp("map") / "rhone.html")


@needs_chromium
def test_lyon_button_fits_the_arrondissements(watched, rhone_html, tmp_path):
    page = watched(rhone_html).page
    assert page.locator(".sector-zoomto a").all_inner_texts() == ["Region", "Lyon"]
    page.locator(".sector-zoomto a", has_text="Lyon").click()
    assert page.evaluate("sectorizeMap.map.getZoom()") >= 11
    for insee in [f"6938{i}" for i in range(1, 10)]:
        point = page.evaluate("c => sectorizeMap.search(c)[0]", insee)
        assert point["name"].startswith("Lyon")
    names = page.locator(".commune-label").all_inner_texts()
    assert {"Lyon 1er", "Lyon 3e", "Lyon 7e"} <= set(names)
    page.screenshot(path=tmp_path / "lyon.png")
    page.locator(".sector-zoomto a", has_text="Region").click()
    assert page.evaluate("sectorizeMap.map.getZoom()") < 10


# --- the comparison page ---------------------------------------------------------------


def overlap(a: dict, b: dict) -> bool:
    """Whether two Playwright bounding boxes overlap."""
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def test_worker_changes_count_communes_and_patients_moved(small_plan):
    """Plan B: W19 has left, her communes went to W18; the reference counts 2 patients in follow-up per commune."""
    from sectorize.report.compare import compare_maps, worker_changes

    reference = Plan(None, small_plan.units.assign(follow_up=2), small_plan.workers, small_plan.graph)
    units, workers = small_plan.units.copy(), small_plan.workers[small_plan.workers["worker_id"] != "W19"]
    hers = units.index[units["worker_id"] == "W19"]
    w18 = workers.set_index("worker_id").loc["W18"]
    units.loc[hers, ["worker_id", "worker_name", "sector", "group"]] = ["W18", w18.worker_name, w18.sector, w18.group]
    b = Plan(None, units, workers, small_plan.graph)
    table = worker_changes({"2026": reference, "2027": b}).set_index(["plan", "worker_id"])
    assert table.attrs == {"reference": "2026", "moved_unit": "patients in follow-up",
                           "moved": {"2026": {"communes": 0, "moved": 0.0},
                                     "2027": {"communes": len(hers), "moved": 2.0 * len(hers)}}}
    assert ("2027", "W19") not in table.index and len(table) == 2 * len(small_plan.workers) - 1
    row = table.loc[("2027", "W18")]
    assert (row.communes_out, row.communes_in, row.moved_in) == (0, len(hers), 2.0 * len(hers))
    assert row.communes == table.loc[("2026", "W18"), "communes"] + len(hers)
    assert row.caseload == pytest.approx(small_plan.units.loc[units["worker_id"] == "W18", "workload"].sum())
    assert table.loc[("2026", "W19"), ["communes_out", "moved_out"]].tolist() == [0, 0.0]
    assert worker_changes({"a": small_plan, "b": b}, reference="b").attrs["moved_unit"] == "caseload (weighted units)"
    with pytest.raises(ValueError, match="reference 'c' is not one of the plans"):
        worker_changes({"a": small_plan}, reference="c")
    page = compare_maps({"2026": reference, "2027": b}, simplify_m=500)
    assert page.count('class="plan-map"') == 2 and "not in this plan" in page and external_resources(page) == []


@needs_chromium
def test_comparison_page_shares_one_legend_and_worker_colours(watched, small_plan, tmp_path):
    """Plan B swaps W01's and W02's sector ids and gives 3 of W01's communes to W02."""
    from sectorize.report.compare import compare_maps

    b = renamed(small_plan, swap=("W01", "W02"))
    given = b.units.index[b.units["worker_id"] == "W01"][:3]
    w02 = b.workers.set_index("worker_id").loc["W02"]
    b.units.loc[given, ["worker_id", "worker_name", "sector", "group"]] = ["W02", w02.worker_name, w02.sector, w02.group]
    path = tmp_path / "compare.html"
    path.write_text(compare_maps({"Plan A": small_plan, "Plan B": b}, height_px=420, simplify_m=200), encoding="utf-8")
    assert external_resources(path.read_text(encoding="utf-8")) == []

    for viewport in [(1400, 900), (800, 900)]:  # legend beside the maps, then above them
        w = watched(path, viewport)
        legend = w.page.locator("#legend").bounding_box()
        maps = [f.bounding_box() for f in w.page.locator("iframe.plan-map").all()]
        assert len(maps) == 2 and not any(overlap(legend, m) for m in maps), (viewport, legend, maps)
        assert w.page.locator("#legend li").count() == len(small_plan.workers)
    page = w.page
    page.screenshot(path=tmp_path / "compare.png", full_page=True)
    frames = page.frames[1:]
    for frame in frames:  # no layer control, legend or search box over the maps
        assert frame.locator(".leaflet-control-layers, .sector-legend, .sector-search").count() == 0
    commune = small_plan.units.index[small_plan.units["worker_id"] == "W01"][-1]
    assert small_plan.units.at[commune, "sector"] != b.units.at[commune, "sector"]
    colours = [f.evaluate("c => sectorizeMap.colourOf(c)", commune) for f in frames]
    swatch = page.locator('#legend li[data-worker="W01"] .swatch').evaluate("s => getComputedStyle(s).backgroundColor")
    assert colours[0] == colours[1] and swatch == "rgb({}, {}, {})".format(*bytes.fromhex(colours[0][1:]))

    views = [f.evaluate("[sectorizeMap.map.getZoom(), sectorizeMap.map.getCenter().lat]") for f in frames]
    assert views[0] == views[1]  # all start from the same view
    frames[0].evaluate("void sectorizeMap.map.setView([44.62, 4.39], 11)")  # the maps move together
    page.wait_for_function("() => document.querySelectorAll('iframe')[1].contentWindow.sectorizeMap.map.getZoom() === 11")
    page.fill("#find-input", "aubenas")
    page.click("#find button")
    page.wait_for_function("() => document.getElementById('find-status').textContent !== ''")
    assert "Aubenas (INSEE 07019)" in page.inner_text("#find-status")
    assert [f.evaluate("sectorizeMap.selected()") for f in frames] == ["07019", "07019"]

    rows = {r.locator("td").nth(1).inner_text(): r for r in page.locator("#workers-table tr").all()[2:]}
    assert len(rows) == len(small_plan.workers)
    w01 = [rows[name] for name in rows if name.endswith("(W01)")][0].inner_text()
    assert "reference" in w01 and "−3 / +0 communes" in w01
    assert "3" in page.locator("#plans-table tr").nth(2).locator("td").nth(4).inner_text()
    png = read_png(tmp_path / "compare.png")
    assert png.share_unlike((0xFA, 0xFA, 0xFA)) > 0.2
