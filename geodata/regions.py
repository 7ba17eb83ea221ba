"""Regions: the units to sectorize (a GeoDataFrame keyed by code) and their contiguity graph."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Literal

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely

from geodata.adjacency import link_islands, queen_adjacency
from geodata.reference import data_path


@dataclass
class Region:
    """A set of territorial units and who touches whom.

    Attributes
    ----------
    units
        GeoDataFrame in EPSG:4326 indexed by the unit key (``str``, e.g. INSEE
        code ``"01001"``, leading zeros kept). Columns always present: ``name``,
        ``population`` (inhabitants), ``lon``, ``lat`` (a point inside the unit,
        degrees), ``geometry``. The AURA data adds ``dep``, ``postcodes``
        (list of str), ``epci``, ``canton``, ``area_km2``.
    graph
        Undirected contiguity graph whose nodes are exactly ``units.index``;
        edge attribute ``border_m`` (shared border length in metres, 0 for a
        point contact, or for a link added to reach an island).
    name
        Short description, e.g. ``"AURA communes (COG 2026)"``.
    notes
        Human-readable reports of anything repaired while loading (islands
        linked, multi-part units), so nothing is silently changed.
    vintage
        Geography vintage of the unit codes, e.g. ``"COG 2026"`` (INSEE
        commune codes change every year through mergers); ``""`` when unknown.
    """

    units: gpd.GeoDataFrame
    graph: nx.Graph
    name: str
    notes: list[str] = field(default_factory=list)
    vintage: str = ""


# --------------------------------------------------------------------------
# Loading regions
# --------------------------------------------------------------------------

#: Columns of the AURA units, in order (the key ``insee`` is the index).
AURA_COLUMNS = [
    "name",
    "dep",
    "population",
    "postcodes",
    "epci",
    "canton",
    "area_km2",
    "lon",
    "lat",
    "geometry",
]

#: Code of the commune of Lyon, replaced by its 9 arrondissements in the
#: ``"lyon_arrondissements"`` variant.
LYON = "69123"


#: Geography vintage of the shipped AURA communes (INSEE Code officiel géographique).
AURA_VINTAGE = "COG 2026"


def region_from_units(
    units: gpd.GeoDataFrame,
    graph: nx.Graph | None = None,
    name: str = "units",
    *,
    notes: list[str] | None = None,
) -> Region:
    """Build a :class:`Region`, computing or checking its contiguity graph.

    Parameters
    ----------
    units
        GeoDataFrame in EPSG:4326, indexed by unique ``str`` keys, with at
        least ``name``, ``population``, ``lon``, ``lat`` and ``geometry``.
    graph
        Contiguity graph over ``units.index``; when ``None`` the queen
        adjacency of the polygons is computed (:func:`queen_adjacency`). A
        given graph is modified in place: units it lacks are added as nodes,
        and links to islands are added as edges.
    name
        Short description of the region.
    notes
        Notes gathered while loading; notes about islands linked to the rest
        are appended.

    Returns
    -------
    Region
        Whose graph is connected: islands are linked to their nearest unit
        (:func:`link_islands`), one note per added link.

    Raises
    ------
    ValueError
        When a required column is missing, the CRS is not EPSG:4326, keys are
        not unique, or the graph's nodes differ from the units.
    """
    missing = [c for c in ("name", "population", "lon", "lat", "geometry") if c not in units.columns]
    if missing:
        raise ValueError(f"region {name!r}: units lack the columns {missing}")
    if units.crs is None or units.crs.to_epsg() != 4326:
        raise ValueError(f"region {name!r}: units must be in EPSG:4326, got {units.crs}")
    if not units.index.is_unique:
        dup = units.index[units.index.duplicated()].unique()
        raise ValueError(f"region {name!r}: duplicated keys {list(dup[:10])}")
    notes = list(notes or [])
    if graph is None:
        graph = queen_adjacency(units)
    else:
        extra = set(graph.nodes) - set(units.index)
        lacking = set(units.index) - set(graph.nodes)
        if extra:
            raise ValueError(
                f"region {name!r}: the graph has {len(extra)} nodes that are not units, "
                f"e.g. {sorted(map(str, extra))[:5]}"
            )
        graph.add_nodes_from(lacking)
    notes += link_islands(graph, units)
    return Region(units=units, graph=graph, name=name, notes=notes)


def _read_edges(filename: str, keys: pd.Index) -> pd.DataFrame:
    """Edge list ``insee_a, insee_b, border_m`` of a shipped adjacency file, checked against ``keys``."""
    path = data_path(filename)
    edges = pd.read_csv(path, dtype={"insee_a": str, "insee_b": str, "border_m": float})
    unknown = sorted((set(edges["insee_a"]) | set(edges["insee_b"])) - set(keys))
    if unknown:
        raise ValueError(f"{path}: edges name codes that are not units: {unknown[:10]}")
    return edges


def _graph(keys: pd.Index, edges: pd.DataFrame) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(keys)
    graph.add_edges_from(
        (a, b, {"border_m": float(m)})
        for a, b, m in zip(edges["insee_a"], edges["insee_b"], edges["border_m"])
    )
    return graph


def _postcode_lists(values: pd.Series) -> list[list[str]]:
    return [[str(code) for code in codes] for codes in values]


def load_aura(variant: Literal["communes", "lyon_arrondissements"] = "communes") -> Region:
    """The 4,025 communes of Auvergne-Rhône-Alpes (COG 2026) and their queen contiguity.

    Parameters
    ----------
    variant
        ``"communes"``: Lyon is one unit, 69123 (4,025 units, 11,804 edges).
        ``"lyon_arrondissements"``: Lyon is replaced by its 9 municipal
        arrondissements 69381..69389 (4,033 units), which carry Lyon's
        ``epci`` and ``canton``; Lyon's 15 edges are replaced by the 39
        edges of ``adjacency_lyon_arrondissements.csv`` (11,828 edges).

    Returns
    -------
    Region
        ``units`` indexed by ``insee`` (str, 5 characters) with columns
        ``name``, ``dep``, ``population`` (inhabitants, INSEE population
        municipale 2023, int), ``postcodes`` (list of str), ``epci``
        (SIREN), ``canton`` (missing, NA, for the 57 communes of the
        Métropole de Lyon), ``area_km2``, ``lon``, ``lat`` (a point inside the unit,
        degrees) and ``geometry`` (EPSG:4326). ``graph`` edges carry
        ``border_m`` (shared border, metres; 0 for a point contact).

    Notes
    -----
    The first call in a fresh process takes about 0.25 s (``time.perf_counter``
    around ``load_aura()``; 0.7 s wall clock for ``python -c "from geodata
    import load_aura; load_aura()"``, imports included), on the 2-core
    development machine. The counts above are checked by
    ``tests/test_regions.py``.

    Example
    -------
    >>> region = load_aura()
    >>> len(region.units), region.graph.number_of_edges()
    (4025, 11804)
    """
    if variant not in ("communes", "lyon_arrondissements"):
        raise ValueError(f"variant must be 'communes' or 'lyon_arrondissements', got {variant!r}")
    communes = gpd.read_parquet(data_path("communes.parquet"))
    communes = communes.rename(columns={"pt_lon": "lon", "pt_lat": "lat"})
    communes["postcodes"] = _postcode_lists(communes["postcodes"])
    edges = _read_edges("adjacency_queen.csv", pd.Index(communes["insee"]))
    name = "AURA communes (COG 2026)"
    if variant == "lyon_arrondissements":
        lyon = communes.loc[communes["insee"] == LYON].iloc[0]
        arr = gpd.read_file(data_path("lyon_arrondissements.geojson"))
        arr = arr.rename(columns={"pt_lon": "lon", "pt_lat": "lat"}).to_crs(communes.crs)
        arr["postcodes"] = _postcode_lists(arr["postcodes"])
        arr["epci"] = lyon["epci"]
        arr["canton"] = lyon["canton"]
        communes = pd.concat(
            [communes.loc[communes["insee"] != LYON], arr[["insee", *AURA_COLUMNS]]],
            ignore_index=True,
        )
        edges = edges.loc[(edges["insee_a"] != LYON) & (edges["insee_b"] != LYON)]
        lyon_edges = _read_edges("adjacency_lyon_arrondissements.csv", pd.Index(communes["insee"]))
        edges = pd.concat([edges, lyon_edges], ignore_index=True)
        name = "AURA communes, Lyon by arrondissement (COG 2026)"
    units = gpd.GeoDataFrame(communes.set_index("insee")[AURA_COLUMNS], geometry="geometry", crs=4326)
    units.index = units.index.astype(str)
    units.index.name = "insee"
    units["population"] = units["population"].astype("int64")
    region = region_from_units(units, _graph(units.index, edges), name)
    region.vintage = AURA_VINTAGE
    return region


# --------------------------------------------------------------------------
# The user's own units
# --------------------------------------------------------------------------

_PARQUET_SUFFIXES = (".parquet", ".geoparquet")


def _read_geofile(path: pathlib.Path, layer: str | None) -> gpd.GeoDataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"units file {path} does not exist")
    if path.suffix.lower() in _PARQUET_SUFFIXES:
        return gpd.read_parquet(path)
    return gpd.read_file(path, layer=layer)


def _keys_as_text(values: pd.Series, where: str, notes: list[str]) -> pd.Series:
    """Unit keys as ``str``; numbers (which lose leading zeros) are converted and noted."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numeric = values.dropna()
        if (numeric % 1 == 0).all():
            text = values.map(lambda v: None if pd.isna(v) else str(int(v)))
        else:
            text = values.map(lambda v: None if pd.isna(v) else str(v))
        notes.append(
            f"{where} is stored as numbers, converted to text; if these are INSEE codes, leading "
            "zeros may be missing (e.g. 1001 for 01001): store the column as text"
        )
        return text.astype(object)
    return values.map(
        lambda v: None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v).strip()
    )


def _examples(keys: list, limit: int = 5) -> str:
    shown = ", ".join(map(str, keys[:limit]))
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_units(
    path: str | pathlib.Path,
    key: str,
    *,
    name: str | None = None,
    population: str | None = None,
    layer: str | None = None,
) -> Region:
    """Load the user's own polygon units (GeoPackage, GeoJSON, Shapefile or GeoParquet).

    Parameters
    ----------
    path
        Vector file readable by geopandas; ``.parquet`` / ``.geoparquet``
        files are read with :func:`geopandas.read_parquet`.
    key
        Column holding the unit code (e.g. ``"insee"``). Read as text;
        codes stored as numbers are converted and a note warns that leading
        zeros may be missing.
    name
        Column holding unit names; default ``"name"`` if present, else the
        key is used as the name.
    population
        Column holding inhabitants per unit; default ``"population"`` if
        present, else population is 0 for every unit (noted).
    layer
        Layer to read in a multi-layer file (GeoPackage).

    Returns
    -------
    Region
        ``units`` indexed by the key (index name = ``key``), all the file's
        columns kept, plus ``name``, ``population`` (int), ``lon``, ``lat``
        (degrees, :meth:`~geopandas.GeoSeries.representative_point`, always
        inside the unit) and ``geometry`` in EPSG:4326. ``graph`` is the queen
        adjacency; islands are linked to their nearest unit. ``notes`` report
        repaired geometries, multi-part units, linked islands and defaults.
        No unit is ever dropped.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        Naming the file and column, when the key or a named column is
        missing, keys are empty or duplicated, geometries are missing, empty
        or not polygons, populations are missing, negative or not numbers, or
        the file has no CRS.

    Example
    -------
    >>> region = load_units("my_sectors.gpkg", key="insee", population="pmun")  # doctest: +SKIP
    """
    path = pathlib.Path(path)
    raw = _read_geofile(path, layer)
    notes: list[str] = []
    if key not in raw.columns:
        raise ValueError(
            f"{path}: no key column {key!r}; columns are {[c for c in raw.columns if c != raw.geometry.name]}"
        )
    if raw.crs is None:
        raise ValueError(
            f"{path}: the file has no coordinate reference system (CRS); set one in your GIS "
            "(e.g. EPSG:2154 Lambert-93 or EPSG:4326) and save again, or call "
            "GeoDataFrame.set_crs before building the region"
        )
    if len(raw) == 0:
        raise ValueError(f"{path}: the file has no units")
    keys = _keys_as_text(raw[key], f"{path}: key column {key!r}", notes)
    blank = [i + 1 for i, k in enumerate(keys) if k is None or k == ""]
    if blank:
        raise ValueError(
            f"{path}: key column {key!r} is empty for features {_examples(blank)} "
            "(1-based feature order); give every unit a code"
        )
    duplicated = sorted(keys[keys.duplicated()].unique())
    if duplicated:
        raise ValueError(
            f"{path}: key column {key!r} has duplicated codes {_examples(duplicated)}; "
            "each unit needs its own code (dissolve the duplicates first)"
        )
    units = raw.copy()
    units.index = pd.Index(keys.to_numpy(dtype=object), name=key).astype(str)
    units = units.drop(columns=[key])
    units = units.rename_geometry("geometry") if units.geometry.name != "geometry" else units
    units = _check_geometries(units, path, key, notes).to_crs(4326)
    units["name"] = _names(units, name, path)
    units["population"] = _population(units, population, path, notes)
    parts = shapely.get_num_geometries(units.geometry.values)
    multi = units.index[parts > 1].tolist()
    if multi:
        notes.append(f"{len(multi)} units have several parts (exclaves or slivers): {_examples(multi)}")
    if {"lon", "lat"} & set(raw.columns):
        notes.append("columns lon/lat of the file were replaced by a point inside each unit")
    point = units.geometry.representative_point()
    units["lon"] = point.x
    units["lat"] = point.y
    return region_from_units(units, None, name=path.name, notes=notes)


def _check_geometries(
    units: gpd.GeoDataFrame, path: pathlib.Path, key: str, notes: list[str]
) -> gpd.GeoDataFrame:
    geoms = units.geometry.values
    missing = units.index[shapely.is_missing(geoms) | shapely.is_empty(geoms)].tolist()
    if missing:
        raise ValueError(
            f"{path}: units {_examples(missing)} (column {key!r}) have no geometry or an empty one; "
            "draw their polygons or remove them from the file"
        )
    kinds = shapely.get_type_id(geoms)
    not_polygon = units.index[~np.isin(kinds, (3, 6))].tolist()
    if not_polygon:
        raise ValueError(
            f"{path}: units {_examples(not_polygon)} (column {key!r}) are not polygons "
            f"(e.g. {units.geometry.loc[not_polygon[0]].geom_type}); units must be Polygon or MultiPolygon"
        )
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        repaired = shapely.make_valid(geoms[invalid], method="structure", keep_collapsed=False)
        bad = units.index[invalid][shapely.is_empty(repaired)].tolist()
        if bad:
            raise ValueError(
                f"{path}: units {_examples(bad)} (column {key!r}) have invalid polygons with no "
                "area left once repaired; redraw them"
            )
        units = units.copy()
        units.loc[invalid, "geometry"] = repaired
        notes.append(
            f"{int(invalid.sum())} invalid polygons repaired with shapely.make_valid: "
            f"{_examples(units.index[invalid].tolist())}"
        )
    return units


def _names(units: gpd.GeoDataFrame, column: str | None, path: pathlib.Path) -> pd.Series:
    if column is None:
        if "name" not in units.columns:
            return pd.Series(units.index, index=units.index, dtype=object)
        column = "name"
    if column not in units.columns:
        raise ValueError(f"{path}: no name column {column!r}; columns are {list(units.columns)}")
    return units[column].map(lambda v: "" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v))


def _population(
    units: gpd.GeoDataFrame, column: str | None, path: pathlib.Path, notes: list[str]
) -> pd.Series:
    if column is None:
        if "population" not in units.columns:
            notes.append(f"{path.name} has no population column: population set to 0 for every unit")
            return pd.Series(0, index=units.index, dtype="int64")
        column = "population"
    if column not in units.columns:
        raise ValueError(f"{path}: no population column {column!r}; columns are {list(units.columns)}")
    values = pd.to_numeric(units[column], errors="coerce")
    bad = units.index[values.isna() | (values < 0)].tolist()
    if bad:
        raise ValueError(
            f"{path}: population column {column!r} is missing, negative or not a number for units "
            f"{_examples(bad)}; write 0 where unknown"
        )
    rounded = values.round().astype("int64")
    if (rounded != values).any():
        notes.append(f"population column {column!r} rounded to whole inhabitants")
    return rounded
