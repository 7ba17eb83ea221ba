"""One entry point over the backends: :func:`solve` takes a :class:`Problem`
and returns a :class:`Solution`.

Backends
--------
``"heuristic"``
    Multi-start region growing + local search (:mod:`solvers.heuristic`).
    Fast, always contiguous; no proven bound.
``"mip"``
    Location-allocation: a short heuristic run gives starting centres; then,
    until the centres stop changing or time runs out, the exact allocation MIP
    (:mod:`solvers.mip`, HiGHS) assigns units to the fixed centres and each
    centre moves to its sector's weighted medoid. Each allocation is optimal
    for its centres, so the plan is at least as good as the heuristic's.
    While a fifth of the time limit is left, new rounds (heuristic with the
    next seed, then location-allocation) look for a better plan.
``"auto"``
    ``"mip"``, falling back to the heuristic plan whenever a MIP step finds
    nothing in its time slice; the heuristic alone above
    :data:`AUTO_MIP_MAX_UNITS` units unless the time limit gives at least
    :data:`AUTO_MIP_SECONDS_PER_1000_UNITS` per 1,000 units.
``"lns"``
    ``"mip"``, then large-neighbourhood search (:func:`solvers.lns.improve_lns`:
    pairs of adjacent sectors re-optimised together, then triples with their
    centres fixed) and, while time is left,
    new rounds each followed by it; each round's plan is first *kicked* (a
    sector's centre moved into another sector, screened on the allocation LP,
    :func:`solvers.lns.lns_rounds`), and the time no new round fits into goes to
    more kicks. A Lagrangian lower bound
    (:func:`solvers.bound.lower_bound`, ``"pmedian"`` without a previous plan,
    up to :data:`BOUND_MAX_UNITS` units) is returned as :attr:`Solution.bound`:
    computed in a second process during the whole search when two CPUs are
    available (:class:`solvers.bound.BackgroundBound`, from
    :data:`BACKGROUND_BOUND_MIN_S` seconds), else in the last
    :data:`LNS_BOUND_SHARE` of the time.
``"exact"``
    The whole location-allocation MIP (:func:`solvers.exact.exact_solve`,
    HiGHS), made small by Lagrangian fixing: a starting plan (heuristic,
    location-allocation, then new starts or, from :data:`EXACT_LNS_FROM_UNITS`
    units, LNS; a quarter of the time), a Lagrangian bound whose multipliers rule out
    the unit-centre pairs no cheaper plan can use
    (:func:`solvers.bound.fixable_pairs`), then the MIP on the pairs left:
    first with separator cuts (40 % of the rest), then, unless proven
    optimal, with flow contiguity. It chooses the centres too, so its bound
    holds for the whole problem: :attr:`Solution.status` is ``"optimal"``
    when proven and :attr:`Solution.bound` / :attr:`Solution.gap` are set.
    Proves the published optima of US census-tract instances of up to
    1,046 units (``benchmarks/bench_validi.py --tracts``) when the
    Lagrangian bound is tight; ``"pmedian"`` objective only. Up to
    :data:`EXACT_ENUMERATION_MAX_UNITS` units it first lists every feasible
    district (:mod:`solvers.districts`): the optimum or a proof of
    infeasibility when the list fits; up to :data:`EXACT_STRONG_LP_MAX_UNITS`
    units its multipliers come from the strong LP relaxation
    (:func:`solvers.bound.strong_relaxation`).

With ``tie_break_slack``, any backend's plan of a ``"pmedian"`` or ``"base"``
problem then gets fewer cut edges (or a shorter boundary) without its
objective rising by more than that fraction
(:func:`solvers.cut_edges.tie_break_solution`).

Objective ``"cut_edges"`` goes to :func:`solvers.cut_edges.solve_cut_edges`
(backends ``"auto"``, ``"heuristic"`` and ``"exact"``, its own MIP with a
proven bound).

For ``"heuristic"``, ``"mip"`` and ``"auto"`` the returned
:attr:`Solution.bound` is ``None``: they prove no bound on the whole problem
(the allocation MIP's bound holds for its centres only), and
:attr:`Solution.status` is ``"feasible"`` for a balanced plan.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np

from solvers.bound import (Bound, BackgroundBound, background_available, cost_matrix, fixable_pairs,
                           lower_bound, strong_relaxation)
from solvers.check import EPS, check_plan, diagnose
from solvers.exact import NoPlanFoundError, best_centres, exact_solve
from solvers.heuristic import heuristic_solve, recentre
from solvers.mip import STAGED_MIN_UNITS, allocate, edge_minutes, lp_allocation
from solvers.problem import InfeasibleError, ProgressCallback, Problem, Solution

Backend = Literal["auto", "heuristic", "mip", "lns", "exact"]
BACKENDS: tuple[str, ...] = ("auto", "heuristic", "mip", "lns", "exact")

#: Share of the time limit the ``"lns"`` backend keeps for its lower bound when it
#: cannot run it beside the search (one CPU, not Linux, or a short time limit).
LNS_BOUND_SHARE = 0.25

#: From this time limit (seconds) ``"lns"`` computes its bound in a second process
#: during the search (:class:`solvers.bound.BackgroundBound`); below, starting the
#: process and building the cost matrix take too large a share.
BACKGROUND_BOUND_MIN_S = 10.0

#: Above this many units no bound is computed: its dense float32 cost matrix
#: would take ``4 n^2`` bytes (15,000 units: 0.9 GB).
BOUND_MAX_UNITS = 15_000

#: Whether ``"auto"`` spends the time left after location-allocation on
#: :func:`solvers.lns.lns_rounds` (else on new rounds without LNS).
AUTO_USES_LNS = False

#: Seconds of each round's constructive heuristic before location-allocation
#: takes over: at most a quarter of the time limit, and at most the larger of
#: this and one second per 1,000 units (larger graphs need longer for a first
#: balanced plan, ``benchmarks/README.md``, "Scaling"). A 4 s share left time for
#: more rounds on AURA but its poorer starts made the allocation MIPs slow
#: (``benchmarks/README.md``, "Faster location-allocation").
HEURISTIC_MAX_S = 10.0

#: Relative gap at which each allocation of the location-allocation loop stops
#: (:func:`solvers.mip.allocate`). The loop's steps change the objective by
#: 0.1-1 %; at 1e-3 the LP-guided first stage of a large allocation usually
#: suffices (``benchmarks/bench_allocation.py``).
LOCATION_ALLOCATION_GAP = 1e-3

#: Seconds at most for each stage of an LP-guided allocation in that loop once a
#: plan is in hand (``stage_limit_s`` of :func:`solvers.mip.allocate`): from a poor
#: start one AURA allocation can take most of a minute (``benchmarks/bench_allocation.py``).
ALLOCATION_STAGE_S = 5.0

#: Above this many units ``"auto"`` runs the heuristic alone (see :func:`solve`),
#: unless the time limit is long enough for location-allocation
#: (:data:`AUTO_MIP_SECONDS_PER_1000_UNITS`).
AUTO_MIP_MAX_UNITS = 20_000

#: Seconds of time limit per 1,000 units from which ``"auto"`` runs location-allocation
#: above :data:`AUTO_MIP_MAX_UNITS` units. On 64,000-unit graphs (k = 11, ±5 %) the LP
#: warm-up alone fills a 60 s limit after the heuristic's share; with 180 s the plans
#: are 1.1-1.9 % below the heuristic's (``benchmarks/README.md``, "Scaling").
AUTO_MIP_SECONDS_PER_1000_UNITS = 2.5


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
) -> Solution:
    """Partition ``problem`` into contiguous, balanced, compact sectors.

    Parameters
    ----------
    problem
        The graph problem.
    backend
        ``"auto"``, ``"heuristic"``, ``"mip"``, ``"lns"`` or ``"exact"`` (see module docstring).
    time_limit_s
        Wall-clock budget in seconds for the whole solve.
    seed
        Seed of the heuristic's random starts (same seed, same time → same plan
        in practice; the heuristic stops on time, so a slower machine may
        explore fewer starts).
    progress
        Called with one line per improvement or phase.
    start
        ``(n,)`` assignment to start from (e.g. last year's plan, ``-1`` for
        units without a sector): repaired into a contiguous plan, rebalanced
        and improved (:func:`solvers.heuristic.repair_start`). With a
        previous plan in the problem, the search trades travel against the
        disruption cost and respects the cap on moves.
    tie_break_slack
        When set (``"pmedian"``/``"base"`` only), the plan found then gets
        fewer cut edges by :func:`solvers.cut_edges.tie_break_solution`, its
        objective kept within ``(1 + tie_break_slack) x`` its own (``0``: ties
        only). The search gets the time limit less the tie-break's share
        (:func:`solvers.cut_edges.tie_break_seconds`: 10 %, at most 10 s);
        :attr:`Solution.tie_break` reports the cut before and after.
    tie_break_weight
        Edge attribute the tie-break sums instead of counting edges (e.g.
        shared boundary length); needs ``tie_break_slack``.

    Raises
    ------
    InfeasibleError
        When a quick analysis proves that no plan can meet the constraints
        (the message says which and why), when the exact MIP proves it, or
        when no balanced plan was found.

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
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    problems = diagnose(problem)
    if problems:
        raise InfeasibleError("; ".join(problems))
    if tie_break_slack is not None or tie_break_weight is not None:
        from solvers.cut_edges import check_tie_break, tie_break_seconds, tie_break_solution

        check_tie_break(problem, tie_break_slack, tie_break_weight)
        began = time.monotonic()
        sol = solve(problem, backend=backend, time_limit_s=time_limit_s - tie_break_seconds(time_limit_s),
                    seed=seed, progress=progress, start=start)
        return tie_break_solution(problem, sol, slack=tie_break_slack, weight=tie_break_weight, seed=seed,
                                  progress=progress, time_limit_s=began + time_limit_s - time.monotonic())
    began = time.monotonic()
    # keep a small reserve for re-centring and checks after the last MIP
    deadline = began + 0.97 * time_limit_s
    say = progress or (lambda line: None)
    if problem.objective == "cut_edges":
        from solvers.cut_edges import solve_cut_edges

        return solve_cut_edges(problem, backend=backend, time_limit_s=time_limit_s, seed=seed,
                               progress=progress, start=start)
    if backend == "exact":
        if problem.previous is not None:
            raise ValueError("the 'exact' backend does not handle a previous plan; use 'auto' for a re-run")
        return _exact(problem, time_limit_s, seed, progress)
    if (backend == "auto" and problem.n > AUTO_MIP_MAX_UNITS
            and time_limit_s < AUTO_MIP_SECONDS_PER_1000_UNITS * problem.n / 1000):
        # location-allocation's LP and MIPs take longer than such a limit leaves (benchmarks/bench_scaling.py)
        backend = "heuristic"
        say(f"auto: {problem.n:,} units > {AUTO_MIP_MAX_UNITS:,} with "
            f"{time_limit_s:g} s < {AUTO_MIP_SECONDS_PER_1000_UNITS * problem.n / 1000:g} s: heuristic only")
    heuristic_cap = max(HEURISTIC_MAX_S, problem.n / 1000)
    heuristic_share = time_limit_s if backend == "heuristic" else max(min(0.25 * time_limit_s, heuristic_cap), 0.5)
    bound_applies = backend == "lns" and problem.objective == "pmedian" and problem.move_rows() is None
    wants_bound = bound_applies and problem.n <= BOUND_MAX_UNITS
    notes = []  # lines for the solution's log before the search's own
    if bound_applies and not wants_bound:
        notes.append(f"lower bound: none above {BOUND_MAX_UNITS:,} units (its cost matrix would take "
                     f"{4 * problem.n ** 2 / 1e9:.1f} GB)")
    background = None
    if wants_bound and time_limit_s >= BACKGROUND_BOUND_MIN_S and background_available():
        try:
            background = BackgroundBound(problem, time_limit_s=deadline - time.monotonic() - 0.5)
        except (OSError, ValueError, AssertionError) as err:  # no process to be had: bound at the end
            notes.append(f"lower bound: no second process ({type(err).__name__}: {err}); computed after the search")
    for line in notes:
        say(line)
    try:
        return _search(problem, backend, time_limit_s, seed, progress, start, began, deadline, heuristic_share,
                       wants_bound, background, notes, say)
    finally:
        if background is not None:
            background.close()


def _search(problem: Problem, backend: Backend, time_limit_s: float, seed: int, progress: ProgressCallback | None,
            start: np.ndarray | None, began: float, deadline: float, heuristic_share: float, wants_bound: bool,
            background: BackgroundBound | None, notes: list[str], say: ProgressCallback) -> Solution:
    """:func:`solve` for the heuristic, ``"mip"``, ``"auto"`` and ``"lns"`` backends (``notes``
    open the solution's log)."""
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
        f"after {time.monotonic() - began:.1f} s"
    )
    log.append(line)
    say(line)
    name = "heuristic"
    if backend != "heuristic":
        # "lns" keeps the last part of the time for its bound, unless a second process computes it
        search_end = deadline - (LNS_BOUND_SHARE * time_limit_s if wants_bound and background is None else 0.0)
        assign, centres, objective, name = _location_allocation(
            problem, assign, centres, objective, balanced, search_end, log, say
        )
        # "lns": pairs of sectors re-optimised, then new rounds each followed by that
        if start is None and (backend == "lns" or (backend == "auto" and AUTO_USES_LNS)):
            from solvers.lns import lns_rounds

            assign, centres, objective, name = lns_rounds(
                problem, (assign, centres, objective, name), seed=seed, heuristic_share=heuristic_share,
                deadline=search_end, location_allocation=_location_allocation,
                log=log, say=say, screen=_lp_screen)
        elif start is None:  # use the time left: new starts, each followed by location-allocation
            assign, centres, objective, name = _more_rounds(
                problem, (assign, centres, objective, name), heuristic_share, seed, began, time_limit_s,
                deadline, log, say)
    violations = check_plan(problem, assign)
    if violations and start is not None and problem.max_moved is None and time.monotonic() < deadline - 1.0:
        line = "start plan could not be rebalanced; trying fresh starts (they ignore the previous plan)"
        log.append(line)
        say(line)
        assign, centres, objective, more = heuristic_solve(
            problem, time_limit_s=deadline - time.monotonic(), seed=seed, progress=None)
        log.extend(more)
        name = "heuristic"
        violations = check_plan(problem, assign)
    if violations and start is not None and problem.max_moved is not None:
        found = _price_moves(problem, start, backend, deadline, seed, log, say)
        if found is not None:
            assign, centres, objective, name = found
            violations = check_plan(problem, assign)
    if violations:
        detail = "; ".join(violations[:5])
        advice = "widen the tolerance, give more time, or split heavy units"
        if problem.max_moved is not None:
            advice = "raise the cap on moves, widen the tolerance, or give more time"
        raise InfeasibleError(
            f"no plan within tolerance ±{problem.tolerance * 100:.3g} % found in {time_limit_s:g} s ({detail}); {advice}"
        )
    bound = None
    found = None
    if background is not None:
        # the child stops 0.5 s before the deadline; a little grace, within the time limit's reserve
        found = background.result(timeout=max(deadline - time.monotonic(), 0.0) + max(0.02 * time_limit_s, 0.2))
        if found is None:
            line = f"lower bound: the background process failed ({background.error}); no bound"
            log.append(line)
            say(line)
        else:
            for line in found.log:
                say(line)
    elif wants_bound:
        found = lower_bound(problem, upper_bound=float(objective), time_limit_s=max(deadline - time.monotonic(), 0.5),
                            progress=progress)
    if found is not None and np.isfinite(found.value):
        bound = min(found.value, float(objective))
        log.extend(found.log)
    return Solution(
        assignment=assign,
        centres=centres,
        objective=float(objective),
        status="optimal" if bound is not None and bound >= float(objective) else "feasible",
        backend=name,
        time_s=time.monotonic() - began,
        bound=bound,
        log=log,
    )


def _more_rounds(problem: Problem, best: tuple, heuristic_share: float, seed: int, began: float,
                 time_limit_s: float, deadline: float, log: list[str], say: ProgressCallback) -> tuple:
    """Restart heuristic + location-allocation with the next seeds while at least a
    fifth of the time limit is left; keep the best balanced plan."""
    rounds = 1
    best_ok = not check_plan(problem, best[0])
    while time.monotonic() < deadline - max(0.2 * time_limit_s, 1.0):
        rounds += 1
        left = deadline - time.monotonic()
        try:
            assign, centres, objective, more = heuristic_solve(
                problem, time_limit_s=min(heuristic_share, 0.5 * left), seed=seed + rounds - 1, progress=None)
        except InfeasibleError:
            break
        balanced = not check_plan(problem, assign)
        assign, centres, objective, name = _location_allocation(
            problem, assign, centres, objective, balanced, deadline, log, say)
        ok = not check_plan(problem, assign)
        line = (f"round {rounds} (seed {seed + rounds - 1}): objective {objective:,.0f}"
                f"{'' if ok else ' (unbalanced)'} after {time.monotonic() - began:.1f} s")
        log.append(line)
        say(line)
        if ok and (not best_ok or objective < best[2] - 1e-9):
            best, best_ok = (assign, centres, objective, name), True
    return best


def _price_moves(problem: Problem, start: np.ndarray, backend: str, deadline: float, seed: int,
                 log: list[str], say: ProgressCallback) -> tuple[np.ndarray, np.ndarray, float, str] | None:
    """Meet a cap on moves by pricing them instead (a Lagrangian step).

    When local moves under the cap could not rebalance the start plan, solve
    without the cap but with a move cost that rises (x4 each round, from the
    objective's mean cost per unit of move weight) until a plan moves no more
    than the cap. Returns that plan, or ``None`` when time runs out first.
    """
    from dataclasses import replace

    weight = float(problem.disruption.sum())
    first = np.array([int(np.flatnonzero(start == s)[0]) if (start == s).any() else 0 for s in range(problem.k)])
    scale = problem.objective_value(np.where(start >= 0, start, 0), first) / max(weight, 1e-9)
    price = max(problem.move_cost, scale, 1e-6)
    for _ in range(4):
        left = deadline - time.monotonic()
        if left < 1.0:
            return None
        priced = replace(problem, max_moved=None, move_cost=price)
        try:
            sol = solve(priced, backend=backend, time_limit_s=min(left, max(left / 2, 1.0)), seed=seed, start=start)
        except InfeasibleError:
            return None
        moved = problem.moved(sol.assignment)
        line = f"cap on moves: price {price:,.3g} per unit moved gives {moved:,.1f} moved (cap {problem.max_moved:,.1f})"
        log.append(line)
        say(line)
        if moved <= problem.max_moved + 1e-9:
            return sol.assignment, sol.centres, problem.objective_value(sol.assignment, sol.centres), sol.backend
        price *= 4
    return None


#: Share of the ``"exact"`` backend's time for its starting plan.
EXACT_START_SHARE = 0.25

#: At most this many seconds for the ``"exact"`` backend's starting plan: with a
#: 600 s limit the share above gave 70 s, which the published county instances spent
#: on new starts that no longer improved (``benchmarks/README.md``, "Published
#: districting instances"). 28 s is the share at 180 s, so shorter limits are unchanged.
EXACT_START_MAX_S = 28.0

#: From this many units, the ``"exact"`` backend's starting plan also gets LNS
#: (a tighter plan fixes more variables; see :func:`_exact`).
EXACT_LNS_FROM_UNITS = 150

#: Share of the ``"exact"`` backend's time for the Lagrangian bound behind the fixing.
EXACT_BOUND_SHARE = 0.25

#: Above this many unit-centre pairs left after fixing, the ``"exact"`` backend
#: searches kernels of at most this many pairs (:func:`_kernels`) instead of the
#: whole MIP: HiGHS's root LP alone takes minutes on a 300k-variable flow model.
EXACT_KERNEL_PAIRS = 20_000


#: Up to this many units the ``"exact"`` backend first lists every feasible district
#: (:func:`solvers.districts.partition`): on the published counties this proves SC
#: infeasible in about 10 s where the MIP stays open after 600 s, and the optimum of
#: ME, NM and ID; from 55 units the lists exceed millions of districts
#: (``benchmarks/bench_districts.py``).
EXACT_ENUMERATION_MAX_UNITS = 50

#: Share of the ``"exact"`` backend's time, at most seconds, and most districts, for that
#: list. With 600 s the ID counties' list (99,390 districts) took 55.5 s where the MIP
#: proves the optimum in about 14 s; 15 s is the share at 60 s, where SC, NH, OR, ME and
#: NM are decided by the list (``benchmarks/README.md``, "District enumeration").
EXACT_ENUMERATION_SHARE = 0.25
EXACT_ENUMERATION_MAX_S = 15.0
EXACT_ENUMERATION_MAX_DISTRICTS = 300_000

#: Up to this many units the ``"exact"`` backend takes its Lagrange multipliers from
#: the complete strong LP relaxation (HiGHS, under 1 s up to 105 units: exact where the
#: subgradient stops 0.0-0.8 % short on the 14 larger counties; ``benchmarks/bench_relaxation.py --part counties``).
EXACT_STRONG_LP_MAX_UNITS = 150


def _exact(problem: Problem, time_limit_s: float, seed: int, progress: ProgressCallback | None) -> Solution:
    """The exact MIP, made small by Lagrangian fixing.

    0. Up to :data:`EXACT_ENUMERATION_MAX_UNITS` units, the complete list of
       feasible districts and set partitioning (:func:`_by_enumeration`):
       the proven optimum or a proof of infeasibility, when the list fits.
    1. A starting plan (:data:`EXACT_START_SHARE` of the time, at most 10 s + 10 % and at
       most :data:`EXACT_START_MAX_S`): the
       heuristic and location-allocation, then new starts with the next
       seeds (below :data:`EXACT_LNS_FROM_UNITS` units) or LNS (from it).
    2. A Lagrangian lower bound (:func:`solvers.bound.lower_bound`, at most
       :data:`EXACT_BOUND_SHARE`; up to :data:`EXACT_STRONG_LP_MAX_UNITS` units
       at the optimal multipliers of the strong LP relaxation) and, from its multipliers, the unit-centre
       pairs that no plan cheaper than the start can use
       (:func:`solvers.bound.fixable_pairs`); they are left out of the MIP.
    3. The MIP on the pairs left: separator cuts (40 % of the rest), then,
       unless proven optimal, flow contiguity. The smaller model holds every
       plan cheaper than the start, so its optimum and bound are the whole
       problem's; the returned bound is the better of the MIP's and the
       Lagrangian one. With more than :data:`EXACT_KERNEL_PAIRS` pairs left,
       growing kernels instead (:func:`_kernels`).

    Before the fixing, location-allocation also starts from the centres the
    Lagrangian relaxation chose (:func:`_from_lagrangian_centres`).
    """
    if problem.objective != "pmedian":
        raise ValueError("the 'exact' backend solves the 'pmedian' objective only; use 'auto' for worker bases")
    from solvers.lns import lns_rounds

    start = time.monotonic()
    end = start + time_limit_s
    say = progress or (lambda line: None)
    enumerated = _by_enumeration(problem, min(EXACT_ENUMERATION_SHARE * time_limit_s, EXACT_ENUMERATION_MAX_S), say)
    if enumerated is not None:
        enumerated.time_s = time.monotonic() - start
        return enumerated
    try:
        share = max(min(0.1 * time_limit_s, 5.0), 0.2)
        assign, centres, objective, log = heuristic_solve(problem, time_limit_s=share, seed=seed, progress=None)
        balanced = not check_plan(problem, assign)
        # a share of the time, capped: past a point a better start gains less than the MIP
        start_end = start + min(EXACT_START_SHARE * time_limit_s, 10.0 + 0.1 * time_limit_s, EXACT_START_MAX_S)
        plan = _location_allocation(problem, assign, centres, objective, balanced, start_end, log, say)
        if problem.n < EXACT_LNS_FROM_UNITS:  # new starts (next seeds) in the time left for the start
            plan = _more_rounds(problem, plan, share, seed, start, start_end - start, start_end, log, say)
        elif not check_plan(problem, plan[0]):
            plan = lns_rounds(problem, plan, seed=seed, heuristic_share=share, deadline=start_end,
                              location_allocation=_location_allocation, log=log, say=say)
        assign, centres, objective = plan[0], plan[1], plan[2]
        balanced = not check_plan(problem, assign)
        line = f"starting plan: {'balanced' if balanced else 'UNBALANCED'}, objective {objective:,.2f}"
    except InfeasibleError as err:  # no start reached the locked units: the MIP decides alone
        assign, balanced, log, line = None, False, [], f"starting plan: none ({err})"
    log.append(line)
    say(line)
    hint = assign if balanced else None
    allowed, lagrangian, found, costs = None, None, None, None
    if balanced:
        costs = cost_matrix(problem)
        relaxed = _strong_multipliers(problem, costs, EXACT_BOUND_SHARE * time_limit_s, log, say)
        # from the LP's optimal multipliers one evaluation gives the bound and its centres
        found = lower_bound(problem, upper_bound=float(objective), costs=costs, progress=None,
                            time_limit_s=max(EXACT_BOUND_SHARE * time_limit_s, 0.2), start=relaxed,
                            max_iterations=1 if relaxed is not None else 2000)
        if found is not None and np.isfinite(found.value):
            for line in found.log:
                log.append(line)
                say(line)
            better = _from_lagrangian_centres(problem, found.centres, (assign, centres, objective),
                                              min(end, time.monotonic() + EXACT_BOUND_SHARE * time_limit_s),
                                              log, say)
            if better is not None:
                assign, centres, objective = better
                hint = assign
            lagrangian = min(found.value, float(objective))
            fixing = fixable_pairs(problem, found.multipliers, float(objective), costs=costs)
            allowed = fixing.allowed
            log.append(fixing.summary())
            say(fixing.summary())
            if fixing.pairs > EXACT_KERNEL_PAIRS:
                return _kernels(problem, found, costs, (assign, centres, objective), lagrangian, start,
                                start + 0.95 * time_limit_s, log, say)
    # two exact models, neither faster everywhere on the published county instances
    # (benchmarks/bench_validi.py --compare): separator cuts first, flow for the rest
    try:
        sol = exact_solve(problem, time_limit_s=max(0.4 * (end - time.monotonic()), 0.5),
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
        sol = exact_solve(problem, time_limit_s=max(start + 0.95 * time_limit_s - time.monotonic(), 0.5),
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
    sol.time_s = time.monotonic() - start
    return sol


def _by_enumeration(problem: Problem, time_limit_s: float, say: ProgressCallback) -> Solution | None:
    """The proven optimum, or a proof of infeasibility, from the complete list of
    feasible districts (:func:`solvers.districts.partition`), on problems of at most
    :data:`EXACT_ENUMERATION_MAX_UNITS` units with equal sector bounds and no locks;
    ``None`` when the list does not fit ``time_limit_s`` and
    :data:`EXACT_ENUMERATION_MAX_DISTRICTS` (the MIP then decides).

    Raises
    ------
    InfeasibleError
        When no ``k`` listed districts cover every unit exactly once.
    """
    from solvers.districts import partition

    if (problem.n > EXACT_ENUMERATION_MAX_UNITS or problem.locked
            or len(set(zip(problem.lower, problem.upper))) != 1):
        return None
    lower, upper = float(problem.lower[0]), float(problem.upper[0])
    # the plan checker's slack (solvers.check.EPS): every district it accepts is listed
    slack = EPS * max(1.0, abs(upper))
    cost = problem.travel.rows(np.arange(problem.n)) * problem.weights[None, :]
    found = partition(problem.graph, np.asarray(problem.workload, dtype=np.float64), lower - slack, upper + slack,
                      problem.k,
                      cost, time_limit_s=time_limit_s, max_districts=EXACT_ENUMERATION_MAX_DISTRICTS)
    for line in found.log:
        say(f"district enumeration: {line}")
    if found.status == "infeasible" and found.n_districts == 0:
        raise InfeasibleError(
            f"no plan exists: no connected group of units has a workload in [{lower:,.6g}, {upper:,.6g}] "
            "(complete enumeration)")
    if found.status == "infeasible":
        raise InfeasibleError(
            f"no plan exists: the {found.n_districts:,} connected groups of units with a workload in "
            f"[{lower:,.6g}, {upper:,.6g}] (complete list) cannot cover every unit exactly once with "
            f"{problem.k} of them (proven by CP-SAT)")
    if found.status != "optimal":
        say(f"district enumeration: {found.reason}; the MIP decides")
        return None
    assign = np.asarray(found.assignment, dtype=np.intp)
    centres = best_centres(problem, assign)
    objective = float(problem.objective_value(assign, centres))
    return Solution(assignment=assign, centres=centres, objective=objective, status="optimal",
                    backend="enumeration", time_s=0.0, bound=min(float(found.bound), objective),
                    log=[f"district enumeration: {line}" for line in found.log])


def _strong_multipliers(problem: Problem, costs: np.ndarray, time_limit_s: float, log: list[str],
                        say: ProgressCallback) -> np.ndarray | None:
    """Optimal Lagrange multipliers from the complete strong LP relaxation
    (:func:`solvers.bound.strong_relaxation`) up to :data:`EXACT_STRONG_LP_MAX_UNITS`
    units, else (or when HiGHS does not finish) ``None``: the bundle method of
    :func:`solvers.bound.lower_bound` then estimates them."""
    if problem.n > EXACT_STRONG_LP_MAX_UNITS or len(set(zip(problem.lower, problem.upper))) != 1:
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
    log: list[str], say: ProgressCallback,
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Location-allocation started from the centres the Lagrangian relaxation chose (a
    Lagrangian heuristic: when the bound is tight they are close to the optimal centres);
    returns a plan cheaper than ``plan``, or ``None``."""
    from scipy.optimize import linear_sum_assignment

    assign, centres, objective = plan
    if chosen is None or len(set(chosen.tolist())) < problem.k or time.monotonic() > deadline - 1.0:
        return None
    chosen = np.asarray(chosen, dtype=np.intp)
    if len({(float(lo), float(hi)) for lo, hi in zip(problem.lower, problem.upper)}) == 1:
        # equal sectors: give each current sector the nearest chosen centre (keeps the hint useful)
        _, order = linear_sum_assignment(problem.travel.rows(centres)[:, chosen])
        chosen = chosen[order]
    new = _location_allocation(problem, assign, chosen, objective, True, deadline, log, say)
    if new[2] < objective - 1e-9 and not check_plan(problem, new[0]):
        line = f"Lagrangian centres: objective {objective:,.2f} -> {new[2]:,.2f}"
        log.append(line)
        say(line)
        return new[0], new[1], new[2]
    return None


def _kernels(
    problem: Problem, found: Bound, costs: np.ndarray, plan: tuple[np.ndarray, np.ndarray, float], bound: float,
    began: float, deadline: float, log: list[str], say: ProgressCallback,
) -> Solution:
    """Exact search by growing kernels, for problems whose fixing keeps too many pairs.

    A *kernel* keeps the pairs that Lagrangian fixing (:func:`solvers.bound.fixable_pairs`)
    keeps for a guessed cost ``guess`` between the bound and the current plan, the
    largest guess with at most :data:`EXACT_KERNEL_PAIRS` pairs, plus the plan's own.
    Every plan cheaper than ``guess`` lies in the kernel, so when the MIP (separator
    cuts) proves the kernel's optimum ``v`` with bound ``b``, ``min(b, guess)`` is a lower
    bound for the whole problem, and ``v < guess`` makes ``v`` optimal. Each round
    raises the bound or lowers the plan, then the next kernel is built from them.
    """
    assign, centres, objective = plan
    status, limit, tried = "feasible", EXACT_KERNEL_PAIRS, -np.inf
    while time.monotonic() < deadline - 2.0 and objective - bound > 1e-6 * abs(objective):
        for share in (1.0, 0.5, 0.25, 0.1, 0.03, 0.01):
            guess = bound + share * (objective - bound)
            kernel = fixable_pairs(problem, found.multipliers, guess, costs=costs)
            if kernel.pairs <= limit:
                break
        if guess <= tried + 1e-9 * abs(guess):
            break  # no larger kernel fits: stop here
        line = f"kernel below {guess:,.2f}: {kernel.pairs:,} pairs"
        log.append(line)
        say(line)
        try:
            sol = exact_solve(problem, time_limit_s=deadline - time.monotonic(), contiguity="cuts", hint=assign,
                              allowed=kernel.allowed | _pairs_of(assign, centres, problem.n))
        except InfeasibleError as err:
            log.append(f"kernel: {err}")
            break
        if sol.objective < objective - 1e-9 and not check_plan(problem, sol.assignment):
            assign, centres, objective = sol.assignment, sol.centres, sol.objective
        if sol.status == "optimal" and sol.bound is not None:
            tried = guess
            bound = max(bound, min(sol.bound, guess))
        else:
            limit //= 2  # the kernel was too hard for the time left: try smaller ones
        line = f"kernel done: objective {objective:,.2f}, bound {bound:,.2f} ({time.monotonic() - began:.1f} s)"
        log.append(line)
        say(line)
    bound = min(bound, objective)
    if objective - bound <= 1e-6 * abs(objective):
        status = "optimal"
    return Solution(assignment=assign, centres=centres, objective=float(objective), status=status, backend="exact",
                    time_s=time.monotonic() - began, bound=bound, log=log)


def _pairs_of(assign: np.ndarray, centres: np.ndarray, n: int) -> np.ndarray:
    """``(n, n)`` boolean with ``[centre, unit]`` True for the pairs a plan uses."""
    out = np.zeros((n, n), dtype=bool)
    out[np.asarray(centres)[np.asarray(assign)], np.arange(n)] = True
    return out


def _lp_warm_up(problem: Problem, centres: np.ndarray, lengths, candidates: int | None, hint: np.ndarray,
                deadline: float, log: list[str], say: ProgressCallback) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Location-allocation on the allocation LP (:func:`solvers.mip.lp_allocation`, rounded)
    until its value stops falling: ``(centres it ends with, their rounded LP assignment, LP
    value)`` (``None`` and ``inf`` when no LP was solved). Each step takes a fraction of a
    second where an allocation MIP from a poor start can take most of a minute."""
    best_value, best_centres, best_assign, seen = float("inf"), centres, None, set()
    while time.monotonic() < deadline - 1.0 and tuple(int(c) for c in centres) not in seen:
        seen.add(tuple(int(c) for c in centres))
        found = lp_allocation(problem, centres, lengths=lengths, candidates=candidates, hint=hint,
                              time_limit_s=deadline - time.monotonic())
        if found is None or found[1] >= best_value - 1e-9 * max(abs(best_value), 1.0):
            break
        best_value, best_centres, best_assign = found[1], centres, found[0]
        centres = recentre(problem, found[0], centres)
    if np.isfinite(best_value):
        line = f"location-allocation on the LP: {len(seen)} steps, LP value {best_value:,.0f}"
        log.append(line)
        say(line)
    return best_centres, best_assign, best_value


def _lp_screen(problem: Problem, centres: np.ndarray, hint: np.ndarray,
               deadline: float) -> tuple[np.ndarray, np.ndarray | None, float]:
    """:func:`_lp_warm_up` with the location-allocation loop's settings and no log: how
    :func:`solvers.lns.lns_rounds` screens its kicks."""
    return _lp_warm_up(problem, centres, edge_minutes(problem), _nearest_centres(problem), hint, deadline,
                       [], lambda line: None)


def _nearest_centres(problem: Problem) -> int | None:
    """With many sectors, location-allocation lets each unit choose among its nearest centres only."""
    return None if problem.k <= 6 else 4


def _location_allocation(
    problem: Problem,
    assign: np.ndarray,
    centres: np.ndarray,
    objective: float,
    balanced: bool,
    deadline: float,
    log: list[str],
    say: ProgressCallback,
    staged: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Alternate exact allocation (MIP) and re-centring until stable.

    Each allocation stops at :data:`LOCATION_ALLOCATION_GAP`, so the loop may
    stop at another fixed point than with exact allocations (re-solving the last
    step exactly cost more rounds than it gained within 60 s on AURA k = 11).
    ``staged`` is passed to :func:`solvers.mip.allocate` (default: by size)."""
    lengths = edge_minutes(problem)
    name = "heuristic"
    seen: set[tuple[int, ...]] = set()
    best = (objective if balanced else float("inf"), assign, centres)
    candidates = _nearest_centres(problem)
    if problem.n >= STAGED_MIN_UNITS and problem.objective != "base":
        # at most half the time left: on 64k units the LP steps could fill the limit, and the MIP needs the rest
        warm_end = time.monotonic() + 0.5 * (deadline - time.monotonic())
        centres = _lp_warm_up(problem, centres, lengths, candidates, assign, warm_end, log, say)[0]
    while time.monotonic() < deadline - 0.5:
        key = tuple(int(c) for c in centres)
        if key in seen:
            break
        seen.add(key)
        hint = best[1] if best[0] < float("inf") else None
        alloc = allocate(
            problem, centres, lengths=lengths, time_limit_s=deadline - time.monotonic(),
            candidates=candidates, hint=hint, relative_gap=LOCATION_ALLOCATION_GAP, staged=staged,
            stage_limit_s=ALLOCATION_STAGE_S,
        )
        log.extend(alloc.log)
        if alloc.assignment is None:
            line = f"allocation MIP: {alloc.status} for these centres; keeping the previous plan"
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
    return best[1], best[2], (best[0] if best[0] < float("inf") else objective), name
