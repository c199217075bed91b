"""Training a sweep's runs as one batched model gives, run by run, the histories of sequential
``train``; and the bootstrap reading of a trend over seeds.

Identity: float64, tiny MNIST-1D data, a few epochs. Each run's numbers are computed by other
kernels (batched matrix products, a different summation order), so they agree to float64
rounding, not bitwise: rtol 1e-10 leaves room for a few epochs of rounding growth (measured
about 1e-15 after 5 epochs) and is far below any difference between two settings.
"""
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import bea_lib as bl
from torch.func import stack_module_state

from bea_lib.core.autodiff import gradient_and_hvp_fn
from bea_lib.core.optimizers import AdamState, adam_update
from bea_lib.nets.batched import (StackedNet, _Windows, module_hvp_fn, stacked_forward,
                                  stacked_forward_supported)
from bea_lib.nets.data import Dataset
from bea_lib.nets.diagnostics import flat_loss
from bea_lib.nets.distributed import Comm
from bea_lib.nets.models import make_model, mlp
from bea_lib.nets.module_net import ModuleNet, open_net
from bea_lib.nets.train import TrainConfig, train
from bea_lib.studies.intervention import kappa_update

BASE = TrainConfig(dataset="mnist1d", model="mlp", width=6, epochs=5, n_train=96, n_test=32,
                   dtype="float64", chunk_size=40, test_every=2, device="cpu")
SETTINGS = [(1e-2, 0.9, 0.999, 1e-8, 0), (3e-3, 0.5, 0.99, 1e-6, 1), (2e-2, 0.99, 0.9, 1e-3, 2)]


def _assert_same(a, b):
    assert a.stop_reason == b.stop_reason
    assert len(a) == len(b)
    for column in a.columns:
        if column != "wall_time":  # the batch's time, not the run's
            np.testing.assert_allclose(b[column], a[column], rtol=1e-10, atol=1e-12,
                                       err_msg=column)


@pytest.mark.parametrize("model, norm", [("mlp", None), ("cnn", None), ("cnn", "group")])
def test_each_run_of_a_batch_equals_its_sequential_run(model, norm):
    # mlp and cnn take the stacked layers; the CNN with GroupNorm takes vmap
    configs = [dataclasses.replace(BASE, model=model, norm=norm, h=h, beta=b, rho=r, eps=e,
                                   seed=s) for h, b, r, e, s in SETTINGS]
    for config, batched in zip(configs, train(configs)):
        _assert_same(train(config), batched)


def test_runs_stop_on_their_own_rules_and_the_others_go_on():
    configs = [dataclasses.replace(BASE, epochs=3), dataclasses.replace(BASE, seed=1),
               dataclasses.replace(BASE, seed=2, loss_threshold=2.36)]
    histories = train(configs)
    assert [len(h) for h in histories][:2] == [4, 6]
    assert histories[2].stop_reason == "loss_threshold"
    for config, batched in zip(configs, histories):
        _assert_same(train(config), batched)


def _odd_cnn():
    """Convolutions of other widths, strides and paddings, one without bias, and a Flatten of
    (C, L) > 1 into a linear layer: the cases the networks of bea_lib.nets.models do not cover."""
    return nn.Sequential(nn.Conv1d(2, 3, 5, stride=3, padding=2, bias=False), nn.Tanh(),
                         nn.Conv1d(3, 4, 3, stride=1, padding=0), nn.GELU(), nn.Flatten(),
                         nn.Linear(4 * 3, 5))


@pytest.mark.parametrize("build, input_shape", [
    (lambda: make_model("mlp", (1, 40), 10, width=7), (1, 40)),
    (lambda: mlp((1, 40), 10, width=7, depth=0, activation="tanh"), (1, 40)),
    (lambda: nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3, bias=False)), (6,)),
    (lambda: make_model("cnn", (1, 40), 10, width=5), (1, 40)),
    (_odd_cnn, (2, 13)),
])
def test_stacked_forward_is_each_runs_own_forward(build, input_shape):
    torch.manual_seed(0)
    models = [build().double() for _ in range(3)]
    assert stacked_forward_supported(models[0], input_shape)
    params, _ = stack_module_state(models)
    x = torch.randn(9, *input_shape, dtype=torch.float64)
    out = stacked_forward(models[0], params, x)
    for r, model in enumerate(models):  # (classes, n) per run; other kernels, float64 rounding
        torch.testing.assert_close(out[r], model(x).t(), rtol=1e-12, atol=1e-12)


def test_stacked_forward_is_not_claimed_for_other_models():
    assert not stacked_forward_supported(make_model("cnn", (1, 40), 10, norm="group"), (1, 40))
    assert not stacked_forward_supported(make_model("cnn", (1, 8, 8), 10), (1, 8, 8))  # Conv2d
    assert not stacked_forward_supported(nn.Sequential(nn.Linear(40, 3)), (1, 40))  # on signals
    assert not stacked_forward_supported(nn.Sequential(nn.Conv1d(1, 2, 3)), (1, 40))  # no features


@pytest.mark.parametrize("width, stride, pad", [(3, 1, 1), (3, 2, 1), (5, 3, 2), (2, 2, 0)])
def test_convolution_windows_and_their_backward(width, stride, pad):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 11, 4, dtype=torch.float64, requires_grad=True)  # (k, C, L, n)
    cols = _Windows.apply(x, width, stride, pad)
    # against torch's own unfold of the padded signal
    expected = torch.nn.functional.pad(x, (0, 0, pad, pad)).unfold(-2, width, stride)
    torch.testing.assert_close(cols, expected.movedim(-1, -3), rtol=0, atol=0)  # copies only
    assert torch.autograd.gradcheck(lambda x: _Windows.apply(x, width, stride, pad), (x,))


def test_batched_update_is_adam_update_run_by_run():
    # the κ-variant's update of k runs with per-run (k, 1) hyperparameters, against adam_update
    # run by run: the rows with κ = 0 bit for bit; the row with κ ≠ 0 adds κh²f₁ (rounding only)
    torch.manual_seed(0)
    g, m = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    v = torch.rand(3, 5, dtype=torch.float64)
    hyper = {"h": [1e-2, 1e-3, 5e-2], "beta": [0.9, 0.0, 0.99], "rho": [0.999, 0.9, 0.5],
             "eps": [1e-8, 1e-3, 1.0], "kappa": [0.0, 1.0, 0.0]}
    A = torch.randn(5, 5, dtype=torch.float64)
    H = A @ A.T  # one Hessian for every run
    asked = []

    def hvp_at(rows):
        asked.append(rows)
        return lambda u: u @ H

    d, new = kappa_update(g, AdamState(m, v, 4), hvp_at,
                          **{k: torch.tensor(x, dtype=torch.float64)[:, None]
                             for k, x in hyper.items()})
    assert asked == [[1]]  # no Hessian-vector product for the κ = 0 rows
    for r in range(3):
        one = {k: x[r] for k, x in hyper.items() if k != "kappa"}
        d_r, new_r = adam_update(g[r], AdamState(m[r], v[r], 4), **one)
        if hyper["kappa"][r] == 0:
            assert torch.equal(d[r], d_r)
        else:
            f1 = bl.expansion.bias_direction(g[r], lambda u: H @ u, beta=one["beta"],
                                             rho=one["rho"], eps=one["eps"])
            torch.testing.assert_close(d[r], d_r + one["h"] ** 2 * f1, rtol=1e-13, atol=0)
        assert torch.equal(new.m[r], new_r.m) and torch.equal(new.v[r], new_r.v)
    assert new.n == 5


def test_a_batch_of_kappa_runs_equals_the_runs_one_at_a_time():
    # κ = -1, 0, +1 in one batch (stacked Hessian-vector products) against each run alone (the
    # module's flat loss): float64 rounding over a few steps, rtol 1e-10 as above
    configs = [dataclasses.replace(BASE, kappa=k, seed=s, h=2e-2)
               for k, s in ((-1.0, 0), (0.0, 0), (1.0, 1))]
    for config, batched in zip(configs, train(configs)):
        _assert_same(train(config), batched)


def test_kappa_zero_in_a_batch_is_adam_bit_for_bit():
    # the κ = 0 run of a batch whose other run has κ = 1 against the same κ = 0 run in a batch
    # of the same shape with κ = 0 twice: the κ term touches only its own row
    plain = dataclasses.replace(BASE, seed=0)
    mixed = train([plain, dataclasses.replace(plain, seed=1, kappa=1.0)])[0]
    adam = train([plain, dataclasses.replace(plain, seed=1)])[0]
    for column in mixed.columns:
        if column != "wall_time":
            np.testing.assert_array_equal(mixed[column], adam[column], err_msg=column)


def test_bad_batches_are_refused():
    with pytest.raises(ValueError, match="empty"):
        train([])
    with pytest.raises(ValueError, match="width"):
        train([BASE, dataclasses.replace(BASE, width=7)])
    with pytest.raises(ValueError, match="batch normalisation"):
        train([dataclasses.replace(BASE, model="cnn", norm="batch")])
    with pytest.raises(ValueError, match="checkpoint_every"):
        train([dataclasses.replace(BASE, checkpoint_every=2)])
    with pytest.raises(ValueError, match="out_dir"):
        train([BASE, BASE], "somewhere")


# --- the gradient and the Hessian-vector product by hand ---------------------------------------
# Against autograd's reverse mode on each run's own flat loss (bea_lib.autodiff): float64, the
# same sums in other orders (measured about 1e-15 relative); 1e-10 relative to the largest entry
# leaves room for that and is far below any error of the method (a dropped term is O(1)).
HAND_RTOL = 1e-10

BY_HAND = [
    (lambda: make_model("mlp", (1, 40), 10, width=7), (1, 40)),
    (lambda: mlp((1, 40), 10, width=5, activation="tanh"), (1, 40)),
    (lambda: mlp((1, 40), 10, width=5, activation="gelu"), (1, 40)),
    (lambda: nn.Sequential(nn.Linear(6, 4), nn.GELU(approximate="tanh"),
                           nn.Linear(4, 3, bias=False)), (6,)),
    (lambda: make_model("cnn", (1, 40), 10, width=4), (1, 40)),
    (_odd_cnn, (2, 13)),
]


def _close(got, want):
    scale = want.abs().max()
    assert scale > 0
    assert (got - want).abs().max() <= HAND_RTOL * scale, float((got - want).abs().max() / scale)


def _tiny_data(input_shape, n_classes, n=23):
    torch.manual_seed(1)
    x = torch.randn(n, *input_shape, dtype=torch.float64)
    y = torch.randint(0, n_classes, (n,))
    return Dataset("tiny", x, y, x[:5], y[:5], n_classes)


def _reverse(model, data):
    """(∇E, v ↦ ∇²E v) of one run by autograd, reverse over reverse (bea_lib.autodiff)."""
    E, theta = flat_loss(model, data.x_train, data.y_train)
    return gradient_and_hvp_fn(E, theta)


@pytest.mark.parametrize("build, input_shape", BY_HAND)
def test_stacked_gradient_and_hvp_by_hand_equal_reverse_over_reverse(build, input_shape):
    torch.manual_seed(0)
    models = [build().double() for _ in range(3)]
    n_classes = models[0][-1].out_features
    data = _tiny_data(input_shape, n_classes)
    # chunk_size 10: three passes over the 23 examples, each with its own tape
    net = StackedNet(models, data, chunk_size=10, keep_tapes=True)
    assert net.model is not None  # the path by hand, not autograd's
    theta = net.theta()
    g, _ = net.gradient(theta)
    V = torch.randn_like(theta)
    reverse = [_reverse(m, data) for m in models]
    kept = net.hvp_fn(theta, [0, 1, 2])(V)  # from the gradient's tapes
    some = net.hvp_fn(theta, [2, 0])(V[[2, 0]])  # the tapes of two runs, in another order
    fresh = StackedNet(models, data, chunk_size=10).hvp_fn(theta, [1])(V[[1]])  # new passes
    for r, (g_r, hvp_r) in enumerate(reverse):
        _close(g[r], g_r)
        _close(kept[r], hvp_r(V[r]))
    _close(some[0], reverse[2][1](V[2]))
    _close(some[1], reverse[0][1](V[0]))
    _close(fresh[0], reverse[1][1](V[1]))


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_single_run_hvp_by_hand_equals_reverse_over_reverse(model):
    torch.manual_seed(0)
    net_module = make_model(model, (1, 40), 10, width=5).double()
    data = _tiny_data((1, 40), 10)
    net = ModuleNet(net_module, (data.x_train, data.y_train), (data.x_test, data.y_test),
                    chunk_size=10, comm=Comm())
    theta = net.theta()
    fn = net.hvp_fn(theta, [0])
    _, hvp = _reverse(net_module, data)
    for _ in range(2):  # the tapes are made once and serve every product
        v = torch.randn_like(theta)
        _close(fn(v)[0], hvp(v[0]))


def test_hvp_by_hand_is_not_claimed_for_other_models():
    model = make_model("cnn", (1, 40), 10, width=4, norm="group").double()
    data = _tiny_data((1, 40), 10)
    assert StackedNet([model], data, chunk_size=10).model is None  # vmap, reverse over reverse
    assert module_hvp_fn(model, data.x_train, data.y_train, None, chunk_size=10) is None


def test_kappa_batch_reuses_the_gradients_tapes():
    # a κ batch keeps its gradient's tapes; the products they give are those of new passes
    configs = [dataclasses.replace(BASE, kappa=k, seed=s) for k, s in ((1.0, 0), (0.0, 1))]
    net = open_net(configs, torch.device("cpu"), Comm(), batch=True)
    assert net.keep_tapes
    theta = net.theta()
    net.gradient(theta)
    V = torch.randn(1, theta.shape[1], dtype=theta.dtype)
    kept = net.hvp_fn(theta, [0])(V)
    net.keep_tapes, net._tapes = False, None
    _close(kept, net.hvp_fn(theta, [0])(V))
