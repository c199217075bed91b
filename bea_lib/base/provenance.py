"""Where a result came from: the commit of the sources and the versions of the software.

One implementation, used by the training runs (``run.json``) and by the book's execution
report, so the two always agree on what "dirty" means and which packages are listed.
"""
from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

# The packages whose versions can change a number in this project.
PACKAGES = ("bea_lib", "torch", "torchvision", "numpy", "scipy", "mnist1d", "scikit-learn",
            "matplotlib", "papermill", "jupyter-book")


def commit(root: str | Path = ".") -> dict[str, str | bool | None]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout at ``root``.

    ``dirty`` is True when tracked or untracked files differ from the commit (``git status
    --porcelain`` is not empty); both are None outside a git checkout or without git.
    """
    git = ["git", "-C", str(root)]
    try:
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True,
                                timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head or None, "dirty": bool(status.strip()) if head else None}


def commit_label(root: str | Path = ".") -> str:
    """The commit as one string: ``<sha>``, ``<sha>-dirty``, or ``unknown`` outside git."""
    found = commit(root)
    if found["commit"] is None:
        return "unknown"
    return found["commit"] + ("-dirty" if found["dirty"] else "")


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python's version and each package's installed version (``not installed`` if absent)."""
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def tree_hash(folder: str | Path) -> str:
    """SHA-256 over the relative paths and bytes of every file under ``folder`` (caches and
    compiled files excepted): what changes when a source file of a package changes, committed
    or not."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(str(path.relative_to(folder)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode())
    return digest.hexdigest()


def code_state() -> dict[str, str | bool | None]:
    """The code a process runs: the commit of the checkout holding this ``bea_lib``, whether
    it has uncommitted changes, the hash of the package's files (:func:`tree_hash`) and
    where they are."""
    package = Path(__file__).resolve().parents[1]
    found = commit(package.parent)
    return {"commit": found["commit"], "dirty": found["dirty"],
            "bea_lib_sha256": tree_hash(package), "bea_lib_path": str(package)}


def add_segment(segments: list | None, *, from_epoch: int, **more) -> tuple[list, str]:
    """The segments of a run that resumes at ``from_epoch`` under this process's code, and a
    line saying what changed since the previous segment ("" if nothing did). Each invocation is
    a segment recording its code (:func:`code_state`), its first epoch and ``more`` (the device,
    say), so that a resume under other code shows in the run's record."""
    segments = [dict(s) for s in segments or [] if isinstance(s, dict)]
    now = {**code_state(), "from_epoch": from_epoch, **more}
    note = ""
    if segments:
        last = segments[-1]
        changed = [key for key in ("bea_lib_sha256", "commit", "dirty")
                   if last.get(key) != now.get(key)]
        if changed:
            note = (f"resuming at epoch {from_epoch} under other code than epochs "
                    f"{last.get('from_epoch', '?')}-{from_epoch} ran with ({', '.join(changed)} "
                    f"changed: {str(last.get(changed[0]))[:12]} -> {str(now[changed[0]])[:12]}); "
                    "both are recorded in run.json's segments")
    return [*segments, now], note
