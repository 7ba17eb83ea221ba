"""A sweep on a Dask cluster of separate processes, one worker killed mid-sweep.

``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 (this
checkout's Python, each command in its own process group); the 24-scenario
sweep of ``benchmarks/bench_sweep_cluster.py`` (the Ain, 391 communes, a
user units file; 0.5 s heuristic solves) runs through the command line,
``sectorize sweep --scheduler tcp://...``, as a planner runs it. Once 6
scenarios are done, worker ``w2`` (nanny and worker process) gets SIGKILL.
Dask runs its tasks again on ``w1``; the sweep must still give each
(variation, seed) exactly once, store each plan once, and the plans must be
those of a run in local processes.

And the core runs without Dask: ``sectorize run`` and a sweep in local
processes with ``dask`` and ``distributed`` made unimportable.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from benchmark_scripts import load_benchmark

KILL_AFTER = 6


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_sweep_cluster")


def _explain(run, facts=None) -> str:
    logs = "" if facts is None else "\n".join(f"--- {name}\n{log}" for name, log in facts.get("logs", {}).items())
    return f"exit {run.returncode}\nstderr:\n" + "\n".join(run.lines[-30:]) + f"\nstdout:\n{run.stdout[-3000:]}\n{logs}"


@pytest.mark.slow
def test_sweep_on_dask_processes_survives_a_killed_worker(tmp_path, bench):
    sweep = bench.write_sweep_files(tmp_path / "files", time_limit_s=0.5)
    expected = bench.solves()
    assert len(expected) == 24

    local = bench.run_cli_sweep(sweep, tmp_path / "local", ["--workers", "2"], timeout_s=240)
    assert local.returncode == 0, _explain(local)
    run, facts = bench.cluster_sweep(sweep, tmp_path / "dask", n_workers=2, kill_after=KILL_AFTER, timeout_s=240)
    assert run.returncode == 0, _explain(run, facts)  # every solve gave a valid plan
    assert run.lines[0].startswith("sweep 'Ain, 24 scenarios': 12 variation(s) x 2 seed(s) = 24 solves on Dask tcp://")

    # the kill happened mid-sweep, while w2 was working, and solves finished after it
    assert KILL_AFTER <= facts["done_at_kill"] < 24, facts.get("done_at_kill")
    assert facts["processing_on_killed"], "w2 had no task when it was killed"
    assert facts["orphans"] == [], "processes of the cluster left running"

    # every scenario once: no row lost, none duplicated; one result file pair; each plan stored once
    checks = bench.check_rows(run)
    assert checks == {
        "rows": 24, "duplicates": 0, "missing": 0, "unexpected": 0, "ok": 24, "progress_lines": 24,
        "result_files": 2, "plan_ids": 24, "distinct_plan_ids": 24, "registry_plans": 24, "registry_ids_match": True,
    }, checks
    assert [(r["variation"], int(r["seed"])) for r in run.rows] == expected  # sweep order kept
    assert bench.check_rows(local)["rows"] == 24 and all(r["status"] == "ok" for r in local.rows)

    # the tasks w2 held were run again on w1 (none lost, none failed); an execution beyond the first
    # only for a task whose first run was on w2, before it died
    executions = facts["executions"]
    prefixes = {key.rsplit("-", 1)[0] for key in executions}  # sectorize-sweep-<run id>-<task index>
    assert len(prefixes) == 1, prefixes
    prefix = prefixes.pop()
    assert sorted(executions, key=lambda k: int(k.rsplit("-", 1)[1])) == [f"{prefix}-{i}" for i in range(24)]
    for key, workers in executions.items():
        assert workers.count("w1") <= 1 and set(workers) <= {"w1", "w2"}, (key, workers)
        assert len(workers) == 1 or workers[:-1] == ["w2"] * (len(workers) - 1), (key, workers)
    held = facts["processing_on_killed"]
    assert any(executions[key][-1] == "w1" for key in held), {key: executions[key] for key in held}
    for key in held:
        variation, seed = expected[int(key.rsplit("-", 1)[1])]
        (row,) = [r for r in run.rows if (r["variation"], int(r["seed"])) == (variation, seed)]
        assert row["status"] == "ok" and row["plan_id"], row

    # the plans are those of the local run
    if bench.deterministic_mode():  # model.deterministic: the same scenario and seed give the same plan anywhere
        equal = bench.compare_plans(run, local)
        assert (equal["compared"], equal["same_objective"], equal["same_sectors"]) == (24, 24, 24), equal
        assert equal["same_content_hash"] == 24, equal
    else:  # wall-clock budgets: compare what does not depend on the machine's load
        ref = {(r["variation"], int(r["seed"])): r for r in local.rows}
        tolerance = {"tolerance 8 %": 8, "tolerance 12 %": 12, "tolerance 15 %": 15, "tolerance 20 %": 20}
        for row in run.rows:
            other = ref[(row["variation"], int(row["seed"]))]
            assert (row["status"], row["groups"], row["sectors"]) == (other["status"], other["groups"],
                                                                       other["sectors"]), (row, other)
            assert row["max_deviation_pct"] <= tolerance.get(row["variation"], 10) + 1e-6, row


#: Run in a fresh interpreter: dask and distributed cannot be imported (as when they are not installed).
_WITHOUT_DASK = """
import importlib.abc, sys

class NoDask(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("dask", "distributed"):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, NoDask())
from sectorize.cli import main

def step(argv, expected):
    code = main(argv)
    assert code == expected, (argv, code)

if __name__ == "__main__":
    import sectorize
    step(["run", "--config", sys.argv[1], "--out", sys.argv[2], "--quiet"], 0)
    step(["sweep", sys.argv[3], "--workers", "2", "--quiet"], 0)
    step(["sweep", sys.argv[3], "--scheduler", "tcp://127.0.0.1:9"], 2)
    print("loaded:", sorted({m.split(".")[0] for m in sys.modules} & {"dask", "distributed"}))
"""


def test_the_core_runs_without_dask(tmp_path, bench):
    """``sectorize run`` and a local sweep never import Dask; ``--scheduler`` without it says what to install."""
    sweep = bench.write_sweep_files(tmp_path / "files", time_limit_s=0.5)
    small = tmp_path / "files" / "one.toml"
    small.write_text('base = "ain.toml"\nseeds = [0, 1]\n[[variations]]\nname = "reference"\n', encoding="utf-8")
    script = tmp_path / "without_dask.py"
    script.write_text(textwrap.dedent(_WITHOUT_DASK), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), str(sweep.parent / "ain.toml"), str(tmp_path / "runs"),
                           str(small)], capture_output=True, text=True, timeout=180, cwd=bench.ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.strip().endswith("loaded: []"), done.stdout[-2000:]
    assert "error: --scheduler needs dask.distributed: pip install" in done.stderr
    assert len([p for p in (tmp_path / "runs").iterdir() if p.is_dir()]) == 1  # the run folder
