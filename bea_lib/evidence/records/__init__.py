"""Stored run tables of the mechanism experiment that the book shows but does not rerun.

Each is a ``runs.csv`` (:func:`bea_lib.evidence.statistics.write_runs_csv`) written by
``python -m bea_lib.evidence.records.make NAME`` (:mod:`bea_lib.evidence.records.make`), which
says how each was made; :func:`read_record` reads one back. The chapter recomputes every
statistic and verdict it shows from them.

- ``pilot``: the declared design (:data:`bea_lib.evidence.registry.MECHANISM`) on the
  development seeds 1000–1011, run before the design was frozen.
- ``pilot-relu``: the same with the MLP's ReLU, on the development seeds 1000–1005: why the
  design uses tanh.
- ``first-published``: the chapter's first κ experiment (runs from the initial point) at the
  settings it was published with on 2026-12-04 (seeds 0–7, h = 2e-5, 400 signals, 240 steps).
- ``first-original``: the same experiment at the settings it was first declared with that day
  (h = 3e-5, 500 signals, 200 steps).
"""
from __future__ import annotations

from importlib import resources

from ..statistics import read_runs_csv

RECORDS = {"pilot": "mechanism_pilot.csv", "pilot-relu": "mechanism_pilot_relu.csv",
           "first-published": "mechanism_first_published.csv",
           "first-original": "mechanism_first_original.csv"}


def record_path(name: str):
    """The file of the stored table ``name`` (one of :data:`RECORDS`)."""
    if name not in RECORDS:
        raise ValueError(f"name must be one of {', '.join(RECORDS)}, got {name!r}")
    return resources.files(__name__) / RECORDS[name]


def read_record(name: str) -> list[dict]:
    """The rows of the stored table ``name`` (one of :data:`RECORDS`), parsed as runs.csv."""
    path = record_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: write it with python -m "
                                f"bea_lib.evidence.records.make {name}")
    with resources.as_file(path) as p:
        return read_runs_csv(p)
