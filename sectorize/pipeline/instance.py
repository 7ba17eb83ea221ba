"""Generic districting: the user's own units, weights and distances in, sectors out.

The engine (:func:`solvers.engine.solve`) on units that are not AURA communes:
benchmark instances, another region's municipalities, census tracts. Input:

* a polygon file (GeoJSON, GeoPackage, Shapefile, GeoParquet) read with
  :func:`geodata.regions.load_units` (queen contiguity computed, islands
  linked to their nearest unit and noted), or a CSV of points (columns
  ``x``/``y`` in a projected system, or ``lon``/``lat`` in degrees) with an
  edges CSV (two key columns, one line per pair of neighbours);
* optionally a long CSV of distances ``a, b, distance`` (every pair once);
  without it, straight-line kilometres between unit points
  (:class:`solvers.travel.PlanarDistances`).

CSV files follow the same conventions as demand files
(:mod:`geodata.demand`): ``;``, ``,`` or tab separator, UTF-8 with or without
BOM or Latin-1, decimal comma accepted with ``;``; keys are read as text
(leading zeros kept).

Objectives (``weight`` is the user's workload column, e.g. patients/year):

``"inertia"``
    ``sum_i weight_i x d(centre, i)^2``: the moment of inertia (Hess model);
    ``d`` in km (planar) or in the unit of the distances file.
``"travel"``
    ``sum_i weight_i x d(centre, i)``.
``"cut-edges"``
    the number of adjacency edges between different sectors
    (:mod:`solvers.cut_edges`; no distances in the objective: they only shape
    the starting plans and place each sector's reported centre, its weighted
    medoid by squared distance); with ``edge_weight`` (``--edge-weight COL``,
    a column of the edges file, e.g. shared boundary length) the summed
    column over those edges instead.

The centre of each sector is one of its units, chosen by the solver.

Compactness tie-break (``tie_break_slack``, ``--tie-break-slack FRACTION``,
``"inertia"`` and ``"travel"`` only): the plan found then gets fewer cut edges
(or, with ``edge_weight``, a shorter boundary) by
:func:`solvers.cut_edges.tie_break`, its objective kept within ``(1 + slack) x``
its own (``0``: ties only), within the same time limit. Every summary holds
the plan's cut edges (``cut_edges``), its boundary (``boundary_length``, with
``edge_weight``) and, with a tie-break, the figures before and after it
(``tie_break``).

Example
-------
>>> request = SolveRequest(units=Path("tracts.geojson"), key="GEOID", weight="pop",
...                        sectors=4, tolerance=0.05)                    # doctest: +SKIP
>>> result = solve_units(request)                                        # doctest: +SKIP
>>> folder = write_result(result, Path("out"))                           # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd

from geodata.tables import RawTable, as_number, read_csv_table
from solvers.problem import ProgressCallback, Problem, TravelTimes, caseload_band

Objective = Literal["inertia", "travel", "cut-edges"]
OBJECTIVES: tuple[str, ...] = ("inertia", "travel", "cut-edges")

#: Backends of the ``"cut-edges"`` objective (:func:`solvers.cut_edges.backend.solve_cut_edges`).
CUT_EDGES_BACKENDS: tuple[str, ...] = ("auto", "heuristic", "exact")

#: File suffixes read as CSV tables of points; anything else is read as a polygon file.
CSV_SUFFIXES = (".csv", ".txt", ".tsv")

#: Units listed in a message before "... (N in all)".
_LISTED = 5


class InputError(ValueError):
    """An input file or option cannot be used; the message names the file, line, column or option."""


# --------------------------------------------------------------------------
# Reading the inputs
# --------------------------------------------------------------------------


@dataclass
class Units:
    """Units read from the user's files.

    Attributes
    ----------
    keys
        Unit codes as text, in problem order (unit ``i`` of the graph is ``keys[i]``).
    weight
        ``(n,)`` workload of each unit (the ``--weight`` column, e.g. patients/year).
    graph
        Contiguity graph over ``0..n-1``.
    xy_km
        ``(n, 2)`` planar coordinates of each unit's point, kilometres.
    projection
        How the points were placed in the plane (CRS used), for the summary.
    source
        Files the units and their contiguity come from.
    notes
        Everything repaired or assumed while reading (islands linked, ...).
    """

    keys: list[str]
    weight: np.ndarray
    graph: nx.Graph
    xy_km: np.ndarray
    projection: str
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.keys)


def _listing(items: list, limit: int = _LISTED) -> str:
    shown = ", ".join(map(str, items[:limit]))
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _read_table(path: Path) -> RawTable:
    """A CSV as text cells with spreadsheet line numbers (:func:`geodata.tables.read_csv_table`)."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        raw = read_csv_table(path)
    except ValueError as err:
        raise InputError(str(err)) from None
    raw.frame = raw.frame.apply(lambda col: col.map(lambda v: "" if v is None else str(v).strip()))
    return raw


def _column(raw, path: Path, name: str, what: str) -> str:
    """The header name of column ``name`` (exact, else case-insensitive)."""
    if name in raw.frame.columns:
        return name
    folded = {str(c).casefold(): c for c in raw.frame.columns}
    if name.casefold() in folded:
        return folded[name.casefold()]
    raise InputError(f"{path}: no {what} column {name!r}; the columns are {list(raw.frame.columns)}")


def _numbers(raw, path: Path, column: str, what: str, *, allow_negative: bool = False) -> np.ndarray:
    """Column ``column`` as floats; names the first bad line."""
    values = [as_number(v, raw.decimal_comma) for v in raw.frame[column]]
    for line, cell, value in zip(raw.lines, raw.frame[column], values):
        if value is None or math.isnan(value) or math.isinf(value):
            shown = f"{cell!r} is not a number" if cell else "is empty"
            raise InputError(f"{path}, line {line}, column {column!r}: {what} {shown}; write a number")
        if value < 0 and not allow_negative:
            raise InputError(f"{path}, line {line}, column {column!r}: {what} {cell} is negative; it must be >= 0")
    return np.array(values, dtype=np.float64)


def _keys(raw, path: Path, column: str) -> list[str]:
    keys = raw.frame[column].tolist()
    blank = [int(line) for line, k in zip(raw.lines, keys) if k == ""]
    if blank:
        raise InputError(f"{path}, line {blank[0]}, column {column!r}: empty key; give every unit a code")
    seen: dict[str, int] = {}
    for line, k in zip(raw.lines, keys):
        if k in seen:
            raise InputError(
                f"{path}, line {line}, column {column!r}: key {k!r} already on line {seen[k]}; "
                "each unit needs its own code"
            )
        seen[k] = int(line)
    return keys


def _project(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, str]:
    """Longitude/latitude (degrees) to planar km, with the CRS of :func:`geodata.adjacency.metric_crs`."""
    from geodata.adjacency import metric_crs

    points = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=4326)
    crs = metric_crs(points)
    projected = points.to_crs(crs)
    xy = np.column_stack([projected.x.to_numpy(), projected.y.to_numpy()]) / 1000.0
    epsg = crs.to_epsg()
    return xy, f"lon/lat projected to {crs.name}" + (f" (EPSG:{epsg})" if epsg else "")


def read_points(path: Path, key: str, weight: str, *, xy_unit: Literal["m", "km"] = "m") -> tuple[
        list[str], np.ndarray, np.ndarray, str, list[str]]:
    """Read a CSV of points: ``(keys, weight, xy_km, projection, notes)``.

    Coordinates: columns ``x``/``y`` (a projected system, in ``xy_unit``)
    or ``lon``/``lat`` (degrees, projected to Lambert-93 in metropolitan
    France, else the local UTM zone).
    """
    raw = _read_table(path)
    notes = list(raw.notes)
    key_col = _column(raw, path, key, "key")
    weight_col = _column(raw, path, weight, "weight")
    keys = _keys(raw, path, key_col)
    w = _numbers(raw, path, weight_col, "weight")
    lower = {str(c).casefold(): c for c in raw.frame.columns}
    if "x" in lower and "y" in lower:
        x = _numbers(raw, path, lower["x"], "x coordinate", allow_negative=True)
        y = _numbers(raw, path, lower["y"], "y coordinate", allow_negative=True)
        factor = 0.001 if xy_unit == "m" else 1.0
        xy = np.column_stack([x, y]) * factor
        projection = f"planar x/y as given, in {'metres' if xy_unit == 'm' else 'kilometres'}"
        if "lon" in lower or "lat" in lower:
            notes.append("both x/y and lon/lat columns: x/y used")
    elif "lon" in lower and "lat" in lower:
        lon = _numbers(raw, path, lower["lon"], "longitude", allow_negative=True)
        lat = _numbers(raw, path, lower["lat"], "latitude", allow_negative=True)
        for values, name, limit in ((lon, "lon", 180), (lat, "lat", 90)):
            out = np.flatnonzero(np.abs(values) > limit)
            if out.size:
                raise InputError(
                    f"{path}, line {raw.lines[out[0]]}, column {lower[name]!r}: {values[out[0]]} is not a "
                    f"{'longitude' if name == 'lon' else 'latitude'} in degrees (|value| <= {limit}); "
                    "projected coordinates go in columns x and y"
                )
        xy, projection = _project(lon, lat)
    else:
        raise InputError(
            f"{path}: no coordinates; give columns x and y (projected, {xy_unit}) or lon and lat (degrees); "
            f"the columns are {list(raw.frame.columns)}"
        )
    return keys, w, xy, projection, notes


def read_edges(path: Path, keys: list[str], *, weight: str | None = None) -> tuple[list[tuple], list[str]]:
    """Read an edges CSV (the first two columns hold the keys of two neighbouring units).

    Returns ``(edges as unit-index pairs, notes)``. Unknown keys, empty
    cells and a unit linked to itself are errors naming the line. With
    ``weight`` (a column name, e.g. the shared boundary length), each edge is
    ``(a, b, {weight: value})`` (ready for ``networkx.Graph.add_edges_from``);
    a missing column, a cell that is not a number, a negative one, or a pair
    listed twice with different values is an error naming the file, line
    and column.
    """
    raw = _read_table(path)
    if raw.frame.shape[1] < 2:
        raise InputError(f"{path}: an edges file needs two key columns; found {list(raw.frame.columns)}")
    a_col, b_col = raw.frame.columns[:2]
    index = {k: i for i, k in enumerate(keys)}
    values = None
    if weight is not None:
        w_col = _column(raw, path, weight, "edge weight")
        if w_col in (a_col, b_col):
            raise InputError(f"{path}: the edge weight column {w_col!r} is a key column; name a numeric column")
        values = _numbers(raw, path, w_col, "edge weight")
    edges: list[tuple] = []
    seen: dict[tuple[int, int], tuple[int, float]] = {}
    for row, (line, a, b) in enumerate(zip(raw.lines, raw.frame[a_col], raw.frame[b_col])):
        for col, k in ((a_col, a), (b_col, b)):
            if k == "":
                raise InputError(f"{path}, line {line}, column {col!r}: empty key")
            if k not in index:
                raise InputError(
                    f"{path}, line {line}, column {col!r}: key {k!r} is not a unit of the units file"
                )
        if a == b:
            raise InputError(f"{path}, line {line}: unit {a!r} is linked to itself; remove the line")
        if values is None:
            edges.append((index[a], index[b]))
            continue
        pair = (min(index[a], index[b]), max(index[a], index[b]))
        if pair in seen and seen[pair][1] != values[row]:
            raise InputError(
                f"{path}, line {line}, column {w_col!r}: the pair ({a}, {b}) is already on line {seen[pair][0]} "
                f"with {w_col} {seen[pair][1]:g}, here {values[row]:g}; give each pair once"
            )
        seen[pair] = (int(line), float(values[row]))
        edges.append((index[a], index[b], {weight: float(values[row])}))
    notes = [f"{path.name}: {len(edges):,} lines, columns {a_col!r} and {b_col!r}"
             + (f", edge weight {w_col!r}" if values is not None else "")]
    ignored = [c for c in raw.frame.columns[2:] if values is None or c != w_col]
    if ignored:
        notes.append(f"{path.name}: columns {ignored} ignored")
    return edges, notes


def _check_connected(graph: nx.Graph, keys: list[str], source: str) -> None:
    if graph.number_of_nodes() and not nx.is_connected(graph):
        comps = sorted(nx.connected_components(graph), key=len, reverse=True)
        pieces = "; ".join(
            f"{{{_listing(sorted(keys[u] for u in c), 3)}}}" for c in comps[1:4]
        )
        raise InputError(
            f"{source}: the units form {len(comps)} separate pieces (largest {len(comps[0]):,} units; "
            f"others: {pieces}{'; ...' if len(comps) > 4 else ''}); add edges linking every piece to the rest"
        )


def read_units(
    path: Path,
    key: str,
    weight: str,
    *,
    edges: Path | None = None,
    xy_unit: Literal["m", "km"] = "m",
    edge_weight: str | None = None,
) -> Units:
    """Read units from a polygon file or a CSV of points (with ``edges``).

    Parameters
    ----------
    path
        Polygon file (GeoJSON, GeoPackage, Shapefile, GeoParquet) or CSV of points.
    key
        Column of unit codes (read as text, leading zeros kept).
    weight
        Column of workloads (non-negative numbers, e.g. patients/year).
    edges
        CSV of neighbouring pairs (first two columns); required for points,
        optional for polygons (replaces the computed queen contiguity).
    xy_unit
        Unit of ``x``/``y`` columns in a CSV of points (``"m"`` or ``"km"``).
    edge_weight
        Column of ``edges`` read as each edge's weight (e.g. shared boundary
        length), stored as the graph's edge attribute of that name. For
        polygons without ``edges``, ``"border_m"`` (:data:`COMPUTED_BORDER`):
        the shared border in metres, computed from the polygons.

    Raises
    ------
    InputError
        Naming the file, line (or unit) and column.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: units file not found")
    points = path.suffix.lower() in CSV_SUFFIXES
    if edge_weight is not None and edges is None and (points or edge_weight != COMPUTED_BORDER):
        raise InputError(f"--edge-weight {edge_weight} names a column of the --edges file; give --edges FILE"
                         + ("" if points else f", or --edge-weight {COMPUTED_BORDER} for the shared border "
                            "length (metres) computed from the polygons"))
    if points:
        if edges is None:
            raise InputError(f"{path}: a CSV of points has no shapes to find neighbours; give --edges FILE")
        keys, w, xy, projection, notes = read_points(path, key, weight, xy_unit=xy_unit)
        graph = nx.Graph()
        graph.add_nodes_from(range(len(keys)))
        pairs, more = read_edges(Path(edges), keys, weight=edge_weight)
        graph.add_edges_from(pairs)
        notes += more
        _check_connected(graph, keys, f"{path} with {edges}")
        return Units(keys, w, graph, xy, projection, f"{path} (points), {edges} (edges)", notes)
    return _read_polygons(path, key, weight, edges, edge_weight)


#: Edge weight computed from polygons without ``--edges``: the shared border, metres
#: (:func:`geodata.adjacency.queen_adjacency`).
COMPUTED_BORDER = "border_m"

#: Columns that :func:`geodata.regions.load_units` rewrites.
_REPLACED_BY_LOAD_UNITS = ("population", "name", "lon", "lat")


def _read_polygons(path: Path, key: str, weight: str, edges: Path | None, edge_weight: str | None = None) -> Units:
    from geodata.regions import load_units

    try:
        region = load_units(path, key)
    except (ValueError, FileNotFoundError) as err:
        raise InputError(str(err)) from None
    except Exception as err:  # the file itself is unreadable (driver error)
        raise InputError(f"{path}: cannot read the file as polygons ({type(err).__name__}: {err})") from None
    units = region.units
    if weight not in units.columns:
        if weight == key:
            raise InputError(f"{path}: the weight column cannot be the key column {key!r}")
        raise InputError(
            f"{path}: no weight column {weight!r}; the columns are "
            f"{[c for c in units.columns if c not in ('geometry', 'lon', 'lat')]}"
        )
    values = units[weight]
    if weight in _REPLACED_BY_LOAD_UNITS:
        # load_units rewrites these columns (population rounded to whole inhabitants): read the file's values
        raw = gpd.read_parquet(path) if path.suffix.lower() in (".parquet", ".geoparquet") else gpd.read_file(path)
        values = pd.Series(raw[weight].to_numpy(), index=units.index)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = units.index[numbers.isna() | ~np.isfinite(numbers.fillna(0)) | (numbers < 0)].tolist()
    if bad:
        raise InputError(
            f"{path}: weight column {weight!r} is missing, negative or not a number for units "
            f"({key}) {_listing(bad)}; write 0 where there is no workload"
        )
    keys = [str(k) for k in units.index]
    # the population column is not used here (the weight column is)
    notes = [n for n in region.notes if "population" not in n]
    from geodata.adjacency import metric_crs

    crs = metric_crs(units)
    points = gpd.GeoSeries(gpd.points_from_xy(units["lon"], units["lat"]), crs=4326).to_crs(crs)
    xy = np.column_stack([points.x.to_numpy(), points.y.to_numpy()]) / 1000.0
    epsg = crs.to_epsg()
    projection = (f"a point inside each polygon (representative point) projected to {crs.name}"
                  + (f" (EPSG:{epsg})" if epsg else ""))
    index = {k: i for i, k in enumerate(keys)}
    graph = nx.Graph()
    graph.add_nodes_from(range(len(keys)))
    if edges is None:
        graph.add_edges_from((index[str(a)], index[str(b)], {COMPUTED_BORDER: d.get("border_m", 0.0)})
                             for a, b, d in region.graph.edges(data=True))
        source = f"{path} (polygons, queen contiguity)"
    else:
        pairs, more = read_edges(Path(edges), keys, weight=edge_weight)
        graph.add_edges_from(pairs)
        notes = [n for n in notes if "not contiguous" not in n] + more
        _check_connected(graph, keys, f"{path} with {edges}")
        source = f"{path} (polygons), {edges} (edges)"
    return Units(keys, numbers.to_numpy(dtype=np.float64), graph, xy, projection, source, notes)


def read_distances(path: Path, keys: list[str], *, squared: bool) -> TravelTimes:
    """Read a long distances CSV (first three columns: key a, key b, distance).

    Every pair of distinct units must appear once, either way round (a
    pair given both ways must agree); a unit's distance to itself is 0.
    Returns :class:`solvers.travel.PairDistances` (squared if asked).
    """
    from solvers.travel import PairDistances

    raw = _read_table(path)
    if raw.frame.shape[1] < 3:
        raise InputError(f"{path}: a distances file needs three columns (a, b, distance); "
                         f"found {list(raw.frame.columns)}")
    a_col, b_col, d_col = raw.frame.columns[:3]
    index = {k: i for i, k in enumerate(keys)}
    for col in (a_col, b_col):
        for line, k in zip(raw.lines, raw.frame[col]):
            if k not in index:
                raise InputError(
                    f"{path}, line {line}, column {col!r}: key {k!r} is not a unit of the units file"
                )
    a = raw.frame[a_col].map(index).to_numpy(dtype=np.intp)
    b = raw.frame[b_col].map(index).to_numpy(dtype=np.intp)
    d = _numbers(raw, path, d_col, "distance")
    try:
        return PairDistances(a, b, d, n=len(keys), squared=squared, labels=keys)
    except ValueError as err:
        raise InputError(f"{path}: {err}") from None


# --------------------------------------------------------------------------
# Bounds, problem, solve
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Bounds:
    """Workload bounds of every sector.

    ``targets`` (all equal) and ``tolerance`` are what the engine takes: a
    sector's workload must lie in ``[target x (1 - tolerance), target x
    (1 + tolerance)]`` = ``[lower, upper]``.

    Examples
    --------
    >>> b = sector_bounds(100.0, 4, min_load=20.0, max_load=30.0)
    >>> b.target, round(b.tolerance, 4), b.lower, b.upper
    (25.0, 0.2, 20.0, 30.0)
    >>> round(sector_bounds(100.0, 4, tolerance=0.1).upper, 9)
    27.5
    """

    k: int
    target: float
    tolerance: float
    lower: float
    upper: float
    given_as: str

    @property
    def targets(self) -> np.ndarray:
        return np.full(self.k, self.target)


def sector_bounds(
    total: float,
    k: int,
    *,
    tolerance: float | None = None,
    min_load: float | None = None,
    max_load: float | None = None,
) -> Bounds:
    """Targets and tolerance from ``tolerance`` (around ``total / k``) or from absolute ``[min_load, max_load]``.

    ``--min L --max U`` translate exactly to ``target = (L + U) / 2`` and
    ``tolerance = (U - L) / (U + L)``.
    """
    if (tolerance is None) == (min_load is None and max_load is None):
        raise InputError("give either --tolerance, or both --min and --max (workload per sector)")
    if tolerance is not None:
        if not (math.isfinite(tolerance) and 0 <= tolerance < 1):
            raise InputError(f"--tolerance must be in [0, 1), e.g. 0.05 for ±5 %; got {tolerance}")
        if total <= 0:
            raise InputError("the total weight is 0: no target workload per sector; check the --weight column")
        target = total / k
        lower, upper = caseload_band(target, tolerance)
        return Bounds(k, target, tolerance, float(lower), float(upper),
                      f"--tolerance {tolerance:g} around total / k = {target:,.6g}")
    if min_load is None or max_load is None:
        raise InputError("--min and --max go together (workload bounds per sector)")
    if not (math.isfinite(min_load) and math.isfinite(max_load)):
        raise InputError(f"--min and --max must be numbers, got {min_load} and {max_load}")
    if not 0 < min_load <= max_load:
        raise InputError(
            f"need 0 < --min <= --max, got --min {min_load:g} --max {max_load:g}"
            + ("; for no lower bound give a small positive --min" if min_load <= 0 else "")
        )
    target = (min_load + max_load) / 2
    tol = (max_load - min_load) / (max_load + min_load)
    return Bounds(k, target, tol, min_load, max_load,
                  f"--min {min_load:g} --max {max_load:g}: target (min + max) / 2 = {target:,.6g}, "
                  f"tolerance (max - min) / (max + min) = {tol:.6g}")


@dataclass(frozen=True)
class SolveRequest:
    """Everything ``sectorize solve`` needs (see :func:`solve_units`).

    ``time_limit_s`` in seconds; ``tolerance`` relative (0.05 = ±5 %);
    ``min_load``/``max_load`` absolute workloads per sector (same unit as
    the weight column); ``edge_weight`` a column of ``edges`` (boundary
    length or weight per edge: the ``"cut-edges"`` objective and the
    tie-break sum it); ``tie_break_slack`` a fraction (``"inertia"`` and
    ``"travel"`` only, see the module docstring).
    """

    units: Path
    key: str
    weight: str
    sectors: int
    tolerance: float | None = None
    min_load: float | None = None
    max_load: float | None = None
    objective: Objective = "inertia"
    edges: Path | None = None
    distances: Path | None = None
    time_limit_s: float = 60.0
    seed: int = 0
    backend: str = "auto"
    xy_unit: Literal["m", "km"] = "m"
    edge_weight: str | None = None
    tie_break_slack: float | None = None


@dataclass
class GenericResult:
    """Outcome of :func:`solve_units`.

    ``sector[i]`` is the sector (1..k) of unit ``keys[i]``, or ``None`` when
    no plan was found (``status`` ``"infeasible"`` or ``"no_plan_found"``, with the
    ``reason`` in ``summary``). ``summary`` is what ``summary.json`` holds.
    """

    keys: list[str]
    key_column: str
    sector: np.ndarray | None
    summary: dict

    @property
    def status(self) -> str:
        return self.summary["status"]

    @property
    def valid(self) -> bool:
        return self.sector is not None and self.summary["contiguity_check"]["valid"]


def objective_definition(objective: Objective, weight: str, unit: str, *, edge_weight: str | None = None,
                         tie_break_slack: float | None = None) -> str:
    """Plain-language definition of the objective, for the summary."""
    if objective == "cut-edges":
        from solvers.cut_edges.common import DEFINITION

        what = DEFINITION if edge_weight is None else (
            f"summed {edge_weight} of the adjacency edges between different sectors (boundary length)")
        return (f"{what}; each sector's centre, reported for reference only, is its unit minimising "
                f"sum of {weight} x d^2 (d in {unit})")
    power = "^2" if objective == "inertia" else ""
    text = (f"sum over units of {weight} x d(centre of its sector, unit){power}, d in {unit}; "
            "each sector's centre is one of its units, chosen by the solver"
            + (" (moment of inertia, Hess model)" if objective == "inertia" else ""))
    if tie_break_slack is not None:
        measure = "cut edges" if edge_weight is None else f"summed {edge_weight} of the edges between sectors"
        text += (f"; then, as a compactness tie-break, fewer {measure} at a cost of at most "
                 f"{100 * tie_break_slack:g} % of that sum")
    return text


def build_problem(units: Units, bounds: Bounds, travel: TravelTimes, objective: Objective = "inertia") -> Problem:
    """The engine's :class:`~solvers.problem.Problem`: workload = weight, cost weight = weight;
    ``"cut-edges"`` becomes the engine's ``"cut_edges"`` objective, the others ``"pmedian"``."""
    return Problem(
        objective="cut_edges" if objective == "cut-edges" else "pmedian",
        graph=units.graph,
        workload=units.weight,
        targets=bounds.targets,
        tolerance=bounds.tolerance,
        travel=travel,
        labels=tuple(units.keys),
        sector_labels=tuple(f"sector {s + 1}" for s in range(bounds.k)),
    )


def _check_request(request: SolveRequest) -> None:
    """Raise :class:`InputError` naming the option when a request's options do not fit together."""
    from solvers.engine import BACKENDS

    if request.objective not in OBJECTIVES:
        raise InputError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {request.objective!r}")
    if request.backend not in BACKENDS:
        raise InputError(f"--backend must be one of {', '.join(BACKENDS)}, got {request.backend!r}")
    if request.objective == "cut-edges" and request.backend not in CUT_EDGES_BACKENDS:
        raise InputError(f"--objective cut-edges takes --backend {', '.join(CUT_EDGES_BACKENDS)}, "
                         f"got {request.backend!r}")
    if not (math.isfinite(request.time_limit_s) and request.time_limit_s > 0):
        raise InputError(f"--time-limit must be > 0 seconds, got {request.time_limit_s}")
    slack = request.tie_break_slack
    if slack is not None:
        if request.objective == "cut-edges":
            raise InputError("--tie-break-slack applies to --objective inertia or travel; --objective cut-edges "
                             "minimises the cut edges already (use --edge-weight for boundary length)")
        if not (math.isfinite(slack) and 0 <= slack <= 1):
            raise InputError(f"--tie-break-slack is a fraction of the objective in [0, 1], e.g. 0.005 for "
                             f"+0.5 %, 0 for ties only; got {slack:g}")
    if request.sectors < 1:
        raise InputError(f"--sectors must be at least 1, got {request.sectors}")


def _distances(request: SolveRequest, units: Units) -> tuple[TravelTimes, str, str]:
    """``(travel, description, unit)``: the distances file's values, or straight-line km between points.

    The ``inertia`` and ``cut-edges`` objectives use squared distances.
    """
    from solvers.travel import PlanarDistances

    squared = request.objective in ("inertia", "cut-edges")
    if request.distances is not None:
        travel = read_distances(Path(request.distances), units.keys, squared=squared)
        distance_source = f"{request.distances}: the given distances" + (", squared" if squared else "")
        unit = "the unit of the distances file"
    else:
        travel = PlanarDistances(units.xy_km, squared=squared)
        distance_source = f"straight-line km between unit points ({units.projection})"
        unit = "km"
    return travel, distance_source, unit


def _summary_start(request: SolveRequest, units: Units, bounds: Bounds, total: float,
                   distance_source: str, unit: str) -> dict:
    """The ``summary.json`` of a solve before solving: inputs, bounds and empty results."""
    slack = request.tie_break_slack
    summary: dict = {
        "status": "no_plan_found",
        "reason": None,
        "objective": None,
        "bound": None,
        "gap": None,
        "time_s": None,
        "backend": request.backend,
        "n": units.n,
        "k": bounds.k,
        "edges": units.graph.number_of_edges(),
        "total_weight": total,
        "bounds": {"min": bounds.lower, "max": bounds.upper, "target": bounds.target,
                   "tolerance": bounds.tolerance, "given_as": bounds.given_as},
        "objective_name": request.objective,
        "objective_definition": objective_definition(request.objective, request.weight, unit,
                                                     edge_weight=request.edge_weight, tie_break_slack=slack),
        "distance_source": distance_source,
        "units_source": units.source,
        "key": request.key,
        "weight": request.weight,
        "time_limit_s": request.time_limit_s,
        "seed": request.seed,
        "max_deviation_pct": None,
        "sector_loads": None,
        "contiguity_check": {"valid": None, "problems": []},
        "edge_weight": request.edge_weight,
        "cut_edges": None,
        "boundary_length": None,
        "tie_break_slack": slack,
        "tie_break": None,
        "notes": units.notes,
    }
    return summary


def solve_units(request: SolveRequest, progress: ProgressCallback | None = None) -> GenericResult:
    """Read the inputs, solve, check: the whole of ``sectorize solve`` but the writing.

    Raises
    ------
    InputError
        When an input is unusable (file, line, column or option named).
        An infeasible problem is not an error: the result has status
        ``"infeasible"`` (proven: by the up-front diagnosis or the exact
        MIP) or ``"no_plan_found"`` (no plan found in the time given), and a reason.
    """
    # stays whole: read, check up front, solve, then the summary; the three outcomes return from here
    from solvers import InfeasibleError, NoPlanFoundError, check_plan, solve
    from solvers.problem import cut_edges
    from solvers.check import diagnose
    from solvers.cut_edges.backend import solve_cut_edges

    began = time.monotonic()
    _check_request(request)
    units = read_units(Path(request.units), request.key, request.weight, edges=request.edges,
                       xy_unit=request.xy_unit, edge_weight=request.edge_weight)
    if request.sectors > units.n:
        raise InputError(f"--sectors {request.sectors} is more than the {units.n} units of {request.units}")
    travel, distance_source, unit = _distances(request, units)
    total = float(units.weight.sum())
    bounds = sector_bounds(total, request.sectors, tolerance=request.tolerance,
                           min_load=request.min_load, max_load=request.max_load)
    try:
        problem = build_problem(units, bounds, travel, request.objective)
    except ValueError as err:
        raise InputError(str(err)) from None
    summary = _summary_start(request, units, bounds, total, distance_source, unit)
    slack = request.tie_break_slack
    reasons = diagnose(problem)
    if reasons:
        summary.update(status="infeasible", reason="; ".join(reasons), time_s=time.monotonic() - began)
        return GenericResult(units.keys, request.key, None, summary)
    try:
        if request.objective == "cut-edges":
            sol = solve_cut_edges(problem, backend=request.backend, time_limit_s=request.time_limit_s,
                                  seed=request.seed, progress=progress, weight=request.edge_weight)
        else:
            sol = solve(problem, backend=request.backend, time_limit_s=request.time_limit_s, seed=request.seed,
                        progress=progress, tie_break_slack=slack,
                        tie_break_weight=request.edge_weight if slack is not None else None)
    except NoPlanFoundError as err:  # the time ran out: nothing proven
        summary.update(status="no_plan_found", reason=str(err), time_s=time.monotonic() - began)
        return GenericResult(units.keys, request.key, None, summary)
    except InfeasibleError as err:  # proven: by a diagnosis, an enumeration or an exact MIP
        summary.update(status="infeasible", reason=str(err), time_s=time.monotonic() - began)
        return GenericResult(units.keys, request.key, None, summary)
    problems = check_plan(problem, sol.assignment)
    loads = np.bincount(sol.assignment, weights=units.weight, minlength=bounds.k)
    summary.update(
        status=sol.status,
        objective=sol.objective,
        bound=sol.bound,
        gap=sol.gap,
        time_s=time.monotonic() - began,
        backend=sol.backend,
        max_deviation_pct=float(np.abs(loads / bounds.target - 1).max() * 100),
        sector_loads=[float(v) for v in loads],
        centres=[units.keys[int(c)] for c in sol.centres],
        contiguity_check={"valid": not problems, "problems": problems},
        cut_edges=int(cut_edges(units.graph, sol.assignment)),
        boundary_length=(None if request.edge_weight is None
                         else float(cut_edges(units.graph, sol.assignment, weight=request.edge_weight))),
        tie_break=None if sol.tie_break is None else sol.tie_break.summary(),
    )
    return GenericResult(units.keys, request.key, np.asarray(sol.assignment) + 1, summary)


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def sectors_csv(result: GenericResult) -> str:
    """``sectors.csv`` text: ``KEY;sector`` (sector 1..k), ``;``-separated like the other tables."""
    frame = pd.DataFrame({result.key_column: result.keys, "sector": result.sector})
    return frame.to_csv(sep=";", index=False, lineterminator="\n")


def write_result(result: GenericResult, out_dir: Path) -> Path:
    """Write a new result folder ``out_dir/<YYYYmmdd-HHMMSS>`` atomically and return it.

    It holds ``summary.json`` and, when a plan was found, ``sectors.csv``
    (UTF-8 with BOM). A previous result is never overwritten
    (:func:`sectorize.store.atomic.run_folder`); ``out_dir/LATEST`` names the newest.
    """
    import json

    from sectorize.store.atomic import atomic_write_text, run_folder

    with run_folder(out_dir) as run:
        if result.sector is not None:
            atomic_write_text(run.staging / "sectors.csv", sectors_csv(result), encoding="utf-8-sig")
        atomic_write_text(run.staging / "summary.json",
                          json.dumps(result.summary, indent=1, ensure_ascii=False, default=float) + "\n")
    return run.final
