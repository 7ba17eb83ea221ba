"""Reference tables shipped with the package: file paths, hospitals, postcodes, Lyon arrondissements.

Every code (INSEE, postcode) is returned as ``str`` so that leading zeros are
kept ("01001", "01090"). Provenance and licences: ``geodata/data/SOURCES.md``.

Example
-------
>>> from geodata.reference import load_hospitals
>>> load_hospitals().set_index("id").at["clb", "insee"]
'69123'
"""

from __future__ import annotations

import pathlib
from importlib import resources

import geopandas as gpd
import pandas as pd


def data_path(name: str) -> pathlib.Path:
    """Path of a file shipped in ``geodata/data/``.

    Parameters
    ----------
    name
        File name, e.g. ``"communes.parquet"``.

    Raises
    ------
    FileNotFoundError
        When the package has no such file; the message lists the files it has.
    """
    folder = pathlib.Path(str(resources.files("geodata").joinpath("data")))
    path = folder / name
    if not path.is_file():
        available = sorted(p.name for p in folder.iterdir() if p.is_file())
        raise FileNotFoundError(
            f"no shipped data file {name!r} in {folder}; available files: {', '.join(available)}"
        )
    return path


def load_hospitals() -> pd.DataFrame:
    """Reference hospitals (``hospitals.csv``), one row per hospital.

    Returns
    -------
    pandas.DataFrame
        Columns ``id`` (e.g. ``"clb"`` for Centre Léon Bérard, the cancer
        centre in Lyon), ``name``, ``site``, ``address``, ``insee`` (commune
        code, str), ``insee_arrondissement`` (str, empty when the commune has
        no arrondissements), ``lon``, ``lat`` (degrees, EPSG:4326; approximate,
        to about 1 km, see ``SOURCES.md``), ``coord_quality``,
        ``in_address_commune_polygon``, ``coord_source``.
    """
    path = data_path("hospitals.csv")
    table = pd.read_csv(
        path,
        dtype={"id": str, "insee": str, "insee_arrondissement": str},
        keep_default_na=False,
    )
    table["lon"] = table["lon"].astype(float)
    table["lat"] = table["lat"].astype(float)
    return table


def load_postcodes() -> pd.DataFrame:
    """Postcode to commune pairs (``postcodes.csv``), many-to-many.

    Returns
    -------
    pandas.DataFrame
        All columns as str: ``postcode``, ``insee``, ``name``, ``kind``
        (``"commune"`` or ``"arrondissement_municipal"``) and ``source``
        (``"laposte_via_etalab"`` for La Poste's official base, or
        ``"codes_postaux_fimoct_only"`` for extra pairs known only to the
        tax administration's street file). Lyon postcodes 69001..69009 appear
        twice: with commune 69123 and with their arrondissement 69381..69389.
    """
    return pd.read_csv(data_path("postcodes.csv"), dtype=str, keep_default_na=False)


def load_arrondissements() -> pd.DataFrame:
    """Attributes of the 9 municipal arrondissements of Lyon, without geometry.

    Returns
    -------
    pandas.DataFrame
        Columns ``insee`` (69381..69389), ``name``, ``dep``, ``parent``
        (``"69123"``, the commune of Lyon), ``population`` (inhabitants, int),
        ``postcodes`` (list of str), ``area_km2``, ``pt_lon``, ``pt_lat``.
    """
    table = gpd.read_file(data_path("lyon_arrondissements.geojson"), ignore_geometry=True)
    table["population"] = table["population"].astype("int64")
    table["postcodes"] = [[str(code) for code in codes] for codes in table["postcodes"]]
    return pd.DataFrame(table)
