"""Large-neighbourhood search: valid after every move, never worse, exact pair splits."""

from __future__ import annotations

import itertools
import time

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.bound.background import background_available
from solvers.check import check_plan
from solvers.construct.heuristic import heuristic_solve
from solvers.engine import solve
from solvers.lns.kicks import kick_centres, kicks, lns_rounds, split_centres
from solvers.lns.search import (adjacent_pairs, adjacent_triples, edge_array, improve_lns, pair_fixings, split_floors,
                                split_pair, sub_problem)
from solvers.options import EngineSettings
from solvers.problem import DenseTravelTimes, Problem

BACKGROUND_BOUND_MIN_S = EngineSettings().background_bound_min_s


def grid_problem(rows: int, cols: int, k: int, tolerance: float, seed: int = 0) -> Problem:
    """A rows x cols grid with random integer workloads and Euclidean minutes."""
    rng = np.random.default_rng(seed)
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(rows, cols))
    xy = np.array([(i // cols, i % cols) for i in range(rows * cols)], dtype=float)
    xy += rng.uniform(-0.2, 0.2, xy.shape)
    t = DenseTravelTimes(np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) * 10)
    w = rng.integers(1, 10, rows * cols).astype(float)
    return Problem(g, w, np.full(k, w.sum() / k), tolerance, t)


def stripes(problem: Problem, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """A valid but poor plan: sectors are runs of whole columns... found by a balanced sweep
    over units in column-major order (each run of columns is contiguous)."""
    n, k = problem.n, problem.k
    rows = n // cols
    order = np.array([r * cols + c for c in range(cols) for r in range(rows)])
    cum = np.cumsum(problem.workload[order])
    assign = np.empty(n, dtype=np.intp)
    assign[order] = np.minimum((cum - 1e-9) // (problem.workload.sum() / k), k - 1).astype(np.intp)
    centres = np.array([np.flatnonzero(assign == s)[0] for s in range(k)])
    return assign, centres


def test_lns_improves_a_poor_plan_and_keeps_it_valid():
    p = grid_problem(8, 8, 4, 0.15, seed=1)
    assign, centres = stripes(p, 8)
    assert check_plan(p, assign) == []
    start = p.objective_value(assign, centres)
    a, c, obj, log = improve_lns(p, assign, centres, time_limit_s=30, seed=0)
    assert check_plan(p, a) == []
    assert obj == pytest.approx(p.objective_value(a, c))
    assert obj < 0.9 * start
    assert "converged" in log[-1]


def test_lns_is_deterministic_for_a_seed():
    p = grid_problem(8, 8, 4, 0.15, seed=2)
    assign, centres = stripes(p, 8)
    first = improve_lns(p, assign, centres, time_limit_s=30, seed=5)
    second = improve_lns(p, assign, centres, time_limit_s=30, seed=5)
    assert "converged" in first[3][-1] and "converged" in second[3][-1]
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first[2] == second[2]


def test_lns_skips_a_rerun_and_an_invalid_start():
    p = grid_problem(4, 4, 2, 0.2)
    assign, centres = stripes(p, 4)
    rerun = Problem(p.graph, p.workload, p.targets, p.tolerance, p.travel, previous=assign, move_cost=3.0)
    a, c, obj, log = improve_lns(rerun, assign, centres, time_limit_s=5)
    assert np.array_equal(a, assign) and "skipped" in log[-1]
    bad = np.zeros(p.n, dtype=np.intp)
    a, c, obj, log = improve_lns(p, bad, centres, time_limit_s=5)
    assert np.array_equal(a, bad) and "not valid" in log[-1]


def brute_split(sub: Problem, centres: np.ndarray) -> float:
    """Best contiguous balanced two-sector plan with the centres fixed (inf if none)."""
    best = np.inf
    cost = sub.cost_rows(centres)
    for combo in itertools.product((0, 1), repeat=sub.n):
        a = np.array(combo)
        if a[centres[0]] != 0 or a[centres[1]] != 1 or check_plan(sub, a):
            continue
        best = min(best, float(cost[a, np.arange(sub.n)].sum()))
    return best


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), tolerance=st.sampled_from([0.05, 0.15, 0.3]),
       shape=st.sampled_from([(3, 3), (3, 4), (2, 5)]), squared=st.booleans())
def test_split_pair_matches_brute_force(seed, tolerance, shape, squared):
    rows, cols = shape
    p = grid_problem(rows, cols, 2, tolerance, seed=seed)
    if squared:
        p = Problem(p.graph, p.workload, p.targets, p.tolerance, DenseTravelTimes(p.travel.matrix ** 2 / 10))
    rng = np.random.default_rng(seed)
    centres = rng.choice(p.n, 2, replace=False)
    expected = brute_split(p, centres)
    got = split_pair(p, centres, deadline=time.monotonic() + 30)
    floor = split_floors(p, centres[:1], centres[1:])[0]
    if np.isinf(expected):
        assert got is None
        return
    assert got is not None and check_plan(p, got) == []
    assert got[centres[0]] == 0 and got[centres[1]] == 1
    value = float(p.cost_rows(centres)[got, np.arange(p.n)].sum())
    assert value == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert floor <= expected + 1e-9 * max(1.0, expected)


def valid_splits(sub: Problem, centres: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Every contiguous balanced two-sector plan with the centres fixed, with its cost."""
    cost = sub.cost_rows(centres)
    out = []
    for combo in itertools.product((0, 1), repeat=sub.n):
        a = np.array(combo)
        if a[centres[0]] == 0 and a[centres[1]] == 1 and not check_plan(sub, a):
            out.append((a, float(cost[a, np.arange(sub.n)].sum())))
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), tolerance=st.sampled_from([0.05, 0.15, 0.3]),
       shape=st.sampled_from([(3, 3), (3, 4), (2, 5)]), slack=st.sampled_from([0.0, 0.01, 0.2]))
def test_split_pair_with_a_hint_and_a_ceiling_matches_brute_force(seed, tolerance, shape, slack):
    """Fixing units from the hint's cost (and from a ceiling) never loses the optimum: with a
    hint the result is the best plan; with a ceiling, the best plan when it is under it."""
    p = grid_problem(*shape, 2, tolerance, seed=seed)
    rng = np.random.default_rng(seed)
    centres = rng.choice(p.n, 2, replace=False)
    plans = valid_splits(p, centres)
    if not plans:
        return
    best = min(cost for _, cost in plans)
    hint = plans[int(rng.integers(len(plans)))][0]
    cost = p.cost_rows(centres)
    got = split_pair(p, centres, deadline=time.monotonic() + 30, hint=hint)
    assert got is not None and check_plan(p, got) == []
    assert float(cost[got, np.arange(p.n)].sum()) == pytest.approx(best, rel=1e-9, abs=1e-9)
    ceiling = best * (1 + slack)
    capped = split_pair(p, centres, deadline=time.monotonic() + 30, hint=hint, ceiling=ceiling)
    assert capped is not None
    assert float(cost[capped, np.arange(p.n)].sum()) == pytest.approx(best, rel=1e-9, abs=1e-9)
    below = split_pair(p, centres, deadline=time.monotonic() + 30, hint=hint, ceiling=best * 0.99 - 1)
    assert below is None or float(cost[below, np.arange(p.n)].sum()) >= best - 1e-9  # nothing under the ceiling


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 9), slack=st.sampled_from([0.0, 0.05, 0.5]))
def test_pair_fixings_keep_every_plan_under_the_ceiling(seed, n, slack):
    """A fixed unit has the same side in every 0/1 plan (contiguity dropped) costing at most the ceiling."""
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 6, n).astype(float)
    gain = rng.normal(0, 10, n)
    lower, upper = sorted(rng.uniform(0, w.sum(), 2))
    fixed = {0: 1} if n > 3 else {}
    plans = [np.array(y) for y in itertools.product((0, 1), repeat=n)
             if lower <= np.dot(w, y) <= upper and all(y[u] == v for u, v in fixed.items())]
    if not plans:
        return
    best = min(float(gain @ y) for y in plans)
    ceiling = best + slack * (abs(best) + 1)
    got = pair_fixings(w, gain, fixed, lower, upper, ceiling)
    assert all(got[u] == v for u, v in fixed.items())
    for y in plans:
        if gain @ y <= ceiling:
            assert all(y[u] == v for u, v in got.items())


def test_adjacent_triples_and_sub_problem_from_the_edge_array():
    p = grid_problem(3, 3, 3, 0.5)
    assign = np.array([0, 0, 1, 0, 2, 1, 2, 2, 1])
    assert adjacent_pairs(p, assign) == [(0, 1), (0, 2), (1, 2)]
    assert adjacent_triples(p, assign) == [(0, 1, 2)]
    assert adjacent_triples(p, np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])) == []  # a chain: 0-1 and 1-2 only
    units = np.array([4, 1, 5])
    a, b = sub_problem(p, units, (2, 1)), sub_problem(p, units, (2, 1), edge_array(p))
    assert sorted(a.graph.edges) == sorted(b.graph.edges) == [(0, 1), (0, 2)]


def test_lns_moves_units_around_a_cycle_of_three_sectors():
    """Where the pair search has converged (±5 %), the three-sector pass still lowers the
    objective, and the plan stays valid."""
    p = grid_problem(8, 8, 5, 0.05, seed=2)
    assign, centres, _, _ = heuristic_solve(p, time_limit_s=10, seed=0, restarts=1)
    pairs_only = improve_lns(p, assign, centres, time_limit_s=60, seed=0, triples=False)
    assert "converged" in pairs_only[3][-1] and "0 triple visits" in pairs_only[3][-1]
    again = improve_lns(p, pairs_only[0], pairs_only[1], time_limit_s=60, seed=0, triples=False)
    assert again[2] == pairs_only[2]  # a local optimum of the pair moves
    both = improve_lns(p, pairs_only[0], pairs_only[1], time_limit_s=60, seed=0)
    assert "converged" in both[3][-1]
    assert check_plan(p, both[0]) == []
    assert both[2] == pytest.approx(p.objective_value(both[0], both[1]))
    assert both[2] < pairs_only[2] - 1.0


def test_sub_problem_keeps_locks_and_targets():
    p = grid_problem(4, 4, 3, 0.3)
    p = Problem(p.graph, p.workload, np.array([10.0, 20.0, 30.0]), 0.3, p.travel, locked={5: 2, 6: 0})
    units = np.array([1, 2, 5, 6, 9])
    sub = sub_problem(p, units, (2, 1))
    assert sub.n == 5 and list(sub.targets) == [30.0, 20.0]
    assert sub.locked == {2: 0}  # unit 5 (local 2) locked to sector 2 (local 0); sector 0 is not in the pair
    assert np.allclose(sub.travel.rows(np.array([0]))[0], p.travel.rows(np.array([1]))[0][units])
    assert sorted(tuple(sorted(e)) for e in sub.graph.edges) == [(0, 1), (0, 2), (1, 3), (2, 3), (2, 4)]


def test_adjacent_pairs():
    g = nx.path_graph(5)
    t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(5), np.arange(5))) * 1.0)
    p = Problem(g, np.ones(5), np.ones(3), 0.9, t)
    assert adjacent_pairs(p, np.array([0, 0, 2, 1, 1])) == [(0, 2), (1, 2)]


def test_engine_lns_backend_reports_a_bound_and_a_valid_plan():
    p = grid_problem(6, 6, 3, 0.1, seed=4)
    sol = solve(p, backend="lns", time_limit_s=6, seed=0)
    assert check_plan(p, sol.assignment) == []
    assert sol.objective == pytest.approx(p.objective_value(sol.assignment, sol.centres))
    assert sol.bound is not None and 0 < sol.bound <= sol.objective
    assert sol.status in ("feasible", "optimal")
    auto = solve(p, backend="mip", time_limit_s=6, seed=0)
    assert sol.objective <= auto.objective + 1e-6  # starts from the same plan, only improves


def test_engine_lns_backend_with_a_previous_plan():
    p = grid_problem(6, 6, 3, 0.1, seed=4)
    first = solve(p, backend="mip", time_limit_s=4, seed=0)
    rerun = Problem(p.graph, p.workload * 1.1, p.targets * 1.1, p.tolerance, p.travel,
                    previous=first.assignment, move_cost=2.0)
    sol = solve(rerun, backend="lns", time_limit_s=4, seed=0, start=first.assignment)
    assert check_plan(rerun, sol.assignment) == []
    assert sol.bound is None  # no bound with move costs


def _exact_optimum(p: Problem) -> float:
    from solvers.exact.model import exact_solve

    return exact_solve(p, time_limit_s=60, contiguity="flow").objective


@pytest.mark.skipif(not background_available(), reason="the background bound needs Linux and 2 CPUs")
def test_engine_lns_bound_in_a_second_process():
    """From BACKGROUND_BOUND_MIN_S seconds, the bound runs beside the search: valid (below the
    proven optimum), reported in the log, within the time limit."""
    p = grid_problem(5, 5, 3, 0.1, seed=2)
    sol = solve(p, backend="lns", time_limit_s=BACKGROUND_BOUND_MIN_S, seed=0)
    assert check_plan(p, sol.assignment) == []
    assert sol.bound is not None and sol.bound <= _exact_optimum(p) * (1 + 1e-9) and sol.bound <= sol.objective
    assert any("Lagrangian bound" in line for line in sol.log)
    assert sol.time_s <= BACKGROUND_BOUND_MIN_S * 1.1


def test_engine_lns_bound_when_the_second_process_fails(monkeypatch):
    """A failing bound process costs the bound, never the plan, and the log says why."""
    import sys

    import solvers.bound.lagrangian as lagrangian

    def broken(*args, **kwargs):
        raise MemoryError("no room for the cost matrix")

    monkeypatch.setattr(lagrangian, "lower_bound", broken)  # the forked child sees the patched module
    p = grid_problem(5, 5, 3, 0.1, seed=2)
    if not sys.platform.startswith("linux"):
        pytest.skip("fork is Linux-only here")
    sol = solve(p, backend="lns", time_limit_s=BACKGROUND_BOUND_MIN_S, seed=0,
                settings=EngineSettings(background_bound=True))
    assert check_plan(p, sol.assignment) == []
    assert sol.bound is None and sol.status == "feasible"
    assert any("background process failed (MemoryError: no room for the cost matrix)" in line for line in sol.log)


def test_engine_lns_bound_without_a_second_cpu():
    """One CPU: the bound takes the last ``lns_bound_share`` of the time, as before."""
    p = grid_problem(5, 5, 3, 0.1, seed=2)
    sol = solve(p, backend="lns", time_limit_s=BACKGROUND_BOUND_MIN_S, seed=0,
                settings=EngineSettings(background_bound=False))
    assert sol.bound is not None and sol.bound <= _exact_optimum(p) * (1 + 1e-9)


def test_engine_lns_no_bound_above_the_size_limit():
    p = grid_problem(5, 5, 3, 0.1, seed=2)
    sol = solve(p, backend="lns", time_limit_s=4, seed=0, settings=EngineSettings(bound_max_units=10))
    assert sol.bound is None and any("none above 10 units" in line for line in sol.log)


def _lns_in_worker(seed: int) -> tuple[list[str], float | None, bool]:
    import multiprocessing

    p = grid_problem(5, 5, 3, 0.1, seed=2)
    sol = solve(p, backend="lns", time_limit_s=BACKGROUND_BOUND_MIN_S, seed=seed)
    return sol.log, sol.bound, multiprocessing.current_process().daemon


@pytest.mark.skipif(not background_available(), reason="the background bound needs Linux and 2 CPUs")
def test_engine_lns_inside_a_daemonic_pool_worker():
    """Pool workers may not have children: the bound is then computed after the search."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(1) as pool:
        log, bound, daemon = pool.apply(_lns_in_worker, (0,))
    assert daemon and bound is not None
    assert not any("background process" in line for line in log)


def test_split_centres_puts_one_centre_in_each_cluster():
    # two clusters of five units on a line, far apart: one centre in each, at its middle
    x = np.array([0, 1, 2, 3, 4, 100, 101, 102, 103, 104], dtype=float)
    t = DenseTravelTimes(np.abs(np.subtract.outer(x, x)))
    p = Problem(nx.path_graph(10), np.ones(10), np.ones(2) * 5, 0.1, t)
    assert sorted(split_centres(p, np.arange(10)).tolist()) == [2, 7]
    assert split_centres(p, np.array([4])).tolist() == [4, 4]


def test_kicks_cover_every_pair_in_a_seeded_order_and_spare_locked_sectors():
    p = grid_problem(6, 6, 3, 0.1, seed=4)
    assign = np.repeat(np.arange(3), 12)
    centres = np.array([5, 17, 30])
    first = kicks(p, assign, centres, np.random.default_rng(0))
    assert sorted(first) == [(c, t) for c in range(3) for t in range(3) if c != t]
    assert first == kicks(p, assign, centres, np.random.default_rng(0))
    own = p.cost_rows(centres)[assign, np.arange(p.n)]
    cost = np.bincount(assign, weights=own)
    gaps = [cost[close] - cost[split] for close, split in first]
    assert gaps == sorted(gaps, reverse=True)  # costliest sector into the cheapest first
    locked = Problem(p.graph, p.workload, p.targets, p.tolerance, p.travel, locked={0: 0})
    assert all(close != 0 for close, _ in kicks(locked, assign, centres, np.random.default_rng(0)))


def test_kick_centres_moves_the_closed_sector_into_the_split_one():
    p = grid_problem(6, 6, 3, 0.1, seed=4)
    assign = np.repeat(np.arange(3), 12)
    centres = np.array([5, 17, 30])
    moved = kick_centres(p, assign, centres, close=0, split=2)
    assert moved[1] == 17
    assert set(moved[[0, 2]].tolist()) == set(split_centres(p, np.flatnonzero(assign == 2)).tolist())
    assert (assign[moved[[0, 2]]] == 2).all()


def test_lns_rounds_keeps_only_kicks_that_improve():
    p = grid_problem(8, 8, 4, 0.15, seed=1)
    assign, centres = stripes(p, 8)
    start = (assign, centres, p.objective_value(assign, centres), "heuristic")
    log: list[str] = []
    calls = []

    def every_kick_passes(problem, c, hint, deadline):  # LP value 0 for the plan itself, -1 for each kick
        calls.append(1)
        return c, np.argmin(problem.cost_rows(c), axis=0), (0.0 if len(calls) == 1 else -1.0)

    a, c, obj, name = lns_rounds(p, start, seed=0, heuristic_share=0.5, deadline=time.monotonic() + 8, log=log,
                                 say=lambda line: None, screen=every_kick_passes)
    assert check_plan(p, a) == []
    assert obj == pytest.approx(p.objective_value(a, c))
    polished = improve_lns(p, assign, centres, time_limit_s=30, seed=0)[2]
    assert obj <= polished + 1e-9  # on this grid, kicks and new rounds end no worse than LNS alone
    assert any(line.startswith("kick:") and "objective" in line for line in log)
