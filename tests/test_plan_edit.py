"""``sectorize plans edit``: a new plan from a stored one, moved and locked by hand, optionally
re-balanced (fewest patients moved), with its caseloads before/after and the checks."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from sectorize.cli import main
from sectorize.pipeline.assemble import check
from sectorize.pipeline.edit import EditError, edit_plan, parse_move
from sectorize.store.registry import Registry


@pytest.fixture(scope="module")
def stored(aura_run, tmp_path_factory):
    """A registry holding the AURA plan: ``(folder, plan id)``."""
    _, plan = aura_run
    folder = tmp_path_factory.mktemp("edit_registry")
    return folder, Registry(folder).add(plan, note="2026 plan")


@pytest.fixture()
def registry(stored, tmp_path):
    folder, plan_id = stored
    copy = tmp_path / "reg"
    shutil.copytree(folder, copy)
    return copy, plan_id


def boundary_moves(plan):
    """Moves ``(commune, neighbour's sector)`` along sector borders: the lightest (with patients) that
    keeps the plan valid, and the lightest that breaks a caseload band (the sector it leaves or joins)
    without cutting a sector."""
    from solvers.problem import caseload_band

    units, workers = plan.units, plan.workers.set_index("sector")
    tol = plan.scenario.model.tolerance
    lower, upper = caseload_band(workers["target"].to_numpy(dtype=float), tol)
    lower, upper = dict(zip(workers.index, lower)), dict(zip(workers.index, upper))
    load = units.groupby("sector")["workload"].sum()
    edges = sorted((u, v) for u, v in plan.graph.edges if units.at[u, "sector"] != units.at[v, "sector"])
    moves = sorted({(units.at[u, "workload"], u, units.at[v, "sector"]) for u, v in edges})
    valid, breaking = None, None
    for w, u, sector in moves:
        old = units.at[u, "sector"]
        breaks = load[sector] + w > upper[sector] or load[old] - w < lower[old]
        if w <= 0 or (breaks and breaking is not None) or (not breaks and valid is not None):
            continue
        variant = units.copy()
        variant.loc[u, ["group", "sector", "worker_id", "worker_name"]] = [
            workers.at[sector, "group"], sector, workers.at[sector, "worker_id"], workers.at[sector, "worker_name"]]
        problems = check(dataclasses.replace(plan, units=variant))
        if breaks and problems and not any("connected" in p for p in problems):
            breaking = (u, sector)
        elif not breaks and not problems:
            valid = (u, sector)
        if valid and breaking:
            break
    return valid, breaking


def test_parse_move():
    assert parse_move("01001=A2") == ("01001", "A2")
    assert parse_move("2a004=B1") == ("2A004", "B1")
    for bad in ("01001", "=A2", "01001=", "01001=A2=B3", "0 1001=A2"):
        with pytest.raises(EditError, match="write INSEE=SECTOR"):
            parse_move(bad)


def test_a_valid_move_by_hand_makes_a_child_plan(aura_run, registry, tmp_path, capsys):
    _, plan = aura_run
    folder, parent = registry
    (code, sector), _ = boundary_moves(plan)
    out = tmp_path / "out"
    assert main(["plans", "edit", parent, "--move", f"{code}={sector}", "--note", "CODIR: moved by hand",
                 "--registry", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "checks: all passed" in printed and "caseload per sector, before -> after" in printed
    child = printed.split("stored: ")[1].split()[0]
    reg = Registry(folder)
    stored = reg.get(child)
    assert stored.parent_id == parent and stored.valid and stored.note == "CODIR: moved by hand"
    diff = reg.diff(parent, child)
    assert diff["insee"].tolist() == [code] and diff["to_sector"].tolist() == [sector]
    written = Path(printed.split("written: ")[1].split()[0])
    for name in ("changes.csv", "kpi_before_after.csv", "edit.json", "diff_map.html", "map.html", "kpi.json"):
        assert (written / name).is_file(), name
    summary = json.loads((written / "edit.json").read_text(encoding="utf-8"))
    assert summary["parent"] == parent and summary["moves"] == {code: sector} and summary["rebalance"] is False
    table = pd.read_csv(written / "kpi_before_after.csv", sep=";", decimal=",", encoding="utf-8-sig",
                        dtype={"sector": str}).set_index("sector")
    load = plan.units.at[code, "workload"]
    old = plan.units.at[code, "sector"]
    assert table.at[sector, "caseload_after"] - table.at[sector, "caseload_before"] == pytest.approx(load, abs=2e-3)
    assert table.at[old, "caseload_before"] - table.at[old, "caseload_after"] == pytest.approx(load, abs=2e-3)
    assert table.at[sector, "communes_after"] == table.at[sector, "communes_before"] + 1
    untouched = [s for s in table.index if s not in (sector, old)]
    assert (table.loc[untouched, "caseload_after"] == table.loc[untouched, "caseload_before"]).all()
    # the child can be published like any plan
    assert main(["plans", "publish", child, "--effective-from", "2027-01-01", "--registry", str(folder)]) == 0


def test_an_edit_that_breaks_the_checks_is_refused_or_kept_invalid(aura_run, registry, tmp_path, capsys):
    _, plan = aura_run
    folder, parent = registry
    lyon_sector = plan.units.at["69388", "sector"]
    out = tmp_path / "out"
    command = ["plans", "edit", parent, "--move", f"63113={lyon_sector}", "--registry", str(folder),
               "--out", str(out)]
    assert main(command) == 2
    captured = capsys.readouterr()
    assert "not connected" in captured.out and "nothing was written or stored" in captured.err
    assert "--rebalance" in captured.err and not out.exists() and len(Registry(folder).list()) == 1

    assert main([*command, "--allow-invalid"]) == 1
    child = capsys.readouterr().out.split("stored: ")[1].split()[0]
    assert Registry(folder).get(child).valid is False and Registry(folder).get(child).parent_id == parent
    assert main(["plans", "publish", child, "--effective-from", "2027-01-01", "--registry", str(folder)]) == 2
    assert "never published" in capsys.readouterr().err


def test_rebalance_keeps_the_moves_and_locks_and_restores_the_checks(aura_run, stored):
    _, plan = aura_run
    folder, parent_id = stored
    parent = Registry(folder).get(parent_id)
    _, (code, sector) = boundary_moves(plan)
    old = plan.units.at[code, "sector"]
    by_hand = edit_plan(parent, {code: sector})
    assert by_hand.plan.violations and any("caseload" in v for v in by_hand.plan.violations)
    locked_sector = next(s for s in sorted(plan.workers["sector"]) if s not in (sector, old))
    result = edit_plan(parent, {code: sector}, locks=[locked_sector], rebalance=True, time_limit_s=6)
    new = result.plan.units
    assert result.plan.violations == [] and new.at[code, "sector"] == sector
    kept = plan.units.index[plan.units["sector"] == locked_sector]
    assert (new.loc[kept, "sector"] == locked_sector).all()
    assert (new["sector"] == locked_sector).sum() == len(kept)
    changed = result.changes.set_index("insee")
    assert changed.at[code, "reason"] == "moved by hand"
    assert (changed.drop(index=code)["reason"] == "rebalanced").all() and len(changed) > 1
    assert len(changed) < 0.05 * len(new)                    # a local repair, not a new plan
    assert result.summary["rebalance"] is True and result.summary["locks"] == [locked_sector]


def test_edit_hostile_arguments(registry, tmp_path, capsys):
    folder, parent = registry
    out = tmp_path / "out"
    base = ["plans", "edit", parent, "--registry", str(folder), "--out", str(out)]
    cases = [
        (["--move", "99999=A1"], 2, "--move 99999=A1: 99999 is not a commune of plan"),
        (["--move", "01001=Z9"], 2, "--move 01001=Z9: plan .* has no sector 'Z9' \\(its sectors: A1,"),
        (["--move", "01001=A1", "--move", "01001=A2"], 2, "01001 is already moved to A1"),
        (["--move", "01001=A1", "--lock", "Z9"], 2, "--lock Z9: neither a commune nor a sector"),
        ([], 2, "nothing to do"),
    ]
    for extra, code, pattern in cases:
        assert main([*base, *extra]) == code, extra
        assert pd.Series([capsys.readouterr().err]).str.contains(pattern).item(), (extra, pattern)
    here = Registry(folder).get(parent).sectors.set_index("insee").at["01001", "sector"]
    assert main([*base, "--move", f"01001={here}"]) == 0                 # already there: nothing to store
    assert "no commune changes sector" in capsys.readouterr().out
    assert main(["plans", "edit", "P20270101-nope", "--move", "01001=A1", "--registry", str(folder)]) == 4
    assert "'P20270101-nope' not found" in capsys.readouterr().err
    for extra, option in ((["--move", "01001"], "--move"), (["--move", "01001=A1=B"], "--move"),
                          (["--move", "01001=A1", "--time-limit", "-1"], "--time-limit")):
        with pytest.raises(SystemExit) as exit_:
            main([*base, *extra])
        assert exit_.value.code == 2 and f"argument {option}" in capsys.readouterr().err
    assert not out.exists() and len(Registry(folder).list()) == 1
