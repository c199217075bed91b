"""Checks of user input shared by the update rules and the modified flows.

Each check raises ``ValueError`` naming the argument, its allowed range and the value given,
so a bad call fails before any work is done.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection, Sequence

import numpy as np
import torch


def check_unit_interval(name: str, value: float) -> float:
    """Momentum-type parameters (beta, rho) must lie in [0, 1)."""
    value = float(value)
    if not (0.0 <= value < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def check_positive(name: str, value: float) -> float:
    """Step sizes and the stability constant eps must be finite and > 0."""
    value = float(value)
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def check_int(name: str, value, *, minimum: int, optional: bool = False) -> int | None:
    """An integer (numpy's too, not a bool) >= ``minimum``, as a Python int; None too if ``optional``."""
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' or None' if optional else ''}, "
                         f"got {value!r}")
    return int(value)


def check_bool(name: str, value) -> bool:
    """A flag: True or False (numpy's bool too), nothing else."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_one_of(name: str, value, choices: Collection, *, optional: bool = False):
    """``value`` if it is one of ``choices`` (None too if ``optional``)."""
    if optional and value is None:
        return None
    if isinstance(value, bool) or value not in choices:
        allowed = ", ".join(map(repr, choices)) + (" or None" if optional else "")
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def check_n_steps(n_steps: int) -> int:
    """The number of steps is an integer >= 0."""
    if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 0:
        raise ValueError(f"n_steps must be an integer >= 0, got {n_steps!r}")
    return int(n_steps)


def check_theta0(theta0) -> torch.Tensor:
    """The start is a finite 1-D float tensor; a copy in float64 unless it is already floating."""
    theta0 = torch.as_tensor(theta0)
    if not theta0.is_floating_point():
        theta0 = theta0.to(torch.float64)
    if theta0.ndim != 1:
        raise ValueError(f"theta0 must be a 1-D tensor, got shape {tuple(theta0.shape)}")
    if theta0.numel() == 0:
        raise ValueError("theta0 must have at least one component, got an empty tensor")
    if not torch.isfinite(theta0).all():
        raise ValueError("theta0 must be finite, got a tensor with inf or nan entries")
    return theta0.detach().clone()


def as_losses(loss) -> tuple[Callable, ...]:
    """A loss or a non-empty sequence of mini-batch losses, as a tuple (step n uses [n % m])."""
    if callable(loss):
        return (loss,)
    if isinstance(loss, Sequence) and len(loss) > 0 and all(callable(f) for f in loss):
        return tuple(loss)
    raise ValueError("loss must be a callable or a non-empty sequence of callables")


def check_order(order: int) -> int:
    """Modified flows are known to order 0 (the limit h → 0) and order 1 (with the O(h) term)."""
    if isinstance(order, bool) or order not in (0, 1):
        raise ValueError(f"order must be 0 or 1, got {order!r}")
    return int(order)
