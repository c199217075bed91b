r"""The Discussion's first conclusion on a network: Adam with ρ > β and RMSProp against GD and
heavy-ball, compared at matched training loss (declared 2026-12-07).

Each arm's step size comes from a rule declared before the runs (:func:`largest_stable_step`,
run on development seeds by :func:`pick_steps`); every arm then trains from each evidence
seed's initial weights through the one loop (:func:`train_arms`, ``TrainConfig.optimizer``)
until its training loss first falls below the matched loss, where it is read
(:func:`optimizer_rows`): the sharpness, the same against the arm's own stability threshold
(:func:`stability_threshold`), the test accuracy and the gap, with the arm's own validity gate.
:func:`optimizer_tests` gives the paired differences, the proxy's answer and the theory's
verdict, from the chapter's ``runs.csv``.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from ..base.vocab import paper_verdict, proxy_answer
from ..nets.history import History
from ..nets.train import train
from . import statistics as st
from .claims import claim
from .readings import first_below, run_gate, spike_ratio

ARMS = ("adam", "rmsprop", "gd", "heavy_ball")
PAIRS = (("adam", "gd"), ("adam", "heavy_ball"), ("rmsprop", "gd"), ("rmsprop", "heavy_ball"))
# metric -> the sign of (Adam or RMSProp) − (GD or heavy-ball) the conclusion predicts where the
# bias term hinders the norm's decrease (ρ > β), and whether it decides the answers
METRICS = {"sharpness": (+1, True), "test_acc": (-1, True), "sharpness_rel": (+1, False),
           "gap": (+1, False)}


def largest_stable_step(pilot: Mapping[float, Sequence[History]], *, matched_loss: float,
                        max_spike_ratio: float) -> float | None:
    """The declared rule for an arm's h: the largest h of ``pilot`` (h -> its pilot runs) whose
    runs all reach a training loss below ``matched_loss`` and never climb above
    ``max_spike_ratio`` times their running minimum; None when no h of the grid passes."""
    stable = [h for h, runs in pilot.items()
              if runs and all(first_below(r["train_loss"], matched_loss) is not None
                              and spike_ratio(r["train_loss"]) <= max_spike_ratio for r in runs)]
    return max(stable) if stable else None


def stability_threshold(optimizer: str, *, h: float, beta: float) -> float:
    """The step's own stability threshold for the sharpness it is compared with: 2/h for GD,
    (2 + 2β)/h for heavy-ball, and for Adam and RMSProp (2 + 2β)/((1 − β)h) for the sharpness
    of the preconditioned Hessian (the adaptive edge of stability, Cohen et al. 2022)."""
    if optimizer in ("gd", "heavy_ball"):
        return (2 + 2 * beta) / h
    return (2 + 2 * beta) / ((1 - beta) * h)


def optimizer_rows(arms: Mapping[str, Mapping[int, History]], *, model: str,
                   hyper: Mapping[str, tuple], matched_loss: float,
                   experiment: str = "optimizers") -> list[dict]:
    """runs.csv rows of the optimizer comparison (``arms``: optimizer -> {seed: History} of
    runs stopped at ``matched_loss``; ``hyper``: optimizer -> (h, β, ρ, ε)): at the matched
    epoch (the first with training loss below ``matched_loss``; −1 and NaN readings for a run
    that never gets there) the sharpness, the same against the arm's stability threshold
    (Adam and RMSProp: the preconditioned sharpness), test accuracy and the gap between training
    and test accuracy; the run's own gate over its measured points."""
    rows = []
    for arm, hists in arms.items():
        h, beta, rho, eps = hyper[arm]
        for seed, hist in hists.items():
            gate = run_gate(hist)
            n = first_below(hist["train_loss"], matched_loss)
            at = (lambda c: float(hist[c][n])) if n is not None else (lambda c: math.nan)
            adaptive = arm in ("adam", "rmsprop")
            sharp = at("preconditioned_sharpness" if adaptive else "sharpness")
            rows.append({"experiment": experiment, "model": model, "optimizer": arm,
                         "seed": seed, "h": h, "beta": beta, "rho": rho, "eps": eps,
                         "kappa": 0.0, "epochs": int(hist["epoch"][-1]),
                         "max_bias_ratio": gate.max_ratio, "gated": gate.within,
                         "norm_read": at("grad_norm_1_eps"),
                         "test_acc_max": _best(hist["test_acc"]),
                         "matched_epoch": -1 if n is None else n,
                         "sharpness": at("sharpness"),
                         "sharpness_rel": sharp / stability_threshold(arm, h=h, beta=beta),
                         "test_acc": at("test_acc"), "gap": at("train_acc") - at("test_acc"),
                         "train_loss_end": float(hist["train_loss"][-1]),
                         "spike_ratio": spike_ratio(hist["train_loss"])})
    return rows


def optimizer_tests(table: list[dict], seeds, *, beta: float, rho: float, n_resamples: int,
                    gate: bool = True) -> dict:
    """From runs.csv, every (pair, metric) of :data:`PAIRS` × :data:`METRICS`: the paired
    difference over ``seeds`` and its trend against the predicted sign (the metric's, times the
    sign of :func:`~bea_lib.evidence.statistics.kappa_prediction` at Adam's (β, ρ): +1 for
    ρ > β); then the proxy's answer and the theory's verdict from the deciding metrics together
    (all must appear), the verdict *outside the theory's range* unless every run is inside its
    own gate (``gate=False`` drops the gate: the mutant)."""
    rows = [r for r in table if r["experiment"] == "optimizers"]
    side = st.kappa_prediction(beta=beta, rho=rho)
    out = {}
    for a, b in PAIRS:
        for metric, (sign, _) in METRICS.items():
            q = st.paired_difference(st.per_seed(rows, metric, seeds, optimizer=a),
                                     st.per_seed(rows, metric, seeds, optimizer=b),
                                     n_resamples=n_resamples)
            out[a, b, metric] = (q, st.trend_of(q, expected=sign * side))
    trend = st.combined_trend(t for (_, _, m), (_, t) in out.items() if METRICS[m][1])
    gated = all(bool(r["gated"]) for r in rows) or not gate
    return {"pairs": out, "trend": trend, "answer": proxy_answer(trend), "gated": gated,
            "verdict": paper_verdict(trend, gated=gated)}





def _best(values) -> float:
    """The largest finite value; NaN without one."""
    v = np.asarray(values, dtype=float)
    return float(np.max(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan


class Step(NamedTuple):
    """An arm's step size and whether the rule found it (False: no h of the grid passed, the
    smallest was taken)."""

    h: float
    by_rule: bool


def pick_steps(base, grids: Mapping[str, Sequence[float]], pairs: Mapping[str, tuple], *,
               seeds, max_spike_ratio: float, data=None) -> tuple[dict, dict]:
    """Each arm's :class:`Step` by :func:`largest_stable_step` on its pilot runs: ``base``
    (its ``loss_threshold`` the matched loss, its ``epochs`` the cap) with the arm's optimizer,
    (β, ρ) of ``pairs`` and every h of its grid, from ``seeds``. Returns (steps, pilot runs:
    {arm: {h: {seed: History}}})."""
    steps, pilot = {}, {}
    for arm, grid in grids.items():
        beta, rho = pairs[arm]
        configs = [dataclasses.replace(base, optimizer=arm, h=h, beta=beta, rho=rho, seed=s,
                                       diagnostics_every=0)
                   for h in grid for s in seeds]
        hists = train(configs, data=data)
        pilot[arm] = {h: {c.seed: hh for c, hh in zip(configs, hists) if c.h == h}
                      for h in grid}
        h = largest_stable_step({h: list(runs.values()) for h, runs in pilot[arm].items()},
                                matched_loss=base.loss_threshold,
                                max_spike_ratio=max_spike_ratio)
        steps[arm] = Step(min(grid), False) if h is None else Step(h, True)
    return steps, pilot


def train_arms(base, steps: Mapping[str, Step], pairs: Mapping[str, tuple], *, seeds,
               gate_every: int, data=None) -> dict[str, dict[int, History]]:
    """Every arm from every seed at its step, until the matched loss (``base.loss_threshold``)
    or ``base.epochs``, with the diagnostics (its own expansion ratio, the sharpness) every
    ``gate_every`` epochs and where it stops, the test set at every epoch; {arm: {seed: run}}."""
    out = {}
    for arm, step in steps.items():
        beta, rho = pairs[arm]
        configs = [dataclasses.replace(base, optimizer=arm, h=step.h, beta=beta, rho=rho, seed=s,
                                       diagnostics_every=gate_every, sharpness=True,
                                       test_every=1) for s in seeds]
        out[arm] = dict(zip(seeds, train(configs, data=data), strict=True))
    return out


def pilot_rows(pilot: Mapping, base, pairs: Mapping[str, tuple], *, model: str) -> list[dict]:
    """runs.csv rows (experiment ``optimizer-pilot``) of the step-size rule's runs: whether each
    reached the matched loss, and its spike ratio."""
    rows = []
    for arm, by_h in pilot.items():
        beta, rho = pairs[arm]
        for h, hists in by_h.items():
            for seed, hist in hists.items():
                n = first_below(hist["train_loss"], base.loss_threshold)
                rows.append({"experiment": "optimizer-pilot", "model": model, "optimizer": arm,
                             "seed": seed, "h": h, "beta": beta, "rho": rho, "eps": base.eps,
                             "kappa": 0.0, "epochs": int(hist["epoch"][-1]),
                             "max_bias_ratio": math.nan, "gated": False,
                             "norm_read": math.nan,
                             "test_acc_max": _best(hist["test_acc"]),
                             "matched_epoch": -1 if n is None else n,
                             "spike_ratio": spike_ratio(hist["train_loss"])})
    return rows


_NAMES = {"adam": "Adam", "rmsprop": "RMSProp", "gd": "GD", "heavy_ball": "heavy-ball"}
METRIC_WORDS = {"sharpness": "sharpness", "test_acc": "test accuracy",
                 "sharpness_rel": "sharpness / threshold", "gap": "accuracy gap"}


def arm_table(table: list[dict], steps: Mapping[str, Step]) -> list[list]:
    """Per arm: its h (and whether the rule found it), the runs that reach the matched loss
    with their median matched epoch, and the medians over those runs of the readings there
    ("—" where no run reaches it); the largest expansion ratio and the runs inside their
    gates."""
    out = []
    for arm, step in steps.items():
        rows = [r for r in table if r["experiment"] == "optimizers" and r["optimizer"] == arm]
        reached = [r for r in rows if r["matched_epoch"] >= 0]

        def med(c, fmt, reached=reached):
            v = [r[c] for r in reached if np.isfinite(r[c])]
            return format(float(np.median(v)), fmt) if v else "—"
        epoch = (f"{med('matched_epoch', '.0f')} ({len(reached)}/{len(rows)})" if reached
                 else f"not reached (0/{len(rows)})")
        out.append([_NAMES[arm], f"{step.h:g}" + ("" if step.by_rule else " (none passed)"),
                    epoch, med("sharpness", ".3g"), med("sharpness_rel", ".2f"),
                    med("test_acc", ".3f"), med("gap", ".3f"),
                    f"{max(r['max_bias_ratio'] for r in rows):.3g}",
                    f"{sum(bool(r['gated']) for r in rows)}/{len(rows)}"])
    return out


def rule_markdown(table: list[dict], steps: Mapping[str, Step], *, matched_loss: float,
                  epochs: int) -> str:
    """A sentence on the arms the comparison cannot read: those for which no step of the grid
    passed the rule (the smallest was taken) and those with runs that never reach
    ``matched_loss`` within ``epochs``; every pair with such an arm is not testable. Empty when
    every arm is read."""
    rows = [r for r in table if r["experiment"] == "optimizers"]
    parts = []
    for arm, step in steps.items():
        mine = [r for r in rows if r["optimizer"] == arm]
        missed = sum(r["matched_epoch"] < 0 for r in mine)
        if step.by_rule and not missed:
            continue
        why = ("no step of its grid brought the pilot runs to the matched loss without a spike, "
               f"so its smallest, h = {step.h:g}, was taken as declared; " if not step.by_rule
               else "")
        parts.append(f"{_NAMES[arm]}: {why}{missed} of {len(mine)} runs do not reach training "
                     f"loss {matched_loss:g} within {epochs} epochs")
    if not parts:
        return ""
    return ("Not read: " + "; ".join(parts) + ". A pair with a run that is not read has no "
            "paired difference for that seed, and a metric with no seed is *not testable*.")


def optimizer_table(result: Mapping) -> list[list]:
    """Per pair of :func:`optimizer_tests`: each metric's paired difference, mean [95 % BCa],
    and its trend (one row per pair, one column per metric of :data:`METRIC_WORDS`)."""
    out = []
    for a, b in PAIRS:
        cells = [f"{st.interval_text(q)} ({t})" for (x, y, m), (q, t) in result["pairs"].items()
                 if (x, y) == (a, b)]
        out.append([f"{_NAMES[a]} − {_NAMES[b]}", *cells])
    return out


def record_optimizer_claims(result: Mapping, table: list[dict], *, section: str) -> None:
    """Record the two answers on the conclusion: the proxy's (``networks/optimizers-proxy``)
    and the theory's verdict through every arm's own gate (``networks/optimizers-paired``)."""
    rows = [r for r in table if r["experiment"] == "optimizers"]
    parts = "; ".join(f"{_NAMES[a]} − {_NAMES[b]} {METRIC_WORDS[m]} {st.interval_text(q)}"
                      for (a, b, m), (q, _) in result["pairs"].items() if METRICS[m][1])
    mde = max(q.mde for (_, _, m), (q, _) in result["pairs"].items() if METRICS[m][1])
    reached = sum(r["matched_epoch"] >= 0 for r in rows)
    ratios = [r["max_bias_ratio"] for r in rows]
    claim("networks/optimizers-proxy", paper="Section 4, first conclusion (experiment)",
          section=section, needs="default", passed=None, answer=result["answer"],
          detectable=f"{mde:.2g}",
          statement="at matched training loss, Adam (ρ > β) and RMSProp are sharper and less "
                    "accurate on the test set than GD and heavy-ball",
          measured=f"{reached} of {len(rows)} runs reach the matched loss; {parts}")
    claim("networks/optimizers-paired", paper="Section 4, first conclusion (experiment)",
          section=section, needs="default", passed=None, verdict=result["verdict"],
          statement="inside every arm's own validity gate, Adam (ρ > β) and RMSProp are "
                    "sharper and less accurate than GD and heavy-ball",
          measured=f"bias ratio {np.nanmin(ratios):.3g} to {np.nanmax(ratios):.3g} along the "
                   f"runs; {sum(bool(r['gated']) for r in rows)} of {len(rows)} runs inside "
                   "their gates")
