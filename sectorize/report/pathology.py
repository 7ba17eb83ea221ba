"""The alternative the team weighed: organisation by pathology instead of by territory.

In an organisation **by pathology** each social worker follows the patients
of some tumour types wherever they live; in the organisation **by
territory** (the sectorization) each worker follows every patient of a
sector. This module builds the pathology organisation on the same caseload
and measures both the same way (:func:`organisation_figures`): caseload
balance, travel from the worker's base, and the number of distinct local
partners (EPCI, cantons) each worker must know.

Assumptions (synthetic, for comparison only; replace them with the
centre's own case-mix when known):

- the caseload of the centre's social-work team splits by tumour type with
  the regional shares :data:`TUMOUR_SHARES` (planning assumptions, not
  measured figures);
- each commune's case mix varies around those shares
  (:func:`split_by_tumour`: a seeded Dirichlet draw per commune), and a
  commune's caseload split by type always sums back to its caseload;
- when a tumour type is shared by several workers (e.g. breast cancer,
  too large for one worker), its patients are shared in the same proportion
  in every commune (patients are allocated by referring oncologist, not by
  address).

Example
-------
>>> by_type = split_by_tumour(plan.units["workload"], seed=1)                 # doctest: +SKIP
>>> fte = plan.workers.set_index("worker_id")["fte"]                          # doctest: +SKIP
>>> org = assign_tumour_types(by_type, fte, tolerance=0.10)                   # doctest: +SKIP
>>> compare_organisations(plan, by_type, org, base_minutes(plan.scenario))    # doctest: +SKIP
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sectorize.report.compare import partner_codes, partner_counts, territory_load
from solvers.problem import caseload_band

if TYPE_CHECKING:  # pragma: no cover
    from sectorize.plan import Plan
    from sectorize.config.scenario import Scenario

__all__ = [
    "TUMOUR_SHARES", "PathologyOrganisation", "assign_tumour_types", "base_minutes", "compare_organisations",
    "organisation_figures", "split_by_tumour",
]

#: ASSUMED share of the social-work caseload by tumour type (sums to 1).
#: Planning assumptions loosely shaped like a regional cancer centre's
#: activity, not measured figures.
TUMOUR_SHARES: dict[str, float] = {
    "breast": 0.22,
    "digestive": 0.16,
    "lung": 0.14,
    "haematology": 0.12,
    "urology": 0.10,
    "gynaecology": 0.08,
    "head_and_neck": 0.07,
    "sarcoma_and_other": 0.11,
}


def split_by_tumour(workload: pd.Series, shares: dict[str, float] | None = None, *,
                    concentration: float | None = 50.0, seed: int = 0) -> pd.DataFrame:
    """Synthetic split of each commune's caseload by tumour type.

    Parameters
    ----------
    workload
        Caseload per commune (INSEE code index), e.g. ``plan.units["workload"]``.
    shares
        Regional share of each tumour type (positive, normalised to sum 1);
        default :data:`TUMOUR_SHARES`.
    concentration
        How closely each commune's mix follows the regional shares: the
        commune's shares are a Dirichlet draw with parameters
        ``concentration x shares`` (larger = closer); ``None`` gives every
        commune exactly the regional shares.
    seed
        Random seed of the draw.

    Returns
    -------
    DataFrame
        Communes x tumour types, same unit as ``workload``; each row sums to
        the commune's caseload.

    Example
    -------
    >>> t = split_by_tumour(pd.Series([10.0, 0.0], index=["01001", "01002"]), {"a": 3, "b": 1}, concentration=None)
    >>> t.to_dict("list")
    {'a': [7.5, 0.0], 'b': [2.5, 0.0]}
    """
    shares = dict(TUMOUR_SHARES if shares is None else shares)
    if not shares or any(not v > 0 for v in shares.values()):
        raise ValueError(f"shares: give at least one tumour type, each with a share > 0 (got {shares})")
    if concentration is not None and not concentration > 0:
        raise ValueError(f"concentration must be > 0 or None, got {concentration}")
    load = workload.astype(float)
    if (load < 0).any() or load.isna().any():
        raise ValueError("workload: caseloads must be >= 0 and known for every commune")
    base = np.array(list(shares.values()), dtype=float)
    base /= base.sum()
    if concentration is None:
        mix = np.tile(base, (len(load), 1))
    else:
        mix = np.random.default_rng(seed).dirichlet(concentration * base, size=len(load))
    return pd.DataFrame(load.to_numpy()[:, None] * mix, index=load.index, columns=list(shares))


@dataclass
class PathologyOrganisation:
    """Tumour types shared out among the workers.

    Attributes
    ----------
    shares
        Tumour types x workers: the fraction of each type's patients each
        worker follows (each row sums to 1).
    caseload
        Caseload per worker (same unit as the demand).
    target
        FTE-proportional target per worker.
    status
        ``"optimal"`` or ``"feasible"`` (time limit reached).
    """

    shares: pd.DataFrame
    caseload: pd.Series
    target: pd.Series
    status: str

    @property
    def types_per_worker(self) -> pd.Series:
        """The tumour types each worker follows (list per worker id)."""
        return pd.Series({w: [t for t in self.shares.index if self.shares.at[t, w] > 1e-9]
                          for w in self.shares.columns})

    def load(self, by_type: pd.DataFrame) -> pd.DataFrame:
        """Caseload per commune (rows) and worker (columns): ``by_type @ shares``."""
        return by_type[list(self.shares.index)] @ self.shares


def assign_tumour_types(by_type: pd.DataFrame, fte: pd.Series, *, tolerance: float = 0.10,
                        time_limit_s: float = 10.0) -> PathologyOrganisation:
    """Share the tumour types among the workers so that caseloads are balanced.

    A small MIP (OR-Tools MathOpt, HiGHS): ``x[t, w]`` is the fraction of type
    ``t`` followed by worker ``w``; each worker's caseload stays within
    ``±tolerance`` of its FTE-proportional target; the objective is the
    fewest (type, worker) pairs (each pathology a worker follows is one more
    medical team to work with), then the fewest types for the busiest worker,
    then the smallest largest deviation from the target.

    Parameters
    ----------
    by_type
        Communes x tumour types (:func:`split_by_tumour`).
    fte
        FTE per worker id.
    tolerance
        Allowed relative gap to the target (0.10 = ±10 %).
    time_limit_s
        Solver time limit, seconds.

    Raises
    ------
    ValueError
        On bad inputs, or when the solver finds no balanced assignment in time.
    """
    from ortools.math_opt.python import mathopt

    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be > 0 and < 1, got {tolerance}")
    if fte.empty or (fte.astype(float) <= 0).any():
        raise ValueError("fte: give at least one worker, each with fte > 0")
    totals = by_type.sum(axis=0).astype(float)
    types, workers = list(totals.index), [str(w) for w in fte.index]
    f = fte.astype(float).to_numpy()
    target = totals.sum() * f / f.sum()

    model = mathopt.Model(name="pathology")
    x = {(t, w): model.add_variable(lb=0.0, ub=1.0, name=f"x_{t}_{w}") for t in types for w in workers}
    y = {(t, w): model.add_binary_variable(name=f"y_{t}_{w}") for t in types for w in workers}
    busiest = model.add_variable(lb=0.0, name="busiest")
    spread = model.add_variable(lb=0.0, name="spread")  # largest |caseload - target| / target
    for t in types:
        model.add_linear_constraint(mathopt.fast_sum(x[t, w] for w in workers) == 1)
        for w in workers:
            model.add_linear_constraint(x[t, w] <= y[t, w])
    lower, upper = caseload_band(np.asarray(target, dtype=float), tolerance)
    for j, w in enumerate(workers):
        load = mathopt.fast_sum(float(totals[t]) * x[t, w] for t in types)
        model.add_linear_constraint(load >= float(lower[j]))
        model.add_linear_constraint(load <= float(upper[j]))
        model.add_linear_constraint(load - float(target[j]) <= float(target[j]) * spread)
        model.add_linear_constraint(float(target[j]) - load <= float(target[j]) * spread)
        model.add_linear_constraint(mathopt.fast_sum(y[t, w] for t in types) <= busiest)
    pairs = mathopt.fast_sum(y.values())
    step = 1.0 / (len(types) * len(workers) + 1)  # lexicographic: pairs, then busiest, then spread
    model.minimize(pairs + step * busiest + step * step * spread / tolerance)
    params = mathopt.SolveParameters(time_limit=datetime.timedelta(seconds=time_limit_s),
                                     relative_gap_tolerance=0.0, absolute_gap_tolerance=step * step / 100)
    result = mathopt.solve(model, mathopt.SolverType.HIGHS, params=params)
    if not result.has_primal_feasible_solution():
        raise ValueError(
            f"no assignment of {len(types)} tumour types to {len(workers)} workers within ±{tolerance:.0%} "
            f"found in {time_limit_s:g} s ({result.termination.reason.name.lower()}); widen the tolerance"
        )
    values = result.variable_values()
    shares = pd.DataFrame([[values[x[t, w]] for w in workers] for t in types], index=types, columns=workers)
    shares = shares.where(shares > 1e-7, 0.0)
    shares = shares.div(shares.sum(axis=1), axis=0)
    caseload = (totals.to_frame().T @ shares).iloc[0]
    status = "optimal" if result.termination.reason == mathopt.TerminationReason.OPTIMAL else "feasible"
    return PathologyOrganisation(shares, caseload.rename("caseload"), pd.Series(target, index=workers, name="target"),
                                 status)


def base_minutes(scenario: Scenario) -> pd.DataFrame:
    """Travel minutes from each worker's base (columns, worker ids) to each unit (rows).

    Uses the scenario's region and travel times (:func:`sectorize.pipeline.inputs.build_team`).
    """
    from sectorize.pipeline import inputs as pipeline

    region = pipeline.load_region(scenario)
    travel = pipeline.load_travel(scenario, region)
    team = pipeline.build_team(scenario, region, travel)
    return pd.DataFrame(team.base_travel.T, index=region.units.index, columns=list(team.ids))


def organisation_figures(load: pd.DataFrame, target: pd.Series, minutes: pd.DataFrame,
                         partners: pd.DataFrame | None) -> dict[str, Any]:
    """Balance, travel and local partners of an organisation given by its caseload matrix.

    Parameters
    ----------
    load
        Caseload per commune (rows) and worker (columns).
    target
        Caseload target per worker.
    minutes
        Minutes from each worker's base (columns) to each commune (rows).
    partners
        ``epci``/``canton`` per commune, or ``None`` (partner figures NaN).

    Returns
    -------
    dict
        ``max_dev_pct``, ``dev_std_pct`` (caseload vs target, %),
        ``travel_mean_min`` (caseload-weighted minutes from the worker's
        base), ``travel_max_min`` (farthest commune where a worker has
        caseload), ``communes_mean`` (communes with caseload per worker),
        ``epci_mean, epci_max, cantons_mean, cantons_max``.

    Example
    -------
    >>> load = pd.DataFrame({"w1": [3.0, 1.0], "w2": [0.0, 4.0]}, index=["a", "b"])
    >>> minutes = pd.DataFrame({"w1": [10.0, 50.0], "w2": [30.0, 20.0]}, index=["a", "b"])
    >>> f = organisation_figures(load, pd.Series({"w1": 4.0, "w2": 4.0}), minutes, None)
    >>> f["max_dev_pct"], f["travel_mean_min"], f["travel_max_min"]
    (0.0, 20.0, 50.0)
    """
    workers = list(load.columns)
    caseload = load.sum(axis=0)
    dev = 100 * (caseload / target.reindex(workers).astype(float) - 1)
    m = minutes.reindex(index=load.index, columns=workers).to_numpy(dtype=float)
    values = load.to_numpy(dtype=float)
    served = values > 0
    total = values.sum()
    figures: dict[str, Any] = {
        "max_dev_pct": float(dev.abs().max()), "dev_std_pct": float(dev.std(ddof=0)),
        "travel_mean_min": float((values * m).sum() / total) if total > 0 else np.nan,
        "travel_max_min": float(m[served].max()) if served.any() else np.nan,
        "communes_mean": float(served.sum(axis=0).mean()),
    }
    if partners is None:
        figures.update({"epci_mean": np.nan, "epci_max": np.nan, "cantons_mean": np.nan, "cantons_max": np.nan})
    else:
        counts = partner_counts(load, partners)
        figures.update({"epci_mean": float(counts["epci"].mean()), "epci_max": int(counts["epci"].max()),
                        "cantons_mean": float(counts["cantons"].mean()), "cantons_max": int(counts["cantons"].max())})
    return figures


def compare_organisations(plan: Plan, by_type: pd.DataFrame, organisation: PathologyOrganisation,
                          minutes: pd.DataFrame) -> pd.DataFrame:
    """The territorial plan against the pathology organisation, measured alike.

    Both follow the same caseload from the same worker bases (``minutes``,
    :func:`base_minutes`); travel is caseload-weighted minutes from the
    worker's base (not from the sector's centre).

    Returns
    -------
    DataFrame
        Rows ``by territory`` and ``by pathology``; columns of
        :func:`organisation_figures` plus ``types_per_worker_mean``
        (pathologies a worker follows; every type for a territorial worker).
    """
    partners, _ = partner_codes(plan)
    target = plan.workers.set_index("worker_id")["target"].astype(float)
    territory = organisation_figures(territory_load(plan), target, minutes, partners)
    pathology = organisation_figures(organisation.load(by_type.reindex(plan.units.index)), organisation.target,
                                     minutes, partners)
    territory["types_per_worker_mean"] = float(by_type.shape[1])
    pathology["types_per_worker_mean"] = float(organisation.types_per_worker.map(len).mean())
    return pd.DataFrame({"by territory": territory, "by pathology": pathology}).T
