"""The one network loop (bea_lib.nets.loop.fit) for every optimizer.

- Adam and κ-Adam, one run and a batch: the histories of the loop before it took an optimizer,
  recorded at 9ce0bf1 by ``tests/fixtures/make_loop_reference.py``: a single Adam run's
  trajectory bit for bit, the rest within float64 rounding (the R-operator sums in another order).
- GD and heavy-ball: the loop's iterates are those of ``bl.gd`` / ``bl.heavy_ball`` on the
  network's flat loss, RMSProp's those of ``bl.rmsprop``, one run and a batch.
- Each optimizer's diagnostics use its own expansion ratio.
"""
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import bea_lib as bl
from bea_lib.core.expansion import heavy_ball_expansion_ratio
from bea_lib.nets.config import TrainConfig, build_model
from bea_lib.nets.data import load_dataset
from bea_lib.nets.diagnostics import flat_loss
from bea_lib.nets.history import DIAGNOSTIC_COLUMNS
from bea_lib.nets.distributed import Comm
from bea_lib.nets.loop import fit
from bea_lib.nets.module_net import open_net
from bea_lib.nets.rules import RULES
from bea_lib.nets.train import train

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "loop_reference.json").read_text())
DIGITS = load_dataset("digits", n_train=64, n_test=16).to(torch.device("cpu"), torch.float64)
TINY = TrainConfig(dataset="digits", model="mlp", width=4, n_train=64, n_test=16,
                   dtype="float64", device="cpu", epochs=5)


# Since the R-operator and the hand-written stacked gradient (issue 28) the same sums run in
# another order: float64 rounding, measured at most 3.6e-11 relative on the trajectory's columns
# and 5.1e-10 on the diagnostics (whose f₁ divides by √(g² + ε)) over these 6 steps, against
# differences of order 1 for a wrong step. A single Adam run (autograd's gradient, no product in
# its step) still repeats the reference's trajectory bit for bit.
TRAJECTORY_RTOL, DIAGNOSTIC_RTOL = 1e-9, 1e-8
DIAGNOSTICS = DIAGNOSTIC_COLUMNS


@pytest.mark.parametrize("case", sorted(REFERENCE["cases"]))
def test_adam_and_kappa_adam_are_the_loop_of_9ce0bf1(case):
    torch.set_num_threads(1)  # as the reference was recorded
    configs = [TrainConfig(**{**REFERENCE["base"], **c}) for c in REFERENCE["cases"][case]]
    histories = train(configs) if len(configs) > 1 else [train(configs[0])]
    for got, want, config in zip(histories, REFERENCE["histories"][case], configs, strict=True):
        assert got.stop_reason == want["stop_reason"]
        exact = len(configs) == 1 and config.kappa == 0
        for column, values in want["columns"].items():
            if column == "wall_time":
                continue
            values = np.asarray(values, dtype=float)
            if exact and column not in DIAGNOSTICS:
                np.testing.assert_array_equal(got[column], values, err_msg=f"{case}: {column}")
            else:
                rtol = DIAGNOSTIC_RTOL if column in DIAGNOSTICS else TRAJECTORY_RTOL
                np.testing.assert_allclose(got[column], values, rtol=rtol, atol=0,
                                           err_msg=f"{case}: {column}")


def _iterates(configs):
    """θ⁽¹⁾, …, θ⁽ⁿ⁾ of each run of ``configs`` trained by ``fit``, and each run's flat loss
    E(θ) and θ⁽⁰⁾."""
    net = open_net(configs, torch.device("cpu"), Comm(), DIGITS, batch=len(configs) > 1)
    losses = [flat_loss(build_model(c, DIGITS.input_shape, DIGITS.n_classes), DIGITS.x_train,
                        DIGITS.y_train) for c in configs]
    steps = []
    fit(net, configs, RULES[configs[0].optimizer],
        on_step=lambda n, theta, *rest: steps.append(theta.clone()))
    return torch.stack(steps, 1), losses


REFERENCES = {  # optimizer -> (its settings, the θ-vector iteration it must equal)
    "gd": ({"h": 0.5}, lambda E, t, n, c: bl.gd(E, t, n, h=c.h)),
    "heavy_ball": ({"h": 0.2, "beta": 0.8}, lambda E, t, n, c: bl.heavy_ball(E, t, n, h=c.h,
                                                                              beta=c.beta)),
    "rmsprop": ({"h": 1e-2, "rho": 0.9, "eps": 1e-6},
                lambda E, t, n, c: bl.rmsprop(E, t, n, h=c.h, rho=c.rho, eps=c.eps)),
}


@pytest.mark.parametrize("batch", [False, True], ids=["one run", "batch"])
@pytest.mark.parametrize("optimizer", sorted(REFERENCES))
def test_gd_heavy_ball_and_rmsprop_are_the_update_rules_of_the_theta_iteration(optimizer, batch):
    settings, reference = REFERENCES[optimizer]
    config = dataclasses.replace(TINY, optimizer=optimizer, **settings)
    configs = ([config, dataclasses.replace(config, seed=3, h=config.h / 2)] if batch
               else [config])
    steps, losses = _iterates(configs)
    for run, c, (E, theta0) in zip(steps, configs, losses):
        want = reference(E, theta0, c.epochs, c)[1:]
        # the loop's gradient is a sum over chunks divided by N, the reference's the autograd
        # gradient of the mean: float64 rounding, carried over five steps
        assert float((run - want).abs().max() / want.abs().max()) < 1e-10, c


def test_rmsprop_and_gd_fix_beta_and_only_adam_takes_kappa():
    assert dataclasses.replace(TINY, optimizer="rmsprop").beta == 0.0
    assert dataclasses.replace(TINY, optimizer="gd", beta=0.9).beta == 0.0
    assert dataclasses.replace(TINY, optimizer="heavy_ball", beta=0.9).beta == 0.9
    with pytest.raises(ValueError, match="kappa must be 0 for optimizer gd"):
        dataclasses.replace(TINY, optimizer="gd", kappa=1.0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        dataclasses.replace(TINY, optimizer="sgd")


def test_heavy_ball_logs_its_own_expansion_ratio_and_a_one_norm_without_eps():
    config = dataclasses.replace(TINY, optimizer="heavy_ball", h=0.2, beta=0.8, epochs=2,
                                 diagnostics_every=1)
    history = train(config, data=DIGITS)
    E, theta0 = flat_loss(build_model(config, DIGITS.input_shape, DIGITS.n_classes),
                          DIGITS.x_train, DIGITS.y_train)
    want = heavy_ball_expansion_ratio(E, theta0, h=0.2, beta=0.8)
    # the same ratio from the chunked gradient and from autograd's: float64 rounding
    assert math.isclose(history["bias_ratio"][0], want, rel_tol=1e-10)
    assert np.isfinite(history["sharpness"]).all()
    assert np.isnan(history["bias_alignment"]).all()  # Adam's alone
    np.testing.assert_array_equal(history["grad_norm_1_eps"], history["grad_norm_1"])
