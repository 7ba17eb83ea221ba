"""``sectorize poster``: the printable PDF of a plan (sectorize.report.poster, sectorize.cli.poster).

The full-region posters (a registry plan in A4, a run folder in A3) are checked with poppler's
``pdfinfo``, ``pdffonts`` and ``pdftotext`` (skipped, saying so, when poppler is absent); pages 1
and 2 are rendered to PNG next to the PDF (``pdftoppm -r 50``) for a look. The layout rules
(columns, rows, wrapping, order) and the file's determinism and atomicity are checked on the
plan's own tables or on a one-department cut of it, which draws in a second or two.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shutil
import subprocess
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from sectorize.cli import poster as poster_cli
from sectorize.plan import Plan
from sectorize.report import poster
from sectorize.report.poster import PosterSource, write_poster

POPPLER = all(shutil.which(tool) for tool in ("pdfinfo", "pdffonts", "pdftotext", "pdftoppm"))
needs_poppler = pytest.mark.skipif(not POPPLER, reason="poppler-utils (pdfinfo, pdffonts, pdftotext, pdftoppm) "
                                   "not installed: apt-get install poppler-utils")

#: Page sizes in points (portrait), as pdfinfo prints them.
A4 = (595.276, 841.89)
A3 = (841.89, 1190.55)


def cli(argv: list[str]) -> int:
    """Run ``sectorize poster ...`` through its own sub-parser, as ``sectorize`` would."""
    parser = argparse.ArgumentParser(prog="sectorize")
    poster_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def page_sizes(pdf: Path) -> list[tuple[float, float]]:
    """Width and height (points) of every page."""
    text = run("pdfinfo", "-f", "1", "-l", "9999", str(pdf))
    return [(float(w), float(h)) for w, h in re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts", text)]


def text_of(pdf: Path) -> str:
    """The PDF's text, whitespace runs made one space."""
    return re.sub(r"\s+", " ", run("pdftotext", "-enc", "UTF-8", str(pdf), "-"))


def close(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return abs(a[0] - b[0]) < 0.5 and abs(a[1] - b[1]) < 0.5


def check_fonts_embedded(pdf: Path) -> None:
    rows = run("pdffonts", str(pdf)).splitlines()[2:]
    assert rows, "no font in the PDF"
    for row in rows:
        flags = re.search(r"\s(yes|no)\s+(yes|no)\s+(yes|no)\s+\d+\s+\d+\s*$", row)
        assert flags and flags.group(1) == "yes", f"font not embedded: {row}"


def check_words_on_page(pdf: Path) -> None:
    """Every word's box (pdftotext -bbox) lies on its page: nothing runs off the paper."""
    html = run("pdftotext", "-bbox", str(pdf), "-")
    for page in re.findall(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', html, flags=re.S):
        width, height = float(page[0]), float(page[1])
        for x0, y0, x1, y1, word in re.findall(
                r'<word xMin="([-\d.]+)" yMin="([-\d.]+)" xMax="([-\d.]+)" yMax="([-\d.]+)">(.*?)</word>', page[2]):
            assert float(x0) >= 0 and float(y0) >= 0 and float(x1) <= width and float(y1) <= height, \
                f"{word!r} at ({x0}, {y0}, {x1}, {y1}) runs off a {width} x {height} page"


def sample_names(sectors: pd.DataFrame, layout_chars: int = 25, n: int = 40) -> list[str]:
    """Commune names short enough never to wrap, with accented ones, and the two the issue names."""
    short = sectors.loc[sectors["name"].str.len() <= layout_chars, "name"]
    accented = short[short.str.contains(r"[^\x00-\x7f]")].sample(15, random_state=1).tolist()
    return ["Saint-Étienne", "Villeurbanne", *accented, *short.sample(n, random_state=2).tolist()]


def check_poster(pdf: Path, plan_id: str, sectors: pd.DataFrame, workers: pd.DataFrame, size: tuple[float, float]
                 ) -> str:
    """The checks every full poster passes; returns its text."""
    sizes = page_sizes(pdf)
    groups = sectors["group"].nunique()
    assert len(sizes) > 1 + groups
    for i, got in enumerate(sizes):
        wanted = (size[1], size[0]) if i <= groups else size   # maps landscape, lists portrait
        assert close(got, wanted), f"page {i + 1}: {got} instead of {wanted}"
    check_fonts_embedded(pdf)
    check_words_on_page(pdf)
    text = text_of(pdf)
    info = run("pdfinfo", "-isodates", str(pdf))
    assert plan_id in re.search(r"Title:\s+(.*)", info).group(1)
    assert plan_id in re.search(r"Subject:\s+(.*)", info).group(1)
    assert plan_id in text
    for sector in sorted(sectors["sector"].unique()):
        assert f"Secteur {sector} " in text, sector
    for name in workers["worker_name"]:
        assert name in text
    for name in sample_names(sectors):
        assert re.sub(r"\s+", " ", name) in text, name
    codes = set(re.findall(r"\b[0-9][0-9AB][0-9]{3}\b", text))
    missing = set(sectors["insee"]) - codes
    assert not missing, f"{len(missing)} commune(s) not listed, e.g. {sorted(missing)[:5]}"
    assert f"page {len(sizes)}/{len(sizes)}" in text
    return text


# --------------------------------------------------------------------------- full posters


@pytest.fixture(scope="module")
def registry_poster(aura_registry, tmp_path_factory):
    """The A4 poster of the registry plan, made by the command line: ``(pdf, exit code, plan id)``."""
    folder, plan_id = aura_registry
    pdf = tmp_path_factory.mktemp("poster") / "affiche.pdf"
    code = cli(["poster", plan_id, "--registry", str(folder), "--out", str(pdf)])
    return pdf, code, plan_id


@pytest.mark.slow
@needs_poppler
def test_registry_plan_poster_is_a4_with_every_sector_worker_and_commune(registry_poster, aura_run_tables,
                                                                          aura_run):
    pdf, code, plan_id = registry_poster
    assert code == 0
    sectors = aura_run_tables[0].reset_index()
    workers = pd.read_csv(aura_run[0] / "workers.csv", sep=";", dtype=str, encoding="utf-8-sig")
    check_poster(pdf, plan_id, sectors, workers, A4)
    created = datetime.fromisoformat(json.loads((aura_run[0] / "run.json").read_text("utf-8"))["created"])
    info = run("pdfinfo", "-isodates", str(pdf))
    stamp = re.search(r"CreationDate:\s+(\S+)", info).group(1)
    assert datetime.fromisoformat(stamp.replace("Z", "+00:00")) == created
    # pages 1 and 2 as pictures, to look at (left next to the PDF)
    run("pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "2", str(pdf), str(pdf.with_suffix("")))
    pictures = sorted(pdf.parent.glob(f"{pdf.stem}-*.png"))
    assert len(pictures) == 2 and all(p.stat().st_size > 20_000 for p in pictures)


@pytest.mark.slow
@needs_poppler
def test_run_folder_poster_in_a3(aura_run, aura_run_tables, registry_poster, tmp_path):
    folder = aura_run[0]
    pdf = tmp_path / "affiche-a3.pdf"
    assert cli(["poster", str(folder), "--out", str(pdf), "--paper", "A3"]) == 0
    sectors = aura_run_tables[0].reset_index()
    workers = pd.read_csv(folder / "workers.csv", sep=";", dtype=str, encoding="utf-8-sig")
    text = check_poster(pdf, folder.name, sectors, workers, A3)
    assert "non publié" in text
    # the same document as the A4 one, enlarged: same pages
    assert len(page_sizes(pdf)) == len(page_sizes(registry_poster[0]))


# --------------------------------------------------------------------------- errors


def test_unknown_plan_id_is_not_found(aura_registry, tmp_path, capsys):
    folder, _ = aura_registry
    pdf = tmp_path / "x.pdf"
    assert cli(["poster", "P20990101-00000000", "--registry", str(folder), "--out", str(pdf)]) == 4
    assert "not found" in capsys.readouterr().err
    assert not pdf.exists()


def test_missing_registry_and_missing_folder_are_not_found(tmp_path, capsys):
    assert cli(["poster", "P20990101-00000000", "--registry", str(tmp_path / "none"),
                "--out", str(tmp_path / "x.pdf")]) == 4
    assert "no plan registry" in capsys.readouterr().err
    assert cli(["poster", str(tmp_path / "runs" / "20990101-000000"), "--out", str(tmp_path / "x.pdf")]) == 4
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.pdf").exists()


def test_folder_that_is_not_a_run_is_bad_input(tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "sectors.csv").write_text("insee;sector\n01001;A1\n", encoding="utf-8")
    assert cli(["poster", str(folder), "--out", str(tmp_path / "x.pdf")]) == 2
    err = capsys.readouterr().err
    assert "not a run folder" in err and "run.json" in err
    assert not (tmp_path / "x.pdf").exists()


def test_output_name_and_existing_file(aura_run, tmp_path, capsys):
    folder = aura_run[0]
    assert cli(["poster", str(folder), "--out", str(tmp_path / "affiche.png")]) == 2
    assert ".pdf" in capsys.readouterr().err
    kept = tmp_path / "old.pdf"
    kept.write_bytes(b"%PDF old")
    assert cli(["poster", str(folder), "--out", str(kept)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert kept.read_bytes() == b"%PDF old"


def test_registered_in_main():
    main = importlib.import_module("sectorize.cli.main")
    if "sectorize.cli.poster" not in main._COMMAND_MODULES:
        pytest.skip("sectorize.cli.poster is not yet listed in sectorize.cli.main._COMMAND_MODULES")
    with pytest.raises(SystemExit) as exit_:
        main.main(["poster", "--help"])
    assert exit_.value.code == 0


# --------------------------------------------------------------------------- layout rules, on a small cut


def one_department(plan: Plan, dep: str = "43") -> PosterSource:
    """The plan cut down to one department (a few hundred communes, no Lyon): a poster in seconds."""
    units = plan.units.loc[plan.units["dep"] == dep].copy()
    workers = plan.workers.loc[plan.workers["sector"].isin(units["sector"].unique())].copy()
    cut = Plan(scenario=plan.scenario, units=units, workers=workers, graph=plan.graph.subgraph(units.index).copy())
    return PosterSource(plan=cut, plan_id="P20261201-0000test", title=f"Département {dep}",
                        created=datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc), effective="non publié",
                        origin="test")


def test_same_plan_same_bytes_and_pages(aura_run, tmp_path):
    source = one_department(aura_run[1])
    first, second = tmp_path / "a.pdf", tmp_path / "b.pdf"
    result = write_poster(source, first)
    write_poster(source, second)
    assert first.read_bytes() == second.read_bytes()
    groups = source.plan.units["group"].nunique()
    assert result.map_pages == 1 + groups and result.pages == result.map_pages + result.list_pages
    if POPPLER:
        assert len(page_sizes(first)) == result.pages
        check_fonts_embedded(first)
        check_words_on_page(first)
        text = text_of(first)
        assert "Le Puy-en-Velay" in text and "P20261201-0000test" in text


def test_failed_write_leaves_no_file(aura_run, tmp_path, monkeypatch):
    source = one_department(aura_run[1])
    out = tmp_path / "affiche.pdf"

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(poster, "_draw_list_page", broken)
    with pytest.raises(OSError, match="disk full"):
        write_poster(source, out)
    assert list(tmp_path.iterdir()) == []


def test_lists_hold_every_commune_once_within_the_page(aura_run):
    plan = aura_run[1]
    measure = poster._Measure()
    layout = poster._list_layout(*poster.PAPERS["A4"], list(plan.units["name"]), measure)
    colours = {(str(g), str(s)): c for (g, s), c in poster.sector_colours(plan).items()}
    facts = poster._sector_facts(plan, colours)
    pages = poster._list_pages(plan, facts, layout)
    listed = [row.insee for page in pages for column in page.columns for row in column]
    assert sorted(listed) == sorted(plan.units.index) and len(set(listed)) == len(listed)
    usable = poster.PAPERS["A4"][0] - 2 * layout.left
    for page in pages:
        assert 1 <= len(page.columns) <= layout.columns
        for column in page.columns:
            assert sum(row.height for row in column) <= layout.rows_per_column
            assert {page.facts.sector} == {plan.units.at[row.insee, "sector"] for row in column}
        for line in poster._grid_lines(page.columns, layout):
            assert len(line) * layout.char_w <= usable + 1e-9
    assert layout.top + (layout.rows_per_column - 1) * layout.row_h <= layout.bottom
    # each sector's communes in alphabetical order, accents and case ignored
    first = [row.insee for page in pages if page.facts.sector == facts[0].sector
             for column in page.columns for row in column]
    keys = [poster._sort_key(plan.units.at[k, "name"], k) for k in first]
    assert keys == sorted(keys)


def test_wrapping_sorting_and_dates():
    assert poster._wrap_chars("Saint-Laurent-les-Bains-Laval-d'Aurelle", 20) == [
        "Saint-Laurent-les-", "Bains-Laval-d'", "Aurelle"]
    assert all(len(line) <= 8 for line in poster._wrap_chars("Abcdefghijklmnopqrstuvwxyz", 8))
    assert poster._wrap_chars("Lyon", 20) == ["Lyon"]
    names = ["Feyzin", "Écully", "Eclose-Badinières", "éveux", "Ecully"]
    assert sorted(names, key=lambda n: poster._sort_key(n, "")) == [
        "Eclose-Badinières", "Écully", "Ecully", "éveux", "Feyzin"]
    assert poster._effective_text([]) == "non publié"
    assert poster._effective_text([(date(2027, 1, 1), None)]) == "en vigueur à partir du 01/01/2027"
    assert poster._effective_text([(date(2026, 1, 1), date(2027, 1, 1))]) == "en vigueur du 01/01/2026 au 31/12/2026"
    assert poster._postcodes("74000|74370") == ["74000", "74370"] and poster._postcodes(None) == []


def test_published_plan_says_from_when(registry_copy):
    from sectorize.store.registry import Registry

    folder, plan_id = registry_copy
    Registry(folder).publish(plan_id, date(2027, 1, 1), note="CODIR")
    source = poster.load_poster_source(plan_id, registry=folder)
    assert source.effective == "en vigueur à partir du 01/01/2027"
    assert source.plan_id == plan_id and source.valid
    assert {"postcodes", "population", "sector", "worker_name"} <= set(source.plan.units.columns)


def test_unknown_paper_is_refused(aura_run, tmp_path):
    with pytest.raises(ValueError, match="A4, A3"):
        write_poster(one_department(aura_run[1]), tmp_path / "x.pdf", paper="Letter")
