"""The planner API: scenario variants, plan conveniences, compare, Pareto, the pathology alternative."""

from __future__ import annotations

import folium
import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from matplotlib.figure import Figure

from browser import find_chromium, open_offline

from sectorize.report.compare import compare, compare_maps, disruption, partner_counts, plot_tradeoffs
from sectorize.report.maps import external_resources
from sectorize.report.pareto import non_dominated, pareto, plot_pareto
from sectorize.report.pathology import (
    TUMOUR_SHARES,
    assign_tumour_types,
    compare_organisations,
    organisation_figures,
    split_by_tumour,
)
from sectorize.plan import Plan
from sectorize.config.scenario import ScenarioError, default_scenario

KEYS = ["01001", "01002", "01003", "01004"]


def tiny_plan(workers_of_units: list[str], fte=(0.25, 0.75), scenario=None, partners: bool = True) -> Plan:
    """Four unit squares in a row; caseloads 10, 20, 30, 40; two workers TS01 (sector A1), TS02 (A2)."""
    units = gpd.GeoDataFrame(
        {
            "name": ["Un", "Deux", "Trois", "Quatre"], "dep": "01", "population": [100, 200, 300, 400],
            "postcodes": [["01000"]] * 4,
            "referrals": [10.0, 20.0, 30.0, 40.0], "home_care": [0.0] * 4,
            "workload": [10.0, 20.0, 30.0, 40.0], "travel_min": [0.0, 10.0, 0.0, 20.0],
            "worker_id": workers_of_units,
        },
        geometry=[shapely.box(4 + i * 0.1, 45, 4.1 + i * 0.1, 45.1) for i in range(4)], crs="EPSG:4326",
        index=pd.Index(KEYS, name="insee"),
    )
    if partners:
        units["epci"] = ["E1", "E1", "E2", "E3"]
        units["canton"] = ["K1", "K2", "K2", None]
    workers = pd.DataFrame({
        "worker_id": ["TS01", "TS02"], "worker_name": ["Worker 1", "Worker 2"], "fte": list(fte),
        "group": ["A", "A"], "sector": ["A1", "A2"],
        "target": [100 * f / sum(fte) for f in fte], "centre": ["01001", "01004"],
        "base_key": ["01001", "01004"], "base_lon": [4.05, 4.35], "base_lat": [45.05, 45.05],
    })
    by_worker = workers.set_index("worker_id")
    units["group"] = "A"
    units["sector"] = units["worker_id"].map(by_worker["sector"])
    units["worker_name"] = units["worker_id"].map(by_worker["worker_name"])
    return Plan(scenario=scenario or default_scenario(), units=units, workers=workers, graph=nx.path_graph(KEYS),
                solve={"status": "optimal", "gap": 0.0, "time_s": 1.5})


# --------------------------------------------------------------------------- Scenario.with_


def test_with_dotted_and_nested_keys():
    s = default_scenario()
    a = s.with_(**{"model.tolerance": 0.05, "groups.count": 3})
    b = s.with_(model={"tolerance": 0.05}, groups={"count": 3})
    assert a == b
    assert a.model.tolerance == 0.05 and a.groups.names == ["A", "B", "C"]
    assert a.model.group_tolerance == pytest.approx(0.025)  # was half the tolerance: stays half
    assert a.model.time_limit_s == s.model.time_limit_s  # untouched keys are kept
    assert s.model.tolerance == 0.10  # the original is unchanged
    assert a.source == s.source
    assert s.with_(**{"model.tolerance": 0.06, "model.group_tolerance": 0.05}).model.group_tolerance == 0.05


def test_with_replaces_lists_and_dicts_whole():
    s = default_scenario()
    workers = [{"id": "X1", "name": "X", "fte": 1.0}, {"id": "X2", "name": "Y", "fte": 0.5}]
    t = s.with_(**{"team.workers": workers, "demand.weights": {"referrals": 1.0}})
    assert [w.id for w in t.team.workers] == ["X1", "X2"]
    assert t.demand.weights == {"referrals": 1.0}


@pytest.mark.parametrize("changes, words", [
    ({"model.tolerance": 1.5}, ["model.tolerance", "< 1", "1.5"]),
    ({"model.tolerence": 0.1}, ["model.tolerence", "did you mean 'tolerance'"]),
    ({"name.x": 1}, ["'name.x'", "not a section"]),
    ({"groups.count": 12}, ["groups.count", "12 groups"]),
])
def test_with_errors_name_the_key(changes, words):
    with pytest.raises(ScenarioError) as err:
        default_scenario().with_(**changes)
    for word in words:
        assert word in str(err.value)


def test_worker_helpers():
    s = default_scenario()
    added = s.with_worker("TS12", fte=0.8, base="38185")
    assert [w.id for w in added.team.workers][-1] == "TS12"
    assert added.team.total_fte == pytest.approx(s.team.total_fte + 0.8)
    moved = s.with_worker("TS03", base_lon=5.72, base_lat=45.19)
    assert (moved.team.workers[2].base, moved.team.workers[2].base_lon) == (None, 5.72)
    assert moved.with_worker("TS03", base="38185").team.workers[2].base_lon is None
    assert "TS05" not in [w.id for w in s.without_worker("TS05").team.workers]
    with pytest.raises(ScenarioError, match="no worker 'TS99'"):
        s.without_worker("TS99")
    with pytest.raises(ScenarioError, match="needs an fte"):
        s.with_worker("TS12")
    with pytest.raises(ScenarioError, match=r"team.workers\[2\].fte"):
        s.with_worker("TS03", fte=2.0)


# --------------------------------------------------------------------------- Plan conveniences


def test_plan_conveniences(aura_run, tmp_path):
    _, plan = aura_run
    kpis = plan.kpis
    sectors = kpis[kpis["level"] == "sector"]
    assert len(sectors) == len(plan.workers)
    assert sectors["caseload"].sum() == pytest.approx(plan.units["workload"].sum())
    table = plan.assignment
    assert list(table.columns) == ["insee", "group", "sector", "worker", "workload", "travel_min", "geometry"]
    assert (table["worker"] == plan.units["worker_id"]).all() and table.crs == plan.units.crs
    table.loc[table.index[0], "worker"] = "nobody"  # a copy
    assert plan.units["worker_id"].iloc[0] != "nobody"
    assert isinstance(plan.map(simplify_m=500), folium.Map)


def test_plan_export_writes_a_run_folder(tmp_path):
    plan = tiny_plan(["TS01", "TS01", "TS02", "TS02"])
    folder = plan.export(tmp_path / "runs")
    assert folder.parent == tmp_path / "runs"
    for name in ("sectors.csv", "map.html", "kpi.json", "scenario.toml"):
        assert (folder / name).is_file(), name
    assert external_resources((folder / "map.html").read_text(encoding="utf-8")) == []


# --------------------------------------------------------------------------- compare


def test_compare_figures_by_hand():
    a = tiny_plan(["TS01", "TS01", "TS02", "TS02"])
    b = tiny_plan(["TS01", "TS01", "TS01", "TS02"])
    table = compare({"a": a, "b": b}, reference=a)
    assert list(table.index) == ["a", "b"]
    # a: TS01 has 30 for a target of 25 (+20 %), TS02 70 for 75 (-6.67 %)
    assert table.at["a", "max_dev_pct"] == pytest.approx(20.0)
    assert table.at["a", "dev_std_pct"] == pytest.approx(np.std([20.0, -100 * 5 / 75]))
    # b: TS01 60 for 25 (+140 %)
    assert table.at["b", "max_dev_pct"] == pytest.approx(140.0)
    # travel weighted by caseload: (10*0 + 20*10 + 30*0 + 40*20) / 100
    assert table.at["a", "travel_mean_min"] == pytest.approx(10.0)
    assert table.at["a", "travel_max_min"] == 20.0
    assert (table.at["b", "communes_min"], table.at["b", "communes_max"]) == (1, 3)
    # a: TS01 has communes 1, 2 (EPCI E1; cantons K1, K2), TS02 has 3, 4 (E2, E3; K2)
    assert (table.at["a", "epci_mean"], table.at["a", "epci_max"]) == (1.5, 2)
    assert (table.at["a", "cantons_mean"], table.at["a", "cantons_max"]) == (1.5, 2)
    # disruption: only commune 3 (caseload 30) changes worker
    assert (table.at["a", "moved_communes"], table.at["a", "moved_workload"]) == (0, 0.0)
    assert (table.at["b", "moved_communes"], table.at["b", "moved_workload"]) == (1, 30.0)
    assert table.at["b", "moved_workload_pct"] == pytest.approx(30.0)
    assert table.at["b", "moved_workload_renamed"] == 30.0  # FTE differ: sectors cannot be swapped
    assert (table.at["b", "status"], table.at["b", "solve_s"]) == ("optimal", 1.5)


def test_disruption_matches_workers_and_renames_equal_fte_sectors():
    before = tiny_plan(["TS01", "TS01", "TS02", "TS02"], fte=(0.5, 0.5))
    swapped = tiny_plan(["TS02", "TS02", "TS01", "TS01"], fte=(0.5, 0.5))
    d = disruption(swapped, before.units["worker_id"])
    assert (d["moved_communes"], d["moved_workload"]) == (4, 100.0)  # by worker id: everyone moves
    assert (d["moved_communes_renamed"], d["moved_workload_renamed"]) == (0, 0.0)  # same sectors, renamed
    part = disruption(swapped, before.units["worker_id"].drop("01004"))
    assert part["not_compared"] == 1 and part["moved_communes"] == 3


def test_compare_says_when_partners_are_unknown():
    scenario = default_scenario().with_(region={"units": "communes.gpkg", "key": "insee", "variant": "communes"})
    plan = tiny_plan(["TS01", "TS01", "TS02", "TS02"], scenario=scenario, partners=False)
    row = compare([plan]).iloc[0]
    assert np.isnan(row["epci_mean"]) and "lack epci/canton" in row["partners_note"]
    assert "moved_communes" not in row.index


def test_partner_counts_skip_communes_without_caseload():
    load = pd.DataFrame({"w": [1.0, 0.0, 2.0]}, index=["a", "b", "c"])
    codes = pd.DataFrame({"epci": ["E1", "E2", "E3"], "canton": ["K1", "K1", "K1"]}, index=["a", "b", "c"])
    assert partner_counts(load, codes).loc["w"].tolist() == [2, 1]


def test_compare_maps_is_one_offline_page():
    a = tiny_plan(["TS01", "TS01", "TS02", "TS02"])
    b = tiny_plan(["TS01", "TS01", "TS01", "TS02"])
    page = compare_maps({"plan <a>": a, "plan b": b}, columns=2, simplify_m=0)
    assert page.count("<iframe") == 2 and page.count("srcdoc=") == 2
    assert "plan &lt;a&gt;" in page and "repeat(2," in page
    assert external_resources(page) == []


@pytest.mark.skipif(find_chromium() is None, reason="no chromium, chromium-browser or google-chrome on PATH")
def test_compare_maps_page_loads_in_a_browser_offline(tmp_path):
    """The comparison page, opened in headless Chromium: no console error (its framed maps
    included) and no request leaving the machine."""
    a = tiny_plan(["TS01", "TS01", "TS02", "TS02"])
    b = tiny_plan(["TS01", "TS01", "TS01", "TS02"])
    page = tmp_path / "compare.html"
    page.write_text(compare_maps({"plan a": a, "plan b": b}, columns=2, simplify_m=0), encoding="utf-8")
    run = open_offline(page, budget_ms=15_000)
    assert run.console == [] and run.requests == []
    assert run.dom.count("<iframe") == 2 and "plan a" in run.dom and "plan b" in run.dom


def test_plot_tradeoffs_returns_a_figure():
    table = compare({"a": tiny_plan(["TS01", "TS01", "TS02", "TS02"]), "b": tiny_plan(["TS01"] * 3 + ["TS02"])})
    fig = plot_tradeoffs(table)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("largest caseload deviation")
    assert sorted(t.get_text() for t in ax.texts) == ["a", "b"]
    with pytest.raises(ValueError, match="no column"):
        plot_tradeoffs(table, x="nope")


# --------------------------------------------------------------------------- Pareto


def test_non_dominated_on_a_hand_made_table():
    t = pd.DataFrame({
        "dev": [5.0, 9.0, 6.0, 9.5, np.nan, 5.0, 3.0],
        "travel": [40.0, 30.0, 45.0, 30.0, 1.0, 40.0, 60.0],
    })
    # row 2 is beaten by row 0, row 3 by row 1, row 4 has no plan; rows 0 and 5 are equal: both kept
    assert non_dominated(t, ["dev", "travel"]).tolist() == [True, True, False, False, False, True, True]
    three = t.assign(moved=[10.0, 10.0, 0.0, 10.0, 0.0, 20.0, 10.0])
    assert non_dominated(three, ["dev", "travel", "moved"]).tolist() == [True, True, True, False, False, False, True]
    with pytest.raises(ValueError, match="no column"):
        non_dominated(t, ["dev", "missing"])


def test_plot_pareto_joins_the_front():
    t = pd.DataFrame({"tolerance": [0.05, 0.10, 0.15], "sparse_weight": [0.05] * 3,
                      "max_dev_pct": [4.9, 9.8, 9.0], "travel_mean_min": [31.0, 29.0, 30.0]})
    t["pareto"] = non_dominated(t, ["max_dev_pct", "travel_mean_min"])
    fig = plot_pareto(t)
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == [4.9, 9.0, 9.8]


@pytest.mark.slow
def test_pareto_solves_each_setting():
    quick = default_scenario().with_(**{"model.backend": "heuristic", "model.time_limit_s": 2})
    lines = []
    table = pareto(quick, tolerances=(0.05, 0.15), progress=lines.append)
    assert len(table) == 2 and len(lines) == 2 and table["feasible"].all() and table["valid"].all()
    assert (table["max_dev_pct"] <= 100 * table["tolerance"] + 1e-6).all()
    assert table["pareto"].any()


@pytest.mark.slow
def test_pareto_with_a_previous_plan_adds_disruption(aura_run):
    _, previous = aura_run
    quick = previous.scenario.with_(**{"model.time_limit_s": 2})
    table = pareto(quick, tolerances=(0.10,), previous=previous, move_penalties=(0.0, 50.0))
    assert list(table["move_penalty_min"]) == [0.0, 50.0] and table["feasible"].all()
    assert (table["moved_workload_pct"] >= 0).all() and table["pareto"].any()


# --------------------------------------------------------------------------- pathology


def test_tumour_split_sums_back_to_the_commune_demand():
    load = pd.Series(np.random.default_rng(3).poisson(3.0, size=500).astype(float),
                     index=[f"{i:05d}" for i in range(500)])
    by_type = split_by_tumour(load, seed=7)
    assert list(by_type.columns) == list(TUMOUR_SHARES)
    assert np.allclose(by_type.sum(axis=1), load)
    assert (by_type.to_numpy() >= 0).all()
    assert by_type.equals(split_by_tumour(load, seed=7)) and not by_type.equals(split_by_tumour(load, seed=8))
    shares = by_type.sum() / load.sum()
    assert shares.to_numpy() == pytest.approx(np.array(list(TUMOUR_SHARES.values())), abs=0.02)
    with pytest.raises(ValueError, match="share > 0"):
        split_by_tumour(load, {"a": 0.0})


def test_tumour_types_shared_out_within_tolerance():
    load = pd.Series(np.random.default_rng(1).poisson(2.0, size=800).astype(float))
    by_type = split_by_tumour(load, seed=2)
    fte = pd.Series([1.0, 1.0, 1.0, 0.8, 0.5], index=["W1", "W2", "W3", "W4", "W5"])
    org = assign_tumour_types(by_type, fte, tolerance=0.05)
    assert np.allclose(org.shares.sum(axis=1), 1.0)
    assert org.caseload.sum() == pytest.approx(load.sum())
    assert ((org.caseload / org.target - 1).abs() <= 0.05 + 1e-6).all()
    assert np.allclose(org.load(by_type).sum(axis=1), load)
    assert sum(map(len, org.types_per_worker)) >= len(TUMOUR_SHARES)


def test_organisations_measured_alike():
    plan = tiny_plan(["TS01", "TS01", "TS02", "TS02"])
    by_type = split_by_tumour(plan.units["workload"], {"x": 1.0, "y": 3.0}, concentration=None)
    org = assign_tumour_types(by_type, plan.workers.set_index("worker_id")["fte"], tolerance=0.01)
    assert org.types_per_worker.to_dict() == {"TS01": ["x"], "TS02": ["y"]}
    minutes = pd.DataFrame({"TS01": [0.0, 10.0, 20.0, 30.0], "TS02": [30.0, 20.0, 10.0, 0.0]}, index=KEYS)
    table = compare_organisations(plan, by_type, org, minutes)
    # territory: TS01 serves 10 at 0 and 20 at 10 min; TS02 30 at 10 and 40 at 0 -> 500 / 100
    assert table.at["by territory", "travel_mean_min"] == pytest.approx(5.0)
    # pathology: TS01 follows a quarter of every commune, TS02 three quarters, each from its base (x 10)
    assert table.at["by pathology", "travel_mean_min"] == pytest.approx(
        (25 * 0.0 + 50 * 10 + 75 * 20 + 100 * 30 + 75 * 30 + 150 * 20 + 225 * 10 + 300 * 0) / 1000)
    assert table.at["by pathology", "epci_mean"] == 3 and table.at["by territory", "epci_mean"] == 1.5
    assert table.at["by pathology", "types_per_worker_mean"] == 1.0
    f = organisation_figures(org.load(by_type), org.target, minutes, None)
    assert f["max_dev_pct"] == pytest.approx(0.0, abs=1e-6) and np.isnan(f["epci_mean"])
