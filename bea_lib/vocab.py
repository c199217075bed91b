"""The project's vocabularies: one ``StrEnum`` per idea, shared by the library, the chapters
and the Findings chapter. A value compares equal to its string (``Verdict.CONFIRMED ==
"confirmed"``), so JSON files written with them read back as plain strings.
"""
from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """What a measurement says about one statement of the paper (the Findings chapter)."""

    CONFIRMED = "confirmed"          # the statement holds, as stated, where we measured it
    QUALIFIED = "qualified"          # it holds with a correction (a sign, a range, a condition)
    NOT_CONFIRMED = "not confirmed"  # the measurement does not show it
    NOT_TESTED = "not tested here"   # the book does not (or cannot at this scale) measure it


class ClaimStatus(StrEnum):
    """The outcome of one checked sentence of the book at the profile it was run at."""

    PASSED = "passed"
    FAILED = "failed"
    MEASURED = "measured"  # a measurement recorded with its verdict; it checks nothing
    NOT_CHECKED = "not checked at this profile"  # the claim needs a larger profile


class BiasRegime(StrEnum):
    """A cell of Table 1: which norm of ∇E the bias term of (2.3) penalises at a point.

    "Regime" in this package means this and nothing else; what became of a run is a
    :class:`Convergence` (iterates) or a :class:`Stability` (a network's loss curve).
    """

    ONE_NORM_PENALISED = "one-norm penalised"            # ε ≪ g², β ≥ ρ: (2.4)
    ONE_NORM_ANTI_PENALISED = "one-norm anti-penalised"  # ε ≪ g², ρ > β
    TWO_NORM_SQUARED_PENALISED = "two-norm squared penalised"  # ε ≫ g²: (2.7)
    INTERMEDIATE = "intermediate"                        # neither extreme form applies

    @property
    def eps_small(self) -> bool:
        """Whether the cell is one of the two "ε small against every g²" cells (the one-norm)."""
        return self in (BiasRegime.ONE_NORM_PENALISED, BiasRegime.ONE_NORM_ANTI_PENALISED)


class Convergence(StrEnum):
    """What became of a trajectory of iterates θ⁽ⁿ⁾ (:func:`bea_lib.convergence.classify_run`).

    Read from where the iterates go, not from the loss: a different question from
    :class:`Stability`, which reads a network's loss curve, so a separate vocabulary.
    """

    CONVERGED = "converged"      # the tail stays within a tolerance of the last iterate
    OSCILLATING = "oscillating"  # bounded but still moving at the end (spikes, cycles, drift)
    DIVERGED = "diverged"        # not finite, or left a large ball around 0


class Stability(StrEnum):
    """The training regimes of Ma et al. (2022), read from a network's training-loss curve
    (:func:`bea_lib.nets.sweeps.stability`)."""

    STABLE = "stable"      # small oscillations at most: the paper's trends are claimed here
    SPIKE = "spike"        # the loss climbs far above its running minimum
    DIVERGED = "diverged"  # the loss became non-finite


class StopReason(StrEnum):
    """Why a training run stopped (``run.json`` and :class:`bea_lib.nets.history.History`)."""

    RUNNING = "running"                # written at the start; still there if the run was killed
    EPOCHS = "epochs"                  # the maximum number of steps was reached
    LOSS_THRESHOLD = "loss_threshold"  # the train loss fell below the threshold
    TIME = "time"                      # the time budget ran out
    DIVERGED = "diverged"              # the train loss became non-finite
    INTERRUPTED = "interrupted"        # stopped by Ctrl-C or SIGTERM; resumable from a checkpoint


class TrendVerdict(StrEnum):
    """A verdict on a claimed monotone trend; shared by the sweep analysis of the networks
    (:func:`bea_lib.nets.sweeps.bootstrap_trend`, over seeds) and the bilinear grids
    (:func:`bea_lib.bilinear.monotone_trend`, one pair of grid values at a time)."""

    APPEARS = "appears"            # the claimed direction, beyond the spread over seeds
    NOT_SEEN = "not seen"          # no clear direction
    OPPOSITE = "opposite"          # against the claim (for a pair: moved away, or changed branch)
    NOT_TESTABLE = "not testable"  # too few runs with a value (finite, or converged)
