"""Shared fixtures: the shipped AURA regions, loaded once per test session."""

from __future__ import annotations

import pathlib

import pytest

from geodata.regions import Region, load_aura

#: Small input files used by the tests.
DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def aura() -> Region:
    """The 4,025 AURA communes (Lyon = 69123). Do not modify it in a test: copy first."""
    return load_aura()


@pytest.fixture(scope="session")
def aura_lyon() -> Region:
    """AURA with Lyon split into its 9 arrondissements (4,033 units). Do not modify: copy first."""
    return load_aura("lyon_arrondissements")
