"""What the cut-edges modules share: the measure's definition, edge costs, canonical sector labels."""

from __future__ import annotations


import numpy as np

from solvers.exact.model import sector_classes
from solvers.problem import Problem


#: Plain-language definition, for summaries.
DEFINITION = "number of adjacency edges between different sectors"

#: Slack on the balance bounds, relative (as in :mod:`solvers.check`).
EPS = 1e-9


def edge_costs(problem: Problem, weight: str | None) -> tuple[np.ndarray, np.ndarray]:
    """``(m, 2)`` edges and ``(m,)`` their costs (1, or the ``weight`` attribute)."""
    edges = np.array([(u, v) for u, v in problem.graph.edges], dtype=np.intp).reshape(-1, 2)
    if weight is None:
        return edges, np.ones(len(edges))
    costs = np.array([float(d.get(weight, 1)) for _, _, d in problem.graph.edges(data=True)])
    if not np.all(np.isfinite(costs)) or (costs < 0).any():
        raise ValueError(f"edge attribute {weight!r} must be finite and >= 0 on every edge")
    return edges, costs


def canonical(problem: Problem, assignment: np.ndarray) -> np.ndarray:
    """Relabel interchangeable sectors (same bounds, no locks) in the order of their smallest unit.

    The plan is the same; this is the labelling the MIP's symmetry breaking keeps.
    """
    a = np.asarray(assignment, dtype=np.intp)
    out = a.copy()
    for c in sector_classes(problem):
        if len(c.sectors) < 2:
            continue
        first = {s: int(np.flatnonzero(a == s).min()) if (a == s).any() else problem.n for s in c.sectors}
        for new, old in zip(c.sectors, sorted(c.sectors, key=first.get)):
            out[a == old] = new
    return out
