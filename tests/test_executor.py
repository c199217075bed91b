"""The sweep executor: jobs run in local processes or through submitit's local executor give
the histories of ``train`` run in this process, and a job started again resumes, not restarts.

Runs are tiny (scikit-learn's digits, quick to load in a fresh process; 64 examples, an MLP
of width 4, 3 epochs) and in float64; the histories of the same run in two processes agree
exactly on CPU (the same code on the same data with one thread), so the comparisons are exact
except ``wall_time``.
"""
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import pytest

from bea_lib.nets.executor import (Job, run_job, run_key, run_local, run_name, run_submitit,
                                   train_runs)
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


def test_train_runs_batches_each_model_in_memory_or_runs_jobs_in_a_folder(tmp_path):
    configs = [dataclasses.replace(BASE, checkpoint_every=0, seed=s, beta=b)
               for s in (0, 1) for b in (0.5, 0.9)]
    runs = train_runs(configs)
    assert list(runs) == [run_key(c) for c in configs]
    for c, alone in zip(configs, train(configs)):  # the same batch
        _same(runs[run_key(c)], alone)
    jobs = train_runs(configs, run_dir=tmp_path, workers=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(run_name(c) for c in configs)
    for c in configs:
        _same(jobs[run_key(c)], train(c))


def test_a_finished_job_run_again_returns_at_once_without_checkpoints(tmp_path):
    from bea_lib.nets.executor import Job, run_job
    from bea_lib.nets.train import TrainConfig

    config = TrainConfig(dataset="digits", model="mlp", width=16, h=1e-2, epochs=3,
                         chunk_size=64, n_train=200, n_test=50, device="cpu", dtype="float64")
    job = Job(config, tmp_path / "job")
    first = run_job(job)
    stamp = (tmp_path / "job" / "history.csv").stat().st_mtime_ns
    start = time.monotonic()
    again = run_job(job)  # before: RunFileError (a history without a checkpoint)
    assert time.monotonic() - start < 5.0  # no data loaded, nothing trained
    assert again == first
    assert (tmp_path / "job" / "history.csv").stat().st_mtime_ns == stamp
