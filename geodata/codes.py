"""Commune code changes: from an old INSEE code to the current (COG 2026) commune of AURA.

INSEE commune codes change through mergers (communes nouvelles, whose former
communes often live on as *communes déléguées*), older fusion-associations
(*communes associées*), department changes (the 1967-1971 transfers of
Isère and Ain communes to the Rhône) and chef-lieu moves. A referral may
carry such an old code. The shipped table ``commune_code_changes.csv`` maps
each of them to the current AURA commune; it was built by
:func:`build_code_changes` from the npm package
``@etalab/decoupage-administratif`` (provenance: ``geodata/data/SOURCES.md``).

Example
-------
>>> from geodata.codes import current_code
>>> match = current_code("01330")
>>> match.status, match.current
('changed', '01187')
>>> current_code("69381").status
'arrondissement'
"""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import pandas as pd

from geodata.reference import data_path, load_arrondissements

#: Departments of Auvergne-Rhône-Alpes.
AURA_DEPARTMENTS = ("01", "03", "07", "15", "26", "38", "42", "43", "63", "69", "73", "74")

#: Departments of France as written in INSEE commune codes: metropolitan 01..95 with
#: Corsica as 2A and 2B (no 20), and the overseas departments 971..974 and 976.
FRENCH_DEPARTMENTS = (
    *(f"{i:02d}" for i in range(1, 96) if i != 20), "2A", "2B", "971", "972", "973", "974", "976",
)

#: File name of the shipped table.
CODE_CHANGES_FILE = "commune_code_changes.csv"

#: Columns of the shipped table, in order.
CODE_CHANGE_COLUMNS = [
    "old_code", "old_name", "current_code", "current_name", "old_status",
    "changed_on", "event", "last_cog", "first_cog_without",
]

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")

_OLD_STATUS = {"commune-deleguee": "commune déléguée", "commune-associee": "commune associée"}


@dataclass(frozen=True)
class CodeMatch:
    """What an INSEE code is in COG 2026 (AURA), and the rule that said so.

    Attributes
    ----------
    code
        The code looked up.
    current
        The current commune code (COG 2026) it stands for; the code itself
        when it is current; the commune (``"69123"``) for a Lyon
        arrondissement; ``None`` when unknown.
    status
        ``"current"``: an AURA commune of COG 2026; ``"arrondissement"``: a
        municipal arrondissement of Lyon (69381..69389); ``"changed"``: an
        old code now part of ``current``; ``"unknown"``: neither (a code of
        another region, or no commune at all).
    name
        Name that goes with ``code`` (the former commune's name for an old
        code), ``""`` when unknown.
    current_name
        Name of the current commune.
    rule
        One sentence saying which rule applied, e.g. ``"old INSEE code 01330
        (Ruffieu) merged into 01187 Haut Valromey on 1 January 2025"``.
    changed_on
        ISO date of the change when known exactly, else ``""``.
    """

    code: str
    current: str | None
    status: Literal["current", "arrondissement", "changed", "unknown"]
    name: str = ""
    current_name: str = ""
    rule: str = ""
    changed_on: str = ""


@lru_cache(maxsize=1)
def load_code_changes() -> pd.DataFrame:
    """Old INSEE codes of AURA and the current (COG 2026) commune each belongs to.

    Returns
    -------
    pandas.DataFrame
        One row per old code (all columns str, ``""`` when unknown):
        ``old_code``, ``old_name``, ``current_code``, ``current_name``,
        ``old_status`` (``"commune déléguée"``, ``"commune associée"`` or
        ``"former commune"`` when the old code has no status left),
        ``changed_on`` (ISO date of the change, from INSEE's history up to
        1 January 2019, or the 1 January of the first yearly COG without
        the code when the previous year's COG still had it), ``event``
        (INSEE's reason, e.g. ``"commune devenant déléguée"``,
        ``"changement de département"``), ``last_cog`` (last COG year of
        the packaged millésimes 2019, 2021-2026 where the code was a
        commune) and ``first_cog_without``. The returned frame is cached:
        copy it before modifying.

    Example
    -------
    >>> table = load_code_changes()
    >>> table.set_index("old_code").at["38079", "current_code"]
    '69270'
    """
    path = data_path(CODE_CHANGES_FILE)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in CODE_CHANGE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: lacks the column(s) {missing}")
    if table["old_code"].duplicated().any():
        raise ValueError(f"{path}: old codes appear twice: {table.loc[table['old_code'].duplicated(), 'old_code'].tolist()[:5]}")
    return table[CODE_CHANGE_COLUMNS]


@lru_cache(maxsize=1)
def _current_communes() -> dict[str, str]:
    """Current AURA commune codes (COG 2026) -> name."""
    communes = pd.read_parquet(data_path("communes.parquet"), columns=["insee", "name"])
    return dict(zip(communes["insee"].astype(str), communes["name"].astype(str)))


@lru_cache(maxsize=1)
def _arrondissements() -> dict[str, tuple[str, str]]:
    """Lyon arrondissement code -> (name, parent commune code)."""
    table = load_arrondissements()
    return {str(c): (str(n), str(p)) for c, n, p in zip(table["insee"], table["name"], table["parent"])}


@lru_cache(maxsize=1)
def _changes_by_code() -> dict[str, dict[str, str]]:
    table = load_code_changes()
    return {row["old_code"]: row for row in table.to_dict("records")}


def _when(row: dict[str, str]) -> str:
    """Human wording of the date of a change."""
    if row["changed_on"]:
        date = pd.Timestamp(row["changed_on"])
        return f"on {date.day} {_MONTHS[date.month - 1]} {date.year}"
    if row["last_cog"] and row["first_cog_without"]:
        return f"between COG {row['last_cog']} and COG {row['first_cog_without']}"
    return "(date not in the packaged history)"


def department_of(code: str, kind: Literal["insee", "postcode"] = "insee") -> str:
    """The department a 5-character INSEE code or postcode belongs to, as its prefix says.

    Parameters
    ----------
    code
        A 5-character code (``"69123"``, ``"2A004"``, ``"97105"``, ``"20000"``).
    kind
        ``"insee"``: INSEE commune code; ``"postcode"``: French postcode.

    Returns
    -------
    str
        Two characters (``"71"``, ``"2A"``), three for overseas (``"971"``):
        the first two characters, or three when they are ``"97"``. For a
        postcode of Corsica (``20xxx``), ``"2A"`` when it starts with 200 or
        201, else ``"2B"`` (La Poste's split; an approximation at the
        border). A prefix that is no department (e.g. ``"99"``) is returned
        as it is: check it against :data:`FRENCH_DEPARTMENTS`.

    Example
    -------
    >>> department_of("71270"), department_of("97105"), department_of("20200", "postcode")
    ('71', '971', '2B')
    """
    code = str(code).strip().upper()
    if code.startswith("97"):
        return code[:3]
    if kind == "postcode" and code.startswith("20"):
        return "2A" if code[:3] in ("200", "201") else "2B"
    return code[:2]


def current_code(code: str) -> CodeMatch:
    """The current AURA commune (COG 2026) an INSEE code stands for.

    Parameters
    ----------
    code
        A 5-character INSEE code, already checked for format (see
        :mod:`sectorize.serve.routing` for input validation).

    Returns
    -------
    CodeMatch
        ``status="current"`` for a COG 2026 AURA commune, ``"arrondissement"``
        for 69381..69389 (``current`` = ``"69123"``), ``"changed"`` for an
        old code of the shipped table, else ``"unknown"``.

    Example
    -------
    >>> current_code("38079").rule
    'old INSEE code 38079 (Chaponnay) became 69270 Chaponnay on 31 December 1967 (changement de département)'
    """
    communes = _current_communes()
    if code in communes:
        return CodeMatch(code, code, "current", communes[code], communes[code], "INSEE code (COG 2026)")
    arrondissements = _arrondissements()
    if code in arrondissements:
        name, parent = arrondissements[code]
        return CodeMatch(
            code, parent, "arrondissement", name, communes.get(parent, ""),
            f"arrondissement {code} {name} is part of the commune {parent} {communes.get(parent, '')}",
        )
    row = _changes_by_code().get(code)
    if row is not None:
        old = f"old INSEE code {code}" + (f" ({row['old_name']})" if row["old_name"] else "")
        renamed = row["event"].startswith("changement de département") or row["old_name"] == row["current_name"]
        verb = "became" if renamed else "merged into"
        rule = f"{old} {verb} {row['current_code']} {row['current_name']} {_when(row)}"
        if row["event"]:
            rule += f" ({row['event']})"
        return CodeMatch(
            code, row["current_code"], "changed", row["old_name"], row["current_name"], rule, row["changed_on"]
        )
    return CodeMatch(code, None, "unknown", rule=f"{code} is neither a COG 2026 AURA commune nor a known old code")


# --------------------------------------------------------------------------
# Building the shipped table (run once, by a maintainer, from npm packages)
# --------------------------------------------------------------------------


def _communes_json(folder: pathlib.Path) -> list[dict]:
    path = folder / "data" / "communes.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: give the unpacked npm package folder (the one holding data/)")
    return json.loads(path.read_text(encoding="utf-8"))


def build_code_changes(
    current: pathlib.Path, history: pathlib.Path, yearly: dict[int, pathlib.Path]
) -> pd.DataFrame:
    """Build the old code -> current commune table from ``@etalab/decoupage-administratif``.

    Parameters
    ----------
    current
        Unpacked package 6.0.0 (COG 2026): the AURA ``commune-actuelle``
        entries and their ``anciensCodes`` define the rows; its
        ``commune-deleguee`` / ``commune-associee`` entries give
        ``old_status`` and names.
    history
        Unpacked package 0.7.0: ``data/historique-communes.json`` (INSEE's
        history since 1943, up to 1 January 2019) gives the date and the
        reason of changes up to 2019.
    yearly
        COG year -> unpacked package of that millésime (e.g. ``{2019:
        0.7.0, 2021: 1.1.1, ..., 2025: 5.3.0}``), to date later changes
        by the first millésime without the code.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CODE_CHANGE_COLUMNS`, sorted by ``old_code``.
    """
    now = _communes_json(current)
    actual = {c["code"]: c for c in now if c.get("type") == "commune-actuelle" and c["departement"] in AURA_DEPARTMENTS}
    subs = {c["code"]: c for c in now if c.get("type") in _OLD_STATUS}
    years = dict(sorted(yearly.items()))
    actual_by_year = {
        year: {c["code"]: c["nom"] for c in _communes_json(folder) if c.get("type", "commune-actuelle") == "commune-actuelle"}
        for year, folder in years.items()
    }
    actual_by_year[2026] = {code: c["nom"] for code, c in actual.items()}
    hist_path = history / "data" / "historique-communes.json"
    records = json.loads(hist_path.read_text(encoding="utf-8"))
    ended: dict[str, dict] = {}
    for record in records:
        if record["type"] == "COM" and record.get("dateFin"):
            known = ended.get(record["code"])
            if known is None or record["dateFin"] > known["dateFin"]:
                ended[record["code"]] = record
    open_com = {r["code"] for r in records if r["type"] == "COM" and not r.get("dateFin")}
    all_years = sorted(actual_by_year)
    rows = []
    for new_code, commune in actual.items():
        for old in commune.get("anciensCodes", []):
            if old in actual:
                raise ValueError(f"old code {old} of {new_code} is also a current commune")
            seen = [y for y in all_years if old in actual_by_year[y]]
            last = max(seen) if seen else None
            later = [y for y in all_years if last is not None and y > last]
            first_without = later[0] if later else None
            changed_on, event = "", ""
            if last is not None and first_without == last + 1:
                changed_on = f"{first_without}-01-01"
            elif old in ended and old not in open_com:
                changed_on, event = ended[old]["dateFin"], ended[old].get("raisonFin", "")
            name = ""
            if last is not None:
                name = actual_by_year[last][old]
            elif old in subs:
                name = subs[old]["nom"]
            elif old in ended:
                name = ended[old]["nom"]
            rows.append({
                "old_code": old, "old_name": name, "current_code": new_code, "current_name": commune["nom"],
                "old_status": _OLD_STATUS.get(subs.get(old, {}).get("type", ""), "former commune"),
                "changed_on": changed_on, "event": event,
                "last_cog": str(last) if last is not None else "",
                "first_cog_without": str(first_without) if first_without is not None else "",
            })
    table = pd.DataFrame(rows, columns=CODE_CHANGE_COLUMNS).sort_values("old_code", kind="stable")
    if table["old_code"].duplicated().any():
        raise ValueError(f"old codes mapped twice: {table.loc[table['old_code'].duplicated(), 'old_code'].tolist()}")
    return table.reset_index(drop=True)


def _main(argv: list[str] | None = None) -> int:  # pragma: no cover - maintainer tool
    import argparse

    parser = argparse.ArgumentParser(description="Build geodata/data/commune_code_changes.csv")
    parser.add_argument("--current", type=pathlib.Path, required=True, help="unpacked 6.0.0 package folder")
    parser.add_argument("--history", type=pathlib.Path, required=True, help="unpacked 0.7.0 package folder")
    parser.add_argument("--year", nargs=2, action="append", metavar=("YEAR", "FOLDER"), default=[],
                        help="a COG year and its unpacked package folder (repeat)")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    args = parser.parse_args(argv)
    yearly = {int(y): pathlib.Path(f) for y, f in args.year}
    table = build_code_changes(args.current, args.history, yearly)
    staging = args.out.with_name(f".{args.out.name}.tmp")
    staging.write_text(table.to_csv(index=False, lineterminator="\n"), encoding="utf-8")
    os.replace(staging, args.out)
    print(f"{args.out}: {len(table)} old codes")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
