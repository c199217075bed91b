"""The run folder: a run never destroys another run's results.

A folder that holds another run's results (``history.csv``, ``run.json`` or checkpoints that
cannot be resumed) is refused unless ``overwrite``; a folder with a checkpoint of the same run
(same :data:`~bea_lib.nets.config.TRAJECTORY_FIELDS`) is resumed. A path that cannot be a
writable folder (a file, a path under a file, a read-only folder) raises
:class:`~bea_lib.nets.history.RunFileError`: one line naming the path and the fix.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..core.validation import check_bool
from ..base.vocab import StopReason
from . import checkpoint
from .config import TRAJECTORY_FIELDS, TrainConfig
from .distributed import Comm
from .history import HISTORY_FILE, INFO_FILE, RunFileError, read_run_info


def _differing(saved: dict, config: TrainConfig) -> list[str]:
    """The trajectory fields in which a saved config differs from ``config``."""
    return [f for f in TRAJECTORY_FIELDS if saved.get(f) != getattr(config, f)]


def _usable_folder(out_dir: Path) -> Path:
    """``out_dir``, created if needed; a path that cannot be a writable folder raises
    :class:`RunFileError` naming it and the fix."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RunFileError(f"run folder {out_dir} is a file, not a folder: choose another out_dir "
                           f"(CLI: --out) or move the file away")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunFileError(f"cannot create the run folder {out_dir} ({err.strerror}): choose an "
                           f"out_dir (CLI: --out) under a writable folder") from err
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise RunFileError(f"run folder {out_dir} is not writable: make it writable "
                           f"(chmod u+w {out_dir}) or choose another out_dir (CLI: --out)")
    return out_dir


def _results(out_dir: Path) -> list[Path]:
    """The files of a run in ``out_dir`` that a new run would overwrite."""
    return [p for p in (out_dir / HISTORY_FILE, out_dir / INFO_FILE, *checkpoint.checkpoints(out_dir))
            if p.exists()]


def open_run_folder(out_dir: str | Path, config: TrainConfig, *, overwrite: bool = False,
                    device=None, comm: Comm = Comm()) -> dict | None:
    """Prepare ``out_dir`` for ``config``: the checkpoint to resume from, or None to start.

    Resumes from a checkpoint of the same run (its ``run.json``, if any, must agree). Starts
    where only the ``run.json`` of the same run, killed before it saved anything, is found.
    Refuses (RunFileError naming the files) a folder whose results cannot be resumed: another
    run's checkpoint or run.json, or a history without a checkpoint. ``overwrite`` deletes them
    first (rank 0 only; every rank runs the same read-only checks, so all refuse together).
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    overwrite = check_bool("overwrite", overwrite)
    out_dir = _usable_folder(Path(out_dir))
    if overwrite:
        for path in _results(out_dir) if comm.is_main else ():
            path.unlink()
        return None
    found = _results(out_dir)
    if not found:
        return None
    state = checkpoint.load_latest(out_dir, map_location=device)
    if state is not None:
        saved = state["config"]
        differ = _differing(saved, config)
        if differ:
            raise checkpoint.CheckpointError(
                f"the checkpoint in {out_dir} belongs to another run: {', '.join(differ)} differ "
                f"({', '.join(f'{f}={saved.get(f)!r}' for f in differ)}); use another "
                f"out_dir, or overwrite (CLI: --overwrite)")
        if (out_dir / INFO_FILE).exists():
            differ = _differing(read_run_info(out_dir)["config"], config)
            if differ:
                raise RunFileError(f"{out_dir / INFO_FILE} records another run than the checkpoint "
                                   f"({', '.join(differ)} differ); use another out_dir, or "
                                   f"overwrite (CLI: --overwrite)")
        return state
    if found == [out_dir / INFO_FILE]:
        info = read_run_info(out_dir)
        if (info.get("stop_reason") in (StopReason.RUNNING, StopReason.INTERRUPTED)
                and not _differing(info["config"], config)):
            return None  # the same run, stopped before its first checkpoint: nothing to lose
    names = ", ".join(p.name for p in found)
    raise RunFileError(f"{out_dir} holds the results of a run ({names}) without a checkpoint to "
                       f"resume from; use another out_dir, or overwrite them (CLI: --overwrite)")
