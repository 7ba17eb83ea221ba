"""Offline Folium map of a plan: communes coloured by sector, borders, worker bases, legend.

The map is one self-contained HTML file that draws without internet:
Leaflet 1.9.4 (vendored in ``sectorize/assets/leaflet``) is inlined, its
images become data URIs, and the CDN links that folium adds by default
(Leaflet, jQuery, Bootstrap, Font Awesome, awesome-markers) are removed.
Nothing in the map needs jQuery: no popups (tooltips only), no
``Marker`` icons (worker bases are circle markers).

Example
-------
>>> from sectorize.report.maps import sector_map, save_map, external_resources
>>> m = sector_map(plan)                       # doctest: +SKIP
>>> path = save_map(m, "out/sectors.html")     # doctest: +SKIP
>>> external_resources(path.read_text("utf-8"))  # doctest: +SKIP
[]
"""

from __future__ import annotations

import base64
import os
import re
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import folium
import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from folium.utilities import JsCode

from geodata.adjacency import metric_crs
from sectorize.store.atomic import atomic_write_text
from sectorize.plan import Plan

__all__ = ["GROUP_PALETTES", "external_resources", "save_map", "sector_colours", "sector_map"]

#: Vendored Leaflet (npm package ``leaflet@1.9.4``, ``dist/`` folder).
LEAFLET_DIR = Path(__file__).parents[1] / "assets" / "leaflet"

#: One palette per group, with hues that differ between groups: blues and
#: greens for the first group, reds and oranges for the second, purples and
#: pinks for the third; further groups reuse them in turn. Within a palette,
#: neighbouring entries differ in hue or lightness.
GROUP_PALETTES: tuple[tuple[str, ...], ...] = (
    ("#1f78b4", "#33a02c", "#a6cee3", "#b2df8a", "#08306b", "#41b6c4", "#005a32", "#7fcdbb"),
    ("#e31a1c", "#ff7f00", "#fb9a99", "#fdbf6f", "#b15928", "#fed976", "#99000d", "#f768a1"),
    ("#6a3d9a", "#ae017e", "#cab2d6", "#fcc5c0", "#54278f", "#df65b0", "#3f007d", "#bcbddc"),
)

#: Columns of ``plan.units`` that are never shown as demand in tooltips.
_NOT_DEMAND = {
    "population", "workload", "travel_min", "centre_travel_min", "base_travel_min", "worker_id", "area_km2", "canton_share",
    "lon", "lat", "pt_lon", "pt_lat",
}
#: Tooltip labels of the usual demand measures; other columns show their name.
_DEMAND_LABELS = {"referrals": "Referrals/year", "home_care": "Home-care patients"}

#: Gaps between communes narrower than this (metres) are slivers of the
#: source data; the map fills them.
_GAP_WIDTH_M = 50.0

_UNIT_COLUMNS = ("name", "group", "sector", "worker_name", "workload", "geometry")
_WORKER_COLUMNS = ("worker_id", "worker_name", "fte", "group", "sector", "target", "base_lon", "base_lat")

_STYLE = """
.leaflet-container { background: #f4f3ef; }
.sector-legend { background: rgba(255, 255, 255, 0.92); padding: 6px 8px; font: 12px/1.3 sans-serif;
  border-radius: 4px; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.3); max-height: 55vh; overflow-y: auto; }
.sector-legend table { border-collapse: collapse; }
.sector-legend th { text-align: left; padding-top: 4px; }
.sector-legend td { padding: 1px 4px; white-space: nowrap; }
.sector-legend td.num { text-align: right; }
.sector-legend .swatch { display: inline-block; width: 14px; height: 10px; border: 1px solid #555; }
.sector-legend .title { font-weight: bold; font-size: 13px; }
.sector-legend .warning { color: #b00020; font-weight: bold; }
.sector-legend .online { color: #555; font-style: italic; }
.sector-legend .note { color: #333; max-width: 26em; white-space: normal; padding-top: 3px; }
"""

# Thicken a commune's outline while the mouse is over it.
_HOVER = JsCode(
    """function (feature, layer) {
    layer.on("mouseover", function () { layer.setStyle({weight: 2, color: "#000000"}); });
    layer.on("mouseout", function () { layer.setStyle({weight: 0.3, color: "#ffffff"}); });
}"""
)


class _Legend(folium.MacroElement):
    """The legend ``<div>``, moved into a Leaflet control at the bottom right."""

    _template = folium.template.Template(
        """
        {% macro html(this, kwargs) %}
        <div id="{{ this.get_name() }}" class="sector-legend">{{ this.content }}</div>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }}_control = L.control({position: "bottomright"});
        {{ this.get_name() }}_control.onAdd = function () {
            var div = document.getElementById("{{ this.get_name() }}");
            L.DomEvent.disableClickPropagation(div);
            L.DomEvent.disableScrollPropagation(div);
            return div;
        };
        {{ this.get_name() }}_control.addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, content: str):
        super().__init__()
        self._name = "SectorLegend"
        self.content = content


def sector_map(
    plan: Plan, *, tiles: str | None = None, simplify_m: float = 50.0, suppress_below: int | None = None
) -> folium.Map:
    """Map of a plan that draws without internet: :func:`sector_layers` and the layer control."""
    m = sector_layers(plan, tiles=tiles, simplify_m=simplify_m, suppress_below=suppress_below)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def sector_layers(
    plan: Plan, *, tiles: str | None = None, simplify_m: float = 50.0, suppress_below: int | None = None
) -> folium.Map:
    """Map of a plan that draws without internet, without its layer control.

    The layer control must come after every layer in the page (it refers to
    each layer's script variable), so a map that adds layers of its own
    (:func:`diff_map`) starts from here and adds the control last.

    Layers (each can be switched on and off in the layer control):

    - ``Communes, group <g>``: one per group; each commune filled with its
      sector's colour (:func:`sector_colours`), with a tooltip giving the
      commune name, INSEE code, population, demand columns (e.g.
      referrals/year, home-care patients), workload, sector, worker and
      travel time (minutes);
    - ``Sector borders`` (thin) and ``Group borders`` (bold): communes
      dissolved by sector and by group;
    - ``Worker bases``: a circle per worker in the sector colour, tooltip
      with worker name, FTE and sector.

    A legend lists, per group, each sector's colour, worker, FTE, caseload
    (sum of ``workload``), target and gap in percent, and the checker's
    violations if there are any. The view fits the region.

    Parameters
    ----------
    plan
        The plan to draw (see :class:`sectorize.plan.Plan`). Demand columns
        are the numeric columns of ``plan.units`` other than population,
        workload, travel time, areas and coordinates.
    tiles
        ``None`` (default): plain background, no network access. Any other
        value (e.g. ``"openstreetmap"`` or a tile URL template) adds that
        folium tile layer, which needs internet to show.
    simplify_m
        Tolerance in metres of the coverage simplification of commune
        borders (shared borders stay shared: no gaps, no overlaps); 0 keeps
        the borders as they are. Coordinates are rounded to 5 decimals
        (about 1 m).
    suppress_below
        For maps that leave the team: per-commune demand and workload under
        this count show as ``"<N"`` in the tooltips
        (:func:`sectorize.report.privacy.suppress_small`); ``None`` shows them all.

    Returns
    -------
    folium.Map
        Save it with :func:`save_map`; in Jupyter it displays as is.

    Raises
    ------
    ValueError
        If a required column is missing, a commune has no group, sector or
        worker, a sector of ``plan.units`` has no row in ``plan.workers``,
        or a worker's base coordinates are missing.
    """
    _check_plan(plan)
    if simplify_m < 0:
        raise ValueError(f"simplify_m must be >= 0 metres, got {simplify_m}")
    units = plan.units
    workers = plan.workers.sort_values(["group", "sector"], kind="stable")
    colours = sector_colours(plan)
    communes, sectors, groups = _display_geometries(units, simplify_m)

    x0, y0, x1, y1 = units.to_crs(4326).total_bounds
    m = folium.Map(location=[(y0 + y1) / 2, (x0 + x1) / 2], zoom_start=8, tiles=None,
                   control_scale=True, zoom_snap=0.25, font_size="0.8rem")
    _make_offline(m)
    if tiles is not None:
        folium.TileLayer(tiles, name="Background map (needs internet)").add_to(m)
    folium.map.CustomPane("sector_borders", z_index=410).add_to(m)
    folium.map.CustomPane("group_borders", z_index=420).add_to(m)
    folium.map.CustomPane("worker_bases", z_index=430, pointer_events=True).add_to(m)

    fields, aliases = _tooltip_fields(units)
    hidden = [f for f in fields if f not in ("name", "insee", "population", "sector", "worker_name", "travel_min")]
    table = _commune_table(units, fields, colours, suppress=(hidden, suppress_below))
    for group in pd.unique(units["group"]):
        in_group = (units["group"] == group).to_numpy()
        layer = gpd.GeoDataFrame(table[in_group], geometry=communes[in_group], crs=4326)
        folium.GeoJson(
            _geojson(layer), name=f"Communes, group {group}",
            tooltip=folium.GeoJsonTooltip(fields=fields, aliases=aliases, sticky=True),
            on_each_feature=_HOVER, color="#ffffff", weight=0.3, fill_opacity=0.75,
        ).add_to(m)
    folium.GeoJson(_geojson(sectors), name="Sector borders", pane="sector_borders", interactive=False,
                   fill=False, color="#333333", weight=1.2).add_to(m)
    folium.GeoJson(_geojson(groups), name="Group borders", pane="group_borders", interactive=False,
                   fill=False, color="#000000", weight=3.5).add_to(m)

    bases = folium.FeatureGroup(name="Worker bases").add_to(m)
    for w in workers.itertuples(index=False):
        base = folium.CircleMarker(
            location=[w.base_lat, w.base_lon], radius=7,
            color="#000000", weight=2, fill=True, fill_color=colours[(w.group, w.sector)],
            fill_opacity=1.0,
            tooltip=folium.Tooltip(
                f"<b>{_text(w.worker_name)}</b><br>FTE {_number(w.fte)}<br>"
                f"Sector {_text(w.sector)} (group {_text(w.group)})"
            ),
        )
        base.options["pane"] = "worker_bases"  # folium's CircleMarker drops a ``pane`` keyword
        base.add_to(bases)

    _Legend(_legend_html(plan, workers, colours, online=tiles is not None)).add_to(m)
    m.fit_bounds([[y0, x0], [y1, x1]])
    return m


def sector_colours(plan: Plan) -> dict[tuple[object, object], str]:
    """Fill colour of each sector, keyed by ``(group, sector)``.

    Group *i* (in the order of the scenario's ``groups.names``, then of first
    appearance in ``plan.units``) takes its
    colours from ``GROUP_PALETTES[i % 3]``. When a group has no more
    sectors than its palette has colours, every sector gets its own colour,
    by its number when sector ids are group name + number (``"A3"``: the
    third colour, so colours follow sector ids from one plan to the next);
    otherwise colours are reused on the sector adjacency of ``plan.graph``
    so that touching sectors differ: an equitable colouring with the whole
    palette (:func:`networkx.equitable_color`, when no sector touches as
    many sectors as there are colours), else a greedy one.

    Example
    -------
    >>> sector_colours(plan)[("A", "01")]  # doctest: +SKIP
    '#1f78b4'
    """
    units = plan.units
    colours: dict[tuple[object, object], str] = {}
    sector_of = dict(zip(units.index, zip(units["group"], units["sector"])))
    for i, group in enumerate(_group_order(plan)):
        palette = GROUP_PALETTES[i % len(GROUP_PALETTES)]
        keys = sorted({k for k in sector_of.values() if k[0] == group}, key=lambda k: str(k[1]))
        if len(keys) <= len(palette):
            # sector "A3" takes colour 3 of its group's palette, so a sector keeps its colour
            # from one year's plan to the next even when other sectors come or go
            numbers = [_sector_number(str(group), str(k[1])) for k in keys]
            slots = [None if n is None else (n - 1) % len(palette) for n in numbers]
            if None not in slots and len(set(slots)) == len(slots):
                colours.update({k: palette[j] for k, j in zip(keys, slots)})
            else:
                colours.update({k: palette[j] for j, k in enumerate(keys)})
            continue
        touching = nx.Graph()
        touching.add_nodes_from(keys)
        touching.add_edges_from(
            (sector_of[a], sector_of[b]) for a, b in plan.graph.edges
            if a in sector_of and b in sector_of
            and sector_of[a] != sector_of[b] and sector_of[a][0] == group == sector_of[b][0]
        )
        if max((d for _, d in touching.degree), default=0) < len(palette):
            index = nx.equitable_color(touching, len(palette))
        else:
            index = nx.greedy_color(touching, strategy="smallest_last")
        colours.update({k: palette[index[k] % len(palette)] for k in keys})
    return colours


def _group_order(plan: Plan) -> list:
    """Groups in the scenario's order (stable from plan to plan), then any other in order of appearance."""
    present = list(pd.unique(plan.units["group"]))
    names = list(getattr(getattr(getattr(plan, "scenario", None), "groups", None), "names", None) or [])
    return [g for g in names if g in present] + [g for g in present if g not in names]


def _sector_number(group: str, sector: str) -> int | None:
    """The number of a sector id made of its group name and a number (``"A3"`` -> 3), else ``None``."""
    match = re.fullmatch(re.escape(group) + r"0*(\d+)", sector)
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


def save_map(m: folium.Map, path: str | os.PathLike) -> Path:
    """Write the map as one HTML file (UTF-8), atomically.

    The page is written to a temporary file in the same folder, then moved
    onto ``path`` with :func:`os.replace`
    (:func:`sectorize.store.atomic.atomic_write_text`), so a reader never sees a
    half-written map.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot save the map to {path}: folder {path.parent} does not exist")
    atomic_write_text(path, m.get_root().render())
    return path


def external_resources(html: str) -> list[str]:
    """Every internet URL the page loads by itself, in order, without repeats.

    Looks at:

    - tag attributes that load something: ``src`` (script, img, iframe,
      audio, video, source, track, embed, input), ``srcset``, ``poster``,
      ``data`` of ``<object>``, ``background``, ``href`` of ``<link>`` with a
      loading ``rel`` (stylesheet, icon, preload, preconnect, ...) and
      ``<meta http-equiv="refresh">``;
    - CSS in ``<style>`` and ``style=""``: ``url(...)`` and ``@import``;
    - inline scripts: the URL given to ``L.tileLayer``, ``L.tileLayer.wms``,
      ``L.imageOverlay``, ``L.videoOverlay``, ``$.ajax`` and ``fetch``.

    Only ``http://``, ``https://`` and protocol-relative ``//`` URLs count.
    Links that are only followed when clicked (``<a href>``, e.g. tile
    attributions) and URLs that appear as plain text are ignored. URLs that
    other script code builds at run time are not detected; a browser with
    the network cut off is the final check.

    Example
    -------
    >>> external_resources('<script src="https://cdn.example.org/x.js"></script><a href="https://osm.org">')
    ['https://cdn.example.org/x.js']
    """
    finder = _ResourceFinder()
    finder.feed(html)
    finder.close()
    return list(dict.fromkeys(u for u in finder.urls if _is_external(u)))


# --- plan checks and table -------------------------------------------------------------


def _check_plan(plan: Plan) -> None:
    units, workers = plan.units, plan.workers
    missing = [c for c in _UNIT_COLUMNS if c not in units.columns]
    if missing:
        raise ValueError(f"plan.units lacks column(s) {missing}; a plan's units need {list(_UNIT_COLUMNS)}")
    missing = [c for c in _WORKER_COLUMNS if c not in workers.columns]
    if missing:
        raise ValueError(
            f"plan.workers lacks column(s) {missing}; a plan's workers need {list(_WORKER_COLUMNS)}"
        )
    if units.crs is None:
        raise ValueError("plan.units has no CRS; set it (EPSG:4326) before drawing the map")
    if len(units) == 0:
        raise ValueError("plan.units is empty: there is nothing to draw")
    for column in ("group", "sector", "worker_name"):
        empty = units.index[units[column].isna()]
        if len(empty):
            raise ValueError(
                f"{len(empty)} commune(s) have no {column} in plan.units, e.g. {list(empty[:5])}; "
                "every commune must belong to a sector"
            )
    known = set(zip(workers["group"], workers["sector"]))
    orphans = units.index[[k not in known for k in zip(units["group"], units["sector"])]]
    if len(orphans):
        raise ValueError(
            f"{len(orphans)} commune(s) are in a (group, sector) with no row in plan.workers, "
            f"e.g. {list(orphans[:5])}"
        )
    no_base = workers[workers["base_lon"].isna() | workers["base_lat"].isna()]
    if len(no_base):
        raise ValueError(
            f"worker(s) {no_base['worker_name'].tolist()} have no base_lon/base_lat in plan.workers; "
            "give each worker a base"
        )


def _tooltip_fields(units: gpd.GeoDataFrame) -> tuple[list[str], list[str]]:
    demand = [
        c for c in units.columns
        if c not in _NOT_DEMAND and c != "geometry" and pd.api.types.is_numeric_dtype(units[c])
        and not pd.api.types.is_bool_dtype(units[c])
    ]
    fields = ["name", "insee"] + (["population"] if "population" in units.columns else [])
    fields += demand + ["workload", "sector", "worker_name"]
    fields += ["travel_min"] if "travel_min" in units.columns else []
    labels = {"name": "Commune", "insee": "INSEE code", "population": "Population",
              "workload": "Workload", "sector": "Sector", "worker_name": "Worker",
              "travel_min": "Travel time (min)", **_DEMAND_LABELS}
    return fields, [labels.get(f, f) for f in fields]


def _commune_table(units: gpd.GeoDataFrame, fields: list[str], colours: dict,
                   suppress: tuple[list[str], int | None] = ([], None)) -> pd.DataFrame:
    """Tooltip values as display strings, plus each commune's Leaflet style.

    ``suppress = (columns, threshold)``: counts of those columns below the
    threshold read ``"<threshold"`` (:func:`sectorize.report.privacy.suppress_small`).
    """
    from sectorize.report.privacy import suppress_small

    hidden, threshold = suppress
    table = pd.DataFrame(index=units.index)
    for f in fields:
        values = units.index if f == "insee" else units[f]
        if threshold is not None and f in hidden:
            table[f] = [_text(v) for v in suppress_small(units[[f]], [f], threshold)[f]]
            continue
        numeric = f != "insee" and pd.api.types.is_numeric_dtype(units[f])
        table[f] = [_number(v) if numeric else _text(v) for v in values]
    table["style"] = [{"fillColor": colours[k]} for k in zip(units["group"], units["sector"])]
    return table.reset_index(drop=True)


def _legend_html(plan: Plan, workers: pd.DataFrame, colours: dict, *, online: bool) -> str:
    """Per group, each sector's colour, worker, FTE, new referrals/year (when the demand has them) and
    caseload as a share of the worker's target; the caseload formula below when the scenario is known."""
    caseload = plan.units.groupby(["group", "sector"])["workload"].sum()
    name = getattr(plan.scenario, "name", None) if plan.scenario is not None else None
    basis = _demand_basis(plan)
    referrals = basis["columns"]["referrals"] if basis else ("referrals" if "referrals" in plan.units.columns else None)
    approx = "≈ " if basis and basis["values"] == "expected" else ""
    per_sector = plan.units.groupby(["group", "sector"])[referrals].sum() if referrals else None
    parts = [f'<div class="title">Sectors{": " + _text(name) if name else ""}</div>']
    if plan.violations:
        parts.append(f'<div class="warning">{len(plan.violations)} checker violation(s): '
                     "see the sector table</div>")
    parts.append("<table>")
    columns = 5 + (referrals is not None)
    for group, rows in workers.groupby("group", sort=False):
        parts.append(f'<tr><th colspan="{columns}">Group {_text(group)}</th></tr>'
                     "<tr><td></td><td>Sector</td><td>Worker</td><td>FTE</td>"
                     + ("<td>Referrals/year</td>" if referrals else "") + "<td>Caseload vs target</td></tr>")
        for w in rows.itertuples(index=False):
            load = float(caseload.get((w.group, w.sector), 0.0))
            share = f"{load / w.target * 100:.0f} %" if float(w.target) > 0 else "–"
            new = (f'<td class="num">{approx}{_number(per_sector.get((w.group, w.sector), 0.0))}</td>'
                   if referrals else "")
            parts.append(
                f'<tr><td><span class="swatch" style="background:{colours[(w.group, w.sector)]}"></span></td>'
                f"<td>{_text(w.sector)}</td><td>{_text(w.worker_name)}</td>"
                f'<td class="num">{_number(w.fte)}</td>{new}<td class="num">{share}</td></tr>'
            )
    parts.append("</table>")
    if basis:
        note = f"{basis['formula'].capitalize()}; each worker's target is the total shared by FTE."
        if approx:
            note += " ≈: expected values of the synthetic demand."
        parts.append(f'<div class="note">{_text(note)}</div>')
    if online:
        parts.append('<div class="online">Background map tiles need internet.</div>')
    return "".join(parts)


def _demand_basis(plan: Plan) -> dict | None:
    """:func:`sectorize.report.kpi.demand_basis` of the plan, or ``None`` without a scenario's demand."""
    if getattr(plan.scenario, "demand", None) is None:
        return None
    from sectorize.report.kpi import demand_basis

    return demand_basis(plan)


def _geojson(layer: gpd.GeoDataFrame) -> dict:
    """GeoJSON FeatureCollection without the per-feature bounding boxes and ids (smaller page)."""
    return layer.to_geo_dict(drop_id=True, show_bbox=False)


def _text(value: object) -> str:
    """HTML-escaped text, also safe inside a JavaScript template literal."""
    return escape(str(value)).replace("`", "&#96;").replace("$", "&#36;")


def _number(value: object) -> str:
    """A number for display: whole numbers without decimals, else 1 decimal."""
    x = float(value)
    if np.isnan(x):
        return "–"
    return f"{x:.0f}" if x == round(x) or abs(x) >= 100 else f"{x:.1f}"


# --- geometry ---------------------------------------------------------------------------


def _display_geometries(
    units: gpd.GeoDataFrame, simplify_m: float
) -> tuple[np.ndarray, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Simplified commune, sector and group polygons in EPSG:4326, 5 decimals.

    The communes are made a clean coverage (:func:`shapely.coverage_clean`
    gives each small overlap to one commune and fills gaps narrower than
    ``_GAP_WIDTH_M``: the shipped AURA polygons have 26 overlapping pairs and
    11 gaps of 6 to 312 m², found with an ``overlaps`` query of
    :class:`shapely.STRtree` and the holes of
    :func:`shapely.coverage_union_all`; the gaps would show as dots on the
    group borders),
    simplified together with
    :func:`shapely.coverage_simplify` in metres, then dissolved by sector
    and by group, so borders of all three layers share their vertices.
    """
    metric = units.geometry.to_crs(metric_crs(units))
    cleaned = shapely.coverage_clean(metric.to_numpy(), gap_width=_GAP_WIDTH_M)
    cleaned = np.where(shapely.is_empty(cleaned), metric.to_numpy(), cleaned)
    if simplify_m > 0:
        cleaned = shapely.coverage_simplify(cleaned, simplify_m)
    frame = gpd.GeoDataFrame(
        {"group": units["group"].to_numpy(), "sector": units["sector"].to_numpy()},
        geometry=cleaned, crs=metric.crs,
    )
    sectors = frame.dissolve(by=["group", "sector"], method="coverage").reset_index()
    groups = frame.dissolve(by="group", method="coverage").reset_index()[["group", "geometry"]]
    sectors = sectors.astype({"group": str, "sector": str})
    groups = groups.astype({"group": str})

    def lonlat(layer: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        layer = layer.to_crs(4326)
        return layer.set_geometry(shapely.set_precision(layer.geometry.to_numpy(), 1e-5, mode="pointwise"))

    return lonlat(frame).geometry.to_numpy(), lonlat(sectors), lonlat(groups)


# --- offline page -----------------------------------------------------------------------


def _make_offline(m: folium.Map) -> None:
    """Drop folium's CDN links and inline the vendored Leaflet instead."""
    m.default_js = []
    m.default_css = []
    css = (LEAFLET_DIR / "leaflet.css").read_text(encoding="utf-8")
    css = re.sub(r"url\((images/[\w.-]+\.png)\)", lambda g: f"url({_data_uri(LEAFLET_DIR / g[1])})", css)
    js = (LEAFLET_DIR / "leaflet.js").read_text(encoding="utf-8")
    header = m.get_root().header
    header.add_child(folium.Element(f"<style>{css}</style>"), name="leaflet_css")
    header.add_child(folium.Element(f"<script>{js}</script>"), name="leaflet")
    header.add_child(folium.Element(f"<style>{_STYLE}</style>"), name="sector_map_css")


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def _is_external(url: str) -> bool:
    return url.strip().lower().startswith(("http://", "https://", "//"))


_CSS_URL = re.compile(r"""url\(\s*(["']?)(.*?)\1\s*\)|@import\s+(["'])(.*?)\3""", re.I)
_JS_URL = re.compile(
    r"""(?:L\.tileLayer(?:\.wms)?|L\.imageOverlay|L\.videoOverlay|\$\.ajax|(?<![\w$])fetch)\(\s*(["'`])(.*?)\1""",
    re.S,
)
_LOADING_RELS = {
    "stylesheet", "icon", "shortcut", "apple-touch-icon", "apple-touch-icon-precomposed", "mask-icon",
    "manifest", "preload", "prefetch", "modulepreload", "preconnect", "dns-prefetch", "prerender",
}
_SRC_TAGS = {"script", "img", "iframe", "frame", "audio", "video", "source", "track", "embed", "input"}


class _ResourceFinder(HTMLParser):
    """Collects candidate URLs that a page loads (see :func:`external_resources`)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v or "" for k, v in attrs}
        if tag in _SRC_TAGS and "src" in a:
            self.urls.append(a["src"])
        if tag in {"img", "source"} and "srcset" in a:
            self.urls += [item.strip().split(" ")[0] for item in a["srcset"].split(",") if item.strip()]
        if tag == "video" and "poster" in a:
            self.urls.append(a["poster"])
        if tag == "object" and "data" in a:
            self.urls.append(a["data"])
        if "background" in a:
            self.urls.append(a["background"])
        if tag == "link" and set(a.get("rel", "").lower().split()) & _LOADING_RELS:
            self.urls.append(a.get("href", ""))
        if tag == "meta" and a.get("http-equiv", "").lower() == "refresh":
            self.urls += re.findall(r"url\s*=\s*['\"]?([^'\";]+)", a.get("content", ""), re.I)
        if "style" in a:
            self._css(a["style"])
        self._in = tag if tag in {"style", "script"} else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self._css(data)
        elif self._in == "script":
            self.urls += [g[1] for g in _JS_URL.findall(data)]

    def _css(self, css: str) -> None:
        self.urls += [g[1] or g[3] for g in _CSS_URL.findall(css)]


#: Outline colour of the communes whose referent changes, on the diff map.
CHANGED_COLOUR = "#d7191c"


def diff_map(plan: Plan, changes: pd.DataFrame, *, tiles: str | None = None, simplify_m: float = 50.0,
             suppress_below: int | None = None) -> folium.Map:
    """The new plan's map with the communes whose referent changes highlighted.

    :func:`sector_map` of ``plan`` plus a layer ``Communes whose referent
    changes (N)``: each changed commune outlined in red (dashed when the
    change is a handover to a departing worker's successor), with a tooltip
    giving the commune, the previous and new sector and worker, the patients
    in follow-up concerned (the caseload concerned, so labelled, when the
    demand has no follow-up column) and the reason. Works offline, like
    :func:`sector_map`.

    Parameters
    ----------
    plan
        The new plan.
    changes
        The change table of a re-run (:func:`sectorize.pipeline.rerun.change_table`):
        columns ``insee, name, from_sector, from_worker, to_sector,
        to_worker, follow_up, reason``.
    tiles, simplify_m, suppress_below
        As in :func:`sector_map` (``suppress_below`` also applies to the
        patients concerned).
    """
    required = ["insee", "name", "from_sector", "from_worker", "to_sector", "to_worker", "follow_up", "reason"]
    missing = [c for c in required if c not in changes.columns]
    if missing:
        raise ValueError(f"changes lacks the column(s) {missing}")
    unknown = set(changes["insee"]) - set(plan.units.index)
    if unknown:
        raise ValueError(f"changes names communes that are not in the plan: {sorted(unknown)[:5]}")
    from sectorize.report.privacy import suppress_small

    m = sector_layers(plan, tiles=tiles, simplify_m=simplify_m, suppress_below=suppress_below)
    folium.map.CustomPane("changed_communes", z_index=425).add_to(m)
    if len(changes):
        geometry = plan.units.geometry.loc[changes["insee"]].to_crs(4326)
        if simplify_m > 0:
            geometry = geometry.simplify(simplify_m / 111_000, preserve_topology=True)
        layer = gpd.GeoDataFrame(
            {
                "commune": [f"{_text(n)} ({c})" for c, n in zip(changes["insee"], changes["name"])],
                "before": [f"{_text(s)} ({_text(w)})" if w else "none" for s, w in zip(changes["from_sector"], changes["from_worker"])],
                "after": [f"{_text(s)} ({_text(w)})" for s, w in zip(changes["to_sector"], changes["to_worker"])],
                "patients": ([_number(v) for v in changes["follow_up"]] if suppress_below is None else
                             [_text(v) for v in suppress_small(changes[["follow_up"]], ["follow_up"],
                                                               suppress_below)["follow_up"]]),
                "reason": changes["reason"].astype(str).to_numpy(),
                "dash": ["6 4" if r == "handover" else None for r in changes["reason"]],
            },
            geometry=geometry.to_numpy(), crs=4326,
        )
        folium.GeoJson(
            _geojson(layer), name=f"Communes whose referent changes ({len(changes)})", pane="changed_communes",
            style_function=lambda f: {"color": CHANGED_COLOUR, "weight": 3, "fill": True, "fillOpacity": 0.0,
                                      "dashArray": f["properties"]["dash"]},
            tooltip=folium.GeoJsonTooltip(
                fields=["commune", "before", "after", "patients", "reason"],
                aliases=["Commune", "Before", "After", _follow_up_label(plan), "Reason"], sticky=True),
        ).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)  # last: it refers to every layer above
    return m


def _follow_up_label(plan: Plan) -> str:
    """Tooltip label of a change table's ``follow_up`` column: patients only when the demand has a
    follow-up column; otherwise the re-run counted the commune's caseload (weighted units)."""
    from sectorize.report.kpi import role_column

    return "Patients in follow-up" if role_column(plan, "follow_up") else "Caseload concerned (weighted units)"
