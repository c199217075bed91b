"""One run as an ``nn.Module`` (:class:`ModuleNet`: chunks, batch normalisation, a data slice
per process under torchrun), and :func:`open_net`, which readies the runs of a training call.

E(θ) = (1/N) Σ_{i<N} ℓ_i(θ), ℓ_i the cross-entropy of example i, its gradient accumulated over
chunks as sums and divided by N once: the same for every chunk size, up to rounding, for models
whose output for x_i depends on x_i alone (:mod:`bea_lib.nets.models`).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from ..core.autodiff import gradient_and_hvp_fn
from ..core.validation import check_int
from .batched import StackedNet, module_hvp_fn
from .config import TrainConfig, build_model
from .data import check_data, load_dataset
from .diagnostics import flat_loss
from .distributed import Comm
from .models import has_batch_norm


def full_batch_gradient(model, x, y, *, chunk_size: int, comm: Comm = Comm()) -> torch.Tensor:
    """Set every ``p.grad`` to ∇E over the examples of all ranks; return [E, accuracy, N] (float64).

    ``x, y`` are this rank's examples. Losses are summed per chunk (``reduction="sum"``),
    their gradients accumulate in ``p.grad``, the sums of all ranks are added, and the total is
    divided by N once: no chunk is weighted by its size, so the chunking does not change E.
    """
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    model.train()
    losses, correct = [], []
    for i in range(0, len(x), chunk_size):
        out = model(x[i:i + chunk_size])
        loss = F.cross_entropy(out, y[i:i + chunk_size], reduction="sum")
        loss.backward()
        losses.append(loss.detach())
        correct.append((out.argmax(1) == y[i:i + chunk_size]).sum())
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    zero = torch.zeros((), device=x.device)
    stats = torch.stack([torch.stack(losses).double().sum() if losses else zero,
                         torch.stack(correct).sum() if correct else zero,
                         torch.tensor(len(x), device=x.device)]).double()  # Σℓ_i, #correct, N
    n = len(x)
    if comm.world_size > 1:  # one all-reduce for all gradient sums, one for the statistics
        flat = comm.sum_(torch.cat([g.reshape(-1) for g in grads]))
        parts = flat.split([g.numel() for g in grads])
        torch._foreach_copy_(grads, [f.view_as(g) for f, g in zip(parts, grads)])
        n = int(comm.sum_(stats)[2].item())
    torch._foreach_div_(grads, n)  # the one division by N
    for p, g in zip(params, grads):
        p.grad = g
    return torch.stack([stats[0] / stats[2], stats[1] / stats[2], stats[2]])


@torch.no_grad()
def evaluate(model, x, y, *, chunk_size: int, comm: Comm = Comm()) -> torch.Tensor:
    """[mean loss, accuracy] over the examples of all ranks, in evaluation mode (float64)."""
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    model.eval()
    stats = torch.zeros(3, dtype=torch.float64, device=x.device)
    for i in range(0, len(x), chunk_size):
        out = model(x[i:i + chunk_size])
        stats[0] += F.cross_entropy(out, y[i:i + chunk_size], reduction="sum")
        stats[1] += (out.argmax(1) == y[i:i + chunk_size]).sum()
    stats[2] = len(x)
    comm.sum_(stats)
    return stats[:2] / stats[2]


class ModuleNet:
    """One run (k = 1) as an ``nn.Module``: chunked full-batch gradients, batch normalisation,
    one data slice per process under torchrun. θ is the flat (1, P) vector of the parameters."""

    def __init__(self, model, train_xy, test_xy, *, chunk_size: int, comm: Comm):
        self.model, self.train_xy, self.test_xy = model, train_xy, test_xy
        self.chunk_size, self.comm = chunk_size, comm
        self.params = [p for p in model.parameters() if p.requires_grad]

    def theta(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params])[None]

    def _load(self, theta):
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(theta[0], self.params)

    def gradient(self, theta):
        self._load(theta)
        stats = full_batch_gradient(self.model, *self.train_xy, chunk_size=self.chunk_size,
                                    comm=self.comm)
        return torch.cat([p.grad.reshape(-1) for p in self.params])[None], stats[None, :2]

    def evaluate(self, theta):
        self._load(theta)
        return evaluate(self.model, *self.test_xy, chunk_size=self.chunk_size, comm=self.comm)[None]

    def hvp_fn(self, theta, rows):
        """v ↦ ∇²E v at θ (this process's examples), as (1, P) rows: by hand (the R-operator of
        :mod:`bea_lib.nets.batched`) for the MLP and the 1-D CNN, else reverse over reverse."""
        if self.comm.world_size > 1:
            raise ValueError("the κ-variant and the diagnostics need one process (world_size 1)")
        by_hand = module_hvp_fn(self.model, *self.train_xy, theta, chunk_size=self.chunk_size)
        if by_hand is not None:
            return by_hand
        self._load(theta)
        E, theta0 = flat_loss(self.model, *self.train_xy)
        _, fn = gradient_and_hvp_fn(E, theta0)
        return lambda v: fn(v[0])[None]

    def keep(self, index):
        pass


def open_net(configs: list[TrainConfig], device, comm: Comm, data=None, *, batch: bool):
    """The runs of ``configs`` ready to train on ``data`` (loaded unless given): a
    :class:`~bea_lib.nets.batched.StackedNet` for a ``batch``, else a :class:`ModuleNet`."""
    base = configs[0]
    if device.type == "cuda":  # reproducible convolutions, at some cost in speed
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    if data is None:
        data = load_dataset(base.dataset, root=base.data_root, n_train=base.n_train,
                            n_test=base.n_test)
    check_data(data, dataset=base.dataset, n_train=base.n_train, n_test=base.n_test)
    data = data.to(device, getattr(torch, base.dtype))
    models = [build_model(c, data.input_shape, data.n_classes).to(device) for c in configs]
    if batch:
        return StackedNet(models, data, chunk_size=base.chunk_size,  # κ steps reuse the
                          keep_tapes=any(c.kappa != 0 for c in configs))  # gradient's passes
    if has_batch_norm(models[0]) and base.chunk_size < len(data.x_train):
        warnings.warn("batch normalisation uses chunk statistics: the loss and its gradient depend "
                      "on chunk_size and are not the full-batch E (see bea_lib.nets.models)",
                      stacklevel=3)
    tr, te = comm.slice(len(data.x_train)), comm.slice(len(data.x_test))
    return ModuleNet(models[0], (data.x_train[tr], data.y_train[tr]),
                     (data.x_test[te], data.y_test[te]), chunk_size=base.chunk_size, comm=comm)
