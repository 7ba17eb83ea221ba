"""The generalisation benchmark's instance families, split and verdicts (``benchmarks/bench_generalise.py``)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from benchmark_scripts import load_benchmark

gen = load_benchmark("bench_generalise")


def test_planar_family_is_seeded_planar_and_split_in_halves():
    first, again = gen.planar_cases(4), gen.planar_cases(4)
    for a, b in zip(first, again):  # the same instances on every machine
        assert a.name == b.name and np.array_equal(a.population, b.population)
        assert sorted(a.problem.graph.edges) == sorted(b.problem.graph.edges)
    for case in first:
        assert 50 <= case.problem.n <= 1000 and 2 <= case.k <= 8
        assert nx.is_connected(case.problem.graph) and nx.check_planarity(case.problem.graph)[0]
        total = case.population.sum()
        assert case.lower == np.ceil(0.995 * total / case.k) and case.upper == np.floor(1.005 * total / case.k)
    assert [c.half for c in first] == ["tuning", "held-out", "tuning", "held-out"]


def test_recheck_recomputes_the_objective_and_refuses_a_cut_district():
    case = gen.planar_cases(1)[0]
    n = case.problem.n
    ok, _ = case.recheck(np.zeros(n, dtype=int))  # one district: k - 1 empty ones, out of [L, U]
    assert not ok
    ok, value = case.recheck(np.arange(n) % case.k)  # scattered: not contiguous
    assert not ok and value > 0


@pytest.mark.parametrize("truth, row, verdict", [
    ({"status": "optimal", "objective": 100.0}, {"status": "feasible", "objective": 100.4}, "match"),
    ({"status": "optimal", "objective": 100.0}, {"status": "feasible", "objective": 101.0}, "miss"),
    ({"status": "optimal", "objective": 100.0}, {"status": "no plan", "objective": None}, "no plan"),
    ({"status": "infeasible", "objective": None}, {"status": "infeasible", "objective": None}, "proven infeasible"),
    ({"status": "infeasible", "objective": None}, {"status": "no plan", "objective": None}, "not proven"),
    (None, {"status": "feasible", "objective": 5.0}, "no truth"),
])
def test_verdicts_against_the_ground_truth(truth, row, verdict):
    assert gen.compare(row, truth)["verdict"] == verdict


def test_summary_counts_per_family_and_half():
    rows = [gen.compare({"family": "county", "half": "held-out", "n": 40, "time_s": 1.0, "status": "optimal",
                         "objective": 10.0}, {"status": "optimal", "objective": 10.0}),
            gen.compare({"family": "county", "half": "held-out", "n": 80, "time_s": 3.0, "status": "feasible",
                         "objective": 11.0}, {"status": "optimal", "objective": 10.0}),
            gen.compare({"family": "county", "half": "held-out", "n": 46, "time_s": 2.0, "status": "infeasible",
                         "objective": None}, {"status": "infeasible", "objective": None})]
    (s,) = gen.summary(rows)
    assert (s["matched"], s["optimal_known"], s["infeasible_proven"], s["infeasible_known"]) == (1, 2, 1, 1)
    assert (s["small_with_plan"], s["small_feasible"]) == (1, 1) and s["worst_ratio"] == pytest.approx(1.1)


@pytest.mark.skipif(not (gen.DEFAULT_DATA / "instances_hess.csv").exists(), reason="published instances not available")
def test_tract_family_perturbs_the_connected_tract_graphs_only():
    cases = gen.county_cases(gen.DEFAULT_DATA, 2, "tract")
    states = {c.name.split("_")[0] for c in cases}
    assert {"NH", "NV", "OK"} <= states and not {"HI", "RI"} & states  # disconnected: no contiguous plan
    assert [c.half for c in cases[:2]] == ["tuning", "held-out"] and all(c.family == "tract" for c in cases)
    nh = cases[1]
    assert nh.name == "NH_tract~1" and nh.problem.n == 295 and nh.k == 2 and 0.10 <= nh.noise <= 0.20
    # the county family is unchanged by the level argument (same seeds, same names)
    county = gen.county_cases(gen.DEFAULT_DATA, 1)
    assert county[0].name.endswith("_county~0") and all(c.family == "county" for c in county)


def test_set_changes_are_typed_engine_settings_and_bad_ones_are_named():
    assert gen.setting_changes(["auto_exact_max_units=150", "auto_lns_from_s=60", "auto_uses_lns=true"]) == {
        "auto_exact_max_units": 150, "auto_lns_from_s": 60.0, "auto_uses_lns": True}
    for bad in ("no_such_field=1", "auto_exact_max_units", "auto_exact_max_units=many"):
        with pytest.raises(SystemExit, match="--set"):
            gen.setting_changes([bad])
