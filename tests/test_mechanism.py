"""The mechanism chapter's evidence (bea_lib.evidence.mechanism): the runs.csv rows of the κ runs
(matched loss, fixed epochs, gates) and the sign-flip test on hand-made tables: reproduced where
the norm moves as (2.5) predicts, contradicted where it moves the other way, not tested or
outside the theory's range where a gate fails."""
import math

import numpy as np
import pytest

import bea_lib as bl
from bea_lib.evidence import mechanism as mech
from bea_lib.nets.history import COLUMNS, History

PAIRS = [(0.95, 0.8), (0.8, 0.95), (0.9, 0.9)]  # β > ρ: decrease predicted; ρ > β: increase
KAPPAS = [-1.0, 0.0, 1.0]
SEEDS = list(range(6))


def _history(loss, norm, ratio):
    n = len(loss)
    cols = {c: [math.nan] * n for c in COLUMNS}
    cols.update(epoch=[float(i) for i in range(n)], train_loss=list(loss),
                grad_norm_1_eps=list(norm),
                test_acc=[0.5] * n, bias_ratio=[ratio] + [math.nan] * (n - 1),
                g2_above=[0.7] + [math.nan] * (n - 1))
    return History(cols, "epochs", "")


def test_rows_read_the_norm_at_matched_loss_and_at_fixed_epochs():
    runs = {(0.95, 0.8, k, 0): _history(loss, [9, 8, 7, 6, 5], 0.2)
            for k, loss in zip(KAPPAS,
                               ([4, 3, 2, 1, 0.9], [4, 3, 2, 1.5, 1.2], [4, 3.5, 3, 2, 1.0]))}
    rows = mech.kappa_rows(runs, pairs=[(0.95, 0.8)], seeds=[0], kappas=KAPPAS, read_epochs=[2, 9],
                           model="mlp", h=1e-3, eps=1e-8, epochs=4)
    # the slowest run's best loss is 1.2: matched at the first loss below 1.2012
    assert [r["epoch_matched"] for r in rows] == [3, 4, 4]
    assert [r["norm_matched"] for r in rows] == [6, 5, 5] and rows[0]["norm_read"] == 6
    assert [r["norm_epoch_2"] for r in rows] == [7] * 3 and all(np.isnan(r["norm_epoch_9"])
                                                                for r in rows)
    # the gate of each run is its ratio scaled by |1 + κ|
    assert [r["max_bias_ratio"] for r in rows] == [0.0, 0.2, 0.4]
    assert rows[1]["loss_threshold"] == pytest.approx(1.2012) and not rows[0]["diverged"]


def _table(effect=1.0, *, f0_offset=0.0, gated=True):
    """Rows whose norm changes by ``effect`` × (predicted sign) × κ, per seed an offset; the κ = −1
    runs of the two sign-flip pairs differ by ``f0_offset``."""
    rng = np.random.default_rng(0)
    rows = []
    for beta, rho in PAIRS:
        sign = -1 if beta >= rho else 1
        for s in SEEDS:
            for k in KAPPAS:
                norm = 10 + s + sign * effect * (k + 1) + 0.01 * rng.normal()
                norm += f0_offset * (beta > rho) * (k == -1)
                rows.append({"beta": beta, "rho": rho, "kappa": k, "seed": s, "gated": gated,
                             "norm_matched": norm, "norm_epoch_50": norm})
    return rows


def _test(table):
    return mech.kappa_test(table, pairs=PAIRS, kappas=KAPPAS, seeds=SEEDS, read_epochs=[50],
                           n_resamples=999)


def test_the_norm_moving_as_predicted_is_reproduced():
    test = _test(_table())
    assert test.verdict == bl.Verdict.REPRODUCED and test.sign_pairs == PAIRS[:2]
    down, up = test.result[0.95, 0.8, mech.PRIMARY], test.result[0.8, 0.95, mech.PRIMARY]
    assert down["diff"].mean == pytest.approx(-2.0, abs=0.02) and down["prediction"] == -1
    assert up["diff"].mean == pytest.approx(2.0, abs=0.02) and up["monotone"] == len(SEEDS)
    assert test.f0_ok == {mech.PRIMARY: True, "norm_epoch_50": True} and test.f0_worst < 0.05
    assert list(test.readings) == [mech.PRIMARY, "norm_epoch_50"]
    assert len(down["means"]) == len(KAPPAS) and down["n_gated"] == len(SEEDS)


def test_the_norm_moving_against_the_prediction_is_contradicted():
    assert _test(_table(effect=-1.0)).verdict == bl.Verdict.CONTRADICTED


def test_a_failed_gate_leaves_the_test_untested_or_outside_the_theorys_range():
    ungated = _test(_table(gated=False))  # no seed whose runs pass: nothing to pair
    assert ungated.result[0.95, 0.8, mech.PRIMARY]["n_gated"] == 0
    assert ungated.verdict == bl.Verdict.NOT_TESTED
    f0 = _test(_table(f0_offset=3.0))  # the κ = −1 runs of the two pairs disagree
    assert not f0.f0_ok[mech.PRIMARY] and f0.f0_worst == pytest.approx(1.5, abs=0.05)
    assert f0.verdict == bl.Verdict.OUTSIDE_RANGE


def test_the_sentence_is_made_from_the_numbers():
    test = _test(_table())
    text = mech.kappa_sentence(test, PAIRS, [30, 41])
    d = test.result[0.95, 0.8, mech.PRIMARY]["diff"]
    assert text.startswith("At matched loss (reached at epochs 30 to 41), from κ = −1 to κ = +1:")
    assert f"(0.95, 0.8) (predicted to decrease): mean change {d.mean:.3g}" in text
    assert "(0.9, 0.9) (control, predicted to decrease)" in text
    assert "the f₀ gate holds at matched loss" in text and text.endswith("**reproduced**.")
    failing = mech.kappa_sentence(_test(_table(f0_offset=3.0)), PAIRS, [30, 41])
    assert "the f₀ gate fails at matched loss; it fails at epoch 50" in failing
