"""Theorem 3.1's piecewise ODE: recursions vs the definitions, m = 1 vs full batch, its order."""
import numpy as np
import pytest
import torch
from torch.autograd.functional import hessian

import bea_lib as bl
from bea_lib.core.minibatch import average_weights, minibatch_adam_flow, minibatch_adam_rhs

HYPER = dict(beta=0.5, rho=0.8, eps=1e-2)
# For the order studies: short averaging windows (1/(1-β), 1/(1-ρ) ≤ 2.5 steps) so that the slopes
# are asymptotic already at h = 2e-3 (measured: with β = 0.5, ρ = 0.8 they are only from h ≈ 5e-4).
ORDER_HYPER = dict(beta=0.3, rho=0.6, eps=0.1)
ORDER_HS, ORDER_T = [2e-3, 1e-3, 5e-4], 0.1


def least_squares_batches(m: int):
    """The package's least-squares problem (24 points, p = 5) in m batches, and θ⁽⁰⁾."""
    losses, _, theta0 = bl.losses.least_squares_batches(m)
    return losses, theta0


def direct_rhs(losses, n, theta, *, h, beta, rho, eps, inner_from_k=True):
    """(3.2) from its definitions with O(n²) loops and full Hessians: the independent reference."""
    m = len(losses)
    g = [torch.autograd.functional.jacobian(losses[k % m], theta) for k in range(n + 1)]
    H = [hessian(losses[k % m], theta) for k in range(n + 1)]

    def AV(gamma, l, terms):
        total = sum((1 - gamma) * gamma ** (l - k) * terms[k] for k in range(l + 1))
        return total / (1 - gamma ** (l + 1))

    M = [AV(beta, l, g) for l in range(n + 1)]
    R = [torch.sqrt(AV(rho, l, [gk**2 for gk in g]) + eps) for l in range(n + 1)]
    u = [M[l] / R[l] for l in range(n + 1)]
    start = (lambda k: k) if inner_from_k else (lambda k: 1)
    S = [sum((u[l] for l in range(start(k), n)), torch.zeros_like(theta)) for k in range(n + 1)]
    L = AV(beta, n, [H[k] @ S[k] for k in range(n + 1)])
    Lbar = AV(beta, n, [H[k] @ u[n] for k in range(n + 1)])
    P = AV(rho, n, [g[k] * (H[k] @ S[k]) for k in range(n + 1)])
    Pbar = AV(rho, n, [g[k] * (H[k] @ u[n]) for k in range(n + 1)])
    return -u[n] + h * (M[n] * (2 * P + Pbar) / (2 * R[n] ** 3) - (2 * L + Lbar) / (2 * R[n]))


@pytest.mark.parametrize("m,n", [(1, 0), (2, 1), (3, 7), (3, 12)])
@pytest.mark.parametrize("inner_sum", ["k", "1"])
def test_recursive_evaluation_equals_direct_definitions(m, n, inner_sum):
    losses, _ = least_squares_batches(m)
    # a non-quadratic term so that the Hessians vary with θ
    losses = [lambda th, E=E: E(th) + 0.1 * torch.sin(th).sum() for E in losses]
    theta = torch.randn(5)
    rhs = minibatch_adam_rhs(losses, n, h=0.01, inner_sum=inner_sum, **HYPER)(0.0, theta)
    ref = direct_rhs(losses, n, theta, h=0.01, inner_from_k=inner_sum == "k", **HYPER)
    torch.testing.assert_close(rhs, ref, rtol=1e-12, atol=1e-14)  # same sums, other order: rounding


def test_one_batch_has_the_closed_form_finite_n_terms_and_tends_to_the_full_batch_flow():
    """With m = 1, Σ_k a_k (n-k) = γ/(1-γ) - (n+1)γ^{n+1}/(1-γ^{n+1}) replaces γ/(1-γ) of (2.3)."""
    (loss,), _ = least_squares_batches(1)
    theta, h, (beta, rho, eps) = torch.randn(5), 0.01, HYPER.values()
    g, Hm = bl.gradient(loss, theta), hessian(loss, theta)
    D = torch.sqrt(g**2 + eps)
    Hu = Hm @ (g / D)
    full = bl.flows.adam_rhs(loss, h=h, **HYPER)(0.0, theta)
    gaps = []
    for n in [0, 1, 5, 20, 60]:
        s = {c: c / (1 - c) - (n + 1) * c ** (n + 1) / (1 - c ** (n + 1)) for c in (beta, rho)}
        closed = -g / D + h * (g**2 * Hu * (2 * s[rho] + 1) / (2 * D**3)
                               - (2 * s[beta] + 1) * Hu / (2 * D))
        rhs = minibatch_adam_rhs([loss], n, h=h, **HYPER)(0.0, theta)
        torch.testing.assert_close(rhs, closed, rtol=1e-12, atol=1e-14)  # float64 rounding
        gaps.append((rhs - full).norm().item())
    assert all(a > b for a, b in zip(gaps, gaps[1:]))  # the finite-n terms shrink with n ...
    # ... like (n+1)ρ^(n+1) (the β terms are ~0.5ⁿ, negligible by n = 20): from n = 20 to 60
    predicted = (61 * rho**61) / (21 * rho**21)
    assert 0.5 * predicted < gaps[-1] / gaps[-2] < 2 * predicted  # factor 2: 1-ρ^(n+1) and β terms


def test_one_batch_flow_tends_to_full_batch_flow():
    """Both flows are O(h²) from the iterates, so their gap (the finite-n terms, integrated over the
    first ~1/(1-ρ) steps) is O(h²) too: halving h divides it by about 4."""
    (loss,), theta0 = least_squares_batches(1)
    gaps = []
    for h in (4e-3, 2e-3):
        n = round(0.04 / h)
        a = minibatch_adam_flow([loss], theta0, n, h=h, **HYPER)
        gaps.append((a - bl.adam_flow(loss, theta0, n, h=h, **HYPER)).norm(dim=1).max().item())
    assert 3.0 < gaps[0] / gaps[1] < 5.0  # 4 ± the next order's share at these h
    a0 = minibatch_adam_flow([loss], theta0, 10, h=2e-3, order=0, **HYPER)
    b0 = bl.adam_flow(loss, theta0, 10, h=2e-3, order=0, **HYPER)
    torch.testing.assert_close(a0, b0, rtol=0, atol=1e-10)  # the same ODE; solver tolerance 1e-10


def slopes(losses, theta0, orders, inner_sum="k"):
    """Fitted slope of log max_n ‖θ⁽ⁿ⁾ - θ̃(nh)‖ against log h, per order, at ORDER_* settings."""
    errs = {order: [] for order in orders}
    for h in ORDER_HS:
        n = round(ORDER_T / h)
        it = bl.adam(losses, theta0, n, h=h, **ORDER_HYPER)
        for order in orders:
            fl = minibatch_adam_flow(losses, theta0, n, h=h, order=order, inner_sum=inner_sum,
                                     **ORDER_HYPER)
            errs[order].append((it - fl).norm(dim=1).max().item())
    return {order: np.polyfit(np.log(ORDER_HS), np.log(e), 1)[0] for order, e in errs.items()}


@pytest.mark.parametrize("m", [2, 3])
def test_convergence_order_of_the_piecewise_flow(m):
    """Least squares (24 points, p = 5) split into m batches, at ORDER_HYPER, T = 0.1 and
    h = 2e-3, 1e-3, 5e-4 (measured slopes: ≈ 0.95 and ≈ 1.94 for m = 2 and m = 3)."""
    losses, theta0 = least_squares_batches(m)
    s = slopes(losses, theta0, (0, 1))
    assert 0.8 <= s[0] <= 1.2
    assert 1.8 <= s[1] <= 2.2


def test_transcribed_inner_sum_loses_the_order():
    """Σ_{l=1}^{n-1} instead of Σ_{l=k}^{n-1}: the O(h) term is wrong, so order 1 is not reached."""
    losses, theta0 = least_squares_batches(2)
    assert slopes(losses, theta0, (1,), inner_sum="1")[1] < 1.2


def test_bad_inputs():
    losses, theta0 = least_squares_batches(2)
    with pytest.raises(ValueError, match="inner_sum must be one of"):
        minibatch_adam_rhs(losses, 3, h=0.01, inner_sum="0", **HYPER)
    with pytest.raises(ValueError, match="order must be 0 or 1"):
        minibatch_adam_flow(losses, theta0, 3, h=0.01, order=2, **HYPER)
    with pytest.raises(ValueError, match=r"rho must be in \[0, 1\)"):
        minibatch_adam_flow(losses, theta0, 3, h=0.01, beta=0.5, rho=1.0, eps=1e-2)


def test_average_weights_sum_to_one():
    for gamma in (0.0, 0.5, 0.999):
        assert abs(average_weights(gamma, 17).sum().item() - 1) < 1e-13  # rounding of 18 terms


@pytest.mark.parametrize("kwargs, message", [
    (dict(order=2), "order must be 0 or 1"), (dict(h=-1.0), "h must"),
    (dict(beta=1.0), "beta must"), (dict(rho=-0.5), "rho must"), (dict(eps=0.0), "eps must"),
    (dict(n=-1), "n must be an integer"), (dict(n=2.0), "n must be an integer"),
    (dict(weights=(torch.zeros(2, 2), torch.zeros(2, 2))), r"c_beta must have shape \(>= 4, 2\)")])
def test_the_public_right_hand_side_checks_its_inputs(kwargs, message):
    """Chapters call minibatch_adam_rhs directly; order=2 used to run order 1 silently."""
    losses, _ = least_squares_batches(2)
    args = dict(n=3, h=0.01) | HYPER | kwargs
    with pytest.raises(ValueError, match=message):
        minibatch_adam_rhs(losses, **args)


def test_the_right_hand_side_keeps_nothing_stale_between_points_and_intervals():
    """The flow's intervals share the gradients at the last θ (_LastPoint) and each builds its
    weights once: a value kept for another θ or another interval would show here."""
    losses, _ = least_squares_batches(3)
    losses = [lambda th, E=E: E(th) + 0.1 * torch.sin(th).sum() for E in losses]  # H varies with θ
    theta = torch.randn(5)
    before = theta.clone()
    rhs = minibatch_adam_rhs(losses, 7, h=0.01, **HYPER)
    first = rhs(0.0, theta)
    theta.add_(0.1)  # the caller overwrites its θ in place: a key by identity would miss it
    torch.testing.assert_close(rhs(0.0, theta), direct_rhs(losses, 7, theta, h=0.01, **HYPER),
                               rtol=1e-12, atol=1e-14)  # same sums, other order: rounding
    torch.testing.assert_close(rhs(0.0, before), first, rtol=0, atol=0)  # same θ: same numbers
    # one shared point for intervals 7 and 8 at the same θ (as at an interval's end): the
    # gradients are reused, the weights are interval 8's own
    from bea_lib.core.minibatch import _LastPoint, _minibatch_rhs, batch_weights
    for order in (0, 1):
        point = _LastPoint(losses, order)
        weights = (batch_weights(HYPER["beta"], 8, 3), batch_weights(HYPER["rho"], 8, 3))
        hyper = dict(h=0.01, order=order, inner_sum="k", weights=weights, point=point) | HYPER
        _minibatch_rhs(losses, 7, **hyper)(0.0, theta)
        shared = _minibatch_rhs(losses, 8, **hyper)(0.0, theta)
        fresh = minibatch_adam_rhs(losses, 8, h=0.01, order=order, **HYPER)(0.0, theta)
        torch.testing.assert_close(shared, fresh, rtol=0, atol=0)  # the same computation


@pytest.mark.parametrize("together", [True, False], ids=["BatchLosses", "list"])
def test_one_evaluation_costs_three_reverse_passes_and_an_interval_seven(monkeypatch, together):
    """m gradients and 2m Hessian-vector products in three reverse passes, whatever m (through
    one graph for BatchLosses, m graphs for a list); RK45 takes each interval in one step of
    seven evaluations, the first reusing the last one's gradients."""
    passes = []
    grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: passes.append(1) or grad(*a, **k))
    losses, theta0 = least_squares_batches(8)
    losses = losses if together else list(losses)
    minibatch_adam_rhs(losses, 5, h=1e-3, **ORDER_HYPER)(0.0, theta0)
    assert len(passes) == 3
    evals = []
    from bea_lib.core import integrate
    guarded = integrate._GuardedRHS.__call__
    monkeypatch.setattr(integrate._GuardedRHS, "__call__",
                        lambda self, t, y: evals.append(1) or guarded(self, t, y))
    passes.clear()
    n = 20
    minibatch_adam_flow(losses, theta0, n, h=1e-3, **ORDER_HYPER)
    assert len(evals) == 7 * n
    assert len(passes) == 3 * len(evals) - (n - 1) + 2  # + the expansion check at θ⁽⁰⁾



def test_one_batch_flow_is_closer_than_the_full_batch_flow_over_a_short_window():
    # Adam restarted with fresh moments, over a window short against 1/(1 − ρ) (50 steps,
    # ρ = 0.95): the full-batch order-1 flow adds its whole O(h) term from the first step, where
    # Adam's averages hold a few gradients only, and is farther from the iterates than the
    # order-0 flow; the one-loss (3.2) keeps the finite-n terms and is far closer than either.
    # This is why the calibration of the validity gate (bea_lib.evidence.calibration) compares
    # restarts with this flow.
    loss = bl.losses.logcosh_regression(4, seed=0)
    theta0 = torch.tensor([0.5, -0.3, 0.8, 0.1], dtype=torch.float64)
    hyper, n = {"h": 2e-3, "beta": 0.8, "rho": 0.95, "eps": 1e-2}, 50
    iterates = bl.adam(loss, theta0, n, **hyper)
    err_full = bl.max_distance(iterates, bl.adam_flow(loss, theta0, n, order=1, **hyper))
    err_0 = bl.max_distance(iterates, bl.adam_flow(loss, theta0, n, order=0, **hyper))
    err_one = bl.max_distance(iterates, minibatch_adam_flow([loss], theta0, n, **hyper))
    assert err_full > err_0  # measured 1.8 times
    assert err_one < err_0 / 5  # measured 15 times closer
