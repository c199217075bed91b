"""Gradients and Hessian-vector products of a loss E: R^p -> R, with torch.func.

A Hessian-vector product is computed forward-over-reverse, ``jvp(grad(E), (theta,), (v,))``: it
costs a small constant times one gradient and never forms the p x p Hessian.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import grad as _grad
from torch.func import jvp

Loss = Callable[[torch.Tensor], torch.Tensor]


def gradient(loss: Loss, theta: torch.Tensor) -> torch.Tensor:
    """∇E(θ)."""
    return _grad(loss)(theta)


def hvp(loss: Loss, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """∇²E(θ) v, forward-over-reverse."""
    return jvp(_grad(loss), (theta,), (v,))[1]


def gradient_and_hvp(loss: Loss, theta: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(∇E(θ), ∇²E(θ) v) from one forward-over-reverse pass; the gradient is the primal output."""
    return jvp(_grad(loss), (theta,), (v,))
