"""The networks chapter's figures (bea_lib.evidence.networks): the runs.csv rows, the paired
slope test with its two answers (the proxy's, the theory's through the gate), the declared
settings, and the cost of the paper profile; on hand-made runs and tables."""
import math
from pathlib import Path

import numpy as np
import pytest

import bea_lib as bl
from bea_book.params import chapter_parameters
from bea_lib.evidence import networks as nw
from bea_lib.evidence import registry
from bea_lib.evidence.statistics import NETWORK_LIMIT, RUN_COLUMNS, Gate, write_runs_csv
from bea_lib.nets.config import TrainConfig
from bea_lib.nets.executor import network_configs, sweeps

ROOT = Path(__file__).resolve().parents[1]
GRID = sweeps(beta_grid=[0.9, 0.99], rho_grid=[0.99, 0.999], beta_fig4=0.99, rho_fig5=0.99,
              beta_fig6=0.9)
READINGS = {"regime": "stable", "norm_at": 2.0, "epoch_thr": 3, "norm_thr": 5.0, "acc_thr": 0.5,
            "acc_max": 0.6, "train_loss_end": 0.1, "train_acc_end": 0.9, "hill": 0.0,
            "hill_shape": False, "osc_norm": 0.1, "osc_loss": 0.0, "oscillating_norm": True,
            "oscillating_loss": False}


def test_figure_rows_hold_each_sweeps_cells_and_the_reading_each_figure_takes(tmp_path):
    base = TrainConfig(dataset="digits", model="mlp", epochs=4, device="cpu")
    records = {("mlp", b, r, s): {"config": base, "gate": Gate(1.0 + s, 0, 3, False),
                                  "sweeps": ["fig4", "fig5"], "readings": READINGS}
               for b, r in {c for sw in GRID.values() for c in sw.cells} for s in (0, 1)}
    rows = nw.figure_rows(GRID, records)
    assert [r["experiment"] for r in rows] == ["fig4"] * 4 + ["fig5"] * 4  # only its sweeps
    assert {(r["beta"], r["rho"]) for r in rows[:4]} == {(0.99, 0.99), (0.99, 0.999)}
    assert {r["norm_read"] for r in rows[:4]} == {2.0}  # Figure 4 at a fixed epoch
    assert {r["norm_read"] for r in rows[4:]} == {5.0}  # Figure 5 at the reading loss
    assert rows[0]["max_bias_ratio"] in (1.0, 2.0) and not rows[0]["gated"]
    assert list(rows[0])[:len(RUN_COLUMNS)] == list(RUN_COLUMNS)
    write_runs_csv(rows, tmp_path / "runs.csv")  # a valid runs table


def _table(slope, *, gated=True, seeds=range(6), sweep="fig4"):
    """Rows of a sweep whose column norm_at has the given slope against log10(1 − ρ)."""
    rng = np.random.default_rng(0)
    return [{"experiment": sweep, "model": "mlp", "beta": b, "rho": r, "seed": s, "gated": gated,
             "norm_at": s + slope * math.log10(1 - r) + 1e-3 * rng.normal()}
            for b, r in GRID[sweep].cells for s in seeds]


READ = nw.Read("networks/fig4-proxy", "Figure 4", "fig4", "norm_at", "the norm", -1, "proxy")


@pytest.mark.parametrize("slope, gated, answer, verdict", [
    (-2.0, True, "same direction", bl.Verdict.REPRODUCED),
    (+2.0, True, "opposite", bl.Verdict.CONTRADICTED),
    (0.0, True, "no trend", bl.Verdict.INCONCLUSIVE),
    (-2.0, False, "same direction", bl.Verdict.OUTSIDE_RANGE),  # the gate, whatever the slope
])
def test_a_figure_test_gives_the_proxys_answer_and_the_theorys_verdict(slope, gated, answer,
                                                                       verdict):
    [r] = nw.figure_tests(_table(slope, gated=gated), GRID, {"mlp": list(range(6))}, [READ],
                          n_resamples=999).values()
    assert r["answer"] == answer and r["verdict"] == verdict
    assert r["q"].n == 6 and r["unread"] == []
    if slope:
        assert r["q"].mean == pytest.approx(slope, abs=0.01)


def test_a_flipped_prediction_flips_the_answer():
    flipped = READ._replace(sign=+1)  # the mutant: the paper's sign reversed
    [r] = nw.figure_tests(_table(-2.0), GRID, {"mlp": list(range(6))}, [flipped],
                          n_resamples=999).values()
    assert r["answer"] == "opposite" and r["verdict"] == bl.Verdict.CONTRADICTED


def test_seeds_that_never_reach_the_reading_are_named_and_left_out():
    table = _table(-2.0)
    for row in table:
        if row["seed"] in (4, 5):
            row["norm_at"] = math.nan
    [r] = nw.figure_tests(table, GRID, {"mlp": list(range(6))}, [READ], n_resamples=999).values()
    assert r["unread"] == [4, 5] and r["q"].n == 4
    for row in table:
        row["norm_at"] = math.nan
    [r] = nw.figure_tests(table, GRID, {"mlp": list(range(6))}, [READ], n_resamples=999).values()
    assert r["answer"] == "not read" and r["verdict"] == bl.Verdict.NOT_TESTED
    with pytest.raises(ValueError, match="no row for"):
        nw.figure_tests(table, GRID, {"mlp": list(range(7))}, [READ], n_resamples=999)


def test_the_gate_summary_and_its_largest_gated_step():
    table = [{"experiment": "fig4", "model": "mlp", "beta": 0.99, "rho": r, "seed": 0, "h": 1e-2,
              "max_bias_ratio": ratio, "gated": ratio <= NETWORK_LIMIT}
             for r, ratio in ((0.99, 0.04), (0.999, 10.0))]
    g = nw.gate_summary(table, limit=NETWORK_LIMIT)
    assert (g["low"], g["high"], g["gated"], g["runs"]) == (0.04, 10.0, 1, 2)
    assert g["h_gated"] == pytest.approx(1e-2 * 0.05 / 10.0)  # the ratio is linear in h


def test_the_chapters_defaults_are_the_declared_settings():
    params = chapter_parameters(ROOT, "networks", "default")
    for s in registry.NETWORK_SETTINGS:
        assert params[s.name] == s.value, s.name
    assert params["network_limit"] == NETWORK_LIMIT
    assert params["seeds"] == list(range(200, 212))
    smoke = chapter_parameters(ROOT, "networks", "smoke")
    assert not set(smoke["seeds"]) & set(range(200, 300))  # evidence seeds only in evidence runs
    text = nw.settings_markdown({**params, "epochs": 5})
    assert text.startswith("```{dropdown} The settings declared on 2026-12-07")
    assert "| `epochs` | 300 | **5** |" in text and "| `n_train` | 500 | the same |" in text


def test_the_paper_profiles_cost_is_counted_from_its_networks():
    paper = chapter_parameters(ROOT, "networks", "paper")
    cost = nw.paper_cost(network_configs(paper))
    assert cost["runs"] == 15 * 12 and cost["by_model"] == {"resnet50": 84, "resnet101": 96}
    # ResNet-50 in the CIFAR form: 7.8 GFLOP per image for a gradient (torch's counter); one
    # epoch of 50,000 images is about 0.39 PFLOP, 3,600 epochs 1.4 EFLOP
    assert 1e18 < cost["flop"] / 180 < 5e18
    text = nw.paper_cost_markdown(network_configs(paper), paper["seeds"])
    assert "180 runs (84 of resnet50, 96 of resnet101; seeds 200–211 (12))" in text
    assert "GPU-hours** at an H100's float64 peak of 67 TFLOP/s" in text


def test_three_times_chance_is_compared_exactly():
    """A best test accuracy of exactly 3/10 is three times chance on ten classes (3 × 0.1 rounds
    above 0.3 in binary floating point; 3/10 does not)."""
    from types import SimpleNamespace

    from bea_lib.evidence.networks import stage_summary

    def records(acc):
        return {("mlp", 0.9, 0.99, s): {"config": SimpleNamespace(dataset="mnist1d"),
                                         "readings": {"epoch_thr": 5, "acc_max": a,
                                                      "regime": "stable"}}
                for s, a in enumerate(acc)}

    assert stage_summary(records([300 / 1000, 0.35]), read_below=0.1)["above_chance"]
    assert not stage_summary(records([299 / 1000, 0.35]), read_below=0.1)["above_chance"]


def test_the_gate_sentence_follows_the_counts():
    assert nw.gate_words({"runs": 84, "gated": 0}).startswith("None of them is inside the gate")
    assert nw.gate_words({"runs": 84, "gated": 80}).startswith("4 of 84 are not inside")
    assert nw.gate_words({"runs": 84, "gated": 84}).startswith("Every run is inside the gate")
