r"""What became of a run of iterates: converged, oscillating or diverged (a
:class:`bea_lib.base.vocab.Convergence`).

:func:`classify_run` looks at the last part (the *tail*) of a trajectory θ⁽⁰⁾, …, θ⁽ⁿ⁾:

- ``DIVERGED``: some iterate is not finite, or leaves the ball of radius ``bound`` around 0;
- ``CONVERGED``: every tail iterate is within ``tol`` of the last one;
- ``OSCILLATING``: neither (bounded, but still moving at the end: spikes, cycles, slow drift).

:func:`behaviour_gap` compares two runs of the same loss from the same start, as a user sees
them: how far apart their loss curves are, against how far the loss fell, and how far apart
they end, against how far the runs travelled (Remark 2.2's "qualitatively the same").
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..base.vocab import Convergence
from .validation import check_positive


class BehaviourGap(NamedTuple):
    """Two runs of one loss from one start compared (:func:`behaviour_gap`)."""

    loss_gap: float  # max_n |E(a⁽ⁿ⁾) − E(b⁽ⁿ⁾)| / (E(θ⁽⁰⁾) − min(E(a⁽ᴺ⁾), E(b⁽ᴺ⁾)))
    end_gap: float   # ‖a⁽ᴺ⁾ − b⁽ᴺ⁾‖ / ‖b⁽ᴺ⁾ − b⁽⁰⁾‖

    @property
    def largest(self) -> float:
        return max(self.loss_gap, self.end_gap)


def behaviour_gap(loss, a, b) -> BehaviourGap:
    """How differently two runs ``a`` and ``b`` (iterates of shape (n + 1, p), same start, same
    ``loss``) behave: the largest gap between their loss curves over the decrease of the loss,
    and the distance between their end points over the distance ``b`` travelled. Both are 0 for
    the same run and of order 1 for runs that go different ways; inf when the loss did not fall
    or ``b`` did not move. The loss must work under ``torch.func.vmap`` (one call per run)."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] < 2:
        raise ValueError(f"a and b must be runs of the same shape (n + 1, p) with n >= 1, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if not torch.equal(a[0], b[0]):
        raise ValueError("a and b must start from the same point")
    Ea, Eb = (torch.func.vmap(loss)(run).detach() for run in (a, b))
    fell = float(Ea[0] - torch.minimum(Ea[-1], Eb[-1]))
    travelled = float((b[-1] - b[0]).norm())
    loss_gap = float((Ea - Eb).abs().max()) / fell if fell > 0 else math.inf
    end_gap = float((a[-1] - b[-1]).norm()) / travelled if travelled > 0 else math.inf
    return BehaviourGap(loss_gap, end_gap)


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
