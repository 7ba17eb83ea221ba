"""Tables and files of a plan: the sector table, the postcode table and the run folder.

CSV files follow French spreadsheet conventions so that Excel opens them
directly: ``;`` separator, ``,`` decimal mark, UTF-8 with a byte-order mark.
Codes (INSEE, postcodes) are written as text and keep their leading zeros;
read them back with ``pandas.read_csv(path, sep=";", dtype=str)`` (or
``decimal=","`` to get numbers). Only aggregated counts per commune are
written, never patient-level data.

Example
-------
>>> run = write_outputs(plan, "sectorize-output")               # doctest: +SKIP
>>> sorted(p.name for p in run.iterdir())                       # doctest: +SKIP
['kpi.html', 'kpi.json', 'kpi.txt', 'postcodes.csv', 'run.json', 'scenario.toml',
 'sectors.csv', 'sectors.geojson', 'workers.csv']
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
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


def worker_table(plan: Plan, kpis: dict[str, Any]) -> pd.DataFrame:
    """``plan.workers`` with each sector's ``caseload``, ``deviation_pct`` and ``within_tolerance``."""
    figures = pd.DataFrame(kpis["sectors"])[["sector", "caseload", "deviation_pct", "within_tolerance", "communes"]]
    workers = plan.workers.assign(sector=plan.workers["sector"].astype(str))
    return workers.merge(figures, on="sector", how="left", validate="one_to_one")


def _rounded(table: pd.DataFrame, demand: list[str]) -> pd.DataFrame:
    decimals = {c: WORKLOAD_DECIMALS for c in [*demand, "workload", "target", "caseload"] if c in table.columns}
    decimals.update({c: TRAVEL_DECIMALS for c in ["travel_min"] if c in table.columns})
    decimals.update({c: 2 for c in ["deviation_pct"] if c in table.columns})
    return table.round(decimals)


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """Write a table as a French-Excel CSV (``;``, decimal ``,``, UTF-8 with BOM)."""
    table.to_csv(path, sep=";", decimal=",", encoding="utf-8-sig", index=False)


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
        write_csv(_rounded(sector_table(plan), demand), folder / "sectors.csv")
        write_geojson(plan, folder / "sectors.geojson")
        write_csv(postcode_table(plan), folder / "postcodes.csv")
        write_csv(_rounded(worker_table(plan, kpis), demand), folder / "workers.csv")
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
            else:
                (folder / name).write_text(content, encoding="utf-8")
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
