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
from bea_lib.evidence.readings import at_or_before, first_below, spike_ratio, stability


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
