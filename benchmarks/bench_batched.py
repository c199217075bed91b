"""The stacked trainer's steps against a hand-written stacked step, and the FLOP rates reached.

k runs of the MLP (MNIST-1D, 40 inputs, two hidden layers of ``--width``, 10 classes) on the
first ``--n-train`` training signals, trained together by ``bea_lib.nets.train.train`` of a
list of configs (one stacked model, :mod:`bea_lib.nets.batched`), in float64 and float32:

- **reference**: the step a user would write for the same k runs, timed in the same process:
  a forward pass of ``torch.bmm`` products, the gradient of the summed cross-entropy by autograd,
  and Adam's update, parameter tensor by parameter tensor.
- **plain**: a run-step of Adam in the library's loop (κ = 0): the gradient, the logged row
  (losses, accuracies, the three gradient norms) and the update.
- **κ**: a run-step of the κ-variant (κ = 1 in every run): the same plus one Hessian-vector
  product per run and the f₁ term.

The hyperparameters are the mechanism chapter's (h = 2·10⁻⁵, ε = 2·10⁻⁹, β = 0.95, ρ = 0.8),
where the κ term is a correction: at a larger h it dominates the step, the runs blow up, and
the time goes to extreme values rather than to the step. A run-step is one step of one run: a
step of the k stacked runs divided by k. The library's times come from the histories'
``wall_time`` (from row 0 to the last, so the set-up and the one test evaluation at row 0 are
left out). Every timing is repeated ``--repeats`` times, the three
alternated, and the table gives the median time and the median of the per-repeat ratios to the
reference (load from other processes hits all three alike). The last column is the share of
all cores' time that other processes used while the row was timed (/proc/stat less this
process's own CPU time): on a shared machine, read the ratios, not the times.

FLOPs are counted from the layers' matrix products, per example (elementwise work, softmax and
Adam left out, so the rates are slight underestimates): a linear layer of ``in`` × ``out``
costs M = in · out multiply-adds a product. The gradient takes the forward product, δaᵀ and
Wᵀδ (not for the first layer, whose input is the data): 2M + 2M + 2M FLOPs. The
Hessian-vector product by the R-operator takes, on top of the gradient's tape, Ẇa and Wȧ in
the forward pass, δ̇aᵀ and δȧᵀ, Ẇᵀδ and Wᵀδ̇ in the backward pass: 12M FLOPs, 4M for the
first layer (ȧ = 0 there, no input gradient). So a κ step costs (gradient + product) /
gradient times a plain step's arithmetic, at best: the bound printed beside the κ column. The
rates are compared with this machine's matrix-product peak in the same dtype, measured in the
same run (the best of a few n × n products with the same torch threads).

    python benchmarks/bench_batched.py [--threads 1 2] [--runs 30] [--n-train 400] [--steps 20]

``--versus-sequential`` prints instead the earlier table: k runs trained together against one
run trained alone (the speed-up of batching over training the runs one after another).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from bea_lib.nets.data import load_dataset
from bea_lib.nets.config import TrainConfig, build_model
from bea_lib.nets.train import train

DTYPES = ("float64", "float32")


# --- FLOP counts ---------------------------------------------------------------------------------

def layer_macs(model: nn.Sequential, input_shape) -> list[int]:
    """Multiply-adds per example of each layer with parameters, in order: in · out for a linear
    layer, L_out · out · in · width for a 1-D convolution."""
    x, macs = torch.zeros(1, *input_shape), []
    with torch.no_grad():
        for m in model:
            y = m(x)
            if isinstance(m, nn.Linear):
                macs.append(m.in_features * m.out_features)
            elif isinstance(m, nn.Conv1d):
                macs.append(y.shape[-1] * m.out_channels * m.in_channels * m.kernel_size[0])
            x = y
    return macs


def flops_per_example(model: nn.Sequential, input_shape) -> tuple[int, int]:
    """(forward, backward) FLOPs of the matrix products of ``model`` for one example.

    Forward: 2M per layer. Backward: the weight gradient δaᵀ costs as much again, the input
    gradient Wᵀδ too, except for the first layer (the data need no gradient).
    """
    macs = layer_macs(model, input_shape)
    forward = 2 * sum(macs)
    return forward, 2 * forward - 2 * macs[0]


def hvp_flops_per_example(model: nn.Sequential, input_shape) -> int:
    """FLOPs of one Hessian-vector product by the R-operator on the gradient's tape, per example:
    the tangents Ẇa + Wȧ, δ̇aᵀ + δȧᵀ and Ẇᵀδ + Wᵀδ̇, each two products of M (see the module
    docstring); the first layer has ȧ = 0 and no input gradient: Ẇa and δ̇aᵀ alone."""
    macs = layer_macs(model, input_shape)
    return 2 * (2 * macs[0] + 6 * sum(macs[1:]))


def matmul_peak(dtype: torch.dtype, n: int = 1024, repeats: int = 5) -> float:
    """This machine's matrix-product rate in GFLOP/s in ``dtype``: the best of ``repeats``
    products of two n × n matrices, with the current torch threads."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    best = min(seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def others_share(since=None):
    """The share of all cores' time that other processes used since ``since`` (the value this
    returned earlier; None starts a measurement), from /proc/stat and this process's own CPU
    time; NaN where /proc/stat is missing."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return float("nan") if since is not None else None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    now = (sum(fields), fields[3] + fields[4], (usage.ru_utime + usage.ru_stime)
           * os.sysconf("SC_CLK_TCK"))
    if since is None:
        return now
    total, idle, ours = (a - b for a, b in zip(now, since))
    return (total - idle - ours) / max(1, total)


def seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --- the hand-written reference ------------------------------------------------------------------

class ReferenceStep:
    """k stacked MLP runs as a user would write them: bmm forward, autograd gradient of the
    summed cross-entropy over N, and Adam's update (Definition 2.1), tensor by tensor."""

    def __init__(self, models: list[nn.Sequential], x, y, *, h, beta, rho, eps):
        self.layers = [[torch.stack([m[i].weight.detach() for m in models]),
                        torch.stack([m[i].bias.detach() for m in models])[..., None]]
                       for i, layer in enumerate(models[0]) if isinstance(layer, nn.Linear)]
        self.params = [p for layer in self.layers for p in layer]
        self.x = x.flatten(1).t().expand(len(models), -1, -1)  # (k, in, N), as bmm takes it
        self.y = y.expand(len(models), -1)
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.hyper, self.n = (h, beta, rho, eps), 0

    def loss(self, params):
        a = self.x
        for i in range(0, len(params), 2):
            z = torch.bmm(params[i], a) + params[i + 1]
            a = torch.relu(z) if i + 2 < len(params) else z
        return F.cross_entropy(a, self.y, reduction="sum") / self.x.shape[-1]

    def step(self):
        h, beta, rho, eps = self.hyper
        params = [p.requires_grad_() for p in self.params]
        grads = torch.autograd.grad(self.loss(params), params)
        self.n += 1
        with torch.no_grad():
            for p, g, m, v in zip(params, grads, self.m, self.v):
                m.mul_(beta).add_((1 - beta) * g)  # (2.1), first moment
                v.mul_(rho).add_((1 - rho) * g * g)  # (2.1), second moment
                m_hat, v_hat = m / (1 - beta**self.n), v / (1 - rho**self.n)
                p.sub_(h * m_hat / torch.sqrt(v_hat + eps))  # (2.1), update, ε inside
        self.params = [p.detach() for p in params]


# --- the table -----------------------------------------------------------------------------------

def library_run_step(configs: list[TrainConfig], data) -> float:
    """Seconds per run-step of the library's loop for the batch ``configs``, from the histories'
    wall time between row 0 and the last row."""
    history = train(configs, data=data)[0]
    wall = history["wall_time"]
    return (wall[-1] - wall[0]) / (len(wall) - 1) / len(configs)


def step_table(args, threads: int) -> None:
    torch.set_num_threads(threads)
    # the mechanism chapter's κ runs: inside the validity gate, so the κ term stays a correction
    base = TrainConfig(dataset="mnist1d", model="mlp", width=args.width, h=2e-5, beta=0.95,
                       rho=0.8, eps=2e-9, epochs=args.steps, n_train=args.n_train,
                       n_test=args.n_test, test_every=args.steps + 1,  # one test pass, row 0
                       chunk_size=max(args.n_train, args.n_test), device="cpu")
    raw = load_dataset("mnist1d", n_train=args.n_train, n_test=args.n_test)
    print(f"\ntorch threads: {threads}; load average at the start {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} CPUs; {args.runs} runs stacked, MLP width {args.width}, "
          f"{args.n_train} training signals, {args.steps} steps a timing, median of "
          f"{args.repeats} repeats")
    model = build_model(dataclasses.replace(base, dtype="float32"), raw.input_shape, raw.n_classes)
    forward, backward = flops_per_example(model, raw.input_shape)
    grad_flops = (forward + backward) * args.n_train  # per run-step
    hvp_flops = hvp_flops_per_example(model, raw.input_shape) * args.n_train
    bound = (grad_flops + hvp_flops) / grad_flops
    print(f"FLOPs per run-step: gradient {grad_flops / 1e6:.2f} M, Hessian-vector product "
          f"{hvp_flops / 1e6:.2f} M ({hvp_flops / grad_flops:.2f} gradients); a κ step at least "
          f"{bound:.2f} plain steps at equal rates")
    print("| dtype | matmul peak (GFLOP/s) | reference step (ms) | plain Adam run-step (ms) | "
          "κ ≠ 0 run-step, one HVP (ms) | GFLOP/s reference / plain / κ | % of peak "
          "reference / plain / κ | other processes' share of the cores meanwhile |")
    print("|---|---|---|---|---|---|---|---|")
    for dtype in DTYPES:
        configs = [dataclasses.replace(base, seed=1000 + r, dtype=dtype) for r in range(args.runs)]
        kappa = [dataclasses.replace(c, kappa=1.0) for c in configs]
        data = raw.to("cpu", getattr(torch, dtype))
        models = [build_model(c, data.input_shape, data.n_classes) for c in configs]
        ref = ReferenceStep(models, data.x_train, data.y_train, h=base.h, beta=base.beta,
                            rho=base.rho, eps=base.eps)
        peak = matmul_peak(getattr(torch, dtype))

        def reference(ref=ref):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                ref.step()
            return (time.perf_counter() - t0) / args.steps / args.runs

        library_run_step(configs[:2], data)  # warm-up
        since = others_share()
        times = {"reference": [], "plain": [], "kappa": []}
        for _ in range(args.repeats):
            times["reference"].append(reference())
            times["plain"].append(library_run_step(configs, data))
            times["kappa"].append(library_run_step(kappa, data))
        others = others_share(since) if since is not None else float("nan")
        med = {name: statistics.median(t) for name, t in times.items()}
        ratio = {name: statistics.median(a / b for a, b in zip(t, times["reference"]))
                 for name, t in times.items()}
        flops = {"reference": grad_flops, "plain": grad_flops, "kappa": grad_flops + hvp_flops}
        rate = {name: flops[name] / med[name] / 1e9 for name in times}
        print(f"| {dtype} | {peak:.1f} | {1e3 * med['reference']:.3f} | "
              f"{1e3 * med['plain']:.3f} ({ratio['plain']:.2f}×) | "
              f"{1e3 * med['kappa']:.3f} ({ratio['kappa']:.2f}×; bound {bound:.2f}×) | "
              f"{rate['reference']:.1f} / {rate['plain']:.1f} / {rate['kappa']:.1f} | "
              + " / ".join(f"{100 * rate[n] / peak:.0f}" for n in times)
              + f" | {100 * others:.0f} % |", flush=True)


# --- the earlier table: a batch against one run alone --------------------------------------------

# the networks chapter's models and their widths (hidden units, channels)
MODELS = {"mlp": 32, "cnn": 8}


def sweep_configs(k: int, base: TrainConfig) -> list[TrainConfig]:
    """k runs that differ in seed and (β, ρ), as in a sweep."""
    cells = [(b, r) for b in (0.9, 0.97, 0.99, 0.5) for r in (0.99, 0.999, 0.9999, 0.995)]
    return [dataclasses.replace(base, seed=i, beta=cells[i % 16][0], rho=cells[i % 16][1])
            for i in range(k)]


def epoch_flops(base: TrainConfig) -> float:
    """FLOPs of one epoch of one run: forward and backward over the training set, and the
    forward pass over the test set every ``test_every`` epochs."""
    data = load_dataset(base.dataset, n_train=base.n_train, n_test=base.n_test)
    model = build_model(dataclasses.replace(base, dtype="float32"), data.input_shape,
                        data.n_classes)
    forward, backward = flops_per_example(model, data.input_shape)
    return len(data.x_train) * (forward + backward) + len(data.x_test) * forward / base.test_every


def versus_sequential(args) -> None:
    """k runs batched against one run alone, for the same epochs: the batch is worth it when
    its time over one run's is well below k (the goal for k = 16 MLP runs: at most 3)."""
    torch.set_num_threads(args.threads[0])
    peak = matmul_peak(torch.float32)
    print(f"torch threads: {args.threads[0]}; {args.epochs} epochs, test every 5; median of "
          f"{args.repeats} per-repeat ratios; load average at the start "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; float32 matrix-product peak "
          f"{peak:.1f} GFLOP/s")
    print("| model | N (train) | k | one run alone (s) | k runs batched (s) | batched / one | "
          "speed-up over sequential (k × one / batched) | GFLOP/s one run | GFLOP/s batch | "
          "batch, % of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model, n in [("mlp", n) for n in (4000, 1000, 250)] + [("cnn", 500)]:
        base = TrainConfig(dataset="mnist1d", model=model, width=MODELS[model], h=1e-2,
                           epochs=args.epochs, test_every=5, n_train=n, device="cpu")
        train(dataclasses.replace(base, epochs=2))  # warm-up: data, allocator
        work = epoch_flops(base) * args.epochs
        for k in (4, 16):
            runs = sweep_configs(k, base)
            one, batch = [], []
            for _ in range(args.repeats):
                one.append(seconds(lambda base=base: train(base)))
                batch.append(seconds(lambda runs=runs: train(runs)))
            ratio = statistics.median(b / o for b, o in zip(batch, one))
            rate_batch = k * work / min(batch) / 1e9
            print(f"| {model} | {n} | {k} | {min(one):.2f} | {min(batch):.2f} | {ratio:.2f} | "
                  f"{k / ratio:.1f} | {work / min(one) / 1e9:.1f} | {rate_batch:.1f} | "
                  f"{100 * rate_batch / peak:.0f} |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="torch thread counts, one table each")
    parser.add_argument("--runs", type=int, default=30, help="runs stacked (k)")
    parser.add_argument("--n-train", type=int, default=400)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="steps a timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--versus-sequential", action="store_true",
                        help="the batch against one run alone instead")
    parser.add_argument("--epochs", type=int, default=50, help="with --versus-sequential")
    args = parser.parse_args(argv)
    if args.versus_sequential:
        versus_sequential(args)
        return 0
    for threads in args.threads:
        step_table(args, threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
