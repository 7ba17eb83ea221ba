"""Weekly workload simulation: how bad can a week get for each social worker under a plan?

Caseloads are balanced on yearly averages; this module simulates the weekly
flow of new referrals to see the busy weeks that averages hide.

Model (assumptions, not measurements):

* referrals arrive independently per commune and week as Poisson counts with
  rate ``referrals per year / 52 x factor(week)``; the 52 seasonality factors
  are normalised to mean 1, so the expected yearly total is the plan's
  (:func:`seasonality_factors`: preset ``"flat"``, the assumed
  ``"french_hospital"`` profile, or a CSV of 52 factors);
* every referral goes to the worker of its commune in the plan's sector table;
* travel per week is the sum, over the week's new patients, of ``travel_min``
  of their commune: **one trip per new patient**, a proxy of the travel a new
  case brings, not a measured travel time (minutes/week).

The simulation is vectorised (replications x weeks x communes Poisson draws,
aggregated per worker) and reproducible for a seed (``numpy.random.Generator``).
Only aggregated counts are produced: per-worker weekly counts, never
individual referrals.

Example
-------
>>> from sectorize.report.simulation import simulate, plot_weekly            # doctest: +SKIP
>>> result = simulate("sectorize-output/20261201-115842", replications=200,
...                   seasonality="french_hospital", threshold=8)       # doctest: +SKIP
>>> result.worker_table()[["sector", "weekly_mean", "weekly_p90", "weeks_above"]]  # doctest: +SKIP
>>> plot_weekly(result).savefig("weekly.png")                           # doctest: +SKIP
>>> compare_plans({"2 groups": plan2, "3 groups": plan3}, replications=200)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from sectorize.plan import Plan

#: Weeks in the seasonality profile (one simulated year).
WEEKS_PER_YEAR = 52

#: Replications simulated together: bounds memory to about 50 x 52 x communes x 8 bytes (~84 MB for AURA).
CHUNK_REPLICATIONS = 50

#: Default demand column simulated: new referrals per year and commune.
DEFAULT_COLUMN = "referrals"


def _french_hospital_profile() -> np.ndarray:
    """Relative weekly activity of a French hospital, ISO weeks 1..52 (an assumption, not fitted).

    Lower activity at New Year (week 1: 0.85), end of July (week 30: 0.9),
    August (weeks 31-34: 0.65, week 35: 0.85) and Christmas (week 51: 0.9,
    week 52: 0.5); 1.0 otherwise. Normalised to mean 1 by
    :func:`seasonality_factors`.
    """
    raw = np.ones(WEEKS_PER_YEAR)
    for week, factor in {1: 0.85, 30: 0.9, 31: 0.65, 32: 0.65, 33: 0.65, 34: 0.65, 35: 0.85,
                         51: 0.9, 52: 0.5}.items():
        raw[week - 1] = factor
    return raw


#: Named seasonality profiles (raw factors, normalised to mean 1 when used).
SEASONALITY_PRESETS: dict[str, np.ndarray] = {
    "flat": np.ones(WEEKS_PER_YEAR),
    "french_hospital": _french_hospital_profile(),
}


class SimulationError(ValueError):
    """Bad simulation input (plan table, seasonality file or parameter); the message says what to fix."""


# --------------------------------------------------------------------------
# Seasonality
# --------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    from sectorize.store.run_folder import decode

    return decode(path.read_bytes())


def _number(text: str) -> float:
    return float(text.strip().replace("\u00a0", "").replace(" ", "").replace(",", "."))


def read_seasonality_csv(path: str | Path) -> np.ndarray:
    """Read 52 weekly seasonality factors from a CSV file (raw, not normalised).

    Accepted layouts (UTF-8 with or without BOM, or Latin-1; optional header line):
    one factor per line (decimal ``.`` or ``,``), or two columns
    ``week;factor`` (``;``, tab, or ``,`` with decimal ``.``) with weeks 1..52
    in order. Factors must be finite, >= 0 and not all 0.

    Example file (French Excel)::

        semaine;facteur
        1;0,85
        2;1
        ...

    Raises
    ------
    SimulationError
        Naming the file and line of the first bad value.
    """
    path = Path(path)
    try:
        text = _read_text(path)
    except FileNotFoundError:
        raise SimulationError(f"seasonality file {path}: no such file; give a CSV of 52 weekly factors "
                              f"or a preset ({', '.join(SEASONALITY_PRESETS)})") from None
    except OSError as err:
        raise SimulationError(f"seasonality file {path}: cannot be read ({err.strerror})") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise SimulationError(f"seasonality file {path}: empty; expected 52 weekly factors, one per line")
    sep = ";" if ";" in text else "\t" if "\t" in text else None
    if sep is None and "," in text:
        # "1,0.85" (week, factor) or "0,85" (a decimal comma): two columns only when
        # every data line has two fields whose first ones are the weeks 1, 2, 3, ...
        rows = [line.split(",") for _, line in lines]
        start = 0 if re.fullmatch(r"[0-9]+", rows[0][0].strip()) else 1
        if all(len(r) == 2 for r in rows) and [r[0].strip() for r in rows[start:]] == [
                str(w) for w in range(1, len(rows) - start + 1)]:
            sep = ","
    factors: list[float] = []
    for number, line in lines:
        fields = [f.strip().strip('"') for f in (line.split(sep) if sep else [line])]
        fields = [f for f in fields if f != ""]
        try:
            values = [_number(f) for f in fields]
        except ValueError:
            if number == lines[0][0]:
                continue  # a header line
            raise SimulationError(f"seasonality file {path}, line {number}: {line!r} is not a number "
                                  "(expected 'factor' or 'week;factor')") from None
        if len(values) == 2:
            if values[0] != len(factors) + 1:
                raise SimulationError(f"seasonality file {path}, line {number}: week {fields[0]} where week "
                                      f"{len(factors) + 1} was expected; list weeks 1..52 in order")
            values = values[1:]
        if len(values) != 1:
            raise SimulationError(f"seasonality file {path}, line {number}: {line!r} has {len(values)} values; "
                                  "write one factor, or week and factor")
        if not np.isfinite(values[0]) or values[0] < 0:
            raise SimulationError(f"seasonality file {path}, line {number}: factor {fields[-1]} must be a finite number >= 0")
        factors.append(values[0])
    if len(factors) != WEEKS_PER_YEAR:
        raise SimulationError(f"seasonality file {path}: {len(factors)} factors; give exactly {WEEKS_PER_YEAR}, one per week")
    return np.asarray(factors, dtype=float)


def seasonality_factors(spec: str | Path | Sequence[float] | np.ndarray | None = "flat") -> tuple[str, np.ndarray]:
    """The 52 weekly factors, normalised to mean 1 (the expected yearly total is kept).

    Parameters
    ----------
    spec
        A preset name (``"flat"``: every week alike; ``"french_hospital"``:
        an *assumed* profile with lower activity at New Year, in August and in
        the last week of December, see :data:`SEASONALITY_PRESETS`), a path to
        a CSV of 52 factors (:func:`read_seasonality_csv`), or 52 numbers.
        ``None`` means ``"flat"``.

    Returns
    -------
    (name, factors)
        A label for reports (preset name or file name) and an array of 52
        factors with mean 1.

    Example
    -------
    >>> name, f = seasonality_factors("french_hospital")
    >>> round(float(f.mean()), 6), f.argmin() + 1
    (1.0, np.int64(52))
    """
    if spec is None:
        spec = "flat"
    if isinstance(spec, str) and spec in SEASONALITY_PRESETS:
        name, raw = spec, SEASONALITY_PRESETS[spec]
    elif isinstance(spec, (str, Path)):
        path = Path(spec)
        if not path.exists():
            raise SimulationError(f"seasonality {str(spec)!r}: neither a preset ({', '.join(SEASONALITY_PRESETS)}) "
                                  "nor an existing CSV file of 52 weekly factors")
        name, raw = path.name, read_seasonality_csv(path)
    else:
        name, raw = "custom", np.asarray(spec, dtype=float)
        if raw.shape != (WEEKS_PER_YEAR,) or not np.all(np.isfinite(raw)) or np.any(raw < 0):
            raise SimulationError(f"seasonality: give {WEEKS_PER_YEAR} finite factors >= 0 (got shape {raw.shape})")
    if not raw.sum() > 0:
        raise SimulationError(f"seasonality {name}: every factor is 0; at least one week must have activity")
    return name, raw / raw.mean()


# --------------------------------------------------------------------------
# Inputs: the routing of communes to workers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulationInput:
    """What the simulation needs from a plan: aggregated counts and the routing.

    Attributes
    ----------
    communes
        Indexed by INSEE code (str): ``worker_id`` (str), ``rate`` (referrals
        per year) and ``travel_min`` (minutes from the sector's reference
        point).
    workers
        One row per worker: ``worker_id``, ``worker_name``, ``sector``,
        ``group``, ``fte`` (NaN when unknown).
    label
        Where the plan came from (run folder or ``"plan"``).
    column
        The demand column simulated (e.g. ``referrals``).
    """

    communes: pd.DataFrame
    workers: pd.DataFrame
    label: str = "plan"
    column: str = DEFAULT_COLUMN


def _check_input(communes: pd.DataFrame, workers: pd.DataFrame, where: str, column: str) -> None:
    codes = communes.index.astype(str)
    dup = codes[codes.duplicated()]
    if len(dup):
        raise SimulationError(f"{where}: commune(s) listed twice, e.g. {list(dup[:5])}; keep one row per INSEE code")
    for name, label in (("rate", column), ("travel_min", "travel_min")):
        values = communes[name]
        bad = values.index[~np.isfinite(values.to_numpy(dtype=float)) | (values.to_numpy(dtype=float) < 0)]
        if len(bad):
            raise SimulationError(f"{where}: column {label!r} must be a number >= 0 for every commune; "
                                  f"{len(bad)} are not, e.g. {list(bad[:5])}")
    no_worker = communes.index[communes["worker_id"].isna() | (communes["worker_id"].astype(str).str.strip() == "")]
    if len(no_worker):
        raise SimulationError(f"{where}: {len(no_worker)} commune(s) have no worker_id, e.g. {list(no_worker[:5])}; "
                              "every commune must belong to a sector")
    unknown = sorted(set(communes["worker_id"]) - set(workers["worker_id"]))
    if unknown:
        raise SimulationError(f"{where}: worker_id {unknown[:5]} of the sector table are not in the workers table")
    if not communes["rate"].sum() > 0:
        raise SimulationError(f"{where}: column {column!r} sums to 0; there is nothing to simulate")


def input_from_plan(plan: Plan, column: str = DEFAULT_COLUMN) -> SimulationInput:
    """The simulation input of an in-memory :class:`~sectorize.plan.Plan`.

    Parameters
    ----------
    plan
        A solved plan (``plan.units`` with ``worker_id``, ``travel_min`` and
        the demand column).
    column
        Demand column with new referrals per year (default ``referrals``).
    """
    units = plan.units
    missing = [c for c in ("worker_id", "travel_min", column) if c not in units.columns]
    if missing:
        raise SimulationError(f"plan.units lacks the column(s) {missing}; available: {list(units.columns)}; "
                              "choose the referrals column with column=...")
    communes = pd.DataFrame({
        "worker_id": units["worker_id"].astype(str).to_numpy(),
        "rate": pd.to_numeric(units[column], errors="coerce").to_numpy(dtype=float),
        "travel_min": pd.to_numeric(units["travel_min"], errors="coerce").to_numpy(dtype=float),
    }, index=pd.Index(units.index.astype(str), name="insee"))
    workers = plan.workers.copy()
    for c in ("worker_name", "sector", "group"):
        if c not in workers.columns:
            workers[c] = ""
    if "fte" not in workers.columns:
        workers["fte"] = np.nan
    workers = workers.assign(worker_id=workers["worker_id"].astype(str), sector=workers["sector"].astype(str),
                             group=workers["group"].astype(str), worker_name=workers["worker_name"].astype(str))
    workers = workers[["worker_id", "worker_name", "sector", "group", "fte"]].reset_index(drop=True)
    _check_input(communes, workers, "plan", column)
    return SimulationInput(communes=communes, workers=workers, label="plan", column=column)


def _read_french_csv(path: Path) -> pd.DataFrame:
    """A run-folder table, every column as text (:func:`sectorize.store.run_folder.read_table`)."""
    from sectorize.store.run_folder import RunFolderError, read_table

    try:
        return read_table(path, str(path), text=True)
    except RunFolderError as err:
        raise SimulationError(str(err)) from None


def _numbers(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    text = table[column].astype(str).str.strip()
    values = pd.to_numeric(text.str.replace("\u00a0", "").str.replace(",", ".", regex=False), errors="coerce")
    bad = values.isna() | ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SimulationError(f"{path}, line {row + 2}, column {column!r}: {text.iloc[row]!r} is not a number")
    return values.to_numpy(dtype=float)


def input_from_run_folder(folder: str | Path, column: str = DEFAULT_COLUMN) -> SimulationInput:
    """The simulation input of a run folder written by ``sectorize run``.

    Reads ``sectors.csv`` (``;``, decimal comma, UTF-8 with BOM or Latin-1,
    INSEE codes as text) and, when present, ``workers.csv`` (names, sectors,
    FTE). ``folder`` may also be the path of a ``sectors.csv`` file.

    Raises
    ------
    FileNotFoundError
        If the folder or its ``sectors.csv`` does not exist.
    SimulationError
        If a column is missing or a value is not a number (file, line and column named).
    """
    folder = Path(folder)
    sectors_path = folder if folder.is_file() else folder / "sectors.csv"
    if not sectors_path.is_file():
        raise FileNotFoundError(f"{folder}: no sectors.csv there; give a run folder written by `sectorize run`")
    table = _read_french_csv(sectors_path)
    missing = [c for c in ("insee", "worker_id", column, "travel_min") if c not in table.columns]
    if missing:
        raise SimulationError(f"{sectors_path}: missing column(s) {missing}; found {list(table.columns)}"
                              + ("; choose the referrals column with --column" if column in missing else ""))
    insee = table["insee"].astype(str).str.strip()
    bad = ~insee.str.fullmatch(r"[0-9]{5}|2[AB][0-9]{3}")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SimulationError(f"{sectors_path}, line {row + 2}: insee {insee.iloc[row]!r} is not a 5-character "
                              "INSEE code (read codes as text to keep leading zeros, e.g. 01001)")
    communes = pd.DataFrame({
        "worker_id": table["worker_id"].astype(str).str.strip().to_numpy(),
        "rate": _numbers(table, column, sectors_path),
        "travel_min": _numbers(table, "travel_min", sectors_path),
    }, index=pd.Index(insee.to_numpy(), name="insee"))
    workers_path = sectors_path.with_name("workers.csv")
    if workers_path.is_file():
        workers = _read_french_csv(workers_path)
        if "worker_id" not in workers.columns:
            raise SimulationError(f"{workers_path}: no worker_id column; found {list(workers.columns)}")
        workers = workers.assign(worker_id=workers["worker_id"].astype(str).str.strip())
        fte = (_numbers(workers, "fte", workers_path) if "fte" in workers.columns else np.full(len(workers), np.nan))
        workers = workers.assign(fte=fte)
    else:
        extra = [c for c in ("worker_name", "sector", "group") if c in table.columns]
        workers = table.assign(worker_id=table["worker_id"].astype(str).str.strip())[["worker_id", *extra]]
        workers = workers.drop_duplicates("worker_id").assign(fte=np.nan)
    for c in ("worker_name", "sector", "group"):
        if c not in workers.columns:
            workers[c] = ""
    workers = workers[["worker_id", "worker_name", "sector", "group", "fte"]].reset_index(drop=True)
    _check_input(communes, workers, str(sectors_path), column)
    return SimulationInput(communes=communes, workers=workers, label=str(folder), column=column)


def as_input(source: Plan | SimulationInput | str | Path, column: str = DEFAULT_COLUMN) -> SimulationInput:
    """A :class:`SimulationInput` from a plan, a run folder (or its ``sectors.csv``) or an input."""
    if isinstance(source, SimulationInput):
        return source
    if isinstance(source, (str, Path)):
        return input_from_run_folder(source, column)
    return input_from_plan(source, column)


# --------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------


@dataclass
class SimulationResult:
    """Simulated weekly new patients and travel per worker.

    Attributes
    ----------
    workers
        One row per worker: ``worker_id, worker_name, sector, group, fte``.
    counts
        New patients per week, integers, shape ``(replications, weeks, workers)``.
    travel
        Travel per week (minutes; one trip per new patient to its commune,
        ``travel_min``), same shape.
    expected
        Expected new patients per week, shape ``(weeks, workers)``.
    factors
        Seasonality factor of each simulated week (mean 1 over 52 weeks).
    seasonality, seed, threshold, column, label
        The parameters: seasonality name, random seed, weekly threshold (a
        week is "above" when it has *more than* ``threshold`` new patients),
        demand column, plan source.
    elapsed_s
        Wall-clock seconds of the simulation.
    """

    workers: pd.DataFrame
    counts: np.ndarray
    travel: np.ndarray
    expected: np.ndarray
    factors: np.ndarray
    seasonality: str
    seed: int
    threshold: float
    column: str = DEFAULT_COLUMN
    label: str = "plan"
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def replications(self) -> int:
        return int(self.counts.shape[0])

    @property
    def weeks(self) -> int:
        return int(self.counts.shape[1])

    def worker_table(self) -> pd.DataFrame:
        """One row per worker: the distribution of a week.

        Columns: ``worker_id, worker_name, sector, group, fte``;
        ``referrals_year`` (expected new patients per simulated year);
        ``weekly_mean``, ``weekly_sd``, ``weekly_p90``, ``weekly_max``
        (new patients per week over every simulated week; P90 is the
        smallest count reached or passed in at most 10 % of weeks; max is
        the highest week seen); ``busiest_week`` (the year's highest week,
        averaged over simulated years); ``weeks_above`` (weeks per simulated
        year with more than ``threshold`` new patients, averaged);
        ``share_weeks_above`` (fraction of weeks); ``weekly_mean_per_fte``;
        ``travel_week_mean``, ``travel_week_p90``, ``travel_week_max``
        (minutes per week, one trip per new patient).
        """
        flat = self.counts.reshape(-1, self.counts.shape[2]).astype(float)
        trav = self.travel.reshape(-1, self.travel.shape[2])
        above = self.counts > self.threshold
        table = self.workers.copy()
        fte = table["fte"].to_numpy(dtype=float)
        mean = flat.mean(axis=0)
        table["referrals_year"] = self.expected.sum(axis=0) * (WEEKS_PER_YEAR / self.weeks)
        table["weekly_mean"] = mean
        table["weekly_sd"] = flat.std(axis=0, ddof=1) if len(flat) > 1 else np.nan
        table["weekly_p90"] = np.percentile(flat, 90, axis=0, method="inverted_cdf")
        table["weekly_max"] = flat.max(axis=0)
        table["busiest_week"] = self.counts.max(axis=1).mean(axis=0)
        table["weeks_above"] = above.sum(axis=1).mean(axis=0) * (WEEKS_PER_YEAR / self.weeks)
        table["share_weeks_above"] = above.mean(axis=(0, 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            table["weekly_mean_per_fte"] = np.where(fte > 0, mean / fte, np.nan)
        table["travel_week_mean"] = trav.mean(axis=0)
        table["travel_week_p90"] = np.percentile(trav, 90, axis=0, method="inverted_cdf")
        table["travel_week_max"] = trav.max(axis=0)
        return table

    def weekly_table(self, replication: int = 0) -> pd.DataFrame:
        """New patients per worker and week of one simulated year (worker x week).

        Columns ``worker_id, worker_name, sector``, then ``w01`` ... ``w52``
        (integers). Only per-worker weekly counts: no individual referral.
        """
        if not 0 <= replication < self.replications:
            raise SimulationError(f"replication {replication}: choose 0..{self.replications - 1}")
        weeks = pd.DataFrame(self.counts[replication].T, columns=[f"w{w + 1:02d}" for w in range(self.weeks)])
        return pd.concat([self.workers[["worker_id", "worker_name", "sector"]].reset_index(drop=True), weeks], axis=1)

    def summary(self) -> dict[str, Any]:
        """Parameters, assumptions, team figures and the per-worker table, JSON-ready."""
        table = self.worker_table()
        team = {
            "referrals_year": float(self.expected.sum() * (WEEKS_PER_YEAR / self.weeks)),
            "worst_weekly_p90": float(table["weekly_p90"].max()),
            "worst_weekly_max": float(table["weekly_max"].max()),
            "weeks_above_total": float(table["weeks_above"].sum()),
            "worst_weeks_above": float(table["weeks_above"].max()),
            "travel_week_mean_total": float(table["travel_week_mean"].sum()),
        }
        records = json.loads(table.to_json(orient="records", double_precision=6))
        return {
            "plan": self.label,
            "column": self.column,
            "weeks": self.weeks,
            "replications": self.replications,
            "seed": self.seed,
            "threshold": self.threshold,
            "seasonality": {"name": self.seasonality, "factors": [round(float(f), 6) for f in self.factors]},
            "assumptions": [
                "referrals arrive independently per commune and week (Poisson), "
                "rate = referrals per year / 52 x seasonality factor (factors have mean 1)",
                "every referral goes to the worker of its commune in the plan's sector table",
                "travel per week = sum over the week's new patients of travel_min of their commune "
                "(one trip per new patient: a proxy, minutes)",
                f"a week is above the threshold when it has more than {self.threshold:g} new patients",
            ],
            "team": team,
            "workers": records,
            "elapsed_s": round(self.elapsed_s, 3),
            "notes": list(self.notes),
        }


def _check_parameters(weeks: int, replications: int, threshold: float) -> None:
    if not (isinstance(weeks, (int, np.integer)) and weeks >= 1):
        raise SimulationError(f"weeks = {weeks!r}: give a whole number of weeks >= 1 (52 = one year)")
    if not (isinstance(replications, (int, np.integer)) and replications >= 1):
        raise SimulationError(f"replications = {replications!r}: give a whole number >= 1")
    if not (np.isfinite(threshold) and threshold >= 0):
        raise SimulationError(f"threshold = {threshold!r}: give a number of new patients per week >= 0")


def _simulate_group(inputs: list[SimulationInput], rates_year: np.ndarray, weeks: int, replications: int,
                    seed: int, factors: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Draw commune x week Poisson counts once and route them through every plan of ``inputs``.

    All ``inputs`` share the commune order and yearly rates ``rates_year``
    (common random numbers: the plans see the same referrals).
    """
    week_factor = factors[np.arange(weeks) % WEEKS_PER_YEAR]
    active = np.flatnonzero(rates_year > 0)  # communes with rate 0 never have a referral
    rates = np.outer(week_factor, rates_year[active] / WEEKS_PER_YEAR)  # (weeks, active communes)
    routes = []
    for inp in inputs:
        ids = inp.workers["worker_id"].to_numpy()
        position = pd.Index(ids).get_indexer(inp.communes["worker_id"].to_numpy())[active]
        travel = inp.communes["travel_min"].to_numpy(dtype=float)[active]
        routes.append((position, travel, len(ids)))
    out = [(np.zeros((replications, weeks, k), dtype=np.int64), np.zeros((replications, weeks, k)), None)
           for _, _, k in routes]
    rng = np.random.default_rng(seed)
    n_active = len(active)
    for start in range(0, replications, CHUNK_REPLICATIONS):
        stop = min(start + CHUNK_REPLICATIONS, replications)
        draws = rng.poisson(rates, size=(stop - start, weeks, n_active))
        where = np.flatnonzero(draws)  # sparse: few communes have a referral in a given week
        n = draws.ravel()[where]
        rep_week, commune = np.divmod(where, n_active)
        for (position, travel, k), (counts, minutes, _) in zip(routes, out):
            key = rep_week * k + position[commune]
            size = (stop - start) * weeks * k
            counts[start:stop] = np.bincount(key, weights=n, minlength=size).reshape(stop - start, weeks, k).round()
            minutes[start:stop] = np.bincount(key, weights=n * travel[commune], minlength=size).reshape(stop - start, weeks, k)
    results = []
    for (position, _, k), (counts, minutes, _) in zip(routes, out):
        per_worker = np.bincount(position, weights=rates_year[active] / WEEKS_PER_YEAR, minlength=k)
        results.append((counts, minutes, np.outer(week_factor, per_worker)))
    return results


def simulate(
    source: Plan | SimulationInput | str | Path,
    *,
    weeks: int = WEEKS_PER_YEAR,
    replications: int = 100,
    seed: int = 0,
    threshold: float = 8,
    seasonality: str | Path | Sequence[float] | None = "flat",
    column: str = DEFAULT_COLUMN,
) -> SimulationResult:
    """Simulate weekly new patients and travel per worker under a plan.

    Parameters
    ----------
    source
        A :class:`~sectorize.plan.Plan`, a run folder (or its
        ``sectors.csv``), or a :class:`SimulationInput`.
    weeks
        Simulated weeks per replication (52 = one year; beyond 52 the
        seasonality repeats).
    replications
        Independent simulated years; statistics are over all of them.
    seed
        Seed of the ``numpy.random.Generator``: equal seeds, equal results
        (and the first years of a longer run equal a shorter run's).
    threshold
        Weekly new patients above which a week counts as overloaded (``>``).
    seasonality
        See :func:`seasonality_factors`.
    column
        Demand column with referrals per year (default ``referrals``).

    Example
    -------
    >>> r = simulate(plan, replications=500, seed=1)                   # doctest: +SKIP
    >>> r.counts.shape                                                   # doctest: +SKIP
    (500, 52, 11)
    """
    _check_parameters(weeks, replications, threshold)
    inp = as_input(source, column)
    name, factors = seasonality_factors(seasonality)
    begin = time.perf_counter()
    ((counts, minutes, expected),) = _simulate_group([inp], inp.communes["rate"].to_numpy(dtype=float),
                                                     weeks, replications, seed, factors)
    return SimulationResult(
        workers=inp.workers.copy(), counts=counts, travel=minutes, expected=expected,
        factors=factors[np.arange(weeks) % WEEKS_PER_YEAR], seasonality=name, seed=int(seed),
        threshold=float(threshold), column=inp.column, label=inp.label, elapsed_s=time.perf_counter() - begin,
    )


def robustness_table(results: Mapping[str, SimulationResult]) -> pd.DataFrame:
    """One row per plan comparing its simulated weeks (lower is more robust).

    Columns: ``plan``, ``workers``, ``referrals_year``; ``worst_weekly_p90``
    and ``worst_weekly_max`` (the highest worker P90 and highest week,
    new patients/week); ``worst_busiest_week`` (highest worker's mean
    busiest week of a year); ``weeks_above_total`` (worker-weeks per year
    above the threshold, whole team) and ``worst_weeks_above`` (the worst
    worker's); ``weekly_mean_per_fte_spread`` (max - min of mean weekly
    new patients per FTE, NaN without FTE); ``travel_week_mean_total``
    (team minutes per week) and ``worst_travel_week_p90`` (minutes per week).
    """
    rows = []
    for name, result in results.items():
        table = result.worker_table()
        per_fte = table["weekly_mean_per_fte"].dropna()
        rows.append({
            "plan": name,
            "workers": len(table),
            "referrals_year": float(table["referrals_year"].sum()),
            "worst_weekly_p90": float(table["weekly_p90"].max()),
            "worst_weekly_max": float(table["weekly_max"].max()),
            "worst_busiest_week": float(table["busiest_week"].max()),
            "weeks_above_total": float(table["weeks_above"].sum()),
            "worst_weeks_above": float(table["weeks_above"].max()),
            "weekly_mean_per_fte_spread": float(per_fte.max() - per_fte.min()) if len(per_fte) else np.nan,
            "travel_week_mean_total": float(table["travel_week_mean"].sum()),
            "worst_travel_week_p90": float(table["travel_week_p90"].max()),
        })
    return pd.DataFrame(rows)


def simulate_plans(
    plans: Mapping[str, Plan | SimulationInput | str | Path],
    *,
    weeks: int = WEEKS_PER_YEAR,
    replications: int = 100,
    seed: int = 0,
    threshold: float = 8,
    seasonality: str | Path | Sequence[float] | None = "flat",
    column: str = DEFAULT_COLUMN,
) -> dict[str, SimulationResult]:
    """Simulate several plans with the same seed and parameters.

    Plans over the same communes with the same referral rates see the very
    same simulated referrals (common random numbers), so their differences
    come from the sectors, not from chance; other plans get their own draws
    from the same seed.
    """
    _check_parameters(weeks, replications, threshold)
    if not plans:
        raise SimulationError("plans: give at least one plan to simulate")
    inputs = {name: as_input(source, column) for name, source in plans.items()}
    name, factors = seasonality_factors(seasonality)
    groups: dict[tuple[bytes, bytes], list[str]] = {}
    for key, inp in inputs.items():
        signature = ("|".join(inp.communes.index).encode(), inp.communes["rate"].to_numpy(dtype=float).tobytes())
        groups.setdefault(signature, []).append(key)
    results: dict[str, SimulationResult] = {}
    for members in groups.values():
        begin = time.perf_counter()
        members_inputs = [inputs[m] for m in members]
        drawn = _simulate_group(members_inputs, members_inputs[0].communes["rate"].to_numpy(dtype=float),
                                weeks, replications, seed, factors)
        elapsed = time.perf_counter() - begin
        for key, inp, (counts, minutes, expected) in zip(members, members_inputs, drawn):
            others = [m for m in members if m != key]
            results[key] = SimulationResult(
                workers=inp.workers.copy(), counts=counts, travel=minutes, expected=expected,
                factors=factors[np.arange(weeks) % WEEKS_PER_YEAR], seasonality=name, seed=int(seed),
                threshold=float(threshold), column=inp.column, label=inp.label, elapsed_s=elapsed,
                notes=[f"same simulated referrals as {', '.join(others)} (common random numbers)"] if others else [],
            )
    return {key: results[key] for key in plans}


def compare_plans(
    plans: Mapping[str, Plan | SimulationInput | str | Path],
    **options: Any,
) -> pd.DataFrame:
    """Compare plans on robustness: :func:`simulate_plans` then :func:`robustness_table`.

    ``options`` are those of :func:`simulate_plans` (weeks, replications,
    seed, threshold, seasonality, column).

    Example
    -------
    >>> compare_plans({"±10 %": plan_10, "±5 %": plan_5}, replications=200, threshold=8)  # doctest: +SKIP
    """
    return robustness_table(simulate_plans(plans, **options))


# --------------------------------------------------------------------------
# Plot and files
# --------------------------------------------------------------------------


def plot_weekly(result: SimulationResult, *, title: str | None = None) -> Figure:
    """Box plots of each worker's weekly new patients and travel (minutes per week).

    Boxes span the quartiles, whiskers the 5th and 95th percentiles of every
    simulated week; a dot marks the highest week; the dashed line is the
    threshold. Returns a :class:`sectorize.report.charts.Chart` (a Figure
    Jupyter displays inline; no pyplot, works without a display):
    ``fig.savefig("weekly.png")`` or ``fig.save("weekly.png")``.
    """
    from sectorize.report.charts import Chart

    k = len(result.workers)
    labels = [f"{s} {n}".strip() or str(w) for s, n, w in
              zip(result.workers["sector"], result.workers["worker_name"], result.workers["worker_id"])]
    fig = Chart(figsize=(max(7.0, 0.75 * k + 2), 7.5), layout="constrained")  # displayed inline by Jupyter
    top, bottom = fig.subplots(2, 1, sharex=True)
    for ax, data, unit in ((top, result.counts, "new patients / week"), (bottom, result.travel, "travel min / week")):
        flat = data.reshape(-1, k)
        ax.boxplot([flat[:, j] for j in range(k)], whis=(5, 95), showfliers=False)
        ax.plot(np.arange(1, k + 1), flat.max(axis=0), "o", color="tab:red", markersize=4, label="highest week")
        ax.set_ylabel(unit)
        ax.grid(axis="y", alpha=0.3)
    top.axhline(result.threshold, linestyle="--", color="tab:orange", label=f"threshold ({result.threshold:g})")
    top.legend(loc="upper right", fontsize=8)
    bottom.set_xticks(np.arange(1, k + 1), labels, rotation=45, ha="right", fontsize=8)
    bottom.set_xlabel("sector and worker")
    fig.suptitle(title or (f"{result.replications} simulated years x {result.weeks} weeks, "
                           f"seasonality {result.seasonality}, seed {result.seed}"), fontsize=10)
    return fig


#: Decimals in the written tables (counts per week to 0.01, minutes to 0.1).
_DECIMALS = {"referrals_year": 2, "weekly_mean": 3, "weekly_sd": 3, "busiest_week": 2, "weeks_above": 2,
             "share_weeks_above": 4, "weekly_mean_per_fte": 3, "travel_week_mean": 1, "travel_week_p90": 1,
             "travel_week_max": 1}


def write_simulation(result: SimulationResult, out_dir: str | Path) -> Path:
    """Write a simulation into a new folder ``out_dir/<YYYYmmdd-HHMMSS>[-N]`` and return it.

    The folder appears complete or not at all (:func:`sectorize.store.atomic.run_folder`;
    ``out_dir/LATEST`` then names it). Files:

    - ``workers.csv``: :meth:`SimulationResult.worker_table` (French Excel CSV:
      ``;``, decimal comma, UTF-8 with BOM);
    - ``weekly_counts.csv``: :meth:`SimulationResult.weekly_table` of the first
      simulated year (worker x week);
    - ``summary.json``: :meth:`SimulationResult.summary`;
    - ``weekly.png``: :func:`plot_weekly`.
    """
    from sectorize.store.atomic import atomic_path, atomic_write_text, run_folder
    from sectorize.store.export import write_csv
    import sectorize

    summary = result.summary()
    summary["sectorize_version"] = sectorize.__version__
    summary["created"] = datetime.now().astimezone().isoformat(timespec="seconds")
    with run_folder(out_dir) as run:
        folder = run.staging
        with atomic_path(folder / "workers.csv") as tmp:
            write_csv(result.worker_table().round(_DECIMALS), tmp)
        with atomic_path(folder / "weekly_counts.csv") as tmp:
            write_csv(result.weekly_table(0), tmp)
        atomic_write_text(folder / "summary.json",
                          json.dumps(summary, ensure_ascii=False, indent=2, allow_nan=False) + "\n")
        with atomic_path(folder / "weekly.png") as tmp:
            plot_weekly(result).savefig(tmp, dpi=110, format="png")
    return run.final
