"""The mechanism chapter's evidence (bea_lib.evidence.mechanism): the declared plan of h and
window lengths, the matched-loss reading, the runs.csv rows of a small real experiment, and the
per-stage test on hand-made tables: supported where the norm moves as (2.5) predicts, not
supported where it moves the other way, outside the theory's range where a gate fails, under
the current and the earlier gate definitions."""
import math

import numpy as np
import pytest

from bea_lib.base.vocab import ExperimentVerdict
from bea_lib.evidence import mechanism as mech
from bea_lib.evidence import statistics as st
from bea_lib.nets.config import TrainConfig
from bea_lib.nets.data import load_dataset

PAIRS = [(0.9, 0.7), (0.7, 0.9), (0.8, 0.8)]  # β > ρ: decrease predicted; ρ > β: increase
KAPPAS = [-1.0, 0.0, 1.0]
SEEDS = list(range(1000, 1006))


def test_the_plan_gives_one_window_length_and_h_within_the_rule():
    plan = mech.window_plan({0: 2000.0, 1: 8000.0, 2: 9000.0}, limit=0.05, share=0.25,
                            min_steps=100)
    h_rule = {s: 0.0125 / r for s, r in {0: 2000.0, 1: 8000.0, 2: 9000.0}.items()}
    assert plan[0] == (pytest.approx(h_rule[0], rel=1e-12), 100)  # the largest h: 100 steps
    t = 100 * h_rule[0]
    for s, (h, n) in plan.items():
        assert n % 4 == 0 and h <= h_rule[s] * (1 + 1e-12)
        assert n * h == pytest.approx(t, rel=1e-12)  # the same window length at every stage
    assert plan[1][1] == 400 and plan[2][1] == 452  # 450 rounded up to a multiple of 4
    with pytest.raises(ValueError, match="multiple of 4"):
        mech.window_plan({0: 1.0}, min_steps=50)
    with pytest.raises(ValueError, match="positive ratios"):
        mech.window_plan({0: 0.0})


def test_the_norm_is_read_where_the_loss_first_reaches_the_target():
    loss, norm = [3.0, 2.0, 1.0, 0.5], [10.0, 8.0, 6.0, 5.0]
    assert mech.norm_at_loss(loss, norm, 1.5) == pytest.approx(7.0)  # halfway from 2 to 1
    assert mech.norm_at_loss(loss, norm, 0.5) == 5.0 and mech.norm_at_loss(loss, norm, 9) == 10
    assert math.isnan(mech.norm_at_loss(loss, norm, 0.1))


@pytest.fixture(scope="module")
def small():
    """The experiment end to end on a tiny network: two seeds, two stages, short windows."""
    data = load_dataset("mnist1d", n_train=60, n_test=50)
    base = TrainConfig(model="mlp", width=8, activation="tanh", h=1e-2, beta=0.9, rho=0.999,
                       eps=1e-8, dtype="float64", n_train=60, n_test=50, chunk_size=60,
                       device="cpu", sharpness=False)
    return mech.run_experiment(base, seeds=[1000, 1001], stage_losses=[1.5], pairs=PAIRS,
                               kappas=KAPPAS, start_ups=1, data=data)


def test_rows_of_a_small_experiment(small, tmp_path):
    rows = small.rows
    assert len(rows) == 2 * 2 * 9 and {r["stage"] for r in rows} == {0, 1}
    for s, (h, n) in small.plan.items():
        mine = [r for r in rows if r["stage"] == s]
        assert {(r["h"], r["epochs"]) for r in mine} == {(h, n)}
        assert all(r["window_t"] == pytest.approx(n * h) for r in mine)
        assert all(r["max_bias_ratio"] <= 0.25 * st.NETWORK_LIMIT * 1.5 for r in mine)
        assert all(r["gated"] and r["gate_points"] == 5 for r in mine)  # n = 0, n/4, …, n
        for seed in (1000, 1001):
            own = [r for r in mine if r["seed"] == seed]
            # one matched loss per stage and seed: the slowest of its nine runs, read at its end
            matched = max(r["train_loss_end"] for r in own)
            assert {r["loss_matched"] for r in own} == {matched}
            slowest = max(own, key=lambda r: r["train_loss_end"])
            assert slowest["norm_matched"] == slowest["norm_end"]
            assert len({r["start_loss"] for r in own}) == 1
            assert len({r["dist_f0_4"] for r in own}) == 1 and own[0]["dist_f0_4"] > 0
    path = st.write_runs_csv(rows, tmp_path / "runs.csv")
    back = st.read_runs_csv(path)
    assert [r["norm_matched"] for r in back] == [r["norm_matched"] for r in rows]


def _table(effect=1.0, *, f0_offset=0.0, ratio=0.01, stages=(0, 1)):
    """Rows whose norm changes by ``effect`` × (predicted sign) × (κ + 1), per seed an offset;
    the κ = −1 runs of the β > ρ pair are ``f0_offset`` away (norm and parameters)."""
    rng = np.random.default_rng(0)
    rows = []
    for s in stages:
        for b, r in PAIRS:
            sign = -1 if b >= r else 1
            for seed in SEEDS:
                for k in KAPPAS:
                    norm = 10 + seed % 7 + sign * effect * (k + 1) + 0.01 * rng.normal()
                    norm += f0_offset * (b > r) * (k == -1)
                    rows.append({
                        "experiment": "kappa", "stage": s, "beta": b, "rho": r, "kappa": k,
                        "seed": seed, "max_bias_ratio": ratio, "gate_points": 5,
                        "norm_matched": norm, "norm_end": norm,
                        **{f"dist_kappa_{j}": 2.0 * abs(effect) * j / 4 for j in mech.QUARTERS},
                        **{f"dist_f0_{j}": 0.1 + f0_offset for j in mech.QUARTERS}})
    return rows


def _test(table, **kw):
    return mech.stage_test(table, pairs=PAIRS, kappas=KAPPAS, seeds=SEEDS, n_resamples=199, **kw)


def test_the_norm_moving_as_predicted_is_supported():
    test = _test(_table())
    assert test.verdict == ExperimentVerdict.SUPPORTED and test.primary_stage == 1
    down = test.result[1, 0.9, 0.7]
    assert down["diff"].mean == pytest.approx(-2.0, abs=0.02) and down["prediction"] == -1
    assert down["monotone"] == len(SEEDS) and test.gated == {0: True, 1: True}
    assert test.f0_parameters[1] == pytest.approx([0.1 / 2.0] * len(SEEDS))
    assert test.f0_along[1] == pytest.approx([0.2, 0.1, 0.1 / 1.5, 0.05])
    # the decomposition: β > ρ minus ρ > β, zero at κ = −1 and −4 at κ = +1
    assert test.decomposition[1, -1.0].mean == pytest.approx(0.0, abs=0.02)
    assert test.decomposition[1, 1.0].mean == pytest.approx(-4.0, abs=0.03)
    spread, grows = test.growth[1]  # |D(+1)| − |D(−1)|: predicted to be positive
    assert spread.mean == pytest.approx(4.0, abs=0.05) and grows == ExperimentVerdict.SUPPORTED
    words = mech.stage_sentence(test, {0: "initial point", 1: "loss below 1.5"})
    assert words.startswith("initial point: from κ = −1 to +1 the norm moves down 2 at (0.9, 0.7)")
    assert words.endswith("verdict **supported**.")


def test_the_norm_moving_against_the_prediction_is_not_supported():
    assert _test(_table(effect=-1.0)).verdict == ExperimentVerdict.NOT_SUPPORTED
    # and a wrong prediction (β and ρ swapped) reads the true movement as not supported
    swapped = _test(_table(), predict=lambda *, beta, rho: st.kappa_prediction(beta=rho, rho=beta))
    assert swapped.verdict == ExperimentVerdict.NOT_SUPPORTED


def test_a_failed_gate_puts_the_stage_outside_the_theorys_range():
    high = _test(_table(ratio=0.06))  # above NETWORK_LIMIT for every run
    assert high.verdicts == {0: ExperimentVerdict.OUTSIDE_RANGE,
                             1: ExperimentVerdict.OUTSIDE_RANGE}
    assert high.bias_gated[1] == (0, len(PAIRS) * len(KAPPAS) * len(SEEDS))
    apart = _test(_table(f0_offset=3.0))  # the κ = −1 runs of the two pairs disagree
    assert np.max(apart.f0_norm[1]) == pytest.approx(1.5, abs=0.05)
    assert apart.verdict == ExperimentVerdict.OUTSIDE_RANGE
    # the earlier definitions: the ratio scaled by |1 + κ| against 0.5, so 0.06 passes there
    for name in ("original", "published"):
        assert _test(_table(ratio=0.06), gates=mech.GATES[name]).verdict == "supported"


def test_the_first_experiments_verdict_under_each_definition():
    rows = []
    for row in _table(stages=(0,)):
        del row["stage"], row["norm_end"]
        rows.append(dict(row, max_bias_ratio_unscaled=0.2, norm_epoch_240=row["norm_matched"]))
    verdicts = {name: mech.first_experiment_test(rows, pairs=PAIRS, kappas=KAPPAS, seeds=SEEDS,
                                                 last_epoch=240, gates=g, n_resamples=199).verdict
                for name, g in mech.GATES.items()}
    assert verdicts == {"original": "supported", "published": "supported",
                        "current": "outside the theory's range"}  # 0.2 > NETWORK_LIMIT
