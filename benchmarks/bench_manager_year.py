"""The manager's year, end to end with the real commands: raw exports in, a re-run out.

Two SYNTHETIC hospital exports of the whole region (aggregated counts per
commune, never patient records), written by ``tests/messy_export.py`` with
every defect of a real export: Latin-1, ``;``, headers carrying the year
(``Nb signalements 2025`` then ``... 2026``), codes that lost their leading
zero, Lyon both as 69123 and as arrondissements, merged commune codes,
out-of-region rows, subtotal and ``TOTAL`` rows. The second year has
+15 % demand in Isère and -10 % in Rhône, one worker down to 0.8 FTE and one
leaving with a named successor. The script runs, each in a fresh process:

1. ``sectorize validate`` without ``--repair`` (must exit 2 and report
   every kind of problem in one pass);
2. ``sectorize validate --repair`` (must exit 0);
3. ``sectorize run --repair`` on year one (columns found by pattern);
4. ``sectorize rerun --repair`` with year two's file (other headers) and
   team, with the trade-off table (caps of 0, 1, 2 and 5 % and a re-solve
   from scratch).

Usage::

    python benchmarks/bench_manager_year.py [--time-limit 30] [--seed 1] [--json PATH]

Prints a table and writes JSON (default ``benchmarks/results/manager_year.json``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, finish, fmt, markdown_table, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from messy_export import write_messy_export  # noqa: E402

#: Year two's demand multiplier per department (Isère +15 %, Rhône -10 %).
YEAR_TWO = {"38": 1.15, "69": 0.90}

SCENARIO = """\
name = "Manager's year (synthetic export)"
[region]
variant = "lyon_arrondissements"
[demand]
source = "file"
file = "export_2025.csv"
[demand.columns]
referrals = "Nb signalements *"
home_care = "Patients HAD *"
follow_up = "Suivis actifs *"
[model]
time_limit_s = {time_limit}
seed = {seed}
"""


def _team(changed: bool) -> str:
    """The packaged default team; in year two TS03 goes to 0.8 FTE and TS12 replaces TS05."""
    from sectorize.config.scenario import default_scenario

    lines = ['[team]', 'default_base = "69388"']
    for worker in default_scenario().team.workers:
        wid, name, fte = worker.id, worker.name, worker.fte
        if changed and wid == "TS03":
            fte = 0.8
        if changed and wid == "TS05":
            wid, name = "TS12", "Travailleur social 12 (remplace TS05)"
        lines += ["[[team.workers]]", f'id = "{wid}"', f'name = "{name}"', f"fte = {fte}"]
    if changed:
        lines += ["[rerun]", 'handover = { TS05 = "TS12" }', "frontier = [0.0, 1.0, 2.0, 5.0]"]
    return "\n".join(lines) + "\n"


def _sectorize(folder: Path, *args: str) -> tuple[int, str, str, float]:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "sectorize.cli", *args], cwd=folder, capture_output=True,
                          text=True, check=False)
    return done.returncode, done.stdout, done.stderr, time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=30.0, help="model.time_limit_s of each solve")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic exports and of the solver")
    parser.add_argument("--json", type=Path, default=RESULTS / "manager_year.json")
    args = parser.parse_args(argv)

    from geodata.regions import load_aura

    region = load_aura()
    rows, facts = [], {}
    with tempfile.TemporaryDirectory(prefix="manager-year-") as tmp:
        folder = Path(tmp)
        first = write_messy_export(folder / "export_2025.csv", region, year=2025, seed=args.seed, communes=None)
        second = write_messy_export(folder / "export_2026.csv", region, year=2026, seed=args.seed + 1,
                                    communes=None, factors=YEAR_TWO)
        (folder / "scenario.toml").write_text(SCENARIO.format(time_limit=args.time_limit, seed=args.seed)
                                              + _team(False), encoding="utf-8")
        (folder / "team_2026.toml").write_text(_team(True), encoding="utf-8")
        facts["export_rows"] = {"2025": len(first.by_commune), "2026": len(second.by_commune)}
        facts["defects_2025"] = sorted({str(kind) for _, kind, _ in first.defects})

        code, out, err, seconds = _sectorize(folder, "validate", "--config", "scenario.toml")
        kinds = [k for k in ("leading zero", "total", "Lyon", "old", "outside") if re.search(k, err, re.I)]
        rows.append(["validate (no repair)", code, fmt(seconds, ".1f"), f"{len(kinds)} kinds of problem reported: "
                     + ", ".join(kinds)])
        facts["validate"] = {"exit": code, "kinds": kinds, "stderr_head": err[:2000]}

        code, out, err, seconds = _sectorize(folder, "validate", "--config", "scenario.toml", "--repair")
        rows.append(["validate --repair", code, fmt(seconds, ".1f"), ""])
        facts["validate_repair"] = {"exit": code}

        code, out, err, seconds = _sectorize(folder, "run", "--config", "scenario.toml", "--repair", "--out", "out")
        run = (folder / "out" / "LATEST").read_text().strip() if code in (0, 1) else ""
        notes = json.loads((folder / "out" / run / "run.json").read_text(encoding="utf-8"))["notes"] if run else []
        repairs = [n.split(" row(s):")[0] for n in notes if n.startswith("demand repaired")]
        week = re.search(r"referrals[^\n]*?: ([\d\u202f\u00a0 ,.]+) per year, ([\d ,.]+) per week", out)
        rows.append(["run --repair (year one)", code, fmt(seconds, ".1f"),
                     f"{len(repairs)} kinds of repair listed (stderr, run.json); new referrals per week: "
                     f"{week.group(2).strip() if week else '—'}"])
        facts["run"] = {"exit": code, "seconds": seconds, "repairs": repairs, "folder": run,
                        "referrals_line": week.group(0) if week else None}

        if run:
            code, out, err, seconds = _sectorize(folder, "rerun", "--previous", f"out/{run}", "--demand",
                                                 "export_2026.csv", "--team", "team_2026.toml", "--repair",
                                                 "--out", "out")
            latest = (folder / "out" / "LATEST").read_text().strip() if code in (0, 1) else ""
            summary = (json.loads((folder / "out" / latest / "rerun.json").read_text(encoding="utf-8"))
                       if latest else {})
            frontier = []
            if latest and (folder / "out" / latest / "frontier.csv").is_file():
                import pandas as pd

                table = pd.read_csv(folder / "out" / latest / "frontier.csv", sep=";", encoding="utf-8-sig",
                                    decimal=",")
                frontier = table[["option", "feasible", "moved_pct", "moved_communes",
                                  "mean_travel_min"]].to_dict("records")
            fresh = next((r for r in frontier if r["option"] == "re-solve from scratch"), None)
            rows.append(["rerun --repair (year two)", code, fmt(seconds, ".1f"),
                         f"step '{summary.get('step', '—')}', {fmt(summary.get('moved_pct'), '.2f')} % of patients in "
                         f"follow-up moved ({summary.get('moved_communes', '—')} communes); from scratch: "
                         f"{fmt(fresh['moved_pct'], '.2f') if fresh and fresh['feasible'] else '—'} %"])
            facts["rerun"] = {"exit": code, "seconds": seconds, "summary": summary, "frontier": frontier}

    table = markdown_table(["step", "exit", "seconds", "result"], [[str(c) for c in r] for r in rows])
    write_result(args.json, {"time_limit_s": args.time_limit, "seed": args.seed, "rows": rows, "facts": facts},
                 benchmark="manager_year", script=__file__, argv=argv)
    return finish(args.json, table)


if __name__ == "__main__":
    sys.exit(main())
