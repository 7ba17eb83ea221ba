"""Cut edges as a compactness tie-break of the p-median / base objectives: the slack bound,
contiguity, balance, locks and the cap on moves kept, a constructed tie reduced, determinism,
the engine's honest status, and ``sectorize solve --tie-break-slack / --edge-weight``."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.spatial import Delaunay

from sectorize.cli import main
from solvers.check import check_plan
from solvers.construct.heuristic import (grow_sectors, heuristic_solve, initial_centres, neighbour_lists, rebalance,
                                         recentre)
from solvers.cut_edges.tie_break import TIE_BREAK_RTOL, tie_break, tie_break_solution
from solvers.engine import solve
from solvers.problem import DenseTravelTimes, Problem, Solution, cut_edges


def grid(rows: int, cols: int) -> nx.Graph:
    """Unit ``i`` is row ``i // cols``, column ``i % cols``."""
    return nx.convert_node_labels_to_integers(nx.grid_2d_graph(rows, cols), ordering="sorted")


def manhattan(rows: int, cols: int) -> DenseTravelTimes:
    xy = np.array([(i // cols, i % cols) for i in range(rows * cols)], dtype=float)
    return DenseTravelTimes(np.abs(xy[:, None] - xy[None]).sum(-1))


def within_limit(result) -> bool:
    return result.objective <= result.limit + TIE_BREAK_RTOL * max(abs(result.limit), 1.0)


# --------------------------------------------------------------------------
# solvers.cut_edges.tie_break
# --------------------------------------------------------------------------


def test_constructed_tie_is_broken_towards_fewer_cut_edges():
    # 4 x 4 grid, uniform workload, Manhattan minutes, two halves of 8 units: the p-median optimum
    # is 24 and 26 contiguous plans reach it (brute force), with 4 to 8 cut edges; this one has 8
    p = Problem(grid(4, 4), np.ones(16), np.array([8.0, 8.0]), 0.0, manhattan(4, 4))
    start = np.array([0, 0, 0, 0,
                      0, 0, 1, 0,
                      1, 0, 1, 1,
                      1, 1, 1, 1])
    centres = np.array([1, 10])
    assert p.objective_value(start, centres) == 24.0 and cut_edges(p.graph, start) == 8
    r = tie_break(p, start, centres, slack=0.0, time_limit_s=10)
    assert r.changed and (r.edges_before, r.edges_after) == (8, 4) and r.cut_after == 4
    assert r.objective == r.objective_before == 24.0 and r.objective_change == 0.0
    assert check_plan(p, r.assignment) == []
    assert r.objective == p.objective_value(r.assignment, r.centres)
    assert all(r.assignment[c] == s for s, c in enumerate(r.centres))
    assert r.log[-1].startswith("tie-break: cut edges 8 -> 4, objective +0.00 % (slack 0 %)")
    np.testing.assert_array_equal(start, [0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1])  # input untouched


def test_slack_buys_fewer_cut_edges_and_bounds_the_cost():
    # 3 x 4 grid, workloads 1..5, +-20 %: the brute-force optimum has 5 cut edges; a plan with 4
    # costs +6.25 %
    w = np.random.default_rng(0).integers(1, 6, 12).astype(float)
    p = Problem(grid(3, 4), w, np.full(2, w.sum() / 2), 0.2, manhattan(3, 4))
    optimum, centres = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]), np.array([1, 10])
    for slack, edges in ((0.0, 5), (0.05, 5), (0.1, 4)):
        r = tie_break(p, optimum, centres, slack=slack, time_limit_s=10)
        assert r.edges_after == edges and within_limit(r) and check_plan(p, r.assignment) == []
        assert r.limit == pytest.approx(r.objective_before * (1 + slack))
    assert r.objective_change == pytest.approx(0.0625)
    # the engine's status stays honest: a proven optimum traded for fewer cut edges is only feasible
    value = p.objective_value(optimum, centres)
    proven = Solution(optimum, centres, value, "optimal", "exact", 1.0, bound=value, log=["exact"])
    out = tie_break_solution(p, proven, slack=0.1, time_limit_s=10)
    assert out.status == "feasible" and out.bound == value and out.objective == pytest.approx(1.0625 * value)
    assert out.gap == pytest.approx(1 - 1 / 1.0625) and out.log[0] == "exact" and out.tie_break is not None
    tie = tie_break_solution(p, proven, slack=0.0, time_limit_s=10)
    assert tie.status == "optimal" and tie.objective == value and tie.tie_break.changed is False


@st.composite
def planar_problems(draw) -> Problem:
    """Delaunay triangulation of 10-30 random points (a planar graph), workloads 0..5, 2-4 sectors,
    squared-distance travel, optional objective weights."""
    seed = draw(st.integers(0, 100_000))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(10, 30))
    xy = rng.uniform(0, 10, (n, 2))
    g = nx.Graph()
    g.add_nodes_from(range(n))
    for a, b, c in Delaunay(xy).simplices:
        g.add_edges_from([(int(a), int(b)), (int(b), int(c)), (int(a), int(c))])
    w = rng.integers(0, 6, n).astype(float)
    w[0] += 1
    k = draw(st.integers(2, 4))
    weights = w + rng.uniform(0, 1, n) if draw(st.booleans()) else None
    t = DenseTravelTimes(((xy[:, None] - xy[None]) ** 2).sum(-1))
    return Problem(g, w, np.full(k, w.sum() / k), draw(st.sampled_from([0.1, 0.2, 0.4])), t, cost_weight=weights)


def grown_plan(problem: Problem, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """A balanced contiguous plan that is not locally optimal: grown from k-medoids++ centres,
    rebalanced, centres moved to the medoids (no improvement step)."""
    rng = np.random.default_rng(seed)
    nbrs = neighbour_lists(problem)
    centres = initial_centres(problem, rng)
    assign = grow_sectors(problem, centres, nbrs)
    if assign is None or not rebalance(problem, assign, centres, nbrs, rng, time.monotonic() + 2):
        return None
    return assign, recentre(problem, assign, centres)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=planar_problems(), slack=st.sampled_from([0.0, 0.01, 0.2]), base=st.booleans(),
       lock=st.integers(0, 29), cap=st.one_of(st.none(), st.floats(0, 10)), weighted=st.booleans(),
       seed=st.integers(0, 3))
def test_never_breaks_the_plan_nor_the_slack(problem, slack, base, lock, cap, weighted, seed):
    if base:
        bases = np.random.default_rng(problem.n).uniform(0, 30, (problem.k, problem.n))
        problem = replace(problem, objective="base", base_travel=bases)
    plan = grown_plan(problem, seed)
    assume(plan is not None and not check_plan(problem, plan[0]))
    start, centres = plan
    unit = lock % problem.n
    problem = replace(problem, locked={unit: int(start[unit])})
    if cap is not None:  # a previous plan (the start itself) and a cap on moves from it
        problem = replace(problem, previous=start.copy(), max_moved=cap)
    weight = None
    if weighted:
        rng = np.random.default_rng(problem.n + 1)
        nx.set_edge_attributes(problem.graph, {e: float(rng.uniform(0.1, 3)) for e in problem.graph.edges}, "km")
        weight = "km"
    r = tie_break(problem, start, centres, slack=slack, weight=weight, time_limit_s=5, seed=seed, patience=200)
    assert check_plan(problem, r.assignment) == []  # contiguity, bounds, lock, cap on moves
    assert r.assignment[unit] == start[unit]
    assert within_limit(r)
    assert r.objective == pytest.approx(problem.objective_value(r.assignment, r.centres), rel=1e-12, abs=1e-12)
    assert r.objective_before == problem.objective_value(start, centres)
    assert r.cut_after <= r.cut_before + 1e-9
    assert r.cut_after == pytest.approx(cut_edges(problem.graph, r.assignment, weight=weight))
    assert r.edges_after == cut_edges(problem.graph, r.assignment)
    if problem.objective == "pmedian":  # centres stay in their sectors
        assert all(r.assignment[c] == s for s, c in enumerate(r.centres))
    if not r.changed:
        np.testing.assert_array_equal(r.assignment, start)


def test_deterministic_for_a_seed():
    rng = np.random.default_rng(5)
    w = rng.integers(1, 6, 64).astype(float)
    xy = rng.uniform(0, 10, (64, 2))
    t = DenseTravelTimes(((xy[:, None] - xy[None]) ** 2).sum(-1))
    p = Problem(grid(8, 8), w, np.full(4, w.sum() / 4), 0.1, t)
    start, centres, _, _ = heuristic_solve(p, time_limit_s=5, seed=1, restarts=2)
    runs = [tie_break(p, start, centres, slack=0.02, time_limit_s=60, seed=3) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].assignment, runs[1].assignment)
    np.testing.assert_array_equal(runs[0].centres, runs[1].centres)
    assert runs[0].edges_after == runs[1].edges_after <= runs[0].edges_before
    assert within_limit(runs[0])


def test_bad_arguments():
    p = Problem(grid(2, 2), np.ones(4), np.array([2.0, 2.0]), 0.0, manhattan(2, 2))
    a, c = np.array([0, 0, 1, 1]), np.array([0, 2])
    with pytest.raises(ValueError, match="needs a valid plan"):
        tie_break(p, np.array([0, 1, 1, 0]), c)
    with pytest.raises(ValueError, match="finite fraction >= 0"):
        tie_break(p, a, c, slack=-0.1)
    with pytest.raises(ValueError, match="no edge of the graph has the attribute 'km'"):
        tie_break(p, a, c, weight="km")
    with pytest.raises(ValueError, match="'cut_edges' objective minimises the cut already"):
        tie_break(replace(p, objective="cut_edges"), a, c)
    with pytest.raises(ValueError, match="centres must be 2 units"):
        tie_break(p, a, np.array([0]))


# --------------------------------------------------------------------------
# solvers.engine.solve(tie_break_slack=..., tie_break_weight=...)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["heuristic", "auto", "exact"])
def test_engine_tie_break(backend):
    w = np.random.default_rng(0).integers(1, 6, 12).astype(float)
    p = Problem(grid(3, 4), w, np.full(2, w.sum() / 2), 0.2, manhattan(3, 4))
    nx.set_edge_attributes(p.graph, 1.0, "km")
    sol = solve(p, backend=backend, time_limit_s=5, tie_break_slack=0.1, tie_break_weight="km")
    r = sol.tie_break
    assert r is not None and check_plan(p, sol.assignment) == []
    assert sol.objective == pytest.approx(p.objective_value(sol.assignment, sol.centres))
    assert r.objective == sol.objective and within_limit(r)
    assert any(re.match(r"tie-break: boundary \(km\) [\d.]+ -> [\d.]+, cut edges \d+ -> \d+, objective [+-]\d+\.\d\d %",
                        line) for line in sol.log)
    if backend == "exact":
        assert sol.bound is not None and sol.bound <= sol.objective
        # status honest: optimal only while the objective did not rise above the proven optimum
        rose = r.objective > r.objective_before * (1 + 1e-9)
        assert sol.status == ("feasible" if rose else "optimal")
    else:
        assert sol.status == "feasible"


def test_engine_rejects_bad_tie_break():
    p = Problem(grid(2, 2), np.ones(4), np.array([2.0, 2.0]), 0.0, manhattan(2, 2))
    with pytest.raises(ValueError, match="needs a slack"):
        solve(p, tie_break_weight="km", time_limit_s=2)
    with pytest.raises(ValueError, match="minimises the cut already"):
        solve(replace(p, objective="cut_edges"), tie_break_slack=0.0, time_limit_s=2)
    assert solve(p, time_limit_s=2).tie_break is None


# --------------------------------------------------------------------------
# sectorize solve --tie-break-slack / --edge-weight
# --------------------------------------------------------------------------


def _files(tmp, rows=4, cols=5, edge_lines=None):
    keys = [f"{i + 1:05d}" for i in range(rows * cols)]
    w = np.random.default_rng(7).integers(1, 6, rows * cols)
    units = tmp / "units.csv"
    units.write_text("code;x;y;charge\n" + "".join(
        f"{k};{(i % cols) * 2000 + 800000};{(i // cols) * 2000 + 6500000};{w[i]}\n" for i, k in enumerate(keys)),
        encoding="utf-8")
    edges = [(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
    edges += [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)]
    length = {e: 1.0 + (e[0] * 7 + e[1]) % 3 for e in edges}  # 1, 2 or 3 km of shared boundary
    lines = edge_lines or [f"{keys[a]},{keys[b]},{length[a, b]:g}" for a, b in edges]
    edge_file = tmp / "edges.csv"
    edge_file.write_text("a,b,length\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return keys, edges, length, units, edge_file


def _run(args):
    return main(["solve", "--quiet", *map(str, args)])


def _summary(out):
    import json

    import pandas as pd

    folder = out / (out / "LATEST").read_text().strip()
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    sectors = pd.read_csv(folder / "sectors.csv", sep=";", dtype=str, encoding="utf-8-sig")
    return summary, sectors.set_index("code")["sector"]


def test_cli_tie_break_and_edge_weight(tmp_path, capsys):
    keys, edges, length, units, edge_file = _files(tmp_path)
    base = ["--units", units, "--edges", edge_file, "--key", "code", "--weight", "charge", "--sectors", 3,
            "--tolerance", 0.1, "--time-limit", 10]
    # inertia + tie-break on the boundary length
    out = tmp_path / "inertia"
    assert _run([*base, "--tie-break-slack", 0.01, "--edge-weight", "length", "--out", out]) == 0
    summary, sector = _summary(out)
    cut = [(a, b) for a, b in edges if sector[keys[a]] != sector[keys[b]]]
    assert summary["cut_edges"] == len(cut)
    assert summary["boundary_length"] == pytest.approx(sum(length[e] for e in cut))
    tb = summary["tie_break"]
    assert tb["slack"] == 0.01 and summary["tie_break_slack"] == 0.01 and summary["edge_weight"] == "length"
    assert tb["cut_edges_after"] == summary["cut_edges"]
    assert tb["boundary_after"] == pytest.approx(summary["boundary_length"])
    assert tb["boundary_after"] <= tb["boundary_before"] + 1e-9
    assert summary["time_s"] < 10 + 2  # the tie-break's share is inside the time limit
    assert tb["objective_after"] == pytest.approx(summary["objective"])
    assert tb["objective_change_pct"] <= 1.0 + 1e-6
    assert "tie-break" in summary["objective_definition"] and summary["contiguity_check"]["valid"]
    printed = capsys.readouterr().out
    assert f"{summary['cut_edges']} cut edges" in printed and "tie-break (slack 1 %): cut edges" in printed
    # no tie-break: the cut edges are still reported
    out = tmp_path / "travel"
    assert _run([*base, "--objective", "travel", "--out", out]) == 0
    summary, sector = _summary(out)
    assert summary["tie_break"] is None and summary["boundary_length"] is None
    assert summary["cut_edges"] == sum(sector[keys[a]] != sector[keys[b]] for a, b in edges)
    # cut-edges objective on the boundary length: the exact optimum of the summed column
    out = tmp_path / "cut"
    assert _run([*base, "--objective", "cut-edges", "--edge-weight", "length", "--backend", "exact",
                 "--out", out]) == 0
    summary, sector = _summary(out)
    boundary = sum(length[a, b] for a, b in edges if sector[keys[a]] != sector[keys[b]])
    assert summary["status"] == "optimal" and summary["objective"] == pytest.approx(boundary)
    assert summary["boundary_length"] == pytest.approx(boundary)
    assert summary["objective_definition"].startswith("summed length of the adjacency edges")


def test_cli_border_computed_from_polygons(tmp_path):
    """Polygons without --edges: ``--edge-weight border_m`` is the shared border (metres) computed
    from the shapes; the reported boundary equals the borders recomputed with shapely."""
    import geopandas as gpd
    import shapely

    widths = [1000.0, 3000.0, 1500.0, 2500.0]  # unequal columns: unequal borders
    xs = 840000.0 + np.r_[0.0, np.cumsum(widths)]  # Lambert-93 metres, near Lyon
    boxes = [shapely.box(xs[c], 6518000.0 + r * 2000.0, xs[c + 1], 6518000.0 + (r + 1) * 2000.0)
             for r in range(3) for c in range(4)]
    keys = [f"{i + 1:05d}" for i in range(12)]
    gpd.GeoDataFrame({"code": keys, "charge": np.random.default_rng(3).integers(1, 5, 12)},
                     geometry=boxes, crs=2154).to_file(tmp_path / "units.geojson", driver="GeoJSON")
    base = ["--units", tmp_path / "units.geojson", "--key", "code", "--weight", "charge", "--sectors", 3,
            "--tolerance", 0.3, "--time-limit", 10, "--edge-weight", "border_m"]
    for extra, name in ((["--objective", "cut-edges", "--backend", "exact"], "cut"),
                        (["--tie-break-slack", 0.02], "inertia")):
        out = tmp_path / name
        assert _run([*base, *extra, "--out", out]) == 0
        summary, sector = _summary(out)
        border = sum(shapely.length(shapely.intersection(boxes[a].boundary, boxes[b].boundary))
                     for a in range(12) for b in range(a + 1, 12)
                     if sector[keys[a]] != sector[keys[b]] and boxes[a].intersects(boxes[b]))
        # measured again after a round trip through degrees and a local metric projection
        assert summary["boundary_length"] == pytest.approx(border, rel=2e-3)
        assert summary["edge_weight"] == "border_m"
    assert summary["tie_break"]["boundary_after"] <= summary["tie_break"]["boundary_before"] + 1e-9


@pytest.mark.parametrize("case, expected", [
    ("missing column", r"edges.csv: no edge weight column 'len'; the columns are \['a', 'b', 'length'\]"),
    ("not a number", r"edges.csv, line 3, column 'length': edge weight 'abc' is not a number"),
    ("negative", r"edges.csv, line 2, column 'length': edge weight -1 is negative"),
    ("empty", r"edges.csv, line 4, column 'length': edge weight is empty"),
    ("twice", r"edges.csv, line 3, column 'length': the pair \(00002, 00001\) is already on line 2"),
    ("no edges file", r"--edge-weight length names a column of the --edges file"),
    ("slack with cut-edges", r"--tie-break-slack applies to --objective inertia or travel"),
    ("slack too big", r"--tie-break-slack is a fraction .* got 5"),
    ("negative slack", r"--tie-break-slack is a fraction .* got -0.1"),
])
def test_cli_bad_edge_weight_or_slack(tmp_path, capsys, case, expected):
    lines = None
    if case in ("not a number", "negative", "empty", "twice"):
        lines = {"not a number": ["00001,00002,1", "00002,00003,abc"],
                 "negative": ["00001,00002,-1"],
                 "empty": ["00001,00002,1", "00002,00003,2", "00003,00004,"],
                 "twice": ["00001,00002,1", "00002,00001,2"]}[case]
        lines = lines + ["00003,00004,1", "00004,00005,1", "00005,00006,1"] if case != "empty" else lines
    keys, _, _, units, edge_file = _files(tmp_path, 2, 3, edge_lines=lines)
    args = ["--units", units, "--edges", edge_file, "--key", "code", "--weight", "charge", "--sectors", 2,
            "--tolerance", 0.5, "--time-limit", 2, "--out", tmp_path / "out", "--edge-weight", "length"]
    if case == "missing column":
        args[-1] = "len"
    elif case == "no edges file":  # polygons: queen contiguity has no weights
        import geopandas as gpd
        import shapely

        boxes = [shapely.box(c, r, c + 1, r + 1) for r in range(2) for c in range(2)]
        gpd.GeoDataFrame({"code": keys[:4], "charge": np.ones(4)}, geometry=boxes, crs=2154).to_file(
            tmp_path / "units.geojson", driver="GeoJSON")
        args[args.index("--units") + 1] = tmp_path / "units.geojson"
        i = args.index("--edges")
        del args[i:i + 2]
    elif case == "slack with cut-edges":
        args += ["--objective", "cut-edges", "--tie-break-slack", 0]
    elif case == "slack too big":
        args += ["--tie-break-slack", 5]
    elif case == "negative slack":
        args += ["--tie-break-slack", -0.1]
    assert _run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(expected, err), err
    assert not (tmp_path / "out" / "LATEST").exists()
