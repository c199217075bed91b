"""Starting points reached by training and runs restarted from them (bea_lib.nets.stages),
against single runs of the paper's update rule on the same loss."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from bea_lib.core.autodiff import gradient_and_hvp_fn
from bea_lib.nets.config import TrainConfig, build_model
from bea_lib.nets.data import load_dataset
from bea_lib.nets.diagnostics import bias_ratio, flat_loss
from bea_lib.nets.stages import ratio_per_step, restart, train_to_stages
from bea_lib.nets.train import train
from bea_lib.studies.intervention import kappa_adam

N = 60  # training signals: a loss that falls below 1.5 within a few dozen full-batch steps


@pytest.fixture(scope="module")
def setting():
    data = load_dataset("mnist1d", n_train=N, n_test=50)
    base = TrainConfig(model="mlp", width=8, activation="tanh", h=1e-2, eps=1e-8,
                       dtype="float64", n_train=N, n_test=50, chunk_size=N, device="cpu",
                       sharpness=False)
    return base, data


def _loss(base, data, seed):
    model = build_model(dataclasses.replace(base, seed=seed), data.input_shape, data.n_classes)
    return flat_loss(model, data.x_train.double(), data.y_train)


def test_stages_are_the_first_iterates_below_each_loss(setting):
    base, data = setting
    points = train_to_stages(base, seeds=[1000, 1001], stage_losses=[2.0, 1.5], data=data)
    assert [(p.seed, p.stage) for p in points] == [(1000, 0), (1000, 1), (1000, 2),
                                                   (1001, 0), (1001, 1), (1001, 2)]
    for seed in (1000, 1001):
        E, theta0 = _loss(base, data, seed)
        one = train(dataclasses.replace(base, seed=seed, epochs=500, loss_threshold=1.5),
                    data=data)  # the same run alone
        loss = one["train_loss"]
        for p in [q for q in points if q.seed == seed]:
            if p.stage == 0:
                assert p.epoch == 0 and torch.equal(p.theta, theta0) and p.target == math.inf
                continue
            assert p.epoch == int(np.argmax(loss < p.target))  # the first epoch below
            assert loss[p.epoch - 1] >= p.target
            # float64: E recomputed from the stored θ agrees with the recorded loss to rounding
            assert float(E(p.theta)) == pytest.approx(p.train_loss, rel=1e-10)
            assert p.train_loss == pytest.approx(loss[p.epoch], rel=1e-10)
            assert 0 <= p.test_acc <= 1 and math.isfinite(p.test_loss)


def test_a_stage_not_reached_is_a_clear_error(setting):
    base, data = setting
    with pytest.raises(ValueError, match=r"seed 1000: the training loss did not fall below 0\.01"):
        train_to_stages(base, seeds=[1000], stage_losses=[0.01], max_epochs=5, data=data)
    with pytest.raises(ValueError, match="decreasing"):
        train_to_stages(base, seeds=[1000], stage_losses=[1.0, 1.5], data=data)
    with pytest.raises(ValueError, match="distinct"):
        train_to_stages(base, seeds=[1000, 1000], stage_losses=[1.5], data=data)


def test_a_restart_is_the_kappa_variant_from_the_point_with_fresh_moments(setting):
    base, data = setting
    E, theta0 = _loss(base, data, 1000)
    E1, theta1 = _loss(base, data, 1001)
    start = torch.stack([theta1, theta1, theta1])  # every run from seed 1001's weights
    hyper = [dict(h=1e-3, beta=0.9, rho=0.7, kappa=k) for k in (-1.0, 0.0, 1.0)]
    configs = [dataclasses.replace(base, seed=1000, epochs=12, **hy) for hy in hyper]
    runs = restart(configs, start, data=data, keep_at=[0, 6, 12])
    assert torch.equal(runs.theta_at[0], start)
    for i, hy in enumerate(hyper):
        ref = kappa_adam(E1, theta1, 12, eps=1e-8, **hy)  # fresh moments from theta1
        # float64 sums over 60 signals in other orders: rounding far below 1e-10
        for n in (6, 12):
            assert torch.allclose(runs.theta_at[n][i], ref[n], rtol=0, atol=1e-10)
        assert runs.histories[i]["train_loss"][0] == pytest.approx(float(E1(theta1)), rel=1e-12)
    with pytest.raises(ValueError, match="one parameter vector per config"):
        restart(configs, start[:2], data=data)
    with pytest.raises(ValueError, match="finite"):
        restart(configs, torch.full_like(start, math.nan), data=data)


def test_the_ratio_per_step_is_the_bias_ratio_at_h_one(setting):
    base, data = setting
    points = train_to_stages(base, seeds=[1000], stage_losses=[1.5], data=data)
    theta = torch.stack([p.theta for p in points])
    pairs = [(0.9, 0.7), (0.7, 0.9)]
    got = ratio_per_step(base, theta, pairs, data=data)
    assert got.shape == (2, 2)
    E, _ = _loss(base, data, 1000)
    for i, th in enumerate(theta):
        g, hvp = gradient_and_hvp_fn(E, th)
        for j, (b, r) in enumerate(pairs):
            expected = bias_ratio(g, hvp, h=1.0, beta=b, rho=r, eps=base.eps)
            assert got[i, j] == pytest.approx(expected, rel=1e-8)  # two HVP paths, float64
