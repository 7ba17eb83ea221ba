"""The solver engine on small graphs with known answers, and on the real AURA graph."""

from __future__ import annotations

import itertools
from dataclasses import replace

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.allocation.mip import allocate
from solvers.check import check_partition, check_plan, diagnose
from solvers.construct.heuristic import heuristic_solve
from solvers.engine import solve
from solvers.nested import group_sectors, solve_nested, split_workers
from solvers.options import EngineSettings
from solvers.problem import DenseTravelTimes, InfeasibleError, Problem
from solvers.travel import SubsetTravelTimes


def grid_problem(rows: int, cols: int, k: int, tolerance: float, seed: int = 0) -> Problem:
    """A ``rows x cols`` grid, random integer workloads, Manhattan travel minutes (10 per step)."""
    rng = np.random.default_rng(seed)
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(rows, cols), ordering="sorted")
    xy = np.array([(i // cols, i % cols) for i in range(rows * cols)], dtype=float)
    minutes = np.abs(xy[:, None] - xy[None]).sum(-1) * 10.0
    w = rng.integers(1, 10, rows * cols).astype(float)
    return Problem(g, w, np.full(k, w.sum() / k), tolerance, DenseTravelTimes(minutes))


def brute_force(problem: Problem, centres: np.ndarray) -> float:
    """Best objective over every connected, balanced assignment with these centres."""
    n, k = problem.n, problem.k
    cost = problem.cost_rows(centres)
    best = np.inf
    for combo in itertools.product(range(k), repeat=n):
        a = np.array(combo)
        if any(a[c] != s for s, c in enumerate(centres)):
            continue
        if check_plan(problem, a):
            continue
        best = min(best, cost[a, np.arange(n)].sum())
    return best


@settings(max_examples=25, deadline=None)
@given(n=st.integers(4, 9), seed=st.integers(0, 10_000), staged=st.booleans())
def test_allocation_is_optimal_on_trees(n, seed, staged):
    """On a tree every connected set holding the centre is closed towards it,
    so shortest-path contiguity loses nothing: the MIP must match brute force,
    solved in one stage or LP-guided (stage 1 on the LP's boundaries, then
    reduced-cost fixing)."""
    rng = np.random.default_rng(seed)
    tree = nx.random_labeled_tree(n, seed=seed)
    pos = rng.uniform(0, 50, (n, 2))
    minutes = np.sqrt(((pos[:, None] - pos[None]) ** 2).sum(-1))
    w = rng.integers(1, 6, n).astype(float)
    p = Problem(tree, w, np.array([w.sum() / 2] * 2), 0.3, DenseTravelTimes(minutes))
    centres = rng.choice(n, 2, replace=False)
    expected = brute_force(p, centres)
    result = allocate(p, centres, time_limit_s=10, staged=staged, relative_gap=1e-9)
    if np.isinf(expected):
        assert result.assignment is None
    else:
        assert result.status == "optimal"
        assert result.objective == pytest.approx(expected, rel=1e-6)
        assert check_plan(p, result.assignment) == []


@pytest.mark.parametrize("seed", range(4))
def test_staged_allocation_finds_the_one_stage_optimum(seed):
    """The LP-guided allocation (restricted MIP, then reduced-cost fixing) proves the
    same optimum as the one-stage MIP on a 14 x 14 grid with 4 sectors, nearest
    centres only, and each plan passes the checker."""
    p = grid_problem(14, 14, 4, 0.03, seed=seed)
    centres = np.random.default_rng(seed).choice(p.n, 4, replace=False)
    one = allocate(p, centres, time_limit_s=60, relative_gap=1e-9, candidates=3, staged=False)
    two = allocate(p, centres, time_limit_s=60, relative_gap=1e-9, candidates=3, staged=True)
    assert one.status == two.status
    if one.assignment is None:
        assert two.assignment is None
        return
    assert two.status == "optimal"
    assert two.objective == pytest.approx(one.objective, rel=1e-7)
    assert check_plan(p, two.assignment) == []
    assert "LP bound" in two.log[0]


def test_staged_allocation_reports_infeasibility():
    """Targets above the total workload stop at the LP; a unit heavier than a
    sector may hold passes the LP (it can be split there) and fails in the MIP."""
    p = grid_problem(4, 4, 2, 0.0, seed=0)
    w = np.asarray(p.workload, dtype=float).copy()
    too_much = Problem(p.graph, w, np.array([w.sum()] * 2), 0.01, p.travel)
    result = allocate(too_much, np.array([0, 15]), time_limit_s=10, staged=True)
    assert result.assignment is None and result.status == "infeasible"
    assert "LP relaxation infeasible" in result.log[0]
    w[5] = w.sum()  # heavier than a sector's upper bound
    heavy = Problem(p.graph, w, np.array([w.sum() / 2] * 2), 0.01, p.travel)
    result = allocate(heavy, np.array([0, 15]), time_limit_s=10, staged=True)
    assert result.assignment is None and result.status == "infeasible"


@pytest.mark.parametrize("seed", range(3))
def test_lp_allocation_is_below_the_mip(seed):
    """The rounded LP of the allocation model: one sector per unit, and a value no
    higher than the MIP optimum for the same centres (it is its relaxation)."""
    from solvers.allocation.mip import lp_allocation

    p = grid_problem(12, 12, 4, 0.05, seed=seed)
    centres = np.random.default_rng(seed).choice(p.n, 4, replace=False)
    mip = allocate(p, centres, time_limit_s=60, relative_gap=1e-9)
    lp = lp_allocation(p, centres)
    if mip.assignment is None:
        return
    assign, value = lp
    assert assign.shape == (p.n,) and set(assign.tolist()) <= set(range(4))
    assert value <= mip.objective + 1e-6 * abs(mip.objective)


def test_allocation_never_beats_brute_force_on_a_grid():
    p = grid_problem(3, 3, 2, 0.2, seed=3)
    centres = np.array([0, 8])
    result = allocate(p, centres, time_limit_s=10)
    assert check_plan(p, result.assignment) == []
    assert result.objective >= brute_force(p, centres) - 1e-6


@pytest.mark.parametrize("backend", ["heuristic", "mip", "auto"])
def test_solve_returns_a_checked_plan(backend):
    p = grid_problem(8, 8, 4, 0.05, seed=1)
    sol = solve(p, backend=backend, time_limit_s=6, seed=0)
    assert check_plan(p, sol.assignment) == []
    assert sol.objective == pytest.approx(p.objective_value(sol.assignment, sol.centres))
    if backend == "auto":  # a certificate by default: the Lagrangian bound and the gap to it
        assert sol.bound is not None and 0 < sol.bound <= sol.objective + 1e-9
        assert sol.gap == pytest.approx((sol.objective - sol.bound) / sol.objective)
        assert sol.status in ("feasible", "optimal")
    else:
        assert sol.bound is None and sol.status == "feasible"
    assert sol.time_s <= 6 * 1.05


@pytest.mark.parametrize("limit, uses_mip", [(2.0, False), (8.0, True)])
def test_auto_on_large_graphs_runs_the_mip_only_with_enough_time(limit, uses_mip):
    # scaled down: "large" is above 50 units, and location-allocation needs 0.05 s per unit
    scaled = EngineSettings(auto_mip_max_units=50, auto_mip_seconds_per_1000_units=50.0)
    p = grid_problem(10, 10, 4, 0.05, seed=3)  # 100 units: needs 5 s
    lines: list[str] = []
    sol = solve(p, backend="auto", time_limit_s=limit, seed=0, progress=lines.append, settings=scaled)
    assert check_plan(p, sol.assignment) == []
    skipped = any("heuristic only" in line for line in lines)
    assert skipped is not uses_mip
    assert any(line.startswith("location-allocation") for line in sol.log) is uses_mip


def test_auto_with_a_long_limit_gives_the_rounds_leftover_to_lns():
    """From ``auto_lns_from_s`` the time no new round fits into goes to LNS and kicks: on work
    budgets the rounds are the same, so the plan can only get better (here it does); below it,
    LNS never runs."""
    p = grid_problem(14, 14, 8, 0.03, seed=3)  # 196 units: above the exact backend's share of "auto"
    plain = EngineSettings(deterministic=True)
    without = solve(p, backend="auto", time_limit_s=4, seed=0, settings=plain)
    polished = solve(p, backend="auto", time_limit_s=4, seed=0, settings=replace(plain, auto_lns_from_s=4.0))
    assert not any(line.startswith("LNS") for line in without.log)
    assert any(line.startswith("LNS") for line in polished.log)
    assert check_plan(p, polished.assignment) == []
    assert polished.objective < without.objective - 1e-9


def test_mip_improves_on_the_heuristic_start():
    p = grid_problem(10, 10, 5, 0.05, seed=2)
    _, _, heuristic_objective, _ = heuristic_solve(p, time_limit_s=1.0, seed=0, restarts=1)
    sol = solve(p, backend="mip", time_limit_s=20, seed=0)
    assert sol.objective <= heuristic_objective + 1e-6


def test_locked_units_stay_in_their_sector():
    p0 = grid_problem(6, 6, 3, 0.1, seed=4)
    p = Problem(p0.graph, p0.workload, p0.targets, p0.tolerance, p0.travel, locked={0: 2, 35: 0})
    sol = solve(p, backend="auto", time_limit_s=5)
    assert sol.assignment[0] == 2 and sol.assignment[35] == 0
    assert check_plan(p, sol.assignment) == []


def test_diagnose_names_the_heavy_unit_and_the_remedy():
    p0 = grid_problem(4, 4, 4, 0.1)
    w = p0.workload.copy()
    w[5] = w.sum()  # one unit heavier than any sector may be
    p = Problem(p0.graph, w, np.full(4, w.sum() / 4), 0.1, p0.travel,
                labels=tuple(f"u{i}" for i in range(16)))
    msgs = diagnose(p)
    assert any("u5 alone has a caseload" in m and "Lyon-arrondissements" in m for m in msgs)
    with pytest.raises(InfeasibleError, match="u5 alone"):
        solve(p, time_limit_s=2)


def test_diagnose_disconnected_graph():
    g = nx.Graph([(0, 1), (2, 3)])
    p = Problem(g, np.ones(4), np.array([2.0, 2.0]), 0.0, DenseTravelTimes(np.zeros((4, 4))))
    assert "separate pieces" in diagnose(p)[0]


def test_checker_reports_each_rule():
    g = nx.path_graph(5)
    msgs = check_partition(g, [0, 1, 0, 1, 1], np.ones(5), np.array([2.0, 2.0]), np.array([2.5, 2.5]))
    assert any("sector 0 is not connected" in m for m in msgs)
    assert any("sector 1 caseload 3.0 is outside" in m for m in msgs)
    assert check_partition(g, [0, 0, 5, 1, 1], np.ones(5), np.ones(2), np.ones(2) * 3)[0].startswith("unit 2")


def test_split_workers_balances_fte_and_respects_fixed_groups():
    fte = np.array([1.0] * 8 + [0.8] * 2 + [0.5])
    groups = split_workers(fte, 2)
    loads = np.bincount(groups, weights=fte)
    assert abs(loads[0] - loads[1]) <= 0.1 + 1e-9
    fixed = [1, 1, 1] + [None] * 8
    groups = split_workers(fte, 2, fixed)
    assert groups[:3].tolist() == [1, 1, 1]
    with pytest.raises(ValueError):
        split_workers(fte[:1], 2)


def test_subset_travel_times_renumber():
    m = np.arange(25, dtype=float).reshape(5, 5)
    sub = SubsetTravelTimes(DenseTravelTimes(m), np.array([1, 3]))
    assert sub.rows(np.array([1])).tolist() == [[m[3, 1], m[3, 3]]]


def test_group_sectors_picks_the_short_border_among_balanced_splits():
    # a 2 x 4 grid in four 1 x 2 sectors: 0 top-left, 1 top-right, 2 bottom-left,
    # 3 bottom-right; left/right halves cut 2 edges, top/bottom halves 4
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(2, 4), ordering="sorted")
    sector = np.array([i // 2 for i in range(8)])
    groups = group_sectors(g, sector, np.ones(8), np.ones(4), 2, 0.0)
    assert groups.tolist() == [0, 1, 0, 1]
    # a fixed group is respected, and an impossible tolerance gives None
    fixed = [1, None, None, None]
    assert group_sectors(g, sector, np.ones(8), np.ones(4), 2, 0.0, fixed=fixed).tolist() == [1, 0, 1, 0]
    assert group_sectors(g, sector, np.ones(8), np.array([1.0, 1.0, 1.0, 3.0]), 2, 0.0) is None


def test_nested_groups_are_unions_of_sectors():
    p = grid_problem(10, 10, 1, 0.1, seed=5)
    fte = np.array([1.0, 1.0, 1.0, 0.5])
    r = solve_nested(p.graph, p.workload, p.travel, fte, 2, tolerance=0.1, group_tolerance=0.05,
                     time_limit_s=10)
    targets = p.workload.sum() * fte / fte.sum()
    assert check_partition(p.graph, r.sector, p.workload, targets * 0.9, targets * 1.1) == []
    assert (r.worker_group[r.sector] == r.group).all()
    gt = np.bincount(r.worker_group, weights=targets)
    assert check_partition(p.graph, r.group, p.workload, gt * 0.95, gt * 1.05) == []
    assert (r.sector[r.centre] == np.arange(4)).all()


def test_groups_first_fallback_when_sectors_cannot_be_grouped():
    p = grid_problem(10, 10, 1, 0.1, seed=6)
    fte = np.array([1.0, 1.0, 1.0, 1.0])
    # group tolerance 0: sectors within ±10 % almost never pair up exactly
    r = solve_nested(p.graph, p.workload, p.travel, fte, 2, tolerance=0.1, group_tolerance=0.0,
                     fixed_groups=[0, 0, 1, 1], time_limit_s=10)
    assert r.strategy in ("sectors first", "groups first")
    targets = p.workload.sum() * fte / fte.sum()
    assert check_partition(p.graph, r.sector, p.workload, targets * 0.9, targets * 1.1) == []
    assert r.worker_group.tolist() == [0, 0, 1, 1]


@pytest.mark.slow
def test_aura_sectors_with_the_mip(aura_lyon):
    """The full region, 11 workers in 2 groups, real adjacency, synthetic demand; a work budget (as
    ``sectorize run``), so the plan is the same however loaded the machine is."""
    from geodata.demand import synthetic_demand
    from geodata.travel import estimate_travel_times

    units = aura_lyon.units
    index = {k: i for i, k in enumerate(units.index)}
    g = nx.relabel_nodes(aura_lyon.graph, index)
    d = synthetic_demand(aura_lyon, seed=1).table
    w = (d["referrals"] + 0.5 * d["home_care"]).reindex(units.index).to_numpy(float)
    travel = DenseTravelTimes(estimate_travel_times(aura_lyon).dense())
    fte = np.array([1.0] * 8 + [0.8] * 2 + [0.5])
    r = solve_nested(g, w, travel, fte, 2, tolerance=0.1, group_tolerance=0.05,
                     cost_weight=w + 0.05 * w.mean(), time_limit_s=10, deterministic=True)
    targets = w.sum() * fte / fte.sum()
    assert check_partition(g, r.sector, w, targets * 0.9, targets * 1.1) == []
    gt = np.bincount(r.worker_group, weights=targets)
    assert check_partition(g, r.group, w, gt * 0.95, gt * 1.05) == []
    assert r.deterministic and not r.capped and r.work_s <= 10 * 1.05


def test_same_seed_and_starts_give_the_same_plan():
    """Determinism: with a fixed number of starts (no clock in the loop) the heuristic
    and the allocation MIP return the same plan for the same seed."""
    import networkx as nx

    from solvers.construct.heuristic import heuristic_solve
    from solvers.allocation.mip import allocate
    from solvers.problem import DenseTravelTimes, Problem

    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(9, 9), ordering="sorted")
    xy = np.array(sorted(nx.grid_2d_graph(9, 9).nodes), dtype=float)
    t = DenseTravelTimes(np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1)) * 7.0)
    w = np.random.default_rng(5).integers(0, 6, 81).astype(float)
    p = Problem(g, w, np.full(4, w.sum() / 4), 0.08, t)
    runs = [heuristic_solve(p, time_limit_s=60, seed=11, restarts=4) for _ in range(2)]
    assert (runs[0][0] == runs[1][0]).all() and runs[0][2] == runs[1][2]
    first, second = (allocate(p, runs[0][1], time_limit_s=30) for _ in range(2))
    assert (first.assignment == second.assignment).all()


def test_running_out_of_time_is_not_a_proof():
    """A search that finds no balanced plan raises NoPlanFoundError, never InfeasibleError."""
    from solvers import NoPlanError, NoPlanFoundError

    assert not issubclass(NoPlanFoundError, InfeasibleError) and not issubclass(InfeasibleError, NoPlanFoundError)
    assert issubclass(NoPlanFoundError, NoPlanError) and issubclass(InfeasibleError, NoPlanError)
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(12, 12), ordering="sorted")
    xy = np.array(sorted(nx.grid_2d_graph(12, 12).nodes), dtype=float)
    travel = DenseTravelTimes(np.abs(xy[:, None] - xy[None]).sum(-1))
    # balanced plans exist (e.g. columns of the grid), but no time is left to find one
    p = Problem(g, np.ones(144), np.full(12, 12.0), 0.0, travel)
    with pytest.raises(NoPlanFoundError) as failure:
        solve(p, backend="heuristic", time_limit_s=1e-6)
    assert not isinstance(failure.value, InfeasibleError)
