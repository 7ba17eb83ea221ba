"""A re-run that finds a plan whenever a plan from scratch exists (:func:`solvers.rerun.resolve_or_widen`).

Solver level on small grids (the steps, the property "a plan whenever
``solve_nested`` finds one"), on AURA-like instances (one department's real
communes and travel times, demand shifts and team changes: the re-run moves
fewer patients than a plan drawn anew), then the pipeline and the CLI.
"""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from solvers.check import check_partition
from solvers.nested import solve_nested
from solvers.problem import DenseTravelTimes, NoPlanError, caseload_band
from solvers.travel import SubsetTravelTimes
from solvers.rerun import WIDENING_STEPS, match_workers, resolve_nested, resolve_or_widen


def grid(rows: int, cols: int) -> tuple[nx.Graph, DenseTravelTimes]:
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(rows, cols), ordering="sorted")
    xy = np.array(sorted(nx.grid_2d_graph(rows, cols).nodes), dtype=float)
    return g, DenseTravelTimes(np.abs(xy[:, None] - xy[None]).sum(-1) * 10.0)


def nested_problems(graph, workload, fte, sol, tolerance, group_tolerance) -> list[str]:
    """Every violation of a nested plan, checked from scratch: sectors and groups contiguous and in balance."""
    targets = workload.sum() * fte / fte.sum()
    lower, upper = caseload_band(targets, tolerance)
    problems = check_partition(graph, sol.sector, workload, lower, upper)
    n_groups = int(sol.worker_group.max()) + 1
    gtargets = np.bincount(sol.worker_group, weights=targets, minlength=n_groups)
    glower, gupper = caseload_band(gtargets, group_tolerance)
    problems += check_partition(graph, sol.group, workload, glower, gupper)
    problems += [f"unit {u} in group {sol.group[u]} but its worker is in {sol.worker_group[sol.sector[u]]}"
                 for u in range(len(workload)) if sol.group[u] != sol.worker_group[sol.sector[u]]]
    return problems


def moved(previous: np.ndarray, sector: np.ndarray, weight: np.ndarray) -> float:
    return float(weight[(previous >= 0) & (sector != previous)].sum())


def test_a_cap_that_cannot_be_met_is_relaxed_and_the_excess_reported():
    g, t = grid(4, 4)
    before = np.array([0, 0, 1, 1] * 4)  # two vertical halves
    load = np.ones(16)
    load[[0, 4, 8]] = 3  # demand grew in worker 0's half: some units must move
    with pytest.raises(NoPlanError):
        resolve_nested(g, load, t, np.ones(2), np.array([0, 1]), before, tolerance=0.1, group_tolerance=0.1,
                       move_cost=100, max_moved=0, time_limit_s=2)
    out = resolve_or_widen(g, load, t, np.ones(2), np.array([0, 1]), before, tolerance=0.1, group_tolerance=0.1,
                           move_cost=100, max_moved=0, time_limit_s=2)
    assert out.step == "cap relaxed" and out.widened
    assert [a.step for a in out.attempts] == ["as asked", "cap relaxed"]
    assert [a.found for a in out.attempts] == [False, True]
    assert out.moved == pytest.approx(moved(before, out.solution.sector, load)) and out.moved > 0
    assert out.over_cap == pytest.approx(out.moved)
    assert nested_problems(g, load, np.ones(2), out.solution, 0.1, 0.1) == []
    assert any("re-run step 'as asked': no plan" in line for line in out.solution.log)


def test_nothing_to_widen_when_the_previous_plan_still_fits():
    g, t = grid(4, 4)
    before = np.array([0, 0, 1, 1] * 4)
    out = resolve_or_widen(g, np.ones(16), t, np.ones(2), np.array([0, 1]), before, tolerance=0.1,
                           group_tolerance=0.1, move_cost=100, max_moved=0, time_limit_s=2)
    assert out.step == "as asked" and not out.widened and out.over_cap == 0
    assert (out.solution.sector == before).all()


def test_match_workers_respects_fte_and_groups():
    previous = np.array([0, 0, 1, 1, 2, 2])
    fresh = np.array([1, 1, 0, 0, 2, 2])  # worker 0's and 1's sectors swapped
    relabel, inverse = match_workers(fresh, previous, np.ones(6), np.ones(3))
    assert relabel.tolist() == [1, 0, 2] and inverse[relabel].tolist() == [0, 1, 2]
    # different FTE: a sector drawn for a 0.5 FTE worker cannot go to a full-time one
    relabel, _ = match_workers(fresh, previous, np.ones(6), np.array([1.0, 0.5, 1.0]))
    assert relabel[1] == 1
    # different groups: no swap across groups
    relabel, _ = match_workers(fresh, previous, np.ones(6), np.ones(3), worker_group=np.array([0, 1, 1]))
    assert relabel[0] == 0


def _year_two(seed: int, tight: bool):
    """A 6x6 grid, a plan for year one, and year two's demand, FTE and move weights."""
    rng = np.random.default_rng(seed)
    g, t = grid(6, 6)
    tolerance, group_tolerance = (0.05, 0.02) if tight else (0.1, 0.05)
    w1 = rng.lognormal(0, 0.6, 36)
    fte = np.array([1.0, 1.0, 1.0, 0.5])
    year_one = solve_nested(g, w1, t, fte, 2, tolerance=tolerance, group_tolerance=group_tolerance,
                            time_limit_s=1, seed=seed)
    w2 = w1 * rng.lognormal(0, 1.0, 36)
    fte2 = fte.copy()
    fte2[rng.integers(4)] = rng.choice([0.5, 0.8, 1.0])
    patients = rng.poisson(2 * w2).astype(float)
    return g, t, year_one, w2, fte2, patients, tolerance, group_tolerance


@pytest.mark.parametrize("seed", range(12))
def test_property_the_rerun_finds_a_plan_whenever_a_fresh_plan_exists(seed):
    """Demand shocks (log-normal, sd 1) and one FTE change on a 6x6 grid, half of the seeds at
    ±5 % / ±2 % (where the previous plan often cannot be repaired): each time a plan exists from
    scratch, the re-run finds one, valid, and says which step found it."""
    try:
        g, t, year_one, w2, fte2, patients, tol, gtol = _year_two(seed, tight=seed % 2 == 0)
    except NoPlanError:
        pytest.skip("no plan for year one")
    options = dict(tolerance=tol, group_tolerance=gtol, time_limit_s=1, seed=0)
    try:
        fresh = solve_nested(g, w2, t, fte2, 2, **options)
    except NoPlanError:
        fresh = None
    try:
        out = resolve_or_widen(g, w2, t, fte2, year_one.worker_group, year_one.sector, move_weight=patients,
                               move_cost=50.0, move_unit_cost=5.0, **options)
    except NoPlanError:
        assert fresh is None, "the re-run found no plan though a plan from scratch exists"
        return
    assert out.step in WIDENING_STEPS
    assert nested_problems(g, w2, fte2, out.solution, tol, gtol) == []
    assert out.moved == pytest.approx(moved(year_one.sector, out.solution.sector, patients))
    if out.widened:
        assert not out.attempts[0].found


# ---------------------------------------------------------------- AURA-like instances


@pytest.fixture(scope="module")
def department(aura):
    """Isère's 512 real communes, adjacency and estimated road travel times, and its synthetic demand."""
    from geodata.demand import synthetic_demand
    from geodata.travel import estimate_travel_times

    units = aura.units[aura.units["dep"] == "38"]
    keys = list(units.index)
    index = {k: i for i, k in enumerate(keys)}
    graph = nx.relabel_nodes(aura.graph.subgraph(keys), index)
    demand = synthetic_demand(aura, seed=2026).table.loc[keys]
    travel = SubsetTravelTimes(estimate_travel_times(aura), aura.units.index.get_indexer(keys))
    workload = (demand["referrals"] + 0.5 * demand["home_care"]).to_numpy(dtype=float)
    return graph, travel, workload, units


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_property_aura_like_rerun_moves_fewer_patients_than_a_fresh_plan(department, seed):
    """Whenever a plan from scratch exists, the re-run finds one and moves no more patients in follow-up
    than that plan (its sectors matched to the workers so as to move the fewest)."""
    graph, travel, w1, units = department
    rng = np.random.default_rng(seed)
    fte = np.array([1.0, 1.0, 0.8, 0.8, 0.5])
    options = dict(tolerance=0.1, group_tolerance=0.05, time_limit_s=4, seed=0)
    year_one = solve_nested(graph, w1, travel, fte, 2, **options)
    # year two: each canton's demand shifts by up to ±30 %, one worker's FTE changes
    cantons = units["canton"].astype(str).to_numpy()
    factor = {c: rng.uniform(0.7, 1.3) for c in sorted(set(cantons))}
    w2 = w1 * np.array([factor[c] for c in cantons])
    fte2 = fte.copy()
    fte2[rng.integers(len(fte))] = rng.choice([0.5, 0.8, 1.0])
    patients = rng.poisson(0.45 * w2).astype(float)
    try:
        fresh = solve_nested(graph, w2, travel, fte2, 2, **options)
    except NoPlanError:
        pytest.skip("no plan from scratch either")
    out = resolve_or_widen(graph, w2, travel, fte2, year_one.worker_group, year_one.sector, move_weight=patients,
                           move_cost=60.0, move_unit_cost=30.0, **options)
    relabel, _ = match_workers(fresh.sector, year_one.sector, patients, fte2)
    assert nested_problems(graph, w2, fte2, out.solution, 0.1, 0.05) == []
    assert out.moved <= moved(year_one.sector, relabel[fresh.sector], patients)


# ---------------------------------------------------------------- pipeline and CLI


@pytest.mark.slow
def test_cli_rerun_relaxes_an_impossible_cap_then_a_team_only_rerun_needs_no_file(aura_run, tmp_path, capsys):
    """A cap of 0 % with demand up 50 % in Haute-Savoie: exit 0, the plan moves patients and says how
    many more than the cap wanted. Then, the demand file gone, a team-only re-run uses the counts
    stored with that plan."""
    from sectorize.cli import main

    folder, plan = aura_run
    lines = ["insee;referrals;home_care"]
    for key, row in plan.units.iterrows():
        f = 1.5 if row["dep"] == "74" else 1.0
        if row["referrals"] or row["home_care"]:
            lines.append(f"{key};{round(row['referrals'] * f, 2)};{round(row['home_care'] * f, 2)}")
    demand = tmp_path / "demande-2027.csv"
    demand.write_text("\n".join(lines), encoding="utf-8")
    out = tmp_path / "out"
    code = main(["rerun", "--previous", str(folder), "--demand", str(demand), "--out", str(out),
                 "--max-moved-pct", "0", "--time-limit", "10", "--no-frontier", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    run = out / (out / "LATEST").read_text().strip()
    summary = json.loads((run / "rerun.json").read_text(encoding="utf-8"))
    assert summary["widened"] is True and summary["step"] == "cap relaxed"
    assert [a["step"] for a in summary["attempts"]] == ["as asked", "cap relaxed"]
    assert summary["moved_patients"] > 0 and summary["over_cap"] == pytest.approx(summary["moved_patients"])
    assert "widened: no plan as asked; the plan comes from step 'cap relaxed'" in printed
    assert summary["moved_unit"] == "caseload units" and "caseload units (no follow-up column)" in printed

    demand.unlink()
    team = tmp_path / "team.toml"
    import tomllib

    scenario = tomllib.loads((run / "scenario.toml").read_text(encoding="utf-8"))
    workers = scenario["team"]["workers"]
    workers[0]["fte"] = 0.8
    body = "[team]\n" + "".join(
        f'[[team.workers]]\nid = "{w["id"]}"\nname = "{w["name"]}"\nfte = {w["fte"]}\n' for w in workers)
    team.write_text(body, encoding="utf-8")
    code = main(["rerun", "--previous", str(run), "--team", str(team), "--out", str(out), "--time-limit", "10",
                 "--no-frontier", "--quiet"])
    capsys.readouterr()
    assert code == 0
    second = out / (out / "LATEST").read_text().strip()
    assert second != run
    facts = json.loads((second / "run.json").read_text(encoding="utf-8"))
    assert any("counts stored with the previous plan" in note for note in facts["notes"])
    sectors = pd.read_csv(second / "sectors.csv", sep=";", dtype={"insee": str}, encoding="utf-8-sig", decimal=",")
    first = pd.read_csv(run / "sectors.csv", sep=";", dtype={"insee": str}, encoding="utf-8-sig", decimal=",")
    assert sectors["referrals"].sum() == pytest.approx(first["referrals"].sum(), rel=1e-6)


def test_the_group_step_keeps_sets_together_and_caps_each_group_territory():
    g, t = grid(4, 4)
    before = np.array([0, 0, 1, 1] * 4)  # two vertical halves, one worker per group
    together = [[1, 2]]  # (0, 1) and (0, 2): across the border of the halves
    sol = resolve_nested(g, np.ones(16), t, np.ones(2), np.array([0, 1]), before, tolerance=0.15,
                         group_tolerance=0.15, move_cost=10, time_limit_s=2, keep_together=together)
    assert sol.group[1] == sol.group[2]
    assert nested_problems(g, np.ones(16), np.ones(2), sol, 0.15, 0.15) == []
    # territory: at most 8 units per worker, so at most 8 per group; the set costs one unit's move
    capped = resolve_nested(g, np.ones(16), t, np.ones(2), np.array([0, 1]), before, tolerance=0.15,
                            group_tolerance=0.15, move_cost=10, time_limit_s=2, keep_together=together,
                            size=np.ones(16), max_size=np.array([8.0, 8.0]), size_unit="units")
    assert capped.group[1] == capped.group[2]
    assert np.bincount(capped.sector, minlength=2).max() <= 8


def test_locks_of_the_scenario_reach_run_and_are_kept(monkeypatch):
    """``[[locks]]``: validated against the team, mapped to solver numbers, and kept by the solver."""
    from sectorize.config.scenario import ScenarioError, default_scenario
    from sectorize.pipeline.inputs import load_inputs

    scenario = default_scenario()
    with pytest.raises(ValueError, match=r"locks\[0\]\.worker: 'TS99' is not a worker"):
        scenario.with_(locks=[{"insee": "63113", "worker": "TS99"}])
    locked = scenario.with_(locks=[{"insee": "63113", "worker": "TS03"}, {"insee": "69388", "worker": "TS11"}])
    inputs = load_inputs(locked)
    index = inputs.index
    assert inputs.locked() == {index["63113"]: 2, index["69388"]: 10}
    with pytest.raises(ScenarioError, match=r"locks\[0\]\.insee: '69123' is not a unit.*arrondissements"):
        load_inputs(scenario.with_(locks=[{"insee": "69123", "worker": "TS01"}])).locked()
    # the solver keeps them (4x4 grid: the two locked corners go to the workers named)
    g, t = grid(4, 4)
    sol = solve_nested(g, np.ones(16), t, np.ones(2), 2, tolerance=0.1, group_tolerance=0.1, time_limit_s=2,
                       locked={0: 1, 15: 0})
    assert sol.sector[0] == 1 and sol.sector[15] == 0
    assert nested_problems(g, np.ones(16), np.ones(2), sol, 0.1, 0.1) == []
