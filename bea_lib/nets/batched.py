r"""A sweep of small networks trained together: k runs of full-batch Adam as one batched model.

Each run of a sweep is :func:`bea_lib.nets.train.train` with its own (h, β, ρ, ε, κ) and seed
on the same data and network; ``train([config, ...])`` trains them as one :class:`StackedNet`
in the same loop (:func:`bea_lib.nets.loop.fit`). For tiny models a step costs little arithmetic
and much Python, so k runs one after another pay k times the per-step overhead. Here the k
parameter vectors are the rows of one (k, P) tensor θ. The loss of every run is computed in one
forward pass, and one
backward pass of Σ_r E_r gives every run's gradient at once: the runs share no parameters, so
∂(Σ_r E_r)/∂θ_r = ∇E_r. The step is the same :func:`bea_lib.studies.intervention.kappa_update` as
for one run, one elementwise call of :func:`bea_lib.core.optimizers.adam_update` on the (k, P)
tensors with per-run h, β, ρ, ε of shape (k, 1), which is (2.1) row by row, plus κh²f₁ on the
rows with κ ≠ 0, whose Hessian-vector products come from one more backward pass of the
stacked gradient (:meth:`StackedNet.hvp_fn`).

The forward pass of the MLP and the 1-D CNN of :mod:`bea_lib.nets.models` is written for k runs
(:func:`stacked_forward`): each linear layer is one batched matrix product, each convolution
one matrix product per run over its windows (im2col), with the examples on the innermost axis.
Other models go through ``torch.func.vmap`` over ``torch.func.functional_call``, which is
general but slow on a CPU (it turns k convolutions into one grouped convolution). Passes over
the examples are split so that one pass of k runs stays within the CPU's caches
(:data:`PASS_VALUES`).

Per run, the result is the history that ``train`` would record (the same rows, the same
stopping rules ``epochs``, ``loss_threshold`` and ``diverged``), up to float rounding: the
gradient is the same sum over the examples divided by N once, computed by other kernels and in
other passes. ``tests/test_batched.py`` checks the identity in float64. ``wall_time`` is the
batch's time, shared by its runs. A run that stops leaves the batch (its history records no more
rows); the batch ends when every run has stopped.

Cost: the batch pays the per-step Python overhead once instead of k times; the arithmetic is
the same. On a CPU core its own rate is bounded by the rate of small per-run matrix products
(the MLP's 32 × 32 weights) and, for the CNN, by the memory traffic of its windows and
activations, well below the core's matrix-product peak. So the batch gains most where one run
is mostly overhead (small training sets), and little more than the ratio of those rates where
one run's step is already arithmetic-bound (a few thousand examples).
``benchmarks/bench_batched.py`` measures both, with the achieved FLOP rates.

Limits: models without batch normalisation (their chunk statistics would need per-run buffers
updated in place), one device, no checkpoints (a batch of tiny runs takes minutes; long runs go
through :mod:`bea_lib.nets.executor`, one resumable ``train`` each).

Python::

    configs = [dataclasses.replace(base, kappa=k, seed=s) for k in (-1, 0, 1) for s in (0, 1)]
    histories = train(configs)   # one History per config, in order
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .config import TrainConfig
from .models import has_batch_norm

# Fields that may differ between the runs of one batch; all others must agree.
PER_RUN_FIELDS = ("h", "beta", "rho", "eps", "kappa", "seed", "epochs", "loss_threshold",
                  "diagnostics_every")


def common_config(configs: list[TrainConfig]) -> list[TrainConfig]:
    """``configs``, after checking that they differ only in PER_RUN_FIELDS."""
    if not configs:
        raise ValueError("configs must hold at least one TrainConfig, got an empty list")
    first = configs[0]
    shared = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in PER_RUN_FIELDS]
    for i, c in enumerate(configs):
        if not isinstance(c, TrainConfig):
            raise ValueError(f"configs[{i}] must be a TrainConfig, got {type(c).__name__}")
        differ = [f for f in shared if getattr(c, f) != getattr(first, f)]
        if differ:
            raise ValueError(f"configs[{i}] differs from configs[0] in {', '.join(differ)}; a "
                             f"batch may differ only in {', '.join(PER_RUN_FIELDS)}")
    if first.checkpoint_every:
        raise ValueError("checkpoint_every is for one run, not a batch; run long jobs through "
                         "bea_lib.nets.executor")
    return configs


# --- the forward pass of k runs at once ------------------------------------------------------

_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.GELU, nn.Identity)
# Values in the widest activation of one pass over k runs: passes over more examples than this
# allows are split, so that a pass works in the CPU's caches (8 MB in float32; measured on a
# 2-core machine, larger passes were slower: their buffers come fresh from the OS each time)
PASS_VALUES = 2**21


def stacked_forward_supported(model: nn.Module, input_shape) -> bool:
    """Whether :func:`stacked_forward` can run ``model`` on inputs of ``input_shape``: an
    ``nn.Sequential`` of Linear layers on feature vectors, zero-padded Conv1d and
    AdaptiveAvgPool1d(1) on signals (C, L), Flatten, and elementwise activations (the MLP and the
    1-D CNN of :mod:`bea_lib.nets.models`). Other models go through ``torch.func.vmap``."""
    if not isinstance(model, nn.Sequential):
        return False
    dims = len(input_shape)  # of one example: 1 for features, 2 for signals (C, L)
    for m in model:
        if isinstance(m, nn.Linear):
            ok = dims == 1
        elif isinstance(m, nn.Conv1d):
            ok = (dims == 2 and m.groups == 1 and m.dilation == (1,)
                  and m.padding_mode == "zeros" and not isinstance(m.padding, str))
        elif isinstance(m, nn.AdaptiveAvgPool1d):
            ok = dims == 2 and m.output_size in (1, (1,))
        elif isinstance(m, nn.Flatten):
            ok, dims = (m.start_dim, m.end_dim) == (1, -1), 1
        else:
            ok = isinstance(m, _ELEMENTWISE)
        if not ok:
            return False
    return dims == 1


def _affine(x, w, b, shared: bool):
    """w @ x + b for every run, features first: ``w`` is (k, out, in), ``b`` (k, out) or None,
    ``x`` is (in, m) for all runs (``shared``) or (k, in, m). Returns (k, out, m).

    Shared inputs take one (k·out, in) @ (in, m) product, whose backward is one product too;
    per-run inputs one batched product. Features first, examples last, keeps the long axis of
    every product the examples' (m = n, or n·L for a convolution), the layout in which small
    per-run products run fastest on a CPU.
    """
    k, n_out, n_in = w.shape
    if shared:
        flat_w = w.reshape(k * n_out, n_in)
        out = flat_w @ x if b is None else torch.addmm(b.reshape(-1, 1), flat_w, x)
        return out.view(k, n_out, -1)
    return torch.bmm(w, x) if b is None else torch.baddbmm(b.unsqueeze(-1), w, x)


def _tap_range(j: int, length: int, length_out: int, stride: int, pad: int) -> tuple[int, int]:
    """Output positions l0 <= l < l1 whose tap j, input position stride·l + j - pad, lies inside
    the signal [0, length); the others read the zero padding."""
    first = max(0, -(-(pad - j) // stride))
    return first, max(first, min(length_out, (length - 1 + pad - j) // stride + 1))


class _Windows(torch.autograd.Function):
    """im2col of a 1-D convolution along the positions axis: x (..., C, L, n) -> columns
    (..., C, width, L_out, n), where [..., c, j, l, i] = x[..., c, stride·l + j - pad, i], zero
    where that position falls in the padding.

    Tap j of every window is a strided slice of the positions; with the examples innermost, each
    is a copy of whole rows of n values. The backward (col2im) adds each tap's gradient into one
    zeroed tensor of x's shape; autograd's own backward of padding and slices would zero one
    buffer per tap and hand on a non-contiguous gradient, several times slower here.
    """

    @staticmethod
    def forward(ctx, x, width: int, stride: int, pad: int):
        *lead, length, n = x.shape
        length_out = (length + 2 * pad - width) // stride + 1
        cols = x.new_empty(*lead, width, length_out, n)
        taps = []
        for j in range(width):
            l0, l1 = _tap_range(j, length, length_out, stride, pad)
            start = stride * l0 + j - pad
            taps.append((l0, l1, slice(start, start + stride * (l1 - l0 - 1) + 1, stride)))
            cols[..., j, :l0, :] = 0  # windows over the padding
            cols[..., j, l1:, :] = 0
            if l1 > l0:
                cols[..., j, l0:l1, :] = x[..., taps[-1][2], :]
        ctx.x_shape, ctx.taps = x.shape, taps
        return cols

    @staticmethod
    def backward(ctx, g):
        gx = g.new_zeros(ctx.x_shape)
        for j, (l0, l1, positions) in enumerate(ctx.taps):
            if l1 > l0:
                gx[..., positions, :] += g[..., j, l0:l1, :]
        return gx, None, None, None


def _conv1d(x, w, b, conv: nn.Conv1d, shared: bool):
    """The convolution ``conv`` with weights ``w`` (k, out, in, width) and bias ``b`` (k, out) or
    None, on inputs (C, L, n) or (k, C, L, n), as one matrix product per run (im2col): one
    column of C·width values per output position and example. Returns (k, out, L_out, n).

    vmap would turn the convolutions of k runs into one grouped convolution, slow on a CPU.
    """
    (stride,), (pad,) = conv.stride, conv.padding
    k, n_out, n_in, width = w.shape
    cols = _Windows.apply(x, width, stride, pad)  # (..., C, width, L_out, n)
    length, n = cols.shape[-2:]
    cols = cols.reshape(*cols.shape[:-4], n_in * width, length * n)  # w's order, (C, width)
    out = _affine(cols, w.reshape(k, n_out, n_in * width), b, shared)
    return out.view(k, n_out, length, n)


def stacked_forward(model: nn.Sequential, params: dict[str, torch.Tensor],
                    x: torch.Tensor) -> torch.Tensor:
    """The outputs of k networks of ``model``'s architecture on the same inputs: ``params`` maps
    each parameter name of ``model`` to its k stacked values (k, ...); ``x`` is (n, ...);
    returns (k, classes, n). Needs :func:`stacked_forward_supported`.

    Activations are laid out examples last: (k, C, n) for features, (k, C, L, n) for signals of
    length L, so that every product's long axis is the examples' and a convolution's windows
    are copies of whole rows. Before the first layer with parameters they are the same for all
    runs and carry no run axis. Flattening (C, L) gives ``model``'s own order, c·L + l.
    """
    x, shared = x.movedim(0, -1), True  # (C, ..., n)
    for name, m in model.named_children():
        if isinstance(m, nn.Linear):
            x = _affine(x, params[f"{name}.weight"], params.get(f"{name}.bias"), shared)
            shared = False
        elif isinstance(m, nn.Conv1d):
            x = _conv1d(x, params[f"{name}.weight"], params.get(f"{name}.bias"), m, shared)
            shared = False
        elif isinstance(m, nn.AdaptiveAvgPool1d):  # output size 1: the mean over positions
            x = x.mean(-2, keepdim=True)
        elif isinstance(m, nn.Flatten):
            x = x.flatten(0 if shared else 1, -2)  # (..., C, L, n) -> (..., C·L, n)
        else:
            x = m(x)  # elementwise
    if shared:
        raise ValueError("model has no layer with parameters")
    return x


def _widest_activation(model: nn.Sequential, input_shape) -> int:
    """Values per example of ``model``'s widest activation (its input included)."""
    with torch.no_grad():
        x = torch.zeros(1, *input_shape, dtype=next(model.parameters()).dtype)
        widest = x.numel()
        for m in model:
            x = m(x)
            widest = max(widest, x.numel())
    return widest


def _pass_size(n: int, chunk_size: int, values_per_example: int) -> int:
    """Examples per forward/backward pass: at most ``chunk_size``, and within
    :data:`PASS_VALUES` for the batch's widest activation (``values_per_example`` values each,
    0 for no limit), the n examples split into passes of equal size."""
    rows = min(chunk_size, max(1, PASS_VALUES // values_per_example) if values_per_example
               else chunk_size)
    passes = -(-n // rows)
    return -(-n // passes)


def _forward_of(model: nn.Module, input_shape):
    """``forward(params, buffers, x) -> (k, classes, n)`` for k stacked runs of ``model``, and
    the values per example of one run's widest activation (for :func:`_pass_size`): the stacked
    layers where :func:`stacked_forward_supported`, else ``vmap`` over ``functional_call``
    (passes of ``chunk_size`` examples, as in ``train``)."""
    if stacked_forward_supported(model, input_shape):
        return (lambda params, buffers, x: stacked_forward(model, params, x),
                _widest_activation(model, input_shape))
    one = lambda p, b, x: functional_call(model, (p, b), (x,)).t()  # noqa: E731
    return vmap(one, in_dims=(0, 0, None)), 0


def _chunk_sums(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per run: Σ_i ℓ_i over the chunk (cross-entropy sums, as in train's chunks), and #correct.
    ``out`` is (k, classes, n)."""
    losses = F.cross_entropy(out, y.expand(len(out), -1), reduction="none")  # (k, n)
    # argmax over the innermost axis: along the class axis it is several times slower
    return losses.sum(1), (out.transpose(1, 2).contiguous().argmax(-1) == y).sum(1)


class StackedNet:
    """k runs of one architecture as one stacked model: θ is a (k, P) tensor, one row per run,
    the parameters in model order (as :class:`~bea_lib.nets.module_net.ModuleNet` does).
    Gradients, evaluations and Hessian-vector products of all rows in one pass over the data."""

    def __init__(self, models: list[nn.Module], data, *, chunk_size: int):
        if has_batch_norm(models[0]):
            raise ValueError("a batch of runs does not support batch normalisation (norm='batch'); "
                             "train each run on its own")
        stacked, self.buffers = stack_module_state(models)
        self.names = list(stacked)
        self.shapes = [stacked[name].shape[1:] for name in self.names]
        self.sizes = [math.prod(s) for s in self.shapes]
        self._theta = torch.cat([stacked[name].detach().reshape(len(models), -1)
                                 for name in self.names], dim=1)
        self.forward, self.per_example = _forward_of(models[0], data.input_shape)
        self.data, self.chunk_size = data, chunk_size

    def theta(self) -> torch.Tensor:
        return self._theta

    def keep(self, index):
        """Only the runs ``index`` go on."""
        self.buffers = {name: t[index] for name, t in self.buffers.items()}

    def _passes(self, x, k):
        """Slices of the examples, one per forward/backward pass of k runs."""
        rows = _pass_size(len(x), self.chunk_size, k * self.per_example)
        return [slice(i, i + rows) for i in range(0, len(x), rows)]

    def _unflatten(self, flat):
        return {name: t.view(len(flat), *shape)
                for name, t, shape in zip(self.names, flat.split(self.sizes, dim=1), self.shapes)}

    def gradient(self, theta):
        """∇E of every run, (k, P), and [E, accuracy] per run, (k, 2)."""
        x, y = self.data.x_train, self.data.y_train
        leaves = {name: p.detach().requires_grad_() for name, p in self._unflatten(theta).items()}
        total = torch.zeros_like(theta)
        stats = torch.zeros(len(theta), 2, dtype=torch.float64, device=theta.device)
        for chunk in self._passes(x, len(theta)):
            loss, correct = _chunk_sums(self.forward(leaves, self.buffers, x[chunk]), y[chunk])
            # the runs are independent: ∂(Σ_r loss_r)/∂θ_r = ∂loss_r/∂θ_r, each run's gradient
            g = torch.autograd.grad(loss.sum(), list(leaves.values()))
            total += torch.cat([t.reshape(len(theta), -1) for t in g], dim=1)
            stats[:, 0] += loss.detach()
            stats[:, 1] += correct
        return total / len(x), stats / len(x)  # the one division by N

    @torch.no_grad()
    def evaluate(self, theta):
        """[test loss, test accuracy] per run, (k, 2)."""
        x, y = self.data.x_test, self.data.y_test
        params = self._unflatten(theta)
        stats = torch.zeros(len(theta), 2, dtype=torch.float64, device=theta.device)
        for chunk in self._passes(x, len(theta)):
            loss, correct = _chunk_sums(self.forward(params, self.buffers, x[chunk]), y[chunk])
            stats[:, 0] += loss
            stats[:, 1] += correct
        return stats / len(x)

    def hvp_fn(self, theta, rows: list[int]):
        """v ↦ (∇²E_r v_r)_r for the runs ``rows`` at θ: v and the result are (len(rows), P).

        The gradient's graph is built once (one forward and backward pass per chunk, kept);
        each product is then one more backward pass of ⟨∇E, v⟩ (the runs are independent)."""
        x, y = self.data.x_train, self.data.y_train
        index = torch.tensor(rows, device=theta.device)
        th = theta[index]
        buffers = {name: t[index] for name, t in self.buffers.items()}
        leaves = {name: p.detach().requires_grad_() for name, p in self._unflatten(th).items()}
        grads = []
        for chunk in self._passes(x, len(th)):
            loss, _ = _chunk_sums(self.forward(leaves, buffers, x[chunk]), y[chunk])
            g = torch.autograd.grad(loss.sum(), list(leaves.values()), create_graph=True)
            grads.append(torch.cat([t.reshape(len(th), -1) for t in g], dim=1))

        def hvp(v):
            total = torch.zeros_like(th)
            for g in grads:
                hv = torch.autograd.grad(g, list(leaves.values()), grad_outputs=v.to(g.dtype),
                                         retain_graph=True, allow_unused=True)
                total += torch.cat([(torch.zeros_like(p) if t is None else t).reshape(len(th), -1)
                                    for t, p in zip(hv, leaves.values())], dim=1)
            return (total / len(x)).detach()

        return hvp
