"""The cut-edges objective: brute force on tiny graphs, every backend's plan checked,
the local search, determinism, infeasibility, the wiring into Problem and the engine."""

from __future__ import annotations

import doctest
import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import solvers.cut_edges.backend as cut_module
import solvers.problem as problem_module
from solvers.bound.lagrangian import lower_bound
from solvers.check import check_plan
from solvers.cut_edges.backend import solve_cut_edges
from solvers.cut_edges.exact import exact_cut_edges
from solvers.cut_edges.search import heuristic_cut_edges, improve_cut, start_plan
from solvers.engine import solve
from solvers.problem import DenseTravelTimes, InfeasibleError, NoPlanFoundError, Problem, cut_edges
from tiny import brute_force_cut_edges, grid_problems

ROOT = Path(__file__).resolve().parents[1]
VALIDI = ROOT.parent / "shared" / "benchmarks" / "validi"


def grid_problem(rows: int, cols: int, k: int, tolerance: float, seed: int = 0, **kwargs) -> Problem:
    """A rows x cols grid, random integer workloads 1..5, Manhattan travel."""
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(rows, cols), ordering="sorted")
    xy = np.array([(i // cols, i % cols) for i in range(rows * cols)], dtype=float)
    w = np.random.default_rng(seed).integers(1, 6, rows * cols).astype(float)
    t = DenseTravelTimes(np.abs(xy[:, None] - xy[None]).sum(-1))
    return Problem(g, w, np.full(k, w.sum() / k), tolerance, t, objective="cut_edges", **kwargs)


def test_doctests():
    assert doctest.testmod(cut_module).failed == 0
    assert doctest.testmod(problem_module).failed == 0  # cut_edges, the measure, lives there


def test_cut_edges_counts_and_weights():
    g = nx.grid_2d_graph(2, 3)
    g = nx.convert_node_labels_to_integers(g, ordering="sorted")  # unit i = row i // 3, column i % 3
    a = np.array([0, 0, 1, 0, 0, 1])
    assert cut_edges(g, a) == 2 and isinstance(cut_edges(g, a), int)
    nx.set_edge_attributes(g, {(1, 2): 0.5, (4, 5): 2.0}, "length")
    assert cut_edges(g, a, weight="length") == pytest.approx(2.5)
    assert cut_edges(g, np.zeros(6, dtype=int)) == 0


@settings(max_examples=40, deadline=None)
@given(problem=grid_problems(diagonal=True, zero_workloads=True), weighted=st.booleans(),
       lock=st.one_of(st.none(), st.tuples(st.integers(0, 4), st.integers(0, 2))),
       roots=st.sampled_from(["smallest", "free"]))
def test_exact_matches_brute_force(problem, weighted, lock, roots):
    problem = replace(problem, objective="cut_edges")
    weight = None
    if weighted:  # boundary lengths: integers 1..3 on the edges
        rng = np.random.default_rng(problem.n)
        nx.set_edge_attributes(problem.graph, {e: int(rng.integers(1, 4)) for e in problem.graph.edges}, "length")
        weight = "length"
    if lock is not None and lock[1] < problem.k:
        problem = replace(problem, locked={lock[0]: lock[1]})
    expected = brute_force_cut_edges(problem, weight)
    if np.isinf(expected):
        with pytest.raises(InfeasibleError):
            exact_cut_edges(problem, weight=weight, time_limit_s=20, roots=roots)
        return
    sol = exact_cut_edges(problem, weight=weight, time_limit_s=20, roots=roots)
    assert sol.status == "optimal"
    assert check_plan(problem, sol.assignment) == []
    assert sol.objective == pytest.approx(expected)
    assert sol.objective == pytest.approx(cut_edges(problem.graph, sol.assignment, weight=weight))
    assert sol.bound == pytest.approx(expected) and sol.gap in (None, 0.0)
    # the local search from a valid start never goes below the optimum nor above its start
    try:
        plan = start_plan(problem, time_limit_s=5)
    except NoPlanFoundError:  # a heuristic: it may miss the rare balanced plans of a tiny graph
        plan = sol.assignment
    improved, cut = improve_cut(problem, plan, weight=weight, time_limit_s=5)
    assert check_plan(problem, improved) == []
    assert expected - 1e-9 <= cut <= cut_edges(problem.graph, plan, weight=weight) + 1e-9
    assert cut == pytest.approx(cut_edges(problem.graph, improved, weight=weight))


@pytest.mark.parametrize("backend", ["heuristic", "exact", "auto"])
def test_every_backend_returns_a_checked_plan(backend):
    p = grid_problem(5, 6, 3, 0.1, seed=4, locked={0: 1})
    sol = solve(p, backend=backend, time_limit_s=6, seed=1)
    assert check_plan(p, sol.assignment) == []
    assert sol.assignment[0] == 1
    assert sol.objective == p.objective_value(sol.assignment, sol.centres) == cut_edges(p.graph, sol.assignment)
    # centres: each sector's own unit (its weighted medoid)
    assert all(sol.assignment[c] == s for s, c in enumerate(sol.centres))
    if backend == "heuristic":
        assert sol.status == "feasible" and sol.bound is None
    else:
        assert sol.backend == "exact" and sol.bound is not None and sol.bound <= sol.objective


def test_heuristic_never_worse_than_its_start():
    for seed in range(3):
        p = grid_problem(7, 7, 4, 0.05, seed=seed)
        plan = start_plan(p, time_limit_s=5, seed=seed)
        improved, cut = improve_cut(p, plan, seed=seed, time_limit_s=5)
        assert check_plan(p, improved) == []
        assert cut <= cut_edges(p.graph, plan)
        assert cut == cut_edges(p.graph, improved)
    with pytest.raises(ValueError, match="needs a valid plan"):
        improve_cut(p, np.zeros(p.n, dtype=int))


def test_heuristic_is_deterministic_for_a_seed():
    p = grid_problem(6, 7, 3, 0.05, seed=2)
    runs = [heuristic_cut_edges(p, time_limit_s=60, seed=5, starts=2) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].assignment, runs[1].assignment)
    assert runs[0].objective == runs[1].objective


def test_exact_proves_the_heuristic_optimal_or_improves_it():
    p = grid_problem(3, 4, 2, 0.1, seed=3)
    h = heuristic_cut_edges(p, time_limit_s=30, seed=0, starts=2)
    e = exact_cut_edges(p, time_limit_s=30, hint=h.assignment)
    assert e.status == "optimal" and e.objective <= h.objective
    assert e.objective == brute_force_cut_edges(p)


def test_infeasibility_is_reported():
    # a star: every half of its four units leaves two leaves apart
    star = nx.star_graph(3)
    p = Problem(star, np.ones(4), np.array([2.0, 2.0]), 0.0, DenseTravelTimes(np.zeros((4, 4))), objective="cut_edges")
    with pytest.raises(InfeasibleError, match="proves") as proof:
        solve(p, backend="exact", time_limit_s=10)
    assert not isinstance(proof.value, NoPlanFoundError)
    with pytest.raises(InfeasibleError, match="proves") as proof:
        solve(p, backend="auto", time_limit_s=10)
    assert not isinstance(proof.value, NoPlanFoundError)
    # the heuristic alone proves nothing
    with pytest.raises(NoPlanFoundError):
        solve(p, backend="heuristic", time_limit_s=2)
    # up-front diagnosis: a unit heavier than a sector may be
    heavy = replace(p, graph=nx.path_graph(4), workload=np.array([1.0, 5.0, 1.0, 1.0]), targets=np.array([4.0, 4.0]))
    with pytest.raises(InfeasibleError, match="alone has a caseload"):
        solve_cut_edges(heavy, backend="auto", time_limit_s=5)


def test_problem_and_engine_wiring():
    p = grid_problem(3, 3, 2, 0.3)
    a = np.array([0, 0, 1, 0, 0, 1, 0, 1, 1])
    assert p.objective_value(a, np.array([0, 2])) == float(cut_edges(p.graph, a))
    with pytest.raises(ValueError, match="cut_edges"):
        replace(p, previous=np.zeros(9, dtype=int), move_cost=1.0)
    with pytest.raises(ValueError, match="unknown objective 'cut'"):
        replace(p, objective="cut")
    with pytest.raises(ValueError, match="backends auto, heuristic, exact"):
        solve(p, backend="mip", time_limit_s=2)
    assert lower_bound(p, time_limit_s=1) is None  # the Lagrangian bound is for p-median only


def _bench():
    script = ROOT / "benchmarks" / "bench_cut_edges.py"
    spec = importlib.util.spec_from_file_location("bench_cut_edges", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_cut_edges"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (VALIDI / "instances_cut_edges.csv").exists(), reason="published instances not present")
def test_benchmark_script_on_a_published_instance(tmp_path, capsys):
    out = tmp_path / "cut.json"
    assert _bench().main(["--only", "ME_county", "--time-limit", "10", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["complete"] and "--only ME_county" in result["command"]
    (row,) = result["rows"]
    assert row["valid"] and row["objective"] == row["published_ub"] == 16 and row["status"] == "optimal"
    assert "| ME_county | 16 | 2 | 16 |" in capsys.readouterr().out
