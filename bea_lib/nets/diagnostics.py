r"""Is the h-expansion in force along a network's training? Diagnostics at a point θ.

Symbols as in :mod:`bea_lib.studies.intervention`: g = ∇E(θ), H = ∇²E(θ), f₀, f₁ the O(1) and O(h)
terms of Adam's modified flow (2.2)–(2.3); D the denominator of Adam's step, √(ν̂ + ε).

- :func:`bias_ratio`: h‖f₁‖₂/‖f₀‖₂, the size of the bias term against the flow it corrects
  (one Hessian-vector product). The expansion is only a good description while it is small.
- :func:`bias_alignment`: the cosine between f₁ and ∇‖∇E‖_{1,ε}, whose sign says whether
  the bias term, where it acts now, lowers the perturbed one-norm (the paper's "penalises").
- :func:`bea_lib.core.norms.table1_cells`: the fractions of coordinates with g_j² ≫ ε, g_j² ≪ ε
  and in between, the cells of the paper's Table 1 (≫ means at least 100 times).
- :func:`bea_lib.core.autodiff.top_eigenvalue`: the largest eigenvalue of H, or of the
  preconditioned Hessian diag(1/D)·H (Lanczos on D^{-1/2} H D^{-1/2}), which Cohen et al. (2022)
  see rise to (2 + 2β)/((1 − β)h), the edge of stability of adaptive methods, under Adam.

:func:`flat_loss` makes a network and its data a loss E(θ) of the flat parameter vector.
:func:`diagnostics_at` takes them all at once, :func:`heavy_ball_diagnostics_at` heavy-ball's
(the loop of :mod:`bea_lib.nets.loop` calls them every ``diagnostics_every`` epochs).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..base.vocab import BiasRegime
from ..core.autodiff import top_eigenvalue
from ..core.expansion import bias_direction, heavy_ball_ratio
from ..core.norms import table1_cells
from ..core.validation import check_positive


def flat_forward(model: torch.nn.Module) -> tuple[Callable, torch.Tensor]:
    """(forward, θ⁽⁰⁾): forward(θ, x) the outputs of ``model`` with its parameters read from the
    flat vector θ (``torch.func.functional_call``), and its current parameters, flattened."""
    named = list(model.named_parameters())
    sizes = [p.numel() for _, p in named]
    theta0 = torch.cat([p.detach().reshape(-1) for _, p in named])

    def forward(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        params = {n: t.view(p.shape) for (n, p), t in zip(named, theta.split(sizes))}
        return functional_call(model, params, (x,))

    return forward, theta0


def flat_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
              ) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """(E, θ⁽⁰⁾): E(θ) the mean cross-entropy of ``model`` with flat parameters θ on the full
    batch (x, y), a loss in the sense of :mod:`bea_lib`, and the flat parameters θ⁽⁰⁾."""
    forward, theta0 = flat_forward(model)
    return (lambda theta: F.cross_entropy(forward(theta, x), y)), theta0


def bias_ratio(g: torch.Tensor, hvp_fn, *, h: float, beta: float, rho: float,
               eps: float) -> float:
    """h‖f₁‖₂ / ‖f₀‖₂ at the point where ``g`` = ∇E and ``hvp_fn`` = v ↦ Hv were taken."""
    h = check_positive("h", h)
    f0 = -g / torch.sqrt(g**2 + eps)  # (2.2) at order 0: the ε-sign flow
    f1 = bias_direction(g, hvp_fn, beta=beta, rho=rho, eps=eps)
    return float(h * torch.linalg.vector_norm(f1) / torch.linalg.vector_norm(f0))


def bias_alignment(g: torch.Tensor, hvp_fn, *, beta: float, rho: float, eps: float) -> float:
    """cos(∇‖∇E‖_{1,ε}, f₁): negative when the bias term lowers ‖∇E‖_{1,ε} (penalises it),
    positive when it raises it. Along θ̇ = f₀ + (1+κ)h f₁ the norm changes at the extra rate
    (1+κ)h⟨∇‖∇E‖_{1,ε}, f₁⟩, so this sign is what a larger κ does to the norm (two products)."""
    grad_norm_1eps = hvp_fn(g / torch.sqrt(g**2 + eps))
    f1 = bias_direction(g, hvp_fn, beta=beta, rho=rho, eps=eps)
    return float(grad_norm_1eps @ f1 / (torch.linalg.vector_norm(grad_norm_1eps)
                                         * torch.linalg.vector_norm(f1)))


def heavy_ball_diagnostics_at(g: torch.Tensor, hvp_fn, *, h: float, beta: float,
                              sharpness: bool = True) -> dict[str, float]:
    """Heavy-ball's (GD's at β = 0) diagnostics at one point, keyed by :data:`DIAGNOSTIC_COLUMNS`:
    its own expansion ratio :func:`bea_lib.core.expansion.heavy_ball_ratio` as ``bias_ratio``,
    the top eigenvalue of H as ``sharpness``; NaN in the columns that are Adam's alone."""
    nan = float("nan")
    return {**dict.fromkeys(("bias_alignment", "g2_above", "g2_below", "between",
                             "preconditioned_sharpness"), nan),
            "bias_ratio": heavy_ball_ratio(g, hvp_fn, h=h, beta=beta),
            "sharpness": top_eigenvalue(hvp_fn, g) if sharpness else nan}


def diagnostics_at(g: torch.Tensor, hvp_fn, *, h: float, beta: float, rho: float, eps: float,
                   denominator: torch.Tensor, sharpness: bool = True) -> dict[str, float]:
    """All diagnostics at one point, keyed by :data:`DIAGNOSTIC_COLUMNS`.

    ``denominator`` is D of Adam's next step (:func:`~bea_lib.core.optimizers.step_denominator`);
    without ``sharpness`` the two eigenvalues are NaN and the cost is one gradient and three
    Hessian-vector products.
    """
    D = denominator
    nan = float("nan")
    cells = table1_cells(g, beta=beta, rho=rho, eps=eps)
    return {"bias_ratio": bias_ratio(g, hvp_fn, h=h, beta=beta, rho=rho, eps=eps),
            "bias_alignment": bias_alignment(g, hvp_fn, beta=beta, rho=rho, eps=eps),
            # the history's columns: ε small (either one-norm cell), ε large, in between
            "g2_above": sum(v for cell, v in cells.items() if cell.eps_small),
            "g2_below": cells[BiasRegime.TWO_NORM_SQUARED_PENALISED],
            "between": cells[BiasRegime.INTERMEDIATE],
            "sharpness": top_eigenvalue(hvp_fn, g) if sharpness else nan,
            "preconditioned_sharpness": top_eigenvalue(hvp_fn, g, scale=D**-0.5)
            if sharpness else nan}
