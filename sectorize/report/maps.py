"""Offline Folium map of a plan: communes coloured by worker, borders, bases, legend, search, labels.

The map is one self-contained HTML file that draws without internet:
Leaflet 1.9.4 (vendored in ``sectorize/assets/leaflet``) and the
leaflet.fullscreen 3.0.2 plugin (``sectorize/assets/leaflet.fullscreen``)
are inlined, their images become data URIs, and the CDN links that folium
adds by default (Leaflet, jQuery, Bootstrap, Font Awesome, awesome-markers)
are removed. Nothing in the map needs jQuery: no popups (tooltips only), no
``Marker`` icons (worker bases are circle markers, labels are ``divIcon``
text).

What a map offers besides the coloured communes: a search box (commune
name without accents, postcode or INSEE code) that zooms to the commune and
outlines it; commune names from zoom 10 (none at the regional view); a
full-screen button; buttons that fit the view to the region and to Lyon's
arrondissements; a legend that folds (folded at first on small screens); an
offline base map drawn from the shipped communes (department borders, names
of the prefectures and main towns). The page also exposes
``window.sectorizeMap`` (``search``, ``select``, ``fit``, ``colourOf``) and
answers ``postMessage`` requests from a parent page, which
:func:`sectorize.report.compare.compare_maps` uses to move its maps together.

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
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from folium.plugins import Fullscreen
from folium.utilities import JsCode

from geodata.adjacency import metric_crs
from sectorize.store.atomic import atomic_write_text
from sectorize.plan import Plan

__all__ = [
    "GROUP_PALETTES", "external_resources", "save_map", "sector_colours", "sector_map", "team_colours",
    "worker_colours",
]

#: Vendored Leaflet (npm package ``leaflet@1.9.4``, ``dist/`` folder).
LEAFLET_DIR = Path(__file__).parents[1] / "assets" / "leaflet"
#: Vendored full-screen control (npm package ``leaflet.fullscreen@3.0.2``).
FULLSCREEN_DIR = Path(__file__).parents[1] / "assets" / "leaflet.fullscreen"

#: One palette per group, with hues that differ between groups: blues and
#: greens for the first group, reds and oranges for the second, purples and
#: pinks for the third; further groups reuse them in turn. Within a palette,
#: neighbouring entries differ in hue or lightness.
GROUP_PALETTES: tuple[tuple[str, ...], ...] = (
    ("#1f78b4", "#33a02c", "#a6cee3", "#b2df8a", "#08306b", "#41b6c4", "#005a32", "#7fcdbb"),
    ("#e31a1c", "#ff7f00", "#fb9a99", "#fdbf6f", "#b15928", "#fed976", "#99000d", "#f768a1"),
    ("#6a3d9a", "#ae017e", "#cab2d6", "#fcc5c0", "#54278f", "#df65b0", "#3f007d", "#bcbddc"),
)

#: INSEE code of the prefecture of each department of Auvergne-Rhône-Alpes.
#: A department of other units takes its most populous town instead.
PREFECTURES: dict[str, str] = {
    "01": "01053", "03": "03190", "07": "07186", "15": "15014", "26": "26362", "38": "38185",
    "42": "42218", "43": "43157", "63": "63113", "69": "69123", "73": "73065", "74": "74010",
}
#: Towns (communes, or cities split into arrondissements) of at least this
#: many inhabitants are named on the offline base map.
TOWN_MIN_POPULATION = 20_000
#: Prefectures and towns of at least this many inhabitants are named at
#: every zoom; smaller towns from zoom :data:`MINOR_TOWN_ZOOM`.
MAJOR_TOWN_POPULATION = 50_000
MINOR_TOWN_ZOOM = 9
#: Commune names are drawn from this zoom level (town names give way to them).
LABELS_FROM_ZOOM = 10
#: Below this window width or height (CSS pixels) the legend and the layer
#: control start folded.
SMALL_SCREEN_PX = (700, 500)

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

#: A city split into arrondissements: ``"Lyon 3e Arrondissement"`` -> ``"Lyon"``.
_ARRONDISSEMENT = re.compile(r"^(?P<city>.+?) \d+(?:er|e|ème)? Arrondissement$", re.I)

_SMALL = f"window.innerWidth < {SMALL_SCREEN_PX[0]} || window.innerHeight < {SMALL_SCREEN_PX[1]}"

_STYLE = """
.leaflet-container { background: #f4f3ef; }
.sector-legend { background: rgba(255, 255, 255, 0.92); padding: 6px 8px; font: 12px/1.3 sans-serif;
  border-radius: 4px; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.3); max-height: 55vh; overflow-y: auto; }
.sector-legend > summary { cursor: pointer; font-weight: bold; font-size: 13px; }
.sector-legend:not([open]) { padding: 4px 8px; }
.sector-legend table { border-collapse: collapse; }
.sector-legend th { text-align: left; padding-top: 4px; }
.sector-legend td { padding: 1px 4px; white-space: nowrap; }
.sector-legend td.num { text-align: right; }
.sector-legend .swatch { display: inline-block; width: 14px; height: 10px; border: 1px solid #555; }
.sector-legend .warning { color: #b00020; font-weight: bold; }
.sector-legend .online { color: #555; font-style: italic; }
.sector-legend .note { color: #333; max-width: 26em; white-space: normal; padding-top: 3px; }
.commune-label, .town-label { width: auto !important; height: auto !important; background: none; border: 0; }
.commune-label span, .town-label span { position: absolute; transform: translate(-50%, -50%); white-space: nowrap;
  font: 11px/1.1 sans-serif; color: #111;
  text-shadow: 0 0 2px #fff, 0 0 2px #fff, 0 0 3px #fff, 0 0 4px #fff; pointer-events: none; }
.town-label span { font: italic 12px/1.1 sans-serif; color: #222; }
.town-label.major span { font: bold 13px/1.1 sans-serif; }
.sector-search { background: #fff; }
.sector-search input { width: 17em; border: 0; padding: 5px 6px; font: 13px sans-serif; border-radius: 4px; }
.sector-search ul { list-style: none; margin: 0; padding: 0; max-height: 40vh; overflow-y: auto;
  font: 12px/1.3 sans-serif; border-top: 1px solid #ccc; }
.sector-search ul:empty { display: none; border: 0; }
.sector-search li { padding: 3px 6px; cursor: pointer; white-space: nowrap; }
.sector-search li.active, .sector-search li:hover { background: #e6f0fa; }
.sector-search li.none { color: #777; cursor: default; background: none; }
.sector-search li small { color: #555; }
.leaflet-bar.sector-zoomto a { width: auto; min-width: 26px; padding: 0 7px; font: bold 12px/26px sans-serif; }
.leaflet-touch .leaflet-bar.sector-zoomto a { line-height: 30px; }
"""

# Thicken a commune's outline while the mouse is over it.
_HOVER = JsCode(
    """function (feature, layer) {
    layer.on("mouseover", function () { layer.setStyle({weight: 2, color: "#000000"}); });
    layer.on("mouseout", function () { layer.setStyle({weight: 0.3, color: "#ffffff"}); });
}"""
)

#: The page's own script: search, commune and town labels, zoom buttons, and
#: the messages of a parent page. ``sectorizeTools(map, cfg)`` is called once
#: the layers exist (see :class:`_MapTools`).
_TOOLS_JS = r"""
function sectorizeTools(map, cfg) {
  "use strict";
  var data = cfg.data;
  function pane(name, z) {
    var p = map.getPane(name) || map.createPane(name);
    p.style.zIndex = z; p.style.pointerEvents = "none";
  }
  pane("search_highlight", 435); pane("commune_labels", 445); pane("place_names", 450);
  function norm(s) {
    return String(s).normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
      .replace(/\u0153/g, "oe").replace(/\u00e6/g, "ae").replace(/[^a-z0-9]+/g, " ")
      .replace(/\bste\b/g, "sainte").replace(/\bst\b/g, "saint").trim();
  }
  var byInsee = {};
  cfg.communes.forEach(function (group) {
    group.eachLayer(function (layer) { byInsee[layer.feature.properties.insee] = {layer: layer, group: group}; });
  });
  var entries = data.index.map(function (r) {
    var key = norm(r[1]);
    return {insee: r[0], name: r[1], postcodes: r[2] ? r[2].split(" ") : [], pop: r[3], ll: L.latLng(r[4], r[5]),
            key: key, compact: key.replace(/ /g, ""),
            label: r[1].replace(/ (\d+(?:er|e|\u00e8me)?) Arrondissement$/i, " $1")};
  });

  function search(query, limit) {
    var q = norm(query || ""), hits = [];
    if (!q) { return []; }
    var digits = /^[0-9 ]+$/.test(q) ? q.replace(/ /g, "") : null, qc = q.replace(/ /g, "");
    entries.forEach(function (e) {
      var rank = -1;
      if (e.insee.toLowerCase() === qc) { rank = 0; }
      else if (digits) {
        if (e.postcodes.indexOf(digits) >= 0) { rank = 0; }
        else if (e.insee.indexOf(digits) === 0 || e.postcodes.some(function (p) { return p.indexOf(digits) === 0; })) { rank = 1; }
      }
      else if (e.key === q) { rank = 0; }
      else if (e.key.indexOf(q) === 0) { rank = 1; }
      else if ((" " + e.key).indexOf(" " + q) >= 0) { rank = 2; }
      else if (e.compact.indexOf(qc) >= 0) { rank = 3; }
      if (rank >= 0) { hits.push([rank, e]); }
    });
    hits.sort(function (a, b) {
      return a[0] - b[0] || b[1].pop - a[1].pop || (a[1].name < b[1].name ? -1 : a[1].name > b[1].name ? 1 : 0);
    });
    return hits.slice(0, limit || 10).map(function (h) {
      return {insee: h[1].insee, name: h[1].name, postcodes: h[1].postcodes.slice()};
    });
  }

  var highlight = L.layerGroup().addTo(map), selected = null;
  function select(insee, tooltip) {
    var hit = byInsee[insee];
    if (!hit) { return false; }
    var shape = hit.layer.toGeoJSON(), bounds = hit.layer.getBounds();
    highlight.clearLayers();
    L.geoJSON(shape, {pane: "search_highlight", interactive: false,
                      style: {color: "#ffffff", weight: 7, opacity: 0.9, fill: false}}).addTo(highlight);
    L.geoJSON(shape, {pane: "search_highlight", interactive: false, className: "search-highlight",
                      style: {color: "#000000", weight: 3, fill: false}}).addTo(highlight);
    map.fitBounds(bounds, {maxZoom: 13, padding: [30, 30], animate: false});
    if (map.getZoom() < data.labelZoom) { map.setView(bounds.getCenter(), data.labelZoom, {animate: false}); }
    selected = insee;
    if (tooltip !== false && hit.group.getTooltip()) { hit.layer.fire("mouseover", {latlng: bounds.getCenter()}, true); }
    return true;
  }

  // Labels are placed largest population first; one that would overlap a placed one is left out.
  function place(boxes, ll, width, height) {
    var p = map.latLngToContainerPoint(ll);
    var box = [p.x - width / 2, p.y - height / 2, p.x + width / 2, p.y + height / 2];
    if (boxes.some(function (b) { return box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3]; })) {
      return false;
    }
    boxes.push(box);
    return true;
  }
  function textIcon(className, text) {
    var span = document.createElement("span");
    span.textContent = text;
    return L.divIcon({className: className, html: span, iconSize: null});
  }
  var towns = [];
  if (cfg.basemap) {
    data.towns.forEach(function (t) {
      towns.push({ll: L.latLng(t[0], t[1]), label: t[2], major: t[3],
                  marker: L.marker([t[0], t[1]], {icon: textIcon("town-label " + (t[3] ? "major" : "minor"), t[2]),
                                                  pane: "place_names", interactive: false, keyboard: false})
                            .addTo(cfg.basemap)});
    });
  }
  function refreshLabels() {
    var z = map.getZoom(), boxes = [];
    towns.forEach(function (t) {
      var el = t.marker.getElement();
      if (!el) { return; }
      var show = z < data.labelZoom && (t.major || z >= data.minorTownZoom)
        && place(boxes, t.ll, t.label.length * (t.major ? 8 : 6.8) + 8, 16);
      el.style.display = show ? "" : "none";
    });
    cfg.labels.clearLayers();
    if (z < data.labelZoom) { return; }
    var view = map.getBounds().pad(0.1);
    entries.filter(function (e) { return view.contains(e.ll); })
      .sort(function (a, b) { return b.pop - a.pop; })
      .forEach(function (e) {
        if (place(boxes, e.ll, e.label.length * 6.2 + 6, 14)) {
          cfg.labels.addLayer(L.marker(e.ll, {icon: textIcon("commune-label", e.label), pane: "commune_labels",
                                              interactive: false, keyboard: false}));
        }
      });
  }
  map.on("zoomend moveend overlayadd", refreshLabels);

  var targets = {};  // fit() is not animated: a click during an animation would be undone by its end
  data.zooms.forEach(function (z) { targets[z[0]] = L.latLngBounds(z[1]); });
  function fit(name) {
    if (!targets[name]) { return false; }
    map.fitBounds(targets[name], {animate: false});
    return true;
  }
  if (data.zooms.length) {
    var ZoomTo = L.Control.extend({
      options: {position: "topleft"},
      onAdd: function () {
        var div = L.DomUtil.create("div", "leaflet-bar sector-zoomto");
        data.zooms.forEach(function (z) {
          var a = L.DomUtil.create("a", "", div);
          a.href = "#"; a.textContent = z[0]; a.title = z[2];
          a.setAttribute("role", "button"); a.setAttribute("data-zoom", z[0]);
          L.DomEvent.on(a, "click", function (ev) { L.DomEvent.preventDefault(ev); fit(z[0]); });
        });
        L.DomEvent.disableClickPropagation(div);
        return div;
      }
    });
    new ZoomTo().addTo(map);
  }

  if (data.search) {
    var Search = L.Control.extend({
      options: {position: "topleft"},
      onAdd: function () {
        var div = L.DomUtil.create("div", "leaflet-bar sector-search");
        var input = L.DomUtil.create("input", "", div), list = L.DomUtil.create("ul", "", div);
        var shown = [], active = 0;
        input.type = "search";
        input.placeholder = "Commune, postcode, INSEE code";
        input.setAttribute("aria-label", "Find a commune by name, postcode or INSEE code");
        list.setAttribute("role", "listbox");
        function show() {
          shown = search(input.value, 8);
          active = 0;
          list.innerHTML = "";
          if (!input.value.trim()) { return; }
          if (!shown.length) {
            L.DomUtil.create("li", "none", list).textContent = "No commune matches";
            return;
          }
          shown.forEach(function (hit, i) {
            var li = L.DomUtil.create("li", i === active ? "active" : "", list);
            li.setAttribute("role", "option");
            li.appendChild(document.createTextNode(hit.name + " "));
            L.DomUtil.create("small", "", li).textContent =
              (hit.postcodes.length ? hit.postcodes.join(", ") + " \u00b7 " : "") + "INSEE " + hit.insee;
            L.DomEvent.on(li, "mousedown", function (ev) { L.DomEvent.preventDefault(ev); choose(i); });
          });
        }
        function choose(i) {
          var hit = shown[i];
          if (!hit) { return; }
          input.value = hit.name;
          list.innerHTML = "";
          select(hit.insee);
        }
        function move(step) {
          if (!shown.length) { return; }
          active = (active + step + shown.length) % shown.length;
          Array.prototype.forEach.call(list.children, function (li, i) { li.classList.toggle("active", i === active); });
        }
        L.DomEvent.on(input, "input", show);
        L.DomEvent.on(input, "keydown", function (ev) {
          L.DomEvent.stopPropagation(ev);
          if (ev.key === "Enter") { L.DomEvent.preventDefault(ev); if (!shown.length) { show(); } choose(active); }
          else if (ev.key === "ArrowDown") { L.DomEvent.preventDefault(ev); move(1); }
          else if (ev.key === "ArrowUp") { L.DomEvent.preventDefault(ev); move(-1); }
          else if (ev.key === "Escape") { input.value = ""; list.innerHTML = ""; highlight.clearLayers(); }
        });
        L.DomEvent.on(input, "blur", function () { setTimeout(function () { list.innerHTML = ""; }, 150); });
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        return div;
      }
    });
    new Search().addTo(map);
  }

  var quiet = false;
  function view() { var c = map.getCenter(); return {center: [c.lat, c.lng], zoom: map.getZoom()}; }
  if (window.parent !== window) {
    map.on("moveend", function () {
      if (!quiet) { window.parent.postMessage({sectorize: "view", view: view()}, "*"); }
    });
  }
  window.addEventListener("message", function (ev) {
    var d = ev.data;
    if (ev.source !== window.parent || !d || typeof d !== "object" || !d.sectorize) { return; }
    quiet = true;
    try {
      if (d.sectorize === "setView") {
        var now = view();
        if (Math.abs(now.zoom - d.view.zoom) > 1e-6 || map.latLngToContainerPoint(d.view.center).distanceTo(
              map.latLngToContainerPoint(now.center)) > 0.5) {
          map.setView(d.view.center, d.view.zoom, {animate: false});
        }
      } else if (d.sectorize === "find") {
        var hit = search(d.query, 1)[0];
        if (hit) { select(hit.insee, false); }
        window.parent.postMessage({sectorize: "found", query: d.query, hit: hit || null}, "*");
      } else if (d.sectorize === "fit") {
        fit(d.name);
      }
    } finally {
      quiet = false;
    }
  });

  quiet = true;  // the first view is no move of the user's: a parent page is not told
  map.fitBounds(data.fit, {animate: false});
  quiet = false;
  refreshLabels();
  window.sectorizeMap = {
    map: map, search: search, select: select, fit: fit, selected: function () { return selected; },
    colourOf: function (insee) { return byInsee[insee] ? byInsee[insee].layer.options.fillColor : null; },
    labels: function () { return cfg.labels.getLayers().length; }
  };
}
"""


class _Legend(folium.MacroElement):
    """The legend, a ``<details>`` element moved into a Leaflet control at the bottom right.

    Its ``<summary>`` folds and unfolds it; it starts folded on small screens
    (:data:`SMALL_SCREEN_PX`).
    """

    _template = folium.template.Template(
        """
        {% macro html(this, kwargs) %}
        <details id="{{ this.get_name() }}" class="sector-legend" open>{{ this.content }}</details>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }}_control = L.control({position: "bottomright"});
        {{ this.get_name() }}_control.onAdd = function () {
            var div = document.getElementById("{{ this.get_name() }}");
            if ({{ this.small }}) { div.open = false; }
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
        self.small = _SMALL


class _MapTools(folium.MacroElement):
    """Calls ``sectorizeTools`` (:data:`_TOOLS_JS`) on the map once its layers exist."""

    _template = folium.template.Template(
        """
        {% macro script(this, kwargs) %}
        sectorizeTools({{ this._parent.get_name() }}, {
            communes: [{{ this.communes }}], labels: {{ this.labels }}, basemap: {{ this.basemap }},
            data: {{ this.data }}
        });
        {% endmacro %}
        """
    )

    def __init__(self, communes: list[folium.GeoJson], labels: folium.FeatureGroup,
                 basemap: folium.FeatureGroup | None, data: dict):
        super().__init__()
        self._name = "SectorTools"
        self.communes = ", ".join(layer.get_name() for layer in communes)
        self.labels = labels.get_name()
        self.basemap = basemap.get_name() if basemap is not None else "null"
        self.data = _js_json(data)


def _js_json(value: object) -> str:
    """JSON that is safe inside an HTML ``<script>`` element."""
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def sector_map(
    plan: Plan, *, tiles: str | None = None, simplify_m: float = 50.0, suppress_below: int | None = None,
    colours: Mapping[str, str] | None = None, legend: bool = True, layer_control: bool = True,
    search: bool = True, basemap: bool = True,
) -> folium.Map:
    """Map of a plan that draws without internet: :func:`sector_layers` and the layer control.

    The layer control sits at the top right, unfolded, except on small
    screens (:data:`SMALL_SCREEN_PX`) where it is an icon that unfolds on
    hover or tap. ``layer_control=False`` leaves it out (the small maps of
    :func:`sectorize.report.compare.compare_maps`); the other parameters
    are those of :func:`sector_layers`.
    """
    m = sector_layers(plan, tiles=tiles, simplify_m=simplify_m, suppress_below=suppress_below, colours=colours,
                      legend=legend, search=search, basemap=basemap)
    if layer_control:
        folium.LayerControl(collapsed=JsCode(_SMALL)).add_to(m)
    return m


def sector_layers(
    plan: Plan, *, tiles: str | None = None, simplify_m: float = 50.0, suppress_below: int | None = None,
    colours: Mapping[str, str] | None = None, legend: bool = True, search: bool = True, basemap: bool = True,
) -> folium.Map:
    """Map of a plan that draws without internet, without its layer control.

    The layer control must come after every layer in the page (it refers to
    each layer's script variable), so a map that adds layers of its own
    (:func:`diff_map`) starts from here and adds the control last.

    Layers (each can be switched on and off in the layer control):

    - ``Background map ...``: only when ``tiles`` is given (below);
    - ``Base map: departments, towns (offline)``: department borders
      (communes dissolved by their ``dep`` column) and the names of the
      prefectures and of the towns of at least :data:`TOWN_MIN_POPULATION`
      inhabitants (a city split into arrondissements counts as one town);
      prefectures and towns of :data:`MAJOR_TOWN_POPULATION` or more are
      named at every zoom, the others from zoom :data:`MINOR_TOWN_ZOOM`, and
      none from zoom :data:`LABELS_FROM_ZOOM`, where commune names take over;
    - ``Communes, group <g>``: one per group; each commune filled with its
      worker's colour (:func:`sector_colours`), with a tooltip giving the
      commune name, INSEE code, population, demand columns (e.g.
      referrals/year, home-care patients), workload, sector, worker and
      travel time (minutes);
    - ``Sector borders`` (thin) and ``Group borders`` (bold): communes
      dissolved by sector and by group;
    - ``Worker bases``: a circle per worker in her colour, tooltip with
      worker name, FTE and sector;
    - ``Commune names (from zoom 10)``: the name of each commune in view from
      zoom :data:`LABELS_FROM_ZOOM`, the most populous first, a name that
      would overlap one already drawn left out.

    Controls: zoom and full screen (top left), the search box (a commune's
    name, accents, case and hyphens ignored, ``St``/``Ste`` read as
    ``Saint``/``Sainte``; a postcode; an INSEE code: the list offers up to 8
    matches, the most populous first; choosing one fits the view to the
    commune, outlines it and shows its tooltip), buttons ``Region`` (the
    whole map) and ``Lyon`` (Lyon's arrondissements, or the commune of Lyon;
    likewise any city split into arrondissements), the scale (bottom left).
    A legend (bottom right, folds with a click on its title, starts folded
    on small screens) lists, per group, each sector's colour, worker, FTE,
    caseload (sum of ``workload``) and target share in percent, and the
    checker's violations if there are any. The view fits the region.

    Parameters
    ----------
    plan
        The plan to draw (see :class:`sectorize.plan.Plan`). Demand columns
        are the numeric columns of ``plan.units`` other than population,
        workload, travel time, areas and coordinates.
    tiles
        ``None`` (default): no tile layer, no network access; the offline
        base map is the background. Otherwise a tile layer under the
        communes:

        - a folium tile name (``"openstreetmap"``, ``"cartodbpositron"``,
          ...) or an ``http(s)://`` URL template: tiles from the internet
          (the legend says so);
        - a local tile folder, in the XYZ layout ``<folder>/{z}/{x}/{y}.png``
          (e.g. exported with QGIS "Generate XYZ tiles (Directory)" or
          ``gdal2tiles.py --xyz``): give the folder path
          (``"/srv/tiles/aura"``, made a ``file://`` URL template), or a URL
          template on a local path (``"file:///srv/tiles/aura/{z}/{x}/{y}.png"``,
          or ``"tiles/{z}/{x}/{y}.png"`` relative to the saved HTML file), or
          on a server of this machine (``"http://localhost:8080/{z}/{x}/{y}.png"``).
          These never leave the machine; the page then needs the folder or
          the server wherever it is opened.
    simplify_m
        Tolerance in metres of the coverage simplification of commune
        borders (shared borders stay shared: no gaps, no overlaps); 0 keeps
        the borders as they are. Coordinates are rounded to 5 decimals
        (about 1 m).
    suppress_below
        For maps that leave the team: per-commune demand and workload under
        this count show as ``"<N"`` in the tooltips
        (:func:`sectorize.report.privacy.suppress_small`); ``None`` shows them all.
    colours
        Colour (``"#rrggbb"``) of each worker id, e.g. :func:`team_colours`
        of several plans so that a worker has one colour on all their maps;
        workers it does not name get :func:`worker_colours`. ``None``: every
        worker gets :func:`worker_colours`.
    legend
        Draw the legend (``False`` for maps whose page has its own legend).
    search
        Draw the search box (``window.sectorizeMap.search`` exists anyway).
    basemap
        Draw the offline base map (department borders and town names).

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
    sector_fill = sector_colours(plan, colours)
    communes, sectors, groups, departments = _display_geometries(units, simplify_m)
    label_points = shapely.set_precision(shapely.point_on_surface(communes), 1e-5, mode="pointwise")

    x0, y0, x1, y1 = units.to_crs(4326).total_bounds
    m = folium.Map(location=[(y0 + y1) / 2, (x0 + x1) / 2], zoom_start=8, tiles=None,
                   control_scale=True, zoom_snap=0.25, font_size="0.8rem")
    _make_offline(m)
    online = False
    if tiles is not None:
        layer, online = _tile_layer(tiles)
        layer.add_to(m)
    folium.map.CustomPane("departments", z_index=405).add_to(m)
    folium.map.CustomPane("sector_borders", z_index=410).add_to(m)
    folium.map.CustomPane("group_borders", z_index=420).add_to(m)
    folium.map.CustomPane("worker_bases", z_index=430, pointer_events=True).add_to(m)

    base = None
    if basemap:
        base = folium.FeatureGroup(name="Base map: departments, towns (offline)").add_to(m)
        if departments is not None:
            folium.GeoJson(_geojson(departments), pane="departments", interactive=False, fill=False,
                           color="#5a5a5a", weight=1.3, dash_array="5 4", opacity=0.9).add_to(base)

    fields, aliases = _tooltip_fields(units)
    hidden = [f for f in fields if f not in ("name", "insee", "population", "sector", "worker_name", "travel_min")]
    table = _commune_table(units, fields, sector_fill, suppress=(hidden, suppress_below))
    commune_layers = []
    for group in pd.unique(units["group"]):
        in_group = (units["group"] == group).to_numpy()
        layer = gpd.GeoDataFrame(table[in_group], geometry=communes[in_group], crs=4326)
        commune_layers.append(folium.GeoJson(
            _geojson(layer), name=f"Communes, group {group}",
            tooltip=folium.GeoJsonTooltip(fields=fields, aliases=aliases, sticky=True),
            on_each_feature=_HOVER, color="#ffffff", weight=0.3, fill_opacity=0.75,
        ).add_to(m))
    folium.GeoJson(_geojson(sectors), name="Sector borders", pane="sector_borders", interactive=False,
                   fill=False, color="#333333", weight=1.2).add_to(m)
    folium.GeoJson(_geojson(groups), name="Group borders", pane="group_borders", interactive=False,
                   fill=False, color="#000000", weight=3.5).add_to(m)

    bases = folium.FeatureGroup(name="Worker bases").add_to(m)
    for w in workers.itertuples(index=False):
        marker = folium.CircleMarker(
            location=[w.base_lat, w.base_lon], radius=7,
            color="#000000", weight=2, fill=True, fill_color=sector_fill[(w.group, w.sector)],
            fill_opacity=1.0,
            tooltip=folium.Tooltip(
                f"<b>{_text(w.worker_name)}</b><br>FTE {_number(w.fte)}<br>"
                f"Sector {_text(w.sector)} (group {_text(w.group)})"
            ),
        )
        marker.options["pane"] = "worker_bases"  # folium's CircleMarker drops a ``pane`` keyword
        marker.add_to(bases)
    labels = folium.FeatureGroup(name=f"Commune names (from zoom {LABELS_FROM_ZOOM})").add_to(m)

    if legend:
        _Legend(_legend_html(plan, workers, sector_fill, online=online)).add_to(m)
    _MapTools(commune_layers, labels, base, {
        "index": _search_index(units, label_points),
        "towns": _towns(units, label_points) if basemap else [],
        "zooms": [[name, bounds, title] for name, bounds, title in _zoom_targets(units, (x0, y0, x1, y1))],
        "labelZoom": LABELS_FROM_ZOOM, "minorTownZoom": MINOR_TOWN_ZOOM, "search": bool(search),
        "fit": [[y0, x0], [y1, x1]],
    }).add_to(m)
    return m


def _tile_layer(tiles: str) -> tuple[folium.TileLayer, bool]:
    """The tile layer for ``tiles`` (see :func:`sector_layers`) and whether it needs the internet."""
    text = str(tiles)
    if "{z}" not in text and "://" not in text and Path(text).expanduser().is_dir():
        text = Path(text).expanduser().resolve().as_uri() + "/{z}/{x}/{y}.png"
    if "{z}" not in text:  # a folium / xyzservices name: a tile server on the internet
        return folium.TileLayer(text, name="Background map (needs internet)"), True
    online = _is_external(text) and (urlsplit(text if "://" in text else "https:" + text).hostname or "") not in {
        "localhost", "127.0.0.1", "::1"}
    name = "Background map (needs internet)" if online else "Background map (local tiles)"
    return folium.TileLayer(text, name=name, attr="Background tiles" if online else "Local tiles"), online


def worker_colours(
    worker_ids: Sequence[object], groups: Sequence[object], *, group_order: Sequence[object] | None = None,
    touching: Iterable[tuple[object, object]] = (), successors: Mapping[object, object] | None = None,
) -> dict[str, str]:
    """One fill colour per worker, from her id and her group only.

    The rule, applied to each group in turn:

    1. Group *i* of ``group_order`` takes its colours from
       ``GROUP_PALETTES[i % 3]`` (8 colours each).
    2. A worker's *colour key* is her id, or, for the successor of a
       departing worker (``successors``), the departing worker's id (so a
       successor takes over her predecessor's colour).
    3. A key ending in a number *n* (``"TS07"``: 7) asks for colour
       ``(n - 1) mod 8`` of the palette. Workers take the colour they ask
       for, in the natural order of their keys (``TS2`` before ``TS10``);
       those whose colour is taken, and keys without a number, then take
       the free colours in palette order, in the same order of keys.
    4. Only a group with more than 8 workers reuses colours: each worker left
       takes the least used colour of the palette that no worker she
       touches already has.
    5. Last, when two workers who touch share a colour (possible only with
       more than 8 workers in a group or more than 3 groups), the later one
       in key order takes, where possible, the least used colour of her
       palette that none of the workers she touches has.

    So a worker keeps her colour whatever her sector id, and whoever else
    joins or leaves the team, as long as she stays in the same group and no
    other worker of the group asks for her colour; every worker of a group
    of up to 8 has her own colour, and the 3 group palettes share none.

    Parameters
    ----------
    worker_ids
        The workers (ids, made text).
    groups
        The group of each worker, in the order of ``worker_ids``.
    group_order
        The groups in palette order (e.g. the scenario's ``groups.names``);
        groups it does not name follow, in order of first appearance.
    touching
        Pairs of worker ids whose sectors share a border (used by steps 4
        and 5 only).
    successors
        ``{departing worker id: successor id}``, e.g. a re-run's
        ``rerun.handover``.

    Returns
    -------
    dict
        ``{worker id: "#rrggbb"}``.

    Example
    -------
    >>> worker_colours(["TS01", "TS02", "TS07"], ["A", "A", "B"])
    {'TS01': '#1f78b4', 'TS02': '#33a02c', 'TS07': '#99000d'}
    """
    ids = [str(w) for w in worker_ids]
    if len(ids) != len(groups):
        raise ValueError(f"worker_colours: {len(ids)} worker ids but {len(groups)} groups")
    group_of = dict(zip(ids, groups))
    order = [g for g in (group_order or []) if g in set(group_of.values())]
    order += [g for g in dict.fromkeys(group_of.values()) if g not in order]
    predecessor = {str(new): str(old) for old, new in (successors or {}).items()}
    key = {}
    for w in ids:
        k, seen = w, {w}
        while k in predecessor and predecessor[k] not in seen:
            k = predecessor[k]
            seen.add(k)
        key[w] = k
    neighbours: dict[str, set[str]] = {w: set() for w in ids}
    for a, b in touching:
        a, b = str(a), str(b)
        if a != b and a in neighbours and b in neighbours:
            neighbours[a].add(b)
            neighbours[b].add(a)
    colour: dict[str, str] = {}
    palette_of: dict[str, tuple[str, ...]] = {}
    for i, group in enumerate(order):
        palette = GROUP_PALETTES[i % len(GROUP_PALETTES)]
        members = sorted((w for w in ids if group_of[w] == group), key=lambda w: (_natural(key[w]), _natural(w)))
        taken: dict[int, str] = {}
        for w in members:  # step 3: the colour the key asks for
            n = _trailing_number(key[w])
            if n is not None and (n - 1) % len(palette) not in taken:
                taken[(n - 1) % len(palette)] = w
        rest = [w for w in members if w not in taken.values()]
        free = [j for j in range(len(palette)) if j not in taken]
        for w, j in zip(rest, free):
            taken[j] = w
        for j, w in taken.items():
            colour[w] = palette[j]
        for w in rest[len(free):]:  # step 4: more workers than colours
            colour[w] = _least_used(palette, colour, {colour[v] for v in neighbours[w] if v in colour})
        for w in members:
            palette_of[w] = palette
    for w in sorted(ids, key=lambda w: (_natural(key[w]), _natural(w))):  # step 5: touching workers differ
        if any(colour[v] == colour[w] for v in neighbours[w] if _natural(key[v]) < _natural(key[w])):
            around = {colour[v] for v in neighbours[w]}
            if set(palette_of[w]) - around:
                colour[w] = _least_used(palette_of[w], colour, around)
    return {w: colour[w] for w in ids}


def _least_used(palette: Sequence[str], colour: Mapping[str, str], avoid: set[str]) -> str:
    """The colour of ``palette`` not in ``avoid`` used least in ``colour`` (the first such in palette order);
    the least used of the whole palette when it avoids none."""
    allowed = [c for c in palette if c not in avoid] or list(palette)
    used = pd.Series(list(colour.values()), dtype=object).value_counts()
    return min(allowed, key=lambda c: (int(used.get(c, 0)), palette.index(c)))


def _natural(text: str) -> tuple:
    """Sort key putting ``"TS2"`` before ``"TS10"``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(text)) if part)


def _trailing_number(text: str) -> int | None:
    """The last number in a worker id (``"TS07"`` -> 7, ``"ts-3b"`` -> 3), or ``None``."""
    found = re.findall(r"\d+", str(text))
    return int(found[-1]) if found else None


def sector_colours(plan: Plan, colours: Mapping[str, str] | None = None) -> dict[tuple[object, object], str]:
    """Fill colour of each sector, keyed by ``(group, sector)``: its worker's colour.

    Each sector takes the colour of its worker (:func:`worker_colours` with
    the groups of ``plan``, in the scenario's ``groups.names`` order then
    of first appearance, the sectors' borders from ``plan.graph``, and the
    successors of the scenario's ``rerun.handover`` and of the workers'
    ``replaces``), so a worker has the same colour on every map of her team
    whatever her sector id. The worker of a sector comes from
    ``plan.workers`` when the plan has it, else from the ``worker_id``
    column of ``plan.units``, else the sector id stands for its worker.

    Parameters
    ----------
    plan
        A plan, or any object with ``units`` (columns ``group``, ``sector``,
        optionally ``worker_id``), ``graph`` (commune adjacency; may be
        empty) and optionally ``scenario`` and ``workers``.
    colours
        Colours of some or all worker ids that take precedence (e.g.
        :func:`team_colours`).

    Example
    -------
    >>> sector_colours(plan)[("A", "A3")]  # doctest: +SKIP
    '#1f78b4'
    """
    worker_of = _sector_workers(plan)
    fill = worker_colours(
        list(worker_of.values()), [k[0] for k in worker_of], group_order=_group_order(plan),
        touching=_touching_workers(plan, worker_of), successors=_successors(plan),
    )
    fill.update({str(w): c for w, c in (colours or {}).items()})
    return {k: fill[w] for k, w in worker_of.items()}


def team_colours(plans: Iterable[Plan]) -> dict[str, str]:
    """One colour per worker id for several plans of a team, the same on all their maps.

    :func:`worker_colours` of every worker of the plans, each in her group of
    the first plan that has her, groups in that plan's order, avoiding equal
    colours for workers who touch in any of the plans. Give it to
    :func:`sector_map` (``colours=``) for each plan.
    """
    workers: dict[str, object] = {}
    order: list = []
    touching: set[tuple[str, str]] = set()
    successors: dict = {}
    for plan in plans:
        worker_of = _sector_workers(plan)
        for (group, _), w in worker_of.items():
            workers.setdefault(w, group)
        order += [g for g in _group_order(plan) if g not in order]
        touching |= _touching_workers(plan, worker_of)
        successors = {**_successors(plan), **successors}
    return worker_colours(list(workers), list(workers.values()), group_order=order, touching=touching,
                          successors=successors)


def _sector_workers(plan: Plan) -> dict[tuple[object, object], str]:
    """``{(group, sector): worker id}`` for every sector of ``plan.units`` and of ``plan.workers``
    (a worker left without communes still has a colour)."""
    units = plan.units
    keys = list(dict.fromkeys(zip(units["group"], units["sector"])))
    workers = getattr(plan, "workers", None)
    known: dict = {}
    if isinstance(workers, pd.DataFrame) and {"group", "sector", "worker_id"} <= set(workers.columns):
        known = {(g, s): str(w) for g, s, w in zip(workers["group"], workers["sector"], workers["worker_id"])}
        keys += [k for k in known if k not in set(keys)]
    elif "worker_id" in units.columns:
        known = {(g, s): str(w) for g, s, w in zip(units["group"], units["sector"], units["worker_id"])}
    return {k: known.get(k, str(k[1])) for k in keys}


def _touching_workers(plan: Plan, worker_of: Mapping) -> set[tuple[str, str]]:
    """Pairs of workers whose sectors share a border in ``plan.graph``."""
    units = plan.units
    worker = dict(zip(units.index, (worker_of[k] for k in zip(units["group"], units["sector"]))))
    graph = getattr(plan, "graph", None)
    edges = graph.edges if graph is not None else ()
    return {tuple(sorted((worker[a], worker[b]))) for a, b in edges
            if a in worker and b in worker and worker[a] != worker[b]}


def _successors(plan: Plan) -> dict[str, str]:
    """``{departing worker: successor}`` from the scenario's ``rerun.handover`` and the workers' ``replaces``."""
    scenario = getattr(plan, "scenario", None)
    out = {str(k): str(v) for k, v in (getattr(getattr(scenario, "rerun", None), "handover", None) or {}).items()}
    for w in getattr(getattr(scenario, "team", None), "workers", None) or []:
        if getattr(w, "replaces", None):
            out[str(w.replaces)] = str(w.id)
    return out


def _group_order(plan: Plan) -> list:
    """Groups in the scenario's order (stable from plan to plan), then any other in order of appearance."""
    present = list(pd.unique(plan.units["group"]))
    names = list(getattr(getattr(getattr(plan, "scenario", None), "groups", None), "names", None) or [])
    return [g for g in names if g in present] + [g for g in present if g not in names]


# --- search, labels, base map ----------------------------------------------------------


def _search_index(units: gpd.GeoDataFrame, points: np.ndarray) -> list[list]:
    """``[insee, name, postcodes, population, lat, lon]`` per commune, for the search and the labels."""
    postcodes = units["postcodes"] if "postcodes" in units.columns else pd.Series([[]] * len(units), index=units.index)
    population = (units["population"].fillna(0).astype(float) if "population" in units.columns
                  else pd.Series(0.0, index=units.index))
    return [
        [str(k), str(n), " ".join(str(p) for p in (codes if isinstance(codes, (list, tuple, np.ndarray)) else [])),
         int(pop), round(float(pt.y), 5), round(float(pt.x), 5)]
        for k, n, codes, pop, pt in zip(units.index, units["name"], postcodes, population, points)
    ]


def _towns(units: gpd.GeoDataFrame, points: np.ndarray) -> list[list]:
    """``[lat, lon, name, major]`` of the towns named on the base map (see :func:`sector_layers`).

    A city split into arrondissements is one town (its population summed,
    placed at the population-weighted mean of its arrondissements' label
    points). The prefecture of a department is its :data:`PREFECTURES` entry
    when the units hold it, else its most populous town.
    """
    if "population" not in units.columns:
        return []
    frame = pd.DataFrame({
        "insee": units.index.astype(str), "name": units["name"].astype(str).to_numpy(),
        "dep": units["dep"].astype(str).to_numpy() if "dep" in units.columns else "",
        "population": units["population"].fillna(0).astype(float).to_numpy(),
        "lon": shapely.get_x(points), "lat": shapely.get_y(points),
    })
    city = frame["name"].str.extract(_ARRONDISSEMENT)["city"]
    frame["town"] = city.fillna(frame["name"])
    frame["key"] = np.where(city.notna(), "city:" + frame["dep"] + ":" + frame["town"], frame["insee"])
    frame["wlon"], frame["wlat"] = frame["lon"] * frame["population"], frame["lat"] * frame["population"]
    towns = frame.groupby("key", sort=False).agg(
        name=("town", "first"), dep=("dep", "first"), population=("population", "sum"), insee=("insee", "first"),
        wlon=("wlon", "sum"), wlat=("wlat", "sum"), lon=("lon", "mean"), lat=("lat", "mean"),
    )
    weighted = towns["population"] > 0
    towns.loc[weighted, "lon"] = towns["wlon"] / towns["population"]
    towns.loc[weighted, "lat"] = towns["wlat"] / towns["population"]
    prefecture = pd.Series(False, index=towns.index)
    for dep, rows in towns.groupby("dep"):
        listed = rows.index[rows["insee"] == PREFECTURES.get(dep)]
        prefecture[listed if len(listed) else [rows["population"].idxmax()]] = True
    keep = prefecture | (towns["population"] >= TOWN_MIN_POPULATION)
    major = prefecture | (towns["population"] >= MAJOR_TOWN_POPULATION)
    towns = towns[keep].assign(major=major[keep]).sort_values("population", ascending=False)
    return [[round(float(t.lat), 5), round(float(t.lon), 5), t.name, bool(t.major)] for t in towns.itertuples()]


def _zoom_targets(units: gpd.GeoDataFrame, bounds: tuple[float, float, float, float]) -> list[tuple]:
    """``(button, [[south, west], [north, east]], title)``: the whole map, then each city split into
    arrondissements (or Lyon, 69123, when it is one unit)."""
    x0, y0, x1, y1 = bounds
    out = [("Region", [[y0, x0], [y1, x1]], "Show the whole map")]
    city = units["name"].astype(str).str.extract(_ARRONDISSEMENT)["city"]
    shapes = units.geometry.to_crs(4326)
    for name in pd.unique(city.dropna()):
        a, b, c, d = shapes[(city == name).to_numpy()].total_bounds
        out.append((name, [[b, a], [d, c]], f"Zoom to {name}'s arrondissements"))
    if city.isna().all() and "69123" in units.index:
        a, b, c, d = shapes.loc[["69123"]].total_bounds
        out.append(("Lyon", [[b, a], [d, c]], "Zoom to Lyon"))
    return [(n, [[round(float(v), 5) for v in corner] for corner in box], t) for n, box, t in out]


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
    parts = [f'<summary class="title">Sectors{": " + _text(name) if name else ""}</summary>']
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
) -> tuple[np.ndarray, gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame | None]:
    """Simplified commune, sector, group and department polygons in EPSG:4326, 5 decimals.

    The communes are made a clean coverage (:func:`shapely.coverage_clean`
    gives each small overlap to one commune and fills gaps narrower than
    ``_GAP_WIDTH_M``: the shipped AURA polygons have 26 overlapping pairs and
    11 gaps of 6 to 312 m², found with an ``overlaps`` query of
    :class:`shapely.STRtree` and the holes of
    :func:`shapely.coverage_union_all`; the gaps would show as dots on the
    group borders),
    simplified together with
    :func:`shapely.coverage_simplify` in metres, then dissolved by sector,
    by group and by department (``dep`` column; ``None`` without it), so
    borders of all four layers share their vertices.
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
    departments = None
    if "dep" in units.columns and units["dep"].notna().all():
        departments = (gpd.GeoDataFrame({"dep": units["dep"].astype(str).to_numpy()}, geometry=cleaned, crs=metric.crs)
                       .dissolve(by="dep", method="coverage").reset_index()[["dep", "geometry"]])

    def lonlat(layer: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        layer = layer.to_crs(4326)
        return layer.set_geometry(shapely.set_precision(layer.geometry.to_numpy(), 1e-5, mode="pointwise"))

    return (lonlat(frame).geometry.to_numpy(), lonlat(sectors), lonlat(groups),
            lonlat(departments) if departments is not None else None)


# --- offline page -----------------------------------------------------------------------


def _make_offline(m: folium.Map) -> None:
    """Drop folium's CDN links; inline the vendored Leaflet, full-screen plugin and the map's own script."""
    m.default_js = []
    m.default_css = []
    css = (LEAFLET_DIR / "leaflet.css").read_text(encoding="utf-8")
    css = re.sub(r"url\((images/[\w.-]+\.png)\)", lambda g: f"url({_data_uri(LEAFLET_DIR / g[1])})", css)
    js = (LEAFLET_DIR / "leaflet.js").read_text(encoding="utf-8")
    fs_css = (FULLSCREEN_DIR / "Control.FullScreen.css").read_text(encoding="utf-8")
    fs_css = re.sub(r"""url\((['"]?)([\w.-]+\.svg)\1\)""",
                    lambda g: f"url({_data_uri(FULLSCREEN_DIR / g[2], 'image/svg+xml')})", fs_css)
    fs_js = (FULLSCREEN_DIR / "Control.FullScreen.js").read_text(encoding="utf-8")
    header = m.get_root().header
    header.add_child(folium.Element(f"<style>{css}</style>"), name="leaflet_css")
    header.add_child(folium.Element(f"<script>{js}</script>"), name="leaflet")
    header.add_child(folium.Element(f"<style>{fs_css}</style>"), name="leaflet_fullscreen_css")
    header.add_child(folium.Element(f"<script>{fs_js}</script>"), name="leaflet_fullscreen")
    header.add_child(folium.Element(f"<style>{_STYLE}</style>"), name="sector_map_css")
    header.add_child(folium.Element(f"<script>{_TOOLS_JS}</script>"), name="sector_map_tools")
    control = Fullscreen(position="topleft", title="Full screen", title_cancel="Exit full screen")
    control.default_js, control.default_css = [], []  # inlined above
    control.add_to(m)


def _data_uri(path: Path, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


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
             suppress_below: int | None = None, colours: Mapping[str, str] | None = None) -> folium.Map:
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
    tiles, simplify_m, suppress_below, colours
        As in :func:`sector_layers` (``suppress_below`` also applies to the
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

    m = sector_layers(plan, tiles=tiles, simplify_m=simplify_m, suppress_below=suppress_below, colours=colours)
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
    folium.LayerControl(collapsed=JsCode(_SMALL)).add_to(m)  # last: it refers to every layer above
    return m


def _follow_up_label(plan: Plan) -> str:
    """Tooltip label of a change table's ``follow_up`` column: patients only when the demand has a
    follow-up column; otherwise the re-run counted the commune's caseload (weighted units)."""
    from sectorize.report.kpi import role_column

    return "Patients in follow-up" if role_column(plan, "follow_up") else "Caseload concerned (weighted units)"
