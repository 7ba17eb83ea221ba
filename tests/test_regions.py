"""Regions: the shipped AURA communes and the user's own units."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import pytest
import shapely
from shapely.affinity import translate
from shapely.geometry import Polygon

from geodata.reference import data_path, load_arrondissements, load_hospitals, load_postcodes
from geodata.regions import load_aura, load_units, region_from_units

AURA_DEPS = {"01", "03", "07", "15", "26", "38", "42", "43", "63", "69", "73", "74"}
ARRONDISSEMENTS = [f"6938{i}" for i in range(1, 10)]


# --------------------------------------------------------------------------
# Reference tables
# --------------------------------------------------------------------------


def test_data_path_names_available_files_when_missing():
    assert data_path("communes.parquet").is_file()
    with pytest.raises(FileNotFoundError, match="communes.parquet"):
        data_path("no_such_file.csv")


def test_hospitals_keep_codes_as_text():
    hospitals = load_hospitals().set_index("id")
    assert set(hospitals.index) == {"clb", "chu_clermont", "chu_grenoble", "chu_saint_etienne"}
    assert hospitals.at["clb", "insee"] == "69123"
    assert hospitals.at["clb", "insee_arrondissement"] == "69388"
    assert hospitals["lon"].between(2, 8).all() and hospitals["lat"].between(44, 47).all()


def test_postcodes_are_text_pairs():
    pairs = load_postcodes()
    assert list(pairs.columns[:2]) == ["postcode", "insee"]
    assert (pairs["postcode"].str.len() == 5).all() and (pairs["insee"].str.len() == 5).all()
    assert ("01090", "01165") in set(zip(pairs["postcode"], pairs["insee"]))


def test_arrondissements_sum_to_lyon(aura):
    arr = load_arrondissements()
    assert sorted(arr["insee"]) == ARRONDISSEMENTS
    assert arr["population"].sum() == aura.units.at["69123", "population"]


# --------------------------------------------------------------------------
# load_aura
# --------------------------------------------------------------------------


def test_aura_communes(aura):
    units = aura.units
    assert len(units) == 4025
    assert units.index.name == "insee" and units.index.is_unique
    assert all(isinstance(k, str) and len(k) == 5 for k in units.index)
    assert "01001" in units.index  # leading zero kept
    assert list(units.columns) == [
        "name", "dep", "population", "postcodes", "epci", "canton", "area_km2", "lon", "lat", "geometry"
    ]  # fmt: skip
    assert units.crs.to_epsg() == 4326
    assert set(units["dep"]) == AURA_DEPS
    assert units["population"].dtype == "int64"
    assert units.at["69123", "population"] == 519_127
    assert units["population"].sum() == 8_205_557
    assert units.at["42218", "postcodes"] == ["42000", "42100", "42230"]
    assert all(isinstance(p, list) and all(isinstance(c, str) for c in p) for p in units["postcodes"])


def test_aura_graph(aura):
    graph = aura.graph
    assert set(graph.nodes) == set(aura.units.index)
    assert graph.number_of_edges() == 11_804
    assert nx.is_connected(graph)
    assert graph.edges["01001", "01146"]["border_m"] == pytest.approx(3822.2)
    assert aura.notes == []


def test_aura_points_inside_units(aura):
    points = gpd.points_from_xy(aura.units["lon"], aura.units["lat"], crs=4326)
    assert shapely.contains(aura.units.geometry.values, points).mean() > 0.99


def test_aura_lyon_arrondissements(aura, aura_lyon):
    units = aura_lyon.units
    assert len(units) == 4033
    assert "69123" not in units.index and "69123" not in aura_lyon.graph
    assert set(ARRONDISSEMENTS) <= set(units.index)
    assert nx.is_connected(aura_lyon.graph)
    assert aura_lyon.graph.number_of_edges() == 11_804 - 15 + 39
    assert units["population"].sum() == aura.units["population"].sum()
    lyon = aura.units.loc["69123"]
    arr = units.loc[ARRONDISSEMENTS]
    assert (arr["dep"] == "69").all() and (arr["epci"] == lyon["epci"]).all()
    assert (arr["canton"] == lyon["canton"]).all()
    assert units.at["69388", "postcodes"] == ["69008"]
    assert list(units.columns) == list(aura.units.columns)
    # the arrondissements tile Lyon
    union = shapely.union_all(arr.geometry.values)
    assert shapely.symmetric_difference(union, lyon.geometry).area < 1e-9


def test_load_aura_rejects_unknown_variant():
    with pytest.raises(ValueError, match="lyon_arrondissements"):
        load_aura("paris")


# --------------------------------------------------------------------------
# load_units
# --------------------------------------------------------------------------


def _ain(aura) -> gpd.GeoDataFrame:
    """Dep 01 communes as a user would save them: key as a column, a population column."""
    units = aura.units.loc[aura.units["dep"] == "01", ["name", "population", "geometry"]]
    return units.reset_index()


def _shipped_edges(aura, keys) -> set[frozenset]:
    sub = aura.graph.subgraph(keys)
    return {frozenset(e) for e in sub.edges}


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".parquet"])
def test_load_units_round_trip(aura, tmp_path, suffix):
    ain = _ain(aura)
    path = tmp_path / f"ain{suffix}"
    if suffix == ".parquet":
        ain.to_parquet(path)
    else:
        ain.to_file(path)
    region = load_units(path, "insee")
    assert len(region.units) == len(ain) == 391
    assert region.units.index.name == "insee"
    assert sorted(region.units.index) == sorted(ain["insee"])
    assert region.units.at["01001", "name"] == "L'Abergement-Clémenciat"
    assert region.units["population"].sum() == ain["population"].sum()
    assert {frozenset(e) for e in region.graph.edges} == _shipped_edges(aura, ain["insee"])
    for a, b, data in region.graph.edges(data=True):
        assert data["border_m"] == pytest.approx(aura.graph.edges[a, b]["border_m"], abs=1.0)
    inside = shapely.contains(
        region.units.geometry.values, gpd.points_from_xy(region.units["lon"], region.units["lat"])
    )
    assert inside.all()
    assert nx.is_connected(region.graph)


def test_load_units_links_island_and_reports_multipart(aura, tmp_path):
    ain = _ain(aura)
    far = ain.index[ain["insee"] == "01001"][0]
    ain.loc[far, "geometry"] = translate(ain.at[far, "geometry"], xoff=3.0)  # ~230 km east
    two = ain.index[ain["insee"] == "01004"][0]
    square = Polygon([(4.0, 46.6), (4.01, 46.6), (4.01, 46.61), (4.0, 46.61)])
    ain.loc[two, "geometry"] = shapely.union(ain.at[two, "geometry"], square)
    path = tmp_path / "ain_island.gpkg"
    ain.to_file(path)
    region = load_units(path, "insee", name="name", population="population")
    assert len(region.units) == 391
    assert nx.is_connected(region.graph)
    linked = [(a, b) for a, b, d in region.graph.edges(data=True) if d.get("link") == "island"]
    assert len(linked) == 1 and "01001" in linked[0]
    assert any("01001" in note and "not contiguous" in note for note in region.notes)
    assert any("several parts" in note and "01004" in note for note in region.notes)
    assert region.units.loc["01001"].geometry.bounds[0] > 7.5


def test_load_units_repairs_invalid_polygons(aura, tmp_path):
    ain = _ain(aura)
    bowtie = Polygon([(5.0, 45.0), (5.01, 45.01), (5.01, 45.0), (5.0, 45.01)])  # self-intersecting
    ain.loc[len(ain)] = {"insee": "99001", "name": "bow", "population": 0, "geometry": bowtie}
    path = tmp_path / "invalid.gpkg"
    ain.to_file(path)
    region = load_units(path, "insee")
    assert len(region.units) == 392
    assert shapely.is_valid(region.units.geometry.values).all()
    assert any("repaired" in note and "99001" in note for note in region.notes)


def test_load_units_numeric_keys_and_missing_population(aura, tmp_path):
    ain = _ain(aura)[["insee", "geometry"]].head(5)
    ain["insee"] = ain["insee"].astype(int)
    path = tmp_path / "numeric.gpkg"
    ain.to_file(path)
    region = load_units(path, "insee")
    assert list(region.units.index) == ["1001", "1002", "1004", "1005", "1006"]
    assert (region.units["population"] == 0).all()
    assert region.units.at["1001", "name"] == "1001"
    assert any("leading zeros" in note for note in region.notes)
    assert any("population set to 0" in note for note in region.notes)


def _save(frame: gpd.GeoDataFrame, path) -> str:
    frame.to_file(path)
    return str(path)


def test_load_units_errors_name_file_and_column(aura, tmp_path):
    ain = _ain(aura).head(4)
    with pytest.raises(ValueError, match=r"ok\.gpkg.*no key column 'code'"):
        load_units(_save(ain, tmp_path / "ok.gpkg"), "code")
    with pytest.raises(ValueError, match=r"no population column 'pmun'"):
        load_units(tmp_path / "ok.gpkg", "insee", population="pmun")
    with pytest.raises(FileNotFoundError, match="missing.gpkg"):
        load_units(tmp_path / "missing.gpkg", "insee")

    dup = ain.copy()
    dup.loc[1, "insee"] = "01001"
    with pytest.raises(ValueError, match=r"dup\.gpkg.*'insee'.*duplicated codes 01001"):
        load_units(_save(dup, tmp_path / "dup.gpkg"), "insee")

    empty = ain.copy()
    empty.loc[2, "insee"] = " "
    with pytest.raises(ValueError, match=r"'insee' is empty for features 3"):
        load_units(_save(empty, tmp_path / "empty_key.gpkg"), "insee")

    nogeom = ain.copy()
    nogeom.loc[1, "geometry"] = None
    with pytest.raises(ValueError, match=r"nogeom\.gpkg: units 01002 .*no geometry"):
        load_units(_save(nogeom, tmp_path / "nogeom.gpkg"), "insee")

    points = ain.copy()
    points["geometry"] = points.geometry.representative_point()
    with pytest.raises(ValueError, match="not polygons"):
        load_units(_save(points, tmp_path / "points.gpkg"), "insee")

    negative = ain.copy()
    negative.loc[0, "population"] = -5
    with pytest.raises(ValueError, match=r"population column 'population' .* 01001"):
        load_units(_save(negative, tmp_path / "negative.gpkg"), "insee")


def test_load_units_requires_a_crs(aura, tmp_path):
    ain = _ain(aura).head(4).set_crs(None, allow_override=True)
    path = tmp_path / "nocrs.parquet"
    ain.to_parquet(path)
    with pytest.raises(ValueError, match=r"nocrs\.parquet: the file has no coordinate reference system"):
        load_units(path, "insee")


def test_load_units_reprojects_to_lonlat(aura, tmp_path):
    ain = _ain(aura).head(20).to_crs(2154)
    path = tmp_path / "lambert.gpkg"
    ain.to_file(path)
    region = load_units(path, "insee")
    assert region.units.crs.to_epsg() == 4326
    assert region.units["lon"].between(4.5, 6.5).all() and region.units["lat"].between(45.5, 46.6).all()


def test_region_from_units_checks_the_graph(aura):
    units = aura.units.loc[aura.units["dep"] == "15"]
    graph = nx.Graph()
    graph.add_edge("15014", "99999")
    with pytest.raises(ValueError, match="not units"):
        region_from_units(units, graph, "Cantal")
    region = region_from_units(units.copy(), None, "Cantal")
    assert set(region.graph.nodes) == set(units.index)
    assert {frozenset(e) for e in region.graph.edges} == _shipped_edges(aura, units.index)
