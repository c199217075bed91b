r"""Hyperparameter sweeps of full-batch training (Section 6 of the paper, Figures 4–6): read.

This module turns the :class:`bea_lib.nets.history.History` objects of a sweep into the
quantities the paper plots (:func:`run_metrics`, the one reader both network chapters use), and
decides from them whether a claimed trend appears:

- :func:`first_below`, :func:`at_or_before`: the row where the training loss first drops below a
  threshold, and a (possibly sparsely logged) column read at or before a row (Figure 5 reads
  ‖∇E‖_{1,ε} and the test accuracy "when the loss first drops below the threshold").
- :func:`spike_ratio`, :func:`stability`: the training regimes of Ma et al. (2022), as a
  :class:`bea_lib.vocab.Stability`. A run whose loss climbs far above its running minimum is
  a *spike* run; a non-finite loss is *divergence*; otherwise the run is counted as *stable*
  (small oscillations at most).
- :func:`largest_rise`: the height of the highest "hill" of a curve (Figure 6).
- :func:`bootstrap_trend`, :func:`bootstrap_mean`, :func:`interval_verdict`: a trend over seeds
  with its bootstrap interval, and its :class:`bea_lib.vocab.TrendVerdict`.
- :func:`stored_runs`: runs saved by :func:`bea_lib.nets.train.train` under a results folder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.stats import spearmanr

from ..core.validation import check_int, check_one_of, check_positive
from ..base.vocab import Stability, StopReason, TrendVerdict
from ..nets.history import History, read_run_info


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


def largest_rise(values) -> float:
    """max_n (x_n − min_{k≤n} x_k): the height of the highest hill, measured from the valley
    before it (0 for a curve that never rises). Non-finite values are ignored."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.max(x - np.minimum.accumulate(x))) if x.size else math.nan


def run_metrics(history: History, *, loss_below: float, hill_after: int,
                norm_at: int | None = None, max_spike_ratio: float | None = None) -> dict:
    """The quantities both network chapters read from one run (NaN where the run does not
    reach them): the final train loss and ‖∇E‖_{1,ε} (``loss_end``, ``norm_end``), the norm at
    epoch ``norm_at`` (``norm_at``), the highest hill of the norm after epoch ``hill_after``
    (``hill``, Figure 6), the best test accuracy (``acc_max``), and, at the first epoch whose
    train loss is below ``loss_below`` (``epoch_thr``, Figure 5), the norm and the test accuracy
    (``norm_thr``, ``acc_thr``); with ``max_spike_ratio``, its :func:`spike_ratio` and
    :func:`stability` too."""
    hill_after = check_int("hill_after", hill_after, minimum=0)
    norm, loss = history["grad_norm_1_eps"], history["train_loss"]
    n_thr = first_below(loss, loss_below)
    out = {"loss_end": float(loss[-1]), "norm_end": float(norm[-1]),
           "norm_at": float(norm[norm_at]) if norm_at is not None and norm_at < len(norm)
           else math.nan,
           "hill": largest_rise(norm[hill_after:]),
           "acc_max": float(np.nanmax(history["test_acc"])),
           "epoch_thr": math.nan if n_thr is None else n_thr,
           "norm_thr": math.nan if n_thr is None else float(norm[n_thr]),
           "acc_thr": math.nan if n_thr is None else at_or_before(history["test_acc"], n_thr)}
    if max_spike_ratio is not None:
        out.update(spike_ratio=spike_ratio(loss),
                   stability=stability(history, max_ratio=max_spike_ratio))
    return out


def stored_runs(folder: str | Path) -> list[dict]:
    """Every run under ``folder`` saved by ``train(config, out_dir)``: a ``run.json`` with a
    ``history.csv`` beside it, sorted by path.

    Each entry holds ``path``, ``info`` (the parsed run.json: config, commit, stop reason, ...),
    ``history`` (a :class:`History`) and ``command`` (the text of a ``command.txt`` beside
    them, or ``info["command"]``, or None when the command was not recorded).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    runs = []
    for info_file in sorted(folder.rglob("run.json")):
        run_dir = info_file.parent
        if not (run_dir / "history.csv").is_file():
            continue
        info = read_run_info(run_dir)
        command_file = run_dir / "command.txt"
        command = command_file.read_text().strip() if command_file.is_file() else info.get("command")
        runs.append({"path": run_dir, "info": info, "history": History.read(run_dir), "command": command})
    return runs


@dataclass(frozen=True)
class BootstrapTrend:
    """A trend with an interval from resampling seeds: the mean at the largest parameter value
    minus the mean at the smallest, its percentile bootstrap interval, and the verdict."""

    difference: float  # mean(last) − mean(first) over the seeds given
    low: float  # lower end of the bootstrap interval of the difference
    high: float  # upper end
    spearman: float  # rank correlation of the seed means with the parameter
    verdict: str  # "appears", "opposite", "not seen" or "not testable"


def bootstrap_trend(params, values, *, expected: int, level: float = 0.95, n_boot: int = 2000,
                    seed: int = 0) -> BootstrapTrend:
    """Judge "the metric moves with the parameter in the direction ``expected``" (+1 or −1) by
    resampling seeds.

    ``values[i]`` holds the metric of each seed at ``params[i]`` (non-finite values are
    dropped). Each bootstrap replicate draws, at every parameter value independently, as many
    seeds as there are with replacement and recomputes the end-to-end difference of the means;
    the interval holds the central ``level`` of the replicates. The verdict is "appears" when
    the whole interval lies on the expected side of 0, "opposite" when it lies on the other
    side, "not seen" when it contains 0, and "not testable" when the smallest or the largest
    parameter value has fewer than two finite seeds (a one-seed end has no spread to resample).
    """
    check_one_of("expected", expected, (1, -1))
    _check_level(level)
    if len(params) != len(values):
        raise ValueError(f"params and values must have the same length, got {len(params)} and "
                         f"{len(values)}")
    kept = sorted((p, v[np.isfinite(v)]) for p, v in
                  ((p, np.asarray(v, dtype=float)) for p, v in zip(params, values)))
    kept = [(p, v) for p, v in kept if v.size > 0]
    if len(kept) < 2 or kept[0][1].size < 2 or kept[-1][1].size < 2:
        return BootstrapTrend(math.nan, math.nan, math.nan, math.nan, TrendVerdict.NOT_TESTABLE)
    means = [v.mean() for _, v in kept]
    rho_s = float(spearmanr([p for p, _ in kept], means).statistic) if len(set(means)) > 1 else math.nan
    first, last = kept[0][1], kept[-1][1]
    rng = np.random.default_rng(seed)
    replicates = _resampled_means(last, rng, n_boot) - _resampled_means(first, rng, n_boot)
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return BootstrapTrend(float(last.mean() - first.mean()), float(low), float(high), rho_s,
                          interval_verdict(low, high, expected=expected))


class Interval(NamedTuple):
    """A mean over seeds and its percentile-bootstrap interval; ``n`` finite values."""

    mean: float
    low: float
    high: float
    n: int


def bootstrap_mean(values, *, level: float = 0.95, n_boot: int = 10_000,
                   seed: int = 0) -> Interval:
    """The mean of the finite ``values`` and its percentile-bootstrap interval (resampling the
    values, e.g. seeds or paired differences over seeds, with replacement ``n_boot`` times;
    fixed ``seed`` for reproducibility)."""
    _check_level(level)
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    means = _resampled_means(v, np.random.default_rng(seed), n_boot)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(v.mean()), float(low), float(high), int(v.size))


def interval_verdict(low: float, high: float, *, expected: int) -> TrendVerdict:
    """The verdict on "the quantity moves in the direction ``expected``" (+1 or −1) from the
    interval [low, high] of its change: APPEARS when the interval lies on the expected side of
    0, OPPOSITE on the other side, NOT_SEEN when it contains 0, NOT_TESTABLE when it is not
    finite (nothing to resample)."""
    check_one_of("expected", expected, (1, -1))
    if not (math.isfinite(low) and math.isfinite(high)):
        return TrendVerdict.NOT_TESTABLE
    if low > 0 or high < 0:
        side = 1 if low > 0 else -1
        return TrendVerdict.APPEARS if side == expected else TrendVerdict.OPPOSITE
    return TrendVerdict.NOT_SEEN


def _resampled_means(v: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """``n_boot`` means of ``v`` resampled with replacement (the bootstrap's one draw)."""
    return v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)


def _check_level(level) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
