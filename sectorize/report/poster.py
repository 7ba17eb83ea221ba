"""Printable poster of a plan: one PDF for the team's wall and meetings.

:func:`write_poster` draws, with matplotlib's PDF backend only (no browser, no
``pyplot``, no global state: every setting lives in an ``rc_context`` and
every figure is a plain :class:`matplotlib.figure.Figure`):

1. **Overview** (landscape): the scenario's name as title, the plan id, the
   days it is in force (from the registry's publications; "non publié" for a
   plan never published or a run folder) and the day it was computed; the
   whole region with the sectors coloured by
   :func:`sectorize.report.maps.sector_colours` (the colours of the HTML map:
   each worker's own colour), group borders thick, sector borders medium,
   department borders thin and dashed; a label per sector (sector id and
   worker); the prefectures (or, in other regions, the most populous unit of
   each department) and the largest towns named; a legend table (sector,
   worker, FTE, communes, caseload as a share of the target); and, when the
   region holds Lyon, an inset on Lyon and its first ring, whose
   arrondissements (each labelled with its sector) are too small to read on
   the region's map; the inset's frame is drawn on the map.
2. **One page per group** (landscape), zoomed on the group, the other groups
   in grey, commune borders drawn, the group's largest communes named, the
   group's legend, and the Lyon inset when the group holds Lyon.
3. **Commune lists** (portrait), one run of pages per sector, each starting
   on a new sheet so that a worker can take hers away: the sector, the worker,
   her group, FTE and caseload, then one row per commune, ``name  INSEE
   postcode``, sorted by name (accents, case and punctuation ignored). A
   running header (plan id, sector, worker, sheet *i* of the sector's *k*) and
   ``page n/N`` on every page.

Layout choices
--------------
* Map pages are landscape because the regions this tool knows (AURA: about
  400 km by 300 km) are wider than tall; list pages are portrait because a
  list reads down columns.
* Every dimension is set for A4 and scaled by the paper's width ratio (A3:
  x 1.414), fonts included: an A3 poster is the same document enlarged for
  reading from afar, with the same pages.
* Map labels are placed from their measured boxes (glyph advances of the
  embedded font, an upper bound of the drawn width). A sector's label goes at
  the pole of inaccessibility of its largest part when it fits there over no
  other label; the small sectors around Lyon, where it cannot, get their label
  beside them with a leader line. A town whose name would overlap a label is
  left out.
* The lists are set in DejaVu Sans Mono on a character grid, one text line
  per row of the page across its columns: codes align exactly, a name's width
  is its length, and matplotlib's PDF backend, which costs about a millisecond
  per line drawn plus a little per character, draws the 4,033 communes of
  AURA in a few seconds. The number of columns is the largest that leaves
  room for 97 % of the names on one line (3 on A4 for AURA, at 6.2 pt);
  longer names wrap after a hyphen, space or apostrophe, a commune with
  several postcodes takes one row per postcode, and a commune is never split
  between columns or pages, so nothing overflows.
* Fonts are embedded as TrueType (``pdf.fonttype = 42``; DejaVu Sans and Sans
  Mono, shipped with matplotlib), so the text can be searched and copied; the
  settings live in an ``rc_context`` and the pages are plain
  :class:`matplotlib.figure.Figure` objects (no ``pyplot``, no global state).
* The PDF's ``CreationDate`` is the plan's creation time and nothing else in
  the file depends on the clock, so the same plan and paper give the same
  bytes. The file is written to a temporary name and renamed
  (:func:`sectorize.store.atomic.atomic_path`): never half-written.

Example
-------
>>> source = load_poster_source("P20261201-7317387d", registry="sectorize-plans")  # doctest: +SKIP
>>> write_poster(source, "affiche-2027.pdf", paper="A3").pages                   # doctest: +SKIP
17
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
import shapely
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont, get_font
from matplotlib.ft2font import LoadFlags
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.path import Path as MplPath
from shapely.ops import polylabel

from geodata.adjacency import metric_crs
from sectorize.plan import Plan
from sectorize.report.maps import sector_colours
from sectorize.store.atomic import atomic_path

__all__ = ["PAPERS", "PosterResult", "PosterSource", "load_poster_source", "source_from_run_folder",
           "source_from_stored", "write_poster"]

#: Paper sizes in millimetres, portrait (width, height).
PAPERS: dict[str, tuple[float, float]] = {"A4": (210.0, 297.0), "A3": (297.0, 420.0)}

#: INSEE codes of the 12 prefectures of Auvergne-Rhône-Alpes (Lyon as the whole city, 69123).
AURA_PREFECTURES: frozenset[str] = frozenset({
    "01053", "03190", "07186", "15014", "26362", "38185", "42218", "43157", "63113", "69123", "73065", "74010",
})

#: Lyon's arrondissements (69381..69389) and the city's own code.
LYON_CITY = "69123"
LYON_ARRONDISSEMENTS: tuple[str, ...] = tuple(f"6938{i}" for i in range(1, 10))

_MM_PER_INCH = 25.4
_FONT_FAMILY = "DejaVu Sans"
#: Polygons are simplified to this many metres (about 0.1 mm on an A4 map of AURA).
_SIMPLIFY_M = 80.0
#: Gaps between communes narrower than this (metres) are slivers of the source data, filled.
_GAP_WIDTH_M = 50.0
_INK = "#222222"
_GREY = "#666666"
_OTHER_GROUP = "#e4e4e4"


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class PosterSource:
    """A plan and the facts its poster prints.

    Attributes
    ----------
    plan
        The plan (its ``units`` with ``name``, ``group``, ``sector``,
        ``worker_name``, ``population``, ``postcodes``, ``geometry``; its
        ``workers`` table; its ``graph`` for the colours).
    plan_id
        The registry id, or the run folder's name.
    title
        The scenario's name.
    created
        When the plan was computed (the PDF's creation date), ``None`` if unknown.
    effective
        The days the plan is in force, in words (French), e.g.
        ``"en vigueur à partir du 01/01/2027"`` or ``"non publié"``.
    origin
        Where the plan was read (registry folder or run folder), for the footer.
    valid
        Whether every independent check passed.
    """

    plan: Plan
    plan_id: str
    title: str
    created: datetime | None
    effective: str
    origin: str
    valid: bool = True


def _parse_created(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except (TypeError, ValueError):
        return None


def _day(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def _effective_text(periods: Sequence[tuple[date, date | None]]) -> str:
    """The periods in force, in French; ``effective_to`` is exclusive (the day another plan takes over)."""
    if not periods:
        return "non publié"
    parts = []
    for start, end in periods:
        if end is None:
            parts.append(f"à partir du {_day(start)}")
        else:
            parts.append(f"du {_day(start)} au {_day(end - timedelta(days=1))}")
    return "en vigueur " + " ; ".join(parts)


def source_from_stored(stored: Any, registry: str | Path | None = None) -> PosterSource:
    """The poster source of a registry plan (:class:`sectorize.store.registry.StoredPlan`).

    The plan is re-opened with :func:`sectorize.store.reopen.plan_from_stored`
    (its stored polygons, populations and postcodes).
    """
    from sectorize.store.reopen import plan_from_stored

    plan = plan_from_stored(stored)
    where = f"registre {registry}" if registry is not None else "registre"
    return PosterSource(plan=plan, plan_id=str(stored.id), title=str(stored.name or plan.scenario.name),
                        created=_parse_created(stored.created), effective=_effective_text(stored.periods),
                        origin=where, valid=bool(stored.valid))


def source_from_run_folder(folder: str | Path) -> PosterSource:
    """The poster source of a run folder written by ``sectorize run`` (or ``rerun``, ``plans import``).

    The tables come from ``sectors.csv``, ``workers.csv`` and ``run.json``
    (:class:`sectorize.store.run_folder.RunFolder`); the polygons, populations
    and postcodes from the units of the run's ``scenario.toml``
    (:func:`sectorize.pipeline.inputs.load_region`), checked against the
    units hash the run recorded, as ``sectorize plans add`` does.

    Raises
    ------
    FileNotFoundError
        When the folder does not exist.
    ValueError
        When it is not a complete run folder, a table lacks a column, or the
        units named in its scenario have changed since the run (the message says which).
    """
    from sectorize.config.scenario import load_scenario
    from sectorize.pipeline.inputs import load_region
    from sectorize.store.registry import units_hash
    from sectorize.store.run_folder import RUN_FILES, RunFolder, RunFolderError

    run = RunFolder.open(folder)
    missing = run.missing(RUN_FILES)
    if missing:
        raise RunFolderError(f"{run.path}: not a run folder, missing {', '.join(missing)}; give a folder written "
                             "by `sectorize run` (run.json, scenario.toml, sectors.csv, ...) or a plan id with "
                             "--registry")
    facts = run.facts()
    sectors = run.table("sectors.csv", required=("insee", "group", "sector", "worker_id", "worker_name"))
    workers = run.table("workers.csv", required=("worker_id", "worker_name", "group", "sector"))
    scenario = load_scenario(run.path / "scenario.toml")
    region = load_region(scenario)
    recorded = (facts.get("inputs") or {}).get("units")
    if recorded and units_hash(region.units) != recorded:
        raise RunFolderError(f"{run.path}: the units named in scenario.toml have changed since the run; restore "
                             "the original units file to draw this plan")
    sectors = sectors.assign(insee=sectors["insee"].astype(str)).set_index("insee")
    if sectors.index.duplicated().any():
        raise RunFolderError(f"{run.path / 'sectors.csv'}: INSEE code(s) "
                             f"{list(sectors.index[sectors.index.duplicated()][:5])} appear twice")
    lacking = region.units.index.difference(sectors.index)
    extra = sectors.index.difference(region.units.index)
    if len(lacking) or len(extra):
        raise RunFolderError(f"{run.path / 'sectors.csv'}: does not cover the units of its scenario "
                             f"({len(lacking)} unit(s) without a sector, e.g. {list(lacking[:3])}; "
                             f"{len(extra)} code(s) not a unit, e.g. {list(extra[:3])})")
    keep = [c for c in sectors.columns if c not in region.units.columns or c in ("name", "dep")]
    units = region.units.drop(columns=[c for c in keep if c in region.units.columns]).join(sectors[keep])
    units = gpd.GeoDataFrame(units, geometry="geometry", crs=region.units.crs)
    plan = Plan(scenario=scenario, units=units, workers=workers, graph=region.graph,
                solve=dict(facts.get("solve") or {}), violations=list(facts.get("violations") or []),
                notes=list(facts.get("notes") or []), vintage=str(facts.get("vintage", "") or region.vintage))
    return PosterSource(plan=plan, plan_id=str(facts.get("run") or run.path.name),
                        title=str(facts.get("scenario") or scenario.name), created=_parse_created(facts.get("created")),
                        effective="non publié (dossier de run)", origin=f"dossier {run.path}",
                        valid=bool(facts.get("valid", not plan.violations)))


def load_poster_source(run_or_plan: str | Path, registry: str | Path = "sectorize-plans") -> PosterSource:
    """A run folder (when ``run_or_plan`` is a folder) or a plan id of ``registry``.

    Raises
    ------
    FileNotFoundError
        When ``run_or_plan`` is neither a folder nor a plan id and no registry exists there
        (:class:`sectorize.store.registry.RegistryNotFoundError`).
    KeyError
        :class:`sectorize.store.registry.PlanNotFoundError` for an unknown plan id.
    ValueError
        For a folder that is not a run folder (see :func:`source_from_run_folder`).
    """
    path = Path(run_or_plan)
    if path.is_dir():
        return source_from_run_folder(path)
    from sectorize.store.registry import Registry

    return source_from_stored(Registry(registry, create=False).get(str(run_or_plan)), registry)


# --------------------------------------------------------------------------- text measurement


class _Measure:
    """Widths of strings in points, from the glyph advances of the font the PDF embeds.

    The sum of advances is an upper bound of the drawn width (kerning only
    narrows it), so a string that fits here fits on paper.
    """

    def __init__(self) -> None:
        self._advance: dict[tuple[str, str], float] = {}
        self._fonts = {weight: get_font(findfont(FontProperties(family=_FONT_FAMILY, weight=weight)))
                       for weight in ("normal", "bold")}
        self._fonts["mono"] = get_font(findfont(FontProperties(family=_LIST_FONT)))
        for font in self._fonts.values():
            font.set_size(100, 72)

    def _char(self, char: str, weight: str) -> float:
        key = (char, weight)
        if key not in self._advance:
            font = self._fonts[weight]
            try:
                glyph = font.load_char(ord(char), flags=LoadFlags.NO_HINTING)
                self._advance[key] = glyph.linearHoriAdvance / 65536 / 100
            except (RuntimeError, ValueError):
                self._advance[key] = 0.7
        return self._advance[key]

    def width(self, text: str, size: float, weight: str = "normal") -> float:
        """Width of one line of ``text`` at ``size`` points, in points (with a 2 % margin); ``weight``
        is ``"normal"``, ``"bold"`` or ``"mono"`` (the lists' monospaced font)."""
        return 1.02 * size * sum(self._char(c, weight) for c in text)


# --------------------------------------------------------------------------- page helper


class _Sheet:
    """A page in millimetre coordinates from the top-left corner, scaled from A4 by ``scale``."""

    def __init__(self, width_mm: float, height_mm: float, scale: float) -> None:
        self.width, self.height, self.scale = width_mm, height_mm, scale
        self.fig = Figure(figsize=(width_mm / _MM_PER_INCH, height_mm / _MM_PER_INCH))

    def text(self, x: float, y: float, text: str, size: float, **kwargs: Any) -> None:
        """Text at ``(x, y)`` A4-mm from the top-left (baseline at ``y`` unless ``va`` is given)."""
        kwargs.setdefault("va", "baseline")
        kwargs.setdefault("color", _INK)
        self.fig.text(x * self.scale / self.width, 1 - y * self.scale / self.height, text,
                      fontsize=size * self.scale, parse_math=False, **kwargs)

    def rect(self, x: float, y: float, w: float, h: float, **kwargs: Any) -> None:
        """A rectangle with its top-left corner at ``(x, y)``, ``w`` by ``h`` A4-mm."""
        s = self.scale
        self.fig.add_artist(Rectangle((x * s / self.width, 1 - (y + h) * s / self.height), w * s / self.width,
                                      h * s / self.height, transform=self.fig.transFigure, **kwargs))

    def line(self, x0: float, y: float, x1: float, **kwargs: Any) -> None:
        """A horizontal line at ``y`` from ``x0`` to ``x1`` (A4-mm)."""
        s = self.scale
        self.fig.add_artist(Line2D([x0 * s / self.width, x1 * s / self.width], [1 - y * s / self.height] * 2,
                                   transform=self.fig.transFigure, **kwargs))

    def axes(self, x: float, y: float, w: float, h: float):
        """Axes filling ``w`` by ``h`` A4-mm, top-left at ``(x, y)``."""
        s = self.scale
        return self.fig.add_axes((x * s / self.width, 1 - (y + h) * s / self.height,
                                  w * s / self.width, h * s / self.height))


# --------------------------------------------------------------------------- geometry


def _path(geometry: Any) -> MplPath:
    """A matplotlib path of a (multi)polygon, exteriors anticlockwise and holes clockwise (so the
    non-zero fill leaves holes empty)."""
    vertices, codes = [], []
    for polygon in _polygons(shapely.orient_polygons(geometry)):
        for ring in (polygon.exterior, *polygon.interiors):
            xy = np.asarray(ring.coords)
            if len(xy) < 4:
                continue
            code = np.full(len(xy), MplPath.LINETO, dtype=MplPath.code_type)
            code[0], code[-1] = MplPath.MOVETO, MplPath.CLOSEPOLY
            vertices.append(xy)
            codes.append(code)
    if not vertices:
        return MplPath(np.zeros((1, 2)), [MplPath.MOVETO])
    return MplPath(np.concatenate(vertices), np.concatenate(codes))


@dataclass
class _Town:
    name: str
    x: float
    y: float
    population: float
    prefecture: bool
    group: str


@dataclass
class _Geography:
    """The plan's polygons in metres, ready to draw."""

    crs: Any
    communes: gpd.GeoDataFrame       # index insee; name, group, sector, geometry
    sectors: gpd.GeoDataFrame        # group, sector, geometry
    groups: gpd.GeoDataFrame         # group, geometry
    departments: gpd.GeoSeries
    towns: list[_Town]
    lyon: list[str]                  # unit keys of Lyon (arrondissements or the city), may be empty
    paths: dict[str, list[MplPath]] = field(default_factory=dict)


def _towns(units: gpd.GeoDataFrame, points: gpd.GeoSeries) -> list[_Town]:
    """Places worth naming: every unit with its population, Lyon's arrondissements as one city.

    The prefectures of AURA are flagged; in other regions the most populous unit of each
    department (when the units have ``dep``) stands for it.
    """
    population = pd.to_numeric(units.get("population", pd.Series(0, index=units.index)), errors="coerce").fillna(0)
    arrondissements = [k for k in LYON_ARRONDISSEMENTS if k in units.index]
    aura = bool(AURA_PREFECTURES & set(units.index)) or bool(arrondissements)
    prefectures = set(AURA_PREFECTURES) if aura else set()
    if not aura and "dep" in units.columns:
        prefectures = set(population.groupby(units["dep"]).idxmax().dropna())
    towns = []
    for key in units.index:
        if key in arrondissements:
            continue
        towns.append(_Town(str(units.at[key, "name"]), points[key].x, points[key].y, float(population[key]),
                           key in prefectures, str(units.at[key, "group"])))
    if arrondissements:
        centre = shapely.unary_union(points.loc[arrondissements].to_numpy()).centroid
        groups = units.loc[arrondissements, "group"].astype(str)
        towns.append(_Town("Lyon", centre.x, centre.y, float(population[arrondissements].sum()), True,
                           groups.mode().iat[0]))
    return sorted(towns, key=lambda t: (not t.prefecture, -t.population, t.name))


def _geography(plan: Plan) -> _Geography:
    """The plan's communes made a clean coverage in metres, simplified together, then dissolved by
    sector, group and department, so the borders of every layer share their vertices.

    :func:`shapely.coverage_clean` gives each small overlap of the source polygons to one commune and
    fills gaps narrower than ``_GAP_WIDTH_M`` (they would show as dots on the group borders), as the
    HTML map does (:mod:`sectorize.report.maps`).
    """
    units = plan.units
    crs = metric_crs(units)
    metric = units.geometry.to_crs(crs).to_numpy()
    cleaned = shapely.coverage_clean(metric, gap_width=_GAP_WIDTH_M)
    cleaned = np.where(shapely.is_empty(cleaned), metric, cleaned)
    cleaned = shapely.coverage_simplify(cleaned, _SIMPLIFY_M)
    dep = units["dep"].astype(str).to_numpy() if "dep" in units.columns else np.full(len(units), "")
    communes = gpd.GeoDataFrame(
        {"name": units["name"].astype(str).to_numpy(), "group": units["group"].astype(str).to_numpy(),
         "sector": units["sector"].astype(str).to_numpy(), "dep": dep},
        geometry=cleaned, crs=crs, index=units.index,
    )
    sectors = communes.dissolve(by=["group", "sector"], method="coverage").reset_index()[["group", "sector",
                                                                                          "geometry"]]
    groups = communes.dissolve(by="group", method="coverage").reset_index()[["group", "geometry"]]
    departments = (communes.dissolve(by="dep", method="coverage").geometry
                   if "dep" in units.columns and units["dep"].notna().all() else gpd.GeoSeries([], crs=crs))
    points = communes.geometry.representative_point()
    lyon = [k for k in LYON_ARRONDISSEMENTS if k in units.index] or ([LYON_CITY] if LYON_CITY in units.index else [])
    return _Geography(crs=crs, communes=communes, sectors=sectors, groups=groups, departments=departments,
                      towns=_towns(units, points), lyon=lyon)


# --------------------------------------------------------------------------- plan facts


def _group_order(plan: Plan) -> list[str]:
    """Groups in the scenario's order (``groups.names``), then any other in alphabetical order."""
    present = [str(g) for g in pd.unique(plan.units["group"].astype(str))]
    names = [str(g) for g in (getattr(getattr(plan.scenario, "groups", None), "names", None) or [])]
    return [g for g in names if g in present] + sorted(g for g in present if g not in names)


def _sector_key(sector: str) -> tuple:
    """Natural order of sector ids: ``A2`` before ``A10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", sector))


def _number(value: Any, digits: int = 0) -> str:
    """A number in French writing (``1,0``), ``–`` when missing."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(value):
        return "–"
    return f"{value:,.{digits}f}".replace(",", "\u202f").replace(".", ",")


@dataclass
class _SectorFacts:
    group: str
    sector: str
    worker: str
    worker_id: str
    fte: str
    communes: int
    share: str           # caseload / target, "103 %", or "–"
    colour: str


def _sector_facts(plan: Plan, colours: dict) -> list[_SectorFacts]:
    """One line of legend per sector, groups in the scenario's order and sectors in natural order."""
    units = plan.units
    workers = plan.workers.copy()
    workers["sector"] = workers["sector"].astype(str)
    by_sector = workers.drop_duplicates("sector").set_index("sector")
    counts = units.groupby(units["sector"].astype(str)).size()
    facts = []
    for group in _group_order(plan):
        sectors = sorted({str(s) for s in units.loc[units["group"].astype(str) == group, "sector"]}, key=_sector_key)
        for sector in sectors:
            row = by_sector.loc[sector] if sector in by_sector.index else pd.Series(dtype=object)
            inside = units.loc[units["sector"].astype(str) == sector]
            worker = str(row.get("worker_name", inside["worker_name"].iat[0] if len(inside) else ""))
            share = row.get("target_share_pct")
            if share is None or pd.isna(share):
                caseload, target = row.get("caseload"), row.get("target")
                try:
                    share = 100 * float(caseload) / float(target)
                except (TypeError, ValueError, ZeroDivisionError):
                    share = None
            colour = colours.get((group, sector), "#cccccc")
            facts.append(_SectorFacts(
                group=group, sector=sector, worker=worker, worker_id=str(row.get("worker_id", "")),
                fte=_number(row.get("fte"), 1), communes=int(counts.get(sector, 0)),
                share="–" if share is None else f"{_number(share)} %", colour=colour))
    return facts


# --------------------------------------------------------------------------- maps


@dataclass
class _MapStyle:
    scale: float
    sector_label_size: float
    town_size: float
    max_towns: int
    commune_borders: bool
    focus_group: str | None = None
    label_sectors: bool = True
    lyon_labels: bool = False
    worker_names: bool = True     # sector labels: id and worker, or the id alone
    callouts: bool = True         # a label that fits nowhere in its sector goes beside it, with a leader line


def _fit_view(bounds: Sequence[float], w_mm: float, h_mm: float, margin: float = 0.03) -> tuple[float, ...]:
    """Limits around ``bounds`` with the axes' aspect ratio, so metres are equal on both axes."""
    x0, y0, x1, y1 = bounds
    dx, dy = (x1 - x0) * (1 + 2 * margin) or 1.0, (y1 - y0) * (1 + 2 * margin) or 1.0
    per_mm = max(dx / w_mm, dy / h_mm)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - per_mm * w_mm / 2, cy - per_mm * h_mm / 2, cx + per_mm * w_mm / 2, cy + per_mm * h_mm / 2


def _in_view(frame: gpd.GeoDataFrame | gpd.GeoSeries, view: Sequence[float]) -> np.ndarray:
    """Which rows of ``frame`` have their bounding box in ``view`` (boolean array)."""
    b = frame.geometry.bounds if isinstance(frame, gpd.GeoDataFrame) else frame.bounds
    keep = (b["maxx"] >= view[0]) & (b["minx"] <= view[2]) & (b["maxy"] >= view[1]) & (b["miny"] <= view[3])
    return keep.to_numpy()


def _boxes_overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _draw_map(ax, geo: _Geography, colours: dict, facts: list[_SectorFacts], view: Sequence[float],
              style: _MapStyle, measure: _Measure, size_mm: tuple[float, float], *, frame: bool = False) -> None:
    """Sectors, borders, sector labels and towns of the part ``view`` of the region on ``ax``."""
    s = style.scale
    ax.set_xlim(view[0], view[2])
    ax.set_ylim(view[1], view[3])
    ax.set_autoscale_on(False)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(frame)
        spine.set_linewidth(0.6 * s)
        spine.set_edgecolor(_GREY)
    focus = style.focus_group

    def layer(name: str, frame):
        # the layer's rows and matplotlib paths in view (paths made once per poster)
        if name not in geo.paths:
            geo.paths[name] = [_path(g) for g in (frame.geometry if isinstance(frame, gpd.GeoDataFrame) else frame)]
        keep = _in_view(frame, view)
        return frame.loc[keep], [p for p, k in zip(geo.paths[name], keep) if k]

    # collections are added without updating the data limits: the view is set above
    sectors, sector_paths = layer("sectors", geo.sectors)
    faces = [colours.get((g, k), "#cccccc") if focus is None or g == focus else _OTHER_GROUP
             for g, k in zip(sectors["group"], sectors["sector"])]
    ax.add_collection(PathCollection(sector_paths, facecolors=faces, edgecolors="none", zorder=1), autolim=False)
    if style.commune_borders:
        _, paths = layer("communes", geo.communes)
        ax.add_collection(PathCollection(paths, facecolors="none", edgecolors="white", linewidths=0.12 * s,
                                         alpha=0.8, zorder=2), autolim=False)
    if len(geo.departments):
        _, paths = layer("departments", geo.departments)
        ax.add_collection(PathCollection(paths, facecolors="none", edgecolors="#555555", linewidths=0.35 * s,
                                         linestyles=(0, (4, 1.5)), zorder=3), autolim=False)
    ax.add_collection(PathCollection(sector_paths, facecolors="none", edgecolors="#333333", linewidths=0.6 * s,
                                     zorder=4), autolim=False)
    _, paths = layer("groups", geo.groups)
    ax.add_collection(PathCollection(paths, facecolors="none", edgecolors="black", linewidths=1.8 * s, zorder=5),
                      autolim=False)

    # label placement in points from the axes' lower-left corner
    w_pt, h_pt = size_mm[0] * s / _MM_PER_INCH * 72, size_mm[1] * s / _MM_PER_INCH * 72
    per_pt = (view[2] - view[0]) / w_pt

    def box(x: float, y: float, w: float, h: float, ha: str = "center") -> tuple[float, ...]:
        px, py = (x - view[0]) / per_pt, (y - view[1]) / per_pt
        left = px - w / 2 if ha == "center" else px
        return left, py - h / 2, left + w, py + h / 2

    def inside(b: tuple[float, ...]) -> bool:
        return b[0] >= 1 and b[1] >= 1 and b[2] <= w_pt - 1 and b[3] <= h_pt - 1

    placed: list[tuple[float, ...]] = []
    if style.lyon_labels:
        _label_lyon(ax, geo, style, measure, placed, box)
    if style.label_sectors:
        _label_sectors(ax, sectors if focus is None else sectors.loc[sectors["group"] == focus], facts, colours,
                       view, style, measure, placed, box, inside, per_pt)

    # towns: prefectures first, then by population; skipped where the name would overlap
    size = style.town_size * s
    named = 0
    for town in geo.towns:
        if named >= style.max_towns:
            break
        if not (view[0] < town.x < view[2] and view[1] < town.y < view[3]):
            continue
        if focus is not None and town.group != focus and not town.prefecture:
            continue
        weight = "bold" if town.prefecture else "normal"
        w, h = measure.width(town.name, size, weight) + 3 * s, 1.3 * size
        dot = 2.2 * s if town.prefecture else 1.5 * s
        b = box(town.x, town.y, w, h, ha="left")
        b = (b[0] + dot, b[1], b[2] + dot, b[3])
        if not inside(b) or any(_boxes_overlap(b, o) for o in placed):
            continue
        placed.append(b)
        named += 1
        ax.plot([town.x], [town.y], marker="s" if town.prefecture else "o", markersize=dot, color=_INK,
                markeredgecolor="white", markeredgewidth=0.3 * s, linestyle="none", zorder=9)
        ax.annotate(town.name, (town.x, town.y), xytext=(dot * 0.9, 0), textcoords="offset points", fontsize=size,
                    ha="left", va="center", color=_INK, fontweight=weight, fontstyle="italic", zorder=9,
                    annotation_clip=True,
                    bbox=dict(boxstyle="square,pad=0.1", facecolor="white", alpha=0.6, edgecolor="none"))


def _label_sectors(ax, sectors: gpd.GeoDataFrame, facts: list[_SectorFacts], colours: dict, view, style: _MapStyle,
                   measure: _Measure, placed: list, box, inside, per_pt: float) -> None:
    """One label per sector (id, and worker unless ``style.worker_names`` is off), largest sectors first.

    A label goes at the pole of inaccessibility of the sector's largest visible part, or near it,
    when its box lies mostly (60 %) in the sector and overlaps no label placed before. Otherwise,
    with ``style.callouts``, it goes on rings around the sector (nearest first, preferring spots
    over no other sector too small for its own label), joined to the sector by a leader line;
    without, or when no spot is free, at the pole.
    """
    s = style.scale
    size = style.sector_label_size * s
    worker = {f.sector: f.worker for f in facts}
    frame = shapely.box(*view)
    rows = []
    for _, row in sectors.iterrows():
        lines = [row["sector"]] + ([worker.get(row["sector"], "")] if style.worker_names else [])
        w = max(measure.width(x, size, "bold") for x in lines) + 3 * s
        h = len(lines) * 1.25 * size + 2.5 * s
        parts = sorted(_polygons(shapely.intersection(row.geometry, frame)), key=lambda p: -p.area)
        if parts:
            rows.append((row, "\n".join(lines), w, h, parts))

    def data_box(x: float, y: float, w: float, h: float):
        return shapely.box(x - w / 2 * per_pt, y - h / 2 * per_pt, x + w / 2 * per_pt, y + h / 2 * per_pt)

    def fits(geometry, x: float, y: float, w: float, h: float) -> bool:
        b = data_box(x, y, w, h)
        return shapely.intersection(geometry, b).area >= 0.6 * b.area

    small = [r[0].geometry for r in rows if not fits(r[0].geometry, *_pole(r[4][0], per_pt), r[2], r[3])]
    for row, text, w, h, parts in sorted(rows, key=lambda r: -r[0].geometry.area):
        pole = _pole(parts[0], per_pt)
        candidates = [pole] + [(pole[0] + dx * w * per_pt, pole[1] + dy * h * per_pt)
                               for dx, dy in ((0, 1.1), (0, -1.1), (0.6, 0), (-0.6, 0), (0, 2.2), (0, -2.2))]
        candidates += [_pole(p, per_pt) for p in parts[1:3]]
        chosen, leader = None, False
        for x, y in candidates:
            b = box(x, y, w, h)
            if inside(b) and not any(_boxes_overlap(b, o) for o in placed) and fits(row.geometry, x, y, w, h):
                chosen = (x, y)
                break
        if chosen is None and style.callouts:
            best = None
            reach = (w + h) / 2
            for ring, radius in enumerate((0.9, 1.4, 2.0, 2.8, 3.8, 5.0)):
                for step in range(16):
                    angle = 2 * math.pi * step / 16
                    x = pole[0] + math.cos(angle) * (radius * reach + w / 2 * abs(math.cos(angle))) * per_pt
                    y = pole[1] + math.sin(angle) * (radius * reach + h / 2 * abs(math.sin(angle))) * per_pt
                    b = box(x, y, w, h)
                    if not inside(b) or any(_boxes_overlap(b, o) for o in placed):
                        continue
                    covers = sum(1 for g in small if g is not row.geometry and g.intersects(data_box(x, y, w, h)))
                    score = ring + 3 * covers
                    if best is None or score < best[0]:
                        best = (score, (x, y))
                if best is not None and best[0] <= ring:
                    break
            if best is not None:
                chosen, leader = best[1], True
        if chosen is None:
            chosen = pole
        placed.append(box(*chosen, w, h))
        edge = colours.get((row["group"], row["sector"]), _GREY)
        style_box = dict(boxstyle="round,pad=0.25", facecolor="white", alpha=0.85, edgecolor=edge,
                         linewidth=0.8 * s)
        if leader:
            ax.plot([pole[0]], [pole[1]], marker="o", markersize=1.6 * s, color=_INK, linestyle="none", zorder=8)
            ax.annotate(text, pole, xytext=chosen, textcoords="data", fontsize=size, ha="center", va="center",
                        color=_INK, linespacing=1.25, fontweight="bold", zorder=8, annotation_clip=False,
                        bbox=style_box, arrowprops=dict(arrowstyle="-", color=_INK, linewidth=0.5 * s,
                                                        shrinkA=0, shrinkB=0))
        else:
            ax.text(chosen[0], chosen[1], text, fontsize=size, ha="center", va="center", color=_INK,
                    linespacing=1.25, fontweight="bold", zorder=8, parse_math=False, bbox=style_box)


def _polygons(geometry) -> list:
    """The polygons of any geometry (a clipped sector may also hold lines and points), empty ones left out."""
    parts = shapely.get_parts(geometry)
    return [p for p in parts if p.geom_type == "Polygon" and not p.is_empty and p.area > 0]


def _pole(polygon, per_pt: float) -> tuple[float, float]:
    """The pole of inaccessibility of ``polygon`` (the point farthest inside), to about a point."""
    point = polylabel(polygon, tolerance=max(per_pt, 1.0))
    return point.x, point.y


def _label_lyon(ax, geo: _Geography, style: _MapStyle, measure: _Measure, placed: list, box) -> None:
    """Short labels of Lyon's arrondissements (``3e``, then the sector) for the Lyon inset."""
    s = style.scale
    size = style.sector_label_size * s
    for key in geo.lyon:
        if key not in geo.communes.index:
            continue
        row = geo.communes.loc[key]
        match = re.search(r"(\d+)", str(row["name"])) if key != LYON_CITY else None
        short = "Lyon" if match is None else (f"{match.group(1)}er" if match.group(1) == "1" else f"{match.group(1)}e")
        x, y = _pole(max(_polygons(row.geometry), key=lambda p: p.area), 20.0)
        w = max(measure.width(short, size, "bold"), measure.width(row["sector"], size)) + 2 * s
        placed.append(box(x, y, w, 2.6 * size))
        ax.text(x, y, f"{short}\n{row['sector']}", fontsize=size, ha="center", va="center", color=_INK,
                linespacing=1.1, fontweight="bold", zorder=8, parse_math=False)


def _legend(sheet: _Sheet, x: float, y: float, w: float, facts: list[_SectorFacts], row_h: float,
            groups: list[str], *, title: str) -> float:
    """The legend table from ``(x, y)``; returns the y below it."""
    size = row_h * 1.45
    cols = [x, x + 6.5, x + 16, x + w - 33, x + w - 19, x + w]   # swatch, sector, worker, FTE, communes, share
    sheet.text(x, y, title, size * 1.15, fontweight="bold")
    y += row_h * 1.2
    heads = [("Secteur", cols[1], "left"), ("Référent·e", cols[2], "left"), ("ETP", cols[3], "right"),
             ("Communes", cols[4], "right"), ("Charge / cible", cols[5], "right")]
    for text, cx, ha in heads:
        sheet.text(cx, y, text, size * 0.9, ha=ha, color=_GREY)
    sheet.line(x, y + row_h * 0.3, x + w, color=_GREY, linewidth=0.4 * sheet.scale)
    y += row_h
    for group in groups:
        rows = [f for f in facts if f.group == group]
        if not rows:
            continue
        if len(groups) > 1:
            sheet.text(x, y, f"Groupe {group}", size, fontweight="bold")
            y += row_h
        for f in rows:
            sheet.rect(x, y - row_h * 0.72, 5, row_h * 0.8, facecolor=f.colour, edgecolor="#333333",
                       linewidth=0.4 * sheet.scale)
            sheet.text(cols[1], y, f.sector, size, fontweight="bold")
            sheet.text(cols[2], y, f.worker, size)
            sheet.text(cols[3], y, f.fte, size, ha="right")
            sheet.text(cols[4], y, str(f.communes), size, ha="right")
            sheet.text(cols[5], y, f.share, size, ha="right")
            y += row_h
    return y


def _line_key(sheet: _Sheet, x: float, y: float, size: float, prefectures: bool) -> float:
    """The key of line styles and symbols; returns the y below it."""
    s = sheet.scale
    items = [("Limite de groupe", dict(color="black", linewidth=1.8 * s)),
             ("Limite de secteur", dict(color="#333333", linewidth=0.6 * s)),
             ("Limite de département", dict(color="#555555", linewidth=0.35 * s, linestyle=(0, (4, 1.5))))]
    for text, kw in items:
        sheet.line(x, y - 1.2, x + 8, **kw)
        sheet.text(x + 10, y, text, size)
        y += 4.0
    if prefectures:
        sheet.fig.add_artist(Line2D(
            [(x + 4) * s / sheet.width], [1 - (y - 1.2) * s / sheet.height], marker="s", markersize=2.2 * s,
            color=_INK, transform=sheet.fig.transFigure))
        sheet.text(x + 10, y, "Préfecture ; autres points : grandes communes", size)
        y += 4.0
    return y


# --------------------------------------------------------------------------- lists
#
# The lists are set in DejaVu Sans Mono on a character grid: one text line per row of the page,
# across all its columns. matplotlib's PDF backend costs about a millisecond per line drawn
# (font shaping), whatever its length, so a page of 3 columns costs a third of what one text per
# field would; the grid also aligns the INSEE codes and postcodes exactly.

#: Font of the commune lists (monospaced, shipped with matplotlib).
_LIST_FONT = "DejaVu Sans Mono"
#: Characters between two columns of a list page.
_GAP_CHARS = 3
#: Width of the INSEE and postcode fields (characters), and the spaces before each.
_CODE_CHARS = 5
_SEP_CHARS = 2


@dataclass
class _Row:
    """One commune of a list: its lines, each exactly ``width`` characters."""

    lines: list[str]
    insee: str

    @property
    def height(self) -> int:
        return len(self.lines)


@dataclass
class _ListPage:
    facts: _SectorFacts
    columns: list[list[_Row]]
    part: int = 1
    parts: int = 1


@dataclass(frozen=True)
class _ListLayout:
    """The grid of a list page (A4 millimetres; scaled with the paper like everything else)."""

    size: float          # font size, points
    char_w: float        # advance of one character, mm
    row_h: float         # mm
    top: float           # baseline of the first row, mm from the top
    bottom: float        # lowest baseline allowed, mm from the top
    left: float
    columns: int
    name_chars: int

    @property
    def column_chars(self) -> int:
        return self.name_chars + 2 * (_SEP_CHARS + _CODE_CHARS)

    @property
    def rows_per_column(self) -> int:
        return int((self.bottom - self.top) // self.row_h) + 1

    def column_x(self, column: int) -> float:
        return self.left + column * (self.column_chars + _GAP_CHARS) * self.char_w


def _sort_key(name: str, insee: str) -> tuple[str, str]:
    """Alphabetical order as a French reader expects it: accents, case and punctuation ignored."""
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).casefold()
    return re.sub(r"[^0-9a-z]+", " ", plain).strip(), insee


def _postcodes(value: Any) -> list[str]:
    if isinstance(value, (list, tuple, np.ndarray)):
        codes = [str(v) for v in value if str(v)]
    elif value is None or (isinstance(value, float) and math.isnan(value)):
        codes = []
    else:
        codes = [c for c in re.split(r"[|,;\s]+", str(value)) if c]
    return sorted(dict.fromkeys(codes))


def _wrap_chars(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, cut after a hyphen, space or apostrophe
    when possible, inside a word otherwise."""
    lines: list[str] = []
    while len(text) > width:
        cut = max((i + 1 for i, c in enumerate(text[:width]) if c in "- '’"), default=width)
        lines.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*lines, text] if text or not lines else lines


_PT_PER_MM = 72 / _MM_PER_INCH


def _list_layout(page_w: float, page_h: float, names: Sequence[str], measure: _Measure) -> _ListLayout:
    """The grid of the list pages: the most columns that leave room for 97 % of the names on one line."""
    size = 6.2
    char_w = measure.width("0", size, "mono") / 1.02 / _PT_PER_MM
    left, right = 10.0, page_w - 10.0
    line_chars = int((right - left) / char_w)
    lengths = np.array([len(n) for n in names] or [20])
    wanted = int(np.ceil(np.quantile(lengths, 0.97)))
    columns, name_chars = 1, line_chars - 2 * (_SEP_CHARS + _CODE_CHARS)
    for n in range(6, 0, -1):
        per_column = (line_chars - (n - 1) * _GAP_CHARS) // n
        if per_column - 2 * (_SEP_CHARS + _CODE_CHARS) >= wanted:
            columns, name_chars = n, per_column - 2 * (_SEP_CHARS + _CODE_CHARS)
            break
    return _ListLayout(size=size, char_w=char_w, row_h=size * 1.3 / _PT_PER_MM, top=31.0, bottom=page_h - 13.0,
                       left=left, columns=columns, name_chars=max(name_chars, 8))


def _row(name: str, insee: str, codes: list[str], name_chars: int) -> _Row:
    """The lines of one commune: name (wrapped), INSEE code, one postcode per line."""
    names = _wrap_chars(name, name_chars)
    height = max(len(names), len(codes), 1)
    lines = []
    for i in range(height):
        left = names[i] if i < len(names) else ""
        code = insee if i == 0 else ""
        post = codes[i] if i < len(codes) else ""
        sep = " " * _SEP_CHARS
        lines.append(f"{left:<{name_chars}}{sep}{code:<{_CODE_CHARS}}{sep}{post:<{_CODE_CHARS}}")
    return _Row(lines, insee)


def _list_pages(plan: Plan, facts: list[_SectorFacts], layout: _ListLayout) -> list[_ListPage]:
    """The commune rows of each sector, poured down columns then pages (a sector starts a new page;
    a commune is never split between columns)."""
    units = plan.units
    postcodes = units["postcodes"] if "postcodes" in units.columns else pd.Series([[]] * len(units), index=units.index)
    names = units["name"].astype(str)
    sector_of = units["sector"].astype(str)
    pages: list[_ListPage] = []
    per_column = layout.rows_per_column
    for f in facts:
        keys = sorted(units.index[sector_of == f.sector], key=lambda k: _sort_key(names[k], str(k)))
        rows = [_row(names[k], str(k), _postcodes(postcodes.get(k)), layout.name_chars) for k in keys]
        sector_pages: list[list[list[_Row]]] = [[[]]]
        used = 0
        for row in rows:
            if used + row.height > per_column and used:
                if len(sector_pages[-1]) == layout.columns:
                    sector_pages.append([[]])
                else:
                    sector_pages[-1].append([])
                used = 0
            sector_pages[-1][-1].append(row)
            used += row.height
        for i, columns in enumerate(sector_pages, start=1):
            pages.append(_ListPage(f, columns, i, len(sector_pages)))
    return pages


def _grid_lines(columns: list[list[_Row]], layout: _ListLayout) -> list[str]:
    """The text lines of a page: line *i* holds row *i* of every column."""
    cells = [[line for row in column for line in row.lines] for column in columns]
    blank = " " * layout.column_chars
    height = max((len(c) for c in cells), default=0)
    gap = " " * _GAP_CHARS
    return [gap.join(c[i] if i < len(c) else blank for c in cells).rstrip() for i in range(height)]


def _draw_list_page(sheet: _Sheet, page: _ListPage, layout: _ListLayout, plan_id: str, number: int, total: int,
                    footer: str) -> None:
    """A page of the commune list of a sector: header, column titles, the grid, footer."""
    s = sheet.scale
    f = page.facts
    right = sheet.width / s - layout.left
    sheet.rect(layout.left, 9.0, 7.0, 7.0, facecolor=f.colour, edgecolor="#333333", linewidth=0.5 * s)
    sheet.text(layout.left + 9.5, 15.0, f"Secteur {f.sector} — Référent·e : {f.worker}", 13, fontweight="bold")
    part = f" · feuille {page.part}/{page.parts} du secteur" if page.parts > 1 else ""
    sheet.text(right, 15.0, f"page {number}/{total}", 8, ha="right", color=_GREY)
    sheet.text(layout.left + 9.5, 21.0,
               f"Plan {plan_id} · groupe {f.group} · {f.fte} ETP · {f.communes} communes · charge / cible "
               f"{f.share}{part}", 7.5, color=_GREY)
    size = layout.size
    header_y = layout.top - layout.row_h * 1.4
    for c in range(len(page.columns)):
        x = layout.column_x(c)
        code_x = x + (layout.name_chars + _SEP_CHARS) * layout.char_w
        post_x = code_x + (_CODE_CHARS + _SEP_CHARS) * layout.char_w
        sheet.text(x, header_y, "Commune", size, fontweight="bold")
        sheet.text(code_x, header_y, "INSEE", size, fontweight="bold")
        sheet.text(post_x, header_y, "CP", size, fontweight="bold")
        sheet.line(x, header_y + layout.row_h * 0.4, x + layout.column_chars * layout.char_w, color=_GREY,
                   linewidth=0.4 * s)
        # every other commune shaded, so a row reads across from name to codes
        y = layout.top
        for i, row in enumerate(page.columns[c]):
            if i % 2:
                sheet.rect(x - 0.6, y - layout.row_h * 0.76, layout.column_chars * layout.char_w + 1.2,
                           row.height * layout.row_h, facecolor="#ededed", edgecolor="none", zorder=0)
            y += row.height * layout.row_h
    for i, line in enumerate(_grid_lines(page.columns, layout)):
        if line:
            sheet.text(layout.left, layout.top + i * layout.row_h, line, size, family=_LIST_FONT)
    h = sheet.height / s
    sheet.line(layout.left, h - 9.0, right, color=_GREY, linewidth=0.3 * s)
    sheet.text(layout.left, h - 5.5, f"{footer} · CP : code postal", 6.5, color=_GREY)
    sheet.text(right, h - 5.5, f"page {number}/{total}", 6.5, ha="right", color=_GREY)


# --------------------------------------------------------------------------- the document


@dataclass(frozen=True)
class PosterResult:
    """What :func:`write_poster` wrote.

    Attributes
    ----------
    path
        The PDF file.
    paper
        ``"A4"`` or ``"A3"``.
    pages
        Number of pages: ``map_pages + list_pages``.
    map_pages
        The overview and one page per group.
    list_pages
        Pages of commune lists.
    """

    path: Path
    paper: str
    pages: int
    map_pages: int
    list_pages: int


def _metadata(source: PosterSource) -> dict[str, Any]:
    from sectorize import __version__

    return {
        "Title": f"Sectorisation — {source.title} — plan {source.plan_id}",
        "Subject": f"Plan {source.plan_id}: carte des secteurs et communes par référent·e",
        "Keywords": f"sectorize; {source.plan_id}",
        "Creator": f"sectorize {__version__}",
        "CreationDate": source.created,
    }


def _header(sheet: _Sheet, source: PosterSource, heading: str, subheading: str) -> None:
    sheet.text(8, 11.5, heading, 16, fontweight="bold")
    status = "" if source.valid else " · PLAN MARQUÉ INVALIDE"
    created = f" · calculé le {_day(source.created.date())}" if source.created else ""
    sheet.text(8, 18.0, f"{subheading}Plan {source.plan_id} · {source.effective}{created}{status}", 8.5,
               color="#b00000" if not source.valid else _INK)


def _footer(sheet: _Sheet, text: str, number: int, total: int) -> None:
    h = sheet.height / sheet.scale
    sheet.text(8, h - 4.5, text, 6.5, color=_GREY)
    sheet.text(sheet.width / sheet.scale - 8, h - 4.5, f"page {number}/{total}", 6.5, ha="right", color=_GREY)


def write_poster(source: PosterSource, out: str | Path, paper: str = "A4") -> PosterResult:
    """Write the poster of ``source`` to the PDF file ``out`` (replaced atomically if it exists).

    Parameters
    ----------
    source
        The plan and its facts (:func:`load_poster_source`, :func:`source_from_stored`,
        :func:`source_from_run_folder`).
    out
        The PDF file to write; its folder must exist.
    paper
        ``"A4"`` (default) or ``"A3"``: map pages landscape, list pages portrait.

    Returns
    -------
    PosterResult
        The file and its page counts.

    Raises
    ------
    ValueError
        For an unknown paper size, or a plan without sectors.
    """
    if paper not in PAPERS:
        raise ValueError(f"paper {paper!r}: choose one of {', '.join(PAPERS)}")
    plan = source.plan
    if plan.units.empty:
        raise ValueError(f"plan {source.plan_id}: no commune to draw")
    portrait = PAPERS[paper]
    scale = portrait[0] / PAPERS["A4"][0]
    measure = _Measure()
    colours = {(str(g), str(s)): c for (g, s), c in sector_colours(plan).items()}
    facts = _sector_facts(plan, colours)
    groups = _group_order(plan)
    a4w, a4h = PAPERS["A4"]
    layout = _list_layout(a4w, a4h, list(plan.units["name"].astype(str)), measure)
    lists = _list_pages(plan, facts, layout)
    map_pages = 1 + len(groups)
    total = map_pages + len(lists)
    geo = _geography(plan)
    footer = f"sectorize · {source.title} · plan {source.plan_id} · {source.origin}"
    has_lyon = bool(geo.lyon)

    out = Path(out)
    rc = {"pdf.fonttype": 42, "font.family": _FONT_FAMILY, "pdf.compression": 6, "path.simplify": True,
          "text.usetex": False, "axes.unicode_minus": False}
    with matplotlib.rc_context(rc), atomic_path(out) as tmp:
        with PdfPages(tmp, metadata=_metadata(source)) as pdf:
            # 1. overview
            sheet = _Sheet(portrait[1], portrait[0], scale)
            _header(sheet, source, source.title, "Sectorisation de l'équipe de service social · ")
            map_box = (8.0, 23.0, 190.0, 176.0)
            ax = sheet.axes(*map_box)
            view = _fit_view(geo.communes.total_bounds, map_box[2], map_box[3])
            _draw_map(ax, geo, colours, facts, view,
                      _MapStyle(scale, sector_label_size=5.6, town_size=5.2, max_towns=14, commune_borders=False),
                      measure, map_box[2:])
            right = (a4h - 8.0 - 90.0, 90.0)
            inset_top = a4w - 10.0 - 82.0 if has_lyon else a4w - 10.0
            rows = len(facts) + (len(groups) if len(groups) > 1 else 0) + 2.5
            row_h = min(4.6, max(2.4, (inset_top - 24.0 - 26.0) / rows))
            y = _legend(sheet, right[0], 27.0, right[1], facts, row_h, groups, title="Secteurs et référent·es")
            _line_key(sheet, right[0], y + 3.0, 6.2 * row_h / 4.6, prefectures=True)
            if has_lyon:
                _lyon_inset(sheet, ax, geo, colours, facts, measure, scale, view, (right[0], inset_top, 90.0, 80.0))
            _footer(sheet, footer, 1, total)
            pdf.savefig(sheet.fig)

            # 2. one page per group
            for number, group in enumerate(groups, start=2):
                sheet = _Sheet(portrait[1], portrait[0], scale)
                mine = [f for f in facts if f.group == group]
                communes = sum(f.communes for f in mine)
                _header(sheet, source, f"Groupe {group} — {len(mine)} secteur{'s' if len(mine) > 1 else ''}, "
                        f"{communes} communes", f"{source.title} · ")
                ax = sheet.axes(*map_box)
                bounds = geo.groups.loc[geo.groups["group"] == group].total_bounds
                view = _fit_view(bounds, map_box[2], map_box[3])
                _draw_map(ax, geo, colours, facts, view,
                          _MapStyle(scale, sector_label_size=7.0, town_size=5.6, max_towns=30, commune_borders=True,
                                    focus_group=group), measure, map_box[2:])
                lyon_here = has_lyon and any(geo.communes.at[k, "group"] == group for k in geo.lyon)
                y = _legend(sheet, right[0], 27.0, right[1], facts, 4.6, [group], title=f"Secteurs du groupe {group}")
                _line_key(sheet, right[0], y + 3.0, 6.2, prefectures=True)
                if lyon_here:
                    _lyon_inset(sheet, ax, geo, colours, facts, measure, scale, view,
                                (right[0], a4w - 10.0 - 82.0, 90.0, 80.0))
                _footer(sheet, footer, number, total)
                pdf.savefig(sheet.fig)

            # 3. commune lists
            for number, page in enumerate(lists, start=map_pages + 1):
                sheet = _Sheet(portrait[0], portrait[1], scale)
                _draw_list_page(sheet, page, layout, source.plan_id, number, total, footer)
                pdf.savefig(sheet.fig)
    return PosterResult(path=out, paper=paper, pages=total, map_pages=map_pages, list_pages=len(lists))


def _lyon_inset(sheet: _Sheet, main_ax, geo: _Geography, colours: dict, facts: list[_SectorFacts],
                measure: _Measure, scale: float, main_view, box: tuple[float, float, float, float]) -> None:
    """Lyon and its first ring in the box ``(x, y, w, h)`` (A4-mm), outlined on the main map."""
    x, y, w, h = box
    lyon = geo.communes.loc[geo.lyon]
    x0, y0, x1, y1 = lyon.total_bounds
    pad = 4500.0
    view = _fit_view((x0 - pad, y0 - pad, x1 + pad, y1 + pad), w, h - 5.0, margin=0.0)
    sheet.text(x, y + 3.0, "Lyon et sa première couronne", 7.0, fontweight="bold")
    ax = sheet.axes(x, y + 5.0, w, h - 5.0)
    _draw_map(ax, geo, colours, facts, view,
              _MapStyle(scale, sector_label_size=5.4, town_size=5.0, max_towns=8, commune_borders=True,
                        lyon_labels=True, worker_names=False, callouts=False), measure, (w, h - 5.0), frame=True)
    main_ax.add_artist(Rectangle((view[0], view[1]), view[2] - view[0], view[3] - view[1], facecolor="none",
                                edgecolor=_INK, linewidth=0.6 * scale, zorder=10))
