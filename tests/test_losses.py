"""The tanh-network regression loss against an independent torch.nn evaluation."""
import pytest
import torch

import bea_lib as bl
from bea_lib.losses import tanh_network_init, tanh_network_regression, tanh_network_size


def test_tanh_network_matches_torch_nn_module():
    n_in, width, n_data, seed = 3, 5, 7, 2
    loss = tanh_network_regression(n_in, width, n_data, seed)
    theta = torch.randn(tanh_network_size(n_in, width))
    net = torch.nn.Sequential(torch.nn.Linear(n_in, width), torch.nn.Tanh(), torch.nn.Linear(width, 1)).double()
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
