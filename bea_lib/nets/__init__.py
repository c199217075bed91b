"""Full-batch training of networks (Section 6): data, models, the training loop and its files,
sweeps. ``bl.nets.load_dataset``, ``bl.nets.make_model``; training is ``bea_lib.nets.train``,
imported on its own (``python -m bea_lib.nets.train`` runs it; importing it here would make
runpy warn).
"""
from . import data, models
from .data import load_dataset
from .models import make_model

__all__ = ["data", "models", "load_dataset", "make_model"]
