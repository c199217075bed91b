"""Perturbed one-norm, bias coefficient, Figure 1's curve, Table 1 and Example 2.3."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

import bea_lib as bl


def test_perturbed_one_norm():
    v = torch.tensor([3.0, -4.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(bl.perturbed_one_norm(v, eps=0.0),
                               torch.tensor(7.0, dtype=torch.float64))
    want = math.sqrt(9.5) + math.sqrt(16.5) + math.sqrt(0.5)
    assert bl.perturbed_one_norm(v, eps=0.5).item() == pytest.approx(want, rel=1e-15)  # same sum
    with pytest.raises(ValueError, match="eps"):
        bl.perturbed_one_norm(v, eps=-1.0)


def test_gradient_of_perturbed_one_norm_of_gradient_is_hessian_times_u():
    """∇‖∇E‖_{1,ε} = H g/√(g²+ε), the vector the flow gets from one Hessian-vector product."""
    A = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 3.0]], dtype=torch.float64)
    loss = lambda th: 0.25 * (th @ A @ th) ** 2  # noqa: E731
    theta, eps = torch.tensor([0.4, -1.0, 0.7], dtype=torch.float64), 0.2
    lhs = bl.gradient(lambda th: bl.perturbed_one_norm(bl.gradient(loss, th), eps=eps), theta)
    g = bl.gradient(loss, theta)
    rhs = bl.hvp(loss, theta, g / torch.sqrt(g**2 + eps))
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=0)  # identity, up to rounding


def test_bias_coefficient_limits():
    beta, rho = 0.9, 0.999
    a = (1 + beta) / (1 - beta) - (1 + rho) / (1 - rho)
    # ε ≪ g²
    assert bl.bias_coefficient(1.0, beta=beta, rho=rho, eps=1e-12) == pytest.approx(a / 2, rel=1e-9)
    # ε ≫ g²: the ρ terms cancel, leaving (1+β)/(2(1-β)) (the heavy-ball regime (2.7))
    assert bl.bias_coefficient(1.0, beta=beta, rho=rho, eps=1e12) == pytest.approx(9.5, rel=1e-9)
    g = torch.tensor([0.0, 1.0, 10.0], dtype=torch.float64)
    assert bl.bias_coefficient(g, beta=beta, rho=rho, eps=1.0).shape == (3,)


@pytest.mark.parametrize("beta, rho, eps", [(0.95, 0.999, 1e-2), (0.95, 0.9, 1e-3),
                                            (0.0, 0.99, 0.5), (0.95, 0.95, 1.0)])
def test_figure_1_closed_form_against_quadrature(beta, rho, eps):
    def integrand(y):  # the braces of Figure 1 times d√(ε+y²)/dy
        braces = ((1 + beta) / (1 - beta) - (1 + rho) / (1 - rho)
                  + (1 + rho) / (1 - rho) * eps / (y**2 + eps))
        return braces * y / math.sqrt(eps + y**2)

    xs = np.array([-3.0, -0.05, 0.0, 0.01, 0.3, 2.0, 5.0])
    closed = bl.bias_potential_1d(xs, beta=beta, rho=rho, eps=eps)
    numeric = [quad(integrand, 0.0, x, epsabs=1e-13, epsrel=1e-12)[0] for x in xs]
    # quad's requested accuracy is 1e-12 relative; the closed form is exact up to rounding
    np.testing.assert_allclose(closed, numeric, rtol=1e-10, atol=1e-12)


def test_figure_1_curve_derivative_is_twice_the_bias_coefficient():
    x = torch.tensor([-1.0, 0.2, 3.0], dtype=torch.float64, requires_grad=True)
    F = bl.bias_potential_1d(x, beta=0.95, rho=0.99, eps=0.1).sum()
    (dF,) = torch.autograd.grad(F, x)
    y = x.detach()
    want = 2 * bl.bias_coefficient(y, beta=0.95, rho=0.99, eps=0.1) * y / torch.sqrt(0.1 + y**2)
    torch.testing.assert_close(dF, want, rtol=1e-13, atol=0)  # fundamental theorem, to rounding


@pytest.mark.parametrize("beta, rho, eps, grad, regime", [
    (0.99, 0.9, 1e-8, [0.1, -0.5], "one-norm penalised"),  # β ≥ ρ, ε small
    (0.9, 0.9, 1e-8, [0.1, -0.5], "one-norm penalised"),  # β = ρ belongs to the first row
    (0.9, 0.999, 1e-8, [0.1, -0.5], "one-norm anti-penalised"),  # ρ > β, ε small
    (0.99, 0.9, 100.0, [0.1, -0.5], "two-norm squared penalised"),  # ε >= 100·max g² = 25
    (0.9, 0.999, 100.0, [0.1, -0.5], "two-norm squared penalised"),
    (0.9, 0.999, 1e-3, [0.1, -0.5], "intermediate"),  # ε/g² = 0.1 and 0.004
    (0.9, 0.999, 1e-3, [1e-4, 10.0], "intermediate"),  # small against one, large against another
])
def test_table_1_regimes(beta, rho, eps, grad, regime):
    assert bl.implicit_bias_regime(torch.tensor(grad), beta=beta, rho=rho, eps=eps) == regime


def test_regime_threshold_is_a_keyword():
    g = torch.tensor([0.1, -0.5])  # min g² = 0.01
    assert bl.implicit_bias_regime(g, beta=0.9, rho=0.999, eps=1e-3,
                                   ratio=10) == "one-norm anti-penalised"
    assert bl.implicit_bias_regime(g, beta=0.9, rho=0.999, eps=1e-3, ratio=100) == "intermediate"
    with pytest.raises(ValueError, match="ratio"):
        bl.implicit_bias_regime(g, beta=0.9, rho=0.999, eps=1e-3, ratio=0)


def test_adam_with_large_eps_tracks_heavy_ball():
    """Example 2.3: ε ≫ g² makes Adam heavy-ball with step h(1-β)/√ε and momentum β."""
    gen = torch.Generator().manual_seed(2)
    A = torch.randn(8, 5, generator=gen, dtype=torch.float64)
    b = torch.randn(8, generator=gen, dtype=torch.float64)
    loss = lambda th: torch.log(torch.cosh(A @ th - b)).sum()  # noqa: E731  |∇E| <= Σ|A| ≈ 20
    theta0 = torch.zeros(5, dtype=torch.float64)
    h, beta, rho, eps, n = 1.0, 0.9, 0.999, 1e6, 2000  # g²/ε <= 4e-4
    h_hb, beta_hb = bl.heavy_ball_limit(h=h, beta=beta, eps=eps)
    assert (h_hb, beta_hb) == pytest.approx((1e-4, 0.9), rel=1e-12)
    adam = bl.adam(loss, theta0, n, h=h, beta=beta, rho=rho, eps=eps)
    hb = bl.heavy_ball(loss, theta0, n, h=h_hb, beta=beta_hb)
    gap = torch.linalg.vector_norm(adam - hb, dim=1)
    travelled = torch.linalg.vector_norm(hb[-1] - hb[0])
    # Adam's bias-corrected m̂ starts at full speed; heavy-ball from rest lags by at most
    # h_hb·β‖∇E(θ⁽⁰⁾)‖/(1-β)² (the constant-gradient lag; the convex loss contracts paths).
    # Measured: max gap 0.037 (at n = 30) against this bound 0.042.
    lag = h_hb * beta * torch.linalg.vector_norm(bl.gradient(loss, theta0)) / (1 - beta) ** 2
    assert gap.max() <= lag, (gap.max(), lag)
    # Once the gradient has shrunk the lag has too, and √(ν̂+ε)/√ε - 1 <= g²/(2ε) < 1e-5:
    # at the end the paths agree to 1% of the distance travelled (measured 0.05%)
    assert gap[-1] < 0.01 * travelled, (gap[-1], travelled)
    assert travelled > 0.1  # the comparison is not vacuous


def test_heavy_ball_limit_rejects_bad_input():
    with pytest.raises(ValueError, match="eps"):
        bl.heavy_ball_limit(h=0.1, beta=0.9, eps=0.0)
    with pytest.raises(ValueError, match="beta"):
        bl.bias_potential_1d(1.0, beta=1.0, rho=0.9, eps=1.0)
    with pytest.raises(ValueError, match="rho"):
        bl.bias_coefficient(1.0, beta=0.9, rho=-0.5, eps=1.0)


def test_table_1_cells_are_one_vocabulary():
    g = torch.tensor([0.1, -0.5])
    cell = bl.implicit_bias_regime(g, beta=0.9, rho=0.999, eps=1e-8)
    assert cell is bl.BiasRegime.ONE_NORM_ANTI_PENALISED and cell.eps_small
    assert not bl.implicit_bias_regime(g, beta=0.9, rho=0.999, eps=1e3).eps_small


def test_a_list_of_floats_is_read_in_float64():
    # float32 would round 1 + 1e-8 to 1 and lose ε entirely
    got = bl.perturbed_one_norm([1.0, -2.0], eps=1e-8).item() - 3.0
    assert got == pytest.approx(1e-8 * (1 / 2 + 1 / 4), rel=1e-6)  # √(v² + ε) - |v| ≈ ε/(2|v|)


def test_path_share_adds_up_to_one_and_names_the_cells():
    loss = lambda th: (th**2).sum()  # noqa: E731
    path = torch.tensor([[1.0, 1.0], [0.5, 0.5], [1e-6, 1e-6]], dtype=torch.float64)
    share = bl.path_share_by_regime(loss, path, beta=0.9, rho=0.999, eps=1e-8)
    assert set(share) <= set(bl.BiasRegime) and sum(share.values()) == pytest.approx(1.0, rel=1e-12)
    with pytest.raises(ValueError, match="rho"):
        bl.path_share_by_regime(loss, path, beta=0.9, rho=1.0, eps=1e-8)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=8),
       st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
       st.sampled_from([1e-12, 1e-8, 1e-4, 1.0]))
def test_perturbed_one_norm_keeps_eps_in_every_float_dtype(values, dtype, eps):
    v = torch.tensor(values, dtype=dtype)
    exact = torch.sqrt(v.double() ** 2 + eps).sum().item()  # the same (rounded) inputs
    got = bl.perturbed_one_norm(v, eps=eps)
    assert got.dtype == (torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype)
    # float32 arithmetic on <= 8 terms: a relative error of a few 1e-7 (1e-6 allows for it)
    assert got.item() == pytest.approx(exact, rel=1e-6 if dtype != torch.float64 else 1e-14)


def test_perturbed_one_norm_of_float16_zeros_is_3e_minus_4_and_complex_bool_are_refused():
    got = bl.perturbed_one_norm(torch.zeros(3, dtype=torch.float16), eps=1e-8)
    assert got.item() == pytest.approx(3e-4, rel=1e-6)  # float32 rounding of √1e-8
    assert bl.perturbed_one_norm(torch.zeros(3), eps=1e-50).item() == pytest.approx(3e-25)
    with pytest.raises(TypeError, match="real tensor, got torch.complex64"):
        bl.perturbed_one_norm(torch.zeros(3, dtype=torch.complex64), eps=1e-8)
    with pytest.raises(TypeError, match="bool tensor"):
        bl.perturbed_one_norm(torch.zeros(3, dtype=torch.bool), eps=1e-8)
