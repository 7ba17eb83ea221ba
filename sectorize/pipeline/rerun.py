"""The annual re-run: re-sectorize with this year's demand and team while keeping
each patient with their referent as far as possible.

Steps (each a plain function a notebook can call):

1. :func:`load_previous` reads last year's plan (a run folder or a registry plan);
2. :func:`rerun` maps it onto this year's units and team (departures with a
   named successor hand their sector over; new workers get a new sector),
   solves from it with a price per patient moved and optional caps
   (:func:`solvers.rerun.resolve_or_widen`: when the caps or the price cannot
   restore balance, the cap is relaxed, then the group split revisited from a
   plan drawn from scratch, so the re-run finds a plan whenever ``sectorize
   run`` would; what it took is in the notes and ``rerun.json``), keeps sector ids with their worker,
   and reports the communes moved, the caseloads before/after, the month-by-month
   transition (:mod:`sectorize.report.transition`) and the trade-off between
   disruption and travel (:func:`frontier`);
3. :func:`rerun_and_write` writes a new run folder with the change report and the
   diff map.

Example
-------
>>> from sectorize.config.scenario import load_scenario                  # doctest: +SKIP
>>> previous = load_previous("sectorize-output/20261201-101500")  # doctest: +SKIP
>>> result = rerun(load_scenario("rerun-2027.toml"), previous)    # doctest: +SKIP
>>> result.summary["moved_patients"], len(result.changes)         # doctest: +SKIP
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geodata.codes import current_code
from geodata.demand import Demand
from geodata.regions import LYON
from sectorize.config.scenario import Scenario, ScenarioError
from sectorize.pipeline.assemble import assemble
from sectorize.pipeline.inputs import Inputs, Progress, load_inputs
from sectorize.pipeline.run import timed
from sectorize.plan import Plan
from sectorize.report.kpi import moved_per_worker
from sectorize.report.transition import drained_month, simulate_transition, transition_summary
from sectorize.store.run_folder import RunFolder, RunFolderError
from solvers import InfeasibleError, NoPlanError, resolve_nested, solve_nested
from solvers.rerun import WidenedSolution, match_workers, resolve_or_widen

#: Columns a previous plan's sector table must have.
PREVIOUS_COLUMNS = ("insee", "group", "sector", "worker_id")


@dataclass
class PreviousPlan:
    """Last year's plan, as the re-run needs it.

    ``sectors``: indexed by INSEE code (``str``), columns ``group, sector,
    worker_id`` (and ``name``, ``workload`` and demand columns when known);
    ``workers``: ``worker_id, worker_name, fte, group, sector``; ``id``: the
    run folder name or registry plan id; ``source``: where it was read;
    ``scenario_toml``: the scenario it was made with, when known.
    """

    id: str
    sectors: pd.DataFrame
    workers: pd.DataFrame
    source: str
    scenario_toml: str | None = None


def _read_table(run: RunFolder, name: str, required: tuple[str, ...]) -> pd.DataFrame:
    """A table of the previous plan's run folder, every column as text (codes keep their zeros)."""
    if not (run.path / name).is_file():
        raise ScenarioError(f"{run.path / name}: missing; a previous plan is a run folder written by `sectorize run`")
    try:
        return run.table(name, text=True, required=required)
    except RunFolderError as err:
        raise ScenarioError(str(err)) from err


def _numbers(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = table.copy()
    for c in columns:
        if c in out.columns:
            out[c] = pd.to_numeric(out[c].astype(str).str.replace(",", ".", regex=False), errors="coerce")
    return out


def load_previous(source: str | Path, registry: str | Path | None = None) -> PreviousPlan:
    """Read a previous plan from a run folder, or from a plan registry by id.

    Parameters
    ----------
    source
        A run folder (with ``sectors.csv`` and ``workers.csv``), or a plan id
        of ``registry``.
    registry
        Folder of the plan registry (:mod:`sectorize.store.registry`), when
        ``source`` is a plan id.

    Raises
    ------
    ScenarioError
        Naming the file or plan and what is missing.
    """
    path = Path(source)
    if path.is_dir():
        run = RunFolder.open(path)
        sectors = _read_table(run, "sectors.csv", PREVIOUS_COLUMNS)
        workers = _read_table(run, "workers.csv", ("worker_id", "group", "sector"))
        plan_id, where, scenario_toml = path.name, str(path), run.scenario_toml()
    elif registry is not None:
        from sectorize.store.registry import Registry

        stored = Registry(registry, create=False).get(str(source))
        sectors, workers = stored.sectors.copy(), stored.workers.copy()
        sectors["insee"] = sectors["insee"].astype(str)
        plan_id, where = stored.id, f"plan {stored.id} of {registry}"
        scenario_toml = stored.scenario_toml
    else:
        raise ScenarioError(
            f"previous plan {str(source)!r}: not a run folder; give a run folder written by "
            "`sectorize run`, or a plan id with --registry DIR"
        )
    if sectors["insee"].duplicated().any():
        dup = sectors.loc[sectors["insee"].duplicated(), "insee"].head(5).tolist()
        raise ScenarioError(f"{where}: INSEE code(s) {dup} appear twice in the sector table")
    sectors = _numbers(sectors, [c for c in sectors.columns if c not in (
        "insee", "name", "dep", "group", "sector", "worker_id", "worker_name")])
    workers = _numbers(workers, ["fte", "target", "caseload"])
    return PreviousPlan(plan_id, sectors.set_index("insee"), workers, where, scenario_toml)


def stored_demand(previous: PreviousPlan, columns: list[str]) -> Demand | None:
    """The demand ``previous`` was drawn with, from its sector table (``None`` when it lacks a column).

    For a team-only re-run: the same counts per commune, read from the plan
    rather than from a file that may have moved since. ``columns`` are the
    demand columns (roles) the scenario needs.
    """
    sectors = previous.sectors
    if not columns or any(c not in sectors.columns for c in columns):
        return None
    table = sectors[columns].astype(float).fillna(0.0)
    note = f"demand: the counts stored with the previous plan {previous.id} (team-only re-run)"
    return Demand(table, f"previous plan {previous.id} ({previous.source})", [note])


@dataclass
class RerunResult:
    """What :func:`rerun` returns.

    Attributes
    ----------
    plan
        The new plan (checked; sector ids follow their worker).
    previous
        The plan it started from.
    changes
        One row per commune whose referent changes: ``insee, name,
        from_sector, from_worker, to_sector, to_worker, follow_up`` (patients
        in follow-up), ``referrals`` (per year, when known), ``reason``
        (``moved``, ``handover``, ``worker left``, ``new commune``).
    caseloads
        One row per worker of either plan: ``worker_id, sector_before,
        sector_after, fte, target, caseload_before`` (previous map, previous
        demand), ``caseload_previous_map`` (previous map, this year's demand),
        ``caseload_after``, ``deviation_before_pct``, ``deviation_after_pct``.
    transition
        Month-by-month caseloads (:func:`sectorize.report.transition.simulate_transition`).
    frontier
        The disruption/travel trade-off (:func:`frontier`), or ``None``.
    summary
        Headline figures: patients and communes moved, caps, months to drain.
    """

    plan: Plan
    previous: PreviousPlan
    changes: pd.DataFrame
    caseloads: pd.DataFrame
    transition: pd.DataFrame
    frontier: pd.DataFrame | None
    summary: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------
# Mapping last year's plan onto this year's units and team
# --------------------------------------------------------------------------


def previous_worker_of_units(previous: PreviousPlan, keys: pd.Index) -> tuple[pd.Series, list[str]]:
    """Previous worker id of each unit of this year's geography (``""`` when none), and notes.

    Lyon: a plan on whole communes gives each arrondissement Lyon's worker; a
    plan by arrondissement gives Lyon (69123) the worker of its heaviest
    arrondissement. A code of the previous plan that no longer exists is
    mapped to the commune it merged into (:func:`geodata.codes.current_code`);
    codes that exist on one side only are reported, never dropped silently.
    """
    prev = previous.sectors["worker_id"].astype(str)
    notes: list[str] = []
    out = prev.reindex(keys)
    arrondissements = [k for k in keys if k.startswith("6938") and len(k) == 5]
    if LYON in prev.index and LYON not in keys and arrondissements:
        out.loc[arrondissements] = prev[LYON]
        notes.append(f"previous plan has Lyon as one commune: its 9 arrondissements start with {prev[LYON]}")
    prev_arr = [k for k in prev.index if k.startswith("6938") and len(k) == 5]
    if LYON in keys and LYON not in prev.index and prev_arr:
        weight = previous.sectors.loc[prev_arr].get("workload")
        heaviest = prev_arr[int(np.nanargmax(weight.to_numpy(dtype=float)))] if weight is not None else prev_arr[0]
        out.loc[LYON] = prev[heaviest]
        notes.append(f"previous plan has Lyon by arrondissement: Lyon (69123) starts with {prev[heaviest]}, "
                     f"the worker of {heaviest}")
    # codes of an older geography: a merged commune's worker goes to the commune it merged into,
    # when that commune has no worker of its own in the previous plan
    mapped = []
    for code in prev.index.difference(keys):
        match = current_code(code)
        if match.status == "changed" and match.current in out.index and pd.isna(out[match.current]):
            out[match.current] = prev[code]
            mapped.append(f"{code} -> {match.current}")
    if mapped:
        notes.append(f"{len(mapped)} code(s) of the previous plan mapped to this geography (commune mergers), "
                     f"e.g. {mapped[:5]}")
    new_codes = out.index[out.isna()]
    if len(new_codes):
        notes.append(f"{len(new_codes)} unit(s) not in the previous plan (new codes: another geography "
                     f"vintage?), e.g. {list(new_codes[:5])}: they join an adjacent sector")
    gone = prev.index.difference(keys).difference([LYON, *prev_arr]).difference([m.split(" -> ")[0] for m in mapped])
    if len(gone):
        notes.append(f"{len(gone)} code(s) of the previous plan are not in this geography and could not be "
                     f"mapped, e.g. {list(gone[:5])}: their communes are handled as new")
    return out.fillna("").astype(str), notes


@dataclass(frozen=True)
class TeamChange:
    """How last year's workers map onto this year's team.

    ``successor[departed] = new worker id`` (handover); ``left``: departed
    workers without successor; ``joined``: new workers; ``sector_of``:
    sector id kept by each continuing worker and successor.
    """

    successor: dict[str, str]
    left: tuple[str, ...]
    joined: tuple[str, ...]
    sector_of: dict[str, str]
    group_of: dict[str, str]


def team_change(scenario: Scenario, previous: PreviousPlan) -> TeamChange:
    """Compare the scenario's team with the previous plan's workers (validating ``rerun.handover``)."""
    before = previous.workers.set_index("worker_id")
    now = [w.id for w in scenario.team.workers]
    handover = dict(scenario.rerun.handover)
    for worker in scenario.team.workers:  # `replaces` in the team file: the same as rerun.handover
        if worker.replaces is None:
            continue
        if handover.setdefault(worker.replaces, worker.id) != worker.id:
            raise ScenarioError(f"team.workers {worker.id}.replaces: {worker.replaces!r} is handed over to "
                                f"{handover[worker.replaces]!r} in rerun.handover; keep one successor")
    for old, new in handover.items():
        if old not in before.index:
            raise ScenarioError(f"rerun.handover.{old}: {old!r} is not a worker of the previous plan "
                                f"({', '.join(before.index)})")
        if old in now:
            raise ScenarioError(f"rerun.handover.{old}: {old!r} is still in the team; hand over only departing workers")
        if new not in now:
            raise ScenarioError(f"rerun.handover.{old}: successor {new!r} is not in team.workers")
        if new in before.index:
            raise ScenarioError(f"rerun.handover.{old}: successor {new!r} already has a sector; "
                                "a continuing worker cannot take over a second one")
    if len(set(handover.values())) != len(handover):
        raise ScenarioError("rerun.handover: one successor for two departing workers; give one each")
    sector_of = {w: str(before.at[w, "sector"]) for w in now if w in before.index}
    group_of = {w: str(before.at[w, "group"]) for w in now if w in before.index}
    for old, new in handover.items():
        sector_of[new] = str(before.at[old, "sector"])
        group_of[new] = str(before.at[old, "group"])
    left = tuple(w for w in before.index if w not in now and w not in handover)
    joined = tuple(w for w in now if w not in before.index and w not in handover.values())
    return TeamChange(dict(handover), left, joined, sector_of, group_of)


def _new_sector_id(group: str, taken: set[str]) -> str:
    numbers = [int(m.group(1)) for s in taken if (m := re.fullmatch(re.escape(group) + r"(\d+)", s))]
    return f"{group}{max(numbers, default=0) + 1}"


# --------------------------------------------------------------------------
# The re-run
# --------------------------------------------------------------------------


def rerun(
    scenario: Scenario,
    previous: PreviousPlan,
    progress: Progress | None = None,
    *,
    with_frontier: bool = True,
    demand: Demand | None = None,
) -> RerunResult:
    """Re-sectorize ``scenario`` (this year's demand and team) starting from ``previous``.

    ``demand`` replaces the scenario's demand, e.g. :func:`stored_demand` for a
    team-only re-run.

    The objective is the scenario's travel objective plus
    ``rerun.move_penalty_min`` caseload-minutes per patient in follow-up whose
    commune changes worker, under the caps of ``scenario.rerun``; communes in
    ``rerun.locked`` stay with their previous worker. See
    :class:`sectorize.config.scenario.RerunConfig`.

    Raises
    ------
    ScenarioError
        Bad handover, locked code or follow-up column (the key is named).
    solvers.InfeasibleError
        No plan can meet the tolerances within the caps, proven (the message says which).
    solvers.NoPlanFoundError
        No such plan was found in the time given (nothing proven).
    """
    step = timed(progress)
    cfg = scenario.rerun
    inputs = load_inputs(scenario, step, demand=demand)
    region, demand, load, travel, team = inputs.region, inputs.demand, inputs.load, inputs.travel, inputs.team
    keys, index, w = inputs.keys, inputs.index, inputs.workload
    names = tuple(scenario.groups.names)
    step(f"previous plan {previous.id}: {len(previous.sectors):,} communes, {len(previous.workers)} workers")

    change = team_change(scenario, previous)
    prev_worker, notes = previous_worker_of_units(previous, keys)
    follow_up, follow_note = _follow_up(scenario, demand, load)
    moved_unit = "patients" if follow_note.startswith(_PATIENTS_NOTE) else "caseload units"
    notes.append(follow_note)
    notes.extend(_handover_notes(change, prev_worker, follow_up))
    previous_sector = _previous_sector(prev_worker, change, team.ids)
    worker_group = _worker_groups(scenario, team, change, previous_sector, w, notes)
    locked = _locked_units(cfg.locked, index, previous_sector, region.name)
    for unit, worker in inputs.locked().items():  # [[locks]] of the scenario
        if locked.setdefault(unit, worker) != worker:
            raise ScenarioError(f"locks: {keys[unit]} is locked to {team.ids[worker]} in [[locks]] but kept with "
                                f"{team.ids[locked[unit]]} by rerun.locked; keep one")

    mw, cap, cap_text = _disruption(cfg, follow_up)
    step(f"re-run: move penalty {cfg.move_penalty_min:g} caseload-minutes per patient moved "
         f"+ {cfg.commune_move_penalty_min:g} per commune; cap: {cap_text}")
    widened = resolve_or_widen(
        inputs.graph, w, travel, team.fte, worker_group, previous_sector, move_weight=mw,
        move_cost=cfg.move_penalty_min, max_moved=cap, move_unit_cost=cfg.commune_move_penalty_min,
        locked=locked, fixed_groups=list(team.fixed_group), progress=step, **inputs.solver_options(),
    )
    nested = widened.solution
    notes.extend(_widening_notes(widened, team.ids, names, worker_group, moved_unit))
    worker_group = nested.worker_group
    sector_names = _sector_names(team, worker_group, names, change)
    plan = assemble(inputs, nested, sector_names=sector_names)
    plan.notes.extend(notes)

    changes = change_table(plan, previous, prev_worker, follow_up, change)
    caseloads = caseload_table(plan, previous, prev_worker)
    transition = _transition(inputs, prev_worker, plan, follow_up, change)
    summary = _summary(scenario, previous, changes, follow_up, cap_text, transition, change)
    summary.update(_widening_summary(widened, moved_unit))
    plan.solve["rerun"] = summary
    step(f"re-run: {summary['moved_communes']} commune(s) moved, {summary['moved_patients']:,.1f} patients "
         f"({summary['moved_pct']:.2f} %)")
    table = None
    if with_frontier and (cfg.frontier or cfg.frontier_penalties):
        table = frontier(inputs, worker_group, previous_sector, mw, follow_up.to_numpy(dtype=float), locked,
                         plan, step)
    return RerunResult(plan, previous, changes, caseloads, transition, table, summary)


def _handover_notes(change: TeamChange, prev_worker: pd.Series, follow_up: pd.Series) -> list[str]:
    """One note per departure: who takes over, or how much is shared out."""
    notes = [f"{old} left; {new} takes over sector {change.sector_of[new]}" for old, new in change.successor.items()]
    for old in change.left:
        n_units = int((prev_worker == old).sum())
        notes.append(f"{old} left without successor: {n_units} commune(s), "
                     f"{follow_up[prev_worker == old].sum():,.1f} patients in follow-up are shared out")
    return notes


def _previous_sector(prev_worker: pd.Series, change: TeamChange, worker_ids: tuple[str, ...]) -> np.ndarray:
    """Worker index (in this year's team) of each unit in the previous plan, through handovers; -1 if none."""
    carried = prev_worker.replace(change.successor)
    position = {wid: i for i, wid in enumerate(worker_ids)}
    return np.array([position.get(v, -1) for v in carried], dtype=np.intp)


def _locked_units(codes: list[str], index: dict[str, int], previous_sector: np.ndarray,
                  region_name: str) -> dict[int, int]:
    """``rerun.locked`` as ``{unit: worker index}``: each code keeps its previous worker.

    Raises :class:`ScenarioError` naming ``rerun.locked[i]`` for a code that
    is not a unit, or whose previous worker left without successor.
    """
    locked = {}
    for i, code in enumerate(codes):
        if code not in index:
            raise ScenarioError(f"rerun.locked[{i}]: {code!r} is not a unit of the region ({region_name})")
        if previous_sector[index[code]] < 0:
            raise ScenarioError(f"rerun.locked[{i}]: {code!r} has no previous worker in this team; it cannot be kept")
        locked[index[code]] = int(previous_sector[index[code]])
    return locked


def referents_at_switch(prev_worker: pd.Series, change: TeamChange) -> pd.Series:
    """Who follows each commune's patients on the day of the switch, before the new map applies.

    A departing worker's patients go to her successor (``change.successor``);
    those of a worker who left without successor have no old referent (``""``)
    and so follow the new map at once; everyone else keeps her patients.

    Examples
    --------
    >>> change = TeamChange({"TS05": "TS12"}, ("TS07",), (), {}, {})
    >>> referents_at_switch(pd.Series(["TS05", "TS07", "TS01"]), change).tolist()
    ['TS12', '', 'TS01']
    """
    left = set(change.left)
    return prev_worker.map(lambda w: change.successor.get(w, "" if w in left else w))


def _transition(inputs: Inputs, prev_worker: pd.Series, plan: Plan, follow_up: pd.Series,
                change: TeamChange) -> pd.DataFrame:
    """The month-by-month transition of the follow-up patients (:func:`simulate_transition`),
    from the referents on the day of the switch (:func:`referents_at_switch`)."""
    cfg, table, keys = inputs.scenario.rerun, inputs.demand.table, inputs.keys
    referrals = table["referrals"].reindex(keys).fillna(0.0) if "referrals" in table else inputs.load
    episode = table["episode_months"].reindex(keys) if "episode_months" in table else cfg.episode_months
    return simulate_transition(referents_at_switch(prev_worker, change), plan.units["worker_id"], follow_up,
                               referrals, episode, mode=cfg.transition)


def _summary(scenario: Scenario, previous: PreviousPlan, changes: pd.DataFrame, follow_up: pd.Series,
             cap_text: str, transition: pd.DataFrame, change: TeamChange) -> dict[str, Any]:
    """The re-run's figures for ``plan.solve["rerun"]``: communes and patients moved, cap, handovers,
    and the referent changes per worker (``moved_by_worker``, :func:`sectorize.report.kpi.moved_per_worker`:
    the re-run's ``kpi.html`` charts them)."""
    cfg = scenario.rerun
    moved = changes["reason"].eq("moved")
    return {
        "previous_plan": previous.id,
        "follow_up_total": float(follow_up.sum()),
        "moved_communes": int(moved.sum()),
        "moved_patients": float(changes.loc[moved, "follow_up"].sum()),
        "moved_pct": float(100 * changes.loc[moved, "follow_up"].sum() / max(follow_up.sum(), 1e-9)),
        "referent_changes_patients": float(changes["follow_up"].sum()),
        "cap": cap_text,
        "move_penalty_min": cfg.move_penalty_min,
        "transition": cfg.transition,
        "drained_month": drained_month(transition),
        "handover": dict(change.successor),
        "left": list(change.left),
        "joined": list(change.joined),
        "moved_by_worker": moved_per_worker(changes, previous.workers),
    }


_PATIENTS_NOTE = "disruption counted in patients in follow-up"


def _widening_notes(widened: WidenedSolution, ids: tuple[str, ...], names: list[str], asked_groups: np.ndarray,
                    unit: str) -> list[str]:
    """What the re-run needed beyond what was asked, in words (empty when nothing)."""
    if not widened.widened:
        return []
    failed = [a for a in widened.attempts if not a.found]
    notes = [f"re-run widened to '{widened.step}': "
             + "; ".join(f"'{a.step}' found no plan ({a.note[:200]})" for a in failed)]
    if widened.cap is not None:
        notes.append(f"the cap on moves was {widened.cap:,.1f} {unit}; the plan moves {widened.moved:,.1f} "
                     f"({widened.over_cap:,.1f} more than the cap wanted)")
    switched = [f"{ids[i]} {names[int(asked_groups[i])]} -> {names[int(g)]}"
                for i, g in enumerate(widened.solution.worker_group) if g != asked_groups[i]]
    if switched:
        notes.append("workers who change group (no plan kept them in theirs): " + ", ".join(switched))
    return notes


def _widening_summary(widened: WidenedSolution, unit: str) -> dict[str, Any]:
    """The widening figures for ``rerun.json``: the step that found the plan and each step tried."""
    return {
        "moved_unit": unit,
        "widened": widened.widened,
        "step": widened.step,
        "over_cap": widened.over_cap,
        "attempts": [{"step": a.step, "found": a.found, "moved": a.moved, "time_s": round(a.time_s, 1),
                      "note": a.note} for a in widened.attempts],
    }


def _follow_up(scenario: Scenario, demand, load: pd.Series) -> tuple[pd.Series, str]:
    """Patients in follow-up per unit (the disruption weight) and a note saying where they came from."""
    column = scenario.rerun.follow_up
    table = demand.table
    if column is not None:
        if column not in table.columns:
            raise ScenarioError(f"rerun.follow_up: column {column!r} is not in the demand ({demand.source}); "
                                f"available: {list(table.columns)}")
    elif "follow_up" in table.columns:
        column = "follow_up"
    if column is None:
        return load.rename("follow_up"), ("disruption counted in caseload units: the demand has no follow-up "
                                           "column (set rerun.follow_up, or a follow_up role in [demand.columns])")
    values = table[column].astype(float).reindex(load.index).fillna(0.0)
    return values.rename("follow_up"), f"{_PATIENTS_NOTE} (demand column {column!r})"


def _disruption(cfg, follow_up: pd.Series) -> tuple[np.ndarray, float | None, str]:
    """Move weight per unit, the cap in that weight, and the cap as text.

    The weight is the patients in follow-up (one per commune with a cap on communes).
    """
    if cfg.max_moved_communes is not None:
        return np.ones(len(follow_up)), float(cfg.max_moved_communes), f"{cfg.max_moved_communes} commune(s)"
    caps = []
    if cfg.max_moved_pct is not None:
        caps.append(cfg.max_moved_pct / 100 * float(follow_up.sum()))
    if cfg.max_moved_patients is not None:
        caps.append(float(cfg.max_moved_patients))
    cap = min(caps) if caps else None
    return follow_up.to_numpy(dtype=float), cap, "none" if cap is None else f"{cap:,.1f} patients"


def _worker_groups(scenario, team, change: TeamChange, previous_sector, w, notes) -> np.ndarray:
    """Group of each worker: the scenario's, else the previous one, else the group most loaded per FTE."""
    names = list(scenario.groups.names)
    groups: list[int | None] = []
    for i, wid in enumerate(team.ids):
        if team.fixed_group[i] is not None:
            groups.append(int(team.fixed_group[i]))
        elif change.group_of.get(wid) in names:
            groups.append(names.index(change.group_of[wid]))
        else:
            groups.append(None)
    for i, g in enumerate(groups):
        if g is not None:
            continue
        load = np.zeros(len(names))
        fte = np.zeros(len(names))
        for j, gj in enumerate(groups):
            if gj is not None:
                fte[gj] += team.fte[j]
                load[gj] += w[previous_sector == j].sum()
        ratio = np.where(fte > 0, load / np.maximum(fte, 1e-9), np.inf)
        groups[i] = int(np.argmax(ratio))
        notes.append(f"{team.ids[i]} joins group {names[groups[i]]}, the most loaded per FTE")
    out = np.array(groups, dtype=np.intp)
    empty = [names[g] for g in range(len(names)) if not (out == g).any()]
    if empty:
        raise ScenarioError(f"groups {empty} have no worker in the new team; give a worker group = {empty[0]!r}")
    return out


def _sector_names(team, worker_group, names, change: TeamChange) -> list[str]:
    """Sector id of each worker: kept from the previous plan, or a new one in the worker's group."""
    taken = set(change.sector_of.values())
    out = []
    for i, wid in enumerate(team.ids):
        group = names[int(worker_group[i])]
        kept = change.sector_of.get(wid)
        if kept is not None and kept.startswith(group) and kept not in out:
            out.append(kept)
        else:
            new = _new_sector_id(group, taken | set(out))
            out.append(new)
    return out


# --------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------


def change_table(plan: Plan, previous: PreviousPlan, prev_worker: pd.Series, follow_up: pd.Series,
                 change: TeamChange) -> pd.DataFrame:
    """Communes whose worker changes, with the reason and the patients concerned."""
    units = plan.units
    before_sector = previous.sectors["sector"].astype(str).reindex(units.index)
    if LYON in previous.sectors.index:  # whole-Lyon plan read onto arrondissements
        arr = [k for k in units.index if k.startswith("6938") and len(k) == 5]
        before_sector.loc[arr] = str(previous.sectors.at[LYON, "sector"])
    rows = []
    for key in units.index:
        old, new = prev_worker[key], units.at[key, "worker_id"]
        if old == new:
            continue
        if old == "":
            reason = "new commune"
        elif change.successor.get(old) == new:
            reason = "handover"
        elif old in change.left:
            reason = "worker left"
        else:
            reason = "moved"
        rows.append({
            "insee": key, "name": units.at[key, "name"],
            "from_sector": "" if pd.isna(before_sector[key]) else before_sector[key], "from_worker": old,
            "to_sector": units.at[key, "sector"], "to_worker": new,
            "follow_up": float(follow_up[key]),
            "referrals": float(units.at[key, "referrals"]) if "referrals" in units.columns else np.nan,
            "reason": reason,
        })
    columns = ["insee", "name", "from_sector", "from_worker", "to_sector", "to_worker", "follow_up", "referrals", "reason"]
    return pd.DataFrame(rows, columns=columns)


def caseload_table(plan: Plan, previous: PreviousPlan, prev_worker: pd.Series) -> pd.DataFrame:
    """Per worker: caseload under the previous map (old and new demand) and under the new plan."""
    units, workers = plan.units, plan.workers.set_index("worker_id")
    before = previous.workers.set_index("worker_id")
    old_load = (previous.sectors.groupby("worker_id")["workload"].sum()
                if "workload" in previous.sectors.columns else pd.Series(dtype=float))
    prev_map = units["workload"].groupby(prev_worker).sum()
    after = units.groupby("worker_id")["workload"].sum()
    ids = list(workers.index) + [w for w in before.index if w not in workers.index]
    rows = []
    for wid in ids:
        target = float(workers.at[wid, "target"]) if wid in workers.index else np.nan
        old_target = float(before.at[wid, "target"]) if wid in before.index and "target" in before.columns else np.nan
        cb = float(old_load.get(wid, np.nan))
        ca = float(after.get(wid, 0.0)) if wid in workers.index else np.nan
        rows.append({
            "worker_id": wid,
            "sector_before": str(before.at[wid, "sector"]) if wid in before.index else "",
            "sector_after": str(workers.at[wid, "sector"]) if wid in workers.index else "",
            "fte": float(workers.at[wid, "fte"]) if wid in workers.index else float(before.at[wid, "fte"]),
            "target": target,
            "caseload_before": cb,
            "caseload_previous_map": float(prev_map.get(wid, np.nan)),
            "caseload_after": ca,
            "deviation_before_pct": 100 * (cb / old_target - 1) if old_target > 0 else np.nan,
            "deviation_previous_map_pct": 100 * (float(prev_map.get(wid, np.nan)) / target - 1) if target > 0 else np.nan,
            "deviation_after_pct": 100 * (ca / target - 1) if target > 0 else np.nan,
        })
    return pd.DataFrame(rows)


def frontier(inputs: Inputs, worker_group: np.ndarray, previous_sector: np.ndarray, mw: np.ndarray,
             patients: np.ndarray, locked: dict[int, int], plan: Plan, step: Progress) -> pd.DataFrame:
    """The trade-off between patients moved and travel: one solve per cap of ``rerun.frontier``.

    Rows: each cap (``cap_pct``, ``rerun.frontier_time_limit_s`` each), each
    multiple of the move penalty (``rerun.frontier_penalties``), the chosen
    plan (penalty, caps of the scenario) and an unconstrained re-solve
    from scratch (``model.time_limit_s``) whose sectors are matched to the
    workers so as to move the fewest patients
    (:func:`solvers.rerun.match_workers`). Columns: ``option,
    cap_pct, feasible, moved_patients, moved_pct, moved_communes,
    travel_objective`` (caseload-minutes, without the move penalty),
    ``mean_travel_min`` (caseload-weighted), ``max_deviation_pct``, ``note``.
    """
    scenario, graph, w, travel, team = inputs.scenario, inputs.graph, inputs.workload, inputs.travel, inputs.team
    cfg = scenario.rerun
    total = float(patients.sum())
    # the model settings of the scenario; each trade-off row has the frontier's own time limit
    common = {**inputs.solver_options(), "time_limit_s": cfg.frontier_time_limit_s}

    def row(option, cap_pct, sector, centre, note=""):
        return _frontier_row(inputs, previous_sector, patients, option, cap_pct, sector, centre, note)

    rows = []
    chosen = plan.units["worker_id"].map({wid: i for i, wid in enumerate(team.ids)}).to_numpy()
    centre = plan.units.index.get_indexer(plan.workers["centre"])
    rows.append(row("chosen plan", np.nan, chosen, centre, "the written plan (penalty and caps of the scenario)"))
    chosen_moved = float(mw[(previous_sector >= 0) & (chosen != previous_sector)].sum())
    for pct in cfg.frontier:
        step(f"trade-off: at most {pct:g} % of patients moved ({cfg.frontier_time_limit_s:g} s)")
        cap = pct / 100 * total
        try:
            sol = resolve_nested(
                graph, w, travel, team.fte, worker_group, previous_sector, move_weight=mw,
                move_cost=cfg.move_penalty_min, max_moved=cap, move_unit_cost=cfg.commune_move_penalty_min,
                locked=locked,
                # start from the chosen plan when it already meets the cap, else from the previous plan
                start_sector=chosen if chosen_moved <= cap else None,
                **common,
            )
            rows.append(row(f"at most {pct:g} % moved", pct, sol.sector, sol.centre))
        except NoPlanError as err:
            rows.append(row(f"at most {pct:g} % moved", pct, None, None, _no_plan_note(err, cfg.frontier_time_limit_s)))
    for factor in cfg.frontier_penalties:
        price = factor * cfg.move_penalty_min
        step(f"trade-off: move penalty x{factor:g} ({price:g} caseload-minutes per patient, "
             f"{cfg.frontier_time_limit_s:g} s)")
        try:
            sol = resolve_nested(
                graph, w, travel, team.fte, worker_group, previous_sector, move_weight=mw,
                move_cost=price, max_moved=None, move_unit_cost=factor * cfg.commune_move_penalty_min,
                locked=locked, **common,
            )
            rows.append(row(f"penalty x{factor:g}", np.nan, sol.sector, sol.centre,
                            f"{price:g} caseload-minutes per patient moved, no cap"))
        except NoPlanError as err:
            rows.append(row(f"penalty x{factor:g}", np.nan, None, None, _no_plan_note(err, cfg.frontier_time_limit_s)))
    # the comparison a manager would otherwise make: `sectorize run` anew, with its full time limit
    step(f"trade-off: unconstrained re-solve from scratch ({scenario.model.time_limit_s:g} s)")
    try:
        fresh = solve_nested(graph, w, travel, team.fte, scenario.groups.count,
                             fixed_groups=list(team.fixed_group), **inputs.solver_options())
        relabel, inverse = match_workers(fresh.sector, previous_sector, mw, team.fte)
        rows.append(row("re-solve from scratch", 100.0, relabel[fresh.sector], fresh.centre[inverse],
                        "sectors matched to workers of equal FTE to move the fewest patients"))
    except NoPlanError as err:
        rows.append(row("re-solve from scratch", 100.0, None, None,
                        _no_plan_note(err, scenario.model.time_limit_s)))
    return pd.DataFrame(rows)


def _no_plan_note(err: NoPlanError, seconds: float) -> str:
    """A trade-off row's note: a proof that no plan exists, or a search that ran out of time."""
    kind = "no plan exists" if isinstance(err, InfeasibleError) else f"none found in {seconds:g} s"
    return f"{kind}: {err}"[:300]


def _frontier_row(inputs: Inputs, previous_sector: np.ndarray, patients: np.ndarray, option: str,
                  cap_pct: float, sector: np.ndarray | None, centre: np.ndarray | None, note: str = "") -> dict:
    """One row of :func:`frontier`: the plan ``sector`` (worker index per unit, ``None`` when no plan
    was found) against the previous plan: patients and communes moved, travel, worst deviation."""
    if sector is None:
        return {"option": option, "cap_pct": cap_pct, "feasible": False, "moved_patients": np.nan,
                "moved_pct": np.nan, "moved_communes": np.nan, "travel_objective": np.nan,
                "mean_travel_min": np.nan, "max_deviation_pct": np.nan, "note": note}
    w, team, total = inputs.workload, inputs.team, float(patients.sum())
    if inputs.objective == "base":  # "auto" resolved
        minutes = team.base_travel[sector, np.arange(len(sector))]
    else:
        minutes = inputs.travel.rows(centre)[sector, np.arange(len(sector))]
    moved = (previous_sector >= 0) & (sector != previous_sector)
    loads = np.bincount(sector, weights=w, minlength=len(team.fte))
    targets = w.sum() * team.fte / team.fte.sum()
    return {"option": option, "cap_pct": cap_pct, "feasible": True,
            "moved_patients": float(patients[moved].sum()),
            "moved_pct": 100 * float(patients[moved].sum()) / max(total, 1e-9),
            "moved_communes": int(moved.sum()), "travel_objective": float((inputs.cost_weight * minutes).sum()),
            "mean_travel_min": float((w * minutes).sum() / max(w.sum(), 1e-9)),
            "max_deviation_pct": float(100 * np.abs(loads / targets - 1).max()), "note": note}


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def rerun_and_write(
    scenario: Scenario,
    previous: PreviousPlan,
    progress: Progress | None = None,
    *,
    with_frontier: bool = True,
    demand: Demand | None = None,
) -> tuple[Path, RerunResult]:
    """Run :func:`rerun` and write a new run folder under ``scenario.output.dir``.

    Besides the files of ``sectorize run`` (:func:`sectorize.store.export.write_outputs`)
    the folder holds ``changes.csv`` (communes whose referent changes),
    ``caseloads.csv`` (per worker before/after), ``transition.csv`` (month by
    month) and ``transition_workers.csv`` (per worker: month 0, peak, end,
    most old-map patients kept), ``frontier.csv`` (the trade-off, when computed), ``rerun.json``
    (the summary) and ``diff_map.html`` (moved communes highlighted).
    """
    import json

    from sectorize.store.export import write_outputs
    from sectorize.report.kpi import jsonable
    from sectorize.report.maps import diff_map, sector_map

    say = progress or (lambda line: None)
    result = rerun(scenario, previous, progress=say, with_frontier=with_frontier, demand=demand)
    say("drawing the maps")
    plan = result.plan
    options = dict(tiles=scenario.map.tiles, simplify_m=scenario.map.simplify_m,
                   suppress_below=scenario.map.suppress_below)
    page = sector_map(plan, **options).get_root().render()
    diff = diff_map(plan, result.changes, **options).get_root().render()
    extra: dict[str, Any] = {
        "changes.csv": _whole_counts(result.changes, ("follow_up", "referrals")),
        "caseloads.csv": result.caseloads.round(2),
        "transition.csv": result.transition.round(2),
        "transition_workers.csv": transition_summary(result.transition).round(2),
        "rerun.json": json.dumps(jsonable(result.summary), ensure_ascii=False, indent=2, allow_nan=False),
        "diff_map.html": diff,
    }
    if result.frontier is not None:
        extra["frontier.csv"] = result.frontier.round(3)
    folder = write_outputs(plan, scenario.output.dir, map_html=page, extra=extra)
    return folder, result


def _whole_counts(table: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """``table`` with each column of counts written as whole numbers when it holds counts
    (a demand file), else rounded to 2 decimals (expected values or caseload units)."""
    out = table.copy()
    for column in columns:
        values = out[column].astype(float)
        if values.notna().all() and np.allclose(values, values.round()):
            out[column] = values.round().astype(int)
        else:
            out[column] = values.round(2)
    return out


def summary_text(result: RerunResult) -> str:
    """A short plain-text report of a re-run, for the terminal."""
    s = result.summary
    unit = s.get("moved_unit", "patients")
    what = "patients in follow-up" if unit == "patients" else "caseload units (no follow-up column)"
    lines = [
        f"re-run from {s['previous_plan']}: {s['moved_communes']} commune(s) moved, "
        f"{_count(s['moved_patients'])} of {_count(s['follow_up_total'])} {what} ({s['moved_pct']:.2f} %)",
        f"cap: {s['cap']}; transition: {s['transition']}"
        + (f", old map drained after {s['drained_month']} month(s)" if s["drained_month"] is not None else ""),
    ]
    if s.get("widened"):
        lines.append(f"widened: no plan as asked; the plan comes from step '{s['step']}'"
                     + (f", {_count(s['over_cap'])} {unit} more than the cap" if s["over_cap"] > 0 else ""))
        for a in s["attempts"]:
            lines.append(f"  {a['step']:<24} " + (f"plan, {_count(a['moved'])} {unit} moved" if a["found"]
                                                  else f"no plan: {a['note'][:150]}"))
    if s["handover"]:
        lines.append("handover: " + ", ".join(f"{a} -> {b}" for a, b in s["handover"].items()))
    if s["left"]:
        lines.append("left without successor: " + ", ".join(s["left"]))
    if s["joined"]:
        lines.append("joined: " + ", ".join(s["joined"]))
    if result.frontier is not None:
        lines.append(f"trade-off ({unit} moved vs caseload-weighted mean travel):")
        for r in result.frontier.itertuples():
            if r.feasible:
                lines.append(f"  {r.option:<24} {r.moved_pct:6.2f} % moved  {int(r.moved_communes):5d} communes  "
                             f"mean travel {r.mean_travel_min:5.1f} min  max deviation {r.max_deviation_pct:5.1f} %")
            else:
                lines.append(f"  {r.option:<24} {r.note[:150] or 'no plan found in the time limit'}")
    return "\n".join(lines)


def _count(value: float) -> str:
    """A count of patients: whole when it is one, else with one decimal (expected values, caseload units)."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
