"""The exact cut-edges MIP (:func:`exact_cut_edges`): the labeling model of Validi & Buchanan."""

from __future__ import annotations

import math
import time
from typing import Literal

import numpy as np
from ortools.math_opt.python import mathopt

from solvers import budget
from solvers.check import check_plan, diagnose
from solvers.construct.heuristic import neighbour_lists
from solvers.exact.model import best_centres, sector_classes
from solvers.problem import InfeasibleError, NoPlanFoundError, ProgressCallback, Problem, Solution, cut_edges
from solvers.cut_edges.common import canonical, edge_costs


#: Up to this many units the MIP's root is each sector's smallest unit (a stronger model); above,
#: any member may be the root (with smallest-unit roots HiGHS may overrun the time limit in its
#: root node on larger graphs).
SMALLEST_ROOT_MAX_UNITS = 400


def _max_units(problem: Problem, upper: float) -> int:
    """Most units a sector within ``upper`` can hold (lightest units first)."""
    lightest = np.cumsum(np.sort(np.asarray(problem.workload, dtype=float)))
    return int(max(np.searchsorted(lightest, upper * (1 + 1e-9), side="right"), 1))


def exact_cut_edges(
    problem: Problem,
    *,
    weight: str | None = None,
    time_limit_s: float = 60.0,
    hint: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
    seed: int = 0,
    roots: Literal["smallest", "free"] | None = None,
) -> Solution:
    """Fewest cut edges over every contiguous balanced plan, with a proven bound.

    The labeling model of Validi & Buchanan (2022), with a single-commodity
    flow for contiguity ("labeling-scf"):

    * ``x[i, s]`` binary: unit ``i`` in sector ``s``; ``sum_s x[i, s] = 1``;
      ``L_s <= sum_i w_i x[i, s] <= U_s``; locked units fixed; with territory
      caps, ``sum_i a_i x[i, s] <= A_s`` (:attr:`Problem.max_size`);
    * ``y[e] >= x[u, s] - x[v, s]`` and ``>= x[v, s] - x[u, s]`` for every
      edge ``e = uv`` and sector ``s``; minimise ``sum_e c_e y[e]`` (``c_e = 1``
      or the ``weight`` attribute);
    * one root per sector: ``r[i, s] <= x[i, s]``, ``sum_i r[i, s] = 1``; with
      ``roots="smallest"`` it is the sector's smallest-index member
      (``r[i, s] >= x[i, s] - sum_{j<i} r[j, s]``, the sums as a chain of
      variables ``z``);
    * flow ``f`` on both directions of every edge, only on uncut edges
      (``f_uv + f_vu <= M (1 - y[e])``); every unit consumes one unit of flow,
      a root may send up to ``M - 1`` (``M``: most units a sector can hold):
      a sector whose units cannot all be reached from its root through uncut
      edges, i.e. a disconnected sector, is infeasible;
    * symmetry: interchangeable sectors (same bounds, no locks,
      :func:`solvers.exact.model.sector_classes`) are ordered by their smallest unit
      (``roots="free"``: only unit ``i < j`` kept out of a class's ``j``-th sector);
    * a non-root member has a neighbour in its sector:
      ``x[i, s] <= r[i, s] + sum_{v ~ i} x[v, s]``.

    Parameters
    ----------
    problem
        Any problem (its travel costs only place :attr:`Solution.centres`).
    weight
        Edge attribute summed instead of counting edges (see :func:`cut_edges`).
    time_limit_s
        Seconds, model building included. HiGHS may overrun it in its root
        node on large models (observed from 499 units, see
        :data:`SMALLEST_ROOT_MAX_UNITS`): meant for up to a few hundred units.
    hint
        ``(n,)`` a valid plan to start from (e.g. the heuristic's); returned if
        the solver finds nothing better.
    progress
        Receives HiGHS's log lines.
    seed
        HiGHS random seed.
    roots
        ``"smallest"`` or ``"free"`` (see above); default ``"smallest"`` up to
        :data:`SMALLEST_ROOT_MAX_UNITS` units.

    Returns
    -------
    Solution
        ``status == "optimal"`` only when HiGHS proved it; ``bound`` the proven
        lower bound (rounded up to an integer when edges are counted).

    Raises
    ------
    InfeasibleError
        When :func:`solvers.check.diagnose` or the MIP proves that no
        contiguous plan meets the bounds; :class:`~solvers.problem.NoPlanFoundError`
        (nothing proven) when time ran out before any plan was found.
    """
    # stays whole: one model built then solved: the variables, numbered constraint families and warm start share its locals
    start = time.monotonic()  # wall seconds, for the log and Solution.time_s
    clock = budget.current()
    began = clock.now()
    reasons = diagnose(problem)
    if reasons:
        raise InfeasibleError("; ".join(reasons))
    say = progress or (lambda line: None)
    log: list[str] = []

    def note(line: str) -> None:
        log.append(line)
        say(line)

    n, k = problem.n, problem.k
    if roots is None:
        roots = "smallest" if n <= SMALLEST_ROOT_MAX_UNITS else "free"
    if roots not in ("smallest", "free"):
        raise ValueError(f"roots must be 'smallest' or 'free', got {roots!r}")
    edges, costs = edge_costs(problem, weight)
    integral = weight is None or bool(np.all(costs == np.round(costs)))
    classes = sector_classes(problem)
    lower, upper = np.zeros(k), np.zeros(k)
    for c in classes:
        lower[list(c.sectors)], upper[list(c.sectors)] = c.lower, c.upper
    w = np.asarray(problem.workload, dtype=float)
    cap = float(max(_max_units(problem, float(upper.max())) - 1, 1))
    nbrs = neighbour_lists(problem)

    model = mathopt.Model(name="cut_edges")
    x = {(i, s): model.add_binary_variable(name=f"x_{i}_{s}") for i in range(n) for s in range(k)}
    r = {(i, s): model.add_binary_variable(name=f"r_{i}_{s}") for i in range(n) for s in range(k)}
    z = ({(i, s): model.add_variable(lb=0.0, ub=1.0, name=f"z_{i}_{s}") for i in range(n) for s in range(k)}
         if roots == "smallest" else {})
    y = [model.add_variable(lb=0.0, ub=1.0, name=f"y_{e}") for e in range(len(edges))]
    for u, s in problem.locked.items():
        for t in range(k):
            x[u, t].lower_bound = x[u, t].upper_bound = float(t == s)
    for i in range(n):
        model.add_linear_constraint(mathopt.fast_sum(x[i, s] for s in range(k)) == 1)
    for s in range(k):
        load = mathopt.fast_sum(float(w[i]) * x[i, s] for i in range(n) if w[i] > 0)
        model.add_linear_constraint(load >= float(lower[s]))
        model.add_linear_constraint(load <= float(upper[s]))
        if problem.size is not None and np.isfinite(problem.size_caps[s]):
            size = problem.sizes
            model.add_linear_constraint(
                mathopt.fast_sum(float(size[i]) * x[i, s] for i in range(n) if size[i] > 0)
                <= float(problem.size_caps[s]))
        if roots == "free":
            model.add_linear_constraint(mathopt.fast_sum(r[i, s] for i in range(n)) == 1)
            for i in range(n):
                model.add_linear_constraint(r[i, s] <= x[i, s])
                model.add_linear_constraint(x[i, s] <= r[i, s] + mathopt.fast_sum(x[v, s] for v in nbrs[i]))
            continue
        # z[i, s] = r[0, s] + ... + r[i, s]: the root is the sector's smallest unit
        for i in range(n):
            before = z[i - 1, s] if i else 0.0
            model.add_linear_constraint(z[i, s] == before + r[i, s])
            model.add_linear_constraint(r[i, s] <= x[i, s])
            model.add_linear_constraint(r[i, s] >= x[i, s] - before)
            model.add_linear_constraint(
                x[i, s] <= r[i, s] + mathopt.fast_sum(x[v, s] for v in nbrs[i]))
        model.add_linear_constraint(z[n - 1, s] == 1)
    for c in classes:  # interchangeable sectors in the order of their smallest unit
        for j, (prev, s) in enumerate(zip(c.sectors, c.sectors[1:])):
            if roots == "free":  # the smallest unit of the (j+1)-th sector of a class is unit j or later
                for i in range(min(j + 1, n)):
                    x[i, s].upper_bound = 0.0
                continue
            model.add_linear_constraint(r[0, s] == 0)
            for i in range(1, n):
                model.add_linear_constraint(z[i, s] <= z[i - 1, prev])
    inflow: list[list] = [[] for _ in range(n)]
    outflow: list[list] = [[] for _ in range(n)]
    for e, (u, v) in enumerate(edges):
        for s in range(k):
            model.add_linear_constraint(y[e] >= x[u, s] - x[v, s])
            model.add_linear_constraint(y[e] >= x[v, s] - x[u, s])
        f_uv = model.add_variable(lb=0.0, ub=cap, name=f"f_{u}_{v}")
        f_vu = model.add_variable(lb=0.0, ub=cap, name=f"f_{v}_{u}")
        model.add_linear_constraint(f_uv + f_vu <= cap * (1 - y[e]))
        outflow[u].append(f_uv)
        inflow[v].append(f_uv)
        outflow[v].append(f_vu)
        inflow[u].append(f_vu)
    for i in range(n):
        model.add_linear_constraint(
            mathopt.fast_sum(inflow[i]) - mathopt.fast_sum(outflow[i])
            >= 1 - (cap + 1) * mathopt.fast_sum(r[i, s] for s in range(k)))
    model.minimize(mathopt.fast_sum(float(c) * var for c, var in zip(costs, y)))
    note(f"cut-edges MIP (labeling, flow contiguity, {roots} roots, {len(classes)} sector class(es)): "
         f"{model.get_num_variables():,} variables, {model.get_num_linear_constraints():,} constraints, "
         f"built in {time.monotonic() - start:.1f} s")
    clock.tick("step", 4 * model.get_num_variables())  # the model built in Python

    incumbent: tuple[np.ndarray, float] | None = None
    model_params = None
    if hint is not None and not check_plan(problem, np.asarray(hint, dtype=np.intp)):
        h = canonical(problem, np.asarray(hint, dtype=np.intp))
        incumbent = (h, float(cut_edges(problem.graph, h, weight=weight)))
        values: dict[mathopt.Variable, float] = {}
        for i in range(n):
            for s in range(k):
                values[x[i, s]] = float(h[i] == s)
                values[r[i, s]] = float(h[i] == s and not (h[:i] == s).any())
        model_params = mathopt.ModelSolveParameters(solution_hints=[mathopt.SolutionHint(variable_values=values)])
    # with integer edge costs, a bound within 1 of the incumbent proves it
    gaps = dict(relative_gap_tolerance=1e-9, absolute_gap_tolerance=0.999 if integral else 1e-9, random_seed=seed)
    size = budget.model_size(model) if clock.deterministic else (0, 0, 0)
    params = budget.solve_parameters(max(began + time_limit_s - clock.now(), 0.2), rows=size[0], columns=size[1],
                                     integer=True, min_seconds=0.2, **gaps)
    result = mathopt.solve(
        model, mathopt.SolverType.HIGHS, params=params, model_params=model_params,
        msg_cb=(lambda lines: [say(line) for line in lines if line.strip()]) if progress else None,
    )
    budget.record(result, rows=size[0], columns=size[1], nonzeros=size[2], integer=True)
    reason = result.termination.reason
    if reason == mathopt.TerminationReason.INFEASIBLE:
        raise InfeasibleError(
            "the cut-edges MIP proves that no plan with connected sectors has every workload within its "
            f"bounds ({', '.join(f'[{c.lower:,.1f}, {c.upper:,.1f}]' for c in classes)})"
            f"{'' if problem.size is None else ' and every territory within its cap'}; widen the "
            "tolerance, change the targets or the units"
        )
    if result.has_primal_feasible_solution():
        values = result.variable_values()
        plan = np.array([max(range(k), key=lambda s: values[x[i, s]]) for i in range(n)], dtype=np.intp)
        if not check_plan(problem, plan):
            cut = float(cut_edges(problem.graph, plan, weight=weight))
            if incumbent is None or cut < incumbent[1] - 1e-9:
                incumbent = (plan, cut)
    if incumbent is None:
        raise NoPlanFoundError(
            f"the cut-edges MIP found no plan in {time_limit_s:.0f} s and did not prove that none exists; "
            "give more time or use the 'heuristic' backend"
        )
    bound = float(result.best_objective_bound())
    bound = None if not math.isfinite(bound) else bound
    if bound is not None:
        if integral:
            bound = float(math.ceil(bound - 1e-6))
        bound = min(bound, incumbent[1])
    proven = reason == mathopt.TerminationReason.OPTIMAL or (bound is not None and bound >= incumbent[1] - 1e-9)
    assign, cut = incumbent
    note(f"cut-edges MIP: {cut:,.6g} cut, bound {'none' if bound is None else f'{bound:,.6g}'} "
         f"({'proven optimal' if proven else 'time limit'}), {time.monotonic() - start:.1f} s")
    return Solution(assignment=assign, centres=best_centres(problem, assign), objective=cut,
                    status="optimal" if proven else "feasible", backend="exact",
                    time_s=time.monotonic() - start, bound=bound, log=log)
