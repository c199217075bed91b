"""The sweep executor: jobs run in local processes or through submitit's local executor give
the histories of ``train`` run in this process, and a job started again resumes, not restarts.

Runs are tiny (scikit-learn's digits, quick to load in a fresh process; 64 examples, an MLP
of width 4, 3 epochs) and in float64; the histories of the same run in two processes agree
exactly on CPU (the same code on the same data with one thread), so the comparisons are exact
except ``wall_time``.
"""
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from bea_book.params import chapter_parameters
from bea_book.sources import BookError
from bea_lib.nets.executor import (Job, network_configs, run_job, run_local, run_name,
                                   run_submitit)
from bea_lib.nets.history import History
from bea_lib.nets.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
BASE = TrainConfig(dataset="digits", model="mlp", width=4, epochs=3, n_train=64, n_test=16,
                   dtype="float64", device="cpu", checkpoint_every=1)


def _jobs(tmp_path, seeds=(0, 1)):
    configs = [dataclasses.replace(BASE, seed=s, beta=b) for s in seeds for b in (0.5, 0.9)]
    return [Job(c, tmp_path / run_name(c)) for c in configs]


def _same(a: History, b: History):
    for column in a.columns:
        if column != "wall_time":
            np.testing.assert_array_equal(a[column], b[column], err_msg=column)


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    # child processes (spawned workers, submitit's) import bea_lib from this checkout
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def test_local_processes_give_the_in_process_histories(tmp_path):
    jobs = _jobs(tmp_path)
    outcomes = run_local(jobs, workers=2)
    assert [o.out_dir for o in outcomes] == [str(j.out_dir) for j in jobs]
    assert all(o.stop_reason == "epochs" and o.epochs_done == 3 for o in outcomes)
    for job in jobs:
        _same(History.read(job.out_dir), train(dataclasses.replace(job.config, checkpoint_every=0)))


def test_a_job_started_again_resumes_from_its_checkpoint(tmp_path):
    job = _jobs(tmp_path, seeds=(0,))[0]
    run_job(dataclasses.replace(job, config=dataclasses.replace(job.config, epochs=2)))
    first = History.read(job.out_dir)
    assert len(first) == 3  # rows 0, 1, 2
    run_job(job)  # one more epoch, from the checkpoint at epoch 2
    longer = History.read(job.out_dir)
    assert len(longer) == 4
    np.testing.assert_array_equal(longer["wall_time"][:2], first["wall_time"][:2])  # rows kept
    _same(longer, train(dataclasses.replace(job.config, checkpoint_every=0)))


def test_submitit_local_executor(tmp_path):
    pytest.importorskip("submitit")
    jobs = _jobs(tmp_path, seeds=(0,))
    outcomes = run_submitit(jobs, folder=tmp_path / "submitit", cluster="local", timeout_min=5)
    assert all(o.stop_reason == "epochs" for o in outcomes)
    for job in jobs:
        _same(History.read(job.out_dir), train(dataclasses.replace(job.config, checkpoint_every=0)))


def test_jobs_must_not_share_a_folder(tmp_path):
    job = _jobs(tmp_path, seeds=(0,))[0]
    with pytest.raises(ValueError, match="distinct out_dir"):
        run_local([job, job], workers=0)
    with pytest.raises(ValueError, match="workers"):
        run_local([job], workers=-1)


def test_profiles_give_the_chapters_grid():
    params = chapter_parameters(ROOT, "networks", "smoke")
    configs = network_configs(params)
    cells = len(params["beta_grid"]) * len(params["rho_grid"])
    n = cells * sum(len(own["seeds"]) for own in params["models"].values())
    assert len(configs) == n and len({run_name(c) for c in configs}) == n
    bn = network_configs(chapter_parameters(ROOT, "networks", "paper-bn"))
    assert {c.norm for c in bn} == {"batch"} and {c.chunk_size for c in bn} == {500}
    assert isinstance(params["eps"], float)  # 1e-8 read as the runner reads it, not as a string
    with pytest.raises(BookError, match="profile"):
        chapter_parameters(ROOT, "networks", "no-such-profile")
