"""The build folder, where a chapter run becomes visible all at once or not at all.

Layout of a build folder ``B``::

    B/notebooks/<chapter>.ipynb        the chapter's Markdown source as a notebook (generated)
    B/runs/<chapter>-<stamp>/          one finished run: <chapter>.ipynb (executed), the files
                                       it wrote (figures/, <chapter>.claims.json) and run.json
    B/chapters/<chapter>               a symbolic link to the chapter's current run
    B/runs/.tmp-<chapter>-<pid>-<n>/   a run in progress (the kernel's working directory)
    B/runs/failed-<chapter>/           the notebook of the last failed run, for its traceback
    B/report.json                      every current run's record, gathered (for the report)

A run executes in its own temporary folder; only when the notebook finished, its claims were
read and its record written is the folder renamed into ``runs/`` and the link replaced
(``os.replace`` of a link is atomic). A killed or failed run therefore never changes what
``render`` shows: the previous run stays current. Stale temporary folders are removed by the
next run of the same chapter.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import nbformat

from bea_lib import fileio  # imports no torch (bea_lib loads its modules on first use)

from .sources import BookError

RUN_RECORD = "run.json"


def sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, obj) -> None:
    """``obj`` as indented JSON at ``path``, atomically (``bea_lib.fileio``, the project's one
    atomic writer)."""
    fileio.atomic_write_json(path, obj)


def atomic_notebook(path: Path, notebook) -> None:
    """Write a notebook at ``path``, atomically."""
    fileio.atomic_write(path, lambda tmp: nbformat.write(notebook, tmp))


def check_writable(build_dir: Path) -> Path:
    """Create ``build_dir`` if needed and make sure files can be written in it: one line
    naming the folder otherwise."""
    build_dir = Path(build_dir)
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        probe = build_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise BookError(f"cannot write to the build folder {build_dir} ({reason}); "
                        "choose a writable one with --build-dir") from None
    return build_dir


def current_run(build_dir: Path, chapter: str) -> Path | None:
    """The folder of the chapter's current (finished) run, or None when it has none."""
    link = Path(build_dir) / "chapters" / chapter
    if not link.is_dir() or not (link / RUN_RECORD).is_file():
        return None
    return link.resolve()


def read_run(folder: Path | None) -> dict | None:
    """A run's record (``run.json``), or None."""
    if folder is None or not (Path(folder) / RUN_RECORD).is_file():
        return None
    return json.loads((Path(folder) / RUN_RECORD).read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(build_dir: Path, chapter: str) -> None:
    """Remove the temporary folders of runs of ``chapter`` whose process has died."""
    for old in (Path(build_dir) / "runs").glob(f".tmp-{chapter}-*"):
        pid = old.name[len(f".tmp-{chapter}-"):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


def new_run_folder(build_dir: Path, chapter: str) -> Path:
    """A fresh temporary folder for a run of ``chapter``."""
    runs = Path(build_dir) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    remove_stale(build_dir, chapter)
    folder = runs / f".tmp-{chapter}-{os.getpid()}-{time.time_ns()}"
    folder.mkdir()
    return folder


def keep_failed(build_dir: Path, chapter: str, tmp: Path) -> Path:
    """Move a failed run's folder to ``runs/failed-<chapter>`` (replacing the previous one)."""
    failed = Path(build_dir) / "runs" / f"failed-{chapter}"
    shutil.rmtree(failed, ignore_errors=True)
    os.replace(tmp, failed)
    return failed


def commit_run(build_dir: Path, chapter: str, tmp: Path) -> Path:
    """Make the finished run in ``tmp`` the chapter's current run, in one atomic step."""
    build_dir = Path(build_dir)
    previous = current_run(build_dir, chapter)
    final = build_dir / "runs" / f"{chapter}-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns()}"
    os.replace(tmp, final)
    links = build_dir / "chapters"
    links.mkdir(exist_ok=True)
    staged_link = links / f".{chapter}.{os.getpid()}.link"
    staged_link.unlink(missing_ok=True)
    os.symlink(os.path.relpath(final, links), staged_link)
    os.replace(staged_link, links / chapter)  # the switch: readers see the old run or the new
    if previous is not None and previous != final:
        shutil.rmtree(previous, ignore_errors=True)
    return final


def current_records(build_dir: Path, names) -> dict[str, dict]:
    """chapter -> record of its current run, for the chapters in ``names`` that have one."""
    found = {}
    for name in names:
        record = read_run(current_run(build_dir, name))
        if record is not None:
            found[name] = record
    return found


def read_report(build_dir: Path) -> dict:
    """``report.json``: chapter -> record of its current run, with what the last build did."""
    path = Path(build_dir) / "report.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def update_report(build_dir: Path, names, actions: dict[str, str]) -> dict:
    """Gather the current runs of ``names`` into ``report.json``; ``actions`` says what this
    command did with some of them ("executed", "reused (inputs unchanged)")."""
    before = read_report(build_dir)
    report = {}
    for name, record in current_records(build_dir, names).items():
        action = actions.get(name) or before.get(name, {}).get("action", "executed")
        report[name] = {**record, "action": action}
    write_json(Path(build_dir) / "report.json", report)
    return report
