"""Demand: aggregated counts per commune (referrals/year, active home-care patients, ...).

Only aggregated counts per commune are handled here, never patient-level
records. Two sources:

- :func:`read_demand` reads a CSV or Parquet table exported by the hospital
  (French office-software conventions accepted: ``;`` separator, decimal
  comma, UTF-8 with BOM or Latin-1), keyed by INSEE code or by postcode.
- :func:`synthetic_demand` draws a SYNTHETIC demand from a Huff gravity
  model, for demonstrations and tests when no real counts are at hand.

Example
-------
>>> from geodata.regions import load_aura
>>> region = load_aura()
>>> demand = read_demand("referrals_2025.csv", region)  # doctest: +SKIP
>>> demand.table["referrals"].sum()  # doctest: +SKIP
"""

from __future__ import annotations

import math
import pathlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyproj

from geodata.reference import load_arrondissements, load_hospitals, load_postcodes
from geodata.regions import LYON, Region
from geodata.tables import RawTable, TableError, as_number, as_text, read_table


class DemandError(TableError):
    """A demand file cannot be used as it is; the message says where and what to do."""


@dataclass
class Demand:
    """Workload measures per unit of a region.

    Attributes
    ----------
    table
        DataFrame indexed like ``region.units.index``, one float column per
        workload measure (e.g. ``referrals`` in referrals/year, ``home_care``
        in active patients); 0 for units absent from the source.
    source
        Where the counts come from (file path, or ``"synthetic ..."``).
    notes
        Human-readable reports: how the file was read, codes excluded,
        postcodes split across communes, Lyon arrondissements merged or split.
    """

    table: pd.DataFrame
    source: str
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------
# Column names (compared after lower-casing, removing accents, and turning
# spaces, hyphens and dots into "_")
# --------------------------------------------------------------------------

#: Column names recognised as holding INSEE commune codes.
INSEE_COLUMNS = ("insee", "code_insee", "codgeo", "com", "code_commune", "code_commune_insee", "depcom")
#: Column names recognised as holding postcodes.
POSTCODE_COLUMNS = ("code_postal", "postcode", "cp", "codepostal", "postal_code")
#: Descriptive columns never read as workload (names, department, year,
#: population), unless listed in ``columns``.
DESCRIPTIVE_COLUMNS = (
    "commune", "nom", "name", "nom_commune", "libelle", "libgeo", "ville", "lib_commune",
    "dep", "departement", "code_departement", "code_dep", "dept", "region", "code_region",
    "annee", "year", "millesime", "population", "pop", "pmun",
)  # fmt: skip
#: Column names that betray patient-level records, refused outright.
PATIENT_COLUMNS = (
    "nir", "ipp", "patient", "patient_id", "id_patient", "nom_patient", "prenom",
    "date_naissance", "date_de_naissance", "ddn", "birth_date", "date_of_birth",
)  # fmt: skip

_INSEE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
_POSTCODE = re.compile(r"^\d{5}$")
_MAX_LISTED = 10


def _normalise(column: str) -> str:
    """Column name compared to the lists above: ``"Code Postal"`` → ``"code_postal"``."""
    text = unicodedata.normalize("NFKD", str(column)).encode("ascii", "ignore").decode()
    return re.sub(r"[\s\-.]+", "_", text.strip().lower())


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:_MAX_LISTED])
    return shown + (f"; ... ({len(items)} in all)" if len(items) > _MAX_LISTED else "")


def _parse_counts(raw: RawTable, columns: list[str], path: pathlib.Path) -> pd.DataFrame:
    """Workload columns as floats; every blank, non-numeric or negative cell is an error."""
    values = pd.DataFrame(index=raw.frame.index)
    problems: list[str] = []
    for column in columns:
        numbers = [as_number(v, raw.decimal_comma) for v in raw.frame[column]]
        for line, cell, number in zip(raw.lines, raw.frame[column], numbers):
            where = f"{raw.unit} {line}, column {column!r}"
            if number is None:
                hint = " (use ';' as separator to write decimal commas)" if "," in str(cell) else ""
                problems.append(f"{where}: {str(cell)!r} is not a number{hint}")
            elif math.isnan(number):
                problems.append(f"{where}: the count is missing (write 0 if there is none)")
            elif number < 0:
                problems.append(f"{where}: negative count {as_text(cell)!r}")
        values[column] = [math.nan if n is None else n for n in numbers]
    if problems:
        raise DemandError(
            f"{path}: {len(problems)} counts cannot be used: {_listing(problems)}. Counts must be "
            "numbers >= 0, one per cell; correct these cells and export again"
        )
    return values


def _parse_codes(raw: RawTable, column: str, kind: str, path: pathlib.Path) -> list[str]:
    """Codes of the key column, checked (format, leading zeros, duplicates)."""
    pattern, example = (_INSEE, "01001") if kind == "insee" else (_POSTCODE, "01090")
    label, article = ("INSEE code", "an") if kind == "insee" else ("postcode", "a")
    codes = [as_text(v).upper() for v in raw.frame[column]]
    problems: list[str] = []
    for line, code in zip(raw.lines, codes):
        where = f"{raw.unit} {line}, column {column!r}"
        if code == "":
            problems.append(f"{where}: the {label} is missing")
        elif re.fullmatch(r"\d{4}", code):
            problems.append(
                f"{where}: {label} {code!r} has 4 digits: it lost its leading zero (the spreadsheet "
                f"stored it as a number); write it as '0{code}', e.g. format the column as text before export"
            )
        elif not pattern.match(code):
            problems.append(f"{where}: {code!r} is not {article} {label} (5 characters, e.g. '{example}')")
    if problems:
        raise DemandError(f"{path}: {len(problems)} bad codes: {_listing(problems)}")
    lines_of: dict[str, list[int]] = {}
    for line, code in zip(raw.lines, codes):
        lines_of.setdefault(code, []).append(int(line))
    duplicated = [
        f"{label} {code} on {raw.unit}s {', '.join(map(str, lines))}"
        for code, lines in lines_of.items()
        if len(lines) > 1
    ]
    if duplicated:
        raise DemandError(
            f"{path}, column {column!r}: {len(duplicated)} codes appear on several rows: "
            f"{_listing(duplicated)}. Aggregate them first (one row per code, counts summed)"
        )
    return codes


# --------------------------------------------------------------------------
# Columns: key and workload
# --------------------------------------------------------------------------


def _key_column(raw: RawTable, key: str, path: pathlib.Path, notes: list[str]) -> tuple[str, str, list[str]]:
    """(column, kind, other key-like columns) for ``key`` in ``"auto" | "insee" | "postcode"``."""
    found = {
        "insee": [c for c in raw.frame.columns if _normalise(c) in INSEE_COLUMNS],
        "postcode": [c for c in raw.frame.columns if _normalise(c) in POSTCODE_COLUMNS],
    }
    accepted = {"insee": INSEE_COLUMNS, "postcode": POSTCODE_COLUMNS}
    if key not in ("auto", "insee", "postcode"):
        raise ValueError(f"key must be 'auto', 'insee' or 'postcode', got {key!r}")
    kind = key if key != "auto" else ("insee" if found["insee"] else "postcode")
    if not found[kind]:
        wanted = (
            f"{', '.join(INSEE_COLUMNS)} (INSEE codes) or {', '.join(POSTCODE_COLUMNS)} (postcodes)"
            if key == "auto"
            else ", ".join(accepted[kind])
        )
        raise DemandError(
            f"{path}, line 1: no key column among {list(raw.frame.columns)}; name the column holding "
            f"the codes one of: {wanted}"
        )
    if len(found[kind]) > 1:
        raise DemandError(
            f"{path}, line 1: several {kind} columns {found[kind]}; keep one (rename or delete the others)"
        )
    column = found[kind][0]
    others = [c for k in found for c in found[k] if c != column]
    for other in others:
        notes.append(f"column {other!r} (codes) ignored: the key is column {column!r}")
    return column, kind, others


def _workload_columns(
    raw: RawTable, columns: list[str] | None, exclude: list[str], path: pathlib.Path, notes: list[str]
) -> list[str]:
    available = [c for c in raw.frame.columns if c not in exclude]
    if columns is not None:
        if not columns:
            raise DemandError(f"{path}: columns=[] selects no workload column; name at least one")
        missing = [c for c in columns if c not in raw.frame.columns]
        if missing:
            raise DemandError(
                f"{path}, line 1: no column {missing[0]!r}; columns are {list(raw.frame.columns)}"
            )
        keys = [c for c in columns if c in exclude]
        if keys:
            raise DemandError(f"{path}: column {keys[0]!r} holds codes, it cannot be a workload column")
        return list(columns)
    chosen, text = [], []
    for column in available:
        cells = [(line, v) for line, v in zip(raw.lines, raw.frame[column]) if as_text(v) != ""]
        if _normalise(column) in DESCRIPTIVE_COLUMNS:
            notes.append(f"column {column!r} ignored (descriptive); pass columns=[...] to use it")
        elif not cells:
            notes.append(f"column {column!r} ignored (empty)")
        elif any(as_number(v, raw.decimal_comma) is not None for _, v in cells):
            chosen.append(column)
        else:
            text.append(f"{column!r} (text, e.g. {as_text(cells[0][1])!r} on {raw.unit} {cells[0][0]})")
            notes.append(f"column {column!r} ignored (text)")
    if not chosen:
        raise DemandError(
            f"{path}, line 1: no workload column (numeric counts) among {available}"
            + (f"; {', '.join(text)}" if text else "")
            + "; add a column of counts per commune, e.g. 'referrals', or name it with columns=[...]"
        )
    return chosen


# --------------------------------------------------------------------------
# Codes to units
# --------------------------------------------------------------------------


def _percent(shares: pd.Series, names: pd.Series) -> str:
    return ", ".join(f"{k} {names.get(k, '')} {s:.1%}".replace("  ", " ") for k, s in shares.items())


def _population_shares(keys: list[str], region: Region) -> pd.Series:
    population = region.units.loc[keys, "population"].astype(float)
    if population.sum() <= 0:
        return pd.Series(1.0 / len(keys), index=keys)
    return population / population.sum()


def _insee_targets(
    codes: list[str], region: Region, lines: np.ndarray, unit: str, notes: list[str]
) -> dict[int, pd.Series]:
    """Row → shares per unit key, for INSEE codes (Lyon arrondissements merged or split)."""
    keys = set(region.units.index)
    arrondissements = load_arrondissements()
    arr_codes = set(arrondissements.loc[arrondissements["parent"] == LYON, "insee"])
    given_arr = [i for i, c in enumerate(codes) if c in arr_codes and c not in keys]
    given_lyon = [i for i, c in enumerate(codes) if c == LYON and c not in keys]
    lyon_in = LYON in keys
    arr_in = sorted(arr_codes & keys)
    if (given_arr and lyon_in and LYON in codes) or (given_lyon and arr_in and set(codes) & arr_codes):
        rows = [f"{unit} {lines[i]} ({c})" for i, c in enumerate(codes) if c == LYON or c in arr_codes]
        raise DemandError(
            f"both Lyon ({LYON}) and its arrondissements (6938x) have rows: {_listing(rows)}; keep "
            "either the commune or its arrondissements, not both"
        )
    targets: dict[int, pd.Series] = {}
    for i, code in enumerate(codes):
        if code in keys:
            targets[i] = pd.Series({code: 1.0})
        elif code in arr_codes and lyon_in:
            targets[i] = pd.Series({LYON: 1.0})
        elif code == LYON and arr_in:
            targets[i] = _population_shares(arr_in, region)
    if given_arr and lyon_in:
        merged = [f"{codes[i]} ({unit} {lines[i]})" for i in given_arr]
        notes.append(f"Lyon arrondissements {', '.join(merged)} merged into the commune of Lyon {LYON}")
    if given_lyon and arr_in:
        shares = targets[given_lyon[0]]
        notes.append(
            f"Lyon ({LYON}, {unit} {lines[given_lyon[0]]}) split across its arrondissements in "
            f"proportion to population: {_percent(shares, region.units['name'])}"
        )
    return targets


def _postcode_targets(
    codes: list[str], region: Region, lines: np.ndarray, unit: str, notes: list[str]
) -> dict[int, pd.Series]:
    """Row → shares per unit key, for postcodes split across their communes by population."""
    pairs = load_postcodes()
    pairs = pairs.loc[pairs["insee"].isin(region.units.index)]
    official = pairs.loc[pairs["source"] == "laposte_via_etalab"].groupby("postcode")["insee"].agg(list)
    extra = pairs.loc[pairs["source"] != "laposte_via_etalab"].groupby("postcode")["insee"].agg(list)
    targets: dict[int, pd.Series] = {}
    for i, code in enumerate(codes):
        communes = official.get(code) or extra.get(code)
        if not communes:
            continue
        communes = sorted(set(communes))
        if code not in official.index:
            notes.append(
                f"postcode {code} ({unit} {lines[i]}) is not in La Poste's list; communes taken from "
                f"the tax administration's street file: {', '.join(communes)}"
            )
        shares = _population_shares(communes, region)
        targets[i] = shares
        if len(communes) > 1:
            notes.append(
                f"postcode {code} ({unit} {lines[i]}) covers {len(communes)} communes; its counts were "
                f"split in proportion to population: {_percent(shares, region.units['name'])}"
            )
    return targets


def read_demand(
    path: str | pathlib.Path,
    region: Region,
    *,
    key: Literal["auto", "insee", "postcode"] = "auto",
    columns: list[str] | None = None,
    on_unknown: Literal["error", "report"] = "error",
) -> Demand:
    """Read aggregated counts per commune (or per postcode) from a CSV or Parquet file.

    Parameters
    ----------
    path
        CSV (separator ``;``, ``,`` or tab, detected from the header; encoding
        UTF-8 with or without BOM, else Windows-1252/Latin-1; decimal comma
        accepted with ``;``; spaces as thousands separators accepted) or
        Parquet file, one row per code, header on the first line.
    region
        The units the counts are mapped onto.
    key
        Which codes the file holds. ``"auto"``: a column named ``insee``,
        ``code_insee``, ``codgeo``, ``com``, ``code_commune`` (INSEE codes,
        preferred) or ``code_postal``, ``postcode``, ``cp``, ``code postal``
        (postcodes), case and accents ignored.
    columns
        Workload columns to read; default every other numeric column
        (descriptive columns such as ``commune``, ``nom``, ``dep``,
        ``population`` are ignored and noted).
    on_unknown
        Codes not in the region: ``"error"`` raises; ``"report"`` excludes
        them and lists them with their totals in the notes.

    Returns
    -------
    Demand
        ``table`` indexed like ``region.units.index``, one float column per
        workload column, 0 for units without a row. Totals are kept: the sum
        of each column equals the file's, minus excluded codes.

    Raises
    ------
    DemandError
        With the file, the line (as numbered in a spreadsheet, header = line 1;
        1-based row for Parquet), the column and the value, and what to do:
        empty file, no key or workload column, missing or malformed codes
        (including INSEE codes that lost their leading zero, e.g. ``1001``),
        duplicated codes, missing, non-numeric or negative counts, unknown
        codes, patient-level columns.

    Notes
    -----
    INSEE codes 69381..69389 (Lyon arrondissements) are merged into 69123
    when the region has Lyon as one commune; 69123 is split across the
    arrondissements in proportion to population when the region has them.
    A postcode covering several communes is split across them in proportion
    to population, using La Poste's pairs (``postcodes.csv``) restricted to
    the region (the tax administration's extra pairs only for postcodes La
    Poste does not list); every split is noted. A postcode that also covers
    communes outside the region is given wholly to its communes in the region.

    Example
    -------
    ``referrals.csv`` as saved by a French spreadsheet::

        code_insee;commune;referrals;home_care
        01001;L'Abergement-Clémenciat;2;0,5

    >>> demand = read_demand("referrals.csv", load_aura())  # doctest: +SKIP
    """
    # stays whole: read, pick the key and count columns, map codes to units, one report of every fault
    path = pathlib.Path(path)
    if on_unknown not in ("error", "report"):
        raise ValueError(f"on_unknown must be 'error' or 'report', got {on_unknown!r}")
    try:
        raw = read_table(path, "demand file")
    except DemandError:
        raise
    except TableError as err:  # the reader's message names the file and line
        raise DemandError(str(err)) from None
    patient = [c for c in raw.frame.columns if _normalise(c) in PATIENT_COLUMNS]
    if patient:
        raise DemandError(
            f"{path}, line 1: column {patient[0]!r} looks like patient-level data; only aggregated "
            "counts per commune are accepted (one row per commune). Aggregate the counts first and "
            "keep patient-level files out of this tool"
        )
    notes = raw.notes
    column, kind, other_keys = _key_column(raw, key, path, notes)
    workload = _workload_columns(raw, columns, [column, *other_keys], path, notes)
    codes = _parse_codes(raw, column, kind, path)
    values = _parse_counts(raw, workload, path)
    notes.append(
        f"key column {column!r} ({'INSEE codes' if kind == 'insee' else 'postcodes'}); "
        f"workload columns {', '.join(map(repr, workload))}"
    )
    try:
        finder = _insee_targets if kind == "insee" else _postcode_targets
        targets = finder(codes, region, raw.lines, raw.unit, notes)
    except DemandError as exc:
        raise DemandError(f"{path}: {exc}") from None
    unknown = [i for i in range(len(codes)) if i not in targets]
    if unknown:
        listed = [
            f"{codes[i]} ({raw.unit} {raw.lines[i]}: "
            + ", ".join(f"{c}={values.at[i, c]:g}" for c in workload)
            + ")"
            for i in unknown
        ]
        if on_unknown == "error":
            raise DemandError(
                f"{path}, column {column!r}: {len(unknown)} codes are not units of {region.name}: "
                f"{_listing(listed)}. Correct them, or pass on_unknown='report' to exclude them"
            )
        totals = ", ".join(f"{c}={values.loc[unknown, c].sum():g}" for c in workload)
        notes.append(
            f"{len(unknown)} codes not in {region.name} excluded (totals {totals}): {'; '.join(listed)}"
        )
    allocation = pd.DataFrame(
        [(i, unit, share) for i, shares in targets.items() for unit, share in shares.items()],
        columns=["row", "unit", "share"],
    )
    weighted = values.loc[allocation["row"]].to_numpy() * allocation[["share"]].to_numpy()
    table = (
        pd.DataFrame(weighted, columns=workload)
        .groupby(allocation["unit"].to_numpy())
        .sum()
        .reindex(region.units.index, fill_value=0.0)
        .astype(float)
    )
    table.index.name = region.units.index.name
    covered = int((table.sum(axis=1) > 0).sum())
    notes.append(
        f"{covered} of {len(table)} units have a non-zero count; totals "
        + ", ".join(f"{c}={table[c].sum():g}" for c in workload)
    )
    return Demand(table=table, source=str(path), notes=notes)


# --------------------------------------------------------------------------
# Synthetic demand
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class HuffModel:
    """Huff gravity model of where the patients of each commune are treated. SYNTHETIC.

    The probability that a patient living in commune ``i`` is referred to the
    target hospital ``t`` among the reference hospitals ``h`` of
    ``hospitals.csv`` is::

        P(t | i) = A_t d(i, t)^-beta / sum_h A_h d(i, h)^-beta

    with ``d`` the geodesic (great-circle) distance in km on WGS84 between the
    commune's inner point and the hospital, floored at ``min_distance_km``.

    Attributes
    ----------
    target
        Hospital id whose demand is modelled; ``"clb"`` = Centre Léon Bérard,
        the cancer centre in Lyon.
    attractiveness
        ``(hospital id, A)`` pairs; hospitals not listed get
        ``default_attractiveness``. The default ``A = 3`` for CLB against 1
        for the university hospitals (CHU) of Clermont-Ferrand, Grenoble and
        Saint-Étienne reflects its role as the regional reference cancer
        centre. An assumption, not an estimate.
    default_attractiveness
        ``A`` of hospitals not listed.
    distance_decay
        ``beta``, dimensionless; 2 is the classic gravity exponent.
    min_distance_km
        Floor on distances (km), so that a commune at the hospital's door
        does not get an infinite weight.
    home_care_decay_km
        Home care (delivered at home by the centre's teams) is further
        weighted by ``exp(-d(i, t) / home_care_decay_km)``: with 30 km, a
        commune 60 km from the target keeps ``exp(-2)`` ≈ 14 % of the weight
        of one next door.

    Example
    -------
    >>> HuffModel(distance_decay=1.5).distance_decay
    1.5
    """

    target: str = "clb"
    attractiveness: tuple[tuple[str, float], ...] = (("clb", 3.0),)
    default_attractiveness: float = 1.0
    distance_decay: float = 2.0
    min_distance_km: float = 5.0
    home_care_decay_km: float = 30.0

    def __post_init__(self) -> None:
        checks = {
            "default_attractiveness": self.default_attractiveness > 0,
            "distance_decay": self.distance_decay >= 0,
            "min_distance_km": self.min_distance_km > 0,
            "home_care_decay_km": self.home_care_decay_km > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"HuffModel.{name} = {getattr(self, name)} is out of range")
        bad = [h for h, a in self.attractiveness if not a > 0]
        if bad:
            raise ValueError(f"HuffModel.attractiveness of {bad} must be > 0")

    def distances_km(self, lon: np.ndarray, lat: np.ndarray, hospitals: pd.DataFrame) -> np.ndarray:
        """Geodesic km from each point (rows) to each hospital (columns), floored at ``min_distance_km``."""
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        n, h = len(lon), len(hospitals)
        _, _, metres = pyproj.Geod(ellps="WGS84").inv(
            np.repeat(lon, h), np.repeat(lat, h),
            np.tile(hospitals["lon"].to_numpy(float), n), np.tile(hospitals["lat"].to_numpy(float), n),
        )  # fmt: skip
        return np.maximum(np.asarray(metres).reshape(n, h) / 1000.0, self.min_distance_km)

    def target_share(self, lon: np.ndarray, lat: np.ndarray, hospitals: pd.DataFrame) -> np.ndarray:
        """``P(target | i)`` for each point, in [0, 1]."""
        ids = hospitals["id"].tolist()
        if self.target not in ids:
            raise ValueError(f"HuffModel.target {self.target!r} is not a hospital id of hospitals.csv: {ids}")
        given = dict(self.attractiveness)
        a = np.array([given.get(h, self.default_attractiveness) for h in ids])
        pull = a * self.distances_km(lon, lat, hospitals) ** -self.distance_decay
        return pull[:, ids.index(self.target)] / pull.sum(axis=1)


def _draw(rng: np.random.Generator, total: float, weight: np.ndarray, what: str) -> np.ndarray:
    if not (math.isfinite(total) and total >= 0):
        raise ValueError(f"{what} must be a finite number >= 0, got {total}")
    if weight.sum() <= 0:
        raise ValueError(f"cannot draw {what}: every unit has population 0")
    return rng.multinomial(int(round(total)), weight / weight.sum()).astype(float)


def synthetic_demand(
    region: Region,
    *,
    seed: int = 0,
    referrals_per_year: float = 1350.0,
    home_care_patients: float = 600.0,
    model: HuffModel = HuffModel(),
) -> Demand:
    """SYNTHETIC demand for demonstrations and tests: not real patient data.

    Each unit's expected counts are proportional to its population times the
    share of its patients referred to the Lyon cancer centre under the Huff
    gravity model ``model`` (:class:`HuffModel`):

    - ``referrals`` (referrals/year): ``lambda_i ∝ population_i · P(clb | i)``;
    - ``home_care`` (active home-care patients): ``lambda_i ∝ population_i ·
      P(clb | i) · exp(-d(i, clb) / model.home_care_decay_km)``, concentrated
      around Lyon.

    Counts are then drawn with a multinomial, so each total is exactly the
    rounded target and every count is a whole number.

    Parameters
    ----------
    region
        Units with ``population``, ``lon``, ``lat``.
    seed
        Seed of :func:`numpy.random.default_rng`; the same seed gives the
        same table.
    referrals_per_year
        Total referrals/year over the region (default 1,350).
    home_care_patients
        Total active home-care patients over the region (default 600).
    model
        Gravity model parameters.

    Returns
    -------
    Demand
        Columns ``referrals`` and ``home_care`` (floats holding whole
        numbers); the notes say SYNTHETIC and give the parameters.

    Example
    -------
    >>> demand = synthetic_demand(load_aura(), seed=1)  # doctest: +SKIP
    >>> demand.table["referrals"].sum()  # doctest: +SKIP
    1350.0
    """
    units = region.units
    hospitals = load_hospitals()
    share = model.target_share(units["lon"].to_numpy(), units["lat"].to_numpy(), hospitals)
    target_km = model.distances_km(units["lon"].to_numpy(), units["lat"].to_numpy(), hospitals)[
        :, hospitals["id"].tolist().index(model.target)
    ]
    population = units["population"].to_numpy(float)
    rng = np.random.default_rng(seed)
    referrals = _draw(rng, referrals_per_year, population * share, "referrals_per_year")
    home_weight = population * share * np.exp(-target_km / model.home_care_decay_km)
    home_care = _draw(rng, home_care_patients, home_weight, "home_care_patients")
    table = pd.DataFrame({"referrals": referrals, "home_care": home_care}, index=units.index)
    notes = [
        "SYNTHETIC demand, not real patient data: drawn from a Huff gravity model "
        f"(target {model.target}, attractiveness {dict(model.attractiveness)} else "
        f"{model.default_attractiveness:g}, distance decay {model.distance_decay:g}, minimum distance "
        f"{model.min_distance_km:g} km, home-care decay {model.home_care_decay_km:g} km), seed {seed}; "
        f"totals referrals={referrals.sum():g}/year, home_care={home_care.sum():g} patients"
    ]
    return Demand(table=table, source=f"synthetic (Huff gravity model, seed {seed})", notes=notes)


def demand_summary(demand: Demand, region: Region) -> pd.DataFrame:
    """Totals per department: one row per ``dep`` of ``region.units``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``dep``, with ``units``, ``population`` (inhabitants) and
        each workload column summed (same units as the demand).
    """
    if "dep" not in region.units.columns:
        raise ValueError(f"region {region.name!r} has no 'dep' column to group by")
    joined = demand.table.join(region.units[["dep", "population"]], how="left")
    summary = joined.groupby("dep").agg(
        units=("population", "size"),
        population=("population", "sum"),
        **{c: (c, "sum") for c in demand.table.columns},
    )
    return summary
