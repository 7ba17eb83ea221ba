"""A small read-only HTTP routing service (FastAPI + uvicorn), by date over a plan registry.

Endpoints (GET only; JSON answers; the contract is the OpenAPI document at
``/openapi.json``, also shipped as ``sectorize/store/schemas/routing_service.openapi.json``
and copied into every ``sectorize plans export``):

* ``/route?insee=69388``, ``/route?postcode=42000``, ``/route?lat=45.74&lon=4.88``,
  each with an optional ``&on=YYYY-MM-DD``: a :class:`~sectorize.serve.routing.Route`
  (``status``, ``group``, ``sector``, ``worker_id``, ``worker_name``,
  ``insee``, ``name``, ``rule``, ``candidates``, ``plan_id``, ``vintage``)
  with the plan's ``effective_from`` / ``effective_to``, the day ``on`` the
  plan was chosen for and a ``note``. HTTP 200 for ``routed``, ``ambiguous``
  and ``outside_region``; 400 for ``invalid``; 404 for ``not_found`` (an
  unknown code, or no plan in force that day).
* ``/plan[?on=YYYY-MM-DD]``: public metadata of the plan (id, vintage,
  effective dates, sectors with their worker ids and names, commune counts).
* ``/health``: ``{"status": "ok", "plan_id": <plan in force today or null>, ...}``.
* ``/openapi.json``: the OpenAPI 3.1 document. There is no documentation UI
  (``/docs`` and ``/redoc`` would load scripts from a CDN); open the JSON
  in any OpenAPI viewer.

Which plan answers (:mod:`sectorize.serve.dated`): over a registry, the plan
in force on ``on`` (default: today in Europe/Paris), plans added or put in
service since start-up included, never a plan stored as invalid; over one
run folder or one ``--plan`` id, that plan, and an ``on`` outside its
effective dates is answered 404 with the dates (a plan without dates
answers for every day, with a ``note``).

Errors are ``{"status": "invalid", "message": ...}``: 400 for a refused query
(longer than :data:`MAX_QUERY_CHARS`, an unknown or repeated parameter, text
that is not printable UTF-8) or a lookup the router calls invalid, 422 for a
parameter of the wrong form (pattern, type, range, a date that does not
exist), 404 and 405 for a wrong path or method; ``{"status": "not_found",
"message": ...}`` (404) when no plan answers for the day. An unexpected
failure gives ``{"status": "error", "message": "internal error"}`` (500)
and never a stack trace. No CORS headers (browsers on other sites cannot
read the answers), no server header, and nothing but the plan's public
table is ever returned: no demand, workload or file path.

Example
-------
>>> app = create_app(RegistryPlans("sectorize-plans"))                       # doctest: +SKIP
>>> serve(RegistryPlans("sectorize-plans"), host="127.0.0.1", port=8000)   # doctest: +SKIP
$ curl 'http://127.0.0.1:8000/route?insee=69388&on=2027-03-01'
{"status":"routed","sector":"B3","worker_id":"TS05",...,"plan_id":"P20261201-…","effective_from":"2027-01-01",...}
"""

from __future__ import annotations

import json
import logging
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import parse_qsl

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from sectorize.serve.dated import FixedPlan, NoPlanInForce, PlanSource, parse_day
from sectorize.serve.routing import ROUTING_TIME_ZONE

#: Version of the HTTP API described by the OpenAPI document.
API_VERSION = "1.1"

#: Query parameters ``/route`` accepts.
ROUTE_PARAMETERS = ("insee", "postcode", "lat", "lon", "on")

#: Query parameters of each endpoint; any other is refused (400).
ENDPOINT_PARAMETERS = {"/route": ROUTE_PARAMETERS, "/plan": ("on",), "/health": ()}

#: Longest query string accepted (characters); longer ones are answered 400 without parsing.
MAX_QUERY_CHARS = 512

#: HTTP status of each route status.
HTTP_STATUS = {"routed": 200, "ambiguous": 200, "outside_region": 200, "invalid": 400, "not_found": 404}

INSEE_PATTERN = r"^(?:[0-9]{5}|2[ABab][0-9]{3})$"
POSTCODE_PATTERN = r"^[0-9]{5}$"

_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,32}")

#: What each parameter must look like, said in 422 answers (never echoing the value sent).
PARAMETER_HELP = {
    "insee": "an INSEE commune code: 5 digits, or 2A/2B and 3 digits in Corsica (e.g. 69388, 2A004); "
             "a 4-digit code has lost its leading zero (write 01053, not 1053)",
    "postcode": "a French postcode: 5 digits (e.g. 42000); a 4-digit one has lost its leading zero",
    "lat": "a latitude in decimal degrees (WGS84), -90 to 90, with a dot as decimal mark (e.g. 45.74)",
    "lon": "a longitude in decimal degrees (WGS84), -180 to 180, with a dot as decimal mark (e.g. 4.88)",
    "on": f"a calendar date written YYYY-MM-DD (e.g. 2027-01-01); leave it out for today in {ROUTING_TIME_ZONE}",
}

_log = logging.getLogger("sectorize.serve.service")


# --------------------------------------------------------------------------- answers (documented in OpenAPI)


class CandidateAnswer(BaseModel):
    """A sector a referral may go to, with its share of the population (``null`` for a border point)."""

    sector: str
    group: str
    worker_id: str
    worker_name: str
    share: float | None


class PlanDates(BaseModel):
    effective_from: date | None = Field(description="First day the plan answering is in force (null: a plan "
                                                    "without effective dates)")
    effective_to: date | None = Field(description="First day it is no longer in force (exclusive; null while no "
                                                  "later plan takes effect)")
    on: date | None = Field(description=f"The day the plan was chosen for: the `on` asked, or today in "
                                        f"{ROUTING_TIME_ZONE} over a registry; null for a fixed plan asked "
                                        "without a date")
    note: str | None = Field(description="A remark on the plan chosen (a plan without dates, a fixed plan "
                                         "out of its dates today), else null")


class RouteAnswer(PlanDates):
    """Which sector and worker take the referral, and why."""

    status: Literal["routed", "ambiguous", "outside_region", "invalid", "not_found"] = Field(
        description="routed: one sector; ambiguous: several candidates, `sector` is the suggested one; "
                    "outside_region: outside the plan's territory (`sector` set only when a rule gives one); "
                    "invalid: malformed input (HTTP 400); not_found: well-formed but unknown (HTTP 404)")
    rule: str = Field(description="One sentence: which rule applied, or why no sector was found")
    key: Literal["insee", "postcode", "point", ""] = Field(description="Kind of input matched")
    group: str | None
    sector: str | None
    worker_id: str | None
    worker_name: str | None
    insee: str | None = Field(description="The commune matched, when there is one")
    name: str | None
    candidates: list[CandidateAnswer] = Field(description="For ambiguous: every candidate sector, largest "
                                                          "share first")
    plan_id: str = Field(description="The plan answered from (registry id or run folder name)")
    vintage: str = Field(description="Geography vintage of the codes, e.g. 'COG 2026'")
    message: str | None = Field(None, description="Repeats `rule` for invalid and not_found")


class SectorAnswer(BaseModel):
    sector: str
    group: str
    worker_id: str
    worker_name: str
    communes: int


class PlanAnswer(PlanDates):
    """The public description of a plan: no demand, workload or file path."""

    plan_id: str
    vintage: str
    communes: int
    sectors: list[SectorAnswer]


class HealthAnswer(BaseModel):
    status: Literal["ok"]
    plan_id: str | None = Field(description="The plan answering today, or null when none is in force")
    vintage: str | None
    communes: int | None
    effective_from: date | None
    effective_to: date | None
    message: str | None = Field(None, description="Why no plan answers today")


class ErrorAnswer(BaseModel):
    """A refused request, or no plan in force that day."""

    status: Literal["invalid", "not_found", "error"]
    message: str


_ERRORS = {
    400: {"model": ErrorAnswer, "description": "Refused query: too long, unknown or repeated parameter, text "
                                               "that is not printable UTF-8"},
    404: {"model": ErrorAnswer, "description": "No plan in force on that day, or (one fixed plan) `on` outside "
                                               "its dates"},
    422: {"model": ErrorAnswer, "description": "A parameter of the wrong form (pattern, type, range, a date that "
                                               "does not exist)"},
}


# --------------------------------------------------------------------------- parameters


def _date_parameter(value: Any) -> Any:
    """``on``: ``YYYY-MM-DD`` in ASCII digits and a real calendar day (no timestamps, no other forms)."""
    if value is None or isinstance(value, date):
        return value
    return parse_day(value, "the date")


OnParameter = Annotated[
    date, BeforeValidator(_date_parameter),
    Query(description=f"The day of the referral, YYYY-MM-DD: the plan in force that day answers (default: today "
                      f"in {ROUTING_TIME_ZONE}). Over one fixed plan, a day outside its effective dates is "
                      "answered 404.", examples=["2027-03-01"]),
]


def _validation_message(errors: list[dict[str, Any]]) -> str:
    """One sentence per faulty parameter, from pydantic's errors, never echoing the value sent."""
    parts = []
    for error in errors:
        loc = error.get("loc") or ()
        name = str(loc[-1]) if len(loc) == 2 and loc[0] == "query" else ""
        if name not in PARAMETER_HELP:
            parts.append("malformed request")
            continue
        kind = str(error.get("type", ""))
        # a code's pattern and length are said by the help text (pydantic would show the regex)
        reason = "" if kind.startswith("string_") else str(error.get("msg", "")).removeprefix("Value error, ")
        reason = reason.replace("Input should", "it should")
        parts.append(f"{name}: {reason + '; ' if reason else ''}expected {PARAMETER_HELP[name]}")
    return "; ".join(dict.fromkeys(parts)) or "malformed request"


def _query_problem(scope: dict[str, Any]) -> str | None:
    """Why a GET request's query string is refused before any parsing of values (400), or ``None``."""
    query = scope.get("query_string", b"")
    if len(query) > MAX_QUERY_CHARS:
        return f"query string too long ({len(query)} bytes; at most {MAX_QUERY_CHARS})"
    allowed = ENDPOINT_PARAMETERS.get(scope.get("path", ""))
    if allowed is None:
        return None  # no such endpoint: answered 404 by the router
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)  # as Starlette reads them
    for key, value in pairs:
        for text in (key, value):
            if "\ufffd" in text:
                return "the query is not valid UTF-8 text"
            if not text.isprintable():
                return "the query contains control or non-printable characters"
    names = [k for k, _ in pairs]
    unknown = sorted({k for k in names if k not in allowed})
    if unknown:
        shown = [k for k in unknown if _SAFE_NAME.fullmatch(k)][:3]
        expected = ", ".join(allowed) if allowed else "none"
        return f"unknown query parameter(s) {shown}; {scope['path']} takes: {expected}"
    repeated = [k for k in allowed if names.count(k) > 1]
    if repeated:
        return f"query parameter(s) {repeated} given more than once"
    return None


class _QueryGuard:
    """ASGI middleware: refuses hostile or malformed query strings before routing and validation."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") == "GET":
            problem = _query_problem(scope)
            if problem is not None:
                await _invalid(problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=_HEADERS)


def _invalid(message: str, status: int = 400) -> JSONResponse:
    return _json({"status": "invalid", "message": message}, status)


def _no_plan(err: NoPlanInForce) -> JSONResponse:
    return _json({"status": "not_found", "message": str(err)}, 404)


# --------------------------------------------------------------------------- the application

_DESCRIPTION = f"""\
Which hospital social worker takes a new referral, from the patient's home commune (INSEE code),
postcode or point, in the sectorization plan in force on the referral's day.

* Over a plan registry, `on` (YYYY-MM-DD, default: today in {ROUTING_TIME_ZONE}) picks the plan in force
  that day: the latest `effective_from` on or before it, valid until the next plan's (exclusive). Plans
  added or put in service while the service runs are answered from without a restart; a plan stored as
  invalid never is.
* Over one plan (a run folder, or one registry plan), an `on` outside that plan's effective dates is
  answered 404; a plan without effective dates answers for every day and says so in `note`.

Every answer names the plan (`plan_id`, `vintage`, `effective_from`, `effective_to`, `on`) and the
rule that applied. Errors are JSON `{{"status": "invalid" | "not_found" | "error", "message": ...}}`.
Only the plan's public table is published: communes, groups, sectors, workers.
"""


def create_app(source: PlanSource | Any) -> FastAPI:
    """The service's ASGI application.

    Parameters
    ----------
    source
        A plan source (:class:`~sectorize.serve.dated.RegistryPlans`,
        :class:`~sectorize.serve.dated.FixedPlan`), or a built
        :class:`~sectorize.serve.routing.Router` (served as one fixed plan).
        It is only read.

    Returns
    -------
    fastapi.FastAPI
        With ``/route``, ``/plan``, ``/health`` and ``/openapi.json`` (GET);
        no documentation UI.
    """
    plans = source if hasattr(source, "resolve") else FixedPlan(source)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url="/openapi.json", swagger_ui_oauth2_redirect_url=None,
                  title="sectorize routing", version=API_VERSION, description=_DESCRIPTION, debug=False)
    app.add_middleware(_QueryGuard)

    @app.get("/route", response_class=JSONResponse, summary="Route a referral by INSEE code, postcode or point",
             response_model=None, responses={
                 200: {"model": RouteAnswer, "description": "routed, ambiguous or outside_region"},
                 400: {"model": Union[RouteAnswer, ErrorAnswer],  # noqa: UP007 (OpenAPI anyOf)
                       "description": "invalid: a lookup the router refuses (e.g. insee and postcode together), "
                                      "or a refused query (too long, unknown or repeated parameter, not UTF-8)"},
                 404: {"model": Union[RouteAnswer, ErrorAnswer],  # noqa: UP007
                       "description": "not_found: an unknown code, or no plan in force that day (or, over one "
                                      "fixed plan, `on` outside its dates)"},
                 422: _ERRORS[422],
             })
    def route(
        insee: Annotated[str, Query(min_length=5, max_length=5, pattern=INSEE_PATTERN, examples=["69388"],
                                    description="INSEE code of the patient's home commune (old codes of merged "
                                                "communes and Lyon's arrondissements accepted)")] = None,
        postcode: Annotated[str, Query(min_length=5, max_length=5, pattern=POSTCODE_PATTERN, examples=["42000"],
                                       description="Postcode; a postcode spanning sectors answers `ambiguous` "
                                                   "with the candidates")] = None,
        lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False, examples=[45.74],
                                    description="Latitude, decimal degrees (WGS84); with `lon`")] = None,
        lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False, examples=[4.88],
                                    description="Longitude, decimal degrees (WGS84); with `lat`")] = None,
        on: OnParameter = None,
    ) -> JSONResponse:
        """Give exactly one of `insee`, `postcode`, or `lat` and `lon`; optionally `on`."""
        try:
            served = plans.resolve(on)
        except NoPlanInForce as err:
            return _no_plan(err)
        answer = served.router.route(insee=insee, postcode=postcode, lat=lat, lon=lon)
        return _json(served.answer(answer), HTTP_STATUS[answer.status])

    @app.get("/plan", response_class=JSONResponse, summary="The plan in force: its sectors and workers",
             response_model=None, responses={200: {"model": PlanAnswer}, 400: _ERRORS[400], 404: _ERRORS[404],
                                             422: _ERRORS[422]})
    def plan(on: OnParameter = None) -> JSONResponse:
        """The public description of the plan answering on `on` (default: today)."""
        try:
            served = plans.resolve(on)
        except NoPlanInForce as err:
            return _no_plan(err)
        return _json(served.plan())

    @app.get("/health", response_class=JSONResponse, summary="Liveness, and the plan answering today",
             response_model=None, responses={200: {"model": HealthAnswer}, 400: _ERRORS[400]})
    def health() -> JSONResponse:
        """Always 200 while the service runs; `plan_id` is null when no plan is in force today."""
        try:
            served = plans.resolve(None)
        except NoPlanInForce as err:
            return _json({"status": "ok", "plan_id": None, "vintage": None, "communes": None,
                          "effective_from": None, "effective_to": None, "message": str(err)})
        dates = served.dates()
        return _json({"status": "ok", "plan_id": served.plan_id, "vintage": served.router.info.vintage,
                      "communes": served.router.communes, "effective_from": dates["effective_from"],
                      "effective_to": dates["effective_to"]})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: "no such endpoint; use GET /route, /plan, /health or /openapi.json",
                    405: "only GET is allowed"}
        response = _invalid(messages.get(exc.status_code, "request refused"), exc.status_code)
        if exc.status_code == 405:
            response.headers["Allow"] = "GET"
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid(_validation_message(list(exc.errors())), 422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        _log.error("internal error on %s: %s", request.url.path, type(exc).__name__)
        return _json({"status": "error", "message": "internal error"}, 500)

    return app


def openapi_document() -> dict[str, Any]:
    """The service's OpenAPI document (the same whatever the plans: built without loading any)."""
    return create_app(FixedPlan(None)).openapi()


def write_openapi(path: str | Path | None = None) -> Path:
    """Write :func:`openapi_document` as JSON (default: the copy shipped in ``sectorize/store/schemas/``).

    Run after changing the API, so that ``sectorize plans export`` hands integrators the current one::

        .venv/bin/python -c "from sectorize.serve.service import write_openapi; write_openapi()"
    """
    from sectorize.store.contract import OPENAPI_FILE

    target = Path(path) if path is not None else Path(__file__).resolve().parents[1] / "store" / "schemas" / OPENAPI_FILE
    target.write_text(json.dumps(openapi_document(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return target


def serve(source: PlanSource | Any, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the service until interrupted (Ctrl+C).

    Parameters
    ----------
    source
        The plans to answer from: a :class:`~sectorize.serve.dated.RegistryPlans`
        (by date), a :class:`~sectorize.serve.dated.FixedPlan` or a
        :class:`~sectorize.serve.routing.Router` (one plan).
    host
        Interface to listen on; the default answers this machine only.
    port
        TCP port.
    """
    import uvicorn

    uvicorn.run(create_app(source), host=host, port=port, server_header=False, date_header=True,
                access_log=False, log_level="warning", proxy_headers=False)
