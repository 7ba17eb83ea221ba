"""A small read-only HTTP routing service over one plan (FastAPI + uvicorn).

Endpoints (GET only; JSON answers):

* ``/route?insee=69388``, ``/route?postcode=42000``, ``/route?lat=45.74&lon=4.88``:
  a :class:`~sectorize.serve.routing.Route` (``status``, ``group``, ``sector``,
  ``worker_id``, ``worker_name``, ``insee``, ``name``, ``rule``,
  ``candidates``, ``plan_id``, ``vintage``). HTTP 200 for ``routed``,
  ``ambiguous`` and ``outside_region``; 400 for ``invalid``; 404 for
  ``not_found``.
* ``/plan``: public metadata (plan id, vintage, effective dates, sectors
  with their worker ids and names, commune counts).
* ``/health``: ``{"status": "ok", "plan_id": ...}``.

Errors are ``{"status": "invalid", "message": ...}`` (400, 404, 405, 422);
an unexpected failure gives ``{"status": "error", "message": "internal
error"}`` (500) and never a stack trace. There are no documentation or
OpenAPI endpoints, no CORS headers (browsers on other sites cannot read the
answers), no server header, and nothing but the plan's public table is ever
returned: no demand, workload or file path.

Example
-------
>>> router = Router.from_run_folder("sectorize-output/20261201-115842")   # doctest: +SKIP
>>> serve(router, host="127.0.0.1", port=8000)                             # doctest: +SKIP
$ curl 'http://127.0.0.1:8000/route?insee=69388'
{"status":"routed","sector":"B3","worker_id":"TS05",...}
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sectorize.serve.routing import MAX_INPUT_CHARS, Router

#: Query parameters ``/route`` accepts.
ROUTE_PARAMETERS = ("insee", "postcode", "lat", "lon")

#: Longest query string accepted (characters); longer ones are answered 400 without parsing.
MAX_QUERY_CHARS = 512

#: HTTP status of each route status.
HTTP_STATUS = {"routed": 200, "ambiguous": 200, "outside_region": 200, "invalid": 400, "not_found": 404}

_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

_log = logging.getLogger("sectorize.serve.service")


def _json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=_HEADERS)


def _invalid(message: str, status: int = 400) -> JSONResponse:
    return _json({"status": "invalid", "message": message}, status)


def create_app(router: Router) -> FastAPI:
    """The service's ASGI application over ``router``.

    Parameters
    ----------
    router
        A built :class:`~sectorize.serve.routing.Router`; it is only read.

    Returns
    -------
    fastapi.FastAPI
        With routes ``/route``, ``/plan`` and ``/health`` (GET), no docs.
    """
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, swagger_ui_oauth2_redirect_url=None,
                  title="sectorize routing", debug=False)

    @app.get("/route")
    def route(request: Request) -> JSONResponse:
        query = request.scope.get("query_string", b"")
        if len(query) > MAX_QUERY_CHARS:
            return _invalid(f"query string too long ({len(query)} bytes; at most {MAX_QUERY_CHARS})")
        params = request.query_params
        unknown = sorted({k for k in params.keys() if k not in ROUTE_PARAMETERS})
        if unknown:
            shown = [k[:MAX_INPUT_CHARS] for k in unknown if k.isprintable()][:3]
            return _invalid(f"unknown query parameter(s) {shown}; use insee, postcode, or lat and lon")
        repeated = [k for k in ROUTE_PARAMETERS if len(params.getlist(k)) > 1]
        if repeated:
            return _invalid(f"query parameter(s) {repeated} given more than once")
        answer = router.route(**{k: params.get(k) for k in ROUTE_PARAMETERS})
        return _json(answer.as_dict(), HTTP_STATUS[answer.status])

    @app.get("/plan")
    def plan() -> JSONResponse:
        return _json(router.public_plan())

    @app.get("/health")
    def health() -> JSONResponse:
        return _json({"status": "ok", "plan_id": router.info.plan_id, "vintage": router.info.vintage,
                      "communes": router.communes})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: "no such endpoint; use GET /route, /plan or /health",
                    405: "only GET is allowed"}
        response = _invalid(messages.get(exc.status_code, "request refused"), exc.status_code)
        if exc.status_code == 405:
            response.headers["Allow"] = "GET"
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid("malformed request", 422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        _log.error("internal error on %s: %s", request.url.path, type(exc).__name__)
        return _json({"status": "error", "message": "internal error"}, 500)

    return app


def serve(router: Router, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the service until interrupted (Ctrl+C).

    Parameters
    ----------
    router
        The plan to answer from.
    host
        Interface to listen on; the default answers this machine only.
    port
        TCP port.
    """
    import uvicorn

    uvicorn.run(create_app(router), host=host, port=port, server_header=False, date_header=True,
                access_log=False, log_level="warning", proxy_headers=False)
