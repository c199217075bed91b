"""The order-study helper itself: shapes, the table, the burn-in window and input checks."""
import numpy as np
import pytest
import torch

import bea_lib as bl


def quadratic(th):
    return 0.5 * (th**2).sum()


def test_order_study_shapes_and_table():
    study = bl.order_study("gd", quadratic, torch.tensor([1.0, -1.0]), [0.1, 0.05, 0.025], 1.0)
    assert study.errors.shape == (2, 3) and study.orders == (0, 1)
    rows = study.table()
    assert len(rows) == 6 and set(rows[0]) == {"method", "order", "h", "error", "slope", "stderr"}
    # GD on ½‖θ‖² is θ⁽ⁿ⁾ = (1-h)ⁿθ⁽⁰⁾: slopes 1 and 2 already at these h
    assert study.slope(0) == pytest.approx(1.0, abs=0.1)
    assert study.slope(1) == pytest.approx(2.0, abs=0.1)


def test_max_distance_skips_first_rows():
    a = torch.zeros(4, 2)
    b = torch.tensor([[3.0, 4.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    assert bl.max_distance(a, b) == 5.0
    assert bl.max_distance(a, b, first=1) == 1.0


@pytest.mark.parametrize("kwargs, name", [
    (dict(method="sgd"), "method"), (dict(hs=[0.1]), "hs"), (dict(hs=[0.1, -0.1]), "hs"),
    (dict(T=0.0), "T"), (dict(t_min=1.0), "t_min")])
def test_order_study_rejects_bad_input(kwargs, name):
    args = dict(method="gd", loss=quadratic, theta0=torch.ones(2), hs=[0.1, 0.05], T=1.0) | kwargs
    with pytest.raises(ValueError, match=name):
        bl.order_study(**args)


def test_heavy_ball_shifted_start_is_passed_to_the_flow_only():
    study = bl.order_study("heavy_ball", quadratic, torch.ones(2), [0.02, 0.01], 0.5, orders=(1,),
                           beta=0.5, shifted_start=True, t_min=0.25)
    assert np.all(np.isfinite(study.errors))


def logcosh(th):
    return torch.log(torch.cosh(th - torch.tensor([0.3, -0.2]))).sum() + 0.1 * (th**4).sum()


@pytest.mark.parametrize("method, hs, hyper, minibatch", [
    ("adam", [0.04, 0.02, 0.01], dict(beta=0.5, rho=0.8, eps=1e-2), False),  # one order-0 solve
    ("gd", [0.04, 0.03, 0.01], {}, False),  # 0.03 is not on the finest grid: solved on its own
    ("heavy_ball", [0.04, 0.02], dict(beta=0.5, shifted_start=True), False),  # start depends on h
    ("adam", [0.04, 0.02], dict(beta=0.5, rho=0.8, eps=1e-2), True)],  # mini-batch
    ids=["adam", "gd-not-nested", "heavy-ball-shifted", "minibatch"])
def test_a_shared_order0_flow_gives_the_errors_of_one_solve_per_step_size(method, hs, hyper,
                                                                          minibatch):
    """The order-0 flow solved once on the finest grid and read on the coarser ones: the same
    numbers as solving it for each h, and never shared where the flow depends on h."""
    # two mini-batch losses: the piecewise flow depends on h
    loss = [logcosh, lambda th: logcosh(th) + 0.2 * th.sum()] if minibatch else logcosh
    theta0, T = torch.tensor([1.0, 0.5]), 0.4
    study = bl.order_study(method, loss, theta0, hs, T, **hyper)
    iterate, flow, flow_only = bl.order._METHODS[method]
    for j, h in enumerate(hs):
        n = round(T / h)
        its = iterate(loss, theta0, n, h=h,
                      **{k: v for k, v in hyper.items() if k not in flow_only})
        want = bl.max_distance(its, flow(loss, theta0, n, h=h, order=0, **hyper))
        assert study.errors[0, j] == want  # the same steps and interpolants: exactly
