"""Crash-safe writing: whole files and whole run folders appear at once or not at all.

A file is written to a temporary name in the same folder and renamed over the
target (:func:`os.replace` is atomic on one file system). A run is written to
a hidden staging folder ``out_dir/.tmp-<run>`` and renamed to ``out_dir/<run>``
when complete, then ``out_dir/LATEST`` is updated to name it. A run that fails
half-way leaves no run folder and an unchanged ``LATEST``; a staging folder
left by a killed process is reported and removed by :func:`clean_stale_staging`.

Example
-------
>>> from pathlib import Path
>>> import tempfile
>>> out = Path(tempfile.mkdtemp())
>>> with run_folder(out) as run:
...     atomic_write_text(run.staging / "hello.txt", "bonjour")
>>> (out / (out / "LATEST").read_text().strip() / "hello.txt").read_text()
'bonjour'
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

#: Prefix of the hidden staging folder of a run being written.
STAGING_PREFIX = ".tmp-"

#: Name of the file, in the output folder, that holds the latest run folder's name.
LATEST = "LATEST"


def _temp_sibling(path: Path) -> Path:
    """An unused hidden name next to ``path`` with the same suffix (drivers pick formats by suffix)."""
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    Write the temporary path with any library (e.g.
    ``GeoDataFrame.to_file(tmp)``). If the block raises, the temporary file
    is removed, ``path`` is left as it was, and the exception propagates.

    Example
    -------
    >>> with atomic_path("sectors.geojson") as tmp:          # doctest: +SKIP
    ...     gdf.to_file(tmp, driver="GeoJSON")
    """
    path = Path(path)
    tmp = _temp_sibling(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{path}: nothing was written to the temporary file {tmp.name}")
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically, encoded with ``encoding`` (e.g. ``"utf-8-sig"``)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, payload: object, *, indent: int = 2) -> None:
    """Write ``payload`` as UTF-8 JSON atomically, creating the folder if needed.

    Values JSON does not know (e.g. NumPy numbers) are written as floats.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=indent, ensure_ascii=False, default=float) + "\n")


def new_run_dir(out_dir: str | Path, name: str | None = None) -> Path:
    """Create and return a new, empty run folder ``out_dir/<name>``.

    Parameters
    ----------
    out_dir
        Output folder (created if missing).
    name
        Folder name; default the local time ``YYYYmmdd-HHMMSS``. If a folder
        (or a run being staged) of that name exists, ``-2``, ``-3``, ... is
        appended: an existing run is never reused or overwritten.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = name or datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 10_000):
        candidate = out_dir / (stem if n == 1 else f"{stem}-{n}")
        if (out_dir / f"{STAGING_PREFIX}{candidate.name}").exists():
            continue
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{out_dir}: no free run folder name starting with {stem!r}; clean up old runs")


def publish_run(staging: str | Path, final: str | Path) -> None:
    """Move a complete staging folder to its run folder and point ``LATEST`` at it.

    ``final`` must not exist or be an empty folder (as made by
    :func:`new_run_dir`); a non-empty ``final`` is never replaced.
    ``final.parent / "LATEST"`` is then rewritten atomically with
    ``final.name``.
    """
    staging, final = Path(staging), Path(final)
    if final.exists():
        if any(final.iterdir()):
            raise FileExistsError(f"{final}: run folder already has files; it is never overwritten")
        final.rmdir()
    os.rename(staging, final)
    atomic_write_text(final.parent / LATEST, final.name + "\n")


def latest_run(out_dir: str | Path) -> Path | None:
    """The run folder named in ``out_dir/LATEST``, or ``None`` if there is none yet."""
    latest = Path(out_dir) / LATEST
    if not latest.exists():
        return None
    return Path(out_dir) / latest.read_text(encoding="utf-8").strip()


def clean_stale_staging(out_dir: str | Path, older_than_s: float = 6 * 3600) -> list[str]:
    """Remove staging folders left by runs that died, and say so.

    A staging folder ``.tmp-<run>`` whose last change is older than
    ``older_than_s`` seconds (default 6 hours, longer than any run) is
    removed, together with its empty reserved folder ``<run>``. Younger ones
    may belong to a run in progress: they are only reported.

    Returns
    -------
    list of str
        One human-readable line per staging folder found.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    messages = []
    now = time.time()
    for staging in sorted(out_dir.glob(f"{STAGING_PREFIX}*")):
        if not staging.is_dir():
            continue
        age = now - staging.stat().st_mtime
        if age < older_than_s:
            messages.append(f"{staging}: staging folder of a run in progress or interrupted {age / 60:.0f} min ago; left in place")
            continue
        shutil.rmtree(staging)
        reserved = out_dir / staging.name.removeprefix(STAGING_PREFIX)
        if reserved.is_dir() and not any(reserved.iterdir()):
            reserved.rmdir()
        messages.append(f"{staging}: removed the unfinished staging folder of an interrupted run ({age / 3600:.1f} h old)")
    return messages


@dataclass(frozen=True)
class RunFolder:
    """A run being written: files go to ``staging``; ``final`` is where they will appear."""

    staging: Path
    final: Path


@contextmanager
def run_folder(out_dir: str | Path, name: str | None = None) -> Iterator[RunFolder]:
    """Reserve a new run folder, yield its staging folder, publish on success.

    On success the staging folder becomes the run folder and ``LATEST`` names
    it (:func:`publish_run`). If the block raises, the staging folder and the
    reserved run folder are removed, ``LATEST`` is untouched, and the
    exception propagates.
    """
    final = new_run_dir(out_dir, name)
    staging = final.with_name(STAGING_PREFIX + final.name)
    try:
        staging.mkdir()
        yield RunFolder(staging=staging, final=final)
        publish_run(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()
        raise
