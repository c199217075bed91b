r"""The training loop of the networks (Section 6 of the paper): one epoch is one full-batch step.

:func:`fit` trains k runs as the rows of one (k, P) tensor θ: one run as its ``nn.Module``
(:class:`~bea_lib.nets.module_net.ModuleNet`), a batch as one stacked model
(:class:`~bea_lib.nets.batched.StackedNet`), with any optimizer of :mod:`bea_lib.nets.rules`.
Row n of a history is taken at θ⁽ⁿ⁾ in the pass that gives the gradient of the step from θ⁽ⁿ⁾,
so the logged norms are those of the gradient the step uses; ``epochs`` steps, ``epochs + 1``
rows. The diagnostics (``diagnostics_every``) are also taken at a run's last row, so that a
run stopped by ``loss_threshold`` is measured where it stopped.
"""
from __future__ import annotations

import math
import time

import torch

from ..base.vocab import StopReason
from ..core.norms import perturbed_one_norm
from .config import TrainConfig
from .distributed import Comm
from .history import DIAGNOSTIC_COLUMNS, METRICS, History
from .rules import Rule, state_rows


def gradient_norms(g: torch.Tensor, *, eps) -> torch.Tensor:
    """[‖∇E‖_{1,ε}, ‖∇E‖₁, ‖∇E‖₂] of every run's gradient, rows of ``g`` (k, P), in float64
    (the norms of Section 6); ``eps`` is ε, one number or one per run."""
    g = g.double()
    eps = list(eps) if isinstance(eps, (list, tuple)) else [eps] * len(g)
    one_eps = torch.stack([perturbed_one_norm(row, eps=e) for row, e in zip(g, eps)])
    return torch.stack([one_eps, g.abs().sum(1), g.norm(dim=1)], dim=1)


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


def _diagnostics(net, theta, g, state, rule: Rule, configs: list[TrainConfig], rows: list[int]):
    """The :data:`DIAGNOSTIC_COLUMNS` at θ⁽ⁿ⁾ of the runs ``rows`` of θ (``configs``, its order)."""
    out = {}
    for r in rows:
        fn = net.hvp_fn(theta, [r])
        out[r] = rule.diagnostics(g[r], lambda v: fn(v[None])[0], state_rows(state, r),
                                  configs[r])
    return out


def fit(net, configs: list[TrainConfig], rule: Rule, *, theta=None, state=None,
        histories: list[History] | None = None, n: int = 0, elapsed0: float = 0.0,
        comm: Comm = Comm(), on_step=None, bar=None) -> list[History]:
    """The training loop: the k runs of ``configs`` on ``net``, stepped by the optimizer
    ``rule`` (its (init, update) pair), each with its own hyperparameters, until each stops
    (:class:`~bea_lib.base.vocab.StopReason`; a stopped run leaves the batch); one
    :class:`History` per run. ``on_step(n, theta, state, elapsed, histories)`` is called after
    each step (checkpoints); resuming passes θ, the state, the histories so far and n."""
    k, base = len(configs), configs[0]
    theta = net.theta() if theta is None else theta
    dtype, device = theta.dtype, theta.device

    def column(name, dtype=dtype):
        """A per-run (k, 1) column; for one run the number itself (its bias corrections
        1 − β^n then in Python's float64, as ``bl.adam``'s)."""
        if k == 1:
            return getattr(base, name)
        return torch.tensor([[getattr(c, name)] for c in configs], dtype=dtype, device=device)

    hyper = {name: column(name) for name in rule.hyper}
    shared = {name: getattr(base, name) for name in rule.shared}
    eps_of = [c.eps if rule.has_eps else 0.0 for c in configs]  # the ε of the logged one-norm
    state = rule.init(theta) if state is None else state
    histories = [History() for _ in configs] if histories is None else histories
    live = list(range(k))  # the runs still training, in the order of theta's rows
    t0, first = time.perf_counter(), n
    while True:
        g, train_stats = net.gradient(theta)
        if n % base.test_every == 0:
            test_stats = net.evaluate(theta)
        else:
            test_stats = torch.full_like(train_stats, math.nan)
        norms = gradient_norms(g, eps=eps_of)
        rows = torch.cat([train_stats[:, :2], test_stats, norms], 1).tolist()
        # max_time is the budget of this call, spent after one step at least: every call
        # (a resume included) makes progress
        time_up = (base.max_time is not None and n > first
                   and time.perf_counter() - t0 >= base.max_time)
        if comm.world_size > 1 and base.max_time is not None:  # all ranks must agree
            time_up = bool(comm.sum_(torch.tensor([float(time_up)], device=device)).item())
        keep, last = [], []  # the runs that go on; those that stop here, finite
        for i, r in enumerate(live):
            hist = histories[r]
            hist.append(dict(zip(METRICS, rows[i]), epoch=n, wall_time=math.nan,
                             **dict.fromkeys(DIAGNOSTIC_COLUMNS, math.nan)))
            hist.stop_reason, hist.message = stop_reason(configs[r], hist, n, time_up)
            if not hist.stop_reason:
                keep.append(i)
            elif hist.stop_reason != StopReason.DIVERGED:
                last.append(i)
        # the diagnostics every diagnostics_every epochs, and at a run's last (finite) row
        every = [configs[r].diagnostics_every for r in live]
        t1 = time.perf_counter()
        diag = _diagnostics(net, theta, g, state, rule, [configs[r] for r in live],
                            [i for i, e in enumerate(every) if e and (n % e == 0 or i in last)])
        diag_seconds = time.perf_counter() - t1
        elapsed = elapsed0 + time.perf_counter() - t0  # includes the diagnostics' cost
        for i, r in enumerate(live):
            hist = histories[r]
            hist.columns["wall_time"][-1] = elapsed
            for c, value in diag.get(i, {}).items():
                hist.columns[c][-1] = value
            hist.diagnostics_seconds += diag_seconds if i in diag else 0.0
        if not keep:
            break
        if len(keep) < len(live):  # stopped runs leave the batch, the others go on
            index = torch.tensor(keep, device=device)
            live = [live[i] for i in keep]
            theta, g = theta[index], g[index]
            state = state_rows(state, index)
            hyper = {name: t[index] if torch.is_tensor(t) else t for name, t in hyper.items()}
            eps_of = [eps_of[i] for i in keep]
            net.keep(index)
        d, state = rule.update(g, state, lambda r: net.hvp_fn(theta, r), **hyper, **shared)
        theta = theta + d  # θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ + d
        n += 1
        if bar is not None:
            bar.update()
            if not bar.disable:
                bar.set_postfix(loss=f"{rows[0][0]:.4g}", refresh=False)
        if on_step is not None:
            on_step(n, theta, state, elapsed, histories)
    return histories
