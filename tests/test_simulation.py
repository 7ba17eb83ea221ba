"""Weekly workload simulation: distribution against the Poisson law, seasonality, files and CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sectorize.cli import main
from sectorize.report.simulation import (
    SimulationError,
    compare_plans,
    input_from_plan,
    input_from_run_folder,
    plot_weekly,
    read_seasonality_csv,
    seasonality_factors,
    simulate,
    simulate_plans,
    write_simulation,
)

#: Tiny hand-made region: 4 communes, 2 workers; referrals per year and minutes.
TINY = pd.DataFrame({
    "insee": ["01001", "01002", "2A004", "69381"],
    "name": ["Alpha", "Béta", "Gamma", "Delta"],
    "dep": ["01", "01", "2A", "69"],
    "group": ["A", "A", "B", "B"],
    "sector": ["A1", "A1", "B1", "B1"],
    "worker_id": ["TS01", "TS01", "TS02", "TS02"],
    "worker_name": ["Anne", "Anne", "Bruno", "Bruno"],
    "referrals": [104.0, 52.0, 260.0, 52.0],   # TS01: 3 per week, TS02: 6 per week
    "travel_min": [10.0, 40.0, 5.0, 25.0],
})
WEEKLY_MEAN = {"TS01": 3.0, "TS02": 6.0}
WEEKLY_TRAVEL = {"TS01": (104 * 10 + 52 * 40) / 52, "TS02": (260 * 5 + 52 * 25) / 52}


def write_french_csv(table: pd.DataFrame, path) -> None:
    table.to_csv(path, sep=";", decimal=",", encoding="utf-8-sig", index=False)


@pytest.fixture()
def tiny_run(tmp_path):
    """A run folder with only ``sectors.csv`` (French conventions) for the tiny region."""
    folder = tmp_path / "run"
    folder.mkdir()
    write_french_csv(TINY, folder / "sectors.csv")
    return folder


@pytest.mark.parametrize("encoding", ["utf-8-sig", "latin-1"])
def test_tiny_run_folder_is_read_with_codes_as_text(tiny_run, encoding):
    TINY.to_csv(tiny_run / "sectors.csv", sep=";", decimal=",", encoding=encoding, index=False)
    inp = input_from_run_folder(tiny_run)
    assert list(inp.communes.index) == ["01001", "01002", "2A004", "69381"]
    assert inp.communes["rate"].tolist() == [104.0, 52.0, 260.0, 52.0]
    assert list(inp.workers["worker_id"]) == ["TS01", "TS02"]
    assert list(inp.workers["sector"]) == ["A1", "B1"]


def test_weekly_distribution_matches_the_summed_poisson_law(tiny_run):
    """A worker's weekly count is Poisson with the summed rate of their communes."""
    result = simulate(tiny_run, replications=2000, seed=7, threshold=8)
    assert result.counts.shape == (2000, 52, 2)
    table = result.worker_table().set_index("worker_id")
    n = 2000 * 52
    for worker, mu in WEEKLY_MEAN.items():
        weeks = result.counts[:, :, list(table.index).index(worker)].ravel()
        row = table.loc[worker]
        # 5 standard errors of the estimates over n simulated weeks
        assert row["weekly_mean"] == pytest.approx(mu, abs=5 * np.sqrt(mu / n))
        assert weeks.var(ddof=1) == pytest.approx(mu, abs=5 * mu * np.sqrt(2 / n) + 5 * np.sqrt(mu / n))
        p_above = stats.poisson.sf(8, mu)
        assert row["share_weeks_above"] == pytest.approx(p_above, abs=5 * np.sqrt(p_above * (1 - p_above) / n))
        assert row["weeks_above"] == pytest.approx(52 * p_above, abs=52 * 5 * np.sqrt(p_above * (1 - p_above) / n))
        assert row["weekly_p90"] == stats.poisson.ppf(0.9, mu)
        assert row["referrals_year"] == pytest.approx(52 * mu)
        # travel: compound Poisson, mean = sum of rate x minutes
        assert row["travel_week_mean"] == pytest.approx(WEEKLY_TRAVEL[worker], rel=0.01)
    # the busy worker really has busy weeks, the quiet one rarely
    assert table.loc["TS02", "weeks_above"] > 5 * table.loc["TS01", "weeks_above"]


def test_travel_is_one_trip_per_new_patient(tiny_run):
    """With a single commune per worker, travel = count x minutes exactly."""
    one = TINY.iloc[[0, 2]].copy()
    write_french_csv(one, tiny_run / "sectors.csv")
    result = simulate(tiny_run, replications=5, seed=3)
    np.testing.assert_allclose(result.travel[:, :, 0], result.counts[:, :, 0] * 10.0)
    np.testing.assert_allclose(result.travel[:, :, 1], result.counts[:, :, 1] * 5.0)


def test_same_seed_same_result_and_longer_runs_extend_shorter_ones(tiny_run):
    a = simulate(tiny_run, replications=120, seed=11, seasonality="french_hospital")
    b = simulate(tiny_run, replications=120, seed=11, seasonality="french_hospital")
    c = simulate(tiny_run, replications=120, seed=12, seasonality="french_hospital")
    longer = simulate(tiny_run, replications=130, seed=11, seasonality="french_hospital")
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.travel, b.travel)
    pd.testing.assert_frame_equal(a.worker_table(), b.worker_table())
    assert not np.array_equal(a.counts, c.counts)
    np.testing.assert_array_equal(longer.counts[:120], a.counts)


def test_seasonality_keeps_the_yearly_total(tiny_run):
    name, factors = seasonality_factors("french_hospital")
    assert name == "french_hospital" and factors.shape == (52,)
    assert factors.mean() == pytest.approx(1.0)
    assert factors[51] < factors[31] < factors[9]  # last week of December < August < March
    flat = simulate(tiny_run, replications=1000, seed=1, seasonality="flat")
    season = simulate(tiny_run, replications=1000, seed=1, seasonality="french_hospital")
    yearly = 104 + 52 + 260 + 52
    assert season.expected.sum() == pytest.approx(yearly)
    assert flat.expected.sum() == pytest.approx(yearly)
    totals = season.counts.sum(axis=(1, 2))  # per simulated year, Poisson(468)
    assert totals.mean() == pytest.approx(yearly, abs=5 * np.sqrt(yearly / 1000))
    # the shape moved weeks: last week of December is much quieter than an ordinary week
    weekly = season.counts.sum(axis=2).mean(axis=0)
    assert weekly[51] == pytest.approx(yearly / 52 * factors[51], rel=0.1)
    assert weekly[51] < 0.7 * weekly[9]


def test_seasonality_csv_french_format(tmp_path):
    path = tmp_path / "saison.csv"
    lines = ["semaine;facteur"] + [f"{w};{'0,5' if w == 52 else '1'}" for w in range(1, 53)]
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8-sig"))
    raw = read_seasonality_csv(path)
    assert raw[51] == 0.5 and raw[0] == 1.0
    name, factors = seasonality_factors(path)
    assert name == "saison.csv"
    assert factors.mean() == pytest.approx(1.0)
    assert factors[51] / factors[0] == pytest.approx(0.5)
    single = tmp_path / "one_per_line.csv"
    single.write_text("\n".join(["2"] * 26 + ["1"] * 26), encoding="latin-1")
    assert seasonality_factors(single)[1][0] == pytest.approx(4 / 3)


@pytest.mark.parametrize("content, message", [
    ("\n".join(["1"] * 51), "51 factors"),
    ("\n".join(["1"] * 30 + ["beaucoup"] + ["1"] * 21), "line 31"),
    ("\n".join(["1"] * 51 + ["-2"]), "line 52"),
    ("\n".join(f"{w};1" for w in [1, 3] + list(range(3, 53))), "week 3 where week 2"),
])
def test_bad_seasonality_file_names_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SimulationError, match=message):
        seasonality_factors(path)


def test_plans_are_compared_on_the_same_simulated_referrals(tiny_run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    moved = TINY.copy()
    moved.loc[moved["insee"] == "2A004", ["sector", "worker_id", "worker_name"]] = ["A1", "TS01", "Anne"]
    write_french_csv(moved, other / "sectors.csv")
    results = simulate_plans({"balanced": tiny_run, "unbalanced": other}, replications=300, seed=5)
    # common random numbers: the team total is the same every week
    np.testing.assert_array_equal(results["balanced"].counts.sum(axis=2), results["unbalanced"].counts.sum(axis=2))
    table = compare_plans({"balanced": tiny_run, "unbalanced": other}, replications=300, seed=5)
    assert list(table["plan"]) == ["balanced", "unbalanced"]
    row = table.set_index("plan")
    assert row.loc["unbalanced", "worst_weekly_p90"] > row.loc["balanced", "worst_weekly_p90"]
    assert row.loc["unbalanced", "weeks_above_total"] > row.loc["balanced", "weeks_above_total"]
    assert row.loc["balanced", "referrals_year"] == pytest.approx(468)
    assert "common random numbers" in results["balanced"].notes[0]


def test_outputs_are_aggregated_per_worker(tiny_run, tmp_path):
    result = simulate(tiny_run, replications=50, seed=2)
    folder = write_simulation(result, tmp_path / "sims")
    assert sorted(p.name for p in folder.iterdir()) == ["summary.json", "weekly.png", "weekly_counts.csv", "workers.csv"]
    assert (tmp_path / "sims" / "LATEST").read_text().strip() == folder.name
    weekly = pd.read_csv(folder / "weekly_counts.csv", sep=";", dtype=str, encoding="utf-8-sig")
    assert list(weekly["worker_id"]) == ["TS01", "TS02"]
    assert [c for c in weekly.columns if re.fullmatch(r"w\d\d", c)] == [f"w{w:02d}" for w in range(1, 53)]
    np.testing.assert_array_equal(weekly.filter(regex=r"^w\d\d$").astype(int).to_numpy(), result.counts[0].T)
    workers = pd.read_csv(folder / "workers.csv", sep=";", decimal=",", encoding="utf-8-sig")
    assert workers["weekly_mean"].tolist() == pytest.approx(result.worker_table()["weekly_mean"].round(3).tolist())
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["replications"] == 50 and len(summary["workers"]) == 2
    assert any("one trip per new patient" in a for a in summary["assumptions"])
    for name in ("summary.json", "weekly_counts.csv", "workers.csv"):  # no commune appears in any output
        text = (folder / name).read_text(encoding="utf-8-sig")
        assert not re.search(r"01001|01002|2A004|69381|Alpha|Gamma", text), name
    assert (folder / "weekly.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_returns_a_figure_with_one_box_per_worker(tiny_run):
    fig = plot_weekly(simulate(tiny_run, replications=20, seed=0))
    top, bottom = fig.axes
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["A1 Anne", "B1 Bruno"]
    assert top.get_ylabel() == "new patients / week"


@pytest.mark.parametrize("column, value, message", [
    ("referrals", "beaucoup", r"line 4, column 'referrals'"),
    ("travel_min", "-3", "travel_min"),
    ("worker_id", "", "no worker_id"),
    ("insee", "1001", "line 2: insee '1001'"),
])
def test_bad_sector_table_exits_2(tiny_run, capsys, column, value, message):
    bad = TINY.astype(str)
    bad.loc[0 if column == "insee" else 2, column] = value
    write_french_csv(bad, tiny_run / "sectors.csv")
    assert main(["simulate", "--run", str(tiny_run), "--out", str(tiny_run.parent / "out")]) == 2
    err = capsys.readouterr().err
    assert "sectors.csv" in err and re.search(message, err), err
    assert "Traceback" not in err
    assert not (tiny_run.parent / "out").exists()


@pytest.mark.parametrize("options, message", [
    (["--seasonality", "hiver"], "neither a preset"),
    (["--replications", "0"], "replications"),
    (["--threshold", "-1"], "threshold"),
    (["--column", "patients"], "missing column"),
])
def test_bad_options_exit_2(tiny_run, capsys, options, message):
    assert main(["simulate", "--run", str(tiny_run), *options]) == 2
    assert message in capsys.readouterr().err


def test_missing_run_folder_exits_not_found(tmp_path, capsys):
    assert main(["simulate", "--run", str(tmp_path / "nowhere")]) == 4
    assert "no sectors.csv" in capsys.readouterr().err


def test_plan_object_and_run_folder_give_the_same_input(aura_run):
    folder, plan = aura_run
    from_plan = input_from_plan(plan)
    from_folder = input_from_run_folder(folder)
    assert len(from_plan.communes) == 4033
    pd.testing.assert_index_equal(from_plan.communes.index.sort_values(), from_folder.communes.index)
    joined = from_plan.communes.merge(from_folder.communes, left_index=True, right_index=True, suffixes=("", "_csv"))
    assert (joined["worker_id"] == joined["worker_id_csv"]).all()
    np.testing.assert_allclose(joined["rate"], joined["rate_csv"], atol=5e-4)  # 3 decimals in the CSV
    np.testing.assert_allclose(joined["travel_min"], joined["travel_min_csv"], atol=0.05)
    assert from_folder.workers["fte"].sum() == pytest.approx(plan.workers["fte"].sum())


def test_cli_on_the_aura_run(aura_run, tmp_path, capsys):
    folder, plan = aura_run
    out = tmp_path / "sims"
    code = main(["simulate", "--run", str(folder), "--replications", "200", "--seed", "3",
                 "--seasonality", "french_hospital", "--threshold", "6", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    written = out / (out / "LATEST").read_text().strip()
    assert f"written: {written}" in printed.out
    workers = pd.read_csv(written / "workers.csv", sep=";", decimal=",", dtype={"worker_id": str}, encoding="utf-8-sig")
    assert sorted(workers["worker_id"]) == sorted(plan.workers["worker_id"])
    # yearly expectation per worker = the plan's referrals per sector
    expected = plan.units.groupby("worker_id")["referrals"].sum()
    got = workers.set_index("worker_id")["referrals_year"]
    np.testing.assert_allclose(got.loc[expected.index], expected, atol=0.05)
    summary = json.loads((written / "summary.json").read_text(encoding="utf-8"))
    assert summary["seasonality"]["name"] == "french_hospital" and summary["seed"] == 3
    assert summary["team"]["referrals_year"] == pytest.approx(plan.units["referrals"].sum(), abs=1)
    weekly = pd.read_csv(written / "weekly_counts.csv", sep=";", dtype=str, encoding="utf-8-sig")
    assert len(weekly) == len(plan.workers) and weekly.shape[1] == 3 + 52
