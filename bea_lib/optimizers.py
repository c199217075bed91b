r"""Update rules of the paper, as pure step functions with explicit state.

Symbols of the paper and their names here:

====================  ==========  ==================================================
symbol                name        meaning
====================  ==========  ==================================================
h                     ``h``       step size (learning rate)
β                     ``beta``    gradient momentum (first moment) parameter
ρ                     ``rho``     squared-gradient momentum (second moment) parameter
ε                     ``eps``     numerical stability constant
m⁽ⁿ⁾, ν⁽ⁿ⁾            ``m, v``    exponential averages of gradients and squared gradients
E_n                   ``losses``  loss used at step n, ``losses[n % len(losses)]``
====================  ==========  ==================================================

Adam (Definition 2.1 of Cattaneo, Klusowski & Shigida, 2023), for n >= 0 and every component:

.. math::

    ν^{(n+1)} = ρ ν^{(n)} + (1-ρ) (∇E_n(θ^{(n)}))^2, \qquad
    m^{(n+1)} = β m^{(n)} + (1-β) ∇E_n(θ^{(n)}),

    θ^{(n+1)} = θ^{(n)} - h \frac{m^{(n+1)} / (1-β^{n+1})}{\sqrt{ν^{(n+1)}/(1-ρ^{n+1}) + ε}}.

With ``eps_inside=False`` the denominator is :math:`\sqrt{ν^{(n+1)}/(1-ρ^{n+1})} + ε`, the form of
Kingma & Ba (2015) and of ``torch.optim.Adam``. The two ε are different numbers: inside, ε is
compared with squared gradients; outside, with their magnitudes.

RMSProp as the paper defines it is Adam with β = 0 (the second moment keeps its bias
correction). Warning: ``torch.optim.RMSprop`` has no bias correction; its iterates equal the
paper's RMSProp (ε outside) run with a step h_n = lr/√(1-ρ^{n+1}) and ε_n = eps/√(1-ρ^{n+1}) that
change with n (tested in ``tests/test_optimizers.py``): early on, when ν is still far below its
average, it takes steps up to 1/√(1-ρ) times longer.

Heavy-ball momentum: θ^{(n+1)} = θ^{(n)} - h∇E(θ^{(n)}) + β(θ^{(n)} - θ^{(n-1)}), θ^{(-1)} = θ^{(0)};
gradient descent is heavy-ball with β = 0.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .autodiff import gradient
from .validation import as_losses, check_n_steps, check_positive, check_theta0, check_unit_interval


class AdamState(NamedTuple):
    """Adam's state after n steps: the two exponential averages and the step count n."""

    m: torch.Tensor
    v: torch.Tensor
    n: int


class HeavyBallState(NamedTuple):
    """Heavy-ball's state: the last displacement θ⁽ⁿ⁾ - θ⁽ⁿ⁻¹⁾ (zero at the start)."""

    velocity: torch.Tensor


def adam_init(theta: torch.Tensor) -> AdamState:
    """m⁽⁰⁾ = ν⁽⁰⁾ = 0."""
    return AdamState(m=torch.zeros_like(theta), v=torch.zeros_like(theta), n=0)


def adam_update(g: torch.Tensor, state: AdamState, *, h: float, beta: float, rho: float, eps: float,
                eps_inside: bool = True) -> tuple[torch.Tensor, AdamState]:
    """One Adam step from the gradient ``g``: returns the displacement θ⁽ⁿ⁺¹⁾ - θ⁽ⁿ⁾ and the new state.

    Elementwise, so ``g`` may have any shape (a vector θ or one parameter tensor of a network).
    """
    v = rho * state.v + (1 - rho) * g**2  # (2.1), second moment
    m = beta * state.m + (1 - beta) * g  # (2.1), first moment
    n = state.n + 1
    m_hat = m / (1 - beta**n)  # bias corrections
    v_hat = v / (1 - rho**n)
    denom = torch.sqrt(v_hat + eps) if eps_inside else torch.sqrt(v_hat) + eps
    return -h * m_hat / denom, AdamState(m=m, v=v, n=n)  # (2.1), parameter update


def heavy_ball_init(theta: torch.Tensor) -> HeavyBallState:
    """θ⁽⁻¹⁾ = θ⁽⁰⁾: the iteration starts at rest."""
    return HeavyBallState(velocity=torch.zeros_like(theta))


def heavy_ball_update(g: torch.Tensor, state: HeavyBallState, *, h: float, beta: float
                      ) -> tuple[torch.Tensor, HeavyBallState]:
    """One heavy-ball step: displacement -h g + β(θ⁽ⁿ⁾ - θ⁽ⁿ⁻¹⁾) and the new state."""
    d = beta * state.velocity - h * g  # (1.1)'s iteration, Ghosh et al. (2023)
    return d, HeavyBallState(velocity=d)


def _iterate(losses, theta0, n_steps, init, update, **hyper) -> torch.Tensor:
    """Run ``update`` from ``theta0``; row n of the result is θ⁽ⁿ⁾ (so n_steps + 1 rows)."""
    losses = as_losses(losses)
    theta = check_theta0(theta0)
    n_steps = check_n_steps(n_steps)
    out = torch.empty((n_steps + 1, theta.numel()), dtype=theta.dtype, device=theta.device)
    out[0] = theta
    state = init(theta)
    for n in range(n_steps):
        g = gradient(losses[n % len(losses)], theta)
        d, state = update(g, state, **hyper)
        theta = theta + d
        out[n + 1] = theta
    return out


def adam(loss, theta0, n_steps: int, *, h: float, beta: float, rho: float, eps: float,
         eps_inside: bool = True) -> torch.Tensor:
    """Iterates θ⁽⁰⁾, …, θ⁽ⁿ_steps⁾ of Adam (Definition 2.1) as a tensor of shape (n_steps + 1, p).

    ``loss`` is a callable E(θ) or a sequence of mini-batch losses, step n using ``loss[n % m]``.
    """
    hyper = dict(h=check_positive("h", h), beta=check_unit_interval("beta", beta),
                 rho=check_unit_interval("rho", rho), eps=check_positive("eps", eps),
                 eps_inside=bool(eps_inside))
    return _iterate(loss, theta0, n_steps, adam_init, adam_update, **hyper)


def rmsprop(loss, theta0, n_steps: int, *, h: float, rho: float, eps: float,
            eps_inside: bool = True) -> torch.Tensor:
    """The paper's RMSProp: Adam with β = 0 (bias-corrected second moment)."""
    return adam(loss, theta0, n_steps, h=h, beta=0.0, rho=rho, eps=eps, eps_inside=eps_inside)


def heavy_ball(loss, theta0, n_steps: int, *, h: float, beta: float) -> torch.Tensor:
    """Heavy-ball momentum θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ - h∇E(θ⁽ⁿ⁾) + β(θ⁽ⁿ⁾ - θ⁽ⁿ⁻¹⁾), started at rest."""
    hyper = dict(h=check_positive("h", h), beta=check_unit_interval("beta", beta))
    return _iterate(loss, theta0, n_steps, heavy_ball_init, heavy_ball_update, **hyper)


def gd(loss, theta0, n_steps: int, *, h: float) -> torch.Tensor:
    """Gradient descent θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ - h∇E(θ⁽ⁿ⁾): heavy-ball with β = 0."""
    return heavy_ball(loss, theta0, n_steps, h=h, beta=0.0)


def torch_optimizer_iterates(make_optimizer, loss, theta0, n_steps: int) -> torch.Tensor:
    """Iterates of a ``torch.optim`` optimizer on θ, in the layout of ``bl.adam`` (a reference to compare with).

    ``make_optimizer`` takes a list holding the parameter tensor and returns the optimizer, e.g.
    ``lambda params: torch.optim.Adam(params, lr=1e-3)``.
    """
    losses = as_losses(loss)
    theta = check_theta0(theta0).requires_grad_(True)
    n_steps = check_n_steps(n_steps)
    opt = make_optimizer([theta])
    out = [theta.detach().clone()]
    for n in range(n_steps):
        opt.zero_grad()
        losses[n % len(losses)](theta).backward()
        opt.step()
        out.append(theta.detach().clone())
    return torch.stack(out)


def torch_optimizer_steps(make_optimizer, grads: torch.Tensor) -> torch.Tensor:
    """The displacements a ``torch.optim`` optimizer takes when fed the gradient rows of ``grads``.

    The parameter starts at zero and each gradient is given as is (not evaluated at the current
    point), so two update rules can be compared on the same gradient stream, state included.
    """
    theta = torch.zeros_like(grads[0], requires_grad=True)
    opt = make_optimizer([theta])
    steps = []
    for g in grads:
        before = theta.detach().clone()
        theta.grad = g.clone()
        opt.step()
        steps.append(theta.detach() - before)
    return torch.stack(steps)


class Adam(torch.optim.Optimizer):
    """Adam of Definition 2.1 for network parameters, through the same ``adam_update`` as ``bl.adam``.

    ``lr`` is h. ``eps_inside=True`` (default) is the paper's form; ``eps_inside=False`` is the form
    of ``torch.optim.Adam``. RMSProp is ``beta=0``.
    """

    def __init__(self, params, lr: float, beta: float = 0.9, rho: float = 0.999, eps: float = 1e-8,
                 eps_inside: bool = True):
        defaults = dict(lr=check_positive("lr", lr), beta=check_unit_interval("beta", beta),
                        rho=check_unit_interval("rho", rho), eps=check_positive("eps", eps),
                        eps_inside=bool(eps_inside))
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            hyper = dict(h=group["lr"], beta=group["beta"], rho=group["rho"], eps=group["eps"],
                         eps_inside=group["eps_inside"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                state = AdamState(st["m"], st["v"], st["n"]) if st else adam_init(p)
                d, state = adam_update(p.grad, state, **hyper)
                p.add_(d)
                st.update(m=state.m, v=state.v, n=state.n)
        return loss
