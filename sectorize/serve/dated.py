"""Which plan answers a referral on a given day: one fixed plan, or the registry's plan in force.

The routing service and ``sectorize route`` ask a *plan source* for the plan
of a day (``resolve(on)``) and get a :class:`Served`: the
:class:`~sectorize.serve.routing.Router` of that plan with its id and
effective dates, or :class:`NoPlanInForce` with a message meant for the
caller (it names dates and plan ids, never a file path).

* :class:`RegistryPlans` over a plan registry: the plan in force on ``on``
  (default: today in Europe/Paris, :func:`~sectorize.serve.routing.routing_today`),
  from the registry's calendar of periods in force (:meth:`Registry.periods
  <sectorize.store.registry.Registry.periods>`: the period with the latest
  ``effective_from`` on or before that day, until the next one, exclusive),
  as :meth:`Registry.effective_on <sectorize.store.registry.Registry.effective_on>`
  says. Plans added or published while the service runs are seen without a
  restart: the calendar is read again whenever the database files change
  (inode, size or modification time of ``plans.sqlite`` and its ``-wal``
  journal: two ``stat`` calls per request) and at least every ``max_age_s``
  seconds; routers are built once per plan (plans are immutable) and the
  last few are kept. A plan stored as invalid is never routed. With
  ``plan_id`` the source serves that one plan only.
* :class:`FixedPlan` over one router (a run folder, or tables in memory).

One fixed plan (``FixedPlan``, or ``RegistryPlans(plan_id=...)``) and a day:

* a plan with effective dates answers only inside them: an ``on`` outside
  gives :class:`NoPlanInForce` (HTTP 404) saying when the plan is in force;
  without ``on`` it answers (the operator chose it), with a ``note`` when
  today is outside its dates;
* a plan without effective dates (a run folder, or a registry plan never put
  in service) answers for every day, and every answer says so in ``note``.

Example
-------
>>> plans = RegistryPlans("sectorize-plans")                        # doctest: +SKIP
>>> served = plans.resolve(date(2027, 3, 1))                          # doctest: +SKIP
>>> served.answer(served.router.route(insee="69388"))["effective_from"]   # doctest: +SKIP
'2027-01-01'
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sectorize.serve.routing import OutsideRule, Route, Router, routing_today

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: How a day is written (ASCII digits only): ``YYYY-MM-DD``.
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"

#: Routers kept in memory by a :class:`RegistryPlans` (today's plan, the previous and next ones, ...).
ROUTERS_KEPT = 4

#: Seconds after which the registry's plan list is read again even if its files look unchanged.
MAX_AGE_S = 30.0

_log = logging.getLogger("sectorize.serve.dated")


class NoPlanInForce(LookupError):
    """No plan answers for the day asked. The message is public: dates and plan ids, no file path."""


@dataclass(frozen=True)
class Served:
    """The plan answering for one day.

    Attributes
    ----------
    router
        The plan's router.
    plan_id
        Registry id, or run folder name.
    effective_from, effective_to
        The plan's period (``effective_to`` exclusive, ``None`` while open);
        both ``None`` for a plan without dates.
    on
        The day the plan was chosen for (the date asked, or today in
        Europe/Paris over a registry); ``None`` for a fixed plan asked
        without a date.
    note
        A remark on the choice (a plan without dates, a fixed plan out of
        its dates today), else ``None``.
    """

    router: Any
    plan_id: str
    effective_from: date | None = None
    effective_to: date | None = None
    on: date | None = None
    note: str | None = None

    def dates(self) -> dict[str, Any]:
        """``effective_from``, ``effective_to``, ``on`` (ISO dates or ``None``) and ``note``."""
        return {"effective_from": _iso(self.effective_from), "effective_to": _iso(self.effective_to),
                "on": _iso(self.on), "note": self.note}

    def answer(self, route: Route) -> dict[str, Any]:
        """The JSON answer to a lookup: :meth:`Route.as_dict` and :meth:`dates`."""
        return {**route.as_dict(), **self.dates()}

    def plan(self) -> dict[str, Any]:
        """The plan's public description (:meth:`Router.public_plan`) with its current dates."""
        return {**self.router.public_plan(), **self.dates()}


class PlanSource(Protocol):
    """Anything that gives the plan of a day (:class:`FixedPlan`, :class:`RegistryPlans`)."""

    def resolve(self, on: date | None = None) -> Served:
        """The plan answering on ``on``; raises :class:`NoPlanInForce`."""


def parse_day(text: str, name: str = "on") -> date:
    """A day written ``YYYY-MM-DD`` (and nothing else: no week dates, timestamps or ``20270101``).

    Raises
    ------
    ValueError
        With a message naming ``name``; it repeats the text only when it has the
        right form (digits and dashes) but is no calendar day.

    >>> parse_day("2027-03-01")
    datetime.date(2027, 3, 1)
    """
    text = str(text)
    if not text:
        raise ValueError(f"{name} is empty")
    if len(text) > 10:
        raise ValueError(f"{name} is too long ({len(text)} characters; a date has 10)")
    if not re.fullmatch(DATE_PATTERN, text):
        raise ValueError(f"{name} is not written YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as err:  # digits and dashes only: safe to repeat
        raise ValueError(f"{text} is not a calendar date ({err})") from None


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _day(value: Any) -> date | None:
    """A date from a date, an ISO string, ``""``/``None``/NaT (``None``)."""
    if value is None or value != value or value == "":  # None, NaN/NaT, empty
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


Period = tuple[date, date | None]


def _holding(periods: list[Period], day: date) -> Period | None:
    return next((p for p in periods if p[0] <= day and (p[1] is None or day < p[1])), None)


def _describe(periods: list[Period]) -> str:
    """``in force from A until B (exclusive)``, several periods joined, or ``without effective dates``."""
    if not periods:
        return "without effective dates"
    spans = [f"from {a.isoformat()} " + (f"until {b.isoformat()} (exclusive)" if b else "with no end date")
             for a, b in periods]
    return "in force " + (spans[0] if len(spans) == 1 else ", ".join(spans[:-1]) + " and " + spans[-1])


def fixed_plan_served(router: Any, plan_id: str, periods: list[Period], on: date | None,
                      today: Callable[[], date] = routing_today) -> Served:
    """:class:`Served` for a service fixed on one plan in force during ``periods`` (``(from, to)``,
    ``to`` exclusive or ``None``; empty for a plan without dates): see the module docstring for the rules.

    Raises
    ------
    NoPlanInForce
        ``on`` is outside every period of a plan that has some.
    """
    if not periods:
        note = (f"plan {plan_id} has no effective dates (a run folder, or a registry plan not put in service): "
                "this service answers with it for every date")
        return Served(router, plan_id, None, None, on, note)
    if on is not None:
        period = _holding(periods, on)
        if period is None:
            raise NoPlanInForce(
                f"plan {plan_id} is {_describe(periods)}; on {on.isoformat()} it is not, and this service "
                "answers with that plan only: ask for a date in its period, or use a service over the whole "
                "registry (sectorize serve --registry DIR, without --plan)"
            )
        return Served(router, plan_id, period[0], period[1], on, None)
    now = today()
    period = _holding(periods, now)
    if period is not None:
        return Served(router, plan_id, period[0], period[1], None, None)
    last = periods[-1]
    note = (f"plan {plan_id} is not in force today ({now.isoformat()}; it is {_describe(periods)}); this service "
            "answers with it because it was started with that plan")
    return Served(router, plan_id, last[0], last[1], None, note)


class FixedPlan:
    """One router, whatever the day (a run folder, tables in memory).

    Its dates are the router's :class:`~sectorize.serve.routing.PlanInfo`
    ``effective_from`` / ``effective_to`` (empty for a run folder).
    """

    def __init__(self, router: Any, *, today: Callable[[], date] = routing_today) -> None:
        self.router = router
        self._today = today

    def resolve(self, on: date | None = None) -> Served:
        info = self.router.info
        start = _day(info.effective_from)
        periods = [(start, _day(info.effective_to))] if start is not None else []
        return fixed_plan_served(self.router, info.plan_id, periods, on, self._today)


class RegistryPlans:
    """The plans of a registry, by day, seeing plans added while it runs.

    Parameters
    ----------
    folder
        Registry folder (``plans.sqlite``).
    plan_id
        Serve this plan only (checked against its dates, see the module
        docstring); default: the plan in force on each day asked.
    outside, border_m
        Passed to :meth:`Router.from_registry`.
    today
        The default day (today in Europe/Paris); tests pass their own.
    max_age_s
        The plan list is read again at least this often (seconds), even when
        the database files look unchanged.
    keep
        Routers kept in memory (least recently used dropped first).

    Raises
    ------
    sectorize.store.registry.RegistryNotFoundError
        No registry in ``folder``.
    LookupError
        ``plan_id`` unknown (:class:`~sectorize.store.registry.PlanNotFoundError`)
        or stored as invalid.
    """

    def __init__(self, folder: str | Path, *, plan_id: str | None = None, outside: OutsideRule | None = None,
                 border_m: float = 500.0, today: Callable[[], date] = routing_today,
                 max_age_s: float = MAX_AGE_S, keep: int = ROUTERS_KEPT) -> None:
        from sectorize.store.registry import Registry

        self.folder = Path(folder)
        self.plan_id = plan_id
        self.outside = outside
        self.border_m = border_m
        self.max_age_s = float(max_age_s)
        self.keep = max(1, int(keep))
        self._today = today
        self._registry = Registry(self.folder, create=False)
        self._lock = threading.Lock()          # the plan list and the router cache
        self._build_lock = threading.Lock()    # one router built at a time
        self._calendar: pd.DataFrame | None = None
        self._signature: tuple | None = None
        self._read_at = 0.0
        self._routers: OrderedDict[str, Router] = OrderedDict()
        if plan_id is not None:  # fail now on an unknown or invalid plan, and have it ready
            self._routers[plan_id] = Router.from_registry(self.folder, plan_id, outside=outside, border_m=border_m)

    # -- the plan list, read again when the registry changes

    def _files_signature(self) -> tuple:
        path = self._registry.path
        out = []
        for candidate in (path, path.with_name(path.name + "-wal")):
            try:
                st = os.stat(candidate)
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def calendar(self) -> pd.DataFrame:
        """The periods in force, ``id, effective_from, effective_to, valid`` (one row per period, in date
        order: :meth:`Registry.periods <sectorize.store.registry.Registry.periods>`), as of the last change seen."""
        signature = self._files_signature()  # before reading: a write in between is seen next time
        now = time.monotonic()
        with self._lock:
            if self._calendar is None or signature != self._signature or now - self._read_at > self.max_age_s:
                self._calendar = self._read_calendar()
                self._signature, self._read_at = signature, now
            return self._calendar

    def _read_calendar(self) -> pd.DataFrame:
        periods = getattr(self._registry, "periods", None)
        if periods is not None:
            table = periods()
        else:  # a registry without publications: one period per dated plan
            table = self._registry.list()
            table = table.loc[[_day(v) is not None for v in table["effective_from"]]]
        return table[["id", "effective_from", "effective_to", "valid"]].reset_index(drop=True)

    # -- routers, built once per plan

    def router(self, plan_id: str) -> Router:
        """The router of ``plan_id`` (built on first use, kept while recently used)."""
        with self._lock:
            if plan_id in self._routers:
                self._routers.move_to_end(plan_id)
                return self._routers[plan_id]
        with self._build_lock:
            with self._lock:
                if plan_id in self._routers:
                    return self._routers[plan_id]
            try:
                built = Router.from_registry(self.folder, plan_id, outside=self.outside, border_m=self.border_m)
            except LookupError as err:  # stored as invalid (or gone): never routed; the message names the folder
                _log.error("plan %s cannot be routed: %s", plan_id, err)
                raise NoPlanInForce(f"plan {plan_id} cannot be routed: it is stored as invalid") from None
            with self._lock:
                self._routers[plan_id] = built
                while len(self._routers) > self.keep:
                    self._routers.popitem(last=False)
            return built

    # -- the plan of a day

    def resolve(self, on: date | None = None) -> Served:
        """The plan answering on ``on`` (default: today in Europe/Paris).

        Raises
        ------
        NoPlanInForce
            No plan in force that day (before the first plan, or none put in
            service), the plan in force is stored as invalid, or a fixed
            plan asked outside its dates.
        """
        calendar = self.calendar()
        periods = [(start, _day(row.effective_to), row) for row in calendar.itertuples(index=False)
                   if (start := _day(row.effective_from)) is not None]
        if self.plan_id is not None:
            mine = [(start, end) for start, end, row in periods if row.id == self.plan_id]
            served = fixed_plan_served(None, self.plan_id, mine, on, self._today)  # raises out of its dates
            return dataclasses.replace(served, router=self.router(self.plan_id))
        day = on or self._today()
        in_force = [p for p in periods if p[0] <= day]
        if not in_force:
            if not periods:
                raise NoPlanInForce(f"no plan is in force on {day.isoformat()}: no plan of the registry has been "
                                    "put in service (published with an effective date)")
            first = min(start for start, _, _ in periods)
            raise NoPlanInForce(f"no plan is in force on {day.isoformat()}: the first plan takes effect on "
                                f"{first.isoformat()}")
        start, end, row = max(in_force, key=lambda p: p[0])
        if not bool(row.valid):
            raise NoPlanInForce(f"plan {row.id}, in force on {day.isoformat()}, is stored as invalid (it failed "
                                "the independent checks) and is never routed")
        return Served(self.router(str(row.id)), str(row.id), start, end, day, None)
