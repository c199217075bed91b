"""Figures of the order chapters (error_order, order_limits): drawing only, no science.

Each function takes results computed in the chapter (:class:`~bea_lib.studies.order.OrderStudy`s
and arrays) and returns a matplotlib figure; the chapter saves and shows it.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..studies.order import local_slopes
from .plotting import panel_grid


def order_slopes_figure(results: dict, loss_names, labels):
    """A grid of log-log error plots: one row per algorithm, one column per loss.

    ``results[loss_name, label]`` is an OrderStudy; dotted lines are h^(k+1) through the
    smallest step size, the targets of the order-k flow.
    """
    fig, flat = panel_grid(len(loss_names) * len(labels), ncols=len(loss_names))
    axes = np.array(flat, dtype=object).reshape(len(labels), len(loss_names))
    for row, label in enumerate(labels):
        for col, loss_name in enumerate(loss_names):
            ax, study = axes[row, col], results[loss_name, label]
            for i, k in enumerate(study.orders):
                ax.loglog(study.hs, study.errors[i], "o-",
                          label=f"order {k}: slope {study.slopes[i]:.2f}")
                ref = study.errors[i, -1] * (study.hs / study.hs[-1]) ** (k + 1)
                ax.loglog(study.hs, ref, ":", color="gray", lw=1)
            ax.tick_params(axis="x", which="minor", labelbottom=False)  # minor labels overlap
            ax.set_title(f"{label}\n({loss_name})", fontsize=9)
            ax.legend(fontsize=8)
            if row == len(labels) - 1:
                ax.set_xlabel("step size h")
            if col == 0:
                ax.set_ylabel(r"max$_n$ ‖θ⁽ⁿ⁾ − θ̃(nh)‖")
    return fig


def wide_sweep_figure(study, title: str):
    """Errors (left) and local slopes with their targets 1 and 2 (right) over a wide h sweep."""
    h_mid = np.sqrt(study.hs[1:] * study.hs[:-1])
    local = local_slopes(study.hs, study.errors)
    fig, (ax1, ax2) = panel_grid(2, panel=(3.6, 3.0))
    for i, k in enumerate(study.orders):
        ax1.loglog(study.hs, study.errors[i], "o-", label=f"order {k}")
        ax2.semilogx(h_mid, local[i], "o-", label=f"order {k} (target {k + 1})")
    for target in (1, 2):
        ax2.axhline(target, color="gray", lw=0.8, ls=":")
    for ax in (ax1, ax2):
        ax.set_xlabel("step size h")
        ax.tick_params(axis="x", which="minor", labelbottom=False)  # minor labels overlap
        ax.legend(fontsize=8)
    ax1.set_ylabel("max distance")
    ax2.set_ylabel("local slope")
    ax1.set_title(title, fontsize=9)
    return fig


def heavy_ball_lag_figure(t, d_plain, d_shifted, lag_path, *, t_min: float, title: str):
    """Distance of heavy-ball iterates to the flow from θ⁽⁰⁾ and from the shifted start."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.semilogy(t, d_plain, label=r"flow from $\theta^{(0)}$")
    ax.semilogy(t[1:], d_shifted[1:], label="flow from the shifted start")
    ax.semilogy(t, lag_path, color="gray", ls="--", lw=0.8,
                label=r"$h\beta\,\|\nabla E(\theta^{(n)})\|/(1-\beta)^2$")
    ax.axvline(t_min, color="gray", ls=":", lw=0.8)
    ax.set_xlabel("t = nh")
    ax.set_ylabel("‖θ⁽ⁿ⁾ − θ̃(nh)‖ (order-1 flow)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def crossing_figure(t, g2, studies: dict, title: str):
    """A gradient component along a run (left) and the error of both flows per placement."""
    fig, (ax1, ax2) = panel_grid(2, panel=(3.6, 3.0))
    ax1.plot(t, g2, label=r"$\nabla_2 E(\theta^{(n)})$")
    ax1.axhline(0, color="gray", lw=0.8)
    ax1.set_xlabel("t = nh")
    ax1.set_title(title, fontsize=9)
    ax1.legend(fontsize=8)
    for name, study in studies.items():
        for i, k in enumerate(study.orders):
            ax2.loglog(study.hs, study.errors[i], "o-" if k else "s--", label=f"{name}, order {k}")
    ax2.set_xlabel("step size h")
    ax2.tick_params(axis="x", which="minor", labelbottom=False)  # minor labels overlap
    ax2.set_ylabel("max distance")
    ax2.legend(fontsize=8)
    return fig
