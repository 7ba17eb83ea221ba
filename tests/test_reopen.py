"""Re-opening a stored plan reproduces its table and its map; a re-run can start from a registry plan."""

from __future__ import annotations

import pandas as pd
import pytest

from sectorize.cli import main
from sectorize.store.export import sector_table
from sectorize.report.maps import external_resources, sector_colours
from sectorize.store.registry import Registry
from sectorize.store.reopen import plan_from_stored
from sectorize.pipeline.rerun import load_previous


@pytest.fixture(scope="module")
def stored(aura_run, tmp_path_factory):
    folder, _ = aura_run
    registry = tmp_path_factory.mktemp("registry")
    plan_id = Registry(registry).add(folder, effective_from="2027-01-01")
    return registry, plan_id


def test_reopened_plan_reproduces_the_sector_table_and_colours(aura_run, stored):
    folder, plan = aura_run
    registry, plan_id = stored
    again = plan_from_stored(Registry(registry).get(plan_id))
    written = pd.read_csv(folder / "sectors.csv", sep=";", dtype=str, encoding="utf-8-sig")
    table = sector_table(again)
    assert list(table["insee"]) == list(written["insee"])
    for column in ("group", "sector", "worker_id", "worker_name"):
        assert (table[column].astype(str) == written[column]).all(), column
    assert (table["workload"].round(3) == written["workload"].str.replace(",", ".").astype(float)).all()
    assert sector_colours(again) == sector_colours(plan)
    assert again.inputs == plan.inputs and again.vintage == plan.vintage


def test_cli_plans_map_is_offline_and_never_overwrites(stored, tmp_path):
    registry, plan_id = stored
    out = tmp_path / "plan.html"
    assert main(["plans", "map", plan_id, "--registry", str(registry), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert external_resources(page) == [] and "Sector borders" in page
    assert main(["plans", "map", plan_id, "--registry", str(registry), "--out", str(out)]) == 2
    assert main(["plans", "map", "P20990101-deadbeef", "--registry", str(registry), "--out", str(tmp_path / "x.html")]) == 4


def test_rerun_reads_a_registry_plan(aura_run, stored):
    folder, _ = aura_run
    registry, plan_id = stored
    from_registry = load_previous(plan_id, registry)
    from_folder = load_previous(folder)
    assert from_registry.id == plan_id
    assert from_registry.sectors[["group", "sector", "worker_id"]].astype(str).equals(
        from_folder.sectors[["group", "sector", "worker_id"]].astype(str))
    assert from_registry.scenario_toml == (folder / "scenario.toml").read_text(encoding="utf-8")


def test_map_for_outside_the_team_suppresses_small_counts(aura_run):
    import json
    import re

    _, plan = aura_run
    from sectorize.report.maps import sector_map

    page = sector_map(plan, suppress_below=5).get_root().render()
    # the tooltip values are the GeoJSON properties of the commune layers
    values = [json.loads(f'"{v}"') for v in re.findall(r'"referrals": "([^"]*)"', page)]
    assert len(values) == len(plan.units)
    assert {v for v in values if not v.isdigit()} == {"&lt;5"}  # HTML-escaped "<5"
    assert all(int(v) >= 5 for v in values if v.isdigit())
    assert values.count("&lt;5") == int((plan.units["referrals"] < 4.5).sum())
    plain = [json.loads(f'"{v}"') for v in re.findall(r'"referrals": "([^"]*)"', sector_map(plan).get_root().render())]
    assert "&lt;5" not in plain and json.dumps(plain)
