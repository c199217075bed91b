"""Named test problems: losses E(θ) on a flat parameter vector θ, as closures.

``bilinear`` is the model of Section 5 of the paper; ``logcosh_regression`` is a smooth,
non-quadratic loss in any dimension with bounded curvature, for checks that should not rely on
the special structure of the bilinear model.
"""
from __future__ import annotations

import torch


def bilinear(x: float = 2.0, y: float = 1.5):
    """E(θ) = ½(y - θ₁θ₂x)², minimised on the hyperbola θ₁θ₂ = y/x (Section 5)."""

    def loss(theta: torch.Tensor) -> torch.Tensor:
        return 0.5 * (y - theta[0] * theta[1] * x) ** 2

    return loss


def logcosh_regression(p: int, seed: int = 0, dtype=torch.float64):
    """E(θ) = Σ_k log cosh((Aθ - b)_k) + 0.05‖θ‖⁴/p with A (2p × p) and b Gaussian, fixed by ``seed``."""
    if p < 1:
        raise ValueError(f"p must be an integer >= 1, got {p!r}")
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(2 * p, p, generator=gen, dtype=dtype) / p**0.5
    b = torch.randn(2 * p, generator=gen, dtype=dtype)

    def loss(theta: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.cosh(A @ theta - b)).sum() + 0.05 * (theta @ theta) ** 2 / p

    return loss
