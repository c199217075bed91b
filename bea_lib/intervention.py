r"""A causal test of the bias term: Adam with its O(h) flow term scaled by 1 + κ.

Symbols and names as in :mod:`bea_lib.optimizers`: h ``h``, β ``beta``, ρ ``rho``, ε ``eps``
(inside the square root, the paper's Definition 2.1), κ ``kappa``; g = ∇E(θ), H = ∇²E(θ).

Full-batch Adam follows, to O(h²), the flow θ̇ = f₀ + h f₁ of (2.2)–(2.3) with

.. math::

    f_0 = -\frac{g}{\sqrt{g^2 + ε}}, \qquad
    f_1 = -\frac{c(β, ρ, ε, g)}{\sqrt{g^2 + ε}} \circ ∇\lVert∇E\rVert_{1,ε}, \qquad
    ∇\lVert∇E\rVert_{1,ε} = H \frac{g}{\sqrt{g^2+ε}},

c the coefficient of :func:`bea_lib.norms.bias_coefficient` (h f₁ is the paper's bias term
divided by √(g² + ε)). The κ-variant adds κh²f₁(θ⁽ⁿ⁾) to every Adam step,

.. math::

    θ^{(n+1)} = θ^{(n)} + Δ_{\mathrm{Adam}}^{(n)} + κ h^2 f_1(θ^{(n)}),

so one step moves the flow's time by h with the extra displacement κh·(h f₁): its modified flow
is θ̇ = f₀ + (1 + κ) h f₁. κ = 0 is Adam, κ = −1 cancels the implicit bias (the iterates follow
the ε-sign flow f₀ to O(h²)), κ = +1 doubles it. The Adam part is
:func:`bea_lib.optimizers.adam_update`, the one implementation of the rule; the extra term costs
one Hessian-vector product per step, taken from the same reverse pass as the gradient.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from .autodiff import gradient, gradient_and_hvp_fn
from .flows import adam_rhs
from .integrate import solve_flow
from .norms import bias_coefficient
from .optimizers import AdamState, adam_init, adam_update
from .order import fitted_slopes, max_distance
from .validation import (check_n_steps, check_positive, check_theta0, check_unit_interval)


def check_kappa(kappa: float) -> float:
    """κ is any finite number (κ = −1 cancels the bias, κ = 0 is Adam, κ = +1 doubles it)."""
    kappa = float(kappa)
    if not math.isfinite(kappa):
        raise ValueError(f"kappa must be a finite number, got {kappa!r}")
    return kappa


def bias_direction(g: torch.Tensor, hvp_fn: Callable[[torch.Tensor], torch.Tensor], *,
                   beta: float, rho: float, eps: float) -> torch.Tensor:
    """f₁(θ) = −c(β, ρ, ε, g) ∘ H(g/√(g²+ε)) / √(g²+ε), the O(h) coefficient of (2.2)–(2.3).

    ``g`` is ∇E(θ) and ``hvp_fn`` is v ↦ ∇²E(θ)v at the same θ
    (:func:`bea_lib.autodiff.gradient_and_hvp_fn`); one Hessian-vector product.
    """
    D = torch.sqrt(g**2 + eps)
    grad_norm_1eps = hvp_fn(g / D)  # ∇‖∇E‖_{1,ε} = H g/√(g²+ε)
    return -bias_coefficient(g, beta=beta, rho=rho, eps=eps) * grad_norm_1eps / D  # (2.3) over √(g²+ε)


def kappa_update(g: torch.Tensor, hvp_fn: Callable[[torch.Tensor], torch.Tensor],
                 state: AdamState, *, h: float, beta: float, rho: float, eps: float,
                 kappa: float) -> tuple[torch.Tensor, AdamState]:
    """One κ-step: Adam's displacement (:func:`bea_lib.optimizers.adam_update`) + κh²f₁(θ⁽ⁿ⁾).

    κ = 0 takes no Hessian-vector product and returns Adam's step exactly.
    """
    d, state = adam_update(g, state, h=h, beta=beta, rho=rho, eps=eps)  # (2.1)
    if kappa == 0.0:
        return d, state
    return d + kappa * h**2 * bias_direction(g, hvp_fn, beta=beta, rho=rho, eps=eps), state


def _check_hyper(h, beta, rho, eps, kappa) -> dict:
    return dict(h=check_positive("h", h), beta=check_unit_interval("beta", beta),
                rho=check_unit_interval("rho", rho), eps=check_positive("eps", eps),
                kappa=check_kappa(kappa))


def kappa_adam(loss, theta0, n_steps: int, *, h: float, beta: float, rho: float, eps: float,
               kappa: float) -> torch.Tensor:
    """Iterates θ⁽⁰⁾, …, θ⁽ⁿ_steps⁾ of the κ-variant of full-batch Adam: shape (n_steps + 1, p)."""
    hyper = _check_hyper(h, beta, rho, eps, kappa)
    theta, n_steps = check_theta0(theta0), check_n_steps(n_steps)
    out = torch.empty((n_steps + 1, theta.numel()), dtype=theta.dtype)
    out[0] = theta
    state = adam_init(theta)
    for n in range(n_steps):
        if hyper["kappa"] == 0.0:  # Adam: no product needed, and the cheaper gradient
            g, hvp_fn = gradient(loss, theta), None
        else:
            g, hvp_fn = gradient_and_hvp_fn(loss, theta)
        d, state = kappa_update(g, hvp_fn, state, **hyper)
        theta = theta + d
        out[n + 1] = theta
    return out


def kappa_rhs(loss, *, h: float, beta: float, rho: float, eps: float, kappa: float
              ) -> Callable[[float, torch.Tensor], torch.Tensor]:
    """θ ↦ f₀ + (1 + κ) h f₁, from the two public right-hand sides of :func:`bea_lib.adam_rhs`.

    f₀ is the order-0 right-hand side and h f₁ = rhs₁ − rhs₀; κ = −1 is f₀ alone, κ = 0 rhs₁.
    """
    hyper = _check_hyper(h, beta, rho, eps, kappa)
    kappa = hyper.pop("kappa")
    rhs0, rhs1 = adam_rhs(loss, order=0, **hyper), adam_rhs(loss, order=1, **hyper)
    if kappa in (-1.0, 0.0):  # the order-0 and order-1 flows themselves
        return rhs0 if kappa == -1.0 else rhs1

    def rhs(t: float, theta: torch.Tensor) -> torch.Tensor:
        f0 = rhs0(t, theta)
        return f0 + (1 + kappa) * (rhs1(t, theta) - f0)

    return rhs


def kappa_flow(loss, theta0, n_steps: int, *, h: float, beta: float, rho: float, eps: float,
               kappa: float, rtol: float = 1e-10, atol: float = 1e-12) -> torch.Tensor:
    """The flow θ̇ = f₀ + (1 + κ) h f₁ at t = 0, h, …, n_steps·h (:func:`bea_lib.solve_flow`)."""
    rhs = kappa_rhs(loss, h=h, beta=beta, rho=rho, eps=eps, kappa=kappa)
    return solve_flow(rhs, theta0, n_steps, h=h, rtol=rtol, atol=atol)


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
    pairs = [(check_kappa(k), check_kappa(kf)) for k, kf in pairs]
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


# ---------------------------------------------------------------------------------------------
# Networks: the κ-variant on the flat parameter vector of a full-batch network

class KappaRun(NamedTuple):
    """One network run of the κ-variant: per-epoch ``columns`` (epoch, train_loss, train_acc,
    test_acc (NaN between evaluations), grad_norm_1_eps), ``diagnostics`` every k epochs
    (epoch, bias_ratio, bias_alignment, g2_above, g2_below, between, sharpness,
    preconditioned_sharpness;
    empty when switched off), why it stopped, and the seconds spent stepping and diagnosing."""

    columns: dict[str, np.ndarray]
    diagnostics: dict[str, np.ndarray]
    stop_reason: str  # "epochs" or "diverged"
    seconds_steps: float
    seconds_diagnostics: float


def init_network(data, *, seed: int, width: int = 32, activation: str = "relu",
                 dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    """The MLP of :func:`bea_lib.nets.models.make_model` for ``data``, drawn in float32 from
    ``seed`` (as :func:`bea_lib.nets.train.build_model` does), then cast to ``dtype``."""
    from .nets.models import make_model

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        torch.manual_seed(seed)
        model = make_model("mlp", data.input_shape, data.n_classes, width=width,
                           activation=activation)
    finally:
        torch.set_default_dtype(previous)
    return model.to(dtype)


def train_kappa(data, *, kappa: float, h: float, beta: float, rho: float, eps: float,
                epochs: int, seed: int, width: int = 32, activation: str = "relu",
                dtype: torch.dtype = torch.float64, test_every: int = 1,
                diagnostics_every: int = 0, sharpness: bool = True) -> KappaRun:
    """Full-batch κ-variant of Adam on the MLP, θ flat (:mod:`bea_lib.nets.diagnostics`).

    Row n describes θ⁽ⁿ⁾ and the gradient its step uses, as in :mod:`bea_lib.nets.history`.
    Every ``diagnostics_every`` epochs (0: never) the diagnostics of
    :mod:`bea_lib.nets.diagnostics` are taken at θ⁽ⁿ⁾ (the eigenvalues only if ``sharpness``),
    with the denominator D = √(ν̂ + ε) of the step about to be taken; their
    time is kept apart from the steps' so that their cost can be reported.
    """
    import time

    from .nets.diagnostics import (DIAGNOSTIC_COLUMNS, diagnostics_at, flat_forward, flat_loss,
                                   step_denominator)
    from .norms import perturbed_one_norm

    hyper = _check_hyper(h, beta, rho, eps, kappa)
    epochs = check_n_steps(epochs)
    for name, value in (("test_every", test_every), ("diagnostics_every", diagnostics_every)):
        if isinstance(value, bool) or int(value) != value or value < (name == "test_every"):
            raise ValueError(f"{name} must be an integer >= {int(name == 'test_every')}, "
                             f"got {value!r}")
    data = data.to(None, dtype)
    model = init_network(data, seed=seed, width=width, activation=activation, dtype=dtype)
    forward, theta = flat_forward(model)
    E, _ = flat_loss(model, data.x_train, data.y_train)
    cols = {c: [] for c in ("epoch", "train_loss", "train_acc", "test_acc", "grad_norm_1_eps")}
    diag = {c: [] for c in ("epoch", *DIAGNOSTIC_COLUMNS)}
    state, t_steps, t_diag, stop_reason = adam_init(theta), 0.0, 0.0, "epochs"

    for n in range(epochs + 1):
        t0 = time.perf_counter()
        diagnose = bool(diagnostics_every) and n % diagnostics_every == 0
        if hyper["kappa"] != 0.0 or diagnose:
            g, hvp_fn = gradient_and_hvp_fn(E, theta)
        else:
            g, hvp_fn = gradient(E, theta), None
        with torch.no_grad():
            out = forward(theta, data.x_train)
            train_loss = float(torch.nn.functional.cross_entropy(out, data.y_train))
            train_acc = float((out.argmax(1) == data.y_train).double().mean())
            test_acc = float("nan")
            if n % test_every == 0:
                out_test = forward(theta, data.x_test)
                test_acc = float((out_test.argmax(1) == data.y_test).double().mean())
        for c, v in zip(cols, (n, train_loss, train_acc, test_acc,
                               float(perturbed_one_norm(g.double(), eps=eps)))):
            cols[c].append(v)
        t_steps += time.perf_counter() - t0
        if not math.isfinite(train_loss):
            stop_reason = "diverged"
            break
        if diagnose:
            t1 = time.perf_counter()
            D = step_denominator(g, state.v, state.n, rho=rho, eps=eps)
            row = {"epoch": n, **diagnostics_at(g, hvp_fn, h=h, beta=beta, rho=rho, eps=eps,
                                                denominator=D, sharpness=sharpness)}
            for c in diag:
                diag[c].append(float(row[c]))
            t_diag += time.perf_counter() - t1
        if n == epochs:
            break
        t0 = time.perf_counter()
        d, state = kappa_update(g, hvp_fn, state, **hyper)
        theta = theta + d
        t_steps += time.perf_counter() - t0
    return KappaRun({c: np.asarray(v, dtype=float) for c, v in cols.items()},
                    {c: np.asarray(v, dtype=float) for c, v in diag.items()},
                    stop_reason, t_steps, t_diag)
