"""The float32-against-float64 comparison of a network experiment's runs (bea_lib.nets.precision):
what it passes and what it catches, on hand-made tables and on a κ batch trained in both dtypes."""
import dataclasses
import math

import pytest

from bea_lib.nets.data import load_dataset
from bea_lib.nets.precision import compare_runs, relative_difference
from bea_lib.nets.train import TrainConfig, train


def _rows(norms, ratio=0.1, gated=True):
    """A κ table: one seed, κ = −1, 0, +1 with the given norms."""
    return [{"experiment": "kappa", "model": "mlp", "optimizer": "adam", "seed": 0, "h": 1e-3,
             "beta": 0.9, "rho": 0.99, "eps": 1e-8, "kappa": k, "norm_read": n,
             "max_bias_ratio": ratio * abs(1 + k), "gated": gated}
            for k, n in zip((-1.0, 0.0, 1.0), norms)]


KAPPA = [("norm_read", "kappa", 1.0, -1.0)]


def test_the_same_tables_pass():
    rows = _rows([10.0, 10.1, 10.2])
    c = compare_runs(rows, rows, numbers=["norm_read", "max_bias_ratio"], categories=["gated"],
                     differences=KAPPA, verdicts64={"x/y": "reproduced"},
                     verdicts32={"x/y": "reproduced"})
    assert c.passed and [n.worst for n in c.numbers] == [0.0, 0.0, 0.0]
    assert len(c.table()) == 5
    # a setting or category a run does not have (ρ of GD, no regime) is NaN in both tables
    gd = [dict(r, rho=math.nan, regime=math.nan) for r in rows]
    assert compare_runs(gd, gd, numbers=["norm_read"], categories=["regime"]).passed


def test_a_kappa_effect_is_compared_as_a_difference():
    # norms within 0.05 % but the κ effect 0.2 → 0.19, 5 % off: the difference is what fails
    rows64, rows32 = _rows([10.0, 10.1, 10.2]), _rows([10.0, 10.1, 10.19])
    c = compare_runs(rows64, rows32, numbers=["norm_read"], differences=KAPPA)
    norm, effect = c.numbers
    assert norm.within and norm.worst == pytest.approx(0.01 / 10.2)
    assert not effect.within and effect.worst == pytest.approx(0.05)
    assert "seed 0" in effect.where and not c.passed


def test_a_changed_category_or_verdict_fails():
    a, b = _rows([1.0, 2.0, 3.0]), _rows([1.0, 2.0, 3.0], gated=False)
    c = compare_runs(a, b, categories=["gated"])
    assert not c.passed and c.categories[0].differ == 3
    c = compare_runs(a, a, verdicts64={"x": "reproduced"}, verdicts32={"x": "inconclusive"})
    assert not c.passed and "inconclusive (float32)" in c.verdicts[0].example


def test_relative_difference_of_missing_and_zero_readings():
    assert relative_difference(math.nan, math.nan) == 0.0
    assert relative_difference(1.0, math.nan) == math.inf
    assert relative_difference(0.0, 0.0) == 0.0 and relative_difference(1e-9, 0.0) == 1e-9
    assert relative_difference(1.01, 1.0) == pytest.approx(0.01)


def test_bad_comparisons_are_refused():
    rows = _rows([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="different runs"):
        compare_runs(rows, rows[:2])
    with pytest.raises(ValueError, match="two rows"):
        compare_runs(rows + rows[:1], rows)
    with pytest.raises(ValueError, match="no row has the column"):
        compare_runs(rows, rows, numbers=["sharpness"])
    with pytest.raises(ValueError, match="key columns"):
        compare_runs(rows, rows, differences=[("norm_read", "width", 1, 2)])
    with pytest.raises(ValueError, match="both dtypes"):
        compare_runs(rows, rows, verdicts64={"x": "reproduced"})
    with pytest.raises(ValueError, match="rtol"):
        compare_runs(rows, rows, rtol=1)


def _kappa_table(dtype: str, h: float):
    """Three κ runs of one seed trained as one batch in ``dtype``: the norm at the end."""
    data = load_dataset("digits", n_train=64, n_test=16)
    base = TrainConfig(dataset="digits", model="mlp", width=8, h=h, beta=0.9, rho=0.99,
                       eps=1e-8, epochs=20, n_train=64, n_test=16, chunk_size=64,
                       device="cpu", dtype=dtype, test_every=20)
    runs = train([dataclasses.replace(base, kappa=k) for k in (-1.0, 0.0, 1.0)], data=data)
    return [{"experiment": "kappa", "model": "mlp", "optimizer": "adam", "seed": 0, "h": h,
             "beta": 0.9, "rho": 0.99, "eps": 1e-8, "kappa": k,
             "norm_read": float(r["grad_norm_1_eps"][-1])}
            for k, r in zip((-1.0, 0.0, 1.0), runs)]


def test_float32_rounding_of_a_small_kappa_term_is_caught():
    # at h = 1e-4 the κ term κh²f₁ is far above float32's resolution of θ, and the two dtypes
    # agree on the κ effect (measured: to 3e-8 relative); at h = 1e-7 it is near it (h² = 1e-14
    # times f₁ against u|θ| ~ 1e-8), and the effect read off the float32 runs is mostly rounding
    # (measured: 1.1e-7 against 8.2e-7) while the norms agree to 1e-6: the comparison must fail
    big = compare_runs(_kappa_table("float64", 1e-4), _kappa_table("float32", 1e-4),
                       numbers=["norm_read"], differences=KAPPA)
    small = compare_runs(_kappa_table("float64", 1e-7), _kappa_table("float32", 1e-7),
                         numbers=["norm_read"], differences=KAPPA)
    assert big.passed, big.table()
    assert small.numbers[0].within  # the norms themselves agree to 1 %
    assert not small.numbers[1].within, small.table()  # their κ difference does not
