"""The web app's JSON API over a real AURA plan: desk, sessions, roles, CSRF, drafts, publication, uploads.

The browser tests (``tests/test_app_browser.py``) drive the pages; these tests
check the server's rules directly, with Starlette's test client.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from sectorize.app.accounts import CSRF_COOKIE, UserStore
from sectorize.app.web import create_app
from sectorize.store.registry import Registry

PASSWORD = "correct horse battery"
TODAY = date(2027, 3, 1)


@pytest.fixture(scope="module")
def registry_folder(aura_registry, tmp_path_factory):
    """A registry holding the real AURA plan, in force since 2027-01-01, with an editor and a publisher."""
    folder = tmp_path_factory.mktemp("app_registry") / "registry"
    shutil.copytree(aura_registry[0], folder)
    plan_id = aura_registry[1]
    Registry(folder).publish(plan_id, "2027-01-01", note="test plan")
    users = UserStore(folder)
    users.add("claire", "editor", PASSWORD)
    users.add("marc", "publisher", PASSWORD)
    return folder, plan_id


@pytest.fixture()
def fresh_registry(registry_folder, tmp_path):
    """A copy of the registry a test may change (publish, save)."""
    folder = tmp_path / "registry"
    shutil.copytree(registry_folder[0], folder)
    return folder, registry_folder[1]


@pytest.fixture(scope="module")
def desk(registry_folder):
    with TestClient(create_app(registry_folder[0], today=lambda: TODAY)) as client:
        yield client


def login(client: TestClient, user: str) -> dict[str, str]:
    """Log in; returns the headers a state-changing request needs."""
    answer = client.post("/api/login", json={"user": user, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"X-CSRF-Token": client.cookies[CSRF_COOKIE]}


# ---- the desk ------------------------------------------------------------------


def test_the_desk_routes_a_commune_name_to_its_referent(desk, registry_folder, aura_run):
    answer = desk.get("/api/route", params={"q": "villeurbanne"})
    assert answer.status_code == 200
    body = answer.json()
    sectors = aura_run[1].units
    assert body["status"] == "routed" and body["insee"] == "69266"
    assert body["sector"] == str(sectors.loc["69266", "sector"])
    assert body["worker_name"] and body["worker_id"]
    assert body["plan"]["id"] == registry_folder[1] and body["plan"]["effective_from"] == "2027-01-01"
    assert body["later"] == []


def test_a_postcode_spanning_sectors_answers_every_sector_with_its_share(desk, registry_folder):
    postcodes = Registry(registry_folder[0]).get(registry_folder[1]).postcodes
    codes = set(Registry(registry_folder[0]).get(registry_folder[1]).sectors["insee"].astype(str))
    spanning = postcodes.loc[postcodes["spans_sectors"].astype(str).isin(["1", "True", "true"]), "postcode"]
    spanning = [p for p in spanning.astype(str) if p not in codes]   # not also a commune's INSEE code
    assert spanning, "the AURA plan has postcodes spanning sectors"
    body = desk.get("/api/route", params={"q": spanning[0]}).json()
    assert body["status"] == "ambiguous"
    shares = [c["share"] for c in body["candidates"]]
    assert len(shares) >= 2 and abs(sum(shares) - 1) < 0.02


def test_homonyms_ask_to_choose(desk):
    body = desk.get("/api/route", params={"q": "Apremont"}).json()
    assert body["status"] == "choose" and len(body["choices"]) >= 2
    chosen = desk.get("/api/route", params={"q": body["choices"][0]["q"]}).json()
    assert chosen["status"] == "routed" and chosen["insee"] == body["choices"][0]["insee"]


def test_a_map_click_is_routed(desk):
    body = desk.get("/api/route", params={"lat": 45.7719, "lon": 4.8902}).json()   # Villeurbanne town hall
    assert body["insee"] == "69266"


def test_unknown_text_and_days_without_plan(desk):
    assert desk.get("/api/route", params={"q": "xyzzy"}).status_code == 404
    early = desk.get("/api/route", params={"q": "Villeurbanne", "on": "2026-06-01"})
    assert early.status_code == 404 and "2027-01-01" in early.json()["message"]
    assert desk.get("/api/route", params={"q": "Villeurbanne", "on": "2027-02-30"}).status_code == 422


def test_suggestions_and_geometry(desk):
    labels = [s["label"] for s in desk.get("/api/suggest", params={"q": "vill"}).json()["suggestions"]]
    assert labels[0] == "Villeurbanne (69)"
    answer = desk.get("/api/geometry")
    assert answer.status_code == 200
    features = answer.json()["features"]
    assert len(features) == 4033 and all(f["geometry"]["coordinates"] for f in features)
    assert desk.get("/api/geometry", headers={"If-None-Match": answer.headers["etag"]}).status_code == 304
    plan = desk.get("/api/plan").json()
    assert len(plan["assignment"]) == 4033 and len(plan["sectors"]) == 11
    assert all(s["color"].startswith("#") for s in plan["sectors"])


def test_every_answer_forbids_foreign_scripts_and_framing(desk):
    page = desk.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "server" not in page.headers
    assert desk.get("/studio").status_code == 200


def test_the_api_is_described(desk):
    paths = desk.get("/openapi.json").json()["paths"]
    for path in ("/api/login", "/api/plans/{plan_id}/drafts", "/api/drafts/{draft_id}/moves",
                 "/api/drafts/{draft_id}/undo", "/api/drafts/{draft_id}/save", "/api/plans/{plan_id}/publish",
                 "/api/route"):
        assert path in paths, path


# ---- sessions, roles, CSRF ------------------------------------------------------


def test_anonymous_users_get_the_desk_only(desk, registry_folder):
    plan_id = registry_folder[1]
    assert desk.get("/api/plans").status_code == 401
    assert desk.post(f"/api/plans/{plan_id}/drafts").status_code in (401, 403)
    publish = desk.post(f"/api/plans/{plan_id}/publish", json={"effective_from": "2028-01-01"},
                        headers={"X-CSRF-Token": "x"}, cookies={CSRF_COOKIE: "x"})
    assert publish.status_code == 401
    assert desk.get("/api/me").json() == {"user": None, "role": None}


def test_login_sets_a_strict_httponly_session_and_a_csrf_cookie(registry_folder):
    with TestClient(create_app(registry_folder[0], today=lambda: TODAY)) as client:
        answer = client.post("/api/login", json={"user": "claire", "password": PASSWORD})
        cookies = answer.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("session="))
        csrf = next(c for c in cookies if c.startswith("csrf_token="))
        assert "HttpOnly" in session and "SameSite=strict" in session.replace("Strict", "strict")
        assert "HttpOnly" not in csrf and "SameSite=strict" in csrf.replace("Strict", "strict")
        assert client.get("/api/me").json() == {"user": "claire", "role": "editor"}
        plan_id = registry_folder[1]
        # a state-changing request without the header, or with another value, is refused
        assert client.post(f"/api/plans/{plan_id}/drafts").status_code == 403
        assert client.post(f"/api/plans/{plan_id}/drafts", headers={"X-CSRF-Token": "forged"}).status_code == 403
        # an editor cannot publish
        headers = {"X-CSRF-Token": client.cookies[CSRF_COOKIE]}
        assert client.post(f"/api/plans/{plan_id}/publish", json={"effective_from": "2028-01-01"},
                           headers=headers).status_code == 403
        assert client.get("/api/audit").status_code == 403
        client.post("/api/logout", headers=headers)
        assert client.get("/api/plans").status_code == 401


def test_failed_logins_are_rate_limited(registry_folder):
    with TestClient(create_app(registry_folder[0], today=lambda: TODAY)) as client:
        codes = [client.post("/api/login", json={"user": "claire", "password": "wrong password!"}).status_code
                 for _ in range(6)]
        assert codes[:5] == [401] * 5 and codes[5] == 429
        blocked = client.post("/api/login", json={"user": "claire", "password": PASSWORD})
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0


# ---- the studio -----------------------------------------------------------------


def _neighbours_in_other_sector(aura_run, sector: str) -> tuple[str, str]:
    """A commune of ``sector`` on its border and a sector it touches."""
    plan = aura_run[1]
    of = plan.units["sector"].astype(str)
    for a, b in plan.graph.edges:
        if of[a] == sector and of[b] != sector:
            return a, of[b]
        if of[b] == sector and of[a] != sector:
            return b, of[a]
    raise AssertionError(f"sector {sector} touches no other sector")


def test_an_editor_moves_a_commune_and_sees_the_caseload_change(fresh_registry, aura_run):
    folder, plan_id = fresh_registry
    with TestClient(create_app(folder, today=lambda: TODAY)) as client:
        headers = login(client, "claire")
        draft_id = client.post(f"/api/plans/{plan_id}/drafts", headers=headers).json()["id"]
        state = client.get(f"/api/drafts/{draft_id}").json()
        before = {s["sector"]: s["caseload"] for s in state["review"]["sectors"]}
        sector = state["review"]["sectors"][0]["sector"]
        commune, other = _neighbours_in_other_sector(aura_run, sector)
        moved = client.post(f"/api/drafts/{draft_id}/moves", json={"units": [commune], "sector": other},
                            headers=headers)
        assert moved.status_code == 200, moved.text
        after = {s["sector"]: s["caseload"] for s in moved.json()["review"]["sectors"]}
        load = float(aura_run[1].units.loc[commune, "workload"])
        assert after[sector] == pytest.approx(before[sector] - load, abs=1e-6)
        assert after[other] == pytest.approx(before[other] + load, abs=1e-6)
        assert moved.json()["assignment"][commune] == other
        assert commune in moved.json()["review"]["changes"]["units"]
        undone = client.post(f"/api/drafts/{draft_id}/undo", headers=headers).json()
        assert {s["sector"]: s["caseload"] for s in undone["review"]["sectors"]} == pytest.approx(before)
        redone = client.post(f"/api/drafts/{draft_id}/redo", headers=headers).json()
        assert redone["assignment"][commune] == other
        saved = client.post(f"/api/drafts/{draft_id}/save", json={"note": "Valley to its neighbour"},
                            headers=headers)
        assert saved.status_code == 200, saved.text
        new_id = saved.json()["plan_id"]
        stored = Registry(folder).get(new_id)
        assert stored.parent_id == plan_id
        assert stored.sectors.set_index("insee").loc[commune, "sector"] == other
        assert stored.valid == saved.json()["valid"]
        audit = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
        assert any(e["action"] == "save" and e["user"] == "claire" and e["what"]["plan_id"] == new_id for e in audit)


def test_a_move_that_cuts_a_sector_is_accepted_and_flagged(fresh_registry, aura_run):
    folder, plan_id = fresh_registry
    plan = aura_run[1]
    of = plan.units["sector"].astype(str)
    with TestClient(create_app(folder, today=lambda: TODAY)) as client:
        headers = login(client, "claire")
        draft_id = client.post(f"/api/plans/{plan_id}/drafts", headers=headers).json()["id"]
        # a commune inside a sector (all neighbours in it) moved to a sector far away cuts nothing but
        # itself off: it becomes a piece of the far sector
        inner = next(u for u in plan.graph if plan.graph.degree(u) >= 3
                     and all(of[v] == of[u] for v in plan.graph[u]))
        far = next(s for s in sorted(set(of)) if s != of[inner] and not any(of[v] == s for v in plan.graph[inner]))
        answer = client.post(f"/api/drafts/{draft_id}/moves", json={"units": [inner], "sector": far},
                             headers=headers)
        assert answer.status_code == 200
        problems = [p for p in answer.json()["review"]["problems"] if "contiguity" in p["message"]]
        assert problems and far in problems[0]["sectors"]
        assert not answer.json()["review"]["valid"]


def test_locked_units_cannot_be_moved(fresh_registry, aura_run):
    folder, plan_id = fresh_registry
    with TestClient(create_app(folder, today=lambda: TODAY)) as client:
        headers = login(client, "claire")
        draft_id = client.post(f"/api/plans/{plan_id}/drafts", headers=headers).json()["id"]
        sector = str(aura_run[1].units["sector"].iloc[0])
        commune, other = _neighbours_in_other_sector(aura_run, sector)
        locked = client.post(f"/api/drafts/{draft_id}/locks", json={"sectors": [sector]}, headers=headers)
        assert locked.status_code == 200 and sector in locked.json()["locked_sectors"]
        refused = client.post(f"/api/drafts/{draft_id}/moves", json={"units": [commune], "sector": other},
                              headers=headers)
        assert refused.status_code == 409 and commune in refused.json()["detail"]


def test_a_publisher_publishes_and_the_desk_answers_from_the_date(fresh_registry, aura_run):
    folder, plan_id = fresh_registry
    with TestClient(create_app(folder, today=lambda: TODAY)) as client:
        headers = login(client, "marc")
        draft_id = client.post(f"/api/plans/{plan_id}/drafts", headers=headers).json()["id"]
        villeurbanne_sector = str(aura_run[1].units.loc["69266", "sector"])
        target = next(s for s in sorted(set(aura_run[1].units["sector"].astype(str)))
                      if s != villeurbanne_sector and any(
                          str(aura_run[1].units.loc[v, "sector"]) == s for v in aura_run[1].graph["69266"]))
        client.post(f"/api/drafts/{draft_id}/moves", json={"units": ["69266"], "sector": target}, headers=headers)
        saved = client.post(f"/api/drafts/{draft_id}/save", json={"note": "test"}, headers=headers).json()
        day = (TODAY + timedelta(days=30)).isoformat()
        answer = client.post(f"/api/plans/{saved['plan_id']}/publish", json={"effective_from": day}, headers=headers)
        if not saved["valid"]:   # an invalid plan is never published
            assert answer.status_code == 422
            return
        assert answer.status_code == 200, answer.text
        today = client.get("/api/route", params={"q": "Villeurbanne"}).json()
        assert today["sector"] == villeurbanne_sector
        assert today["later"][0]["effective_from"] == day and today["later"][0]["sector"] == target
        then = client.get("/api/route", params={"q": "Villeurbanne", "on": day}).json()
        assert then["sector"] == target and then["plan"]["id"] == saved["plan_id"]
        audit = client.get("/api/audit").json()["entries"]
        assert audit[-1]["action"] == "publish" and audit[-1]["user"] == "marc"


# ---- this year's demand -----------------------------------------------------------


def _upload(client, headers, name: str, text: str):
    return client.post("/api/demand", params={"filename": name}, content=text.encode("utf-8-sig"),
                       headers={**headers, "Content-Type": "text/csv"})


def test_uploaded_counts_are_checked_with_rows_and_columns(fresh_registry, aura_run):
    folder, _ = fresh_registry
    with TestClient(create_app(folder, today=lambda: TODAY)) as client:
        headers = login(client, "claire")
        units = aura_run[1].units
        good = "insee;referrals;home_care\n" + "\n".join(
            f"{code};{row.referrals:.0f};{row.home_care:.0f}" for code, row in units.iterrows() if row.referrals >= 1)
        ok = _upload(client, headers, "demande 2027.csv", good)
        assert ok.status_code == 200, ok.text
        assert ok.json()["ok"] and ok.json()["upload"] and ok.json()["totals"]["referrals"] > 0
        bad = "insee;referrals;home_care\n69266;12;3\n69266;4;1\n42218;-3;0\n"
        refused = _upload(client, headers, "demande.csv", bad)
        assert refused.status_code == 422
        problems = refused.json()["problems"]
        assert any(p["row"] == 4 and p["column"] for p in problems)          # the negative count, line 4
        assert any("duplicated" in p["kind"] or "aggregate" in p["message"].lower() for p in problems)
        patients = "IPP;insee;referrals\n123;69266;1\n"
        assert _upload(client, headers, "export.csv", patients).status_code == 422
        assert not any((folder / "uploads").glob("*/export.csv"))            # nothing of a refused file is kept
        assert _upload(client, headers, "macro.xlsm.exe", "x").status_code == 422


def test_uploads_are_size_limited(fresh_registry):
    folder, _ = fresh_registry
    with TestClient(create_app(folder, today=lambda: TODAY)) as client:
        headers = login(client, "claire")
        huge = _upload(client, headers, "big.csv", "insee;referrals\n" + "69266;1\n" * 800_000)
        assert huge.status_code == 413


def test_the_audit_log_records_logins_without_passwords(fresh_registry):
    folder, _ = fresh_registry
    with TestClient(create_app(folder, today=lambda: TODAY)) as client:
        login(client, "marc")
        text = (folder / "audit.jsonl").read_text()
        assert PASSWORD not in text and '"login"' in text
        assert isinstance(pd.DataFrame(client.get("/api/audit").json()["entries"]), pd.DataFrame)


def test_the_command_names_a_missing_registry(tmp_path, capsys):
    from sectorize.cli.main import main

    assert main(["app", "--registry", str(tmp_path / "nowhere")]) == 4
    assert "no plan registry" in capsys.readouterr().err
