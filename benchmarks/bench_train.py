"""Cost of full-batch training with bea_lib.nets.train against a plain PyTorch loop; peak memory.

1. Time per epoch of ``bea_lib.nets.train.train`` (chunked gradient pass with train loss and
   accuracy, gradient norms, Adam step, history; with and without a test evaluation every epoch)
   against a plain loop that accumulates the same gradient (same model, data, chunk size and
   Adam): zero the gradients, forward and backward each chunk with a summed loss, divide by N,
   step. Both in this process, alternated; times are the best of ``--repeats``, ratios the median
   of the per-repeat ratios.
2. Peak memory of training above the memory after a warm-up run, in a fresh process per setting (the
   high-water mark of the resident set, reset through /proc/self/clear_refs; Linux only), at two
   training-set sizes N: with a fixed chunk it stays put, with one chunk of N it grows with N.

    python benchmarks/bench_train.py [--threads 2] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from bea_lib.nets.data import load_dataset
from bea_lib.core.optimizers import Adam
from bea_lib.nets.config import TrainConfig, build_model
from bea_lib.nets.train import train


def plain_loop_seconds(config: TrainConfig, epochs: int) -> float:
    """Seconds per epoch of the plain loop on the model and data of ``config``."""
    data = load_dataset(config.dataset, n_train=config.n_train).to("cpu",
                                                                   getattr(torch, config.dtype))
    model = build_model(config, data.input_shape, data.n_classes)
    opt = Adam(model.parameters(), lr=config.h, beta=config.beta, rho=config.rho, eps=config.eps)
    x, y, n, c = data.x_train, data.y_train, len(data.x_train), config.chunk_size
    t0 = time.perf_counter()
    for _ in range(epochs):
        opt.zero_grad()
        for i in range(0, n, c):
            F.cross_entropy(model(x[i:i + c]), y[i:i + c], reduction="sum").backward()
        for p in model.parameters():
            p.grad /= n
        opt.step()
    return (time.perf_counter() - t0) / epochs


def train_seconds(config: TrainConfig) -> float:
    """Seconds per epoch of train(): from the end of row 0 to the end of the last row."""
    hist = train(config)
    return (hist["wall_time"][-1] - hist["wall_time"][0]) / config.epochs


def timing_table(repeats: int) -> list[str]:
    cases = [("mnist1d", "mlp", 4000, 300), ("mnist1d", "mlp", 500, 300),
             ("mnist1d", "cnn", 1000, 20), ("digits", "cnn", 500, 40)]
    lines = ["| data | model | chunk | plain loop (ms/epoch) | train, test every epoch (ms) "
             "| ratio | train, no test eval (ms) | ratio |", "|---|---|---|---|---|---|---|---|"]
    for dataset, model, chunk, epochs in cases:
        cfg = TrainConfig(dataset=dataset, model=model, chunk_size=chunk, epochs=epochs,
                          device="cpu")
        load_dataset(dataset)  # generate and cache the data outside the timings
        plain, with_test, no_test = [], [], []
        for _ in range(repeats):
            plain.append(plain_loop_seconds(cfg, epochs))
            with_test.append(train_seconds(cfg))
            no_test.append(train_seconds(replace(cfg, test_every=epochs + 1)))
        # the three run in turn within each repeat; ratios are taken per repeat, then the median,
        # so that a slow spell of the machine hits both sides of a ratio alike
        p, a, b = min(plain), min(with_test), min(no_test)
        ra = statistics.median(x / y for x, y in zip(with_test, plain))
        rb = statistics.median(x / y for x, y in zip(no_test, plain))
        lines.append(f"| {dataset} | {model} | {chunk} | {1e3 * p:.2f} | {1e3 * a:.2f} | {ra:.2f} "
                     f"| {1e3 * b:.2f} | {rb:.2f} |")
    return lines


def _peak_child(n_train: int, chunk: int) -> None:
    """In a fresh process: MiB of resident memory an epoch adds to what loading left."""
    cfg = TrainConfig(dataset="mnist1d", model="cnn", width=64, chunk_size=chunk, epochs=2,
                      device="cpu", n_train=n_train, n_test=100)
    train(replace(cfg, epochs=0))  # warm-up: libraries, allocator and caches in place
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark VmHWM to the current resident set

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024

    before = status("VmRSS:")
    train(cfg)
    print(json.dumps({"peak_mib": status("VmHWM:") - before}))


def memory_table() -> list[str]:
    lines = ["| N (MNIST-1D, CNN width 64) | chunk | peak memory above baseline (MiB) |",
             "|---|---|---|"]
    for n in (1000, 4000):
        for chunk in (250, n):
            out = subprocess.run([sys.executable, __file__, "--peak-child", str(n), str(chunk)],
                                 capture_output=True, text=True, check=True,
                                 env={**os.environ, "TQDM_DISABLE": "1"}).stdout
            lines.append(f"| {n} | {chunk} | {json.loads(out.splitlines()[-1])['peak_mib']:.0f} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timings per case; the best is reported")
    parser.add_argument("--peak-child", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.peak_child:
        return _peak_child(*args.peak_child)
    os.environ["TQDM_DISABLE"] = "1"
    print(f"torch {torch.__version__}, {args.threads} threads, float32; times: best of "
          f"{args.repeats}, ratios: median of the per-repeat ratios\n")
    print("\n".join(timing_table(args.repeats)) + "\n")
    t0 = time.perf_counter()
    hist = train(TrainConfig(dataset="mnist1d", model="mlp", epochs=1000, device="cpu"))
    print(f"one run, MNIST-1D, default MLP (40-32-32-10), 1000 epochs, test every epoch: "
          f"{time.perf_counter() - t0:.1f} s, final train loss {hist['train_loss'][-1]:.3f}\n")
    print("\n".join(memory_table()))


if __name__ == "__main__":
    main()
