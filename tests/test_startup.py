"""Adam restarted with fresh moments (bea_lib.startup): the start-up flow of Theorem 3.1 with one
loss against the library's (3.2) and by its convergence order, the κ-variant's, the short-window
puzzle it resolves, and many flows and runs at once against one at a time."""
import numpy as np
import pytest
import torch

import bea_lib as bl
from bea_lib import startup
from bea_lib.intervention import kappa_adam, kappa_flow
from bea_lib.minibatch import average_weights, minibatch_adam_flow, minibatch_adam_rhs
from bea_lib.order import fitted_slopes, max_distance
from bea_lib.startup import FlowSpec, FlowStatus

THETA0 = torch.tensor([0.5, -0.3, 0.8, 0.1], dtype=torch.float64)


@pytest.fixture
def loss():
    return bl.losses.logcosh_regression(4, seed=0)  # smooth, 4 parameters


@pytest.mark.parametrize("gamma", [0.0, 0.8, 0.95])
def test_startup_coefficient_is_twice_the_average_lag_plus_one(gamma):
    # C_γ(n) = 2 AV_γ^n[n − k] + 1 against the weights of bea_lib.minibatch (an independent sum)
    for n in (0, 1, 7, 60):
        a = average_weights(gamma, n) if gamma else torch.eye(n + 1, dtype=torch.float64)[-1]
        lag = float((a * (n - torch.arange(n + 1, dtype=torch.float64))).sum())
        assert startup.startup_coefficient(gamma, n) == pytest.approx(2 * lag + 1, rel=1e-12)
    assert startup.startup_coefficient(gamma, 0) == 1.0  # no memory at the first step
    # the full-batch coefficient in the limit (rel 1e-9: (n+1)γ^n at n = 2000 is below rounding)
    limit = (1 + gamma) / (1 - gamma)
    assert startup.startup_coefficient(gamma, 2000) == pytest.approx(limit, rel=1e-9)


@pytest.mark.parametrize("n", [0, 3, 40])
def test_startup_rhs_is_theorem_3_1_with_one_loss(loss, n):
    # the closed form against bea_lib.minibatch's (3.2) with one loss: the same formula coded
    # twice, so agreement to rounding (rtol 1e-12)
    hyper = {"h": 3e-3, "beta": 0.8, "rho": 0.95, "eps": 1e-2}
    ours = startup.startup_rhs(loss, n, **hyper)(0.0, THETA0)
    theirs = minibatch_adam_rhs([loss], n, **hyper)(0.0, THETA0)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0)


def test_startup_flow_is_the_minibatch_flow_with_one_loss(loss):
    # both solved to rtol 1e-10 interval by interval: they agree far below the distances read
    hyper = {"h": 2e-3, "beta": 0.8, "rho": 0.95, "eps": 1e-2}
    ours = startup.startup_flow(loss, THETA0, 60, **hyper)
    theirs = minibatch_adam_flow([loss], THETA0, 60, **hyper)
    assert max_distance(ours, theirs) < 1e-9


def test_startup_flow_past_the_switch_is_the_minibatch_flow(loss):
    # past switch_step the start-up flow is solved in one piece with the limit coefficients;
    # over a window well past the switch it still agrees with (3.2) solved interval by interval
    hyper = {"h": 2e-3, "beta": 0.5, "rho": 0.6, "eps": 1e-2}
    n = startup.switch_step(beta=0.5, rho=0.6) + 40
    ours = startup.startup_flow(loss, THETA0, n, **hyper)
    theirs = minibatch_adam_flow([loss], THETA0, n, **hyper)
    # the switch drops at most SWITCH_TOL of the O(h) term past it: 1e-7 against distances of 1e-4
    assert max_distance(ours, theirs) < 1e-7


def test_startup_flow_fixes_the_short_window_puzzle(loss):
    # Over a window short against 1/(1 − ρ) (50 steps, ρ = 0.95) the full-batch order-1 flow is
    # farther from Adam than the order-0 flow (the pilot's puzzle: it adds the full O(h) term
    # from the first step), and the start-up flow is far closer than either. A start-up flow
    # with the limit coefficients (the full-batch flow) fails the second assertion.
    hyper = {"h": 2e-3, "beta": 0.8, "rho": 0.95, "eps": 1e-2}
    n = 50
    iterates = bl.adam(loss, THETA0, n, **hyper)
    err_full = max_distance(iterates, bl.adam_flow(loss, THETA0, n, order=1, **hyper))
    err_0 = max_distance(iterates, bl.adam_flow(loss, THETA0, n, order=0, **hyper))
    err_startup = max_distance(iterates, startup.startup_flow(loss, THETA0, n, **hyper))
    assert err_full > err_0  # measured 1.8 times
    assert err_startup < err_0 / 5  # measured 15 times closer


def test_kappa_startup_flow_is_second_order(loss):
    # the κ-variant's iterates (κ = ±1) against their start-up flows over a fixed horizon:
    # slope 2 (±0.2, the tolerance of tests/test_order.py; measured 1.92, 1.93); against κ = 0
    # the flows differ by κ h f₁ and the slope is 1 (a flow with the wrong κ fails the first)
    hyper = {"beta": 0.8, "rho": 0.9, "eps": 1e-2}
    hs, T = np.array([2e-3, 1e-3, 5e-4]), 0.5  # T = 0.3: 1.76, the start-up not yet left behind
    errors = {key: [] for key in ((-1.0, "own"), (1.0, "own"), (-1.0, "adam"), (1.0, "adam"))}
    for h in hs:
        n = round(T / h)
        adam_flow = startup.startup_flow(loss, THETA0, n, h=h, kappa=0.0, **hyper)
        for kappa in (-1.0, 1.0):
            iterates = kappa_adam(loss, THETA0, n, h=h, kappa=kappa, **hyper)
            own = startup.startup_flow(loss, THETA0, n, h=h, kappa=kappa, **hyper)
            errors[kappa, "own"].append(max_distance(iterates, own))
            errors[kappa, "adam"].append(max_distance(iterates, adam_flow))
    slopes = dict(zip(errors, fitted_slopes(hs, np.array(list(errors.values())))[0]))
    for kappa in (-1.0, 1.0):
        assert slopes[kappa, "own"] == pytest.approx(2.0, abs=0.2)
        assert slopes[kappa, "adam"] == pytest.approx(1.0, abs=0.2)


def test_kappa_startup_flow_past_the_startup_is_the_kappa_flow(loss):
    # long after the start-up the κ start-up flow moves as f₀ + (1+κ)h f₁ (kappa_flow): the two
    # differ only by the start-up's O(h²) displacement, far less than the κ term's own effect
    hyper = {"h": 2e-3, "beta": 0.5, "rho": 0.6, "eps": 1e-2, "kappa": 1.0}
    n = 300
    ours = startup.startup_flow(loss, THETA0, n, **hyper)
    full = kappa_flow(loss, THETA0, n, **hyper)
    plain = kappa_flow(loss, THETA0, n, **{**hyper, "kappa": 0.0})
    assert max_distance(ours, full) < max_distance(full, plain) / 20


def test_batched_flows_equal_single_solves(loss):
    # the batch's per-flow error control accepts what scipy's RK45 would accept per flow: both
    # solutions meet rtol 1e-10, so they agree to far below the distances read (1e-8)
    hyper = {"beta": 0.8, "rho": 0.95, "eps": 1e-2}
    systems = [FlowSpec(h, order, kappa) for h in (1e-3, 4e-3)
               for order, kappa in ((0, 0.0), (1, 0.0), (1, -1.0), (1, 1.0))]
    flows, why = startup.solve_startup_flows(loss, THETA0, systems, 30, rtol=1e-10, atol=1e-12,
                                             **hyper)
    assert why == {}
    for system, flow in zip(systems, flows):
        if system.order == 0:
            single = bl.adam_flow(loss, THETA0, 30, h=system.h, order=0, **hyper)
        else:
            single = startup.startup_flow(loss, THETA0, 30, h=system.h, kappa=system.kappa, **hyper)
        assert max_distance(flow, single) < 1e-8


def test_batched_kappa_runs_equal_single_runs(loss):
    # the batched gradient and products change the rounding only (atol 1e-12 on θ of size 1)
    hyper = {"beta": 0.8, "rho": 0.95, "eps": 1e-2}
    runs = startup.kappa_runs(loss, THETA0, 25, h=[1e-2, 1e-2, 3e-3], kappa=[0.0, 1.0, -1.0],
                              **hyper)
    torch.testing.assert_close(runs[:, 0], bl.adam(loss, THETA0, 25, h=1e-2, **hyper),
                               rtol=0, atol=1e-12)
    for r, (h, kappa) in enumerate([(1e-2, 1.0), (3e-3, -1.0)], start=1):
        torch.testing.assert_close(runs[:, r], kappa_adam(loss, THETA0, 25, h=h, kappa=kappa,
                                                          **hyper), rtol=0, atol=1e-12)


def test_a_flow_that_blows_up_is_marked_not_a_crash():
    # E = log(1 − θ²) drives the sign flow to θ = 1 (at t ≈ 0.5 from θ = 0.5), where ∇E is
    # infinite: the window of h = 0.1 reaches it, that of h = 0.01 does not. The batch goes on
    # with the second flow and says that the first was not solved, and why
    def edge(theta):
        return torch.log(1 - theta**2).sum()

    theta0 = torch.tensor([0.5, 0.4], dtype=torch.float64)
    systems = [FlowSpec(0.1, 1, 0.0), FlowSpec(0.01, 1, 0.0)]
    flows, why = startup.solve_startup_flows(edge, theta0, systems, 10, beta=0.8, rho=0.9,
                                             eps=1e-2, rtol=1e-8, atol=1e-10)
    assert flows[1] is not None and torch.isfinite(flows[1]).all()
    assert flows[0] is None and why[0] in (FlowStatus.NOT_FINITE, FlowStatus.OVER_BUDGET,
                                           FlowStatus.FAILED)


def test_startup_flow_that_cannot_be_solved_raises_a_flow_error():
    def edge(theta):  # ∇E infinite at θ = 1, which the window reaches (the test above)
        return torch.log(1 - theta**2).sum()

    with pytest.raises(bl.FlowError, match="the start-up flow .* was not solved"):
        startup.startup_flow(edge, torch.tensor([0.5, 0.4]), 10, h=0.1, beta=0.8, rho=0.9,
                             eps=1e-2)


def test_bad_input_is_refused_before_any_work(loss):
    hyper = {"beta": 0.8, "rho": 0.9, "eps": 1e-2}
    with pytest.raises(ValueError, match="order must be 0 or 1"):
        startup.solve_startup_flows(loss, THETA0, [FlowSpec(1e-3, 2)], 5, **hyper)
    with pytest.raises(ValueError, match="at least one flow"):
        startup.solve_startup_flows(loss, THETA0, [], 5, **hyper)
    with pytest.raises(ValueError, match="h must be a finite number > 0"):
        startup.solve_startup_flows(loss, THETA0, [FlowSpec(-1e-3, 1)], 5, **hyper)
    with pytest.raises(ValueError, match="beta must be in"):
        startup.startup_flow(loss, THETA0, 5, h=1e-3, beta=1.0, rho=0.9, eps=1e-2)
    with pytest.raises(ValueError, match="one value per run"):
        startup.kappa_runs(loss, THETA0, 5, h=[1e-3, 2e-3], kappa=[0.0], **hyper)
    with pytest.raises(ValueError, match="evals_per_step must be an integer >= 6"):
        startup.startup_flow(loss, THETA0, 5, h=1e-3, evals_per_step=3, **hyper)
