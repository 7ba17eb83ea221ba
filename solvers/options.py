"""The engine's tuning settings, in one frozen dataclass passed to :func:`solvers.engine.solve`.

Every field has today's value as its default, so ``EngineSettings()`` is the
engine as it always ran; a test or a study that needs another value passes
``solve(problem, settings=EngineSettings(exact_kernel_pairs=100))`` instead of
rewriting module globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from solvers.budget import CAP_FACTOR, CAP_MARGIN_S, WorkCosts


@dataclass(frozen=True)
class EngineSettings:
    """Tuning of :func:`solvers.engine.solve` and the backends it composes.

    Dispatch (``"auto"``)
        ``auto_mip_max_units``: above this many units ``"auto"`` runs the heuristic
        alone, unless the time limit gives at least ``auto_mip_seconds_per_1000_units``
        seconds per 1,000 units (location-allocation's LP warm-up and MIPs need that
        much on large graphs). ``auto_uses_lns``: whether ``"auto"`` spends the time
        left after location-allocation on :func:`solvers.lns.kicks.lns_rounds` (else on
        new rounds without LNS). ``auto_exact_max_units``: up to this many units a
        ``"pmedian"`` problem without a previous plan or start goes to the ``"exact"``
        backend (its district list proves the optimum or infeasibility; ``0`` turns it off).
        Above the list's size the exact backend rests on its HiGHS MIP (reproducible under
        work budgets: :mod:`solvers.budget`); 150 proved more county-size optima on the
        generalisation benchmark's tuning half while the exact backend's work was charged
        below its cost, a comparison not yet repeated at its measured cost
        (``benchmarks/RESULTS.md``, "Generalisation").
        ``auto_lns_from_s``: from this time limit (seconds), such a problem's best plan gets
        :func:`solvers.lns.kicks.lns_rounds` in the time ``"auto"``'s new rounds leave (at
        least a fifth of the limit).
        ``auto_exact_rescue_max_units``: up to this many units, when the heuristic finds no
        balanced plan for such a problem, the time left goes to the ``"exact"`` backend,
        which finds one or proves that none exists.

    Search loop
        ``heuristic_max_s``: seconds of each round's constructive heuristic before
        location-allocation takes over: at most a quarter of the time limit, and at
        most the larger of this and one second per 1,000 units.
        ``location_allocation_gap``: relative gap at which each allocation of the
        location-allocation loop stops (:func:`solvers.allocation.mip.allocate`).
        ``allocation_stage_s``: seconds at most for each stage of an LP-guided
        allocation in that loop once a plan is in hand (``stage_limit_s``).

    Lower bound of ``"lns"``
        ``lns_bound_share``: share of the time limit kept for the bound when it
        cannot run beside the search. ``background_bound_min_s``: from this time limit
        (seconds) the bound runs in a second process during the search
        (:class:`solvers.bound.background.BackgroundBound`). ``background_bound``:
        ``None`` uses a second process when one is available
        (:func:`solvers.bound.background.background_available`), ``True`` always tries
        one, ``False`` never does. ``bound_max_units``: above this many units no bound
        is computed (its dense float32 cost matrix takes ``4 n^2`` bytes).

    ``"exact"`` backend (:func:`solvers.exact.backend.exact_backend`)
        ``exact_start_share`` and ``exact_start_max_s``: share of the time, and seconds
        at most, for the starting plan. ``exact_lns_from_units``: from this many units
        the starting plan also gets LNS (a tighter plan fixes more variables).
        ``exact_bound_share``: share of the time for the Lagrangian bound behind the
        fixing. ``exact_kernel_pairs``: above this many unit-centre pairs left after
        fixing, search kernels of at most this many pairs instead of the whole MIP.
        ``exact_enumeration_max_units``: up to this many units, first list every
        feasible district (:func:`solvers.exact.districts.partition`; ``0`` turns the
        enumeration off); ``exact_enumeration_share``, ``exact_enumeration_max_s`` and
        ``exact_enumeration_max_districts``: share of the time, seconds at most and
        most districts for that list (a 46-unit county in 7 sectors needs about half a
        minute of work for it); ``exact_partition_share``: share of the time for
        the list and its set partitioning together (CP-SAT gets what the list leaves:
        with a complete list it is the strongest model of a small problem, where the
        MIP, with less time, rarely does better). ``exact_strong_lp_max_units``: up to this many
        units the Lagrange multipliers come from the complete strong LP relaxation
        (:func:`solvers.bound.relaxation.strong_relaxation`; ``0`` turns it off).

    Budgets (:mod:`solvers.budget`)
        ``deterministic``: count every budget in *work seconds* (a virtual clock moved
        only by counted work: passes, units, simplex iterations, MIP nodes) instead of
        wall seconds, so the same inputs and seed give the same plan on any machine and
        under any load; ``False`` (the default of the Python API) keeps wall-clock
        budgets. ``work_costs``: work seconds per counted operation
        (:class:`solvers.budget.WorkCosts`, calibrated so that a work second is about a
        wall second of the development machine). ``wall_cap_factor`` and
        ``wall_cap_margin_s``: in work mode, a solve that has run ``wall_cap_factor x``
        its time limit ``+ wall_cap_margin_s`` wall seconds stops as if its time were
        up, and its log says it is not reproducible.
    """

    auto_mip_max_units: int = 20_000
    auto_mip_seconds_per_1000_units: float = 2.5
    auto_uses_lns: bool = False
    auto_exact_max_units: int = 60
    auto_exact_rescue_max_units: int = 150
    auto_lns_from_s: float = 120.0
    heuristic_max_s: float = 10.0
    location_allocation_gap: float = 1e-3
    allocation_stage_s: float = 5.0
    lns_bound_share: float = 0.25
    background_bound_min_s: float = 10.0
    background_bound: bool | None = None
    bound_max_units: int = 15_000
    exact_start_share: float = 0.25
    exact_start_max_s: float = 28.0
    exact_lns_from_units: int = 150
    exact_bound_share: float = 0.25
    exact_kernel_pairs: int = 20_000
    exact_enumeration_max_units: int = 60
    exact_enumeration_share: float = 0.6
    exact_enumeration_max_s: float = 36.0
    exact_enumeration_max_districts: int = 300_000
    exact_partition_share: float = 0.75
    exact_strong_lp_max_units: int = 150
    deterministic: bool = False
    work_costs: WorkCosts = field(default_factory=WorkCosts)
    wall_cap_factor: float = CAP_FACTOR
    wall_cap_margin_s: float = CAP_MARGIN_S
