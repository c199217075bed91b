"""Write the stored tables of :mod:`bea_lib.evidence.records`: ``python -m
bea_lib.evidence.records.make NAME [NAME ...]`` (minutes each on one CPU thread, float64).

- ``pilot``, ``pilot-relu``: :func:`bea_lib.evidence.mechanism.run_experiment` at the declared
  settings of :data:`bea_lib.evidence.registry.MECHANISM` on development seeds (ReLU for the
  second).
- ``first-published``, ``first-original``: the chapter's first κ experiment as it ran on
  2026-12-04 (commits 5a9ee47 and b618eb0): the κ-variant from the initial point at
  (β, ρ) = (0.95, 0.8), (0.8, 0.95), (0.9, 0.9), κ ∈ {−1, 0, 1}, ε = 2e-9, ReLU MLP of width 32,
  seeds 0–7, all runs as one batch; per run the row its chapter wrote (its matched loss: the
  first step below 1.001 times the best loss of the slowest κ run of its pair and seed), plus
  the unscaled largest bias ratio.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from ...base.vocab import StopReason
from ...core.validation import VALIDITY_LIMIT
from ...nets.config import TrainConfig
from ...nets.data import load_dataset
from ...nets.train import train
from .. import mechanism as mech
from ..readings import first_below
from ..registry import MECHANISM
from ..statistics import write_runs_csv
from . import RECORDS, record_path

FIRST = {  # the first experiment's settings, as published and as first declared
    "first-published": dict(n_train=400, h=2e-5, epochs=240, read_epochs=[120, 240], every=40),
    "first-original": dict(n_train=500, h=3e-5, epochs=200, read_epochs=[100, 200], every=50),
}
FIRST_PAIRS = [(0.95, 0.8), (0.8, 0.95), (0.9, 0.9)]
KAPPAS = [-1.0, 0.0, 1.0]


def pilot(activation: str, seeds) -> list[dict]:
    """The declared design on ``seeds`` with the MLP's ``activation``."""
    s = MECHANISM.settings
    data = load_dataset("mnist1d", n_train=s["n_train"], n_test=s["n_test"])
    base = TrainConfig(model="mlp", width=s["width"], activation=activation, h=s["stage_h"],
                       beta=s["stage_beta"], rho=s["stage_rho"], eps=s["eps"], dtype="float64",
                       n_train=s["n_train"], n_test=s["n_test"], device="cpu", sharpness=False,
                       chunk_size=max(s["n_train"], s["n_test"]))
    return mech.run_experiment(base, seeds=seeds, stage_losses=s["stage_losses"],
                               pairs=[tuple(p) for p in s["pairs"]], kappas=s["kappas"],
                               share=s["h_share"], start_ups=s["start_ups"], data=data).rows


def first_experiment(*, n_train: int, h: float, epochs: int, read_epochs,
                     every: int) -> list[dict]:
    """The first experiment's runs and rows (module docstring)."""
    data = load_dataset("mnist1d", n_train=n_train, n_test=1000)
    base = TrainConfig(model="mlp", h=h, eps=2e-9, epochs=epochs, width=32, dtype="float64",
                       sharpness=False, test_every=every, diagnostics_every=every,
                       n_train=n_train, n_test=1000, chunk_size=max(n_train, 1000),
                       device="cpu")
    seeds = list(range(8))
    keys = [(b, r, k, s) for b, r in FIRST_PAIRS for s in seeds for k in KAPPAS]
    runs = dict(zip(keys, train([dataclasses.replace(base, beta=b, rho=r, kappa=k, seed=s)
                                 for b, r, k, s in keys], data=data)))
    rows = []
    for (b, r), s in ((p, s) for p in FIRST_PAIRS for s in seeds):
        own = {k: runs[b, r, k, s] for k in KAPPAS}
        threshold = 1.001 * max(hist["train_loss"].min() for hist in own.values())
        for k, hist in own.items():
            norm, diag = hist["grad_norm_1_eps"], hist.diagnostics()
            n_thr = first_below(hist["train_loss"], threshold)
            unscaled = float(np.max(diag["bias_ratio"]))  # its table's gate scaled it by |1 + κ|
            scaled = abs(1 + k) * unscaled
            rows.append({"experiment": "kappa", "model": "mlp", "optimizer": "adam", "seed": s,
                         "h": h, "beta": b, "rho": r, "eps": 2e-9, "kappa": k, "epochs": epochs,
                         "max_bias_ratio": scaled, "gated": bool(scaled <= VALIDITY_LIMIT),
                         "norm_read": np.nan if n_thr is None else norm[n_thr],
                         "test_acc_max": float(np.nanmax(hist["test_acc"])),
                         "max_bias_ratio_unscaled": unscaled,
                         "loss_threshold": threshold,
                         "epoch_matched": -1 if n_thr is None else n_thr,
                         "norm_matched": np.nan if n_thr is None else norm[n_thr],
                         **{f"norm_epoch_{e}": norm[e] for e in read_epochs},
                         "train_loss_end": float(hist["train_loss"][-1]),
                         "diverged": hist.stop_reason == StopReason.DIVERGED})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="+", choices=list(RECORDS))
    p.add_argument("--out", default=None, help="folder to write to (default: the package's)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    for name in args.names:
        if name == "pilot":
            rows = pilot("tanh", range(1000, 1012))
        elif name == "pilot-relu":
            rows = pilot("relu", range(1000, 1006))
        else:
            rows = first_experiment(**FIRST[name])
        path = (Path(args.out) / RECORDS[name]) if args.out else record_path(name)
        write_runs_csv(rows, path)
        print(f"{name}: {len(rows)} rows in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
