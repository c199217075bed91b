r"""The validity gate calibrated on a network: up to which bias ratio does the O(h) term help?

Symbols as in :mod:`bea_lib.intervention`: h ``h``, β ``beta``, ρ ``rho``, ε ``eps`` (inside
the square root), κ ``kappa``; g = ∇E(θ), H = ∇²E(θ), D = √(g² + ε), u = g/D; f₀ = −u and f₁
the O(1) and O(h) terms of Adam's modified flow (2.2)–(2.3).

**The question.** A network run counts as evidence only while its bias ratio
r = h‖f₁‖₂/‖f₀‖₂ (:func:`bea_lib.nets.diagnostics.bias_ratio`) stays at most
:data:`bea_lib.validation.VALIDITY_LIMIT`. The limit should be the ratio up to which the
first-order flow describes the run better than the flow without its O(h) term. This module
measures that on a network small enough for its flows to be solved. Over an h sweep, Adam
restarted with fresh moments runs ``n_steps`` steps, and the table holds the largest distance
over the window (as the order studies measure it) from the order-0 flow f₀ (``err_order0``,
about the displacement the O(h) term causes) and from the order-1 flow (``err_order1``, what
the series leaves out), and the same for the κ-variant (κ = ±1) against its own flow.
``error_ratio`` = err_order1/err_order0 grows with r (like r while the series holds);
:func:`calibrated_limit` turns the table into a limit by the rule it declares.

**The proxy.** The MNIST-1D MLP of the network chapters (:mod:`bea_lib.nets.models`) with a
smooth activation (tanh: ReLU has no second derivative), few examples and a small width, in
float64, as a loss of its flat parameters (:func:`bea_lib.nets.diagnostics.flat_loss`). Windows
start at the initial point and at points reached by plain Adam (:func:`trained_start`, the
networks chapter's optimiser settings) at given training losses, as the experiments restart
Adam from trained points.

**Start-up.** Restarted with m = ν = 0, Adam's averages at step n weigh n + 1 gradients only;
the full-batch flow (2.2)–(2.3) is their limit n → ∞. Theorem 3.1's flow (3.2) keeps the finite
n. With one loss (every E_k = E) every average in (3.2) is of the same gradient, the inner sums
are S_k = (n − k)u, and (3.2) becomes the full-batch flow with the coefficients (1 + γ)/(1 − γ),
γ = β, ρ, of its two parts replaced by

.. math::

    C_γ(n) = 2 w_γ(n) + 1, \qquad
    w_γ(n) = \mathrm{AV}_γ^n[n - k] = \frac{γ}{1-γ} - \frac{(n+1)γ^{n+1}}{1-γ^{n+1}},

so C_γ(0) = 1 and C_γ(n) → (1+γ)/(1−γ) (:func:`startup_coefficient`). The full-batch flow
applies the limit from the first step, where Adam's own O(h) term is still small: summed over
the start-up, the surplus h(C_γ(∞) − C_γ(n)) moves it about h²C_γ(∞)/(1−γ) times the size of
the term away from the iterates, which is O(h²) but 1/((1−γ)n) times the order-0 error after n
steps. Over a window not long against 1/(1 − max(β, ρ)) the full-batch order-1 flow is
therefore *farther* from Adam than the order-0 flow, at every h. The table uses the start-up
flow (:func:`startup_flow`), (3.2) itself, which is fair at every window length.

**The κ-variant.** Each step adds κh²f₁(θ⁽ⁿ⁾) with the full-batch f₁ (:mod:`bea_lib.intervention`),
so its start-up flow has C_γ(n) + κ(1+γ)/(1−γ) in place of C_γ(n), and f₀ + (1+κ)h f₁ past the
start-up. ``kappa_effect`` is the largest distance between the κ = +1 and κ = −1 iterates,
the effect the κ experiment reads; ``kappa_error_ratio`` is the larger of the two κ runs'
distances from their own flows over that effect.

**Solving.** All flows of one sweep (one start, one (β, ρ), every h; order 0, order 1 and
κ = ±1) are one ODE in the step time s = t/h; their gradients and Hessian-vector products come
from one vectorised pass. Each start-up interval is tried for all of them in one step of
scipy's RK45 pair, with the error controlled per flow as scipy controls it; a flow whose step
is rejected is solved alone with scipy's step control (:mod:`bea_lib.integrate`'s guards).
Past the start-up (C_γ within ``SWITCH_TOL`` of its limit) the rest is one DOP853 solve. A flow
is *unsolved* (:class:`FlowStatus`) when it stops being finite or needs more than
``evals_per_step`` evaluations per step of h (default ``EVALS_PER_STEP``; it is then stiff,
with modes that change within a fraction of h, and an explicit solver pays for them); its error
is NaN, and the row's ``status`` says which and why. The budget counts evaluations, not
seconds, so the table does not depend on the machine's load, and nothing hangs. A flow over
budget is not a flow shown wrong: :func:`calibrated_limit` counts it as unknown, not as a
failure.

**Sharpness.** ``h_sharpness`` is h times the largest eigenvalue of diag(1/D)·H at the start
(D of the first step, √(g² + ε)), the preconditioned sharpness that Adam's step sees: the
bias ratio averages over directions, h_sharpness is the worst one.
"""
from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..autodiff import gradient_and_hvp_fn, top_eigenvalue
from ..fileio import atomic_write_text
from ..integrate import FlowError, _solve
from ..intervention import kappa_update
from ..optimizers import adam, adam_init, iterate
from ..order import max_distance
from ..validation import (
    VALIDITY_LIMIT,
    adam_hyper,
    check_int,
    check_n_steps,
    check_positive,
    check_theta0,
    check_unit_interval,
)
from .config import TrainConfig, build_model
from .data import load_dataset
from .diagnostics import bias_ratio, flat_loss
from .evidence import _cell, _parse

__all__ = ["CALIBRATION_COLUMNS", "CALIBRATION_FILE", "ERROR_FACTOR", "Calibration",
           "FlowStatus", "Limit", "calibrated_limit", "calibration_figure", "calibration_table",
           "proxy_loss", "read_calibration_csv", "run_calibration", "startup_coefficient",
           "startup_flow", "startup_rhs", "sweep_limit", "trained_start",
           "write_calibration_csv"]

# The order-1 flow describes a run while it is at least this many times closer to the iterates
# than the order-0 flow: its O(h²) remainder is then at most half the O(h) effect it adds, the
# standard the κ experiment's f₀ gate sets for its own remainder (F0_AGREEMENT_LIMIT = 0.5).
ERROR_FACTOR = 2.0
SWITCH_TOL = 1e-3  # C_γ(n) within this relative distance of (1+γ)/(1-γ): the rest in one piece
EVALS_PER_STEP = 30  # default budget of a flow per step of h: five steps of RK45 (a smooth
# start-up interval takes one, six evaluations); a larger budget solves stiffer rows, slowly
RTOL, ATOL = 1e-8, 1e-10  # the distances read are 1e-5 and more; at these tolerances the
# solver's own error is below 1e-6 (tests/test_calibration.py)
RATIO_POINTS = 5  # points of each window (both ends included) at which the bias ratio is read

# the default sweep: a β > ρ and a ρ > β pair (those of the mechanism chapter), an ε at which
# the flows of both are solved, bias ratios at the start from 0.02 to 5, windows of 40 steps
# (twice the longest memory 1/(1 - 0.95); the start-up flow is fair at any window length)
PAIRS = ((0.95, 0.8), (0.8, 0.95))
EPS = 1e-4
RATIOS = (0.02, 0.05, 0.15, 0.5, 1.5, 5.0)
N_STEPS = 40
CALIBRATION_FILE = "calibration.csv"

CALIBRATION_COLUMNS = ("start", "start_loss", "beta", "rho", "eps", "h", "n_steps",
                       "bias_ratio_start", "bias_ratio", "h_sharpness", "err_order0",
                       "err_order1", "error_ratio", "err_kappa_m1", "err_kappa_p1",
                       "kappa_effect", "kappa_error_ratio", "status", "status_order0",
                       "status_order1", "status_kappa_m1", "status_kappa_p1")


class FlowStatus(StrEnum):
    """What became of the solve of one flow of the calibration table."""

    SOLVED = "solved"
    OVER_BUDGET = "over budget"  # needed more than evals_per_step evaluations per step of h
    NOT_FINITE = "not finite"    # θ or θ̇ stopped being finite: the flow blows up
    FAILED = "failed"            # the solver gave up (a step size below float spacing)


# --- the proxy and its starting points -----------------------------------------------------------

def proxy_loss(*, n_train: int = 64, width: int = 8, activation: str = "tanh",
               seed: int = 1000) -> tuple:
    """(E, θ⁽⁰⁾): the mean cross-entropy of the MNIST-1D MLP (two hidden layers of ``width``
    units, ``activation``) on its first ``n_train`` training signals, as a float64 loss of the
    flat parameters, and the initial parameters drawn with ``seed``."""
    config = TrainConfig(dataset="mnist1d", model="mlp", width=width, activation=activation,
                         n_train=n_train, seed=seed, dtype="float64")
    data = load_dataset("mnist1d", n_train=config.n_train).to(dtype=torch.float64)
    model = build_model(config, data.input_shape, data.n_classes)
    return flat_loss(model, data.x_train, data.y_train)


def trained_start(loss, theta0, *, train_loss: float, max_steps: int = 5000,
                  config: TrainConfig | None = None) -> tuple[torch.Tensor, int]:
    """(θ, n): the first iterate θ⁽ⁿ⁾ of plain Adam from θ⁽⁰⁾ (h, β, ρ, ε of ``config``, by
    default :class:`~bea_lib.nets.config.TrainConfig`'s: the networks chapter's optimiser) whose
    loss is below ``train_loss``. ValueError if Adam does not get there in ``max_steps`` steps."""
    config = TrainConfig() if config is None else config
    train_loss = check_positive("train_loss", train_loss)
    max_steps = check_int("max_steps", max_steps, minimum=1)
    theta0, n = check_theta0(theta0), min(128, max_steps)
    while True:  # one Adam run from θ⁽⁰⁾, twice as long each time the loss is not reached
        rows = adam(loss, theta0, n, h=config.h, beta=config.beta, rho=config.rho, eps=config.eps)
        with torch.no_grad():
            losses = torch.stack([loss(row) for row in rows])
        below = torch.nonzero(losses < train_loss)
        if len(below):
            return rows[int(below[0])], int(below[0])
        if n == max_steps:
            raise ValueError(f"train_loss = {train_loss:g} not reached by plain Adam in {n} steps "
                             f"(h = {config.h:g}, beta = {config.beta:g}, rho = {config.rho:g}; "
                             f"last loss {float(losses[-1]):.4g}): pass a larger train_loss or "
                             "max_steps")
        n = min(2 * n, max_steps)


# --- the start-up flow (Theorem 3.1 with one loss) ---------------------------------------------

def startup_coefficient(gamma: float, n: int) -> float:
    """C_γ(n) = 2 AV_γ^n[n − k] + 1, the coefficient that (3.2) with one loss has at step n in
    place of the full-batch (1 + γ)/(1 − γ) (module docstring); 1 at n = 0 and for γ = 0."""
    if gamma == 0.0:
        return 1.0
    w = gamma / (1 - gamma) - (n + 1) * gamma ** (n + 1) / (1 - gamma ** (n + 1))
    return 2 * w + 1


def _limit_coefficient(gamma: float) -> float:
    return (1 + gamma) / (1 - gamma)


def switch_step(*, beta: float, rho: float, tol: float = SWITCH_TOL) -> int:
    """The first n at which C_β(n) and C_ρ(n) are both within ``tol`` (relative) of their limits."""
    n = 0
    for gamma in (beta, rho):
        while abs(startup_coefficient(gamma, n) / _limit_coefficient(gamma) - 1) > tol:
            n += 1
    return n


class _System(NamedTuple):
    """One flow of a batch: its step size, its order, and κ (0 for Adam's own flow)."""

    h: float
    order: int
    kappa: float = 0.0


def _coefficients(system: _System, n: int | None, *, beta: float, rho: float
                  ) -> tuple[float, float]:
    """(C_β, C_ρ) of ``system``'s flow at step n (None: the limit n → ∞); (0, 0) at order 0."""
    if system.order == 0:
        return 0.0, 0.0
    if n is None:
        return tuple((1 + system.kappa) * _limit_coefficient(g) for g in (beta, rho))
    return tuple(startup_coefficient(g, n) + system.kappa * _limit_coefficient(g)
                 for g in (beta, rho))


class _BatchPoint:
    """The gradients G (R, p) of the loss at the R rows of Θ, from one vectorised forward pass
    and one reverse pass, and ``hvp(V)``, the rows H_r V_r (one more pass through G's graph:
    row r's loss depends on row r alone, so the gradient of Σ_r V_r·G_r is every product at
    once). The last Θ asked for is kept: an interval that starts where the last one ended
    reuses it."""

    def __init__(self, loss):
        self.loss, self.theta, self.X, self.G = loss, None, None, None
        self.evaluations = 0  # gradient passes taken

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        from torch.func import vmap

        if (self.theta is None or self.theta.shape != theta.shape
                or not torch.equal(theta, self.theta)):
            self.theta = theta.detach().clone()
            self.evaluations += 1
            with torch.enable_grad():
                self.X = self.theta.clone().requires_grad_(True)
                # one row: the loss itself (vmap costs more than the pass it batches)
                total = (self.loss(self.X[0]) if len(self.X) == 1
                         else vmap(self.loss)(self.X).sum())
                self.G = torch.autograd.grad(total, self.X, create_graph=True)[0]
        return self.G.detach()

    def hvp(self, V: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            return torch.autograd.grad((self.G * V).sum(), self.X, retain_graph=True)[0]


def _batch_rhs(point: _BatchPoint, systems: Sequence[_System], n: int | None, *, beta: float,
               rho: float, eps: float):
    """dΘ/ds for the rows Θ (flattened) of ``systems`` in the step time s = t/h, on the interval
    of step n (None: past the start-up): h_r times
    θ̇ = −u − h_r (H u) ∘ [C_β/(2D) − C_ρ g²/(2D³)]."""
    h = torch.tensor([[s.h] for s in systems], dtype=torch.float64)
    c_beta, c_rho = (torch.tensor([[c] for c in col], dtype=torch.float64) for col in
                     zip(*(_coefficients(s, n, beta=beta, rho=rho) for s in systems)))
    order1 = any(s.order == 1 for s in systems)

    def rhs(s: float, y: torch.Tensor) -> torch.Tensor:
        G = point(y.reshape(len(systems), -1))
        D = torch.sqrt(G**2 + eps)
        U = G / D
        if not order1:
            return (-h * U).reshape(-1)
        # (3.2) with one loss: M = g, R = D, 2L + L̄ = C_β H u, 2P + P̄ = C_ρ g ∘ H u
        drift = -U - h * point.hvp(U) * (c_beta / (2 * D) - c_rho * G**2 / (2 * D**3))
        return (h * drift).reshape(-1)

    return rhs


def _reason(err: FlowError) -> FlowStatus:
    """The status of a flow whose solve raised ``err`` (read from its message)."""
    text = str(err)
    return (FlowStatus.OVER_BUDGET if "budget" in text else
            FlowStatus.NOT_FINITE if "finite" in text else FlowStatus.FAILED)


def _one_step(point, systems, rows, out, n: int, *, rtol: float, atol: float,
              evals_per_step: int, **hyper) -> list[int]:  # one step: six, within any budget
    """The start-up interval of step n for the flows ``rows`` (out[n] → out[n+1]) in one step
    of scipy's RK45 pair (Dormand–Prince 5(4)), its error estimate normed per flow as scipy's
    RK45 norms it; the flows whose step scipy would accept are written, the others returned."""
    from scipy.integrate import RK45

    A, B, C, E = (torch.as_tensor(np.asarray(c), dtype=torch.float64)
                  for c in (RK45.A, RK45.B, RK45.C, RK45.E))
    rhs = _batch_rhs(point, [systems[r] for r in rows], n, **hyper)
    y0 = out[n, rows].reshape(-1)
    K = [rhs(0.0, y0)]
    for i in range(1, len(B)):
        K.append(rhs(float(C[i]), y0 + sum(A[i, j] * K[j] for j in range(i))))
    y1 = y0 + sum(B[j] * K[j] for j in range(len(B)))
    K.append(rhs(1.0, y1))  # the step's end: the error estimate's last stage
    error = sum(E[j] * K[j] for j in range(len(K)))
    scale = atol + rtol * torch.maximum(y0.abs(), y1.abs())
    norm = ((error / scale) ** 2).view(len(rows), -1).mean(1).sqrt()  # < 1: scipy accepts
    accepted = torch.isfinite(norm) & (norm < 1)
    done = [r for r, a in zip(rows, accepted.tolist()) if a]
    out[n + 1, done] = y1.view(len(rows), -1)[accepted]
    return [r for r, a in zip(rows, accepted.tolist()) if not a]


def _advance(point, systems, rows, out, a: int, b: int, n: int | None, *, rtol: float,
             atol: float, evals_per_step: int, first_step: float = 1.0, **hyper) -> None:
    """Solve the flows ``rows`` of ``systems`` from out[a] over steps a to b into out[a:b+1]
    with scipy's step control: one start-up interval of step n (RK45, trying ``first_step``
    first), or (n None) the rest in one piece (DOP853). Explicit methods only: a numerical
    Jacobian of a batch would cost R·p evaluations."""
    rhs = _batch_rhs(point, [systems[r] for r in rows], n, **hyper)
    y = _solve(rhs, out[a, rows].reshape(-1), b - a, 1.0, rtol=rtol, atol=atol,
               method="RK45" if n is not None else "DOP853",
               max_evals=evals_per_step * (b - a), max_seconds=math.inf,
               first_step=first_step if n is not None else None)
    out[a:b + 1, rows] = y.view(b - a + 1, len(rows), -1)


def _solve_systems(loss, theta0: torch.Tensor, systems: Sequence[_System], n_steps: int, *,
                   beta: float, rho: float, eps: float, rtol: float, atol: float,
                   evals_per_step: int = EVALS_PER_STEP
                   ) -> tuple[list[torch.Tensor | None], dict[int, FlowStatus]]:
    """The flows of ``systems`` from θ⁽⁰⁾ on the grid n = 0, …, n_steps (module docstring):
    one (n_steps + 1, p) tensor per system, None for an unsolved one, and why, by index.

    Each start-up interval is first tried for all flows at once in one RK45 step
    (:func:`_one_step`); past the start-up the batch is solved in one piece. A flow that the
    batch leaves out is solved alone with scipy's step control from then on, each interval
    starting with the step its last one ended with; one that fails is unsolved and leaves.
    """
    R, p = len(systems), theta0.numel()
    out = torch.full((n_steps + 1, R, p), math.nan, dtype=torch.float64)
    out[0] = theta0
    point, active, why = _BatchPoint(loss), list(range(R)), {}
    options = {"beta": beta, "rho": rho, "eps": eps, "rtol": rtol, "atol": atol,
               "evals_per_step": evals_per_step}
    n_switch = min(switch_step(beta=beta, rho=rho), n_steps)
    spans = [(n, n + 1, n) for n in range(n_switch)]
    if n_switch < n_steps:
        spans.append((n_switch, n_steps, None))
    steps: dict[int, int] = {}  # the flows solved alone: RK45 steps their last interval took
    for a, b, n in spans:
        batch = [r for r in active if r not in steps]
        if n is not None:
            alone = _one_step(point, systems, batch, out, n, **options) if batch else []
        else:
            try:
                _advance(point, systems, batch, out, a, b, n, **options)
                alone = []
            except FlowError:  # one at a time, to tell which cannot be solved
                alone = list(batch)
        for r in alone + [r for r in active if r in steps]:
            spent = point.evaluations
            try:
                _advance(point, systems, [r], out, a, b, n, first_step=1 / steps.get(r, 1),
                         **options)
            except FlowError as err:
                why[r] = _reason(err)
                active.remove(r)
            steps[r] = max(1, round((point.evaluations - spent) / 6))  # six per RK45 step
        if not active:
            break
    return [None if r in why else out[:, r] for r in range(R)], why


def startup_rhs(loss, n: int, *, h: float, beta: float, rho: float, eps: float,
                kappa: float = 0.0):
    """The right-hand side ``rhs(t, theta)`` of (3.2) with one loss on [nh, (n+1)h], plus κh f₁
    for the κ-variant: :func:`bea_lib.minibatch.minibatch_adam_rhs` of ``[loss]`` in closed form
    (one gradient and one Hessian-vector product, whatever n)."""
    hyper = adam_hyper(h=h, beta=beta, rho=rho, eps=eps, kappa=kappa)
    rhs = _batch_rhs(_BatchPoint(loss), [_System(hyper.h, 1, hyper.kappa)],
                     check_n_steps(n, name="n"), beta=hyper.beta, rho=hyper.rho, eps=hyper.eps)
    return lambda t, theta: rhs(t / hyper.h, theta) / hyper.h


def startup_flow(loss, theta0, n_steps: int, *, h: float, beta: float, rho: float, eps: float,
                 kappa: float = 0.0, rtol: float = 1e-10, atol: float = 1e-12,
                 evals_per_step: int = EVALS_PER_STEP) -> torch.Tensor:
    """The start-up flow of Adam (κ = 0) or of its κ-variant restarted with fresh moments at
    ``theta0``: θ̃(nh) for n = 0, …, n_steps, shape (n_steps + 1, p).

    Interval by interval with C_γ(n) (:func:`startup_rhs`, Theorem 3.1) until the coefficients
    are within ``SWITCH_TOL`` of their limits, then the full-batch flow f₀ + (1+κ)h f₁ in one
    piece. :class:`~bea_lib.integrate.FlowError` when the flow stops being finite or needs more
    than ``evals_per_step`` evaluations per step of h.
    """
    hyper = adam_hyper(h=h, beta=beta, rho=rho, eps=eps, kappa=kappa)
    [flow], why = _solve_systems(loss, check_theta0(theta0), [_System(hyper.h, 1, hyper.kappa)],
                                 check_n_steps(n_steps), beta=hyper.beta, rho=hyper.rho,
                                 eps=hyper.eps, rtol=check_positive("rtol", rtol),
                                 atol=check_positive("atol", atol),
                                 evals_per_step=check_int("evals_per_step", evals_per_step,
                                                          minimum=6))
    if flow is None:
        raise FlowError(f"the start-up flow (h = {hyper.h:g}, kappa = {hyper.kappa:g}) was not "
                        f"solved: {why[0]}")
    return flow


# --- the iterates --------------------------------------------------------------------------------

def _kappa_runs(loss, theta0: torch.Tensor, n_steps: int, *, hs: Sequence[float],
                kappas: Sequence[float], beta: float, rho: float, eps: float) -> torch.Tensor:
    """Iterates (n_steps + 1, R, p) of R κ-variant runs from θ⁽⁰⁾ side by side (κ = 0: Adam),
    run r with step size hs[r] and κ = kappas[r], through the one loop
    (:func:`bea_lib.optimizers.iterate`) and step (:func:`bea_lib.intervention.kappa_update`)."""
    point = _BatchPoint(loss)
    R = len(hs)

    def hvp_at(rows):
        def product(v):
            V = torch.zeros(R, theta0.numel(), dtype=torch.float64)
            V[rows] = v
            return point.hvp(V)[rows]
        return product

    def update(g, state, **hyper):
        return kappa_update(g, hvp_at, state, **hyper)

    def column(values):
        return torch.tensor([[v] for v in values], dtype=torch.float64)

    hyper = {"h": column(hs), "beta": beta, "rho": rho, "eps": eps, "kappa": column(kappas)}
    return iterate(lambda n, theta: point(theta), theta0.expand(R, -1).clone(), n_steps,
                   adam_init, update, hyper, name="kappa runs", on_nonfinite="keep")


# --- the table ---------------------------------------------------------------------------------

def _bias_ratio_at(loss, theta, *, h, beta, rho, eps) -> float:
    """h‖f₁‖/‖f₀‖ at θ (:func:`bea_lib.nets.diagnostics.bias_ratio`, the gate's quantity)."""
    g, hvp_fn = gradient_and_hvp_fn(loss, theta)
    return bias_ratio(g, hvp_fn, h=h, beta=beta, rho=rho, eps=eps)


def _distance(iterates: torch.Tensor, flow: torch.Tensor | None) -> float:
    """max_n ‖θ⁽ⁿ⁾ − θ̃(nh)‖ (:func:`bea_lib.order.max_distance`); NaN for an unsolved flow or
    iterates that stopped being finite."""
    if flow is None or not torch.isfinite(iterates).all():
        return math.nan
    return max_distance(iterates, flow)


def _sweep(loss, theta0: torch.Tensor, start: str, *, beta: float, rho: float, eps: float,
           ratios: Sequence[float], n_steps: int, rtol: float, atol: float,
           evals_per_step: int) -> list[dict]:
    """The rows of one start and one (β, ρ): h = r/(bias ratio per unit h at θ⁽⁰⁾) for each r."""
    per_h = _bias_ratio_at(loss, theta0, h=1.0, beta=beta, rho=rho, eps=eps)  # r is linear in h
    g, hvp_fn = gradient_and_hvp_fn(loss, theta0)
    # the largest eigenvalue of diag(1/D)·H with the first step's D = √(g² + ε)
    sharpness = top_eigenvalue(hvp_fn, g, scale=(g**2 + eps) ** -0.25)
    hs = [r / per_h for r in ratios]
    k, hyper = len(hs), {"beta": beta, "rho": rho, "eps": eps}
    runs = _kappa_runs(loss, theta0, n_steps, hs=hs * 3, kappas=[0.0] * k + [-1.0] * k + [1.0] * k,
                       **hyper)
    systems = [_System(h, order, kappa) for order, kappa in ((0, 0.0), (1, 0.0), (1, -1.0),
                                                             (1, 1.0)) for h in hs]
    flows, why = _solve_systems(loss, theta0, systems, n_steps, **hyper, rtol=rtol, atol=atol,
                                evals_per_step=evals_per_step)
    names = ("order0", "order1", "kappa_m1", "kappa_p1")
    points = np.unique(np.linspace(0, n_steps, RATIO_POINTS).round().astype(int))
    with torch.no_grad():
        start_loss = float(loss(theta0))
    rows = []
    for i, h in enumerate(hs):
        adam_runs, minus, plus = runs[:, i], runs[:, k + i], runs[:, 2 * k + i]
        flow_status = {f"status_{name}": why.get(j * k + i, FlowStatus.SOLVED)
                       for j, name in enumerate(names)}
        problems = [f"{name[7:]} {value}" for name, value in flow_status.items()
                    if value != FlowStatus.SOLVED]
        problems += [f"{name} iterates not finite" for name, x in
                     (("adam", adam_runs), ("kappa_m1", minus), ("kappa_p1", plus))
                     if not torch.isfinite(x).all()]
        ratios_along = [_bias_ratio_at(loss, adam_runs[n], h=h, **hyper) for n in points]
        err0, err1 = _distance(adam_runs, flows[i]), _distance(adam_runs, flows[k + i])
        err_m1, err_p1 = _distance(minus, flows[2 * k + i]), _distance(plus, flows[3 * k + i])
        effect = _distance(plus, minus)
        rows.append({
            "start": start, "start_loss": start_loss, "beta": beta, "rho": rho, "eps": eps,
            "h": h, "n_steps": n_steps, "bias_ratio_start": ratios_along[0],
            "bias_ratio": max(ratios_along), "h_sharpness": h * sharpness,
            "err_order0": err0, "err_order1": err1, "error_ratio": err1 / err0,
            "err_kappa_m1": err_m1, "err_kappa_p1": err_p1, "kappa_effect": effect,
            "kappa_error_ratio": max(err_m1, err_p1) / effect,
            "status": "; ".join(problems) or FlowStatus.SOLVED, **flow_status})
    return rows


def calibration_table(loss, starts: Mapping[str, torch.Tensor], *,
                      pairs: Iterable[tuple[float, float]] = PAIRS, eps: float = EPS,
                      ratios: Sequence[float] = RATIOS, n_steps: int = N_STEPS,
                      rtol: float = RTOL, atol: float = ATOL,
                      evals_per_step: int = EVALS_PER_STEP) -> list[dict]:
    """The calibration table: one row (:data:`CALIBRATION_COLUMNS`) per start, (β, ρ) in
    ``pairs`` and bias ratio r in ``ratios``, h set so that the bias ratio at the start is r.

    ``starts`` maps a name to a starting point θ⁽⁰⁾ of ``loss``; each window restarts Adam (and
    the κ-variants) there with fresh moments for ``n_steps`` steps (module docstring). The
    bias ratio is measured along Adam's window at ``RATIO_POINTS`` points: ``bias_ratio`` is the
    largest, the gate's reading. A row's ``status`` is "solved" or says which flow was not
    (and why) or which iterates stopped being finite; ``status_order0`` … ``status_kappa_p1``
    hold each flow's :class:`FlowStatus`, and the errors of an unsolved flow are NaN.
    """
    pairs = [(check_unit_interval("beta", b), check_unit_interval("rho", r)) for b, r in pairs]
    ratios = [check_positive("ratios", r) for r in ratios]
    n_steps, eps = check_int("n_steps", n_steps, minimum=1), check_positive("eps", eps)
    evals_per_step = check_int("evals_per_step", evals_per_step, minimum=6)  # one RK45 step
    if not pairs or not ratios or not starts:
        raise ValueError("starts, pairs and ratios must each hold at least one value")
    rows = []
    for start, theta0 in starts.items():
        for beta, rho in pairs:
            rows += _sweep(loss, check_theta0(theta0), str(start), beta=beta, rho=rho, eps=eps,
                           ratios=ratios, n_steps=n_steps, rtol=check_positive("rtol", rtol),
                           atol=check_positive("atol", atol), evals_per_step=evals_per_step)
    return rows


# --- the rule ------------------------------------------------------------------------------------

def sweep_limit(bias_ratios, error_ratios, *, over_budget=None,
                factor: float = ERROR_FACTOR) -> tuple[float, bool]:
    """(limit, reached) of one sweep by the rule of :func:`calibrated_limit`: the bias ratio up
    to which every row's error ratio is at most 1/``factor``.

    Rows are taken in increasing bias ratio. A row *passes* if its error ratio is at most
    1/factor and *fails* if it is larger or NaN (a flow that blew up, iterates that did); a row
    whose flows spent their budget (``over_budget``) is *unknown*. At the first row that does
    not pass the walk stops, and rows past it do not count:

    - a failing row: the limit is where the error ratio crosses 1/factor, interpolated linearly
      in log–log between the last passing row and this one (the last passing row's bias ratio
      if this one's error ratio is NaN), 0 if no row passed; ``reached`` is True;
    - an unknown row: the limit is the last passing row's bias ratio (0 if none), and
      ``reached`` is False: the true limit is at least that;
    - no such row: the largest bias ratio measured, ``reached`` False.
    """
    x, y = np.asarray(bias_ratios, dtype=float), np.asarray(error_ratios, dtype=float)
    unknown = (np.zeros(x.shape, dtype=bool) if over_budget is None
               else np.asarray(over_budget, dtype=bool))
    factor = check_positive("factor", factor)
    if x.ndim != 1 or x.size == 0 or y.shape != x.shape or unknown.shape != x.shape:
        raise ValueError(f"bias_ratios, error_ratios and over_budget must be 1-D of one length "
                         f">= 1, got shapes {x.shape}, {y.shape} and {unknown.shape}")
    if not (np.isfinite(x) & (x > 0)).all():
        raise ValueError(f"bias_ratios must be finite and > 0, got {x.tolist()}")
    threshold, last = 1 / factor, None
    for i in np.argsort(x, kind="stable"):
        if not unknown[i] and np.isfinite(y[i]) and y[i] <= threshold:
            last = i
            continue
        if unknown[i]:
            return (0.0 if last is None else float(x[last])), False
        if last is None:
            return 0.0, True
        if not np.isfinite(y[i]) or y[last] <= 0 or x[i] == x[last]:
            return float(x[last]), True
        share = (math.log(threshold) - math.log(y[last])) / (math.log(y[i]) - math.log(y[last]))
        log_x = math.log(x[last]) + share * (math.log(x[i]) - math.log(x[last]))
        return float(math.exp(log_x)), True
    return float(x[last]), False


class Limit(NamedTuple):
    """The calibrated limit and what it rests on.

    ``value`` is the smallest of the ``sweeps``' limits, and ``binding`` the sweep that gives
    it. Where that sweep crossed the threshold, ``reached`` is True and ``value`` is the limit;
    otherwise (it ended in rows over budget, or never failed) ``value`` is a lower bound, and
    ``upper``, the smallest limit that a sweep did reach (inf if none did), bounds it from
    above. ``sweeps`` maps (quantity, start, β, ρ), quantity "adam" or "kappa", to that sweep's
    (limit, reached) from :func:`sweep_limit`.
    """

    value: float
    reached: bool
    upper: float
    binding: tuple
    sweeps: dict


def _adam_reading(row: Mapping, factor: float) -> tuple[float, float, bool]:
    """(bias ratio, error ratio, over budget) of a row for Adam's flows."""
    flows = (row["status_order0"], row["status_order1"])
    return (float(row["bias_ratio"]), float(row["error_ratio"]),
            FlowStatus.OVER_BUDGET in flows)


def _kappa_reading(row: Mapping, factor: float) -> tuple[float, float, bool]:
    """(the κ = +1 run's own bias ratio 2·bias_ratio, as validity_gate scales it, the larger
    κ run's distance from its own flow over the κ effect, over budget) of a row. One κ flow
    already too far decides, even if the other spent its budget."""
    errors = [float(row[c]) for c in ("err_kappa_m1", "err_kappa_p1")]
    known = [e for e in errors if math.isfinite(e)]
    ratio = max(known) / float(row["kappa_effect"]) if known else math.nan
    over = FlowStatus.OVER_BUDGET in (row["status_kappa_m1"], row["status_kappa_p1"])
    if over and math.isfinite(ratio) and ratio > 1 / factor:
        over = False  # failed whatever the other flow would have given
    elif not over and len(known) < 2:
        ratio = math.nan  # a κ flow that blew up: a failure
    return 2 * float(row["bias_ratio"]), ratio, over


def calibrated_limit(rows: Iterable[Mapping], *, factor: float = ERROR_FACTOR,
                     kappa: bool = True) -> Limit:
    """The limit on the bias ratio that the calibration table ``rows`` supports.

    The declared rule: a modified flow describes a run up to the bias ratio below which it is
    at least ``factor`` (:data:`ERROR_FACTOR` = 2) times closer to the iterates than the flow
    without the O(h) term, so that what the series leaves out is at most half the effect of
    the O(h) term. For each start and (β, ρ), :func:`sweep_limit` of Adam's rows (bias ratio
    against err_order1/err_order0) and, with ``kappa``, of the κ runs' (the κ = +1 run's own
    ratio 2·bias_ratio, as :func:`bea_lib.nets.evidence.validity_gate` scales it, against
    kappa_error_ratio: the κ runs' distance from their own flows over the κ effect). The limit
    is the smallest of them: the gate must hold for every run the experiments make, from every
    start.
    """
    groups: dict[tuple, list[Mapping]] = {}
    for row in rows:
        groups.setdefault((str(row["start"]), float(row["beta"]), float(row["rho"])),
                          []).append(row)
    if not groups:
        raise ValueError("rows must hold at least one row of the calibration table")
    readings = {"adam": _adam_reading, **({"kappa": _kappa_reading} if kappa else {})}
    sweeps = {}
    for quantity, reading in readings.items():
        for key, group in groups.items():
            x, y, over = zip(*(reading(row, factor) for row in group))
            sweeps[(quantity, *key)] = sweep_limit(x, y, over_budget=over, factor=factor)
    binding = min(sweeps, key=lambda key: (sweeps[key][0], not sweeps[key][1]))
    upper = min((v for v, reached in sweeps.values() if reached), default=math.inf)
    return Limit(sweeps[binding][0], sweeps[binding][1], upper, binding, sweeps)


# --- files and the figure ----------------------------------------------------------------------

def write_calibration_csv(rows: Iterable[Mapping], path: str | Path) -> Path:
    """Write the table to ``path`` atomically, :data:`CALIBRATION_COLUMNS` in order, floats at
    full precision (they read back to the same numbers)."""
    rows = list(rows)
    if not rows:
        raise ValueError("rows must hold at least one row, got none")
    for i, row in enumerate(rows):
        missing = [c for c in CALIBRATION_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"calibration row {i} lacks the columns {missing}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CALIBRATION_COLUMNS)
    writer.writerows([_cell(row[c]) for c in CALIBRATION_COLUMNS] for row in rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, buf.getvalue())


def read_calibration_csv(path: str | Path) -> list[dict]:
    """The rows written by :func:`write_calibration_csv`, values parsed back to int, float or
    str; ValueError naming the file if it lacks a column."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CALIBRATION_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} is not a calibration table: it lacks the columns {missing}")
        rows = [{k: _parse(v) for k, v in row.items()} for row in reader]
    for row in rows:  # a start named like a number stays a name
        row["start"] = str(row["start"])
    return rows


def calibration_figure(rows: Sequence[Mapping], *, limit: Limit | float | None = None,
                       factor: float = ERROR_FACTOR):
    """The error ratio against the bias ratio, log–log, one panel per (β, ρ), one colour per
    start: Adam's err_order1/err_order0 (filled, solid) and the κ runs' distance from their
    own flows over the κ effect (open, dashed, at the κ = +1 run's own ratio 2·bias_ratio);
    a row whose flows were not solved (or, for κ, one of them) is a cross on the top edge. Grey lines: the ratio
    1/``factor`` the rule asks for, ``VALIDITY_LIMIT`` (dashed) and the calibrated ``limit``
    (dotted; a :class:`Limit` that is a lower bound is labelled so, with its upper bound). Built
    with :func:`bea_lib.plotting.panel_grid`; a chapter shows it with
    :func:`bea_lib.plotting.show_figure`."""
    from ..plotting import panel_grid

    pairs = list(dict.fromkeys((float(r["beta"]), float(r["rho"])) for r in rows))
    starts = list(dict.fromkeys(str(r["start"]) for r in rows))
    if not pairs:
        raise ValueError("rows must hold at least one row of the calibration table")
    readings = {"Adam": (_adam_reading, "o-", True), "κ = ±1": (_kappa_reading, "o--", False)}
    values = [reading(r, factor)[1] for r in rows for reading, _, _ in readings.values()]
    top = 2 * max([v for v in values if math.isfinite(v) and v > 0] + [1 / factor])
    fig, axes = panel_grid(len(pairs), sharey=True, panel=(3.4, 2.9))
    for ax, (beta, rho) in zip(axes, pairs):
        for j, start in enumerate(starts):
            group = [r for r in rows if str(r["start"]) == start
                     and (float(r["beta"]), float(r["rho"])) == (beta, rho)]
            for name, (reading, style, filled) in readings.items():
                x, y, over = (np.array(v, dtype=float) for v in
                              zip(*sorted(reading(r, factor) for r in group)))
                solved = np.isfinite(y) & (over == 0)  # over budget: unknown, a cross
                ax.loglog(x[solved], y[solved], style, color=f"C{j}", lw=1, ms=4,
                          mfc=f"C{j}" if filled else "none", label=f"{name}, {start}")
                ax.plot(x[~solved], np.full(int((~solved).sum()), top), "x", color=f"C{j}",
                        ms=6)
        ax.axhline(1 / factor, color="gray", lw=0.8, label=f"error ratio 1/{factor:g}")
        ax.axvline(VALIDITY_LIMIT, color="gray", lw=1, ls="--",
                   label=f"VALIDITY_LIMIT = {VALIDITY_LIMIT:g}")
        if limit is not None and float(limit[0] if isinstance(limit, Limit) else limit) > 0:
            x, label = _limit_line(limit)
            ax.axvline(x, color="black", lw=1, ls=":", label=label)
        ax.set_title(f"β = {beta:g}, ρ = {rho:g}", fontsize=9)
        ax.set_xlabel("bias ratio h‖f₁‖/‖f₀‖")
        ax.tick_params(axis="x", which="minor", labelbottom=False)  # minor labels overlap
    axes[0].set_ylabel("error ratio, order 1 / order 0")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=2)
    return fig


def _limit_line(limit: Limit | float) -> tuple[float, str]:
    """Where the calibrated limit's line goes, and its legend label."""
    if not isinstance(limit, Limit):
        return float(limit), f"calibrated: {float(limit):.2g}"
    if limit.reached:
        return limit.value, f"calibrated: {limit.value:.2g}"
    upper = f", ≤ {limit.upper:.2g}" if math.isfinite(limit.upper) else ""
    return limit.value, f"calibrated: ≥ {limit.value:.2g}{upper}"


# --- one call for a chapter ----------------------------------------------------------------------

class Calibration(NamedTuple):
    """What :func:`run_calibration` returns: the table's rows, the limit the rule gives, the
    starts' training steps, the wall time in seconds and the CSV written (or None)."""

    rows: list
    limit: Limit
    start_steps: dict
    seconds: float
    path: Path | None


def run_calibration(out_dir: str | Path | None = None, *, train_losses: Sequence[float] = (1.0,),
                    n_train: int = 64, width: int = 8, seed: int = 1000,
                    pairs: Iterable[tuple[float, float]] = PAIRS, eps: float = EPS,
                    ratios: Sequence[float] = RATIOS, n_steps: int = N_STEPS,
                    evals_per_step: int = EVALS_PER_STEP,
                    factor: float = ERROR_FACTOR) -> Calibration:
    """The whole study: the proxy (:func:`proxy_loss`), its starts (the initial point and one
    reached by plain Adam at each of ``train_losses``, :func:`trained_start`), the table
    (:func:`calibration_table`), the limit (:func:`calibrated_limit`), and
    ``out_dir/calibration.csv`` when ``out_dir`` is given."""
    t0 = time.perf_counter()
    loss, theta0 = proxy_loss(n_train=n_train, width=width, seed=seed)
    starts, steps = {"initial": theta0}, {"initial": 0}
    for target in train_losses:
        name = f"trained to {target:g}"
        starts[name], steps[name] = trained_start(loss, theta0, train_loss=target)
    rows = calibration_table(loss, starts, pairs=pairs, eps=eps, ratios=ratios, n_steps=n_steps,
                             evals_per_step=evals_per_step)
    path = (None if out_dir is None
            else write_calibration_csv(rows, Path(out_dir) / CALIBRATION_FILE))
    return Calibration(rows, calibrated_limit(rows, factor=factor), steps,
                       time.perf_counter() - t0, path)
