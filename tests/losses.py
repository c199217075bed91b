"""Small smooth test losses with known structure, shared by the test modules."""
import torch


def random_smooth_loss(p: int, seed: int = 0):
    """E(θ) = Σ log cosh(Aθ - b) + 0.05‖θ‖⁴/p: smooth, non-quadratic, bounded curvature near 0."""
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(2 * p, p, generator=gen, dtype=torch.float64) / p**0.5
    b = torch.randn(2 * p, generator=gen, dtype=torch.float64)

    def loss(theta):
        return torch.log(torch.cosh(A @ theta - b)).sum() + 0.05 * (theta @ theta) ** 2 / p

    return loss


def bilinear_loss(x: float = 2.0, y: float = 1.5):
    """Section 5 of the paper: E(θ) = ½(y - θ₁θ₂x)²."""

    def loss(theta):
        return 0.5 * (y - theta[0] * theta[1] * x) ** 2

    return loss
