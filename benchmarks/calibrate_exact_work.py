"""Calibrate the work charges of the exact backend (:class:`solvers.budget.WorkCosts` ``exact_*``
and ``strong_lp_iteration``).

Runs the ``exact`` backend with wall-clock budgets (``--time-limit`` seconds per instance) on
square grids and on perturbed county instances (:mod:`bench_generalise`), and records

* every HiGHS MIP of :func:`solvers.exact.model.exact_solve`: rows, columns, nonzeros, simplex
  iterations, branch-and-bound nodes, termination, wall seconds;
* every strong LP relaxation (:func:`solvers.bound.relaxation.strong_relaxation`): simplex
  iterations, rows plus columns, wall seconds;
* every MIP model built in Python (:func:`solvers.exact.model.build_model`): contiguity,
  unit-centre pairs, nonzeros, wall seconds.

Then it fits, and prints next to the constants in use:

* the MIP charge ``wall ~ exact_setup x nonzeros/1000 + exact_iteration x iterations x
  (rows + columns)/1000 + exact_iteration_base x iterations`` (non-negative least squares on
  relative errors, MIPs of at least ``--min-nonzeros`` nonzeros: the smaller ones are the
  starting plan's allocation MIPs, charged by the ``mip_*`` constants);
* ``strong_lp_iteration``: the median of wall / (iterations x (rows + columns)/1000);
* ``exact_build``: the median wall seconds per unit-centre pair of the cut model, and the ratio
  of the flow model's (the 2.3 of :func:`solvers.exact.model.build_model`), with the nonzeros
  per pair (:data:`solvers.exact.model.NONZEROS_PER_PAIR`);
* the roots: wall seconds per 1,000 nonzeros of the MIPs that ended in their root (no node
  beyond it), and the lower bounds given by those the time limit stopped in their root
  (``exact_root`` is a choice between the two: see its docstring);
* ``exact_node``: the median wall seconds per node and 1,000 columns, beyond the expected root,
  of the MIPs that explored 10 nodes or more;
* ``district``: the district list of :func:`solvers.exact.backend._by_enumeration` run with a
  work budget (``--list-limit`` work seconds) on instances whose list cannot complete
  (``--list-cases``, k = 2 or 3), so that the budget stops the listing: the constant in use
  times the median wall / work.

Wall seconds measure this machine: run it alone. Usage::

    python benchmarks/calibrate_exact_work.py                  # record (about 11 min) and fit
    python benchmarks/calibrate_exact_work.py --fit benchmarks/results/calibrate_exact_work.json

The table goes to stdout, the calls and the fit to ``--out`` (written atomically).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
from scipy.optimize import nnls

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generalise import county_cases  # noqa: E402
from bench_validi import DEFAULT_DATA  # noqa: E402
from common import RESULTS, fmt, markdown_table, write_result  # noqa: E402

#: Instances whose district list is stopped by its budget (tuning half, 44 and 55 units, k = 2 and 3).
DEFAULT_LIST_CASES = "ID_county~0,ID_county~2,WV_county~0,WV_county~2"

#: Instances recorded by default: grids (``gridM``: M x M, k = 6) and perturbed counties of the
#: generalisation family's tuning half (even indices; the held-out half is never measured here).
DEFAULT_CASES = ("grid8,grid10,grid12,grid14,LA_county~0,AL_county~0,KS_county~6,OK_county~6,AR_county~4,"
                 "MS_county~6,AL_county~8")


def grid(m: int, k: int = 6, seed: int = 3):
    """An ``m x m`` rook grid with random integer workloads 1..9 and Manhattan minutes x 10, ``k`` sectors
    within 5 % (the grid of ``tests/test_determinism.py``)."""
    from solvers.problem import DenseTravelTimes, Problem

    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(m, m), ordering="sorted")
    xy = np.array(sorted(nx.grid_2d_graph(m, m).nodes), dtype=float)
    w = np.random.default_rng(seed).integers(1, 10, m * m).astype(float)
    return Problem(g, w, np.full(k, w.sum() / k), 0.05, DenseTravelTimes(np.abs(xy[:, None] - xy[None]).sum(-1) * 10))


def record(names: list[str], time_limit: float, data: Path) -> dict:
    """Solve every instance with the exact backend (wall clock) and return the recorded calls."""
    import scipy.optimize
    from ortools.math_opt.python import mathopt

    import solvers.exact.model as exact_model
    from solvers import budget, solve

    mips, lps, builds = [], [], []
    state = {"case": "", "exact": False}
    solve_mip, solve_once, build, linprog = mathopt.solve, exact_model._solve_once, exact_model.build_model, \
        scipy.optimize.linprog

    def timed_solve(model, *args, **kwargs):
        began = time.monotonic()
        result = solve_mip(model, *args, **kwargs)
        wall = time.monotonic() - began
        if state["exact"]:
            rows, columns, nonzeros = budget.model_size(model)
            mips.append({"case": state["case"], "rows": rows, "columns": columns, "nonzeros": nonzeros,
                         "iterations": int(result.solve_stats.simplex_iterations),
                         "nodes": int(result.solve_stats.node_count),
                         "termination": result.termination.reason.name, "wall_s": wall})
        return result

    def flagged_solve_once(*args, **kwargs):
        state["exact"] = True
        try:
            return solve_once(*args, **kwargs)
        finally:
            state["exact"] = False

    def timed_build(problem, contiguity="flow", *args, **kwargs):
        began = time.monotonic()
        built = build(problem, contiguity, *args, **kwargs)
        wall = time.monotonic() - began
        builds.append({"case": state["case"], "contiguity": contiguity, "pairs": len(built.x),
                       "nonzeros": budget.model_size(built.model)[2], "wall_s": wall})
        return built

    def timed_linprog(c, *args, **kwargs):
        began = time.monotonic()
        res = linprog(c, *args, **kwargs)
        wall = time.monotonic() - began
        size = kwargs["A_ub"].shape[0] + kwargs["A_eq"].shape[0] + len(c)
        lps.append({"case": state["case"], "iterations": int(getattr(res, "nit", 0) or 0), "size": size, "wall_s": wall})
        return res

    mathopt.solve, exact_model._solve_once, exact_model.build_model, scipy.optimize.linprog = (
        timed_solve, flagged_solve_once, timed_build, timed_linprog)
    cases = {}
    if any(not name.startswith("grid") for name in names):
        cases = {c.name: c for c in county_cases(data, 10)}
    solved = []
    try:
        for name in names:
            state["case"] = name
            problem = grid(int(name[4:])) if name.startswith("grid") else cases[name].problem
            began = time.monotonic()
            try:
                sol = solve(problem, backend="exact", time_limit_s=time_limit, seed=1)
                outcome = sol.status
            except Exception as err:  # a benchmark records what happened and goes on
                outcome = f"{type(err).__name__}: {err}"[:120]
            solved.append({"case": name, "n": problem.n, "outcome": outcome, "wall_s": time.monotonic() - began})
            print(f"{name}: {outcome} in {solved[-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    finally:
        mathopt.solve, exact_model._solve_once, exact_model.build_model, scipy.optimize.linprog = (
            solve_mip, solve_once, build, linprog)
    return {"instances": solved, "mips": mips, "lps": lps, "builds": builds}


def record_lists(names: list[str], limit: float, data: Path) -> list[dict]:
    """Wall and work seconds of the district list, stopped by a work budget of ``limit``."""
    from solvers import budget
    from solvers.exact.backend import _by_enumeration
    from solvers.options import EngineSettings

    settings = EngineSettings(deterministic=True)
    cases = {c.name: c for c in county_cases(data, 10)}
    rows = []
    for name in names:
        lines: list[str] = []
        began = time.monotonic()
        with budget.session(4 * limit, settings) as clock:
            _by_enumeration(cases[name].problem, settings, limit, 4 * limit, lines.append)
            work = clock.now()
        wall = time.monotonic() - began
        stopped = any("deadline passed while listing" in line for line in lines)
        rows.append({"case": name, "work_s": work, "wall_s": wall, "stopped_by_budget": stopped,
                     "district_cost": settings.work_costs.district})
        print(f"{name}: list {wall:.1f} wall s for {work:.1f} work s", file=sys.stderr, flush=True)
    return rows


def mip_features(call: dict) -> list[float]:
    """``[nonzeros/1000, iterations x (rows + columns)/1e6, iterations/1000]``: the charge's terms
    (coefficients: per 1,000 nonzeros, per iteration per 1,000 rows plus columns x 1,000, per
    1,000 iterations)."""
    size = (call["rows"] + call["columns"]) / 1000.0
    return [call["nonzeros"] / 1000.0, call["iterations"] * size / 1000.0, call["iterations"] / 1000.0]


def fit(calls: dict, min_nonzeros: int) -> dict:
    """The fitted constants (see the module docstring) and, per MIP, the fitted and current charge."""
    from solvers.budget import WorkCosts

    costs = WorkCosts()
    mips = [c for c in calls["mips"] if c["nonzeros"] >= min_nonzeros and c["wall_s"] > 0.05]
    x = np.array([mip_features(c) for c in mips])
    y = np.array([c["wall_s"] for c in mips])
    weight = 1.0 / np.maximum(y, 1.0)
    coef, _ = nnls(x * weight[:, None], y * weight)
    fitted = {"exact_setup": coef[0], "exact_iteration": coef[1] / 1000.0, "exact_iteration_base": coef[2] / 1000.0}
    rows = []
    for call in mips:
        size = (call["rows"] + call["columns"]) / 1000.0
        current = ((costs.exact_iteration_base + costs.exact_iteration * size) * call["iterations"]
                   + costs.exact_setup * call["nonzeros"] / 1000.0 + costs.call)
        old = ((costs.mip_iteration_base + costs.mip_iteration * size) * call["iterations"]
               + costs.mip_node * call["nodes"] * call["columns"] / 1000.0 + costs.mip_setup * call["nonzeros"] / 1000.0
               + costs.call)
        rows.append({**call, "fitted_s": float(np.dot(mip_features(call), coef)), "charged_s": current,
                     "mip_charge_s": old})
    per_lp = [c["wall_s"] / (c["iterations"] * c["size"] / 1000.0) for c in calls["lps"] if c["iterations"] > 0]
    if per_lp:
        fitted["strong_lp_iteration"] = statistics.median(per_lp)
    cut = [b["wall_s"] / b["pairs"] for b in calls["builds"] if b["contiguity"] == "cuts" and b["pairs"] >= 1000]
    flow = [b["wall_s"] / b["pairs"] for b in calls["builds"] if b["contiguity"] == "flow" and b["pairs"] >= 1000]
    if cut:
        fitted["exact_build"] = statistics.median(cut)
    if cut and flow:
        fitted["flow_build_ratio"] = statistics.median(flow) / statistics.median(cut)
    nnz_cut = [b["nonzeros"] / b["pairs"] for b in calls["builds"] if b["contiguity"] == "cuts" and b["pairs"] >= 1000]
    nnz_flow = [b["nonzeros"] / b["pairs"] for b in calls["builds"] if b["contiguity"] == "flow" and b["pairs"] >= 1000]
    # roots: ended in the root (at most one node, proven or infeasible) vs stopped there by the time limit
    big = [c for c in calls["mips"] if c["nonzeros"] >= min_nonzeros]
    ended = [1000 * c["wall_s"] / c["nonzeros"] for c in big if c["nodes"] <= 1 and c["termination"] in ("OPTIMAL", "INFEASIBLE")]
    stopped = [1000 * c["wall_s"] / c["nonzeros"] for c in big if c["nodes"] == 0 and c["termination"] not in ("OPTIMAL", "INFEASIBLE")]
    roots = {"ended_per_1000_nnz": ended, "stopped_at_least_per_1000_nnz": stopped,
             "nonzeros_per_pair_cuts": nnz_cut, "nonzeros_per_pair_flow": nnz_flow}
    # a node with its iterations, beyond the expected root, per 1,000 columns (MIPs of 10 nodes or more)
    nodes = [(c["wall_s"] - costs.exact_root * c["nonzeros"] / 1000.0) / c["nodes"] / (c["columns"] / 1000.0)
             for c in mips if c["nodes"] >= 10]
    if nodes:
        fitted["exact_node"] = max(statistics.median(nodes), 0.0)
    # the cost per set the list was charged at when recorded, times how much slower it ran
    lists = [r["district_cost"] * r["wall_s"] / r["work_s"] for r in calls.get("lists", [])
             if r["stopped_by_budget"] and r["work_s"] > 0]
    if lists:
        fitted["district"] = statistics.median(lists)
    in_use = {name: getattr(costs, name) for name in ("exact_setup", "exact_iteration", "exact_iteration_base",
                                                      "strong_lp_iteration", "exact_build", "exact_root", "exact_node",
                                                      "district")}
    return {"fitted": {k: float(v) for k, v in fitted.items()}, "in_use": in_use, "roots": roots, "mips": rows,
            "lp_iteration_in_use": costs.lp_iteration}


def table(result: dict) -> str:
    fitted, in_use, roots = result["fitted"], result["in_use"], result["roots"]
    lines = [markdown_table(["constant", "in use", "fitted here"],
                            [[name, f"{in_use.get(name, float('nan')):.3g}" if name in in_use else "—",
                              f"{fitted[name]:.3g}" if name in fitted else "—"]
                             for name in ("exact_setup", "exact_iteration", "exact_iteration_base",
                                          "strong_lp_iteration", "exact_build", "flow_build_ratio", "exact_node",
                                          "district")])]

    def spread(values: list[float]) -> str:
        return "—" if not values else f"{min(values):.3g}–{max(values):.3g} (median {statistics.median(values):.3g}, {len(values)})"

    lines.append("")
    lines.append(f"roots ended, wall s per 1,000 nonzeros: {spread(roots['ended_per_1000_nnz'])}")
    lines.append(f"roots stopped by the time limit, at least: {spread(roots['stopped_at_least_per_1000_nnz'])}")
    lines.append(f"exact_root in use: {in_use['exact_root']:.3g}")
    lines.append(f"nonzeros per pair, cut model: {spread(roots['nonzeros_per_pair_cuts'])}; "
                 f"flow model: {spread(roots['nonzeros_per_pair_flow'])}")
    lines.append("")
    mips = result["mips"]
    lines.append(markdown_table(
        ["instance", "rows", "columns", "nonzeros", "iterations", "nodes", "end", "wall s", "fitted s",
         "charged s (in use)", "mip_* charge s"],
        [[m["case"], f"{m['rows']:,}", f"{m['columns']:,}", f"{m['nonzeros']:,}", f"{m['iterations']:,}",
          str(m["nodes"]), m["termination"].lower(), fmt(m["wall_s"]), fmt(m["fitted_s"]), fmt(m["charged_s"]),
          fmt(m["mip_charge_s"])] for m in mips]))
    ratio = [m["charged_s"] / m["wall_s"] for m in mips]
    old = [m["mip_charge_s"] / m["wall_s"] for m in mips]
    if ratio:
        lines.append("")
        lines.append(f"charged / wall: median {statistics.median(ratio):.2f} with the constants in use, "
                     f"{statistics.median(old):.2f} with the mip_* charges")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=DEFAULT_CASES, help="comma-separated gridM or perturbed county names")
    ap.add_argument("--time-limit", type=float, default=60.0, help="wall seconds of the exact backend per instance")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with instances_hess.csv")
    ap.add_argument("--list-cases", default=DEFAULT_LIST_CASES, help="instances for the district list ('' for none)")
    ap.add_argument("--list-limit", type=float, default=10.0, help="work seconds of each district list")
    ap.add_argument("--min-nonzeros", type=int, default=5_000, help="smallest MIP fitted (the exact backend's)")
    ap.add_argument("--fit", type=Path, help="fit again the calls recorded in this result file")
    ap.add_argument("--out", type=Path, default=RESULTS / "calibrate_exact_work.json")
    args = ap.parse_args(argv)
    if args.fit:
        import json

        calls = json.loads(args.fit.read_text())["calls"]
    else:
        calls = record([c for c in args.cases.split(",") if c], args.time_limit, args.data)
        calls["lists"] = record_lists([c for c in args.list_cases.split(",") if c], args.list_limit, args.data)
    result = fit(calls, args.min_nonzeros)
    write_result(args.out, {"time_limit_s": args.time_limit, "calls": calls, **result},
                 benchmark="calibrate_exact_work", script=__file__, argv=argv)
    print(table(result))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
