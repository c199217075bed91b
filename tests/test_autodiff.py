"""Gradients and Hessian-vector products against torch.autograd.functional on a small network's loss."""
import torch
from torch.autograd.functional import hessian

import bea_lib as bl


def small_network_loss():
    """Two-layer tanh network on fixed data, as a function of the flat parameter vector (p = 4·6 + 6 + 6 + 1 = 37)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(20, generator=gen, dtype=torch.float64)

    def loss(theta):
        w1, b1, w2, b2 = theta[:24].reshape(6, 4), theta[24:30], theta[30:36], theta[36]
        return ((torch.tanh(x @ w1.T + b1) @ w2 + b2 - y) ** 2).mean()

    return loss, 37


def test_gradient_equals_autograd():
    loss, p = small_network_loss()
    theta = torch.randn(p)
    ref = torch.autograd.functional.jacobian(loss, theta)
    torch.testing.assert_close(bl.gradient(loss, theta), ref, rtol=0, atol=1e-14)  # same math, rounding


def test_hvp_equals_full_hessian_times_vector():
    loss, p = small_network_loss()
    theta, v = torch.randn(p), torch.randn(p)
    ref = hessian(loss, theta) @ v
    # forward-over-reverse vs reverse-over-reverse: different summation order, float64 rounding
    torch.testing.assert_close(bl.hvp(loss, theta, v), ref, rtol=1e-12, atol=1e-13)
    g, hv = bl.gradient_and_hvp(loss, theta, v)
    torch.testing.assert_close(g, bl.gradient(loss, theta), rtol=0, atol=1e-14)  # rounding
    torch.testing.assert_close(hv, ref, rtol=1e-12, atol=1e-13)  # as above


def test_gradient_and_hvp_fn_equals_full_hessian_times_vectors():
    loss, p = small_network_loss()
    theta, v, w = torch.randn(p), torch.randn(p), torch.randn(p)
    Hm = hessian(loss, theta)
    g, hvp_fn = bl.gradient_and_hvp_fn(loss, theta)
    torch.testing.assert_close(g, bl.gradient(loss, theta), rtol=0, atol=1e-14)  # rounding
    # the pullback may be called again with another vector; reverse-over-reverse rounding
    torch.testing.assert_close(hvp_fn(v), Hm @ v, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(hvp_fn(w), Hm @ w, rtol=1e-12, atol=1e-13)
