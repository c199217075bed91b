"""``python -m bea_book sweep`` (bea_book.sweep): the networks chapter's grid at a profile as
jobs; every bad input is one line on stderr and exit status 2, before any run starts."""
import subprocess
import sys
from pathlib import Path

import pytest

from bea_book.cli import main
from bea_book.params import chapter_parameters
from bea_book.sources import BookError
from bea_lib.nets.executor import network_configs, run_name

ROOT = Path(__file__).resolve().parents[1]


def test_profiles_give_the_cells_of_the_figures_sweeps():
    params = chapter_parameters(ROOT, "networks", "smoke")
    [(label, configs)] = network_configs(params).items()
    cells = {(c.beta, c.rho) for c in configs}
    # fig4: ρ at β = 0.99; fig5 and fig6-beta: β at ρ = 0.99; fig6: ρ at β = 0.9
    assert cells == {(0.99, 0.99), (0.99, 0.9999), (0.9, 0.99), (0.9, 0.9999)}
    n = len(cells) * len(params["seeds"])
    assert len(configs) == n and len({run_name(c) for c in configs}) == n
    assert {c.diagnostics_every for c in configs} == {params["gate_every"]}
    paper = network_configs(chapter_parameters(ROOT, "networks", "paper"))
    assert list(paper) == ["resnet50", "resnet101", "resnet101-cifar100"]
    assert {c.dataset for c in paper["resnet101-cifar100"]} == {"cifar100"}
    assert {c.seed for runs in paper.values() for c in runs} == set(range(200, 212))
    # Figures 4 and 5 share one cell: 7 of ResNet-50; each panel of Figure 6 has 4
    assert [len(runs) // 12 for runs in paper.values()] == [7, 4, 4]
    bn = network_configs(chapter_parameters(ROOT, "networks", "paper-bn"))
    assert {c.norm for runs in bn.values() for c in runs} == {"batch"}
    assert {c.chunk_size for runs in bn.values() for c in runs} == {500}
    assert isinstance(params["eps"], float)  # 1e-8 read as the runner reads it, not as a string
    with pytest.raises(BookError, match="profile"):
        chapter_parameters(ROOT, "networks", "no-such-profile")


def test_a_dry_run_lists_the_jobs_of_the_profile(tmp_path, capsys):
    assert main(["sweep", "--root", str(ROOT), "--profile", "smoke", "--out", str(tmp_path),
                 "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    n = sum(map(len, network_configs(chapter_parameters(ROOT, "networks", "smoke")).values()))
    assert lines[-1] == f"{n} jobs" and len(lines) == n + 1
    assert lines[0].startswith(str(tmp_path / "mnist1d-mlp-")) and not any(tmp_path.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--profile", "nosuch"], "chapter 'networks' has no profile 'nosuch'; it has: default"),
    (["--executor", "slurm"], "--executor slurm needs Slurm, and sbatch is not on PATH here"),
    (["--threads", "-2"], "--threads must be an integer >= 1, got -2"),
    (["--workers", "-1"], "--workers must be an integer >= 0, got -1"),
])
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setattr("shutil.which", lambda name: None)  # no Slurm on this machine
    assert main(["sweep", "--root", str(ROOT), "--out", str(tmp_path / "runs"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {message}"), err
    assert not (tmp_path / "runs").exists()


def test_the_paper_profile_names_the_missing_cifar_folder_in_one_line(tmp_path, capsys):
    if (ROOT / "data" / "cifar-10-batches-py").is_dir():
        pytest.skip("CIFAR-10 is in this checkout's data/")
    assert main(["sweep", "--root", str(ROOT), "--profile", "paper", "--out", str(tmp_path),
                 "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: CIFAR-10 not found: no folder {ROOT / 'data'}")
    assert not any(tmp_path.iterdir())


def test_the_command_runs_as_a_module(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bea_book", "sweep", "--threads", "-2", "--out",
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().startswith("error: --threads")
