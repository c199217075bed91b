"""Cost of the mini-batch ODE (3.2): one right-hand side against n, and one whole flow, each next
to the earlier implementation (the reference) in the same run.

Theorem 3.1's terms L, L̄, P, P̄ average over all steps k ≤ n, and L, P contain inner sums over
l = k, …, n-1: evaluated from the definitions that is O(n²) vector work and n Hessian-vector
products. ``bea_lib.core.minibatch`` groups the terms by batch, so one evaluation needs m gradients,
2m Hessian-vector products and O(n·m·p) vector work. The reference (the implementation before
the batch losses were stacked, kept here) takes them with one reverse pass per batch plus one per
product, 3m passes, and recomputes its suffix sums and weights at every evaluation; the library
takes them in three passes whatever m (``bea_lib.core.autodiff.stacked_gradient_and_hvp_fn``) and
computes what depends on the interval alone once per interval. For a tiny loss a reverse pass
costs mostly its fixed overhead, which is what the stacking saves; and the cost of the graph,
growing with m, is saved too where the losses can be evaluated together
(``bl.losses.BatchLosses``, as ``least_squares_batches`` returns them).

Two tables:

1. one evaluation at n = 100, 1,000, 10,000 for problems with m = 8 batches: the chapter's
   least squares (24 examples, p = 5: fixed overheads dominate), as ``BatchLosses`` and as a
   plain list of losses, and a logistic regression (4,000 examples, p = 200: arithmetic
   dominates; a list); reverse passes per evaluation, ms for each
   implementation, their ratio, and the time per unit of n against n = 100 (≤ 1: at most linear);
2. one order-1 flow of the chapter's problem over T = 0.1 at h = 1e-3 (100 intervals), m = 2 and
   8: the reference solves each interval with its own initial-step probe (eight evaluations) and
   the reference right-hand side; the library tries the whole interval as the first step and
   reuses the gradients at each interval's end (seven evaluations, the first one cheaper).

Every library result is first checked against the reference. Timed functions alternate within
each repeat; a ratio is the median of the per-repeat ratios, so that load from other processes
hits both sides alike.

    python benchmarks/bench_minibatch.py --threads 1 [--repeats 7]
"""
from __future__ import annotations

import argparse
import itertools
import statistics

import torch

import bea_lib as bl
from timing import interleaved, median_ratio
import bea_lib.core.minibatch as mb
from bea_lib.core.autodiff import gradient, gradient_and_hvp_fn
from bea_lib.core.integrate import solve

HYPER = dict(beta=0.3, rho=0.6, eps=0.1)  # the chapter's order-study setting


def logistic_batches(m: int, n_data: int, p: int, seed: int = 0):
    """Logistic regression on Gaussian data split into m batches by index mod m."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n_data, p, generator=gen, dtype=torch.float64)
    y = (torch.rand(n_data, generator=gen, dtype=torch.float64) < 0.5).to(torch.float64)

    def batch(idx):
        return lambda th: torch.nn.functional.binary_cross_entropy_with_logits(X[idx] @ th, y[idx])

    return ([batch(torch.arange(b, n_data, m)) for b in range(m)],
            torch.randn(p, generator=gen, dtype=torch.float64))


def reference_rhs(losses, n, *, h, beta, rho, eps, order, weights):
    """(3.2) as computed before the losses were stacked: 3m reverse passes, suffix sums and
    per-batch weighted sums rebuilt at every evaluation."""
    m = len(losses)
    cb, cr = (c[: n + 1] for c in weights)
    ab, ar = mb.average_weights(beta, n), mb.average_weights(rho, n)
    batch_of_step = torch.arange(n + 1) % m

    def rhs(t, theta):
        if order == 0:
            g = torch.stack([gradient(E, theta) for E in losses])
            return -(cb[n] @ g) / torch.sqrt(cr[n] @ g**2 + eps)
        g, hvp_fns = zip(*(gradient_and_hvp_fn(E, theta) for E in losses))
        g = torch.stack(g)
        M_all = cb @ g
        R_all = torch.sqrt(cr @ g**2 + eps)
        u_all = M_all / R_all
        M, R, u = M_all[n], R_all[n], u_all[n]
        S = torch.cat([torch.flip(torch.cumsum(torch.flip(u_all[:n], [0]), 0), [0]),
                       torch.zeros_like(u)[None]])
        y = torch.zeros_like(g).index_add_(0, batch_of_step, ab[:, None] * S)
        x = torch.zeros_like(g).index_add_(0, batch_of_step, ar[:, None] * S)
        two_L, two_P = torch.zeros_like(u), torch.zeros_like(u)
        for b, H_b in enumerate(hvp_fns):
            two_L += H_b(2 * y[b] + cb[n, b] * u)
            two_P += g[b] * H_b(2 * x[b] + cr[n, b] * u)
        return -u + h * (M * two_P / (2 * R**3) - two_L / (2 * R))

    return rhs


def reference_flow(losses, theta, n_steps, *, h, beta, rho, eps, order):
    """The piecewise flow as solved before: scipy's initial-step probe on every interval."""
    weights = (mb.batch_weights(beta, n_steps, len(losses)),
               mb.batch_weights(rho, n_steps, len(losses)))
    out = [theta]
    for n in range(n_steps):
        rhs = reference_rhs(losses, n, h=h, beta=beta, rho=rho, eps=eps, order=order,
                            weights=weights)
        theta = solve(rhs, theta, 1, h=h, rtol=1e-10, atol=1e-12, explicit="RK45")[-1]
        out.append(theta)
    return torch.stack(out)


def count_passes(fn) -> int:
    """Reverse passes (calls of torch.autograd.grad) made by one call of fn."""
    calls = []
    grad = torch.autograd.grad
    torch.autograd.grad = lambda *a, **k: calls.append(1) or grad(*a, **k)
    try:
        fn()
    finally:
        torch.autograd.grad = grad
    return len(calls)


def timed(fns: dict, repeats: int, inner: int) -> tuple[dict, float]:
    """Median ms per call of each function (:func:`timing.interleaved`) and the median of the
    per-repeat ratios reference / library."""
    times = interleaved(fns, repeats, inner=inner)
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    return ms, median_ratio(times, "reference", "library")


def rhs_table(repeats: int) -> None:
    batches, _, theta0 = bl.losses.least_squares_batches(8)
    problems = {"least squares, p = 5": (batches, theta0),  # BatchLosses: one graph
                "the same, as a list": (list(batches), theta0),  # one graph per batch
                "logistic, p = 200": logistic_batches(8, 4000, 200)}
    print("1. one evaluation of the order-1 right-hand side, m = 8 batches")
    print(f"{'problem':>22} {'n':>6} {'passes ref/lib':>15} {'reference ms':>13} "
          f"{'library ms':>11} {'ratio':>6} {'(ms/n) / (ms/n at 100)':>23}")
    for name, (losses, theta) in problems.items():
        base = None
        for n in (100, 1_000, 10_000):
            weights = (mb.batch_weights(HYPER["beta"], n, 8), mb.batch_weights(HYPER["rho"], n, 8))
            lib = mb.minibatch_adam_rhs(losses, n, h=1e-3, weights=weights, **HYPER)
            ref = reference_rhs(losses, n, h=1e-3, order=1, weights=weights, **HYPER)
            # the same sums in another order: float64 rounding
            torch.testing.assert_close(lib(0.0, theta), ref(0.0, theta), rtol=1e-10, atol=1e-13)
            # two points in turn, so that the library never reuses the last point's gradients
            points = itertools.cycle([theta, theta + 1e-6])
            passes = (f"{count_passes(lambda: ref(0.0, theta))}/"
                      f"{count_passes(lambda: lib(0.0, theta - 1e-6))}")
            ms, ratio = timed({"reference": lambda: ref(0.0, next(points)),
                                     "library": lambda: lib(0.0, next(points))},
                                    repeats, inner=max(2, 2000 // n))
            base = base or ms["library"] / n
            print(f"{name:>22} {n:6d} {passes:>15} {ms['reference']:13.3f} {ms['library']:11.3f} "
                  f"{ratio:6.2f} {ms['library'] / n / base:23.3f}")


def flow_table(repeats: int) -> None:
    h, n_steps = 1e-3, 100
    print(f"\n2. one order-1 flow of the chapter's least squares, h = {h:g}, {n_steps} intervals")
    print(f"{'m':>3} {'reference s':>12} {'library s':>10} {'ratio':>6} {'max |difference|':>17}")
    for m in (2, 8):
        losses, _, theta0 = bl.losses.least_squares_batches(m)
        lib = lambda: mb.minibatch_adam_flow(losses, theta0, n_steps, h=h, **HYPER)  # noqa: E731
        ref = lambda: reference_flow(losses, theta0, n_steps, h=h, order=1, **HYPER)  # noqa: E731
        gap = float((lib() - ref()).abs().max())
        assert gap < 1e-12, gap  # the same RK45 steps: rounding only
        ms, ratio = timed({"reference": ref, "library": lib}, repeats, inner=1)
        print(f"{m:3d} {ms['reference'] / 1e3:12.3f} {ms['library'] / 1e3:10.3f} {ratio:6.2f} "
              f"{gap:17.2e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    print(f"float64, {torch.get_num_threads()} threads, median of {args.repeats} repeats")
    rhs_table(args.repeats)
    flow_table(args.repeats)


if __name__ == "__main__":
    main()
