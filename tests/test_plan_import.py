"""``sectorize plans import``: an existing assignment table brought in as a full, checked plan
(the baseline of a re-run), and every way a hand-made table can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sectorize.cli import main
from sectorize.config.scenario import default_scenario
from sectorize.pipeline.import_plan import ImportTableError, import_plan, read_assignment
from sectorize.store.registry import Registry


@pytest.fixture(scope="module")
def table(aura_run) -> pd.DataFrame:
    """The AURA plan of ``aura_run`` as a manager's table: code, sector, worker, name (text)."""
    folder, _ = aura_run
    sectors = pd.read_csv(folder / "sectors.csv", sep=";", dtype=str, encoding="utf-8-sig")
    return pd.DataFrame({"Code INSEE": sectors["insee"], "Commune": sectors["name"],
                         "Secteur": sectors["sector"], "TS": sectors["worker_id"],
                         "Groupe": sectors["group"]})


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, sep=";", index=False, encoding="utf-8-sig")
    return path


@pytest.fixture(scope="module")
def keys(aura_lyon):
    return aura_lyon.units.index


def problems(path: Path, keys, **columns) -> str:
    with pytest.raises(ImportTableError) as err:
        read_assignment(path, keys, **{"key": "Code INSEE", "sector": "Secteur", **columns})
    assert "nothing was imported" in str(err.value) and str(path) in str(err.value)
    return str(err.value)


def test_import_rebuilds_the_plan_and_stores_it(aura_run, table, tmp_path, capsys):
    """A run's own table, imported, gives the same plan: sectors, groups, centres, caseloads; the run
    folder has the KPIs and the map; the registry stores and publishes it."""
    folder, plan = aura_run
    csv = write(table[["Code INSEE", "Commune", "Secteur", "TS"]], tmp_path / "secteurs.csv")
    reg = tmp_path / "reg"
    code = main(["plans", "import", str(csv), "--key", "code insee", "--sector", "Secteur", "--worker", "TS",
                 "--out", str(tmp_path / "out"), "--registry", str(reg), "--effective-from", "2026-01-01",
                 "--note", "hand-made plan of 2026"])
    out = capsys.readouterr().out
    assert code == 0, out
    written = Path(out.split("written: ")[1].split()[0])
    plan_id = out.split("stored: ")[1].split()[0]
    for name in ("map.html", "kpi.json", "kpi.txt", "sectors.csv", "workers.csv", "postcodes.csv", "run.json"):
        assert (written / name).is_file(), name
    facts = json.loads((written / "run.json").read_text(encoding="utf-8"))
    assert facts["valid"] is True and facts["solve"]["status"] == "imported"
    assert len(facts["inputs"]["assignment"]) == 64
    assert "All checks passed" in out and f"published: {plan_id} in force from 2026-01-01" in out

    stored = Registry(reg).get(plan_id)
    assert stored.valid and stored.effective_from.isoformat() == "2026-01-01" and stored.note == "hand-made plan of 2026"
    original = plan.units[["sector", "worker_id", "group"]]
    mine = stored.sectors.set_index("insee")[["sector", "worker_id", "group"]]
    pd.testing.assert_frame_equal(mine.loc[original.index], original, check_names=False)
    kept = stored.workers.set_index("worker_id")
    theirs = plan.workers.set_index("worker_id")
    assert kept.loc[theirs.index, "centre"].astype(str).tolist() == theirs["centre"].astype(str).tolist()
    assert kept.loc[theirs.index, "target"].tolist() == pytest.approx(theirs["target"].tolist(), abs=1e-3)
    assert Registry(reg).effective_on("2026-06-01").id == plan_id


def test_sectors_named_by_worker_and_repaired_codes(aura_run, table, tmp_path, keys):
    """Without --worker each sector names its worker; codes that lost their zero, old codes of merged
    communes and Lyon for its arrondissements are read with a note."""
    frame = table.copy()
    frame["Secteur"] = frame["TS"]
    frame.loc[frame["Code INSEE"] == "01004", "Code INSEE"] = "1004"        # lost its leading zero
    frame.loc[frame["Code INSEE"] == "01187", "Code INSEE"] = "01330"       # an old code of 01187
    lyon = frame["Code INSEE"].str.startswith("6938")
    sectors_of_lyon = set(frame.loc[lyon, "Secteur"])
    if len(sectors_of_lyon) == 1:   # Lyon in one sector: one row 69123 stands for the 9 arrondissements
        frame = pd.concat([frame[~lyon], pd.DataFrame([{"Code INSEE": "69123", "Secteur": sectors_of_lyon.pop()}])])
    assigned, notes = read_assignment(write(frame, tmp_path / "t.csv"), keys, key="#1", sector="secteur")
    assert list(assigned.index) == list(keys)
    assert assigned.loc["01004", "sector"] == table.set_index("Code INSEE").loc["01004", "TS"]
    assert assigned.loc["01187", "code"] == "01330"
    assert any("leading zero" in n for n in notes) and any("01330 -> 01187" in n for n in notes)


def test_table_problems_are_each_named_with_line_and_column(table, tmp_path, keys):
    frame = table[["Code INSEE", "Secteur", "TS"]].copy()
    # line numbers: the header is line 1, row i of the frame is line i + 2
    frame.loc[3, "Code INSEE"] = "99999"                 # no such commune
    frame.loc[4, "Code INSEE"] = "ABC"                   # not a code
    frame.loc[5, "Code INSEE"] = frame.loc[6, "Code INSEE"]   # twice (and row 5's commune goes missing)
    frame.loc[7, "Secteur"] = ""                         # no sector
    frame.loc[8, "Code INSEE"] = ""                      # no code
    dropped = frame.loc[10:12, "Code INSEE"].tolist()
    frame = frame.drop(index=[10, 11, 12])
    text = problems(write(frame, tmp_path / "bad.csv"), keys)
    assert "line 5, column 'Code INSEE': 99999 is not a commune of the region" in text
    assert "line 6, column 'Code INSEE': 'ABC' is not an INSEE code" in text
    assert f"line 8, column 'Code INSEE': commune {frame.loc[6, 'Code INSEE']} appears twice (lines 7 and 8)" in text
    assert f"line 9, column 'Secteur': commune {frame.loc[7, 'Code INSEE']} has no sector" in text
    assert "line 10, column 'Code INSEE': the INSEE code is empty" in text
    missing = text.split("missing from the table, e.g. ")[1]
    assert "commune(s) of the region are missing" in text and all(code in missing for code in dropped)

    # columns that do not exist, or match twice
    with pytest.raises(ImportTableError, match=r"no column match --sector 'Sector'.*'Secteur'"):
        read_assignment(tmp_path / "bad.csv", keys, key="Code INSEE", sector="Sector")
    with pytest.raises(ImportTableError, match=r"several columns .* match --key"):
        read_assignment(tmp_path / "bad.csv", keys, key="*", sector="Secteur")
    with pytest.raises(ImportTableError, match="does not exist"):
        read_assignment(tmp_path / "none.csv", keys, key="Code INSEE", sector="Secteur")


def test_sectors_workers_and_groups_that_do_not_fit_the_team(table, tmp_path):
    scenario = default_scenario()
    args = {"key": "Code INSEE", "sector": "Secteur", "worker": "TS"}
    cases = []
    frame = table.copy()
    a1 = frame.index[frame["Secteur"] == frame.loc[0, "Secteur"]]
    frame.loc[a1[0], "TS"] = ""                                             # a sector row without worker
    cases.append((frame, args, rf"commune {frame.loc[a1[0], 'Code INSEE']} \(sector '{frame.loc[0, 'Secteur']}'\) has no worker"))
    frame = table.copy()
    frame.loc[a1[1], "TS"] = "TS99"                                         # not in the team
    cases.append((frame, args, r"worker 'TS99' \(sector .*\) is not in the team \(TS01"))
    frame = table.copy()
    other = frame.loc[frame["TS"] != frame.loc[a1[0], "TS"], "TS"].iloc[0]
    frame.loc[a1[1], "TS"] = other                                          # two workers in one sector
    cases.append((frame, args, rf"sector '{frame.loc[0, 'Secteur']}' names 2 workers"))
    frame = table.copy()
    gone = frame["TS"] == "TS05"
    heir = frame.loc[~gone].iloc[0]
    frame.loc[gone, ["Secteur", "TS"]] = [heir["Secteur"], heir["TS"]]      # TS05's sector merged into another
    cases.append((frame, args, r"TS05 \(Travailleur social 05\) of the team have no sector"))
    frame = table.copy()
    cases.append((frame, {"key": "Code INSEE", "sector": "Commune"},           # sectors that are no worker
                  r"sector '.*' is not a worker of the team .* --worker COLUMN"))
    frame = table.copy()
    frame.loc[a1[1], "Groupe"] = "Z"
    cases.append((frame, {**args, "group": "Groupe"}, r"group 'Z' \(sector .*\) is not a group of the scenario"))
    for i, (frame, columns, pattern) in enumerate(cases):
        path = write(frame, tmp_path / f"case{i}.csv")
        with pytest.raises(ImportTableError, match=pattern):
            import_plan(path, scenario, **columns)


def test_an_invalid_hand_made_plan_is_refused_or_kept_as_a_baseline(table, tmp_path, capsys):
    """Clermont-Ferrand in a Lyon sector: refused with the reasons and nothing written; with
    --allow-invalid, written and stored marked invalid (exit 1), never published."""
    frame = table[["Code INSEE", "Secteur", "TS"]].copy()
    lyon = frame.set_index("Code INSEE").loc["69388"]
    frame.loc[frame["Code INSEE"] == "63113", ["Secteur", "TS"]] = [lyon["Secteur"], lyon["TS"]]
    csv = write(frame, tmp_path / "bad.csv")
    out, reg = tmp_path / "out", tmp_path / "reg"
    command = ["plans", "import", str(csv), "--key", "Code INSEE", "--sector", "Secteur", "--worker", "TS",
               "--out", str(out), "--registry", str(reg)]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "fails the independent checks" in err and lyon["Secteur"] in err and "--allow-invalid" in err
    assert not out.exists() and not reg.exists()
    assert main([*command, "--allow-invalid", "--effective-from", "2026-01-01"]) == 2
    assert "never published" in capsys.readouterr().err and not out.exists() and not reg.exists()

    assert main([*command, "--allow-invalid"]) == 1
    printed = capsys.readouterr().out
    plan_id = printed.split("stored: ")[1].split()[0]
    assert "marked invalid" in printed
    assert Registry(reg).get(plan_id).valid is False
    assert main(["plans", "publish", plan_id, "--effective-from", "2026-01-01", "--registry", str(reg)]) == 2
    assert "never published" in capsys.readouterr().err


def test_import_cli_hostile_arguments(table, tmp_path, capsys):
    csv = write(table, tmp_path / "t.csv")
    reg = tmp_path / "reg"
    base = ["plans", "import", str(csv), "--sector", "Secteur", "--registry", str(reg), "--out", str(tmp_path / "o")]
    assert main([*base, "--key", "Code INSEE", "--worker", "Nope"]) == 2
    assert "no column match --worker 'Nope'" in capsys.readouterr().err
    assert main(["plans", "import", str(tmp_path / "none.csv"), "--sector", "S", "--registry", str(reg)]) == 2
    assert "no such table file" in capsys.readouterr().err
    assert main([*base, "--key", "Code INSEE", "--team", str(tmp_path / "team.toml")]) == 2
    assert "team.toml" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main([*base, "--key", "Code INSEE", "--effective-from", "2027-13-01"])
    assert exit_.value.code == 2 and "--effective-from" in capsys.readouterr().err
    assert not reg.exists() and not (tmp_path / "o").exists()


def test_excel_workbook_with_codes_stored_as_numbers(table, tmp_path, keys):
    """An .xlsx export: codes stored as numbers (leading zeros lost), the table on a named sheet;
    problems name the workbook, the sheet and the row."""
    frame = table[["Code INSEE", "Secteur", "TS"]].copy()
    numeric = frame["Code INSEE"].str.fullmatch(r"\d{5}")
    frame["Code INSEE"] = frame["Code INSEE"].where(~numeric, pd.to_numeric(frame["Code INSEE"], errors="coerce"))
    path = tmp_path / "secteurs.xlsx"
    with pd.ExcelWriter(path) as book:
        pd.DataFrame({"lisez-moi": ["plan de sectorisation 2026"]}).to_excel(book, sheet_name="Notes", index=False)
        frame.to_excel(book, sheet_name="Secteurs", index=False)
    assigned, notes = read_assignment(path, keys, key="Code INSEE", sector="Secteur", worker="TS", sheet="Secteurs")
    assert list(assigned.index) == list(keys)
    assert assigned.loc["01001", "sector"] == table.set_index("Code INSEE").loc["01001", "Secteur"]
    assert any("leading zero" in n for n in notes)

    frame.loc[4, "Code INSEE"] = frame.loc[3, "Code INSEE"]
    with pd.ExcelWriter(path) as book:
        frame.to_excel(book, sheet_name="Secteurs", index=False)
    text = problems(path, keys, sheet="Secteurs")
    assert "sheet 'Secteurs'" in text and "row 6, column 'Code INSEE'" in text and "appears twice (rows 5 and 6)" in text
