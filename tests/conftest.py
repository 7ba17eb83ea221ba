"""Shared fixtures: the shipped AURA regions, loaded once per test session."""

from __future__ import annotations

import os
import pathlib
import warnings

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


@pytest.fixture(scope="session")
def aura_run(tmp_path_factory):
    """A real AURA plan (packaged default scenario, 8 s heuristic solve) and its
    run folder: ``(folder, plan)``. Shared by the tests of the registry, the
    routing lookup and the re-run; do not modify either: copy first."""
    from sectorize.pipeline.run import run_and_write
    from sectorize.config.scenario import default_scenario

    scenario = default_scenario()
    model = scenario.model.model_copy(update={"backend": "heuristic", "time_limit_s": 8})
    output = scenario.output.model_copy(update={"dir": tmp_path_factory.mktemp("aura_run")})
    scenario = scenario.model_copy(update={"model": model, "output": output})
    return run_and_write(scenario)


@pytest.fixture(scope="session")
def aura_registry(aura_run, tmp_path_factory):
    """A plan registry holding ``aura_run``'s plan (added from its run folder, not published):
    ``(folder, plan id)``. Do not modify it: tests that write take ``registry_copy``."""
    from sectorize.store.registry import Registry

    folder = tmp_path_factory.mktemp("aura_registry")
    return folder, Registry(folder).add(aura_run[0], note="2026 plan")


@pytest.fixture()
def registry_copy(aura_registry, tmp_path):
    """A copy of ``aura_registry`` this test may change: ``(folder, plan id)``."""
    import shutil

    folder, plan_id = aura_registry
    copy = tmp_path / "reg"
    shutil.copytree(folder, copy)
    return copy, plan_id


@pytest.fixture(scope="session")
def aura_run_tables(aura_run):
    """The written tables of ``aura_run``, read back as text: ``(sectors by insee, postcodes by postcode)``."""
    import pandas as pd

    folder = aura_run[0]
    read = lambda name: pd.read_csv(folder / name, sep=";", dtype=str, encoding="utf-8-sig")  # noqa: E731
    return read("sectors.csv").set_index("insee"), read("postcodes.csv").set_index("postcode")


#: The repository root: the working directory every test starts in.
ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _working_directory_is_the_repository(request):
    """Start and leave every test in the repository root, and say which test moved it.

    Package data and the notebooks are found relative to the repository when
    the tests run from a checkout; a test (or a library it calls) that leaves
    the process in another folder, perhaps one deleted since, would make
    every later test fail for a reason of its own.
    """
    if _cwd() != str(ROOT):
        os.chdir(ROOT)
    yield
    moved = _cwd()
    if moved != str(ROOT):
        os.chdir(ROOT)
        warnings.warn(f"{request.node.nodeid} left the working directory in {moved or 'a deleted folder'}",
                      stacklevel=1)


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except FileNotFoundError:  # the folder was deleted under the process
        return None
