"""sectorize: territorial sectorization for hospital social-work teams.

Composes :mod:`geodata` (territories, demand, travel times) and :mod:`solvers`
(graph partitioning) into plans, KPIs, maps and exports.
"""

__version__ = "0.1.0"
