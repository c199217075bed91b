"""Full-batch training of networks (Section 6): ``bl.nets.load_dataset``, ``bl.nets.make_model``;
training is ``bea_lib.nets.train``, imported on its own (``python -m`` runs it: runpy warns if
it is imported here)."""
from . import data, models
from .data import load_dataset
from .models import make_model

__all__ = ["data", "models", "load_dataset", "make_model"]
