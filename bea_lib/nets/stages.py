r"""Starting points reached by training, and runs restarted from them with fresh moments.

The paper's expansion (2.2)–(2.3) holds from any starting point θ₀: Adam restarted at a point
reached by ordinary training, with its moments m and v set to zero and its bias corrections
counted from the restart, follows the modified flow from there. So the network experiments
read the paper where it reads its figures, on trained networks, inside the theory's range:

- :func:`train_to_stages`: per seed, one run of ``base.optimizer`` from the seed's initial point
  θ⁽⁰⁾ until the training loss falls below each of ``stage_losses``; the starting points are
  θ⁽⁰⁾ (stage 0) and, for stage s ≥ 1, the first iterate θ⁽ⁿ⁾ whose loss E(θ⁽ⁿ⁾) is below
  ``stage_losses[s − 1]``, each with its epoch n, training and test loss and accuracy
  (:class:`StartPoint`).
- :func:`restart`: runs of any :class:`~bea_lib.nets.config.TrainConfig` (Adam, its κ-variant,
  any (β, ρ), h) from given points, fresh optimizer state, through the one loop
  :func:`bea_lib.nets.loop.fit` as one batch; one :class:`~bea_lib.nets.history.History` each.
- :func:`ratio_per_step`: the bias ratio per unit step size, ‖f₁‖/‖f₀‖ (the gate's ratio
  h‖f₁‖/‖f₀‖ is linear in h), at given points and (β, ρ, ε): what a rule choosing h from the
  starting points reads.

Python::

    points = train_to_stages(base, seeds=[1000, 1001], stage_losses=[1.5, 1.0, 0.5])
    at = [p for p in points if p.stage == 3]                  # the most trained stage
    runs = restart([replace(base, h=1e-7, beta=0.9, rho=0.7, kappa=k, seed=p.seed, epochs=400)
                    for p in at for k in (-1.0, 0.0, 1.0)],
                   torch.stack([p.theta for p in at for _ in range(3)]), keep_at=[400])
    runs.histories, runs.theta_at[400]
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from ..core.validation import check_int, check_positive
from .batched import common_config
from .config import TrainConfig
from .distributed import Comm, local_device
from .history import History
from .loop import fit
from .module_net import open_net
from .rules import RULES


class StartPoint(NamedTuple):
    """One starting point: ``stage`` 0 is the seed's initial point, stage s ≥ 1 the first
    iterate of the training run whose training loss is below ``target`` = ``stage_losses[s−1]``
    (``math.inf`` for stage 0); ``epoch`` is its step count, ``theta`` its flat parameters."""

    seed: int
    stage: int
    target: float
    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    theta: torch.Tensor


def _check_losses(stage_losses) -> list[float]:
    losses = [check_positive("stage_losses", x) for x in stage_losses]
    if not losses or any(b >= a for a, b in zip(losses, losses[1:])):
        raise ValueError(f"stage_losses must be one or more decreasing positive numbers, got "
                         f"{list(stage_losses)!r}")
    return losses


def train_to_stages(base: TrainConfig, *, seeds: Sequence[int], stage_losses: Sequence[float],
                    max_epochs: int = 5000, data=None) -> list[StartPoint]:
    """The starting points of every seed (module docstring): ``len(stage_losses) + 1`` per seed,
    seed by seed in the order of ``seeds``, stages in increasing order.

    ``base`` gives the network, data and optimizer (its seed, epochs, loss_threshold and
    test_every are replaced: one run per seed, stopped at the last stage loss, the test set
    evaluated at every epoch); all seeds train together as one batch. ValueError naming the
    seed and the loss if a run does not get below a stage loss within ``max_epochs`` steps."""
    losses = _check_losses(stage_losses)
    max_epochs = check_int("max_epochs", max_epochs, minimum=1)
    seeds = [check_int("seeds", s, minimum=0) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be one or more distinct seeds, got {seeds!r}")
    configs = common_config([dataclasses.replace(base, seed=s, epochs=max_epochs,
                                                 loss_threshold=losses[-1], test_every=1)
                             for s in seeds])
    net = open_net(configs, local_device(base.device), Comm(), data, batch=True)
    theta0 = net.theta().clone()
    pending = {r: (0, theta0[r].clone()) for r in range(len(seeds))}  # θ⁽ⁿ⁾ whose row is next
    found: dict[tuple[int, int], tuple[int, torch.Tensor]] = {}

    def check(r: int, history: History) -> None:
        """Stages reached by the pending iterate of run r, whose row is now recorded."""
        n, theta = pending[r]
        loss = history.columns["train_loss"][n]
        for s, target in enumerate(losses, start=1):
            if (r, s) not in found and loss < target:
                found[r, s] = (n, theta)

    def on_step(n, theta, state, elapsed, histories):
        live = [r for r, hist in enumerate(histories) if not hist.stop_reason]  # theta's rows
        for i, r in enumerate(live):
            check(r, histories[r])
            pending[r] = (n, theta[i].detach().clone())

    histories = fit(net, configs, RULES[base.optimizer], on_step=on_step)
    points = []
    for r, (seed, history) in enumerate(zip(seeds, histories)):
        if pending[r][0] < len(history):
            check(r, history)  # the last iterate of a run that stopped
        row = {c: history.columns[c] for c in ("train_loss", "train_acc", "test_loss",
                                                "test_acc")}
        for s, target in enumerate([math.inf, *losses]):
            if s == 0:
                n, theta = 0, theta0[r]
            elif (r, s) in found:
                n, theta = found[r, s]
            else:
                raise ValueError(
                    f"seed {seed}: the training loss did not fall below {target:g} within "
                    f"{max_epochs} epochs ({history.message}); raise max_epochs or the stage "
                    "losses")
            points.append(StartPoint(seed, s, target, n, *(float(v[n]) for v in row.values()),
                                     theta.clone()))
    return points


class Restarted(NamedTuple):
    """What :func:`restart` returns: one History per config, and for each epoch n of ``keep_at``
    the iterates θ⁽ⁿ⁾ of every run, a (k, P) tensor in the order of the configs (NaN rows for
    runs that stopped before n)."""

    histories: list[History]
    theta_at: dict[int, torch.Tensor]


def restart(configs: Sequence[TrainConfig], theta: torch.Tensor, *, data=None,
            keep_at: Sequence[int] = ()) -> Restarted:
    """Run ``configs`` (one batch: they may differ only in the per-run fields of
    :data:`bea_lib.nets.batched.PER_RUN_FIELDS`) from the rows of ``theta`` (one flat parameter
    vector per config, e.g. :attr:`StartPoint.theta`), each with a fresh optimizer state (Adam:
    m = v = 0, bias corrections counted from the restart): one History per config, whose row 0
    is the starting point, and the iterates at the epochs ``keep_at``. A config's seed only
    names the run here: its weights are the row's."""
    configs = common_config(list(configs))
    keep_at = sorted({check_int("keep_at", n, minimum=0) for n in keep_at})
    net = open_net(configs, local_device(configs[0].device), Comm(), data, batch=True)
    start = net.theta()
    theta = torch.as_tensor(theta)
    if theta.shape != start.shape:
        raise ValueError(f"theta must hold one parameter vector per config, shape "
                         f"{tuple(start.shape)}, got {tuple(theta.shape)}")
    if not torch.isfinite(theta).all():
        raise ValueError("theta must be finite: a starting point holds a NaN or an infinity")
    theta = theta.to(dtype=start.dtype, device=start.device)
    kept = {n: torch.full_like(theta, math.nan) for n in keep_at}
    if 0 in kept:
        kept[0] = theta.clone()

    def on_step(n, th, state, elapsed, histories):
        if n in kept:  # θ⁽ⁿ⁾ of the runs still in the batch, in the order of th's rows
            live = [r for r, hist in enumerate(histories) if not hist.stop_reason]
            kept[n][live] = th.detach()

    histories = fit(net, configs, RULES[configs[0].optimizer], theta=theta, on_step=on_step)
    return Restarted(histories, kept)


def ratio_per_step(base: TrainConfig, theta: torch.Tensor, pairs: Sequence[tuple[float, float]],
                   *, data=None) -> np.ndarray:
    """‖f₁‖₂/‖f₀‖₂ at every row of ``theta`` (k, P) for every (β, ρ) of ``pairs`` at
    ``base.eps``: an array (k, len(pairs)), the bias ratio h‖f₁‖/‖f₀‖
    (:func:`bea_lib.nets.diagnostics.bias_ratio`) per unit h, which it is linear in."""
    theta = torch.as_tensor(theta)
    if theta.ndim != 2 or not len(theta) or not pairs:
        raise ValueError(f"theta must be (k, P) with k >= 1 and pairs non-empty, got shape "
                         f"{tuple(theta.shape)} and {len(pairs)} pairs")
    configs = [dataclasses.replace(base, h=1.0, beta=b, rho=r, kappa=0.0, epochs=0,
                                   diagnostics_every=1, sharpness=False, seed=base.seed)
               for _ in range(len(theta)) for b, r in pairs]
    rows = theta.repeat_interleave(len(pairs), dim=0)
    ratios = [h.diagnostics()["bias_ratio"][0]
              for h in restart(configs, rows, data=data).histories]
    return np.asarray(ratios, dtype=float).reshape(len(theta), len(pairs))
