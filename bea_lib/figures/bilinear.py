"""Figures of the bilinear chapter: drawing only, no science.

Runs are dicts with at least ``path`` (a tensor of iterates, shape (n + 1, 2)); the label
functions turn a run into its legend entry. Every function returns the figure (or draws on the
axes it is given); the chapter saves and shows it.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..studies.bilinear import START, X, Y, bilinear_cross, bilinear_gradient
from .plotting import panel_grid

FULL = (-1.6, 3.3, -1.6, 3.8)    # (θ₁ from, to, θ₂ from, to): the whole plane of the runs
ZOOM = (0.35, 1.15, 0.6, 1.7)    # the landing zone around the cross
PLANE = (0.0, 3.3, 0.0, 3.8)     # the positive quadrant, for the level sets


def draw_geometry(ax, window=PLANE, *, x: float = X, y: float = Y) -> None:
    """The hyperbola θ₁θ₂ = y/x (both branches), the two crosses and the start."""
    cross = bilinear_cross(x, y).numpy()
    t = np.geomspace(0.07, 3.5, 400)
    for sign in (1, -1):
        ax.plot(sign * t, (y / x) / t * sign, color="tab:purple", lw=1.5,
                label=r"minima $\theta_1\theta_2 = y/x$" if sign == 1 else None)
        ax.plot(*(sign * cross), "kx", ms=10, mew=2, label="cross" if sign == 1 else None)
    ax.plot(*START, "ko", ms=4)
    ax.set_xlim(*window[:2])
    ax.set_ylim(*window[2:])
    ax.set_aspect("equal")
    ax.set_xlabel(r"$\theta_1$")
    ax.set_ylabel(r"$\theta_2$")


def draw_runs(ax, runs, label, cmap: str) -> None:
    """Each run's finite iterates as a line, its last finite iterate as a dot."""
    colours = plt.get_cmap(cmap)(np.linspace(0.35, 1.0, len(runs)))
    for run, colour in zip(runs, colours):
        path = np.asarray(run["path"])
        ok = np.isfinite(path).all(axis=1)
        ax.plot(path[ok, 0], path[ok, 1], color=colour, lw=1.0, label=label(run))
        ax.plot(*path[ok][-1], "o", color=colour, ms=4)


def geometry_figure(*, x: float = X, y: float = Y):
    """Level sets of ‖∇E‖₁ and ‖∇E‖₂² (log-spaced) over the positive quadrant."""
    t1, t2 = np.meshgrid(np.linspace(0.05, 3.3, 400), np.linspace(0.05, 3.8, 400))
    g1, g2 = bilinear_gradient(t1, t2, x, y)
    fig, axes = panel_grid(2, panel=(3.6, 3.6))
    for ax, field, title in [(axes[0], np.abs(g1) + np.abs(g2), r"$\|\nabla E\|_1$"),
                             (axes[1], g1**2 + g2**2, r"$\|\nabla E\|_2^2$")]:
        ax.contour(t1, t2, np.log10(field + 1e-300), levels=np.arange(-2, 4.01, 0.5),
                   cmap="Greys", linewidths=0.7)
        draw_geometry(ax, x=x, y=y)
        ax.set_title(f"level sets of {title} (log-spaced)", fontsize=10)
    axes[0].legend(loc="upper left", fontsize=8)
    return fig


def runs_figure(panels):
    """One row per panel (runs, label, colour map, title): the plane left, the zoom right."""
    fig, flat = panel_grid(2 * len(panels), ncols=2, panel=(3.6, 3.6))
    for row, (runs, label, cmap, title) in enumerate(panels):
        for col, window in enumerate([FULL, ZOOM]):
            ax = flat[2 * row + col]
            draw_runs(ax, runs, label, cmap)
            draw_geometry(ax, window)
            ax.set_title(title if col == 0 else "zoom on the landing zone", fontsize=9)
        flat[2 * row].legend(loc="lower right", fontsize=8)
    return fig


def excess_figure(panels, levels):
    """The one-norm excess at matched loss levels against the varied parameter, per grid.

    ``panels`` = [(title, parameter symbol, values, excess array (runs × levels))].
    """
    fig, axes = panel_grid(len(panels))
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(levels)))
    for ax, (title, symbol, values, excess) in zip(axes, panels):
        for j, (level, colour) in enumerate(zip(levels, colours)):
            ax.plot(values, excess[:, j], "o-", color=colour, label=f"E = {level:g}")
        ax.set_xscale("log" if symbol == "h" else "linear")
        ax.set_xlabel(symbol)
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel(r"$\|\nabla E\|_1 / \min_{E = \ell}\|\nabla E\|_1 - 1$")
    axes[-1].legend(fontsize=8)
    return fig


def flows_figure(overlays, *, title):
    """Iterates with the order-0 (dashed) and order-1 (solid) flows, one panel per run.

    ``overlays`` = [(run, {order: flow tensor})]; ``title(run)`` is the panel title.
    """
    fig, axes = panel_grid(len(overlays), panel=(3.6, 3.6))
    for ax, (run, flows) in zip(axes, overlays):
        n = len(next(iter(flows.values())))
        path = np.asarray(run["path"][:n])
        ax.plot(path[:, 0], path[:, 1], "k.", ms=2, label="Adam iterates")
        for order, flow in flows.items():
            flow = np.asarray(flow)
            ax.plot(flow[:, 0], flow[:, 1], "-" if order else "--", lw=1.2,
                    label=f"order-{order} flow")
        draw_geometry(ax)
        ax.set_title(title(run), fontsize=9)
        ax.legend(loc="upper left", fontsize=8)
    return fig


def explicit_figure(panels, reference):
    """Runs on E + λ‖∇E‖₁,ε (one panel per (β, ρ)) with the end of the order-0 flow as a star.

    ``panels`` = [(runs, title)]; each run has ``mu`` and ``lam``.
    """
    fig, axes = panel_grid(len(panels), panel=(3.6, 3.6))
    for ax, (runs, title) in zip(axes, panels):
        draw_runs(ax, runs, lambda s: rf"$\mu$ = {s['mu']:g} ($\lambda$ = {s['lam']:.3g})",
                  "coolwarm")
        ax.plot(*np.asarray(reference), "k*", ms=10, label="order-0 flow limit")
        draw_geometry(ax, (0.0, 3.3, 0.0, 10.5))
        ax.set_aspect("auto")
        ax.set_title(title, fontsize=9)
        ax.legend(loc="upper left", fontsize=8)
    return fig
