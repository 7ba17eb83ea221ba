"""The one run-folder reader: French spreadsheet conventions, codes as text, clear errors."""

from __future__ import annotations

import io

import pytest

from sectorize.store.run_folder import RunFolder, RunFolderError, read_table


def test_codes_stay_text_and_numbers_are_numbers(tmp_path):
    path = tmp_path / "sectors.csv"
    path.write_bytes("insee;name;sector;referrals\n01001;L'Abergement;A1;1,5\n69381;Lyon 1er;B2;12\n".encode("utf-8-sig"))
    table = read_table(path, "sectors.csv")
    assert table["insee"].tolist() == ["01001", "69381"]
    assert table["referrals"].tolist() == [1.5, 12.0]
    text = read_table(path, "sectors.csv", text=True)
    assert text["referrals"].tolist() == ["1,5", "12"]


def test_a_table_resaved_by_a_spreadsheet_is_still_read(tmp_path):
    """Latin-1 and ``,`` as separator, as a spreadsheet may write it back."""
    path = tmp_path / "sectors.csv"
    path.write_bytes("insee,name,sector\n01001,Ambérieu,A1\n".encode("latin-1"))
    table = read_table(path, "sectors.csv", text=True)
    assert table.loc[0, "name"] == "Ambérieu" and table.loc[0, "insee"] == "01001"


def test_bytes_in_memory_are_read_like_a_file():
    buffer = io.BytesIO("insee;sector\n01001;A1\n".encode("utf-8-sig"))
    assert read_table(buffer, "memory")["insee"].tolist() == ["01001"]


def test_missing_column_names_the_file_and_column(tmp_path):
    path = tmp_path / "workers.csv"
    path.write_text("worker_id;fte\nTS01;1\n", encoding="utf-8")
    with pytest.raises(RunFolderError, match=r"workers.csv: lacks the column\(s\) \['sector'\]"):
        read_table(path, str(path), required=("worker_id", "sector"))


def test_folder_errors_name_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RunFolder.open(tmp_path / "nowhere")
    run = RunFolder.open(tmp_path)
    assert run.missing(("run.json", "sectors.csv")) == ["run.json", "sectors.csv"]
    with pytest.raises(FileNotFoundError, match="sectors.csv: missing"):
        run.table("sectors.csv")
    (tmp_path / "run.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(RunFolderError, match="run.json: not valid JSON"):
        run.facts()
    assert run.scenario_toml() is None
