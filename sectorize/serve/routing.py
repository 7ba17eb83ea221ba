"""Routing lookup: which social worker takes a new referral, from the patient's home commune.

A :class:`Router` is built once from a plan's public tables (a run folder
written by ``sectorize run``, a plan of the registry, or tables in memory)
and then answers lookups by INSEE commune code, postcode or point in
microseconds to milliseconds. Every answer is a :class:`Route` that says
which rule applied, in one sentence, so that nothing is guessed silently:

* an INSEE code of the plan; an old code (merged commune, see
  :mod:`geodata.codes`); Lyon 69123 on a plan split into arrondissements
  (one sector, or the candidates with their population shares) and an
  arrondissement 6938x on a plan where Lyon is one commune;
* a postcode: its sector, or, when its communes lie in several sectors,
  ``status="ambiguous"`` with the main sector by population and every
  candidate with its population share;
* a point (degrees, EPSG:4326): the commune polygon holding it (spatial
  index), or the nearest polygon within ``border_m`` metres (the shipped
  polygons are simplified, accurate to a few hundred metres);
* anything outside the region: the configured :class:`OutsideRule`.

Malformed input gives ``status="invalid"`` with a message; a well-formed
code unknown in the plan's departments gives ``"not_found"`` with the
reason. :meth:`Router.route` never raises on user input.

Only the plan's public table is used: commune, group, sector and worker;
no demand, workload or patient data.

Example
-------
>>> router = Router.from_run_folder("sectorize-output/20261201-115842")   # doctest: +SKIP
>>> router.route(insee="69388").sector                                     # doctest: +SKIP
'A1'
>>> router.route(postcode="01000").as_dict()["status"]                     # doctest: +SKIP
'ambiguous'
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from geodata.codes import AURA_DEPARTMENTS, current_code
from geodata.reference import data_path, load_arrondissements, load_postcodes
from geodata.regions import LYON

Status = Literal["routed", "ambiguous", "outside_region", "invalid", "not_found"]

#: Columns of the public sector table the router needs.
SECTOR_COLUMNS = ["insee", "name", "dep", "group", "sector", "worker_id", "worker_name"]

#: Columns of the postcode table the router needs.
POSTCODE_COLUMNS = ["postcode", "sector", "spans_sectors", "sectors", "main_share"]

#: Longest text accepted for a code or a coordinate (characters).
MAX_INPUT_CHARS = 32

#: Metric CRS used for distances to polygons (Lambert-93, metres).
METRIC_CRS = "EPSG:2154"

#: Time zone of "today" when no date is given: the team's, whatever the server's clock zone
#: (a referral at 00:30 on 1 January in Lyon is routed by the plan taking effect that day).
ROUTING_TIME_ZONE = "Europe/Paris"


def routing_today() -> date:
    """Today's date in :data:`ROUTING_TIME_ZONE` (Europe/Paris): the default day of a lookup by date."""
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(ROUTING_TIME_ZONE)).date()


# ASCII only: Python's \d would also accept other scripts' digits (e.g. full-width ６９３８８)
_INSEE = re.compile(r"(?:[0-9]{5}|2[AB][0-9]{3})")
_POSTCODE = re.compile(r"[0-9]{5}")
_NUMBER = re.compile(r"[+-]?[0-9]{1,3}(?:[.,][0-9]{1,12})?")
_SAFE_ECHO = re.compile(r"[0-9A-Za-z]{1,10}")

#: Two-digit departments of metropolitan France (plus 2A/2B for Corsica, 97 for overseas).
_METRO_DEPARTMENTS = {f"{n:02d}" for n in range(1, 96) if n != 20} | {"2A", "2B"}


# --------------------------------------------------------------------------
# Results and options
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One sector a referral may go to, with its share.

    Attributes
    ----------
    sector, group, worker_id, worker_name
        The sector and its referent social worker.
    share
        Share of the population of the postcode (or of Lyon) living in this
        sector, 0..1; ``None`` when not a population split (a point on a
        border between two communes).
    """

    sector: str
    group: str
    worker_id: str
    worker_name: str
    share: float | None


@dataclass(frozen=True)
class Route:
    """The answer to one lookup.

    Attributes
    ----------
    status
        ``"routed"``: one sector; ``"ambiguous"``: several candidate sectors,
        ``sector`` is the suggested one (most population) and ``candidates``
        lists them all; ``"outside_region"``: the place is outside the plan's
        territory, ``sector`` is set only when the :class:`OutsideRule` gives
        one; ``"invalid"``: malformed input; ``"not_found"``: well-formed but
        unknown.
    rule
        One sentence: which rule applied, or why no sector was found.
    key
        Kind of input: ``"insee"``, ``"postcode"``, ``"point"`` or ``""``.
    group, sector, worker_id, worker_name
        The territorial group, sector and referent social worker.
    insee, name
        The commune matched, when there is one.
    candidates
        For ``"ambiguous"``: every candidate sector, largest share first.
    plan_id, vintage
        The plan answered from and its geography vintage (e.g. ``"COG 2026"``).
    """

    status: Status
    rule: str
    key: str = ""
    group: str | None = None
    sector: str | None = None
    worker_id: str | None = None
    worker_name: str | None = None
    insee: str | None = None
    name: str | None = None
    candidates: tuple[Candidate, ...] = ()
    plan_id: str = ""
    vintage: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``message`` repeats ``rule`` for ``invalid`` and ``not_found``."""
        out = asdict(self)
        out["candidates"] = [asdict(c) for c in self.candidates]
        if self.status in ("invalid", "not_found"):
            out["message"] = self.rule
        return out


@dataclass(frozen=True)
class OutsideRule:
    """What to do with a referral from outside the plan's territory.

    Parameters
    ----------
    kind
        ``"nearest"``: a point goes to the sector of the commune nearest by
        estimated road travel time (:mod:`geodata.travel`), if it lies
        within ``max_km``; ``"worker"``: everything outside goes to
        ``worker_id``.
    worker_id
        The designated worker (required for ``kind="worker"``; with
        ``"nearest"``, used for codes and postcodes, which carry no
        coordinates, and for points beyond ``max_km``).
    departments
        Department code -> sector, for codes and postcodes of neighbouring
        departments (e.g. ``{"71": "B2"}``); applied before ``worker_id``.
    max_km
        Straight-line distance (km) beyond which a point is too far for the
        nearest-sector rule.

    Example
    -------
    >>> OutsideRule(kind="worker", worker_id="TS01").kind
    'worker'
    """

    kind: Literal["nearest", "worker"] = "nearest"
    worker_id: str | None = None
    departments: Mapping[str, str] = field(default_factory=dict)
    max_km: float = 100.0

    def __post_init__(self) -> None:
        if self.kind not in ("nearest", "worker"):
            raise ValueError(f"OutsideRule.kind must be 'nearest' or 'worker', got {self.kind!r}")
        if self.kind == "worker" and not self.worker_id:
            raise ValueError("OutsideRule(kind='worker') needs a worker_id")
        if not (self.max_km > 0):
            raise ValueError(f"OutsideRule.max_km must be > 0 km, got {self.max_km}")


@dataclass(frozen=True)
class PlanInfo:
    """Public metadata of the plan a router answers from.

    Attributes
    ----------
    plan_id
        Run folder name or registry id.
    vintage
        Geography vintage of the codes, e.g. ``"COG 2026"``.
    effective_from, effective_to
        ISO dates of the period the plan is in force (``""`` when unknown or open).
    """

    plan_id: str
    vintage: str = ""
    effective_from: str = ""
    effective_to: str = ""


class _Invalid(Exception):
    """Malformed user input (becomes a Route with status "invalid")."""


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------


def _text(value: Any, field_name: str) -> str:
    """The input as stripped text, or :class:`_Invalid` with a message naming the field."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise _Invalid(f"{field_name} is not valid UTF-8 text") from None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Invalid(f"{field_name} must be text, got {type(value).__name__}")
    text = str(value)
    if len(text) > MAX_INPUT_CHARS:
        raise _Invalid(f"{field_name} is too long ({len(text)} characters; at most {MAX_INPUT_CHARS})")
    if not text.isprintable():
        raise _Invalid(f"{field_name} contains control or non-printable characters")
    text = text.strip()
    if not text:
        raise _Invalid(f"{field_name} is empty")
    return text


def _shown(text: str) -> str:
    return f" {text!r}" if _SAFE_ECHO.fullmatch(text) else ""


def _check_insee(value: Any) -> str:
    text = _text(value, "insee").upper()
    if not _INSEE.fullmatch(text):
        hint = ""
        if text.isascii() and text.isdigit() and len(text) == 4:
            hint = f"; a leading zero lost in a spreadsheet? e.g. 0{text}"
        raise _Invalid(
            f"insee{_shown(text)} is not an INSEE commune code: 5 characters, 5 digits or 2A/2B and 3 digits "
            f"for Corsica (got {len(text)} characters){hint}"
        )
    return text


def _check_postcode(value: Any) -> str:
    text = _text(value, "postcode")
    if not _POSTCODE.fullmatch(text):
        hint = f"; a leading zero lost in a spreadsheet? e.g. 0{text}" if text.isascii() and text.isdigit() and len(text) == 4 else ""
        raise _Invalid(f"postcode{_shown(text)} is not a French postcode: 5 digits (got {len(text)} characters){hint}")
    if text.startswith("00") or text[:2] == "96":
        raise _Invalid(f"postcode {text!r} does not exist: no French postcode starts with {text[:2]}")
    return text


def _check_degrees(value: Any, field_name: str, bound: float) -> float:
    if isinstance(value, (float, int, np.floating, np.integer)) and not isinstance(value, bool):
        number = float(value)
    else:
        text = _text(value, field_name)
        if not _NUMBER.fullmatch(text):
            raise _Invalid(f"{field_name} must be a number of degrees such as 45.74 (got {len(text)} characters)")
        number = float(text.replace(",", "."))
    if not math.isfinite(number):
        raise _Invalid(f"{field_name} must be a finite number of degrees")
    if abs(number) > bound:
        raise _Invalid(f"{field_name} must lie between -{bound:g} and {bound:g} degrees (got {number:g})")
    return number


def _department(code: str) -> str:
    """Department part of an INSEE code or postcode (``"2A"``, ``"974"``, ``"01"``)."""
    return code[:3] if code.startswith("97") or code.startswith("98") else code[:2]


# --------------------------------------------------------------------------
# Shipped reference numbers (population and postcodes of the AURA units)
# --------------------------------------------------------------------------


def _shipped_units() -> pd.DataFrame:
    """``population`` and ``postcodes`` of the shipped communes and Lyon arrondissements, by code."""
    communes = pd.read_parquet(data_path("communes.parquet"), columns=["insee", "population", "postcodes"])
    arr = load_arrondissements()[["insee", "population", "postcodes"]]
    table = pd.concat([communes, arr], ignore_index=True)
    table["insee"] = table["insee"].astype(str)
    table["postcodes"] = [[str(p) for p in codes] for codes in table["postcodes"]]
    return table.set_index("insee")


# --------------------------------------------------------------------------
# The router
# --------------------------------------------------------------------------


class Router:
    """Answers "which sector and worker?" for an INSEE code, a postcode or a point.

    Build it with :meth:`from_run_folder`, :meth:`from_registry` or
    :meth:`from_tables`; then call :meth:`route` as often as needed (it is
    thread-safe). Building takes about a second for AURA (polygons, spatial
    index); lookups by code are dictionary look-ups.

    Parameters
    ----------
    sectors
        Commune-level public table: ``insee`` (str), ``name``, ``dep``,
        ``group``, ``sector``, ``worker_id``, ``worker_name``.
    postcodes
        Postcode table of :func:`sectorize.store.export.postcode_table` (at least
        ``postcode``, ``sector``, ``spans_sectors``, ``sectors``, ``main_share``).
    geometry
        Commune polygons indexed by ``insee`` (EPSG:4326, or any CRS with
        one set), the same codes as ``sectors``.
    info
        Plan id, vintage and dates.
    outside
        Rule for places outside the territory (default: nearest sector by
        travel time for points; codes outside need a designated worker).
    border_m
        A point on no polygon but within this distance (metres) of one is
        matched to the nearest (the simplified polygons are accurate to a
        few hundred metres).
    reference
        Per commune (indexed by ``insee``): ``population`` (inhabitants) and
        ``postcodes`` (list of str), to share postcodes and Lyon between
        sectors; default: the shipped AURA communes and arrondissements.
    """

    def __init__(
        self,
        sectors: pd.DataFrame,
        postcodes: pd.DataFrame,
        geometry: gpd.GeoSeries,
        info: PlanInfo,
        outside: OutsideRule | None = None,
        border_m: float = 500.0,
        reference: pd.DataFrame | None = None,
    ) -> None:
        missing = [c for c in SECTOR_COLUMNS if c not in sectors.columns]
        if missing:
            raise ValueError(f"sector table lacks the column(s) {missing}; expected {SECTOR_COLUMNS}")
        missing = [c for c in POSTCODE_COLUMNS if c not in postcodes.columns]
        if missing:
            raise ValueError(f"postcode table lacks the column(s) {missing}; expected {POSTCODE_COLUMNS}")
        if not border_m >= 0:
            raise ValueError(f"border_m must be >= 0 metres, got {border_m}")
        table = pd.DataFrame(sectors[SECTOR_COLUMNS]).copy()
        for column in SECTOR_COLUMNS:
            table[column] = table[column].astype(str)
        if table["insee"].duplicated().any():
            raise ValueError(f"sector table: INSEE codes appear twice: {table.loc[table['insee'].duplicated(), 'insee'].tolist()[:5]}")
        bad = table.loc[~table["insee"].str.fullmatch(_INSEE), "insee"].tolist()
        if bad:
            raise ValueError(f"sector table: codes {bad[:5]} are not 5-character INSEE codes (leading zeros lost?)")
        self.info = info
        self.outside = outside or OutsideRule()
        self.border_m = float(border_m)
        self._communes: dict[str, dict[str, str]] = {r["insee"]: r for r in table.to_dict("records")}
        self._sectors = self._sector_workers(table)
        if self.outside.worker_id is not None and self.outside.worker_id not in {
            w["worker_id"] for w in self._sectors.values()
        }:
            raise ValueError(f"OutsideRule.worker_id {self.outside.worker_id!r} is no worker of plan {info.plan_id}")
        unknown = sorted(set(self.outside.departments.values()) - set(self._sectors))
        if unknown:
            raise ValueError(f"OutsideRule.departments names sectors {unknown} that plan {info.plan_id} does not have")
        self._reference = _shipped_units() if reference is None else reference
        self._postcodes = self._postcode_rows(postcodes)
        self._postcode_communes = self._communes_by_postcode()
        self._index_geometry(geometry)
        self._travel = None
        self._travel_lock = threading.Lock()

    # ---- construction helpers ------------------------------------------

    @staticmethod
    def _sector_workers(table: pd.DataFrame) -> dict[str, dict[str, str]]:
        workers = table[["sector", "group", "worker_id", "worker_name"]].drop_duplicates()
        clash = workers["sector"][workers["sector"].duplicated()].unique().tolist()
        if clash:
            raise ValueError(f"sector table: sectors {clash} have more than one worker or group")
        return {r["sector"]: r for r in workers.to_dict("records")}

    def _postcode_rows(self, postcodes: pd.DataFrame) -> dict[str, dict[str, Any]]:
        rows = {}
        for row in pd.DataFrame(postcodes).astype(str).to_dict("records"):
            code = row["postcode"].strip()
            if not _POSTCODE.fullmatch(code):
                raise ValueError(f"postcode table: {code!r} is not a 5-digit postcode (leading zero lost?)")
            if row["sector"] not in self._sectors:
                raise ValueError(f"postcode table: postcode {code} names sector {row['sector']!r}, not in the sector table")
            row["spans"] = row["spans_sectors"].strip().lower() in ("true", "1", "yes")
            rows[code] = row
        return rows

    def _communes_by_postcode(self) -> dict[str, list[str]]:
        """Postcode -> plan communes carrying it (shipped postcodes of the AURA units)."""
        out: dict[str, list[str]] = {}
        known = self._reference.index.intersection(list(self._communes))
        for insee, codes in self._reference.loc[known, "postcodes"].items():
            for code in codes:
                out.setdefault(code, []).append(insee)
        return out

    def _index_geometry(self, geometry: gpd.GeoSeries) -> None:
        if geometry.crs is None:
            raise ValueError("geometry has no CRS; commune polygons must be in EPSG:4326 (or another set CRS)")
        geometry = geometry.copy()
        geometry.index = geometry.index.astype(str)
        missing = sorted(set(self._communes) - set(geometry.index))
        if missing:
            raise ValueError(f"geometry lacks the polygons of {len(missing)} communes, e.g. {missing[:5]}")
        geometry = geometry.loc[sorted(self._communes)]
        degrees = geometry.to_crs(4326)
        self._keys = np.asarray(degrees.index, dtype=object)
        self._bounds = degrees.total_bounds  # lon_min, lat_min, lon_max, lat_max
        self._metric = np.asarray(degrees.to_crs(METRIC_CRS).values)
        self._tree = shapely.STRtree(self._metric)
        points = degrees.representative_point()
        self._lon, self._lat = points.x.to_numpy(), points.y.to_numpy()
        self._to_metric = Transformer.from_crs(4326, METRIC_CRS, always_xy=True)

    # ---- constructors --------------------------------------------------

    @classmethod
    def from_tables(
        cls,
        sectors: pd.DataFrame,
        postcodes: pd.DataFrame,
        geometry: gpd.GeoSeries,
        metadata: PlanInfo | Mapping[str, Any],
        *,
        outside: OutsideRule | None = None,
        border_m: float = 500.0,
    ) -> Router:
        """Router over tables in memory.

        Parameters
        ----------
        sectors, postcodes, geometry
            See :class:`Router`.
        metadata
            A :class:`PlanInfo`, or a mapping with ``plan_id`` (or ``id``),
            ``vintage`` and optional ``effective_from``, ``effective_to``.
        """
        if not isinstance(metadata, PlanInfo):
            metadata = PlanInfo(
                plan_id=str(metadata.get("plan_id", metadata.get("id", ""))),
                vintage=str(metadata.get("vintage", "") or ""),
                effective_from=_iso(metadata.get("effective_from")),
                effective_to=_iso(metadata.get("effective_to")),
            )
        return cls(sectors, postcodes, geometry, metadata, outside=outside, border_m=border_m)

    @classmethod
    def from_run_folder(cls, path: str | Path, *, outside: OutsideRule | None = None, border_m: float = 500.0) -> Router:
        """Router over a run folder written by ``sectorize run``.

        Reads ``sectors.csv`` (the routing table), ``postcodes.csv``, the
        polygons of ``sectors.geojson`` and ``run.json`` (plan id = run
        name, vintage).

        Raises
        ------
        FileNotFoundError
            When the folder or one of these files is missing (the message names it).
        ValueError
            When a file is unreadable or its columns or codes are wrong.
        """
        from sectorize.store.run_folder import RunFolder

        run = RunFolder.open(path)
        folder = run.path
        run.require("sectors.csv", "postcodes.csv", "sectors.geojson", "run.json")
        try:
            facts = run.facts()
            sectors = run.table("sectors.csv", text=True)
            postcodes = run.table("postcodes.csv", text=True)
            shapes = run.shapes()
        except (OSError, ValueError) as err:  # the run-folder reader's message names the file
            raise ValueError(f"{folder}: cannot read the run files: {err}") from err
        files = {name: folder / name for name in ("sectors.csv", "postcodes.csv")}
        geometry = gpd.GeoSeries(shapes.geometry.values, index=shapes["insee"].astype(str), crs=shapes.crs)
        info = PlanInfo(plan_id=str(facts.get("run") or folder.name), vintage=str(facts.get("vintage", "") or ""))
        for name, table in (("sectors.csv", sectors), ("postcodes.csv", postcodes)):
            if table.empty:
                raise ValueError(f"{files[name]}: no rows")
        try:
            return cls(sectors, postcodes, geometry, info, outside=outside, border_m=border_m)
        except ValueError as err:
            raise ValueError(f"{folder}: {err}") from err

    @classmethod
    def from_registry(
        cls,
        folder: str | Path,
        plan_id: str | None = None,
        on: date | None = None,
        *,
        outside: OutsideRule | None = None,
        border_m: float = 500.0,
    ) -> Router:
        """Router over a plan of the registry (:mod:`sectorize.store.registry`).

        Parameters
        ----------
        folder
            Registry folder.
        plan_id
            The plan to use; default: the plan in force on ``on``.
        on
            Date for the plan in force (default: today in Europe/Paris,
            :func:`routing_today`); not used when ``plan_id`` is given (see
            :class:`sectorize.serve.dated.RegistryPlans` for a plan checked
            against its dates and for plans published while serving).

        Raises
        ------
        LookupError
            When no plan is in force on that date, the plan is stored as
            invalid (never routed), or ``plan_id`` is unknown (as the
            registry reports it).
        """
        from sectorize.store.registry import Registry

        registry = Registry(folder, create=False)
        if plan_id is not None:
            stored = registry.get(plan_id)
        else:
            day = on or routing_today()
            stored = registry.effective_on(day)
            if stored is None:
                raise LookupError(f"registry {folder}: no plan is in force on {day.isoformat()}")
        if not stored.valid:
            shown = "; ".join(stored.violations[:3])
            raise LookupError(f"registry {folder}: plan {stored.id} is stored as invalid ({shown}); an invalid "
                              "plan is never routed: route with a valid plan")
        info = PlanInfo(
            plan_id=str(stored.id), vintage=str(stored.vintage or ""),
            effective_from=_iso(stored.effective_from), effective_to=_iso(stored.effective_to),
        )
        reference = None
        if len(stored.population) and len(stored.communes_postcodes):
            reference = pd.DataFrame({
                "population": pd.to_numeric(stored.population, errors="coerce").fillna(0),
                "postcodes": [[p for p in str(v).split("|") if p] if isinstance(v, str) else []
                              for v in stored.communes_postcodes.reindex(stored.population.index)],
            }, index=stored.population.index.astype(str))
        return cls(stored.sectors, stored.postcodes, stored.geometry, info, outside=outside, border_m=border_m,
                   reference=reference)

    # ---- public description --------------------------------------------

    @property
    def communes(self) -> int:
        """Number of communes (units) of the plan."""
        return len(self._communes)

    def public_plan(self) -> dict[str, Any]:
        """Public metadata: plan id, vintage, effective dates and the sectors with their workers.

        Example
        -------
        >>> router.public_plan()["sectors"][0]                         # doctest: +SKIP
        {'sector': 'A1', 'group': 'A', 'worker_id': 'TS01', 'worker_name': 'Travailleur social 01', 'communes': 437}
        """
        counts: dict[str, int] = {}
        for row in self._communes.values():
            counts[row["sector"]] = counts.get(row["sector"], 0) + 1
        sectors = [
            {**{k: w[k] for k in ("sector", "group", "worker_id", "worker_name")}, "communes": counts[s]}
            for s, w in sorted(self._sectors.items(), key=lambda item: _sector_key(item[0]))
        ]
        return {**asdict(self.info), "communes": self.communes, "sectors": sectors}

    # ---- lookups -------------------------------------------------------

    def route(
        self,
        insee: Any = None,
        postcode: Any = None,
        lat: Any = None,
        lon: Any = None,
    ) -> Route:
        """Route one referral by exactly one of: ``insee``, ``postcode``, or ``lat`` and ``lon``.

        Parameters
        ----------
        insee
            INSEE commune code (5 characters; old codes and Lyon
            arrondissements accepted).
        postcode
            Postcode (5 digits).
        lat, lon
            Point in degrees (WGS84).

        Returns
        -------
        Route
            Never raises on bad input: malformed input gives ``"invalid"``.
        """
        given = [name for name, v in (("insee", insee), ("postcode", postcode), ("lat", lat), ("lon", lon)) if v is not None]
        try:
            if given == ["insee"]:
                return self._by_insee(_check_insee(insee))
            if given == ["postcode"]:
                return self._by_postcode(_check_postcode(postcode))
            if given == ["lat", "lon"]:
                return self._by_point(_check_degrees(lat, "lat", 90.0), _check_degrees(lon, "lon", 180.0))
            raise _Invalid(
                "give exactly one of: insee, postcode, or lat and lon together"
                + (f" (got {', '.join(given)})" if given else " (got nothing)")
            )
        except _Invalid as err:
            return self._answer("invalid", str(err), key=given[0] if len(given) == 1 else "")

    # ---- by INSEE code -------------------------------------------------

    def _by_insee(self, code: str) -> Route:
        if code in self._communes:
            return self._commune(code, "INSEE code", "insee")
        match = current_code(code)
        target = match.current
        if target is not None and target in self._communes:
            return self._commune(target, match.rule, "insee")
        if target == LYON and self._has_arrondissements():
            prefix = "" if code == LYON else f"{match.rule}; "
            return self._lyon(prefix, "insee")
        if target is not None:
            return self._answer(
                "not_found", f"{match.rule}, but plan {self.info.plan_id} ({self.info.vintage or 'unknown vintage'}) "
                f"has no commune {target}", key="insee",
            )
        dep = _department(code)
        if dep in AURA_DEPARTMENTS:
            return self._answer(
                "not_found", f"no commune {code} in department {dep}: neither a commune of this plan "
                f"({self.info.vintage or 'unknown vintage'}) nor a known old code; check the code", key="insee",
            )
        if dep == "99":
            return self._outside_code(f"INSEE code {code} designates a foreign country (99xxx): outside France", "insee", None)
        if dep not in _METRO_DEPARTMENTS and dep[:2] not in ("97", "98"):
            return self._answer("invalid", f"insee {code!r}: no French department {dep}", key="insee")
        return self._outside_code(f"INSEE code {code} is in department {dep}, outside the plan's territory", "insee", dep)

    def _has_arrondissements(self) -> bool:
        return LYON not in self._communes and any(k.startswith("6938") for k in self._communes)

    def _lyon(self, prefix: str, key: str) -> Route:
        arr = [c for c in sorted(self._communes) if c.startswith("6938")]
        population = self._reference["population"].reindex(arr).fillna(0).astype(float)
        candidates = self._candidates(dict(zip(arr, population)))
        what = f"{LYON} Lyon is split into {len(arr)} arrondissements on this plan"
        if len(candidates) == 1:
            return self._sector(candidates[0].sector, f"{prefix}{what}, all in sector {candidates[0].sector}",
                                key, insee=LYON, name="Lyon")
        main = candidates[0]
        rule = (f"{prefix}{what}, in {len(candidates)} sectors: main sector by population "
                f"({main.share:.0%}); give the arrondissement code (69381-69389) or the postcode")
        return self._sector(main.sector, rule, key, status="ambiguous", candidates=tuple(candidates),
                            insee=LYON, name="Lyon")

    # ---- by postcode ---------------------------------------------------

    def _by_postcode(self, code: str) -> Route:
        row = self._postcodes.get(code)
        communes = self._postcode_communes.get(code, [])
        if row is not None:
            single = communes[0] if len(communes) == 1 else None
            if not row["spans"]:
                what = "1 commune" if single else "its communes"
                return self._sector(row["sector"], f"postcode {code}: {what} in sector {row['sector']}", "postcode",
                                    insee=single, name=self._communes[single]["name"] if single else None)
            candidates = self._candidates(self._population(communes)) if communes else []
            if not candidates or candidates[0].sector != row["sector"]:
                # the plan's own table is authoritative; list its sectors without shares
                listed = [s for s in row["sectors"].split("|") if s in self._sectors]
                candidates = [self._candidate(s, _number(row["main_share"]) if s == row["sector"] else None)
                              for s in [row["sector"], *[s for s in listed if s != row["sector"]]]]
            rule = (f"postcode spans {len(candidates)} sectors: main sector by population "
                    f"({_number(row['main_share']):.0%} of the postcode); route by INSEE code to be sure")
            return self._sector(row["sector"], rule, "postcode", status="ambiguous", candidates=tuple(candidates))
        extra = self._fimoct(code)
        if extra:
            candidates = self._candidates(self._population(extra))
            names = ", ".join(f"{c} {self._communes[c]['name']}" for c in extra[:3])
            source = f"postcode {code} is not in La Poste's list for this plan's communes; the tax street file (FIMOCT) gives {names}"
            if len(candidates) == 1:
                single = extra[0] if len(extra) == 1 else None
                return self._sector(candidates[0].sector, source, "postcode", insee=single,
                                    name=self._communes[single]["name"] if single else None)
            return self._sector(candidates[0].sector, f"{source}: main sector by population", "postcode",
                                status="ambiguous", candidates=tuple(candidates))
        dep = _department(code)
        if code.startswith("20"):
            dep = "2A/2B"
        if dep in AURA_DEPARTMENTS:
            return self._answer(
                "not_found", f"postcode {code} belongs to no commune of this plan (La Poste list; CEDEX "
                "codes are not included); route by INSEE code", key="postcode",
            )
        return self._outside_code(f"postcode {code} is in department {dep}, outside the plan's territory", "postcode",
                                  dep if dep != "2A/2B" else None)

    def _fimoct(self, code: str) -> list[str]:
        pairs = _fimoct_pairs()
        return [c for c in pairs.get(code, []) if c in self._communes]

    def _population(self, communes: list[str]) -> dict[str, float]:
        population = self._reference["population"].reindex(communes).fillna(0).astype(float)
        return dict(zip(communes, population))

    # ---- by point ------------------------------------------------------

    def _by_point(self, lat: float, lon: float) -> Route:
        lon_min, lat_min, lon_max, lat_max = self._bounds
        margin = 0.05  # degrees, ~4-5 km: beyond, no polygon can be within border_m
        if lon_min - margin <= lon <= lon_max + margin and lat_min - margin <= lat <= lat_max + margin:
            x, y = self._to_metric.transform(lon, lat)
            point = shapely.Point(x, y)
            hits = self._tree.query(point, predicate="intersects")
            if len(hits) == 1:
                insee = str(self._keys[hits[0]])
                return self._commune(insee, f"point inside commune {insee} {self._communes[insee]['name']}", "point")
            if len(hits) > 1:
                return self._border_point(point, sorted(str(self._keys[h]) for h in hits))
            if self.border_m > 0:
                found, distance = self._tree.query_nearest(point, max_distance=self.border_m, return_distance=True)
                if len(found):
                    insee = str(self._keys[found[0]])
                    rule = (f"point {distance[0]:.0f} m outside commune {insee} {self._communes[insee]['name']} "
                            f"(polygons are simplified; within {self.border_m:.0f} m): nearest commune")
                    return self._commune(insee, rule, "point")
        return self._outside_point(lat, lon)

    def _border_point(self, point: shapely.Point, communes: list[str]) -> Route:
        inside = [c for c in communes
                  if shapely.contains_properly(self._metric[self._position(c)], point)]
        chosen = inside[0] if len(inside) == 1 else communes[0]
        sectors = sorted({self._communes[c]["sector"] for c in communes}, key=_sector_key)
        listed = ", ".join(communes)
        if len(inside) == 1:
            rule = f"point inside commune {chosen} {self._communes[chosen]['name']} (polygons of {listed} touch it)"
            return self._commune(chosen, rule, "point")
        if len(sectors) == 1:
            rule = f"point on the border of communes {listed}, all in sector {sectors[0]}: commune {chosen} (first code)"
            return self._commune(chosen, rule, "point")
        candidates = tuple(self._candidate(s, None) for s in sectors)
        rule = f"point on the border of communes {listed}, in sectors {', '.join(sectors)}; give the INSEE code"
        main = self._communes[chosen]["sector"]
        return self._sector(main, rule, "point", status="ambiguous", candidates=candidates,
                            insee=chosen, name=self._communes[chosen]["name"])

    def _position(self, insee: str) -> int:
        return int(np.searchsorted(self._keys, insee))

    def _outside_point(self, lat: float, lon: float) -> Route:
        from geodata.travel import great_circle_km

        km = great_circle_km(lon, lat, self._lon, self._lat)
        nearest_km = float(km.min())
        where = f"point outside the plan's territory ({nearest_km:.0f} km from the nearest commune)"
        if self.outside.kind == "nearest" and nearest_km <= self.outside.max_km:
            minutes = self._travel_minutes(lon, lat)
            if minutes is not None:
                best = int(np.argmin(minutes))
                insee = str(self._keys[best])
                rule = (f"{where}: nearest sector by estimated travel time, via commune {insee} "
                        f"{self._communes[insee]['name']} (~{minutes[best]:.0f} min)")
            else:
                best = int(np.argmin(km))
                insee = str(self._keys[best])
                rule = (f"{where}: nearest sector by straight-line distance (no travel-time estimate for "
                        f"these units), via commune {insee} {self._communes[insee]['name']}")
            return self._sector(self._communes[insee]["sector"], rule, "point", status="outside_region")
        if self.outside.kind == "nearest":
            where += f", beyond {self.outside.max_km:g} km for the nearest-sector rule"
        return self._outside_worker(where, "point")

    def _travel_minutes(self, lon: float, lat: float) -> np.ndarray | None:
        """Estimated minutes from the point to every unit (in ``self._keys`` order), or ``None``."""
        with self._travel_lock:
            if self._travel is None:
                self._travel = _travel_estimate(set(self._communes))
        travel, order = self._travel
        if travel is None:
            return None
        return travel.from_points(np.array([lon]), np.array([lat]))[0][order]

    # ---- outside rules -------------------------------------------------

    def _outside_code(self, where: str, key: str, dep: str | None) -> Route:
        if dep is not None and dep in self.outside.departments:
            sector = self.outside.departments[dep]
            return self._sector(sector, f"{where}: sector {sector} by the department rule ({dep} -> {sector})",
                                key, status="outside_region")
        return self._outside_worker(where, key)

    def _outside_worker(self, where: str, key: str) -> Route:
        worker = self.outside.worker_id
        if worker is not None:
            sector = next(s for s, w in self._sectors.items() if w["worker_id"] == worker)
            return self._sector(sector, f"{where}: designated worker {worker} for referrals from outside",
                                key, status="outside_region")
        return self._answer(
            "outside_region", f"{where}; no designated worker or department rule is configured: route by hand",
            key=key,
        )

    # ---- answers -------------------------------------------------------

    def _candidate(self, sector: str, share: float | None) -> Candidate:
        w = self._sectors[sector]
        return Candidate(sector, w["group"], w["worker_id"], w["worker_name"], share)

    def _candidates(self, population: dict[str, float]) -> list[Candidate]:
        """Sectors of the given communes with their population shares, largest first (ties: sector id)."""
        per_sector: dict[str, list[float]] = {}
        for insee, people in population.items():
            entry = per_sector.setdefault(self._communes[insee]["sector"], [0.0, 0])
            entry[0] += people
            entry[1] += 1
        total_pop = sum(v[0] for v in per_sector.values())
        total_n = sum(v[1] for v in per_sector.values())
        shares = {s: (v[0] / total_pop if total_pop > 0 else v[1] / total_n) for s, v in per_sector.items()}
        order = sorted(per_sector, key=lambda s: (-per_sector[s][0], -per_sector[s][1], _sector_key(s)))
        return [self._candidate(s, round(shares[s], 3)) for s in order]

    def _commune(self, insee: str, rule: str, key: str) -> Route:
        return self._sector(self._communes[insee]["sector"], rule, key, insee=insee, name=self._communes[insee]["name"])

    def _sector(
        self, sector: str, rule: str, key: str, *, status: Status = "routed",
        candidates: tuple[Candidate, ...] = (), insee: str | None = None, name: str | None = None,
    ) -> Route:
        w = self._sectors[sector]
        return Route(
            status=status, rule=rule, key=key, group=w["group"], sector=sector, worker_id=w["worker_id"],
            worker_name=w["worker_name"], insee=insee, name=name, candidates=tuple(candidates),
            plan_id=self.info.plan_id, vintage=self.info.vintage,
        )

    def _answer(self, status: Status, rule: str, key: str = "") -> Route:
        return Route(status=status, rule=rule, key=key, plan_id=self.info.plan_id, vintage=self.info.vintage)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _iso(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _number(text: str) -> float:
    try:
        return float(str(text).replace(",", "."))
    except ValueError:
        return float("nan")


def _sector_key(sector: str) -> tuple:
    match = re.fullmatch(r"(\D*)(\d+)", sector)
    return (match.group(1), int(match.group(2)), "") if match else (sector, 0, sector)


_FIMOCT: dict[str, list[str]] | None = None
_FIMOCT_LOCK = threading.Lock()


def _fimoct_pairs() -> dict[str, list[str]]:
    """Postcode -> communes known only from the tax administration's street file (shipped postcodes.csv)."""
    global _FIMOCT
    with _FIMOCT_LOCK:
        if _FIMOCT is None:
            table = load_postcodes()
            extra = table.loc[table["source"] == "codes_postaux_fimoct_only"]
            pairs: dict[str, list[str]] = {}
            for code, insee in zip(extra["postcode"], extra["insee"]):
                pairs.setdefault(code, []).append(insee)
            _FIMOCT = pairs
        return _FIMOCT


def _travel_estimate(codes: set[str]):
    """``(EstimatedTravelTimes, order)`` for the shipped AURA units when they are the plan's, else ``(None, None)``.

    ``order`` maps the router's sorted keys to the estimate's rows.
    """
    from geodata.regions import load_aura
    from geodata.travel import estimate_travel_times

    variant = "communes" if LYON in codes else "lyon_arrondissements"
    region = load_aura(variant)
    if set(region.units.index) != codes:
        return None, None
    travel = estimate_travel_times(region)
    order = pd.Index(travel.keys).get_indexer(sorted(codes))
    return travel, order
