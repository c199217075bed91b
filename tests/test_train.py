"""Full-batch training: input checks, the logged gradient, stopping rules, files, checkpoints and
resume (in process, and a CLI run killed with SIGKILL), the command line and the sweep helper."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import bea_lib
from bea_lib.nets import checkpoint
from bea_lib.nets.data import load_dataset
from bea_lib.nets.history import COLUMNS, History
from bea_lib.nets.history import RunFileError
from bea_lib.nets.config import build_model
from bea_lib.nets.train import ExitCode, TrainConfig, main, train
from test_processes import ENV, wait_for

REPO = Path(__file__).resolve().parents[1]
TINY = TrainConfig(dataset="digits", model="mlp", width=16, h=1e-2, epochs=12, chunk_size=64,
                   n_train=200, n_test=50, device="cpu", dtype="float64")


def _same_history(a: History, b: History):
    """Bitwise equal in every column but the wall time."""
    for c in COLUMNS:
        if c != "wall_time":
            np.testing.assert_array_equal(a[c], b[c], err_msg=c)


@pytest.mark.parametrize("field, value, match", [
    ("dataset", "mnist", "dataset must be one of"),
    ("optimizer", "sgd", "optimizer must be one of 'adam', 'rmsprop', 'gd', 'heavy_ball'"),
    ("model", "vgg", "model must be one of"),
    ("h", 0.0, "h must be a finite number > 0"),
    ("h", -1e-3, "h must be a finite number > 0"),
    ("beta", 1.0, r"beta must be in \[0, 1\)"),
    ("rho", -0.1, r"rho must be in \[0, 1\)"),
    ("eps", 0.0, "eps must be a finite number > 0"),
    ("epochs", -1, "epochs must be an integer >= 0"),
    ("epochs", 2.5, "epochs must be an integer >= 0"),
    ("chunk_size", 0, "chunk_size must be an integer >= 1"),
    ("checkpoint_every", -1, "checkpoint_every must be an integer >= 0"),
    ("dtype", "float16", "dtype must be one of 'float32', 'float64'"),
    ("eps_inside", 1, "eps_inside must be True or False"),
    ("n_train", 0, "n_train must be an integer >= 1"),
    ("max_time", 0.0, "max_time must be a finite number > 0"),
    ("norm", "layer", "norm must be one of"),
    ("seed", -1, "seed must be an integer >= 0"),
])
def test_bad_config_names_the_argument(field, value, match):
    with pytest.raises(ValueError, match=match):
        replace(TINY, **{field: value})


def test_rows_describe_the_parameters_before_each_step():
    hist = train(TINY)
    assert len(hist) == TINY.epochs + 1 and hist.stop_reason == "epochs"
    assert hist["epoch"].tolist() == list(range(TINY.epochs + 1))
    # row 0 against an independent computation: same seed, same model, one pass with the mean loss
    data = load_dataset("digits", n_train=200)
    model = build_model(TINY, data.input_shape, 10)
    loss = torch.nn.functional.cross_entropy(model(data.x_train.double()), data.y_train)
    g = torch.cat([gi.reshape(-1) for gi in torch.autograd.grad(loss, list(model.parameters()))])
    # float64; the chunked sum adds the same terms in another order
    np.testing.assert_allclose(hist["train_loss"][0], loss.item(), rtol=1e-12)
    np.testing.assert_allclose(hist["grad_norm_1_eps"][0],
                               bea_lib.perturbed_one_norm(g, eps=TINY.eps).item(), rtol=1e-10)
    np.testing.assert_allclose(hist["grad_norm_1"][0], g.abs().sum().item(), rtol=1e-10)
    np.testing.assert_allclose(hist["grad_norm_2"][0], g.norm().item(), rtol=1e-10)
    assert hist["train_loss"][-1] < hist["train_loss"][0]


def test_history_does_not_depend_on_the_chunk_size():
    a, b = train(replace(TINY, chunk_size=7)), train(replace(TINY, chunk_size=200))
    for c in COLUMNS:
        if c != "wall_time":
            # float64 rounding of the gradient sums, carried through 12 Adam steps
            np.testing.assert_allclose(a[c], b[c], rtol=1e-9, atol=1e-12, err_msg=c)


def test_test_every_leaves_nan_rows():
    hist = train(replace(TINY, epochs=4, test_every=2))
    assert np.isnan(hist["test_acc"][[1, 3]]).all()
    assert np.isfinite(hist["test_acc"][[0, 2, 4]]).all()


def test_loss_threshold_stops_at_the_first_row_below():
    full = train(TINY)
    threshold = float(np.median(full["train_loss"]))
    hist = train(replace(TINY, loss_threshold=threshold))
    first = int(np.argmax(full["train_loss"] < threshold))
    assert hist.stop_reason == "loss_threshold" and len(hist) == first + 1
    assert hist["train_loss"][-1] < threshold <= hist["train_loss"][-2]


def test_time_limit_stops_the_run():
    hist = train(replace(TINY, max_time=1e-9, epochs=1000))
    assert hist.stop_reason == "time" and len(hist) == 2  # one step, then the budget stops it


def test_divergence_stops_with_the_epoch_and_last_finite_loss():
    hist = train(replace(TINY, h=1e30, dtype="float32", epochs=50))
    assert hist.stop_reason == "diverged"
    n = len(hist) - 1
    assert not np.isfinite(hist["train_loss"][-1]) and n >= 1
    assert np.isfinite(hist["train_loss"][:-1]).all()
    assert f"diverged at epoch {n}" in hist.message and f"at epoch {n - 1}" in hist.message
    assert f"last finite train loss {hist['train_loss'][-2]:.6g}" in hist.message


def test_files_record_the_history_and_the_run(tmp_path):
    hist = train(TINY, tmp_path)
    _same_history(History.read(tmp_path), hist)
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["config"]["h"] == TINY.h and meta["seed"] == 0 and meta["stop_reason"] == "epochs"
    assert {"torch", "numpy", "bea_lib"} <= set(meta["versions"]) and "commit" in meta
    assert not list(tmp_path.glob("checkpoint-*")) and not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("optimizer", ["adam", "heavy_ball"])
def test_resume_continues_exactly(tmp_path, optimizer):
    run = replace(TINY, optimizer=optimizer, h=1e-2 if optimizer == "adam" else 0.1)
    short = train(replace(run, epochs=7, checkpoint_every=3), tmp_path)
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == ["checkpoint-00000006.pt",
                                                                  "checkpoint-00000007.pt"]
    assert checkpoint.epochs_saved(tmp_path) == [6, 7] and len(short) == 8
    resumed = train(replace(run, checkpoint_every=3), tmp_path)  # on to 12 epochs
    _same_history(resumed, train(run))


def test_a_record_older_than_the_optimizer_field_resumes_as_adam(tmp_path):
    train(replace(TINY, epochs=3, checkpoint_every=3), tmp_path)
    info = json.loads((tmp_path / "run.json").read_text())
    del info["config"]["optimizer"]
    (tmp_path / "run.json").write_text(json.dumps(info))
    saved = torch.load(tmp_path / "checkpoint-00000003.pt", weights_only=True)
    del saved["config"]["optimizer"]
    torch.save(saved, tmp_path / "checkpoint-00000003.pt")
    _same_history(train(replace(TINY, checkpoint_every=3), tmp_path), train(TINY))
    with pytest.raises(checkpoint.CheckpointError, match="another run: optimizer, h, beta differ"):
        train(replace(TINY, optimizer="gd", h=0.1, checkpoint_every=3), tmp_path)


def test_resume_refuses_another_run(tmp_path):
    train(replace(TINY, epochs=3, checkpoint_every=1), tmp_path)
    with pytest.raises(checkpoint.CheckpointError, match="another run: rho differ"):
        train(replace(TINY, rho=0.99, checkpoint_every=1), tmp_path)


def test_the_resume_check_covers_every_trajectory_field():
    # derived from the field metadata: a new field that shapes the run cannot be forgotten
    from bea_lib.nets.config import TRAJECTORY_FIELDS
    assert {"dataset", "model", "optimizer", "h", "beta", "rho", "eps", "eps_inside", "kappa",
            "seed", "dtype", "width", "activation", "norm", "n_train", "n_test",
            "test_every"} == set(TRAJECTORY_FIELDS)


def test_a_folder_with_another_runs_results_is_refused_unless_overwrite(tmp_path):
    train(replace(TINY, epochs=2), tmp_path)  # history.csv and run.json, no checkpoint
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(RunFileError, match=r"history.csv, run.json.*--overwrite"):
        train(replace(TINY, epochs=3, rho=0.99), tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing touched
    hist = train(replace(TINY, epochs=3, rho=0.99), tmp_path, overwrite=True)
    _same_history(History.read(tmp_path), hist)


def test_a_run_killed_before_it_saved_anything_starts_again(tmp_path):
    train(replace(TINY, epochs=2), tmp_path)
    (tmp_path / "history.csv").unlink()  # as if killed before the first save: run.json "running"
    info = json.loads((tmp_path / "run.json").read_text())
    (tmp_path / "run.json").write_text(json.dumps({**info, "stop_reason": "running"}))
    assert len(train(replace(TINY, epochs=2), tmp_path)) == 3
    (tmp_path / "history.csv").unlink()
    (tmp_path / "run.json").write_text(json.dumps({**info, "stop_reason": "running"}))
    with pytest.raises(RunFileError, match="run.json"):  # another run's, even if it was killed
        train(replace(TINY, epochs=2, seed=1), tmp_path)


def test_a_foreign_checkpoint_or_run_json_is_named(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "checkpoint-00000003.pt")
    with pytest.raises(checkpoint.CheckpointError,
                       match="checkpoint-00000003.pt is not a checkpoint"):
        train(TINY, tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "run.json").write_text("{not json")
    with pytest.raises(RunFileError, match=r"run.json is damaged"):
        History.read(other)
    (other / "run.json").write_text("[1, 2]")
    with pytest.raises(RunFileError, match=r"run.json is not the record of a training run"):
        History.read(other)


def test_a_cut_history_is_reported(tmp_path):
    train(replace(TINY, epochs=4), tmp_path)
    lines = (tmp_path / "history.csv").read_text().splitlines()
    (tmp_path / "history.csv").write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(RunFileError, match="history.csv has 2 rows but .*run.json records 5"):
        History.read(tmp_path)


def test_filesystem_problems_are_one_line_naming_the_path(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(RunFileError, match=f"run folder {a_file} is a file"):
        train(TINY, a_file)
    with pytest.raises(RunFileError, match=f"cannot create the run folder {a_file / 'run'}"):
        train(TINY, a_file / "run")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to a read-only folder")
def test_a_read_only_folder_is_named(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(RunFileError, match=f"run folder {tmp_path} is not writable"):
            train(TINY, tmp_path)
    finally:
        tmp_path.chmod(0o700)


def test_damaged_checkpoint_is_reported_and_the_good_one_kept(tmp_path):
    train(replace(TINY, epochs=4, checkpoint_every=2), tmp_path)
    good, newest = checkpoint.checkpoints(tmp_path)
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.raises(checkpoint.CheckpointError,
                       match=f"{newest.name} is damaged.*Older checkpoints kept: .*{good.name}"):
        train(replace(TINY, checkpoint_every=2), tmp_path)
    assert good.exists() and newest.exists()
    newest.rename(tmp_path / "damaged.pt")  # the remedy the message gives
    _same_history(train(replace(TINY, checkpoint_every=2), tmp_path), train(TINY))


def _cli(out, *extra):
    args = ["--dataset", "digits", "--model", "mlp", "--width", "16", "--n-train", "300",
            "--n-test", "50", "--chunk-size", "32", "--h", "1e-2", "--device", "cpu", "--out",
            str(out), *extra]
    return [sys.executable, "-m", "bea_lib.nets.train", *args]


def test_sigkill_and_resume_give_the_uninterrupted_history(tmp_path):
    # one thread in the CLI run and in the reference here: the same arithmetic, bit for bit
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    common = ("--epochs", "200", "--checkpoint-every", "10")
    victim = subprocess.Popen(_cli(tmp_path / "run", *common), env=env, cwd=REPO)
    deadline = time.monotonic() + 120
    while not checkpoint.checkpoints(tmp_path / "run") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert victim.poll() is None, "the run ended before it could be killed; make it longer"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["stop_reason"] == "running"  # killed mid-run
    assert subprocess.run(_cli(tmp_path / "run", *common), env=env, cwd=REPO).returncode == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = train(TrainConfig(dataset="digits", model="mlp", width=16, n_train=300,
                                      n_test=50, chunk_size=32, h=1e-2, device="cpu", epochs=200))
    finally:
        torch.set_num_threads(threads)
    _same_history(History.read(tmp_path / "run"), reference)


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    # the arguments after -m ...
    assert main(_cli(tmp_path, "--beta", "1.5")[3:]) == ExitCode.USAGE == 2
    assert "beta must be in [0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "run.json").exists()
    with pytest.raises(SystemExit) as exit_:  # argparse: an unknown option
        main(_cli(tmp_path, "--lr", "0.1")[3:])
    assert exit_.value.code == ExitCode.USAGE


def test_cli_runs(tmp_path, capsys):
    assert main(_cli(tmp_path, "--epochs", "3")[3:]) == ExitCode.FINISHED == 0
    assert "epochs: 3 epochs done" in capsys.readouterr().out and len(History.read(tmp_path)) == 4


def test_cli_exit_codes_tell_the_outcomes_apart(tmp_path, capsys, monkeypatch):
    assert main(_cli(tmp_path / "a", "--epochs", "3", "--loss-threshold",
                     "100")[3:]) == ExitCode.FINISHED
    assert main(_cli(tmp_path / "b", "--epochs", "50", "--h", "1e30", "--dtype", "float32")[3:]) \
        == ExitCode.DIVERGED == 3
    assert main(_cli(tmp_path / "c", "--epochs", "50", "--max-time",
                     "1e-9")[3:]) == ExitCode.STOPPED == 4
    refused = main(_cli(tmp_path / "a", "--epochs", "3", "--rho", "0.9")[3:])
    assert refused == ExitCode.USAGE
    assert "--overwrite" in capsys.readouterr().err
    assert main(_cli(tmp_path / "a", "--epochs", "3", "--rho", "0.9", "--overwrite")[3:]) \
        == ExitCode.FINISHED

    def crash(*args, **kwargs):
        raise RuntimeError("boom")
    monkeypatch.setattr("bea_lib.nets.train.train", crash)
    assert main(_cli(tmp_path / "d")[3:]) == ExitCode.CRASH == 1
    assert "RuntimeError: boom" in capsys.readouterr().err  # with its traceback


def train_args(out, *args, epochs=30):
    return ["--dataset", "digits", "--model", "mlp", "--width", "16", "--h", "1e-2", "--epochs",
            str(epochs), "--n-train", "200", "--n-test", "50", "--chunk-size", "64", "--dtype",
            "float64", "--device", "cpu", "--out", str(out), *args]


HOLD = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("fileio", sys.argv[1])
fileio = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fileio)
with fileio.folder_lock(sys.argv[2], "python -m bea_lib.nets.train --out run (the first)"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_run_folder_has_one_writer(tmp_path, capsys):
    from bea_lib.nets.train import main

    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD,
                               str(REPO / "bea_lib" / "base" / "fileio.py"),
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(train_args(out, epochs=3)) == 2
        err = capsys.readouterr().err
        assert "the run folder" in err and "(the first)" in err and f"pid {holder.pid}" in err
        assert not (out / "history.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(train_args(out, epochs=3)) == 0  # the lock ended with its holder
    assert (out / "history.csv").is_file() and not (out / ".bea.lock.holder").exists()


def test_max_time_is_a_budget_per_invocation_so_reruns_make_progress(tmp_path):
    from bea_lib.nets.history import History
    from bea_lib.nets.train import main

    out = tmp_path / "run"
    epochs = []
    for _ in range(3):  # a budget of 1e-9 s: each invocation takes one step, then stops
        assert main(train_args(out, "--max-time", "1e-9", "--checkpoint-every", "1",
                               epochs=5)) == 4
        epochs.append(int(History.read(out)["epoch"][-1]))
    assert epochs == [1, 2, 3]  # before: every rerun stopped where the first had
    info = json.loads((out / "run.json").read_text())
    assert [s["from_epoch"] for s in info["segments"]] == [0, 1, 2]
    assert [s["to_epoch"] for s in info["segments"]] == [1, 2, 3]


def test_a_resume_under_changed_code_is_named_and_recorded_per_segment(tmp_path, capsys,
                                                                       monkeypatch):
    from bea_lib.base import provenance
    from bea_lib.nets.train import TrainConfig, train

    config = TrainConfig(dataset="digits", model="mlp", width=16, h=1e-2, epochs=4,
                         chunk_size=64, n_train=200, n_test=50, device="cpu", dtype="float64",
                         checkpoint_every=1)
    out = tmp_path / "run"
    train(dataclasses_replace(config, epochs=2), out)
    real = provenance.code_state
    monkeypatch.setattr(provenance, "code_state",
                        lambda: {**real(), "bea_lib_sha256": "0" * 64, "commit": "abc123"})
    train(config, out)
    assert "resuming at epoch 2 under other code" in capsys.readouterr().err
    segments = json.loads((out / "run.json").read_text())["segments"]
    assert [(s["from_epoch"], s["to_epoch"]) for s in segments] == [(0, 2), (2, 4)]
    assert segments[0]["bea_lib_sha256"] == real()["bea_lib_sha256"]
    assert segments[1]["bea_lib_sha256"] == "0" * 64 and segments[1]["commit"] == "abc123"


def dataclasses_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)




@pytest.mark.parametrize("device, message", [
    ("foo", "device must be 'cpu', 'cuda', 'cuda:N'"),
    pytest.param("cuda", "torch sees no CUDA GPU here",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
])
def test_a_bad_device_is_a_usage_error_and_leaves_no_folder(tmp_path, capsys, device, message):
    from bea_lib.nets.train import main

    out = tmp_path / "run"
    assert main([*train_args(out, epochs=3), "--device", device]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_exits_130_and_marks_the_run_interrupted(tmp_path, sig):
    from bea_lib.nets.train import main

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "bea_lib.nets.train",
                             *train_args(out, "--checkpoint-every", "1", epochs=10**6)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: list(out.glob("checkpoint-*.pt")), 120, "the first checkpoint")
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 130
    assert "interrupted" in proc.stderr.read()
    info = json.loads((out / "run.json").read_text())
    assert info["stop_reason"] == "interrupted"
    assert "rerun the same command to resume" in info["message"]
    last = info["segments"][-1]["to_epoch"]
    assert main(train_args(out, "--checkpoint-every", "1", epochs=last + 2)) == 0  # resumed
    assert json.loads((out / "run.json").read_text())["segments"][-1]["from_epoch"] == last


@pytest.mark.parametrize("data, message", [
    (lambda: load_dataset("mnist1d", n_train=200, n_test=50), "data is the mnist1d data set, "
                                                              "but the config trains on digits"),
    (lambda: load_dataset("digits", n_train=300, n_test=50), "data holds 300 train examples, but "
                                                             "the config asks for n_train=200"),
    (lambda: load_dataset("digits", n_train=200, n_test=60), "data holds 60 test examples"),
    (lambda: {"x": 1}, "data must be a Dataset"),
])
def test_data_that_is_not_the_configs_data_set_is_refused(data, message):
    """Before: train(config, data=...) trained on whatever data it was given."""
    for config in (TINY, [TINY, replace(TINY, seed=1)]):
        with pytest.raises((ValueError, TypeError), match=message):
            train(config, data=data())
    train(TINY, data=load_dataset("digits", n_train=200, n_test=50))  # the config's own


def test_the_command_line_takes_negative_numbers_in_any_notation():
    from bea_lib.nets.train import parser

    args = parser().parse_args(["--kappa", "-1e-3", "--out", "run"])
    assert args.kappa == -1e-3  # before: argparse took -1e-3 for an option
