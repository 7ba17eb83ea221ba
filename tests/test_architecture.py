"""The house rules: import contracts, the front door, one exit-code table.

The contracts themselves live in ``pyproject.toml`` (``[tool.importlinter]``):
``sectorize`` above ``solvers`` and ``geodata``, which never import each other;
no geometry or web library in ``solvers``; no import cycle inside ``solvers``;
``sectorize.config`` at the bottom of the composition layer; nothing imports
``sectorize.cli``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sectorize

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    command = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize("name", sorted(set(sectorize.__all__) - {"__version__"}))
def test_front_door_exports_resolve(name):
    assert getattr(sectorize, name) is not None
    assert name in dir(sectorize)


def test_front_door_is_lazy():
    """``import sectorize`` loads no heavy library: the command line's help stays instant."""
    code = "import sys, sectorize; print(sorted(m for m in ('geopandas', 'folium', 'ortools', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_front_door_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        sectorize.nothing_here  # noqa: B018


def test_exit_codes_are_one_table():
    from sectorize.cli.exit_codes import ExitCode, classify
    from sectorize.config.scenario import ScenarioError
    from sectorize.store.registry import PlanNotFoundError, RegistryNotFoundError
    from solvers import InfeasibleError, NoPlanFoundError

    assert classify(InfeasibleError("x")) is ExitCode.NO_PLAN
    assert classify(NoPlanFoundError("x")) is ExitCode.NO_PLAN
    assert classify(PlanNotFoundError("x")) is ExitCode.NOT_FOUND
    assert classify(RegistryNotFoundError("x")) is ExitCode.NOT_FOUND
    assert classify(ScenarioError("x")) is ExitCode.BAD_INPUT
    assert classify(FileNotFoundError("demand.csv")) is ExitCode.BAD_INPUT
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4]


def test_not_found_is_the_same_code_for_every_command(tmp_path, capsys):
    from sectorize.cli import main
    from sectorize.cli.exit_codes import ExitCode

    nowhere = tmp_path / "nowhere"
    assert main(["plans", "list", "--registry", str(nowhere)]) == ExitCode.NOT_FOUND
    assert main(["simulate", "--run", str(nowhere)]) == ExitCode.NOT_FOUND
    assert "not found" in capsys.readouterr().err


def test_front_door_lists_every_export_once():
    from sectorize import _EXPORTS

    assert sorted(sectorize.__all__) == sorted({"__version__", *_EXPORTS})
    assert len(sectorize.__all__) == len(set(sectorize.__all__))


def test_report_tells_a_proof_from_a_search_out_of_time():
    import io

    from sectorize.cli.exit_codes import ExitCode, report
    from solvers import InfeasibleError, NoPlanFoundError

    out = io.StringIO()
    assert report(NoPlanFoundError("none in 2 s"), out) == ExitCode.NO_PLAN
    assert report(InfeasibleError("69123 alone is too heavy"), out) == ExitCode.NO_PLAN
    assert out.getvalue().splitlines() == ["no plan found in the time given: none in 2 s",
                                           "no plan: 69123 alone is too heavy"]
