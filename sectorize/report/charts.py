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
    :func:`sectorize.report.pareto.pareto`) as labelled points; identical
    points are one point with their labels joined, and each axis spans at
    least ±2 % of its mean.

Text in the SVG stays text (``svg.fonttype = "none"``): worker names can be
searched, selected and read by a screen reader, print sharp at any size and
keep the page small. Layout is measured with DejaVu Sans (shipped with
matplotlib); the SVG names the stack ``'DejaVu Sans', 'Liberation Sans',
'Arial', 'Helvetica', sans-serif``, whose fallbacks are narrower, so labels
never overflow the room measured for them.

Layout
------
Every chart is laid out from measured text (constrained layout, then the
text extents of a trial draw): a worker label longer than
:data:`LABEL_CHARS` characters is wrapped on two lines, and cut with ``…``
beyond that (the full label stays in the SVG as the ``<title>`` of the
label's group, shown on hover); the figure widens when the labels leave
the plot less than :data:`MIN_PLOT_WIDTH` inches (up to
:data:`MAX_WIDTH`); a title or axis label wider than the figure is wrapped
to fit it; the x limits leave room, in data units, for the value labels
next to the bars, which never run over the worker names.

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
import textwrap
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.text import Text
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

#: A worker label longer than this is wrapped on two lines of at most this many characters, then cut with "…".
LABEL_CHARS = 28
#: Lines of a worker label at most.
LABEL_LINES = 2
#: Least width of the plot area, inches: the figure widens (up to MAX_WIDTH) when labels leave less.
MIN_PLOT_WIDTH = 3.6
#: Widest figure, inches, a chart widens to for its labels (kpi.html scales it to the page).
MAX_WIDTH = 10.0
#: Least half-span of each axis of :func:`tradeoff_chart`, as a share of the absolute mean of its points.
TRADEOFF_MIN_SPAN = 0.02

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
    (``Chart(figsize=(6, 4)).subplots()``), without pyplot. Its canvas is
    Agg's, so ``chart.canvas.get_renderer()`` measures text (what the
    layout of this module does); saving as SVG, PDF or PNG works as usual.
    :attr:`full_texts` holds the full text of labels shown shortened, by the
    ``gid`` of their text: the SVG (:meth:`to_svg`, :meth:`save`) writes it
    as the ``<title>`` of that group (shown on hover).

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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        FigureCanvasAgg(self)         # measures text (``chart.canvas.get_renderer()``); no pyplot, no backend chosen
        #: Full text of shortened labels, by the ``gid`` of their text: written as the group's SVG ``<title>``.
        self.full_texts: dict[str, str] = {}

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
        return self._titled(inline_svg(buffer.getvalue(), id_prefix, name), f"{id_prefix}-")

    def _titled(self, svg: str, prefix: str = "") -> str:
        """``svg`` with the full text of each shortened label as the ``<title>`` of its group."""
        for gid, full in getattr(self, "full_texts", {}).items():
            tag = f'<g id="{prefix}{re.sub(r"[^A-Za-z0-9_-]", "-", gid)}">'
            svg = svg.replace(tag, f"{tag}\n <title>{html.escape(full, quote=False)}</title>", 1)
        return svg

    def save(self, path: str | Path, *, dpi: float = 150) -> Path:
        """Write the chart to ``path``; the format follows the suffix (``.svg``, ``.png``, ``.pdf``).

        An SVG file is a standalone document with text as text; PNG is
        ``dpi`` dots per inch. Returns the path.
        """
        path = Path(path)
        with chart_style():
            if path.suffix.lower() == ".svg":
                buffer = io.StringIO()
                self.savefig(buffer, format="svg", metadata={"Date": None})
                path.write_text(self._titled(buffer.getvalue()), encoding="utf-8")
            else:
                self.savefig(path, dpi=dpi)
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
    return f"{sector['sector']} {sector['worker_name']}" + (f" ({fte:g} FTE)" if fte is not None else "")


def shorten(text: str, width: int | None = None, lines: int | None = None) -> str:
    """``text`` wrapped on at most ``lines`` lines of ``width`` characters, the last cut with ``…``.

    Defaults: :data:`LABEL_CHARS`, :data:`LABEL_LINES`.

    >>> shorten("A2 Travailleur social 12 (remplace TS05) (0.75 FTE)")
    'A2 Travailleur social 12\\n(remplace TS05) (0.75 FTE)'
    >>> shorten("Worker 1")
    'Worker 1'
    """
    width = LABEL_CHARS if width is None else width
    lines = LABEL_LINES if lines is None else lines
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    wrapped = textwrap.wrap(text, width)
    if len(wrapped) > lines:
        rest = " ".join(wrapped[lines - 1:])
        wrapped = wrapped[:lines - 1] + [rest[:width - 1].rstrip() + "\u2026"]
    return "\n".join(wrapped)


def _label_rows(ax: Any, labels: list[str], gids: list[str]) -> None:
    """Worker labels as y tick labels (row ``i`` at ``y = i``), shortened; full text kept for the SVG title."""
    short = [shorten(t) for t in labels]
    ax.set_yticks(range(len(labels)), [_plain(t) for t in short])
    for text, full, cut, gid in zip(ax.get_yticklabels(), labels, short, gids):
        text.set_gid(gid)
        if cut != full:
            ax.figure.full_texts[gid] = full


def _per_row(labels: list[str], per_row: float = 0.36) -> float:
    """Row height, inches: more when a label takes two lines."""
    return per_row + 0.16 * (max((shorten(t).count("\n") for t in labels), default=0))


def _height(rows: int, per_row: float = 0.36, extra: float = 1.55) -> float:
    return max(2.6, extra + per_row * rows)


def _worker_rows(ax, sectors: list[dict], x_max: float) -> None:
    """One row per worker (top to bottom in the given order), group rules, light vertical grid."""
    _group_rules(ax, sectors)
    _label_rows(ax, [_worker_label(s) for s in sectors], [f"label-{_gid(s['sector'])}" for s in sectors])
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


# --------------------------------------------------------------------------- measured layout

#: Room, pixels at the figure's dpi, kept between text and the figure's edge.
_EDGE = 4.0


def _renderer(chart: Chart) -> Any:
    """Lay the chart out (constrained layout, nothing rendered) and return the renderer that measured it.

    A trial layout that collapses (labels wider than the figure) is widened by :func:`_settle`: no warning.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="constrained_layout not applied", category=UserWarning)
        chart.draw_without_rendering()
    return chart.canvas.get_renderer()


def _wrap_to(text: Text, max_px: float, renderer: Any) -> bool:
    """Wrap ``text`` at spaces so that each line is at most ``max_px`` wide; ``True`` if it changed."""
    words = text.get_text().replace("\n", " ").split(" ")
    original = text.get_text()

    def width(line: str) -> float:
        text.set_text(line)
        return text.get_window_extent(renderer).width

    lines, line = [], ""
    for word in words:
        trial = f"{line} {word}" if line else word
        if line and width(trial) > max_px:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    text.set_text("\n".join(lines))
    return text.get_text() != original


def _fit_text(chart: Chart, ax: Any, renderer: Any) -> bool:
    """Wrap the title and the x label that run past the figure's edges; ``True`` if one changed."""
    fig = chart.bbox
    changed = False
    for title in _titles(ax):
        box = title.get_window_extent(renderer)
        if box.x1 > fig.x1 - _EDGE or box.x0 < fig.x0:
            changed |= _wrap_to(title, fig.x1 - _EDGE - max(box.x0, fig.x0), renderer)
    label = ax.xaxis.label
    if label.get_text():
        box = label.get_window_extent(renderer)
        centre = (box.x0 + box.x1) / 2
        room = 2 * min(centre - fig.x0, fig.x1 - centre) - 2 * _EDGE
        if box.width > room:
            changed |= _wrap_to(label, room, renderer)
    return changed


def _titles(ax: Any) -> list[Text]:
    """The axes' titles that have text (left, centre, right; :data:`STYLE` puts ``set_title`` on the left)."""
    found = [getattr(ax, name, None) for name in ("_left_title", "title", "_right_title")]
    return [t for t in found if isinstance(t, Text) and t.get_text()]


def _widen(chart: Chart, ax: Any, renderer: Any) -> bool:
    """Widen the figure (up to :data:`MAX_WIDTH`) when the labels leave the plot less than :data:`MIN_PLOT_WIDTH`."""
    plot = ax.get_window_extent(renderer).width / chart.dpi
    width, height = chart.get_size_inches()
    if plot >= MIN_PLOT_WIDTH - 0.01 or width >= MAX_WIDTH:
        return False
    chart.set_size_inches(min(MAX_WIDTH, width + MIN_PLOT_WIDTH - plot), height)
    return True


def _settle(chart: Chart, ax: Any, room: Any = None, passes: int = 5) -> None:
    """Lay the chart out from measured text until nothing moves.

    Each pass draws the chart (without rendering), widens the figure for
    long labels (:func:`_widen`), lets ``room(renderer)`` set the data limits
    for the value labels, then wraps a title or x label wider than the
    figure (:func:`_fit_text`).
    """
    for _ in range(passes):
        renderer = _renderer(chart)
        changed = _widen(chart, ax, renderer)
        if changed:
            continue
        if room is not None and room(renderer):
            changed = True
            renderer = _renderer(chart)
        changed |= _fit_text(chart, ax, renderer)
        if not changed:
            return


def _reach(ax: Any, text: Text, renderer: Any, side: int) -> float:
    """Pixels ``text`` takes beyond its anchor (``side`` +1: to the right, -1: to the left), plus a margin."""
    box = text.get_window_extent(renderer)
    anchor = ax.transData.transform((text.xy[0], text.xy[1]))[0]
    return (box.x1 - anchor if side > 0 else anchor - box.x0) + _EDGE


def _right_room(ax: Any, labels: list[Text], floor: float, renderer: Any) -> bool:
    """Set the right x limit so each label (an annotation right of its anchor) ends inside the axes.

    With the axes ``W`` pixels wide from ``left``, a label anchored at ``a``
    taking ``w`` pixels ends inside when ``right >= (a - f left) / (1 - f)``,
    ``f = w / W`` (data units per pixel follow the limits). ``True`` if the
    limit changed (more than a pixel).
    """
    left, right = ax.get_xlim()
    width = ax.get_window_extent(renderer).width
    need = floor
    for text in labels:
        share = min(_reach(ax, text, renderer, +1) / width, 0.7)
        need = max(need, (text.xy[0] - share * left) / (1 - share))
    if abs(need - right) * width / (right - left) <= 1.0:
        return False
    ax.set_xlim(left, need)
    return True


def _gid(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(text))


def _number(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}".replace(",", "\u202f")


# --------------------------------------------------------------------------- caseload


def caseload_chart(source: Any, *, title: str | None = None) -> Chart:
    """Caseload against target per worker, with the tolerance band around each target.

    One row per worker (sector id, name, FTE; a label longer than
    :data:`LABEL_CHARS` characters on two lines, then cut with ``…``, in full
    in the SVG ``<title>`` of ``label-<sector>``), by group: the bar is the
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
        band), ``target-<sector>`` (target line), ``share-<sector>`` (its
        label), ``label-<sector>`` (the worker's name). A title or axis
        label wider than the figure is wrapped.

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
        chart, ax = _new_chart(len(sectors), per_row=_per_row([_worker_label(s) for s in sectors]))
        chart.chart_title = name
        targets = np.array([float(s["target"]) for s in sectors])
        loads = np.array([float(s["caseload"]) for s in sectors])
        lower, upper = caseload_band(targets, tolerance)
        inside = within_band(loads, lower, upper)
        right = float(np.nanmax(np.concatenate([loads, upper, [1.0]])))
        shares = []
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
            shares.append(ax.annotate(
                text + ("" if inside[y] else ": out of tolerance"), (float(np.nanmax([loads[y], upper[y]])), y),
                xytext=(4, 0), textcoords="offset points", va="center", ha="left", fontsize=8.5,
                color=_INK if inside[y] else _BAR_OUT, fontweight="normal" if inside[y] else "bold",
                gid=f"share-{gid}"))
        _worker_rows(ax, sectors, right * 1.42)
        ax.set_xlabel(_plain(f"caseload, weighted units ({formula})"))
        ax.set_title(_plain(name))
        chart.legend(handles=[Patch(facecolor=_BAR, label="caseload"),
                              Patch(facecolor=_BAR_OUT, label="caseload out of tolerance"),
                              Patch(facecolor=_BAND, edgecolor="#8fbf8f",
                                    label=f"tolerance band (±{tolerance * 100:g} %)"),
                              Line2D([], [], color=_TARGET, linewidth=2.0, label="target (caseload shared by FTE)")],
                     loc="outside lower center", ncol=2, handlelength=1.6)
        _settle(chart, ax, lambda renderer: _right_room(ax, shares, right * 1.04, renderer))
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
        chart, ax = _new_chart(len(sectors), per_row=_per_row([_worker_label(s) for s in sectors]))
        chart.chart_title = name
        labels = []
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
            labels.append(ax.annotate(f"mean {sp['mean_min']:.0f}, max {sp['max_min']:.0f} min",
                                      (sp["max_min"], y), xytext=(5, 0), textcoords="offset points",
                                      va="center", ha="left", fontsize=8.5, color=_INK))
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
        _settle(chart, ax, lambda renderer: _right_room(ax, labels, right * 1.04, renderer))
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
        ``in-<worker>-<reason>``; per worker ``outlabel-<worker>``,
        ``inlabel-<worker>`` (the totals) and ``worker-<worker>`` (the name,
        a long one shortened as in :func:`caseload_chart`). A total is
        written inside its bar (on a white box) when the bar holds it, else
        beyond the bar's end; the x limits leave it room, so it never runs
        over the worker names.

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
    names = [f"{r['worker_name']} ({r['worker_id']})" if r["worker_name"] != r["worker_id"] else r["worker_id"]
             for r in rows]
    with chart_style():
        chart, ax = _new_chart(max(len(rows), 1), per_row=_per_row(names))
        chart.chart_title = name
        if not rows:
            ax.text(0.5, 0.5, "no commune changes referent", transform=ax.transAxes, ha="center", va="center")
            ax.set_axis_off()
            ax.set_title(_plain(name))
            _settle(chart, ax)
            return chart
        reach = max([max(r["out_total"], r["in_total"]) for r in rows] + [1e-9])
        labels: list[tuple[Text, float, int]] = []
        for y, row in enumerate(rows):
            wid = _gid(row["worker_id"])
            for side, sign in (("out", -1), ("in", 1)):
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
                    text = ax.annotate(words, (sign * total, y), xytext=(0, 0), textcoords="offset points", va="center",
                                       fontsize=8, color=_INK, zorder=4, gid=f"{side}label-{wid}")
                    labels.append((text, float(total), sign))
        ax.axvline(0, color="#333333", linewidth=0.9, zorder=3)
        _label_rows(ax, names, [f"worker-{_gid(r['worker_id'])}" for r in rows])
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
        _settle(chart, ax, lambda renderer: _place_move_labels(ax, labels, reach, renderer))
    return chart


#: Points between a bar's end and its label, outside the bar or inside it.
_LABEL_GAP = 4.0
#: Inside a bar: a white box behind the label, readable on every reason's colour.
_INSIDE_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}


def _place_move_labels(ax: Any, labels: list[tuple[Text, float, int]], reach: float, renderer: Any) -> bool:
    """Put each total inside its bar when the bar holds it, else beyond the bar's end; set symmetric x limits.

    With limits ``±R`` on an axes ``W`` pixels wide, a bar of ``t`` is
    ``W t / 2R`` pixels long: a label ``w`` pixels wide goes inside when
    that is at least ``w`` plus the gaps, and outside otherwise, which asks
    ``R >= t / (1 - 2 (w + gap) / W)`` so that it ends inside the axes,
    clear of the worker names on the left. Widening ``R`` shortens the bars,
    so the choice is repeated until it holds. ``True`` if the limits changed.
    """
    width = ax.get_window_extent(renderer).width
    px = renderer.points_to_pixels(1.0)
    wide = []
    for text, _, _ in labels:
        text.set_bbox(None)
        wide.append(text.get_window_extent(renderer).width)
    pad = 2 * _LABEL_GAP * px + 4 * px                              # gaps either side, the white box
    limit = reach * 1.05
    for _ in range(len(labels) + 2):
        inside = [total * width / (2 * limit) >= w + pad for w, (_, total, _) in zip(wide, labels)]
        need = max([limit] + [total / (1 - 2 * min((w + _LABEL_GAP * px + _EDGE) / width, 0.45))
                              for w, (_, total, _), ins in zip(wide, labels, inside) if not ins])
        if need <= limit * (1 + 1e-9):
            break
        limit = need
    for (text, total, sign), ins in zip(labels, inside):
        # inside: from the bar's outer end towards zero; outside: beyond the outer end
        towards = -sign if ins else sign
        text.xyann = (towards * _LABEL_GAP, 0.0)
        text.set_horizontalalignment("left" if towards > 0 else "right")
        text.set_bbox(_INSIDE_BOX if ins else None)
    left, right = ax.get_xlim()
    ax.set_xlim(-limit, limit)
    return abs(right - limit) * width / (2 * limit) > 1.0


def _count(value: float) -> str:
    """Whole when the value is, else one decimal (expected values, caseload units)."""
    return _number(value, 0 if float(value).is_integer() else 1)


# --------------------------------------------------------------------------- trade-offs


def tradeoff_chart(table: pd.DataFrame, x: str = "max_dev_pct", y: str = "travel_mean_min", *,
                   highlight: str | None = None, title: str | None = None,
                   min_span: float = TRADEOFF_MIN_SPAN) -> Chart:
    """Two columns of a comparison table as labelled points (one per distinct point), as a :class:`Chart`.

    The drawing of :func:`sectorize.report.compare.plot_tradeoffs` (same
    arguments; default: largest caseload deviation from target, %, against
    caseload-weighted mean travel, minutes), in a chart Jupyter displays,
    with three differences:

    - rows with the same two values (to 9 significant digits) are one
      point, labelled with their labels joined (``"tol 5 %, tol 5 % rerun"``),
      highlighted when one of them is;
    - each axis spans at least ``mean ± min_span × |mean|`` of its points
      (default 2 %): a difference of a few tenths of a minute in 48 minutes
      (under 1 %) then looks as small as it is, instead of filling the
      axis; an axis whose values already spread wider is left as is.
      ``min_span=0`` spans the values only;
    - ``title`` is drawn above the plot (wrapped to the figure's width).

    Parameters
    ----------
    table
        E.g. :func:`sectorize.report.compare.compare` or
        :func:`sectorize.report.pareto.pareto` output; its index labels
        the points.
    x, y
        Column names.
    highlight
        A boolean column (e.g. ``"pareto"``): those points are filled and
        joined by a line.
    title
        Title drawn above the plot; also the chart's accessible name
        (default ``"<y> against <x>"``, not drawn).
    min_span
        Least half-span of each axis, as a share of the absolute mean of
        its points (:data:`TRADEOFF_MIN_SPAN`).

    Example
    -------
    >>> tradeoff_chart(compare(plans), title="Balance or travel")                 # doctest: +SKIP
    """
    from sectorize.report.compare import plot_tradeoffs

    merged = _merge_points(table, x, y, highlight)
    with chart_style():
        chart = Chart(figsize=(6.4, 4.4), layout="constrained")
        ax = chart.subplots()
        plot_tradeoffs(merged, x=x, y=y, highlight=highlight, ax=ax)
        chart.chart_title = title or f"{y} against {x}"
        if title:
            ax.set_title(_plain(title))
        for axis, column in (("x", x), ("y", y)):
            _least_span(ax, axis, merged[column].astype(float).to_numpy(), min_span)
        _settle(chart, ax)
    return chart


def _merge_points(table: pd.DataFrame, x: str, y: str, highlight: str | None) -> pd.DataFrame:
    """One row per distinct ``(x, y)``, its label the labels of its rows joined by ``", "`` (wrapped)."""
    missing = [c for c in (x, y, highlight) if c is not None and c not in table.columns]
    if missing:
        raise ValueError(f"tradeoff_chart: no column(s) {missing}; the table has {list(table.columns)}")
    columns = [x, y] + ([highlight] if highlight else [])
    frame = table[columns].copy()
    frame[x], frame[y] = frame[x].astype(float), frame[y].astype(float)
    if highlight:
        frame[highlight] = frame[highlight].fillna(False).astype(bool)
    keys = [tuple(float(f"{v:.9g}") if np.isfinite(v) else ("row", i) for v in pair)
            for i, pair in enumerate(zip(frame[x], frame[y]))]
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    merged = frame.iloc[[members[0] for members in groups.values()]].copy()
    if highlight:
        merged[highlight] = [bool(frame[highlight].iloc[members].any()) for members in groups.values()]
    labels = []
    for members in groups.values():
        label = ", ".join(str(table.index[i]) for i in members)
        labels.append(_plain(textwrap.fill(label, 30, break_on_hyphens=False) if len(members) > 1 else label))
    merged.index = pd.Index(labels, name=table.index.name)
    return merged


def _least_span(ax: Any, axis: str, values: np.ndarray, share: float) -> None:
    """Widen ``axis`` to at least ``mean ± share × |mean|`` of the finite ``values`` (never narrows it)."""
    values = values[np.isfinite(values)]
    if not len(values) or share <= 0:
        return
    centre = float(values.mean())
    half = share * abs(centre)
    low, high = (ax.get_xlim if axis == "x" else ax.get_ylim)()
    low, high = min(low, centre - half), max(high, centre + half)
    (ax.set_xlim if axis == "x" else ax.set_ylim)(low, high)
