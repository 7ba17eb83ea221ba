"""The HTTP routing service, run for real on loopback (uvicorn in a thread) over the shared AURA plan.

Answers are checked against the exported ``sectors.csv`` / ``postcodes.csv``;
malformed requests are also sent as raw bytes over a socket.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")

from sectorize.serve.routing import PlanInfo, Router  # noqa: E402
from sectorize.serve.service import create_app  # noqa: E402


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
    spanning = postcodes.loc[postcodes["spans_sectors"] == "True"].index[0]
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
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/", "/route/../plan"):
        status, _, body = server.get(path)
        assert status in (404, 405) or path == "/route/../plan", path
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
