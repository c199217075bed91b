"""Shared test set-up: float64 throughout, as in the theory chapters."""
import pytest
import torch

torch.set_num_threads(1)  # the test problems are tiny: a second thread only adds overhead


@pytest.fixture(autouse=True)
def _float64_and_seed():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(previous)
