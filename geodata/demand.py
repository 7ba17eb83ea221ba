"""Demand: aggregated counts per commune (referrals/year, active home-care patients, ...).

Only aggregated counts per commune are handled here, never patient-level
records. Two sources:

- :func:`read_demand` reads a CSV, Excel (``.xlsx``) or Parquet table
  exported by the hospital (French office-software conventions accepted:
  ``;`` separator, decimal comma, UTF-8 with BOM or Latin-1), keyed by INSEE
  code or by postcode.
  Columns are picked by name, by pattern or by position and named by their
  role (``referrals``, ``home_care``, ``follow_up``, ...); every faulty row is
  reported at once; with ``repair=True`` the obvious fixes (lost leading
  zeros, total rows, Lyon given twice, old commune codes, out-of-region
  codes) are applied and listed.
- :func:`synthetic_demand` draws a SYNTHETIC demand from a Huff gravity
  model, for demonstrations and tests when no real counts are at hand.

Example
-------
>>> from geodata.regions import load_aura
>>> region = load_aura()
>>> demand = read_demand("signalements_2025.csv", region, repair=True,  # doctest: +SKIP
...                      columns={"referrals": "Nb signalements *", "home_care": "#4"})
>>> demand.table["referrals"].sum()  # doctest: +SKIP
>>> demand.excluded.groupby("department")["referrals"].sum()  # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import math
import os
import pathlib
import re
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyproj

from geodata.codes import FRENCH_DEPARTMENTS, current_code, department_of
from geodata.reference import load_arrondissements, load_hospitals, load_postcodes
from geodata.regions import LYON, Region
from geodata.tables import RawTable, TableError, as_number, as_text, read_table

#: Columns of :attr:`DemandError.problems` (and of the problems file).
PROBLEM_COLUMNS = ["line", "column", "value", "kind", "repairable", "message"]


class DemandError(TableError):
    """A demand file cannot be used as it is; the message says where and what to do.

    Attributes
    ----------
    problems
        Every problem found, one row each: ``line`` (spreadsheet line, header
        = 1; the row as Excel shows it; Parquet row), ``column``, ``value`` (the cell as written),
        ``kind`` (e.g. ``"negative count"``), ``repairable`` (``True`` when
        ``repair=True`` would fix it) and ``message``. Empty for errors that
        stop the reading at once (file missing or empty, no key column).
    problems_file
        CSV file (``;``, UTF-8 with BOM) holding ``problems`` when the message
        could not list them all, else ``None``.
    """

    def __init__(self, message: str, problems: pd.DataFrame | None = None,
                 problems_file: pathlib.Path | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else pd.DataFrame(columns=PROBLEM_COLUMNS)
        self.problems_file = problems_file


# --------------------------------------------------------------------------
# Excluded rows and repairs
# --------------------------------------------------------------------------

#: ``Demand.excluded.reason``: a code of a French department outside the region's departments.
OUTSIDE_REGION = "outside the region"
#: ``Demand.excluded.reason``: a code that is not a unit (nor an old code of one) of the region's
#: departments, or of no French department (kept only with ``on_unknown="report"``).
UNKNOWN_CODE = "unknown code"
#: ``Demand.excluded.reason``: an old commune code, left out because ``repair`` is off
#: (``on_unknown="report"``); with ``repair=True`` it is mapped to its current commune instead.
OLD_CODE = "old code, not repaired"
#: ``Demand.excluded.reason``: a total or subtotal row dropped by ``repair=True`` (its counts
#: are the sum of other rows: leave these rows out when counting referrals).
TOTAL_ROW = "total row"

#: First columns of ``Demand.excluded``; one float column per demand column follows.
EXCLUDED_COLUMNS = ["code", "department", "reason"]
#: Columns of ``Demand.repairs``.
REPAIR_COLUMNS = ["line", "column", "original", "repaired", "rule", "detail"]

#: Every note about excluded rows starts with this (the command line prints them on stdout).
EXCLUDED_NOTE = "excluded from the demand"
#: Every note about a repair starts with this (the command line prints them on stderr).
REPAIR_NOTE = "demand repaired"

#: Repair rules (``Demand.repairs.rule``).
RULE_ZERO = "leading zero restored"
RULE_TOTAL = "total row dropped"
RULE_LYON = "Lyon given twice"
RULE_OLD = "old code mapped"
RULE_OUTSIDE = "outside the region"


def empty_excluded(columns: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """An empty ``Demand.excluded`` table: ``code``, ``department``, ``reason`` (str) and one
    float column per name of ``columns``."""
    frame = pd.DataFrame({c: pd.Series(dtype=str) for c in EXCLUDED_COLUMNS})
    for column in columns:
        frame[column] = pd.Series(dtype=float)
    return frame


def empty_repairs() -> pd.DataFrame:
    """An empty ``Demand.repairs`` table (columns :data:`REPAIR_COLUMNS`)."""
    frame = pd.DataFrame({c: pd.Series(dtype=str) for c in REPAIR_COLUMNS})
    frame["line"] = pd.Series(dtype=int)
    return frame


@dataclass
class Demand:
    """Workload measures per unit of a region.

    Attributes
    ----------
    table
        DataFrame indexed like ``region.units.index``, one float column per
        workload measure, named by its role when the columns were chosen by
        role (e.g. ``referrals`` in referrals/year, ``home_care`` in active
        patients, ``follow_up`` in patients in follow-up); 0 for units absent
        from the source.
    source
        Where the counts come from (file path, or ``"synthetic ..."``).
    notes
        Human-readable reports: how the file was read, codes excluded
        (notes starting with :data:`EXCLUDED_NOTE`), repairs (starting with
        :data:`REPAIR_NOTE`), postcodes split across communes, Lyon
        arrondissements merged or split.
    excluded
        Rows of the file whose counts are in no unit: one row each, columns
        ``code`` (str, as written after repair, e.g. ``"71270"``, or the
        cell of a total row, e.g. ``"TOTAL"``), ``department`` (str, 2 or 3
        characters from the code, e.g. ``"71"``, ``"2A"``, ``"971"``; ``""``
        for a total row), ``reason`` (:data:`OUTSIDE_REGION`,
        :data:`UNKNOWN_CODE`, :data:`OLD_CODE` or :data:`TOTAL_ROW`) and one
        float column per column of ``table`` (same names and units: the
        counts left out). Out-of-region referrals by department:
        ``excluded[excluded.reason != TOTAL_ROW].groupby("department").sum()``
        (see :func:`excluded_by_department`).
    repairs
        One row per repair made with ``repair=True``: ``line`` (int,
        spreadsheet line), ``column`` (of the file), ``original`` and
        ``repaired`` (cell before and after; ``""`` when the row was
        dropped), ``rule`` (:data:`RULE_ZERO`, :data:`RULE_TOTAL`,
        :data:`RULE_LYON`, :data:`RULE_OLD`, :data:`RULE_OUTSIDE`) and
        ``detail`` (one sentence).
    headers
        Column of ``table`` -> header of the file it was read from (e.g.
        ``{"referrals": "Nb signalements 2025"}``); empty for synthetic demand.
    """

    table: pd.DataFrame
    source: str
    notes: list[str] = field(default_factory=list)
    excluded: pd.DataFrame = field(default_factory=empty_excluded)
    repairs: pd.DataFrame = field(default_factory=empty_repairs)
    headers: dict[str, str] = field(default_factory=dict)


def excluded_by_department(demand: Demand) -> pd.DataFrame:
    """Counts left out of the plan by department, total rows left aside.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``department`` (str), columns ``rows`` (int, rows of the
        file) and one float column per demand column (same units as
        ``demand.table``); empty when nothing was excluded.

    Example
    -------
    >>> excluded_by_department(demand)  # doctest: +SKIP
                rows  referrals  home_care
    department
    71             2        5.0        1.0
    """
    columns = [c for c in demand.table.columns if c in demand.excluded.columns]
    rows = demand.excluded.loc[demand.excluded["reason"] != TOTAL_ROW]
    summary = rows.groupby("department").agg(rows=("code", "size"), **{c: (c, "sum") for c in columns})
    return summary.astype({c: float for c in columns})


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
_CODE_LIKE = re.compile(r"^(\d{4,5}|2[AB]\d{3})$")
#: A total or subtotal label, once normalised (``"Total général"`` -> ``"total_general"``).
_TOTAL_LABEL = re.compile(r"^(sous_?total|sub_?total|grand_?total|total|totaux)(?![a-z0-9])")
_POSITION = re.compile(r"^#\s*(\d+)$")
_MAX_LISTED = 10
_REPAIR_HINT = "or re-run with --repair (demand.repair = true) to accept this fix"


def _normalise(column: str) -> str:
    """Column name compared to the lists above: ``"Code Postal"`` → ``"code_postal"``."""
    text = unicodedata.normalize("NFKD", str(column)).encode("ascii", "ignore").decode()
    return re.sub(r"[\s\-.]+", "_", text.strip().lower())


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:_MAX_LISTED])
    return shown + (f"; ... ({len(items)} in all)" if len(items) > _MAX_LISTED else "")


def is_total_label(text: object) -> bool:
    """Whether a cell reads as a total or subtotal label.

    The cell, lower-cased without accents, starts with the word ``total``,
    ``totaux``, ``sous-total``/``sous total``, ``subtotal`` or ``grand
    total`` (``"TOTAL"``, ``"Total général"``, ``"Total Isère"``,
    ``"Sous-total 38"``); ``"Totalité"`` or ``"Saint-Total"`` do not.

    Example
    -------
    >>> is_total_label("Total Isère"), is_total_label("Sous-total"), is_total_label("Totalité")
    (True, True, False)
    """
    return bool(_TOTAL_LABEL.match(_normalise(as_text(text))))


# --------------------------------------------------------------------------
# One pass: every problem of the file collected, then one error
# --------------------------------------------------------------------------

#: What to do, per kind of problem (the end of the error message).
_ADVICE = {
    "patient-level column": "only aggregated counts per commune are accepted (one row per commune); "
                            "aggregate the counts first and keep patient-level files out of this tool",
    "column": "name each demand column by its exact header, a pattern such as \"Nb signalements *\" or a "
              "position such as \"#3\" (demand.columns)",
    "missing code": "give every row its code, or delete the row",
    "lost leading zero": "format the code column as text before export (e.g. '01001', not 1001), " + _REPAIR_HINT,
    "malformed code": "codes have 5 characters: INSEE code e.g. '01001', postcode e.g. '01090'",
    "total row": "delete total and subtotal rows (the plan sums the communes itself), " + _REPAIR_HINT,
    "duplicated code": "Aggregate them first (one row per code, counts summed)",
    "count not a number": "Counts must be numbers >= 0, one per cell; correct these cells and export again",
    "missing count": "write 0 where there is no count",
    "negative count": "Counts must be numbers >= 0; correct these cells and export again",
    "Lyon given twice": "keep either Lyon 69123 or its arrondissements 69381..69389, not both, " + _REPAIR_HINT
                        + " (the commune's counts are then merged or split by population with the arrondissements')",
    "old code": "replace each old code by its current commune's code, " + _REPAIR_HINT
                + " (the counts are then added to the current commune)",
    "outside the region": "remove these rows, " + _REPAIR_HINT + " (they are then counted as excluded referrals "
                          "by department, in no sector; on_unknown='report' does the same)",
    "unknown code": "correct them, or pass on_unknown='report' (demand.on_unknown = \"report\") to exclude them",
}


class _Collector:
    """Problems and repairs of one file, gathered while reading it."""

    def __init__(self, path: pathlib.Path, raw: RawTable) -> None:
        self.path, self.raw = path, raw
        self.problems: list[dict] = []
        self.repairs: list[dict] = []

    def where(self, line: int, column: str | None) -> str:
        return f"{self.raw.unit} {line}" + (f", column {column!r}" if column is not None else "")

    def problem(self, line: int, column: str | None, value: object, kind: str, text: str,
                repairable: bool = False) -> None:
        cell = as_text(value)
        self.problems.append({
            "line": int(line), "column": "" if column is None else str(column), "value": cell[:60],
            "kind": kind, "repairable": repairable, "message": f"{self.where(line, column)}: {text}",
        })

    def repair(self, line: int, column: str, original: str, repaired: str, rule: str, detail: str) -> None:
        self.repairs.append({"line": int(line), "column": str(column), "original": original,
                             "repaired": repaired, "rule": rule, "detail": detail})

    def raise_if_any(self, problems_dir: str | pathlib.Path | None) -> None:
        if not self.problems:
            return
        table = pd.DataFrame(self.problems, columns=PROBLEM_COLUMNS).sort_values("line", kind="stable")
        counts = table["kind"].value_counts(sort=False)
        n = len(table)
        head = (f"{self.raw.place(self.path)}: {n} problem{'s' if n > 1 else ''} in the demand file, nothing was read ("
                + ", ".join(f"{k}: {v}" for k, v in counts.items()) + ")")
        lines = [head, *("  " + m for m in table["message"].head(_MAX_LISTED))]
        written = None
        if n > _MAX_LISTED:
            try:
                written = write_problems(table, self.path, problems_dir)
                lines.append(f"  ... and {n - _MAX_LISTED} more: the full list is in {written}")
            except OSError as exc:  # the error itself must still reach the user
                lines.append(f"  ... and {n - _MAX_LISTED} more (the full list could not be written: {exc})")
        lines.append("What to do:")
        lines += [f"  - {kind}: {_ADVICE[kind]}" for kind in counts.index if kind in _ADVICE]
        if table["repairable"].any() and table["repairable"].all():
            lines.append("  Every problem above has an obvious fix: re-run with --repair (demand.repair = true) "
                         "to accept them; each repair is then listed")
        raise DemandError("\n".join(lines), problems=table.reset_index(drop=True), problems_file=written)


def write_problems(problems: pd.DataFrame, demand_path: pathlib.Path,
                   folder: str | pathlib.Path | None = None) -> pathlib.Path:
    """Write the full list of a demand file's problems; never overwrites a file.

    Parameters
    ----------
    problems
        Table with columns :data:`PROBLEM_COLUMNS`.
    demand_path
        The demand file, whose stem names the list.
    folder
        Where to write; default ``<system temp dir>/sectorize-problems``
        (:func:`tempfile.gettempdir`), never the demand file's own folder
        (which may be a read-only or shared drive).

    Returns
    -------
    pathlib.Path
        ``<folder>/<stem>.problems-<YYYYmmdd-HHMMSS>.csv`` (``-2``, ``-3``
        ... appended when taken): ``;`` separated, UTF-8 with BOM, written to
        a temporary file then renamed into place (atomic). It holds codes,
        counts and header names only, as the demand file does.
    """
    folder = pathlib.Path(folder) if folder is not None else pathlib.Path(tempfile.gettempdir()) / "sectorize-problems"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{demand_path.stem}.problems-{time.strftime('%Y%m%d-%H%M%S')}"
    target, n = folder / f"{stem}.csv", 2
    while target.exists():
        target, n = folder / f"{stem}-{n}.csv", n + 1
    handle, staging = tempfile.mkstemp(dir=folder, prefix=f".{stem}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8-sig", newline="") as out:
            written = problems[PROBLEM_COLUMNS].assign(repairable=problems["repairable"].map({True: "1", False: "0"}))
            written.to_csv(out, sep=";", index=False, lineterminator="\n")  # booleans 1/0, as every French CSV
        os.replace(staging, target)
    except BaseException:
        pathlib.Path(staging).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------
# Columns: key and workload (by role, by name, or detected)
# --------------------------------------------------------------------------


def _key_column(raw: RawTable, key: str, path: pathlib.Path, notes: list[str]) -> tuple[str, str, list[str]]:
    """(column, kind, other key-like columns) for ``key`` in ``"auto" | "insee" | "postcode"``."""
    found = {
        "insee": [c for c in raw.frame.columns if _normalise(c) in INSEE_COLUMNS],
        "postcode": [c for c in raw.frame.columns if _normalise(c) in POSTCODE_COLUMNS],
    }
    accepted = {"insee": INSEE_COLUMNS, "postcode": POSTCODE_COLUMNS}
    kind = key if key != "auto" else ("insee" if found["insee"] else "postcode")
    if not found[kind]:
        wanted = (
            f"{', '.join(INSEE_COLUMNS)} (INSEE codes) or {', '.join(POSTCODE_COLUMNS)} (postcodes)"
            if key == "auto"
            else ", ".join(accepted[kind])
        )
        raise DemandError(
            f"{raw.place(path)}, {raw.unit} {raw.header_line}: no key column among {list(raw.frame.columns)}; "
            "name the column holding "
            f"the codes one of: {wanted} (case, accents and spaces ignored, e.g. 'Code INSEE')"
        )
    if len(found[kind]) > 1:
        raise DemandError(
            f"{raw.place(path)}, {raw.unit} {raw.header_line}: several {kind} columns {found[kind]}; "
            "keep one (rename or delete the others)"
        )
    column = found[kind][0]
    others = [c for k in found for c in found[k] if c != column]
    for other in others:
        notes.append(f"column {other!r} (codes) ignored: the key is column {column!r}")
    return column, kind, others


def _fold(text: str) -> str:
    """Header or pattern compared case- and accent-insensitively, blanks collapsed."""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return re.sub(r"\s+", " ", text).strip().casefold()


def find_column(headers: list[str], spec: str) -> list[str]:
    """Headers matching a column spec: exact name, pattern or position.

    Parameters
    ----------
    headers
        The file's column names, in order.
    spec
        ``"#3"``: the third column (1-based); a glob pattern with ``*``,
        ``?`` or ``[...]`` (``"Nb signalements *"``), compared without case,
        accents or repeated blanks; else a name: the header written exactly
        so, or failing that the headers equal to it without case, accents or
        repeated blanks.

    Returns
    -------
    list of str
        The matching headers (exactly one is wanted; the caller reports
        none or several). A position out of range gives ``[]``.

    Example
    -------
    >>> find_column(["Code INSEE", "Nb signalements 2026", "Patients HAD 2026"], "nb SIGNALEMENTS *")
    ['Nb signalements 2026']
    >>> find_column(["Code INSEE", "Nb signalements 2026"], "#2")
    ['Nb signalements 2026']
    """
    position = _POSITION.match(spec.strip())
    if position:
        i = int(position.group(1))
        return [headers[i - 1]] if 1 <= i <= len(headers) else []
    if any(c in spec for c in "*?["):
        pattern = _fold(spec)
        return [h for h in headers if fnmatch.fnmatchcase(_fold(h), pattern)]
    if spec in headers:
        return [spec]
    return [h for h in headers if _fold(h) == _fold(spec)]


def _role_columns(raw: RawTable, roles: dict[str, str], exclude: list[str], report: _Collector,
                  notes: list[str]) -> dict[str, str]:
    """Role -> header, each spec resolved to exactly one column (problems collected)."""
    headers = list(raw.frame.columns)
    chosen: dict[str, str] = {}
    for role, spec in roles.items():
        matches = find_column(headers, spec)
        how = ("position" if _POSITION.match(spec.strip()) else
               "pattern" if any(c in spec for c in "*?[") else "name")
        if len(matches) != 1:
            text = (f"demand column {role!r} is given by {how} {spec!r}, which "
                    + ("matches no column" if not matches else f"matches {len(matches)} columns {matches}")
                    + f"; the columns are {headers}"
                    + ("; make the pattern more precise" if len(matches) > 1 else ""))
            report.problem(raw.header_line, None, spec, "column", text)
            continue
        header = matches[0]
        if header in exclude:
            report.problem(raw.header_line, header, spec, "column",
                           f"demand column {role!r} ({how} {spec!r}) is {header!r}, which holds codes or "
                           "patient-level data, not counts")
            continue
        twice = [r for r, h in chosen.items() if h == header]
        if twice:
            report.problem(raw.header_line, header, spec, "column",
                           f"demand columns {twice[0]!r} and {role!r} both name the column {header!r}; "
                           "give each role its own column")
            continue
        chosen[role] = header
    ignored = [c for c in headers if c not in chosen.values() and c not in exclude]
    if ignored:
        notes.append(f"columns {', '.join(map(repr, ignored))} ignored (not a demand column)")
    return chosen


def _workload_columns(raw: RawTable, columns: list[str] | dict[str, str] | None, exclude: list[str],
                      report: _Collector, notes: list[str]) -> dict[str, str]:
    """Name in the demand table -> header of the file (problems collected, none raised)."""
    if isinstance(columns, dict):
        return _role_columns(raw, columns, exclude, report, notes)
    available = [c for c in raw.frame.columns if c not in exclude]
    if columns is not None:
        if not columns:
            report.problem(raw.header_line, None, "", "column",
                           "columns=[] selects no workload column; name at least one")
        chosen = {}
        for name in columns:
            if name not in raw.frame.columns:
                report.problem(raw.header_line, name, name, "column",
                               f"no column {name!r}; columns are {list(raw.frame.columns)}")
            elif name in exclude:
                report.problem(raw.header_line, name, name, "column",
                               f"column {name!r} holds codes or patient-level data, it cannot be a workload column")
            else:
                chosen[name] = name
        return chosen
    chosen, text = {}, []
    for column in available:
        cells = [(line, v) for line, v in zip(raw.lines, raw.frame[column]) if as_text(v) != ""]
        if _normalise(column) in DESCRIPTIVE_COLUMNS:
            notes.append(f"column {column!r} ignored (descriptive); pass columns=[...] to use it")
        elif not cells:
            notes.append(f"column {column!r} ignored (empty)")
        elif any(as_number(v, raw.decimal_comma) is not None for _, v in cells):
            chosen[column] = column
        else:
            text.append(f"{column!r} (text, e.g. {as_text(cells[0][1])!r} on {raw.unit} {cells[0][0]})")
            notes.append(f"column {column!r} ignored (text)")
    if not chosen:
        report.problem(raw.header_line, None, "", "column",
            f"no workload column (numeric counts) among {available}"
            + (f"; {', '.join(text)}" if text else "")
            + "; add a column of counts per commune, e.g. 'referrals', or name it with columns=[...]",
        )
    return chosen


# --------------------------------------------------------------------------
# Rows: total rows, codes, counts
# --------------------------------------------------------------------------


def _total_rows(raw: RawTable, column: str, workload: list[str]) -> dict[int, str]:
    """Row position -> label of the total and subtotal rows.

    A total row is one whose key cell is a total label (:func:`is_total_label`),
    or whose key cell is no code at all (empty, or not 4-5 characters of a
    code, e.g. ``"38"``) while another non-count cell is a total label. A
    row whose key cell looks like a code is never one.
    """
    others = [c for c in raw.frame.columns if c != column and c not in workload]
    totals = {}
    for i, cell in enumerate(raw.frame[column]):
        text = as_text(cell)
        if is_total_label(text):
            totals[i] = text
        elif not _CODE_LIKE.match(text.upper()):
            label = next((as_text(raw.frame.at[i, c]) for c in others if is_total_label(raw.frame.at[i, c])), None)
            if label is not None:
                totals[i] = label if not text else f"{text} {label}"
    return totals


def _parse_codes(raw: RawTable, column: str, kind: str, skip: set[int], repair: bool,
                 report: _Collector) -> dict[int, str]:
    """Row position -> well-formed code (leading zeros restored with ``repair``); problems collected."""
    pattern, example = (_INSEE, "01001") if kind == "insee" else (_POSTCODE, "01090")
    label, article = ("INSEE code", "an") if kind == "insee" else ("postcode", "a")
    codes: dict[int, str] = {}
    for i, (line, cell) in enumerate(zip(raw.lines, raw.frame[column])):
        if i in skip:
            continue
        code = as_text(cell).upper()
        if code == "":
            report.problem(line, column, cell, "missing code", f"the {label} is missing")
            continue
        if re.fullmatch(r"\d{4}", code):
            if repair:
                report.repair(line, column, code, "0" + code, RULE_ZERO, f"the {label} had lost its leading zero")
                code = "0" + code
            else:
                report.problem(
                    line, column, cell, "lost leading zero",
                    f"{label} {code!r} has 4 digits: it lost its leading zero (the spreadsheet stored it as a "
                    f"number); write it as '0{code}'",
                    repairable=True,
                )
                code = "0" + code  # checked further, so that every problem of the row is reported at once
        if not pattern.match(code):
            report.problem(line, column, cell, "malformed code",
                           f"{code!r} is not {article} {label} (5 characters, e.g. '{example}')")
            continue
        codes[i] = code
    lines_of: dict[str, list[int]] = {}
    for i, code in codes.items():
        lines_of.setdefault(code, []).append(int(raw.lines[i]))
    for code, lines in lines_of.items():
        if len(lines) > 1:
            report.problem(lines[1], column, code, "duplicated code",
                           f"{label} {code} appears on several {raw.unit}s: {raw.unit}s {', '.join(map(str, lines))}")
    return codes


def _parse_counts(raw: RawTable, columns: dict[str, str], skip: set[int], report: _Collector) -> pd.DataFrame:
    """Demand columns as floats (named by role); blank, non-numeric or negative cells collected."""
    values = pd.DataFrame(index=raw.frame.index)
    for name, header in columns.items():
        numbers = [as_number(v, raw.decimal_comma) for v in raw.frame[header]]
        for i, (line, cell, number) in enumerate(zip(raw.lines, raw.frame[header], numbers)):
            if i in skip:
                continue
            if number is None:
                hint = " (use ';' as separator to write decimal commas)" if "," in str(cell) else ""
                if str(cell).startswith("="):
                    hint = (" (a formula without a saved value: open the file in Excel or LibreOffice and save it, "
                            "so that its values are stored)")
                report.problem(line, header, cell, "count not a number", f"{str(cell)!r} is not a number{hint}")
            elif math.isnan(number):
                report.problem(line, header, cell, "missing count",
                               "the count is missing (write 0 if there is none)")
            elif number < 0:
                report.problem(line, header, cell, "negative count", f"negative count {as_text(cell)!r}")
        values[name] = [math.nan if n is None else n for n in numbers]
    return values


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


def region_departments(region: Region) -> set[str]:
    """Departments of a region: its ``dep`` column, else the prefixes of its INSEE-like keys."""
    if "dep" in region.units.columns:
        return {as_text(d) for d in region.units["dep"].unique() if as_text(d)}
    return {department_of(k) for k in map(str, region.units.index) if _INSEE.match(k)}


class _Mapper:
    """Where the counts of each row go (shares per unit), or why they go nowhere."""

    def __init__(self, codes: dict[int, str], kind: str, raw: RawTable, column: str, region: Region,
                 repair: bool, on_unknown: str, report: _Collector, notes: list[str]) -> None:
        self.codes, self.kind, self.raw, self.column, self.region = codes, kind, raw, column, region
        self.repair, self.on_unknown, self.report, self.notes = repair, on_unknown, report, notes
        self.keys = set(region.units.index)
        self.departments = region_departments(region)
        self.targets: dict[int, pd.Series] = {}
        self.excluded: dict[int, str] = {}  # row -> reason
        self.reported: set[int] = set()  # rows already reported as a problem

    def line(self, i: int) -> int:
        return int(self.raw.lines[i])

    def run(self) -> None:
        if self.kind == "insee":
            self._insee()
        else:
            self._postcodes()
        for i, code in self.codes.items():
            if i not in self.targets:
                self._outside_or_unknown(i, code)

    # INSEE codes ---------------------------------------------------------
    def _direct(self, code: str, arr_codes: set[str], arr_in: list[str]) -> pd.Series | None:
        if code in self.keys:
            return pd.Series({code: 1.0})
        if code in arr_codes and LYON in self.keys:
            return pd.Series({LYON: 1.0})
        if code == LYON and arr_in:
            return _population_shares(arr_in, self.region)
        return None

    def _insee(self) -> None:
        arrondissements = load_arrondissements()
        arr_codes = set(arrondissements.loc[arrondissements["parent"] == LYON, "insee"])
        arr_in = sorted(arr_codes & self.keys)
        unit = self.raw.unit
        for i, code in self.codes.items():
            shares = self._direct(code, arr_codes, arr_in)
            if shares is not None:
                self.targets[i] = shares
                continue
            match = current_code(code)
            if match.status != "changed" or self._direct(match.current, arr_codes, arr_in) is None:
                continue
            if self.repair:
                self.targets[i] = self._direct(match.current, arr_codes, arr_in)
                self.report.repair(self.line(i), self.column, code, match.current, RULE_OLD, match.rule)
            elif self.on_unknown == "report":
                self.excluded[i] = OLD_CODE
            else:
                self.report.problem(self.line(i), self.column, code, "old code",
                                    f"{match.rule}; write {match.current}", repairable=True)
                self.reported.add(i)
        lyon_rows = [i for i, c in self.codes.items() if c == LYON and LYON not in self.keys and i in self.targets]
        arr_rows = [i for i, c in self.codes.items() if c in arr_codes and c not in self.keys and i in self.targets]
        given_lyon = [i for i, c in self.codes.items() if c == LYON]
        given_arr = [i for i, c in self.codes.items() if c in arr_codes]
        names = self.region.units["name"]
        if given_lyon and given_arr and (LYON in self.keys or arr_in):
            rows = sorted(given_lyon + given_arr, key=self.line)
            listed = [f"{unit} {self.line(i)} ({self.codes[i]})" for i in rows]
            if not self.repair:
                self.report.problem(
                    self.line(rows[0]), self.column, LYON, "Lyon given twice",
                    f"both Lyon ({LYON}) and its arrondissements (6938x) have rows: {_listing(listed)}; keep "
                    "either the commune or its arrondissements, not both", repairable=True)
                return
            if LYON in self.keys:
                rule = f"arrondissements summed into Lyon {LYON} with the commune's own row"
            else:
                rule = (f"Lyon {LYON} split over its arrondissements in proportion to population, added to "
                        "the arrondissements' own rows")
            for i in given_lyon if LYON not in self.keys else given_arr:
                repaired = LYON if LYON in self.keys else "69381..69389"
                self.report.repair(self.line(i), self.column, self.codes[i], repaired, RULE_LYON,
                                   f"both Lyon and arrondissements in the file ({'; '.join(listed)}): {rule}")
        if arr_rows:
            merged = [f"{self.codes[i]} ({unit} {self.line(i)})" for i in arr_rows]
            self.notes.append(f"Lyon arrondissements {', '.join(merged)} merged into the commune of Lyon {LYON}")
        if lyon_rows:
            shares = self.targets[lyon_rows[0]]
            self.notes.append(
                f"Lyon ({LYON}, {unit} {self.line(lyon_rows[0])}) split across its arrondissements in "
                f"proportion to population: {_percent(shares, names)}"
            )

    # Postcodes -----------------------------------------------------------
    def _postcodes(self) -> None:
        pairs = load_postcodes()
        pairs = pairs.loc[pairs["insee"].isin(self.region.units.index)]
        official = pairs.loc[pairs["source"] == "laposte_via_etalab"].groupby("postcode")["insee"].agg(list)
        extra = pairs.loc[pairs["source"] != "laposte_via_etalab"].groupby("postcode")["insee"].agg(list)
        unit, names = self.raw.unit, self.region.units["name"]
        for i, code in self.codes.items():
            communes = official.get(code) or extra.get(code)
            if not communes:
                continue
            communes = sorted(set(communes))
            if code not in official.index:
                self.notes.append(
                    f"postcode {code} ({unit} {self.line(i)}) is not in La Poste's list; communes taken from "
                    f"the tax administration's street file: {', '.join(communes)}"
                )
            shares = _population_shares(communes, self.region)
            self.targets[i] = shares
            if len(communes) > 1:
                self.notes.append(
                    f"postcode {code} ({unit} {self.line(i)}) covers {len(communes)} communes; its counts were "
                    f"split in proportion to population: {_percent(shares, names)}"
                )

    # Neither ---------------------------------------------------------------
    def _outside_or_unknown(self, i: int, code: str) -> None:
        if i in self.excluded or i in self.reported:
            return
        label = "INSEE code" if self.kind == "insee" else "postcode"
        department = department_of(code, self.kind)
        if department in FRENCH_DEPARTMENTS and department not in self.departments:
            if self.repair or self.on_unknown == "report":
                self.excluded[i] = OUTSIDE_REGION
                if self.repair:
                    self.report.repair(self.line(i), self.column, code, "", RULE_OUTSIDE,
                                       f"{label} {code} (department {department}) is outside {self.region.name}: "
                                       "counted as an excluded referral, in no sector")
            else:
                self.report.problem(
                    self.line(i), self.column, code, "outside the region",
                    f"{label} {code} is in department {department}, outside the region ({self.region.name})",
                    repairable=True)
        elif self.on_unknown == "report":
            self.excluded[i] = UNKNOWN_CODE
        else:
            self.report.problem(
                self.line(i), self.column, code, "unknown code",
                f"{code} is not a unit of {self.region.name} (nor an old code of one)")


# --------------------------------------------------------------------------
# Reading a file
# --------------------------------------------------------------------------


def _counts_text(values: pd.DataFrame, rows: list[int] | pd.Index, columns: list[str]) -> str:
    return ", ".join(f"{c}={values.loc[rows, c].sum():g}" for c in columns)


def _repair_notes(repairs: pd.DataFrame, unit: str = "line") -> list[str]:
    """One note per repair rule, listing every row it changed (the rule's sentence once for Lyon)."""
    notes = []
    for rule, rows in repairs.groupby("rule", sort=False):
        items = []
        for r in rows.itertuples():
            if rule == RULE_TOTAL:
                items.append(f"{unit} {r.line} {r.original!r} ({r.detail.split(': ', 1)[-1]})")
            elif rule == RULE_OUTSIDE:
                items.append(f"{unit} {r.line} {r.original!r}")
            else:
                item = f"{unit} {r.line} {r.original!r} -> {r.repaired!r}"
                items.append(item + (f" ({r.detail})" if rule == RULE_OLD else ""))
        what = f" [{rows['detail'].iloc[0]}]" if rule == RULE_LYON else ""
        notes.append(f"{REPAIR_NOTE} ({rule}){what}: {len(rows)} row(s): {'; '.join(items)}")
    return notes


def _excluded_notes(excluded: pd.DataFrame, lines: dict[int, int], columns: list[str], region: Region,
                    unit: str, repair: bool) -> list[str]:
    """For each reason: a summary by department (printed on stdout by the CLI), then the rows."""
    rules = {
        OUTSIDE_REGION: "codes of French departments other than the region's ("
                        + ", ".join(sorted(region_departments(region))) + ") are counted here, in no sector ("
                        + ("demand.repair = true" if repair else "on_unknown = 'report'") + ")",
        UNKNOWN_CODE: "codes that are no unit of the region are left out (on_unknown = 'report')",
        OLD_CODE: "old commune codes are left out because repair is off (with repair they join their current commune)",
        TOTAL_ROW: "total and subtotal rows are dropped: their counts are sums of other rows (demand.repair = true)",
    }
    notes = []
    for reason, rows in excluded.groupby("reason", sort=False):
        by_dep = rows.groupby("department", sort=True)[columns].sum()
        deps = "; ".join(
            f"{dep or '-'}: " + ", ".join(f"{c}={by_dep.at[dep, c]:g}" for c in columns) for dep in by_dep.index
        )
        total = ", ".join(f"{c}={rows[c].sum():g}" for c in columns)
        if reason == TOTAL_ROW:  # listed by the repair note; their counts are sums, not referrals
            notes.append(f"{EXCLUDED_NOTE} ({reason}): {len(rows)} row(s) ({total}); rule: {rules[reason]}")
            continue
        notes.append(f"{EXCLUDED_NOTE} ({reason}): {len(rows)} code(s) ({total}), by department {deps}; "
                     f"rule: {rules[reason]}")
        listed = [
            f"{r['code'] or '(no code)'} ({unit} {lines[i]}: " + ", ".join(f"{c}={r[c]:g}" for c in columns) + ")"
            for i, r in rows.iterrows()
        ]
        notes.append(f"rows {reason}: {'; '.join(listed)}")
    return notes


def read_demand(
    path: str | pathlib.Path,
    region: Region,
    *,
    key: Literal["auto", "insee", "postcode"] = "auto",
    columns: list[str] | dict[str, str] | None = None,
    on_unknown: Literal["error", "report"] = "error",
    repair: bool = False,
    problems_dir: str | pathlib.Path | None = None,
    sheet: str | None = None,
) -> Demand:
    """Read aggregated counts per commune (or per postcode) from a CSV, Excel or Parquet file.

    Parameters
    ----------
    path
        CSV (separator ``;``, ``,`` or tab, detected from the header; encoding
        UTF-8 with or without BOM, else Windows-1252/Latin-1; decimal comma
        accepted with ``;``; spaces as thousands separators accepted), Excel
        workbook (``.xlsx``, ``.xlsm``: one sheet, formulas read as their
        saved values, a code stored as the number 1001 treated like the
        4-digit text ``1001`` of a CSV; see
        :func:`geodata.tables.read_xlsx_table`) or Parquet file, one row per
        code, header on the first non-empty line.
    region
        The units the counts are mapped onto.
    key
        Which codes the file holds. ``"auto"``: a column named ``insee``,
        ``code_insee``, ``codgeo``, ``com``, ``code_commune`` (INSEE codes,
        preferred) or ``code_postal``, ``postcode``, ``cp``, ``code postal``
        (postcodes), case, accents and spaces ignored (``"Code INSEE"``).
    columns
        Which columns are demand. A dict ``{role: spec}`` names each demand
        column by its role (``{"referrals": "Nb signalements *",
        "home_care": "#4"}``): the table's columns are the roles, so weights
        and settings survive next year's headers. A spec is the header (exact,
        else ignoring case, accents and repeated blanks), a glob pattern
        (``*``, ``?``, ``[...]``; case- and accent-insensitive) or ``"#N"``
        (the N-th column, 1-based); it must match exactly one column. A list
        names headers exactly and keeps them as column names. Default:
        every other numeric column (descriptive columns such as ``commune``,
        ``nom``, ``dep``, ``population`` are ignored and noted).
    on_unknown
        Codes that are no unit of the region: ``"error"`` (default) reports
        them as problems; ``"report"`` excludes them into
        ``Demand.excluded`` (reason ``"unknown code"``, ``"outside the
        region"`` or ``"old code, not repaired"``) and notes them.
    repair
        Apply the obvious fixes, each listed in ``Demand.repairs`` and the
        notes (else each is a problem whose message says ``--repair`` would
        fix it): a 4-digit code gets its leading zero back (``1000`` ->
        ``01000``); total and subtotal rows (:func:`_total_rows`) are
        dropped into ``excluded`` (reason ``"total row"``); Lyon given both
        as 69123 and as arrondissements 69381..69389 is folded like either
        alone (arrondissements summed into 69123 when the region has Lyon as
        one commune; 69123 split over the arrondissements in proportion to
        population and added to their rows when the region has them); an old
        INSEE code (merged or renamed commune, :func:`geodata.codes.current_code`,
        the table ``route`` uses) is added to its current commune; a code of a
        French department outside the region goes to ``excluded`` (reason
        ``"outside the region"``).
    problems_dir
        Where the full list of problems is written when the error message
        cannot show them all (see :func:`write_problems`; default
        ``<system temp dir>/sectorize-problems``).
    sheet
        For an Excel workbook: the sheet to read (its name; case and
        surrounding blanks ignored); default the first visible sheet.
        Ignored, with a note, for other kinds of file.

    Returns
    -------
    Demand
        ``table`` indexed like ``region.units.index``, one float column per
        demand column, 0 for units without a row; ``excluded``, ``repairs``,
        ``headers`` and ``notes`` (see :class:`Demand`). Totals are kept:
        the sum of each column equals the file's, minus ``excluded``.

    Raises
    ------
    DemandError
        Once, listing every problem of the file (kinds counted, the first 10
        shown with their line, column and value, the full list written to a
        file, what to do for each kind): patient-level columns, demand
        columns not found or ambiguous, missing or malformed codes, lost
        leading zeros, total rows, duplicated codes, missing, non-numeric or
        negative counts, Lyon given twice, old codes, codes outside the
        region, unknown codes. At once, before any row is read: a missing,
        empty, unsupported, password-protected or damaged file (an old
        ``.xls`` workbook: save it as ``.xlsx`` or CSV), a sheet not found, no
        key column. Lines are numbered as in a spreadsheet (header = line 1;
        an Excel workbook's rows as Excel shows them, the message naming the
        sheet; 1-based row for Parquet).

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
    The department of a code outside the region is its prefix
    (:func:`geodata.codes.department_of`).

    Example
    -------
    ``signalements_2025.csv`` as exported by the hospital (Latin-1)::

        Code INSEE;Commune;Nb signalements 2025;Patients HAD 2025
        1001;L'Abergement-Clémenciat;2;0
        TOTAL;;1350;600

    >>> demand = read_demand("signalements_2025.csv", load_aura(), repair=True,  # doctest: +SKIP
    ...                      columns={"referrals": "Nb signalements *", "home_care": "Patients HAD *"})
    """
    # stays whole: read, pick the key and count columns, map codes to units, one report of every fault
    path = pathlib.Path(path)
    if on_unknown not in ("error", "report"):
        raise ValueError(f"on_unknown must be 'error' or 'report', got {on_unknown!r}")
    if key not in ("auto", "insee", "postcode"):
        raise ValueError(f"key must be 'auto', 'insee' or 'postcode', got {key!r}")
    try:
        raw = read_table(path, "demand file", sheet=sheet)
    except DemandError:
        raise
    except TableError as err:  # the reader's message names the file and line
        raise DemandError(str(err)) from None
    report = _Collector(path, raw)
    notes = raw.notes
    patient = [c for c in raw.frame.columns if _normalise(c) in PATIENT_COLUMNS]
    for column in patient:
        report.problem(raw.header_line, column, "", "patient-level column",
                       "looks like patient-level data; only aggregated counts per commune are accepted "
                       "(one row per commune). Aggregate the counts first and keep patient-level files out of this tool")
    column, kind, other_keys = _key_column(raw, key, path, notes)
    headers = _workload_columns(raw, columns, [column, *other_keys, *patient], report, notes)
    totals = _total_rows(raw, column, list(headers.values()))
    codes = _parse_codes(raw, column, kind, set(totals), repair, report)
    values = _parse_counts(raw, headers, set(totals), report)
    workload = list(headers)
    for i, label in totals.items():
        if repair:
            report.repair(raw.lines[i], column, label, "", RULE_TOTAL,
                          "total or subtotal row: " + _counts_text(values, [i], workload))
        else:
            report.problem(raw.lines[i], column, label, "total row",
                           f"{label!r} is a total or subtotal row, not a commune",
                           repairable=True)
    mapper = _Mapper(codes, kind, raw, column, region, repair, on_unknown, report, notes)
    mapper.run()
    report.raise_if_any(problems_dir)

    described = ", ".join(f"{name!r}" + (f" <- {h!r}" if h != name else "") for name, h in headers.items())
    notes.append(f"key column {column!r} ({'INSEE codes' if kind == 'insee' else 'postcodes'}); "
                 f"workload columns {described}")
    if totals:
        rows = [i for i in range(len(raw.frame)) if i not in totals]
        notes.append(f"the {len(rows)} rows other than total rows sum to {_counts_text(values, rows, workload)} "
                     f"(compare with the file's total row)")
    excluded_rows = {**{i: TOTAL_ROW for i in totals}, **mapper.excluded}
    order = sorted(excluded_rows)
    excluded = pd.DataFrame({
        "code": pd.Series([codes.get(i, totals.get(i, "")) for i in order], dtype=str),
        "department": pd.Series(["" if i in totals else department_of(codes[i], kind) for i in order], dtype=str),
        "reason": pd.Series([excluded_rows[i] for i in order], dtype=str),
    })
    for name in workload:
        excluded[name] = values.loc[order, name].to_numpy(dtype=float)
    repairs = pd.DataFrame(report.repairs, columns=REPAIR_COLUMNS) if report.repairs else empty_repairs()
    if len(repairs):
        repairs["line"] = repairs["line"].astype(int)
    notes.extend(_repair_notes(repairs, raw.unit))
    lines = {i: int(raw.lines[i]) for i in order}
    notes.extend(_excluded_notes(excluded.set_axis(order), lines, workload, region, raw.unit, repair))

    allocation = pd.DataFrame(
        [(i, unit, share) for i, shares in mapper.targets.items() for unit, share in shares.items()],
        columns=["row", "unit", "share"],
    )
    weighted = values.loc[allocation["row"], workload].to_numpy() * allocation[["share"]].to_numpy()
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
    return Demand(table=table, source=str(path), notes=notes, excluded=excluded.reset_index(drop=True),
                  repairs=repairs, headers=dict(headers))


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
    return Demand(table=table, source=f"synthetic (Huff gravity model, seed {seed})", notes=notes,
                  excluded=empty_excluded(list(table.columns)))


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
