"""Heavy-ball and GD on a network (bea_lib.nets.momentum): the iterates are those of
bea_lib.optimizers on the flat loss, and the paired comparison with Adam reads the direction the
Discussion's first conclusion predicts (a swapped β, ρ reverses it)."""
import numpy as np
import pytest
import torch

import bea_lib as bl
from bea_lib.nets.diagnostics import flat_loss
from bea_lib.nets.momentum import (fit_heavy_ball, optimizer_prediction, optimizer_verdict,
                                   train_heavy_ball)
from bea_lib.nets.train import Comm, TrainConfig, open_net

TINY = TrainConfig(dataset="digits", model="mlp", width=8, epochs=6, chunk_size=64, n_train=120,
                   n_test=40, device="cpu", dtype="float64")


def _net():
    return open_net([TINY], torch.device("cpu"), Comm(), batch=False)


@pytest.mark.parametrize("beta", [0.0, 0.6])
def test_losses_are_those_of_the_reference_iterates(beta):
    net = _net()
    E, theta0 = flat_loss(net.model, *net.train_xy)
    h = 0.3
    ref = (bl.gd(E, theta0, TINY.epochs, h=h) if beta == 0.0
           else bl.heavy_ball(E, theta0, TINY.epochs, h=h, beta=beta))
    hist = fit_heavy_ball(net, h=h, beta=beta, epochs=TINY.epochs)
    expected = [float(E(t)) for t in ref]
    # float64, chunked mean over 2 chunks against one pass: rounding only
    np.testing.assert_allclose(hist["train_loss"], expected, rtol=1e-10, atol=0)
    assert hist["train_loss"][-1] < hist["train_loss"][0]  # it trains


def test_gd_is_heavy_ball_with_beta_zero_and_the_config_sets_the_initial_weights():
    a = train_heavy_ball(TINY, data=None, h=0.3, beta=0.0)
    b = fit_heavy_ball(_net(), h=0.3, beta=0.0, epochs=TINY.epochs)
    np.testing.assert_array_equal(a["train_loss"], b["train_loss"])  # same run, bit for bit


def test_diagnostic_rows_hold_the_own_ratio_and_the_sharpness():
    hist = fit_heavy_ball(_net(), h=0.3, beta=0.5, epochs=4, diagnostics_every=2)
    ok = np.isfinite(hist["bias_ratio"])
    assert list(hist["epoch"][ok]) == [0, 2, 4]
    assert (hist["bias_ratio"][ok] > 0).all() and (hist["sharpness"][ok] > 0).all()
    net = _net()
    E, theta0 = flat_loss(net.model, *net.train_xy)
    want = bl.expansion.heavy_ball_expansion_ratio(E, theta0, h=0.3, beta=0.5)
    assert hist["bias_ratio"][0] == pytest.approx(want, rel=1e-9)  # same formula, same θ⁽⁰⁾


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="beta"):
        fit_heavy_ball(_net(), h=0.1, beta=1.0, epochs=2)
    with pytest.raises(ValueError, match="epochs"):
        fit_heavy_ball(_net(), h=0.1, beta=0.0, epochs=-1)


def test_the_paired_verdict_follows_the_prediction_and_a_swap_reverses_it():
    rng = np.random.default_rng(0)
    other = rng.normal(10.0, 1.0, 12)
    adam = other + 2.0 + rng.normal(0.0, 0.3, 12)  # Adam sharper on every seed
    assert optimizer_prediction(beta=0.9, rho=0.999) == 1
    assert optimizer_prediction(beta=0.999, rho=0.9) == -1
    interval, verdict = optimizer_verdict(adam, other, beta=0.9, rho=0.999, gated=True,
                                          n_resamples=999)
    assert interval.low > 0 and verdict == bl.Verdict.REPRODUCED
    _, swapped = optimizer_verdict(adam, other, beta=0.999, rho=0.9, gated=True, n_resamples=999)
    assert swapped == bl.Verdict.CONTRADICTED  # the mutant: β and ρ swapped
    _, outside = optimizer_verdict(adam, other, beta=0.9, rho=0.999, gated=False, n_resamples=999)
    assert outside == bl.Verdict.OUTSIDE_RANGE
