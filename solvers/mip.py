"""Exact allocation of units to sectors with fixed centres: a MIP solved by HiGHS.

With the centre of every sector fixed, the best contiguous, balanced plan is
the optimum of

.. math::

    \\min \\sum_{s,i} c_{si} x_{si}
    \\quad\\text{s.t.}\\quad \\sum_s x_{si} = 1,\\quad
    L_s \\le \\sum_i w_i x_{si} \\le U_s,\\quad
    x_{si} \\le \\sum_{j \\in P_s(i)} x_{sj},\\quad x_{c_s s} = 1,

where ``c[s, i]`` is the cost of :meth:`Problem.cost_rows`, and ``P_s(i)``
are the neighbours of ``i`` strictly closer to the centre ``c_s`` along the
contiguity graph (shortest paths whose edge lengths are travel minutes). These
*shortest-path contiguity* constraints (Oehrlein & Haunert 2017; Validi,
Buchanan & Lykhovyd 2022) make every assigned unit reach its centre through
units of the same sector, so each sector is connected.

The model is built with OR-Tools MathOpt and solved with HiGHS (bundled with
OR-Tools). It is the *allocation* step of the location-allocation loop in
:mod:`solvers.engine`; its bound is a bound for the given centres only, not
for the whole problem.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field

import numpy as np
from ortools.math_opt.python import mathopt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

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


def allocate(
    problem: Problem,
    centres: np.ndarray,
    *,
    lengths: csr_matrix | None = None,
    time_limit_s: float = 30.0,
    relative_gap: float = 1e-4,
    candidates: int | None = None,
    hint: np.ndarray | None = None,
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
        HiGHS time limit in seconds.
    relative_gap
        Stop when the proven gap is below this fraction.
    candidates
        If given, a unit may only join the ``candidates`` sectors whose
        centres are nearest to it along the graph (plus its sector in
        ``hint``); this keeps the model small for large ``k``.
    hint
        A known feasible assignment; its sectors stay allowed.

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
    start = time.monotonic()
    n, k = problem.n, problem.k
    centres = np.asarray(centres, dtype=np.intp)
    if lengths is None:
        lengths = edge_minutes(problem)
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
    for u, s in problem.locked.items():
        allowed[:, u] = False
        allowed[s, u] = True
    allowed[:, centres] = False
    allowed[np.arange(k), centres] = True
    # an allowed unit needs an allowed predecessor; prune until closed
    indptr, indices = lengths.indptr, lengths.indices
    changed = True
    while changed:
        changed = False
        for s in range(k):
            d = dist[s]
            for i in np.flatnonzero(allowed[s]):
                if i == centres[s]:
                    continue
                nb = indices[indptr[i] : indptr[i + 1]]
                if not np.any(allowed[s, nb] & (d[nb] < d[i])):
                    allowed[s, i] = False
                    changed = True
    if not allowed.any(axis=0).all():
        orphan = int(np.flatnonzero(~allowed.any(axis=0))[0])
        return Allocation(None, float("inf"), float("inf"), "infeasible", time.monotonic() - start,
                          [f"{problem.label(orphan)} cannot join any sector with these centres"])

    cost = problem.cost_rows(centres)
    w = np.asarray(problem.workload, dtype=float)
    model = mathopt.Model(name="allocation")
    x: dict[tuple[int, int], mathopt.Variable] = {}
    for s, i in zip(*np.nonzero(allowed)):
        x[s, i] = model.add_binary_variable(name=f"x_{s}_{i}")
    for i in range(n):
        model.add_linear_constraint(mathopt.fast_sum(x[s, i] for s in np.flatnonzero(allowed[:, i])) == 1)
    lower, upper = problem.lower, problem.upper
    for s in range(k):
        members = np.flatnonzero(allowed[s])
        load = mathopt.fast_sum(float(w[i]) * x[s, i] for i in members if w[i] > 0)
        model.add_linear_constraint(load >= float(lower[s]))
        model.add_linear_constraint(load <= float(upper[s]))
        d = dist[s]
        for i in members:
            if i == centres[s]:
                continue
            nb = indices[indptr[i] : indptr[i + 1]]
            pred = [j for j in nb if allowed[s, j] and d[j] < d[i]]
            model.add_linear_constraint(x[s, i] <= mathopt.fast_sum(x[s, j] for j in pred))
        model.add_linear_constraint(x[s, int(centres[s])] == 1)
    if problem.max_moved is not None:  # cap on the weight of units leaving their previous sector
        prev, mw = np.asarray(problem.previous), problem.disruption
        stay = [(float(mw[i]), x.get((int(prev[i]), i))) for i in range(n) if prev[i] >= 0 and mw[i] > 0]
        fixed = sum(m for m, var in stay if var is None)
        model.add_linear_constraint(
            mathopt.fast_sum(m * (1 - var) for m, var in stay if var is not None) <= float(problem.max_moved) - fixed
        )
    model.minimize(mathopt.fast_sum(float(cost[s, i]) * var for (s, i), var in x.items()))

    model_params = None
    if hint is not None:
        values = {var: float(hint[i] == s) for (s, i), var in x.items()}
        model_params = mathopt.ModelSolveParameters(solution_hints=[mathopt.SolutionHint(variable_values=values)])
    built = time.monotonic()
    params = mathopt.SolveParameters(
        time_limit=datetime.timedelta(seconds=max(time_limit_s - (built - start), 0.5)),
        relative_gap_tolerance=relative_gap,
    )
    result = mathopt.solve(model, mathopt.SolverType.HIGHS, params=params, model_params=model_params)
    elapsed = time.monotonic() - start
    reason = result.termination.reason
    log = [
        f"allocation MIP: {len(x):,} variables, built in {built - start:.1f} s, "
        f"HiGHS {reason.name.lower()} in {elapsed - (built - start):.1f} s"
    ]
    if reason == mathopt.TerminationReason.INFEASIBLE:
        return Allocation(None, float("inf"), float("inf"), "infeasible", elapsed, log)
    if not result.has_primal_feasible_solution():
        return Allocation(None, float("inf"), result.best_objective_bound(), "unknown", elapsed, log)
    values = result.variable_values()
    assign = np.full(n, -1, dtype=np.intp)
    for (s, i), var in x.items():
        if values[var] > 0.5:
            assign[i] = s
    status = "optimal" if reason == mathopt.TerminationReason.OPTIMAL else "feasible"
    objective = float(cost[assign, np.arange(n)].sum())
    bound = float(result.best_objective_bound())
    log[0] += f", objective {objective:,.1f}, bound {bound:,.1f}"
    return Allocation(assign, objective, bound, status, elapsed, log)
