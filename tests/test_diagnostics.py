"""Diagnostics of the h-expansion along training (bea_lib.nets.diagnostics), checked against full
Hessians on tiny problems, the modified flows of bea_lib.core.flows and the paper's Table 1 rule."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bea_lib as bl
from bea_lib.core.autodiff import gradient_and_hvp_fn, top_eigenvalue
from bea_lib.nets.config import TrainConfig, build_model
from bea_lib.nets.diagnostics import bias_alignment, bias_ratio, flat_forward, flat_loss
from bea_lib.nets.models import make_model
from bea_lib.nets.train import train
from bea_lib.core.norms import table1_cells
from bea_lib.base.vocab import BiasRegime, StopReason

HYPER = dict(beta=0.9, rho=0.99, eps=1e-3)


@pytest.fixture
def tiny():
    data = bl.nets.load_dataset("mnist1d", n_train=30, n_test=20)
    model = build_model(TrainConfig(seed=0, width=4, activation="tanh", dtype="float64"),
                        data.input_shape, data.n_classes)
    return data, model


def test_flat_loss_is_the_models_loss(tiny):
    # the flat-θ loss and gradient against the module's own forward and autograd (rounding only)
    data, model = tiny
    x, y = data.x_train.double(), data.y_train
    E, theta = flat_loss(model, x, y)
    want = F.cross_entropy(model(x), y)
    want.backward()
    torch.testing.assert_close(E(theta), want, rtol=1e-12, atol=0)
    g = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(bl.gradient(E, theta), g, rtol=1e-10, atol=1e-14)
    forward, _ = flat_forward(model)
    torch.testing.assert_close(forward(theta, x), model(x), rtol=0, atol=0)


def test_top_eigenvalues_against_full_hessian(tiny):
    # Lanczos on HVPs against numpy on the full p × p Hessian (p = 194): tol 1e-10 in eigsh,
    # so rtol 1e-7 is far above its error and far below any slip (e.g. a missing D^{-1/2})
    data, model = tiny
    E, theta = flat_loss(model, data.x_train.double(), data.y_train)
    H = torch.func.hessian(E)(theta)
    g, hvp_fn = gradient_and_hvp_fn(E, theta)
    top = top_eigenvalue(hvp_fn, g, tol=1e-10)
    assert math.isclose(top, float(torch.linalg.eigvalsh(H)[-1]), rel_tol=1e-7)
    D = torch.sqrt(g**2 + 1e-4) + torch.rand(g.shape, dtype=g.dtype)  # any positive diagonal
    pre = top_eigenvalue(hvp_fn, g, scale=D**-0.5, tol=1e-10)
    eig = np.linalg.eigvals((torch.diag(1 / D) @ H).numpy())  # the non-symmetric diag(1/D)·H
    assert np.abs(eig.imag).max() < 1e-8  # similar to a symmetric matrix: real spectrum
    assert math.isclose(pre, float(eig.real.max()), rel_tol=1e-7)


def test_bias_ratio_from_the_flows():
    # h‖f₁‖/‖f₀‖ against the two public right-hand sides: f₀ = rhs₀, h f₁ = rhs₁ − rhs₀
    loss, theta, h = bl.losses.logcosh_regression(5, seed=1), torch.linspace(-1, 1, 5), 1e-2
    g, hvp_fn = gradient_and_hvp_fn(loss, theta)
    rhs1 = bl.adam_rhs(loss, h=h, order=1, **HYPER)(0.0, theta)
    rhs0 = bl.adam_rhs(loss, h=h, order=0, **HYPER)(0.0, theta)
    want = float((rhs1 - rhs0).norm() / rhs0.norm())
    assert math.isclose(bias_ratio(g, hvp_fn, h=h, **HYPER), want, rel_tol=1e-10)


def test_bias_alignment_sign_is_the_norms_change():
    # a small move along f₁ changes ‖∇E‖₁,ε with the sign of the cosine (finite difference,
    # step 1e-6: first order dominates by orders of magnitude)
    for seed in range(3):
        loss, theta = bl.losses.logcosh_regression(5, seed=seed), torch.linspace(-1, 1, 5)
        for beta, rho in ((0.9, 0.99), (0.99, 0.9)):
            hyper = dict(beta=beta, rho=rho, eps=1e-3)
            g, hvp_fn = gradient_and_hvp_fn(loss, theta)
            f1 = bl.expansion.bias_direction(g, hvp_fn, **hyper)
            N = lambda th: bl.perturbed_one_norm(bl.gradient(loss, th), eps=1e-3)  # noqa: E731
            cos = bias_alignment(g, hvp_fn, **hyper)
            assert -1.0 <= cos <= 1.0
            assert np.sign(float(N(theta + 1e-6 * f1) - N(theta))) == np.sign(cos)


def test_table1_cells_follow_implicit_bias_regime():
    eps, hyper = 1e-4, dict(beta=0.9, rho=0.99)
    g = torch.tensor([1.0, 1e-1, 1e-3, 1e-5, 0.0])  # g² = 1, 1e-2 (≥ 100ε), 1e-6 (≤ ε/100) ...
    cells = table1_cells(g, eps=eps, **hyper)
    assert cells == {BiasRegime.ONE_NORM_ANTI_PENALISED: 0.4,
                     BiasRegime.TWO_NORM_SQUARED_PENALISED: 0.6, BiasRegime.INTERMEDIATE: 0.0}
    assert BiasRegime.ONE_NORM_PENALISED in table1_cells(g, eps=eps, beta=0.99, rho=0.9)
    assert table1_cells(torch.tensor([2e-2]), eps=eps, **hyper)[BiasRegime.INTERMEDIATE] == 1.0
    # all coordinates in one cell <=> the regime function names that cell
    for part in (g[:2], g[2:], torch.tensor([2e-2, 1.0])):
        cell = bl.implicit_bias_regime(part, eps=eps, **hyper)
        assert table1_cells(part, eps=eps, **hyper)[cell] == 1.0 or cell == BiasRegime.INTERMEDIATE
    with pytest.raises(ValueError, match="eps"):
        table1_cells(g, eps=0.0, **hyper)


def _train(data, **settings):
    """One float64 MLP run on the loaded ``data``, full batch."""
    return train(TrainConfig(model="mlp", dtype="float64", n_train=len(data.x_train),
                             n_test=len(data.x_test), chunk_size=len(data.x_train),
                             device="cpu", **settings), data=data)


def test_adam_on_a_network_is_adam_on_the_flat_loss():
    # the network loop at κ = 0 against bl.adam on the same flat loss: the train losses of the
    # iterates agree to float64 rounding
    data = bl.nets.load_dataset("mnist1d", n_train=40, n_test=20)
    run = _train(data, h=1e-2, epochs=5, seed=3, width=4, test_every=2, diagnostics_every=2,
                 **HYPER)
    model = build_model(TrainConfig(seed=3, width=4, dtype="float64"), data.input_shape,
                        data.n_classes)
    E, theta0 = flat_loss(model, data.x_train.double(), data.y_train)
    iterates = bl.adam(E, theta0, 5, h=1e-2, **HYPER)
    want = np.array([float(E(th)) for th in iterates])
    np.testing.assert_allclose(run["train_loss"], want, rtol=1e-12)
    assert run.stop_reason == StopReason.EPOCHS and len(run) == 6
    assert np.isnan(run["test_acc"][1]) and np.isfinite(run["test_acc"][2])
    d = run.diagnostics()
    np.testing.assert_array_equal(d["epoch"], [0, 2, 4, 5])  # every 2nd, and the last row
    np.testing.assert_allclose(d["g2_above"] + d["g2_below"] + d["between"], 1.0, rtol=1e-15)
    assert np.all(d["preconditioned_sharpness"] > 0) and np.all(d["bias_ratio"] > 0)
    assert 0 < run.diagnostics_seconds < run["wall_time"][-1]
    off = _train(data, h=1e-2, epochs=2, seed=3, width=4, **HYPER)
    assert all(v.size == 0 for v in off.diagnostics().values()) and off.diagnostics_seconds == 0


def test_a_run_stopped_by_its_loss_is_diagnosed_where_it_stopped():
    data = bl.nets.load_dataset("mnist1d", n_train=40, n_test=20)
    free = _train(data, h=1e-2, epochs=12, seed=3, width=4, **HYPER)
    threshold = float(free["train_loss"][9]) * (1 + 1e-9)  # first reached at row 9
    run = _train(data, h=1e-2, epochs=12, seed=3, width=4, diagnostics_every=4,
                 loss_threshold=threshold, sharpness=False, **HYPER)
    assert run.stop_reason == StopReason.LOSS_THRESHOLD and len(run) == 10
    np.testing.assert_array_equal(run.diagnostics()["epoch"], [0, 4, 8, 9])
    assert np.isfinite(run.diagnostics()["bias_ratio"]).all()


def test_mlp_activation():
    tanh = make_model("mlp", (1, 40), 10, activation="tanh")
    assert any(isinstance(m, torch.nn.Tanh) for m in tanh.modules())
    assert not any(isinstance(m, torch.nn.ReLU) for m in tanh.modules())
    with pytest.raises(ValueError, match="activation"):
        make_model("mlp", (1, 40), 10, activation="sigmoid")
    with pytest.raises(ValueError, match="activation"):
        make_model("cnn", (1, 40), 10, activation="tanh")


def test_diagnostics_of_a_batch_are_those_of_its_runs_alone():
    # the diagnostics of a stacked batch (its own Hessian-vector products) against the same runs
    # trained alone as modules (flat_loss): the same rule on the same numbers, rtol 1e-8 for
    # float64 rounding and Lanczos run on the rounded inputs
    from bea_lib.nets.history import DIAGNOSTIC_COLUMNS
    base = TrainConfig(dataset="mnist1d", width=4, h=1e-2, epochs=2, n_train=40, n_test=20,
                       dtype="float64", device="cpu", diagnostics_every=2, **HYPER)
    configs = [base, TrainConfig(**{**base.__dict__, "seed": 1, "kappa": 1.0})]
    for config, batched in zip(configs, train(configs)):
        alone = train(config)
        for c in DIAGNOSTIC_COLUMNS:
            np.testing.assert_allclose(batched.diagnostics()[c], alone.diagnostics()[c],
                                       rtol=1e-8, atol=1e-12, err_msg=c)


def test_step_denominator_is_the_one_adam_update_divides_by():
    # D of the next step, recovered from adam_update's displacement d = -h m̂/D (rounding only)
    from bea_lib.core.optimizers import adam_init, adam_update, step_denominator

    gen = torch.Generator().manual_seed(0)
    grads = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    hyper = dict(h=1e-2, beta=0.9, rho=0.99, eps=1e-3)
    state = adam_init(grads[0])
    for g in grads:
        D = step_denominator(g, state, rho=hyper["rho"], eps=hyper["eps"])
        d, new = adam_update(g, state, **hyper)
        m_hat = new.m / (1 - hyper["beta"] ** new.n)
        torch.testing.assert_close(D, -hyper["h"] * m_hat / d, rtol=1e-12, atol=0)
        state = new
