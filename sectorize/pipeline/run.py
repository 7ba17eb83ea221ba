"""The sectorization pipeline: scenario in, checked :class:`~sectorize.plan.Plan` out.

Steps: read the inputs the scenario names (:func:`sectorize.pipeline.inputs.load_inputs`:
region, aggregated demand, travel times, team); solve groups and sectors
(:func:`solvers.solve_nested`) with the scenario's model settings
(:meth:`~sectorize.pipeline.inputs.Inputs.solver_options`); build and check
the plan independently of the solver (:mod:`sectorize.pipeline.assemble`).

>>> from sectorize import default_scenario, run
>>> plan = run(default_scenario().with_(**{"model.time_limit_s": 10}))  # doctest: +SKIP
>>> plan.violations  # doctest: +SKIP
[]
"""

from __future__ import annotations

import time
from pathlib import Path

from sectorize.config.scenario import Scenario
from sectorize.pipeline.assemble import assemble
from sectorize.pipeline.inputs import Progress, load_inputs
from sectorize.plan import Plan
from solvers import solve_nested


def timed(progress: Progress | None) -> Progress:
    """A progress callback that prefixes each line with the seconds since its creation."""
    say = progress or (lambda line: None)
    clock = time.monotonic()
    return lambda line: say(f"[{time.monotonic() - clock:5.1f} s] {line}")


def run(scenario: Scenario, progress: Progress | None = None) -> Plan:
    """Run the whole sectorization and check the result.

    Parameters
    ----------
    scenario
        A validated scenario (see :func:`sectorize.config.scenario.load_scenario`).
    progress
        Receives one line per step and per solver improvement.

    Returns
    -------
    Plan
        With ``plan.violations`` empty when every independent check passed.

    Raises
    ------
    solvers.InfeasibleError
        When no plan can meet the caseload tolerance, proven; the message
        names the group or sector and the reason.
    solvers.NoPlanFoundError
        When no plan was found in the time given (nothing proven).
    """
    step = timed(progress)
    inputs = load_inputs(scenario, step)
    model = scenario.model
    step(f"solving: {len(inputs.team.ids)} workers in {scenario.groups.count} groups, "
         f"tolerance ±{model.tolerance:.0%}, backend {model.backend}, time limit {model.time_limit_s:g} s")
    nested = solve_nested(
        inputs.graph, inputs.workload, inputs.travel, inputs.team.fte, scenario.groups.count,
        fixed_groups=list(inputs.team.fixed_group), locked=inputs.locked(), progress=step,
        **inputs.solver_options(),
    )
    step(f"solved in {nested.time_s:.1f} s, objective {nested.objective:,.0f} caseload-minutes")
    plan = assemble(inputs, nested)
    step("checks: " + ("all passed" if not plan.violations else f"{len(plan.violations)} violation(s)"))
    return plan


def run_and_write(scenario: Scenario, progress: Progress | None = None) -> tuple[Path, Plan]:
    """Run the scenario, draw its map, write a new run folder.

    Returns ``(folder, plan)``. The folder (under ``scenario.output.dir``)
    holds the sector and postcode tables, the map, the KPI reports and the
    effective scenario; it is written completely or not at all, and earlier
    runs are never overwritten (see :func:`sectorize.store.export.write_outputs`).
    """
    from sectorize.report.maps import sector_map
    from sectorize.store.export import write_outputs

    say = progress or (lambda line: None)
    plan = run(scenario, progress=say)
    say("drawing the map")
    page = sector_map(plan, tiles=scenario.map.tiles, simplify_m=scenario.map.simplify_m,
                      suppress_below=scenario.map.suppress_below).get_root().render()
    folder = write_outputs(plan, scenario.output.dir, map_html=page)
    return folder, plan
