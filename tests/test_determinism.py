"""Budgets counted in work (:mod:`solvers.budget`): the same problem and seed give the same plan
alone, beside busy processes, with the wall clock slowed down, and through ``sectorize solve
--deterministic``; the wall-time safety cap says when it stopped a search.

Each solve here is cut short by its budget (the 12 x 12 grid would take longer to converge
than the budget allows), so the budget, not convergence, decides where the search stops.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from solvers import EngineSettings, NoPlanFoundError, budget, solve, solve_nested
from solvers.budget import CAP_JUMP, WallClock, WorkClock, WorkCosts
from solvers.construct import heuristic
from solvers.exact import model as exact_model
from solvers.exact.model import ROOT_NOT_STARTED, exact_solve
from solvers.problem import DenseTravelTimes, Problem

DETERMINISTIC = EngineSettings(deterministic=True)


def grid_problem(m: int = 12, k: int = 6, seed: int = 3, tolerance: float = 0.05) -> Problem:
    """An ``m x m`` rook grid with random integer workloads and Manhattan minutes, ``k`` equal sectors."""
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(m, m), ordering="sorted")
    xy = np.array(sorted(nx.grid_2d_graph(m, m).nodes), dtype=float)
    w = np.random.default_rng(seed).integers(1, 10, m * m).astype(float)
    minutes = np.abs(xy[:, None] - xy[None]).sum(-1) * 10
    return Problem(g, w, np.full(k, w.sum() / k), tolerance, DenseTravelTimes(minutes))


BUSY = "while True: pass"


def digest(assignment: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(assignment, dtype=np.int64).tobytes()).hexdigest()


def deterministic_plan(problem: Problem, *, backend: str = "auto", limit: float = 1.0, **kwargs):
    return solve(problem, backend=backend, time_limit_s=limit, seed=1, settings=DETERMINISTIC, **kwargs)


# --------------------------------------------------------------------------
# the clock itself
# --------------------------------------------------------------------------


def test_work_clock_moves_only_with_recorded_work():
    clock = WorkClock(WorkCosts(step=0.5, entry=1e-3))
    assert clock.now() == 0.0
    time.sleep(0.02)  # wall time passes, work does not
    assert clock.now() == 0.0
    clock.tick("step", 3)
    clock.tick("entry", 1000)
    clock.charge(0.25)
    assert clock.now() == pytest.approx(1.5 + 1.0 + 0.25)
    assert clock.used() == pytest.approx(2.75) and not clock.capped
    assert WorkCosts().scaled(2.0).scan == pytest.approx(2 * WorkCosts().scan)


def test_the_wall_clock_is_the_default_and_sessions_nest():
    assert isinstance(budget.current(), WallClock) and not budget.deterministic()
    with budget.session(5.0, deterministic=True) as outer:
        assert budget.current() is outer and outer.deterministic
        with budget.session(50.0, DETERMINISTIC) as inner:  # a nested solve shares the clock
            assert inner is outer
        inner_cap = outer.wall_left()
        assert inner_cap > 3 * 50.0  # extended to cover the nested budget
    assert isinstance(budget.current(), WallClock)


def test_the_safety_cap_stops_every_deadline():
    clock = WorkClock(cap_s=0.0)
    first = clock.now()
    assert clock.capped and "not reproducible" in clock.notes[0]
    deadline = first + 10.0  # a deadline set after the cap bound is past at the next reading
    assert clock.now() > deadline and clock.now() - first >= 2 * CAP_JUMP
    assert clock.used() == 0.0 and clock.wall_left() == 0.0


# --------------------------------------------------------------------------
# the same plan whatever the machine does
# --------------------------------------------------------------------------


def test_same_plan_twice_and_the_budget_binds():
    problem = grid_problem()
    first, second = deterministic_plan(problem), deterministic_plan(problem)
    assert first.deterministic and not first.capped
    assert digest(first.assignment) == digest(second.assignment)
    assert first.objective == second.objective and first.work_s == pytest.approx(second.work_s)
    # the budget decides where the search stops: a larger one goes further
    longer = deterministic_plan(problem, limit=2.0)
    assert longer.work_s > first.work_s + 0.3


@pytest.mark.parametrize("problem", [grid_problem(m=8, k=4), grid_problem()], ids=["mip-runs", "mip-too-large"])
def test_the_exact_backend_charges_the_same_work_beside_busy_processes(problem):
    """64 units: the starting plan, the bound, then a MIP that proves the optimum; 144 units:
    the same steps, but the MIP is too large for the budget left, which the work clock, not
    the wall clock, decides. The safety cap never binds."""
    quiet = deterministic_plan(problem, backend="exact", limit=3.0)
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    try:
        loaded = [deterministic_plan(problem, backend="exact", limit=3.0) for _ in range(2)]
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    assert not quiet.capped
    assert all(not run.capped and run.work_s == pytest.approx(quiet.work_s) and run.status == quiet.status
               and run.bound == quiet.bound and digest(run.assignment) == digest(quiet.assignment) for run in loaded)


def test_the_exact_mip_gets_its_nodes_after_its_expected_root():
    costs = WorkCosts()
    with budget.session(100.0, DETERMINISTIC):
        assert budget.exact_root_work(20_000) == pytest.approx(20 * costs.exact_root)
        params = budget.solve_parameters(10.0, rows=1_000, columns=2_000, integer=True, exact_nonzeros=20_000)
        per_node = costs.node_estimate_base + 2 * costs.exact_node
        assert params.node_limit == int((10.0 - 20 * costs.exact_root) / per_node)
        assert budget.solve_parameters(1.0, rows=1_000, columns=2_000, integer=True,
                                       exact_nonzeros=20_000).node_limit == 1
    with budget.session(100.0):
        assert budget.exact_root_work(20_000) == 0.0  # a wall clock stops HiGHS by its time limit


def test_an_exact_mip_whose_root_does_not_fit_the_budget_is_not_started(monkeypatch):
    """A node limit cannot stop HiGHS's root, so in work mode the exact MIP is neither built nor
    started when its expected root exceeds the budget left: the starting plan comes back
    unproven, the safety cap untouched; without a starting plan the error says why."""
    problem = grid_problem(m=6, k=3)
    hint = deterministic_plan(problem, backend="heuristic", limit=0.5).assignment
    dear = EngineSettings(deterministic=True, work_costs=WorkCosts(exact_root=1e3))
    with budget.session(20.0, dear) as clock:  # refused before it is built (the root estimated from the pairs)
        sol = exact_solve(problem, time_limit_s=20.0, hint=hint)
    assert sol.status == "feasible" and digest(sol.assignment) == digest(hint) and not clock.capped
    assert any("could not be built and solved in the time left" in line for line in sol.log)
    monkeypatch.setattr(exact_model, "NONZEROS_PER_PAIR", {"cuts": 0.0, "flow": 0.0})  # built: the loop refuses its root
    with budget.session(20.0, dear) as clock:
        sol = exact_solve(problem, time_limit_s=20.0, hint=hint)
    assert sol.status == "feasible" and digest(sol.assignment) == digest(hint) and not clock.capped
    assert any(ROOT_NOT_STARTED in line for line in sol.log)
    with budget.session(20.0, dear), pytest.raises(NoPlanFoundError, match="root is expected to take"):
        exact_solve(problem, time_limit_s=20.0)
    monkeypatch.undo()
    with budget.session(20.0, DETERMINISTIC) as clock:  # the calibrated costs let it run
        sol = exact_solve(problem, time_limit_s=20.0, hint=hint)
    assert sol.status == "optimal" and not clock.capped and not any(ROOT_NOT_STARTED in line for line in sol.log)


def test_wall_mode_is_marked_as_such():
    sol = solve(grid_problem(), backend="heuristic", time_limit_s=0.3, seed=1)
    assert not sol.deterministic and sol.work_s is None and not sol.capped


def test_same_plan_beside_two_busy_processes():
    problem = grid_problem()
    alone = deterministic_plan(problem)
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    try:
        time.sleep(0.2)
        loaded = deterministic_plan(problem)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    assert digest(loaded.assignment) == digest(alone.assignment)


def test_same_plan_when_the_machine_is_much_slower(monkeypatch):
    """Every boundary scan of the local search waits, and every progress line too: the search
    takes several times longer in wall time, and gives the same plan."""
    problem = grid_problem()
    alone = deterministic_plan(problem, backend="heuristic", limit=0.5)
    original = heuristic.Moves.boundary

    def slow_boundary(self):
        time.sleep(0.002)
        return original(self)

    monkeypatch.setattr(heuristic.Moves, "boundary", slow_boundary)
    began = time.monotonic()
    slowed = deterministic_plan(problem, backend="heuristic", limit=0.5, progress=lambda line: time.sleep(0.01))
    assert time.monotonic() - began > 0.5  # the wall clock would have cut this search short
    assert digest(slowed.assignment) == digest(alone.assignment)
    assert slowed.work_s == pytest.approx(alone.work_s)


def test_nested_plans_are_deterministic_too():
    problem = grid_problem()
    kwargs = dict(tolerance=0.08, group_tolerance=0.04, time_limit_s=1.5, seed=2, deterministic=True)
    fte = np.array([1.0, 1.0, 0.8, 0.8])
    a = solve_nested(problem.graph, problem.workload, problem.travel, fte, 2, **kwargs)
    b = solve_nested(problem.graph, problem.workload, problem.travel, fte, 2, **kwargs)
    assert a.deterministic and not a.capped and a.work_s > 0
    assert np.array_equal(a.sector, b.sector) and np.array_equal(a.group, b.group)


def test_lns_bound_does_not_run_in_a_second_process_with_a_work_budget():
    """The plan and the bound of ``"lns"`` do not depend on a process racing the search."""
    problem = grid_problem(m=8, k=3)
    settings = EngineSettings(deterministic=True, background_bound=True, background_bound_min_s=0.1)
    first = solve(problem, backend="lns", time_limit_s=1.0, seed=0, settings=settings)
    second = solve(problem, backend="lns", time_limit_s=1.0, seed=0, settings=settings)
    assert digest(first.assignment) == digest(second.assignment) and first.bound == second.bound
    assert not any("second process" in line for line in first.log)


# --------------------------------------------------------------------------
# the safety cap
# --------------------------------------------------------------------------


def test_the_wall_cap_stops_a_search_and_says_so(monkeypatch):
    """A fake wall clock jumps an hour ahead once the first plan is found: the cap binds, the
    search stops with that plan, and the solution says it is not reproducible."""
    problem = grid_problem()
    offset = [0.0]
    real = time.monotonic
    monkeypatch.setattr(budget.time, "monotonic", lambda: real() + offset[0])

    def progress(line: str) -> None:
        if "balanced plan" in line:
            offset[0] = 3600.0

    sol = deterministic_plan(problem, limit=30.0, progress=progress)
    assert sol.capped and sol.deterministic
    assert "wall-time safety cap" in sol.log[-1] and "not reproducible" in sol.log[-1]
    assert sol.work_s < 30.0


def test_a_cap_before_any_plan_names_itself():
    settings = EngineSettings(deterministic=True, wall_cap_factor=0.0, wall_cap_margin_s=0.0)
    with pytest.raises(NoPlanFoundError, match="wall-time safety cap"):
        solve(grid_problem(), backend="auto", time_limit_s=5.0, seed=0, settings=settings)


# --------------------------------------------------------------------------
# sectorize solve --deterministic
# --------------------------------------------------------------------------


def _write_grid(tmp: Path, m: int = 10) -> tuple[Path, Path]:
    keys = [f"{i + 1:05d}" for i in range(m * m)]
    w = np.random.default_rng(5).integers(1, 9, m * m)
    units = tmp / "units.csv"
    units.write_text("code;x;y;charge\n" + "".join(
        f"{k};{800_000 + 2000 * (i % m)};{6_500_000 + 2000 * (i // m)};{w[i]}\n" for i, k in enumerate(keys)),
        encoding="utf-8")
    edges = [(r * m + c, r * m + c + 1) for r in range(m) for c in range(m - 1)]
    edges += [(r * m + c, (r + 1) * m + c) for r in range(m - 1) for c in range(m)]
    edge_file = tmp / "edges.csv"
    edge_file.write_text("a,b\n" + "".join(f"{keys[a]},{keys[b]}\n" for a, b in edges), encoding="utf-8")
    return units, edge_file


def test_cli_solve_deterministic(tmp_path):
    import json

    from sectorize.cli import main

    units, edges = _write_grid(tmp_path)
    outputs = []
    for run in range(2):
        out = tmp_path / f"out{run}"
        code = main(["solve", "--quiet", "--units", str(units), "--edges", str(edges), "--key", "code",
                     "--weight", "charge", "--sectors", "4", "--tolerance", "0.05", "--time-limit", "1",
                     "--deterministic", "--out", str(out)])
        assert code == 0
        folder = out / (out / "LATEST").read_text(encoding="utf-8").strip()
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        assert summary["budget"] == "work" and summary["work_s"] > 0 and summary["capped"] is False
        outputs.append((folder / "sectors.csv").read_bytes())
    assert outputs[0] == outputs[1]
    out = tmp_path / "wall"
    assert main(["solve", "--quiet", "--units", str(units), "--edges", str(edges), "--key", "code", "--weight",
                 "charge", "--sectors", "4", "--tolerance", "0.05", "--time-limit", "0.5", "--out", str(out)]) == 0
    folder = out / (out / "LATEST").read_text(encoding="utf-8").strip()
    assert json.loads((folder / "summary.json").read_text(encoding="utf-8"))["budget"] == "wall"


def test_the_bound_never_changes_the_plan_and_is_the_same_twice():
    """With work budgets the Lagrangian bound of ``auto`` runs on a clock of its own (a second
    process, or after the search where no child process may start): the plan is the same
    whichever way the bound is computed, and the bound is the same from one run to the next."""
    p = grid_problem(12, 6, seed=5)
    forked = [solve(p, time_limit_s=10.0, seed=1, settings=DETERMINISTIC) for _ in range(2)]
    after = solve(p, time_limit_s=10.0, seed=1,
                  settings=EngineSettings(deterministic=True, background_bound=False))
    assert digest(forked[0].assignment) == digest(forked[1].assignment) == digest(after.assignment)
    assert forked[0].bound is not None and forked[0].bound == forked[1].bound
    assert after.bound is not None and after.bound <= after.objective
    assert any("computed after the search" in line for line in after.log)
