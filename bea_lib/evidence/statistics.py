r"""The one statistics module of the networks: gates, predictions, paired statistics, runs.csv.

Symbols as in :mod:`bea_lib.studies.intervention`: f₀ and f₁ the O(1) and O(h) terms of Adam's
modified flow (2.2)–(2.3), κ the scale of the κ-variant, whose flow is f₀ + (1 + κ) h f₁.

- **The validity gate** (:func:`validity_gate`): a run's bias ratio h‖f₁‖₂/‖f₀‖₂
  (:func:`bea_lib.nets.diagnostics.bias_ratio`, Adam's own ratio at the run's θ, unscaled for a
  κ-variant) at every measured epoch against :data:`NETWORK_LIMIT`; above it, or never
  measured, the run is *outside the theory's range*: shown, never evidence for or against the
  paper. (:data:`bea_lib.core.validation.VALIDITY_LIMIT` is another threshold on another ratio:
  the flows' warning on the larger of the β- and ρ-parts of the O(h) term at θ⁽⁰⁾.)
- **The f₀ gate** (:func:`f0_disagreement`): at κ = −1 the flow is f₀, which depends on ε alone,
  so the κ = −1 runs of two (β, ρ) pairs of one seed must agree to O(h²), against the O(h)
  effect read (:data:`F0_AGREEMENT_LIMIT`).
- **The prediction** of (2.5) (:func:`kappa_prediction`).
- **Paired statistics over seeds** (a seed fixes the initial weights in every cell): per-seed
  differences or slopes, their mean with a BCa interval (``scipy.stats.bootstrap``), the seeds
  on each side, the minimum detectable effect, and the verdict against a predicted sign.
- **The per-run table** ``runs.csv`` (:func:`write_runs_csv`, :func:`read_runs_csv`), from which
  the chapters compute their verdicts, so that anyone can recompute them.
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import stats

from ..base.fileio import atomic_write_text
from ..base.vocab import TrendVerdict, Verdict, paper_verdict
from ..core.validation import check_one_of, check_unit_interval
from ..core.validation import VALIDITY_LIMIT  # noqa: F401  (book/networks.md reads it here)

# The network gate, declared 2026-12-07 from the calibration of the gate on a network proxy
# (bea_lib.evidence.calibration at its default settings, shown on the mechanism page): the O(h)
# term describes the iterates while its flow is at least twice as close to them as the flow
# without it, and κ runs stay within half the κ effect of their own flow. Read at Adam's
# unscaled ratio for every run, that holds up to at least 0.05 (beyond it one sweep's order-1
# flow is too stiff to solve) and at most 0.12 (where the κ runs leave their flows). The lower
# bound is the limit, for the unscaled ratio of every run (κ = −1, 0, +1 alike) at every
# measured point.
NETWORK_LIMIT = 0.05
# The κ = −1 runs of two (β, ρ) pairs may differ by at most this fraction of the smaller κ effect
# |N(κ=+1) − N(κ=−1)| of the two pairs: their difference is the O(h²) remainder of the flow f₀
# they share, and a remainder half as large as the O(h) effect read could reorder the κ runs.
F0_AGREEMENT_LIMIT = 0.5

EXPERIMENTS = ("kappa", "fig4", "fig5", "fig6", "fig6-beta", "optimizers", "paper-regime",
               "fig4-in-range", "fig5-in-range", "optimizer-pilot")
# columns every row of runs.csv has; a chapter may add its own after them
RUN_COLUMNS = ("experiment", "model", "optimizer", "seed", "h", "beta", "rho", "eps", "kappa",
               "epochs", "max_bias_ratio", "gated", "norm_read", "test_acc_max")


class Gate(NamedTuple):
    """The validity gate of one run: the largest h‖f₁‖/‖f₀‖ over its measured epochs,
    the epoch where it was largest, how many epochs were measured, and whether the run is inside
    the theory's range (``within``: measured, and never above the limit)."""

    max_ratio: float
    epoch: int
    n_measured: int
    within: bool


def validity_gate(epochs: Sequence[int], ratios: Sequence[float], *,
                  limit: float = NETWORK_LIMIT) -> Gate:
    """The gate of a run whose bias ratio h‖f₁‖/‖f₀‖ was ``ratios[i]`` at ``epochs[i]``: inside
    when measured and at most ``limit`` at every measured epoch. The ratio is Adam's own at the
    run's θ, whatever its κ: the κ = −1 iterates leave their own flow f₀ at about the ratio Adam
    leaves its flow (the calibration), so scaling it by |1 + κ| would wave them through. A
    non-finite ratio or no measurement fails: a run is evidence only if shown to be inside."""
    e = np.asarray(epochs, dtype=float).reshape(-1)
    r = np.asarray(ratios, dtype=float).reshape(-1)
    if e.shape != r.shape:
        raise ValueError(f"epochs and ratios must have the same length, got {e.size} and {r.size}")
    if not (limit > 0 and math.isfinite(limit)):
        raise ValueError(f"limit must be a positive number, got {limit!r}")
    if r.size == 0:
        return Gate(math.nan, -1, 0, False)
    if not np.isfinite(r).all():
        bad = int(np.flatnonzero(~np.isfinite(r))[0])
        return Gate(math.nan, int(e[bad]), int(r.size), False)
    i = int(np.argmax(r))
    return Gate(float(r[i]), int(e[i]), int(r.size), bool(r[i] <= limit))


def f0_disagreement(norm_a: float, norm_b: float, effect_a: float, effect_b: float) -> float:
    """|N_a − N_b| / min(|effect_a|, |effect_b|): how far apart the κ = −1 runs of two (β, ρ)
    pairs of one seed end (norms ``norm_a``, ``norm_b`` read at the same point), against the
    smaller of the two pairs' κ effects N(κ=+1) − N(κ=−1). Inside the gate when at most
    :data:`F0_AGREEMENT_LIMIT`; infinite when an effect is zero."""
    values = np.array([norm_a, norm_b, effect_a, effect_b], dtype=float)
    if not np.isfinite(values).all():
        return math.inf
    effect = min(abs(effect_a), abs(effect_b))
    return math.inf if effect == 0 else abs(norm_a - norm_b) / effect


def kappa_prediction(*, beta: float, rho: float) -> int:
    """The sign of d‖∇E‖₁,ε/dκ that (2.5) predicts for the κ-variant where ε ≪ g²: −1 (a larger
    bias term lowers the norm: it is penalised) when β ≥ ρ, +1 (it hinders the norm's decrease)
    when ρ > β. At β = ρ the one-norm part of the coefficient vanishes and its ε-part,
    (1+ρ)/(1−ρ)·ε/(g²+ε) > 0, penalises: −1, with a much smaller effect in the one-norm cell."""
    beta, rho = check_unit_interval("beta", beta), check_unit_interval("rho", rho)
    return -1 if beta >= rho else 1


def monotone_seeds(values, *, direction: int) -> int:
    """How many rows of ``values`` (one row per seed, one column per κ in increasing order) are
    strictly monotone in ``direction`` (+1 increasing, −1 decreasing); rows with a non-finite
    value are not counted."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be 1 or -1, got {direction!r}")
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] < 2:
        raise ValueError(f"values must be (seeds, at least two κ), got shape {v.shape}")
    steps = direction * np.diff(v, axis=1)
    return int(np.sum(np.isfinite(v).all(axis=1) & (steps > 0).all(axis=1)))


def minimum_detectable_effect(values, *, level: float = 0.95, power: float = 0.8) -> float:
    """The smallest mean effect that a two-sided test at ``level`` on these per-seed values
    (differences or slopes) would detect with probability ``power``:
    (t_{(1+level)/2} + t_{power}) · s/√n, Student t with n − 1 degrees of freedom, s the standard
    deviation over seeds. NaN with fewer than two finite values."""
    _check_probability("level", level)
    _check_probability("power", power)
    v = np.asarray(values, dtype=float).reshape(-1)
    v = v[np.isfinite(v)]
    n = v.size
    if n < 2:
        return math.nan
    df = n - 1
    return float((stats.t.ppf((1 + level) / 2, df) + stats.t.ppf(power, df))
                 * v.std(ddof=1) / math.sqrt(n))


class PairedInterval(NamedTuple):
    """The mean over seeds of a per-seed quantity (a difference or a slope), its BCa bootstrap
    interval, the seeds with a finite value, how many are above and below zero, and the minimum
    detectable effect of the same data (:func:`minimum_detectable_effect`)."""

    mean: float
    low: float
    high: float
    n: int
    n_positive: int
    n_negative: int
    mde: float


def _interval(data: tuple, statistic, *, paired: bool, level: float, n_resamples: int,
              seed: int) -> tuple[float, float]:
    """The BCa interval of ``scipy.stats.bootstrap``; the percentile interval where BCa is
    undefined (its acceleration needs a jackknife with spread, e.g. two seeds). ``statistic``
    takes ``axis`` (vectorised: the same resamples and interval, tens of times faster)."""
    for method in ("BCa", "percentile"):
        res = stats.bootstrap(data, statistic, paired=paired, vectorized=True,
                              confidence_level=level, n_resamples=n_resamples, method=method,
                              random_state=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            break
    return low, high


def _summary(v: np.ndarray, interval, *, level: float) -> PairedInterval:
    """A PairedInterval of the per-seed values ``v`` (finite), the interval from ``interval()``."""
    n, pos, neg = v.size, int(np.sum(v > 0)), int(np.sum(v < 0))
    mde = minimum_detectable_effect(v, level=level)
    if n == 0:
        return PairedInterval(math.nan, math.nan, math.nan, 0, 0, 0, math.nan)
    mean = float(v.mean())
    if n < 2:
        return PairedInterval(mean, math.nan, math.nan, n, pos, neg, mde)
    if np.ptp(v) <= 1e-12 * max(1.0, abs(mean)):  # no spread: BCa is undefined, nothing varies
        return PairedInterval(mean, mean, mean, n, pos, neg, mde)
    return PairedInterval(mean, *interval(), n, pos, neg, mde)


def interval_text(q, digits: int = 3) -> str:
    """``mean [low, high]`` of a :class:`PairedInterval` (``digits`` significant): the mean
    alone without an interval, "—" without values."""
    if q.n == 0:
        return "—"
    if not math.isfinite(q.low):
        return f"{q.mean:.{digits}g}"
    return f"{q.mean:.{digits}g} [{q.low:.{digits}g}, {q.high:.{digits}g}]"


def mean_interval(values, *, level: float = 0.95, n_resamples: int = 9999,
                  seed: int = 0) -> PairedInterval:
    """The mean of the finite per-seed ``values`` (e.g. slopes) with its BCa bootstrap interval
    (``scipy.stats.bootstrap``, resampling seeds; fixed ``seed``): the value itself for identical
    values, NaN for fewer than two."""
    _check_probability("level", level)
    v = np.asarray(values, dtype=float).reshape(-1)
    v = v[np.isfinite(v)]
    return _summary(v, lambda: _interval((v,), np.mean, paired=False, level=level,
                                         n_resamples=n_resamples, seed=seed), level=level)


def paired_difference(a, b, *, level: float = 0.95, n_resamples: int = 9999,
                      seed: int = 0) -> PairedInterval:
    """The mean over seeds of a − b, ``a[i]`` and ``b[i]`` measured on seed i, with the BCa
    interval of ``scipy.stats.bootstrap((a, b), paired=True)``: seeds are resampled as pairs.
    Seeds where either value is not finite are dropped together."""
    _check_probability("level", level)
    a, b = np.asarray(a, dtype=float).reshape(-1), np.asarray(b, dtype=float).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"a and b must hold one value per seed each, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    return _summary(a - b, lambda: _interval((a, b), _mean_difference, paired=True, level=level,
                                             n_resamples=n_resamples, seed=seed), level=level)


def _mean_difference(x, y, axis=-1):
    """The mean of x − y along ``axis`` (the statistic of :func:`paired_difference`)."""
    return np.mean(x - y, axis=axis)


def per_seed_slopes(x, values) -> np.ndarray:
    """The least-squares slope of each seed's values against ``x``: ``values`` is (seeds, len(x));
    a seed's non-finite values are left out, and a seed with fewer than two finite values, or
    whose x are all equal, has slope NaN."""
    x = np.asarray(x, dtype=float).reshape(-1)
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] != x.size:
        raise ValueError(f"values must be (seeds, {x.size}), got shape {v.shape}")
    out = np.full(v.shape[0], math.nan)
    for i, row in enumerate(v):
        ok = np.isfinite(row) & np.isfinite(x)
        if ok.sum() >= 2 and np.ptp(x[ok]) > 0:
            out[i] = np.polyfit(x[ok], row[ok], 1)[0]
    return out


class HillShape(NamedTuple):
    """The shape of a curve as the paper's Figure 6 describes it: it falls, rises again in a
    hill, falls, and flattens. ``height`` is the hill's rise over the trough before it,
    relative to the trough; each flag says whether that part of the shape is there."""

    falls_first: bool
    height: float
    falls_after: bool
    flat_end: bool

    @property
    def matches(self) -> bool:
        return self.falls_first and self.falls_after and self.flat_end and self.height > 0


def hill_shape(values, *, skip: int = 0, tol: float = 0.05, tail: float = 0.1) -> HillShape:
    """Read fall–rise–fall–flat from a curve N_0, N_1, … (e.g. ‖∇E‖₁,ε per epoch).

    The hill is the largest rise max_n (N_n − min_{k≤n} N_k) after the first ``skip`` values,
    its trough the running minimum where it starts and its peak where it ends. The curve
    *falls first* when the trough is at least ``tol`` (relative) below N_skip; the hill counts
    (``height`` > 0) when the rise is at least ``tol`` of the trough; it *falls after* when the
    curve ends at least half the rise below the peak; it ends *flat* when over its last ``tail``
    share it changes by less than ``tol`` (relative). ``tol`` keeps epoch-to-epoch oscillations
    of a few per cent from counting as a shape.
    """
    v = np.asarray(values, dtype=float).reshape(-1)[skip:]
    if v.size < 4 or not np.isfinite(v).all():
        return HillShape(False, math.nan, False, False)
    running_min = np.minimum.accumulate(v)
    rise = v - running_min
    peak = int(np.argmax(rise))
    trough_value = running_min[peak]
    trough = int(np.flatnonzero(v[:peak + 1] == trough_value)[0])
    height = float(rise[peak] / trough_value) if trough_value > 0 else math.nan
    if not height >= tol:
        height = 0.0
    falls_first = bool(trough_value <= (1 - tol) * v[0]) and trough > 0
    falls_after = bool(height > 0 and v[-1] <= v[peak] - 0.5 * rise[peak])
    n_tail = max(2, int(round(tail * v.size)))
    end = v[-n_tail:]
    flat_end = bool(np.ptp(end) <= tol * abs(end.mean()))
    return HillShape(falls_first, height, falls_after, flat_end)


def trend_of(interval: PairedInterval, *, expected: int) -> TrendVerdict:
    """The verdict on a predicted direction (+1 or −1) from the interval [low, high] of a change:
    APPEARS when it excludes zero on the expected side, OPPOSITE on the other, NOT_SEEN when it
    holds zero, NOT_TESTABLE without an interval (fewer than two seeds)."""
    check_one_of("expected", expected, (1, -1))
    low, high = interval.low, interval.high
    if not (math.isfinite(low) and math.isfinite(high)):
        return TrendVerdict.NOT_TESTABLE
    if low > 0 or high < 0:
        return TrendVerdict.APPEARS if (1 if low > 0 else -1) == expected else TrendVerdict.OPPOSITE
    return TrendVerdict.NOT_SEEN


def combined_trend(trends) -> TrendVerdict:
    """One trend from several that must all appear: APPEARS when all do, else OPPOSITE when
    any is, else NOT_TESTABLE when any is, else NOT_SEEN."""
    trends = [TrendVerdict(t) for t in trends]
    if all(t == TrendVerdict.APPEARS for t in trends):
        return TrendVerdict.APPEARS
    for t in (TrendVerdict.OPPOSITE, TrendVerdict.NOT_TESTABLE):
        if t in trends:
            return t
    return TrendVerdict.NOT_SEEN


VERDICT_ORDER = (Verdict.NOT_RUN, Verdict.OUTSIDE_RANGE, Verdict.NOT_TESTED,
                 Verdict.CONTRADICTED, Verdict.INCONCLUSIVE, Verdict.REPRODUCED)  # weakest first


def weakest_verdict(verdicts) -> Verdict:
    """The weakest (:data:`VERDICT_ORDER`) of the verdicts one statement needs together."""
    return min((Verdict(v) for v in verdicts), key=VERDICT_ORDER.index)


def optimizer_verdict(adam, other, *, beta: float, rho: float, gated: bool,
                      n_resamples: int = 9999) -> tuple[PairedInterval, Verdict]:
    """(paired interval of ``adam`` − ``other`` over seeds, verdict): ``adam[i]`` and
    ``other[i]`` one per seed, from the same initial weights; the verdict is
    :func:`bea_lib.base.vocab.paper_verdict` of the interval against the sign the Discussion's
    first conclusion predicts: Adam sharper and generalising worse (+1) where its bias term
    hinders the decrease of ‖∇E‖₁,ε (ρ > β), the reverse where it penalises it: the sign of
    :func:`kappa_prediction`; *outside the theory's range* unless every run passed its gate."""
    interval = paired_difference(adam, other, n_resamples=n_resamples)
    trend = trend_of(interval, expected=kappa_prediction(beta=beta, rho=rho))
    return interval, paper_verdict(trend, gated=gated)


# --- runs.csv ---------------------------------------------------------------------------------

def _cell(value) -> str:
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def write_runs_csv(rows: Iterable[Mapping], path: str | Path) -> Path:
    """Write one row per run to ``path`` (atomically): the :data:`RUN_COLUMNS` first, then the
    further columns of the first row in its order. Every row must have every column; the
    experiment must be one of :data:`EXPERIMENTS`."""
    rows = list(rows)
    columns = [*RUN_COLUMNS, *(c for c in (rows[0] if rows else ()) if c not in RUN_COLUMNS)]
    for i, row in enumerate(rows):
        if row.get("experiment", EXPERIMENTS[0]) not in EXPERIMENTS:
            raise ValueError(f"runs.csv row {i}: experiment must be one of {EXPERIMENTS}, got "
                             f"{row['experiment']!r}")
    return write_table(rows, path, columns, name="runs.csv")


def write_table(rows: Sequence[Mapping], path: str | Path, columns: Sequence[str], *,
                name: str) -> Path:
    """Write ``rows`` with exactly ``columns`` (in order) to ``path`` atomically as CSV, floats
    at full precision (they read back to the same numbers, :func:`read_table`); ``name`` names
    the table in the errors."""
    if not rows:
        raise ValueError(f"rows must hold at least one row of {name}, got none")
    for i, row in enumerate(rows):
        missing = [c for c in columns if c not in row]
        unknown = [c for c in row if c not in columns]
        if missing or unknown:
            raise ValueError(f"{name} row {i}: missing columns {missing}, unknown {unknown}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(row[c]) for c in columns] for row in rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, buf.getvalue())


def _parse(text: str):
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_table(path: str | Path, columns: Sequence[str], *, name: str) -> list[dict]:
    """The rows of a table written by :func:`write_table`, values parsed back to bool, int,
    float or str; a file without ``columns`` raises ValueError naming it and ``name``."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} is not {name}: it lacks the columns {missing}")
        return [{k: _parse(v) for k, v in row.items()} for row in reader]


def read_runs_csv(path: str | Path) -> list[dict]:
    """The rows of a ``runs.csv`` written by :func:`write_runs_csv` (:func:`read_table`)."""
    return read_table(path, RUN_COLUMNS, name="a runs table")


def per_seed(table: list[dict], column: str, seeds, **where) -> np.ndarray:
    """``column`` of the rows of ``table`` that match ``where``, one value per seed of
    ``seeds`` in that order (a float array)."""
    by_seed = {r["seed"]: r[column] for r in table if all(r[k] == v for k, v in where.items())}
    return np.array([by_seed[s] for s in seeds], dtype=float)


def _check_probability(name: str, value) -> None:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
