"""``python -m bea_book sweep``: the networks chapter's runs at a profile, as independent jobs.

The chapter's parameters at the profile are read as the runner reads them
(:func:`bea_book.params.chapter_parameters`); :func:`bea_lib.nets.executor.network_configs`
turns them into the runs of the chapter's grid, one resumable run folder each under ``--out``,
executed by local processes or as a Slurm job array (submitit). The chapter, run at the same
profile with ``-p run_dir OUT``, reads the finished runs::

    python -m bea_book sweep --profile paper --out results/networks/paper \\
        --executor slurm --slurm-partition gpu --gpus-per-node 1 --timeout-min 1440

A bad value, an unknown profile, a Slurm executor without Slurm or a missing CIFAR folder
(named, with the remedy) is one line on stderr and exit status 2, before any run starts.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import shutil
import sys
from pathlib import Path

from .params import chapter_parameters
from .sources import BookError

EXECUTORS = ("local", "slurm", "submitit-local")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sweep``."""
    parser.add_argument("--root", type=Path, default=Path("."),
                        help="directory holding _toc.yml (default: the current one)")
    parser.add_argument("--profile", default="default", help="default or a networks profile "
                        "of book/profiles.yml (smoke, paper, paper-bn)")
    parser.add_argument("--out", required=True, type=Path,
                        help="root folder: one run folder per job")
    parser.add_argument("--executor", choices=EXECUTORS, default="local")
    parser.add_argument("--workers", type=int, default=None,
                        help="local processes (default: one per core)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--timeout-min", type=int, default=24 * 60,
                        help="Slurm time limit per job, in minutes")
    parser.add_argument("--slurm-partition", default=None)
    parser.add_argument("--gpus-per-node", type=int, default=None)
    parser.add_argument("--cpus-per-task", type=int, default=None)
    parser.add_argument("--dry-run", action="store_true", help="list the jobs and stop")


def _check(args) -> None:
    """Refuse, before anything runs, what would fail later (a BookError naming it)."""
    for name in ("threads", "timeout_min", "gpus_per_node", "cpus_per_task", "workers"):
        value, least = getattr(args, name), 0 if name == "workers" else 1
        if value is not None and value < least:
            raise BookError(f"--{name.replace('_', '-')} must be an integer >= {least}, "
                            f"got {value}")
    if args.executor != "local" and importlib.util.find_spec("submitit") is None:
        raise BookError(f"--executor {args.executor} needs submitit: "
                        "pip install 'bea_lib[cluster]'")
    if args.executor == "slurm" and shutil.which("sbatch") is None:
        raise BookError("--executor slurm needs Slurm, and sbatch is not on PATH here; use "
                        "--executor local, or submit from a cluster's login node")


def sweep(args) -> int:
    """Run ``sweep`` with parsed ``args``; the exit status (2: a usage error, one line)."""
    from bea_lib.nets.data import check_local_data
    from bea_lib.nets.executor import Job, network_configs, run_local, run_name, run_submitit

    try:
        _check(args)
        params = chapter_parameters(args.root.resolve(), "networks", args.profile)
        jobs = [Job(c, args.out / run_name(c)) for runs in network_configs(params).values()
                for c in runs]
        for dataset, root in dict.fromkeys((j.config.dataset, j.config.data_root) for j in jobs):
            # relative to the book's root, as the chapter reads it
            check_local_data(dataset, args.root.resolve() / root)
    except (BookError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        for job in jobs:
            print(job.out_dir, json.dumps(dataclasses.asdict(job.config)))
        print(f"{len(jobs)} jobs")
        return 0
    if args.executor == "local":
        outcomes = run_local(jobs, workers=args.workers, threads=args.threads)
    else:
        slurm = {k: v for k in ("slurm_partition", "gpus_per_node", "cpus_per_task")
                 if (v := getattr(args, k)) is not None}
        outcomes = run_submitit(jobs, folder=args.out / "submitit", threads=args.threads,
                                cluster="local" if args.executor == "submitit-local" else "slurm",
                                timeout_min=args.timeout_min, **slurm)
    for o in outcomes:
        print(f"{o.stop_reason}: {o.epochs_done} epochs in {o.out_dir}")
    return 0  # a diverged run is a result of the sweep (the regime map), not a failure
