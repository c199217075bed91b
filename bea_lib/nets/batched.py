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
rows with κ ≠ 0, whose Hessian-vector products come from the gradient's own pass
(:meth:`StackedNet.hvp_fn`).

The forward pass of the MLP and the 1-D CNN of :mod:`bea_lib.nets.models` is written for k runs
(:func:`stacked_forward`): each linear layer is one batched matrix product, each convolution
one matrix product per run over its windows (im2col), with the examples on the innermost axis.
Their backward pass is written by hand from the forward pass's records (its tape), and so is the
Hessian-vector product, by the R-operator (forward mode through the backward pass) on the same
tape: a κ step pays one gradient and one tangent pass, about 1.6 gradients of arithmetic for the
MLP (``benchmarks/bench_batched.py``), where reverse over reverse paid the gradient twice more.
Other models go through ``torch.func.vmap`` over ``torch.func.functional_call``, which is
general but slow on a CPU (it turns k convolutions into one grouped convolution), autograd's
gradient and reverse over reverse. Passes over the examples are split so that one pass of k runs
stays within the CPU's caches (:data:`PASS_BYTES`).

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
from typing import NamedTuple

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
# Bytes of the widest activation of one pass over k runs: passes over more examples than this
# allows are split, so that a pass works in the CPU's caches (measured on a 2-core machine with
# 70 MLP runs on 2,000 examples, others' load 2-3.5: 4 MB passes took 0.6-0.7 times as long a
# step as 16 MB passes in float64, 0.6-0.8 times 8 MB passes in float32; larger buffers come
# fresh from the OS each time)
PASS_BYTES = 2**22


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


def _taps(length: int, width: int, stride: int, pad: int):
    """The output length of a 1-D convolution and, per tap j, the output positions l0 <= l < l1
    inside the signal with the slice of input positions they read."""
    length_out = (length + 2 * pad - width) // stride + 1
    taps = []
    for j in range(width):
        l0, l1 = _tap_range(j, length, length_out, stride, pad)
        start = stride * l0 + j - pad
        taps.append((l0, l1, slice(start, start + stride * (l1 - l0 - 1) + 1, stride)))
    return length_out, taps


def _im2col(x, width: int, stride: int, pad: int):
    """x (..., C, L, n) -> columns (..., C, width, L_out, n), [..., c, j, l, i] =
    x[..., c, stride·l + j - pad, i], zero where that position falls in the padding."""
    *lead, length, n = x.shape
    length_out, taps = _taps(length, width, stride, pad)
    cols = x.new_empty(*lead, width, length_out, n)
    for j, (l0, l1, positions) in enumerate(taps):
        cols[..., j, :l0, :] = 0  # windows over the padding
        cols[..., j, l1:, :] = 0
        if l1 > l0:
            cols[..., j, l0:l1, :] = x[..., positions, :]
    return cols


def _col2im(g, x_shape, width: int, stride: int, pad: int):
    """The adjoint of :func:`_im2col`: each tap's columns added back into one zeroed tensor of
    x's shape."""
    _, taps = _taps(x_shape[-2], width, stride, pad)
    gx = g.new_zeros(x_shape)
    for j, (l0, l1, positions) in enumerate(taps):
        if l1 > l0:
            gx[..., positions, :] += g[..., j, l0:l1, :]
    return gx


class _Windows(torch.autograd.Function):
    """im2col of a 1-D convolution along the positions axis (:func:`_im2col`), with col2im
    (:func:`_col2im`) as its backward.

    Tap j of every window is a strided slice of the positions; with the examples innermost, each
    is a copy of whole rows of n values. The backward adds each tap's gradient into one zeroed
    tensor of x's shape; autograd's own backward of padding and slices would zero one buffer per
    tap and hand on a non-contiguous gradient, several times slower here.
    """

    @staticmethod
    def forward(ctx, x, width: int, stride: int, pad: int):
        ctx.args = (x.shape, width, stride, pad)
        return _im2col(x, width, stride, pad)

    @staticmethod
    def backward(ctx, g):
        return _col2im(g, *ctx.args), None, None, None


def _columns(x, window):
    """A convolution's input x (..., C, L, n) as the right factor of its matrix product,
    (..., C·width, L_out·n) in the weights' order (C, width); ``window`` = (width, stride, pad)."""
    cols = _Windows.apply(x, *window)  # (..., C, width, L_out, n)
    return cols.reshape(*cols.shape[:-4], -1, cols.shape[-2] * cols.shape[-1])


# The records of a forward pass (its tape), for the gradient and the R-operator by hand
@dataclasses.dataclass
class _Affine:
    """z = W a + b of a linear layer, or of a convolution on its windows: ``a`` is (in, m),
    shared by all runs, or (k, in, m); a convolution's input x had ``x_shape`` and ``window``
    (width, stride, pad), and z is viewed as ``z_shape``. ``delta`` = ∂L/∂z once back-propagated."""

    name: str
    a: torch.Tensor
    shared: bool
    z_shape: torch.Size
    x_shape: torch.Size | None = None
    window: tuple[int, int, int] | None = None
    delta: torch.Tensor | None = None


@dataclasses.dataclass
class _Elementwise:
    """out = σ(z) of an activation ``module``; ``z`` is kept only where σ' or σ'' needs it (GELU).
    ``delta`` = ∂L/∂out once back-propagated."""

    module: nn.Module
    z: torch.Tensor | None
    out: torch.Tensor
    delta: torch.Tensor | None = None


@dataclasses.dataclass
class _Reshape:
    """The mean over positions (``pool``) or a flattening, from inputs of ``shape``."""

    shape: torch.Size
    pool: bool


def stacked_forward(model: nn.Sequential, params: dict[str, torch.Tensor],
                    x: torch.Tensor, tape: list | None = None) -> torch.Tensor:
    """The outputs of k networks of ``model``'s architecture on the same inputs: ``params`` maps
    each parameter name of ``model`` to its k stacked values (k, ...); ``x`` is (n, ...);
    returns (k, classes, n). Needs :func:`stacked_forward_supported`. With a list ``tape``, one
    record per layer is appended to it, for :func:`_backward` and :func:`_tangent`.

    Activations are laid out examples last: (k, C, n) for features, (k, C, L, n) for signals of
    length L, so that every product's long axis is the examples' and a convolution's windows
    are copies of whole rows. Before the first layer with parameters they are the same for all
    runs and carry no run axis. Flattening (C, L) gives ``model``'s own order, c·L + l.
    A convolution is one matrix product per run over its windows (im2col): vmap would turn the
    convolutions of k runs into one grouped convolution, slow on a CPU.
    """
    x, shared, record = x.movedim(0, -1), True, None  # (C, ..., n)
    for name, m in model.named_children():
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            w, b = params[f"{name}.weight"], params.get(f"{name}.bias")
            record = _Affine(name, x, shared, torch.Size())
            if isinstance(m, nn.Conv1d):
                record.x_shape, record.window = x.shape, (w.shape[-1], *m.stride, *m.padding)
                record.a = _columns(x, record.window)
                length_out = record.a.shape[-1] // x.shape[-1]
            x = _affine(record.a, w.flatten(2), b, shared)
            if isinstance(m, nn.Conv1d):
                x = x.view(*x.shape[:2], length_out, -1)  # (k, out, L_out, n)
            record.z_shape, shared = x.shape, False
        elif isinstance(m, (nn.AdaptiveAvgPool1d, nn.Flatten)):
            record = _Reshape(x.shape, pool=isinstance(m, nn.AdaptiveAvgPool1d))
            if record.pool:  # output size 1: the mean over positions
                x = x.mean(-2, keepdim=True)
            else:
                x = x.flatten(0 if shared else 1, -2)  # (..., C, L, n) -> (..., C·L, n)
        else:  # elementwise; ReLU in place on a product's output when taping: z is kept by none
            inplace = (tape is not None and isinstance(m, nn.ReLU)
                       and isinstance(record, _Affine))  # record: the layer before's
            z, x = x, (torch.relu_(x) if inplace else m(x))
            record = _Elementwise(m, z if isinstance(m, nn.GELU) else None, x)
        if tape is not None and (isinstance(record, _Affine) or not shared):
            tape.append(record)  # the layers before the first with parameters need no record
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


def _pass_size(n: int, chunk_size: int, values_per_example: int, itemsize: int) -> int:
    """Examples per forward/backward pass: at most ``chunk_size``, and within
    :data:`PASS_BYTES` for the batch's widest activation (``values_per_example`` values each of
    ``itemsize`` bytes, 0 for no limit), the n examples split into passes of equal size."""
    budget = PASS_BYTES // itemsize
    rows = min(chunk_size, max(1, budget // values_per_example) if values_per_example
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


def _correct(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """#correct per run; ``out`` is (k, classes, n). The argmax runs over the innermost axis:
    along the class axis it is several times slower."""
    return (out.transpose(1, 2).contiguous().argmax(-1) == y).sum(1)


def _chunk_sums(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per run: Σ_i ℓ_i over the chunk (cross-entropy sums, as in train's chunks), and #correct.
    ``out`` is (k, classes, n)."""
    losses = F.cross_entropy(out, y.expand(len(out), -1), reduction="none")  # (k, n)
    return losses.sum(1), _correct(out, y)


# --- the gradient and the Hessian-vector product by hand ---------------------------------------
#
# For the layers of stacked_forward, L = Σ_i ℓ_i (cross-entropy sums of k runs, one pass) is
# differentiated by hand. The backward pass gives ∇L from the records of the forward pass (its
# tape). The R-operator (Pearlmutter 1994) gives ∇²L v = d/dt ∇L(θ + t v) at t = 0, forward
# mode through the backward pass: a forward pass of tangents ż (one more product per layer, Ẇa
# beside Wȧ) and a backward pass of their cotangents δ̇ (two more: δȧᵀ beside δ̇aᵀ, Ẇᵀδ beside
# Wᵀδ̇). It reads a, z and δ from the tape of the gradient at θ, so a κ step pays the gradient
# and one tangent pass, where reverse over reverse pays the gradient twice (the step's and the
# graph its second backward pass runs through) and the same second-order products.


def _weight_grad(delta, a, shared: bool):
    """Σ over examples of δ aᵀ, (k, out, in), from δ (k, out, m) and a, (in, m) shared or
    (k, in, m)."""
    if shared:
        k, n_out, m = delta.shape
        return (delta.reshape(k * n_out, m) @ a.t()).view(k, n_out, -1)
    return torch.bmm(delta, a.transpose(1, 2))


def _to_input(record: _Affine, g):
    """Wᵀδ, (k, in, m), as the gradient of the layer's input: col2im for a convolution."""
    if record.window is None:
        return g
    k, (c, length, n), width = len(g), record.x_shape[-3:], record.window[0]
    return _col2im(g.view(k, c, width, -1, n), (k, c, length, n), *record.window)


def _reshape_back(record: _Reshape, g):
    """The adjoint of the mean over positions, or of a flattening."""
    shape = (len(g), *record.shape[1:])
    return g.expand(shape) / shape[-2] if record.pool else g.reshape(shape)


def _curved(record: _Elementwise) -> bool:
    """Whether σ'' is not 0 (so that ∂L/∂out and ż are needed by the R-operator)."""
    return isinstance(record.module, (nn.Tanh, nn.GELU))


def _d1(record: _Elementwise, g, *, inplace: bool = False):
    """σ'(z) ∘ g, by the kernels of autograd's own backward of σ; ReLU's written into g when
    ``inplace`` (a fresh buffer from the OS costs more than the product here)."""
    m = record.module
    if isinstance(m, nn.ReLU):
        if inplace:
            return torch.ops.aten.threshold_backward.grad_input(g, record.out, 0, grad_input=g)
        return torch.ops.aten.threshold_backward(g, record.out, 0)
    if isinstance(m, nn.Tanh):
        return torch.ops.aten.tanh_backward(g, record.out)
    if isinstance(m, nn.GELU):
        return torch.ops.aten.gelu_backward(g, record.z, approximate=m.approximate)
    return g  # Identity


def _d2(record: _Elementwise, z_dot):
    """σ''(z) ∘ ż ∘ ∂L/∂out, or None where σ'' = 0 (ReLU away from 0, Identity)."""
    m, out = record.module, record.out
    if isinstance(m, nn.Tanh):  # σ' = 1 − σ², σ'' = −2σ(1 − σ²)
        s2 = -2 * out * (1 - out * out)
    elif isinstance(m, nn.GELU) and m.approximate == "tanh":
        # σ = ½z(1 + t), t = tanh u, u = c(z + a z³): σ'' = (1 − t²)(u' + ½z(u'' − 2t u'²))
        z, c, a = record.z, math.sqrt(2 / math.pi), 0.044715
        t = torch.tanh(c * (z + a * z**3))
        du, ddu = c * (1 + 3 * a * z * z), 6 * c * a * z
        s2 = (1 - t * t) * (du + 0.5 * z * (ddu - 2 * t * du * du))
    elif isinstance(m, nn.GELU):  # σ = zΦ(z): σ'' = φ(z)(2 − z²)
        z = record.z
        s2 = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) * (2 - z * z)
    else:
        return None
    return s2 * z_dot * record.delta


class _Tape(NamedTuple):
    """The records of one forward and backward pass (δ filled in), and the softmax p (k, C, n)."""

    records: list
    p: torch.Tensor

    def rows(self, index) -> _Tape:
        """The tape of the runs ``index`` (a tensor of row numbers) alone."""
        taken = {}  # an activation is one layer's output and the next one's input: copy it once

        def take(t):  # index_select: about half the time of t[index] here
            if t is None:
                return None
            if id(t) not in taken:
                taken[id(t)] = t.index_select(0, index)
            return taken[id(t)]

        records = []
        for r in self.records:
            if isinstance(r, _Affine):
                r = dataclasses.replace(r, a=r.a if r.shared else take(r.a), delta=take(r.delta))
            elif isinstance(r, _Elementwise):
                r = dataclasses.replace(r, z=take(r.z), out=take(r.out), delta=take(r.delta))
            records.append(r)
        return _Tape(records, take(self.p))


def _backward(params, records, delta, keep: bool) -> dict[str, torch.Tensor]:
    """∂L/∂ of every parameter (name -> (k, ...)) from δ = ∂L/∂(outputs); with ``keep``, each
    record's δ is kept for :func:`_tangent`."""
    grads = {}
    for r in reversed(records):
        if isinstance(r, _Affine):
            r.delta = delta if keep else None
            d, w = delta.flatten(2), params[f"{r.name}.weight"]
            grads[f"{r.name}.weight"] = _weight_grad(d, r.a, r.shared).view_as(w)  # δaᵀ
            if f"{r.name}.bias" in params:
                grads[f"{r.name}.bias"] = d.sum(-1)
            if r.shared:  # the first layer: the data need no gradient
                break
            delta = _to_input(r, torch.bmm(w.flatten(2).transpose(1, 2), d))  # Wᵀδ
        elif isinstance(r, _Elementwise):
            r.delta = delta if keep and _curved(r) else None
            delta = _d1(r, delta, inplace=r.delta is None)  # Wᵀδ of the layer above: a temporary
        else:
            delta = _reshape_back(r, delta)
    return grads


@torch.no_grad()
def _gradient_pass(model, params, x, y, *, keep: bool):
    """One pass over the examples (x, y) for k runs: Σ_i ℓ_i and #correct per run, ∇ of Σ_i ℓ_i
    per parameter, and (``keep``) the tape for :func:`_tangent`, else None."""
    records = []
    out = stacked_forward(model, params, x, records)  # (k, C, n)
    logp = torch.log_softmax(out, 1)
    loss = -logp.gather(1, y.view(1, 1, -1).expand(len(out), 1, -1)).sum((1, 2))
    p = logp.exp()
    delta = p - F.one_hot(y, p.shape[1]).t().to(p.dtype)  # ∂ℓ_i/∂logits = p − e_y
    grads = _backward(params, records, delta, keep)
    return loss, _correct(out, y), grads, (_Tape(records, p) if keep else None)


@torch.no_grad()
def _tangent(params, v, tape: _Tape) -> dict[str, torch.Tensor]:
    """∇²L v per parameter (name -> (k, ...)) for the pass of ``tape``, the R-operator: ``v``
    maps the parameter names to the direction's (k, ...) parts."""
    records, t, a_dot, z_dot = tape.records, None, {}, {}
    for i, r in enumerate(records):  # forward: tangents ż, ȧ (None: zero, as the data's)
        if isinstance(r, _Affine):
            w = params[f"{r.name}.weight"].flatten(2)
            if t is not None:
                a_dot[i] = t if r.window is None else _columns(t, r.window)
            z = _affine(r.a, v[f"{r.name}.weight"].flatten(2), v.get(f"{r.name}.bias"), r.shared)
            if t is not None:
                z.baddbmm_(w, a_dot[i])  # ż = Ẇa + ḃ + Wȧ
            t = z.view(len(z), *r.z_shape[1:])
        elif isinstance(r, _Elementwise):
            z_dot[i], t = t, _d1(r, t, inplace=not _curved(r))  # ȧ = σ'(z) ż
        elif t is not None:
            t = t.mean(-2, keepdim=True) if r.pool else t.flatten(1, -2)
    p = tape.p
    d = p * (t - (p * t).sum(1, keepdim=True))  # δ̇ = (diag p − p pᵀ) ż, the softmax's Jacobian
    hv = {}
    for i in reversed(range(len(records))):  # backward: cotangents δ̇
        r = records[i]
        if isinstance(r, _Affine):
            dd, delta, w = d.flatten(2), r.delta.flatten(2), params[f"{r.name}.weight"]
            g = _weight_grad(dd, r.a, r.shared)  # δ̇aᵀ + δȧᵀ
            if i in a_dot:
                g.baddbmm_(delta, a_dot[i].transpose(1, 2))
            hv[f"{r.name}.weight"] = g.view_as(w)
            if f"{r.name}.bias" in params:
                hv[f"{r.name}.bias"] = dd.sum(-1)
            if r.shared:
                break
            g = torch.bmm(w.flatten(2).transpose(1, 2), dd)  # Wᵀδ̇ + Ẇᵀδ
            g.baddbmm_(v[f"{r.name}.weight"].flatten(2).transpose(1, 2), delta)
            d = _to_input(r, g)
        elif isinstance(r, _Elementwise):
            d2 = _d2(r, z_dot[i])
            d = _d1(r, d, inplace=True) if d2 is None else _d1(r, d).add_(d2)  # σ'δ̇ + σ''ż∂L/∂out
        else:
            d = _reshape_back(r, d)
    return hv


class _Flat:
    """Parameter dicts of k runs (name -> (k, ...)) as the rows of a (k, P) tensor, in model
    order."""

    def __init__(self, names, shapes):
        self.names, self.shapes = list(names), [torch.Size(s) for s in shapes]
        self.sizes = [math.prod(s) for s in self.shapes]

    def unflatten(self, flat):
        return {name: t.view(len(flat), *shape)
                for name, t, shape in zip(self.names, flat.split(self.sizes, dim=1), self.shapes)}

    def flatten(self, parts, like):
        return torch.cat([parts[name].reshape(len(like), -1) if name in parts
                          else torch.zeros(len(like), size, dtype=like.dtype, device=like.device)
                          for name, size in zip(self.names, self.sizes)], dim=1)


def stacked_hvp_fn(flat: _Flat, theta, tapes: list[_Tape], n: int):
    """v ↦ (∇²E_r v_r)_r, v and the result (k, P), for the k runs θ (k, P) whose passes over the
    n examples left ``tapes``: one tangent pass per tape (:func:`_tangent`), divided by n."""
    params = flat.unflatten(theta)

    def hvp(v):
        parts = flat.unflatten(v.to(theta.dtype))
        total = torch.zeros_like(theta)
        for tape in tapes:
            total += flat.flatten(_tangent(params, parts, tape), theta)
        return total / n

    return hvp


def module_hvp_fn(model: nn.Module, x, y, theta, *, chunk_size: int):
    """v ↦ ∇²E v, v and the result (1, P), for one run of ``model`` with the flat parameters θ
    (1, P) in model order, E the mean cross-entropy over (x, y): by hand, passes of at most
    ``chunk_size`` examples made once, one tangent pass per product. None for a model outside
    :func:`stacked_forward_supported`."""
    if not stacked_forward_supported(model, x.shape[1:]):
        return None
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    flat = _Flat([name for name, _ in named], [p.shape for _, p in named])
    params = flat.unflatten(theta)
    rows = _pass_size(len(x), chunk_size, _widest_activation(model, x.shape[1:]),
                      x.element_size())
    tapes = [_gradient_pass(model, params, x[i:i + rows], y[i:i + rows], keep=True)[3]
             for i in range(0, len(x), rows)]
    return stacked_hvp_fn(flat, theta, tapes, len(x))


class StackedNet:
    """k runs of one architecture as one stacked model: θ is a (k, P) tensor, one row per run,
    the parameters in model order (as :class:`~bea_lib.nets.module_net.ModuleNet` does).
    Gradients, evaluations and Hessian-vector products of all rows in one pass over the data.

    For the layers of :func:`stacked_forward` the gradient and the Hessian-vector products are
    taken by hand (the R-operator); with ``keep_tapes`` the gradient's passes are kept until the
    next gradient, so that the products at the same θ (the κ step's, the diagnostics') need one
    tangent pass each and no second gradient. Other models go through autograd (vmap), and their
    products are reverse over reverse.
    """

    def __init__(self, models: list[nn.Module], data, *, chunk_size: int, keep_tapes: bool = False):
        if has_batch_norm(models[0]):
            raise ValueError("a batch of runs does not support batch normalisation (norm='batch'); "
                             "train each run on its own")
        stacked, self.buffers = stack_module_state(models)
        self.names = list(stacked)
        self.flat = _Flat(self.names, [stacked[name].shape[1:] for name in self.names])
        self._theta = torch.cat([stacked[name].detach().reshape(len(models), -1)
                                 for name in self.names], dim=1)
        self.forward, self.per_example = _forward_of(models[0], data.input_shape)
        self.model = models[0] if stacked_forward_supported(models[0], data.input_shape) else None
        self.data, self.chunk_size, self.keep_tapes = data, chunk_size, keep_tapes
        self._tapes = None  # (θ, tapes) of the last gradient, with keep_tapes

    def theta(self) -> torch.Tensor:
        return self._theta

    def keep(self, index):
        """Only the runs ``index`` go on."""
        self.buffers = {name: t[index] for name, t in self.buffers.items()}
        self._tapes = None

    def _passes(self, x, k):
        """Slices of the examples, one per forward/backward pass of k runs."""
        rows = _pass_size(len(x), self.chunk_size, k * self.per_example, x.element_size())
        return [slice(i, i + rows) for i in range(0, len(x), rows)]

    def _unflatten(self, flat):
        return self.flat.unflatten(flat)

    def gradient(self, theta):
        """∇E of every run, (k, P), and [E, accuracy] per run, (k, 2)."""
        x, y = self.data.x_train, self.data.y_train
        self._tapes = None  # frees the last step's before this one's are made
        total = torch.zeros_like(theta)
        stats = torch.zeros(len(theta), 2, dtype=torch.float64, device=theta.device)
        tapes = []
        if self.model is not None:
            params = self._unflatten(theta)
        else:
            params = {name: p.detach().requires_grad_()
                      for name, p in self._unflatten(theta).items()}
        for chunk in self._passes(x, len(theta)):
            if self.model is not None:
                loss, correct, g, tape = _gradient_pass(self.model, params, x[chunk], y[chunk],
                                                        keep=self.keep_tapes)
                total += self.flat.flatten(g, theta)
                tapes.append(tape)
            else:
                loss, correct = _chunk_sums(self.forward(params, self.buffers, x[chunk]), y[chunk])
                # the runs are independent: ∂(Σ_r loss_r)/∂θ_r = ∂loss_r/∂θ_r, each run's gradient
                g = torch.autograd.grad(loss.sum(), list(params.values()))
                total += torch.cat([t.reshape(len(theta), -1) for t in g], dim=1)
            stats[:, 0] += loss.detach()
            stats[:, 1] += correct
        if self.model is not None and self.keep_tapes:
            self._tapes = (theta, tapes)
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

        By hand: from the tapes of the last gradient if it was taken at this θ, else from new
        passes for these runs; each product is one tangent pass. Otherwise the gradient's graph
        is built once and each product is one more backward pass of ⟨∇E, v⟩."""
        x, y = self.data.x_train, self.data.y_train
        index = torch.tensor(rows, device=theta.device)
        th = theta[index]
        if self.model is not None:
            if self._tapes is not None and (self._tapes[0] is theta
                                            or torch.equal(self._tapes[0], theta)):
                every = len(rows) == len(theta) and rows == list(range(len(theta)))
                tapes = [t if every else t.rows(index) for t in self._tapes[1]]
            else:
                params = self._unflatten(th)
                tapes = [_gradient_pass(self.model, params, x[chunk], y[chunk], keep=True)[3]
                         for chunk in self._passes(x, len(th))]
            return stacked_hvp_fn(self.flat, th, tapes, len(x))
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
