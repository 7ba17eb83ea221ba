"""Three-sector re-assignment with fixed centres: exact (brute force), valid, quiet."""

from __future__ import annotations

import itertools
import os
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.check import check_plan
from solvers.problem import Problem
from solvers.quiet import quiet_stdout
from solvers.lns.reassign import adjacency, cut_off, reassign
from test_lns import grid_problem


def brute_best(p, centres) -> tuple[float, list[np.ndarray]]:
    """The cheapest contiguous balanced plan with ``centres[s]`` in sector ``s``, and every valid plan."""
    cost = p.cost_rows(centres)
    plans = []
    for combo in itertools.product(range(p.k), repeat=p.n):
        a = np.array(combo)
        if all(a[c] == s for s, c in enumerate(centres)) and not check_plan(p, a):
            plans.append(a)
    best = min((float(cost[a, np.arange(p.n)].sum()) for a in plans), default=np.inf)
    return best, plans


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), tolerance=st.sampled_from([0.1, 0.3, 0.6]),
       shape=st.sampled_from([(2, 4), (3, 3)]))
def test_reassign_matches_brute_force(seed, tolerance, shape):
    p = grid_problem(*shape, 3, tolerance, seed=seed)
    rng = np.random.default_rng(seed)
    centres = rng.choice(p.n, 3, replace=False)
    best, plans = brute_best(p, centres)
    if not plans:
        return
    hint = plans[int(rng.integers(len(plans)))]
    got = reassign(p, centres, hint, deadline=time.monotonic() + 30)
    assert got is not None and check_plan(p, got) == []
    assert all(got[c] == s for s, c in enumerate(centres))
    assert float(p.cost_rows(centres)[got, np.arange(p.n)].sum()) == pytest.approx(best, rel=1e-9, abs=1e-9)


def test_reassign_keeps_locks():
    p = grid_problem(3, 3, 3, 0.6, seed=1)
    locked = Problem(p.graph, p.workload, p.targets, p.tolerance, p.travel, locked={1: 2})
    centres = np.array([0, 8, 2])
    best, plans = brute_best(locked, centres)
    hint = plans[0]
    got = reassign(locked, centres, hint, deadline=time.monotonic() + 30)
    assert got is not None and got[1] == 2 and check_plan(locked, got) == []
    assert float(locked.cost_rows(centres)[got, np.arange(9)].sum()) == pytest.approx(best)


def test_cut_off_lists_pieces_away_from_the_centre_with_their_border():
    p = grid_problem(1, 6, 2, 0.5)  # a path 0-1-2-3-4-5
    graph = adjacency(p.graph)
    assert cut_off(graph, np.array([0, 1, 2]), 0) == []
    pieces = cut_off(graph, np.array([0, 1, 4, 5]), 1)
    assert len(pieces) == 1
    assert pieces[0][0].tolist() == [4, 5] and pieces[0][1].tolist() == [3]


def test_quiet_stdout_hides_native_writes_only_inside(capfd):
    with quiet_stdout():
        os.write(1, b"hidden\n")
    os.write(1, b"shown\n")
    assert capfd.readouterr().out == "shown\n"
