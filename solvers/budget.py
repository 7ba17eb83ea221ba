"""The clock every phase of the engine reads its budget from: wall-clock seconds, or work.

A search that stops when the wall clock says so returns a plan that depends on the
machine and on its load: the same inputs and seed explore fewer starts, moves or MIP
nodes on a busy or slow machine. In *work* mode the budget is counted instead in
**work seconds**, a virtual clock that only moves when the engine reports work it has
done; every decision of the search (another start? another pass? how many MIP nodes?)
reads that clock, so it is a function of the inputs, the seed and the settings only,
and the plan is the same alone, beside busy processes, or on one core.

The two clocks (:class:`WallClock`, :class:`WorkClock`) answer the same questions:

- :meth:`Clock.now` in the clock's seconds (deadlines are ``now() + seconds`` as before);
- :meth:`Clock.tick` records counted work: ``count`` operations of a ``kind`` cost
  ``count x`` :attr:`WorkCosts` ``.<kind>`` work seconds (the wall clock ignores it, its
  seconds pass by themselves);
- :func:`solve_parameters` and :func:`highs` give a MathOpt solve its limits and record
  its effort: a wall time limit in wall mode; in work mode a *deterministic* limit
  derived from the work seconds allowed (simplex iterations for an LP, branch-and-bound
  nodes for a MIP) and, as its time limit, only what is left of the safety cap below.

How work is counted
    Each technique counts what its cost is proportional to, and the clock turns the
    counts into work seconds with the constants of :class:`WorkCosts`:

    - local search and rebalancing passes: the units scanned to list the boundary
      (``scan``), the boundary units examined with their neighbouring sectors (``step``),
      the units visited by the connectivity tests of moves (``visit``);
    - region growing: the units taken (``grow``);
    - travel-time reads and products (centres, medoids, cost rows): the matrix entries
      read (``entry``); dense ``n x n`` passes of the Lagrangian bound likewise;
    - LP solves: simplex iterations times the model's size in thousands of rows plus
      columns (``lp_iteration``); MIP solves the same (``mip_iteration``) plus a fixed
      cost per iteration (``mip_iteration_base``), per branch-and-bound node the columns
      in thousands (``mip_node``), and a set-up per thousand nonzeros (``mip_setup``);
      every call a fixed start (``call``);
    - CP-SAT: its own deterministic time (``cpsat_time`` work seconds per unit).

    The counts are exact and machine-independent; only their conversion to seconds is
    a calibration (:class:`WorkCosts`: the defaults make one work second about one wall
    second of a quiet 2-CPU development machine on the default scenario, so that a time
    limit keeps its meaning). Changing a constant changes plans; it is part of the
    engine's definition, like a seed.

Why a MIP gets a node limit and not an iteration or time limit
    HiGHS through MathOpt accepts node limits for MIPs (not iteration limits, and it
    ignores MathOpt's interrupter) and iteration limits for LPs; both are deterministic
    because HiGHS's search, including its parallel parts, does not depend on thread
    timing (its thread count, half the hardware threads, is the same for a given
    machine, pinned or not). A node limit does not bound
    the work of the root node (presolve, cuts, root heuristics): that work is charged
    after the solve from the iterations HiGHS reports, so the clock stays exact, but a
    MIP whose root alone exceeds its budget overspends it. The engine therefore does not
    run, in work mode, the one MIP class known to spend minutes in its root on the
    development instances (the allocation MIP with territory caps from
    :data:`solvers.allocation.mip.STAGED_MIN_UNITS` units, see
    :func:`solvers.allocation.mip.allocation_mip_bounded`), and the exact backend starts
    its MIP only when the root it expects (``exact_root`` per 1,000 nonzeros) fits the
    budget left. HiGHS itself is deterministic: the same
    model and node limit give the same iterations, nodes and plan on a busy machine; a
    plan differs only when the safety cap stops a solve, and the solution says so.

The safety cap
    Work seconds never wait for a slow machine, so a :class:`WorkClock` also holds a
    wall-time cap (``settings.wall_cap_factor x`` the time limit ``+
    settings.wall_cap_margin_s``, extended by each nested solve to cover its own limit).
    When the cap binds, every later reading of the clock jumps :data:`CAP_JUMP` work
    seconds ahead, so every deadline handed out before that reading is past (those
    computed after the cap too) and every phase stops as it would when its time is up;
    solver calls get the shortest time limit. :attr:`Clock.capped` becomes true and
    :attr:`Clock.notes` holds the line ``"stopped by the wall-time safety cap ...: not
    reproducible"`` for the solution's log. Only then does a plan depend on the machine.

The active clock
    :func:`session` makes a clock the active one for the block it runs (a
    :class:`contextvars.ContextVar`, so threads and forked processes each keep theirs);
    every phase reads it with :func:`current`. A solve inside a session (the groups
    after the sectors, a nested solve, the tie-break) shares it, so its deadlines are on
    the same clock; outside any session the clock is the wall clock, which is how the
    functions behaved before work budgets existed. A work session also limits BLAS to
    one thread (:mod:`threadpoolctl`), so that the floating-point sums of matrix
    products do not depend on how many CPUs the process may use.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

#: Work seconds the clock jumps ahead at every reading once the wall-time safety cap has bound
#: (about 32 years: every deadline handed out before the reading is past, and arithmetic on
#: the clock stays exact).
CAP_JUMP = 1e9

#: The shortest wall time limit given to a solver call (seconds): MathOpt refuses 0.
MIN_WALL_LIMIT_S = 0.05

#: Default safety cap of a work budget: this many times the time limit, plus :data:`CAP_MARGIN_S`
#: wall seconds (:attr:`solvers.options.EngineSettings.wall_cap_factor`, ``wall_cap_margin_s``).
CAP_FACTOR = 3.0
CAP_MARGIN_S = 10.0


@dataclass(frozen=True)
class WorkCosts:
    """Work seconds per counted operation: the calibration of :class:`WorkClock`.

    Each field is the cost of one operation of its kind, in work seconds; the defaults
    make one work second about one wall second of a quiet 2-CPU development machine on
    the default scenario (``python benchmarks/bench_determinism.py`` measures the ratio of
    wall to work seconds; :meth:`scaled` rescales every constant at once). They were fitted
    by least squares on single-thread CPU seconds of the constructive heuristic, LPs and
    MIPs on the default scenario and on grid instances.

    Attributes
    ----------
    scan
        Per unit of a full scan of the units (listing a plan's boundary units).
    step
        Per boundary unit examined by a rebalancing, local-search or tie-break pass
        (its neighbouring sectors, the gain of each move).
    visit
        Per unit visited by a connectivity test of a move (bounded breadth-first search).
    grow
        Per unit taken by region growing (heap pushes of its neighbours).
    entry
        Per travel-time or cost-matrix entry read or multiplied (rows of centres and
        medoid candidates, cost rows, dense passes of the Lagrangian bound).
    lp_iteration
        Per simplex iteration of an LP, per 1,000 rows plus columns of the model.
    mip_iteration
        Per simplex iteration inside a MIP (root, cuts, heuristics, nodes), per 1,000 rows
        plus columns.
    mip_iteration_base
        Per simplex iteration inside a MIP, whatever its size (propagation, cut and
        conflict bookkeeping around each iteration).
    mip_node
        Per branch-and-bound node of a MIP, per 1,000 columns (besides its iterations).
    mip_setup
        Per 1,000 nonzeros of a MIP handed to HiGHS (model transfer, presolve, probing);
        an LP is charged 5 % of it.
    call
        Per solver call (MathOpt's set-up and the solver's start, whatever the model).
    node_estimate, node_estimate_base
        Not charges: the work seconds one branch-and-bound node is expected to take with
        its iterations, per 1,000 columns and whatever the size; a MIP allowed ``s`` work
        seconds gets the node limit ``s / (node_estimate_base + node_estimate x columns / 1000)``.
    exact_setup, exact_iteration, exact_iteration_base
        The MIP of the ``"exact"`` backend (:func:`solvers.exact.model.exact_solve`: a
        p-median with contiguity constraints) in place of the ``mip_*`` charges: per
        1,000 nonzeros, per simplex iteration per 1,000 rows plus columns, and per simplex
        iteration whatever the size (which also pays for the cut rounds, probing and
        heuristics of the root that HiGHS does not report as iterations). Fitted by
        ``python benchmarks/calibrate_exact_work.py`` (non-negative least squares on
        relative errors; the set-up term came out zero) on grids and perturbed counties of
        the generalisation family's tuning half; the ``mip_*`` constants, fitted on
        allocation MIPs, charged these MIPs about a fifth of their wall time.
    exact_build
        Per unit-centre pair of the exact backend's MIP built in Python (MathOpt's
        modelling API); the flow model, with a flow variable per edge and centre, counts
        each pair 2.3 times (the same script).
    strong_lp_iteration
        Per simplex iteration of the strong LP relaxation (:mod:`solvers.bound.relaxation`,
        SciPy's HiGHS dual simplex) per 1,000 rows plus columns (the same script): more
        than ten times ``lp_iteration`` on these dense models.
    exact_root, exact_node
        Not charges: the work seconds such a MIP's root is expected to take per 1,000
        nonzeros, and one of its branch-and-bound nodes per 1,000 columns. The roots that
        ended took 0.09 to 0.27 wall s per 1,000 nonzeros, those a time limit stopped at
        least up to 0.50 (the same script): 0.3 lets the first start and holds back most of
        the others. The one MIP there that explored 10 nodes or more took 0.40 s per node
        and 1,000 columns; half of it is used, as nodes are charged as they come and a
        looser limit lets more proofs finish. In work mode the exact backend neither builds
        nor starts a MIP whose expected root exceeds the budget left (a node limit cannot
        stop a root), and gives it the node limit ``(s - root) / node`` (at least one).
    cpsat_time
        Per unit of CP-SAT's own deterministic time.
    district
        Per connected set examined while listing every feasible district
        (:func:`solvers.exact.districts.partition`: one bitset extension and rest test);
        ``python benchmarks/calibrate_exact_work.py`` rescales it from lists that their
        budget stopped.
    """

    scan: float = 2.3e-6
    step: float = 2.0e-6
    visit: float = 6.9e-7
    grow: float = 5.9e-6
    entry: float = 6.6e-10
    lp_iteration: float = 1.7e-6
    mip_iteration: float = 2.8e-6
    mip_iteration_base: float = 1.3e-4
    mip_node: float = 5.0e-4
    mip_setup: float = 4.0e-3
    call: float = 5.0e-3
    node_estimate: float = 5.0e-3
    node_estimate_base: float = 1.0e-2
    exact_setup: float = 0.0
    exact_iteration: float = 2.1e-5
    exact_iteration_base: float = 5.3e-4
    exact_build: float = 2.1e-4
    strong_lp_iteration: float = 2.3e-5
    exact_root: float = 0.3
    exact_node: float = 0.2
    cpsat_time: float = 1.0
    district: float = 1.5e-5

    def scaled(self, factor: float) -> WorkCosts:
        """Every cost multiplied by ``factor`` (> 1: each operation counts for more work seconds)."""
        return WorkCosts(**{f.name: getattr(self, f.name) * factor for f in fields(self)})


class Clock:
    """What every phase asks for its budget: :meth:`now`, :meth:`tick`; see the module docstring.

    Attributes
    ----------
    capped
        Whether the wall-time safety cap stopped the work (never for the wall clock).
    notes
        Lines for the solution's log (the cap's note).
    announced
        Whether a solve has already passed :attr:`notes` on to its progress callback.
    """

    #: Whether this clock counts work (``True``) or wall seconds (``False``).
    deterministic = False

    def __init__(self) -> None:
        self.capped = False
        self.notes: list[str] = []
        self.announced = False  # whether a solve has passed the notes on to its progress callback

    def now(self) -> float:
        """The clock's time in its seconds (wall or work); deadlines are ``now() + seconds``."""
        raise NotImplementedError

    def tick(self, kind: str, count: float = 1.0) -> None:
        """Record ``count`` operations of ``kind`` (a field of :class:`WorkCosts`)."""

    def charge(self, seconds: float) -> None:
        """Record ``seconds`` work seconds of work measured otherwise (e.g. CP-SAT's own)."""

    def wall_left(self) -> float:
        """Wall seconds left before the safety cap (infinite without one)."""
        return float("inf")

    def extend_cap(self, seconds: float) -> None:
        """Make the safety cap at least ``seconds`` wall seconds from now (no-op without a cap)."""

    def used(self) -> float:
        """Work seconds counted so far (``nan`` for the wall clock)."""
        return float("nan")


class WallClock(Clock):
    """The monotonic wall clock (:func:`time.monotonic`): budgets in wall seconds, work ignored."""

    def now(self) -> float:
        return time.monotonic()


class WorkClock(Clock):
    """A virtual clock in work seconds, moved only by recorded work, with a wall-time safety cap.

    Parameters
    ----------
    costs
        Work seconds per counted operation.
    cap_s
        Wall seconds from now after which :meth:`now` jumps :data:`CAP_JUMP` ahead and
        :attr:`capped` becomes true (``inf``: no cap).
    """

    deterministic = True

    def __init__(self, costs: WorkCosts | None = None, cap_s: float = float("inf")) -> None:
        super().__init__()
        self.costs = costs or WorkCosts()
        self._work = 0.0
        self._jumps = 0  # readings since the safety cap bound
        self._began = time.monotonic()
        self._cap_at = self._began + cap_s

    def now(self) -> float:
        if self.capped:
            self._jumps += 1  # every deadline set since the last reading is past
        elif time.monotonic() > self._cap_at:
            self.stop(f"stopped by the wall-time safety cap after {time.monotonic() - self._began:.1f} s "
                      f"of wall time ({self._work:.1f} work seconds done): not reproducible")
        return self._work + CAP_JUMP * self._jumps

    def stop(self, note: str) -> None:
        """Stop every phase now (from the next reading of :meth:`now` on, each reading is
        :data:`CAP_JUMP` work seconds later than the one before) and keep ``note``."""
        if not self.capped:
            self.capped = True
            self._jumps = 1
            self.notes.append(note)

    def tick(self, kind: str, count: float = 1.0) -> None:
        self._work += count * getattr(self.costs, kind)

    def charge(self, seconds: float) -> None:
        self._work += max(float(seconds), 0.0)

    def wall_left(self) -> float:
        return 0.0 if self.capped else self._cap_at - time.monotonic()

    def extend_cap(self, seconds: float) -> None:
        self._cap_at = max(self._cap_at, time.monotonic() + seconds)

    def used(self) -> float:
        return self._work


_WALL = WallClock()
_ACTIVE: contextvars.ContextVar[Clock | None] = contextvars.ContextVar("solvers_budget_clock", default=None)


def current() -> Clock:
    """The active clock (:func:`session`), or the wall clock outside any session."""
    return _ACTIVE.get() or _WALL


def now() -> float:
    """``current().now()``: the active clock's time in its seconds."""
    return current().now()


def tick(kind: str, count: float = 1.0) -> None:
    """``current().tick(kind, count)``: record counted work on the active clock."""
    current().tick(kind, count)


def deterministic() -> bool:
    """Whether the active clock counts work."""
    return current().deterministic


def cap_seconds(time_limit_s: float, settings: Any = None) -> float:
    """Wall seconds of the safety cap for a ``time_limit_s`` budget: ``wall_cap_factor x``
    the limit ``+ wall_cap_margin_s`` (fields of :class:`solvers.options.EngineSettings`;
    :data:`CAP_FACTOR` and :data:`CAP_MARGIN_S` without settings)."""
    factor = CAP_FACTOR if settings is None else settings.wall_cap_factor
    margin = CAP_MARGIN_S if settings is None else settings.wall_cap_margin_s
    return factor * max(float(time_limit_s), 0.0) + margin


@contextlib.contextmanager
def session(time_limit_s: float, settings: Any = None, *, deterministic: bool | None = None) -> Iterator[Clock]:
    """Run the block with a clock: the active one when there is one (its safety cap
    extended to cover ``time_limit_s``), else a new one made active for the block.

    Parameters
    ----------
    time_limit_s
        The block's budget, in the clock's seconds (sets the safety cap of a work clock).
    settings
        A :class:`solvers.options.EngineSettings` (its ``deterministic``, ``work_costs``,
        ``wall_cap_factor`` and ``wall_cap_margin_s``); ``None``: a wall clock unless
        ``deterministic``, default costs and cap.
    deterministic
        Overrides ``settings.deterministic`` when not ``None``.

    Yields
    ------
    Clock
        A :class:`WorkClock` (BLAS limited to one thread inside the block) or the wall clock.
    """
    active = _ACTIVE.get()
    if active is not None:
        active.extend_cap(cap_seconds(time_limit_s, settings))
        yield active
        return
    wanted = bool(getattr(settings, "deterministic", False)) if deterministic is None else deterministic
    costs = getattr(settings, "work_costs", None)
    clock: Clock = WorkClock(costs, cap_seconds(time_limit_s, settings)) if wanted else WallClock()
    token = _ACTIVE.set(clock)
    try:
        if wanted:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1, user_api="blas"):
                yield clock
        else:
            yield clock
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def separate(time_limit_s: float, settings: Any = None) -> Iterator[Clock]:
    """Run the block on a new :class:`WorkClock` of its own, whatever clock is active, and
    give the active one back afterwards: work done in the block is not charged to the
    enclosing budget (a certificate computed beside or after a search, which must not
    change what the search does). ``settings`` as in :func:`session`."""
    token = _ACTIVE.set(None)
    try:
        with session(time_limit_s, settings, deterministic=True) as clock:
            yield clock
    finally:
        _ACTIVE.reset(token)


def solve_parameters(seconds: float, *, rows: int, columns: int, integer: bool, min_seconds: float = MIN_WALL_LIMIT_S,
                     exact_nonzeros: int | None = None, **kwargs: Any):
    """MathOpt parameters for a HiGHS solve allowed ``seconds`` of the active clock.

    Wall mode: ``time_limit = seconds``. Work mode: an LP gets an ``iteration_limit`` and a
    MIP a ``node_limit`` worth ``seconds`` work seconds at the clock's costs (at least one),
    and the time limit is only what is left of the safety cap. ``min_seconds`` is the shortest
    wall time limit given. ``exact_nonzeros``: the MIP is the exact backend's, with this many
    nonzeros (its own node estimate, after its expected root: :class:`WorkCosts`
    ``exact_root``, ``exact_node``). ``kwargs`` are passed on to :class:`mathopt.SolveParameters`
    (gap tolerances; hints are model parameters).
    """
    from ortools.math_opt.python import mathopt

    clock = current()
    seconds = max(float(seconds), 0.0)
    if not clock.deterministic:
        return mathopt.SolveParameters(time_limit=datetime.timedelta(seconds=max(seconds, min_seconds)), **kwargs)
    costs = clock.costs
    wall = max(min(clock.wall_left(), 1e6), MIN_WALL_LIMIT_S)
    if integer and exact_nonzeros is not None:
        per_node = costs.node_estimate_base + costs.exact_node * columns / 1000.0
        limit = {"node_limit": int(min(max((seconds - exact_root_work(exact_nonzeros)) / per_node, 1.0), 1e9))}
    elif integer:
        per_node = costs.node_estimate_base + costs.node_estimate * columns / 1000.0
        limit = {"node_limit": int(min(max(seconds / per_node, 1.0), 1e9))}
    else:
        per_iteration = costs.lp_iteration * max((rows + columns) / 1000.0, 1e-3)
        limit = {"iteration_limit": int(min(max(seconds / per_iteration, 1.0), 1e9))}
    return mathopt.SolveParameters(time_limit=datetime.timedelta(seconds=wall), **limit, **kwargs)


def record(result, *, rows: int, columns: int, nonzeros: int, integer: bool, exact: bool = False) -> None:
    """Charge the active clock for a finished HiGHS solve (its reported simplex iterations and
    nodes, and its set-up), and stop it when the solve ended on the safety cap's time limit.
    ``exact``: the MIP is the exact backend's (its own charges)."""
    from ortools.math_opt.python import mathopt

    clock = current()
    if not clock.deterministic:
        return
    costs, stats = clock.costs, result.solve_stats
    size = (rows + columns) / 1000.0
    iterations = stats.simplex_iterations + stats.barrier_iterations + stats.first_order_iterations
    if integer and exact:
        work = ((costs.exact_iteration_base + costs.exact_iteration * size) * iterations
                + costs.exact_setup * nonzeros / 1000.0 + costs.call)
    elif integer:
        work = ((costs.mip_iteration_base + costs.mip_iteration * size) * iterations
                + costs.mip_node * stats.node_count * columns / 1000.0 + costs.mip_setup * nonzeros / 1000.0 + costs.call)
    else:
        work = costs.lp_iteration * iterations * size + 0.05 * costs.mip_setup * nonzeros / 1000.0 + costs.call
    clock.charge(work)
    if result.termination.limit == mathopt.Limit.TIME:
        clock.stop(f"stopped by the wall-time safety cap inside a HiGHS solve ({rows:,} rows, {columns:,} columns): "
                   "not reproducible")


def exact_root_work(nonzeros: int) -> float:
    """Work seconds the root of an exact-backend MIP with ``nonzeros`` nonzeros is expected to
    take (:class:`WorkCosts` ``exact_root``); zero for a wall clock."""
    clock = current()
    return clock.costs.exact_root * nonzeros / 1000.0 if clock.deterministic else 0.0


def model_size(model) -> tuple[int, int, int]:
    """``(rows, columns, nonzeros)`` of a MathOpt model (linear constraints, variables, matrix entries)."""
    rows = model.get_num_linear_constraints()
    columns = model.get_num_variables()
    nonzeros = sum(1 for _ in model.linear_constraint_matrix_entries())
    return rows, columns, nonzeros


def highs(model, seconds: float, *, solver=None, size: tuple[int, int, int] | None = None, model_params=None,
          integer: bool | None = None, min_seconds: float = MIN_WALL_LIMIT_S, **kwargs: Any):
    """Solve ``model`` with HiGHS within ``seconds`` of the active clock, its prints silenced,
    and record the work it reports (:func:`solve_parameters`, :func:`record`).

    Parameters
    ----------
    model
        The MathOpt model (its size sets the limits and the charge).
    seconds
        The budget, in the active clock's seconds.
    solver
        A :class:`mathopt.IncrementalSolver` over ``model`` to solve with instead of a fresh solve.
    size
        ``(rows, columns, nonzeros)`` when known (else counted from the model).
    model_params
        MathOpt model parameters (e.g. solution hints).
    integer
        Whether the model has integer variables (a MIP), when known (else read from the model).
    min_seconds
        The shortest wall time limit given in wall mode.
    kwargs
        More :class:`mathopt.SolveParameters` (e.g. ``relative_gap_tolerance``).
    """
    from ortools.math_opt.python import mathopt

    from solvers.quiet import quiet_stdout

    counted = current().deterministic
    if counted:  # the model's size sets the limits and the charge (a wall clock needs neither)
        rows, columns, nonzeros = size if size is not None else model_size(model)
        if integer is None:
            integer = any(v.integer for v in model.variables())
    else:
        rows = columns = nonzeros = 0
    params = solve_parameters(seconds, rows=rows, columns=columns, integer=bool(integer), min_seconds=min_seconds,
                              **kwargs)
    with quiet_stdout():
        if solver is not None:
            result = solver.solve(params=params, model_params=model_params)
        else:
            result = mathopt.solve(model, mathopt.SolverType.HIGHS, params=params, model_params=model_params)
    if counted:
        record(result, rows=rows, columns=columns, nonzeros=nonzeros, integer=bool(integer))
    return result
