"""Compare plans side by side: balance, travel, sector size, local partners, disruption.

:func:`compare` gives one row per plan, :func:`worker_changes` one row per
plan and worker (caseload, communes, and what moves against a reference plan),
:func:`compare_maps` one offline HTML page with the plans' maps side by side
(one colour per worker on all of them, one legend outside the maps, the
tables of differences below), :func:`plot_tradeoffs` a scatter plot of two
columns of the table (matplotlib).

Units: caseload deviations in percent of the sector's target; travel in
minutes (``plan.units.travel_min``: from the sector's centre commune, or from
the worker's base with ``objective = "base"``), weighted by each commune's
caseload; disruption in communes and in caseload (the scenario's workload unit,
e.g. referrals/year + 0.5 x home-care patients).

Example
-------
>>> from sectorize.report.compare import compare, compare_maps           # doctest: +SKIP
>>> table = compare({"±10 %": plan10, "±5 %": plan5}, reference=plan10)  # doctest: +SKIP
>>> table[["max_dev_pct", "travel_mean_min", "moved_communes"]]  # doctest: +SKIP
>>> Path("maps.html").write_text(compare_maps({"±10 %": plan10, "±5 %": plan5}))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sectorize.report.kpi import compute_kpis, travel_stats

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from sectorize.plan import Plan

__all__ = [
    "PARTNER_COLUMNS", "compare", "compare_maps", "disruption", "partner_codes", "partner_counts", "plan_figures",
    "territory_load", "plot_tradeoffs", "worker_changes",
]

#: Columns of the units naming the local partners a worker deals with: the
#: EPCI (intercommunality: home-care services, social action) and the canton
#: (departmental social services are organised by cantons).
PARTNER_COLUMNS = ("epci", "canton")


def _as_dict(plans: Mapping[str, Plan] | Sequence[Plan]) -> dict[str, Plan]:
    if isinstance(plans, Mapping):
        out = {str(k): v for k, v in plans.items()}
    else:
        out = {}
        for i, plan in enumerate(plans):
            name = getattr(plan.scenario, "name", None) or f"plan {i + 1}"
            out[name if name not in out else f"{name} ({i + 1})"] = plan
    if not out:
        raise ValueError("compare: give at least one plan")
    return out


@functools.lru_cache(maxsize=4)
def _shipped_partners(variant: str) -> pd.DataFrame:
    from geodata.regions import load_aura

    return load_aura(variant).units[list(PARTNER_COLUMNS)].copy()


def partner_codes(plan: Plan) -> tuple[pd.DataFrame | None, str]:
    """The EPCI and canton code of each unit of ``plan`` and where they came from.

    Taken from ``plan.units`` when it has the columns, else from the shipped
    AURA units when the plan was made on them (``region.units`` unset).

    Returns
    -------
    (table, note)
        ``table`` indexed like ``plan.units`` with columns ``epci`` and
        ``canton`` (missing codes stay NaN), or ``None`` with a note saying
        why there is none.
    """
    units = plan.units
    if all(c in units.columns for c in PARTNER_COLUMNS):
        return units[list(PARTNER_COLUMNS)], ""
    scenario = plan.scenario
    if scenario is None or scenario.region.units is not None:
        return None, "units lack epci/canton columns"
    table = _shipped_partners(scenario.region.variant).reindex(units.index)
    unknown = int(table.isna().all(axis=1).sum())
    return table, (f"{unknown} unit(s) without epci/canton" if unknown else "")


def partner_counts(load: pd.DataFrame, partners: pd.DataFrame) -> pd.DataFrame:
    """Distinct EPCI and cantons in which each worker has caseload.

    Parameters
    ----------
    load
        Caseload per commune (rows, INSEE codes) and worker (columns); a
        worker deals with the partners of the communes where it is > 0.
    partners
        ``epci`` and ``canton`` code per commune (NaN codes are not counted).

    Returns
    -------
    DataFrame
        One row per worker (the columns of ``load``): ``epci``, ``cantons``.

    Example
    -------
    >>> load = pd.DataFrame({"TS01": [2.0, 1.0, 0.0], "TS02": [0.0, 0.0, 3.0]}, index=["a", "b", "c"])
    >>> codes = pd.DataFrame({"epci": ["E1", "E2", "E2"], "canton": ["K1", "K1", None]}, index=["a", "b", "c"])
    >>> partner_counts(load, codes)
          epci  cantons
    TS01     2        1
    TS02     1        0
    """
    codes = partners.reindex(load.index)
    rows = {}
    for worker in load.columns:
        served = codes[load[worker].to_numpy(dtype=float) > 0]
        rows[worker] = {"epci": int(served["epci"].nunique()), "cantons": int(served["canton"].nunique())}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["epci", "cantons"])


def territory_load(plan: Plan) -> pd.DataFrame:
    """Caseload per commune and worker of a territorial plan (one worker per commune)."""
    units = plan.units
    load = pd.DataFrame(0.0, index=units.index, columns=list(plan.workers["worker_id"]))
    for worker, members in units.groupby("worker_id").groups.items():
        if worker in load.columns:
            load.loc[members, worker] = units.loc[members, "workload"].to_numpy(dtype=float)
    return load


def disruption(plan: Plan, before: pd.Series) -> dict[str, Any]:
    """Communes and caseload whose worker changes, against each commune's previous worker id.

    Parameters
    ----------
    plan
        The new plan.
    before
        Previous worker id per INSEE code (e.g. ``reference.units["worker_id"]``);
        sectors are matched through the worker id, so a sector renamed from
        ``A2`` to ``B1`` with the same worker is no change.

    Returns
    -------
    dict
        ``moved_communes``, ``moved_workload`` (the new plan's caseload of those
        communes), ``moved_workload_pct`` (of the caseload of the communes in
        both plans); the same with suffix ``_renamed`` after handing the new
        sectors to workers of equal FTE so as to keep the most caseload with
        its worker (the least disruption reachable by renaming sectors, as a
        fresh solve numbers them arbitrarily); ``not_compared`` (units in only
        one of the two plans).
    """
    now, before = plan.units["worker_id"].astype(str), before.astype(str)
    common = now.index.intersection(before.index)
    now, before = now.loc[common], before.loc[common]
    workload = plan.units.loc[common, "workload"].astype(float)
    total = float(workload.sum())
    out: dict[str, Any] = {"not_compared": int(len(plan.units.index.union(before.index)) - len(common))}
    for suffix, ids in (("", now), ("_renamed", now.map(_renaming(plan, now, before, workload)))):
        moved = ids != before
        out.update({
            f"moved_communes{suffix}": int(moved.sum()),
            f"moved_workload{suffix}": float(workload[moved].sum()),
            f"moved_workload_pct{suffix}": 100 * float(workload[moved].sum()) / total if total > 0 else np.nan,
        })
    return out


def _renaming(plan: Plan, now: pd.Series, before: pd.Series, workload: pd.Series) -> dict[str, str]:
    """Worker id of each of ``plan``'s sectors after handing sectors to workers of equal FTE so as to
    keep the most caseload with its previous worker (a fresh solve numbers its sectors arbitrarily)."""
    from scipy.optimize import linear_sum_assignment

    new_ids = [str(w) for w in plan.workers["worker_id"]]
    old_ids = sorted(set(before) | set(new_ids))
    fte = plan.workers.set_index(plan.workers["worker_id"].astype(str))["fte"].astype(float)
    kept = pd.crosstab(now, before, values=workload + 1e-6, aggfunc="sum").reindex(
        index=new_ids, columns=old_ids).fillna(0.0)
    score = kept.to_numpy(dtype=float, copy=True)
    for j, old in enumerate(old_ids):  # a sector is sized for its worker's FTE: swap only equal FTE
        if old in fte.index:
            score[~np.isclose(fte.loc[new_ids].to_numpy(), fte[old]), j] = -1e12
        else:
            score[:, j] = -1e12  # that worker is not in the new team
    rows, cols = linear_sum_assignment(-score)
    return {new_ids[r]: old_ids[c] for r, c in zip(rows, cols)}


def plan_figures(plan: Plan, before: pd.Series | None = None) -> dict[str, Any]:
    """One row of :func:`compare`: the figures of ``plan`` (disruption against ``before`` worker ids)."""
    kpis = compute_kpis(plan)
    sectors = kpis["sectors"]
    dev = np.array([s["deviation_pct"] for s in sectors if s["deviation_pct"] is not None], dtype=float)
    units = plan.units
    travel = travel_stats(units["travel_min"].to_numpy(dtype=float), units["workload"].to_numpy(dtype=float))
    communes = np.array([s["communes"] for s in sectors], dtype=float)
    row: dict[str, Any] = {
        "scenario": kpis["scenario"], "valid": plan.valid, "workers": len(sectors),
        "groups": len(kpis["groups"]), "fte": kpis["totals"]["fte"], "caseload": kpis["totals"]["workload"],
        "max_dev_pct": float(np.abs(dev).max()) if dev.size else np.nan,
        "dev_std_pct": float(dev.std()) if dev.size else np.nan,
        "travel_mean_min": travel["mean_min"], "travel_max_min": travel["max_min"],
        "communes_min": communes.min(), "communes_mean": communes.mean(), "communes_max": communes.max(),
    }
    partners, note = partner_codes(plan)
    if partners is None:
        row.update({"epci_mean": np.nan, "epci_max": np.nan, "cantons_mean": np.nan, "cantons_max": np.nan})
    else:
        counts = partner_counts(territory_load(plan), partners)
        row.update({"epci_mean": counts["epci"].mean(), "epci_max": int(counts["epci"].max()),
                    "cantons_mean": counts["cantons"].mean(), "cantons_max": int(counts["cantons"].max())})
    row["partners_note"] = note
    if before is not None:
        row.update(disruption(plan, before))
    solve = plan.solve or {}
    row.update({"status": solve.get("status"), "gap": solve.get("gap"), "solve_s": solve.get("time_s")})
    return row


def compare(plans: Mapping[str, Plan] | Sequence[Plan], reference: Plan | None = None) -> pd.DataFrame:
    """One row per plan with the figures a planner weighs.

    Parameters
    ----------
    plans
        ``{label: plan}``, or a list (labelled by scenario name).
    reference
        The plan to measure disruption against (e.g. the current plan);
        ``None`` leaves the disruption columns out.

    Returns
    -------
    DataFrame
        Indexed by label. Columns: ``scenario, valid, workers, groups, fte,
        caseload``; balance ``max_dev_pct`` (largest |caseload - target| /
        target, %), ``dev_std_pct`` (standard deviation of the sector
        deviations, %); travel ``travel_mean_min`` (caseload-weighted) and
        ``travel_max_min`` (farthest commune), minutes; sector size
        ``communes_min, communes_mean, communes_max``; local partners per
        worker ``epci_mean, epci_max, cantons_mean, cantons_max`` (distinct
        EPCI / cantons among the worker's communes with caseload > 0; NaN
        and ``partners_note`` say why when the units lack the codes); with a
        reference, ``moved_communes, moved_workload, moved_workload_pct``
        (communes whose worker id changes, and their caseload), the same
        with suffix ``_renamed`` (sectors handed to equal-FTE workers to
        move the least caseload, see :func:`disruption`) and
        ``not_compared`` (units in only one of the two plans); solver
        ``status, gap, solve_s`` (seconds).
    """
    before = None if reference is None else reference.units["worker_id"]
    rows = {label: plan_figures(plan, before) for label, plan in _as_dict(plans).items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "plan"
    return table


def worker_changes(plans: Mapping[str, Plan] | Sequence[Plan],
                   reference: str | Plan | None = None) -> pd.DataFrame:
    """Per plan and worker: sector, caseload against target, communes, and what moves against a reference.

    Parameters
    ----------
    plans
        ``{label: plan}``, or a list (labelled by scenario name).
    reference
        The plan the moves are counted against: a label of ``plans``, a
        plan, or ``None`` for the first plan.

    Returns
    -------
    DataFrame
        One row per plan and worker of that plan, in the order of the plans
        then of the worker ids (``TS2`` before ``TS10``). Columns: ``plan``
        (label), ``worker_id``, ``worker_name``, ``fte``, ``group``,
        ``sector``; ``caseload`` (sum of the communes' ``workload``, the
        scenario's weighted units), ``target`` (same units),
        ``target_pct`` (caseload / target × 100); ``communes``;
        ``communes_out`` and ``communes_in`` (communes of the reference
        that this plan gives to another worker, or takes from one; 0 for the
        reference itself); ``moved_out`` and ``moved_in`` (the patients in
        follow-up of those communes, as counted by the reference plan's
        demand column of the role ``follow_up``; without one, the reference
        plan's caseload of those communes, weighted units). ``attrs``:
        ``reference`` (its label), ``moved_unit`` (``"patients in
        follow-up"`` or ``"caseload (weighted units)"``), ``moved``
        (``{plan label: {"communes": n, "moved": patients}}``: every commune
        that changes worker, those of a worker who is not in the plan
        included). Communes in only one of the two plans are not counted as
        moved.

    Example
    -------
    >>> table = worker_changes({"2026": plan26, "2027": plan27})  # doctest: +SKIP
    >>> table[table.plan == "2027"][["worker_id", "communes_out", "moved_out"]]  # doctest: +SKIP
    """
    from sectorize.report.kpi import role_column
    from sectorize.report.maps import _natural

    named = _as_dict(plans)
    ref_label, ref = _reference(named, reference)
    follow_up = role_column(ref, "follow_up")
    counts = ref.units[follow_up if follow_up else "workload"].astype(float)
    before = ref.units["worker_id"].astype(str)
    rows, totals = [], {}
    for label, plan in named.items():
        units, workers = plan.units, plan.workers
        now = units["worker_id"].astype(str)
        common = now.index.intersection(before.index)
        moved = common[(now.loc[common] != before.loc[common]).to_numpy()]
        totals[label] = {"communes": len(moved), "moved": float(counts.loc[moved].sum())}
        caseload = units.groupby(units["worker_id"].astype(str))["workload"].sum()
        communes = now.value_counts()
        for w in sorted(workers.itertuples(index=False), key=lambda w: _natural(str(w.worker_id))):
            wid = str(w.worker_id)
            gone = moved[(before.loc[moved] == wid).to_numpy()]
            came = moved[(now.loc[moved] == wid).to_numpy()]
            load, target = float(caseload.get(wid, 0.0)), float(w.target)
            rows.append({
                "plan": label, "worker_id": wid, "worker_name": str(w.worker_name), "fte": float(w.fte),
                "group": w.group, "sector": w.sector, "caseload": load, "target": target,
                "target_pct": 100 * load / target if target > 0 else np.nan, "communes": int(communes.get(wid, 0)),
                "communes_out": len(gone), "communes_in": len(came),
                "moved_out": float(counts.loc[gone].sum()), "moved_in": float(counts.loc[came].sum()),
            })
    table = pd.DataFrame(rows, columns=[
        "plan", "worker_id", "worker_name", "fte", "group", "sector", "caseload", "target", "target_pct", "communes",
        "communes_out", "communes_in", "moved_out", "moved_in"])
    table.attrs.update(reference=ref_label,
                       moved_unit="patients in follow-up" if follow_up else "caseload (weighted units)",
                       moved=totals)
    return table


def _reference(named: dict[str, Plan], reference: str | Plan | None) -> tuple[str, Plan]:
    """(label, plan) of the reference of a comparison: a label of ``named``, a plan, or the first plan."""
    if reference is None:
        label = next(iter(named))
        return label, named[label]
    if isinstance(reference, str):
        if reference not in named:
            raise ValueError(f"reference {reference!r} is not one of the plans {list(named)}")
        return reference, named[reference]
    for label, plan in named.items():
        if plan is reference:
            return label, plan
    return "reference", reference


def compare_maps(plans: Mapping[str, Plan] | Sequence[Plan], *, columns: int = 2, height_px: int = 560,
                 simplify_m: float = 500.0, title: str = "Sectorization scenarios",
                 reference: str | Plan | None = None, sync: bool = True) -> str:
    """One self-contained HTML page with the plans' maps side by side and their differences (works offline).

    The page holds:

    - a search box above the maps: the commune (name, postcode or INSEE
      code, as on :func:`sectorize.report.maps.sector_map`) is found and
      outlined on every map;
    - the maps (:func:`sectorize.report.maps.sector_map` without legend,
      layer control or search box, no background tiles), each embedded whole
      in an ``<iframe srcdoc>``, in a CSS grid of ``columns`` columns, each
      ``height_px`` pixels high; ``simplify_m`` (metres) simplifies commune
      borders to keep the page light. Every worker has one colour on all the
      maps (:func:`sectorize.report.maps.team_colours`), whatever her
      sector id. With ``sync``, moving or zooming one map moves the others
      (a check box turns it off);
    - one legend beside the maps (below them on narrow screens), outside
      every map: each worker's colour, name, id and FTE, and what the lines
      and circles mean;
    - a table per plan (largest caseload deviation from target in percent,
      caseload-weighted mean travel in minutes, communes and patients that
      change worker against the reference plan) and a table per worker and
      plan (sector; caseload as a share of target; communes; communes and
      patients that leave and join her against the reference), from
      :func:`worker_changes`.

    Parameters
    ----------
    plans
        ``{label: plan}``, or a list (labelled by scenario name).
    columns
        Maps per row (>= 1).
    height_px
        Height of each map, CSS pixels.
    simplify_m
        Simplification tolerance of the commune borders, metres.
    title
        The page's title and heading.
    reference
        The plan moves are counted against: a label of ``plans``, a plan,
        or ``None`` for the first plan. Its groups also decide the workers'
        colours (:func:`sectorize.report.maps.team_colours`).
    sync
        Move the maps together (the page's check box starts ticked).

    Returns
    -------
    str
        The HTML page; write it as UTF-8.

    Example
    -------
    >>> page = compare_maps({"2 groups": plan2, "3 groups": plan3})  # doctest: +SKIP
    >>> external_resources(page)                                       # doctest: +SKIP
    []
    """
    from sectorize.report.maps import sector_map, team_colours

    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    named = _as_dict(plans)
    ref_label, ref_plan = _reference(named, reference)
    colours = team_colours([ref_plan, *named.values()])
    changes = worker_changes(named, ref_plan)
    cells = []
    for label, plan in named.items():
        page = sector_map(plan, simplify_m=simplify_m, colours=colours, legend=False, layer_control=False,
                          search=False).get_root().render()
        note = ' <span class="ref">(reference)</span>' if label == ref_label else ""
        cells.append(
            f"<figure><figcaption>{html.escape(label)}{note}</figcaption>"
            f'<iframe class="plan-map" title="{html.escape(label)}" allowfullscreen '
            f'srcdoc="{html.escape(page, quote=True)}"></iframe></figure>'
        )
    style = (
        "body{font:14px/1.35 sans-serif;margin:12px;background:#fafafa;color:#111}"
        "h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:18px 0 6px}"
        ".find{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin-bottom:10px}"
        ".find input[type=search]{width:20em;padding:4px 6px;font:14px sans-serif}"
        ".find .status{color:#555}"
        ".layout{display:flex;gap:12px;align-items:flex-start}"
        f".grid{{flex:1;min-width:0;display:grid;grid-template-columns:repeat({columns},minmax(0,1fr));gap:12px}}"
        "figure{margin:0;background:#fff;box-shadow:0 1px 3px rgba(0,0,0,.3)}"
        "figcaption{font-weight:bold;padding:6px 8px}figcaption .ref{font-weight:normal;color:#555}"
        f"iframe{{width:100%;height:{int(height_px)}px;border:0;display:block}}"
        ".legend{order:2;flex:0 0 240px;position:sticky;top:8px;background:#fff;padding:8px 10px;"
        "box-shadow:0 1px 3px rgba(0,0,0,.3);max-height:calc(100vh - 16px);overflow-y:auto}"
        ".legend h2{margin-top:0}.legend ul{list-style:none;margin:0;padding:0}.legend li{padding:1px 0;"
        "white-space:nowrap;break-inside:avoid}.legend small{color:#555}.legend p{font-size:12px;color:#333}"
        ".swatch{display:inline-block;width:14px;height:10px;border:1px solid #555}"
        "@media (max-width:900px){.layout{flex-direction:column}.legend{order:0;position:static;flex:none;"
        "max-height:none}.legend ul{columns:15em}.grid{width:100%}}"
        "table.diff{border-collapse:collapse;background:#fff;font-size:13px}"
        "table.diff th,table.diff td{border:1px solid #ddd;padding:2px 6px;text-align:right;white-space:nowrap}"
        "table.diff th{background:#f0f0f0}table.diff td.text,table.diff th.text{text-align:left}"
        ".differences{overflow-x:auto}.note{color:#444;font-size:12px;max-width:70em}"
    )
    find = (
        '<form class="find" id="find"><label>Find a commune on every map: '
        '<input type="search" id="find-input" placeholder="Commune, postcode, INSEE code"></label>'
        '<button type="submit">Find</button>'
        + ('<label><input type="checkbox" id="sync" checked> Move the maps together</label>' if sync else "")
        + '<span class="status" id="find-status" role="status"></span></form>'
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{find}"
        f'<div class="layout">{_workers_legend(named, colours)}<div class="grid">{"".join(cells)}</div></div>'
        f'<section class="differences">{_plans_table(named, changes)}{_workers_table(named, changes, colours)}'
        f"</section><script>{_PAGE_JS}</script></body></html>\n"
    )


#: The comparison page's script: the shared search and the synchronised views (messages to and
#: from the maps' ``sectorizeTools``).
_PAGE_JS = """
(function () {
  "use strict";
  var frames = Array.prototype.slice.call(document.querySelectorAll("iframe.plan-map"));
  var sync = document.getElementById("sync"), status = document.getElementById("find-status");
  var asked = null, answers = 0;
  window.addEventListener("message", function (ev) {
    var d = ev.data;
    if (!d || typeof d !== "object" || !d.sectorize) { return; }
    if (d.sectorize === "view" && sync && sync.checked) {
      frames.forEach(function (f) {
        if (f.contentWindow !== ev.source) { f.contentWindow.postMessage({sectorize: "setView", view: d.view}, "*"); }
      });
    } else if (d.sectorize === "found" && d.query === asked && answers++ === 0) {
      status.textContent = d.hit ? "Shown on every map: " + d.hit.name + " (INSEE " + d.hit.insee + ")"
                                 : "No commune matches \u201c" + d.query + "\u201d";
    }
  });
  // The maps drew while the page was still being laid out: once every map has loaded, fit each to
  // its region again, so that all start from the same view at their final size.
  window.addEventListener("load", function () {
    frames.forEach(function (f) { f.contentWindow.postMessage({sectorize: "fit", name: "Region"}, "*"); });
  });
  document.getElementById("find").addEventListener("submit", function (ev) {
    ev.preventDefault();
    asked = document.getElementById("find-input").value;
    answers = 0;
    frames.forEach(function (f) { f.contentWindow.postMessage({sectorize: "find", query: asked}, "*"); });
  });
})();
"""


def _workers_legend(named: dict[str, Plan], colours: Mapping[str, str]) -> str:
    """The page's one legend: each worker's colour, name, id and FTE (from the first plan that has her)."""
    from sectorize.report.maps import _natural

    seen: dict[str, tuple[str, float]] = {}
    for plan in named.values():
        for w in plan.workers.itertuples(index=False):
            seen.setdefault(str(w.worker_id), (str(w.worker_name), float(w.fte)))
    items = "".join(
        f'<li data-worker="{html.escape(wid)}"><span class="swatch" style="background:{colours[wid]}"></span> '
        f"{html.escape(name)} <small>{html.escape(wid)} · {_fmt(fte)} FTE</small></li>"
        for wid, (name, fte) in sorted(seen.items(), key=lambda item: _natural(item[0]))
    )
    return (
        '<aside class="legend" id="legend"><h2>Workers</h2><ul>' + items + "</ul>"
        "<p>Each worker has the same colour on every map, whatever her sector id. Thin lines: sectors; "
        "bold lines: groups; dashed lines: departments; circles: the workers' bases. Commune names show "
        "from zoom 10; hover a commune for its figures.</p></aside>"
    )


def _plans_table(named: dict[str, Plan], changes: pd.DataFrame) -> str:
    """Per plan: validity, largest caseload deviation, mean travel, communes and patients that change worker."""
    unit, moved = changes.attrs["moved_unit"], changes.attrs["moved"]
    head = ("<tr><th class=text>Plan</th><th>Checks</th><th>Largest caseload deviation (%)</th>"
            "<th>Mean travel (min)</th><th>Communes changing worker</th>"
            f"<th>{html.escape(unit.capitalize())} changing worker</th></tr>")
    rows = []
    for label, plan in named.items():
        mine = changes[changes["plan"] == label]
        dev = (mine["target_pct"] - 100).abs().max()
        units = plan.units
        travel = travel_stats(units["travel_min"].to_numpy(dtype=float), units["workload"].to_numpy(dtype=float))
        ref = " (reference)" if label == changes.attrs["reference"] else ""
        rows.append(
            f"<tr><td class=text>{html.escape(label)}{ref}</td><td>{'passed' if plan.valid else 'failed'}</td>"
            f"<td>{_fmt(dev)}</td><td>{_fmt(travel['mean_min'])}</td><td>{moved[label]['communes']}</td>"
            f"<td>{_fmt(moved[label]['moved'])}</td></tr>"
        )
    return (f'<h2>Plans</h2><table class="diff" id="plans-table">{head}{"".join(rows)}</table>'
            f'<p class="note">Changes are counted against the plan {html.escape(changes.attrs["reference"])}.</p>')


def _workers_table(named: dict[str, Plan], changes: pd.DataFrame, colours: Mapping[str, str]) -> str:
    """Per worker (rows) and plan (column groups): sector, caseload vs target, communes, moves."""
    from sectorize.report.maps import _natural

    unit = changes.attrs["moved_unit"]
    short = "patients" if unit.startswith("patients") else "caseload"
    by = changes.set_index(["plan", "worker_id"])
    workers = sorted(dict.fromkeys(changes["worker_id"]), key=_natural)
    names = changes.drop_duplicates("worker_id").set_index("worker_id")["worker_name"]
    labels = list(named)
    head = ('<tr><th class=text rowspan="2" colspan="2">Worker</th>'
            + "".join(f'<th colspan="4">{html.escape(label)}</th>' for label in labels) + "</tr><tr>"
            + "<th>Sector</th><th>Caseload vs target</th><th>Communes</th><th>Moved out / in</th>" * len(labels)
            + "</tr>")
    rows = []
    for wid in workers:
        cells = [f'<td><span class="swatch" style="background:{colours.get(wid, "#888888")}"></span></td>'
                 f"<td class=text>{html.escape(str(names[wid]))} ({html.escape(wid)})</td>"]
        for label in labels:
            if (label, wid) not in by.index:
                cells.append('<td colspan="4" class=text>not in this plan</td>')
                continue
            r = by.loc[(label, wid)]
            if label == changes.attrs["reference"]:
                moved = "reference"
            elif r["communes_out"] == 0 and r["communes_in"] == 0:
                moved = "no change"
            else:
                moved = (f"−{int(r['communes_out'])} / +{int(r['communes_in'])} communes<br>"
                         f"−{_fmt(r['moved_out'])} / +{_fmt(r['moved_in'])} {short}")
            cells.append(
                f"<td>{html.escape(str(r['sector']))}</td><td>{_fmt(r['caseload'])} ({_fmt(r['target_pct'], 0)} %)</td>"
                f"<td>{int(r['communes'])}</td><td>{moved}</td>"
            )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<h2>Per worker</h2><table class="diff" id="workers-table">' + head + "".join(rows) + "</table>"
        f'<p class="note">Caseload in the scenario\'s weighted units, with its share of the worker\'s target. '
        f"Moved out / in: communes of the reference plan {html.escape(changes.attrs['reference'])} that the plan "
        f"gives to another worker / takes from one, and their {html.escape(unit)} (from the reference plan).</p>"
    )


def _fmt(value: Any, digits: int = 1) -> str:
    """A number for a table: whole numbers without decimals, else ``digits`` decimals; NaN as a dash."""
    x = float(value)
    if not np.isfinite(x):
        return "–"
    return f"{x:.0f}" if digits == 0 or x == round(x) or abs(x) >= 100 else f"{x:.{digits}f}"


def plot_tradeoffs(table: pd.DataFrame, x: str = "max_dev_pct", y: str = "travel_mean_min", *,
                   highlight: str | None = None, ax: Any = None) -> Figure:
    """Scatter plot of two columns of a comparison table, one labelled point per row.

    Parameters
    ----------
    table
        E.g. :func:`compare` or :func:`sectorize.report.pareto.pareto` output.
    x, y
        Column names (default: caseload balance vs mean travel, minutes).
    highlight
        Name of a boolean column (e.g. ``"pareto"``): those points are
        drawn filled and joined by a line.
    ax
        A matplotlib Axes to draw into; ``None`` makes a new Figure.

    Returns
    -------
    matplotlib.figure.Figure
        Without ``ax``, a :class:`sectorize.report.charts.Chart` (a Figure
        Jupyter displays inline, no pyplot needed); ``fig.savefig(path)`` or
        ``fig.save(path)`` writes it. With ``ax``, its figure.
    """
    from sectorize.report.charts import Chart

    missing = [c for c in (x, y, highlight) if c is not None and c not in table.columns]
    if missing:
        raise ValueError(f"plot_tradeoffs: no column(s) {missing}; the table has {list(table.columns)}")
    if ax is None:
        fig = Chart(figsize=(6.4, 4.4), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    xs, ys = table[x].astype(float), table[y].astype(float)
    marked = table[highlight].fillna(False).astype(bool) if highlight else pd.Series(False, index=table.index)
    ax.scatter(xs[~marked], ys[~marked], facecolors="none", edgecolors="#555555", label="other")
    if highlight:
        front = table[marked].sort_values(x)
        ax.plot(front[x].astype(float), front[y].astype(float), "o-", color="#d62728", label=highlight)
        ax.legend(loc="best")
    for label, xv, yv in zip(table.index, xs, ys):
        if np.isfinite(xv) and np.isfinite(yv):
            ax.annotate(str(label), (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(_AXIS_LABELS.get(x, x))
    ax.set_ylabel(_AXIS_LABELS.get(y, y))
    ax.grid(True, alpha=0.3)
    return fig


_AXIS_LABELS = {
    "max_dev_pct": "largest caseload deviation from target (%)",
    "dev_std_pct": "std of caseload deviations (%)",
    "travel_mean_min": "caseload-weighted mean travel (minutes)",
    "travel_max_min": "farthest commune (minutes)",
    "epci_mean": "distinct EPCI per worker (mean)",
    "cantons_mean": "distinct cantons per worker (mean)",
    "moved_workload_pct": "caseload changing worker (%)",
}
