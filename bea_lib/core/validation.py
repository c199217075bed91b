"""Checks of user input shared by the update rules and the modified flows.

Each check raises ``ValueError`` naming the argument, its allowed range and the value given,
so a bad call fails before any work is done.
"""
from __future__ import annotations

import math
import numbers
import operator
import warnings
from collections.abc import Callable, Collection, Sequence
from typing import NamedTuple

import numpy as np
import torch


def _real(name: str, value, allowed: str) -> float:
    """``value`` as a float if it is a real number (numpy's too); a bool, a string or anything
    else is refused, not coerced (``True`` is not h = 1, ``"0.9"`` is not β = 0.9)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {allowed}, got {type(value).__name__} {value!r}")
    return float(value)


def check_unit_interval(name: str, value: float) -> float:
    """Momentum-type parameters (beta, rho) must lie in [0, 1)."""
    value = _real(name, value, "a number in [0, 1)")
    if not (0.0 <= value < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def check_positive(name: str, value: float) -> float:
    """Step sizes and the stability constant eps must be finite and > 0."""
    value = _real(name, value, "a finite number > 0")
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def check_finite(name: str, value: float) -> float:
    """Any finite real number (κ of the κ-variant)."""
    value = _real(name, value, "a finite number")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


class Hyper(NamedTuple):
    """Adam's hyperparameters, checked (:func:`adam_hyper` builds it): step size h, moment
    parameters β and ρ in [0, 1), ε > 0 and where it sits, κ of the κ-variant (0: Adam)."""

    h: float
    beta: float
    rho: float
    eps: float
    eps_inside: bool = True
    kappa: float = 0.0


def adam_hyper(*, h, beta, rho, eps, eps_inside=True, kappa=0.0, h_name: str = "h") -> Hyper:
    """The one check of Adam's hyperparameters, for every entry point: h and ε finite and > 0,
    β and ρ in [0, 1), ``eps_inside`` True or False, κ finite; each a real number (a bool or a
    string is refused, not coerced). ``ValueError`` names the argument and its allowed range;
    ``h_name`` is the name h goes by at the caller (``lr`` for :class:`bea_lib.Adam`)."""
    return Hyper(check_positive(h_name, h), check_unit_interval("beta", beta),
                 check_unit_interval("rho", rho), check_positive("eps", eps),
                 check_bool("eps_inside", eps_inside), check_finite("kappa", kappa))


def check_int(name: str, value, *, minimum: int, optional: bool = False) -> int | None:
    """An integer (numpy's too, not a bool) >= ``minimum`` as a Python int; None if ``optional``."""
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


def check_n_steps(n_steps, name: str = "n_steps") -> int:
    """A number of steps: an integer in [0, MAX_N_STEPS] (an int, NumPy or torch integer).

    Floats are refused even when integral (``2.0``), as are bools, None, NaN and inf: a count
    given as a float is usually a forgotten ``round(T / h)``.
    """
    if isinstance(n_steps, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer >= 0, got the bool {n_steps!r}")
    try:
        count = operator.index(n_steps)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= 0, got {n_steps!r} of type "
                         f"{type(n_steps).__name__} (for a horizon T use round(T / h))") from None
    if not 0 <= count <= MAX_N_STEPS:
        raise ValueError(f"{name} must be an integer >= 0 and at most {MAX_N_STEPS:_}, "
                         f"got {count!r}")
    return int(count)


def check_theta0(theta0) -> torch.Tensor:
    """The start θ⁽⁰⁾ as a new finite 1-D float64 tensor (on the device it was given on).

    A list, a NumPy array or a tensor of any real dtype is accepted and converted: the θ-vector
    functions (iterates and flows) run in float64, which the paper's small differences need
    (in float32 an ε of 1e-8 next to values of order one is lost). Complex, boolean and
    non-numeric inputs are refused.
    """
    try:  # a list straight to float64: through float32 (torch's default) 0.1 would be rounded
        theta0 = theta0 if torch.is_tensor(theta0) else torch.as_tensor(
            theta0, dtype=None if isinstance(theta0, np.ndarray) else torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"theta0 must be a 1-D sequence of real numbers, got "
                         f"{type(theta0).__name__} ({err})") from None
    if theta0.is_complex() or theta0.dtype == torch.bool:
        raise ValueError(f"theta0 must hold real numbers, got dtype {theta0.dtype}")
    if theta0.ndim != 1:
        raise ValueError(f"theta0 must be a 1-D tensor, got shape {tuple(theta0.shape)}")
    if theta0.numel() == 0:
        raise ValueError("theta0 must have at least one component, got an empty tensor")
    theta0 = theta0.detach().to(torch.float64, copy=True)
    if not torch.isfinite(theta0).all():
        bad = int(torch.nonzero(~torch.isfinite(theta0))[0])
        raise ValueError(f"theta0 must be finite, got theta0[{bad}] = {theta0[bad].item()!r}")
    return theta0


def as_losses(loss) -> tuple[Callable, ...]:
    """A loss or a non-empty sequence of mini-batch losses, as a tuple (step n uses [n % m])."""
    if callable(loss):
        return (loss,)
    if isinstance(loss, Sequence) and len(loss) > 0 and all(callable(f) for f in loss):
        return loss if isinstance(loss, tuple) else tuple(loss)  # keeps a BatchLosses as it is
    raise ValueError("loss must be a callable or a non-empty sequence of callables")


def check_order(order: int) -> int:
    """Modified flows are known to order 0 (the limit h → 0) and order 1 (with the O(h) term)."""
    if isinstance(order, bool) or order not in (0, 1):
        raise ValueError(f"order must be 0 or 1, got {order!r}")
    return int(order)


MAX_N_STEPS = 10**9  # bound of check_n_steps: far above any run here, below any memory limit


class ExpansionValidityWarning(UserWarning):
    """h is not small against 1 - β or 1 - ρ: a modified flow need not track the iterates."""


VALIDITY_LIMIT = 0.5  # largest start ratio of the O(h) term accepted without a warning (flows)


def warn_if_expansion_invalid(ratio: float, *, h: float, beta: float,
                              rho: float | None = None) -> None:
    """Warn (:class:`ExpansionValidityWarning`) when a flow's O(h) term, relative to its
    leading term at θ⁽⁰⁾ (``ratio``, :mod:`bea_lib.core.flows`), exceeds VALIDITY_LIMIT."""
    if ratio > VALIDITY_LIMIT:
        given = f"beta = {beta:g}" + ("" if rho is None else f", rho = {rho:g}")
        warnings.warn(f"h = {h:g} is too large for the modified flow's expansion ({given}): at "
                      f"theta0 the O(h) term is {ratio:.3g} times the leading term (> "
                      f"{VALIDITY_LIMIT}); h must be small against 1 - beta, 1 - rho and the "
                      "inverse curvature, or the flow need not stay O(h²) close to the iterates",
                      ExpansionValidityWarning, stacklevel=4)
