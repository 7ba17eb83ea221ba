"""The planning notebooks, executed in a Jupyter kernel as a planner runs them (issue 22).

Each notebook of ``notebooks/`` runs top to bottom in a real IPython kernel of this Python (a
kernelspec written to a temporary folder, so nothing needs to be installed in Jupyter first). The
code cells say what they show with a tag (cell metadata ``tags``), and the test checks the output:

- ``chart``: an image (``image/png`` or ``image/svg+xml``) of a reasonable size;
- ``table``: an HTML table (``text/html`` holding ``<table``);
- ``map``: the offline Leaflet map (``text/html`` holding the inlined Leaflet and a map, with no
  script, stylesheet or tile to fetch from the internet, in the page or in any ``srcdoc`` frame); with
  Chromium on ``PATH``, the output is also opened with the network cut off (``tests/browser.py``):
  no request may leave the machine and the map must be drawn (screenshot next to the notebook).

Each notebook's budgets sit in its first code cell, tagged ``parameters`` (papermill's convention).
The test injects :data:`TEST_PARAMETERS` in a cell after it, as ``papermill -p`` does: shorter solves,
so the suite stays short; what is checked (the cells run, the figures show, the maps draw offline)
does not depend on them. The committed outputs come from the notebooks' own values.

No cell may fail, and no output may name a folder of this machine (the repository, the home or
temporary folder, the virtual environment). The executed notebooks, with their outputs, are written
to ``$SECTORIZE_TEST_ARTIFACTS`` (default ``<repository>/test-artifacts/notebooks/``), also when a
cell fails, so CI keeps them.

The committed notebooks keep the outputs of such a run (charts and tables read on the forge), maps
left out (several MB each, and forges do not run them). They are written by this module run as a
script, from the repository root::

    .venv/bin/python tests/test_notebooks.py            # every notebook, or name some
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import struct
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

#: Name of the kernel (and of the kernelspec written for it); the notebooks' metadata says the same.
KERNEL = "python3"
#: Seconds a cell may run (the longest solves take about 30 s on a busy 2-core machine).
CELL_TIMEOUT_S = 600
#: Tags that say what a cell shows, and the outputs each asks for.
TAGS = ("chart", "table", "map")
#: What each notebook must show at least, by tag.
EXPECTED = {
    "01_first_sectorization.ipynb": {"chart": 2, "table": 4, "map": 1},
    "02_compare_scenarios.ipynb": {"chart": 2, "table": 3, "map": 1},
    "03_annual_rerun.ipynb": {"chart": 2, "table": 4, "map": 1},
}
#: Values the test sets after each notebook's ``parameters`` cell (seconds of solving: shorter than the
#: notebooks' own, which the committed outputs use).
TEST_PARAMETERS = {
    "01_first_sectorization.ipynb": {"SOLVE_S": 8},
    "02_compare_scenarios.ipynb": {"SOLVE_S": 2, "BASES_S": 4},
    "03_annual_rerun.ipynb": {"LAST_YEAR_S": 3, "RERUN_S": 5.0, "FRONTIER_S": 2.0},
}
#: Key of the notebooks' metadata that records the sources the committed outputs come from.
STAMP = "sectorize"
#: The map output kept in a committed notebook instead of the map (several MB that forges do not run).
MAP_LEFT_OUT = ("Interactive map not kept in the committed notebook (several MB, and forges do not run it). "
                "Run the notebook: the map displays here, without internet.")


def artefacts_dir() -> Path:
    """Where executed notebooks go: ``$SECTORIZE_TEST_ARTIFACTS``, else ``<repo>/test-artifacts/notebooks/``."""
    folder = Path(os.environ.get("SECTORIZE_TEST_ARTIFACTS") or ROOT / "test-artifacts" / "notebooks")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --------------------------------------------------------------------------- running a notebook


def write_kernelspec(folder: Path) -> Path:
    """A kernelspec ``python3`` in ``folder/kernels`` that starts ipykernel with this very Python.

    Jupyter's own lookup could find a ``python3`` kernel of another Python first (the user's or the
    system's); this one is the only kernel the test's kernel manager sees.
    """
    from ipykernel.kernelspec import write_kernel_spec

    kernels = folder / "kernels"
    kernels.mkdir(parents=True, exist_ok=True)
    write_kernel_spec(kernels / KERNEL, overrides={"display_name": "Python 3 (ipykernel)"})
    return kernels


def kernel_environment() -> dict[str, str]:
    """The kernel's environment: this one, with the working tree first on the import path and
    matplotlib's inline backend (a ``MPLBACKEND`` set for the tests, e.g. ``Agg``, would hide figures)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # no warning about frozen modules from the debugger
    return env


def inject_parameters(nb, values: dict[str, object]) -> None:
    """Add a cell setting ``values`` right after the cell tagged ``parameters`` (as ``papermill -p``)."""
    import nbformat

    found = [i for i, cell in enumerate(nb.cells) if "parameters" in tags(cell)]
    assert len(found) == 1, f"expected one cell tagged 'parameters', found {len(found)}"
    unknown = [name for name in values if not re.search(rf"^{name}\s*=", nb.cells[found[0]].source, re.M)]
    assert not unknown, f"the parameters cell sets no {unknown}"
    source = "# Parameters injected by the tests\n" + "\n".join(f"{name} = {value!r}" for name, value in values.items())
    nb.cells.insert(found[0] + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))


def execute(path: Path, kernels: Path, *, record_timing: bool = True, parameters: dict[str, object] | None = None):
    """Execute the notebook at ``path`` in a fresh kernel, working folder ``notebooks/``, with
    ``parameters`` (:func:`inject_parameters`) if given.

    Returns ``(notebook, error)``: the notebook with every output up to the end or to the failing
    cell, and the :class:`nbclient.exceptions.CellExecutionError` or ``None``.
    """
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    if parameters:
        inject_parameters(nb, parameters)
    km = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    client = NotebookClient(nb, km=km, kernel_name=KERNEL, timeout=CELL_TIMEOUT_S, startup_timeout=120,
                            record_timing=record_timing, resources={"metadata": {"path": str(path.parent)}})
    try:  # cleanup_kc: shut the kernel down at the end, though the client did not create its manager
        client.execute(env=kernel_environment(), cleanup_kc=True)
    except CellExecutionError as err:
        return nb, err
    return nb, None


# --------------------------------------------------------------------------- reading the outputs


def plain(text: str) -> str:
    """``text`` without the terminal colour codes of IPython's tracebacks."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def outputs(cell) -> list[dict]:
    return list(cell.get("outputs", []))


def output_texts(cell) -> list[str]:
    """Every text of a cell's outputs: streams, tracebacks and the text-like display data."""
    texts = []
    for out in outputs(cell):
        if out.get("output_type") == "stream":
            texts.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            texts += [out.get("ename", ""), out.get("evalue", ""), *out.get("traceback", [])]
        for mime, value in out.get("data", {}).items():
            if mime.startswith("text/") or mime in ("application/json", "image/svg+xml"):
                texts.append(value if isinstance(value, str) else str(value))
    return texts


def png_size(data: str) -> tuple[int, int]:
    """(width, height) of a base64 PNG."""
    raw = base64.b64decode(data)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "image/png output is not a PNG"
    return struct.unpack(">II", raw[16:24])


def chart_problems(cell) -> list[str]:
    for out in outputs(cell):
        data = out.get("data", {})
        if "image/png" in data:
            width, height = png_size(data["image/png"])
            return [] if width >= 300 and height >= 150 else [f"the image is only {width} x {height} pixels"]
        if "image/svg+xml" in data:
            return [] if "<svg" in data["image/svg+xml"] else ["the image/svg+xml output holds no <svg>"]
    shown = [out.get("data", {}).get("text/plain", out.get("output_type")) for out in outputs(cell)]
    return [f"no image/png or image/svg+xml output (outputs: {shown})"]


def table_problems(cell) -> list[str]:
    if any("<table" in out.get("data", {}).get("text/html", "") for out in outputs(cell)):
        return []
    return ["no text/html output with a <table>"]


#: A script or stylesheet fetched from another machine (``src``/``href`` starting http:, https: or //).
_REMOTE = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)
_SRCDOC = re.compile(r"""\bsrcdoc\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)


def documents(page: str) -> list[str]:
    """The page and every page inside it as ``<iframe srcdoc>``, at any depth."""
    found, todo = [], [page]
    while todo:
        doc = todo.pop()
        found.append(doc)
        todo += [html.unescape(m[1] if m[1] is not None else m[2]) for m in _SRCDOC.finditer(doc)]
    return found


def map_html(cell) -> str | None:
    for out in outputs(cell):
        page = out.get("data", {}).get("text/html", "")
        if "srcdoc" in page or "L.map(" in page:
            return page
    return None


def map_problems(cell) -> list[str]:
    from sectorize.report.maps import external_resources

    page = map_html(cell)
    if page is None:
        return ["no text/html output with a map"]
    docs = documents(page)
    problems = []
    if not any("Leaflet 1.9.4" in doc and "L.map(" in doc for doc in docs):
        problems.append("the output holds no map drawn with the inlined Leaflet 1.9.4")
    for doc in docs:
        remote = external_resources(doc) + [m.group(0) for m in _REMOTE.finditer(doc)]
        if remote:
            problems.append(f"the map would fetch from the internet: {remote[:5]}")
    return problems


CHECKS = {"chart": chart_problems, "table": table_problems, "map": map_problems}


def machine_paths() -> list[str]:
    """Folders of this machine that no output may name."""
    paths = {str(ROOT), str(Path(sys.prefix).resolve()), str(Path(tempfile.gettempdir()).resolve()) + os.sep}
    home = str(Path.home())
    if home not in ("/", ""):
        paths.add(home + os.sep)
    return sorted(p for p in paths if len(p) > 4)


def notebook_problems(nb, name: str, *, maps: bool = True) -> list[str]:
    """Every way an executed notebook falls short: errors, missing figures, tables, maps (unless
    ``maps`` is false: a committed notebook leaves them out), folders of this machine."""
    checked = set(TAGS) if maps else set(TAGS) - {"map"}
    problems, shown = [], dict.fromkeys(checked, 0)
    forbidden = machine_paths()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = f"{name}, cell {i} ({cell.source.splitlines()[0][:60] if cell.source else 'empty'!r})"
        for out in outputs(cell):
            if out.get("output_type") == "error":
                problems.append(f"{where}: {out.get('ename')}: {out.get('evalue')}")
        for tag in sorted(tags(cell) & checked):
            found = CHECKS[tag](cell)
            problems += [f"{where}, tagged {tag}: {p}" for p in found]
            shown[tag] += not found
        for text in output_texts(cell):
            for path in forbidden:
                if path in text:
                    problems.append(f"{where}: an output names {path!r}, a folder of this machine")
    for tag, least in EXPECTED.get(name, {}).items():
        if tag in checked and shown[tag] < least:
            problems.append(f"{name}: {shown[tag]} cell(s) tagged {tag!r} show one, expected at least {least}")
    return problems


def sources_digest(nb) -> str:
    """SHA-256 of the code cells' sources, in order (what the committed outputs come from)."""
    digest = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode("utf-8") + b"\0")
    return digest.hexdigest()


# --------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def kernels(tmp_path_factory) -> Path:
    return write_kernelspec(tmp_path_factory.mktemp("jupyter"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_a_kernel_and_shows_its_figures(path, kernels, tmp_path):
    import nbformat

    nb, error = execute(path, kernels, parameters=TEST_PARAMETERS.get(path.name))
    artefact = artefacts_dir() / path.name
    nbformat.write(nb, artefact)
    if error is not None:
        pytest.fail(f"{path.name} failed (executed notebook: {artefact}):\n{plain(str(error))}")
    problems = notebook_problems(nb, path.name)
    assert not problems, f"executed notebook: {artefact}\n" + "\n".join(problems)

    from browser import find_chromium, open_offline, read_png

    if find_chromium() is None:
        return
    for cell in nb.cells:
        if "map" in tags(cell):
            page = tmp_path / f"{path.stem}-map.html"
            page.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
                            f'<body style="margin:0;width:1000px">{map_html(cell)}</body></html>', encoding="utf-8")
            shot = artefacts_dir() / f"{path.stem}-map.png"
            run = open_offline(page, screenshot=shot, window=(1000, 700), budget_ms=20_000)
            assert run.requests == [], f"{path.name}: the inline map asked the internet for {run.requests[:5]}"
            pixels = Counter(px for row in read_png(shot).rows for px in row)
            commonest = pixels.most_common(1)[0][1] / pixels.total()
            assert commonest < 0.6 and len(pixels) > 50, (
                f"{path.name}: the inline map drew nothing (screenshot {shot}: one colour covers "
                f"{commonest:.0%}, {len(pixels)} colours)")


def test_notebooks_are_tagged_and_committed_with_fresh_outputs():
    """The committed notebooks: cells tagged as the test expects, outputs of the current sources
    (written by this module run as a script), no error, no map payload, no folder of this machine."""
    import nbformat

    assert [p.name for p in NOTEBOOKS] == sorted(EXPECTED)
    problems = []
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        for tag, least in EXPECTED[path.name].items():
            tagged = sum(tag in tags(c) for c in code)
            if tagged < least:
                problems.append(f"{path.name}: {tagged} cell(s) tagged {tag!r}, expected at least {least}")
        try:  # the tests' shorter budgets still name the notebook's parameters
            inject_parameters(nbformat.from_dict(nb), TEST_PARAMETERS.get(path.name, {}))
        except AssertionError as err:
            problems.append(f"{path.name}: {err}")
        stamp = nb.metadata.get(STAMP, {}).get("sources_sha256")
        if stamp != sources_digest(nb):
            problems.append(f"{path.name}: the outputs are not those of the current code cells; "
                            "re-run `.venv/bin/python tests/test_notebooks.py`")
        if [c.get("execution_count") for c in code] != list(range(1, len(code) + 1)):
            problems.append(f"{path.name}: the code cells were not run once each, in order")
        for cell in code:
            for out in outputs(cell):
                if "L.map(" in out.get("data", {}).get("text/html", ""):
                    problems.append(f"{path.name}: a map is kept in the committed notebook (several MB)")
        problems += notebook_problems(nb, path.name, maps=False)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- the committed notebooks


def leave_maps_out(nb) -> None:
    """Replace each map output by a one-line note (the map is several MB and forges do not run it)."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in outputs(cell):
            data = out.get("data", {})
            if "L.map(" in data.get("text/html", "") or "L.map(" in html.unescape(data.get("text/html", "")):
                out["data"] = {"text/plain": MAP_LEFT_OUT}
                out["metadata"] = {}


def write_committed(paths: list[Path]) -> int:
    """Execute ``paths`` and write them back with their outputs (maps left out); 1 if one fails."""
    import nbformat

    status = 0
    with tempfile.TemporaryDirectory(prefix="sectorize-kernel-") as tmp:
        kernels = write_kernelspec(Path(tmp))
        for path in paths:
            print(f"executing {path.relative_to(ROOT)} ...", flush=True)
            nb, error = execute(path, kernels, record_timing=False)
            problems = notebook_problems(nb, path.name)
            if error is not None or problems:
                artefact = artefacts_dir() / path.name
                nbformat.write(nb, artefact)
                print(f"  not written: {plain(str(error or ''))}\n  " + "\n  ".join(problems)
                      + f"\n  executed copy: {artefact}")
                status = 1
                continue
            leave_maps_out(nb)
            nb.metadata[STAMP] = {"sources_sha256": sources_digest(nb)}
            nbformat.write(nb, path)
            print(f"  written, {path.stat().st_size / 1e3:.0f} kB")
    return status


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # the working tree's sectorize, as in the kernel
    chosen = [Path(a).resolve() for a in sys.argv[1:]] or NOTEBOOKS
    sys.exit(write_committed(chosen))
