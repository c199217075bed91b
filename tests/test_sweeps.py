"""Reading sweeps: threshold rows, stability, hills, the metrics reader, verdicts and stored runs.

The expected values are worked out by hand on short sequences; comparisons of floats computed
from a few exact inputs use exact equality where the arithmetic is exact (min, max, ratios of
small integers in binary) and pytest.approx with its default rel=1e-6 elsewhere (a mean of three
numbers is off by at most a few ulps).
"""
import math

import numpy as np
import pytest

from bea_lib.nets.history import COLUMNS, History
from bea_lib.evidence.readings import (at_or_before, bootstrap_mean, first_below, interval_verdict,
                                 largest_rise, run_metrics, spike_ratio, stability, stored_runs)
from bea_lib.nets.train import TrainConfig, train
from bea_lib.base.vocab import Stability, TrendVerdict


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


def test_run_metrics_reads_one_run_for_both_chapters():
    hist = _history([4.0, 2.0, 3.0, 1.0, 0.5])
    hist.columns["grad_norm_1_eps"] = [5.0, 1.0, 4.0, 2.0, 3.0]
    hist.columns["test_acc"] = [0.1, math.nan, 0.3, math.nan, 0.2]
    m = run_metrics(hist, loss_below=1.5, hill_after=1, norm_at=2, max_spike_ratio=2.0)
    # loss first below 1.5 at epoch 3; the test accuracy there is the last logged, epoch 2's
    assert (m["epoch_thr"], m["norm_thr"], m["acc_thr"]) == (3, 2.0, 0.3)
    assert (m["loss_end"], m["norm_end"], m["norm_at"], m["acc_max"]) == (0.5, 3.0, 4.0, 0.3)
    assert m["hill"] == 3.0  # from the valley 1.0 at epoch 1 to 4.0 at epoch 2
    assert m["spike_ratio"] == 1.5 and m["stability"] is Stability.STABLE  # 3.0 / 2.0
    never = run_metrics(hist, loss_below=0.1, hill_after=0)
    assert math.isnan(never["epoch_thr"]) and math.isnan(never["norm_thr"])
    assert math.isnan(never["norm_at"]) and "stability" not in never


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
