"""Peer benchmark: our engine against GerryChain 1.0 and PySAL spopt 0.7 on the same instances.

Every method gets the same instance (graph, population, balance bounds) and a
wall-clock budget; every returned plan goes through one independent check
(:func:`verdict`: each sector connected in the contiguity graph, with networkx;
each sector's population within the same ``[lower, upper]``) and one shared
objective (:func:`inertia`), so no method scores itself.

The objective is the moment of inertia of the districting literature (Hess
model), which is our ``"pmedian"`` objective with travel = squared distance::

    inertia(plan) = sum over sectors S of  min over centres c in S of  sum_{i in S} pop_i * d(i, c)**2 / 1e6

in population x (1000 km)^2. ``d`` is in km: for the US county instances of
Validi, Buchanan & Lykhovyd (OR 2022) it is their integer-km distance, so the
values are the published ones (``benchmarks/bench_validi.py``); for AURA it is
the straight-line distance between the communes' points in Lambert-93
(EPSG:2154), unrounded.

Instances
---------
``aura-k11-5pc``, ``aura-k11-2pc``, ``aura-k2-5pc``, ``aura-k2-2pc``
    The 4,025 AURA communes, population-weighted, k = 11 or 2, +-5 % or +-2 %.
``lyon-k11-2pc``
    The Lyon-arrondissements variant (4,033 units), k = 11, +-2 %.
``<ST>_county``
    The 16 Validi county instances (+-0.5 %, published L and U; 4 are proven
    infeasible), read from ``../shared/benchmarks/validi``.

Methods
-------
``ours``
    ``solvers.engine.solve(problem, backend="auto", time_limit_s=budget, seed=seed)``.
``ours-lns``
    ``solve(..., backend="lns")``: location-allocation, pairs of sectors
    re-optimised, and a lower bound in the last quarter of the budget (the
    bound and gap go to the row's detail).
``ours-heuristic``
    One start of ``solvers.construct.heuristic.heuristic_solve`` (construct, rebalance,
    local search), repeated with the next seed until a start is balanced:
    time to the first valid plan.
``gerrychain``
    ``recursive_tree_part`` for a first plan (new seed on failure, retries
    counted), then ``SingleMetricOptimizer.short_bursts`` of ReCom (bursts of
    10 steps) minimising :func:`inertia` until the peer budget runs out.
``skater``, ``azp``, ``maxp``, ``kmeans``
    spopt's ``Skater``, ``AZP``, ``MaxPHeuristic``, ``RegionKMeansHeuristic``
    on the units' coordinates (km). None of them bounds population from above;
    ``Skater``'s floor counts units (set to half the mean number of units per
    sector), ``MaxPHeuristic`` uses the population floor ``lower`` and finds
    its own number of regions. A plan that misses the bounds is reported as
    not valid (with its deviation), a method that returns nothing within the
    peer budget as "no plan".

Peers run in a child process that is stopped a grace period after the peer
budget (a quarter of it, 5 to 30 s; see :func:`grace_s`): a method that cannot
stop by itself and has no plan by then gets "no plan"; a plan returned late is
kept and flagged "over budget". The peers are optional::

    pip install -e '.[peers]'          # gerrychain>=1.0, spopt>=0.7

Usage::

    python benchmarks/bench_peers.py --instances aura-k11-5pc --budget 60 --peer-budget 120
    python benchmarks/bench_peers.py --instances validi --budget 10 --seeds 0,1
    python benchmarks/bench_peers.py --quick --instances NM_county --out /tmp/peers.json
    python benchmarks/bench_peers.py --show                  # tables of the stored runs

The table goes to stdout; rows, command, date, machine and package versions to
``benchmarks/results/peers.json`` as ``{"runs": [{..., "rows": [...]}]}``
(written atomically after every instance; ``--append`` adds the run to those
already in the file).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import multiprocessing as mp
import os
import platform
import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_validi  # noqa: E402  (sibling script: Validi instance loading, atomic JSON writer)
from common import RESULTS, YES_NO, command_line, fmt, markdown_table, timestamp

from solvers.check import check_plan  # noqa: E402
from solvers.engine import solve  # noqa: E402
from solvers.construct.heuristic import heuristic_solve  # noqa: E402
from solvers.problem import DenseTravelTimes, InfeasibleError, Problem  # noqa: E402
from sectorize.store.atomic import atomic_write_json

DEFAULT_DATA = bench_validi.DEFAULT_DATA
DEFAULT_OUT = RESULTS / "peers.json"

#: AURA instances: name -> (region variant, k, tolerance).
AURA_CASES: dict[str, tuple[str, int, float]] = {
    "aura-k11-5pc": ("communes", 11, 0.05),
    "aura-k11-2pc": ("communes", 11, 0.02),
    "aura-k2-5pc": ("communes", 2, 0.05),
    "aura-k2-2pc": ("communes", 2, 0.02),
    "lyon-k11-2pc": ("lyon_arrondissements", 11, 0.02),
}
SPOPT_METHODS = ("skater", "azp", "maxp", "kmeans")
METHODS = ("ours", "ours-lns", "ours-heuristic", "gerrychain", *SPOPT_METHODS)
PEER_PACKAGES = {"gerrychain": "gerrychain>=1.0", "spopt": "spopt>=0.7"}
INSTALL_HINT = "pip install -e '.[peers]'   (or: pip install 'gerrychain>=1.0' 'spopt>=0.7')"


def grace_s(budget: float) -> float:
    """Seconds a peer's child process may run past ``budget`` before it is stopped:
    a quarter of the budget, between 5 and 30 s (a plan returned late is kept and flagged)."""
    return min(30.0, max(5.0, budget / 4))

#: GerryChain short-burst length (steps per burst), as in Cannon et al. 2020.
BURST_LENGTH = 10


@dataclass
class Case:
    """One benchmark instance.

    ``problem.travel`` holds squared distances in (1000 km)^2, ``problem.workload``
    the population; a sector is valid with a population in ``[lower[s], upper[s]]``.
    """

    name: str
    problem: Problem
    xy_km: np.ndarray  # (n, 2) coordinates in km, for the spopt methods
    lower: np.ndarray
    upper: np.ndarray
    published: float | None = None  # published contiguous optimum (Validi), None when none/infeasible
    published_infeasible: bool = False
    note: str = ""


@dataclass
class Verdict:
    """Result of the independent check of one plan."""

    valid: bool
    contiguous: bool
    balanced: bool
    sectors: int
    max_dev_pct: float  # largest |population / target - 1| over sectors, in %
    problems: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------
# Instances
# --------------------------------------------------------------------------


def aura_case(name: str) -> Case:
    """The AURA instance ``name`` of :data:`AURA_CASES` (population-weighted, squared km).

    Example
    -------
    >>> case = aura_case("aura-k2-5pc")          # doctest: +SKIP
    >>> case.problem.n, case.problem.k
    (4025, 2)
    """
    from geodata.regions import load_aura

    variant, k, tol = AURA_CASES[name]
    region = load_aura(variant)  # type: ignore[arg-type]
    units = region.units
    index = {code: i for i, code in enumerate(units.index)}
    graph = nx.relabel_nodes(region.graph, index)
    graph = nx.Graph(graph.edges)
    graph.add_nodes_from(range(len(units)))
    import geopandas as gpd

    pts = gpd.GeoSeries(gpd.points_from_xy(units["lon"], units["lat"]), crs=4326).to_crs(2154)
    xy_km = np.column_stack([pts.x.to_numpy(), pts.y.to_numpy()]) / 1000.0
    diff = xy_km[:, None, :] - xy_km[None, :, :]
    sq_km = np.einsum("ijk,ijk->ij", diff, diff)
    del diff
    pop = units["population"].to_numpy(float)
    problem = Problem(
        graph=graph,
        workload=pop,
        targets=np.full(k, pop.sum() / k),
        tolerance=tol,
        travel=DenseTravelTimes(sq_km / 1e6),
        labels=tuple(f"{code} {nm}" for code, nm in zip(units.index, units["name"])),
    )
    return Case(name=name, problem=problem, xy_km=xy_km, lower=problem.lower, upper=problem.upper,
                note=f"{region.name}, k = {k}, ±{tol:.0%}")


def validi_cases(data: Path, names: list[str] | None) -> list[Case]:
    """The Validi county instances (``names`` = ``["ME_county", ...]``, or all when None)."""
    rows = pd.read_csv(data / "instances_hess.csv", dtype={"fips": str})
    rows = rows[rows["level"] == "county"].sort_values("n")
    if names is not None:
        rows = rows[rows["instance"].isin(names)]
    cases = []
    for _, row in rows.iterrows():
        inst = bench_validi.load_instance(data, row)
        nodes = pd.read_csv(data / "county_2010" / f"{row['state']}_nodes.csv").sort_values("node")
        k = inst.problem.k
        cases.append(Case(
            name=inst.name, problem=inst.problem, xy_km=nodes[["x_m", "y_m"]].to_numpy(float) / 1000.0,
            lower=np.full(k, float(inst.lower)), upper=np.full(k, float(inst.upper)),
            published=inst.published, published_infeasible=inst.published is None, note=inst.note,
        ))
    return cases


def validi_names(data: Path) -> list[str]:
    """Names of the county instances in ``data/instances_hess.csv`` (empty when the data is absent)."""
    index = data / "instances_hess.csv"
    if not index.exists():
        return []
    rows = pd.read_csv(index)
    return rows.loc[rows["level"] == "county"].sort_values("n")["instance"].tolist()


# --------------------------------------------------------------------------
# Shared objective and independent check
# --------------------------------------------------------------------------


def inertia(problem: Problem, assignment: np.ndarray) -> float:
    """Moment of inertia of a plan, in population x (1000 km)^2.

    Sum over sectors of ``min over centre units c of sum_i weight_i * travel[c, i]``:
    the best centre of each sector is searched exhaustively, whatever the
    method proposed. Sector labels may be any integers.

    Example
    -------
    >>> g = nx.path_graph(3)
    >>> p = Problem(g, np.ones(3), np.array([3.0]), 0.0, DenseTravelTimes(np.array([[0, 1, 4], [1, 0, 1], [4, 1, 0.]])))
    >>> inertia(p, np.zeros(3, int))
    2.0
    """
    a = np.asarray(assignment)
    w = problem.weights
    total = 0.0
    for s in np.unique(a):
        m = np.flatnonzero(a == s)
        rows = problem.travel.rows(m)[:, m]  # (|S|, |S|): from each candidate centre
        total += float((rows @ w[m]).min())
    return total


def verdict(case: Case, assignment: np.ndarray) -> Verdict:
    """Check a plan from scratch: k non-empty sectors, each connected, each within bounds."""
    a = np.asarray(assignment)
    g, pop, k = case.problem.graph, case.problem.workload, case.problem.k
    problems: list[str] = []
    labels = np.unique(a)
    if a.shape != (case.problem.n,):
        return Verdict(False, False, False, 0, float("nan"), [f"{a.size} labels for {case.problem.n} units"])
    contiguous = True
    loads = []
    for s in labels:
        members = np.flatnonzero(a == s).tolist()
        if not nx.is_connected(g.subgraph(members)):
            contiguous = False
            problems.append(f"sector {s} in {nx.number_connected_components(g.subgraph(members))} pieces")
        loads.append(pop[members].sum())
    loads_arr = np.array(loads)
    target = (case.lower[0] + case.upper[0]) / 2
    max_dev = float(np.abs(loads_arr / target - 1).max() * 100) if len(loads) else float("nan")
    balanced = len(labels) == k and bool(
        ((loads_arr >= case.lower[0] - 1e-6) & (loads_arr <= case.upper[0] + 1e-6)).all())
    if len(labels) != k:
        problems.append(f"{len(labels)} sectors instead of {k}")
    elif not balanced:
        problems.append(f"population outside [{case.lower[0]:,.0f}, {case.upper[0]:,.0f}]")
    return Verdict(contiguous and balanced, contiguous, balanced, len(labels), max_dev, problems)


# --------------------------------------------------------------------------
# Methods. Each returns a dict with "assignment" (or None), "time_s" and details.
# --------------------------------------------------------------------------


def run_ours(case: Case, seed: int, budget: float, backend: str = "auto") -> dict:
    """``solve(backend=backend)`` within ``budget`` seconds (``"lns"`` also reports its lower bound)."""
    start = time.monotonic()
    try:
        sol = solve(case.problem, backend=backend, time_limit_s=budget, seed=seed)
    except InfeasibleError as err:
        return {"assignment": None, "time_s": time.monotonic() - start, "reason": str(err)[:300]}
    return {"assignment": sol.assignment, "time_s": time.monotonic() - start, "first_valid_s": None,
            "detail": f"backend {sol.backend}" + (
                f"; bound {sol.bound:,.2f} (gap {sol.gap:.2%})" if sol.bound is not None else "")}


def run_ours_heuristic(case: Case, seed: int, budget: float) -> dict:
    """Time to the first balanced plan: single heuristic starts with seeds ``seed, seed+1, ...``."""
    start = time.monotonic()
    tries = 0
    while True:
        left = budget - (time.monotonic() - start)
        if left < 0.1:  # too short for a start (heuristic_solve then reports a misleading reason)
            break
        try:
            assign, _, _, _ = heuristic_solve(case.problem, time_limit_s=left, seed=seed + tries, restarts=1)
        except InfeasibleError as err:
            return {"assignment": None, "time_s": time.monotonic() - start, "reason": str(err)[:300]}
        tries += 1
        if not check_plan(case.problem, assign):
            took = time.monotonic() - start
            return {"assignment": assign, "time_s": took, "first_valid_s": took,
                    "detail": f"{tries} start(s)"}
    return {"assignment": None, "time_s": time.monotonic() - start,
            "reason": f"no balanced start in {tries} start(s)"}


def _gerrychain_graph(case: Case):
    from gerrychain import Graph

    g = nx.Graph()
    for i, p in enumerate(case.problem.workload):
        g.add_node(i, population=float(p))
    g.add_edges_from(case.problem.graph.edges)
    return Graph.from_networkx(g)


def run_gerrychain(case: Case, seed: int, budget: float) -> dict:
    """``recursive_tree_part`` (retrying seeds) then ReCom short bursts minimising :func:`inertia`."""
    from gerrychain import Partition
    from gerrychain.constraints import contiguous
    from gerrychain.optimization import SingleMetricOptimizer
    from gerrychain.partition import recursive_tree_part
    from gerrychain.proposals import recom
    from gerrychain.tree import bipartition_tree
    from gerrychain.tree import BipartitionWarning
    from gerrychain.updaters import Tally

    import warnings

    warnings.simplefilter("ignore", BipartitionWarning)  # failures are counted as retries instead
    start = time.monotonic()
    deadline = start + budget
    graph = _gerrychain_graph(case)
    k = case.problem.k
    lo, hi = float(case.lower[0]), float(case.upper[0])
    target, eps = (lo + hi) / 2, (hi - lo) / (hi + lo)
    retries, assignment, errors = 0, None, []
    while time.monotonic() < deadline:
        try:
            assignment = recursive_tree_part(
                graph, list(range(k)), target, "population", eps,
                bipartition_tree_fn=partial(bipartition_tree, max_attempts=10_000),
                rng=seed + 1000 * retries,
            )
            loads = np.bincount([assignment[i] for i in range(case.problem.n)],
                                weights=case.problem.workload, minlength=k)
            if ((loads >= lo) & (loads <= hi)).all():
                break
            errors.append("plan outside bounds")
        except Exception as err:  # the library raises several types when no balanced cut is found
            errors.append(type(err).__name__)
        assignment = None
        retries += 1
    first_valid_s = time.monotonic() - start
    if assignment is None:
        return {"assignment": None, "time_s": first_valid_s, "retries": retries,
                "reason": f"recursive_tree_part found no balanced plan in {retries} tries "
                          f"({', '.join(sorted(set(errors)))})"}
    first = np.array([assignment[i] for i in range(case.problem.n)])
    first_obj = inertia(case.problem, first)

    w, travel = case.problem.weights, case.problem.travel
    cache: dict[frozenset, float] = {}

    def part_cost(nodes: frozenset) -> float:
        if nodes not in cache:
            if len(cache) > 4096:
                cache.clear()
            m = np.fromiter(nodes, dtype=np.intp, count=len(nodes))
            cache[nodes] = float((travel.rows(m)[:, m] @ w[m]).min())
        return cache[nodes]

    def score(part) -> float:
        return sum(part_cost(nodes) for nodes in part.parts.values())

    def within_bounds(part) -> bool:
        return all(lo - 1e-6 <= v <= hi + 1e-6 for v in part["population"].values())

    initial = Partition(graph, assignment, updaters={"population": Tally("population", alias="population")})
    proposal = partial(recom, pop_col="population", pop_target=target, epsilon=eps)
    optimizer = SingleMetricOptimizer(proposal, [contiguous, within_bounds], initial, score,
                                      maximize=False, rng=random.Random(seed))
    steps, stopped = 0, "budget"
    try:
        for _ in optimizer.short_bursts(BURST_LENGTH, 10**9):
            steps += 1
            if time.monotonic() >= deadline:
                break
    except Exception as err:  # e.g. ReCom cannot find a balanced cut for any district pair
        stopped = f"chain stopped: {type(err).__name__}: {str(err)[:120]}"
    best = optimizer.best_part if optimizer.best_part is not None else initial
    plan = np.array([best.assignment[i] for i in range(case.problem.n)])
    return {"assignment": plan, "time_s": time.monotonic() - start, "first_valid_s": first_valid_s,
            "retries": retries, "steps": steps, "first_objective": first_obj,
            "detail": f"{retries} retries, first plan {first_obj:,.2f}, {steps} ReCom steps; {stopped}"}


def _pysal_weights(case: Case):
    from libpysal.weights import W

    g = case.problem.graph
    return W({i: sorted(g.adj[i]) for i in range(case.problem.n)}, silence_warnings=True)


def run_spopt(method: str, case: Case, seed: int, budget: float) -> dict:
    """One spopt region method on the coordinates (km); labels as found (may not be k regions)."""
    import warnings

    from sklearn.metrics import pairwise as skm
    from spopt.region import AZP, MaxPHeuristic, RegionKMeansHeuristic, Skater

    warnings.filterwarnings("ignore")
    start = time.monotonic()
    n, k = case.problem.n, case.problem.k
    w = _pysal_weights(case)
    df = pd.DataFrame({"x_km": case.xy_km[:, 0], "y_km": case.xy_km[:, 1],
                       "population": case.problem.workload})
    attrs = ["x_km", "y_km"]
    detail = ""
    if method == "skater":
        floor = max(1, n // (2 * k))
        model = Skater(df, w, attrs, n_clusters=k, floor=floor, spanning_forest_kwds={
            "dissimilarity": partial(skm.euclidean_distances, squared=True)})
        detail = f"floor {floor} units"
    elif method == "azp":
        model = AZP(df, w, attrs, n_clusters=k, random_state=seed)
    elif method == "maxp":
        np.random.seed(seed)
        random.seed(seed)
        model = MaxPHeuristic(df, w, attrs, "population", float(case.lower[0]), top_n=2)
        detail = f"threshold {case.lower[0]:,.0f}"
    elif method == "kmeans":
        model = RegionKMeansHeuristic(case.xy_km, k, w, seed=seed)
    else:
        raise ValueError(f"unknown spopt method {method!r}")
    model.solve()
    labels = np.asarray(model.labels_)
    _, plan = np.unique(labels, return_inverse=True)
    took = time.monotonic() - start
    return {"assignment": plan, "time_s": took, "first_valid_s": None,
            "detail": (detail + "; " if detail else "") + f"{len(np.unique(labels))} regions"}


RUNNERS: dict[str, Callable[[Case, int, float], dict]] = {
    "ours": run_ours,
    "ours-lns": partial(run_ours, backend="lns"),
    "ours-heuristic": run_ours_heuristic,
    "gerrychain": run_gerrychain,
    **{m: partial(run_spopt, m) for m in SPOPT_METHODS},
}


def _child(conn, method: str, case: Case, seed: int, budget: float) -> None:
    try:
        conn.send(RUNNERS[method](case, seed, budget))
    except BaseException as err:  # report, the parent turns it into a row
        conn.send({"assignment": None, "time_s": float("nan"),
                   "reason": f"{type(err).__name__}: {str(err)[:200]}",
                   "traceback": traceback.format_exc()[-1500:]})
    finally:
        conn.close()


def run_in_child(method: str, case: Case, seed: int, budget: float) -> dict:
    """Run a peer in a forked process, stopped :func:`grace_s` seconds after ``budget``."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    start = time.monotonic()
    proc = ctx.Process(target=_child, args=(child, method, case, seed, budget), daemon=True)
    proc.start()
    child.close()
    result = None
    grace = grace_s(budget)
    if parent.poll(budget + grace):
        try:
            result = parent.recv()
        except EOFError:
            result = None
    took = time.monotonic() - start
    if proc.is_alive():
        proc.kill()
    proc.join()
    if result is None:
        reason = (f"no plan within the budget ({budget:g} s + {grace:g} s grace); stopped"
                  if took >= budget + grace - 1 else f"process ended without a result (exit {proc.exitcode})")
        return {"assignment": None, "time_s": took, "reason": reason}
    return result


# --------------------------------------------------------------------------
# Rows, table, main
# --------------------------------------------------------------------------


def evaluate(case: Case, method: str, seed: int, out: dict, budget: float) -> dict:
    """Turn a method's output into a table row (check and objective computed here)."""
    row = {"instance": case.name, "n": case.problem.n, "k": case.problem.k,
           "tolerance_pct": round(case.problem.tolerance * 100, 4), "method": method, "seed": seed,
           "time_s": out.get("time_s"), "first_valid_s": out.get("first_valid_s"),
           "detail": out.get("detail") or out.get("reason") or "",
           "published": case.published, "published_infeasible": case.published_infeasible}
    for key in ("retries", "steps", "first_objective", "traceback"):
        if key in out:
            row[key] = out[key]
    took = out.get("time_s")
    row["over_budget"] = bool(took is not None and not math.isnan(took) and took > budget * 1.02 + 0.5)
    if row["over_budget"]:
        row["detail"] = f"over budget ({took:.1f} s > {budget:g} s); {row['detail']}"
    plan = out.get("assignment")
    if plan is None:
        row.update(status="no plan", valid=False, contiguous=None, balanced=None, objective=None,
                   max_dev_pct=None, sectors=None)
        return row
    v = verdict(case, np.asarray(plan))
    row.update(status="valid" if v.valid else "invalid", valid=v.valid, contiguous=v.contiguous,
               balanced=v.balanced, sectors=v.sectors, max_dev_pct=v.max_dev_pct,
               objective=inertia(case.problem, np.asarray(plan)), problems=v.problems[:3])
    if not v.valid:
        row["detail"] = "; ".join([*v.problems[:2], row["detail"]])
    return row


def add_ratios(rows: list[dict]) -> None:
    """``ratio_to_ours``: objective / our (auto) objective on the same instance and seed (valid plans);
    ``ratio_to_published``: objective / published optimum (Validi)."""
    ours = {(r["instance"], r["seed"]): r["objective"] for r in rows if r["method"] == "ours" and r["valid"]}
    for r in rows:
        ref = ours.get((r["instance"], r["seed"]))
        r["ratio_to_ours"] = r["objective"] / ref if (r["valid"] and ref) else None
        r["ratio_to_published"] = (r["objective"] / r["published"]
                                   if (r["valid"] and r["published"]) else None)


def table(rows: list[dict]) -> str:
    """Markdown table: instance, method, valid, objective, ratio to ours, max deviation, times."""
    head = ("instance", "method", "seed", "valid", "contiguous", "objective", "÷ ours", "max dev %",
            "time s", "first valid s", "published", "÷ published", "detail")
    return markdown_table(head, ([
        r["instance"], r["method"], str(r["seed"]), YES_NO[r["valid"]] if r["status"] != "no plan" else "no plan",
        YES_NO[r["contiguous"]], fmt(r["objective"]), fmt(r["ratio_to_ours"], ".4f"), fmt(r["max_dev_pct"], ".2f"),
        fmt(r["time_s"], ".1f"), fmt(r["first_valid_s"], ".1f"),
        "infeasible" if r["published_infeasible"] else fmt(r["published"]), fmt(r["ratio_to_published"], ".4f"),
        str(r["detail"]).replace("|", "/").replace("\n", " ")[:110],
    ] for r in rows))


def missing_peers() -> list[str]:
    """Requirement strings of the peer packages that are not installed."""
    out = []
    for module, req in PEER_PACKAGES.items():
        try:
            importlib.metadata.version(module)
        except importlib.metadata.PackageNotFoundError:
            out.append(req)
    return out


def machine() -> str:
    """CPU model (from /proc/cpuinfo when readable), CPU count, OS and Python version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPU, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("gerrychain", "spopt", "libpysal", "ortools", "highspy", "networkx", "numpy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def previous_runs(path: Path) -> list[dict]:
    """The runs already stored in ``path`` (for ``--append``); stops with a message on a damaged file."""
    if not path.exists():
        return []
    try:
        runs = json.loads(path.read_text())["runs"]
    except (ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"--append: {path} is not a peers.json results file ({err}); "
                         "move it away or run without --append")
    return list(runs)


def resolve_instances(spec: str, data: Path) -> list[str]:
    """Expand ``--instances``: names, or the groups ``aura``, ``validi``, ``all``.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    """
    validi = validi_names(data)
    names: list[str] = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        if item == "all":
            names += [*AURA_CASES, *validi]
        elif item == "aura":
            names += list(AURA_CASES)
        elif item == "validi":
            if not validi:
                print(f"note: no Validi instances at {data}; skipping them", file=sys.stderr)
            names += validi
        elif item in AURA_CASES or item in validi:
            names.append(item)
        else:
            raise ValueError(f"--instances: unknown instance {item!r}; choose from aura, validi, all, "
                             f"{', '.join(AURA_CASES)}" + (f", {', '.join(validi)}" if validi else
                                                          f" (no Validi data at {data})"))
    return list(dict.fromkeys(names))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", default="all",
                    help="comma-separated: all, aura, validi, or names (aura-k11-5pc, ..., NM_county, ...)")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per run for our engine (default 60)")
    ap.add_argument("--peer-budget", type=float, default=None,
                    help="seconds per run for GerryChain and spopt (default: --budget)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {', '.join(METHODS)}")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: budget 2 s, peer budget 4 s (unless given), AZP and max-p left out")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the Validi instances")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--append", action="store_true",
                    help="add this run to the runs already in --out instead of replacing them")
    ap.add_argument("--show", action="store_true", help="print the tables of the runs stored in --out, run nothing")
    args = ap.parse_args(argv)
    if args.show:
        runs = previous_runs(args.out)
        if not runs:
            print(f"no results in {args.out}", file=sys.stderr)
            return 3
        for run in runs:
            print(f"`{run['command']}` ({run['date']}, {run['machine']}; budget {run['budget_s']:g} s, "
                  f"peers {run['peer_budget_s']:g} s{'' if run.get('complete') else '; INCOMPLETE'})\n")
            print(table(run["rows"]) + "\n")
        return 0
    given = sys.argv[1:] if argv is None else argv
    if args.quick:
        if "--budget" not in given:
            args.budget = 2.0
        if "--peer-budget" not in given:
            args.peer_budget = 4.0
        if "--methods" not in given:
            args.methods = "ours,ours-heuristic,gerrychain,skater,kmeans"
    peer_budget = args.budget if args.peer_budget is None else args.peer_budget
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        print(f"--methods: unknown {unknown}; choose from {', '.join(METHODS)}", file=sys.stderr)
        return 2
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        print(f"--seeds: expected integers separated by commas, got {args.seeds!r}", file=sys.stderr)
        return 2
    try:
        names = resolve_instances(args.instances, args.data)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    missing = missing_peers()
    if missing and any(m not in ("ours", "ours-lns", "ours-heuristic") for m in methods):
        print(f"the peers are not installed ({', '.join(missing)}); install them with:\n    {INSTALL_HINT}\n"
              "or run only our engine with --methods ours,ours-heuristic", file=sys.stderr)
        return 3
    if not names:
        print("no instances to run", file=sys.stderr)
        return 3
    header = {
        "command": command_line(__file__, given),
        "date": timestamp(),
        "machine": machine(),
        "versions": _versions(),
        "budget_s": args.budget,
        "peer_budget_s": peer_budget,
        "objective": "sum over sectors of min over centre units c of sum_i population_i * d_km(i, c)^2 / 1e6",
    }
    earlier = previous_runs(args.out) if args.append else []
    rows: list[dict] = []
    validi = [n for n in names if n not in AURA_CASES]
    cases_iter = [(n, None) for n in names if n in AURA_CASES]
    for case in validi_cases(args.data, validi) if validi else []:
        cases_iter.append((case.name, case))
    for name, case in cases_iter:
        if case is None:
            case = aura_case(name)
        for seed in seeds:
            for method in methods:
                if method == "skater" and seed != seeds[0]:
                    continue  # deterministic
                if method in ("ours", "ours-lns", "ours-heuristic"):
                    out = RUNNERS[method](case, seed, args.budget)
                else:
                    out = run_in_child(method, case, seed, peer_budget)
                row = evaluate(case, method, seed, out,
                               args.budget if method in ("ours", "ours-lns", "ours-heuristic") else peer_budget)
                rows.append(row)
                print(f"{name:>13} {method:<15} seed {seed} {row['status']:<8} {fmt(row['objective']):>14} "
                      f"max dev {fmt(row['max_dev_pct'], '.2f')} % {fmt(row['time_s'], '.1f')} s "
                      f"{str(row['detail'])[:90]}", file=sys.stderr, flush=True)
        add_ratios(rows)
        atomic_write_json(args.out, {"runs": [*earlier, {**header, "complete": False, "rows": rows}]})
        del case
    add_ratios(rows)
    atomic_write_json(args.out, {"runs": [*earlier, {**header, "complete": True, "rows": rows}]})
    print(table(rows))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
