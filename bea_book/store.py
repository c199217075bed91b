"""The build folder, where a chapter run becomes visible all at once or not at all.

Layout of a build folder ``B``::

    B/notebooks/<chapter>.ipynb        the chapter's Markdown source as a notebook (generated)
    B/runs/<chapter>-<stamp>/          one finished run: <chapter>.ipynb (executed), the files
                                       it wrote (figures/, <chapter>.claims.json) and run.json
    B/chapters/<chapter>               a symbolic link to the chapter's current run
    B/runs/.tmp-<chapter>-<pid>-<n>/   a run in progress (the kernel's working directory)
    B/runs/failed-<chapter>/           the notebook of the last failed run, for its traceback
    B/report.json                      every current run's record, gathered (for the report)
    B/rendered.json                    what the HTML shows: each run, its record's SHA-256, and
                                       the SHA-256 of every file of html/ (checked by archive)
    B/.bea.lock                        held by the command writing the folder (run, render,
                                       adopt, archive, notebooks); .bea.lock.holder names it

A run executes in its own temporary folder; only when the notebook finished, its claims were
read and its record written is the folder renamed into ``runs/`` and the link replaced
(``os.replace`` of a link is atomic). A killed or failed run therefore never changes what
``render`` shows: the previous run stays current. Stale temporary folders are removed by the
next run of the same chapter. Only the command holding the build folder's lock commits
(:func:`build_lock`); its worker processes hand their finished folders to it.

A run's record lists the SHA-256 of every file of the run (``files``); :func:`verify_run`
checks the record's form and those hashes, and every reader of a record goes through it, so a
damaged or edited run is named, never shown or reused. A symbolic link is never followed: in a
run, in the HTML, or as ``B/chapters/<chapter>`` leading anywhere but ``B/runs`` (refused,
naming it). The build folder lies outside the sources (:func:`check_location`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat

from bea_lib.base import fileio  # imports no torch (bea_lib loads its modules on first use)

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
    """``obj`` as indented JSON at ``path``, atomically (``bea_lib.base.fileio``, the project's one
    atomic writer)."""
    fileio.atomic_write_json(path, obj)


def atomic_notebook(path: Path, notebook) -> None:
    """Write a notebook at ``path``, atomically."""
    fileio.atomic_write(path, lambda tmp: nbformat.write(notebook, tmp))


def without_local_paths(path: Path, chapter: str) -> None:
    """Rewrite the executed notebook at ``path`` so that it names no folder of this machine (an
    archive would carry them): papermill's record of the paths it read and wrote becomes the
    notebook's paths in the build folder, and the folder of the ``bea_lib`` the kernel
    imported leaves the output of the notebook's last cell (the run's record keeps it)."""
    from .sources import PROVENANCE_TAG

    notebook = nbformat.read(path, as_version=4)
    meta = notebook.metadata.get("papermill")
    if isinstance(meta, dict):
        meta.update(input_path=f"notebooks/{chapter}.ipynb",
                    output_path=f"chapters/{chapter}/{chapter}.ipynb")
    for cell in notebook.cells:
        if PROVENANCE_TAG in cell.get("metadata", {}).get("tags", []):
            for out in cell.get("outputs", []):
                try:
                    found = json.loads(out.get("text", ""))
                except ValueError:
                    continue
                if isinstance(found, dict):
                    found.pop("bea_lib_path", None)
                    out["text"] = json.dumps(found) + "\n"
    atomic_notebook(path, notebook)


def resolve_folder(path: Path, what: str = "the build folder",
                   option: str = "--build-dir") -> Path:
    """``path`` made absolute with its links resolved; a path that cannot be resolved (a loop
    of symbolic links) is one line naming it."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError) as err:  # Python < 3.13 raises RuntimeError for a loop
        reason = getattr(err, "strerror", None) or "a loop of symbolic links"
        raise BookError(f"{what} {path} cannot be resolved ({reason}); choose another with "
                        f"{option}") from None


def check_location(root: Path, build_dir: Path) -> None:
    """The build folder holds no sources and lies in none: not the book's root or a folder
    above it, not inside a folder of the table of contents (rendering copies those into the
    build folder: it would copy itself, level after level) nor inside the packages the build
    reads (``bea_lib``, whose hash is an input of every run, and ``bea_book``)."""
    from .inputs import library_folder
    from .sources import toc_pages

    root, build_dir = Path(root), Path(build_dir)
    default = f"choose another with --build-dir (the default is {root / '_build'})"
    if build_dir == root or build_dir in root.parents:
        raise BookError(f"the build folder {build_dir} holds the book's sources ({root}); "
                        f"{default}")
    sources = {root / Path(page).parts[0] for page in toc_pages(root) if len(Path(page).parts) > 1}
    sources |= {folder for folder in (library_folder(), Path(__file__).resolve().parent) if folder}
    for folder in sorted(sources):
        if build_dir == folder or folder in build_dir.parents:
            raise BookError(f"the build folder {build_dir} lies inside the sources ({folder}), "
                            f"which the build reads and copies; {default}")


def build_folder(root: Path, build_dir: Path | None, *, create: bool = True) -> tuple[Path, Path]:
    """The book's root and build folder (default ``ROOT/_build``) resolved, the build folder
    checked (:func:`check_location`) and, with ``create``, created and writable
    (:func:`check_writable`)."""
    root = resolve_folder(root, "the book's root", "--root")
    build_dir = resolve_folder(build_dir or root / "_build")
    check_location(root, build_dir)
    return root, check_writable(build_dir) if create else build_dir


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


class LinkRefused(BookError):
    """A symbolic link where the build reads or copies files: never followed."""


def refuse_link(path: Path, fix: str) -> None:
    """A :class:`LinkRefused` naming ``path`` and its target when ``path`` is a symbolic link."""
    if Path(path).is_symlink():
        raise LinkRefused(f"{path} is a symbolic link (to {os.readlink(path)}), which is never "
                          f"followed; {fix}")


def plain_files(folder: Path, fix: str) -> list[Path]:
    """Every file under ``folder``, sorted, after checking that nothing under it is a symbolic
    link (:func:`refuse_link`): a link is never followed out of the folder being read."""
    folder = Path(folder)
    refuse_link(folder, fix)
    found = []
    for top, dirs, files in os.walk(folder):  # does not descend into linked folders
        for name in sorted(dirs) + sorted(files):
            refuse_link(Path(top) / name, fix)
        found += [Path(top) / name for name in files]
    return sorted(found)


def current_run(build_dir: Path, chapter: str) -> Path | None:
    """The folder of the chapter's current (finished) run, or None when it has none; a link
    ``B/chapters/<chapter>`` that leads anywhere but a run of ``B/runs`` is refused, naming it."""
    link = Path(build_dir) / "chapters" / chapter
    if not link.is_dir() or not (link / RUN_RECORD).is_file():
        return None
    target = link.resolve()
    if link.is_symlink() and target.parent != (Path(build_dir) / "runs").resolve():
        raise DamagedFile(f"{link} is a link to {os.readlink(link)}, not to a run of "
                          f"{Path(build_dir) / 'runs'}, and is never followed; remove it, or pass "
                          "--force to move it into the runs folder (it is then run again)")
    return target


class DamagedFile(BookError):
    """A file of the build folder that cannot be read or does not have its expected form."""


def read_json(path: Path, what: str, fix: str, kind: type = dict):
    """The JSON content of ``path``, which must be a ``kind``; a :class:`DamagedFile` naming
    the file, what is wrong and ``fix`` otherwise."""
    try:
        content = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        raise DamagedFile(f"{what} {path} is damaged ({reason}); {fix}") from None
    if not isinstance(content, kind):
        raise DamagedFile(f"{what} {path} is damaged (it holds a {type(content).__name__}, "
                          f"not a {'mapping' if kind is dict else kind.__name__}); {fix}")
    return content


# The fields of run.json that the runner reads, and their types.
RECORD_FIELDS = {"chapter": str, "page": str, "profile": str, "parameters": dict,
                 "overrides": dict, "wall_time_s": (int, float), "finished": str,
                 "commit": str, "versions": dict, "inputs": dict, "claims": dict,
                 "failed_claims": list, "notebook_sha256": str, "status": str, "files": dict}


def check_record(record: dict, path: Path, fix: str) -> dict:
    """``record`` (read from ``path``) has every field the runner reads, with its type."""
    for key, kind in RECORD_FIELDS.items():
        if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
            found = "missing" if key not in record else f"a {type(record[key]).__name__}"
            raise DamagedFile(f"the run record {path} is damaged (its field {key!r} is "
                              f"{found}); {fix}")
    return record


def read_run(folder: Path | None, fix: str = "run the chapter again with --force") -> dict | None:
    """A run's record (``run.json``), checked (:func:`check_record`), or None when there is
    none; a :class:`DamagedFile` naming it and ``fix`` when it is damaged."""
    if folder is None or not (Path(folder) / RUN_RECORD).exists():
        return None
    path = Path(folder) / RUN_RECORD
    return check_record(read_json(path, "the run record", fix), path, fix)


def file_hashes(folder: Path) -> dict[str, str]:
    """relative path -> SHA-256 of every file under ``folder`` but its record; a symbolic link
    in a run is refused (:func:`plain_files`): a run holds the files it wrote, never a link
    to a file elsewhere."""
    folder = Path(folder)
    fix = "a run keeps the files it wrote, not links to files elsewhere"
    return {str(path.relative_to(folder)): sha256(path) for path in plain_files(folder, fix)
            if path.relative_to(folder) != Path(RUN_RECORD)}


def verify_run(name: str, folder: Path, fix: str | None = None) -> dict:
    """The record of a finished run of ``name`` in ``folder``, after checking it: its form, its
    status, that every file the run wrote is there with the SHA-256 recorded when it was
    committed (no file added, removed or edited since), and that papermill finished the
    notebook. A :class:`DamagedFile` naming the chapter, the file and ``fix`` otherwise."""
    folder = Path(folder)
    fix = fix or (f"run it again (`python -m bea_book run {name} --force`, with the profile "
                  "you want)")
    record = read_run(folder, fix)
    if record is None:
        raise DamagedFile(f"the run of chapter {name!r} in {folder} has no record ({RUN_RECORD});"
                          f" {fix}")
    if record["status"] != "finished":
        raise DamagedFile(f"the run of chapter {name!r} in {folder} did not finish; {fix}")
    now, then = file_hashes(folder), record["files"]
    for rel in sorted(set(now) | set(then)):
        if now.get(rel) != then.get(rel):
            how = ("is missing" if rel not in now else "was added after the run"
                   if rel not in then else "was changed after the run")
            raise DamagedFile(f"chapter {name!r}: {folder / rel} {how} (SHA-256 recorded in "
                              f"{folder / RUN_RECORD}); {fix}")
    notebook = folder / f"{name}.ipynb"
    if then.get(f"{name}.ipynb") != record["notebook_sha256"]:
        raise DamagedFile(f"chapter {name!r}: the executed notebook {notebook} is not the one "
                          f"its record describes; {fix}")
    try:
        meta = json.loads(notebook.read_text()).get("metadata", {}).get("papermill", {})
    except (OSError, ValueError, AttributeError):
        meta = None
    if not isinstance(meta, dict) or meta.get("exception") or not meta.get("end_time"):
        raise DamagedFile(f"the last run of chapter {name!r} ({notebook}) failed or did not "
                          f"finish; {fix}")
    return record


def remove_stale(build_dir: Path, chapter: str) -> None:
    """Remove the temporary folders of runs of ``chapter`` whose process has died."""
    for old in (Path(build_dir) / "runs").glob(f".tmp-{chapter}-*"):
        pid = old.name[len(f".tmp-{chapter}-"):].split("-")[0]
        if pid.isdigit() and not fileio.pid_alive(int(pid)):
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


def check_link(build_dir: Path, chapter: str, *, force: bool = False) -> None:
    """``B/chapters/<chapter>`` must be absent or the link the runner keeps there; anything
    else (a folder, a file put there by hand) is refused, or with ``force`` moved to
    ``B/runs/foreign-<chapter>-<stamp>``."""
    link = Path(build_dir) / "chapters" / chapter
    runs = (Path(build_dir) / "runs").resolve()
    if not link.is_symlink() and not link.exists():
        return
    if link.is_symlink() and Path(os.path.realpath(link)).parent == runs:
        return
    kind = ("a link to somewhere else" if link.is_symlink() else
            "a folder" if link.is_dir() else "a file")
    if not force:
        raise BookError(f"{link} is {kind}, not the link to a run that the runner keeps there; "
                        "move it away, or pass --force to move it into the runs folder")
    aside = Path(build_dir) / "runs" / f"foreign-{chapter}-{time.time_ns()}"
    aside.parent.mkdir(parents=True, exist_ok=True)
    os.replace(link, aside)
    print(f"note: moved {kind} {link} that was not a link to {aside}")


def commit_run(build_dir: Path, chapter: str, tmp: Path) -> Path:
    """Make the finished run in ``tmp`` the chapter's current run, in one atomic step."""
    build_dir = Path(build_dir)
    check_link(build_dir, chapter)  # before the run moves: a refusal keeps it where it is
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
    """chapter -> record of its current run, for the chapters in ``names`` that have one
    whose record can be read (a damaged one is named by whoever uses the run)."""
    found = {}
    for name in names:
        try:
            record = read_run(current_run(build_dir, name))
        except DamagedFile:
            continue
        if record is not None:
            found[name] = record
    return found


def read_report(build_dir: Path) -> dict:
    """``report.json``: chapter -> record of its current run, with what the last build did.
    A damaged one is named and read as empty: it is rebuilt from the runs' own records."""
    path = Path(build_dir) / "report.json"
    if not path.exists():
        return {}
    try:
        report = read_json(path, "the execution summary", "it is rebuilt from the runs")
        if not all(isinstance(v, dict) for v in report.values()):
            raise DamagedFile(f"the execution summary {path} is damaged (not a mapping of "
                              "chapters to records); it is rebuilt from the runs")
    except DamagedFile as err:
        print(f"note: {err}", flush=True)
        return {}
    return report


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


# ---------------------------------------------------------------------------------------------
# One writer per folder

@contextlib.contextmanager
def build_lock(build_dir: Path, command: str | None = None, *, wait: float = 0.0):
    """Hold the build folder's lock (``bea_lib.base.fileio.folder_lock``): run, render, adopt,
    archive and notebooks do; a second writer is refused with a BookError naming the holder."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(fileio.folder_lock(
                build_dir, command or " ".join(["python -m bea_book", *sys.argv[1:]]),
                wait=wait, what="build folder"))
        except fileio.FolderBusy as err:
            raise BookError(str(err)) from None
        yield
