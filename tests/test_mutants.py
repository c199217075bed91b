"""Every primary test of bea_lib.evidence.registry fails on a deliberately wrong model.

Each test below computes, at a small size, the statistic of one statement's primary test with
its declared threshold, as the chapter does, first on the library as it is (the test passes)
and then on a mutant (it must fail): the bias term's sign flipped, β and ρ swapped, the wrong
index range, h halved in the flow. A primary test that passed on its mutant would not be
evidence. The network rows' primary tests (the theory's answers on Figures 4-6, the first
conclusion's experiment, the spike regime) are at the end: each is run on small stored runs,
or on a hand-made table where the runs cannot decide, and must change its verdict on its
mutant. The κ mechanism's test runs on its stored runs
(bea_lib.evidence.records).
"""
import math

import numpy as np
import pytest
import torch

import bea_lib as bl
import bea_lib.core.flows as flows
from bea_lib.evidence import registry
from bea_lib.studies.order import local_slopes

THETA = torch.tensor([2.8, 3.5], dtype=torch.float64)  # the start of the paper's Section 5


@pytest.fixture
def bias_sign_flipped(monkeypatch):
    """Adam's and heavy-ball's modified flows with the O(h) term's sign flipped."""
    adam, hb = flows._adam_rhs, flows._heavy_ball_rhs
    monkeypatch.setattr(flows, "_adam_rhs", lambda E, *, h, **kw: adam(E, h=-h, **kw))
    monkeypatch.setattr(flows, "_heavy_ball_rhs", lambda E, *, h, **kw: hb(E, h=-h, **kw))


@pytest.fixture
def h_halved(monkeypatch):
    """Adam's modified flow with h halved in its O(h) term (the grid keeps the true h)."""
    adam = flows._adam_rhs
    monkeypatch.setattr(flows, "_adam_rhs", lambda E, *, h, **kw: adam(E, h=h / 2, **kw))


def swapped(optimizer):
    """An optimiser with β and ρ swapped (the moment recursions exchanged)."""
    return lambda *a, beta, rho, **kw: optimizer(*a, beta=rho, rho=beta, **kw)


def test_every_primary_test_names_its_mutant():
    for st in registry.ALL:
        if st.primary is not None:
            assert st.primary.mutant and st.primary.threshold.why, st.key


# Definition 2.1: bl.adam (ε outside) against torch.optim.Adam, ≤ 1e-10 × distance travelled
def _definition_2_1(adam):
    loss, hyper = bl.losses.bilinear(), dict(h=1e-2, beta=0.9, rho=0.999, eps=1e-8)
    ours = adam(loss, THETA, 100, **hyper, eps_inside=False)
    ref = bl.torch_optimizer_iterates(
        lambda p: torch.optim.Adam(p, lr=hyper["h"], betas=(0.9, 0.999),
                                   eps=1e-8), loss, THETA, 100)
    return (ours - ref).abs().max().item() <= 1e-10 * (ref[-1] - ref[0]).norm().item()


def test_definition_2_1_fails_with_beta_and_rho_swapped():
    assert _definition_2_1(bl.adam)
    assert not _definition_2_1(swapped(bl.adam))


# Remark 2.2: on runs whose gradients fall through √ε, the larger of the loss-curve and end-point
# gaps between ε inside and outside (same ε) stays below 0.05
def _remark_2_2(adam_inside):
    """The adam chapter's test on its smoke-sized problem (p = 5, 1000 steps, starts 10¹ and
    10³ √ε): the gate (start ≥ 10 √ε, the outside run's median |g| below √ε at the end) and the
    threshold as declared."""
    loss, eps = bl.losses.logcosh_regression(5, seed=0), 1e-8
    theta0 = torch.randn(5, generator=torch.Generator().manual_seed(1))
    hyper = dict(h=1e-2, beta=0.9, rho=0.999, eps=eps)
    g0_min = bl.gradient(loss, theta0).abs().min().item()
    readings = []
    for k in (1, 3):
        def scaled(th, s=10.0**k * math.sqrt(eps) / g0_min):
            return s * loss(th)

        inside = adam_inside(scaled, theta0, 1000, **hyper, eps_inside=True)
        outside = bl.adam(scaled, theta0, 1000, **hyper, eps_inside=False)
        assert bl.gradient(scaled, outside[-1]).abs().median() <= math.sqrt(eps)  # in the gate
        readings.append(bl.behaviour_gap(scaled, inside, outside).largest)
    return max(readings) < 0.05


def test_remark_2_2_fails_when_one_placement_swaps_beta_and_rho():
    assert _remark_2_2(bl.adam)
    assert not _remark_2_2(swapped(bl.adam))


def test_behaviour_gap_reads_zero_for_one_run_and_order_one_for_two_algorithms():
    loss = bl.losses.logcosh_regression(5, seed=0)
    theta0 = torch.randn(5, generator=torch.Generator().manual_seed(1))
    run = bl.adam(loss, theta0, 200, h=1e-2, beta=0.9, rho=0.999, eps=1e-8)
    assert bl.behaviour_gap(loss, run, run) == (0.0, 0.0)
    gd = bl.gd(loss, theta0, 200, h=1e-3)  # a different algorithm, barely moving
    assert bl.behaviour_gap(loss, gd, run).largest > 0.5
    with pytest.raises(ValueError, match="same point"):
        bl.behaviour_gap(loss, run[1:], run[:-1])


# (2.2)-(2.3) and Theorem 3.1: local slopes at the two smallest h within 0.5 of 1 and 2
def _orders_hold(study):
    last = [local_slopes(study.hs, study.errors[i])[-1] for i in range(2)]
    return abs(last[0] - 1) < 0.5 and abs(last[1] - 2) < 0.5


def _full_batch_study():
    hs = 2e-3 * 0.5 ** np.arange(3)
    return bl.order_study("adam", bl.losses.bilinear(), THETA, hs, 0.2, beta=0.9, rho=0.95,
                          eps=1e3)


def test_full_batch_order_holds_on_the_library():
    assert _orders_hold(_full_batch_study())


def test_full_batch_order_fails_with_the_bias_sign_flipped(bias_sign_flipped):
    assert not _orders_hold(_full_batch_study())


def test_full_batch_order_fails_with_h_halved_in_the_flow(h_halved):
    assert not _orders_hold(_full_batch_study())


def _minibatch_study(inner_sum):
    """The minibatch chapter's setting at m = 2, on its shortest horizon."""
    losses, _, theta0 = bl.losses.least_squares_batches(2, n_data=24, p=5, seed=0)
    return bl.order_study("adam_minibatch", losses, theta0, [2e-3, 1e-3, 5e-4], 0.05,
                          beta=0.3, rho=0.6, eps=0.1, inner_sum=inner_sum)


def test_theorem_3_1_fails_with_the_printed_index_range():
    assert _orders_hold(_minibatch_study("k"))
    assert not _orders_hold(_minibatch_study("1"))


# (1.1): heavy-ball's order-1 flow (shifted start) has a fitted slope above 1.5
def _heavy_ball_slope():
    loss, beta = bl.losses.bilinear(), 0.5
    hs = 1e-3 * 0.5 ** np.arange(3)
    errs = []
    for h in hs:
        n = round(0.2 / h)
        it = bl.heavy_ball(loss, THETA, n, h=h, beta=beta)
        flow = bl.heavy_ball_flow(loss, THETA, n, h=h, beta=beta, shifted_start=True)
        errs.append(bl.max_distance(it, flow, first=math.ceil(0.1 / h)))
    return float(np.polyfit(np.log(hs), np.log(errs), 1)[0])


def test_heavy_ball_order_holds_on_the_library():
    assert _heavy_ball_slope() > 1.5


def test_heavy_ball_order_fails_with_the_bias_sign_flipped(bias_sign_flipped):
    assert _heavy_ball_slope() <= 1.5


# Example 2.3: Adam's flow against heavy-ball's with step h(1 − β)/√ε: falls, < 1e-3 at the end
def _example_2_3(limit):
    """The special-cases chapter's setting: from (1, 1.5), ε from 1e1 to 1e10."""
    loss, theta, beta, rho, h_hb = bl.losses.bilinear(), torch.tensor([1.0, 1.5]), 0.9, 0.999, 2e-3
    diffs = []
    for eps in (1e1, 1e2, 1e3, 1e4, 1e6, 1e10):
        h_adam = h_hb * math.sqrt(eps) / (1 - beta)
        h_b, beta_b = limit(h=h_adam, beta=beta, eps=eps)
        a = bl.adam_rhs(loss, h=h_adam, beta=beta, rho=rho, eps=eps)(0.0, theta)
        b = (1 - beta) / math.sqrt(eps) * bl.heavy_ball_rhs(loss, h=h_b, beta=beta_b)(0.0, theta)
        diffs.append(((a - b).norm() / b.norm()).item())
    return bool(np.all(np.diff(diffs) < 0) and diffs[-1] < 1e-3)


def test_example_2_3_fails_with_step_h_over_root_eps():
    assert _example_2_3(bl.heavy_ball_limit)
    assert not _example_2_3(lambda *, h, beta, eps: (h / math.sqrt(eps), beta))


# Table 1: the sign of N(Adam's iterates) − N(order-0 flow) in each of the four cells
def _table_1(adam):
    loss = bl.losses.bilinear()
    agree = []
    for b, r, eps, h, T in ((0.95, 0.9, 1e-8, 1e-2, 0.5), (0.9, 0.95, 1e-8, 1e-2, 0.5),
                            (0.95, 0.9, 1e8, 1.0, 50.0), (0.9, 0.95, 1e8, 1.0, 50.0)):
        n, hyper = round(T / h), dict(h=h, beta=b, rho=r, eps=eps)
        N = (lambda v: v.abs().sum()) if eps < 1 else (lambda v: v @ v)
        flow0 = bl.adam_flow(loss, THETA, n, order=0, **hyper)[-1]
        it = adam(loss, THETA, n, **hyper)[-1]
        effect = N(bl.gradient(loss, it)).item() - N(bl.gradient(loss, flow0)).item()
        anti = eps < 1 and r > b
        agree.append((effect > 0) == anti)
    return all(agree)


def test_table_1_fails_with_beta_and_rho_swapped():
    assert _table_1(bl.adam)
    assert not _table_1(swapped(bl.adam))


# Figure 1: every curve has the predicted shape (rises, plateau, or rises to |x|* then falls)
def _figure_1(potential):
    xs, beta = np.linspace(0.0, 1.0, 2001), 0.95
    A = (1 + beta) / (1 - beta)
    ok = []
    for rho in (0.9, 0.95, 0.99):
        B = (1 + rho) / (1 - rho)
        for eps in (1e-4, 1e-2):
            F = potential(xs, beta=beta, rho=rho, eps=eps)
            if math.isclose(rho, beta):
                ok.append(bool(np.all(np.diff(F) > 0) and F[-1] < B * math.sqrt(eps)))
            elif rho < beta:
                ok.append(bool(np.all(np.diff(F) > 0)))
            else:
                star = math.sqrt(eps * A / (B - A))
                ok.append(abs(xs[np.argmax(F)] - min(star, 1.0)) <= xs[1])
    return all(ok)


def test_figure_1_fails_with_beta_and_rho_swapped():
    assert _figure_1(bl.bias_potential_1d)
    assert not _figure_1(swapped(bl.bias_potential_1d))


# (2.5) and (2.7): the bias against the modified losses' gradients: falls, < 1e-3 at the end
def _modified_losses():
    loss, h, beta, rho = bl.losses.bilinear(), 1e-3, 0.9, 0.95
    A, B = (1 + beta) / (1 - beta), (1 + rho) / (1 - rho)
    g = bl.gradient(loss, THETA)

    def lib(eps):
        def f(o):
            return bl.adam_rhs(loss, h=h, beta=beta, rho=rho, eps=eps, order=o)(0.0, THETA)
        return f(1) - f(0)

    one = -bl.gradient(lambda th: h / 2 * (A - B) * bl.gradient(loss, th).abs().sum(), THETA) \
        / g.abs()
    small = [((lib(e) - one).norm() / lib(e).norm()).item() for e in (1e2, 1.0, 1e-2)]

    def two(eps):
        def pen(th):
            return h / (4 * math.sqrt(eps)) * A * (bl.gradient(loss, th) ** 2).sum()
        return -bl.gradient(pen, THETA) / math.sqrt(eps)

    large = [((lib(e) - two(e)).norm() / lib(e).norm()).item() for e in (1e6, 1e8, 1e10)]
    return [bool(np.all(np.diff(d) < 0) and d[-1] < 1e-3) for d in (small, large)]


def test_modified_losses_fail_with_the_bias_sign_flipped(monkeypatch):
    assert _modified_losses() == [True, True]
    adam = flows._adam_rhs
    monkeypatch.setattr(flows, "_adam_rhs", lambda E, *, h, **kw: adam(E, h=-h, **kw))
    assert _modified_losses() == [False, False]


# Figures 2 and 3: every comparison inside the first-order range goes the predicted way
def _trend_holds(adam, runs, towards):
    from bea_lib.studies import bilinear as bil

    loss, levels = bl.losses.bilinear(), [1.0, 0.1]
    excess = []
    for beta, rho, h in runs:
        assert h <= 0.1 * (1 - max(beta, rho))  # inside the gate
        it = adam(loss, THETA, round(3.0 / h), h=h, beta=beta, rho=rho, eps=1e-8)
        excess.append(bil.excess_at_loss_levels(loss, it, levels))
    comparisons = [(b < a) == towards for ea, eb in zip(excess, excess[1:])
                   for a, b in zip(ea, eb) if np.isfinite(a) and np.isfinite(b)]
    return bool(comparisons) and all(comparisons)


@pytest.mark.parametrize("key, runs, towards", [
    ("Figure 2 (β)", [(0.5, 0.9, 5e-3), (0.8, 0.9, 5e-3)], True),    # β grows at fixed ρ
    ("Figure 2 (ρ)", [(0.8, 0.9, 5e-3), (0.8, 0.95, 5e-3)], False),  # ρ grows at fixed β
    ("Figure 3 (β > ρ)", [(0.95, 0.8, 2e-3), (0.95, 0.8, 4e-3)], True),  # h grows
    ("Figure 3 (ρ > β)", [(0.8, 0.95, 2e-3), (0.8, 0.95, 4e-3)], False),
])
def test_bilinear_trends_fail_with_beta_and_rho_swapped(key, runs, towards):
    assert registry.BY_KEY[key].primary.mutant == "β and ρ swapped in the optimiser"
    assert _trend_holds(bl.adam, runs, towards)
    assert not _trend_holds(swapped(bl.adam), runs, towards)


# Section 4, first conclusion (theory): along each algorithm's path, the share of points where the
# O(h) term lowers ‖∇E‖² is 1 where the penalty is present, below 1/2 where it is absent. On the
# bilinear loss (the library passes there; the chapter's log-cosh loss is where the conclusion
# fails) a flipped bias term must fail it.
def _first_conclusion():
    loss, h = bl.losses.bilinear(), 1e-3
    algorithms = [  # (penalty present, rhs of an order, path, Table 1 cell of the gate or None)
        (True, lambda o: bl.heavy_ball_rhs(loss, h=h, beta=0.0, order=o),
         bl.gd(loss, THETA, 300, h=1e-2), None),
        (True, lambda o: bl.heavy_ball_rhs(loss, h=h, beta=0.9, order=o),
         bl.heavy_ball(loss, THETA, 300, h=h, beta=0.9), None)]
    for b, r, e, present in ((0.0, 0.999, 1e-8, False), (0.9, 0.999, 1e-8, False),
                             (0.9, 0.999, 1e8, True)):
        step = h * math.sqrt(e) / (1 - b) if e > 1 else h
        algorithms.append((present, lambda o, b=b, r=r, e=e: bl.adam_rhs(
            loss, h=h, beta=b, rho=r, eps=e, order=o),
            bl.adam(loss, THETA, 300, h=step, beta=b, rho=r, eps=e),
            (b, r, e)))
    ok = []
    for present, rhs, path, gate in algorithms:
        effects = []
        for point in path[::20]:
            g = bl.gradient(loss, point)
            cell = gate and bl.implicit_bias_regime(g, beta=gate[0], rho=gate[1], eps=gate[2])
            if gate and cell not in (bl.BiasRegime.ONE_NORM_ANTI_PENALISED,
                                     bl.BiasRegime.TWO_NORM_SQUARED_PENALISED):
                continue
            effects.append(bl.bias_effect(loss, rhs, point, h=h, norm=lambda v: (v**2).sum()))
        share = float(np.mean(np.array(effects) < 0))
        ok.append(len(effects) >= 5 and (share == 1.0 if present else share < 0.5))
    return all(ok)


def test_first_conclusion_fails_with_the_bias_sign_flipped(bias_sign_flipped_now):
    assert _first_conclusion()
    bias_sign_flipped_now()
    assert not _first_conclusion()


@pytest.fixture
def bias_sign_flipped_now(monkeypatch):
    """Flip the O(h) term's sign when called (after the library's own run)."""
    def flip():
        adam, hb = flows._adam_rhs, flows._heavy_ball_rhs
        monkeypatch.setattr(flows, "_adam_rhs", lambda E, *, h, **kw: adam(E, h=-h, **kw))
        monkeypatch.setattr(flows, "_heavy_ball_rhs", lambda E, *, h, **kw: hb(E, h=-h, **kw))
    return flip


def test_bias_effect_of_gradient_descent_is_the_modified_loss():
    """GD's O(h) term is −(h/4)∇‖∇E‖² (its modified loss): its effect on ‖∇E‖² is
    −(1/4)‖∇‖∇E‖²‖² / |∇‖∇E‖² · (−∇E)|, whatever the point."""
    loss = bl.losses.bilinear()
    def rhs(o):
        return bl.heavy_ball_rhs(loss, h=1e-3, beta=0.0, order=o)

    dN = bl.gradient(lambda th: (bl.gradient(loss, th) ** 2).sum(), THETA)
    expected = -0.25 * (dN @ dN).item() / abs((dN @ -bl.gradient(loss, THETA)).item())
    got = bl.bias_effect(loss, rhs, THETA, h=1e-3, norm=lambda v: (v**2).sum())
    assert got == pytest.approx(expected, rel=1e-9)  # float64 algebra; the rule is exact


# --- the network rows: the theory's answers (bea_lib.evidence.windows, networks, optimizers) ---

def _network_data():
    from bea_lib.nets.data import load_dataset

    return load_dataset("mnist1d", n_train=100, n_test=50)


def _in_range_verdicts(*, swap: bool):
    """Figures 4 and 5 inside the range at a small size: 4 seeds of an
    MLP of width 8, plain Adam to training loss 1.5, windows of 20 steps at bias ratio 0.025;
    ``swap`` runs every cell's optimiser with β and ρ exchanged, under its own labels."""
    from bea_lib.evidence import windows as win
    from bea_lib.nets.config import TrainConfig

    data, seeds = _network_data(), [0, 1, 2, 3]
    base = TrainConfig(model="mlp", width=8, h=1e-2, beta=0.9, rho=0.999, eps=1e-8, epochs=40,
                       dtype="float64", n_train=100, n_test=50, chunk_size=100, device="cpu")
    cells = win.in_range_cells([0.8, [0.85, 0.9, 0.95]], [0.95, [0.7, 0.8, 0.9]])
    result = win.run_in_range(base, seeds=seeds, stage_loss=1.5, cells=cells, window_steps=20,
                              window_ratio=0.025, kappas=[0.0], gate_every=10, data=data,
                              swap=swap)
    table = win.in_range_rows(result, cells, model="mlp", window_steps=20)
    tests = win.in_range_tests(table, cells, seeds, window_steps=20, n_resamples=999)
    return [tests[e, 0.0]["verdict"] for e in ("fig4-in-range", "fig5-in-range")]


def test_figures_4_and_5_in_range_fail_with_beta_and_rho_swapped_in_the_optimiser():
    assert registry.BY_KEY["Figure 4"].primary.mutant.startswith("β and ρ swapped in the optim")
    assert _in_range_verdicts(swap=False) == [bl.Verdict.REPRODUCED] * 2
    assert _in_range_verdicts(swap=True) == [bl.Verdict.CONTRADICTED] * 2


def test_figure_6_through_the_gate_changes_its_verdict_when_the_gate_is_dropped():
    """The hill slope of small figure runs at the chapter's h: outside the range through the
    gate; with the gate dropped (no limit) the same runs get a verdict on the paper."""
    import dataclasses

    from bea_lib.evidence import networks as nw
    from bea_lib.evidence.readings import figure_readings, run_gate
    from bea_lib.evidence.statistics import NETWORK_LIMIT
    from bea_lib.nets.config import TrainConfig
    from bea_lib.nets.executor import sweeps
    from bea_lib.nets.train import train

    grid = sweeps(beta_grid=[0.9], rho_grid=[0.99, 0.999, 0.9999], beta_fig4=0.9, rho_fig5=0.99,
                  beta_fig6=0.9)
    seeds = [0, 1, 2, 3]
    base = TrainConfig(model="mlp", width=8, h=1e-2, eps=1e-8, epochs=30, dtype="float64",
                       n_train=100, n_test=50, chunk_size=100, device="cpu",
                       diagnostics_every=10, sharpness=False)
    configs = [dataclasses.replace(base, beta=b, rho=r, seed=s) for b, r in grid["fig6"].cells
               for s in seeds]
    hists = train(configs, data=_network_data())
    read = [r for r in nw.READS if r.claim == "networks/fig6-proxy"]

    def verdict(limit):
        records = {("mlp", c.beta, c.rho, c.seed): {
            "config": c, "gate": run_gate(hh, limit=limit), "sweeps": ["fig6"],
            "readings": figure_readings(hh, epochs=30, read_below=2.0, norm_at=0.25,
                                        hill_after=0.05, shape_tol=0.05, max_spike_ratio=1.5,
                                        osc_tol=0.02, osc_share=0.05)}
            for c, hh in zip(configs, hists)}
        table = nw.figure_rows(grid, records)
        [r] = nw.figure_tests(table, grid, {"mlp": seeds}, read, n_resamples=999).values()
        return r["verdict"]

    assert verdict(NETWORK_LIMIT) == bl.Verdict.OUTSIDE_RANGE
    assert verdict(1e300) != bl.Verdict.OUTSIDE_RANGE  # the mutant: no limit, no gate


def test_the_first_conclusions_experiment_changes_its_verdict_on_its_mutants():
    """On a stored table in which Adam and RMSProp are sharper and less accurate: inside the
    gates, reproduced; outside them, outside the range, and reproduced again with the gate
    dropped; with β and ρ swapped in the prediction, contradicted."""
    from bea_lib.evidence import optimizers as oe

    rng = np.random.default_rng(3)
    seeds, rows = list(range(8)), []
    for s in seeds:
        sharp, acc = rng.normal(10, 2), rng.normal(0.4, 0.05)
        for arm, extra in (("adam", 1), ("rmsprop", 1), ("gd", 0), ("heavy_ball", 0)):
            rows.append({"experiment": "optimizers", "optimizer": arm, "seed": s, "gated": True,
                         "sharpness": sharp + 3 * extra + rng.normal(0, 0.1),
                         "test_acc": acc - 0.05 * extra + rng.normal(0, 0.005),
                         "sharpness_rel": 0.5, "gap": 0.5})
    outside = [dict(r, gated=False) for r in rows]
    kw = dict(beta=0.9, rho=0.999, n_resamples=999)
    assert oe.optimizer_tests(rows, seeds, **kw)["verdict"] == bl.Verdict.REPRODUCED
    assert oe.optimizer_tests(outside, seeds, **kw)["verdict"] == bl.Verdict.OUTSIDE_RANGE
    assert oe.optimizer_tests(outside, seeds, gate=False, **kw)["verdict"] == \
        bl.Verdict.REPRODUCED
    assert oe.optimizer_tests(rows, seeds, beta=0.999, rho=0.9, n_resamples=999)[
        "verdict"] == bl.Verdict.CONTRADICTED


def test_the_spike_regimes_test_fails_with_rhos_grid_reversed():
    """The spike regime's statistic on a stored table of spike runs whose best test accuracy
    rises with ρ (the remark's direction: a negative slope against log10(1 − ρ))."""
    from bea_lib.evidence.networks import slope_test

    rng = np.random.default_rng(4)
    cells = [(0.9, 0.99), (0.9, 0.999), (0.9, 0.9999)]
    table = [{"beta": b, "rho": r, "seed": s, "gated": True,
              "test_acc_max": 0.3 + 0.01 * s - 0.02 * math.log10(1 - r) + 1e-3 * rng.normal()}
             for b, r in cells for s in range(6)]
    kw = dict(sign=-1, n_resamples=999)
    assert slope_test(table, cells, 1, range(6), "test_acc_max", **kw)["verdict"] == \
        bl.Verdict.REPRODUCED
    reversed_grid = [dict(r, rho={0.99: 0.9999, 0.9999: 0.99}.get(r["rho"], r["rho"]))
                     for r in table]
    assert slope_test(reversed_grid, cells, 1, range(6), "test_acc_max", **kw)["verdict"] == \
        bl.Verdict.CONTRADICTED


def test_every_network_primary_test_has_a_mutant_test_here():
    tested = {"networks/fig4-in-range", "networks/fig5-in-range", "networks/fig6-gated",
              "networks/optimizers-paired", "networks/spike-reversal-paired"}
    declared = {st.primary.claim for st in registry.STATEMENTS if st.networks}
    assert declared == tested


# The κ mechanism (beyond the paper): per stage, both sign-flip pairs' paired intervals on the
# predicted side inside both gates; the row's verdict is the most trained stage's. Its mutants,
# on stored runs of development seeds: the prediction with β and ρ swapped, and the f₀ gate
# dropped (on runs that fail it).
MECH_PAIRS, MECH_KAPPAS = [(0.9, 0.7), (0.7, 0.9), (0.8, 0.8)], [-1.0, 0.0, 1.0]


def _mechanism(table, pairs=MECH_PAIRS, **kw):
    from bea_lib.evidence import mechanism as mech
    seeds = sorted({r["seed"] for r in table})
    return mech.stage_test(table, pairs=pairs, kappas=MECH_KAPPAS, seeds=seeds, n_resamples=999,
                           **kw).verdict


def test_mechanism_fails_with_beta_and_rho_swapped_in_the_prediction():
    from bea_lib.evidence.records import read_record
    from bea_lib.evidence.statistics import kappa_prediction
    pilot = read_record("pilot")
    assert _mechanism(pilot) == bl.ExperimentVerdict.SUPPORTED
    swapped_prediction = lambda *, beta, rho: kappa_prediction(beta=rho, rho=beta)  # noqa: E731
    assert _mechanism(pilot, predict=swapped_prediction) == bl.ExperimentVerdict.NOT_SUPPORTED


def test_mechanism_verdict_changes_when_its_f0_gate_is_dropped(monkeypatch):
    from bea_lib.evidence import mechanism as mech
    from bea_lib.evidence import statistics as st
    from bea_lib.evidence.records import read_record
    relu = read_record("pilot-relu")  # its κ = −1 runs of the two pairs end apart
    assert _mechanism(relu) == bl.ExperimentVerdict.OUTSIDE_RANGE
    first = read_record("first-published")  # the first experiment, its f₀ gate as first declared
    first_test = lambda: mech.first_experiment_test(  # noqa: E731
        first, pairs=[(0.95, 0.8), (0.8, 0.95), (0.9, 0.9)], kappas=MECH_KAPPAS,
        seeds=list(range(8)), last_epoch=240, gates=mech.GATES["original"], n_resamples=999)
    assert first_test().verdict == bl.ExperimentVerdict.OUTSIDE_RANGE
    monkeypatch.setattr(st, "F0_AGREEMENT_LIMIT", math.inf)  # the f₀ gate dropped
    assert _mechanism(relu) != bl.ExperimentVerdict.OUTSIDE_RANGE
    assert first_test().verdict == bl.ExperimentVerdict.SUPPORTED
