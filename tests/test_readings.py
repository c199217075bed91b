"""What the network chapters read from a run's history (bea_lib.evidence.readings): threshold
rows, values logged every few epochs, stability.

The expected values are worked out by hand on short sequences; comparisons of floats computed
from a few exact inputs use exact equality where the arithmetic is exact (min, max, ratios of
small integers in binary) and pytest.approx with its default rel=1e-6 elsewhere (a mean of three
numbers is off by at most a few ulps).
"""
import math

import numpy as np
import pytest

from bea_lib.nets.history import COLUMNS, History
from bea_lib.base.vocab import Stability
from bea_lib.evidence.readings import (at_or_before, figure_readings, first_below,
                                       reversal_share, run_gate, spike_ratio, stability)


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
    assert stability(_history([4.0, 1.0, 1.2, 0.5]), max_ratio=1.5) is Stability.STABLE  # 1.2×
    assert stability(_history([4.0, 1.0, 3.0, 0.5]), max_ratio=1.5) is Stability.SPIKE
    assert stability(_history([1.0, 2.0], stop_reason="diverged"),
                     max_ratio=1.5) is Stability.DIVERGED
    assert stability(_history([1.0, math.nan]), max_ratio=1.5) is Stability.DIVERGED
    with pytest.raises(ValueError, match="max_ratio"):
        stability(_history([1.0]), max_ratio=0.0)


def _curves(**columns):
    """A history of len(columns["train_loss"]) rows with the given columns, the rest NaN."""
    n = len(columns["train_loss"])
    cols = {c: [math.nan] * n for c in COLUMNS}
    cols["epoch"] = [float(i) for i in range(n)]
    cols.update({c: [float(v) for v in values] for c, values in columns.items()})
    return History(cols, "epochs", "")


def test_a_runs_gate_is_its_recorded_ratios_else_its_start_ratio_else_none():
    recorded = _curves(train_loss=[3, 2, 1], bias_ratio=[0.02, math.nan, 0.04])
    gate = run_gate(recorded, start_ratio=9.0)  # the recorded ratios win
    assert (gate.max_ratio, gate.epoch, gate.n_measured, gate.within) == (0.04, 2, 2, True)
    start = run_gate(_curves(train_loss=[3, 2, 1]), start_ratio=0.03)
    assert (start.max_ratio, start.epoch, start.n_measured, start.within) == (0.03, 0, 1, True)
    assert not run_gate(_curves(train_loss=[3, 2, 1]), start_ratio=0.06).within  # NETWORK_LIMIT
    assert run_gate(_curves(train_loss=[3, 2, 1]), start_ratio=0.06, limit=0.5).within
    never = run_gate(_curves(train_loss=[3, 2, 1]))
    assert never.n_measured == 0 and not never.within  # not shown to be inside: no evidence


def test_the_reversal_share_counts_turns_beyond_the_tolerance():
    assert reversal_share([5, 4, 3, 2, 1], tol=0.01) == 0.0  # monotone
    assert reversal_share([1, 2, 1, 2, 1, 2], tol=0.01) == 1.0  # turns at every interior point
    assert reversal_share([1, 1.01, 1, 1.01, 1], tol=0.02) == 0.0  # turns of 1 % are below 2 %
    assert reversal_share([9, 9, 1, 2, 1], skip=2, tol=0.01) == 1.0  # one interior point, a turn
    assert math.isnan(reversal_share([1, 2], tol=0.01))
    assert math.isnan(reversal_share([1, 0, 1], tol=0.01))
    with pytest.raises(ValueError, match="tol"):
        reversal_share([1, 2, 3], tol=0)


def test_figure_readings_of_a_hand_made_run():
    run = _curves(train_loss=[4, 3, 2.5, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0, 0.9],
                  grad_norm_1_eps=[10, 8, 6, 9, 7, 5, 4, 4, 4, 4],
                  train_acc=[0.1] * 9 + [0.9],
                  test_acc=[0.1, math.nan, 0.3, math.nan, 0.5, math.nan, 0.4, math.nan, 0.2,
                            math.nan])
    m = figure_readings(run, epochs=9, read_below=1.45, norm_at=0.5, hill_after=0.0,
                        shape_tol=0.05, max_spike_ratio=1.5, osc_tol=0.02, osc_share=0.05)
    assert m["epoch_thr"] == 4 and m["norm_thr"] == 7.0 and m["acc_thr"] == 0.5
    assert m["norm_at"] == 7.0  # epoch round(0.5 · 9) = 4
    assert (m["acc_max"], m["train_loss_end"], m["train_acc_end"]) == (0.5, 0.9, 0.9)
    assert m["regime"] == "stable" and m["hill"] == pytest.approx(0.5)  # 6 -> 9 over 6
    assert m["hill_shape"]  # falls, rises, falls by more than half the rise, ends flat
    # the norm turns at 8 -> 6 -> 9 and 6 -> 9 -> 7: 2 of its 8 interior points; the loss never
    assert m["osc_norm"] == pytest.approx(2 / 8) and m["osc_loss"] == 0.0
    assert m["oscillating_norm"] and not m["oscillating_loss"]
    never = figure_readings(run, epochs=9, read_below=0.5, norm_at=2.0, hill_after=0.0,
                            shape_tol=0.05, max_spike_ratio=1.5, osc_tol=0.02, osc_share=0.05)
    assert never["epoch_thr"] == -1 and math.isnan(never["norm_thr"])
    assert math.isnan(never["acc_thr"]) and math.isnan(never["norm_at"])  # beyond the run
