"""The optimizers of the network loop (:func:`bea_lib.nets.loop.fit`), one :class:`Rule` each.

A rule is an (init, update) pair of :mod:`bea_lib.core.optimizers` (``update(g, state, hvp_at,
**hyper)``, ``hvp_at(rows)`` giving v ↦ ∇²E v for the κ-variant), the TrainConfig fields the
update reads (per run, or shared by a batch) and those it fixes (RMSProp is Adam with β = 0, GD
heavy-ball with β = 0), whether its logged one-norm has its ε (else ε = 0), and its diagnostics,
with its own expansion ratio. A new optimizer: a :data:`RULES` entry, an ``Optimizer`` name.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ..base.vocab import Optimizer
from ..core.optimizers import adam_init, heavy_ball_init, heavy_ball_update, step_denominator
from ..studies.intervention import kappa_update
from .diagnostics import diagnostics_at, heavy_ball_diagnostics_at


class Rule(NamedTuple):
    """An optimizer of the network loop: its (init, update) pair and what the loop needs
    beside it (module docstring)."""

    init: Callable
    update: Callable
    hyper: tuple[str, ...]
    shared: tuple[str, ...]
    fixed: dict
    has_eps: bool
    diagnostics: Callable  # (g, hvp_fn, state, config) -> {column: value} at θ⁽ⁿ⁾


def _adam_diagnostics(g, hvp_fn, state, c) -> dict[str, float]:
    D = step_denominator(g, state, rho=c.rho, eps=c.eps, eps_inside=c.eps_inside)  # next step's
    return diagnostics_at(g, hvp_fn, h=c.h, beta=c.beta, rho=c.rho, eps=c.eps, denominator=D,
                          sharpness=c.sharpness)


def _heavy_ball_step(g, state, hvp_at, *, h, beta):
    return heavy_ball_update(g, state, h=h, beta=beta)  # no Hessian-vector product


def _heavy_ball_diagnostics(g, hvp_fn, state, c) -> dict[str, float]:
    return heavy_ball_diagnostics_at(g, hvp_fn, h=c.h, beta=c.beta, sharpness=c.sharpness)


_ADAM = Rule(adam_init, kappa_update, ("h", "beta", "rho", "eps", "kappa"), ("eps_inside",), {},
             True, _adam_diagnostics)
_HEAVY_BALL = Rule(heavy_ball_init, _heavy_ball_step, ("h", "beta"), (), {}, False,
                   _heavy_ball_diagnostics)
RULES = {Optimizer.ADAM: _ADAM, Optimizer.RMSPROP: _ADAM._replace(fixed={"beta": 0.0}),
         Optimizer.HEAVY_BALL: _HEAVY_BALL, Optimizer.GD: _HEAVY_BALL._replace(fixed={"beta": 0.0})}


def state_rows(state: NamedTuple, rows):
    """The optimizer state of the runs ``rows`` (tensors indexed, counters kept)."""
    return type(state)(*(x[rows] if hasattr(x, "shape") else x for x in state))
