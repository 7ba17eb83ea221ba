"""``sectorize solve`` on the user's own units, and the travel classes it builds on."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.spatial.distance import cdist

from sectorize.cli import main
from sectorize.pipeline.instance import InputError, sector_bounds
from solvers.travel import MAX_PAIR_UNITS, PairDistances, PlanarDistances

ROOT = Path(__file__).resolve().parents[1]
VALIDI = ROOT.parent / "shared" / "benchmarks" / "validi"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def grid_points(rows: int, cols: int, spacing_m: float = 2000.0) -> tuple[list[str], np.ndarray, list[tuple[int, int]]]:
    """Keys with leading zeros ("00001"...), coordinates in metres, rook edges as index pairs."""
    keys = [f"{i + 1:05d}" for i in range(rows * cols)]
    xy = np.array([(c * spacing_m + 800_000.0, r * spacing_m + 6_500_000.0)
                   for r in range(rows) for c in range(cols)])
    edges = [(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
    edges += [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)]
    return keys, xy, edges


def write_points(tmp: Path, keys, xy, weight, edges, *, sep=";", encoding="utf-8-sig", decimal_comma=True):
    """Units CSV (key;x;y;weight) and edges CSV (a;b)."""
    def num(v):
        text = f"{v:g}"
        return text.replace(".", ",") if decimal_comma else text

    lines = [sep.join(["code", "x", "y", "charge"])]
    lines += [sep.join([k, f"{x:.1f}", f"{y:.1f}", num(w)]) for k, (x, y), w in zip(keys, xy, weight)]
    units = tmp / "units.csv"
    units.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    edge_file = tmp / "edges.csv"
    edge_file.write_text("a,b\n" + "".join(f"{keys[a]},{keys[b]}\n" for a, b in edges), encoding="utf-8")
    return units, edge_file


def run_cli(args: list[str]) -> int:
    return main(["solve", "--quiet", *map(str, args)])


def read_result(out: Path) -> tuple[dict, pd.DataFrame | None]:
    folder = out / (out / "LATEST").read_text().strip()
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    sectors = None
    if (folder / "sectors.csv").exists():
        sectors = pd.read_csv(folder / "sectors.csv", sep=";", dtype=str, encoding="utf-8-sig")
    return summary, sectors


def assert_contiguous(keys: list[str], edges: list[tuple[int, int]], sectors: pd.DataFrame, key: str) -> None:
    g = nx.Graph()
    g.add_nodes_from(keys)
    g.add_edges_from((keys[a], keys[b]) for a, b in edges)
    for _, members in sectors.groupby("sector")[key]:
        assert nx.is_connected(g.subgraph(members.tolist()))


# --------------------------------------------------------------------------
# solvers.travel
# --------------------------------------------------------------------------


def test_planar_distances_match_scipy():
    rng = np.random.default_rng(3)
    xy = rng.random((300, 2)) * 50_000
    src = np.array([0, 17, 299, 17])
    d = PlanarDistances(xy, scale=0.001)
    np.testing.assert_allclose(d.rows(src), cdist(xy[src], xy) / 1000, rtol=1e-12, atol=1e-9)
    sq = PlanarDistances(xy, squared=True, scale=0.001)
    np.testing.assert_allclose(sq.rows(src), (cdist(xy[src], xy) / 1000) ** 2, rtol=1e-10, atol=1e-9)
    assert d.n == 300 and d.rows(np.array([], dtype=int)).shape == (0, 300)
    cols = np.array([5, 0, 299, 42])
    for dist in (d, sq):  # a block is exactly those columns of the rows (same arithmetic)
        assert np.array_equal(dist.block(src, cols), dist.rows(src)[:, cols])


def test_planar_distances_reject_bad_coordinates():
    with pytest.raises(ValueError, match="unit 1"):
        PlanarDistances(np.array([[0.0, 0.0], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        PlanarDistances(np.zeros((3, 3)))


def test_pair_distances_symmetric_and_errors():
    d = PairDistances(np.array([0, 2, 1]), np.array([1, 0, 2]), np.array([3.0, 4.0, 5.0]))
    np.testing.assert_array_equal(d.rows(np.arange(3)), [[0, 3, 4], [3, 0, 5], [4, 5, 0]])
    # the same pair given twice, either way round, must agree
    PairDistances(np.array([0, 1]), np.array([1, 0]), np.array([2.0, 2.0]))
    with pytest.raises(ValueError, match=r"\(x, y\) is given with two distances, 2.0 and 3.0"):
        PairDistances(np.array([0, 1]), np.array([1, 0]), np.array([2.0, 3.0]), labels=["x", "y"])
    with pytest.raises(ValueError, match=r"no distance for the pair \(unit 1, unit 2\)"):
        PairDistances(np.array([0, 0]), np.array([1, 2]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="negative"):
        PairDistances(np.array([0]), np.array([1]), np.array([-1.0]))
    with pytest.raises(ValueError, match="distance of unit 1 to itself is 2.0"):
        PairDistances(np.array([0, 1]), np.array([1, 1]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="limited to 20,000 units"):
        PairDistances(np.array([0]), np.array([MAX_PAIR_UNITS]), np.array([1.0]))


def test_sector_bounds_translation():
    b = sector_bounds(1000.0, 3, min_load=300.0, max_load=360.0)
    assert b.target == 330.0
    assert b.tolerance == pytest.approx(60 / 660)
    assert b.target * (1 - b.tolerance) == pytest.approx(300.0, rel=1e-12)
    assert b.target * (1 + b.tolerance) == pytest.approx(360.0, rel=1e-12)
    assert sector_bounds(900.0, 3, tolerance=0.1).upper == pytest.approx(330.0)
    for kwargs in ({"tolerance": 0.1, "min_load": 1.0, "max_load": 2.0}, {"min_load": 1.0}, {},
                   {"min_load": 0.0, "max_load": 5.0}, {"min_load": 5.0, "max_load": 4.0}, {"tolerance": 1.0}):
        with pytest.raises(InputError):
            sector_bounds(100.0, 2, **kwargs)


# --------------------------------------------------------------------------
# the CLI on polygons, points, distances
# --------------------------------------------------------------------------


def test_polygons_geojson(tmp_path, capsys):
    # a 4 x 5 grid of 5 km squares near Lyon, in Lambert-93; codes with leading zeros
    rows, cols = 4, 5
    boxes = [shapely.box(840_000 + 5000 * c, 6_510_000 + 5000 * r, 845_000 + 5000 * c, 6_515_000 + 5000 * r)
             for r in range(rows) for c in range(cols)]
    rng = np.random.default_rng(0)
    weight = rng.integers(5, 15, size=rows * cols)
    keys = [f"0{1000 + i}" for i in range(rows * cols)]
    gdf = gpd.GeoDataFrame({"code": keys, "patients": weight}, geometry=boxes, crs=2154)
    path = tmp_path / "units.geojson"
    gdf.to_file(path, driver="GeoJSON")
    out = tmp_path / "out"
    code = run_cli(["--units", path, "--key", "code", "--weight", "patients", "--sectors", 3,
                    "--tolerance", 0.1, "--time-limit", 4, "--out", out])
    assert code == 0, capsys.readouterr().err
    summary, sectors = read_result(out)
    assert summary["status"] in ("feasible", "optimal") and summary["contiguity_check"]["valid"]
    assert summary["n"] == 20 and summary["k"] == 3
    assert "EPSG:2154" in summary["distance_source"]
    assert sorted(sectors["code"]) == sorted(keys)  # leading zeros kept
    assert set(sectors["sector"]) == {"1", "2", "3"}
    # queen contiguity of the boxes: diagonal neighbours count
    edges = [(a, b) for a in range(20) for b in range(a + 1, 20) if boxes[a].intersects(boxes[b])]
    assert_contiguous(keys, edges, sectors, "code")
    loads = pd.Series(weight, index=keys).groupby(sectors.set_index("code")["sector"]).sum()
    assert (loads >= weight.sum() / 3 * 0.9 - 1e-9).all() and (loads <= weight.sum() / 3 * 1.1 + 1e-9).all()
    assert summary["max_deviation_pct"] <= 10 + 1e-9
    # the objective is the planar inertia in km^2 with the reported centres
    centre_of = dict(zip(range(1, 4), summary["centres"]))
    pts = gdf.set_index("code").geometry.representative_point()
    total = sum(w * (pts[k].distance(pts[centre_of[int(s)]]) / 1000) ** 2
                for k, w, s in zip(keys, weight, sectors.set_index("code").loc[keys, "sector"]))
    assert total == pytest.approx(summary["objective"], rel=1e-6)


def test_points_csv_with_edges_and_leading_zeros(tmp_path):
    keys, xy, edges = grid_points(4, 6)
    weight = np.where(np.arange(24) % 5 == 0, 2.5, 1.0)  # decimal comma in the file
    units, edge_file = write_points(tmp_path, keys, xy, weight, edges)
    out = tmp_path / "out"
    assert run_cli(["--units", units, "--edges", edge_file, "--key", "code", "--weight", "charge",
                    "--sectors", 4, "--tolerance", 0.15, "--objective", "travel", "--time-limit", 4,
                    "--out", out]) == 0
    summary, sectors = read_result(out)
    assert sectors["code"].tolist() == keys and keys[0] == "00001"
    assert_contiguous(keys, edges, sectors, "code")
    assert summary["total_weight"] == pytest.approx(weight.sum())
    assert "planar x/y" in summary["distance_source"] and "^2" not in summary["objective_definition"]
    # a second run never overwrites the first
    assert run_cli(["--units", units, "--edges", edge_file, "--key", "code", "--weight", "charge",
                    "--sectors", 4, "--tolerance", 0.15, "--time-limit", 2, "--out", out]) == 0
    assert len([p for p in out.iterdir() if p.is_dir()]) == 2


@pytest.mark.parametrize("lon0, lat0, crs", [(4.8, 45.7, "EPSG:2154"), (-100.0, 40.0, "EPSG:32614")])
def test_points_lon_lat_projected(tmp_path, lon0, lat0, crs):
    keys, _, edges = grid_points(3, 3)
    lines = ["code;nom;lon;lat;charge"] + [
        f"{k};Bâgé-{i};{lon0 + 0.05 * (i % 3):.3f};{lat0 + 0.05 * (i // 3):.3f};1" for i, k in enumerate(keys)
    ]
    units = tmp_path / "units.csv"
    units.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    edge_file = tmp_path / "edges.csv"
    edge_file.write_text("a;b\n" + "".join(f"{keys[a]};{keys[b]}\n" for a, b in edges))
    out = tmp_path / "out"
    assert run_cli(["--units", units, "--edges", edge_file, "--key", "code", "--weight", "charge",
                    "--sectors", 3, "--tolerance", 0.0, "--time-limit", 3, "--out", out]) == 0
    summary, sectors = read_result(out)
    assert crs in summary["distance_source"]
    assert any("Latin-1" in note for note in summary["notes"])
    assert summary["sector_loads"] == [3.0, 3.0, 3.0]
    assert_contiguous(keys, edges, sectors, "code")
    # neighbours 0.05 degree apart are 3.5 to 5.6 km apart: inertia in km^2, not degrees^2 nor m^2
    assert 10 < summary["objective"] < 2000


def _recompute(sectors: pd.DataFrame, weight: dict, dist: dict, squared: bool) -> float:
    """Best-centre objective of a plan from the distances file's exact values."""
    total = 0.0
    for _, members in sectors.groupby("sector")["code"]:
        m = members.tolist()
        total += min(sum(weight[i] * (dist[c, i] ** 2 if squared else dist[c, i]) for i in m) for c in m)
    return total


@pytest.mark.parametrize("objective", ["inertia", "travel"])
def test_distances_file_is_the_objective(tmp_path, objective):
    keys, xy, edges = grid_points(3, 4)
    rng = np.random.default_rng(1)
    weight = rng.integers(1, 6, size=12).astype(float)
    units, edge_file = write_points(tmp_path, keys, xy, weight, edges, sep=",", encoding="latin-1",
                                    decimal_comma=False)
    # "road" distances: straight line x a random detour factor, rounded; each pair once, some reversed
    straight = cdist(xy, xy) / 1000
    lines = ["a,b,distance"]
    dist = {}
    for i in range(12):
        dist[i, i] = 0.0
        for j in range(i + 1, 12):
            d = round(float(straight[i, j] * rng.uniform(1.1, 1.6)), 1)
            dist[i, j] = dist[j, i] = d
            lines.append(f"{keys[j]},{keys[i]},{d}" if (i + j) % 3 == 0 else f"{keys[i]},{keys[j]},{d}")
    dfile = tmp_path / "dist.csv"
    dfile.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert run_cli(["--units", units, "--edges", edge_file, "--distances", dfile, "--key", "code",
                    "--weight", "charge", "--sectors", 3, "--tolerance", 0.2, "--objective", objective,
                    "--backend", "exact", "--time-limit", 8, "--out", out]) == 0
    summary, sectors = read_result(out)
    index = {k: i for i, k in enumerate(keys)}
    sectors["code"] = sectors["code"].map(index)
    recomputed = _recompute(sectors, dict(enumerate(weight)), dist, objective == "inertia")
    assert summary["objective"] == pytest.approx(recomputed, rel=1e-9)
    assert summary["status"] == "optimal" and summary["gap"] == pytest.approx(0, abs=1e-4)
    assert str(dfile) in summary["distance_source"]


def test_min_max_translation_and_bounds_respected(tmp_path):
    keys, xy, edges = grid_points(4, 5)
    weight = np.arange(1, 21, dtype=float)  # total 210
    units, edge_file = write_points(tmp_path, keys, xy, weight, edges)
    out = tmp_path / "out"
    assert run_cli(["--units", units, "--edges", edge_file, "--key", "code", "--weight", "charge",
                    "--sectors", 3, "--min", 60, "--max", 80, "--time-limit", 4, "--out", out]) == 0
    summary, sectors = read_result(out)
    b = summary["bounds"]
    assert (b["min"], b["max"], b["target"]) == (60.0, 80.0, 70.0)
    assert b["tolerance"] == pytest.approx(20 / 140)
    assert "(min + max) / 2" in b["given_as"]
    loads = pd.Series(weight, index=keys).groupby(sectors.set_index("code")["sector"]).sum()
    assert loads.between(60, 80).all()
    assert loads.tolist() == pytest.approx(summary["sector_loads"])


def test_unit_heavier_than_max_is_infeasible(tmp_path, capsys):
    keys, xy, edges = grid_points(3, 3)
    weight = np.ones(9)
    weight[4] = 50.0
    units, edge_file = write_points(tmp_path, keys, xy, weight, edges)
    out = tmp_path / "out"
    code = run_cli(["--units", units, "--edges", edge_file, "--key", "code", "--weight", "charge",
                    "--sectors", 2, "--min", 20, "--max", 40, "--out", out])
    assert code == 3
    assert "00005 alone has a caseload of 50.0" in capsys.readouterr().err
    summary, sectors = read_result(out)
    assert summary["status"] == "infeasible" and "00005" in summary["reason"] and sectors is None


# --------------------------------------------------------------------------
# bad input: exit 2 with the file, line and column
# --------------------------------------------------------------------------


@pytest.fixture
def points(tmp_path):
    keys, xy, edges = grid_points(3, 3)
    units, edge_file = write_points(tmp_path, keys, xy, np.ones(9), edges)
    return tmp_path, units, edge_file


def _base(units, edge_file, out):
    return ["--units", units, "--edges", edge_file, "--key", "code", "--weight", "charge", "--sectors", 2,
            "--tolerance", 0.3, "--time-limit", 2, "--out", out]


def _replace_line(path: Path, line_no: int, text: str, encoding="utf-8-sig") -> None:
    lines = path.read_text(encoding=encoding).splitlines()
    lines[line_no - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding=encoding)


@pytest.mark.parametrize("case, expected", [
    ("unknown edge key", r"edges.csv, line 3, column 'b': key '00099' is not a unit"),
    ("duplicate key", r"units.csv, line 4, column 'code': key '00001' already on line 2"),
    ("negative weight", r"units.csv, line 3, column 'charge': weight -1 is negative"),
    ("missing weight", r"units.csv, line 5, column 'charge': weight is empty"),
    ("disconnected", r"3 separate pieces .*00003"),
    ("k > n", r"--sectors 12 is more than the 9 units"),
    ("no edges for points", r"give --edges FILE"),
    ("min without max", r"--min and --max go together"),
    ("missing file", r"nothere.csv: units file not found"),
    ("missing key column", r"no key column 'insee'"),
    ("missing pair", r"dist.csv: no distance for the pair \(00001, 00003\)"),
    ("unknown distance key", r"dist.csv, line 2, column 'a': key 'x' is not a unit"),
])
def test_bad_input_exits_2(points, capsys, case, expected):
    tmp, units, edge_file = points
    out = tmp / "out"
    args = _base(units, edge_file, out)
    if case == "unknown edge key":
        _replace_line(edge_file, 3, "00001,00099", encoding="utf-8")
    elif case == "duplicate key":
        _replace_line(units, 4, "00001;0;0;1")
    elif case == "negative weight":
        _replace_line(units, 3, "00002;0;0;-1")
    elif case == "missing weight":
        _replace_line(units, 5, "00004;0;0;")
    elif case == "disconnected":
        # pieces {1, 2, 4, 5, 6}, {3} and {7, 8, 9}
        edge_file.write_text("a,b\n00001,00002\n00001,00004\n00002,00005\n00004,00005\n00005,00006\n"
                             "00007,00008\n00008,00009\n")
    elif case == "k > n":
        args[args.index("--sectors") + 1] = 12
    elif case == "no edges for points":
        i = args.index("--edges")
        del args[i:i + 2]
    elif case == "min without max":
        i = args.index("--tolerance")
        args[i:i + 2] = ["--min", 3]
    elif case == "missing file":
        args[args.index("--units") + 1] = tmp / "nothere.csv"
    elif case == "missing key column":
        args[args.index("--key") + 1] = "insee"
    elif case in ("missing pair", "unknown distance key"):
        keys = [f"{i + 1:05d}" for i in range(9)]
        rows = [f"{keys[i]},{keys[j]},1" for i in range(9) for j in range(i + 1, 9) if (i, j) != (0, 2)]
        if case == "unknown distance key":
            rows[0] = "x,00002,1"
        (tmp / "dist.csv").write_text("a,b,distance\n" + "\n".join(rows) + "\n")
        args += ["--distances", tmp / "dist.csv"]
    code = run_cli(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ")
    assert re.search(expected, err), err
    assert not (out / "LATEST").exists()  # nothing written on bad input


def test_polygon_weight_named_population_is_not_rounded(tmp_path):
    boxes = [shapely.box(c, r, c + 1, r + 1) for r in range(2) for c in range(3)]
    gdf = gpd.GeoDataFrame({"code": [f"0{i}" for i in range(6)], "population": [1.4, 1.4, 2.5, 1.4, 1.4, 2.5]},
                           geometry=boxes, crs=3857)
    gdf.to_file(tmp_path / "u.gpkg")
    out = tmp_path / "o"
    assert run_cli(["--units", tmp_path / "u.gpkg", "--key", "code", "--weight", "population", "--sectors", 2,
                    "--tolerance", 0.01, "--time-limit", 2, "--out", out]) == 0
    summary, _ = read_result(out)
    assert summary["total_weight"] == pytest.approx(10.6)  # rounded populations would add up to 8
    assert sorted(summary["sector_loads"]) == pytest.approx([5.3, 5.3])


def test_polygon_file_without_weight_column(tmp_path, capsys):
    gdf = gpd.GeoDataFrame({"code": ["01", "02"], "w": [1.0, -2.0]},
                           geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], crs=4326)
    path = tmp_path / "u.gpkg"
    gdf.to_file(path)
    base = ["--units", path, "--key", "code", "--sectors", 2, "--tolerance", 0.5, "--out", tmp_path / "o"]
    assert run_cli([*base, "--weight", "pop"]) == 2
    assert "no weight column 'pop'" in capsys.readouterr().err
    assert run_cli([*base, "--weight", "w"]) == 2
    assert "negative or not a number for units (code) 02" in capsys.readouterr().err


# --------------------------------------------------------------------------
# a published instance through the CLI
# --------------------------------------------------------------------------


def _bench_validi():
    script = ROOT / "benchmarks" / "bench_validi.py"
    spec = importlib.util.spec_from_file_location("bench_validi", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_validi"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_validi_county_optimum_through_cli(tmp_path):
    """NM counties (n = 33, k = 3): the published contiguous Hess optimum 32,944.25, within 0.5 %."""
    index = VALIDI / "instances_hess.csv"
    if not index.exists():
        pytest.skip(f"published instances not available at {VALIDI}")
    bench = _bench_validi()
    table = pd.read_csv(index, dtype={"fips": str})
    row = table[table["instance"] == "NM_county"].iloc[0]
    inst = bench.load_instance(VALIDI, row)
    nodes = pd.read_csv(VALIDI / "county_2010" / "NM_nodes.csv", dtype={"geoid10": str}).sort_values("node")
    keys = nodes["geoid10"].tolist()
    assert keys[0].startswith("35")
    nodes[["geoid10", "x_m", "y_m", "population"]].rename(columns={"x_m": "x", "y_m": "y"}).to_csv(
        tmp_path / "units.csv", index=False)
    g = inst.problem.graph
    pd.DataFrame([(keys[u], keys[v]) for u, v in g.edges], columns=["u", "v"]).to_csv(
        tmp_path / "edges.csv", index=False)
    iu, ju = np.triu_indices(len(keys), 1)
    pd.DataFrame({"a": np.array(keys)[iu], "b": np.array(keys)[ju], "km": inst.km[iu, ju].astype(int)}).to_csv(
        tmp_path / "km.csv", index=False)
    out = tmp_path / "out"
    code = run_cli(["--units", tmp_path / "units.csv", "--edges", tmp_path / "edges.csv",
                    "--distances", tmp_path / "km.csv", "--key", "geoid10", "--weight", "population",
                    "--sectors", int(row["k"]), "--min", int(row["L"]), "--max", int(row["U"]),
                    "--objective", "inertia", "--backend", "exact", "--time-limit", 30, "--out", out])
    assert code == 0
    summary, sectors = read_result(out)
    assert summary["status"] == "optimal"
    published = float(row["cut_objval"])
    # our objective is person x km^2; the published one is in person x (1000 km)^2
    assert summary["objective"] / 1e6 == pytest.approx(published, rel=0.005)
    # and the plan re-checked by the benchmark's own independent check
    assignment = sectors.set_index("geoid10").loc[keys, "sector"].astype(int).to_numpy() - 1
    valid, objective, problems = bench.recheck(inst, assignment)
    assert valid, problems
    assert objective == pytest.approx(summary["objective"] / 1e6, rel=1e-9)


# --------------------------------------------------------------------------
# --objective cut-edges
# --------------------------------------------------------------------------


def _cut(keys: list[str], edges: list[tuple[int, int]], sectors: pd.DataFrame, key: str) -> int:
    sector = sectors.set_index(key)["sector"]
    return sum(sector[keys[a]] != sector[keys[b]] for a, b in edges)


def test_cut_edges_exact_on_points(tmp_path):
    keys, xy, edges = grid_points(4, 5)
    weight = np.random.default_rng(7).integers(1, 6, size=20).astype(float)
    units, edge_file = write_points(tmp_path, keys, xy, weight, edges)
    out = tmp_path / "out"
    assert run_cli(["--units", units, "--edges", edge_file, "--key", "code", "--weight", "charge",
                    "--sectors", 3, "--tolerance", 0.1, "--objective", "cut-edges", "--backend", "exact",
                    "--time-limit", 20, "--out", out]) == 0
    summary, sectors = read_result(out)
    assert summary["objective_name"] == "cut-edges"
    assert summary["objective_definition"].startswith("number of adjacency edges between different sectors")
    assert summary["status"] == "optimal" and summary["contiguity_check"]["valid"]
    assert summary["objective"] == _cut(keys, edges, sectors, "code")
    assert summary["bound"] == summary["objective"] and summary["gap"] == 0
    assert_contiguous(keys, edges, sectors, "code")
    loads = pd.Series(weight, index=keys).groupby(sectors.set_index("code")["sector"]).sum()
    assert loads.between(summary["bounds"]["min"] - 1e-9, summary["bounds"]["max"] + 1e-9).all()
    # each reported centre is a unit of its own sector
    sector = sectors.set_index("code")["sector"]
    assert [sector[c] for c in summary["centres"]] == ["1", "2", "3"]


def test_cut_edges_on_polygons_auto(tmp_path):
    rows, cols = 4, 4
    boxes = [shapely.box(840_000 + 5000 * c, 6_510_000 + 5000 * r, 845_000 + 5000 * c, 6_515_000 + 5000 * r)
             for r in range(rows) for c in range(cols)]
    keys = [f"0{100 + i}" for i in range(rows * cols)]
    gdf = gpd.GeoDataFrame({"code": keys, "patients": np.ones(rows * cols)}, geometry=boxes, crs=2154)
    gdf.to_file(tmp_path / "units.geojson", driver="GeoJSON")
    out = tmp_path / "out"
    assert run_cli(["--units", tmp_path / "units.geojson", "--key", "code", "--weight", "patients", "--sectors", 2,
                    "--tolerance", 0.0, "--objective", "cut-edges", "--time-limit", 15, "--out", out]) == 0
    summary, sectors = read_result(out)
    # queen contiguity: two halves of 8 squares share 4 rook + 6 diagonal edges, the fewest possible
    queen = [(a, b) for a in range(16) for b in range(a + 1, 16) if boxes[a].intersects(boxes[b])]
    assert summary["objective"] == _cut(keys, queen, sectors, "code") == 10
    assert summary["status"] == "optimal" and summary["sector_loads"] == [8.0, 8.0]


def test_cut_edges_rejects_location_backends_and_reports_infeasibility(points, capsys):
    tmp, units, edge_file = points
    args = _base(units, edge_file, tmp / "out") + ["--objective", "cut-edges", "--backend", "mip"]
    assert run_cli(args) == 2
    assert "--objective cut-edges takes --backend auto, heuristic, exact" in capsys.readouterr().err
    # a star of 4 units cannot be halved into two connected pairs: proven by the MIP
    keys = [f"{i + 1:05d}" for i in range(4)]
    star_units, star_edges = write_points(tmp, keys, np.zeros((4, 2)) + [[0, 0], [1, 0], [0, 1], [-1, 0]],
                                          np.ones(4), [(0, 1), (0, 2), (0, 3)])
    out = tmp / "star"
    assert run_cli(["--units", star_units, "--edges", star_edges, "--key", "code", "--weight", "charge",
                    "--sectors", 2, "--tolerance", 0.0, "--objective", "cut-edges", "--time-limit", 5,
                    "--out", out]) == 3
    summary, sectors = read_result(out)
    assert summary["status"] == "infeasible" and "proves" in summary["reason"] and sectors is None
