"""Sweeps on a Dask cluster of separate processes: scenarios per minute, and a worker killed mid-sweep.

The cluster is what a planner starts on the hospital network, here on
127.0.0.1: ``dask scheduler`` and ``dask worker`` as separate OS processes
(each in its own process group, with this checkout's Python), and the sweep
runs through the command line, ``sectorize sweep --scheduler tcp://...``.

The sweep: 12 variations x 2 seeds = 24 scenarios on the Ain (one
department, 391 communes, written as a user units file), 4 workers in one
group, heuristic backend, ``--time-limit`` seconds per solve (work seconds
when the solver is deterministic).

After an untimed warm-up solve, the runs: local processes (``--workers 2``,
the reference plans); Dask with 1 worker process; with 2; with 2 of which
one is killed (SIGKILL to its process group, nanny and worker) once
``--kill-after`` scenarios are done. Per run:
wall time of the ``sectorize sweep`` command (cluster start-up given apart),
scenarios per minute, rows, duplicated and missing (variation, seed) rows,
plans in the registry, task executions seen by the scheduler (a task lost
with the killed worker runs again: "re-run"), and how many plans equal the
local ones.

Usage::

    python benchmarks/bench_sweep_cluster.py [--time-limit 0.5] [--kill-after 6] [--json PATH]

Prints a Markdown table and writes JSON (default
``benchmarks/results/sweep_cluster.json``). The test
``tests/test_sweep_cluster.py`` uses the files and the cluster of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, fmt, markdown_table, write_result  # noqa: E402

#: The repository root: workers import ``sectorize`` from this checkout.
ROOT = Path(__file__).resolve().parents[1]

#: A progress line of ``sectorize sweep``: ``[3/24] reference seed 1: ok, ...``.
PROGRESS = re.compile(r"^\[(\d+)/(\d+)\] ")

#: The variations of the sweep: name and TOML inline changes (the base: 4 workers, +-10 %).
_WORKER = '{{ id = "TS{i:02d}", name = "Travailleur social {i:02d}", fte = {fte} }}'
_FOUR = ", ".join(_WORKER.format(i=i, fte=1.0) for i in range(1, 5))
_THREE = ", ".join(_WORKER.format(i=i, fte=1.0) for i in range(1, 4))
VARIATIONS = (
    ("reference", ""),
    ("tolerance 8 %", '"model.tolerance" = 0.08'),
    ("tolerance 12 %", '"model.tolerance" = 0.12'),
    ("tolerance 15 %", '"model.tolerance" = 0.15'),
    ("tolerance 20 %", '"model.tolerance" = 0.20'),
    ("three workers", f'"team.workers" = [{_THREE}]'),
    ("new 0.8 FTE worker", f'"team.workers" = [{_FOUR}, {_WORKER.format(i=5, fte=0.8)}]'),
    ("two groups", '"groups.count" = 2'),
    ("sparse weight 0.2", '"model.sparse_weight" = 0.2'),
    ("travel from Bourg", '"model.objective" = "base"'),
    ("travel from Oyonnax", '"model.objective" = "base", "team.default_base" = "01283"'),
    ("travel from Belley", '"model.objective" = "base", "team.default_base" = "01034"'),
)
SEEDS = (0, 1)


# --------------------------------------------------------------------------- the files


def write_sweep_files(folder: Path, time_limit_s: float = 0.5) -> Path:
    """Write the Ain units (GeoParquet), its scenario and the 24-scenario sweep into ``folder``.

    The units keep the AURA columns the plan tables need (``dep``,
    ``postcodes``, ``epci``, ``canton``). Returns the sweep file; the
    scenario names the units by a path relative to itself, which the loader
    makes absolute: every worker reads the units from that path.
    """
    from geodata.regions import load_aura

    folder.mkdir(parents=True, exist_ok=True)
    aura = load_aura()
    columns = ["name", "dep", "population", "postcodes", "epci", "canton", "geometry"]
    aura.units.loc[aura.units["dep"] == "01", columns].reset_index().to_parquet(folder / "ain.parquet")
    workers = "\n".join(f'[[team.workers]]\nid = "TS{i:02d}"\nname = "Travailleur social {i:02d}"\nfte = 1.0\n'
                        for i in range(1, 5))
    (folder / "ain.toml").write_text(
        'name = "Ain"\n\n[region]\nunits = "ain.parquet"\nkey = "insee"\n\n'
        f'[team]\ndefault_base = "01053"  # Bourg-en-Bresse\n\n{workers}\n[groups]\ncount = 1\n\n'
        f'[model]\nbackend = "heuristic"\ntime_limit_s = {time_limit_s}\n', encoding="utf-8")
    text = f'name = "Ain, 24 scenarios"\nbase = "ain.toml"\nseeds = {list(SEEDS)}\n'
    for name, changes in VARIATIONS:
        text += f'\n[[variations]]\nname = "{name}"\nchanges = {{ {changes} }}\n'
    path = folder / "sweep.toml"
    path.write_text(text, encoding="utf-8")
    return path


def solves() -> list[tuple[str, int]]:
    """Every (variation, seed) of the sweep, in sweep order (the task index is the position)."""
    return [(name, seed) for name, _ in VARIATIONS for seed in SEEDS]


def deterministic_mode() -> bool:
    """Whether the scenario model has ``model.deterministic`` (same scenario and seed: same plan)."""
    from sectorize.config.scenario import ModelConfig

    return "deterministic" in ModelConfig.model_fields


# --------------------------------------------------------------------------- the cluster


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _kill_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # the process leads its own group: nanny and worker die together
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class DaskProcesses:
    """A Dask scheduler and workers as separate processes on 127.0.0.1; a context manager.

    Each command (``python -m dask scheduler|worker``, this interpreter, this
    checkout first on ``PYTHONPATH``) runs in a new session, so it and its
    children (a worker's nanny and worker process) form one process group:
    :meth:`kill` and :meth:`close` signal the group. Logs go to
    ``folder/<name>.log``. Nothing is left running after :meth:`close`.
    """

    folder: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    address: str = ""

    def __enter__(self) -> DaskProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"{name}.log", "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=_environment(), cwd=ROOT,
                                       start_new_session=True)
        self.processes[name] = process
        return process

    def start_scheduler(self, timeout_s: float = 60) -> str:
        """Start ``dask scheduler`` on a free port; return its address (read from the scheduler file)."""
        path = self.folder / "scheduler.json"
        process = self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                            "--scheduler-file", str(path)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"dask scheduler exited ({process.returncode}): {self.log('scheduler')}")
            try:
                self.address = json.loads(path.read_text())["address"]
                return self.address
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                time.sleep(0.1)
        raise TimeoutError(f"no scheduler file after {timeout_s} s: {self.log('scheduler')}")

    def add_worker(self, name: str) -> subprocess.Popen:
        """Start ``dask worker`` (one process, one thread, no dashboard) named ``name``."""
        return self._start(name, ["worker", self.address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                                  "--name", name, "--local-directory", str(self.folder / name),
                                  "--death-timeout", "30"])

    def kill(self, name: str) -> None:
        """SIGKILL the whole process group of ``name`` (a machine that dies), and reap it."""
        process = self.processes[name]
        _kill_group(process, signal.SIGKILL)
        process.wait(timeout=30)

    def close(self) -> None:
        """Stop every process group: SIGTERM, then SIGKILL after 10 s (workers first, then the scheduler)."""
        order = sorted(self.processes, key=lambda n: n == "scheduler")
        for name in order:
            _kill_group(self.processes[name], signal.SIGTERM)
        deadline = time.monotonic() + 10
        for name in order:
            process = self.processes[name]
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _kill_group(process, signal.SIGKILL)  # also any child left in the group
            process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while self.alive() and time.monotonic() < deadline:  # children reparented to init, being reaped
            time.sleep(0.1)

    def log(self, name: str, tail: int = 3000) -> str:
        """The end of the log of ``name``."""
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def alive(self) -> list[int]:
        """Process ids still alive in the groups of this cluster (``[]`` after :meth:`close`)."""
        pids = []
        for process in self.processes.values():
            out = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout
            pids += [int(p) for p in out.split()]
        return pids


def worker_address(client: Any, name: str) -> str:
    """The address of the worker called ``name``."""
    for address, info in client.scheduler_info(n_workers=-1)["workers"].items():
        if str(info.get("name")) == name:
            return address
    raise KeyError(f"no worker named {name!r}")


# --------------------------------------------------------------------------- one sweep through the CLI


@dataclass
class SweepRun:
    """What one ``sectorize sweep`` command did."""

    returncode: int
    wall_s: float
    lines: list[str]
    stdout: str
    rows: list[dict]
    registry: Path
    out: Path


def run_cli_sweep(sweep: Path, folder: Path, args: list[str], on_progress: Callable[[int, int], None] | None = None,
                  timeout_s: float = 300) -> SweepRun:
    """Run ``sectorize sweep SWEEP --out folder/out --registry folder/plans ARGS`` in a new process.

    ``on_progress(done, total)`` is called for each progress line as it is
    printed (to kill a worker mid-sweep). Reads the rows back from the JSON
    the command writes.
    """
    out, registry = folder / "out", folder / "plans"
    command = [sys.executable, "-m", "sectorize.cli", "sweep", str(sweep), "--out", str(out),
               "--registry", str(registry), *args]
    lines: list[str] = []
    pipe: queue.Queue[str | None] = queue.Queue()
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               text=True, env=_environment(), cwd=ROOT, start_new_session=True)
    stdout: list[str] = []
    readers = [threading.Thread(target=lambda: (stdout.append(process.stdout.read())), daemon=True),
               threading.Thread(target=lambda: ([pipe.put(line) for line in process.stderr], pipe.put(None)),
                                daemon=True)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                line = pipe.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"sectorize sweep still running after {timeout_s} s; stderr: {lines[-5:]}") from None
            if line is None:
                break
            lines.append(line.rstrip("\n"))
            match = PROGRESS.match(line)
            if match and on_progress is not None:
                on_progress(int(match[1]), int(match[2]))
        returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            _kill_group(process, signal.SIGKILL)
            process.wait()
    wall = time.perf_counter() - start
    for reader in readers:
        reader.join(timeout=10)
    written = sorted(out.glob("sweep-*.json"))
    rows = json.loads(written[-1].read_text())["rows"] if written else []
    return SweepRun(returncode, wall, lines, "".join(stdout), rows, registry, out)


def check_rows(run: SweepRun) -> dict:
    """Rows, duplicated and missing (variation, seed), valid plans, registry entries of a sweep run."""
    from sectorize.store.registry import Registry

    keys = Counter((r["variation"], int(r["seed"])) for r in run.rows)
    expected = set(solves())
    stored = Registry(run.registry, create=False).list() if run.registry.exists() else None
    ids = [r["plan_id"] for r in run.rows if r["plan_id"]]
    return {
        "rows": len(run.rows),
        "duplicates": sum(n - 1 for n in keys.values()),
        "missing": len(expected - set(keys)),
        "unexpected": len(set(keys) - expected),
        "ok": sum(r["status"] == "ok" for r in run.rows),
        "progress_lines": sum(bool(PROGRESS.match(line)) for line in run.lines),
        "result_files": len(list(run.out.glob("sweep-*.csv"))) + len(list(run.out.glob("sweep-*.json"))),
        "plan_ids": len(ids), "distinct_plan_ids": len(set(ids)),
        "registry_plans": 0 if stored is None else len(stored),
        "registry_ids_match": stored is not None and set(stored["id"]) == set(ids),
    }


def _assignment(stored: Any) -> Any:
    """Commune -> sector and worker of a stored plan, sorted by commune."""
    return stored.sectors[["insee", "sector", "worker_id"]].sort_values("insee").reset_index(drop=True)


def compare_plans(run: SweepRun, reference: SweepRun) -> dict:
    """How many plans of ``run`` equal those of ``reference``, (variation, seed) by (variation, seed).

    Equal: the same objective, the same commune -> worker table (from the
    two registries) and the same content hash (tables, scenario, inputs).
    Returns counts and the first differences.
    """
    from sectorize.store.registry import Registry

    mine, theirs = Registry(run.registry, create=False), Registry(reference.registry, create=False)
    ref = {(r["variation"], int(r["seed"])): r for r in reference.rows}
    same_objective = same_sectors = same_hash = compared = 0
    differences = []
    for row in run.rows:
        other = ref.get((row["variation"], int(row["seed"])))
        if other is None or not row["plan_id"] or not other["plan_id"]:
            continue
        compared += 1
        a, b = mine.get(row["plan_id"]), theirs.get(other["plan_id"])
        objective = row["objective"] == other["objective"]
        sectors = _assignment(a).equals(_assignment(b))
        same_objective += objective
        same_sectors += sectors
        same_hash += a.content_hash == b.content_hash
        if not (objective and sectors) and len(differences) < 5:
            differences.append(f"{row['variation']} seed {row['seed']}: objective {row['objective']} vs "
                               f"{other['objective']}, sectors {'equal' if sectors else 'differ'}")
    return {"compared": compared, "same_objective": same_objective, "same_sectors": same_sectors,
            "same_content_hash": same_hash, "differences": differences}


# --------------------------------------------------------------------------- the benchmark runs


def cluster_sweep(sweep: Path, folder: Path, n_workers: int, kill_after: int | None = None,
                  timeout_s: float = 300) -> tuple[SweepRun, dict]:
    """Start a scheduler and ``n_workers`` worker processes, run the sweep through ``--scheduler``,
    kill worker ``w2`` (SIGKILL, process group) once ``kill_after`` scenarios are done, stop all.

    Returns the run and facts: ``startup_s``, ``executions`` (task key ->
    names of the workers that finished it, from the scheduler's task
    stream), what ``w2`` was processing when killed (``processing_on_killed``,
    task keys), the progress count then (``done_at_kill``),
    ``seconds_after_kill``, the end of each process's log and ``orphans``
    (processes of the cluster still alive after the close: ``[]``).
    """
    from distributed import Client

    if kill_after is not None and n_workers < 2:
        raise ValueError("killing w2 needs at least 2 workers")
    facts: dict[str, Any] = {}
    start = time.perf_counter()
    with DaskProcesses(folder / "cluster") as cluster:
        cluster.start_scheduler()
        for i in range(1, n_workers + 1):
            cluster.add_worker(f"w{i}")
        with Client(cluster.address, timeout="30s") as monitor:
            monitor.wait_for_workers(n_workers, timeout=120)
            monitor.get_task_stream()  # installs the scheduler's task-stream plugin: every execution is recorded
            names = {address: str(info["name"])
                     for address, info in monitor.scheduler_info(n_workers=-1)["workers"].items()}
            facts["startup_s"] = round(time.perf_counter() - start, 2)

            def kill(done: int, total: int) -> None:
                if kill_after is None or "done_at_kill" in facts or done < kill_after:
                    return
                processing = monitor.processing()
                victim = worker_address(monitor, "w2")
                facts["processing_on_killed"] = sorted(processing.get(victim, []))
                facts["done_at_kill"] = done
                facts["kill_time"] = time.perf_counter()
                cluster.kill("w2")

            run = run_cli_sweep(sweep, folder, ["--scheduler", cluster.address], on_progress=kill,
                                timeout_s=timeout_s)
            if "kill_time" in facts:
                facts["seconds_after_kill"] = round(time.perf_counter() - facts.pop("kill_time"), 1)
            stream = monitor.get_task_stream()
        facts["executions"] = {}  # task key -> the workers (names) that finished it, in order
        for record in stream:
            if str(record["key"]).startswith("sectorize-sweep-"):
                facts["executions"].setdefault(str(record["key"]), []).append(names.get(record["worker"], "?"))
        facts["logs"] = {name: cluster.log(name, 1500) for name in cluster.processes}
    facts["orphans"] = cluster.alive()
    return run, facts


def _row(label: str, workers: int, run: SweepRun, facts: dict, equal: dict | None) -> dict:
    checks = check_rows(run)
    executions = facts.get("executions", {})
    return {
        "run": label, "workers": workers, "returncode": run.returncode, "wall_s": round(run.wall_s, 2),
        "startup_s": facts.get("startup_s"), "scenarios_per_min": round(checks["rows"] / run.wall_s * 60, 1),
        **checks,
        "executions": sum(map(len, executions.values())) if executions else None,
        "re_executed": sum(len(w) > 1 for w in executions.values()) if executions else None,
        "done_at_kill": facts.get("done_at_kill"), "processing_on_killed": facts.get("processing_on_killed"),
        "seconds_after_kill": facts.get("seconds_after_kill"),
        "equal_plans": None if equal is None else equal["same_sectors"], "compared": None if equal is None else
        equal["compared"], "same_content_hash": None if equal is None else equal["same_content_hash"],
        "differences": [] if equal is None else equal["differences"], "orphans": facts.get("orphans", []),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=0.5, help="solver seconds per scenario (default 0.5)")
    parser.add_argument("--kill-after", type=int, default=6,
                        help="kill worker w2 after this many scenarios (default 6)")
    parser.add_argument("--json", type=Path, default=RESULTS / "sweep_cluster.json")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="bench_sweep_cluster_"))
    try:
        sweep = write_sweep_files(folder / "files", args.time_limit)
        # warm-up, not timed: one solve through the command line reads the libraries into the page cache
        warm = folder / "files" / "warm-up.toml"
        warm.write_text('base = "ain.toml"\n[[variations]]\nname = "reference"\n', encoding="utf-8")
        run_cli_sweep(warm, folder / "warm-up", ["--workers", "1"])
        rows = []
        local = run_cli_sweep(sweep, folder / "local", ["--workers", "2"])
        rows.append(_row("local processes", 2, local, {}, None))
        print(f"local processes: {local.wall_s:.1f} s", file=sys.stderr, flush=True)
        for label, n, kill_after in (("dask, 1 worker", 1, None), ("dask, 2 workers", 2, None),
                                     ("dask, 2 workers, w2 killed", 2, args.kill_after)):
            run, facts = cluster_sweep(sweep, folder / label.replace(" ", "_").replace(",", ""), n, kill_after)
            rows.append(_row(label, n, run, facts, compare_plans(run, local)))
            print(f"{label}: {run.wall_s:.1f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    load_after = os.getloadavg()

    head = ["run", "workers", "start-up s", "sweep s", "scenarios/min", "rows", "dupl.", "missing", "ok",
            "plans stored", "task runs", "re-run", "plans = local"]
    table = markdown_table(head, ([
        r["run"], str(r["workers"]), fmt(r["startup_s"], ".1f"), fmt(r["wall_s"], ".1f"),
        fmt(r["scenarios_per_min"], ".1f"), str(r["rows"]), str(r["duplicates"]), str(r["missing"]), str(r["ok"]),
        str(r["registry_plans"]), "—" if r["executions"] is None else str(r["executions"]),
        "—" if r["re_executed"] is None else str(r["re_executed"]),
        "—" if r["equal_plans"] is None else f"{r['equal_plans']}/{r['compared']}",
    ] for r in rows))
    killed = rows[-1]
    note = (f"\nw2 killed after {killed['done_at_kill']}/{killed['rows']} scenarios while processing "
            f"{len(killed['processing_on_killed'] or [])} task(s); deterministic solver: {deterministic_mode()}; "
            f"load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f}")
    write_result(args.json, {
        "sweep": {"region": "Ain (01), 391 communes, user units file", "variations": [v for v, _ in VARIATIONS],
                  "seeds": list(SEEDS), "scenarios": len(solves()), "time_limit_s": args.time_limit,
                  "backend": "heuristic", "deterministic": deterministic_mode()},
        "kill_after": args.kill_after,
        "load_average_1_5_15_min": {"before": [round(x, 2) for x in load_before],
                                    "after": [round(x, 2) for x in load_after]},
        "rows": rows,
    }, benchmark="sweep_cluster", script=__file__, argv=argv)
    print(table + note)
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
