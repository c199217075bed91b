"""The calibration figure of the validity gate (:mod:`bea_lib.evidence.calibration`)."""
from __future__ import annotations

import math

import numpy as np

from ..core.validation import VALIDITY_LIMIT
from .plotting import panel_grid


def calibration_figure(limit):
    """Error ratio against bias ratio, log–log, a panel per (β, ρ) and a colour per start, from
    a :class:`~bea_lib.evidence.calibration.Limit` and its readings: Adam's (filled, solid) and
    the κ runs' (open, dashed); a row with unsolved flows is a cross on the top edge. Grey: the
    ratio 1/factor of the rule and ``VALIDITY_LIMIT`` (dashed); dotted: the calibrated limit."""
    pairs = list(dict.fromkeys(key[2:] for key in limit.readings))
    starts = list(dict.fromkeys(key[1] for key in limit.readings))
    values = np.concatenate([y for _, y, _ in limit.readings.values()] + [[1 / limit.factor]])
    top = 2 * values[np.isfinite(values) & (values > 0)].max()
    fig, axes = panel_grid(len(pairs), sharey=True, panel=(3.4, 2.9))
    for (quantity, start, *pair), (x, y, over) in limit.readings.items():
        ax, color = axes[pairs.index(tuple(pair))], f"C{starts.index(start)}"
        adam = quantity == "adam"
        solved = np.isfinite(y) & (over == 0)  # over budget: unknown, a cross
        ax.loglog(x[solved], y[solved], "o-" if adam else "o--", color=color, lw=1, ms=4,
                  mfc=color if adam else "none", label=f"{'Adam' if adam else 'κ = ±1'}, {start}")
        ax.plot(x[~solved], np.full(int((~solved).sum()), top), "x", color=color, ms=6)
    bound = "" if limit.reached else "≥ "
    upper = "" if limit.reached or math.isinf(limit.upper) else f", ≤ {limit.upper:.2g}"
    for ax, (beta, rho) in zip(axes, pairs):
        ax.axhline(1 / limit.factor, color="gray", lw=0.8, label=f"error ratio 1/{limit.factor:g}")
        ax.axvline(VALIDITY_LIMIT, color="gray", lw=1, ls="--",
                   label=f"VALIDITY_LIMIT = {VALIDITY_LIMIT:g}")
        if limit.value > 0:
            ax.axvline(limit.value, color="black", lw=1, ls=":",
                       label=f"calibrated: {bound}{limit.value:.2g}{upper}")
        ax.set(title=f"β = {beta:g}, ρ = {rho:g}", xlabel="bias ratio h‖f₁‖/‖f₀‖")
        ax.title.set_fontsize(9)
        ax.tick_params(axis="x", which="minor", labelbottom=False)  # minor labels overlap
    axes[0].set_ylabel("error ratio, order 1 / order 0")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=2)
    return fig
