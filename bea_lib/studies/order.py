r"""Convergence-order studies: is a modified flow really O(h^{order+1}) close to the iterates?

For each step size h and each order, run n = round(T/h) steps of the algorithm and solve its
modified flow on the same grid; the error is max_n ‖θ⁽ⁿ⁾ - θ̃(nh)‖₂. If the flow of order k is
right the error is C h^{k+1}, so the least-squares slope of log(error) against log(h) is about
k + 1: 1 for ``order=0`` and 2 for ``order=1``. A sign or index slip in an O(h) term shows up as
slope 1. The slopes are asymptotic: take h small against 1 - β, 1 - ρ and the curvature along
the path, and step sizes h₀·2⁻ᵏ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import linregress

from ..core import flows, minibatch, optimizers
from ..core.validation import check_positive

# method name -> (iterates, flow, hyperparameters the iterates do not take)
_METHODS = {
    "adam": (optimizers.adam, flows.adam_flow, ()),
    "rmsprop": (optimizers.rmsprop, flows.rmsprop_flow, ()),
    "gd": (optimizers.gd, flows.gd_flow, ()),
    "heavy_ball": (optimizers.heavy_ball, flows.heavy_ball_flow, ("shifted_start",)),
    # Theorem 3.1, the inner sum's range chosen (``inner_sum="k"`` derived, "1" transcribed)
    "adam_minibatch": (optimizers.adam, minibatch.minibatch_adam_flow, ("inner_sum",)),
}


@dataclass(frozen=True)
class OrderStudy:
    """Errors (len(orders), len(hs)), the fitted slope of log error vs log h, its std. error."""

    method: str
    hs: np.ndarray
    orders: tuple[int, ...]
    errors: np.ndarray
    slopes: np.ndarray
    stderrs: np.ndarray

    def slope(self, order: int) -> float:
        """The fitted slope for one order."""
        return float(self.slopes[self.orders.index(order)])

    def table(self) -> list[dict]:
        """One row per (order, h): the error, and the slope fitted over all h of that order."""
        return [dict(method=self.method, order=k, h=float(h), error=float(e),
                     slope=float(self.slopes[i]), stderr=float(self.stderrs[i]))
                for i, k in enumerate(self.orders) for h, e in zip(self.hs, self.errors[i])]


def fitted_slopes(hs, errors) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slopes of log error against log h, and their standard errors, one per row
    of ``errors`` (shape (k, len(hs)))."""
    fits = [linregress(np.log(hs), np.log(e)) for e in np.atleast_2d(errors)]
    return np.array([f.slope for f in fits]), np.array([f.stderr for f in fits])


def local_slopes(hs, errors) -> np.ndarray:
    """Slopes of log error against log h between neighbouring step sizes (along the last axis):
    they climb towards the order as h shrinks, where the fitted slope averages them."""
    return np.diff(np.log(np.asarray(errors)), axis=-1) / np.diff(np.log(np.asarray(hs)))


def max_distance(iterates: torch.Tensor, flow: torch.Tensor, first: int = 0) -> float:
    """max_n ‖θ⁽ⁿ⁾ - θ̃(nh)‖₂ over rows n >= ``first`` of two (n_steps + 1, p) tensors."""
    gap = iterates[first:].to(flow.dtype) - flow[first:]
    return float(torch.linalg.vector_norm(gap, dim=1).max())


def order_study(method: str, loss, theta0, hs, T: float, orders=(0, 1), *, t_min: float = 0.0,
                **hyper) -> OrderStudy:
    """Errors and slopes for ``method``: "adam", "rmsprop", "gd", "heavy_ball", "adam_minibatch".

    ``hyper`` are the method's keyword arguments other than h (e.g. beta, rho, eps, eps_inside;
    ``shifted_start`` for heavy-ball and ``inner_sum`` for adam_minibatch go to the flow only). A
    sequence of losses makes "adam" and "rmsprop" mini-batch (Theorem 3.1). At least two step
    sizes are needed.
    The error is the largest distance over the grid times t_min <= nh <= T: ``t_min > 0`` skips
    an initial transient (heavy-ball started at rest: its iterates reach the shifted flow only
    after the velocity has built up, a distance that decays like β^n, so like β^(t_min/h)).
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    iterate, flow, flow_only = _METHODS[method]
    hs = np.asarray([check_positive("hs", h) for h in hs], dtype=float)
    if hs.size < 2:
        raise ValueError(f"hs must hold at least two step sizes, got {hs.size}")
    T, orders, t_min = check_positive("T", T), tuple(orders), float(t_min)
    if not 0.0 <= t_min < T:
        raise ValueError(f"t_min must be in [0, T), got {t_min!r}")
    algo_hyper = {k: v for k, v in hyper.items() if k not in flow_only}
    shared = _shared_order0_flow(method, loss, theta0, hs, T, orders, flow, hyper)
    errors = np.empty((len(orders), hs.size))
    for j, h in enumerate(hs):
        n = round(T / h)
        theta = iterate(loss, theta0, n, h=h, **algo_hyper)
        for i, k in enumerate(orders):
            flow_k = _on_grid(shared, n, h=h) if k == 0 else None
            if flow_k is None:
                flow_k = flow(loss, theta0, n, h=h, order=k, **hyper)
            errors[i, j] = max_distance(theta, flow_k, first=math.ceil(t_min / h - 1e-9))
    return OrderStudy(method, hs, orders, errors, *fitted_slopes(hs, errors))


def _shared_order0_flow(method, loss, theta0, hs, T, orders, flow, hyper):
    """(h, n, θ̃ on the grid nh) for the smallest h, where the order-0 flow is the same ODE for
    every h (full-batch Adam, RMSProp, GD, heavy-ball: only the grids depend on h), so that one
    solve on the finest grid serves every coarser one; else None. Only where the order-1 flows
    are solved too, so that the expansion's validity is still checked for every h."""
    full_batch = callable(loss) or len(loss) == 1
    if 0 not in orders or 1 not in orders or not full_batch or method == "adam_minibatch" \
            or hyper.get("shifted_start", False):
        return None
    h = float(hs.min())
    n = round(T / h)
    return h, n, flow(loss, theta0, n, h=h, order=0, **hyper)


def _on_grid(shared, n: int, *, h: float) -> torch.Tensor | None:
    """The rows of the shared flow at t = 0, h, …, nh, or None if its grid does not hold them."""
    if shared is None:
        return None
    h_fine, n_fine, rows = shared
    stride = round(h / h_fine)
    if stride < 1 or stride * h_fine != h or n * stride != n_fine:
        return None
    return rows[::stride]
