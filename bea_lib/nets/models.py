"""Networks for full-batch training: a small MLP and CNN, and ResNet-50/101 in the CIFAR form.

Section 6 of the paper trains ResNet-50 and ResNet-101 on CIFAR-10/100 with full-batch Adam:
the gradient of E(θ) = (1/N) Σ_i ℓ(f_θ(x_i), y_i), accumulated over chunks of the training set,
is the gradient of one fixed E only if the output for example i depends on x_i alone:

- ``norm="group"`` (GroupNorm, Wu & He 2018; the default for ResNets) normalises each example
  over groups of its own channels: outputs, loss and gradient do not depend on the chunking.
- ``norm="batch"`` (BatchNorm in training mode, as torchvision's ResNets and the authors' code,
  which used chunks of 500 images) normalises with the statistics of the chunk: E and its
  "gradient" change with the chunk size and order, and are no loss of θ alone. Kept as an option
  to compare with the authors' set-up.
- ``norm="none"``: no normalisation (the default for the MLP and CNN).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..core.validation import check_int, check_one_of

MODELS = ("mlp", "cnn", "resnet50", "resnet101")
NORMS = ("group", "batch", "none")
# the MLP's nonlinearity: ReLU (the default) has no bounded second derivative, as Assumption
# (3.1) of the paper would need; tanh and GELU are smooth
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
_RESNET_LAYERS = {"resnet50": [3, 4, 6, 3], "resnet101": [3, 4, 23, 3]}


def mlp(input_shape, n_classes: int, width: int = 32, depth: int = 2,
        activation: str = "relu") -> nn.Module:
    """Flatten, then ``depth`` hidden layers of ``width`` units (:data:`ACTIVATIONS`), then a
    linear read-out."""
    width, depth = check_int("width", width, minimum=1), check_int("depth", depth, minimum=0)
    activation = check_one_of("activation", activation, ACTIVATIONS)
    layers, n_in = [nn.Flatten()], math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), ACTIVATIONS[activation]()]
        n_in = width
    return nn.Sequential(*layers, nn.Linear(n_in, n_classes))


def _norm_layer(norm: str, dims: int):
    """A constructor ``channels -> module`` of the normalisation ``norm`` (module docstring)."""
    if norm == "group":
        return lambda c: nn.GroupNorm(min(32, c), c)  # 32 groups, the GroupNorm paper's default
    if norm == "batch":
        return nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    return lambda c: nn.Identity()  # "none"; checked by the public callers


def cnn(input_shape, n_classes: int, width: int = 32, norm: str = "none") -> nn.Module:
    """Three 3-wide convolutions (the last two with stride 2), average pooling, a linear read-out.

    One-dimensional convolutions for inputs (C, L), two-dimensional ones for (C, H, W).
    """
    norm, width = check_one_of("norm", norm, NORMS), check_int("width", width, minimum=1)
    dims = len(input_shape) - 1
    if dims not in (1, 2):
        raise ValueError(f"cnn takes inputs (C, L) or (C, H, W), got shape {tuple(input_shape)}")
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    pool = nn.AdaptiveAvgPool1d(1) if dims == 1 else nn.AdaptiveAvgPool2d(1)
    make_norm = _norm_layer(norm, dims)
    layers, c_in = [], input_shape[0]
    for stride in (1, 2, 2):
        layers += [conv(c_in, width, 3, stride=stride, padding=1), make_norm(width), nn.ReLU()]
        c_in = width
    return nn.Sequential(*layers, pool, nn.Flatten(), nn.Linear(width, n_classes))


def resnet(name: str, input_shape, n_classes: int, norm: str = "group") -> nn.Module:
    """ResNet-50 or ResNet-101 (torchvision's Bottleneck blocks) in the CIFAR form.

    The CIFAR form (He et al. 2016, Section 4.2) replaces the ImageNet stem, a 7×7 stride-2
    convolution and a max-pool, by one 3×3 stride-1 convolution, so 32×32 images keep their
    resolution into the first stage.
    """
    from torchvision.models.resnet import Bottleneck, ResNet

    name = check_one_of("name", name, tuple(_RESNET_LAYERS))
    norm = check_one_of("norm", norm, NORMS)
    if len(input_shape) != 3:
        raise ValueError(f"{name} takes images (C, H, W), got input shape {tuple(input_shape)}")
    model = ResNet(Bottleneck, _RESNET_LAYERS[name], num_classes=n_classes,
                   norm_layer=_norm_layer(norm, 2))
    model.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def make_model(name: str, input_shape, n_classes: int, *, width: int | None = None,
               norm: str | None = None, activation: str = "relu") -> nn.Module:
    """The network ``name`` (one of :data:`MODELS`) for inputs of ``input_shape``.

    ``width`` is the MLP's hidden width (default 32) or the CNN's channel count (default 32);
    ResNets take none. ``norm`` defaults to "group" for ResNets and "none" otherwise; the MLP
    has no normalisation. ``activation`` (:data:`ACTIVATIONS`) is the MLP's; the other models
    take ReLU only.
    """
    name = check_one_of("model", name, MODELS)
    width = check_int("width", width, minimum=1, optional=True)
    norm = check_one_of("norm", norm, NORMS, optional=True)
    if name == "mlp":
        if norm not in (None, "none"):
            raise ValueError(f"norm must be 'none' for the mlp, got {norm!r}")
        return mlp(input_shape, n_classes, **({} if width is None else {"width": width}),
                   activation=activation)
    if activation != "relu":
        raise ValueError(f"activation must be 'relu' for {name}, got {activation!r}")
    if name == "cnn":
        return cnn(input_shape, n_classes, **({} if width is None else {"width": width}),
                   norm=norm or "none")
    if width is not None:
        raise ValueError(f"width is not an option of {name}, got {width!r}")
    return resnet(name, input_shape, n_classes, norm=norm or "group")


def has_batch_norm(model: nn.Module) -> bool:
    """Whether ``model`` normalises with chunk statistics: its loss then depends on the chunking."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def flops_per_example(name: str, input_shape, n_classes: int, **options) -> tuple[float, float]:
    """(forward and backward, forward) floating-point operations of one example through the
    network ``name`` (:func:`make_model` with ``options``), counted by torch's
    ``FlopCounterMode`` on the meta device: no memory and no arithmetic, so any size is cheap.
    Normalisation and activations are not counted (the convolutions and products dominate)."""
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = make_model(name, input_shape, n_classes, **options)
        x = torch.empty(1, *input_shape)
        y = torch.zeros(1, dtype=torch.long)
    with FlopCounterMode(display=False) as forward:
        out = model(x)
    with FlopCounterMode(display=False) as backward:
        F.cross_entropy(out, y).backward()
    return (float(forward.get_total_flops() + backward.get_total_flops()),
            float(forward.get_total_flops()))
