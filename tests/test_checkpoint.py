"""Checkpoints (``bea_lib.nets.checkpoint``): one that disagrees with itself or with the run's
model is refused by name, exit status 2, before any step (issue 32, rows 8 and 9)."""
import pytest
import torch

from bea_lib.nets import checkpoint
from bea_lib.nets.history import History
from bea_lib.nets.train import ExitCode, main

ARGS = ["--dataset", "digits", "--model", "mlp", "--width", "16", "--n-train", "200",
        "--n-test", "50", "--chunk-size", "64", "--h", "1e-2", "--device", "cpu",
        "--dtype", "float64", "--checkpoint-every", "2"]


def cli(out, epochs):
    return main([*ARGS, "--epochs", str(epochs), "--out", str(out)])


def edit_newest(out, change):
    """Load the newest checkpoint, ``change`` its state in place, save it back."""
    path = checkpoint.checkpoints(out)[-1]
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)
    return path


def cut_history(state, rows):
    state["history"] = {c: v[:rows] for c, v in state["history"].items()}


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(epoch=500), "its epoch is 500, its file name says 4"),
    (lambda s: cut_history(s, 2), "its history must hold the 4 rows before epoch 4"),
    (lambda s: s["history"].update(epoch=[0.0, 1.0, 9.0, 10.0]),
     "its history's epochs are not 0, …, 3"),
    (lambda s: s["optimizer"].update(n=7), "the optimizer's step count is 7, not the epoch 4"),
    (lambda s: s["optimizer"].update(m=torch.zeros(3)),
     "the optimizer's state is not tensors of θ's"),
    (lambda s: s.update(model=s["model"][0]), "its parameters θ are not a (1, P) tensor"),
])
def test_an_inconsistent_checkpoint_is_refused_with_exit_status_2(tmp_path, capsys, change,
                                                                  message):
    """Before: an epoch that disagreed with the history resumed, reported "500 epochs done"
    with 11 rows (or wrote a history.csv missing epochs) and exited 0."""
    out = tmp_path / "run"
    assert cli(out, 4) == ExitCode.FINISHED
    rows = len(History.read(out))
    path = edit_newest(out, change)
    assert cli(out, 8) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"checkpoint {path} is inconsistent: {message}" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert len(History.read(out)) == rows  # nothing was trained or written


def test_a_checkpoint_of_another_model_size_is_refused_with_exit_status_2(tmp_path, capsys):
    """Before: a θ of the wrong size crashed in vector_to_parameters (exit status 1, a
    traceback)."""
    out = tmp_path / "run"
    assert cli(out, 4) == ExitCode.FINISHED

    def grow(state):
        bigger = torch.zeros(1, state["model"].shape[1] + 3, dtype=state["model"].dtype)
        state.update(model=bigger)
        state["optimizer"].update(m=bigger.clone(), v=bigger.clone())

    edit_newest(out, grow)
    assert cli(out, 8) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"the checkpoint in {out} holds" in err and "but the run's model has" in err, err
    assert "Traceback" not in err


def test_a_consistent_checkpoint_still_resumes(tmp_path):
    out = tmp_path / "run"
    assert cli(out, 4) == ExitCode.FINISHED
    assert cli(out, 6) == ExitCode.FINISHED
    assert History.read(out)["epoch"].tolist() == list(range(7))
