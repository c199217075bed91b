"""Update rules against independent references: torch.optim, hand-written recursions, each other."""
import math

import pytest
import torch
from torch.func import functional_call

import bea_lib as bl
from bea_lib.core.optimizers import (adam_init, adam_update, torch_optimizer_iterates,
                                     torch_optimizer_steps)
from losses import bilinear_loss, random_smooth_loss

P = 12
N_STEPS = 200


@pytest.fixture
def problem():
    return random_smooth_loss(P, seed=1), torch.randn(P)


def test_adam_eps_outside_equals_torch_adam(problem):
    loss, theta0 = problem
    h, beta, rho, eps = 1e-2, 0.9, 0.999, 1e-8
    ours = bl.adam(loss, theta0, N_STEPS, h=h, beta=beta, rho=rho, eps=eps, eps_inside=False)
    ref = torch_optimizer_iterates(lambda p: torch.optim.Adam(p, lr=h, betas=(beta, rho), eps=eps),
                                   loss, theta0, N_STEPS)
    # torch folds the bias corrections into other places; both are float64, so only rounding
    # differs: 1e-12 absolute is ~1e4 ulps of O(1) iterates after 200 steps.
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


def test_paper_rmsprop_equals_torch_adam_with_beta1_zero(problem):
    """The paper's RMSProp (ε outside) keeps ν's bias correction: torch.optim.Adam with β₁ = 0."""
    loss, theta0 = problem
    h, rho, eps = 1e-2, 0.99, 1e-8
    ours = bl.rmsprop(loss, theta0, N_STEPS, h=h, rho=rho, eps=eps, eps_inside=False)
    ref = torch_optimizer_iterates(lambda p: torch.optim.Adam(p, lr=h, betas=(0.0, rho), eps=eps),
                                   loss, theta0, N_STEPS)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)  # float64 rounding only, as above


def test_torch_rmsprop_is_paper_rmsprop_with_rescaled_step_and_eps(problem):
    """torch.optim.RMSprop has no bias correction. Since sqrt(ν/c) + ε = (sqrt(ν) + ε sqrt(c))
    / sqrt(c) with c = 1 - ρ^(n+1), its step n is the paper's RMSProp step with
    h_n = lr/sqrt(c), ε_n = eps/sqrt(c)."""
    loss, theta0 = problem
    lr, rho, eps = 1e-2, 0.99, 1e-8
    ref = torch_optimizer_iterates(lambda p: torch.optim.RMSprop(p, lr=lr, alpha=rho, eps=eps),
                                   loss, theta0, N_STEPS)
    theta, state, rows = theta0.clone(), adam_init(theta0), [theta0.clone()]
    for n in range(N_STEPS):
        c = 1 - rho ** (n + 1)
        d, state = adam_update(bl.gradient(loss, theta), state, h=lr / math.sqrt(c), beta=0.0,
                               rho=rho, eps=eps / math.sqrt(c), eps_inside=False)
        theta = theta + d
        rows.append(theta)
    torch.testing.assert_close(torch.stack(rows), ref, rtol=0, atol=1e-12)  # float64 rounding only
    # ... and the mapping matters: with the constant h = lr the paper's RMSProp ends elsewhere.
    paper = bl.rmsprop(loss, theta0, N_STEPS, h=lr, rho=rho, eps=eps, eps_inside=False)
    assert (paper[-1] - ref[-1]).norm() > 1e-3


def test_heavy_ball_equals_torch_sgd_momentum(problem):
    """torch's b = μb + g (b₀ = g), p -= lr·b: θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ - h∇E + β(θ⁽ⁿ⁾ - θ⁽ⁿ⁻¹⁾) from rest."""
    loss, theta0 = problem
    h, beta = 1e-2, 0.9
    ours = bl.heavy_ball(loss, theta0, N_STEPS, h=h, beta=beta)
    ref = torch_optimizer_iterates(lambda p: torch.optim.SGD(p, lr=h, momentum=beta), loss,
                                   theta0, N_STEPS)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)  # float64 rounding only


def test_gd_is_heavy_ball_with_zero_momentum_and_the_plain_recursion(problem):
    loss, theta0 = problem
    h = 5e-2
    ours = bl.gd(loss, theta0, 50, h=h)
    assert torch.equal(ours, bl.heavy_ball(loss, theta0, 50, h=h, beta=0.0))  # the same code path
    theta = theta0.clone()
    for n in range(50):
        theta = theta - h * bl.gradient(loss, theta)
    torch.testing.assert_close(ours[-1], theta, rtol=0, atol=1e-13)  # β·0 terms: rounding only


def test_rmsprop_is_adam_with_beta_zero(problem):
    loss, theta0 = problem
    a = bl.rmsprop(loss, theta0, 50, h=1e-2, rho=0.9, eps=1e-6)
    b = bl.adam(loss, theta0, 50, h=1e-2, beta=0.0, rho=0.9, eps=1e-6)
    assert torch.equal(a, b)


def test_adam_first_step_is_a_signed_step():
    """After bias correction m̂ = g and ν̂ = g², so step 1 is -h g/sqrt(g² + ε) (a closed form)."""
    loss = random_smooth_loss(5, seed=3)
    theta0 = torch.randn(5)
    h, eps = 0.1, 1e-3
    out = bl.adam(loss, theta0, 1, h=h, beta=0.9, rho=0.999, eps=eps)
    g = bl.gradient(loss, theta0)
    # rounding
    torch.testing.assert_close(out[1], theta0 - h * g / torch.sqrt(g**2 + eps), rtol=0, atol=1e-15)


def test_minibatch_losses_are_cycled():
    """Step n uses losses[n % m]: compare with Adam stepped by hand on alternating losses."""
    l0, l1 = random_smooth_loss(4, seed=0), random_smooth_loss(4, seed=1)
    theta0 = torch.randn(4)
    hyper = dict(h=1e-2, beta=0.9, rho=0.99, eps=1e-8)
    out = bl.adam([l0, l1], theta0, 7, **hyper)
    theta, state = theta0.clone(), adam_init(theta0)
    for n in range(7):
        d, state = adam_update(bl.gradient([l0, l1][n % 2], theta), state, **hyper)
        theta = theta + d
    assert torch.equal(out[-1], theta)


def _mlp_and_flat_loss():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(),
                              torch.nn.Linear(8, 2)).double()
    x, y = torch.randn(32, 3), torch.randn(32, 2)
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    sizes = [p.numel() for p in net.parameters()]

    def flat_loss(theta):
        params = {n: t.reshape(s) for n, t, s in zip(names, torch.split(theta, sizes), shapes)}
        return torch.nn.functional.mse_loss(functional_call(net, params, (x,)), y)

    theta0 = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    return net, flat_loss, theta0, x, y


@pytest.mark.parametrize("eps_inside", [True, False])
def test_network_optimizer_equals_vector_iteration(eps_inside):
    net, flat_loss, theta0, x, y = _mlp_and_flat_loss()
    hyper = dict(beta=0.9, rho=0.99, eps=1e-8, eps_inside=eps_inside)
    ref = bl.adam(flat_loss, theta0, 100, h=1e-2, **hyper)
    opt = bl.Adam(net.parameters(), lr=1e-2, **hyper)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    # Same update function; module autograd and torch.func sum in different orders: rounding only.
    torch.testing.assert_close(theta, ref[-1], rtol=0, atol=1e-12)


def test_eps_inside_and_outside_agree_when_gradients_dominate_and_differ_otherwise():
    """Inside: sqrt(ν̂ + ε) = |g|(1 + O(ε/g²)); outside: |g| + ε = |g|(1 + O(ε/|g|)). When every |g|
    ≫ √ε both are |g| to relative O(ε/|g|); when |g| ≪ √ε the inside step is ≈ h·g/√ε, far smaller
    than the outside step ≈ h·g/(|g| + ε)."""
    eps, h, n = 1e-8, 1e-2, 200
    theta0 = torch.tensor([2.8, 3.5])
    big = bilinear_loss()  # min |∂E/∂θ_i| along this path is ≈ 15, √ε = 1e-4
    a = bl.adam(big, theta0, n, h=h, beta=0.9, rho=0.999, eps=eps, eps_inside=True)
    b = bl.adam(big, theta0, n, h=h, beta=0.9, rho=0.999, eps=eps, eps_inside=False)
    travelled = (a[-1] - a[0]).norm()
    # per-step relative gap ≤ ε/min|g| ≈ 7e-10, so ≤ 1.4e-7 after 200 steps (measured: 8e-11)
    assert (a - b).norm(dim=1).max() / travelled < 2e-7

    tiny = lambda th: 1e-12 * big(th)  # noqa: E731  |∇E| ≈ 1e-11 ≪ √ε
    a = bl.adam(tiny, theta0, n, h=h, beta=0.9, rho=0.999, eps=eps, eps_inside=True)
    b = bl.adam(tiny, theta0, n, h=h, beta=0.9, rho=0.999, eps=eps, eps_inside=False)
    # per step inside moves ≈ h|g|/√ε ≈ 1e-7·h, outside ≈ h|g|/ε ≈ 1e-3·h: predicted ratio 1e-4
    assert (a[-1] - a[0]).norm() < 1e-3 * (b[-1] - b[0]).norm()


BAD = [
    (dict(h=0.0), "h must be"),
    (dict(h=-1.0), "h must be"),
    (dict(h=float("inf")), "h must be"),
    (dict(beta=1.0), r"beta must be in \[0, 1\)"),
    (dict(beta=-0.1), r"beta must be in \[0, 1\)"),
    (dict(rho=1.0), r"rho must be in \[0, 1\)"),
    (dict(eps=0.0), "eps must be"),
    (dict(eps=-1e-8), "eps must be"),
]


@pytest.mark.parametrize("bad,msg", BAD)
def test_adam_rejects_bad_hyperparameters(bad, msg):
    hyper = dict(h=1e-2, beta=0.9, rho=0.999, eps=1e-8) | bad
    with pytest.raises(ValueError, match=msg):
        bl.adam(bilinear_loss(), torch.tensor([1.0, 1.0]), 3, **hyper)


@pytest.mark.parametrize("theta0,msg", [
    (torch.ones(2, 2), "theta0 must be a 1-D"),
    (torch.tensor([1.0, float("nan")]), "theta0 must be finite"),
    (torch.tensor([float("inf"), 1.0]), "theta0 must be finite"),
    (torch.tensor([]), "theta0 must have at least one"),
])
def test_rejects_bad_theta0(theta0, msg):
    with pytest.raises(ValueError, match=msg):
        bl.gd(bilinear_loss(), theta0, 3, h=0.1)


@pytest.mark.parametrize("n_steps", [-1, 2.5, True])
def test_rejects_bad_n_steps(n_steps):
    with pytest.raises(ValueError, match="n_steps must be an integer >= 0"):
        bl.heavy_ball(bilinear_loss(), torch.tensor([1.0, 1.0]), n_steps, h=0.1, beta=0.5)


def test_rejects_bad_losses_and_heavy_ball_beta():
    with pytest.raises(ValueError, match="loss must be a callable"):
        bl.gd([], torch.tensor([1.0]), 3, h=0.1)
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\)"):
        bl.heavy_ball(bilinear_loss(), torch.tensor([1.0, 1.0]), 3, h=0.1, beta=1.5)
    with pytest.raises(ValueError, match=r"rho must be in \[0, 1\)"):
        bl.rmsprop(bilinear_loss(), torch.tensor([1.0, 1.0]), 3, h=0.1, rho=2.0, eps=1e-8)


def test_network_optimizer_rejects_bad_hyperparameters():
    p = [torch.nn.Parameter(torch.zeros(3))]
    with pytest.raises(ValueError, match="lr must be"):
        bl.Adam(p, lr=0.0)
    with pytest.raises(ValueError, match=r"rho must be in \[0, 1\)"):
        bl.Adam(p, lr=1e-3, rho=1.0)


def test_zero_steps_returns_the_start():
    theta0 = torch.tensor([1.0, 2.0])
    out = bl.adam(bilinear_loss(), theta0, 0, h=0.1, beta=0.9, rho=0.99, eps=1e-8)
    assert out.shape == (1, 2) and torch.equal(out[0], theta0)


def test_torch_steps_on_a_gradient_stream_equal_the_paper_rule_where_forms_coincide():
    """Fed the same gradients, torch's Adam (β₁ = 0) takes the paper's RMSProp steps (ε outside)."""
    grads = torch.randn(40, 6)
    rho, eps, h = 0.99, 1e-8, 1e-2
    steps = torch_optimizer_steps(lambda p: torch.optim.Adam(p, lr=h, betas=(0.0, rho), eps=eps),
                                  grads)
    state, ours = adam_init(grads[0]), []
    for g in grads:
        d, state = adam_update(g, state, h=h, beta=0.0, rho=rho, eps=eps, eps_inside=False)
        ours.append(d)
    torch.testing.assert_close(steps, torch.stack(ours), rtol=1e-12, atol=1e-15)  # rounding


# --------------------------------------------------------------------------- non-finite iterates
EXPLODING = lambda th: (th**4).sum()  # noqa: E731  GD with h = 1 from θ = 2: θ ↦ θ - 4θ³ overflows


@pytest.mark.parametrize("run", [
    lambda **kw: bl.gd(EXPLODING, torch.tensor([0.1, 2.0]), 300, h=1.0, **kw),
    lambda **kw: bl.heavy_ball(EXPLODING, torch.tensor([0.1, 2.0]), 300, h=1.0, beta=0.5, **kw),
])
def test_nonfinite_iterates_raise_with_step_and_component(run):
    keep = run(on_nonfinite="keep")
    finite = torch.isfinite(keep).all(dim=1)
    n = int((~finite).nonzero()[0])  # the first row with an inf or nan
    j = int((~torch.isfinite(keep[n])).nonzero()[0])
    assert 0 < n < 300 and j == 1  # component 0 (θ = 0.1) contracts; component 1 blows up
    with pytest.raises(RuntimeError,
                       match=rf"θ⁽{n}⁾ is not finite \(component {j} = (inf|-inf|nan)"):
        run()


def test_nonfinite_gradient_in_adam_raises():
    """A loss whose gradient is nan at the start (√θ at 0): Adam's first step is nan."""
    loss = lambda th: torch.sqrt(th.abs()).sum()  # noqa: E731  ∂/∂θ |θ|^½ is inf·0 = nan at 0
    with pytest.raises(RuntimeError, match=r"adam: iterate θ⁽1⁾ is not finite \(component 0"):
        bl.adam(loss, torch.tensor([0.0, 1.0]), 5, h=0.1, beta=0.9, rho=0.99, eps=1e-8)
    kept = bl.adam(loss, torch.tensor([0.0, 1.0]), 5, h=0.1, beta=0.9, rho=0.99, eps=1e-8,
                   on_nonfinite="keep")
    assert kept.shape == (6, 2) and torch.isnan(kept[1, 0])


def test_on_nonfinite_is_checked():
    with pytest.raises(ValueError, match="on_nonfinite must be one of"):
        bl.adam(bilinear_loss(), torch.ones(2), 3, h=0.1, beta=0.9, rho=0.99, eps=1e-8,
                on_nonfinite="ignore")


# --------------------------------------------------------------------------- bl.Adam's groups
@pytest.mark.parametrize("group, msg", [
    (dict(beta=1.0), r"beta must be in \[0, 1\)"),
    (dict(rho=-0.5), r"rho must be in \[0, 1\)"),
    (dict(lr=0.0), "lr must be"),
    (dict(eps=float("nan")), "eps must be"),
    (dict(betas=(0.9, 0.99)), r"unknown keys \['betas'\]"),
])
def test_add_param_group_checks_hyperparameters(group, msg):
    opt = bl.Adam([torch.nn.Parameter(torch.zeros(3))], lr=1e-3)
    with pytest.raises(ValueError, match=msg):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], **group})
    assert len(opt.param_groups) == 1  # nothing half-added


def test_add_param_group_uses_its_own_hyperparameters():
    """A group with its own lr and β steps as bl.adam does with those values."""
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = bl.Adam([a], lr=1e-2, beta=0.9, rho=0.99, eps=1e-8)
    opt.add_param_group({"params": [b], "lr": 5e-2, "beta": 0.5})
    for _ in range(3):
        opt.zero_grad()
        (0.5 * (a**2).sum() + 0.5 * (b**2).sum()).backward()
        opt.step()
    ref = bl.adam(lambda th: 0.5 * (th**2).sum(), torch.ones(2), 3, h=5e-2, beta=0.5, rho=0.99,
                  eps=1e-8)
    torch.testing.assert_close(b.detach(), ref[-1], rtol=0, atol=1e-15)  # same update: rounding


def test_network_optimizer_hyperparameters_are_keyword_only():
    with pytest.raises(TypeError):
        bl.Adam([torch.nn.Parameter(torch.zeros(3))], 1e-3)


# --------------------------------------------------------------------------- gradient paths
def test_iterates_do_not_depend_on_the_gradient_path():
    """The iterations take ∇E by plain reverse mode; torch.func.grad gives the same iterates."""
    loss, theta0 = random_smooth_loss(P, seed=2), torch.randn(P)
    hyper = dict(h=1e-2, beta=0.9, rho=0.999, eps=1e-8)
    theta, state, rows = theta0.clone(), adam_init(theta0), [theta0.clone()]
    for _ in range(N_STEPS):
        d, state = adam_update(torch.func.grad(loss)(theta), state, **hyper)
        theta = theta + d
        rows.append(theta)
    # the same derivative formulas in both modes: rounding only (measured: 0)
    torch.testing.assert_close(bl.adam(loss, theta0, N_STEPS, **hyper), torch.stack(rows),
                               rtol=0, atol=1e-13)


# --------------------------------------------------------------------------- n_steps
@pytest.mark.parametrize("n_steps", [
    float("nan"), float("inf"), None, 1e20, -1, 2.5])
@pytest.mark.parametrize("run", [
    lambda n: bl.adam(bilinear_loss(), torch.ones(2), n, h=0.1, beta=0.9, rho=0.99, eps=1e-8),
    lambda n: bl.heavy_ball(bilinear_loss(), torch.ones(2), n, h=0.1, beta=0.5),
    lambda n: bl.adam_runs(bilinear_loss(), torch.ones(2), n, h=[0.1, 0.2], beta=0.9, rho=0.99,
                           eps=1e-8),
], ids=["adam", "heavy_ball", "adam_runs"])
def test_n_steps_is_checked_by_name(run, n_steps):
    """Every iteration checks n_steps with validation.check_n_steps, before any work."""
    with pytest.raises(ValueError, match="n_steps"):
        run(n_steps)


@pytest.mark.parametrize("run", [
    lambda loss: bl.adam(loss, torch.ones(3), 5, h=0.1, beta=0.9, rho=0.99, eps=1e-8),
    lambda loss: bl.gd(loss, torch.ones(3), 5, h=0.1),
    lambda loss: bl.adam([lambda t: (t**2).sum(), loss], torch.ones(3), 5, h=0.1, beta=0.9,
                         rho=0.99, eps=1e-8),
])
def test_a_loss_that_does_not_depend_on_theta_warns(run):
    """Before: a loss that detached θ gave zero gradients and θ never moved, silently."""
    with pytest.warns(UserWarning, match="does not depend on θ"):
        out = run(lambda t: (t.detach() ** 2).sum())
    assert torch.isfinite(out).all()


def test_a_loss_that_depends_on_theta_does_not_warn(recwarn):
    bl.adam(lambda t: (t**2).sum(), torch.ones(3), 5, h=0.1, beta=0.9, rho=0.99, eps=1e-8)
    assert not [w for w in recwarn if "does not depend on θ" in str(w.message)]
