"""Every ``[model]`` setting of a scenario reaches the solver, for ``run`` and for ``rerun``.

Both commands translate the scenario through
:meth:`sectorize.pipeline.inputs.Inputs.solver_options`; these tests catch the
keyword arguments each command hands to the solver (``solve_nested`` for a
plan from scratch, ``resolve_nested`` for the re-run) and stop there, so no
solve runs. A new field of :class:`~sectorize.config.scenario.ModelConfig`
fails :func:`test_every_model_setting_is_covered` until it is listed in
``SETTINGS`` with the check of how it reaches the solver.
"""

from __future__ import annotations

import numpy as np
import pytest

from sectorize.config.scenario import ModelConfig, default_scenario
from sectorize.pipeline import rerun as rerun_module
from sectorize.pipeline import run as run_module
from sectorize.pipeline.inputs import TIE_BREAK_WEIGHT
from sectorize.pipeline.rerun import load_previous


def _reached(key: str, expected):
    """A check that the solver's keyword ``key`` equals ``expected``."""
    return lambda kwargs: kwargs[key] == expected


def _sparse_weight(kwargs) -> bool:
    """``cost_weight`` = caseload + 0.2 x its mean, for ``sparse_weight = 0.2``."""
    w = kwargs["workload"]
    return np.allclose(kwargs["cost_weight"], w + 0.2 * w.mean())


#: The default team's FTE, in scenario order (8 x 1.0, 2 x 0.8, 0.5): the caps are per worker.
FTE = np.array([1.0] * 8 + [0.8] * 2 + [0.5])


def _area_caps(kwargs) -> bool:
    """``territory_measure = "area_km2"``: each unit's km² (AURA: 70,799 km² in all), caps of
    2.5 x the region's km² per FTE x fte."""
    size, caps = kwargs["size"], kwargs["max_size"]
    return (kwargs["size_unit"] == "km²" and abs(size.sum() - 70_799) < 10 and size.min() > 0
            and np.allclose(caps, 2.5 * size.sum() / FTE.sum() * FTE))


#: ``{setting: (changes to the default scenario, check of the solver's keyword arguments)}``.
SETTINGS = {
    "tolerance": ({"model.tolerance": 0.07}, _reached("tolerance", 0.07)),
    "group_tolerance": ({"model.group_tolerance": 0.02}, _reached("group_tolerance", 0.02)),
    "objective": ({"model.objective": "base"}, _reached("objective", "base")),
    "backend": ({"model.backend": "lns"}, _reached("backend", "lns")),
    "time_limit_s": ({"model.time_limit_s": 17.0}, _reached("time_limit_s", 17.0)),
    "seed": ({"model.seed": 5}, _reached("seed", 5)),
    "deterministic": ({"model.deterministic": False}, _reached("deterministic", False)),
    "sparse_weight": ({"model.sparse_weight": 0.2}, _sparse_weight),
    "tie_break_slack": ({"model.tie_break_slack": 0.01},
                        lambda kw: kw["tie_break_slack"] == 0.01 and kw["tie_break_weight"] == TIE_BREAK_WEIGHT),
    "tie_break_measure": ({"model.tie_break_slack": 0.0, "model.tie_break_measure": "cut_edges"},
                          lambda kw: kw["tie_break_slack"] == 0.0 and kw["tie_break_weight"] is None),
    "territory_measure": ({"model.territory_measure": "area_km2"}, _area_caps),
    "territory_per_fte": ({"model.territory_per_fte": 1200.0},
                          lambda kw: kw["size_unit"] == "communes" and np.array_equal(kw["size"], np.ones(4033))
                          and np.allclose(kw["max_size"], 1200.0 * FTE)),
    "territory_factor": ({"model.territory_factor": 3.0},
                         lambda kw: np.allclose(kw["max_size"], 3.0 * 4033 / FTE.sum() * FTE)),
}


class _Caught(Exception):
    """Raised by the stand-in solver once it has the arguments."""


def _catch(monkeypatch, module, name: str) -> dict:
    """Replace ``module.name`` by a solver that records its arguments and stops the command."""
    seen: dict = {}

    def fake(graph, workload, *args, **kwargs):
        seen.update(kwargs, workload=np.asarray(workload))
        raise _Caught

    monkeypatch.setattr(module, name, fake)
    return seen


def test_every_model_setting_is_covered():
    assert set(SETTINGS) == set(ModelConfig.model_fields)


#: Translations that are not one ``[model]`` field each: the defaults, ``"auto"`` and ``[groups]``.
LYON = [f"6938{i}" for i in range(1, 10)]
DERIVED = {
    "defaults: communes capped at 2.5 x the mean per FTE, Lyon in one group, objective auto = pmedian, "
    "budgets counted in work": (
        {}, lambda kw: (kw["objective"] == "pmedian" and kw["deterministic"] is True
                        and np.allclose(kw["max_size"], 2.5 * 4033 / FTE.sum() * FTE)
                        and kw["size_unit"] == "communes" and len(kw["keep_together"]) == 1
                        and len(kw["keep_together"][0]) == 9)),
    "territory_measure none: no cap": (
        {"model.territory_measure": "none"}, lambda kw: kw["size"] is None and kw["max_size"] is None),
    "keep_together off": ({"groups.keep_together": []}, lambda kw: kw["keep_together"] == []),
    "keep_together given": ({"groups.keep_together": [["69123", "69266"]]},
                            lambda kw: len(kw["keep_together"]) == 1 and len(kw["keep_together"][0]) == 10),
}


@pytest.mark.parametrize("case", sorted(DERIVED))
def test_run_hands_the_derived_settings_to_the_solver(case, monkeypatch):
    changes, reached = DERIVED[case]
    seen = _catch(monkeypatch, run_module, "solve_nested")
    with pytest.raises(_Caught):
        run_module.run(default_scenario().with_(**changes))
    assert reached(seen), {k: seen.get(k) for k in ("objective", "size_unit", "keep_together")}


def test_objective_auto_becomes_base_when_every_worker_has_her_own_base(monkeypatch):
    scenario = default_scenario()
    homes = ["69383", "69266", "69259", "69034", "69029", "69256", "38544", "38053", "69264", "42218", "38185"]
    for worker, home in zip([w.id for w in scenario.team.workers], homes):
        scenario = scenario.with_worker(worker, base=home)
    seen = _catch(monkeypatch, run_module, "solve_nested")
    with pytest.raises(_Caught):
        run_module.run(scenario)
    assert seen["objective"] == "base"


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_run_hands_the_setting_to_the_solver(setting, monkeypatch):
    changes, reached = SETTINGS[setting]
    seen = _catch(monkeypatch, run_module, "solve_nested")
    with pytest.raises(_Caught):
        run_module.run(default_scenario().with_(**changes))
    assert reached(seen), {k: seen.get(k) for k in ("tolerance", "group_tolerance", "objective", "backend",
                                                      "time_limit_s", "seed", "tie_break_slack", "tie_break_weight")}


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_rerun_hands_the_setting_to_the_solver(setting, monkeypatch, aura_run):
    folder, _ = aura_run
    changes, reached = SETTINGS[setting]
    seen = _catch(monkeypatch, rerun_module, "resolve_or_widen")
    scenario = default_scenario().with_(**changes)
    with pytest.raises(_Caught):
        rerun_module.rerun(scenario, load_previous(folder))
    assert reached(seen), {k: seen.get(k) for k in ("tolerance", "group_tolerance", "objective", "backend",
                                                      "time_limit_s", "seed", "tie_break_slack", "tie_break_weight")}


def test_run_and_rerun_share_one_translation(monkeypatch, aura_run):
    """The same scenario gives the same solver options to both commands (time limit and all)."""
    folder, _ = aura_run
    scenario = default_scenario().with_(**{"model.tie_break_slack": 0.02, "model.seed": 3})
    from_run = _catch(monkeypatch, run_module, "solve_nested")
    with pytest.raises(_Caught):
        run_module.run(scenario)
    from_rerun = _catch(monkeypatch, rerun_module, "resolve_or_widen")
    with pytest.raises(_Caught):
        rerun_module.rerun(scenario, load_previous(folder))
    shared = set(from_run) & set(from_rerun) - {"progress", "workload"}
    assert {"tolerance", "backend", "time_limit_s", "seed", "tie_break_slack", "cost_weight", "size", "max_size",
            "keep_together", "deterministic"} <= shared
    for key in shared:
        a, b = from_run[key], from_rerun[key]
        same = np.array_equal(a, b) if isinstance(a, np.ndarray) or isinstance(b, np.ndarray) else a == b
        assert same, key


@pytest.mark.parametrize("solver", ["solve_nested", "resolve_nested"])
def test_both_solvers_accept_every_option(solver):
    """The real solvers take every keyword :meth:`Inputs.solver_options` gives (no fake in between)."""
    import inspect

    import solvers

    from sectorize.pipeline.inputs import load_inputs

    keys = set(load_inputs(default_scenario()).solver_options())
    parameters = inspect.signature(getattr(solvers, solver)).parameters
    assert keys <= set(parameters), sorted(keys - set(parameters))


def test_rerun_runs_the_tie_break_for_real(aura_run):
    """No stand-in: a re-run with ``model.tie_break_slack`` reports the tie-break of its sector solves."""
    folder, _ = aura_run
    scenario = default_scenario().with_(**{"model.backend": "heuristic", "model.time_limit_s": 4,
                                           "model.tie_break_slack": 0.01, "rerun.frontier": []})
    result = rerun_module.rerun(scenario, load_previous(folder), with_frontier=False)
    tie_break = result.plan.solve["tie_break"]
    assert tie_break["solves"] == scenario.groups.count  # one per group's sectors
    assert tie_break["cut_edges_after"] <= tie_break["cut_edges_before"]
    assert tie_break["objective_after"] <= tie_break["objective_before"] * 1.01 + 1e-6
    assert not result.plan.violations
