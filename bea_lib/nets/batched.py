r"""A sweep of small networks trained together: k runs of full-batch Adam as one batched model.

Each run of a sweep is :func:`bea_lib.nets.train.train` with its own (h, β, ρ, ε) and seed on
the same data and network. For tiny models a step costs little arithmetic and much Python, so k
runs one after another pay k times the per-step overhead. Here the k parameter sets are stacked
along a leading run axis (``torch.func.stack_module_state``), the loss and its gradient are
computed for all runs at once (``torch.func.vmap`` over ``torch.func.functional_call``), and the
step is the same :func:`bea_lib.optimizers.adam_update` as everywhere else, mapped over the run
axis with per-run h, β, ρ, ε as tensors (so each run sees plain scalars, as in (2.1)).

Per run, the result is the history that ``train`` would record (the same rows, the same
stopping rules ``epochs``, ``loss_threshold`` and ``diverged``), up to float rounding: the
gradient is the same sum over chunks divided by N once, computed by a batched kernel.
``tests/test_batched.py`` checks the identity in float64. ``wall_time`` is the batch's time,
shared by its runs. A run that stops is frozen (its parameters no longer move) and records no
more rows; the batch ends when every run has stopped.

Cost: the batch saves k − 1 times the per-step Python overhead, not arithmetic. On one CPU
core a step of the MNIST-1D MLP on a few thousand examples is dominated by arithmetic, so the
gain there is small; it grows as the training set shrinks and on a GPU, where one tiny run
leaves the device idle (``benchmarks/bench_batched.py``).

Limits: models without batch normalisation (their chunk statistics would need per-run buffers
updated in place), one device, no checkpoints (a batch of tiny runs takes minutes; long runs go
through :mod:`bea_lib.nets.executor`, one resumable ``train`` each).

Python::

    configs = [dataclasses.replace(base, beta=b, seed=s) for b in (0.9, 0.99) for s in (0, 1)]
    histories = train_batched(configs)   # one History per config, in order
"""
from __future__ import annotations

import dataclasses
import math
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from ..optimizers import AdamState, adam_update
from .data import load_dataset
from .distributed import local_device
from .history import DIAGNOSTIC_COLUMNS, METRICS, History
from .models import has_batch_norm
from .train import TrainConfig, build_model

# Fields that may differ between the runs of one batch; all others must agree.
PER_RUN_FIELDS = ("h", "beta", "rho", "eps", "seed", "epochs", "loss_threshold")


def _common_config(configs: list[TrainConfig]) -> TrainConfig:
    """The first config, after checking that the others differ from it only in PER_RUN_FIELDS."""
    if not configs:
        raise ValueError("configs must hold at least one TrainConfig, got an empty list")
    first = configs[0]
    shared = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in PER_RUN_FIELDS]
    for i, c in enumerate(configs):
        if not isinstance(c, TrainConfig):
            raise ValueError(f"configs[{i}] must be a TrainConfig, got {type(c).__name__}")
        differ = [f for f in shared if getattr(c, f) != getattr(first, f)]
        if differ:
            raise ValueError(f"configs[{i}] differs from configs[0] in {', '.join(differ)}; a "
                             f"batch may differ only in {', '.join(PER_RUN_FIELDS)}")
    if first.max_time is not None or first.checkpoint_every:
        raise ValueError("max_time and checkpoint_every are not supported by train_batched; "
                         "run long jobs through bea_lib.nets.executor")
    return first


def adam_update_batched(g: torch.Tensor, state: AdamState, *, h, beta, rho, eps,
                        eps_inside: bool = True) -> tuple[torch.Tensor, AdamState]:
    """:func:`adam_update` for k runs at once: ``g``, ``state.m`` and ``state.v`` have a leading
    run axis of length k, and ``h, beta, rho, eps`` are tensors of shape (k,).

    ``vmap`` hands each run its own 0-dimensional h, β, ρ, ε, so this is (2.1) run by run.
    ``state.n`` is shared (every active run has taken the same number of steps).
    """
    def one(g, m, v, h, beta, rho, eps):
        d, new = adam_update(g, AdamState(m, v, state.n), h=h, beta=beta, rho=rho, eps=eps,
                             eps_inside=eps_inside)
        return d, new.m, new.v

    d, m, v = vmap(one)(g, state.m, state.v, h, beta, rho, eps)
    return d, AdamState(m, v, state.n + 1)


def train_batched(configs: list[TrainConfig]) -> list[History]:
    """Train every config of ``configs`` with full-batch Adam, all at once; one History each.

    The configs must agree in everything but :data:`PER_RUN_FIELDS` (model, data, dtype, ...).
    Row n of each history is computed at that run's θ⁽ⁿ⁾, as in :func:`train`.
    """
    base = _common_config(list(configs))
    k = len(configs)
    device = local_device(base.device)
    dtype = getattr(torch, base.dtype)
    data = load_dataset(base.dataset, root=base.data_root, n_train=base.n_train,
                        n_test=base.n_test).to(device, dtype)
    models = [build_model(c, data.input_shape, data.n_classes).to(device) for c in configs]
    if has_batch_norm(models[0]):
        raise ValueError("train_batched does not support batch normalisation (norm='batch'); "
                         "use bea_lib.nets.train.train")
    params, buffers = stack_module_state(models)
    params = {name: p.detach() for name, p in params.items()}
    skeleton = models[0]

    def loss_sum(p, b, x, y):
        """Σ_i ℓ_i over a chunk (the sum, as in train's chunks) and the aux [sum, #correct]."""
        out = functional_call(skeleton, (p, b), (x,))
        loss = F.cross_entropy(out, y, reduction="sum")
        return loss, (loss.detach(), (out.argmax(1) == y).sum())

    grad_sum = vmap(grad(loss_sum, has_aux=True), in_dims=(0, 0, None, None))
    eval_sum = vmap(lambda *a: loss_sum(*a)[1], in_dims=(0, 0, None, None))

    def gradient(x, y):
        """∇E for every run (a dict of stacked tensors) and [E, accuracy] per run, (k, 2)."""
        total, stats = None, torch.zeros(k, 2, dtype=torch.float64, device=device)
        for i in range(0, len(x), base.chunk_size):
            g, (loss, correct) = grad_sum(params, buffers, x[i:i + base.chunk_size],
                                          y[i:i + base.chunk_size])
            total = g if total is None else {n: total[n] + g[n] for n in total}
            stats[:, 0] += loss
            stats[:, 1] += correct
        return {n: t / len(x) for n, t in total.items()}, stats / len(x)

    @torch.no_grad()
    def evaluate(x, y):
        stats = torch.zeros(k, 2, dtype=torch.float64, device=device)
        for i in range(0, len(x), base.chunk_size):
            loss, correct = eval_sum(params, buffers, x[i:i + base.chunk_size], y[i:i + base.chunk_size])
            stats[:, 0] += loss
            stats[:, 1] += correct
        return stats / len(x)

    def per_run(name):
        return torch.tensor([getattr(c, name) for c in configs], dtype=dtype, device=device)

    hyper = {name: per_run(name) for name in ("h", "beta", "rho", "eps")}
    eps64 = torch.tensor([c.eps for c in configs], dtype=torch.float64, device=device)
    states = {name: AdamState(torch.zeros_like(p), torch.zeros_like(p), 0)
              for name, p in params.items()}
    histories = [History() for _ in configs]
    active = torch.ones(k, dtype=torch.bool, device=device)
    nan2 = torch.full((k, 2), math.nan, dtype=torch.float64, device=device)
    n, t0 = 0, time.perf_counter()
    while True:
        g, train_stats = gradient(data.x_train, data.y_train)
        test_stats = evaluate(data.x_test, data.y_test) if n % base.test_every == 0 else nan2
        flat = torch.cat([t.reshape(k, -1) for t in g.values()], dim=1).double()
        norms = torch.stack([torch.sqrt(flat**2 + eps64[:, None]).sum(1),  # ‖∇E‖_{1,ε}, per run's ε
                             flat.abs().sum(1), flat.norm(dim=1)], dim=1)
        rows = torch.cat([train_stats, test_stats, norms], dim=1).tolist()
        elapsed = time.perf_counter() - t0
        for r in range(k):
            if not active[r]:
                continue
            hist, c = histories[r], configs[r]
            hist.append(dict(zip(METRICS, rows[r]), epoch=n, wall_time=elapsed,
                             **dict.fromkeys(DIAGNOSTIC_COLUMNS, math.nan)))  # not measured here
            hist.stop_reason, hist.message = _stop_reason(c, hist, n)
            if hist.stop_reason:
                active[r] = False
        if not active.any():
            break
        # state.n is shared: a stopped run is frozen here, so its own count no longer matters
        for name, p in params.items():
            d, new = adam_update_batched(g[name], states[name], **hyper, eps_inside=base.eps_inside)
            keep = active.view(-1, *([1] * (p.dim() - 1)))
            params[name] = torch.where(keep, p + d, p)  # θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ + d, (2.1)
            old = states[name]
            states[name] = AdamState(torch.where(keep, new.m, old.m), torch.where(keep, new.v, old.v),
                                     new.n)
        n += 1
    return histories


def _stop_reason(config: TrainConfig, history: History, n: int) -> tuple[str, str]:
    """The stopping rules of :func:`bea_lib.nets.train.train` (without ``max_time``)."""
    loss = history.columns["train_loss"][-1]
    if not math.isfinite(loss):
        return "diverged", f"diverged at epoch {n}: train loss is {loss}"
    if config.loss_threshold is not None and loss < config.loss_threshold:
        return "loss_threshold", f"train loss {loss:.6g} < {config.loss_threshold} at epoch {n}"
    if n >= config.epochs:
        return "epochs", f"{n} epochs done, train loss {loss:.6g}"
    return "", ""
