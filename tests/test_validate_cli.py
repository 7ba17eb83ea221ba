"""``sectorize validate`` opens the data (issue 18), ``--repair`` on every command that reads a
demand file, and ``simulate`` finding the referrals column by role."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from messy_export import write_messy_export

from sectorize.cli import main
from sectorize.cli.exit_codes import ExitCode

TEAM = """
[team]
default_base = "69123"
[[team.workers]]
id = "TS01"
name = "A"
fte = 1.0
[[team.workers]]
id = "TS02"
name = "B"
fte = 0.8
"""


def _scenario(tmp_path: Path, demand_file: Path, *, roles: bool = True, weights: str | None = None,
              extra: str = "") -> Path:
    weights = weights or "{ referrals = 1.0, home_care = 0.5 }"
    columns = ('[demand.columns]\nreferrals = "Nb signalements *"\nhome_care = "Patients HAD *"\n'
               'follow_up = "Suivis actifs *"\n') if roles else ""
    text = (f'[demand]\nsource = "file"\nfile = "{demand_file.name}"\nweights = {weights}\n{columns}'
            f"{extra}{TEAM}")
    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def messy(aura, tmp_path):
    return write_messy_export(tmp_path / "signalements.csv", aura, year=2025, seed=2)


def test_validate_reports_the_data_of_a_repaired_export(messy, tmp_path, capsys):
    config = _scenario(tmp_path, messy.path)
    assert main(["validate", "--config", str(config), "--repair"]) == ExitCode.OK
    out, err = capsys.readouterr()
    parsed = tomllib.loads(out)  # the report is TOML comments: the output is still a scenario
    assert parsed["demand"]["repair"] is True
    total = messy.by_commune["referrals"].sum()
    assert f"#   referrals (file column 'Nb signalements 2025'): total {total:,.2f}" in out
    assert "#   by department:" in out
    assert "# repairs (demand.repair = true): " in out and "leading zero restored" in out
    assert "# excluded from the demand (outside the region): 3 code(s)" in out
    assert "71: referrals=" in out
    caseload = total + 0.5 * messy.by_commune["home_care"].sum()
    assert f"# caseload: total {caseload:,.2f}" in out
    assert "valid (scenario and data)" in err


def test_validate_without_repair_gives_the_one_pass_error(messy, tmp_path, capsys):
    config = _scenario(tmp_path, messy.path)
    assert main(["validate", "--config", str(config)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert f"error: {messy.path}: " in err and "problems in the demand file" in err
    for kind in ("lost leading zero", "total row", "old code", "Lyon given twice", "outside the region"):
        assert kind in err
    assert "re-run with --repair (demand.repair = true)" in err


@pytest.mark.parametrize("case, content, expected", [
    ("missing", None, "does not exist"),
    ("empty", b"", "the file is empty"),
    ("garbage", bytes(range(256)) * 4, "signalements.csv"),
    ("header only", "Code INSEE;Nb signalements 2025\n".encode(), "no rows"),
])
def test_validate_exits_2_on_a_bad_demand_file(tmp_path, capsys, case, content, expected):
    demand = tmp_path / "signalements.csv"
    if content is not None:
        demand.write_bytes(content)
    config = _scenario(tmp_path, demand)
    assert main(["validate", "--config", str(config)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err


def test_validate_exits_2_when_weights_name_a_missing_column(tmp_path, capsys):
    demand = tmp_path / "signalements.csv"
    demand.write_text("insee;referrals\n01053;4\n", encoding="utf-8")
    config = _scenario(tmp_path, demand, roles=False)
    assert main(["validate", "--config", str(config)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "demand.weights.home_care: column(s) ['home_care'] not in the demand" in err


def test_validate_checks_the_follow_up_column_and_the_travel_matrix(tmp_path, capsys):
    demand = tmp_path / "signalements.csv"
    demand.write_text("insee;referrals;home_care\n01053;4;1\n", encoding="utf-8")
    extra = f'[travel]\nmatrix = "{tmp_path / "nowhere.csv"}"\n[rerun]\nfollow_up = "suivis"\n'
    config = _scenario(tmp_path, demand, roles=False, extra=extra)
    assert main(["validate", "--config", str(config)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "rerun.follow_up: column 'suivis' is not in the demand" in err
    assert "nowhere.csv: travel matrix file not found" in err
    assert "2 input(s) cannot be used" in err


def test_validate_of_the_packaged_default(capsys):
    assert main(["validate"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "# demand: synthetic" in out and "# caseload: total 1,650.00" in out


def test_repair_flag_on_run_and_rerun():
    from sectorize.cli.main import _parser

    parser = _parser()
    assert parser.parse_args(["run", "--repair"]).repair
    assert not parser.parse_args(["validate"]).repair
    assert parser.parse_args(["rerun", "--previous", "x", "--repair"]).repair


def _rerun_args(**kw) -> argparse.Namespace:
    base = dict(config=None, demand=None, team=None, max_moved_pct=None, max_moved_patients=None,
                max_moved_communes=None, move_penalty=None, transition=None, out=None, time_limit=None,
                repair=False)
    return argparse.Namespace(**{**base, **kw})


def test_rerun_scenario_gets_repair_and_a_team_only_rerun_needs_the_old_file(tmp_path):
    from sectorize.cli.rerun import build_scenario
    from sectorize.config.scenario import ScenarioError, dump_scenario, load_scenario

    demand = tmp_path / "signalements.csv"
    demand.write_text("insee;referrals;home_care\n01053;4;1\n", encoding="utf-8")
    scenario = load_scenario(_scenario(tmp_path, demand, roles=False))
    previous = SimpleNamespace(scenario_toml=dump_scenario(scenario), source="run")
    assert build_scenario(_rerun_args(repair=True), previous).demand.repair is True
    assert build_scenario(_rerun_args(), previous).demand.repair is False
    demand.unlink()
    with pytest.raises(ScenarioError, match="no longer exists; give this year's .* with --demand FILE"):
        build_scenario(_rerun_args(), previous)


def test_simulate_finds_the_referrals_column_by_role(tmp_path):
    from sectorize.cli.simulate import referrals_column
    from sectorize.report.simulation import SimulationError

    run = tmp_path / "run"
    run.mkdir()
    sectors = run / "sectors.csv"
    sectors.write_text("\ufeffinsee;name;referrals;home_care;workload;worker_id;travel_min\n", encoding="utf-8")
    assert referrals_column(run, None) == "referrals"
    sectors.write_text("insee;Nb signalements 2025;Patients HAD 2025;worker_id;travel_min\n", encoding="utf-8")
    with pytest.raises(SimulationError, match=r"demand columns of this run are \['Nb signalements 2025'"):
        referrals_column(run, None)
    assert referrals_column(run, "nb signalements *") == "Nb signalements 2025"
    assert referrals_column(sectors, "#2") == "Nb signalements 2025"
    with pytest.raises(SimulationError, match="matches 2 columns"):
        referrals_column(run, "* 2025")
