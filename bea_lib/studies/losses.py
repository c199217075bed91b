"""Named test problems: losses E(θ) on a flat parameter vector θ, as closures.

``bilinear`` is the model of Section 5 of the paper; ``logcosh_regression`` is a smooth,
non-quadratic loss in any dimension with bounded curvature, for checks that should not rely on
the special structure of the bilinear model; ``tanh_network_regression`` is a small tanh network
on a regression task (p = width·(n_in + 2) + 1 parameters), a higher-dimensional smooth loss
with the structure of a neural network.
"""
from __future__ import annotations

import torch


def bilinear(x: float = 2.0, y: float = 1.5):
    """E(θ) = ½(y - θ₁θ₂x)², minimised on the hyperbola θ₁θ₂ = y/x (Section 5)."""

    def loss(theta: torch.Tensor) -> torch.Tensor:
        return 0.5 * (y - theta[0] * theta[1] * x) ** 2

    return loss


def logcosh_regression(p: int, seed: int = 0, dtype=torch.float64):
    """E(θ) = Σ_k log cosh((Aθ - b)_k) + 0.05‖θ‖⁴/p, A (2p × p), b Gaussian, fixed by ``seed``."""
    if p < 1:
        raise ValueError(f"p must be an integer >= 1, got {p!r}")
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(2 * p, p, generator=gen, dtype=dtype) / p**0.5
    b = torch.randn(2 * p, generator=gen, dtype=dtype)

    def loss(theta: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.cosh(A @ theta - b)).sum() + 0.05 * (theta @ theta) ** 2 / p

    return loss


def tanh_network_size(n_in: int, width: int) -> int:
    """The number of parameters p = width·(n_in + 2) + 1 of :func:`tanh_network_regression`."""
    return width * (n_in + 2) + 1


def tanh_network_regression(n_in: int = 3, width: int = 12, n_data: int = 40, seed: int = 0,
                            dtype=torch.float64):
    r"""A one-hidden-layer tanh network fitted by least squares, as a loss of a flat θ.

    f_θ(x) = w₂ᵀ tanh(W₁x + b₁) + b₂ with θ = (vec W₁, b₁, w₂, b₂) in that order (W₁ row-major,
    width × n_in), so p = :func:`tanh_network_size`. The data are n_data Gaussian inputs x_k and
    targets y_k = sin(uᵀx_k) + ½ cos(vᵀx_k) with fixed Gaussian directions u, v (a smooth target
    the network cannot fit exactly), all fixed by ``seed``; E(θ) = (1/2N) Σ_k (f_θ(x_k) - y_k)².
    The loss is smooth (C^∞) with bounded derivatives on bounded sets, as Theorem 3.1 assumes.
    """
    for name, value in (("n_in", n_in), ("width", width), ("n_data", n_data)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n_data, n_in, generator=gen, dtype=dtype)
    u, v = torch.randn(2, n_in, generator=gen, dtype=dtype)
    y = torch.sin(X @ u) + 0.5 * torch.cos(X @ v)
    p, i1, i2 = tanh_network_size(n_in, width), width * n_in, width * (n_in + 1)

    def loss(theta: torch.Tensor) -> torch.Tensor:
        if theta.shape != (p,):
            raise ValueError(f"theta must have shape ({p},), got {tuple(theta.shape)}")
        W1, b1 = theta[:i1].reshape(width, n_in), theta[i1:i2]
        w2, b2 = theta[i2:i2 + width], theta[-1]
        residual = torch.tanh(X @ W1.T + b1) @ w2 + b2 - y
        return 0.5 * (residual @ residual) / n_data

    return loss


def tanh_network_init(n_in: int = 3, width: int = 12, seed: int = 0, dtype=torch.float64
                      ) -> torch.Tensor:
    """A flat θ⁽⁰⁾ for :func:`tanh_network_regression`: Gaussian weights with variance 1/fan-in
    (LeCun initialisation), zero biases, fixed by ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    W1 = torch.randn(width, n_in, generator=gen, dtype=dtype) / n_in**0.5
    w2 = torch.randn(width, generator=gen, dtype=dtype) / width**0.5
    zeros = torch.zeros(width + 1, dtype=dtype)  # the biases b₁ and b₂
    return torch.cat([W1.reshape(-1), zeros[:width], w2, zeros[width:]])


class BatchLosses(tuple):
    """m mini-batch losses E_0, …, E_{m-1}: a tuple of callables (step n uses ``[n % m]``) and
    ``stacked(thetas)``, the m values E_b(thetas[b]) of an (m, p) tensor at once, through which
    the mini-batch flow takes its m gradients and 2m Hessian-vector products in one graph
    (:func:`bea_lib.core.autodiff.stacked_gradient_and_hvp_fn`), the same up to rounding."""

    def __new__(cls, losses, stacked):
        self = super().__new__(cls, losses)
        self.stacked = stacked
        return self


def least_squares_batches(m: int, n_data: int = 24, p: int = 5, seed: int = 0, dtype=torch.float64):
    """Least squares ½·mean (x_iᵀθ - y_i)² on Gaussian data, split into m batches by index mod m.

    Returns (batch_losses, full_loss, theta0): the m mini-batch losses E_b (a
    :class:`BatchLosses`, which can also evaluate them all at once), their full-batch
    counterpart E (the mean over all examples; equal to the mean of the E_b when m divides
    n_data) and a start θ⁽⁰⁾ = 3·N(0, I) far from the minimiser.
    """
    if not 1 <= m <= n_data:
        raise ValueError(f"m must be an integer in [1, n_data = {n_data}], got {m!r}")
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n_data, p, generator=gen, dtype=dtype)
    y = torch.randn(n_data, generator=gen, dtype=dtype)

    def batch(idx):
        X_b, y_b = X[idx], y[idx]  # selected once: the flows evaluate each loss thousands of times
        return lambda theta: 0.5 * ((X_b @ theta - y_b) ** 2).mean()

    # all batches at once: batch b's rows, padded with zero rows (residual 0) to a common length
    rows = -(-n_data // m)
    X_all = torch.zeros(m, rows, p, dtype=dtype)
    y_all = torch.zeros(m, rows, dtype=dtype)
    counts = torch.empty(m, dtype=dtype)
    for b in range(m):
        k = len(range(b, n_data, m))
        X_all[b, :k], y_all[b, :k], counts[b] = X[b::m], y[b::m], k

    def stacked(thetas):  # (m, p) -> the m batch losses, E_b at thetas[b]
        residuals = (X_all @ thetas[:, :, None])[:, :, 0] - y_all  # x_iᵀθ_b for batch b's rows
        return 0.5 * (residuals**2).sum(1) / counts

    batches = BatchLosses([batch(torch.arange(b, n_data, m)) for b in range(m)], stacked)
    return batches, batch(torch.arange(n_data)), 3 * torch.randn(p, generator=gen, dtype=dtype)
