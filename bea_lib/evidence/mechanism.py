r"""The evidence of the mechanism chapter: the κ sign-flip test from trained starting points.

The design is declared in :data:`bea_lib.evidence.registry.MECHANISM` (its rules, with their
reasons). Per seed, starting points at several training stages
(:func:`bea_lib.nets.stages.train_to_stages`); from each, windows of Adam restarted with fresh
moments and its κ-variant (κ ∈ {−1, 0, +1}) at a β > ρ pair, a ρ > β pair and a β = ρ control,
at one h per stage and the same length t = n·h at every stage (:func:`window_plan`,
:func:`run_windows`). Every run gives one row of ``runs.csv`` (:func:`window_rows`), and
everything else is computed from that table (:func:`stage_test`):

- **the reading**: ‖∇E‖₁,ε at matched loss, L* the largest final training loss of the nine runs
  of a stage and seed, each run read where its loss first reaches L* (:func:`norm_at_loss`);
- **the bias-ratio gate**: the unscaled h‖f₁‖/‖f₀‖ of every run at n = 0, n/4, …, n, at most
  :data:`~bea_lib.evidence.statistics.NETWORK_LIMIT`;
- **the f₀ gate**: at κ = −1 both sign-flip pairs follow f₀, so their runs must agree, in
  parameter space at the window's end and on the reading, within
  :data:`~bea_lib.evidence.statistics.F0_AGREEMENT_LIMIT` of the smaller κ effect;
- **per stage**: (κ=+1) − (κ=−1) paired over seeds per pair (BCa interval, MDE, monotone seeds),
  the decomposition N(β > ρ) − N(ρ > β) at each κ, and a verdict
  (:class:`~bea_lib.base.vocab.ExperimentVerdict`); the row's verdict is the most trained
  stage's.

:data:`GATES` holds the gate definitions of this experiment's history: the original ones of
2026-12-04, those published that evening, and the current ones, so that the page can give the
verdict under each (:func:`stage_test` of ``gates=``, :func:`first_experiment_test` for the
first experiment's stored table).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import torch

from ..base.vocab import ExperimentVerdict, StopReason, experiment_verdict
from ..core.validation import VALIDITY_LIMIT
from . import statistics as st

PRIMARY = "norm_matched"  # the reading of the primary test: ‖∇E‖₁,ε at matched loss
QUARTERS = (1, 2, 3, 4)   # the points n·j/4 of a window at which distances are kept
MIN_GATE_POINTS = 3       # a run is gated only if its ratio was measured at this many points


# --- the plan and the runs --------------------------------------------------------------------

def window_plan(ratio_max: Mapping[int, float], *, limit: float = st.NETWORK_LIMIT,
                share: float = 0.25, min_steps: int = 100) -> dict[int, tuple[float, int]]:
    """stage -> (h, n): the declared rule from the largest ‖f₁‖/‖f₀‖ at each stage's starting
    points (``ratio_max``). h_s = share·limit/ratio_max[s]; the stage with the largest h_s runs
    ``min_steps`` steps (a multiple of 4), t = min_steps·max h_s; every stage runs
    n = t/h_s rounded up to a multiple of 4 at h = t/n ≤ h_s: one window length t for all."""
    if not ratio_max or not all(r > 0 and math.isfinite(r) for r in ratio_max.values()):
        raise ValueError(f"ratio_max must map stages to positive ratios, got {dict(ratio_max)!r}")
    if min_steps < 4 or min_steps % 4:
        raise ValueError(f"min_steps must be a positive multiple of 4, got {min_steps!r}")
    h_rule = {s: share * limit / r for s, r in ratio_max.items()}
    t = min_steps * max(h_rule.values())
    plan = {}
    for s, h in h_rule.items():
        n = 4 * math.ceil(t / (4 * h) - 1e-9)  # the largest h gives min_steps itself
        plan[s] = (t / n, n)
    return plan


def run_windows(base, points, plan: Mapping[int, tuple[float, int]], *, pairs, kappas,
                data=None) -> dict:
    """(stage, β, ρ, κ, seed) -> (History, {j: θ at n·j/4}): from every starting point of
    ``points`` (:class:`~bea_lib.nets.stages.StartPoint`), the κ-variant at every pair and κ
    with the stage's (h, n) of ``plan``, fresh moments, the bias ratio measured at n·j/4,
    j = 0..4 (``base`` gives the network, ε and the data); one batch per stage."""
    from ..nets.stages import restart

    out = {}
    for s, (h, n) in plan.items():
        at = [p for p in points if p.stage == s]
        keys = [(s, b, r, k, p.seed) for p in at for b, r in pairs for k in kappas]
        configs = [dataclasses.replace(base, h=h, beta=b, rho=r, kappa=k, seed=seed, epochs=n,
                                       diagnostics_every=n // 4, test_every=n, sharpness=False)
                   for _, b, r, k, seed in keys]
        theta = torch.stack([p.theta for p in at for _ in range(len(pairs) * len(kappas))])
        runs = restart(configs, theta, data=data, keep_at=[n * j // 4 for j in QUARTERS])
        for i, (key, history) in enumerate(zip(keys, runs.histories)):
            out[key] = (history, {j: runs.theta_at[n * j // 4][i] for j in QUARTERS})
    return out


class Experiment(NamedTuple):
    """One run of the experiment (:func:`run_experiment`): the starting points, the largest
    ‖f₁‖/‖f₀‖ at each stage's points, the plan stage -> (h, n), and the rows of runs.csv."""

    points: list
    ratio_max: dict
    plan: dict
    rows: list


def run_experiment(base, *, seeds, stage_losses, pairs, kappas, share: float = 0.25,
                   start_ups: float = 10, limit: float = st.NETWORK_LIMIT, data=None,
                   model: str = "mlp") -> Experiment:
    """The declared experiment end to end (module docstring): ``base`` gives the network, the
    data and the stages' optimizer; the windows use ``base.eps``. The stage with the largest h
    runs ``start_ups``/(1 − max β, ρ) steps, rounded up to a multiple of 4."""
    from ..nets.stages import ratio_per_step, train_to_stages

    points = train_to_stages(base, seeds=seeds, stage_losses=stage_losses, data=data)
    ratio_max = {}
    for s in sorted({p.stage for p in points}):
        theta = torch.stack([p.theta for p in points if p.stage == s])
        ratio_max[s] = float(np.max(ratio_per_step(base, theta, pairs, data=data)))
    memory = 1 / (1 - max(max(p) for p in pairs))
    plan = window_plan(ratio_max, limit=limit, share=share,
                       min_steps=4 * math.ceil(start_ups * memory / 4 - 1e-9))
    runs = run_windows(base, points, plan, pairs=pairs, kappas=kappas, data=data)
    rows = window_rows(runs, points, plan, pairs=pairs, kappas=kappas, model=model,
                       eps=base.eps)
    return Experiment(points, ratio_max, plan, rows)


# --- runs.csv ---------------------------------------------------------------------------------

def norm_at_loss(loss, norm, target: float) -> float:
    """The norm where the loss first reaches ``target``: linear in the loss between the last
    step above it and the first at or below it; NaN if it never does."""
    loss, norm = np.asarray(loss, dtype=float), np.asarray(norm, dtype=float)
    below = np.flatnonzero(loss <= target)
    if not below.size:
        return math.nan
    i = int(below[0])
    if i == 0:
        return float(norm[0])
    w = (loss[i - 1] - target) / (loss[i - 1] - loss[i])
    return float(norm[i - 1] + w * (norm[i] - norm[i - 1]))


def _sign_pairs(pairs) -> tuple[tuple, tuple]:
    """The β > ρ and the ρ > β pair of ``pairs``; ValueError unless there is one of each."""
    down = [tuple(p) for p in pairs if p[0] > p[1]]
    up = [tuple(p) for p in pairs if p[0] < p[1]]
    if len(down) != 1 or len(up) != 1:
        raise ValueError(f"pairs must hold one β > ρ and one ρ > β pair, got {list(pairs)!r}")
    return down[0], up[0]


def window_rows(runs: Mapping, points, plan: Mapping[int, tuple[float, int]], *, pairs, kappas,
                model: str, eps: float) -> list[dict]:
    """runs.csv: one row per window run of :func:`run_windows`, with its starting point
    (``stage``, ``start_loss``, ``start_epoch``, ``start_test_acc``), ``window_t`` = n·h, its
    unscaled largest bias ratio and gate, ‖∇E‖₁,ε at matched loss (module docstring), at the
    start and the end, and per quarter j the distances the f₀ gate reads: ``dist_kappa_j``
    between the κ = +1 and κ = −1 iterates of its (stage, pair, seed) and ``dist_f0_j`` between
    the κ = −1 iterates of the two sign-flip pairs of its (stage, seed)."""
    down, up = _sign_pairs(pairs)
    start = {(p.stage, p.seed): p for p in points}
    rows = []
    for (s, seed), p in start.items():
        h, n = plan[s]
        own = {(b, r, k): runs[s, b, r, k, seed] for b, r in pairs for k in kappas}
        matched = max(float(hist["train_loss"][-1]) for hist, _ in own.values())
        dist_f0 = {j: float(torch.linalg.vector_norm(own[(*down, -1.0)][1][j]
                                                     - own[(*up, -1.0)][1][j]))
                   for j in QUARTERS}
        for (b, r, k), (hist, theta) in own.items():
            diag = hist.diagnostics()
            gate = st.validity_gate(diag["epoch"], diag["bias_ratio"])
            norm, loss = hist["grad_norm_1_eps"], hist["train_loss"]
            read = norm_at_loss(loss, norm, matched)
            dist_kappa = {j: float(torch.linalg.vector_norm(own[b, r, 1.0][1][j]
                                                            - own[b, r, -1.0][1][j]))
                          for j in QUARTERS}
            rows.append({
                "experiment": "kappa", "model": model, "optimizer": "adam", "seed": seed,
                "h": h, "beta": b, "rho": r, "eps": eps, "kappa": k, "epochs": n,
                "max_bias_ratio": gate.max_ratio,
                "gated": gate.within and gate.n_measured >= MIN_GATE_POINTS,
                "norm_read": read, "test_acc_max": float(np.nanmax(hist["test_acc"])),
                "stage": s, "start_loss": p.train_loss, "window_t": n * h,
                "start_epoch": p.epoch, "start_test_acc": p.test_acc,
                "gate_points": gate.n_measured, "loss_matched": matched, PRIMARY: read,
                "norm_start": float(norm[0]), "norm_end": float(norm[-1]),
                "train_loss_end": float(loss[-1]),
                "one_norm_share_min": float(np.min(diag["g2_above"])),
                **{f"dist_kappa_{j}": v for j, v in dist_kappa.items()},
                **{f"dist_f0_{j}": v for j, v in dist_f0.items()},
                "diverged": hist.stop_reason == StopReason.DIVERGED})
    return rows


# --- the gates' definitions, as they were and as they are -------------------------------------

class GateDefinition(NamedTuple):
    """One version of the gates: the bias ratio scaled by |1 + κ| or not, against ``limit``;
    the f₀ gate read on the norm at the matched-loss reading (``"reading"``) or at the end of
    the runs (``"end"``), and in parameter space at the end (``parameters``); a run outside
    the bias gate drops its seed from its pair (``drop_seeds``, with at least two seeds left
    per pair) or puts the stage outside the theory's range."""

    name: str
    date: str
    limit: float
    scaled: bool
    f0_norm: str
    parameters: bool
    drop_seeds: bool


GATES = {
    "original": GateDefinition("as first declared", "2026-12-04 20:40", VALIDITY_LIMIT, True,
                               "reading", False, True),
    "published": GateDefinition("as published", "2026-12-04 21:16", VALIDITY_LIMIT, True,
                                "end", False, True),
    "current": GateDefinition("current", "2026-12-07", st.NETWORK_LIMIT, False, "reading", True,
                              False),
}


def _bias_gated(row: Mapping, gates: GateDefinition) -> bool:
    ratio = row["max_bias_ratio"] * (abs(1 + row["kappa"]) if gates.scaled else 1.0)
    return bool(math.isfinite(ratio) and ratio <= gates.limit
                and row.get("gate_points", MIN_GATE_POINTS) >= MIN_GATE_POINTS)


# --- the test ---------------------------------------------------------------------------------

class StageTest(NamedTuple):
    """The test of :func:`stage_test`. Per (stage, β, ρ): ``result`` (diff, trend, prediction,
    n, monotone, means per κ); per stage: the f₀ gate per seed on the norm (``f0_norm``) and in
    parameter space (``f0_parameters``, NaN where not read), along the window per quarter
    (``f0_along``, the largest over seeds), the largest bias ratio, the runs inside the bias
    gate, whether the stage is gated, its verdict; per (stage, κ) the decomposition; the
    primary stage and the row's verdict. ``growth`` per stage: |D(κ=+1)| − |D(κ=−1)| of the
    decomposition D, paired over seeds, and its verdict against the prediction (+1)."""

    stages: list
    result: dict
    f0_norm: dict
    f0_parameters: dict
    f0_along: dict
    max_ratio: dict
    bias_gated: dict
    gated: dict
    verdicts: dict
    decomposition: dict
    growth: dict
    sign_pairs: tuple
    primary_stage: int
    verdict: ExperimentVerdict
    gates: GateDefinition


def _ratio(a, b, effect_a, effect_b):
    """|a − b| over the smaller |effect|, per seed (infinite for a zero effect)."""
    return np.array([st.f0_disagreement(*v) for v in zip(a, b, effect_a, effect_b)])


def stage_test(table: list[dict], *, pairs, kappas, seeds, n_resamples: int = 9999,
               gates: GateDefinition = GATES["current"], predict=st.kappa_prediction
               ) -> StageTest:
    """The sign-flip test per stage from runs.csv (module docstring), under the gate definition
    ``gates``; ``predict(beta=, rho=)`` gives the predicted sign (a test passes a wrong one)."""
    rows = [dict(r, bias_ok=_bias_gated(r, gates)) for r in table if r["experiment"] == "kappa"]
    stages = sorted({r["stage"] for r in rows})
    down, up = _sign_pairs(pairs)
    kappas = sorted(kappas)
    lo, hi = kappas[0], kappas[-1]

    def col(key, s, pair, k):
        return st.per_seed(rows, key, seeds, stage=s, beta=pair[0], rho=pair[1], kappa=k)

    def f0_parameters(s, j):  # per seed, at quarter j: distance over the smaller κ effect
        effect = np.minimum(col(f"dist_kappa_{j}", s, down, lo), col(f"dist_kappa_{j}", s, up, lo))
        return col(f"dist_f0_{j}", s, down, lo) / effect

    result, f0_norm, f0_par, along, max_ratio, bias, gated, verdicts, decomp, growth = (
        {}, {}, {}, {}, {}, {}, {}, {}, {}, {})
    for s in stages:
        mine = [r for r in rows if r["stage"] == s and r["seed"] in seeds]
        bias[s] = sum(r["bias_ok"] for r in mine), len(mine)
        max_ratio[s] = max(r["max_bias_ratio"] * (abs(1 + r["kappa"]) if gates.scaled else 1)
                           for r in mine)
        counted = {}
        for b, r in pairs:
            ok = np.all([col("bias_ok", s, (b, r), k) > 0 for k in kappas], axis=0)
            counted[b, r] = ok if gates.drop_seeds else np.ones_like(ok)
            values = np.stack([col(PRIMARY, s, (b, r), k) for k in kappas], axis=1)[counted[b, r]]
            pred = predict(beta=b, rho=r)
            diff = st.paired_difference(values[:, -1], values[:, 0], n_resamples=n_resamples)
            result[s, b, r] = dict(
                diff=diff, trend=st.trend_of(diff, expected=pred), prediction=pred,
                n=diff.n, monotone=st.monotone_seeds(values, direction=pred) if len(values) else 0,
                means=[st.mean_interval(v, n_resamples=n_resamples) for v in values.T])
        at = PRIMARY if gates.f0_norm == "reading" else "norm_end"
        a, b_ = col(at, s, down, lo), col(at, s, up, lo)
        f0_norm[s] = _ratio(a, b_, col(at, s, down, hi) - a, col(at, s, up, hi) - b_)
        kept = "dist_f0_4" in mine[0]
        along[s] = [float(np.max(f0_parameters(s, j))) if kept else math.nan for j in QUARTERS]
        f0_par[s] = f0_parameters(s, QUARTERS[-1]) if kept else np.full(len(seeds), math.nan)
        f0_ok = bool(np.all(f0_norm[s] <= st.F0_AGREEMENT_LIMIT))
        if gates.parameters:
            f0_ok = f0_ok and bool(np.all(f0_par[s] <= st.F0_AGREEMENT_LIMIT))
        if gates.drop_seeds:
            gated[s] = f0_ok and all(counted[p].sum() >= 2 for p in (down, up))
        else:
            gated[s] = f0_ok and bias[s][0] == bias[s][1]
        trend = st.combined_trend(result[s, b, r]["trend"] for b, r in (down, up))
        verdicts[s] = experiment_verdict(trend, gated=gated[s])
        for k in kappas:
            decomp[s, k] = st.paired_difference(col(PRIMARY, s, down, k), col(PRIMARY, s, up, k),
                                                n_resamples=n_resamples)
        size = {k: np.abs(col(PRIMARY, s, down, k) - col(PRIMARY, s, up, k)) for k in (lo, hi)}
        spread = st.paired_difference(size[hi], size[lo], n_resamples=n_resamples)
        growth[s] = spread, experiment_verdict(st.trend_of(spread, expected=1), gated=gated[s])
    primary = stages[-1]
    return StageTest(stages, result, f0_norm, f0_par, along, max_ratio, bias, gated, verdicts,
                     decomp, growth, (down, up), primary, verdicts[primary], gates)


EXPERIMENT_ORDER = (ExperimentVerdict.NOT_RUN, ExperimentVerdict.OUTSIDE_RANGE,
                    ExperimentVerdict.NOT_SUPPORTED, ExperimentVerdict.INCONCLUSIVE,
                    ExperimentVerdict.SUPPORTED)  # weakest first


def weakest_experiment_verdict(verdicts) -> ExperimentVerdict:
    """The weakest (:data:`EXPERIMENT_ORDER`) of several stages' verdicts; *not run here* for
    none."""
    found = [ExperimentVerdict(v) for v in verdicts]
    return min(found, key=EXPERIMENT_ORDER.index, default=ExperimentVerdict.NOT_RUN)


def f0_worst(test: StageTest, stage: int) -> float:
    """The largest f₀ disagreement of a stage over seeds, of the readings its gates use."""
    values = [np.max(test.f0_norm[stage])]
    if test.gates.parameters:
        values.append(np.max(test.f0_parameters[stage]))
    return float(max(values))


def stage_sentence(test: StageTest, names: Mapping[int, str]) -> str:
    """What the test found per stage, in words generated from its numbers (``names``: stage ->
    its name, e.g. "loss below 0.5")."""
    parts = []
    for s in test.stages:
        moves = []
        for pair in test.sign_pairs:
            res = test.result[s, pair[0], pair[1]]
            d = res["diff"]
            way = "down" if d.mean < 0 else "up"
            moves.append(f"{way} {abs(d.mean):.2g} at ({pair[0]:g}, {pair[1]:g}) "
                         f"({res['monotone']} of {res['n']} seeds monotone)")
        parts.append(f"{names[s]}: from κ = −1 to +1 the norm moves {' and '.join(moves)}; "
                     f"verdict **{test.verdicts[s]}**")
    return "; ".join(parts) + "."


# --- the first experiment (2026-12-04), from its stored table ---------------------------------

def first_experiment_test(table: list[dict], *, pairs, kappas, seeds, last_epoch: int,
                          gates: GateDefinition, n_resamples: int = 9999) -> StageTest:
    """The test of the chapter's first κ experiment (2026-12-04: runs from the initial point,
    read at matched loss as it defined it; a stored table of :mod:`bea_lib.evidence.records`)
    under ``gates``, as one stage: its table holds the unscaled largest bias ratio as
    ``max_bias_ratio_unscaled`` and the norm at ``last_epoch``, its runs' end. It kept no
    iterates, so its f₀ gate is read on the norm alone."""
    rows = [dict(r, stage=0, max_bias_ratio=r["max_bias_ratio_unscaled"],
                 gate_points=MIN_GATE_POINTS, norm_end=r[f"norm_epoch_{last_epoch}"])
            for r in table if r["experiment"] == "kappa"]
    return stage_test(rows, pairs=pairs, kappas=kappas, seeds=seeds, n_resamples=n_resamples,
                      gates=gates._replace(parameters=False))
