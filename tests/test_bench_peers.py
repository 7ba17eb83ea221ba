"""The peer benchmark (benchmarks/bench_peers.py): shared objective, independent check, quick run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from benchmark_scripts import load_benchmark
from solvers.problem import DenseTravelTimes, Problem

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_peers.py"


bench = load_benchmark("bench_peers")


def _grid_case(tolerance: float = 0.0):
    """4 x 4 grid, unit population, squared grid distances, k = 2."""
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(4, 4))  # node = 4 * row + col
    xy = np.array([(i // 4, i % 4) for i in range(16)], dtype=float)
    sq = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    problem = Problem(g, np.ones(16), np.array([8.0, 8.0]), tolerance, DenseTravelTimes(sq))
    return bench.Case("grid", problem, xy, problem.lower, problem.upper)


def test_inertia_uses_the_best_centre_of_each_sector():
    case = _grid_case()
    halves = np.array([i // 8 for i in range(16)])  # rows 0-1 | rows 2-3
    # each half is 2 x 4; best centre (0,1): column offsets 1+0+1+4 = 6 per row, rows 0 and 1 -> 6 + (6 + 4) = 16
    assert bench.inertia(case.problem, halves) == pytest.approx(2 * 16.0)
    # labels are arbitrary integers
    assert bench.inertia(case.problem, halves * 7 + 3) == pytest.approx(32.0)


def test_verdict_flags_broken_contiguity_and_balance():
    case = _grid_case()
    halves = np.array([i // 8 for i in range(16)])
    assert bench.verdict(case, halves).valid
    checker = np.array([(i // 4 + i % 4) % 2 for i in range(16)])  # same loads, not connected
    v = bench.verdict(case, checker)
    assert (v.valid, v.contiguous, v.balanced) == (False, False, True)
    uneven = np.array([0] * 9 + [1] * 7)
    v = bench.verdict(case, uneven)
    assert (v.valid, v.contiguous, v.balanced) == (False, True, False)
    assert v.max_dev_pct == pytest.approx(12.5)
    v = bench.verdict(case, np.zeros(16, int))
    assert not v.valid and v.sectors == 1


def test_ratios_only_for_valid_plans_of_the_same_instance_and_seed():
    rows = [
        {"instance": "a", "seed": 0, "method": "ours", "valid": True, "objective": 100.0, "published": 90.0},
        {"instance": "a", "seed": 0, "method": "gerrychain", "valid": True, "objective": 120.0, "published": 90.0},
        {"instance": "a", "seed": 0, "method": "skater", "valid": False, "objective": 80.0, "published": 90.0},
        {"instance": "a", "seed": 1, "method": "gerrychain", "valid": True, "objective": 110.0, "published": None},
    ]
    bench.add_ratios(rows)
    assert rows[1]["ratio_to_ours"] == pytest.approx(1.2)
    assert rows[1]["ratio_to_published"] == pytest.approx(120 / 90)
    assert rows[2]["ratio_to_ours"] is None and rows[3]["ratio_to_ours"] is None


def test_unknown_instance_is_refused_with_the_list_of_names(tmp_path):
    with pytest.raises(ValueError, match="aura-k11-5pc"):
        bench.resolve_instances("nowhere", tmp_path)
    assert bench.main(["--instances", "nowhere", "--out", str(tmp_path / "p.json")]) == 2
    assert not (tmp_path / "p.json").exists()


@pytest.mark.slow
def test_quick_run_end_to_end_writes_valid_json(tmp_path):
    missing = bench.missing_peers()
    if missing:
        pytest.skip(f"peers not installed ({', '.join(missing)}): {bench.INSTALL_HINT}")
    if not (bench.DEFAULT_DATA / "instances_hess.csv").exists():
        pytest.skip(f"no Validi instances at {bench.DEFAULT_DATA}")
    out = tmp_path / "peers.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--instances", "NM_county", "--out", str(out)],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = json.loads(out.read_text())["runs"]
    assert len(runs) == 1 and runs[0]["complete"]
    rows = runs[0]["rows"]
    assert {r["method"] for r in rows} == {"ours", "ours-heuristic", "gerrychain", "skater", "kmeans"}
    assert all(r["instance"] == "NM_county" for r in rows)
    ours = next(r for r in rows if r["method"] == "ours")
    assert ours["valid"] and ours["objective"] >= 32_944.25 - 0.01  # never below the proven optimum
    assert ours["ratio_to_published"] == pytest.approx(ours["objective"] / 32_944.25)
    for r in rows:
        if r["valid"]:
            assert r["max_dev_pct"] <= 0.5 + 1e-9 and r["contiguous"]
    assert "| NM_county | gerrychain |" in proc.stdout
