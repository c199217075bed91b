"""Gradients and Hessian-vector products of a loss E: R^p -> R, with torch.func.

No function here forms the p x p Hessian. ``hvp`` is forward-over-reverse,
``jvp(grad(E), (theta,), (v,))``, for a vector known in advance. When the vector depends on the
gradient itself (the modified flows need H·f(∇E)), ``gradient_and_hvp_fn`` takes one reverse pass
that keeps its graph and returns ∇E with a function v ↦ Hv; since H is symmetric, the
vector-Jacobian product of ∇E is the Hessian-vector product (reverse-over-reverse). On CPU,
gradient plus one product costs about 2.5 gradients this way against 4-5.5 forward-over-reverse
(``benchmarks/bench_flows.py``).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import grad as _grad
from torch.func import jvp, vjp

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


def gradient_and_hvp_fn(loss: Loss, theta: torch.Tensor
                        ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """(∇E(θ), v ↦ ∇²E(θ) v): one reverse pass, then one more per product (reverse-over-reverse)."""
    g, pullback = vjp(_grad(loss), theta)
    return g, lambda v: pullback(v)[0]
