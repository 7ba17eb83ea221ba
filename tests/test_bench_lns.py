"""The LNS benchmark (benchmarks/bench_lns.py): its variants run on a small grid, and its table."""

from __future__ import annotations

import numpy as np

from benchmark_scripts import load_benchmark

bench = load_benchmark("bench_lns")


def test_variants_are_the_searches_before_and_after():
    names = [name for name, _ in bench.VARIANTS]
    assert names == ["pairs, whole MIPs", "pairs", "pairs + triples"]
    assert dict(bench.VARIANTS)["pairs, whole MIPs"] == {"triples": False, "fixing": False}


def test_table_shows_each_row_and_when_triples_got_below_pairs():
    rows = [
        {"start": "first kick", "how": "kick 1", "start_objective": 6952.94, "variant": "pairs", "objective": 6889.93,
         "seconds": 15.7, "pair_visits": 150, "triple_visits": 0, "accepted": 44, "converged": True,
         "below_pairs_s": None},
        {"start": "first kick", "how": "kick 1", "start_objective": 6952.94, "variant": "pairs + triples",
         "objective": 6881.95, "seconds": 51.6, "pair_visits": 253, "triple_visits": 66, "accepted": 72,
         "converged": True, "below_pairs_s": 17.1},
    ]
    text = bench.table("aura-k11-5pc", 0, rows)
    assert "| first kick (6,952.94) | pairs | 6,889.93 | 15.7 | 150 | 0 | 44 | yes |  |" in text
    assert "| first kick (6,952.94) | pairs + triples | 6,881.95 | 51.6 | 253 | 66 | 72 | yes | 17.1 |" in text


def test_fixing_and_triples_on_a_grid_give_the_rows_the_benchmark_reads(monkeypatch):
    """The benchmark's loop on a small grid problem (the AURA case replaced): one row per
    variant, the same objective with and without fixing, and triples never worse."""
    from test_lns import grid_problem
    from solvers.construct.heuristic import heuristic_solve

    p = grid_problem(8, 8, 5, 0.05, seed=2)
    assign, centres, _, _ = heuristic_solve(p, time_limit_s=10, seed=0, restarts=1)

    class Case:
        problem = p

    monkeypatch.setattr(bench, "aura_case", lambda case: Case)
    monkeypatch.setattr(bench, "starts", lambda case, seed, s: [("grid", assign, centres, "heuristic")])
    rows = bench.run_variants("grid", 0, 1.0, 60.0)
    assert [r["variant"] for r in rows] == ["pairs, whole MIPs", "pairs", "pairs + triples"]
    assert all(r["converged"] for r in rows)
    assert rows[0]["objective"] == rows[1]["objective"] and rows[0]["pair_visits"] == rows[1]["pair_visits"]
    assert rows[2]["objective"] < rows[1]["objective"] and rows[2]["triple_visits"] > 0
    assert rows[2]["below_pairs_s"] is not None and np.isfinite(rows[2]["below_pairs_s"])
