"""Reading sweeps: threshold rows, regimes, hills, seed spreads, trend verdicts and stored runs.

The expected values are worked out by hand on short sequences; comparisons of floats computed
from a few exact inputs use exact equality where the arithmetic is exact (min, max, ratios of
small integers in binary) and pytest.approx with its default rel=1e-6 elsewhere (a mean of three
numbers is off by at most a few ulps).
"""
import math

import numpy as np
import pytest

from bea_lib.nets.history import COLUMNS, History
from bea_lib.nets.sweeps import (bootstrap_mean, interval_verdict, Spread, at_or_before, first_below, largest_rise, seed_spread,
                                 spike_ratio, stability, stored_runs, sweep, trend)
from bea_lib.nets.train import TrainConfig, train
from bea_lib.vocab import Stability, TrendVerdict


def _history(loss, stop_reason="epochs"):
    n = len(loss)
    cols = {c: [0.0] * n for c in COLUMNS}
    cols["epoch"] = [float(i) for i in range(n)]
    cols["train_loss"] = [float(v) for v in loss]
    return History(cols, stop_reason, "")


def test_first_below_is_the_first_strictly_lower_index():
    assert first_below([1.0, 0.5, 0.1, 0.05, 0.2], 0.1) == 3  # 0.1 itself is not below 0.1
    assert first_below([1.0, 0.5], 0.1) is None
    assert first_below([np.nan, 0.05], 0.1) == 1  # NaN compares False


def test_at_or_before_skips_unlogged_rows():
    acc = [0.1, np.nan, np.nan, 0.4, np.nan]
    assert at_or_before(acc, 2) == 0.1
    assert at_or_before(acc, 4) == 0.4
    assert math.isnan(at_or_before([np.nan, 0.3], 0))


def test_spike_ratio_and_stability():
    assert spike_ratio([3.0, 2.0, 1.0]) == 1.0  # never rises
    assert spike_ratio([4.0, 1.0, 3.0, 0.5]) == 3.0  # climbs to 3× the best loss so far
    assert spike_ratio([1.0, math.inf]) == math.inf
    assert stability(_history([4.0, 1.0, 1.2, 0.5]), max_ratio=1.5) is Stability.STABLE  # 1.2× < 1.5×
    assert stability(_history([4.0, 1.0, 3.0, 0.5]), max_ratio=1.5) is Stability.SPIKE
    assert stability(_history([1.0, 2.0], stop_reason="diverged"), max_ratio=1.5) is Stability.DIVERGED
    assert stability(_history([1.0, math.nan]), max_ratio=1.5) is Stability.DIVERGED
    with pytest.raises(ValueError, match="max_ratio"):
        stability(_history([1.0]), max_ratio=0.0)


def test_largest_rise_measures_the_highest_hill_from_its_valley():
    assert largest_rise([5.0, 4.0, 3.0]) == 0.0
    # valleys 1 then 0.5; hills 4 (rise 3) and 2.5 (rise 2): the largest rise is 3
    assert largest_rise([5.0, 1.0, 4.0, 0.5, 2.5, 0.1]) == 3.0
    assert largest_rise([5.0, np.nan, 1.0, 2.0]) == 1.0


def test_seed_spread_ignores_non_finite_seeds():
    s = seed_spread([1.0, 2.0, np.nan, 4.0])
    assert (s.n, s.low, s.high) == (3, 1.0, 4.0)
    assert s.mean == pytest.approx(7 / 3)  # default rel 1e-6: a few ulps of rounding in the mean
    assert seed_spread([np.nan]).n == 0


def _spreads(*ranges):
    return [Spread(3, (lo + hi) / 2, lo, hi) for lo, hi in ranges]


def test_trend_verdicts():
    params = [0.9, 0.99, 0.999]
    rising_apart = _spreads((0, 1), (2, 3), (4, 5))
    rising_overlapping = _spreads((0, 4), (1, 4.5), (2, 5))
    t = trend(params, rising_apart, expected=+1)
    assert (t.spearman, t.ends_overlap, t.verdict) == (1.0, False, TrendVerdict.APPEARS)
    assert trend(params, rising_overlapping, expected=+1).verdict is TrendVerdict.WEAK
    assert trend(params, rising_apart, expected=-1).verdict is TrendVerdict.OPPOSITE
    assert trend(params, rising_overlapping, expected=-1).verdict is TrendVerdict.NOT_SEEN
    flat = _spreads((1, 2), (1, 2), (1, 2))
    assert trend(params, flat, expected=+1).verdict is TrendVerdict.NOT_SEEN
    # values without finite seeds are dropped; one value left is not a trend
    nan = Spread(0, math.nan, math.nan, math.nan)
    assert trend(params, [nan] * 2 + rising_apart[:1], expected=+1).verdict \
        is TrendVerdict.NOT_TESTABLE
    # the order of the grid does not matter
    assert trend(params[::-1], rising_apart[::-1], expected=+1).verdict is TrendVerdict.APPEARS
    with pytest.raises(ValueError, match="expected"):
        trend(params, rising_apart, expected=0)


def test_stored_runs_reads_what_train_writes(tmp_path):
    assert stored_runs(tmp_path / "missing") == []
    config = TrainConfig(dataset="digits", model="mlp", width=8, h=1e-2, epochs=3, n_train=40, n_test=10,
                         device="cpu")
    history = train(config, tmp_path / "networks" / "run-a")
    (tmp_path / "networks" / "run-a" / "command.txt").write_text("python -m bea_lib.nets.train ...\n")
    (tmp_path / "networks" / "notes").mkdir()  # a folder without run.json is skipped
    runs = stored_runs(tmp_path / "networks")
    assert len(runs) == 1
    run = runs[0]
    assert run["command"] == "python -m bea_lib.nets.train ..."
    assert run["info"]["config"]["epochs"] == 3 and run["info"]["stop_reason"] == "epochs"
    # the CSV holds floats in full precision (repr), so the history reads back exactly
    np.testing.assert_array_equal(run["history"]["train_loss"], history["train_loss"])


def test_sweep_runs_the_grid(tmp_path):
    base = TrainConfig(dataset="digits", model="mlp", width=8, h=1e-2, epochs=2, n_train=40,
                       n_test=10, device="cpu")
    runs = sweep(base, tmp_path, seed=[0, 1], rho=[0.99])
    assert list(runs) == [(0, 0.99), (1, 0.99)]
    assert (tmp_path / "seed=1-rho=0.99" / "history.csv").exists()
    assert runs[(0, 0.99)]["train_loss"][0] != runs[(1, 0.99)]["train_loss"][0]  # other initialisations
    with pytest.raises(ValueError, match="grid key must be one of"):
        sweep(base, tmp_path, lr=[0.1])


def test_bootstrap_mean_and_the_verdict_of_an_interval():
    v = bootstrap_mean([1.0, 1.0, 1.0])
    assert (v.mean, v.low, v.high, v.n) == (1.0, 1.0, 1.0, 3)  # no spread: exact
    w = bootstrap_mean([0.0, 1.0, 2.0, 3.0, math.nan])
    assert w.n == 4 and w.low < w.mean == 1.5 < w.high and 0.0 <= w.low and w.high <= 3.0
    assert interval_verdict(1.0, 3.0, expected=+1) == TrendVerdict.APPEARS
    assert interval_verdict(1.0, 3.0, expected=-1) == TrendVerdict.OPPOSITE
    assert interval_verdict(-3.0, -1.0, expected=-1) == TrendVerdict.APPEARS
    assert interval_verdict(-1.0, 3.0, expected=+1) == TrendVerdict.NOT_SEEN
    empty = bootstrap_mean([math.nan])
    assert empty.n == 0
    assert interval_verdict(empty.low, empty.high, expected=+1) == TrendVerdict.NOT_TESTABLE
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean([1.0], level=1.0)
    with pytest.raises(ValueError, match="expected must be"):
        interval_verdict(1.0, 2.0, expected=2)
