r"""What the network chapters read from a run's history (Section 6 of the paper, Figures 4–6).

- :func:`first_below`, :func:`at_or_before`: the row where the training loss first drops below a
  threshold, and a (possibly sparsely logged) column read at or before a row (Figure 5 reads
  ‖∇E‖_{1,ε} and the test accuracy "when the loss first drops below the threshold").
- :func:`spike_ratio`, :func:`stability`: the training regimes of Ma et al. (2022), as a
  :class:`bea_lib.base.vocab.Stability`. A run whose loss climbs far above its running minimum
  is a *spike* run; a non-finite loss is *divergence*; otherwise the run is counted as *stable*
  (small oscillations at most).
"""
from __future__ import annotations

import math

import numpy as np

from ..base.vocab import Stability, StopReason
from ..core.validation import check_int, check_positive
from ..nets.history import History


def first_below(values, threshold: float) -> int | None:
    """The first index n with ``values[n] < threshold``, or None if there is none."""
    if math.isnan(float(threshold)):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    below = np.flatnonzero(np.asarray(values, dtype=float) < threshold)
    return int(below[0]) if below.size else None


def at_or_before(values, index: int) -> float:
    """The last finite value at or before ``index`` (NaN if none): test columns are logged every
    ``test_every`` epochs and hold NaN in between."""
    index = check_int("index", index, minimum=0)
    head = np.asarray(values, dtype=float)[: index + 1]
    finite = np.flatnonzero(np.isfinite(head))
    return float(head[finite[-1]]) if finite.size else math.nan


def spike_ratio(loss) -> float:
    """max_n E(θ⁽ⁿ⁾) / min_{k≤n} E(θ⁽ᵏ⁾): how far the loss ever climbs above its best value so far.

    1 for a loss that never rises; infinite if the loss becomes non-finite.
    """
    loss = np.asarray(loss, dtype=float)
    if loss.size == 0:
        return math.nan
    if not np.isfinite(loss).all():
        return math.inf
    return float(np.max(loss / np.minimum.accumulate(loss)))


def stability(history: History, *, max_ratio: float) -> Stability:
    """``DIVERGED`` (stopped on a non-finite loss), ``SPIKE`` (:func:`spike_ratio` of the
    training loss above ``max_ratio``) or ``STABLE``."""
    max_ratio = check_positive("max_ratio", max_ratio)
    if history.stop_reason == StopReason.DIVERGED or not np.isfinite(history["train_loss"]).all():
        return Stability.DIVERGED
    return Stability.SPIKE if spike_ratio(history["train_loss"]) > max_ratio else Stability.STABLE
