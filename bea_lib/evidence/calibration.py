r"""The validity gate calibrated on a network: up to which bias ratio does the O(h) term help?

Symbols as in :mod:`bea_lib.studies.intervention`; r = h‖f₁‖₂/‖f₀‖₂ is the bias ratio that the
gate holds below :data:`~bea_lib.evidence.statistics.NETWORK_LIMIT`. On a network whose
flows can be solved (:func:`proxy_loss`), Adam and the κ-variants (κ = ±1) restart with fresh
moments from each start, at the h that puts r at the start at each of ``ratios``. A row of
:func:`calibration_table` holds the largest distance over the window of Adam's iterates from
f₀'s flow (``err_order0``, about the O(h) term's effect) and from the order-1 flow
(``err_order1``, what the series leaves out), and of each κ run from its own flow: the flows of
a restart, (3.2) with one loss (:func:`~bea_lib.core.minibatch.minibatch_adam_flow`,
:func:`~bea_lib.studies.intervention.kappa_flow` with ``startup``), since over a window not long
against 1/(1 − max(β, ρ)) the full-batch flow is farther from Adam than f₀. A flow needing more
than ``evals_per_step`` evaluations in a step of h (a stiff one) is *over budget*, with NaN
distances. ``h_sharpness`` is h times the top eigenvalue of diag(1/D)·H at the start,
D = √(g² + ε). :func:`calibrated_limit` applies the declared rule.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..base.vocab import FlowStatus
from ..core.autodiff import gradient_and_hvp_fn, top_eigenvalue
from ..core.integrate import FlowError
from ..core.minibatch import minibatch_adam_flow
from ..core.optimizers import adam
from ..core.validation import (ExpansionValidityWarning, check_int, check_positive, check_theta0,
                               check_unit_interval)
from ..nets.config import TrainConfig, build_model
from ..nets.data import load_dataset
from ..nets.diagnostics import bias_ratio, flat_loss
from ..studies.intervention import kappa_adam, kappa_flow
from ..studies.order import max_distance
from .statistics import read_table, write_table

# A flow describes a run while it is this many times closer to the iterates than f₀: its O(h²)
# remainder is at most half the O(h) effect, as the f₀ gate asks (F0_AGREEMENT_LIMIT = 0.5).
ERROR_FACTOR = 2.0
RTOL, ATOL = 1e-8, 1e-10  # solver errors below 1e-8 against distances of 1e-6 and more (tests)
EVALS_PER_STEP = 30  # five RK45 steps in a step of h (a smooth one takes one)
RATIO_POINTS = 5  # points of each window (both ends included) at which r is read
# the default sweep: the mechanism chapter's β > ρ and ρ > β pairs, an ε at which both flows
# are solved, r at the start from 0.02 to 5, windows of 1/(1 − max(β, ρ)) steps
PAIRS = ((0.95, 0.8), (0.8, 0.95))
EPS = 1e-4
RATIOS = (0.02, 0.05, 0.15, 0.5, 1.5, 5.0)
N_STEPS = 20
CALIBRATION_FILE = "calibration.csv"
FLOWS = ("order0", "order1", "kappa_m1", "kappa_p1")
CALIBRATION_COLUMNS = ("start", "start_loss", "beta", "rho", "eps", "h", "n_steps",
                       "bias_ratio_start", "bias_ratio", "h_sharpness", "err_order0",
                       "err_order1", "error_ratio", "err_kappa_m1", "err_kappa_p1",
                       "kappa_effect", "kappa_error_ratio", "status",
                       *(f"status_{f}" for f in FLOWS))


def proxy_loss(*, n_train: int = 64, width: int = 8, seed: int = 1000) -> tuple:
    """(E, θ⁽⁰⁾): the mean cross-entropy of the MNIST-1D MLP (two tanh layers of ``width``: ReLU
    has no second derivative) on its first ``n_train`` signals, a float64 loss of the flat
    parameters, and θ⁽⁰⁾ drawn with ``seed``."""
    config = TrainConfig(dataset="mnist1d", model="mlp", width=width, activation="tanh",
                         n_train=n_train, seed=seed, dtype="float64")
    data = load_dataset("mnist1d", n_train=n_train).to(dtype=torch.float64)
    return flat_loss(build_model(config, data.input_shape, data.n_classes), data.x_train,
                     data.y_train)


def trained_start(loss, theta0, *, train_loss: float, max_steps: int = 5000
                  ) -> tuple[torch.Tensor, int]:
    """(θ⁽ⁿ⁾, n): the first iterate of plain Adam from θ⁽⁰⁾, at the optimiser settings of
    :class:`~bea_lib.nets.config.TrainConfig`, whose loss is below ``train_loss``."""
    c, train_loss = TrainConfig(), check_positive("train_loss", train_loss)
    max_steps, theta0, n = check_int("max_steps", max_steps, minimum=1), check_theta0(theta0), 0
    while n < max_steps:  # one Adam run from θ⁽⁰⁾, twice as long each time the loss is not reached
        n = min(max(2 * n, 128), max_steps)
        rows = adam(loss, theta0, n, h=c.h, beta=c.beta, rho=c.rho, eps=c.eps)
        with torch.no_grad():
            below = [i for i, row in enumerate(rows) if float(loss(row)) < train_loss]
        if below:
            return rows[below[0]], below[0]
    raise ValueError(f"train_loss = {train_loss:g} not reached by plain Adam in {max_steps} "
                     "steps: pass a larger train_loss or max_steps")


def _solved(solve) -> tuple[torch.Tensor | None, FlowStatus]:
    """(``solve()``, SOLVED), or (None, why not, read from its FlowError)."""
    try:
        with warnings.catch_warnings():  # the table goes past the limit on purpose
            warnings.simplefilter("ignore", ExpansionValidityWarning)
            return solve(), FlowStatus.SOLVED
    except FlowError as err:
        return None, (FlowStatus.OVER_BUDGET if "budget" in str(err) else
                      FlowStatus.NOT_FINITE if "finite" in str(err) else FlowStatus.FAILED)


def _distance(iterates: torch.Tensor, flow: torch.Tensor | None) -> float:
    """max_n ‖θ⁽ⁿ⁾ − θ̃(nh)‖; NaN for an unsolved flow or iterates that are not finite."""
    finite = flow is not None and bool(torch.isfinite(iterates).all())
    return max_distance(iterates, flow) if finite else math.nan


def _row(loss, theta0, *, h, beta, rho, eps, n_steps, rtol, atol, evals_per_step) -> dict:
    """The readings of one window of step size h (module docstring)."""
    hyper = {"h": h, "beta": beta, "rho": rho, "eps": eps}
    options = {"rtol": rtol, "atol": atol, "max_evals": evals_per_step, "max_seconds": math.inf}
    runs = {name: kappa_adam(loss, theta0, n_steps, kappa=k, **hyper)
            for name, k in (("adam", 0.0), ("kappa_m1", -1.0), ("kappa_p1", 1.0))}
    flows = dict(zip(FLOWS, [
        *(_solved(lambda o=o: minibatch_adam_flow([loss], theta0, n_steps, order=o, **hyper,
                                                  **options)) for o in (0, 1)),
        *(_solved(lambda k=k: kappa_flow(loss, theta0, n_steps, kappa=k, startup=True, **hyper,
                                         **options)) for k in (-1.0, 1.0))]))
    err = {f: _distance(runs[f if "kappa" in f else "adam"], flows[f][0]) for f in FLOWS}
    problems = [f"{f} {s}" for f, (_, s) in flows.items() if s != FlowStatus.SOLVED]
    problems += [f"{name} iterates not finite" for name, x in runs.items()
                 if not torch.isfinite(x).all()]
    ratios = [bias_ratio(*gradient_and_hvp_fn(loss, runs["adam"][n]), **hyper) for n in
              np.unique(np.linspace(0, n_steps, RATIO_POINTS).round().astype(int))]
    kappa_err = float(np.max([err["kappa_m1"], err["kappa_p1"]]))  # NaN if either is
    effect = _distance(runs["kappa_p1"], runs["kappa_m1"])
    largest = max(r for r in ratios if math.isfinite(r))  # up to iterates that blew up
    return {"h": h, "n_steps": n_steps, "bias_ratio_start": ratios[0], "bias_ratio": largest,
            **{f"err_{f}": e for f, e in err.items()}, "kappa_effect": effect,
            "error_ratio": err["order1"] / err["order0"], "kappa_error_ratio": kappa_err / effect,
            "status": "; ".join(problems) or FlowStatus.SOLVED,
            **{f"status_{f}": s for f, (_, s) in flows.items()}}


def calibration_table(loss, starts: Mapping[str, torch.Tensor], *,
                      pairs: Iterable[tuple[float, float]] = PAIRS, eps: float = EPS,
                      ratios: Sequence[float] = RATIOS, n_steps: int = N_STEPS,
                      rtol: float = RTOL, atol: float = ATOL,
                      evals_per_step: int = EVALS_PER_STEP) -> list[dict]:
    """One row (:data:`CALIBRATION_COLUMNS`) per start (``starts`` maps names to θ⁽⁰⁾), (β, ρ) of
    ``pairs`` and r of ``ratios``, h set so that the bias ratio at the start is r.

    ``bias_ratio`` is the largest of those read along Adam's window (:data:`RATIO_POINTS`), the
    gate's reading. ``status`` is "solved" or names what was not; the distances of an unsolved
    flow are NaN, and so is kappa_error_ratio (the larger κ run's distance from its own flow
    over the κ effect) if either κ flow is unsolved.
    """
    pairs = [(check_unit_interval("beta", b), check_unit_interval("rho", r)) for b, r in pairs]
    ratios, eps = [check_positive("ratios", r) for r in ratios], check_positive("eps", eps)
    options = {"n_steps": check_int("n_steps", n_steps, minimum=1),
               "rtol": check_positive("rtol", rtol), "atol": check_positive("atol", atol),
               # one RK45 step takes six evaluations
               "evals_per_step": check_int("evals_per_step", evals_per_step, minimum=6)}
    if not pairs or not ratios or not starts:
        raise ValueError("starts, pairs and ratios must each hold at least one value")
    rows = []
    for start, theta0 in starts.items():
        theta0 = check_theta0(theta0)
        g, hvp_fn = gradient_and_hvp_fn(loss, theta0)
        sharpness = top_eigenvalue(hvp_fn, g, scale=(g**2 + eps) ** -0.25)  # of diag(1/D)·H
        with torch.no_grad():
            start_loss = float(loss(theta0))
        for beta, rho in pairs:
            per_h = bias_ratio(g, hvp_fn, h=1.0, beta=beta, rho=rho, eps=eps)  # r ∝ h
            rows += [{"start": str(start), "start_loss": start_loss, "beta": beta, "rho": rho,
                      "eps": eps, "h_sharpness": r / per_h * sharpness,
                      **_row(loss, theta0, h=r / per_h, beta=beta, rho=rho, eps=eps, **options)}
                     for r in ratios]
    return [{c: row[c] for c in CALIBRATION_COLUMNS} for row in rows]


def sweep_limit(bias_ratios, error_ratios, *, over_budget=None,
                factor: float = ERROR_FACTOR) -> tuple[float, bool]:
    """(limit, reached) of one sweep: the bias ratio up to which every row's error ratio is at
    most 1/``factor``.

    In increasing bias ratio, a row *passes* (error ratio ≤ 1/factor), *fails* (larger, or NaN:
    a flow or the iterates blew up) or is *unknown* (``over_budget``). At the first row that
    does not pass: if it fails, the limit is where the error ratio crosses 1/factor, linear in
    log–log from the last passing row (that row's bias ratio if the error ratio is NaN; 0 if no
    row passed), ``reached``; if it is unknown, the last passing row's bias ratio (0 if none), a
    lower bound. If every row passes, the largest bias ratio, a lower bound.
    """
    x, y = np.asarray(bias_ratios, dtype=float), np.asarray(error_ratios, dtype=float)
    unknown = np.zeros(x.shape, bool) if over_budget is None else np.asarray(over_budget, bool)
    threshold, last = 1 / check_positive("factor", factor), None
    if x.ndim != 1 or x.size == 0 or y.shape != x.shape or unknown.shape != x.shape:
        raise ValueError(f"bias_ratios, error_ratios and over_budget must be 1-D of one length "
                         f">= 1, got shapes {x.shape}, {y.shape} and {unknown.shape}")
    if not (np.isfinite(x) & (x > 0)).all():
        raise ValueError(f"bias_ratios must be finite and > 0, got {x.tolist()}")
    for i in np.argsort(x, kind="stable"):
        if not unknown[i] and y[i] <= threshold:  # False for NaN
            last = i
        elif unknown[i] or last is None:
            return (0.0 if last is None else float(x[last])), not unknown[i]
        elif not np.isfinite(y[i]) or y[last] <= 0 or x[i] == x[last]:
            return float(x[last]), True
        else:
            share = math.log(threshold / y[last]) / math.log(y[i] / y[last])
            return float(x[last] * (x[i] / x[last]) ** share), True
    return float(x[last]), False


class Limit(NamedTuple):
    """The calibrated limit: ``value``, the smallest sweep limit, from the sweep ``binding``;
    where that sweep crossed 1/``factor`` ``reached`` is True, else ``value`` is a lower bound and
    ``upper`` (the smallest limit a sweep reached, inf if none) an upper one. ``sweeps`` and
    ``readings`` map each sweep (quantity, start, β, ρ) to its (limit, reached) and to its rows'
    arrays (bias ratio, error ratio, over budget) in increasing bias ratio."""

    value: float
    reached: bool
    upper: float
    binding: tuple
    sweeps: dict
    readings: dict
    factor: float


def _reading(row: Mapping, quantity: str, factor: float) -> tuple[float, float, bool]:
    """(bias ratio, error ratio, over budget) of a row for Adam's flows or the κ runs'."""
    if quantity == "adam":
        over = FlowStatus.OVER_BUDGET in (row["status_order0"], row["status_order1"])
        return float(row["bias_ratio"]), float(row["error_ratio"]), over
    known = [e for e in (float(row["err_kappa_m1"]), float(row["err_kappa_p1"]))
             if math.isfinite(e)]
    ratio = max(known) / float(row["kappa_effect"]) if known else math.nan
    over = FlowStatus.OVER_BUDGET in (row["status_kappa_m1"], row["status_kappa_p1"])
    if over and ratio > 1 / factor:  # one κ flow too far already fails the row
        over = False
    elif not over and len(known) < 2:  # a κ flow that blew up: a failure
        ratio = math.nan
    return float(row["bias_ratio"]), ratio, over  # the gate's ratio, unscaled for κ runs


def calibrated_limit(rows: Iterable[Mapping], *, factor: float = ERROR_FACTOR) -> Limit:
    """The limit on the bias ratio that the table ``rows`` supports, by the declared rule: a
    flow describes a run up to the bias ratio below which it is at least ``factor`` times closer
    to the iterates than f₀ (what the series leaves out is at most 1/factor of the O(h) term's
    effect). The smallest :func:`sweep_limit` over the sweeps, one per start and (β, ρ) for
    Adam ("adam": err_order1/err_order0 at bias_ratio) and for the κ runs ("kappa": the larger
    κ run's distance from its own flow over the κ effect, at Adam's bias ratio, which the
    network gate reads unscaled for every κ run): the gate must hold for every run."""
    groups: dict[tuple, list[Mapping]] = {}
    for row in rows:
        groups.setdefault((str(row["start"]), float(row["beta"]), float(row["rho"])),
                          []).append(row)
    readings = {(q, *key): tuple(np.array(v, dtype=float) for v in
                                 zip(*sorted(_reading(r, q, factor) for r in group)))
                for q in ("adam", "kappa") for key, group in groups.items()}
    if not readings:
        raise ValueError("rows must hold at least one row of the calibration table")
    sweeps = {key: sweep_limit(x, y, over_budget=over, factor=factor)
              for key, (x, y, over) in readings.items()}
    binding = min(sweeps, key=lambda key: (sweeps[key][0], not sweeps[key][1]))
    upper = min((v for v, reached in sweeps.values() if reached), default=math.inf)
    return Limit(*sweeps[binding], upper, binding, sweeps, readings, factor)


def write_calibration_csv(rows: Sequence[Mapping], path: str | Path) -> Path:
    """Write the table to ``path`` (:func:`~bea_lib.evidence.statistics.write_table`)."""
    return write_table(list(rows), path, CALIBRATION_COLUMNS, name="the calibration table")


def read_calibration_csv(path: str | Path) -> list[dict]:
    """The rows of :func:`write_calibration_csv`; ValueError naming a file without its columns."""
    rows = read_table(path, CALIBRATION_COLUMNS, name="a calibration table")
    return [{**row, "start": str(row["start"])} for row in rows]  # a start named "1" is a name


class Calibration(NamedTuple):
    """:func:`run_calibration`'s table, limit, Adam steps to each start and CSV path (or None)."""

    rows: list
    limit: Limit
    start_steps: dict
    path: Path | None


def run_calibration(out_dir: str | Path | None = None, *, train_losses: Sequence[float] = (1.0,),
                    seed: int = 1000, factor: float = ERROR_FACTOR, **table) -> Calibration:
    """The whole study: :func:`proxy_loss` of ``seed``, its starts (the initial point and one
    reached by plain Adam at each of ``train_losses``), :func:`calibration_table` (``table``: its
    keywords), :func:`calibrated_limit`, and ``out_dir/calibration.csv`` if ``out_dir`` is given."""
    loss, theta0 = proxy_loss(seed=seed)
    starts, steps = {"initial": theta0}, {"initial": 0}
    for target in train_losses:
        starts[f"trained to {target:g}"], steps[f"trained to {target:g}"] = trained_start(
            loss, theta0, train_loss=target)
    rows = calibration_table(loss, starts, **table)
    path = write_calibration_csv(rows, Path(out_dir) / CALIBRATION_FILE) if out_dir else None
    return Calibration(rows, calibrated_limit(rows, factor=factor), steps, path)
