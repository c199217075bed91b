r"""The O(h) term of Adam's and heavy-ball's modified flows at a point, and whether it is small.

What :mod:`bea_lib.core.flows` and :mod:`bea_lib.core.minibatch` share, below both (neither uses the
other's internals): the denominator D of Adam's step as a function of g², the bias direction f₁
of (2.2)–(2.3), and the ratio of the O(h) term to the leading term with its warning (the module
docstring of :mod:`bea_lib.core.flows` says why and when it warns).

Symbols as in :mod:`bea_lib.core.flows`: g = ∇E(θ), H = ∇²E(θ), u = g/D(g²),

.. math::

    f_1 = -(H u) \circ \Big[\frac{1+β}{2(1-β) D(g^2)}
          - \frac{1+ρ}{1-ρ}\,\frac{g^2 D'(g^2)}{D(g^2)^2}\Big],

with ε inside (D(x) = √(x + ε)) H u = ∇‖∇E‖_{1,ε} and f₁ = −c(β, ρ, ε, g) ∘ ∇‖∇E‖_{1,ε}/√(g²+ε),
c of :func:`bea_lib.core.norms.bias_coefficient`: h f₁ is the paper's bias term over √(g² + ε).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .autodiff import gradient_and_hvp_fn
from .validation import warn_if_expansion_invalid


def denominator(g: torch.Tensor, *, eps, eps_inside: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """D(g²) and g² D'(g²) / D(g²)² for ε inside (D(x) = √(x+ε)) or outside (D(x) = √x + ε)."""
    if eps_inside:
        D = torch.sqrt(g**2 + eps)
        return D, g**2 / (2 * D**3)
    D = g.abs() + eps
    return D, g.abs() / (2 * D**2)  # needs |g_j| away from 0: |g| is not smooth there


def bracket(D: torch.Tensor, k: torch.Tensor, *, beta, rho) -> torch.Tensor:
    """The bracket of f₁ = −(H u) ∘ bracket (module docstring), from :func:`denominator`."""
    return (1 + beta) / (2 * (1 - beta) * D) - (1 + rho) / (1 - rho) * k


def bias_direction(g: torch.Tensor, hvp_fn: Callable[[torch.Tensor], torch.Tensor], *, beta,
                   rho, eps, eps_inside: bool = True) -> torch.Tensor:
    """f₁(θ), the O(h) coefficient of Adam's modified flow (2.2)–(2.3): θ̇ = f₀ + h f₁.

    ``g`` is ∇E(θ) and ``hvp_fn`` is v ↦ ∇²E(θ)v at the same θ
    (:func:`bea_lib.core.autodiff.gradient_and_hvp_fn`); one Hessian-vector product. Unchecked (the
    callers check their hyperparameters once); β, ρ, ε may be tensors that broadcast against
    ``g`` (one row per run of a batch).
    """
    D, k = denominator(g, eps=eps, eps_inside=eps_inside)
    return -hvp_fn(g / D) * bracket(D, k, beta=beta, rho=rho)


def _ratio(term: torch.Tensor, leading: torch.Tensor) -> float:
    """‖term‖/‖leading‖; 0 where θ̇ is 0 or not finite (the solver then reports where)."""
    size = float(leading.norm())
    return float(term.norm()) / size if size > 0 else 0.0


def adam_expansion_ratio(E, theta, *, h, beta, rho, eps, eps_inside=True) -> float:
    """The larger of the β- and ρ-parts of Adam's O(h) term ((2.3)) over the leading term, at θ."""
    g, hvp_fn = gradient_and_hvp_fn(E, theta)
    D, k = denominator(g, eps=eps, eps_inside=eps_inside)
    u = g / D
    Hu = hvp_fn(u)
    beta_part = h * (1 + beta) / (2 * (1 - beta)) * Hu / D
    rho_part = h * (1 + rho) / (1 - rho) * k * Hu
    return max(_ratio(beta_part, u), _ratio(rho_part, u))


def heavy_ball_expansion_ratio(E, theta, *, h, beta) -> float:
    """Heavy-ball's O(h) term ((1.1)) over its leading term, at θ: h(1+β)/(2(1-β)²)‖Hg‖/‖g‖."""
    return heavy_ball_ratio(*gradient_and_hvp_fn(E, theta), h=h, beta=beta)


def heavy_ball_ratio(g: torch.Tensor, hvp_fn, *, h, beta) -> float:
    """h(1+β)/(2(1-β)²)‖Hg‖/‖g‖ where ``g`` = ∇E and ``hvp_fn`` = v ↦ Hv were taken."""
    return h * (1 + beta) / (2 * (1 - beta) ** 2) * _ratio(hvp_fn(g), g)


def warn_if_invalid(ratio_fn, E, theta0, **hyper) -> None:
    """Warn when the O(h) term is large at θ⁽⁰⁾; a non-finite θ̇ is left to the solver's error."""
    with torch.no_grad():
        ratio = ratio_fn(E, theta0, **hyper)
    keys = ("h", "beta", "rho")
    warn_if_expansion_invalid(ratio, **{k: hyper[k] for k in keys if k in hyper})  # NaN: no warning
