"""Routing lookup against a real AURA plan: answers checked against the exported tables.

The plan is the shared ``aura_run`` fixture (Lyon split into arrondissements).
Expected sectors come from ``sectors.csv`` / ``postcodes.csv`` read with
pandas, and polygons from ``sectors.geojson`` read with geopandas, never
from the router itself.
"""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout
from datetime import date

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geodata.codes import CODE_CHANGE_COLUMNS, current_code, load_code_changes
from geodata.reference import load_arrondissements
from sectorize.serve.routing import OutsideRule, Router

STATUSES = {"routed", "ambiguous", "outside_region", "invalid", "not_found"}


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def folder(aura_run):
    return aura_run[0]


@pytest.fixture(scope="module")
def table(aura_run_tables) -> pd.DataFrame:
    return aura_run_tables[0]


@pytest.fixture(scope="module")
def postcodes(aura_run_tables) -> pd.DataFrame:
    return aura_run_tables[1]


@pytest.fixture(scope="module")
def shapes(folder) -> gpd.GeoDataFrame:
    return gpd.read_file(folder / "sectors.geojson").set_index("insee")


@pytest.fixture(scope="module")
def router(folder) -> Router:
    return Router.from_run_folder(folder)


def expect(route, table: pd.DataFrame, insee: str) -> None:
    row = table.loc[insee]
    assert (route.sector, route.worker_id, route.group, route.worker_name) == (
        row["sector"], row["worker_id"], row["group"], row["worker_name"]
    ), route


# ---------------------------------------------------------------- commune code changes


def test_code_changes_table_maps_old_codes_to_current_aura_communes():
    changes = load_code_changes()
    current = set(pd.read_parquet("geodata/data/communes.parquet", columns=["insee"])["insee"])
    assert list(changes.columns) == CODE_CHANGE_COLUMNS
    assert len(changes) > 300
    assert changes["old_code"].is_unique
    assert set(changes["current_code"]) <= current
    assert not set(changes["old_code"]) & current
    assert (changes["changed_on"].str.fullmatch(r"\d{4}-\d{2}-\d{2}")).all()
    # the 1 January 2025 mergers recomposed in SOURCES.md (geometry build) must all be there
    merged_2025 = {"01330": "01187", "26371": "26289", "42109": "42084", "42252": "42084",
                   "42072": "42217", "63330": "63109", "69159": "69114"}
    found = changes.set_index("old_code").loc[list(merged_2025)]
    assert found["current_code"].to_dict() == merged_2025
    assert set(found["changed_on"]) == {"2025-01-01"}


def test_current_code_rules():
    old = current_code("01330")
    assert (old.status, old.current, old.name, old.changed_on) == ("changed", "01187", "Ruffieu", "2025-01-01")
    assert "merged into 01187 Haut Valromey on 1 January 2025" in old.rule
    moved = current_code("38079")
    assert moved.current == "69270" and "became" in moved.rule and "1967" in moved.rule
    assert current_code("69388").status == "arrondissement" and current_code("69388").current == "69123"
    assert current_code("01001").status == "current"
    assert current_code("75056").status == "unknown" and current_code("75056").current is None


# ---------------------------------------------------------------- by INSEE code


def test_every_commune_routes_to_its_exported_sector(router, table, folder):
    assert router.communes == len(table)
    for insee in table.index:
        route = router.route(insee=insee)
        assert route.status == "routed" and route.insee == insee and route.rule == "INSEE code"
        expect(route, table, insee)
    assert route.plan_id == folder.name and route.vintage == "COG 2026"


def test_arrondissement_code_and_lyon_on_an_arrondissement_plan(router, table):
    expect(router.route(insee="69388"), table, "69388")
    assert "69123" not in table.index
    arr = load_arrondissements().set_index("insee")
    sectors = table.loc[arr.index, "sector"]
    population = arr["population"].groupby(sectors).sum()
    route = router.route(insee="69123")
    assert route.insee == "69123"
    if len(population) == 1:
        assert route.status == "routed" and route.sector == population.index[0]
    else:
        assert route.status == "ambiguous"
        assert route.sector == population.idxmax()
        shares = {c.sector: c.share for c in route.candidates}
        assert shares.keys() == set(population.index)
        for sector, people in population.items():
            assert shares[sector] == pytest.approx(people / population.sum(), abs=1e-3)
        assert "split into 9 arrondissements" in route.rule


def test_arrondissement_code_on_a_communes_plan(aura, table):
    """A plan where Lyon is one commune: 6938x goes to 69123."""
    communes = table.reset_index()
    communes = communes.loc[~communes["insee"].str.startswith("6938")]
    lyon = table.loc["69381"].to_dict() | {"insee": "69123", "name": "Lyon", "dep": "69"}
    communes = pd.concat([communes, pd.DataFrame([lyon])], ignore_index=True)
    postcodes = pd.DataFrame({"postcode": ["69001"], "sector": [lyon["sector"]], "spans_sectors": ["False"],
                              "sectors": [lyon["sector"]], "main_share": ["1,0"]})
    router = Router.from_tables(communes, postcodes, aura.units.geometry, {"plan_id": "lyon-one", "vintage": "COG 2026"})
    route = router.route(insee="69388")
    assert (route.status, route.insee, route.sector) == ("routed", "69123", lyon["sector"])
    assert "arrondissement 69388" in route.rule and "69123 Lyon" in route.rule
    assert router.route(insee="69123").rule == "INSEE code"


def test_old_codes_route_to_the_current_commune(router, table):
    changes = load_code_changes()
    routed = 0
    for row in changes.itertuples():
        route = router.route(insee=row.old_code)
        if row.current_code == "69123":  # merged into Lyon, which this plan splits into arrondissements
            assert route.status in ("ambiguous", "routed") and route.insee == "69123"
            assert f"old INSEE code {row.old_code}" in route.rule and "arrondissements" in route.rule
            routed += 1
            continue
        assert route.status == "routed", route
        assert route.insee == row.current_code
        expect(route, table, row.current_code)
        assert f"old INSEE code {row.old_code}" in route.rule and row.current_code in route.rule
        routed += 1
    assert routed == len(changes)
    assert "on 1 January 2025" in router.route(insee="01330").rule


def test_unknown_code_in_an_aura_department_is_not_found(router):
    route = router.route(insee="01999")
    assert route.status == "not_found" and route.sector is None
    assert "01999" in route.rule and route.as_dict()["message"] == route.rule


# ---------------------------------------------------------------- by postcode


def test_postcodes_route_like_the_exported_postcode_table(router, postcodes):
    for code, row in postcodes.iterrows():
        route = router.route(postcode=code)
        assert route.sector == row["sector"] and route.worker_id == row["worker_id"], (code, route)
        if row["spans_sectors"] == "1":
            assert route.status == "ambiguous"
        else:
            assert route.status == "routed" and not route.candidates


def test_postcode_spanning_sectors_lists_candidates_with_shares(router, postcodes):
    spanning = postcodes.loc[postcodes["spans_sectors"] == "1"]
    assert len(spanning) > 0
    code, row = next(iter(spanning.iterrows()))
    route = router.route(postcode=code)
    assert route.status == "ambiguous"
    assert [c.sector for c in route.candidates][0] == row["sector"]
    assert {c.sector for c in route.candidates} == set(row["sectors"].split("|"))
    assert route.candidates[0].share == pytest.approx(float(row["main_share"].replace(",", ".")), abs=1e-3)
    assert sum(c.share for c in route.candidates) == pytest.approx(1.0, abs=2e-3)
    assert f"postcode spans {len(route.candidates)} sectors: main sector by population" in route.rule


def test_postcode_known_only_to_the_tax_street_file(router, table, postcodes):
    # 12210 is an Aveyron postcode that FIMOCT also gives to 15241 La Trinitat (Cantal)
    assert "12210" not in postcodes.index
    route = router.route(postcode="12210")
    assert route.status == "routed" and route.insee == "15241" and "FIMOCT" in route.rule
    expect(route, table, "15241")


def test_unknown_postcode_in_an_aura_department_is_not_found(router):
    assert router.route(postcode="01999").status == "not_found"


# ---------------------------------------------------------------- by point


def test_points_inside_communes(router, table, shapes):
    for insee in shapes.index[::97]:
        point = shapes.loc[insee, "geometry"].representative_point()
        route = router.route(lat=point.y, lon=point.x)
        assert route.status == "routed" and route.insee == insee, route
        expect(route, table, insee)
    route = router.route(lat="45,7339", lon="4.8691")  # CLB, Lyon 8e; decimal comma accepted
    assert route.insee == "69388"


def test_point_just_outside_the_region_border_matches_the_nearest_commune(router, table, shapes, folder):
    metric = shapes.to_crs(2154)
    tree = shapely.STRtree(metric.geometry.values)
    commune = metric.loc["01309", "geometry"]  # on the regional border (neighbours outside AURA)
    ring = commune.buffer(150).exterior
    chosen = None
    for fraction in np.linspace(0, 1, 200, endpoint=False):
        candidate = ring.interpolate(fraction, normalized=True)
        if len(tree.query(candidate, predicate="intersects")) == 0:
            nearest = tree.query_nearest(candidate)
            if metric.index[nearest[0]] == "01309":
                chosen = candidate
                break
    assert chosen is not None
    lon, lat = gpd.GeoSeries([chosen], crs=2154).to_crs(4326).iloc[0].coords[0]
    route = router.route(lat=lat, lon=lon)
    assert route.status == "routed" and route.insee == "01309"
    assert "m outside commune 01309" in route.rule
    expect(route, table, "01309")
    strict = Router.from_run_folder(folder, border_m=50)
    assert strict.route(lat=lat, lon=lon).status == "outside_region"


# ---------------------------------------------------------------- outside the region


def test_codes_and_postcodes_outside_the_region(router, folder, table):
    for route in (router.route(insee="75056"), router.route(postcode="13001"), router.route(insee="2A004")):
        assert route.status == "outside_region" and route.sector is None
        assert "outside the plan's territory" in route.rule and "route by hand" in route.rule
    worker = table["worker_id"].iloc[0]
    designated = Router.from_run_folder(folder, outside=OutsideRule(worker_id=worker, departments={"13": "A1"}))
    paris = designated.route(insee="75056")
    assert (paris.status, paris.worker_id) == ("outside_region", worker) and "designated worker" in paris.rule
    marseille = designated.route(postcode="13001")
    assert (marseille.status, marseille.sector) == ("outside_region", "A1") and "department rule" in marseille.rule
    with pytest.raises(ValueError, match="no worker"):
        Router.from_run_folder(folder, outside=OutsideRule(worker_id="nobody"))


def test_points_outside_the_region(router, aura_lyon, table, folder):
    from geodata.travel import estimate_travel_times

    marseille = router.route(lat=43.2965, lon=5.3698)
    assert marseille.status == "outside_region" and "nearest sector by estimated travel time" in marseille.rule
    minutes = estimate_travel_times(aura_lyon).from_points([5.3698], [43.2965])[0]
    nearest = aura_lyon.units.index[int(np.argmin(minutes))]
    expect(marseille, table, nearest)
    assert nearest in marseille.rule
    valreas = router.route(lat=44.3847, lon=4.9906)  # Enclave des Papes (Vaucluse), a hole inside the Drôme
    assert valreas.status == "outside_region" and valreas.sector is not None
    assert "nearest sector by estimated travel time" in valreas.rule
    nearest = aura_lyon.units.index[int(np.argmin(estimate_travel_times(aura_lyon).from_points([4.9906], [44.3847])[0]))]
    assert nearest.startswith("26")
    expect(valreas, table, nearest)
    paris = router.route(lat=48.8566, lon=2.3522)  # 200+ km away: beyond the default 100 km
    assert paris.status == "outside_region" and paris.sector is None and "beyond 100 km" in paris.rule
    worker = table["worker_id"].iloc[-1]
    only_worker = Router.from_run_folder(folder, outside=OutsideRule(kind="worker", worker_id=worker))
    assert only_worker.route(lat=43.2965, lon=5.3698).worker_id == worker


# ---------------------------------------------------------------- bad input


BAD_TEXT = ["", "   ", "1234", "ABCDE", "6938 8", "x" * 10_000, "' OR 1=1 --", "<script>alert(1)</script>",
            "69\x0088", "69388\n", b"\xff\xfe\xfd", "６９３８８", "2C004", 3.5, ["69388"]]


@pytest.mark.parametrize("value", BAD_TEXT, ids=lambda v: repr(v)[:20])
@pytest.mark.parametrize("key", ["insee", "postcode"])
def test_malformed_codes_are_invalid(router, key, value):
    route = router.route(**{key: value})
    assert route.status == "invalid" and route.sector is None
    assert route.rule and "<script>" not in route.rule and "\x00" not in route.rule
    assert len(route.rule) < 300


@pytest.mark.parametrize("lat,lon", [(999, 4.8), (45.7, 200), (float("nan"), 4.8), ("nan", "4.8"), ("inf", "4"),
                                     ("45.7; DROP", "4.8"), ("", "4.8"), (45.7, None), (True, 4.8)])
def test_malformed_points_are_invalid(router, lat, lon):
    assert router.route(lat=lat, lon=lon).status == "invalid"


def test_exactly_one_key(router):
    assert router.route().status == "invalid"
    assert router.route(insee="69388", postcode="69008").status == "invalid"
    assert router.route(insee="69388", lat=45.7, lon=4.8).status == "invalid"


def test_non_french_departments_are_invalid(router):
    assert router.route(insee="00123").status == "invalid"
    assert router.route(insee="20123").status == "invalid"
    assert router.route(postcode="00123").status == "invalid"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.binary(max_size=40), st.integers()), st.sampled_from(["insee", "postcode"]))
def test_any_input_gives_an_answer_never_an_exception(router, value, key):
    route = router.route(**{key: value})
    assert route.status in STATUSES
    json.dumps(route.as_dict())
    if route.status in ("routed", "ambiguous"):
        assert route.sector is not None
    if route.status == "routed" and key == "insee":
        assert route.insee is not None


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True))
def test_any_point_gives_an_answer(router, lat, lon):
    route = router.route(lat=lat, lon=lon)
    assert route.status in STATUSES
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        assert route.status == "invalid"


# ---------------------------------------------------------------- registry and CLI


def test_router_from_registry(tmp_path, folder, table):
    registry = pytest.importorskip("sectorize.store.registry")
    reg = registry.Registry(tmp_path / "plans")
    plan_id = reg.add(folder, effective_from=date(2027, 1, 1))
    router = Router.from_registry(tmp_path / "plans", on=date(2027, 3, 1))
    assert router.info.plan_id == plan_id and router.info.effective_from == "2027-01-01"
    for insee in ("69388", "01001", "74010"):
        expect(router.route(insee=insee), table, insee)
    assert router.route(insee="69123").candidates  # Lyon's split uses the registry's populations
    assert Router.from_registry(tmp_path / "plans", plan_id).info.plan_id == plan_id
    with pytest.raises(LookupError, match="no plan is in force on 2026-06-01"):
        Router.from_registry(tmp_path / "plans", on=date(2026, 6, 1))


def run_cli(argv: list[str]) -> tuple[int, str]:
    from sectorize.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


def test_cli_route(folder, table, tmp_path, monkeypatch, capsys):
    code, text = run_cli(["route", "--run", str(folder), "--insee", "69388", "--json"])
    answer = json.loads(text)
    assert code == 0 and answer["sector"] == table.loc["69388", "sector"] and answer["status"] == "routed"
    code, text = run_cli(["route", "--run", str(folder), "--lat", "45.74", "--lon", "4.88"])
    assert code == 0 and "status: routed" in text and "rule: point inside commune" in text
    assert run_cli(["route", "--run", str(folder), "--insee", "1234"])[0] == 2
    assert run_cli(["route", "--run", str(folder), "--insee", "01999"])[0] == 4  # not found (sectorize.cli.exit_codes)
    assert run_cli(["route", "--run", str(folder), "--insee", "75056"])[0] == 0
    monkeypatch.chdir(tmp_path)
    assert run_cli(["route", "--insee", "69388"])[0] == 4  # no sectorize-output/LATEST here
    assert "sectorize run" in capsys.readouterr().err
    assert run_cli(["route", "--run", str(tmp_path / "missing"), "--insee", "69388"])[0] == 4
