r"""Train networks with full-batch steps (Section 6 of the paper): ``train`` and its command line.

``train(config)`` is one run, ``train([config, ...])`` a batch trained together as one stacked
model (:mod:`bea_lib.nets.batched`); both go through the one loop :func:`bea_lib.nets.loop.fit`,
whose optimizer (Adam, its κ-variant, RMSProp, GD, heavy-ball) is ``config.optimizer``
(:mod:`bea_lib.nets.rules`). Each run gets a :class:`~bea_lib.nets.history.History`.

A run never destroys data: a run folder that holds another run's results (``history.csv``,
``run.json`` or checkpoints that cannot be resumed) is refused unless ``overwrite=True``
(``--overwrite``); a folder with a checkpoint of the same run resumes from it
(:mod:`bea_lib.nets.rundir`, :mod:`bea_lib.nets.checkpoint`).

Python: ``history = train(TrainConfig(dataset="mnist1d", model="mlp"), out_dir)``.
Command line (the same under ``torchrun --nproc_per_node=K``, one data slice per process)::

    python -m bea_lib.nets.train --dataset mnist1d --model cnn --h 1e-3 --beta 0.9 --rho 0.999 \
        --eps 1e-8 --epochs 2000 --seed 0 --out runs/mnist1d-cnn

Exit codes of the command line (:class:`ExitCode`): 0 finished (the epochs ran out, or the
train loss fell below ``--loss-threshold``); 1 crashed (an unexpected error, with its
traceback); 2 usage or setup error (a bad option or value, a run folder that is refused or
cannot be written, a damaged or foreign run file, missing data; one line naming the path and
the fix); 3 diverged (the train loss became non-finite); 4 stopped by the time limit
``--max-time`` (the budget of each invocation) before the epochs ran out (rerun the same command
to resume, with checkpoints); 130 interrupted by Ctrl-C or SIGTERM (run.json says
"interrupted"; rerun to resume from the last checkpoint). A second process writing the same
``--out`` is refused (2), naming the one that writes it.
"""
from __future__ import annotations

import argparse
import dataclasses
import enum
import os
import re
import signal
import sys
import threading
import traceback
from pathlib import Path

import torch
from tqdm import tqdm

from ..base import provenance
from ..base.vocab import StopReason
from ..core.validation import check_bool
from . import checkpoint
from .batched import common_config
from .config import TrainConfig
from .data import DataError
from .distributed import Comm, init_from_env, local_device
from .history import HISTORY_FILE, INFO_FILE, History, RunFileError, read_run_info, write_run_info
from .loop import fit
from .module_net import open_net
from .rules import RULES
from .rundir import finished_run, open_run_folder, run_folder_lock, run_info


def train(config: TrainConfig | list[TrainConfig], out_dir: str | Path | None = None, *,
          overwrite: bool = False, data=None) -> History | list[History]:
    """Train with full-batch steps of ``config.optimizer`` until a stopping rule fires: one
    :class:`TrainConfig` gives its :class:`History`, a list (a batch, one stacked model) one
    History per config; ``data``, a loaded data set, replaces ``config.dataset``'s.

    With ``out_dir`` (one run): ``history.csv``, ``run.json`` and checkpoints every
    ``checkpoint_every`` epochs there; a checkpoint of the same run is resumed (on CPU bitwise as
    an uninterrupted run), the same run finished returned at once, another run's results refused
    (:class:`~bea_lib.nets.history.RunFileError`) unless ``overwrite``, and so is a folder
    another process writes. A non-finite loss stops the run (``DIVERGED``); ``max_time`` is this
    call's budget; ``segments`` in run.json record the code of each call; Ctrl-C marks the run
    ``interrupted`` (resumable) and is raised again.
    """
    overwrite = check_bool("overwrite", overwrite)
    if isinstance(config, (list, tuple)):
        if out_dir is not None:
            raise ValueError("out_dir is for one run; a batch keeps its histories in memory "
                             "(long runs go through bea_lib.nets.executor, one folder each)")
        configs = common_config(list(config))
        device = local_device(configs[0].device)
        return fit(open_net(configs, device, Comm(), data, batch=True), configs,
                   RULES[configs[0].optimizer])
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    device = local_device(config.device)
    comm = init_from_env(device)
    folder = Path(out_dir) if out_dir is not None else None  # checked before any work is done
    with run_folder_lock(folder, comm):
        if folder is not None and not overwrite:
            done = finished_run(folder, config)
            if done is not None:
                return done
        return _train_one(config, folder, overwrite, device, comm, data)


def _train_one(config: TrainConfig, folder: Path | None, overwrite: bool, device, comm,
               data) -> History:
    """:func:`train` of one run, in its locked folder (or in memory)."""
    saved = (open_run_folder(folder, config, overwrite=overwrite, device=device, comm=comm)
             if folder else None)
    net = open_net([config], device, comm, data, batch=False)
    if saved is not None:
        checkpoint.check_fits(saved, net.theta(), folder)
    out_dir = folder if comm.is_main else None  # rank 0 writes the files
    rule = RULES[config.optimizer]
    history, n, elapsed0, theta, state = History(), 0, 0.0, None, None
    if saved is not None:
        theta, n, elapsed0 = saved["model"].to(device), saved["epoch"], saved["elapsed"]
        state = type(rule.init(theta))(**{k: v.to(device) if torch.is_tensor(v) else v
                                          for k, v in saved["optimizer"].items()})
        history = History(saved["history"])
    earlier = None
    if saved is not None and out_dir and (out_dir / INFO_FILE).is_file():
        earlier = read_run_info(out_dir)
        earlier = earlier.get("segments") or [{
            "commit": earlier.get("commit"), "dirty": earlier.get("uncommitted_changes"),
            "bea_lib_sha256": None, "from_epoch": 0}]  # a run recorded before segments
    segments, note = provenance.add_segment(earlier, from_epoch=n, device=str(device))
    if note and comm.is_main:
        print(f"note: {out_dir}: {note}", file=sys.stderr, flush=True)
    info = run_info(config, device, comm, segments)
    used = comm.sum_(torch.tensor([len(net.train_xy[0]), len(net.test_xy[0])], device=device))
    info["examples"] = dict(zip(("train", "test"), used.tolist()))  # used, over all ranks
    if out_dir:
        write_run_info(out_dir, {**info, "stop_reason": StopReason.RUNNING, "message": ""})
    last = {"saved": n, "theta": net.theta() if theta is None else theta,
            "state": rule.init(net.theta()) if state is None else state}

    def on_step(n, theta, state, elapsed, histories):  # keeps θ⁽ⁿ⁾ and the state for the end
        last.update(theta=theta, state=state)
        if out_dir and config.checkpoint_every and n % config.checkpoint_every == 0:
            checkpoint.save_run(out_dir, config, theta, state, n, elapsed, histories[0])
            last["saved"] = n

    bar = tqdm(total=config.epochs, initial=min(n, config.epochs), unit="epoch", dynamic_ncols=True,
               desc=f"{config.dataset}/{config.model}", disable=None if comm.is_main else True)
    try:
        [history] = fit(net, [config], rule, theta=theta, state=state, histories=[history], n=n,
                        elapsed0=elapsed0, comm=comm, on_step=on_step, bar=bar)
    except KeyboardInterrupt:  # θ may be half-stepped: nothing after the last checkpoint is kept
        if out_dir:
            saved_at = checkpoint.epochs_saved(out_dir)  # on disk, whatever the moment
            segments[-1]["to_epoch"] = max(saved_at, default=0)
            resume = (f"the last checkpoint is epoch {max(saved_at)}: rerun the same command to "
                      "resume from it" if saved_at else
                      "no checkpoint was written: rerun the same command to start again")
            write_run_info(out_dir, {**info, "stop_reason": StopReason.INTERRUPTED,
                                     "message": f"interrupted; {resume}"})
        raise
    finally:
        bar.close()
    n = int(history["epoch"][-1])
    if out_dir:
        segments[-1]["to_epoch"] = n
        if config.checkpoint_every and n != last["saved"]:  # so that a longer run can resume here
            checkpoint.save_run(out_dir, config, last["theta"], last["state"], n,
                                float(history["wall_time"][-1]), history)
        history.to_csv(out_dir / HISTORY_FILE)
        write_run_info(out_dir, {**info, "stop_reason": history.stop_reason,
                                 "message": history.message, "epochs_done": n, "rows": len(history),
                                 "wall_time": history["wall_time"][-1]})
    return history


# --- the command line --------------------------------------------------------------------------

class ExitCode(enum.IntEnum):
    """The exit codes of ``python -m bea_lib.nets.train`` (see the module docstring)."""

    FINISHED = 0  # the epochs ran out, or the loss fell below the threshold
    CRASH = 1     # an unexpected error; its traceback is printed
    USAGE = 2     # bad option or value, refused or unusable run folder or file, missing data
    DIVERGED = 3  # the train loss became non-finite
    STOPPED = 4   # the time limit ran out first; rerun the same command to resume
    INTERRUPTED = 130  # Ctrl-C (SIGINT) or SIGTERM: run.json says "interrupted"; rerun to resume


_EXIT = {StopReason.EPOCHS: ExitCode.FINISHED, StopReason.LOSS_THRESHOLD: ExitCode.FINISHED,
         StopReason.DIVERGED: ExitCode.DIVERGED, StopReason.TIME: ExitCode.STOPPED}


def parser() -> argparse.ArgumentParser:
    """The command line: an option per TrainConfig field (from its metadata), --out, --overwrite."""
    p = argparse.ArgumentParser(
        prog="python -m bea_lib.nets.train", description=__doc__.split("\n")[0],
        epilog="exit codes: 0 finished, 1 crashed, 2 usage or setup error, 3 diverged, "
               "4 stopped by --max-time (rerun to resume)")
    for f in dataclasses.fields(TrainConfig):
        flag, meta = "--" + f.name.replace("_", "-"), f.metadata
        if isinstance(f.default, bool):
            p.add_argument(flag, default=f.default, action=argparse.BooleanOptionalAction,
                           help=meta["help"])
        else:
            p.add_argument(flag, type=meta["type"] or type(f.default), default=f.default,
                           choices=meta["choices"],
                           help=meta["help"] + ("" if f.default is None
                                                else f" (default: {f.default})"))
    p.add_argument("--out", required=True, help="run folder: history.csv, run.json, checkpoints")
    # argparse takes -1e-3 (not -0.5) for an option: any negative number is a value here
    p._negative_number_matcher = re.compile(
        r"^-(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^-\.?inf$", re.IGNORECASE)
    p.add_argument("--overwrite", action="store_true",
                   help="replace another run's results in --out instead of refusing")
    return p


def main(argv=None) -> int:
    """Run the command line; return an :class:`ExitCode`."""
    args = vars(parser().parse_args(argv))  # exits 2 on a bad option, as argparse does
    out, overwrite = args.pop("out"), args.pop("overwrite")
    if threading.current_thread() is threading.main_thread():  # SIGTERM: as Ctrl-C
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        history = train(TrainConfig(**args), out, overwrite=overwrite)
    except (ValueError, FileNotFoundError, RunFileError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        print(f"interrupted: {Path(out) / INFO_FILE} says so; rerun the same command to resume",
              file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception:  # noqa: BLE001 - reported as a crash, with its traceback
        traceback.print_exc()
        return ExitCode.CRASH
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if os.environ.get("RANK", "0") == "0":
        print(f"{history.stop_reason}: {history.message}; history in {Path(out) / HISTORY_FILE}")
    return _EXIT[history.stop_reason]


if __name__ == "__main__":
    sys.exit(main())
