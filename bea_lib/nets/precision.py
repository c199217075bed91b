r"""Does float32 change what a network experiment reports? Its runs in float32 against float64.

A network chapter writes one row per run to ``runs.csv`` (:mod:`bea_lib.nets.evidence`) and
computes its verdicts from it (its claims, :mod:`bea_lib.claims`). Run the same experiment
twice, once with ``TrainConfig.dtype = "float64"`` and once with ``"float32"`` (the same seeds:
:func:`bea_lib.nets.config.build_model` draws θ⁽⁰⁾ in float32 for both), and
:func:`compare_runs` says whether float32 changed anything reported: every number of the
columns named, row by row, and every difference of a column across a factor (the κ effect
N(κ = +1) − N(κ = −1) of a seed and pair), within ``rtol`` relative to the float64 value; every
category (the gate, the stability regime) and every verdict the same. An experiment may run in
float32 only where this holds (``benchmarks/bench_precision.py`` runs it on the network
chapters).

Where float32 is not safe (its unit roundoff u = 2⁻²⁴ ≈ 6·10⁻⁸):

- **Small effects read as differences of runs.** Each float32 run carries its own rounding
  along its trajectory, and an effect read as the difference of two runs inherits it relative
  to its own size. In the mechanism chapter's runs (h = 2·10⁻⁵, 3 seeds) the norms are within
  3·10⁻⁴ of float64 (within 2·10⁻³ at the last epoch), but the κ effects, 1–2.5 % of the norm
  for the sign-flip pairs and 0.2–0.3 % for the β = ρ control, are off by up to 2.6 % for
  (β, ρ) = (0.8, 0.95) and up to 135 % for the control (10⁻⁴ for (0.95, 0.8)); the bias ratios
  by up to 1 %. The κ term itself, κh²f₁, is the bias ratio times Adam's step (about h a
  coordinate), so at a small h and ratio it is not far above float32's spacing u|θ_j|.
- **Long runs whose dynamics amplify rounding.** At a step size where training spikes or sits
  at the edge of stability, float32's rounding grows along the trajectory into a different
  path: the networks chapter's runs (h = 10⁻², 200 epochs) read their norms up to 86 % off,
  hill heights 29 %, sharpness 14 %, bias ratios along the run 21 %, where float64 summed in
  other passes moves them by 10⁻¹⁰ at most. Numbers at one point (the bias ratio at θ⁽⁰⁾)
  agree to 10⁻⁷.
- **ρ near 1.** A batch keeps its per-run hyperparameters as tensors of the run's dtype:
  float32's 1 − ρ is off by up to u/(2(1 − ρ)) relative (1.7·10⁻⁴ at ρ = 0.9999), and with it
  ν̂ early in a run.
- **g² + ε.** Where g_j² > 2ε/u (|g_j| > 0.6 at ε = 10⁻⁸), ε is lost from g_j² + ε: harmless
  for the step, but the ε-part ε/(g_j² + ε) of the bias coefficient is then rounding. The
  gradient norms are summed in float64 of the float32 gradient.

None of these is a bound that can be checked before a run; the comparison is the test. The
verdicts of both chapters were the same in both dtypes.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

# rows of two tables are the same run when these columns agree
RUN_KEY = ("experiment", "model", "optimizer", "seed", "h", "beta", "rho", "eps", "kappa")


class NumberCheck(NamedTuple):
    """The largest relative difference of one column (or one difference across a factor) over
    the rows, where it was largest, and whether it is within the tolerance."""

    name: str
    worst: float
    where: str
    rows: int
    within: bool


class CategoryCheck(NamedTuple):
    """A column of categories (or a claim's verdict): how many rows differ, one example."""

    name: str
    differ: int
    rows: int
    example: str


class PrecisionComparison(NamedTuple):
    """The comparison of an experiment's float32 runs with its float64 runs."""

    numbers: list[NumberCheck]
    categories: list[CategoryCheck]
    verdicts: list[CategoryCheck]
    rtol: float

    @property
    def passed(self) -> bool:
        """Float32 changes nothing reported: every number within ``rtol``, every category and
        verdict the same."""
        return (all(c.within for c in self.numbers)
                and all(c.differ == 0 for c in (*self.categories, *self.verdicts)))

    def table(self) -> list[list[str]]:
        """Rows [what, largest relative difference or rows that differ, where, verdict] for
        :func:`bea_lib.plotting.markdown_table`."""
        rows = [[c.name, f"{c.worst:.2g}", c.where, "within" if c.within else "outside"]
                for c in self.numbers]
        rows += [[c.name, f"{c.differ} of {c.rows} differ", c.example,
                  "same" if c.differ == 0 else "differs"]
                 for c in (*self.categories, *self.verdicts)]
        return rows


def relative_difference(x32: float, x64: float) -> float:
    """|x32 − x64| / |x64|; |x32| where x64 = 0; 0 if both are NaN (the same missing reading),
    inf if one is."""
    if math.isnan(x32) or math.isnan(x64):
        return 0.0 if math.isnan(x32) and math.isnan(x64) else math.inf
    if x32 == x64:  # equal infinities included
        return 0.0
    return abs(x32 - x64) / abs(x64) if x64 != 0 else abs(x32)


def _key_value(v):
    """A key cell, NaN (a setting a run does not have, as ρ for GD) made equal to itself."""
    return "nan" if isinstance(v, float) and math.isnan(v) else v


def _by_key(rows: Iterable[Mapping], key: Sequence[str], what: str) -> dict[tuple, Mapping]:
    out = {}
    for row in rows:
        k = tuple(_key_value(row[c]) for c in key)
        if k in out:
            raise ValueError(f"the {what} table has two rows with {dict(zip(key, k))}")
        out[k] = row
    return out


def _label(key: Sequence[str], k: tuple) -> str:
    return ", ".join(f"{c} {v}" for c, v in zip(key, k) if c not in ("experiment", "model",
                                                                     "optimizer", "eps", "h"))


def _worst(name: str, pairs: list[tuple[str, float, float]], rtol: float) -> NumberCheck:
    """The check of one quantity from its (row label, float32 value, float64 value) pairs."""
    diffs = [(relative_difference(float(a), float(b)), label) for label, a, b in pairs]
    worst, where = max(diffs, default=(0.0, ""), key=lambda d: d[0])
    return NumberCheck(name, worst, where, len(diffs), worst <= rtol)


def compare_runs(rows64: Iterable[Mapping], rows32: Iterable[Mapping], *,
                 numbers: Sequence[str] = (), categories: Sequence[str] = (),
                 differences: Sequence[tuple[str, str, object, object]] = (),
                 verdicts64: Mapping[str, str] | None = None,
                 verdicts32: Mapping[str, str] | None = None, key: Sequence[str] = RUN_KEY,
                 rtol: float = 0.01) -> PrecisionComparison:
    """Float32 runs against float64 runs of one experiment (rows of ``runs.csv``, matched by the
    columns ``key``).

    ``numbers``: columns compared row by row, relative to the float64 value (missing in a row:
    skipped). ``categories``: columns that must be equal (NaN to NaN). ``differences``:
    (column, factor, a, b) compares column(factor = a) − column(factor = b) for every group of
    rows that agree on ``key`` but the factor (``("norm_read", "kappa", 1.0, -1.0)``: the κ
    effect of a seed and pair). ``verdicts64``/``verdicts32``: claim id -> verdict (or status) of
    each run; every claim must have the same. Both tables must hold the same runs.
    """
    if not (isinstance(rtol, float) and 0 < rtol < 1):
        raise ValueError(f"rtol must be a float in (0, 1), got {rtol!r}")
    a, b = _by_key(rows64, key, "float64"), _by_key(rows32, key, "float32")
    if a.keys() != b.keys():
        only = sorted(set(a) ^ set(b), key=str)[:3]
        raise ValueError(f"the float64 and float32 tables hold different runs, e.g. "
                         f"{[dict(zip(key, k)) for k in only]}")
    if not a:
        raise ValueError("the tables hold no runs")
    checks = []
    for column in numbers:
        pairs = [(_label(key, k), b[k][column], a[k][column]) for k in a
                 if column in a[k] and column in b[k]]
        if not pairs:
            raise ValueError(f"no row has the column {column!r}")
        checks.append(_worst(column, pairs, rtol))
    for column, factor, hi, lo in differences:
        if factor not in key:
            raise ValueError(f"the factor {factor!r} must be one of the key columns {tuple(key)}")
        i = list(key).index(factor)
        pairs = []
        for k in a:
            if k[i] != hi:
                continue
            other = (*k[:i], lo, *k[i + 1:])
            if other in a:
                pairs.append((_label(key, k[:i] + k[i + 1:]),
                              b[k][column] - b[other][column], a[k][column] - a[other][column]))
        if not pairs:
            raise ValueError(f"no pair of rows with {factor} = {hi!r} and {lo!r}")
        checks.append(_worst(f"{column}({factor} = {hi:g}) − {column}({factor} = {lo:g})",
                             pairs, rtol))
    cats = []
    for column in categories:
        differ = [k for k in a if _key_value(a[k][column]) != _key_value(b[k][column])]
        example = (f"{_label(key, differ[0])}: {a[differ[0]][column]} (float64), "
                   f"{b[differ[0]][column]} (float32)" if differ else "")
        cats.append(CategoryCheck(column, len(differ), len(a), example))
    verdicts = []
    if (verdicts64 is None) != (verdicts32 is None):
        raise ValueError("give the verdicts of both dtypes, or of neither")
    if verdicts64 is not None:
        if set(verdicts64) != set(verdicts32):
            raise ValueError(f"the two runs made different claims: "
                             f"{sorted(set(verdicts64) ^ set(verdicts32))}")
        for claim in sorted(verdicts64):
            same = str(verdicts64[claim]) == str(verdicts32[claim])
            verdicts.append(CategoryCheck(claim, int(not same), 1, "" if same else
                                          f"{verdicts64[claim]} (float64), "
                                          f"{verdicts32[claim]} (float32)"))
    return PrecisionComparison(checks, cats, verdicts, rtol)
