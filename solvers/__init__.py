"""Graph partitioning engine: a :class:`Problem` in, a :class:`Solution` out.

Map of the package (one line per module or sub-package; read in this order):

- ``problem``     the data: Problem (with optional territory caps), Solution, TravelTimes, Incumbent, TieBreak, the errors, cut_edges count
- ``check``       the independent plan checker (contiguity, balance, locks) and quick infeasibility proofs
- ``budget``      the clock every phase reads its budget from: wall seconds, or work seconds (deterministic)
- ``options``     EngineSettings: every tuning constant of the engine, with today's values as defaults
- ``travel``      more TravelTimes: planar distances, a table of pairs, a subset of another one
- ``engine``      the front door: ``solve`` dispatches to a backend and runs the search loop
- ``construct/``  the constructive heuristic (region growing, rebalancing, local search; ``heuristic``)
- ``allocation/`` units to fixed centres: the allocation MIP and LP (``mip``), the location-allocation loop (``loop``)
- ``lns/``        large-neighbourhood search: pairs and triples (``search``, ``reassign``), kicks and rounds (``kicks``)
- ``exact/``      the Hess MIP (``model``), district enumeration (``districts``), the ``"exact"`` backend (``backend``)
- ``bound/``      Lagrangian bound (``lagrangian``), in a second process (``background``), fixing, strong LP
- ``cut_edges/``  the ``"cut_edges"`` objective (``backend``, ``search``, ``exact``) and the tie-break (``tie_break``)
- ``nested``      two levels: one sector per worker, grouped into territorial groups (``solve_nested``)
- ``rerun``       the annual re-run of a nested plan with a cap on disruption (``resolve_nested``)
- ``quiet``       silence the C-level output of the MIP solvers

Knows graphs and numbers only (no geopandas, no files).

Why this layout: the imports only go down the map (``budget``, ``problem`` and ``options``
import no backend; techniques import ``problem``, ``check`` and the techniques they build on; only
``engine``, ``nested`` and ``rerun`` compose), so there is no import cycle and a module can
be read knowing only those above it. Techniques with several modules are sub-packages whose
``__init__`` holds a docstring only (one import path per name). The cut-edges count
(:func:`solvers.problem.cut_edges`) is not re-exported here: the name would shadow the
``solvers.cut_edges`` sub-package. The tuning constants live in
one frozen :class:`EngineSettings` passed to :func:`solve`, not in module globals, so a test
or a study changes them without touching the engine. Plans passed between the search steps
are :class:`Incumbent` named tuples (fields instead of ``plan[2]``; still unpackable as
``assign, centres, objective, backend = plan``).

Time budgets are cut into the shares that :class:`EngineSettings` documents (heuristic
share, bound share, exact shares...), each a share of the active clock of
:mod:`solvers.budget`: wall seconds, or with ``EngineSettings(deterministic=True)`` (and
``deterministic=True`` for :func:`solve_nested` and :func:`resolve_nested`) *work seconds*,
a virtual clock moved only by the work each phase counts (units scanned and examined by
local search, travel-time entries read, simplex iterations and MIP nodes HiGHS reports).
Every decision then depends on the inputs, the seed and the settings only, so the plan is
the same on any machine and under any load; a wall-time safety cap stops a search that
runs far past its limit, and says the plan is then not reproducible
(:attr:`Solution.capped`). When no grouping of the sectors drawn first is contiguous and
balanced, ``solve_nested`` falls back to drawing the groups first with a second full time
limit (its progress line says so).

Territory caps (:attr:`Problem.size` per unit, :attr:`Problem.max_size` per sector: at most so
many communes or km² per sector) are constraints of every backend and every step that makes or
changes a plan, and of :func:`check_plan`; the lower bounds ignore them, which keeps them valid
(a relaxation). :func:`solve_nested` also keeps given sets of units in one group (``keep_together``).

Failures: :class:`NoPlanError` is raised as :class:`InfeasibleError` only with a proof (an
up-front diagnosis, a complete enumeration or an exact MIP) and as :class:`NoPlanFoundError`
when the time ran out first.
"""

from solvers.check import check_partition, check_plan
from solvers.engine import BACKENDS, Backend, solve
from solvers.nested import NestedSolution, solve_nested
from solvers.options import EngineSettings
from solvers.problem import (
    DenseTravelTimes,
    Incumbent,
    InfeasibleError,
    NoPlanError,
    NoPlanFoundError,
    Problem,
    Solution,
    TieBreak,
    TravelTimes,
)
from solvers.rerun import resolve_nested

__all__ = [
    "BACKENDS",
    "Backend",
    "DenseTravelTimes",
    "EngineSettings",
    "Incumbent",
    "InfeasibleError",
    "NestedSolution",
    "NoPlanError",
    "NoPlanFoundError",
    "Problem",
    "Solution",
    "TieBreak",
    "TravelTimes",
    "check_partition",
    "check_plan",
    "resolve_nested",
    "solve",
    "solve_nested",
]
