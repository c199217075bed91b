"""Gradients and Hessian-vector products of a loss E: R^p -> R.

No function here forms the p x p Hessian.

- Everything uses plain reverse mode (``torch.autograd.grad``): for the small losses of the
  theory chapters it is the cheapest path, about half the cost of ``torch.func.grad`` per call,
  and it does not load ``torch._dynamo``, which ``torch.func.grad``, ``vjp`` and ``jvp`` import on
  their first call (seconds, once per process; ``benchmarks/bench_steps.py``). Called inside a
  ``torch.func`` transform (``vmap(bl.gradient)``, ``torch.func.grad`` of a function that calls
  it) the functions use ``torch.func`` instead, so they compose as before; ``gradient`` called on
  a θ that is part of an autograd graph keeps the graph, so ``gradient`` of a function of
  ``gradient`` is a second derivative.
- Hessian-vector products are reverse-over-reverse: one reverse pass that keeps its graph
  returns ∇E with a function v ↦ Hv (``gradient_and_hvp_fn``); since H is symmetric, the
  vector-Jacobian product of ∇E is the Hessian-vector product. The modified flows need it, as
  their vector depends on the gradient itself (H·f(∇E)). On CPU, gradient plus one product costs
  about 2.5 gradients this way against 4-5.5 forward-over-reverse (``benchmarks/bench_flows.py``).
  Inside a ``torch.func`` transform ``hvp`` is forward-over-reverse, ``jvp(grad(E), (θ,), (v,))``.
- ``batch_gradient`` gives ∇E at each row of an (R, p) tensor from one vectorised forward pass
  (``torch.func.vmap``, which does not load ``torch._dynamo``) and one reverse pass: the R runs of
  :func:`bea_lib.adam_runs` and of an order study share each step.
- ``stacked_gradient_and_hvp_fn`` does the same job as ``gradient_and_hvp_fn`` for m losses at
  one θ (the m batches of the mini-batch flow): one reverse pass gives all m gradients, and one
  more gives the m products H_b v_b for m vectors at once, where a loop over the losses would
  take m and m passes. For tiny losses a pass costs mostly its fixed overhead, so this is about
  m times cheaper (``benchmarks/bench_minibatch.py``).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

Loss = Callable[[torch.Tensor], torch.Tensor]


def _inside_transform(theta: torch.Tensor) -> bool:
    """Whether θ is a ``torch.func`` wrapper (we are inside vmap, grad, jvp, ...)."""
    return torch._C._functorch.is_functorch_wrapped_tensor(theta)


def _scalar(value: torch.Tensor) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.ndim != 0:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"loss must return a scalar tensor, got {shape}")
    return value


def _reverse(value: torch.Tensor, theta: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """∂value/∂θ by reverse mode; zeros where value does not depend on θ."""
    if not value.requires_grad:
        return torch.zeros_like(theta)
    return torch.autograd.grad(value, theta, create_graph=create_graph, materialize_grads=True)[0]


def gradient(loss: Loss, theta: torch.Tensor) -> torch.Tensor:
    """∇E(θ)."""
    if _inside_transform(theta):
        from torch.func import grad
        return grad(loss)(theta)
    if theta.requires_grad and torch.is_grad_enabled():  # part of an outer graph: keep it
        return _reverse(_scalar(loss(theta)), theta, create_graph=True)
    with torch.enable_grad():
        theta = theta.detach().requires_grad_(True)
        return _reverse(_scalar(loss(theta)), theta, create_graph=False)


def batch_gradient(loss: Callable, thetas: torch.Tensor, *args) -> torch.Tensor:
    """∇E at each row of ``thetas`` (R, p); ``args`` are batched along their first axis too,
    ``loss(thetas[r], *(a[r] for a in args))`` being run r's loss."""
    from torch.func import vmap
    with torch.enable_grad():
        thetas = thetas.detach().requires_grad_(True)
        values = vmap(loss)(thetas, *args)
        if values.shape != thetas.shape[:1]:
            raise ValueError(f"loss must return a scalar, got shape {tuple(values.shape[1:])}")
        # the runs are independent, so the gradient of the sum is the gradient of each run
        return _reverse(values.sum(), thetas, create_graph=False)


def hvp(loss: Loss, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """∇²E(θ) v."""
    return gradient_and_hvp(loss, theta, v)[1]


def gradient_and_hvp(loss: Loss, theta: torch.Tensor, v: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(∇E(θ), ∇²E(θ) v): reverse-over-reverse; forward-over-reverse inside torch.func."""
    if _inside_transform(theta) or _inside_transform(v):
        from torch.func import grad, jvp
        return jvp(grad(loss), (theta,), (v,))
    g, hvp_fn = gradient_and_hvp_fn(loss, theta)
    return g, hvp_fn(v)


def gradient_and_hvp_fn(loss: Loss, theta: torch.Tensor
                        ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """(∇E(θ), v ↦ ∇²E(θ) v): one reverse pass, then one more per product (reverse-over-reverse)."""
    if _inside_transform(theta):
        from torch.func import grad, vjp
        g, pullback = vjp(grad(loss), theta)
        return g, lambda v: pullback(v)[0]
    with torch.enable_grad():
        x = theta.detach().requires_grad_(True)
        g = _reverse(_scalar(loss(x)), x, create_graph=True)

    def hvp_fn(v: torch.Tensor) -> torch.Tensor:
        # (Hv)_j = Σ_i v_i ∂g_i/∂θ_j, kept for further products (retain_graph)
        return _reverse_vjp(g, x, v)

    return g.detach(), hvp_fn


def _reverse_vjp(g: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """vᵀ ∂g/∂x through the graph kept by :func:`gradient_and_hvp_fn`; zero if g is constant in x.

    Taken as the gradient of the scalar vᵀg, the same numbers as passing v as ``grad_outputs``,
    which would make torch import sympy on the first call (seconds).
    """
    if not g.requires_grad:  # E is linear in θ: H = 0
        return torch.zeros_like(x)
    with torch.enable_grad():
        value = (g * v).sum()
    return torch.autograd.grad(value, x, retain_graph=True, materialize_grads=True)[0]


def stacked_gradient(losses, theta: torch.Tensor) -> torch.Tensor:
    """The rows ∇E_b(θ), b = 0, …, m-1, of an (m, p) tensor, for m losses at one θ."""
    if _inside_transform(theta):
        return torch.stack([gradient(E, theta) for E in losses])
    return _StackedLeaves(losses, theta, create_graph=False).G


def stacked_gradient_and_hvp_fn(losses, theta: torch.Tensor
                                ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """(G, V ↦ rows ∇²E_b(θ) V_b): the m gradients at one θ as an (m, p) tensor G, and the m
    Hessian-vector products of an (m, p) tensor V, each loss with its own row.

    Each loss gets its own leaf copy x_b of θ, so that one reverse pass of Σ_b E_b(x_b) gives
    every ∇E_b as its own gradient, and one reverse pass of Σ_b V_b·∇E_b(x_b) every H_b V_b
    (reverse-over-reverse, as :func:`gradient_and_hvp_fn`, whose numbers these are). Losses
    that can be evaluated together (:class:`bea_lib.studies.losses.BatchLosses`) share one leaf X of
    shape (m, p), row b for E_b, and one graph: its size, and so the cost of the passes, then
    does not grow with m.
    """
    if _inside_transform(theta):
        g, hvp_fns = zip(*(gradient_and_hvp_fn(E, theta) for E in losses))
        return torch.stack(g), lambda V: torch.stack([f(v) for f, v in zip(hvp_fns, V)])
    leaves = _StackedLeaves(losses, theta, create_graph=True)
    return leaves.G.detach(), leaves.hvps


class _StackedLeaves:
    """The leaves of m losses at one θ and the rows G of their gradients (one reverse pass).

    The leaves are one (m, p) tensor X, row b for E_b, if ``losses`` has a vectorised
    ``stacked`` form, else m copies x_b of θ; :meth:`hvps` is one more pass through G's graph.
    """

    def __init__(self, losses, theta: torch.Tensor, create_graph: bool):
        m, stacked = len(losses), getattr(losses, "stacked", None)
        with torch.enable_grad():
            if stacked is not None:
                self.leaves = [theta.detach().expand(m, -1).clone().requires_grad_(True)]
                values = stacked(self.leaves[0])
                if not isinstance(values, torch.Tensor) or values.shape != (m,):
                    shape = getattr(values, "shape", type(values).__name__)
                    raise ValueError(f"losses.stacked must return the {m} batch losses as a "
                                     f"tensor of shape ({m},), got {shape}")
            else:
                self.leaves = [theta.detach().requires_grad_(True) for _ in losses]
                values = torch.stack([_scalar(E(x)) for E, x in zip(losses, self.leaves)])
            self.G = torch.zeros(m, theta.numel(), dtype=theta.dtype, device=theta.device)
            if values.requires_grad:  # else every E_b is constant in θ: G = 0
                self.G = self._rows(torch.autograd.grad(values.sum(), self.leaves,
                                                        create_graph=create_graph,
                                                        materialize_grads=True))

    def _rows(self, grads: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The (m, p) rows from the gradients with respect to the leaves."""
        return grads[0] if self.leaves[0].ndim == 2 else torch.stack(grads)

    def hvps(self, V: torch.Tensor) -> torch.Tensor:
        """The rows H_b V_b: the gradient of Σ_b V_b·∇E_b with respect to the leaves."""
        if not self.G.requires_grad:  # every E_b is linear in θ: H_b = 0
            return torch.zeros_like(self.G)
        with torch.enable_grad():
            value = (self.G * V).sum()
        return self._rows(torch.autograd.grad(value, self.leaves, retain_graph=True,
                                              materialize_grads=True))


def top_eigenvalue(hvp_fn: Callable[[torch.Tensor], torch.Tensor], like: torch.Tensor, *,
                   scale: torch.Tensor | None = None, which: str = "LA", tol: float = 1e-3,
                   maxiter: int = 300, seed: int = 0) -> float:
    """The largest eigenvalue of S H S (``which="LA"``; ``"LM"``: the one largest in absolute
    value, with its sign), S = diag(``scale``) (S = I if None), H the
    Hessian behind ``hvp_fn`` (v ↦ Hv): Lanczos (scipy's ``eigsh``) on Hessian-vector products.

    With ``scale`` = D^{-1/2} this is the top eigenvalue of diag(1/D)·H, which is not symmetric
    but similar to D^{-1/2} H D^{-1/2}. ``like`` is a vector of θ's size and dtype (θ or g), as
    ``hvp_fn`` takes; ``tol`` is eigsh's relative accuracy of the eigenvalue, and the start
    vector is fixed by ``seed`` so that a run is reproducible.
    """
    import numpy as np
    from scipy.sparse.linalg import LinearOperator, eigsh

    p, dtype = like.numel(), like.dtype
    if which not in ("LA", "LM"):
        raise ValueError(f"which must be 'LA' or 'LM', got {which!r}")
    if scale is not None and scale.shape != (p,):
        raise ValueError(f"scale must have shape ({p},), got {tuple(scale.shape)}")

    def matvec(v: np.ndarray) -> np.ndarray:
        v = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64).reshape(-1))
        v = v if scale is None else scale.double().cpu() * v
        with torch.no_grad():
            Hv = hvp_fn(v.to(like.device, dtype)).double().cpu()
        return (Hv if scale is None else scale.double().cpu() * Hv).numpy()

    v0 = np.random.default_rng(seed).standard_normal(p)
    op = LinearOperator((p, p), matvec=matvec, dtype=np.float64)
    return float(eigsh(op, k=1, which=which, v0=v0, tol=tol, maxiter=maxiter,
                       return_eigenvectors=False)[0])
