r"""A causal test of the bias term: Adam with its O(h) flow term scaled by 1 + κ.

Symbols and names as in :mod:`bea_lib.core.optimizers`: h ``h``, β ``beta``, ρ ``rho``, ε ``eps``
(inside the square root, the paper's Definition 2.1), κ ``kappa``; g = ∇E(θ), H = ∇²E(θ).

Full-batch Adam follows, to O(h²), the flow θ̇ = f₀ + h f₁ of (2.2)–(2.3) with

.. math::

    f_0 = -\frac{g}{\sqrt{g^2 + ε}}, \qquad
    f_1 = -\frac{c(β, ρ, ε, g)}{\sqrt{g^2 + ε}} \circ ∇\lVert∇E\rVert_{1,ε}, \qquad
    ∇\lVert∇E\rVert_{1,ε} = H \frac{g}{\sqrt{g^2+ε}},

c the coefficient of :func:`bea_lib.core.norms.bias_coefficient` (h f₁ is the paper's bias term
divided by √(g² + ε)). The κ-variant adds κh²f₁(θ⁽ⁿ⁾) to every Adam step,

.. math::

    θ^{(n+1)} = θ^{(n)} + Δ_{\mathrm{Adam}}^{(n)} + κ h^2 f_1(θ^{(n)}),

so one step moves the flow's time by h with the extra displacement κh·(h f₁): its modified flow
is θ̇ = f₀ + (1 + κ) h f₁. κ = 0 is Adam, κ = −1 cancels the implicit bias (the iterates follow
the ε-sign flow f₀ to O(h²)), κ = +1 doubles it. The Adam part is
:func:`bea_lib.core.optimizers.adam_update`, the one implementation of the rule; the extra term has
one Hessian-vector product per step, taken from the same reverse pass as the gradient.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from ..core.autodiff import gradient, gradient_and_hvp_fn
from ..core.expansion import bias_direction
from ..core.flows import adam_rhs
from ..core.integrate import check_solver_options, solve_flow, solve_intervals
from ..core.minibatch import batch_weights, minibatch_adam_rhs
from ..core.optimizers import AdamState, adam_init, adam_update
from ..core.validation import (adam_hyper, check_bool, check_finite, check_n_steps,
                               check_positive, check_theta0)
from .order import fitted_slopes, max_distance


def _rows(x, rows):
    """The rows ``rows`` of a per-run column (k, 1); a number as it is."""
    return x[rows] if torch.is_tensor(x) and x.dim() else x


def kappa_update(g: torch.Tensor, state: AdamState, hvp_at, *, h, beta, rho, eps, kappa,
                 eps_inside: bool = True) -> tuple[torch.Tensor, AdamState]:
    """One step of the κ-variant for k runs, the rows of ``g`` (k, p): Adam's displacement
    (:func:`~bea_lib.core.optimizers.adam_update`) plus κh²f₁(θ⁽ⁿ⁾) (:func:`~bea_lib.core.expansion.
    bias_direction`)
    on the rows whose κ is not 0. Each hyperparameter is a number or a (k, 1) column;
    ``hvp_at(rows)`` is v ↦ ∇²E v for those rows, v of shape (len(rows), p).

    Rows with κ = 0 take Adam's step bit for bit, and no Hessian-vector product is taken for them.
    """
    d, state = adam_update(g, state, h=h, beta=beta, rho=rho, eps=eps, eps_inside=eps_inside)
    kappa_col = torch.as_tensor(kappa, dtype=g.dtype, device=g.device).reshape(-1, 1)
    rows = torch.nonzero(kappa_col.expand(len(g), 1)[:, 0] != 0).reshape(-1)
    if len(rows):
        f1 = bias_direction(g[rows], hvp_at(rows.tolist()), beta=_rows(beta, rows),
                            rho=_rows(rho, rows), eps=_rows(eps, rows), eps_inside=eps_inside)
        extra = kappa_col.expand(len(g), 1)[rows] * _rows(h, rows) ** 2 * f1
        d = d.index_add(0, rows, extra)
    return d, state


def _check_hyper(*, h, beta, rho, eps, kappa) -> dict:
    return adam_hyper(h=h, beta=beta, rho=rho, eps=eps, kappa=kappa)._asdict()


def kappa_adam(loss, theta0, n_steps: int, *, h: float, beta: float, rho: float, eps: float,
               kappa: float) -> torch.Tensor:
    """Iterates θ⁽⁰⁾, …, θ⁽ⁿ_steps⁾ of the κ-variant of full-batch Adam: shape (n_steps + 1, p)."""
    hyper = _check_hyper(h=h, beta=beta, rho=rho, eps=eps, kappa=kappa)
    theta, n_steps = check_theta0(theta0), check_n_steps(n_steps)
    out = torch.empty((n_steps + 1, theta.numel()), dtype=theta.dtype)
    out[0] = theta
    state = adam_init(theta[None])
    for n in range(n_steps):
        if hyper["kappa"] == 0.0:  # Adam: no product needed, and the cheaper gradient
            g, hvp_fn = gradient(loss, theta), None
        else:
            g, hvp_fn = gradient_and_hvp_fn(loss, theta)
        d, state = kappa_update(g[None], state, lambda rows: lambda v: hvp_fn(v[0])[None],
                                **hyper)
        theta = theta + d[0]
        out[n + 1] = theta
    return out


def kappa_rhs(loss, *, h: float, beta: float, rho: float, eps: float, kappa: float,
              step: int | None = None) -> Callable[[float, torch.Tensor], torch.Tensor]:
    """θ ↦ f₀ + (1 + κ) h f₁, from the two public right-hand sides of :func:`bea_lib.adam_rhs`.

    f₀ is the order-0 right-hand side and h f₁ = rhs₁ − rhs₀; κ = −1 is f₀ alone, κ = 0 rhs₁.
    With ``step`` = n: the flow on [nh, (n+1)h] of the κ-variant restarted with fresh moments,
    Theorem 3.1's (3.2) with the one loss (:func:`~bea_lib.core.minibatch.minibatch_adam_rhs`)
    plus κ h f₁: the coefficients (1 + γ)/(1 − γ) of f₁'s two parts, γ = β, ρ, become
    C_γ(n) + κ(1 + γ)/(1 − γ), C_γ(n) = 2 AV_γ^n[n − k] + 1 of the n + 1 averaged gradients.
    """
    hyper = _check_hyper(h=h, beta=beta, rho=rho, eps=eps, kappa=kappa)
    kappa = hyper.pop("kappa")
    if step is not None:
        hyper.pop("eps_inside")  # (3.2) is derived for ε inside the square root
        return _startup_rhs(loss, check_n_steps(step, name="step"), kappa=kappa, **hyper)
    rhs0, rhs1 = adam_rhs(loss, order=0, **hyper), adam_rhs(loss, order=1, **hyper)
    if kappa in (-1.0, 0.0):  # the order-0 and order-1 flows themselves
        return rhs0 if kappa == -1.0 else rhs1

    def rhs(t: float, theta: torch.Tensor) -> torch.Tensor:
        f0 = rhs0(t, theta)
        return f0 + (1 + kappa) * (rhs1(t, theta) - f0)

    return rhs


def _startup_rhs(loss, n: int, *, h, beta, rho, eps, kappa, weights=None):
    """:func:`kappa_rhs` with ``step`` = n on checked input; ``weights`` as
    :func:`~bea_lib.core.minibatch.minibatch_adam_rhs` takes them, to share them between steps."""
    startup = minibatch_adam_rhs([loss], n, h=h, beta=beta, rho=rho, eps=eps, weights=weights)
    if kappa == 0.0:
        return startup

    def rhs(t: float, theta: torch.Tensor) -> torch.Tensor:
        g, hvp_fn = gradient_and_hvp_fn(loss, theta)  # (3.2) + κ h f₁ of the κ step
        return startup(t, theta) + kappa * h * bias_direction(g, hvp_fn, beta=beta, rho=rho,
                                                              eps=eps)

    return rhs


def kappa_flow(loss, theta0, n_steps: int, *, h: float, beta: float, rho: float, eps: float,
               kappa: float, startup: bool = False, rtol: float = 1e-10, atol: float = 1e-12,
               max_evals: int | None = None, max_seconds: float | None = None) -> torch.Tensor:
    """The flow θ̇ = f₀ + (1 + κ) h f₁ at t = 0, h, …, n_steps·h (:func:`bea_lib.solve_flow`);
    with ``startup``, the κ-variant's flow from fresh moments (:func:`kappa_rhs` with ``step``)
    interval by interval (:func:`~bea_lib.core.integrate.solve_intervals`, budgets per
    interval). :class:`~bea_lib.core.integrate.FlowError` when it cannot be solved."""
    if not check_bool("startup", startup):
        rhs = kappa_rhs(loss, h=h, beta=beta, rho=rho, eps=eps, kappa=kappa)
        return solve_flow(rhs, theta0, n_steps, h=h, rtol=rtol, atol=atol, max_evals=max_evals,
                          max_seconds=max_seconds)
    hyper = _check_hyper(h=h, beta=beta, rho=rho, eps=eps, kappa=kappa)
    hyper.pop("eps_inside")
    theta0, n_steps = check_theta0(theta0), check_n_steps(n_steps)
    options = check_solver_options(rtol=rtol, atol=atol, method="auto", max_evals=max_evals,
                                   max_seconds=max_seconds)
    weights = tuple(batch_weights(gamma, n_steps, 1) for gamma in (hyper["beta"], hyper["rho"]))
    return solve_intervals(lambda n: _startup_rhs(loss, n, weights=weights, **hyper), theta0,
                           n_steps, h=hyper["h"], **options)


class KappaOrder(NamedTuple):
    """max_n ‖θ⁽ⁿ⁾ − θ̃(nh)‖₂ of κ-iterates against a (1 + κ_flow)-flow, per h, and the slope."""

    kappa: float
    flow_kappa: float
    hs: np.ndarray
    errors: np.ndarray
    slope: float
    stderr: float


def kappa_order_study(loss, theta0, hs, T: float, pairs, *, beta: float, rho: float,
                      eps: float) -> list[KappaOrder]:
    """For each (κ, κ_flow) in ``pairs``: distances of κ-iterates from the κ_flow-flow over
    [0, T] for every h in ``hs``, and the slope of log distance against log h.

    The slope is about 2 when κ = κ_flow (the flow is the κ-variant's modified flow) and about 1
    otherwise (the flows differ by (κ − κ_flow) h f₁). Iterates and flows are computed once per h.
    """
    hs = np.asarray([check_positive("hs", h) for h in hs], dtype=float)
    if hs.size < 2:
        raise ValueError(f"hs must hold at least two step sizes, got {hs.size}")
    T = check_positive("T", T)
    pairs = [(check_finite("kappa", k), check_finite("kappa", kf)) for k, kf in pairs]
    errors = np.empty((len(pairs), hs.size))
    for j, h in enumerate(hs):
        n = round(T / h)
        hyper = dict(h=h, beta=beta, rho=rho, eps=eps)
        kappas = dict.fromkeys(k for k, _ in pairs)  # each κ once, in order
        flow_kappas = dict.fromkeys(kf for _, kf in pairs)
        iterates = {k: kappa_adam(loss, theta0, n, kappa=k, **hyper) for k in kappas}
        flows = {kf: kappa_flow(loss, theta0, n, kappa=kf, **hyper) for kf in flow_kappas}
        for i, (k, kf) in enumerate(pairs):
            errors[i, j] = max_distance(iterates[k], flows[kf])
    slopes, stderrs = fitted_slopes(hs, errors)
    return [KappaOrder(k, kf, hs, e, float(s), float(se))
            for (k, kf), e, s, se in zip(pairs, errors, slopes, stderrs)]
