"""Territories: regions (units + contiguity graph), travel times and demand.

No optimisation here; :mod:`solvers` optimises, :mod:`sectorize` composes.
"""
