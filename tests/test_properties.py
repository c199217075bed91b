"""Properties over generated inputs (hypothesis, derandomised, a bounded number of examples).

1. Every public function taking hyperparameters rejects out-of-range values by name, and takes
   them by keyword only (so β and ρ cannot be swapped by position).
2. ``bl.adam(eps_inside=False)`` equals ``torch.optim.Adam``; ``bl.Adam`` equals ``bl.adam``;
   ``bl.adam_runs`` (vectorised) equals sequential ``bl.adam`` runs.
3. The mini-batch flow with two identical batches equals the flow of one batch (the full-batch
   flow at order 0, where Theorem 3.1 has no finite-n terms).
"""
import inspect
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bea_lib as bl
from bea_lib.core.minibatch import minibatch_adam_flow, minibatch_adam_rhs

FEW = settings(derandomize=True, max_examples=12, deadline=None, database=None)
SOME = settings(derandomize=True, max_examples=20, deadline=None, database=None)

# -- 1. hyperparameters out of range ----------------------------------------------------------

NAN, INF = math.nan, math.inf
bad_unit = st.one_of(st.floats(max_value=0.0, exclude_max=True), st.floats(min_value=1.0),
                     st.sampled_from([NAN, -INF, INF, 1.0]))  # β, ρ outside [0, 1)
bad_positive = st.one_of(st.floats(max_value=0.0), st.sampled_from([NAN, INF, -INF, 0.0, -0.0]))
BAD = {"beta": bad_unit, "rho": bad_unit, "h": bad_positive, "eps": bad_positive}
# the perturbed one-norm is defined for ε >= 0 (ε = 0 is the one-norm)
BAD_NORM_EPS = st.one_of(st.floats(max_value=0.0, exclude_max=True),
                         st.sampled_from([NAN, INF, -INF]))


def quadratic(th):
    return 0.5 * (th**2).sum()


THETA0 = torch.tensor([1.0, -0.5])
GOOD = dict(h=0.01, beta=0.5, rho=0.6, eps=1e-2)


def _adam_opt(**k):
    return bl.Adam([torch.zeros(2, requires_grad=True)], lr=k["h"], beta=k["beta"],
                   rho=k["rho"], eps=k["eps"])


# name -> (call taking the four hyperparameters as keywords, the names it takes)
ENTRY_POINTS = {
    "adam": (lambda **k: bl.adam(quadratic, THETA0, 2, **k), "h beta rho eps"),
    "rmsprop": (lambda **k: bl.rmsprop(quadratic, THETA0, 2, h=k["h"], rho=k["rho"], eps=k["eps"]),
                "h rho eps"),
    "heavy_ball": (lambda **k: bl.heavy_ball(quadratic, THETA0, 2, h=k["h"], beta=k["beta"]),
                   "h beta"),
    "gd": (lambda **k: bl.gd(quadratic, THETA0, 2, h=k["h"]), "h"),
    "adam_flow": (lambda **k: bl.adam_flow(quadratic, THETA0, 2, **k), "h beta rho eps"),
    "adam_flow_minibatch": (lambda **k: bl.adam_flow([quadratic, quadratic], THETA0, 2, **k),
                            "h beta rho eps"),
    "rmsprop_flow": (lambda **k: bl.rmsprop_flow(quadratic, THETA0, 2, h=k["h"], rho=k["rho"],
                                                 eps=k["eps"]), "h rho eps"),
    "heavy_ball_flow": (lambda **k: bl.heavy_ball_flow(quadratic, THETA0, 2, h=k["h"],
                                                       beta=k["beta"]), "h beta"),
    "gd_flow": (lambda **k: bl.gd_flow(quadratic, THETA0, 2, h=k["h"]), "h"),
    "adam_rhs": (lambda **k: bl.adam_rhs(quadratic, **k), "h beta rho eps"),
    "heavy_ball_rhs": (lambda **k: bl.heavy_ball_rhs(quadratic, h=k["h"], beta=k["beta"]),
                       "h beta"),
    "minibatch_adam_rhs": (lambda **k: minibatch_adam_rhs([quadratic], 3, **k), "h beta rho eps"),
    "minibatch_adam_flow": (lambda **k: minibatch_adam_flow([quadratic], THETA0, 2, **k),
                            "h beta rho eps"),
    "adam_runs": (lambda **k: bl.adam_runs(quadratic, THETA0, 2, **k), "h beta rho eps"),
    "Adam": (lambda **k: _adam_opt(**k), "h beta rho eps"),
    "perturbed_one_norm": (lambda **k: bl.perturbed_one_norm(THETA0, eps=k["eps"]), "eps"),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@SOME
@given(data=st.data())
def test_out_of_range_hyperparameters_are_rejected_by_name(entry, data):
    call, names = ENTRY_POINTS[entry]
    name = data.draw(st.sampled_from(names.split()), label="name")
    value = data.draw(BAD_NORM_EPS if entry == "perturbed_one_norm" else BAD[name], label="value")
    shown = "lr" if entry == "Adam" and name == "h" else name  # bl.Adam calls h lr, as torch does
    with pytest.raises(ValueError, match=rf"\b{shown} must"):
        call(**(GOOD | {name: value}))


KEYWORD_ONLY = [bl.adam, bl.rmsprop, bl.heavy_ball, bl.gd, bl.adam_flow, bl.rmsprop_flow,
                bl.heavy_ball_flow, bl.gd_flow, bl.adam_rhs, bl.heavy_ball_rhs, minibatch_adam_rhs,
                minibatch_adam_flow, bl.adam_runs]


@pytest.mark.parametrize("function", KEYWORD_ONLY, ids=lambda f: f.__name__)
def test_hyperparameters_are_keyword_only(function):
    """A swap of β and ρ by position is impossible: every hyperparameter is keyword-only."""
    params = inspect.signature(function).parameters
    for name in ("h", "beta", "rho", "eps"):
        if name in params:
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name


bad_counts = st.one_of(st.sampled_from([NAN, INF, -INF, None, 1e20, True, False, 2.0, "3", -1,
                                        10**12]),
                       st.floats(allow_nan=True), st.integers(max_value=-1))


@FEW
@given(n_steps=bad_counts)
def test_bad_step_counts_are_rejected_by_name(n_steps):
    for call in (lambda: bl.adam(quadratic, THETA0, n_steps, **GOOD),
                 lambda: bl.adam_flow(quadratic, THETA0, n_steps, **GOOD),
                 lambda: bl.solve_flow(lambda t, th: -th, THETA0, n_steps, h=0.1)):
        with pytest.raises(ValueError, match="n_steps must be an integer"):
            call()


# -- 2. one update rule, four implementations -------------------------------------------------

hyper = st.fixed_dictionaries(dict(
    h=st.floats(1e-4, 0.3), beta=st.floats(0.0, 0.99), rho=st.floats(0.0, 0.999),
    eps=st.floats(1e-8, 1.0)))


@st.composite
def small_problems(draw, max_p=3):
    """A smooth loss in p ≤ 3 dimensions (a shifted quadratic with a quartic and a coupling
    term) and a start, from drawn coefficients."""
    p = draw(st.integers(1, max_p))
    coefficients = st.lists(st.floats(0.1, 3.0), min_size=p, max_size=p)
    positions = st.lists(st.floats(-2.0, 2.0), min_size=p, max_size=p)
    a, c = torch.tensor(draw(coefficients)), torch.tensor(draw(positions))
    quartic, coupling = draw(st.floats(0.0, 0.5)), draw(st.floats(-0.5, 0.5))

    def loss(th):
        return 0.5 * (a * (th - c) ** 2).sum() + quartic * (th**4).sum() / 4 \
            + coupling * torch.sin(th).sum() ** 2

    return loss, torch.tensor(draw(positions))


@SOME
@given(problem=small_problems(), hyper=hyper, n_steps=st.integers(1, 15))
def test_adam_with_eps_outside_equals_torch_adam(problem, hyper, n_steps):
    loss, theta0 = problem
    ours = bl.adam(loss, theta0, n_steps, **hyper, eps_inside=False)
    theirs = bl.torch_optimizer_iterates(
        lambda params: torch.optim.Adam(params, lr=hyper["h"], betas=(hyper["beta"], hyper["rho"]),
                                        eps=hyper["eps"]), loss, theta0, n_steps)
    # the same recursion with the bias corrections grouped differently: rounding of a few ulps
    # per step, amplified by at most |∂step/∂g| ≤ h/ε-sized factors over ≤ 15 steps
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)


@SOME
@given(problem=small_problems(), hyper=hyper, n_steps=st.integers(1, 15),
       eps_inside=st.booleans())
def test_the_network_optimizer_equals_the_iteration(problem, hyper, n_steps, eps_inside):
    loss, theta0 = problem
    theta = theta0.clone().requires_grad_(True)
    opt = bl.Adam([theta], lr=hyper["h"], beta=hyper["beta"], rho=hyper["rho"], eps=hyper["eps"],
                  eps_inside=eps_inside)
    rows = [theta.detach().clone()]
    for _ in range(n_steps):
        opt.zero_grad()
        loss(theta).backward()
        opt.step()
        rows.append(theta.detach().clone())
    want = bl.adam(loss, theta0, n_steps, **hyper, eps_inside=eps_inside)
    # one adam_update; the gradients come from autograd's backward here and torch.func.grad
    # there, which may sum in another order: rounding only
    torch.testing.assert_close(torch.stack(rows), want, rtol=1e-12, atol=1e-12)


@SOME
@given(problem=small_problems(), n_steps=st.integers(1, 15),
       runs=st.lists(hyper, min_size=1, max_size=4))
def test_vectorised_runs_equal_sequential_runs(problem, n_steps, runs):
    loss, theta0 = problem
    columns = {k: [r[k] for r in runs] for k in ("h", "beta", "rho", "eps")}
    together = bl.adam_runs(loss, theta0, n_steps, **columns)
    for r, run in enumerate(runs):
        alone = bl.adam(loss, theta0, n_steps, **run)
        # the same arithmetic on a (R, p) batch; vmap's gradient may round differently
        torch.testing.assert_close(together[:, r], alone, rtol=1e-12, atol=1e-12)


# -- 3. Theorem 3.1 with identical batches ----------------------------------------------------

flow_hyper = st.fixed_dictionaries(dict(
    h=st.floats(1e-3, 1e-2), beta=st.floats(0.0, 0.9), rho=st.floats(0.0, 0.9),
    eps=st.floats(1e-2, 1.0)))


@pytest.mark.filterwarnings("ignore::bea_lib.ExpansionValidityWarning")
@FEW
@given(problem=small_problems(max_p=2), hyper=flow_hyper, n_steps=st.integers(1, 4))
def test_two_identical_batches_give_the_one_batch_flow(problem, hyper, n_steps):
    """(3.2) with E_0 = E_1 = E: every average AV[·] of a constant sequence is that constant, so
    the piecewise flow is that of m = 1; at order 0 it is the full-batch ε-sign flow itself
    (at order 1 the flow of m = 1 keeps finite-n terms that (2.2)–(2.3) drops, decaying like ρⁿ:
    tests/test_minibatch.py)."""
    loss, theta0 = problem
    two = bl.adam_flow([loss, loss], theta0, n_steps, **hyper)
    one = minibatch_adam_flow([loss], theta0, n_steps, **hyper)
    # the same right-hand side up to the rounding of Σ_b c_b g_b; solver rtol 1e-10
    torch.testing.assert_close(two, one, rtol=1e-9, atol=1e-10)
    two0 = bl.adam_flow([loss, loss], theta0, n_steps, order=0, **hyper)
    full0 = bl.adam_flow(loss, theta0, n_steps, order=0, **hyper)
    # two solvers (RK45 per interval, DOP853 over the span), each within rtol 1e-10
    torch.testing.assert_close(two0, full0, rtol=1e-9, atol=1e-10)
