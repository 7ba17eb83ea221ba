"""Independent plan checks and up-front feasibility diagnosis.

:func:`check_partition` re-verifies any assignment from scratch with
networkx (it shares no code with the backends), so a bug in a solver cannot
certify its own output. :func:`diagnose` finds the obvious reasons why no plan
can exist, before a long search.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np

from solvers.problem import BAND_RTOL, Problem, within_band, within_cap

#: Relative slack allowed on balance bounds, for floating-point sums only (:data:`BAND_RTOL`).
EPS = BAND_RTOL


def check_partition(
    graph: nx.Graph,
    assignment: Sequence[int] | np.ndarray,
    workload: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    unit_label=lambda u: f"unit {u}",
    part_label=lambda s: f"sector {s}",
    locked: dict[int, int] | None = None,
    size: np.ndarray | None = None,
    max_size: np.ndarray | None = None,
    size_unit: str = "size units",
) -> list[str]:
    """Check a partition of ``graph`` into ``len(lower)`` parts.

    Returns one human-readable message per violated rule; an empty list means
    the plan is valid: every unit in exactly one part ``0..k-1``, every part
    non-empty and connected, every part's workload within ``[lower, upper]``,
    locked units where they were locked, and, with ``size`` (``(n,)``, e.g. 1
    per commune or km²) and ``max_size`` (``(k,)``, same unit), every part's
    summed size at most its cap (``size_unit`` names the measure in messages).

    Examples
    --------
    >>> g = nx.path_graph(4)
    >>> check_partition(g, [0, 0, 1, 1], np.ones(4), np.array([2, 2]), np.array([2, 2]))
    []
    >>> check_partition(g, [0, 1, 0, 1], np.ones(4), np.array([2, 2]), np.array([2, 2]))[0]
    'sector 0 is not connected: 2 pieces (largest 1 units; e.g. unit 2 is cut off)'
    """
    a = np.asarray(assignment)
    k = len(lower)
    n = graph.number_of_nodes()
    msgs: list[str] = []
    if a.shape != (n,):
        return [f"assignment has {a.size} entries for {n} units"]
    bad = [u for u in range(n) if not (0 <= a[u] < k)]
    for u in bad[:10]:
        msgs.append(f"{unit_label(u)} has no valid sector (got {a[u]})")
    if bad:
        return msgs
    loads = np.bincount(a, weights=np.asarray(workload, dtype=float), minlength=k)
    for s in range(k):
        members = np.flatnonzero(a == s)
        if members.size == 0:
            msgs.append(f"{part_label(s)} is empty")
            continue
        sub = graph.subgraph(members.tolist())
        if not nx.is_connected(sub):
            comps = sorted(nx.connected_components(sub), key=len, reverse=True)
            stray = min(comps[1])
            msgs.append(
                f"{part_label(s)} is not connected: {len(comps)} pieces "
                f"(largest {len(comps[0])} units; e.g. {unit_label(stray)} is cut off)"
            )
        if not within_band(loads[s], lower[s], upper[s]):
            mid = (lower[s] + upper[s]) / 2
            dev = (loads[s] - mid) / mid * 100 if mid else float("inf")
            msgs.append(
                f"{part_label(s)} caseload {loads[s]:.1f} is outside "
                f"[{lower[s]:.1f}, {upper[s]:.1f}] ({dev:+.1f}% from target)"
            )
    if size is not None and max_size is not None:
        territory = np.bincount(a, weights=np.asarray(size, dtype=float), minlength=k)
        cap = np.asarray(max_size, dtype=float)
        for s in np.flatnonzero(~within_cap(territory, cap)):
            msgs.append(
                f"{part_label(int(s))} territory {territory[s]:,.6g} {size_unit} is above its cap of "
                f"{cap[s]:,.6g} {size_unit} (+{(territory[s] / cap[s] - 1) * 100 if cap[s] > 0 else float('inf'):.1f}%)"
            )
    for u, s in (locked or {}).items():
        if a[u] != s:
            msgs.append(f"{unit_label(u)} is locked to {part_label(s)} but was put in {part_label(int(a[u]))}")
    return msgs


def check_plan(problem: Problem, assignment: Sequence[int] | np.ndarray) -> list[str]:
    """:func:`check_partition` with the problem's graph, bounds, labels and territory caps
    (:attr:`Problem.max_size`), plus the cap on moves from the previous plan
    (:attr:`Problem.max_moved`).

    Examples
    --------
    >>> from solvers.problem import DenseTravelTimes
    >>> p = Problem(nx.path_graph(4), np.ones(4), np.array([2.0, 2.0]), 0.5, DenseTravelTimes(np.zeros((4, 4))),
    ...             size=np.ones(4), max_size=np.array([2.0, 2.0]), size_unit="communes")
    >>> check_plan(p, [0, 0, 0, 1])
    ['sector 0 territory 3 communes is above its cap of 2 communes (+50.0%)']
    """
    problems = check_partition(
        problem.graph,
        assignment,
        problem.workload,
        problem.lower,
        problem.upper,
        unit_label=problem.label,
        part_label=problem.sector_label,
        locked=problem.locked,
        size=problem.size,
        max_size=problem.max_size,
        size_unit=problem.size_unit,
    )
    if problem.max_moved is not None:
        moved = problem.moved(np.asarray(assignment))
        if moved > problem.max_moved + 1e-6:
            problems.append(f"moves from the previous plan weigh {moved:,.1f}, above the cap of {problem.max_moved:,.1f}")
    return problems


def diagnose(problem: Problem) -> list[str]:
    """Reasons why ``problem`` has no feasible plan, found without searching.

    Checks, in order: the graph is connected; the total workload fits between
    the sum of the lower and the sum of the upper bounds; no single unit is
    heavier than the largest sector may be; with territory caps
    (:attr:`Problem.max_size`), the region's territory fits in the summed caps
    and no unit is larger than the largest cap; locked units of one sector can
    be joined without crossing a unit locked elsewhere (and fit its cap). An
    empty list does not prove feasibility; a non-empty one proves infeasibility.

    Examples
    --------
    >>> from solvers.problem import DenseTravelTimes
    >>> p = Problem(nx.path_graph(3), np.array([1.0, 5.0, 1.0]), np.array([3.5, 3.5]), 0.1,
    ...             DenseTravelTimes(np.zeros((3, 3))))
    >>> diagnose(p)[0][:44]
    'unit 1 alone has a caseload of 5.0, which is'
    """
    msgs: list[str] = []
    g, w = problem.graph, np.asarray(problem.workload, dtype=float)
    if not nx.is_connected(g):
        comps = sorted(nx.connected_components(g), key=len, reverse=True)
        msgs.append(
            f"the units form {len(comps)} separate pieces (e.g. {problem.label(min(comps[1]))} "
            "touches none of the others); link islands or use a region that is one piece"
        )
    total, lo, hi = w.sum(), problem.lower.sum(), problem.upper.sum()
    if total < lo - EPS * lo or total > hi + EPS * hi:
        msgs.append(
            f"total caseload {total:.1f} cannot be split into sectors whose bounds add up to "
            f"[{lo:.1f}, {hi:.1f}]; check the targets"
        )
    heaviest = int(np.argmax(w))
    big = problem.upper.max()
    if w[heaviest] > big * (1 + EPS):
        s = int(np.argmax(problem.upper))
        over = (w[heaviest] / problem.targets[s] - 1) * 100
        msgs.append(
            f"{problem.label(heaviest)} alone has a caseload of {w[heaviest]:.1f}, which is "
            f"{over:.0f}% over the largest sector target ({problem.sector_label(s)}: "
            f"{problem.targets[s]:.1f}, tolerance ±{problem.tolerance:.0%}); split the unit "
            "(e.g. the Lyon-arrondissements variant) or widen the tolerance"
        )
    size, cap = problem.sizes, problem.size_caps
    unit = problem.size_unit
    if size is not None:
        if not within_cap(size.sum(), cap.sum()):
            msgs.append(
                f"the region's territory, {size.sum():,.6g} {unit}, is above the summed territory caps of the "
                f"sectors ({cap.sum():,.6g} {unit}); raise the territory cap per FTE or add workers"
            )
        largest = int(np.argmax(size))
        if not within_cap(size[largest], cap.max()):
            msgs.append(
                f"{problem.label(largest)} alone covers {size[largest]:,.6g} {unit}, above the largest sector's "
                f"territory cap ({cap.max():,.6g} {unit}); raise the territory cap per FTE"
            )
    by_sector: dict[int, list[int]] = {}
    for u, s in problem.locked.items():
        by_sector.setdefault(s, []).append(u)
    for s, units in by_sector.items():
        others = [u for u, t in problem.locked.items() if t != s]
        free = g.subgraph(set(g.nodes) - set(others))
        comp = nx.node_connected_component(free, units[0])
        cut = [u for u in units if u not in comp]
        if cut:
            msgs.append(
                f"{problem.sector_label(s)}: locked {problem.label(cut[0])} cannot be joined to "
                f"locked {problem.label(units[0])} without crossing units locked to other sectors"
            )
        w_locked = w[units].sum()
        if w_locked > problem.upper[s] * (1 + EPS):
            msgs.append(
                f"{problem.sector_label(s)}: its locked units already carry {w_locked:.1f}, "
                f"above its maximum {problem.upper[s]:.1f}"
            )
        if size is not None and not within_cap(size[units].sum(), cap[s]):
            msgs.append(
                f"{problem.sector_label(s)}: its locked units already cover {size[units].sum():,.6g} {unit}, "
                f"above its territory cap {cap[s]:,.6g} {unit}"
            )
    return msgs
