"""The per-epoch record of a training run, and the files that hold it.

Row n of a history describes θ⁽ⁿ⁾, the parameters after n steps: the training loss E(θ⁽ⁿ⁾)
and accuracy, the test loss and accuracy, and the norms of ∇E(θ⁽ⁿ⁾), the gradient of the step
from θ⁽ⁿ⁾: ‖∇E‖_{1,ε} = Σ_i √((∂_iE)² + ε) with the optimizer's ε (0 for one without), ‖∇E‖₁,
‖∇E‖₂; ``wall_time``, seconds of training from the start of the run (across resumes).

A run folder holds ``history.csv`` and ``run.json`` (configuration, provenance, why it stopped,
how many rows), written atomically (:mod:`bea_lib.base.fileio`); a file that cannot be read, or
that disagrees with the other, raises :class:`RunFileError` naming it.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base.fileio import atomic_write_json, atomic_write_text
from ..core.validation import check_int

METRICS = ("train_loss", "train_acc", "test_loss", "test_acc",
           "grad_norm_1_eps", "grad_norm_1", "grad_norm_2")  # measured at θ⁽ⁿ⁾, in this order
# bea_lib.nets.diagnostics every ``diagnostics_every`` epochs (NaN on the other rows, and in
# histories written before these columns existed)
DIAGNOSTIC_COLUMNS = ("bias_ratio", "bias_alignment", "g2_above", "g2_below", "between",
                      "sharpness", "preconditioned_sharpness")
COLUMNS = ("epoch", *METRICS, "wall_time", *DIAGNOSTIC_COLUMNS)
HISTORY_FILE, INFO_FILE = "history.csv", "run.json"


class RunFileError(RuntimeError):
    """A run folder or a file in it that cannot be used: foreign, damaged, inconsistent or not
    writable. The message names the path and the fix."""


@dataclass
class History:
    """Columns of per-epoch values (``history["train_loss"]``, a numpy array), why the run stopped.

    ``stop_reason`` is a :class:`bea_lib.base.vocab.StopReason`; ``message`` says more.
    """

    columns: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in COLUMNS})
    stop_reason: str = ""
    message: str = ""
    diagnostics_seconds: float = 0.0  # of wall_time, spent on the diagnostics columns

    def __len__(self) -> int:
        return len(self.columns["epoch"])

    def __getitem__(self, column: str) -> np.ndarray:
        return np.asarray(self.columns[column], dtype=float)

    def append(self, row: dict[str, float]) -> None:
        """Add one row; ``row`` has exactly the keys of :data:`COLUMNS`."""
        if set(row) != set(COLUMNS):
            raise ValueError(f"row must have the keys {', '.join(COLUMNS)}, got {', '.join(row)}")
        for c in COLUMNS:
            self.columns[c].append(float(row[c]))

    def diagnostics(self) -> dict[str, np.ndarray]:
        """``epoch`` and the :data:`DIAGNOSTIC_COLUMNS` on the rows where they were taken."""
        taken = ~np.isnan(self["bias_ratio"])
        return {c: self[c][taken] for c in ("epoch", *DIAGNOSTIC_COLUMNS)}

    def head(self, n_rows: int) -> History:
        """A new history of the first ``n_rows`` rows (this one is left as it is)."""
        n_rows = check_int("n_rows", n_rows, minimum=0)
        return History({c: v[:n_rows] for c, v in self.columns.items()}, self.stop_reason,
                       self.message, self.diagnostics_seconds)

    def to_csv(self, path: str | Path) -> None:
        """Write the columns as CSV, floats in full precision (``repr``), atomically."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(zip(*(map(repr, self.columns[c]) for c in COLUMNS)))
        atomic_write_text(path, buf.getvalue())

    @classmethod
    def read(cls, out_dir: str | Path) -> History:
        """The history a run wrote to ``out_dir``, checked against the row count of ``run.json``."""
        out_dir = Path(out_dir)
        info = read_run_info(out_dir)
        path = out_dir / HISTORY_FILE
        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            hist = cls({c: [float(r[c]) if c in r or c not in DIAGNOSTIC_COLUMNS else math.nan
                            for r in rows] for c in COLUMNS})
        except FileNotFoundError:
            raise RunFileError(f"{path} is missing: the run in {out_dir} wrote no history "
                               f"(rerun it, or pass another folder)") from None
        except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as err:
            raise RunFileError(f"{path} is damaged and cannot be read ({type(err).__name__}: "
                               f"{err}); rerun the run with overwrite") from err
        expected = info.get("rows")
        if expected is not None and expected != len(hist):
            raise RunFileError(f"{path} has {len(hist)} rows but {out_dir / INFO_FILE} records "
                               f"{expected}: the history is cut or from another run; rerun the "
                               f"run with overwrite")
        hist.stop_reason, hist.message = info.get("stop_reason", ""), info.get("message", "")
        return hist


def read_run_info(out_dir: str | Path) -> dict:
    """The parsed ``run.json`` of ``out_dir``; a file that is not a run's record raises
    :class:`RunFileError` naming it."""
    path = Path(out_dir) / INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFileError(f"{path} is missing: {path.parent} holds no finished or running "
                           f"training run") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunFileError(f"{path} is damaged and cannot be read ({type(err).__name__}: {err}); "
                           f"move it away, or rerun the run with overwrite") from err
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        raise RunFileError(f"{path} is not the record of a training run (no 'config'); move it "
                           f"away, or choose another run folder")
    return info


def write_run_info(out_dir: str | Path, info: dict) -> None:
    """Write ``run.json`` to ``out_dir``, atomically."""
    atomic_write_json(Path(out_dir) / INFO_FILE, info)


def stored_runs(folder: str | Path) -> list[dict]:
    """Every run saved under ``folder`` (a ``run.json`` with a ``history.csv``), by path: its
    ``path``, ``info`` (run.json), ``history`` and ``command`` (a ``command.txt`` beside them,
    else ``info["command"]``, else None)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    runs = []
    for info_file in sorted(folder.rglob("run.json")):
        run_dir = info_file.parent
        if not (run_dir / "history.csv").is_file():
            continue
        info = read_run_info(run_dir)
        command_file = run_dir / "command.txt"
        command = (command_file.read_text().strip() if command_file.is_file()
                   else info.get("command"))
        runs.append({"path": run_dir, "info": info, "history": History.read(run_dir),
                     "command": command})
    return runs
