"""Tie-break: fewer cut edges (or a shorter boundary) for a plan of the ``"pmedian"`` or ``"base"``
objective, its objective kept within ``(1 + slack) x`` its own (:func:`tie_break`)."""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from solvers import budget
from solvers.check import check_plan
from solvers.construct.heuristic import recentre
from solvers.problem import ProgressCallback, Problem, Solution, TieBreak, cut_edges
from solvers.cut_edges.common import edge_costs
from solvers.cut_edges.search import CutSearch


#: Share of :func:`solvers.engine.solve`'s time limit kept for the tie-break, and its cap in seconds
#: (:func:`tie_break_seconds`).
TIE_BREAK_SHARE = 0.1
TIE_BREAK_MAX_S = 10.0

#: Relative tolerance on the slack bound, for floating-point sums only: the returned objective is at
#: most ``(1 + slack) x start + TIE_BREAK_RTOL x max(|that|, 1)``.
TIE_BREAK_RTOL = 1e-9


def tie_break_seconds(time_limit_s: float) -> float:
    """Seconds of a ``time_limit_s`` solve kept for the tie-break: 10 %, at most 10 s."""
    return min(TIE_BREAK_SHARE * time_limit_s, TIE_BREAK_MAX_S)


def check_tie_break(problem: Problem, slack: float | None, weight: str | None) -> None:
    """Raise :class:`ValueError` when a tie-break cannot run with these arguments.

    ``slack`` must be a finite number >= 0, the objective ``"pmedian"`` or
    ``"base"``, and ``weight`` (when given) an attribute of at least one edge,
    finite and >= 0 wherever present (an edge without it counts 1, as in
    :func:`cut_edges`). ``slack=None`` with ``weight=None`` is no tie-break.
    """
    if slack is None:
        if weight is not None:
            raise ValueError("an edge weight for the tie-break needs a slack (0 for a pure tie-break)")
        return
    if problem.objective == "cut_edges":
        raise ValueError("the tie-break lowers the cut of a 'pmedian' or 'base' plan; the 'cut_edges' "
                         "objective minimises the cut already (give solve_cut_edges weight= for boundary length)")
    if not (isinstance(slack, (int, float)) and math.isfinite(slack) and slack >= 0):
        raise ValueError(f"the tie-break slack must be a finite fraction >= 0 (0.01 = 1 %), got {slack!r}")
    if weight is not None:
        if problem.graph.number_of_edges() and not any(weight in d for *_, d in problem.graph.edges(data=True)):
            raise ValueError(f"no edge of the graph has the attribute {weight!r}")
        edge_costs(problem, weight)


def tie_break(
    problem: Problem,
    assignment: np.ndarray,
    centres: np.ndarray,
    *,
    slack: float = 0.0,
    weight: str | None = None,
    time_limit_s: float = 10.0,
    seed: int = 0,
    patience: int = 1000,
) -> TieBreak:
    """Fewer cut edges (or a shorter boundary) for a valid plan, at a bounded cost in its own objective.

    A compactness tie-break for the ``"pmedian"`` and ``"base"`` objectives:
    the local search of :func:`improve_cut` (descent over boundary moves and
    swaps, then tabu search), with two more rules on every move and swap:
    the primary objective, kept incrementally from the fixed centres'
    :meth:`Problem.cost_rows`, stays at most ``limit = (1 + slack) x`` the
    start's, and the cap on moves from a previous plan
    (:attr:`Problem.max_moved`) and the territory caps (:attr:`Problem.max_size`)
    hold. Centres never leave their sector.
    Between rounds each centre moves to its sector's weighted medoid
    (:func:`solvers.construct.heuristic.recentre`) when that lowers the objective,
    which leaves more room under the limit. With ``slack == 0`` no move
    worsens the objective: only ties (and improvements) are taken. The
    descent also takes cut-neutral moves that lower the objective.

    Guaranteed (verified at the end, else the input plan is returned with
    ``changed`` False and the reason in ``log``): the plan passes
    :func:`solvers.check.check_plan` (contiguity, bounds, locks, cap on
    moves, territory caps); ``objective <= limit`` up to :data:`TIE_BREAK_RTOL` relative
    rounding; the cut is not above the start's. Not guaranteed: the fewest
    cut edges within the limit (a local search).

    Parameters
    ----------
    problem
        A ``"pmedian"`` or ``"base"`` problem.
    assignment, centres
        A valid plan and the centres its objective is measured from (e.g. a
        :class:`Solution`'s).
    slack
        Relative room on the objective (``0.005``: at most +0.5 %).
    weight
        Edge attribute to sum instead of counting edges (e.g. shared boundary length).
    time_limit_s
        Seconds of the active clock (:mod:`solvers.budget`), wall or work.
    seed
        Seed of the move order: same seed, same plan (unless wall time cuts the search short;
        a work clock never lets it).
    patience
        Tabu iterations without a better plan before a round stops.

    Raises
    ------
    ValueError
        Bad arguments (:func:`check_tie_break`), or an invalid starting plan.

    Examples
    --------
    >>> from solvers.problem import DenseTravelTimes
    >>> g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(2, 4), ordering="sorted")
    >>> t = DenseTravelTimes(np.zeros((8, 8)))               # every plan costs 0: all are ties
    >>> p = Problem(g, np.ones(8), np.array([4.0, 4.0]), 0.0, t)
    >>> r = tie_break(p, np.array([0, 0, 0, 1, 0, 1, 1, 1]), np.array([0, 7]))
    >>> (r.edges_before, r.edges_after), r.objective, r.assignment.tolist()
    ((4, 2), 0.0, [0, 0, 1, 1, 0, 0, 1, 1])
    """
    # stays whole: checks, one local search, then the verification of its result; mostly docstring
    began = time.monotonic()
    check_tie_break(problem, slack, weight)
    a0 = np.asarray(assignment, dtype=np.intp).copy()
    c0 = np.asarray(centres, dtype=np.intp).copy()
    if c0.shape != (problem.k,) or (c0 < 0).any() or (c0 >= problem.n).any():
        raise ValueError(f"centres must be {problem.k} units of the problem, got {c0.tolist()}")
    problems = check_plan(problem, a0)
    if problems:
        raise ValueError("tie_break needs a valid plan to start from: " + "; ".join(problems[:3]))
    g = problem.graph
    obj0 = problem.objective_value(a0, c0)
    limit = obj0 + float(slack) * abs(obj0)
    tol = TIE_BREAK_RTOL * max(abs(limit), 1.0)
    cut0, edges0 = float(cut_edges(g, a0, weight=weight)), int(cut_edges(g, a0))
    clock = budget.current()
    deadline = clock.now() + 0.97 * time_limit_s  # a reserve for the checks below
    rng = np.random.default_rng(seed)
    # the search keeps half the rounding tolerance, the verification below allows all of it
    search = CutSearch(problem, a0.copy(), weight, centres=c0, limit=limit + 0.5 * tol)
    while clock.now() < deadline:
        search.descend(rng, deadline)
        best = search.state()
        found = search.tabu(rng, deadline, patience)
        if found[1] < best[1] - 1e-9:
            search.restore(found)
            search.descend(rng, deadline)
        else:
            search.restore(best)
        # each centre to its sector's medoid: never a higher objective, more room under the limit
        moved = recentre(problem, search.a, search.centres)
        if np.array_equal(moved, search.centres):
            break
        if problem.objective_value(search.a, moved) >= search.primary - search.primary_eps:
            break
        search.set_centres(moved)
    a1, c1 = search.a.copy(), search.centres.copy()
    obj1 = problem.objective_value(a1, c1)
    cut1 = float(cut_edges(g, a1, weight=weight))
    what = "cut edges" if weight is None else f"boundary ({weight})"
    log: list[str] = []
    issues = check_plan(problem, a1)
    if issues:
        log.append(f"tie-break: its plan failed the check ({'; '.join(issues[:3])}); input plan kept")
    elif obj1 > limit + tol:
        log.append(f"tie-break: objective {obj1:,.6g} above the limit {limit:,.6g}; input plan kept")
    elif cut1 > cut0 + 1e-9:
        log.append(f"tie-break: {what} rose from {cut0:,.6g} to {cut1:,.6g}; input plan kept")
    better = not log and (cut1 < cut0 - 1e-9 or obj1 < obj0 - search.primary_eps)
    if not better:
        a1, c1, obj1, cut1 = a0, c0, obj0, cut0
    edges1 = int(cut_edges(g, a1))
    change = (obj1 - obj0) / abs(obj0) if obj0 else 0.0
    line = f"tie-break: cut edges {edges0:,} -> {edges1:,}"
    if weight is not None:
        line = f"tie-break: boundary ({weight}) {cut0:,.6g} -> {cut1:,.6g}, cut edges {edges0:,} -> {edges1:,}"
    log.append(f"{line}, objective {100 * change:+.2f} % (slack {100 * slack:g} %), "
               f"{time.monotonic() - began:.1f} s")
    return TieBreak(assignment=a1, centres=c1, objective=float(obj1), objective_before=float(obj0),
                    limit=float(limit), cut_before=cut0, cut_after=cut1, edges_before=edges0, edges_after=edges1,
                    slack=float(slack), weight=weight, changed=better, time_s=time.monotonic() - began, log=log)


def tie_break_solution(
    problem: Problem,
    solution: Solution,
    *,
    slack: float,
    weight: str | None = None,
    time_limit_s: float = 10.0,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> Solution:
    """:func:`tie_break` on a :class:`Solution` (what :func:`solvers.engine.solve` runs).

    Returns a new Solution with the tie-broken plan, its objective
    recomputed, the same ``bound`` (never above the objective), the log
    lines appended and :attr:`Solution.tie_break` set. The status stays
    honest: ``"optimal"`` only when the input was proven optimal and the
    objective did not rise (beyond rounding), or when the bound proves the
    new objective; a proven-optimal plan traded for fewer cut edges with a
    positive slack becomes ``"feasible"`` (its ``gap`` measured against the bound).
    """
    result = tie_break(problem, solution.assignment, solution.centres, slack=slack, weight=weight,
                       time_limit_s=max(time_limit_s, 0.1), seed=seed)
    say = progress or (lambda line: None)
    for line in result.log:
        say(line)
    out = replace(solution, log=[*solution.log, *result.log], time_s=solution.time_s + result.time_s,
                  tie_break=result)
    if not result.changed:
        return out
    objective = result.objective
    tol = TIE_BREAK_RTOL * max(abs(objective), 1.0)
    bound = None if solution.bound is None else min(solution.bound, objective)
    proven = ((solution.status == "optimal" and objective <= solution.objective + tol)
              or (bound is not None and objective - bound <= tol))
    status = "optimal" if proven else ("feasible" if solution.status == "optimal" else solution.status)
    return replace(out, assignment=result.assignment, centres=result.centres, objective=objective,
                   status=status, bound=bound)
