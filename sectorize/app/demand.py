"""Check this year's counts uploaded from the studio, exactly as ``sectorize validate`` would.

The manager uploads a CSV or XLSX of counts per commune (one row per commune,
one column per measure: referrals/year, home-care patients, ...). The file is
checked against the plan in force: its scenario with ``demand.source = "file"``
and the uploaded file, by :func:`sectorize.pipeline.validate.check_inputs`
(the reader of :func:`geodata.demand.read_demand`: codes, counts, duplicated
rows, patient-level columns, codes outside the region, the columns the
caseload weights need). The page gets every problem at once, each with its
spreadsheet line (header = line 1) and column, so the manager can fix the
file in Excel and upload it again.

A file of patient records is refused: a column such as ``NIR``, ``IPP`` or
``date_naissance`` is a "patient-level column", and a code given on several
rows (one row per patient) is a "duplicated code" whose message says to
aggregate the counts first. Nothing of a refused file is kept.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from sectorize.config.scenario import scenario_from_dict
from sectorize.pipeline.validate import check_inputs

#: Problems listed in the answer (the first ones in file order); the count says how many there are.
MAX_PROBLEMS = 200


def check_upload(stored: Any, path: str | Path, *, sheet: str | None = None) -> dict[str, Any]:
    """Check an uploaded demand file against the scenario of ``stored`` (the plan in force).

    Parameters
    ----------
    stored
        The plan in force (:class:`sectorize.store.registry.StoredPlan`).
    path
        The uploaded file (CSV, ``.xlsx``).
    sheet
        Sheet of a workbook (default: the first visible one).

    Returns
    -------
    dict
        ``ok``; ``problems``: ``[{"row", "column", "message", "kind"}]`` (``row``
        = spreadsheet line, header = 1, or ``None`` for a problem of the whole
        file); ``problem_count``; ``totals``: per demand column, the regional
        total (counts/year as in the file); ``communes``: communes with a
        count; ``notes``: repairs and exclusions the reader reports;
        ``caseload``: total caseload (caseload units).
    """
    data = tomllib.loads(stored.scenario_toml)
    demand = dict(data.get("demand", {}))
    demand.update(source="file", file=str(Path(path)))
    if sheet:
        demand["sheet"] = sheet
    else:
        demand.pop("sheet", None)
    data["demand"] = demand
    scenario = scenario_from_dict(data)
    check = check_inputs(scenario)
    problems: list[dict[str, Any]] = []
    count = 0
    for err in check.errors:
        table = getattr(err, "problems", None)
        if table is not None and len(table):
            count += len(table)
            for row in table.head(MAX_PROBLEMS).to_dict("records"):
                line = row.get("line")
                problems.append({"row": int(line) if line is not None and str(line).isdigit() else None,
                                 "column": str(row.get("column") or "") or None,
                                 "kind": str(row.get("kind", "")), "message": str(row.get("message", ""))})
        else:
            count += 1
            problems.append({"row": None, "column": None, "kind": type(err).__name__,
                             "message": str(err).replace(str(Path(path).parent) + "/", "")})
    answer: dict[str, Any] = {"ok": check.ok, "problems": problems, "problem_count": count,
                              "totals": {}, "communes": 0, "notes": [], "caseload": None, "upload": None}
    if check.demand is not None:
        table = check.demand.table
        answer["totals"] = {str(c): round(float(table[c].sum()), 2) for c in table.columns}
        answer["communes"] = int((table.sum(axis=1) > 0).sum())
        answer["notes"] = [str(n).replace(str(Path(path).parent) + "/", "") for n in check.demand.notes]
    if check.load is not None:
        answer["caseload"] = round(float(check.load.sum()), 2)
    return answer
