"""Adjust a stored plan by hand: move communes between sectors, lock what must not move,
and optionally re-balance the rest while moving as few patients as possible.

The manager's review of a re-run ends with a few decisions ("Vénissieux stays
with its referent", "this valley goes to the sector that already covers the
next one"). :func:`edit_plan` turns them into a new plan whose parent is the
stored plan:

* ``moves``: ``{insee: sector}``; each commune goes to that sector (and the
  sector's worker and group);
* ``locks``: INSEE codes (the commune keeps its sector: its new one if it is
  moved) or sector ids (the whole sector is kept as it is);
* without ``rebalance`` the plan is the stored one with the moves applied,
  checked like any other (a move that breaks contiguity or a caseload band is
  reported, and ``sectorize plans edit`` refuses it unless ``--allow-invalid``);
* with ``rebalance`` every commune neither moved nor locked may move again to
  restore balance and contiguity, priced like a re-run
  (``rerun.move_penalty_min`` per patient in follow-up whose commune changes
  worker, ``rerun.commune_move_penalty_min`` per commune): the search is
  :func:`solvers.rerun.resolve_or_widen` with ``previous_sector`` = the stored
  plan (disruption is counted from it), the moved plan as the start, and the
  moved and locked communes in ``locked``, as :mod:`sectorize.pipeline.rerun`
  does for ``rerun.locked``.

The plan is built on the stored plan's scenario, units (checked against the
plan's units hash) and demand counts (its ``sectors.csv``, so the demand file
it was drawn from is not needed), with :func:`sectorize.pipeline.assemble.assemble`
like any run; :func:`edit_and_write` writes its run folder with
``changes.csv``, ``kpi_before_after.csv``, ``edit.json`` and the diff map.

Example
-------
>>> stored = Registry("sectorize-plans").get("P20261201-7317387d")            # doctest: +SKIP
>>> result = edit_plan(stored, moves={"69259": "B2"}, locks=["A1"], rebalance=True)   # doctest: +SKIP
>>> result.changes[["insee", "from_sector", "to_sector", "reason"]]            # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geodata.demand import Demand
from sectorize.config.scenario import Scenario, scenario_from_dict
from sectorize.pipeline.assemble import assemble
from sectorize.pipeline.inputs import Inputs, Progress, load_inputs, load_region
from sectorize.pipeline.rerun import _disruption, _follow_up
from sectorize.pipeline.run import timed
from sectorize.plan import Plan
from sectorize.report.kpi import moved_per_worker
from sectorize.store.registry import StoredPlan, units_hash
from solvers import NoPlanError, resolve_nested
from solvers.nested import NestedSolution
from solvers.rerun import resolve_or_widen

_MOVE = re.compile(r"^\s*([0-9A-Za-z]{4,6})\s*=\s*([^\s=]+)\s*$")


class EditError(ValueError):
    """An edit that cannot be applied; the message names the argument (``--move 99999=A1``)."""


def parse_move(text: str) -> tuple[str, str]:
    """``"01001=A2"`` -> ``("01001", "A2")``; :class:`EditError` naming the argument otherwise.

    >>> parse_move(" 69259 = B2 ")
    ('69259', 'B2')
    """
    match = _MOVE.match(str(text))
    if not match:
        raise EditError(f"--move {text!r}: write INSEE=SECTOR, e.g. --move 01001=A2 (one commune per --move)")
    return match.group(1).upper(), match.group(2)


@dataclass
class EditResult:
    """What :func:`edit_plan` returns.

    Attributes
    ----------
    plan
        The new plan (``plan.violations``: the checks it fails).
    parent
        The stored plan it was made from.
    changes
        Communes whose sector changes from the parent: ``insee, name,
        from_sector, from_worker, to_sector, to_worker, follow_up`` (patients
        in follow-up, or caseload units when the demand has none),
        ``referrals`` (per year, when known), ``reason`` (``moved by hand``
        or ``rebalanced``).
    before_after
        Per sector: ``sector, worker_id, group_before, group_after, target,
        caseload_before, caseload_after, deviation_before_pct,
        deviation_after_pct, communes_before, communes_after,
        travel_centre_mean_before_min, travel_centre_mean_after_min``.
    summary
        ``parent, moves, locks, rebalance, moved_communes, moved_patients,
        moved_unit, step`` (the widening step of the rebalance), ``violations``.
    """

    plan: Plan
    parent: StoredPlan
    changes: pd.DataFrame
    before_after: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _scenario(stored: StoredPlan, time_limit_s: float | None) -> Scenario:
    data = tomllib.loads(stored.scenario_toml)
    if time_limit_s is not None:
        data["model"] = {**data.get("model", {}), "time_limit_s": float(time_limit_s)}
    return scenario_from_dict(data)


def _inputs(stored: StoredPlan, scenario: Scenario, step: Progress) -> Inputs:
    """The plan's inputs: its scenario's units (as stored), its stored demand counts, travel and team."""
    region = load_region(scenario)
    if units_hash(region.units) != stored.inputs.get("units"):
        raise EditError(f"plan {stored.id}: the units of its scenario have changed since it was made; restore "
                        "them (region.units of its scenario) to edit it")
    sectors = stored.sectors.set_index("insee")
    sectors.index = sectors.index.astype(str)
    columns = list(stored.demand_columns)
    table = sectors[columns].apply(pd.to_numeric, errors="coerce").fillna(0.0)
    demand = Demand(table, f"the counts stored with plan {stored.id}",
                    [f"demand: the counts stored with plan {stored.id} (an edit keeps the plan's demand)"])
    return load_inputs(scenario, step, demand=demand)


def edit_plan(stored: StoredPlan, moves: dict[str, str] | list[tuple[str, str]] | None = None,
              locks: list[str] | None = None, *, rebalance: bool = False, time_limit_s: float | None = None,
              progress: Progress | None = None) -> EditResult:
    """A new plan from ``stored`` with ``moves`` applied, ``locks`` kept, optionally re-balanced.

    Parameters
    ----------
    stored
        The parent plan (:meth:`sectorize.store.registry.Registry.get`).
    moves
        ``{insee: sector id}`` or pairs (the CLI's ``--move INSEE=SECTOR``).
    locks
        INSEE codes or sector ids of ``stored`` kept as they are (a moved
        commune stays in its new sector).
    rebalance
        Let every other commune move to restore balance and contiguity,
        moving as few patients as possible (see the module).
    time_limit_s
        Overrides ``model.time_limit_s`` of the plan's scenario for the
        re-balance (each widening step has it).

    Raises
    ------
    EditError
        A move or lock naming a commune or sector the plan does not have, a
        commune moved twice, a moved commune in a locked sector.
    solvers.InfeasibleError, solvers.NoPlanFoundError
        ``rebalance`` found no plan keeping the moves and locks.
    """
    step = timed(progress)
    pairs = list(moves.items()) if isinstance(moves, dict) else list(moves or [])
    locks = list(locks or [])
    parent = stored.sectors.set_index("insee")
    parent.index = parent.index.astype(str)
    workers = stored.workers.copy()
    workers["sector"] = workers["sector"].astype(str)
    sector_worker = dict(zip(workers["sector"], workers["worker_id"].astype(str)))
    sectors_text = ", ".join(sorted(sector_worker))
    moved: dict[str, str] = {}
    for code, sector in pairs:
        argument = f"--move {code}={sector}"
        if code not in parent.index:
            hint = f"; did you mean 0{code}?" if "0" + code in parent.index else ""
            raise EditError(f"{argument}: {code} is not a commune of plan {stored.id} ({len(parent):,} communes)"
                            + hint)
        if sector not in sector_worker:
            raise EditError(f"{argument}: plan {stored.id} has no sector {sector!r} (its sectors: {sectors_text})")
        if code in moved and moved[code] != sector:
            raise EditError(f"{argument}: {code} is already moved to {moved[code]} by another --move")
        moved[code] = sector
    locked_codes: dict[str, str] = {}   # commune -> why
    for item in locks:
        if item in sector_worker:
            for code in parent.index[parent["sector"].astype(str) == item]:
                locked_codes[code] = f"sector {item} locked"
        elif item in parent.index:
            locked_codes[item] = "locked"
        else:
            raise EditError(f"--lock {item}: neither a commune nor a sector of plan {stored.id} "
                            f"(its sectors: {sectors_text})")
    kept_sectors = {item for item in locks if item in sector_worker}
    for code, sector in moved.items():
        before = str(parent.at[code, "sector"])
        if before == sector:
            continue
        if before in kept_sectors:
            raise EditError(f"--move {code}={sector}: {code} is in sector {before}, which --lock {before} "
                            "keeps as it is")
        if sector in kept_sectors:
            raise EditError(f"--move {code}={sector}: --lock {sector} keeps that sector as it is; lock its "
                            "communes one by one instead")

    scenario = _scenario(stored, time_limit_s)
    inputs = _inputs(stored, scenario, step)
    team, keys = inputs.team, inputs.keys
    position = {wid: i for i, wid in enumerate(team.ids)}
    missing = [w for w in sector_worker.values() if w not in position]
    if missing or len(sector_worker) != len(team.ids):
        raise EditError(f"plan {stored.id}: its workers ({', '.join(sector_worker.values())}) are not the team of "
                        f"its scenario ({', '.join(team.ids)}); the plan cannot be edited")
    names = list(scenario.groups.names)
    group_of = dict(zip(workers["worker_id"].astype(str), workers["group"].astype(str)))
    worker_group = np.array([names.index(group_of[w]) for w in team.ids], dtype=np.intp)
    sector_names = [str(workers.set_index("worker_id").at[w, "sector"]) for w in team.ids]
    previous = parent["worker_id"].astype(str).reindex(keys).map(position).to_numpy(dtype=np.intp)
    start = previous.copy()
    index = inputs.index
    for code, sector in moved.items():
        start[index[code]] = position[sector_worker[sector]]
    notes = [f"edited from plan {stored.id}: " + (", ".join(f"{c} -> {s}" for c, s in moved.items()) or "no move")
             + (f"; locked: {', '.join(locks)}" if locks else "")]
    already = [c for c, s in moved.items() if str(parent.at[c, "sector"]) == s]
    if already:
        notes.append(f"already in the sector asked (nothing to move): {', '.join(already)}")
    if locks and not rebalance:
        notes.append("locks matter with --rebalance only: without it nothing but the moves changes")

    follow_up, follow_note = _follow_up(scenario, inputs.demand, inputs.load)
    unit = "patients" if follow_note.startswith("disruption counted in patients") else "caseload units"
    step_name = "as asked"
    if rebalance:
        # the scenario's [[locks]], then the communes moved or locked here (the command wins)
        locked = {**inputs.locked(), **{index[c]: int(start[index[c]]) for c in [*moved, *locked_codes]}}
        mw, _, _ = _disruption(scenario.rerun, follow_up)
        cfg = scenario.rerun
        step(f"re-balance: {len(locked)} commune(s) kept (moved or locked), move penalty {cfg.move_penalty_min:g} "
             f"caseload-minutes per patient + {cfg.commune_move_penalty_min:g} per commune")
        common = dict(move_weight=mw, move_cost=cfg.move_penalty_min, move_unit_cost=cfg.commune_move_penalty_min,
                      locked=locked, progress=step, **inputs.solver_options())
        try:  # from the plan with the moves applied; disruption counted from the stored plan
            nested = resolve_nested(inputs.graph, inputs.workload, inputs.travel, team.fte, worker_group, previous,
                                    start_sector=start, **common)
        except NoPlanError as err:  # widen as a re-run does (from the stored plan, the moves as locks)
            notes.append(f"re-balance from the moved plan found no plan ({str(err)[:200]}); widened")
            widened = resolve_or_widen(inputs.graph, inputs.workload, inputs.travel, team.fte, worker_group,
                                       previous, fixed_groups=list(team.fixed_group), **common)
            nested, step_name = widened.solution, widened.step
            notes.extend(f"re-balance step '{a.step}': " + ("plan" if a.found else f"no plan ({a.note[:200]})")
                         for a in widened.attempts)
    else:
        sector = start
        centre = np.array([_centre(inputs, sector, w) for w in range(len(team.ids))], dtype=np.intp)
        minutes = inputs.travel.rows(centre)[sector, np.arange(len(keys))]
        nested = NestedSolution(worker_group[sector], sector, worker_group, centre,
                                float((inputs.cost_weight * minutes).sum()), [], "edited by hand", 0.0,
                                [f"edited by hand from plan {stored.id}"])
    plan = assemble(inputs, nested, sector_names=sector_names)
    if not rebalance:
        plan.solve.update(backend="edit", status="edited by hand")
        for fact in ("time_limit_s", "tie_break"):
            plan.solve.pop(fact, None)
    plan.notes.extend([*notes, follow_note])
    plan.inputs["parent_plan"] = stored.content_hash

    changes = _changes(plan, parent, set(moved), follow_up)
    before_after = _before_after(stored, plan)
    summary = {
        "parent": stored.id, "moves": dict(moved), "locks": list(locks), "rebalance": rebalance,
        "step": step_name, "moved_communes": int(len(changes)),
        "moved_by_hand": int((changes["reason"] == "moved by hand").sum()),
        "moved_patients": float(changes["follow_up"].sum()), "moved_unit": unit,
        "moved_by_worker": moved_per_worker(changes, stored.workers),
        "valid": plan.valid, "violations": list(plan.violations),
    }
    plan.solve["edit"] = summary
    step(f"edit: {len(changes)} commune(s) change sector, {summary['moved_patients']:,.1f} {unit}; checks: "
         + ("all passed" if plan.valid else f"{len(plan.violations)} violation(s)"))
    return EditResult(plan, stored, changes, before_after, summary, notes)


def _centre(inputs: Inputs, sector: np.ndarray, w: int) -> int:
    """Centre of worker ``w``'s sector: the unit minimising the caseload-weighted travel to the others
    (the p-median centre; for a sector the edit does not change, the solver's own centre)."""
    members = np.flatnonzero(sector == w)
    if members.size == 0:
        raise EditError(f"worker {inputs.team.ids[w]} would have no commune left; give the sector at least one")
    rows = inputs.travel.rows(members)[:, members]
    return int(members[int(np.argmin(rows @ inputs.cost_weight[members]))])


def _changes(plan: Plan, parent: pd.DataFrame, by_hand: set[str], follow_up: pd.Series) -> pd.DataFrame:
    units = plan.units
    before = parent.reindex(units.index)
    differs = before["sector"].astype(str).to_numpy() != units["sector"].astype(str).to_numpy()
    rows = units.index[differs]
    return pd.DataFrame({
        "insee": rows.astype(str),
        "name": units.loc[rows, "name"].to_numpy(),
        "from_sector": before.loc[rows, "sector"].astype(str).to_numpy(),
        "from_worker": before.loc[rows, "worker_id"].astype(str).to_numpy(),
        "to_sector": units.loc[rows, "sector"].astype(str).to_numpy(),
        "to_worker": units.loc[rows, "worker_id"].astype(str).to_numpy(),
        "follow_up": follow_up.reindex(rows).to_numpy(dtype=float),
        "referrals": (units.loc[rows, "referrals"].to_numpy(dtype=float) if "referrals" in units.columns
                      else np.full(len(rows), np.nan)),
        "reason": ["moved by hand" if code in by_hand else "rebalanced" for code in rows],
    })


def _before_after(stored: StoredPlan, plan: Plan) -> pd.DataFrame:
    """Per sector, the parent's and the new plan's caseload, deviation, communes and travel."""
    from sectorize.report.kpi import compute_kpis
    from sectorize.store.export import worker_table

    after = worker_table(plan, compute_kpis(plan))
    b = stored.workers.assign(sector=stored.workers["sector"].astype(str)).set_index("sector")
    a = after.assign(sector=after["sector"].astype(str)).set_index("sector")
    out = pd.DataFrame({"sector": a.index, "worker_id": a["worker_id"].astype(str).to_numpy(),
                        "target": a["target"].astype(float).round(3).to_numpy()})
    for column, stem, unit in (("group", "group", ""), ("caseload", "caseload", ""),
                               ("deviation_pct", "deviation", "_pct"), ("communes", "communes", ""),
                               ("travel_centre_mean_min", "travel_centre_mean", "_min")):
        for label, table in (("before", b), ("after", a)):
            out[f"{stem}_{label}{unit}"] = (table[column].reindex(out["sector"]).to_numpy()
                                             if column in table.columns else np.nan)
    return out.round({"caseload_before": 3, "caseload_after": 3, "deviation_before_pct": 2,
                      "deviation_after_pct": 2, "travel_centre_mean_before_min": 1, "travel_centre_mean_after_min": 1})


def edit_and_write(stored: StoredPlan, out_dir: str | Path, *, progress: Progress | None = None,
                   **kwargs) -> tuple[Path, EditResult]:
    """:func:`edit_plan`, then :func:`write_edit`."""
    result = edit_plan(stored, progress=progress, **kwargs)
    return write_edit(result, out_dir, progress=progress), result


def write_edit(result: EditResult, out_dir: str | Path, *, progress: Progress | None = None) -> Path:
    """A run folder under ``out_dir`` (:func:`sectorize.store.export.write_outputs`) with
    ``changes.csv``, ``kpi_before_after.csv``, ``edit.json`` and ``diff_map.html`` besides the
    usual files."""
    from sectorize.report.kpi import jsonable
    from sectorize.report.maps import diff_map, sector_map
    from sectorize.store.export import write_outputs

    say = progress or (lambda line: None)
    plan, scenario = result.plan, result.plan.scenario
    say("drawing the maps")
    options = dict(tiles=scenario.map.tiles, simplify_m=scenario.map.simplify_m,
                   suppress_below=scenario.map.suppress_below)
    page = sector_map(plan, **options).get_root().render()
    extra = {
        "changes.csv": result.changes.round(3),
        "kpi_before_after.csv": result.before_after.round(2),
        "edit.json": json.dumps(jsonable(result.summary), ensure_ascii=False, indent=2, allow_nan=False),
        "diff_map.html": diff_map(plan, result.changes, **options).get_root().render(),
    }
    return write_outputs(plan, out_dir, map_html=page, extra=extra)
