"""The HTTP routing service, run for real on loopback (uvicorn in a thread) over the shared AURA plan.

Answers are checked against the exported ``sectors.csv`` / ``postcodes.csv``;
malformed requests are also sent as raw bytes over a socket. Routing by
date (issue 19) runs over a real registry of dated plans (the AURA plan and
copies with boundary communes moved), one plan added while the service
runs; answers are validated against the OpenAPI document the service
publishes, which must equal the copy shipped in the export contract.
"""

from __future__ import annotations

import http.client
import io
import json
import shutil
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from datetime import date
from types import SimpleNamespace

import pandas as pd
import pytest
from plan_variants import moved

uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")

from sectorize.serve.dated import NoPlanInForce, RegistryPlans  # noqa: E402
from sectorize.serve.routing import PlanInfo, Router  # noqa: E402
from sectorize.serve.service import MAX_QUERY_CHARS, create_app, openapi_document  # noqa: E402


class Server:
    """A uvicorn server in a daemon thread on a free loopback port."""

    def __init__(self, app) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="critical", server_header=False, access_log=False,
                                limit_concurrency=64, timeout_keep_alive=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def get(self, target: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, target, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def raw(self, data: bytes, wait_s: float = 3.0) -> bytes:
        """Send bytes as they are; return what comes back until the server closes or ``wait_s`` of silence."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=wait_s) as sock:
            sock.sendall(data)
            chunks = []
            try:
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except (TimeoutError, ConnectionResetError):
                pass
        return b"".join(chunks)


@pytest.fixture(scope="module")
def folder(aura_run):
    return aura_run[0]


@pytest.fixture(scope="module")
def table(aura_run_tables) -> pd.DataFrame:
    return aura_run_tables[0]


@pytest.fixture(scope="module")
def postcodes(aura_run_tables) -> pd.DataFrame:
    return aura_run_tables[1]


@pytest.fixture(scope="module")
def server(folder):
    with Server(create_app(Router.from_run_folder(folder))) as running:
        yield running


def assert_clean(body: bytes, folder) -> None:
    text = body.decode("utf-8", errors="replace")
    for forbidden in ("Traceback", "File \"", str(folder), str(folder.parent), "/tmp/", "/work/", "site-packages"):
        assert forbidden not in text, (forbidden, text[:300])


def get_json(server: Server, target: str, folder) -> tuple[int, dict]:
    status, headers, body = server.get(target)
    assert headers["content-type"].startswith("application/json"), (target, headers)
    assert_clean(body, folder)
    return status, json.loads(body)


def test_health_and_plan(server, folder, table):
    status, body = get_json(server, "/health", folder)
    assert status == 200 and body["status"] == "ok" and body["plan_id"] == folder.name
    status, plan = get_json(server, "/plan", folder)
    assert status == 200 and plan["plan_id"] == folder.name and plan["vintage"] == "COG 2026"
    workers = table[["sector", "group", "worker_id", "worker_name"]].drop_duplicates().set_index("sector")
    assert {s["sector"] for s in plan["sectors"]} == set(workers.index)
    for sector in plan["sectors"]:
        assert sector["worker_id"] == workers.loc[sector["sector"], "worker_id"]
        assert sector["communes"] == int((table["sector"] == sector["sector"]).sum())
    text = json.dumps(plan)
    for private in ("workload", "referrals", "home_care", "travel_min", "scenario", "source", "population"):
        assert private not in text


def test_route_by_each_key(server, folder, table, postcodes):
    status, body = get_json(server, "/route?insee=69388", folder)
    assert status == 200 and body["status"] == "routed"
    assert (body["sector"], body["worker_id"]) == tuple(table.loc["69388", ["sector", "worker_id"]])
    status, body = get_json(server, "/route?lat=45.7339&lon=4.8691", folder)
    assert status == 200 and body["insee"] == "69388" and body["sector"] == table.loc["69388", "sector"]
    spanning = postcodes.loc[postcodes["spans_sectors"] == "1"].index[0]
    status, body = get_json(server, f"/route?postcode={spanning}", folder)
    assert status == 200 and body["status"] == "ambiguous" and body["sector"] == postcodes.loc[spanning, "sector"]
    assert {c["sector"] for c in body["candidates"]} == set(postcodes.loc[spanning, "sectors"].split("|"))
    status, body = get_json(server, "/route?insee=01330", folder)  # old code of Haut Valromey
    assert status == 200 and body["insee"] == "01187" and body["sector"] == table.loc["01187", "sector"]
    status, body = get_json(server, "/route?insee=75056", folder)
    assert status == 200 and body["status"] == "outside_region"
    status, body = get_json(server, "/route?postcode=13001", folder)
    assert status == 200 and body["status"] == "outside_region"
    status, body = get_json(server, "/route?lat=43.2965&lon=5.3698", folder)
    assert status == 200 and body["status"] == "outside_region" and body["sector"] in set(table["sector"])
    status, body = get_json(server, "/route?insee=01999", folder)
    assert status == 404 and body["status"] == "not_found" and body["message"]
    for private in ("workload", "referrals", "travel_min"):
        assert private not in body


BAD_QUERIES = [
    "", "insee=", "insee=1234", "insee=ABCDE", "insee=6938%208", "insee=6938 8",
    "insee=" + "9" * 10_000, "insee=%27%20OR%201%3D1%20--", "insee=%3Cscript%3Ealert(1)%3C/script%3E",
    "insee=69%0088", "insee=%FF%FE%FD", "postcode=%C0%80", "lat=999&lon=4.8", "lat=nan&lon=4.8",
    "lat=45.7", "insee=69388&postcode=69008", "insee=69388&insee=01001", "foo=bar", "insee=69388&debug=1",
]


@pytest.mark.parametrize("query", BAD_QUERIES, ids=lambda q: q[:30])
def test_bad_queries_are_json_errors(server, folder, query):
    target = "/route?" + query.replace(" ", "%20") if query != "insee=6938 8" else "/route?insee=6938%208"
    status, body = get_json(server, target, folder)
    assert status in (400, 422) and body["status"] == "invalid" and body["message"]
    assert "<script>" not in json.dumps(body)


def test_non_utf8_and_raw_malformed_requests(server, folder):
    malformed = [  # refused by the HTTP layer (uvicorn) with a plain 400, never reaching the application
        b"GET /route?insee=\xff\xfe HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /route?insee=69388 HTTP/1.1\r\nHost: localhost\r\nContent-Length: -5\r\n\r\n",
        b"GET /route?insee=69388 HTTP/1.1\r\n" + b"X-Long: " + b"a" * 70_000 + b"\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
    ]
    for data in malformed:
        answer = server.raw(data)
        assert answer.split(b"\r\n", 1)[0] == b"HTTP/1.1 400 Bad Request", data[:40]
        assert_clean(answer, folder)
    well_formed = {  # valid HTTP with hostile content: JSON answers from the application
        b"GET /route?insee=%FF%FE HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n": b"400",
        b"GET /route?postcode=%00%00%00%00%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n": b"400",
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n": b"404",
        b"GET /route?insee=69388 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n": b"200",
    }
    for data, status in well_formed.items():
        answer = server.raw(data)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == status, (data[:40], head[:60])
        assert b"application/json" in head
        json.loads(body)
        assert_clean(answer, folder)
    assert server.get("/health")[0] == 200  # still serving


def test_only_get_no_docs_no_cors(server, folder):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, body = server.get("/route?insee=69388", method=method)
        assert status == 405 and json.loads(body)["status"] == "invalid"
        assert_clean(body, folder)
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect", "/", "/route/../plan"):  # no docs UI (CDN scripts)
        status, _, body = server.get(path)
        assert status in (404, 405) or path == "/route/../plan", path
        assert_clean(body, folder)
    status, headers, body = server.get("/openapi.json")  # the API description itself is served (issue 19)
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert_clean(body, folder)
    status, headers, _ = server.get("/route?insee=69388", headers={"Origin": "https://evil.example"})
    assert status == 200 and not any(h.startswith("access-control-") for h in headers)
    status, headers, _ = server.get("/route?insee=69388", method="OPTIONS",
                                    headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert status == 405 and not any(h.startswith("access-control-") for h in headers)
    assert "server" not in headers


def test_concurrent_burst(server, folder, table):
    """200 requests over 16 threads, INSEE codes and points mixed, every answer checked."""
    import geopandas as gpd

    shapes = gpd.read_file(folder / "sectors.geojson").set_index("insee")
    codes = list(table.index[:: max(1, len(table) // 200)])[:200]
    assert len(codes) == 200

    def ask(position: int) -> tuple[str, int, dict]:
        insee = codes[position]
        if position % 3 == 0:
            point = shapes.loc[insee, "geometry"].representative_point()
            target = f"/route?lat={point.y:.6f}&lon={point.x:.6f}"
        else:
            target = f"/route?insee={urllib.parse.quote(insee)}"
        status, _, body = server.get(target)
        return insee, status, json.loads(body)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(ask, range(len(codes))))
    elapsed = time.perf_counter() - started
    assert len(answers) == 200
    for insee, status, body in answers:
        assert status == 200 and body["insee"] == insee, body
        assert (body["sector"], body["worker_id"]) == tuple(table.loc[insee, ["sector", "worker_id"]])
    assert elapsed < 30


class _Broken:
    """A router that fails inside a lookup, to check the catch-all handler."""

    info = PlanInfo(plan_id="broken")
    communes = 0

    def route(self, **query):
        raise RuntimeError("boom in /srv/secret/path.py")

    def public_plan(self):
        raise KeyError("/srv/secret")


def test_unexpected_errors_are_500_without_details(folder):
    with Server(create_app(_Broken())) as broken:
        for target in ("/route?insee=69388", "/plan"):
            status, headers, body = broken.get(target)
            assert status == 500 and json.loads(body) == {"status": "error", "message": "internal error"}
            assert b"secret" not in body and b"Traceback" not in body
        assert broken.get("/health")[0] == 200


# --------------------------------------------------------------------------- routing by date (issue 19)




@pytest.fixture(scope="module")
def dated(aura_run, tmp_path_factory):
    """A registry with the AURA plan in force from 2026-01-01 and a copy with one boundary commune
    moved in force from 2027-01-01. ``before`` / ``after``: that commune's sector in each."""
    from sectorize.store.registry import Registry

    _, plan = aura_run
    folder = tmp_path_factory.mktemp("dated_registry")
    registry = Registry(folder)
    later, changed = moved(plan, 1, 0)
    first = registry.add(plan, effective_from=date(2026, 1, 1), note="2026 plan")
    second = registry.add(later, effective_from=date(2027, 1, 1), parent_id=first, note="2027 plan")
    commune = changed[0]
    before, after = plan.units.loc[commune, "sector"], later.units.loc[commune, "sector"]
    assert before != after
    return SimpleNamespace(folder=folder, plan=plan, later=later, first=first, second=second, commune=commune,
                           before=before, after=after)


def on_day(today: date):
    return lambda: today


def documented(doc: dict, path: str, status: int, body: dict) -> None:
    """``body`` is valid against the OpenAPI document's schema for ``path`` answering ``status``."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = doc["paths"][path]["get"]["responses"][str(status)]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator({**schema, "components": doc["components"]},
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    validator.validate(body)


def test_route_answers_with_the_plan_in_force_on_each_day(dated):
    plans = RegistryPlans(dated.folder, today=on_day(date(2026, 6, 1)))
    with Server(create_app(plans)) as server:
        doc = json.loads(server.get("/openapi.json")[2])

        def ask(day: str | None, path: str = "/route", query: str = f"insee={dated.commune}") -> tuple[int, dict]:
            target = f"{path}?{query}" + (f"&on={day}" if day else "")
            status, body = get_json(server, target.replace("?&", "?"), dated.folder)
            documented(doc, path, status, body)
            return status, body

        status, body = ask("2025-12-31")  # the day before the first plan
        assert status == 404
        assert body == {"status": "not_found",
                        "message": "no plan is in force on 2025-12-31: the first plan takes effect on 2026-01-01"}
        # each plan's first day, the day before the next plan, and long after the last one
        for day, plan_id, sector, start, end in [
            ("2026-01-01", dated.first, dated.before, "2026-01-01", "2027-01-01"),
            ("2026-12-31", dated.first, dated.before, "2026-01-01", "2027-01-01"),
            ("2027-01-01", dated.second, dated.after, "2027-01-01", None),
            ("2031-06-30", dated.second, dated.after, "2027-01-01", None),
        ]:
            status, body = ask(day)
            assert status == 200 and body["status"] == "routed", (day, body)
            assert (body["plan_id"], body["sector"], body["effective_from"], body["effective_to"], body["on"]) == (
                plan_id, sector, start, end, day)
            assert body["note"] is None and body["insee"] == dated.commune
        # a commune no plan moved answers the same sector in both, each naming its own plan
        other = next(c for c in dated.plan.units.index if c != dated.commune and c.startswith("74"))
        answers = [ask(day, query=f"insee={other}")[1] for day in ("2026-06-01", "2027-06-01")]
        assert [a["plan_id"] for a in answers] == [dated.first, dated.second]
        assert {a["sector"] for a in answers} == {dated.plan.units.loc[other, "sector"]}
        # without `on`: today in Europe/Paris (the clock given to the source)
        status, body = ask(None)
        assert status == 200 and (body["plan_id"], body["on"], body["sector"]) == (dated.first, "2026-06-01",
                                                                                  dated.before)
        status, plan = ask("2027-01-01", "/plan", "")
        assert status == 200 and plan["plan_id"] == dated.second and plan["effective_from"] == "2027-01-01"
        counts = {s["sector"]: s["communes"] for s in plan["sectors"]}
        assert counts[dated.after] == int((dated.later.units["sector"] == dated.after).sum())
        status, plan = ask("2025-06-01", "/plan", "")
        assert status == 404 and "no plan is in force on 2025-06-01" in plan["message"]
        status, health = get_json(server, "/health", dated.folder)
        documented(doc, "/health", status, health)
        assert status == 200 and health["plan_id"] == dated.first and health["effective_to"] == "2027-01-01"


def test_a_plan_added_while_serving_is_answered_without_restart(dated, tmp_path):
    from sectorize.store.registry import Registry

    folder = tmp_path / "registry"
    shutil.copytree(dated.folder, folder)
    third, changed = moved(dated.plan, 1, 40)
    commune = changed[0]
    assert commune != dated.commune
    # no periodic re-read during the test: the change must be seen from the database files
    plans = RegistryPlans(folder, today=on_day(date(2027, 6, 1)), max_age_s=3600)
    with Server(create_app(plans)) as server:
        target = f"/route?insee={commune}&on=2028-03-01"
        status, body = get_json(server, target, folder)
        assert status == 200 and body["plan_id"] == dated.second and body["effective_to"] is None
        assert body["sector"] == dated.plan.units.loc[commune, "sector"]
        status, health = get_json(server, "/health", folder)
        assert health["plan_id"] == dated.second

        added = Registry(folder).add(third, effective_from=date(2028, 1, 1), parent_id=dated.second)

        status, body = get_json(server, target, folder)
        assert status == 200 and body["plan_id"] == added, body
        assert (body["effective_from"], body["effective_to"]) == ("2028-01-01", None)
        assert body["sector"] == third.units.loc[commune, "sector"] != dated.plan.units.loc[commune, "sector"]
        # the plan it follows now ends the day the new one starts
        status, body = get_json(server, f"/route?insee={commune}&on=2027-12-31", folder)
        assert (body["plan_id"], body["effective_to"]) == (dated.second, "2028-01-01")
        status, body = get_json(server, "/plan?on=2028-01-01", folder)
        assert body["plan_id"] == added


def test_a_publication_while_serving_is_answered_without_restart(dated, tmp_path):
    """Rolling back: the 2026 plan published again from 2027-03-01 while the service runs."""
    from sectorize.store.registry import Registry

    if not hasattr(Registry, "publish"):
        pytest.skip("this registry has no publications")
    folder = tmp_path / "registry"
    shutil.copytree(dated.folder, folder)
    plans = RegistryPlans(folder, today=on_day(date(2027, 2, 1)), max_age_s=3600)
    with Server(create_app(plans)) as server:
        target = f"/route?insee={dated.commune}&on=2027-03-15"
        status, body = get_json(server, target, folder)
        assert (body["plan_id"], body["sector"]) == (dated.second, dated.after)
        Registry(folder).publish(dated.first, "2027-03-01", note="2027 plan withdrawn")
        status, body = get_json(server, target, folder)
        assert status == 200 and (body["plan_id"], body["sector"]) == (dated.first, dated.before), body
        assert (body["effective_from"], body["effective_to"]) == ("2027-03-01", None)
        status, body = get_json(server, f"/route?insee={dated.commune}", folder)  # today: 2027-02-01
        assert (body["plan_id"], body["effective_from"], body["effective_to"]) == (
            dated.second, "2027-01-01", "2027-03-01")
    # one fixed plan in force twice answers on both periods, and says which
    fixed = RegistryPlans(folder, plan_id=dated.first)
    assert (fixed.resolve(date(2026, 5, 1)).effective_to, fixed.resolve(date(2027, 5, 1)).effective_from) == (
        date(2027, 1, 1), date(2027, 3, 1))
    with pytest.raises(NoPlanInForce, match="in force from 2026-01-01 until 2027-01-01 \\(exclusive\\) and from "
                                            "2027-03-01 with no end date; on 2027-02-01 it is not"):
        fixed.resolve(date(2027, 2, 1))


def test_an_invalid_plan_is_never_served(dated, monkeypatch):
    plans = RegistryPlans(dated.folder, today=on_day(date(2027, 3, 1)))
    calendar = plans.calendar().copy()
    calendar["valid"] = calendar["id"] != dated.second  # as if the plan in force in 2027 were stored invalid
    monkeypatch.setattr(plans, "calendar", lambda: calendar)
    with pytest.raises(NoPlanInForce, match=f"plan {dated.second}, in force on 2027-03-01, is stored as invalid"):
        plans.resolve(None)
    assert plans.resolve(date(2026, 3, 1)).plan_id == dated.first  # the other plan still answers
    with Server(create_app(plans)) as server:
        status, body = get_json(server, "/route?insee=69388&on=2027-03-01", dated.folder)
        assert status == 404 and body["status"] == "not_found" and "stored as invalid" in body["message"]


def test_one_fixed_plan_answers_only_inside_its_dates(dated, server, folder):
    fixed = RegistryPlans(dated.folder, plan_id=dated.first, today=on_day(date(2030, 1, 1)))
    with Server(create_app(fixed)) as one:
        status, body = get_json(one, f"/route?insee={dated.commune}&on=2026-12-31", dated.folder)
        assert status == 200 and (body["plan_id"], body["sector"]) == (dated.first, dated.before)
        for day in ("2025-12-31", "2027-01-01"):
            status, body = get_json(one, f"/route?insee={dated.commune}&on={day}", dated.folder)
            assert status == 404 and body["status"] == "not_found"
            assert body["message"].startswith(f"plan {dated.first} is in force from 2026-01-01 until 2027-01-01 "
                                              f"(exclusive); on {day} it is not")
        # without a date it answers (the operator chose the plan), saying it is out of its dates today
        status, body = get_json(one, f"/route?insee={dated.commune}", dated.folder)
        assert status == 200 and body["plan_id"] == dated.first and body["on"] is None
        assert "not in force today (2030-01-01" in body["note"]
    # a run folder has no dates: it answers for every day, and says so
    for query in ("insee=69388&on=2027-01-01", "insee=69388"):
        status, body = get_json(server, f"/route?{query}", folder)
        assert status == 200 and body["plan_id"] == folder.name
        assert body["effective_from"] is None and body["effective_to"] is None
        assert "has no effective dates" in body["note"]
    assert get_json(server, "/route?insee=69388&on=2027-01-01", folder)[1]["on"] == "2027-01-01"


BAD_DAYS = [
    "2027-13-01", "2027-02-30", "2027-00-10", "01/01/2027", "2027-1-1", "20270101", "2027-W01-1", "1700000000",
    "", "2027-01-01T00:00", "2027-01-01 ", "x" * 300, "2027-01-01' OR '1'='1", "2027-01-01;DROP TABLE plans",
    "<script>alert(1)</script>", "\uff12\uff10\uff12\uff17-01-01", "2027-01-01\u00a0", "2027-01-01\x00", "\xff",
]


@pytest.mark.parametrize("day", BAD_DAYS, ids=lambda d: repr(d[:20]))
def test_malformed_dates_are_refused_with_a_clear_message(server, folder, day):
    status, body = get_json(server, "/route?insee=69388&on=" + urllib.parse.quote(day, safe=""), folder)
    assert status in (400, 422) and body["status"] == "invalid", body
    message = body["message"]
    if status == 422:
        assert message.startswith("on: ") and "YYYY-MM-DD" in message
    for echoed in ("DROP", "script", "OR '1'", "xxxxxxxx"):
        assert echoed not in message
    if day == "2027-13-01":
        assert "2027-13-01 is not a calendar date (month must be in 1..12)" in message
    if day == "2027-02-30":
        assert "is not a calendar date" in message


def test_other_refused_queries(server, folder):
    status, body = get_json(server, "/route?insee=69388&on=2027-01-01&on=2028-01-01", folder)
    assert status == 400 and "given more than once" in body["message"]
    status, body = get_json(server, "/route?insee=69388&on=" + "2" * MAX_QUERY_CHARS, folder)
    assert status == 400 and "query string too long" in body["message"]
    status, body = get_json(server, "/health?verbose=1", folder)
    assert status == 400 and "unknown query parameter(s) ['verbose']; /health takes: none" in body["message"]
    status, body = get_json(server, "/plan?insee=69388", folder)
    assert status == 400 and "/plan takes: on" in body["message"]
    status, body = get_json(server, "/route?insee=1053", folder)
    assert status == 422 and body["message"].startswith("insee: expected an INSEE commune code")
    assert "leading zero" in body["message"] and "1053" not in body["message"].split("(write")[0]
    status, body = get_json(server, "/route?lat=45,74&lon=4.88", folder)
    assert status == 422 and body["message"].startswith("lat: ") and "dot as decimal mark" in body["message"]
    status, body = get_json(server, "/route?lat=91&lon=4.88", folder)
    assert status == 422 and "-90 to 90" in body["message"]
    status, body = get_json(server, "/route?insee=2a004&on=2027-01-01", folder)  # Corsica, lower case: outside
    assert status == 200 and body["status"] == "outside_region"


def test_openapi_lists_route_and_on_and_is_the_shipped_copy(server, folder, postcodes):
    from sectorize.store.contract import load_openapi

    status, doc = get_json(server, "/openapi.json", folder)
    assert status == 200 and doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {"/route", "/plan", "/health"}
    parameters = {p["name"]: p for p in doc["paths"]["/route"]["get"]["parameters"]}
    assert set(parameters) == {"insee", "postcode", "lat", "lon", "on"}
    assert all(p["in"] == "query" and not p["required"] for p in parameters.values())
    on = parameters["on"]
    assert on["schema"]["type"] == "string" and on["schema"]["format"] == "date"
    assert "Europe/Paris" in on["description"] and on["schema"]["examples"]
    assert parameters["insee"]["schema"]["pattern"] and parameters["insee"]["schema"]["maxLength"] == 5
    assert parameters["lat"]["schema"]["type"] == "number"
    assert [p["name"] for p in doc["paths"]["/plan"]["get"]["parameters"]] == ["on"]
    assert set(doc["paths"]["/route"]["get"]["responses"]) == {"200", "400", "404", "422"}
    assert doc == openapi_document()
    assert doc == load_openapi(), ("the shipped sectorize/store/schemas/routing_service.openapi.json is out of date: "
                                   "python -c 'from sectorize.serve.service import write_openapi; write_openapi()'")
    # every kind of answer has the documented shape
    spanning = postcodes.loc[postcodes["spans_sectors"].str.lower().isin(["1", "true"])].index[0]
    for target, expected in [("/route?insee=69388", 200), (f"/route?postcode={spanning}", 200),
                             ("/route?insee=75056", 200), ("/route?insee=01999", 404), ("/route?insee=6938", 422),
                             ("/route?insee=69388&postcode=69008", 400), ("/route?foo=1", 400),
                             ("/route?lat=45.7339&lon=4.8691&on=2030-01-01", 200), ("/plan", 200), ("/health", 200)]:
        status, body = get_json(server, target, folder)
        assert status == expected, (target, body)
        documented(doc, target.split("?")[0], status, body)


def test_plans_export_writes_the_openapi_document(dated, tmp_path, capsys):
    from sectorize.cli import main

    code = main(["plans", "export", dated.first, "--registry", str(dated.folder), "--out", str(tmp_path),
                 "--format", "csv"])
    assert code == 0, capsys.readouterr().err
    (exported,) = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    document = json.loads((exported / "routing_service.openapi.json").read_text(encoding="utf-8"))
    assert document == openapi_document()
    assert "on" in {p["name"] for p in document["paths"]["/route"]["get"]["parameters"]}
    metadata = json.loads((exported / "plan_metadata.json").read_text(encoding="utf-8"))
    assert "routing_service.openapi.json" in metadata["files"]
    assert sorted(metadata["files"]) == sorted(p.name for p in exported.iterdir())


def run_cli(argv: list[str]) -> tuple[int, str]:
    from sectorize.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


def test_cli_route_on_a_day(dated, folder, capsys):
    registry = ["--registry", str(dated.folder), "--insee", dated.commune]
    for day, plan_id, sector, end in [("2026-12-31", dated.first, dated.before, "2027-01-01"),
                                      ("2027-01-01", dated.second, dated.after, None)]:
        code, text = run_cli(["route", *registry, "--on", day, "--json"])
        answer = json.loads(text)
        assert code == 0 and (answer["plan_id"], answer["sector"], answer["effective_to"], answer["on"]) == (
            plan_id, sector, end, day)
    code, text = run_cli(["route", *registry, "--on", "2027-01-01"])
    assert code == 0 and f"plan: {dated.second} (COG 2026), in force from 2027-01-01, no end date yet; chosen for " \
                         "2027-01-01" in text
    capsys.readouterr()
    assert run_cli(["route", *registry, "--on", "2025-12-31"])[0] == 4
    assert "not found: no plan is in force on 2025-12-31: the first plan takes effect on 2026-01-01" in \
        capsys.readouterr().err
    assert run_cli(["route", *registry, "--plan", dated.first, "--on", "2027-06-01"])[0] == 4
    assert "in force from 2026-01-01 until 2027-01-01 (exclusive); on 2027-06-01 it is not" in capsys.readouterr().err
    code, text = run_cli(["route", "--run", str(folder), "--insee", "69388", "--on", "2027-01-01"])
    assert code == 0 and "note: plan" in text and "has no effective dates" in text
    for bad in ("2027-13-01", "01/01/2027", "20270101"):
        with pytest.raises(SystemExit) as stop:
            run_cli(["route", *registry, "--on", bad])
        assert stop.value.code == 2
    assert "argument --on" in capsys.readouterr().err
    assert run_cli(["serve", "--registry", str(dated.folder), "--on", "2027-01-01"])[0] == 2
