"""Key figures of a plan: caseload balance, travel times and contiguity per sector and group.

:func:`compute_kpis` returns a JSON-ready dictionary; :func:`kpi_table`,
:func:`kpi_text` and :func:`kpi_html` present it as a table, a fixed-width
text report and a self-contained HTML page.

Units: caseloads and targets are in the scenario's workload unit (weighted
demand, e.g. referrals/year + 0.5 x home-care patients); travel times in
minutes from the sector's reference point (its centre commune, or the
worker's base) to each commune; deviations in percent of the target.

Example
-------
>>> kpis = compute_kpis(plan)                                   # doctest: +SKIP
>>> print(kpi_text(kpis))                                       # doctest: +SKIP
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import pandas as pd

from solvers.problem import caseload_band, within_band

if TYPE_CHECKING:  # pragma: no cover
    from sectorize.plan import Plan

#: Order in which solver facts are shown.
_SOLVE_KEYS = ("status", "backend", "objective", "bound", "gap", "time_s")


def demand_columns(plan: Plan) -> list[str]:
    """The demand columns of ``plan.units`` declared by the scenario (e.g. ``referrals``).

    Raises
    ------
    ValueError
        If a declared column is missing from ``plan.units``.
    """
    declared = plan.scenario.demand.demand_columns
    missing = [c for c in declared if c not in plan.units.columns]
    if missing:
        raise ValueError(f"plan.units lacks the demand column(s) {missing} declared by the scenario's [demand]")
    return declared


def travel_stats(minutes: np.ndarray, weights: np.ndarray) -> dict[str, float | int | None]:
    """Workload-weighted travel-time statistics, minutes.

    Parameters
    ----------
    minutes
        Travel minutes to each commune (NaN = unknown, counted in ``unknown``).
    weights
        Workload of each commune; when they sum to 0 every commune counts
        equally.

    Returns
    -------
    dict
        ``mean_min``, ``median_min``, ``p90_min`` (weighted, ``inverted_cdf``
        percentiles: the smallest time reached by that share of the
        workload), ``max_min`` (unweighted maximum) and ``unknown`` (count).

    Example
    -------
    >>> travel_stats(np.array([10.0, 20.0, 60.0]), np.array([3.0, 1.0, 0.0]))["mean_min"]
    12.5
    """
    minutes = np.asarray(minutes, dtype=float)
    weights = np.asarray(weights, dtype=float)
    known = np.isfinite(minutes)
    m, w = minutes[known], weights[known]
    stats: dict[str, float | int | None] = {"mean_min": None, "median_min": None, "p90_min": None, "max_min": None}
    if len(m):
        if not w.sum() > 0:
            w = np.ones_like(m)
        stats["mean_min"] = float(np.average(m, weights=w))
        stats["median_min"] = float(np.percentile(m, 50, weights=w, method="inverted_cdf"))
        stats["p90_min"] = float(np.percentile(m, 90, weights=w, method="inverted_cdf"))
        stats["max_min"] = float(m.max())
    stats["unknown"] = int((~known).sum())
    return stats


def _is_contiguous(graph: nx.Graph, keys: list[Any]) -> bool:
    return bool(keys) and nx.is_connected(graph.subgraph(keys))


def _deviation_pct(caseload: float, target: float) -> float | None:
    return (caseload - target) / target * 100 if target > 0 else None


def _within(caseload: float, target: float, tolerance: float) -> bool:
    lower, upper = caseload_band(target, tolerance)
    return bool(within_band(caseload, lower, upper))


def _aggregate(units: pd.DataFrame, graph: nx.Graph, demand: list[str]) -> dict[str, Any]:
    """Figures shared by sectors and groups, for the communes in ``units``."""
    return {
        "caseload": float(units["workload"].sum()),
        "communes": len(units),
        "population": int(units["population"].sum()),
        "demand": {c: float(units[c].sum()) for c in demand},
        "travel": travel_stats(units["travel_min"].to_numpy(dtype=float), units["workload"].to_numpy(dtype=float)),
        "contiguous": _is_contiguous(graph, list(units.index)),
    }


def _place(plan: Plan, key: Any) -> dict[str, Any] | None:
    if key is None or key == "" or (not isinstance(key, str) and pd.isna(key)):
        return None
    name = plan.units["name"].get(key)
    return {"key": str(key), "name": None if name is None else str(name)}


def _base(plan: Plan, worker: pd.Series) -> dict[str, Any]:
    place = _place(plan, worker.get("base_key")) or {"key": None, "name": None}
    lon, lat = worker.get("base_lon"), worker.get("base_lat")
    return {**place, "lon": None if pd.isna(lon) else float(lon), "lat": None if pd.isna(lat) else float(lat)}


def _without_logs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_logs(v) for k, v in value.items() if k != "log"}
    if isinstance(value, (list, tuple)):
        return [_without_logs(v) for v in value]
    return value


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars, paths and non-finite floats made JSON-safe (NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def compute_kpis(plan: Plan) -> dict[str, Any]:
    """Balance, travel and contiguity figures of a plan, JSON-serialisable.

    Returns
    -------
    dict
        ``scenario`` (name); ``totals`` (``communes``, ``population``,
        ``demand`` per column, ``workload``, ``fte``, ``unassigned``:
        communes with no known sector); ``sectors``: one dict per worker with
        ``group, sector, worker_id, worker_name, fte, target, caseload,
        deviation_pct`` ((caseload - target) / target x 100),
        ``within_tolerance`` (scenario ``model.tolerance``), ``communes,
        population, demand, travel`` (see :func:`travel_stats`),
        ``contiguous`` (the sector's communes form one connected piece of
        ``plan.graph``), ``centre`` and ``base`` (key, name; base also lon,
        lat); ``groups``: the same aggregates per group, with ``target`` the
        sum of its sectors' targets and ``within_tolerance`` against
        ``model.group_tolerance``; ``solve`` (``plan.solve`` without logs);
        ``violations``; ``valid``.
    """
    units, workers, model = plan.units, plan.workers, plan.scenario.model
    demand = demand_columns(plan)
    sectors = []
    for _, w in workers.iterrows():
        target = float(w["target"])
        agg = _aggregate(units[units["sector"] == w["sector"]], plan.graph, demand)
        sectors.append({
            "group": str(w["group"]), "sector": str(w["sector"]),
            "worker_id": str(w["worker_id"]), "worker_name": str(w["worker_name"]),
            "fte": float(w["fte"]), "target": target, "caseload": agg["caseload"],
            "deviation_pct": _deviation_pct(agg["caseload"], target),
            "within_tolerance": _within(agg["caseload"], target, model.tolerance),
            **{k: v for k, v in agg.items() if k != "caseload"},
            "centre": _place(plan, w.get("centre")), "base": _base(plan, w),
        })
    groups = []
    for group, members in workers.groupby("group", sort=False):
        target = float(members["target"].sum())
        agg = _aggregate(units[units["group"] == group], plan.graph, demand)
        groups.append({
            "group": str(group), "sectors": len(members), "fte": float(members["fte"].sum()),
            "target": target, "caseload": agg["caseload"],
            "deviation_pct": _deviation_pct(agg["caseload"], target),
            "within_tolerance": _within(agg["caseload"], target, model.group_tolerance),
            **{k: v for k, v in agg.items() if k != "caseload"},
        })
    known = units["sector"].isin(set(workers["sector"]))
    totals = {
        "communes": len(units), "population": int(units["population"].sum()),
        "demand": {c: float(units[c].sum()) for c in demand},
        "workload": float(units["workload"].sum()), "fte": float(workers["fte"].sum()),
        "unassigned": int((~known).sum()),
    }
    return jsonable({
        "scenario": plan.scenario.name, "totals": totals, "sectors": sectors, "groups": groups,
        "solve": _without_logs(plan.solve), "violations": list(plan.violations), "valid": plan.valid,
    })


# --------------------------------------------------------------------------- presentation


def sector_sort_key(sector: str) -> tuple[Any, ...]:
    """Sort key putting ``"A2"`` before ``"A10"`` (numbers compared as numbers)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(sector)))


def _row(d: dict[str, Any], level: str, demand: list[str]) -> dict[str, Any]:
    travel = d["travel"]
    return {
        "level": level, "group": d["group"],
        "sector": d.get("sector", f"group {d['group']}"),
        "worker_id": d.get("worker_id", ""), "worker_name": d.get("worker_name", ""),
        "fte": d["fte"], "target": d["target"], "caseload": d["caseload"],
        "deviation_pct": d["deviation_pct"], "within_tolerance": d["within_tolerance"],
        "communes": d["communes"], "population": d["population"],
        **{c: d["demand"][c] for c in demand},
        "travel_mean_min": travel["mean_min"], "travel_median_min": travel["median_min"],
        "travel_p90_min": travel["p90_min"], "travel_max_min": travel["max_min"],
        "contiguous": d["contiguous"],
        "centre": (d.get("centre") or {}).get("name") or "",
    }


def kpi_table(kpis: dict[str, Any]) -> pd.DataFrame:
    """One row per sector, then a subtotal row per group (``level`` = ``"sector"``/``"group"``).

    Columns: ``level, group, sector, worker_id, worker_name, fte, target,
    caseload, deviation_pct, within_tolerance, communes, population``, one
    column per demand measure, ``travel_mean_min, travel_median_min,
    travel_p90_min, travel_max_min, contiguous, centre`` (centre name).
    """
    demand = list(kpis["totals"]["demand"])
    rows = []
    for g in kpis["groups"]:
        members = [s for s in kpis["sectors"] if s["group"] == g["group"]]
        rows += [_row(s, "sector", demand) for s in sorted(members, key=lambda s: sector_sort_key(s["sector"]))]
        rows.append(_row(g, "group", demand))
    return pd.DataFrame(rows)


def _fmt(value: Any, digits: int = 1, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}".replace(",", " ")
    if isinstance(value, float):
        return f"{value:{'+' if sign else ''},.{digits}f}".replace(",", " ")
    return str(value)


def _display_table(kpis: dict[str, Any]) -> pd.DataFrame:
    """The KPI table with short headings and formatted cells (strings)."""
    table = kpi_table(kpis)
    demand = list(kpis["totals"]["demand"])
    out = pd.DataFrame({
        "group": table["group"], "sector": table["sector"], "worker": table["worker_name"],
        "FTE": table["fte"].map(lambda v: _fmt(v, 2)),
        "target": table["target"].map(_fmt), "caseload": table["caseload"].map(_fmt),
        "dev %": table["deviation_pct"].map(lambda v: _fmt(v, 1, sign=True)),
        "in tol.": table["within_tolerance"].map(_fmt),
        "communes": table["communes"].map(_fmt), "population": table["population"].map(_fmt),
        **{c: table[c].map(_fmt) for c in demand},
        "mean min": table["travel_mean_min"].map(lambda v: _fmt(v, 0)),
        "median min": table["travel_median_min"].map(lambda v: _fmt(v, 0)),
        "p90 min": table["travel_p90_min"].map(lambda v: _fmt(v, 0)),
        "max min": table["travel_max_min"].map(lambda v: _fmt(v, 0)),
        "contiguous": table["contiguous"].map(_fmt), "centre": table["centre"],
    })
    out.attrs["levels"] = list(table["level"])
    return out


def _facts(d: dict[str, Any]) -> str:
    keys = [k for k in _SOLVE_KEYS if k in d] + [k for k in d if k not in _SOLVE_KEYS]
    parts = []
    for k in keys:
        v = d[k]
        if k == "gap" and isinstance(v, (int, float)) and not isinstance(v, bool):
            parts.append(f"gap={v * 100:.2f} %")
        elif k == "time_s" and isinstance(v, (int, float)):
            parts.append(f"time={v:.1f} s")
        else:
            parts.append(f"{k}={_fmt(v, 1)}")
    return ", ".join(parts)


def _solve_lines(solve: dict[str, Any], indent: str = "") -> list[str]:
    """One line of facts per solve stage (nested dicts and lists of dicts)."""
    scalars = {k: v for k, v in solve.items() if not isinstance(v, (dict, list))}
    lines = [indent + _facts(scalars)] if scalars else []
    for k, v in solve.items():
        if isinstance(v, dict):
            lines += [f"{indent}{k}:"] + _solve_lines(v, indent + "  ")
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                label = x.get("stage", f"{k}[{i}]")
                rest = {key: value for key, value in x.items() if key != "stage"}
                lines += [f"{indent}{label}:"] + _solve_lines(rest, indent + "  ")
    return lines


def _header_lines(kpis: dict[str, Any]) -> list[str]:
    t = kpis["totals"]
    n_viol = len(kpis["violations"])
    demand = ", ".join(f"{c} {_fmt(v)}" for c, v in t["demand"].items())
    lines = [
        f"Scenario: {kpis['scenario']}",
        "Plan: valid (all checks passed)" if kpis["valid"] else f"Plan: INVALID ({n_viol} violation(s))",
        f"Totals: {_fmt(t['communes'])} communes, population {_fmt(t['population'])}, "
        f"{demand}, workload {_fmt(t['workload'])}, FTE {_fmt(t['fte'], 2)}"
        + (f", {t['unassigned']} commune(s) without a sector" if t["unassigned"] else ""),
    ]
    solve = _solve_lines(kpis["solve"])
    return lines + (["Solve:"] + ["  " + s for s in solve] if solve else ["Solve: no solver facts recorded"])


def kpi_text(kpis: dict[str, Any]) -> str:
    """A fixed-width text report: header (scenario, status, objective, gap), the table, checks.

    Travel columns are in minutes; ``dev %`` is the caseload deviation from
    the target; ``in tol.`` says whether it is within the tolerance.
    """
    table = _display_table(kpis)
    lines = _header_lines(kpis) + ["", table.to_string(index=False), ""]
    if kpis["violations"]:
        lines += ["Violations:"] + [f"  - {v}" for v in kpis["violations"]]
    else:
        lines.append("All checks passed.")
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: right; }
th { background: #eee; }
td.text { text-align: left; }
tr.group td { font-weight: bold; background: #f4f4f4; }
td.bad { color: #a00; font-weight: bold; }
.invalid { color: #a00; }
"""


def kpi_html(kpis: dict[str, Any]) -> str:
    """A self-contained HTML page (inline CSS, no scripts or external files) with the KPI table."""
    table = _display_table(kpis)
    text_cols = {"group", "sector", "worker", "centre"}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = []
    for level, (_, row) in zip(table.attrs["levels"], table.iterrows()):
        cells = []
        for col, value in row.items():
            cls = "text" if col in text_cols else ("bad" if value == "NO" else "")
            cells.append(f'<td class="{cls}">{html.escape(str(value))}</td>')
        body.append(f'<tr class="{level}">' + "".join(cells) + "</tr>")
    header = "".join(f"<p>{html.escape(line)}</p>" for line in _header_lines(kpis)[:3])
    solve = "\n".join(_header_lines(kpis)[3:])
    checks = (
        "<h2 class='invalid'>Violations</h2><ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in kpis["violations"]) + "</ul>"
        if kpis["violations"] else "<h2>All checks passed</h2>"
    )
    title = html.escape(f"sectorize: {kpis['scenario']}")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body><h1>{title}</h1>{header}<pre>{html.escape(solve)}</pre>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{checks}"
        "<p>Caseload and target in weighted demand (the scenario's [demand] weights); travel in minutes from the sector's "
        "reference point (centre commune or worker base), weighted by caseload; max is unweighted.</p>"
        "</body></html>\n"
    )
