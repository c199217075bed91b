"""The project's vocabularies: one ``StrEnum`` per idea, shared by the library, the chapters
and the Findings chapter. A value compares equal to its string (``Verdict.REPRODUCED ==
"reproduced"``), so JSON files written with them read back as plain strings.
"""
from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """What the book's primary test says about one statement of the paper (the Findings chapter),
    in a referee's words: *contradicted* only for an effect against the paper with an interval
    that excludes zero; "we could not tell" is *inconclusive* (with the smallest effect the test
    could detect), never a failure of the paper. The paper's own caveats stand beside it."""

    REPRODUCED = "reproduced"      # the pre-declared primary test passes
    CONTRADICTED = "contradicted"  # measured in the opposite direction, interval excluding zero
    INCONCLUSIVE = "inconclusive"  # the interval includes zero: no effect told at this size
    OUTSIDE_RANGE = "outside the theory's range"  # the validity gate failed
    NOT_TESTED = "not tested here"  # no primary test ran (or none can at this scale)
    NOT_RUN = "not run in this build"  # the chapter holding the primary test was not executed


class CheckRole(StrEnum):
    """What one checked claim is for, with respect to the statement it bears on."""

    PRIMARY = "primary"        # the statement's declared primary test: it alone sets the verdict
    SUPPORTING = "supporting"  # another check of the statement: shown, never folded in
    CONSISTENCY = "consistency"  # cannot fail on a wrong model: shown in a fold, not counted
    PROXY = "proxy answer"     # a network statement's first answer: what the proxy shows where
    # the paper looks (a ProxyAnswer), beside the primary test's verdict, never folded into it


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
    """What became of a trajectory of iterates θ⁽ⁿ⁾ (:func:`bea_lib.core.convergence.classify_run`).

    Read from where the iterates go, not from the loss: a different question from
    :class:`Stability`, which reads a network's loss curve, so a separate vocabulary.
    """

    CONVERGED = "converged"      # the tail stays within a tolerance of the last iterate
    OSCILLATING = "oscillating"  # bounded but still moving at the end (spikes, cycles, drift)
    DIVERGED = "diverged"        # not finite, or left a large ball around 0


class Stability(StrEnum):
    """The training regimes of Ma et al. (2022), read from a network's training-loss curve
    (:func:`bea_lib.evidence.readings.stability`)."""

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


class Optimizer(StrEnum):
    """The update rule of a network run (:class:`bea_lib.nets.config.TrainConfig`)."""

    ADAM = "adam"              # Definition 2.1, or its κ-variant
    RMSPROP = "rmsprop"        # Adam with β = 0
    GD = "gd"                  # heavy-ball with β = 0
    HEAVY_BALL = "heavy_ball"  # (1.1)'s iteration


class FlowStatus(StrEnum):
    """What became of solving a modified flow (the calibration table's status columns)."""

    SOLVED = "solved"
    OVER_BUDGET = "over budget"  # more evaluations per step of h than its budget: stiff
    NOT_FINITE = "not finite"    # θ or θ̇ stopped being finite: the flow blows up
    FAILED = "failed"            # the solver gave up (a step below float spacing)


class TrendVerdict(StrEnum):
    """A verdict on a claimed monotone trend; shared by the networks' paired statistics
    (:func:`bea_lib.evidence.statistics.trend_of`, over seeds) and the bilinear grids
    (:func:`bea_lib.studies.bilinear.monotone_trend`, one pair of grid values at a time)."""

    APPEARS = "appears"            # the claimed direction, beyond the spread over seeds
    NOT_SEEN = "not seen"          # no clear direction
    OPPOSITE = "opposite"          # against the claim (for a pair: moved away, or changed branch)
    NOT_TESTABLE = "not testable"  # too few runs with a value (finite, or converged)


def paper_verdict(trend: TrendVerdict | str, *, gated: bool = True) -> Verdict:
    """The verdict on the paper's statement from the verdict on a predicted trend, the one
    mapping from :class:`TrendVerdict` to :class:`Verdict`: NOT_TESTABLE is *not tested here*; a
    run set outside the validity gate (``gated=False``) is *outside the theory's range*; inside,
    APPEARS is *reproduced*, OPPOSITE *contradicted*, NOT_SEEN *inconclusive*."""
    trend = TrendVerdict(trend)
    if trend == TrendVerdict.NOT_TESTABLE:
        return Verdict.NOT_TESTED
    if not gated:
        return Verdict.OUTSIDE_RANGE
    return {TrendVerdict.APPEARS: Verdict.REPRODUCED, TrendVerdict.OPPOSITE: Verdict.CONTRADICTED,
            TrendVerdict.NOT_SEEN: Verdict.INCONCLUSIVE}[trend]


class ExperimentVerdict(StrEnum):
    """What the book's own experiments (not statements of the paper: the κ intervention) show.

    Kept apart from :class:`Verdict`, whose words ("reproduced") are for the paper's own
    statements: an experiment the paper never ran is *supported* or *not supported* by its
    measurement, never "reproduced".
    """

    SUPPORTED = "supported"          # the predicted sign, interval excluding 0, all runs gated
    NOT_SUPPORTED = "not supported"  # the opposite sign, interval excluding 0, all runs gated
    INCONCLUSIVE = "inconclusive"    # the interval includes 0 (shown with its MDE)
    OUTSIDE_RANGE = "outside the theory's range"  # a run failed its validity gate
    NOT_RUN = "not run here"         # too few runs with a value to decide


class ProxyAnswer(StrEnum):
    """What a proxy network shows where the paper looks, whatever the theory says there: the
    first of the two answers an empirical claim about networks gets (the second is a
    :class:`Verdict` of the theory's in-range prediction)."""

    SAME = "same direction"   # the paper's direction, interval excluding zero
    OPPOSITE = "opposite"     # the other direction, interval excluding zero
    NO_TREND = "no trend"     # the interval includes 0 (shown with its MDE)
    NOT_READ = "not read"     # the runs never reach the point where the paper reads the figure


def experiment_verdict(trend: TrendVerdict | str, *, gated: bool = True) -> ExperimentVerdict:
    """The verdict on one of the book's own experiments from the verdict on its predicted trend:
    the mapping of :func:`paper_verdict`, in the experiment's own words."""
    trend = TrendVerdict(trend)
    if trend == TrendVerdict.NOT_TESTABLE:
        return ExperimentVerdict.NOT_RUN
    if not gated:
        return ExperimentVerdict.OUTSIDE_RANGE
    return {TrendVerdict.APPEARS: ExperimentVerdict.SUPPORTED,
            TrendVerdict.OPPOSITE: ExperimentVerdict.NOT_SUPPORTED,
            TrendVerdict.NOT_SEEN: ExperimentVerdict.INCONCLUSIVE}[trend]


def proxy_answer(trend: TrendVerdict | str) -> ProxyAnswer:
    """The proxy's answer from the verdict on the paper's direction, read where the paper reads
    it (no gate: this answer says what the network does, not whether the theory covers it)."""
    return {TrendVerdict.APPEARS: ProxyAnswer.SAME, TrendVerdict.OPPOSITE: ProxyAnswer.OPPOSITE,
            TrendVerdict.NOT_SEEN: ProxyAnswer.NO_TREND,
            TrendVerdict.NOT_TESTABLE: ProxyAnswer.NOT_READ}[TrendVerdict(trend)]
