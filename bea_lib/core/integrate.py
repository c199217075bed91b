r"""Solving a modified flow θ̇ = F(t, θ) accurately on the grid t = 0, h, …, n_steps·h.

The flows of :mod:`bea_lib.core.flows` are compared with iterates whose distance from them is O(h²),
so the solver must be far more accurate than that: scipy's 8th-order Dormand–Prince (DOP853)
with a relative tolerance of 1e-10 by default. Right-hand sides are torch functions of a float64
tensor; the conversion to and from numpy happens here and nowhere else.

Solving never hangs:

* a non-finite θ or θ̇ stops the solver at once with a :class:`FlowError` naming t and the
  component (a NaN gradient would otherwise make the step-size control shrink a NaN step forever);
* every solve has a budget of right-hand-side evaluations (``max_evals``) and of wall time
  (``max_seconds``, 30 s by default); running out raises :class:`FlowError` with the remedies;
* ``rhs`` must return a tensor of θ's shape; anything else is a ``TypeError`` naming it;
* ``method="auto"`` (the default) starts with the explicit DOP853 and, when it *stalls*, goes on
  from where it stands with LSODA (ODEPACK's switch between Adams and the stiff BDF methods, at
  the same tolerances). Stalling means more than ``STALL_EVALS_BASE + STALL_EVALS_PER_STEP`` ·
  n_steps evaluations, one DOP853 step per grid interval: a modified flow changes little over
  one step h of its algorithm (otherwise its expansion is void), and the order-test and chapter
  flows measured took 0.09-0.47 evaluations per interval, so an explicit method that needs more
  is held back by stability or by a near-singular layer, not by accuracy. Both happen to the ε-sign
  flow near a minimum: at order 0 its Jacobian is about -2H/√ε there; at order 1 with h large
  against |g|(1-β)/H the O(h) term grows like 1/|g| and the flow crosses a layer of width √ε
  at speeds of thousands.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.integrate import DOP853, LSODA, RK23, RK45, BDF, Radau

from .validation import check_n_steps, check_positive, check_theta0

RHS = Callable[[float, torch.Tensor], torch.Tensor]  # F(t, θ) -> θ̇, argument order as torchdiffeq

SOLVERS = {"DOP853": DOP853, "RK45": RK45, "RK23": RK23, "Radau": Radau, "BDF": BDF,
           "LSODA": LSODA}
METHODS = ("auto", *SOLVERS)
STIFF_METHOD = "LSODA"  # ODEPACK: BDF where stiff, Adams where not; 6x fewer evaluations than Radau
STALL_EVALS_BASE = 500  # evaluations the explicit method may always spend ...
STALL_EVALS_PER_STEP = 12  # ... plus one DOP853 step per grid interval h before "auto" switches
BUDGET_EVALS_BASE = 10_000  # default max_evals: this many ...
BUDGET_EVALS_PER_STEP = 100  # ... plus this many per grid interval
DEFAULT_MAX_SECONDS = 30.0  # default wall budget of one solve: a stiff flow whose evaluations
# are expensive (a network's, a 3-D order-0 flow at ε = 1e-12) fails in 30 s rather than after
# minutes within max_evals. A known-slow solve passes a larger max_seconds (math.inf: none).


class FlowError(RuntimeError):
    """Solving a flow failed: a non-finite θ or θ̇, an exhausted budget, or the solver gave up."""


def default_max_evals(n_steps: int) -> int:
    """The default budget of right-hand-side evaluations for a solve over n_steps intervals."""
    return BUDGET_EVALS_BASE + BUDGET_EVALS_PER_STEP * n_steps


def check_method(method: str) -> str:
    """``method`` is "auto" or one of scipy's solve_ivp methods."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def check_solver_options(*, rtol: float, atol: float, method: str, max_evals, max_seconds
                         ) -> dict:
    """The solver's options, checked (the public flows call this once, then solve unchecked)."""
    if max_evals is not None:
        if isinstance(max_evals, bool) or not isinstance(max_evals, (int, np.integer)) \
                or max_evals < 1:
            raise ValueError(f"max_evals must be an integer >= 1 or None, got {max_evals!r}")
        max_evals = int(max_evals)
    if max_seconds is not None and max_seconds != math.inf:
        max_seconds = check_positive("max_seconds", max_seconds)
    return dict(rtol=check_positive("rtol", rtol), atol=check_positive("atol", atol),
                method=check_method(method), max_evals=max_evals, max_seconds=max_seconds)


def solve_flow(rhs: RHS, theta0, n_steps: int, *, h: float, rtol: float = 1e-10,
               atol: float = 1e-12, method: str = "auto", max_evals: int | None = None,
               max_seconds: float | None = None) -> torch.Tensor:
    """θ̃(nh) for n = 0, …, n_steps, as a float64 tensor of shape (n_steps + 1, p).

    ``rhs(t, theta)`` returns θ̇ for a 1-D float64 tensor ``theta``. ``method`` is "auto"
    (DOP853, then Radau if DOP853 stalls: module docstring) or one of solve_ivp's methods, used
    alone; the tolerances hold for any of them. ``max_evals`` (default
    :func:`default_max_evals`) and ``max_seconds`` (default ``DEFAULT_MAX_SECONDS``, 30 s;
    ``math.inf`` for none) bound the work. Raises
    :class:`FlowError`, a ``RuntimeError``, when θ or θ̇ stops being finite, when the budget is
    spent, or when the solver fails (for instance if the flow blows up before n_steps·h).
    """
    theta0 = check_theta0(theta0)
    n_steps, h = check_n_steps(n_steps), check_positive("h", h)
    options = check_solver_options(rtol=rtol, atol=atol, method=method, max_evals=max_evals,
                                   max_seconds=max_seconds)
    return solve(rhs, theta0, n_steps, h=h, **options)


def solve(rhs: RHS, theta0: torch.Tensor, n_steps: int, *, h: float, rtol: float, atol: float,
           method: str = "auto", explicit: str = "DOP853", max_evals: int | None = None,
           max_seconds: float | None = None, first_step: float | None = None) -> torch.Tensor:
    """:func:`solve_flow` on checked input; "auto" starts with ``explicit``.

    ``first_step`` is the first method's first step (default: scipy's choice, which costs one
    evaluation of ``rhs``).
    """
    if n_steps == 0:
        return theta0[None].clone()
    t_eval = h * np.arange(n_steps + 1)
    fun = _GuardedRHS(rhs, t_end=t_eval[-1], n_steps=n_steps,
                      max_evals=default_max_evals(n_steps) if max_evals is None else max_evals,
                      max_seconds=DEFAULT_MAX_SECONDS if max_seconds is None else max_seconds)
    methods = (explicit, STIFF_METHOD) if method == "auto" else (method,)
    stall = STALL_EVALS_BASE + STALL_EVALS_PER_STEP * n_steps
    y = _integrate(fun, theta0.cpu().numpy(), t_eval, methods, rtol=rtol, atol=atol, stall=stall,
                   first_step=first_step)
    return torch.from_numpy(y).to(theta0.device)


def solve_intervals(rhs_at: Callable[[int], RHS], theta0: torch.Tensor, n_steps: int, *,
                    h: float, rtol: float, atol: float, method: str = "auto",
                    max_evals: int | None = None, max_seconds: float | None = None
                    ) -> torch.Tensor:
    """:func:`solve` of a piecewise flow, θ̇ = ``rhs_at(n)`` on [nh, (n+1)h] (Theorem 3.1's
    (3.2)), interval by interval: shape (n_steps + 1, p); the budgets hold per interval."""
    out = [theta0]
    for n in range(n_steps):
        # rhs ignores t; on a span this short RK45 meets the tolerances in fewer evaluations,
        # mostly in one step: trying the whole interval first saves scipy's initial-step probe
        # (one evaluation of eight), and a step the error control rejects is retried shorter
        out.append(solve(rhs_at(n), out[-1], 1, h=h, rtol=rtol, atol=atol, method=method,
                         explicit="RK45", max_evals=max_evals, max_seconds=max_seconds,
                         first_step=h)[-1])
    return torch.stack(out)


class _GuardedRHS:
    """The right-hand side as scipy calls it: evaluations counted, non-finite values refused."""

    def __init__(self, rhs: RHS, *, t_end: float, n_steps: int, max_evals: int,
                 max_seconds: float | None):
        self.rhs, self.t_end, self.n_steps = rhs, t_end, n_steps
        self.max_evals, self.max_seconds = max_evals, max_seconds
        self.n_evals, self.start, self.method, self.largest = 0, time.monotonic(), "", 0.0

    def __call__(self, t: float, y: np.ndarray) -> np.ndarray:
        self.n_evals += 1
        self._check_budget(t)
        size = float(np.abs(y).max())  # NaN if any component is NaN
        if not np.isfinite(size):
            j = int(np.flatnonzero(~np.isfinite(y))[0])
            raise FlowError(f"the flow's θ stopped being finite at t = {t:.6g} (of "
                            f"{self.t_end:.6g}): θ[{j}] = {float(y[j])!r}; the flow blows up (the "
                            "iterates probably diverge too): shorten n_steps·h or reduce h")
        self.largest = max(self.largest, size)
        with torch.no_grad():  # torch.func transforms inside rhs need no outer graph
            dy = self.rhs(t, torch.from_numpy(np.ascontiguousarray(y)))
        if not isinstance(dy, torch.Tensor):
            raise TypeError(f"rhs(t, theta) must return a torch tensor of shape {y.shape} "
                            f"(θ̇), got {type(dy).__module__}.{type(dy).__qualname__}"
                            f"{'' if dy is not None else ' (does it end with a return?)'}")
        dy = dy.detach().cpu().numpy()
        if dy.shape != y.shape:
            raise ValueError(f"rhs(t, theta) must return shape {y.shape}, got {dy.shape}")
        if not np.isfinite(dy).all():
            j = int(np.flatnonzero(~np.isfinite(dy))[0])
            raise FlowError(f"the flow's right-hand side is not finite at t = {t:.6g} "
                            f"(of {self.t_end:.6g}): component {j} is {float(dy[j])!r} at θ[{j}] "
                            f"= {float(y[j])!r}; the loss's gradient or Hessian-vector product is "
                            "NaN or infinite there (a non-smooth loss, or a point off its domain)")
        return dy

    def _check_budget(self, t: float) -> None:
        elapsed = time.monotonic() - self.start
        if self.n_evals <= self.max_evals and elapsed <= self.max_seconds:
            return  # the common case, checked without building the messages
        where = (f"at t = {t:.6g} of {self.t_end:.6g} ({self.n_steps} steps of h, method "
                 f"{self.method})")
        if self.n_evals > self.max_evals:
            raise FlowError(f"the flow used its budget of max_evals = {self.max_evals} right-hand "
                            f"side evaluations {where}, max |θ_j| = {self.largest:.3g} so far. If "
                            "that is huge, the flow blows up near this t: shorten the horizon. "
                            "Otherwise it is stiff (e.g. the ε-sign flow near a minimum, where "
                            "θ̇ ≈ -H(θ-θ*)/√ε): pass method='Radau' (or 'auto', 'BDF', 'LSODA'), "
                            "a larger eps, a looser rtol, or a larger max_evals")
        if elapsed > self.max_seconds:
            raise FlowError(f"the flow used its budget of max_seconds = {self.max_seconds:g} "
                            f"{where} after {self.n_evals} evaluations: pass method='Radau' if it "
                            "is stiff, a looser rtol, a shorter horizon, or a larger max_seconds "
                            "(math.inf: no limit)")


def _integrate(fun: _GuardedRHS, y0: np.ndarray, t_eval: np.ndarray, methods: Sequence[str], *,
               rtol: float, atol: float, stall: int, first_step: float | None = None
               ) -> np.ndarray:
    """Step scipy's solvers through [0, t_eval[-1]], filling the rows of t_eval by dense output.

    Each method but the last is abandoned, from the point it reached, once it has spent
    ``stall`` evaluations. ``first_step`` goes to the first method only.
    """
    out = np.empty((t_eval.size, y0.size))
    out[0], filled = y0, 1
    t, y = 0.0, y0
    for i, name in enumerate(methods):
        fun.method, last, spent_before = name, i == len(methods) - 1, fun.n_evals
        solver = SOLVERS[name](fun, t, y, t_eval[-1], rtol=rtol, atol=atol,
                               first_step=first_step if i == 0 else None)
        while solver.status == "running":
            message = solver.step()
            if solver.status == "failed":
                raise FlowError(f"solving the flow failed at t = {solver.t:.6g} of "
                                f"{t_eval[-1]:.6g} (method {name}): {message}")
            # rows before the end by dense output; the end's row is the solver's own y (below)
            reached = min(np.searchsorted(t_eval, solver.t, side="right"), t_eval.size - 1)
            if reached > filled:
                out[filled:reached] = solver.dense_output()(t_eval[filled:reached]).T
                filled = reached
            if not last and fun.n_evals - spent_before > stall and solver.status == "running":
                break  # stalled: go on with the next (stiff) method from solver.t
        if solver.status == "finished":
            break
        t, y = solver.t, solver.y
    out[-1] = solver.y  # t_eval[-1] is the end of the span: no interpolation error there
    return out
