"""A sweep's runs trained together (``bea_lib.nets.batched.train_batched``) against one run alone.

For k runs of the MNIST-1D MLP (the networks chapter's model: different seeds and (β, ρ)),
the wall time of the batch is compared with the wall time of one run trained alone by
``bea_lib.nets.train.train`` for the same epochs. Sequential training of the k runs costs about
k times one run, so the batch is worth it when its ratio to one run is well below k (the goal
for k = 16: at most 3, i.e. more than 5 times faster than one after another). Both are
measured in this process, alternated, ``--repeats`` times; the table gives the median of the
per-repeat ratios (machine noise hits both sides alike) and the best times.

    python benchmarks/bench_batched.py --threads 1 [--epochs 50] [--repeats 3]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import torch

from bea_lib.nets.batched import train_batched
from bea_lib.nets.train import TrainConfig, train


def configs(k: int, base: TrainConfig) -> list[TrainConfig]:
    """k runs that differ in seed and (β, ρ), as in a sweep."""
    cells = [(b, r) for b in (0.9, 0.97, 0.99, 0.5) for r in (0.99, 0.999, 0.9999, 0.995)]
    return [dataclasses.replace(base, seed=i, beta=cells[i % 16][0], rho=cells[i % 16][1])
            for i in range(k)]


def seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--n-train", type=int, nargs="+", default=[4000, 1000, 250])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch threads: {args.threads}; {args.epochs} epochs; median of {args.repeats} "
          f"per-repeat ratios; load average at the start {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs (on a shared machine, read the ratios, not the times)")
    print("| N (train) | k | one run alone (s) | k runs batched (s) | batched / one | "
          "speed-up over sequential (k × one / batched) |")
    print("|---|---|---|---|---|---|")
    for n in args.n_train:
        base = TrainConfig(dataset="mnist1d", model="mlp", h=1e-2, epochs=args.epochs,
                           test_every=5, n_train=n, device="cpu")
        train(dataclasses.replace(base, epochs=2))  # warm-up: data, allocator
        for k in args.ks:
            runs = configs(k, base)
            one, batch = [], []
            for _ in range(args.repeats):
                one.append(seconds(lambda: train(base)))
                batch.append(seconds(lambda: train_batched(runs)))
            ratio = statistics.median(b / o for b, o in zip(batch, one))
            print(f"| {n} | {k} | {min(one):.2f} | {min(batch):.2f} | {ratio:.2f} | "
                  f"{k / ratio:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
