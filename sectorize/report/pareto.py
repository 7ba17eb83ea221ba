"""Trade-offs between caseload balance, travel and compactness (and disruption), one real solve per row.

:func:`pareto` solves the scenario for each combination of caseload
tolerance and sparse-area weight (and, given a previous plan, of move
penalty through the annual re-run, :func:`sectorize.pipeline.rerun.rerun`), measures
each plan with :func:`sectorize.report.compare.plan_figures` and marks the rows no
other row beats on every objective (:func:`non_dominated`).
:func:`plot_pareto` draws them as a :class:`sectorize.report.charts.Chart`,
which Jupyter displays inline (no pyplot needed).

Units: ``max_dev_pct`` in percent of the target, ``travel_mean_min`` in
caseload-weighted minutes, ``moved_workload_pct`` in percent of the caseload.

Example
-------
>>> quick = default_scenario().with_(**{"model.backend": "heuristic", "model.time_limit_s": 4})  # doctest: +SKIP
>>> table = pareto(quick, tolerances=(0.05, 0.10, 0.15))                                        # doctest: +SKIP
>>> table[table.pareto][["tolerance", "max_dev_pct", "travel_mean_min"]]                        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sectorize.report.compare import plan_figures, plot_tradeoffs

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from sectorize.plan import Plan
    from sectorize.report.charts import Chart
    from sectorize.pipeline.rerun import PreviousPlan
    from sectorize.config.scenario import Scenario

__all__ = ["non_dominated", "pareto", "plot_pareto"]


def non_dominated(table: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """Rows that no other row beats: smaller or equal on every column and smaller on one.

    Every column is minimised; rows with a missing value (e.g. no plan
    found) are never marked. Equal rows are all marked.

    Example
    -------
    >>> t = pd.DataFrame({"dev": [5.0, 9.0, 6.0, 9.5], "travel": [40.0, 30.0, 45.0, 30.0]})
    >>> non_dominated(t, ["dev", "travel"]).tolist()
    [True, True, False, False]
    """
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"non_dominated: no column(s) {missing}; the table has {list(table.columns)}")
    values = table[list(columns)].to_numpy(dtype=float)
    ok = np.isfinite(values).all(axis=1)
    out = np.zeros(len(table), dtype=bool)
    for i in np.flatnonzero(ok):
        others = values[ok]
        dominated = ((others <= values[i]).all(axis=1) & (others < values[i]).any(axis=1)).any()
        out[i] = not dominated
    return pd.Series(out, index=table.index, name="pareto")


def _previous(previous: Plan | PreviousPlan) -> PreviousPlan:
    """A :class:`~sectorize.pipeline.rerun.PreviousPlan` from an in-memory plan (or as is)."""
    from sectorize.plan import Plan
    from sectorize.pipeline.rerun import PreviousPlan

    if isinstance(previous, PreviousPlan):
        return previous
    if not isinstance(previous, Plan):
        raise TypeError(f"previous: give a Plan or a PreviousPlan (load_previous), got {type(previous).__name__}")
    sectors = previous.units[["name", "group", "sector", "worker_id", "workload"]].copy()
    sectors.index = sectors.index.astype(str)
    sectors.index.name = "insee"
    workers = previous.workers[["worker_id", "worker_name", "fte", "group", "sector"]].copy()
    return PreviousPlan("in-memory plan", sectors, workers, "in memory")


def pareto(
    scenario: Scenario,
    *,
    tolerances: Sequence[float] = (0.05, 0.10, 0.15),
    sparse_weights: Sequence[float] | None = None,
    previous: Plan | PreviousPlan | None = None,
    move_penalties: Sequence[float] = (0.0, 1.0, 4.0),
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Solve every combination of settings and mark the non-dominated plans.

    Parameters
    ----------
    scenario
        The base scenario; use a quick solver setting (``model.backend =
        "heuristic"``, ``model.time_limit_s`` 3-8 s): each row is one full
        solve.
    tolerances
        Values of ``model.tolerance`` (the group tolerance follows as half).
    sparse_weights
        Values of ``model.sparse_weight`` (compactness where demand is
        sparse); ``None`` keeps the scenario's.
    previous
        Last year's plan: then every setting is also solved for each of
        ``move_penalties`` (``rerun.move_penalty_min``, caseload-minutes per
        patient moved) with :func:`sectorize.pipeline.rerun.rerun`, and the disruption
        (``moved_workload_pct``) is a third objective.
    progress
        Receives one line per solve.

    Returns
    -------
    DataFrame
        One row per solve: ``tolerance, sparse_weight`` (and
        ``move_penalty_min``), ``feasible``, the columns of
        :func:`sectorize.report.compare.plan_figures`, ``note`` (why no plan was
        found) and ``pareto`` (non-dominated on ``max_dev_pct``,
        ``travel_mean_min`` and, with a previous plan, ``moved_workload_pct``).
    """
    from sectorize.pipeline import run as pipeline
    from sectorize.pipeline.rerun import rerun
    from solvers import NoPlanError

    say = progress or (lambda line: None)
    weights = list(sparse_weights) if sparse_weights is not None else [scenario.model.sparse_weight]
    penalties: list[float | None] = list(move_penalties) if previous is not None else [None]
    prev = _previous(previous) if previous is not None else None
    before = prev.sectors["worker_id"] if prev is not None else None
    rows: list[dict[str, Any]] = []
    for tolerance in tolerances:
        for weight in weights:
            for penalty in penalties:
                changes: dict[str, Any] = {"model.tolerance": tolerance, "model.group_tolerance": tolerance / 2,
                                           "model.sparse_weight": weight}
                setting: dict[str, Any] = {"tolerance": tolerance, "sparse_weight": weight}
                if penalty is not None:
                    changes["rerun.move_penalty_min"] = penalty
                    setting["move_penalty_min"] = penalty
                variant = scenario.with_(**changes)
                say("solving " + ", ".join(f"{k} = {v:g}" for k, v in setting.items()))
                try:
                    plan = (pipeline.run(variant) if prev is None
                            else rerun(variant, prev, with_frontier=False).plan)
                except NoPlanError as err:
                    rows.append({**setting, "feasible": False, "note": str(err)[:300]})
                    continue
                rows.append({**setting, "feasible": True, **plan_figures(plan, before), "note": ""})
    table = pd.DataFrame(rows)
    objectives = ["max_dev_pct", "travel_mean_min"] + (["moved_workload_pct"] if prev is not None else [])
    for column in objectives:
        if column not in table.columns:
            table[column] = np.nan
    table["pareto"] = non_dominated(table, objectives)
    return table


def plot_pareto(table: pd.DataFrame, x: str = "max_dev_pct", y: str = "travel_mean_min",
                ax: Any = None) -> Chart | Figure:
    """The solves of :func:`pareto` as points, the non-dominated ones joined.

    Points are labelled by their tolerance (and sparse weight when it
    varies, and move penalty).

    Parameters
    ----------
    table
        The table of :func:`pareto`.
    x, y
        Columns to plot (default: largest caseload deviation from target,
        %, against caseload-weighted mean travel, minutes).
    ax
        A matplotlib Axes to draw into; its figure is returned as it is.

    Returns
    -------
    Chart or matplotlib.figure.Figure
        Without ``ax``, a :class:`sectorize.report.charts.Chart` (a
        Figure): the last line of a notebook cell shows it inline;
        ``chart.save(path)`` or ``chart.savefig(path)`` writes it.

    Example
    -------
    >>> plot_pareto(table)                                  # doctest: +SKIP
    >>> plot_pareto(table).save("output/pareto.png")        # doctest: +SKIP
    """
    from sectorize.report.charts import Chart, chart_style

    def label(row: pd.Series) -> str:
        parts = [f"±{100 * row['tolerance']:g} %"] if pd.notna(row.get("tolerance")) else []
        if table.get("sparse_weight") is not None and table["sparse_weight"].nunique() > 1:
            parts.append(f"sparse {row['sparse_weight']:g}")
        if pd.notna(row.get("move_penalty_min")):
            parts.append(f"penalty {row['move_penalty_min']:g}")
        return ", ".join(parts) or str(row.name)

    labels = [label(row) for _, row in table.iterrows()]
    if ax is not None:
        return plot_tradeoffs(table.set_axis(labels, axis=0), x=x, y=y, highlight="pareto", ax=ax)
    with chart_style():
        chart = Chart(figsize=(6.4, 4.4), layout="constrained")
        plot_tradeoffs(table.set_axis(labels, axis=0), x=x, y=y, highlight="pareto", ax=chart.subplots())
    chart.chart_title = f"Trade-offs: {y} against {x}"
    return chart
