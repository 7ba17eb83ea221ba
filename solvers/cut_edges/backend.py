"""Minimum cut edges: contiguous, balanced sectors with the fewest edges between sectors.

The objective (``Problem.objective == "cut_edges"``) is the number of
contiguity edges whose two units are in different sectors: a compactness
measure that needs no distances (Validi & Buchanan, *Political districting to
minimize cut edges*, Mathematical Programming Computation 14, 2022). With
:func:`cut_edges` ``weight=`` an edge attribute (e.g. ``"length"``, the shared
boundary in km), it is the summed attribute instead: the boundary length.

Backends of :func:`solve_cut_edges`:

``"heuristic"``
    A compact balanced start (:func:`start_plan`: the p-median heuristic of
    :mod:`solvers.construct.heuristic` on the problem's travel costs, rebalanced by the
    allocation MIP when local moves cannot), then :func:`improve_cut`: boundary
    moves and swaps that lower the cut while every sector stays connected and
    within its bounds, then a tabu search that may cross unbalanced plans
    (balance as a penalty); new starts (next seeds) while time is left. No bound.
``"exact"``
    :func:`exact_cut_edges`: the labeling MIP of Validi & Buchanan (``x[i, s]``
    assignment, ``y[e]`` cut indicators, single-commodity flow on uncut edges
    from one root per sector), HiGHS through OR-Tools MathOpt, warm-started
    with a short heuristic plan. ``status == "optimal"`` when proven; the
    bound is always reported. For up to a few hundred units (HiGHS may
    overrun the time limit on larger models).
``"auto"``
    ``"exact"`` up to :data:`AUTO_EXACT_MAX_UNITS` units, the heuristic alone
    above.

:attr:`Solution.centres` is each sector's weighted medoid under the problem's
travel costs (:func:`solvers.exact.model.best_centres`): a reference unit for maps
and reports, not part of the objective.

Tie-break
    For the ``"pmedian"`` and ``"base"`` objectives, cut edges (or boundary
    length) serve as a compactness tie-break: :func:`tie_break` lowers the cut
    of a valid plan with the same local search (:class:`_CutSearch`) while the
    primary objective stays at most ``(1 + slack) x`` the plan's own (``slack
    = 0``: ties only), every sector connected and within bounds, locks and the
    cap on moves kept; verified, else the input plan is returned.
    :func:`solvers.engine.solve` runs it with ``tie_break_slack=`` /
    ``tie_break_weight=`` (``sectorize solve --tie-break-slack``, ``--edge-weight``).

Examples
--------
>>> import networkx as nx, numpy as np
>>> from solvers.problem import DenseTravelTimes, Problem
>>> g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(4, 4))
>>> xy = np.array([(i // 4, i % 4) for i in range(16)], dtype=float)
>>> t = DenseTravelTimes(np.abs(xy[:, None] - xy[None]).sum(-1))
>>> p = Problem(g, np.ones(16), np.array([8.0, 8.0]), 0.0, t, objective="cut_edges")
>>> sol = solve_cut_edges(p, time_limit_s=10)
>>> sol.objective, sol.status, sorted(np.bincount(sol.assignment).tolist())
(4.0, 'optimal', [8, 8])
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np

from solvers import budget
from solvers.check import diagnose
from solvers.problem import InfeasibleError, NoPlanFoundError, ProgressCallback, Problem, Solution
from solvers.cut_edges.search import heuristic_cut_edges
from solvers.cut_edges.exact import exact_cut_edges


CutBackend = Literal["auto", "heuristic", "exact"]
CUT_BACKENDS: tuple[str, ...] = ("auto", "heuristic", "exact")

#: ``"auto"`` runs the exact MIP up to this many units, the heuristic alone above (on larger
#: graphs HiGHS may overrun the time limit in its root node).
AUTO_EXACT_MAX_UNITS = 400

#: The warm start of the MIP stops after this many heuristic starts in a row without a better plan.
WARM_START_STALL = 10


def solve_cut_edges(
    problem: Problem,
    *,
    backend: CutBackend = "auto",
    time_limit_s: float = 30.0,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    weight: str | None = None,
    start: np.ndarray | None = None,
) -> Solution:
    """Contiguous, balanced plan with the fewest cut edges (see the module docstring).

    Parameters
    ----------
    problem
        The problem; its ``objective`` is not read (any problem can be solved
        for cut edges), its travel costs only shape the starting plans and
        place :attr:`Solution.centres` (weighted medoids).
    backend
        ``"auto"``, ``"heuristic"`` or ``"exact"``.
    time_limit_s
        Budget in seconds of the active clock, wall or work (:mod:`solvers.budget`).
    seed
        Seed of the starting plans, the local search and HiGHS.
    progress
        Called with progress lines.
    weight
        Edge attribute summed instead of counting edges (see :func:`cut_edges`).
    start
        ``(n,)`` a plan to start from (repaired and rebalanced if needed).

    Returns
    -------
    Solution
        ``objective``: the cut (edges, or summed ``weight``); ``bound``/``gap``
        and ``status == "optimal"`` from the exact MIP only.

    Raises
    ------
    InfeasibleError
        When the up-front diagnosis or the MIP proves that no plan exists;
        :class:`~solvers.problem.NoPlanFoundError` (nothing proven) when no plan was
        found in the time without such a proof.
    """
    # stays whole: the dispatch over the cut-edges backends; mostly docstring
    if backend not in CUT_BACKENDS:
        raise ValueError(f"the cut-edges objective has backends {', '.join(CUT_BACKENDS)}; got {backend!r}")
    if problem.previous is not None and start is None:
        start = np.asarray(problem.previous)
    began = time.monotonic()  # wall seconds, for Solution.time_s
    clock = budget.current()
    start_clock = clock.now()
    reasons = diagnose(problem)
    if reasons:
        raise InfeasibleError("; ".join(reasons))
    say = progress or (lambda line: None)
    if backend == "auto" and problem.n > AUTO_EXACT_MAX_UNITS:
        say(f"auto: {problem.n:,} units > {AUTO_EXACT_MAX_UNITS}: cut-edges heuristic only")
        backend = "heuristic"
    if backend == "heuristic":
        return heuristic_cut_edges(problem, weight=weight, time_limit_s=time_limit_s, seed=seed,
                                   progress=progress, start=start)
    # a short heuristic for the warm start (until WARM_START_STALL starts bring nothing), the MIP for the rest
    log: list[str] = []
    share = max(min(0.2 * time_limit_s, 10.0), 0.5)
    try:
        first = heuristic_cut_edges(problem, weight=weight, time_limit_s=share, seed=seed, progress=progress,
                                    start=start, stall=WARM_START_STALL)
        hint, log = first.assignment, first.log
    except NoPlanFoundError as err:
        first, hint = None, None
        log.append(f"no heuristic start ({err}); the MIP decides alone")
    try:
        sol = exact_cut_edges(problem, weight=weight, time_limit_s=max(start_clock + time_limit_s - clock.now(), 0.5),
                              hint=hint, progress=progress, seed=seed)
    except NoPlanFoundError:
        if first is None:
            raise
        first.log.append("cut-edges MIP: no plan in the time left; heuristic plan kept")
        first.time_s = time.monotonic() - began
        return first
    sol.log[:0] = log
    sol.time_s = time.monotonic() - began
    return sol
