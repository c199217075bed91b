r"""A sweep as a list of independent runs, executed by local processes or on a Slurm cluster.

A *job* is one :func:`bea_lib.nets.train.train` call with its own run folder. Each job writes
``history.csv``, ``run.json`` and checkpoints there, so a job that is killed (a wall-clock limit,
a preempted node) and started again resumes from its last checkpoint, and a finished job that is
started again returns at once with its stored history. Jobs share nothing, so they may run in any
order and on any machine that sees the folder:

- :func:`run_local`: a pool of local processes (by default one per CPU core, each with one
  torch thread; ``workers=0`` runs them one after another in this process);
- :func:`run_submitit`: one Slurm array task per job through ``submitit`` (the optional extra
  ``cluster``: ``pip install "bea_lib[cluster]"``); ``cluster="local"`` runs submitit's local
  executor, which the tests use.

The jobs of the networks chapter come from :func:`network_configs`, the one description of its
grid, used by the chapter itself too. One command line launches a profile's sweep::

    python -m bea_lib.nets.executor --profile paper --out results/networks/paper \
        --executor slurm --slurm-partition gpu --gpus-per-node 1 --timeout-min 1440

and the chapter, run at the same profile with ``-p run_dir results/networks/paper``, reads the
finished runs (resuming any that are missing). ``--dry-run`` lists the jobs without running them.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .train import TrainConfig


@dataclass(frozen=True)
class Job:
    """One run of a sweep: its configuration and its folder (``history.csv``, checkpoints)."""

    config: TrainConfig
    out_dir: Path


@dataclass(frozen=True)
class Outcome:
    """What a finished job reports back: where it ran to and why it stopped."""

    out_dir: str
    stop_reason: str
    epochs_done: int


def run_name(config: TrainConfig) -> str:
    """The folder name of a run: the fields that tell the runs of the networks sweeps apart."""
    return (f"{config.dataset}-{config.model}-h={config.h:g}-beta={config.beta:g}-"
            f"rho={config.rho:g}-seed={config.seed}")


def run_job(job: Job, threads: int | None = 1) -> Outcome:
    """Train one job in this process (resuming from its folder); ``threads`` torch threads."""
    import torch

    from .train import train

    if threads is not None:
        torch.set_num_threads(threads)
    job.out_dir.mkdir(parents=True, exist_ok=True)
    history = train(job.config, job.out_dir)
    return Outcome(str(job.out_dir), history.stop_reason, len(history) - 1)


def _check_jobs(jobs) -> list[Job]:
    jobs = list(jobs)
    for i, job in enumerate(jobs):
        if not isinstance(job, Job):
            raise ValueError(f"jobs[{i}] must be a Job, got {type(job).__name__}")
    folders = [j.out_dir.resolve() for j in jobs]
    if len(set(folders)) != len(folders):
        raise ValueError("jobs must have distinct out_dir folders: two runs would share checkpoints")
    return jobs


def run_local(jobs, *, workers: int | None = None, threads: int = 1) -> list[Outcome]:
    """Run ``jobs`` in a pool of ``workers`` local processes (None: one per CPU core; 0: in this
    process, one after another); outcomes in the order of ``jobs``."""
    jobs = _check_jobs(jobs)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 or None, got {workers!r}")
    if workers == 0 or len(jobs) <= 1:
        return [run_job(job, threads) for job in jobs]
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no forked torch state in the workers
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        return list(pool.map(run_job, jobs, [threads] * len(jobs)))


def run_submitit(jobs, *, folder: str | Path, cluster: str | None = None, threads: int | None = None,
                 **parameters) -> list[Outcome]:
    """Run ``jobs`` as one submitit job array and wait for them; outcomes in order.

    ``cluster`` is submitit's (None: Slurm when ``sbatch`` is found, else local; ``"local"``:
    local processes; ``"slurm"``). ``parameters`` go to ``AutoExecutor.update_parameters``
    (``timeout_min``, ``slurm_partition``, ``gpus_per_node``, ``cpus_per_task``, ...). A job
    that hits its time limit is killed; submitting the sweep again resumes it from its
    checkpoint. submitit's logs go to ``folder``.
    """
    try:
        import submitit
    except ImportError as err:  # the optional extra
        raise ImportError('run_submitit needs submitit: pip install "bea_lib[cluster]"') from err
    jobs = _check_jobs(jobs)
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    if parameters:
        executor.update_parameters(**parameters)
    submitted = executor.map_array(run_job, jobs, [threads] * len(jobs))
    return [s.result() for s in submitted]


# ---------------------------------------------------------------------------------------------
# The networks chapter's grid


def network_configs(params: dict) -> list[TrainConfig]:
    """The runs of the networks chapter for its parameters ``params`` (the chapter's parameters
    cell with a profile's overrides): every model × (β, ρ) cell of the grid × seed.

    Keys read: ``dataset, models, h, eps, epochs, beta_grid, rho_grid, test_every, n_train,
    n_test, device, data_root, chunk_size, checkpoint_every``, and ``dtype`` if given.
    ``models`` maps a model name to its own settings: ``seeds`` (a list), optionally
    ``read_below`` (a loss threshold at which the chapter reads metrics; not a setting of the
    runs) and any TrainConfig field that differs for it (``width``, ``n_train``, ``epochs``,
    ``norm``, ``chunk_size``, ...).
    """
    base = TrainConfig(dataset=params["dataset"], eps=params["eps"], h=params["h"],
                       epochs=params["epochs"], test_every=params["test_every"],
                       n_train=params.get("n_train"), n_test=params.get("n_test"),
                       device=params.get("device"), data_root=str(params.get("data_root", "data")),
                       chunk_size=params.get("chunk_size") or 1000,
                       checkpoint_every=params.get("checkpoint_every") or 0,
                       **({"dtype": params["dtype"]} if params.get("dtype") else {}))
    configs = []
    for model, own in params["models"].items():
        own = dict(own)
        seeds = own.pop("seeds")
        own.pop("read_below", None)
        model_base = dataclasses.replace(base, model=model, **own)
        configs += [dataclasses.replace(model_base, beta=beta, rho=rho, seed=seed)
                    for beta in params["beta_grid"] for rho in params["rho_grid"] for seed in seeds]
    return configs


def main(argv=None) -> int:
    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(prog="python -m bea_lib.nets.executor",
                                     description="Run the networks chapter's sweep at a profile, "
                                     "one resumable job per run.")
    parser.add_argument("--profile", default="default", help="default or a networks profile "
                        "of book/profiles.yml (smoke, paper, paper-bn)")
    parser.add_argument("--out", required=True, help="root folder: one run folder per job")
    parser.add_argument("--executor", choices=("local", "slurm", "submitit-local"), default="local")
    parser.add_argument("--workers", type=int, default=None, help="local processes (default: cores)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--timeout-min", type=int, default=24 * 60, help="Slurm time limit per job")
    parser.add_argument("--slurm-partition", default=None)
    parser.add_argument("--gpus-per-node", type=int, default=None)
    parser.add_argument("--cpus-per-task", type=int, default=None)
    parser.add_argument("--dry-run", action="store_true", help="list the jobs and stop")
    args = parser.parse_args(argv)
    from bea_book.params import chapter_parameters  # the runner's reading of the chapter

    params = chapter_parameters(root, "networks", args.profile)
    out = Path(args.out)
    jobs = [Job(c, out / run_name(c)) for c in network_configs(params)]
    if args.dry_run:
        for job in jobs:
            print(job.out_dir, json.dumps(dataclasses.asdict(job.config)))
        print(f"{len(jobs)} jobs")
        return 0
    if args.executor == "local":
        outcomes = run_local(jobs, workers=args.workers, threads=args.threads)
    else:
        slurm = {k: v for k, v in (("slurm_partition", args.slurm_partition),
                                   ("gpus_per_node", args.gpus_per_node),
                                   ("cpus_per_task", args.cpus_per_task)) if v is not None}
        outcomes = run_submitit(jobs, folder=out / "submitit",
                                cluster="local" if args.executor == "submitit-local" else "slurm",
                                threads=args.threads, timeout_min=args.timeout_min, **slurm)
    for o in outcomes:
        print(f"{o.stop_reason}: {o.epochs_done} epochs in {o.out_dir}")
    return 0  # a diverged run is a result of the sweep (the regime map), not a failure


if __name__ == "__main__":
    sys.exit(main())
