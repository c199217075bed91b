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
* L = AV_β^n[H_k S_k], L̄ = AV_β^n[H_k u⁽ⁿ⁾], P = AV_ρ^n[∇E_k∘H_k S_k], P̄ = AV_ρ^n[∇E_k∘H_k u⁽ⁿ⁾],

H_k the Hessian of E_k. The inner sum starts at l = k: it comes from the Taylor expansion
∇E_k(θ⁽ᵏ⁾) = ∇E_k(θ⁽ⁿ⁾) - H_k(θ⁽ⁿ⁾ - θ⁽ᵏ⁾) + O(h²) with θ⁽ⁿ⁾ - θ⁽ᵏ⁾ = -h Σ_{l=k}^{n-1} u⁽ˡ⁾ + O(h²).
The transcribed statement prints it as Σ_{l=1}^{n-1}; ``inner_sum="1"`` evaluates that reading so
the two can be compared by their convergence order.

Cost. The m batch gradients g_b = ∇E_b(θ) determine every average: M⁽ˡ⁾ = Σ_b c^β_{l,b} g_b with
weights c_{l,b} = AV^l of the indicator [k ≡ b mod m], computed once by recursion. The suffix
sums S_k cost O(n·p), and grouping the terms by batch,

    2L + L̄ = Σ_b H_b (2 y_b + c^β_{n,b} u⁽ⁿ⁾),   2P + P̄ = Σ_b g_b ∘ H_b (2 x_b + c^ρ_{n,b} u⁽ⁿ⁾),

with y_b, x_b the β- and ρ-weighted sums of S_k over the steps k ≡ b. Both are K @ u_all for a
(2m, n+1) matrix K of weights that depends on the interval n alone (:func:`interval_weights`),
built once per interval, not at each of the solver's evaluations. The m gradients and the 2m
products take three reverse passes whatever m: one for all g_b, one for the m products H_b(2y_b +
…), one for the m H_b(2x_b + …) (:func:`bea_lib.core.autodiff.stacked_gradient_and_hvp_fn`).
Consecutive intervals share the gradients at the point where one ends and the next starts
(:class:`_LastPoint`).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from .autodiff import stacked_gradient, stacked_gradient_and_hvp_fn
from .expansion import adam_expansion_ratio, warn_if_invalid
from .integrate import check_solver_options, solve_intervals
from .validation import adam_hyper, as_losses, check_n_steps, check_order, check_theta0

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


def _check_rhs_hyper(*, h, beta, rho, eps, order, inner_sum) -> dict:
    """The hyperparameters of (3.2), checked once at a public entry point."""
    if inner_sum not in INNER_SUMS:
        raise ValueError(f"inner_sum must be one of {INNER_SUMS}, got {inner_sum!r}")
    checked = adam_hyper(h=h, beta=beta, rho=rho, eps=eps)
    return dict(h=checked.h, beta=checked.beta, rho=checked.rho, eps=checked.eps,
                order=check_order(order), inner_sum=inner_sum)


def _check_weights(weights, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``weights`` is a pair of (≥ n+1, m) tensors, as :func:`batch_weights` makes them."""
    try:
        cb, cr = (torch.as_tensor(w, dtype=torch.float64) for w in weights)
    except (TypeError, ValueError) as err:
        raise ValueError(f"weights must be batch_weights' pair (c_beta, c_rho) ({err})") from None
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
    hyper = _check_rhs_hyper(h=h, beta=beta, rho=rho, eps=eps, order=order, inner_sum=inner_sum)
    m = len(losses)
    if weights is None:
        weights = (batch_weights(hyper["beta"], n, m), batch_weights(hyper["rho"], n, m))
    return _minibatch_rhs(losses, n, weights=_check_weights(weights, n, m), **hyper)


def interval_weights(weights, n: int, *, beta: float, rho: float, inner_sum: str = "k"
                     ) -> torch.Tensor:
    """K, shape (2m, n+1), such that K @ u_all stacks the m vectors of 2L + L̄ (rows 0..m-1) and
    the m vectors of 2P + P̄ (rows m..2m-1), u_all the rows u⁽⁰⁾, …, u⁽ⁿ⁾.

    They depend on the interval n but not on θ, so an interval computes them once for all the
    solver's evaluations. With S_k = Σ_{l=k}^{n-1} u⁽ˡ⁾ the β-weighted sum of the batch is
    y_b = Σ_{k≤n, k≡b} a^n_k S_k = Σ_{l<n} u⁽ˡ⁾ Σ_{k≤l, k≡b} a^n_k, and the inner weight is
    Σ_{k≤l, k≡b} a^n_k = γ^{n-l} U_{l,b}/(1-γ^{n+1}), U_l = (1-γ^{l+1}) c_l the unnormalised sums of
    :func:`batch_weights`. So 2y_b + c_{n,b} u⁽ⁿ⁾ has the weights 2γ^{n-l}U_{l,b}/(1-γ^{n+1}) for
    l < n and c_{n,b} for l = n. Read as printed (``inner_sum="1"``), S_k = Σ_{l=1}^{n-1} u⁽ˡ⁾ for
    every k and y_b = c_{n,b} S: the weights are c_{n,b}·(0, 2, …, 2, 1) (c_{0,b} at n = 0).
    """
    rows = []
    l = torch.arange(n + 1, dtype=torch.float64)
    doubled = torch.where(l < n, 2.0, 1.0)  # 2 y_b + (the l = n term once)
    for gamma, c in zip((beta, rho), weights):
        c = c[: n + 1]
        if inner_sum == "k":
            U = c * (1 - gamma ** (l + 1))[:, None]
            rows.append((doubled * gamma ** (n - l) / (1 - gamma ** (n + 1)))[None] * U.T)
        else:
            rows.append(c[n][:, None] * torch.where((l >= 1) | (l == n), doubled, 0.0)[None])
    return torch.cat(rows)


class _LastPoint:
    """The batch gradients (and, for order 1, their Hessian-vector products) at the last θ asked
    for, recomputed whenever θ differs in value.

    RK45 ends each interval with an evaluation at the interval's end θ⁽ⁿ⁺¹⁾ (for its error
    estimate) and the next interval starts with one at the same θ: the intervals of one flow share
    this object, so the second evaluation reuses the gradients and the graph of the first. The
    key is a copy of θ, and the graph is built on that copy, so a caller that later overwrites
    its θ in place cannot make the stored values stale.
    """

    def __init__(self, losses, order: int):
        self.losses, self.order = losses, order
        self.theta, self.value = None, None

    def __call__(self, theta: torch.Tensor):
        if self.theta is None or not torch.equal(theta, self.theta):
            self.theta = theta.detach().clone()
            self.value = (stacked_gradient(self.losses, self.theta) if self.order == 0
                          else stacked_gradient_and_hvp_fn(self.losses, self.theta))
        return self.value


def _minibatch_rhs(losses, n, *, h, beta, rho, eps, order, inner_sum, weights, point=None):
    """:func:`minibatch_adam_rhs` on checked input.

    What depends on n alone (the averaging weights of steps 0..n and the matrix K of
    :func:`interval_weights`) is computed here, once per interval; ``rhs`` does only the work
    that depends on θ: m gradients and 2m Hessian-vector products in three reverse passes
    (:func:`bea_lib.core.autodiff.stacked_gradient_and_hvp_fn`) and O(n·m·p) vector work. ``point``
    (a :class:`_LastPoint`) may be shared with the flow's other intervals.
    """
    m = len(losses)
    point = _LastPoint(losses, order) if point is None else point
    cb, cr = (c[: n + 1] for c in weights)
    cb_n, cr_n = cb[n], cr[n]
    K = interval_weights(weights, n, beta=beta, rho=rho, inner_sum=inner_sum) if order else None

    def rhs(t: float, theta: torch.Tensor) -> torch.Tensor:
        if order == 0:  # only step n's averages: -M⁽ⁿ⁾/R⁽ⁿ⁾
            g = point(theta)  # (m, p): batch gradients g_b
            return -(cb_n @ g) / torch.sqrt(cr_n @ g**2 + eps)
        g, hvps = point(theta)
        R_all = torch.sqrt(cr @ g**2 + eps)
        u_all = (cb @ g) / R_all  # (n+1, p): u⁽ˡ⁾ = M⁽ˡ⁾/R⁽ˡ⁾ for l = 0..n
        R, u = R_all[n], u_all[n]
        V = K @ u_all  # rows 2y_b + c^β_{n,b} u⁽ⁿ⁾, then 2x_b + c^ρ_{n,b} u⁽ⁿ⁾
        two_L = hvps(V[:m]).sum(0)  # 2L + L̄ = Σ_b H_b (2y_b + c^β_{n,b} u⁽ⁿ⁾)
        two_P = (g * hvps(V[m:])).sum(0)  # 2P + P̄ = Σ_b g_b ∘ H_b (2x_b + c^ρ_{n,b} u⁽ⁿ⁾)
        # (3.2): -u + h(M(2P + P̄)/(2R³) - (2L + L̄)/(2R)), with M/R³ = u/R²
        return (h / 2) * ((u * two_P / R - two_L) / R) - u

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
    hyper = _check_rhs_hyper(h=h, beta=beta, rho=rho, eps=eps, order=order, inner_sum=inner_sum)
    options = check_solver_options(rtol=rtol, atol=atol, method=method, max_evals=max_evals,
                                   max_seconds=max_seconds)
    # at θ⁽⁰⁾ the first interval's flow is the full-batch flow of losses[0]
    warn_if_invalid(adam_expansion_ratio, losses[0], theta0, eps_inside=True,
                    **{k: hyper[k] for k in ("h", "beta", "rho", "eps")})
    return _minibatch_flow(losses, theta0, n_steps, **hyper, **options)


def _minibatch_flow(losses, theta, n_steps, *, h, beta, rho, eps, order, inner_sum, rtol, atol,
                    method, max_evals, max_seconds) -> torch.Tensor:
    """:func:`minibatch_adam_flow` on checked input: θ is checked once, not on every interval."""
    weights = (batch_weights(beta, n_steps, len(losses)), batch_weights(rho, n_steps, len(losses)))
    point = _LastPoint(losses, order)  # shared by the intervals

    def rhs_at(n: int):
        return _minibatch_rhs(losses, n, h=h, beta=beta, rho=rho, eps=eps, order=order,
                              inner_sum=inner_sum, weights=weights, point=point)

    return solve_intervals(rhs_at, theta, n_steps, h=h, rtol=rtol, atol=atol, method=method,
                           max_evals=max_evals, max_seconds=max_seconds)
