"""The theory inside its range (bea_lib.evidence.windows): the window's bias coefficient of
Theorem 3.1 after a restart, the prediction it gives, the reading at matched loss, and the
paired test with its mutant of β and ρ swapped in the prediction; on hand-made tables."""
import math

import numpy as np
import pytest

import bea_lib as bl
from bea_lib.evidence import windows as win

CELLS = win.in_range_cells([0.8, [0.85, 0.9, 0.95]], [0.95, [0.7, 0.8, 0.9]])


@pytest.mark.parametrize("gamma, n", [(0.9, 3), (0.95, 40), (0.5, 7)])
def test_the_startup_coefficient_is_twice_the_mean_lag_of_the_averaged_gradients_plus_one(gamma,
                                                                                         n):
    # Adam's bias-corrected average at step n weighs gradient k by (1 − γ)γ^(n−k), normalised
    weights = np.array([(1 - gamma) * gamma ** (n - k) for k in range(n + 1)])
    lag = np.sum(weights * (n - np.arange(n + 1))) / weights.sum()
    assert win._startup_coefficient(gamma, n) == pytest.approx(2 * lag + 1, rel=1e-12)


def test_the_startup_coefficient_grows_from_one_to_the_full_batch_one():
    assert win._startup_coefficient(0.9, 0) == pytest.approx(1.0)  # one gradient: no lag
    assert win._startup_coefficient(0.0, 50) == 1.0                # γ = 0: no averaging
    assert win._startup_coefficient(0.9, 2000) == pytest.approx(19.0, rel=1e-12)  # (1+γ)/(1−γ)
    # the window's mean tends to the full-batch coefficient; at κ = −1 it tends to 0
    full = win.full_coefficient(beta=0.8, rho=0.95)
    assert full == pytest.approx(9 - 39)
    long = win.window_coefficient(beta=0.8, rho=0.95, n_steps=20000)
    assert long == pytest.approx(full, rel=0.01)  # the start-up is 1/(1 − ρ) = 20 steps
    assert abs(win.window_coefficient(beta=0.8, rho=0.95, n_steps=20000, kappa=-1)) < 0.3
    # a short window has not built up the ρ-part: κ = −1 leaves a positive residue
    assert win.window_coefficient(beta=0.8, rho=0.95, n_steps=150, kappa=-1) > 5


def test_the_prediction_is_the_paper_direction_and_reverses_with_beta_and_rho_swapped():
    rho, beta = CELLS["fig4-in-range"], CELLS["fig5-in-range"]
    assert win.predicted_sign(rho, 1, n_steps=150) == -1  # the norm rises with ρ
    assert win.predicted_sign(beta, 0, n_steps=150) == +1  # the norm falls with β
    # swapped, the ρ sweep is a β sweep over the same values, and the other way round
    assert win.predicted_sign([(r, b) for b, r in rho], 0, n_steps=150) == +1
    assert win.predicted_sign([(r, b) for b, r in beta], 1, n_steps=150) == -1
    # the κ = −1 residue of the start-up points the other way
    assert win.predicted_sign(rho, 1, n_steps=150, kappa=-1) == +1


def test_the_reading_at_matched_loss_is_interpolated_between_steps():
    loss = np.array([3.0, 2.0, 1.0])
    norm = np.array([10.0, 8.0, 4.0])
    assert win._reading_at_loss(loss, norm, 1.5) == pytest.approx(6.0)  # halfway from 2 to 1
    assert win._reading_at_loss(loss, norm, 1.0) == pytest.approx(4.0)  # reached at the end
    assert win._reading_at_loss(loss, norm, 3.5) == 10.0
    assert math.isnan(win._reading_at_loss(loss, norm, 0.5))


def _table(slope, *, gated=True, seeds=range(5)):
    """In-range rows whose norm_read has the given slope against log10(1 − γ), κ = 0."""
    rng = np.random.default_rng(2)
    rows = []
    for experiment, cells in CELLS.items():
        i = win.IN_RANGE[experiment][1]
        for b, r in cells:
            for s in seeds:
                rows.append({"experiment": experiment, "beta": b, "rho": r, "seed": s,
                             "kappa": 0.0, "gated": gated,
                             "norm_read": s + slope[experiment] * math.log10(1 - (b, r)[i])
                             + 1e-4 * rng.normal()})
    return rows


def test_the_in_range_test_against_the_coefficients_prediction():
    seeds = list(range(5))
    table = _table({"fig4-in-range": -0.01, "fig5-in-range": 0.01})
    got = win.in_range_tests(table, CELLS, seeds, window_steps=150, n_resamples=999)
    assert got["fig4-in-range", 0.0]["verdict"] == bl.Verdict.REPRODUCED
    assert got["fig5-in-range", 0.0]["verdict"] == bl.Verdict.REPRODUCED
    swapped = win.in_range_tests(table, CELLS, seeds, window_steps=150, n_resamples=999,
                                 swap_prediction=True)  # the mutant
    assert swapped["fig4-in-range", 0.0]["verdict"] == bl.Verdict.CONTRADICTED
    assert swapped["fig5-in-range", 0.0]["verdict"] == bl.Verdict.CONTRADICTED
    outside = win.in_range_tests(_table({"fig4-in-range": -0.01, "fig5-in-range": 0.01},
                                        gated=False), CELLS, seeds, window_steps=150,
                                 n_resamples=999)
    assert outside["fig4-in-range", 0.0]["verdict"] == bl.Verdict.OUTSIDE_RANGE
    assert ("fig4-in-range", "bias part") not in got  # no κ = −1 arm in this table


def test_the_bias_part_is_the_kappa_zero_slope_minus_the_kappa_minus_one_slope():
    seeds = list(range(5))
    zero = _table({"fig4-in-range": -0.01, "fig5-in-range": 0.01})
    minus = [dict(r, kappa=-1.0, norm_read=r["norm_read"] + 0.02 * math.log10(1 - r["rho"]))
             for r in _table({"fig4-in-range": 0.0, "fig5-in-range": 0.0})]
    got = win.in_range_tests(zero + minus, CELLS, seeds, window_steps=150, n_resamples=999)
    part = got["fig4-in-range", "bias part"]
    assert part["q"].mean == pytest.approx(-0.01 - 0.02, abs=1e-3)
    assert part["verdict"] == bl.Verdict.REPRODUCED
