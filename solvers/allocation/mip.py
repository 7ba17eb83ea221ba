"""Exact allocation of units to sectors with fixed centres: a MIP solved by HiGHS.

With the centre of every sector fixed, the best contiguous, balanced plan is
the optimum of

.. math::

    \\min \\sum_{s,i} c_{si} x_{si}
    \\quad\\text{s.t.}\\quad \\sum_s x_{si} = 1 \\;(1),\\quad
    L_s \\le \\sum_i w_i x_{si} \\le U_s \\;(2),\\quad
    x_{si} \\le \\sum_{j \\in P_s(i)} x_{sj} \\;(3),\\quad x_{c_s s} = 1 \\;(4),

where ``c[s, i]`` is the cost of :meth:`Problem.cost_rows`, and ``P_s(i)``
are the neighbours of ``i`` strictly closer to the centre ``c_s`` along the
contiguity graph (shortest paths whose edge lengths are travel minutes). These
*shortest-path contiguity* constraints (Oehrlein & Haunert 2017; Validi,
Buchanan & Lykhovyd 2022) make every assigned unit reach its centre through
units of the same sector, so each sector is connected. With a cap ``M`` on
moves from a previous plan ``p`` (move weights ``m_i``), also
``sum_i m_i x[p_i, i] >= sum_i m_i - M`` (5): the weight kept in place. With
territory caps (:attr:`Problem.max_size`, e.g. communes or km² per sector),
``sum_i a_i x_si <= A_s`` (6), one row per sector, ``a_i`` the unit's size.

The model is built with OR-Tools MathOpt and solved with HiGHS (bundled with
OR-Tools). It is the *allocation* step of the location-allocation loop in
:mod:`solvers.allocation.loop`; its bound is a bound for the given centres only, not
for the whole problem.

Budgets are times of the active clock (:mod:`solvers.budget`). With a work clock, the
LP gets a simplex iteration limit and each MIP a node limit worth the work seconds
left, and both are charged the iterations and nodes HiGHS reports. HiGHS cannot
limit the work of a MIP's root node, which with territory caps (rows (6)) and
thousands of units runs for minutes: the LP is then far from integral, and HiGHS's
root cuts and sub-MIP heuristics do not close the gap. So with a work clock such
models are not solved (:func:`allocation_mip_bounded`; :func:`allocate` answers
``"skipped"``), and location-allocation regrows sectors from the LP's centres instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from ortools.math_opt import model_pb2
from ortools.math_opt.python import mathopt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from solvers import budget
from solvers.problem import Problem


def edge_minutes(problem: Problem) -> csr_matrix:
    """Sparse ``(n, n)`` matrix of travel minutes along contiguity edges.

    Lengths are floored at 0.01 minute so that shortest-path distances grow
    strictly along every edge.
    """
    n = problem.n
    edges = np.array(list(problem.graph.edges), dtype=np.intp).reshape(-1, 2)
    u, v = edges[:, 0], edges[:, 1]
    minutes = np.empty(len(edges))
    pairs = getattr(problem.travel, "pairs", None)
    if pairs is not None:  # edge lengths directly, without whole rows
        minutes = np.asarray(pairs(u, v), dtype=float)
        minutes = np.maximum(minutes, 0.01)
        return csr_matrix((np.r_[minutes, minutes], (np.r_[u, v], np.r_[v, u])), shape=(n, n))
    # rows in chunks: one row per source unit, read the neighbour columns
    budget.tick("entry", n * n)
    order = np.argsort(u, kind="stable")
    u_sorted, v_sorted = u[order], v[order]
    sources = np.unique(u_sorted)
    for start in range(0, len(sources), 512):
        chunk = sources[start : start + 512]
        rows = problem.travel.rows(chunk)
        pos = np.searchsorted(chunk, u_sorted)
        inside = (pos < len(chunk)) & (chunk[np.minimum(pos, len(chunk) - 1)] == u_sorted)
        minutes[order[inside]] = rows[pos[inside], v_sorted[inside]]
    minutes = np.maximum(minutes, 0.01)
    m = csr_matrix((np.r_[minutes, minutes], (np.r_[u, v], np.r_[v, u])), shape=(n, n))
    return m


@dataclass
class Allocation:
    """Result of :func:`allocate`.

    ``assignment`` is ``None`` when no contiguous, balanced plan exists for
    these centres (``status == "infeasible"``) or none was found in time.
    ``objective`` and ``bound`` are in cost units (workload x minutes).
    """

    assignment: np.ndarray | None
    objective: float
    bound: float
    status: str
    time_s: float
    log: list[str] = field(default_factory=list)


#: From this many units, :func:`allocate` solves the LP first and uses it to
#: shrink the MIP (see ``staged``); smaller models go straight to HiGHS.
STAGED_MIN_UNITS = 1_000


def allocation_mip_bounded(problem: Problem) -> bool:
    """Whether a work budget can bound the allocation MIP of ``problem``: no territory caps, or
    fewer than :data:`STAGED_MIN_UNITS` units. Otherwise HiGHS's root node (which no
    deterministic limit reaches) may run for minutes, and with a work clock :func:`allocate`
    does not solve it (see the module docstring)."""
    return problem.size is None or problem.n < STAGED_MIN_UNITS


def allocate(
    problem: Problem,
    centres: np.ndarray,
    *,
    lengths: csr_matrix | None = None,
    time_limit_s: float = 30.0,
    relative_gap: float = 1e-4,
    candidates: int | None = None,
    hint: np.ndarray | None = None,
    staged: bool | None = None,
    stage_limit_s: float | None = None,
) -> Allocation:
    """Best contiguous, balanced assignment for fixed sector centres.

    Parameters
    ----------
    problem
        The problem; its ``locked`` units are fixed to their sector.
    centres
        ``(k,)`` centre unit of each sector (distinct).
    lengths
        Edge lengths in minutes from :func:`edge_minutes` (computed if omitted;
        pass it when calling repeatedly).
    time_limit_s
        Budget for the whole call, in the active clock's seconds (:mod:`solvers.budget`).
    relative_gap
        Stop when the proven gap is below this fraction.
    candidates
        If given, a unit may only join the ``candidates`` sectors whose
        centres are nearest to it along the graph (plus its sector in
        ``hint``); this keeps the model small for large ``k``.
    hint
        A known feasible assignment; its sectors stay allowed.
    staged
        Solve in stages (default: from :data:`STAGED_MIN_UNITS` units). The
        LP relaxation is solved first; on districting instances it is
        nearly integral (a few fractional units). (1) The MIP restricted to the LP's sector
        boundaries, every unit more than one edge away from them fixed to
        its LP sector, gives a good plan in a fraction of the time; (2)
        *reduced-cost fixing* then removes every pair whose LP reduced cost
        exceeds that plan's distance to the LP bound (such a pair cannot be
        in a better plan), and the full MIP runs on what is left, warm-started
        by (1); when (1) is already within ``relative_gap`` of the LP bound it
        is returned at once. The optimum is that of the one-stage solve, in a
        fraction of the time. An infeasible LP proves the MIP infeasible at once.
    stage_limit_s
        In the staged solve, at most this many seconds for the MIP of each
        stage once the first has given a plan (default: the whole time
        limit). Past it the best plan so far is returned as ``"feasible"``:
        from poor centres the last stage can take far longer than the rest.

    Returns
    -------
    Allocation
        ``status`` ``"optimal"``, ``"feasible"``, ``"infeasible"``, ``"unknown"`` (nothing
        found in the budget) or ``"skipped"`` (a work clock and a model whose root HiGHS
        cannot bound: :func:`allocation_mip_bounded`).

    Examples
    --------
    >>> import networkx as nx, numpy as np
    >>> from solvers.problem import Problem, DenseTravelTimes
    >>> g = nx.path_graph(4)
    >>> t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(4), np.arange(4))) * 10.0)
    >>> p = Problem(g, np.ones(4), np.array([2.0, 2.0]), 0.0, t)
    >>> allocate(p, np.array([0, 3])).assignment.tolist()
    [0, 0, 1, 1]
    """
    # stays whole: the staged solve changes the bounds of one model in place (set_bounds, solve and read share them)
    start = time.monotonic()  # wall seconds, for the log and Allocation.time_s
    clock = budget.current()
    if clock.deterministic and not allocation_mip_bounded(problem):
        return Allocation(None, float("inf"), float("inf"), "skipped", 0.0,
                          [f"allocation MIP: not solved with a work budget ({problem.n:,} units with territory caps: "
                           "its root node cannot be bounded)"])
    deadline = clock.now() + time_limit_s
    n, k = problem.n, problem.k
    centres, lengths = _inputs(problem, centres, lengths)
    built_model = _build(problem, centres, lengths, candidates, hint)
    if isinstance(built_model, int):
        return Allocation(None, float("inf"), float("inf"), "infeasible", time.monotonic() - start,
                          [f"{problem.label(built_model)} cannot join any sector with these centres"])
    proto, sec, unit = built_model
    size = (len(proto.linear_constraints.ids), len(sec), len(proto.linear_constraint_matrix.row_ids))
    cost = problem.cost_rows(centres)
    model = mathopt.Model.from_model_proto(proto)
    x = [model.get_variable(v) for v in range(len(sec))]
    built = time.monotonic()
    log = [f"allocation MIP: {len(x):,} variables, built in {built - start:.1f} s"]

    lb = np.asarray(proto.variables.lower_bounds, dtype=float)  # current bounds, kept in step with the model
    ub = np.asarray(proto.variables.upper_bounds, dtype=float)

    def set_bounds(chosen: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
        for v in np.flatnonzero(chosen):
            x[v].lower_bound, x[v].upper_bound = float(low[v]), float(high[v])
        lb[chosen], ub[chosen] = low[chosen], high[chosen]

    def solve(hint_values: np.ndarray | None, limit: float | None = None) -> mathopt.SolveResult:
        left = deadline - clock.now()
        model_params = None
        if hint_values is not None:
            values = (hint_values[unit] == sec).astype(float)
            # HiGHS refuses a hint outside the variable bounds (a centre elsewhere, a fixed pair)
            if np.all(values >= lb) and np.all(values <= ub):
                model_params = mathopt.ModelSolveParameters(solution_hints=[mathopt.SolutionHint(
                    variable_values=dict(zip(x, values.tolist())))])
        return budget.highs(model, left if limit is None else min(left, limit), size=size, integer=True,
                            model_params=model_params, min_seconds=0.1, relative_gap_tolerance=relative_gap)

    def read(result: mathopt.SolveResult) -> np.ndarray:
        values = np.asarray(result.variable_values(x))
        assign = np.full(n, -1, dtype=np.intp)
        chosen = values > 0.5
        assign[unit[chosen]] = sec[chosen]
        return assign

    incumbent = None if hint is None else np.asarray(hint, dtype=np.intp)
    fallback: np.ndarray | None = None  # plan of stage (1), kept if the last stage finds none
    if staged if staged is not None else n >= STAGED_MIN_UNITS:
        lp, lp_x = _solve_relaxation(proto, deadline - clock.now())
        reason = lp.termination.reason
        if reason == mathopt.TerminationReason.INFEASIBLE:
            log[0] += ", LP relaxation infeasible"
            return Allocation(None, float("inf"), float("inf"), "infeasible", time.monotonic() - start, log)
        if reason == mathopt.TerminationReason.OPTIMAL:
            value = np.asarray(lp.variable_values(lp_x))
            reduced = np.asarray(lp.reduced_costs(lp_x))
            lp_bound = float(lp.objective_value())
            # (1) free the LP's boundaries (and fractional units) with one ring around them
            share = np.zeros((k, n))
            share[sec, unit] = value
            lp_assign = np.argmax(share, axis=0)
            free = share.max(axis=0) < 1 - 1e-6
            rows = np.repeat(np.arange(n), np.diff(lengths.indptr))
            cols = lengths.indices
            border = lp_assign[rows] != lp_assign[cols]
            free[rows[border]] = True
            free[rows[free[cols]]] = True
            fixed = ~free[unit]
            original = lb.copy(), ub.copy()
            on = (lp_assign[unit] == sec).astype(float)
            set_bounds(fixed, np.maximum(lb, on), np.minimum(ub, on))
            t_lp = time.monotonic()
            first = solve(incumbent, stage_limit_s)
            t_first = time.monotonic()
            set_bounds(fixed, *original)
            upper = float("inf")
            if first.has_primal_feasible_solution():
                fallback = incumbent = read(first)
                upper = float(first.objective_value())
            if fallback is not None and upper - lp_bound <= relative_gap * max(abs(upper), 1e-9):  # within the gap
                log[0] += (f", LP bound {lp_bound:,.1f} in {t_lp - built:.1f} s, {int(free.sum()):,} units free: "
                           f"objective {upper:,.1f} in {t_first - t_lp:.1f} s, within the gap of the LP bound")
                return Allocation(fallback, float(cost[fallback, np.arange(n)].sum()), lp_bound, "optimal",
                                  time.monotonic() - start, log)
            # (2) reduced-cost fixing against that plan (LP bound + reduced cost >= plan: not better)
            margin = upper - lp_bound + 1e-7 * max(abs(upper), 1.0)
            off = (value < 1e-9) & (reduced > margin)
            stay = (value > 1 - 1e-9) & (-reduced > margin)
            set_bounds(off, lb, np.zeros_like(ub))
            set_bounds(stay, np.ones_like(lb), ub)
            log[0] += (f", LP bound {lp_bound:,.1f} in {t_lp - built:.1f} s, {int(free.sum()):,} units free in "
                       f"stage 1: objective {upper:,.1f} in {t_first - t_lp:.1f} s, "
                       f"{int(off.sum() + stay.sum()):,} pairs fixed by reduced cost")
    result = solve(incumbent, stage_limit_s if fallback is not None else None)
    elapsed = time.monotonic() - start
    reason = result.termination.reason
    log[0] += f", HiGHS {reason.name.lower()} in {elapsed - (built - start):.1f} s"
    if reason == mathopt.TerminationReason.INFEASIBLE:
        return Allocation(None, float("inf"), float("inf"), "infeasible", elapsed, log)
    if not result.has_primal_feasible_solution():
        if fallback is not None:
            objective = float(cost[fallback, np.arange(n)].sum())
            return Allocation(fallback, objective, result.best_objective_bound(), "feasible", elapsed, log)
        return Allocation(None, float("inf"), result.best_objective_bound(), "unknown", elapsed, log)
    assign = read(result)
    status = "optimal" if reason == mathopt.TerminationReason.OPTIMAL else "feasible"
    objective = float(cost[assign, np.arange(n)].sum())
    bound = float(result.best_objective_bound())
    log[0] += f", objective {objective:,.1f}, bound {bound:,.1f}"
    return Allocation(assign, objective, bound, status, elapsed, log)


def lp_allocation(problem: Problem, centres: np.ndarray, *, lengths: csr_matrix | None = None,
                  candidates: int | None = None, hint: np.ndarray | None = None,
                  time_limit_s: float = 30.0) -> tuple[np.ndarray, float] | None:
    """The LP relaxation of :func:`allocate`'s model, rounded: ``(assignment, LP value)``
    with each unit in the sector of its largest LP share (balance and contiguity may be
    off by the few fractional units), or ``None`` when the LP is infeasible or unsolved
    within ``time_limit_s`` (seconds of the active clock).

    A fraction of a second on 4,025 units: the location-allocation loop uses it to move
    the centres near their fixed point before the MIPs (see ``solvers.engine``).
    """
    n, k = problem.n, problem.k
    centres, lengths = _inputs(problem, centres, lengths)
    built_model = _build(problem, centres, lengths, candidates, hint)
    if isinstance(built_model, int):
        return None
    proto, sec, unit = built_model
    result, x = _solve_relaxation(proto, time_limit_s)
    if result.termination.reason != mathopt.TerminationReason.OPTIMAL:
        return None
    share = np.zeros((k, n))
    share[sec, unit] = np.asarray(result.variable_values(x))
    return np.argmax(share, axis=0).astype(np.intp), float(result.objective_value())


def _inputs(problem: Problem, centres, lengths: csr_matrix | None) -> tuple[np.ndarray, csr_matrix]:
    """``centres`` as an integer array, and the edge lengths (computed when ``None``)."""
    return np.asarray(centres, dtype=np.intp), (edge_minutes(problem) if lengths is None else lengths)


def _build(problem: Problem, centres: np.ndarray, lengths: csr_matrix, candidates: int | None,
           hint: np.ndarray | None) -> tuple[model_pb2.ModelProto, np.ndarray, np.ndarray] | int:
    """The allocation model (see :func:`_allocation_proto`), or the first unit that can
    join no sector with these centres."""
    allowed, dist = _allowed_pairs(problem, centres, lengths, candidates, hint)
    budget.tick("entry", 1200 * problem.k * problem.n)  # shortest paths, pruning and the model's arrays (measured)
    if not allowed.any(axis=0).all():
        return int(np.flatnonzero(~allowed.any(axis=0))[0])
    return _allocation_proto(problem, centres, lengths, allowed, dist)


def _solve_relaxation(proto: model_pb2.ModelProto, seconds: float) -> tuple[mathopt.SolveResult, list]:
    """The LP relaxation of ``proto`` solved by HiGHS within ``seconds`` of the active clock:
    ``(result, variables)``."""
    relaxed = model_pb2.ModelProto()
    relaxed.CopyFrom(proto)
    relaxed.variables.integers[:] = [False] * len(relaxed.variables.ids)
    model = mathopt.Model.from_model_proto(relaxed)
    x = [model.get_variable(v) for v in range(len(relaxed.variables.ids))]
    size = (len(relaxed.linear_constraints.ids), len(x), len(relaxed.linear_constraint_matrix.row_ids))
    result = budget.highs(model, seconds, size=size, integer=False, min_seconds=0.1)
    return result, x


def _allowed_pairs(problem: Problem, centres: np.ndarray, lengths: csr_matrix, candidates: int | None,
                   hint: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(allowed, dist)``, both ``(k, n)``: which units may join which sector, and the
    graph minutes from each centre. A unit may join a sector only through a neighbour
    strictly closer to the centre that may join it too (pruned until closed)."""
    n, k = problem.n, problem.k
    dist = dijkstra(lengths, directed=False, indices=centres)  # (k, n) graph minutes
    allowed = np.isfinite(dist)
    if candidates is not None and candidates < k:
        nearest = np.argsort(dist, axis=0, kind="stable")[:candidates]
        mask = np.zeros_like(allowed)
        mask[nearest, np.arange(n)] = True
        if hint is not None:
            mask[np.asarray(hint), np.arange(n)] = True
        if problem.previous is not None:  # staying put must stay possible
            prev = np.asarray(problem.previous)
            mask[prev[prev >= 0], np.flatnonzero(prev >= 0)] = True
        allowed &= mask
    if problem.size is not None:  # a unit larger than a sector's territory cap cannot join it
        allowed &= problem.sizes[None, :] <= problem.size_caps[:, None] * (1 + 1e-9)
    for u, s in problem.locked.items():
        allowed[:, u] = False
        allowed[s, u] = True
    allowed[:, centres] = False
    allowed[np.arange(k), centres] = True
    rows = np.repeat(np.arange(n), np.diff(lengths.indptr))
    cols = lengths.indices  # cols[e] is a neighbour of rows[e]
    for s in range(k):
        d = dist[s]
        closer = d[cols] < d[rows]
        while True:
            reach = np.zeros(n, dtype=bool)
            reach[rows[closer & allowed[s, cols]]] = True
            reach[centres[s]] = True
            drop = allowed[s] & ~reach
            if not drop.any():
                break
            allowed[s, drop] = False
    return allowed, dist


def _allocation_proto(problem: Problem, centres: np.ndarray, lengths: csr_matrix, allowed: np.ndarray,
                      dist: np.ndarray) -> tuple[model_pb2.ModelProto, np.ndarray, np.ndarray]:
    """The allocation MIP as a MathOpt model proto, built from arrays (much faster than
    one Python call per constraint): constraints (1)-(6) of the module docstring.
    Variables are the allowed pairs in row-major order; returns ``(proto, sector, unit)``
    of each variable."""
    # stays whole: the proto's variable and constraint arrays are filled in one pass and share their offsets
    n, k = problem.n, problem.k
    sec, unit = np.nonzero(allowed)
    m = len(sec)
    pos = np.full((k, n), -1, dtype=np.int64)
    pos[sec, unit] = np.arange(m)
    cost = problem.cost_rows(centres)
    w = np.asarray(problem.workload, dtype=float)
    lower, upper = problem.lower, problem.upper
    rows_r: list[np.ndarray] = [unit.astype(np.int64)]  # (1) each unit in one sector (rows 0..n-1)
    cols_r: list[np.ndarray] = [np.arange(m)]
    coef_r: list[np.ndarray] = [np.ones(m)]
    lo = [np.ones(n)]
    hi = [np.ones(n)]
    loaded = w[unit] > 0  # (2) each sector's load in [L, U] (rows n..n+k-1)
    rows_r.append(n + sec[loaded].astype(np.int64))
    cols_r.append(np.flatnonzero(loaded))
    coef_r.append(w[unit[loaded]])
    lo.append(np.asarray(lower, dtype=float))
    hi.append(np.asarray(upper, dtype=float))
    # (3) a member other than the centre has a member neighbour closer to the centre
    member = np.ones(m, dtype=bool)
    member[pos[np.arange(k), centres]] = False
    pred_row = np.full(m, -1, dtype=np.int64)
    pred_row[member] = n + k + np.arange(int(member.sum()))
    rows_r.append(pred_row[member])
    cols_r.append(np.flatnonzero(member))
    coef_r.append(np.ones(int(member.sum())))
    e_rows = np.repeat(np.arange(n), np.diff(lengths.indptr))
    e_cols = lengths.indices
    for s in range(k):
        d = dist[s]
        ok = allowed[s, e_rows] & allowed[s, e_cols] & (d[e_cols] < d[e_rows]) & (e_rows != centres[s])
        rows_r.append(pred_row[pos[s, e_rows[ok]]])
        cols_r.append(pos[s, e_cols[ok]])
        coef_r.append(-np.ones(int(ok.sum())))
    lo.append(np.full(int(member.sum()), -np.inf))
    hi.append(np.zeros(int(member.sum())))
    n_rows = n + k + int(member.sum())
    if problem.max_moved is not None:  # (5) cap on the weight of units leaving their previous sector
        prev, mw = np.asarray(problem.previous), problem.disruption
        moving = (prev[unit] >= 0) & (mw[unit] > 0)
        stays = moving & (sec == prev[unit])
        known = (prev >= 0) & (mw > 0)
        total = float(mw[known].sum())  # moved weight = total - weight of units kept in place
        rows_r.append(np.full(int(stays.sum()), n_rows, dtype=np.int64))
        cols_r.append(np.flatnonzero(stays))
        coef_r.append(mw[unit[stays]])
        lo.append(np.array([total - float(problem.max_moved)]))
        hi.append(np.array([np.inf]))
        n_rows += 1
    if problem.size is not None:  # (6) each sector's territory within its cap (rows n_rows..n_rows+k-1)
        size = problem.sizes
        sized = size[unit] > 0
        rows_r.append(n_rows + sec[sized].astype(np.int64))
        cols_r.append(np.flatnonzero(sized))
        coef_r.append(size[unit[sized]])
        lo.append(np.full(k, -np.inf))
        hi.append(problem.size_caps)
        n_rows += k
    row = np.concatenate(rows_r)
    col = np.concatenate(cols_r)
    coef = np.concatenate(coef_r)
    order = np.lexsort((col, row))
    proto = model_pb2.ModelProto(name="allocation")
    proto.variables.ids.extend(range(m))
    lb = np.zeros(m)
    lb[pos[np.arange(k), centres]] = 1.0  # (4) each centre in its own sector
    proto.variables.lower_bounds.extend(lb.tolist())
    proto.variables.upper_bounds.extend([1.0] * m)
    proto.variables.integers.extend([True] * m)
    proto.objective.linear_coefficients.ids.extend(range(m))
    proto.objective.linear_coefficients.values.extend(cost[sec, unit].astype(float).tolist())
    proto.linear_constraints.ids.extend(range(n_rows))
    proto.linear_constraints.lower_bounds.extend(np.concatenate(lo).tolist())
    proto.linear_constraints.upper_bounds.extend(np.concatenate(hi).tolist())
    matrix = proto.linear_constraint_matrix
    matrix.row_ids.extend(row[order].tolist())
    matrix.column_ids.extend(col[order].tolist())
    matrix.coefficients.extend(coef[order].tolist())
    return proto, sec, unit
