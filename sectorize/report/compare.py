"""Compare plans side by side: balance, travel, sector size, local partners, disruption.

:func:`compare` gives one row per plan, :func:`compare_maps` one offline HTML
page with the plans' maps side by side, :func:`plot_tradeoffs` a scatter plot
of two columns of the table (matplotlib).

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
    "territory_load",
    "plot_tradeoffs",
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


def compare_maps(plans: Mapping[str, Plan] | Sequence[Plan], *, columns: int = 2, height_px: int = 560,
                 simplify_m: float = 500.0, title: str = "Sectorization scenarios") -> str:
    """One self-contained HTML page with the plans' maps side by side (works offline).

    Each map (:func:`sectorize.report.maps.sector_map`, no background tiles) is
    embedded whole in an ``<iframe srcdoc>``, in a CSS grid of ``columns``
    columns; ``simplify_m`` (metres) simplifies commune borders to keep the
    page light.

    Example
    -------
    >>> page = compare_maps({"2 groups": plan2, "3 groups": plan3})  # doctest: +SKIP
    >>> external_resources(page)                                       # doctest: +SKIP
    []
    """
    from sectorize.report.maps import sector_map

    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    cells = []
    for label, plan in _as_dict(plans).items():
        page = sector_map(plan, simplify_m=simplify_m).get_root().render()
        cells.append(
            f'<figure><figcaption>{html.escape(label)}</figcaption>'
            f'<iframe title="{html.escape(label)}" srcdoc="{html.escape(page, quote=True)}"></iframe></figure>'
        )
    style = (
        "body{font:14px sans-serif;margin:12px;background:#fafafa}"
        f".grid{{display:grid;grid-template-columns:repeat({columns},minmax(0,1fr));gap:12px}}"
        "figure{margin:0;background:#fff;box-shadow:0 1px 3px rgba(0,0,0,.3)}"
        "figcaption{font-weight:bold;padding:6px 8px}"
        f"iframe{{width:100%;height:{int(height_px)}px;border:0;display:block}}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        f'<div class="grid">{"".join(cells)}</div></body></html>\n'
    )


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
        Not shown: display it in a notebook or ``fig.savefig(path)``.
    """
    from matplotlib.figure import Figure

    missing = [c for c in (x, y, highlight) if c is not None and c not in table.columns]
    if missing:
        raise ValueError(f"plot_tradeoffs: no column(s) {missing}; the table has {list(table.columns)}")
    if ax is None:
        fig = Figure(figsize=(6.4, 4.4), layout="constrained")
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
