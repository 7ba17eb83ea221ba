"""The one reader of a run folder written by ``sectorize run`` (or ``rerun``).

A run folder holds ``run.json`` (solver facts), ``scenario.toml`` (the
effective scenario), the French-spreadsheet CSV tables ``sectors.csv``,
``workers.csv`` and ``postcodes.csv`` (``;`` separator, ``,`` decimal mark,
UTF-8 with BOM), and ``sectors.geojson``. The registry, the re-run, the
weekly simulation and the router all read it through :class:`RunFolder`, so
the file conventions are decoded in one place: codes (INSEE, postcode,
sector, worker) always stay text, so 01001 keeps its leading zero; boolean
columns (written ``1``/``0``; ``True``/``False`` by earlier versions) are read
as booleans.

>>> folder = RunFolder.open("sectorize-output/20261201-101500")   # doctest: +SKIP
>>> folder.table("sectors.csv", required=("insee", "sector")).dtypes["insee"]  # doctest: +SKIP
dtype('O')
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

#: Columns of the run tables that hold codes or names: always read as text.
TEXT_COLUMNS = ("insee", "name", "dep", "group", "sector", "worker_id", "worker_name", "postcode",
                "sectors", "centre", "base_key")

#: Columns of the run tables that hold yes/no values: ``1``/``0`` (or ``True``/``False``), read as booleans.
BOOLEAN_COLUMNS = ("within_tolerance", "spans_sectors")
_BOOLEAN_WORDS = {"1": True, "0": False, "true": True, "false": False, "1.0": True, "0.0": False}

#: The files of a complete run folder.
RUN_FILES = ("run.json", "scenario.toml", "sectors.csv", "workers.csv", "postcodes.csv")


class RunFolderError(ValueError):
    """A run folder's file is unreadable or lacks a column; the message names the file."""


def decode(data: bytes) -> str:
    """Text of a CSV file: UTF-8 (with or without BOM), else Latin-1 (a French spreadsheet's export)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_table(source: str | Path | io.BytesIO, what: str, *, text: bool = False,
               required: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a run-folder CSV table: codes as text, numbers as numbers (``text=True``: every column as text).

    Accepts ``;`` or ``,`` separators (a table re-saved by a spreadsheet) and
    UTF-8 or Latin-1. ``what`` names the file in error messages; a column of
    ``required`` that is missing raises :class:`RunFolderError` naming it.
    """
    try:
        raw = source.getvalue() if isinstance(source, io.BytesIO) else Path(source).read_bytes()
    except OSError as err:
        raise RunFolderError(f"{what}: cannot be read ({err.strerror})") from None
    content = decode(raw)
    sep = "," if ";" not in content.split("\n", 1)[0] and "," in content.split("\n", 1)[0] else ";"
    try:
        if text:
            table = pd.read_csv(io.StringIO(content), sep=sep, dtype=str, keep_default_na=False)
        else:
            head = pd.read_csv(io.StringIO(content), sep=sep, nrows=0)
            codes = {c: "str" for c in head.columns if c in TEXT_COLUMNS}
            table = pd.read_csv(io.StringIO(content), sep=sep, decimal="," if sep == ";" else ".", dtype=codes)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise RunFolderError(f"{what}: not a sectorize CSV table ({err}); re-run `sectorize run` to rewrite it") from err
    if not text:
        for column in [c for c in BOOLEAN_COLUMNS if c in table.columns]:
            table[column] = _booleans(table[column], what, column)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise RunFolderError(f"{what}: lacks the column(s) {missing}; is it a table of a sectorize run folder?")
    return table


def _booleans(column: pd.Series, what: str, name: str) -> pd.Series:
    """A yes/no column as booleans (``bool`` dtype, or ``object`` with NaN where blank)."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return column
    words = column.map(lambda v: None if pd.isna(v) else _BOOLEAN_WORDS.get(str(v).strip().lower(), v))
    odd = [v for v in words if v is not None and not isinstance(v, bool)]
    if odd:
        raise RunFolderError(f"{what}: column {name!r} holds {odd[0]!r}; write 1 (yes) or 0 (no)")
    if words.isna().any():
        return words.map(lambda v: float("nan") if v is None else v).astype(object)
    return words.astype(bool)


@dataclass(frozen=True)
class RunFolder:
    """A run folder on disk; each method reads one of its files."""

    path: Path

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """The run folder at ``path``; :class:`FileNotFoundError` when there is no such folder."""
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"run folder {folder} does not exist; give a folder written by `sectorize run`")
        return cls(folder)

    def missing(self, names: tuple[str, ...] = RUN_FILES) -> list[str]:
        """The files of ``names`` that are not in the folder."""
        return [name for name in names if not (self.path / name).is_file()]

    def require(self, *names: str) -> None:
        """Raise :class:`FileNotFoundError` naming the first of ``names`` that is missing."""
        for name in names:
            if not (self.path / name).is_file():
                raise FileNotFoundError(f"{self.path / name}: missing; {self.path} is not a complete run folder "
                                        f"(expected {name})")

    def facts(self) -> dict[str, Any]:
        """``run.json``: solver facts, input hashes, notes, violations."""
        self.require("run.json")
        try:
            return json.loads((self.path / "run.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RunFolderError(f"{self.path / 'run.json'}: not valid JSON ({err}); the run folder is damaged") from err

    def table(self, name: str, *, text: bool = False, required: tuple[str, ...] = ()) -> pd.DataFrame:
        """One CSV table of the folder (see :func:`read_table`)."""
        self.require(name)
        return read_table(self.path / name, str(self.path / name), text=text, required=required)

    def scenario_toml(self) -> str | None:
        """The effective scenario's TOML text, or ``None`` when the folder has none."""
        file = self.path / "scenario.toml"
        return file.read_text(encoding="utf-8") if file.is_file() else None

    def shapes(self):
        """``sectors.geojson`` as a GeoDataFrame with its ``insee`` column (polygons in EPSG:4326)."""
        import geopandas as gpd

        self.require("sectors.geojson")
        file = self.path / "sectors.geojson"
        try:
            shapes = gpd.read_file(file, columns=["insee"])
        except (OSError, ValueError) as err:
            raise RunFolderError(f"{file}: cannot be read: {err}") from err
        if "insee" not in shapes.columns:
            raise RunFolderError(f"{file}: features lack the 'insee' property")
        return shapes
