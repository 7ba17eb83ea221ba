"""Month-by-month caseloads while patients move from an old map to a new one.

A fluid (expected-value) model per commune ``c``:

- ``A_c`` patients are in follow-up at month 0, with their referent of the
  old map;
- ``r_c / 12`` new referrals arrive each month (``r_c`` per year) and go to
  the referent of the new map;
- episodes last ``L_c`` months on average, exponentially distributed: each
  month a fraction ``1 / L_c`` of the patients in follow-up closes.

So at the start of month ``m`` the old patients still followed are
``A_c (1 - 1/L_c)^m`` and the new ones ``(r_c / 12) (1 - (1 - 1/L_c)^m) L_c``.
With **grandfathering** the old patients stay with their old referent until
their episode closes; with an **immediate** switch they all go to the new
referent at month 0. Only aggregated counts per commune are used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The old map has drained when fewer than this share of the patients followed under it at
#: month 0 remain with their old referent, or fewer than ``DRAINED_PATIENTS`` patients.
DRAINED_SHARE = 0.05
DRAINED_PATIENTS = 1.0


def simulate_transition(
    old_worker: pd.Series,
    new_worker: pd.Series,
    follow_up: pd.Series,
    referrals_per_year: pd.Series,
    episode_months: float | pd.Series,
    *,
    mode: str = "grandfathering",
    max_months: int = 36,
) -> pd.DataFrame:
    """Expected caseload of each worker, month by month, during the change of map.

    Parameters
    ----------
    old_worker, new_worker
        Worker id of each commune (index: INSEE code) in the previous and the
        new plan; ``""`` or missing in ``old_worker`` for a commune nobody
        followed (its patients count as the new worker's).
    follow_up
        Patients in active follow-up per commune at month 0.
    referrals_per_year
        New referrals per commune and year.
    episode_months
        Mean episode length in months (> 1), one number or one per commune.
    mode
        ``"grandfathering"`` or ``"immediate"``.
    max_months
        Months simulated at most (the simulation stops earlier once the old
        map has drained (see :func:`drained_month`) and at least 12 months are shown).

    Returns
    -------
    pandas.DataFrame
        One row per month and worker: ``month`` (0 = the switch), ``worker_id``,
        ``old_map`` (patients kept from communes the worker no longer covers),
        ``new_map`` (patients of the worker's new communes), ``caseload``
        (their sum, patients in follow-up).

    Examples
    --------
    >>> idx = pd.Index(["01001", "01002"])
    >>> t = simulate_transition(pd.Series(["TS1", "TS1"], idx), pd.Series(["TS1", "TS2"], idx),
    ...                         pd.Series([10.0, 10.0], idx), pd.Series([12.0, 12.0], idx), 10.0)
    >>> t[t.month == 1].set_index("worker_id")[["old_map", "caseload"]].round(1).to_dict("index")
    {'TS1': {'old_map': 9.0, 'caseload': 19.0}, 'TS2': {'old_map': 0.0, 'caseload': 1.0}}
    """
    if mode not in ("grandfathering", "immediate"):
        raise ValueError(f"mode must be 'grandfathering' or 'immediate', got {mode!r}")
    index = new_worker.index
    old = old_worker.reindex(index).fillna("").astype(str)
    new = new_worker.astype(str)
    a = follow_up.reindex(index).fillna(0.0).to_numpy(dtype=float)
    r = referrals_per_year.reindex(index).fillna(0.0).to_numpy(dtype=float) / 12.0
    if isinstance(episode_months, pd.Series):
        length = episode_months.reindex(index).to_numpy(dtype=float)
    else:
        length = np.full(len(index), float(episode_months))
    if not np.all(np.isfinite(length)) or (length <= 1).any():
        raise ValueError("episode_months must be a number of months above 1 for every commune")
    keep = 1.0 - 1.0 / length
    keeps_old = (old != "").to_numpy() & (mode == "grandfathering")
    moved = keeps_old & (old != new).to_numpy()
    workers = sorted(set(new) | set(old[old != ""]))
    rows = []
    for m in range(max_months + 1):
        remaining = a * keep**m
        arrived = r * (1.0 - keep**m) * length
        owner_old = np.where(keeps_old, old.to_numpy(), new.to_numpy())
        for w in workers:
            from_old = float(remaining[(owner_old == w) & (new.to_numpy() != w)].sum())
            own = float(remaining[(owner_old == w) & (new.to_numpy() == w)].sum() + arrived[new.to_numpy() == w].sum())
            rows.append({"month": m, "worker_id": w, "old_map": from_old, "new_map": own, "caseload": from_old + own})
        if m >= 12 and remaining[moved].sum() < max(DRAINED_PATIENTS, DRAINED_SHARE * a[moved].sum()):
            break
    return pd.DataFrame(rows, columns=["month", "worker_id", "old_map", "new_map", "caseload"])


def drained_month(transition: pd.DataFrame) -> int | None:
    """First month when the old map has drained, or ``None`` within the simulated months.

    Drained: fewer than :data:`DRAINED_SHARE` (5 %) of the patients followed
    under the old map at month 0 remain with their old referent, or fewer
    than :data:`DRAINED_PATIENTS` (1) patient. The fluid model never reaches 0.
    """
    old = transition.groupby("month")["old_map"].sum()
    if old.empty:
        return None
    done = old.index[old < max(DRAINED_PATIENTS, DRAINED_SHARE * float(old.iloc[0]))]
    return int(done[0]) if len(done) else None


def transition_summary(transition: pd.DataFrame) -> pd.DataFrame:
    """Per worker: caseload at month 0, peak (and its month), at the end, and the most old-map patients kept."""
    rows = []
    for w, part in transition.groupby("worker_id", sort=True):
        peak = part.loc[part["caseload"].idxmax()]
        rows.append({
            "worker_id": w,
            "caseload_month0": float(part["caseload"].iloc[0]),
            "caseload_peak": float(peak["caseload"]),
            "peak_month": int(peak["month"]),
            "caseload_end": float(part["caseload"].iloc[-1]),
            "old_map_max": float(part["old_map"].max()),
        })
    return pd.DataFrame(rows)
