"""Test losses: the package's named problems under the names the tests use."""
from bea_lib.studies.losses import bilinear as bilinear_loss
from bea_lib.studies.losses import logcosh_regression as random_smooth_loss

__all__ = ["bilinear_loss", "random_smooth_loss"]
