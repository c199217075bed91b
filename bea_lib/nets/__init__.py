"""Full-batch training of networks: data, models, the training loop and its files, sweeps.

``bea_lib.nets.train`` is imported on its own (``python -m bea_lib.nets.train`` runs it).
"""
from . import data, models
