"""Plans that make sense on the ground: the default scenario with and without each option of issue 18.

Runs the packaged default scenario (AURA, 11 workers, ±10 %) once per variant, all with the same seed
and time limit (``--time-limit``, backend ``auto``), and reports side by side what each option costs
and buys:

* ``model.territory_measure`` / ``territory_factor``: each worker's territory capped at a multiple of
  the region's mean per FTE x her FTE (communes or km²);
* ``groups.keep_together``: Lyon's 9 arrondissements in one group;
* ``model.objective = "auto"``: travel from the workers' own bases when every worker has one (a
  variant of the default with the fictitious home bases of ``notebooks/02_compare_scenarios.ipynb``).

Per run: the objective (caseload-weighted minutes, with the sparse-area floor, as the solver counts
it), its price against the reference ("all off", or "own bases: pmedian" for the bases pair) in
caseload-minutes and %, caseload-minutes from the sector centres and from the workers' bases, the
largest sector in communes and in km², the 0.5 FTE worker's territory, the longest trip (minutes from
the sector's reference point), whether Lyon is in one group, the independent check. Every figure is
recomputed from the plan's tables.

Usage::

    python benchmarks/bench_ground.py                       # 30 s per run, seed 0: 9 runs, about 6 min
    python benchmarks/bench_ground.py --time-limit 10 --variants "all off,Lyon in one group" --out /tmp/g.json

The table goes to stdout; the rows and the command line to ``benchmarks/results/ground.json``
(written after every run, atomically; use ``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


import sectorize
from sectorize.config.scenario import Scenario, default_scenario
from sectorize.pipeline.inputs import LYON_ARRONDISSEMENTS, load_region

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    RESULTS, YES_NO, command_line, finish, fmt, machine_line, markdown_table, timestamp, write_rows,
)

DEFAULT_OUT = RESULTS / "ground.json"

#: Fictitious home communes, one per worker (those of notebooks/02_compare_scenarios.ipynb).
HOMES = {"TS01": "69383", "TS02": "69266", "TS03": "69259", "TS04": "69034", "TS05": "69029", "TS06": "69256",
         "TS07": "38544", "TS08": "38053", "TS09": "69264", "TS10": "42218", "TS11": "38185"}

#: Everything issue 18 added, turned off: the plans of before.
OFF = {"model.territory_measure": "none", "groups.keep_together": [], "model.objective": "pmedian"}


def at_home(scenario: Scenario) -> Scenario:
    """``scenario`` with every worker based at her fictitious home (:data:`HOMES`)."""
    for worker, home in HOMES.items():
        scenario = scenario.with_worker(worker, base=home)
    return scenario


def variants() -> dict[str, tuple[dict, str]]:
    """``{name: (changes to the default scenario, reference variant of its price)}``, in run order.
    The changes are applied to the default, or to :func:`at_home` of it for names starting ``own bases``."""
    return {
        "all off": (OFF, "all off"),
        "cap: communes x2.5": ({**OFF, "model.territory_measure": "communes"}, "all off"),
        "cap: km² x2.5": ({**OFF, "model.territory_measure": "area_km2"}, "all off"),
        "Lyon in one group": ({**OFF, "groups.keep_together": None}, "all off"),
        "defaults (communes x2.5 + Lyon)": ({}, "all off"),
        "defaults with factor 2.0": ({"model.territory_factor": 2.0}, "all off"),
        "defaults with factor 3.0": ({"model.territory_factor": 3.0}, "all off"),
        "own bases: pmedian": ({"model.objective": "pmedian"}, "own bases: pmedian"),
        "own bases: auto (= base)": ({}, "own bases: pmedian"),
    }


def scenario_of(name: str, changes: dict, time_limit: float, seed: int) -> Scenario:
    base = default_scenario().with_(**{"model.time_limit_s": time_limit, "model.seed": seed})
    if name.startswith("own bases"):
        base = at_home(base)
    changes = dict(changes)
    if changes.get("groups.keep_together", "unset") is None:  # back to the default (Lyon): drop the key
        changes.pop("groups.keep_together")
    return base.with_(**changes)


def ground_facts(plan, area_km2) -> dict:
    """The figures of one plan, from its tables: objective, caseload-minutes from centres and bases, the
    largest sector (communes, km²), the 0.5 FTE worker's territory, the longest trip, Lyon's groups.

    ``area_km2`` is a Series of km² per unit key.
    """
    units, workers = plan.units, plan.workers
    w = units["workload"].to_numpy(dtype=float)
    per = units.assign(area=area_km2.reindex(units.index).to_numpy(dtype=float)).groupby("sector").agg(
        communes=("workload", "size"), km2=("area", "sum"), caseload=("workload", "sum"), longest=("travel_min", "max"))
    fte = workers.set_index("sector")["fte"]
    per["fte"] = fte.reindex(per.index)
    big, wide = per["communes"].idxmax(), per["km2"].idxmax()
    half = per[per["fte"] <= 0.5 + 1e-9]
    lyon = [k for k in LYON_ARRONDISSEMENTS if k in units.index]
    centre_col = "centre_travel_min" if "centre_travel_min" in units else "travel_min"
    out = {
        "objective": float(plan.solve["objective"]),
        "caseload_min_centre": float(w @ units[centre_col].to_numpy(dtype=float)),
        "caseload_min_base": (float(w @ units["base_travel_min"].to_numpy(dtype=float))
                              if "base_travel_min" in units else None),
        "largest_communes": int(per.at[big, "communes"]), "largest_communes_fte": float(per.at[big, "fte"]),
        "largest_km2": float(per.at[wide, "km2"]), "largest_km2_fte": float(per.at[wide, "fte"]),
        "half_fte_communes": int(half["communes"].max()) if len(half) else None,
        "half_fte_km2": float(half["km2"].max()) if len(half) else None,
        "max_travel_min": float(units["travel_min"].max()),
        "mean_travel_min": float(w @ units["travel_min"].to_numpy(dtype=float) / w.sum()),
        "lyon_one_group": (units.loc[lyon, "group"].nunique() == 1) if lyon else None,
        "violations": list(plan.violations),
        "strategy": plan.solve.get("strategy"),
        "solve_s": float(plan.solve.get("time_s", float("nan"))),
        "sectors": {s: {k: (float(v) if k != "communes" else int(v)) for k, v in row.items()}
                    for s, row in per.iterrows()},
    }
    return out


def priced(rows: list[dict]) -> None:
    """Add to each row its price against its reference row: ``price`` (objective units) and ``price_pct``;
    for the bases pair, against the caseload-minutes from the bases."""
    by_name = {r["variant"]: r for r in rows}
    for r in rows:
        ref = by_name.get(r["reference"])
        r["price"] = r["price_pct"] = None
        if ref is None or r.get("objective") is None or ref.get("objective") is None:
            continue
        key = "caseload_min_base" if r["variant"].startswith("own bases") else "objective"
        r["price_measure"] = key
        r["price"] = r[key] - ref[key]
        r["price_pct"] = 100 * r["price"] / ref[key]


def table(rows: list[dict]) -> str:
    head = ("variant", "valid", "objective (caseload-min)", "price vs reference", "caseload-min from bases",
            "largest sector: communes (FTE)", "largest: km² (FTE)", "0.5 FTE: communes / km²", "longest trip (min)",
            "Lyon in one group", "solve s")
    out = []
    for r in rows:
        if r.get("objective") is None:
            out.append([r["variant"], "NO PLAN", r.get("error", "")[:80], *["—"] * 8])
            continue
        price = "—" if r["price"] is None else (
            f"{r['price']:+,.0f} ({r['price_pct']:+.1f} %)" + (" from bases" if r["price_measure"] != "objective" else ""))
        out.append([
            r["variant"], YES_NO[not r["violations"]], f"{r['objective']:,.0f}",
            "reference" if r["variant"] == r["reference"] else price,
            fmt(r["caseload_min_base"], ",.0f"),
            f"{r['largest_communes']:,} ({r['largest_communes_fte']:g})",
            f"{r['largest_km2']:,.0f} ({r['largest_km2_fte']:g})",
            f"{r['half_fte_communes']:,} / {r['half_fte_km2']:,.0f}",
            f"{r['max_travel_min']:.0f}", YES_NO[r["lyon_one_group"]], f"{r['solve_s']:.1f}",
        ])
    return markdown_table(head, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time-limit", type=float, default=30.0, help="seconds per solve (model.time_limit_s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default=None, help="comma-separated variant names (default: all)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    chosen = variants()
    if args.variants:
        names = [v.strip() for v in args.variants.split(",")]
        unknown = [v for v in names if v not in chosen]
        if unknown:
            ap.error(f"unknown variants {unknown}; choose among {list(chosen)}")
        chosen = {v: chosen[v] for v in names}
    area = load_region(default_scenario()).units["area_km2"]
    header = {"command": command_line(__file__, argv), "timestamp": timestamp(),
              "scenario": "packaged default (AURA, 11 workers, ±10 %)",
              "time_limit_s": args.time_limit, "seed": args.seed, "backend": "auto", "machine": machine_line(),
              "homes": HOMES}
    rows: list[dict] = []
    for name, (changes, reference) in chosen.items():
        scenario = scenario_of(name, changes, args.time_limit, args.seed)
        began = time.monotonic()
        row = {"variant": name, "reference": reference, "changes": {k: v for k, v in changes.items()},
               "objective_used": scenario.model.resolve_objective(scenario.team)}
        try:
            plan = sectorize.run(scenario)
            row.update(ground_facts(plan, area))
        except sectorize.NoPlanError as err:
            row.update(objective=None, error=f"{type(err).__name__}: {err}")
        row["wall_s"] = time.monotonic() - began
        rows.append(row)
        print(f"{name}: {'no plan' if row['objective'] is None else format(row['objective'], ',.0f')} "
              f"({row['wall_s']:.0f} s)", file=sys.stderr, flush=True)
        priced(rows)
        write_rows(args.out, header, rows, complete=False)
    priced(rows)
    write_rows(args.out, header, rows, complete=True)
    return finish(args.out, table(rows))


if __name__ == "__main__":
    sys.exit(main())
