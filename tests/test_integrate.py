"""Solving flows never hangs: non-finite values, budgets, stiffness, and the solver's own errors."""
import math
import time

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

import bea_lib as bl

ONE = torch.ones(1, dtype=torch.float64)


def test_non_finite_rhs_names_t_and_component():
    def rhs(t, th):
        return torch.stack([-th[0], th[1] * (math.nan if t > 0.5 else 1.0)])
    with pytest.raises(bl.FlowError,
                       match=r"not finite at t = 0\.5\d* \(of 1\): component 1 is nan"):
        bl.solve_flow(rhs, torch.ones(2), 10, h=0.1)


def test_nan_gradient_at_theta0_fails_at_once_in_every_flow():
    """The issue's probe: a loss whose gradient is NaN at θ0 used to hang the solver."""
    def loss(th):
        return torch.sqrt(th).sum()  # θ0[0] < 0: NaN gradient
    theta0 = torch.tensor([-1.0, 2.0])
    calls = [lambda: bl.adam_flow(loss, theta0, 10, h=0.01, beta=0.9, rho=0.99, eps=1e-8),
             lambda: bl.adam_flow([loss, loss], theta0, 10, h=0.01, beta=0.9, rho=0.99, eps=1e-8),
             lambda: bl.heavy_ball_flow(loss, theta0, 10, h=0.01, beta=0.9),
             lambda: bl.solve_flow(bl.heavy_ball_rhs(loss, h=0.01, beta=0.9), theta0, 10, h=0.01)]
    for call in calls:
        with pytest.raises(bl.FlowError, match=r"at t = 0 .*component 0 is nan"):
            call()


def test_solver_failure_on_the_first_step_is_a_flow_error():
    """gd_flow of ‖θ‖ at 0 (the issue's case): the old error path crashed with AttributeError."""
    with pytest.raises(RuntimeError, match="at t = 0"):
        bl.gd_flow(lambda th: torch.sqrt((th**2).sum()), torch.zeros(2), 10, h=0.1)


def test_blow_up_is_a_flow_error():
    """θ̇ = θ², θ(0) = 1 is 1/(1-t): it blows up at t = 1, before the end 2."""
    with pytest.raises(bl.FlowError, match=r"at t = 1 of 2 .*max \|θ_j\| = \d.*e\+\d\d .*blows up"):
        bl.solve_flow(lambda t, th: th**2, ONE, 20, h=0.1, max_evals=2000)


def stiff_linear(lam):
    """θ̇ = -λ(θ - cos t), θ(0) = 1, and its exact solution."""
    def rhs(t, th):
        return -lam * (th - math.cos(t))

    def exact(t):
        return (lam**2 * np.cos(t) + lam * np.sin(t) + np.exp(-lam * t)) / (lam**2 + 1)
    return rhs, exact


def test_stiff_problem_exhausts_the_explicit_budget_and_auto_solves_it():
    rhs, exact = stiff_linear(1e5)
    # DOP853 is stable only for steps below ~6/λ: 5 time units take about 10⁵ evaluations
    with pytest.raises(bl.FlowError, match=r"max_evals = 3000 .*method='Radau'"):
        bl.solve_flow(rhs, ONE, 50, h=0.1, method="DOP853", max_evals=3000)
    got = bl.solve_flow(rhs, ONE, 50, h=0.1, max_evals=3000)  # "auto": DOP853, then LSODA
    t = 0.1 * np.arange(51)
    # rtol 1e-10 per step on values of order 1; 1e-8 leaves room for the accumulation
    np.testing.assert_allclose(got[:, 0].numpy(), exact(t), rtol=0, atol=1e-8)


def test_auto_is_dop853_where_the_flow_is_not_stiff():
    """No switch on a non-stiff flow: the order tests see exactly the solver they saw before."""
    loss = bl.losses.logcosh_regression(4)
    rhs = bl.adam_rhs(loss, h=1e-3, beta=0.9, rho=0.95, eps=1.0)
    theta0 = torch.linspace(-1, 1, 4)
    torch.testing.assert_close(bl.solve_flow(rhs, theta0, 50, h=1e-3),
                               bl.solve_flow(rhs, theta0, 50, h=1e-3, method="DOP853"),
                               rtol=0, atol=0)  # the same steps


def test_wall_time_budget():
    def slow(t, th):
        time.sleep(0.02)
        return -th
    with pytest.raises(bl.FlowError, match="max_seconds = 0.1"):
        bl.solve_flow(slow, ONE, 10, h=0.1, method="RK23", rtol=1e-12, max_seconds=0.1)


def sign_flow_exact(t, x0, eps):
    """x = θ - c under θ̇ = -g/√(g² + ε), g = 2x (E = (θ - c)²), x0 > 0: t(x) inverted.

    With u = 2x, dt = -√(u² + ε)/u du/2, so t(x) = (F(u0) - F(u))/2 for
    F(u) = √(u² + ε) - √ε ln((√ε + √(u² + ε))/u).
    """
    def F(u):
        root = math.sqrt(u * u + eps)
        return root - math.sqrt(eps) * math.log((math.sqrt(eps) + root) / u)
    u0 = 2 * x0
    out = []
    for tk in t:
        lo = 1e-300
        if (F(u0) - F(lo)) / 2 < tk:  # past t(1e-300): x has underflowed
            out.append(0.0)
            continue
        out.append(brentq(lambda u: (F(u0) - F(u)) / 2 - tk, lo, u0, xtol=1e-300, rtol=1e-14) / 2)
    return np.array(out)


def test_stiff_eps_sign_flow_matches_its_closed_form():
    """The order-0 ε-sign flow reaches the minimum of (θ - 0.3)² at t ≈ 0.7, where it turns stiff
    (Jacobian ≈ -2H/√ε = -4·10⁴)."""
    eps, h, n = 1e-8, 0.05, 30
    loss = lambda th: ((th - 0.3) ** 2).sum()  # noqa: E731
    with pytest.warns(bl.ExpansionValidityWarning):  # h = 0.05 with β = 0.9: not small
        got = bl.adam_flow(loss, torch.tensor([1.0]), n, h=h, beta=0.9, rho=0.5, eps=eps,
                           order=0, max_evals=5000)
    want = 0.3 + sign_flow_exact(h * np.arange(n + 1), 0.7, eps)
    # 1e-8: the solver's rtol 1e-10 accumulated over the approach, with margin
    np.testing.assert_allclose(got[:, 0].numpy(), want, rtol=0, atol=1e-8)


def test_the_issues_stiff_probe_ends_within_a_small_budget():
    """adam_flow of (θ - 0.3)² from 1 with h = 0.05, β = 0.9, ρ = 0.5, ε = 1e-8, order 1: near the
    minimum the O(h) term grows like 1/|g| (capped at |g| ~ √ε) and DOP853 crawls through it."""
    args = (lambda th: ((th - 0.3) ** 2).sum(), torch.tensor([1.0]), 30)
    hyper = dict(h=0.05, beta=0.9, rho=0.5, eps=1e-8)
    with pytest.warns(bl.ExpansionValidityWarning):
        with pytest.raises(bl.FlowError, match="budget of max_evals = 3000"):
            bl.adam_flow(*args, **hyper, method="DOP853", max_evals=3000)
        flow = bl.adam_flow(*args, **hyper, max_evals=3000)
    # the minimum is reached and kept (to the solver's tolerance, scaled by 1/√ε of the Jacobian)
    assert abs(flow[-1, 0].item() - 0.3) < 1e-8


@pytest.mark.parametrize("kwargs, name", [
    (dict(method="Euler"), "method"), (dict(max_evals=0), "max_evals"),
    (dict(max_evals=True), "max_evals"), (dict(max_evals=1.5), "max_evals"),
    (dict(max_seconds=0.0), "max_seconds"), (dict(rtol=-1.0), "rtol"),
    (dict(atol=math.nan), "atol")])
def test_solver_options_are_checked(kwargs, name):
    with pytest.raises(ValueError, match=name):
        bl.solve_flow(lambda t, th: -th, ONE, 3, h=0.1, **kwargs)
    with pytest.raises(ValueError, match=name):
        bl.gd_flow(lambda th: (th**2).sum(), ONE, 3, h=0.1, **kwargs)


def test_rhs_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"must return shape \(1,\)"):
        bl.solve_flow(lambda t, th: torch.zeros(2), ONE, 3, h=0.1)


def test_a_stiff_flow_stops_at_the_default_wall_budget_which_can_be_raised(monkeypatch):
    from bea_lib.core import integrate

    assert integrate.DEFAULT_MAX_SECONDS <= 30
    monkeypatch.setattr(integrate, "DEFAULT_MAX_SECONDS", 0.5)  # the default, made quick

    def stiff(t, theta):  # λ = -1e6: the explicit method crawls, each step slowed
        time.sleep(1e-4)
        return -1e6 * (theta - torch.cos(torch.tensor(t, dtype=torch.float64)))

    theta0 = torch.ones(1, dtype=torch.float64)
    start = time.monotonic()
    with pytest.raises(bl.FlowError, match=r"max_seconds = 0.5 .*math.inf: no limit"):
        bl.solve_flow(stiff, theta0, 10, h=0.1, method="DOP853", max_evals=10**9)
    assert time.monotonic() - start < 3.0  # 0.5 s budget; a few evaluations' slack
    fast = bl.solve_flow(lambda t, th: -th, theta0, 10, h=0.1, max_seconds=math.inf)
    torch.testing.assert_close(fast[-1], torch.exp(torch.tensor([-1.0], dtype=torch.float64)),
                               rtol=1e-8, atol=0)  # rtol 1e-10 solve: 1e-8 is loose


@pytest.mark.parametrize("result", [np.zeros(1), [0.0], 0.0, None, "0"])
def test_a_rhs_that_returns_no_tensor_is_a_clear_error(result):
    with pytest.raises(TypeError, match=r"rhs\(t, theta\) must return a torch tensor of shape"):
        bl.solve_flow(lambda t, theta: result, torch.ones(1, dtype=torch.float64), 3, h=0.1)
