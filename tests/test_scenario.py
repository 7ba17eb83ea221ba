"""Scenario configuration: defaults, readable errors, path resolution, TOML round trip."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from sectorize.config.scenario import (
    Scenario,
    ScenarioError,
    default_scenario,
    dump_scenario,
    load_scenario,
    scenario_from_dict,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "aura_default.toml"


@pytest.fixture
def base() -> dict:
    """The example scenario as a plain dictionary, to be spoiled by each test."""
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def test_default_scenario_team_and_groups():
    s = default_scenario()
    assert s.name == "AURA default"
    assert [w.id for w in s.team.workers] == [f"TS{i:02d}" for i in range(1, 12)]
    assert [w.fte for w in s.team.workers] == [1.0] * 8 + [0.8] * 2 + [0.5]
    assert s.team.total_fte == pytest.approx(10.1)
    assert all(w.base is None and w.group is None for w in s.team.workers)
    assert s.team.default_base == "69388"
    assert s.region.variant == "lyon_arrondissements"
    assert s.groups.names == ["A", "B"]
    assert (s.model.tolerance, s.model.group_tolerance) == (0.10, 0.05)
    assert s.demand.demand_columns == ["referrals", "home_care"]
    assert s.map.tiles is None
    assert s.source is not None and s.source.name == "aura_default.toml"


def test_example_mirrors_default():
    example = load_scenario(EXAMPLE)
    assert example.model_dump() == default_scenario().model_dump()
    assert example.source == EXAMPLE


def test_defaults_filled_from_count_and_tolerance(base):
    base["groups"] = {"count": 3}
    base["model"] = {"tolerance": 0.2}
    s = scenario_from_dict(base)
    assert s.groups.names == ["A", "B", "C"]
    assert s.model.group_tolerance == pytest.approx(0.1)


def test_scenario_is_frozen():
    s = default_scenario()
    with pytest.raises(ValidationError):
        s.model.tolerance = 0.5


def _spoil(d: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        d = d[int(part)] if part.isdigit() else d[part]
    d[last] = value


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("model.tolerence", 0.2, "unknown key 'model.tolerence' (did you mean 'tolerance'?)"),
        ("grups", {}, "unknown key 'grups' (did you mean 'groups'?)"),
        ("model.tolerance", 1.5, "model.tolerance: must be > 0 and < 1 (got 1.5)"),
        ("model.time_limit_s", "fast", "model.time_limit_s: must be a valid number"),
        ("team.workers.3.fte", 0, "team.workers[3].fte: must be > 0 and <= 1 (got 0)"),
        ("team.workers.3.id", "TS01", "team.workers[3].id: duplicate worker id 'TS01'"),
        ("team.workers.2.group", "C", "team.workers[2].group: 'C' is not a group name"),
        ("team.workers.2.base_lon", 4.8, "team.workers[2]: give both base_lon and base_lat"),
        ("demand.source", "file", "demand.file: required when demand.source = 'file'"),
        ("demand.file", "demand.csv", "demand.file: only read when demand.source = 'file'"),
        ("region.variant", "cantons", "region.variant: must be 'communes' or 'lyon_arrondissements' (got 'cantons')"),
        ("groups.count", 12, "groups.count: 12 groups need at least 12 workers (team has 11)"),
        ("demand.weights", {"referals": 1.0}, "demand.weights: ['referals'] are not demand columns"),
        ("team.workers", [], "team.workers: must have at least 1 item"),
    ],
)
def test_bad_value_names_file_and_key(base, key, value, expected):
    if key == "groups.count":
        base["groups"].pop("names")
    _spoil(base, key, value)
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(base, source="my/scenario.toml")
    message = str(err.value)
    assert message.startswith("my/scenario.toml: ")
    assert expected in message


def test_missing_team_says_what_to_add(base):
    del base["team"]
    with pytest.raises(ScenarioError, match=r"team: missing \(required\); add a \[team\] table"):
        scenario_from_dict(base, source="s.toml")


def test_fixed_groups_must_leave_a_worker_for_every_group(base):
    for worker in base["team"]["workers"]:
        worker["group"] = "A"
    with pytest.raises(ScenarioError, match=r"groups \['B'\] would have no worker"):
        scenario_from_dict(base)


def test_source_is_not_a_file_key(base):
    base["source"] = "elsewhere.toml"
    with pytest.raises(ScenarioError, match="unknown key 'source'"):
        scenario_from_dict(base)


def test_unknown_key_in_file(tmp_path):
    path = tmp_path / "scenario.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").replace("tolerance = 0.10", "tolerence = 0.10"), encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value) == f"{path}: unknown key 'model.tolerence' (did you mean 'tolerance'?)"


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\n[model]\ntolerance = = 0.1\n', encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"broken\.toml: TOML syntax error: .*line 3"):
        load_scenario(path)


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="nope.toml: scenario file not found"):
        load_scenario(tmp_path / "nope.toml")


def test_relative_paths_resolved_against_the_file(tmp_path):
    folder = tmp_path / "plans"
    folder.mkdir()
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in [
        ('source = "synthetic"', 'source = "file"\nfile = "data/demand.csv"'),
        ("fallback_to_estimate = false", 'matrix = "../matrix.csv"\nfallback_to_estimate = false'),
        ('# dir = "sectorize-output"', 'dir = "runs"'),
    ]:
        assert text.count(old) == 1
        text = text.replace(old, new)
    path = folder / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    s = load_scenario(path)
    assert s.demand.file == (folder / "data" / "demand.csv").resolve()
    assert s.travel.matrix == (tmp_path / "matrix.csv").resolve()
    assert s.output.dir == (folder / "runs").resolve()


def test_dump_round_trip_of_a_rich_scenario(tmp_path, base):
    base["name"] = 'Équipe "Sud" \\ test'
    base["description"] = "ligne 1\nligne 2 — accents éèà"
    base["region"] = {"variant": "lyon_arrondissements"}
    base["demand"].update(source="file", file=str(tmp_path / "d.csv"), key="postcode",
                          columns=["referrals", "visits"], on_unknown="report",
                          weights={"referrals": 1.0, "visits": 0.25})
    base["team"]["workers"][0].update(group="B", base="63113")
    base["team"]["workers"][1].update(base_lon=3.0944, base_lat=45.7569)
    base["model"].update(objective="base", backend="heuristic", time_limit_s=12.5, seed=7)
    base["map"] = {"tiles": "OpenStreetMap", "simplify_m": 0}
    base["output"] = {"dir": str(tmp_path / "out")}
    original = scenario_from_dict(copy.deepcopy(base))
    written = tmp_path / "elsewhere" / "scenario.toml"
    written.parent.mkdir()
    written.write_text(dump_scenario(original), encoding="utf-8")
    reloaded = load_scenario(written)
    assert reloaded.model_dump() == original.model_dump()
    assert reloaded.team.workers[0].group == "B"


def test_dump_round_trip_of_default_keeps_meaning(tmp_path):
    s = default_scenario()
    written = tmp_path / "scenario.toml"
    written.write_text(dump_scenario(s), encoding="utf-8")
    reloaded = load_scenario(written)
    # the default output folder is relative to the current folder: written absolute
    assert reloaded.output.dir == Path("sectorize-output").absolute()
    assert reloaded.model_dump(exclude={"output"}) == s.model_dump(exclude={"output"})


def test_scenario_requires_team():
    with pytest.raises(ValidationError):
        Scenario()


# --------------------------------------------------------------------------- demand columns by role (issue 18)


def test_demand_columns_by_role(base, tmp_path):
    base["demand"].update(source="file", file=str(tmp_path / "d.csv"), repair=True,
                          columns={"referrals": "Nb signalements *", "home_care": "#4", "follow_up": "Suivis actifs 2025"},
                          weights={"referrals": 1.0, "home_care": 0.5})
    s = scenario_from_dict(copy.deepcopy(base))
    assert s.demand.repair is True
    assert s.demand.demand_columns == ["referrals", "home_care", "follow_up"]
    written = tmp_path / "scenario.toml"
    written.write_text(dump_scenario(s), encoding="utf-8")
    assert load_scenario(written).model_dump(exclude={"output"}) == s.model_dump(exclude={"output"})
    assert "columns = { referrals = \"Nb signalements *\", home_care = \"#4\"" in written.read_text(encoding="utf-8")


def test_demand_columns_as_a_toml_table(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text.count('source = "synthetic"') == 1
    text = text.replace('source = "synthetic"', 'source = "file"\nfile = "d.csv"\nrepair = true')
    text += '\n[demand.columns]\nreferrals = "Nb signalements *"\nhome_care = "Patients HAD *"\n'
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    s = load_scenario(path)
    assert s.demand.columns == {"referrals": "Nb signalements *", "home_care": "Patients HAD *"}
    assert s.demand.repair is True and s.demand.file == tmp_path / "d.csv"


@pytest.mark.parametrize("columns, weights, expected", [
    ({"Referrals": "x"}, {"Referrals": 1.0}, "role names ['Referrals'] must be lower-case words"),
    ({"referrals": " "}, {"referrals": 1.0}, "columns: ['referrals'] give no column"),
    ({"referrals": "#0"}, {"referrals": 1.0}, "positions start at #1"),
    ({"referrals": "#1"}, {"referrals": 1.0, "home_care": 0.5}, "weights: ['home_care'] are not demand columns"),
    ({}, {"referrals": 1.0}, "columns: name at least one demand column"),
])
def test_bad_demand_columns(base, columns, weights, expected):
    base["demand"].update(source="file", file="d.csv", columns=columns, weights=weights)
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(base, source="s.toml")
    assert expected in str(err.value)


def test_repair_flag_through_with(base):
    s = scenario_from_dict(base).with_(**{"demand.repair": True})
    assert s.demand.repair is True and default_scenario().demand.repair is False
