"""Time a 12-scenario sweep: one after another, in a local process pool, on a Dask LocalCluster.

The sweep: the packaged AURA scenario with 6 variations (reference, tolerance
5 % and 15 %, three groups, a new 0.8 FTE worker, travel from the workers'
bases) x 2 seeds, heuristic backend, ``--time-limit`` seconds per solve.

Usage::

    python benchmarks/bench_sweep.py [--workers 2] [--time-limit 3] [--json PATH]

Prints one row per executor (wall time, speed-up against the sequential run,
mean time per solve, valid plans) and writes JSON (default
``benchmarks/results/sweep.json``). The Dask wall time includes starting
and stopping the cluster (given separately as ``startup_s``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine


def twelve_scenarios(time_limit_s: float) -> dict:
    """The benchmark sweep as a dictionary (see :func:`sectorize.config.sweep.sweep_from_dict`)."""
    from sectorize.config.scenario import default_scenario

    fast = {"model.backend": "heuristic", "model.time_limit_s": time_limit_s}
    workers = [w.model_dump(exclude_none=True) for w in default_scenario().team.workers]
    newcomer = {"id": "TS12", "name": "Travailleur social 12", "fte": 0.8}
    return {"name": "bench sweep", "seeds": [0, 1], "variations": [
        {"name": "reference", "changes": dict(fast)},
        {"name": "tolerance 5 %", "changes": {**fast, "model.tolerance": 0.05}},
        {"name": "tolerance 15 %", "changes": {**fast, "model.tolerance": 0.15}},
        {"name": "three groups", "changes": {**fast, "groups.count": 3}},
        {"name": "new 0.8 FTE worker", "changes": {**fast, "team": {"workers": workers + [newcomer]}}},
        {"name": "travel from bases", "changes": {**fast, "model.objective": "base"}},
    ]}


def _facts(result, wall_s: float) -> dict:
    t = result.table
    return {
        "executor": result.executor, "wall_s": round(wall_s, 2),
        "solves": len(t), "valid": int((t["status"] == "ok").sum()),
        "mean_solve_s": round(float(t["time_s"].mean()), 2),
        "objectives": [None if v != v else round(float(v), 1) for v in t["objective"]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="processes / Dask workers (default 2)")
    parser.add_argument("--time-limit", type=float, default=3.0, help="solver seconds per scenario (default 3)")
    parser.add_argument("--json", type=Path, default=RESULTS / "sweep.json")
    args = parser.parse_args(argv)

    from distributed import Client, LocalCluster

    from sectorize.store.atomic import atomic_write_json
    from sectorize.config.sweep import sweep_from_dict
    from sectorize.pipeline.sweep import run_sweep

    sweep = sweep_from_dict(twelve_scenarios(args.time_limit))
    runs = []
    load_before = os.getloadavg()  # other work on the machine slows every executor

    start = time.perf_counter()
    result = run_sweep(sweep, workers=1)
    runs.append(_facts(result, time.perf_counter() - start))
    print(f"sequential: {runs[-1]['wall_s']:.1f} s", flush=True)

    start = time.perf_counter()
    result = run_sweep(sweep, workers=args.workers)
    runs.append(_facts(result, time.perf_counter() - start))
    print(f"processes: {runs[-1]['wall_s']:.1f} s", flush=True)

    start = time.perf_counter()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        startup = time.perf_counter() - start
        result = run_sweep(sweep, client=client)
    runs.append(_facts(result, time.perf_counter() - start) | {"startup_s": round(startup, 2)})
    print(f"dask: {runs[-1]['wall_s']:.1f} s", flush=True)

    base = runs[0]["wall_s"]
    for r in runs:
        r["speedup"] = round(base / r["wall_s"], 2)
    print()
    print(f"{'executor':<12}{'workers':>8}{'wall s':>9}{'speed-up':>10}{'s/solve':>9}{'valid':>7}")
    for r in runs:
        n = 1 if r["executor"] == "sequential" else args.workers
        print(f"{r['executor']:<12}{n:>8}{r['wall_s']:>9.1f}{r['speedup']:>10.2f}{r['mean_solve_s']:>9.1f}"
              f"{r['valid']:>4}/{r['solves']}")
    facts = {
        "sweep": {"variations": [v.name for v in sweep.variations], "seeds": sweep.seeds,
                  "time_limit_s": args.time_limit, "backend": "heuristic"},
        "workers": args.workers, "cpu_count": machine()["cpus"], "python": machine()["python"],
        "load_average_1_5_15_min": {"before": [round(x, 2) for x in load_before],
                                    "after": [round(x, 2) for x in os.getloadavg()]},
        "runs": runs,
    }
    atomic_write_json(args.json, facts)
    print(f"load average before / after (1 min): {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}")
    print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
