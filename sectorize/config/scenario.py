"""Scenario configuration: one TOML file that says what to sectorize and how.

A scenario names the territory (:class:`RegionConfig`), the demand and how it
turns into a caseload (:class:`DemandConfig`), the team of social workers
(:class:`TeamConfig`), how many territorial groups to form
(:class:`GroupsConfig`), the balance/compactness model (:class:`ModelConfig`),
travel times (:class:`TravelConfig`), the map (:class:`MapConfig`) and where
results go (:class:`OutputConfig`).

Every model refuses unknown keys and is immutable once validated. Loading
errors are raised as :class:`ScenarioError` with the file and the dotted key,
e.g. ``scenario.toml: model.tolerance: must be > 0 and < 1 (got 1.5)``.

Example
-------
>>> from sectorize.config.scenario import default_scenario
>>> s = default_scenario()
>>> len(s.team.workers), s.groups.names, s.model.tolerance
(11, ['A', 'B'], 0.1)
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sectorize.config.errors import explain_all

#: Columns produced by the synthetic demand generator.
SYNTHETIC_COLUMNS = ("referrals", "home_care")

#: Keys (dotted) whose relative paths are resolved against the TOML file's folder.
PATH_KEYS = (("region", "units"), ("demand", "file"), ("travel", "matrix"), ("output", "dir"))

_STRICT = ConfigDict(extra="forbid", frozen=True)

#: A demand column's role name in ``[demand.columns]``.
_ROLE = re.compile(r"^[a-z][a-z0-9_]*$")


class ScenarioError(ValueError):
    """A scenario file or dictionary is invalid; the message names file and key."""


class WorkerConfig(BaseModel):
    """One social worker, who will cover one sector.

    Attributes
    ----------
    id
        Short unique identifier, e.g. ``"TS01"``.
    name
        Display name on maps and tables.
    fte
        Full-time equivalent, ``0 < fte <= 1``; the worker's caseload target
        is proportional to it.
    base
        Unit key (INSEE code, e.g. ``"69123"``) of the worker's base, or
    base_lon, base_lat
        the base as WGS84 coordinates (degrees). Give a key *or* coordinates,
        or neither to use :attr:`TeamConfig.default_base`.
    group
        Name of a territorial group the worker must belong to (one of
        ``groups.names``); ``None`` lets the solver choose.
    replaces
        Id of a departing worker of the previous plan whose sector (id,
        colour, communes) and patients in follow-up this worker takes over at
        a re-run; the same as ``rerun.handover = {replaced: id}``.
    """

    model_config = _STRICT

    id: str = Field(min_length=1)
    name: str
    fte: float = Field(gt=0, le=1.0)
    base: str | None = Field(None, min_length=1)
    base_lon: float | None = Field(None, ge=-180, le=180)
    base_lat: float | None = Field(None, ge=-90, le=90)
    group: str | None = None
    replaces: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_base(self) -> WorkerConfig:
        if (self.base_lon is None) != (self.base_lat is None):
            raise ValueError("give both base_lon and base_lat, or neither")
        if self.base is not None and self.base_lon is not None:
            raise ValueError("give the base as a unit key (base) or as coordinates (base_lon, base_lat), not both")
        return self


class TeamConfig(BaseModel):
    """The team: at least one worker, and the base used when a worker has none.

    Attributes
    ----------
    default_base
        Unit key of the base of workers without their own, e.g. ``"69123"``
        (Lyon, where the cancer centre is).
    workers
        One entry per worker; ids must be unique.
    """

    model_config = _STRICT

    default_base: str = Field("69123", min_length=1)
    workers: list[WorkerConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> TeamConfig:
        first: dict[str, int] = {}
        problems = []
        for i, worker in enumerate(self.workers):
            if worker.id in first:
                problems.append(
                    f"workers[{i}].id: duplicate worker id {worker.id!r} "
                    f"(already used by workers[{first[worker.id]}]); ids must be unique"
                )
            first.setdefault(worker.id, i)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def total_fte(self) -> float:
        """Sum of the workers' FTE."""
        return sum(w.fte for w in self.workers)


class GroupsConfig(BaseModel):
    """Territorial groups: the region is first split into ``count`` groups.

    Attributes
    ----------
    count
        Number of groups (>= 1, at most the number of workers).
    names
        Short group names, used as sector-id prefixes (``"A"`` gives sectors
        ``"A1"``, ``"A2"``, ...). Defaults to ``["A", "B", ...]``.
    keep_together
        Sets of unit keys that must fall in one group, e.g.
        ``[["69381", "69382", ..., "69389"]]``; ``"69123"`` (Lyon) stands for
        its 9 arrondissements when the region has them. Not set (default):
        Lyon is kept in one group whenever the region holds it (as one commune
        nothing is needed; as arrondissements they stay together), so the city
        and the cancer centre in it belong to one group. ``[]`` turns it off.
        Each set must be one connected piece of the region.
    """

    model_config = _STRICT

    count: int = Field(2, ge=1)
    names: list[str] | None = None
    keep_together: list[list[str]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("names") is None:
            count = data.get("count", 2)
            if isinstance(count, int) and 1 <= count <= 26:
                data = {**data, "names": [chr(ord("A") + i) for i in range(count)]}
        return data

    @model_validator(mode="after")
    def _names_match_count(self) -> GroupsConfig:
        if self.names is None:
            raise ValueError(f"names: give {self.count} group names (only 26 letters are generated)")
        if len(self.names) != self.count:
            raise ValueError(f"names: {len(self.names)} names given for count = {self.count}; give exactly {self.count}")
        if any(not n.strip() for n in self.names):
            raise ValueError("names: group names must not be empty")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"names: group names must be unique (got {self.names})")
        first: dict[str, int] = {}
        for i, keys in enumerate(self.keep_together or []):
            if not keys:
                raise ValueError(f"keep_together[{i}]: an empty set; list unit keys, e.g. [\"69381\", \"69382\"]")
            for key in keys:
                if not key.strip():
                    raise ValueError(f"keep_together[{i}]: unit keys must not be empty")
                if key in first and first[key] != i:
                    raise ValueError(f"keep_together[{i}]: {key!r} is already in keep_together[{first[key]}]; "
                                     "merge the two sets")
                first[key] = i
        return self


class RegionConfig(BaseModel):
    """The territory to sectorize.

    Attributes
    ----------
    variant
        ``"communes"``: the 4,025 AURA communes shipped with the package;
        ``"lyon_arrondissements"``: the same, with Lyon split into its 9
        arrondissements.
    units
        A user file of polygons (any format geopandas reads) instead of the
        shipped communes; then ``key`` names its unit-key column, ``name``
        and ``population`` optionally name its name and population columns,
        and ``layer`` the layer of a multi-layer file.
    """

    model_config = _STRICT

    variant: Literal["communes", "lyon_arrondissements"] = "communes"
    units: Path | None = None
    key: str | None = None
    name: str | None = None
    population: str | None = None
    layer: str | None = None

    @model_validator(mode="after")
    def _user_units(self) -> RegionConfig:
        if self.units is not None:
            if not self.key:
                raise ValueError("key: required when region.units is set (the column holding the unit key)")
            if self.variant != "communes":
                raise ValueError("variant: applies to the shipped AURA communes; remove it when region.units is set")
        else:
            extra = [k for k in ("key", "name", "population", "layer") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"{extra} are only read from a user units file; set region.units or remove them")
        return self


class DemandConfig(BaseModel):
    """Where the demand comes from and how it becomes a caseload.

    Attributes
    ----------
    source
        ``"synthetic"``: a seeded, population-proportional demand with the
        columns ``referrals`` (new referrals/year) and ``home_care`` (active
        home-care patients); ``"file"``: aggregated counts per commune or
        postcode read from ``file``.
    file, key, on_unknown
        For ``source = "file"``: the CSV, Excel (``.xlsx``) or Parquet path; whether its key
        column holds INSEE codes, postcodes or ``"auto"`` (detected); and
        whether codes that are no unit of the region are an ``"error"`` or
        only ``"report"``-ed (left out, listed in the notes and counted by
        department).
    columns
        For ``source = "file"``, which columns are demand. A table
        ``{role = spec}`` (TOML ``[demand.columns]``) names each demand
        column by its role, e.g. ``referrals = "Nb signalements *"``,
        ``home_care = "Patients HAD *"``, ``follow_up = "#5"``: the demand
        table's columns are then the roles (``referrals``, ...), so
        ``weights`` and ``rerun.follow_up`` keep working when next year's
        headers say 2026. A spec is a header (exact, else ignoring case,
        accents and repeated blanks), a glob pattern (``*``, ``?``,
        ``[...]``, case- and accent-insensitive) or ``"#N"`` (N-th column
        of the file, 1-based); it must match exactly one column. A list of
        headers (the older form) reads those columns under their own names.
        Default (no ``columns``): every numeric column of the file, under
        its own header (``weights`` then names headers).
    sheet
        For an Excel ``file`` (``.xlsx``): the sheet to read, by name, case
        ignored (default: the first visible sheet); ignored, with a note, for
        a CSV or Parquet file (so a re-run may be given this year's CSV).
    repair
        For ``source = "file"``: accept the obvious fixes, each listed in the
        run's notes (``--repair`` on the command line): 4-digit codes get
        their leading zero back, total and subtotal rows are dropped, Lyon
        given both as 69123 and as arrondissements is folded, old (merged or
        renamed) commune codes are added to their current commune, codes of
        departments outside the region are counted as excluded referrals.
        ``False`` (default): each is an error whose message says so.
    seed, referrals_per_year, home_care_patients
        For ``source = "synthetic"``: the random seed, the regional total of
        new referrals/year (> 0) and of active home-care patients (>= 0).
    weights
        ``workload = sum(weight x column)``, by demand column (the role
        names when ``columns`` is a table). The weight of an active
        home-care patient relative to one new referral per year is a
        planning assumption that each team should set for itself.
    """

    model_config = _STRICT

    source: Literal["synthetic", "file"] = "synthetic"
    file: Path | None = None
    key: Literal["auto", "insee", "postcode"] = "auto"
    columns: dict[str, str] | list[str] | None = None
    on_unknown: Literal["error", "report"] = "error"
    sheet: str | None = None
    repair: bool = False
    seed: int = 2026
    referrals_per_year: float = Field(1350, gt=0)
    home_care_patients: float = Field(600, ge=0)
    weights: dict[str, float] = Field(default_factory=lambda: {"referrals": 1.0, "home_care": 0.5}, min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> DemandConfig:
        if self.source == "file" and self.file is None:
            raise ValueError("file: required when demand.source = 'file' (path of the demand CSV)")
        if self.source == "synthetic" and self.file is not None:
            raise ValueError("file: only read when demand.source = 'file'; set source = 'file' or remove file")
        if self.source == "synthetic" and self.columns is not None:
            raise ValueError("columns: only used when demand.source = 'file'; remove it")
        if self.sheet is not None and self.source == "synthetic":
            raise ValueError("sheet: only used when demand.source = 'file' (an Excel workbook); remove it")
        if self.sheet is not None and not self.sheet.strip():
            raise ValueError("sheet: give the sheet's name, e.g. \"Données\", or remove the key")
        if self.columns is not None and len(self.columns) == 0:
            raise ValueError("columns: name at least one demand column")
        if isinstance(self.columns, dict):
            bad = [r for r in self.columns if not _ROLE.match(r)]
            if bad:
                raise ValueError(f"columns: role names {bad} must be lower-case words such as 'referrals', "
                                 "'home_care', 'follow_up' (letters, digits, '_')")
            empty = [r for r, spec in self.columns.items() if not spec.strip()]
            if empty:
                raise ValueError(f"columns: {empty} give no column; write a header, a pattern such as "
                                 "\"Nb signalements *\" or a position such as \"#3\"")
            zero = [r for r, spec in self.columns.items() if re.fullmatch(r"#\s*0*", spec.strip())]
            if zero:
                raise ValueError(f"columns: {zero}: positions start at #1 (the first column)")
        bad = {k: v for k, v in self.weights.items() if not v >= 0}
        if bad:
            raise ValueError(f"weights: weights must be >= 0 (got {bad})")
        if not any(v > 0 for v in self.weights.values()):
            raise ValueError("weights: at least one weight must be > 0, else every caseload is zero")
        known = list(self.columns) if self.columns is not None else (SYNTHETIC_COLUMNS if self.source == "synthetic" else None)
        if known is not None:
            unknown = [k for k in self.weights if k not in known]
            if unknown:
                raise ValueError(f"weights: {unknown} are not demand columns; use some of {list(known)}")
        return self

    @property
    def demand_columns(self) -> list[str]:
        """Names of the demand columns: synthetic ones, the roles or names of ``columns``, or the keys of ``weights``."""
        if self.source == "synthetic":
            return list(SYNTHETIC_COLUMNS)
        return list(self.columns) if self.columns is not None else list(self.weights)


class TravelConfig(BaseModel):
    """Travel times between units.

    Attributes
    ----------
    matrix
        An external travel-time matrix (minutes); ``None`` uses the built-in
        estimate.
    fallback_to_estimate
        When the matrix misses some pairs, fill them with the estimate
        (reported) instead of stopping with an error.
    """

    model_config = _STRICT

    matrix: Path | None = None
    fallback_to_estimate: bool = False


#: Each worker's territory per FTE is capped at this multiple of the region's mean per FTE when the
#: scenario sets neither ``model.territory_factor`` nor ``model.territory_per_fte``.
DEFAULT_TERRITORY_FACTOR = 2.5


class ModelConfig(BaseModel):
    """Balance and compactness model, and solver settings.

    Attributes
    ----------
    tolerance
        Each sector's caseload must lie within ``+-tolerance`` of its target
        (the FTE-proportional share of its group), ``0 < tolerance < 1``.
    group_tolerance
        The same for each group against its workers' FTE share of the
        region; defaults to ``tolerance / 2``.
    objective
        ``"pmedian"``: patient-weighted travel minutes from each sector's
        centre commune (chosen by the solver); ``"base"``: from each worker's
        base; ``"auto"`` (default): ``"base"`` when every worker has her own
        base (``base`` or coordinates) and no two share one, else
        ``"pmedian"`` (:meth:`resolve_objective`). Bases shared by several
        workers (e.g. everyone at the cancer centre) make ``"base"`` blind to
        compactness: every sector is then measured from the same point.
    backend
        ``"auto"`` (heuristic, then location-allocation with the allocation
        MIP, then new rounds; from a 120 s limit, the time they leave goes to
        ``"lns"``'s search), ``"heuristic"`` alone, ``"mip"``, or ``"lns"``
        (location-allocation, then re-optimising pairs and triples of sectors,
        and a Lagrangian lower bound so the plan reports a gap); see
        :mod:`solvers.engine`.
    time_limit_s
        Total solve budget, seconds (> 0): work seconds when ``deterministic``
        (about wall seconds of the development machine), else wall seconds.
    seed
        Random seed of the solver.
    deterministic
        ``true`` (default): the budget is counted in work (search passes, units
        examined, simplex iterations, MIP nodes) rather than on the clock, so the
        same scenario and seed give the same plan (the same ``sectors.csv``) on any
        machine and however busy it is; a wall-time safety cap (3 x the limit + 10 s)
        stops a search on an extremely slow machine, and the run's log then says the
        plan is not reproducible. ``false``: the budget is wall-clock seconds, as
        before (a busy machine explores less and may return another plan).
    sparse_weight
        Objective weight floor of each commune, as a fraction of the mean
        commune workload (>= 0); keeps sectors compact where demand is sparse.
    tie_break_slack
        When set (``0 <= slack < 1``), the sectors found then get shorter
        boundaries (:func:`solvers.cut_edges.tie_break`), the objective kept
        within ``(1 + slack) x`` its own (``0``: ties only; ``0.01``: at most
        1 % more travel). Contiguity, balance and locks are kept. The search
        gives up 10 % of the time limit (at most 10 s) for it. Default: off.
    tie_break_measure
        What the tie-break shortens: ``"boundary"`` (kilometres of border
        between sectors, from the commune polygons) or ``"cut_edges"``
        (pairs of neighbouring communes in different sectors).
    territory_measure
        How the territory each worker must know is measured, for its cap:
        ``"communes"`` (default: the number of units, a proxy for the local
        partners, town halls and services, she deals with), ``"area_km2"``
        (area in km²) or ``"none"`` (no cap). Counts of distinct EPCI or
        cantons are not offered: they are not sums over communes, so they do
        not fit the solvers' linear cap.
    territory_per_fte
        The cap per full-time worker in the measure's unit (communes or km²):
        each sector covers at most ``territory_per_fte x fte``. Not set: the
        cap per FTE is ``territory_factor`` times the region's mean per FTE.
    territory_factor
        The cap per FTE as a multiple of the region's mean per FTE (total
        territory / total FTE), ``>= 1``; default 2.5 when
        ``territory_per_fte`` is not set (:attr:`territory_multiple`). Give one
        of the two, not both.
    """

    model_config = _STRICT

    tolerance: float = Field(0.10, gt=0, lt=1)
    group_tolerance: float | None = Field(None, gt=0, lt=1)
    objective: Literal["auto", "pmedian", "base"] = "auto"
    backend: Literal["auto", "heuristic", "mip", "lns"] = "auto"
    time_limit_s: float = Field(30, gt=0)
    seed: int = 0
    deterministic: bool = True
    sparse_weight: float = Field(0.05, ge=0)
    tie_break_slack: float | None = Field(None, ge=0, lt=1)
    tie_break_measure: Literal["boundary", "cut_edges"] = "boundary"
    territory_measure: Literal["communes", "area_km2", "none"] = "communes"
    territory_per_fte: float | None = Field(None, gt=0)
    territory_factor: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_group_tolerance(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("group_tolerance") is None:
            tol = data.get("tolerance", 0.10)
            if isinstance(tol, (int, float)) and not isinstance(tol, bool) and 0 < tol < 1:
                data = {**data, "group_tolerance": tol / 2}
        return data

    @model_validator(mode="after")
    def _territory(self) -> ModelConfig:
        factor, per_fte = self.territory_factor, self.territory_per_fte
        if factor is not None and not (math.isfinite(factor) and factor >= 1):
            raise ValueError(f"territory_factor: must be >= 1 (got {factor}): below 1, the caps of all workers "
                             "add up to less than the region")
        if self.territory_measure == "none" and (factor is not None or per_fte is not None):
            key = "territory_per_fte" if per_fte is not None else "territory_factor"
            raise ValueError(f"{key}: has no effect with territory_measure = 'none'; remove it, or set "
                             "territory_measure to 'communes' or 'area_km2'")
        if factor is not None and per_fte is not None:
            raise ValueError("territory_factor: give territory_per_fte (a cap per FTE in communes or km²) or "
                             "territory_factor (a multiple of the region's mean per FTE), not both")
        return self

    @property
    def territory_multiple(self) -> float | None:
        """The multiple of the region's mean per FTE that caps each worker's territory per FTE:
        ``territory_factor``, or :data:`DEFAULT_TERRITORY_FACTOR` when neither it nor
        ``territory_per_fte`` is set; ``None`` with an absolute cap or without a cap."""
        if self.territory_measure == "none" or self.territory_per_fte is not None:
            return None
        return DEFAULT_TERRITORY_FACTOR if self.territory_factor is None else self.territory_factor

    def resolve_objective(self, team: TeamConfig) -> Literal["pmedian", "base"]:
        """The objective the solver gets: ``objective``, with ``"auto"`` read as ``"base"`` when
        every worker of ``team`` has her own base (a unit key or coordinates) and no two share
        one, else ``"pmedian"``."""
        if self.objective != "auto":
            return self.objective
        bases = [w.base if w.base is not None else (w.base_lon, w.base_lat) if w.base_lon is not None else None
                 for w in team.workers]
        own = all(b is not None for b in bases) and len(set(bases)) == len(bases)
        return "base" if own else "pmedian"


class MapConfig(BaseModel):
    """The HTML map.

    Attributes
    ----------
    tiles
        A Folium tile layer name or URL; ``None`` draws no background so the
        map works offline.
    simplify_m
        Polygon simplification tolerance, metres (>= 0; 0 keeps full detail).
    suppress_below
        For maps that leave the team: per-commune demand counts under this
        number show as ``"<N"`` (e.g. 5); ``None`` (default) shows them all.
    """

    model_config = _STRICT

    tiles: str | None = None
    simplify_m: float = Field(50, ge=0)
    suppress_below: int | None = Field(None, ge=1)


class OutputConfig(BaseModel):
    """Where run folders are written (one new time-stamped folder per run)."""

    model_config = _STRICT

    dir: Path = Path("sectorize-output")


class RerunConfig(BaseModel):
    """How ``sectorize rerun`` re-sectorizes from a previous plan (the annual re-run).

    Attributes
    ----------
    follow_up
        Demand column with the patients in active follow-up per commune: the
        patients who change referent when their commune changes sector (the
        disruption). With ``[demand.columns]`` a role name (give the file's
        column there, e.g. ``follow_up = "Suivis actifs *"``, so next year's
        headers need no change); else a header of the file. ``None``: the
        column (or role) ``follow_up`` if the demand has one, else the
        caseload (``workload``).
    move_penalty_min
        Price of moving one patient, in caseload-minutes of travel (the
        objective's unit): a commune moves only if the travel it saves is
        worth more than ``move_penalty_min x`` its patients in follow-up.
    commune_move_penalty_min
        Price of moving one commune whatever its patients (its worker and
        local partners change; the map changes), in caseload-minutes: it
        keeps communes without patients from moving for small travel gains.
    max_moved_pct, max_moved_patients
        Optional hard cap on the patients moved: a percentage of all patients
        in follow-up, or a number (the smaller applies when both are given).
    max_moved_communes
        Optional hard cap on the number of communes moved (the penalty then
        counts communes too).
    locked
        INSEE codes kept with their previous worker.
    handover
        ``{departing worker id: successor worker id}``: the successor takes
        over the departing worker's sector (id, colour and communes). A
        departing worker without successor has their communes shared out.
    transition
        ``"grandfathering"``: patients in follow-up keep their referent until
        their episode closes, only new referrals follow the new map;
        ``"immediate"``: every patient follows the new map at once.
    episode_months
        Mean length of a follow-up episode in months, for the transition
        simulation (a demand column ``episode_months`` overrides it per commune).
    frontier
        Percentages of patients moved to try for the trade-off table (each a
        separate solve), e.g. ``[0, 1, 2, 5]``; empty to skip.
    frontier_penalties
        Multipliers of ``move_penalty_min`` to try for the trade-off table
        (e.g. ``[0.25, 4]``: a quarter and four times the price of a move),
        each a separate solve; they show plans between the caps and the
        unconstrained re-solve.
    frontier_time_limit_s
        Time limit of each trade-off solve (seconds).
    """

    model_config = _STRICT

    follow_up: str | None = None
    move_penalty_min: float = Field(60.0, ge=0)
    commune_move_penalty_min: float = Field(30.0, ge=0)
    max_moved_pct: float | None = Field(None, ge=0, le=100)
    max_moved_patients: float | None = Field(None, ge=0)
    max_moved_communes: int | None = Field(None, ge=0)
    locked: list[str] = Field(default_factory=list)
    handover: dict[str, str] = Field(default_factory=dict)
    transition: Literal["grandfathering", "immediate"] = "grandfathering"
    episode_months: float = Field(9.0, gt=0)
    frontier: list[float] = Field(default_factory=lambda: [0.0, 1.0, 2.0, 5.0])
    frontier_penalties: list[float] = Field(default_factory=lambda: [0.25, 4.0])
    frontier_time_limit_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _frontier_range(self) -> RerunConfig:
        bad = [v for v in self.frontier if not 0 <= v <= 100]
        if bad:
            raise ValueError(f"frontier: percentages must be within 0..100, got {bad}")
        bad = [v for v in self.frontier_penalties if not v >= 0]
        if bad:
            raise ValueError(f"frontier_penalties: multipliers must be >= 0, got {bad}")
        return self


class LockConfig(BaseModel):
    """A commune whose referent is settled: ``[[locks]]`` in a scenario.

    Attributes
    ----------
    insee
        INSEE code of the commune (a unit key of the region, as text).
    worker
        Id of the worker (``team.workers[].id``) who keeps it; every plan of
        ``run``, ``rerun`` and ``plans edit --rebalance`` gives it to her (and
        so to her group).
    """

    model_config = _STRICT

    insee: str = Field(min_length=1)
    worker: str = Field(min_length=1)


class Scenario(BaseModel):
    """A complete, validated scenario.

    ``source`` is the file the scenario was loaded from (set by the loader,
    not a key of the file).
    """

    model_config = _STRICT

    name: str = Field("AURA default", min_length=1)
    description: str = ""
    region: RegionConfig = Field(default_factory=RegionConfig)
    demand: DemandConfig = Field(default_factory=DemandConfig)
    team: TeamConfig
    groups: GroupsConfig = Field(default_factory=GroupsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    travel: TravelConfig = Field(default_factory=TravelConfig)
    map: MapConfig = Field(default_factory=MapConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    rerun: RerunConfig = Field(default_factory=RerunConfig)
    locks: list[LockConfig] = Field(default_factory=list)
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _team_fits_groups(self) -> Scenario:
        workers = self.team.workers
        names = self.groups.names or []
        problems = []
        if self.groups.count > len(workers):
            problems.append(
                f"groups.count: {self.groups.count} groups need at least {self.groups.count} workers "
                f"(team has {len(workers)}); lower groups.count or add workers"
            )
        for i, w in enumerate(workers):
            if w.group is not None and w.group not in names:
                problems.append(f"team.workers[{i}].group: {w.group!r} is not a group name; use one of {names}")
        fixed = {w.group for w in workers if w.group is not None}
        free = sum(w.group is None for w in workers)
        empty = [g for g in names if g not in fixed]
        if fixed and len(empty) > free:
            problems.append(
                f"team.workers: groups {empty} would have no worker (total FTE 0): only {free} worker(s) "
                "have no fixed group; fix fewer workers or give those groups a worker"
            )
        ids = {w.id for w in workers}
        seen: dict[str, str] = {}
        for i, lock in enumerate(self.locks):
            if lock.worker not in ids:
                problems.append(f"locks[{i}].worker: {lock.worker!r} is not a worker of the team; use one of "
                                f"{sorted(ids)}")
            if seen.setdefault(lock.insee, lock.worker) != lock.worker:
                problems.append(f"locks[{i}].insee: {lock.insee} is locked to {seen[lock.insee]!r} and "
                                f"{lock.worker!r}; keep one")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # ------------------------------------------------------------------ variants

    def with_(self, changes: dict[str, Any] | None = None, /, **more: Any) -> Scenario:
        """A validated copy of the scenario with a few values changed.

        Keys are dotted paths (``"model.tolerance"``) or section names with a
        nested dictionary (``model={"tolerance": 0.05}``); nested dictionaries
        are merged into the section, everything else (lists such as
        ``team.workers``, dictionaries such as ``demand.weights``) is replaced
        whole. When ``model.tolerance`` changes and ``model.group_tolerance``
        is not given, a group tolerance that was half the old tolerance stays
        half the new one. ``source`` is kept.

        Raises
        ------
        ScenarioError
            Naming the key, e.g. ``scenario: model.tolerance: must be > 0
            and < 1 (got 1.5)`` or ``unknown key 'model.tolerence'``.

        Example
        -------
        >>> s = default_scenario().with_(**{"model.tolerance": 0.05, "groups.count": 3})
        >>> s.model.tolerance, s.model.group_tolerance, s.groups.names
        (0.05, 0.025, ['A', 'B', 'C'])
        """
        updates = {**(changes or {}), **more}
        data = self.model_dump(exclude={"source"}, exclude_none=True)
        for key, value in updates.items():
            if not isinstance(key, str) or not key:
                raise ScenarioError(f"scenario: key {key!r}: give a dotted key such as 'model.tolerance'")
            parts = key.split(".")
            target: Any = data
            model: Any = self
            for depth, part in enumerate(parts[:-1]):
                model = getattr(model, part, None) if isinstance(model, BaseModel) else None
                if not isinstance(model, BaseModel):
                    raise ScenarioError(
                        f"scenario: unknown key {key!r}: {'.'.join(parts[:depth + 1])!r} is not a section"
                    )
                target = target.setdefault(part, {})
            leaf = parts[-1]
            current = getattr(model, leaf, None) if isinstance(model, BaseModel) else None
            target[leaf] = _merged(target.get(leaf), current, value)
        if "groups" in data and "count" in _touched(updates, "groups") and "names" not in _touched(updates, "groups"):
            data["groups"].pop("names", None)  # a new count gets the default names A, B, C, ...
        model_changes = _touched(updates, "model")
        if "tolerance" in model_changes and "group_tolerance" not in model_changes:
            old = self.model
            if old.group_tolerance is not None and math.isclose(old.group_tolerance, old.tolerance / 2):
                data["model"].pop("group_tolerance", None)
        new = scenario_from_dict(data)
        return new.model_copy(update={"source": self.source}) if self.source is not None else new

    def with_worker(self, id: str, **fields: Any) -> Scenario:
        """A copy with worker ``id`` changed, or added when the team has no such worker.

        ``fields`` are :class:`WorkerConfig` keys (``name``, ``fte``,
        ``base``, ``base_lon``, ``base_lat``, ``group``); a new worker needs
        ``fte`` and gets ``name = id`` unless given.

        Example
        -------
        >>> s = default_scenario().with_worker("TS12", fte=0.8, base="38185")
        >>> len(s.team.workers), round(s.team.total_fte, 1)
        (12, 10.9)
        """
        workers = [w.model_dump(exclude_none=True) for w in self.team.workers]
        found = [w for w in workers if w["id"] == id]
        if found:
            found[0].update(fields)
            if "base" in fields:  # a key replaces coordinates, and the other way round
                found[0].pop("base_lon", None), found[0].pop("base_lat", None)
            if "base_lon" in fields or "base_lat" in fields:
                found[0].pop("base", None)
            workers = [{k: v for k, v in w.items() if v is not None} for w in workers]
        else:
            if "fte" not in fields:
                raise ScenarioError(f"team.workers: new worker {id!r} needs an fte (0 < fte <= 1)")
            workers.append({"id": id, "name": fields.pop("name", id), **fields})
        return self.with_(**{"team.workers": workers})

    def without_worker(self, id: str) -> Scenario:
        """A copy without worker ``id`` (their caseload is shared by the others at the next solve).

        Example
        -------
        >>> len(default_scenario().without_worker("TS05").team.workers)
        10
        """
        ids = [w.id for w in self.team.workers]
        if id not in ids:
            raise ScenarioError(f"team.workers: no worker {id!r}; the team has {ids}")
        workers = [w.model_dump(exclude_none=True) for w in self.team.workers if w.id != id]
        if not workers:
            raise ScenarioError(f"team.workers: {id!r} is the only worker; a team needs at least one")
        return self.with_(**{"team.workers": workers})


def _merged(old: Any, current: Any, value: Any) -> Any:
    """``value`` merged into ``old`` when both stand for a section (a sub-model), else ``value``."""
    if isinstance(current, BaseModel) and isinstance(value, dict):
        out = dict(old or {})
        for k, v in value.items():
            out[k] = _merged(out.get(k), getattr(current, k, None), v)
        return out
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    if isinstance(value, list):
        return [v.model_dump(exclude_none=True) if isinstance(v, BaseModel) else v for v in value]
    return value


def _touched(updates: dict[str, Any], section: str) -> set[str]:
    """Keys of ``section`` that ``updates`` sets (dotted or nested)."""
    keys: set[str] = set()
    for key, value in updates.items():
        if key == section and isinstance(value, dict):
            keys |= set(value)
        elif key.startswith(section + "."):
            keys.add(key[len(section) + 1:].split(".")[0])
    return keys


# --------------------------------------------------------------------------- loading


#: Hints added to the message of a missing key, by location.
_MISSING_HINTS = {("team",): "add a [team] table and one [[team.workers]] block per worker "
                             "(see examples/aura_default.toml)"}


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Read and validate a scenario TOML file.

    Parameters
    ----------
    path
        The TOML file; ``None`` loads the packaged default
        (``sectorize/defaults/aura_default.toml``). Relative paths inside the
        file are resolved against the file's folder.

    Raises
    ------
    ScenarioError
        On a missing file, a TOML syntax error (with its line) or an invalid
        key or value (with the dotted key).
    """
    if path is None:
        ref = resources.files("sectorize") / "defaults" / "aura_default.toml"
        with resources.as_file(ref) as real:
            return load_scenario(real)
    path = Path(path)
    return scenario_from_dict(read_toml(path, "scenario file"), source=path)


def merge_team_file(data: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """``data`` (a scenario as a dict) with the ``[team]`` of a team file, and its optional
    ``[rerun]`` and ``[groups]`` tables merged in (``--team`` of ``rerun`` and ``plans``).

    Raises :class:`ScenarioError` naming the file when it has no ``[team]`` or other tables.
    """
    team_file = read_toml(path, "--team file")
    unknown = set(team_file) - {"team", "rerun", "groups"}
    if "team" not in team_file or unknown:
        raise ScenarioError(f"--team {path}: expected a [team] table (and optionally [rerun], [groups]); "
                            f"found {sorted(team_file)}")
    out = {**data, "team": team_file["team"]}
    for table in ("rerun", "groups"):
        if table in team_file:
            out[table] = {**data.get(table, {}), **team_file[table]}
    return out


def read_toml(path: str | Path, what: str, error: type[ValueError] = ScenarioError) -> dict[str, Any]:
    """Parse a UTF-8 TOML file (a BOM is accepted); ``error`` names the file and what to do.

    ``what`` says what the file is, e.g. ``"scenario file"``, in the "not found" message.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found; check the path") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc}); save the file as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: TOML syntax error: {exc}") from None


def scenario_from_dict(d: dict[str, Any], source: str | Path | None = None) -> Scenario:
    """Validate a scenario given as a dictionary (the parsed TOML).

    Parameters
    ----------
    d
        Nested dictionary with the keys of :class:`Scenario` (``team`` is
        required).
    source
        The file ``d`` came from: named in error messages, and relative paths
        are resolved against its folder (else left relative to the current
        folder).
    """
    label = str(source) if source is not None else "scenario"
    if not isinstance(d, dict):
        raise ScenarioError(f"{label}: expected a table of keys, got {type(d).__name__}")
    if "source" in d:
        raise ScenarioError(f"{label}: unknown key 'source' (it is set by the loader to the file's own path); remove it")
    if source is not None:
        d = _resolve_paths(d, Path(source).parent)
    try:
        return Scenario(**d, source=Path(source) if source is not None else None)
    except ValidationError as exc:
        raise ScenarioError(explain_all(exc, label, Scenario, _MISSING_HINTS)) from None


def default_scenario() -> Scenario:
    """The packaged AURA default scenario (11 workers, 10.1 FTE, 2 groups)."""
    return load_scenario(None)


def _resolve_paths(d: dict[str, Any], base: Path) -> dict[str, Any]:
    out = dict(d)
    for table, key in PATH_KEYS:
        sub = out.get(table)
        if isinstance(sub, dict) and isinstance(sub.get(key), str):
            p = Path(sub[key]).expanduser()
            out[table] = {**sub, key: p if p.is_absolute() else (base / p).resolve()}
    return out


# --------------------------------------------------------------------------- writing


def dump_scenario(s: Scenario) -> str:
    """The scenario as TOML text, every effective value written out.

    Used to record the scenario a run used. Paths are written absolute so the
    file means the same files wherever it is reloaded from; ``None`` values
    are left out (they are the defaults). ``load_scenario`` of the written
    text gives back an equal scenario (except ``source``).

    Example
    -------
    >>> from sectorize.config.scenario import default_scenario, dump_scenario
    >>> print(dump_scenario(default_scenario()).splitlines()[2])
    name = "AURA default"
    """
    head = ["# Effective sectorize scenario", f"# loaded from: {s.source}" if s.source else "# built in memory"]
    return "\n".join(head + _table_lines(s, ())) + "\n"


def _table_lines(model: BaseModel, prefix: tuple[str, ...]) -> list[str]:
    lines: list[str] = []
    later: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if (name == "source" and not prefix) or value is None:
            continue
        path = prefix + (name,)
        if isinstance(value, BaseModel):
            later += ["", f"[{_key_path(path)}]"] + _table_lines(value, path)
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            for item in value:
                later += ["", f"[[{_key_path(path)}]]"] + _table_lines(item, path)
        else:
            lines.append(f"{_key(name)} = {_toml_value(value)}")
    return lines + later


def _key(name: str) -> str:
    bare = name and all(c.isascii() and (c.isalnum() or c in "_-") for c in name)
    return name if bare else _toml_string(name)


def _key_path(path: tuple[str, ...]) -> str:
    return ".".join(_key(p) for p in path)


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Path):
        return _toml_string(str(value.absolute()))
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
