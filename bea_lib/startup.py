r"""Adam restarted with fresh moments: its start-up flow, and many such flows and runs at once.

Symbols as in :mod:`bea_lib.intervention`: h ``h``, β ``beta``, ρ ``rho``, ε ``eps`` (inside
the square root), κ ``kappa``; g = ∇E(θ), H = ∇²E(θ), D = √(g² + ε), u = g/D; f₀ = −u and f₁
the O(1) and O(h) terms of Adam's modified flow (2.2)–(2.3).

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
therefore *farther* from Adam than the order-0 flow, at every h. The start-up flow
(:func:`startup_flow`) is (3.2) itself and is fair at every window length.

**The κ-variant.** Each step adds κh²f₁(θ⁽ⁿ⁾) with the full-batch f₁
(:mod:`bea_lib.intervention`), so its start-up flow has C_γ(n) + κ(1+γ)/(1−γ) in place of
C_γ(n), and is f₀ + (1+κ)h f₁ past the start-up. :func:`kappa_runs` steps many κ-variant runs
(κ = 0: Adam) side by side.

**Solving many.** :func:`solve_startup_flows` solves flows from one start with their own h,
order (0: f₀ alone) and κ as one ODE in the step time s = t/h; their gradients and
Hessian-vector products come from one vectorised pass. Each start-up interval is tried for all
of them in one step of scipy's RK45 pair, with the error controlled per flow as scipy controls
it; a flow whose step is rejected is solved alone with scipy's step control
(:mod:`bea_lib.integrate`'s guards).
Past the start-up (C_γ within ``SWITCH_TOL`` of its limit) the rest is one DOP853 solve. A flow
is *unsolved* (:class:`FlowStatus`) when it stops being finite or needs more than
``evals_per_step`` evaluations per step of h (default ``EVALS_PER_STEP``; it is then stiff,
with modes that change within a fraction of h, and an explicit solver pays for them) and
leaves the batch. The budget counts evaluations, not seconds, so what is solved does not
depend on the machine's load, and nothing hangs.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from typing import NamedTuple

import numpy as np
import torch

from .integrate import FlowError, _solve
from .intervention import kappa_update
from .optimizers import adam_init, iterate
from .validation import (
    adam_hyper,
    check_int,
    check_n_steps,
    check_order,
    check_positive,
    check_theta0,
)

__all__ = ["EVALS_PER_STEP", "FlowSpec", "FlowStatus", "kappa_runs", "solve_startup_flows",
           "startup_coefficient", "startup_flow", "startup_rhs", "switch_step"]

SWITCH_TOL = 1e-3  # C_γ(n) within this relative distance of (1+γ)/(1-γ): the rest in one piece
EVALS_PER_STEP = 30  # default budget of a flow per step of h: five steps of RK45 (a smooth
# start-up interval takes one, six evaluations); a larger budget solves stiffer flows, slowly


class FlowStatus(StrEnum):
    """What became of the solve of one flow of :func:`solve_startup_flows`."""

    SOLVED = "solved"
    OVER_BUDGET = "over budget"  # needed more than evals_per_step evaluations per step of h
    NOT_FINITE = "not finite"    # θ or θ̇ stopped being finite: the flow blows up
    FAILED = "failed"            # the solver gave up (a step size below float spacing)



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


class FlowSpec(NamedTuple):
    """One flow of :func:`solve_startup_flows`: its step size h, its order (0: f₀ alone, 1: the
    start-up flow) and κ (0 for Adam's own flow)."""

    h: float
    order: int
    kappa: float = 0.0


def _coefficients(system: FlowSpec, n: int | None, *, beta: float, rho: float
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


def _batch_rhs(point: _BatchPoint, systems: Sequence[FlowSpec], n: int | None, *, beta: float,
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


def solve_startup_flows(loss, theta0, specs: Sequence[FlowSpec], n_steps: int, *, beta: float,
                        rho: float, eps: float, rtol: float = 1e-10, atol: float = 1e-12,
                        evals_per_step: int = EVALS_PER_STEP
                        ) -> tuple[list[torch.Tensor | None], dict[int, FlowStatus]]:
    """The flows ``specs`` from θ⁽⁰⁾, each on its own grid t = nh, n = 0, …, n_steps (module
    docstring): one (n_steps + 1, p) tensor per flow, None for an unsolved one, and the
    :class:`FlowStatus` of each unsolved one, by index.

    Each start-up interval is first tried for all flows at once in one RK45 step; past the
    start-up the batch is solved in one piece. A flow that the batch leaves out is solved alone
    with scipy's step control from then on, each interval starting with the step its last one
    ended with; one that fails is unsolved and leaves.
    """
    theta0, n_steps = check_theta0(theta0), check_n_steps(n_steps)
    runs = [adam_hyper(h=f.h, beta=beta, rho=rho, eps=eps, kappa=f.kappa) for f in specs]
    systems = [FlowSpec(r.h, check_order(f.order), r.kappa) for f, r in zip(specs, runs)]
    if not systems:
        raise ValueError("specs must hold at least one flow")
    options = {"beta": runs[0].beta, "rho": runs[0].rho, "eps": runs[0].eps,
               "rtol": check_positive("rtol", rtol), "atol": check_positive("atol", atol),
               # one RK45 step takes six evaluations
               "evals_per_step": check_int("evals_per_step", evals_per_step, minimum=6)}
    return _solve_flows(loss, theta0, systems, n_steps, **options)


def _solve_flows(loss, theta0, systems, n_steps, **options):
    """:func:`solve_startup_flows` on checked input."""
    R, p = len(systems), theta0.numel()
    out = torch.full((n_steps + 1, R, p), math.nan, dtype=torch.float64)
    out[0] = theta0
    point, active, why = _BatchPoint(loss), list(range(R)), {}
    n_switch = min(switch_step(beta=options["beta"], rho=options["rho"]), n_steps)
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
    rhs = _batch_rhs(_BatchPoint(loss), [FlowSpec(hyper.h, 1, hyper.kappa)],
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
    [flow], why = solve_startup_flows(loss, theta0, [FlowSpec(hyper.h, 1, hyper.kappa)], n_steps,
                                      beta=hyper.beta, rho=hyper.rho, eps=hyper.eps, rtol=rtol,
                                      atol=atol, evals_per_step=evals_per_step)
    if flow is None:
        raise FlowError(f"the start-up flow (h = {hyper.h:g}, kappa = {hyper.kappa:g}) was not "
                        f"solved: {why[0]}")
    return flow


def kappa_runs(loss, theta0, n_steps: int, *, h: Sequence[float], beta: float, rho: float,
               eps: float, kappa: Sequence[float]) -> torch.Tensor:
    """Iterates (n_steps + 1, R, p) of R κ-variant runs from θ⁽⁰⁾ side by side (κ = 0: Adam),
    run r with step size h[r] and κ = kappa[r] (one of each per run), through the one loop
    (:func:`bea_lib.optimizers.iterate`) and step (:func:`bea_lib.intervention.kappa_update`);
    the gradients and products of all runs come from one vectorised pass. Iterates that stop
    being finite are kept as they are."""
    theta0, n_steps = check_theta0(theta0), check_n_steps(n_steps)
    hs, kappas = list(h), list(kappa)
    if len(hs) != len(kappas) or not hs:
        raise ValueError(f"h and kappa must have one value per run (at least one), got "
                         f"{len(hs)} and {len(kappas)}")
    runs = [adam_hyper(h=a, beta=beta, rho=rho, eps=eps, kappa=k) for a, k in zip(hs, kappas)]
    point = _BatchPoint(loss)
    R = len(runs)

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

    hyper = {"h": column([r.h for r in runs]), "beta": runs[0].beta, "rho": runs[0].rho,
             "eps": runs[0].eps, "kappa": column([r.kappa for r in runs])}
    return iterate(lambda n, theta: point(theta), theta0.expand(R, -1).clone(), n_steps,
                   adam_init, update, hyper, name="kappa runs", on_nonfinite="keep")
