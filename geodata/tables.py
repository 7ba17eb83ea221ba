"""Reading the tables users hand over: CSV (French office conventions), Excel workbooks and Parquet.

A CSV export may use ``;``, tab or ``,`` as separator, the decimal comma,
thousands separated by spaces, UTF-8 with or without BOM, UTF-16 or Latin-1
(Windows-1252); a quoted cell may span several lines. An Excel workbook
(``.xlsx``, ``.xlsm``) is read from one sheet (the first visible one unless
named), formulas as the values Excel saved with them. :func:`read_table`
returns the cells (text for CSV, typed for Excel and Parquet) with the
spreadsheet line or row of each, so that every error can name the file (and
sheet), line and column; :func:`as_number` reads one cell. Used for demand
files (:mod:`geodata.demand`) and for generic instances (``sectorize solve``).
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import pathlib
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

_SEPARATORS = (";", "\t", ",")
_SEPARATOR_NAMES = {";": "';'", "\t": "tab", ",": "','"}
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_THOUSANDS = re.compile(r"(?<=\d)[ \u00a0\u202f](?=\d{3}(\D|$))")


class TableError(ValueError):
    """A table file cannot be read as a table; the message names the file and line."""


@dataclass
class RawTable:
    """A table file as read: text cells (CSV) or typed cells (Excel, Parquet)."""

    frame: pd.DataFrame
    lines: np.ndarray  # spreadsheet line (CSV, header = 1), Excel row, or 1-based row (Parquet) of each row
    unit: str  # "line" or "row"
    decimal_comma: bool
    notes: list[str]
    sheet: str | None = None  # the worksheet read (Excel)
    header_line: int = 1  # line or row of the header

    def place(self, path: pathlib.Path | str) -> str:
        """The file (and sheet) for a message: ``"demand.xlsx, sheet 'Feuil1'"``."""
        return f"{path}" + (f", sheet {self.sheet!r}" if self.sheet is not None else "")


def decode(data: bytes) -> tuple[str, str]:
    """``(text, encoding name)`` of a file's bytes: UTF-16 or UTF-8 by their BOM, UTF-8, else
    Windows-1252, else Latin-1 (what French office software writes)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16"), "UTF-16"
    bom = data.startswith(codecs.BOM_UTF8)
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8"), "UTF-8 with BOM" if bom else "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "Latin-1 (Windows-1252)"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "Latin-1 (ISO-8859-1)"


def read_csv_table(path: pathlib.Path) -> RawTable:
    data = path.read_bytes()
    if data.startswith((_ZIP, _OLE2)):
        raise TableError(
            f"{path}: this is a spreadsheet workbook, not a CSV text file, despite its name; rename it "
            f"{'.xlsx' if data.startswith(_ZIP) else '.xls'} (demand files may be .xlsx) or save it as CSV"
        )
    text, encoding = decode(data)
    if not text.strip():
        raise TableError(
            f"{path}: the file is empty; export a table with a header line and one row per commune"
        )
    first = next(line for line in text.splitlines() if line.strip())
    sep = max(_SEPARATORS, key=first.count)
    # One record per spreadsheet row (a quoted cell may span several text lines).
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))
    filled = [i for i, record in enumerate(records) if any(cell.strip() for cell in record)]
    header_at = filled[0]
    names = [cell.strip() for cell in records[header_at]]
    twice = [n for n in names if n and names.count(n) > 1]
    if twice:
        raise TableError(
            f"{path}, line {header_at + 1}: column {twice[0]!r} appears {names.count(twice[0])} times "
            "in the header; give each column its own name"
        )
    rows, lines = [], []
    for i in filled[1:]:
        record = records[i]
        if len(record) > len(names) and any(cell.strip() for cell in record[len(names) :]):
            raise TableError(
                f"{path}, line {i + 1}: {len(record)} fields with separator {_SEPARATOR_NAMES[sep]} but "
                f"the header has {len(names)}; every row must have as many fields as the header "
                "(check the separator and quotes)"
            )
        rows.append((record + [""] * len(names))[: len(names)])
        lines.append(i + 1)
    if not rows:
        raise TableError(f"{path}: the file has a header but no rows; add one row per commune")
    frame = pd.DataFrame(rows, columns=range(len(names)), dtype=object)
    for i, name in enumerate(names):
        if not name and (frame[i].str.strip() != "").any():
            row = int(np.flatnonzero((frame[i].str.strip() != "").to_numpy())[0])
            raise TableError(
                f"{path}, line {lines[row]}: column {i + 1} has values but no name in the header "
                f"(line {header_at + 1}); name it or delete it"
            )
    frame = frame[[i for i, name in enumerate(names) if name]]
    frame.columns = [name for name in names if name]
    notes = [
        f"read {path.name}: encoding {encoding}, separator {_SEPARATOR_NAMES[sep]}"
        + (", decimal comma accepted" if sep == ";" else "")
        + f", data rows: {len(frame)}"
    ]
    return RawTable(frame, np.array(lines), "line", sep == ";", notes, header_line=header_at + 1)


def read_parquet_table(path: pathlib.Path) -> RawTable:
    frame = pd.read_parquet(path)
    if frame.empty:
        raise TableError(f"{path}: the table has no rows; add one row per commune")
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    return RawTable(
        frame, np.arange(1, len(frame) + 1), "row", False, [f"read {path.name}: data rows: {len(frame)}"]
    )


def read_table(path: pathlib.Path, what: str = "demand file", *, sheet: str | None = None) -> RawTable:
    """Read a CSV, Excel workbook (``.xlsx``, ``.xlsm``) or Parquet table file, by its suffix.

    ``sheet`` names the worksheet of a workbook (default: the first visible
    one); for another kind of file it is ignored, and a note says so (a
    scenario kept from a year whose export was a workbook). Raises
    :class:`TableError` naming the file (and sheet) and what to do, e.g. for
    an old ``.xls`` workbook, a password-protected or damaged one.
    """
    if not path.is_file():
        raise TableError(f"{what} {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in XLSX_SUFFIXES:
        return read_xlsx_table(path, sheet)
    if suffix in (".csv", ".txt", ".tsv", ".parquet"):
        raw = read_parquet_table(path) if suffix == ".parquet" else read_csv_table(path)
        if sheet is not None:
            raw.notes.append(f"sheet {sheet!r} ignored: {path.name} is not an Excel workbook")
        return raw
    if suffix in (".xls", ".xlsb", ".ods"):
        kind = {".xls": "an old Excel 97-2003 workbook (.xls)", ".xlsb": "an Excel binary workbook (.xlsb)",
                ".ods": "an OpenDocument spreadsheet (.ods)"}[suffix]
        raise TableError(
            f"{path}: {kind}, which is not read; open it in Excel or LibreOffice and save it as "
            "'Excel workbook (.xlsx)' or as 'CSV (separator ;)'"
        )
    raise TableError(
        f"{path}: unsupported file type {suffix!r}; give a CSV (.csv, separator ';' or ','), an Excel "
        "workbook (.xlsx) or a Parquet file"
    )


# --------------------------------------------------------------------------
# Excel workbooks
# --------------------------------------------------------------------------

#: Suffixes read as Excel workbooks (Office Open XML; macros are never run).
XLSX_SUFFIXES = (".xlsx", ".xlsm")
_ZIP = b"PK\x03\x04"
_OLE2 = bytes.fromhex("d0cf11e0a1b11ae1")  # compound file: an .xls workbook, or an encrypted .xlsx
_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")
#: A number format that pads integers with zeros (``00000``): Excel shows 1001 as 01001.
_ZERO_PADDED = re.compile(r"^0+$")
_RESAVE = "open it in Excel or LibreOffice and save it again as 'Excel workbook (.xlsx)', or save it as CSV"


def _not_a_workbook(path: pathlib.Path) -> str | None:
    """Why the bytes of ``path`` cannot be an .xlsx workbook, or ``None`` when they may be."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head.startswith(_ZIP):
        return None
    if not head:
        return "the file is empty; export the table again"
    if head.startswith(_OLE2):
        if _ENCRYPTED in path.read_bytes():
            return ("the workbook is protected by a password, so it cannot be read; open it in Excel, remove the "
                    "password (File > Info > Protect Workbook > Encrypt with Password: clear it) and save it, "
                    "or save an unprotected copy as CSV")
        return ("this is an old Excel 97-2003 workbook (.xls format) despite its .xlsx name, which is not read; "
                "open it in Excel or LibreOffice and save it as 'Excel workbook (.xlsx)' or as CSV")
    if b"\x00" not in head or head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return ("this is a text file, not an Excel workbook, despite its .xlsx name (a CSV file renamed?); "
                "rename it .csv, or open it in Excel and save it as 'Excel workbook (.xlsx)'")
    return f"this is not an Excel workbook (.xlsx), or it is damaged; {_RESAVE}"


def _cell_value(cell: object) -> object:
    """A cell as the workbook shows it: ``""`` when empty, a zero-padded code (format ``00000``) as text."""
    value = getattr(cell, "value", None)
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and float(value).is_integer() and value >= 0:
        fmt = getattr(cell, "number_format", None) or ""
        if _ZERO_PADDED.match(fmt):
            return f"{int(value):0{len(fmt)}d}"
    return value


def _pick_sheet(book, path: pathlib.Path, sheet: str | None):
    sheets = book.worksheets
    names = [ws.title for ws in sheets]
    if not sheets:
        raise TableError(f"{path}: the workbook has no worksheet (only charts?); put the table on a worksheet")
    if sheet is None:
        visible = [ws for ws in sheets if ws.sheet_state == "visible"]
        return (visible or sheets)[0], names
    if sheet in names:
        return sheets[names.index(sheet)], names
    folded = [ws for ws in sheets if ws.title.strip().casefold() == sheet.strip().casefold()]
    if len(folded) == 1:
        return folded[0], names
    raise TableError(
        f"{path}: no sheet named {sheet!r}; the workbook's sheets are {', '.join(map(repr, names))} "
        "(set demand.sheet to one of them)"
    )


def _formula_texts(path: pathlib.Path, title: str, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], str]:
    """``(row, column) -> formula`` of the cells of ``wanted`` that hold a formula (0-based positions)."""
    import openpyxl

    found: dict[tuple[int, int], str] = {}
    last = max(r for r, _ in wanted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        book = openpyxl.load_workbook(path, read_only=True, data_only=False)
    try:
        for r, row in enumerate(book[title].iter_rows(max_row=last + 1, values_only=True)):
            for c, value in enumerate(row):
                text = getattr(value, "text", value)  # array formulas
                if (r, c) in wanted and isinstance(text, str) and text.startswith("="):
                    found[(r, c)] = text
    finally:
        book.close()
    return found


def read_xlsx_table(path: pathlib.Path, sheet: str | None = None) -> RawTable:
    """One worksheet of an Excel workbook, with Excel's row numbers.

    The sheet is ``sheet`` (exact name, else ignoring case and surrounding
    blanks) or the first visible one. Cells keep their type: numbers as
    numbers (a code stored as the number 1001 stays ``1001``, as a CSV line
    would say it, unless its number format ``00000`` shows ``01001``: it is
    then read as shown), text as text (a decimal comma in text is accepted),
    formulas as the value Excel saved with them. Merged cells hold their value
    in their first cell, as in a CSV export. As in a CSV, the first non-empty
    row is the header and blank rows are skipped. A formula without a saved
    value (a file written by a program and never opened by Excel) is kept as
    its text (``"=SUM(C2:C9)"``), which the checks then report.
    """
    problem = _not_a_workbook(path)
    if problem:
        raise TableError(f"{path}: {problem}")
    import openpyxl

    try:
        with warnings.catch_warnings():  # openpyxl warns about features it ignores (validation, styles)
            warnings.simplefilter("ignore")
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises many kinds of errors on damaged files
        raise TableError(f"{path}: cannot be opened as an Excel workbook ({type(err).__name__}: {err}); "
                         f"{_RESAVE}") from None
    try:
        ws, names = _pick_sheet(book, path, sheet)
        title = ws.title
        try:
            records = [[_cell_value(cell) for cell in row] for row in ws.iter_rows()]
        except Exception as err:
            raise TableError(f"{path}, sheet {title!r}: cannot be read ({type(err).__name__}: {err}); "
                             f"{_RESAVE}") from None
    finally:
        book.close()
    place = f"{path}, sheet {title!r}"
    filled = [i for i, record in enumerate(records) if any(as_text(cell) != "" for cell in record)]
    if not filled:
        others = [n for n in names if n != title]
        raise TableError(
            f"{place}: the sheet is empty"
            + (f"; the workbook's other sheets are {', '.join(map(repr, others))} (choose one with demand.sheet)"
               if others else "; put the table (a header row, then one row per commune) on it")
        )
    width = max(len(record) for record in records)
    records = [list(record) + [""] * (width - len(record)) for record in records]
    header_at = filled[0]
    names_row = [as_text(cell) for cell in records[header_at]]
    twice = [n for n in names_row if n and names_row.count(n) > 1]
    if twice:
        raise TableError(
            f"{place}, row {header_at + 1}: column {twice[0]!r} appears {names_row.count(twice[0])} times in the "
            "header; give each column its own name"
        )
    rows = [records[i] for i in filled[1:]]
    lines = [i + 1 for i in filled[1:]]
    if not rows:
        raise TableError(f"{place}: the sheet has a header (row {header_at + 1}) but no rows; add one row per commune")
    from openpyxl.utils import get_column_letter

    for c, name in enumerate(names_row):
        if not name:
            row = next((k for k, record in enumerate(rows) if as_text(record[c]) != ""), None)
            if row is not None:
                raise TableError(
                    f"{place}, row {lines[row]}: column {get_column_letter(c + 1)} has values but no name in the "
                    f"header (row {header_at + 1}); name it or delete it"
                )
    kept = [c for c, name in enumerate(names_row) if name]
    blank = {(filled[1 + k], c) for k, record in enumerate(rows) for c in kept if record[c] == ""}
    formulas = _formula_texts(path, title, blank) if blank else {}
    for (r, c), text in formulas.items():
        records[r][c] = text
    frame = pd.DataFrame([[record[c] for c in kept] for record in rows], columns=range(len(kept)), dtype=object)
    frame.columns = [names_row[c] for c in kept]
    described = f"sheet {title!r}" + (f" (of {len(names)}: {', '.join(map(repr, names))})" if len(names) > 1 else "")
    notes = [f"read {path.name}: Excel workbook, {described}, header on row {header_at + 1}, "
             f"data rows: {len(frame)}, formulas read as their saved values"]
    if formulas:
        notes.append(f"{path.name}, sheet {title!r}: {len(formulas)} formula cell(s) have no saved value (the file "
                     "was written by a program, not saved by a spreadsheet); they are reported as not numbers")
    return RawTable(frame, np.array(lines), "row", True, notes, sheet=title, header_line=header_at + 1)


def as_text(value: object) -> str:
    """A cell as text; integer-valued numbers (Parquet) lose their ``.0``."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def as_number(value: object, decimal_comma: bool) -> float | None:
    """A count cell as float; ``nan`` when blank, ``None`` when not a number."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        number = float(value)
        return number if not math.isinf(number) else None
    text = as_text(value)
    if text == "":
        return math.nan
    text = _THOUSANDS.sub("", text)
    if decimal_comma and text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    return float(text) if _NUMBER.match(text) else None


