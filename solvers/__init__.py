"""Graph partitioning engine: a :class:`Problem` in, a :class:`Solution` out.

Knows graphs and numbers only (no geopandas, no files).
"""

from solvers.problem import (
    DenseTravelTimes,
    InfeasibleError,
    Problem,
    Solution,
    TravelTimes,
)

__all__ = ["DenseTravelTimes", "InfeasibleError", "Problem", "Solution", "TravelTimes"]
