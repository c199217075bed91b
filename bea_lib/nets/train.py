r"""Full-batch Adam on a network (Section 6 of the paper): one epoch is one Adam step on ∇E.

E(θ) = (1/N) Σ_{i<N} ℓ_i(θ), ℓ_i the cross-entropy of example i. Its gradient is accumulated
over chunks of ``chunk_size`` examples, as *sums* of per-example losses, and divided by N once,
so that (for models whose output for x_i depends on x_i alone, see :mod:`bea_lib.nets.models`) the
result is the same for every chunk size, up to float rounding. The step is :class:`bea_lib.Adam`,
the paper's Definition 2.1 (h = ``h``, β = ``beta``, ρ = ``rho``, ε = ``eps``).

Row n of the history (see :mod:`bea_lib.nets.history`) is computed at θ⁽ⁿ⁾ in the same chunked pass
that produces the gradient for the step θ⁽ⁿ⁾ → θ⁽ⁿ⁺¹⁾, so the logged norms are those of the
gradient the step uses. A run of ``epochs`` steps has ``epochs + 1`` rows.

A run never destroys data: a run folder that holds another run's results (``history.csv``,
``run.json`` or checkpoints that cannot be resumed) is refused unless ``overwrite=True``
(``--overwrite``); a folder with a checkpoint of the same run resumes from it.

Python: ``history = bea_lib.nets.train.train(TrainConfig(dataset="mnist1d", model="mlp"), out_dir)``.
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
import contextlib
import dataclasses
import enum
import math
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import fileio, provenance
from ..norms import perturbed_one_norm
from ..optimizers import Adam
from ..validation import check_bool, check_int
from ..vocab import StopReason
from . import checkpoint
from .config import TRAJECTORY_FIELDS, TrainConfig
from .data import DataError, load_dataset
from .diagnostics import diagnostics_row
from .distributed import Comm, init_from_env, local_device
from .history import (HISTORY_FILE, INFO_FILE, METRICS, History, RunFileError, read_run_info,
                      write_run_info)
from .models import has_batch_norm, make_model
from .rundir import _usable_folder, open_run_folder

def full_batch_gradient(model, x, y, *, chunk_size: int, comm: Comm = Comm()) -> torch.Tensor:
    """Set every ``p.grad`` to ∇E over the examples of all ranks; return [E, accuracy, N] (float64).

    ``x, y`` are this rank's examples. Losses are summed per chunk (``reduction="sum"``),
    their gradients accumulate in ``p.grad``, the sums of all ranks are added, and the total is
    divided by N once: no chunk is weighted by its size, so the chunking does not change E.
    """
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    model.train()
    losses, correct = [], []
    for i in range(0, len(x), chunk_size):
        out = model(x[i:i + chunk_size])
        loss = F.cross_entropy(out, y[i:i + chunk_size], reduction="sum")
        loss.backward()
        losses.append(loss.detach())
        correct.append((out.argmax(1) == y[i:i + chunk_size]).sum())
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    stats = torch.stack([torch.stack(losses).double().sum() if losses else torch.zeros((), device=x.device),
                         torch.stack(correct).sum() if correct else torch.zeros((), device=x.device),
                         torch.tensor(len(x), device=x.device)]).double()  # Σℓ_i, #correct, N
    n = len(x)
    if comm.world_size > 1:  # one all-reduce for all gradient sums, one for the statistics
        flat = comm.sum_(torch.cat([g.reshape(-1) for g in grads]))
        torch._foreach_copy_(grads, [f.view_as(g) for f, g in zip(flat.split([g.numel() for g in grads]), grads)])
        n = int(comm.sum_(stats)[2].item())
    torch._foreach_div_(grads, n)  # the one division by N
    for p, g in zip(params, grads):
        p.grad = g
    return torch.stack([stats[0] / stats[2], stats[1] / stats[2], stats[2]])


@torch.no_grad()
def evaluate(model, x, y, *, chunk_size: int, comm: Comm = Comm()) -> torch.Tensor:
    """[mean loss, accuracy] over the examples of all ranks, in evaluation mode (float64)."""
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    model.eval()
    stats = torch.zeros(3, dtype=torch.float64, device=x.device)
    for i in range(0, len(x), chunk_size):
        out = model(x[i:i + chunk_size])
        stats[0] += F.cross_entropy(out, y[i:i + chunk_size], reduction="sum")
        stats[1] += (out.argmax(1) == y[i:i + chunk_size]).sum()
    stats[2] = len(x)
    comm.sum_(stats)
    return stats[:2] / stats[2]


def gradient_norms(model, *, eps: float) -> torch.Tensor:
    """[‖∇E‖_{1,ε}, ‖∇E‖₁, ‖∇E‖₂] of the gradients in ``p.grad``, in float64 (the norms of Section 6)."""
    g = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]).double()
    return torch.stack([perturbed_one_norm(g, eps=eps), g.abs().sum(), g.norm()])


def build_model(config: TrainConfig, input_shape, n_classes: int) -> torch.nn.Module:
    """The initial network θ⁽⁰⁾: seeded with ``config.seed``, drawn in float32, then cast to ``config.dtype``.

    Drawing in float32 whatever the default dtype makes θ⁽⁰⁾ depend on the seed alone, and gives
    float32 and float64 runs the same start.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        torch.manual_seed(config.seed)
        model = make_model(config.model, input_shape, n_classes, width=config.width, norm=config.norm)
    finally:
        torch.set_default_dtype(previous)
    return model.to(getattr(torch, config.dtype))


def _run_info(config: TrainConfig, device, comm: Comm, segments: list | None = None) -> dict:
    """Parameters, seed, commit and versions (:mod:`bea_lib.provenance`), for run.json; with
    ``segments``, the code of every invocation that computed part of the run
    (:func:`bea_lib.provenance.add_segment`)."""
    source = provenance.commit(Path(__file__).resolve().parents[2])
    return {"config": dataclasses.asdict(config), "seed": config.seed, "commit": source["commit"],
            "uncommitted_changes": source["dirty"], "device": str(device),
            "world_size": comm.world_size, "versions": provenance.versions(),
            **({"segments": segments} if segments is not None else {})}


# --- the loop ----------------------------------------------------------------------------------

@dataclass
class _Run:
    """The objects of one run in progress."""

    config: TrainConfig
    comm: Comm
    device: torch.device
    model: torch.nn.Module
    optimizer: Adam
    train_xy: tuple[torch.Tensor, torch.Tensor]  # this rank's slice
    test_xy: tuple[torch.Tensor, torch.Tensor]


def _set_up(config: TrainConfig, device: torch.device, comm: Comm) -> _Run:
    """Data (this rank's slice), θ⁽⁰⁾ and the optimizer."""
    if device.type == "cuda":  # reproducible convolutions, at some cost in speed
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    data = load_dataset(config.dataset, root=config.data_root, n_train=config.n_train,
                        n_test=config.n_test).to(device, getattr(torch, config.dtype))
    model = build_model(config, data.input_shape, data.n_classes).to(device)
    if has_batch_norm(model) and config.chunk_size < len(data.x_train):
        warnings.warn("batch normalisation uses chunk statistics: the loss and its gradient depend "
                      "on chunk_size and are not the full-batch E (see bea_lib.nets.models)", stacklevel=3)
    optimizer = Adam(model.parameters(), lr=config.h, beta=config.beta, rho=config.rho,
                     eps=config.eps, eps_inside=config.eps_inside)
    tr, te = comm.slice(len(data.x_train)), comm.slice(len(data.x_test))
    return _Run(config, comm, device, model, optimizer, (data.x_train[tr], data.y_train[tr]),
                (data.x_test[te], data.y_test[te]))


def _measure(run: _Run, n: int) -> list[float]:
    """The values of :data:`~bea_lib.nets.history.METRICS` at θ⁽ⁿ⁾; leaves ∇E(θ⁽ⁿ⁾) in ``p.grad``."""
    cfg, comm = run.config, run.comm
    train_stats = full_batch_gradient(run.model, *run.train_xy, chunk_size=cfg.chunk_size, comm=comm)
    if n % cfg.test_every == 0:
        test_stats = evaluate(run.model, *run.test_xy, chunk_size=cfg.chunk_size, comm=comm)
    else:
        test_stats = torch.full((2,), math.nan, dtype=torch.float64, device=run.device)
    return torch.cat([train_stats[:2], test_stats, gradient_norms(run.model, eps=cfg.eps)]).tolist()


def _time_up(run: _Run, elapsed: float) -> bool:
    """Whether the time budget is spent; under torchrun all ranks must agree."""
    time_up = run.config.max_time is not None and elapsed >= run.config.max_time
    if run.comm.world_size > 1 and run.config.max_time is not None:
        time_up = bool(run.comm.sum_(torch.tensor([float(time_up)], device=run.device)).item())
    return time_up


def _stop_reason(config: TrainConfig, history: History, n: int, time_up: bool) -> tuple[str, str]:
    """Why to stop after row n (empty if the run goes on), and a sentence saying so."""
    loss = history.columns["train_loss"]
    if not math.isfinite(loss[-1]):
        finite = [(k, v) for k, v in zip(history.columns["epoch"], loss) if math.isfinite(v)]
        last = (f"last finite train loss {finite[-1][1]:.6g} at epoch {int(finite[-1][0])}"
                if finite else "no finite train loss before")
        return StopReason.DIVERGED, f"diverged at epoch {n}: train loss is {loss[-1]}; {last}"
    if config.loss_threshold is not None and loss[-1] < config.loss_threshold:
        return (StopReason.LOSS_THRESHOLD,
                f"train loss {loss[-1]:.6g} < {config.loss_threshold} at epoch {n}")
    if n >= config.epochs:
        return StopReason.EPOCHS, f"{n} epochs done, train loss {loss[-1]:.6g}"
    if time_up:
        return (StopReason.TIME,
                f"time limit {config.max_time} s reached at epoch {n}, train loss {loss[-1]:.6g}")
    return "", ""


def _save_checkpoint(run: _Run, out_dir: Path, n: int, elapsed: float, history: History) -> None:
    """θ⁽ⁿ⁾ and Adam's state with the rows 0..n-1: resuming recomputes row n exactly."""
    rows = history.head(n)
    checkpoint.save(out_dir, n, {"config": dataclasses.asdict(run.config), "epoch": n,
                                 "elapsed": elapsed, "history": rows.columns,
                                 "model": run.model.state_dict(),
                                 "optimizer": run.optimizer.state_dict()})
    rows.to_csv(out_dir / HISTORY_FILE)


FINISHED = (StopReason.EPOCHS, StopReason.LOSS_THRESHOLD, StopReason.DIVERGED)


def finished_run(out_dir: Path, config: TrainConfig) -> History | None:
    """The stored history when ``out_dir`` holds this very run, finished (the same trajectory,
    epochs and loss threshold): a job started again returns it at once, checkpoints or not."""
    if not (out_dir / INFO_FILE).is_file() or not (out_dir / HISTORY_FILE).is_file():
        return None
    try:
        saved = read_run_info(out_dir)
    except RunFileError:
        return None
    same = [*TRAJECTORY_FIELDS, "epochs", "loss_threshold"]
    if saved.get("stop_reason") not in FINISHED or any(
            saved["config"].get(f) != getattr(config, f) for f in same):
        return None
    return History.read(out_dir)


@contextlib.contextmanager
def _run_folder_lock(folder: Path | None, comm: Comm):
    """One writer per run folder (``bea_lib.fileio.folder_lock``, rank 0 for all ranks); a
    second is refused with a RunFileError naming the holder."""
    if folder is None or not comm.is_main:
        yield
        return
    _usable_folder(folder)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(fileio.folder_lock(folder, what="run folder"))
        except fileio.FolderBusy as err:
            raise RunFileError(str(err)) from None
        yield


def train(config: TrainConfig, out_dir: str | Path | None = None, *,
          overwrite: bool = False) -> History:
    """Train with full-batch Adam until a stopping rule fires; return the history.

    With ``out_dir``, write ``history.csv`` and ``run.json`` there, and checkpoints every
    ``config.checkpoint_every`` epochs; if ``out_dir`` already holds a checkpoint of the same run,
    resume from it (bitwise the same history on CPU as an uninterrupted run), and if it holds
    this run finished, return its history at once. A folder holding another run's results is
    refused (:class:`~bea_lib.nets.history.RunFileError`) unless ``overwrite``, and so is a
    folder another process is writing (its lock, naming the holder). A non-finite train loss
    stops the run (``stop_reason == "diverged"``) and keeps the history so far. ``max_time``
    is the budget of this call: a resumed run gets it afresh. run.json's ``segments`` record the
    code of each call that computed part of the run. Ctrl-C (KeyboardInterrupt) marks the run
    ``interrupted`` in run.json (resumable from its last checkpoint) and is raised again.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    overwrite = check_bool("overwrite", overwrite)
    device = local_device(config.device)
    comm = init_from_env(device)
    folder = Path(out_dir) if out_dir is not None else None  # checked before any work is done
    with _run_folder_lock(folder, comm):
        if folder is not None and not overwrite:
            done = finished_run(folder, config)
            if done is not None:
                return done
        return _train(config, folder, overwrite, device, comm)


def _train(config: TrainConfig, folder: Path | None, overwrite: bool, device, comm) -> History:
    state = (open_run_folder(folder, config, overwrite=overwrite, device=device, comm=comm)
             if folder else None)
    run = _set_up(config, device, comm)
    out_dir = folder if run.comm.is_main else None  # rank 0 writes the files
    history, n, elapsed0 = History(), 0, 0.0
    if state is not None:
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        history, n, elapsed0 = History(state["history"]), state["epoch"], state["elapsed"]
    earlier = None
    if state is not None and out_dir and (out_dir / INFO_FILE).is_file():
        earlier = read_run_info(out_dir)
        earlier = earlier.get("segments") or [{
            "commit": earlier.get("commit"), "dirty": earlier.get("uncommitted_changes"),
            "bea_lib_sha256": None, "from_epoch": 0}]  # a run recorded before segments
    segments, note = provenance.add_segment(earlier, from_epoch=n, device=str(run.device))
    if note and run.comm.is_main:
        print(f"note: {out_dir}: {note}", file=sys.stderr, flush=True)
    info = _run_info(config, run.device, run.comm, segments)
    if out_dir:
        write_run_info(out_dir, {**info, "stop_reason": StopReason.RUNNING, "message": ""})

    bar = tqdm(total=config.epochs, initial=min(n, config.epochs), unit="epoch", dynamic_ncols=True,
               desc=f"{config.dataset}/{config.model}", disable=None if run.comm.is_main else True)
    t0, last_saved, elapsed, first = time.perf_counter(), n, elapsed0, n
    try:
        while True:
            values = _measure(run, n)
            diagnostics = diagnostics_row(run.model, *run.train_xy, run.optimizer, n=n,
                                          every=config.diagnostics_every)
            elapsed = elapsed0 + time.perf_counter() - t0  # includes the diagnostics' cost
            history.append(dict(zip(METRICS, values), epoch=n, wall_time=elapsed, **diagnostics))
            history.stop_reason, history.message = _stop_reason(  # max_time: this call's budget,
                config, history, n,  # spent after one step at least: every call makes progress
                n > first and _time_up(run, time.perf_counter() - t0))
            if history.stop_reason:
                break
            run.optimizer.step()  # θ⁽ⁿ⁺¹⁾ from θ⁽ⁿ⁾ and ∇E(θ⁽ⁿ⁾), (2.1)
            n += 1
            bar.update()
            if not bar.disable:
                bar.set_postfix(loss=f"{values[0]:.4g}", refresh=False)
            if out_dir and config.checkpoint_every and n % config.checkpoint_every == 0:
                _save_checkpoint(run, out_dir, n, elapsed, history)
                last_saved = n
    except KeyboardInterrupt:  # θ may be half-stepped: nothing after the last checkpoint is kept
        if out_dir:
            segments[-1]["to_epoch"] = last_saved
            resume = (f"the last checkpoint is epoch {last_saved}: rerun the same command to "
                      "resume from it" if config.checkpoint_every and last_saved else
                      "no checkpoint was written: rerun the same command to start again")
            write_run_info(out_dir, {**info, "segments": segments,
                                     "stop_reason": StopReason.INTERRUPTED,
                                     "message": f"interrupted at epoch {n}; {resume}"})
        raise
    finally:
        bar.close()
    if out_dir:
        if config.checkpoint_every and n != last_saved:  # so that a longer run can resume here
            _save_checkpoint(run, out_dir, n, elapsed, history)
        history.to_csv(out_dir / HISTORY_FILE)
        segments[-1]["to_epoch"] = n
        write_run_info(out_dir, {**info, "segments": segments, "stop_reason": history.stop_reason,
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
    """The command line: one option per TrainConfig field (from its metadata), --out, --overwrite."""
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
                           help=meta["help"] + ("" if f.default is None else f" (default: {f.default})"))
    p.add_argument("--out", required=True, help="run folder: history.csv, run.json, checkpoints")
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
