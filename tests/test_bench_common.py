"""The scaffolding shared by the benchmark scripts (benchmarks/common.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys

import numpy as np
import pytest
from benchmark_scripts import BENCHMARKS, load_benchmark

common = load_benchmark("common")


def test_machine_describes_cpus_python_and_platform():
    assert common.machine() == {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()}


def test_machine_line_is_the_short_form_of_the_results_files():
    assert common.machine_line() == f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU"
    assert common.machine_line().endswith(" CPU")


def test_command_line_records_the_script_and_the_arguments_given(monkeypatch):
    script = BENCHMARKS / "bench_lns.py"
    assert common.command_line(script, ["--case", "aura-k11-2pc", "--seed", "1"]) == \
        "python benchmarks/bench_lns.py --case aura-k11-2pc --seed 1"
    assert common.command_line(str(script), []) == "python benchmarks/bench_lns.py"
    monkeypatch.setattr(sys, "argv", ["benchmarks/bench_lns.py", "--lns-time", "5"])
    assert common.command_line(script) == "python benchmarks/bench_lns.py --lns-time 5"


def test_timestamp_is_utc_iso_to_the_second():
    stamp = common.timestamp()
    when = dt.datetime.fromisoformat(stamp)
    assert when.utcoffset() == dt.timedelta(0) and when.microsecond == 0
    assert stamp.endswith("+00:00") and len(stamp) == len("2026-12-01T11:59:20+00:00")
    assert abs((dt.datetime.now(dt.UTC) - when).total_seconds()) < 5


def test_summary_gives_median_min_max():
    assert common.summary([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert common.summary([4, 1, 2, 10]) == {"median": 3.0, "min": 1, "max": 10}
    assert common.summary(x for x in [7.5]) == {"median": 7.5, "min": 7.5, "max": 7.5}
    with pytest.raises(statistics.StatisticsError):
        common.summary([])


def test_write_result_adds_the_header_keys_and_writes_atomically(tmp_path):
    path = tmp_path / "results" / "end_to_end.json"  # the folder is created
    payload = {"runs": [{"wall_s": np.float64(1.5)}], "summary": {"wall_s": common.summary([1.5])}, "checks": {}}
    written = common.write_result(path, payload, benchmark="end_to_end",
                                  script=BENCHMARKS / "bench_end_to_end.py", argv=["--repeat", "1"])
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert list(stored) == ["benchmark", "command", "timestamp", "machine", "runs", "summary", "checks"]
    assert stored["benchmark"] == "end_to_end"
    assert stored["command"] == "python benchmarks/bench_end_to_end.py --repeat 1"
    assert stored["machine"] == common.machine()
    assert stored["runs"] == [{"wall_s": 1.5}]
    assert stored == json.loads(json.dumps(written, default=float))
    assert path.read_text(encoding="utf-8").endswith("}\n")
    assert [p.name for p in path.parent.iterdir()] == ["end_to_end.json"]  # no temporary file left


def test_write_rows_keeps_header_then_complete_then_rows(tmp_path):
    path = tmp_path / "validi.json"
    header = {"command": "python benchmarks/bench_validi.py", "time_limit_s": 60.0, "machine": "x86_64, 2 CPU"}
    common.write_rows(path, header, [{"instance": "NM_county"}], complete=False)
    first = json.loads(path.read_text(encoding="utf-8"))
    assert list(first) == ["command", "time_limit_s", "machine", "complete", "rows"]
    assert first["complete"] is False and first["rows"] == [{"instance": "NM_county"}]
    common.write_rows(path, header, [{"instance": "NM_county"}, {"instance": "ΔZ"}], complete=True)
    second = json.loads(path.read_text(encoding="utf-8"))
    assert second["complete"] is True and len(second["rows"]) == 2
    assert "ΔZ" in path.read_text(encoding="utf-8")  # UTF-8, not \u escapes
    assert header == {"command": "python benchmarks/bench_validi.py", "time_limit_s": 60.0, "machine": "x86_64, 2 CPU"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["validi.json"]


def test_a_failed_write_leaves_the_previous_result(tmp_path):
    path = tmp_path / "kicks.json"
    common.write_rows(path, {"command": "before"}, [], complete=True)
    before = path.read_text(encoding="utf-8")
    with pytest.raises(TypeError):
        common.write_rows(path, {"command": "after"}, [object()], complete=True)
    assert path.read_text(encoding="utf-8") == before
    assert [p.name for p in tmp_path.iterdir()] == ["kicks.json"]


def test_finish_prints_the_table_and_where_it_wrote(capsys, tmp_path):
    assert common.finish(tmp_path / "x.json", "| a |\n|---|") == 0
    out, err = capsys.readouterr()
    assert out == "| a |\n|---|\n"
    assert err == f"wrote {tmp_path / 'x.json'}\n"


def test_markdown_table():
    text = common.markdown_table(("a", "b c"), [["1", "2"], ("x", "")])
    assert text == "| a | b c |\n|---|---|\n| 1 | 2 |\n| x |  |"
    assert common.markdown_table(["only"], []) == "| only |\n|---|"
    assert common.markdown_row(["1", "—"]) == "| 1 | — |"


def test_fmt_and_yes_no():
    assert common.fmt(None) == "—"
    assert common.fmt(float("nan")) == "—"
    assert common.fmt(32944.254) == "32,944.25"
    assert common.fmt(3, ".1f") == "3.0"
    assert common.fmt(np.float64(0.5), ".3f") == "0.500"
    assert [common.YES_NO[v] for v in (True, False, None)] == ["yes", "NO", "—"]


def test_results_folder_is_the_one_of_the_scripts():
    assert common.RESULTS == BENCHMARKS / "results"


def test_scripts_use_the_shared_helpers():
    validi = load_benchmark("bench_validi")
    peers = load_benchmark("bench_peers")
    assert validi.fmt is common.fmt and peers.fmt is common.fmt
    assert validi.DEFAULT_OUT == common.RESULTS / "validi.json"
    assert load_benchmark("bench_cut_edges").fmt(float("nan")) == "—"
    assert load_benchmark("bench_cut_edges").fmt(12.4) == "12"  # its own default: whole numbers


@pytest.mark.parametrize("name", ["bench_validi", "bench_cut_edges"])
def test_a_script_loaded_by_file_finds_common_without_benchmarks_on_the_path(name, tmp_path):
    """Some tests load a script by its file only; the script puts its own folder on ``sys.path``."""
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location({name!r}, {str(BENCHMARKS / (name + '.py'))!r})\n"
            "module = importlib.util.module_from_spec(spec)\n"
            f"sys.modules[{name!r}] = module\n"
            "spec.loader.exec_module(module)\n"
            "print(module.table([]))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                          check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("| instance | n | k |")
