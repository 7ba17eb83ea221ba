"""The team's web app: a referral desk for the coordinator and a plan studio for the manager.

``sectorize app --registry DIR`` serves, on this machine only by default
(127.0.0.1), over one plan registry (:mod:`sectorize.store.registry`):

* ``/`` — the **referral desk** (anyone who can reach the page): one search
  box (commune name, postcode or INSEE code; :mod:`sectorize.app.search`)
  or a click on the map, answered with the referent worker of the plan in
  force on the day asked (:mod:`sectorize.serve.dated`), the rule that
  applied, the candidate sectors with their shares when a postcode spans
  several, and the referent under every plan already published for a later
  date;
* ``/studio`` — the **plan studio** (logged-in editors and publishers): open
  a stored plan as a draft (:mod:`sectorize.app.draft`), move communes,
  see the caseload of every sector against its target, contiguity and
  balance problems and the patients who would change referent, lock
  communes or sectors, re-optimise the rest in the background
  (:mod:`sectorize.app.jobs`), undo/redo, save the draft as a plan of the
  registry (its parent recorded, checked by the same independent checker as
  every stored plan), publish it from a date (publishers), upload this
  year's counts and re-run from the plan in force.

Everything the pages do goes through the JSON API under ``/api/`` described
by ``/openapi.json``. The pages are static files (:mod:`sectorize.app.static`);
Leaflet and leaflet-lasso are served from the vendored copies in
``sectorize/assets``: no request leaves the machine.

Security
--------
* Users live in the registry folder (:class:`sectorize.app.accounts.UserStore`,
  ``sectorize users add``); roles are enforced here, on the server, for every
  request: anonymous users reach the desk endpoints only; ``editor`` the
  studio; ``publisher`` also publishing and the audit log.
* Login (``POST /api/login``) sets two cookies: ``session`` (HttpOnly,
  SameSite=Strict; the server-side session) and ``csrf_token`` (readable by
  the page). Every other state-changing request must carry the header
  ``X-CSRF-Token`` equal to that cookie (double submit): a page of another
  site can neither read the cookie nor set the header.
* Failed logins are limited per user name and per client address
  (:class:`sectorize.app.accounts.LoginLimiter`); answered 429 with
  ``Retry-After``.
* Saves, publications, re-runs and logins are appended to the registry's
  audit log (who, when, what).
* Uploads are limited to :data:`MAX_UPLOAD_BYTES`, read by the same reader
  as ``sectorize validate`` (CSV or XLSX cells as text and numbers: no
  formula, macro or pickle is ever executed) and must be counts per commune:
  patient-level columns and one row per patient (a code repeated) are
  refused with the reader's message.
* Answers carry a strict Content-Security-Policy (scripts and styles from the
  app only), ``X-Frame-Options: DENY`` and no server header; errors are
  ``{"detail": message}`` and never a stack trace.

Example
-------
>>> app = create_app("sectorize-plans")                                # doctest: +SKIP
>>> serve_app("sectorize-plans", host="127.0.0.1", port=8000)          # doctest: +SKIP
$ curl 'http://127.0.0.1:8000/api/route?q=Villeurbanne'
{"status":"routed","insee":"69266","worker_name":"Travailleur social 05","sector":"B3",...}
"""

from __future__ import annotations

import gzip
import logging
from contextlib import asynccontextmanager, contextmanager
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from sectorize.app import accounts
from sectorize.app.draft import DraftStore, context_for
from sectorize.app.geometry import browser_geojson
from sectorize.app.jobs import JobRunner
from sectorize.app.search import MAX_QUERY_CHARS, CommuneIndex
from sectorize.serve.dated import NoPlanInForce, RegistryPlans, parse_day
from sectorize.serve.routing import routing_today
from sectorize.store.atomic import atomic_write_bytes
from sectorize.store.registry import PlanNotFoundError, Registry, RegistryError

_log = logging.getLogger(__name__)

#: Version of the app's JSON API.
API_VERSION = "1.0"

#: Largest demand file accepted (bytes).
MAX_UPLOAD_BYTES = 5 * 1024 * 1024

#: Largest JSON body accepted on other endpoints (bytes): a move of every unit fits.
MAX_JSON_BYTES = 256 * 1024

#: Longest re-optimisation or re-run asked from the page (seconds).
MAX_TIME_LIMIT_S = 600.0

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_DIR = Path(__file__).parents[1] / "assets"

#: Content-Security-Policy of every answer: nothing but this app's own files.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")

_UPLOAD_NAME = re.compile(r"^[\w .()+-]{1,100}\.(csv|txt|xlsx|xlsm)$", re.IGNORECASE)


# --------------------------------------------------------------------------
# Request bodies
# --------------------------------------------------------------------------


class LoginBody(BaseModel):
    user: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class MoveBody(BaseModel):
    units: list[Annotated[str, Field(min_length=5, max_length=5)]] = Field(min_length=1, max_length=10_000)
    sector: str = Field(min_length=1, max_length=40)


class LockBody(BaseModel):
    units: list[Annotated[str, Field(min_length=5, max_length=5)]] = Field(default_factory=list, max_length=10_000)
    sectors: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(default_factory=list, max_length=200)
    locked: bool = True


class SolveBody(BaseModel):
    time_limit_s: float = Field(default=20.0, gt=0, le=MAX_TIME_LIMIT_S)


class SaveBody(BaseModel):
    note: str = Field(default="", max_length=2000)


class PublishBody(BaseModel):
    effective_from: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    note: str = Field(default="", max_length=2000)


# --------------------------------------------------------------------------
# What the app keeps per plan
# --------------------------------------------------------------------------


@dataclass
class PlanView:
    """A stored plan as the pages need it: sectors with colours, the assignment, the search index."""

    id: str
    stored: Any
    sectors: list[dict[str, Any]]
    assignment: dict[str, str]
    index: CommuneIndex
    units_key: str

    def public(self) -> dict[str, Any]:
        s = self.stored
        return {"id": self.id, "name": s.name, "created": s.created, "parent_id": s.parent_id,
                "valid": bool(s.valid), "violations": list(s.violations),
                "effective_from": _iso(s.effective_from), "effective_to": _iso(s.effective_to),
                "sectors": self.sectors, "assignment": self.assignment}


def _iso(day: Any) -> str | None:
    return None if day is None or (not isinstance(day, str) and pd.isna(day)) else str(day)[:10]


def _sector_colours(stored: Any) -> dict[str, str]:
    """Colour of each sector, as on the plan's maps (:func:`sectorize.report.maps.sector_colours`)."""
    import networkx as nx

    from sectorize.report.maps import sector_colours

    units = stored.sectors.set_index("insee")
    names = []
    try:
        names = list(tomllib.loads(stored.scenario_toml).get("groups", {}).get("names", []))
    except tomllib.TOMLDecodeError:
        pass
    columns = ["group", "sector"] + (["worker_id"] if "worker_id" in units.columns else [])
    shaped = SimpleNamespace(units=units[columns].astype(str), graph=nx.Graph(),
                             scenario=SimpleNamespace(groups=SimpleNamespace(names=names)))
    return {str(sector): colour for (_, sector), colour in sector_colours(shaped).items()}


def _plan_view(stored: Any) -> PlanView:
    sectors_table = stored.sectors.copy()
    sectors_table["insee"] = sectors_table["insee"].astype(str)
    colours = _sector_colours(stored)
    workers = stored.workers.copy()
    workers["sector"] = workers["sector"].astype(str)
    sectors = []
    for row in workers.sort_values("sector").to_dict("records"):
        sectors.append({"sector": row["sector"], "group": str(row["group"]), "worker_id": str(row["worker_id"]),
                        "worker_name": str(row.get("worker_name", row["worker_id"])),
                        "color": colours.get(row["sector"], "#888888"),
                        "fte": float(row["fte"]) if "fte" in row else None,
                        "target": float(row["target"]) if "target" in row and pd.notna(row["target"]) else None})
    table = sectors_table[["insee", "name", "dep"]].copy()
    population = stored.population.reindex(table["insee"]) if len(stored.population) else None
    table["population"] = population.to_numpy() if population is not None else 0
    table["postcodes"] = (stored.communes_postcodes.reindex(table["insee"]).fillna("").to_numpy()
                          if len(stored.communes_postcodes) else "")
    codes = set(table["insee"])
    aliases = {"Lyon": "69123"} if "69123" not in codes and "69381" in codes else None
    return PlanView(str(stored.id), stored, sectors, dict(zip(sectors_table["insee"], sectors_table["sector"].astype(str))),
                    CommuneIndex(table, aliases=aliases), str(stored.inputs.get("units", stored.id)))


class AppState:
    """Everything the app holds: the registry, users and sessions, drafts, jobs and caches.

    Parameters
    ----------
    folder
        Registry folder (must exist: ``sectorize plans add`` creates it).
    today
        The default day of the desk (today in Europe/Paris); tests pass their own.
    """

    def __init__(self, folder: str | Path, *, today: Callable[[], date] = routing_today,
                 session_ttl_s: float | None = None) -> None:
        self.folder = Path(folder)
        self.registry = Registry(self.folder, create=False)
        self.today = today
        self.plans = RegistryPlans(self.folder, today=today)
        self.users = accounts.UserStore(self.folder)
        self.sessions = accounts.SessionStore() if session_ttl_s is None else accounts.SessionStore(idle_timeout_s=session_ttl_s)
        self.limiter = accounts.LoginLimiter()
        self.audit = accounts.AuditLog(self.folder)
        self.drafts = DraftStore(self.folder)
        self.jobs = JobRunner()
        self.uploads: dict[str, dict[str, Any]] = {}
        self._views: dict[str, PlanView] = {}
        self._geometry: dict[str, tuple[bytes, bytes, str]] = {}
        self._lock = threading.Lock()

    def view(self, plan_id: str) -> PlanView:
        """The plan's view (built once; a stored plan never changes)."""
        with self._lock:
            if plan_id in self._views:
                return self._views[plan_id]
        try:
            stored = self.registry.get(plan_id)
        except PlanNotFoundError as err:
            raise HTTPException(404, str(err)) from None
        view = _plan_view(stored)
        with self._lock:
            self._views[plan_id] = view
            if len(self._views) > 16:
                self._views.pop(next(iter(self._views)))
        return view

    def warm(self) -> None:
        """Build the caches of the plan in force (or the latest plan): view, router, polygons, draft context."""
        try:
            plan_id = self.any_plan_id()
            view = self.view(plan_id)
            self.geometry(plan_id)
            if self.in_force_id() == plan_id:
                self.plans.router(plan_id)
            context_for(view.stored)
        except Exception:  # a cache not warmed is built on first use, where its error is reported
            _log.warning("warming the app's caches failed", exc_info=True)

    def in_force_id(self, on: date | None = None) -> str | None:
        try:
            return self.plans.resolve(on).plan_id
        except NoPlanInForce:
            return None

    def any_plan_id(self) -> str:
        """The plan in force today, else the latest plan stored."""
        plan_id = self.in_force_id()
        if plan_id is None:
            table = self.registry.list()
            if table.empty:
                raise HTTPException(404, f"registry {self.folder.name} holds no plan yet: add one with "
                                         "sectorize plans add")
            plan_id = str(table["id"].iloc[-1])
        return plan_id

    def geometry(self, plan_id: str) -> tuple[bytes, bytes, str]:
        """The simplified GeoJSON of the plan's units, gzipped once, and its ETag (shared by plans with the
        same units)."""
        view = self.view(plan_id)
        with self._lock:
            if view.units_key in self._geometry:
                return self._geometry[view.units_key]
        blob = browser_geojson(view.stored.geometry, view.stored.sectors[["insee", "name", "dep"]])
        packed = gzip.compress(blob, compresslevel=6, mtime=0)
        etag = '"' + view.units_key[:16] + '"'
        with self._lock:
            self._geometry[view.units_key] = (blob, packed, etag)
        return blob, packed, etag


# --------------------------------------------------------------------------
# Sessions, roles and CSRF
# --------------------------------------------------------------------------


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def create_app(folder: str | Path, *, today: Callable[[], date] = routing_today,
               session_ttl_s: float | None = None, warm: bool = True) -> FastAPI:
    """The app's ASGI application over the registry in ``folder``.

    Parameters
    ----------
    folder
        Registry folder.
    today
        The default day of the desk (today in Europe/Paris).
    session_ttl_s
        Idle timeout of a session (seconds; default that of
        :class:`~sectorize.app.accounts.SessionStore`, a working day).
    warm
        At start-up, prepare in the background what the first visitor would
        otherwise wait for: the plan in force, its router and search index, the
        simplified polygons and the editing context (travel times).

    Raises
    ------
    sectorize.store.registry.RegistryNotFoundError
        No registry in ``folder``.
    """
    state = AppState(folder, today=today, session_ttl_s=session_ttl_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm:
            threading.Thread(target=state.warm, name="sectorize-app-warm", daemon=True).start()
        yield
        state.jobs.close()   # a solver process still running is stopped with the app

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url="/openapi.json", swagger_ui_oauth2_redirect_url=None,
                  title="sectorize app", version=API_VERSION, debug=False,
                  description="Referral desk and plan studio over a sectorize plan registry.")
    app.state.sectorize = state
    app.add_middleware(GZipMiddleware, minimum_size=2048)

    def session(request: Request) -> Any:
        """The request's session, or ``None``; a session whose user was removed or changed role since
        login (``sectorize users`` in another process) ends here."""
        token = request.cookies.get(accounts.SESSION_COOKIE)
        current = state.sessions.get(token) if token else None
        if current is None:
            return None
        user = state.users.get(current.user)
        if user is None or user.role != current.role:
            state.sessions.drop(token)
            return None
        return current

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            length = request.headers.get("content-length")
            limit = MAX_UPLOAD_BYTES if request.url.path == "/api/demand" else MAX_JSON_BYTES
            if length is not None and (not length.isdigit() or int(length) > limit):
                return _error(413, f"request body too large (at most {limit // 1024} KiB)")
            if request.url.path != "/api/login":
                current = session(request)
                if not accounts.check_csrf(request.cookies.get(accounts.CSRF_COOKIE),
                                           request.headers.get(accounts.CSRF_HEADER),
                                           expected=current.csrf_token if current else None):
                    return _error(403, "missing or wrong X-CSRF-Token header: reload the page and log in again")
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        if request.url.path.startswith("/api/") and request.url.path != "/api/geometry":
            response.headers["Cache-Control"] = "no-store"
        return response


    def need(role: str):
        def check(request: Request) -> Any:
            current = session(request)
            if current is None:
                raise HTTPException(401, "log in first (POST /api/login)")
            if not accounts.role_allows(current.role, role):
                raise HTTPException(403, f"this needs the {role} role; {current.user} is {current.role}")
            return current
        return check

    editor = Depends(need("editor"))
    publisher = Depends(need("publisher"))

    # ---- pages and assets -------------------------------------------------

    app.mount("/static/vendor", StaticFiles(directory=ASSETS_DIR), name="vendor")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def desk_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "desk.html", media_type="text/html; charset=utf-8")

    @app.get("/studio", include_in_schema=False)
    def studio_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "studio.html", media_type="text/html; charset=utf-8")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    # ---- the desk (anonymous) ---------------------------------------------

    def day(on: str | None) -> date | None:
        if on in (None, ""):
            return None
        try:
            return parse_day(on)
        except ValueError as err:
            raise HTTPException(422, str(err)) from None

    @app.get("/api/geometry", summary="Simplified polygons of the units (GeoJSON), for drawing")
    def geometry(request: Request, plan: Annotated[str | None, Query(max_length=40)] = None) -> Response:
        blob, packed, etag = state.geometry(plan or state.any_plan_id())
        headers = {"ETag": etag, "Cache-Control": "private, max-age=3600", "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(packed, media_type="application/geo+json", headers={**headers, "Content-Encoding": "gzip"})
        return Response(blob, media_type="application/geo+json", headers=headers)

    @app.get("/api/suggest", summary="Suggestions for the text typed in the search box")
    def suggest(q: Annotated[str, Query(max_length=MAX_QUERY_CHARS)] = "") -> dict[str, Any]:
        try:
            view = state.view(state.any_plan_id())
        except HTTPException:
            return {"suggestions": []}
        return {"suggestions": [s.as_dict() for s in view.index.suggest(q)]}

    @app.get("/api/route", summary="The referent worker of a commune, postcode, INSEE code or map point")
    def route(q: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
              lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
              lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
              on: Annotated[str | None, Query(max_length=10)] = None) -> JSONResponse:
        when = day(on)
        try:
            served = state.plans.resolve(when)
        except NoPlanInForce as err:
            return JSONResponse({"status": "not_found", "message": str(err), "query": q}, status_code=404)
        view = state.view(served.plan_id)
        asked: dict[str, Any]
        if q is not None and (lat is not None or lon is not None):
            return JSONResponse({"status": "invalid", "message": "give q, or lat and lon, not both"}, 400)
        if q is None:
            if lat is None or lon is None:
                return JSONResponse({"status": "invalid", "message": "give q (a commune, postcode or INSEE code) "
                                     "or lat and lon"}, 400)
            asked = {"lat": lat, "lon": lon}
        else:
            found = view.index.resolve(q)
            if found.choices:
                return JSONResponse({"status": "choose", "query": q, "message": found.message or
                                     f"several communes match {q!r}: choose one",
                                     "choices": [c.as_dict() for c in found.choices],
                                     "plan": _plan_dates(served), "on": _iso(served.on)})
            if found.insee:
                asked = {"insee": found.insee}
            elif found.postcode:
                asked = {"postcode": found.postcode}
            else:
                return JSONResponse({"status": "not_found", "query": q, "message": found.message}, 404)
        answer = served.router.route(**asked)
        body = {**served.answer(answer), "query": q, "plan": _plan_dates(served), "on": _iso(served.on)}
        if answer.insee:
            body["dep"] = answer.insee[:3] if answer.insee.startswith("97") else answer.insee[:2]
        body["later"] = _later(state, served, asked)
        status = {"invalid": 400, "not_found": 404}.get(answer.status, 200)
        return JSONResponse(body, status_code=status)

    @app.get("/api/plan", summary="The plan in force on a day: sectors, colours and the sector of every unit")
    def plan_in_force(on: Annotated[str | None, Query(max_length=10)] = None) -> dict[str, Any]:
        try:
            served = state.plans.resolve(day(on))
        except NoPlanInForce as err:
            raise HTTPException(404, str(err)) from None
        view = state.view(served.plan_id)
        return {**view.public(), **_plan_dates(served), "on": _iso(served.on)}

    # ---- sessions -----------------------------------------------------------

    @app.get("/api/me", summary="Who is logged in")
    def me(request: Request) -> dict[str, Any]:
        current = session(request)
        return {"user": current.user if current else None, "role": current.role if current else None}

    @app.post("/api/login", summary="Log in: sets the session and csrf_token cookies")
    def login(body: LoginBody, request: Request) -> JSONResponse:
        client = _client(request)
        wait = state.limiter.retry_after(body.user, client)
        if wait:
            return _error(429, f"too many failed logins: try again in {int(wait) + 1} s",
                          {"Retry-After": str(int(wait) + 1)})
        user = state.users.verify(body.user, body.password)
        if user is None:
            state.limiter.failure(body.user, client)
            state.audit.append(None, None, "login_failed", {"name": body.user[:64], "address": client})
            return _error(401, "unknown user or wrong password")
        state.limiter.success(body.user, client)
        current = state.sessions.create(user)
        state.audit.append(user.name, user.role, "login", {"address": client})
        response = JSONResponse({"user": user.name, "role": user.role})
        response.set_cookie(**accounts.session_cookie(current))
        response.set_cookie(**accounts.csrf_cookie(current))
        return response

    @app.post("/api/logout", summary="Log out")
    def logout(request: Request) -> JSONResponse:
        token = request.cookies.get(accounts.SESSION_COOKIE)
        if token:
            state.sessions.drop(token)
        response = JSONResponse({"user": None, "role": None})
        for cookie in accounts.cleared_cookies():
            response.delete_cookie(**cookie)
        return response

    # ---- plans and drafts (editors) ---------------------------------------

    @app.get("/api/plans", summary="The stored plans (editors)")
    def plans(current=editor) -> dict[str, Any]:
        table = state.registry.list()
        in_force = state.in_force_id()
        out = []
        for row in table.to_dict("records"):
            out.append({"id": str(row["id"]), "name": str(row.get("name", "")), "created": str(row.get("created", "")),
                        "parent_id": row.get("parent_id") if isinstance(row.get("parent_id"), str) else None,
                        "valid": bool(row.get("valid", True)), "status": str(row.get("status", "")),
                        "effective_from": _iso(row.get("effective_from")), "effective_to": _iso(row.get("effective_to")),
                        "note": str(row.get("note", "") or "")})
        return {"plans": out, "in_force": in_force}

    @app.get("/api/plans/{plan_id}", summary="One stored plan: sectors and the sector of every unit (editors)")
    def plan(plan_id: str, current=editor) -> dict[str, Any]:
        return state.view(plan_id).public()

    @app.post("/api/plans/{plan_id}/drafts", summary="Open a draft from a stored plan (editors)")
    def new_draft(plan_id: str, current=editor) -> dict[str, str]:
        view = state.view(plan_id)
        in_force = state.in_force_id()
        try:
            draft = state.drafts.open(view.stored, state.registry.get(in_force) if in_force else None)
        except ValueError as err:   # EditError: the plan's units or team changed since it was made
            raise HTTPException(422, str(err)) from None
        return {"id": draft.id}

    def draft_of(draft_id: str):
        try:
            return state.drafts.get(draft_id)
        except KeyError as err:
            raise HTTPException(404, str(err).strip("'\"")) from None

    @app.get("/api/drafts/{draft_id}", summary="A draft's state and review (editors)")
    def get_draft(draft_id: str, current=editor) -> dict[str, Any]:
        return draft_of(draft_id).state()

    @app.post("/api/drafts/{draft_id}/moves", summary="Move units to a sector; answers the new review (editors)")
    def move(draft_id: str, body: MoveBody, current=editor) -> dict[str, Any]:
        draft = draft_of(draft_id)
        try:
            state.drafts.move(draft.id, body.units, body.sector)
        except PermissionError as err:
            raise HTTPException(409, str(err)) from None
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        return draft.state()

    def history(draft_id: str, action: str) -> dict[str, Any]:
        draft = draft_of(draft_id)
        try:
            done = getattr(state.drafts, action)(draft.id)
        except PermissionError as err:   # the step would move a commune locked since
            raise HTTPException(409, str(err)) from None
        if done is None:
            raise HTTPException(409, f"nothing to {action}")
        return draft.state()

    @app.post("/api/drafts/{draft_id}/undo", summary="Undo the last step (editors)")
    def undo(draft_id: str, current=editor) -> dict[str, Any]:
        return history(draft_id, "undo")

    @app.post("/api/drafts/{draft_id}/redo", summary="Redo the last undone step (editors)")
    def redo(draft_id: str, current=editor) -> dict[str, Any]:
        return history(draft_id, "redo")

    @app.post("/api/drafts/{draft_id}/locks", summary="Lock or unlock units or whole sectors (editors)")
    def lock(draft_id: str, body: LockBody, current=editor) -> dict[str, Any]:
        draft = draft_of(draft_id)
        if not body.units and not body.sectors:
            raise HTTPException(422, "give units or sectors to lock")
        try:
            state.drafts.lock(draft.id, units=body.units, sectors=body.sectors, locked=body.locked)
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        return draft.state()

    @app.post("/api/drafts/{draft_id}/reoptimise",
              summary="Re-optimise every unit neither moved by hand nor locked, in the background (editors)")
    def reoptimise(draft_id: str, body: SolveBody, current=editor) -> dict[str, str]:
        draft = draft_of(draft_id)
        version = draft.version   # moves made while it runs are not overwritten: the result is then refused
        job = state.jobs.start("reoptimise", "reoptimise", {
            "registry_folder": str(state.folder), "parent_id": draft.parent_id, "moves": draft.moves(),
            "locked_units": sorted(draft.locked_codes()), "time_limit_s": body.time_limit_s},
            on_done=lambda result: state.drafts.replace(draft.id, result["assignment"], base_version=version))
        return {"job": job.id}

    @app.post("/api/drafts/{draft_id}/save",
              summary="Store the draft as a plan of the registry, its parent recorded (editors)")
    def save(draft_id: str, body: SaveBody, current=editor) -> dict[str, Any]:
        draft = draft_of(draft_id)
        try:
            plan_id, valid, violations = draft.save(state.registry, body.note, current.user)
        except (RegistryError, ValueError) as err:
            raise HTTPException(422, str(err)) from None
        state.audit.append(current.user, current.role, "save", {
            "draft": draft.id, "plan_id": plan_id, "parent_id": draft.parent_id, "valid": valid,
            "moved_communes": len(draft.moves()), "note": body.note})
        return {"plan_id": plan_id, "valid": valid, "violations": list(violations)}

    # ---- jobs ---------------------------------------------------------------

    def job_of(job_id: str):
        try:
            return state.jobs.get(job_id)
        except KeyError:
            raise HTTPException(404, f"no job {job_id!r} (jobs are kept while the app runs)") from None

    @app.get("/api/jobs/{job_id}", summary="Progress of a background job (editors)")
    def job(job_id: str, current=editor) -> dict[str, Any]:
        return job_of(job_id).as_dict()

    @app.post("/api/jobs/{job_id}/cancel", summary="Cancel a background job (editors)")
    def cancel(job_id: str, current=editor) -> dict[str, Any]:
        job_of(job_id)
        return state.jobs.cancel(job_id).as_dict()

    # ---- this year's demand -----------------------------------------------

    @app.post("/api/demand", summary="Upload this year's counts per commune (CSV or XLSX body) and check them "
                                     "(editors)")
    async def upload(request: Request, filename: Annotated[str, Query(max_length=100)],
                     sheet: Annotated[str | None, Query(max_length=60)] = None, current=editor) -> JSONResponse:
        if not _UPLOAD_NAME.match(filename):
            raise HTTPException(422, f"file name {filename!r}: give a .csv or .xlsx file (letters, digits, spaces, "
                                     "._-() in the name)")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_UPLOAD_BYTES:
                raise HTTPException(413, f"{filename}: larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB; a file "
                                         "of counts per commune is far smaller (is it one row per patient?)")
        if not body:
            raise HTTPException(422, f"{filename}: the file is empty")
        upload_id = secrets.token_hex(8)
        folder = state.folder / "uploads" / upload_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename
        atomic_write_bytes(path, bytes(body))
        in_force = state.any_plan_id()
        from sectorize.app.demand import check_upload

        check = check_upload(state.registry.get(in_force), path, sheet=sheet)
        if check["ok"]:
            state.uploads[upload_id] = {"path": str(path), "sheet": sheet, "plan_id": in_force,
                                        "user": current.user}
            check["upload"] = upload_id
        else:
            path.unlink(missing_ok=True)
            folder.rmdir()
        return JSONResponse(check, status_code=200 if check["ok"] else 422)

    @app.post("/api/demand/{upload_id}/rerun",
              summary="Re-run the plan in force with an uploaded demand file; ends as a stored draft (editors)")
    def rerun(upload_id: str, body: SolveBody, current=editor) -> dict[str, str]:
        upload = state.uploads.get(upload_id)
        if upload is None:
            raise HTTPException(404, f"no checked upload {upload_id!r}: upload the file again")

        def opened(result: dict[str, Any]) -> None:
            state.audit.append(current.user, current.role, "rerun", {"upload": upload_id, "parent_id":
                               upload["plan_id"], "plan_id": result.get("plan_id")})
            if result.get("plan_id"):
                draft = state.drafts.open(state.registry.get(result["plan_id"]), state.registry.get(upload["plan_id"]))
                result["draft"] = draft.id

        job = state.jobs.start("rerun", "rerun_from_demand", {
            "registry_folder": str(state.folder), "in_force_id": upload["plan_id"], "demand_path": upload["path"],
            "sheet": upload["sheet"], "time_limit_s": body.time_limit_s}, on_done=opened)
        return {"job": job.id}

    # ---- publishers ---------------------------------------------------------

    @app.post("/api/plans/{plan_id}/publish", summary="Put a stored plan in service from a date (publishers)")
    def publish(plan_id: str, body: PublishBody, current=publisher) -> dict[str, Any]:
        try:
            publication = state.registry.publish(plan_id, body.effective_from,
                                                 note=body.note or f"published by {current.user} from the app")
        except PlanNotFoundError as err:
            raise HTTPException(404, str(err)) from None
        except (RegistryError, ValueError) as err:
            raise HTTPException(422, str(err)) from None
        state.audit.append(current.user, current.role, "publish", {
            "plan_id": plan_id, "effective_from": body.effective_from, "note": body.note})
        return {"plan_id": plan_id, "effective_from": publication.effective_from.isoformat()}

    @app.get("/api/audit", summary="The audit log: logins, saves, publications, re-runs (publishers)")
    def audit(limit: Annotated[int, Query(ge=1, le=5000)] = 200, current=publisher) -> dict[str, Any]:
        return {"entries": state.audit.read(limit=limit)}

    # ---- errors ---------------------------------------------------------------

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such page or endpoint: {request.url.path}"
        return _error(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for error in list(exc.errors())[:5]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
            parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
        return _error(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("internal error on %s", request.url.path)
        return _error(500, "internal error (see the app's log)")

    return app


def _plan_dates(served: Any) -> dict[str, Any]:
    return {"id": served.plan_id, "effective_from": _iso(served.effective_from),
            "effective_to": _iso(served.effective_to)}


def _later(state: AppState, served: Any, asked: dict[str, Any]) -> list[dict[str, Any]]:
    """The referent under each plan already published for a day after the one answered."""
    calendar = state.plans.calendar()
    start = served.on or state.today()
    out = []
    for row in calendar.itertuples(index=False):
        begins = pd.Timestamp(row.effective_from).date() if row.effective_from is not None else None
        if begins is None or begins <= start or str(row.id) == served.plan_id and begins <= start:
            continue
        try:
            answer = state.plans.router(str(row.id)).route(**asked)
        except NoPlanInForce:
            continue
        out.append({"plan_id": str(row.id), "effective_from": begins.isoformat(), "status": answer.status,
                    "group": answer.group, "sector": answer.sector, "worker_id": answer.worker_id,
                    "worker_name": answer.worker_name,
                    "candidates": [{"sector": c.sector, "worker_name": c.worker_name, "share": c.share}
                                   for c in answer.candidates]})
    return out


def serve_app(folder: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app until interrupted (Ctrl+C); ``host`` 127.0.0.1 answers this machine only."""
    import uvicorn

    uvicorn.run(create_app(folder), host=host, port=port, server_header=False, date_header=True,
                access_log=False, log_level="warning", proxy_headers=False)


@contextmanager
def running_app(folder: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                today: Callable[[], date] = routing_today) -> Iterator[str]:
    """Run the app in a background thread (a notebook, a test, a benchmark); yields its base URL.

    ``port=0`` takes a free port. The server stops when the block ends.

    Example
    -------
    >>> with running_app("sectorize-plans") as url:                    # doctest: +SKIP
    ...     print(url)
    http://127.0.0.1:50231
    """
    import socket

    import uvicorn

    if port == 0:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(folder, today=today), host=host, port=port, server_header=False,
                            access_log=False, log_level="warning", proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="sectorize-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the app did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
