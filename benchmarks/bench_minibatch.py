"""Cost of one right-hand side of the mini-batch ODE (3.2) against the interval index n.

Theorem 3.1's terms L, L̄, P, P̄ average over all steps k ≤ n, and L, P contain inner sums over
l = k, …, n-1: evaluated from the definitions that is O(n²) vector work and n Hessian-vector
products. ``bea_lib.minibatch`` groups the terms by batch and uses suffix sums, so one evaluation
costs m gradients, 2m Hessian-vector products (two per batch, from one reverse pass each) and
O(n·p) vector work. This script times one evaluation at n = 100, 1,000, 10,000 for m = 8 batches
of a logistic regression, counts the gradient passes and products, and prints the time per unit
of n relative to n = 100 (≤ 1 means at most linear growth). Run: python benchmarks/bench_minibatch.py
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import bea_lib.minibatch as mb


def logistic_batches(m: int, n_data: int, p: int, seed: int = 0):
    """Logistic regression on Gaussian data split into m batches by index mod m."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n_data, p, generator=gen, dtype=torch.float64)
    y = (torch.rand(n_data, generator=gen, dtype=torch.float64) < 0.5).to(torch.float64)

    def batch(idx):
        return lambda th: torch.nn.functional.binary_cross_entropy_with_logits(X[idx] @ th, y[idx])

    return [batch(torch.arange(b, n_data, m)) for b in range(m)], torch.randn(p, generator=gen, dtype=torch.float64)


def counted(fn, counts):
    """Wrap gradient_and_hvp_fn so that reverse passes and Hessian-vector products are counted."""
    def wrapper(loss, theta):
        counts["gradients"] += 1
        g, hvp_fn = fn(loss, theta)

        def counted_hvp(v):
            counts["hvps"] += 1
            return hvp_fn(v)

        return g, counted_hvp

    return wrapper


def _timed(fn, repeats: int) -> list[float]:
    """Wall times (s) of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=8)
    parser.add_argument("--p", type=int, default=200)
    parser.add_argument("--n-data", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    losses, theta = logistic_batches(args.m, args.n_data, args.p)
    hyper = dict(h=1e-3, beta=0.9, rho=0.999, eps=1e-8)
    counts = {"gradients": 0, "hvps": 0}
    mb.gradient_and_hvp_fn = counted(mb.gradient_and_hvp_fn, counts)
    print(f"m = {args.m} batches, p = {args.p}, {args.n_data} examples, float64, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} repeats")
    grads_ms = 1e3 * statistics.median(_timed(lambda: [torch.func.grad(E)(theta) for E in losses], args.repeats))
    print(f"reference: the {args.m} batch gradients alone take {grads_ms:.2f} ms")
    print(f"{'n':>6} {'rhs ms':>8} {'rhs / grads':>11} {'grads':>6} {'hvps':>5} {'(ms/n) / (ms/n at 100)':>24}")
    base = None
    for n in (100, 1_000, 10_000):
        rhs = mb.minibatch_adam_rhs(losses, n, **hyper)  # builds the weights once, outside the timing
        ms = 1e3 * statistics.median(_timed(lambda: rhs(0.0, theta), args.repeats))
        counts.update(gradients=0, hvps=0)
        rhs(0.0, theta)
        base = base or ms / n
        print(f"{n:6d} {ms:8.2f} {ms / grads_ms:11.2f} {counts['gradients']:6d} {counts['hvps']:5d} "
              f"{ms / n / base:24.3f}")


if __name__ == "__main__":
    main()
