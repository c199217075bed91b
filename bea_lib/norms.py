r"""What Adam's bias term penalises: the perturbed one-norm, its coefficient, Table 1, Example 2.3.

Symbols and names: β ``beta``, ρ ``rho``, ε ``eps``, h ``h``; g or y a gradient (component).

- ‖v‖_{1,ε} = Σ_i √(v_i² + ε), the perturbed one-norm (:func:`perturbed_one_norm`).
- The bias of (2.3) is bias_j = h · c(β, ρ, ε, g_j) · ∇_j‖∇E‖_{1,ε} with
  c = ½{(1+β)/(1-β) - (1+ρ)/(1-ρ) + (1+ρ)/(1-ρ) · ε/(g_j² + ε)} (:func:`bias_coefficient`).
- In one dimension the bias is (h/2) d/dθ F(E'(θ)) with F the curve of Figure 1
  (:func:`bias_potential_1d`): F is the quantity that Adam implicitly penalises (F increasing
  in |x|) or anti-penalises (F decreasing).
"""
from __future__ import annotations

import math

import torch

from .validation import check_positive, check_unit_interval

ONE_NORM_PENALISED = "one-norm penalised"
ONE_NORM_ANTI_PENALISED = "one-norm anti-penalised"
TWO_NORM_SQUARED_PENALISED = "two-norm squared penalised"
INTERMEDIATE = "intermediate"


def perturbed_one_norm(v, eps: float) -> torch.Tensor:
    """‖v‖_{1,ε} = Σ_i √(v_i² + ε) (not a norm for ε > 0; ε = 0 gives the one-norm)."""
    v = torch.as_tensor(v)
    if not v.is_floating_point():
        v = v.to(torch.float64)
    if float(eps) < 0 or not math.isfinite(float(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    return torch.sqrt(v**2 + eps).sum()


def _coefficients(beta: float, rho: float) -> tuple[float, float]:
    """a = (1+β)/(1-β) - (1+ρ)/(1-ρ) and b = (1+ρ)/(1-ρ), the two constants of (2.3)."""
    beta, rho = check_unit_interval("beta", beta), check_unit_interval("rho", rho)
    b = (1 + rho) / (1 - rho)
    return (1 + beta) / (1 - beta) - b, b


def bias_coefficient(beta: float, rho: float, eps: float, g):
    """c(β, ρ, ε, g) = ½{(1+β)/(1-β) - (1+ρ)/(1-ρ) + (1+ρ)/(1-ρ)·ε/(g²+ε)}, componentwise in g.

    The bias of (2.3) is h·c·∇‖∇E‖_{1,ε}. ``g`` may be a float, a numpy array or a torch tensor.
    """
    a, b = _coefficients(beta, rho)
    eps = check_positive("eps", eps)
    return 0.5 * (a + b * eps / (g**2 + eps))


def bias_potential_1d(x, *, beta: float, rho: float, eps: float):
    r"""The curve of Figure 1: F(x) = ∫₀ˣ {…} d√(ε + y²) = ∫₀ˣ 2c(β, ρ, ε, y) · y/√(ε + y²) dy.

    Convention: the integrand is the paper's braces {…} = 2c, without the ½ (so the 1-D bias is
    (h/2)·d/dθ F(E'(θ))). Closed form, with a = (1+β)/(1-β) - (1+ρ)/(1-ρ), b = (1+ρ)/(1-ρ):

    .. math::

        F(x) = a\,(\sqrt{ε + x^2} - \sqrt{ε}) + b\,\sqrt{ε}\,\Big(1 - \frac{1}{\sqrt{1 + x^2/ε}}\Big),

    since ∫₀ˣ y/√(ε+y²) dy = √(ε+x²) - √ε and ∫₀ˣ ε y/(ε+y²)^{3/2} dy = ε(1/√ε - 1/√(ε+x²)).
    F is even; ``x`` may be a float, a numpy array or a torch tensor.
    """
    a, b = _coefficients(beta, rho)
    eps = check_positive("eps", eps)
    s = (eps + x**2) ** 0.5
    return a * (s - eps**0.5) + b * eps**0.5 * (1 - eps**0.5 / s)


def implicit_bias_regime(beta: float, rho: float, eps: float, grad, *, ratio: float = 100.0) -> str:
    """Which cell of Table 1 applies at a point with gradient ``grad``.

    ε is "small" if ratio·ε ≤ min_i g_i² and "large" if ε ≥ ratio·max_i g_i²; otherwise the answer
    is ``"intermediate"`` (the bias is in between the two extreme forms (2.4) and (2.7)).
    Returns ``"one-norm penalised"`` (ε small, β ≥ ρ), ``"one-norm anti-penalised"`` (ε small,
    ρ > β) or ``"two-norm squared penalised"`` (ε large, any β and ρ).
    """
    beta, rho = check_unit_interval("beta", beta), check_unit_interval("rho", rho)
    eps, ratio = check_positive("eps", eps), check_positive("ratio", ratio)
    g2 = torch.as_tensor(grad, dtype=torch.float64).reshape(-1) ** 2
    if g2.numel() == 0:
        raise ValueError("grad must have at least one component")
    if ratio * eps <= g2.min():
        return ONE_NORM_PENALISED if beta >= rho else ONE_NORM_ANTI_PENALISED
    if eps >= ratio * g2.max():
        return TWO_NORM_SQUARED_PENALISED
    return INTERMEDIATE


def heavy_ball_limit(h: float, beta: float, eps: float) -> tuple[float, float]:
    """Example 2.3: Adam with ε ≫ g² approximates heavy-ball with step h(1-β)/√ε and momentum β.

    With ν̂ ≪ ε the update is -h m̂/√ε, and once the bias correction 1/(1-β^(n+1)) ≈ 1 has faded
    -h m/√ε = -(h(1-β)/√ε) Σ_k β^k g⁽ⁿ⁻ᵏ⁾, which is the heavy-ball displacement. Returns
    (h_hb, beta_hb).
    """
    h, beta, eps = check_positive("h", h), check_unit_interval("beta", beta), check_positive("eps", eps)
    return h * (1 - beta) / math.sqrt(eps), beta
