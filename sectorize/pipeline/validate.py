"""Check the data a scenario names without solving anything (``sectorize validate``).

:func:`check_inputs` opens every file the scenario names with the functions
``run`` uses (:mod:`sectorize.pipeline.inputs`): the units, the demand file
(columns, codes and counts, with the scenario's ``repair`` and
``on_unknown``), the caseload weights, the external travel-time matrix, the
workers' bases and ``rerun.follow_up``. Each input is checked even when an
earlier one failed, so one call reports every faulty file.

>>> from sectorize import default_scenario
>>> check = check_inputs(default_scenario())  # doctest: +SKIP
>>> check.ok, check.load.sum()  # doctest: +SKIP
(True, 1650.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from geodata.demand import (
    EXCLUDED_NOTE,
    TOTAL_ROW,
    Demand,
    demand_summary,
)
from geodata.regions import Region
from sectorize.config.scenario import Scenario, ScenarioError
from sectorize.pipeline.inputs import load_demand, load_region, load_travel, resolve_base, workload

#: Errors a faulty input raises (as the command line handles them).
_INPUT_ERRORS = (ValueError, KeyError, OSError)

#: Repairs listed per rule in :meth:`InputCheck.report_lines`; the rest are counted.
_SHOWN = 10


@dataclass
class InputCheck:
    """What :func:`check_inputs` found.

    Attributes
    ----------
    scenario
        The scenario checked.
    region
        Its units, or ``None`` when they could not be read.
    demand
        The demand as ``run`` would use it (``None`` when it failed).
    load
        Caseload per unit (:func:`~sectorize.pipeline.inputs.workload`;
        caseload units, e.g. referrals/year + 0.5 x home-care patients), or
        ``None``.
    travel
        Where travel times come from (the matrix read, or the built-in
        estimate computed at run time), ``""`` when the matrix failed.
    errors
        One exception per faulty input (units, demand, weights, travel
        matrix, bases, follow-up column), in that order; empty when all is well.
    """

    scenario: Scenario
    region: Region | None = None
    demand: Demand | None = None
    load: pd.Series | None = None
    travel: str = ""
    errors: list[BaseException] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every input can be used as it is."""
        return not self.errors

    def report_lines(self) -> list[str]:
        """The data check as text lines: demand totals per column and per department, repairs,
        exclusions by department, caseload total, travel times."""
        lines: list[str] = []
        if self.region is not None:
            lines.append(f"region: {self.region.name}, {len(self.region.units):,} units")
        demand = self.demand
        if demand is not None:
            lines.append(f"demand: {demand.source}")
            table = demand.table
            for column in table.columns:
                read_from = demand.headers.get(column, column)
                origin = f" (file column {read_from!r})" if read_from != column else ""
                lines.append(f"  {column}{origin}: total {table[column].sum():,.2f}")
            if self.region is not None and "dep" in self.region.units.columns:
                summary = demand_summary(demand, self.region)[list(table.columns)]
                lines.append("  by department:")
                lines += ["    " + row for row in summary.round(2).to_string().splitlines()]
            repairs = demand.repairs
            if len(repairs):
                counts = repairs["rule"].value_counts(sort=False)
                lines.append(f"repairs (demand.repair = true): {len(repairs)} "
                             f"({', '.join(f'{rule}: {n}' for rule, n in counts.items())})")
                for rule, rows in repairs.groupby("rule", sort=False):
                    for r in rows.head(_SHOWN).itertuples():
                        change = f"{r.original!r} -> {r.repaired!r}" if r.repaired else f"{r.original!r} left out"
                        lines.append(f"  line {r.line}, column {r.column!r}: {change} ({r.detail})")
                    if len(rows) > _SHOWN:
                        lines.append(f"  ... and {len(rows) - _SHOWN} more of rule {rule!r}")
            else:
                lines.append("repairs: none")
            excluded = demand.excluded
            if len(excluded):
                lines += [note for note in demand.notes if note.startswith(EXCLUDED_NOTE)]
                totals = excluded.loc[excluded["reason"] == TOTAL_ROW]
                if len(totals):
                    lines.append(f"  {len(totals)} total row(s) dropped: "
                                 + ", ".join(map(repr, totals["code"].tolist())))
            else:
                lines.append("excluded: none")
        if self.load is not None:
            weights = ", ".join(f"{c} x {w:g}" for c, w in self.scenario.demand.weights.items())
            lines.append(f"caseload: total {self.load.sum():,.2f} (= {weights}), "
                         f"{int((self.load > 0).sum()):,} units with a caseload")
        if self.travel:
            lines.append(f"travel times: {self.travel}")
        return lines


def check_inputs(scenario: Scenario) -> InputCheck:
    """Open and check every input of ``scenario`` exactly as ``run`` would, solving nothing.

    Parameters
    ----------
    scenario
        A validated scenario.

    Returns
    -------
    InputCheck
        ``errors`` holds one exception per faulty input: a
        :class:`geodata.demand.DemandError` listing every problem of the
        demand file at once, a :class:`ScenarioError` for weights naming
        columns the demand lacks (``demand.weights.<column>``), an unknown
        base or a ``rerun.follow_up`` the demand lacks, a ``ValueError`` from
        the travel matrix reader.

    Notes
    -----
    Without an external matrix the travel-time estimate is not computed (it
    needs no file and takes seconds); with ``travel.fallback_to_estimate`` it
    is, to fill the matrix's missing pairs as ``run`` does.
    """
    check = InputCheck(scenario)
    try:
        check.region = load_region(scenario)
    except _INPUT_ERRORS as err:
        check.errors.append(err)
        return check
    region = check.region
    try:
        check.demand = load_demand(scenario, region)
    except _INPUT_ERRORS as err:
        check.errors.append(err)
    if check.demand is not None:
        try:
            check.load = workload(scenario, check.demand)
        except _INPUT_ERRORS as err:
            check.errors.append(err)
        follow_up = scenario.rerun.follow_up
        if follow_up is not None and follow_up not in check.demand.table.columns:
            check.errors.append(ScenarioError(
                f"rerun.follow_up: column {follow_up!r} is not in the demand ({check.demand.source}); "
                f"available: {list(check.demand.table.columns)}"))
    if scenario.travel.matrix is not None:
        try:
            travel = load_travel(scenario, region)
            check.travel = f"{getattr(travel, 'source', scenario.travel.matrix)}"
        except _INPUT_ERRORS as err:
            check.errors.append(err)
    else:
        check.travel = "built-in estimate (no file to open; computed at run time)"
    seen = set()
    for i, worker in enumerate(scenario.team.workers):
        if worker.base_lon is not None:
            continue
        key = worker.base or scenario.team.default_base
        where = f"team.workers[{i}].base" if worker.base else "team.default_base"
        if resolve_base(key, region.units) is None and where not in seen:
            seen.add(where)
            check.errors.append(ScenarioError(
                f"{where}: base {key!r} is not a unit of the region ({region.name}); "
                "give an INSEE code of the region or base_lon/base_lat"))
    return check
