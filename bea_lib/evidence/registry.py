r"""The registry of the paper's statements: the single source for the Findings rows, for the
``paper=`` argument of :func:`bea_lib.claim` and for the summary that opens the book.

Each :class:`Statement` has the paper's exact label (checked against the paper's text), the
statement in our words and, declared before any chapter runs, its **primary test**
(:class:`PrimaryTest`): the claim id that decides it, the quantity, the predicted direction,
the validity gate, the statistic and its threshold, each with a one-line reason. The primary
test alone sets the verdict (:class:`bea_lib.base.vocab.Verdict`); every other claim on the same
statement is *supporting* (shown, never folded in) or a *consistency check* (it cannot fail on
a wrong model of the paper: shown in a fold, not counted). A caveat the paper states itself is
shown beside the verdict (:attr:`Statement.caveat`), and so is a correction of the printed text
(:attr:`Statement.note`); neither downgrades it.

Statements are in the paper's order; those in :data:`BEYOND` are checks the paper does not
make, with their own wording.

Every primary test is shown to fail on a deliberately wrong model in ``tests/test_mutants.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

_ASCII = {"β": "beta", "ρ": "rho", "ε": "eps", "κ": "kappa", ">": " gt ", "<": " lt "}


def slug(text: str) -> str:
    """``text`` as a MyST target: lower-case ASCII words joined by dashes (β → beta, > → gt).

    The one rule behind every anchor the Findings chapter and the claim lines link to."""
    text = "".join(_ASCII.get(ch, ch) for ch in str(text).lower())
    return "-".join("".join(ch if ch.isascii() and ch.isalnum() else " " for ch in text).split())


def claim_anchor(claim_id: str) -> str:
    """The MyST target placed at a claim's line in its chapter (``claim-<slug of the id>``)."""
    return "claim-" + slug(claim_id)


@dataclass(frozen=True)
class Declared:
    """One declared part of a primary test and the reason for it."""

    what: str
    why: str


@dataclass(frozen=True)
class PrimaryTest:
    """The test that decides a statement, declared before the chapters run."""

    claim: str            # the id of the claim that records it ("chapter/name")
    quantity: Declared
    direction: Declared   # what the paper predicts for the quantity
    gate: Declared        # when the test is inside the theory's range
    statistic: Declared
    threshold: Declared
    mutant: str           # the wrong model it is shown to fail on (tests/test_mutants.py)
    needs: str = "smoke"  # the least profile at which it decides anything

    @property
    def chapter(self) -> str:
        return self.claim.split("/")[0]


@dataclass(frozen=True)
class Statement:
    """One statement of the paper (or, in :data:`BEYOND`, of the book) with its primary test."""

    key: str          # what ``bl.claim(paper=...)`` names; unique
    label: str        # the paper's own label, exactly as printed ("Theorem 3.1", "Figure 2")
    ours: str         # the statement, in our words
    primary: PrimaryTest | None
    caveat: str = ""  # a limitation the paper states itself: shown beside the verdict
    note: str = ""    # a correction of the printed text the test relies on: shown beside it
    beyond: bool = False  # not a claim of the paper: the "beyond the paper" section
    pending: str = ""  # why no primary test is recorded yet, when that is so
    short: str = ""   # the statement in a few words, for the summary table (default: ours)
    networks: bool = False  # a statement about trained networks (the intro's second sentence)
    proxy: ProxyTest | None = None  # a network statement's first answer: the proxy, read where
    # the paper reads it (the primary test is the second: the theory, inside its range)
    declared: str = ""  # the date its tests were declared, where the registry records it

    @property
    def brief(self) -> str:
        return self.short or self.ours

    @property
    def anchor(self) -> str:
        """The MyST target of the statement's evidence in the Findings chapter; every claim
        line on this statement links back to it."""
        return "findings-" + slug(self.key)


_DET = Declared("none needed", "a deterministic computation in float64: no seeds, no noise")
_ORDER_GATE = Declared("h small against 1 − β and 1 − ρ on the step-size grid",
                       "the expansion is in powers of h/(1 − max(β, ρ)); the chapters' grids "
                       "keep h below it")


def _order2(claim: str, what: str, mutant: str, needs: str = "default") -> PrimaryTest:
    return PrimaryTest(
        claim=claim,
        quantity=Declared(f"max over n ≤ T/h of ‖θ⁽ⁿ⁾ − θ̃(nh)‖ for {what}, on a grid of h",
                          "the theorem bounds exactly this distance by C h²"),
        direction=Declared("falls like h² for the order-1 flow and like h for order 0",
                           "order 0 is the known limit; the bias term buys one order"),
        gate=_ORDER_GATE,
        statistic=Declared("the local slope of log error against log h between the two "
                           "smallest step sizes, for orders 0 and 1",
                           "the asymptotic order is what the theorem states; a fit over the "
                           "whole grid mixes in the pre-asymptotic range"),
        threshold=Declared("order 1 within 0.5 of 2 and order 0 within 0.5 of 1, on every case",
                           "nearer the predicted order than either neighbour: the test decides "
                           "which order the data favour (the mutants land near 1), and is not "
                           "tuned to the grid"),
        mutant=mutant, needs=needs)


def _modified_loss(claim: str, form: str, ratio: str) -> PrimaryTest:
    """The test of a limiting modified-loss form of the bias: (2.5) as ε/g² → 0, (2.7) as
    g²/ε → 0."""
    return PrimaryTest(
        claim=claim,
        quantity=Declared(f"relative difference between the bias of (2.3) and the gradient "
                          f"form of {form}", f"the approximation {form} states"),
        direction=Declared(f"falls with {ratio}", f"the neglected terms are O({ratio})"),
        gate=_DET,
        statistic=Declared("monotone fall over the grid of ratios, value at its end",
                           "a limit statement"),
        threshold=Declared("monotone, and < 1e-3 at the smallest ratio",
                           f"the grid ends at {ratio} ≤ 1e-6: room for the next-order terms"),
        mutant="the bias term's sign flipped")


def _trend(claim: str, swept: str, towards: bool) -> PrimaryTest:
    way = "towards" if towards else "away from"
    return PrimaryTest(
        claim=claim,
        quantity=Declared("the one-norm excess ‖∇E‖₁ / min over the level set − 1 at the first "
                          "iterate reaching each loss level",
                          "at matched loss it measures 'regions with smaller one-norm' "
                          "whatever the runs' speeds"),
        direction=Declared(f"a larger {swept} moves the run {way} the cross (the excess "
                           f"{'falls' if towards else 'rises'})",
                           "the sign of the bias coefficient of (2.4)"),
        gate=Declared("both runs of a pair have h ≤ h_small·(1 − max(β, ρ))",
                      "the explanation is first order in h; pairs outside are shown apart"),
        statistic=Declared("the count of (neighbouring pair, loss level) comparisons that go "
                           "the predicted way, inside the gate",
                           "deterministic runs: every comparison is a repeatable fact"),
        threshold=Declared("all of them, and at least one comparison",
                           "without noise one comparison the other way is a counterexample"),
        mutant="β and ρ swapped in the optimiser")


NETWORKS_DECLARED = "2026-12-07"  # the network tests below were declared then, before any run
PAPER_SCALE = "python -m bea_book run networks --profile paper"  # the paper's own networks


@dataclass(frozen=True)
class ProxyTest:
    """The first of a network statement's two answers, declared before the runs: what a proxy
    network shows where the paper looks (:class:`~bea_lib.base.vocab.ProxyAnswer`: same
    direction, opposite, no trend with its minimum detectable effect, not read), whatever the
    theory says there. The second answer, the theory's, is the statement's primary test."""

    claim: str            # the id of the claim that records the answer
    quantity: Declared
    direction: Declared   # the paper's direction
    reading: Declared     # where the paper reads it, and so where the proxy is read
    statistic: Declared
    paper_scale: bool = True  # the paper ran it on its own networks (the `paper` profile's)

    @property
    def chapter(self) -> str:
        return self.claim.split("/")[0]


@dataclass(frozen=True)
class Setting:
    """A setting of the network tests, declared on :data:`NETWORKS_DECLARED` with its reason:
    the networks chapter's parameter ``name`` has this default (a test checks it)."""

    name: str
    value: object
    why: str


_PAIRED = Declared("per seed, the least-squares slope of the reading against the swept "
                   "log10(1 − γ); the mean over the 12 paired evidence seeds, its 95 % BCa "
                   "interval (scipy) and the minimum detectable effect",
                   "a seed fixes the initial weights in every cell of a sweep: pairing removes "
                   "the between-seed spread")
_TWO_SIDED = Declared("the 95 % interval excludes zero on the predicted side (reproduced), on "
                      "the other (contradicted); otherwise inconclusive, with the minimum "
                      "detectable effect", "the conventional two-sided 5 % level, fixed before "
                      "the runs")
_NETWORK_GATE = Declared("every run's bias ratio h‖f₁‖/‖f₀‖ (Adam's, unscaled by κ) at most "
                         "NETWORK_LIMIT = 0.05 at every measured point",
                         "a calibration of the gate on a network proxy put the limit between "
                         "0.05 and 0.095; 0.5 is too loose over long windows")


def _in_range(claim: str, swept: str, fixed: str, direction: str) -> PrimaryTest:
    """The theory's answer on Figures 4 and 5: its prediction inside its range, from trained
    starting points (windows of Adam restarted with fresh moments at a gated h)."""
    return PrimaryTest(
        claim=claim,
        quantity=Declared(f"‖∇E‖₁,ε averaged over the last tenth of a window of Adam restarted "
                          f"with fresh moments from a trained point, per {swept} at fixed "
                          f"{fixed}", "the theory's expansion holds from any starting point: a "
                          "restarted window at a gated h is its own setting; the norm can "
                          "oscillate from step to step where the loss does not (on a pilot, "
                          "single-step readings of one or two seeds in twelve were 10 to 50 "
                          "times the others', of either sign), and the mean over the last "
                          "tenth reads its trend, not the oscillation's phase"),
        direction=Declared(direction, "the sign of the change of the window's bias coefficient "
                           "C_β(n) − C_ρ(n) (Theorem 3.1 with one loss) with the swept "
                           "parameter; it is the sign of (2.5)'s at every window length"),
        gate=_NETWORK_GATE, statistic=_PAIRED, threshold=_TWO_SIDED,
        mutant="β and ρ swapped in the optimiser (the measured trend reverses)",
        needs="default")


def _proxy(claim: str, what: str, direction: str, reading: str) -> ProxyTest:
    return ProxyTest(
        claim=claim, quantity=Declared(what, "the quantity the paper plots"),
        direction=Declared(direction, "the paper's figure"),
        reading=Declared(reading, "read where the paper reads it, so that the answer is about "
                         "the paper's phenomenon"),
        statistic=Declared(_PAIRED.what + "; same direction or opposite when the interval "
                           "excludes zero, else no trend", _PAIRED.why))


NETWORK_SETTINGS: tuple[Setting, ...] = (
    Setting("seeds", list(range(200, 212)), "at least 10 paired seeds; 200–211 are the "
            "mechanism chapter's evidence seeds (the same initial weights); development and "
            "pilots used seeds from 1000 on, the earlier chapter 0–9"),
    Setting("network_limit", 0.05, "the gate on every network run (NETWORK_LIMIT), from the "
            "calibration on a network proxy (between 0.05 and 0.095): the lower end"),
    Setting("n_train", 500, "a pilot on seeds 1000–1003 (7 cells, 300 epochs): every run "
            "reached training loss 0.1 by epoch 140; 1,000 examples needed up to 250 epochs "
            "and 1.5 times the time per epoch"),
    Setting("epochs", 300, "twice the pilot's slowest epoch to loss 0.1, so that Figure 6's "
            "curves flatten after it"),
    Setting("h", 1e-2, "the step of the earlier chapter, at which the pilot trains in the "
            "stable regime (no loss spikes)"),
    Setting("read_below", 0.1, "Figure 5 is read when the training loss first falls below 0.1, "
            "as in the paper"),
    Setting("norm_at", 0.25, "Figure 4 is read at a quarter of the epochs, as the paper's "
            "epoch 900 of 3,600"),
    Setting("osc_tol", 0.02, "an epoch is a reversal when the curve turns by more than 2 % "
            "(relative) on both sides: above a smooth descent's curvature"),
    Setting("osc_share", 0.05, "a curve oscillates when at least 5 % of its epochs are "
            "reversals; on the pilot, the norm's share was 1–10 %, the loss's 0"),
    Setting("stage_loss", 0.1, "the trained starting point of the windows: plain Adam "
            "(h = 1e-2, β = 0.9, ρ = 0.999) to the loss at which the paper reads Figure 5"),
    Setting("window_steps", 150, "7.5 times the grid's longest start-up 1/(1 − ρ) = 20: "
            "κ = −1 cancels the full-batch bias term and leaves the start-up's, whose "
            "coefficient the page prints"),
    Setting("rho_sweep", [0.8, [0.85, 0.9, 0.95]], "(β, ρ values): the ρ sweep inside the "
            "range, ρ > β as in Figure 4; the paper's ρ ≥ 0.99 would need a window of "
            "thousands of steps at a gated h"),
    Setting("beta_sweep", [0.95, [0.7, 0.8, 0.9]], "(ρ, β values): the β sweep inside the "
            "range, ρ > β as in Figure 5"),
    Setting("window_ratio", 0.025, "the window's h: this bias ratio at the start, for the "
            "sweeps' worst cell (half the limit: the ratio grows along the window)"),
    Setting("kappas", [0.0, -1.0], "Adam and its κ = −1 variant, whose flow has no bias term "
            "past the start-up: does cancelling the term remove the trend?"),
    Setting("opt_grids", {"adam": [1e-2, 2e-2, 4e-2, 8e-2], "rmsprop": [2.5e-3, 5e-3, 1e-2, 2e-2],
                          "gd": [0.125, 0.25, 0.5, 1.0], "heavy_ball": [0.2, 0.4, 0.8, 1.6]},
            "each arm's step sizes, factor 2 apart around a pilot's trainable steps; the rule: "
            "the largest h of its grid at which every pilot run reaches the matched loss "
            "within opt_epochs without a loss spike (never above 1.5 times its running "
            "minimum); the smallest h of the grid when none does, and the page says so"),
    Setting("pilot_seeds", [1000, 1001], "the rule's runs: development seeds, not the evidence "
            "seeds"),
    Setting("opt_epochs", 600, "the cap of every optimizer run: a pilot's GD at h = 0.5 took "
            "about 300 epochs to the matched loss"),
    Setting("matched_loss", 0.1, "the optimizers are compared when the training loss first "
            "falls below 0.1, Figure 5's reading loss"),
    Setting("adam_pair", [0.9, 0.999], "Adam's (β, ρ) in the comparison and in the stage runs: "
            "ρ > β, the conclusion's case, and the common defaults"),
    Setting("hb_beta", 0.9, "heavy-ball's momentum, as Adam's β"),
)


STATEMENTS: tuple[Statement, ...] = (
    Statement(
        "Definition 2.1", "Definition 2.1",
        "Adam as the paper defines it: moment averages with bias correction, ε inside the root",
        PrimaryTest(
            claim="adam/torch-agrees",
            quantity=Declared("max over all steps of |bl.adam(ε outside) − torch.optim.Adam|",
                              "torch.optim.Adam is the independent reference for everything "
                              "but the place of ε"),
            direction=Declared("zero up to rounding; the ε-inside form differs by more",
                               "the two rules share the moment recursions and bias corrections"),
            gate=_DET,
            statistic=Declared("the largest gap, against the distance travelled",
                               "relative to how far the iterates move"),
            threshold=Declared("≤ 1e-10 × distance travelled",
                               "float64 rounding over a few hundred steps stays far below it; "
                               "a wrong recursion is off by a fraction of the distance"),
            mutant="β and ρ swapped in the moment recursions")),
    Statement(
        "Remark 2.2", "Remark 2.2",
        "moving ε outside the root (same ε) does not change Adam's behaviour qualitatively",
        PrimaryTest(
            claim="adam/eps-placement-trajectories",
            quantity=Declared("for ε inside and outside the root (same ε, start and loss), the "
                              "largest gap between the two loss curves over the decrease of the "
                              "loss, and the distance between the end points over the distance "
                              "travelled; the larger of the two",
                              "the behaviour a user sees: how the loss falls, and where the run "
                              "ends"),
            direction=Declared("small: the same training curve and the same end point",
                               "the remark says the placement does not matter qualitatively"),
            gate=Declared("runs on which every gradient component starts ≥ 10 √ε and the "
                          "median component of the ε-outside run falls below √ε by the end",
                          "the trajectories where the components approach √ε, so the two "
                          "denominators stop being the same; above 10 √ε all the way they "
                          "differ by a relative ε/g² and the test could not fail"),
            statistic=Declared("the largest reading over the runs in the gate",
                               "the worst case of the trajectories the test speaks to"),
            threshold=Declared("< 0.05, with at least one run in the gate",
                               "runs that are different algorithms (the gradients far below √ε "
                               "from the start; β and ρ swapped in one placement) read 0.1 to "
                               "1; a twentieth of the decrease or of the distance is a "
                               "difference one sees on a plot of the two runs"),
            mutant="β and ρ swapped in the ε-inside placement"),
        caveat="the paper covers the ε-outside form only while no gradient component comes "
               "close to zero, \"true only for the initial period of learning\""),
    Statement(
        "(2.2)–(2.3)", "(2.2)–(2.3)",
        "the modified flow of full-batch Adam stays O(h²)-close to the iterates",
        _order2("error_order/slopes/Adam, ε inside", "full-batch Adam (ε inside)",
                "the bias term's sign flipped; h halved in the flow"),
        caveat="written \"up to terms that rapidly go to zero as n grows\"; C depends on ε "
               "and grows without bound as ε → 0"),
    Statement(
        "(1.1)", "(1.1)",
        "the modified flow of heavy-ball momentum (GD at β = 0) is O(h²)-close to the iterates",
        PrimaryTest(
            claim="special_cases/signs-heavy-ball",
            quantity=Declared("max distance between heavy-ball's iterates and the order-1 flow "
                              "of (1.1), on a grid of h (tanh network)",
                              "the distance the backward error analysis bounds"),
            direction=Declared("slope 2 in h", "a correct O(h) term buys one order"),
            gate=_ORDER_GATE,
            statistic=Declared("the fitted slope of log error against log h",
                               "two to three step sizes: the fit is the estimate"),
            threshold=Declared("> 1.5, and the flow with the O(h) term negated within 0.3 of 1",
                               "1.5 is halfway between first and second order: the test decides "
                               "which of the two the data favour; the negated flow must land on 1"),
            mutant="the O(h) term's sign flipped"),
        note="read with the descent signs, θ̇ = −∇E/(1 − β) − h(…)∇‖∇E‖² (our transcription "
             "drops the minus signs)"),
    Statement(
        "Example 2.3", "Example 2.3",
        "with ε large against g², Adam's flow is heavy-ball's with step h(1 − β)/√ε",
        PrimaryTest(
            claim="special_cases/example-2-3-flows",
            quantity=Declared("relative difference between Adam's order-1 right-hand side and "
                              "the rescaled heavy-ball one, over a grid of ε",
                              "the statement is about the flows"),
            direction=Declared("falls to zero as max g²/ε → 0", "the limit of (2.7)"),
            gate=Declared("max g²/ε ≤ 1 on the grid's large-ε end", "the example assumes "
                          "ε very large against every squared gradient component"),
            statistic=Declared("monotone fall over the grid and the value at its end",
                               "a limit statement: the trend and where it ends"),
            threshold=Declared("monotone, and < 1e-3 at the largest ε",
                               "the correction is of relative order g²/ε ≤ 1e-4 there"),
            mutant="heavy-ball step h/√ε instead of h(1 − β)/√ε"),
        caveat="\"after a certain number of iterations\": the iterates keep a start-up lag"),
    Statement(
        "Table 1", "Table 1",
        "which norm the bias penalises: ‖∇E‖₁ (β ≥ ρ) or −‖∇E‖₁ (ρ > β) for ε small, ‖∇E‖² for ε "
        "large",
        PrimaryTest(
            claim="bias/table-1-iterates",
            quantity=Declared("N(Adam's iterates at T) − N(order-0 flow at T), N = ‖∇E‖₁ (ε "
                              "small) or ‖∇E‖² (ε large)",
                              "the order-0 flow has no bias: the difference is the bias's "
                              "effect on the actual iterates"),
            direction=Declared("negative where the cell says penalised, positive where "
                               "anti-penalised", "Table 1's four cells"),
            gate=Declared("the run stays in its cell (regime at start and end)",
                          "Table 1 speaks only of the two extreme forms"),
            statistic=Declared("the sign in each of the four cells", "the table states signs"),
            threshold=Declared("4 of 4", "deterministic runs: one cell the other way is a "
                               "counterexample"),
            mutant="β and ρ swapped in the optimiser")),
    Statement(
        "Figure 1", "Figure 1",
        "the one-dimensional bias potential: rises for β > ρ, plateaus for β = ρ, rises then "
        "falls for ρ > β",
        PrimaryTest(
            claim="bias/figure-1-shapes",
            quantity=Declared("the shape of F(x) on a grid of x, per (β, ρ)",
                              "what the figure shows"),
            direction=Declared("monotone rise, rise to a plateau, or rise to |x|* then fall",
                               "the integrand's sign changes at |x|*"),
            gate=_DET,
            statistic=Declared("the count of curves of the predicted shape",
                               "one per (β, ρ) drawn"),
            threshold=Declared("all of them", "a deterministic curve of the wrong shape is a "
                               "counterexample"),
            mutant="β and ρ swapped in the potential")),
    Statement(
        "(2.5)", "(2.5)",
        "for ε small against g², the bias is the gradient of the one-norm modified loss",
        _modified_loss("bias/modified-loss-small-eps", "(2.5)", "ε/g²")),
    Statement(
        "(2.7)", "(2.7)",
        "for ε large against g², the bias is the gradient of the two-norm modified loss",
        _modified_loss("bias/modified-loss-large-eps", "(2.7)", "g²/ε")),
    Statement(
        "Theorem 3.1", "Theorem 3.1",
        "the piecewise modified flow of mini-batch Adam is O(h²)-close to the iterates",
        _order2("minibatch/order-slopes", "mini-batch Adam and RMSProp, every m",
                "the inner sum from l = 1 (the range our transcription prints); h halved in the "
                "flow"),
        caveat="C depends on ε and grows without bound as ε → 0",
        note="the inner sums of L and P read from l = k, with the batch index of E_{k−l} "
             "inside AV; our transcription prints l = 1 and drops that index, and read that way "
             "the flow is not even first-order accurate"),
    Statement(
        "Figure 2 (β)", "Figure 2",
        "bilinear model: a larger β moves the trajectory towards smaller ‖∇E‖₁",
        _trend("bilinear/trajectory/fig2-beta", "β", True)),
    Statement(
        "Figure 2 (ρ)", "Figure 2",
        "bilinear model: a larger ρ moves the trajectory away from smaller ‖∇E‖₁",
        _trend("bilinear/trajectory/fig2-rho", "ρ", False)),
    Statement(
        "Figure 3 (β > ρ)", "Figure 3",
        "bilinear model, β > ρ: a larger h moves the trajectory towards smaller ‖∇E‖₁",
        _trend("bilinear/trajectory/fig3-beta>rho", "h", True)),
    Statement(
        "Figure 3 (ρ > β)", "Figure 3",
        "bilinear model, ρ > β: a larger h moves the trajectory away from smaller ‖∇E‖₁",
        _trend("bilinear/trajectory/fig3-rho>beta", "h", False)),
    Statement(
        "Figure 4", "Figure 4",
        "networks, stable regime: a larger ρ gives a larger ‖∇E‖₁,ε (and a lower test accuracy)",
        _in_range("networks/fig4-in-range", "ρ", "β",
                  "falls with log10(1 − ρ): the norm rises with ρ"),
        proxy=_proxy("networks/fig4-proxy", "‖∇E‖₁,ε at a fixed epoch",
                     "rises with ρ (slope against log10(1 − ρ) negative)",
                     "at a quarter of the epochs (the paper: epoch 900 of 3,600); the maximal "
                     "test accuracy over the run beside it"),
        networks=True, declared=NETWORKS_DECLARED),
    Statement(
        "Figure 5", "Figure 5",
        "networks, stable regime: a larger β gives a smaller ‖∇E‖₁,ε (and a higher test accuracy)",
        _in_range("networks/fig5-in-range", "β", "ρ",
                  "rises with log10(1 − β): the norm falls with β"),
        proxy=_proxy("networks/fig5-proxy", "‖∇E‖₁,ε when the training loss first falls below "
                     "0.1", "falls with β (slope against log10(1 − β) positive)",
                     "at the first epoch with training loss below 0.1, as the paper; the test "
                     "accuracy there beside it"),
        networks=True, declared=NETWORKS_DECLARED),
    Statement(
        "Figure 6", "Figure 6",
        "networks: ‖∇E‖₁,ε falls, rises, falls, flattens; the hill is higher with smaller β "
        "and larger ρ",
        PrimaryTest(
            claim="networks/fig6-gated",
            quantity=Declared("the hill height of ‖∇E‖₁,ε along the runs of the ρ sweep",
                              "the hill is a feature of whole training runs"),
            direction=Declared("falls with log10(1 − ρ): the hill grows with ρ",
                               "the sign of the bias coefficient of (2.5)"),
            gate=_NETWORK_GATE, statistic=_PAIRED, threshold=_TWO_SIDED,
            mutant="the gate dropped (the verdict changes)", needs="default"),
        proxy=_proxy("networks/fig6-proxy", "the hill height of ‖∇E‖₁,ε per run, and the "
                     "fall–rise–fall–flat shape and oscillations of the norm and the loss",
                     "the hill grows with ρ (slope against log10(1 − ρ) negative)",
                     "the curves per epoch, from 5 % of the epochs on"),
        networks=True, declared=NETWORKS_DECLARED),
    Statement(
        "Section 4, first conclusion (theory)", "Section 4, first conclusion",
        "the two-norm penalty of GD and heavy-ball is absent in RMSProp and in Adam with ρ > β "
        "(ε small)",
        PrimaryTest(
            claim="special_cases/discussion-two-norm-paths",
            quantity=Declared("at every 100th of each algorithm's own iterates, to its minimum "
                              "(4,000 steps), the O(h) change "
                              "of d‖∇E‖²/dt per unit h over the order-0 rate (negative: the "
                              "correction lowers ‖∇E‖²); the share of points where it is "
                              "negative, per algorithm and loss",
                              "what the flows' O(h) terms do to ‖∇E‖² where the algorithms go, "
                              "not at one chosen point"),
            direction=Declared("share 1 for GD, heavy-ball and Adam with ε large (the penalty "
                               "is present); below 1/2 for RMSProp and Adam with ρ > β, ε small "
                               "(\"typically absent\")", "the conclusion's text"),
            gate=Declared("points in the Table 1 cell the conclusion speaks of: ε small against "
                          "every g² (ratio 100) for RMSProp and Adam ρ > β, large for Adam "
                          "with ε large; every point for GD and heavy-ball; at least 5 points "
                          "per algorithm and loss",
                          "the conclusion is stated for ε small; Example 2.3 covers ε large"),
            statistic=Declared("the share per (algorithm, loss), on the bilinear loss of "
                               "Section 5 and on a log-cosh regression, from several starts",
                               "the conclusion is general: a second smooth loss keeps the test "
                               "from resting on the bilinear geometry"),
            threshold=Declared("every (algorithm, loss) on its predicted side",
                               "deterministic computations; 1/2 is what \"typically\" means"),
            mutant="the bias term's sign flipped", needs="default")),
    Statement(
        "Section 4, first conclusion (experiment)", "Section 4, first conclusion",
        "hence RMSProp and Adam with ρ > β find sharper minima and generalise worse than "
        "GD and heavy-ball",
        PrimaryTest(
            claim="networks/optimizers-paired",
            quantity=Declared("sharpness (Lanczos) and test accuracy at matched training loss",
                              "the conclusion's 'sharper minima' and 'generalize worse', at "
                              "the same point of training for every arm"),
            direction=Declared("Adam (ρ > β) and RMSProp sharper and less accurate than GD "
                               "and heavy-ball", "the sign of (2.5)'s coefficient: their bias "
                               "term hinders the norm's decrease"),
            gate=Declared("each arm's own expansion ratio (Adam's and RMSProp's h‖f₁‖/‖f₀‖, "
                          "heavy-ball's and GD's of (1.1)) at most NETWORK_LIMIT = 0.05 at "
                          "every measured point", _NETWORK_GATE.why),
            statistic=Declared("per seed, Adam − GD, Adam − heavy-ball, RMSProp − GD and "
                               "RMSProp − heavy-ball; mean over the 12 paired seeds, BCa",
                               "same network and initial weights per seed"),
            threshold=Declared("every comparison's 95 % interval excludes zero on the "
                               "predicted side", "the conclusion names all four pairs"),
            mutant="the gate dropped, or β and ρ swapped in the prediction (the verdict "
                   "changes)", needs="default"),
        proxy=ProxyTest(
            claim="networks/optimizers-proxy",
            quantity=Declared("sharpness and test accuracy at matched training loss",
                              "the conclusion's words"),
            direction=Declared("Adam and RMSProp sharper and less accurate",
                               "the conclusion's text"),
            reading=Declared("at the first epoch with training loss below 0.1, each arm at "
                             "the h its declared rule picks", "matched loss compares the "
                             "arms at the same point of training, whatever their speeds"),
            statistic=Declared("the four paired differences per metric, BCa; same direction "
                               "when all eight exclude zero on the paper's side, opposite when "
                               "any excludes it on the other, else no trend",
                               "the conclusion names all four pairs and both metrics"),
            paper_scale=False),
        caveat="the paper offers it as a possible partial explanation (\"may partially "
               "explain\")", networks=True, declared=NETWORKS_DECLARED),
    Statement(
        "Section 6, spike regime", "Section 6",
        "in the spike regime the accuracy trend against ρ reverses (as Cohen et al. saw)",
        PrimaryTest(
            claim="networks/spike-reversal-paired",
            quantity=Declared("maximal test accuracy of spike runs", "the quantity of the remark"),
            direction=Declared("rises with ρ (the reverse of Figure 4)", "the remark's text"),
            gate=Declared("the runs are in the spike regime (loss spikes present)",
                          "the paper places the reversal there; the expansion does not "
                          "describe such runs, so no bias-ratio gate applies"),
            statistic=_PAIRED,
            threshold=Declared("the 95 % interval excludes zero", "the conventional two-sided "
                               "5 % level, fixed before the runs"),
            mutant="ρ's grid reversed (the predicted sign reverses)", needs="default"),
        caveat="the paper says \"which we think is the case\" and that Adam is far from the "
               "flow there: the theory does not cover this regime",
        networks=True, declared=NETWORKS_DECLARED),
)

_SHORT = {  # the statements in a few words, for the summary table
    "Definition 2.1": "Adam's update rule, ε inside the root",
    "Remark 2.2": "ε inside or outside: same behaviour",
    "(2.2)–(2.3)": "full-batch modified flow, O(h²)",
    "(1.1)": "heavy-ball's modified flow, O(h²)",
    "Example 2.3": "large ε: heavy-ball, step h(1−β)/√ε",
    "Table 1": "which norm the bias penalises",
    "Figure 1": "the 1-D bias potential's shapes",
    "(2.5)": "ε small: one-norm modified loss",
    "(2.7)": "ε large: two-norm modified loss",
    "Theorem 3.1": "mini-batch modified flow, O(h²)",
    "Figure 2 (β)": "bilinear: larger β, smaller ‖∇E‖₁",
    "Figure 2 (ρ)": "bilinear: larger ρ, larger ‖∇E‖₁",
    "Figure 3 (β > ρ)": "bilinear, β > ρ: larger h, smaller ‖∇E‖₁",
    "Figure 3 (ρ > β)": "bilinear, ρ > β: larger h, larger ‖∇E‖₁",
    "Figure 4": "networks: larger ρ, larger ‖∇E‖₁,ε",
    "Figure 5": "networks: larger β, smaller ‖∇E‖₁,ε",
    "Figure 6": "networks: the hills of ‖∇E‖₁,ε",
    "Section 4, first conclusion (theory)": "no two-norm penalty for ρ > β, ε small",
    "Section 4, first conclusion (experiment)": "hence sharper minima, worse generalisation",
    "Section 6, spike regime": "spike regime: accuracy trend reverses",
}
STATEMENTS = tuple(replace(st, short=_SHORT[st.key]) for st in STATEMENTS)

BEYOND: tuple[Statement, ...] = (
    Statement(
        "mechanism", "beyond the paper",
        "scaling the bias term (κ-variant of Adam) moves ‖∇E‖₁,ε as (2.5) predicts: down for "
        "β > ρ, up for ρ > β, from trained starting points inside the network gate",
        PrimaryTest(
            claim="mechanism/kappa-sign-flip",
            quantity=Declared("‖∇E‖₁,ε at matched training loss, for κ ∈ {−1, 0, +1}, in "
                              "windows of Adam restarted with fresh moments from each training "
                              "stage (MECHANISM.rules)", "κ scales only the bias term"),
            direction=Declared("decreasing in κ for β > ρ, increasing for ρ > β, monotone "
                               "through κ = 0", "the sign of (2.5)'s coefficient"),
            gate=Declared("every run's unscaled bias ratio ≤ NETWORK_LIMIT = 0.05 at every "
                          "measured point; the κ = −1 runs of the two pairs agree (f₀ gate)",
                          "the limit calibrated on the network proxy; κ = −1 cancels the bias, "
                          "so both pairs share f₀"),
            statistic=Declared("per stage, the paired difference (κ=+1) − (κ=−1) over the 12 "
                               "declared seeds, BCa interval, MDE, seeds monotone in κ",
                               "a seed fixes the initial weights and the starting points"),
            threshold=Declared("both pairs' intervals exclude zero on the predicted side "
                               "(supported), on the other side (not supported), else "
                               "inconclusive; the row's verdict is the most trained stage's",
                               "the conventional two-sided 5 % level; the paper reads its "
                               "network figures on trained networks"),
            mutant="β and ρ swapped in the prediction; the f₀ gate dropped",
            needs="default"),
        beyond=True),
    Statement("explicit regulariser", "beyond the paper",
              "adding the bias term to the loss does not reproduce Adam's implicit shift",
              None, beyond=True),
    Statement("activation", "beyond the paper",
              "ReLU against a smooth activation (Assumption (3.1) asks for bounded derivatives)",
              None, beyond=True),
    Statement("orders", "beyond the paper",
              "orders, step-size ranges and ε placements the paper does not state",
              None, beyond=True),
    Statement("implementation", "beyond the paper",
              "the book's own machinery: batched training, geometry of the bilinear loss",
              None, beyond=True),
)

_SHORT_BEYOND = {  # the same, for the introduction's sentence on what the book adds
    "mechanism": "a causal test of the mechanism with the κ-variant of Adam",
    "explicit regulariser": "the bias term added to the loss as an explicit regulariser",
    "activation": "a smooth activation against ReLU",
    "orders": "orders, step sizes and ε placements the paper does not state",
    "implementation": "checks of the book's own machinery",
}
BEYOND = tuple(replace(st, short=_SHORT_BEYOND[st.key]) for st in BEYOND)


@dataclass(frozen=True)
class Change:
    """One change of an experiment's settings or definitions, with its date and commit."""

    date: str
    commit: str
    what: str
    before: str
    after: str


@dataclass(frozen=True)
class Design:
    """The settings and rules of one of the book's own experiments, declared on ``declared``
    before its evidence runs: ``seeds`` are its evidence seeds (never run while developing it),
    ``settings`` what the chapter's parameters default to (a build with others is a custom
    run), ``rules`` how every derived setting, gate, reading and verdict is made, each with its
    reason. A change after the evidence was seen is disclosed on the chapter's page."""

    experiment: str
    declared: str
    seeds: tuple[int, ...]
    development: Declared
    settings: dict
    rules: tuple[tuple[str, Declared], ...]
    history: tuple[Change, ...] = ()  # changes after the first runs had been seen


MECHANISM = Design(
    experiment="mechanism/kappa-sign-flip",
    declared="2026-12-07",
    seeds=tuple(range(200, 212)),
    development=Declared(
        "seeds from 1000 on (0–11 were the earlier chapter's, 100–111 a replication of it); "
        "the pilot of this design ran on 1000–1011",
        "evidence seeds the design was never tuned on"),
    settings=dict(
        n_train=400, n_test=1000, width=32, activation="tanh", dtype="float64", stage_h=1e-2,
        stage_beta=0.9,
        stage_rho=0.999, eps=1e-8, stage_losses=[1.5, 1.0, 0.5],
        pairs=[[0.9, 0.7], [0.7, 0.9], [0.8, 0.8]], kappas=[-1.0, 0.0, 1.0], h_share=0.25,
        start_ups=10, n_boot=9999),
    rules=(
        ("network", Declared(
            "MNIST-1D, the MLP of width 32 with tanh, 400 training and 1,000 test signals, "
            "float64, full batch",
            "the networks chapter's trainable MLP; tanh because the theory needs a smooth loss "
            "(Assumption (3.1)) and the gate was calibrated on a tanh proxy: in the pilot the "
            "κ = −1 runs of the two ReLU pairs ended 1 to 5 κ effects apart in parameter space, "
            "the tanh runs 0.2; 400 signals fit the budget (the MLP memorises them: test "
            "accuracy about 0.3 at loss 0.5)")),
        ("stages", Declared(
            "per seed, plain Adam (h = 1e-2, β = 0.9, ρ = 0.999, ε = 1e-8) from the initial "
            "point; the starting points are the initial point and the first iterates whose "
            "training loss is below 1.5, 1.0 and 0.5",
            "the paper reads its figures on trained networks; the expansion holds from any "
            "starting point")),
        ("windows", Declared(
            "from every starting point, Adam with fresh moments and its κ-variant, κ ∈ {−1, 0, "
            "+1}, at (β, ρ) = (0.9, 0.7), (0.7, 0.9) and the control (0.8, 0.8), ε = 1e-8",
            "β > ρ and ρ > β have opposite predicted signs; at β = ρ only the small ε-part "
            "is left")),
        ("step size", Declared(
            "per stage, h = NETWORK_LIMIT/4 over the largest ‖f₁‖/‖f₀‖ at the stage's starting "
            "points (all seeds and pairs), lowered so that the windows have equal length",
            "a quarter of the limit leaves room for the ratio to grow along the window")),
        ("window length", Declared(
            "t = n·h equal at every stage: the stage with the largest h runs n = 10/(1 − 0.9) "
            "= 100 steps; every other stage n = t/h rounded up to a multiple of 4, h = t/n",
            "ten start-up lengths 1/(1 − max(β, ρ)): the flow omits the start-up of fresh "
            "moments, whose offset then weighs a tenth of the window")),
        ("bias-ratio gate", Declared(
            "h‖f₁‖/‖f₀‖ at each run's own θ at n = 0, n/4, n/2, 3n/4 and n, at most "
            "NETWORK_LIMIT = 0.05, for every κ run",
            "the calibrated limit; the unscaled ratio, since the κ = −1 iterates leave their "
            "own flow at about Adam's ratio")),
        ("f₀ gate", Declared(
            "per stage and seed, for the κ = −1 runs of the β > ρ and ρ > β pairs: at the "
            "window's end their distance in parameter space, and at the matched-loss reading "
            "the difference of their ‖∇E‖₁,ε, each at most F0_AGREEMENT_LIMIT = 0.5 times the "
            "smaller of the two pairs' κ effects (κ = +1 against κ = −1) on the same quantity; "
            "measured at n/4, n/2, 3n/4 and n, gated at the end",
            "both follow f₀ up to O(h²) and the start-up, whose offset falls along the window; "
            "a remainder half the effect could reorder the runs")),
        ("reading", Declared(
            "‖∇E‖₁,ε at matched loss: per stage and seed the largest final training loss of "
            "the nine runs, each run read where its loss first reaches it, interpolated "
            "linearly in the loss between two steps",
            "a larger bias term also changes how fast the loss falls; one loss for all runs of "
            "a seed lets the pairs be compared too")),
        ("statistics", Declared(
            "per stage and pair, (κ=+1) − (κ=−1) over the seeds, mean with its BCa 95 % "
            "interval (9,999 resamples), MDE (5 %, power 80 %), seeds monotone in κ; the "
            "decomposition N(β > ρ) − N(ρ > β) at each κ",
            "a seed fixes the initial weights and the starting points; the decomposition is "
            "predicted to shrink towards 0 at κ = −1 and grow at κ = +1")),
        ("verdict", Declared(
            "per stage: supported / not supported / inconclusive from both pairs' intervals "
            "(experiment_verdict), outside the theory's range if any run of the stage fails "
            "the bias-ratio gate or any seed the f₀ gate; the row's verdict is the most "
            "trained stage's (loss below 0.5), the other stages supporting",
            "the paper reads its network figures on trained networks")),
    ),
    history=(  # the chapter's first κ experiment (seeds 0–7, from the initial point), then this
        Change("2026-12-04 20:40", "5a9ee47", "first declared", "",
               "h = 3e-5, 500 signals, 200 steps, read at steps 100 and 200; validity gate "
               "|1 + κ|·h‖f₁‖/‖f₀‖ ≤ 0.5; f₀ gate at the matched-loss reading"),
        Change("2026-12-04 20:52", "04180ac", "steps", "200 steps, read at 100 and 200",
               "120 steps, read at 60 and 120"),
        Change("2026-12-04 21:06", "b618eb0", "h, signals, steps", "h = 3e-5, 500 signals, "
               "120 steps", "h = 2e-5, 400 signals, 240 steps, read at 120 and 240"),
        Change("2026-12-04 21:16", "d21c9cb", "f₀ gate", "at the matched-loss reading",
               "at the runs' last step"),
        Change("2026-12-07", "issue 29", "the experiment", "from the initial point, ReLU, "
               "(0.95, 0.8) and (0.8, 0.95), seeds 0–7",
               "from trained starting points, tanh, (0.9, 0.7) and (0.7, 0.9), seeds 200–211; "
               "the gates of MECHANISM.rules"),
    ))

ALL: tuple[Statement, ...] = STATEMENTS + BEYOND
BY_KEY: dict[str, Statement] = {s.key: s for s in ALL}
PRIMARY_CLAIMS: dict[str, Statement] = {s.primary.claim: s for s in ALL if s.primary}
PROXY_CLAIMS: dict[str, Statement] = {s.proxy.claim: s for s in ALL if s.proxy}


def statement(key: str) -> Statement:
    """The registered statement ``key``; a clear error naming the allowed keys otherwise."""
    try:
        return BY_KEY[key]
    except KeyError:
        raise ValueError(f"paper must be one of {', '.join(map(repr, BY_KEY))}, "
                         f"got {key!r}") from None


def primary_for(claim_id: str) -> Statement | None:
    """The statement whose primary test is the claim ``claim_id``, if any."""
    return PRIMARY_CLAIMS.get(claim_id)


def proxy_for(claim_id: str) -> Statement | None:
    """The statement whose proxy answer is the claim ``claim_id``, if any."""
    return PROXY_CLAIMS.get(claim_id)


def network_setting(name: str):
    """The declared value of the network setting ``name`` (:data:`NETWORK_SETTINGS`)."""
    for s in NETWORK_SETTINGS:
        if s.name == name:
            return s.value
    raise ValueError(f"no declared network setting {name!r}; declared: "
                     f"{', '.join(s.name for s in NETWORK_SETTINGS)}")


def _check() -> None:
    keys = [s.key for s in ALL]
    if len(set(keys)) != len(keys):
        raise RuntimeError("duplicate statement keys in the registry")
    claims = [s.primary.claim for s in ALL if s.primary]
    if len(set(claims)) != len(claims):
        raise RuntimeError("one claim is the primary test of two statements")
    if set(claims) & set(PROXY_CLAIMS):
        raise RuntimeError("a claim cannot be both a primary test and a proxy answer")


_check()
