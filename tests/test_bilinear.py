"""Section 5's bilinear model: the cross, the explicit regulariser, the trends of Figures 2–3."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize, minimize_scalar

import bea_lib as bl
from bea_lib.studies import bilinear as bil

E = bl.losses.bilinear(x=bil.X, y=bil.Y)
EPS, H = 1e-4, 3e-3  # ε small against the starting gradient (≈ 100), h as in the chapter


def test_cross_is_the_minimiser_of_the_gradient_norm_along_the_valley():
    c = bil.Y / bil.X
    cross = bil.bilinear_cross()
    # closed form
    torch.testing.assert_close(cross, torch.full((2,), math.sqrt(c)), rtol=1e-15, atol=0)
    # |θ₁| + |θ₂| on the hyperbola, by Brent's method on θ₁ alone
    res = minimize_scalar(lambda t: t + c / t, bounds=(0.05, 5.0), method="bounded",
                          options={"xatol": 1e-10})
    # xatol of the search, plus its last bracket
    assert res.x == pytest.approx(cross[0].item(), abs=1e-7)
    # ‖∇E‖₁ (autograd) on the level set E = ℓ, side θ₁θ₂ < c (residual r = +√(2ℓ), a constraint
    # that stays well-conditioned as ℓ → 0, unlike E - ℓ), by SLSQP in the plane: tends to the cross
    for level in [1e-2, 1e-4]:  # SLSQP stalls below ~1e-6: the constraint's scale and f's part ways
        def one_norm(t):  # divided by √(2ℓ) so that SLSQP's ftol means the same at every ℓ
            return bl.gradient(E, torch.tensor(t)).abs().sum().item() / math.sqrt(2 * level)

        residual = lambda t: bil.Y - bil.X * t[0] * t[1] - math.sqrt(2 * level)  # noqa: E731
        res = minimize(one_norm, np.array([0.5, 1.2]), method="SLSQP",
                       constraints=[{"type": "eq", "fun": residual}],
                       bounds=[(0.01, 5.0), (0.01, 5.0)], options={"ftol": 1e-12, "maxiter": 500})
        assert res.success, res.message
        assert E(torch.tensor(res.x)).item() == pytest.approx(level, rel=1e-6)  # on the level set
        want = math.sqrt((bil.Y - math.sqrt(2 * level)) / bil.X)  # the derivation's minimiser
        # SLSQP's ftol 1e-12 on a flat minimum
        np.testing.assert_allclose(res.x, [want, want], atol=1e-6)
        # and it is within √(2ℓ)/(2x√c) < √(2ℓ) of the cross
        assert np.abs(res.x - cross.numpy()).max() < math.sqrt(2 * level)


@pytest.mark.parametrize("p", [1, 2])
def test_min_gradient_norm_on_level_set_matches_the_derivation(p):
    for level in [1e-1, 1e-6]:
        got = bil.min_gradient_norm_on_level_set(level, p=p)
        want = math.sqrt((bil.Y - math.sqrt(2 * level)) / bil.X)
        # Brent's xatol 1e-12 in log θ₁, flat minimum
        np.testing.assert_allclose(got, [want, want], rtol=1e-6)
    with pytest.raises(ValueError, match="level"):
        bil.min_gradient_norm_on_level_set(2.0)
    with pytest.raises(ValueError, match="p"):
        bil.min_gradient_norm_on_level_set(1e-3, p=3)


def test_closed_form_gradient():
    theta = torch.tensor([0.7, -1.3])
    g = bil.bilinear_gradient(theta[0].item(), theta[1].item())
    # same formula, rounding
    torch.testing.assert_close(torch.tensor(g), bl.gradient(E, theta), rtol=1e-14, atol=0)


def test_explicit_bias_loss_gradient_is_g_plus_lambda_hessian_times_u():
    theta, lam = torch.tensor([1.1, 0.4]), 0.3
    g = bl.gradient(E, theta)
    want = g + lam * bl.hvp(E, theta, g / torch.sqrt(g**2 + EPS))  # ∇‖∇E‖_{1,ε} = H g/√(g²+ε)
    got = bl.gradient(bl.explicit_bias_loss(E, strength=lam, eps=EPS), theta)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)  # identity up to rounding
    with pytest.raises(ValueError, match="eps"):
        bl.explicit_bias_loss(E, strength=1.0, eps=0.0)
    with pytest.raises(ValueError, match="strength"):
        bl.explicit_bias_loss(E, strength=math.nan, eps=EPS)


def test_implicit_bias_strength_and_stability():
    # ε ≪ g²: the ρ-term of c vanishes
    want = H * bl.bias_coefficient(1.0, beta=0.95, rho=0.8, eps=1e-300)
    assert bl.implicit_bias_strength(h=H, beta=0.95, rho=0.8) == pytest.approx(want, rel=1e-12)
    eta, _ = bl.heavy_ball_limit(h=H, beta=0.9, eps=EPS)
    lam = bil.X**2 * 2 * bil.Y / bil.X  # x²(θ₁² + θ₂²) at the cross
    assert bil.late_phase_stability(bil.bilinear_cross(), h=H, beta=0.9,
                                    eps=EPS) == pytest.approx(eta * lam / 3.8, rel=1e-12)
    with pytest.raises(ValueError, match="beta"):
        bl.implicit_bias_strength(h=H, beta=1.0, rho=0.5)


def test_monotone_trend_verdicts():
    def summary(d, status="converged", branch=1):
        return bil.RunSummary((0.0, 0.0), branch, d, 0.0, 0.0, status, 0.0)

    summaries = [summary(0.5), summary(0.4), summary(0.45), summary(0.1, branch=-1),
                 summary(0.3, "oscillating")]
    checks = bil.monotone_trend([1, 2, 3, 4, 5], summaries, towards_cross=True)
    assert [t.mark for t in checks] == ["✓", "✗", "✗ (branch changed)", "— (oscillating)"]
    assert [t.verdict for t in checks] == [bl.TrendVerdict.APPEARS, bl.TrendVerdict.OPPOSITE,
                                           bl.TrendVerdict.OPPOSITE, bl.TrendVerdict.NOT_TESTABLE]
    with pytest.raises(ValueError, match="increasing"):
        bil.monotone_trend([2, 1], [summary(0.1), summary(0.2)], towards_cross=True)


def test_summarise_run_measures_to_the_cross_of_the_branch_it_ends_on():
    cross = bil.bilinear_cross()
    path = torch.stack([torch.tensor(bil.START), -cross + torch.tensor([0.1, 0.0]),
                        -cross + torch.tensor([0.1, 0.0])])
    s = bil.summarise_run(E, path)
    assert s.branch == -1 and s.status == "converged"
    assert s.distance_to_cross == pytest.approx(0.1, rel=1e-12)  # to -cross, not to +cross


def _limits(**grid):
    """Distances to the cross of converged runs of the chapter's model, one batched call."""
    out = bl.adam_runs(E, torch.tensor(bil.START), 2000, eps=EPS, **grid)
    summaries = [bil.summarise_run(E, out[:, k]) for k in range(out.shape[1])]
    assert all(s.status == "converged" for s in summaries), [s.status for s in summaries]
    return [s.distance_to_cross for s in summaries]


def test_paper_trends_on_a_grid_where_they_hold():
    """Figure 2 and 3's monotone trends, at ε = 1e-4 and 2000 steps (the chapter's table shows
    they hold on these grids and fail beyond, where runs stop converging)."""
    betas, rhos, hs = [0.5, 0.8, 0.9, 0.95], [0.5, 0.8, 0.9, 0.95], [2e-3, 3e-3, 5e-3]
    d = _limits(h=[H] * 8 + hs + hs,
                beta=betas + [0.9] * 4 + [0.95] * 3 + [0.8] * 3,
                rho=[0.9] * 4 + rhos + [0.8] * 3 + [0.95] * 3)
    d_beta, d_rho, d_h_beta_above, d_h_rho_above = d[:4], d[4:8], d[8:11], d[11:]
    assert all(b < a for a, b in zip(d_beta, d_beta[1:]))  # larger β: towards the cross
    assert all(b > a for a, b in zip(d_rho, d_rho[1:]))  # larger ρ: away from it
    # larger h, β > ρ: towards
    assert all(b < a for a, b in zip(d_h_beta_above, d_h_beta_above[1:]))
    assert all(b > a for a, b in zip(d_h_rho_above, d_h_rho_above[1:]))  # larger h, ρ > β: away


def test_one_norm_excess_is_the_ratio_to_the_least_one_norm_on_the_level_set():
    """Against a brute-force minimum of ‖∇E‖₁ over the level set through θ (same branch)."""
    theta = torch.tensor([2.8, 3.5])
    loss, g1 = E(theta).item(), bl.gradient(E, theta).abs().sum().item()
    product = theta.prod().item()  # the level set on this side of the valley: θ₁θ₂ fixed
    s = np.linspace(-3, 3, 200001)  # θ₁ = √product · e^s, a grid fine enough for 1e-8
    a = math.sqrt(product) * np.exp(s)
    t1, t2 = torch.tensor(a), torch.tensor(product / a)
    assert torch.allclose(E(torch.stack([t1[0], t2[0]])), torch.tensor(loss))  # same level
    r = bil.Y - bil.X * product
    least = (abs(r) * bil.X * (t1.abs() + t2.abs())).min().item()
    assert bil.one_norm_excess(theta).item() == pytest.approx(g1 / least - 1, rel=1e-8)
    assert bil.one_norm_excess(bil.bilinear_cross()).item() == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="theta must have shape"):
        bil.one_norm_excess(torch.zeros(3))


def test_excess_at_loss_levels_takes_the_first_iterate_below_each_level():
    path = torch.tensor([[2.8, 3.5], [1.0, 2.0], [0.9, 0.9], [1.0, 0.75]])
    losses = [E(p).item() for p in path]  # decreasing: 172, 6.1, 0.0045, 0
    out = bil.excess_at_loss_levels(E, path, [10.0, 0.01, 1e-12, 1e-300])
    expected = bil.one_norm_excess(path[[1, 2, 3, 3]]).numpy()
    assert losses[1] < 10 < losses[0] and losses[2] < 0.01 < losses[1]
    np.testing.assert_allclose(out, expected, rtol=0, atol=0)
    assert np.isnan(bil.excess_at_loss_levels(E, path[:2], [1e-3])[0])  # never reached
    with pytest.raises(ValueError, match="levels must be"):
        bil.excess_at_loss_levels(E, path, [0.0])


def test_figure_specs_and_run_specs_cover_every_group_in_one_batched_call():
    """The runs both bilinear chapters share: every group, and the fields the chapters read."""
    import numpy as np
    import torch

    import bea_lib as bl
    from bea_lib.studies import bilinear as bil

    specs = bil.figure_specs(beta_grid=[0.8, 0.9], rho_grid=[0.9], h_grid=[1e-2], eps_grid=[1e-4],
                             beta_fixed=0.9, rho_fixed=0.95, pair_beta_above=[0.95, 0.8],
                             pair_rho_above=[0.8, 0.95], h_fixed=3e-3, eps_fixed=1e-8)
    assert [s["group"] for s in specs] == ["fig2-beta", "fig2-beta", "fig2-rho", "fig3-beta>rho",
                                           "fig3-rho>beta", "eps"]
    assert specs[0] == dict(group="fig2-beta", value=0.8, beta=0.8, rho=0.95, h=3e-3, eps=1e-8)
    assert specs[3]["h"] == 1e-2 and (specs[3]["beta"], specs[3]["rho"]) == (0.95, 0.8)
    E = bl.losses.bilinear()
    theta0 = torch.tensor(bil.START, dtype=torch.float64)
    runs = bil.run_specs(E, theta0, specs, 50, cross=bil.bilinear_cross(), tol=1e-6,
                         loss_levels=[1.0])
    for s in runs:
        alone = bl.adam(E, theta0, 50, h=s["h"], beta=s["beta"], rho=s["rho"], eps=s["eps"])
        # the batched call is the same update rule: equal to float64 rounding over 50 steps
        assert torch.allclose(s["path"], alone, rtol=0, atol=1e-12)
        assert {"summary", "stability", "small_share", "large_share", "end_regime",
                "excess"} <= set(s) and np.shape(s["excess"]) == (1,)
