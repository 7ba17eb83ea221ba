"""Background jobs of the web app (:mod:`sectorize.app.jobs`): a process per job, progress lines with
the solver's incumbent and bound, cancel, failures, and the two real jobs (re-optimise a draft,
re-run from this year's demand) on the AURA plan of the ``aura_run`` fixture."""

from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
import pytest

from sectorize.app.draft import Draft, DraftStore, context_for
from sectorize.app.jobs import JobRunner, parse_progress
from sectorize.store.registry import Registry

# -- tiny job functions (top level: the job's process imports them from this module)


def chatty(n, pause, progress):
    for i in range(n):
        progress(f"[ {i:4.1f} s] sectors: round {i} (seed {i}): objective {1000 - i:,.0f} after {i:.1f} s")
        if i == 1:
            progress("bound: 1,234.50 after 12 steps, 0.4 s")
        time.sleep(pause)
    return {"n": n, "pid": os.getpid()}


def sleeper(progress):
    progress(f"pid {os.getpid()}")
    while True:
        time.sleep(0.05)


def boom(progress):
    progress("reading the demand")
    raise ValueError("demand.csv, line 12: 'abc' is not a number")


def dies(progress):
    progress("about to die")
    os._exit(3)


@pytest.fixture()
def runner():
    jobs = JobRunner()
    yield jobs
    jobs.close()


def wait_for(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_parse_progress_reads_the_solvers_lines():
    assert parse_progress("[  4.2 s] B: heuristic: balanced plan, objective 24,152 after 0.0 s") == (24152.0, None)
    assert parse_progress("LNS: 10 pair visits, 2 accepted, objective 1,000.00 -> 990.50 (converged, 1 s)") == (
        990.5, None)
    assert parse_progress("[  9.0 s] sectors: Lagrangian bound 18,000.25 after 40 subgradient steps in 2 s") == (
        None, 18000.25)
    assert parse_progress("cut-edges MIP: 120 cut, bound none (time limit)") == (None, None)
    assert parse_progress("lower bound: none above 20,000 units") == (None, None)
    assert parse_progress("tie-break: boundary 10 -> 9, objective +0.31 % (slack 1 %)") == (None, None)
    assert parse_progress("[  0.4 s] region: AURA, 4,033 units") == (None, None)


def test_a_job_streams_its_lines_and_returns_its_result(runner):
    job = runner.start("test", chatty, {"n": 3, "pause": 0.05}, title="counting to three")
    assert job.wait(60)
    state = job.as_dict()
    assert state["state"] == "done" and state["error"] is None
    assert state["result"]["n"] == 3 and state["result"]["pid"] != os.getpid()   # another process
    assert state["lines"][0] == "counting to three" and len(state["lines"]) == 5
    assert state["incumbent"] == 998.0 and state["bound"] == 1234.5
    assert set(state) == {"id", "kind", "state", "elapsed_s", "lines", "incumbent", "bound", "result", "error"}
    json.dumps(state, allow_nan=False)
    assert runner.get(job.id) is job
    with pytest.raises(KeyError, match="job 'nope' not found"):
        runner.get("nope")


def test_only_the_last_lines_are_shown(runner):
    job = runner.start("test", chatty, {"n": 70, "pause": 0.0})
    assert job.wait(60)
    lines = job.as_dict()["lines"]
    assert len(lines) == 50 and "round 69 " in lines[-1] and "round 20 " in lines[0]


def test_cancel_terminates_the_process_and_a_queued_job_never_starts(runner):
    running = runner.start("test", sleeper, {})
    queued = runner.start("test", chatty, {"n": 1, "pause": 0.0})
    assert wait_for(lambda: running.as_dict()["lines"])
    assert running.state == "running" and queued.state == "queued"   # one job at a time
    process = running._process
    assert process.is_alive()
    assert runner.cancel(queued.id).state == "cancelled"
    state = runner.cancel(running.id).as_dict()
    assert state["state"] == "cancelled" and state["result"] is None and state["error"] is None
    assert not process.is_alive() and process.exitcode is not None and process.exitcode < 0
    elapsed = state["elapsed_s"]
    time.sleep(0.3)
    assert runner.get(running.id).as_dict()["elapsed_s"] == elapsed   # the clock stopped
    assert runner.cancel(running.id).state == "cancelled"            # again: nothing happens
    assert queued.as_dict()["lines"] == ["cancelled before it started"] and queued.as_dict()["elapsed_s"] == 0
    after = runner.start("test", chatty, {"n": 1, "pause": 0.0})     # the runner goes on
    assert after.wait(60) and after.state == "done"
    assert queued.as_dict()["result"] is None


def test_a_failing_job_reports_the_message_and_logs_the_traceback(runner, caplog):
    caplog.set_level(logging.ERROR, logger="sectorize.app.jobs")
    job = runner.start("test", boom, {})
    assert job.wait(60)
    state = job.as_dict()
    assert state["state"] == "failed" and state["error"] == "demand.csv, line 12: 'abc' is not a number"
    assert "Traceback" not in json.dumps(state) and state["lines"] == ["reading the demand"]
    assert "Traceback" in caplog.text and "def boom" not in state["error"]

    died = runner.start("test", dies, {})
    assert died.wait(60) and died.state == "failed" and "exit code 3" in died.error


def test_on_done_applies_the_result_before_the_job_shows_done(runner):
    seen = []

    def apply(result):
        seen.append(runner.get(job.id).state)
        result["draft"] = "d123"

    job = runner.start("test", chatty, {"n": 1, "pause": 0.0}, on_done=apply)
    assert job.wait(60) and job.state == "done" and seen == ["running"]
    assert job.as_dict()["result"]["draft"] == "d123"      # what on_done adds reaches the client

    def refuse(result):
        raise RuntimeError("the draft changed meanwhile")

    job = runner.start("test", chatty, {"n": 1, "pause": 0.0}, on_done=refuse)
    assert job.wait(60) and job.state == "failed" and job.error == "the draft changed meanwhile"
    with pytest.raises(ValueError, match="job function 'nothing'"):
        runner.start("test", "nothing", {})


# -- the real jobs on the AURA plan


def unbalance(draft, share=0.15):
    """Move communes of one sector into a neighbour along their border, one at a time and keeping
    both in one piece, until the neighbour carries ``share`` of its target more. Returns the two
    sector ids."""
    ctx, a, e, w = draft.context, draft.assignment, draft.context.edges, draft.context.workload
    cross = [(int(u), int(v)) for x, y in e.T for u, v in ((x, y), (y, x)) if a[u] != a[v] and w[u] > 0]
    start, other = max(cross, key=lambda p: (w[p[0]], p))
    src, dst = int(a[start]), int(a[other])
    moved, queue, seen = 0.0, [start], set()
    while queue and moved < share * ctx.targets[dst]:
        u = queue.pop(0)
        if u in seen or draft.assignment[u] != src:
            continue
        seen.add(u)
        review = draft.move([str(ctx.keys[u])], draft.sectors[dst])
        if any(p["kind"] == "contiguity" for p in review.problems):
            draft.undo()
            continue
        moved += w[u]
        queue.extend(ctx.adjacency.indices[ctx.adjacency.indptr[u]:ctx.adjacency.indptr[u + 1]].tolist())
    return draft.sectors[src], draft.sectors[dst]


@pytest.mark.slow
def test_reoptimise_keeps_the_locked_sector_and_saves_a_valid_plan(registry_copy):
    folder, parent_id = registry_copy
    reg = Registry(folder)
    parent = reg.get(parent_id)
    draft = Draft(context_for(parent), parent)
    source, target = unbalance(draft)
    assert any(p["kind"] == "balance" for p in draft.review().problems)
    moved = draft.moves()
    locked = next(s for s in sorted(draft.sectors) if s not in (source, target))
    draft.lock(sectors=[locked])
    members = set(np.flatnonzero(draft.assignment == draft.sectors.index(locked)).tolist())
    runner = JobRunner()
    try:
        version = draft.version
        job = runner.start("reoptimise", "reoptimise", draft.reoptimise_kwargs(folder, 10),
                           on_done=lambda result: draft.replace(result["assignment"], base_version=version))
        assert job.wait(300), job.as_dict()["lines"][-5:]
    finally:
        runner.close()
    state = job.as_dict()
    assert state["state"] == "done", (state["error"], state["lines"][-10:])
    assert state["lines"][0].startswith(f"re-optimising a draft of plan {parent_id}")
    assert state["incumbent"] is not None and state["result"]["valid"] is True
    review = draft.review()
    assert review.valid, review.problems
    now = set(np.flatnonzero(draft.assignment == draft.sectors.index(locked)).tolist())
    assert members <= now                                     # the locked sector kept its communes
    assert all(draft.sector_of(code) == sector for code, sector in moved.items())   # and the moves stay
    assert draft.can_undo                                     # one undoable step
    draft.undo()
    assert draft.moves() == moved
    draft.redo()
    plan_id, valid, violations = draft.save(reg, "re-optimised", "marie")
    assert valid and violations == [] and reg.get(plan_id).parent_id == parent_id


def shifted_demand(parent, path, factor=1.5, deps=("74",)):
    """This year's demand: the plan's stored counts with ``factor`` in some departments (a French CSV)."""
    table = parent.sectors
    lines = ["insee;referrals;home_care"]
    for row in table.itertuples(index=False):
        f = factor if str(row.dep) in deps else 1.0
        if row.referrals or row.home_care:
            lines.append(f"{row.insee};{str(round(row.referrals * f, 2)).replace('.', ',')};"
                         f"{str(round(row.home_care * f, 2)).replace('.', ',')}")
    path.write_bytes("\r\n".join(lines).encode("utf-8-sig"))
    return path


@pytest.mark.slow
def test_rerun_from_demand_stores_an_unpublished_child_of_the_plan_in_force(registry_copy, tmp_path):
    folder, in_force_id = registry_copy
    reg = Registry(folder)
    reg.publish(in_force_id, "2026-01-01")
    in_force = reg.get(in_force_id)
    demand = shifted_demand(in_force, tmp_path / "demande-2027.csv", factor=1.6, deps=("69",))
    runner = JobRunner()
    try:
        job = runner.start("rerun", "rerun_from_demand",
                           {"registry_folder": str(folder), "in_force_id": in_force_id, "demand_path": str(demand),
                            "sheet": None, "time_limit_s": 10})
        assert job.wait(600)
    finally:
        runner.close()
    state = job.as_dict()
    assert state["state"] == "done", (state["error"], state["lines"][-10:])
    assert state["lines"][0].startswith(f"re-running plan {in_force_id} with this year's demand (demande-2027.csv)")
    result = state["result"]
    child = reg.get(result["plan_id"])
    assert child.parent_id == in_force_id and child.effective_from is None and child.publications == ()
    assert child.valid is result["valid"] is True and result["violations"] == []
    assert reg.effective_on("2027-06-01").id == in_force_id   # not published
    # a draft of the new plan compared against the plan in force counts the communes the re-run moved
    draft = DraftStore(None).open(child, in_force)
    changes = draft.review().changes
    assert changes["against"] == in_force_id and changes["communes"] == result["moved_communes"] > 0
    json.dumps(result, allow_nan=False)
