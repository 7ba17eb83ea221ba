"""Same scenario, same seed, same plan? ``sectorize run`` on the default scenario, run four ways.

Work budgets (``model.deterministic = true``, the default; :mod:`solvers.budget`) count
the solve's budget in work seconds instead of wall seconds, so that the plan does not
depend on the machine or its load. This script runs the real command in fresh processes:

1. ``alone``: nothing else started by the script;
2. ``loaded``: beside two busy processes (``python -c "while True: pass"``, one per core of
   the 2-CPU development machine), killed when the run ends;
3. ``one core``: pinned to CPU 0 with ``taskset -c 0`` (skipped without ``taskset``);
4. ``wall clock``: alone with ``model.deterministic = false`` (the wall-clock budgets of
   before), for the objective's comparison.

For each it records the objective, the SHA-256 of ``sectors.csv``, the wall time of the
command and of the solve, the work seconds counted, and whether the wall-time safety cap
bound (the run's log then says "not reproducible"). The three work-budget runs must give
the same hash, without the cap binding.

**Calibration.** On a quiet machine, ``solve wall s / work s`` of the ``alone`` run is the
factor that makes one work second one wall second there:
``EngineSettings(work_costs=WorkCosts().scaled(factor))`` (or the defaults of
:class:`solvers.budget.WorkCosts` multiplied by it). The script prints it; a busy machine
inflates it.

Usage::

    python benchmarks/bench_determinism.py [--config FILE] [--time-limit S] [--ways alone,loaded,one-core,wall]
                                           [--json PATH]

Prints a table and writes JSON (default ``benchmarks/results/determinism.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, fmt, markdown_table, write_result

ROOT = Path(__file__).resolve().parents[1]
WAYS = ("alone", "loaded", "one-core", "wall")
BUSY = "while True: pass"
WORK_LINE = re.compile(r"budget: ([0-9.]+) work seconds counted")


def _config(source: Path | None, deterministic: bool, folder: Path) -> Path:
    """The scenario of the run as a TOML file: ``source`` (or the packaged default) with
    ``model.deterministic`` set."""
    from sectorize.config.scenario import default_scenario, dump_scenario, load_scenario

    scenario = load_scenario(source) if source is not None else default_scenario()
    path = folder / f"scenario-{'work' if deterministic else 'wall'}.toml"
    path.write_text(dump_scenario(scenario.with_(**{"model.deterministic": deterministic})), encoding="utf-8")
    return path


def _one_run(way: str, config: Path, out: Path, time_limit: float | None) -> dict:
    """``sectorize run`` one way; its facts (objective, hash of sectors.csv, times, work, cap)."""
    # not --quiet: the progress lines (stderr) say the work seconds counted and whether the cap bound
    cmd = [sys.executable, "-m", "sectorize.cli", "run", "--out", str(out), "--config", str(config)]
    if time_limit is not None:
        cmd += ["--time-limit", str(time_limit)]
    if way == "one-core":
        cmd = ["taskset", "-c", "0", *cmd]
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)] if way == "loaded" else []
    try:
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - start
    finally:
        for p in busy:
            p.kill()
            p.wait()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{way}: run failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    run_dir = Path((out / "LATEST").read_text(encoding="utf-8").strip())
    if not run_dir.is_absolute():
        run_dir = out / run_dir
    facts = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    solve = facts["solve"]
    log = proc.stderr.splitlines()
    work = next((float(m.group(1)) for line in reversed(log) if (m := WORK_LINE.search(line))), None)
    return {
        "way": way,
        "deterministic": way != "wall",
        "objective": float(solve["objective"]),
        "sectors_sha256": hashlib.sha256((run_dir / "sectors.csv").read_bytes()).hexdigest(),
        "wall_s": wall,
        "solve_s": float(solve["time_s"]),
        "time_limit_s": float(solve["time_limit_s"]),
        "work_s": work,
        "capped": any("wall-time safety cap" in line for line in log),
        "violations": len(facts.get("violations", [])),
        "load_before": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="scenario (default: the packaged default)")
    parser.add_argument("--time-limit", type=float, default=None, help="override model.time_limit_s")
    parser.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated subset of {', '.join(WAYS)}")
    parser.add_argument("--json", type=Path, default=RESULTS / "determinism.json")
    args = parser.parse_args(argv)
    ways = [w for w in args.ways.split(",") if w]
    unknown = set(ways) - set(WAYS)
    if unknown:
        parser.error(f"unknown ways: {', '.join(sorted(unknown))}")
    if "one-core" in ways and shutil.which("taskset") is None:
        print("taskset not found: the one-core run is skipped", file=sys.stderr)
        ways.remove("one-core")

    runs = []
    with tempfile.TemporaryDirectory(prefix="sectorize-determinism-") as tmp:
        tmp = Path(tmp)
        configs = {True: _config(args.config, True, tmp), False: _config(args.config, False, tmp)}
        for i, way in enumerate(ways):
            runs.append(_one_run(way, configs[way != "wall"], tmp / f"run{i}", args.time_limit))
            r = runs[-1]
            print(f"{way}: objective {r['objective']:,.2f}, {r['wall_s']:.1f} s, sha256 {r['sectors_sha256'][:12]}",
                  file=sys.stderr)

    work_runs = [r for r in runs if r["deterministic"]]
    hashes = {r["sectors_sha256"] for r in work_runs}
    alone = next((r for r in runs if r["way"] == "alone"), None)
    wall = next((r for r in runs if r["way"] == "wall"), None)
    checks = {
        "same_sectors_csv": len(hashes) == 1 if work_runs else None,
        "no_safety_cap": not any(r["capped"] for r in work_runs) if work_runs else None,
        "all_plans_valid": all(r["violations"] == 0 for r in runs),
        "alone_under_60_s": alone["wall_s"] < 60.0 if alone else None,
    }
    factor = alone["solve_s"] / alone["work_s"] if alone and alone["work_s"] else None
    vs_wall = (alone["objective"] / wall["objective"] - 1) if alone and wall else None
    head = ["run", "budget", "objective", "sha256 of sectors.csv", "wall s", "solve s", "work s", "cap bound", "load"]
    rows = [[r["way"], "work" if r["deterministic"] else "wall", fmt(r["objective"]), r["sectors_sha256"][:16],
             fmt(r["wall_s"], ".1f"), fmt(r["solve_s"], ".1f"), fmt(r["work_s"], ".2f"),
             "yes" if r["capped"] else "no", fmt(r["load_before"], ".1f")] for r in runs]
    print(f"\nsectorize run ({args.config or 'packaged default'}), {os.cpu_count()} CPUs")
    print(markdown_table(head, rows))
    print()
    for name, ok in checks.items():
        print(f"{name:<22}{'—' if ok is None else 'yes' if ok else 'NO'}")
    if vs_wall is not None:
        print(f"objective, work budget vs wall clock: {100 * vs_wall:+.2f} %")
    if factor is not None:
        print(f"calibration: solve wall s / work s (alone) = {factor:.3f}; on a quiet machine "
              f"WorkCosts().scaled({factor:.3f}) makes one work second one wall second")
    write_result(args.json, {"runs": runs, "checks": checks, "calibration_factor": factor,
                             "objective_vs_wall_clock": vs_wall}, benchmark="determinism", script=__file__,
                 argv=argv)
    print(f"\nwritten: {args.json}", file=sys.stderr)
    return 0 if checks["same_sectors_csv"] in (True, None) else 1


if __name__ == "__main__":
    sys.exit(main())
