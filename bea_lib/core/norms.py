r"""What Adam's bias term penalises: the perturbed one-norm, its coefficient, Table 1, Example 2.3.

Symbols and names: β ``beta``, ρ ``rho``, ε ``eps``, h ``h``; g or y a gradient (component).
Data arguments come first, hyperparameters are keyword-only: ``bias_coefficient(g, beta=…,
rho=…, eps=…)``, so that β and ρ, whose swap flips the sign of the bias, cannot be swapped.

- ‖v‖_{1,ε} = Σ_i √(v_i² + ε), the perturbed one-norm (:func:`perturbed_one_norm`).
- The bias of (2.3) is bias_j = h · c(β, ρ, ε, g_j) · ∇_j‖∇E‖_{1,ε} with
  c = ½{(1+β)/(1-β) - (1+ρ)/(1-ρ) + (1+ρ)/(1-ρ) · ε/(g_j² + ε)} (:func:`bias_coefficient`);
  for ε ≪ g² it is h·½{(1+β)/(1-β) - (1+ρ)/(1-ρ)} (:func:`implicit_bias_strength`).
- In one dimension the bias is (h/2) d/dθ F(E'(θ)) with F the curve of Figure 1
  (:func:`bias_potential_1d`): F is the quantity that Adam implicitly penalises (F increasing
  in |x|) or anti-penalises (F decreasing).
- Table 1 (:func:`implicit_bias_regime`, a :class:`bea_lib.base.vocab.BiasRegime`), and the share
  of a run's path spent in each cell (:func:`path_share_by_regime`).
- The bias written into the loss, E + λ‖∇E‖_{1,ε} (:func:`explicit_bias_family`,
  :func:`explicit_bias_loss`).
- What a flow's O(h) term does to a norm N(∇E) of the gradient (:func:`bias_effect`): the
  Discussion's first conclusion (a two-norm penalty in GD and heavy-ball, absent in RMSProp and
  in Adam with ρ > β) read along the algorithms' paths.
"""
from __future__ import annotations

import math

import torch
from torch.func import grad, vmap

from ..base.vocab import BiasRegime
from .validation import adam_hyper, check_positive, check_unit_interval


def _as_float64(v) -> torch.Tensor:
    """A tensor; Python numbers, lists and integer tensors become float64 (ε ≈ 1e-8 needs it)."""
    if isinstance(v, torch.Tensor) and v.is_floating_point():
        return v
    return torch.as_tensor(v, dtype=torch.float64)


def _one_norm_eps(v: torch.Tensor, *, eps: float) -> torch.Tensor:
    """Σ_i √(v_i² + ε), unchecked."""
    return torch.sqrt(v**2 + eps).sum()


def _norm_dtype(v: torch.Tensor, *, eps: float) -> torch.dtype:
    """The dtype in which Σ √(v_i² + ε) is computed for a tensor ``v``: float16 and bfloat16
    become float32 (float16 rounds ε = 1e-8 to 0 and v² to inf above 256; bfloat16 keeps 8
    bits of v² + ε), float32 becomes float64 when ε is below its normal range; complex and bool
    tensors are refused (|v|² and v² differ; a bool is no gradient)."""
    if v.is_complex():
        raise TypeError(f"perturbed_one_norm takes a real tensor, got {v.dtype}; pass v.abs() "
                        "for the norm of the moduli")
    if v.dtype == torch.bool:
        raise TypeError("perturbed_one_norm takes a tensor of numbers, got a bool tensor")
    dtype = v.dtype if v.is_floating_point() else torch.float64
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    if 0 < eps < torch.finfo(dtype).tiny:
        dtype = torch.float64
    return dtype


def perturbed_one_norm(v, *, eps: float) -> torch.Tensor:
    """‖v‖_{1,ε} = Σ_i √(v_i² + ε) (not a norm for ε > 0; ε = 0 gives the one-norm).

    Python numbers, lists and integer tensors are computed in float64, float64 and float32
    tensors in their dtype, float16 and bfloat16 ones in float32 (the result's dtype), so
    that ε is not rounded away; complex and bool tensors are refused.
    """
    eps = float(eps)
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if not isinstance(v, torch.Tensor):
        return _one_norm_eps(_as_float64(v), eps=eps)
    return _one_norm_eps(v.to(_norm_dtype(v, eps=eps)), eps=eps)


def _coefficients(*, beta: float, rho: float) -> tuple[float, float]:
    """a = (1+β)/(1-β) - (1+ρ)/(1-ρ) and b = (1+ρ)/(1-ρ), the two constants of (2.3)."""
    b = (1 + rho) / (1 - rho)
    return (1 + beta) / (1 - beta) - b, b


def _check_hyper(*, beta, rho, eps) -> tuple[float, float, float]:
    """β, ρ and ε checked by the one record (:func:`bea_lib.core.validation.adam_hyper`)."""
    hyper = adam_hyper(h=1.0, beta=beta, rho=rho, eps=eps)
    return hyper.beta, hyper.rho, hyper.eps


def bias_coefficient(g, *, beta: float, rho: float, eps: float):
    """c(β, ρ, ε, g) = ½{(1+β)/(1-β) - (1+ρ)/(1-ρ) + (1+ρ)/(1-ρ)·ε/(g²+ε)}, componentwise in g.

    The bias of (2.3) is h·c·∇‖∇E‖_{1,ε}. ``g`` may be a float, a numpy array or a torch tensor.
    """
    beta, rho, eps = _check_hyper(beta=beta, rho=rho, eps=eps)
    a, b = _coefficients(beta=beta, rho=rho)
    return 0.5 * (a + b * eps / (g**2 + eps))


def implicit_bias_strength(*, h: float, beta: float, rho: float) -> float:
    """h·½{(1+β)/(1-β) - (1+ρ)/(1-ρ)}: the bias of (2.3) is this times ∇‖∇E‖_{1,ε} when ε ≪ g²."""
    h = check_positive("h", h)
    beta, rho = check_unit_interval("beta", beta), check_unit_interval("rho", rho)
    return h * 0.5 * _coefficients(beta=beta, rho=rho)[0]


def bias_potential_1d(x, *, beta: float, rho: float, eps: float):
    r"""The curve of Figure 1: F(x) = ∫₀ˣ {…} d√(ε + y²) = ∫₀ˣ 2c(β, ρ, ε, y) · y/√(ε + y²) dy.

    Convention: the integrand is the paper's braces {…} = 2c, without the ½ (so the 1-D bias is
    (h/2)·d/dθ F(E'(θ))). Closed form, with a = (1+β)/(1-β) - (1+ρ)/(1-ρ), b = (1+ρ)/(1-ρ):

    .. math::

        F(x) = a\,(\sqrt{ε + x^2} - \sqrt{ε})
             + b\,\sqrt{ε}\,\Big(1 - \frac{1}{\sqrt{1 + x^2/ε}}\Big),

    since ∫₀ˣ y/√(ε+y²) dy = √(ε+x²) - √ε and ∫₀ˣ ε y/(ε+y²)^{3/2} dy = ε(1/√ε - 1/√(ε+x²)).
    F is even; ``x`` may be a float, a numpy array or a torch tensor.
    """
    beta, rho, eps = _check_hyper(beta=beta, rho=rho, eps=eps)
    a, b = _coefficients(beta=beta, rho=rho)
    s = (eps + x**2) ** 0.5
    return a * (s - eps**0.5) + b * eps**0.5 * (1 - eps**0.5 / s)


def _eps_side(g2: torch.Tensor, *, eps: float, ratio: float) -> torch.Tensor:
    """The rule of Table 1, per component: +1 where ε is small (ratio·ε ≤ g²), −1 where it is
    large (ε ≥ ratio·g²), 0 in between (unchecked)."""
    return (ratio * eps <= g2).to(torch.int8) - (eps >= ratio * g2).to(torch.int8)


def _one_norm_cell(*, beta: float, rho: float) -> BiasRegime:
    """The cell where ε is small: the sign of the one-norm's coefficient decides."""
    return BiasRegime.ONE_NORM_PENALISED if beta >= rho else BiasRegime.ONE_NORM_ANTI_PENALISED


def _regime(g2: torch.Tensor, *, beta: float, rho: float, eps: float, ratio: float) -> BiasRegime:
    """The Table 1 cell for squared gradient components ``g2`` (unchecked)."""
    side = _eps_side(g2, eps=eps, ratio=ratio)
    if bool((side == 1).all()):
        return _one_norm_cell(beta=beta, rho=rho)
    if bool((side == -1).all()):
        return BiasRegime.TWO_NORM_SQUARED_PENALISED
    return BiasRegime.INTERMEDIATE


def table1_cells(grad, *, beta: float, rho: float, eps: float,
                 ratio: float = 100.0) -> dict[BiasRegime, float]:
    """The fraction of the components of ``grad`` in each cell of Table 1, by the rule of
    :func:`implicit_bias_regime` applied to each component alone; the fractions sum to 1."""
    beta, rho, eps = _check_hyper(beta=beta, rho=rho, eps=eps)
    ratio = check_positive("ratio", ratio)
    g2 = torch.as_tensor(grad).detach().to(torch.float64).reshape(-1) ** 2
    if g2.numel() == 0:
        raise ValueError("grad must have at least one component")
    side = _eps_side(g2, eps=eps, ratio=ratio)
    return {_one_norm_cell(beta=beta, rho=rho): float((side == 1).double().mean()),
            BiasRegime.TWO_NORM_SQUARED_PENALISED: float((side == -1).double().mean()),
            BiasRegime.INTERMEDIATE: float((side == 0).double().mean())}


def implicit_bias_regime(grad, *, beta: float, rho: float, eps: float,
                         ratio: float = 100.0) -> BiasRegime:
    """The cell of Table 1 (:class:`~bea_lib.base.vocab.BiasRegime`) where the gradient is ``grad``.

    ε is "small" if ratio·ε ≤ min_i g_i² and "large" if ε ≥ ratio·max_i g_i²; otherwise the
    answer is ``INTERMEDIATE`` (the bias is in between the two extreme forms (2.4) and (2.7)).
    Returns ``ONE_NORM_PENALISED`` (ε small, β ≥ ρ), ``ONE_NORM_ANTI_PENALISED`` (ε small,
    ρ > β) or ``TWO_NORM_SQUARED_PENALISED`` (ε large, any β and ρ).
    """
    beta, rho, eps = _check_hyper(beta=beta, rho=rho, eps=eps)
    ratio = check_positive("ratio", ratio)
    g2 = torch.as_tensor(grad, dtype=torch.float64).reshape(-1) ** 2
    if g2.numel() == 0:
        raise ValueError("grad must have at least one component")
    return _regime(g2, beta=beta, rho=rho, eps=eps, ratio=ratio)


def path_share_by_regime(loss, iterates, *, beta: float, rho: float, eps: float,
                         ratio: float = 100.0) -> dict[BiasRegime, float]:
    """Fraction of the path length travelled in each cell of Table 1 (:func:`implicit_bias_regime`).

    Step n → n+1 is attributed to the regime at θ⁽ⁿ⁾. Tells which norm the bias acted on while
    the run moved (the end point of a converged run is always in the "ε large" cell: ∇E = 0).
    """
    if not callable(loss):
        raise ValueError("loss must be a callable E(θ)")
    beta, rho, eps = _check_hyper(beta=beta, rho=rho, eps=eps)
    ratio = check_positive("ratio", ratio)
    iterates = torch.as_tensor(iterates, dtype=torch.float64)
    if iterates.ndim != 2 or iterates.shape[0] < 1:
        raise ValueError(f"iterates must have shape (n + 1, p), got {tuple(iterates.shape)}")
    steps = (iterates[1:] - iterates[:-1]).norm(dim=1)
    if not torch.isfinite(steps).all():
        raise ValueError("iterates must be finite (a diverged run has no path length)")
    grads = vmap(grad(loss))(iterates[:-1])
    total = float(steps.sum())
    share: dict[BiasRegime, float] = {}
    for g, s in zip(grads, steps.tolist()):
        key = _regime(g.reshape(-1) ** 2, beta=beta, rho=rho, eps=eps, ratio=ratio)
        share[key] = share.get(key, 0.0) + s / total if total > 0 else 0.0
    return share


def bias_effect(loss, rhs, theta, *, h: float, norm) -> float:
    """The O(h) term's change of dN(∇E)/dt per unit h, over the rate along the order-0 flow,
    at the point ``theta``: ∇N(∇E)·(f(1) − f(0)) / (h |∇N(∇E)·f(0)|), where ``rhs(order)`` is
    the right-hand side (t, θ) ↦ f(order) of a modified flow at step size ``h`` (e.g.
    ``lambda o: bl.adam_rhs(loss, h=h, …, order=o)``) and ``norm`` maps a gradient to N
    (``lambda g: (g ** 2).sum()`` for ‖∇E‖²). Negative: the correction lowers N, a penalty on N
    in effect; positive: it works against N's decrease. Linear in h, so the ratio does not
    depend on the step size. NaN where the order-0 rate vanishes (a stationary point)."""
    h = check_positive("h", h)
    theta = _as_float64(theta).reshape(-1)
    dN = grad(lambda th: norm(grad(loss)(th)))(theta)
    f0, f1 = rhs(0)(0.0, theta), rhs(1)(0.0, theta)
    rate = abs(float(dN @ f0))
    return float(dN @ (f1 - f0)) / h / rate if rate > 0 else math.nan


def heavy_ball_limit(*, h: float, beta: float, eps: float) -> tuple[float, float]:
    """Example 2.3: Adam with ε ≫ g² approximates heavy-ball with step h(1-β)/√ε and momentum β.

    With ν̂ ≪ ε the update is -h m̂/√ε, and once the bias correction 1/(1-β^(n+1)) ≈ 1 has faded
    -h m/√ε = -(h(1-β)/√ε) Σ_k β^k g⁽ⁿ⁻ᵏ⁾, which is the heavy-ball displacement. Returns
    (h_hb, beta_hb).
    """
    h, beta = check_positive("h", h), check_unit_interval("beta", beta)
    eps = check_positive("eps", eps)
    return h * (1 - beta) / math.sqrt(eps), beta


def explicit_bias_family(loss, *, eps: float):
    """(θ, λ) ↦ E(θ) + λ‖∇E(θ)‖_{1,ε}: the bias of (2.3) written into the loss, λ free.

    For :func:`bea_lib.adam_runs` with ``loss_params`` = one λ per run (λ a multiple of
    :func:`implicit_bias_strength`).
    """
    if not callable(loss):
        raise ValueError("loss must be a callable E(θ)")
    eps = check_positive("eps", eps)
    grad_E = grad(loss)

    def regularised(theta: torch.Tensor, strength) -> torch.Tensor:
        return loss(theta) + strength * _one_norm_eps(grad_E(theta), eps=eps)

    return regularised


def explicit_bias_loss(loss, *, strength: float, eps: float):
    """θ ↦ E(θ) + strength·‖∇E(θ)‖_{1,ε} (one member of :func:`explicit_bias_family`)."""
    strength = float(strength)
    if not math.isfinite(strength):
        raise ValueError(f"strength must be a finite number, got {strength!r}")
    family = explicit_bias_family(loss, eps=eps)
    return lambda theta: family(theta, strength)
