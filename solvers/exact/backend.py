"""The engine's ``"exact"`` backend: the exact MIP of :mod:`solvers.exact.model`, made
small by Lagrangian fixing (:func:`exact_backend`).

Its steps: the complete list of feasible districts on small problems
(:func:`solvers.exact.districts.partition`), a starting plan
(:mod:`solvers.allocation.loop`, :mod:`solvers.lns.kicks`), a Lagrangian bound whose
multipliers rule out the unit-centre pairs no cheaper plan can use
(:mod:`solvers.bound`), then the MIP on the pairs left, or growing kernels
(:func:`_kernels`) when too many are left. Its tuning is the ``exact_*`` fields of
:class:`solvers.options.EngineSettings`. Every share of the time is a share of the
active clock (:mod:`solvers.budget`), wall or work seconds.
"""

from __future__ import annotations

import time

import numpy as np

from solvers import budget
from solvers.allocation.loop import location_allocation, more_rounds
from solvers.bound.fixing import fixable_pairs
from solvers.bound.lagrangian import Bound, cost_matrix, lower_bound
from solvers.bound.relaxation import strong_relaxation
from solvers.check import EPS, check_plan
from solvers.construct.heuristic import heuristic_solve
from solvers.exact.districts import partition
from solvers.exact.model import best_centres, exact_solve
from solvers.lns.kicks import lns_rounds
from solvers.options import EngineSettings
from solvers.problem import InfeasibleError, NoPlanError, NoPlanFoundError, ProgressCallback, Problem, Solution


def exact_backend(problem: Problem, time_limit_s: float, seed: int, progress: ProgressCallback | None,
                  settings: EngineSettings | None = None) -> Solution:
    """The exact MIP, made small by Lagrangian fixing.

    0. Up to ``settings.exact_enumeration_max_units`` units, the complete list of
       feasible districts and set partitioning (:func:`_by_enumeration`, at most
       ``settings.exact_partition_share`` of the time): the proven optimum or a proof
       of infeasibility when the list fits and CP-SAT finishes, its plan and bound when
       it does not; the steps below when there is no list or no plan.
    1. A starting plan (``settings.exact_start_share`` of the time, at most 10 s + 10 % and at
       most ``settings.exact_start_max_s``): the
       heuristic and location-allocation, then new starts with the next
       seeds (below ``settings.exact_lns_from_units`` units) or LNS (from it).
    2. A Lagrangian lower bound (:func:`solvers.bound.lagrangian.lower_bound`, at most
       ``settings.exact_bound_share``; up to ``settings.exact_strong_lp_max_units`` units
       at the optimal multipliers of the strong LP relaxation) and, from its multipliers, the unit-centre
       pairs that no plan cheaper than the start can use
       (:func:`solvers.bound.fixing.fixable_pairs`); they are left out of the MIP.
    3. The MIP on the pairs left: separator cuts (40 % of the rest), then,
       unless proven optimal, flow contiguity. The smaller model holds every
       plan cheaper than the start, so its optimum and bound are the whole
       problem's; the returned bound is the better of the MIP's and the
       Lagrangian one. With more than ``settings.exact_kernel_pairs`` pairs left,
       growing kernels instead (:func:`_kernels`).

    Before the fixing, location-allocation also starts from the centres the
    Lagrangian relaxation chose (:func:`_from_lagrangian_centres`).

    Territory caps (:attr:`Problem.max_size`) are honoured by every step that
    makes a plan (enumeration, starting plan, MIP); the Lagrangian and strong LP
    bounds ignore them, and so does the fixing: a relaxation, so the bound stays
    valid and the fixing keeps every capped plan cheaper than the start.
    """
    if problem.objective != "pmedian":
        raise ValueError("the 'exact' backend solves the 'pmedian' objective only; use 'auto' for worker bases")
    settings = settings or EngineSettings()
    wall = time.monotonic()
    sol = _exact(problem, time_limit_s, seed, progress, settings)
    sol.time_s = time.monotonic() - wall
    return sol


def _exact(problem: Problem, time_limit_s: float, seed: int, progress: ProgressCallback | None,
           settings: EngineSettings) -> Solution:
    """:func:`exact_backend` on the active clock (:mod:`solvers.budget`): every deadline is a
    time of that clock, wall or work seconds."""
    clock = budget.current()
    start = clock.now()
    end = start + time_limit_s
    say = progress or (lambda line: None)
    enumerated = _by_enumeration(
        problem, settings, min(settings.exact_enumeration_share * time_limit_s, settings.exact_enumeration_max_s),
        max(settings.exact_partition_share, settings.exact_enumeration_share) * time_limit_s, say)
    if enumerated is not None:
        return enumerated
    assign, centres, objective, balanced, log = _starting_plan(problem, time_limit_s, seed, start, say, settings)
    hint = assign if balanced else None
    allowed, lagrangian, found, costs = None, None, None, None
    if balanced:
        budget.tick("entry", 4 * problem.n * problem.n)  # the cost matrix
        costs = cost_matrix(problem)
        relaxed = _strong_multipliers(problem, settings, costs, settings.exact_bound_share * time_limit_s, log, say)
        # from the LP's optimal multipliers one evaluation gives the bound and its centres
        found = lower_bound(problem, upper_bound=float(objective), costs=costs, progress=None,
                            time_limit_s=max(settings.exact_bound_share * time_limit_s, 0.2), start=relaxed,
                            max_iterations=1 if relaxed is not None else 2000)
        if found is not None and np.isfinite(found.value):
            for line in found.log:
                log.append(line)
                say(line)
            better = _from_lagrangian_centres(problem, found.centres, (assign, centres, objective),
                                              min(end, clock.now() + settings.exact_bound_share * time_limit_s),
                                              log, say, settings)
            if better is not None:
                assign, centres, objective = better
                hint = assign
            lagrangian = min(found.value, float(objective))
            fixing = fixable_pairs(problem, found.multipliers, float(objective), costs=costs)
            allowed = fixing.allowed
            log.append(fixing.summary())
            say(fixing.summary())
            if fixing.pairs > settings.exact_kernel_pairs:
                return _kernels(problem, settings, found, costs, (assign, centres, objective), lagrangian, start,
                                start + 0.95 * time_limit_s, log, say)
    return _cuts_then_flow(problem, hint, allowed, objective, found, costs, lagrangian, start, time_limit_s, log,
                           say, progress)


def _starting_plan(problem: Problem, time_limit_s: float, seed: int, began: float, say: ProgressCallback,
                   settings: EngineSettings) -> tuple[np.ndarray | None, np.ndarray | None, float | None, bool, list[str]]:
    """Step 1 of :func:`exact_backend`: ``(assignment, centres, objective, balanced, log)`` of
    the starting plan (heuristic, location-allocation, then new starts or LNS, until
    ``settings.exact_start_share`` of the time, capped); ``None``s when no start reached
    the locked units (the MIP then decides alone)."""
    centres = objective = None
    try:
        share = max(min(0.1 * time_limit_s, 5.0), 0.2)
        assign, centres, objective, log = heuristic_solve(problem, time_limit_s=share, seed=seed, progress=None)
        balanced = not check_plan(problem, assign)
        # a share of the time, capped: past a point a better start gains less than the MIP
        start_end = began + min(settings.exact_start_share * time_limit_s, 10.0 + 0.1 * time_limit_s,
                                settings.exact_start_max_s)
        plan = location_allocation(problem, assign, centres, objective, balanced, start_end, log, say,
                                   settings=settings)
        if problem.n < settings.exact_lns_from_units:  # new starts (next seeds) in the time left for the start
            plan = more_rounds(problem, plan, share, seed, time.monotonic(), start_end - began, start_end, log, say,
                               settings=settings)
        elif not check_plan(problem, plan.assignment):
            plan = lns_rounds(problem, plan, seed=seed, heuristic_share=share, deadline=start_end, log=log, say=say,
                              settings=settings)
        assign, centres, objective = plan.assignment, plan.centres, plan.objective
        balanced = not check_plan(problem, assign)
        line = f"starting plan: {'balanced' if balanced else 'UNBALANCED'}, objective {objective:,.2f}"
    except NoPlanError as err:  # no start reached the locked units: the MIP decides alone
        assign, balanced, log, line = None, False, [], f"starting plan: none ({err})"
    log.append(line)
    say(line)
    return assign, centres, objective, balanced, log


def _cuts_then_flow(problem: Problem, hint: np.ndarray | None, allowed: np.ndarray | None, objective: float | None,
                    found: Bound | None, costs: np.ndarray | None, lagrangian: float | None, began: float,
                    time_limit_s: float, log: list[str], say: ProgressCallback,
                    progress: ProgressCallback | None) -> Solution:
    """Step 3 of :func:`exact_backend`: the MIP on the ``allowed`` pairs, first with separator
    cuts (40 % of the time left), then, unless proven optimal, with flow contiguity; the
    returned bound is the better of the MIPs' and the Lagrangian one (``lagrangian``)."""
    end = began + time_limit_s
    # two exact models, neither faster everywhere: separator cuts first, flow for the rest
    try:
        sol = exact_solve(problem, time_limit_s=max(0.4 * (end - budget.now()), 0.5),
                          contiguity="cuts", progress=progress, hint=hint, allowed=allowed)
    except NoPlanFoundError as err:
        sol = None
        log.append(f"separator cuts: {err}")
    if sol is None or sol.status != "optimal":
        first = sol
        if first is not None:
            hint = first.assignment
            if allowed is not None and first.objective < objective - 1e-9:  # a better plan fixes more pairs
                fixing = fixable_pairs(problem, found.multipliers, first.objective, costs=costs)
                allowed = fixing.allowed | _pairs_of(first.assignment, first.centres, problem.n)
                log.append(fixing.summary())
                say(fixing.summary())
        # HiGHS may overrun its limit by seconds in presolve on large models: keep a reserve
        sol = exact_solve(problem, time_limit_s=max(began + 0.95 * time_limit_s - budget.now(), 0.5),
                          contiguity="flow", progress=progress, hint=hint, allowed=allowed)
        if first is not None:
            if first.bound is not None and (sol.bound is None or first.bound > sol.bound):
                sol.bound = min(first.bound, sol.objective)
            sol.log[:0] = first.log
    if lagrangian is not None and (sol.bound is None or lagrangian > sol.bound):
        sol.bound = min(lagrangian, sol.objective)
    if sol.bound is not None and sol.objective - sol.bound <= 1e-6 * abs(sol.objective):
        sol.status = "optimal"
    sol.log[:0] = log
    return sol


def _by_enumeration(problem: Problem, settings: EngineSettings, list_time_limit_s: float, time_limit_s: float,
                    say: ProgressCallback) -> Solution | None:
    """The proven optimum, or a proof of infeasibility, from the complete list of
    feasible districts (:func:`solvers.exact.districts.partition`), on problems of at most
    ``settings.exact_enumeration_max_units`` units with equal sector bounds (and equal
    territory caps, applied to the list) and no locks.

    The list gets ``list_time_limit_s``, the list and CP-SAT together ``time_limit_s``.
    Returns ``None`` when the list does not fit ``list_time_limit_s`` and
    ``settings.exact_enumeration_max_districts``, or when CP-SAT finds no plan in the time
    left (the MIP then decides); a plan CP-SAT found without proving it optimal comes back
    ``"feasible"`` with CP-SAT's bound (valid: the list holds every feasible district).

    Raises
    ------
    InfeasibleError
        When no ``k`` listed districts cover every unit exactly once.
    """
    caps = problem.size_caps
    if (problem.n > settings.exact_enumeration_max_units or problem.locked
            or len(set(zip(problem.lower, problem.upper))) != 1
            or (caps is not None and len(set(caps.tolist())) != 1)):
        return None
    lower, upper = float(problem.lower[0]), float(problem.upper[0])
    # the plan checker's slack (solvers.check.EPS): every district it accepts is listed
    slack = EPS * max(1.0, abs(upper))
    cost = problem.travel.rows(np.arange(problem.n)) * problem.weights[None, :]
    budget.tick("entry", 2 * problem.n * problem.n)
    found = partition(problem.graph, np.asarray(problem.workload, dtype=np.float64), lower - slack, upper + slack,
                      problem.k,
                      cost, time_limit_s=time_limit_s, max_districts=settings.exact_enumeration_max_districts,
                      size=problem.sizes, max_size=None if caps is None else float(caps[0]),
                      list_time_limit_s=list_time_limit_s)
    for line in found.log:
        say(f"district enumeration: {line}")
    capped = "" if caps is None else f" and a territory within {float(caps[0]):,.6g} {problem.size_unit}"
    if found.status == "infeasible" and found.n_districts == 0:
        raise InfeasibleError(
            f"no plan exists: no connected group of units has a workload in [{lower:,.6g}, {upper:,.6g}]"
            f"{capped} (complete enumeration)")
    if found.status == "infeasible":
        raise InfeasibleError(
            f"no plan exists: the {found.n_districts:,} connected groups of units with a workload in "
            f"[{lower:,.6g}, {upper:,.6g}]{capped} (complete list) cannot cover every unit exactly once with "
            f"{problem.k} of them (proven by CP-SAT)")
    if found.status not in ("optimal", "feasible"):
        say(f"district enumeration: {found.reason}; the MIP decides")
        return None
    assign = np.asarray(found.assignment, dtype=np.intp)
    centres = best_centres(problem, assign)
    objective = float(problem.objective_value(assign, centres))
    log = [f"district enumeration: {line}" for line in found.log]
    if found.status == "feasible":
        log.append(f"district enumeration: {found.reason}; its plan and bound are kept")
    return Solution(assignment=assign, centres=centres, objective=objective, status=found.status,
                    backend="enumeration", time_s=0.0, bound=min(float(found.bound), objective), log=log)


def _strong_multipliers(problem: Problem, settings: EngineSettings, costs: np.ndarray, time_limit_s: float, log: list[str],
                        say: ProgressCallback) -> np.ndarray | None:
    """Optimal Lagrange multipliers from the complete strong LP relaxation
    (:func:`solvers.bound.relaxation.strong_relaxation`) up to ``settings.exact_strong_lp_max_units``
    units, else (or when HiGHS does not finish) ``None``: the ascent of
    :func:`solvers.bound.lagrangian.lower_bound` then estimates them."""
    if problem.n > settings.exact_strong_lp_max_units or len(set(zip(problem.lower, problem.upper))) != 1:
        return None
    try:
        relaxed = strong_relaxation(problem, costs=costs, time_limit_s=time_limit_s)
    except ValueError as err:
        log.append(f"strong LP relaxation: {err}")
        return None
    line = f"strong LP relaxation {relaxed.value:,.2f} in {relaxed.time_s:.2f} s (optimal Lagrange multipliers)"
    log.append(line)
    say(line)
    return relaxed.multipliers


def _from_lagrangian_centres(
    problem: Problem, chosen: np.ndarray | None, plan: tuple[np.ndarray, np.ndarray, float], deadline: float,
    log: list[str], say: ProgressCallback, settings: EngineSettings,
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Location-allocation started from the centres the Lagrangian relaxation chose (a
    Lagrangian heuristic: when the bound is tight they are close to the optimal centres);
    returns a plan cheaper than ``plan``, or ``None``."""
    from scipy.optimize import linear_sum_assignment

    assign, centres, objective = plan
    if chosen is None or len(set(chosen.tolist())) < problem.k or budget.now() > deadline - 1.0:
        return None
    chosen = np.asarray(chosen, dtype=np.intp)
    if len({(float(lo), float(hi)) for lo, hi in zip(problem.lower, problem.upper)}) == 1:
        # equal sectors: give each current sector the nearest chosen centre (keeps the hint useful)
        _, order = linear_sum_assignment(problem.travel.rows(centres)[:, chosen])
        chosen = chosen[order]
    new = location_allocation(problem, assign, chosen, objective, True, deadline, log, say, settings=settings)
    if new.objective < objective - 1e-9 and not check_plan(problem, new.assignment):
        line = f"Lagrangian centres: objective {objective:,.2f} -> {new.objective:,.2f}"
        log.append(line)
        say(line)
        return new.assignment, new.centres, new.objective
    return None


def _kernels(
    problem: Problem, settings: EngineSettings, found: Bound, costs: np.ndarray, plan: tuple[np.ndarray, np.ndarray, float], bound: float,
    began: float, deadline: float, log: list[str], say: ProgressCallback,
) -> Solution:
    """Exact search by growing kernels, for problems whose fixing keeps too many pairs.

    A *kernel* keeps the pairs that Lagrangian fixing (:func:`solvers.bound.fixing.fixable_pairs`)
    keeps for a guessed cost ``guess`` between the bound and the current plan, the
    largest guess with at most ``settings.exact_kernel_pairs`` pairs, plus the plan's own.
    Every plan cheaper than ``guess`` lies in the kernel, so when the MIP (separator
    cuts) proves the kernel's optimum ``v`` with bound ``b``, ``min(b, guess)`` is a lower
    bound for the whole problem, and ``v < guess`` makes ``v`` optimal. Each round
    raises the bound or lowers the plan, then the next kernel is built from them.
    """
    assign, centres, objective = plan
    status, limit, tried = "feasible", settings.exact_kernel_pairs, -np.inf
    clock = budget.current()
    while clock.now() < deadline - 2.0 and objective - bound > 1e-6 * abs(objective):
        for share in (1.0, 0.5, 0.25, 0.1, 0.03, 0.01):
            guess = bound + share * (objective - bound)
            kernel = fixable_pairs(problem, found.multipliers, guess, costs=costs)
            clock.tick("entry", 2 * problem.n * problem.n)
            if kernel.pairs <= limit:
                break
        if guess <= tried + 1e-9 * abs(guess):
            break  # no larger kernel fits: stop here
        line = f"kernel below {guess:,.2f}: {kernel.pairs:,} pairs"
        log.append(line)
        say(line)
        try:
            sol = exact_solve(problem, time_limit_s=deadline - clock.now(), contiguity="cuts", hint=assign,
                              allowed=kernel.allowed | _pairs_of(assign, centres, problem.n))
        except NoPlanError as err:
            log.append(f"kernel: {err}")
            break
        if sol.objective < objective - 1e-9 and not check_plan(problem, sol.assignment):
            assign, centres, objective = sol.assignment, sol.centres, sol.objective
        if sol.status == "optimal" and sol.bound is not None:
            tried = guess
            bound = max(bound, min(sol.bound, guess))
        else:
            limit //= 2  # the kernel was too hard for the time left: try smaller ones
        line = f"kernel done: objective {objective:,.2f}, bound {bound:,.2f} ({clock.now() - began:.1f} s)"
        log.append(line)
        say(line)
    bound = min(bound, objective)
    if objective - bound <= 1e-6 * abs(objective):
        status = "optimal"
    return Solution(assignment=assign, centres=centres, objective=float(objective), status=status, backend="exact",
                    time_s=0.0, bound=bound, log=log)


def _pairs_of(assign: np.ndarray, centres: np.ndarray, n: int) -> np.ndarray:
    """``(n, n)`` boolean with ``[centre, unit]`` True for the pairs a plan uses."""
    out = np.zeros((n, n), dtype=bool)
    out[np.asarray(centres)[np.asarray(assign)], np.arange(n)] = True
    return out
