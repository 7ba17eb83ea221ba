"""Tables and files of a plan: the sector table, the postcode table and the run folder.

CSV files follow French spreadsheet conventions so that Excel opens them
directly: ``;`` separator, ``,`` decimal mark, UTF-8 with a byte-order mark,
booleans written ``1`` (yes) and ``0`` (no) (:data:`CSV_TRUE`,
:data:`CSV_FALSE`). Codes (INSEE, postcodes) are written as text and keep
their leading zeros; read them back with ``pandas.read_csv(path, sep=";",
dtype=str)`` (or ``decimal=","`` to get numbers). A spreadsheet opening a CSV
by double-click still turns ``01001`` into ``1001``, so the run folder also
holds ``sectors.xlsx`` (:func:`write_xlsx`): the same tables with codes as
text cells. Only aggregated counts per commune are written, never
patient-level data.

Example
-------
>>> run = write_outputs(plan, "sectorize-output")               # doctest: +SKIP
>>> sorted(p.name for p in run.iterdir())                       # doctest: +SKIP
['kpi.html', 'kpi.json', 'kpi.txt', 'postcodes.csv', 'run.json', 'scenario.toml',
 'sectors.csv', 'sectors.geojson', 'sectors.xlsx', 'workers.csv']
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

import sectorize
from sectorize.store.atomic import clean_stale_staging, run_folder
from sectorize.report.kpi import (
    compute_kpis,
    demand_columns,
    jsonable,
    kpi_html,
    kpi_text,
    sector_sort_key,
)
from sectorize.config.scenario import dump_scenario

if TYPE_CHECKING:  # pragma: no cover
    from sectorize.plan import Plan

#: Decimals kept in the CSV/GeoJSON files: minutes to 0.1, workload and demand to 0.001.
TRAVEL_DECIMALS = 1
WORKLOAD_DECIMALS = 3


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks the column(s) {missing}; the plan was not built completely")


def sector_table(plan: Plan) -> pd.DataFrame:
    """One row per commune with its sector: the table a routing service reads.

    Columns: ``insee`` (str, leading zeros kept), ``name, dep, group,
    sector, worker_id, worker_name``, one column per demand measure
    (e.g. ``referrals`` per year, ``home_care`` patients), ``workload`` and
    ``travel_min`` (minutes from the sector's reference point). Sorted by
    ``insee``.
    """
    demand = demand_columns(plan)
    columns = ["name", "dep", "group", "sector", "worker_id", "worker_name", *demand, "workload", "travel_min"]
    _require(plan.units, columns, "plan.units")
    table = pd.DataFrame(plan.units[columns]).rename_axis(None)
    table.insert(0, "insee", plan.units.index.astype(str))
    return table.sort_values("insee", kind="stable").reset_index(drop=True)


def postcode_table(plan: Plan) -> pd.DataFrame:
    """One row per postcode, with the sector that covers it.

    A postcode can serve several communes in different sectors. Its chosen
    ``sector`` is the one holding most of its communes' population (ties:
    more communes, then the first sector id); ``main_share`` is that
    sector's share of the postcode's population (of its communes when the
    population is 0), ``spans_sectors`` says whether other sectors share
    the postcode and ``sectors`` lists them all (``"A1|B3"``). A commune
    with several postcodes counts fully in each. Communes without a
    postcode do not appear.

    Columns: ``postcode, sector, worker_id, worker_name, group, communes,
    spans_sectors, sectors, main_share``; sorted by postcode.
    """
    _require(plan.units, ["postcodes", "population", "sector"], "plan.units")
    pairs = pd.DataFrame({
        "postcode": plan.units["postcodes"].map(lambda v: [str(p) for p in v] if v is not None else []),
        "sector": plan.units["sector"].astype(str),
        "population": plan.units["population"],
    }).explode("postcode").dropna(subset=["postcode"])
    per_sector = (
        pairs.groupby(["postcode", "sector"]).agg(population=("population", "sum"), communes=("population", "size"))
        .reset_index()
    )
    rows = []
    for postcode, part in per_sector.groupby("postcode", sort=True):
        main = min(part.itertuples(), key=lambda r: (-r.population, -r.communes, sector_sort_key(r.sector)))
        total_pop, total_communes = part["population"].sum(), part["communes"].sum()
        share = main.population / total_pop if total_pop > 0 else main.communes / total_communes
        rows.append({
            "postcode": postcode, "sector": main.sector, "communes": int(total_communes),
            "spans_sectors": len(part) > 1,
            "sectors": "|".join(sorted(part["sector"], key=sector_sort_key)),
            "main_share": round(float(share), WORKLOAD_DECIMALS),
        })
    table = pd.DataFrame(rows, columns=["postcode", "sector", "communes", "spans_sectors", "sectors", "main_share"])
    who = plan.workers.assign(sector=plan.workers["sector"].astype(str))[["sector", "worker_id", "worker_name", "group"]]
    table = table.merge(who, on="sector", how="left", validate="many_to_one")
    return table[["postcode", "sector", "worker_id", "worker_name", "group", "communes",
                  "spans_sectors", "sectors", "main_share"]]


#: Columns of ``workers.csv`` that come from the plan's worker table, in order.
_WORKER_IDENTITY = ["worker_id", "worker_name", "fte", "group", "sector"]
#: Columns of ``workers.csv`` with the sector's figures, in order (those the demand has).
_WORKER_FIGURES = [
    "referrals_per_year", "referrals_per_week", "home_care_patients", "follow_up_patients", "demand_values",
    "target_share_pct", "within_tolerance", "caseload_formula", "caseload", "target", "deviation_pct",
    "travel_base_mean_min", "travel_base_max_min", "travel_centre_mean_min", "travel_centre_max_min",
]
#: Columns of ``workers.csv`` after the figures, from the plan's worker table.
_WORKER_PLACES = ["base_key", "base_lon", "base_lat", "centre"]


def worker_table(plan: Plan, kpis: dict[str, Any]) -> pd.DataFrame:
    """One row per worker in the manager's units: ``workers.csv``.

    Columns, in order: ``worker_id, worker_name, fte, group, sector``;
    patients (only the columns the demand has): ``referrals_per_year``
    (new referrals, patients/year: the demand column of the role
    ``referrals``), ``referrals_per_week`` (patients/week = per year /
    52.18), ``home_care_patients`` (active home-care patients),
    ``follow_up_patients`` (patients in follow-up); ``demand_values``
    (``"expected (synthetic demand)"``: expected values, one decimal;
    ``"counts"``: counts from a file, whole numbers per year); caseload:
    ``target_share_pct`` (caseload / target x 100), ``within_tolerance``,
    ``caseload_formula`` (e.g. ``caseload = 1.0 × referrals + 0.5 × home
    care``), then in those weighted units ``caseload``, ``target`` and
    ``deviation_pct`` ((caseload - target) / target x 100); travel in
    minutes over the sector's communes, caseload-weighted mean and max:
    ``travel_base_mean_min, travel_base_max_min`` (from the worker's base),
    ``travel_centre_mean_min, travel_centre_max_min`` (from the sector's
    centre commune); ``base_key, base_lon, base_lat, centre, communes``;
    then any other column of ``plan.workers``.
    """
    basis = kpis["demand"]
    expected = basis["values"] == "expected"
    sectors = kpis["sectors"]
    per_year = 1 if expected else 0
    figures: dict[str, Any] = {"sector": [s["sector"] for s in sectors]}
    if basis["columns"]["referrals"] is not None:
        figures["referrals_per_year"] = [_round(s["referrals_per_year"], per_year) for s in sectors]
        figures["referrals_per_week"] = [_round(s["referrals_per_week"], 2) for s in sectors]
    for role in ("home_care", "follow_up"):
        if basis["columns"][role] is not None:
            figures[f"{role}_patients"] = [_round(s[f"{role}_patients"], per_year) for s in sectors]
    figures["demand_values"] = "expected (synthetic demand)" if expected else "counts"
    figures["target_share_pct"] = [_round(s["target_share_pct"], 1) for s in sectors]
    figures["within_tolerance"] = [s["within_tolerance"] for s in sectors]
    figures["caseload_formula"] = basis["formula"]
    figures["caseload"] = [s["caseload"] for s in sectors]
    figures["deviation_pct"] = [s["deviation_pct"] for s in sectors]
    for frm in ("base", "centre"):
        for stat in ("mean", "max"):
            figures[f"travel_{frm}_{stat}_min"] = [
                None if s[f"travel_{frm}"] is None else _round(s[f"travel_{frm}"][f"{stat}_min"], TRAVEL_DECIMALS)
                for s in sectors]
    figures["communes"] = [s["communes"] for s in sectors]
    frame = pd.DataFrame(figures)
    # a re-opened plan's worker table already holds the figures: the fresh ones win, except those
    # this plan cannot recompute (e.g. minutes from the base, which a re-opened plan lacks)
    stored = [c for c in frame.columns if c != "sector" and c in plan.workers.columns]
    kept = [c for c in stored if frame[c].isna().all()]
    frame = frame.drop(columns=kept)
    workers = plan.workers.drop(columns=[c for c in stored if c not in kept])
    workers = workers.assign(sector=workers["sector"].astype(str))
    table = workers.merge(frame, on="sector", how="left", validate="one_to_one")
    order = [c for c in [*_WORKER_IDENTITY, *_WORKER_FIGURES, *_WORKER_PLACES, "communes"] if c in table.columns]
    return table[order + [c for c in table.columns if c not in order]]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _rounded(table: pd.DataFrame, demand: list[str]) -> pd.DataFrame:
    decimals = {c: WORKLOAD_DECIMALS for c in [*demand, "workload", "target", "caseload"] if c in table.columns}
    decimals.update({c: TRAVEL_DECIMALS for c in ["travel_min"] if c in table.columns})
    decimals.update({c: 2 for c in ["deviation_pct"] if c in table.columns})
    return table.round(decimals)


#: Booleans in the French CSV files (run folders, re-run reports, diffs, sweeps, simulations,
#: demand problem lists): ``1`` for yes, ``0`` for no. Numbers in every locale of Excel and
#: LibreOffice (``True``/``False`` are text there, and French Excel's own words are VRAI/FAUX),
#: so a column can be summed or filtered; ``pandas.read_csv`` reads them as integers.
CSV_TRUE, CSV_FALSE = "1", "0"


def _is_boolean_column(column: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(column.dtype):
        return True
    if column.dtype != object:
        return False
    values = [v for v in column if not _missing(v)]
    return bool(values) and all(isinstance(v, (bool, np.bool_)) for v in values)


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def csv_booleans(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its boolean columns written :data:`CSV_TRUE` / :data:`CSV_FALSE` (missing: empty)."""
    columns = [c for c in table.columns if _is_boolean_column(table[c])]
    if not columns:
        return table
    out = table.copy()
    for column in columns:
        out[column] = [None if _missing(v) else (CSV_TRUE if v else CSV_FALSE) for v in table[column]]
    return out


def write_csv(table: pd.DataFrame, path: Path | io.IOBase) -> None:
    """Write a table as a French-Excel CSV (``;``, decimal ``,``, UTF-8 with BOM, booleans ``1``/``0``)."""
    csv_booleans(table).to_csv(path, sep=";", decimal=",", encoding="utf-8-sig", index=False)


#: Columns written as text cells in a workbook whatever their values (codes keep their zeros).
XLSX_TEXT_COLUMNS = frozenset({
    "insee", "code", "postcode", "dep", "department", "group", "sector", "sectors", "worker_id", "worker_name",
    "name", "centre", "base_key", "from_sector", "to_sector", "from_worker", "to_worker", "candidates",
})
#: Widest column of a workbook, in characters (longer text wraps nothing, it is only cut on screen).
_XLSX_MAX_WIDTH = 60


def _xlsx_value(value: object, text: bool) -> object:
    """A table value as a workbook cell value: ``None`` (empty), ``str``, ``bool``, ``int`` or ``float``."""
    if _missing(value):
        return None
    if text:
        return value if isinstance(value, str) else str(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value if isinstance(value, str) else str(value)


def write_xlsx(sheets: Mapping[str, pd.DataFrame], path: Path | io.IOBase, *,
               text_columns: Mapping[str, Collection[str]] | None = None) -> None:
    """Write tables as one Excel workbook, a sheet per table, in the order given.

    Text values are written as text cells (number format ``@``), so a code
    such as ``01001`` keeps its leading zero and a value starting with ``=``
    is never a formula; the columns of ``text_columns[sheet]`` (default
    :data:`XLSX_TEXT_COLUMNS`) are text whatever their values. Numbers are
    number cells (shown with the reader's decimal mark), booleans boolean
    cells (VRAI/FAUX in a French Excel), missing values empty cells. The
    header row is bold, frozen and carries a filter; columns are as wide as
    their content (at most 60 characters).
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    bold = Font(bold=True)
    for title, table in sheets.items():
        if len(title) > 31 or any(c in title for c in "[]:*?/\\"):
            raise ValueError(f"sheet name {title!r}: at most 31 characters, none of [ ] : * ? / \\")
        ws = book.create_sheet(title)
        forced = set(XLSX_TEXT_COLUMNS if text_columns is None or title not in text_columns else text_columns[title])
        columns = [str(c) for c in table.columns]
        texts = [c in forced for c in columns]
        rows = [[_xlsx_value(v, t) for v, t in zip(record, texts)] for record in table.itertuples(index=False)]
        for i, column in enumerate(columns):
            longest = max([len(column) + 2, *(len(_shown(row[i])) for row in rows)])
            ws.column_dimensions[get_column_letter(i + 1)].width = min(max(longest + 2, 8), _XLSX_MAX_WIDTH)
        ws.freeze_panes = "A2"
        if columns:
            ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(rows) + 1}"

        def cell(value: object, header: bool = False) -> object:
            if not isinstance(value, str):
                return value
            out = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub("", value))
            out.data_type = "s"  # a text starting with '=' stays text
            out.number_format = "@"
            if header:
                out.font = bold
            return out

        ws.append([cell(c, header=True) for c in columns])
        for row in rows:
            ws.append([cell(v) for v in row])
    book.save(path)


def _shown(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "FALSE" if not value else "TRUE"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


#: The run folder's workbook: its tables as sheets, codes as text cells.
XLSX_FILE = "sectors.xlsx"


def _readme_sheet(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item", "value"])


def run_workbook_sheets(plan: Plan, kpis: dict[str, Any], tables: Mapping[str, pd.DataFrame], *,
                        run_name: str) -> dict[str, pd.DataFrame]:
    """The sheets of ``sectors.xlsx``: each CSV table of the run (sheet named after the file), then ``README``."""
    sheets = {Path(name).stem[:31]: table for name, table in tables.items()}
    readme = [
        ("file", f"{XLSX_FILE}: the tables of run {run_name} ({', '.join(tables)}), one sheet each"),
        ("scenario", str(plan.scenario.name)),
        ("valid", "yes (all checks passed)" if plan.valid else f"NO: {'; '.join(plan.violations)}"),
        ("demand", "expected values (synthetic demand)" if kpis["demand"]["values"] == "expected" else "counts"),
        ("caseload", str(kpis["demand"]["formula"])),
        ("codes", "INSEE codes, postcodes, departments, sectors and worker ids are text cells: 01001 keeps its zero"),
        ("booleans", "TRUE/FALSE cells here (VRAI/FAUX in a French Excel); 1/0 in the CSV files"),
        ("sectors", "one row per commune: the routing table (sectors.csv)"),
        ("postcodes", "one row per postcode: its main sector, and every sector it spans (postcodes.csv)"),
        ("workers", "one row per worker: caseload, target, travel (workers.csv)"),
    ]
    sheets["README"] = _readme_sheet(readme)
    return sheets


def write_geojson(plan: Plan, path: Path) -> None:
    """Write the sector table with commune polygons as GeoJSON (EPSG:4326, 6 decimals ~ 0.1 m)."""
    table = _rounded(sector_table(plan), demand_columns(plan))
    geometry = plan.units.geometry.loc[table["insee"]].to_crs(4326).to_numpy()
    frame = gpd.GeoDataFrame(table, geometry=geometry, crs="EPSG:4326")
    frame.to_file(path, driver="GeoJSON", engine="pyogrio", layer_options={"COORDINATE_PRECISION": 6})


def write_outputs(
    plan: Plan,
    out_dir: str | Path,
    *,
    map_html: str | None = None,
    extra: dict[str, str | pd.DataFrame] | None = None,
) -> Path:
    """Write every result of a plan into a new run folder and return it.

    The run folder ``out_dir/<YYYYmmdd-HHMMSS>[-N]`` is written in a hidden
    staging folder and appears complete or not at all; ``out_dir/LATEST``
    then names it. Previous runs are never overwritten. Files:

    - ``sectors.csv``: :func:`sector_table` (French Excel CSV);
    - ``sectors.geojson``: the same with commune polygons (EPSG:4326);
    - ``postcodes.csv``: :func:`postcode_table`;
    - ``workers.csv``: :func:`worker_table`;
    - ``sectors.xlsx``: the CSV tables above and the ``extra`` tables, one
      sheet each, codes as text cells (what a manager opens by double-click,
      :func:`write_xlsx`), and a ``README`` sheet;
    - ``kpi.json``, ``kpi.txt``, ``kpi.html``: :mod:`sectorize.report.kpi`;
    - ``map.html``: ``map_html``, when given;
    - ``scenario.toml``: the effective scenario (:func:`dump_scenario`);
    - ``run.json``: sectorize version, time, solver facts, notes, violations.

    Parameters
    ----------
    plan
        The plan to write.
    out_dir
        Output folder, created if missing.
    map_html
        The rendered map page, if any.
    extra
        More files for the same folder: ``{file name: text or table}``
        (tables are written as French Excel CSV), e.g. a re-run's change report.
    """
    stale = clean_stale_staging(out_dir)
    kpis = compute_kpis(plan)
    demand = demand_columns(plan)
    with run_folder(out_dir) as run:
        folder = run.staging
        tables = {
            "sectors.csv": _rounded(sector_table(plan), demand),
            "postcodes.csv": postcode_table(plan),
            "workers.csv": _rounded(worker_table(plan, kpis), demand),
        }
        for name, table in tables.items():
            write_csv(table, folder / name)
        write_geojson(plan, folder / "sectors.geojson")
        (folder / "kpi.json").write_text(json.dumps(kpis, ensure_ascii=False, indent=2, allow_nan=False), encoding="utf-8")
        (folder / "kpi.txt").write_text(kpi_text(kpis), encoding="utf-8")
        (folder / "kpi.html").write_text(kpi_html(kpis), encoding="utf-8")
        if map_html is not None:
            (folder / "map.html").write_text(map_html, encoding="utf-8")
        for name, content in (extra or {}).items():
            if Path(name).name != name or name in ("run.json", "LATEST"):
                raise ValueError(f"extra file name {name!r}: give a plain file name other than run.json")
            if isinstance(content, pd.DataFrame):
                write_csv(content, folder / name)
                if name.lower().endswith(".csv") and Path(name).stem[:31] not in ("sectors", "postcodes", "workers"):
                    tables[name] = content
            else:
                (folder / name).write_text(content, encoding="utf-8")
        write_xlsx(run_workbook_sheets(plan, kpis, tables, run_name=run.final.name), folder / XLSX_FILE)
        (folder / "scenario.toml").write_text(dump_scenario(plan.scenario), encoding="utf-8")
        facts = {
            "sectorize_version": sectorize.__version__,
            "created": datetime.now().astimezone().isoformat(timespec="seconds"),
            "run": run.final.name,
            "scenario": plan.scenario.name,
            "scenario_source": plan.scenario.source,
            "valid": plan.valid,
            "vintage": plan.vintage,
            "inputs": dict(plan.inputs),
            "solve": kpis["solve"],
            "violations": list(plan.violations),
            "notes": list(plan.notes) + stale,
            "files": sorted([p.name for p in folder.iterdir()] + ["run.json"]),
        }
        (folder / "run.json").write_text(
            json.dumps(jsonable(facts), ensure_ascii=False, indent=2, allow_nan=False), encoding="utf-8"
        )
    return run.final
