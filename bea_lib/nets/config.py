"""The configuration of a training run, described once: each field of :class:`TrainConfig`
carries its help, check, choices, command-line type and whether it shapes the trajectory; the
command line (:func:`bea_lib.nets.train.parser`) and the resume check (:data:`TRAJECTORY_FIELDS`)
are derived from them, so a new field needs no other list.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..base.vocab import Optimizer
from ..core.validation import adam_hyper, check_bool, check_int, check_one_of, check_positive
from .data import DATASETS
from .models import ACTIVATIONS, MODELS, NORMS, make_model
from .rules import RULES

DTYPES = ("float32", "float64")
HYPER = "adam_hyper"  # the check of h, β, ρ, ε, eps_inside, κ: validation.adam_hyper, all at once


def _int(minimum: int):
    return lambda name, value: check_int(name, value, minimum=minimum)


def _option(default, help: str, *, check=None, choices=None, type=None, trajectory: bool = False):
    """A TrainConfig field: its default; in the metadata its ``help``, its ``choices`` (checked,
    offered by the CLI), its CLI ``type`` (default None), whether it shapes the ``trajectory`` (a
    checkpoint resumes only the same values), its ``check(name, value)`` (of a value not None)."""
    if check is None and choices is not None:
        check = lambda name, value: check_one_of(name, value, choices)  # noqa: E731
    return dataclasses.field(default=default, metadata=dict(
        help=help, check=check, choices=choices, type=type, trajectory=trajectory))


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that defines a run, described once: each field's metadata carries its help,
    its check, its choices and whether it shapes the trajectory; the command line and the resume
    check are derived from them. Checked on construction (ValueError naming the field)."""

    dataset: str = _option("mnist1d", "data set", choices=DATASETS, trajectory=True)
    model: str = _option("mlp", "network", choices=MODELS, trajectory=True)
    optimizer: str = _option("adam", "update rule (rmsprop: adam with beta 0; gd: heavy_ball "
                             "with beta 0)", choices=tuple(map(str, Optimizer)),
                             trajectory=True)
    h: float = _option(1e-3, "step size h (learning rate)", check=HYPER, trajectory=True)
    beta: float = _option(0.9, "first-moment parameter β in [0, 1)", check=HYPER,
                          trajectory=True)
    rho: float = _option(0.999, "second-moment parameter ρ in [0, 1)", check=HYPER,
                         trajectory=True)
    eps: float = _option(1e-8, "ε (inside the square root unless --no-eps-inside)",
                         check=HYPER, trajectory=True)
    eps_inside: bool = _option(True, "ε inside the square root, the paper's form",
                               check=HYPER, trajectory=True)
    kappa: float = _option(0.0, "κ of the κ-variant: each step adds κh²f₁ (0: Adam itself, "
                           "-1: the bias term cancelled, +1: doubled)", check=HYPER,
                           trajectory=True)
    epochs: int = _option(1000, "maximum number of steps (= epochs)", check=_int(0))
    seed: int = _option(0, "seeds the initialisation, the only randomness of a run",
                        check=_int(0), trajectory=True)
    chunk_size: int = _option(1000, "examples per forward/backward pass (does not change E)",
                              check=_int(1))
    loss_threshold: float | None = _option(None, "stop when the train loss falls below this",
                                           check=check_positive, type=float)
    max_time: float | None = _option(None, "stop after this many seconds of training in this "
                                     "invocation (a resume gets them afresh)",
                                     check=check_positive, type=float)
    checkpoint_every: int = _option(0, "epochs between checkpoints (0: none)", check=_int(0))
    test_every: int = _option(1, "epochs between test evaluations (other rows hold NaN)",
                              check=_int(1), trajectory=True)
    diagnostics_every: int = _option(0, "epochs between the bias and sharpness diagnostics of "
                                     "bea_lib.nets.diagnostics (0: none; one process only)",
                                     check=_int(0))
    sharpness: bool = _option(True, "whether the diagnostics include the two top eigenvalues "
                              "(Lanczos: most of their cost); without, the bias ratio, "
                              "alignment and Table-1 cells alone", check=check_bool)
    device: str | None = _option(None, "cpu, cuda, cuda:1 (default: cuda if available)", type=str)
    dtype: str = _option("float64", "dtype of data, parameters and Adam's state (float32 only "
                         "where bea_lib.nets.precision shows it changes nothing reported)",
                         choices=DTYPES, trajectory=True)
    width: int | None = _option(None, "MLP hidden width or CNN channels (default 32)",
                                check=_int(1), type=int, trajectory=True)
    activation: str = _option("relu", "the MLP's activation", choices=tuple(ACTIVATIONS),
                              trajectory=True)
    norm: str | None = _option(None, "normalisation (default: group for ResNets, none otherwise)",
                               choices=NORMS, type=str, trajectory=True)
    data_root: str = _option("data", "folder holding the CIFAR batches")
    n_train: int | None = _option(None, "use only the first n_train training examples",
                                  check=_int(1), type=int, trajectory=True)
    n_test: int | None = _option(None, "use only the first n_test test examples", check=_int(1),
                                 type=int, trajectory=True)

    def __post_init__(self):
        hyper = adam_hyper(h=self.h, beta=self.beta, rho=self.rho, eps=self.eps,
                           eps_inside=self.eps_inside, kappa=self.kappa)
        for name, value in hyper._asdict().items():
            object.__setattr__(self, name, value)
        for f in dataclasses.fields(self):
            value, check = getattr(self, f.name), f.metadata["check"]
            if check == HYPER:
                continue
            if value is None and f.default is None:
                continue  # an optional field left at its default
            if check is None:
                if not isinstance(value, str):
                    raise ValueError(f"{f.name} must be a string, got {value!r}")
                continue
            # plain Python numbers: comparable and JSON-ready
            object.__setattr__(self, f.name, check(f.name, value))
        rule = RULES[self.optimizer]
        for name, value in rule.fixed.items():  # RMSProp and GD: β = 0
            object.__setattr__(self, name, value)
        if self.kappa and "kappa" not in rule.hyper:
            raise ValueError(f"kappa must be 0 for optimizer {self.optimizer} (the κ-variant "
                             f"scales Adam's bias term), got {self.kappa!r}")


FIELDS = dataclasses.fields(TrainConfig)
TRAJECTORY_FIELDS = tuple(f.name for f in FIELDS if f.metadata["trajectory"])
DEFAULTS = {f.name: f.default for f in FIELDS}  # of a field a record predates


def build_model(config: TrainConfig, input_shape, n_classes: int):
    """The initial network θ⁽⁰⁾: seeded with ``config.seed``, drawn in float32, cast to its dtype.

    Drawing in float32 whatever the default dtype makes θ⁽⁰⁾ depend on the seed alone, and gives
    float32 and float64 runs the same start.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        torch.manual_seed(config.seed)
        model = make_model(config.model, input_shape, n_classes, width=config.width,
                           norm=config.norm, activation=config.activation)
    finally:
        torch.set_default_dtype(previous)
    return model.to(getattr(torch, config.dtype))
