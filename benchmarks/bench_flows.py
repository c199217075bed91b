"""Cost of one right-hand side of Adam's order-1 modified flow against one gradient, on an MLP.

The order-1 right-hand side (2.2)-(2.3) needs one gradient and one Hessian-vector product with a
vector that depends on the gradient (reverse-over-reverse, ``bl.gradient_and_hvp_fn``); the
target is at most 4 gradients' worth. The column ``hvp`` is a stand-alone product (``bl.hvp``,
reverse-over-reverse through ``torch.autograd``) for comparison. The network (≥ 100,000
parameters) is a loss of a flat parameter vector θ through ``torch.func.functional_call`` on one
fixed batch. Prints the median of several repeats; run with ``python benchmarks/bench_flows.py``.
"""
from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn
from torch.func import functional_call

import bea_lib as bl
from timing import interleaved, median_ratio

TARGET = 4.0  # order-1 RHS / gradient


def mlp_loss(width: int, batch: int, dtype, device):
    """A 3-layer tanh MLP (100 inputs, 10 classes) and a fixed batch, as a loss of flat θ."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(100, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                          nn.Linear(width, 10)).to(device=device, dtype=dtype)
    x = torch.randn(batch, 100, device=device, dtype=dtype)
    y = torch.randint(0, 10, (batch,), device=device)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(theta):
        params = {n: t.view(s) for n, t,
                  s in zip(names, theta.split([s.numel() for s in shapes]), shapes)}
        return nn.functional.cross_entropy(functional_call(model, params, (x,)), y)

    return loss, theta0


def interleaved_medians(fns: dict, repeats: int, device) -> dict:
    """Median wall time (s) of each fn (:func:`timing.interleaved`, synchronising a CUDA device
    around each timing) and the median per-repeat ratio rhs1 / grad."""
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    times = interleaved(fns, repeats, sync=sync)
    out = {k: statistics.median(v) for k, v in times.items()}
    out["ratio"] = median_ratio(times, "rhs1", "grad")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"median of {args.repeats} interleaved repeats (rhs1/grad: median of per-repeat ratios)")
    print(f"{'dtype':8} {'width':>5} {'batch':>5} {'params':>8} {'grad ms':>8} {'hvp ms':>8} "
          f"{'rhs0 ms':>8} {'rhs1 ms':>8} {'rhs1/grad':>9}")
    ratios = []
    for dtype in (torch.float32, torch.float64):
        for width, batch in ((300, 256), (300, 2048), (600, 1024)):
            loss, theta = mlp_loss(width, batch, dtype, device)
            hyper = dict(h=1e-3, beta=0.9, rho=0.999, eps=1e-8)
            rhs0, rhs1 = bl.adam_rhs(loss, order=0, **hyper), bl.adam_rhs(loss, order=1, **hyper)
            v = torch.randn_like(theta)
            t = interleaved_medians({"grad": lambda: bl.gradient(loss, theta),
                                     "hvp": lambda: bl.hvp(loss, theta, v),
                                     "rhs0": lambda: rhs0(0.0, theta),
                                     "rhs1": lambda: rhs1(0.0, theta)}, args.repeats, device)
            ratios.append(t["ratio"])
            print(f"{str(dtype).split('.')[-1]:8} {width:5d} {batch:5d} {theta.numel():8d} "
                  + " ".join(f"{1e3 * t[k]:8.2f}" for k in ("grad", "hvp", "rhs0", "rhs1"))
                  + f" {t['ratio']:9.2f}")
    verdict = "met" if max(ratios) <= TARGET else "NOT met"
    print(f"target rhs1/grad <= {TARGET}: {verdict} (worst {max(ratios):.2f}, "
          f"best {min(ratios):.2f})")


if __name__ == "__main__":
    main()
