"""Reading the tables users hand over: CSV (French office conventions) and Parquet.

A CSV export may use ``;``, tab or ``,`` as separator, the decimal comma,
thousands separated by spaces, UTF-8 with or without BOM, UTF-16 or Latin-1
(Windows-1252); a quoted cell may span several lines. :func:`read_table`
returns the cells as text with the spreadsheet line of each row, so that every
error can name the file, line and column; :func:`as_number` reads one cell.
Used for demand files (:mod:`geodata.demand`) and for generic instances
(``sectorize solve``).
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import pathlib
import re
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
    """A table file as read: text cells (CSV) or typed cells (Parquet)."""

    frame: pd.DataFrame
    lines: np.ndarray  # spreadsheet line (CSV, header = 1) or 1-based row (Parquet) of each row
    unit: str  # "line" or "row"
    decimal_comma: bool
    notes: list[str]


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
    text, encoding = decode(path.read_bytes())
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
    return RawTable(frame, np.array(lines), "line", sep == ";", notes)


def read_parquet_table(path: pathlib.Path) -> RawTable:
    frame = pd.read_parquet(path)
    if frame.empty:
        raise TableError(f"{path}: the table has no rows; add one row per commune")
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    return RawTable(
        frame, np.arange(1, len(frame) + 1), "row", False, [f"read {path.name}: data rows: {len(frame)}"]
    )


def read_table(path: pathlib.Path, what: str = "demand file") -> RawTable:
    if not path.is_file():
        raise TableError(f"{what} {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return read_csv_table(path)
    if suffix == ".parquet":
        return read_parquet_table(path)
    raise TableError(
        f"{path}: unsupported file type {suffix!r}; give a CSV (.csv, separator ';' or ',') or a "
        "Parquet file (from a spreadsheet, use 'Save as CSV')"
    )


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


