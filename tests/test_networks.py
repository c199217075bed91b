"""The networks chapter's evidence (bea_lib.evidence.networks): start ratios, the runs.csv rows,
the per-seed slope test of each figure (with the mutant of a flipped prediction) and the
optimizer comparison, on hand-made runs and tables."""
import dataclasses
import math

import numpy as np
import pytest

import bea_lib as bl
from bea_lib.core.autodiff import gradient_and_hvp_fn
from bea_lib.evidence import networks as nw
from bea_lib.evidence.statistics import RUN_COLUMNS, Gate, write_runs_csv
from bea_lib.nets.config import TrainConfig, build_model
from bea_lib.nets.data import load_dataset
from bea_lib.nets.diagnostics import bias_ratio, flat_loss
from bea_lib.nets.executor import run_key
from bea_lib.nets.history import COLUMNS, History

BASE = TrainConfig(dataset="digits", model="mlp", width=4, n_train=32, n_test=8, epochs=4,
                   device="cpu")
SWEEPS = {"fig4": ([(0.9, 0.99), (0.9, 0.999)], 1, "ρ"), "fig5": ([(0.8, 0.99), (0.9, 0.99)], 0,
                                                                   "β")}


def _configs(seeds=(0, 1, 2)):
    cells = {c for cells, _, _ in SWEEPS.values() for c in cells}
    return [dataclasses.replace(BASE, beta=b, rho=r, seed=s) for b, r in sorted(cells)
            for s in seeds]


def test_start_ratios_are_the_bias_ratio_at_each_seeds_initial_weights():
    data = load_dataset("digits", n_train=32, n_test=8)
    configs = _configs(seeds=(0, 3))
    cells = [(0.9, 0.99), (0.99, 0.9)]
    ratios = nw.start_ratios(configs, data, cells)
    assert set(ratios) == {("mlp", b, r, s) for b, r in cells for s in (0, 3)}
    net = build_model(configs[-1], data.input_shape, data.n_classes)  # seed 3
    x = data.x_train.to(next(net.parameters()).dtype)  # the run's dtype (float64 by default)
    g, hvp = gradient_and_hvp_fn(*flat_loss(net, x, data.y_train))
    want = bias_ratio(g, hvp, h=BASE.h, beta=0.99, rho=0.9, eps=BASE.eps)
    assert ratios["mlp", 0.99, 0.9, 3] == pytest.approx(want, rel=1e-12)  # the same float64 sums
    assert ratios["mlp", 0.99, 0.9, 3] != ratios["mlp", 0.99, 0.9, 0]  # the seed sets θ⁽⁰⁾


def test_figure_rows_hold_every_figures_cells_and_the_norm_each_reads(tmp_path):
    configs = _configs()
    keys = [run_key(c) for c in configs]
    gates = {k: Gate(1.0 + i, 0, 1, False) for i, k in enumerate(keys)}
    readings = {k: {"regime": "stable", "norm_at": 2.0, "epoch_thr": 3, "norm_thr": 5.0,
                    "acc_thr": 0.5, "acc_max": 0.6, "train_loss_end": 0.1, "train_acc_end": 0.9,
                    "hill": 0.0, "hill_shape": False} for k in keys}
    rows = nw.figure_rows(SWEEPS, configs, gates, dict.fromkeys(keys, False), readings)
    assert [r["experiment"] for r in rows] == ["fig4"] * 6 + ["fig5"] * 6
    assert [(r["beta"], r["rho"], r["seed"]) for r in rows[:3]] == [(0.9, 0.99, 0), (0.9, 0.99, 1),
                                                                     (0.9, 0.99, 2)]
    assert {r["norm_read"] for r in rows[:6]} == {2.0}  # fig4 reads the norm at a fixed epoch
    assert {r["norm_read"] for r in rows[6:]} == {5.0}  # fig5 at the reading loss
    assert rows[0]["max_bias_ratio"] == gates["mlp", 0.9, 0.99, 0].max_ratio
    assert list(rows[0])[:len(RUN_COLUMNS)] == list(RUN_COLUMNS)
    write_runs_csv(rows, tmp_path / "runs.csv")  # a valid runs table


def _table(slope, *, gated=True, seeds=range(6)):
    """fig4 rows whose norm_at has the given slope against log10(1 − ρ), per seed an offset."""
    rng = np.random.default_rng(0)
    return [{"experiment": "fig4", "model": "mlp", "beta": b, "rho": r, "seed": s, "gated": gated,
             "norm_at": s + slope * math.log10(1 - r) + 1e-3 * rng.normal()}
            for b, r in SWEEPS["fig4"][0] for s in seeds]


READ = ("networks/fig4-paired", "Figure 4", "fig4", "norm_at", "the norm", -1, True)


def test_a_figure_test_reads_the_per_seed_slope_and_a_flipped_prediction_is_contradicted():
    seeds = {"mlp": list(range(6))}
    [r] = nw.figure_tests(_table(-2.0), SWEEPS, seeds, [READ], n_resamples=999).values()
    assert r["q"].mean == pytest.approx(-2.0, abs=0.01) and r["q"].high < 0
    assert r["trend"] == "appears" and r["verdict"] == bl.Verdict.REPRODUCED
    assert r["paper"] == "Figure 4" and r["primary"] and r["slopes"].shape == (6,)
    mutant = (*READ[:5], +1, True)  # the prediction flipped: the same data contradict it
    [m] = nw.figure_tests(_table(-2.0), SWEEPS, seeds, [mutant], n_resamples=999).values()
    assert m["verdict"] == bl.Verdict.CONTRADICTED
    [o] = nw.figure_tests(_table(-2.0, gated=False), SWEEPS, seeds, [READ],
                          n_resamples=999).values()
    assert o["verdict"] == bl.Verdict.OUTSIDE_RANGE  # whatever the interval shows
    [z] = nw.figure_tests(_table(0.0), SWEEPS, seeds, [READ], n_resamples=999).values()
    assert z["trend"] == "not seen" and z["verdict"] == bl.Verdict.INCONCLUSIVE


def _history(sharpness, gap, ratio):
    n = 3
    cols = {c: [math.nan] * n for c in COLUMNS}
    cols.update(epoch=[0.0, 1.0, 2.0], train_loss=[2.0, 1.5, 1.0], train_acc=[0.5, 0.6, 0.5 + gap],
                test_acc=[0.4, math.nan, 0.5], grad_norm_1_eps=[3.0, 2.0, 1.0],
                sharpness=[1.0, math.nan, sharpness], bias_ratio=[ratio, math.nan, ratio])
    return History(cols, "epochs", "")


def test_optimizer_rows_and_the_paired_comparison(tmp_path):
    rng = np.random.default_rng(1)
    other = rng.normal(5.0, 1.0, 8)
    # bias ratios 0.01 and 0.02: inside the network gate (NETWORK_LIMIT = 0.05)
    arms = {"adam": {s: _history(x + 2.0 + 0.1 * rng.normal(), 0.2, 0.01)
                     for s, x in enumerate(other)},
            "gd": {s: _history(x, 0.1, 0.02) for s, x in enumerate(other)}}
    rows = nw.optimizer_rows(arms, model="mlp", hyper={"adam": (1e-2, 0.9, 0.999, 1e-8),
                                                       "gd": (1.0, 0.0, math.nan, math.nan)})
    assert rows[0]["sharpness"] == pytest.approx(other[0] + 2.0, abs=0.5)  # the last finite one
    assert rows[0]["gap"] == pytest.approx(0.2) and rows[0]["epochs"] == 2 and rows[0]["gated"]
    assert rows[-1]["optimizer"] == "gd" and rows[-1]["beta"] == 0.0
    write_runs_csv(rows, tmp_path / "runs.csv")
    seeds = list(range(8))
    got = nw.optimizer_comparison(rows, seeds, beta=0.9, rho=0.999, n_resamples=999)
    assert list(got) == [("gd", "sharpness"), ("gd", "gap")]
    interval, verdict = got["gd", "sharpness"]
    assert interval.low > 0 and verdict == bl.Verdict.REPRODUCED  # ρ > β: Adam sharper
    swapped = nw.optimizer_comparison(rows, seeds, beta=0.999, rho=0.9, n_resamples=999)
    assert swapped["gd", "sharpness"][1] == bl.Verdict.CONTRADICTED  # the mutant
    outside = [dict(r, gated=r["optimizer"] == "adam") for r in rows]
    assert nw.optimizer_comparison(outside, seeds, beta=0.9, rho=0.999, n_resamples=999)[
        "gd", "sharpness"][1] == bl.Verdict.OUTSIDE_RANGE
