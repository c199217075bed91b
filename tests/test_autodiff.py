"""Gradients and Hessian-vector products against torch.autograd.functional on a network's loss."""
import subprocess
import sys

import pytest
import torch
from torch.autograd.functional import hessian

import bea_lib as bl


def small_network_loss():
    """Two-layer tanh network on fixed data, a function of the flat θ (p = 4·6 + 6 + 6 + 1 = 37)."""
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
    # same math, rounding
    torch.testing.assert_close(bl.gradient(loss, theta), ref, rtol=0, atol=1e-14)


def test_hvp_equals_full_hessian_times_vector():
    loss, p = small_network_loss()
    theta, v = torch.randn(p), torch.randn(p)
    ref = hessian(loss, theta) @ v
    # one product against a full Hessian (autograd.functional): float64 rounding
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


def test_gradient_composes_with_torch_func_and_with_itself():
    """Inside vmap or torch.func.grad, and nested in itself, bl.gradient still differentiates."""
    loss, p = small_network_loss()
    theta = torch.randn(p)
    Hm = hessian(loss, theta)
    rows = torch.randn(3, p)
    batched = torch.func.vmap(lambda th: bl.gradient(loss, th))(rows)
    torch.testing.assert_close(batched, torch.stack([bl.gradient(loss, r) for r in rows]),
                               rtol=0, atol=1e-14)  # rounding
    # ∇(½‖∇E‖²) = H ∇E, by nesting and through torch.func.grad
    half_sq = lambda th: 0.5 * (bl.gradient(loss, th) ** 2).sum()  # noqa: E731
    want = Hm @ bl.gradient(loss, theta)
    # rounding
    torch.testing.assert_close(bl.gradient(half_sq, theta), want, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(torch.func.grad(half_sq)(theta), want, rtol=1e-12, atol=1e-13)
    # inside vmap, hvp is forward-over-reverse: the same products up to rounding
    vs = torch.randn(3, p)
    torch.testing.assert_close(torch.func.vmap(lambda v: bl.hvp(loss, theta, v))(vs), vs @ Hm,
                               rtol=1e-12, atol=1e-13)


def test_batch_gradient_equals_gradient_row_by_row():
    from bea_lib.core.autodiff import batch_gradient
    loss, p = small_network_loss()
    rows = torch.randn(4, p)
    torch.testing.assert_close(batch_gradient(loss, rows),
                               torch.stack([bl.gradient(loss, r) for r in rows]),
                               rtol=0, atol=1e-14)  # vmap batches the same operations: rounding
    family = lambda th, a: a * loss(th)  # noqa: E731
    scales = torch.tensor([1.0, 2.0, 0.5, -1.0])
    torch.testing.assert_close(batch_gradient(family, rows, scales),
                               scales[:, None] * batch_gradient(loss, rows), rtol=1e-14, atol=1e-14)


def test_constant_and_linear_losses_and_non_scalar_losses():
    theta = torch.randn(3)
    assert torch.equal(bl.gradient(lambda th: torch.tensor(2.0), theta), torch.zeros(3))
    g, hvp_fn = bl.gradient_and_hvp_fn(lambda th: th.sum(), theta)
    assert torch.equal(g, torch.ones(3)) and torch.equal(hvp_fn(theta), torch.zeros(3))
    with pytest.raises(ValueError, match="loss must return a scalar tensor"):
        bl.gradient(lambda th: th**2, theta)


def test_gradient_path_does_not_load_dynamo():
    """bl.adam, bl.adam_flow and bl.hvp use plain reverse mode: a fresh process does not import
    torch._dynamo, whose first import (through torch.func.grad) costs seconds, nor sympy (which
    torch.autograd.grad imports when given grad_outputs)."""
    code = ("import sys, torch, bea_lib as bl\n"
            "loss, th = bl.losses.bilinear(), torch.tensor([2.8, 3.5], dtype=torch.float64)\n"
            "bl.adam(loss, th, 3, h=1e-3, beta=0.9, rho=0.999, eps=1e-8)\n"
            "bl.adam_flow(loss, th, 3, h=1e-3, beta=0.9, rho=0.999, eps=1e-8)\n"
            "bl.hvp(loss, th, th)\n"
            "print('torch._dynamo' in sys.modules, 'sympy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_stacked_gradients_and_products_equal_the_losses_one_by_one():
    """m losses at one θ, in one reverse pass for the gradients and one for the m products; a
    loss linear in θ (H = 0) and a constant one (g = 0) among them."""
    from bea_lib.core.autodiff import stacked_gradient, stacked_gradient_and_hvp_fn
    loss, p = small_network_loss()
    a = torch.randn(p)
    losses = [loss, lambda th: 0.5 * loss(2 * th), lambda th: a @ th, lambda th: torch.tensor(1.0)]
    theta, V = torch.randn(p), torch.randn(len(losses), p)
    G, hvps = stacked_gradient_and_hvp_fn(losses, theta)
    for b, E in enumerate(losses):
        g, hvp_fn = bl.gradient_and_hvp_fn(E, theta)
        torch.testing.assert_close(G[b], g, rtol=0, atol=1e-14)  # the same passes: rounding
        torch.testing.assert_close(hvps(V)[b], hvp_fn(V[b]), rtol=0, atol=1e-14)  # as above
    torch.testing.assert_close(stacked_gradient(losses, theta), G, rtol=0, atol=0)
    linear_only = stacked_gradient_and_hvp_fn(losses[2:], theta)[1]
    assert torch.equal(linear_only(V[2:]), torch.zeros(2, p))
    # inside a torch.func transform the losses are taken one by one, with the same numbers
    batched = torch.func.vmap(lambda th: stacked_gradient(losses[:2], th))(torch.stack([theta] * 2))
    torch.testing.assert_close(batched[1], G[:2], rtol=0, atol=1e-14)  # rounding


@pytest.mark.parametrize("m", [3, 5])
def test_losses_evaluated_together_give_the_same_gradients_and_products(m):
    """BatchLosses (one leaf of shape (m, p), one graph) against the same losses one by one."""
    from bea_lib.core.autodiff import stacked_gradient, stacked_gradient_and_hvp_fn
    losses, _, theta = bl.losses.least_squares_batches(m)
    V = torch.randn(m, theta.numel())
    G, hvps = stacked_gradient_and_hvp_fn(losses, theta)
    G_ref, hvps_ref = stacked_gradient_and_hvp_fn(list(losses), theta)
    torch.testing.assert_close(G, G_ref, rtol=1e-13, atol=1e-14)  # other summation order
    torch.testing.assert_close(hvps(V), hvps_ref(V), rtol=1e-13, atol=1e-14)  # as above
    torch.testing.assert_close(stacked_gradient(losses, theta), G, rtol=0, atol=0)
    bad = bl.losses.BatchLosses(list(losses), lambda X: X.sum())
    with pytest.raises(ValueError, match=rf"must return the {m} batch losses"):
        stacked_gradient(bad, theta)
