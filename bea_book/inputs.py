"""What a chapter's results depend on, hashed, so that an unchanged chapter is reused.

The inputs of a chapter run: its Markdown source, its resolved parameters and the profile it
is reported under, every file of the ``bea_lib`` package the kernel imports, and the lock
file; for the Findings chapter also every other chapter's current claims, since it tabulates
them. If all of these hash the same as for the current run, the run is reused.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from .sources import FINDINGS, LOCK_FILE
from .store import current_run, sha256


def _tree_hash(folder: Path) -> str:
    """SHA-256 over the relative paths and bytes of every file under ``folder`` (caches and
    compiled files excepted): ``bea_lib.base.provenance.tree_hash``, the one implementation."""
    from bea_lib.base import provenance

    return provenance.tree_hash(folder)


def library_folder() -> Path | None:
    """The folder of the ``bea_lib`` package this process imports (None if there is none);
    the runner puts its parent first on the kernel's ``PYTHONPATH``, so that the kernel
    imports the same copy (not another one installed in the environment)."""
    spec = importlib.util.find_spec("bea_lib")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def library_hash() -> str:
    """The hash of the ``bea_lib`` sources that a kernel started from here imports."""
    folder = library_folder()
    return "not installed" if folder is None else _tree_hash(folder)


def lock_hash(root: Path) -> str | None:
    """The SHA-256 of the lock file, or None when the project has none."""
    path = Path(root) / LOCK_FILE
    return sha256(path) if path.is_file() else None


def claims_files(build_dir: Path, names) -> dict[str, Path]:
    """chapter -> its current ``<chapter>.claims.json``, for the chapters that wrote one."""
    found = {}
    for name in names:
        folder = current_run(build_dir, name)
        if folder is not None and (folder / f"{name}.claims.json").is_file():
            found[name] = folder / f"{name}.claims.json"
    return found


def chapter_inputs(root: Path, build_dir: Path, chapter: str, page: str, *, label: str,
                   parameters: dict, others, library: str) -> dict:
    """The inputs of a run of ``chapter``, each hashed; ``others`` are the book's other
    chapters (read only for Findings)."""
    inputs = {
        "source": sha256(Path(root) / f"{page}.md"),
        "parameters": hashlib.sha256(
            json.dumps(parameters, sort_keys=True, default=repr).encode()).hexdigest(),
        "profile": label,
        "bea_lib": library,
        "lock": lock_hash(root),
    }
    if chapter == FINDINGS:
        files = claims_files(build_dir, [n for n in others if n != FINDINGS])
        inputs["claims"] = {name: sha256(path) for name, path in sorted(files.items())}
    return inputs


def changed(before: dict | None, now: dict) -> list[str]:
    """The names of the inputs that differ from ``before`` (all of them without it)."""
    before = before or {}
    return [key for key in now if before.get(key) != now[key]] + \
           [key for key in before if key not in now]
