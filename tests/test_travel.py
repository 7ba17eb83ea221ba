"""Travel times: the calibrated estimate and external matrices."""

from __future__ import annotations

import gzip
import pathlib

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest

from geodata.regions import Region
from geodata.travel import (
    EstimatedTravelTimes,
    MatrixTravelTimes,
    TravelTimeModel,
    estimate_travel_times,
    read_travel_matrix,
)

#: Reference car times (validation only, outside the repository).
REFERENCE = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "aura" / "travel"


def line_region(count: int = 12, keys: list[str] | None = None) -> Region:
    """``count`` identical villages every 0.07 degrees of longitude (about 5.5 km) along 45.5 N, in a chain."""
    keys = keys or [f"{1001 + i:05d}" for i in range(count)]
    lon = 4.0 + 0.07 * np.arange(len(keys))
    units = gpd.GeoDataFrame(
        {"name": [f"village {k}" for k in keys], "population": 500, "area_km2": 20.0,
         "lon": lon, "lat": 45.5},
        geometry=gpd.points_from_xy(lon, np.full(len(keys), 45.5)), crs=4326, index=pd.Index(keys, name="insee"),
    )
    graph = nx.path_graph(keys)
    nx.set_edge_attributes(graph, 1000.0, "border_m")
    return Region(units=units, graph=graph, name="line")


@pytest.fixture(scope="module")
def estimate(aura) -> EstimatedTravelTimes:
    return estimate_travel_times(aura)


@pytest.fixture(scope="module")
def dense(estimate) -> np.ndarray:
    return estimate.dense()


# --------------------------------------------------------------------------
# The estimate
# --------------------------------------------------------------------------


def test_dense_is_a_valid_matrix(estimate, dense):
    assert dense.shape == (4025, 4025)
    assert dense.dtype == np.float32
    assert np.all(np.isfinite(dense))
    assert np.all(np.diagonal(dense) == 0)
    off = dense[~np.eye(len(dense), dtype=bool)]
    assert off.min() > 0
    np.testing.assert_allclose(dense, dense.T, rtol=1e-5)


def test_rows_match_dense(estimate, dense):
    sources = np.array([0, 17, 1234, 4024])
    rows = estimate.rows(sources)
    assert rows.shape == (4, estimate.n) and rows.dtype == np.float64
    np.testing.assert_allclose(rows, dense[sources], rtol=1e-5)


def test_rows_reject_bad_positions(estimate):
    with pytest.raises(ValueError, match="positions"):
        estimate.rows(np.array([estimate.n]))
    with pytest.raises(ValueError, match="integer"):
        estimate.rows(np.array(["69123"]))


def test_from_points_at_a_unit_point_is_its_row(aura, estimate):
    keys = ["69123", "38185", "15014", "74010"]
    at = estimate.keys.get_indexer(keys)
    points = estimate.from_points(aura.units.loc[keys, "lon"], aura.units.loc[keys, "lat"])
    np.testing.assert_allclose(points, estimate.rows(at), rtol=1e-9)


def test_from_points_off_a_unit_point_adds_access(aura, estimate):
    lyon = estimate.keys.get_loc("69123")
    lon, lat = aura.units.loc["69123", ["lon", "lat"]]
    moved = estimate.from_points([lon + 0.02], [lat])[0]  # about 1.6 km east
    row = estimate.rows(np.array([lyon]))[0]
    assert moved[lyon] > 0
    assert np.all(moved >= row - 1e-9)


def test_lyon_to_grenoble_is_plausible(estimate):
    lyon, grenoble = estimate.keys.get_indexer(["69123", "38185"])
    minutes = estimate.rows(np.array([lyon]))[0, grenoble]
    # Reference car times: 89.4 min (openrouteservice 2025); about 75-90 by the motorway.
    assert 65 <= minutes <= 105


def test_minutes_grow_along_a_straight_line():
    travel = estimate_travel_times(line_region())
    row = travel.rows(np.array([0]))[0]
    assert row[0] == 0
    assert np.all(np.diff(row) > 0)
    back = travel.rows(np.array([11]))[0]
    assert np.all(np.diff(back) < 0)


def test_region_in_two_parts_is_refused():
    region = line_region()
    region.graph.remove_edge("01005", "01006")
    with pytest.raises(ValueError, match="link_islands"):
        estimate_travel_times(region)


def test_invalid_population_is_named():
    region = line_region()
    region.units.loc["01003", "population"] = np.nan
    with pytest.raises(ValueError, match="population.*01003"):
        estimate_travel_times(region)


def test_model_refuses_a_decreasing_curve():
    with pytest.raises(ValueError, match="increase"):
        TravelTimeModel(curve_slope=0.1, curve_knot_slopes=(-0.2, 0.0, 0.0, 0.0, 0.0))
    assert TravelTimeModel().minutes(np.array([0.0, 30.0]))[0] == 0


# --------------------------------------------------------------------------
# External matrices
# --------------------------------------------------------------------------

KEYS = ["01001", "01002", "01003"]


def full_pairs() -> pd.DataFrame:
    rows = [(a, b, 10.0 + 3 * i + j) for i, a in enumerate(KEYS) for j, b in enumerate(KEYS) if a != b]
    return pd.DataFrame(rows, columns=["origin", "destination", "minutes"])


def test_semicolon_csv_with_bom_and_decimal_comma(tmp_path):
    path = tmp_path / "distancier.csv"
    text = "origin_insee;dest_insee;minutes\n" + "".join(
        f"{a};{b};{str(m).replace('.', ',')}5\n" for a, b, m in full_pairs().itertuples(index=False))
    path.write_bytes("\ufeff".encode("utf-8") + text.encode("utf-8"))
    travel = read_travel_matrix(path, KEYS)
    assert isinstance(travel, MatrixTravelTimes)
    assert travel.n == 3 and list(travel.keys) == KEYS
    assert travel.rows(np.array([0]))[0].tolist() == [0.0, 11.05, 12.05]
    assert travel.dense()[2, 1] == pytest.approx(17.05)
    assert travel.notes == [] and "distancier.csv" in travel.source


def test_latin1_csv_with_extra_columns(tmp_path):
    table = full_pairs().assign(commune="Saint-Étienne")
    path = tmp_path / "table.csv"
    path.write_bytes(table.to_csv(index=False, sep=";").encode("latin-1"))
    travel = read_travel_matrix(path, KEYS)
    assert travel.dense()[0, 1] == 11.0


def test_parquet_and_gzip(tmp_path):
    table = full_pairs()
    table.to_parquet(tmp_path / "table.parquet")
    travel = read_travel_matrix(tmp_path / "table.parquet", KEYS)
    assert travel.dense()[1, 2] == 15.0
    with gzip.open(tmp_path / "table.csv.gz", "wt", encoding="utf-8") as handle:
        table.to_csv(handle, index=False)
    np.testing.assert_array_equal(read_travel_matrix(tmp_path / "table.csv.gz", KEYS).dense(), travel.dense())


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        ("01009;01001;5", r"line 2, column 'origin'.*01009"),
        ("01001;01002;-4", r"line 2, column 'minutes'.*negative"),
        ("01001;01002;vingt", r"line 2, column 'minutes'.*not numbers"),
        ("01001;01002;", r"line 2, column 'minutes'.*not numbers"),
    ],
)
def test_bad_rows_are_named(tmp_path, row, pattern):
    rest = "".join(f"{a};{b};{m}\n" for a, b, m in full_pairs().iloc[1:].itertuples(index=False))
    path = tmp_path / "bad.csv"
    path.write_text(f"origin;destination;minutes\n{row}\n{rest}", encoding="utf-8")
    with pytest.raises(ValueError, match=pattern) as info:
        read_travel_matrix(path, KEYS)
    assert "bad.csv" in str(info.value)


def test_bad_tables_are_refused(tmp_path):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("from,to,duration\n01001,01002,3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="origin,destination,minutes"):
        read_travel_matrix(wrong, KEYS)
    numeric = full_pairs().assign(origin=lambda t: t["origin"].astype(int))
    numeric.to_parquet(tmp_path / "numeric.parquet")
    with pytest.raises(ValueError, match="leading zeros"):
        read_travel_matrix(tmp_path / "numeric.parquet", KEYS)
    twice = pd.concat([full_pairs(), full_pairs().iloc[:1]])
    twice.to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(ValueError, match="lines 2, 8.*same origin and destination"):
        read_travel_matrix(tmp_path / "twice.csv", KEYS)
    with pytest.raises(ValueError, match="not found"):
        read_travel_matrix(tmp_path / "absent.csv", KEYS)


def test_missing_pairs_need_a_fallback(tmp_path):
    region = line_region(keys=KEYS)
    table = full_pairs().iloc[:-2]  # 01003->01001 and 01003->01002 missing
    table.to_csv(tmp_path / "partial.csv", index=False)
    with pytest.raises(ValueError, match="2 of 6 origin-destination pairs are missing.*01003->01001"):
        read_travel_matrix(tmp_path / "partial.csv", KEYS)
    fallback = estimate_travel_times(region)
    travel = read_travel_matrix(tmp_path / "partial.csv", KEYS, fallback=fallback)
    expected = fallback.rows(np.array([2]))[0]
    np.testing.assert_allclose(travel.dense()[2, :2], expected[:2])
    assert travel.dense()[0, 1] == 11.0 and travel.dense()[2, 2] == 0
    assert len(travel.notes) == 1 and "2 of 6 pairs" in travel.notes[0]
    assert "filled by the estimate" in travel.source


def test_fallback_must_cover_the_same_units(tmp_path):
    full_pairs().iloc[:-1].to_csv(tmp_path / "partial.csv", index=False)
    other = estimate_travel_times(line_region(keys=["02001", "02002", "02003"]))
    with pytest.raises(ValueError, match="other units"):
        read_travel_matrix(tmp_path / "partial.csv", KEYS, fallback=other)


# --------------------------------------------------------------------------
# Against reference car times (only where the validation data is present)
# --------------------------------------------------------------------------


def test_estimate_matches_the_isere_osrm_matrix(estimate):
    path = REFERENCE / "isere_osrm_2021_matrix.csv.gz"
    if not path.is_file():
        pytest.skip(f"reference travel times not found in {REFERENCE}")
    codes = pd.read_csv(REFERENCE / "isere_osrm_2021_points.csv", dtype={"insee": str})["insee"]
    osrm = read_travel_matrix(path, codes)  # a real external matrix: 512 x 512, diagonal absent
    assert osrm.n == 512 and osrm.notes == []
    at = estimate.keys.get_indexer(codes)
    ours = estimate.rows(at)[:, at]
    off = ~np.eye(512, dtype=bool)
    ape = np.abs(ours[off] - osrm.dense()[off]) / osrm.dense()[off] * 100
    assert np.median(ape) < 8
    assert np.percentile(ape, 90) < 25
