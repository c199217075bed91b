r"""Full-batch Adam on a network (Section 6 of the paper): one epoch is one Adam step on ∇E.

E(θ) = (1/N) Σ_{i<N} ℓ_i(θ), ℓ_i the cross-entropy of example i. Its gradient is accumulated
over chunks of ``chunk_size`` examples, as *sums* of per-example losses, and divided by N once,
so that (for models whose output for x_i depends on x_i alone, see :mod:`bea_lib.nets.models`) the
result is the same for every chunk size, up to float rounding. The step is :class:`bea_lib.Adam`,
the paper's Definition 2.1 (h = ``h``, β = ``beta``, ρ = ``rho``, ε = ``eps``).

Row n of the history (see :mod:`bea_lib.nets.history`) is computed at θ⁽ⁿ⁾ in the same chunked pass
that produces the gradient for the step θ⁽ⁿ⁾ → θ⁽ⁿ⁺¹⁾, so the logged norms are those of the
gradient the step uses. A run of ``epochs`` steps has ``epochs + 1`` rows.

Python: ``history = bea_lib.nets.train.train(TrainConfig(dataset="mnist1d", model="mlp"), out_dir)``.
Command line (the same under ``torchrun --nproc_per_node=K``, one data slice per process)::

    python -m bea_lib.nets.train --dataset mnist1d --model cnn --h 1e-3 --beta 0.9 --rho 0.999 \
        --eps 1e-8 --epochs 2000 --seed 0 --out runs/mnist1d-cnn
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import numbers
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import checkpoint
from .data import DATASETS, load_dataset
from .diagnostics import diagnostics_row
from .distributed import Comm, init_from_env, local_device
from .history import History, write_json
from .models import MODELS, NORMS, has_batch_norm, make_model
from ..norms import perturbed_one_norm
from ..optimizers import Adam
from ..validation import check_positive, check_unit_interval


def _check_int(name: str, value, minimum: int, optional: bool = False):
    """An integer (numpy's too) >= ``minimum``, as a Python int; None too if ``optional``."""
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' or None' if optional else ''}, "
                         f"got {value!r}")
    return int(value)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run; checked on construction (ValueError naming the field)."""

    dataset: str = "mnist1d"  # one of bea_lib.nets.data.DATASETS
    model: str = "mlp"  # one of bea_lib.nets.models.MODELS
    h: float = 1e-3  # step size (learning rate)
    beta: float = 0.9  # first-moment parameter β, in [0, 1)
    rho: float = 0.999  # second-moment parameter ρ, in [0, 1)
    eps: float = 1e-8  # ε, inside the square root by default (the paper's form)
    eps_inside: bool = True
    epochs: int = 1000  # at most this many Adam steps (= epochs)
    seed: int = 0  # seeds the initialisation, the only randomness of a run
    chunk_size: int = 1000  # examples per forward/backward pass; no effect on E or ∇E
    loss_threshold: float | None = None  # stop at the first row with train loss below it
    max_time: float | None = None  # stop after this many seconds of training
    checkpoint_every: int = 0  # epochs between checkpoints in out_dir (0: none)
    test_every: int = 1  # epochs between test evaluations (other rows hold NaN)
    diagnostics_every: int = 0  # epochs between bea_lib.nets.diagnostics (0: none; one process)
    device: str | None = None  # "cpu", "cuda", "cuda:1"; None: CUDA if available
    dtype: str = "float32"  # "float32" or "float64", for data, parameters and Adam's state
    width: int | None = None  # MLP hidden width or CNN channels (bea_lib.nets.models.make_model)
    norm: str | None = None  # "group", "batch" or "none"; None: the model's default
    data_root: str = "data"  # folder holding the CIFAR batches
    n_train: int | None = None  # use only the first n_train training examples (None: all)
    n_test: int | None = None  # likewise for the test set

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        checked = {"h": check_positive("h", self.h), "eps": check_positive("eps", self.eps),
                   "beta": check_unit_interval("beta", self.beta), "rho": check_unit_interval("rho", self.rho),
                   "eps_inside": bool(self.eps_inside)}
        for name, minimum in (("epochs", 0), ("seed", 0), ("chunk_size", 1), ("checkpoint_every", 0),
                              ("test_every", 1), ("diagnostics_every", 0)):
            checked[name] = _check_int(name, getattr(self, name), minimum)
        for name in ("n_train", "n_test", "width"):
            checked[name] = _check_int(name, getattr(self, name), 1, optional=True)
        for name in ("loss_threshold", "max_time"):
            if getattr(self, name) is not None:
                checked[name] = check_positive(name, getattr(self, name))
        for name, value in checked.items():  # plain Python numbers: comparable and JSON-ready
            object.__setattr__(self, name, value)
        if self.norm is not None and self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)} or None, got {self.norm!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")


# Fields that shape the trajectory: a checkpoint resumes only a run with the same values.
# The others (stopping rules, chunk size, device, data folder) may change between sessions.
_TRAJECTORY_FIELDS = ("dataset", "model", "h", "beta", "rho", "eps", "eps_inside", "seed", "dtype",
                      "width", "norm", "n_train", "n_test", "test_every")


def full_batch_gradient(model, x, y, *, chunk_size: int, comm: Comm = Comm()) -> torch.Tensor:
    """Set every ``p.grad`` to ∇E over the examples of all ranks; return [E, accuracy, N] (float64).

    ``x, y`` are this rank's examples. Losses are summed per chunk (``reduction="sum"``),
    their gradients accumulate in ``p.grad``, the sums of all ranks are added, and the total is
    divided by N once: no chunk is weighted by its size, so the chunking does not change E.
    """
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
    model.eval()
    stats = torch.zeros(3, dtype=torch.float64, device=x.device)
    for i in range(0, len(x), chunk_size):
        out = model(x[i:i + chunk_size])
        stats[0] += F.cross_entropy(out, y[i:i + chunk_size], reduction="sum")
        stats[1] += (out.argmax(1) == y[i:i + chunk_size]).sum()
    stats[2] = len(x)
    comm.sum_(stats)
    return stats[:2] / stats[2]


def gradient_norms(model, eps: float) -> torch.Tensor:
    """[‖∇E‖_{1,ε}, ‖∇E‖₁, ‖∇E‖₂] of the gradients in ``p.grad``, in float64 (the norms of Section 6)."""
    g = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]).double()
    return torch.stack([perturbed_one_norm(g, eps), g.abs().sum(), g.norm()])


def build_model(config: TrainConfig, input_shape, n_classes: int) -> torch.nn.Module:
    """The initial network θ⁽⁰⁾: seeded with ``config.seed``, drawn in float32, then cast to ``config.dtype``.

    Drawing in float32 whatever the default dtype makes θ⁽⁰⁾ depend on the seed alone, and gives
    float32 and float64 runs the same start.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        torch.manual_seed(config.seed)
        model = make_model(config.model, input_shape, n_classes, width=config.width, norm=config.norm)
    finally:
        torch.set_default_dtype(previous)
    return model.to(getattr(torch, config.dtype))


def _run_info(config: TrainConfig, device, comm: Comm) -> dict:
    """Parameters, seed, commit and versions, written to run.json beside the history."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(package):
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    try:
        repo = Path(__file__).resolve().parent
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True,
                                    text=True, timeout=10).stdout.strip()) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"config": dataclasses.asdict(config), "seed": config.seed, "commit": commit,
            "uncommitted_changes": dirty, "device": str(device), "world_size": comm.world_size,
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         **{p: installed(p) for p in ("bea_lib", "torchvision", "numpy", "mnist1d", "scikit-learn")}}}


def _stop_reason(config: TrainConfig, history: History, n: int, time_up: bool) -> tuple[str, str]:
    """Why to stop after row n (empty if the run goes on), and a sentence saying so."""
    loss = history.columns["train_loss"]
    if not math.isfinite(loss[-1]):
        finite = [(k, v) for k, v in zip(history.columns["epoch"], loss) if math.isfinite(v)]
        last = f"last finite train loss {finite[-1][1]:.6g} at epoch {int(finite[-1][0])}" if finite else \
            "no finite train loss before"
        return "diverged", f"diverged at epoch {n}: train loss is {loss[-1]}; {last}"
    if config.loss_threshold is not None and loss[-1] < config.loss_threshold:
        return "loss_threshold", f"train loss {loss[-1]:.6g} < {config.loss_threshold} at epoch {n}"
    if n >= config.epochs:
        return "epochs", f"{n} epochs done, train loss {loss[-1]:.6g}"
    if time_up:
        return "time", f"time limit {config.max_time} s reached at epoch {n}, train loss {loss[-1]:.6g}"
    return "", ""


def train(config: TrainConfig, out_dir: str | Path | None = None) -> History:
    """Train with full-batch Adam until a stopping rule fires; return the history.

    With ``out_dir``, write ``history.csv`` and ``run.json`` there, and checkpoints every
    ``config.checkpoint_every`` epochs; if ``out_dir`` already holds a checkpoint of the same run,
    resume from it (bitwise the same history on CPU as an uninterrupted run). A non-finite train
    loss stops the run (``stop_reason == "diverged"``) and keeps the history so far.
    """
    device = local_device(config.device)
    comm = init_from_env(device)
    if device.type == "cuda":  # reproducible convolutions, at some cost in speed
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    dtype = getattr(torch, config.dtype)
    data = load_dataset(config.dataset, root=config.data_root, n_train=config.n_train,
                        n_test=config.n_test).to(device, dtype)
    model = build_model(config, data.input_shape, data.n_classes).to(device)
    if has_batch_norm(model) and config.chunk_size < len(data.x_train):
        warnings.warn("batch normalisation uses chunk statistics: the loss and its gradient depend "
                      "on chunk_size and are not the full-batch E (see bea_lib.nets.models)", stacklevel=2)
    optimizer = Adam(model.parameters(), lr=config.h, beta=config.beta, rho=config.rho, eps=config.eps,
                     eps_inside=config.eps_inside)
    history, n, elapsed0 = History(), 0, 0.0

    out_dir = Path(out_dir) if out_dir is not None else None
    state = checkpoint.load_latest(out_dir, map_location=device) if out_dir else None
    if state is not None:
        saved = state["config"]
        differ = [f for f in _TRAJECTORY_FIELDS if saved.get(f) != getattr(config, f)]
        if differ:
            raise checkpoint.CheckpointError(
                f"the checkpoint in {out_dir} belongs to another run: {', '.join(differ)} differ "
                f"({', '.join(f'{f}={saved.get(f)!r}' for f in differ)}); use another out_dir")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history.columns, n, elapsed0 = state["history"], state["epoch"], state["elapsed"]
    info = _run_info(config, device, comm)
    if out_dir and comm.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "run.json", {**info, "stop_reason": "running", "message": ""})

    def save_checkpoint():
        if out_dir and comm.is_main and config.checkpoint_every:
            checkpoint.save(out_dir, n, {"config": dataclasses.asdict(config), "epoch": n, "elapsed": elapsed,
                                         "history": history.columns, "model": model.state_dict(),
                                         "optimizer": optimizer.state_dict()})
            history.to_csv(out_dir / "history.csv")

    x_train, y_train = data.x_train[comm.slice(len(data.x_train))], data.y_train[comm.slice(len(data.y_train))]
    x_test, y_test = data.x_test[comm.slice(len(data.x_test))], data.y_test[comm.slice(len(data.y_test))]
    nan2 = torch.full((2,), math.nan, dtype=torch.float64, device=device)
    bar = tqdm(total=config.epochs, initial=min(n, config.epochs), unit="epoch", dynamic_ncols=True,
               desc=f"{config.dataset}/{config.model}", disable=None if comm.is_main else True)
    t0, last_saved = time.perf_counter(), n
    while True:
        train_stats = full_batch_gradient(model, x_train, y_train, chunk_size=config.chunk_size, comm=comm)
        test_stats = evaluate(model, x_test, y_test, chunk_size=config.chunk_size, comm=comm) \
            if n % config.test_every == 0 else nan2
        values = torch.cat([train_stats[:2], test_stats, gradient_norms(model, config.eps)]).tolist()
        diagnostics = diagnostics_row(model, x_train, y_train, optimizer, n=n, every=config.diagnostics_every)
        elapsed = elapsed0 + time.perf_counter() - t0
        history.append(dict(zip(("train_loss", "train_acc", "test_loss", "test_acc", "grad_norm_1_eps",
                                 "grad_norm_1", "grad_norm_2"), values), epoch=n, wall_time=elapsed,
                            **diagnostics))
        time_up = config.max_time is not None and elapsed >= config.max_time
        if comm.world_size > 1 and config.max_time is not None:  # the ranks' clocks must agree
            time_up = bool(comm.sum_(torch.tensor([float(time_up)], device=device)).item())
        history.stop_reason, history.message = _stop_reason(config, history, n, time_up)
        if history.stop_reason:
            break
        optimizer.step()  # θ⁽ⁿ⁺¹⁾ from θ⁽ⁿ⁾ and ∇E(θ⁽ⁿ⁾), (2.1)
        n += 1
        bar.update()
        if not bar.disable:
            bar.set_postfix(loss=f"{values[0]:.4g}", refresh=False)
        if config.checkpoint_every and n % config.checkpoint_every == 0:
            save_checkpoint()  # θ⁽ⁿ⁾ with rows 0..n-1: resuming recomputes row n exactly
            last_saved = n
    bar.close()
    if n != last_saved:  # the same layout: θ⁽ⁿ⁾ with rows 0..n-1, so a longer run can resume here
        rows = history.columns
        history.columns = {k: v[:-1] for k, v in rows.items()}
        save_checkpoint()
        history.columns = rows
    if out_dir and comm.is_main:
        history.to_csv(out_dir / "history.csv")
        write_json(out_dir / "run.json", {**info, "stop_reason": history.stop_reason,
                                          "message": history.message, "epochs_done": n,
                                          "wall_time": history["wall_time"][-1]})
    return history


def sweep(base: TrainConfig, out_root: str | Path | None = None, **grid) -> dict[tuple, History]:
    """Train ``base`` with every combination of the values in ``grid``; histories keyed by the values.

    ``sweep(cfg, "runs", seed=[0, 1], rho=[0.9, 0.999])`` runs four configurations; with
    ``out_root`` each writes to ``out_root/seed=0-rho=0.9`` etc. and a finished run with
    checkpoints is resumed at its end rather than recomputed.
    """
    names, results = list(grid), {}
    for values in itertools.product(*grid.values()):
        config = dataclasses.replace(base, **dict(zip(names, values)))
        out_dir = None if out_root is None else Path(out_root) / "-".join(f"{k}={v}" for k, v in zip(names, values))
        results[values] = train(config, out_dir)
    return results


_HELP = {"h": "step size h", "beta": "first-moment parameter β in [0, 1)", "rho": "ρ in [0, 1)",
         "eps": "ε (inside the square root unless --no-eps-inside)", "epochs": "maximum number of Adam steps",
         "chunk_size": "examples per forward/backward pass (does not change E)",
         "loss_threshold": "stop when the train loss falls below this", "max_time": "stop after this many seconds",
         "checkpoint_every": "epochs between checkpoints (0: none)", "device": "cpu, cuda, cuda:1 (default: cuda if available)",
         "norm": "group, batch or none (default: group for ResNets, none otherwise)"}
_CHOICES = {"dataset": DATASETS, "model": MODELS, "dtype": ("float32", "float64"), "norm": NORMS}
_OPTIONAL_TYPES = {"loss_threshold": float, "max_time": float, "device": str, "width": int, "norm": str,
                   "n_train": int, "n_test": int}


def main(argv=None) -> int:
    """The command line: every TrainConfig field as an option, plus --out (the run folder)."""
    parser = argparse.ArgumentParser(prog="python -m bea_lib.nets.train", description=__doc__.split("\n")[0])
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            parser.add_argument(flag, default=f.default, action=argparse.BooleanOptionalAction,
                                help=_HELP.get(f.name))
        else:
            kind = _OPTIONAL_TYPES.get(f.name, type(f.default))
            parser.add_argument(flag, type=kind, default=f.default, choices=_CHOICES.get(f.name),
                                help=_HELP.get(f.name, f"default {f.default}"))
    parser.add_argument("--out", required=True, help="run folder: history.csv, run.json, checkpoints")
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    try:
        history = train(TrainConfig(**args), out)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if os.environ.get("RANK", "0") == "0":
        print(f"{history.stop_reason}: {history.message}; history in {Path(out) / 'history.csv'}")
    return 1 if history.stop_reason == "diverged" else 0


if __name__ == "__main__":
    sys.exit(main())
