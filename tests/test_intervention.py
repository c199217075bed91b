"""The κ-variant of Adam: its bias direction, its identity at κ = 0, and its modified flow
f₀ + (1 + κ) h f₁ tested by the convergence order (bea_lib.studies.intervention)."""
import math

import pytest
import torch

import bea_lib as bl
from bea_lib.core.autodiff import gradient_and_hvp_fn
from bea_lib.core.expansion import bias_direction
from bea_lib.studies.intervention import kappa_adam, kappa_order_study, kappa_rhs

HYPER = dict(beta=0.8, rho=0.9, eps=1e-2)  # the independent check
THETA0 = torch.tensor([0.5, -0.3, 0.8, 0.1], dtype=torch.float64)


@pytest.fixture
def loss():
    return bl.losses.logcosh_regression(4, seed=0)  # smooth, 4 parameters


def test_bias_direction_is_the_flows_order_one_term(loss):
    # f₁ from the paper's (2.3) (bias_coefficient) against (rhs₁ − rhs₀)/h of bea_lib.core.flows:
    # two codings of one formula; rtol 1e-9 covers the cancellation in rhs₁ − rhs₀ at h = 1e-3
    h = 1e-3
    g, hvp_fn = gradient_and_hvp_fn(loss, THETA0)
    f1 = bias_direction(g, hvp_fn, **HYPER)
    rhs1 = bl.adam_rhs(loss, h=h, order=1, **HYPER)(0.0, THETA0)
    rhs0 = bl.adam_rhs(loss, h=h, order=0, **HYPER)(0.0, THETA0)
    torch.testing.assert_close(f1, (rhs1 - rhs0) / h, rtol=1e-9, atol=0)


def test_kappa_zero_is_adam(loss):
    # κ = 0 runs the same adam_update as bl.adam: bitwise the same iterates
    a = kappa_adam(loss, THETA0, 20, h=1e-2, kappa=0.0, **HYPER)
    b = bl.adam(loss, THETA0, 20, h=1e-2, **HYPER)
    assert torch.equal(a, b)


def test_kappa_moves_adam_by_kappa_h2_f1(loss):
    # one step from θ⁽⁰⁾: the κ-step minus Adam's step is exactly κh²f₁(θ⁽⁰⁾) (rounding only)
    h, kappa = 1e-2, 0.7
    a = kappa_adam(loss, THETA0, 1, h=h, kappa=kappa, **HYPER)[1]
    b = bl.adam(loss, THETA0, 1, h=h, **HYPER)[1]
    g, hvp_fn = gradient_and_hvp_fn(loss, THETA0)
    torch.testing.assert_close(a - b, kappa * h**2 * bias_direction(g, hvp_fn, **HYPER),
                               rtol=1e-9, atol=1e-15)


def test_kappa_rhs_ends(loss):
    # κ = −1 is the order-0 flow, κ = 0 the order-1 flow (2.2)-(2.3); float64 rounding only
    h = 1e-2
    for kappa, order in ((-1.0, 0), (0.0, 1)):
        got = kappa_rhs(loss, h=h, kappa=kappa, **HYPER)(0.0, THETA0)
        want = bl.adam_rhs(loss, h=h, order=order, **HYPER)(0.0, THETA0)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_kappa_order(loss):
    # The setting (β, ρ, ε = 0.8, 0.9, 1e-2), T = 0.5, with three of its four step
    # sizes to keep the test short (a shorter T leaves the O(h) distances pre-asymptotic).
    # Expected: slope ≈ 2 where the flow is the κ-variant's own modified flow, ≈ 1 where it
    # misses (κ − κ_flow)h f₁. The ranges [1.7, 2.4] and [0.8, 1.25] leave room for the
    # pre-asymptotic curvature of three points and exclude each other.
    pairs = [(-1.0, -1.0), (0.0, -1.0), (1.0, 1.0), (1.0, 0.0)]
    studies = kappa_order_study(loss, THETA0, [4e-3, 2e-3, 1e-3], 0.5, pairs, **HYPER)
    slopes = {(s.kappa, s.flow_kappa): s.slope for s in studies}
    assert 1.7 <= slopes[-1.0, -1.0] <= 2.4, slopes  # κ = −1 follows the ε-sign flow to O(h²)
    assert 0.8 <= slopes[0.0, -1.0] <= 1.25, slopes  # plain Adam does not (its bias is O(h))
    assert 1.7 <= slopes[1.0, 1.0] <= 2.4, slopes  # κ = +1 follows f₀ + 2h f₁
    assert 0.8 <= slopes[1.0, 0.0] <= 1.25, slopes  # and not Adam's own flow


def test_bad_input(loss):
    with pytest.raises(ValueError, match="kappa"):
        kappa_adam(loss, THETA0, 2, h=1e-2, kappa=math.nan, **HYPER)
    with pytest.raises(ValueError, match="hs"):
        kappa_order_study(loss, THETA0, [1e-3], 0.1, [(0, 0)], **HYPER)
    with pytest.raises(ValueError, match="h"):
        kappa_adam(loss, THETA0, 2, h=0.0, kappa=1.0, **HYPER)
