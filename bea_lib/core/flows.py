r"""Modified flows: ODEs whose solution stays O(h²) close to the iterates of an algorithm.

Symbols and names (as in :mod:`bea_lib.core.optimizers`): h ``h``, β ``beta``, ρ ``rho``, ε ``eps``;
g = ∇E(θ), H = ∇²E(θ); products, squares and quotients of vectors are componentwise.

**Adam and RMSProp (full batch).** Write one step as θ⁽ⁿ⁺¹⁾ - θ⁽ⁿ⁾ = -h m̂⁽ⁿ⁺¹⁾ / D(ν̂⁽ⁿ⁺¹⁾)
with the bias-corrected averages m̂, ν̂ of (2.1) and a denominator D: D(x) = √(x + ε) for ε
inside the square root (the paper's Definition 2.1), D(x) = √x + ε outside (Kingma & Ba).
Expanding g(θ⁽ⁿ⁻ᵏ⁾) ≈ g - k h H f in the averages and matching one step of θ̇ = f + h f₁ gives

.. math::

    f = -\frac{g}{D(g^2)}, \qquad
    f_1 = -(H u) \circ \Big[\frac{1+β}{2(1-β) D(g^2)}
          - \frac{1+ρ}{1-ρ}\,\frac{g^2 D'(g^2)}{D(g^2)^2}\Big], \qquad u = \frac{g}{D(g^2)}.

With ε inside, H u = ∇‖∇E‖_{1,ε} and this is the paper's (2.2)–(2.3):
θ̇_j = -(g_j + bias_j)/√(g_j² + ε), bias_j = h c(β, ρ, ε, g_j) ∇_j‖∇E‖_{1,ε} with c of
:func:`bea_lib.core.norms.bias_coefficient`. With ε outside, g² D'/D² = |g|/(2(|g| + ε)²): that flow
is only valid while no gradient component comes near 0, where |g| is not smooth (the paper's
Theorems SA-2.4 and SA-4.4 make the same assumption). RMSProp is β = 0.

**Heavy-ball and GD.** θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ - h g + β(θ⁽ⁿ⁾ - θ⁽ⁿ⁻¹⁾) has the flow (eq. (1.1) with its minus
signs restored; Ghosh et al. 2023, Theorem 4.1)

.. math::

    \dot θ = -\frac{g}{1-β} - h\,\frac{1+β}{4(1-β)^3}\,∇‖g‖^2, \qquad ∇‖g‖^2 = 2 H g,

and GD (β = 0) has θ̇ = -g - (h/4)∇‖g‖² (Barrett & Dherin 2021).

``order=0`` drops the O(h) term. For Adam that leaves the ε-perturbed sign flow θ̇ = -g/D(g²):
with ε inside (the default), θ̇ = -g/√(g² + ε), the h → 0 limit of the paper's Definition 2.1
(the leading term of (2.2)); with ``eps_inside=False``, θ̇ = -g/(|g| + ε), the flow of Ma et al.
(2022) as the paper quotes it (ε outside the root, as in Kingma & Ba's Adam). Ma et al. are
the source of the sign-flow limit; the ε-inside form is the paper's, not theirs.

**When the expansion holds.** It is a series in h over the memory of the averages, 1/(1-β)
and 1/(1-ρ) steps, and in the curvature met along the path: the O(h) term of (2.3) carries
h(1+γ)/(2(1-γ)), γ = β, ρ, that of (1.1) h(1+β)/(2(1-β)²) relative to the leading term, times a
Hessian-vector product. So the flows measure at θ⁽⁰⁾ each momentum's part of the O(h) term
against the leading term (β ≈ ρ, where the parts cancel, is no safety) and warn
(:class:`ExpansionValidityWarning`) when the larger exceeds ``VALIDITY_LIMIT`` = 0.5: a check at
the start only, which catches gross violations (the order tests' ratios are a few percent).

**Solving** is :func:`bea_lib.core.integrate.solve_flow`, with its guards (a
:class:`~bea_lib.core.integrate.FlowError` on non-finite values or a spent budget, a stiff
method where the explicit one stalls: the ε-sign flow near a minimum).

Every right-hand side costs one gradient and, for ``order=1``, one Hessian-vector product
(:func:`bea_lib.core.autodiff.gradient_and_hvp_fn`); the Hessian is never formed.
A right-hand side is a function ``rhs(t, theta)``; the full-batch ones ignore t, which leaves
room for the piecewise mini-batch ODE (3.2) of Theorem 3.1.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .autodiff import gradient, gradient_and_hvp_fn
from .expansion import (adam_expansion_ratio, bracket, denominator, heavy_ball_expansion_ratio,
                        warn_if_invalid)
from .integrate import FlowError, check_solver_options, solve
from .minibatch import minibatch_adam_flow
from .validation import (adam_hyper, as_losses, check_bool, check_n_steps, check_order,
                         check_positive, check_theta0, check_unit_interval)


def _full_batch(loss) -> Callable:
    """The single loss of a full-batch flow (a callable or a one-element sequence)."""
    losses = as_losses(loss)
    if len(losses) > 1:
        raise ValueError(f"this flow is full-batch only, got {len(losses)} mini-batch losses; for "
                         "mini-batch Adam and RMSProp use adam_flow / rmsprop_flow (Theorem 3.1)")
    return losses[0]


def _adam_hyper(*, h, beta, rho, eps, order, eps_inside) -> dict:
    """Adam's hyperparameters (:func:`~bea_lib.core.validation.adam_hyper`) and the order."""
    hyper = adam_hyper(h=h, beta=beta, rho=rho, eps=eps, eps_inside=eps_inside)._asdict()
    del hyper["kappa"]
    return dict(hyper, order=check_order(order))


def adam_rhs(loss, *, h: float, beta: float, rho: float, eps: float, order: int = 1,
             eps_inside: bool = True) -> Callable[[float, torch.Tensor], torch.Tensor]:
    """The right-hand side θ ↦ f + h f₁ of full-batch Adam's modified flow (module docstring)."""
    return _adam_rhs(_full_batch(loss), **_adam_hyper(h=h, beta=beta, rho=rho, eps=eps, order=order,
                                                      eps_inside=eps_inside))


def _adam_rhs(E, *, h, beta, rho, eps, order, eps_inside):
    """:func:`adam_rhs` for a checked loss and hyperparameters."""

    def rhs(t: float, theta: torch.Tensor) -> torch.Tensor:
        if order == 0:
            g = gradient(E, theta)
            return -g / denominator(g, eps=eps, eps_inside=eps_inside)[0]  # ε-perturbed sign flow
        g, hvp_fn = gradient_and_hvp_fn(E, theta)
        D, k = denominator(g, eps=eps, eps_inside=eps_inside)
        u = g / D
        Hu = hvp_fn(u)  # = ∇‖∇E‖_{1,ε} for ε inside
        return -u - h * Hu * bracket(D, k, beta=beta, rho=rho)  # (2.2)-(2.3): -u + h f₁

    return rhs


def heavy_ball_rhs(loss, *, h: float, beta: float, order: int = 1
                   ) -> Callable[[float, torch.Tensor], torch.Tensor]:
    """The right-hand side θ ↦ -g/(1-β) - h(1+β)/(2(1-β)³) H g of heavy-ball's flow ((1.1))."""
    return _heavy_ball_rhs(_full_batch(loss), h=check_positive("h", h),
                           beta=check_unit_interval("beta", beta), order=check_order(order))


def _heavy_ball_rhs(E, *, h, beta, order):
    """:func:`heavy_ball_rhs` for a checked loss and hyperparameters."""

    def rhs(t: float, theta: torch.Tensor) -> torch.Tensor:
        if order == 0:
            return -gradient(E, theta) / (1 - beta)
        g, hvp_fn = gradient_and_hvp_fn(E, theta)
        # (1.1): (h(1+β)/(4(1-β)³)) ∇‖g‖² with ∇‖g‖² = 2Hg
        return -g / (1 - beta) - h * (1 + beta) / (2 * (1 - beta) ** 3) * hvp_fn(g)

    return rhs


def adam_flow(loss, theta0, n_steps: int, *, h: float, beta: float, rho: float, eps: float,
              order: int = 1, eps_inside: bool = True, rtol: float = 1e-10,
              atol: float = 1e-12, method: str = "auto", max_evals: int | None = None,
              max_seconds: float | None = None) -> torch.Tensor:
    """Adam's modified flow at t = 0, h, …, n_steps·h: a tensor of shape (n_steps + 1, p).

    A callable ``loss`` (or a one-element sequence) gives the full-batch flow (2.2)–(2.3); a
    sequence of m > 1 mini-batch losses, step n using ``loss[n % m]``, gives the piecewise ODE
    (3.2) of Theorem 3.1 (:func:`bea_lib.core.minibatch.minibatch_adam_flow`), derived for ε
    inside the square root only. With ``eps_inside=False`` the full-batch flow of Adam with ε
    outside the square root; it is valid only while every gradient component stays away from 0.
    ``rtol``, ``atol``, ``method``, ``max_evals``, ``max_seconds`` go to the solver
    (:func:`bea_lib.solve_flow`; for the piecewise ODE they apply to each interval). Warns
    (:class:`ExpansionValidityWarning`) when h is not small against 1 - β and 1 - ρ; raises
    :class:`bea_lib.core.integrate.FlowError` (a ``RuntimeError``) when the solve fails.
    """
    losses = as_losses(loss)
    if len(losses) > 1:  # the one door into the mini-batch flow
        if not check_bool("eps_inside", eps_inside):
            raise ValueError("eps_inside=False: the mini-batch flow (3.2) is derived for ε inside "
                             "the square root only; pass eps_inside=True or a single loss")
        return minibatch_adam_flow(losses, theta0, n_steps, h=h, beta=beta, rho=rho, eps=eps,
                                   order=order, rtol=rtol, atol=atol, method=method,
                                   max_evals=max_evals, max_seconds=max_seconds)
    theta0, n_steps = check_theta0(theta0), check_n_steps(n_steps)
    hyper = _adam_hyper(h=h, beta=beta, rho=rho, eps=eps, order=order, eps_inside=eps_inside)
    options = check_solver_options(rtol=rtol, atol=atol, method=method, max_evals=max_evals,
                                   max_seconds=max_seconds)
    warn_if_invalid(adam_expansion_ratio, losses[0], theta0,
                    **{k: hyper[k] for k in ("h", "beta", "rho", "eps", "eps_inside")})
    return solve(_adam_rhs(losses[0], **hyper), theta0, n_steps, h=hyper["h"], **options)


def rmsprop_flow(loss, theta0, n_steps: int, *, h: float, rho: float, eps: float, order: int = 1,
                 eps_inside: bool = True, rtol: float = 1e-10, atol: float = 1e-12,
                 method: str = "auto", max_evals: int | None = None,
                 max_seconds: float | None = None) -> torch.Tensor:
    """The paper's RMSProp flow: :func:`adam_flow` with β = 0."""
    return adam_flow(loss, theta0, n_steps, h=h, beta=0.0, rho=rho, eps=eps, order=order,
                     eps_inside=eps_inside, rtol=rtol, atol=atol, method=method,
                     max_evals=max_evals, max_seconds=max_seconds)


def heavy_ball_flow(loss, theta0, n_steps: int, *, h: float, beta: float, order: int = 1,
                    shifted_start: bool = False, rtol: float = 1e-10, atol: float = 1e-12,
                    method: str = "auto", max_evals: int | None = None,
                    max_seconds: float | None = None) -> torch.Tensor:
    """Heavy-ball's modified flow (1.1) at t = 0, h, …, n_steps·h: shape (n_steps + 1, p).

    Started at rest (θ⁽⁻¹⁾ = θ⁽⁰⁾) the iteration needs about 1/(1-β) steps to build up its velocity:
    with a constant gradient its displacement after n steps is -h g [n/(1-β) - β(1-β^n)/(1-β)²],
    so the iterates settle at the flow *plus* hβ∇E(θ⁽⁰⁾)/(1-β)². From θ̃(0) = θ⁽⁰⁾ the distance is
    therefore O(h) (order-1 slope ≈ 1). ``shifted_start=True`` starts the flow at
    θ⁽⁰⁾ + hβ∇E(θ⁽⁰⁾)/(1-β)², which restores the O(h²) distance after the transient.
    Solver options, warning and errors as in :func:`adam_flow`.
    """
    E = _full_batch(loss)
    theta0, n_steps = check_theta0(theta0), check_n_steps(n_steps)
    h, beta, order = check_positive("h", h), check_unit_interval("beta", beta), check_order(order)
    options = check_solver_options(rtol=rtol, atol=atol, method=method, max_evals=max_evals,
                                   max_seconds=max_seconds)
    warn_if_invalid(heavy_ball_expansion_ratio, E, theta0, h=h, beta=beta)
    if shifted_start:
        g = gradient(E, theta0)
        if not torch.isfinite(g).all():
            j = int(torch.nonzero(~torch.isfinite(g))[0])
            raise FlowError(f"the gradient at theta0 is not finite (component {j} is "
                            f"{g[j].item()!r}), so the shifted start is undefined")
        theta0 = theta0 + h * beta * g / (1 - beta) ** 2
    return solve(_heavy_ball_rhs(E, h=h, beta=beta, order=order), theta0, n_steps, h=h, **options)


def gd_flow(loss, theta0, n_steps: int, *, h: float, order: int = 1, rtol: float = 1e-10,
            atol: float = 1e-12, method: str = "auto", max_evals: int | None = None,
            max_seconds: float | None = None) -> torch.Tensor:
    """GD's modified flow θ̇ = -∇E - (h/4)∇‖∇E‖² (Barrett & Dherin 2021): heavy-ball with β = 0."""
    return heavy_ball_flow(loss, theta0, n_steps, h=h, beta=0.0, order=order, rtol=rtol, atol=atol,
                           method=method, max_evals=max_evals, max_seconds=max_seconds)
