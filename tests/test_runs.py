"""The batched Adam runner against bl.adam, and the converged/oscillating/diverged classifier."""
import math

import pytest
import torch

import bea_lib as bl
from bea_lib.core.convergence import classify_run
from bea_lib.base.vocab import Convergence

CONVERGED, OSCILLATING, DIVERGED = (Convergence.CONVERGED, Convergence.OSCILLATING,
                                    Convergence.DIVERGED)

QUADRATIC = lambda th: 0.5 * (th**2).sum()  # noqa: E731  (Hessian = I: GD is stable iff h < 2)


def test_adam_runs_equals_adam_run_by_run():
    loss = bl.losses.logcosh_regression(3, seed=1)
    theta0 = torch.tensor([0.3, -1.0, 2.0])
    hs, betas, rhos = [1e-2, 3e-2], [0.9, 0.5], [0.999, 0.9]
    many = bl.adam_runs(loss, theta0, 50, h=hs, beta=betas, rho=rhos, eps=1e-8)
    assert many.shape == (51, 2, 3)
    for k in range(2):
        one = bl.adam(loss, theta0, 50, h=hs[k], beta=betas[k], rho=rhos[k], eps=1e-8)
        # same update function, gradients batched by vmap: only summation order may differ
        torch.testing.assert_close(many[:, k], one, rtol=0, atol=1e-13)


def test_adam_runs_loss_params_and_bad_input():
    family = lambda th, a: 0.5 * a * (th**2).sum()  # noqa: E731
    out = bl.adam_runs(family, torch.ones(2), 5, h=0.1, beta=0.9, rho=0.99, eps=1e-8,
                       loss_params=torch.tensor([1.0, 2.0, 3.0]))
    assert out.shape == (6, 3, 2)
    with pytest.raises(ValueError, match="beta"):
        bl.adam_runs(QUADRATIC, torch.ones(2), 5, h=0.1, beta=[0.9, 1.0], rho=0.99, eps=1e-8)
    with pytest.raises(ValueError, match="h"):
        bl.adam_runs(QUADRATIC, torch.ones(2), 5, h=[0.1, 0.2, 0.3], beta=[0.9, 0.5], rho=0.99,
                     eps=1e-8)
    with pytest.raises(ValueError, match="theta0"):
        bl.adam_runs(QUADRATIC, torch.ones(2, 2, 2), 5, h=0.1, beta=0.9, rho=0.99, eps=1e-8)


def test_classify_converged():
    run = bl.gd(QUADRATIC, torch.tensor([1.0, -2.0]), 400, h=0.5)  # contracts by 1/2 per step
    status = classify_run(run)
    assert status.status == CONVERGED
    assert status.tail_spread <= 1e-6  # the default tol; the tail is 2^-360 from 0


def test_classify_oscillating():
    run = bl.gd(QUADRATIC, torch.tensor([1.0, -2.0]), 400, h=2.0)  # θ ↦ -θ: a 2-cycle
    status = classify_run(run)
    assert status.status == OSCILLATING
    assert status.tail_spread == pytest.approx(2 * math.sqrt(5), rel=1e-12)  # the cycle's diameter


def test_classify_oscillating_adam_spikes():
    """Adam with tiny ε near a minimum: heavy-ball with step h(1-β)/√ε = 100 is unstable there."""
    run = bl.adam(QUADRATIC, torch.tensor([1.0, -2.0]), 1000, h=0.1, beta=0.9, rho=0.9, eps=1e-8)
    assert classify_run(run).status == OSCILLATING


def test_classify_diverged():
    run = bl.gd(QUADRATIC, torch.tensor([1.0, -2.0]), 1200, h=3.0,  # θ ↦ -2θ overflows to inf
                on_nonfinite="keep")
    assert not torch.isfinite(run[-1]).all()
    status = classify_run(run)
    assert status.status == DIVERGED and status.max_norm == math.inf
    bounded = bl.gd(QUADRATIC, torch.tensor([1.0, -2.0]), 40, h=3.0)  # finite but past the bound
    assert classify_run(bounded, bound=1e6).status == DIVERGED


def test_classify_bad_input():
    with pytest.raises(ValueError, match="iterates"):
        classify_run(torch.zeros(5))
    with pytest.raises(ValueError, match="tail"):
        classify_run(torch.zeros(5, 2), tail=0.0)
    with pytest.raises(ValueError, match="tol"):
        classify_run(torch.zeros(5, 2), tol=-1.0)
