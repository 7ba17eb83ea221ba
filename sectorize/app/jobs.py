"""Long solver runs in the background: a re-optimisation of a draft, the annual re-run.

A solve takes from seconds to minutes; the web app must keep answering while it
runs, show its progress, and let the manager stop it. Each job therefore runs
a top-level function in its own **process** (``multiprocessing``, "spawn"
start method): cancelling is terminating that process, so nothing in the
server is left half-done (the solver holds no lock, file or registry
transaction of the server's), and a solver that blows up its memory takes only
its own process with it. The function's progress lines come back through a
:class:`multiprocessing.Queue`, read by a thread of the server.

One job runs at a time per :class:`JobRunner` by default (``workers=1``): the
solvers use both cores of the target machine (the heuristic's search and the
bound's background process), and two solves at once would each get half the
machine and finish no sooner in all. Jobs started meanwhile wait in order
(state ``"queued"``) and may be cancelled while they wait.

What the browser sees of a job (:meth:`Job.as_dict`): its state (``queued``,
``running``, ``done``, ``failed``, ``cancelled``), the seconds it has run, its
last 50 progress lines, and the solver's latest objective (``incumbent``) and
lower bound (``bound``) read from those lines. The solvers print them as
``... objective 123,456 ...``, ``objective A -> B`` (LNS: the second is kept),
``Lagrangian bound 1,234.56``, ``bound: 1,234.56``; both are in the solver's
objective units (caseload x minutes, plus the move penalties of a re-run) and
the last value seen is kept, whichever stage printed it (the groups stage and
each group's sectors solve problems of their own). A failed job reports the
exception's message only; the traceback goes to the server's log.

Job functions (:data:`JOB_FUNCTIONS`) take picklable arguments only (folders,
plan ids, lists and dicts of strings, numbers) plus ``progress``, a callable
receiving one line at a time, and return a JSON-able dict:

* :func:`reoptimise`: :func:`sectorize.pipeline.edit.edit_plan` with
  ``rebalance=True``: the draft's moves and locked communes stay, every other
  commune may move to restore balance and contiguity, moving as few patients as
  possible; the web app applies the result with
  :meth:`sectorize.app.draft.Draft.replace` (one undoable step);
* :func:`rerun_from_demand`: the annual re-run
  (:func:`sectorize.pipeline.rerun.rerun`) from the plan in force with this
  year's demand file, stored unpublished in the registry with the plan in force
  as parent.

Example
-------
>>> runner = JobRunner()                                                          # doctest: +SKIP
>>> job = runner.start("reoptimise", "reoptimise", draft.reoptimise_kwargs(folder, 20),
...                    on_done=lambda result: draft.replace(result["assignment"]))   # doctest: +SKIP
>>> runner.get(job.id).as_dict()["state"]                                         # doctest: +SKIP
'running'
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import queue
import re
import secrets
import threading
import time
import tomllib
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Progress lines returned by :meth:`Job.as_dict` (the last ones).
SHOWN_LINES = 50

#: Progress lines kept per job.
KEPT_LINES = 1000

#: Finished jobs kept by a :class:`JobRunner` (the oldest finished beyond are forgotten).
KEPT_JOBS = 200

#: Seconds a cancelled process is given to end after SIGTERM before it is killed.
TERMINATE_GRACE_S = 5.0

#: The job functions of this module by short name (:meth:`JobRunner.start` also takes
#: ``"module:function"`` or a top-level function).
JOB_FUNCTIONS = {
    "reoptimise": "sectorize.app.jobs:reoptimise",
    "rerun_from_demand": "sectorize.app.jobs:rerun_from_demand",
}

#: States of a job; the last three are final.
STATES = ("queued", "running", "done", "failed", "cancelled")

_NUMBER = r"(?>-?\d[\d,]*(?:\.\d+)?)(?![\d.,]*\d|\s*%)"
_INCUMBENT = re.compile(r"\bobjective\s+(?:-?[\d,]+(?:\.\d+)?\s*->\s*)?(" + _NUMBER + ")")
_BOUND = re.compile(r"\bbound:?\s+(" + _NUMBER + ")")


def parse_progress(line: str) -> tuple[float | None, float | None]:
    """``(incumbent, bound)`` read from one solver progress line (``None`` when absent).

    >>> parse_progress("[ 3.1 s] sectors: round 2 (seed 1): objective 1,234,567 after 3.0 s")
    (1234567.0, None)
    >>> parse_progress("LNS: ... objective 1,200.50 -> 1,150.25 (converged, 2.0 s)")
    (1150.25, None)
    >>> parse_progress("Lagrangian bound 1,100.00 after 40 subgradient steps in 2.0 s")
    (None, 1100.0)
    >>> parse_progress("kernel done: objective 1,150.25, bound 1,120.00 (4.0 s)")
    (1150.25, 1120.0)
    >>> parse_progress("tie-break: cut edges 120 -> 110, objective +0.12 % (slack 1 %)")
    (None, None)
    """
    def last(pattern: re.Pattern) -> float | None:
        found = pattern.findall(line)
        if not found:
            return None
        try:
            return float(found[-1].replace(",", ""))
        except ValueError:
            return None

    return last(_INCUMBENT), last(_BOUND)


def _message(err: BaseException) -> str:
    """The exception's message for the client (its type when it has none)."""
    text = str(err).strip()
    if isinstance(err, KeyError) and text.startswith(("'", '"')) and len(err.args) == 1:
        text = str(err.args[0])
    return text or type(err).__name__


def _resolve(function: str | Callable[..., Any]) -> Callable[..., Any]:
    """The function a job runs: a callable, ``"module:name"``, or a name of :data:`JOB_FUNCTIONS`."""
    if callable(function):
        return function
    target = JOB_FUNCTIONS.get(function, function)
    if ":" not in target:
        raise ValueError(f"job function {function!r}: give one of {sorted(JOB_FUNCTIONS)} or 'module:function'")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _child(function: str | Callable[..., Any], kwargs: dict[str, Any], channel: Any) -> None:
    """Body of a job's process: run the function, send its lines, then its result or its error."""
    def progress(line: str) -> None:
        channel.put(("line", str(line)))

    try:
        result = _resolve(function)(**kwargs, progress=progress)
        channel.put(("done", result))
    except BaseException as err:  # everything reaches the parent, even SystemExit
        channel.put(("error", _message(err), traceback.format_exc()))


class Job:
    """One background run; read it with :meth:`as_dict` (thread-safe).

    Attributes
    ----------
    id, kind
        12 hex digits; what it is (e.g. ``"reoptimise"``).
    state
        ``queued``, ``running``, ``done``, ``failed`` or ``cancelled``.
    lines
        Progress lines (the last :data:`KEPT_LINES`); the first says what is being done.
    incumbent, bound
        The latest objective and lower bound in the lines (solver units), or ``None``.
    result
        The function's dict once ``done``.
    error
        The exception's message once ``failed``.
    """

    def __init__(self, kind: str, function: str | Callable[..., Any], kwargs: Mapping[str, Any],
                 title: str | None, on_done: Callable[[dict[str, Any]], Any] | None) -> None:
        self.id = secrets.token_hex(6)
        self.kind = str(kind)
        self.function = function
        self.kwargs = dict(kwargs)
        self.on_done = on_done
        self.state = "queued"
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.lines: deque[str] = deque(maxlen=KEPT_LINES)
        self.incumbent: float | None = None
        self.bound: float | None = None
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._process: Any = None
        self._cancel = False
        self._finished = threading.Event()
        if title:
            self.lines.append(str(title))

    @property
    def final(self) -> bool:
        """Whether the job is over (``done``, ``failed`` or ``cancelled``)."""
        return self.state in ("done", "failed", "cancelled")

    @property
    def elapsed_s(self) -> float:
        """Seconds it has run (0 while queued)."""
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    def add_line(self, line: str) -> None:
        """Keep one progress line and the incumbent and bound it carries."""
        incumbent, bound = parse_progress(line)
        with self._lock:
            self.lines.append(line)
            if incumbent is not None:
                self.incumbent = incumbent
            if bound is not None:
                self.bound = bound

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is over (or ``timeout`` seconds); whether it is over."""
        return self._finished.wait(timeout)

    def as_dict(self) -> dict[str, Any]:
        """The design's job JSON: ``{"id", "kind", "state", "elapsed_s", "lines", "incumbent", "bound",
        "result", "error"}`` (``lines``: the last :data:`SHOWN_LINES`)."""
        with self._lock:
            return {"id": self.id, "kind": self.kind, "state": self.state, "elapsed_s": round(self.elapsed_s, 1),
                    "lines": list(self.lines)[-SHOWN_LINES:], "incumbent": self.incumbent, "bound": self.bound,
                    "result": self.result, "error": self.error}

    def _end(self, state: str, *, result: dict[str, Any] | None = None, error: str | None = None) -> None:
        with self._lock:
            self.state, self.result, self.error = state, result, error
            self.finished = time.time()
            if self.started is None:
                self.started = self.finished
        self._finished.set()


class JobRunner:
    """Runs jobs in background processes, ``workers`` at a time, the others queued in order.

    Thread-safe. ``close()`` (or the end of the server) terminates what still runs.

    Parameters
    ----------
    workers
        Jobs running at once (default 1: see the module).
    """

    def __init__(self, workers: int = 1) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"sectorize-jobs-{i}", daemon=True)
                         for i in range(max(1, int(workers)))]
        for thread in self._threads:
            thread.start()

    def start(self, kind: str, function_name: str | Callable[..., Any], kwargs: Mapping[str, Any], *,
              title: str | None = None, on_done: Callable[[dict[str, Any]], Any] | None = None) -> Job:
        """Queue a job and return it.

        Parameters
        ----------
        kind
            What it is, for the client (``"reoptimise"``, ``"rerun"``, ...).
        function_name
            A name of :data:`JOB_FUNCTIONS`, ``"module:function"``, or a top-level function; it is
            called in the job's process as ``function(**kwargs, progress=callable)``.
        kwargs
            Picklable arguments.
        title
            A first progress line (what is being done); job functions also say it themselves.
        on_done
            Called in the server (a thread of the runner) with the function's result dict once it
            returned, before the job shows ``done``: e.g. apply the result to a draft. It may add
            keys to the dict (e.g. the id of a draft opened on the new plan): the job's ``result``
            is that dict. If it raises, the job is ``failed`` with its message.

        Raises
        ------
        ValueError
            An unknown job function name (nothing is queued).
        RuntimeError
            The runner is closed.
        """
        if isinstance(function_name, str):
            target = JOB_FUNCTIONS.get(function_name, function_name)
            if ":" not in target:
                raise ValueError(f"job function {function_name!r}: give one of {sorted(JOB_FUNCTIONS)} or "
                                 "'module:function'")
        job = Job(kind, function_name, kwargs, title, on_done)
        with self._lock:
            if self._closed:
                raise RuntimeError("the job runner is closed")
            self._jobs[job.id] = job
            self._forget_old()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job:
        """The job ``job_id``.

        Raises
        ------
        KeyError
            No such job (the message says so).
        """
        with self._lock:
            if job_id not in self._jobs:
                raise KeyError(f"job {job_id!r} not found: it never ran here, or finished long ago "
                               "(the server keeps the last jobs only, and none across a restart)")
            return self._jobs[job_id]

    def jobs(self) -> list[Job]:
        """Every job kept, oldest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda job: job.created)

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued one never starts, a running one's process is terminated; a job
        already over is left as it is. Returns the job (its state once the process has ended).

        Raises
        ------
        KeyError
            No such job.
        """
        job = self.get(job_id)
        with job._lock:
            if job.final:
                return job
            job._cancel = True
            process = job._process
            queued = job.state == "queued"
        if queued:
            job._end("cancelled", error=None)
            job.add_line("cancelled before it started")
            return job
        if process is not None:
            _stop(process)
        job.wait(TERMINATE_GRACE_S + 5)
        return job

    def close(self) -> None:
        """Cancel every job and stop the runner's threads."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            if not job.final:
                self.cancel(job.id)
        for _ in self._threads:
            self._queue.put(None)

    # -- the worker threads

    def _forget_old(self) -> None:
        over = [job for job in self._jobs.values() if job.final]
        for job in sorted(over, key=lambda j: j.finished or 0)[: max(0, len(self._jobs) - KEPT_JOBS)]:
            del self._jobs[job.id]

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._run(job)
            except Exception as err:  # never lose the worker thread
                log.exception("job %s (%s): the runner failed", job.id, job.kind)
                if not job.final:
                    job._end("failed", error=f"the job runner failed: {_message(err)}")

    def _run(self, job: Job) -> None:
        # stays whole: start, stream the lines, then settle the state from what came back
        channel = self._context.Queue()
        process = self._context.Process(target=_child, args=(job.function, job.kwargs, channel), daemon=True,
                                        name=f"sectorize-job-{job.id}")
        with job._lock:
            if job._cancel or job.final:
                return
            job.state, job.started = "running", time.time()
            process.start()
            job._process = process
        outcome: tuple | None = None
        while outcome is None:
            try:
                message = channel.get(timeout=0.2)
            except queue.Empty:
                if process.is_alive():
                    continue
                try:  # the process ended: what it sent last may still be in the pipe
                    message = channel.get(timeout=0.5)
                except (queue.Empty, EOFError, OSError):
                    break
            except (EOFError, OSError):
                break
            if message[0] == "line":
                job.add_line(message[1])
            else:
                outcome = message
        process.join(TERMINATE_GRACE_S if outcome is not None else 1.0)
        if process.is_alive():
            _stop(process)
        channel.close()
        channel.cancel_join_thread()
        if job._cancel:
            job.add_line(f"cancelled after {job.elapsed_s:.1f} s")
            job._end("cancelled")
        elif outcome is None:
            code = process.exitcode
            log.error("job %s (%s): its process ended without an answer (exit code %s)", job.id, job.kind, code)
            job._end("failed", error=f"the job's process ended unexpectedly (exit code {code})")
        elif outcome[0] == "error":
            log.error("job %s (%s) failed:\n%s", job.id, job.kind, outcome[2])
            job._end("failed", error=outcome[1])
        else:
            job.result = outcome[1]
            if job.on_done is not None:
                try:
                    job.on_done(outcome[1])
                except Exception as err:
                    log.exception("job %s (%s): applying its result failed", job.id, job.kind)
                    job._end("failed", result=outcome[1], error=_message(err))
                    return
            job._end("done", result=outcome[1])


def _stop(process: Any) -> None:
    """Terminate a job's process (SIGTERM, then SIGKILL after :data:`TERMINATE_GRACE_S`)."""
    if process.is_alive():
        process.terminate()
        process.join(TERMINATE_GRACE_S)
    if process.is_alive():
        process.kill()
        process.join(TERMINATE_GRACE_S)


# --------------------------------------------------------------------------- job functions


def reoptimise(registry_folder: str, parent_id: str, moves: Mapping[str, str], locked_units: list[str],
               time_limit_s: float | None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Re-balance a draft: its moves and locked communes stay, the other communes may move.

    :func:`sectorize.pipeline.edit.edit_plan` with ``rebalance=True`` on the parent: every
    commune neither moved nor locked may move to restore balance and contiguity, priced like a
    re-run (``rerun.move_penalty_min`` caseload-minutes per patient in follow-up whose commune
    changes worker, from the parent). Pass the communes of the draft's locked sectors in
    ``locked_units`` (:meth:`sectorize.app.draft.Draft.locked_communes`): ``edit_plan`` would
    refuse a move into a sector locked as a whole.

    Parameters
    ----------
    registry_folder, parent_id
        The registry and the draft's parent plan.
    moves
        ``{insee: sector}``: the draft's differences from the parent.
    locked_units
        INSEE codes kept where they are.
    time_limit_s
        Seconds per search (each widening step has it); ``None``: the scenario's.
    progress
        Receives the progress lines.

    Returns
    -------
    dict
        ``assignment`` ``{insee: sector}`` of the re-balanced plan, ``step`` (the widening step
        that found it), ``moved_communes`` and ``moved_patients`` (from the parent, in
        ``moved_unit``), ``valid`` and ``violations`` (the independent checks).

    Raises
    ------
    sectorize.pipeline.edit.EditError
        A move or lock the parent does not have.
    solvers.InfeasibleError, solvers.NoPlanFoundError
        No plan keeps the moves and locks.
    """
    from sectorize.pipeline.edit import edit_plan
    from sectorize.store.registry import Registry

    say = progress or (lambda line: None)
    limit = "the scenario's time limit" if time_limit_s is None else f"{float(time_limit_s):g} s per step"
    say(f"re-optimising a draft of plan {parent_id}: {len(moves)} commune(s) moved by hand and "
        f"{len(locked_units)} locked stay where they are, the others may move to restore balance and "
        f"contiguity ({limit})")
    stored = Registry(registry_folder, create=False).get(parent_id)
    result = edit_plan(stored, moves=dict(moves), locks=list(locked_units), rebalance=True,
                       time_limit_s=None if time_limit_s is None else float(time_limit_s), progress=say)
    units, summary = result.plan.units, result.summary
    return {
        "assignment": dict(zip(units.index.astype(str), units["sector"].astype(str))),
        "step": summary.get("step"), "moved_communes": int(summary.get("moved_communes", 0)),
        "moved_patients": float(summary.get("moved_patients", 0.0)), "moved_unit": summary.get("moved_unit"),
        "valid": bool(result.plan.valid), "violations": list(result.plan.violations),
    }


def rerun_from_demand(registry_folder: str, in_force_id: str, demand_path: str, sheet: str | None,
                      time_limit_s: float | None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The annual re-run from the plan in force with this year's demand file, stored unpublished.

    As ``sectorize rerun --previous <in_force_id> --registry <folder> --demand <file> --no-frontier``:
    the plan in force's scenario with ``demand.source = "file"`` and this file (its other demand
    settings kept; the previous sheet name dropped), solved by
    :func:`sectorize.pipeline.rerun.rerun` from the plan in force (each patient kept with their
    referent as far as possible), then added to the registry with ``parent_id = in_force_id``,
    never published. A plan failing the independent checks is stored marked invalid
    (``allow_invalid``: it can never be published) and its violations returned.

    Parameters
    ----------
    registry_folder, in_force_id
        The registry and the plan in force.
    demand_path
        This year's demand: aggregated counts per commune (CSV or XLSX).
    sheet
        Sheet of an XLSX file (``None``: the first visible sheet).
    time_limit_s
        Overrides ``model.time_limit_s`` (seconds); ``None``: the scenario's.
    progress
        Receives the progress lines.

    Returns
    -------
    dict
        ``plan_id``, ``valid``, ``violations``, ``moved_communes``, ``moved_patients`` (in
        ``moved_unit``), ``moved_pct``, ``step`` (the widening step that found the plan),
        ``notes`` (what the re-run had to do beyond what was asked).

    Raises
    ------
    sectorize.config.scenario.ScenarioError, geodata.demand.DemandError
        A bad scenario or demand file (the message names the row or key).
    solvers.InfeasibleError, solvers.NoPlanFoundError
        No plan found.
    """
    from sectorize.config.scenario import ScenarioError, scenario_from_dict
    from sectorize.pipeline.rerun import load_previous, rerun
    from sectorize.store.registry import Registry

    say = progress or (lambda line: None)
    path = Path(demand_path)
    say(f"re-running plan {in_force_id} with this year's demand ({path.name}): each patient kept with their "
        "referent as far as possible" + ("" if time_limit_s is None else f", {float(time_limit_s):g} s per step"))
    if not path.is_file():
        raise ScenarioError(f"demand file {path.name}: not found on the server; upload it again")
    previous = load_previous(in_force_id, registry_folder)
    if previous.scenario_toml is None:
        raise ScenarioError(f"plan {in_force_id}: no scenario stored with it; it cannot be re-run")
    data = tomllib.loads(previous.scenario_toml)
    demand = dict(data.get("demand", {}))
    demand.update(source="file", file=str(path.resolve()))
    demand.pop("sheet", None)
    if sheet:
        demand["sheet"] = str(sheet)
    data["demand"] = demand
    if time_limit_s is not None:
        data["model"] = {**data.get("model", {}), "time_limit_s": float(time_limit_s)}
    scenario = scenario_from_dict(data)
    result = rerun(scenario, previous, progress=say, with_frontier=False)
    plan, summary = result.plan, result.summary
    note = f"re-run of {in_force_id} with the demand of {path.name}"
    plan_id = Registry(registry_folder, create=False).add(plan, parent_id=in_force_id, note=note,
                                                          allow_invalid=not plan.valid)
    say(f"stored as plan {plan_id} (not published)" + ("" if plan.valid else
                                                       f"; INVALID: {len(plan.violations)} check(s) fail"))
    notes = [n for n in plan.notes if n.startswith(("re-run widened", "the cap on moves", "workers who change"))]
    return {
        "plan_id": plan_id, "valid": bool(plan.valid), "violations": list(plan.violations),
        "moved_communes": int(summary.get("moved_communes", 0)),
        "moved_patients": float(summary.get("moved_patients", 0.0)), "moved_unit": summary.get("moved_unit"),
        "moved_pct": float(summary.get("moved_pct", 0.0)), "step": summary.get("step"), "notes": notes,
    }


__all__ = ["JOB_FUNCTIONS", "Job", "JobRunner", "parse_progress", "reoptimise", "rerun_from_demand"]
