r"""What the network chapters read from a run's history (Section 6 of the paper, Figures 4–6).

- :func:`first_below`, :func:`at_or_before`: the row where the training loss first drops below a
  threshold, and a (possibly sparsely logged) column read at or before a row (Figure 5 reads
  ‖∇E‖_{1,ε} and the test accuracy "when the loss first drops below the threshold").
- :func:`spike_ratio`, :func:`stability`: the training regimes of Ma et al. (2022), as a
  :class:`bea_lib.base.vocab.Stability`. A run whose loss climbs far above its running minimum
  is a *spike* run; a non-finite loss is *divergence*; otherwise the run is counted as *stable*
  (small oscillations at most).
- :func:`reversal_share`: how often a curve turns back by more than a tolerance, the
  oscillation detector of Figure 6's curves (a loss can fall smoothly while the norm
  oscillates, so both are read).
- :func:`run_gate`, :func:`figure_readings`: a run's validity gate (at
  :data:`~bea_lib.evidence.statistics.NETWORK_LIMIT`), and what the networks chapter reads for
  Figures 4–6.
"""
from __future__ import annotations

import math

import numpy as np

from ..base.vocab import Stability, StopReason
from ..core.validation import check_int, check_positive
from ..nets.history import History
from .statistics import NETWORK_LIMIT, Gate, hill_shape, validity_gate


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


def reversal_share(values, *, skip: int = 0, tol: float) -> float:
    """The share of the interior points of N_skip, N_skip+1, … at which the curve turns back by
    more than ``tol`` (relative) on both sides: |log(N_n/N_n−1)| > tol and |log(N_n+1/N_n)| > tol
    with opposite signs. 0 for a monotone curve, near 1 for one that zigzags every step; NaN for
    fewer than three points or a non-positive or non-finite value."""
    tol = check_positive("tol", tol)
    v = np.asarray(values, dtype=float).reshape(-1)[skip:]
    if v.size < 3 or not (np.isfinite(v).all() and (v > 0).all()):
        return math.nan
    d = np.diff(np.log(v))
    turns = (d[:-1] * d[1:] < 0) & (np.minimum(np.abs(d[:-1]), np.abs(d[1:])) > tol)
    return float(turns.mean())


def run_gate(history: History, start_ratio: float | None = None, *,
             limit: float = NETWORK_LIMIT) -> Gate:
    """A run's validity gate (:func:`~bea_lib.evidence.statistics.validity_gate`, κ = 0, at
    ``limit``): the bias ratios it recorded (an optimizer's own expansion ratio), else
    ``start_ratio`` measured at θ⁽⁰⁾, else never measured."""
    d, e = history["bias_ratio"], history["epoch"]
    ok = np.isfinite(d)
    if ok.any():
        return validity_gate(e[ok], d[ok], limit=limit)
    if start_ratio is not None:
        return validity_gate([0], [start_ratio], limit=limit)
    return validity_gate([], [], limit=limit)


def figure_readings(history: History, *, epochs: int, read_below: float, norm_at: float,
                    hill_after: float, shape_tol: float, max_spike_ratio: float,
                    osc_tol: float, osc_share: float) -> dict:
    """What Figures 4–6 read from a run of ``epochs`` (NaN, or epoch −1, where it does not
    reach them): its regime, ‖∇E‖₁,ε at the fraction ``norm_at`` of the epochs and when the loss
    first falls below ``read_below`` (and the test accuracy then), the best test accuracy, the
    end, the hill of ‖∇E‖₁,ε after the fraction ``hill_after``, and from there the
    :func:`reversal_share` of the norm and of the training loss at ``osc_tol``, each curve
    *oscillating* when its share is at least ``osc_share``."""
    norm, loss = history["grad_norm_1_eps"], history["train_loss"]
    n_thr, n_norm = first_below(loss, read_below), round(norm_at * epochs)
    skip = round(hill_after * epochs)
    shape = hill_shape(norm, skip=skip, tol=shape_tol)
    osc = {name: reversal_share(curve, skip=skip, tol=osc_tol)
           for name, curve in (("norm", norm), ("loss", loss))}
    return {"regime": str(stability(history, max_ratio=max_spike_ratio)),
            "norm_at": norm[n_norm] if n_norm < len(norm) else math.nan,
            "epoch_thr": -1 if n_thr is None else n_thr,
            "norm_thr": norm[n_thr] if n_thr is not None else math.nan,
            "acc_thr": at_or_before(history["test_acc"], n_thr) if n_thr is not None else math.nan,
            "acc_max": float(np.nanmax(history["test_acc"])),
            "train_loss_end": float(loss[-1]), "train_acc_end": float(history["train_acc"][-1]),
            "hill": shape.height, "hill_shape": shape.matches,
            "osc_norm": osc["norm"], "osc_loss": osc["loss"],
            "oscillating_norm": bool(osc["norm"] >= osc_share),
            "oscillating_loss": bool(osc["loss"] >= osc_share)}
