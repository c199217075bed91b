"""A sweep's runs trained together (``bea_lib.nets.train.train`` of a list) against one alone.

For k runs of the networks chapter's models on MNIST-1D (the MLP of width 32, and the CNN of
width 8; different seeds and (β, ρ)), the wall time of the batch is compared with the wall time
of one run trained alone by ``bea_lib.nets.train.train`` for the same epochs. Sequential
training of the k runs costs about k times one run, so the batch is worth it when its ratio to
one run is well below k (the goal for k = 16 MLP runs: at most 3, i.e. more than 5 times faster
than one after another). Both are measured in this process, alternated, ``--repeats`` times;
the table gives the median of the per-repeat ratios (machine noise hits both sides alike) and
the best times.

Why the goal is met at some sizes and not at others: the batch does k times the arithmetic of
one run, so its speed-up over sequential training is exactly the ratio of the two achieved FLOP
rates, (k · one) / batch = rate(batch) / rate(one). The FLOPs are counted analytically: the
matrix products of the forward pass (2 · in · out per linear layer, 2 · L_out · out · in · width
per convolution, per example), twice that for the backward pass less the first layer's input
gradient, over the N training examples every epoch and the test examples every ``test_every``
epochs; elementwise work (activations, softmax, Adam) is left out, so the rates are slight
underestimates. Two rates bound the batch's: this machine's float32 peak (one large matrix
product) and, nearer, the rate of the batch's own typical product alone (the k per-run
products of a hidden layer: (k, w, w) · (k, w, N) for the MLP of width w, (k, w, 3w) ·
(k, 3w, L · N) for the CNN's second convolution), both measured in the same process. The
last column, that product's rate over one run's, is the speed-up the batch could reach if it
did nothing but such products. Where one run alone already computes at a fair fraction of that
rate (large N), the step is arithmetic-bound and the ceiling is low: no batching gains more.
Where one run is mostly Python overhead (small N), the ceiling is high, and the batch's own
elementwise work and memory traffic (the CNN's windows above all) decide how much of it is
reached.

    python benchmarks/bench_batched.py --threads 1 [--epochs 50] [--repeats 3]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import torch
from torch import nn

from bea_lib.nets.data import load_dataset
from bea_lib.nets.config import TrainConfig, build_model
from bea_lib.nets.train import train

# the networks chapter's models and their widths (hidden units, channels)
MODELS = {"mlp": 32, "cnn": 8}


def configs(k: int, base: TrainConfig) -> list[TrainConfig]:
    """k runs that differ in seed and (β, ρ), as in a sweep."""
    cells = [(b, r) for b in (0.9, 0.97, 0.99, 0.5) for r in (0.99, 0.999, 0.9999, 0.995)]
    return [dataclasses.replace(base, seed=i, beta=cells[i % 16][0], rho=cells[i % 16][1])
            for i in range(k)]


def flops_per_example(model: nn.Sequential, input_shape) -> tuple[int, int]:
    """(forward, backward) FLOPs of the matrix products of ``model`` for one example.

    Forward: 2 · in · out per linear layer, 2 · L_out · out · in · width per 1-D convolution.
    Backward: the weight gradient costs as much again, the input gradient too, except for the
    first layer with parameters (the data need no gradient).
    """
    x, forward, first = torch.zeros(1, *input_shape), 0, None
    with torch.no_grad():
        for m in model:
            y = m(x)
            if isinstance(m, nn.Linear):
                macs = m.in_features * m.out_features
            elif isinstance(m, nn.Conv1d):
                macs = y.shape[-1] * m.out_channels * m.in_channels * m.kernel_size[0]
            else:
                macs = 0
            if macs and first is None:
                first = macs
            forward += 2 * macs
            x = y
    return forward, 2 * forward - 2 * first


def epoch_flops(base: TrainConfig) -> float:
    """FLOPs of one epoch of one run: forward and backward over the training set, and the
    forward pass over the test set every ``test_every`` epochs (see the module docstring)."""
    data = load_dataset(base.dataset, n_train=base.n_train, n_test=base.n_test)
    model = build_model(dataclasses.replace(base, dtype="float32"), data.input_shape,
                        data.n_classes)
    forward, backward = flops_per_example(model, data.input_shape)
    return len(data.x_train) * (forward + backward) + len(data.x_test) * forward / base.test_every


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matrix-product rate in GFLOP/s: the best of ``repeats`` products
    of two n × n matrices, with the current torch threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = min(seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def product_rate(k: int, rows: int, inner: int, n: int, repeats: int = 5) -> float:
    """GFLOP/s of k independent float32 products (rows, inner) · (inner, n) in one batched call
    (``torch.bmm``), the best of ``repeats``."""
    a, b = torch.randn(k, rows, inner), torch.randn(k, inner, n)
    torch.bmm(a, b)  # warm-up
    best = min(seconds(lambda: torch.bmm(a, b)) for _ in range(repeats))
    return 2 * k * rows * inner * n / best / 1e9


def hidden_product(model: str, width: int, n: int) -> tuple[int, int, int]:
    """(rows, inner, columns) of one run's typical product in the batch (see the docstring)."""
    if model == "mlp":
        return width, width, n
    return width, 3 * width, 20 * n  # the CNN's second convolution: 20 positions of MNIST-1D


def seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--n-train", type=int, nargs="+", default=[4000, 1000, 250],
                        help="training-set sizes of the MLP rows")
    parser.add_argument("--cnn-n-train", type=int, nargs="*", default=[500],
                        help="training-set sizes of the CNN rows (the chapter's: 500)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    peak = matmul_peak()
    print(f"torch threads: {args.threads}; {args.epochs} epochs, test every 5; median of "
          f"{args.repeats} per-repeat ratios; load average at the start "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (on a shared machine, read the "
          f"ratios, not the times); float32 matrix-product peak {peak:.1f} GFLOP/s")
    print("| model | N (train) | k | one run alone (s) | k runs batched (s) | batched / one | "
          "speed-up over sequential (k × one / batched) | goal (k = 16: batched / one ≤ 3) | "
          "GFLOP/s one run | GFLOP/s batch | batch, % of peak | GFLOP/s of the batch's "
          "typical product alone | speed-up ceiling (that product's rate / one run's) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [("mlp", n) for n in args.n_train] + [("cnn", n) for n in args.cnn_n_train]
    for model, n in rows:
        base = TrainConfig(dataset="mnist1d", model=model, width=MODELS[model], h=1e-2,
                           epochs=args.epochs, test_every=5, n_train=n, device="cpu")
        train(dataclasses.replace(base, epochs=2))  # warm-up: data, allocator
        train(configs(2, dataclasses.replace(base, epochs=2)))
        work = epoch_flops(base) * args.epochs
        for k in args.ks:
            runs = configs(k, base)
            one, batch = [], []
            for _ in range(args.repeats):
                one.append(seconds(lambda: train(base)))
                batch.append(seconds(lambda: train(runs)))
            ratio = statistics.median(b / o for b, o in zip(batch, one))
            rate_one, rate_batch = work / min(one) / 1e9, k * work / min(batch) / 1e9
            products = product_rate(k, *hidden_product(model, MODELS[model], n))
            goal = ("met" if ratio <= 3 else "not met") if (model, k) == ("mlp", 16) else "–"
            print(f"| {model} | {n} | {k} | {min(one):.2f} | {min(batch):.2f} | {ratio:.2f} | "
                  f"{k / ratio:.1f} | {goal} | {rate_one:.1f} | {rate_batch:.1f} | "
                  f"{100 * rate_batch / peak:.0f} | {products:.1f} | {products / rate_one:.1f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
