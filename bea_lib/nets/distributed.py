"""Data parallelism for full-batch training: each process a slice of the data, sums all-reduced.

Under ``torchrun`` (which sets RANK and WORLD_SIZE) every process holds the whole model, takes a
contiguous slice of the training and test sets, and accumulates *sums* of per-example losses and
gradients over its slice. One all-reduce adds the sums of all ranks; dividing by the global N
then gives the full-batch gradient ∇E = (1/N) Σ_i ∇ℓ_i, the same as one process (up to float
rounding: the terms are added in another order). Every rank then takes the same Adam step, so
parameters stay identical without being broadcast. Without torchrun there is one rank and no
communication.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Comm:
    """This process's place among ``world_size`` ranks."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and shows the progress bar."""
        return self.rank == 0

    def slice(self, n: int) -> slice:
        """This rank's contiguous share of n examples (sizes differ by at most one)."""
        return slice(self.rank * n // self.world_size, (self.rank + 1) * n // self.world_size)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Add ``tensor`` over all ranks, in place; the identity for one rank."""
        if self.world_size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor


def init_from_env(device: torch.device) -> Comm:
    """Join the process group that torchrun describes (NCCL on CUDA, gloo on CPU), or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Comm()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Comm(rank=dist.get_rank(), world_size=dist.get_world_size())


def local_device(device: str | None) -> torch.device:
    """``device``, or CUDA if available; under torchrun each rank on CUDA takes GPU LOCAL_RANK."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' (or None: CUDA when available),"
                         f" got {device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: torch sees no CUDA GPU here; pass --device cpu "
                         "(or None: CUDA when available)")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device
