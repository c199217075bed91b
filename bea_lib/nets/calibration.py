r"""The validity gate calibrated on a network: up to which bias ratio does the O(h) term help?

Symbols as in :mod:`bea_lib.intervention`: h ``h``, β ``beta``, ρ ``rho``, ε ``eps`` (inside
the square root), κ ``kappa``; g = ∇E(θ), H = ∇²E(θ), D = √(g² + ε), u = g/D; f₀ = −u and f₁
the O(1) and O(h) terms of Adam's modified flow (2.2)–(2.3).

**The question.** A network run counts as evidence only while its bias ratio
r = h‖f₁‖₂/‖f₀‖₂ (:func:`bea_lib.nets.diagnostics.bias_ratio`) stays at most
:data:`bea_lib.validation.VALIDITY_LIMIT`. The limit should be the ratio up to which the
first-order flow describes the run better than the flow without its O(h) term. This module
measures that on a network small enough for its flows to be solved. Over an h sweep, Adam
restarted with fresh moments runs ``n_steps`` steps, and the table holds the largest distance
over the window (as the order studies measure it) from the order-0 flow f₀ (``err_order0``,
about the displacement the O(h) term causes) and from the order-1 flow (``err_order1``, what
the series leaves out), and the same for the κ-variant (κ = ±1) against its own flow.
``error_ratio`` = err_order1/err_order0 grows with r (like r while the series holds);
:func:`calibrated_limit` turns the table into a limit by the rule it declares.

**The proxy.** The MNIST-1D MLP of the network chapters (:mod:`bea_lib.nets.models`) with a
smooth activation (tanh: ReLU has no second derivative), few examples and a small width, in
float64, as a loss of its flat parameters (:func:`bea_lib.nets.diagnostics.flat_loss`). Windows
start at the initial point and at points reached by plain Adam (:func:`trained_start`, the
networks chapter's optimiser settings) at given training losses, as the experiments restart
Adam from trained points.

**The flows.** Adam restarted with fresh moments is compared with its start-up flow, Theorem
3.1's flow (3.2) with one loss (:mod:`bea_lib.startup`): the full-batch flow adds the full O(h)
term from the first step and is farther from Adam than f₀ over a window not long against
1/(1 − max(β, ρ)). All flows of one start and (β, ρ) are solved together
(:func:`bea_lib.startup.solve_startup_flows`); a flow stiffer than ``evals_per_step``
evaluations per step of h allow is *over budget*, and :func:`calibrated_limit` counts it as
unknown, not as a failure. ``kappa_effect`` is the largest distance between the κ = +1 and
κ = −1 iterates, the effect the κ experiment reads; ``kappa_error_ratio`` is the larger of the
two κ runs' distances from their own start-up flows over that effect.

**Sharpness.** ``h_sharpness`` is h times the largest eigenvalue of diag(1/D)·H at the start
(D of the first step, √(g² + ε)), the preconditioned sharpness that Adam's step sees: the
bias ratio averages over directions, h_sharpness is the worst one.
"""
from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..autodiff import gradient_and_hvp_fn, top_eigenvalue
from ..fileio import atomic_write_text
from ..optimizers import adam
from ..order import max_distance
from ..startup import (
    EVALS_PER_STEP,
    FlowSpec,
    FlowStatus,
    kappa_runs,
    solve_startup_flows,
)
from ..validation import (
    VALIDITY_LIMIT,
    check_int,
    check_positive,
    check_theta0,
    check_unit_interval,
)
from .config import TrainConfig, build_model
from .data import load_dataset
from .diagnostics import bias_ratio, flat_loss
from .evidence import _cell, _parse

__all__ = ["CALIBRATION_COLUMNS", "CALIBRATION_FILE", "ERROR_FACTOR", "Calibration", "Limit",
           "calibrated_limit", "calibration_figure", "calibration_table", "proxy_loss",
           "read_calibration_csv", "run_calibration", "sweep_limit", "trained_start",
           "write_calibration_csv"]

# The order-1 flow describes a run while it is at least this many times closer to the iterates
# than the order-0 flow: its O(h²) remainder is then at most half the O(h) effect it adds, the
# standard the κ experiment's f₀ gate sets for its own remainder (F0_AGREEMENT_LIMIT = 0.5).
ERROR_FACTOR = 2.0
RTOL, ATOL = 1e-8, 1e-10  # the distances read are 1e-5 and more; at these tolerances the
# solver's own error is below 1e-6 (tests/test_calibration.py)
RATIO_POINTS = 5  # points of each window (both ends included) at which the bias ratio is read

# the default sweep: a β > ρ and a ρ > β pair (those of the mechanism chapter), an ε at which
# the flows of both are solved, bias ratios at the start from 0.02 to 5, windows of 40 steps
# (twice the longest memory 1/(1 - 0.95); the start-up flow is fair at any window length)
PAIRS = ((0.95, 0.8), (0.8, 0.95))
EPS = 1e-4
RATIOS = (0.02, 0.05, 0.15, 0.5, 1.5, 5.0)
N_STEPS = 40
CALIBRATION_FILE = "calibration.csv"

CALIBRATION_COLUMNS = ("start", "start_loss", "beta", "rho", "eps", "h", "n_steps",
                       "bias_ratio_start", "bias_ratio", "h_sharpness", "err_order0",
                       "err_order1", "error_ratio", "err_kappa_m1", "err_kappa_p1",
                       "kappa_effect", "kappa_error_ratio", "status", "status_order0",
                       "status_order1", "status_kappa_m1", "status_kappa_p1")


# --- the proxy and its starting points -----------------------------------------------------------

def proxy_loss(*, n_train: int = 64, width: int = 8, activation: str = "tanh",
               seed: int = 1000) -> tuple:
    """(E, θ⁽⁰⁾): the mean cross-entropy of the MNIST-1D MLP (two hidden layers of ``width``
    units, ``activation``) on its first ``n_train`` training signals, as a float64 loss of the
    flat parameters, and the initial parameters drawn with ``seed``."""
    config = TrainConfig(dataset="mnist1d", model="mlp", width=width, activation=activation,
                         n_train=n_train, seed=seed, dtype="float64")
    data = load_dataset("mnist1d", n_train=config.n_train).to(dtype=torch.float64)
    model = build_model(config, data.input_shape, data.n_classes)
    return flat_loss(model, data.x_train, data.y_train)


def trained_start(loss, theta0, *, train_loss: float, max_steps: int = 5000,
                  config: TrainConfig | None = None) -> tuple[torch.Tensor, int]:
    """(θ, n): the first iterate θ⁽ⁿ⁾ of plain Adam from θ⁽⁰⁾ (h, β, ρ, ε of ``config``, by
    default :class:`~bea_lib.nets.config.TrainConfig`'s: the networks chapter's optimiser) whose
    loss is below ``train_loss``. ValueError if Adam does not get there in ``max_steps`` steps."""
    config = TrainConfig() if config is None else config
    train_loss = check_positive("train_loss", train_loss)
    max_steps = check_int("max_steps", max_steps, minimum=1)
    theta0, n = check_theta0(theta0), min(128, max_steps)
    while True:  # one Adam run from θ⁽⁰⁾, twice as long each time the loss is not reached
        rows = adam(loss, theta0, n, h=config.h, beta=config.beta, rho=config.rho, eps=config.eps)
        with torch.no_grad():
            losses = torch.stack([loss(row) for row in rows])
        below = torch.nonzero(losses < train_loss)
        if len(below):
            return rows[int(below[0])], int(below[0])
        if n == max_steps:
            raise ValueError(f"train_loss = {train_loss:g} not reached by plain Adam in {n} steps "
                             f"(h = {config.h:g}, beta = {config.beta:g}, rho = {config.rho:g}; "
                             f"last loss {float(losses[-1]):.4g}): pass a larger train_loss or "
                             "max_steps")
        n = min(2 * n, max_steps)


# --- the table ---------------------------------------------------------------------------------

def _bias_ratio_at(loss, theta, *, h, beta, rho, eps) -> float:
    """h‖f₁‖/‖f₀‖ at θ (:func:`bea_lib.nets.diagnostics.bias_ratio`, the gate's quantity)."""
    g, hvp_fn = gradient_and_hvp_fn(loss, theta)
    return bias_ratio(g, hvp_fn, h=h, beta=beta, rho=rho, eps=eps)


def _distance(iterates: torch.Tensor, flow: torch.Tensor | None) -> float:
    """max_n ‖θ⁽ⁿ⁾ − θ̃(nh)‖ (:func:`bea_lib.order.max_distance`); NaN for an unsolved flow or
    iterates that stopped being finite."""
    if flow is None or not torch.isfinite(iterates).all():
        return math.nan
    return max_distance(iterates, flow)


def _larger(a: float, b: float) -> float:
    """max(a, b), NaN if either is (Python's max drops a NaN that comes second)."""
    return math.nan if math.isnan(a) or math.isnan(b) else max(a, b)


def _sweep(loss, theta0: torch.Tensor, start: str, *, beta: float, rho: float, eps: float,
           ratios: Sequence[float], n_steps: int, rtol: float, atol: float,
           evals_per_step: int) -> list[dict]:
    """The rows of one start and one (β, ρ): h = r/(bias ratio per unit h at θ⁽⁰⁾) for each r."""
    per_h = _bias_ratio_at(loss, theta0, h=1.0, beta=beta, rho=rho, eps=eps)  # r is linear in h
    g, hvp_fn = gradient_and_hvp_fn(loss, theta0)
    # the largest eigenvalue of diag(1/D)·H with the first step's D = √(g² + ε)
    sharpness = top_eigenvalue(hvp_fn, g, scale=(g**2 + eps) ** -0.25)
    hs = [r / per_h for r in ratios]
    k, hyper = len(hs), {"beta": beta, "rho": rho, "eps": eps}
    runs = kappa_runs(loss, theta0, n_steps, h=hs * 3, kappa=[0.0] * k + [-1.0] * k + [1.0] * k,
                      **hyper)
    specs = [FlowSpec(h, order, kappa) for order, kappa in ((0, 0.0), (1, 0.0), (1, -1.0),
                                                            (1, 1.0)) for h in hs]
    flows, why = solve_startup_flows(loss, theta0, specs, n_steps, **hyper, rtol=rtol,
                                     atol=atol, evals_per_step=evals_per_step)
    names = ("order0", "order1", "kappa_m1", "kappa_p1")
    points = np.unique(np.linspace(0, n_steps, RATIO_POINTS).round().astype(int))
    with torch.no_grad():
        start_loss = float(loss(theta0))
    rows = []
    for i, h in enumerate(hs):
        adam_runs, minus, plus = runs[:, i], runs[:, k + i], runs[:, 2 * k + i]
        flow_status = {f"status_{name}": why.get(j * k + i, FlowStatus.SOLVED)
                       for j, name in enumerate(names)}
        problems = [f"{name[7:]} {value}" for name, value in flow_status.items()
                    if value != FlowStatus.SOLVED]
        problems += [f"{name} iterates not finite" for name, x in
                     (("adam", adam_runs), ("kappa_m1", minus), ("kappa_p1", plus))
                     if not torch.isfinite(x).all()]
        ratios_along = [_bias_ratio_at(loss, adam_runs[n], h=h, **hyper) for n in points]
        err0, err1 = _distance(adam_runs, flows[i]), _distance(adam_runs, flows[k + i])
        err_m1, err_p1 = _distance(minus, flows[2 * k + i]), _distance(plus, flows[3 * k + i])
        effect = _distance(plus, minus)
        rows.append({
            "start": start, "start_loss": start_loss, "beta": beta, "rho": rho, "eps": eps,
            "h": h, "n_steps": n_steps, "bias_ratio_start": ratios_along[0],
            "bias_ratio": max(ratios_along), "h_sharpness": h * sharpness,
            "err_order0": err0, "err_order1": err1, "error_ratio": err1 / err0,
            "err_kappa_m1": err_m1, "err_kappa_p1": err_p1, "kappa_effect": effect,
            "kappa_error_ratio": _larger(err_m1, err_p1) / effect,
            "status": "; ".join(problems) or FlowStatus.SOLVED, **flow_status})
    return rows


def calibration_table(loss, starts: Mapping[str, torch.Tensor], *,
                      pairs: Iterable[tuple[float, float]] = PAIRS, eps: float = EPS,
                      ratios: Sequence[float] = RATIOS, n_steps: int = N_STEPS,
                      rtol: float = RTOL, atol: float = ATOL,
                      evals_per_step: int = EVALS_PER_STEP) -> list[dict]:
    """The calibration table: one row (:data:`CALIBRATION_COLUMNS`) per start, (β, ρ) in
    ``pairs`` and bias ratio r in ``ratios``, h set so that the bias ratio at the start is r.

    ``starts`` maps a name to a starting point θ⁽⁰⁾ of ``loss``; each window restarts Adam (and
    the κ-variants) there with fresh moments for ``n_steps`` steps (module docstring). The
    bias ratio is measured along Adam's window at ``RATIO_POINTS`` points: ``bias_ratio`` is the
    largest, the gate's reading. A row's ``status`` is "solved" or says which flow was not
    (and why) or which iterates stopped being finite; ``status_order0`` … ``status_kappa_p1``
    hold each flow's :class:`FlowStatus`, and the errors of an unsolved flow are NaN.
    """
    pairs = [(check_unit_interval("beta", b), check_unit_interval("rho", r)) for b, r in pairs]
    ratios = [check_positive("ratios", r) for r in ratios]
    n_steps, eps = check_int("n_steps", n_steps, minimum=1), check_positive("eps", eps)
    evals_per_step = check_int("evals_per_step", evals_per_step, minimum=6)  # one RK45 step
    if not pairs or not ratios or not starts:
        raise ValueError("starts, pairs and ratios must each hold at least one value")
    rows = []
    for start, theta0 in starts.items():
        for beta, rho in pairs:
            rows += _sweep(loss, check_theta0(theta0), str(start), beta=beta, rho=rho, eps=eps,
                           ratios=ratios, n_steps=n_steps, rtol=check_positive("rtol", rtol),
                           atol=check_positive("atol", atol), evals_per_step=evals_per_step)
    return rows


# --- the rule ------------------------------------------------------------------------------------

def sweep_limit(bias_ratios, error_ratios, *, over_budget=None,
                factor: float = ERROR_FACTOR) -> tuple[float, bool]:
    """(limit, reached) of one sweep by the rule of :func:`calibrated_limit`: the bias ratio up
    to which every row's error ratio is at most 1/``factor``.

    Rows are taken in increasing bias ratio. A row *passes* if its error ratio is at most
    1/factor and *fails* if it is larger or NaN (a flow that blew up, iterates that did); a row
    whose flows spent their budget (``over_budget``) is *unknown*. At the first row that does
    not pass the walk stops, and rows past it do not count:

    - a failing row: the limit is where the error ratio crosses 1/factor, interpolated linearly
      in log–log between the last passing row and this one (the last passing row's bias ratio
      if this one's error ratio is NaN), 0 if no row passed; ``reached`` is True;
    - an unknown row: the limit is the last passing row's bias ratio (0 if none), and
      ``reached`` is False: the true limit is at least that;
    - no such row: the largest bias ratio measured, ``reached`` False.
    """
    x, y = np.asarray(bias_ratios, dtype=float), np.asarray(error_ratios, dtype=float)
    unknown = (np.zeros(x.shape, dtype=bool) if over_budget is None
               else np.asarray(over_budget, dtype=bool))
    factor = check_positive("factor", factor)
    if x.ndim != 1 or x.size == 0 or y.shape != x.shape or unknown.shape != x.shape:
        raise ValueError(f"bias_ratios, error_ratios and over_budget must be 1-D of one length "
                         f">= 1, got shapes {x.shape}, {y.shape} and {unknown.shape}")
    if not (np.isfinite(x) & (x > 0)).all():
        raise ValueError(f"bias_ratios must be finite and > 0, got {x.tolist()}")
    threshold, last = 1 / factor, None
    for i in np.argsort(x, kind="stable"):
        if not unknown[i] and np.isfinite(y[i]) and y[i] <= threshold:
            last = i
            continue
        if unknown[i]:
            return (0.0 if last is None else float(x[last])), False
        if last is None:
            return 0.0, True
        if not np.isfinite(y[i]) or y[last] <= 0 or x[i] == x[last]:
            return float(x[last]), True
        share = (math.log(threshold) - math.log(y[last])) / (math.log(y[i]) - math.log(y[last]))
        log_x = math.log(x[last]) + share * (math.log(x[i]) - math.log(x[last]))
        return float(math.exp(log_x)), True
    return float(x[last]), False


class Limit(NamedTuple):
    """The calibrated limit and what it rests on.

    ``value`` is the smallest of the ``sweeps``' limits, and ``binding`` the sweep that gives
    it. Where that sweep crossed the threshold, ``reached`` is True and ``value`` is the limit;
    otherwise (it ended in rows over budget, or never failed) ``value`` is a lower bound, and
    ``upper``, the smallest limit that a sweep did reach (inf if none did), bounds it from
    above. ``sweeps`` maps (quantity, start, β, ρ), quantity "adam" or "kappa", to that sweep's
    (limit, reached) from :func:`sweep_limit`.
    """

    value: float
    reached: bool
    upper: float
    binding: tuple
    sweeps: dict


def _adam_reading(row: Mapping, factor: float) -> tuple[float, float, bool]:
    """(bias ratio, error ratio, over budget) of a row for Adam's flows."""
    flows = (row["status_order0"], row["status_order1"])
    return (float(row["bias_ratio"]), float(row["error_ratio"]),
            FlowStatus.OVER_BUDGET in flows)


def _kappa_reading(row: Mapping, factor: float) -> tuple[float, float, bool]:
    """(the κ = +1 run's own bias ratio 2·bias_ratio, as validity_gate scales it, the larger
    κ run's distance from its own flow over the κ effect, over budget) of a row. One κ flow
    already too far decides, even if the other spent its budget."""
    errors = [float(row[c]) for c in ("err_kappa_m1", "err_kappa_p1")]
    known = [e for e in errors if math.isfinite(e)]
    ratio = max(known) / float(row["kappa_effect"]) if known else math.nan
    over = FlowStatus.OVER_BUDGET in (row["status_kappa_m1"], row["status_kappa_p1"])
    if over and math.isfinite(ratio) and ratio > 1 / factor:
        over = False  # failed whatever the other flow would have given
    elif not over and len(known) < 2:
        ratio = math.nan  # a κ flow that blew up: a failure
    return 2 * float(row["bias_ratio"]), ratio, over


def calibrated_limit(rows: Iterable[Mapping], *, factor: float = ERROR_FACTOR,
                     kappa: bool = True) -> Limit:
    """The limit on the bias ratio that the calibration table ``rows`` supports.

    The declared rule: a modified flow describes a run up to the bias ratio below which it is
    at least ``factor`` (:data:`ERROR_FACTOR` = 2) times closer to the iterates than the flow
    without the O(h) term, so that what the series leaves out is at most half the effect of
    the O(h) term. For each start and (β, ρ), :func:`sweep_limit` of Adam's rows (bias ratio
    against err_order1/err_order0) and, with ``kappa``, of the κ runs' (the κ = +1 run's own
    ratio 2·bias_ratio, as :func:`bea_lib.nets.evidence.validity_gate` scales it, against
    kappa_error_ratio: the κ runs' distance from their own flows over the κ effect). The limit
    is the smallest of them: the gate must hold for every run the experiments make, from every
    start.
    """
    groups: dict[tuple, list[Mapping]] = {}
    for row in rows:
        groups.setdefault((str(row["start"]), float(row["beta"]), float(row["rho"])),
                          []).append(row)
    if not groups:
        raise ValueError("rows must hold at least one row of the calibration table")
    readings = {"adam": _adam_reading, **({"kappa": _kappa_reading} if kappa else {})}
    sweeps = {}
    for quantity, reading in readings.items():
        for key, group in groups.items():
            x, y, over = zip(*(reading(row, factor) for row in group))
            sweeps[(quantity, *key)] = sweep_limit(x, y, over_budget=over, factor=factor)
    binding = min(sweeps, key=lambda key: (sweeps[key][0], not sweeps[key][1]))
    upper = min((v for v, reached in sweeps.values() if reached), default=math.inf)
    return Limit(sweeps[binding][0], sweeps[binding][1], upper, binding, sweeps)


# --- files and the figure ----------------------------------------------------------------------

def write_calibration_csv(rows: Iterable[Mapping], path: str | Path) -> Path:
    """Write the table to ``path`` atomically, :data:`CALIBRATION_COLUMNS` in order, floats at
    full precision (they read back to the same numbers)."""
    rows = list(rows)
    if not rows:
        raise ValueError("rows must hold at least one row, got none")
    for i, row in enumerate(rows):
        missing = [c for c in CALIBRATION_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"calibration row {i} lacks the columns {missing}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CALIBRATION_COLUMNS)
    writer.writerows([_cell(row[c]) for c in CALIBRATION_COLUMNS] for row in rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, buf.getvalue())


def read_calibration_csv(path: str | Path) -> list[dict]:
    """The rows written by :func:`write_calibration_csv`, values parsed back to int, float or
    str; ValueError naming the file if it lacks a column."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CALIBRATION_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} is not a calibration table: it lacks the columns {missing}")
        rows = [{k: _parse(v) for k, v in row.items()} for row in reader]
    for row in rows:  # a start named like a number stays a name
        row["start"] = str(row["start"])
    return rows


def calibration_figure(rows: Sequence[Mapping], *, limit: Limit | float | None = None,
                       factor: float = ERROR_FACTOR):
    """The error ratio against the bias ratio, log–log, one panel per (β, ρ), one colour per
    start: Adam's err_order1/err_order0 (filled, solid) and the κ runs' distance from their
    own flows over the κ effect (open, dashed, at the κ = +1 run's own ratio 2·bias_ratio);
    a row whose flows were not solved (or, for κ, one of them) is a cross on the top edge.
    Grey lines: the ratio 1/``factor`` the rule asks for, ``VALIDITY_LIMIT`` (dashed) and the
    calibrated ``limit`` (dotted; a :class:`Limit` that is a lower bound is labelled so, with its
    upper bound). Built with :func:`bea_lib.plotting.panel_grid`; a chapter shows it with
    :func:`bea_lib.plotting.show_figure`."""
    from ..plotting import panel_grid

    pairs = list(dict.fromkeys((float(r["beta"]), float(r["rho"])) for r in rows))
    starts = list(dict.fromkeys(str(r["start"]) for r in rows))
    if not pairs:
        raise ValueError("rows must hold at least one row of the calibration table")
    readings = {"Adam": (_adam_reading, "o-", True), "κ = ±1": (_kappa_reading, "o--", False)}
    values = [reading(r, factor)[1] for r in rows for reading, _, _ in readings.values()]
    top = 2 * max([v for v in values if math.isfinite(v) and v > 0] + [1 / factor])
    fig, axes = panel_grid(len(pairs), sharey=True, panel=(3.4, 2.9))
    for ax, (beta, rho) in zip(axes, pairs):
        for j, start in enumerate(starts):
            group = [r for r in rows if str(r["start"]) == start
                     and (float(r["beta"]), float(r["rho"])) == (beta, rho)]
            for name, (reading, style, filled) in readings.items():
                x, y, over = (np.array(v, dtype=float) for v in
                              zip(*sorted(reading(r, factor) for r in group)))
                solved = np.isfinite(y) & (over == 0)  # over budget: unknown, a cross
                ax.loglog(x[solved], y[solved], style, color=f"C{j}", lw=1, ms=4,
                          mfc=f"C{j}" if filled else "none", label=f"{name}, {start}")
                ax.plot(x[~solved], np.full(int((~solved).sum()), top), "x", color=f"C{j}",
                        ms=6)
        ax.axhline(1 / factor, color="gray", lw=0.8, label=f"error ratio 1/{factor:g}")
        ax.axvline(VALIDITY_LIMIT, color="gray", lw=1, ls="--",
                   label=f"VALIDITY_LIMIT = {VALIDITY_LIMIT:g}")
        if limit is not None and float(limit[0] if isinstance(limit, Limit) else limit) > 0:
            x, label = _limit_line(limit)
            ax.axvline(x, color="black", lw=1, ls=":", label=label)
        ax.set_title(f"β = {beta:g}, ρ = {rho:g}", fontsize=9)
        ax.set_xlabel("bias ratio h‖f₁‖/‖f₀‖")
        ax.tick_params(axis="x", which="minor", labelbottom=False)  # minor labels overlap
    axes[0].set_ylabel("error ratio, order 1 / order 0")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=2)
    return fig


def _limit_line(limit: Limit | float) -> tuple[float, str]:
    """Where the calibrated limit's line goes, and its legend label."""
    if not isinstance(limit, Limit):
        return float(limit), f"calibrated: {float(limit):.2g}"
    if limit.reached:
        return limit.value, f"calibrated: {limit.value:.2g}"
    upper = f", ≤ {limit.upper:.2g}" if math.isfinite(limit.upper) else ""
    return limit.value, f"calibrated: ≥ {limit.value:.2g}{upper}"


# --- one call for a chapter ----------------------------------------------------------------------

class Calibration(NamedTuple):
    """What :func:`run_calibration` returns: the table's rows, the limit the rule gives, the
    starts' training steps, the wall time in seconds and the CSV written (or None)."""

    rows: list
    limit: Limit
    start_steps: dict
    seconds: float
    path: Path | None


def run_calibration(out_dir: str | Path | None = None, *, train_losses: Sequence[float] = (1.0,),
                    n_train: int = 64, width: int = 8, seed: int = 1000,
                    pairs: Iterable[tuple[float, float]] = PAIRS, eps: float = EPS,
                    ratios: Sequence[float] = RATIOS, n_steps: int = N_STEPS,
                    evals_per_step: int = EVALS_PER_STEP,
                    factor: float = ERROR_FACTOR) -> Calibration:
    """The whole study: the proxy (:func:`proxy_loss`), its starts (the initial point and one
    reached by plain Adam at each of ``train_losses``, :func:`trained_start`), the table
    (:func:`calibration_table`), the limit (:func:`calibrated_limit`), and
    ``out_dir/calibration.csv`` when ``out_dir`` is given."""
    t0 = time.perf_counter()
    loss, theta0 = proxy_loss(n_train=n_train, width=width, seed=seed)
    starts, steps = {"initial": theta0}, {"initial": 0}
    for target in train_losses:
        name = f"trained to {target:g}"
        starts[name], steps[name] = trained_start(loss, theta0, train_loss=target)
    rows = calibration_table(loss, starts, pairs=pairs, eps=eps, ratios=ratios, n_steps=n_steps,
                             evals_per_step=evals_per_step)
    path = (None if out_dir is None
            else write_calibration_csv(rows, Path(out_dir) / CALIBRATION_FILE))
    return Calibration(rows, calibrated_limit(rows, factor=factor), steps,
                       time.perf_counter() - t0, path)
