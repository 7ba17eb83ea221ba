"""The plan registry: every accepted plan kept, immutable and versioned, in one SQLite file.

Managers re-run the sectorization every year; the routing service must send a
referral to the plan valid on the referral's date, and any old plan's tables
and map must be reproducible. The registry is a folder the user chooses with
one embedded database, ``plans.sqlite`` (standard library :mod:`sqlite3`, no
server):

- a plan is stored once with its sector, worker and postcode tables, its
  scenario text, solver facts and input hashes; its id ``P<YYYYmmdd>-<8 hex>``
  is the date the plan was computed and the start of its content hash, so
  adding the same content again returns the same id;
- plans are immutable: there is no update or delete (database triggers refuse
  them too);
- a plan is put in service by a **publication** (:meth:`Registry.publish`): an
  append-only record ``(seq, plan_id, effective_from, published_at, note)``.
  The plan in force on a day is the plan of the latest publication whose
  ``effective_from`` is on or before that day; two publications for the same
  day: the one published later wins (the earlier one is *superseded*, and
  stays on record). So a wrong plan is withdrawn by publishing the right one
  (often the previous plan again) from the day it should stop, and nothing is
  ever deleted. A plan is in force until the next day another plan takes over
  (derived, never stored; :meth:`Registry.periods` is the calendar,
  :meth:`Registry.publications` the history). An invalid plan is never
  published;
- commune polygons, populations and postcodes are stored once per geography
  (keyed by the hash of the unit codes and polygons), not once per plan;
- every ``add`` is one SQLite transaction: a crash leaves the registry as it
  was. The database runs in WAL mode with a busy timeout, so readers (the
  routing service) keep reading while a plan is being added.

Schema versions (``PRAGMA user_version``): 1 kept one ``effective_from`` per
plan; 2 adds the ``publications`` table. A schema-1 registry is upgraded when
it is opened (one transaction: each dated plan becomes one publication, with
the plan's note and the time it was added); a registry written by a newer
sectorize is refused, unchanged.

Only aggregated counts per commune are stored, never patient-level data.

Example
-------
>>> reg = Registry("sectorize-plans")                                   # doctest: +SKIP
>>> pid = reg.add("sectorize-output/20261201-115619",
...               effective_from=date(2027, 1, 1), note="2027 plan")   # doctest: +SKIP
>>> reg.effective_on(date(2027, 3, 15)).id == pid                     # doctest: +SKIP
True
>>> reg.publish(previous_id, "2027-02-01", note="2027 plan withdrawn")  # doctest: +SKIP
>>> reg.effective_on(date(2027, 3, 15)).id == previous_id            # doctest: +SKIP
True
>>> reg.get(pid).sectors.loc[0, ["insee", "sector", "worker_id"]].tolist()   # doctest: +SKIP
['01001', 'B2', 'TS04']
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from sectorize.store.run_folder import RUN_FILES, RunFolder, RunFolderError, read_table

if TYPE_CHECKING:  # pragma: no cover
    from sectorize.plan import Plan

#: File name of the database inside the registry folder.
DB_NAME = "plans.sqlite"

#: Version of the database layout written by this code (``PRAGMA user_version``):
#: 1 kept ``plans.effective_from``; 2 adds the append-only ``publications`` table.
SCHEMA_VERSION = 2

#: ``PRAGMA application_id`` marking a sectorize registry ("SECT" in ASCII).
APPLICATION_ID = 0x53454354

#: Seconds a writer or reader waits for a lock held by another process before giving up.
BUSY_TIMEOUT_S = 30.0

#: Columns of the sector table that are not demand measures.
SECTOR_FIXED_COLUMNS = ("insee", "name", "dep", "group", "sector", "worker_id", "worker_name",
                        "workload", "travel_min")

#: Input names whose hashes identify a plan's inputs (see :attr:`sectorize.plan.Plan.inputs`).
INPUT_NAMES = ("units", "demand", "travel", "team", "scenario")

_SCHEMA = """
CREATE TABLE geographies (
    units_hash TEXT PRIMARY KEY,           -- sha256 of unit codes + polygons (Plan.inputs['units'])
    vintage    TEXT NOT NULL,              -- e.g. 'COG 2026'
    communes   INTEGER NOT NULL,
    data       BLOB NOT NULL               -- Parquet: insee, population, postcodes ('|'), wkb (EPSG:4326)
);
CREATE TABLE plans (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of addition
    id             TEXT NOT NULL UNIQUE,
    content_hash   TEXT NOT NULL UNIQUE,
    created        TEXT NOT NULL,          -- when the plan was computed (ISO 8601 with offset)
    added          TEXT NOT NULL,          -- when it entered the registry
    name           TEXT NOT NULL,
    parent_id      TEXT REFERENCES plans(id),
    effective_from TEXT UNIQUE,            -- schema 1 only (kept for the record); from schema 2 always
                                           -- NULL: dates are publications
    vintage        TEXT NOT NULL,
    input_hash     TEXT NOT NULL,
    inputs         TEXT NOT NULL,          -- JSON {input: sha256}
    units_hash     TEXT NOT NULL REFERENCES geographies(units_hash),
    solve          TEXT NOT NULL,          -- JSON solver facts
    valid          INTEGER NOT NULL,
    violations     TEXT NOT NULL,          -- JSON list
    run_notes      TEXT NOT NULL,          -- JSON list
    demand_columns TEXT NOT NULL,          -- JSON list
    source         TEXT NOT NULL,
    sectorize_version TEXT NOT NULL,
    scenario_toml  TEXT NOT NULL,
    sectors        BLOB NOT NULL,          -- Parquet tables
    workers        BLOB NOT NULL,
    postcodes      BLOB NOT NULL,
    note           TEXT NOT NULL
);
CREATE TABLE assignments (                 -- the routing table in plain SQL: one row per plan and commune
    plan_id   TEXT NOT NULL REFERENCES plans(id),
    insee     TEXT NOT NULL,
    "group"   TEXT NOT NULL,
    sector    TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    PRIMARY KEY (plan_id, insee)
) WITHOUT ROWID;
CREATE TRIGGER plans_no_update BEFORE UPDATE ON plans
    BEGIN SELECT RAISE(ABORT, 'stored plans are immutable'); END;
CREATE TRIGGER plans_no_delete BEFORE DELETE ON plans
    BEGIN SELECT RAISE(ABORT, 'stored plans are immutable'); END;
CREATE TRIGGER assignments_no_update BEFORE UPDATE ON assignments
    BEGIN SELECT RAISE(ABORT, 'stored plans are immutable'); END;
CREATE TRIGGER assignments_no_delete BEFORE DELETE ON assignments
    BEGIN SELECT RAISE(ABORT, 'stored plans are immutable'); END;
CREATE TRIGGER geographies_no_update BEFORE UPDATE ON geographies
    BEGIN SELECT RAISE(ABORT, 'stored geographies are immutable'); END;
CREATE TRIGGER geographies_no_delete BEFORE DELETE ON geographies
    BEGIN SELECT RAISE(ABORT, 'stored geographies are immutable'); END;
"""

#: Added by schema 2 (created in new registries, and by the upgrade from schema 1).
_PUBLICATIONS = """
CREATE TABLE publications (                -- append-only: putting a plan in service from a day
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of publication (ties on a day: the latest wins)
    plan_id        TEXT NOT NULL REFERENCES plans(id),
    effective_from TEXT NOT NULL,          -- ISO date
    published_at   TEXT NOT NULL,          -- ISO 8601 with offset
    note           TEXT NOT NULL
);
CREATE INDEX publications_by_day ON publications (effective_from, seq);
CREATE TRIGGER publications_no_update BEFORE UPDATE ON publications
    BEGIN SELECT RAISE(ABORT, 'publications are append-only: publish again to change the plan in force'); END;
CREATE TRIGGER publications_no_delete BEFORE DELETE ON publications
    BEGIN SELECT RAISE(ABORT, 'publications are append-only: publish again to change the plan in force'); END;
CREATE TRIGGER publications_valid_only BEFORE INSERT ON publications
    WHEN (SELECT valid FROM plans WHERE id = NEW.plan_id) IS NOT 1
    BEGIN SELECT RAISE(ABORT, 'only a stored, valid plan can be published'); END
"""

_LIST_COLUMNS = ["id", "created", "name", "parent_id", "effective_from", "effective_to", "vintage",
                 "valid", "status", "backend", "communes", "sectors", "note", "publications"]

#: Columns of :meth:`Registry.publications`.
PUBLICATION_COLUMNS = ["seq", "plan_id", "effective_from", "published_at", "note", "superseded_by",
                       "in_force_from", "in_force_to", "status"]


class RegistryError(ValueError):
    """Invalid input to the registry (a bad run folder, a date conflict, ...); the message says what to do."""


class RegistrySchemaError(RegistryError):
    """The database was written by a newer sectorize, or is not a registry."""


class RegistryNotFoundError(FileNotFoundError):
    """No registry in the folder (opened with ``create=False``)."""


class PlanNotFoundError(KeyError):
    """No plan with that id; the message names the id and lists close ids."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else "plan not found"


@dataclass(frozen=True)
class StoredPlan:
    """One plan as kept in the registry.

    Attributes
    ----------
    id
        ``P<YYYYmmdd>-<8 hex>``: the day the plan was computed and the start of
        its content hash.
    created
        When the plan was computed, ISO 8601 with offset.
    name
        Scenario name.
    parent_id
        The plan this one re-sectorizes (annual re-run), or ``None``.
    effective_from, effective_to
        A period during which the plan is in force, derived from the
        publications (never stored): from :meth:`Registry.effective_on`, the
        period holding the day asked; from :meth:`Registry.get`, the plan's
        latest period. ``effective_to`` is the first day another plan takes
        over (``None`` while open-ended); both ``None`` when the plan is in
        force on no day (never published, or every publication superseded).
    periods
        Every ``(from, to)`` period the plan is in force, in date order
        (``to`` is ``None`` for the open-ended last one).
    publications
        The plan's publications (:class:`Publication`), in order of publication.
    vintage
        Geography vintage of the commune codes, e.g. ``"COG 2026"``.
    input_hash
        SHA-256 over the per-input hashes (see :func:`combined_input_hash`).
    inputs
        Per-input SHA-256: ``units, demand, travel, team, scenario``.
    solve
        Solver facts (``backend, status, objective, bound, gap, time_s``, ...).
    scenario_toml
        The effective scenario text, to re-run the plan.
    sectors
        Commune-level sector table, as ``sectors.csv`` (codes as ``str``;
        demand in its units, e.g. referrals/year; ``travel_min`` in minutes).
    workers
        One row per worker, as ``workers.csv``.
    postcodes
        One row per postcode, as ``postcodes.csv``.
    geometry
        Commune polygons indexed by ``insee`` (str), EPSG:4326.
    note
        Free text given when the plan was added.
    content_hash
        SHA-256 of the plan's content (tables, scenario, inputs, vintage).
    valid
        Whether every independent check passed when the plan was computed.
    violations, run_notes
        Check failures and notes of the run (data repairs, synthetic demand, ...).
    demand_columns
        The demand measures of the sector table (e.g. ``referrals``, ``home_care``).
    population, communes_postcodes
        Per commune (indexed by ``insee``): inhabitants, and the postcodes
        serving it (``"69001|69002"``); used to share postcodes between sectors.
    source
        Where the plan was added from (a run folder path, or ``"Plan object"``).
    """

    id: str
    created: str
    name: str
    parent_id: str | None
    effective_from: date | None
    effective_to: date | None
    vintage: str
    input_hash: str
    inputs: dict[str, str]
    solve: dict
    scenario_toml: str
    sectors: pd.DataFrame
    workers: pd.DataFrame
    postcodes: pd.DataFrame
    geometry: gpd.GeoSeries
    note: str
    content_hash: str = ""
    valid: bool = True
    violations: tuple[str, ...] = ()
    run_notes: tuple[str, ...] = ()
    demand_columns: tuple[str, ...] = ()
    population: pd.Series = field(default_factory=lambda: pd.Series(dtype="int64"))
    communes_postcodes: pd.Series = field(default_factory=lambda: pd.Series(dtype="str"))
    source: str = ""
    periods: tuple[tuple[date, date | None], ...] = ()
    publications: tuple[Publication, ...] = ()


@dataclass(frozen=True)
class Publication:
    """One publication: plan ``plan_id`` put in service from ``effective_from``.

    Attributes
    ----------
    seq
        Order of publication (1, 2, ...), unique in the registry.
    plan_id, effective_from, published_at, note
        As recorded (``published_at``: ISO 8601 with offset).
    superseded_by
        ``seq`` of a later publication for the same day, which decides that
        day instead; ``None`` when this one decides it.
    in_force_from, in_force_to
        The days this publication decides: from its ``effective_from`` to the
        next day another publication takes over (``None``: open-ended); both
        ``None`` when superseded.
    """

    seq: int
    plan_id: str
    effective_from: date
    published_at: str
    note: str
    superseded_by: int | None = None
    in_force_from: date | None = None
    in_force_to: date | None = None

    def status(self, today: date | None = None) -> str:
        """``"superseded by #k"``, ``"in force"``, ``"scheduled"`` (starts after ``today``) or ``"ended"``."""
        today = today or date.today()
        if self.superseded_by is not None:
            return f"superseded by #{self.superseded_by}"
        if self.in_force_from > today:
            return "scheduled"
        if self.in_force_to is not None and self.in_force_to <= today:
            return "ended"
        return "in force"


# --------------------------------------------------------------------------- hashing and tables


def combined_input_hash(inputs: dict[str, str]) -> str:
    """SHA-256 (hex) over the per-input hashes: lines ``name=hash`` sorted by name, ``\\n``-joined.

    >>> combined_input_hash({"units": "ab", "demand": "cd"})[:12]
    'cf0415fd2cee'
    """
    text = "\n".join(f"{k}={inputs[k]}" for k in sorted(inputs))
    return hashlib.sha256(text.encode()).hexdigest()


def units_hash(units: gpd.GeoDataFrame) -> str:
    """SHA-256 of unit codes and polygons, as :func:`sectorize.pipeline.inputs.input_hashes` computes ``units``."""
    h = hashlib.sha256()
    h.update("\n".join(map(str, units.index)).encode())
    h.update(b"".join(g.wkb for g in units.geometry))
    return h.hexdigest()


def _canonical(table: pd.DataFrame) -> bytes:
    return table.to_csv(index=False, sep=";", lineterminator="\n").encode()


def _content_hash(vintage: str, inputs: dict[str, str], scenario_toml: str, sectors: pd.DataFrame,
                  workers: pd.DataFrame, postcodes: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"vintage": vintage, "inputs": inputs}, sort_keys=True).encode())
    for part in (scenario_toml.encode(), _canonical(sectors), _canonical(workers), _canonical(postcodes)):
        h.update(b"\x00")
        h.update(part)
    return h.hexdigest()


def read_run_csv(source: str | Path | io.BytesIO, what: str) -> pd.DataFrame:
    """Read a run-folder CSV table (:func:`sectorize.store.run_folder.read_table`) as a :class:`RegistryError`."""
    try:
        return read_table(source, what)
    except RunFolderError as err:
        raise RegistryError(str(err)) from err


def _parquet(table: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _from_parquet(blob: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(blob))


@dataclass
class _Candidate:
    """A plan read from a Plan object or a run folder, ready to store."""

    created: str
    name: str
    vintage: str
    inputs: dict[str, str]
    solve: dict[str, Any]
    valid: bool
    violations: list[str]
    run_notes: list[str]
    scenario_toml: str
    sectors: pd.DataFrame
    workers: pd.DataFrame
    postcodes: pd.DataFrame
    source: str
    sectorize_version: str
    geography: Any  # callable returning the geography frame, evaluated only when not yet stored
    recheck: Any = None  # callable returning the independent checker's violations from the tables

    @property
    def demand_columns(self) -> list[str]:
        return [c for c in self.sectors.columns if c not in SECTOR_FIXED_COLUMNS]


def _geography_frame(units: gpd.GeoDataFrame) -> pd.DataFrame:
    """insee, population, postcodes ('|'-joined), wkb (EPSG:4326), sorted by insee."""
    units = units.to_crs(4326) if units.crs is not None else units
    for column in ("population", "postcodes"):
        if column not in units.columns:
            raise RegistryError(f"the units lack the column {column!r}; it is needed to share postcodes between sectors")
    frame = pd.DataFrame({
        "insee": units.index.astype(str),
        "population": units["population"].astype("int64").to_numpy(),
        "postcodes": ["|".join(str(p) for p in (v if v is not None else [])) for v in units["postcodes"]],
        "wkb": [g.wkb for g in units.geometry],
    })
    return frame.sort_values("insee", kind="stable").reset_index(drop=True)


def _from_plan(plan: Plan) -> _Candidate:
    from sectorize import __version__
    from sectorize.store.export import _rounded, postcode_table, sector_table, worker_table, write_csv
    from sectorize.report.kpi import compute_kpis, demand_columns
    from sectorize.config.scenario import dump_scenario

    kpis = compute_kpis(plan)
    demand = demand_columns(plan)

    def as_written(table: pd.DataFrame, what: str) -> pd.DataFrame:
        # the same bytes as the run folder's file, read back the same way: a plan and
        # its run folder give identical stored tables (and the same content hash)
        buffer = io.BytesIO()
        write_csv(table, buffer)
        buffer.seek(0)
        return read_run_csv(buffer, what)

    scenario_toml = dump_scenario(plan.scenario)
    inputs = dict(plan.inputs)
    if "units" not in inputs:
        inputs["units"] = units_hash(plan.units)
    inputs.setdefault("scenario", hashlib.sha256(scenario_toml.encode()).hexdigest())
    candidate = _Candidate(
        created=datetime.now().astimezone().isoformat(timespec="seconds"),
        name=plan.scenario.name, vintage=plan.vintage, inputs=inputs, solve=kpis["solve"],
        valid=plan.valid, violations=list(plan.violations), run_notes=list(plan.notes),
        scenario_toml=scenario_toml,
        sectors=as_written(_rounded(sector_table(plan), demand), "sectors table"),
        workers=as_written(_rounded(worker_table(plan, kpis), demand), "workers table"),
        postcodes=as_written(postcode_table(plan), "postcodes table"),
        source="Plan object", sectorize_version=__version__,
        geography=lambda: _geography_frame(plan.units),
    )
    candidate.recheck = lambda: _recheck(plan.scenario, plan.units, plan.graph, candidate)
    return candidate


def _from_folder(folder: Path) -> _Candidate:
    try:
        run = RunFolder.open(folder)
    except FileNotFoundError:
        raise RegistryError(f"{folder}: no such run folder; give the folder written by `sectorize run`") from None
    missing = run.missing(RUN_FILES)
    if missing:
        raise RegistryError(
            f"{folder}: not a complete run folder, missing {', '.join(missing)}; "
            "give a folder written by `sectorize run` (it holds run.json, scenario.toml, sectors.csv, ...)"
        )
    try:
        facts = run.facts()
        sectors = run.table("sectors.csv", required=("insee", "name", "group", "sector", "worker_id", "worker_name"))
        workers, postcodes = run.table("workers.csv"), run.table("postcodes.csv")
    except RunFolderError as err:
        raise RegistryError(str(err)) from err
    lacking = [k for k in ("created", "scenario", "valid", "vintage", "inputs", "solve") if k not in facts]
    if not lacking and "units" not in (facts["inputs"] or {}):
        lacking = ["inputs.units"]
    if lacking:
        raise RegistryError(
            f"{folder / 'run.json'}: lacks {', '.join(lacking)}; the run was written by an older sectorize, "
            "re-run it with `sectorize run --config scenario.toml`"
        )
    scenario_toml = run.scenario_toml()

    loaded: dict[str, Any] = {}

    def region():
        # the units the plan was computed on, reloaded from its scenario (once)
        from sectorize.pipeline.inputs import load_region
        from sectorize.config.scenario import ScenarioError, load_scenario

        if "region" not in loaded:
            try:
                loaded["scenario"] = load_scenario(folder / "scenario.toml")
                loaded["region"] = load_region(loaded["scenario"])
            except (ScenarioError, FileNotFoundError, ValueError) as err:
                raise RegistryError(
                    f"{folder}: cannot reload the units of this run ({err}); restore the units file named in "
                    "scenario.toml, or add the plan from Python with Registry.add(plan)"
                ) from err
        return loaded["region"]

    def geography() -> pd.DataFrame:
        # the polygons, populations and postcodes of the units the plan was computed on,
        # checked against the hash the run recorded
        got = units_hash(region().units)
        if got != facts["inputs"]["units"]:
            raise RegistryError(
                f"{folder}: the units named in scenario.toml have changed since the run (hash {got[:12]} "
                f"instead of {facts['inputs']['units'][:12]} in run.json); restore the original units file "
                "or add the plan from Python with Registry.add(plan)"
            )
        return _geography_frame(region().units)

    def recheck() -> list[str]:
        geography()  # the units must be those of the run
        return _recheck(loaded["scenario"], region().units, region().graph, candidate)

    candidate = _Candidate(
        created=str(facts["created"]), name=str(facts["scenario"]), vintage=str(facts["vintage"]),
        inputs={str(k): str(v) for k, v in facts["inputs"].items()}, solve=dict(facts["solve"]),
        valid=bool(facts["valid"]), violations=list(facts.get("violations", [])),
        run_notes=list(facts.get("notes", [])), scenario_toml=scenario_toml, sectors=sectors,
        workers=workers, postcodes=postcodes,
        source=str(folder.resolve()), sectorize_version=str(facts.get("sectorize_version", "")),
        geography=geography, recheck=recheck,
    )
    return candidate


def _recheck(scenario, units: gpd.GeoDataFrame, graph, candidate: _Candidate) -> list[str]:
    """The independent checker's verdict on the candidate's tables, laid on the region's units
    (:func:`sectorize.pipeline.recheck.recheck`), whatever the run said about itself."""
    from sectorize.pipeline.recheck import recheck

    return recheck(scenario, units, graph, candidate.sectors, candidate.workers)[1]


def _plan_id(created: str, content_hash: str, digits: int = 8) -> str:
    try:
        day = datetime.fromisoformat(created).strftime("%Y%m%d")
    except ValueError:
        day = datetime.now().strftime("%Y%m%d")
    return f"P{day}-{content_hash[:digits]}"


def _as_date(value: date | str | None, what: str) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    try:
        return date.fromisoformat(str(value))
    except ValueError as err:
        raise RegistryError(f"{what}: {value!r} is not a date; write it YYYY-MM-DD, e.g. 2027-01-01") from err


def _date_or_none(text: Any) -> date | None:
    return date.fromisoformat(text) if isinstance(text, str) and text else None


def derive_publications(rows: list[tuple[int, str, str, str, str]]) -> list[Publication]:
    """The publications with what each decides, from the rows ``(seq, plan_id, effective_from,
    published_at, note)`` of the ``publications`` table.

    The plan in force on a day is that of the latest publication with
    ``effective_from`` on or before the day; among publications for the same
    ``effective_from`` the latest published (highest ``seq``) decides and the
    others are superseded.

    >>> pubs = derive_publications([(1, "A", "2026-01-01", "", ""), (2, "B", "2027-01-01", "", ""),
    ...                             (3, "A", "2027-03-01", "", "B withdrawn")])
    >>> [(p.plan_id, str(p.in_force_from), str(p.in_force_to)) for p in pubs]
    [('A', '2026-01-01', '2027-01-01'), ('B', '2027-01-01', '2027-03-01'), ('A', '2027-03-01', 'None')]
    >>> derive_publications([(1, "A", "2027-01-01", "", ""), (2, "B", "2027-01-01", "", "")])[0].superseded_by
    2
    """
    rows = sorted(rows, key=lambda r: r[0])
    winner: dict[str, int] = {}
    for seq, _, day, _, _ in rows:
        winner[day] = seq  # in order of publication: the last one for a day wins
    days = sorted(winner)
    following = dict(zip(days, [*days[1:], None]))
    out = []
    for seq, plan_id, day, published_at, note in rows:
        decides = winner[day] == seq
        out.append(Publication(
            seq=int(seq), plan_id=str(plan_id), effective_from=date.fromisoformat(day),
            published_at=str(published_at), note=str(note or ""),
            superseded_by=None if decides else winner[day],
            in_force_from=date.fromisoformat(day) if decides else None,
            in_force_to=_date_or_none(following[day]) if decides else None,
        ))
    return out


def periods_in_force(publications: list[Publication]) -> dict[str, list[tuple[date, date | None]]]:
    """Per plan id, the ``(from, to)`` periods it is in force (consecutive days of the same plan
    merged; ``to`` exclusive, ``None`` for the open-ended last period), in date order."""
    deciding = sorted((p for p in publications if p.superseded_by is None), key=lambda p: p.effective_from)
    periods: dict[str, list[tuple[date, date | None]]] = {}
    previous: str | None = None
    for p in deciding:
        spans = periods.setdefault(p.plan_id, [])
        if p.plan_id == previous:  # published again while in force: the same period goes on
            spans[-1] = (spans[-1][0], p.in_force_to)
        else:
            spans.append((p.in_force_from, p.in_force_to))
        previous = p.plan_id
    return periods


# --------------------------------------------------------------------------- the registry


class Registry:
    """The plans of a team, kept in ``folder/plans.sqlite``.

    Parameters
    ----------
    folder
        The registry folder (created with the database when ``create``).
    create
        When false, a folder without a registry raises
        :class:`RegistryNotFoundError` instead of creating one.

    Raises
    ------
    RegistrySchemaError
        The database was written by a newer sectorize, or is not a registry.
    """

    def __init__(self, folder: str | Path, *, create: bool = True) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        if not self.path.is_file():
            if not create:
                raise RegistryNotFoundError(
                    f"{self.folder}: no plan registry here (no {DB_NAME}); give the folder with --registry, "
                    "or add a first plan with `sectorize plans add RUN_FOLDER`"
                )
            self.folder.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn:
            self._prepare(conn)

    # -- connection and layout

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        try:
            app, version = conn.execute("PRAGMA application_id").fetchone()[0], conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise RegistrySchemaError(f"{self.path}: not an SQLite database ({err}); point --registry at a plan registry folder") from err
        if app == 0 and version == 0:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                # another process may have created the layout while we waited for the lock
                if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                    if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                        raise RegistrySchemaError(
                            f"{self.path}: an SQLite file that is not a sectorize plan registry; "
                            "choose another --registry folder"
                        )
                    for statement in (_SCHEMA + _PUBLICATIONS).split(";\n"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return
        if app != APPLICATION_ID:
            raise RegistrySchemaError(
                f"{self.path}: an SQLite file that is not a sectorize plan registry; choose another --registry folder"
            )
        if version > SCHEMA_VERSION:
            raise RegistrySchemaError(
                f"{self.path}: written by a newer sectorize (registry schema {version}, this version reads up to "
                f"{SCHEMA_VERSION}); upgrade sectorize to read it. The registry was not changed."
            )
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        if version < SCHEMA_VERSION:
            self._upgrade(conn)

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        """Bring an older registry to :data:`SCHEMA_VERSION`, in one transaction (all or nothing).

        1 -> 2: the ``publications`` table; each plan of schema 1 with an
        ``effective_from`` becomes one publication from that day, published
        when the plan was added, with the plan's note. What is in force on
        every day is unchanged (schema 1 allowed one plan per day).
        """
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            raise RegistrySchemaError(
                f"{self.path}: registry schema 1 must be upgraded to schema {SCHEMA_VERSION} before use, and "
                f"it cannot be written here ({err}); open it once with write access"
            ) from err
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have upgraded it
            if version == 1:
                for statement in _PUBLICATIONS.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO publications (plan_id, effective_from, published_at, note) "
                    "SELECT id, effective_from, added, note FROM plans "
                    "WHERE effective_from IS NOT NULL AND valid = 1 ORDER BY seq"
                )
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- writing

    def add(self, source: Plan | str | Path, *, effective_from: date | str | None = None,
            parent_id: str | None = None, note: str = "", allow_invalid: bool = False) -> str:
        """Store a plan and return its id; the same content added again returns the existing id.

        Parameters
        ----------
        source
            A :class:`~sectorize.plan.Plan`, or a run folder written by
            ``sectorize run`` (``run.json``, ``scenario.toml``, ``sectors.csv``,
            ``workers.csv``, ``postcodes.csv``).
        effective_from
            Publish the plan from that day (``date`` or ``"YYYY-MM-DD"``) in the
            same transaction: ``add`` + :meth:`publish`. A day already taken by
            another plan is taken over (the earlier publication is superseded
            and stays on record). ``None``: stored, not in service. For content
            already stored, the day must be one it is already published from:
            to publish it from another day, use :meth:`publish`.
        parent_id
            The stored plan this one re-sectorizes (e.g. last year's plan).
        note
            Free text (who accepted the plan, why).
        allow_invalid
            Store a plan whose independent checks failed (refused by default).

        Raises
        ------
        RegistryError
            Incomplete run folder, invalid plan (or an invalid plan given a
            date), or the same content already stored with another parent or
            note, or not published from ``effective_from``.
        PlanNotFoundError
            ``parent_id`` is not in the registry.

        Example
        -------
        >>> Registry("plans").add(plan, effective_from="2027-01-01")      # doctest: +SKIP
        'P20261201-1a2b3c4d'
        """
        effective = _as_date(effective_from, "effective_from")
        candidate = _from_plan(source) if not isinstance(source, (str, Path)) else _from_folder(Path(source))
        where = candidate.source
        # the plan is checked again from its tables, whatever the run folder says about itself
        violations = candidate.recheck()
        candidate.valid, candidate.violations = not violations, violations
        if violations and not allow_invalid:
            shown = "; ".join(violations[:5]) + (f"; ... ({len(violations)} in all)" if len(violations) > 5 else "")
            raise RegistryError(
                f"{where}: the plan fails the independent checks ({shown}); fix the plan or the scenario and "
                "re-run, or pass allow_invalid=True (CLI: --allow-invalid) to store it marked invalid (it is "
                "then never put in service nor routed)"
            )
        if violations and effective is not None:
            raise RegistryError(
                f"{where}: an invalid plan cannot be put in service (effective_from {effective.isoformat()}); "
                "store it without a date to keep it for the record"
            )
        content = _content_hash(candidate.vintage, candidate.inputs, candidate.scenario_toml,
                                candidate.sectors, candidate.workers, candidate.postcodes)
        geo_key = candidate.inputs["units"]

        with closing(self._connect()) as conn:
            has_geography = conn.execute("SELECT 1 FROM geographies WHERE units_hash = ?", (geo_key,)).fetchone()
            geography = None if has_geography else candidate.geography()
            if geography is not None:
                self._check_same_communes(candidate, set(geography["insee"]), where)
            conn.execute("BEGIN IMMEDIATE")
            try:
                plan_id = self._write(conn, candidate, content, geography, effective, parent_id, note)
                _before_commit(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return plan_id

    @staticmethod
    def _check_same_communes(candidate: _Candidate, geography: set[str], where: str) -> None:
        communes = set(candidate.sectors["insee"])
        if communes != geography:
            extra, lost = sorted(communes - geography)[:5], sorted(geography - communes)[:5]
            raise RegistryError(
                f"{where}: the sector table and the units of the plan differ (in the table only: {extra}, "
                f"in the units only: {lost}); the run folder is damaged"
            )

    def _write(self, conn: sqlite3.Connection, c: _Candidate, content: str, geography: pd.DataFrame | None,
               effective: date | None, parent_id: str | None, note: str) -> str:
        # stays whole: one SQLite transaction (the duplicate check, then the inserts it guards)
        existing = conn.execute(
            "SELECT id, parent_id, note FROM plans WHERE content_hash = ?", (content,)
        ).fetchone()
        if existing is not None:
            pid, stored_parent, stored_note = existing
            asked = {"parent_id": parent_id, "note": note or None}
            stored = {"parent_id": stored_parent, "note": stored_note or None}
            conflicts = [k for k, v in asked.items() if v is not None and v != stored[k]]
            days = sorted({p.effective_from.isoformat() for p in self._read_publications(conn)
                           if p.plan_id == pid and p.superseded_by is None})
            published = f"published from {', '.join(days)}" if days else "not in service on any day"
            if effective is not None and effective.isoformat() not in days:
                raise RegistryError(
                    f"{c.source}: this plan is already stored as {pid} ({published}); to put it in service from "
                    f"{effective.isoformat()}, publish it: `sectorize plans publish {pid} --effective-from "
                    f"{effective.isoformat()}` (Registry.publish)"
                )
            if conflicts:
                details = ", ".join(f"{k} {stored[k]!r} (asked {asked[k]!r})" for k in conflicts)
                raise RegistryError(
                    f"{c.source}: this plan is already stored as {pid} with {details} ({published}); stored plans "
                    "are immutable: re-run the scenario to make a new plan, or use the stored one as it is"
                )
            return pid
        if parent_id is not None and conn.execute("SELECT 1 FROM plans WHERE id = ?", (parent_id,)).fetchone() is None:
            raise PlanNotFoundError(self._not_found_message(conn, parent_id, "parent plan"))
        if geography is not None and conn.execute(
            "SELECT 1 FROM geographies WHERE units_hash = ?", (c.inputs["units"],)
        ).fetchone() is None:  # (another process may have stored it since we looked)
            conn.execute(
                "INSERT INTO geographies (units_hash, vintage, communes, data) VALUES (?, ?, ?, ?)",
                (c.inputs["units"], c.vintage, len(geography), _parquet(geography)),
            )
        elif geography is None:
            (stored,) = conn.execute("SELECT data FROM geographies WHERE units_hash = ?", (c.inputs["units"],)).fetchone()
            self._check_same_communes(c, set(_from_parquet(stored)["insee"]), c.source)
        plan_id = _plan_id(c.created, content)
        digits = 8
        while conn.execute("SELECT 1 FROM plans WHERE id = ?", (plan_id,)).fetchone() is not None:
            digits += 4  # same day and same first hex digits, different content: lengthen the id
            plan_id = _plan_id(c.created, content, digits)
        conn.execute(
            """INSERT INTO plans (id, content_hash, created, added, name, parent_id, effective_from, vintage,
                   input_hash, inputs, units_hash, solve, valid, violations, run_notes, demand_columns, source,
                   sectorize_version, scenario_toml, sectors, workers, postcodes, note)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                plan_id, content, c.created, datetime.now().astimezone().isoformat(timespec="seconds"), c.name,
                parent_id, None, c.vintage,
                combined_input_hash(c.inputs), json.dumps(c.inputs, sort_keys=True), c.inputs["units"],
                json.dumps(_json_safe(c.solve), allow_nan=False), int(c.valid), json.dumps(c.violations),
                json.dumps(c.run_notes, ensure_ascii=False), json.dumps(c.demand_columns), c.source,
                c.sectorize_version, c.scenario_toml, _parquet(c.sectors), _parquet(c.workers),
                _parquet(c.postcodes), note,
            ),
        )
        rows = c.sectors[["insee", "group", "sector", "worker_id"]].astype(str).itertuples(index=False, name=None)
        conn.executemany(
            'INSERT INTO assignments (plan_id, insee, "group", sector, worker_id) VALUES (?, ?, ?, ?, ?)',
            ((plan_id, *row) for row in rows),
        )
        if effective is not None:
            self._insert_publication(conn, plan_id, effective, note)
        return plan_id

    @staticmethod
    def _insert_publication(conn: sqlite3.Connection, plan_id: str, effective: date, note: str) -> int:
        cursor = conn.execute(
            "INSERT INTO publications (plan_id, effective_from, published_at, note) VALUES (?, ?, ?, ?)",
            (plan_id, effective.isoformat(), datetime.now().astimezone().isoformat(timespec="seconds"), note or ""),
        )
        return int(cursor.lastrowid)

    def publish(self, plan_id: str, effective_from: date | str, *, note: str = "") -> Publication:
        """Put a stored plan in service from ``effective_from``; return the publication.

        The plan in force on a day is that of the latest publication with
        ``effective_from`` on or before it (:meth:`effective_on`). Publishing
        an older plan from a new day therefore rolls back to it from that
        day; publishing on a day another publication already starts on
        supersedes it (both stay on record, :meth:`publications`). Publishing
        the plan that already decides that very day records nothing and
        returns the existing publication. Nothing is ever deleted.

        Parameters
        ----------
        plan_id
            A stored, valid plan.
        effective_from
            First day (``date`` or ``"YYYY-MM-DD"``); a past day changes the
            plan in force from then on, for lookups made from now on.
        note
            Who decided, why (e.g. ``"CODIR 2027-02-10: 2027 plan withdrawn"``).

        Raises
        ------
        PlanNotFoundError
            No such plan (the message lists close ids).
        RegistryError
            Not a date, or the plan was stored invalid (``allow_invalid``):
            an invalid plan is never published.

        Example
        -------
        >>> reg.publish("P20251201-0a1b2c3d", "2027-03-01", note="back to the 2026 plan")  # doctest: +SKIP
        Publication(seq=3, plan_id='P20251201-0a1b2c3d', effective_from=datetime.date(2027, 3, 1), ...)
        """
        if effective_from is None:
            raise RegistryError("effective_from: give the first day the plan is in force, YYYY-MM-DD")
        effective = _as_date(effective_from, "effective_from")
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT valid, violations FROM plans WHERE id = ?", (plan_id,)).fetchone()
                if row is None:
                    raise PlanNotFoundError(self._not_found_message(conn, plan_id))
                if not row[0]:
                    reasons = json.loads(row[1])
                    shown = "; ".join(reasons[:3]) + (f"; ... ({len(reasons)} in all)" if len(reasons) > 3 else "")
                    raise RegistryError(
                        f"plan {plan_id} is stored as invalid ({shown}); an invalid plan is never published: "
                        "publish a valid plan (fix this one with `sectorize plans edit`, or re-run it)"
                    )
                current = [p for p in self._read_publications(conn)
                           if p.effective_from == effective and p.superseded_by is None]
                if current and current[0].plan_id == plan_id:
                    seq = current[0].seq  # already decides that day: nothing to record
                else:
                    seq = self._insert_publication(conn, plan_id, effective, note)
                    _before_commit(conn)
                publications = self._read_publications(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return next(p for p in publications if p.seq == seq)

    @staticmethod
    def _read_publications(conn: sqlite3.Connection) -> list[Publication]:
        rows = conn.execute(
            "SELECT seq, plan_id, effective_from, published_at, note FROM publications ORDER BY seq").fetchall()
        return derive_publications(rows)

    # -- reading

    def _ids(self, conn: sqlite3.Connection) -> list[str]:
        return [r[0] for r in conn.execute("SELECT id FROM plans ORDER BY seq")]

    def _not_found_message(self, conn: sqlite3.Connection, plan_id: str, what: str = "plan") -> str:
        ids = self._ids(conn)
        close = [i for i in ids if i.startswith(str(plan_id)) or str(plan_id) in i]
        close += [i for i in difflib.get_close_matches(str(plan_id), ids, n=5, cutoff=0.6) if i not in close]
        hint = f"close ids: {', '.join(close[:5])}" if close else (
            f"stored ids: {', '.join(ids[-5:])}" if ids else "the registry is empty")
        return f"{what} {plan_id!r} not found in {self.path}; {hint} (see `sectorize plans list`)"

    def get(self, plan_id: str, *, on: date | str | None = None) -> StoredPlan:
        """The stored plan ``plan_id`` with its tables, polygons and publications.

        ``effective_from``/``effective_to`` are the period in force holding the
        day ``on`` when given and the plan is in force that day, else the
        plan's latest period (see :class:`StoredPlan`).

        Raises
        ------
        PlanNotFoundError
            No such id; the message lists close ids.
        """
        day = _as_date(on, "on")
        with closing(self._connect()) as conn:
            conn.execute("BEGIN")  # one consistent snapshot for the plan and its geography
            try:
                cursor = conn.execute("SELECT * FROM plans WHERE id = ?", (plan_id,))
                row = cursor.fetchone()
                if row is None:
                    raise PlanNotFoundError(self._not_found_message(conn, plan_id))
                record = dict(zip([d[0] for d in cursor.description], row))
                (data,) = conn.execute("SELECT data FROM geographies WHERE units_hash = ?",
                                       (record["units_hash"],)).fetchone()
                publications = self._read_publications(conn)
            finally:
                conn.execute("COMMIT")
        periods = periods_in_force(publications).get(plan_id, [])
        holding = [p for p in periods if day is not None and p[0] <= day and (p[1] is None or day < p[1])]
        period = holding[0] if holding else (periods[-1] if periods else (None, None))
        geo = _from_parquet(data).set_index("insee")
        geo.index = geo.index.astype(str)
        geometry = gpd.GeoSeries.from_wkb(geo["wkb"].to_numpy(), index=geo.index, crs="EPSG:4326", name="geometry")
        return StoredPlan(
            id=record["id"], created=record["created"], name=record["name"], parent_id=record["parent_id"],
            effective_from=period[0], effective_to=period[1],
            vintage=record["vintage"], input_hash=record["input_hash"], inputs=json.loads(record["inputs"]),
            solve=json.loads(record["solve"]), scenario_toml=record["scenario_toml"],
            sectors=_from_parquet(record["sectors"]), workers=_from_parquet(record["workers"]),
            postcodes=_from_parquet(record["postcodes"]), geometry=geometry, note=record["note"],
            content_hash=record["content_hash"], valid=bool(record["valid"]),
            violations=tuple(json.loads(record["violations"])), run_notes=tuple(json.loads(record["run_notes"])),
            demand_columns=tuple(json.loads(record["demand_columns"])),
            population=geo["population"].rename("population"),
            communes_postcodes=geo["postcodes"].rename("postcodes"), source=record["source"],
            periods=tuple(periods), publications=tuple(p for p in publications if p.plan_id == plan_id),
        )

    def list(self) -> pd.DataFrame:
        """One row per plan in order of addition, without the big tables.

        Columns: ``id, created, name, parent_id, effective_from,
        effective_to`` (dates: the plan's latest period in force, ``None``
        when in force on no day), ``vintage, valid, status, backend,
        communes, sectors, note, publications`` (how many times the plan
        was published; the history is :meth:`publications`).
        """
        with closing(self._connect()) as conn:
            conn.execute("BEGIN")
            try:
                rows = conn.execute(
                    """SELECT p.id, p.created, p.name, p.parent_id, NULL, p.vintage, p.valid,
                              json_extract(p.solve, '$.status'), json_extract(p.solve, '$.backend'),
                              (SELECT count(*) FROM assignments a WHERE a.plan_id = p.id),
                              (SELECT count(DISTINCT sector) FROM assignments a WHERE a.plan_id = p.id), p.note
                       FROM plans p ORDER BY p.seq"""
                ).fetchall()
                publications = self._read_publications(conn)
            finally:
                conn.execute("COMMIT")
        periods = periods_in_force(publications)
        count = pd.Series([p.plan_id for p in publications], dtype=object).value_counts()
        latest = {pid: spans[-1] for pid, spans in periods.items()}
        table = pd.DataFrame(
            [(*r[:4], *latest.get(r[0], (None, None)), *r[5:], int(count.get(r[0], 0))) for r in rows],
            columns=_LIST_COLUMNS,
        )
        for column in ("effective_from", "effective_to"):
            table[column] = pd.Series(list(table[column]), index=table.index, dtype=object)
        table["valid"] = table["valid"].astype(bool)
        return table

    def effective_on(self, day: date | str) -> StoredPlan | None:
        """The plan in force on ``day``, ``None`` before the first publication.

        That is the plan of the latest publication whose ``effective_from`` is
        on or before ``day``; among publications for the same day, the latest
        published. Its ``effective_from``/``effective_to`` are the period in
        force holding ``day``. The routing service follows this
        (:meth:`sectorize.serve.routing.Router.from_registry`).
        """
        day = _as_date(day, "day")
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT plan_id FROM publications WHERE effective_from <= ? "
                "ORDER BY effective_from DESC, seq DESC LIMIT 1", (day.isoformat(),),
            ).fetchone()
        return self.get(row[0], on=day) if row else None

    def periods(self) -> pd.DataFrame:
        """The calendar: one row per period in force, in date order.

        Columns ``id`` (plan), ``effective_from``, ``effective_to`` (dates;
        ``effective_to`` exclusive, ``None`` for the open-ended last period),
        ``valid`` (always true: only valid plans are published),
        ``publication`` (``seq`` of the publication that starts the period).
        A plan in force twice (e.g. rolled back to) has two rows; the plan in
        force on a day is the row with the latest ``effective_from`` on or
        before it, as :meth:`effective_on` says. Cheap: no plan table is read.
        """
        with closing(self._connect()) as conn:
            publications = self._read_publications(conn)
        rows = []
        for p in sorted((p for p in publications if p.superseded_by is None), key=lambda p: p.effective_from):
            if rows and rows[-1][0] == p.plan_id:  # published again while in force: the period goes on
                rows[-1][2] = p.in_force_to
            else:
                rows.append([p.plan_id, p.in_force_from, p.in_force_to, True, p.seq])
        return pd.DataFrame(rows, columns=["id", "effective_from", "effective_to", "valid", "publication"]).astype(
            {"effective_from": object, "effective_to": object, "valid": bool})

    def publications(self, plan_id: str | None = None, *, today: date | None = None) -> pd.DataFrame:
        """The publication history, in order of publication (of one plan when ``plan_id`` is given).

        Columns: ``seq, plan_id, effective_from`` (date), ``published_at``
        (ISO 8601), ``note``, ``superseded_by`` (``seq`` of the later
        publication for the same day, else ``None``), ``in_force_from,
        in_force_to`` (the days this publication decides, ``None`` when
        superseded or open-ended), ``status`` (``in force``, ``scheduled``,
        ``ended`` or ``superseded by #k``, relative to ``today``).

        Raises
        ------
        PlanNotFoundError
            ``plan_id`` is not stored.
        """
        with closing(self._connect()) as conn:
            conn.execute("BEGIN")
            try:
                known = plan_id is None or conn.execute("SELECT 1 FROM plans WHERE id = ?", (plan_id,)).fetchone()
                if not known:
                    raise PlanNotFoundError(self._not_found_message(conn, plan_id))
                publications = self._read_publications(conn)
            finally:
                conn.execute("COMMIT")
        rows = [(p.seq, p.plan_id, p.effective_from, p.published_at, p.note, p.superseded_by, p.in_force_from,
                 p.in_force_to, p.status(today)) for p in publications if plan_id is None or p.plan_id == plan_id]
        return pd.DataFrame(rows, columns=PUBLICATION_COLUMNS).astype(
            {"seq": "int64", "superseded_by": object, "in_force_from": object, "in_force_to": object})

    def latest(self) -> StoredPlan | None:
        """The plan added last (in service or not), or ``None`` for an empty registry."""
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT id FROM plans ORDER BY seq DESC LIMIT 1").fetchone()
        return self.get(row[0]) if row else None

    def diff(self, a: str, b: str) -> pd.DataFrame:
        """Communes whose sector or worker differs between plan ``a`` (before) and ``b`` (after).

        Returns
        -------
        DataFrame
            ``insee, name, change`` (``moved``: other sector; ``reassigned``:
            same sector id, other worker; ``added``/``removed``: commune only
            in ``b``/``a``, e.g. after a commune merger), ``from_sector,
            to_sector, from_worker_id, to_worker_id, from_worker_name,
            to_worker_name`` and the demand columns of ``b`` (of ``a`` for
            removed communes; e.g. referrals/year). Sorted by ``insee``.

        Example
        -------
        >>> moved = reg.diff("P20251201-0a1b2c3d", "P20261201-1a2b3c4d")    # doctest: +SKIP
        >>> len(moved), moved["referrals"].sum()                          # doctest: +SKIP
        """
        before, after = self.get(a), self.get(b)
        keep = ["insee", "name", "sector", "worker_id", "worker_name"]
        left = before.sectors[keep + list(before.demand_columns)]
        right = after.sectors[keep + list(after.demand_columns)]
        merged = left.merge(right, on="insee", how="outer", suffixes=("_a", "_b"), indicator=True)
        demand = list(dict.fromkeys([*after.demand_columns, *before.demand_columns]))
        out = pd.DataFrame({"insee": merged["insee"].astype(str)})
        out["name"] = merged["name_b"].fillna(merged["name_a"])
        for what in ("sector", "worker_id", "worker_name"):
            out[f"from_{what}"] = merged[f"{what}_a"]
            out[f"to_{what}"] = merged[f"{what}_b"]
        for column in demand:
            a_col = merged[f"{column}_a"] if f"{column}_a" in merged else merged.get(column)
            b_col = merged[f"{column}_b"] if f"{column}_b" in merged else merged.get(column)
            if column not in after.demand_columns:
                b_col = pd.Series(np.nan, index=merged.index)
            if column not in before.demand_columns:
                a_col = pd.Series(np.nan, index=merged.index)
            out[column] = b_col.where(merged["_merge"] != "left_only", a_col)
        change = np.select(
            [merged["_merge"] == "right_only", merged["_merge"] == "left_only",
             merged["sector_a"] != merged["sector_b"], merged["worker_id_a"] != merged["worker_id_b"]],
            ["added", "removed", "moved", "reassigned"], default="",
        )
        out.insert(2, "change", change)
        return out.loc[out["change"] != ""].sort_values("insee").reset_index(drop=True)


def _json_safe(value: Any) -> Any:
    from sectorize.report.kpi import jsonable

    return jsonable(value)


def _before_commit(conn: sqlite3.Connection) -> None:
    """Called inside the write transaction just before COMMIT; the crash tests replace it."""
