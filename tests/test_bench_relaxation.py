"""The relaxation benchmark (``benchmarks/bench_relaxation.py``): the Lagrangian bound beside the LP."""

from __future__ import annotations

import pytest

from benchmark_scripts import load_benchmark

rel = load_benchmark("bench_relaxation")


def _row(lp, share):
    return {"instance": "X", "n": 500, "k": 4, "published_lagrangian": 100.0, "strong_lp": lp,
            "strong_lp_s": None if lp is None else 0.1, "lagrangian": 95.0, "method": "bundle",
            "lagrangian_steps": 2000, "lagrangian_share": share}


def test_table_shows_a_missing_lp_as_a_dash_and_the_share_of_the_published_bound():
    lines = rel.table([_row(100.0, 0.95), _row(None, 0.95)]).splitlines()
    assert "| X | 500 | 4 | 100.00 | 100.00 | 0.10 | 95.00 (bundle) | 2000 | 0.9500 |" == lines[2]
    assert "| X | 500 | 4 | 100.00 | — | — | 95.00 (bundle) | 2000 | 0.9500 |" == lines[3]


@pytest.mark.skipif(not (rel.DEFAULT_DATA / "instances_hess.csv").is_file(), reason="published instances not available")
def test_only_named_instances_with_the_step_cap():
    rows = rel.counties(rel.DEFAULT_DATA, bound_time=30, only="OK_county,ME_county", steps=50)
    assert [r["instance"] for r in rows] == ["ME_county", "OK_county"]
    for r in rows:
        assert r["lagrangian_steps"] <= 50 and r["max_steps"] == 50
        assert r["lagrangian"] <= r["strong_lp"] * (1 + 1e-9)  # a bound never passes the LP it relaxes
        assert r["strong_lp"] == pytest.approx(r["published_lagrangian"], abs=0.01)
