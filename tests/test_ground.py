"""Plans that make sense on the ground (issue 18): a cap on each worker's territory, units kept in
one group, the objective measured from the workers' own bases.

Tiny instances where the optimum without the cap breaks it, solved by every backend and step that
makes or changes a plan, compared with brute force (``tests/tiny.py``); the independent check; the
scenario's validation messages and translation; the default scenario (Lyon in one group).
"""

from __future__ import annotations

import time
from dataclasses import replace

import networkx as nx
import numpy as np
import pytest
from tiny import MIP_ONLY, brute_force, brute_force_cut_edges

from sectorize.config.scenario import ScenarioError, default_scenario
from solvers import solve, solve_nested
from solvers.allocation.mip import allocate
from solvers.check import check_plan, diagnose
from solvers.construct.heuristic import heuristic_solve, rebalance, neighbour_lists
from solvers.cut_edges.backend import solve_cut_edges
from solvers.cut_edges.search import improve_cut
from solvers.cut_edges.tie_break import tie_break
from solvers.exact.model import exact_solve
from solvers.lns.kicks import lns_rounds
from solvers.lns.reassign import reassign
from solvers.lns.search import improve_lns, split_pair, sub_problem
from solvers.nested import contract, group_sectors, together_sets, _groups_first, split_workers
from solvers.options import EngineSettings
from solvers.problem import DenseTravelTimes, Incumbent, InfeasibleError, Problem


def _grid(rows: int, cols: int) -> tuple[nx.Graph, DenseTravelTimes]:
    """A ``rows x cols`` grid over ``0..n-1`` (row-major) and straight-line minutes (10 per cell)."""
    cells = sorted(nx.grid_2d_graph(rows, cols).nodes)
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(rows, cols), ordering="sorted")
    xy = np.array(cells, dtype=float)
    return g, DenseTravelTimes(np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) * 10)


def two_sectors(cap: float = 6.0) -> Problem:
    """3 x 4 grid, heavy top-left block: the best plan without a cap has sectors of 4 and 8 units
    (objective 300.64); with at most 6 units a sector it is 307.15 (both found by brute force)."""
    g, t = _grid(3, 4)
    w = np.array([9, 9, 1, 1, 9, 9, 1, 1, 1, 1, 1, 1], dtype=float)
    return Problem(g, w, np.full(2, w.sum() / 2), 0.25, t, size=np.ones(12), max_size=np.full(2, cap),
                   size_unit="communes")


def three_sectors(cap: float = 4.0) -> Problem:
    """3 x 3 grid, 3 sectors: without a cap the best plan has sectors of 5, 2 and 2 units (220.71);
    with at most 4 units a sector it is 228.99."""
    g, t = _grid(3, 3)
    w = np.array([3, 8, 7, 2, 6, 7, 2, 2, 4], dtype=float)
    return Problem(g, w, np.full(3, w.sum() / 3), 0.3, t, size=np.ones(9), max_size=np.full(3, cap),
                   size_unit="communes")


def uncapped(problem: Problem) -> Problem:
    return replace(problem, size=None, max_size=None)


def sizes(problem: Problem, assignment) -> list[int]:
    return np.bincount(np.asarray(assignment), minlength=problem.k).tolist()


# --------------------------------------------------------------------------- the instances


def test_the_cap_binds_on_the_instances():
    """Brute force: without the cap the optimum breaks it; with it, a costlier optimum keeps it."""
    for problem, free_best, capped_best in ((two_sectors(), 300.6449510224598, 307.14776642118863),
                                            (three_sectors(), 220.71067811865476, 228.99494936611666)):
        assert brute_force(uncapped(problem))[1] == pytest.approx(free_best)
        assert brute_force(problem)[1] == pytest.approx(capped_best)
        assert capped_best > free_best + 1


# --------------------------------------------------------------------------- the problem and the check


def test_check_flags_a_territory_over_its_cap():
    p = two_sectors()
    plan = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1])  # the unconstrained optimum: 4 and 8 units
    assert not check_plan(uncapped(p), plan)
    problems = check_plan(p, plan)
    assert problems == ["sector 1 territory 8 communes is above its cap of 6 communes (+33.3%)"]


def test_problem_refuses_half_a_cap():
    p = two_sectors()
    with pytest.raises(ValueError, match="together"):
        replace(p, max_size=None)
    with pytest.raises(ValueError, match="max_size must be"):
        replace(p, max_size=np.ones(3))
    with pytest.raises(ValueError, match="size must be"):
        replace(p, size=-np.ones(12))


def test_diagnose_proves_caps_too_small():
    p = two_sectors(cap=5.0)  # 12 units, 2 x 5 units of cap
    assert any("above the summed territory caps" in m for m in diagnose(p))
    with pytest.raises(InfeasibleError, match="territory caps"):
        solve(p, backend="heuristic", time_limit_s=1)
    big = replace(two_sectors(), size=np.r_[7.0, np.ones(11)], max_size=np.full(2, 20.0))
    assert not diagnose(big)
    assert any("alone covers 7" in m for m in diagnose(replace(big, max_size=np.full(2, 6.5))))


# --------------------------------------------------------------------------- every backend


@pytest.mark.parametrize("backend", ["heuristic", "mip", "auto", "lns"])
def test_search_backends_keep_the_cap(backend):
    for problem in (two_sectors(), three_sectors()):
        sol = solve(problem, backend=backend, time_limit_s=2, seed=1)
        assert not check_plan(problem, sol.assignment)
        assert max(sizes(problem, sol.assignment)) <= problem.max_size.max()
        assert sol.objective >= brute_force(problem)[1] - 1e-6


@pytest.mark.parametrize("settings", [EngineSettings(), MIP_ONLY], ids=["enumeration", "mip"])
def test_exact_backend_finds_the_capped_optimum(settings):
    for problem in (two_sectors(), three_sectors()):
        best = brute_force(problem)[1]
        sol = solve(problem, backend="exact", time_limit_s=20, settings=settings)
        assert sol.status == "optimal"
        assert sol.objective == pytest.approx(best)
        assert not check_plan(problem, sol.assignment)
        # the bound ignores nothing it should not: it never exceeds the capped optimum
        assert sol.bound <= best + 1e-6


def test_exact_mip_with_unequal_caps_is_the_brute_force_optimum():
    problem = replace(two_sectors(), max_size=np.array([5.0, 7.0]))
    best = brute_force(problem)[1]
    assert best > brute_force(uncapped(problem))[1]
    sol = exact_solve(problem, time_limit_s=20)
    assert sol.status == "optimal" and sol.objective == pytest.approx(best)
    assert sizes(problem, sol.assignment)[0] <= 5


def test_exact_proves_a_cap_infeasible():
    """Each sector at most 5 units but a balanced contiguous plan needs one of 6 or more."""
    g, t = _grid(1, 10)
    w = np.r_[np.full(5, 10.0), np.ones(5)]  # caseload 50 on the left half, 5 on the right
    p = Problem(g, w, np.full(2, w.sum() / 2), 0.1, t, size=np.ones(10), max_size=np.full(2, 5.0))
    assert not diagnose(p)  # nothing obvious: 10 units, 2 x 5 of cap
    with pytest.raises(InfeasibleError):
        solve(p, backend="exact", time_limit_s=10)


def test_allocation_mip_keeps_the_cap():
    p = two_sectors()
    free = allocate(uncapped(p), np.array([0, 11]))
    assert max(sizes(p, free.assignment)) > 6  # the unconstrained allocation breaks the cap
    capped = allocate(p, np.array([0, 11]))
    assert capped.assignment is not None and not check_plan(p, capped.assignment)
    assert capped.objective > free.objective
    assert allocate(replace(p, max_size=np.full(2, 5.5)), np.array([0, 11])).status == "infeasible"


def test_pair_mip_keeps_the_cap():
    p = two_sectors()
    units = np.arange(12)
    sub = sub_problem(p, units, (0, 1))
    assert sub.max_size.tolist() == [6.0, 6.0]
    start = np.array([0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1])  # 6 and 6 units, the capped optimum
    assert not check_plan(sub, start)
    centres = np.array([0, 4])
    free = split_pair(uncapped(sub), centres, deadline=time.monotonic() + 10, hint=start)
    capped = split_pair(sub, centres, deadline=time.monotonic() + 10, hint=start)
    assert sizes(p, free) == [4, 8]  # the best split for these centres without the cap breaks it
    assert capped is not None and not check_plan(sub, capped) and sizes(p, capped) == [6, 6]
    cost = lambda side: sub.objective_value(side, centres)  # noqa: E731
    assert cost(capped) > cost(free)


def test_triple_mip_keeps_the_cap():
    p = three_sectors()
    start = np.array([0, 0, 1, 0, 2, 1, 0, 2, 2])  # 4, 2 and 3 units: the costliest valid capped plan
    assert not check_plan(p, start)
    centres = np.array([6, 2, 8])
    free = reassign(uncapped(p), centres, start, deadline=time.monotonic() + 10)
    capped = reassign(p, centres, start, deadline=time.monotonic() + 10)
    assert max(sizes(p, free)) > 4
    assert capped is not None and not check_plan(p, capped)


def test_lns_and_kicks_keep_the_cap():
    p = three_sectors()
    start = np.array([0, 0, 1, 0, 2, 1, 0, 2, 2])  # the costliest valid capped plan (249.57)
    free = improve_lns(uncapped(p), start, np.array([0, 2, 8]), time_limit_s=5)
    assert max(sizes(p, free[0])) > 4  # without the cap, LNS breaks it
    a, c, obj, _ = improve_lns(p, start, np.array([0, 2, 8]), time_limit_s=5)
    assert not check_plan(p, a) and brute_force(p)[1] - 1e-6 <= obj < p.objective_value(start, np.array([0, 2, 8]))
    from solvers.allocation.loop import lp_screen
    plan = lns_rounds(p, Incumbent(start, np.array([0, 2, 8]), p.objective_value(start, np.array([0, 2, 8])), "x"),
                      seed=0, heuristic_share=0.5, deadline=time.monotonic() + 4, log=[], say=lambda line: None,
                      screen=lp_screen)
    assert not check_plan(p, plan.assignment)


def test_rebalance_sheds_territory_over_the_cap():
    """A plan balanced in caseload but over its cap: the rebalancing moves units (some without
    caseload) until every territory fits."""
    g, t = _grid(1, 8)
    w = np.array([5, 0, 0, 0, 0, 0, 0, 5], dtype=float)  # caseload at both ends only
    p = Problem(g, w, np.full(2, 5.0), 0.0, t, size=np.ones(8), max_size=np.full(2, 4.0))
    a = np.array([0, 1, 1, 1, 1, 1, 1, 1])  # 5 and 5, but 1 and 7 units
    assert rebalance(p, a, np.array([0, 7]), neighbour_lists(p), np.random.default_rng(0), time.monotonic() + 5)
    assert a.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    sol = heuristic_solve(p, time_limit_s=1)
    assert not check_plan(p, sol.assignment)


def test_cut_edges_backends_keep_the_cap():
    p = replace(two_sectors(), objective="cut_edges")
    best = brute_force_cut_edges(p)
    assert best > brute_force_cut_edges(uncapped(p))
    for backend in ("heuristic", "exact"):
        sol = solve_cut_edges(p, backend=backend, time_limit_s=5)
        assert not check_plan(p, sol.assignment)
    assert solve_cut_edges(p, backend="exact", time_limit_s=5).objective == best
    a, cut = improve_cut(p, np.array([0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1]))
    assert not check_plan(p, a)


def test_tie_break_keeps_the_cap():
    """With a loose slack the fewest cut edges would break the cap: the tie-break keeps it."""
    g, t = _grid(2, 4)
    p = Problem(g, np.ones(8), np.array([4.0, 4.0]), 0.5, DenseTravelTimes(np.zeros((8, 8))),
                size=np.ones(8), max_size=np.array([4.0, 4.0]))
    start = np.array([0, 0, 0, 1, 0, 1, 1, 1])  # 4 cut edges
    free = tie_break(uncapped(p), start, np.array([0, 7]), slack=1.0)
    capped = tie_break(p, start, np.array([0, 7]), slack=1.0)
    assert max(sizes(p, free.assignment)) > 4 or free.edges_after <= 2
    assert not check_plan(p, capped.assignment) and capped.edges_after <= capped.edges_before
    assert max(sizes(p, capped.assignment)) <= 4


def test_engine_tie_break_keeps_the_cap():
    p = two_sectors()
    sol = solve(p, backend="heuristic", time_limit_s=2, tie_break_slack=0.5)
    assert not check_plan(p, sol.assignment)


# --------------------------------------------------------------------------- nested: caps and groups


def test_solve_nested_passes_the_caps_to_every_sector():
    g, t = _grid(4, 4)
    w = np.r_[np.full(4, 6.0), np.ones(12)]  # heavy first row
    sol = solve_nested(g, w, t, np.ones(4), 2, tolerance=0.3, group_tolerance=0.2, backend="heuristic",
                       time_limit_s=3, size=np.ones(16), max_size=np.full(4, 5.0), size_unit="communes")
    assert max(np.bincount(sol.sector, minlength=4)) <= 5


def test_group_sectors_keeps_a_set_in_one_group():
    g = nx.path_graph(4)
    sector = np.array([0, 1, 2, 3])
    assert group_sectors(g, sector, np.ones(4), np.ones(4), 2, 0.0).tolist() == [0, 0, 1, 1]  # splits 1 and 2
    kept = group_sectors(g, sector, np.ones(4), np.ones(4), 2, 0.0, together=[np.array([1, 2])])
    assert kept[1] == kept[2] and len(set(kept.tolist())) == 2
    # fixed groups that put the sectors of units 1 and 2 apart leave no grouping
    assert group_sectors(g, sector, np.ones(4), np.ones(4), 2, 0.0, fixed=[None, 0, 1, None],
                         together=[np.array([1, 2])]) is None


def test_together_sets_are_checked():
    g = nx.path_graph(5)
    with pytest.raises(ValueError, match="not connected"):
        together_sets(g, [[0, 2]])
    with pytest.raises(ValueError, match="merge"):
        together_sets(g, [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="outside"):
        together_sets(g, [[4, 5]])
    assert [s.tolist() for s in together_sets(g, [[3, 2]])] == [[2, 3]]


def test_groups_first_keeps_a_set_whole():
    """The groups-first fallback merges each set into one node of its group-level graph."""
    g, t = _grid(2, 4)
    w = np.ones(8)
    together = together_sets(g, [[1, 2, 5, 6]])  # the middle 2 x 2 block
    merged = contract(g, together, w)
    assert merged.m == 5 and merged.total(w).max() == 4
    fte = np.ones(2)
    nested = _groups_first(g, w, t, fte, split_workers(fte, 2), tolerance=0.5, group_tolerance=0.5,
                           objective="pmedian", base_travel=None, cost_weight=None, labels=None,
                           wlabels=("w0", "w1"), glabels=("A", "B"), backend="heuristic", time_limit_s=2,
                           seed=0, say=lambda line: None, together=together)
    assert len(set(nested.group[[1, 2, 5, 6]].tolist())) == 1


# --------------------------------------------------------------------------- the scenario


@pytest.mark.parametrize("changes, message", [
    ({"model.territory_factor": 0.5}, "model.territory_factor: must be >= 1"),
    ({"model.territory_factor": 3.0, "model.territory_per_fte": 500}, "not both"),
    ({"model.territory_measure": "none", "model.territory_per_fte": 500}, "has no effect"),
    ({"model.territory_per_fte": 0}, "model.territory_per_fte: must be > 0"),
    ({"model.territory_measure": "epci"}, "model.territory_measure"),
    ({"groups.keep_together": [["69381"], ["69381", "69382"]]}, "already in keep_together[0]"),
    ({"groups.keep_together": [[]]}, "groups.keep_together[0]: an empty set"),
])
def test_scenario_explains_bad_ground_settings(changes, message):
    with pytest.raises(ScenarioError) as err:
        default_scenario().with_(**changes)
    assert message in str(err.value)


def test_objective_auto_reads_the_team():
    s = default_scenario()
    assert s.model.objective == "auto" and s.model.resolve_objective(s.team) == "pmedian"  # one shared base
    homes = ["69383", "69266", "69259", "69034", "69029", "69256", "38544", "38053", "69264", "42218", "38185"]
    own = s
    for worker, home in zip([w.id for w in s.team.workers], homes):
        own = own.with_worker(worker, base=home)
    assert own.model.resolve_objective(own.team) == "base"
    shared = own.with_worker("TS02", base="69383")  # two workers at one base
    assert shared.model.resolve_objective(shared.team) == "pmedian"
    assert own.with_(**{"model.objective": "pmedian"}).model.resolve_objective(own.team) == "pmedian"


def test_translation_of_the_ground_settings(aura):
    from sectorize.pipeline.inputs import keep_together_keys, keep_together_units, territory_caps, territory_sizes

    s = default_scenario()
    region = aura
    assert territory_sizes(s, region).sum() == len(region.units)
    area = territory_sizes(s.with_(**{"model.territory_measure": "area_km2"}), region)
    assert area.sum() == pytest.approx(region.units["area_km2"].sum())
    assert territory_sizes(s.with_(**{"model.territory_measure": "none"}), region) is None
    fte = np.array([1.0, 0.5])
    assert territory_caps(s.with_(**{"model.territory_per_fte": 300}), np.ones(10), fte).tolist() == [300, 150]
    assert territory_caps(s.with_(**{"model.territory_factor": 1.5}), np.ones(10), fte).tolist() == [10, 5]
    # Lyon whole (variant "communes"): nothing to keep together; an arrondissement code reads as Lyon
    assert keep_together_units(s, region) == []
    lyon = s.with_(**{"groups.keep_together": [["69388", "69266"]]})
    assert keep_together_keys(lyon, region.units.index) == [["69123", "69266"]]
    with pytest.raises(ScenarioError, match=r"groups.keep_together\[0\]: '99999' is not a unit"):
        keep_together_keys(s.with_(**{"groups.keep_together": [["99999"]]}), region.units.index)
    with pytest.raises(ScenarioError, match="not one connected piece"):
        keep_together_units(s.with_(**{"groups.keep_together": [["69123", "01001"]]}), region)


def test_lyon_is_kept_together_by_default(aura_lyon):
    from sectorize.pipeline.inputs import keep_together_units

    sets = keep_together_units(default_scenario(), aura_lyon)
    keys = aura_lyon.units.index
    assert [sorted(keys[i] for i in s) for s in sets] == [[f"6938{i}" for i in range(1, 10)]]


# --------------------------------------------------------------------------- the default scenario


def test_default_plan_keeps_lyon_in_one_group_and_caps_every_territory(aura_run):
    """The packaged default (the shared 8 s heuristic run): Lyon's 9 arrondissements in one group,
    every sector within its cap of 2.5 x the region's communes per FTE (the 0.5 FTE worker at most
    499 communes, an eighth of the region), every check passed."""
    _, plan = aura_run
    units, workers = plan.units, plan.workers
    assert not plan.violations
    lyon = units.loc[[f"6938{i}" for i in range(1, 10)], "group"]
    assert lyon.nunique() == 1
    communes = units.groupby("sector").size()
    caps = 2.5 * len(units) / workers["fte"].sum() * workers.set_index("sector")["fte"]
    assert (communes <= caps.reindex(communes.index) + 1e-9).all()
    half = workers.loc[workers["fte"] == 0.5, "sector"].iloc[0]
    assert communes[half] <= 499 < len(units) / 4


def test_independent_check_names_a_split_lyon_and_an_oversized_sector(aura_run):
    from sectorize.pipeline.assemble import check

    _, plan = aura_run
    broken = replace(plan, units=plan.units.copy())
    broken.units.loc["69381", "group"] = "A" if plan.units.loc["69382", "group"] == "B" else "B"
    assert any("keep_together" in v and "split between groups" in v for v in check(broken))
    tight = replace(plan, scenario=plan.scenario.with_(**{"model.territory_per_fte": 10}))
    assert any("above its territory cap" in v for v in check(tight))


def test_benchmark_reads_the_figures_from_the_plan(aura_run, aura_lyon):
    """``benchmarks/bench_ground.py``: the figures of a plan, the price against the reference, the table."""
    from benchmark_scripts import load_benchmark

    bench = load_benchmark("bench_ground")
    _, plan = aura_run
    facts = bench.ground_facts(plan, aura_lyon.units["area_km2"])
    communes = plan.units.groupby("sector").size()
    assert facts["largest_communes"] == communes.max()
    half = plan.workers.loc[plan.workers["fte"] == 0.5, "sector"].iloc[0]
    assert facts["half_fte_communes"] == communes[half] <= 499
    assert facts["lyon_one_group"] is True and facts["violations"] == []
    w = plan.units["workload"].to_numpy()
    assert facts["caseload_min_centre"] == pytest.approx(float(w @ plan.units["centre_travel_min"].to_numpy()))
    assert facts["max_travel_min"] == plan.units["travel_min"].max()
    rows = [{"variant": "all off", "reference": "all off", **facts},
            {"variant": "x", "reference": "all off", **facts, "objective": facts["objective"] * 1.1},
            {"variant": "y", "reference": "all off", "objective": None, "error": "NoPlanFoundError: ..."}]
    bench.priced(rows)
    assert rows[0]["price"] == 0 and rows[1]["price_pct"] == pytest.approx(10.0) and rows[2]["price"] is None
    text = bench.table(rows)
    assert "+10.0 %" in text and "NO PLAN" in text and text.count("\n") == 4
    assert set(bench.variants()) >= {"all off", "defaults (communes x2.5 + Lyon)", "own bases: auto (= base)"}
    assert bench.scenario_of("own bases: auto (= base)", {}, 5, 0).model.resolve_objective(
        bench.scenario_of("own bases: auto (= base)", {}, 5, 0).team) == "base"
