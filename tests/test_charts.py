"""Charts (issue 22): caseload against target with its tolerance band, travel per sector, a re-run's
referent changes per worker; inline SVG in kpi.html, displayed inline by Jupyter, without pyplot."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from browser import find_chromium, open_offline, read_png
from sectorize.report.charts import Chart, caseload_chart, moved_chart, tradeoff_chart, travel_chart
from sectorize.report.kpi import compute_kpis, kpi_html, kpi_text, moved_per_worker, travel_spread
from sectorize.report.pareto import plot_pareto
from sectorize.store.export import write_outputs
from test_kpi_export import tiny_plan
from test_kpi_units import tiny_instance

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="no chromium, chromium-browser or google-chrome on PATH"
)


def changes_table() -> pd.DataFrame:
    """A re-run's changes.csv: TS02 gives a commune to TS01, TS05 left (handover to TS12), one new commune."""
    return pd.DataFrame({
        "insee": ["01002", "01003", "01004", "01005"], "name": ["Deux", "Trois", "Quatre", "Cinq"],
        "from_sector": ["A2", "A3", "A3", ""], "from_worker": ["TS02", "TS05", "TS05", ""],
        "to_sector": ["A1", "A3", "A3", "A2"], "to_worker": ["TS01", "TS12", "TS12", "TS02"],
        "follow_up": [12.0, 30.0, 8.0, 2.0], "referrals": [10.0, 20.0, 5.0, 1.0],
        "reason": ["moved", "handover", "handover", "new commune"],
    })


def rerun_plan():
    """``tiny_plan`` as a re-run leaves it: ``plan.solve["rerun"]`` with the changes per worker."""
    plan = tiny_plan(["A1", "A1", "A2", "A2"])
    rows = moved_per_worker(changes_table(), {"TS05": "Departed Worker"})
    plan.solve["rerun"] = {"previous_plan": "P20261201-7317387d", "moved_communes": 1, "moved_patients": 12.0,
                           "moved_unit": "patients", "moved_by_worker": rows}
    return plan


def svg_tree(svg: str) -> ET.Element:
    """The inline SVG parsed as XML (it must be well-formed on its own)."""
    return ET.fromstring(svg)


def by_id(root: ET.Element, id_: str) -> ET.Element:
    found = [e for e in root.iter() if e.get("id") == id_]
    assert len(found) == 1, f"{id_}: {len(found)} element(s)"
    return found[0]


def xs(element: ET.Element) -> list[float]:
    """The x coordinates of the path(s) under an element (matplotlib writes absolute M/L commands)."""
    values = []
    for path in element.iter("path"):
        values += [float(x) for x in re.findall(r"[ML] (-?[\d.]+) -?[\d.]+", path.get("d", ""))]
    assert values, f"no path under {element.get('id')}"
    return values


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter("text")]


# --------------------------------------------------------------------------- figures


def test_travel_spread_by_hand():
    s = travel_spread(np.array([10.0, 20.0, 30.0, 90.0, np.nan]), np.array([1.0, 2.0, 1.0, 0.0, 5.0]))
    assert s == {"p10_min": 10.0, "p25_min": 10.0, "median_min": 20.0, "p75_min": 20.0, "p90_min": 30.0,
                 "mean_min": 20.0, "min_min": 10.0, "max_min": 90.0}
    assert set(travel_spread(np.array([np.nan]), np.array([1.0])).values()) == {None}


def test_kpis_carry_the_travel_spread_from_the_base():
    plan, minutes, w = tiny_instance()
    a1, a2 = compute_kpis(plan)["sectors"]
    assert a1["travel_spread"]["from"] == "worker base"
    # TS01 (units 0, 1) from its base, unit 4: 31 and 24 minutes, caseload 5 and 1
    assert a1["travel_spread"]["median_min"] == 31.0 and a1["travel_spread"]["min_min"] == 24.0
    assert a1["travel_spread"]["mean_min"] == pytest.approx(a1["travel_base"]["mean_min"])
    assert a2["travel_spread"]["max_min"] == a2["travel_base"]["max_min"]
    plan.units = plan.units.drop(columns=["centre_travel_min", "base_travel_min"])     # a re-opened plan
    assert compute_kpis(plan)["sectors"][0]["travel_spread"]["from"] == "sector centre"


def test_moved_per_worker_by_reason():
    rows = {r["worker_id"]: r for r in moved_per_worker(changes_table(), {"TS05": "Departed Worker"})}
    assert sorted(rows) == ["TS01", "TS02", "TS05", "TS12"]
    assert rows["TS02"]["out"] == {"moved": 12.0} and rows["TS02"]["in"] == {"new commune": 2.0}
    assert rows["TS05"] == {"worker_id": "TS05", "worker_name": "Departed Worker", "out": {"handover": 38.0},
                            "in": {}, "out_total": 38.0, "in_total": 0.0, "communes_out": 2, "communes_in": 0}
    assert rows["TS12"]["worker_name"] == "TS12" and rows["TS12"]["in_total"] == 38.0
    table = pd.DataFrame({"worker_id": ["TS01"], "worker_name": ["Alice"]})
    assert moved_per_worker(changes_table(), table)[0]["worker_name"] == "Alice"
    with pytest.raises(ValueError, match="reason"):
        moved_per_worker(changes_table().drop(columns="reason"))


# --------------------------------------------------------------------------- chart structure


def test_caseload_chart_draws_each_band_around_its_target():
    plan = tiny_plan(["A1", "A1", "A2", "A2"])        # A1: 30 / 25 = 120 % (out), A2: 70 / 75 = 93 %
    kpis = compute_kpis(plan)
    chart = caseload_chart(kpis)
    assert isinstance(chart, Chart)
    root = svg_tree(chart.to_svg(id_prefix="caseload"))
    assert root.tag == "svg" and root.get("role") == "img"
    assert "Caseload against target" in "".join(root.find("title").itertext())
    words = texts(root)
    assert "A1 Worker 1 (0.25 FTE)" in words and "A2 Worker 2 (0.75 FTE)" in words
    assert "120 % of target: out of tolerance" in words and "93 % of target" in words
    tolerance = kpis["tolerance"]["sector"]
    zero = min(xs(by_id(root, "caseload-caseload-A1")))           # bars start at 0 caseload
    for s in kpis["sectors"]:
        band = xs(by_id(root, f"caseload-band-{s['sector']}"))
        target = set(xs(by_id(root, f"caseload-target-{s['sector']}")))
        bar = xs(by_id(root, f"caseload-caseload-{s['sector']}"))
        assert len(target) == 1
        (t,) = target
        low, high = min(band), max(band)
        assert low < t < high
        # the band is target x (1 -/+ tolerance), the bar the caseload, on one scale
        assert (high - t) / (t - zero) == pytest.approx(tolerance, rel=1e-3)
        assert (t - low) / (t - zero) == pytest.approx(tolerance, rel=1e-3)
        assert (max(bar) - zero) / (t - zero) == pytest.approx(s["caseload"] / s["target"], rel=1e-3)
    colour = lambda sector: by_id(root, f"caseload-caseload-{sector}").find("path").get("style")  # noqa: E731
    assert "#b8322a" in colour("A1") and "#2f6690" in colour("A2")        # out of tolerance in red


def test_travel_chart_boxes_per_sector():
    plan, _, _ = tiny_instance()
    kpis = compute_kpis(plan)
    for source in (plan, kpis, json.loads(json.dumps(kpis))):            # a Plan, KPIs, kpi.json read back
        root = svg_tree(travel_chart(source).to_svg(id_prefix="travel"))
        words = texts(root)
        assert "A1 Alice (1 FTE)" in words and "A2 Bruno (1 FTE)" in words
        assert any("minutes from the worker's base" in w for w in words)
        for s in kpis["sectors"]:
            box, median = xs(by_id(root, f"travel-box-{s['sector']}")), xs(by_id(root, f"travel-median-{s['sector']}"))
            whisker = xs(by_id(root, f"travel-whisker-{s['sector']}"))
            assert min(whisker) <= min(box) <= min(median) <= max(median) <= max(box) <= max(whisker)
        assert "mean 30, max 31 min" in words                               # A1: 29.8 min, farthest 31


def test_moved_chart_from_a_result_a_table_and_kpis():
    plan = rerun_plan()
    result = SimpleNamespace(plan=plan, changes=changes_table(), summary={"moved_unit": "patients"},
                             previous=SimpleNamespace(workers=pd.DataFrame({"worker_id": ["TS05"],
                                                                           "worker_name": ["Departed Worker"]})))
    for source in (result, changes_table(), compute_kpis(plan)):
        root = svg_tree(moved_chart(source).to_svg(id_prefix="moves"))
        words = texts(root)
        assert "out 12, 1 commune" in words and "in 38, 2 communes" in words
        for part in ("out-TS02-moved", "in-TS01-moved", "out-TS05-handover", "in-TS12-handover",
                     "in-TS02-new_commune"):
            by_id(root, f"moves-{part}")
        assert any("patients in follow-up" in w for w in words)
    named = texts(svg_tree(moved_chart(result).to_svg()))
    assert "Departed Worker (TS05)" in named and "Worker 1 (TS01)" in named
    units = texts(svg_tree(moved_chart(changes_table(), unit="caseload units").to_svg()))
    assert any(w.startswith("caseload units:") for w in units)
    empty = moved_chart(changes_table().iloc[:0])
    assert "no commune changes referent" in texts(svg_tree(empty.to_svg()))


def test_inline_svg_is_self_contained_with_unique_ids():
    plan = rerun_plan()
    kpis = compute_kpis(plan)
    svgs = [caseload_chart(kpis).to_svg(id_prefix="a"), travel_chart(kpis).to_svg(id_prefix="b"),
            moved_chart(kpis).to_svg(id_prefix="c")]
    for svg in svgs:
        assert svg.startswith("<svg ") and svg.rstrip().endswith("</svg>")
        assert not any(token in svg for token in ("http", "href", "<use", "<script", "<metadata", "<?xml", "<!DOCTYPE"))
        ids = re.findall(r'\sid="([^"]+)"', svg)
        refs = re.findall(r"url\(#([^)]+)\)", svg)
        assert set(refs) <= set(ids)                               # every clip path points inside the chart
        assert "font-family: 'DejaVu Sans', 'Liberation Sans', 'Arial', 'Helvetica', sans-serif" in svg
    ids = [i for svg in svgs for i in re.findall(r'\sid="([^"]+)"', svg)]
    assert len(ids) == len(set(ids))
    with pytest.raises(ValueError, match="id_prefix"):
        caseload_chart(kpis).to_svg(id_prefix="1 bad")


# --------------------------------------------------------------------------- layout (long names, labels, trade-offs)

LONG_NAME = "Travailleuse sociale 12 (remplace TS005)"       # 40 characters
LONG_TITLE = "Charge de travail par travailleur social contre la cible, secteur Nord-Ouest (bande ±10 %)"


def long_name_kpis() -> dict:
    """``tiny_plan``'s KPIs with a 40-character worker name and a long demand formula (x label)."""
    kpis = compute_kpis(tiny_plan(["A1", "A1", "A2", "A2"]))
    kpis["sectors"][1]["worker_name"] = LONG_NAME
    kpis["demand"] = {**kpis.get("demand", {}),
                      "formula": "1.0 × referrals + 0.5 × home_care + 0.25 × follow_up (patients/year)"}
    return kpis


def long_moves() -> pd.DataFrame:
    """``changes_table`` with the departed worker handing over 3,800 patients: a long bar and a long label."""
    table = changes_table()
    table.loc[1:2, "follow_up"] = [3000.0, 800.0]
    return table


def renderer_of(chart):
    """Lay the chart out and return the renderer that measured it (an Agg canvas if the chart has none)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = chart.canvas if hasattr(chart.canvas, "get_renderer") else FigureCanvasAgg(chart)
    chart.draw_without_rendering()
    return canvas.get_renderer()


def drawn_texts(chart) -> list:
    """Every text the chart draws: titles, axis and tick labels (within the limits), value labels, legends."""
    from matplotlib.text import Text

    out = []
    for ax in chart.axes:
        ticks = set()
        for axis, (low, high) in ((ax.xaxis, sorted(ax.get_xlim())), (ax.yaxis, sorted(ax.get_ylim()))):
            ticks.add(axis.label)
            if ax.axison and axis.get_visible():
                out.append(axis.label)
            for tick in axis.get_major_ticks():
                ticks.add(tick.label1)
                ticks.add(tick.label2)
                if (ax.axison and low - 1e-9 <= tick.get_loc() <= high + 1e-9 and tick.label1.get_visible()):
                    out.append(tick.label1)
        out += [t for t in ax.findobj(Text) if t not in ticks and t not in out]
    out += [t for legend in chart.legends for t in legend.get_texts()]
    return [t for t in out if t.get_visible() and t.get_text().strip()]


def assert_inside_figure(chart) -> None:
    """Every drawn text, and the axes with all they draw, lie inside the figure."""
    renderer = renderer_of(chart)
    figure = chart.bbox
    inside = lambda box: (box.x0 >= figure.x0 - 0.5 and box.x1 <= figure.x1 + 0.5         # noqa: E731
                          and box.y0 >= figure.y0 - 0.5 and box.y1 <= figure.y1 + 0.5)
    for text in drawn_texts(chart):
        assert inside(text.get_window_extent(renderer)), f"{text.get_text()!r} runs out of the figure"
    for ax in chart.axes:
        assert inside(ax.get_tightbbox(renderer)), "the axes (title, labels, texts) run out of the figure"


def value_labels(chart, prefix: str = "") -> list:
    """The texts written in the axes (ax.text, annotations) starting with ``prefix``."""
    (ax,) = chart.axes
    return [t for t in ax.texts if t.get_text().startswith(prefix)]


def test_caseload_chart_with_a_long_name_and_title_fits_the_figure():
    assert len(LONG_NAME) == 40
    for title in (None, LONG_TITLE):
        chart = caseload_chart(long_name_kpis(), title=title)
        assert_inside_figure(chart)
        renderer = renderer_of(chart)
        (ax,) = chart.axes
        axes_box = ax.get_window_extent(renderer)
        names = ax.get_yticklabels()
        for name in names:                                     # worker names left of the plot
            assert name.get_window_extent(renderer).x1 <= axes_box.x0 + 0.5
        for label in value_labels(chart):                      # "93 % of target" inside the plot, clear of the names
            box = label.get_window_extent(renderer)
            assert axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1 + 0.5, label.get_text()
            assert not any(box.overlaps(n.get_window_extent(renderer)) for n in names)
        assert axes_box.width / chart.dpi >= 3.5                 # the long name leaves room for the bars
    # the long name on two lines of at most 28 characters; in full in the SVG title of its label
    shown = [t.get_text() for t in chart.axes[0].get_yticklabels()]
    assert shown[1] == "A2 Travailleuse sociale 12\n(remplace TS005) (0.75 FTE)"
    assert all(len(line) <= 28 for text in shown for line in text.split("\n"))
    root = svg_tree(chart.to_svg(id_prefix="caseload"))
    group = by_id(root, "caseload-label-A2")
    assert "".join(group.find("title").itertext()) == f"A2 {LONG_NAME} (0.75 FTE)"
    assert [t.text for t in group.iter("text")] == ["A2 Travailleuse sociale 12", "(remplace TS005) (0.75 FTE)"]
    assert by_id(root, "caseload-label-A1").find("title") is None         # a short name is not repeated
    assert "".join(root.find("title").itertext()) == LONG_TITLE           # the accessible name stays whole
    assert "\n" in chart.axes[0].get_title(loc="left")                    # the drawn title is wrapped


def test_a_very_long_name_is_cut_with_an_ellipsis_and_kept_whole_in_the_svg():
    from sectorize.report.charts import shorten

    name = "Travailleuse sociale 12 (remplace TS05 jusqu'au retour de congé maternité, secteur Nord-Ouest)"
    assert shorten(name) == "Travailleuse sociale 12\n(remplace TS05 jusqu'au ret\u2026"
    assert shorten("Worker 1") == "Worker 1" and shorten("W" * 60, 10, 2) == "W" * 10 + "\n" + "W" * 9 + "\u2026"
    kpis = long_name_kpis()
    kpis["sectors"][1]["worker_name"] = name + " $5"
    chart = caseload_chart(kpis)
    assert_inside_figure(chart)
    group = by_id(svg_tree(chart.to_svg(id_prefix="c")), "c-label-A2")
    assert "".join(group.find("title").itertext()) == f"A2 {name} $5 (0.75 FTE)"


def test_the_figure_widens_for_labels_that_leave_no_room(monkeypatch):
    from sectorize.report import charts

    monkeypatch.setattr(charts, "LABEL_CHARS", 400)        # no wrapping: the whole name on one line
    kpis = long_name_kpis()
    kpis["sectors"][1]["worker_name"] = LONG_NAME * 2
    chart = caseload_chart(kpis)
    assert chart.get_size_inches()[0] > 7.5
    assert_inside_figure(chart)
    (ax,) = chart.axes
    assert ax.get_window_extent(renderer_of(chart)).width / chart.dpi >= charts.MIN_PLOT_WIDTH - 0.05


def test_travel_chart_with_a_long_name_fits_the_figure():
    plan, _, _ = tiny_instance()
    kpis = compute_kpis(plan)
    kpis["sectors"][0]["worker_name"] = LONG_NAME
    chart = travel_chart(kpis)
    assert_inside_figure(chart)
    renderer = renderer_of(chart)
    axes_box = chart.axes[0].get_window_extent(renderer)
    for label in value_labels(chart, "mean "):
        assert label.get_window_extent(renderer).x1 <= axes_box.x1 + 0.5


def test_moved_chart_labels_stay_clear_of_the_worker_names():
    result = SimpleNamespace(plan=None, changes=long_moves(), summary={"moved_unit": "patients"},
                             previous=SimpleNamespace(workers=pd.DataFrame({"worker_id": ["TS05"],
                                                                           "worker_name": [LONG_NAME]})))
    for source in (result, changes_table(), long_moves()):
        chart = moved_chart(source)
        assert_inside_figure(chart)
        renderer = renderer_of(chart)
        (ax,) = chart.axes
        axes_box = ax.get_window_extent(renderer)
        names = [n.get_window_extent(renderer) for n in ax.get_yticklabels()]
        labels = value_labels(chart, "out ") + value_labels(chart, "in ")
        assert len(labels) == 5                                # TS01 in, TS02 out and in, TS05 out, TS12 in
        for label in labels:
            box = label.get_window_extent(renderer)
            assert axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1 + 0.5, label.get_text()
            assert not any(box.overlaps(name) for name in names), label.get_text()
    # the departed worker's 3,800 patients: the label inside its bar (on a white box), the small ones beyond theirs
    to_px = lambda x: ax.transData.transform((x, 0))[0]                                  # noqa: E731
    (big,) = value_labels(chart, "out 3\u202f800")
    box = big.get_window_extent(renderer)
    assert to_px(-3800) <= box.x0 and box.x1 <= to_px(0) and big.get_bbox_patch() is not None
    (small,) = value_labels(chart, "out 12")
    assert small.get_window_extent(renderer).x1 <= to_px(-12) and small.get_bbox_patch() is None
    root = svg_tree(chart.to_svg(id_prefix="moves"))
    assert by_id(root, "moves-worker-TS05").find("title") is None          # a short label: no title repeating it


def test_moved_chart_keeps_a_long_name_whole_in_the_svg():
    result = SimpleNamespace(plan=None, changes=long_moves(), summary={"moved_unit": "patients"},
                             previous=SimpleNamespace(workers=pd.DataFrame({"worker_id": ["TS05"],
                                                                           "worker_name": [LONG_NAME]})))
    root = svg_tree(moved_chart(result).to_svg(id_prefix="moves"))
    group = by_id(root, "moves-worker-TS05")
    assert "".join(group.find("title").itertext()) == f"{LONG_NAME} (TS05)"
    assert [t.text for t in group.iter("text")] == ["Travailleuse sociale 12", "(remplace TS005) (TS05)"]


def tradeoff_table() -> pd.DataFrame:
    """Four runs: two give the very same plan; mean travel differs by tenths of a minute (under 1 %)."""
    return pd.DataFrame({"max_dev_pct": [4.9, 4.9, 9.8, 14.0], "travel_mean_min": [48.2, 48.2, 48.0, 48.5],
                         "pareto": [True, False, True, False]},
                        index=["tol 5 %", "tol 5 % rerun", "tol 10 %", "tol 15 %"])


def test_tradeoff_chart_merges_identical_points_and_takes_a_title():
    chart = tradeoff_chart(tradeoff_table(), highlight="pareto", title="Balance against travel")
    (ax,) = chart.axes
    assert [t.get_text() for t in ax.texts] == ["tol 5 %, tol 5 % rerun", "tol 10 %", "tol 15 %"]
    front = [line for line in ax.lines if line.get_label() == "pareto"]
    assert [list(line.get_xdata()) for line in front] == [[4.9, 9.8]]       # merged point on the front (one is)
    others = np.concatenate([c.get_offsets() for c in ax.collections])
    assert [tuple(p) for p in others] == [(14.0, 48.5)]
    assert ax.get_title(loc="left") == "Balance against travel" and chart.chart_title == "Balance against travel"
    assert "Balance against travel" in texts(svg_tree(chart.to_svg(id_prefix="t")))
    assert_inside_figure(chart)
    untitled = tradeoff_chart(tradeoff_table())
    assert untitled.axes[0].get_title(loc="left") == ""
    assert untitled.chart_title == "travel_mean_min against max_dev_pct"
    # values equal to 9 significant digits are one point; a real difference is not merged
    near = tradeoff_table().assign(travel_mean_min=[48.2, 48.2 + 1e-12, 48.2001, 48.5])
    assert [t.get_text() for t in tradeoff_chart(near).axes[0].texts] == [
        "tol 5 %, tol 5 % rerun", "tol 10 %", "tol 15 %"]
    with pytest.raises(ValueError, match="no column"):
        tradeoff_chart(tradeoff_table(), y="nope")


def test_tradeoff_axis_spans_at_least_two_percent_of_the_mean():
    table = tradeoff_table()
    mean = np.mean([48.2, 48.0, 48.5])                                       # the points drawn (one merged)
    low, high = tradeoff_chart(table).axes[0].get_ylim()
    assert low <= mean * 0.98 + 1e-9 and high >= mean * 1.02 - 1e-9          # 0.5 min of 48 is not the whole axis
    assert low <= 48.0 and high >= 48.5
    low, high = tradeoff_chart(table, min_span=0).axes[0].get_ylim()
    assert high - low < 1.0                                                 # without: the values only
    wide = table.assign(travel_mean_min=[20.0, 20.0, 40.0, 60.0])
    assert tradeoff_chart(wide).axes[0].get_ylim() == tradeoff_chart(wide, min_span=0).axes[0].get_ylim()


# --------------------------------------------------------------------------- notebooks


def test_charts_display_in_a_notebook_and_save(tmp_path):
    kpis = compute_kpis(tiny_plan(["A1", "A1", "A2", "A2"]))
    table = pd.DataFrame({"tolerance": [0.05, 0.10, 0.15], "sparse_weight": [1.0] * 3,
                          "max_dev_pct": [4.9, 9.8, 14.0], "travel_mean_min": [48.0, 41.0, 43.0],
                          "pareto": [True, True, False]})
    charts = [caseload_chart(kpis), travel_chart(kpis), moved_chart(changes_table()), plot_pareto(table),
              tradeoff_chart(table, highlight="pareto")]
    for chart in charts:
        assert isinstance(chart, Chart)
        png = chart._repr_png_()
        assert png.startswith(PNG_MAGIC) and len(png) > 2_000
        assert chart.figure is chart and chart.axes
    pareto_svg = plot_pareto(table).to_svg(id_prefix="pareto")
    assert "±5 %" in texts(svg_tree(pareto_svg)) and "href" not in pareto_svg
    # with an Axes of one's own, the figure is drawn into as before
    from matplotlib.figure import Figure

    own = Figure()
    assert plot_pareto(table, ax=own.subplots()) is own
    saved = [charts[0].save(tmp_path / "caseload.svg"), charts[3].save(tmp_path / "pareto.png"),
             charts[0].save(tmp_path / "caseload.pdf")]
    assert "<text" in saved[0].read_text(encoding="utf-8")                  # text kept as text
    assert saved[1].read_bytes().startswith(PNG_MAGIC) and saved[2].read_bytes().startswith(b"%PDF")


def test_no_pyplot_and_matplotlib_settings_untouched():
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, "tests")
        import matplotlib
        matplotlib.rcParams["font.size"] = 13.0
        def settings():
            return {k: repr(matplotlib.rcParams._get(k)) for k in matplotlib.rcParams}
        before = settings()
        import pandas as pd
        from test_kpi_export import tiny_plan
        from test_charts import changes_table
        from sectorize.report.charts import caseload_chart, moved_chart, travel_chart
        from sectorize.report.kpi import compute_kpis, kpi_html
        from sectorize.report.pareto import plot_pareto
        kpis = compute_kpis(tiny_plan(["A1", "A1", "A2", "A2"]))
        table = pd.DataFrame({"tolerance": [0.05, 0.1], "max_dev_pct": [4.0, 9.0], "travel_mean_min": [50.0, 40.0],
                              "pareto": [True, True]})
        for chart in (caseload_chart(kpis), travel_chart(kpis), moved_chart(changes_table()), plot_pareto(table)):
            chart._repr_png_(); chart.to_svg()
        kpi_html(kpis)
        after = settings()
        print("pyplot" if "matplotlib.pyplot" in sys.modules else "no pyplot")
        print("same" if before == after else sorted(k for k in before if before[k] != after[k]))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["no", "pyplot", "same"], out.stdout


@pytest.mark.slow
def test_a_jupyter_kernel_shows_the_charts_as_images():
    """In a real kernel, the last line of a cell draws the chart: an image, not ``<Figure size ...>``."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cells = [
        "import sys; sys.path.insert(0, 'tests')\n"
        "import pandas as pd\n"
        "from test_kpi_export import tiny_plan\n"
        "from sectorize.report.charts import caseload_chart\n"
        "from sectorize.report.pareto import plot_pareto\n"
        "plan = tiny_plan(['A1', 'A1', 'A2', 'A2'])",
        "caseload_chart(plan)",
        "plot_pareto(pd.DataFrame({'tolerance': [0.05, 0.1], 'max_dev_pct': [4.0, 9.0],\n"
        "                          'travel_mean_min': [50.0, 40.0], 'pareto': [True, True]}))",
        "print('matplotlib.pyplot' in sys.modules)",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    for cell in notebook.cells[1:3]:
        (output,) = cell.outputs
        assert output["output_type"] == "execute_result" and "image/png" in output["data"]
    assert notebook.cells[3].outputs[0]["text"].strip() == "False"


# --------------------------------------------------------------------------- the KPI page


def test_kpi_page_embeds_the_charts():
    page = kpi_html(compute_kpis(tiny_plan(["A1", "A1", "A2", "A2"])))
    for kind in ("caseload", "travel"):
        figure = re.search(rf'<figure class="chart" id="{kind}-chart">(.*?)</figure>', page, re.S)
        assert figure and "<svg " in figure.group(1) and "<figcaption>" in figure.group(1)
    assert page.index('id="caseload-chart"') < page.index('<table id="workload">') < page.index('id="travel-chart"')
    assert 'id="caseload-band-A1"' in page and 'id="caseload-target-A2"' in page
    assert "moves-chart" not in page and "Referent changes" not in page             # not a re-run
    assert "chart-error\"" not in page.replace('p.chart-error', '')
    assert not any(token in page for token in ("<script", "<link", "src=", "href=", "http"))
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_a_rerun_page_shows_the_changes_per_worker():
    plan = rerun_plan()
    kpis = compute_kpis(plan)
    assert kpis["moves"]["unit"] == "patients" and "moved_by_worker" not in kpis["solve"]["rerun"]
    assert {r["worker_id"]: r["worker_name"] for r in kpis["moves"]["workers"]} == {
        "TS01": "Worker 1", "TS02": "Worker 2", "TS05": "Departed Worker", "TS12": "TS12"}
    json.dumps(kpis, allow_nan=False)
    page = kpi_html(kpis)
    assert '<figure class="chart" id="moves-chart">' in page and '<table id="moves">' in page
    assert 'id="moves-out-TS05-handover"' in page
    text = kpi_text(kpis)
    section = text[text.index("Referent changes per worker"):]
    assert re.search(r"^Departed Worker \(TS05\) +2 +38 +0 +0 +0 +-38$", section, re.M)
    assert re.search(r"^Worker 2 \(TS02\) +1 +12 +12 +1 +2 +-10$", section, re.M)
    assert re.search(r"^total +3 +50 +12 +4 +52 +\+2$", section, re.M)
    assert "moved_by_worker" not in text


def test_a_chart_that_fails_leaves_a_note_not_a_lost_run(monkeypatch):
    from sectorize.report import charts

    def broken(source):
        raise RuntimeError("no ink")

    monkeypatch.setattr(charts, "travel_chart", broken)
    page = kpi_html(compute_kpis(tiny_plan(["A1", "A1", "A2", "A2"])))
    assert '<p class="chart-error" id="travel-chart">Chart not drawn: RuntimeError(&#x27;no ink&#x27;)</p>' in page
    assert '<figure class="chart" id="caseload-chart">' in page and '<table id="travel">' in page


@needs_chromium
def test_kpi_page_with_charts_opens_offline(tmp_path):
    plan = rerun_plan()
    run = write_outputs(plan, tmp_path)
    shot = tmp_path / "kpi.png"
    page = open_offline(run / "kpi.html", screenshot=shot, window=(1000, 2600))
    assert page.console == [] and page.requests == []
    for kind in ("caseload", "travel", "moves"):
        assert f'id="{kind}-chart"' in page.dom
    # the browser put the charts in the SVG namespace and kept the worker names as text
    assert page.dom.count("<svg ") == 3
    assert re.search(r"<text[^>]*>A1 Worker 1 \(0\.25 FTE\)</text>", page.dom)
    assert re.search(r'<g id="caseload-band-A1">\s*<path', page.dom)
    png = read_png(shot)
    colours = png.colours()
    near = lambda rgb: any(max(abs(a - b) for a, b in zip(c, rgb)) <= 6 for c in colours)  # noqa: E731
    assert near((0xb8, 0x32, 0x2a)) and near((0xcf, 0xe3, 0xcf)) and near((0x2f, 0x66, 0x90))  # bar out, band, bar


@pytest.mark.slow
def test_a_real_rerun_with_a_handover(aura_run, tmp_path):
    """The AURA plan re-run with one worker handing over to a successor: the chart and the page."""
    import tomllib

    from sectorize.config.scenario import scenario_from_dict
    from sectorize.pipeline.rerun import load_previous, rerun

    folder, _ = aura_run
    d = tomllib.loads((folder / "scenario.toml").read_text(encoding="utf-8"))
    d["model"].update(backend="heuristic", time_limit_s=6)
    replaced = d["team"]["workers"][4]
    d["team"]["workers"] = [w for w in d["team"]["workers"] if w["id"] != replaced["id"]]
    d["team"]["workers"].append({"id": "TS12", "name": "Successor", "fte": replaced.get("fte", 1.0),
                                 "replaces": replaced["id"]})
    d["rerun"] = {**d.get("rerun", {}), "frontier": [], "frontier_penalties": []}
    result = rerun(scenario_from_dict(d), load_previous(folder), with_frontier=False)
    root = svg_tree(moved_chart(result).to_svg(id_prefix="moves"))
    words = texts(root)
    assert f"{replaced['name']} ({replaced['id']})" in words and "Successor (TS12)" in words
    by_id(root, f"moves-out-{replaced['id']}-handover")
    by_id(root, "moves-in-TS12-handover")
    if "moved_by_worker" not in result.summary:   # until rerun's summary carries it (sectorize/pipeline/rerun.py)
        result.plan.solve["rerun"]["moved_by_worker"] = moved_per_worker(result.changes, result.previous.workers)
    run = write_outputs(result.plan, tmp_path)
    page = (run / "kpi.html").read_text(encoding="utf-8")
    assert '<figure class="chart" id="moves-chart">' in page and 'id="moves-in-TS12-handover"' in page
    assert page.count("<svg ") == 3 and "chart-error\"" not in page
    kpis = json.loads((run / "kpi.json").read_text(encoding="utf-8"))
    handed = result.changes.loc[result.changes["reason"] == "handover", "follow_up"].sum()
    successor = next(r for r in kpis["moves"]["workers"] if r["worker_id"] == "TS12")
    assert successor["in"]["handover"] == pytest.approx(handed)
