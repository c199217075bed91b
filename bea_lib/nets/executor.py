r"""A sweep as a list of independent runs, executed by local processes or on a Slurm cluster.

A *job* is one :func:`bea_lib.nets.train.train` call with its own run folder, so a job killed
and started again resumes from its last checkpoint, and a finished one returns its stored
history at once. Jobs share nothing: :func:`run_local` runs them in a pool of local processes,
:func:`run_submitit` as a Slurm job array through ``submitit`` (``pip install
"bea_lib[cluster]"``; ``cluster="local"``: submitit's local executor).

:func:`network_configs` is the one description of the networks chapter's runs (the cells of
the paper's sweeps, :func:`sweeps`, per network), which the chapter trains (:func:`train_runs`)
and ``python -m bea_book sweep`` launches as jobs.
"""
from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .history import History
from .train import TrainConfig, train


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
        raise ValueError("jobs must have distinct out_dir folders: two would share checkpoints")
    return jobs


def run_local(jobs, *, workers: int | None = None, threads: int = 1) -> list[Outcome]:
    """Run ``jobs`` in a pool of ``workers`` local processes (None: one per CPU core; 0: in this
    process, one after another); outcomes in the order of ``jobs``."""
    jobs = _check_jobs(jobs)
    if workers is None:
        workers = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count())
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 or None, got {workers!r}")
    if workers == 0 or len(jobs) <= 1:
        return [run_job(job, threads) for job in jobs]
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no forked torch state in the workers
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        return list(pool.map(run_job, jobs, [threads] * len(jobs)))


def run_submitit(jobs, *, folder: str | Path, cluster: str | None = None,
                 threads: int | None = None, **parameters) -> list[Outcome]:
    """Run ``jobs`` as one submitit job array and wait for them; outcomes in order. ``cluster``
    is submitit's (None: Slurm if ``sbatch`` is found, else local), ``parameters`` go to
    ``AutoExecutor.update_parameters`` (``timeout_min``, ``slurm_partition``, ...), its logs to
    ``folder``; a job killed at its time limit resumes when the sweep is submitted again."""
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


def run_key(config: TrainConfig) -> tuple:
    """The key of a run of the networks chapter's grid: (model, β, ρ, seed)."""
    return config.model, config.beta, config.rho, config.seed


def train_runs(configs: list[TrainConfig], *, run_dir=None, workers=None) -> dict[tuple, History]:
    """Every run of ``configs`` by :func:`run_key`: in memory, one batch per model, or, with a
    ``run_dir``, one resumable job each there (:func:`run_local`, ``workers`` processes)."""
    if run_dir is not None:
        jobs = [Job(c, Path(run_dir) / run_name(c)) for c in configs]
        run_local(jobs, workers=workers)
        return {run_key(j.config): History.read(j.out_dir) for j in jobs}
    out = {}
    for model in dict.fromkeys(c.model for c in configs):
        batch = [c for c in configs if c.model == model]
        out.update(zip(map(run_key, batch), train(batch)))
    return {run_key(c): out[run_key(c)] for c in configs}


# ---------------------------------------------------------------------------------------------
# The networks chapter's grid


class Sweep(NamedTuple):
    """One sweep of the paper's network figures: its cells (β, ρ), the swept index (0: β, 1: ρ)
    and its axis label."""

    cells: list[tuple[float, float]]
    index: int
    label: str


SWEEPS = ("fig4", "fig5", "fig6", "fig6-beta")


def sweeps(*, beta_grid, rho_grid, beta_fig4: float, rho_fig5: float,
           beta_fig6: float) -> dict[str, Sweep]:
    """The sweeps the paper's figures read: ``fig4`` ρ at β = ``beta_fig4``, ``fig5`` β at
    ρ = ``rho_fig5``, ``fig6`` ρ at β = ``beta_fig6`` (the paper's CIFAR-100 panel) and
    ``fig6-beta`` β at ρ = ``rho_fig5`` (its CIFAR-10 panel, the cells of ``fig5``)."""
    return {"fig4": Sweep([(beta_fig4, r) for r in rho_grid], 1, f"ρ (β = {beta_fig4:g})"),
            "fig5": Sweep([(b, rho_fig5) for b in beta_grid], 0, f"β (ρ = {rho_fig5:g})"),
            "fig6": Sweep([(beta_fig6, r) for r in rho_grid], 1, f"ρ (β = {beta_fig6:g})"),
            "fig6-beta": Sweep([(b, rho_fig5) for b in beta_grid], 0, f"β (ρ = {rho_fig5:g})")}


def network_settings(label: str, own: dict) -> tuple[str, str | None, list[str], dict]:
    """A network of the chapter's ``models`` (label -> settings): its model (default: the
    label), its data set (None: the chapter's), the sweeps it runs (default: all of
    :data:`SWEEPS`) and its other TrainConfig fields."""
    own = dict(own)
    model, dataset = own.pop("model", label), own.pop("dataset", None)
    runs = list(own.pop("sweeps", SWEEPS))
    unknown = [s for s in runs if s not in SWEEPS]
    if unknown:
        raise ValueError(f"models[{label!r}] sweeps must be among {', '.join(SWEEPS)}, got "
                         f"{unknown}")
    return model, dataset, runs, own


def network_base(params: dict, label: str) -> TrainConfig:
    """The run of the network ``label`` of the chapter's ``models`` before its cell and seed:
    the chapter's settings (the keys :func:`network_configs` reads) with the label's own."""
    base = TrainConfig(dataset=params["dataset"], eps=params["eps"], h=params["h"],
                       epochs=params["epochs"], test_every=params["test_every"],
                       n_train=params.get("n_train"), n_test=params.get("n_test"),
                       device=params.get("device"), data_root=str(params.get("data_root", "data")),
                       chunk_size=params.get("chunk_size") or 1000,
                       checkpoint_every=params.get("checkpoint_every") or 0,
                       diagnostics_every=params.get("gate_every") or 0, sharpness=False,
                       dtype=params.get("dtype", "float64"))
    model, dataset, _, fields = network_settings(label, params["models"][label])
    return dataclasses.replace(base, model=model, dataset=dataset or base.dataset, **fields)


def network_configs(params: dict) -> dict[str, list[TrainConfig]]:
    """The runs of the networks chapter's figures for its parameters ``params`` (the chapter's
    parameters cell with a profile's overrides): per network label of ``models``, the cells of
    the sweeps it runs (:func:`sweeps`) × ``seeds``, in that order.

    Keys read: ``dataset, models, seeds, h, eps, epochs, beta_grid, rho_grid, beta_fig4,
    rho_fig5, beta_fig6, test_every, gate_every, n_train, n_test, device, data_root, chunk_size,
    checkpoint_every, dtype``. ``models`` maps a label to its settings
    (:func:`network_settings`): ``model``, ``dataset``, ``sweeps`` and any TrainConfig field
    that differs for it (``width``, ``n_train``, ``epochs``, ``norm``, ``chunk_size``, ...).
    """
    grid = sweeps(**{k: params[k] for k in ("beta_grid", "rho_grid", "beta_fig4", "rho_fig5",
                                             "beta_fig6")})
    out = {}
    for label, own in params["models"].items():
        runs = network_settings(label, own)[2]
        cells = list(dict.fromkeys(c for name in runs for c in grid[name].cells))
        base = network_base(params, label)
        out[label] = [dataclasses.replace(base, beta=beta, rho=rho, seed=seed)
                      for beta, rho in cells for seed in params["seeds"]]
    return out
