"""The location-allocation loop: fixed centres, an exact allocation, re-centring, until stable.

:func:`location_allocation` alternates the allocation MIP of
:mod:`solvers.allocation.mip` (units to fixed centres, optimal for them) and
re-centring (each centre moves to its sector's weighted medoid); each
allocation is optimal for its centres, so the plan never gets worse than the
start. On large graphs the loop first runs on the allocation LP
(:func:`lp_warm_up`, a fraction of a second per step). :func:`more_rounds`
restarts the heuristic with the next seeds, each start followed by the loop,
while a fifth of the time limit is left.

Deadlines are times of the active clock (:mod:`solvers.budget`). With a work clock and
a model whose allocation MIP cannot be bounded (territory caps on thousands of units,
:func:`solvers.allocation.mip.allocation_mip_bounded`), each allocation step is replaced
by regrowing the sectors from the centres the LP warm-up reached
(:func:`solvers.construct.heuristic.grow_from`): the LP moves the centres towards a
better fixed point in a fraction of a second, and growth, rebalancing and local search
from those centres give a balanced plan at a cost the work clock counts.
"""

from __future__ import annotations

import time

import numpy as np

from solvers import budget
from solvers.allocation.mip import STAGED_MIN_UNITS, allocate, edge_minutes, lp_allocation
from solvers.check import check_plan
from solvers.construct.heuristic import grow_from, heuristic_solve, neighbour_lists, recentre
from solvers.options import EngineSettings
from solvers.problem import Incumbent, NoPlanError, ProgressCallback, Problem


#: Seconds at most for one allocation MIP of the loop when the problem has territory caps: on AURA
#: (4,033 units, caps of 2.5 x the mean communes per FTE) HiGHS often finds no first plan in 20 s,
#: time better spent on new heuristic starts.
CAPPED_ALLOCATION_S = 10.0


def nearest_centres(problem: Problem) -> int | None:
    """With many sectors, location-allocation lets each unit choose among its nearest centres only."""
    return None if problem.k <= 6 else 4


def location_allocation(
    problem: Problem,
    assign: np.ndarray,
    centres: np.ndarray,
    objective: float,
    balanced: bool,
    deadline: float,
    log: list[str],
    say: ProgressCallback,
    staged: bool | None = None,
    *,
    settings: EngineSettings | None = None,
) -> Incumbent:
    """Alternate exact allocation (MIP) and re-centring until stable.

    Each allocation stops at ``settings.location_allocation_gap``, so the loop may
    stop at another fixed point than with exact allocations. ``staged`` is passed to
    :func:`solvers.allocation.mip.allocate` (default: by size). Returns the best plan:
    the starting one (``objective``, named ``"heuristic"``) unless an allocation beat it
    (``"mip"``)."""
    settings = settings or EngineSettings()
    clock = budget.current()
    lengths = edge_minutes(problem)
    name = "heuristic"
    seen: set[tuple[int, ...]] = set()
    best = (objective if balanced else float("inf"), assign, centres)
    candidates = nearest_centres(problem)
    if problem.n >= STAGED_MIN_UNITS and problem.objective != "base":
        # at most half the time left: on 64k units the LP steps could fill the limit, and the MIP needs the rest
        warm_end = clock.now() + 0.5 * (deadline - clock.now())
        centres = lp_warm_up(problem, centres, lengths, candidates, assign, warm_end, log, say)[0]
    while clock.now() < deadline - 0.5:
        key = tuple(int(c) for c in centres)
        if key in seen:
            break
        seen.add(key)
        hint = best[1] if best[0] < float("inf") else None
        limit = deadline - clock.now()
        if problem.size is not None:  # with territory caps HiGHS may search long for a first plan
            limit = min(limit, CAPPED_ALLOCATION_S)
        alloc = allocate(
            problem, centres, lengths=lengths, time_limit_s=limit,
            candidates=candidates, hint=hint, relative_gap=settings.location_allocation_gap, staged=staged,
            stage_limit_s=settings.allocation_stage_s,
        )
        if alloc.status == "skipped":  # a work budget and a MIP it cannot bound: regrow from these centres
            if problem.previous is not None:  # growth would ignore last year's plan
                log.extend(alloc.log)
                break
            grown = grow_from(problem, centres, neighbour_lists(problem),
                              np.random.default_rng([int(c) for c in centres]), deadline)
            if grown is not None and check_plan(problem, grown[0]):
                grown = None
            if grown is None:
                line = "location-allocation: sectors regrown from these centres could not be rebalanced"
                log.append(line)
                say(line)
                break
            new_assign, new_centres, new_obj = grown
            line = f"location-allocation: objective {new_obj:,.0f} (sectors regrown from the centres)"
            log.append(line)
            say(line)
            if new_obj < best[0] - 1e-9:
                best = (new_obj, new_assign, new_centres)
                name = "heuristic"
            else:
                break
            centres = new_centres
            continue
        log.extend(alloc.log)
        if alloc.assignment is None:
            line = _no_allocation_line(alloc.status)
            log.append(line)
            say(line)
            break
        new_centres = recentre(problem, alloc.assignment, centres)
        new_obj = problem.objective_value(alloc.assignment, new_centres)
        line = f"location-allocation: objective {new_obj:,.0f} ({alloc.status} allocation)"
        log.append(line)
        say(line)
        if new_obj < best[0] - 1e-9:
            best = (new_obj, alloc.assignment, new_centres)
            name = "mip"
        else:
            break
        centres = new_centres
    return Incumbent(best[1], best[2], (best[0] if best[0] < float("inf") else objective), name)


def _no_allocation_line(status: str) -> str:
    """What the loop says when the allocation for its current centres gives no plan: a normal step of
    the search (the plan so far is kept and other starting centres follow), not a failure of the run."""
    if status == "infeasible":
        return ("location-allocation: these candidate centres cannot meet the balance (every caseload within "
                "the tolerance, contiguous sectors); keeping the best plan so far, other starting centres are "
                "tried while time is left")
    return ("location-allocation: no allocation found in the time left for these candidate centres; "
            "keeping the best plan so far")


def lp_warm_up(problem: Problem, centres: np.ndarray, lengths, candidates: int | None, hint: np.ndarray,
                deadline: float, log: list[str], say: ProgressCallback) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Location-allocation on the allocation LP (:func:`solvers.allocation.mip.lp_allocation`, rounded)
    until its value stops falling: ``(centres it ends with, their rounded LP assignment, LP
    value)`` (``None`` and ``inf`` when no LP was solved). Each step takes a fraction of a
    second where an allocation MIP from a poor start can take most of a minute."""
    best_value, best_centres, best_assign, seen = float("inf"), centres, None, set()
    clock = budget.current()
    while clock.now() < deadline - 1.0 and tuple(int(c) for c in centres) not in seen:
        seen.add(tuple(int(c) for c in centres))
        found = lp_allocation(problem, centres, lengths=lengths, candidates=candidates, hint=hint,
                              time_limit_s=deadline - clock.now())
        if found is None or found[1] >= best_value - 1e-9 * max(abs(best_value), 1.0):
            break
        best_value, best_centres, best_assign = found[1], centres, found[0]
        centres = recentre(problem, found[0], centres)
    if np.isfinite(best_value):
        line = f"location-allocation on the LP: {len(seen)} steps, LP value {best_value:,.0f}"
        log.append(line)
        say(line)
    return best_centres, best_assign, best_value


def lp_screen(problem: Problem, centres: np.ndarray, hint: np.ndarray,
               deadline: float) -> tuple[np.ndarray, np.ndarray | None, float]:
    """:func:`lp_warm_up` with the location-allocation loop's settings and no log: how
    :func:`solvers.lns.kicks.lns_rounds` screens its kicks."""
    return lp_warm_up(problem, centres, edge_minutes(problem), nearest_centres(problem), hint, deadline,
                       [], lambda line: None)


def more_rounds(problem: Problem, best: Incumbent, heuristic_share: float, seed: int, began: float,
                time_limit_s: float, deadline: float, log: list[str], say: ProgressCallback,
                *, settings: EngineSettings | None = None) -> Incumbent:
    """Restart heuristic + location-allocation with the next seeds while at least a
    fifth of the time limit is left; keep the best balanced plan. ``deadline`` is a time of
    the active clock; ``began`` the wall-clock start, for the log lines."""
    rounds = 1
    clock = budget.current()
    best_ok = not check_plan(problem, best.assignment)
    while clock.now() < deadline - max(0.2 * time_limit_s, 1.0):
        rounds += 1
        left = deadline - clock.now()
        try:
            assign, centres, objective, more = heuristic_solve(
                problem, time_limit_s=min(heuristic_share, 0.5 * left), seed=seed + rounds - 1, progress=None)
        except NoPlanError:
            break
        balanced = not check_plan(problem, assign)
        assign, centres, objective, name = location_allocation(
            problem, assign, centres, objective, balanced, deadline, log, say, settings=settings)
        ok = not check_plan(problem, assign)
        line = (f"round {rounds} (seed {seed + rounds - 1}): objective {objective:,.0f}"
                f"{'' if ok else ' (unbalanced)'} after {time.monotonic() - began:.1f} s")
        log.append(line)
        say(line)
        if ok and (not best_ok or objective < best.objective - 1e-9):
            best, best_ok = Incumbent(assign, centres, objective, name), True
    return best
