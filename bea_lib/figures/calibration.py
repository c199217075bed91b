"""The calibration figure of the validity gate (:mod:`bea_lib.evidence.calibration`)."""
from __future__ import annotations

import math

import numpy as np

from .plotting import panel_grid


def calibration_figure(*limits, gate: float, gate_name: str = "NETWORK_LIMIT"):
    """Error ratio against bias ratio, log–log, a panel per (β, ρ) and a colour per start, from
    one or more :class:`~bea_lib.evidence.calibration.Limit` and their readings (each limit's
    pairs on their own panels, with its own line): Adam's (filled, solid) and the κ runs'
    (open, dashed); a row with unsolved flows is a cross on the top edge. Grey: the ratio
    1/factor of the rule and the network gate's limit ``gate`` (dashed, labelled ``gate_name``);
    dotted: the calibrated limit."""
    owner = {}  # (β, ρ) -> the limit whose readings it holds
    for limit in limits:
        for key in limit.readings:
            owner.setdefault(tuple(key[2:]), limit)
    pairs = list(owner)
    starts = list(dict.fromkeys(key[1] for limit in limits for key in limit.readings))
    values = np.concatenate([y for limit in limits for _, y, _ in limit.readings.values()]
                            + [[1 / limit.factor for limit in limits]])
    top = 2 * values[np.isfinite(values) & (values > 0)].max()
    fig, axes = panel_grid(len(pairs), sharey=True, panel=(3.4, 2.9))
    for limit in limits:
        for (quantity, start, *pair), (x, y, over) in limit.readings.items():
            ax, color = axes[pairs.index(tuple(pair))], f"C{starts.index(start)}"
            adam = quantity == "adam"
            solved = np.isfinite(y) & (over == 0)  # over budget: unknown, a cross
            ax.loglog(x[solved], y[solved], "o-" if adam else "o--", color=color, lw=1, ms=4,
                      mfc=color if adam else "none",
                      label=f"{'Adam' if adam else 'κ = ±1'}, {start}")
            ax.plot(x[~solved], np.full(int((~solved).sum()), top), "x", color=color, ms=6)
    for ax, (beta, rho) in zip(axes, pairs):
        limit = owner[beta, rho]
        bound = "" if limit.reached else "≥ "
        upper = "" if limit.reached or math.isinf(limit.upper) else f", ≤ {limit.upper:.2g}"
        ax.axhline(1 / limit.factor, color="gray", lw=0.8, label=f"error ratio 1/{limit.factor:g}")
        ax.axvline(gate, color="gray", lw=1, ls="--", label=f"{gate_name} = {gate:g}")
        if limit.value > 0:
            ax.axvline(limit.value, color="black", lw=1, ls=":",
                       label=f"calibrated: {bound}{limit.value:.2g}{upper}")
            ax.text(0.03, 0.97, f"calibrated: {bound}{limit.value:.2g}{upper}", fontsize=8,
                    transform=ax.transAxes, va="top")
        ax.set(title=f"β = {beta:g}, ρ = {rho:g}", xlabel="bias ratio h‖f₁‖/‖f₀‖")
        ax.title.set_fontsize(9)
        ax.tick_params(axis="x", which="minor", labelbottom=False)  # minor labels overlap
    for ax in axes[::2 if len(pairs) > 2 else len(pairs)]:
        ax.set_ylabel("error ratio, order 1 / order 0")
    handles, labels = axes[0].get_legend_handles_labels()
    keep = [i for i, label in enumerate(labels) if not label.startswith("calibrated")]
    fig.legend([handles[i] for i in keep], [labels[i] for i in keep], fontsize=8,
               loc="outside lower center", ncols=2)
    return fig
