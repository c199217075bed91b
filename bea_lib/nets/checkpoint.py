"""Checkpoints of long runs: atomic writes, the last two kept, loaded with ``weights_only=True``.

A checkpoint of epoch n holds θ⁽ⁿ⁾ (the model's state), the optimizer's state after n steps, and the
history rows 0, …, n-1; resuming computes row n and goes on exactly as an uninterrupted run
would. A file is written atomically (:func:`bea_lib.base.fileio.atomic_write`), so a run killed
while writing leaves the previous checkpoints intact; the two newest are kept, so a file damaged
later (a full disk, a bad copy) still leaves a good one to fall back to. A file that loads but
is not one of our checkpoints (another program's, or a bare state dict) is refused by name.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch

from ..base.fileio import atomic_write
from ..core.validation import check_int
from .history import HISTORY_FILE, RunFileError

_NAME = re.compile(r"^checkpoint-(\d{8})\.pt$")
KEEP = 2
KEYS = frozenset({"config", "epoch", "elapsed", "history", "model", "optimizer"})


class CheckpointError(RunFileError):
    """A checkpoint that cannot be read or does not belong to the run being resumed."""


def checkpoints(directory: Path) -> list[Path]:
    """The checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def epochs_saved(directory: Path) -> list[int]:
    """The epochs of the checkpoints in ``directory``, oldest first."""
    return [int(_NAME.match(p.name).group(1)) for p in checkpoints(directory)]


def save_run(directory: Path, config, theta, state, n: int, elapsed: float, history) -> None:
    """θ⁽ⁿ⁾ and the optimizer's state (a NamedTuple) with the history rows 0..n-1, and those
    rows as ``history.csv``: resuming recomputes row n exactly."""
    rows = history.head(n)
    save(directory, n, {"config": dataclasses.asdict(config), "epoch": n, "elapsed": elapsed,
                        "history": rows.columns, "model": theta, "optimizer": state._asdict()})
    rows.to_csv(Path(directory) / HISTORY_FILE)


def save(directory: Path, epoch: int, state: dict) -> Path:
    """Write ``state`` as the checkpoint of ``epoch`` and delete all but the :data:`KEEP` newest."""
    epoch = check_int("epoch", epoch, minimum=0)
    missing = KEYS - set(state)
    if missing:
        raise ValueError(f"state must have the keys {', '.join(sorted(KEYS))}; missing "
                         f"{', '.join(sorted(missing))}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"checkpoint-{epoch:08d}.pt"
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    for old in checkpoints(directory)[:-KEEP]:
        old.unlink()
    return path


def load_latest(directory: Path, map_location=None) -> dict | None:
    """The newest checkpoint in ``directory`` (None if there is none).

    A newest file that does not load, or loads but is not one of our checkpoints, raises
    :class:`CheckpointError` naming it and the older checkpoints; nothing is deleted, so the
    last good one is kept for the user to resume from.
    """
    found = checkpoints(directory)
    if not found:
        return None
    path = found[-1]
    older = ", ".join(str(p) for p in found[:-1]) or "none"
    remedy = (f"Older checkpoints kept: {older}. Move the file away to resume from the previous "
              f"one, or start again with overwrite (CLI: --overwrite).")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is damaged and cannot be loaded "
                              f"({type(err).__name__}: {err}). {remedy}") from err
    if not (isinstance(state, dict) and KEYS <= set(state) and isinstance(state["config"], dict)):
        raise CheckpointError(f"checkpoint {path} is not a checkpoint of a training run (one holds "
                              f"a dict with {', '.join(sorted(KEYS))}). {remedy}")
    return state
