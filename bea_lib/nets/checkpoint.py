"""Checkpoints of long runs: atomic writes, the last two kept, loaded with ``weights_only=True``.

A checkpoint of epoch n holds θ⁽ⁿ⁾ (the model's state), Adam's state after n steps, and the
history rows 0, …, n-1; resuming computes row n and goes on exactly as an uninterrupted run
would. A file is written to a temporary name and moved into place with ``os.replace``, so a run
killed while writing leaves the previous checkpoints intact; the two newest are kept, so a file
damaged later (a full disk, a bad copy) still leaves a good one to fall back to.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch

_NAME = re.compile(r"^checkpoint-(\d{8})\.pt$")
KEEP = 2


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not belong to the run being resumed."""


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(tmp_path)``, flush it to disk, then rename it to ``path`` in one step."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def checkpoints(directory: Path) -> list[Path]:
    """The checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def save(directory: Path, epoch: int, state: dict) -> Path:
    """Write ``state`` as the checkpoint of ``epoch`` and delete all but the :data:`KEEP` newest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"checkpoint-{epoch:08d}.pt"
    atomic_write_bytes(path, lambda tmp: torch.save(state, tmp))
    for old in checkpoints(directory)[:-KEEP]:
        old.unlink()
    return path


def load_latest(directory: Path, map_location=None) -> dict | None:
    """The newest checkpoint in ``directory`` (None if there is none).

    A newest file that does not load raises :class:`CheckpointError` naming it and the older
    checkpoints; nothing is deleted, so the last good one is kept for the user to resume from.
    """
    found = checkpoints(directory)
    if not found:
        return None
    path = found[-1]
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        older = ", ".join(str(p) for p in found[:-1]) or "none"
        raise CheckpointError(
            f"checkpoint {path} is damaged and cannot be loaded ({type(err).__name__}: {err}). "
            f"Older checkpoints kept: {older}. Move the damaged file away to resume from the "
            f"previous one, or delete the run folder to start again.") from err
