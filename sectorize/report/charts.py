"""Charts of a plan that display in Jupyter and embed in the KPI page, without pyplot.

Every function returns a :class:`Chart`: a :class:`matplotlib.figure.Figure`
that Jupyter shows inline (it has ``_repr_png_``), that saves itself
(:meth:`Chart.save`, or ``savefig`` as any Figure) and that writes itself as
an inline ``<svg>`` element for an HTML page (:meth:`Chart.to_svg`). No chart
imports :mod:`matplotlib.pyplot`, selects a backend or registers anything
with IPython; matplotlib settings are changed only inside a
:func:`matplotlib.rc_context` while a chart is drawn or written, and are
restored afterwards.

Charts
------
:func:`caseload_chart`
    Caseload against target per worker: one bar per worker, the tolerance
    band shaded around the target line (weighted caseload units).
:func:`travel_chart`
    Travel per sector: caseload-weighted box plot of the minutes from the
    worker's base to the sector's communes.
:func:`moved_chart`
    A re-run's referent changes per worker: patients leaving (left) and
    joining (right) each worker's caseload, by reason.
:func:`tradeoff_chart`
    Two columns of a comparison table (:func:`sectorize.report.compare.compare`,
    :func:`sectorize.report.pareto.pareto`) as labelled points.

Text in the SVG stays text (``svg.fonttype = "none"``): worker names can be
searched, selected and read by a screen reader, print sharp at any size and
keep the page small. Layout is measured with DejaVu Sans (shipped with
matplotlib); the SVG names the stack ``'DejaVu Sans', 'Liberation Sans',
'Arial', 'Helvetica', sans-serif``, whose fallbacks are narrower, so labels
never overflow the room measured for them.

Examples
--------
In a notebook, the last expression of a cell is drawn:

>>> from sectorize.report.charts import caseload_chart, moved_chart, travel_chart   # doctest: +SKIP
>>> caseload_chart(plan)                     # a Plan, or compute_kpis(plan), or kpi.json read back  # doctest: +SKIP
>>> travel_chart(plan)                                                                # doctest: +SKIP
>>> result = sectorize.rerun(scenario, previous)                                      # doctest: +SKIP
>>> moved_chart(result)                      # or moved_chart(result.changes)         # doctest: +SKIP
>>> caseload_chart(plan).save("output/caseload.png")                                  # doctest: +SKIP
"""

from __future__ import annotations

import html
import io
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter

from sectorize.report.kpi import MOVE_REASONS, compute_kpis, moved_per_worker, sector_sort_key
from solvers.problem import caseload_band, within_band

__all__ = ["Chart", "caseload_chart", "chart_style", "inline_svg", "moved_chart", "tradeoff_chart", "travel_chart"]

#: Font stack written into SVG text; layout is measured with the first, which matplotlib ships.
FONT_STACK = ("DejaVu Sans", "Liberation Sans", "Arial", "Helvetica")

#: matplotlib settings in force while a chart is drawn or written (then restored).
STYLE: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": list(FONT_STACK),
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 9.0,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#555555",
    "text.color": "#222222",
    "axes.labelcolor": "#222222",
    "xtick.color": "#444444",
    "ytick.color": "#222222",
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "svg.fonttype": "none",
    "svg.hashsalt": "sectorize",
}

#: Colours, chosen to stay distinct in grey when printed.
_BAR = "#2f6690"        # caseload within tolerance
_BAR_OUT = "#b8322a"    # caseload out of tolerance
_BAND = "#cfe3cf"       # tolerance band
_TARGET = "#1d5e20"     # target line
_BOX = "#9cc3e0"        # travel box
_INK = "#222222"
_REASON_COLOURS = {"moved": "#2f6690", "rebalanced": "#2f6690", "moved by hand": "#6b4c9a",
                   "handover": "#9aa5b1", "worker left": "#d08c3f", "new commune": "#6aa84f"}
_OTHER_COLOURS = ("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

#: Serialises drawing: ``rc_context`` changes matplotlib's global settings while it lasts.
_LOCK = threading.RLock()


@contextmanager
def chart_style() -> Iterator[None]:
    """Draw or write with :data:`STYLE`; the previous matplotlib settings are restored on exit.

    Example
    -------
    >>> with chart_style():                       # doctest: +SKIP
    ...     fig = Chart(figsize=(4, 3)); fig.subplots().plot([1, 2], [3, 4])
    """
    with _LOCK, matplotlib.rc_context(STYLE):
        yield


class Chart(Figure):
    """A matplotlib Figure that Jupyter displays inline and that writes itself as inline SVG.

    Everything a :class:`~matplotlib.figure.Figure` does still works
    (``chart.savefig(path)``, ``chart.axes``); ``chart.figure`` is the chart
    itself. Build one with the functions of this module, or as a Figure
    (``Chart(figsize=(6, 4)).subplots()``), without pyplot.

    Example
    -------
    >>> chart = caseload_chart(kpis)                  # doctest: +SKIP
    >>> chart                                         # last line of a notebook cell: drawn inline  # doctest: +SKIP
    >>> chart.save("caseload.svg")                    # doctest: +SKIP
    >>> page = f"<body>{chart.to_svg(id_prefix='caseload')}</body>"   # doctest: +SKIP
    """

    #: Dots per inch of the PNG shown in a notebook (a 7.5-inch chart is 750 pixels wide).
    NOTEBOOK_DPI = 100

    #: What the chart shows, in words (its SVG ``<title>``).
    chart_title: str = ""

    def _repr_png_(self) -> bytes:
        """PNG bytes for Jupyter's inline display."""
        return self.to_png(dpi=self.NOTEBOOK_DPI)

    def to_png(self, dpi: float = 150) -> bytes:
        """The chart as PNG bytes (``dpi`` dots per inch)."""
        buffer = io.BytesIO()
        with chart_style():
            self.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()

    def to_svg(self, *, id_prefix: str = "chart", title: str | None = None) -> str:
        """The chart as one ``<svg>`` element to place in an HTML page.

        Text is written as text (font stack :data:`FONT_STACK`); the element
        holds no script, no link and no reference outside itself: the
        namespaces HTML implies and matplotlib's metadata are dropped,
        repeated markers are written out in place (no ``<use href>``), and
        every ``id`` starts with ``id_prefix`` so several charts can share a
        page. Parts drawn with a ``gid`` keep it after the prefix (e.g.
        ``caseload-band-A1``).

        Parameters
        ----------
        id_prefix
            Prefix of every ``id`` (letters, digits, ``-``, ``_``).
        title
            Accessible name (``<title>``, ``aria-label``); defaults to the
            chart's title.
        """
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", id_prefix):
            raise ValueError(f"id_prefix {id_prefix!r}: use letters, digits, '-' and '_', starting with a letter")
        buffer = io.StringIO()
        with chart_style():
            self.savefig(buffer, format="svg", metadata={"Date": None})
        name = title if title is not None else getattr(self, "chart_title", "") or ""
        return inline_svg(buffer.getvalue(), id_prefix, name)

    def save(self, path: str | Path, *, dpi: float = 150) -> Path:
        """Write the chart to ``path``; the format follows the suffix (``.svg``, ``.png``, ``.pdf``).

        An SVG file is a standalone document with text as text; PNG is
        ``dpi`` dots per inch. Returns the path.
        """
        path = Path(path)
        with chart_style():
            self.savefig(path, dpi=dpi, metadata={"Date": None} if path.suffix.lower() == ".svg" else None)
        return path


# --------------------------------------------------------------------------- inline SVG

_ATTRIBUTE = re.compile(r'([\w:-]+)="([^"]*)"')


def inline_svg(svg: str, id_prefix: str, title: str = "") -> str:
    """An SVG document written by matplotlib as an ``<svg>`` element for an HTML page.

    Drops the XML declaration, doctype, metadata and namespace attributes
    (HTML puts ``<svg>`` in the SVG namespace), writes every ``<use>`` out as
    the path it repeats, prefixes every ``id`` (and the ``url(#...)``
    pointing at it) with ``id_prefix``, and adds ``class="chart"``,
    ``role="img"``, an ``aria-label`` and a ``<title>``.
    """
    body = svg[svg.index("<svg"):]
    body = re.sub(r"\s*<metadata>.*?</metadata>", "", body, flags=re.S)
    body = re.sub(r'\s(?:xmlns(?::\w+)?|version)="[^"]*"', "", body)
    defs = {m["id"]: m for m in (dict(_ATTRIBUTE.findall(tag)) for tag in re.findall(r"<path\s[^>]*?/>", body))
            if "id" in m}

    def use(match: re.Match[str]) -> str:
        attrs = dict(_ATTRIBUTE.findall(match.group(1)))
        target = defs.get(attrs.get("xlink:href", attrs.get("href", "")).lstrip("#"))
        if target is None:
            return ""
        style = "; ".join(s for s in (attrs.get("style", ""), target.get("style", "")) if s)
        x, y = attrs.get("x", "0"), attrs.get("y", "0")
        extra = "".join(f' {k}="{v}"' for k, v in attrs.items() if k not in ("xlink:href", "href", "x", "y", "style"))
        return f'<path d="{target["d"]}" transform="translate({x} {y})"{extra} style="{style}"/>'

    body = re.sub(r"<use\s([^>]*?)/>", use, body)
    renamed: dict[str, str] = {}
    for old in dict.fromkeys(re.findall(r'\sid="([^"]+)"', body)):
        tail = (f"d{len(renamed)}" if re.fullmatch(r"[A-Za-z]?[0-9a-f]{10}|C\d+_\d+_[0-9a-f]{10}", old)
                else re.sub(r"[^A-Za-z0-9_-]", "-", old))
        renamed[old] = f"{id_prefix}-{tail}"
    body = re.sub(r'(\sid=")([^"]+)(")', lambda m: m.group(1) + renamed.get(m.group(2), m.group(2)) + m.group(3), body)
    body = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{renamed.get(m.group(1), m.group(1))})", body)
    label = html.escape(title, quote=True)
    head, rest = body.split(">", 1)
    head += f' class="chart" role="img" aria-label="{label}"'
    return f"{head}>\n <title>{label}</title>{rest.rstrip()}"


# --------------------------------------------------------------------------- inputs


def _kpis(source: Any) -> dict[str, Any]:
    """KPIs from a Plan, a :class:`~sectorize.pipeline.rerun.RerunResult` or a KPI dictionary."""
    if isinstance(source, Mapping):
        if "sectors" not in source:
            raise TypeError("give a Plan or the dictionary of compute_kpis (kpi.json); this one has no 'sectors'")
        return dict(source)
    plan = getattr(source, "plan", source)
    if hasattr(plan, "units") and hasattr(plan, "workers"):
        return compute_kpis(plan)
    raise TypeError(f"give a Plan, a re-run result or the dictionary of compute_kpis, not {type(source).__name__}")


def _ordered_sectors(kpis: dict[str, Any]) -> list[dict[str, Any]]:
    """Sectors by group (in the KPIs' group order), then by sector id."""
    groups = [g["group"] for g in kpis.get("groups", [])]
    rank = {g: i for i, g in enumerate(groups)}
    return sorted(kpis["sectors"], key=lambda s: (rank.get(s["group"], len(rank)), sector_sort_key(s["sector"])))


def _plain(text: Any) -> str:
    """``text`` shown as written: a ``$`` would start matplotlib's maths."""
    return str(text).replace("$", r"\$")


def _worker_label(sector: dict[str, Any]) -> str:
    fte = sector.get("fte")
    return _plain(f"{sector['sector']} {sector['worker_name']}" + (f" ({fte:g} FTE)" if fte is not None else ""))


def _height(rows: int, per_row: float = 0.36, extra: float = 1.55) -> float:
    return max(2.6, extra + per_row * rows)


def _worker_rows(ax, sectors: list[dict], x_max: float) -> None:
    """One row per worker (top to bottom in the given order), group rules, light vertical grid."""
    _group_rules(ax, sectors)
    ax.set_yticks(range(len(sectors)), [_worker_label(s) for s in sectors])
    ax.set_ylim(len(sectors) - 0.5, -0.5)
    ax.set_xlim(0, x_max)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6, zorder=0)
    ax.set_axisbelow(True)


def _group_rules(ax: Any, sectors: list[dict[str, Any]]) -> None:
    """A thin rule between groups (rows are drawn top-down from y = 0)."""
    for i in range(1, len(sectors)):
        if sectors[i]["group"] != sectors[i - 1]["group"]:
            ax.axhline(i - 0.5, color="#999999", linewidth=0.6, linestyle=(0, (4, 3)))


def _new_chart(rows: int, width: float = 7.5, per_row: float = 0.36, extra: float = 1.55) -> tuple[Chart, Any]:
    chart = Chart(figsize=(width, _height(rows, per_row, extra)), layout="constrained")
    ax = chart.subplots()
    return chart, ax


def _gid(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(text))


def _number(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}".replace(",", "\u202f")


# --------------------------------------------------------------------------- caseload


def caseload_chart(source: Any, *, title: str | None = None) -> Chart:
    """Caseload against target per worker, with the tolerance band around each target.

    One row per worker (sector id, name, FTE), by group: the bar is the
    worker's caseload, the shaded band the caseload the tolerance allows
    (``target × (1 ± model.tolerance)``), the dark line the target (the total
    caseload shared by FTE). Values are in the scenario's weighted caseload
    units (e.g. ``1.0 × referrals + 0.5 × home care``, patients/year and
    patients); each bar is labelled with its share of the target, and a
    caseload out of tolerance is drawn red and says so.

    Parameters
    ----------
    source
        A :class:`~sectorize.plan.Plan`, a re-run result, or the dictionary
        of :func:`sectorize.report.kpi.compute_kpis` (e.g. ``kpi.json`` of a
        run folder read back with :func:`json.load`).
    title
        Chart title; by default says the tolerance.

    Returns
    -------
    Chart
        Displayed inline by Jupyter. Parts carry ids for the page: per
        sector ``caseload-<sector>`` (bar), ``band-<sector>`` (tolerance
        band), ``target-<sector>`` (target line).

    Example
    -------
    >>> caseload_chart(plan)                                      # doctest: +SKIP
    >>> caseload_chart(json.load(open(run / "kpi.json")))         # doctest: +SKIP
    """
    kpis = _kpis(source)
    sectors = _ordered_sectors(kpis)
    tolerance = float((kpis.get("tolerance") or {}).get("sector", 0.0))
    formula = (kpis.get("demand") or {}).get("formula", "caseload")
    name = title or (f"Caseload against target per worker (band: target ±{tolerance * 100:g} %)"
                     if tolerance else "Caseload against target per worker")
    with chart_style():
        chart, ax = _new_chart(len(sectors))
        chart.chart_title = name
        targets = np.array([float(s["target"]) for s in sectors])
        loads = np.array([float(s["caseload"]) for s in sectors])
        lower, upper = caseload_band(targets, tolerance)
        inside = within_band(loads, lower, upper)
        right = float(np.nanmax(np.concatenate([loads, upper, [1.0]])))
        for y, s in enumerate(sectors):
            gid = _gid(s["sector"])
            ax.add_patch(Rectangle((lower[y], y - 0.42), upper[y] - lower[y], 0.84, facecolor=_BAND,
                                   edgecolor="#8fbf8f", linewidth=0.6, zorder=1, gid=f"band-{gid}"))
            ax.barh(y, loads[y], height=0.46, color=_BAR if inside[y] else _BAR_OUT, zorder=2,
                    gid=f"caseload-{gid}")
            ax.plot([targets[y]] * 2, [y - 0.42, y + 0.42], color=_TARGET, linewidth=2.0, zorder=3,
                    solid_capstyle="butt", gid=f"target-{gid}")
            share = s.get("target_share_pct")
            text = "-" if share is None else f"{share:.0f} % of target"
            ax.text(max(loads[y], upper[y]) + right * 0.015, y,
                    text + ("" if inside[y] else ": out of tolerance"),
                    va="center", ha="left", fontsize=8.5, color=_INK if inside[y] else _BAR_OUT,
                    fontweight="normal" if inside[y] else "bold", gid=f"share-{gid}")
        _worker_rows(ax, sectors, right * 1.42)
        ax.set_xlabel(_plain(f"caseload, weighted units ({formula})"))
        ax.set_title(_plain(name))
        chart.legend(handles=[Patch(facecolor=_BAR, label="caseload"),
                              Patch(facecolor=_BAR_OUT, label="caseload out of tolerance"),
                              Patch(facecolor=_BAND, edgecolor="#8fbf8f",
                                    label=f"tolerance band (±{tolerance * 100:g} %)"),
                              Line2D([], [], color=_TARGET, linewidth=2.0, label="target (caseload shared by FTE)")],
                     loc="outside lower center", ncol=2, handlelength=1.6)
    return chart


# --------------------------------------------------------------------------- travel


#: ``travel_spread["from"]`` in words.
_ORIGIN_WORDS = {"worker base": "the worker's base", "sector centre": "the sector's centre commune",
                 "reference point": "each sector's reference point"}


def travel_chart(source: Any, *, title: str | None = None) -> Chart:
    """Travel minutes per sector, weighted by caseload: one box plot per sector.

    For each sector, the minutes from the worker's base to each of its
    communes, each commune counted by its caseload (from the sector's centre
    commune when the plan has no base minutes, as the axis then says): the
    box holds the middle half of the caseload (weighted 25th to 75th
    percentile), the bar inside is the weighted median, the whiskers reach
    the 10th and 90th percentiles, the diamond is the weighted mean and the
    open circle the farthest commune. The label gives the mean and the
    farthest, minutes.

    Parameters
    ----------
    source
        A :class:`~sectorize.plan.Plan`, a re-run result, or the dictionary
        of :func:`sectorize.report.kpi.compute_kpis` (its sectors'
        ``travel_spread``).
    title
        Chart title.

    Returns
    -------
    Chart
        Parts carry ids per sector: ``box-<sector>``, ``median-<sector>``,
        ``whisker-<sector>``.

    Example
    -------
    >>> travel_chart(plan)                                        # doctest: +SKIP
    """
    kpis = _kpis(source)
    sectors = _ordered_sectors(kpis)
    spreads = [s.get("travel_spread") for s in sectors]
    if any(sp is None for sp in spreads):
        raise ValueError("these KPIs have no travel_spread per sector (KPIs of an older version): "
                         "give the plan, or compute_kpis(plan)")
    origins = {sp["from"] for sp in spreads}
    origin = _ORIGIN_WORDS.get(origins.pop() if len(origins) == 1 else "", "each sector's reference point")
    name = title or "Travel per sector, weighted by caseload"
    with chart_style():
        chart, ax = _new_chart(len(sectors))
        chart.chart_title = name
        right = max([sp["max_min"] or 0.0 for sp in spreads] + [1.0])
        for y, (s, sp) in enumerate(zip(sectors, spreads)):
            gid = _gid(s["sector"])
            if sp["median_min"] is None:
                ax.text(0, y, "  no travel times known", va="center", fontsize=8.5, color="#666666")
                continue
            ax.plot([sp["p10_min"], sp["p90_min"]], [y, y], color="#333333", linewidth=1.0, zorder=2,
                    gid=f"whisker-{gid}")
            for end in (sp["p10_min"], sp["p90_min"]):
                ax.plot([end, end], [y - 0.16, y + 0.16], color="#333333", linewidth=1.0, zorder=2)
            ax.add_patch(Rectangle((sp["p25_min"], y - 0.3), sp["p75_min"] - sp["p25_min"],
                                   0.6, facecolor=_BOX, edgecolor="#1f4e79", linewidth=0.9, zorder=3,
                                   gid=f"box-{gid}"))
            ax.plot([sp["median_min"]] * 2, [y - 0.3, y + 0.3], color="#1f4e79", linewidth=2.2, zorder=4,
                    solid_capstyle="butt", gid=f"median-{gid}")
            ax.plot(sp["mean_min"], y, marker="D", markersize=4.5, color=_INK, linestyle="none", zorder=5)
            ax.plot(sp["max_min"], y, marker="o", markersize=5, markerfacecolor="white",
                    markeredgecolor=_INK, linestyle="none", zorder=5)
            ax.text(sp["max_min"] + right * 0.02, y, f"mean {sp['mean_min']:.0f}, max {sp['max_min']:.0f} min",
                    va="center", ha="left", fontsize=8.5, color=_INK)
        _worker_rows(ax, sectors, right * 1.38)
        ax.set_xlabel(f"minutes from {origin}, each commune counted by its caseload")
        ax.set_title(_plain(name))
        chart.legend(handles=[Patch(facecolor=_BOX, edgecolor="#1f4e79", label="middle half of the caseload"),
                              Line2D([], [], color="#1f4e79", linewidth=2.2, label="median"),
                              Line2D([], [], color="#333333", linewidth=1.0, label="10 % to 90 %"),
                              Line2D([], [], marker="D", markersize=4.5, color=_INK, linestyle="none", label="mean"),
                              Line2D([], [], marker="o", markersize=5, markerfacecolor="white", markeredgecolor=_INK,
                                     linestyle="none", label="farthest commune")],
                     loc="outside lower center", ncol=5, handlelength=1.4, columnspacing=1.2)
    return chart


# --------------------------------------------------------------------------- re-run moves


def _moves(source: Any, unit: str | None) -> tuple[list[dict[str, Any]], str]:
    """(rows of :func:`moved_per_worker`, unit in words) from a re-run result, a change table or KPIs."""
    if unit is not None and unit not in ("patients", "caseload units"):
        raise ValueError(f"unit must be 'patients' or 'caseload units', not {unit!r}")
    if isinstance(source, pd.DataFrame):
        return moved_per_worker(source), _unit_words(unit)
    if isinstance(source, Mapping):
        moves = source.get("moves") if "sectors" in source else source
        if not moves or "workers" not in moves:
            raise ValueError("these KPIs have no re-run moves (kpis['moves'] is empty): not a re-run's plan")
        return list(moves["workers"]), _unit_words(unit or moves.get("unit"))
    changes = getattr(source, "changes", None)
    if isinstance(changes, pd.DataFrame):
        names: dict[str, str] = {}
        for owner in (getattr(source, "previous", None), getattr(source, "plan", None)):  # departed workers too
            workers = getattr(owner, "workers", None)
            if isinstance(workers, pd.DataFrame) and {"worker_id", "worker_name"} <= set(workers.columns):
                names.update(zip(workers["worker_id"].astype(str), workers["worker_name"].astype(str)))
        unit = unit or (getattr(source, "summary", None) or {}).get("moved_unit")
        return moved_per_worker(changes, names), _unit_words(unit)
    raise TypeError(f"give a re-run result, its changes table or a re-run's KPIs, not {type(source).__name__}")


def _unit_words(unit: str | None) -> str:
    return "caseload units" if unit == "caseload units" else "patients in follow-up"


def moved_chart(source: Any, *, unit: str | None = None, title: str | None = None) -> Chart:
    """A re-run's referent changes per worker: patients leaving and joining each caseload.

    One row per worker named in the changes (a departed worker too): bars
    to the left are the patients in follow-up of the communes the worker
    gives up, bars to the right those of the communes she takes on, stacked
    by reason (``moved``: the re-run's rebalancing, ``handover``, ``worker
    left``, ``new commune``; ``moved by hand``, ``rebalanced`` for an edited
    plan), labelled with the totals and numbers of communes. Caseload units
    replace patients when the demand has no follow-up column.

    Parameters
    ----------
    source
        A :class:`~sectorize.pipeline.rerun.RerunResult`, its ``changes``
        table (``changes.csv`` read back: ``from_worker, to_worker,
        follow_up, reason``), or the KPIs of a re-run's plan
        (``kpis["moves"]``).
    unit
        What the ``follow_up`` column counts: ``"patients"`` (patients in
        follow-up) or ``"caseload units"`` (a demand without follow-up
        column). By default the re-run's own (``summary["moved_unit"]``,
        ``rerun.json``), else patients; give it for a bare changes table.
    title
        Chart title.

    Returns
    -------
    Chart
        Parts carry ids per worker and reason: ``out-<worker>-<reason>``,
        ``in-<worker>-<reason>``.

    Example
    -------
    >>> result = sectorize.rerun(scenario, previous)                     # doctest: +SKIP
    >>> moved_chart(result)                                              # doctest: +SKIP
    >>> changes = pd.read_csv(run / "changes.csv", sep=";", decimal=",", dtype={"insee": str})   # doctest: +SKIP
    >>> moved_chart(changes, unit=json.load(open(run / "rerun.json"))["moved_unit"])        # doctest: +SKIP
    """
    rows, unit = _moves(source, unit)
    name = title or "Referent changes per worker"
    reasons = list(dict.fromkeys([r for row in rows for r in (*row["out"], *row["in"])]))
    reasons.sort(key=lambda r: (MOVE_REASONS.index(r) if r in MOVE_REASONS else len(MOVE_REASONS), r))
    colours = dict(_REASON_COLOURS)
    spare = iter(_OTHER_COLOURS * 4)
    for r in reasons:
        colours.setdefault(r, next(spare))
    with chart_style():
        chart, ax = _new_chart(max(len(rows), 1))
        chart.chart_title = name
        if not rows:
            ax.text(0.5, 0.5, "no commune changes referent", transform=ax.transAxes, ha="center", va="center")
            ax.set_axis_off()
            ax.set_title(_plain(name))
            return chart
        reach = max([max(r["out_total"], r["in_total"]) for r in rows] + [1e-9])
        for y, row in enumerate(rows):
            wid = _gid(row["worker_id"])
            for side, sign in (("out", -1.0), ("in", 1.0)):
                start = 0.0
                for reason in reasons:
                    value = float(row[side].get(reason, 0.0))
                    if value <= 0:
                        continue
                    ax.barh(y, sign * value, left=sign * start, height=0.56, color=colours[reason],
                            edgecolor="white", linewidth=0.5, zorder=2, gid=f"{side}-{wid}-{_gid(reason)}")
                    start += value
                total, communes = row[f"{side}_total"], row[f"communes_{side}"]
                if communes:
                    words = f"{side} {_count(total)}, {communes} commune{'s' if communes > 1 else ''}"
                    ax.text(sign * (total + reach * 0.03), y, words, va="center", ha="left" if sign > 0 else "right",
                            fontsize=8, color=_INK)
        ax.axvline(0, color="#333333", linewidth=0.9, zorder=3)
        names = [f"{r['worker_name']} ({r['worker_id']})" if r["worker_name"] != r["worker_id"] else r["worker_id"]
                 for r in rows]
        ax.set_yticks(range(len(rows)), [_plain(n) for n in names])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(-reach * 2.4, reach * 2.4)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _count(abs(v))))
        ax.tick_params(axis="y", length=0)
        ax.grid(axis="x", color="#dddddd", linewidth=0.6, zorder=0)
        ax.set_axisbelow(True)
        ax.set_xlabel(f"{unit}: leaving the worker (left)  |  joining the worker (right)")
        ax.set_title(_plain(name))
        chart.legend(handles=[Patch(facecolor=colours[r], label=_plain(r)) for r in reasons],
                     loc="outside lower center", ncol=min(len(reasons), 6), handlelength=1.4)
    return chart


def _count(value: float) -> str:
    """Whole when the value is, else one decimal (expected values, caseload units)."""
    return _number(value, 0 if float(value).is_integer() else 1)


# --------------------------------------------------------------------------- trade-offs


def tradeoff_chart(table: pd.DataFrame, x: str = "max_dev_pct", y: str = "travel_mean_min", *,
                   highlight: str | None = None) -> Chart:
    """Two columns of a comparison table as labelled points (one per row), as a :class:`Chart`.

    The drawing of :func:`sectorize.report.compare.plot_tradeoffs` (same
    arguments; default: largest caseload deviation from target, %, against
    caseload-weighted mean travel, minutes), in a chart Jupyter displays.

    Example
    -------
    >>> tradeoff_chart(compare(plans), x="max_dev_pct", y="travel_mean_min")     # doctest: +SKIP
    """
    from sectorize.report.compare import plot_tradeoffs

    with chart_style():
        chart = Chart(figsize=(6.4, 4.4), layout="constrained")
        plot_tradeoffs(table, x=x, y=y, highlight=highlight, ax=chart.subplots())
        chart.chart_title = f"{y} against {x}"
    return chart
