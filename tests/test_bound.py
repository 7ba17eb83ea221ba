"""The Lagrangian lower bound: never above any balanced plan's objective, tight when it can be."""

from __future__ import annotations

from dataclasses import replace

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.bound.fixing import fixable_pairs
from solvers.bound.lagrangian import cost_matrix, lower_bound
from solvers.bound.relaxation import strong_relaxation
from solvers.engine import solve
from solvers.exact.model import exact_solve
from solvers.problem import DenseTravelTimes, NoPlanError, Problem
from tiny import MIP_ONLY, brute_force, grid_problems

#: Tiny problems, some with zero workloads, squared minutes or objective weights above the workload.
BOUND_PROBLEMS = grid_problems(squared=True, zero_workloads=True, tolerances=(0.0, 0.1, 0.25, 0.4), cost_weight=True)


@settings(max_examples=60, deadline=None)
@given(problem=BOUND_PROBLEMS)
def test_bound_never_exceeds_any_balanced_plan(problem):
    any_plan, contiguous = brute_force(problem)
    found = lower_bound(problem, time_limit_s=2, max_iterations=300)
    assert found is not None
    if np.isinf(any_plan):
        return  # nothing to bound; any value is vacuously valid
    assert found.value <= any_plan + 1e-9 * max(1.0, abs(any_plan))
    assert found.value <= contiguous + 1e-9 * max(1.0, abs(any_plan))
    assert all(b <= any_plan + 1e-6 for b in found.history if np.isfinite(b))


@settings(max_examples=10, deadline=None)
@given(problem=BOUND_PROBLEMS)
def test_bound_below_the_exact_backend(problem):
    try:
        sol = exact_solve(problem, time_limit_s=20, contiguity="flow")
    except NoPlanError:  # proven infeasible, or none found in the time
        return
    found = lower_bound(problem, upper_bound=sol.objective, time_limit_s=2, max_iterations=300)
    assert found.value <= sol.objective + 1e-9 * max(1.0, sol.objective)


def test_bound_is_tight_on_a_path():
    """Two sectors of two units on a path of four: the relaxation's optimum is the plan's, 20."""
    g = nx.path_graph(4)
    t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(4), np.arange(4))) * 10.0)
    p = Problem(g, np.ones(4), np.array([2.0, 2.0]), 0.0, t)
    found = lower_bound(p, upper_bound=20.0, time_limit_s=5)
    assert found.value == pytest.approx(20.0, rel=1e-5)  # float32 costs: a margin of 1e-5
    assert found.value <= 20.0


def test_bound_is_close_on_a_grid():
    """6 x 6 grid, 3 sectors of 12: the bound closes most of the gap to the exact optimum."""
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(6, 6))
    xy = np.array([(i // 6, i % 6) for i in range(36)], dtype=float)
    t = DenseTravelTimes(np.abs(xy[:, None] - xy[None]).sum(-1) * 10)
    p = Problem(g, np.ones(36), np.array([12.0, 12.0, 12.0]), 0.0, t)
    sol = solve(p, backend="lns", time_limit_s=5)
    assert sol.bound is not None
    assert 0.95 * sol.objective <= sol.bound <= sol.objective
    assert sol.gap is not None and sol.gap < 0.05


def test_cost_matrix_rounds_down():
    rng = np.random.default_rng(3)
    m = rng.uniform(0, 1e4, (30, 30)) / 3.0
    m = (m + m.T) / 2
    np.fill_diagonal(m, 0)
    p = Problem(nx.path_graph(30), rng.uniform(1, 1000, 30), np.array([1e9]), 0.5,
                DenseTravelTimes(m))
    c = cost_matrix(p)
    assert c.dtype == np.float32
    exact = m * p.weights[None, :]
    assert (c.astype(np.float64) <= exact).all()
    assert np.allclose(c, exact, rtol=1e-6)


def test_no_bound_for_worker_bases_or_move_costs():
    g = nx.path_graph(4)
    t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(4), np.arange(4))) * 10.0)
    base = Problem(g, np.ones(4), np.array([2.0, 2.0]), 0.0, t, objective="base",
                   base_travel=np.ones((2, 4)))
    moves = Problem(g, np.ones(4), np.array([2.0, 2.0]), 0.0, t, previous=np.array([0, 0, 1, 1]),
                    move_cost=5.0)
    assert lower_bound(base, time_limit_s=1) is None
    assert lower_bound(moves, time_limit_s=1) is None


def _cheap_plans(problem: Problem, upper: float):
    """Every balanced plan (contiguous or not) with a choice of centres costing at most ``upper``:
    yields ``(assignment, centres)``."""
    import itertools

    n, k = problem.n, problem.k
    minutes = problem.travel.rows(np.arange(n))
    w, load = problem.weights, np.asarray(problem.workload, dtype=float)
    lo, hi = problem.lower - 1e-9, problem.upper + 1e-9
    for combo in itertools.product(range(k), repeat=n):
        a = np.array(combo)
        loads = np.bincount(a, weights=load, minlength=k)
        if (loads < lo).any() or (loads > hi).any() or len(np.unique(a)) < k:
            continue
        members = [np.flatnonzero(a == s) for s in range(k)]
        options = [[(int(j), float(minutes[j, m] @ w[m])) for j in m] for m in members]
        for choice in itertools.product(*options):
            if sum(cost for _, cost in choice) <= upper + 1e-9 * max(1.0, abs(upper)):
                yield a, np.array([j for j, _ in choice])


@settings(max_examples=40, deadline=None)
@given(problem=BOUND_PROBLEMS, slack=st.sampled_from([0.0, 0.02, 0.2]))
def test_fixing_keeps_every_plan_cheaper_than_the_upper_bound(problem, slack):
    any_plan, _ = brute_force(problem)
    if np.isinf(any_plan):
        return
    upper = any_plan * (1 + slack)
    found = lower_bound(problem, upper_bound=upper, time_limit_s=2, max_iterations=300)
    fix = fixable_pairs(problem, found.multipliers, upper)
    for a, centres in _cheap_plans(problem, upper):
        assert fix.allowed[centres[a], np.arange(problem.n)].all(), (a, centres)


def test_fixing_drops_far_pairs_and_the_exact_backend_still_proves_the_optimum():
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(6, 6))
    xy = np.array([(i // 6, i % 6) for i in range(36)], dtype=float)
    t = DenseTravelTimes(((xy[:, None] - xy[None]) ** 2).sum(-1))
    p = Problem(g, np.ones(36), np.full(4, 9.0), 0.0, t)
    sol = solve(p, backend="exact", time_limit_s=30, settings=MIP_ONLY)
    assert sol.status == "optimal" and sol.gap is not None and sol.gap <= 1e-6
    assert any("Lagrangian fixing" in line for line in sol.log)
    assert any(line.startswith("strong LP relaxation") for line in sol.log)  # 36 units: LP multipliers
    found = lower_bound(p, upper_bound=sol.objective, time_limit_s=5)
    fix = fixable_pairs(p, found.multipliers, sol.objective)
    assert fix.pairs < 0.5 * 36 * 36
    assert fix.allowed[sol.centres[sol.assignment], np.arange(36)].all()
    # the model restricted to those pairs, started from the optimum, proves it again
    again = exact_solve(p, time_limit_s=30, hint=sol.assignment, allowed=fix.allowed)
    assert again.status == "optimal" and abs(again.objective - sol.objective) <= 1e-6 * sol.objective
    # growing kernels (solvers.exact.backend._kernels), as on census tracts, prove the same optimum
    # (subgradient multipliers as on tracts: the strong LP is only used up to 150 units)
    kernels = solve(p, backend="exact", time_limit_s=60,
                    settings=replace(MIP_ONLY, exact_kernel_pairs=fix.pairs // 3, exact_strong_lp_max_units=0))
    assert any(line.startswith("kernel below") for line in kernels.log)
    assert kernels.status == "optimal" and abs(kernels.objective - sol.objective) <= 1e-6 * sol.objective


def test_fixing_refuses_move_costs_and_allowed_needs_a_hint():
    t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(4), np.arange(4))) * 10.0)
    p = Problem(nx.path_graph(4), np.ones(4), np.array([2.0, 2.0]), 0.0, t,
                previous=np.array([0, 0, 1, 1]), move_cost=5.0)
    with pytest.raises(ValueError, match="move costs"):
        fixable_pairs(p, np.zeros(4), 100.0)
    q = Problem(nx.path_graph(4), np.ones(4), np.array([2.0, 2.0]), 0.0, t)
    with pytest.raises(ValueError, match="hint"):
        exact_solve(q, time_limit_s=5, allowed=np.ones((4, 4), dtype=bool))


@settings(max_examples=40, deadline=None)
@given(problem=BOUND_PROBLEMS)
def test_strong_relaxation_is_a_bound_at_least_as_good_as_the_lagrangian(problem):
    """Complete strong LP: below every balanced plan, and (being the Lagrangian dual's value)
    never below a Lagrangian bound; over a plan's own pairs it equals that plan's objective."""
    if len({(float(lo), float(hi)) for lo, hi in zip(problem.lower, problem.upper)}) != 1:
        return
    any_plan, _ = brute_force(problem)
    if np.isinf(any_plan):
        return  # the LP may still have a fractional optimum: nothing to compare
    full = strong_relaxation(problem)
    assert full.complete and full.pairs == problem.n ** 2
    assert full.value <= any_plan + 1e-7 * max(1.0, abs(any_plan))
    found = lower_bound(problem, time_limit_s=2, max_iterations=300)
    assert found.value <= full.value + 1e-6 * max(1.0, abs(full.value))


def test_strong_relaxation_over_a_plans_pairs_is_that_plan():
    g = nx.path_graph(6)
    t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(6), np.arange(6))) * 10.0)
    p = Problem(g, np.ones(6), np.array([3.0, 3.0]), 0.0, t)
    pairs = np.array([(1, 0), (1, 1), (1, 2), (4, 3), (4, 4), (4, 5)])
    r = strong_relaxation(p, pairs)
    assert not r.complete and r.pairs == 6
    assert r.value == pytest.approx(40.0, rel=1e-6)
    with pytest.raises(ValueError, match=r"\(j, j\)"):
        strong_relaxation(p, np.delete(pairs, 1, axis=0))


def _delaunay_problem(seed: int, n: int = 60, k: int = 4) -> Problem:
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2)) * 100
    g = nx.Graph()
    g.add_nodes_from(range(n))
    for a, b, c in Delaunay(xy).simplices:
        g.add_edges_from([(a, b), (b, c), (a, c)])
    w = rng.integers(1, 100, n).astype(float)
    t = DenseTravelTimes(np.linalg.norm(xy[:, None] - xy[None], axis=-1) ** 2)
    return Problem(g, w, np.full(k, w.sum() / k), 0.05, t)


@pytest.mark.parametrize("seed", [0, 3, 5])
def test_bundle_reaches_the_lagrangian_dual(seed):
    """The aggregated bundle method climbs to within 0.1 % of the Lagrangian dual's optimum (the
    complete strong LP) in 400 evaluations on 60-unit Delaunay instances; both methods stay below
    it (the default, disaggregated method: ``tests/test_disaggregated.py``)."""
    p = _delaunay_problem(seed)
    lp = strong_relaxation(p).value
    bundle = lower_bound(p, max_iterations=400, time_limit_s=120, method="bundle")
    assert lp * (1 - 1e-3) <= bundle.value <= lp * (1 + 1e-6)
    sub = lower_bound(p, max_iterations=400, time_limit_s=120, method="subgradient")
    assert sub.value <= lp * (1 + 1e-6)
    assert bundle.history == sorted(bundle.history) and len(bundle.history) == bundle.iterations
    with pytest.raises(ValueError, match="unknown bound method"):
        lower_bound(p, method="volume")

