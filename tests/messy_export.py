"""A messy demand export, shaped like a hospital information system's, for tests. SYNTHETIC.

:func:`write_messy_export` writes aggregated counts per commune (never
patient-level data) drawn from :func:`geodata.demand.synthetic_demand`, with
every defect a real export shows (issue 18, "the manager's year"):

- Windows-1252 (Latin-1) text, ``;`` separator, French headers carrying the
  year: ``Code INSEE;Commune;Nb signalements 2025;Patients HAD 2025;Suivis actifs 2025``;
- INSEE codes of departments 01, 03 and 07 written without their leading
  zero (``1053`` for ``01053``), as a spreadsheet stores them;
- Lyon given both as the commune 69123 and as some of its arrondissements
  69381..69389 (the counts of Lyon are shared between those rows);
- old commune codes: 69152 (Pierre-Bénite, now part of 69149, whose own row
  is there too: the two must be summed), 42109 (now 42084) and 01330 (now
  01187), the last one also written without its zero (``1330``);
- a few referrals from neighbouring regions (Saône-et-Loire 71, Jura 39,
  Gard 30);
- one subtotal row per department (empty code, ``Total <department>`` in the
  commune column), one for the out-of-region rows, and a final ``TOTAL`` row
  whose counts use a space as thousands separator.

The returned :class:`MessyExport` holds what a correct reading must find,
so tests assert on it rather than on one hand-made file.

Example
-------
>>> export = write_messy_export(tmp_path / "export.csv", load_aura(), year=2026, seed=3)  # doctest: +SKIP
>>> export.by_commune["referrals"].sum(), export.outside["referrals"].sum()  # doctest: +SKIP
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from geodata.demand import synthetic_demand
from geodata.regions import LYON, Region

#: Demand roles of the export and the French header of each (the year is appended).
HEADERS = {"referrals": "Nb signalements", "home_care": "Patients HAD", "follow_up": "Suivis actifs"}

#: Old commune codes written in the export -> the current commune they belong to.
OLD_CODES = {"69152": "69149", "42109": "42084", "01330": "01187"}

#: Out-of-region communes (INSEE code -> department) whose patients appear in the export.
OUTSIDE = {"71076": "71", "39198": "39", "30189": "30"}

_DEPARTMENT_NAMES = {
    "01": "Ain", "03": "Allier", "07": "Ardèche", "15": "Cantal", "26": "Drôme", "38": "Isère",
    "42": "Loire", "43": "Haute-Loire", "63": "Puy-de-Dôme", "69": "Rhône", "73": "Savoie",
    "74": "Haute-Savoie",
}  # fmt: skip


@dataclass
class MessyExport:
    """What :func:`write_messy_export` wrote, and what a correct reading finds.

    Attributes
    ----------
    path
        The file written.
    year
        The year in the headers.
    by_commune
        Expected counts per current AURA commune (index: INSEE code, Lyon as
        69123), columns ``referrals``, ``home_care``, ``follow_up`` (float):
        old codes summed into their current commune, Lyon's rows summed.
    outside
        The out-of-region rows: ``code``, ``department`` and the three counts.
    defects
        ``(line, kind, cell)`` of each defect: kinds ``"leading zero"``,
        ``"old code"``, ``"lyon"`` (69123 and arrondissement rows),
        ``"outside"``, ``"subtotal"``, ``"total"``.
    """

    path: pathlib.Path
    year: int
    by_commune: pd.DataFrame
    outside: pd.DataFrame
    defects: list[tuple[int, str, str]] = field(default_factory=list)

    def lines(self, kind: str) -> list[int]:
        """Spreadsheet lines (header = 1) of the defects of one kind."""
        return [line for line, k, _ in self.defects if k == kind]


def write_messy_export(path: str | pathlib.Path, region: Region, *, year: int = 2025, seed: int = 0,
                       communes: int | None = 40, factors: dict[str, float] | None = None) -> MessyExport:
    """Write a messy, SYNTHETIC demand export (aggregated counts per commune only).

    Parameters
    ----------
    path
        CSV file to write (Windows-1252, ``;``).
    region
        The AURA communes (``load_aura()``, Lyon as one commune 69123).
    year
        Year written in the headers (``"Nb signalements 2025"``).
    seed
        Seed of the synthetic demand and of every draw here: same seed, same file.
    communes
        Number of ordinary commune rows besides Lyon, old codes and
        out-of-region rows (>= 10); ``None``: every commune with a referral
        (a whole region's export).
    factors
        Demand multiplier per department code (e.g. ``{"38": 1.15, "69": 0.9}``
        for a second year), applied before the counts are drawn.

    Returns
    -------
    MessyExport
    """
    path = pathlib.Path(path)
    rng = np.random.default_rng(seed)
    units = region.units
    demand = synthetic_demand(region, seed=seed).table.copy()
    if factors:
        scale = units["dep"].map(factors).fillna(1.0).reindex(demand.index).to_numpy()
        demand = demand.mul(scale, axis=0).round()  # counts stay whole
    counts = pd.DataFrame({
        "referrals": demand["referrals"],
        "home_care": demand["home_care"],
        "follow_up": demand["home_care"] + rng.binomial(demand["referrals"].astype(int), 0.5),
    }).astype(float)
    special = {LYON, *OLD_CODES.values()}
    # ordinary communes: some of departments 01, 03, 07 (their zero will be lost), the rest at random
    pool = counts.loc[(counts["referrals"] > 0) & ~counts.index.isin(list(special))]
    zero_deps = pool.loc[units.loc[pool.index, "dep"].isin(["01", "03", "07"])].index
    picked = list(rng.choice(zero_deps, size=min(6, len(zero_deps)), replace=False))
    rest = pool.index.difference(picked)
    if communes is None:
        picked += list(rest)
    else:
        picked += list(rng.choice(rest, size=max(communes - len(picked), 4), replace=False))
    rows: list[dict] = []

    def add(code: str, name: str, values, kind: str | None = None, written: str | None = None) -> None:
        rows.append({"code": written if written is not None else code, "name": name, "kind": kind,
                     "dep": _dep(code), **dict(zip(HEADERS, map(float, values)))})

    expected = counts.loc[picked].copy()
    for code in picked:
        written = code.lstrip("0") if code[:2] in ("01", "03", "07") else code
        add(code, units.at[code, "name"], counts.loc[code], "leading zero" if written != code else None, written)
    # Lyon: part as 69123, the rest over some arrondissements
    lyon = counts.loc[LYON].to_numpy()
    as_commune = np.floor(lyon * 0.4)
    arr = [f"6938{i}" for i in sorted(rng.choice(np.arange(1, 10), size=3, replace=False))]
    remaining = lyon - as_commune
    parts = np.stack([rng.multinomial(int(v), [1 / 3] * 3) for v in remaining], axis=1).astype(float)
    add(LYON, "Lyon", as_commune, "lyon")
    for code, part in zip(arr, parts):
        add(code, f"Lyon {code[-1]}e Arrondissement", part, "lyon")
    expected.loc[LYON] = lyon
    # old codes (69149 also has its own row: the two are summed)
    for old, current in OLD_CODES.items():
        values = rng.integers(1, 6, size=3).astype(float)
        written = old.lstrip("0") if old.startswith("0") else old
        add(old, "", values, "old code", written)
        expected.loc[current] = (expected.loc[current] if current in expected.index else 0.0) + values
    add("69149", units.at["69149", "name"], counts.loc["69149"] + 1)
    expected.loc["69149"] = expected.loc["69149"] + counts.loc["69149"] + 1
    outside = []
    for code, dep in OUTSIDE.items():
        values = rng.integers(1, 4, size=3).astype(float)
        add(code, "", values, "outside")
        outside.append({"code": code, "department": dep, **dict(zip(HEADERS, values))})
    table = pd.DataFrame(rows)
    table["order"] = [(d if d in _DEPARTMENT_NAMES else "zz", c.zfill(5)) for d, c in zip(table["dep"], table["code"])]
    table = table.sort_values("order", kind="stable").reset_index(drop=True)

    header = ["Code INSEE", "Commune", *(f"{HEADERS[r]} {year}" for r in HEADERS)]
    out = [";".join(header)]
    defects: list[tuple[int, str, str]] = []

    def cells(values) -> list[str]:
        return [f"{v:,.0f}".replace(",", " ") for v in values]

    for dep, block in table.groupby(table["order"].str[0], sort=False):
        for _, row in block.iterrows():
            out.append(";".join([row["code"], row["name"], *cells(row[list(HEADERS)])]))
            if row["kind"]:
                defects.append((len(out), row["kind"], row["code"]))
        label = f"Total {_DEPARTMENT_NAMES[dep]}" if dep in _DEPARTMENT_NAMES else "Total hors région"
        out.append(";".join(["", label, *cells(block[list(HEADERS)].sum())]))
        defects.append((len(out), "subtotal", label))
    out.append(";".join(["TOTAL", "", *cells(table[list(HEADERS)].sum())]))
    defects.append((len(out), "total", "TOTAL"))
    path.write_bytes(("\r\n".join(out) + "\r\n").encode("cp1252", errors="replace"))
    by_commune = expected.groupby(level=0).sum().sort_index().astype(float)
    return MessyExport(path, year, by_commune, pd.DataFrame(outside), defects)


def _dep(code: str) -> str:
    return code[:2]
