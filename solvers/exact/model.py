"""Exact location-allocation: the whole districting problem as one MIP, with a proven bound.

Unlike the location-allocation loop of :mod:`solvers.engine`, which fixes the
centres and only allocates, this model also *chooses* the centres (Hess et al.
1965), so its bound holds for the whole problem and ``status == "optimal"``
means no contiguous, balanced plan is cheaper.

The model
---------
``x[i, j] = 1`` when unit ``i`` belongs to the sector centred on unit ``j``
(``x[j, j] = 1``: ``j`` is a centre). Sectors are grouped into *classes* of
interchangeable sectors: the same bounds ``[L, U]`` and no locked units.
``y[j, g] = 1`` when centre ``j`` serves a sector of class ``g``; with a single
class (all targets equal, no locks) ``y`` is dropped and the model is the
classic Hess model.

.. math::

    \\min \\sum_{i,j} w_i\\, t_{ji}\\, x_{ij}
    \\quad\\text{s.t.}\\quad \\sum_j x_{ij} = 1 \\;(1),\\quad x_{ij} \\le x_{jj} \\;(2),\\quad
    \\sum_j x_{jj} = k \\;(3),\\quad \\sum_g y_{jg} = x_{jj} \\;(4),\\quad \\sum_j y_{jg} = m_g \\;(5),

    \\sum_g L_g y_{jg} \\le \\sum_i p_i x_{ij} \\le \\sum_g U_g y_{jg} \\;(6),

with ``w`` the objective weights, ``t`` travel minutes, ``p`` the workload and
``m_g`` the number of sectors in class ``g``. With territory caps
(:attr:`Problem.max_size`, ``a_i`` the size of unit ``i``, ``A_g`` the class's
cap), also ``sum_i a_i x_ij <= sum_g A_g y_jg`` (6'), and the classes are
split by cap. A unit locked to sector ``s``
may only join a centre that serves ``s`` (``x[u, j] <= y[j, g(s)]``, class
``g(s)`` = ``{s}``; (7)). Sector-indexed variables ``x[i, s]`` would need the
centre's cost linearised with a big-M and carry a k!-fold symmetry between
sectors of equal targets; the classes keep the Hess model's size (``n^2 +
n * classes``) and remove that symmetry. Before the model is built, ``x[i, j]``
is dropped when every path from ``j`` to ``i`` already carries more workload
than the largest sector may hold (exact: a connected sector contains such a path).

Contiguity, one of:

``"flow"`` (exact, default)
    Shirabe's single-commodity flow per centre ``j``: ``j`` sends one unit of
    flow to every member of its sector along contiguity edges between members.
    A plan is feasible exactly when every sector is connected.
``"cuts"`` (exact)
    The model without contiguity, solved again and again: each time a sector
    of the optimum is disconnected, the *a,b-separator* inequalities of
    :func:`separators` (Validi, Buchanan & Lykhovyd 2022, model "cut") that cut
    it off are added. Each solve's bound is a bound for the whole problem;
    the first connected optimum is optimal. Fast when the optimum without
    contiguity is nearly connected, slow when it is far from it.
``"shortest_path"`` (a restriction)
    ``x[i, j] <= sum of x[v, j]`` over neighbours ``v`` of ``i`` strictly
    closer to ``j`` along the graph (edge lengths in travel minutes, see
    :func:`solvers.allocation.mip.edge_minutes`; Oehrlein & Haunert 2017). Much smaller,
    but it forbids connected sectors that are not "closed towards their
    centre", so it can miss the optimum (``tests/test_exact.py`` has a
    six-unit example). Its solutions are therefore reported as ``"feasible"`` with
    no bound, and when it finds no plan the flow model decides.

All three also carry ``x[i, j] <= sum of x[v, j]`` over the neighbours ``v``
of ``i`` (a member other than the centre has a neighbour in its sector; (8)).
The ``"shortest_path"`` restriction is (9), the flow of ``"flow"`` (10).

Solved with OR-Tools MathOpt; HiGHS by default, SCIP (``solver="scip"``) and
CP-SAT (``solver="cpsat"``) on the same model for comparison. The full model has
``n^2`` assignment variables (plus ``n x 2m`` flow variables), which only
small problems afford (the published US county instances, n <= 105). Given
``allowed`` pairs from Lagrangian fixing (:func:`solvers.bound.fixing.fixable_pairs`,
as the engine's ``"exact"`` backend does), it keeps only the pairs that a plan
cheaper than the hint can use, often a few per cent of them; when the fixing keeps
too much, it ends at the time limit with the starting plan and a gap.

Usage::

    from solvers.exact.model import exact_solve
    sol = exact_solve(problem, time_limit_s=60)          # flow contiguity, HiGHS
    sol.status, sol.objective, sol.bound, sol.gap
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import dataclass
from typing import Literal

import networkx as nx
import numpy as np
from ortools.math_opt.python import mathopt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from solvers import budget
from solvers.check import check_plan, diagnose
from solvers.allocation.mip import edge_minutes
from solvers.problem import InfeasibleError, NoPlanFoundError, ProgressCallback, Problem, Solution

Contiguity = Literal["cuts", "flow", "shortest_path"]
SolverName = Literal["highs", "scip", "cpsat"]

SOLVERS: dict[str, mathopt.SolverType] = {
    "highs": mathopt.SolverType.HIGHS,
    "scip": mathopt.SolverType.GSCIP,
    "cpsat": mathopt.SolverType.CP_SAT,
}


@dataclass(frozen=True)
class SectorClass:
    """Interchangeable sectors: same bounds, same territory cap, no locked units.

    ``sectors`` are sector indices, ``lower``/``upper`` their common workload
    bounds (already rounded inwards when every workload is an integer),
    ``max_size`` their common territory cap (``inf`` without caps).
    """

    sectors: tuple[int, ...]
    lower: float
    upper: float
    max_size: float = math.inf


@dataclass
class HessModel:
    """The built MIP and the handles needed to read a plan back."""

    model: mathopt.Model
    x: dict[tuple[int, int], mathopt.Variable]
    y: dict[tuple[int, int], mathopt.Variable]
    classes: list[SectorClass]


#: An infinite territory cap written into a MIP row (a class without a cap, beside capped classes).
BIG_CAP = 1e15


def sector_classes(problem: Problem) -> list[SectorClass]:
    """Group the sectors into classes of interchangeable sectors.

    Sectors with locked units each form their own class; the others are
    grouped by equal bounds and equal territory caps. When every workload is an integer (e.g. patients
    or inhabitants), bounds are rounded inwards (``ceil(L)``, ``floor(U)``), which
    removes no plan and spares the solver floating-point slack.

    Examples
    --------
    >>> import networkx as nx
    >>> from solvers.problem import DenseTravelTimes
    >>> p = Problem(nx.path_graph(4), np.ones(4), np.array([1.0, 1.0, 2.0]), 0.0,
    ...             DenseTravelTimes(np.zeros((4, 4))))
    >>> [c.sectors for c in sector_classes(p)]
    [(0, 1), (2,)]
    """
    lower, upper = problem.lower.copy(), problem.upper.copy()
    w = np.asarray(problem.workload, dtype=float)
    if np.all(w == np.round(w)):
        lower = np.ceil(lower - 1e-9 * np.abs(lower))
        upper = np.floor(upper + 1e-9 * np.abs(upper))
    locked_sectors = set(problem.locked.values())
    caps = problem.size_caps if problem.size is not None else np.full(problem.k, math.inf)
    groups: dict[tuple, list[int]] = {}
    for s in range(problem.k):
        key = ("locked", s) if s in locked_sectors else (float(lower[s]), float(upper[s]), float(caps[s]))
        groups.setdefault(key, []).append(s)
    return [SectorClass(tuple(ss), float(lower[ss[0]]), float(upper[ss[0]]), float(caps[ss[0]]))
            for ss in groups.values()]


def reachable_pairs(problem: Problem, max_load: float) -> np.ndarray:
    """``(n, n)`` boolean: ``ok[j, i]`` when some path from ``j`` to ``i``
    (both included) carries at most ``max_load`` workload.

    A connected sector holding ``i`` and centred on ``j`` contains such a
    path, so ``x[i, j]`` can be dropped when ``ok[j, i]`` is False.
    """
    n = problem.n
    w = np.asarray(problem.workload, dtype=float)
    edges = np.array(list(problem.graph.edges), dtype=np.intp).reshape(-1, 2)
    u = np.r_[edges[:, 0], edges[:, 1]]
    v = np.r_[edges[:, 1], edges[:, 0]]
    # arc u -> v costs the workload of v; a tiny floor keeps zero-workload arcs
    step = csr_matrix((w[v] + 1e-9, (u, v)), shape=(n, n))
    load = dijkstra(step, directed=True) + w[:, None]
    return load <= max_load * (1 + 1e-9)


def build_model(
    problem: Problem,
    contiguity: Contiguity,
    *,
    integer_flow: bool = False,
    allowed: np.ndarray | None = None,
    deadline: float | None = None,
) -> HessModel:
    """Build the Hess location-allocation MIP of the module docstring.

    Parameters
    ----------
    problem
        A ``"pmedian"`` problem.
    contiguity
        ``"flow"``, ``"cuts"`` (no contiguity constraints yet: the caller adds
        separators) or ``"shortest_path"`` (a restriction).
    integer_flow
        Make flow variables integer (CP-SAT accepts integer variables only).
    allowed
        ``(n, n)`` boolean, ``allowed[j, i]`` False drops ``x[i, j]`` (e.g.
        :func:`solvers.bound.fixing.fixable_pairs`); the model then holds only the
        plans that use allowed pairs.
    deadline
        A time of the active clock (:func:`solvers.budget.now`): building stops with
        :class:`ModelTooLargeError` when it passes (large models take tens
        of seconds to build in Python). A work clock counts the pairs built, and refuses
        at once a model whose building and expected root (:func:`solvers.budget.exact_root_work`,
        with :data:`NONZEROS_PER_PAIR`) would pass it.
    """
    # stays whole: builds one model: each block adds one constraint family of the module docstring
    def too_large() -> ModelTooLargeError:
        return ModelTooLargeError(f"the MIP ({int(ok.sum()):,} unit-centre pairs) could not be built and solved "
                                  "in the time left")

    def check_clock() -> None:
        if deadline is not None and budget.now() > deadline:
            raise too_large()

    n = problem.n
    classes = sector_classes(problem)
    w = np.asarray(problem.workload, dtype=float)
    big = max(c.upper for c in classes)
    ok = reachable_pairs(problem, big)
    if allowed is not None:
        ok &= np.asarray(allowed, dtype=bool)
    # variables and constraint terms per unit-centre pair; the flow model has 2.3 times as many
    pairs = int(ok.sum()) * (2.3 if contiguity == "flow" else 1.0)
    clock = budget.current()
    if clock.deterministic and deadline is not None:  # a node limit cannot stop the root: it must fit too
        nonzeros = NONZEROS_PER_PAIR.get(contiguity, NONZEROS_PER_PAIR["cuts"]) * int(ok.sum())
        expected = pairs * clock.costs.exact_build + budget.exact_root_work(int(nonzeros))
        if clock.now() + expected > deadline:
            raise too_large()
    budget.tick("exact_build", pairs)
    nbrs = [np.fromiter(problem.graph.adj[i], dtype=np.intp) for i in range(n)]
    if contiguity == "shortest_path":
        dist = dijkstra(edge_minutes(problem), directed=False)
        ok &= _closed_towards_centre(ok, dist, nbrs)
    elif contiguity not in ("cuts", "flow"):
        raise ValueError(f"unknown contiguity {contiguity!r}; choose 'cuts', 'flow' or 'shortest_path'")
    centres = np.flatnonzero(np.diag(ok))
    minutes = problem.travel.rows(centres)  # (len(centres), n)
    weights = problem.weights

    model = mathopt.Model(name="hess")
    x: dict[tuple[int, int], mathopt.Variable] = {}
    cost: dict[tuple[int, int], float] = {}
    members: dict[int, np.ndarray] = {}
    for r, j in enumerate(centres):
        check_clock()
        members[j] = np.flatnonzero(ok[j])
        for i in members[j]:
            x[i, j] = model.add_binary_variable(name=f"x_{i}_{j}")
            cost[i, j] = float(weights[i] * minutes[r, i])
    by_unit: dict[int, list[mathopt.Variable]] = {i: [] for i in range(n)}
    for (i, j), var in x.items():
        by_unit[i].append(var)
    for i, vars_i in by_unit.items():
        if not vars_i:
            raise InfeasibleError(
                f"{problem.label(i)} cannot join any sector: every path to a possible centre "
                f"carries more than the largest sector's caseload {big:.1f}"
            )
        model.add_linear_constraint(mathopt.fast_sum(vars_i) == 1)  # (1)
    model.add_linear_constraint(mathopt.fast_sum(x[j, j] for j in centres) == problem.k)  # (3)

    y: dict[tuple[int, int], mathopt.Variable] = {}
    if len(classes) > 1:
        for j in centres:
            for g in range(len(classes)):
                y[j, g] = model.add_binary_variable(name=f"y_{j}_{g}")
            model.add_linear_constraint(mathopt.fast_sum(y[j, g] for g in range(len(classes))) == x[j, j])  # (4)
        for g, c in enumerate(classes):
            model.add_linear_constraint(mathopt.fast_sum(y[j, g] for j in centres) == len(c.sectors))  # (5)

    for j in centres:
        check_clock()
        m_j = members[j]
        load = mathopt.fast_sum(float(w[i]) * x[i, j] for i in m_j if w[i] > 0)
        if y:  # (6)
            model.add_linear_constraint(load >= mathopt.fast_sum(c.lower * y[j, g] for g, c in enumerate(classes)))
            model.add_linear_constraint(load <= mathopt.fast_sum(c.upper * y[j, g] for g, c in enumerate(classes)))
        else:
            model.add_linear_constraint(load >= classes[0].lower * x[j, j])
            model.add_linear_constraint(load <= classes[0].upper * x[j, j])
        if problem.size is not None:  # (6') the territory within the cap of the class served
            size = problem.sizes
            territory = mathopt.fast_sum(float(size[i]) * x[i, j] for i in m_j if size[i] > 0)
            if y:
                model.add_linear_constraint(
                    territory <= mathopt.fast_sum(min(c.max_size, BIG_CAP) * y[j, g] for g, c in enumerate(classes)))
            else:
                model.add_linear_constraint(territory <= min(classes[0].max_size, BIG_CAP) * x[j, j])
        for i in m_j:
            if i != j:
                model.add_linear_constraint(x[i, j] <= x[j, j])  # (2)

    # (7) a unit locked to sector s joins only a centre serving s's own class
    # (with a single class, k = 1, there is nothing to choose)
    class_of = {s: g for g, c in enumerate(classes) for s in c.sectors}
    for u, s in problem.locked.items() if y else ():
        g = class_of[s]
        for j in centres:
            if (u, j) in x:
                model.add_linear_constraint(x[u, j] <= y[j, g])

    # (8) a member other than the centre has a neighbour in its sector (valid for
    # any connected sector of two or more units; strengthens the relaxation)
    for j in centres:
        check_clock()
        for i in members[j]:
            if i != j and j not in nbrs[i]:
                model.add_linear_constraint(
                    x[i, j] <= mathopt.fast_sum(x[v, j] for v in nbrs[i] if ok[j, v])
                )

    if contiguity == "shortest_path":  # (9)
        for j in centres:
            for i in members[j]:
                if i == j:
                    continue
                pred = [v for v in nbrs[i] if ok[j, v] and dist[j, v] < dist[j, i]]
                model.add_linear_constraint(x[i, j] <= mathopt.fast_sum(x[v, j] for v in pred))
    elif contiguity == "flow":  # (10)
        _add_flow(model, x, members, nbrs, w, big, integer_flow, check_clock)

    model.minimize(mathopt.fast_sum(cost[key] * var for key, var in x.items()))
    return HessModel(model, x, y, classes)


def _closed_towards_centre(ok: np.ndarray, dist: np.ndarray, nbrs: list[np.ndarray]) -> np.ndarray:
    """Drop pairs whose unit has no allowed neighbour strictly closer to the centre, until stable."""
    ok = ok.copy()
    n = ok.shape[0]
    changed = True
    while changed:
        changed = False
        for j in range(n):
            if not ok[j, j]:
                ok[j] = False
                continue
            d = dist[j]
            for i in np.flatnonzero(ok[j]):
                if i != j and not np.any(ok[j, nbrs[i]] & (d[nbrs[i]] < d[i])):
                    ok[j, i] = False
                    changed = True
    return ok


def _add_flow(
    model: mathopt.Model,
    x: dict[tuple[int, int], mathopt.Variable],
    members: dict[int, np.ndarray],
    nbrs: list[np.ndarray],
    w: np.ndarray,
    big: float,
    integer_flow: bool,
    check_clock=lambda: None,
) -> None:
    """Shirabe flow per centre ``j``: every member of j's sector consumes one
    unit of flow that reaches it from ``j`` through members only."""
    # a sector holds at most this many units (lightest units first)
    lightest = np.cumsum(np.sort(w))
    max_units = int(np.searchsorted(lightest, big * (1 + 1e-9), side="right"))
    for j, m_j in members.items():
        check_clock()
        inside = np.zeros(len(w), dtype=bool)
        inside[m_j] = True
        cap = float(max(min(len(m_j), max_units) - 1, 1))
        inflow: dict[int, list[mathopt.Variable]] = {int(i): [] for i in m_j}
        outflow: dict[int, list[mathopt.Variable]] = {int(i): [] for i in m_j}
        for u in m_j:
            for v in nbrs[u]:
                if inside[v] and v != j:
                    f = (model.add_integer_variable if integer_flow else model.add_variable)(
                        lb=0.0, ub=cap, name=f"f_{j}_{u}_{v}"
                    )
                    outflow[int(u)].append(f)
                    inflow[int(v)].append(f)
        for v in m_j:
            if v == j:
                continue
            into = mathopt.fast_sum(inflow[int(v)])
            model.add_linear_constraint(into - mathopt.fast_sum(outflow[int(v)]) == x[v, j])
            model.add_linear_constraint(into <= cap * x[v, j])


def separators(graph: nx.Graph, assignment: np.ndarray, centres: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Separator inequalities violated by a plan whose sectors are not connected.

    For every piece ``S`` of a sector that does not hold the sector's centre,
    returns ``(j, S, C)`` for every unit ``j`` outside ``S`` and not touching
    it, where ``C`` is the part of ``S``'s neighbourhood that ``j`` reaches
    without crossing ``S``. Any path from ``S`` to ``j`` passes through ``C``,
    so ``x[a, j] <= sum of x[c, j] over c in C`` for every ``a`` in ``S``
    holds for every plan with connected sectors (Validi, Buchanan &
    Lykhovyd 2022, model "cut"); the plan at hand violates it for its own
    centre.
    """
    out = []
    for s, centre in enumerate(centres):
        members = np.flatnonzero(assignment == s)
        for piece in nx.connected_components(graph.subgraph(members.tolist())):
            if centre in piece:
                continue
            border = set().union(*(graph.adj[u] for u in piece)) - piece
            rest = graph.subgraph(set(graph.nodes) - piece)
            for comp in nx.connected_components(rest):
                cut = np.array(sorted(border & comp), dtype=np.intp)
                for j in comp - border:
                    out.append((int(j), np.array(sorted(piece), dtype=np.intp), cut))
    return out


def best_centres(problem: Problem, assignment: np.ndarray) -> np.ndarray:
    """``(k,)`` the member of each sector that minimises its objective (exact weighted medoid)."""
    w = problem.weights
    centres = np.zeros(problem.k, dtype=np.intp)
    for s in range(problem.k):
        m = np.flatnonzero(assignment == s)
        if m.size:
            centres[s] = m[int(np.argmin(problem.travel.rows(m)[:, m] @ w[m]))]
    return centres


@dataclass
class _Run:
    """One MIP solve, read back."""

    reason: mathopt.TerminationReason
    plan: tuple[np.ndarray, np.ndarray, float] | None  # assignment, centres, objective
    bound: float | None


def _solve_once(
    problem: Problem, built: HessModel, solver: str, seconds: float, relative_gap: float,
    incumbent: tuple[np.ndarray, np.ndarray, float] | None, progress: ProgressCallback | None,
    size: tuple[int, int, int] | None = None,
) -> _Run:
    """One solve of ``built`` within ``seconds`` of the active clock; ``size`` is the model's
    ``(rows, columns, nonzeros)`` when the caller counted them (work mode, HiGHS)."""
    model_params = None
    if incumbent is not None:
        model_params = mathopt.ModelSolveParameters(solution_hints=[_hint(built, *incumbent[:2])])
    clock = budget.current()
    gaps = dict(relative_gap_tolerance=relative_gap, absolute_gap_tolerance=1e-9)
    counted = clock.deterministic and solver == "highs"
    if counted:  # a node limit worth the work seconds left after the root (solvers.budget)
        size = size or budget.model_size(built.model)
        params = budget.solve_parameters(seconds, rows=size[0], columns=size[1], integer=True,
                                         exact_nonzeros=size[2], **gaps)
    else:
        params = mathopt.SolveParameters(time_limit=datetime.timedelta(seconds=max(seconds, 0.2)), **gaps)
        if clock.deterministic:  # SCIP and CP-SAT: no deterministic limit through MathOpt here, only the cap
            params.time_limit = datetime.timedelta(seconds=max(min(clock.wall_left(), 1e6), 0.2))
            if solver == "cpsat":
                params.cp_sat.max_deterministic_time = max(seconds, 0.1) / clock.costs.cpsat_time
                params.cp_sat.num_workers = 1
    result = mathopt.solve(
        built.model, SOLVERS[solver], params=params, model_params=model_params,
        msg_cb=(lambda lines: [progress(line) for line in lines if line.strip()]) if progress else None,
    )
    if counted:
        budget.record(result, rows=size[0], columns=size[1], nonzeros=size[2], integer=True, exact=True)
    elif clock.deterministic:
        clock.charge(max(seconds, 0.0))
        if result.termination.limit == mathopt.Limit.TIME:
            clock.stop(f"stopped by the wall-time safety cap inside the exact MIP ({solver}): not reproducible")
    reason = result.termination.reason
    plan = None
    if result.has_primal_feasible_solution():
        assign, centres = _read_plan(problem, built, result.variable_values())
        plan = (assign, centres, problem.objective_value(assign, centres))
    bound = None
    if reason != mathopt.TerminationReason.INFEASIBLE:
        b = float(result.best_objective_bound())
        bound = b if math.isfinite(b) else None
    return _Run(reason, plan, bound)


def exact_solve(
    problem: Problem,
    *,
    time_limit_s: float,
    contiguity: Contiguity = "flow",
    progress: ProgressCallback | None = None,
    hint: np.ndarray | None = None,
    solver: SolverName = "highs",
    relative_gap: float = 1e-6,
    allowed: np.ndarray | None = None,
) -> Solution:
    """Best contiguous, balanced plan, with a proven lower bound.

    Parameters
    ----------
    problem
        A ``"pmedian"`` problem (centres chosen by the model). Locked units
        are honoured.
    time_limit_s
        Budget in seconds of the active clock, wall or work (:mod:`solvers.budget`; model building included).
    contiguity
        ``"flow"`` (exact, default), ``"cuts"`` (exact) or
        ``"shortest_path"`` (a faster restriction); see the module docstring.
    progress
        Called with progress lines (and the solver's log).
    hint
        ``(n,)`` a known plan (sector of each unit), e.g. the heuristic's; the
        solver starts from it, and it is returned if the solver finds nothing
        better in time.
    solver
        ``"highs"``, ``"scip"`` or ``"cpsat"``.
    relative_gap
        Stop when ``(objective - bound) / objective`` is below this.
    allowed
        ``(n, n)`` boolean: only pairs with ``allowed[centre, unit]`` enter the
        model. It must keep every plan cheaper than ``hint`` (as
        :func:`solvers.bound.fixing.fixable_pairs` at the hint's objective does, and
        the hint's own pairs): then the optimum and the bound of the smaller
        model are those of the whole problem. ``hint`` is required with it.

    Returns
    -------
    Solution
        ``status == "optimal"`` only when the solver proved it for an exact
        model (within ``relative_gap``); ``bound`` is the proven lower bound
        in objective units (workload x minutes), also when time ran out
        (``status == "feasible"``). Shortest-path solutions are
        ``"feasible"`` with ``bound=None``.

    Raises
    ------
    InfeasibleError
        When :func:`solvers.check.diagnose` or the MIP proves that no
        contiguous plan meets the bounds; :class:`NoPlanFoundError` (nothing
        proven) when time ran out before any plan was found.

    Examples
    --------
    >>> import networkx as nx
    >>> from solvers.problem import DenseTravelTimes
    >>> g = nx.path_graph(4)
    >>> t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(4), np.arange(4))) * 10.0)
    >>> sol = exact_solve(Problem(g, np.ones(4), np.array([2.0, 2.0]), 0.0, t), time_limit_s=10)
    >>> sol.status, sol.objective, sorted(np.bincount(sol.assignment).tolist())
    ('optimal', 20.0, [2, 2])
    """
    # stays whole: one loop over one HiGHS model (build, hint, solve, add separators, repeat) that shares its state
    if problem.objective != "pmedian":
        raise ValueError(
            "the exact backend solves the 'pmedian' objective (centres chosen by the model); "
            "for worker bases use the 'auto' backend"
        )
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if allowed is not None and hint is None:
        raise ValueError("'allowed' drops plans: give the plan it was computed from as 'hint'")
    start = time.monotonic()  # wall seconds, for the log and Solution.time_s
    clock = budget.current()
    deadline = clock.now() + time_limit_s
    reasons = diagnose(problem)
    if reasons:
        raise InfeasibleError("; ".join(reasons))
    say = progress or (lambda line: None)
    log: list[str] = []

    def note(line: str) -> None:
        log.append(line)
        say(line)

    incumbent = None
    if hint is not None and not check_plan(problem, np.asarray(hint, dtype=np.intp)):
        hint = np.asarray(hint, dtype=np.intp)
        centres = best_centres(problem, hint)
        incumbent = (hint, centres, problem.objective_value(hint, centres))
    if allowed is not None and incumbent is None:
        raise ValueError("'allowed' needs a balanced, contiguous hint (the plan it was computed from)")

    try:
        built = build_model(problem, contiguity, integer_flow=(solver == "cpsat"), allowed=allowed,
                            deadline=deadline)
    except ModelTooLargeError as err:
        if incumbent is None:
            raise NoPlanFoundError(f"{err}; give more time or use the 'auto' backend") from err
        note(f"{err}: keeping the starting plan, nothing proven")
        assign, centres, objective = incumbent
        return Solution(assignment=assign, centres=centres, objective=float(objective), status="feasible",
                        backend="exact", time_s=time.monotonic() - start, bound=None, log=log)
    note(f"exact MIP ({contiguity} contiguity, {len(built.classes)} sector class(es)): "
         f"{built.model.get_num_variables():,} variables, {built.model.get_num_linear_constraints():,} "
         f"constraints, built in {time.monotonic() - start:.1f} s")
    bound: float | None = None
    proven = False
    rounds = 0
    run: _Run | None = None
    root_gate = ""  # why a MIP was not started (work mode: its expected root exceeds the budget left)
    while True:
        rounds += 1
        size = None
        if clock.deterministic and solver == "highs":
            size = budget.model_size(built.model)
            need, left = budget.exact_root_work(size[2]), deadline - clock.now()
            if left < need:
                root_gate = (f"the MIP's root is expected to take {need:,.1f} work s and {max(left, 0.0):,.1f} "
                             f"are left, and {ROOT_NOT_STARTED}")
                note(root_gate)
                break
        run = _solve_once(problem, built, solver, deadline - clock.now(), relative_gap, incumbent,
                          progress if contiguity != "cuts" else None, size)
        if run.reason == mathopt.TerminationReason.INFEASIBLE:
            if contiguity == "shortest_path":
                note("no plan under shortest-path contiguity (a restriction); the exact model decides")
                sol = exact_solve(problem, time_limit_s=max(deadline - clock.now(), 0.5), progress=progress,
                                  hint=hint, solver=solver, relative_gap=relative_gap, allowed=allowed)
                sol.log[:0] = log
                sol.time_s = time.monotonic() - start
                return sol
            if allowed is not None:  # the hint is in the model: only numerical trouble gets here
                note("the MIP restricted to the allowed pairs reports no plan, yet holds the hint: "
                     "keeping the hint, nothing proven")
                break
            bounds = ", ".join(f"[{c.lower:,.1f}, {c.upper:,.1f}]" for c in built.classes)
            caps = "" if problem.size is None else " and every territory within its cap"
            raise InfeasibleError(
                f"the exact MIP proves that no plan with connected sectors has every caseload within its "
                f"bounds ({bounds}){caps}; widen the tolerance, change the targets or the units"
            )
        if contiguity != "shortest_path" and run.bound is not None:
            bound = run.bound if bound is None else max(bound, run.bound)
        plan = run.plan
        if contiguity == "cuts" and plan is not None:
            cuts = separators(problem.graph, plan[0], plan[1])
            if cuts:
                for j, piece, cut in cuts:
                    for a in piece:
                        if (a, j) in built.x:
                            built.model.add_linear_constraint(
                                built.x[a, j] <= mathopt.fast_sum(built.x[c, j] for c in cut if (c, j) in built.x)
                            )
                note(f"round {rounds}: relaxation {plan[2]:,.2f} (bound {fmt_bound(bound)}) has disconnected "
                     f"sectors; {len(cuts):,} separator sets added, {time.monotonic() - start:.1f} s")
                plan = None
                if clock.now() < deadline - 0.2 and run.reason == mathopt.TerminationReason.OPTIMAL:
                    continue
        if plan is not None and (incumbent is None or plan[2] < incumbent[2] - 1e-9):
            incumbent = plan
        proven = (contiguity != "shortest_path" and run.reason == mathopt.TerminationReason.OPTIMAL
                  and run.plan is not None and incumbent is not None and incumbent[2] <= run.plan[2] + 1e-9)
        break

    if incumbent is None:
        if root_gate:
            raise NoPlanFoundError(f"{root_gate}; give more time, or widen the tolerance")
        raise NoPlanFoundError(
            f"the exact MIP found no plan in {time_limit_s:.0f} s and did not prove that none exists; "
            "give more time, or widen the tolerance"
        )
    assign, centres, objective = incumbent
    if contiguity == "shortest_path":
        bound = None
        done = run is not None and run.reason == mathopt.TerminationReason.OPTIMAL
        note(f"objective {objective:,.2f}: " + ("optimal under shortest-path contiguity, a restriction, "
             "so not proven optimal" if done else "best found under shortest-path contiguity"))
    else:
        if bound is not None:
            bound = min(bound, objective)
        note(f"objective {objective:,.2f}, bound {fmt_bound(bound)} "
             f"({'proven optimal' if proven else 'root not started' if root_gate else 'time limit'}, "
             f"{rounds - bool(root_gate)} MIP solve(s), {solver})")
    return Solution(
        assignment=assign,
        centres=centres,
        objective=float(objective),
        status="optimal" if proven else "feasible",
        backend="exact",
        time_s=time.monotonic() - start,
        bound=bound,
        log=log,
    )


#: In the log line of a MIP not started in work mode because its expected root exceeds the budget left.
ROOT_NOT_STARTED = "a node limit cannot stop a root: not started"
#: Nonzeros per unit-centre pair of the cut and flow models (medians of
#: ``python benchmarks/calibrate_exact_work.py``: 8.1 to 10.1 and 18.5 to 25.6).
NONZEROS_PER_PAIR = {"cuts": 9.5, "flow": 24.5}


class ModelTooLargeError(RuntimeError):
    """The exact MIP could not be built (in work mode: built and its root solved) before the deadline."""


def fmt_bound(bound: float | None) -> str:
    return "none" if bound is None else f"{bound:,.2f}"


def _hint(built: HessModel, assign: np.ndarray, centres: np.ndarray) -> mathopt.SolutionHint:
    """The plan ``assign`` (with ``centres``) as values of the model's assignment variables."""
    values: dict[mathopt.Variable, float] = {var: 0.0 for var in built.x.values()}
    values.update({var: 0.0 for var in built.y.values()})
    class_of = {s: g for g, c in enumerate(built.classes) for s in c.sectors}
    for i, s in enumerate(assign):
        j = int(centres[s])
        if (i, j) in built.x:
            values[built.x[i, j]] = 1.0
    for s, j in enumerate(centres):
        if (int(j), class_of[s]) in built.y:
            values[built.y[int(j), class_of[s]]] = 1.0
    return mathopt.SolutionHint(variable_values=values)


def _read_plan(problem: Problem, built: HessModel, values: dict) -> tuple[np.ndarray, np.ndarray]:
    """Sector of every unit and centre of every sector from the MIP values."""
    n, k = problem.n, problem.k
    centre_of = np.full(n, -1, dtype=np.intp)
    for (i, j), var in built.x.items():
        if values[var] > 0.5:
            centre_of[i] = j
    free = [list(c.sectors) for c in built.classes]
    centres = np.zeros(k, dtype=np.intp)
    sector_of: dict[int, int] = {}
    for j in sorted({int(j) for j in centre_of}):
        g = 0 if not built.y else next(g for g in range(len(built.classes)) if values[built.y[j, g]] > 0.5)
        sector_of[j] = free[g].pop(0)
        centres[sector_of[j]] = j
    assign = np.array([sector_of[int(j)] for j in centre_of], dtype=np.intp)
    return assign, centres
