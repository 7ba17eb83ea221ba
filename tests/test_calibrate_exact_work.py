"""The calibration of the exact backend's work charges (``benchmarks/calibrate_exact_work.py``): its fit
recovers known constants from recorded calls, and its recording reads the calls the backend makes."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark_scripts import load_benchmark
from solvers.budget import WorkCosts

cal = load_benchmark("calibrate_exact_work")


def synthetic_calls() -> dict:
    """MIPs whose wall seconds follow the charge with setup 0.1, iteration 2e-5 and base 3e-4 exactly,
    strong LPs at 2.5e-5 per iteration and 1,000 rows plus columns, builds at 2e-4 and 5e-4 s per pair,
    and district lists three times slower than charged."""
    rng = np.random.default_rng(0)
    mips = []
    for i in range(12):
        rows, columns, nonzeros = (int(v) for v in rng.integers(2_000, 30_000, 3))
        iterations, nodes = int(rng.integers(500, 50_000)), int(rng.integers(0, 40))
        wall = 0.1 * nonzeros / 1000 + 2e-5 * iterations * (rows + columns) / 1000 + 3e-4 * iterations
        mips.append({"case": f"c{i}", "rows": rows, "columns": columns, "nonzeros": nonzeros, "iterations": iterations,
                     "nodes": nodes, "termination": "OPTIMAL" if nodes <= 1 else "FEASIBLE", "wall_s": wall})
    lps = [{"case": "c", "iterations": it, "size": size, "wall_s": 2.5e-5 * it * size / 1000}
           for it, size in [(1_000, 8_000), (4_000, 40_000), (2_000, 20_000)]]
    builds = [{"case": "c", "contiguity": c, "pairs": pairs, "nonzeros": int(pairs * (10 if c == "cuts" else 24)),
               "wall_s": pairs * (2e-4 if c == "cuts" else 5e-4)} for c in ("cuts", "flow") for pairs in (2_000, 9_000)]
    lists = [{"case": "l", "work_s": 10.0, "wall_s": 30.0, "stopped_by_budget": True, "district_cost": 1e-6},
             {"case": "m", "work_s": 10.0, "wall_s": 5.0, "stopped_by_budget": False,  # finished: not a budget's stop
              "district_cost": 1e-6}]
    return {"instances": [], "mips": mips, "lps": lps, "builds": builds, "lists": lists}


def test_the_fit_recovers_the_constants_the_calls_follow():
    result = cal.fit(synthetic_calls(), min_nonzeros=1_000)
    fitted = result["fitted"]
    assert fitted["exact_setup"] == pytest.approx(0.1, rel=1e-6)
    assert fitted["exact_iteration"] == pytest.approx(2e-5, rel=1e-6)
    assert fitted["exact_iteration_base"] == pytest.approx(3e-4, rel=1e-6)
    assert fitted["strong_lp_iteration"] == pytest.approx(2.5e-5)
    assert fitted["exact_build"] == pytest.approx(2e-4) and fitted["flow_build_ratio"] == pytest.approx(2.5)
    assert fitted["district"] == pytest.approx(3e-6)
    assert result["roots"]["nonzeros_per_pair_cuts"] == [10.0, 10.0]
    assert all(m["fitted_s"] == pytest.approx(m["wall_s"], rel=1e-6) for m in result["mips"])
    text = cal.table(result)
    assert f"| exact_setup | {WorkCosts().exact_setup:.3g} | 0.1 |" in text and "charged / wall: median" in text


def test_recording_reads_the_exact_backends_calls():
    calls = cal.record(["grid6"], time_limit=10.0, data=cal.DEFAULT_DATA)
    assert calls["instances"][0]["outcome"] in ("optimal", "feasible")
    assert calls["mips"] and all(m["case"] == "grid6" and m["nonzeros"] > 0 for m in calls["mips"])
    assert calls["lps"] and calls["lps"][0]["iterations"] > 0
    assert {b["contiguity"] for b in calls["builds"]} <= {"cuts", "flow"} and calls["builds"]
