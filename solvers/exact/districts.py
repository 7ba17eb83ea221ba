"""Exact districting by enumerating every feasible district (set partitioning).

A *district* is a connected set of units whose workload lies in ``[lower, upper]``.
A plan into ``k`` districts is then a choice of ``k`` districts that covers every
unit exactly once: a set-partitioning problem with one binary variable per district.
On small instances the districts can all be listed, and the set-partitioning model
is small enough for CP-SAT to prove optimality, or infeasibility, outright, where a
compact MIP with contiguity constraints stays open. On larger instances the list
grows past millions of districts and the enumeration gives up.

Method
------
:func:`enumerate_districts` lists connected sets by *reverse search*: every set is
generated from its smallest unit (the root, in an internal order by decreasing
workload), by binary branching on the smallest unit of the extension set (the units
adjacent to the current set, larger than the root, not yet excluded): either it
joins the set (its new neighbours join the extension set) or it is excluded from
the rest of that branch. Each connected set containing the root is reached at
exactly one leaf, the one where its whole boundary has been excluded, so there are
no duplicates and no set is missed.

Cuts, all exact because workloads are non-negative and every district lies whole
inside one connected component of the units outside any other district:

* a set heavier than ``upper`` is never extended; a branch whose set plus every
  unit still allowed in it stays below ``lower`` is dropped;
* *complement test* of a finished district ``D``: each connected component of the
  units outside ``D`` is a union of whole districts, so it holds ``m`` districts
  with ``1 <= m <= its number of units`` and its workload in
  ``[m * lower, m * upper]``; with ``k`` given, these ``m`` add up to ``k - 1``;
* the same test while a set ``S`` grows, on each component ``K`` of the units
  outside ``S``: the district grown from ``S`` leaves ``m`` whole districts inside
  ``K``, at most ``workload(K) / lower`` and ``|K|``; if ``K`` has *forbidden* units
  (before the root in the internal order, or excluded in this branch), which the
  district can no longer take, at least one and at least
  ``workload(forbidden units of K) / upper``;
* with ``k``, a district's workload range narrows to
  ``[total - (k - 1) * upper, total - (k - 1) * lower]``.

Validity: the list is complete (every district of every valid plan is in it),
so "no exact cover by ``k`` listed districts" proves that no plan exists, and the
best cover is the optimum. When the list cannot be completed (cap or deadline),
the functions say so (:class:`IncompleteEnumerationError`, status ``"unknown"``)
and never solve a truncated list.

Solver
------
:func:`partition` solves the set-partitioning model (one Boolean per district, every
unit covered exactly once, ``k`` districts) with CP-SAT, one worker by default.

Knows graphs and numbers only (no geopandas, no files).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

import networkx as nx
import numpy as np
from ortools.sat.python import cp_model
from scipy.sparse import csr_matrix

from solvers import budget

#: Iterations of the enumeration between two looks at the clock.
_CLOCK_EVERY = 1 << 16

#: CP-SAT objective coefficients are district costs times a power of two chosen so that
#: their sum over *all* districts stays below this (CP-SAT rejects a model whose objective
#: could overflow int64; 2**53 also keeps every partial sum exact in a double).
_MAX_SCALED_TOTAL = 2**53

PartitionStatus = Literal["optimal", "feasible", "infeasible", "unknown"]


class IncompleteEnumerationError(RuntimeError):
    """The district list could not be completed; ``found`` districts were listed so far."""

    def __init__(self, message: str, found: int) -> None:
        super().__init__(message)
        self.found = found


class TooManyDistrictsError(IncompleteEnumerationError):
    """More than ``max_districts`` districts pass the tests."""


class EnumerationTimeoutError(IncompleteEnumerationError):
    """The deadline passed before the enumeration finished."""


@dataclass
class PartitionResult:
    """What :func:`partition` found.

    Attributes
    ----------
    status
        ``"optimal"`` (proven best plan; without ``cost``: a plan exists),
        ``"feasible"`` (a plan, optimality not proven in time), ``"infeasible"``
        (proof that no plan exists: complete enumeration and CP-SAT proved that no
        exact cover exists) or ``"unknown"`` (see ``reason``).
    assignment
        ``(n,)`` district index ``0..k-1`` of every unit, or ``None``.
    centres
        ``(k,)`` the centre unit of every district (minimising its cost; the
        district's smallest unit without ``cost``), or ``None``.
    objective
        Sum of the district costs, in the units of ``cost``; ``0.0`` without
        ``cost``; ``None`` without a plan.
    bound
        Proven lower bound on the optimum in the units of ``cost`` (``None``
        without a cost or without a bound).
    n_districts
        Districts listed (after the complement test); those found before
        stopping when the enumeration was incomplete.
    enumeration_s, solve_s
        Wall-clock seconds spent listing districts and in CP-SAT (model
        building included).
    reason
        Why the status is ``"unknown"`` or ``"feasible"``; empty otherwise.
    log
        Human-readable progress lines.
    """

    status: PartitionStatus
    assignment: np.ndarray | None
    centres: np.ndarray | None
    objective: float | None
    bound: float | None
    n_districts: int
    enumeration_s: float
    solve_s: float
    reason: str = ""
    log: list[str] = field(default_factory=list)


def enumerate_districts(
    graph: nx.Graph,
    workload: np.ndarray,
    lower: float,
    upper: float,
    *,
    k: int | None = None,
    max_districts: int = 2_000_000,
    deadline: float | None = None,
) -> list[tuple[int, ...]]:
    """Every connected set of units with workload in ``[lower, upper]`` that passes
    the complement test (see the module docstring).

    Parameters
    ----------
    graph
        Contiguity graph on the nodes ``0..n-1``.
    workload
        ``(n,)`` non-negative workload of every unit (any unit, e.g. inhabitants).
        Sums are compared with the bounds as computed, without slack: integer
        workloads (totals below ``2**53``) are exact, fractional ones may round.
    lower, upper
        Bounds on a district's workload, same unit; ``0 <= lower <= upper``, ``upper > 0``.
    k
        Number of districts of the plans the districts are for; ``None`` drops the
        tests that need it (range narrowing, sum of the ``m``).
    max_districts
        Most districts to list before giving up.
    deadline
        Time of the active clock (:func:`solvers.budget.now`) after which to give up;
        ``None``: never. A work clock counts the sets examined.

    Returns
    -------
    list of tuple of int
        Each district as the sorted tuple of its nodes; no duplicates, in no
        particular order.

    Raises
    ------
    TooManyDistrictsError
        More than ``max_districts`` districts.
    EnumerationTimeoutError
        The deadline passed. Neither returns a partial list.
    ValueError
        Nodes other than ``0..n-1``, negative or non-finite workload, bad bounds.

    Examples
    --------
    >>> sorted(enumerate_districts(nx.path_graph(4), np.ones(4), 2, 2, k=2))
    [(0, 1), (2, 3)]
    """
    # stays whole: the reverse-search loop keeps its stack and counters in locals (the hot loop)
    w = _check_inputs(graph, workload, lower, upper, k)
    n = w.size
    lo, hi = float(lower), float(upper)
    total = float(w.sum())
    if k is not None:  # the other k - 1 districts must fit in the rest
        lo, hi = max(lo, total - (k - 1) * float(upper)), min(hi, total - (k - 1) * float(lower))
    if lo > hi or n == 0:
        return []
    # internal order: decreasing workload, so heavy units are roots and sets rooted
    # at a light unit run out of allowed workload early
    order = np.argsort(-w, kind="stable")
    pos = np.empty(n, dtype=np.intp)
    pos[order] = np.arange(n)
    wt = [float(x) for x in w[order]]
    nbr = [0] * n
    for a, b in graph.edges:
        if a != b:
            nbr[pos[a]] |= 1 << int(pos[b])
            nbr[pos[b]] |= 1 << int(pos[a])
    suffix = [0.0] * (n + 1)  # suffix[r] = workload of the units r..n-1 (internal order)
    for r in range(n - 1, -1, -1):
        suffix[r] = suffix[r + 1] + wt[r]
    full = (1 << n) - 1
    rest = _RestTest(full, nbr, wt, float(lower), float(upper), None if k is None else k - 1)
    found: list[int] = []
    ticks = 0
    clock = budget.current()
    for r in range(n):
        if wt[r] + suffix[r + 1] < lo:
            break  # later roots have even less workload available
        if wt[r] > hi:
            continue
        below = (1 << r) - 1
        allowed = full & ~below & ~(1 << r)
        first = nbr[r] & allowed
        # (set, its workload, extension set, workload of the units still allowed
        #  outside the set, units seen in this branch: set | extension | excluded)
        stack = [(1 << r, wt[r], first, suffix[r + 1], (1 << r) | first)]
        while stack:
            s_mask, s, ext, avail, seen = stack.pop()
            ticks += 1
            if ticks % _CLOCK_EVERY == 0 and deadline is not None and (
                    clock.tick("district", _CLOCK_EVERY) or clock.now() > deadline):
                raise EnumerationTimeoutError(
                    f"deadline passed while listing districts ({len(found):,} so far, root {r + 1} of {n})",
                    len(found))
            if s + avail < lo:
                continue
            if not ext:
                if s >= lo and rest.ok(s_mask, full & ~s_mask):
                    found.append(s_mask)
                    if len(found) > max_districts:
                        raise TooManyDistrictsError(
                            f"more than {max_districts:,} districts (root {r + 1} of {n})", len(found))
                continue
            bit = ext & -ext
            i = bit.bit_length() - 1
            wi = wt[i]
            ext ^= bit
            stack.append((s_mask, s, ext, avail - wi, seen))  # unit i excluded
            grown = s_mask | bit
            # unit i joins, unless the rest can no longer hold the other districts
            if s + wi <= hi and rest.ok(grown, below | (seen & ~grown & ~ext)):
                new = nbr[i] & allowed & ~seen
                stack.append((grown, s + wi, ext | new, avail - wi, seen | new))
    return [_members(m, order) for m in found]


def partition(
    graph: nx.Graph,
    workload: np.ndarray,
    lower: float,
    upper: float,
    k: int,
    cost: np.ndarray | None = None,
    *,
    time_limit_s: float,
    max_districts: int = 2_000_000,
    workers: int = 1,
    size: np.ndarray | None = None,
    max_size: float | None = None,
    list_time_limit_s: float | None = None,
) -> PartitionResult:
    """Best (or any) partition of ``graph`` into ``k`` connected districts with
    workload in ``[lower, upper]``, by complete district enumeration and set
    partitioning with CP-SAT.

    Parameters
    ----------
    graph, workload, lower, upper
        As in :func:`enumerate_districts`.
    k
        Number of districts, ``>= 1``.
    cost
        ``(n, n)`` non-negative ``cost[j, i]``: cost of unit ``i`` when ``j`` is
        the centre of its district (e.g. workload x squared distance). A
        district costs ``min`` over centres ``j`` *inside* it of ``sum_i cost[j, i]``
        (the Hess / p-median cost); the objective is the sum over districts.
        ``None``: any plan will do.
    time_limit_s
        Seconds (of the active clock, :mod:`solvers.budget`) for listing and solving together.
    list_time_limit_s
        At most this many of them for the listing (default: all); CP-SAT gets the rest.
        The list's cost can explode with the graph, CP-SAT's grows with the list: a
        caller gives up early on a list too long to finish and lets a complete one be solved.
    max_districts
        Give up (status ``"unknown"``) when more districts than this pass the tests.
    workers
        CP-SAT search workers (threads).
    size, max_size
        ``(n,)`` non-negative size of every unit (e.g. 1 per commune, or km²) and
        the cap on a district's summed size: districts above it are dropped from
        the list before the set partitioning (the enumeration's own tests ignore
        the cap, which keeps the list complete for the capped plans).

    Returns
    -------
    PartitionResult
        ``"infeasible"`` and ``"optimal"`` are proofs. With ``cost``, CP-SAT
        works on integers: every district cost is multiplied by a power of two
        ``2**p`` (as large as keeps the sum over all districts below ``2**53``) and rounded,
        so "optimal" (and ``bound``) is exact for those costs, and the plan's true
        cost is within ``k / 2**p`` of the true optimum (the log gives ``p``;
        ``2**-p`` is at most ``2**-52`` times the sum of all district costs);
        ``objective`` is recomputed from ``cost`` unrounded.

    Raises
    ------
    ValueError
        Bad inputs (see :func:`enumerate_districts`), ``k < 1`` or a ``cost`` of
        the wrong shape, negative or non-finite.
    """
    # stays whole: one CP-SAT model built from the list and solved; mostly docstring
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = graph.number_of_nodes()
    if cost is not None:
        cost = np.asarray(cost, dtype=float)
        if cost.shape != (n, n) or not np.isfinite(cost).all() or (cost < 0).any():
            raise ValueError(f"cost must be a finite non-negative ({n}, {n}) matrix, got shape {cost.shape}")
    start = time.monotonic()  # wall seconds, for the log
    clock = budget.current()
    began = clock.now()
    log: list[str] = []
    try:
        listing = time_limit_s if list_time_limit_s is None else min(list_time_limit_s, time_limit_s)
        districts = enumerate_districts(graph, workload, lower, upper, k=k, max_districts=max_districts,
                                        deadline=began + listing)
    except IncompleteEnumerationError as err:
        elapsed = time.monotonic() - start
        log.append(f"enumeration stopped after {elapsed:.1f} s: {err}")
        return PartitionResult("unknown", None, None, None, None, err.found, elapsed, 0.0,
                               reason=f"incomplete enumeration: {err}", log=log)
    enum_s = time.monotonic() - start
    log.append(f"{len(districts):,} districts in {enum_s:.1f} s")
    if size is not None and max_size is not None:
        sz = np.asarray(size, dtype=float)
        slack = 1e-9 * max(1.0, abs(float(max_size)))
        kept = [d for d in districts if float(sz[list(d)].sum()) <= float(max_size) + slack]
        log.append(f"{len(kept):,} of them within the territory cap {float(max_size):,.6g}")
        districts = kept
    t_solve = time.monotonic()
    indptr = np.zeros(len(districts) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(d) for d in districts])
    indices = np.fromiter((u for d in districts for u in d), dtype=np.int64, count=int(indptr[-1]))
    uncovered = np.flatnonzero(np.bincount(indices, minlength=n) == 0)
    if len(districts) < k or uncovered.size:  # no need for a solver
        why = f"only {len(districts)} districts" if len(districts) < k else f"unit {uncovered[0]} is in no district"
        log.append(f"infeasible: {why}")
        return PartitionResult("infeasible", None, None, None, None, len(districts), enum_s, 0.0, log=log)
    incidence = csr_matrix((np.ones(indices.size), indices, indptr), shape=(len(districts), n))
    centre_of, d_cost = (_district_costs(incidence, cost) if cost is not None
                         else (indices[indptr[:-1]], np.zeros(len(districts))))
    model = cp_model.CpModel()
    z = [model.new_bool_var(f"z{d}") for d in range(len(districts))]
    by_unit = incidence.T.tocsr()
    for i in range(n):
        model.add_exactly_one(z[d] for d in by_unit.indices[by_unit.indptr[i]:by_unit.indptr[i + 1]])
    model.add(cp_model.LinearExpr.sum(z) == k)
    scale = 1.0
    if cost is not None:
        worst = float(d_cost.sum())
        p = math.floor(math.log2(_MAX_SCALED_TOTAL / worst)) if worst > 0 else 0
        scale = 2.0**p
        model.minimize(cp_model.LinearExpr.weighted_sum(z, [int(c) for c in np.rint(d_cost * scale)]))
        log.append(f"objective scaled by 2**{p}")
    solver = cp_model.CpSolver()
    left = max(0.1, time_limit_s - (clock.now() - began))
    if clock.deterministic:  # CP-SAT's own deterministic time, one worker; the time limit is the safety cap's
        solver.parameters.max_deterministic_time = left / clock.costs.cpsat_time
        solver.parameters.max_time_in_seconds = max(min(clock.wall_left(), 1e6), 0.1)
        solver.parameters.num_workers = 1
    else:
        solver.parameters.max_time_in_seconds = left
        solver.parameters.num_workers = workers
    code = solver.solve(model)
    clock.charge(solver.deterministic_time * clock.costs.cpsat_time if clock.deterministic else 0.0)
    if clock.deterministic and code == cp_model.UNKNOWN and solver.wall_time >= solver.parameters.max_time_in_seconds:
        clock.stop("stopped by the wall-time safety cap inside CP-SAT: not reproducible")
    solve_s = time.monotonic() - t_solve
    log.append(f"CP-SAT {solver.status_name(code)} in {solver.wall_time:.1f} s "
               f"({len(districts):,} columns, {n} rows; {solve_s:.1f} s with model building)")
    if code == cp_model.INFEASIBLE:
        return PartitionResult("infeasible", None, None, None, None, len(districts), enum_s, solve_s, log=log)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return PartitionResult("unknown", None, None, None, None, len(districts), enum_s, solve_s,
                               reason=f"CP-SAT {solver.status_name(code)} within the time limit", log=log)
    chosen = [d for d in range(len(districts)) if solver.boolean_value(z[d])]
    assignment = np.empty(n, dtype=np.intp)
    for label, d in enumerate(chosen):
        assignment[list(districts[d])] = label
    bound = None if cost is None else solver.best_objective_bound / scale
    status: PartitionStatus = "optimal" if code == cp_model.OPTIMAL else "feasible"
    return PartitionResult(
        status, assignment, centre_of[chosen].astype(np.intp), float(d_cost[chosen].sum()), bound,
        len(districts), enum_s, solve_s,
        reason="" if status == "optimal" else "time limit before CP-SAT proved optimality", log=log)


def _check_inputs(graph: nx.Graph, workload: np.ndarray, lower: float, upper: float, k: int | None) -> np.ndarray:
    w = np.asarray(workload, dtype=float)
    n = w.size
    if w.shape != (n,) or set(graph.nodes) != set(range(n)):
        raise ValueError(f"graph nodes must be 0..{n - 1} for a workload of shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("workload must be finite and non-negative")
    if not (0 <= lower <= upper and upper > 0):
        raise ValueError(f"need 0 <= lower <= upper and upper > 0, got [{lower}, {upper}]")
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return w


@dataclass(frozen=True)
class _RestTest:
    """The test that the units outside a set can still hold the other districts.

    ``full`` is the mask of all units, ``nbr[i]`` the neighbour mask of unit ``i``,
    ``wt[i]`` its workload, ``rest_k`` the number of other districts (``None``: any).
    """

    full: int
    nbr: list[int]
    wt: list[float]
    lower: float
    upper: float
    rest_k: int | None

    def ok(self, s_mask: int, forbidden: int) -> bool:
        """Whether some district ``D`` with ``s_mask <= D`` and ``D & forbidden == 0``
        can leave a rest made of whole districts.

        Each component ``K`` of the units outside ``s_mask`` ends up holding ``m``
        districts, all inside ``K``: at least one, and enough for the workload of
        its forbidden units (at most ``upper`` each), if it has forbidden units; at
        most its number of units and ``workload(K) / lower``. The ``m`` must add up
        to ``rest_k``. When ``forbidden`` is every unit outside ``s_mask`` (a finished
        district), this is the complement test of the module docstring.
        """
        nbr, wt = self.nbr, self.wt
        rest = self.full & ~s_mask
        fewest = most = 0
        while rest:
            comp = frontier = rest & -rest
            load = fixed = 0.0  # workload of the component, of its forbidden units
            size = n_fixed = 0
            while frontier:  # one breadth-first layer a turn
                grow = 0
                while frontier:
                    bit = frontier & -frontier
                    i = bit.bit_length() - 1
                    grow |= nbr[i]
                    load += wt[i]
                    size += 1
                    if bit & forbidden:
                        fixed += wt[i]
                        n_fixed += 1
                    frontier ^= bit
                frontier = grow & rest & ~comp
                comp |= frontier
            rest &= ~comp
            m_lo = _fewest_districts(fixed, self.upper) if n_fixed else 0
            m_hi = _most_districts(load, size, self.lower)
            if m_lo > m_hi:
                return False
            fewest += m_lo
            most += m_hi
        return self.rest_k is None or fewest <= self.rest_k <= most


def _fewest_districts(load: float, upper: float) -> int:
    """Smallest ``m >= 1`` with ``m * upper >= load`` (``upper > 0``)."""
    m = max(1, math.ceil(load / upper))
    while m > 1 and (m - 1) * upper >= load:  # division rounding, both ways
        m -= 1
    while m * upper < load:
        m += 1
    return m


def _most_districts(load: float, size: int, lower: float) -> int:
    """Largest ``m <= size`` with ``m * lower <= load``."""
    if lower <= 0:
        return size
    m = math.floor(load / lower)
    while m * lower > load:
        m -= 1
    while (m + 1) * lower <= load:
        m += 1
    return min(m, size)


def _members(mask: int, order: np.ndarray) -> tuple[int, ...]:
    """The sorted original node ids of an internal bit mask."""
    out = []
    while mask:
        bit = mask & -mask
        out.append(int(order[bit.bit_length() - 1]))
        mask ^= bit
    return tuple(sorted(out))


def _district_costs(incidence: csr_matrix, cost: np.ndarray, chunk: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """``(centre, cost)`` of every district (rows of ``incidence``): the member ``j``
    minimising ``sum_i cost[j, i]`` over the members ``i``, and that sum."""
    m = incidence.shape[0]
    centre = np.empty(m, dtype=np.intp)
    value = np.empty(m)
    for a in range(0, m, chunk):
        rows = incidence[a:a + chunk]
        by_centre = np.asarray(rows @ cost.T)  # [d, j] = sum over members i of cost[j, i]
        by_centre[rows.toarray() == 0] = np.inf  # the centre must be a member
        centre[a:a + chunk] = by_centre.argmin(axis=1)
        value[a:a + chunk] = by_centre[np.arange(by_centre.shape[0]), centre[a:a + chunk]]
    return centre, value
