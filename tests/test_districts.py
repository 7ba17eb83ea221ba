"""District enumeration and set partitioning: brute force on tiny graphs, caps, published instances."""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import Delaunay

from solvers.check import check_partition
from solvers.exact.districts import EnumerationTimeoutError, TooManyDistrictsError, enumerate_districts, partition

VALIDI = Path(__file__).resolve().parents[1].parent / "shared/benchmarks/validi"


@st.composite
def instances(draw) -> tuple[nx.Graph, np.ndarray, float, float, int]:
    """A planar graph on 5-11 nodes (a piece of a grid or a Delaunay triangulation),
    integer workloads 0-9, k = 2-4 and bounds around ``total / k`` (often infeasible)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(5, 11))
    if draw(st.booleans()):
        g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(3, 4))
        g.remove_nodes_from(range(n, 12))
    else:
        tri = Delaunay(rng.uniform(0, 1, (n, 2)))
        g = nx.Graph()
        g.add_nodes_from(range(n))
        for simplex in tri.simplices:
            g.add_edges_from(itertools.combinations(simplex.tolist(), 2))
        for u, v in list(g.edges):  # thin it out, like long Delaunay edges between far units
            if rng.uniform() < 0.3 and g.degree(u) > 1 and g.degree(v) > 1:
                g.remove_edge(u, v)
    w = rng.integers(0, 10, n).astype(float)
    k = draw(st.integers(2, 4))
    mean = max(w.sum(), 1.0) / k
    tol = draw(st.sampled_from([0.0, 0.1, 0.3, 0.6]))
    return g, w, math.floor(mean * (1 - tol)), max(1.0, math.ceil(mean * (1 + tol))), k


def connected_sets(g: nx.Graph, w: np.ndarray, lower: float, upper: float) -> list[tuple[int, ...]]:
    """Every connected node set with workload in [lower, upper], by listing all subsets."""
    out = []
    for size in range(1, g.number_of_nodes() + 1):
        for c in itertools.combinations(range(g.number_of_nodes()), size):
            if lower <= w[list(c)].sum() <= upper and nx.is_connected(g.subgraph(c)):
                out.append(c)
    return out


def plans(g: nx.Graph, sets: list[tuple[int, ...]], k: int) -> list[list[tuple[int, ...]]]:
    """Every exact cover of the nodes by ``k`` of ``sets``."""
    by_first: dict[int, list[frozenset[int]]] = {}
    for c in sets:
        by_first.setdefault(min(c), []).append(frozenset(c))
    out: list[list[tuple[int, ...]]] = []

    def cover(left: frozenset[int], chosen: list[frozenset[int]]) -> None:
        if not left:
            if len(chosen) == k:
                out.append([tuple(sorted(c)) for c in chosen])
            return
        if len(chosen) == k:
            return
        for c in by_first.get(min(left), []):
            if c <= left:
                cover(left - c, [*chosen, c])

    cover(frozenset(g.nodes), [])
    return out


def complement_passes(g: nx.Graph, w: np.ndarray, d: tuple[int, ...], lower: float, upper: float,
                      k: int | None) -> bool:
    """The complement test of :mod:`solvers.exact.districts`, written independently."""
    rest = g.subgraph(set(g.nodes) - set(d))
    ranges = []
    for comp in nx.connected_components(rest):
        load = w[list(comp)].sum()
        ms = [m for m in range(1, len(comp) + 1) if m * lower <= load <= m * upper]
        if not ms:
            return False
        ranges.append((ms[0], ms[-1]))
    return k is None or sum(a for a, _ in ranges) <= k - 1 <= sum(b for _, b in ranges)


def plan_cost(cost: np.ndarray, plan: list[tuple[int, ...]]) -> float:
    return sum(min(cost[j, list(d)].sum() for j in d) for d in plan)


@settings(max_examples=60, deadline=None)
@given(inst=instances(), use_k=st.booleans())
def test_enumeration_matches_brute_force(inst, use_k):
    g, w, lower, upper, k = inst
    sets = connected_sets(g, w, lower, upper)
    expected = {d for d in sets if complement_passes(g, w, d, lower, upper, k if use_k else None)}
    got = enumerate_districts(g, w, lower, upper, k=k if use_k else None)
    assert len(got) == len(set(got)), "duplicates"
    assert all(list(d) == sorted(d) for d in got)
    assert set(got) == expected
    # completeness where it matters: every district of every plan is listed
    assert {d for p in plans(g, sets, k) for d in p} <= set(got)


@settings(max_examples=40, deadline=None)
@given(inst=instances(), with_cost=st.booleans())
def test_partition_matches_brute_force(inst, with_cost):
    g, w, lower, upper, k = inst
    n = g.number_of_nodes()
    all_plans = plans(g, connected_sets(g, w, lower, upper), k)
    rng = np.random.default_rng(int(w.sum() * 1000 + n))
    cost = rng.integers(0, 50, (n, n)).astype(float) * w[None, :] if with_cost else None
    res = partition(g, w, lower, upper, k, cost, time_limit_s=20)
    if not all_plans:
        assert res.status == "infeasible"
        assert res.assignment is None
        return
    assert res.status == "optimal"
    assert check_partition(g, res.assignment, w, np.full(k, lower), np.full(k, upper)) == []
    if with_cost:
        best = min(plan_cost(cost, p) for p in all_plans)
        assert res.objective == pytest.approx(best)
        assert res.bound == pytest.approx(best)
        for s in range(k):  # each centre is a member and gives the district's cost
            members = np.flatnonzero(res.assignment == s)
            assert res.assignment[res.centres[s]] == s
            assert cost[res.centres[s], members].sum() == pytest.approx(min(cost[j, members].sum() for j in members))


def test_path_example():
    assert sorted(enumerate_districts(nx.path_graph(4), np.ones(4), 2, 2, k=2)) == [(0, 1), (2, 3)]
    # without k, (1, 2) passes: each end of the path could be a district of a wider band
    assert (1, 2) not in enumerate_districts(nx.path_graph(4), np.ones(4), 2, 2)
    assert (1, 2) in enumerate_districts(nx.path_graph(4), np.ones(4), 1, 2)


def test_one_district_and_disconnected_graphs():
    res = partition(nx.path_graph(3), np.ones(3), 3, 3, 1, time_limit_s=10)
    assert res.status == "optimal" and res.assignment.tolist() == [0, 0, 0]
    two_pieces = nx.Graph([(0, 1), (2, 3)])
    assert partition(two_pieces, np.ones(4), 4, 4, 1, time_limit_s=10).status == "infeasible"
    res = partition(two_pieces, np.ones(4), 2, 2, 2, time_limit_s=10)
    assert res.status == "optimal" and res.assignment[0] == res.assignment[1] != res.assignment[2]


def test_cap_and_deadline_are_reported():
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(7, 7))
    w = np.ones(49)
    with pytest.raises(TooManyDistrictsError) as err:
        enumerate_districts(g, w, 7, 7, max_districts=10)
    assert err.value.found == 11
    with pytest.raises(EnumerationTimeoutError):
        enumerate_districts(g, w, 7, 7, deadline=time.monotonic() - 1)
    res = partition(g, w, 7, 7, 7, time_limit_s=60, max_districts=10)
    assert res.status == "unknown" and res.assignment is None
    assert "more than 10 districts" in res.reason
    res = partition(g, w, 7, 7, 7, time_limit_s=0)
    assert res.status == "unknown" and "deadline" in res.reason
    # the list's own limit: it stops the listing, however much time CP-SAT would have
    res = partition(g, w, 7, 7, 7, time_limit_s=60, list_time_limit_s=0)
    assert res.status == "unknown" and "deadline" in res.reason


def test_bad_inputs():
    g = nx.path_graph(3)
    with pytest.raises(ValueError, match="non-negative"):
        enumerate_districts(g, np.array([1.0, -1.0, 1.0]), 1, 2)
    with pytest.raises(ValueError, match="nodes"):
        enumerate_districts(g, np.ones(4), 1, 2)
    with pytest.raises(ValueError, match="lower <= upper"):
        enumerate_districts(g, np.ones(3), 2, 1)
    with pytest.raises(ValueError, match="cost"):
        partition(g, np.ones(3), 1, 2, 2, np.ones((2, 2)), time_limit_s=1)


def _validi(name: str):
    index = VALIDI / "instances_hess.csv"
    if not index.exists():
        pytest.skip("published instances not available")
    spec = importlib.util.spec_from_file_location("bench_validi", Path(__file__).parents[1] / "benchmarks/bench_validi.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_validi", bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    rows = pd.read_csv(index, dtype={"fips": str})
    return bench.load_instance(VALIDI, rows[rows["instance"] == name].iloc[0])


@pytest.mark.parametrize("name", ["NH_county", "OR_county", "SC_county"])
def test_published_infeasible_counties(name):
    inst = _validi(name)
    res = partition(inst.problem.graph, inst.population, inst.lower, inst.upper, inst.problem.k, time_limit_s=120)
    assert res.status == "infeasible", res.log


def test_published_optimum_me_county():
    inst = _validi("ME_county")
    cost = inst.population[None, :] * (inst.km / 1000) ** 2
    res = partition(inst.problem.graph, inst.population, inst.lower, inst.upper, inst.problem.k, cost,
                    time_limit_s=60)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(inst.published, abs=0.01)
