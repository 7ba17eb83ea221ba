"""The annual re-run: solving from a previous plan with a price per patient moved.

Solver level on small grids (exact expectations, caps, new sectors, property
tests), then the whole re-run on the real AURA plan of the ``aura_run``
fixture: unchanged inputs, a demand shift, team changes, the CLI.
"""

from __future__ import annotations

import itertools
import json
import re

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from browser import find_chromium, open_offline
from sectorize.cli import main
from sectorize.report.maps import external_resources
from sectorize.pipeline.rerun import load_previous, rerun
from sectorize.config.scenario import ScenarioError, scenario_from_dict
from sectorize.report.transition import drained_month, simulate_transition
from solvers.check import check_plan
from solvers.engine import solve
from solvers.allocation.mip import allocate
from solvers.problem import DenseTravelTimes, InfeasibleError, NoPlanError, NoPlanFoundError, Problem
from solvers.rerun import resolve_nested


def grid(rows: int, cols: int) -> tuple[nx.Graph, DenseTravelTimes]:
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(rows, cols), ordering="sorted")
    xy = np.array(sorted(nx.grid_2d_graph(rows, cols).nodes), dtype=float)
    return g, DenseTravelTimes(np.abs(xy[:, None] - xy[None]).sum(-1) * 10.0)


def fresh_plan(g, t, w, k, tol=0.1, seed=0) -> np.ndarray:
    p = Problem(g, w, np.full(k, w.sum() / k), tol, t)
    return solve(p, backend="heuristic", time_limit_s=1.0, seed=seed).assignment


def moved(previous, assignment, weight) -> float:
    return float(weight[previous != assignment].sum())


# ---------------------------------------------------------------- solver level


def test_unchanged_problem_keeps_the_previous_plan_exactly():
    g, t = grid(8, 8)
    w = np.random.default_rng(1).integers(0, 5, 64).astype(float)
    before = fresh_plan(g, t, w, 4)
    p = Problem(g, w, np.full(4, w.sum() / 4), 0.1, t, previous=before, move_cost=50.0)
    for backend in ("heuristic", "mip"):
        sol = solve(p, backend=backend, time_limit_s=2.0, start=before)
        assert (sol.assignment == before).all(), backend
    capped = Problem(g, w, np.full(4, w.sum() / 4), 0.1, t, previous=before, max_moved=0.0)
    assert (solve(capped, backend="auto", time_limit_s=2.0, start=before).assignment == before).all()


def test_demand_shift_moves_less_than_a_fresh_solve_and_respects_the_cap():
    g, t = grid(10, 10)
    rng = np.random.default_rng(3)
    w0 = rng.integers(1, 6, 100).astype(float)
    before = fresh_plan(g, t, w0, 5)
    w1 = w0.copy()
    w1[:30] *= 1.8  # demand grows in the top rows
    targets = np.full(5, w1.sum() / 5)
    plain = Problem(g, w1, targets, 0.1, t)
    fresh = solve(plain, backend="heuristic", time_limit_s=2.0).assignment
    # relabel the fresh plan's sectors as favourably as possible for the comparison
    best_fresh = min(moved(before, np.array(perm)[fresh], w1) for perm in itertools.permutations(range(5)))
    penalised = Problem(g, w1, targets, 0.1, t, previous=before, move_weight=w1, move_cost=100.0)
    sol = solve(penalised, backend="auto", time_limit_s=3.0, start=before)
    assert not check_plan(penalised, sol.assignment)
    assert 0 < moved(before, sol.assignment, w1) < best_fresh
    cap = moved(before, sol.assignment, w1) * 1.5
    for backend in ("heuristic", "auto"):
        capped = Problem(g, w1, targets, 0.1, t, previous=before, move_weight=w1, move_cost=1.0, max_moved=cap)
        s2 = solve(capped, backend=backend, time_limit_s=3.0, start=before)
        assert moved(before, s2.assignment, w1) <= cap + 1e-9
        assert not check_plan(capped, s2.assignment)


def test_tight_cap_is_reported_not_ignored():
    g, t = grid(6, 6)
    w = np.ones(36)
    before = np.array([0] * 18 + [1] * 18)
    w2 = w.copy()
    w2[:6] = 4.0  # sector 0 now far too heavy
    p = Problem(g, w2, np.full(2, w2.sum() / 2), 0.05, t, previous=before, max_moved=0.0)
    with pytest.raises(NoPlanFoundError, match="cap") as failure:  # not found in the time: nothing proven
        solve(p, backend="auto", time_limit_s=2.0, start=before)
    assert not isinstance(failure.value, InfeasibleError)


def test_allocation_mip_respects_the_cap():
    g, t = grid(6, 6)
    w = np.ones(36)
    before = np.array([0] * 18 + [1] * 18)
    centres = np.array([0, 35])
    free = allocate(Problem(g, w, np.array([18.0, 18.0]), 0.2, t), centres)
    capped = allocate(Problem(g, w, np.array([18.0, 18.0]), 0.2, t, previous=before, max_moved=2.0), centres)
    assert moved(before, free.assignment, w) > 2
    assert moved(before, capped.assignment, w) <= 2


def test_a_new_sector_is_seeded_and_grown():
    g, t = grid(8, 8)
    w = np.ones(64)
    before = fresh_plan(g, t, w, 3)
    p = Problem(g, w, np.full(4, 16.0), 0.1, t, previous=before, move_cost=10.0)
    sol = solve(p, backend="auto", time_limit_s=3.0, start=before)
    assert not check_plan(p, sol.assignment)
    assert np.bincount(sol.assignment, minlength=4).min() >= 14


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(4, 7), cols=st.integers(4, 7), k=st.integers(2, 4), seed=st.integers(0, 10_000),
       cap_share=st.floats(0.0, 0.5))
def test_property_balance_contiguity_and_cap_hold_or_infeasible(rows, cols, k, seed, cap_share):
    g, t = grid(rows, cols)
    rng = np.random.default_rng(seed)
    w0 = rng.integers(1, 4, rows * cols).astype(float)
    before = fresh_plan(g, t, w0, k, tol=0.2, seed=seed)
    w1 = w0 * rng.uniform(0.6, 1.6, rows * cols)
    cap = cap_share * w1.sum()
    p = Problem(g, w1, np.full(k, w1.sum() / k), 0.2, t, previous=before, move_weight=w1,
                move_cost=5.0, max_moved=cap)
    try:
        sol = solve(p, backend="heuristic", time_limit_s=0.5, start=before)
    except NoPlanError as err:
        assert str(err)
        return
    assert check_plan(p, sol.assignment) == []
    assert p.moved(sol.assignment) <= cap + 1e-9


def test_resolve_nested_keeps_groups_and_counts_a_group_change_once():
    g, t = grid(6, 8)
    w = np.ones(48)
    before = np.repeat([0, 1, 2, 3], 12)  # row bands: workers 0,1 in group 0; 2,3 in group 1
    w2 = w.copy()
    w2[:12] = 1.5  # worker 0's band grows
    sol = resolve_nested(g, w2, t, np.ones(4), np.array([0, 0, 1, 1]), before, tolerance=0.15,
                         group_tolerance=0.15, move_cost=10.0, time_limit_s=4.0)
    assert sol.strategy == "re-run from previous plan"
    for s in range(4):
        assert nx.is_connected(g.subgraph(np.flatnonzero(sol.sector == s).tolist()))
    loads = np.bincount(sol.sector, weights=w2, minlength=4)
    assert np.all(np.abs(loads / (w2.sum() / 4) - 1) <= 0.15 + 1e-9)
    assert (sol.group == np.array([0, 0, 1, 1])[sol.sector]).all()
    assert 0 < (sol.sector != before).sum() < 24


# ---------------------------------------------------------------- transition


def test_transition_matches_a_direct_computation():
    idx = pd.Index(["01001", "01002", "01003"])
    old = pd.Series(["W1", "W1", "W2"], idx)
    new = pd.Series(["W1", "W2", "W2"], idx)
    follow = pd.Series([12.0, 6.0, 3.0], idx)
    referrals = pd.Series([24.0, 12.0, 12.0], idx)
    grand = simulate_transition(old, new, follow, referrals, 6.0, mode="grandfathering")
    now = simulate_transition(old, new, follow, referrals, 6.0, mode="immediate")
    keep = 1 - 1 / 6
    for m in (0, 1, 5, 12):
        g = grand[grand.month == m].set_index("worker_id")
        arrived = np.array([2.0, 1.0, 1.0]) * (1 - keep**m) * 6
        left = follow.to_numpy() * keep**m
        assert g.at["W1", "caseload"] == pytest.approx(left[0] + left[1] + arrived[0])
        assert g.at["W1", "old_map"] == pytest.approx(left[1])
        assert g.at["W2", "caseload"] == pytest.approx(left[2] + arrived[1] + arrived[2])
        i = now[now.month == m].set_index("worker_id")
        assert i.at["W2", "caseload"] == pytest.approx(left[1] + left[2] + arrived[1] + arrived[2])
        assert i["old_map"].sum() == 0
        assert g["caseload"].sum() == pytest.approx(i["caseload"].sum())
    month = drained_month(grand)  # 6 patients moved: drained below max(1, 5 % of 6) = 1 patient
    assert month is not None and 6 * keep**month < 1 <= 6 * keep ** (month - 1)


# ---------------------------------------------------------------- AURA


def _scenario(folder, **changes):
    """The previous run's scenario with short solves and changes per table."""
    import tomllib

    d = tomllib.loads((folder / "scenario.toml").read_text(encoding="utf-8"))
    d["model"].update(backend="auto", time_limit_s=12)
    d["rerun"] = {**d.get("rerun", {}), "frontier_time_limit_s": 6}
    for table, values in changes.items():
        d[table] = values if not isinstance(values, dict) else {**d.get(table, {}), **values}
    return scenario_from_dict(d)


def _shifted_demand(plan, path, factor=1.5, deps=("74",)):
    """This year's demand: the plan's demand with ``factor`` in some departments (a French CSV)."""
    units = plan.units
    lines = ["insee;referrals;home_care"]
    for key, row in units.iterrows():
        f = factor if row["dep"] in deps else 1.0
        if row["referrals"] or row["home_care"]:
            lines.append(f"{key};{str(round(row['referrals'] * f, 2)).replace('.', ',')};"
                         f"{str(round(row['home_care'] * f, 2)).replace('.', ',')}")
    path.write_bytes("\r\n".join(lines).encode("utf-8-sig"))
    return path


@pytest.mark.slow
def test_aura_unchanged_inputs_move_nothing(aura_run):
    folder, plan = aura_run
    result = rerun(_scenario(folder), load_previous(folder), with_frontier=False)
    assert result.plan.valid, result.plan.violations
    assert len(result.changes) == 0
    assert result.summary["moved_patients"] == 0
    merged = result.plan.units[["sector", "worker_id"]].merge(
        plan.units[["sector", "worker_id"]], left_index=True, right_index=True, suffixes=("", "_before"))
    assert (merged["sector"] == merged["sector_before"]).all()
    assert (merged["worker_id"] == merged["worker_id_before"]).all()


@pytest.mark.slow
def test_aura_demand_shift_moves_less_than_a_fresh_solve(aura_run, tmp_path):
    folder, plan = aura_run
    demand = _shifted_demand(plan, tmp_path / "demande-2027.csv")
    scenario = _scenario(folder, demand={"source": "file", "file": str(demand), "columns": None},
                         model={"time_limit_s": 6},  # work seconds: the same plans on any machine
                         rerun={"frontier": [5.0], "frontier_time_limit_s": 3})  # rows present, found or not
    result = rerun(scenario, load_previous(folder))
    assert result.plan.valid, result.plan.violations
    moved = result.changes[result.changes["reason"] == "moved"]
    assert len(moved) > 0 and set(moved["from_worker"]) != set()
    assert result.summary["moved_patients"] == pytest.approx(moved["follow_up"].sum())
    table = result.frontier.set_index("option")
    fresh = table.loc["re-solve from scratch"]
    assert fresh["feasible"]
    assert result.summary["moved_patients"] < fresh["moved_patients"]
    assert {"penalty x0.25", "penalty x4", "at most 5 % moved", "chosen plan"} <= set(table.index)
    # the previous map under the new demand was out of balance somewhere; the new plan is not
    assert result.caseloads["deviation_previous_map_pct"].abs().max() > 10
    assert result.caseloads["deviation_after_pct"].abs().max() <= 10 + 1e-6
    # sector ids stay with their worker
    before = plan.workers.set_index("worker_id")["sector"]
    after = result.plan.workers.set_index("worker_id")["sector"]
    assert (before == after.reindex(before.index)).all()


@pytest.mark.slow
def test_aura_worker_leaving_and_joining(aura_run):
    folder, plan = aura_run
    import tomllib

    team = tomllib.loads((folder / "scenario.toml").read_text(encoding="utf-8"))["team"]
    leaving, replaced = team["workers"][2]["id"], team["workers"][4]["id"]
    team["workers"] = [w for w in team["workers"] if w["id"] not in (leaving, replaced)]
    team["workers"] += [{"id": "TS12", "name": "Successor", "fte": 1.0, "replaces": replaced},
                        {"id": "TS13", "name": "Newcomer", "fte": 0.8}]
    scenario = _scenario(folder, team=team, rerun={"frontier": [], "frontier_penalties": []})
    result = rerun(scenario, load_previous(folder))
    new = result.plan
    assert new.valid, new.violations
    workers = new.workers.set_index("worker_id")
    old = plan.workers.set_index("worker_id")
    assert workers.at["TS12", "sector"] == old.at[replaced, "sector"]  # the successor keeps the sector id
    assert workers.at["TS13", "sector"] not in set(old["sector"])      # a newcomer gets a new one
    assert (new.units["worker_id"] == "TS13").sum() > 0
    assert not new.units["worker_id"].isin([leaving, replaced]).any()
    reasons = result.changes.groupby("reason")["insee"].count()
    assert reasons["handover"] > 0 and reasons["worker left"] > 0
    handed = result.changes[result.changes["reason"] == "handover"]
    assert (handed["from_worker"] == replaced).all() and (handed["to_worker"] == "TS12").all()
    assert result.summary["left"] == [leaving] and result.summary["joined"] == ["TS13"]
    # the transition: the successor starts with the departed worker's patients, who carry none;
    # the patients of the worker who left without successor follow the new map at once
    t = result.transition
    assert not t["worker_id"].isin([leaving, replaced]).any()
    first = t[t["month"] == 0].set_index("worker_id")
    kept = result.changes.loc[(result.changes["reason"] == "handover")
                              & (result.changes["to_worker"] == "TS12"), "follow_up"].sum()
    assert first.at["TS12", "caseload"] >= kept - 1e-6 > 0
    assert first["old_map"].sum() == pytest.approx(
        result.changes.loc[result.changes["reason"] == "moved", "follow_up"].sum())


def test_bad_handover_names_the_key(aura_run):
    folder, _ = aura_run
    scenario = _scenario(folder, rerun={"handover": {"TS99": "TS01"}})
    with pytest.raises(ScenarioError, match=r"rerun\.handover\.TS99"):
        rerun(scenario, load_previous(folder), with_frontier=False)


def test_previous_plan_errors_name_the_file(tmp_path):
    with pytest.raises(ScenarioError, match="not a run folder"):
        load_previous(tmp_path / "nowhere")
    (tmp_path / "sectors.csv").write_text("insee;sector\n01001;A1\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"sectors\.csv.*worker_id"):
        load_previous(tmp_path)


@pytest.mark.slow
def test_cli_rerun_writes_report_and_offline_diff_map(aura_run, tmp_path):
    folder, plan = aura_run
    demand = _shifted_demand(plan, tmp_path / "demande.csv", factor=1.4, deps=("73",))
    out = tmp_path / "out"
    code = main(["rerun", "--previous", str(folder), "--demand", str(demand), "--out", str(out),
                 "--time-limit", "10", "--no-frontier", "--quiet"])
    assert code == 0
    run = out / (out / "LATEST").read_text().strip()
    for name in ("changes.csv", "caseloads.csv", "transition.csv", "transition_workers.csv", "rerun.json",
                 "diff_map.html", "sectors.csv"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "rerun.json").read_text(encoding="utf-8"))
    changes = pd.read_csv(run / "changes.csv", sep=";", dtype=str, encoding="utf-8-sig")
    assert summary["moved_communes"] == int((changes["reason"] == "moved").sum())
    assert changes["insee"].str.len().eq(5).all()
    page = (run / "diff_map.html").read_text(encoding="utf-8")
    assert external_resources(page) == []
    assert "Communes whose referent changes" in page
    if find_chromium() is not None:  # the page really draws: one red outline per row of changes.csv
        from sectorize.report.maps import CHANGED_COLOUR

        drawn = open_offline(run / "diff_map.html", budget_ms=20_000)
        assert drawn.console == [] and drawn.requests == []
        outlined = [p for p in re.findall(r"<path\b[^>]*>", drawn.dom) if f'stroke="{CHANGED_COLOUR}"' in p]
        assert len(outlined) == len(changes)
    assert main(["rerun", "--previous", str(tmp_path / "missing")]) == 2


def test_locked_communes_stay_with_their_worker():
    g, t = grid(6, 8)
    before = np.repeat([0, 1, 2, 3], 12)
    w2 = np.ones(48)
    w2[:12] = 1.5  # worker 0 must shed units; the ones on its border with worker 1 are locked
    free = resolve_nested(g, w2, t, np.ones(4), np.array([0, 0, 1, 1]), before, tolerance=0.15,
                          group_tolerance=0.15, move_cost=10.0, time_limit_s=3.0)
    moved_out = [u for u in range(12) if free.sector[u] != 0]
    assert moved_out, "the demand shift makes worker 0 give up units"
    locked = {u: 0 for u in moved_out}
    kept = resolve_nested(g, w2, t, np.ones(4), np.array([0, 0, 1, 1]), before, tolerance=0.15,
                          group_tolerance=0.15, move_cost=10.0, time_limit_s=3.0, locked=locked)
    assert all(kept.sector[u] == 0 for u in locked)
    loads = np.bincount(kept.sector, weights=w2, minlength=4)
    assert np.all(np.abs(loads / (w2.sum() / 4) - 1) <= 0.15 + 1e-9)


def test_previous_plan_of_an_older_geography_is_mapped(aura):
    """A previous plan with an old commune code (merged since) gives its worker to the merged commune."""
    from geodata.codes import load_code_changes
    from sectorize.pipeline.rerun import PreviousPlan, previous_worker_of_units

    changes = load_code_changes()
    row = changes[changes["current_code"].isin(aura.units.index)].iloc[0]
    old, new = str(row["old_code"]), str(row["current_code"])
    keys = aura.units.index
    sectors = pd.DataFrame({"group": "A", "sector": "A1", "worker_id": "TS01"}, index=keys.drop(new))
    sectors.loc[old] = ["A", "A2", "TS02"]
    previous = PreviousPlan("old", sectors, pd.DataFrame({"worker_id": ["TS01", "TS02"]}), "test")
    workers, notes = previous_worker_of_units(previous, keys)
    assert workers[new] == "TS02"
    assert any(old in n and "mapped" in n for n in notes)
