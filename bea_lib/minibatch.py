r"""Theorem 3.1: the piecewise modified ODE of mini-batch Adam, evaluated cheaply.

Step n of mini-batch Adam uses the loss E_n = ``losses[n % m]``. On t ∈ [nh, (n+1)h] the modified
flow is (3.2),

.. math::

    \dot θ_j = -\frac{M_j}{R_j}
      + h\Big(\frac{M_j (2P_j + \bar P_j)}{2R_j^3} - \frac{2L_j + \bar L_j}{2R_j}\Big),

with, for the exponential average AV_γ^n[a.] = Σ_{k≤n} a_k (1-γ)γ^{n-k} / (1-γ^{n+1}) over the
steps k = 0, …, n and everything evaluated at the current θ,

* M⁽ⁿ⁾ = AV_β^n[∇E_k], R⁽ⁿ⁾ = √(AV_ρ^n[(∇E_k)²] + ε), u⁽ⁿ⁾ = M⁽ⁿ⁾/R⁽ⁿ⁾,
* S_k = Σ_{l=k}^{n-1} u⁽ˡ⁾, the displacement θ⁽ⁿ⁾ - θ⁽ᵏ⁾ divided by h, to leading order,
* L = AV_β^n[H_k S_k], L̄ = AV_β^n[H_k u⁽ⁿ⁾], P = AV_ρ^n[∇E_k ∘ H_k S_k], P̄ = AV_ρ^n[∇E_k ∘ H_k u⁽ⁿ⁾],

H_k the Hessian of E_k. The inner sum starts at l = k: it comes from the Taylor expansion
∇E_k(θ⁽ᵏ⁾) = ∇E_k(θ⁽ⁿ⁾) - H_k(θ⁽ⁿ⁾ - θ⁽ᵏ⁾) + O(h²) with θ⁽ⁿ⁾ - θ⁽ᵏ⁾ = -h Σ_{l=k}^{n-1} u⁽ˡ⁾ + O(h²).
The transcribed statement prints it as Σ_{l=1}^{n-1}; ``inner_sum="1"`` evaluates that reading so
the two can be compared by their convergence order.

Cost. The m batch gradients g_b = ∇E_b(θ) determine every average: M⁽ˡ⁾ = Σ_b c^β_{l,b} g_b with
weights c_{l,b} = AV^l of the indicator [k ≡ b mod m], computed once by recursion. The suffix
sums S_k cost O(n·p), and grouping the terms by batch,

    2L + L̄ = Σ_b H_b (2 y_b + c^β_{n,b} u⁽ⁿ⁾),   2P + P̄ = Σ_b g_b ∘ H_b (2 x_b + c^ρ_{n,b} u⁽ⁿ⁾),

with y_b, x_b the β- and ρ-weighted sums of S_k over the steps k ≡ b: one reverse pass per batch
gives g_b and its Hessian-vector product function, applied to the two vectors of the batch
(:func:`bea_lib.autodiff.gradient_and_hvp_fn`).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from .autodiff import gradient, gradient_and_hvp_fn
from .integrate import _solve, check_solver_options
from .validation import (as_losses, check_n_steps, check_order, check_positive, check_theta0,
                         check_unit_interval)

INNER_SUMS = ("k", "1")


def average_weights(gamma: float, n: int) -> torch.Tensor:
    """a_k = (1-γ)γ^{n-k}/(1-γ^{n+1}) for k = 0, …, n: the weights of AV_γ^n (they sum to one)."""
    k = torch.arange(n + 1, dtype=torch.float64)
    return (1 - gamma) * gamma ** (n - k) / (1 - gamma ** (n + 1))


def batch_weights(gamma: float, n_max: int, m: int) -> torch.Tensor:
    """c_{l,b} = Σ_{k ≤ l, k ≡ b (mod m)} a^l_k for l = 0, …, n_max: shape (n_max + 1, m).

    By recursion on the unnormalised sums U_l = γU_{l-1} + (1-γ)e_{l mod m}, c_l = U_l/(1-γ^{l+1}).
    """
    c = torch.zeros(n_max + 1, m, dtype=torch.float64)
    U = torch.zeros(m, dtype=torch.float64)
    for l in range(n_max + 1):
        U = gamma * U
        U[l % m] += 1 - gamma
        c[l] = U / (1 - gamma ** (l + 1))
    return c


def _check_rhs_hyper(h, beta, rho, eps, order, inner_sum) -> dict:
    """The hyperparameters of (3.2), checked once at a public entry point."""
    if inner_sum not in INNER_SUMS:
        raise ValueError(f"inner_sum must be one of {INNER_SUMS}, got {inner_sum!r}")
    return dict(h=check_positive("h", h), beta=check_unit_interval("beta", beta),
                rho=check_unit_interval("rho", rho), eps=check_positive("eps", eps),
                order=check_order(order), inner_sum=inner_sum)


def _check_weights(weights, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``weights`` is a pair of (≥ n+1, m) tensors, as :func:`batch_weights` makes them."""
    try:
        cb, cr = (torch.as_tensor(w, dtype=torch.float64) for w in weights)
    except (TypeError, ValueError) as err:
        raise ValueError(f"weights must be a pair (c_beta, c_rho) from batch_weights ({err})") from None
    for name, c in (("c_beta", cb), ("c_rho", cr)):
        if c.ndim != 2 or c.shape[0] < n + 1 or c.shape[1] != m:
            raise ValueError(f"weights: {name} must have shape (>= {n + 1}, {m}) for n = {n} and "
                             f"{m} losses, got {tuple(c.shape)}")
    return cb, cr


def minibatch_adam_rhs(losses, n: int, *, h: float, beta: float, rho: float, eps: float,
                       order: int = 1, inner_sum: str = "k", weights=None
                       ) -> Callable[[float, torch.Tensor], torch.Tensor]:
    """The right-hand side of (3.2) on the interval [nh, (n+1)h], as ``rhs(t, theta)``.

    ``weights`` is an optional pair (c^β, c^ρ) from :func:`batch_weights` with at least n + 1
    rows, to share the recursion between intervals. Every argument is checked here (chapters
    call this directly); the flow checks once and builds its intervals unchecked.
    """
    losses, n = as_losses(losses), check_n_steps(n, name="n")
    hyper = _check_rhs_hyper(h, beta, rho, eps, order, inner_sum)
    m = len(losses)
    if weights is None:
        weights = (batch_weights(hyper["beta"], n, m), batch_weights(hyper["rho"], n, m))
    return _minibatch_rhs(losses, n, weights=_check_weights(weights, n, m), **hyper)


def _minibatch_rhs(losses, n, *, h, beta, rho, eps, order, inner_sum, weights):
    """:func:`minibatch_adam_rhs` on checked input."""
    m = len(losses)
    cb, cr = weights
    cb, cr = cb[: n + 1], cr[: n + 1]
    ab, ar = average_weights(beta, n), average_weights(rho, n)
    batch_of_step = torch.arange(n + 1) % m

    def rhs(t: float, theta: torch.Tensor) -> torch.Tensor:
        if order == 0:  # only step n's averages: -M⁽ⁿ⁾/R⁽ⁿ⁾
            g = torch.stack([gradient(E, theta) for E in losses])  # (m, p): batch gradients g_b
            return -(cb[n] @ g) / torch.sqrt(cr[n] @ g**2 + eps)
        g, hvp_fns = zip(*(gradient_and_hvp_fn(E, theta) for E in losses))
        g = torch.stack(g)
        M_all = cb @ g  # (n+1, p): M⁽ˡ⁾ for l = 0..n
        R_all = torch.sqrt(cr @ g**2 + eps)
        u_all = M_all / R_all
        M, R, u = M_all[n], R_all[n], u_all[n]
        if inner_sum == "k":  # S_k = Σ_{l=k}^{n-1} u⁽ˡ⁾, by a reversed cumulative sum
            S = torch.cat([torch.flip(torch.cumsum(torch.flip(u_all[:n], [0]), 0), [0]),
                           torch.zeros_like(u)[None]])
        else:  # the transcribed reading Σ_{l=1}^{n-1} u⁽ˡ⁾, the same for every k
            S = u_all[1:n].sum(0).expand(n + 1, -1)
        y = torch.zeros_like(g).index_add_(0, batch_of_step, ab[:, None] * S)  # β-weighted, per batch
        x = torch.zeros_like(g).index_add_(0, batch_of_step, ar[:, None] * S)  # ρ-weighted
        two_L, two_P = torch.zeros_like(u), torch.zeros_like(u)  # 2L + L̄ and 2P + P̄
        for b, H_b in enumerate(hvp_fns):
            two_L += H_b(2 * y[b] + cb[n, b] * u)
            two_P += g[b] * H_b(2 * x[b] + cr[n, b] * u)
        return -u + h * (M * two_P / (2 * R**3) - two_L / (2 * R))  # (3.2)

    return rhs


def minibatch_adam_flow(losses, theta0, n_steps: int, *, h: float, beta: float, rho: float,
                        eps: float, order: int = 1, inner_sum: str = "k", rtol: float = 1e-10,
                        atol: float = 1e-12, method: str = "auto", max_evals: int | None = None,
                        max_seconds: float | None = None) -> torch.Tensor:
    """The piecewise ODE (3.2) solved interval by interval: θ̃(nh) for n = 0, …, n_steps.

    Works for any number m ≥ 1 of losses; with m = 1 it keeps the finite-n terms that the
    full-batch flow (2.2)–(2.3) drops. Solver options (per interval), warning and errors as in
    :func:`bea_lib.adam_flow`.
    """
    losses = as_losses(losses)
    theta0, n_steps = check_theta0(theta0), check_n_steps(n_steps)
    hyper = _check_rhs_hyper(h, beta, rho, eps, order, inner_sum)
    options = check_solver_options(rtol=rtol, atol=atol, method=method, max_evals=max_evals,
                                   max_seconds=max_seconds)
    from .flows import _warn_if_invalid, adam_expansion_ratio  # flows imports this module

    # at θ⁽⁰⁾ the first interval's flow is the full-batch flow of losses[0]
    _warn_if_invalid(adam_expansion_ratio, losses[0], theta0, eps_inside=True,
                     **{k: hyper[k] for k in ("h", "beta", "rho", "eps")})
    return _minibatch_flow(losses, theta0, n_steps, **hyper, **options)


def _minibatch_flow(losses, theta, n_steps, *, h, beta, rho, eps, order, inner_sum, rtol, atol,
                    method, max_evals, max_seconds) -> torch.Tensor:
    """:func:`minibatch_adam_flow` on checked input: θ is checked once, not on every interval."""
    weights = (batch_weights(beta, n_steps, len(losses)), batch_weights(rho, n_steps, len(losses)))
    out = [theta]
    for n in range(n_steps):
        rhs = _minibatch_rhs(losses, n, h=h, beta=beta, rho=rho, eps=eps, order=order,
                             inner_sum=inner_sum, weights=weights)
        # rhs ignores t; on a span this short RK45 meets the tolerances in fewer evaluations
        theta = _solve(rhs, theta, 1, h, rtol=rtol, atol=atol, method=method, explicit="RK45",
                       max_evals=max_evals, max_seconds=max_seconds)[-1]
        out.append(theta)
    return torch.stack(out)
