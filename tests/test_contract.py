"""The routing contract: exported tables validated against the shipped JSON Schemas in every
format, codes with leading zeros, postcode candidates, and small-count suppression."""

from __future__ import annotations

import json
from datetime import date
from importlib import resources

import jsonschema
import numpy as np
import pandas as pd
import pyogrio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sectorize.store.contract import (
    CONTRACT_VERSION,
    POSTCODE_COLUMNS,
    SECTOR_COLUMNS,
    export_contract,
    load_schema,
)
from sectorize.report.privacy import suppress_small
from sectorize.store.registry import Registry

FORMATS = ("csv", "parquet", "geojson", "gpkg")


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def typed_records(table: pd.DataFrame, name: str) -> list[dict]:
    """Rows as JSON values; text read from CSV is turned into the schema's integer/number/boolean."""
    props = load_schema(name)["items"]["properties"]
    out = []
    for row in table.to_dict(orient="records"):
        record = {}
        for key, value in row.items():
            kind = props.get(key, {}).get("type", "string")
            if isinstance(value, (np.generic,)):
                value = value.item()
            if isinstance(value, str) and kind == "integer":
                value = int(value)
            elif isinstance(value, str) and kind == "number":
                value = float(value)
            elif isinstance(value, str) and kind == "boolean":
                value = {"true": True, "false": False}[value]
            record[key] = value
        out.append(record)
    return out


def read_back(path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pyogrio.read_dataframe(path, read_geometry=False)


@pytest.fixture(scope="module")
def stored(aura_run, tmp_path_factory):
    _, plan = aura_run
    registry = Registry(tmp_path_factory.mktemp("contract_registry"))
    return registry.get(registry.add(plan, effective_from=date(2027, 1, 1)))


@pytest.fixture(scope="module")
def exported(stored, tmp_path_factory):
    """Every format, with demand suppressed below 5."""
    return export_contract(stored, tmp_path_factory.mktemp("contract"), FORMATS, suppress_below=5)


def test_schemas_are_shipped_valid_and_versioned():
    folder = resources.files("sectorize").joinpath("store", "schemas")
    for name in ("sector_table", "postcode_table", "plan_metadata"):
        schema = json.loads(folder.joinpath(f"{name}.schema.json").read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["x-contract-version"] == CONTRACT_VERSION == "1.0"
    # the CSV conventions are documented in the schema itself
    assert "without byte-order mark" in load_schema("sector_table")["description"]
    assert "leading zeros" in load_schema("sector_table")["description"]


def test_schemas_reject_bad_rows():
    row = {"insee": "01001", "name": "L'Abergement-Clémenciat", "dep": "01", "group": "B", "sector": "B2",
           "worker_id": "TS04", "worker_name": "Travailleur social 04", "referrals": "<5"}
    check = validator("sector_table")
    assert check.is_valid([row])
    assert not check.is_valid([{**row, "insee": "1001"}])         # leading zero lost
    assert not check.is_valid([{**row, "referrals": 3.2}])         # an unsuppressed count
    assert not check.is_valid([{k: v for k, v in row.items() if k != "sector"}])


def test_every_format_validates_and_keeps_codes(stored, exported):
    files = sorted(p.name for p in exported.iterdir())
    assert files == sorted([f"{t}.{f}" for t in ("sector_table", "postcode_table") for f in FORMATS]
                           + ["plan_metadata.json", "routing_service.openapi.json"])
    sector_check, postcode_check = validator("sector_table"), validator("postcode_table")
    expected = sorted(stored.sectors["insee"])
    for fmt in FORMATS:
        sectors = read_back(exported / f"sector_table.{fmt}")
        postcodes = read_back(exported / f"postcode_table.{fmt}")
        assert list(sectors.columns) == [*SECTOR_COLUMNS, "referrals", "home_care"], fmt
        assert list(postcodes.columns) == POSTCODE_COLUMNS, fmt
        sector_check.validate(typed_records(sectors, "sector_table"))
        postcode_check.validate(typed_records(postcodes, "postcode_table"))
        assert sorted(sectors["insee"]) == expected, fmt
        assert "01001" in set(sectors["insee"]) and "01000" in set(postcodes["postcode"]), fmt
        assert sectors.set_index("insee").loc["01001", "dep"] == "01", fmt
    text = (exported / "sector_table.csv").read_bytes()
    assert not text.startswith(b"\xef\xbb\xbf") and text.startswith(b"insee,name,dep,group,sector,")
    assert b",true," in (exported / "postcode_table.csv").read_bytes()


def test_polygons_come_with_the_spatial_formats(stored, exported):
    for fmt in ("geojson", "gpkg"):
        frame = pyogrio.read_dataframe(exported / f"sector_table.{fmt}")
        assert frame.crs.to_epsg() == 4326 and len(frame) == len(stored.sectors)
        frame = frame.set_index("insee")
        # same commune, same polygon (GeoJSON keeps 6 decimals, ~0.1 m; the GeoPackage layer
        # stores a one-part polygon as a MultiPolygon, equal as a shape)
        ref = stored.geometry.loc[frame.index]
        same = frame.geometry.geom_equals_exact(ref, 1e-6) | frame.geometry.geom_equals(ref)
        assert same.all(), fmt


def test_postcode_candidates_share_the_population(stored, exported):
    table = read_back(exported / "postcode_table.parquet")
    original = stored.postcodes.set_index("postcode")
    assert set(table["postcode"]) == set(original.index)
    main = table.set_index("postcode")
    # the same main sector and share as the run's postcodes.csv
    assert (main["sector"] == original.loc[main.index, "sector"]).all()
    assert np.allclose(main["main_share"], original.loc[main.index, "main_share"], atol=1e-9)
    parts = table["candidates"].str.split("|")
    shares = parts.map(lambda p: [float(x.split(":")[1]) for x in p])
    assert np.allclose(shares.map(sum), 1, atol=0.002 * parts.map(len))
    assert (parts.map(lambda p: p[0].split(":")[0]) == table["sector"]).all()
    assert (table["spans_sectors"] == parts.map(len).gt(1)).all()
    assert table["spans_sectors"].any()
    assert (shares.map(lambda s: s == sorted(s, reverse=True))).all()
    # every sector a postcode's communes belong to is listed
    spans = original.loc[table["postcode"], "sectors"].str.split("|").map(set).to_numpy()
    assert (parts.map(lambda p: {x.split(":")[0] for x in p}).to_numpy() == spans).all()


def test_metadata_describes_the_plan(stored, exported):
    meta = json.loads((exported / "plan_metadata.json").read_text(encoding="utf-8"))
    validator("plan_metadata").validate(meta)
    assert meta["plan_id"] == stored.id and meta["contract_version"] == "1.0"
    assert meta["effective_from"] == "2027-01-01" and meta["effective_to"] is None
    assert meta["vintage"] == "COG 2026" and meta["input_hash"] == stored.input_hash
    assert meta["solver"]["backend"] == stored.solve["backend"]
    assert meta["suppression"] == {"threshold": 5, "label": "<5", "columns": ["referrals", "home_care"]}
    assert set(meta["columns"]["sector_table"]) == {*SECTOR_COLUMNS, "referrals", "home_care"}
    assert all(meta["columns"]["postcode_table"].values())


def test_demand_leaves_only_suppressed(stored, exported, tmp_path):
    plain = export_contract(stored, tmp_path, ("csv",))
    header = (plain / "sector_table.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == ",".join(SECTOR_COLUMNS)                       # no demand, no workload, no travel
    meta = json.loads((plain / "plan_metadata.json").read_text(encoding="utf-8"))
    assert meta["suppression"] is None
    validator("plan_metadata").validate(meta)

    table = read_back(exported / "sector_table.csv").set_index("insee")
    source = stored.sectors.set_index("insee")
    for column in ("referrals", "home_care"):
        small = source[column] < 5
        assert small.any() and (~small).any()
        assert (table.loc[small[small].index, column] == "<5").all()
        shown = table.loc[small[~small].index, column].astype(int)
        assert (shown >= 5).all()
        assert np.allclose(shown, np.floor(source.loc[shown.index, column] + 0.5))


def test_exports_never_overwrite_and_fail_cleanly(stored, tmp_path):
    first = export_contract(stored, tmp_path, "csv")
    second = export_contract(stored, tmp_path, "csv")
    assert first.name == stored.id and second.name == f"{stored.id}-2"
    with pytest.raises(ValueError, match="ods"):
        export_contract(stored, tmp_path / "bad", ("csv", "ods"))
    with pytest.raises(ValueError, match="suppress_below"):
        export_contract(stored, tmp_path / "bad", "csv", suppress_below=0)
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


# --------------------------------------------------------------------------- privacy


def test_suppress_small_rules():
    table = pd.DataFrame({"insee": ["01001", "01002", "01004", "01005"], "referrals": [0.0, 4.99, 5.0, 12.5],
                          "home_care": [7, 1, 3, 40]})
    kept = table.copy()
    out = suppress_small(table, ["referrals", "home_care"])
    pd.testing.assert_frame_equal(table, kept)                       # input untouched
    assert out["referrals"].tolist() == ["<5", "<5", "5", "13"]
    assert out["home_care"].tolist() == ["7", "<5", "<5", "40"]
    assert out["insee"].tolist() == ["01001", "01002", "01004", "01005"]
    assert suppress_small(table, ["home_care"], threshold=11)["home_care"].tolist() == ["<11", "<11", "<11", "40"]


def test_suppress_small_refuses_what_is_not_a_count():
    with pytest.raises(ValueError, match=r"'referrals', row 1"):
        suppress_small(pd.DataFrame({"referrals": [1.0, np.nan]}), ["referrals"])
    with pytest.raises(ValueError, match=r"row 0.*-2"):
        suppress_small(pd.DataFrame({"referrals": [-2]}), ["referrals"])
    with pytest.raises(ValueError, match="not in the table"):
        suppress_small(pd.DataFrame({"referrals": [1]}), ["home_care"])
    with pytest.raises(ValueError, match="threshold"):
        suppress_small(pd.DataFrame({"referrals": [1]}), ["referrals"], threshold=0)


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=30),
       st.integers(min_value=1, max_value=20))
def test_suppress_small_never_shows_a_small_count(values, threshold):
    out = suppress_small(pd.DataFrame({"n": values}), ["n"], threshold)["n"]
    for value, text in zip(values, out):
        if value < threshold:
            assert text == f"<{threshold}"
        else:
            assert int(text) >= threshold and abs(int(text) - value) <= 0.5
