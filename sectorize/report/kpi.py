"""Key figures of a plan in the manager's units: patients per worker, caseload against target, travel.

:func:`compute_kpis` returns a JSON-ready dictionary; :func:`kpi_table`,
:func:`kpi_text` and :func:`kpi_html` present it as a table, a fixed-width
text report and a self-contained HTML page, whose charts (caseload against
target, travel per sector, a re-run's referent changes per worker) are drawn
by :mod:`sectorize.report.charts` as inline SVG.

Units:

* new referrals in patients/year (the demand column of the role
  ``referrals``) and patients/week (patients/year / :data:`WEEKS_PER_YEAR`);
  active home-care patients (role ``home_care``) and patients in follow-up
  (role ``follow_up``, shown only when the demand has that column) in
  patients. With a synthetic demand these are expected values (shown
  ``≈``, with decimals); with a file of counts, whole numbers;
* caseload and target in the scenario's weighted units
  (``caseload = Σ weight × demand column``, e.g. 1.0 × referrals + 0.5 ×
  home care), shown first as a share of the worker's FTE-proportional
  target (``97 % of target``), the weighted values second;
* travel times in minutes, from the worker's base and from the sector's
  centre commune to each commune of the sector: mean weighted by caseload,
  and maximum (the farthest commune);
* deviations in percent of the target.

Only aggregated counts are reported (per sector, group and department),
never patient-level data.

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

import geodata.demand as _demand
from solvers.problem import caseload_band, within_band

if TYPE_CHECKING:  # pragma: no cover
    from sectorize.plan import Plan

#: Order in which solver facts are shown.
_SOLVE_KEYS = ("status", "backend", "objective", "bound", "gap", "time_s")

#: ``Demand.excluded.reason`` of a total row of the demand file (its counts sum other rows: not left out).
TOTAL_ROW = getattr(_demand, "TOTAL_ROW", "total row")

#: Weeks in a year (365.25 days / 7): a figure per week is the figure per year / 52.18.
WEEKS_PER_YEAR = 52.18

#: Demand roles: ``referrals`` (new referrals, patients/year), ``home_care``
#: (active home-care patients) and ``follow_up`` (patients in active follow-up).
#: Demand columns are named by role; ``rerun.follow_up`` may name another follow-up column.
ROLES = ("referrals", "home_care", "follow_up")

#: How each role is named in reports (``_LABELS``: as a table heading).
_ROLE_WORDS = {"referrals": "referrals", "home_care": "home care", "follow_up": "follow-up"}
_LABELS = {"referrals": "new referrals/year", "home_care": "home-care patients",
           "follow_up": "patients in follow-up"}


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


def role_column(plan: Plan, role: str) -> str | None:
    """The column of ``plan.units`` holding a demand role, or ``None`` when the demand has none.

    Demand columns are named by role (``referrals``: new referrals,
    patients/year; ``home_care``: active home-care patients; ``follow_up``:
    patients in active follow-up); for ``follow_up`` the scenario's
    ``rerun.follow_up`` may name another column.

    Example
    -------
    >>> role_column(plan, "follow_up") is None      # the synthetic demand has no follow-up  # doctest: +SKIP
    True
    """
    if role not in ROLES:
        raise ValueError(f"unknown demand role {role!r}; use one of {ROLES}")
    column = role
    if role == "follow_up":
        column = getattr(getattr(plan.scenario, "rerun", None), "follow_up", None) or role
    units = plan.units
    if column in units.columns and pd.api.types.is_numeric_dtype(units[column]):
        return column
    return None


def demand_basis(plan: Plan) -> dict[str, Any]:
    """What the demand figures are: source, synthetic or counts, role columns, caseload weights.

    Returns
    -------
    dict
        ``source`` (the file, or ``"synthetic ..."``), ``synthetic`` (bool),
        ``values`` (``"expected"``: expected values of the synthetic model;
        ``"counts"``: counts from a file), ``columns`` (role -> demand column
        or ``None``), ``weights`` (demand column -> caseload weight),
        ``formula`` (``"caseload = 1.0 × referrals + 0.5 × home care"``) and
        ``weeks_per_year`` (:data:`WEEKS_PER_YEAR`).
    """
    cfg = plan.scenario.demand
    source = plan.demand_source or str(cfg.source)
    synthetic = source.startswith("synthetic")
    weights = {str(c): float(w) for c, w in cfg.weights.items()}
    words = {column: _ROLE_WORDS.get(role, column) for role in ROLES
             if (column := role_column(plan, role)) is not None}
    terms = [f"{_weight(w)} × {words.get(c, c)}" for c, w in weights.items()]
    return {
        "source": source, "synthetic": synthetic, "values": "expected" if synthetic else "counts",
        "columns": {role: role_column(plan, role) for role in ROLES},
        "weights": weights, "formula": "caseload = " + " + ".join(terms),
        "weeks_per_year": WEEKS_PER_YEAR,
    }


def _weight(w: float) -> str:
    return f"{w:.1f}" if round(w, 1) == w else f"{w:g}"


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


#: Weighted percentiles of :func:`travel_spread`: key -> percentile (0..100).
SPREAD_PERCENTILES = {"p10_min": 10, "p25_min": 25, "median_min": 50, "p75_min": 75, "p90_min": 90}


def travel_spread(minutes: np.ndarray, weights: np.ndarray) -> dict[str, float | None]:
    """How a sector's caseload spreads over travel times: a box-plot summary, minutes.

    Parameters
    ----------
    minutes
        Travel minutes to each commune (NaN = unknown, left out).
    weights
        Workload (caseload) of each commune; when they sum to 0 every
        commune counts equally.

    Returns
    -------
    dict
        Caseload-weighted percentiles (``inverted_cdf``, as
        :func:`travel_stats`: the smallest time reached by that share of the
        caseload): ``p10_min``, ``p25_min``, ``median_min``, ``p75_min``,
        ``p90_min``; ``mean_min`` (weighted mean); ``min_min`` and
        ``max_min`` (nearest and farthest commune, unweighted). All ``None``
        when no minutes are known.

    Example
    -------
    >>> s = travel_spread(np.array([10.0, 20.0, 30.0, 90.0]), np.array([1.0, 2.0, 1.0, 0.0]))
    >>> s["p25_min"], s["median_min"], s["p75_min"], s["max_min"]
    (10.0, 20.0, 20.0, 90.0)
    """
    minutes = np.asarray(minutes, dtype=float)
    weights = np.asarray(weights, dtype=float)
    known = np.isfinite(minutes)
    m, w = minutes[known], weights[known]
    keys = [*SPREAD_PERCENTILES, "mean_min", "min_min", "max_min"]
    if not len(m):
        return dict.fromkeys(keys)
    if not w.sum() > 0:
        w = np.ones_like(m)
    out: dict[str, float | None] = {
        key: float(np.percentile(m, q, weights=w, method="inverted_cdf")) for key, q in SPREAD_PERCENTILES.items()
    }
    out.update(mean_min=float(np.average(m, weights=w)), min_min=float(m.min()), max_min=float(m.max()))
    return out


def _spread_column(travel: dict[str, str | None]) -> tuple[str, str | None]:
    """(what, column) of the minutes the travel chart shows: from the worker's base when known,
    else from the sector's centre commune."""
    if travel["base"] is not None:
        return "worker base", travel["base"]
    if travel["centre"] is not None:
        return "sector centre", travel["centre"]
    return "reference point", "travel_min"


def _is_contiguous(graph: nx.Graph, keys: list[Any]) -> bool:
    return bool(keys) and nx.is_connected(graph.subgraph(keys))


def _deviation_pct(caseload: float, target: float) -> float | None:
    return (caseload - target) / target * 100 if target > 0 else None


def _within(caseload: float, target: float, tolerance: float) -> bool:
    lower, upper = caseload_band(target, tolerance)
    return bool(within_band(caseload, lower, upper))


def _travel_columns(plan: Plan) -> dict[str, str | None]:
    """Columns of ``plan.units`` with the minutes from the sector's centre and from the worker's base.

    Plans from the pipeline have both; a re-opened plan has only
    ``travel_min``, which is one or the other depending on the objective.
    """
    units = plan.units
    objective = plan.scenario.model.resolve_objective(plan.scenario.team)  # "auto" resolved
    return {
        "centre": "centre_travel_min" if "centre_travel_min" in units.columns
        else ("travel_min" if objective != "base" else None),
        "base": "base_travel_min" if "base_travel_min" in units.columns
        else ("travel_min" if objective == "base" else None),
    }


def _people(units: pd.DataFrame, roles: dict[str, str | None]) -> dict[str, float | None]:
    """Patients of the communes in ``units``: per year and per week for referrals, active for the others."""
    def total(role: str) -> float | None:
        column = roles[role]
        return None if column is None else float(units[column].sum())

    referrals = total("referrals")
    return {
        "referrals_per_year": referrals,
        "referrals_per_week": None if referrals is None else referrals / WEEKS_PER_YEAR,
        "home_care_patients": total("home_care"),
        "follow_up_patients": total("follow_up"),
    }


def _aggregate(units: pd.DataFrame, graph: nx.Graph, demand: list[str], roles: dict[str, str | None],
               travel: dict[str, str | None]) -> dict[str, Any]:
    """Figures shared by sectors and groups, for the communes in ``units``."""
    load = units["workload"].to_numpy(dtype=float)

    def from_(column: str | None) -> dict[str, Any] | None:
        return None if column is None else travel_stats(units[column].to_numpy(dtype=float), load)

    return {
        "caseload": float(load.sum()),
        "communes": len(units),
        "population": int(units["population"].sum()),
        "demand": {c: float(units[c].sum()) for c in demand},
        **_people(units, roles),
        "travel": travel_stats(units["travel_min"].to_numpy(dtype=float), load),
        "travel_base": from_(travel["base"]),
        "travel_centre": from_(travel["centre"]),
        "contiguous": _is_contiguous(graph, list(units.index)),
    }


def _share_pct(caseload: float, target: float) -> float | None:
    return caseload / target * 100 if target > 0 else None


def excluded_summary(excluded: pd.DataFrame | None) -> dict[str, Any] | None:
    """Demand left out of the plan (e.g. referrals from outside the region), by department and reason.

    Parameters
    ----------
    excluded
        :attr:`geodata.demand.Demand.excluded`: ``code`` (str),
        ``department`` (str), ``reason`` (str) and one float column per
        demand column (counts left out), one row per row of the demand file;
        ``None`` or empty when nothing was left out. Total rows of the file
        (reason :data:`TOTAL_ROW`: their counts are sums of other rows) are
        left aside.

    Returns
    -------
    dict or None
        ``columns`` (the demand columns); ``rows``: one dict per department
        and reason with ``department`` (``"unknown"`` when the code names
        none), ``reason``, ``rows`` (rows of the file) and the summed counts
        per demand column, sorted by department; ``total``: ``rows`` and the
        sums. ``None`` when nothing was left out. Aggregated counts only: no
        code appears in the result.
    """
    if excluded is None or len(excluded) == 0:
        return None
    missing = [c for c in ("code", "department", "reason") if c not in excluded.columns]
    if missing:
        raise ValueError(f"the excluded demand lacks the column(s) {missing}")
    frame = excluded.loc[excluded["reason"].astype(str) != TOTAL_ROW]
    if len(frame) == 0:
        return None
    columns = [c for c in frame.columns if c not in ("code", "department", "reason")
               and pd.api.types.is_numeric_dtype(frame[c])]
    frame = frame.assign(
        department=frame["department"].fillna("").astype(str).str.strip().replace("", "unknown"),
        reason=frame["reason"].fillna("").astype(str).str.strip().replace("", "not given"),
    )
    rows = []
    for (department, reason), part in frame.groupby(["department", "reason"], sort=True):
        rows.append({"department": department, "reason": reason, "rows": len(part),
                     **{c: float(part[c].sum()) for c in columns}})
    total = {"rows": len(frame), **{c: float(frame[c].sum()) for c in columns}}
    return {"columns": columns, "rows": rows, "total": total}


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


#: Reasons of a referent change, in the order the re-run report stacks them (others follow, sorted).
MOVE_REASONS = ("moved", "rebalanced", "moved by hand", "handover", "worker left", "new commune")


def moved_per_worker(changes: pd.DataFrame, names: Any = None) -> list[dict[str, Any]]:
    """Patients (or caseload) changing referent, per worker: what each one gives up and takes on.

    Parameters
    ----------
    changes
        One row per commune whose referent changes, as
        :attr:`sectorize.pipeline.rerun.RerunResult.changes` (``changes.csv``):
        ``from_worker`` (``""`` for a new commune), ``to_worker``,
        ``follow_up`` (patients in follow-up, or caseload units when the
        demand has no follow-up column) and ``reason`` (``moved``,
        ``handover``, ``worker left``, ``new commune``; ``moved by hand``,
        ``rebalanced`` for an edited plan).
    names
        Worker names: a mapping id -> name, or a table with ``worker_id``
        and ``worker_name`` columns (e.g. the previous plan's ``workers``);
        a worker without a name is named by her id.

    Returns
    -------
    list of dict
        One dict per worker named in ``from_worker`` or ``to_worker``, sorted
        by id: ``worker_id``, ``worker_name``, ``out`` and ``in`` (reason ->
        patients leaving / joining the worker's caseload, reasons of
        :data:`MOVE_REASONS` first), ``out_total``, ``in_total`` (patients),
        ``communes_out``, ``communes_in`` (counts). JSON-ready.

    Example
    -------
    >>> changes = pd.DataFrame({"from_worker": ["TS01", "TS01", ""], "to_worker": ["TS02", "TS03", "TS02"],
    ...                         "follow_up": [12.0, 3.0, 1.0], "reason": ["moved", "moved", "new commune"]})
    >>> [(r["worker_id"], r["out_total"], r["in"]) for r in moved_per_worker(changes)]
    [('TS01', 15.0, {}), ('TS02', 0.0, {'moved': 12.0, 'new commune': 1.0}), ('TS03', 0.0, {'moved': 3.0})]
    """
    missing = [c for c in ("from_worker", "to_worker", "follow_up", "reason") if c not in changes.columns]
    if missing:
        raise ValueError(f"moved_per_worker: the changes lack the column(s) {missing}")
    frame = changes.assign(
        from_worker=changes["from_worker"].fillna("").astype(str),
        to_worker=changes["to_worker"].fillna("").astype(str),
        reason=changes["reason"].fillna("").astype(str),
        follow_up=pd.to_numeric(changes["follow_up"], errors="coerce").fillna(0.0).astype(float),
    )
    order = {reason: i for i, reason in enumerate(MOVE_REASONS)}
    if isinstance(names, pd.DataFrame):
        names = (dict(zip(names["worker_id"].astype(str), names["worker_name"].astype(str)))
                 if {"worker_id", "worker_name"} <= set(names.columns) else {})

    def by_reason(part: pd.DataFrame) -> dict[str, float]:
        sums = part.groupby("reason")["follow_up"].sum()
        return {str(r): float(sums[r]) for r in sorted(sums.index, key=lambda r: (order.get(r, len(order)), r))}

    ids = sorted((set(frame["from_worker"]) | set(frame["to_worker"])) - {""})
    rows = []
    for wid in ids:
        out, into = frame[frame["from_worker"] == wid], frame[frame["to_worker"] == wid]
        rows.append({
            "worker_id": wid, "worker_name": (names or {}).get(wid, wid),
            "out": by_reason(out), "in": by_reason(into),
            "out_total": float(out["follow_up"].sum()), "in_total": float(into["follow_up"].sum()),
            "communes_out": len(out), "communes_in": len(into),
        })
    return rows


#: Entries of ``plan.solve`` that may carry referent changes per worker (``moved_by_worker``).
_MOVE_SOURCES = ("rerun", "edit")


def _moves(plan: Plan) -> dict[str, Any] | None:
    """The referent changes per worker of a re-run (or an edited plan) carried by ``plan.solve``, with names."""
    solve = plan.solve if isinstance(plan.solve, dict) else {}
    found = [solve[k] for k in _MOVE_SOURCES if isinstance(solve.get(k), dict) and "moved_by_worker" in solve[k]]
    if not found:
        return None
    rerun = found[0]
    rows = rerun["moved_by_worker"]
    names = dict(zip(plan.workers["worker_id"].astype(str), plan.workers["worker_name"].astype(str)))
    workers = [{**row, "worker_name": names.get(str(row["worker_id"]), row.get("worker_name") or row["worker_id"])}
               for row in rows]
    return {"unit": rerun.get("moved_unit", "patients"),
            "previous_plan": rerun.get("previous_plan", rerun.get("parent")), "workers": workers}


def _without_moves(solve: dict[str, Any]) -> dict[str, Any]:
    """``plan.solve`` without the per-worker moves (``kpis["moves"]`` carries them)."""
    if not isinstance(solve, dict):
        return solve
    return {k: ({kk: vv for kk, vv in v.items() if kk != "moved_by_worker"}
                if k in _MOVE_SOURCES and isinstance(v, dict) else v) for k, v in solve.items()}


def compute_kpis(plan: Plan) -> dict[str, Any]:
    """Patients, caseload balance, travel and contiguity figures of a plan, JSON-serialisable.

    Returns
    -------
    dict
        ``scenario`` (name);
        ``demand``: what the figures are (:func:`demand_basis`: source,
        ``synthetic``, ``values`` ``"expected"`` or ``"counts"``, role
        columns, weights, caseload formula, weeks per year);
        ``travel_from``: what ``travel`` is measured from (``"sector
        centre"`` or ``"worker base"``, the scenario's objective);
        ``totals`` (``communes``, ``population``, ``demand`` per column,
        ``workload``, ``fte``, ``unassigned``: communes with no known sector,
        and the patient figures below);
        ``sectors``: one dict per worker with ``group, sector, worker_id,
        worker_name, fte``; patients: ``referrals_per_year`` (patients/year,
        the ``referrals`` column), ``referrals_per_week`` (patients/week =
        per year / :data:`WEEKS_PER_YEAR`), ``home_care_patients`` and
        ``follow_up_patients`` (patients; ``None`` when the demand has no
        such column); caseload (weighted units): ``target`` (total caseload x
        FTE / team FTE), ``caseload``, ``target_share_pct`` (caseload /
        target x 100), ``deviation_pct`` ((caseload - target) / target x
        100), ``within_tolerance`` (scenario ``model.tolerance``);
        ``communes, population, demand``; travel in minutes (see
        :func:`travel_stats`, weighted by caseload): ``travel`` (from the
        scenario's reference point), ``travel_base`` (from the worker's
        base) and ``travel_centre`` (from the sector's centre commune),
        ``None`` when the plan lacks those minutes; ``contiguous`` (the
        sector's communes form one connected piece of ``plan.graph``),
        ``centre`` and ``base`` (key, name; base also lon, lat);
        ``travel_spread`` (:func:`travel_spread` of the minutes from the
        worker's base, or from the sector's centre when the plan lacks
        them; ``from`` says which: ``"worker base"``, ``"sector centre"``);
        ``groups``: the same aggregates per group, with ``target`` the sum of
        its sectors' targets and ``within_tolerance`` against
        ``model.group_tolerance`` (travel from each commune's own worker's
        base and sector centre);
        ``excluded``: demand left out of the plan by department and reason
        (:func:`excluded_summary`), ``None`` when nothing was;
        ``moves``: for a re-run or an edited plan
        (``plan.solve["rerun"]["moved_by_worker"]`` or ``["edit"]``,
        :func:`moved_per_worker`), ``unit`` (``"patients"``: patients in
        follow-up, or ``"caseload units"``) and ``workers`` (one dict per
        worker, with ``worker_name`` added); ``None`` for other plans;
        ``solve`` (``plan.solve`` without logs nor the per-worker moves);
        ``violations``; ``valid``.
    """
    units, workers, model = plan.units, plan.workers, plan.scenario.model
    demand = demand_columns(plan)
    roles = {role: role_column(plan, role) for role in ROLES}
    travel = _travel_columns(plan)
    spread_from, spread_column = _spread_column(travel)
    sectors = []
    for _, w in workers.iterrows():
        target = float(w["target"])
        members = units[units["sector"] == w["sector"]]
        agg = _aggregate(members, plan.graph, demand, roles, travel)
        sectors.append({
            "group": str(w["group"]), "sector": str(w["sector"]),
            "worker_id": str(w["worker_id"]), "worker_name": str(w["worker_name"]),
            "fte": float(w["fte"]), "target": target, "caseload": agg["caseload"],
            "target_share_pct": _share_pct(agg["caseload"], target),
            "deviation_pct": _deviation_pct(agg["caseload"], target),
            "within_tolerance": _within(agg["caseload"], target, model.tolerance),
            **{k: v for k, v in agg.items() if k != "caseload"},
            "centre": _place(plan, w.get("centre")), "base": _base(plan, w),
            "travel_spread": {"from": spread_from, **travel_spread(members[spread_column].to_numpy(dtype=float),
                                                                    members["workload"].to_numpy(dtype=float))},
        })
    groups = []
    for group, members in workers.groupby("group", sort=False):
        target = float(members["target"].sum())
        agg = _aggregate(units[units["group"] == group], plan.graph, demand, roles, travel)
        groups.append({
            "group": str(group), "sectors": len(members), "fte": float(members["fte"].sum()),
            "target": target, "caseload": agg["caseload"],
            "target_share_pct": _share_pct(agg["caseload"], target),
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
        **_people(units, roles),
    }
    return jsonable({
        "scenario": plan.scenario.name, "demand": demand_basis(plan),
        "travel_from": ("worker base" if model.resolve_objective(plan.scenario.team) == "base"
                        else "sector centre"),
        "tolerance": {"sector": model.tolerance, "group": model.group_tolerance},
        "totals": totals, "sectors": sectors, "groups": groups,
        "excluded": excluded_summary(getattr(plan, "excluded", None)),
        "moves": _moves(plan),
        "solve": _without_logs(_without_moves(plan.solve)), "violations": list(plan.violations), "valid": plan.valid,
    })


# --------------------------------------------------------------------------- presentation


def sector_sort_key(sector: str) -> tuple[Any, ...]:
    """Sort key putting ``"A2"`` before ``"A10"`` (numbers compared as numbers)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(sector)))


def _stat(travel: dict[str, Any] | None, key: str) -> float | None:
    return None if travel is None else travel[key]


def _place_label(place: dict[str, Any] | None) -> str:
    """A base or centre for display: its name, else its coordinates."""
    if not place:
        return ""
    if place.get("name"):
        return str(place["name"])
    if place.get("key"):
        return str(place["key"])
    if place.get("lat") is not None and place.get("lon") is not None:
        return f"{place['lat']:.3f}, {place['lon']:.3f}"
    return ""


def _row(d: dict[str, Any], level: str, demand: list[str]) -> dict[str, Any]:
    travel = d["travel"]
    return {
        "level": level, "group": d["group"],
        "sector": d.get("sector", f"group {d['group']}"),
        "worker_id": d.get("worker_id", ""), "worker_name": d.get("worker_name", ""),
        "fte": d["fte"],
        "referrals_per_year": d["referrals_per_year"], "referrals_per_week": d["referrals_per_week"],
        "home_care_patients": d["home_care_patients"], "follow_up_patients": d["follow_up_patients"],
        "target_share_pct": d["target_share_pct"],
        "target": d["target"], "caseload": d["caseload"],
        "deviation_pct": d["deviation_pct"], "within_tolerance": d["within_tolerance"],
        "communes": d["communes"], "population": d["population"],
        **{c: d["demand"][c] for c in demand},
        "travel_mean_min": travel["mean_min"], "travel_median_min": travel["median_min"],
        "travel_p90_min": travel["p90_min"], "travel_max_min": travel["max_min"],
        "travel_base_mean_min": _stat(d["travel_base"], "mean_min"),
        "travel_base_max_min": _stat(d["travel_base"], "max_min"),
        "travel_centre_mean_min": _stat(d["travel_centre"], "mean_min"),
        "travel_centre_max_min": _stat(d["travel_centre"], "max_min"),
        "contiguous": d["contiguous"],
        "base": _place_label(d.get("base")),
        "centre": (d.get("centre") or {}).get("name") or "",
    }


def kpi_table(kpis: dict[str, Any]) -> pd.DataFrame:
    """One row per sector, then a subtotal row per group (``level`` = ``"sector"``/``"group"``).

    Columns: ``level, group, sector, worker_id, worker_name, fte``;
    patients: ``referrals_per_year`` (patients/year), ``referrals_per_week``
    (patients/week), ``home_care_patients``, ``follow_up_patients``
    (patients; NaN when the demand has no such column); caseload, weighted
    units: ``target_share_pct`` (caseload / target x 100), ``target,
    caseload, deviation_pct`` (%), ``within_tolerance``; ``communes,
    population``, one column per demand measure; travel, minutes:
    ``travel_mean_min, travel_median_min, travel_p90_min, travel_max_min``
    (from the scenario's reference point), ``travel_base_mean_min,
    travel_base_max_min`` (from the worker's base), ``travel_centre_mean_min,
    travel_centre_max_min`` (from the sector's centre commune); ``contiguous``,
    ``base`` and ``centre`` (names).
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


def _patients(value: Any, expected: bool, per_week: bool = False) -> str:
    """Patients for display: ``≈ 12.3`` (expected values of a synthetic demand), else whole
    numbers (per week: one decimal, an average)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if expected:
        return f"≈ {_fmt(float(value), 1)}"
    return _fmt(float(value), 1) if per_week else _fmt(int(round(float(value))))


def _share(value: Any) -> str:
    return "-" if value is None else f"{value:.0f} % of target"


def _minutes(value: Any) -> str:
    return _fmt(None if value is None else float(value), 0)


#: Text columns of the display tables (left-aligned).
_TEXT_COLUMNS = {"sector", "worker", "base", "centre", "department", "reason"}


def _workload_table(kpis: dict[str, Any]) -> pd.DataFrame:
    """Per worker, then per group: FTE, patients, caseload against target (strings)."""
    table = kpi_table(kpis)
    basis = kpis["demand"]
    expected = basis["values"] == "expected"
    roles = basis["columns"]
    out = {"sector": table["sector"], "worker": table["worker_name"], "FTE": table["fte"].map(lambda v: _fmt(v, 2))}
    if roles["referrals"] is not None:
        out[_LABELS["referrals"]] = table["referrals_per_year"].map(lambda v: _patients(v, expected))
        out["referrals/week"] = table["referrals_per_week"].map(lambda v: _patients(v, expected, per_week=True))
    for role in ("home_care", "follow_up"):
        if roles[role] is not None:
            out[_LABELS[role]] = table[f"{role}_patients"].map(lambda v: _patients(v, expected))
    out["caseload vs target"] = table["target_share_pct"].map(_share)
    out["in tol."] = table["within_tolerance"].map(_fmt)
    out["weighted caseload / target"] = [f"{_fmt(c)} / {_fmt(t)}" for c, t in zip(table["caseload"], table["target"])]
    frame = pd.DataFrame(out)
    frame.attrs["levels"] = list(table["level"])
    return frame


def _travel_table(kpis: dict[str, Any]) -> pd.DataFrame:
    """Per worker, then per group: minutes from the base and from the centre, communes (strings)."""
    table = kpi_table(kpis)
    frame = pd.DataFrame({
        "sector": table["sector"], "base": table["base"],
        "base mean": table["travel_base_mean_min"].map(_minutes),
        "base max": table["travel_base_max_min"].map(_minutes),
        "centre": table["centre"],
        "centre mean": table["travel_centre_mean_min"].map(_minutes),
        "centre max": table["travel_centre_max_min"].map(_minutes),
        "communes": table["communes"].map(_fmt), "population": table["population"].map(_fmt),
        "contiguous": table["contiguous"].map(_fmt),
    })
    frame.attrs["levels"] = list(table["level"])
    return frame


def _excluded_table(kpis: dict[str, Any]) -> pd.DataFrame | None:
    """Demand left out, by department and reason, with a total row (strings); ``None`` when none."""
    excluded = kpis.get("excluded")
    if not excluded:
        return None
    expected = kpis["demand"]["values"] == "expected"
    roles = {column: role for role, column in kpis["demand"]["columns"].items() if column is not None}
    rows = [*excluded["rows"], {"department": "total", "reason": "", **excluded["total"]}]
    frame = pd.DataFrame({
        "department": [r["department"] for r in rows], "reason": [r["reason"] for r in rows],
        "file rows": [_fmt(int(r["rows"])) for r in rows],
        **{_LABELS.get(roles.get(c, ""), c): [_patients(r.get(c), expected) for r in rows] for c in excluded["columns"]},
    })
    frame.attrs["levels"] = ["sector"] * (len(rows) - 1) + ["group"]
    return frame


def _moves_unit(kpis: dict[str, Any]) -> str:
    unit = (kpis.get("moves") or {}).get("unit")
    return "caseload units" if unit == "caseload units" else "patients in follow-up"


def _moves_table(kpis: dict[str, Any]) -> pd.DataFrame | None:
    """A re-run's referent changes per worker (strings), with a total row; ``None`` for other plans."""
    moves = kpis.get("moves")
    if not moves or not moves.get("workers"):
        return None
    rows = moves["workers"]
    unit = "patients" if _moves_unit(kpis) == "patients in follow-up" else "caseload"

    def count(value: float) -> str:
        return _fmt(float(value), 0 if float(value).is_integer() else 1)

    def net(value: float) -> str:
        return _fmt(float(value), 0 if float(value).is_integer() else 1, sign=True)

    def moved(row: dict[str, Any], side: str) -> str:
        return count(sum(v for r, v in row[side].items() if r == "moved"))

    frame = pd.DataFrame({
        "worker": [f"{r['worker_name']} ({r['worker_id']})" if r["worker_name"] != r["worker_id"] else r["worker_id"]
                   for r in rows] + ["total"],
        "communes out": [_fmt(int(r["communes_out"])) for r in rows]
        + [_fmt(sum(int(r["communes_out"]) for r in rows))],
        f"{unit} out": [count(r["out_total"]) for r in rows] + [count(sum(r["out_total"] for r in rows))],
        "of which moved": [moved(r, "out") for r in rows] + [count(sum(r["out"].get("moved", 0.0) for r in rows))],
        "communes in": [_fmt(int(r["communes_in"])) for r in rows]
        + [_fmt(sum(int(r["communes_in"]) for r in rows))],
        f"{unit} in": [count(r["in_total"]) for r in rows] + [count(sum(r["in_total"] for r in rows))],
        "net": [net(r["in_total"] - r["out_total"]) for r in rows]
        + [net(sum(r["in_total"] - r["out_total"] for r in rows))],
    })
    frame.attrs["levels"] = ["sector"] * len(rows) + ["group"]
    return frame


#: (title, note) of the re-run's table of referent changes.
_MOVES_CAPTION = ("Referent changes per worker", "communes and {unit} whose referent changes, leaving (out) and "
                  "joining (in) each worker; moved: the re-run's rebalancing, the rest handovers, departures "
                  "and new communes")


def _moves_caption(kpis: dict[str, Any]) -> tuple[str, str]:
    return _MOVES_CAPTION[0], _MOVES_CAPTION[1].format(unit=_moves_unit(kpis))


def _lay_out(frame: pd.DataFrame) -> list[str]:
    """A table of strings as fixed-width lines: text columns left-aligned, numbers right-aligned."""
    columns = list(frame.columns)
    cells = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) if c in _TEXT_COLUMNS else v.rjust(w)
                         for c, v, w in zip(columns, values, widths)).rstrip()

    return [line(columns)] + [line(row) for row in cells]


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


def _pct(tolerance: float) -> str:
    return f"±{tolerance * 100:g} %"


def _summary_lines(kpis: dict[str, Any]) -> list[str]:
    """Scenario, status, what the demand is, totals in patients, the caseload formula."""
    t, basis = kpis["totals"], kpis["demand"]
    expected = basis["values"] == "expected"
    roles = basis["columns"]
    n_viol = len(kpis["violations"])
    kind = ("SYNTHETIC: figures marked ≈ are expected values, not counts of real patients"
            if expected else "Counts of patients")
    lines = [
        f"Scenario: {kpis['scenario']}",
        "Plan: valid (all checks passed)" if kpis["valid"] else f"Plan: INVALID ({n_viol} violation(s))",
        f"Demand: {basis['source']}. {kind}.",
        f"Region: {_fmt(t['communes'])} communes, population {_fmt(t['population'])}; "
        f"team: {len(kpis['sectors'])} workers, {_fmt(t['fte'], 2)} FTE"
        + (f"; {t['unassigned']} commune(s) without a sector" if t["unassigned"] else ""),
    ]
    if roles["referrals"] is not None:
        what = "expected " if expected else ""
        lines.append(
            f"New referrals (demand column '{roles['referrals']}'): "
            f"{_patients(t['referrals_per_year'], expected)} {what}per year, "
            f"{_patients(t['referrals_per_week'], expected, per_week=True)} {what}per week "
            f"(per year / {WEEKS_PER_YEAR:g})"
        )
    else:
        lines.append("New referrals: the demand has no 'referrals' column")
    for role, noun in (("home_care", "Active home-care patients"), ("follow_up", "Patients in follow-up")):
        if roles[role] is not None:
            value = _patients(t[f"{role}_patients"], expected)
            lines.append(f"{noun} (demand column '{roles[role]}'): {value}{' expected' if expected else ''}")
    tol = kpis.get("tolerance") or {}
    lines.append(
        f"{basis['formula'].capitalize()} (weighted units); each worker's target is the total caseload "
        f"({_fmt(t['workload'])}) shared by FTE"
        + (f"; tolerance {_pct(tol['sector'])} per worker, {_pct(tol['group'])} per group" if tol else "")
    )
    return lines


def _excluded_summary(kpis: dict[str, Any]) -> str | None:
    excluded = kpis.get("excluded")
    if not excluded:
        return None
    expected = kpis["demand"]["values"] == "expected"
    referrals = kpis["demand"]["columns"]["referrals"]
    total = excluded["total"]
    what = (f"{_patients(total[referrals], expected)} referrals/year" if referrals in excluded["columns"]
            else "demand")
    departments = sorted({r["department"] for r in excluded["rows"]})
    return (f"Left out of the plan: {what} ({_fmt(total['rows'])} row(s) of the demand file, "
            f"department(s) {', '.join(departments)}), listed below")


#: What the table of the demand left out is.
_EXCLUDED_NOTE = "aggregated counts, in no sector; the rule applied to each row is in run.json's notes"


def _workload_caption(kpis: dict[str, Any]) -> tuple[str, str]:
    """(title, note) of the workload table."""
    basis = kpis["demand"]
    notes = ["≈: expected values of the synthetic demand" if basis["values"] == "expected"
             else "per week: the yearly count / 52.18", "caseload and target in weighted units"]
    return "Workload per worker", "; ".join(notes)


#: (title, note) of the travel table.
_TRAVEL_CAPTION = ("Travel per worker", "minutes from the worker's base and from the sector's centre commune to "
                   "the sector's communes; mean weighted by caseload, max: the farthest commune")


def _caption(title_note: tuple[str, str]) -> str:
    return f"{title_note[0]} ({title_note[1]})"


def kpi_text(kpis: dict[str, Any]) -> str:
    """A fixed-width text report, the summary ``sectorize run`` prints.

    Summary (scenario, status, demand source, totals in patients/year and
    patients/week, the caseload formula); per worker and group: patients
    (new referrals/year and /week, home-care patients, patients in
    follow-up when the demand has them), caseload as a share of the target,
    within tolerance, and the weighted caseload / target; travel in minutes
    from the worker's base and from the sector's centre (caseload-weighted
    mean, max); demand left out of the plan by department; for a re-run,
    the referent changes per worker; checks; solver facts.
    """
    lines = _summary_lines(kpis)
    excluded = _excluded_summary(kpis)
    if excluded:
        lines.append(excluded)
    lines += ["", _caption(_workload_caption(kpis)), *_lay_out(_workload_table(kpis))]
    lines += ["", _caption(_TRAVEL_CAPTION), *_lay_out(_travel_table(kpis))]
    table = _excluded_table(kpis)
    if table is not None:
        lines += ["", f"Demand left out of the plan, by department ({_EXCLUDED_NOTE}):", *_lay_out(table)]
    moves = _moves_table(kpis)
    if moves is not None:
        lines += ["", _caption(_moves_caption(kpis)), *_lay_out(moves)]
    lines.append("")
    if kpis["violations"]:
        lines += ["Violations:"] + [f"  - {v}" for v in kpis["violations"]]
    else:
        lines.append("All checks passed.")
    solve = _solve_lines(kpis["solve"])
    lines += ["Solve:"] + ["  " + s for s in solve] if solve else ["Solve: no solver facts recorded"]
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; margin-bottom: 0.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: right; }
th { background: #eee; }
td.text { text-align: left; }
tr.group td { font-weight: bold; background: #f4f4f4; }
td.bad { color: #a00; font-weight: bold; }
.invalid { color: #a00; }
p.caption { font-size: 0.9em; color: #444; }
figure.chart { margin: 0.5em 0 1em 0; max-width: 60em; }
figure.chart svg { display: block; width: 100%; height: auto; }
figure.chart figcaption { font-size: 0.85em; color: #444; }
p.chart-error { color: #a00; }
@media print {
  body { margin: 0; }
  figure.chart, table { break-inside: avoid; page-break-inside: avoid; }
  h2 { break-after: avoid; page-break-after: avoid; }
}
"""


def _html_table(frame: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = []
    for level, (_, row) in zip(frame.attrs["levels"], frame.iterrows()):
        cells = []
        for col, value in row.items():
            cls = "text" if col in _TEXT_COLUMNS else ("bad" if value == "NO" else "")
            cells.append(f'<td class="{cls}">{html.escape(str(value))}</td>')
        body.append(f'<tr class="{level}">' + "".join(cells) + "</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _chart_figure(kind: str, kpis: dict[str, Any], caption: str) -> str:
    """One chart of :mod:`sectorize.report.charts` as ``<figure id="<kind>-chart">`` with inline SVG.

    A chart that cannot be drawn leaves a visible note in its place rather
    than losing the run folder.
    """
    from sectorize.report import charts

    draw = {"caseload": charts.caseload_chart, "travel": charts.travel_chart, "moves": charts.moved_chart}[kind]
    try:
        svg = draw(kpis).to_svg(id_prefix=kind)
    except Exception as err:  # noqa: BLE001 - the page says what failed
        return f'<p class="chart-error" id="{kind}-chart">Chart not drawn: {html.escape(repr(err))}</p>'
    return (f'<figure class="chart" id="{kind}-chart">{svg}'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


#: Captions of the charts of the page.
_CHART_CAPTIONS = {
    "caseload": "Each bar is a worker's caseload (weighted units); the shaded band is the caseload the tolerance "
                "allows around the target (dark line), the target being the total caseload shared by FTE.",
    "travel": "For each sector, the minutes from the {origin} to its communes, each commune counted by its "
              "caseload: the box holds the middle half of the caseload, whiskers 10 % to 90 %, the diamond is "
              "the mean, the open circle the farthest commune.",
    "moves": "Per worker, the {unit} of the communes she gives up (left) and takes on (right), by reason.",
}


def _spread_origin(kpis: dict[str, Any]) -> str:
    """Where the travel chart measures from, in words."""
    origins = {(s.get("travel_spread") or {}).get("from") for s in kpis["sectors"]}
    return {"worker base": "worker's base", "sector centre": "sector's centre commune"}.get(
        origins.pop() if len(origins) == 1 else "", "reference point")


def kpi_html(kpis: dict[str, Any]) -> str:
    """A self-contained HTML page (inline CSS and SVG, no scripts or external files) with the same
    content as :func:`kpi_text`: summary, workload per worker, travel, demand left out, a re-run's
    referent changes per worker, checks, solver facts; with charts (:mod:`sectorize.report.charts`)
    of the caseload against target with its tolerance band, of the travel per sector and of a
    re-run's changes per worker, readable when printed."""
    title = html.escape(f"sectorize: {kpis['scenario']}")
    summary = _summary_lines(kpis)
    excluded = _excluded_summary(kpis)
    parts = [f"<h1>{title}</h1>"]
    parts += [f"<p>{html.escape(line)}</p>" for line in summary[1:] + ([excluded] if excluded else [])]
    for kind, (heading, note), table_html in (
            ("caseload", _workload_caption(kpis), _html_table(_workload_table(kpis), "workload")),
            ("travel", _TRAVEL_CAPTION, _html_table(_travel_table(kpis), "travel"))):
        parts += [f"<h2>{html.escape(heading)}</h2>", f'<p class="caption">{html.escape(note)}.</p>',
                  _chart_figure(kind, kpis, _CHART_CAPTIONS[kind].format(origin=_spread_origin(kpis))), table_html]
    table = _excluded_table(kpis)
    if table is not None:
        parts += ["<h2>Demand left out of the plan</h2>",
                  f'<p class="caption">By department: {html.escape(_EXCLUDED_NOTE)}.</p>', _html_table(table, "excluded")]
    moves = _moves_table(kpis)
    if moves is not None:
        heading, note = _moves_caption(kpis)
        caption = _CHART_CAPTIONS["moves"].format(unit=_moves_unit(kpis))
        parts += [f"<h2>{html.escape(heading)}</h2>", f'<p class="caption">{html.escape(note)}.</p>',
                  _chart_figure("moves", kpis, caption), _html_table(moves, "moves")]
    if kpis["violations"]:
        parts.append("<h2 class='invalid'>Violations</h2><ul>"
                     + "".join(f"<li>{html.escape(v)}</li>" for v in kpis["violations"]) + "</ul>")
    else:
        parts.append("<h2>All checks passed</h2>")
    solve = _solve_lines(kpis["solve"])
    parts.append("<h2>Solver</h2><pre>" + html.escape("\n".join(solve) or "no solver facts recorded") + "</pre>")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n"
    )
