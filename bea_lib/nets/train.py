r"""Full-batch Adam on a network (Section 6 of the paper): one epoch is one Adam step on ∇E.

E(θ) = (1/N) Σ_{i<N} ℓ_i(θ), ℓ_i the cross-entropy of example i. Its gradient is accumulated
over chunks of ``chunk_size`` examples, as *sums* of per-example losses, and divided by N once,
so that (for models whose output for x_i depends on x_i alone, see :mod:`bea_lib.nets.models`) the
result is the same for every chunk size, up to float rounding. The step is
:func:`bea_lib.optimizers.adam_update`, the paper's Definition 2.1 (h = ``h``, β = ``beta``,
ρ = ``rho``, ε = ``eps``), plus κh²f₁ for the κ-variant (``kappa``, :mod:`bea_lib.intervention`).

One loop, :func:`fit`, trains k runs as the rows of one (k, P) tensor θ: one run as its
``nn.Module`` (:class:`ModuleNet`: chunks, batch norm, torchrun, checkpoints), a batch as one
stacked model (:class:`bea_lib.nets.batched.StackedNet`). ``train(config)`` is one run,
``train([config, ...])`` (``train_batched``) a batch; each run gets a :class:`History` and a
:class:`~bea_lib.vocab.StopReason`.

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
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import fileio, provenance
from ..autodiff import gradient_and_hvp_fn
from ..intervention import kappa_update
from ..norms import perturbed_one_norm
from ..optimizers import AdamState, adam_init, step_denominator
from ..validation import check_bool, check_int
from ..vocab import StopReason
from . import checkpoint
from .batched import StackedNet, common_config, module_hvp_fn
from .config import TRAJECTORY_FIELDS, TrainConfig, build_model
from .data import DataError, load_dataset
from .diagnostics import diagnostics_at, flat_loss
from .distributed import Comm, init_from_env, local_device
from .history import (DIAGNOSTIC_COLUMNS, HISTORY_FILE, INFO_FILE, METRICS, History,
                      RunFileError, read_run_info, write_run_info)
from .models import has_batch_norm
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


def gradient_norms(g: torch.Tensor, *, eps) -> torch.Tensor:
    """[‖∇E‖_{1,ε}, ‖∇E‖₁, ‖∇E‖₂] of every run's gradient, rows of ``g`` (k, P), in float64
    (the norms of Section 6); ``eps`` is ε, one number or one per run."""
    g = g.double()
    eps = list(eps) if isinstance(eps, (list, tuple)) else [eps] * len(g)
    one_eps = torch.stack([perturbed_one_norm(row, eps=e) for row, e in zip(g, eps)])
    return torch.stack([one_eps, g.abs().sum(1), g.norm(dim=1)], dim=1)


def _run_info(config: TrainConfig, device, comm: Comm, segments: list | None = None) -> dict:
    """Parameters, seed, commit and versions (:mod:`bea_lib.provenance`), for run.json; with
    ``segments``, the code of every invocation that computed part of the run
    (:func:`bea_lib.provenance.add_segment`)."""
    source = provenance.commit(Path(__file__).resolve().parents[2])
    return {"config": dataclasses.asdict(config), "seed": config.seed, "commit": source["commit"],
            "uncommitted_changes": source["dirty"], "device": str(device),
            "world_size": comm.world_size, "versions": provenance.versions(),
            **({"segments": segments} if segments is not None else {})}


# --- one run as an nn.Module -------------------------------------------------------------------

class ModuleNet:
    """One run (k = 1) as an ``nn.Module``: chunked full-batch gradients, batch normalisation,
    one data slice per process under torchrun. θ is the flat (1, P) vector of the parameters."""

    def __init__(self, model, train_xy, test_xy, *, chunk_size: int, comm: Comm):
        self.model, self.train_xy, self.test_xy = model, train_xy, test_xy
        self.chunk_size, self.comm = chunk_size, comm
        self.params = [p for p in model.parameters() if p.requires_grad]

    def theta(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params])[None]

    def _load(self, theta):
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(theta[0], self.params)

    def gradient(self, theta):
        self._load(theta)
        stats = full_batch_gradient(self.model, *self.train_xy, chunk_size=self.chunk_size,
                                    comm=self.comm)
        return torch.cat([p.grad.reshape(-1) for p in self.params])[None], stats[None, :2]

    def evaluate(self, theta):
        self._load(theta)
        return evaluate(self.model, *self.test_xy, chunk_size=self.chunk_size, comm=self.comm)[None]

    def hvp_fn(self, theta, rows):
        """v ↦ ∇²E v at θ (this process's examples), as (1, P) rows: by hand (the R-operator of
        :mod:`bea_lib.nets.batched`) for the MLP and the 1-D CNN, else reverse over reverse."""
        if self.comm.world_size > 1:
            raise ValueError("the κ-variant and the diagnostics need one process (world_size 1)")
        by_hand = module_hvp_fn(self.model, *self.train_xy, theta, chunk_size=self.chunk_size)
        if by_hand is not None:
            return by_hand
        self._load(theta)
        E, theta0 = flat_loss(self.model, *self.train_xy)
        _, fn = gradient_and_hvp_fn(E, theta0)
        return lambda v: fn(v[0])[None]

    def keep(self, index):
        pass


def open_net(configs: list[TrainConfig], device, comm: Comm, data=None, *, batch: bool):
    """The runs of ``configs`` ready to train on ``data`` (loaded unless given): a
    :class:`~bea_lib.nets.batched.StackedNet` for a ``batch``, else a :class:`ModuleNet`."""
    base = configs[0]
    if device.type == "cuda":  # reproducible convolutions, at some cost in speed
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    if data is None:
        data = load_dataset(base.dataset, root=base.data_root, n_train=base.n_train,
                            n_test=base.n_test)
    data = data.to(device, getattr(torch, base.dtype))
    models = [build_model(c, data.input_shape, data.n_classes).to(device) for c in configs]
    if batch:
        return StackedNet(models, data, chunk_size=base.chunk_size,  # κ steps reuse the
                          keep_tapes=any(c.kappa != 0 for c in configs))  # gradient's passes
    if has_batch_norm(models[0]) and base.chunk_size < len(data.x_train):
        warnings.warn("batch normalisation uses chunk statistics: the loss and its gradient depend "
                      "on chunk_size and are not the full-batch E (see bea_lib.nets.models)",
                      stacklevel=3)
    tr, te = comm.slice(len(data.x_train)), comm.slice(len(data.x_test))
    return ModuleNet(models[0], (data.x_train[tr], data.y_train[tr]),
                     (data.x_test[te], data.y_test[te]), chunk_size=base.chunk_size, comm=comm)


# --- the loop ----------------------------------------------------------------------------------

def stop_reason(config: TrainConfig, history: History, n: int,
                time_up: bool = False) -> tuple[StopReason | str, str]:
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


def _diagnostics(net, theta, g, state, configs: list[TrainConfig], rows: list[int]):
    """The :data:`DIAGNOSTIC_COLUMNS` at θ⁽ⁿ⁾ of the runs ``rows`` (rows of θ; ``configs`` in
    θ's order), each with its own h, β, ρ, ε and the denominator of its next step, from Adam's
    state."""
    out = {}
    for r in rows:
        c, fn = configs[r], net.hvp_fn(theta, [r])
        D = step_denominator(g[r], AdamState(state.m[r], state.v[r], state.n), rho=c.rho,
                             eps=c.eps)
        out[r] = diagnostics_at(g[r], lambda v: fn(v[None])[0], h=c.h, beta=c.beta, rho=c.rho,
                                eps=c.eps, denominator=D, sharpness=c.sharpness)
    return out


def fit(net, configs: list[TrainConfig], *, theta=None, state: AdamState | None = None,
        histories: list[History] | None = None, n: int = 0, elapsed0: float = 0.0,
        comm: Comm = Comm(), on_step=None, bar=None) -> list[History]:
    """The training loop: k runs of ``configs`` on ``net`` (θ a (k, P) tensor, the batch a
    dimension), until each stops; one :class:`History` per run.

    Row n of a history is taken at θ⁽ⁿ⁾ with the gradient its step uses; the step is
    :func:`bea_lib.intervention.kappa_update` (Adam when κ = 0), each run with its own h, β, ρ, ε, κ. A run that stops
    (:class:`~bea_lib.vocab.StopReason`) leaves the batch. ``on_step(n, theta, state, elapsed,
    histories)`` is called after each step (checkpoints). Resuming passes θ, the state, the
    histories so far and n.
    """
    k, base = len(configs), configs[0]
    theta = net.theta() if theta is None else theta
    dtype, device = theta.dtype, theta.device

    def column(name, dtype=dtype):
        """A per-run (k, 1) column; for one run the number itself, so that its step's
        arithmetic (the bias corrections 1 − β^n in Python's float64) is the same as before."""
        if k == 1:
            return getattr(base, name)
        return torch.tensor([[getattr(c, name)] for c in configs], dtype=dtype, device=device)

    hyper = {name: column(name) for name in ("h", "beta", "rho", "eps", "kappa")}
    eps_of = [c.eps for c in configs]
    state = adam_init(theta) if state is None else state
    histories = [History() for _ in configs] if histories is None else histories
    live = list(range(k))  # the runs still training, in the order of theta's rows
    t0, first = time.perf_counter(), n
    while True:
        g, train_stats = net.gradient(theta)
        if n % base.test_every == 0:
            test_stats = net.evaluate(theta)
        else:
            test_stats = torch.full_like(train_stats, math.nan)
        rows = torch.cat([train_stats[:, :2], test_stats, gradient_norms(g, eps=eps_of)], 1).tolist()
        every = [configs[r].diagnostics_every for r in live]
        t1 = time.perf_counter()
        diag = _diagnostics(net, theta, g, state, [configs[r] for r in live],
                            [i for i, e in enumerate(every) if e and n % e == 0])
        diag_seconds = time.perf_counter() - t1
        elapsed = elapsed0 + time.perf_counter() - t0  # includes the diagnostics' cost
        # max_time is the budget of this call, spent after one step at least: every call
        # (a resume included) makes progress
        time_up = (base.max_time is not None and n > first
                   and time.perf_counter() - t0 >= base.max_time)
        if comm.world_size > 1 and base.max_time is not None:  # all ranks must agree
            time_up = bool(comm.sum_(torch.tensor([float(time_up)], device=device)).item())
        keep = []
        for i, r in enumerate(live):
            hist = histories[r]
            hist.append(dict(zip(METRICS, rows[i]), epoch=n, wall_time=elapsed,
                             **diag.get(i, dict.fromkeys(DIAGNOSTIC_COLUMNS, math.nan))))
            hist.diagnostics_seconds += diag_seconds if i in diag else 0.0
            hist.stop_reason, hist.message = stop_reason(configs[r], hist, n, time_up)
            if not hist.stop_reason:
                keep.append(i)
        if not keep:
            break
        if len(keep) < len(live):  # stopped runs leave the batch, the others go on
            index = torch.tensor(keep, device=device)
            live = [live[i] for i in keep]
            theta, g = theta[index], g[index]
            state = AdamState(state.m[index], state.v[index], state.n)
            hyper = {name: t[index] if torch.is_tensor(t) else t for name, t in hyper.items()}
            eps_of = [eps_of[i] for i in keep]
            net.keep(index)
        d, state = kappa_update(g, lambda r: net.hvp_fn(theta, r), state, **hyper,
                              eps_inside=base.eps_inside)
        theta = theta + d  # θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ + d, (2.1)
        n += 1
        if bar is not None:
            bar.update()
            if not bar.disable:
                bar.set_postfix(loss=f"{rows[0][0]:.4g}", refresh=False)
        if on_step is not None:
            on_step(n, theta, state, elapsed, histories)
    return histories


def _save_checkpoint(out_dir: Path, config, theta, state, n: int, elapsed: float,
                     history: History) -> None:
    """θ⁽ⁿ⁾ and Adam's state with the rows 0..n-1: resuming recomputes row n exactly."""
    rows = history.head(n)
    checkpoint.save(out_dir, n, {"config": dataclasses.asdict(config), "epoch": n,
                                 "elapsed": elapsed, "history": rows.columns, "model": theta,
                                 "optimizer": {"m": state.m, "v": state.v, "n": state.n}})
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


def train(config: TrainConfig | list[TrainConfig], out_dir: str | Path | None = None, *,
          overwrite: bool = False, data=None) -> History | list[History]:
    """Train with full-batch Adam (or its κ-variant) until a stopping rule fires; the history.

    ``config`` is one :class:`TrainConfig` (one run, returns its :class:`History`) or a list of
    them (a batch trained together as one stacked model, :mod:`bea_lib.nets.batched`; returns
    one History per config, in order). ``data`` is a loaded data set to use instead of loading
    ``config.dataset`` (the same data for every run).

    With ``out_dir`` (one run), write ``history.csv`` and ``run.json`` there, and checkpoints
    every ``config.checkpoint_every`` epochs; if ``out_dir`` already holds a checkpoint of the
    same run, resume from it (bitwise the same history on CPU as an uninterrupted run), and if it
    holds this run finished, return its history at once. A folder holding another run's results
    is refused (:class:`~bea_lib.nets.history.RunFileError`) unless ``overwrite``, and so is a
    folder another process is writing (its lock, naming the holder). A non-finite train loss
    stops the run (``StopReason.DIVERGED``) and keeps the history so far. ``max_time`` is the
    budget of this call: a resumed run gets it afresh. run.json's ``segments`` record the code
    of each call that computed part of the run. Ctrl-C (KeyboardInterrupt) marks the run
    ``interrupted`` in run.json (resumable from its last checkpoint) and is raised again.
    """
    overwrite = check_bool("overwrite", overwrite)
    if isinstance(config, (list, tuple)):
        if out_dir is not None:
            raise ValueError("out_dir is for one run; a batch keeps its histories in memory "
                             "(long runs go through bea_lib.nets.executor, one folder each)")
        configs = common_config(list(config))
        device = local_device(configs[0].device)
        return fit(open_net(configs, device, Comm(), data, batch=True), configs)
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    device = local_device(config.device)
    comm = init_from_env(device)
    folder = Path(out_dir) if out_dir is not None else None  # checked before any work is done
    with _run_folder_lock(folder, comm):
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
    out_dir = folder if comm.is_main else None  # rank 0 writes the files
    history, n, elapsed0, theta, state = History(), 0, 0.0, None, None
    if saved is not None:
        theta, n, elapsed0 = saved["model"].to(device), saved["epoch"], saved["elapsed"]
        adam = saved["optimizer"]
        state = AdamState(adam["m"].to(device), adam["v"].to(device), adam["n"])
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
    info = _run_info(config, device, comm, segments)
    if out_dir:
        write_run_info(out_dir, {**info, "stop_reason": StopReason.RUNNING, "message": ""})
    last = {"saved": n, "theta": net.theta() if theta is None else theta,
            "state": adam_init(net.theta()) if state is None else state}

    def on_step(n, theta, state, elapsed, histories):  # keeps θ⁽ⁿ⁾ and the state for the end
        last.update(theta=theta, state=state)
        if out_dir and config.checkpoint_every and n % config.checkpoint_every == 0:
            _save_checkpoint(out_dir, config, theta, state, n, elapsed, histories[0])
            last["saved"] = n

    bar = tqdm(total=config.epochs, initial=min(n, config.epochs), unit="epoch", dynamic_ncols=True,
               desc=f"{config.dataset}/{config.model}", disable=None if comm.is_main else True)
    try:
        [history] = fit(net, [config], theta=theta, state=state, histories=[history], n=n,
                        elapsed0=elapsed0, comm=comm, on_step=on_step, bar=bar)
    except KeyboardInterrupt:  # θ may be half-stepped: nothing after the last checkpoint is kept
        if out_dir:
            saved_at = [int(checkpoint._NAME.match(p.name).group(1))
                        for p in checkpoint.checkpoints(out_dir)]  # on disk, whatever the moment
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
            _save_checkpoint(out_dir, config, last["theta"], last["state"], n,
                             float(history["wall_time"][-1]), history)
        history.to_csv(out_dir / HISTORY_FILE)
        write_run_info(out_dir, {**info, "stop_reason": history.stop_reason,
                                 "message": history.message, "epochs_done": n, "rows": len(history),
                                 "wall_time": history["wall_time"][-1]})
    return history


def train_kappa(data, *, kappa: float, h: float, beta: float, rho: float, eps: float,
                epochs: int, seed: int, width: int = 32, activation: str = "relu",
                dtype: str = "float64", test_every: int = 1, diagnostics_every: int = 0) -> History:
    """One network run of the κ-variant (:mod:`bea_lib.intervention`), the MLP on the loaded
    ``data``, full batch: a thin name for :func:`train` of ``TrainConfig(kappa=kappa, ...)``.
    A batch of κ runs is ``train([config, ...])``."""
    config = TrainConfig(model="mlp", kappa=kappa, h=h, beta=beta, rho=rho, eps=eps,
                         epochs=epochs, seed=seed, width=width, activation=activation,
                         dtype=dtype, test_every=test_every, diagnostics_every=diagnostics_every,
                         n_train=len(data.x_train), n_test=len(data.x_test),
                         chunk_size=max(len(data.x_train), len(data.x_test)), device="cpu")
    return train(config, data=data)


def train_batched(configs: list[TrainConfig], *, data=None) -> list[History]:
    """:func:`train` of a batch: the configs trained together, one History each, in order."""
    return train(list(configs), data=data)


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
