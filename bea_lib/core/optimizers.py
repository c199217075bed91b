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

Heavy-ball momentum: θ^{(n+1)} = θ^{(n)} - h∇E(θ^{(n)}) + β(θ^{(n)} - θ^{(n-1)}),
θ^{(-1)} = θ^{(0)}; gradient descent is heavy-ball with β = 0.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch

from .autodiff import gradient
from .validation import (adam_hyper, as_losses, check_n_steps, check_positive, check_theta0,
                         check_unit_interval)

ON_NONFINITE = ("raise", "keep")  # what the iterations do when an iterate stops being finite
CHECK_EVERY = 128  # steps between checks for non-finite iterates (a check costs a few operations)


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
    """One Adam step from the gradient ``g``: the displacement θ⁽ⁿ⁺¹⁾ - θ⁽ⁿ⁾ and the new state.

    Elementwise, so ``g`` may have any shape (a vector θ or one parameter tensor of a network),
    and each hyperparameter may be a number or a tensor that broadcasts against ``g`` (one value
    per run in :func:`bea_lib.adam_runs`).
    """
    denom, v = _denominator(g, state, rho=rho, eps=eps, eps_inside=eps_inside)
    m = beta * state.m + (1 - beta) * g  # (2.1), first moment
    n = state.n + 1
    m_hat = m / (1 - beta**n)  # bias correction
    return -h * m_hat / denom, AdamState(m=m, v=v, n=n)  # (2.1), parameter update


def _denominator(g, state: AdamState, *, rho, eps, eps_inside: bool):
    """(D, ν⁽ⁿ⁺¹⁾): the denominator of the step from ``state`` with gradient ``g``, and the new
    second moment: the one place where ν and its bias correction are written."""
    v = rho * state.v + (1 - rho) * g**2  # (2.1), second moment
    v_hat = v / (1 - rho ** (state.n + 1))  # bias correction
    return (torch.sqrt(v_hat + eps) if eps_inside else torch.sqrt(v_hat) + eps), v


def step_denominator(g: torch.Tensor, state: AdamState, *, rho: float, eps: float,
                     eps_inside: bool = True) -> torch.Tensor:
    """D = √(ν̂⁽ⁿ⁺¹⁾ + ε) (ε inside), the denominator of the step :func:`adam_update` takes
    from ``state`` with gradient ``g`` (√(g² + ε) at n = 0): the same arithmetic, bit for bit."""
    return _denominator(g, state, rho=rho, eps=eps, eps_inside=eps_inside)[0]


def heavy_ball_init(theta: torch.Tensor) -> HeavyBallState:
    """θ⁽⁻¹⁾ = θ⁽⁰⁾: the iteration starts at rest."""
    return HeavyBallState(velocity=torch.zeros_like(theta))


def heavy_ball_update(g: torch.Tensor, state: HeavyBallState, *, h: float, beta: float
                      ) -> tuple[torch.Tensor, HeavyBallState]:
    """One heavy-ball step: displacement -h g + β(θ⁽ⁿ⁾ - θ⁽ⁿ⁻¹⁾) and the new state."""
    d = beta * state.velocity - h * g  # (1.1)'s iteration, Ghosh et al. (2023)
    return d, HeavyBallState(velocity=d)


def check_on_nonfinite(on_nonfinite: str) -> str:
    """``"raise"``: a non-finite iterate raises (default); ``"keep"``: the rows are returned."""
    if on_nonfinite not in ON_NONFINITE:
        raise ValueError(f"on_nonfinite must be one of {ON_NONFINITE}, got {on_nonfinite!r}")
    return on_nonfinite


def _first_nonfinite(out: torch.Tensor, start: int, stop: int
                     ) -> tuple[int, tuple[int, ...]] | None:
    """(row n, index of a component) of the first non-finite entry of out[start:stop], or None."""
    bad = ~torch.isfinite(out[start:stop])
    if not bool(bad.any()):
        return None
    first = bad.nonzero()[0].tolist()
    return start + first[0], tuple(first[1:])


def _nonfinite_error(name: str, out: torch.Tensor, n: int, index: tuple[int, ...]) -> RuntimeError:
    return RuntimeError(
        f"{name}: iterate θ⁽{n}⁾ is not finite (component {index[-1]} = {out[n][index].item()}; "
        f"θ⁽{n - 1}⁾ was finite): the step size may be too large for this loss, or its gradient "
        "not finite there. Pass on_nonfinite='keep' to get the iterates as they are.")


def iterate(gradient_at: Callable[[int, torch.Tensor], torch.Tensor], theta: torch.Tensor,
            n_steps: int, init, update, hyper: dict, *, name: str, on_nonfinite: str
            ) -> torch.Tensor:
    """Rows θ⁽⁰⁾, …, θ⁽ⁿ_steps⁾ of θ ← θ + d, (d, state) = update(∇E_n(θ), state): the one loop
    behind :func:`adam`, :func:`heavy_ball` and :func:`bea_lib.adam_runs`.

    ``theta`` is one point (p,) or R points (R, p) stepped side by side (then ``gradient_at`` is
    batched and hyperparameters may be (R, 1) columns); ``gradient_at(n, theta)`` is ∇E_n(θ).
    Each iterate is written straight into its row. With ``on_nonfinite="raise"`` the rows are
    checked every ``CHECK_EVERY`` steps and at the end.
    """
    out = torch.empty((n_steps + 1, *theta.shape), dtype=theta.dtype, device=theta.device)
    out[0] = theta
    state, checked = init(theta), 0
    for n in range(n_steps):
        d, state = update(gradient_at(n, theta), state, **hyper)
        theta = torch.add(theta, d, out=out[n + 1])
        if on_nonfinite == "raise" and (n + 1 - checked >= CHECK_EVERY or n + 1 == n_steps):
            bad = _first_nonfinite(out, checked + 1, n + 2)
            if bad is not None:
                raise _nonfinite_error(name, out, *bad)
            checked = n + 1
    return out


def _single(losses) -> Callable[[int, torch.Tensor], torch.Tensor]:
    """∇E_n(θ) with E_n = losses[n % m] at one point."""
    if len(losses) == 1:
        loss = losses[0]
        return lambda n, theta: gradient(loss, theta)
    return lambda n, theta: gradient(losses[n % len(losses)], theta)


def warn_if_constant(losses, theta: torch.Tensor, name: str) -> None:
    """Warn when a loss's value at θ⁽⁰⁾ does not depend on θ (it detaches θ, or computes from
    a copy): every gradient is then zero and the iterates never move."""
    with torch.enable_grad():
        point = theta.detach().requires_grad_(True)
        for i, loss in enumerate(losses):
            value = loss(point)
            if isinstance(value, torch.Tensor) and not value.requires_grad:
                which = "the loss" if len(losses) == 1 else f"loss {i} of {len(losses)}"
                warnings.warn(f"{name}: {which} does not depend on θ (its value carries no "
                              "gradient: is θ detached, or copied, inside it?); its gradient is "
                              "zero and θ does not move", stacklevel=4)
                return


def _run(name: str, loss, theta0, n_steps, init, update, hyper: dict, on_nonfinite: str
         ) -> torch.Tensor:
    """Check the inputs of one run, then :func:`iterate` it."""
    losses, theta = as_losses(loss), check_theta0(theta0)
    n_steps, on_nonfinite = check_n_steps(n_steps), check_on_nonfinite(on_nonfinite)
    if n_steps:
        warn_if_constant(losses, theta, name)
    return iterate(_single(losses), theta, n_steps, init, update, hyper, name=name,
                   on_nonfinite=on_nonfinite)


def adam(loss, theta0, n_steps: int, *, h: float, beta: float, rho: float, eps: float,
         eps_inside: bool = True, on_nonfinite: str = "raise") -> torch.Tensor:
    """Iterates θ⁽⁰⁾, …, θ⁽ⁿ_steps⁾ of Adam (Definition 2.1) as a tensor of shape (n_steps + 1, p).

    ``loss`` is a callable E(θ) or a sequence of mini-batch losses, step n using ``loss[n % m]``.
    An iterate with an inf or nan component raises ``RuntimeError`` naming the step and the
    component (``on_nonfinite="raise"``, checked every ``CHECK_EVERY`` steps, so within that many
    steps of the event); ``on_nonfinite="keep"`` returns all rows as they are.
    """
    hyper = adam_hyper(h=h, beta=beta, rho=rho, eps=eps, eps_inside=eps_inside)._asdict()
    del hyper["kappa"]
    return _run("adam", loss, theta0, n_steps, adam_init, adam_update, hyper, on_nonfinite)


def rmsprop(loss, theta0, n_steps: int, *, h: float, rho: float, eps: float,
            eps_inside: bool = True, on_nonfinite: str = "raise") -> torch.Tensor:
    """The paper's RMSProp: Adam with β = 0 (bias-corrected second moment)."""
    return adam(loss, theta0, n_steps, h=h, beta=0.0, rho=rho, eps=eps, eps_inside=eps_inside,
                on_nonfinite=on_nonfinite)


def heavy_ball(loss, theta0, n_steps: int, *, h: float, beta: float,
               on_nonfinite: str = "raise") -> torch.Tensor:
    """Heavy-ball momentum θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ - h∇E(θ⁽ⁿ⁾) + β(θ⁽ⁿ⁾ - θ⁽ⁿ⁻¹⁾), started at rest.

    Non-finite iterates: as for :func:`adam`.
    """
    hyper = dict(h=check_positive("h", h), beta=check_unit_interval("beta", beta))
    return _run("heavy_ball", loss, theta0, n_steps, heavy_ball_init, heavy_ball_update, hyper,
                on_nonfinite)


def gd(loss, theta0, n_steps: int, *, h: float, on_nonfinite: str = "raise") -> torch.Tensor:
    """Gradient descent θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ - h∇E(θ⁽ⁿ⁾): heavy-ball with β = 0."""
    return heavy_ball(loss, theta0, n_steps, h=h, beta=0.0, on_nonfinite=on_nonfinite)


def torch_optimizer_iterates(make_optimizer, loss, theta0, n_steps: int) -> torch.Tensor:
    """Iterates of a ``torch.optim`` optimizer on θ in the layout of ``bl.adam`` (a reference).

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
    """Adam of Definition 2.1 for network parameters, through ``bl.adam``'s ``adam_update``.

    ``lr`` is h. ``eps_inside=True`` (default) is the paper's form; ``eps_inside=False`` is the form
    of ``torch.optim.Adam``. RMSProp is ``beta=0``. A parameter group may set its own ``lr``,
    ``beta``, ``rho``, ``eps``, ``eps_inside``; they are checked like the defaults, and torch's
    names for other optimisers' settings (``betas``, ``weight_decay``, ...) are refused, not
    ignored.
    """

    HYPERPARAMETERS = ("lr", "beta", "rho", "eps", "eps_inside")
    OTHER_KEYS = ("params", "param_names", "initial_lr")  # torch's (named parameters, schedulers)

    def __init__(self, params, *, lr: float, beta: float = 0.9, rho: float = 0.999,
                 eps: float = 1e-8, eps_inside: bool = True):
        super().__init__(params, self._checked(dict(lr=lr, beta=beta, rho=rho, eps=eps,
                                                    eps_inside=eps_inside)))

    @staticmethod
    def _checked(hyper: dict) -> dict:
        checked = adam_hyper(h=hyper["lr"], beta=hyper["beta"], rho=hyper["rho"],
                             eps=hyper["eps"], eps_inside=hyper["eps_inside"], h_name="lr")
        return dict(hyper, lr=checked.h, beta=checked.beta, rho=checked.rho, eps=checked.eps,
                    eps_inside=checked.eps_inside)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters, its hyperparameters (given or the defaults) checked first."""
        if not isinstance(param_group, dict):
            raise ValueError(f"param_group must be a dict, got {type(param_group).__name__}")
        unknown = sorted(set(param_group) - {*self.OTHER_KEYS, *self.HYPERPARAMETERS})
        if unknown:
            raise ValueError(f"param_group has unknown keys {unknown}; bl.Adam's hyperparameters "
                             f"are {list(self.HYPERPARAMETERS)} (β is beta, ρ is rho)")
        hyper = self._checked({k: param_group.get(k, self.defaults[k])
                               for k in self.HYPERPARAMETERS})
        super().add_param_group({**param_group, **hyper})

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
