"""The files of a run (bea_lib.nets.history): the runs stored under a results folder read back."""
import numpy as np

from bea_lib.nets.history import stored_runs
from bea_lib.nets.train import TrainConfig, train


def test_stored_runs_reads_what_train_writes(tmp_path):
    assert stored_runs(tmp_path / "missing") == []
    config = TrainConfig(dataset="digits", model="mlp", width=8, h=1e-2, epochs=3, n_train=40,
                         n_test=10, device="cpu")
    history = train(config, tmp_path / "networks" / "run-a")
    command = "python -m bea_lib.nets.train ...\n"
    (tmp_path / "networks" / "run-a" / "command.txt").write_text(command)
    (tmp_path / "networks" / "notes").mkdir()  # a folder without run.json is skipped
    runs = stored_runs(tmp_path / "networks")
    assert len(runs) == 1
    run = runs[0]
    assert run["command"] == "python -m bea_lib.nets.train ..."
    assert run["info"]["config"]["epochs"] == 3 and run["info"]["stop_reason"] == "epochs"
    # the CSV holds floats in full precision (repr), so the history reads back exactly
    np.testing.assert_array_equal(run["history"]["train_loss"], history["train_loss"])
