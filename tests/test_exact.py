"""The exact backend: brute force on tiny graphs, locks, infeasibility, a published optimum."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.check import check_plan
from solvers.engine import solve
from solvers.exact.model import exact_solve, sector_classes, separators
from solvers.options import EngineSettings
from solvers.problem import DenseTravelTimes, InfeasibleError, Problem
from tiny import MIP_ONLY, brute_force, grid_problems


def contiguous_optimum(problem: Problem) -> float:
    """Best objective over every valid (balanced, contiguous) plan, inf if none."""
    return brute_force(problem)[1]


VALIDI = Path(__file__).resolve().parents[1].parent / "shared/benchmarks/validi"


@settings(max_examples=30, deadline=None)
@given(problem=grid_problems(diagonal=True), contiguity=st.sampled_from(["flow", "cuts"]))
def test_exact_matches_brute_force(problem, contiguity):
    expected = contiguous_optimum(problem)
    if np.isinf(expected):
        with pytest.raises(InfeasibleError):
            exact_solve(problem, time_limit_s=20, contiguity=contiguity)
        return
    sol = exact_solve(problem, time_limit_s=20, contiguity=contiguity)
    assert sol.status == "optimal"
    assert check_plan(problem, sol.assignment) == []
    assert sol.objective == pytest.approx(expected, rel=1e-6)
    assert sol.objective == pytest.approx(problem.objective_value(sol.assignment, sol.centres))
    assert sol.bound is not None and sol.bound <= sol.objective + 1e-9 and sol.gap < 1e-5


def solve_exact_or_infeasible(problem, expected: float, match: str | None = None, settings=None):
    """The exact backend's solution (with engine ``settings``), or None after checking it raises
    InfeasibleError (with ``match``) when brute force found no contiguous plan (``expected`` infinite)."""
    if np.isinf(expected):
        with pytest.raises(InfeasibleError, match=match):
            solve(problem, backend="exact", time_limit_s=10, settings=settings)
        return None
    return solve(problem, backend="exact", time_limit_s=10, settings=settings)


@settings(max_examples=12, deadline=None)
@given(problem=grid_problems(diagonal=True, squared=True))
def test_engine_exact_backend_with_fixing_matches_brute_force(problem):
    """The engine's exact backend leaves out the pairs Lagrangian fixing rules out: same optimum."""
    expected = contiguous_optimum(problem)
    sol = solve_exact_or_infeasible(problem, expected, settings=MIP_ONLY)
    if sol is None:
        return
    assert sol.status == "optimal" and check_plan(problem, sol.assignment) == []
    assert sol.objective == pytest.approx(expected, rel=1e-6)
    assert sol.bound is not None and sol.bound <= sol.objective + 1e-9


@settings(max_examples=25, deadline=None)
@given(problem=grid_problems(diagonal=True, squared=True))
def test_engine_exact_backend_by_district_enumeration_matches_brute_force(problem):
    """Up to 60 units the exact backend lists every feasible district first: proven optimum
    or proven infeasibility, equal to brute force (equal targets: the case it handles)."""
    problem = dataclasses.replace(problem, targets=np.full(problem.k, problem.targets.sum() / problem.k))
    expected = contiguous_optimum(problem)
    # infeasible: the complete list says so, or the diagnosis before it (a unit over the bounds)
    sol = solve_exact_or_infeasible(problem, expected,
                                    match="complete list|no plan|cannot|over the largest sector target")
    if sol is None:
        return
    assert sol.backend == "enumeration" and sol.status == "optimal"
    assert check_plan(problem, sol.assignment) == []
    assert sol.objective == pytest.approx(expected, rel=1e-6)
    assert sol.bound is not None and sol.bound <= sol.objective + 1e-9


@settings(max_examples=8, deadline=None)
@given(problem=grid_problems(diagonal=True, squared=True), kernel=st.sampled_from([3, 8, 20]))
def test_engine_exact_backend_by_kernels_matches_brute_force(problem, kernel):
    """With tiny kernels the exact backend grows kernels (solvers.exact.backend._kernels): same
    optimum, and its bound, built from kernels proven optimal, never exceeds it."""
    expected = contiguous_optimum(problem)
    sol = solve_exact_or_infeasible(problem, expected,
                                    settings=dataclasses.replace(MIP_ONLY, exact_kernel_pairs=kernel))
    if sol is None:
        return
    assert check_plan(problem, sol.assignment) == []
    assert sol.bound is not None and sol.bound <= expected + 1e-6 * max(1.0, expected)
    if sol.status == "optimal":
        assert sol.objective == pytest.approx(expected, rel=1e-6)


@settings(max_examples=15, deadline=None)
@given(problem=grid_problems(diagonal=True))
def test_shortest_path_contiguity_never_beats_the_optimum(problem):
    expected = contiguous_optimum(problem)
    if np.isinf(expected):
        return
    sol = exact_solve(problem, time_limit_s=20, contiguity="shortest_path")
    assert check_plan(problem, sol.assignment) == []
    assert sol.objective >= expected - 1e-6
    assert sol.status == "feasible" and sol.bound is None  # a restriction proves nothing


def test_shortest_path_contiguity_is_a_restriction():
    """Units 0-1-2-3 form a ring through the heavy unit 4 (4 also touches 5). The only valid
    plan is {0, 1, 2, 3} + {4, 5}; its best centre is 3, from which unit 0's only closer
    neighbour (along the graph) is 4, in the other sector, so shortest-path contiguity must
    pick a worse centre."""
    g = nx.Graph([(0, 1), (1, 2), (2, 3), (0, 4), (4, 3), (4, 5)])
    xy = np.random.default_rng(0).uniform(0, 10, (6, 2))
    minutes = np.rint(np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)))
    p = Problem(g, np.array([1, 1, 1, 1, 3, 1.0]), np.array([4.0, 4.0]), 0.0, DenseTravelTimes(minutes))
    exact = exact_solve(p, time_limit_s=10)
    restricted = exact_solve(p, time_limit_s=10, contiguity="shortest_path")
    assert exact.objective == pytest.approx(contiguous_optimum(p)) == pytest.approx(27.0)
    assert restricted.objective == pytest.approx(37.0)
    assert "a restriction" in restricted.log[-1]


def test_locked_units_are_honoured():
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(3, 3), ordering="sorted")
    xy = np.array([(i // 3, i % 3) for i in range(9)], dtype=float)
    minutes = np.abs(xy[:, None] - xy[None]).sum(-1) * 10
    w = np.array([3, 1, 2, 1, 4, 1, 2, 1, 3.0])
    free = Problem(g, w, np.array([6.0, 6.0, 6.0]), 0.2, DenseTravelTimes(minutes))
    locked = Problem(g, w, free.targets, 0.2, free.travel, locked={0: 2, 8: 0, 2: 1})
    assert [c.sectors for c in sector_classes(locked)] == [(0,), (1,), (2,)]
    sol = exact_solve(locked, time_limit_s=20)
    assert sol.assignment[0] == 2 and sol.assignment[8] == 0 and sol.assignment[2] == 1
    assert check_plan(locked, sol.assignment) == []
    assert sol.status == "optimal" and sol.objective == pytest.approx(contiguous_optimum(locked))
    assert sol.objective >= exact_solve(free, time_limit_s=20).objective - 1e-9


def test_infeasible_only_the_mip_can_tell():
    """A star: the centre joins one sector, the other gets two leaves that do not touch.
    The quick diagnosis finds nothing wrong; the MIP proves there is no plan."""
    g = nx.star_graph(3)
    p = Problem(g, np.ones(4), np.array([2.0, 2.0]), 0.0, DenseTravelTimes(np.ones((4, 4)) - np.eye(4)))
    for contiguity in ("flow", "cuts", "shortest_path"):
        with pytest.raises(InfeasibleError, match="proves that no plan with connected sectors"):
            exact_solve(p, time_limit_s=10, contiguity=contiguity)


def test_separators_cut_off_a_disconnected_sector():
    g = nx.path_graph(5)
    # sector 0 = {0, 4} with centre 0: piece {4} is cut off by unit 3
    cuts = separators(g, np.array([0, 1, 1, 1, 0]), np.array([0, 2]))
    assert (0, [4], [3]) in [(j, s.tolist(), c.tolist()) for j, s, c in cuts]


def _grid16() -> Problem:
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(4, 4), ordering="sorted")
    xy = np.array([(i // 4, i % 4) for i in range(16)], dtype=float)
    w = np.random.default_rng(5).integers(1, 10, 16).astype(float)
    return Problem(g, w, np.full(2, w.sum() / 2), 0.1, DenseTravelTimes(np.abs(xy[:, None] - xy[None]).sum(-1) * 10))


def test_set_partitioning_gets_the_time_the_list_leaves(monkeypatch):
    """The district list gets its own share, CP-SAT what is left of ``exact_partition_share``;
    a plan CP-SAT could not prove is kept with its bound, and without one the MIP decides."""
    import solvers.exact.backend as backend
    from solvers.exact.districts import PartitionResult

    p = _grid16()
    seen = {}

    def fake(*args, status="feasible", **kwargs):
        seen.update(kwargs)
        proven = real(*args, **kwargs)
        if status == "unknown":
            return PartitionResult("unknown", None, None, None, None, proven.n_districts, 0.0, 0.0,
                                   reason="CP-SAT UNKNOWN within the time limit")
        return PartitionResult("feasible", proven.assignment, proven.centres, proven.objective,
                               0.9 * proven.objective, proven.n_districts, 0.0, 0.0,
                               reason="time limit before CP-SAT proved optimality")

    real = backend.partition
    monkeypatch.setattr(backend, "partition", fake)
    sol = solve(p, backend="exact", time_limit_s=40)
    settings = EngineSettings()
    assert seen["list_time_limit_s"] == pytest.approx(min(settings.exact_enumeration_share * 40,
                                                          settings.exact_enumeration_max_s))
    assert seen["time_limit_s"] == pytest.approx(max(settings.exact_partition_share, settings.exact_enumeration_share) * 40)
    assert sol.backend == "enumeration" and sol.status == "feasible" and check_plan(p, sol.assignment) == []
    assert sol.bound == pytest.approx(0.9 * sol.objective) and "its plan and bound are kept" in "\n".join(sol.log)
    monkeypatch.setattr(backend, "partition", lambda *a, **k: fake(*a, status="unknown", **k))
    sol = solve(p, backend="exact", time_limit_s=40)
    assert sol.backend == "exact" and sol.status == "optimal" and check_plan(p, sol.assignment) == []


def test_engine_exact_backend_proves_its_plan():
    p = _grid16()
    g, w = p.graph, p.workload
    sol = solve(p, backend="exact", time_limit_s=20, settings=MIP_ONLY)
    heuristic = solve(p, backend="heuristic", time_limit_s=2)
    assert sol.status == "optimal" and sol.backend == "exact" and sol.gap < 1e-5
    listed = solve(p, backend="exact", time_limit_s=20)  # 16 units: by district enumeration
    assert listed.backend == "enumeration" and listed.objective == pytest.approx(sol.objective, rel=1e-9)
    assert check_plan(p, sol.assignment) == []
    assert sol.objective <= heuristic.objective + 1e-9
    with pytest.raises(ValueError, match="pmedian"):
        solve(Problem(g, w, p.targets, 0.1, p.travel, objective="base", base_travel=np.zeros((2, 16))),
              backend="exact", time_limit_s=5)


@pytest.mark.skipif(not (VALIDI / "instances_hess.csv").exists(), reason="published instances not available")
def test_published_county_optimum_is_reproduced():
    """New Mexico counties (n = 33, k = 3, ±0.5 %): published contiguous optimum 32,944.25."""
    spec = importlib.util.spec_from_file_location("bench_validi", Path(__file__).parents[1] / "benchmarks/bench_validi.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_validi", bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    rows = pd.read_csv(VALIDI / "instances_hess.csv", dtype={"fips": str}).set_index("instance", drop=False)
    inst = bench.load_instance(VALIDI, rows.loc["NM_county"])
    sol = exact_solve(inst.problem, time_limit_s=18)
    valid, objective, _ = bench.recheck(inst, sol.assignment)
    assert valid and sol.status == "optimal"
    assert objective == pytest.approx(inst.published, rel=0.005)
    assert sol.bound == pytest.approx(inst.published, rel=0.005)


@settings(max_examples=10, deadline=None)
@given(problem=grid_problems(diagonal=True, squared=True))
def test_auto_proves_small_problems_like_the_exact_backend(problem):
    """Up to ``auto_exact_max_units`` units the default backend is the exact one: the proven
    optimum (status, bound, zero gap) or a proof that no contiguous plan exists."""
    problem = dataclasses.replace(problem, targets=np.full(problem.k, problem.targets.sum() / problem.k))
    expected = contiguous_optimum(problem)
    if np.isinf(expected):
        with pytest.raises(InfeasibleError):
            solve(problem, backend="auto", time_limit_s=10)
        return
    sol = solve(problem, backend="auto", time_limit_s=10)
    assert sol.log[0].startswith("auto: ") and "exact backend" in sol.log[0]
    assert sol.status == "optimal" and check_plan(problem, sol.assignment) == []
    assert sol.objective == pytest.approx(expected, rel=1e-6) and sol.gap < 1e-6


def test_auto_proves_the_star_has_no_plan():
    """The star of :func:`test_infeasible_only_the_mip_can_tell`: ``auto`` proves it too, instead of
    reporting that its search found nothing."""
    g = nx.star_graph(3)
    p = Problem(g, np.ones(4), np.array([2.0, 2.0]), 0.0, DenseTravelTimes(np.ones((4, 4)) - np.eye(4)))
    with pytest.raises(InfeasibleError) as caught:
        solve(p, backend="auto", time_limit_s=10)
    assert "found in" not in str(caught.value)  # a proof, not a search that gave up


def test_auto_hands_a_problem_without_a_balanced_start_to_the_exact_backend():
    """A star of 71 units (above the 60 of the district list): the heuristic finds no balanced
    plan, and ``auto`` gives the time left to the exact MIP, which proves there is none."""
    n = 71
    xy = np.c_[np.cos(np.arange(n)), np.sin(np.arange(n))]
    xy[0] = 0.0
    minutes = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1)) * 10
    p = Problem(nx.star_graph(n - 1), np.ones(n), np.array([35.5, 35.5]), 0.02, DenseTravelTimes(minutes))
    lines: list[str] = []
    with pytest.raises(InfeasibleError, match="proves that no plan"):
        solve(p, backend="auto", time_limit_s=20, progress=lines.append)
    assert any("the exact backend decides" in line for line in lines)
