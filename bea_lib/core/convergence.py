r"""What became of a run of iterates: converged, oscillating or diverged (a
:class:`bea_lib.base.vocab.Convergence`).

:func:`classify_run` looks at the last part (the *tail*) of a trajectory θ⁽⁰⁾, …, θ⁽ⁿ⁾:

- ``DIVERGED``: some iterate is not finite, or leaves the ball of radius ``bound`` around 0;
- ``CONVERGED``: every tail iterate is within ``tol`` of the last one;
- ``OSCILLATING``: neither (bounded, but still moving at the end: spikes, cycles, slow drift).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..base.vocab import Convergence
from .validation import check_positive


class RunStatus(NamedTuple):
    """What :func:`classify_run` saw: the status and the numbers it was decided on."""

    status: Convergence
    tail_spread: float    # max distance of a tail iterate from the last iterate (inf if diverged)
    max_norm: float       # largest ‖θ‖ along the whole run (inf if not finite)


def classify_run(iterates, *, tail: float = 0.1, tol: float = 1e-6, bound: float = 1e6
                 ) -> RunStatus:
    """Converged, oscillating or diverged: the rule of the module docstring.

    ``iterates`` has shape (n + 1, p), as returned by ``bl.adam``. ``tail`` is the fraction of
    the run examined at the end (at least two iterates); ``tol`` the distance within which the
    tail must stay of the last iterate to count as converged; ``bound`` the radius that a
    divergent run leaves.
    """
    iterates = torch.as_tensor(iterates, dtype=torch.float64)
    if iterates.ndim != 2 or iterates.shape[0] < 2:
        raise ValueError(f"iterates must be (n + 1, p), n >= 1, got shape {tuple(iterates.shape)}")
    if not 0.0 < float(tail) <= 1.0:
        raise ValueError(f"tail must be in (0, 1], got {tail!r}")
    tol, bound = check_positive("tol", tol), check_positive("bound", bound)
    norms = iterates.norm(dim=1)
    max_norm = float(norms.max()) if torch.isfinite(iterates).all() else math.inf
    if not max_norm <= bound:
        return RunStatus(Convergence.DIVERGED, math.inf, max_norm)
    k = max(2, math.ceil(float(tail) * iterates.shape[0]))
    spread = float((iterates[-k:] - iterates[-1]).norm(dim=1).max())
    status = Convergence.CONVERGED if spread <= tol else Convergence.OSCILLATING
    return RunStatus(status, spread, max_norm)
