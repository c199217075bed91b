r"""Is the h-expansion in force along a network's training? Diagnostics at a point θ.

Symbols as in :mod:`bea_lib.intervention`: g = ∇E(θ), H = ∇²E(θ), f₀ and f₁ the O(1) and O(h)
terms of Adam's modified flow (2.2)–(2.3); D the denominator of Adam's step, √(ν̂ + ε).

- :func:`bias_ratio`: h‖f₁‖₂/‖f₀‖₂, the size of the bias term against the flow it corrects
  (one Hessian-vector product). The expansion is only a good description while it is small.
- :func:`bias_alignment`: the cosine between f₁ and ∇‖∇E‖_{1,ε}, whose sign says whether
  the bias term, where it acts now, lowers the perturbed one-norm (the paper's "penalises").
- :func:`table1_cells`: the fractions of coordinates with g_j² ≫ ε, g_j² ≪ ε and in between,
  the cells of the paper's Table 1, with the ratio convention of
  :func:`bea_lib.norms.implicit_bias_regime` (≫ means at least ``ratio`` times).
- :func:`top_eigenvalue`: the largest eigenvalue of H, or of the preconditioned Hessian
  diag(1/D)·H that Adam's step sees, by Lanczos (scipy's ``eigsh``) on Hessian-vector products.
  diag(1/D)·H is not symmetric; it is similar to the symmetric D^{-1/2} H D^{-1/2}, which has
  the same eigenvalues, and that is the matrix handed to Lanczos. Cohen et al. (2022) find the
  preconditioned sharpness of full-batch Adam rising to, and hovering at,
  :func:`eos_threshold` = (2 + 2β)/((1 − β)h), the edge of stability of adaptive methods.

:func:`flat_loss` turns a network and its data into a loss E(θ) of the flat parameter vector,
so the same functions serve the small problems of the theory chapters and the networks;
:func:`diagnostics_at` takes them all at once, :func:`network_diagnostics` for a network
trained by :class:`bea_lib.Adam`.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, eigsh
from torch.func import functional_call

from ..autodiff import gradient_and_hvp_fn
from ..intervention import bias_direction
from ..validation import check_positive, check_unit_interval
from .history import DIAGNOSTIC_COLUMNS


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


def table1_cells(g: torch.Tensor, *, eps: float, ratio: float = 100.0) -> dict[str, float]:
    """Fractions of coordinates with ratio·ε ≤ g_j² ("g2_above": ε small for them), with
    ε ≥ ratio·g_j² ("g2_below": ε large) and in between ("between"); they sum to 1."""
    eps, ratio = check_positive("eps", eps), check_positive("ratio", ratio)
    g2 = g.detach().double().reshape(-1) ** 2
    above, below = ratio * eps <= g2, eps >= ratio * g2
    return {"g2_above": float(above.double().mean()), "g2_below": float(below.double().mean()),
            "between": float((~above & ~below).double().mean())}


def top_eigenvalue(hvp_fn, like: torch.Tensor, *, scale: torch.Tensor | None = None,
                   tol: float = 1e-3, maxiter: int = 300, seed: int = 0) -> float:
    """The largest (algebraic) eigenvalue of S H S, S = diag(``scale``) (S = I if None).

    With ``scale`` = D^{-1/2} this is the top eigenvalue of diag(1/D)·H (similar matrices).
    Lanczos on products v ↦ S H S v; ``like`` is a vector of θ's size and dtype (θ or g), as
    ``hvp_fn`` takes; ``tol`` is eigsh's relative accuracy of the eigenvalue, and the start
    vector is fixed by ``seed`` so that a run is reproducible.
    """
    p, dtype = like.numel(), like.dtype
    if scale is not None and scale.shape != (p,):
        raise ValueError(f"scale must have shape ({p},), got {tuple(scale.shape)}")

    def matvec(v: np.ndarray) -> np.ndarray:
        v = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64).reshape(-1))
        v = v if scale is None else scale.double() * v
        with torch.no_grad():
            Hv = hvp_fn(v.to(dtype)).double()
        return (Hv if scale is None else scale.double() * Hv).numpy()

    v0 = np.random.default_rng(seed).standard_normal(p)
    op = LinearOperator((p, p), matvec=matvec, dtype=np.float64)
    return float(eigsh(op, k=1, which="LA", v0=v0, tol=tol, maxiter=maxiter,
                       return_eigenvectors=False)[0])


def eos_threshold(*, h: float, beta: float) -> float:
    """(2 + 2β)/((1 − β)h): the preconditioned sharpness at the edge of stability of Adam
    (Cohen et al. 2022; 38/h for β = 0.9)."""
    h, beta = check_positive("h", h), check_unit_interval("beta", beta)
    return (2 + 2 * beta) / ((1 - beta) * h)




def step_denominator(g: torch.Tensor, v: torch.Tensor, n: int, *, rho: float,
                     eps: float) -> torch.Tensor:
    """D = √(ν̂⁽ⁿ⁺¹⁾ + ε), the denominator of the step Adam takes from θ⁽ⁿ⁾ with gradient g,
    from its second moment ν⁽ⁿ⁾ = ``v`` after n steps ((2.1); √(g² + ε) at n = 0)."""
    return torch.sqrt((rho * v + (1 - rho) * g**2) / (1 - rho ** (n + 1)) + eps)


def diagnostics_at(g: torch.Tensor, hvp_fn, *, h: float, beta: float, rho: float, eps: float,
                   denominator: torch.Tensor, sharpness: bool = True) -> dict[str, float]:
    """All diagnostics at one point, keyed by :data:`DIAGNOSTIC_COLUMNS`.

    ``denominator`` is the D of Adam's next step (:func:`step_denominator`); without
    ``sharpness`` the two eigenvalues are NaN and the cost is one gradient and three
    Hessian-vector products.
    """
    D = denominator
    nan = float("nan")
    return {"bias_ratio": bias_ratio(g, hvp_fn, h=h, beta=beta, rho=rho, eps=eps),
            "bias_alignment": bias_alignment(g, hvp_fn, beta=beta, rho=rho, eps=eps),
            **table1_cells(g, eps=eps),
            "sharpness": top_eigenvalue(hvp_fn, g) if sharpness else nan,
            "preconditioned_sharpness": top_eigenvalue(hvp_fn, g, scale=D**-0.5)
            if sharpness else nan}


def network_diagnostics(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer,
                        *, sharpness: bool = True) -> dict[str, float]:
    """:func:`diagnostics_at` for a network trained by :class:`bea_lib.Adam` (one parameter
    group, ε inside): h, β, ρ, ε and ν̂ are read from ``optimizer``; E is the mean
    cross-entropy on the full batch (x, y), taken in one forward pass."""
    group = optimizer.param_groups[0]
    h, beta, rho, eps = group["lr"], group["beta"], group["rho"], group["eps"]
    E, theta = flat_loss(model, x, y)
    g, hvp_fn = gradient_and_hvp_fn(E, theta)
    states = [optimizer.state[p] for p in model.parameters()]
    n = states[0]["n"] if states[0] else 0
    v = torch.cat([s["v"].reshape(-1) for s in states]) if n else torch.zeros_like(g)
    D = step_denominator(g, v, n, rho=rho, eps=eps)
    return diagnostics_at(g, hvp_fn, h=h, beta=beta, rho=rho, eps=eps, denominator=D,
                          sharpness=sharpness)


def diagnostics_row(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer, *,
                    n: int, every: int) -> dict[str, float]:
    """The :data:`DIAGNOSTIC_COLUMNS` of history row n: :func:`network_diagnostics` every
    ``every`` epochs (0: never), NaN on the other rows, as the test columns between evaluations.
    """
    if every and n % every == 0:
        return network_diagnostics(model, x, y, optimizer)
    return dict.fromkeys(DIAGNOSTIC_COLUMNS, float("nan"))
