"""The project's vocabularies: one ``StrEnum`` per idea, shared by the library, the chapters
and the Findings chapter. A value compares equal to its string (``Verdict.REPRODUCED ==
"reproduced"``), so JSON files written with them read back as plain strings.
"""
from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """What the book's primary test says about one statement of the paper (the Findings chapter).

    One vocabulary, in the words a referee would sign: "contradicted" is kept for an effect
    measured against the paper with an interval that excludes zero, and "we could not tell" is
    *inconclusive* (shown with the smallest effect the test could have detected), never a
    failure of the paper. A caveat the paper states itself is shown beside the verdict
    (:attr:`bea_lib.registry.Statement.caveat`), not folded into it.
    """

    REPRODUCED = "reproduced"      # the pre-declared primary test passes
    CONTRADICTED = "contradicted"  # measured in the opposite direction, interval excluding zero
    INCONCLUSIVE = "inconclusive"  # the interval includes zero: no effect told at this size
    OUTSIDE_RANGE = "outside the theory's range"  # the validity gate failed: the expansion is silent
    NOT_TESTED = "not tested here"  # no primary test ran (or none can at this scale)
    NOT_RUN = "not run in this build"  # the chapter holding the primary test was not executed


class CheckRole(StrEnum):
    """What one checked claim is for, with respect to the statement it bears on."""

    PRIMARY = "primary"        # the statement's pre-declared primary test: it alone sets the verdict
    SUPPORTING = "supporting"  # another check of the statement: shown, never folded in
    CONSISTENCY = "consistency"  # cannot fail on a wrong model of the paper: shown in a fold, not counted


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


def paper_verdict(trend: TrendVerdict | str, *, gated: bool = True) -> Verdict:
    """The verdict on the paper's statement from the verdict on a predicted trend.

    The one mapping from :class:`TrendVerdict` to :class:`Verdict` (the networks and mechanism
    chapters use it): a run set outside the validity gate (``gated=False``: e.g. a bias ratio
    above :data:`bea_lib.validation.VALIDITY_LIMIT`) is *outside the theory's range* whatever it
    shows; inside it, APPEARS is *reproduced*, OPPOSITE (the interval excludes zero on the
    other side) *contradicted*, NOT_SEEN (the interval includes zero) *inconclusive*, NOT_TESTABLE (too few runs with a value) *not tested here*.
    """
    trend = TrendVerdict(trend)
    if trend == TrendVerdict.NOT_TESTABLE:
        return Verdict.NOT_TESTED
    if not gated:
        return Verdict.OUTSIDE_RANGE
    return {TrendVerdict.APPEARS: Verdict.REPRODUCED, TrendVerdict.OPPOSITE: Verdict.CONTRADICTED,
            TrendVerdict.NOT_SEEN: Verdict.INCONCLUSIVE}[trend]
