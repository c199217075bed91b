"""The `paper` profile of the networks chapter, end to end on a CPU: the chapter at the
`paper-dry` profile (the paper's networks, data layout, chunked full-batch gradients,
checkpoints and resumable run folders, for 2 epochs on 2 images and one seed; the windows and
the optimizers on a small MLP of the same data) on a CIFAR-shaped stand-in folder of 300
generated images, through the book runner, as a reader's GPU run would go. Its runs.csv holds every
experiment, its claims both answers; without the data it stops in one line naming the folder."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bea_lib.base.vocab import ProxyAnswer, Verdict
from bea_lib.evidence.statistics import read_runs_csv
from bea_lib.nets.checkpoint import epochs_saved
from bea_lib.nets.data import write_cifar_standin

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_dir():
    """A run folder inside the repository's results/ (where run_dir must lie), removed after."""
    folder = Path("results") / "networks" / f"test-paper-dry-{os.getpid()}"
    yield folder
    shutil.rmtree(ROOT / folder, ignore_errors=True)


def _run(tmp_path, run_dir, *params):
    args = [sys.executable, "-m", "bea_book", "run", "networks", "--profile", "paper-dry",
            "--build-dir", str(tmp_path / "build"), "-p", "run_dir", str(run_dir)]
    for name, value in params:
        args += ["-p", name, value]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_the_paper_profile_runs_end_to_end_on_a_cifar_standin(tmp_path, run_dir):
    write_cifar_standin(tmp_path / "data", 10, n_per_file=50)  # 300 images, CIFAR-10's layout
    out = _run(tmp_path, run_dir, ("data_root", str(tmp_path / "data")))
    assert out.returncode == 0, out.stdout + out.stderr
    [folder] = [p.parent for p in (tmp_path / "build" / "runs").glob("*/networks.ipynb")]
    table = read_runs_csv(folder / "runs.csv")
    experiments = {r["experiment"] for r in table}
    assert experiments == {"fig4", "fig5", "fig6", "fig4-in-range", "fig5-in-range",
                           "optimizers", "optimizer-pilot"}
    models = {r["experiment"]: r["model"] for r in table}
    assert models["fig4"] == models["fig5"] == "resnet50"
    assert models["fig6"] == "resnet101"
    assert models["fig4-in-range"] == models["optimizers"] == "mlp-dry"
    assert {r["optimizer"] for r in table if r["experiment"] == "optimizers"} == {
        "adam", "rmsprop", "gd", "heavy_ball"}
    # one resumable run folder per figure run (3 cells of ResNet-50, 2 of ResNet-101, one
    # seed), each with its checkpoint of epoch 2
    folders = sorted((ROOT / run_dir).iterdir())
    assert len(folders) == 5 and all(epochs_saved(f) == [2] for f in folders)
    assert all((f / "history.csv").is_file() and (f / "run.json").is_file() for f in folders)
    claims = json.loads((folder / "networks.claims.json").read_text())
    for name in ("fig4", "fig5", "fig6"):  # both answers, whatever they are at this size
        assert claims[f"networks/{name}-proxy"]["answer"] in set(ProxyAnswer)
    for name in ("fig4-in-range", "fig5-in-range", "fig6-gated", "optimizers-paired"):
        assert claims[f"networks/{name}"]["verdict"] in set(Verdict)
    assert claims["networks/optimizers-proxy"]["answer"] in set(ProxyAnswer)


def test_without_the_data_the_paper_profile_stops_in_one_line_naming_the_folder(tmp_path,
                                                                                run_dir):
    out = _run(tmp_path, run_dir, ("data_root", str(tmp_path / "nowhere")))
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"CIFAR-10 not found: no folder {tmp_path / 'nowhere' / 'cifar-10-batches-py'}" in (
        errors[0])
    assert not (ROOT / run_dir).exists()


@pytest.mark.parametrize("profile", ["paper", "paper-dry"])
def test_the_paper_profiles_use_the_declared_networks(profile):
    from bea_book.params import chapter_parameters

    params = chapter_parameters(ROOT, "networks", profile)
    assert params["h"] == 1e-4 and params["dataset"] == "cifar10" and params["test_every"] == 1
    assert {"resnet50", "resnet101"} <= set(params["models"])
    if profile == "paper":
        assert params["seeds"] == list(range(200, 212)) and params["epochs"] == 3600
        assert params["dtype"] == "float64" and params["device"] == "cuda"
