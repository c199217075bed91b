"""The Discussion's first conclusion on a network (bea_lib.evidence.optimizers): the declared
step-size rule, the readings at matched loss against each arm's own stability threshold, and
the two answers with their mutants (the gate dropped, β and ρ swapped in the prediction)."""
import math

import numpy as np
import pytest

import bea_lib as bl
from bea_lib.evidence import optimizers as oe
from bea_lib.nets.history import COLUMNS, History


def _run(loss, **columns):
    n = len(loss)
    cols = {c: [math.nan] * n for c in COLUMNS}
    cols.update(epoch=list(map(float, range(n))), train_loss=list(loss), **columns)
    return History(cols, "loss_threshold", "")


def test_the_rule_takes_the_largest_step_whose_pilot_runs_reach_the_loss_without_a_spike():
    calm, spiky, slow = _run([2, 1, 0.5, 0.05]), _run([2, 0.5, 1.5, 0.05]), _run([2, 1.5, 1.0])
    pilot = {0.1: [calm, calm], 0.2: [calm, calm], 0.4: [calm, spiky], 0.8: [slow, calm]}
    assert oe.largest_stable_step(pilot, matched_loss=0.1, max_spike_ratio=1.5) == 0.2
    assert oe.largest_stable_step({0.4: [spiky]}, matched_loss=0.1, max_spike_ratio=1.5) is None
    assert oe.largest_stable_step({0.4: [spiky]}, matched_loss=0.1, max_spike_ratio=4.0) == 0.4


def test_each_arm_has_its_own_stability_threshold():
    assert oe.stability_threshold("gd", h=0.5, beta=0.0) == 4.0
    assert oe.stability_threshold("heavy_ball", h=0.2, beta=0.9) == pytest.approx(19.0)
    assert oe.stability_threshold("adam", h=1e-2, beta=0.9) == pytest.approx(3800.0)
    assert oe.stability_threshold("rmsprop", h=1e-2, beta=0.0) == pytest.approx(200.0)


def test_the_rows_read_each_run_at_its_matched_epoch():
    nan = math.nan
    run = _run([2.0, 0.5, 0.08], train_acc=[0.1, 0.6, 0.9], test_acc=[0.1, 0.3, 0.4],
               sharpness=[nan, nan, 30.0], preconditioned_sharpness=[nan, nan, 1900.0],
               bias_ratio=[0.2, nan, 0.3], grad_norm_1_eps=[5.0, 4.0, 3.0])
    rows = oe.optimizer_rows({"adam": {7: run}, "gd": {7: run}}, model="mlp", matched_loss=0.1,
                             hyper={"adam": (1e-2, 0.9, 0.999, 1e-8), "gd": (0.5, 0.0, 0.0, 0)})
    adam, gd = rows
    assert adam["matched_epoch"] == 2 and adam["test_acc"] == 0.4
    assert adam["gap"] == pytest.approx(0.5) and adam["sharpness"] == 30.0
    assert adam["sharpness_rel"] == pytest.approx(1900 / 3800)  # preconditioned, adaptive edge
    assert gd["sharpness_rel"] == pytest.approx(30 / 4)          # raw, against 2/h
    assert adam["max_bias_ratio"] == 0.3 and not adam["gated"]   # above NETWORK_LIMIT
    never = oe.optimizer_rows({"gd": {7: _run([2.0, 1.0])}}, model="mlp", matched_loss=0.1,
                              hyper={"gd": (0.5, 0.0, 0.0, 0)})[0]
    assert never["matched_epoch"] == -1 and math.isnan(never["test_acc"])


def comparison_table(*, gated: bool, seeds=range(8)):
    """Rows in which Adam and RMSProp are sharper and less accurate than GD and heavy-ball."""
    rng = np.random.default_rng(3)
    rows = []
    for s in seeds:
        base_sharp, base_acc = rng.normal(10, 2), rng.normal(0.4, 0.05)
        for arm, extra in (("adam", 1), ("rmsprop", 1), ("gd", 0), ("heavy_ball", 0)):
            rows.append({"experiment": "optimizers", "optimizer": arm, "seed": s,
                         "gated": gated, "sharpness": base_sharp + 3 * extra + rng.normal(0, .1),
                         "test_acc": base_acc - 0.05 * extra + rng.normal(0, 0.005),
                         "sharpness_rel": 0.5 + 0.1 * extra, "gap": 0.5 + 0.05 * extra})
    return rows


def test_the_two_answers_and_the_mutants_of_the_conclusion():
    seeds = list(range(8))
    inside = oe.optimizer_tests(comparison_table(gated=True), seeds, beta=0.9, rho=0.999,
                                n_resamples=999)
    assert inside["answer"] == "same direction" and inside["verdict"] == bl.Verdict.REPRODUCED
    assert len(inside["pairs"]) == 4 * 4
    outside = oe.optimizer_tests(comparison_table(gated=False), seeds, beta=0.9, rho=0.999,
                                 n_resamples=999)
    assert outside["answer"] == "same direction"  # the proxy's answer has no gate
    assert outside["verdict"] == bl.Verdict.OUTSIDE_RANGE
    dropped = oe.optimizer_tests(comparison_table(gated=False), seeds, beta=0.9, rho=0.999,
                                 n_resamples=999, gate=False)
    assert dropped["verdict"] == bl.Verdict.REPRODUCED  # the gate dropped changes the verdict
    swapped = oe.optimizer_tests(comparison_table(gated=True), seeds, beta=0.999, rho=0.9,
                                 n_resamples=999)
    assert swapped["verdict"] == bl.Verdict.CONTRADICTED  # β and ρ swapped in the prediction


def test_the_table_has_one_row_per_pair_and_one_column_per_metric():
    result = oe.optimizer_tests(comparison_table(gated=True), list(range(8)), beta=0.9,
                                rho=0.999, n_resamples=999)
    rows = oe.optimizer_table(result)
    assert [r[0] for r in rows] == ["Adam − GD", "Adam − heavy-ball", "RMSProp − GD",
                                    "RMSProp − heavy-ball"]
    assert all(len(r) == 1 + len(oe.METRIC_WORDS) for r in rows)
    assert rows[0][1].endswith("(appears)")  # Adam sharper than GD, as the table was made


def test_an_arm_that_never_reaches_the_matched_loss_reads_not_reached(recwarn):
    rows = [{"experiment": "optimizers", "optimizer": arm, "seed": s, "matched_epoch": epoch,
             "sharpness": value, "sharpness_rel": value, "test_acc": value, "gap": value,
             "max_bias_ratio": 0.1, "gated": False}
            for s in range(3) for arm, epoch, value in (("adam", 5 + s, 1.0 + s),
                                                        ("gd", -1, math.nan))]
    steps = {"adam": oe.Step(0.01, True), "gd": oe.Step(0.1, False)}
    adam, gd = oe.arm_table(rows, steps)
    assert adam[2:6] == ["6 (3/3)", "2", "2.00", "2.000"]
    assert gd[1] == "0.1 (none passed)" and gd[2] == "not reached (0/3)"
    assert gd[3:7] == ["—"] * 4
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]  # no NaN medians


def test_the_arms_that_are_not_read_are_named_with_the_reason():
    rows = [{"experiment": "optimizers", "optimizer": arm, "seed": s,
             "matched_epoch": -1 if arm == "gd" else 5}
            for s in range(3) for arm in ("adam", "gd")]
    steps = {"adam": oe.Step(0.01, True), "gd": oe.Step(0.1, False)}
    text = oe.rule_markdown(rows, steps, matched_loss=0.1, epochs=600)
    assert text.startswith("Not read: GD: no step of its grid brought the pilot runs")
    assert "h = 0.1, was taken as declared; 3 of 3 runs do not reach training loss 0.1 " \
           "within 600 epochs." in text and "Adam" not in text
    assert oe.rule_markdown(rows, {"adam": steps["adam"]}, matched_loss=0.1, epochs=600) == ""
