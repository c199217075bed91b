r"""Many Adam runs at once (what became of each: :mod:`bea_lib.core.convergence`).

:func:`adam_runs` runs R copies of Adam side by side, each with its own h, β, ρ, ε, through the
iteration of :func:`bea_lib.adam` (:func:`bea_lib.core.optimizers.adam_update` is elementwise:
per-run hyperparameters broadcast over a (R, 1) column), the R gradients from one vectorised
pass (:func:`bea_lib.core.autodiff.batch_gradient`): on a 2-D problem a grid of runs costs about
as much as one run.
"""
from __future__ import annotations

import numpy as np
import torch

from .autodiff import batch_gradient
from .optimizers import adam_init, adam_update, iterate
from .validation import adam_hyper, check_n_steps, check_theta0


def _values(values) -> list:
    """A hyperparameter given as a number or one value per run, as a list of its values."""
    if isinstance(values, torch.Tensor):
        return values.reshape(-1).tolist()
    if isinstance(values, (list, tuple, np.ndarray)):
        return list(np.asarray(values, dtype=object).reshape(-1))
    return [values]


def _columns(n_runs: int, **given) -> dict[str, torch.Tensor]:
    """h, β, ρ, ε (each a number or one per run), every run's checked by
    :func:`bea_lib.core.validation.adam_hyper`, as float64 columns of shape (R, 1)."""
    values = {name: _values(v) for name, v in given.items()}
    for name, v in values.items():
        if len(v) not in (1, n_runs):
            raise ValueError(f"{name} must be a number or have one value per run ({n_runs}), "
                             f"got {len(v)} values")
    runs = [adam_hyper(**{name: v[r % len(v)] for name, v in values.items()})
            for r in range(n_runs)]
    return {name: torch.tensor([[getattr(run, name)] for run in runs], dtype=torch.float64)
            for name in given}


def adam_runs(loss, theta0, n_steps: int, *, h, beta, rho, eps, loss_params=None) -> torch.Tensor:
    """Iterates of R Adam runs on the full-batch ``loss``, shape (n_steps + 1, R, p).

    ``theta0`` is one start (1-D, shared by all runs) or one per run (R × p). Each of ``h``,
    ``beta``, ``rho``, ``eps`` is a number or a sequence with one value per run; R is the longest
    length among them and ``theta0``. Run r equals ``bl.adam(loss, theta0[r], n_steps, h=h[r], …)``
    up to rounding (the arithmetic is the same; only the gradients are batched).

    ``loss_params``: a tensor with one row (or one number) per run; run r then minimises
    ``loss(θ, loss_params[r])``, a family of losses (e.g. a regularisation strength per run).
    The loss must work under ``torch.func.vmap``. A run that diverges keeps its non-finite rows
    (:func:`classify_run` calls it diverged); the other runs are not affected.
    """
    if not callable(loss):
        raise ValueError("loss must be a callable E(θ) (adam_runs is full-batch)")
    n_steps = check_n_steps(n_steps)
    theta0 = torch.as_tensor(theta0)
    starts = theta0[None] if theta0.ndim == 1 else theta0
    if starts.ndim != 2:
        raise ValueError(f"theta0 must be 1-D (one start) or 2-D (one start per run), "
                         f"got shape {tuple(theta0.shape)}")
    starts = torch.stack([check_theta0(s) for s in starts]).to(torch.float64)
    lengths = [len(_values(v)) for v in (h, beta, rho, eps)] + [starts.shape[0]]
    if loss_params is not None:
        loss_params = torch.as_tensor(loss_params, dtype=torch.float64)
        if loss_params.ndim == 0 or loss_params.shape[0] < 1:
            raise ValueError("loss_params must have one entry per run along its first axis")
        lengths.append(loss_params.shape[0])
    n_runs = max(lengths)
    if loss_params is not None and loss_params.shape[0] != n_runs:
        raise ValueError(f"loss_params must have one entry per run ({n_runs}), got "
                         f"{loss_params.shape[0]}")
    if starts.shape[0] not in (1, n_runs):
        raise ValueError(f"theta0 must have one start or one per run ({n_runs}), got "
                         f"{starts.shape[0]}")
    hyper = _columns(n_runs, h=h, beta=beta, rho=rho, eps=eps)
    theta = starts.expand(n_runs, -1).clone()
    extra = () if loss_params is None else (loss_params,)
    # a diverged run is a result here (classify_run reads it): non-finite rows are kept
    return iterate(lambda n, th: batch_gradient(loss, th, *extra), theta, n_steps, adam_init,
                    adam_update, hyper, name="adam_runs", on_nonfinite="keep")

