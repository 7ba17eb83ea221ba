"""Tiny districting problems for property tests, and brute force over every plan.

Shared by the tests of the exact backend, of the lower bound and of the cut-edges objective.
"""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
from hypothesis import strategies as st

from solvers.check import check_plan
from solvers.options import EngineSettings
from solvers.problem import DenseTravelTimes, Problem


def brute_force(problem: Problem) -> tuple[float, float]:
    """``(best balanced plan ignoring contiguity, best contiguous balanced plan)`` over every
    assignment; each sector measured from its best member; ``inf`` when there is none."""
    n, k = problem.n, problem.k
    minutes = problem.travel.rows(np.arange(n))
    w, load = problem.weights, np.asarray(problem.workload, dtype=float)
    lo, hi = problem.lower - 1e-9, problem.upper + 1e-9
    any_plan = contiguous = np.inf
    for combo in itertools.product(range(k), repeat=n):
        a = np.array(combo)
        loads = np.bincount(a, weights=load, minlength=k)
        if (loads < lo).any() or (loads > hi).any() or len(np.unique(a)) < k:
            continue
        cost = sum((minutes[np.ix_(m, m)] @ w[m]).min() for m in (np.flatnonzero(a == s) for s in range(k)))
        any_plan = min(any_plan, cost)
        if cost < contiguous and not check_plan(problem, a):
            contiguous = cost
    return any_plan, contiguous


def brute_force_cut_edges(problem: Problem, weight: str | None = None) -> float:
    """Fewest cut edges (or summed edge attribute ``weight``) over every balanced contiguous
    plan that keeps the locks, by enumeration; ``inf`` when there is none."""
    n, k = problem.n, problem.k
    edges = np.array(list(problem.graph.edges), dtype=np.intp)
    costs = np.array([d.get(weight, 1) if weight else 1 for *_, d in problem.graph.edges(data=True)], dtype=float)
    load = np.asarray(problem.workload, dtype=float)
    lo, hi = problem.lower - 1e-9, problem.upper + 1e-9
    best = np.inf
    for combo in itertools.product(range(k), repeat=n):
        a = np.array(combo)
        loads = np.bincount(a, weights=load, minlength=k)
        if (loads < lo).any() or (loads > hi).any() or len(np.unique(a)) < k:
            continue
        cut = float(costs[a[edges[:, 0]] != a[edges[:, 1]]].sum())
        if cut < best and not check_plan(problem, a):
            best = cut
    return best


@st.composite
def grid_problems(draw, *, diagonal: bool = False, squared: bool = False, zero_workloads: bool = False,
                  tolerances: tuple[float, ...] = (0.1, 0.25, 0.4), cost_weight: bool = False) -> Problem:
    """A connected piece of a 3 x 3 grid (5 to 9 units), 2-3 sectors with equal or unequal targets,
    integer workloads, Euclidean travel minutes.

    Options widen the draw: ``diagonal`` may add one diagonal edge, ``squared`` may use squared
    minutes, ``zero_workloads`` may give some units no workload, ``cost_weight`` may draw objective
    weights above the workloads; ``tolerances`` are the balance tolerances drawn from.
    """
    seed = draw(st.integers(0, 100_000))
    rng = np.random.default_rng(seed)
    grid = nx.grid_2d_graph(3, 3)
    if diagonal:
        grid.add_edges_from(((0, 0), (1, 1)) for _ in range(draw(st.integers(0, 1))))
    for cell in draw(st.lists(st.sampled_from(sorted(grid.nodes)), max_size=3, unique=True)):
        smaller = grid.copy()
        smaller.remove_node(cell)
        if nx.is_connected(smaller) and smaller.number_of_nodes() >= 5:
            grid = smaller
    nodes = sorted(grid.nodes)
    g = nx.relabel_nodes(grid, {c: i for i, c in enumerate(nodes)})
    n = len(nodes)
    xy = np.array(nodes, dtype=float) + rng.uniform(-0.3, 0.3, (n, 2))
    sq = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    minutes = sq * 10 if squared and draw(st.booleans()) else np.sqrt(sq) * 10
    w = rng.integers(0 if zero_workloads and draw(st.booleans()) else 1, 8, n).astype(float)
    if w.sum() == 0:
        w[0] = 1.0
    k = draw(st.integers(2, 3))
    share = np.array(draw(st.sampled_from([[1, 1, 1], [2, 1, 1], [3, 2, 1]]))[:k], dtype=float)
    tolerance = draw(st.sampled_from(list(tolerances)))
    weights = w + rng.uniform(0, 2, n) if cost_weight and draw(st.booleans()) else None
    return Problem(g, w, w.sum() * share / share.sum(), tolerance, DenseTravelTimes(minutes),
                   cost_weight=weights)


MIP_ONLY = EngineSettings(exact_enumeration_max_units=0)
"""The engine's ``"exact"`` backend without its district enumeration (which answers
every problem of at most 50 units first), so that its MIP path is what runs."""
