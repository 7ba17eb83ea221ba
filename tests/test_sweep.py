"""Scenario sweeps: the sweep file, the changes, local processes and a Dask LocalCluster."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sectorize.cli import main
from sectorize.config.scenario import ScenarioError, default_scenario
from sectorize.config.sweep import SweepError, apply_changes, base_scenario, load_sweep, sweep_from_dict
from sectorize.pipeline.sweep import expand, run_sweep

FAST = {"model.backend": "heuristic", "model.time_limit_s": 2}


def _write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the sweep file


@pytest.mark.parametrize("data, expected", [
    ({"variations": [{"name": "a", "chnages": {}}]}, "unknown key 'variations[0].chnages' (did you mean 'changes'?)"),
    ({"variations": [{"name": "a"}], "seed": [1]}, "unknown key 'seed' (did you mean 'seeds'?)"),
    ({}, "variations: missing (required)"),
    ({"variations": []}, "variations: must have at least 1 item"),
    ({"variations": [{"name": "a"}, {"name": "a"}]}, "variations: names must be unique, ['a']"),
    ({"variations": [{"name": "a"}], "seeds": [1, 1]}, "seeds: each seed once"),
    ({"variations": [{"name": "a"}], "seeds": []}, "seeds: must have at least 1 item"),
    ({"variations": [{"name": "a"}], "seeds": ["x"]}, "seeds[0]: must be a valid integer"),
    ({"variations": [{"name": ""}]}, "variations[0].name: must have at least 1 character"),
    ({"variations": [{"name": "a", "changes": {"model..tolerance": 1}}]}, "variations[0].changes: keys ['model..tolerance']"),
    ({"variations": [{"name": "a"}], "base": 3}, "base: give the path of a scenario TOML file"),
])
def test_sweep_validation_names_the_key(data, expected):
    with pytest.raises(SweepError) as err:
        sweep_from_dict(data, source="my-sweep.toml")
    assert str(err.value).startswith("my-sweep.toml: ")
    assert expected in str(err.value)


def test_load_sweep_file_errors(tmp_path):
    with pytest.raises(SweepError, match="sweep file not found"):
        load_sweep(tmp_path / "absent.toml")
    bad = _write(tmp_path, 'name = "x"\n[[variations]\n')
    with pytest.raises(SweepError, match=r"sweep.toml: TOML syntax error"):
        load_sweep(bad)
    missing_base = _write(tmp_path, 'base = "nowhere.toml"\n[[variations]]\nname = "a"\n', "s2.toml")
    with pytest.raises(SweepError, match=r"s2.toml: base: .*nowhere.toml: scenario file not found"):
        base_scenario(load_sweep(missing_base))


def test_load_sweep_with_base_file_and_inline_changes(tmp_path):
    scenario = tmp_path / "scenario.toml"
    from sectorize.config.scenario import dump_scenario

    scenario.write_text(dump_scenario(default_scenario()).replace('name = "AURA default"', 'name = "my team"'))
    path = _write(tmp_path, """
name = "balance"
base = "scenario.toml"
seeds = [3, 4]

[[variations]]
name = "reference"

[[variations]]
name = "tolerance 5 %"
changes = { "model.tolerance" = 0.05 }

[[variations]]
name = "three groups"
[variations.changes]
"groups.count" = 3
model = { time_limit_s = 5 }
""")
    sweep = load_sweep(path)
    assert (sweep.size, sweep.seeds) == (6, [3, 4])
    tasks = expand(sweep)
    assert [(t.variation, t.seed) for t in tasks] == [
        ("reference", 3), ("reference", 4), ("tolerance 5 %", 3), ("tolerance 5 %", 4),
        ("three groups", 3), ("three groups", 4)]
    assert all(t.scenario is not None and t.error == "" for t in tasks)
    assert [t.scenario.model.seed for t in tasks] == [3, 4] * 3
    assert tasks[0].scenario.name == "my team / reference"
    assert tasks[2].scenario.model.tolerance == 0.05
    three = tasks[4].scenario
    assert three.groups.names == ["A", "B", "C"] and three.model.time_limit_s == 5
    assert three.model.tolerance == 0.10  # merged table keeps the other model keys


# --------------------------------------------------------------------------- changes


def test_apply_changes_sets_merges_and_rederives():
    base = default_scenario()
    s = apply_changes(base, {"model.tolerance": 0.05, "groups.count": 3})
    assert (s.model.tolerance, s.model.group_tolerance) == (0.05, 0.025)
    assert s.groups.names == ["A", "B", "C"]
    # explicit values win over the derived ones
    s = apply_changes(base, {"model.tolerance": 0.05, "model.group_tolerance": 0.04, "groups.count": 2,
                             "groups.names": ["Nord", "Sud"]})
    assert (s.model.group_tolerance, s.groups.names) == (0.04, ["Nord", "Sud"])
    # a table merges; a list replaces
    s = apply_changes(base, {"model": {"seed": 7}, "team.workers": [{"id": "X", "name": "Solo", "fte": 0.8}],
                             "groups.count": 1})
    assert s.model.seed == 7 and s.model.tolerance == base.model.tolerance
    assert [w.id for w in s.team.workers] == ["X"] and s.team.default_base == base.team.default_base
    assert len(base.team.workers) == 11 and base.groups.count == 2  # the base is untouched


def test_relative_paths_in_changes_resolve_against_the_sweep_file(tmp_path):
    s = apply_changes(default_scenario(), {"demand.source": "file", "demand.file": "counts.csv",
                                           "output": {"dir": "out"}}, source=tmp_path / "sweep.toml")
    assert s.demand.file == (tmp_path / "counts.csv").resolve()
    assert s.output.dir == (tmp_path / "out").resolve()


def test_apply_changes_errors_name_the_key():
    base = default_scenario()
    with pytest.raises(ScenarioError, match=r"unknown key 'model.tolerence' \(did you mean 'tolerance'\?\)"):
        apply_changes(base, {"model.tolerence": 0.05})
    with pytest.raises(ScenarioError, match=r"model.tolerance: must be > 0 and < 1 \(got 1.5\)"):
        apply_changes(base, {"model.tolerance": 1.5})
    with pytest.raises(ScenarioError, match=r"unknown key 'model.tolerance.x': 'model.tolerance' is not a section"):
        apply_changes(base, {"model.tolerance.x": 1})


def test_invalid_variations_are_rows_not_crashes():
    sweep = sweep_from_dict({"seeds": [0, 1], "variations": [
        {"name": "typo", "changes": {"model.tolerence": 0.05}},
        {"name": "too many groups", "changes": {"groups.count": 12}},
    ]})
    lines = []
    result = run_sweep(sweep, workers=1, progress=lines.append)
    t = result.table
    assert list(t["variation"]) == ["typo", "typo", "too many groups", "too many groups"]
    assert list(t["seed"]) == [0, 1, 0, 1]
    assert set(t["status"]) == {"invalid"} and not t["valid"].any()
    assert "variation 'typo': invalid scenario: unknown key 'model.tolerence'" in t["error"].iloc[0]
    assert "groups.count: 12 groups need at least 12 workers" in t["error"].iloc[2]
    assert len(lines) == 4 and lines[0].startswith("[1/4] ")
    assert len(result.failed) == 4


def test_cli_sweep_input_errors(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "absent.toml")]) == 2
    assert "sweep file not found" in capsys.readouterr().err
    bad = _write(tmp_path, '[[variations]]\nname = "a"\nchanges = { "model.tolerence" = 0.1 }\n')
    out = tmp_path / "out"
    assert main(["sweep", str(bad), "--out", str(out), "--quiet"]) == 3  # no solve gave a plan
    captured = capsys.readouterr()
    assert "0/1 valid plans" in captured.out
    assert f"failed: a seed 0: invalid: {bad}: variation 'a': invalid scenario: unknown key 'model.tolerence'" \
        in captured.err
    (csv,) = out.glob("sweep-*.csv")
    table = pd.read_csv(csv, sep=";", encoding="utf-8-sig")
    assert table.loc[0, "status"] == "invalid" and "model.tolerence" in table.loc[0, "error"]
    (js,) = out.glob("sweep-*.json")
    assert json.loads(js.read_text())["rows"][0]["variation"] == "a"
    assert main(["sweep", str(bad), "--workers", "0"]) == 2


def test_cli_sweep_unreachable_scheduler(tmp_path, capsys):
    path = _write(tmp_path, '[[variations]]\nname = "a"\n')
    assert main(["sweep", str(path), "--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", "1"]) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err


# --------------------------------------------------------------------------- real AURA sweeps


def _eight_scenarios(fast: dict = FAST) -> dict:
    """4 variations x 2 seeds on AURA, one variation failing in the worker (unknown base commune).

    (Tolerances set by a variation are checked without a cluster: :func:`test_apply_changes_sets_merges_and_rederives`.)
    """
    FAST = fast  # noqa: N806 (the variations below read it)
    workers = [w.model_dump(exclude_none=True) for w in default_scenario().team.workers]
    newcomer = {"id": "TS12", "name": "Travailleur social 12", "fte": 0.8}
    return {"name": "test sweep", "seeds": [0, 1], "variations": [
        {"name": "reference", "changes": dict(FAST)},
        {"name": "three groups", "changes": {**FAST, "groups.count": 3}},
        {"name": "new 0.8 FTE worker", "changes": {**FAST, "team": {"workers": workers + [newcomer]}}},
        {"name": "unknown base", "changes": {**FAST, "team.default_base": "99999"}},
    ]}


@pytest.mark.slow
def test_sweep_on_dask_local_cluster_keeps_results_of_other_tasks():
    from distributed import Client, LocalCluster

    # work budgets (the sweep's default): the same plans however loaded the machine is
    sweep = sweep_from_dict(_eight_scenarios(FAST))
    lines = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        result = run_sweep(sweep, client=client, progress=lines.append)
    t = result.table
    assert result.executor == "dask" and len(t) == 8 and len(lines) == 8
    assert list(zip(t["variation"], t["seed"])) == [(v.name, s) for v in sweep.variations for s in (0, 1)]
    failed = t[t["variation"] == "unknown base"]
    assert list(failed["status"]) == ["error", "error"] and list(failed["seed"]) == [0, 1]
    assert failed["error"].str.contains("base '99999' is not a unit of the region").all()
    kept = t[t["variation"] != "unknown base"]
    assert (kept["status"] == "ok").all(), kept[["variation", "seed", "status", "error"]]
    assert kept["objective"].gt(0).all() and kept["mean_travel_min"].gt(0).all()
    assert t.loc[t["variation"] == "reference", "max_deviation_pct"].le(10.0 + 1e-6).all()
    assert list(t.loc[t["variation"] == "three groups", "groups"]) == [3, 3]
    assert list(t.loc[t["variation"] == "new 0.8 FTE worker", "sectors"]) == [12, 12]
    # each result carries its KPIs and the sector table of every commune
    outcome = result.outcome("new 0.8 FTE worker", 1)
    assert outcome.sectors["worker_id"].nunique() == 12 and "TS12" in set(outcome.sectors["worker_id"])
    assert outcome.sectors["insee"].is_unique and len(outcome.sectors) > 4000
    assert outcome.kpis["valid"] and len(outcome.kpis["sectors"]) == 12
    summary = result.summary()
    assert list(summary["ok"]) == [2, 2, 2, 0]


@pytest.mark.slow
def test_sweep_in_local_processes_stores_valid_plans(tmp_path):
    from sectorize.store.registry import Registry

    sweep = sweep_from_dict({"name": "pool", "seeds": [0, 1], "variations": [
        {"name": "reference", "changes": dict(FAST)},
        {"name": "too tight", "changes": {**FAST, "model.tolerance": 0.002}},
    ]})
    result = run_sweep(sweep, workers=2, registry=tmp_path / "plans")
    t = result.table
    assert result.executor == "processes"
    # the heuristic finds no plan within ±0.2 % in 2 s: nothing is proven, so not "infeasible"
    assert list(t["status"]) == ["ok", "ok", "no_plan_found", "no_plan_found"]
    assert t["error"].iloc[2].startswith("no plan found in the time given: no plan within tolerance")
    ids = list(t["plan_id"])
    assert ids[0].startswith("P") and ids[1].startswith("P") and ids[2:] == ["", ""]
    registry = Registry(tmp_path / "plans", create=False)
    assert set(registry.list()["id"]) == set(ids[:2])
    stored = registry.get(ids[1])
    assert "variation 'reference', seed 1" in stored.note
    mine = result.outcome("reference", 1).sectors.set_index("insee")
    theirs = stored.sectors.set_index("insee")
    assert mine.index.equals(theirs.index)
    assert (mine["sector"] == theirs["sector"]).all() and (mine["worker_id"] == theirs["worker_id"]).all()


def test_no_plan_found_in_time_is_not_called_infeasible(monkeypatch):
    """A solve that ran out of time is ``no_plan_found``; ``infeasible`` needs a proof."""
    import sectorize.pipeline.run as run_module
    from sectorize.pipeline.sweep import STATUSES, solve_task
    from solvers import InfeasibleError, NoPlanFoundError

    task = expand(sweep_from_dict({"variations": [{"name": "base", "changes": FAST}]}))[0]
    for error, status in ((NoPlanFoundError("no plan within tolerance found in 2 s"), "no_plan_found"),
                          (InfeasibleError("the exact MIP proves that no plan ..."), "infeasible")):
        def fail(scenario, progress=None, error=error):
            raise error

        monkeypatch.setattr(run_module, "run", fail)
        outcome = solve_task(task)
        assert outcome.status == status and status in STATUSES
        assert str(error) in outcome.error
