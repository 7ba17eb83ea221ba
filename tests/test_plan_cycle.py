"""The manager's annual cycle on the registry: publications (rollback, same-day supersession,
schema upgrade, routing that follows them) and the ``sectorize plans publish`` command."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import date

import pytest

from sectorize.cli import main
from sectorize.store.registry import (
    DB_NAME,
    SCHEMA_VERSION,
    PlanNotFoundError,
    Registry,
    RegistryError,
)
from plan_variants import moved


def broken(plan):
    """A copy of ``plan`` with Clermont-Ferrand (63113) in a Lyon sector: not contiguous, invalid."""
    units = plan.units.copy()
    columns = ["group", "sector", "worker_id", "worker_name"]
    units.loc["63113", columns] = plan.units.loc["69388", columns].to_numpy()
    return dataclasses.replace(plan, units=units)


@pytest.fixture(scope="module")
def three_plans(aura_run, tmp_path_factory):
    """A registry with plans A (in force from 2026-01-01), B (from 2027-01-01) and C (stored only)."""
    _, plan = aura_run
    folder = tmp_path_factory.mktemp("cycle")
    reg = Registry(folder)
    a = reg.add(plan, effective_from="2026-01-01", note="CODIR 2025")
    b = reg.add(moved(plan, 1, 0)[0], effective_from="2027-01-01", parent_id=a, note="CODIR 2026")
    c = reg.add(moved(plan, 2, 0)[0], parent_id=a)
    return folder, a, b, c


def test_publishing_an_earlier_plan_rolls_back_from_that_day(three_plans, tmp_path):
    import shutil

    from sectorize.serve.routing import Router

    source, a, b, c = three_plans
    folder = tmp_path / "reg"
    shutil.copytree(source, folder)
    reg = Registry(folder)
    assert reg.effective_on("2027-02-01").id == b

    pub = reg.publish(a, "2027-03-01", note="2027 plan withdrawn")
    assert (pub.plan_id, pub.effective_from, pub.superseded_by) == (a, date(2027, 3, 1), None)
    assert (pub.in_force_from, pub.in_force_to) == (date(2027, 3, 1), None)
    assert reg.effective_on("2026-06-01").id == a
    assert reg.effective_on("2027-02-28").id == b
    assert reg.effective_on("2027-03-01").id == a
    assert reg.effective_on("2031-01-01").id == a
    # the period in force holding the day asked
    in_force = reg.effective_on("2027-06-01")
    assert (in_force.effective_from, in_force.effective_to) == (date(2027, 3, 1), None)
    earlier = reg.effective_on("2026-06-01")
    assert (earlier.effective_from, earlier.effective_to) == (date(2026, 1, 1), date(2027, 1, 1))
    assert reg.get(a).periods == ((date(2026, 1, 1), date(2027, 1, 1)), (date(2027, 3, 1), None))
    assert reg.get(b).periods == ((date(2027, 1, 1), date(2027, 3, 1)),)
    assert [p.seq for p in reg.get(a).publications] == [1, 3]
    calendar = reg.periods()
    assert calendar["id"].tolist() == [a, b, a]
    assert calendar["effective_from"].tolist() == [date(2026, 1, 1), date(2027, 1, 1), date(2027, 3, 1)]

    # the routing service follows the publications
    assert Router.from_registry(folder, on=date(2027, 2, 1)).public_plan()["plan_id"] == b
    assert Router.from_registry(folder, on=date(2027, 4, 1)).public_plan()["plan_id"] == a

    # withdrawn before it starts: a later publication for the same day supersedes, on record
    pub2 = reg.publish(c, "2027-01-01", note="B replaced by C before it starts")
    assert reg.effective_on("2027-01-15").id == c
    assert reg.get(b).periods == () and reg.get(b).effective_from is None
    history = reg.publications(today=date(2027, 2, 1)).set_index("seq")
    assert history.loc[2, "superseded_by"] == pub2.seq
    assert history.loc[2, "status"] == f"superseded by #{pub2.seq}"
    assert history.loc[1, "status"] == "ended" and history.loc[pub2.seq, "status"] == "in force"
    assert history.loc[3, "status"] == "scheduled"
    assert history.loc[3, "note"] == "2027 plan withdrawn"
    assert history.loc[1, "note"] == "CODIR 2025"  # plans add --effective-from --note: the note of both

    # the plan that already decides a day: nothing new recorded; a superseded one can win again
    assert reg.publish(c, "2027-01-01").seq == pub2.seq
    again = reg.publish(b, date(2027, 1, 1), note="B after all")
    assert again.seq == pub2.seq + 1 and reg.effective_on("2027-01-15").id == b
    assert len(reg.publications()) == 5 and len(reg.publications(b)) == 2
    assert reg.list().set_index("id").loc[b, "publications"] == 2


def test_publish_refuses_invalid_plans_unknown_ids_and_bad_dates(aura_run, tmp_path):
    _, plan = aura_run
    reg = Registry(tmp_path)
    good = reg.add(plan)
    bad = reg.add(broken(plan), allow_invalid=True)
    assert reg.get(bad).valid is False
    with pytest.raises(RegistryError, match=rf"plan {bad} is stored as invalid.*never published"):
        reg.publish(bad, "2027-01-01")
    with pytest.raises(RegistryError, match="invalid plan cannot be put in service"):
        reg.add(broken(plan), allow_invalid=True, effective_from="2027-01-01")
    with pytest.raises(PlanNotFoundError, match=r"'P20270101-nope'.*not found"):
        reg.publish("P20270101-nope", "2027-01-01")
    for day in ("2027-13-01", "01/01/2027", ""):
        with pytest.raises(RegistryError, match="effective_from.*YYYY-MM-DD"):
            reg.publish(good, day)
    with pytest.raises(RegistryError, match="effective_from"):
        reg.publish(good, None)
    assert reg.publications().empty

    # the database itself refuses to publish an invalid plan, and to change or delete a publication
    reg.publish(good, "2027-01-01")
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="only a stored, valid plan"):
            conn.execute("INSERT INTO publications (plan_id, effective_from, published_at, note) "
                         "VALUES (?, '2028-01-01', 'now', '')", (bad,))
        with pytest.raises(sqlite3.DatabaseError, match="only a stored, valid plan"):
            conn.execute("INSERT INTO publications (plan_id, effective_from, published_at, note) "
                         "VALUES ('P-none', '2028-01-01', 'now', '')")
        for statement in ("UPDATE publications SET plan_id = 'x'", "DELETE FROM publications"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(statement)
    assert reg.publications()["plan_id"].tolist() == [good]


def test_re_adding_stored_content_with_another_day_points_to_publish(three_plans, aura_run, tmp_path):
    import shutil

    _, plan = aura_run
    source, a, _, _ = three_plans
    shutil.copytree(source, tmp_path / "reg")
    reg = Registry(tmp_path / "reg")
    assert reg.add(plan, effective_from="2026-01-01") == a          # the day it is published from: same id
    with pytest.raises(RegistryError, match=rf"already stored as {a} \(published from 2026-01-01\).*"
                                            rf"plans publish {a} --effective-from 2028-01-01"):
        reg.add(plan, effective_from="2028-01-01")
    assert len(reg.publications()) == 2


def _as_schema_1(folder, dated: dict[str, str]) -> None:
    """Turn a registry into the layout of schema 1: no publications, ``plans.effective_from`` set."""
    with sqlite3.connect(folder / DB_NAME) as conn:
        for name in ("publications_no_update", "publications_no_delete", "publications_valid_only",
                     "plans_no_update"):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE publications")
        for plan_id, day in dated.items():
            conn.execute("UPDATE plans SET effective_from = ? WHERE id = ?", (day, plan_id))
        conn.execute("CREATE TRIGGER plans_no_update BEFORE UPDATE ON plans "
                     "BEGIN SELECT RAISE(ABORT, 'stored plans are immutable'); END")
        conn.execute("PRAGMA user_version = 1")


def test_a_schema_1_registry_is_upgraded_with_its_dates(aura_run, tmp_path):
    _, plan = aura_run
    reg = Registry(tmp_path)
    a = reg.add(plan, note="CODIR 2025")
    b = reg.add(moved(plan, 1, 0)[0], parent_id=a)
    draft = reg.add(moved(plan, 2, 0)[0])
    bad = reg.add(broken(plan), allow_invalid=True)
    # schema 1 (before 2026-12) could date an invalid plan: it is not carried over (never routed anyway)
    _as_schema_1(tmp_path, {a: "2026-01-01", b: "2027-01-01", bad: "2028-01-01"})
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert "publications" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}

    upgraded = Registry(tmp_path)
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    history = upgraded.publications()
    assert history["plan_id"].tolist() == [a, b]
    assert history["effective_from"].tolist() == [date(2026, 1, 1), date(2027, 1, 1)]
    assert history["note"].tolist() == ["CODIR 2025", ""]
    added = upgraded.list().set_index("id")["created"]
    assert all(history["published_at"].str.len() > 0) and len(added) == 4
    assert upgraded.effective_on("2026-06-01").id == a and upgraded.effective_on("2029-01-01").id == b
    assert upgraded.get(a).effective_to == date(2027, 1, 1)
    assert upgraded.get(draft).periods == ()
    # opened again: nothing added twice; publishing works on the upgraded registry
    assert len(Registry(tmp_path).publications()) == 2
    Registry(tmp_path).publish(a, "2027-06-01", note="rollback")
    assert Registry(tmp_path).effective_on("2027-07-01").id == a


def test_plans_publish_cli(three_plans, tmp_path, capsys):
    import shutil

    source, a, b, c = three_plans
    reg = str(tmp_path / "reg")
    shutil.copytree(source, reg)

    assert main(["plans", "publish", a, "--effective-from", "2027-03-01", "--note", "CODIR: back to 2026",
                 "--registry", reg]) == 0
    out = capsys.readouterr().out
    assert f"published: {a} in force from 2027-03-01 (publication #3)" in out
    assert "until: further notice" in out

    assert main(["plans", "publish", c, "--effective-from", "2027-01-01", "--registry", reg]) == 0
    out = capsys.readouterr().out
    assert f"supersedes: publication #2 of {b} for the same day" in out
    assert f"until: 2027-03-01, when {a} takes over" in out

    assert main(["plans", "list", "--registry", reg]) == 0
    listing = capsys.readouterr().out
    assert "publications (in order of publication):" in listing
    assert "superseded by #4" in listing and "CODIR: back to 2026" in listing

    assert main(["plans", "show", a, "--registry", reg]) == 0
    shown = capsys.readouterr().out
    assert "in force       2026-01-01 to 2027-01-01, 2027-03-01 to open" in shown
    assert "CODIR: back to 2026" in shown and b not in shown.split("publications")[-1]

    # hostile input: unknown plan (4), impossible dates (2, argparse names the option), nothing recorded
    assert main(["plans", "publish", "P20270101-nope", "--effective-from", "2027-01-01", "--registry", reg]) == 4
    assert "'P20270101-nope' not found" in capsys.readouterr().err
    for day in ("2027-13-01", "2027-02-30", "tomorrow"):
        with pytest.raises(SystemExit) as exit_:
            main(["plans", "publish", a, "--effective-from", day, "--registry", reg])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "--effective-from" in err and day in err and "YYYY-MM-DD" in err
    with pytest.raises(SystemExit):
        main(["plans", "publish", a, "--registry", reg])          # the day is required
    assert "--effective-from" in capsys.readouterr().err
    assert main(["plans", "publish", a, "--effective-from", "2027-01-01", "--registry", str(tmp_path / "none")]) == 4
    assert len(Registry(reg).publications()) == 4
