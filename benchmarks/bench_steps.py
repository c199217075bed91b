"""Cost of one step of Adam's iterates and of one order-1 flow right-hand side: peer and limit.

Per problem, microseconds per step (or per right-hand side), side by side in one run:

- ``bl.adam``: the iterates, ``bl.adam(loss, theta0, n, ...)`` divided by n;
- ``torch.optim``: the loop a user would write, ``torch.autograd.grad`` then
  ``torch.optim.Adam.step`` (ε outside, so the same iterates as ``bl.adam(eps_inside=False)``),
  storing every iterate as ``bl.adam`` does (the peer);
- ``NumPy``: the same recursion with the bilinear loss's gradient in closed form (the limit; none
  for the network);
- ``bl.adam_runs``: R runs at once (a grid of step sizes), per run and step;
- ``bl.adam_rhs``: one order-1 right-hand side (2.2)-(2.3), against the same formula written with
  two ``torch.autograd.grad`` calls (reverse-over-reverse, the peer) and, for the bilinear loss,
  in closed form with NumPy (the limit).

Problems: p = 2, the bilinear loss of Section 5 (``bl.losses.bilinear``); p = 61, a tanh network
(``bl.losses.tanh_network_regression``). Every implementation is first checked against
``bl.adam`` (a benchmark of wrong code measures nothing). The timed functions run in turn within
each repeat; a time is the median over repeats and a ratio the median of the per-repeat ratios,
so that load from other processes hits both sides of a ratio alike.

``--cold`` adds the first-call costs in a fresh process (importing ``bea_lib``, then one call of
``bl.adam``, ``bl.adam_flow`` and ``bl.order_study``); ``--order-study`` times
``bl.order_study("adam", bilinear, ...)`` with five step sizes, h = 2e-3 … 1.25e-4, T = 0.4,
and the flows' share of it.

    python benchmarks/bench_steps.py --threads 1 [--repeats 7] [--cold] [--order-study]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

import bea_lib as bl
from timing import interleaved, median_ratio

HYPER = dict(beta=0.9, rho=0.999, eps=1e-8)  # the usual Adam defaults; ε outside (torch's form)
H = 1e-3  # step size of the timed runs
N_RUNS = 16  # runs of the batched row: a grid of 16 step sizes
TARGET = 1.0  # bl.adam / torch.optim loop, p = 2
X, Y = 2.0, 1.5  # the bilinear loss ½(y - θ₁θ₂x)² (bl.losses.bilinear's defaults)


# ----------------------------------------------------------------------------- the peers
def torch_optim_loop(loss, theta0, n_steps, *, h, beta, rho, eps):
    """Adam iterates the way a PyTorch user writes them; rows as in ``bl.adam``."""
    theta = theta0.clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=h, betas=(beta, rho), eps=eps)
    out = torch.empty((n_steps + 1, theta.numel()), dtype=theta.dtype)
    out[0] = theta.detach()
    for n in range(n_steps):
        (theta.grad,) = torch.autograd.grad(loss(theta), theta)
        opt.step()
        out[n + 1] = theta.detach()
    return out


def torch_rhs(loss, *, h, beta, rho, eps):
    """The order-1 right-hand side (ε outside) written with two ``torch.autograd.grad`` calls."""
    def rhs(t, theta):
        with torch.enable_grad():  # the ODE solver calls it under torch.no_grad()
            theta = theta.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(loss(theta), theta, create_graph=True)
        D = g.detach().abs() + eps
        u = g.detach() / D
        (Hu,) = torch.autograd.grad(g, theta, u)
        bracket = (1 + beta) / (2 * (1 - beta) * D) - (1 + rho) / (1 - rho) * u.abs() / (2 * D)
        return -u - h * Hu * bracket
    return rhs


# ----------------------------------------------------------------------------- the limits
def bilinear_grad(th):
    """∇E for E = ½(y - θ₁θ₂x)²: -r x (θ₂, θ₁) with r = y - θ₁θ₂x."""
    r = Y - th[0] * th[1] * X
    return -r * X * np.array([th[1], th[0]])


def numpy_adam_bilinear(theta0, n_steps, *, h, beta, rho, eps):
    """Adam (ε outside) on the bilinear loss, gradient in closed form, in NumPy."""
    out = np.empty((n_steps + 1, 2))
    th = out[0] = theta0
    m, v = np.zeros(2), np.zeros(2)
    for n in range(1, n_steps + 1):
        g = bilinear_grad(th)
        m = beta * m + (1 - beta) * g
        v = rho * v + (1 - rho) * g * g
        th = out[n] = th - h * (m / (1 - beta**n)) / (np.sqrt(v / (1 - rho**n)) + eps)
    return out


def numpy_rhs_bilinear(th, *, h, beta, rho, eps):
    """The order-1 right-hand side (ε outside) on the bilinear loss, H u in closed form."""
    r = Y - th[0] * th[1] * X
    g = -r * X * np.array([th[1], th[0]])
    D = np.abs(g) + eps
    u = g / D
    # H = x²(θ₂, θ₁)ᵀ(θ₂, θ₁) - r x [[0, 1], [1, 0]]
    Hu = X * X * (th[1] * u[0] + th[0] * u[1]) * np.array([th[1], th[0]]) - r * X * u[::-1]
    bracket = (1 + beta) / (2 * (1 - beta) * D) - (1 + rho) / (1 - rho) * np.abs(g) / (2 * D * D)
    return -u - h * Hu * bracket


def problems():
    tanh = bl.losses.tanh_network_regression()
    return [("bilinear", 2, bl.losses.bilinear(X, Y),
             torch.tensor([2.8, 3.5], dtype=torch.float64)),
            ("tanh network", bl.losses.tanh_network_size(3, 12), tanh,
             bl.losses.tanh_network_init())]


def check_agreement(name, loss, theta0):
    """Every implementation timed gives the iterates of ``bl.adam`` (float64 rounding only)."""
    ours = bl.adam(loss, theta0, 50, h=H, **HYPER, eps_inside=False)
    peer = torch_optim_loop(loss, theta0, 50, h=H, **HYPER)
    assert torch.allclose(ours, peer, rtol=0, atol=1e-12), f"{name}: torch.optim loop differs"
    hs = H * torch.linspace(0.5, 2.0, N_RUNS)
    runs = bl.adam_runs(loss, theta0, 50, h=hs, **HYPER)
    assert torch.allclose(runs[:, 0], bl.adam(loss, theta0, 50, h=float(hs[0]), **HYPER),
                          rtol=0, atol=1e-12), f"{name}: adam_runs differs"
    theta = theta0 + 0.1
    rhs = bl.adam_rhs(loss, h=H, **HYPER, eps_inside=False)(0.0, theta)
    assert torch.allclose(rhs, torch_rhs(loss, h=H, **HYPER)(0.0, theta), rtol=1e-12, atol=0)
    if name == "bilinear":
        limit = numpy_adam_bilinear(theta0.numpy(), 50, h=H, **HYPER)
        assert np.allclose(limit, ours.numpy(), rtol=0, atol=1e-12), "NumPy loop differs"
        limit_rhs = numpy_rhs_bilinear(theta.numpy(), h=H, **HYPER)
        assert np.allclose(limit_rhs, rhs.numpy(), rtol=1e-12, atol=0), "NumPy rhs differs"


def step_table(repeats: int, n_steps: int, ratios: dict) -> list[str]:
    lines = ["| problem | p | bl.adam µs/step | torch.optim µs/step | NumPy µs/step "
             f"| bl.adam_runs (R = {N_RUNS}) µs/run-step | bl.adam / torch.optim | bl.adam / NumPy "
             "| adam_runs / NumPy |", "|---|---|---|---|---|---|---|---|---|"]
    for name, p, loss, theta0 in problems():
        check_agreement(name, loss, theta0)
        hs = H * torch.linspace(0.5, 2.0, N_RUNS)
        fns = {"adam": lambda: bl.adam(loss, theta0, n_steps, h=H, **HYPER, eps_inside=False),
               "torch": lambda: torch_optim_loop(loss, theta0, n_steps, h=H, **HYPER),
               "runs": lambda: bl.adam_runs(loss, theta0, n_steps, h=hs, **HYPER)}
        if name == "bilinear":
            start = theta0.numpy()
            fns["numpy"] = lambda: numpy_adam_bilinear(start, n_steps, h=H, **HYPER)
        t = interleaved(fns, repeats)
        us = {k: 1e6 * statistics.median(v) / n_steps for k, v in t.items()}
        us["runs"] /= N_RUNS
        limit = "numpy" in t
        cells = [f"{us['adam']:.1f}", f"{us['torch']:.1f}",
                 f"{us['numpy']:.1f}" if limit else "n/a",
                 f"{us['runs']:.1f}", f"{median_ratio(t, 'adam', 'torch'):.2f}",
                 f"{median_ratio(t, 'adam', 'numpy'):.1f}" if limit else "n/a",
                 f"{median_ratio(t, 'runs', 'numpy', 1 / N_RUNS):.1f}" if limit else "n/a"]
        lines.append(f"| {name} | {p} | " + " | ".join(cells) + " |")
        ratios[name] = median_ratio(t, "adam", "torch")
    return lines


def rhs_table(repeats: int, n_calls: int) -> list[str]:
    lines = ["| problem | p | bl.adam_rhs µs/call | torch.autograd µs/call | NumPy µs/call "
             "| bl / torch.autograd | bl / NumPy |", "|---|---|---|---|---|---|---|"]
    for name, p, loss, theta0 in problems():
        ours = bl.adam_rhs(loss, h=H, **HYPER, eps_inside=False)
        peer = torch_rhs(loss, h=H, **HYPER)
        theta = theta0 + 0.1

        def repeat(f, x):
            def run():
                with torch.no_grad():  # as the ODE solver calls it (bl.solve_flow)
                    for _ in range(n_calls):
                        f(0.0, x)
            return run

        fns = {"bl": repeat(ours, theta), "torch": repeat(peer, theta)}
        if name == "bilinear":
            x = theta.numpy()
            fns["numpy"] = lambda: [numpy_rhs_bilinear(x, h=H, **HYPER) for _ in range(n_calls)]
        t = interleaved(fns, repeats)
        us = {k: 1e6 * statistics.median(v) / n_calls for k, v in t.items()}
        limit = "numpy" in t
        cells = [f"{us['bl']:.1f}", f"{us['torch']:.1f}", f"{us['numpy']:.1f}" if limit else "n/a",
                 f"{median_ratio(t, 'bl', 'torch'):.2f}",
                 f"{median_ratio(t, 'bl', 'numpy'):.1f}" if limit else "n/a"]
        lines.append(f"| {name} | {p} | " + " | ".join(cells) + " |")
    return lines


ORDER_STUDY = dict(theta0=[2.8, 3.5], hs=[2e-3 / 2**k for k in range(5)], T=0.4,
                   # tests/test_order.py's adam-bilinear case
                   hyper=dict(beta=0.9, rho=0.95, eps=1e3))


def order_study_seconds() -> tuple[float, float]:
    """Wall time of the five-step-size order study, and of its ten flow solves alone."""
    loss = bl.losses.bilinear(X, Y)
    theta0 = torch.tensor(ORDER_STUDY["theta0"], dtype=torch.float64)
    hs, T, hyper = ORDER_STUDY["hs"], ORDER_STUDY["T"], ORDER_STUDY["hyper"]
    t = time.perf_counter()
    bl.order_study("adam", loss, theta0, hs, T, **hyper)
    total = time.perf_counter() - t
    t = time.perf_counter()
    for h in hs:
        for k in (0, 1):
            bl.adam_flow(loss, theta0, round(T / h), h=h, order=k, **hyper)
    return total, time.perf_counter() - t


COLD = """
import time
t0 = time.perf_counter()
import torch, bea_lib as bl
t1 = time.perf_counter()
loss, th = bl.losses.bilinear(), torch.tensor([2.8, 3.5], dtype=torch.float64)
bl.{call}
t2 = time.perf_counter()
print({{"import": t1 - t0, "first call": t2 - t1}})
"""
COLD_CALLS = {"bl.adam": "adam(loss, th, 10, h=1e-3, beta=0.9, rho=0.999, eps=1e-8)",
              "bl.adam_flow": "adam_flow(loss, th, 10, h=1e-3, beta=0.9, rho=0.999, eps=1e-8)",
              "bl.order_study": "order_study('adam', loss, th, [2e-3, 1e-3], 0.02, beta=0.9, "
                                "rho=0.95, eps=1e3)"}


def cold_table(threads: int) -> list[str]:
    lines = ["| first call in a fresh process | import torch + bea_lib (s) | first call (s) |",
             "|---|---|---|"]
    for name, call in COLD_CALLS.items():
        code = f"import torch; torch.set_num_threads({threads})\n" + COLD.format(call=call)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        res = eval(out.stdout.strip().splitlines()[-1])  # a dict literal printed by the child
        lines.append(f"| {name} | {res['import']:.2f} | {res['first call']:.2f} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n-steps", type=int, default=300, help="steps (or calls) per timing")
    parser.add_argument("--cold", action="store_true", help="first-call costs in a fresh process")
    parser.add_argument("--order-study", action="store_true", help="time the five-h order study")
    parser.add_argument("--json", help="also write the tables to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), float64, {args.n_steps} steps per "
          f"timing; times: median of {args.repeats} interleaved repeats; ratios: median of the "
          "per-repeat ratios\n")
    ratios = {}
    tables = {"steps": step_table(args.repeats, args.n_steps, ratios)}
    print("Adam iterates, h = 1e-3, β = 0.9, ρ = 0.999, ε = 1e-8 (outside)\n")
    print("\n".join(tables["steps"]) + "\n")
    tables["rhs"] = rhs_table(args.repeats, args.n_steps)
    print("Order-1 right-hand side (2.2)-(2.3), same hyperparameters\n")
    print("\n".join(tables["rhs"]) + "\n")
    ratio_p2 = ratios["bilinear"]
    print(f"target bl.adam / torch.optim <= {TARGET} for p = 2: "
          f"{'met' if ratio_p2 <= TARGET else 'NOT met'} ({ratio_p2:.2f})\n")
    if args.order_study:
        total, flows = order_study_seconds()
        tables["order_study"] = dict(total_s=total, flows_s=flows)
        print(f"bl.order_study('adam', bilinear, hs = 2e-3 … 1.25e-4 (5), T = 0.4): {total:.2f} s, "
              f"of which the 10 flow solves {flows:.2f} s (timed apart) and the iterates "
              f"about {total - flows:.2f} s\n")
    if args.cold:
        tables["cold"] = cold_table(args.threads)
        print("\n".join(tables["cold"]) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(tables, f, indent=1)


if __name__ == "__main__":
    main()
