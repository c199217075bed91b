"""The run folder: a run never destroys another run's results.

A folder that holds another run's results (``history.csv``, ``run.json`` or checkpoints that
cannot be resumed) is refused unless ``overwrite``; a folder with a checkpoint of the same run
(same :data:`~bea_lib.nets.config.TRAJECTORY_FIELDS`) is resumed. A path that cannot be a
writable folder (a file, a path under a file, a read-only folder) raises
:class:`~bea_lib.nets.history.RunFileError`: one line naming the path and the fix.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

from ..base import fileio, provenance
from ..base.vocab import StopReason
from ..core.validation import check_bool
from . import checkpoint
from .config import DEFAULTS, TRAJECTORY_FIELDS, TrainConfig
from .distributed import Comm
from .history import HISTORY_FILE, INFO_FILE, History, RunFileError, read_run_info


def _differing(saved: dict, config: TrainConfig, fields=TRAJECTORY_FIELDS) -> list[str]:
    """The ``fields`` in which a saved config differs from ``config`` (a field the record
    predates counts as its default)."""
    return [f for f in fields if saved.get(f, DEFAULTS[f]) != getattr(config, f)]


def usable_folder(out_dir: Path) -> Path:
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
    files = (out_dir / HISTORY_FILE, out_dir / INFO_FILE, *checkpoint.checkpoints(out_dir))
    return [p for p in files if p.exists()]


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
    out_dir = usable_folder(Path(out_dir))
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


FINISHED = (StopReason.EPOCHS, StopReason.LOSS_THRESHOLD, StopReason.DIVERGED)


def finished_run(out_dir: Path, config: TrainConfig) -> History | None:
    """The stored history when ``out_dir`` holds this very run finished (the same trajectory,
    epochs and loss threshold), so that a job started again returns at once."""
    if not (out_dir / INFO_FILE).is_file() or not (out_dir / HISTORY_FILE).is_file():
        return None
    try:
        saved = read_run_info(out_dir)
    except RunFileError:
        return None
    same = (*TRAJECTORY_FIELDS, "epochs", "loss_threshold")
    if saved.get("stop_reason") not in FINISHED or _differing(saved["config"], config, same):
        return None
    return History.read(out_dir)


@contextlib.contextmanager
def run_folder_lock(folder: Path | None, comm: Comm):
    """One writer per run folder (``bea_lib.base.fileio.folder_lock``, rank 0 for all ranks); a
    second is refused with a RunFileError naming the holder."""
    if folder is None or not comm.is_main:
        yield
        return
    usable_folder(folder)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(fileio.folder_lock(folder, what="run folder"))
        except fileio.FolderBusy as err:
            raise RunFileError(str(err)) from None
        yield


def run_info(config: TrainConfig, device, comm: Comm, segments: list | None = None) -> dict:
    """run.json's parameters, seed, commit, versions and ``segments`` (the code of every
    invocation that computed part of the run: :func:`bea_lib.base.provenance.add_segment`)."""
    source = provenance.commit(Path(__file__).resolve().parents[2])
    return {"config": dataclasses.asdict(config), "seed": config.seed, "commit": source["commit"],
            "uncommitted_changes": source["dirty"], "device": str(device),
            "world_size": comm.world_size, "versions": provenance.versions(),
            **({"segments": segments} if segments is not None else {})}
