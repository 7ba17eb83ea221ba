"""Road travel times between units: a calibrated estimate, or an external matrix.

The estimate needs no road data. It routes over the contiguity graph of the
region (one hop = the great-circle line between the points of two touching
units), with a pace in minutes per km that depends on the two units:

* population density of both ends (towns are crossed faster than mountain
  communes) and the density *step* between them (a climb from a valley
  town to a mountain village is slow);
* the population within 10 km (a large conurbation is slow to cross);
* a *corridor* rank: how much gravity flow between the towns of at least
  10,000 inhabitants and every unit uses the hop (main roads run where towns
  exchange traffic, e.g. valleys and motorway axes).

The shortest network time ``T`` is then turned into road minutes by a
concave curve (long trips use faster roads) times a factor for each end (a
remote, sparse unit takes longer to leave and to reach):
``minutes = exp(curve(ln T)) * factor[origin] * factor[destination]``.

The constants of :class:`TravelTimeModel` were fitted on car times routed with
OSRM (the full matrix between the 512 communes of Isère, 2021) and
openrouteservice (8,028 pairs between 102 AURA towns, 2025); those data are not
shipped. ``python benchmarks/bench_travel_time.py`` reports the errors,
including on held-out communes; ``benchmarks/RESULTS.md`` quotes them.

An external matrix (e.g. an OSRM or Valhalla ``table`` request exported to
CSV or Parquet) is read by :func:`read_travel_matrix`.

Both kinds follow the solvers' travel-time protocol: an attribute ``n`` and a
method ``rows(sources)`` returning ``(len(sources), n)`` minutes, where
sources are positions ``0..n-1`` in ``keys``.
"""

from __future__ import annotations

import gzip
import pathlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree
from scipy.stats import rankdata

from geodata.adjacency import metric_crs
from geodata.regions import Region

#: Mean Earth radius, km.
EARTH_RADIUS_KM = 6371.0088

#: Names of the hop (edge) features, in the order of ``TravelTimeModel.pace``.
EDGE_FEATURES = (
    "constant",
    "density",  # mean of the two ends' clipped ln(inhabitants/km2), minus 4
    "density_step",  # |difference| of the two ends' clipped ln densities
    "log_length",  # ln(hop km / 3)
    "neighbourhood",  # mean of the two ends' ln(population within 10 km / reference)
    "neighbourhood_above_1",  # max(0, neighbourhood - 1)
    "neighbourhood_above_2",  # max(0, neighbourhood - 2)
    "corridor",  # rank of the hop's gravity flow among all hops, in (0, 1]
    "corridor_above_0.5",
    "corridor_above_0.8",
    "corridor_above_0.95",
)

#: Names of the unit features, in the order of ``TravelTimeModel.access``.
UNIT_FEATURES = (
    "density",  # clipped ln(inhabitants/km2) minus 4
    "log_area",  # ln(area km2) - 2.5
    "neighbourhood",  # ln(population within 10 km / reference)
)

_CORRIDOR_KNOTS = (0.5, 0.8, 0.95)
_NEIGHBOURHOOD_KNOTS = (1.0, 2.0)


@dataclass(frozen=True)
class TravelTimeModel:
    """Fitted constants of the travel-time estimate.

    The defaults were fitted by ``python benchmarks/calibrate_travel_time.py``
    (least squares on ln minutes, the Isère OSRM matrix and the town pairs
    weighted equally; see :mod:`geodata.travel` for the data).

    Parameters
    ----------
    pace
        Coefficients of ``ln(minutes per km)`` of a hop, one per
        :data:`EDGE_FEATURES`.
    curve_intercept, curve_slope
        ``curve(x) = curve_intercept + curve_slope * x + sum_k
        curve_knot_slopes[k] * max(0, x - ln(curve_knots_min[k]))`` with
        ``x = ln(network minutes)``.
    curve_knots_min
        Network minutes where the curve's slope changes.
    curve_knot_slopes
        Change of slope at each knot.
    access
        Coefficients of ``ln(factor)`` of a unit, one per :data:`UNIT_FEATURES`.
    density_clip
        Bounds of ``ln(inhabitants/km2)`` (about 2.7 and 8,100 inhabitants/km2).
    neighbourhood_km
        Radius of the neighbourhood population, km.
    neighbourhood_reference
        Neighbourhood population that gives the feature 0 (the median of the
        AURA communes, inhabitants within 10 km).
    town_population
        Units of at least this population are the *towns* whose gravity flows
        define the corridors (if fewer than ``min_towns``, the ``min_towns``
        most populous units).
    min_towns
        See ``town_population``.
    gravity_offset_km
        Flow between a town ``s`` and a unit ``d`` is
        ``pop_s * pop_d / (km + gravity_offset_km)``.
    corridor_pace
        ``(a, b)``: the flows follow shortest paths for hop weights
        ``km * exp(a * density + b * density_step)``.

    Example
    -------
    >>> model = TravelTimeModel()
    >>> float(model.minutes(np.array([0.0]))[0])
    0.0
    """

    pace: tuple[float, ...] = (
        0.7226, -0.2624, 0.0827, 0.2172, 0.2352, -0.1237, 0.4932,
        0.0612, -0.6655, 1.0577, -6.5566,
    )
    curve_intercept: float = 0.9079
    curve_slope: float = 0.6280
    curve_knots_min: tuple[float, ...] = (10.0, 20.0, 40.0, 80.0, 160.0)
    curve_knot_slopes: tuple[float, ...] = (0.2026, -0.0231, -0.0123, -0.0556, 0.1181)
    access: tuple[float, ...] = (-0.0097, -0.0060, -0.0113)
    density_clip: tuple[float, float] = (1.0, 9.0)
    neighbourhood_km: float = 10.0
    neighbourhood_reference: float = 23_097.0
    town_population: float = 10_000.0
    min_towns: int = 10
    gravity_offset_km: float = 10.0
    corridor_pace: tuple[float, float] = (-0.15, 0.1)

    def __post_init__(self) -> None:
        if len(self.pace) != len(EDGE_FEATURES):
            raise ValueError(f"TravelTimeModel.pace needs {len(EDGE_FEATURES)} coefficients, got {len(self.pace)}")
        if len(self.access) != len(UNIT_FEATURES):
            raise ValueError(f"TravelTimeModel.access needs {len(UNIT_FEATURES)} coefficients, got {len(self.access)}")
        if len(self.curve_knots_min) != len(self.curve_knot_slopes):
            raise ValueError("TravelTimeModel: curve_knots_min and curve_knot_slopes differ in length")
        slopes = self.curve_slope + np.cumsum((0.0, *self.curve_knot_slopes))
        if (slopes <= 0).any():
            raise ValueError(
                f"TravelTimeModel: the curve must increase with network time; its slopes are {slopes.round(3)}"
            )

    def minutes(
        self,
        network_min: np.ndarray,
        origin_factor: np.ndarray | float = 1.0,
        destination_factor: np.ndarray | float = 1.0,
    ) -> np.ndarray:
        """Road minutes for pairs, from their network minutes and end factors.

        Parameters
        ----------
        network_min
            Shortest network time of each pair (minutes along the contiguity
            graph, see :meth:`hop_minutes`); 0 gives 0.
        origin_factor, destination_factor
            Factor of each end (:meth:`unit_factors`); broadcast with
            ``network_min``.

        Returns
        -------
        numpy.ndarray
            Minutes, float64, the shape of the broadcast inputs.
        """
        t = np.asarray(network_min, dtype=np.float64)
        with np.errstate(divide="ignore"):
            x = np.log(t)
        curve = self.curve_intercept + self.curve_slope * x
        for knot, slope in zip(self.curve_knots_min, self.curve_knot_slopes):
            curve = curve + slope * np.maximum(0.0, x - np.log(knot))
        out = np.exp(curve) * origin_factor * destination_factor
        return np.where(t > 0, out, 0.0)

    def hop_minutes(self, features: NetworkFeatures) -> np.ndarray:
        """Network minutes of each hop: ``km * exp(features @ pace)``."""
        return features.edge_km * np.exp(features.edge_features @ np.asarray(self.pace))

    def unit_factors(self, features: NetworkFeatures) -> np.ndarray:
        """Factor of each unit: ``exp(features @ access)`` (1 = average access)."""
        return np.exp(features.unit_features @ np.asarray(self.access))


@dataclass(frozen=True)
class NetworkFeatures:
    """The region as the estimate sees it: unit points, hops and their features.

    Attributes
    ----------
    keys
        Unit keys, in row order.
    lon, lat
        Unit points, degrees.
    edge_a, edge_b
        Positions of the two ends of each hop (``edge_a < edge_b``).
    edge_km
        Great-circle length of each hop between the unit points, km (at least
        0.1 km).
    edge_features
        ``(E, len(EDGE_FEATURES))`` hop features.
    unit_features
        ``(n, len(UNIT_FEATURES))`` unit features.
    """

    keys: pd.Index
    lon: np.ndarray
    lat: np.ndarray
    edge_a: np.ndarray
    edge_b: np.ndarray
    edge_km: np.ndarray
    edge_features: np.ndarray
    unit_features: np.ndarray

    @property
    def n(self) -> int:
        return len(self.keys)

    def adjacency(self, weights: np.ndarray) -> sp.csr_matrix:
        """Symmetric sparse ``(n, n)`` matrix of hop weights, for :func:`scipy.sparse.csgraph.dijkstra`."""
        rows = np.r_[self.edge_a, self.edge_b]
        cols = np.r_[self.edge_b, self.edge_a]
        return sp.csr_matrix((np.r_[weights, weights], (rows, cols)), shape=(self.n, self.n))

    def edge_index(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Hop number of each pair of adjacent positions ``(a, b)``, in either order."""
        return _hop_number(self.n, self.edge_a, self.edge_b, a, b)


def _hop_number(n: int, edge_a: np.ndarray, edge_b: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Position in ``edge_a, edge_b`` (sorted, ``edge_a < edge_b``) of the hops ``(a, b)``, either order."""
    codes = edge_a.astype(np.int64) * n + edge_b
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return np.searchsorted(codes, lo.astype(np.int64) * n + hi)


def great_circle_km(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (broadcasts)."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _unit_vectors(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Points on a sphere of radius :data:`EARTH_RADIUS_KM` (km), for chord-distance KD-trees."""
    lo, la = np.radians(lon), np.radians(lat)
    return EARTH_RADIUS_KM * np.c_[np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)]


def _unit_table(region: Region) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``lon, lat, population, area_km2`` of the units, checked."""
    units = region.units
    missing = [c for c in ("lon", "lat", "population") if c not in units.columns]
    if missing:
        raise ValueError(f"region {region.name!r}: units lack the columns {missing} needed for travel times")
    if "area_km2" in units.columns:
        area = pd.to_numeric(units["area_km2"], errors="coerce").to_numpy(dtype=np.float64)
    elif "geometry" in units.columns and units.crs is not None:
        area = units.geometry.to_crs(metric_crs(units)).area.to_numpy() / 1e6
    else:
        raise ValueError(f"region {region.name!r}: units need an area_km2 column or polygons with a CRS")
    table = {
        "lon": pd.to_numeric(units["lon"], errors="coerce").to_numpy(dtype=np.float64),
        "lat": pd.to_numeric(units["lat"], errors="coerce").to_numpy(dtype=np.float64),
        "population": pd.to_numeric(units["population"], errors="coerce").to_numpy(dtype=np.float64),
        "area_km2": area,
    }
    valid = {
        "lon": np.isfinite(table["lon"]),
        "lat": np.isfinite(table["lat"]),
        "population": np.isfinite(table["population"]) & (table["population"] >= 0),
        "area_km2": np.isfinite(area) & (area > 0),
    }
    for column, ok in valid.items():
        if not ok.all():
            examples = [str(k) for k in units.index[~ok][:5]]
            raise ValueError(
                f"region {region.name!r}: column {column!r} is missing or invalid for {int((~ok).sum())} "
                f"units, e.g. {examples}; fix these values"
            )
    return table["lon"], table["lat"], table["population"], table["area_km2"]


def _hops(region: Region, keys: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(a, b)`` of the graph's edges, ``a < b``, sorted; checks the graph is connected."""
    n = len(keys)
    pairs = [(u, v) for u, v in region.graph.edges() if u != v]
    unknown = {x for uv in pairs for x in uv} - set(keys)
    if unknown:
        raise ValueError(f"region {region.name!r}: graph nodes that are not units: {sorted(map(str, unknown))[:5]}")
    ends = keys.get_indexer([x for uv in pairs for x in uv]).reshape(-1, 2)
    codes = np.unique(ends.min(axis=1).astype(np.int64) * n + ends.max(axis=1))
    a, b = (codes // n).astype(np.intp), (codes % n).astype(np.intp)
    parts, label = connected_components(sp.csr_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    if parts > 1:
        cut_off = keys[label != np.argmax(np.bincount(label))][:5].tolist()
        raise ValueError(
            f"region {region.name!r}: the contiguity graph has {parts} separate parts (e.g. units "
            f"{cut_off} cannot be reached); link them with geodata.adjacency.link_islands"
        )
    return a, b


def _neighbourhood_population(lon: np.ndarray, lat: np.ndarray, population: np.ndarray, km: float) -> np.ndarray:
    """Population (inhabitants) of the units whose points lie within ``km`` of each unit's point."""
    points = _unit_vectors(lon, lat)
    within = cKDTree(points).query_ball_point(points, r=km)
    return np.array([population[idx].sum() for idx in within])


def _corridor_rank(
    a: np.ndarray, b: np.ndarray, routing: np.ndarray, population: np.ndarray,
    lon: np.ndarray, lat: np.ndarray, model: TravelTimeModel,
) -> np.ndarray:
    """Rank in (0, 1] of the gravity flow through each hop.

    The flow between town ``s`` and unit ``d`` is ``pop_s * pop_d / (km +
    gravity_offset_km)``; it is added to every hop of the shortest path (hop
    weights ``routing``) from ``s`` to ``d``. Subtree sums are accumulated
    from the farthest unit inwards.
    """
    n = len(population)
    towns = np.flatnonzero(population >= model.town_population)
    if len(towns) < model.min_towns:
        towns = np.argsort(-population, kind="stable")[: model.min_towns]
    graph = sp.csr_matrix((np.r_[routing, routing], (np.r_[a, b], np.r_[b, a])), shape=(n, n))
    load = np.zeros(len(a))
    for start in range(0, len(towns), 256):
        batch = towns[start:start + 256]
        dist, pred = dijkstra(graph, indices=batch, return_predecessors=True)
        km = great_circle_km(lon[batch][:, None], lat[batch][:, None], lon[None, :], lat[None, :])
        flow = population[batch][:, None] * population[None, :] / (km + model.gravity_offset_km)
        k = np.arange(len(batch))
        flow[k, batch] = 0.0
        order = np.argsort(-dist, axis=1, kind="stable")
        for j in range(n):  # farthest first: a unit's subtree is complete when it is reached
            v = order[:, j]
            parent = pred[k, v]
            ok = parent >= 0
            flow[k[ok], parent[ok]] += flow[k[ok], v[ok]]
        # flow[k, v] is now the flow through the hop entering v on the tree of town k
        kk, vv = np.nonzero(pred >= 0)
        np.add.at(load, _hop_number(n, a, b, pred[kk, vv], vv), flow[kk, vv])
    return rankdata(load) / len(load)


def network_features(region: Region, model: TravelTimeModel | None = None) -> NetworkFeatures:
    """Hop and unit features of a region (see :data:`EDGE_FEATURES`, :data:`UNIT_FEATURES`).

    Parameters
    ----------
    region
        Units with ``lon``, ``lat``, ``population`` and ``area_km2`` (or
        polygons to measure it), and a connected contiguity graph.
    model
        Supplies the structural constants (density clip, neighbourhood
        radius, town threshold, corridor routing).

    Raises
    ------
    ValueError
        When a needed column is missing or invalid, or the graph is not
        connected (link islands with :func:`geodata.adjacency.link_islands`).
    """
    model = model or TravelTimeModel()
    keys = pd.Index(region.units.index)
    lon, lat, population, area = _unit_table(region)
    if len(keys) < 2:
        raise ValueError(f"region {region.name!r}: travel times need at least 2 units, got {len(keys)}")
    a, b = _hops(region, keys)
    km = np.maximum(great_circle_km(lon[a], lat[a], lon[b], lat[b]), 0.1)

    lo, hi = model.density_clip
    density = np.clip(np.log(np.maximum(population / area, 1e-9)), lo, hi) - 4.0
    around = _neighbourhood_population(lon, lat, population, model.neighbourhood_km)
    neighbourhood = np.log(np.maximum(around, 1.0) / model.neighbourhood_reference)

    mean_density = (density[a] + density[b]) / 2
    density_step = np.abs(density[a] - density[b])
    routing = km * np.exp(model.corridor_pace[0] * mean_density + model.corridor_pace[1] * density_step)
    corridor = _corridor_rank(a, b, routing, population, lon, lat, model)
    hood = (neighbourhood[a] + neighbourhood[b]) / 2
    edge_features = np.column_stack([
        np.ones(len(a)),
        mean_density,
        density_step,
        np.log(km / 3.0),
        hood,
        *[np.maximum(0.0, hood - k) for k in _NEIGHBOURHOOD_KNOTS],
        corridor,
        *[np.maximum(0.0, corridor - k) for k in _CORRIDOR_KNOTS],
    ])
    unit_features = np.column_stack([density, np.log(area) - 2.5, neighbourhood])
    return NetworkFeatures(keys, lon, lat, a, b, km, edge_features, unit_features)


def _as_positions(sources, n: int) -> np.ndarray:
    idx = np.atleast_1d(np.asarray(sources))
    if idx.dtype.kind not in "iu":
        raise ValueError(f"sources must be integer positions 0..{n - 1}, got dtype {idx.dtype}")
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"sources must be positions in 0..{n - 1}, got {idx.min()}..{idx.max()}")
    return idx.astype(np.intp)


class EstimatedTravelTimes:
    """Estimated road minutes between the units of a region, computed row by row.

    Build it with :func:`estimate_travel_times`. ``rows`` runs Dijkstra from
    the requested units only; ``dense`` computes the full matrix.

    Attributes
    ----------
    n
        Number of units.
    keys
        Unit keys; position ``i`` in a row is ``keys[i]``.
    source
        Description of the method, for reports.
    model
        The :class:`TravelTimeModel` used.
    notes
        Remarks for the report (empty for the estimate).
    """

    def __init__(self, features: NetworkFeatures, model: TravelTimeModel, region_name: str = "") -> None:
        self.features = features
        self.model = model
        self.keys = features.keys
        self.n = features.n
        self.notes: list[str] = []
        hop = model.hop_minutes(features)
        self._graph = features.adjacency(hop)
        self._factor = model.unit_factors(features)
        # Own pace of each unit (median min/km of its hops), to reach it from a point.
        pace = hop / features.edge_km
        self._own_pace = (pd.Series(np.r_[pace, pace]).groupby(np.r_[features.edge_a, features.edge_b])
                          .median().reindex(range(self.n)).to_numpy())
        self._tree = cKDTree(_unit_vectors(features.lon, features.lat))
        where = f" of {region_name}" if region_name else ""
        self.source = (
            f"estimate: road minutes between the {self.n} units{where}, routed over their contiguity graph "
            f"(TravelTimeModel calibrated on OSRM/openrouteservice car times in AURA)"
        )

    def network_rows(self, sources: np.ndarray) -> np.ndarray:
        """``(m, n)`` shortest network minutes from each source position (before the curve)."""
        idx = _as_positions(sources, self.n)
        return dijkstra(self._graph, indices=idx) if len(idx) else np.zeros((0, self.n))

    def rows(self, sources: np.ndarray) -> np.ndarray:
        """``(len(sources), n)`` float64 road minutes from each source position to every unit."""
        idx = _as_positions(sources, self.n)
        network = self.network_rows(idx)
        return self.model.minutes(network, self._factor[idx][:, None], self._factor[None, :])

    def dense(self, chunk: int = 512) -> np.ndarray:
        """The full ``(n, n)`` matrix of minutes, float32 (about 65 MB for 4,025 units)."""
        out = np.empty((self.n, self.n), dtype=np.float32)
        for start in range(0, self.n, chunk):
            stop = min(start + chunk, self.n)
            out[start:stop] = self.rows(np.arange(start, stop))
        return out

    def from_points(self, lon, lat) -> np.ndarray:
        """``(m, n)`` road minutes from arbitrary points (e.g. worker bases) to every unit.

        Each point joins the network at the unit whose point is nearest; the
        straight line to it is covered at that unit's own pace (median of its
        hops). A point at a unit's point gives exactly that unit's row.

        Parameters
        ----------
        lon, lat
            Degrees, arrays of equal length (or scalars).
        """
        lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
        lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
        if lon.shape != lat.shape or lon.ndim != 1:
            raise ValueError(f"lon and lat must be 1-D arrays of equal length, got {lon.shape} and {lat.shape}")
        if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
            raise ValueError("lon and lat must be finite numbers (degrees)")
        _, nearest = self._tree.query(_unit_vectors(lon, lat))
        nearest = np.asarray(nearest, dtype=np.intp)
        km = great_circle_km(lon, lat, self.features.lon[nearest], self.features.lat[nearest])
        network = self.network_rows(nearest) + (km * self._own_pace[nearest])[:, None]
        return self.model.minutes(network, self._factor[nearest][:, None], self._factor[None, :])

    def __repr__(self) -> str:
        return f"EstimatedTravelTimes(n={self.n})"


def estimate_travel_times(region: Region, model: TravelTimeModel | None = None) -> EstimatedTravelTimes:
    """Road travel-time estimate between the units of ``region``.

    Parameters
    ----------
    region
        Units with ``lon``, ``lat``, ``population``, ``area_km2`` (or
        polygons) and a connected contiguity graph.
    model
        Fitted constants; the default is the AURA calibration.

    Returns
    -------
    EstimatedTravelTimes

    Notes
    -----
    Building it for the 4,025 AURA communes and computing ``dense()`` are
    timed by ``benchmarks/bench_travel_time.py`` (see ``benchmarks/RESULTS.md``).

    Example
    -------
    >>> from geodata.regions import load_aura
    >>> travel = estimate_travel_times(load_aura())
    >>> lyon, grenoble = travel.keys.get_indexer(["69123", "38185"])
    >>> minutes = travel.rows(np.array([lyon]))[0, grenoble]  # 77 min (reference car times: 89)
    """
    model = model or TravelTimeModel()
    return EstimatedTravelTimes(network_features(region, model), model, region.name)


# --------------------------------------------------------------------------
# External matrices
# --------------------------------------------------------------------------

#: Accepted column names: (origin, destination, minutes).
MATRIX_COLUMNS = (("origin_insee", "dest_insee", "minutes"), ("origin", "destination", "minutes"))

_PARQUET = (".parquet", ".pq", ".geoparquet")


@dataclass
class MatrixTravelTimes:
    """Road minutes from an external matrix, aligned on a region's keys.

    Attributes
    ----------
    keys
        Unit keys; ``matrix[i, j]`` = minutes from ``keys[i]`` to ``keys[j]``.
    matrix
        ``(n, n)`` float64 minutes (asymmetric allowed).
    source
        Description for reports (file name, pairs filled by the estimate).
    notes
        Remarks for the report, e.g. pairs filled by the estimate.
    """

    keys: pd.Index
    matrix: np.ndarray
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.keys)

    def rows(self, sources: np.ndarray) -> np.ndarray:
        """``(len(sources), n)`` float64 minutes from each source position."""
        return np.asarray(self.matrix[_as_positions(sources, self.n)], dtype=np.float64)

    def dense(self) -> np.ndarray:
        """The full ``(n, n)`` matrix of minutes."""
        return self.matrix


def _read_table(path: pathlib.Path) -> tuple[pd.DataFrame, int]:
    """The raw table (CSV columns as text), and the file line of its first data row (0 for Parquet)."""
    if path.suffix.lower() in _PARQUET:
        return pd.read_parquet(path), 0
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as handle:
        first = handle.readline()
    sep = ";" if first.count(b";") > first.count(b",") else ","
    try:
        table = pd.read_csv(path, sep=sep, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    except UnicodeDecodeError:
        table = pd.read_csv(path, sep=sep, dtype=str, encoding="latin-1", keep_default_na=False)
    return table, 2


def _where(path: pathlib.Path, first_line: int, rows: np.ndarray, column: str) -> str:
    if first_line:
        lines = ", ".join(str(r + first_line) for r in rows[:5])
        return f"{path}: line{'s' if len(rows) > 1 else ''} {lines}{', ...' if len(rows) > 5 else ''}, column {column!r}"
    shown = ", ".join(str(r) for r in rows[:5])
    return f"{path}: row{'s' if len(rows) > 1 else ''} {shown}{', ...' if len(rows) > 5 else ''} (0-based), column {column!r}"


def read_travel_matrix(
    path: str | pathlib.Path,
    keys,
    *,
    fallback: EstimatedTravelTimes | None = None,
) -> MatrixTravelTimes:
    """Read an external origin-destination matrix of road minutes.

    Parameters
    ----------
    path
        CSV (``;`` or ``,`` separated, UTF-8 with or without BOM, or
        Latin-1; decimal comma accepted; may be gzipped) or Parquet file with
        columns ``origin_insee, dest_insee, minutes`` or ``origin,
        destination, minutes``; codes are read as text (keep leading zeros:
        ``"01001"``). One row per ordered pair; A->B and B->A may differ.
    keys
        The region's unit keys (e.g. ``region.units.index``); the matrix is
        aligned on them.
    fallback
        An estimate over the same keys; pairs missing from the file are then
        filled with it and reported in ``notes``. Without it, missing pairs
        are an error. A missing diagonal (unit to itself) is 0.

    Returns
    -------
    MatrixTravelTimes

    Raises
    ------
    ValueError
        Missing columns; codes that are not units; minutes that are not
        numbers or are negative; a pair given twice; missing pairs without
        ``fallback``. The message names the file, the lines and the column.

    Example
    -------
    ``origin;destination;minutes`` / ``01001;01002;23,5`` / ...

    >>> travel = read_travel_matrix("osrm_table.csv", region.units.index,  # doctest: +SKIP
    ...                             fallback=estimate_travel_times(region))
    """
    # stays whole: the checks of one file in the order its messages report them (columns, codes, values, pairs)
    path = pathlib.Path(path)
    keys = pd.Index([str(k) for k in keys])
    if not keys.is_unique:
        raise ValueError(f"keys must be unique; duplicated: {list(keys[keys.duplicated()][:5])}")
    if not path.is_file():
        raise ValueError(f"{path}: travel matrix file not found")
    table, first_line = _read_table(path)
    table.columns = [str(c).strip().lower() for c in table.columns]
    names = next((c for c in MATRIX_COLUMNS if set(c) <= set(table.columns)), None)
    if names is None:
        raise ValueError(
            f"{path}: the travel matrix needs the columns origin_insee,dest_insee,minutes or "
            f"origin,destination,minutes; found {list(table.columns)}"
        )
    o_col, d_col, m_col = names
    codes = {}
    for column in (o_col, d_col):
        values = table[column]
        if values.dtype.kind in "if":
            raise ValueError(
                f"{path}: column {column!r} is numeric; store the codes as text so leading zeros "
                f"are kept (e.g. '01001')"
            )
        text = values.astype(str).str.strip()
        pos = keys.get_indexer(text)
        bad = np.flatnonzero(pos < 0)
        if len(bad):
            examples = sorted(set(text.iloc[bad]))[:5]
            raise ValueError(
                f"{_where(path, first_line, bad, column)}: {len(bad)} code(s) are not units of the region, "
                f"e.g. {examples}; check the codes (leading zeros) or the region"
            )
        codes[column] = pos
    raw = table[m_col]
    if raw.dtype.kind in "if":
        minutes = raw.to_numpy(dtype=np.float64)
    else:
        minutes = pd.to_numeric(raw.astype(str).str.strip().str.replace(",", ".", regex=False),
                                errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(minutes))
    if len(bad):
        shown = [str(v) for v in raw.iloc[bad[:5]]]
        raise ValueError(f"{_where(path, first_line, bad, m_col)}: minutes are not numbers ({shown}); "
                         f"give minutes as numbers, e.g. 23.5")
    bad = np.flatnonzero(minutes < 0)
    if len(bad):
        raise ValueError(f"{_where(path, first_line, bad, m_col)}: negative minutes "
                         f"({minutes[bad[:5]].tolist()}); travel times must be >= 0")
    o, d = codes[o_col], codes[d_col]
    n = len(keys)
    flat = o.astype(np.int64) * n + d
    dup = np.flatnonzero(pd.Series(flat).duplicated(keep=False).to_numpy())
    if len(dup):
        raise ValueError(f"{_where(path, first_line, dup, o_col)}: {len(dup)} rows repeat the same "
                         f"origin and destination; keep one row per pair")
    matrix = np.full((n, n), np.nan)
    matrix[o, d] = minutes
    diagonal = np.isnan(np.diagonal(matrix))
    matrix[np.flatnonzero(diagonal), np.flatnonzero(diagonal)] = 0.0
    missing = np.isnan(matrix)
    notes: list[str] = []
    source = f"matrix file {path.name} ({len(table)} pairs)"
    if missing.any():
        count = int(missing.sum())
        mi, mj = np.nonzero(missing)
        examples = [f"{keys[i]}->{keys[j]}" for i, j in zip(mi[:5], mj[:5])]
        if fallback is None:
            raise ValueError(
                f"{path}: {count} of {n * n - n} origin-destination pairs are missing, e.g. {examples}; "
                f"add them, or fill them with the estimate (fallback)"
            )
        if not fallback.keys.equals(keys):
            raise ValueError(f"{path}: the fallback estimate covers other units than the keys given")
        origins = np.unique(mi)
        for start in range(0, len(origins), 512):
            batch = origins[start:start + 512]
            filled = fallback.rows(batch)
            rows = matrix[batch]
            holes = np.isnan(rows)
            rows[holes] = filled[holes]
            matrix[batch] = rows
        share = 100.0 * count / max(n * n - n, 1)
        notes.append(
            f"travel matrix {path.name}: {count} of {n * n - n} pairs ({share:.1f} %) were missing and "
            f"filled by the estimate, e.g. {', '.join(examples)}"
        )
        source += f", {count} missing pairs filled by the estimate"
    return MatrixTravelTimes(keys=keys, matrix=matrix, source=source, notes=notes)
