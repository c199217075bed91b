"""Modified flows against closed forms and an independent evaluation of (2.2)-(2.3)."""
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

import bea_lib as bl
from bea_lib.core.minibatch import minibatch_adam_flow
from losses import bilinear_loss, random_smooth_loss


def spd_matrix(p=4, seed=1):
    gen = torch.Generator().manual_seed(seed)
    Q = torch.randn(p, p, generator=gen, dtype=torch.float64)
    return Q @ Q.T / p + 0.5 * torch.eye(p, dtype=torch.float64)


@pytest.mark.parametrize("order", [0, 1])
def test_gd_flow_on_quadratic_is_matrix_exponential(order):
    """E = ½θᵀAθ: the flow is linear, θ̇ = -(A + (h/2)A²)θ, solved by expm."""
    A = spd_matrix()
    theta0 = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    h, n = 0.1, 30
    flow = bl.gd_flow(lambda th: 0.5 * th @ A @ th, theta0, n, h=h, order=order)
    M = (A + order * h / 2 * A @ A).numpy()
    exact = np.stack([scipy.linalg.expm(-M * k * h) @ theta0.numpy() for k in range(n + 1)])
    # solver rtol 1e-10 per step accumulates to ~1e-9 relative over 30 steps; 1e-8 leaves a margin
    np.testing.assert_allclose(flow.numpy(), exact, rtol=0, atol=1e-8 * np.abs(exact).max())


def test_heavy_ball_flow_with_beta_zero_is_gd_flow():
    loss = random_smooth_loss(5)
    theta0 = torch.linspace(-1, 1, 5, dtype=torch.float64)
    a = bl.heavy_ball_flow(loss, theta0, 20, h=0.05, beta=0.0, shifted_start=True)
    b = bl.gd_flow(loss, theta0, 20, h=0.05)
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # β = 0: no shift, the same right-hand side


def paper_adam_rhs(loss, theta, *, h, beta, rho, eps):
    """(2.2)-(2.3) written out with the full Hessian (independent of bea_lib.core.flows)."""
    theta = theta.detach().requires_grad_(True)
    g = torch.autograd.grad(loss(theta), theta)[0].detach()
    H = torch.autograd.functional.hessian(loss, theta.detach())
    grad_one_norm = H @ (g / torch.sqrt(g**2 + eps))  # ∇‖∇E‖_{1,ε} by the chain rule
    braces = ((1 + beta) / (1 - beta) - (1 + rho) / (1 - rho)
              + (1 + rho) / (1 - rho) * eps / (g**2 + eps))
    bias = h / 2 * braces * grad_one_norm  # (2.3)
    return -(g + bias) / torch.sqrt(g**2 + eps)  # (2.2)


@pytest.mark.parametrize("eps", [1e-8, 0.3, 10.0])
def test_adam_rhs_equals_paper_formula_with_full_hessian(eps):
    loss = random_smooth_loss(4, seed=3)
    theta = torch.tensor([0.3, -1.2, 0.8, 2.0], dtype=torch.float64)
    hyper = dict(h=0.05, beta=0.9, rho=0.999, eps=eps)
    got = bl.adam_rhs(loss, **hyper)(0.0, theta)
    want = paper_adam_rhs(loss, theta, **hyper)
    # same numbers up to float64 rounding
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_adam_rhs_order_zero_is_perturbed_sign_flow():
    loss = random_smooth_loss(4, seed=3)
    theta = torch.tensor([0.3, -1.2, 0.8, 2.0], dtype=torch.float64)
    g = bl.gradient(loss, theta)
    got = bl.adam_rhs(loss, h=0.05, beta=0.9, rho=0.99, eps=1e-2, order=0)(0.0, theta)
    # same formula
    torch.testing.assert_close(got, -g / torch.sqrt(g**2 + 1e-2), rtol=1e-15, atol=0)


def test_rmsprop_flow_is_adam_flow_with_beta_zero():
    loss, theta0 = bilinear_loss(), torch.tensor([2.8, 3.5], dtype=torch.float64)
    a = bl.rmsprop_flow(loss, theta0, 10, h=0.01, rho=0.95, eps=1e-3)
    b = bl.adam_flow(loss, theta0, 10, h=0.01, beta=0.0, rho=0.95, eps=1e-3)
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # one implementation


def test_flow_shape_and_start():
    loss, theta0 = bilinear_loss(), torch.tensor([2.8, 3.5], dtype=torch.float64)
    out = bl.adam_flow(loss, theta0, 7, h=1e-3, beta=0.9, rho=0.99, eps=1e-8)
    assert out.shape == (8, 2) and out.dtype == torch.float64
    torch.testing.assert_close(out[0], theta0, rtol=0, atol=0)  # θ̃(0) = θ⁽⁰⁾ exactly
    assert bl.gd_flow(loss, theta0, 0, h=1e-3).shape == (1, 2)


def test_one_element_sequence_is_full_batch_and_longer_sequences_are_theorem_3_1():
    loss, theta0 = bilinear_loss(), torch.tensor([2.8, 3.5], dtype=torch.float64)
    hyper = dict(h=1e-3, beta=0.9, rho=0.99, eps=1e-8)  # h small: no ExpansionValidityWarning
    torch.testing.assert_close(bl.adam_flow([loss], theta0, 5, **hyper),
                               bl.adam_flow(loss, theta0, 5, **hyper), rtol=0, atol=0)  # same ODE
    other = lambda th: loss(th) + 0.1 * th.sum()  # noqa: E731
    torch.testing.assert_close(bl.adam_flow([loss, other], theta0, 3, **hyper),
                               minibatch_adam_flow([loss, other], theta0, 3,
                                                   **hyper), rtol=0, atol=0)
    with pytest.raises(ValueError, match="derived for ε inside"):
        bl.adam_flow([loss, other], theta0, 5, eps_inside=False, **hyper)
    with pytest.raises(ValueError, match="full-batch only"):
        bl.gd_flow([loss, other], theta0, 5, h=0.01)


BAD_ADAM_ARGS = [
    ("h", dict(h=0.0)), ("h", dict(h=float("nan"))), ("beta", dict(beta=1.0)),
    ("beta", dict(beta=-0.1)), ("rho", dict(rho=1.0)), ("eps", dict(eps=0.0)),
    ("order", dict(order=2)), ("order", dict(order=True)),
]


@pytest.mark.parametrize("name, bad", BAD_ADAM_ARGS)
def test_adam_flow_rejects_bad_hyperparameters(name, bad):
    hyper = dict(h=0.01, beta=0.9, rho=0.99, eps=1e-8) | bad
    with pytest.raises(ValueError, match=name):
        bl.adam_flow(bilinear_loss(), torch.tensor([1.0, 1.0]), 3, **hyper)


@pytest.mark.parametrize("name, theta0, n_steps", [
    ("theta0", torch.ones(2, 2), 3), ("theta0", torch.tensor([1.0, float("inf")]), 3),
    ("n_steps", torch.ones(2), -1), ("n_steps", torch.ones(2), 2.5)])
def test_flows_reject_bad_start_and_steps(name, theta0, n_steps):
    for call in (lambda: bl.gd_flow(bilinear_loss(), theta0, n_steps, h=0.1),
                 lambda: bl.heavy_ball_flow(bilinear_loss(), theta0, n_steps, h=0.1, beta=0.5)):
        with pytest.raises(ValueError, match=name):
            call()


def test_heavy_ball_flow_rejects_bad_beta():
    with pytest.raises(ValueError, match="beta"):
        bl.heavy_ball_flow(bilinear_loss(), torch.ones(2), 3, h=0.1, beta=1.5)


def test_solve_flow_reports_solver_failure():
    """θ̇ = θ², θ(0) = 1 blows up at t = 1: the solver's message comes back as RuntimeError."""
    with pytest.raises(RuntimeError, match="at t = 1 of 2"):  # a FlowError: here the budget
        bl.solve_flow(lambda t, th: th**2, torch.ones(1, dtype=torch.float64), 20, h=0.1)


@pytest.mark.parametrize("theta0", [[1.0, -2.0], np.array([1.0, -2.0], dtype=np.float32),
                                    torch.tensor([1.0, -2.0], dtype=torch.float32),
                                    torch.tensor([1, -2])])
def test_theta0_of_any_real_kind_runs_in_float64(theta0):
    """A list used to run in float32 (so an ε of 1e-8 next to 1 was lost)."""
    assert bl.gd_flow(lambda th: (th**2).sum(), theta0, 2, h=0.1).dtype == torch.float64
    assert bl.adam(lambda th: (th**2).sum(), theta0, 2, h=0.1, beta=0.5, rho=0.5,
                   eps=1e-8).dtype == torch.float64


def test_theta0_from_a_list_is_not_rounded_through_float32():
    torch.set_default_dtype(torch.float32)  # torch's default outside the tests (conftest restores)
    theta0 = bl.validation.check_theta0([0.1, 1.0 + 1e-9])
    torch.testing.assert_close(theta0, torch.tensor([0.1, 1.0 + 1e-9], dtype=torch.float64),
                               rtol=0, atol=0)  # the very same doubles


@pytest.mark.parametrize("theta0, message", [
    ([1.0, "a"], "theta0 must be a 1-D sequence of real numbers"),
    (torch.tensor([1 + 1j]), "real numbers"), (torch.tensor([True]), "real numbers"),
    ([], "at least one component"), ([1.0, float("nan")], r"theta0\[1\] = nan")])
def test_theta0_refused_with_a_reason(theta0, message):
    with pytest.raises(ValueError, match=message):
        bl.gd_flow(lambda th: (th**2).sum(), theta0, 2, h=0.1)


@pytest.mark.parametrize("n_steps", [float("nan"), float("inf"), None, 1e20, True, 2.0, "3",
                                     10**12])
def test_n_steps_refused_by_our_message(n_steps):
    """NaN, inf, None and 1e20 used to give torch or Python errors; floats are refused even when
    integral (a forgotten round(T / h))."""
    with pytest.raises(ValueError, match="n_steps must be an integer >= 0"):
        bl.adam_flow(bilinear_loss(), torch.ones(2), n_steps, h=1e-3, beta=0.5, rho=0.5, eps=1e-2)


def test_numpy_and_torch_integers_are_step_counts():
    for n in (np.int64(3), torch.tensor(3)):
        assert bl.gd_flow(lambda th: (th**2).sum(), torch.ones(2), n, h=0.1).shape == (4, 2)


@pytest.mark.parametrize("call", [
    lambda: bl.adam_flow(bilinear_loss(), [2.8, 3.5], 4, h=1e-3, beta=0.5, rho=0.6, eps=1e-2),
    lambda: bl.adam_flow([bilinear_loss()] * 2, [2.8, 3.5], 4, h=1e-3, beta=0.5, rho=0.6, eps=1e-2),
    lambda: bl.heavy_ball_flow(bilinear_loss(), [2.8, 3.5], 4, h=1e-5, beta=0.5,
                               shifted_start=True)], ids=["full", "minibatch", "heavy-ball"])
def test_theta0_is_checked_once_per_call(call, monkeypatch):
    """One check at the public entry point (the mini-batch flow used to check θ per interval)."""
    from bea_lib.core import flows, integrate, minibatch, validation
    calls = []

    def counting(theta0):
        calls.append(1)
        return validation.check_theta0(theta0)
    for module in (flows, integrate, minibatch):
        monkeypatch.setattr(module, "check_theta0", counting)
    call()
    assert len(calls) == 1


def test_expansion_validity_warning():
    """A stiff probe, h = 0.05 against 1 - β = 0.1, warns; the order tests' settings do not."""
    loss = lambda th: ((th - 0.3) ** 2).sum()  # noqa: E731
    with pytest.warns(bl.ExpansionValidityWarning,
                      match=r"h = 0.05 .*0.679 times the leading term"):
        bl.adam_flow(loss, [1.0], 0, h=0.05, beta=0.9, rho=0.5, eps=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bl.ExpansionValidityWarning)
        bl.adam_flow(bilinear_loss(), [2.8, 3.5], 0, h=2e-3, beta=0.9, rho=0.95, eps=1e3)
        bl.heavy_ball_flow(bilinear_loss(), [2.8, 3.5], 0, h=1e-5, beta=0.9)


def test_heavy_ball_expansion_ratio_on_a_diagonal_quadratic():
    """E = ½Σ a_j θ_j²: H g = a² θ, so the ratio is h(1+β)/(2(1-β)²)‖a²θ‖/‖aθ‖."""
    a, theta = torch.tensor([1.0, 4.0]), torch.tensor([1.0, 1.0])
    got = bl.flows.heavy_ball_expansion_ratio(lambda th: 0.5 * (a * th**2).sum(), theta,
                                              h=0.01, beta=0.5)
    want = 0.01 * 1.5 / (2 * 0.25) * (a**2 * theta).norm() / (a * theta).norm()
    assert got == pytest.approx(want.item(), rel=1e-14)  # the same formula, rounding only
