"""One entry point over the backends: :func:`solve` takes a :class:`Problem`
and returns a :class:`Solution`.

This module holds the dispatch (which backend, how the time limit is shared)
and the search loop of the heuristic, ``"mip"``, ``"auto"`` and ``"lns"``
backends (:func:`_search`); each technique lives in its sub-package, and
every tuning constant in :class:`solvers.options.EngineSettings` (written
``settings.<field>`` below).

Backends
--------
``"heuristic"``
    Multi-start region growing + local search (:mod:`solvers.construct.heuristic`).
    Fast, always contiguous; no proven bound.
``"mip"``
    Location-allocation: a short heuristic run gives starting centres; then,
    until the centres stop changing or time runs out, the exact allocation MIP
    (:mod:`solvers.allocation.mip`, HiGHS) assigns units to the fixed centres and each
    centre moves to its sector's weighted medoid. Each allocation is optimal
    for its centres, so the plan is at least as good as the heuristic's.
    While a fifth of the time limit is left, new rounds (heuristic with the
    next seed, then location-allocation) look for a better plan.
``"auto"``
    ``"mip"``, falling back to the heuristic plan whenever a MIP step finds
    nothing in its time slice; the heuristic alone above
    ``settings.auto_mip_max_units`` units unless the time limit gives at least
    ``settings.auto_mip_seconds_per_1000_units`` per 1,000 units. For a ``"pmedian"``
    problem without a previous plan it also returns the Lagrangian lower bound, as
    ``"lns"`` does (below), so its plan carries a bound and a gap; up to
    ``settings.auto_exact_max_units`` units such a problem goes to ``"exact"``, whose list
    of every feasible district proves the optimum, or that no plan exists; up to
    ``settings.auto_exact_rescue_max_units`` units it goes there too when the heuristic
    finds no balanced plan (a plan from the MIP, or its proof that none exists). From a
    time limit of ``settings.auto_lns_from_s`` seconds, such a problem's best plan then gets
    ``"lns"``'s search (LNS, then kicks) in the time no new round fits into: at least a
    fifth of the limit, enough there for LNS to pay on large regions, while shorter
    limits keep their plans.
``"lns"``
    ``"mip"``, then large-neighbourhood search (:func:`solvers.lns.search.improve_lns`:
    pairs of adjacent sectors re-optimised together, then triples with their
    centres fixed) and, while time is left,
    new rounds each followed by it; each round's plan is first *kicked* (a
    sector's centre moved into another sector, screened on the allocation LP,
    :func:`solvers.lns.kicks.lns_rounds`), and the time no new round fits into goes to
    more kicks. A Lagrangian lower bound
    (:func:`solvers.bound.lagrangian.lower_bound`, ``"pmedian"`` without a previous plan,
    up to ``settings.bound_max_units`` units) is returned as :attr:`Solution.bound`:
    computed in a second process during the whole search
    (:class:`solvers.bound.background.BackgroundBound`, from
    ``settings.background_bound_min_s`` seconds) when two CPUs are available, else in the
    last ``settings.lns_bound_share`` of the time. With work budgets (below) the second
    process counts work on a clock of its own and runs even on one CPU; where no child
    process can be started (a daemonic pool or cluster worker) the bound is computed after
    the search on ``settings.lns_bound_share`` of the limit, outside the search's budget:
    the plan is the same either way, the bound weaker.
``"exact"``
    The whole location-allocation MIP (:func:`solvers.exact.model.exact_solve`,
    HiGHS), made small by Lagrangian fixing: a starting plan (heuristic,
    location-allocation, then new starts or, from ``settings.exact_lns_from_units``
    units, LNS; a quarter of the time), a Lagrangian bound whose multipliers rule out
    the unit-centre pairs no cheaper plan can use
    (:func:`solvers.bound.fixing.fixable_pairs`), then the MIP on the pairs left:
    first with separator cuts (40 % of the rest), then, unless proven
    optimal, with flow contiguity. It chooses the centres too, so its bound
    holds for the whole problem: :attr:`Solution.status` is ``"optimal"``
    when proven and :attr:`Solution.bound` / :attr:`Solution.gap` are set.
    ``"pmedian"`` objective only. Up to
    ``settings.exact_enumeration_max_units`` units it first lists every feasible
    district (:mod:`solvers.exact.districts`): the optimum or a proof of
    infeasibility when the list fits; up to ``settings.exact_strong_lp_max_units``
    units its multipliers come from the strong LP relaxation
    (:func:`solvers.bound.relaxation.strong_relaxation`).

Territory caps (:attr:`solvers.problem.Problem.max_size`: at most so many
communes or km² per sector) are constraints of every backend and of every step
that makes or changes a plan: growth and local moves, the allocation MIP and
LP, LNS pairs and triples, kicks, the exact MIP and district list, the
cut-edges search and MIP, and the tie-break; :func:`solvers.check.check_plan`
checks them. The lower bounds ignore them (a relaxation: still valid bounds).

With ``tie_break_slack``, any backend's plan of a ``"pmedian"`` or ``"base"``
problem then gets fewer cut edges (or a shorter boundary) without its
objective rising by more than that fraction
(:func:`solvers.cut_edges.tie_break.tie_break_solution`).

Objective ``"cut_edges"`` goes to :func:`solvers.cut_edges.backend.solve_cut_edges`
(backends ``"auto"``, ``"heuristic"`` and ``"exact"``, its own MIP with a
proven bound).

For ``"heuristic"`` and ``"mip"`` (and ``"auto"`` on other objectives or with a
previous plan) the returned :attr:`Solution.bound` is ``None``: they prove no bound on
the whole problem (the allocation MIP's bound holds for its centres only), and
:attr:`Solution.status` is ``"feasible"`` for a balanced plan.

Budgets
-------
Every time share above is a share of the active clock (:mod:`solvers.budget`):
wall seconds, or, with ``settings.deterministic``, work seconds counted by each
phase, so that the same problem, seed and settings give the same plan on any
machine and under any load (:attr:`Solution.deterministic`). In work mode three
things differ, each so that nothing the wall clock decides reaches the plan:
the bound never takes time from the search (a second process on a work clock of
its own, or after the search, see ``"lns"``); the allocation MIPs whose root work HiGHS
cannot limit are not run (:func:`solvers.allocation.mip.allocation_mip_bounded`;
location-allocation regrows the sectors from the LP's centres instead); and a
wall-time safety cap stops a search that runs far beyond its limit, which the
solution's log and :attr:`Solution.capped` report as not reproducible.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Literal

import numpy as np

from solvers import budget
from solvers.allocation.loop import location_allocation, lp_screen, more_rounds
from solvers.bound.background import BackgroundBound, background_available, fork_available
from solvers.bound.lagrangian import lower_bound
from solvers.check import check_plan, diagnose
from solvers.construct.heuristic import heuristic_solve
from solvers.cut_edges.backend import solve_cut_edges
from solvers.cut_edges.tie_break import check_tie_break, tie_break_seconds, tie_break_solution
from solvers.exact.backend import exact_backend
from solvers.lns.kicks import lns_rounds
from solvers.options import EngineSettings
from solvers.problem import Incumbent, InfeasibleError, NoPlanError, NoPlanFoundError, ProgressCallback, Problem, Solution

Backend = Literal["auto", "heuristic", "mip", "lns", "exact"]
BACKENDS: tuple[str, ...] = ("auto", "heuristic", "mip", "lns", "exact")


def solve(
    problem: Problem,
    *,
    backend: Backend = "auto",
    time_limit_s: float = 30.0,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    start: np.ndarray | None = None,
    tie_break_slack: float | None = None,
    tie_break_weight: str | None = None,
    settings: EngineSettings | None = None,
) -> Solution:
    """Partition ``problem`` into contiguous, balanced, compact sectors.

    Parameters
    ----------
    problem
        The graph problem.
    backend
        ``"auto"``, ``"heuristic"``, ``"mip"``, ``"lns"`` or ``"exact"`` (see module docstring).
    time_limit_s
        Budget for the whole solve: wall seconds, or work seconds with
        ``settings.deterministic`` (:mod:`solvers.budget`).
    seed
        Seed of the heuristic's random starts. With ``settings.deterministic``
        the same problem, seed and settings give the same plan on any machine
        (unless the wall-time safety cap binds: :attr:`Solution.capped`); with
        wall-clock budgets a slower or busier machine may explore fewer starts.
    progress
        Called with one line per improvement or phase.
    start
        ``(n,)`` assignment to start from (e.g. last year's plan, ``-1`` for
        units without a sector): repaired into a contiguous plan, rebalanced
        and improved (:func:`solvers.construct.heuristic.repair_start`). With a
        previous plan in the problem, the search trades travel against the
        disruption cost and respects the cap on moves.
    tie_break_slack
        When set (``"pmedian"``/``"base"`` only), the plan found then gets
        fewer cut edges by :func:`solvers.cut_edges.tie_break.tie_break_solution`, its
        objective kept within ``(1 + tie_break_slack) x`` its own (``0``: ties
        only). The search gets the time limit less the tie-break's share
        (:func:`solvers.cut_edges.tie_break.tie_break_seconds`: 10 %, at most 10 s);
        :attr:`Solution.tie_break` reports the cut before and after.
    tie_break_weight
        Edge attribute the tie-break sums instead of counting edges (e.g.
        shared boundary length); needs ``tie_break_slack``.
    settings
        The engine's tuning (:class:`solvers.options.EngineSettings`; default:
        ``EngineSettings()``).

    Raises
    ------
    InfeasibleError
        When a quick analysis proves that no plan can meet the constraints
        (the message says which and why), or when the exact MIP proves it.
    NoPlanFoundError
        When no balanced plan was found in the time given (nothing proven).

    Examples
    --------
    >>> import networkx as nx, numpy as np
    >>> from solvers.problem import Problem, DenseTravelTimes
    >>> g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(4, 4))
    >>> xy = np.array([(i // 4, i % 4) for i in range(16)], dtype=float)
    >>> t = DenseTravelTimes(np.abs(xy[:, None] - xy[None]).sum(-1) * 10)
    >>> p = Problem(g, np.ones(16), np.array([8.0, 8.0]), 0.0, t)
    >>> sol = solve(p, backend="mip", time_limit_s=5)
    >>> sorted(np.bincount(sol.assignment).tolist()), sol.status
    ([8, 8], 'feasible')
    """
    # stays whole: the dispatch over the backends and the time shares; mostly docstring
    settings = settings or EngineSettings()
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    problems = diagnose(problem)
    if problems:
        raise InfeasibleError("; ".join(problems))
    if problem.objective != "cut_edges" and backend == "exact" and problem.previous is not None:
        raise ValueError("the 'exact' backend does not handle a previous plan; use 'auto' for a re-run")
    with budget.session(time_limit_s, settings) as clock:
        try:
            sol = _dispatch(problem, backend, time_limit_s, seed, progress, start, tie_break_slack, tie_break_weight,
                            settings, clock)
        except NoPlanError as err:
            if clock.capped:  # say why the search stopped short
                raise type(err)(f"{err} ({clock.notes[0]})") from err
            raise
    if clock.capped and progress is not None and not clock.announced:
        clock.announced = True  # once per clock, by the first solve to return
        for note in clock.notes:
            progress(note)
    return stamped(sol, clock)


def stamped(sol: Solution, clock: budget.Clock) -> Solution:
    """``sol`` with the facts of the clock it was solved on: whether it was counted in work,
    the work seconds used, whether the wall-time safety cap stopped it (its note ending the log)."""
    notes = [note for note in clock.notes if note not in sol.log]
    return replace(sol, deterministic=clock.deterministic, capped=clock.capped,
                   work_s=clock.used() if clock.deterministic else None, log=[*sol.log, *notes])


def _dispatch(problem: Problem, backend: Backend, time_limit_s: float, seed: int, progress: ProgressCallback | None,
              start: np.ndarray | None, tie_break_slack: float | None, tie_break_weight: str | None,
              settings: EngineSettings, clock: budget.Clock) -> Solution:
    """:func:`solve` once the problem is checked, on ``clock`` (the tie-break, the cut-edges and
    exact backends, or the search loop of :func:`_search`)."""
    if tie_break_slack is not None or tie_break_weight is not None:
        check_tie_break(problem, tie_break_slack, tie_break_weight)
        began = clock.now()
        sol = solve(problem, backend=backend, time_limit_s=time_limit_s - tie_break_seconds(time_limit_s),
                    seed=seed, progress=progress, start=start, settings=settings)
        return tie_break_solution(problem, sol, slack=tie_break_slack, weight=tie_break_weight, seed=seed,
                                  progress=progress, time_limit_s=began + time_limit_s - clock.now())
    wall = time.monotonic()
    began = clock.now()
    # keep a small reserve for re-centring and checks after the last MIP
    deadline = began + 0.97 * time_limit_s
    say = progress or (lambda line: None)
    if problem.objective == "cut_edges":
        return solve_cut_edges(problem, backend=backend, time_limit_s=time_limit_s, seed=seed,
                               progress=progress, start=start)
    if backend == "exact":
        return exact_backend(problem, time_limit_s, seed, progress, settings)
    if (backend == "auto" and problem.objective == "pmedian" and problem.previous is None and start is None
            and problem.n <= settings.auto_exact_max_units):
        # small enough to list every district: a proven optimum, or a proof that there is no plan
        say(f"auto: {problem.n:,} units <= {settings.auto_exact_max_units:,}: exact backend")
        sol = exact_backend(problem, time_limit_s, seed, progress, settings)
        return replace(sol, log=[f"auto: {problem.n:,} units <= {settings.auto_exact_max_units:,}: exact backend",
                                 *sol.log])
    if (backend == "auto" and problem.n > settings.auto_mip_max_units
            and time_limit_s < settings.auto_mip_seconds_per_1000_units * problem.n / 1000):
        # location-allocation's LP and MIPs take longer than such a limit leaves
        backend = "heuristic"
        say(f"auto: {problem.n:,} units > {settings.auto_mip_max_units:,} with "
            f"{time_limit_s:g} s < {settings.auto_mip_seconds_per_1000_units * problem.n / 1000:g} s: heuristic only")
    heuristic_cap = max(settings.heuristic_max_s, problem.n / 1000)
    heuristic_share = time_limit_s if backend == "heuristic" else max(min(0.25 * time_limit_s, heuristic_cap), 0.5)
    bound_applies = backend in ("lns", "auto") and problem.objective == "pmedian" and problem.move_rows() is None
    wants_bound = bound_applies and problem.n <= settings.bound_max_units
    notes = []  # lines for the solution's log before the search's own
    if bound_applies and not wants_bound:
        notes.append(f"lower bound: none above {settings.bound_max_units:,} units (its cost matrix would take "
                     f"{4 * problem.n ** 2 / 1e9:.1f} GB)")
    background = None
    # with a work budget the second process counts work on a clock of its own, so its bound
    # is the same on any machine; it runs even on one CPU (only its wall time grows)
    usable = fork_available() if clock.deterministic else background_available()
    if (wants_bound and time_limit_s >= settings.background_bound_min_s
            and (usable if settings.background_bound is None else settings.background_bound)):
        try:
            background = BackgroundBound(problem, time_limit_s=deadline - clock.now() - 0.5,
                                         work=settings if clock.deterministic else None)
        except (OSError, ValueError, AssertionError) as err:  # no process to be had: bound at the end
            notes.append(f"lower bound: no second process ({type(err).__name__}: {err}); computed after the search")
    for line in notes:
        say(line)
    try:
        return _search(problem, backend, time_limit_s, seed, progress, start, began, deadline, heuristic_share,
                       wants_bound, background, notes, say, settings, clock, wall)
    finally:
        if background is not None:
            background.close()


def _search(problem: Problem, backend: Backend, time_limit_s: float, seed: int, progress: ProgressCallback | None,
            start: np.ndarray | None, began: float, deadline: float, heuristic_share: float, wants_bound: bool,
            background: BackgroundBound | None, notes: list[str], say: ProgressCallback,
            settings: EngineSettings, clock: budget.Clock, wall: float) -> Solution:
    """:func:`solve` for the heuristic, ``"mip"``, ``"auto"`` and ``"lns"`` backends (``notes``
    open the solution's log; ``began`` and ``deadline`` are times of ``clock``, ``wall`` the
    wall-clock start for the log lines)."""
    # stays whole: the search loop's phases in order (start, location-allocation, LNS or rounds, repair, bound)
    # from a given start, first repair it alone (random starts would ignore the previous plan);
    # the allocation MIP below rebalances it exactly if local moves could not
    assign, centres, objective, log = heuristic_solve(
        problem, time_limit_s=heuristic_share, seed=seed, progress=progress, start=start,
        restarts=1 if start is not None else None,
    )
    log = [*notes, *log]
    balanced = not check_plan(problem, assign)
    line = (
        f"heuristic: {'balanced' if balanced else 'UNBALANCED'} plan, objective {objective:,.0f} "
        f"after {time.monotonic() - wall:.1f} s"
    )
    log.append(line)
    say(line)
    name = "heuristic"
    if (not balanced and backend == "auto" and start is None and problem.objective == "pmedian"
            and problem.previous is None and problem.n <= settings.auto_exact_rescue_max_units
            and clock.now() < deadline - 1.0):
        # no balanced start: on a small problem the exact MIP finds a plan, or proves there is none
        line = "auto: no balanced plan from the heuristic; the exact backend decides in the time left"
        say(line)
        sol = exact_backend(problem, deadline - clock.now(), seed, progress, settings)
        return replace(sol, log=[*log, line, *sol.log])
    if backend != "heuristic":
        # with wall-clock budgets the bound takes the last part of the time unless a second process
        # computes it; with work budgets it never shortens the search (the plan is the same either way)
        reserve = wants_bound and background is None and not clock.deterministic
        search_end = deadline - (settings.lns_bound_share * time_limit_s if reserve else 0.0)
        assign, centres, objective, name = location_allocation(
            problem, assign, centres, objective, balanced, search_end, log, say, settings=settings
        )
        # "lns": pairs of sectors re-optimised, then new rounds each followed by that
        if start is None and (backend == "lns" or (backend == "auto" and settings.auto_uses_lns)):
            assign, centres, objective, name = lns_rounds(
                problem, Incumbent(assign, centres, objective, name), seed=seed, heuristic_share=heuristic_share,
                deadline=search_end, log=log, say=say, screen=lp_screen, settings=settings)
        elif start is None:  # use the time left: new starts, each followed by location-allocation
            assign, centres, objective, name = more_rounds(
                problem, Incumbent(assign, centres, objective, name), heuristic_share, seed, wall, time_limit_s,
                deadline, log, say, settings=settings)
            if (backend == "auto" and time_limit_s >= settings.auto_lns_from_s and problem.objective == "pmedian"
                    and problem.previous is None):
                # the time no new round fits into (a fifth of the limit or more): LNS on the best plan, then kicks
                assign, centres, objective, name = lns_rounds(
                    problem, Incumbent(assign, centres, objective, name), seed=seed, heuristic_share=heuristic_share,
                    deadline=search_end, log=log, say=say, screen=lp_screen, settings=settings)
    violations = check_plan(problem, assign)
    if violations and start is not None and problem.max_moved is None and clock.now() < deadline - 1.0:
        line = "start plan could not be rebalanced; trying fresh starts (they ignore the previous plan)"
        log.append(line)
        say(line)
        assign, centres, objective, more = heuristic_solve(
            problem, time_limit_s=deadline - clock.now(), seed=seed, progress=None)
        log.extend(more)
        name = "heuristic"
        violations = check_plan(problem, assign)
    if violations and start is not None and problem.max_moved is not None:
        found = _price_moves(problem, start, backend, deadline, seed, log, say, settings)
        if found is not None:
            assign, centres, objective, name = found
            violations = check_plan(problem, assign)
    if violations:
        detail = "; ".join(violations[:5])
        advice = "widen the tolerance, give more time, or split heavy units"
        if problem.size is not None:
            advice = "widen the tolerance, raise the territory cap per FTE, or give more time"
        if problem.max_moved is not None:
            advice = "raise the cap on moves, widen the tolerance, or give more time"
        raise NoPlanFoundError(
            f"no plan within tolerance ±{problem.tolerance * 100:.3g} % found in {time_limit_s:g} s ({detail}); {advice}"
        )
    bound = _collect_bound(problem, background, wants_bound, float(objective), deadline, time_limit_s, log, say,
                           progress, settings)
    return Solution(
        assignment=assign,
        centres=centres,
        objective=float(objective),
        status="optimal" if bound is not None and bound >= float(objective) else "feasible",
        backend=name,
        time_s=time.monotonic() - wall,
        bound=bound,
        log=log,
    )


def _collect_bound(problem: Problem, background: BackgroundBound | None, wants_bound: bool, objective: float,
                   deadline: float, time_limit_s: float, log: list[str], say: ProgressCallback,
                   progress: ProgressCallback | None, settings: EngineSettings) -> float | None:
    """The lower bound of ``"auto"`` and ``"lns"`` once the search is over: the second
    process's result, or :func:`solvers.bound.lagrangian.lower_bound` in the time left (wall
    clock) or on ``settings.lns_bound_share`` of the limit in work seconds of its own clock
    (work budgets: after the search, outside its budget); at most ``objective`` (the plan's);
    ``None`` when there is none."""
    bound = None
    found = None
    clock = budget.current()
    if background is not None:
        # the child stops 0.5 s before the deadline; a little grace, within the time limit's reserve;
        # a work-counting child may need more wall time (one CPU, a busy machine): up to the safety cap
        wait = min(clock.wall_left(), 1e6) if clock.deterministic else (
            max(deadline - budget.now(), 0.0) + max(0.02 * time_limit_s, 0.2))
        found = background.result(timeout=wait)
        if found is None:
            line = f"lower bound: the background process failed ({background.error}); no bound"
            log.append(line)
            say(line)
        else:
            for line in found.log:
                say(line)
    elif wants_bound and clock.deterministic:
        seconds = max(settings.lns_bound_share * time_limit_s, 0.5)
        line = f"lower bound: computed after the search ({seconds:g} work s of its own, no second process)"
        log.append(line)
        say(line)
        with budget.separate(seconds, settings):
            found = lower_bound(problem, upper_bound=objective, time_limit_s=seconds, progress=progress)
    elif wants_bound:
        found = lower_bound(problem, upper_bound=objective, time_limit_s=max(deadline - budget.now(), 0.5),
                            progress=progress)
    if found is not None and np.isfinite(found.value):
        bound = min(found.value, objective)
        log.extend(found.log)
    return bound


def _price_moves(problem: Problem, start: np.ndarray, backend: str, deadline: float, seed: int,
                 log: list[str], say: ProgressCallback, settings: EngineSettings) -> Incumbent | None:
    """Meet a cap on moves by pricing them instead (a Lagrangian step).

    When local moves under the cap could not rebalance the start plan, solve
    without the cap but with a move cost that rises (x4 each round, from the
    objective's mean cost per unit of move weight) until a plan moves no more
    than the cap. Returns that plan, or ``None`` when time runs out first.
    """
    weight = float(problem.disruption.sum())
    first = np.array([int(np.flatnonzero(start == s)[0]) if (start == s).any() else 0 for s in range(problem.k)])
    scale = problem.objective_value(np.where(start >= 0, start, 0), first) / max(weight, 1e-9)
    price = max(problem.move_cost, scale, 1e-6)
    for _ in range(4):
        left = deadline - budget.now()
        if left < 1.0:
            return None
        priced = replace(problem, max_moved=None, move_cost=price)
        try:
            sol = solve(priced, backend=backend, time_limit_s=min(left, max(left / 2, 1.0)), seed=seed, start=start,
                        settings=settings)
        except NoPlanError:
            return None
        moved = problem.moved(sol.assignment)
        line = f"cap on moves: price {price:,.3g} per unit moved gives {moved:,.1f} moved (cap {problem.max_moved:,.1f})"
        log.append(line)
        say(line)
        if moved <= problem.max_moved + 1e-9:
            return Incumbent(sol.assignment, sol.centres, problem.objective_value(sol.assignment, sol.centres),
                             sol.backend)
        price *= 4
    return None
