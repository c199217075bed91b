"""Checkpoints of long runs: atomic writes, the last two kept, loaded with ``weights_only=True``.

A checkpoint of epoch n holds θ⁽ⁿ⁾ (the model's state), the optimizer's state after n steps, and the
history rows 0, …, n-1; resuming computes row n and goes on exactly as an uninterrupted run
would. A file is written atomically (:func:`bea_lib.base.fileio.atomic_write`), so a run killed
while writing leaves the previous checkpoints intact; the two newest are kept, so a file damaged
later (a full disk, a bad copy) still leaves a good one to fall back to. A file that loads but
is not one of our checkpoints (another program's, or a bare state dict), or one that disagrees
with itself (its epoch, its history's rows, Adam's state) or with the run's model, is refused
by name.
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
    problem = _inconsistency(state, int(_NAME.match(path.name).group(1)))
    if problem:
        raise CheckpointError(f"checkpoint {path} is inconsistent: {problem}. {remedy}")
    return state


def _inconsistency(state: dict, epoch_of_name: int) -> str:
    """What disagrees inside a checkpoint of epoch n ("" if nothing): n must be its file's
    number, its history the rows 0, …, n-1 (every column n long, the epoch column 0, …, n-1),
    θ a (1, P) tensor and the optimizer's state tensors of θ's shape (Adam's after n steps)."""
    n = state["epoch"]
    if not isinstance(n, int) or isinstance(n, bool) or n != epoch_of_name:
        return f"its epoch is {n!r}, its file name says {epoch_of_name}"
    history = state["history"]
    if not isinstance(history, dict) or not isinstance(history.get("epoch"), list):
        return "its history is not a mapping of columns with an 'epoch' column"
    wrong = {name: len(col) if isinstance(col, list) else type(col).__name__
             for name, col in history.items() if not isinstance(col, list) or len(col) != n}
    if wrong:
        return f"its history must hold the {n} rows before epoch {n}, but its columns hold {wrong}"
    if history["epoch"] != list(range(n)):
        return f"its history's epochs are not 0, …, {n - 1}"
    theta, opt = state["model"], state["optimizer"]
    if not isinstance(theta, torch.Tensor) or theta.ndim != 2 or len(theta) != 1:
        return "its parameters θ are not a (1, P) tensor"
    moments = {k: v for k, v in opt.items() if k != "n"} if isinstance(opt, dict) else {}
    if not moments or not all(isinstance(v, torch.Tensor) and v.shape == theta.shape
                              for v in moments.values()):
        return f"the optimizer's state is not tensors of θ's shape {tuple(theta.shape)}"
    if "n" in opt and opt["n"] != n:  # Adam's step count
        return f"the optimizer's step count is {opt['n']!r}, not the epoch {n}"
    return ""


def check_fits(state: dict, theta: torch.Tensor, directory: Path) -> None:
    """The checkpoint ``state`` resumes the run's model: its θ has the model's shape. A
    :class:`CheckpointError` naming the folder otherwise."""
    if state["model"].shape != theta.shape:
        raise CheckpointError(
            f"the checkpoint in {directory} holds {state['model'].shape[-1]} parameters, but the "
            f"run's model has {theta.shape[-1]}: it is not this run's; use another out_dir, or "
            "overwrite (CLI: --overwrite)")
