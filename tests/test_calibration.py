"""The calibration of the validity gate on a network (bea_lib.evidence.calibration, and its figure
in bea_lib.figures.calibration): the table on a tiny proxy, its tolerances and file, and the
declared rule on tables whose limit is known."""
import math

import pytest
import torch

from bea_lib.base.vocab import FlowStatus
from bea_lib.evidence.statistics import NETWORK_LIMIT
from bea_lib.evidence import calibration as cal


@pytest.fixture(scope="module")
def proxy():
    return cal.proxy_loss(n_train=16, width=4)  # 234 parameters: seconds, not minutes


# --- the table -----------------------------------------------------------------------------------

def test_trained_start_reaches_the_loss_and_says_when_it_cannot(proxy):
    loss, theta0 = proxy
    theta, n = cal.trained_start(loss, theta0, train_loss=2.0)
    assert float(loss(theta)) < 2.0 <= float(loss(theta0))
    assert n > 0
    with pytest.raises(ValueError, match="train_loss = 0.001 not reached by plain Adam in 5 steps"):
        cal.trained_start(loss, theta0, train_loss=1e-3, max_steps=5)


def test_calibration_table_on_a_tiny_proxy(proxy):
    loss, theta0 = proxy
    rows = cal.calibration_table(loss, {"initial": theta0}, pairs=[(0.9, 0.8)], eps=1e-3,
                                 ratios=[0.02, 0.1, 100.0], n_steps=12)
    assert [set(r) for r in rows] == [set(cal.CALIBRATION_COLUMNS)] * 3
    small, middle, huge = rows
    # the bias ratio at the start is the target (it is linear in h: rel 1e-9 for rounding)
    assert small["bias_ratio_start"] == pytest.approx(0.02, rel=1e-9)
    assert small["bias_ratio"] >= small["bias_ratio_start"]
    # at a small ratio the O(h) term is most of what separates Adam from f₀
    assert small["status"] == FlowStatus.SOLVED
    assert small["error_ratio"] < 0.1
    assert small["error_ratio"] < middle["error_ratio"]  # it grows with the ratio
    # far outside the range the order-1 flow is not solved, and the row says so
    assert huge["status_order1"] != FlowStatus.SOLVED and math.isnan(huge["err_order1"])
    assert "order1" in huge["status"]
    # an unsolved κ flow leaves the κ column unknown, whichever of the two it is
    for row in rows:
        unsolved = {row["status_kappa_m1"], row["status_kappa_p1"]} != {FlowStatus.SOLVED}
        assert math.isnan(row["kappa_error_ratio"]) == unsolved


def test_a_window_that_blows_up_is_a_status_and_a_failure_not_a_crash():
    # E = Σ √(θ + 0.1): Adam walks down to θ = −0.1, where ∇E is NaN; the window of h at bias
    # ratio 3 gets there (measured), that at 0.01 does not
    def edge(theta):
        return torch.sqrt(theta + 0.1).sum()

    rows = cal.calibration_table(edge, {"a": torch.tensor([0.5, 0.4])}, pairs=[(0.8, 0.9)],
                                 eps=1e-2, ratios=[0.01, 3.0], n_steps=10)
    assert rows[0]["status"] == FlowStatus.SOLVED
    assert "adam iterates not finite" in rows[1]["status"] and FlowStatus.NOT_FINITE in (
        rows[1]["status_order0"], rows[1]["status_order1"])
    assert math.isnan(rows[1]["error_ratio"]) and rows[1]["bias_ratio"] >= 3.0
    limit = cal.calibrated_limit(rows)  # the second row fails: the first one's ratio, reached
    assert (limit.value, limit.reached) == (rows[0]["bias_ratio"], True)


def test_the_tables_tolerances_change_nothing_it_reads(proxy):
    # RTOL, ATOL against the library's 1e-10, 1e-12 (with the budget ten times larger, which
    # the finer tolerances need): every distance within 1e-8 (measured 1e-9 at most), against
    # distances of 7e-7 (the smallest) to 1e-1
    loss, theta0 = proxy
    kw = {"pairs": [(0.9, 0.8)], "eps": 1e-4, "ratios": [0.02, 0.5], "n_steps": 12}
    ours = cal.calibration_table(loss, {"i": theta0}, **kw)
    fine = cal.calibration_table(loss, {"i": theta0}, rtol=1e-10, atol=1e-12,
                                 evals_per_step=10 * cal.EVALS_PER_STEP, **kw)
    for a, b in zip(ours, fine):
        assert a["status"] == b["status"] == FlowStatus.SOLVED
        for c in ("err_order0", "err_order1", "err_kappa_m1", "err_kappa_p1"):
            assert abs(a[c] - b[c]) <= 1e-8


def test_the_table_writes_and_reads_back(tmp_path):
    row = {c: 1.5 for c in cal.CALIBRATION_COLUMNS}
    row.update(start="trained to 1", status="order1 over budget", err_order1=math.nan,
               status_order0=FlowStatus.SOLVED, status_order1=FlowStatus.OVER_BUDGET,
               status_kappa_m1=FlowStatus.SOLVED, status_kappa_p1=FlowStatus.SOLVED,
               h=1 / 3)
    path = cal.write_calibration_csv([row], tmp_path / "calibration.csv")
    [back] = cal.read_calibration_csv(path)
    assert back["h"] == 1 / 3 and math.isnan(back["err_order1"])  # full precision, NaN kept
    assert back["status_order1"] == FlowStatus.OVER_BUDGET and back["start"] == "trained to 1"
    with pytest.raises(ValueError, match="missing columns"):
        cal.write_calibration_csv([{"start": "x"}], tmp_path / "bad.csv")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="is not a calibration table"):
        cal.read_calibration_csv(tmp_path / "other.csv")


def test_run_calibration_writes_the_table_it_returns(tmp_path):
    result = cal.run_calibration(tmp_path, train_losses=(2.2,), pairs=[(0.9, 0.8)],
                                 ratios=[0.02, 0.05], n_steps=4)
    assert result.path == tmp_path / cal.CALIBRATION_FILE
    assert cal.read_calibration_csv(result.path) == result.rows
    assert [r["start"] for r in result.rows] == ["initial"] * 2 + ["trained to 2.2"] * 2
    assert result.start_steps["trained to 2.2"] > 0 and result.limit.value > 0


def test_calibration_table_refuses_bad_input(proxy):
    loss, theta0 = proxy
    with pytest.raises(ValueError, match="beta must be in"):
        cal.calibration_table(loss, {"a": theta0}, pairs=[(1.0, 0.9)])
    with pytest.raises(ValueError, match="ratios must be a finite number > 0"):
        cal.calibration_table(loss, {"a": theta0}, ratios=[0.1, -1.0])
    with pytest.raises(ValueError, match="at least one value"):
        cal.calibration_table(loss, {"a": theta0}, pairs=[])


# --- the rule ------------------------------------------------------------------------------------

def test_sweep_limit_interpolates_the_crossing():
    # error ratios 0.1, 0.3, 0.8 at bias ratios 0.1, 0.3, 1: the crossing of 1/2 lies between
    # the last two, in log-log: log r = log 0.3 + (log 0.5 - log 0.3)/(log 0.8 - log 0.3) log(1/0.3)
    expected = math.exp(math.log(0.3) + (math.log(0.5) - math.log(0.3))
                        / (math.log(0.8) - math.log(0.3)) * math.log(1 / 0.3))
    limit, reached = cal.sweep_limit([0.1, 0.3, 1.0], [0.1, 0.3, 0.8])
    assert limit == pytest.approx(expected, rel=1e-12) and reached
    # the rows' order does not matter; the factor does (factor 1: the crossing of 1 is never met)
    assert cal.sweep_limit([1.0, 0.1, 0.3], [0.8, 0.1, 0.3]) == (limit, True)
    assert cal.sweep_limit([0.1, 0.3, 1.0], [0.1, 0.3, 0.8], factor=1.0) == (1.0, False)


def test_sweep_limit_stops_at_the_first_row_that_does_not_pass():
    # a pass after a failure does not count: the limit stays below the first failure
    limit, reached = cal.sweep_limit([0.1, 0.3, 1.0, 3.0], [0.1, 0.9, 0.2, 0.3])
    assert 0.1 < limit < 0.3 and reached
    # a flow that blew up (NaN) fails: the last passing ratio, reached
    assert cal.sweep_limit([0.1, 0.3, 1.0], [0.1, math.nan, 0.2]) == (0.1, True)
    # a flow over budget is unknown: the last passing ratio, as a lower bound
    assert cal.sweep_limit([0.1, 0.3, 1.0], [0.1, math.nan, 0.9],
                           over_budget=[False, True, False]) == (0.1, False)
    # the first row fails: 0; every row passes: the largest ratio, not reached
    assert cal.sweep_limit([0.1, 0.3], [0.6, 0.1]) == (0.0, True)
    assert cal.sweep_limit([0.1, 0.3], [0.1, 0.2]) == (0.3, False)


def test_sweep_limit_refuses_bad_input():
    with pytest.raises(ValueError, match="one length"):
        cal.sweep_limit([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="finite and > 0"):
        cal.sweep_limit([0.0, 0.2], [0.1, 0.1])
    with pytest.raises(ValueError, match="factor must be"):
        cal.sweep_limit([0.1], [0.1], factor=0.0)


def _row(start, beta, rho, bias_ratio, error_ratio, kappa_error_ratio, *, effect=1.0):
    """A calibration row with the readings the rule uses (κ errors split evenly)."""
    row = {c: math.nan for c in cal.CALIBRATION_COLUMNS}
    row.update(start=start, beta=beta, rho=rho, bias_ratio=bias_ratio, err_order0=1.0,
               err_order1=error_ratio, error_ratio=error_ratio, kappa_effect=effect,
               err_kappa_m1=kappa_error_ratio * effect, err_kappa_p1=kappa_error_ratio * effect / 2,
               kappa_error_ratio=kappa_error_ratio, status=FlowStatus.SOLVED,
               **{f"status_{f}": FlowStatus.SOLVED
                  for f in ("order0", "order1", "kappa_m1", "kappa_p1")})
    return row


def test_calibrated_limit_is_the_smallest_over_sweeps_and_runs():
    rows = [_row("a", 0.9, 0.8, r, e, k) for r, e, k in
            ((0.1, 0.1, 0.1), (0.3, 0.2, 0.2), (1.0, 0.9, 0.3))]
    rows += [_row("b", 0.9, 0.8, r, e, k) for r, e, k in
             ((0.1, 0.1, 0.05), (0.3, 0.2, 0.9), (1.0, 0.3, 0.9))]
    limit = cal.calibrated_limit(rows)
    # sweep b's κ runs fail at the ratio 0.3 (read unscaled, as the gate reads it), after
    # passing at 0.1: the crossing lies in (0.1, 0.3), below every Adam sweep's limit (a: in
    # (0.3, 1); b: 1)
    assert limit.binding == ("kappa", "b", 0.9, 0.8) and limit.reached
    assert 0.1 < limit.value == limit.upper < 0.3
    assert limit.value == cal.sweep_limit([0.1, 0.3, 1.0], [0.05, 0.9, 0.9])[0]
    # Adam's sweeps alone: a's crossing lies between 0.3 and 1, b never fails
    assert 0.3 < limit.sweeps["adam", "a", 0.9, 0.8][0] < 1.0
    assert limit.sweeps["adam", "b", 0.9, 0.8] == (1.0, False)
    assert set(limit.sweeps) == {(q, s, 0.9, 0.8) for q in ("adam", "kappa") for s in "ab"}


def test_a_limit_over_budget_is_a_lower_bound_with_an_upper_one():
    rows = [_row("a", 0.9, 0.8, r, e, 0.01) for r, e in ((0.1, 0.1), (0.3, 0.3), (1.0, 0.8))]
    rows += [_row("b", 0.9, 0.8, r, 0.1, 0.01) for r in (0.1, 0.2, 0.5)]
    rows[-2].update(error_ratio=math.nan, status_order1=FlowStatus.OVER_BUDGET)
    limit = cal.calibrated_limit(rows)
    # sweep b ends over budget after 0.1: the limit is at least 0.1, and sweep a's crossing
    # (between 0.3 and 1) bounds it from above
    assert (limit.value, limit.reached, limit.binding) == (0.1, False, ("adam", "b", 0.9, 0.8))
    assert limit.upper == cal.sweep_limit([0.1, 0.3, 1.0], [0.1, 0.3, 0.8])[0]
    assert 0.3 < limit.upper < 1.0


def test_one_kappa_flow_too_far_decides_even_if_the_other_is_over_budget():
    rows = [_row("a", 0.9, 0.8, 0.1, 0.1, 0.1), _row("a", 0.9, 0.8, 0.3, 0.2, math.nan)]
    rows[1].update(err_kappa_m1=0.9, err_kappa_p1=math.nan,
                   status_kappa_p1=FlowStatus.OVER_BUDGET)
    # the κ = −1 run alone fails the row: the crossing lies between the κ runs' own ratios
    assert cal.calibrated_limit(rows).sweeps["kappa", "a", 0.9, 0.8] == cal.sweep_limit(
        [0.1, 0.3], [0.1, 0.9])
    rows[1]["err_kappa_m1"] = 0.1  # within the factor: the other one decides, and is unknown
    assert cal.calibrated_limit(rows).sweeps["kappa", "a", 0.9, 0.8] == (0.1, False)


# --- the figure ----------------------------------------------------------------------------------

def test_calibration_figure_marks_the_limits_with_readable_text():
    import matplotlib

    matplotlib.use("Agg")
    from bea_lib.figures.calibration import calibration_figure
    from bea_lib.figures.plotting import MIN_TEXT_PX
    from test_plotting import text_px_in_column

    rows = [_row(s, b, r, x, 0.2 * x, 0.3 * x) for s in ("initial", "trained")
            for b, r in ((0.95, 0.8), (0.8, 0.95)) for x in (0.05, 0.5, 5.0)]
    limit = cal.calibrated_limit(rows)  # reached: κ's crossing of 1/2 at x = 5/3
    rows[1].update(error_ratio=math.nan, status_order1=FlowStatus.OVER_BUDGET)
    bound = cal.calibrated_limit(rows)  # sweep (initial, 0.95, 0.8) unknown past 0.05
    assert limit.reached and not bound.reached and bound.value == 0.05
    for result, label in ((limit, f"calibrated: {limit.value:.2g}"),
                          (bound, f"calibrated: ≥ 0.05, ≤ {bound.upper:.2g}")):
        fig = calibration_figure(result, gate=NETWORK_LIMIT)
        assert len(fig.axes) == 2
        for ax in fig.axes:
            vertical = [line.get_xdata()[0] for line in ax.get_lines()
                        if len(set(line.get_xdata())) == 1 and len(line.get_xdata()) == 2]
            assert NETWORK_LIMIT in vertical and result.value in vertical
            assert ax.get_xscale() == "log"
        assert label in fig.axes[0].get_legend_handles_labels()[1]
        assert text_px_in_column(fig) >= MIN_TEXT_PX


def test_calibration_figure_of_two_limits_draws_each_on_its_own_panels():
    import matplotlib

    matplotlib.use("Agg")
    from bea_lib.figures.calibration import calibration_figure

    rows = [_row(s, b, r, x, 0.2 * x, k * x) for s in ("initial", "trained")
            for (b, r), k in (((0.95, 0.8), 0.3), ((0.8, 0.95), 3.0)) for x in (0.05, 0.5, 5.0)]
    first, second = (cal.calibrated_limit([row for row in rows if row["beta"] == b])
                     for b in (0.95, 0.8))
    assert first.value > second.value  # the second pair's κ runs cross 1/2 ten times earlier
    fig = calibration_figure(first, second, gate=NETWORK_LIMIT)
    assert [ax.get_title() for ax in fig.axes] == ["β = 0.95, ρ = 0.8", "β = 0.8, ρ = 0.95"]
    for ax, limit in zip(fig.axes, (first, second)):
        dotted = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert dotted == [limit.value]
