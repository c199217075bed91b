"""The validity gate, the κ prediction, paired statistics over seeds and runs.csv
(bea_lib.evidence.statistics)."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

import bea_lib as bl
from bea_lib.core.autodiff import gradient
from bea_lib.studies.intervention import kappa_adam
from bea_lib.evidence.statistics import (F0_AGREEMENT_LIMIT, NETWORK_LIMIT, RUN_COLUMNS,
                                         VERDICT_ORDER, PairedInterval, combined_trend,
                                         f0_disagreement, hill_shape, interval_text,
                                         kappa_prediction, mean_interval,
                                         minimum_detectable_effect, monotone_seeds,
                                         optimizer_verdict, paired_difference, per_seed,
                                         per_seed_slopes, read_runs_csv, trend_of, validity_gate,
                                         weakest_verdict, write_runs_csv)
from bea_lib.core.norms import perturbed_one_norm
from bea_lib.base.vocab import TrendVerdict


# --- the validity gate -----------------------------------------------------------------------

def test_gate_fails_when_one_measured_epoch_is_above_the_limit():
    gate = validity_gate([0, 50, 100], [0.02, NETWORK_LIMIT * 1.01, 0.01])
    assert not gate.within and gate.epoch == 50 and gate.n_measured == 3
    assert gate.max_ratio == pytest.approx(NETWORK_LIMIT * 1.01)
    assert validity_gate([0, 50, 100], [0.02, NETWORK_LIMIT, 0.01]).within  # the limit included
    assert NETWORK_LIMIT == 0.05  # declared 2026-12-07, from the calibration's lower bound


def test_gate_reads_the_unscaled_ratio_of_every_kappa_run():
    # no κ to scale by: the κ = −1 iterates leave their own flow at about Adam's ratio
    with pytest.raises(TypeError):
        validity_gate([0], [0.3], kappa=-1.0)
    assert not validity_gate([0], [0.3]).within
    assert validity_gate([0], [0.3], limit=0.5).within


def test_gate_fails_without_a_finite_measurement():
    assert not validity_gate([], []).within  # never measured: not shown to be inside
    assert not validity_gate([0, 10], [0.1, math.nan]).within  # e.g. a diverged run
    with pytest.raises(ValueError, match="same length"):
        validity_gate([0, 1], [0.1])


def test_f0_disagreement_against_the_smaller_effect():
    # κ = −1 norms 5.0 and 5.1, effects −1.0 and +0.4: 0.1 / 0.4
    assert f0_disagreement(5.0, 5.1, -1.0, 0.4) == pytest.approx(0.25)
    assert f0_disagreement(5.0, 5.1, -1.0, 0.4) <= F0_AGREEMENT_LIMIT
    assert f0_disagreement(400.0, 15.0, -1.0, 1.0) > F0_AGREEMENT_LIMIT  # runs that drifted apart
    assert f0_disagreement(5.0, 5.0, 0.0, 1.0) == math.inf


# --- the κ prediction, against a κ experiment that can fail ------------------------------------

def _kappa_direction(beta, rho):
    """The measured sign of the change of ‖∇E‖₁,ε with κ ∈ {−1, 0, +1} after 200 steps of the
    κ-variant on a smooth 4-parameter loss with ε ≪ g² (the one-norm cell); 0 if not monotone."""
    loss = bl.losses.logcosh_regression(4, seed=0)
    theta0 = torch.linspace(-0.8, 0.8, 4, dtype=torch.float64)
    norms = []
    for kappa in (-1.0, 0.0, 1.0):
        theta = kappa_adam(loss, theta0, 200, h=1e-3, beta=beta, rho=rho, eps=1e-8,
                           kappa=kappa)[-1]
        norms.append(float(perturbed_one_norm(gradient(loss, theta), eps=1e-8)))
    signs = np.sign(np.diff(norms))
    return int(signs[0]) if (signs == signs[0]).all() else 0


@pytest.mark.parametrize("beta, rho", [(0.95, 0.8), (0.8, 0.95)])
def test_kappa_prediction_matches_the_variant_and_its_mutant_does_not(beta, rho):
    measured = _kappa_direction(beta, rho)
    assert measured == kappa_prediction(beta=beta, rho=rho)
    # the mutant: β and ρ swapped in the prediction; it must be told apart by the same runs
    assert measured != kappa_prediction(beta=rho, rho=beta)


def test_kappa_prediction_signs():
    assert kappa_prediction(beta=0.95, rho=0.8) == -1
    assert kappa_prediction(beta=0.8, rho=0.95) == 1
    assert kappa_prediction(beta=0.9, rho=0.9) == -1  # the ε-part alone penalises
    with pytest.raises(ValueError, match="beta"):
        kappa_prediction(beta=1.0, rho=0.9)


def test_monotone_seeds_counts_strict_monotone_rows():
    v = [[3.0, 2.0, 1.0], [3.0, 3.0, 1.0], [1.0, 2.0, 3.0], [3.0, math.nan, 1.0]]
    assert monotone_seeds(v, direction=-1) == 1
    assert monotone_seeds(v, direction=1) == 1
    with pytest.raises(ValueError, match="direction"):
        monotone_seeds(v, direction=0)


# --- paired statistics ------------------------------------------------------------------------

def test_paired_difference_is_scipys_paired_bca():
    rng = np.random.default_rng(1)
    a = rng.normal(1.0, 1.0, 10)
    b = a - 0.5 + rng.normal(0, 0.1, 10)  # a − b ≈ 0.5, seed effects shared
    r = paired_difference(a, b, n_resamples=2000, seed=3)
    ref = stats.bootstrap((a, b), lambda x, y: np.mean(x - y), paired=True, vectorized=False,
                          method="BCa", n_resamples=2000, random_state=np.random.default_rng(3))
    assert (r.low, r.high) == pytest.approx((ref.confidence_interval.low,
                                             ref.confidence_interval.high))
    assert r.low > 0 and r.n_positive == 10 and r.n == 10
    assert trend_of(r, expected=1) == TrendVerdict.APPEARS
    assert trend_of(r, expected=-1) == TrendVerdict.OPPOSITE


def test_pairing_removes_the_seed_effect_that_unpaired_means_keep():
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 5.0, 10)  # large differences between seeds
    a, b = seed_effect + 0.2, seed_effect + rng.normal(0, 0.01, 10)
    assert paired_difference(a, b, n_resamples=2000).low > 0
    unpaired = mean_interval(a, n_resamples=2000).low - mean_interval(b, n_resamples=2000).high
    assert unpaired < 0  # the unpaired intervals overlap


def test_interval_including_zero_is_not_seen_with_its_mde():
    r = mean_interval([0.3, -0.2, 0.1, -0.4, 0.25, -0.1], n_resamples=2000)
    assert r.low < 0 < r.high and trend_of(r, expected=1) == TrendVerdict.NOT_SEEN
    assert r.mde > 0


def test_identical_values_and_too_few_seeds():
    r = mean_interval([2.0, 2.0, 2.0])
    assert (r.mean, r.low, r.high) == (2.0, 2.0, 2.0)
    one = mean_interval([1.0, math.nan])
    assert one.n == 1 and math.isnan(one.low)
    assert trend_of(one, expected=1) == TrendVerdict.NOT_TESTABLE


def test_minimum_detectable_effect_formula_and_scaling():
    v = np.array([1.0, 2.0, 3.0, 4.0])
    expected = (stats.t.ppf(0.975, 3) + stats.t.ppf(0.8, 3)) * v.std(ddof=1) / 2
    assert minimum_detectable_effect(v) == pytest.approx(expected)
    # four times the seeds with the same spread: about half the MDE (t quantiles shrink too)
    assert minimum_detectable_effect(np.tile(v, 4)) < 0.5 * minimum_detectable_effect(v)
    assert math.isnan(minimum_detectable_effect([1.0]))


def test_per_seed_slopes_exact_on_lines_and_skip_missing_values():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    v = np.array([[1, 3, 5, 7], [0, -1, math.nan, -3], [1, math.nan, math.nan, math.nan]], float)
    s = per_seed_slopes(x, v)
    assert s[0] == pytest.approx(2.0) and s[1] == pytest.approx(-1.0) and math.isnan(s[2])
    with pytest.raises(ValueError, match="seeds"):
        per_seed_slopes(x, v[:, :3])


# --- runs.csv ---------------------------------------------------------------------------------

def _row(**kw):
    row = dict(experiment="kappa", model="mlp", optimizer="adam", seed=0, h=6e-5, beta=0.95,
               rho=0.8, eps=1e-8, kappa=-1.0, epochs=250, max_bias_ratio=0.27, gated=True,
               norm_read=5.123456789012345, test_acc_max=0.25)
    row.update(kw)
    return row


def test_runs_csv_round_trip(tmp_path):
    rows = [_row(), _row(seed=1, gated=False, norm_read=math.nan, epoch_read=120)]
    rows[0]["epoch_read"] = 125
    path = write_runs_csv(rows, tmp_path / "out" / "runs.csv")
    back = read_runs_csv(path)
    assert list(back[0])[:len(RUN_COLUMNS)] == list(RUN_COLUMNS)
    assert back[0]["norm_read"] == rows[0]["norm_read"]  # full precision
    assert back[0]["gated"] is True and back[1]["gated"] is False
    assert back[1]["seed"] == 1 and back[0]["epoch_read"] == 125
    assert math.isnan(back[1]["norm_read"])
    assert [p.name for p in path.parent.iterdir()] == ["runs.csv"]  # no temporary file left


def test_runs_csv_refuses_incomplete_or_unknown_rows(tmp_path):
    row = _row()
    del row["gated"]
    with pytest.raises(ValueError, match="gated"):
        write_runs_csv([row], tmp_path / "runs.csv")
    with pytest.raises(ValueError, match="experiment"):
        write_runs_csv([_row(experiment="fig7")], tmp_path / "runs.csv")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="other.csv"):
        read_runs_csv(tmp_path / "other.csv")


# --- Figure 6's shape ------------------------------------------------------------------------

def test_hill_shape_reads_fall_rise_fall_flat():
    t = np.linspace(0, 1, 200)
    curve = 10 - 6 * t + 4 * np.exp(-((t - 0.5) / 0.08) ** 2)  # falls, a hill, falls
    curve = np.where(t > 0.8, curve[int(0.8 * 199)], curve)  # then flat
    shape = hill_shape(curve)
    assert shape.matches and 0.2 < shape.height < 0.6  # rise ≈ 2.8 over a trough ≈ 7.6
    # a monotone fall has no hill; a curve still rising at the end does not fall after
    assert not hill_shape(10 - 6 * t).matches
    rising = hill_shape(10 - 6 * t + 8 * np.clip(t - 0.6, 0, None))
    assert not rising.falls_after and not rising.matches
    # oscillations below tol are not a hill
    assert hill_shape(10 - 6 * t + 0.01 * np.sin(200 * t)).height == 0.0


def test_the_verdict_of_an_interval():
    def trend(low, high, expected):
        return trend_of(PairedInterval(0.0, low, high, 3, 0, 0, 0.0), expected=expected)

    assert trend(1.0, 3.0, +1) == TrendVerdict.APPEARS
    assert trend(1.0, 3.0, -1) == TrendVerdict.OPPOSITE
    assert trend(-3.0, -1.0, -1) == TrendVerdict.APPEARS
    assert trend(-1.0, 3.0, +1) == TrendVerdict.NOT_SEEN
    assert trend(math.nan, math.nan, +1) == TrendVerdict.NOT_TESTABLE
    with pytest.raises(ValueError, match="expected must be"):
        trend(1.0, 2.0, 2)


def test_the_optimizer_verdict_follows_the_prediction_and_a_swap_reverses_it():
    # Adam (ρ > β) predicted sharper than GD: the sign of kappa_prediction at Adam's (β, ρ)
    rng = np.random.default_rng(0)
    other = rng.normal(10.0, 1.0, 12)
    adam = other + 2.0 + rng.normal(0.0, 0.3, 12)  # Adam sharper on every seed
    interval, verdict = optimizer_verdict(adam, other, beta=0.9, rho=0.999, gated=True,
                                          n_resamples=999)
    assert interval.low > 0 and verdict == bl.Verdict.REPRODUCED
    _, swapped = optimizer_verdict(adam, other, beta=0.999, rho=0.9, gated=True, n_resamples=999)
    assert swapped == bl.Verdict.CONTRADICTED  # the mutant: β and ρ swapped
    _, outside = optimizer_verdict(adam, other, beta=0.9, rho=0.999, gated=False, n_resamples=999)
    assert outside == bl.Verdict.OUTSIDE_RANGE


def test_combined_trend_needs_every_setting():
    A, N, O, T = (TrendVerdict.APPEARS, TrendVerdict.NOT_SEEN, TrendVerdict.OPPOSITE,
                  TrendVerdict.NOT_TESTABLE)
    assert combined_trend([A, A]) == A
    assert combined_trend([A, N]) == N
    assert combined_trend([A, T, N]) == T
    assert combined_trend([T, O, A]) == O  # one opposite outweighs what could not be tested
    assert combined_trend(iter(["appears", "appears"])) == A


def test_the_weakest_verdict_of_comparisons_a_statement_needs_together():
    V = bl.Verdict
    assert weakest_verdict([V.REPRODUCED, V.INCONCLUSIVE]) == V.INCONCLUSIVE
    assert weakest_verdict([V.REPRODUCED, V.CONTRADICTED, V.INCONCLUSIVE]) == V.CONTRADICTED
    assert weakest_verdict(v for v in [V.REPRODUCED, V.OUTSIDE_RANGE]) == V.OUTSIDE_RANGE
    assert weakest_verdict(["reproduced", "not tested here"]) == V.NOT_TESTED
    assert [v for v in VERDICT_ORDER] == sorted(V, key=VERDICT_ORDER.index)  # every verdict ranked


def test_per_seed_reads_a_column_in_the_order_of_the_seeds():
    table = [{"seed": s, "arm": a, "x": 10 * s + (a == "b")} for s in (2, 0, 1) for a in "ab"]
    np.testing.assert_array_equal(per_seed(table, "x", [0, 1, 2], arm="b"), [1, 11, 21])
    np.testing.assert_array_equal(per_seed(table, "x", [2, 0], arm="a"), [20, 0])
    with pytest.raises(KeyError):
        per_seed(table, "x", [3], arm="a")  # a seed without a row is an error, not a NaN


def test_interval_text():
    q = mean_interval([1.0, 2.0, 4.0], n_resamples=999)
    assert interval_text(q) == f"{q.mean:.3g} [{q.low:.3g}, {q.high:.3g}]"
    assert interval_text(q, digits=2).startswith(f"{q.mean:.2g} [")
    assert interval_text(mean_interval([5.0])) == "5"  # one seed: the mean, no interval
    assert interval_text(mean_interval([math.nan])) == "—"


def test_the_vectorised_bootstrap_gives_the_intervals_of_the_plain_one():
    """The statistics are vectorised for speed; the resamples and the interval are scipy's
    own, so they equal those of the one-resample-at-a-time statistic."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=10), rng.normal(size=10)
    got = paired_difference(a, b, n_resamples=999, seed=5)
    plain = stats.bootstrap((a, b), lambda x, y: np.mean(x - y), paired=True, vectorized=False,
                            n_resamples=999, method="BCa",
                            random_state=np.random.default_rng(5)).confidence_interval
    assert (got.low, got.high) == pytest.approx((plain.low, plain.high), rel=1e-12)
    one = mean_interval(a, n_resamples=999, seed=5)
    plain = stats.bootstrap((a,), np.mean, vectorized=False, n_resamples=999, method="BCa",
                            random_state=np.random.default_rng(5)).confidence_interval
    assert (one.low, one.high) == pytest.approx((plain.low, plain.high), rel=1e-12)
