"""Kicks and rounds around LNS: the ``"lns"`` backend's outer loop (:func:`lns_rounds`).

Pair moves cannot move a sector across the map, so the engine's ``"lns"`` backend
also *kicks* its plans (:func:`lns_rounds`): the centre of a costly sector moves
into a cheap one, which is cut in two; location-allocation on the allocation LP
screens the kick in a few seconds, and only kicks that lower the LP value markedly
are repaired and polished by LNS.

Deadlines are times of the active clock (:mod:`solvers.budget`), wall or work seconds;
with a work clock the 2-medoid splits count the travel-time entries they read, and the
screens, repairs and polishes count their own work.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from solvers import budget
from solvers.allocation.loop import location_allocation
from solvers.check import check_plan
from solvers.construct.heuristic import heuristic_solve
from solvers.lns.search import improve_lns
from solvers.options import EngineSettings
from solvers.problem import Incumbent, NoPlanError, ProgressCallback, Problem

#: A kick goes on to LNS when the LP value it reaches is at least this fraction below the
#: LP value of the plan's own centres (:func:`lns_rounds`).
KICK_SCREEN = 0.005

#: Seconds at most for location-allocation's MIP steps after a kick whose rounded LP could
#: not be repaired into a valid plan (LNS then takes over).
KICK_ALLOCATION_S = 12.0

#: Seconds at most to make a passing kick's rounded LP assignment contiguous and balanced
#: (:func:`solvers.construct.heuristic.heuristic_solve` from it).
KICK_REPAIR_S = 2.0

#: A new round (:func:`lns_rounds`) starts while this many times the heuristic's share of
#: the time is left.
ROUND_SHARES = 1.5

#: Kicks screened from the location-allocation plan before LNS polishes it: a kick that
#: passes goes to LNS instead, so a short run spends its one LNS on the better basin.
KICKS_BEFORE_POLISH = 2


def split_centres(problem: Problem, members: np.ndarray, *, iterations: int = 10) -> np.ndarray:
    """Two centres that split a sector in two: the weighted 2-medoids of ``members``.

    Starts from the sector's medoid and the member farthest from it (travel minutes times
    weight), then alternates nearest-centre assignment and weighted medoids. Sectors of more
    than 300 members draw their medoids from their 300 heaviest members and the two seeds.
    Returns ``(2,)`` unit numbers (equal when the sector has one member).
    """
    w = problem.weights
    members = np.asarray(members, dtype=np.intp)
    cand = members if members.size <= 300 else members[np.argsort(-w[members], kind="stable")[:300]]
    rows = problem.travel.rows(cand)[:, members]  # (candidates, members) minutes
    budget.tick("entry", (len(cand) + 2 * iterations) * problem.n)
    first = cand[int(np.argmin(rows @ w[members]))]
    far = problem.travel.rows(np.array([first]))[0, members] * w[members]
    pair = np.array([first, members[int(np.argmax(far))]])
    for _ in range(iterations):
        side = np.argmin(problem.travel.rows(pair)[:, members], axis=0)
        new = pair.copy()
        for g in (0, 1):
            group = side == g
            if group.any():
                new[g] = cand[int(np.argmin(rows[:, group] @ w[members[group]]))]
        if (new == pair).all():
            break
        pair = new
    return pair


def kicks(problem: Problem, assignment: np.ndarray, centres: np.ndarray,
          rng: np.random.Generator) -> list[tuple[int, int]]:
    """Every ``(close, split)`` pair of sectors, most promising first: sector ``close`` gives up
    its area and its centre moves into sector ``split``, which is cut in two
    (:func:`kick_centres`). Sectors with locked units are not closed, single units not split.

    Pairs come in decreasing order of ``cost[close] - cost[split]`` (each sector's objective
    in the plan), ties in a seeded random order: moving a centre out of the costliest
    (sparsest) sector into the cheapest (densest) one.
    """
    assignment = np.asarray(assignment, dtype=np.intp)
    sizes = np.bincount(assignment, minlength=problem.k)
    own = problem.cost_rows(np.asarray(centres, dtype=np.intp))[assignment, np.arange(problem.n)]
    cost = np.bincount(assignment, weights=own, minlength=problem.k)
    locked = set(problem.locked.values())
    pairs = [(c, t) for c in range(problem.k) for t in range(problem.k)
             if c != t and c not in locked and sizes[t] > 1]
    pairs = [pairs[i] for i in rng.permutation(len(pairs))]
    return sorted(pairs, key=lambda pair: cost[pair[1]] - cost[pair[0]])


def kick_centres(problem: Problem, assignment: np.ndarray, centres: np.ndarray, close: int, split: int) -> np.ndarray:
    """The centres after a kick: sector ``split``'s centre and sector ``close``'s take the two
    :func:`split_centres` of sector ``split``; the other centres stay."""
    out = np.asarray(centres, dtype=np.intp).copy()
    out[split], out[close] = split_centres(problem, np.flatnonzero(assignment == split))
    return out


def lns_rounds(
    problem: Problem,
    best: Incumbent,
    *,
    seed: int,
    heuristic_share: float,
    deadline: float,
    log: list[str],
    say: ProgressCallback,
    screen: Callable[[Problem, np.ndarray, np.ndarray, float], tuple[np.ndarray, np.ndarray | None, float]]
    | None = None,
    settings: EngineSettings | None = None,
) -> Incumbent:
    """Improve ``best`` by :func:`improve_lns`, then, while time is left, kicks or new rounds;
    returns the best valid plan.

    With ``screen``, the rounds are first *kicks* of the best plan (an iterated local
    search): one sector's centre moves into another sector, which is cut in two
    (:func:`kicks`, :func:`kick_centres`); ``screen`` runs location-allocation on the
    allocation LP from those centres and returns ``(centres, rounded LP assignment, LP
    value)``. A kick whose LP value is at least :data:`KICK_SCREEN` below that of the best
    plan's own centres is made contiguous and balanced
    (:func:`solvers.construct.heuristic.heuristic_solve` from the rounded LP; location-allocation
    when that fails) and polished by LNS; it replaces the best plan when better, and the
    kicks start again from it. Each plan (``best``, then each new round's) gets its first
    :data:`KICKS_BEFORE_POLISH` kicks before LNS polishes it, so that a short run spends its
    LNS on the better basin; then new rounds (heuristic with the next seed,
    location-allocation, the same kicks and LNS) while one fits in the time left
    (:data:`ROUND_SHARES` times ``heuristic_share``), as without kicks; the time no round
    fits into goes to kicking the plan at hand: a kick screens in seconds, where a new
    round takes tens of seconds, and reaches other local optima than new starts do. The
    best plan of all rounds is returned. Without ``screen``, rounds are polished by LNS only.

    ``best`` is an :class:`~solvers.problem.Incumbent` (a plain ``(assignment, centres,
    objective, backend name)`` tuple also works); ``deadline`` a time of the active clock
    (:func:`solvers.budget.now`); new rounds and unrepaired kicks go through
    :func:`solvers.allocation.loop.location_allocation` with ``settings``; ``screen`` is
    called as ``(problem, centres, hint assignment, deadline)``
    (:func:`solvers.allocation.loop.lp_screen` in the engine). The name becomes
    ``"lns"`` when the search improved the plan.
    """
    # stays whole: its steps (polish, kicked, kick_and_polish) are closures sharing the screened set, rng and deadline
    best = Incumbent(*best)
    clock = budget.current()

    def polish(plan: Incumbent) -> Incumbent:
        left = deadline - clock.now()
        if left < 0.5 or check_plan(problem, plan.assignment):
            return plan
        assign, centres, objective, more = improve_lns(problem, plan.assignment, plan.centres, time_limit_s=left,
                                                       seed=seed)
        log.extend(more)
        say(more[-1])
        return Incumbent(assign, centres, objective, "lns") if objective < plan.objective - 1e-9 else plan

    def kicked(plan: Incumbent, close: int, split: int, reference: float) -> Incumbent | None:
        """The polished plan after one kick of ``plan``, or ``None`` when it is screened out."""
        began = time.monotonic()
        moved = kick_centres(problem, plan.assignment, plan.centres, close, split)
        if tuple(moved.tolist()) in screened:  # e.g. the same kick before and after LNS polished the plan
            return None
        screened.add(tuple(moved.tolist()))
        centres, rounded, value = screen(problem, moved, plan.assignment, deadline)
        passed = value < (1.0 - KICK_SCREEN) * reference
        line = (f"kick: sector {close} into sector {split}: LP value {value:,.2f} against {reference:,.2f} "
                f"({'passed' if passed else 'screened out'}, {time.monotonic() - began:.1f} s)")
        log.append(line)
        say(line)
        if not passed:
            return None
        try:  # the rounded LP, made contiguous and balanced
            start, start_centres, start_objective, _ = heuristic_solve(
                problem, time_limit_s=min(KICK_REPAIR_S, deadline - clock.now()), seed=seed, start=rounded,
                restarts=1)
        except NoPlanError:
            return None
        if check_plan(problem, start):  # not repaired: the allocation MIP rebalances it
            return polish(location_allocation(problem, start, centres, float("inf"), False,
                                              min(deadline, clock.now() + KICK_ALLOCATION_S), log, say,
                                              settings=settings))
        # else LNS directly: from kicked centres the allocation MIP's shortest-path restriction
        # costs more than it gains
        return polish(Incumbent(start, start_centres, start_objective, "lns"))

    def kick_and_polish(plan: Incumbent) -> Incumbent:
        """``plan`` after its first :data:`KICKS_BEFORE_POLISH` kicks and LNS; then, while no new
        round fits in the time left, more kicks (an iterated local search)."""
        if screen is None or problem.k <= 2 or check_plan(problem, plan.assignment):
            return polish(plan)
        queue: list[tuple[int, int]] | None = None  # the plan's kicks, listed when needed
        reference = float("inf")  # the LP value of the plan's own centres
        polished, tried = False, 0
        while deadline - clock.now() > 1.0:
            if polished and deadline - clock.now() > round_s:
                break  # a new round fits: it gets the time
            if not polished and tried >= KICKS_BEFORE_POLISH:
                plan, polished, queue = polish(plan), True, None
                continue
            if queue is None:
                queue = kicks(problem, plan.assignment, plan.centres, rng)
                reference = screen(problem, plan.centres, plan.assignment, deadline)[2]
            if not queue:
                break
            close, split = queue.pop(0)
            tried += 1
            found = kicked(plan, close, split, reference)
            if found is None:
                continue
            ok = not check_plan(problem, found.assignment)
            line = (f"kick: sector {close} into sector {split}: objective {found.objective:,.2f}"
                    f"{'' if ok else ' (unbalanced)'}")
            log.append(line)
            say(line)
            if ok and found.objective < plan.objective - 1e-9:
                plan, polished, queue = found, True, None
        return plan if polished else polish(plan)

    round_s = max(ROUND_SHARES * heuristic_share, 1.0)  # time left from which a new round starts
    rng = np.random.default_rng(seed)
    screened: set[tuple[int, ...]] = set()  # kicked centres already screened
    best_ok = not check_plan(problem, best.assignment)
    best = kick_and_polish(best)
    rounds = 1
    while deadline - clock.now() > round_s:
        rounds += 1
        try:
            assign, centres, objective, _ = heuristic_solve(
                problem, time_limit_s=heuristic_share, seed=seed + rounds - 1, progress=None)
        except NoPlanError:
            break
        found = kick_and_polish(location_allocation(problem, assign, centres, objective,
                                                    not check_plan(problem, assign), deadline, log, say,
                                                    settings=settings))
        ok = not check_plan(problem, found.assignment)
        line = (f"round {rounds} (seed {seed + rounds - 1}): objective {found.objective:,.2f}"
                f"{'' if ok else ' (unbalanced)'}")
        log.append(line)
        say(line)
        if ok and (not best_ok or found.objective < best.objective - 1e-9):
            best, best_ok = found, True
    return best
