"""Full-batch heavy-ball and gradient descent on a network (the Discussion's first conclusion):
the comparison arms of Adam, trained as the flat parameter vector θ with
:func:`bea_lib.optimizers.heavy_ball_update` (GD is heavy-ball with β = 0), on the same
:class:`~bea_lib.nets.train.ModuleNet` and initial weights as :func:`bea_lib.nets.train.fit`.
The history has the columns of :data:`~bea_lib.nets.history.COLUMNS`; on diagnostic rows the
bias ratio is heavy-ball's own, :func:`bea_lib.expansion.heavy_ball_expansion_ratio`, and the
sharpness the Lanczos estimate :func:`bea_lib.autodiff.top_eigenvalue`.
"""
from __future__ import annotations

import math

import torch

from ..core.autodiff import top_eigenvalue
from ..core.expansion import heavy_ball_expansion_ratio
from ..core.optimizers import heavy_ball_init, heavy_ball_update
from ..core.validation import check_positive, check_unit_interval
from ..base.vocab import paper_verdict
from .config import TrainConfig
from .diagnostics import flat_loss
from ..evidence.statistics import kappa_prediction, paired_difference, trend_of
from .history import DIAGNOSTIC_COLUMNS, METRICS, History
from .train import Comm, gradient_norms, local_device, open_net


def fit_heavy_ball(net, *, h: float, beta: float, epochs: int, diagnostics_every: int = 0,
                   test_every: int = 1) -> History:
    """``epochs`` full-batch heavy-ball steps θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ − h∇E(θ⁽ⁿ⁾) + β(θ⁽ⁿ⁾ − θ⁽ⁿ⁻¹⁾)
    from ``net``'s current weights (β = 0: GD); one history row per θ⁽ⁿ⁾, n = 0..epochs.

    Every ``diagnostics_every`` epochs (0: never) the row holds heavy-ball's expansion ratio
    h(1+β)/(2(1−β)²)‖Hg‖/‖g‖ in ``bias_ratio`` and the top Hessian eigenvalue in
    ``sharpness``; the other diagnostic columns are NaN.
    """
    h, beta = check_positive("h", h), check_unit_interval("beta", beta)
    for name, value in (("epochs", epochs), ("diagnostics_every", diagnostics_every),
                        ("test_every", test_every)):
        if not isinstance(value, int) or value < (1 if name == "test_every" else 0):
            raise ValueError(f"{name} must be a non-negative integer (test_every ≥ 1), "
                             f"got {value!r}")
    theta = net.theta()
    state = heavy_ball_init(theta)
    hist = History()
    nan = math.nan
    for n in range(epochs + 1):
        g, train_stats = net.gradient(theta)
        test = (net.evaluate(theta) if n % test_every == 0
                else torch.full_like(train_stats, nan))
        row = torch.cat([train_stats[:, :2], test, gradient_norms(g, eps=0.0)], 1)[0].tolist()
        diag = dict.fromkeys(DIAGNOSTIC_COLUMNS, nan)
        if diagnostics_every and n % diagnostics_every == 0:
            net._load(theta)
            E, theta_flat = flat_loss(net.model, *net.train_xy)
            diag["bias_ratio"] = heavy_ball_expansion_ratio(E, theta_flat, h=h, beta=beta)
            fn = net.hvp_fn(theta, [0])
            diag["sharpness"] = top_eigenvalue(lambda v: fn(v[None])[0], g[0])
        hist.append(dict(zip(METRICS, row), epoch=n, wall_time=nan, **diag))
        if not math.isfinite(row[0]):
            break
        if n < epochs:
            d, state = heavy_ball_update(g, state, h=h, beta=beta)
            theta = theta + d
    return hist


def train_heavy_ball(config: TrainConfig, *, data, h: float, beta: float) -> History:
    """:func:`fit_heavy_ball` on the network, data and seed of ``config`` (its h, β, ρ, ε
    unused), for its epochs, with its ``diagnostics_every`` and ``test_every``: the initial
    weights are those :func:`bea_lib.nets.train.train` gives ``config``."""
    net = open_net([config], local_device(config.device), Comm(), data, batch=False)
    return fit_heavy_ball(net, h=h, beta=beta, epochs=config.epochs,
                          diagnostics_every=config.diagnostics_every,
                          test_every=config.test_every)


def optimizer_prediction(*, beta: float, rho: float) -> int:
    """The sign of Adam's final sharpness (or generalisation gap) minus GD's or heavy-ball's that
    the Discussion's first conclusion predicts for Adam at (β, ρ): +1 (sharper, generalises
    worse) when ρ > β, where Adam's bias term hinders the decrease of ‖∇E‖₁,ε, −1 when β ≥ ρ,
    where it penalises it: the sign of :func:`bea_lib.nets.evidence.kappa_prediction`."""
    return kappa_prediction(beta=beta, rho=rho)


def optimizer_verdict(adam, other, *, beta: float, rho: float, gated: bool,
                      n_resamples: int = 9999):
    """(paired interval of ``adam`` − ``other`` over seeds, verdict): ``adam[i]`` and
    ``other[i]`` one per seed, from the same initial weights; the verdict is
    :func:`bea_lib.vocab.paper_verdict` of the interval against :func:`optimizer_prediction`,
    *outside the theory's range* unless every run passed its gate (``gated``)."""
    interval = paired_difference(adam, other, n_resamples=n_resamples)
    trend = trend_of(interval, expected=optimizer_prediction(beta=beta, rho=rho))
    return interval, paper_verdict(trend, gated=gated)
