"""Bring an existing assignment (today's hand-made plan) in as a full, checked plan.

The baseline every re-run is compared with is usually a spreadsheet: one row
per commune with its sector, sometimes its worker. :func:`import_plan` reads
it (:func:`geodata.tables.read_table`: CSV in French office conventions,
Excel workbooks, Parquet), lays it on the scenario's
region, maps each sector to a worker of the team, gives each sector a group,
and builds the plan with the same code as ``sectorize run``
(:func:`sectorize.pipeline.assemble.assemble`): travel times from each
sector's centre commune (the commune that minimises the caseload-weighted
travel to the others) and from the worker's base, caseloads from the
scenario's demand and weights, the independent checks. The plan then writes
a run folder (:func:`import_and_write`: KPIs, map, ``sectors.csv``, ...) and
goes to the registry like any other (which checks it once more).

Table rules (every problem of the file is reported at once, each naming the
file, line and column; nothing is written when there is one):

* ``key``: the INSEE code of each commune; every commune of the region once.
  A code that lost its leading zero (``1001``) is read as ``01001``; the code
  of a merged commune is read as its current commune
  (:func:`geodata.codes.current_code`); Lyon ``69123`` stands for its nine
  arrondissements when the region has them (and arrondissements for Lyon when
  it does not, if they agree). A code twice, a code of no commune of the
  region, a commune missing, an empty sector: errors.
* ``sector``: the sector of each commune. Without ``worker``, each sector
  value must be a worker of the team, by id or by name; with ``worker``, each
  sector has one worker (the same on every row) and each worker one sector.
  Every worker of the team needs a sector.
* ``group`` (optional): the territorial group of each sector (one of
  ``groups.names``). Without it, the team's fixed groups are used, and the
  other sectors are split into ``groups.count`` contiguous groups within the
  group tolerance, as ``sectorize run`` groups its sectors
  (:func:`solvers.nested.group_sectors`).

Example
-------
>>> from sectorize.config.scenario import default_scenario                    # doctest: +SKIP
>>> result = import_plan("secteurs-2026.csv", default_scenario(), sector="Secteur", worker="TS")  # doctest: +SKIP
>>> result.plan.violations, result.notes[:1]                                   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from geodata.codes import current_code
from geodata.demand import find_column
from geodata.regions import LYON
from geodata.tables import TableError, as_text, read_table
from sectorize.config.scenario import Scenario
from sectorize.pipeline.assemble import assemble
from sectorize.pipeline.inputs import Inputs, Progress, keep_together_units, load_inputs, load_region
from sectorize.pipeline.run import timed
from sectorize.plan import Plan
from solvers.nested import NestedSolution, group_sectors, together_sets

#: Problems listed in an error message before "... and N more".
SHOWN_PROBLEMS = 25

_INSEE = re.compile(r"^(\d{5}|2[AB]\d{3})$")


class ImportTableError(ValueError):
    """The assignment table cannot be imported; the message lists every problem (file, line, column)."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path, self.problems = path, list(problems)
        shown = problems[:SHOWN_PROBLEMS]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__(f"{path}: {len(problems)} problem(s) in the assignment table; nothing was imported:\n"
                         + "\n".join(f"  - {p}" for p in shown) + more)


@dataclass
class ImportResult:
    """What :func:`import_plan` returns: the plan (checked: ``plan.violations``), and notes on
    how the table was read (repairs, codes mapped, how groups were given)."""

    plan: Plan
    notes: list[str] = field(default_factory=list)


def _column(headers: list[str], spec: str, option: str, place: str, header: str) -> str:
    found = find_column(headers, spec)
    if len(found) == 1:
        return found[0]
    what = "no column" if not found else f"several columns {found}"
    raise ImportTableError(place, [f"{header}: {what} match {option} {spec!r}; the columns are {headers} "
                                   "(a name, a pattern such as 'Secteur*', or a position such as '#2')"])


def read_assignment(path: str | Path, region_keys: pd.Index, *, key: str = "insee", sector: str = "sector",
                    worker: str | None = None, group: str | None = None,
                    sheet: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The assignment table laid on the region: one row per unit of ``region_keys``.

    Returns ``(table, notes)``: ``table`` indexed by unit key with the text
    columns ``sector``, ``line`` (the spreadsheet line or row it came from)
    and, when asked, ``worker`` and ``group``. ``sheet`` names the worksheet
    of an Excel workbook (default: the first visible one).

    Raises
    ------
    ImportTableError
        Every problem at once: unknown, malformed, duplicated or missing
        codes, empty cells, each with its file, line and column.
    """
    path = Path(path)
    try:
        raw = read_table(path, "assignment table", sheet=sheet)
    except TableError as err:
        raise ImportTableError(path, [str(err)]) from None
    place = raw.place(path) if hasattr(raw, "place") else str(path)
    header = f"{raw.unit} {getattr(raw, 'header_line', 1)} (header)"
    headers = list(map(str, raw.frame.columns))
    columns = {"key": _column(headers, key, "--key", place, header),
               "sector": _column(headers, sector, "--sector", place, header)}
    if worker is not None:
        columns["worker"] = _column(headers, worker, "--worker", place, header)
    if group is not None:
        columns["group"] = _column(headers, group, "--group", place, header)
    unit = raw.unit
    problems: list[str] = []
    notes: list[str] = []
    keys = set(region_keys)
    arrondissements = [k for k in region_keys if k.startswith("6938") and len(k) == 5]

    def at(line: int, what: str) -> str:
        return f"{unit} {line}, column {columns[what]!r}"

    direct: dict[str, dict] = {}      # unit -> row
    mapped: dict[str, list[dict]] = {}  # unit -> rows of codes standing for it
    zeros = 0
    for i, line in enumerate(raw.lines):
        cells = {what: as_text(raw.frame.iloc[i][column]) for what, column in columns.items()}
        code = cells["key"].upper()
        row = {"line": int(line), "code": code, **{k: v for k, v in cells.items() if k != "key"}}
        if code == "":
            problems.append(f"{at(line, 'key')}: the INSEE code is empty (sector {cells['sector']!r})")
            continue
        if cells["sector"] == "":
            problems.append(f"{at(line, 'sector')}: commune {code} has no sector")
        for what in ("worker", "group"):
            if what in cells and cells[what] == "":
                problems.append(f"{at(line, what)}: commune {code} (sector {cells['sector']!r}) has no {what}")
        if code not in keys and re.fullmatch(r"\d{4}", code) and "0" + code in keys:
            code, row["code"] = "0" + code, "0" + code
            zeros += 1
        if code in keys:
            if code in direct:
                problems.append(f"{at(line, 'key')}: commune {code} appears twice ({unit}s "
                                f"{direct[code]['line']} and {line}); give each commune one row")
                continue
            direct[code] = row
            continue
        if code == LYON and arrondissements:
            for arr in arrondissements:
                mapped.setdefault(arr, []).append({**row, "via": "Lyon 69123 stands for its arrondissements"})
            continue
        match = current_code(code)
        if match.current is not None and match.current in keys and match.status in ("changed", "arrondissement"):
            why = ("a Lyon arrondissement, the region has Lyon as one commune" if match.status == "arrondissement"
                   else f"old code of {match.current} {match.current_name}")
            mapped.setdefault(match.current, []).append({**row, "via": why})
            continue
        if not _INSEE.match(code):
            problems.append(f"{at(line, 'key')}: {code!r} is not an INSEE code (5 characters, e.g. '01001')")
        else:
            problems.append(f"{at(line, 'key')}: {code} is not a commune of the region ({len(keys):,} units); "
                            "check the code (a commune of another region?) or the scenario's region")
    if zeros:
        notes.append(f"{zeros} INSEE code(s) had lost their leading zero (e.g. 1001 read as 01001)")
    via_notes = []
    for target, rows in mapped.items():
        sectors = {r["sector"] for r in rows}
        if target in direct:
            if {direct[target]["sector"]} != sectors:
                problems.append(
                    f"{at(rows[0]['line'], 'key')}: {rows[0]['code']} ({rows[0]['via']}) is in sector "
                    f"{rows[0]['sector']!r}, but {target} itself ({unit} {direct[target]['line']}) is in "
                    f"{direct[target]['sector']!r}")
            continue
        if len(sectors) > 1:
            listing = ", ".join(f"{r['code']} ({unit} {r['line']}): {r['sector']!r}" for r in rows)
            problems.append(f"{at(rows[0]['line'], 'key')}: {len(rows)} codes stand for unit {target} but name "
                            f"different sectors ({listing}); give {target} one sector")
            continue
        direct[target] = rows[0]
        via_notes.append(f"{rows[0]['code']} -> {target}")
    if via_notes:
        notes.append(f"{len(via_notes)} unit(s) of the region take the sector of another code of the table "
                     f"(old codes of merged communes, Lyon and its arrondissements), e.g. {via_notes[:5]}")
    missing = [k for k in region_keys if k not in direct]
    if missing:
        problems.append(f"{len(missing):,} commune(s) of the region are missing from the table, e.g. "
                        f"{missing[:10]}; add one row per commune with its sector")
    if problems:
        raise ImportTableError(place, problems)
    table = pd.DataFrame.from_dict(direct, orient="index").reindex(region_keys)
    table.attrs["unit"], table.attrs["place"] = unit, place
    notes.insert(0, f"assignment read from {place}: {len(raw.lines):,} {unit}(s), columns "
                    + ", ".join(f"{what} = {col!r}" for what, col in columns.items()))
    return table, notes


def _sector_workers(table: pd.DataFrame, scenario: Scenario, path: str, unit: str, by_worker: bool
                    ) -> dict[str, int]:
    """Worker index (team order) of each sector value; every problem raised at once."""
    workers = scenario.team.workers
    ids = [w.id for w in workers]
    problems: list[str] = []
    owner: dict[str, int] = {}
    first_line = table.groupby("sector")["line"].min()
    if by_worker:
        for sector_value, rows in table.groupby("sector", sort=False):
            named = sorted(set(rows["worker"]))
            unknown = [w for w in named if w not in ids]
            if unknown:
                line = int(rows.loc[rows["worker"] == unknown[0], "line"].min())
                problems.append(f"{unit} {line}: worker {unknown[0]!r} (sector {sector_value!r}) is not in the team "
                                f"({', '.join(ids)}); fix the table or give the team with --team")
            elif len(named) > 1:
                lines = {w: int(rows.loc[rows["worker"] == w, "line"].min()) for w in named}
                problems.append(f"{unit} {lines[named[1]]}: sector {sector_value!r} names {len(named)} workers "
                                f"({', '.join(f'{w} from {unit} {n}' for w, n in lines.items())}); "
                                "one worker per sector")
            else:
                owner[str(sector_value)] = ids.index(named[0])
    else:
        folded = {w.name.casefold().strip(): i for i, w in enumerate(workers)}
        for sector_value in first_line.index:
            value = str(sector_value)
            index = ids.index(value) if value in ids else folded.get(value.casefold().strip())
            if index is None:
                problems.append(f"{unit} {int(first_line[sector_value])}: sector {value!r} is not a worker of the "
                                f"team ({', '.join(ids)}); give the worker of each row with --worker COLUMN, or "
                                "name sectors by worker id or name")
            else:
                owner[value] = index
    by_index: dict[int, list[str]] = {}
    for value, index in owner.items():
        by_index.setdefault(index, []).append(value)
    for index, values in by_index.items():
        if len(values) > 1:
            problems.append(f"worker {ids[index]} has {len(values)} sectors ({', '.join(map(repr, values))}, from "
                            f"{unit}s {', '.join(str(int(first_line[v])) for v in values)}); one sector per worker")
    if not problems:
        idle = [f"{w.id} ({w.name})" for i, w in enumerate(workers) if i not in by_index]
        if idle:
            problems.append(f"worker(s) {', '.join(idle)} of the team have no sector in the table; give each a "
                            "sector, or give the team the table was made for with --team")
    if problems:
        raise ImportTableError(path, problems)
    return owner


def _centres(inputs: Inputs, sector: np.ndarray) -> np.ndarray:
    """Centre unit of each worker's sector: the unit minimising the caseload-weighted travel to the others."""
    centre = np.empty(len(inputs.team.fte), dtype=np.intp)
    weight = inputs.cost_weight
    for w in range(len(centre)):
        members = np.flatnonzero(sector == w)
        rows = inputs.travel.rows(members)[:, members]
        centre[w] = members[int(np.argmin(rows @ weight[members]))]
    return centre


def import_plan(path: str | Path, scenario: Scenario, *, key: str = "insee", sector: str = "sector",
                worker: str | None = None, group: str | None = None, sheet: str | None = None,
                progress: Progress | None = None) -> ImportResult:
    """The plan of an assignment table on the scenario's region, team and demand (see the module).

    Parameters
    ----------
    path
        The table (CSV, Parquet, ...: :func:`geodata.tables.read_table`).
    scenario
        Region, demand and weights, team, groups and tolerances to lay the
        table on (``--team`` has already replaced its team, if given).
    key, sector, worker, group
        Column specs (:func:`geodata.demand.find_column`: a header, a pattern
        such as ``"Secteur*"`` or a position ``"#2"``): INSEE code, sector,
        optional worker id, optional group.
    sheet
        The worksheet of an Excel workbook (default: the first visible one).

    Returns
    -------
    ImportResult
        ``plan.violations`` lists the checks the plan fails (a hand-made plan
        may be out of tolerance); ``plan.solve`` says it was imported.

    Raises
    ------
    ImportTableError
        The table's problems, each with file, line and column.
    """
    step = timed(progress)
    path = Path(path)
    # the table first: its problems are reported before the travel times are computed
    keys = load_region(scenario).units.index
    table, notes = read_assignment(path, keys, key=key, sector=sector, worker=worker, group=group, sheet=sheet)
    unit, place = table.attrs["unit"], table.attrs["place"]
    owner = _sector_workers(table, scenario, place, unit, worker is not None)
    inputs = load_inputs(scenario, step)
    sector_of = table["sector"].astype(str).map(owner).to_numpy(dtype=np.intp)
    names = list(scenario.groups.names)
    n_workers = len(inputs.team.fte)
    label = {index: value for value, index in owner.items()}
    worker_group = _worker_groups(inputs, table, owner, sector_of, group is not None, place, unit, notes)
    centre = _centres(inputs, sector_of)
    minutes = inputs.travel.rows(centre)[sector_of, np.arange(len(keys))]
    objective = float((inputs.cost_weight * minutes).sum())
    nested = NestedSolution(
        group=worker_group[sector_of], sector=sector_of, worker_group=worker_group, centre=centre,
        objective=objective, solutions=[], strategy="imported", time_s=0.0,
        log=[f"imported from {path}"],
    )
    plan = assemble(inputs, nested, sector_names=[label[i] for i in range(n_workers)])
    plan.solve.update(backend="imported", status="imported", source=str(path.resolve()))
    for fact in ("time_limit_s", "tie_break"):  # no solve
        plan.solve.pop(fact, None)
    plan.inputs["assignment"] = hashlib.sha256(path.read_bytes()).hexdigest()
    plan.notes.extend(notes)
    step(f"imported {path.name}: {len(owner)} sectors, groups "
         + ", ".join(f"{names[g]} = {int((worker_group == g).sum())} sectors" for g in range(len(names)))
         + "; checks: " + ("all passed" if not plan.violations else f"{len(plan.violations)} violation(s)"))
    return ImportResult(plan, notes)


def _worker_groups(inputs: Inputs, table: pd.DataFrame, owner: dict[str, int], sector_of: np.ndarray,
                   by_column: bool, path: str, unit: str, notes: list[str]) -> np.ndarray:
    """Group index of each worker: from the table's group column, else the team's fixed groups
    and the grouping ``sectorize run`` would make of these sectors."""
    scenario, team = inputs.scenario, inputs.team
    names = list(scenario.groups.names)
    n_workers = len(team.fte)
    if by_column:
        problems = []
        groups = np.full(n_workers, -1, dtype=np.intp)
        for sector_value, rows in table.groupby("sector", sort=False):
            named = sorted(set(rows["group"]))
            index = owner[str(sector_value)]
            unknown = [g for g in named if g not in names]
            if unknown:
                line = int(rows.loc[rows["group"] == unknown[0], "line"].min())
                problems.append(f"{unit} {line}: group {unknown[0]!r} (sector {sector_value!r}) is not a group of "
                                f"the scenario ({', '.join(names)}; groups.names)")
            elif len(named) > 1:
                problems.append(f"sector {sector_value!r} is in {len(named)} groups ({', '.join(named)}); a sector "
                                "lies in one group")
            else:
                groups[index] = names.index(named[0])
                fixed = team.fixed_group[index]
                if fixed is not None and fixed != groups[index]:
                    problems.append(f"sector {sector_value!r}: group {named[0]!r} in the table, but its worker "
                                    f"{team.ids[index]} has group {names[fixed]!r} in the team")
        if problems:
            raise ImportTableError(path, problems)
        notes.append("groups: from the table")
        return groups
    if all(g is not None for g in team.fixed_group):
        notes.append("groups: each worker's group in the team")
        return np.array(team.fixed_group, dtype=np.intp)
    model = scenario.model
    together = together_sets(inputs.graph, keep_together_units(scenario, inputs.region)) if len(names) > 1 else []
    groups = (np.zeros(n_workers, dtype=np.intp) if len(names) == 1 else
              group_sectors(inputs.graph, sector_of, inputs.workload, team.fte, len(names), model.group_tolerance,
                            list(team.fixed_group), together=together))
    if groups is None:
        raise ImportTableError(path, [
            f"no split of these sectors into {len(names)} contiguous groups within ±{model.group_tolerance:.0%} of "
            "their caseload targets exists; give the group of each row with --group COLUMN, or set the workers' "
            "groups in the team (group = ...), or groups.count / model.group_tolerance in the scenario"])
    notes.append(f"groups: {len(names)} contiguous groups within ±{model.group_tolerance:.0%} drawn from the "
                 "sectors (as `sectorize run` groups its sectors); give --group COLUMN to impose them")
    return np.asarray(groups, dtype=np.intp)


def import_and_write(path: str | Path, scenario: Scenario, *, progress: Progress | None = None,
                     allow_invalid: bool = False, effective_from=None, **columns) -> tuple[Path, ImportResult]:
    """:func:`import_plan`, then the plan's run folder under ``scenario.output.dir``
    (:func:`sectorize.store.export.write_outputs`, with the map).

    Raises :class:`ValueError` before anything is written when the plan fails
    the checks and ``allow_invalid`` is false, or it is to be published
    (``effective_from`` given: an invalid plan is never published).
    """
    from sectorize.report.maps import sector_map
    from sectorize.store.export import write_outputs

    say = progress or (lambda line: None)
    result = import_plan(path, scenario, progress=say, **columns)
    plan = result.plan
    shown = "; ".join(plan.violations[:5]) + (f"; ... ({len(plan.violations)} in all)"
                                                if len(plan.violations) > 5 else "")
    if plan.violations and effective_from is not None:
        raise ValueError(f"{path}: the imported plan fails the independent checks ({shown}) and an invalid plan "
                         "is never published; nothing was written. Fix the table, or import it without "
                         "--effective-from (with --allow-invalid) as a baseline to re-run from")
    if plan.violations and not allow_invalid:
        raise ValueError(f"{path}: the imported plan fails the independent checks ({shown}); nothing was written. "
                         "Fix the table, or pass --allow-invalid to keep it as a baseline marked invalid (never "
                         "published nor routed, but a re-run can start from it)")
    say("drawing the map")
    page = sector_map(plan, tiles=scenario.map.tiles, simplify_m=scenario.map.simplify_m,
                      suppress_below=scenario.map.suppress_below).get_root().render()
    folder = write_outputs(plan, scenario.output.dir, map_html=page)
    return folder, result
