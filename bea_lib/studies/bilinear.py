r"""The bilinear model of Section 5: its geometry, the point the bias pushes towards, run summaries.

E(θ) = ½(y - xθ₁θ₂)² (:func:`bea_lib.studies.losses.bilinear`), x = 2, y = 3/2, from (2.8, 3.5).
With the residual r = y - xθ₁θ₂ and c = y/x:

- ∇E = -r x (θ₂, θ₁), so ‖∇E‖₁ = |r| x (|θ₁| + |θ₂|) and ‖∇E‖² = r² x² (θ₁² + θ₂²);
- the global minima are the hyperbola θ₁θ₂ = c, where ∇E = 0 (every norm of it vanishes there).

**The cross** (:func:`bilinear_cross`). On the level set E = ℓ the residual is fixed, |r| = √(2ℓ),
so among the points with the same loss ‖∇E‖₁ is smallest where |θ₁| + |θ₂| is, subject to
θ₁θ₂ = (y ∓ √(2ℓ))/x. By AM–GM, |θ₁| + |θ₂| ≥ 2√|θ₁θ₂| with equality iff |θ₁| = |θ₂|, and the
same holds for θ₁² + θ₂² ≥ 2|θ₁θ₂|. As ℓ → 0 the minimiser tends to θ₁ = θ₂ = ±√c: the point of
the hyperbola where the gradient's one-norm (and two-norm) grows slowest as one leaves the valley,
which is also where the valley is flattest (the Hessian there, x²(θ₂, θ₁)(θ₂, θ₁)ᵀ, has trace
x²(θ₁² + θ₂²)). A bias that penalises ‖∇E‖₁ or ‖∇E‖² pushes towards it.

The general pieces the chapter also uses (the explicit counterpart E + λ‖∇E‖_{1,ε}, the
bias strength, the share of a path in each cell of Table 1) live in :mod:`bea_lib.core.norms`.
Hyperparameters are keyword-only, data arguments first.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torch.func import vmap

from ..base.vocab import Convergence, TrendVerdict
from ..core.convergence import classify_run
from ..core.validation import check_one_of, check_positive, check_unit_interval

X, Y = 2.0, 1.5              # the paper's data point
START = (2.8, 3.5)           # every trajectory of Figures 2 and 3 starts here


def _check_data(x: float, y: float) -> tuple[float, float]:
    x, y = check_positive("x", x), float(y)
    if not (y > 0 and math.isfinite(y)):
        raise ValueError(f"y must be a finite number > 0 (minima where θ₁, θ₂ > 0), got {y!r}")
    return x, y


def bilinear_cross(x: float = X, y: float = Y) -> torch.Tensor:
    """(√(y/x), √(y/x)): the point of the hyperbola's positive branch that the bias pushes to."""
    x, y = _check_data(x, y)
    s = math.sqrt(y / x)
    return torch.tensor([s, s], dtype=torch.float64)


def bilinear_gradient(theta1, theta2, x: float = X, y: float = Y) -> tuple[np.ndarray, np.ndarray]:
    """∇E = -r x (θ₂, θ₁) in closed form on arrays of θ₁, θ₂ (for level sets on a grid)."""
    x, y = check_positive("x", x), float(y)
    theta1, theta2 = np.asarray(theta1, dtype=float), np.asarray(theta2, dtype=float)
    r = y - x * theta1 * theta2
    return -r * x * theta2, -r * x * theta1


def min_gradient_norm_on_level_set(level: float, *, p: int = 1, x: float = X, y: float = Y
                                   ) -> np.ndarray:
    """The point θ (θ₁θ₂ < y/x side) minimising ‖∇E(θ)‖_p on the level set E(θ) = ``level``.

    Found numerically, as a check of the derivation in the module docstring (it should be
    θ₁ = θ₂ = √((y - √(2·level))/x)): on that side the level set is θ₁θ₂ = (y - √(2·level))/x,
    parametrised by s = log θ₁, and ‖∇E‖_p is minimised over s by bounded Brent search.
    """
    level = check_positive("level", level)
    x, y = _check_data(x, y)
    p = check_one_of("p", p, (1, 2))
    if math.sqrt(2 * level) >= y:
        raise ValueError(f"level must be < y²/2 = {y * y / 2} (so that the level set has the side "
                         f"θ₁θ₂ < y/x in the positive quadrant), got {level!r}")
    target = (y - math.sqrt(2 * level)) / x

    def norm_on_level_set(s):
        g = np.array(bilinear_gradient(math.exp(s), target / math.exp(s), x, y))
        return np.abs(g).sum() if p == 1 else math.sqrt((g**2).sum())

    res = minimize_scalar(norm_on_level_set, bounds=(-10.0, 10.0), method="bounded",
                          options={"xatol": 1e-12})
    if not res.success:
        raise RuntimeError(f"minimisation on the level set {level} failed: {res.message}")
    return np.array([math.exp(res.x), target / math.exp(res.x)])


def late_phase_stability(theta, *, h: float, beta: float, eps: float, x: float = X) -> float:
    """η λ / (2(1+β)) near the hyperbola once ν̂ ≪ ε: above 1 the iterates cannot settle there.

    When the gradient is small against √ε, Adam is heavy-ball with step η = h(1-β)/√ε and
    momentum β (Example 2.3, :func:`bea_lib.heavy_ball_limit`), which is stable at a minimum
    only if ηλ < 2(1+β), λ the largest Hessian eigenvalue there: x²(θ₁² + θ₂²) on the hyperbola.
    ``theta`` is the point on (or near) the hyperbola where it is evaluated.
    """
    h, eps, x = check_positive("h", h), check_positive("eps", eps), check_positive("x", x)
    beta = check_unit_interval("beta", beta)
    theta = torch.as_tensor(theta, dtype=torch.float64).reshape(-1)
    if theta.numel() != 2:
        raise ValueError(f"theta must be a point (θ₁, θ₂), got {theta.numel()} components")
    lam = x**2 * float(theta[0] ** 2 + theta[1] ** 2)
    return h * (1 - beta) / math.sqrt(eps) * lam / (2 * (1 + beta))


class RunSummary(NamedTuple):
    """Where a run ended and what it did (one row of the chapter's tables)."""

    limit: tuple[float, float]   # the last iterate
    branch: int                  # +1 or -1: the hyperbola's branch (sign of θ₁ + θ₂) it ended near
    distance_to_cross: float     # ‖θ⁽ᴺ⁾ - branch·cross‖: to the cross of that branch
    one_norm: float              # ‖θ⁽ᴺ⁾‖₁
    loss: float                  # E(θ⁽ᴺ⁾)
    status: Convergence          # what became of the run (bea_lib.core.convergence.classify_run)
    tail_spread: float           # how far the last 10% of the run strays from its last iterate


def summarise_run(loss, iterates, *, cross=None, tol: float = 1e-6) -> RunSummary:
    """A :class:`RunSummary` of ``iterates`` (shape (n + 1, 2)); ``tol`` as in classify_run.

    E is even under θ ↦ -θ, so the hyperbola has a second branch with its own cross, -cross; a
    run that crosses the origin region ends near it, and its distance is measured to it.
    """
    if not callable(loss):
        raise ValueError("loss must be a callable E(θ)")
    iterates = torch.as_tensor(iterates, dtype=torch.float64)
    cross = bilinear_cross() if cross is None else torch.as_tensor(cross, dtype=torch.float64)
    status = classify_run(iterates, tol=tol)
    last = iterates[-1]
    finite = bool(torch.isfinite(last).all())
    branch = -1 if finite and float(last.sum()) < 0 else 1
    return RunSummary(
        limit=tuple(float(v) for v in last),
        branch=branch,
        distance_to_cross=float((last - branch * cross).norm()) if finite else math.inf,
        one_norm=float(last.abs().sum()) if finite else math.inf,
        loss=float(loss(last)) if finite else math.inf,
        status=status.status,
        tail_spread=status.tail_spread,
    )


class TrendCheck(NamedTuple):
    """One consecutive pair of a grid, and whether the claimed ordering of limit points holds."""

    value_from: float
    value_to: float
    distance_from: float
    distance_to: float
    verdict: TrendVerdict  # APPEARS, OPPOSITE, or NOT_TESTABLE where a run did not converge
    note: str = ""         # why: "branch changed", or the statuses of runs that did not converge

    @property
    def mark(self) -> str:
        """The verdict as a table cell: ✓, ✗ or — (with the note in brackets)."""
        sign = {TrendVerdict.APPEARS: "✓", TrendVerdict.OPPOSITE: "✗"}.get(self.verdict, "—")
        return f"{sign} ({self.note})" if self.note else sign


def monotone_trend(values, summaries, *, towards_cross: bool) -> list[TrendCheck]:
    """A claimed trend along a grid: as the parameter grows, does the limit move to the cross?

    ``values`` increasing; ``summaries`` their :class:`RunSummary`. ``towards_cross=True`` claims
    that the distance to the cross decreases along the grid, False that it increases. Pairs in
    which a run did not converge are ``NOT_TESTABLE``: an oscillating run has no limit point. A
    pair whose runs end on different branches of the hyperbola is ``OPPOSITE`` (note "branch
    changed"): the trend is a shift along one branch.
    """
    values = [float(v) for v in values]
    if len(values) != len(summaries) or len(values) < 2:
        raise ValueError("values and summaries must have the same length, at least 2")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"values must be strictly increasing, got {values}")
    checks = []
    for (a, sa), (b, sb) in zip(zip(values, summaries), zip(values[1:], summaries[1:])):
        bad = [s.status for s in (sa, sb) if s.status != Convergence.CONVERGED]
        if bad:
            verdict, note = TrendVerdict.NOT_TESTABLE, ", ".join(sorted(set(bad)))
        elif sa.branch != sb.branch:
            verdict, note = TrendVerdict.OPPOSITE, "branch changed"
        else:
            closer = sb.distance_to_cross < sa.distance_to_cross
            verdict = TrendVerdict.APPEARS if closer == towards_cross else TrendVerdict.OPPOSITE
            note = ""
        checks.append(TrendCheck(a, b, sa.distance_to_cross, sb.distance_to_cross, verdict, note))
    return checks


def one_norm_excess(theta) -> torch.Tensor:
    """(|θ₁| + |θ₂|)/(2√|θ₁θ₂|) - 1: how far ‖∇E‖₁ at θ exceeds its least value at the same loss.

    On the level set through θ the residual r and the product θ₁θ₂ = (y - r)/x are fixed, so
    ‖∇E‖₁ = |r| x (|θ₁| + |θ₂|) is least where |θ₁| = |θ₂| (AM–GM, module docstring); the ratio
    to that least value, minus 1, depends on θ only through its direction from the diagonals,
    not on x, y or the loss. It is 0 on the diagonals (the way to the cross) and grows away from
    them: the measure, along a trajectory, of the paper's "regions with smaller one-norm of the
    gradient". ``theta`` has shape (..., 2); points with θ₁θ₂ = 0 give inf.
    """
    theta = torch.as_tensor(theta, dtype=torch.float64)
    if theta.shape[-1:] != (2,):
        raise ValueError(f"theta must have shape (..., 2), got {tuple(theta.shape)}")
    a, b = theta[..., 0].abs(), theta[..., 1].abs()
    return (a + b) / (2 * torch.sqrt(a * b)) - 1


def excess_at_loss_levels(loss, iterates, levels) -> np.ndarray:
    """:func:`one_norm_excess` at the first iterate whose loss is at most each of ``levels``.

    Compares runs at matched loss levels rather than at matched times: the runs of a grid move
    at different speeds. NaN for a level the run never reaches (or a non-finite run).
    """
    iterates = torch.as_tensor(iterates, dtype=torch.float64)
    levels = np.asarray(levels, dtype=float)
    if levels.ndim != 1 or not np.all(levels > 0):
        raise ValueError(f"levels must be a 1-D sequence of numbers > 0, got {levels!r}")
    losses = vmap(loss)(iterates).numpy()
    excess = one_norm_excess(iterates).numpy()
    out = np.full(levels.size, np.nan)
    for i, level in enumerate(levels):
        reached = np.nonzero(losses <= level)[0]
        if reached.size:
            out[i] = excess[reached[0]]
    return out


# The trends of Figures 2 and 3, as the chapters test them: (group of runs, the parameter's
# symbol, towards the cross as the parameter grows?, the figure that states it).
FIGURE_TRENDS = (
    ("fig2-beta", "β", True, "Figure 2 (β)"),         # Figure 2: β and ρ
    ("fig2-rho", "ρ", False, "Figure 2 (ρ)"),
    ("fig3-beta>rho", "h (β > ρ)", True, "Figure 3 (β > ρ)"),  # Figure 3: the step size h
    ("fig3-rho>beta", "h (ρ > β)", False, "Figure 3 (ρ > β)"),
)


def figure_specs(*, beta_grid, rho_grid, h_grid, eps_grid, beta_fixed: float, rho_fixed: float,
                 pair_beta_above, pair_rho_above, h_fixed: float, eps_fixed: float) -> list[dict]:
    """The runs of Figures 2 and 3 and of the ε study, one dict each: ``group``, the ``value``
    of the parameter its group varies, and its ``h``, ``beta``, ``rho``, ``eps`` (the ones a
    group does not vary are the ``*_fixed`` values; Figure 3 varies h for two (β, ρ) pairs)."""
    h, eps = h_fixed, eps_fixed
    specs = [dict(group="fig2-beta", value=b, beta=b, rho=rho_fixed, h=h, eps=eps)
             for b in beta_grid]
    specs += [dict(group="fig2-rho", value=r, beta=beta_fixed, rho=r, h=h, eps=eps)
              for r in rho_grid]
    specs += [dict(group="fig3-beta>rho", value=hh, beta=pair_beta_above[0],
                   rho=pair_beta_above[1], h=hh, eps=eps) for hh in h_grid]
    specs += [dict(group="fig3-rho>beta", value=hh, beta=pair_rho_above[0],
                   rho=pair_rho_above[1], h=hh, eps=eps) for hh in h_grid]
    specs += [dict(group="eps", value=e, beta=beta_fixed, rho=rho_fixed, h=h, eps=e)
              for e in eps_grid]
    return specs


def run_specs(loss, theta0, specs: list[dict], n_steps: int, *, cross, tol: float,
              loss_levels) -> list[dict]:
    """Run every spec of :func:`figure_specs` in one batched Adam call and add to each dict:
    ``path`` (the iterates), ``summary`` (:class:`RunSummary`, converged within ``tol``),
    ``stability`` (:func:`late_phase_stability` at the cross), ``small_share`` and
    ``large_share`` (shares of the path length travelled with ε small / large against the
    squared gradient), ``end_regime`` (the cell of Table 1 at the last iterate) and
    ``excess`` (the one-norm excess at each of ``loss_levels``). Returns ``specs``."""
    from ..core.autodiff import gradient
    from ..core.norms import implicit_bias_regime, path_share_by_regime
    from ..core.runs import adam_runs
    from ..base.vocab import BiasRegime

    iterates = adam_runs(loss, theta0, n_steps,
                         **{k: [s[k] for s in specs] for k in ("h", "beta", "rho", "eps")})
    for k, s in enumerate(specs):
        s["path"] = iterates[:, k]
        s["summary"] = summarise_run(loss, s["path"], cross=cross, tol=tol)
        s["stability"] = late_phase_stability(theta=cross, h=s["h"], beta=s["beta"],
                                              eps=s["eps"], x=X)
        finite = bool(torch.isfinite(s["path"]).all())
        share = (path_share_by_regime(loss, s["path"], beta=s["beta"], rho=s["rho"],
                                      eps=s["eps"]) if finite else {})
        s["small_share"] = sum(v for key, v in share.items() if key.eps_small)
        s["large_share"] = share.get(BiasRegime.TWO_NORM_SQUARED_PENALISED, 0.0)
        s["end_regime"] = (implicit_bias_regime(beta=s["beta"], rho=s["rho"], eps=s["eps"],
                                                grad=gradient(loss, s["path"][-1]))
                           if finite else "—")
        s["excess"] = (excess_at_loss_levels(loss, s["path"], loss_levels) if finite
                       else np.full(len(loss_levels), np.nan))
    return specs
