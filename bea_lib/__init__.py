"""bea_lib: backward error analysis of Adam, after Cattaneo, Klusowski & Shigida (2023).

The public names live in this flat namespace: ``import bea_lib as bl; bl.adam(...)``.
"""
from .autodiff import gradient, gradient_and_hvp, gradient_and_hvp_fn, hvp
from . import losses, plotting
from .optimizers import (Adam, adam, gd, heavy_ball, rmsprop, torch_optimizer_iterates,
                         torch_optimizer_steps)
from .order import OrderStudy, max_distance, order_study
from .flows import (ExpansionValidityWarning, adam_flow, adam_rhs, gd_flow, heavy_ball_flow,
                    heavy_ball_rhs, rmsprop_flow)
from .integrate import FlowError, solve_flow
from . import nets  # bea_lib.nets.train is imported on its own: `python -m bea_lib.nets.train` runs it
from .nets import data, models
from .nets.data import load_dataset
from .nets.models import make_model
from .norms import (bias_coefficient, bias_potential_1d, heavy_ball_limit, implicit_bias_regime,
                    perturbed_one_norm)

from . import bilinear, runs, vocab
from .claims import claim
from .vocab import ClaimStatus, Verdict
from .runs import adam_runs, classify_run

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "adam",
    "gd",
    "gradient",
    "gradient_and_hvp",
    "gradient_and_hvp_fn",
    "heavy_ball",
    "hvp",
    "rmsprop",
    "losses",
    "plotting",
    "torch_optimizer_iterates",
    "torch_optimizer_steps",
    "OrderStudy",
    "adam_flow",
    "adam_rhs",
    "bias_coefficient",
    "bias_potential_1d",
    "gd_flow",
    "heavy_ball_flow",
    "heavy_ball_limit",
    "heavy_ball_rhs",
    "implicit_bias_regime",
    "max_distance",
    "order_study",
    "perturbed_one_norm",
    "rmsprop_flow",
    "solve_flow",
    "FlowError",
    "ExpansionValidityWarning",
    "data",
    "models",
    "load_dataset",
    "make_model",
    "bilinear",
    "runs",
    "adam_runs",
    "classify_run",
    "claim",
    "vocab",
    "ClaimStatus",
    "Verdict",
]
