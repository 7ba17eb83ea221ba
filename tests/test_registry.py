"""The plan registry: round trips of the real AURA plan, validity dates, content addressing,
immutability, crash safety (a real process killed mid-transaction) and the ``sectorize plans`` CLI."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from plan_variants import moved

from sectorize.cli import main
from sectorize.store.registry import (
    DB_NAME,
    RUN_FILES,
    PlanNotFoundError,
    Registry,
    RegistryError,
    RegistryNotFoundError,
    RegistrySchemaError,
    combined_input_hash,
    units_hash,
)

ROOT = Path(__file__).resolve().parents[1]


def read_sectors_csv(path: Path) -> pd.DataFrame:
    """sectors.csv read independently of the registry: codes as text, decimal comma."""
    text = {c: str for c in ("insee", "name", "dep", "group", "sector", "worker_id", "worker_name")}
    return pd.read_csv(path, sep=";", decimal=",", encoding="utf-8-sig", dtype=text)




def copy_run(folder: Path, dest: Path) -> Path:
    """The files of a run folder the registry reads (not the map), copied to ``dest``."""
    dest.mkdir(parents=True)
    for name in RUN_FILES:
        shutil.copy2(folder / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def from_plan(aura_run, tmp_path_factory):
    """A registry holding the AURA plan added from the Plan object: ``(folder, id)``."""
    folder = tmp_path_factory.mktemp("registry_plan")
    _, plan = aura_run
    return folder, Registry(folder).add(plan, effective_from=date(2027, 1, 1), note="accepted 2026-12-01")


# --------------------------------------------------------------------------- round trips


def test_plan_and_run_folder_give_the_same_stored_plan(aura_run, from_plan, tmp_path):
    run, plan = aura_run
    plan_folder, plan_id = from_plan
    assert plan_id.startswith("P") and len(plan_id.split("-")[1]) == 8

    # the run folder alone, in a fresh registry: geography reloaded from its scenario
    fresh = Registry(tmp_path / "reg")
    folder_id = fresh.add(run)
    # content-addressed: same content, same hash (the id's date is the day the plan was stored
    # from a Plan object, or written to its run folder: the two differ across midnight)
    assert folder_id.split("-")[1] == plan_id.split("-")[1]
    a, b = Registry(plan_folder).get(plan_id), fresh.get(folder_id)

    expected = read_sectors_csv(run / "sectors.csv")
    for stored in (a, b):
        pd.testing.assert_frame_equal(stored.sectors, expected, check_dtype=False)
        assert stored.sectors["insee"].map(len).eq(5).all()
        assert "01001" in set(stored.sectors["insee"])            # leading zero kept
        assert stored.geometry.crs.to_epsg() == 4326
        assert stored.geometry.index.equals(pd.Index(sorted(plan.units.index)))
        assert stored.geometry.geom_equals_exact(plan.units.geometry.loc[stored.geometry.index], 0).all()
        assert stored.vintage == plan.vintage == "COG 2026"
        assert stored.inputs == plan.inputs
        assert stored.input_hash == combined_input_hash(plan.inputs)
        assert stored.solve["backend"] == plan.solve["backend"]
        assert "log" not in stored.solve
        assert len(stored.workers) == 11 and len(stored.postcodes) > 700
    pd.testing.assert_frame_equal(a.workers, b.workers)
    pd.testing.assert_frame_equal(a.postcodes, b.postcodes)
    assert a.scenario_toml == b.scenario_toml == (run / "scenario.toml").read_text(encoding="utf-8")
    assert a.note == "accepted 2026-12-01" and a.effective_from == date(2027, 1, 1)
    # workers.csv and postcodes.csv read back the same way as the registry stores them
    workers = pd.read_csv(run / "workers.csv", sep=";", decimal=",", encoding="utf-8-sig",
                          dtype={"worker_id": str, "centre": str, "base_key": str})
    assert workers["caseload"].tolist() == a.workers["caseload"].tolist()


def test_reopening_reproduces_the_tables(aura_run, from_plan):
    folder, plan_id = from_plan
    first = Registry(folder).get(plan_id)
    again = Registry(folder, create=False).get(plan_id)
    pd.testing.assert_frame_equal(first.sectors, again.sectors)
    assert first.geometry.geom_equals_exact(again.geometry, 0).all()
    assert first.content_hash == again.content_hash


def test_units_hash_is_the_pipeline_units_hash(aura_run):
    _, plan = aura_run
    assert units_hash(plan.units) == plan.inputs["units"]


def test_geometry_is_stored_once_per_geography(aura_run, tmp_path):
    _, plan = aura_run
    reg = Registry(tmp_path)
    reg.add(plan)
    reg.add(moved(plan)[0])
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        assert conn.execute("SELECT count(*) FROM plans").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM geographies").fetchone()[0] == 1
        # the routing table is also queryable in plain SQL
        assert conn.execute("SELECT count(*) FROM assignments").fetchone()[0] == 2 * len(plan.units)


# --------------------------------------------------------------------------- dates, ids, diff


def test_effective_dates_pick_the_plan_valid_on_a_day(aura_run, tmp_path):
    _, plan = aura_run
    reg = Registry(tmp_path)
    assert reg.latest() is None and reg.effective_on(date(2027, 1, 1)) is None and reg.list().empty
    p2025 = reg.add(plan, effective_from=date(2025, 1, 1))
    p2027 = reg.add(moved(plan, 1, 0)[0], effective_from="2027-01-01", parent_id=p2025)
    # added later but taking effect in between: the earlier plan's end moves
    p2026 = reg.add(moved(plan, 2, 0)[0], effective_from=date(2026, 1, 1), parent_id=p2025)
    draft = reg.add(moved(plan, 3, 0)[0])   # a count of moves each: distinct contents
    assert len({p2025, p2026, p2027, draft}) == 4

    assert reg.effective_on(date(2024, 12, 31)) is None
    assert reg.effective_on(date(2025, 1, 1)).id == p2025
    assert reg.effective_on(date(2025, 12, 31)).id == p2025
    assert reg.effective_on(date(2026, 1, 1)).id == p2026
    assert reg.effective_on("2031-06-30").id == p2027
    assert reg.get(p2025).effective_to == date(2026, 1, 1)
    assert reg.get(p2026).effective_to == date(2027, 1, 1)
    assert reg.get(p2027).effective_to is None and reg.get(p2027).parent_id == p2025
    assert reg.get(draft).effective_from is None and reg.get(draft).effective_to is None
    assert reg.latest().id == draft

    table = reg.list()
    assert table["id"].tolist() == [p2025, p2027, p2026, draft]             # order of addition
    assert table.set_index("id").loc[p2025, "effective_to"] == date(2026, 1, 1)
    assert {"geometry", "workers", "postcodes", "scenario_toml"}.isdisjoint(table.columns)   # no big tables
    assert table["sectors"].eq(11).all() and table["communes"].eq(len(plan.units)).all()

    with pytest.raises(PlanNotFoundError, match="P19990101"):
        reg.add(moved(plan, 2, 30)[0], parent_id="P19990101-00000000")
    assert len(reg.list()) == 4                      # a refused add leaves nothing behind

    # a day already taken: the later publication supersedes the earlier one, which stays on record
    p2026b = reg.add(moved(plan, 4, 0)[0], effective_from=date(2026, 1, 1))
    assert reg.effective_on(date(2026, 6, 1)).id == p2026b
    assert reg.get(p2026).effective_from is None and reg.get(p2026).periods == ()
    history = reg.publications().set_index("plan_id")
    assert history.loc[p2026, "status"] == f"superseded by #{history.loc[p2026b, 'seq']}"


def test_identical_content_returns_the_existing_id(aura_run, tmp_path):
    _, plan = aura_run
    reg = Registry(tmp_path)
    first = reg.add(plan, effective_from=date(2027, 1, 1))
    assert reg.add(plan) == first
    assert reg.add(plan, effective_from="2027-01-01") == first
    assert len(reg.list()) == 1
    with pytest.raises(RegistryError, match=rf"already stored as {first}.*2027-01-01"):
        reg.add(plan, effective_from=date(2028, 1, 1))


def test_diff_lists_the_communes_that_changed(aura_run, tmp_path):
    _, plan = aura_run
    reg = Registry(tmp_path)
    before = reg.add(plan)
    variant, communes = moved(plan, 3, 0)
    after = reg.add(variant)
    changed = reg.diff(before, after)
    assert sorted(changed["insee"]) == sorted(communes)
    assert set(changed["change"]) == {"moved"}
    row = changed.set_index("insee").loc[communes[0]]
    assert row["from_sector"] == plan.units.loc[communes[0], "sector"]
    assert row["to_sector"] == variant.units.loc[communes[0], "sector"] != row["from_sector"]
    assert row["referrals"] == pytest.approx(plan.units.loc[communes[0], "referrals"], abs=1e-3)
    assert reg.diff(before, before).empty
    with pytest.raises(PlanNotFoundError, match="nope"):
        reg.diff(before, "nope")


def test_unknown_id_names_it_and_close_ids(from_plan):
    folder, plan_id = from_plan
    with pytest.raises(PlanNotFoundError) as err:
        Registry(folder).get(plan_id[:-2])
    assert plan_id[:-2] in str(err.value) and plan_id in str(err.value)
    assert isinstance(err.value, KeyError)


# --------------------------------------------------------------------------- bad input


def test_incomplete_or_invalid_run_folders_are_refused(aura_run, tmp_path):
    run, _ = aura_run
    reg = Registry(tmp_path / "reg")
    partial = copy_run(run, tmp_path / "partial")
    (partial / "workers.csv").unlink()
    (partial / "run.json").unlink()
    with pytest.raises(RegistryError, match=r"missing run\.json, workers\.csv"):
        reg.add(partial)
    with pytest.raises(RegistryError, match="no such run folder"):
        reg.add(tmp_path / "nowhere")

    with pytest.raises(RegistryError, match="effective_from.*YYYY-MM-DD"):
        reg.add(run, effective_from="01/01/2027")


def test_every_plan_is_checked_again_from_its_tables(aura_run, tmp_path):
    """The registry ignores the run's own verdict: valid tables flagged invalid are stored as valid;
    a hand-edited sector table (Clermont-Ferrand moved into a Lyon sector) is refused with the reasons,
    or stored marked invalid with --allow-invalid, never in service, never routed."""
    from sectorize.serve.routing import Router

    run, plan = aura_run
    reg = Registry(tmp_path / "reg")
    flagged = copy_run(run, tmp_path / "flagged")
    facts = json.loads((flagged / "run.json").read_text(encoding="utf-8"))
    facts.update(valid=False, violations=["sector A1: caseload 190.0 over the tolerance"])
    (flagged / "run.json").write_text(json.dumps(facts), encoding="utf-8")
    stored = reg.get(reg.add(flagged))
    assert stored.valid is True and stored.violations == ()

    edited = copy_run(run, tmp_path / "edited")
    table = pd.read_csv(edited / "sectors.csv", sep=";", dtype=str, encoding="utf-8-sig", keep_default_na=False)
    lyon = table.set_index("insee").loc["69388"]
    clermont = table["insee"] == "63113"
    assert table.loc[clermont, "sector"].item() != lyon["sector"]
    table.loc[clermont, ["group", "sector", "worker_id", "worker_name"]] = (
        lyon["group"], lyon["sector"], lyon["worker_id"], lyon["worker_name"])
    table.to_csv(edited / "sectors.csv", sep=";", index=False, encoding="utf-8-sig")
    assert json.loads((edited / "run.json").read_text(encoding="utf-8"))["valid"] is True
    with pytest.raises(RegistryError, match=f"independent checks.*sector {lyon['sector']}.*allow_invalid") as err:
        reg.add(edited)
    assert "63113" in str(err.value) or "not connected" in str(err.value) or "contiguous" in str(err.value)
    with pytest.raises(RegistryError, match="invalid plan cannot be put in service"):
        reg.add(edited, allow_invalid=True, effective_from="2027-01-01")
    plan_id = reg.add(edited, allow_invalid=True, note="kept for the record")
    stored = reg.get(plan_id)
    assert stored.valid is False and any(lyon["sector"] in v for v in stored.violations)
    with pytest.raises(LookupError, match="never routed"):
        Router.from_registry(tmp_path / "reg", plan_id)


def test_newer_schema_and_foreign_files_are_refused(tmp_path):
    Registry(tmp_path / "reg")
    with sqlite3.connect(tmp_path / "reg" / DB_NAME) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(RegistrySchemaError, match="newer sectorize.*schema 99"):
        Registry(tmp_path / "reg")

    (tmp_path / "other").mkdir()
    with sqlite3.connect(tmp_path / "other" / DB_NAME) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(RegistrySchemaError, match="not a sectorize plan registry"):
        Registry(tmp_path / "other")
    with pytest.raises(RegistryNotFoundError, match="no plan registry"):
        Registry(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()


def test_stored_plans_cannot_be_changed(from_plan):
    folder, plan_id = from_plan
    assert not any(hasattr(Registry, name) for name in ("update", "delete", "remove"))
    with sqlite3.connect(folder / DB_NAME) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        for statement in ("UPDATE plans SET note = 'x'", "DELETE FROM plans",
                          "UPDATE assignments SET sector = 'A1'", "DELETE FROM geographies"):
            with pytest.raises(sqlite3.DatabaseError, match="immutable"):
                conn.execute(statement)
    assert Registry(folder).get(plan_id).note == "accepted 2026-12-01"


# --------------------------------------------------------------------------- crash safety


CHILD = textwrap.dedent("""
    import os, pickle, sys, time
    import sectorize.store.registry as registry

    folder, plan_file, mode = sys.argv[1:4]
    plan = pickle.load(open(plan_file, "rb"))

    def crash(conn):
        # every row of the plan (and of its geography in an empty registry) is written, not committed
        print("in-transaction", flush=True)
        if mode == "exit":
            os._exit(9)
        time.sleep(120)          # the parent kills us with SIGKILL meanwhile

    registry._before_commit = crash
    registry.Registry(folder).add(plan, effective_from="2030-01-01")
    print("committed", flush=True)
""")


@pytest.mark.parametrize(("start", "mode"), [("one plan", "sigkill"), ("empty", "exit")])
def test_a_killed_add_leaves_the_registry_as_it_was(aura_run, tmp_path, mode, start):
    _, plan = aura_run
    folder = tmp_path / "reg"
    reg = Registry(folder)
    if start == "one plan":
        reg.add(plan, effective_from=date(2027, 1, 1))
    before = reg.list()
    variant, _ = moved(plan, 2, 0)
    plan_file = tmp_path / "plan.pkl"
    plan_file.write_bytes(pickle.dumps(variant))
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")

    child = subprocess.Popen([sys.executable, str(script), str(folder), str(plan_file), mode],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert child.stdout.readline().strip() == "in-transaction", child.stderr.read()
        if mode == "sigkill":
            # the writer holds its transaction open: readers are not blocked (WAL)
            started = time.perf_counter()
            pd.testing.assert_frame_equal(Registry(folder).list(), before)
            if start == "one plan":
                assert Registry(folder).effective_on(date(2031, 1, 1)).id == before["id"].iloc[0]
            assert time.perf_counter() - started < 5
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == (-signal.SIGKILL if mode == "sigkill" else 9)

    reopened = Registry(folder)
    pd.testing.assert_frame_equal(reopened.list(), before)
    with sqlite3.connect(folder / DB_NAME) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM assignments").fetchone()[0] == len(before) * len(plan.units)
        assert conn.execute("SELECT count(*) FROM geographies").fetchone()[0] == len(before)
    # the lock died with the process: the same add now goes through
    assert reopened.add(variant, effective_from="2030-01-01") in set(reopened.list()["id"])


def test_concurrent_adds_are_serialised(aura_run, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    _, plan = aura_run
    Registry(tmp_path)
    variants = [moved(plan, 1, k)[0] for k in (0, 40)]
    with ThreadPoolExecutor(2) as pool:   # one Registry object and connection per writer
        ids = list(pool.map(lambda p: Registry(tmp_path).add(p[0], effective_from=p[1]),
                            zip(variants, ["2027-01-01", "2028-01-01"])))
    assert sorted(Registry(tmp_path).list()["id"]) == sorted(ids) and len(set(ids)) == 2
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        assert conn.execute("SELECT count(*) FROM geographies").fetchone()[0] == 1
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --------------------------------------------------------------------------- CLI


def test_plans_cli(aura_run, tmp_path, capsys):
    run, plan = aura_run
    reg = str(tmp_path / "reg")
    assert main(["plans", "list", "--registry", reg]) == 4  # not found (sectorize.cli.exit_codes)
    assert "no plan registry" in capsys.readouterr().err

    assert main(["plans", "add", str(run), "--registry", reg, "--effective-from", "2027-01-01",
                 "--note", "CODIR 2026-11-30"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("stored: P")
    first = out.splitlines()[0].split()[-1]
    assert f"published: {first} in force from 2027-01-01 (publication #1)" in out   # add + publish
    assert main(["plans", "add", str(run), "--registry", reg]) == 0
    assert capsys.readouterr().out.strip() == f"already stored: {first}"

    second = Registry(reg).add(moved(plan, 4, 0)[0], effective_from=date(2028, 1, 1), parent_id=first)
    assert main(["plans", "list", "--registry", reg]) == 0
    listing = capsys.readouterr().out
    assert first in listing and second in listing and "2028-01-01" in listing

    assert main(["plans", "show", first, "--registry", reg]) == 0
    shown = capsys.readouterr().out
    assert f"plan           {first}" in shown and "2027-01-01 to 2028-01-01" in shown
    assert "Travailleur social 11" in shown and "caseload" in shown and "CODIR 2026-11-30" in shown

    diff_csv = tmp_path / "moved.csv"
    assert main(["plans", "diff", first, second, "--registry", reg, "--out", str(diff_csv)]) == 0
    out = capsys.readouterr().out
    assert "4 commune(s) changed" in out and "4 moved" in out and "referrals" in out
    moved_rows = pd.read_csv(diff_csv, sep=";", decimal=",", encoding="utf-8-sig", dtype={"insee": str})
    assert len(moved_rows) == 4 and moved_rows["insee"].str.len().eq(5).all()

    exports = tmp_path / "exports"
    assert main(["plans", "export", second, "--registry", reg, "--out", str(exports),
                 "--format", "csv,parquet", "--suppress-below", "5"]) == 0
    folder = Path(capsys.readouterr().out.split("written: ")[1].strip())
    assert sorted(p.name for p in folder.iterdir()) == [
        "plan_metadata.json", "postcode_table.csv", "postcode_table.parquet", "routing_service.openapi.json",
        "sector_table.csv", "sector_table.parquet"]
    assert main(["plans", "export", second, "--registry", reg, "--out", str(exports), "--format", "ods"]) == 2
    assert "ods" in capsys.readouterr().err

    assert main(["plans", "show", "P20261201-deadbeef", "--registry", reg]) == 4
    err = capsys.readouterr().err
    assert "P20261201-deadbeef" in err and "not found" in err
    assert main(["plans", "export", "nope", "--registry", reg, "--out", str(exports)]) == 4
    assert main(["plans", "add", str(tmp_path), "--registry", reg]) == 2
    assert "not a complete run folder" in capsys.readouterr().err
    assert main(["plans", "add", str(run), "--registry", reg, "--effective-from", "2029-01-01"]) == 2
    assert f"already stored as {first}" in capsys.readouterr().err
