"""Reports in the manager's units (issue 18): patients per worker per year and per week, caseload as a
share of target, travel from the worker's base, follow-up only when the demand has it, synthetic
demand labelled as expected values, demand left out of the plan by department."""

from __future__ import annotations

import importlib
import io
import json
import re
import sys

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely

from browser import find_chromium, open_offline
from geodata.demand import Demand
from geodata.regions import Region
from sectorize.config.scenario import scenario_from_dict
from sectorize.pipeline.assemble import assemble
from sectorize.pipeline.inputs import Inputs, Team, integer_graph, workload
from sectorize.report.kpi import WEEKS_PER_YEAR, compute_kpis, kpi_html, kpi_table, kpi_text
from sectorize.report.maps import diff_map
from sectorize.store.export import worker_table, write_outputs
from solvers import NestedSolution
from solvers.problem import DenseTravelTimes
from test_kpi_export import tiny_plan

needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="no chromium, chromium-browser or google-chrome on PATH"
)


def line_of(text: str, start: str) -> str:
    """The first line of ``text`` that starts with ``start``."""
    return next(line for line in text.splitlines() if line.startswith(start))


def travel_line(text: str, sector: str) -> str:
    """The sector's line in the travel table (the second table starting with the sector id)."""
    return [line for line in text.splitlines() if line.startswith(sector + " ")][1]


def counted(plan):
    """``plan`` with its demand read from a file of counts (not synthetic)."""
    plan.demand_source = "demande_2026.csv"
    return plan


def excluded_rows() -> pd.DataFrame:
    """Hand-made ``Demand.excluded``: 3 rows outside the region in 2 departments, and a total row."""
    return pd.DataFrame({
        "code": ["71270", "71076", "75056", "TOTAL"],
        "department": ["71", "71", "75", ""],
        "reason": ["outside the region", "outside the region", "outside the region", "total row"],
        "referrals": [3.0, 2.0, 4.0, 999.0],
        "home_care": [1.0, 0.0, 0.0, 99.0],
    })


# --------------------------------------------------------------------------- patients per year and per week


def test_per_week_is_per_year_over_52_18():
    plan = tiny_plan(["A1", "A1", "A2", "A2"])
    kpis = compute_kpis(plan)
    a1, a2 = kpis["sectors"]
    assert (a1["referrals_per_year"], a2["referrals_per_year"]) == (30.0, 70.0)   # 10 + 20, 30 + 40
    for s in (a1, a2, kpis["groups"][0], kpis["totals"]):
        assert s["referrals_per_week"] == pytest.approx(s["referrals_per_year"] / 52.18)
    assert WEEKS_PER_YEAR == 52.18
    assert kpis["totals"]["referrals_per_week"] == pytest.approx(100 / 52.18)
    table = worker_table(plan, kpis).set_index("sector")
    assert table.loc["A1", "referrals_per_week"] == round(30 / 52.18, 2) == 0.57
    assert table.loc["A2", "referrals_per_week"] == round(70 / 52.18, 2) == 1.34
    text = kpi_text(kpis)
    assert re.search(r"^A1 .* ≈ 30\.0 +≈ 0\.6 ", text, re.M)     # 30 / 52.18 = 0.575
    assert re.search(r"^A2 .* ≈ 70\.0 +≈ 1\.3 ", text, re.M)     # 70 / 52.18 = 1.342
    assert "≈ 100.0 expected per year, ≈ 1.9 expected per week (per year / 52.18)" in text
    assert "New referrals (demand column 'referrals')" in text


def test_caseload_as_a_share_of_target_with_its_weights():
    plan = tiny_plan(["A1", "A1", "A2", "A2"])
    kpis = compute_kpis(plan)
    a1, a2 = kpis["sectors"]
    assert a1["target_share_pct"] == pytest.approx(120.0)          # 30 / 25
    assert a2["target_share_pct"] == pytest.approx(70 / 75 * 100)  # 93.3
    assert kpis["demand"]["formula"] == "caseload = 1.0 × referrals + 0.5 × home care"
    text = kpi_text(kpis)
    assert "Caseload = 1.0 × referrals + 0.5 × home care (weighted units)" in text
    assert re.search(r"^A1 .*120 % of target +NO +30\.0 / 25\.0$", line_of(text, "A1 "))
    assert re.search(r"^A2 .* 93 % of target +yes +70\.0 / 75\.0$", line_of(text, "A2 "))
    header = line_of(text, "sector ")
    # patients first, the weighted figures last
    assert header.index("new referrals/year") < header.index("caseload vs target") < header.index(
        "weighted caseload / target")
    table = worker_table(plan, kpis)
    assert table["target_share_pct"].tolist() == [120.0, 93.3]
    assert set(table["caseload_formula"]) == {"caseload = 1.0 × referrals + 0.5 × home care"}
    columns = list(table.columns)
    assert columns.index("referrals_per_year") < columns.index("target_share_pct") < columns.index("caseload")


# --------------------------------------------------------------------------- travel from the base


def tiny_instance():
    """Five unit squares in a row, two workers based at the two ends' neighbours, one group.

    Travel minutes are |i - j| x 7 + 3 off the diagonal (whole minutes, so rounding to 0.1 is exact);
    TS01 is based at unit 4 (the far end from its sector), TS02 at unit 0.
    """
    keys = ["01001", "01002", "01003", "01004", "01005"]
    units = gpd.GeoDataFrame(
        {"name": ["Un", "Deux", "Trois", "Quatre", "Cinq"], "dep": "01", "population": [100] * 5,
         "postcodes": [["01000"]] * 5, "lon": np.arange(5) + 0.5, "lat": [0.5] * 5},
        geometry=[shapely.box(i, 0, i + 1, 1) for i in range(5)], crs="EPSG:4326", index=pd.Index(keys, name="insee"))
    region = Region(units=units, graph=nx.path_graph(keys), name="tiny row")
    idx = np.arange(5)
    minutes = np.abs(idx[:, None] - idx[None]) * 7.0 + 3.0 * (idx[:, None] != idx[None])
    travel = DenseTravelTimes(minutes)
    scenario = scenario_from_dict({
        "name": "tiny", "groups": {"count": 1},
        "model": {"tolerance": 0.5, "group_tolerance": 0.5, "objective": "pmedian"},
        "team": {"default_base": "01001", "workers": [
            {"id": "TS01", "name": "Alice", "fte": 1.0, "base": "01005"},
            {"id": "TS02", "name": "Bruno", "fte": 1.0, "base": "01001"}]},
    })
    demand = Demand(table=pd.DataFrame({"referrals": [4.0, 1.0, 2.0, 3.0, 5.0],
                                        "home_care": [2.0, 0.0, 4.0, 0.0, 2.0]}, index=units.index),
                    source="synthetic (test)")
    demand.excluded = excluded_rows()
    load = workload(scenario, demand)
    team = Team(ids=("TS01", "TS02"), names=("Alice", "Bruno"), fte=np.array([1.0, 1.0]), fixed_group=(None, None),
                base_key=("01005", "01001"), base_lon=np.array([4.5, 0.5]), base_lat=np.array([0.5, 0.5]),
                base_travel=minutes[[4, 0]])
    w = load.to_numpy(dtype=float)
    inputs = Inputs(scenario, region, demand, load, travel, team, integer_graph(region.graph, {k: i for i, k in enumerate(keys)}),
                    w, w.copy())
    nested = NestedSolution(group=np.zeros(5, dtype=int), sector=np.array([0, 0, 1, 1, 1]),
                            worker_group=np.array([0, 0]), centre=np.array([1, 3]), objective=0.0)
    return assemble(inputs, nested), minutes, w


def test_travel_from_the_base_and_from_the_centre_on_a_tiny_instance(tmp_path):
    plan, minutes, w = tiny_instance()
    assert plan.valid, plan.violations
    kpis = compute_kpis(plan)
    a1, a2 = kpis["sectors"]
    # computed here from the matrix: TS01 (units 0, 1) from its base, unit 4; TS02 (units 2..4) from unit 0
    for s, members, base, centre in ((a1, [0, 1], 4, 1), (a2, [2, 3, 4], 0, 3)):
        from_base, from_centre = minutes[base, members], minutes[centre, members]
        assert s["travel_base"]["mean_min"] == pytest.approx(np.average(from_base, weights=w[members]))
        assert s["travel_base"]["max_min"] == from_base.max()
        assert s["travel_centre"]["mean_min"] == pytest.approx(np.average(from_centre, weights=w[members]))
        assert s["travel_centre"]["max_min"] == from_centre.max()
        assert s["travel"] == s["travel_centre"]            # objective pmedian: the reference is the centre
    assert a1["travel_base"]["mean_min"] == pytest.approx((5 * 31 + 1 * 24) / 6)   # 29.83 min
    assert (a1["travel_base"]["max_min"], a2["travel_base"]["max_min"]) == (31.0, 31.0)
    assert a2["travel_base"]["mean_min"] == pytest.approx((4 * 17 + 3 * 24 + 6 * 31) / 13)
    assert a1["base"]["name"] == "Cinq" and a2["base"]["name"] == "Un"
    # the group: each commune from its own worker's base
    group_minutes = np.array([31.0, 24.0, 17.0, 24.0, 31.0])
    assert kpis["groups"][0]["travel_base"]["mean_min"] == pytest.approx(np.average(group_minutes, weights=w))

    table = worker_table(plan, kpis).set_index("sector")
    assert table.loc["A1", ["travel_base_mean_min", "travel_base_max_min"]].tolist() == [29.8, 31.0]
    assert table.loc["A1", ["travel_centre_mean_min", "travel_centre_max_min"]].tolist() == [
        round(np.average(minutes[1, [0, 1]], weights=w[[0, 1]]), 1), 10.0]
    text = kpi_text(kpis)
    assert "minutes from the worker's base and from the sector's centre commune" in text
    assert re.search(r"^A1 +Cinq +30 +31 +Deux +\d+ +10 +2 ", travel_line(text, "A1"))
    assert re.search(r"^A2 +Un +25 +31 +Quatre +", travel_line(text, "A2"))     # 326 / 13 = 25.1

    # the run folder's workers.csv and kpi.json carry the same figures
    run = write_outputs(plan, tmp_path)
    workers = pd.read_csv(run / "workers.csv", sep=";", decimal=",", encoding="utf-8-sig").set_index("sector")
    assert workers.loc["A1", "travel_base_mean_min"] == 29.8
    assert workers.loc["A2", "referrals_per_week"] == round(10 / 52.18, 2)
    written = json.loads((run / "kpi.json").read_text(encoding="utf-8"))
    assert written["sectors"][0]["travel_base"]["max_min"] == 31.0


def test_the_pipeline_carries_demand_source_and_exclusions_into_the_plan():
    plan, _, _ = tiny_instance()
    assert plan.demand_source == "synthetic (test)"
    assert plan.excluded is not None and len(plan.excluded) == 4
    kpis = compute_kpis(plan)
    assert kpis["demand"]["synthetic"] is True and kpis["demand"]["values"] == "expected"
    assert kpis["excluded"]["total"]["referrals"] == 9.0


def test_a_reopened_plan_without_base_minutes_says_so():
    """A plan re-opened from a registry has only ``travel_min``: from the centre (pmedian), base unknown."""
    plan, _, _ = tiny_instance()
    plan.units = plan.units.drop(columns=["centre_travel_min", "base_travel_min"])
    kpis = compute_kpis(plan)
    assert kpis["sectors"][0]["travel_base"] is None
    assert kpis["sectors"][0]["travel_centre"] == kpis["sectors"][0]["travel"]
    assert re.search(r"^A1 +Cinq +- +- +Deux", travel_line(kpi_text(kpis), "A1"))


# --------------------------------------------------------------------------- follow-up, synthetic, counts


def test_follow_up_shown_only_with_a_follow_up_column():
    plan = tiny_plan(["A1", "A1", "A2", "A2"])
    kpis = compute_kpis(plan)
    assert kpis["demand"]["columns"]["follow_up"] is None and kpis["sectors"][0]["follow_up_patients"] is None
    for page in (kpi_text(kpis), kpi_html(kpis)):
        assert "follow-up" not in page.lower()
    assert "follow_up_patients" not in worker_table(plan, kpis).columns
    assert kpi_table(kpis)["follow_up_patients"].isna().all()

    plan.units["follow_up"] = [3.0, 1.0, 0.0, 2.0]
    kpis = compute_kpis(plan)
    assert [s["follow_up_patients"] for s in kpis["sectors"]] == [4.0, 2.0]
    text = kpi_text(kpis)
    assert "Patients in follow-up (demand column 'follow_up'): ≈ 6.0 expected" in text
    assert "patients in follow-up" in line_of(text, "sector ")
    assert worker_table(plan, kpis)["follow_up_patients"].tolist() == [4.0, 2.0]

    # rerun.follow_up names another column
    plan = tiny_plan(["A1", "A1", "A2", "A2"])
    plan.units["suivis"] = [1.0, 1.0, 1.0, 1.0]
    plan.scenario = plan.scenario.model_copy(update={"rerun": plan.scenario.rerun.model_copy(update={"follow_up": "suivis"})})
    assert compute_kpis(plan)["demand"]["columns"]["follow_up"] == "suivis"


def map_ready(plan):
    plan.workers["base_lon"], plan.workers["base_lat"] = [0.5, 3.5], [0.5, 0.5]
    return plan


def test_diff_map_says_patients_only_with_a_follow_up_column():
    changes = pd.DataFrame({"insee": ["01002"], "name": ["Deux"], "from_sector": ["A2"], "from_worker": ["TS02"],
                            "to_sector": ["A1"], "to_worker": ["TS01"], "follow_up": [20.0], "reason": ["moved"]})
    plan = map_ready(tiny_plan(["A1", "A1", "A2", "A2"]))
    page = diff_map(plan, changes).get_root().render()
    assert "Patients in follow-up" not in page and '"Caseload concerned (weighted units)"' in page
    plan.units["follow_up"] = [3.0, 1.0, 0.0, 2.0]
    page = diff_map(plan, changes).get_root().render()
    assert '"Patients in follow-up"' in page and "Caseload concerned" not in page


def test_synthetic_demand_is_labelled_as_expected_values():
    plan = tiny_plan(["A1", "A1", "A2", "A2"])
    plan.units["referrals"] = [10.4, 20.3, 30.0, 39.3]
    plan.demand_source = "synthetic (Huff gravity model, seed 2026)"
    kpis = compute_kpis(plan)
    text = kpi_text(kpis)
    assert "SYNTHETIC: figures marked ≈ are expected values, not counts of real patients" in text
    assert "New referrals (demand column 'referrals'): ≈ 100.0 expected per year" in text
    assert re.search(r"^A1 .* ≈ 30\.7 ", text, re.M)
    assert "≈: expected values of the synthetic demand" in text and "≈: expected values" in kpi_html(kpis)
    table = worker_table(plan, kpis)
    assert table["referrals_per_year"].tolist() == [30.7, 69.3]
    assert set(table["demand_values"]) == {"expected (synthetic demand)"}


def test_counts_from_a_file_are_whole_numbers():
    plan = counted(tiny_plan(["A1", "A1", "A2", "A2"]))
    plan.units["referrals"] = [10.4, 20.3, 30.0, 39.3]          # postcode splits leave fractions
    kpis = compute_kpis(plan)
    assert kpis["demand"] == {**kpis["demand"], "synthetic": False, "values": "counts"}
    text = kpi_text(kpis)
    assert "≈" not in text and "expected" not in text and "SYNTHETIC" not in text
    assert "Demand: demande_2026.csv. Counts of patients." in text
    assert re.search(r"^A1 +Worker 1 +0\.25 +31 +0\.6 ", line_of(text, "A1 "))   # 30.7 -> 31, 30.7 / 52.18
    assert "New referrals (demand column 'referrals'): 100 per year, 1.9 per week" in text
    table = worker_table(plan, kpis)
    assert table["referrals_per_year"].tolist() == [31.0, 69.0]
    assert set(table["demand_values"]) == {"counts"}


# --------------------------------------------------------------------------- demand left out


def test_excluded_referrals_by_department():
    plan = counted(tiny_plan(["A1", "A1", "A2", "A2"]))
    plan.excluded = excluded_rows()
    kpis = compute_kpis(plan)
    assert kpis["excluded"] == {
        "columns": ["referrals", "home_care"],
        "rows": [{"department": "71", "reason": "outside the region", "rows": 2, "referrals": 5.0, "home_care": 1.0},
                 {"department": "75", "reason": "outside the region", "rows": 1, "referrals": 4.0, "home_care": 0.0}],
        "total": {"rows": 3, "referrals": 9.0, "home_care": 1.0},       # the total row of the file left aside
    }
    text = kpi_text(kpis)
    assert "Left out of the plan: 9 referrals/year (3 row(s) of the demand file, department(s) 71, 75)" in text
    section = text[text.index("Demand left out of the plan, by department"):]
    assert re.search(r"^71 +outside the region +2 +5 +1$", section, re.M)
    assert re.search(r"^75 +outside the region +1 +4 +0$", section, re.M)
    assert re.search(r"^total +3 +9 +1$", section, re.M)
    assert "new referrals/year" in section.splitlines()[1]
    page = kpi_html(kpis)
    assert '<table id="excluded">' in page and "<td class=\"text\">outside the region</td>" in page
    # aggregated counts only: no code of the file in any report
    for report in (text, page, json.dumps(kpis)):
        assert not any(code in report for code in ("71270", "71076", "75056", "TOTAL"))


def test_nothing_excluded_means_no_section():
    for excluded in (None, excluded_rows().iloc[3:], excluded_rows().iloc[:0]):   # none, a total row only, empty
        plan = tiny_plan(["A1", "A1", "A2", "A2"])
        plan.excluded = excluded
        kpis = compute_kpis(plan)
        assert kpis["excluded"] is None
        assert "left out" not in kpi_text(kpis).lower() and "left out" not in kpi_html(kpis).lower()


# --------------------------------------------------------------------------- printing and the page


def test_stdout_without_the_symbols_gets_plain_stand_ins(monkeypatch):
    cli_main = importlib.import_module("sectorize.cli.main")
    out = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")
    monkeypatch.setattr(sys, "stdout", out)
    # cp1252 has × and ± but no ≈
    assert cli_main._printable("≈ 12.0 expected; 1.0 × referrals; ±10 %") == "~ 12.0 expected; 1.0 × referrals; ±10 %"
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    assert cli_main._printable("≈ 1 × ±") == "~ 1 x +/-"
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    assert cli_main._printable("≈ 1 × ±") == "≈ 1 × ±"


@needs_chromium
def test_kpi_page_loads_offline_without_console_errors(tmp_path):
    plan = counted(tiny_plan(["A1", "A1", "A2", "A2"]))
    plan.excluded = excluded_rows()
    plan.units["follow_up"] = [3.0, 1.0, 0.0, 2.0]
    run = write_outputs(plan, tmp_path)
    page = open_offline(run / "kpi.html")
    assert page.console == [] and page.requests == []
    for table in ("workload", "travel", "excluded"):
        assert f'<table id="{table}">' in page.dom
    rows = re.findall(r'<tr class="sector">', page.dom)
    assert len(rows) == 2 + 2 + 2          # two workers in each per-worker table, two departments left out
    assert "patients in follow-up" in page.dom and "120 % of target" in page.dom
    # the charts (issue 22): inline SVG, worker names as text, a tolerance band per worker
    assert page.dom.count('<figure class="chart"') == 2 and page.dom.count("<svg ") == 2
    assert ">A1 Worker 1 (0.25 FTE)</text>" in page.dom and ">A2 Worker 2 (0.75 FTE)</text>" in page.dom
    assert '<g id="caseload-band-A1">' in page.dom and '<g id="caseload-band-A2">' in page.dom


# --------------------------------------------------------------------------- the run command, end to end


@pytest.mark.slow
def test_cli_run_speaks_patients_from_a_file_of_counts(aura, tmp_path, capsys):
    """``sectorize run --repair`` on a messy export with follow-up and out-of-region referrals: whole
    numbers, follow-up shown, the referrals left out by department once on stdout."""
    from messy_export import write_messy_export

    from sectorize.config.scenario import default_scenario, dump_scenario

    export = write_messy_export(tmp_path / "export.csv", aura, seed=5, communes=200)
    scenario = default_scenario().with_(**{
        "name": "two workers, counts", "groups.count": 1, "model.backend": "heuristic", "model.time_limit_s": 4,
        "demand": {"source": "file", "file": str(export.path),
                   "columns": {"referrals": "Nb signalements *", "home_care": "Patients HAD *",
                               "follow_up": "Suivis actifs *"}},
        "team.workers": [{"id": "TS01", "name": "Alice", "fte": 1.0}, {"id": "TS02", "name": "Bruno", "fte": 0.8}],
    })
    config = tmp_path / "scenario.toml"
    config.write_text(dump_scenario(scenario), encoding="utf-8")
    cli_main = importlib.import_module("sectorize.cli.main")
    code = cli_main.main(["run", "--config", str(config), "--out", str(tmp_path / "out"), "--repair", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "≈" not in out and "expected" not in out
    total = export.by_commune.sum()
    assert f"New referrals (demand column 'referrals'): {total['referrals']:,.0f}".replace(",", " ") in out
    assert f"Patients in follow-up (demand column 'follow_up'): {total['follow_up']:,.0f}".replace(",", " ") in out
    assert "patients in follow-up" in line_of(out, "sector ")
    outside = export.outside.groupby("department")["referrals"].sum()
    assert f"Left out of the plan: {outside.sum():,.0f} referrals/year".replace(",", " ") in out
    section = out[out.index("Demand left out of the plan, by department"):]
    for department, referrals in outside.items():
        assert re.search(rf"^{department} +outside the region +\d+ +{referrals:.0f} ", section, re.M), department
    assert "excluded from the demand (outside the region)" not in out       # not a second time
    run = tmp_path / "out" / (tmp_path / "out" / "LATEST").read_text(encoding="utf-8").strip()
    workers = pd.read_csv(run / "workers.csv", sep=";", decimal=",", encoding="utf-8-sig")
    assert workers["referrals_per_year"].sum() == pytest.approx(total["referrals"], abs=1)
    assert (workers["referrals_per_week"] - workers["referrals_per_year"] / 52.18).abs().max() < 0.01
    assert workers["follow_up_patients"].sum() == pytest.approx(total["follow_up"], abs=1)
    assert set(workers["demand_values"]) == {"counts"}
    kpis = json.loads((run / "kpi.json").read_text(encoding="utf-8"))
    assert kpis["excluded"]["total"]["referrals"] == pytest.approx(outside.sum())


def test_a_reopened_worker_table_keeps_the_figures_it_cannot_recompute():
    plan, _, _ = tiny_instance()
    written = worker_table(plan, compute_kpis(plan))
    reopened = plan.units.drop(columns=["centre_travel_min", "base_travel_min"])
    plan.units, plan.workers = reopened, written.copy()       # as plan_from_stored gives it back
    again = worker_table(plan, compute_kpis(plan))
    assert list(again.columns) == list(written.columns)
    pd.testing.assert_frame_equal(again, written)
