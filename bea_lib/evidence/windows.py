r"""The theory's answer on Figures 4 and 5, inside its range: windows of Adam restarted with
fresh moments from trained points, at a step size where the validity gate passes.

The expansion (2.2)–(2.3) holds from any starting point, so per seed plain Adam trains to a
training loss (:func:`bea_lib.nets.stages.train_to_stages`) and, from there, Adam and its
κ-variant run a window of n steps in every cell of two sweeps (:func:`run_in_range`): ρ at
fixed β (Figure 4) and β at fixed ρ (Figure 5). After a restart the bias term builds up:
Theorem 3.1's flow with one loss has at step n the coefficient C_γ(n) in place of the
full-batch (1+γ)/(1−γ), and the window's mean of C_β(n) − C_ρ(n) (:func:`window_coefficient`)
decides the sign of the prediction (:func:`predicted_sign`): where it is lower, the bias term
hinders the decrease of ‖∇E‖₁,ε more. The per-seed slopes of the norm against log10(1 − γ)
are tested against that sign (:func:`in_range_tests`), from the chapter's ``runs.csv``
(:func:`in_range_rows`, experiments ``fig4-in-range`` and ``fig5-in-range``).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import torch

from ..base.vocab import paper_verdict
from ..nets.stages import ratio_per_step, restart, train_to_stages
from . import statistics as st
from .claims import claim
from .networks import slope_test
from .readings import first_below, run_gate

IN_RANGE = {"fig4-in-range": ("rho_sweep", 1), "fig5-in-range": ("beta_sweep", 0)}


def _startup_coefficient(gamma: float, n: int) -> float:
    """C_γ(n) = 2 w_γ(n) + 1, w_γ(n) = γ/(1−γ) − (n+1)γ^(n+1)/(1−γ^(n+1)): the coefficient that
    Theorem 3.1's flow (3.2) with one loss has at step n after a restart with fresh moments, in
    place of the full-batch (1+γ)/(1−γ) of (2.3); 1 at n = 0 and for γ = 0."""
    if gamma == 0.0:
        return 1.0
    return 2 * (gamma / (1 - gamma) - (n + 1) * gamma ** (n + 1) / (1 - gamma ** (n + 1))) + 1


def full_coefficient(*, beta: float, rho: float) -> float:
    """(1+β)/(1−β) − (1+ρ)/(1−ρ): the coefficient of (2.5), the window's limit past the
    start-up."""
    return (1 + beta) / (1 - beta) - (1 + rho) / (1 - rho)


def window_coefficient(*, beta: float, rho: float, n_steps: int, kappa: float = 0.0) -> float:
    """The bias coefficient that decides the in-range prediction: the mean over the window's
    steps n < ``n_steps`` of C_β(n) − C_ρ(n) (:func:`_startup_coefficient`), plus κ times the
    full-batch (1+β)/(1−β) − (1+ρ)/(1−ρ) that the κ-variant adds at every step. Negative: the
    bias term hinders the decrease of ‖∇E‖₁,ε (ε small), more so the more negative."""
    window = np.mean([_startup_coefficient(beta, n) - _startup_coefficient(rho, n)
                      for n in range(n_steps)])
    return float(window + kappa * full_coefficient(beta=beta, rho=rho))


def predicted_sign(cells, index: int, *, n_steps: int, kappa: float = 0.0) -> int:
    """The sign of the per-seed slope of ‖∇E‖₁,ε against log10(1 − γ) over ``cells`` (γ the
    ``index``-th entry) that the theory predicts inside its range: a larger
    :func:`window_coefficient` penalises the norm more, so the norm moves against it; 0 when
    the coefficient does not change over the cells."""
    x = np.log10(1 - np.array([c[index] for c in cells], dtype=float))
    coef = [window_coefficient(beta=b, rho=r, n_steps=n_steps, kappa=kappa) for b, r in cells]
    slope = np.polyfit(x, coef, 1)[0]
    return 0 if slope == 0 else -int(np.sign(slope))


def in_range_cells(rho_sweep, beta_sweep) -> dict[str, list[tuple[float, float]]]:
    """The cells of the two in-range sweeps: ``rho_sweep`` = [β, [ρ, ...]] (Figure 4's ρ at
    fixed β) and ``beta_sweep`` = [ρ, [β, ...]] (Figure 5's β at fixed ρ)."""
    (b4, rhos), (r5, betas) = rho_sweep, beta_sweep
    return {"fig4-in-range": [(float(b4), float(r)) for r in rhos],
            "fig5-in-range": [(float(b), float(r5)) for b in betas]}


def run_in_range(base, *, seeds, stage_loss: float, cells: Mapping[str, list], window_steps: int,
                 window_ratio: float, kappas, gate_every: int, stage_base=None, data=None,
                 max_stage_epochs: int = 5000, swap: bool = False) -> dict:
    """The windows of the in-range test: per seed, plain Adam (``stage_base``, default ``base``)
    to training loss ``stage_loss`` (:func:`bea_lib.nets.stages.train_to_stages`); from there, for
    every cell of ``cells`` and κ of ``kappas``, ``window_steps`` steps of the κ-variant restarted
    with fresh moments (:func:`bea_lib.nets.stages.restart`) at the seed's h: ``window_ratio``
    divided by the largest bias ratio per unit h at the start over the cells (the ratio is
    linear in h), the gate measured every ``gate_every`` steps and at the end. ``swap`` runs
    every cell with β and ρ exchanged under its own labels (the mutant of the tests).

    Returns {"points": {seed: StartPoint}, "h": {seed: h}, "eps": ε,
    "runs": {(seed, β, ρ, κ): History}}.
    """
    seeds = list(seeds)
    points = {p.seed: p for p in train_to_stages(stage_base or base, seeds=seeds,
                                                 stage_losses=[stage_loss], data=data,
                                                 max_epochs=max_stage_epochs) if p.stage == 1}
    unique = list(dict.fromkeys(c for cs in cells.values() for c in cs))
    run_cells = [(r, b) if swap else (b, r) for b, r in unique]
    theta = torch.stack([points[s].theta for s in seeds])
    per_h = ratio_per_step(base, theta, run_cells, data=data)  # (seeds, cells)
    h = {s: float(window_ratio / np.max(per_h[i])) for i, s in enumerate(seeds)}
    keys = [(s, b, r, float(k)) for s in seeds for b, r in unique for k in kappas]
    configs = [dataclasses.replace(base, h=h[s], beta=(r if swap else b), rho=(b if swap else r),
                                   kappa=k, seed=s, epochs=window_steps,
                                   diagnostics_every=gate_every, sharpness=False,
                                   test_every=window_steps, loss_threshold=None)
               for s, b, r, k in keys]
    rows = torch.stack([points[s].theta for s, *_ in keys])
    runs = restart(configs, rows, data=data).histories
    return {"points": points, "h": h, "eps": base.eps,
            "runs": dict(zip(keys, runs, strict=True))}


def _reading_at_loss(loss: np.ndarray, norm: np.ndarray, target: float) -> float:
    """‖∇E‖₁,ε where the loss first reaches ``target``, interpolated linearly in the step
    between the two rows around it; NaN if it never does."""
    n = first_below(loss, target)
    if n is None:
        at = np.flatnonzero(loss == target)
        return float(norm[at[0]]) if at.size else math.nan
    if n == 0:
        return float(norm[0])
    w = (loss[n - 1] - target) / (loss[n - 1] - loss[n])
    return float(norm[n - 1] + w * (norm[n] - norm[n - 1]))


def in_range_rows(result: Mapping, cells: Mapping[str, list], *, model: str,
                  window_steps: int) -> list[dict]:
    """runs.csv rows of the in-range windows (``result`` of :func:`run_in_range`): per sweep
    (``fig4-in-range``, ``fig5-in-range``), seed, cell and κ, the run's gate, the coefficients
    that decide the prediction, and ‖∇E‖₁,ε at the window's end, at matched loss (the largest
    final loss of the seed's runs of the sweep at that κ, which every one of them reaches) and
    ``norm_read``, its mean over the window's last tenth: the reading tested. The norm can
    oscillate from step to step where the loss does not, and a single step reads the
    oscillation's phase."""
    runs, out = result["runs"], []
    for experiment, sweep_cells in cells.items():
        for s in dict.fromkeys(k[0] for k in runs):
            for kappa in dict.fromkeys(k[3] for k in runs):
                hists = {c: runs[s, *c, kappa] for c in sweep_cells}
                target = max(float(hh["train_loss"][-1]) for hh in hists.values())
                for (b, r), hh in hists.items():
                    gate = run_gate(hh)
                    loss, norm = hh["train_loss"], hh["grad_norm_1_eps"]
                    matched = _reading_at_loss(loss, norm, target)
                    tail = norm[-max(2, len(norm) // 10):]  # the window's last tenth
                    out.append({
                        "experiment": experiment, "model": model, "optimizer": "adam",
                        "seed": s, "h": result["h"][s], "beta": b, "rho": r,
                        "eps": result["eps"], "kappa": kappa, "epochs": window_steps,
                        "max_bias_ratio": gate.max_ratio,
                        "gated": gate.within and gate.n_measured >= 2,
                        "norm_read": float(np.mean(tail)),
                        "test_acc_max": float(np.nanmax(hh["test_acc"])),
                        "norm_start": float(norm[0]), "norm_end": float(norm[-1]),
                        "norm_matched": matched, "norm_tail": float(np.mean(tail)),
                        "loss_end": float(loss[-1]),
                        "stage_epoch": result["points"][s].epoch,
                        "coef_full": full_coefficient(beta=b, rho=r),
                        "coef_window": window_coefficient(beta=b, rho=r, n_steps=window_steps,
                                                          kappa=kappa)})
    return out


def in_range_tests(table: list[dict], cells: Mapping[str, list], seeds, *, window_steps: int,
                   n_resamples: int, swap_prediction: bool = False) -> dict[tuple, dict]:
    """Per sweep and κ, :func:`slope_test` of ``norm_read`` against the sign that
    :func:`predicted_sign` gives (β and ρ exchanged in the prediction with
    ``swap_prediction``: the mutant), keyed (sweep, κ); and per sweep, the κ = 0 slope minus
    the κ = −1 slope of each seed (the part of the trend the bias term makes), keyed
    (sweep, "bias part"), when both arms ran."""
    out = {}
    for experiment, sweep_cells in cells.items():
        index = IN_RANGE[experiment][1]
        rows = [r for r in table if r["experiment"] == experiment]
        for kappa in dict.fromkeys(r["kappa"] for r in rows):
            if swap_prediction:  # the swept value becomes the other parameter
                sign = predicted_sign([(r, b) for b, r in sweep_cells], 1 - index,
                                      n_steps=window_steps, kappa=kappa)
            else:
                sign = predicted_sign(sweep_cells, index, n_steps=window_steps, kappa=kappa)
            test = slope_test([r for r in rows if r["kappa"] == kappa], sweep_cells, index,
                              seeds, "norm_read", sign=sign or 1, n_resamples=n_resamples)
            out[experiment, kappa] = {**test, "sign": sign}
        if (experiment, 0.0) in out and (experiment, -1.0) in out:
            a, b = out[experiment, 0.0], out[experiment, -1.0]
            q = st.paired_difference(a["slopes"], b["slopes"], n_resamples=n_resamples)
            trend = st.trend_of(q, expected=a["sign"] or 1)
            out[experiment, "bias part"] = {"q": q, "trend": trend, "sign": a["sign"],
                                            "gated": a["gated"] and b["gated"],
                                            "verdict": paper_verdict(trend, gated=a["gated"]
                                                                     and b["gated"])}
    return out




_WHAT = {"fig4-in-range": ("Figure 4", "ρ", "over the window's last tenth"),
         "fig5-in-range": ("Figure 5", "β", "over the window's last tenth")}


def _sweep_name(experiment: str, cells) -> str:
    paper, swept, _ = _WHAT[experiment]
    fixed = cells[0][1 - IN_RANGE[experiment][1]]
    return f"{paper}: {swept} at {'ρβ'[IN_RANGE[experiment][1]]} = {fixed:g}"


def coefficient_table(table: list[dict], cells: Mapping[str, list], kappas) -> list[list]:
    """Rows of the coefficient table: per sweep and cell, the full-batch coefficient
    (1+β)/(1−β) − (1+ρ)/(1−ρ), the window's coefficient at each κ, the largest bias ratio
    measured along the cell's windows and the seeds whose windows all passed the gate."""
    out = []
    for experiment, sweep_cells in cells.items():
        rows = [r for r in table if r["experiment"] == experiment]
        for b, r in sweep_cells:
            mine = [x for x in rows if (x["beta"], x["rho"]) == (b, r)]
            by_seed = {}
            for x in mine:
                by_seed[x["seed"]] = by_seed.get(x["seed"], True) and bool(x["gated"])
            coef = {k: next(x["coef_window"] for x in mine if x["kappa"] == k) for k in kappas}
            out.append([_sweep_name(experiment, sweep_cells), f"({b:g}, {r:g})",
                        f"{mine[0]['coef_full']:.3g}",
                        *(f"{coef[k]:.3g}" for k in kappas),
                        f"{max(x['max_bias_ratio'] for x in mine):.3g}",
                        f"{sum(by_seed.values())}/{len(by_seed)}"])
    return out


def in_range_table(tests: Mapping) -> list[list]:
    """Rows of the in-range test table (:func:`in_range_tests`)."""
    out = []
    for (experiment, kappa), t in tests.items():
        q = t["q"]
        arm = "κ = 0 − κ = −1 (bias part)" if kappa == "bias part" else f"{kappa:+g}"
        out.append([_WHAT[experiment][0], arm,
                    {1: "+", -1: "−", 0: "0"}[t["sign"]], st.interval_text(q), f"{q.mde:.2g}",
                    f"{q.n_positive}/{q.n}", str(t["trend"]), str(t["verdict"])])
    return out


def record_in_range_claims(tests: Mapping, result: Mapping, table: list[dict], *,
                           section: str) -> None:
    """Record the theory's answers: the primary tests ``networks/fig4-in-range`` and
    ``networks/fig5-in-range`` (κ = 0), and the κ = −1 arm's bias part as a supporting check."""
    hs = list(result["h"].values())
    for experiment, (paper, swept, read) in _WHAT.items():
        if (experiment, 0.0) not in tests:
            continue
        t = tests[experiment, 0.0]
        rows = [r for r in table if r["experiment"] == experiment]
        coefs = [r["coef_window"] for r in rows if r["kappa"] == 0.0]
        ratio = max(r["max_bias_ratio"] for r in rows)
        way = {1: "falls", -1: "rises", 0: "stays"}[-t["sign"]]
        claim(f"networks/{experiment}", paper=paper, section=section, needs="default",
              statement=f"inside the theory's range, from a trained point, ‖∇E‖₁,ε {read} "
                        f"{way} with {swept} as the window's bias coefficient predicts",
              passed=None, verdict=t["verdict"], detectable=f"{t['q'].mde:.2g}",
              measured=f"mean slope {st.interval_text(t['q'])} against "
                       f"log10(1 − {swept}) over {t['q'].n} seeds, predicted "
                       f"{'negative' if t['sign'] < 0 else 'positive'} (window coefficient "
                       f"{min(coefs):.3g} to {max(coefs):.3g}); bias ratio at most "
                       f"{ratio:.3g} along the windows, every run inside the gate: "
                       f"{'yes' if t['gated'] else 'no'}; h {min(hs):.2g} to {max(hs):.2g}")
        part = tests.get((experiment, "bias part"))
        if part is not None:
            minus = tests[experiment, -1.0]
            claim(f"networks/{experiment}-kappa", paper=paper, section=section, needs="default",
                  statement=f"cancelling the full-batch bias term (κ = −1) removes the part of "
                            f"the {swept} trend that the theory attributes to it",
                  passed=None, verdict=part["verdict"], detectable=f"{part['q'].mde:.2g}",
                  measured=f"slope at κ = 0 minus slope at κ = −1, "
                           f"{st.interval_text(part['q'])} per seed; the κ = −1 slope alone "
                           f"{st.interval_text(minus['q'])}, predicted "
                           f"{'negative' if minus['sign'] < 0 else 'positive'} from the "
                           "start-up's residue")
