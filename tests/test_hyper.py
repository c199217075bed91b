"""One record of Adam's hyperparameters (bea_lib.core.validation.adam_hyper), checked the same way
at every entry point: a bool or a string is refused, not coerced, and an out-of-range value is
refused, each with a message naming the argument and its allowed range."""
import pytest
import torch

import bea_lib as bl
from bea_lib.studies.intervention import kappa_adam
from bea_lib.core.minibatch import minibatch_adam_flow
from bea_lib.nets.config import TrainConfig
from bea_lib.core.validation import Hyper, adam_hyper

LOSS = bl.losses.logcosh_regression(3, seed=0)
THETA0 = torch.tensor([0.1, -0.2, 0.3])
GOOD = dict(h=1e-2, beta=0.9, rho=0.999, eps=1e-8)

# every entry point that takes Adam's hyperparameters, as a call with them as keywords
ENTRY_POINTS = {
    "adam": lambda **k: bl.adam(LOSS, THETA0, 1, **k),
    "Adam": lambda h, **k: bl.Adam([torch.zeros(2, requires_grad=True)], lr=h, **k),
    "adam_flow": lambda **k: bl.adam_flow(LOSS, THETA0, 1, **k),
    "adam_rhs": lambda **k: bl.adam_rhs(LOSS, **k),
    "minibatch_adam_flow": lambda **k: minibatch_adam_flow([LOSS, LOSS], THETA0, 1, **k),
    "kappa_adam": lambda **k: kappa_adam(LOSS, THETA0, 1, kappa=0.0, **k),
    "adam_runs": lambda **k: bl.adam_runs(LOSS, THETA0, 1, **k),
    "bias_coefficient": lambda h, **k: bl.bias_coefficient(1.0, **k),
    "TrainConfig": lambda **k: TrainConfig(**k),
}
BAD = [("h", True, "h must be a finite number > 0"), ("h", "0.1", "h must be a finite number > 0"),
       ("h", 0.0, r"h must be a finite number > 0, got 0.0"),
       ("beta", "0.9", r"beta must be a number in \[0, 1\)"),
       ("beta", True, r"beta must be a number in \[0, 1\)"),
       ("rho", 1.0, r"rho must be in \[0, 1\), got 1.0"),
       ("eps", -1e-8, "eps must be a finite number > 0"),
       ("eps", float("inf"), "eps must be a finite number > 0")]


@pytest.mark.parametrize("entry, name, value, message", [
    (entry, *bad) for entry in ENTRY_POINTS for bad in BAD
    if not (entry == "bias_coefficient" and bad[0] == "h")])  # it takes no step size
def test_every_entry_point_refuses_what_the_record_refuses(entry, name, value, message):
    if name == "h" and entry == "Adam":
        message = message.replace("h must", "lr must")  # torch's name for h
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[entry](**{**GOOD, name: value})


def test_the_record_refuses_bools_and_strings_for_flags_and_kappa():
    with pytest.raises(ValueError, match="eps_inside must be True or False, got 'no'"):
        adam_hyper(**GOOD, eps_inside="no")
    with pytest.raises(ValueError, match="eps_inside must be True or False"):
        bl.adam(LOSS, THETA0, 1, **GOOD, eps_inside="no")
    with pytest.raises(ValueError, match="kappa must be a finite number"):
        adam_hyper(**GOOD, kappa=True)
    with pytest.raises(ValueError, match="kappa must be a finite number, got nan"):
        TrainConfig(kappa=float("nan"))


def test_the_record_keeps_good_values_as_python_numbers():
    import numpy as np

    hyper = adam_hyper(h=np.float32(0.5), beta=0, rho=np.float64(0.99), eps=1e-8, kappa=-1)
    assert hyper == Hyper(0.5, 0.0, 0.99, 1e-8, True, -1.0)
    assert all(type(v) is float for v in (hyper.h, hyper.beta, hyper.rho, hyper.eps, hyper.kappa))
