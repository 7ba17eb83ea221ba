"""Travel costs between units for problems that bring their own geometry.

Implementations of the :class:`~solvers.problem.TravelTimes` protocol
(``.n`` and ``.rows(sources) -> (len(sources), n)``) beside
:class:`~solvers.problem.DenseTravelTimes`:

:class:`PlanarDistances`
    Euclidean (or squared Euclidean) distances between points, computed row
    by row with NumPy: no ``n x n`` matrix is ever stored, so 64,000 units
    need a few MB plus the rows being read.
:class:`PairDistances`
    Distances given explicitly as a long table of ``(a, b, distance)`` pairs
    (e.g. road kilometres or minutes from another tool), stored densely.
:class:`SubsetTravelTimes`
    Another travel-time object restricted to some of its units (a group of
    the nested solve, a pair of sectors in LNS).

With ``squared=True`` the ``"pmedian"`` objective of a
:class:`~solvers.problem.Problem` (``sum_i weight_i x travel[centre, i]``)
becomes the moment of inertia of the districting literature (Hess model).

Numbers only: no files, no pandas.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from solvers.problem import TravelTimes

#: Largest number of units :class:`PairDistances` accepts (dense float64
#: storage: 20,000 units take 3.2 GB).
MAX_PAIR_UNITS = 20_000


class PlanarDistances:
    """Straight-line distances between points in a plane, rows on demand.

    Parameters
    ----------
    xy
        ``(n, 2)`` coordinates in a projected (metric) system, e.g. metres in
        Lambert-93. Not longitude/latitude degrees.
    squared
        Return squared distances, ``(scale x euclidean)^2`` (the moment of
        inertia objective), instead of ``scale x euclidean``.
    scale
        Factor applied to the Euclidean distance before squaring, e.g.
        ``0.001`` to get kilometres from metres.

    Examples
    --------
    >>> d = PlanarDistances(np.array([[0.0, 0.0], [3000.0, 4000.0], [0.0, 1000.0]]), scale=0.001)
    >>> d.n, d.rows(np.array([0])).tolist()
    (3, [[0.0, 5.0, 1.0]])
    >>> PlanarDistances(d.xy, squared=True, scale=0.001).rows(np.array([1, 2])).round(6).tolist()
    [[25.0, 0.0, 18.0], [1.0, 18.0, 0.0]]
    """

    def __init__(self, xy: np.ndarray, *, squared: bool = False, scale: float = 1.0) -> None:
        pts = np.asarray(xy, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"coordinates must be an (n, 2) array, got shape {pts.shape}")
        bad = np.flatnonzero(~np.isfinite(pts).all(axis=1))
        if bad.size:
            raise ValueError(f"coordinates of unit {int(bad[0])} are not finite numbers ({bad.size} units in all)")
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale}")
        self.xy = pts
        self.squared = bool(squared)
        self.scale = float(scale)
        self._x = np.ascontiguousarray(pts[:, 0])
        self._y = np.ascontiguousarray(pts[:, 1])

    @property
    def n(self) -> int:
        """Number of units."""
        return int(self.xy.shape[0])

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distances from ``a[i]`` to ``b[i]`` for each ``i`` (same rules as :meth:`rows`).

        >>> PlanarDistances(np.array([[0.0, 0.0], [3.0, 4.0]])).pairs(np.array([0, 1]), np.array([1, 1])).tolist()
        [5.0, 0.0]
        """
        a, b = np.asarray(a, dtype=np.intp), np.asarray(b, dtype=np.intp)
        d2 = ((self._x[a] - self._x[b]) ** 2 + (self._y[a] - self._y[b]) ** 2) * self.scale**2
        return d2 if self.squared else np.sqrt(d2)

    def block(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``(len(sources), len(targets))`` distances: ``rows(sources)[:, targets]`` with the same
        arithmetic, computing only those columns (e.g. the members of one sector).

        >>> d = PlanarDistances(np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]]))
        >>> d.block(np.array([0, 1]), np.array([2])).tolist()
        [[1.0], [4.242640687119285]]
        """
        src = np.asarray(sources, dtype=np.intp).reshape(-1)
        dst = np.asarray(targets, dtype=np.intp).reshape(-1)
        o = np.subtract.outer(self._x[src], self._x[dst])
        o *= o
        dy = np.subtract.outer(self._y[src], self._y[dst])
        dy *= dy
        o += dy
        factor = self.scale * self.scale
        if factor != 1.0:
            o *= factor
        if not self.squared:
            np.sqrt(o, out=o)
        return o

    def rows(self, sources: np.ndarray) -> np.ndarray:
        """``(len(sources), n)`` distances from each source unit to every unit."""
        src = np.asarray(sources, dtype=np.intp).reshape(-1)
        out = np.empty((src.size, self.n))
        # blocks of rows keep the temporary array small (about 16 MB)
        step = max(1, (1 << 21) // max(self.n, 1))
        factor = self.scale * self.scale
        for start in range(0, src.size, step):
            block = src[start : start + step]
            o = out[start : start + step]
            np.subtract.outer(self._x[block], self._x, out=o)
            o *= o
            dy = np.subtract.outer(self._y[block], self._y)
            dy *= dy
            o += dy
            if factor != 1.0:
                o *= factor
            if not self.squared:
                np.sqrt(o, out=o)
        return out


class PairDistances:
    """Distances given pair by pair, symmetric, stored as a dense matrix.

    Parameters
    ----------
    a, b
        ``(m,)`` integer unit indices (``0..n-1``) of each pair.
    distance
        ``(m,)`` non-negative distance of each pair (any unit: km, minutes).
        The pair ``(a, b)`` also gives ``(b, a)``; the distance of a unit to
        itself is 0 unless given.
    n
        Number of units (default ``max(a, b) + 1``).
    squared
        Return squared distances (moment of inertia) instead of distances.
    labels
        Names of the units, used in error messages.

    Raises
    ------
    ValueError
        When a pair is missing (the message names one), a pair is given twice
        with different distances, a distance is negative or not finite, a
        unit's distance to itself is not 0, an index is out of range, or ``n``
        exceeds :data:`MAX_PAIR_UNITS`.

    Examples
    --------
    >>> d = PairDistances(np.array([0, 0, 1]), np.array([1, 2, 2]), np.array([2.0, 5.0, 4.0]), squared=True)
    >>> d.rows(np.array([2])).tolist()
    [[25.0, 16.0, 0.0]]
    >>> PairDistances(np.array([0]), np.array([1]), np.array([1.0]), n=3, labels=["A", "B", "C"])
    Traceback (most recent call last):
    ...
    ValueError: no distance for the pair (A, C) (and 1 other pair); give every pair of units a distance
    """

    def __init__(
        self,
        a: np.ndarray,
        b: np.ndarray,
        distance: np.ndarray,
        *,
        n: int | None = None,
        squared: bool = False,
        labels: Sequence[str] | None = None,
    ) -> None:
        a = np.asarray(a).reshape(-1)
        b = np.asarray(b).reshape(-1)
        d = np.asarray(distance, dtype=np.float64).reshape(-1)
        if not (a.shape == b.shape == d.shape):
            raise ValueError(f"a, b and distance must have the same length, got {a.size}, {b.size}, {d.size}")
        if a.size and not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
            raise ValueError("pair indices a and b must be integers")
        if n is None:
            n = int(max(a.max(initial=-1), b.max(initial=-1))) + 1
        n = int(n)
        if n > MAX_PAIR_UNITS:
            raise ValueError(
                f"{n:,} units: explicit pair distances are stored as a dense matrix, limited to "
                f"{MAX_PAIR_UNITS:,} units; use planar distances between coordinates for larger problems"
            )
        name = (lambda i: str(labels[i])) if labels is not None else (lambda i: f"unit {i}")
        out_of_range = np.flatnonzero((a < 0) | (a >= n) | (b < 0) | (b >= n))
        if out_of_range.size:
            i = int(out_of_range[0])
            raise ValueError(f"pair {i} ({int(a[i])}, {int(b[i])}) names a unit outside 0..{n - 1}")
        bad = np.flatnonzero(~np.isfinite(d) | (d < 0))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"distance of the pair ({name(int(a[i]))}, {name(int(b[i]))}) is {d[i]}; "
                "distances must be finite and non-negative"
            )
        self_pairs = np.flatnonzero((a == b) & (d != 0))
        if self_pairs.size:
            i = int(self_pairs[0])
            raise ValueError(f"distance of {name(int(a[i]))} to itself is {d[i]}; it must be 0")
        matrix = np.full((n, n), np.nan)
        np.fill_diagonal(matrix, 0.0)
        # a pair given twice (either way round) must agree
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        order = np.lexsort((d, hi, lo))
        lo, hi, ds = lo[order], hi[order], d[order]
        same = (lo[1:] == lo[:-1]) & (hi[1:] == hi[:-1])
        clash = np.flatnonzero(same & ~np.isclose(ds[1:], ds[:-1], rtol=1e-9, atol=0.0))
        if clash.size:
            i = int(clash[0])
            raise ValueError(
                f"the pair ({name(int(lo[i]))}, {name(int(hi[i]))}) is given with two distances, "
                f"{ds[i]} and {ds[i + 1]}; keep one"
            )
        matrix[lo, hi] = ds
        matrix[hi, lo] = ds
        missing = np.argwhere(np.isnan(matrix))
        if missing.size:
            i, j = (int(v) for v in missing[0])
            others = len(missing) // 2 - 1
            more = f" (and {others:,} other pair{'s' if others != 1 else ''})" if others else ""
            raise ValueError(
                f"no distance for the pair ({name(i)}, {name(j)}){more}; give every pair of units a distance"
            )
        if squared:
            matrix *= matrix
        self.matrix = matrix
        self.squared = bool(squared)

    @property
    def n(self) -> int:
        """Number of units."""
        return int(self.matrix.shape[0])

    def rows(self, sources: np.ndarray) -> np.ndarray:
        """``(len(sources), n)`` distances (squared if asked) from each source unit to every unit."""
        return self.matrix[np.asarray(sources, dtype=np.intp).reshape(-1)]


class SubsetTravelTimes:
    """Travel times restricted to ``units`` (renumbered ``0..len(units)-1``)."""

    def __init__(self, travel: TravelTimes, units: np.ndarray):
        self.travel = travel
        self.units = np.asarray(units, dtype=np.intp)
        self.n = len(self.units)

    def rows(self, sources: np.ndarray) -> np.ndarray:
        return self.travel.rows(self.units[np.asarray(sources, dtype=np.intp)])[:, self.units]
