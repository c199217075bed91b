"""The per-epoch record of a training run, and the files that hold it.

Row n of a history describes θ⁽ⁿ⁾, the parameters after n Adam steps: the training loss
E(θ⁽ⁿ⁾) and accuracy, the test loss and accuracy, and the norms of the full-batch gradient
∇E(θ⁽ⁿ⁾), the gradient that the step from θ⁽ⁿ⁾ to θ⁽ⁿ⁺¹⁾ uses (Definition 2.1):
‖∇E‖_{1,ε} = Σ_i √((∂_iE)² + ε) with the optimizer's ε, ‖∇E‖₁ and ‖∇E‖₂. ``wall_time`` is the
seconds of training from the start of the run (across resumes) to the end of the row.
Files are written to a temporary name and renamed into place, so a reader never sees half a file.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checkpoint import atomic_write_bytes

COLUMNS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc",
           "grad_norm_1_eps", "grad_norm_1", "grad_norm_2", "wall_time")


@dataclass
class History:
    """Columns of per-epoch values (``history["train_loss"]`` is a numpy array) and why the run stopped.

    ``stop_reason`` is "epochs", "loss_threshold", "time" or "diverged"; ``message`` says more.
    """

    columns: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in COLUMNS})
    stop_reason: str = ""
    message: str = ""

    def __len__(self) -> int:
        return len(self.columns["epoch"])

    def __getitem__(self, column: str) -> np.ndarray:
        return np.asarray(self.columns[column], dtype=float)

    def append(self, row: dict[str, float]) -> None:
        """Add one row; ``row`` has exactly the keys of :data:`COLUMNS`."""
        for c in COLUMNS:
            self.columns[c].append(float(row[c]))

    def to_csv(self, path: str | Path) -> None:
        """Write the columns as CSV, floats in full precision (``repr``), atomically."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(zip(*(map(repr, self.columns[c]) for c in COLUMNS)))
        atomic_write_bytes(Path(path), lambda tmp: Path(tmp).write_text(buf.getvalue()))

    @classmethod
    def read(cls, out_dir: str | Path) -> "History":
        """The history a run wrote to ``out_dir`` (``history.csv`` and ``run.json``)."""
        out_dir = Path(out_dir)
        with open(out_dir / "history.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        hist = cls({c: [float(r[c]) for r in rows] for c in COLUMNS})
        meta = json.loads((out_dir / "run.json").read_text())
        hist.stop_reason, hist.message = meta.get("stop_reason", ""), meta.get("message", "")
        return hist


def write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True)
    atomic_write_bytes(Path(path), lambda tmp: Path(tmp).write_text(text + "\n"))
