"""Demand: reading aggregated counts per commune, and the synthetic gravity model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import DATA

from geodata.demand import DemandError, HuffModel, demand_summary, read_demand, synthetic_demand
from geodata.reference import load_hospitals

# --------------------------------------------------------------------------
# Files as exported by office software
# --------------------------------------------------------------------------


def test_utf8_bom_semicolon_decimal_comma(aura):
    demand = read_demand(DATA / "demand_fr_excel.csv", aura)
    table = demand.table
    assert list(table.columns) == ["Orientations", "Patients HAD"]
    assert table.index.equals(aura.units.index)
    assert table.loc["42218", "Orientations"] == 1204.0  # "1 204" with a non-breaking space
    assert table.loc["42218", "Patients HAD"] == 12.25
    assert table.loc["69123", "Orientations"] == 312.5
    assert table["Orientations"].sum() == pytest.approx(1559.5)
    assert table["Patients HAD"].sum() == pytest.approx(134.75)
    assert (table.drop(index=["01001", "42218", "63113", "69123"]) == 0).all().all()
    assert "UTF-8 with BOM" in demand.notes[0] and "';'" in demand.notes[0]
    assert any("'Commune' ignored" in note for note in demand.notes)


def test_latin1_with_accented_name_column(aura):
    demand = read_demand(DATA / "demand_latin1.csv", aura)
    assert list(demand.table.columns) == ["referrals"]
    assert demand.table.loc[["42218", "73065", "38185"], "referrals"].tolist() == [25.0, 7.0, 14.0]
    assert "Latin-1" in demand.notes[0]
    assert any("'libellé' ignored" in note for note in demand.notes)


def test_comma_separator(aura):
    demand = read_demand(DATA / "demand_comma.csv", aura)
    assert demand.table.loc["74010", "referrals"] == 9.5
    assert demand.table.loc["01053", "home_care"] == 3.0
    assert demand.table["referrals"].sum() == 25.5
    assert "separator ','" in demand.notes[0]


def test_postcodes_split_by_population(aura):
    demand = read_demand(DATA / "demand_postcodes.csv", aura)
    table = demand.table["referrals"]
    assert table.sum() == pytest.approx(21.0)
    assert table["42218"] == 10.0 and table["69123"] == 5.0
    communes = ["01165", "01169", "01183", "01225", "01258", "01263"]
    population = aura.units.loc[communes, "population"]
    assert table[communes].to_numpy() == pytest.approx((6 * population / population.sum()).to_numpy())
    split = [note for note in demand.notes if note.startswith("postcode 01090")]
    assert len(split) == 1 and "6 communes" in split[0] and "01263 Montmerle-sur-Saône" in split[0]
    assert not any(note.startswith("postcode 42000") for note in demand.notes)


def test_postcodes_in_lyon_variant_go_to_the_arrondissement(aura_lyon):
    demand = read_demand(DATA / "demand_postcodes.csv", aura_lyon)
    assert demand.table.loc["69388", "referrals"] == 5.0
    assert demand.table["referrals"].sum() == pytest.approx(21.0)


def test_key_can_be_forced(aura):
    with pytest.raises(DemandError, match="no key column"):
        read_demand(DATA / "demand_postcodes.csv", aura, key="insee")
    demand = read_demand(DATA / "demand_postcodes.csv", aura, key="postcode")
    assert demand.table["referrals"].sum() == pytest.approx(21.0)


def test_columns_selects_workload(aura):
    demand = read_demand(DATA / "demand_comma.csv", aura, columns=["home_care"])
    assert list(demand.table.columns) == ["home_care"]
    with pytest.raises(DemandError, match="no column 'visits'"):
        read_demand(DATA / "demand_comma.csv", aura, columns=["visits"])


def test_parquet_rows_are_numbered(aura, tmp_path):
    path = tmp_path / "demand.parquet"
    frame = pd.DataFrame({"insee": ["01001", "15014"], "referrals": pd.array([2, None], dtype="Int64")})
    frame.to_parquet(path)
    with pytest.raises(DemandError, match=r"row 2, column 'referrals': the count is missing"):
        read_demand(path, aura)
    pd.DataFrame({"insee": [1001], "referrals": [2]}).to_parquet(path)
    with pytest.raises(DemandError, match=r"row 1, column 'insee': INSEE code '1001' has 4 digits"):
        read_demand(path, aura)
    path = tmp_path / "demand.parquet"
    pd.DataFrame({"insee": ["01001", "15014"], "referrals": [2, -1]}).to_parquet(path)
    with pytest.raises(DemandError, match=r"row 2, column 'referrals': negative count"):
        read_demand(path, aura)
    pd.DataFrame({"insee": ["01001", "15014"], "referrals": [2, 1]}).to_parquet(path)
    assert read_demand(path, aura).table["referrals"].sum() == 3


# --------------------------------------------------------------------------
# Lyon: commune or arrondissements
# --------------------------------------------------------------------------


def _write(tmp_path, text: str, name: str = "demand.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_arrondissements_merged_into_lyon(aura, tmp_path):
    path = _write(tmp_path, "insee;referrals\n69381;10\n69388;5\n01001;1\n")
    demand = read_demand(path, aura)
    assert demand.table.loc["69123", "referrals"] == 15.0
    assert any(
        "69381 (line 2), 69388 (line 3) merged into the commune of Lyon 69123" in note
        for note in demand.notes
    )


def test_lyon_split_into_arrondissements(aura_lyon, tmp_path):
    path = _write(tmp_path, "insee;referrals\n69123;100\n")
    demand = read_demand(path, aura_lyon)
    arr = [f"6938{i}" for i in range(1, 10)]
    population = aura_lyon.units.loc[arr, "population"]
    assert demand.table.loc[arr, "referrals"].to_numpy() == pytest.approx(
        (100 * population / population.sum()).to_numpy()
    )
    assert any(note.startswith("Lyon (69123, line 2) split") for note in demand.notes)


def test_lyon_and_arrondissements_together_is_an_error(aura, tmp_path):
    path = _write(tmp_path, "insee;referrals\n69123;10\n69381;2\n")
    with pytest.raises(DemandError, match=r"line 2 \(69123\); line 3 \(69381\)"):
        read_demand(path, aura)


# --------------------------------------------------------------------------
# Bad inputs: each error names the file, line, column and value
# --------------------------------------------------------------------------

BAD = {
    "unknown code": ("insee;referrals\n01001;1\n99999;2\n", [r"line 3", "'insee'", "99999", "on_unknown"]),
    "duplicate": (
        "insee;referrals\n01001;1\n15014;2\n01001;3\n",
        [r"lines 2, 4", "'insee'", "Aggregate them first"],
    ),
    "negative": (
        "insee;referrals\n01001;1\n15014;-2\n",
        [r"line 3, column 'referrals'", "negative count '-2'"],
    ),
    "non-numeric": (
        "insee;referrals\n15014;2\n01001;abc\n",
        [r"line 3, column 'referrals'", "'abc' is not a number"],
    ),
    "missing count": (
        "insee;referrals;home_care\n15014;2;1\n01001;1;\n",
        [r"line 3, column 'home_care'", "missing"],
    ),
    "decimal comma with comma separator": (
        'insee,referrals\n15014,2\n01001,"1,5"\n',
        [r"line 3, column 'referrals'", "'1,5'"],
    ),
    "lost leading zero": (
        "insee;referrals\n15014;1\n1001;2\n",
        [r"line 3, column 'insee'", "'1001'", "leading zero", "'01001'"],
    ),
    "missing code": ("insee;referrals\n;1\n", [r"line 2, column 'insee'", "missing"]),
    "not a code": ("insee;referrals\nLyon;1\n", [r"line 2, column 'insee'", "'LYON' is not an INSEE code"]),
    "no key column": ("commune;referrals\nLyon;1\n", [r"line 1", "no key column", "'commune'", "code_insee"]),
    "no workload column": ("insee;commune\n01001;Ambérieu\n", [r"line 1", "no workload column", "'commune'"]),
    "text in count column": (
        "insee;referrals\n01001;n/a\n",
        ["no workload column", "'referrals' (text, e.g. 'n/a' on line 2)"],
    ),
    "two key columns": ("insee;code_insee;referrals\n01001;01001;1\n", [r"line 1", "'insee', 'code_insee'"]),
    "empty file": ("", ["the file is empty"]),
    "header only": ("insee;referrals\n", ["no rows"]),
    "patient-level": ("insee;ipp;referrals\n01001;123;1\n", [r"line 1", "'ipp'", "patient-level"]),
    "ragged rows": ("insee;referrals\n01001;1;2;3\n", ["line 2", "as many fields as the header"]),
    "bad postcode": ("cp;referrals\n1090;1\n", [r"line 2, column 'cp'", "'1090'", "leading zero"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_explained(aura, tmp_path, case):
    text, expected = BAD[case]
    path = _write(tmp_path, text, name="bad input.csv")
    with pytest.raises(DemandError) as error:
        read_demand(path, aura)
    message = str(error.value)
    assert "bad input.csv" in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in: {message}"


def test_unsupported_file_type(aura, tmp_path):
    path = _write(tmp_path, "x", name="demand.ods")
    with pytest.raises(DemandError, match=r"demand\.ods.*save it as 'Excel workbook \(\.xlsx\)' or as 'CSV"):
        read_demand(path, aura)


def test_unknown_codes_reported_with_totals(aura, tmp_path):
    path = _write(tmp_path, "insee;referrals;home_care\n01001;1;0\n75056;4;1\n13055;2,5;0\n")
    demand = read_demand(path, aura, on_unknown="report")
    assert demand.table["referrals"].sum() == 1.0
    [summary] = [n for n in demand.notes if n.startswith("excluded from the demand")]
    assert "(outside the region): 2 code(s) (referrals=6.5, home_care=1)" in summary
    assert "13: referrals=2.5, home_care=0; 75: referrals=4, home_care=1" in summary
    [rows] = [n for n in demand.notes if n.startswith("rows outside the region")]
    assert "75056 (line 3: referrals=4, home_care=1)" in rows and "13055 (line 4" in rows
    excluded = demand.excluded
    assert excluded["code"].tolist() == ["75056", "13055"]
    assert excluded["department"].tolist() == ["75", "13"]
    assert set(excluded["reason"]) == {"outside the region"}
    assert excluded["referrals"].tolist() == [4.0, 2.5] and excluded["home_care"].tolist() == [1.0, 0.0]


def test_blank_lines_keep_spreadsheet_numbering(aura, tmp_path):
    path = _write(tmp_path, "insee;referrals\n01001;1\n\n15014;x\n\n")
    with pytest.raises(DemandError, match=r"line 4, column 'referrals'"):
        read_demand(path, aura)


# --------------------------------------------------------------------------
# Synthetic demand
# --------------------------------------------------------------------------


def test_synthetic_totals_and_integers(aura):
    demand = synthetic_demand(aura, seed=3)
    table = demand.table
    assert list(table.columns) == ["referrals", "home_care"]
    assert table.index.equals(aura.units.index)
    assert table["referrals"].sum() == 1350 and table["home_care"].sum() == 600
    assert (table >= 0).all().all() and (table % 1 == 0).all().all()
    assert "SYNTHETIC" in demand.notes[0] and "synthetic" in demand.source


def test_synthetic_is_deterministic_per_seed(aura):
    a = synthetic_demand(aura, seed=7).table
    b = synthetic_demand(aura, seed=7).table
    c = synthetic_demand(aura, seed=8).table
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_synthetic_concentrates_around_lyon(aura):
    demand = synthetic_demand(aura, seed=0)
    summary = demand_summary(demand, aura)
    rate = summary["referrals"] / summary["population"]
    assert rate["69"] > 2 * rate["15"]
    home = summary["home_care"] / summary["population"]
    assert home["69"] > home.drop("69").max()
    assert summary["population"].sum() == aura.units["population"].sum()


def test_synthetic_custom_totals_and_lyon_variant(aura_lyon):
    demand = synthetic_demand(aura_lyon, referrals_per_year=100.4, home_care_patients=0)
    assert demand.table["referrals"].sum() == 100 and demand.table["home_care"].sum() == 0
    assert demand.table.index.equals(aura_lyon.units.index)
    with pytest.raises(ValueError, match="referrals_per_year"):
        synthetic_demand(aura_lyon, referrals_per_year=-1)


def test_huff_model_shares():
    hospitals = load_hospitals().set_index("id", drop=False)
    model = HuffModel()
    lon = np.array([hospitals.at["clb", "lon"], hospitals.at["chu_clermont", "lon"], 2.44])
    lat = np.array([hospitals.at["clb", "lat"], hospitals.at["chu_clermont", "lat"], 44.93])  # Aurillac
    share = model.target_share(lon, lat, hospitals.reset_index(drop=True))
    assert ((share > 0) & (share < 1)).all()
    assert share[0] > 0.99 and share[1] < 0.1
    flat = HuffModel(distance_decay=0.0).target_share(lon, lat, hospitals.reset_index(drop=True))
    assert flat == pytest.approx(np.full(3, 3 / 6))  # A_clb / sum A when distance does not matter
    with pytest.raises(ValueError, match="distance_decay"):
        HuffModel(distance_decay=-1)
    with pytest.raises(ValueError, match="not a hospital id"):
        HuffModel(target="nowhere").target_share(lon, lat, hospitals)


def test_trailing_separators_and_crlf_are_accepted(aura, tmp_path):
    path = _write(tmp_path, "insee;referrals;;\r\n01001;2;;\r\n15014;3,5;;\r\n;;;\r\n")
    demand = read_demand(path, aura)
    assert demand.table["referrals"].sum() == 5.5


def test_utf16_export_is_read(aura, tmp_path):
    path = _write(tmp_path, "insee\treferrals\n01001\t2\n", encoding="utf-16")
    demand = read_demand(path, aura)
    assert demand.table.loc["01001", "referrals"] == 2.0
    assert "UTF-16" in demand.notes[0] and "separator tab" in demand.notes[0]


def test_header_problems(aura, tmp_path):
    twice = _write(tmp_path, "insee;referrals;referrals\n01001;1;2\n", name="twice.csv")
    with pytest.raises(DemandError, match=r"twice\.csv, line 1: column 'referrals' appears 2 times"):
        read_demand(twice, aura)
    unnamed = _write(tmp_path, "insee;referrals;\n01001;1;\n15014;1;7\n", name="unnamed.csv")
    with pytest.raises(DemandError, match=r"unnamed\.csv, line 3: column 3 has values but no name"):
        read_demand(unnamed, aura)
    with pytest.raises(DemandError, match="selects no workload column"):
        read_demand(DATA / "demand_comma.csv", aura, columns=[])
    with pytest.raises(DemandError, match="'insee' holds codes"):
        read_demand(DATA / "demand_comma.csv", aura, columns=["insee"])
