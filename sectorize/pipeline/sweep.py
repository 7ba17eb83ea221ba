"""Scenario sweeps: solve every variation x seed of a base scenario, in parallel.

A planner asks "two groups or three?", "+-5 % or +-10 %?", "what if a 0.8 FTE
worker joins?" and compares the answers side by side. A *sweep file* (TOML)
names a base scenario, a list of named variations (dotted-key changes) and a
list of solver seeds; :func:`run_sweep` solves every variation x seed, in
processes on this machine (:class:`concurrent.futures.ProcessPoolExecutor`)
or on a Dask distributed cluster (a ``dask.distributed.Client``), and returns
one row per solve.

Sweep file::

    name = "balance and groups"
    base = "scenario.toml"        # or an inline [base] table, or omit: packaged AURA default
    seeds = [0, 1]                # model.seed of each solve

    [[variations]]
    name = "reference"            # no change

    [[variations]]
    name = "tolerance 5 %"
    changes = { "model.tolerance" = 0.05 }

    [[variations]]
    name = "three groups"
    changes = { "groups.count" = 3, "model.time_limit_s" = 8 }

    [[variations]]
    name = "new 0.8 FTE worker"
    [[variations.changes."team.workers"]]   # a list replaces the whole list
    id = "TS01"
    ...

Changes are applied to the base scenario's effective values: a dotted key sets
one value, a table value is merged key by key into the table there, a list or
scalar replaces. Changing ``groups.count`` without ``groups.names`` regenerates
the names (``A``, ``B``, ``C`` ...); changing ``model.tolerance`` without
``model.group_tolerance`` re-derives it (half the tolerance) when the base used
the derived value.

Each seed is written to ``model.seed`` (it overrides a ``model.seed`` change);
each scenario is named ``"<base name> / <variation>"`` unless the variation
changes ``name``.

Each solve runs :func:`sectorize.pipeline.run.run` in a worker process and sends
back a small :class:`Outcome` (KPIs and the sector table, about 0.5 MB, not the
3 MB plan with its polygons). A variation that does not make a valid scenario,
a solve that fails (unknown base commune, no plan within the tolerance) or a
worker that dies is one row with its status and message; the other rows are
kept. With a plan store (``registry``), each valid plan is rebuilt in this
process from the outcome and the region's polygons and stored there (one
writer).

Local worker processes are started with ``spawn`` (safe with the solver's
threads, and the same on Windows): in a script, call :func:`run_sweep` under
``if __name__ == "__main__":``; notebooks need nothing special.

Example
-------
>>> from sectorize import load_sweep, run_sweep                       # doctest: +SKIP
>>> result = run_sweep(load_sweep("sweep.toml"), workers=2, progress=print)
>>> result.table[["variation", "seed", "status", "max_deviation_pct", "mean_travel_min"]]
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
import uuid
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import pandas as pd

from sectorize.config.scenario import Scenario, ScenarioError
from sectorize.config.sweep import SweepConfig, apply_changes, base_scenario

if TYPE_CHECKING:  # pragma: no cover
    from sectorize.plan import Plan
    from sectorize.store.registry import Registry

Progress = Callable[[str], None]

#: Columns of :attr:`SweepResult.table`, in order.
RESULT_COLUMNS = (
    "variation", "seed", "status", "valid", "objective", "max_deviation_pct", "mean_travel_min",
    "groups", "sectors", "time_s", "plan_id", "error",
)

#: Status of a row: a valid plan; a plan whose independent checks failed; no plan meets the
#: constraints; the solve stopped on bad input or crashed; the variation is not a valid scenario.
STATUSES = ("ok", "violations", "infeasible", "no_plan_found", "error", "invalid")


@dataclass(frozen=True)
class SweepTask:
    """One solve of a sweep: a variation and a seed, with its scenario (or why there is none)."""

    index: int
    variation: str
    seed: int
    scenario: Scenario | None
    error: str = ""
    keep_plan: bool = False


def expand(sweep: SweepConfig, base: Scenario | None = None, keep_plan: bool = False) -> list[SweepTask]:
    """Every variation x seed of ``sweep`` as a :class:`SweepTask`, variation-major.

    A variation whose changes give an invalid scenario yields tasks with
    ``scenario=None`` and the validation message in ``error``.
    """
    base = base if base is not None else base_scenario(sweep)
    label = str(sweep.source) if sweep.source is not None else "sweep"
    tasks = []
    for variation in sweep.variations:
        changes = dict(variation.changes)
        if "name" not in changes:
            changes["name"] = f"{base.name} / {variation.name}"
        for seed in sweep.seeds:
            try:
                scenario = apply_changes(base, {**changes, "model.seed": seed}, source=sweep.source)
                error = ""
            except ScenarioError as err:
                # the scenario loader prefixes each line with the file name; say the variation instead
                prefixes = ("scenario: ", f"{sweep.source}: ")
                reasons = "; ".join(_strip(line, prefixes) for line in str(err).splitlines())
                scenario, error = None, f"{label}: variation {variation.name!r}: invalid scenario: {reasons}"
            tasks.append(SweepTask(len(tasks), variation.name, seed, scenario, error, keep_plan))
    return tasks


def _strip(line: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if line.startswith(prefix):
            return line[len(prefix):]
    return line


# --------------------------------------------------------------------------- one solve


@dataclass
class Outcome:
    """What one solve sends back: small and picklable.

    Attributes
    ----------
    variation, seed
        Which solve.
    status
        One of :data:`STATUSES`.
    objective
        Solver objective, caseload x minutes (``None`` without a plan).
    max_deviation_pct
        Largest ``|caseload - target| / target x 100`` over the sectors.
    mean_travel_min
        Caseload-weighted mean travel time from each sector's reference
        point to its communes, minutes.
    groups, sectors_count
        Number of groups and of sectors (workers) in the plan.
    time_s
        Wall time of the solve in the worker, seconds (loading included).
    error
        The message when there is no plan, or the checks' violations.
    kpis
        :func:`sectorize.report.kpi.compute_kpis` of the plan (``{}`` without plan).
    sectors
        :func:`sectorize.store.export.sector_table` of the plan (``None`` without plan).
    plan_parts
        What :meth:`to_plan` needs to rebuild the plan (only when asked for).
    """

    variation: str
    seed: int
    status: str
    objective: float | None = None
    max_deviation_pct: float | None = None
    mean_travel_min: float | None = None
    groups: int | None = None
    sectors_count: int | None = None
    time_s: float = 0.0
    error: str = ""
    kpis: dict[str, Any] = field(default_factory=dict)
    sectors: pd.DataFrame | None = None
    plan_parts: dict[str, Any] | None = None
    index: int = -1

    def row(self) -> dict[str, Any]:
        return {
            "variation": self.variation, "seed": self.seed, "status": self.status,
            "valid": self.status == "ok", "objective": self.objective,
            "max_deviation_pct": self.max_deviation_pct, "mean_travel_min": self.mean_travel_min,
            "groups": self.groups, "sectors": self.sectors_count, "time_s": round(self.time_s, 2),
            "plan_id": "", "error": self.error,
        }

    def to_plan(self, region: Any) -> Plan:
        """Rebuild the full :class:`~sectorize.plan.Plan` with the polygons and graph of ``region``.

        Raises
        ------
        ValueError
            When the outcome kept no plan parts, or ``region`` is not the
            region the plan was solved on (its units hash differs).
        """
        import geopandas as gpd

        from sectorize.plan import Plan
        from sectorize.store.registry import units_hash

        if self.plan_parts is None:
            raise ValueError(f"{self.variation} seed {self.seed}: no plan kept (run the sweep with a registry)")
        parts = self.plan_parts
        if units_hash(region.units) != parts["inputs"].get("units"):
            raise ValueError(f"{self.variation} seed {self.seed}: the region loaded here differs from the one solved "
                             "(units hash); run the sweep where the same region files are installed")
        attrs = parts["units"]
        units = gpd.GeoDataFrame(attrs, geometry=region.units.geometry.reindex(attrs.index), crs=region.units.crs)
        return Plan(scenario=parts["scenario"], units=units, workers=parts["workers"], graph=region.graph,
                    solve=parts["solve"], violations=list(parts["violations"]), notes=list(parts["notes"]),
                    inputs=dict(parts["inputs"]), vintage=parts["vintage"])


def summarize(plan: Plan) -> dict[str, Any]:
    """The headline figures of a plan for a results row (see :class:`Outcome`)."""
    from sectorize.report.kpi import compute_kpis, travel_stats

    kpis = compute_kpis(plan)
    deviations = [abs(s["deviation_pct"]) for s in kpis["sectors"] if s["deviation_pct"] is not None]
    units = plan.units
    return {
        "kpis": kpis,
        "objective": float(plan.solve["objective"]) if plan.solve.get("objective") is not None else None,
        "max_deviation_pct": max(deviations) if deviations else None,
        "mean_travel_min": travel_stats(units["travel_min"].to_numpy(), units["workload"].to_numpy())["mean_min"],
        "groups": int(plan.workers["group"].nunique()),
        "sectors_count": int(len(plan.workers)),
    }


def solve_task(task: SweepTask) -> Outcome:
    """Solve one sweep task and return its :class:`Outcome`; never raises for a failed solve.

    Runs in a worker process (local pool or Dask worker).
    """
    from geodata.demand import DemandError
    from sectorize.store.export import sector_table
    from sectorize.pipeline.run import run
    from solvers import InfeasibleError, NoPlanFoundError

    clock = time.monotonic()
    out = Outcome(task.variation, task.seed, "invalid", error=task.error, index=task.index)
    if task.scenario is None:
        return out
    try:
        plan = run(task.scenario)
        facts = summarize(plan)        # inside the try: a failure here is this scenario's error row,
        sectors = sector_table(plan)   # not the end of a local sweep
    except InfeasibleError as err:  # proven
        out.status, out.error = "infeasible", f"no plan: {err}"
    except NoPlanFoundError as err:  # the time ran out: nothing proven
        out.status, out.error = "no_plan_found", f"no plan found in the time given: {err}"
    except (ScenarioError, DemandError, FileNotFoundError, ValueError) as err:
        out.status, out.error = "error", f"{type(err).__name__}: {err}"
    except Exception as err:  # a bug, not bad input: keep the place for the report
        where = traceback.extract_tb(err.__traceback__)[-1]
        out.status = "error"
        out.error = f"{type(err).__name__}: {err} (at {Path(where.filename).name}:{where.lineno})"
    else:
        out.status = "ok" if plan.valid else "violations"
        out.error = "; ".join(plan.violations[:3])
        out.kpis = facts.pop("kpis")
        for k, v in facts.items():
            setattr(out, k, v)
        out.sectors = sectors
        if task.keep_plan:
            out.plan_parts = {
                "scenario": plan.scenario, "units": pd.DataFrame(plan.units.drop(columns="geometry")),
                "workers": plan.workers, "solve": plan.solve, "violations": plan.violations,
                "notes": plan.notes, "inputs": plan.inputs, "vintage": plan.vintage,
            }
    out.time_s = time.monotonic() - clock
    return out


# --------------------------------------------------------------------------- the sweep


@dataclass
class SweepResult:
    """The answers of a sweep.

    Attributes
    ----------
    sweep
        The sweep that ran.
    table
        One row per solve (variation-major, seeds in file order) with the
        columns :data:`RESULT_COLUMNS`: ``objective`` (caseload x minutes),
        ``max_deviation_pct`` (largest sector caseload deviation from its
        target, %), ``mean_travel_min`` (caseload-weighted, minutes),
        ``time_s`` (seconds per solve), ``plan_id`` (when stored), ``error``.
    outcomes
        The :class:`Outcome` of each row, same order (KPIs, sector tables).
    executor
        ``"sequential"``, ``"processes"`` or ``"dask"``.
    wall_s
        Wall time of the whole sweep, seconds.
    """

    sweep: SweepConfig
    table: pd.DataFrame
    outcomes: list[Outcome]
    executor: str
    wall_s: float

    @property
    def failed(self) -> pd.DataFrame:
        """The rows without a valid plan."""
        return self.table[self.table["status"] != "ok"]

    def outcome(self, variation: str, seed: int) -> Outcome:
        """The outcome of one solve (KPIs in ``.kpis``, sector table in ``.sectors``)."""
        for o in self.outcomes:
            if o.variation == variation and o.seed == seed:
                return o
        raise KeyError(f"no solve for variation {variation!r} seed {seed}; "
                       f"variations: {sorted({o.variation for o in self.outcomes})}, seeds: {self.sweep.seeds}")

    def summary(self) -> pd.DataFrame:
        """Per variation over its seeds: solves ok, best objective, mean of the deviation, travel and time."""
        t = self.table
        ok = t[t["status"] == "ok"]
        order = list(dict.fromkeys(t["variation"]))
        agg = ok.groupby("variation").agg(
            best_objective=("objective", "min"), max_deviation_pct=("max_deviation_pct", "mean"),
            mean_travel_min=("mean_travel_min", "mean"), time_s=("time_s", "mean"),
        )
        counts = t.groupby("variation")["status"].agg(solves="size", ok=lambda s: int((s == "ok").sum()))
        return counts.join(agg).reindex(order).reset_index()


def _default_workers(n_tasks: int) -> int:
    return max(1, min(n_tasks, os.cpu_count() or 1))


def _local(tasks: list[SweepTask], workers: int) -> Iterable[tuple[SweepTask, Outcome]]:
    if workers <= 1:
        for task in tasks:
            yield task, solve_task(task)
        return
    # "spawn": a fresh interpreter per worker (safe with the solver's threads, same on Windows)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(solve_task, task): task for task in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                yield task, future.result()
            except BrokenProcessPool as err:
                yield task, Outcome(task.variation, task.seed, "error", index=task.index,
                                    error=f"the worker process died ({err}); memory may be short: use fewer workers")


def _dask(tasks: list[SweepTask], client: Any) -> Iterable[tuple[SweepTask, Outcome]]:
    from distributed import as_completed as dask_completed

    futures = {}
    run_id = uuid.uuid4().hex[:8]
    for task in tasks:
        key = f"sectorize-sweep-{run_id}-{task.index}"
        futures[client.submit(solve_task, task, key=key, pure=False)] = task
    for future in dask_completed(list(futures)):
        task = futures.pop(future)
        try:
            outcome = future.result()
        except Exception as err:  # worker lost, task not deserialisable on the worker, ...
            outcome = Outcome(task.variation, task.seed, "error", index=task.index,
                              error=f"the Dask task failed: {type(err).__name__}: {err}")
        finally:
            # the result is here: release it, or a worker lost later makes the cluster solve it again
            future.release()
        yield task, outcome


def _store(outcome: Outcome, registry: Registry, sweep: SweepConfig, regions: dict[str, Any]) -> str:
    """Rebuild and store the plan of a valid outcome; return its plan id."""
    from sectorize.pipeline.inputs import load_region

    scenario = outcome.plan_parts["scenario"]
    key = scenario.region.model_dump_json()
    if key not in regions:
        regions[key] = load_region(scenario)
    plan = outcome.to_plan(regions[key])
    return registry.add(plan, note=f"sweep {sweep.name!r}: variation {outcome.variation!r}, seed {outcome.seed}")


def run_sweep(
    sweep: SweepConfig,
    client: Any = None,
    workers: int | None = None,
    registry: Registry | str | Path | None = None,
    progress: Progress | None = None,
) -> SweepResult:
    """Solve every variation x seed of ``sweep``.

    Parameters
    ----------
    sweep
        From :func:`load_sweep` or :func:`sweep_from_dict`.
    client
        A ``dask.distributed.Client``: the solves run on its cluster (each
        worker needs sectorize and the same region files installed). ``None``:
        local processes.
    workers
        Local processes (default: the number of cores, at most the number of
        solves); ``1`` solves one after another in this process. Ignored with
        a ``client``.
    registry
        A :class:`~sectorize.store.registry.Registry` or its folder: each valid
        plan is stored there (from this process only), its id in ``plan_id``.
    progress
        Receives one line per finished solve, e.g.
        ``"[3/12] tolerance 5 % seed 1: ok, deviation 4.8 %, travel 21.3 min, 9.1 s"``.

    Returns
    -------
    SweepResult
        Every solve, failed ones included, in sweep order.

    Raises
    ------
    SweepError
        When the base scenario is invalid (nothing is solved).
    """
    from sectorize.store.registry import Registry, RegistryError

    say = progress or (lambda line: None)
    if isinstance(registry, (str, Path)):
        registry = Registry(registry)
    clock = time.monotonic()
    tasks = expand(sweep, keep_plan=registry is not None)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1 (got {workers})")
    invalid = [t for t in tasks if t.scenario is None]
    runnable = [t for t in tasks if t.scenario is not None]
    if client is not None:
        executor = "dask"
        stream = _dask(runnable, client)
    else:
        n = workers if workers is not None else _default_workers(len(runnable))
        executor = "sequential" if n <= 1 else "processes"
        stream = _local(runnable, n)
    outcomes: dict[int, Outcome] = {}
    plan_ids: dict[int, str] = {}
    regions: dict[str, Any] = {}
    total = len(tasks)

    def finish(task: SweepTask, outcome: Outcome) -> None:
        outcome.index = task.index
        if registry is not None and outcome.status == "ok":
            try:
                plan_ids[task.index] = _store(outcome, registry, sweep, regions)
            except (RegistryError, ValueError, FileNotFoundError) as err:
                outcome.error = f"plan not stored: {err}"
        outcome.plan_parts = None  # the plan is stored; keep the result small
        outcomes[task.index] = outcome
        say(f"[{len(outcomes)}/{total}] {_line(outcome)}")

    for task in invalid:
        finish(task, solve_task(task))
    for task, outcome in stream:
        finish(task, outcome)
    ordered = [outcomes[t.index] for t in tasks]
    rows = [o.row() | {"plan_id": plan_ids.get(o.index, "")} for o in ordered]
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    table = table.astype({"seed": "int64", "valid": "bool", "objective": "float64", "max_deviation_pct": "float64",
                          "mean_travel_min": "float64", "groups": "Int64", "sectors": "Int64", "time_s": "float64"})
    return SweepResult(sweep, table, ordered, executor, time.monotonic() - clock)


def _line(o: Outcome) -> str:
    head = f"{o.variation} seed {o.seed}: {o.status}"
    if o.status in ("ok", "violations"):
        dev = f"{o.max_deviation_pct:.1f} %" if o.max_deviation_pct is not None else "-"
        travel = f"{o.mean_travel_min:.1f} min" if o.mean_travel_min is not None else "-"
        head += f", max deviation {dev}, mean travel {travel}, {o.time_s:.1f} s"
    if o.error:
        head += f" ({o.error.splitlines()[0]})"
    return head


def write_results(result: SweepResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write the results table (French Excel CSV) and every solve's KPIs (JSON) into ``out_dir``.

    Files ``sweep-<YYYYmmdd-HHMMSS>.csv`` and ``.json`` (never overwriting an
    earlier sweep), each written atomically. Returns both paths.
    """
    import json
    from datetime import datetime

    from sectorize.store.atomic import atomic_write_text
    from sectorize.store.export import csv_booleans
    from sectorize.report.kpi import jsonable

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    stem, n = f"sweep-{stamp}", 1
    while (out / f"{stem}.csv").exists() or (out / f"{stem}.json").exists():
        n += 1
        stem = f"sweep-{stamp}-{n}"
    csv_path, json_path = out / f"{stem}.csv", out / f"{stem}.json"
    text = csv_booleans(result.table).to_csv(sep=";", decimal=",", index=False)  # booleans 1/0, as every French CSV
    atomic_write_text(csv_path, text, encoding="utf-8-sig")
    facts = {
        "sweep": result.sweep.name, "source": result.sweep.source, "executor": result.executor,
        "wall_s": round(result.wall_s, 2), "rows": result.table.to_dict(orient="records"),
        "kpis": [{"variation": o.variation, "seed": o.seed, "kpis": o.kpis} for o in result.outcomes],
    }
    atomic_write_text(json_path, json.dumps(jsonable(facts), ensure_ascii=False, indent=1))
    return csv_path, json_path
