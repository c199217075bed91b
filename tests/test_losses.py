"""The tanh-network regression loss against an independent torch.nn evaluation."""
import pytest
import torch

import bea_lib as bl
from bea_lib.studies.losses import tanh_network_init, tanh_network_regression, tanh_network_size


def test_tanh_network_matches_torch_nn_module():
    n_in, width, n_data, seed = 3, 5, 7, 2
    loss = tanh_network_regression(n_in, width, n_data, seed)
    theta = torch.randn(tanh_network_size(n_in, width))
    net = torch.nn.Sequential(torch.nn.Linear(n_in, width), torch.nn.Tanh(),
                              torch.nn.Linear(width, 1)).double()
    i1, i2 = width * n_in, width * (n_in + 1)
    with torch.no_grad():  # θ = (vec W₁ row-major, b₁, w₂, b₂)
        net[0].weight.copy_(theta[:i1].reshape(width, n_in))
        net[0].bias.copy_(theta[i1:i2])
        net[2].weight.copy_(theta[i2:i2 + width][None])
        net[2].bias.copy_(theta[-1:])
    gen = torch.Generator().manual_seed(seed)  # the data, drawn as the loss draws them
    X = torch.randn(n_data, n_in, generator=gen, dtype=torch.float64)
    u, v = torch.randn(2, n_in, generator=gen, dtype=torch.float64)
    y = torch.sin(X @ u) + 0.5 * torch.cos(X @ v)
    want = 0.5 * ((net(X).squeeze(1) - y) ** 2).mean()
    torch.testing.assert_close(loss(theta), want, rtol=1e-13, atol=0)  # same sums, other order


def test_tanh_network_size_init_and_gradient():
    assert tanh_network_size(3, 12) == 61  # the network of the book: p >= 50
    theta0 = tanh_network_init(3, 12, seed=0)
    assert theta0.shape == (61,) and theta0.dtype == torch.float64
    torch.testing.assert_close(theta0, tanh_network_init(3, 12, seed=0), rtol=0, atol=0)  # seeded
    g = bl.gradient(tanh_network_regression(3, 12), theta0)
    assert torch.isfinite(g).all() and g.abs().max() > 0


def test_tanh_network_rejects_bad_arguments():
    with pytest.raises(ValueError, match="width"):
        tanh_network_regression(3, 0)
    with pytest.raises(ValueError, match="theta"):
        tanh_network_regression(3, 4)(torch.zeros(5))


@pytest.mark.parametrize("m", [1, 3, 5, 24])
def test_least_squares_batches_evaluated_together_equal_one_by_one(m):
    """BatchLosses.stacked: row b of the (m, p) argument goes to batch b; with m = 5 the batches
    of 24 examples have 5 or 4 rows (the shorter ones padded with zero rows)."""
    losses, full, _ = bl.losses.least_squares_batches(m)
    assert isinstance(losses, bl.losses.BatchLosses) and len(losses) == m
    thetas = torch.randn(m, 5)
    want = torch.stack([E(th) for E, th in zip(losses, thetas)])
    torch.testing.assert_close(losses.stacked(thetas), want, rtol=1e-14, atol=0)  # rounding
    # the mean of the batch losses is the full loss when m divides the data
    if 24 % m == 0:
        theta = thetas[0]
        torch.testing.assert_close(losses.stacked(theta.expand(m, -1)).mean(), full(theta),
                                   rtol=1e-14, atol=0)  # same sum, other order
