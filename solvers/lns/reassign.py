"""Exact re-assignment of a few sectors whose centres stay where they are.

:func:`reassign` gives every unit of a small problem (typically the union of
three adjacent sectors, cut out by :func:`solvers.lns.search.sub_problem`) to one of
the fixed centres: the cheapest contiguous, balanced plan, found by a MIP with
separator cuts. It moves units around a *cycle* of sectors (a to b, b to c, c
to a), which balance forbids to pair moves when every sector is near its
bound; the large-neighbourhood search (:func:`solvers.lns.search.improve_lns`) uses it
once no pair of sectors improves.

The MIP stays small because a plan at least as good as the current one is
known (``hint``): after the LP relaxation (no contiguity), a unit-sector pair
whose reduced cost lifts the LP value above that plan's cost cannot be in any
plan at least as good (reduced-cost fixing), and is dropped.

Deadlines are times of the active clock (:mod:`solvers.budget`); with a work clock each
HiGHS solve gets the deterministic limit worth the work seconds left and is charged the
work it reports (:func:`highs_optimum`).
"""

from __future__ import annotations


import networkx as nx
import numpy as np
from ortools.math_opt import model_pb2
from ortools.math_opt.python import mathopt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from solvers import budget
from solvers.problem import Problem


def adjacency(graph: nx.Graph) -> csr_matrix:
    """The ``(n, n)`` 0/1 adjacency matrix of a graph over the units ``0..n-1``."""
    return nx.to_scipy_sparse_array(graph, nodelist=range(graph.number_of_nodes()), weight=None, format="csr")


def cut_off(adjacency: csr_matrix, members: np.ndarray, centre: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The pieces of ``members`` that do not hold ``centre``, each with its border:
    ``[(piece, outside neighbours), ...]`` as unit arrays (empty when connected)."""
    members = np.asarray(members, dtype=np.intp)
    count, label = connected_components(adjacency[members][:, members], directed=False)
    if count <= 1:
        return []
    home = label[np.searchsorted(members, centre)] if centre in members else -1
    out = []
    for piece_label in range(count):
        if piece_label == home:
            continue
        piece = members[label == piece_label]
        around = np.unique(adjacency[piece].indices)
        out.append((piece, np.setdiff1d(around, piece, assume_unique=True)))
    return out


def _model(sub: Problem, cost: np.ndarray, allowed: np.ndarray, *, integers: bool) -> tuple[mathopt.Model, np.ndarray, np.ndarray]:
    """The allocation model over the ``allowed`` ``(sector, unit)`` pairs, built from
    arrays: each unit in one sector, each sector's load within its bounds and, with
    territory caps, its territory at most its cap. Returns the model and the
    ``(sector, unit)`` of each variable (variable ``v`` has id ``v``)."""
    n, k = sub.n, sub.k
    sec, unit = np.nonzero(allowed)
    m = len(sec)
    w = np.asarray(sub.workload, dtype=float)
    loaded = w[unit] > 0
    row = np.concatenate([unit, n + sec[loaded]]).astype(np.int64)
    col = np.concatenate([np.arange(m), np.flatnonzero(loaded)]).astype(np.int64)
    coef = np.concatenate([np.ones(m), w[unit[loaded]]])
    row_lo = [1.0] * n + np.asarray(sub.lower, dtype=float).tolist()
    row_hi = [1.0] * n + np.asarray(sub.upper, dtype=float).tolist()
    if sub.size is not None:  # territory caps: rows n + k .. n + 2k - 1
        size = sub.sizes
        sized = size[unit] > 0
        row = np.concatenate([row, n + k + sec[sized]]).astype(np.int64)
        col = np.concatenate([col, np.flatnonzero(sized)]).astype(np.int64)
        coef = np.concatenate([coef, size[unit[sized]]])
        row_lo += [-np.inf] * k
        row_hi += sub.size_caps.tolist()
    order = np.lexsort((col, row))
    proto = model_pb2.ModelProto(name="reassign")
    proto.variables.ids.extend(range(m))
    proto.variables.lower_bounds.extend([0.0] * m)
    proto.variables.upper_bounds.extend([1.0] * m)
    proto.variables.integers.extend([integers] * m)
    proto.objective.linear_coefficients.ids.extend(range(m))
    proto.objective.linear_coefficients.values.extend(cost[sec, unit].astype(float).tolist())
    proto.linear_constraints.ids.extend(range(len(row_lo)))
    proto.linear_constraints.lower_bounds.extend(row_lo)
    proto.linear_constraints.upper_bounds.extend(row_hi)
    matrix = proto.linear_constraint_matrix
    matrix.row_ids.extend(row[order].tolist())
    matrix.column_ids.extend(col[order].tolist())
    matrix.coefficients.extend(coef[order].tolist())
    return mathopt.Model.from_model_proto(proto), sec, unit


def highs_optimum(model: mathopt.Model, deadline: float, model_params: mathopt.ModelSolveParameters | None = None,
                  *, solver: mathopt.IncrementalSolver | None = None) -> mathopt.SolveResult | None:
    """HiGHS on ``model`` (through ``solver``, an incremental solver over it, when given)
    until ``deadline`` (a time of the active clock, :mod:`solvers.budget`), at a 1e-7
    relative gap, its prints silenced; ``None`` unless solved to optimality in time."""
    left = deadline - budget.now()
    if left <= 0.05:
        return None
    result = budget.highs(model, min(left, 3600.0), solver=solver, model_params=model_params,
                          relative_gap_tolerance=1e-7)
    return result if result.termination.reason == mathopt.TerminationReason.OPTIMAL else None


def reassign(sub: Problem, centres: np.ndarray, hint: np.ndarray, *, deadline: float,
             max_rounds: int = 60) -> np.ndarray | None:
    """The cheapest contiguous, balanced plan of ``sub`` with sector ``s`` centred on
    ``centres[s]`` (exact), or ``None`` when none was found by ``deadline``.

    Parameters
    ----------
    sub
        The problem: every unit goes to one of its ``k`` sectors, each sector's load
        within its bounds (and territory within its cap) and connected to its centre;
        locks kept. The reduced-cost fixing is that of this model, caps included.
    centres
        ``(k,)`` centre unit of each sector; the objective is the problem's
        (:meth:`Problem.cost_rows`, workload x minutes).
    hint
        ``(n,)`` a valid plan with these centres (contiguous, balanced, locks kept):
        the result costs at most as much. Its cost bounds the reduced-cost fixing.
    deadline
        A time of the active clock (:func:`solvers.budget.now`).
    max_rounds
        At most this many MIP solves (each adds separator cuts, as in
        :func:`solvers.lns.search.split_pair`: for a piece ``C`` of sector ``s`` cut off
        from its centre, with outside neighbours ``N(C)``, ``x[s, i] <= sum x[s, j]``
        over ``j`` in ``N(C)`` for each ``i`` in ``C``).

    Examples
    --------
    >>> import networkx as nx, numpy as np
    >>> from solvers.problem import Problem, DenseTravelTimes
    >>> g = nx.path_graph(6)
    >>> t = DenseTravelTimes(np.abs(np.subtract.outer(np.arange(6), np.arange(6))) * 10.0)
    >>> p = Problem(g, np.ones(6), np.array([2.0, 2.0, 2.0]), 0.0, t)
    >>> reassign(p, np.array([0, 2, 5]), np.array([0, 0, 1, 1, 2, 2]), deadline=budget.now() + 10).tolist()
    [0, 0, 1, 1, 2, 2]
    """
    n, k = sub.n, sub.k
    centres = np.asarray(centres, dtype=np.intp)
    hint = np.asarray(hint, dtype=np.intp)
    budget.tick("entry", 20 * k * n)  # cost rows, the two models' arrays
    cost = sub.cost_rows(centres)  # (k, n)
    ceiling = float(cost[hint, np.arange(n)].sum())
    allowed = np.ones((k, n), dtype=bool)
    for unit, sector in [*zip(centres.tolist(), range(k)), *sub.locked.items()]:
        allowed[:, unit] = False
        allowed[sector, unit] = True
    # reduced-cost fixing: drop the pairs no plan at most as costly as the hint can use
    lp, sec, unit = _model(sub, cost, allowed, integers=False)
    relaxed = highs_optimum(lp, deadline)
    if relaxed is None:
        return None
    reduced = np.asarray(relaxed.reduced_costs(list(lp.variables())), dtype=float)
    above = relaxed.objective_value() + reduced > ceiling + 1e-9 * max(abs(ceiling), 1.0)
    allowed[sec[above], unit[above]] = False
    allowed[hint, np.arange(n)] = True  # the hint itself stays (rounding)
    model, sec, unit = _model(sub, cost, allowed, integers=True)
    var = np.full((k, n), -1, dtype=np.int64)
    var[sec, unit] = np.arange(len(sec))
    x = list(model.variables())
    solver = mathopt.IncrementalSolver(model, mathopt.SolverType.HIGHS)
    start = mathopt.ModelSolveParameters(solution_hints=[mathopt.SolutionHint(
        variable_values={x[v]: float(hint[unit[v]] == sec[v]) for v in range(len(x))})])
    graph = adjacency(sub.graph)
    for _ in range(max_rounds):
        result = highs_optimum(model, deadline, start, solver=solver)
        if result is None:
            return None
        values = np.asarray(result.variable_values(x), dtype=float)
        share = np.zeros((k, n))
        share[sec, unit] = values
        side = np.argmax(share, axis=0).astype(np.intp)
        cuts = 0
        budget.tick("visit", k * n)  # the pieces of each sector
        for s in range(k):
            for piece, border in cut_off(graph, np.flatnonzero(side == s), int(centres[s])):
                reach = mathopt.fast_sum(x[v] for v in var[s, border] if v >= 0)
                for i in piece:
                    model.add_linear_constraint(x[var[s, i]] <= reach)
                cuts += 1
        if cuts == 0:
            return side
    return None
