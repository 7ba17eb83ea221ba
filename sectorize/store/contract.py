"""The versioned contract read by the referral routing service.

A stored plan (:class:`sectorize.store.registry.StoredPlan`) is exported into a new
folder holding:

- ``sector_table.<fmt>``: one row per commune, ``insee, name, dep, group,
  sector, worker_id, worker_name`` (plus the demand columns as suppressed
  counts when ``suppress_below`` is given);
- ``postcode_table.<fmt>``: one row per postcode, with its main sector and
  every sector it spans with its population share (``candidates``:
  ``"A1:0.820|B3:0.180"``);
- ``plan.xlsx`` (format ``xlsx``): both tables and the metadata, one sheet
  each, codes in text cells (:data:`XLSX_FILE`);
- ``plan_metadata.json``: plan id, contract version, effective dates,
  vintage, creation time, input hashes, solver facts, column descriptions;
- ``routing_service.openapi.json``: the OpenAPI 3.1 document of the HTTP
  routing service (``sectorize serve``: ``GET /route?insee=|postcode=|lat=&lon=[&on=YYYY-MM-DD]``,
  ``/plan``, ``/health``), so that integrators have the API offline
  (:data:`OPENAPI_FILE`, :func:`load_openapi`).

The columns and formats are specified by the JSON Schema files shipped in
``sectorize/store/schemas/`` (:data:`SCHEMA_FILES`, :func:`load_schema`); their
``x-contract-version`` is :data:`CONTRACT_VERSION`. Contract CSV files are
for programs, not spreadsheets: UTF-8 without BOM, ``,`` separator, ``.``
decimal mark, booleans ``true``/``false``, codes as text with their leading
zeros. Only public columns leave: codes, names, groups, sectors, workers, and
demand only after small-count suppression (:mod:`sectorize.report.privacy`).

Example
-------
>>> from sectorize.store.registry import Registry
>>> stored = Registry("sectorize-plans").effective_on(date(2027, 3, 1))      # doctest: +SKIP
>>> folder = export_contract(stored, "exports", formats=("csv", "parquet"))  # doctest: +SKIP
>>> sorted(p.name for p in folder.iterdir())                                  # doctest: +SKIP
['plan_metadata.json', 'postcode_table.csv', 'postcode_table.parquet', 'routing_service.openapi.json',
 'sector_table.csv', 'sector_table.parquet']
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd

from sectorize.store.atomic import run_folder
from sectorize.report.kpi import sector_sort_key
from sectorize.report.privacy import suppress_small, suppressed_label

if TYPE_CHECKING:  # pragma: no cover
    from sectorize.store.registry import StoredPlan

#: Version of the tables and metadata written by :func:`export_contract`.
CONTRACT_VERSION = "1.0"

#: The schema file of each contract document, in ``sectorize/store/schemas/``.
SCHEMA_FILES = {
    "sector_table": "sector_table.schema.json",
    "postcode_table": "postcode_table.schema.json",
    "plan_metadata": "plan_metadata.schema.json",
}

#: The routing service's OpenAPI document, shipped in ``sectorize/store/schemas/`` (written by
#: :func:`sectorize.serve.service.write_openapi`, checked equal to the served one by the tests)
#: and copied into every export.
OPENAPI_FILE = "routing_service.openapi.json"

#: Export formats and their file suffixes.
FORMATS = {"csv": ".csv", "parquet": ".parquet", "geojson": ".geojson", "gpkg": ".gpkg", "xlsx": ".xlsx"}

#: The one workbook of the ``xlsx`` format: sheets ``sector_table``, ``postcode_table`` and
#: ``plan_metadata``, codes (every column the schemas type as text) in text cells.
XLSX_FILE = "plan.xlsx"

#: Public columns of the sector table, in order.
SECTOR_COLUMNS = ["insee", "name", "dep", "group", "sector", "worker_id", "worker_name"]

#: Columns of the postcode table, in order.
POSTCODE_COLUMNS = ["postcode", "sector", "worker_id", "worker_name", "group", "communes",
                    "spans_sectors", "candidates", "main_share"]

#: Decimals of the population shares.
SHARE_DECIMALS = 3

#: CSV conventions of the contract (documented in the schemas and plan_metadata.json).
CSV_CONVENTIONS = {"encoding": "UTF-8 without BOM", "separator": ",", "decimal": ".", "booleans": "true/false",
                   "codes": "text, leading zeros kept"}


def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of ``"sector_table"``, ``"postcode_table"`` or ``"plan_metadata"``."""
    if name not in SCHEMA_FILES:
        raise ValueError(f"unknown contract document {name!r}; use one of {list(SCHEMA_FILES)}")
    text = resources.files("sectorize").joinpath("store", "schemas", SCHEMA_FILES[name]).read_text(encoding="utf-8")
    return json.loads(text)


def load_openapi() -> dict[str, Any]:
    """The routing service's OpenAPI document as shipped (:data:`OPENAPI_FILE`)."""
    text = resources.files("sectorize").joinpath("store", "schemas", OPENAPI_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def column_descriptions(name: str) -> dict[str, str]:
    """``{column: description}`` of a table's schema (demand columns described under ``"*"``)."""
    items = load_schema(name)["items"]
    out = {col: spec.get("description", "") for col, spec in items["properties"].items()}
    extra = items.get("additionalProperties")
    if isinstance(extra, dict):
        out["*"] = extra.get("description", "")
    return out


def contract_sector_table(stored: StoredPlan, *, suppress_below: int | None = None) -> pd.DataFrame:
    """The public sector table of a stored plan, sorted by ``insee``.

    Without ``suppress_below`` the demand columns are left out; with it they
    are added as text after :func:`sectorize.report.privacy.suppress_small`
    (``"<5"`` or a whole number).
    """
    table = stored.sectors[SECTOR_COLUMNS].astype(str)
    if suppress_below is not None:
        demand = list(stored.demand_columns)
        table = pd.concat([table, suppress_small(stored.sectors[demand], demand, suppress_below)], axis=1)
    return table.sort_values("insee", kind="stable").reset_index(drop=True)


def contract_postcode_table(stored: StoredPlan) -> pd.DataFrame:
    """One row per postcode with its main sector and all its sectors' population shares.

    The main sector holds most of the postcode's population (ties: more
    communes, then the first sector id), as in ``postcodes.csv``;
    ``candidates`` lists every sector as ``sector:share`` (largest share
    first, shares to 3 decimals; communes' share when the postcode's
    population is 0). A commune with several postcodes counts fully in each.
    """
    sectors = stored.sectors.set_index("insee")
    per_commune = pd.DataFrame({
        "sector": sectors["sector"].astype(str),
        "population": stored.population.reindex(sectors.index).fillna(0).astype("int64"),
        "postcode": stored.communes_postcodes.reindex(sectors.index).fillna("").map(
            lambda text: [p for p in str(text).split("|") if p]),
    }).explode("postcode").dropna(subset=["postcode"])
    per_sector = (
        per_commune.groupby(["postcode", "sector"])
        .agg(population=("population", "sum"), communes=("population", "size"))
        .reset_index()
    )
    who = stored.workers.assign(sector=stored.workers["sector"].astype(str)).set_index("sector")
    rows = []
    for postcode, part in per_sector.groupby("postcode", sort=True):
        total_pop, total_communes = int(part["population"].sum()), int(part["communes"].sum())
        shares = part["population"] / total_pop if total_pop > 0 else part["communes"] / total_communes
        ranked = sorted(
            zip(part["sector"], part["population"], part["communes"], shares),
            key=lambda r: (-r[1], -r[2], sector_sort_key(r[0])),
        )
        main = ranked[0][0]
        rows.append({
            "postcode": str(postcode), "sector": main,
            "worker_id": str(who.loc[main, "worker_id"]), "worker_name": str(who.loc[main, "worker_name"]),
            "group": str(who.loc[main, "group"]), "communes": total_communes,
            "spans_sectors": len(ranked) > 1,
            "candidates": "|".join(f"{s}:{share:.{SHARE_DECIMALS}f}" for s, _, _, share in ranked),
            "main_share": round(float(ranked[0][3]), SHARE_DECIMALS),
        })
    table = pd.DataFrame(rows, columns=POSTCODE_COLUMNS)
    return table.astype({"communes": "int64", "spans_sectors": "bool", "main_share": "float64"})


def plan_metadata(stored: StoredPlan, files: list[str], suppress_below: int | None) -> dict[str, Any]:
    """The content of ``plan_metadata.json`` (see ``plan_metadata.schema.json``)."""
    from sectorize.report.kpi import jsonable

    def iso(day: date | None) -> str | None:
        return day.isoformat() if day else None

    sector_cols = column_descriptions("sector_table")
    demand_text = sector_cols.pop("*")
    if suppress_below is not None:
        sector_cols.update({c: f"{demand_text} ({c})" for c in stored.demand_columns})
    return jsonable({
        "contract_version": CONTRACT_VERSION, "plan_id": stored.id, "name": stored.name, "created": stored.created,
        "effective_from": iso(stored.effective_from), "effective_to": iso(stored.effective_to),
        "parent_id": stored.parent_id, "vintage": stored.vintage, "input_hash": stored.input_hash,
        "inputs": dict(stored.inputs), "content_hash": stored.content_hash, "valid": bool(stored.valid),
        "solver": {k: stored.solve.get(k) for k in ("backend", "status", "objective", "bound", "gap", "time_s")},
        "suppression": None if suppress_below is None else {
            "threshold": int(suppress_below), "label": suppressed_label(int(suppress_below)),
            "columns": list(stored.demand_columns),
        },
        "files": sorted(files), "csv": CSV_CONVENTIONS, "crs": "EPSG:4326",
        "columns": {"sector_table": sector_cols, "postcode_table": column_descriptions("postcode_table")},
    })


def _parse_formats(formats: Sequence[str] | str) -> list[str]:
    if isinstance(formats, str):
        formats = [f for f in formats.split(",")]
    chosen = [f.strip().lower() for f in formats if f.strip()]
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ValueError(f"format(s) {unknown or formats!r} not supported; choose among {', '.join(FORMATS)}")
    return list(dict.fromkeys(chosen))


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    out = table.copy()
    for column in out.columns:
        if out[column].dtype == bool:
            out[column] = out[column].map({True: "true", False: "false"})
    out.to_csv(path, sep=",", decimal=".", encoding="utf-8", index=False, lineterminator="\n")


def _schema_text_columns(name: str, columns: list[str]) -> set[str]:
    """The columns of a contract table that its schema types as text (``"type": "string"``)."""
    items = load_schema(name)["items"]
    extra = items.get("additionalProperties")
    return {c for c in columns
            if items["properties"].get(c, extra if isinstance(extra, dict) else {}).get("type") == "string"}


def _metadata_rows(meta: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``plan_metadata.json`` as ``(item, value)`` text rows, nested keys joined by dots."""
    rows: list[tuple[str, str]] = []
    for key, value in meta.items():
        if isinstance(value, dict) and value:
            rows += _metadata_rows(value, f"{prefix}{key}.")
        elif isinstance(value, (list, dict)):
            rows.append((f"{prefix}{key}", ", ".join(map(str, value))))
        else:
            rows.append((f"{prefix}{key}", json.dumps(value) if isinstance(value, bool) or value is None else str(value)))
    return rows


def _write_xlsx(sectors: pd.DataFrame, postcodes: pd.DataFrame, meta: dict[str, Any], path: Path) -> None:
    """:data:`XLSX_FILE`: the two tables and the metadata, one sheet each, typed by the schemas."""
    from sectorize.store.export import write_xlsx

    metadata = pd.DataFrame(_metadata_rows(meta), columns=["item", "value"])
    write_xlsx(
        {"sector_table": sectors, "postcode_table": postcodes, "plan_metadata": metadata}, path,
        text_columns={"sector_table": _schema_text_columns("sector_table", list(sectors.columns)),
                      "postcode_table": _schema_text_columns("postcode_table", list(postcodes.columns)),
                      "plan_metadata": {"item", "value"}},
    )


def _write(table: pd.DataFrame, geometry: gpd.GeoSeries | None, stem: Path, fmt: str) -> Path:
    path = stem.with_suffix(FORMATS[fmt])
    if fmt == "csv":
        _write_csv(table, path)
    elif fmt == "parquet":
        table.to_parquet(path, index=False)
    else:
        import pyogrio

        frame = table if geometry is None else gpd.GeoDataFrame(table, geometry=geometry, crs="EPSG:4326")
        driver = "GeoJSON" if fmt == "geojson" else "GPKG"
        options = {"layer_options": {"COORDINATE_PRECISION": 6}} if fmt == "geojson" else {}
        pyogrio.write_dataframe(frame, path, driver=driver, layer=stem.name, **options)
    return path


def export_contract(stored: StoredPlan, out_dir: str | Path,
                    formats: Sequence[str] | str = ("csv", "parquet", "geojson", "gpkg"), *,
                    suppress_below: int | None = None) -> Path:
    """Write a stored plan's contract tables and metadata into a new folder; return it.

    The folder ``out_dir/<plan id>`` (``-2``, ``-3``, ... if it exists: an
    export is never overwritten) is written in a hidden staging folder and
    appears complete or not at all; ``out_dir/LATEST`` then names it.

    Parameters
    ----------
    stored
        A plan from :class:`sectorize.store.registry.Registry`.
    out_dir
        Folder receiving the export folder (created if missing).
    formats
        Any of ``csv, parquet, geojson, gpkg, xlsx`` (a list or
        ``"csv,parquet"``). GeoJSON and GeoPackage carry the commune polygons
        (EPSG:4326) in the sector table; the postcode table has no geometry.
        ``xlsx`` writes one workbook, :data:`XLSX_FILE`, for people: sheets
        ``sector_table``, ``postcode_table`` and ``plan_metadata``, every
        column the schemas type as text in text cells (``01001`` stays
        ``01001``), numbers as numbers, booleans as boolean cells, header row
        frozen.
    suppress_below
        When given (e.g. 5), the demand columns are exported with counts
        below it written ``"<5"`` (:func:`sectorize.report.privacy.suppress_small`);
        when ``None`` no demand column leaves.

    Returns
    -------
    Path
        The export folder: ``sector_table.*``, ``postcode_table.*``,
        ``plan_metadata.json`` and ``routing_service.openapi.json`` (the HTTP
        routing service's API, :data:`OPENAPI_FILE`).

    Example
    -------
    >>> export_contract(stored, "exports", "csv", suppress_below=5)       # doctest: +SKIP
    PosixPath('exports/P20261201-db2f526a')
    """
    chosen = _parse_formats(formats)
    if suppress_below is not None and (isinstance(suppress_below, bool) or int(suppress_below) != suppress_below
                                       or suppress_below < 1):
        raise ValueError(f"suppress_below must be a whole number >= 1 (got {suppress_below!r})")
    if suppress_below is not None:
        suppress_below = int(suppress_below)
    sectors = contract_sector_table(stored, suppress_below=suppress_below)
    postcodes = contract_postcode_table(stored)
    missing = sorted(set(sectors["insee"]) - set(stored.geometry.index))
    if missing and any(f in ("geojson", "gpkg") for f in chosen):
        raise ValueError(f"plan {stored.id}: no polygon for {len(missing)} commune(s) (e.g. {missing[:5]}); "
                         "export csv or parquet only")
    geometry = None
    if any(f in ("geojson", "gpkg") for f in chosen):
        geometry = stored.geometry.reindex(sectors["insee"]).to_numpy()
    with run_folder(out_dir, name=stored.id) as run:
        files = []
        for fmt in chosen:
            if fmt == "xlsx":  # one workbook for both tables, written with the metadata it holds
                continue
            files.append(_write(sectors, geometry, run.staging / "sector_table", fmt).name)
            files.append(_write(postcodes, None, run.staging / "postcode_table", fmt).name)
        openapi = resources.files("sectorize").joinpath("store", "schemas", OPENAPI_FILE).read_bytes()
        (run.staging / OPENAPI_FILE).write_bytes(openapi)
        files.append(OPENAPI_FILE)
        files += [XLSX_FILE] if "xlsx" in chosen else []
        meta = plan_metadata(stored, [*files, "plan_metadata.json"], suppress_below)
        if "xlsx" in chosen:
            _write_xlsx(sectors, postcodes, meta, run.staging / XLSX_FILE)
        (run.staging / "plan_metadata.json").write_text(
            json.dumps(meta, ensure_ascii=False, indent=2, allow_nan=False), encoding="utf-8"
        )
    return run.final
