"""Two CPU processes under torchrun (gloo) train as one: each takes half of the data and the
gradient sums are all-reduced."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from bea_lib.nets.distributed import Comm
from bea_lib.nets.history import COLUMNS, History
from bea_lib.nets.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]


def test_slices_cover_the_data_once():
    for n in (0, 1, 7, 10):
        parts = [range(n)[Comm(rank, 3).slice(n)] for rank in range(3)]
        assert [i for part in parts for i in part] == list(range(n))


def test_two_processes_equal_one(tmp_path):
    config = TrainConfig(dataset="digits", model="cnn", width=8, h=1e-2, epochs=8, chunk_size=16,
                         # odd N: unequal slices
                         n_train=101, n_test=31, device="cpu", dtype="float64")
    args = ["--dataset", "digits", "--model", "cnn", "--width", "8", "--h", "1e-2", "--epochs", "8",
            "--chunk-size", "16", "--n-train", "101", "--n-test", "31", "--device", "cpu",
            "--dtype", "float64", "--out", str(tmp_path)]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", "-m", "bea_lib.nets.train", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two, one = History.read(tmp_path), train(config)
    assert len(two) == len(one) == 9
    for c in COLUMNS:
        if c != "wall_time":
            # float64 sums added in another order (two halves, then all-reduce): measured 3e-16,
            # carried through 8 Adam steps; a lost or doubled slice would change values by O(1e-2)
            np.testing.assert_allclose(two[c], one[c], rtol=1e-12, atol=0, err_msg=c)
