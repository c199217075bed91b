r"""The evidence of the networks chapter, two answers per statement of the paper about trained
networks (:mod:`bea_lib.evidence.registry`, declared 2026-12-07):

- **the proxy**, read where the paper reads (:data:`READS`, on the sweeps of
  :func:`bea_lib.nets.executor.sweeps`): per seed, the slope of a reading against log10(1 − γ)
  of the swept γ, the mean over paired seeds with its BCa interval, and the answer
  (:class:`~bea_lib.base.vocab.ProxyAnswer`: same direction, opposite, no trend, not read);
- **the theory**: the same runs through the validity gate (:func:`figure_tests`' verdict), and
  its prediction inside its range (:func:`run_in_range`, :func:`in_range_tests`: windows
  restarted from trained points).

The Discussion's first conclusion compares optimizers at matched training loss
(:func:`largest_stable_step`, :func:`optimizer_rows`, :func:`optimizer_tests`). Everything is
computed from the chapter's ``runs.csv``. A run is keyed (label, β, ρ, seed), ``label`` naming
a network of the chapter's ``models``; a seed fixes the initial weights.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from ..base.vocab import Verdict, paper_verdict, proxy_answer
from ..nets.executor import Sweep

from . import registry
from . import statistics as st
from .claims import claim



class Read(NamedTuple):
    """One reading of a figure, declared before the runs: the claim it records, the paper's
    figure, the sweep, the runs.csv column, its words, the sign of the per-seed slope against
    log10(1 − γ) that the paper's figure shows, and its role (``proxy``: the statement's proxy
    answer; ``supporting``)."""

    claim: str
    paper: str
    sweep: str
    column: str
    what: str
    sign: int
    role: str


READS = (  # a larger γ is a smaller log10(1 − γ): "the norm rises with ρ" is a negative slope
    Read("networks/fig4-proxy", "Figure 4", "fig4", "norm_at",
         "‖∇E‖₁,ε at a quarter of the epochs", -1, "proxy"),
    Read("networks/fig4-accuracy", "Figure 4", "fig4", "test_acc_max", "maximal test accuracy",
         +1, "supporting"),
    Read("networks/fig5-proxy", "Figure 5", "fig5", "norm_thr",
         "‖∇E‖₁,ε at the reading loss", +1, "proxy"),
    Read("networks/fig5-accuracy", "Figure 5", "fig5", "acc_thr",
         "test accuracy at the reading loss", -1, "supporting"),
    Read("networks/fig6-proxy", "Figure 6", "fig6", "hill", "hill height of ‖∇E‖₁,ε", -1,
         "proxy"),
    Read("networks/fig6-beta", "Figure 6", "fig6-beta", "hill",
         "hill height of ‖∇E‖₁,ε (β panel)", +1, "supporting"),
)
FIG6_GATED = "networks/fig6-gated"  # Figure 6's theory answer: the fig6 read, gated


def figure_rows(sweep_map: Mapping[str, Sweep], runs: Mapping[tuple, dict]) -> list[dict]:
    """runs.csv: a row per sweep and run of its cells. ``runs`` maps (label, β, ρ, seed) to a
    run's record: its ``config`` (a TrainConfig), ``gate`` (a Gate), ``sweeps`` (the sweeps its
    label runs) and its :func:`~bea_lib.evidence.readings.figure_readings`."""
    rows = []
    for experiment, sweep in sweep_map.items():
        for (label, beta, rho, seed), run in runs.items():
            if experiment not in run["sweeps"] or (beta, rho) not in sweep.cells:
                continue
            c, g, v = run["config"], run["gate"], run["readings"]
            rows.append({"experiment": experiment, "model": label, "optimizer": c.optimizer,
                         "seed": seed, "h": c.h, "beta": beta, "rho": rho, "eps": c.eps,
                         "kappa": 0.0, "epochs": c.epochs, "max_bias_ratio": g.max_ratio,
                         "gated": g.within and g.n_measured >= 2,
                         "norm_read": v["norm_thr" if experiment == "fig5" else "norm_at"],
                         "test_acc_max": v["acc_max"], "gate_epochs": g.n_measured,
                         **{k: v[k] for k in ("regime", "norm_at", "epoch_thr", "norm_thr",
                                              "acc_thr", "train_loss_end", "train_acc_end",
                                              "hill", "hill_shape", "osc_norm", "osc_loss",
                                              "oscillating_norm", "oscillating_loss")}})
    return rows


def slope_test(table: list[dict], cells, index: int, seeds, column: str, *, sign: int,
               n_resamples: int, **where) -> dict:
    """The paired slope test of one reading: per seed of ``seeds`` the least-squares slope of
    ``column`` against log10(1 − γ) over ``cells`` (γ the ``index``-th entry), from the rows of
    ``table`` matching ``where``; their mean with a BCa interval (a seed without a finite slope
    is left out), the trend against ``sign``, the proxy's answer, whether every run is inside
    its gate, and the theory's verdict on these runs (outside the theory's range unless all
    are)."""
    by = {(r["beta"], r["rho"], r["seed"]): r for r in table
          if all(r[k] == v for k, v in where.items())}
    missing = [(b, r, s) for b, r in cells for s in seeds if (b, r, s) not in by]
    if missing:
        raise ValueError(f"runs.csv has no row for (β, ρ, seed) = {missing[0]} of {where}")
    values = np.array([[by[b, r, s][column] for b, r in cells] for s in seeds], dtype=float)
    x = np.log10(1 - np.array([c[index] for c in cells], dtype=float))
    slopes = st.per_seed_slopes(x, values)
    q = st.mean_interval(slopes, n_resamples=n_resamples)
    trend = st.trend_of(q, expected=sign)
    gated = all(bool(by[b, r, s]["gated"]) for b, r in cells for s in seeds)
    return dict(q=q, trend=trend, answer=proxy_answer(trend), gated=gated,
                verdict=paper_verdict(trend, gated=gated), slopes=slopes, x=x, values=values,
                unread=[s for s, row in zip(seeds, values) if not np.isfinite(row).all()])


def figure_tests(table: list[dict], sweep_map: Mapping[str, Sweep], seeds_of: Mapping[str, list],
                 reads: Sequence[Read] = READS, *, n_resamples: int) -> dict[tuple, dict]:
    """Every read of ``reads`` on every network (``seeds_of``: label -> its seeds) that ran its
    sweep, from runs.csv: :func:`slope_test`, keyed (label, claim), with the read's fields."""
    out = {}
    for label, seeds in seeds_of.items():
        for read in reads:
            rows = [r for r in table if r["experiment"] == read.sweep and r["model"] == label]
            if not rows:
                continue  # this network does not run the sweep
            sweep = sweep_map[read.sweep]
            out[label, read.claim] = {**read._asdict(), **slope_test(
                rows, sweep.cells, sweep.index, seeds, read.column, sign=read.sign,
                n_resamples=n_resamples)}
    return out


def cell_counts(table: list[dict], sweep: str, label: str, cells, columns) -> dict[tuple, dict]:
    """Per cell of a sweep, how many of its runs have each boolean ``column`` true, the runs,
    and the median of each other column: {(β, ρ): {column: value, "runs": n}}."""
    out = {}
    for b, r in cells:
        rows = [x for x in table if x["experiment"] == sweep and x["model"] == label
                and (x["beta"], x["rho"]) == (b, r)]
        out[b, r] = {"runs": len(rows)}
        for c in columns if rows else ():
            v = [x[c] for x in rows]
            out[b, r][c] = (sum(bool(x) for x in v) if all(isinstance(x, bool) for x in v)
                            else float(np.nanmedian(np.asarray(v, dtype=float))))
    return out


def write_table(rows: Sequence[Mapping], path) -> list[dict]:
    """Write the chapter's ``runs.csv`` from rows of several experiments, whose extra columns
    differ: every row gets every column, NaN where its experiment has none
    (:func:`~bea_lib.evidence.statistics.write_runs_csv`); the table read back from the file."""
    columns = list(dict.fromkeys(c for r in rows for c in r))
    st.write_runs_csv([{c: r.get(c, math.nan) for c in columns} for r in rows], path)
    return st.read_runs_csv(path)


# --- what the chapter shows and records --------------------------------------------------------

def settings_markdown(values: Mapping) -> str:
    """The declared network settings (:data:`bea_lib.evidence.registry.NETWORK_SETTINGS`) in a
    fold: each with its declared value, the value of this run where it differs, and why."""
    lines = [f"```{{dropdown}} The settings declared on {registry.NETWORKS_DECLARED}, before "
             "any evidence run", "| setting | declared | this run | why |", "|---|---|---|---|"]
    for s in registry.NETWORK_SETTINGS:
        here = values.get(s.name, s.value)
        same = here == s.value
        cells = [f"`{s.name}`", _short(s.value), "the same" if same else f"**{_short(here)}**",
                 s.why]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join([*lines, "```"])


def _short(value) -> str:
    if isinstance(value, list) and len(value) > 4 and all(isinstance(v, int) for v in value):
        return f"{value[0]}–{value[-1]} ({len(value)})" if value == list(
            range(value[0], value[-1] + 1)) else ", ".join(map(str, value))
    if isinstance(value, dict):
        return "; ".join(f"{k}: {', '.join(f'{x:g}' for x in v)}" for k, v in value.items())
    return str(value)


def stage_summary(records: Mapping[tuple, dict], *, read_below: float) -> dict:
    """Whether the figure runs reach the point where the paper reads them: how many reach the
    training loss ``read_below`` (and the latest epoch they do; the keys of those that do
    not), their best test accuracies against chance (``above_chance``: the lowest at least
    three times chance), and the spike runs."""
    from ..nets.data import SHAPES

    v = {k: r["readings"] for k, r in records.items()}
    classes = SHAPES[next(iter(records.values()))["config"].dataset][1]
    chance = 1 / classes
    missed = [k for k, x in v.items() if x["epoch_thr"] < 0]
    reached = [x["epoch_thr"] for x in v.values() if x["epoch_thr"] >= 0]
    acc = [x["acc_max"] for x in v.values()]
    out = {"runs": len(v), "reached": len(reached), "missed": missed,
           "epoch_thr_max": max(reached, default=-1), "acc_low": min(acc),
           "acc_high": max(acc), "chance": chance,
           "spike": sum(x["regime"] == "spike" for x in v.values()),
           # 3/c as one division, as an accuracy k/n is one: rounding is monotonic, so the float
           # comparison is the exact one (3 × (1/c) rounds above 3/c for c = 10)
           "above_chance": min(acc) >= 3 / classes}
    out["measured"] = (f"{out['reached']} of {out['runs']} runs reach training loss "
                       f"{read_below:g} (the last at epoch {out['epoch_thr_max']})"
                       + (f"; not: {', '.join(map(str, missed[:5]))}" if missed else "")
                       + f"; maximal test accuracy {out['acc_low']:.3f} to "
                       f"{out['acc_high']:.3f} (chance {chance:.2f})")
    return out


def figure_table(fig: Mapping, grid: Mapping) -> list[list]:
    """Rows of the figure test table (:func:`figure_tests`)."""
    many = len({label for label, _ in fig}) > 1
    out = []
    for (label, _), r in fig.items():
        q = r["q"]
        answer = f"{{term}}`{r['answer']}`" + (f" (MDE {q.mde:.2g})" if r["answer"] == "no trend"
                                               else "")
        out.append([r["paper"] + ("" if r["role"] == "proxy" else ", supporting")
                    + (f" ({label})" if many else ""), f"{r['what']}; {grid[r['sweep']].label}",
                    "−" if r["sign"] < 0 else "+", st.interval_text(q), f"{q.mde:.2g}",
                    f"{q.n_positive}/{q.n}", answer, str(r["verdict"])])
    return out


def record_figure_claims(fig: Mapping, grid: Mapping, *, section: str) -> None:
    """Record the proxy's answers: each read of :data:`READS` (its first network under the
    read's own id, the proxy answer where the registry declares it so; others suffixed)."""
    seen = set()
    for (label, claim_id), r in fig.items():
        cid = claim_id if claim_id not in seen else f"{claim_id}-{label}"
        seen.add(claim_id)
        q, (_, index, axis) = r["q"], grid[r["sweep"]]
        against = f"log10(1 − {'βρ'[index]})"
        unread = (f"; seeds without a reading: {', '.join(map(str, r['unread']))}"
                  if r["unread"] else "")
        claim(cid, paper=r["paper"], section=section, needs="default", passed=None,
              answer=r["answer"], detectable=f"{q.mde:.2g}",
              statement=f"{label}, {axis}: the per-seed slope of the {r['what']} against "
                        f"{against} goes the paper's way "
                        f"({'negative' if r['sign'] < 0 else 'positive'})",
              measured=f"mean slope {st.interval_text(q)} over {q.n} seeds, {q.n_positive} "
                       f"of {q.n} above zero" + unread)


def _figure_runs(table: list[dict]) -> dict[tuple, dict]:
    """The figure runs of runs.csv, once each: (model, β, ρ, seed) -> row."""
    return {(r["model"], r["beta"], r["rho"], r["seed"]): r for r in table
            if r["experiment"] in ("fig4", "fig5", "fig6", "fig6-beta")}


def gate_summary(table: list[dict], *, limit: float) -> dict:
    """The figure runs' validity gate: the smallest and largest of their largest bias ratios,
    how many are inside the gate, and the largest h at which every one would pass (the ratio is
    linear in h at a point)."""
    runs = _figure_runs(table).values()
    ratios = [r["max_bias_ratio"] for r in runs]
    return {"low": float(np.nanmin(ratios)), "high": float(np.nanmax(ratios)),
            "gated": sum(bool(r["gated"]) for r in runs), "runs": len(runs), "limit": limit,
            "h_gated": float(np.nanmin([r["h"] * limit / r["max_bias_ratio"] for r in runs]))}


def gate_words(gate: Mapping) -> str:
    """What :func:`gate_summary` means for the figure runs, in a sentence generated from its
    counts: whether the theory's verdict on them can stand beside the proxy's answer."""
    if gate["runs"] and gate["gated"] == gate["runs"]:
        return ("Every run is inside the gate, so the theory's verdict on these runs stands "
                "beside the proxy's answer.")
    outside = "None of them is" if gate["gated"] == 0 else (
        f"{gate['runs'] - gate['gated']} of {gate['runs']} are not")
    return (f"{outside} inside the gate, so the theory says nothing about these runs as a set, "
            "whatever their trends: the readings above answer what the proxy does where the "
            "paper looks, not whether the paper's explanation holds there.")


def record_fig6_theory(fig: Mapping, gate: Mapping, *, section: str) -> None:
    """Record Figure 6's theory answer (``networks/fig6-gated``): the hill slope of the ρ sweep
    through the validity gate, with the figure runs' bias ratios first."""
    r = next((r for (_, cid), r in fig.items() if cid == "networks/fig6-proxy"), None)
    if r is None:
        return
    claim(FIG6_GATED, paper="Figure 6", section=section, needs="default", passed=None,
          verdict=r["verdict"],
          statement="inside the theory's range, the hill of ‖∇E‖₁,ε grows with ρ",
          measured=f"bias ratio {gate['low']:.3g} to {gate['high']:.3g} along the figure runs; "
                   f"{gate['gated']} of {gate['runs']} runs inside the gate (limit "
                   f"{gate['limit']:g}); every run would pass only for h ≤ {gate['h_gated']:.2g}; "
                   f"hill slope {st.interval_text(r['q'])}")


def shape_table(table: list[dict], grid: Mapping, labels) -> list[list]:
    """Per network and cell of Figure 6's two sweeps: the runs with the paper's shape, the median
    hill height, and the runs whose norm and whose loss oscillate."""
    out = []
    for label in labels:
        for name in ("fig6-beta", "fig6"):
            cells, i, axis = grid[name]
            counts = cell_counts(table, name, label, cells,
                                 ("hill_shape", "hill", "oscillating_norm", "oscillating_loss"))
            for cell, c in counts.items():
                if c["runs"]:
                    n = c["runs"]
                    out.append([label, axis, f"{cell[i]:g}", f"{c['hill_shape']}/{n}",
                                f"{c['hill']:.3g}", f"{c['oscillating_norm']}/{n}",
                                f"{c['oscillating_loss']}/{n}"])
    return out


def record_spike_claim(table: list[dict], *, beta_grid, section: str) -> None:
    """Record the spike regime's row: not tested here, with the grid's spike runs counted."""
    runs = _figure_runs(table).values()
    spikes = sum(r["regime"] == "spike" for r in runs)
    claim("networks/spike-reversal-paired", paper="Section 6, spike regime", section=section,
          needs="default", passed=None, verdict=Verdict.NOT_TESTED,
          statement="in the spike regime the accuracy trend against ρ reverses",
          measured=f"{spikes} of {len(runs)} runs of the grid (β from {min(beta_grid):g}) are "
                   "spike runs, and the theory does not cover that regime")


def _answer(r: Mapping) -> str:
    text = f"{{term}}`{r['answer']}`"
    return text + (f" (MDE {r['q'].mde:.2g})" if r["answer"] == "no trend" else "")


def two_answers_markdown(fig: Mapping, in_range: Mapping, opt: Mapping | None) -> str:
    """The chapter's closing table: per statement, the proxy's answer where the paper looks,
    the theory's verdict where it applies, and the paper's own networks."""
    proxy = {cid: r for (_, cid), r in fig.items()}
    theory = {"Figure 4": in_range.get(("fig4-in-range", 0.0)),
              "Figure 5": in_range.get(("fig5-in-range", 0.0)),
              "Figure 6": proxy.get("networks/fig6-proxy")}
    rows = ["| statement | the proxy, where the paper looks | the theory, where it applies | "
            "the paper's ResNets |", "|---|---|---|---|"]
    for paper, cid in (("Figure 4", "networks/fig4-proxy"), ("Figure 5", "networks/fig5-proxy"),
                       ("Figure 6", "networks/fig6-proxy")):
        p, t = proxy.get(cid), theory[paper]
        rows.append(f"| {paper} | {_answer(p) if p else 'not read'} | "
                    f"{t['verdict'] if t else 'not run'} | not tested at the paper's scale "
                    "({ref}`the paper profile <networks-paper-scale>`) |")
    if opt is not None:
        rows.append(f"| Section 4, first conclusion | {{term}}`{opt['answer']}` | "
                    f"{opt['verdict']} | not tested here |")
    return "\n".join(rows)


def paper_cost(by_label: Mapping[str, list]) -> dict:
    """The floating-point operations of a profile's figure runs (``by_label``: label -> its
    TrainConfigs), counted per example (:func:`bea_lib.nets.models.flops_per_example`): every
    epoch a gradient over the training set, the test set every ``test_every`` epochs, and at
    every diagnostic point about seven gradients' worth (the gradient's graph and three
    Hessian-vector products of two passes each). {"runs": n, "flop": total, "by_model": ...}."""
    from ..nets.data import SHAPES
    from ..nets.models import flops_per_example

    per, total, by_model = {}, 0.0, {}
    for configs in by_label.values():
        for c in configs:
            shape, classes, n_train, n_test = SHAPES[c.dataset]
            key = (c.model, c.dataset, c.width, c.norm)
            if key not in per:
                options = {k: v for k, v in (("width", c.width), ("norm", c.norm)) if v}
                per[key] = flops_per_example(c.model, shape, classes, **options)
            fb, f = per[key]
            n_train, n_test = c.n_train or n_train, c.n_test or n_test
            points = c.epochs // c.diagnostics_every + 1 if c.diagnostics_every else 0
            flop = (c.epochs * (n_train * fb + n_test * f / c.test_every)
                    + points * 7 * n_train * fb)
            total += flop
            by_model[c.model] = by_model.get(c.model, 0) + 1
    return {"runs": sum(by_model.values()), "flop": total, "by_model": by_model}


H100_FP64_PEAK = 67e12  # FLOP/s of an H100 SXM's float64 tensor cores (NVIDIA's data sheet)


def paper_cost_markdown(by_label: Mapping[str, list], seeds) -> str:
    """A sentence on the cost of a profile's figure runs (:func:`paper_cost`) in GPU-hours at
    :data:`H100_FP64_PEAK`: a lower bound, since no run reaches the peak."""
    cost = paper_cost(by_label)
    models = ", ".join(f"{n} of {m}" for m, n in cost["by_model"].items())
    hours = cost["flop"] / H100_FP64_PEAK / 3600
    return (f"The `paper` profile's figure runs: {cost['runs']} runs ({models}; seeds "
            f"{_short(list(seeds))}), {cost['flop'] / 1e18:.3g} EFLOP in float64, so **at least "
            f"{hours:,.0f} GPU-hours** at an H100's float64 peak of "
            f"{H100_FP64_PEAK / 1e12:.0f} TFLOP/s (a lower bound: no run reaches the peak; the "
            "in-range windows and the optimizer comparison add to it).")


def stored_table(stored: list[dict], folder) -> tuple[list[str], list[list]]:
    """(header, rows) of the GPU runs stored under ``folder``."""
    rows = []
    for r in stored:
        c, hist = r["info"]["config"], r["history"]
        rows.append([str(r["path"].relative_to(folder)), c["dataset"], c["model"], f"{c['h']:g}",
                     c["beta"], c["rho"], c["seed"], len(hist) - 1,
                     r["info"].get("stop_reason", "?"), (r["info"].get("commit") or "?")[:10],
                     float(np.nanmax(hist["test_acc"]))])
    return (["run", "data", "model", "h", "β", "ρ", "seed", "epochs", "stop reason", "commit",
             "max test acc."], rows)
