"""The κ-variant of Adam: its bias direction, its identity at κ = 0, its modified flow
f₀ + (1 + κ) h f₁ and its flow from fresh moments (Theorem 3.1's (3.2) with one loss plus
κ h f₁), tested by the convergence order (bea_lib.studies.intervention)."""
import math

import pytest
import torch

import bea_lib as bl
from bea_lib.core.autodiff import gradient_and_hvp_fn
from bea_lib.core.expansion import bias_direction
from bea_lib.core.minibatch import minibatch_adam_flow, minibatch_adam_rhs
from bea_lib.studies.intervention import kappa_adam, kappa_flow, kappa_order_study, kappa_rhs
from bea_lib.studies.order import fitted_slopes, max_distance

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


@pytest.mark.parametrize("n", [0, 3, 40])
def test_kappa_startup_rhs_is_theorem_3_1_plus_kappa_h_f1(loss, n):
    # (3.2) with one loss plus κ(rhs₁ − rhs₀) of the full-batch flows: h f₁ coded twice, so
    # agreement to the cancellation in rhs₁ − rhs₀ (rtol 1e-9, as the test above)
    hyper = {"h": 3e-3, "beta": 0.8, "rho": 0.95, "eps": 1e-2}
    got = kappa_rhs(loss, kappa=0.7, step=n, **hyper)(0.0, THETA0)
    f1_h = (bl.adam_rhs(loss, order=1, **hyper)(0.0, THETA0)
            - bl.adam_rhs(loss, order=0, **hyper)(0.0, THETA0))
    want = minibatch_adam_rhs([loss], n, **hyper)(0.0, THETA0) + 0.7 * f1_h
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-15)


def test_kappa_zero_startup_flow_is_the_minibatch_flow(loss):
    # κ = 0: the same right-hand side and the same interval solves, so the same numbers
    hyper = {"h": 2e-3, "beta": 0.8, "rho": 0.95, "eps": 1e-2}
    ours = kappa_flow(loss, THETA0, 30, kappa=0.0, startup=True, **hyper)
    assert torch.equal(ours, minibatch_adam_flow([loss], THETA0, 30, **hyper))


def test_kappa_startup_flow_is_second_order(loss):
    # the κ-variant's iterates (κ = ±1) against their flows from fresh moments over a fixed
    # horizon: slope 2 (±0.2, as tests/test_order.py; measured 1.91, 1.93). Against Adam's own
    # such flow they differ by κ h f₁ and the slope is 1: a flow with the wrong κ fails. Short
    # memories (as tests/test_minibatch.py's order study) make the slopes asymptotic at these h
    hyper = {"beta": 0.3, "rho": 0.6, "eps": 0.1}
    hs, T = [2e-3, 1e-3], 0.1
    errors = {key: [] for key in ((-1.0, "own"), (1.0, "own"), (-1.0, "adam"), (1.0, "adam"))}
    for h in hs:
        n = round(T / h)
        adam_flow = minibatch_adam_flow([loss], THETA0, n, h=h, **hyper)
        for kappa in (-1.0, 1.0):
            iterates = kappa_adam(loss, THETA0, n, h=h, kappa=kappa, **hyper)
            own = kappa_flow(loss, THETA0, n, h=h, kappa=kappa, startup=True, **hyper)
            errors[kappa, "own"].append(max_distance(iterates, own))
            errors[kappa, "adam"].append(max_distance(iterates, adam_flow))
    slopes = dict(zip(errors, fitted_slopes(hs, list(errors.values()))[0]))
    for kappa in (-1.0, 1.0):
        assert slopes[kappa, "own"] == pytest.approx(2.0, abs=0.2), slopes
        assert slopes[kappa, "adam"] == pytest.approx(1.0, abs=0.2), slopes


def test_kappa_startup_flow_is_closer_than_the_full_batch_kappa_flow_over_a_short_window(loss):
    # as tests/test_minibatch.py shows for Adam (κ = 0): over 50 steps at ρ = 0.95 the κ-variant
    # restarted with fresh moments is far closer to its flow from fresh moments than to
    # f₀ + (1 + κ) h f₁, which adds the whole O(h) term from the first step (measured 14 times)
    hyper, n = {"h": 2e-3, "beta": 0.8, "rho": 0.95, "eps": 1e-2, "kappa": 1.0}, 50
    iterates = kappa_adam(loss, THETA0, n, **hyper)
    err_full = max_distance(iterates, kappa_flow(loss, THETA0, n, **hyper))
    err_startup = max_distance(iterates, kappa_flow(loss, THETA0, n, startup=True, **hyper))
    assert err_startup < err_full / 5


def test_bad_input(loss):
    with pytest.raises(ValueError, match="kappa"):
        kappa_adam(loss, THETA0, 2, h=1e-2, kappa=math.nan, **HYPER)
    with pytest.raises(ValueError, match="hs"):
        kappa_order_study(loss, THETA0, [1e-3], 0.1, [(0, 0)], **HYPER)
    with pytest.raises(ValueError, match="h"):
        kappa_adam(loss, THETA0, 2, h=0.0, kappa=1.0, **HYPER)
    with pytest.raises(ValueError, match="step must be"):
        kappa_rhs(loss, h=1e-2, kappa=1.0, step=-1, **HYPER)
    with pytest.raises(ValueError, match="startup must be True or False"):
        kappa_flow(loss, THETA0, 2, h=1e-2, kappa=1.0, startup="yes", **HYPER)
