"""End to end on the real AURA data: scenario in, checked plan and run folder out.

The checks on the written files re-derive contiguity and caseload balance
from ``sectors.csv`` and the shipped adjacency alone, independently of the
solver and of :func:`sectorize.pipeline.assemble.check`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pandas as pd
import pytest

from geodata.regions import load_aura
import sectorize
from sectorize.pipeline.assemble import check
from sectorize.pipeline.inputs import load_demand
from sectorize.report.maps import external_resources
from sectorize.config.scenario import ScenarioError, default_scenario, scenario_from_dict
from solvers.problem import InfeasibleError


def quick(scenario, **model):
    """The scenario with a short heuristic solve (a fast end-to-end run)."""
    m = scenario.model.model_copy(update={"backend": "heuristic", "time_limit_s": 6, **model})
    return scenario.model_copy(update={"model": m})


@pytest.fixture(scope="module")
def quick_plan():
    return sectorize.run(quick(default_scenario()))


def check_files(run_dir: Path, region, tolerance: float, group_tolerance: float) -> None:
    """Re-check a written plan from its files alone."""
    sectors = pd.read_csv(run_dir / "sectors.csv", sep=";", dtype=str, encoding="utf-8-sig")
    workers = pd.read_csv(run_dir / "workers.csv", sep=";", dtype=str, encoding="utf-8-sig")
    assert sorted(sectors["insee"]) == sorted(region.units.index), "every unit exactly once"
    assert sectors["insee"].is_unique
    assert sectors["insee"].str.len().eq(5).all(), "INSEE codes keep their leading zeros"
    load = sectors["workload"].str.replace(",", ".").astype(float)
    total = load.sum()
    fte = workers.set_index("sector")["fte"].str.replace(",", ".").astype(float)
    for column, share, tol in (
        ("sector", fte / fte.sum(), tolerance),
        ("group", fte.groupby(workers.set_index("sector")["group"]).sum() / fte.sum(), group_tolerance),
    ):
        for name, members in sectors.groupby(column)["insee"]:
            sub = region.graph.subgraph(members)
            assert nx.is_connected(sub), f"{column} {name} is not connected"
            target = total * share[name]
            got = load[sectors[column] == name].sum()
            assert abs(got / target - 1) <= tol + 1e-6, f"{column} {name}: {got:.1f} vs {target:.1f}"


def test_quick_run_is_valid(quick_plan):
    plan = quick_plan
    assert plan.valid, plan.violations
    assert len(plan.units) == 4033 and plan.units.index.is_unique
    assert plan.workers["sector"].is_unique and len(plan.workers) == 11
    assert set(plan.workers["group"]) == {"A", "B"}
    assert all(s[0] == g for s, g in zip(plan.workers["sector"], plan.workers["group"]))
    assert plan.units["workload"].sum() == pytest.approx(1350 + 0.5 * 600)
    # every worker's sector holds its centre
    for _, w in plan.workers.iterrows():
        assert plan.units.at[w["centre"], "sector"] == w["sector"]
    assert (plan.units["travel_min"] >= 0).all()


def test_checker_catches_a_broken_plan(quick_plan):
    plan = quick_plan
    broken = plan.units.copy()
    # move a commune far from its sector into another one: disconnects and unbalances
    sectors = plan.workers["sector"].tolist()
    victim = broken.index[broken["sector"] == sectors[0]][0]
    far = broken.loc[broken["sector"] != sectors[0]]
    other = far["sector"].iloc[len(far) // 2]
    broken.loc[victim, ["sector", "group"]] = [other, far["group"].iloc[len(far) // 2]]
    bad = type(plan)(plan.scenario, broken, plan.workers, plan.graph)
    msgs = check(bad)
    assert any("not connected" in m for m in msgs), msgs


def test_communes_variant_says_why_lyon_does_not_fit():
    s = default_scenario()
    s = s.model_copy(update={"region": s.region.model_copy(update={"variant": "communes"})})
    with pytest.raises(InfeasibleError, match=r"69123 Lyon alone has a caseload .*Lyon-arrondissements"):
        sectorize.run(quick(s))


def test_unknown_base_names_the_key():
    d = default_scenario().model_dump(exclude={"source"})
    d["team"]["workers"][2]["base"] = "99999"
    with pytest.raises(ScenarioError, match=r"team\.workers\[2\]\.base: base '99999'"):
        sectorize.run(quick(scenario_from_dict(d)))


def test_boundary_tie_break_from_the_scenario():
    """``model.tie_break_slack``: shorter borders between sectors, travel within the slack,
    and the reported figures match the border recomputed from the plan's own tables."""
    plan = sectorize.run(quick(default_scenario(), tie_break_slack=0.01))
    assert plan.valid, plan.violations
    tb = plan.solve["tie_break"]
    assert tb["measure"] == "boundary" and tb["solves"] >= 1
    assert tb["boundary_km_after"] <= tb["boundary_km_before"] + 1e-9
    assert tb["objective_after"] <= 1.01 * tb["objective_before"] * (1 + 1e-9)
    sector = plan.units["sector"]
    border = sum(d["border_m"] for a, b, d in plan.graph.edges(data=True) if sector[a] != sector[b])
    cut = sum(1 for a, b in plan.graph.edges if sector[a] != sector[b])
    assert border / 1000 == pytest.approx(tb["boundary_km_after"], abs=1e-3)
    assert cut == tb["cut_edges_after"]
    assert "tie_break" not in sectorize.run(quick(default_scenario(), time_limit_s=2)).solve


def test_tie_break_settings_are_checked():
    with pytest.raises(ScenarioError, match="tie_break_slack"):
        d = default_scenario().model_dump(exclude={"source"})
        d["model"]["tie_break_slack"] = -0.1
        scenario_from_dict(d)
    with pytest.raises(ScenarioError, match="tie_break_measure"):
        d = default_scenario().model_dump(exclude={"source"})
        d["model"].update(tie_break_slack=0.0, tie_break_measure="perimeter")
        scenario_from_dict(d)


def test_user_demand_file_and_base_objective(tmp_path):
    """A French-Excel demand file (``;``, BOM, decimal comma) and the base objective."""
    region = load_aura("lyon_arrondissements")
    synthetic = load_demand(default_scenario(), region).table
    lines = ["code_insee;nouveaux_signalements;suivis_domicile"]
    for key, row in synthetic.iterrows():
        if row["referrals"] or row["home_care"]:
            lines.append(f"{key};{row['referrals']:.0f};{str(row['home_care'] * 1.0).replace('.', ',')}")
    path = tmp_path / "demande.csv"
    path.write_bytes("\r\n".join(lines).encode("utf-8-sig"))
    d = default_scenario().model_dump(exclude={"source"})
    d["demand"] = {"source": "file", "file": str(path),
                   "weights": {"nouveaux_signalements": 1.0, "suivis_domicile": 0.5}}
    d["model"].update(objective="base")
    s = quick(scenario_from_dict(d))
    plan = sectorize.run(s)
    assert plan.valid, plan.violations
    assert plan.units["workload"].sum() == pytest.approx(1650)
    base = plan.workers["base_key"].iloc[0]
    assert base == "69388"
    assert plan.units.at[base, "travel_min"] == pytest.approx(0.0)


@pytest.mark.slow
def test_cli_default_run_writes_a_valid_run_folder(tmp_path, aura_lyon):
    """The README's main command on the packaged default, checked from its files."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "sectorize.cli", "run", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = out / (out / "LATEST").read_text(encoding="utf-8").strip()
    expected = {"sectors.csv", "sectors.geojson", "postcodes.csv", "workers.csv", "kpi.json",
                "kpi.txt", "kpi.html", "map.html", "scenario.toml", "run.json"}
    assert expected <= {p.name for p in run_dir.iterdir()}
    s = default_scenario()
    check_files(run_dir, aura_lyon, s.model.tolerance, s.model.group_tolerance)
    kpis = json.loads((run_dir / "kpi.json").read_text(encoding="utf-8"))
    assert kpis["valid"] is True and kpis["violations"] == []
    # the ground rules of the default (territory cap, Lyon in one group), from the written table
    sectors = pd.read_csv(run_dir / "sectors.csv", sep=";", dtype=str, encoding="utf-8-sig").set_index("insee")
    assert sectors.loc[[f"6938{i}" for i in range(1, 10)], "group"].nunique() == 1
    assert sectors.groupby("sector").size().max() <= 998
    workers = pd.read_csv(run_dir / "workers.csv", sep=";", decimal=",", encoding="utf-8-sig")
    half = workers.loc[workers["fte"] == 0.5, "sector"]
    assert len(half) == 1 and sectors.groupby("sector").size()[half.iloc[0]] <= 499  # 2.5 x 399.3 x 0.5
    assert external_resources((run_dir / "map.html").read_text(encoding="utf-8")) == []
    # the budget is counted in work (model.deterministic, the default), so the solve's wall time
    # depends on the machine's load: what must hold is the work budget, without the safety cap
    work = [float(m.group(1)) for m in re.finditer(r"budget: ([0-9.]+) work seconds counted", proc.stderr)]
    assert work and work[-1] <= s.model.time_limit_s * 1.05, proc.stderr[-2000:]
    assert "wall-time safety cap" not in proc.stderr
    assert "written:" in proc.stdout and "Plan: valid" in proc.stdout
    # a second run never overwrites the first
    proc2 = subprocess.run([sys.executable, "-m", "sectorize.cli", "run", "--out", str(out),
                            "--time-limit", "5", "--quiet"], capture_output=True, text=True, timeout=600)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    runs = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 2 and run_dir in runs


def test_cli_rejects_a_bad_scenario_with_the_key(tmp_path):
    bad = tmp_path / "scenario.toml"
    bad.write_text("[model]\ntolerence = 0.1\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "sectorize.cli", "run", "--config", str(bad),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "model.tolerence" in proc.stderr and "tolerance" in proc.stderr
    assert not any(p.is_dir() for p in tmp_path.iterdir())


def test_cli_missing_demand_file_names_it(tmp_path):
    example = Path(__file__).resolve().parents[1] / "examples" / "aura_default.toml"
    text = example.read_text(encoding="utf-8")
    text = text.replace('source = "synthetic"', 'source = "file"\nfile = "nowhere/demande.csv"', 1)
    cfg = tmp_path / "scenario.toml"
    cfg.write_text(text, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "sectorize.cli", "run", "--config", str(cfg),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "demande.csv" in proc.stderr
    assert not (tmp_path / "out" / "LATEST").exists()


def test_cli_validate_prints_the_effective_scenario():
    proc = subprocess.run([sys.executable, "-m", "sectorize.cli", "validate"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "[model]" in proc.stdout and "tolerance = 0.1" in proc.stdout
