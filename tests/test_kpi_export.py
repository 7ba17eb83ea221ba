"""KPIs, exports and run folders, on hand-made plans and on the real communes of the Ain (01)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely

from sectorize.store import export
from sectorize.store.atomic import (
    LATEST,
    atomic_path,
    atomic_write_text,
    clean_stale_staging,
    latest_run,
    new_run_dir,
)
from sectorize.store.export import postcode_table, sector_table, write_outputs
from sectorize.report.kpi import compute_kpis, kpi_html, kpi_table, kpi_text, travel_stats
from sectorize.plan import Plan
from sectorize.config.scenario import default_scenario, load_scenario

DATA = Path(__file__).resolve().parents[1] / "geodata" / "data"


def _finish(units: gpd.GeoDataFrame, workers: pd.DataFrame, graph: nx.Graph, **kw) -> Plan:
    """Fill the worker columns of ``units`` from its ``sector`` column and build the Plan."""
    by_sector = workers.set_index("sector")
    units["group"] = units["sector"].map(by_sector["group"])
    units["worker_id"] = units["sector"].map(by_sector["worker_id"])
    units["worker_name"] = units["sector"].map(by_sector["worker_name"])
    return Plan(scenario=default_scenario(), units=units, workers=workers, graph=graph, **kw)


def _workers(sectors, groups, ftes, targets, centres) -> pd.DataFrame:
    n = len(sectors)
    return pd.DataFrame({
        "worker_id": [f"TS{i + 1:02d}" for i in range(n)], "worker_name": [f"Worker {i + 1}" for i in range(n)],
        "fte": ftes, "group": groups, "sector": sectors, "target": targets, "centre": centres,
        "base_key": ["69123"] * n, "base_lon": [np.nan] * n, "base_lat": [np.nan] * n,
    })


def tiny_plan(sectors: list[str]) -> Plan:
    """Four unit squares in a row, u1-u2-u3-u4, with hand-picked figures."""
    keys = ["01001", "01002", "01003", "01004"]
    units = gpd.GeoDataFrame(
        {
            "name": ["Un", "Deux", "Trois", "Quatre"], "dep": "01",
            "population": [100, 200, 300, 400],
            "postcodes": [["01000"], ["01000"], ["01000", "01500"], ["01500"]],
            "referrals": [10.0, 20.0, 30.0, 40.0], "home_care": [0.0, 0.0, 0.0, 0.0],
            "workload": [10.0, 20.0, 30.0, 40.0], "travel_min": [0.0, 10.0, 0.0, 20.0],
            "sector": sectors,
        },
        geometry=[shapely.box(i, 0, i + 1, 1) for i in range(4)], crs="EPSG:4326", index=pd.Index(keys, name="insee"),
    )
    graph = nx.path_graph(keys)
    workers = _workers(["A1", "A2"], ["A", "A"], [0.25, 0.75], [25.0, 75.0], [keys[0], keys[3]])
    return _finish(units, workers, graph, solve={"status": "optimal", "objective": 500.0, "gap": 0.0, "log": ["line"]})


@pytest.fixture(scope="module")
def ain_plan() -> Plan:
    """The 391 communes of the Ain, cut in 4 sectors by the median longitude and latitude."""
    communes = gpd.read_parquet(DATA / "communes.parquet")
    units = communes[communes["dep"] == "01"].set_index("insee")
    edges = pd.read_csv(DATA / "adjacency_queen.csv", dtype={"insee_a": str, "insee_b": str})
    edges = edges[edges["insee_a"].isin(units.index) & edges["insee_b"].isin(units.index)]
    graph = nx.Graph()
    graph.add_nodes_from(units.index)
    graph.add_edges_from(zip(edges["insee_a"], edges["insee_b"]))
    west = units["pt_lon"] < units["pt_lon"].median()
    south = units["pt_lat"] < units["pt_lat"].median()
    units["sector"] = np.where(west, "A", "B") + np.where(south, "1", "2")
    share = units["population"] / units["population"].sum()
    units["referrals"] = share * 100
    units["home_care"] = share * 40
    units["workload"] = units["referrals"] + 0.5 * units["home_care"]
    units["travel_min"] = np.hypot(units["pt_lon"] - 5.2, units["pt_lat"] - 46.1) * 90
    centres = [units.index[(units["sector"] == s).to_numpy()][0] for s in ["A1", "A2", "B1", "B2"]]
    total = units["workload"].sum()
    workers = _workers(["A1", "A2", "B1", "B2"], ["A", "A", "B", "B"], [1.0, 1.0, 0.8, 0.5],
                       list(total * np.array([1.0, 1.0, 0.8, 0.5]) / 3.3), centres)
    return _finish(units, workers, graph, solve={"status": "feasible", "backend": "hand", "log": ["x"]},
                   violations=["sector B2: caseload 36.3 above 20.0"], notes=["built by hand"])


# --------------------------------------------------------------------------- KPIs


def test_travel_stats_weighted_by_hand():
    stats = travel_stats(np.array([10.0, 20.0, 60.0, np.nan]), np.array([3.0, 1.0, 0.0, 5.0]))
    assert stats == {"mean_min": 12.5, "median_min": 10.0, "p90_min": 20.0, "max_min": 60.0, "unknown": 1}


def test_kpi_deviation_and_tolerance_by_hand():
    kpis = compute_kpis(tiny_plan(["A1", "A1", "A2", "A2"]))
    a1, a2 = kpis["sectors"]
    assert (a1["caseload"], a1["target"]) == (30.0, 25.0)
    assert a1["deviation_pct"] == pytest.approx(20.0)
    assert a1["within_tolerance"] is False
    assert a2["deviation_pct"] == pytest.approx(-100 / 15)  # (70 - 75) / 75 x 100
    assert a2["within_tolerance"] is True
    assert a1["travel"]["mean_min"] == pytest.approx(200 / 30)  # (10 x 0 + 20 x 10) / 30
    assert a1["contiguous"] and a2["contiguous"]
    assert a1["centre"] == {"key": "01001", "name": "Un"}
    assert (a1["communes"], a1["population"], a1["demand"]) == (2, 300, {"referrals": 30.0, "home_care": 0.0})
    (group,) = kpis["groups"]
    assert (group["caseload"], group["target"], group["deviation_pct"]) == (100.0, 100.0, 0.0)
    assert kpis["totals"] == {"communes": 4, "population": 1000, "demand": {"referrals": 100.0, "home_care": 0.0},
                              "workload": 100.0, "fte": 1.0, "unassigned": 0,
                              "referrals_per_year": 100.0, "referrals_per_week": pytest.approx(100 / 52.18),
                              "home_care_patients": 0.0, "follow_up_patients": None}
    assert (a1["referrals_per_year"], a1["home_care_patients"], a1["target_share_pct"]) == (30.0, 0.0, 120.0)
    assert kpis["solve"] == {"status": "optimal", "objective": 500.0, "gap": 0.0}
    assert kpis["valid"] is True


def test_contiguity_false_for_a_disconnected_sector():
    kpis = compute_kpis(tiny_plan(["A1", "A2", "A1", "A2"]))
    assert [s["contiguous"] for s in kpis["sectors"]] == [False, False]
    assert kpis["groups"][0]["contiguous"] is True


def test_unassigned_communes_counted():
    kpis = compute_kpis(tiny_plan(["A1", "A1", "A2", None]))
    assert kpis["totals"]["unassigned"] == 1


def test_kpi_table_text_html(ain_plan):
    kpis = compute_kpis(ain_plan)
    json.dumps(kpis, allow_nan=False)
    table = kpi_table(kpis)
    assert list(table["sector"]) == ["A1", "A2", "group A", "B1", "B2", "group B"]
    sectors, groups = table[table["level"] == "sector"], table[table["level"] == "group"]
    assert groups["caseload"].sum() == pytest.approx(sectors["caseload"].sum())
    assert sectors["communes"].sum() == 391
    text = kpi_text(kpis)
    assert text.startswith("Scenario: AURA default\nPlan: INVALID (1 violation(s))")
    assert "status=feasible, backend=hand" in text
    assert "  - sector B2: caseload 36.3 above 20.0" in text
    assert "All checks passed." in kpi_text(compute_kpis(tiny_plan(["A1", "A1", "A2", "A2"])))
    for heading in ("Workload per worker", "Travel per worker"):
        assert f"\n\n{heading} (" in text
    page = kpi_html(kpis)
    assert page.startswith("<!DOCTYPE html>") and '<table id="workload">' in page and '<table id="travel">' in page
    assert page.count('<tr class="sector">') == 2 * 4 and page.count('<tr class="group">') == 2 * 2
    assert not any(token in page for token in ("<script", "<link", "src=", "href=", "http"))


# --------------------------------------------------------------------------- tables


def test_sector_table_sorted_with_leading_zeros(ain_plan):
    table = sector_table(ain_plan)
    assert list(table.columns) == ["insee", "name", "dep", "group", "sector", "worker_id", "worker_name",
                                   "referrals", "home_care", "workload", "travel_min"]
    assert len(table) == 391 and table["insee"].is_monotonic_increasing
    assert table["insee"].iloc[0] == "01001"


def test_postcode_table_picks_the_most_populated_sector():
    table = postcode_table(tiny_plan(["A1", "A1", "A2", "A2"])).set_index("postcode")
    # 01000: A1 has Un + Deux (300 inhabitants), A2 has Trois (300): tie broken by more communes
    assert table.loc["01000", ["sector", "worker_id", "group", "communes", "spans_sectors", "sectors", "main_share"]].tolist() == [
        "A1", "TS01", "A", 3, True, "A1|A2", 0.5]
    assert table.loc["01500", ["sector", "spans_sectors", "sectors", "main_share"]].tolist() == ["A2", False, "A2", 1.0]


def test_postcode_table_covers_every_postcode(ain_plan):
    table = postcode_table(ain_plan)
    expected = sorted({p for codes in ain_plan.units["postcodes"] for p in codes})
    assert table["postcode"].tolist() == expected
    assert (table["spans_sectors"] == table["sectors"].str.contains("|", regex=False)).all()
    spans = table["spans_sectors"]
    assert (table.loc[~spans, "main_share"] == 1).all()
    n_sectors = table["sectors"].str.count(r"\|") + 1
    assert (table.loc[spans, "main_share"] >= 1 / n_sectors[spans]).all() and (table.loc[spans, "main_share"] < 1).all()


# --------------------------------------------------------------------------- run folders


def test_write_outputs_files(ain_plan, tmp_path):
    run = write_outputs(ain_plan, tmp_path, map_html="<html>map</html>")
    assert run.parent == tmp_path
    assert (tmp_path / LATEST).read_text(encoding="utf-8") == run.name + "\n"
    assert sorted(p.name for p in run.iterdir()) == [
        "kpi.html", "kpi.json", "kpi.txt", "map.html", "postcodes.csv", "run.json", "scenario.toml",
        "sectors.csv", "sectors.geojson", "sectors.xlsx", "workers.csv"]

    raw = (run / "sectors.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfinsee;name;dep;group;sector;")
    table = pd.read_csv(run / "sectors.csv", sep=";", dtype=str, encoding="utf-8-sig")
    assert table["insee"].tolist() == sector_table(ain_plan)["insee"].tolist()
    assert table.loc[0, "insee"] == "01001" and table.loc[0, "dep"] == "01"
    numbers = pd.read_csv(run / "sectors.csv", sep=";", decimal=",", dtype={"insee": str}, encoding="utf-8-sig")
    assert numbers["workload"].sum() == pytest.approx(ain_plan.units["workload"].sum(), abs=0.5)

    shapes = gpd.read_file(run / "sectors.geojson")
    assert shapes.crs.to_epsg() == 4326 and len(shapes) == 391
    assert shapes["insee"].iloc[0] == "01001"
    assert set(shapes.columns) == set(table.columns) | {"geometry"}

    postcodes = pd.read_csv(run / "postcodes.csv", sep=";", dtype=str, encoding="utf-8-sig")
    assert postcodes["postcode"].str.len().eq(5).all() and postcodes["postcode"].iloc[0].startswith("01")
    workers = pd.read_csv(run / "workers.csv", sep=";", decimal=",", encoding="utf-8-sig")
    assert workers["communes"].sum() == 391
    assert list(workers.columns) == [
        "worker_id", "worker_name", "fte", "group", "sector", "referrals_per_year", "referrals_per_week",
        "home_care_patients", "demand_values", "target_share_pct", "within_tolerance", "caseload_formula",
        "caseload", "target", "deviation_pct", "travel_base_mean_min", "travel_base_max_min",
        "travel_centre_mean_min", "travel_centre_max_min", "base_key", "base_lon", "base_lat", "centre", "communes"]
    assert workers["referrals_per_year"].sum() == pytest.approx(100, abs=0.2)   # one decimal: synthetic
    assert (workers["target_share_pct"] - workers["caseload"] / workers["target"] * 100).abs().max() < 0.06

    kpis = json.loads((run / "kpi.json").read_text(encoding="utf-8"))
    assert [s["sector"] for s in kpis["sectors"]] == ["A1", "A2", "B1", "B2"]
    assert "sector B2" in (run / "kpi.txt").read_text(encoding="utf-8")
    assert (run / "map.html").read_text(encoding="utf-8") == "<html>map</html>"
    assert load_scenario(run / "scenario.toml").model_dump() == ain_plan.scenario.model_dump(exclude={"output"}) | {
        "output": {"dir": ain_plan.scenario.output.dir.absolute()}}

    facts = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert facts["run"] == run.name and facts["valid"] is False
    assert facts["solve"] == {"status": "feasible", "backend": "hand"}
    assert facts["violations"] == ["sector B2: caseload 36.3 above 20.0"]
    assert facts["notes"] == ["built by hand"]
    assert facts["sectorize_version"]


def test_second_run_goes_to_a_new_folder(ain_plan, tmp_path):
    first = write_outputs(ain_plan, tmp_path)
    second = write_outputs(ain_plan, tmp_path)
    assert first != second and first.is_dir() and second.is_dir()
    assert latest_run(tmp_path) == second
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name, LATEST])


def test_failed_write_leaves_no_run_folder(ain_plan, tmp_path, monkeypatch):
    first = write_outputs(ain_plan, tmp_path)

    def broken(plan):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "postcode_table", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_outputs(ain_plan, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, LATEST])
    assert latest_run(tmp_path) == first


# --------------------------------------------------------------------------- atomic helpers


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "table.csv"
    atomic_write_text(target, "old")
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise ValueError("stop")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    atomic_write_text(target, "new; é", encoding="utf-8-sig")
    assert target.read_bytes() == "\ufeffnew; é".encode("utf-8")


def test_new_run_dir_never_reuses(tmp_path):
    first = new_run_dir(tmp_path, "plan")
    second = new_run_dir(tmp_path, "plan")
    (tmp_path / ".tmp-plan-3").mkdir()
    third = new_run_dir(tmp_path, "plan")
    assert [first.name, second.name, third.name] == ["plan", "plan-2", "plan-4"]


def test_stale_staging_is_cleaned_and_young_one_reported(tmp_path):
    old, young = tmp_path / ".tmp-20250101-000000", tmp_path / ".tmp-20250101-000001"
    for folder in (old, young):
        folder.mkdir()
        (folder / "sectors.csv").write_text("x", encoding="utf-8")
    (tmp_path / "20250101-000000").mkdir()
    day_ago = time.time() - 24 * 3600
    os.utime(old, (day_ago, day_ago))
    messages = clean_stale_staging(tmp_path)
    assert len(messages) == 2
    assert "removed" in messages[0] and "left in place" in messages[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [young.name]


def test_kpi_text_shows_each_solve_stage_without_logs():
    plan = tiny_plan(["A1", "A1", "A2", "A2"])
    plan.solve = {"status": "feasible", "objective": 1234.5, "gap": 0.025, "time_s": 3.0,
                  "stages": [{"stage": "groups", "backend": "heuristic", "log": ["step 1"]},
                             {"stage": "sectors of group A", "backend": "mip", "log": ["step 2"]}]}
    kpis = compute_kpis(plan)
    assert kpis["solve"]["stages"] == [{"stage": "groups", "backend": "heuristic"},
                                       {"stage": "sectors of group A", "backend": "mip"}]
    text = kpi_text(kpis)
    assert "  status=feasible, objective=1 234.5, gap=2.50 %, time=3.0 s\n  groups:\n    backend=heuristic\n" in text
    assert "  sectors of group A:\n    backend=mip\n" in text
    assert "step 1" not in text
