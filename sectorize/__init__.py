"""sectorize: territorial sectorization for hospital social-work teams.

Composes :mod:`geodata` (territories, demand, travel times) and :mod:`solvers`
(graph partitioning) into plans, KPIs, maps and exports. This module is the
front door for notebooks and scripts::

    import sectorize
    scenario = sectorize.default_scenario().with_(**{"model.tolerance": 0.05})
    plan = sectorize.run(scenario, progress=print)    # a checked Plan
    plan.units, plan.workers, plan.violations
    table = sectorize.compare({"±10 %": plan, "±5 %": sectorize.run(scenario)})

The sub-packages, one job each:

- ``sectorize.config``: the scenario and sweep files, validated (pydantic), with one error explainer;
- ``sectorize.pipeline``: scenario -> solver inputs (``inputs``, the one translation), ``run``,
  ``rerun``, ``sweep``, and ``instance`` (generic instances from plain files);
- ``sectorize.report``: KPIs, maps, comparisons, trade-offs, caseload simulation, privacy rules;
- ``sectorize.store``: run folders (atomic writes, reader and writer), the plan registry, the
  routing contract and its schemas;
- ``sectorize.serve``: the referral router and its HTTP service;
- ``sectorize.cli``: the ``sectorize`` command, one module per sub-command.

Names are imported on first use (PEP 562), so ``import sectorize`` stays fast
for the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> module that defines it.
_EXPORTS: dict[str, str] = {
    # scenario
    "Scenario": "sectorize.config.scenario",
    "ScenarioError": "sectorize.config.scenario",
    "load_scenario": "sectorize.config.scenario",
    "default_scenario": "sectorize.config.scenario",
    "scenario_from_dict": "sectorize.config.scenario",
    # pipeline
    "run": "sectorize.pipeline.run",
    "run_and_write": "sectorize.pipeline.run",
    "load_inputs": "sectorize.pipeline.inputs",
    "Plan": "sectorize.plan",
    "rerun": "sectorize.pipeline.rerun",
    "rerun_and_write": "sectorize.pipeline.rerun",
    "load_previous": "sectorize.pipeline.rerun",
    "RerunResult": "sectorize.pipeline.rerun",
    "run_sweep": "sectorize.pipeline.sweep",
    "load_sweep": "sectorize.config.sweep",
    "SweepError": "sectorize.config.sweep",
    # reports
    "compute_kpis": "sectorize.report.kpi",
    "compare": "sectorize.report.compare",
    "compare_maps": "sectorize.report.compare",
    "pareto": "sectorize.report.pareto",
    "simulate": "sectorize.report.simulation",
    "SimulationError": "sectorize.report.simulation",
    "sector_map": "sectorize.report.maps",
    # store and serve
    "Registry": "sectorize.store.registry",
    "RegistryError": "sectorize.store.registry",
    "PlanNotFoundError": "sectorize.store.registry",
    "Router": "sectorize.serve.routing",
    # errors raised below the composition layer
    "DemandError": "geodata.demand",
    "InfeasibleError": "solvers",
    "NoPlanFoundError": "solvers",
    "NoPlanError": "solvers",
}

__all__ = [
    "__version__", "Scenario", "ScenarioError", "load_scenario", "default_scenario",
    "scenario_from_dict", "run", "run_and_write", "load_inputs", "Plan", "rerun",
    "rerun_and_write", "load_previous", "RerunResult", "run_sweep", "load_sweep", "SweepError",
    "compute_kpis", "compare", "compare_maps", "pareto", "simulate", "SimulationError",
    "sector_map", "Registry", "RegistryError", "PlanNotFoundError", "Router", "DemandError",
    "InfeasibleError", "NoPlanFoundError", "NoPlanError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sectorize' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static type checkers and IDEs see the real names
    from geodata.demand import DemandError
    from sectorize.config.scenario import Scenario, ScenarioError, default_scenario, load_scenario, scenario_from_dict
    from sectorize.pipeline.inputs import load_inputs
    from sectorize.pipeline.rerun import RerunResult, load_previous, rerun, rerun_and_write
    from sectorize.pipeline.run import run, run_and_write
    from sectorize.config.sweep import SweepError, load_sweep
    from sectorize.pipeline.sweep import run_sweep
    from sectorize.plan import Plan
    from sectorize.report.compare import compare, compare_maps
    from sectorize.report.kpi import compute_kpis
    from sectorize.report.maps import sector_map
    from sectorize.report.pareto import pareto
    from sectorize.report.simulation import SimulationError, simulate
    from sectorize.serve.routing import Router
    from sectorize.store.registry import PlanNotFoundError, Registry, RegistryError
    from solvers import InfeasibleError, NoPlanError, NoPlanFoundError
