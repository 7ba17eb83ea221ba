"""Time the default end-to-end run: ``sectorize run`` on the packaged AURA scenario.

Each repetition runs the real command in a fresh process under
``/usr/bin/time -v`` (GNU time) and records the wall-clock time, the peak
resident memory, and the solver's own time against its configured limit
(read from the run folder's ``run.json``).

Targets on the 2-core development machine: wall time < 60 s, peak memory
< 2 GiB, solve within ``model.time_limit_s``: in work seconds with work budgets
(``model.deterministic``, the default: the wall time of the solve then depends on the
load, the work it counts does not) and the wall-time safety cap not bound; in wall
seconds otherwise. The solve's bound and gap are recorded too.

Usage::

    python benchmarks/bench_end_to_end.py [--repeat 3] [--config FILE] [--json PATH]

Prints a table (median, min, max) and writes JSON (default
``benchmarks/results/end_to_end.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, summary, write_result

ROOT = Path(__file__).resolve().parents[1]
TARGET_WALL_S = 60.0
TARGET_RSS_GIB = 2.0


def _one_run(config: Path | None, out: Path) -> dict:
    cmd = [sys.executable, "-m", "sectorize.cli", "run", "--quiet", "--out", str(out)]
    if config is not None:
        cmd += ["--config", str(config)]
    timer = shutil.which("time") or "/usr/bin/time"
    start = time.perf_counter()
    proc = subprocess.run([timer, "-v", *cmd], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"run failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    run_dir = Path((out / "LATEST").read_text(encoding="utf-8").strip())
    if not run_dir.is_absolute():
        run_dir = out / run_dir
    facts = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    solve = facts["solve"]
    return {
        "wall_s": wall,
        "peak_rss_gib": rss_kib / 2**20,
        "solve_s": float(solve["time_s"]),
        "work_s": solve.get("work_s"),
        "capped": bool(solve.get("capped", False)),
        "time_limit_s": float(solve["time_limit_s"]),
        "objective": float(solve["objective"]),
        "bound": solve.get("bound"),
        "gap": solve.get("gap"),
        "violations": len(facts.get("violations", [])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=RESULTS / "end_to_end.json")
    args = parser.parse_args()

    runs = []
    with tempfile.TemporaryDirectory(prefix="sectorize-bench-") as tmp:
        for i in range(args.repeat):
            runs.append(_one_run(args.config, Path(tmp) / f"run{i}"))
            print(f"run {i + 1}/{args.repeat}: {runs[-1]['wall_s']:.1f} s", file=sys.stderr)

    stats = {key: summary(r[key] for r in runs) for key in ("wall_s", "peak_rss_gib", "solve_s", "objective")}
    limit = runs[0]["time_limit_s"]
    checks = {
        "wall_under_60_s": stats["wall_s"]["median"] < TARGET_WALL_S,
        "peak_memory_under_2_gib": stats["peak_rss_gib"]["max"] < TARGET_RSS_GIB,
        # work budgets: the work counted within the limit and the safety cap not bound
        "solve_within_time_limit": all(
            (r["work_s"] <= limit * 1.05 and not r["capped"]) if r["work_s"] is not None
            else r["solve_s"] <= limit * 1.05 for r in runs),
        "all_plans_valid": all(r["violations"] == 0 for r in runs),
    }
    print(f"\nsectorize run ({args.config or 'packaged default'}), {args.repeat} runs, {os.cpu_count()} CPUs")
    print(f"{'measure':<22}{'median':>12}{'min':>12}{'max':>12}  target")
    rows = [
        ("wall time (s)", "wall_s", f"< {TARGET_WALL_S:g}"),
        ("peak memory (GiB)", "peak_rss_gib", f"< {TARGET_RSS_GIB:g}"),
        ("solve time (s)", "solve_s", f"<= {limit:g} (limit)"),
        ("objective", "objective", "lower is better"),
    ]
    for label, key, target in rows:
        s = stats[key]
        print(f"{label:<22}{s['median']:>12.2f}{s['min']:>12.2f}{s['max']:>12.2f}  {target}")
    works = [r["work_s"] for r in runs if r["work_s"] is not None]
    if works:
        print(f"{'solve work (work s)':<22}{statistics.median(works):>12.2f}{min(works):>12.2f}{max(works):>12.2f}"
              f"  <= {limit:g} (limit)")
    gaps = [r["gap"] for r in runs if r["gap"] is not None]
    if gaps:
        print(f"{'gap to the bound (%)':<22}{100 * statistics.median(gaps):>12.2f}{100 * min(gaps):>12.2f}"
              f"{100 * max(gaps):>12.2f}  (proven lower bound)")
    for name, ok in checks.items():
        print(f"{name:<28}{'yes' if ok else 'NO'}")
    write_result(args.json, {"runs": runs, "summary": stats, "checks": checks}, benchmark="end_to_end", script=__file__)
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
