"""The kicks benchmark (benchmarks/bench_kicks.py): its summary and table from given rows."""

from __future__ import annotations

from benchmark_scripts import load_benchmark

bench = load_benchmark("bench_kicks")


def _row(rank: int, value: float | None, passed: bool) -> dict:
    return {"rank": rank, "close": 1, "split": 2, "close_cost": 900.0, "split_cost": 10.0,
            "lp_value": float("inf") if value is None else value,
            "change_pct": None if value is None else 100 * (value / 1000 - 1), "passed": passed, "seconds": rank}


def test_summary_counts_passes_and_the_first_passing_rank():
    rows = [_row(1, 1001.0, False), _row(2, None, False), _row(3, 980.0, True)]
    rows += [_row(r, 990.0, True) for r in range(4, 30)]
    stats = bench.summary(rows)
    assert stats["kicks"] == 29 and stats["passed"] == 27
    assert stats["passed_in_first_25"] == 23  # ranks 3..25
    assert stats["first_passing_rank"] == 3 and stats["no_lp"] == 1
    assert stats["median_screen_s"] == 15


def test_table_shows_every_kick_and_the_summary():
    rows = [_row(1, 1001.0, False), _row(2, None, False), _row(3, 980.0, True)]
    plan = {"case": "aura-k11-5pc", "seed": 0, "objective": 6915.5, "plan_s": 30.0, "lns": "LNS: converged",
            "reference_lp": 1000.0, "kick_screen": 0.005}
    text = bench.table(plan, rows, bench.summary(rows))
    assert "| 2 | 1 | 2 | 900 | 10 | inf | no LP | no |" in text
    assert "| 3 | 1 | 2 | 900 | 10 | 980.00 | -2.00 | yes |" in text
    assert "1 of 3 kicks passed" in text and "first passing rank 3" in text
