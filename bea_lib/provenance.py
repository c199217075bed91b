"""Where a result came from: the commit of the sources and the versions of the software.

One implementation, used by the training runs (``run.json``) and by the book's execution
report, so the two always agree on what "dirty" means and which packages are listed.
"""
from __future__ import annotations

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
