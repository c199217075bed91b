r"""Solving a modified flow θ̇ = F(t, θ) accurately on the grid t = 0, h, …, n_steps·h.

The flows of :mod:`bea_lib.flows` are compared with iterates whose distance from them is O(h²),
so the solver must be far more accurate than that: scipy's 8th-order Dormand–Prince (DOP853)
with a relative tolerance of 1e-10 by default. Right-hand sides are torch functions of a float64
tensor; the conversion to and from numpy happens here and nowhere else.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.integrate import solve_ivp

from .validation import check_n_steps, check_positive, check_theta0

RHS = Callable[[float, torch.Tensor], torch.Tensor]  # F(t, θ) -> θ̇, argument order as torchdiffeq


def solve_flow(rhs: RHS, theta0, n_steps: int, h: float, *, rtol: float = 1e-10,
               atol: float = 1e-12, method: str = "DOP853") -> torch.Tensor:
    """θ̃(nh) for n = 0, …, n_steps, as a float64 tensor of shape (n_steps + 1, p).

    ``rhs(t, theta)`` returns θ̇ for a 1-D float64 tensor ``theta``. ``method`` is solve_ivp's;
    the tolerances hold for any of its adaptive methods, and RK45 needs fewer evaluations when
    the whole span is one short step (the intervals of the piecewise ODE (3.2)). Raises
    ``RuntimeError`` with solve_ivp's message if the solver fails (for instance if the flow
    blows up before n_steps·h).
    """
    theta0 = check_theta0(theta0).to(torch.float64)
    n_steps, h = check_n_steps(n_steps), check_positive("h", h)
    rtol, atol = check_positive("rtol", rtol), check_positive("atol", atol)
    if n_steps == 0:
        return theta0[None].clone()
    t_eval = h * np.arange(n_steps + 1)

    def fun(t, y):
        with torch.no_grad():  # torch.func transforms inside rhs need no outer graph
            return rhs(t, torch.from_numpy(y)).numpy()

    sol = solve_ivp(fun, (0.0, t_eval[-1]), theta0.numpy(), method=method, t_eval=t_eval,
                    rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed at t = {sol.t[-1] if sol.t.size else 0.0:.6g} "
                           f"of {t_eval[-1]:.6g}: {sol.message}")
    return torch.from_numpy(np.ascontiguousarray(sol.y.T))
