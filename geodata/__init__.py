"""Territories: regions (units + contiguity graph), travel times and demand.

No optimisation here; :mod:`solvers` optimises, :mod:`sectorize` composes.
"""

from geodata.demand import (
    Demand,
    DemandError,
    HuffModel,
    demand_summary,
    excluded_by_department,
    read_demand,
    synthetic_demand,
)
from geodata.reference import data_path, load_arrondissements, load_hospitals, load_postcodes
from geodata.regions import Region, load_aura, load_units, region_from_units

__all__ = [
    "Demand", "DemandError", "HuffModel", "demand_summary", "excluded_by_department", "read_demand", "synthetic_demand",
    "data_path", "load_arrondissements", "load_hospitals", "load_postcodes",
    "Region", "load_aura", "load_units", "region_from_units",
]
