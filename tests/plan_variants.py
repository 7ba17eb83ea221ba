"""Variants of a real plan for registry and routing tests: a few boundary communes moved."""

from __future__ import annotations

import dataclasses


def moved(plan, count: int = 1, skip: int = 0):
    """A copy of ``plan`` where ``count`` boundary communes join their neighbour's sector, each move
    keeping the plan valid (the registry checks every plan again); returns ``(plan, moved codes)``.

    ``skip`` boundary edges (in sorted order) are passed over first, so different ``skip`` values
    give different variants.
    """
    from sectorize.pipeline.assemble import check

    units = plan.units.copy()
    sector = units["sector"]
    edges = sorted((min(u, v), max(u, v)) for u, v in plan.graph.edges if sector[u] != sector[v])
    columns = ["group", "sector", "worker_id", "worker_name"]
    changed = []
    for u, v in edges[skip:]:
        if len(changed) == count:
            break
        if u in changed or v in changed:
            continue
        before = units.loc[u, columns].to_numpy()
        units.loc[u, columns] = plan.units.loc[v, columns].to_numpy()
        if check(dataclasses.replace(plan, units=units)):
            units.loc[u, columns] = before
            continue
        changed.append(u)
    return dataclasses.replace(plan, units=units), changed
