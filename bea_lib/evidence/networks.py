"""The evidence of the networks chapter: Figures 4–6 on a network, and Adam against GD and
heavy-ball (the Discussion's first conclusion), from its runs and its ``runs.csv``. A run is keyed
(model, β, ρ, seed) (:func:`bea_lib.nets.executor.run_key`); a seed fixes the initial weights.
"""
from __future__ import annotations

import math
import numpy as np

from ..core.autodiff import gradient_and_hvp_fn
from ..nets.config import build_model
from ..nets.diagnostics import bias_ratio, flat_loss
from ..nets.executor import run_key
from . import statistics as st
from .readings import run_gate


def start_ratios(configs, data, cells) -> dict[tuple, float]:
    """The bias ratio h‖f₁‖/‖f₀‖ at θ⁽⁰⁾ (the seed fixes it) of each model and seed of
    ``configs``, at its h and ε, for every (β, ρ) of ``cells``; keyed (model, β, ρ, seed)."""
    first, out = {}, {}
    for c in configs:
        first.setdefault((c.model, c.seed), c)
    for (model, seed), c in first.items():
        net = build_model(c, data.input_shape, data.n_classes)
        E, theta0 = flat_loss(net, data.x_train.to(next(net.parameters()).dtype), data.y_train)
        g, hvp = gradient_and_hvp_fn(E, theta0)
        for b, r in cells:
            out[model, b, r, seed] = bias_ratio(g, hvp, h=c.h, beta=b, rho=r, eps=c.eps)
    return out


def figure_rows(sweeps: dict, configs, gates: dict, evidence: dict, readings: dict) -> list[dict]:
    """runs.csv: a row per figure and run of the cells it reads (``sweeps``: figure -> (cells,
    swept index, label)), with the run's gate and its figure readings."""
    rows = []
    for experiment, (cells, _, _) in sweeps.items():
        for cell in cells:
            for c in (c for c in configs if (c.beta, c.rho) == cell):
                key = run_key(c)
                g, v = gates[key], readings[key]
                rows.append({"experiment": experiment, "model": c.model, "optimizer": c.optimizer,
                             "seed": c.seed, "h": c.h, "beta": c.beta, "rho": c.rho, "eps": c.eps,
                             "kappa": 0.0, "epochs": c.epochs, "max_bias_ratio": g.max_ratio,
                             "gated": evidence[key],
                             "norm_read": v["norm_thr" if experiment == "fig5" else "norm_at"],
                             "test_acc_max": v["acc_max"], "gate_epochs": g.n_measured,
                             **{k: v[k] for k in ("regime", "norm_at", "epoch_thr", "norm_thr",
                                                  "acc_thr", "train_loss_end", "train_acc_end",
                                                  "hill", "hill_shape")}})
    return rows


def figure_tests(table: list[dict], sweeps: dict, seeds_of: dict, reads, *,
                 n_resamples: int) -> dict[tuple, dict]:
    """Per model (``seeds_of``: model -> its seeds) and test of ``reads``, each (claim, figure,
    sweep, runs.csv column, words, predicted sign, primary), from runs.csv: each seed's slope of
    the column against log10(1 − swept value), their mean with a BCa interval, the trend against
    the sign, the verdict (outside the theory's range unless every run of the sweep is
    evidence); keyed (model, claim), with the test's fields."""
    out = {}
    for model, seeds in seeds_of.items():
        for claim, paper, sweep, metric, what, sign, primary in reads:
            cells, i, _ = sweeps[sweep]
            by = {(r["beta"], r["rho"], r["seed"]): r for r in table
                  if r["experiment"] == sweep and r["model"] == model}
            values = np.array([[by[b, r, s][metric] for b, r in cells] for s in seeds],
                              dtype=float)
            gated = all(by[b, r, s]["gated"] for b, r in cells for s in seeds)
            x = np.log10(1 - np.array([c[i] for c in cells]))
            slopes = st.per_seed_slopes(x, values)
            q = st.mean_interval(slopes, n_resamples=n_resamples)
            trend = st.trend_of(q, expected=sign)
            out[model, claim] = dict(paper=paper, sweep=sweep, what=what, sign=sign, q=q,
                                     trend=trend, gated=gated, primary=primary,
                                     verdict=st.paper_verdict(trend, gated=gated),
                                     slopes=slopes, x=x, values=values)
    return out


def optimizer_rows(arms: dict, *, model: str, hyper: dict) -> list[dict]:
    """runs.csv rows of the optimizer comparison (``arms``: optimizer -> {seed: History},
    ``hyper``: optimizer -> (h, β, ρ, ε)): the last sharpness, accuracy gap and train loss."""
    rows = []
    for arm, hists in arms.items():
        h, beta, rho, eps = hyper[arm]
        for seed, hist in hists.items():
            gate = run_gate(hist)
            sharp = hist["sharpness"][np.isfinite(hist["sharpness"])]
            rows.append({"experiment": "optimizers", "model": model, "optimizer": arm,
                         "seed": seed, "h": h, "beta": beta, "rho": rho, "eps": eps,
                         "kappa": 0.0, "epochs": int(hist["epoch"][-1]),
                         "max_bias_ratio": gate.max_ratio, "gated": gate.within,
                         "norm_read": hist["grad_norm_1_eps"][-1],
                         "test_acc_max": float(np.nanmax(hist["test_acc"])),
                         "sharpness": float(sharp[-1]) if sharp.size else math.nan,
                         "gap": hist["train_acc"][-1] - hist["test_acc"][-1],
                         "train_loss_end": hist["train_loss"][-1]})
    return rows


def optimizer_comparison(table: list[dict], seeds, *, beta: float, rho: float,
                         n_resamples: int) -> dict[tuple, tuple]:
    """From runs.csv, per other optimizer and metric (sharpness, gap): Adam − other over the
    seeds, paired, with its verdict (:func:`~bea_lib.evidence.statistics.optimizer_verdict` at
    Adam's (β, ρ), inside the theory's range only if every run is inside its gate)."""
    rows = [r for r in table if r["experiment"] == "optimizers"]
    gated = all(r["gated"] for r in rows)
    return {(other, column): st.optimizer_verdict(
                st.per_seed(rows, column, seeds, optimizer="adam"),
                st.per_seed(rows, column, seeds, optimizer=other), beta=beta, rho=rho,
                gated=gated, n_resamples=n_resamples)
            for other in dict.fromkeys(r["optimizer"] for r in rows if r["optimizer"] != "adam")
            for column in ("sharpness", "gap")}
