"""Issue 19, "Excel both ways": run folders and contract exports a French Excel opens without losing
the zeros of codes, one boolean word in every French CSV, and demand files given as .xlsx read with
the same checks and messages as CSV (rows as Excel numbers them, the sheet named)."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from messy_export import write_messy_export

from geodata.demand import DemandError, read_demand
from geodata.tables import as_number, decode
from sectorize.cli import main
from sectorize.config.scenario import ScenarioError, default_scenario
from sectorize.pipeline.inputs import load_demand, load_inputs
from sectorize.store.contract import export_contract, load_schema
from sectorize.store.export import write_csv, write_xlsx
from sectorize.store.registry import Registry
from sectorize.store.run_folder import read_table

ROLES = {"referrals": "Nb signalements *", "home_care": "Patients HAD *", "follow_up": "Suivis actifs *"}
CODE = re.compile(r"^[0-9][0-9AB][0-9]{3}$")


# --------------------------------------------------------------------------- helpers


def sheet_frame(ws) -> tuple[list[str], list[list[openpyxl.cell.cell.Cell]]]:
    """Header names and the data cells of a worksheet."""
    rows = list(ws.iter_rows())
    return [c.value for c in rows[0]], rows[1:]


def column_cells(ws, name: str) -> list:
    header, rows = sheet_frame(ws)
    i = header.index(name)
    return [row[i] for row in rows]


def with_saved_values(path: Path, values: dict[str, float], sheet_xml: str) -> None:
    """Store in ``path`` the value of each formula cell, as Excel does when it saves (openpyxl does not)."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    xml = parts[sheet_xml].decode("utf-8")
    for ref, value in values.items():
        xml, n = re.subn(rf'(<c r="{ref}"[^>]*>)<f>(.*?)</f><v\s*/>', rf"\g<1><f>\g<2></f><v>{value:g}</v>", xml)
        assert n == 1, ref
    parts[sheet_xml] = xml.encode("utf-8")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


def excel_copy(csv_path: Path, xlsx_path: Path, *, sheet: str = "Export", hidden_first: bool = True) -> Path:
    """What Excel makes of a French demand CSV: the same content as a workbook.

    A cell that reads as a number is a number cell (a code that lost its zero, ``1053``, is
    the number 1053; ``1 350`` is 1350), other cells text; the counts of every subtotal and
    of the TOTAL row are SUM formulas with the values Excel saves with them; the TOTAL label
    is merged over two cells; a hidden parameters sheet comes first.
    """
    text, _ = decode(csv_path.read_bytes())
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    book = openpyxl.Workbook()
    if hidden_first:
        book.active.title = "Paramètres"
        book.active.append(["année", 2025])
        book.active.sheet_state = "hidden"
        ws = book.create_sheet(sheet)
    else:
        ws = book.active
        ws.title = sheet
    saved: dict[str, float] = {}
    start, subtotals = 2, []
    for r, record in enumerate(records, start=1):
        subtotal = r > 1 and record[0] == "" and record[1].startswith("Total")
        total = r > 1 and record[0] == "TOTAL"
        for c, cell in enumerate(record, start=1):
            number = as_number(cell, True) if cell else None
            ref = f"{openpyxl.utils.get_column_letter(c)}{r}"
            if (subtotal or total) and c >= 3:
                letter = openpyxl.utils.get_column_letter(c)
                formula = (f"=SUM({letter}{start}:{letter}{r - 1})" if subtotal
                           else "=" + "+".join(f"{letter}{s}" for s in subtotals))
                ws.cell(row=r, column=c, value=formula)
                saved[ref] = number
            elif cell == "":
                continue
            elif number is not None and not (cell.startswith("0") and cell != "0"):
                ws.cell(row=r, column=c, value=int(number) if float(number).is_integer() else number)
            else:
                ws.cell(row=r, column=c, value=cell)
        if subtotal:
            subtotals.append(r)
            start = r + 1
        if total:
            ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=2)
    book.save(xlsx_path)
    index = book.sheetnames.index(sheet) + 1
    with_saved_values(xlsx_path, saved, f"xl/worksheets/sheet{index}.xml")
    return xlsx_path


def a_zip(path: Path, files: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)


def workbook(path: Path, rows: list[list], *, title: str = "Feuil1") -> Path:
    book = openpyxl.Workbook()
    book.active.title = title
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


# --------------------------------------------------------------------------- writing: run folders


@pytest.fixture(scope="module")
def run_book(aura_run):
    folder, plan = aura_run
    return folder, plan, openpyxl.load_workbook(folder / "sectors.xlsx")


def test_run_folder_workbook_keeps_every_code_as_text(run_book):
    folder, plan, book = run_book
    assert book.sheetnames == ["sectors", "postcodes", "workers", "README"]
    sectors = book["sectors"]
    cells = column_cells(sectors, "insee")
    csv_codes = pd.read_csv(folder / "sectors.csv", sep=";", dtype=str, encoding="utf-8-sig")["insee"].tolist()
    assert [c.value for c in cells] == csv_codes and len(cells) == len(plan.units) == 4033
    assert all(c.data_type == "s" and c.number_format == "@" and CODE.match(c.value) for c in cells)
    zeros = [c.value for c in cells if c.value.startswith("0")]
    assert len(zeros) > 1000 and "01001" in zeros          # the 1,043 codes a spreadsheet would turn into 1001
    for column in ("dep", "sector", "worker_id", "group"):
        assert all(c.data_type == "s" for c in column_cells(sectors, column)), column
    assert {c.value for c in column_cells(sectors, "dep")} >= {"01", "03", "07"}
    for column in ("referrals", "workload", "travel_min"):   # numbers stay numbers
        assert all(c.data_type == "n" and isinstance(c.value, (int, float)) for c in column_cells(sectors, column))
    workload = sum(c.value for c in column_cells(sectors, "workload"))
    assert workload == pytest.approx(plan.units["workload"].sum(), abs=1)
    for ws in (sectors, book["postcodes"], book["workers"]):
        assert ws.freeze_panes == "A2" and ws.auto_filter.ref.startswith("A1:")
        assert all(cell.font.bold for cell in next(ws.iter_rows(max_row=1)))
    assert 8 <= sectors.column_dimensions["A"].width <= 12                  # insee: 5 characters
    assert sectors.column_dimensions["B"].width >= 20                      # commune names
    postcodes = book["postcodes"]
    assert all(c.data_type == "s" and len(c.value) == 5 for c in column_cells(postcodes, "postcode"))
    assert {type(c.value) for c in column_cells(postcodes, "spans_sectors")} == {bool}
    assert all(c.data_type == "n" for c in column_cells(postcodes, "main_share"))
    workers = book["workers"]
    assert {type(c.value) for c in column_cells(workers, "within_tolerance")} == {bool}
    assert all(c.data_type == "n" for c in column_cells(workers, "caseload"))
    readme = {row[0]: row[1] for row in book["README"].iter_rows(min_row=2, values_only=True)}
    assert "1/0 in the CSV files" in readme["booleans"] and "01001" in readme["codes"]
    assert "sectors.xlsx" in json.loads((folder / "run.json").read_text(encoding="utf-8"))["files"]


def test_every_french_csv_writes_booleans_as_1_and_0(run_book):
    folder, plan, _ = run_book
    postcodes = pd.read_csv(folder / "postcodes.csv", sep=";", dtype=str, encoding="utf-8-sig")
    workers = pd.read_csv(folder / "workers.csv", sep=";", dtype=str, encoding="utf-8-sig")
    assert set(postcodes["spans_sectors"]) == {"1", "0"}
    assert set(workers["within_tolerance"]) <= {"1", "0"} and len(workers) == len(plan.workers)
    for name in ("sectors.csv", "postcodes.csv", "workers.csv"):
        cells = set(pd.read_csv(folder / name, sep=";", dtype=str, encoding="utf-8-sig").stack())
        assert not cells & {"True", "False", "true", "false"}, name
    # the run folder's reader gives booleans back, from these files and from earlier ones
    assert read_table(folder / "postcodes.csv", "postcodes")["spans_sectors"].dtype == bool
    old = io.BytesIO("\ufeffpostcode;spans_sectors\n01000;True\n01090;False\n".encode("utf-8"))
    assert read_table(old, "old postcodes")["spans_sectors"].tolist() == [True, False]
    buffer = io.BytesIO()
    write_csv(pd.DataFrame({"x": [True, None, False], "n": [1.5, 2.0, np.nan]}), buffer)
    assert buffer.getvalue().decode("utf-8-sig").splitlines() == ["x;n", "1;1,5", ";2,0", "0;"]


def test_write_xlsx_types_each_cell(tmp_path):
    path = tmp_path / "t.xlsx"
    table = pd.DataFrame({"insee": ["01001", "2A004"], "worker_name": ["=HYPERLINK(\"x\")", "Léa"],
                          "n": [3, np.nan], "share": [0.5, 1.0], "ok": [True, False], "note": ["a", None]})
    write_xlsx({"t": table}, path)
    ws = openpyxl.load_workbook(path)["t"]
    rows = list(ws.iter_rows(min_row=2))
    assert [(c.value, c.data_type) for c in rows[0]] == [
        ("01001", "s"), ('=HYPERLINK("x")', "s"), (3, "n"), (0.5, "n"), (True, "b"), ("a", "s")]
    assert [c.value for c in rows[1]] == ["2A004", "Léa", None, 1, False, None]
    with pytest.raises(ValueError, match="31 characters"):
        write_xlsx({"a/b": table}, tmp_path / "bad.xlsx")


# --------------------------------------------------------------------------- writing: the contract


def test_contract_xlsx_keeps_codes_and_follows_the_schemas(aura_run, tmp_path, capsys):
    _, plan = aura_run
    registry = Registry(tmp_path / "registry")
    plan_id = registry.add(plan, effective_from=date(2027, 1, 1))
    stored = registry.get(plan_id)
    folder = export_contract(stored, tmp_path / "exports", ("csv", "xlsx"), suppress_below=5)
    meta = json.loads((folder / "plan_metadata.json").read_text(encoding="utf-8"))
    assert "plan.xlsx" in meta["files"] and "sector_table.csv" in meta["files"]
    assert not (folder / "sector_table.xlsx").exists()
    book = openpyxl.load_workbook(folder / "plan.xlsx")
    assert book.sheetnames == ["sector_table", "postcode_table", "plan_metadata"]
    sectors = book["sector_table"]
    header, _ = sheet_frame(sectors)
    assert header == ["insee", "name", "dep", "group", "sector", "worker_id", "worker_name", "referrals", "home_care"]
    insee = column_cells(sectors, "insee")
    assert [c.value for c in insee] == sorted(stored.sectors["insee"])
    assert all(c.data_type == "s" and CODE.match(c.value) for c in insee) and insee[0].value == "01001"
    # every column the schema types as text is text; the suppressed counts too ('<5' or '12')
    for column in header:
        assert all(c.data_type == "s" for c in column_cells(sectors, column)), column
    postcodes = book["postcode_table"]
    spec = load_schema("postcode_table")["items"]["properties"]
    kinds = {"string": "s", "integer": "n", "number": "n", "boolean": "b"}
    for column in sheet_frame(postcodes)[0]:
        assert {c.data_type for c in column_cells(postcodes, column)} == {kinds[spec[column]["type"]]}, column
    first = pd.read_csv(folder / "postcode_table.csv", dtype=str, keep_default_na=False).iloc[0]
    assert [c.value for c in next(postcodes.iter_rows(min_row=2, max_row=2))][:2] == [first["postcode"], first["sector"]]
    items = {row[0]: row[1] for row in book["plan_metadata"].iter_rows(min_row=2, values_only=True)}
    assert items["plan_id"] == plan_id and items["contract_version"] == "1.0"
    assert items["columns.sector_table.insee"].startswith("INSEE code")
    assert sectors.freeze_panes == "A2"
    # from the command line
    assert main(["plans", "export", plan_id, "--registry", str(tmp_path / "registry"), "--out",
                 str(tmp_path / "cli"), "--format", "xlsx"]) == 0
    written = Path(capsys.readouterr().out.split("written: ")[1].strip())
    assert {p.name for p in written.iterdir()} >= {"plan.xlsx", "plan_metadata.json"}
    assert not any(p.suffix == ".csv" for p in written.iterdir())
    assert main(["plans", "export", plan_id, "--registry", str(tmp_path / "registry"), "--out",
                 str(tmp_path / "cli"), "--format", "xls"]) == 2
    assert "xls" in capsys.readouterr().err


# --------------------------------------------------------------------------- reading: same content, same demand


@pytest.fixture
def messy_pair(aura, tmp_path):
    export = write_messy_export(tmp_path / "signalements 2025.csv", aura, year=2025, seed=5)
    return export, excel_copy(export.path, tmp_path / "signalements 2025.xlsx")


def test_xlsx_and_csv_of_the_same_export_give_the_same_demand(aura, messy_pair):
    export, xlsx = messy_pair
    ws = openpyxl.load_workbook(xlsx)["Export"]
    assert ws["A2"].data_type == "n" and ws["A2"].value < 10000          # a code stored as a number, zero lost
    assert any(c.data_type == "f" for c in ws["C"])                      # subtotals are formulas
    from_csv = read_demand(export.path, aura, columns=ROLES, repair=True)
    from_xlsx = read_demand(xlsx, aura, columns=ROLES, repair=True)
    pd.testing.assert_frame_equal(from_csv.table, from_xlsx.table)
    pd.testing.assert_frame_equal(from_csv.excluded, from_xlsx.excluded)   # subtotals: their saved values
    unit = lambda text: re.sub(r"\b(rows?|lines?)\b", "line", text)  # noqa: E731  ("line 43" / "row 43")
    pd.testing.assert_frame_equal(from_csv.repairs.assign(detail=from_csv.repairs["detail"].map(unit)),
                                  from_xlsx.repairs.assign(detail=from_xlsx.repairs["detail"].map(unit)))
    assert from_xlsx.repairs["line"].tolist() == from_csv.repairs["line"].tolist()  # rows as Excel numbers them
    assert from_csv.headers == from_xlsx.headers
    assert from_xlsx.table["referrals"].sum() == pytest.approx(export.by_commune["referrals"].sum())
    assert [unit(n) for n in from_xlsx.notes[1:]] == [unit(n) for n in from_csv.notes[1:]]
    assert "sheet 'Export' (of 2: 'Paramètres', 'Export')" in from_xlsx.notes[0]
    # without repair: the same problems, on the same rows and columns
    with pytest.raises(DemandError) as as_csv:
        read_demand(export.path, aura, columns=ROLES)
    with pytest.raises(DemandError) as as_xlsx:
        read_demand(xlsx, aura, columns=ROLES)
    columns = ["line", "column", "value", "kind", "repairable"]
    pd.testing.assert_frame_equal(as_csv.value.problems[columns], as_xlsx.value.problems[columns])
    message = str(as_xlsx.value)
    assert message.startswith(f"{xlsx}, sheet 'Export': ")
    line = export.lines("leading zero")[0]
    assert f"\n  row {line}, column 'Code INSEE': INSEE code " in message and "lost its leading zero" in message


def test_xlsx_demand_gives_the_solver_the_same_inputs(aura, tmp_path):
    """A whole-region export (every commune with a referral, the codes of the Ain, Allier and Ardèche
    without their zero), as CSV and as XLSX: identical workload and cost arrays and demand hash, so
    the solver gets the same problem and gives the same plan for the same seed."""
    export = write_messy_export(tmp_path / "export.csv", aura, year=2025, seed=4, communes=None)
    xlsx = excel_copy(export.path, tmp_path / "export.xlsx", hidden_first=False)
    assert len(export.lines("leading zero")) > 100
    demand = {"source": "file", "columns": ROLES, "repair": True,
              "weights": {"referrals": 1.0, "home_care": 0.5}}
    base = default_scenario()
    a = load_inputs(base.with_(demand=demand | {"file": export.path}))
    b = load_inputs(base.with_(demand=demand | {"file": xlsx, "sheet": "export"}))
    assert np.array_equal(a.workload, b.workload) and np.array_equal(a.cost_weight, b.cost_weight)
    assert a.workload.sum() > 1000
    pd.testing.assert_frame_equal(a.demand.table, b.demand.table)
    assert a.demand.table.sort_index().to_csv() == b.demand.table.sort_index().to_csv()  # the demand input hash
    # a sheet kept from a year whose export was a workbook is ignored for this year's CSV, and noted
    kept = load_demand(base.with_(demand=demand | {"file": export.path, "sheet": "Export"}), a.region)
    assert kept.table.equals(a.demand.table) and "sheet 'Export' ignored: export.csv is not an Excel workbook" in kept.notes
    with pytest.raises(ScenarioError, match="sheet"):
        base.with_(demand={"sheet": "Export"})                              # the synthetic demand has no sheet


def test_validate_reads_an_xlsx_demand_with_its_sheet(aura, messy_pair, tmp_path, capsys):
    _, xlsx = messy_pair
    config = tmp_path / "scenario.toml"
    config.write_text(f'[demand]\nsource = "file"\nfile = "{xlsx.name}"\nsheet = "Export"\nrepair = true\n'
                      'weights = { referrals = 1.0, home_care = 0.5 }\n[demand.columns]\n'
                      'referrals = "Nb signalements *"\nhome_care = "Patients HAD *"\n'
                      '[team]\ndefault_base = "69123"\n[[team.workers]]\nid = "TS01"\nname = "A"\nfte = 1.0\n'
                      '[[team.workers]]\nid = "TS02"\nname = "B"\nfte = 0.8\n', encoding="utf-8")
    assert main(["validate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert 'sheet = "Export"' in out and "leading zero restored" in out


# --------------------------------------------------------------------------- reading: what a workbook holds


def test_codes_stored_as_numbers_are_treated_like_four_digit_codes(aura, tmp_path):
    path = workbook(tmp_path / "codes.xlsx", [["Code INSEE", "referrals"], [1001, 2], ["15014", 1], [1053, 1]])
    with pytest.raises(DemandError) as error:
        read_demand(path, aura)
    problems = error.value.problems
    assert problems["kind"].tolist() == ["lost leading zero", "lost leading zero"]
    assert problems["line"].tolist() == [2, 4] and problems["repairable"].all()
    assert "row 2, column 'Code INSEE': INSEE code '1001' has 4 digits" in str(error.value)
    demand = read_demand(path, aura, repair=True)
    assert demand.table.loc[["01001", "15014", "01053"], "referrals"].tolist() == [2.0, 1.0, 1.0]
    assert demand.repairs["line"].tolist() == [2, 4]
    assert any("row 2 '1001' -> '01001'" in n for n in demand.notes)
    # a number shown with the format 00000 reads as Excel shows it (and as its CSV export writes it)
    book = openpyxl.load_workbook(path)
    for cell in ("A2", "A4"):
        book.active[cell].number_format = "00000"
    book.save(path)
    assert read_demand(path, aura).table.loc[["01001", "01053"], "referrals"].tolist() == [2.0, 1.0]


def test_merged_total_and_blank_rows_as_in_csv(aura, tmp_path):
    path = workbook(tmp_path / "totals.xlsx", [["insee", "commune", "referrals"], ["01001", "Ambérieu", 2],
                                                [], ["15014", "Aurillac", 3.5], ["Total", None, 5.5]])
    book = openpyxl.load_workbook(path)
    book.active.merge_cells("A5:B5")
    book.save(path)
    with pytest.raises(DemandError, match=r"row 5, column 'insee': 'Total' is a total or subtotal row"):
        read_demand(path, aura)
    demand = read_demand(path, aura, repair=True)
    assert demand.table["referrals"].sum() == 5.5
    assert demand.excluded[["code", "reason", "referrals"]].values.tolist() == [["Total", "total row", 5.5]]


def test_formulas_are_read_as_their_saved_values(aura, tmp_path):
    path = workbook(tmp_path / "f.xlsx", [["insee", "referrals"], ["01001", "=1+1"], ["15014", "=2*3"]])
    with_saved_values(path, {"B2": 2, "B3": 6}, "xl/worksheets/sheet1.xml")
    assert read_demand(path, aura).table.loc[["01001", "15014"], "referrals"].tolist() == [2.0, 6.0]
    never_saved = workbook(tmp_path / "g.xlsx", [["insee", "referrals"], ["01001", 1], ["15014", "=SUM(B2:B2)"]])
    with pytest.raises(DemandError) as error:
        read_demand(never_saved, aura)
    assert ("row 3, column 'referrals': '=SUM(B2:B2)' is not a number (a formula without a saved value: "
            "open the file in Excel or LibreOffice and save it") in str(error.value)


def test_first_visible_sheet_or_the_named_one(aura, tmp_path):
    path = tmp_path / "sheets.xlsx"
    book = openpyxl.Workbook()
    book.active.title = "Notes"
    book.active.append(["hidden notes"])
    book.active.sheet_state = "hidden"
    for title, count in (("Données", 4), ("Autre", 9)):
        ws = book.create_sheet(title)
        ws.append(["insee", "referrals"])
        ws.append(["01001", count])
    book.save(path)
    assert read_demand(path, aura).table.loc["01001", "referrals"] == 4
    assert read_demand(path, aura, sheet="autre ").table.loc["01001", "referrals"] == 9


HOSTILE = {
    "empty workbook": (lambda p: workbook(p, []), {},
                       ["bad.xlsx, sheet 'Feuil1': the sheet is empty"]),
    "wrong sheet": (lambda p: workbook(p, [["insee", "referrals"], ["01001", 1]]), {"sheet": "Données"},
                    ["bad.xlsx: no sheet named 'Données'", "sheets are 'Feuil1'", "demand.sheet"]),
    "text in count cells": (lambda p: workbook(p, [["insee", "referrals"], ["01001", 1], ["15014", "n/a"],
                                                   ["38185", "12,5"], ["42218", "beaucoup"]]), {},
                            ["bad.xlsx, sheet 'Feuil1': 2 problems", "row 3, column 'referrals': 'n/a' is not a number",
                             "row 5, column 'referrals': 'beaucoup' is not a number"]),
    "header only": (lambda p: workbook(p, [[None], ["insee", "referrals"]]), {},
                    ["bad.xlsx, sheet 'Feuil1': the sheet has a header (row 2) but no rows"]),
    "column twice": (lambda p: workbook(p, [["insee", "referrals", "referrals"], ["01001", 1, 2]]), {},
                     ["bad.xlsx, sheet 'Feuil1', row 1: column 'referrals' appears 2 times"]),
    "value without header": (lambda p: workbook(p, [["insee", "referrals"], ["01001", 1], ["15014", 1, None, 7]]), {},
                             ["bad.xlsx, sheet 'Feuil1', row 3: column D has values but no name in the header (row 1)"]),
    "no key column": (lambda p: workbook(p, [[None], [None, "commune", "referrals"], [None, "Lyon", 1]]), {},
                      ["bad.xlsx, sheet 'Feuil1', row 2: no key column among ['commune', 'referrals']"]),
    "old .xls": (lambda p: p.with_suffix(".xls").write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504)), {},
                 ["bad.xls: an old Excel 97-2003 workbook (.xls)", "save it as 'Excel workbook (.xlsx)' or as 'CSV"]),
    ".xls renamed .xlsx": (lambda p: p.write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504)), {},
                           ["bad.xlsx: this is an old Excel 97-2003 workbook (.xls format)", "save it as 'Excel workbook"]),
    "password": (lambda p: p.write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504)
                                         + "EncryptedPackage".encode("utf-16-le") + bytes(64)), {},
                 ["bad.xlsx: the workbook is protected by a password", "remove the password"]),
    "CSV renamed .xlsx": (lambda p: p.write_text("insee;referrals\n01001;2\n", encoding="utf-8"), {},
                          ["bad.xlsx: this is a text file, not an Excel workbook", "rename it .csv"]),
    "damaged": (lambda p: p.write_bytes(workbook(p, [["insee", "referrals"], ["01001", 1]]).read_bytes()[:600]), {},
                ["bad.xlsx: cannot be opened as an Excel workbook", "save it again as 'Excel workbook (.xlsx)'"]),
    "zip, not a workbook": (lambda p: a_zip(p, {"hello.txt": "bonjour"}), {},
                            ["bad.xlsx: cannot be opened as an Excel workbook"]),
    "workbook renamed .csv": (lambda p: p.with_suffix(".csv").write_bytes(
        workbook(p, [["insee", "referrals"], ["01001", 1]]).read_bytes()), {},
        ["bad.csv: this is a spreadsheet workbook, not a CSV text file", "rename it .xlsx"]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_workbooks_are_explained(aura, tmp_path, case):
    make, options, expected = HOSTILE[case]
    path = tmp_path / "bad.xlsx"
    make(path)
    given = next(p for p in (path.with_suffix(".xls"), path.with_suffix(".csv"), path) if p.exists())
    with pytest.raises(DemandError) as error:
        read_demand(given, aura, **options)
    message = str(error.value)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in: {message}"
