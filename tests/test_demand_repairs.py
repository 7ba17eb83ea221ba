"""Issue 18, "the manager's year": repairs with consent, every problem in one pass, excluded
referrals by department, demand columns by role; on hand-written files and on the messy
exports of :mod:`messy_export`."""

from __future__ import annotations

import pandas as pd
import pytest
from messy_export import OLD_CODES, write_messy_export

from geodata.codes import department_of
from geodata.demand import (
    EXCLUDED_COLUMNS,
    OUTSIDE_REGION,
    TOTAL_ROW,
    DemandError,
    excluded_by_department,
    find_column,
    is_total_label,
    read_demand,
    synthetic_demand,
)

ROLES = {"referrals": "Nb signalements *", "home_care": "Patients HAD *", "follow_up": "Suivis actifs *"}


def _write(tmp_path, text: str, name: str = "demand.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _problems(error: pytest.ExceptionInfo) -> list[str]:
    return error.value.problems["kind"].tolist()


# --------------------------------------------------------------------------
# Each repair, without and with consent
# --------------------------------------------------------------------------


def test_lost_leading_zero_insee_and_postcode(aura, tmp_path):
    path = _write(tmp_path, "insee;referrals\n1053;4\n15014;1\n")
    with pytest.raises(DemandError) as error:
        read_demand(path, aura)
    message = str(error.value)
    assert "line 2, column 'insee': INSEE code '1053' has 4 digits" in message and "'01053'" in message
    assert "--repair (demand.repair = true)" in message
    assert error.value.problems.at[0, "repairable"]
    demand = read_demand(path, aura, repair=True)
    assert demand.table.loc["01053", "referrals"] == 4.0
    [row] = demand.repairs.itertuples()
    assert (row.line, row.original, row.repaired, row.rule) == (2, "1053", "01053", "leading zero restored")
    assert any(n.startswith("demand repaired (leading zero restored): 1 row(s): line 2 '1053' -> '01053'")
               for n in demand.notes)

    postcodes = _write(tmp_path, "Code postal;referrals\n1000;6\n", name="cp.csv")
    with pytest.raises(DemandError, match=r"postcode '1000' has 4 digits"):
        read_demand(postcodes, aura)
    demand = read_demand(postcodes, aura, repair=True)
    assert demand.table["referrals"].sum() == pytest.approx(6.0)
    assert demand.table.loc["01053", "referrals"] > 0  # 01000 Bourg-en-Bresse (and Saint-Denis-lès-Bourg)


TOTALS = (
    "Code INSEE;Commune;referrals\n"
    "01053;Bourg-en-Bresse;4\n"
    "38185;Grenoble;10\n"
    ";Total Isère;10\n"           # empty key, label says total
    "38;Total Isère;10\n"         # a department code as key, label says total
    "Sous-total;;14\n"
    "TOTAL;;14\n"
    "Total général;;14\n"
    "73065;Totalité fictive;2\n"  # a valid code is never a total row, whatever its label
)


def test_total_rows(aura, tmp_path):
    path = _write(tmp_path, TOTALS)
    with pytest.raises(DemandError) as error:
        read_demand(path, aura)
    assert _problems(error) == ["total row"] * 5
    assert error.value.problems["line"].tolist() == [4, 5, 6, 7, 8]
    assert "delete total and subtotal rows" in str(error.value)
    demand = read_demand(path, aura, repair=True)
    assert demand.table["referrals"].sum() == 16.0
    assert demand.table.loc["73065", "referrals"] == 2.0
    totals = demand.excluded.loc[demand.excluded["reason"] == TOTAL_ROW]
    assert totals["code"].tolist() == ["Total Isère", "38 Total Isère", "Sous-total", "TOTAL", "Total général"]
    assert totals["department"].tolist() == [""] * 5 and totals["referrals"].sum() == 62.0
    assert (demand.repairs["rule"] == "total row dropped").sum() == 5
    assert excluded_by_department(demand).empty  # total rows are no referrals
    assert is_total_label("TOTAL") and is_total_label("Sous total 38") and not is_total_label("Totalité")


def test_lyon_twice_in_the_communes_variant_is_summed(aura, tmp_path):
    path = _write(tmp_path, "insee;referrals\n69123;10\n69381;2\n69388;5\n")
    with pytest.raises(DemandError) as error:
        read_demand(path, aura)
    assert _problems(error) == ["Lyon given twice"]
    demand = read_demand(path, aura, repair=True)
    assert demand.table.loc["69123", "referrals"] == 17.0
    assert sorted(demand.repairs["original"]) == ["69381", "69388"]
    assert set(demand.repairs["repaired"]) == {"69123"}


def test_lyon_twice_in_the_arrondissements_variant_is_split(aura_lyon, tmp_path):
    path = _write(tmp_path, "insee;referrals\n69123;90\n69381;2\n")
    with pytest.raises(DemandError, match="Lyon given twice"):
        read_demand(path, aura_lyon)
    demand = read_demand(path, aura_lyon, repair=True)
    arr = [f"6938{i}" for i in range(1, 10)]
    population = aura_lyon.units.loc[arr, "population"].astype(float)
    expected = 90 * population / population.sum()
    expected["69381"] += 2
    assert demand.table.loc[arr, "referrals"].to_numpy() == pytest.approx(expected.to_numpy())
    assert demand.table["referrals"].sum() == pytest.approx(92.0)
    assert demand.repairs["original"].tolist() == ["69123"]


def test_old_codes_are_mapped_and_summed(aura, tmp_path):
    path = _write(tmp_path, "insee;referrals\n69152;3\n69149;4\n42109;1\n1330;2\n")
    with pytest.raises(DemandError) as error:
        read_demand(path, aura)
    # 1330 is both a lost zero and an old code: both reported in the one pass
    assert sorted(_problems(error)) == ["lost leading zero", "old code", "old code", "old code"]
    assert "69152 (Pierre-Bénite) merged into 69149" in str(error.value)
    demand = read_demand(path, aura, repair=True)
    assert demand.table.loc["69149", "referrals"] == 7.0
    assert demand.table.loc["42084", "referrals"] == 1.0 and demand.table.loc["01187", "referrals"] == 2.0
    mapped = demand.repairs.loc[demand.repairs["rule"] == "old code mapped"]
    assert dict(zip(mapped["original"], mapped["repaired"])) == OLD_CODES


def test_outside_the_region(aura, tmp_path):
    path = _write(tmp_path, "insee;referrals;home_care\n01001;1;0\n71076;3;1\n2A004;2;0\n97105;1;1\n")
    with pytest.raises(DemandError) as error:
        read_demand(path, aura)
    assert _problems(error) == ["outside the region"] * 3
    for demand in (read_demand(path, aura, repair=True), read_demand(path, aura, on_unknown="report")):
        excluded = demand.excluded
        assert list(excluded.columns) == [*EXCLUDED_COLUMNS, "referrals", "home_care"]
        assert excluded["department"].tolist() == ["71", "2A", "971"]
        assert set(excluded["reason"]) == {OUTSIDE_REGION}
        assert demand.table["referrals"].sum() == 1.0
        by_dep = excluded_by_department(demand)
        assert by_dep.loc["71", "referrals"] == 3.0 and by_dep.loc["71", "rows"] == 1
        assert by_dep["home_care"].sum() == 2.0
    assert department_of("20200", "postcode") == "2B" and department_of("01330") == "01"


def test_unknown_codes_need_on_unknown_report_even_with_repair(aura, tmp_path):
    path = _write(tmp_path, "insee;referrals\n01001;1\n01999;2\n99999;3\n")
    with pytest.raises(DemandError) as error:
        read_demand(path, aura, repair=True)
    assert _problems(error) == ["unknown code", "unknown code"]
    demand = read_demand(path, aura, on_unknown="report")
    assert demand.excluded["reason"].tolist() == ["unknown code"] * 2
    assert demand.excluded["department"].tolist() == ["01", "99"]


# --------------------------------------------------------------------------
# Every problem in one pass
# --------------------------------------------------------------------------

ALL_KINDS = (
    "insee;IPP;referrals;home_care\n"
    "01001;;1;0\n"
    "15014;;abc;0\n"      # not a number
    "01001;;2;0\n"        # duplicate of line 2
    "63113;;-3;0\n"       # negative
    "42218;;4;\n"         # missing count
    "99999;;1;0\n"        # unknown code
    "Lyon;;1;0\n"         # malformed code
    ";;1;0\n"             # missing code
    "1053;;1;0\n"         # lost leading zero
    "71076;;1;0\n"        # outside the region
    "TOTAL;;14;0\n"       # total row
)


def test_one_error_lists_every_kind_and_writes_the_full_list(aura, tmp_path):
    path = _write(tmp_path, ALL_KINDS, name="export 2025.csv")
    folder = tmp_path / "problems"
    with pytest.raises(DemandError) as error:
        read_demand(path, aura, problems_dir=folder)
    kinds = set(_problems(error))
    assert kinds == {"patient-level column", "count not a number", "duplicated code", "negative count",
                     "missing count", "unknown code", "malformed code", "missing code", "lost leading zero",
                     "outside the region", "total row"}
    message = str(error.value)
    assert message.startswith(f"{path}: 11 problems in the demand file")
    assert "line 3, column 'referrals': 'abc' is not a number" in message
    assert "line 1, column 'IPP': looks like patient-level data" in message
    assert message.count("\n  line ") == 10  # the first ten, then the file
    written = error.value.problems_file
    assert written is not None and written.parent == folder and written.name.startswith("export 2025.problems-")
    assert f"the full list is in {written}" in message
    listed = pd.read_csv(written, sep=";", dtype=str, encoding="utf-8-sig")
    assert len(listed) == 11 and set(listed["kind"]) == kinds
    assert "line 12, column 'insee': 'TOTAL' is a total or subtotal row, not a commune" in set(listed["message"])
    for kind in ("duplicated code", "negative count", "unknown code", "patient-level column"):
        assert f"  - {kind}: " in message  # what to do, per kind
    # never overwritten: a second failure writes a second file
    with pytest.raises(DemandError) as again:
        read_demand(path, aura, problems_dir=folder)
    assert again.value.problems_file != written and written.is_file()
    assert len(list(folder.glob("*.csv"))) == 2 and not list(folder.glob(".*"))


def test_a_short_list_is_all_in_the_message(aura, tmp_path):
    path = _write(tmp_path, "insee;referrals\n01001;x\n15014;-1\n")
    with pytest.raises(DemandError) as error:
        read_demand(path, aura, problems_dir=tmp_path / "p")
    assert error.value.problems_file is None and not (tmp_path / "p").exists()
    assert "count not a number: 1, negative count: 1" in str(error.value)


# --------------------------------------------------------------------------
# Demand columns by role
# --------------------------------------------------------------------------

HEADERS_2025 = "Code INSEE;Commune;Nb signalements 2025;Patients HAD 2025;Suivis actifs 2025\n"


def test_roles_by_name_pattern_and_position(aura, tmp_path):
    path = _write(tmp_path, HEADERS_2025 + "01053;Bourg;4;1;3\n15014;Aurillac;2;0;1\n", encoding="cp1252")
    demand = read_demand(path, aura, columns={"referrals": "nb signalements 2025",  # name, case ignored
                                              "home_care": "patients had *",         # pattern
                                              "follow_up": "#5"})                    # position
    assert list(demand.table.columns) == ["referrals", "home_care", "follow_up"]
    assert demand.table.loc["01053"].tolist() == [4.0, 1.0, 3.0]
    assert demand.headers == {"referrals": "Nb signalements 2025", "home_care": "Patients HAD 2025",
                              "follow_up": "Suivis actifs 2025"}
    assert find_column(["Année", "Suivis actifs 2026"], "SUIVIS ACTIFS *") == ["Suivis actifs 2026"]
    assert find_column(["a", "b"], "#3") == []


@pytest.mark.parametrize("spec, expected", [
    ("* 2025", "matches 3 columns ['Nb signalements 2025', 'Patients HAD 2025', 'Suivis actifs 2025']"),
    ("Nb orientations *", "matches no column; the columns are ['Code INSEE', 'Commune'"),
    ("#9", "position '#9', which matches no column"),
    ("#1", "is 'Code INSEE', which holds codes"),
])
def test_role_errors_list_the_headers(aura, tmp_path, spec, expected):
    path = _write(tmp_path, HEADERS_2025 + "01053;Bourg;4;1;3\n", encoding="cp1252")
    with pytest.raises(DemandError) as error:
        read_demand(path, aura, columns={"referrals": spec})
    assert expected in str(error.value) and "'referrals'" in str(error.value)
    assert _problems(error) == ["column"]


def test_two_roles_cannot_share_a_column(aura, tmp_path):
    path = _write(tmp_path, HEADERS_2025 + "01053;Bourg;4;1;3\n", encoding="cp1252")
    with pytest.raises(DemandError, match="both name the column 'Nb signalements 2025'"):
        read_demand(path, aura, columns={"referrals": "#3", "home_care": "Nb signalements *"})


# --------------------------------------------------------------------------
# Messy exports (generated), this year and next
# --------------------------------------------------------------------------


@pytest.mark.parametrize("year, seed", [(2025, 0), (2026, 7)])
def test_messy_export_is_read_with_repair(aura, tmp_path, year, seed):
    export = write_messy_export(tmp_path / f"export_{year}.csv", aura, year=year, seed=seed)
    assert f"Nb signalements {year}" in export.path.read_bytes().decode("cp1252").splitlines()[0]
    with pytest.raises(DemandError) as error:
        read_demand(export.path, aura, columns=ROLES, problems_dir=tmp_path)
    kinds = set(_problems(error))
    assert kinds == {"lost leading zero", "old code", "total row", "Lyon given twice", "outside the region"}
    assert error.value.problems["repairable"].all()
    assert "Every problem above has an obvious fix" in str(error.value)
    demand = read_demand(export.path, aura, columns=ROLES, repair=True)
    got = demand.table.loc[demand.table.sum(axis=1) > 0]
    pd.testing.assert_frame_equal(got.sort_index(), export.by_commune, check_names=False)
    outside = excluded_by_department(demand)
    expected = export.outside.groupby("department")[["referrals", "home_care", "follow_up"]].sum()
    pd.testing.assert_frame_equal(outside[expected.columns], expected, check_names=False)
    lines = set(demand.repairs["line"])
    for kind in ("leading zero", "old code", "outside", "subtotal", "total"):
        assert set(export.lines(kind)) <= lines, kind


def test_messy_export_in_the_arrondissements_variant(aura, aura_lyon, tmp_path):
    export = write_messy_export(tmp_path / "export.csv", aura, seed=3)
    demand = read_demand(export.path, aura_lyon, columns=ROLES, repair=True)
    arr = [f"6938{i}" for i in range(1, 10)]
    assert demand.table.loc[arr, "referrals"].sum() == pytest.approx(export.by_commune.at["69123", "referrals"])
    assert demand.table["referrals"].sum() == pytest.approx(export.by_commune["referrals"].sum())


def test_synthetic_demand_has_an_empty_excluded_table(aura):
    demand = synthetic_demand(aura, seed=1)
    assert list(demand.excluded.columns) == [*EXCLUDED_COLUMNS, "referrals", "home_care"]
    assert demand.excluded.empty and demand.repairs.empty
